//! The ACPI fixed-hardware power-management block at port 0xB000 (where the PIIX4 PM
//! function says it is, and where OVMF's shutdown writes): PM1 status and enable (the
//! power button), PM1 control (sleep: S5 is how the guest powers off) and the PM timer.
//! The FADT in [`crate::arch::x86_64::acpi`] points the guest here.

#![allow(
    clippy::cast_possible_truncation,
    reason = "the PM timer wraps at 32 bits by definition; accesses are a few bytes"
)]

use crate::arch::x86_64::acpi::{
    PM1_CONTROL_OFFSET, PM1_ENABLE_OFFSET, PM1_STATUS_OFFSET, PM_TIMER_OFFSET, SLP_TYP_S5,
};
use crate::devices::bus::BusDevice;
use crate::exit::{ExitRequest, ExitSender};
use std::time::Instant;

/// PM1 status/enable bit of the power button.
pub const PWRBTN: u16 = 1 << 8;
const SCI_EN: u16 = 1;
const SLP_EN: u16 = 1 << 13;
const SLP_TYP_SHIFT: u16 = 10;
const SLP_TYP_MASK: u16 = 0x7;
const PM_TIMER_HZ: u128 = 3_579_545;

/// Drives the SCI line (ISA IRQ 9, level triggered).
pub type SciLine = Box<dyn Fn(bool) + Send>;

/// The PM block.
pub struct AcpiPm {
    status: u16,
    enable: u16,
    control: u16,
    started: Instant,
    sci: SciLine,
    sci_level: bool,
    exits: ExitSender,
}

impl std::fmt::Debug for AcpiPm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AcpiPm")
            .field("status", &self.status)
            .field("enable", &self.enable)
            .field("control", &self.control)
            .finish_non_exhaustive()
    }
}

impl AcpiPm {
    /// A PM block in ACPI mode (SCI_EN set: there is no SMM firmware to hand over from).
    pub fn new(sci: SciLine, exits: ExitSender) -> Self {
        Self {
            status: 0,
            enable: 0,
            control: SCI_EN,
            started: Instant::now(),
            sci,
            sci_level: false,
            exits,
        }
    }

    /// Presses the power button: sets PWRBTN_STS and raises the SCI if the guest enabled it.
    pub fn power_button(&mut self) {
        self.status |= PWRBTN;
        self.update_sci();
    }

    fn update_sci(&mut self) {
        let level = self.control & SCI_EN != 0 && self.status & self.enable & PWRBTN != 0;
        if level != self.sci_level {
            self.sci_level = level;
            (self.sci)(level);
        }
    }

    fn timer(&self) -> u32 {
        let ticks = self.started.elapsed().as_nanos() * PM_TIMER_HZ / 1_000_000_000;
        ticks as u32
    }

    fn write_control(&mut self, value: u16) {
        self.control = (value & !SLP_EN) | SCI_EN;
        // Soft off: our `\_S5`'s type, or 0, which is what the PIIX4 takes as soft off and
        // what OVMF's ResetSystem(Shutdown) writes.
        let kind = (value >> SLP_TYP_SHIFT) & SLP_TYP_MASK;
        if value & SLP_EN != 0 && (kind == SLP_TYP_S5 || kind == 0) {
            self.exits.send(ExitRequest::PowerOff);
        }
    }

    fn registers(&self) -> [u8; 12] {
        let mut r = [0u8; 12];
        r[usize::from(PM1_STATUS_OFFSET)..][..2].copy_from_slice(&self.status.to_le_bytes());
        r[usize::from(PM1_ENABLE_OFFSET)..][..2].copy_from_slice(&self.enable.to_le_bytes());
        r[usize::from(PM1_CONTROL_OFFSET)..][..2].copy_from_slice(&self.control.to_le_bytes());
        r[usize::from(PM_TIMER_OFFSET)..][..4].copy_from_slice(&self.timer().to_le_bytes());
        r
    }
}

fn merge(old: u16, byte_offset: usize, data: &[u8]) -> u16 {
    let mut bytes = old.to_le_bytes();
    for (i, b) in data.iter().enumerate() {
        if let Some(slot) = bytes.get_mut(byte_offset + i) {
            *slot = *b;
        }
    }
    u16::from_le_bytes(bytes)
}

impl BusDevice for AcpiPm {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        let regs = self.registers();
        for (i, b) in data.iter_mut().enumerate() {
            *b = usize::try_from(offset)
                .ok()
                .and_then(|o| regs.get(o + i))
                .copied()
                .unwrap_or(0xff);
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        // Registers are written whole or in bytes; a write may span status and enable.
        let Ok(start) = u16::try_from(offset) else {
            return;
        };
        for (reg, len) in [
            (PM1_STATUS_OFFSET, 2),
            (PM1_ENABLE_OFFSET, 2),
            (PM1_CONTROL_OFFSET, 2),
        ] {
            let end = start + data.len() as u16;
            if start >= reg + len || end <= reg {
                continue;
            }
            let from = usize::from(reg.saturating_sub(start));
            let into = usize::from(start.saturating_sub(reg));
            let count = usize::from((reg + len).min(end) - reg.max(start));
            let part = &data[from..from + count];
            match reg {
                PM1_STATUS_OFFSET => {
                    // Write one to clear.
                    let ones = merge(0, into, part);
                    self.status &= !ones;
                }
                PM1_ENABLE_OFFSET => self.enable = merge(self.enable, into, part),
                _ => self.write_control(merge(self.control, into, part)),
            }
        }
        self.update_sci();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::exit_channel;
    use std::sync::{Arc, Mutex};

    fn pm() -> (AcpiPm, Arc<Mutex<Vec<bool>>>, crate::exit::ExitReceiver) {
        let levels = Arc::new(Mutex::new(Vec::new()));
        let l = levels.clone();
        let (tx, rx) = exit_channel().expect("channel");
        let dev = AcpiPm::new(Box::new(move |v| l.lock().expect("levels").push(v)), tx);
        (dev, levels, rx)
    }

    fn read16(d: &mut AcpiPm, off: u64) -> u16 {
        let mut b = [0u8; 2];
        d.read(off, &mut b);
        u16::from_le_bytes(b)
    }

    #[test]
    fn power_button_raises_sci_only_when_enabled_and_clears_on_ack() {
        let (mut d, levels, _rx) = pm();
        d.power_button();
        assert!(levels.lock().expect("levels").is_empty(), "not enabled yet");
        assert_eq!(read16(&mut d, 0) & PWRBTN, PWRBTN);
        d.write(2, &PWRBTN.to_le_bytes());
        assert_eq!(*levels.lock().expect("levels"), vec![true]);
        // Acknowledge: write one to clear.
        d.write(0, &PWRBTN.to_le_bytes());
        assert_eq!(read16(&mut d, 0) & PWRBTN, 0);
        assert_eq!(*levels.lock().expect("levels"), vec![true, false]);
    }

    #[test]
    fn s5_sleep_requests_power_off() {
        let (mut d, _, rx) = pm();
        d.write(4, &((SLP_TYP_S5 << 10) | SCI_EN).to_le_bytes());
        assert!(rx.try_recv().is_none(), "SLP_EN not set yet");
        d.write(4, &((SLP_TYP_S5 << 10) | SLP_EN | SCI_EN).to_le_bytes());
        assert_eq!(rx.try_recv(), Some(ExitRequest::PowerOff));
        // SLP_EN reads back as zero, SCI_EN stays set.
        assert_eq!(read16(&mut d, 4) & (SLP_EN | SCI_EN), SCI_EN);
    }

    #[test]
    fn byte_write_to_control_high_byte_also_powers_off() {
        let (mut d, _, rx) = pm();
        d.write(5, &[((SLP_TYP_S5 << 10 | SLP_EN) >> 8) as u8]);
        assert_eq!(rx.try_recv(), Some(ExitRequest::PowerOff));
    }

    #[test]
    fn other_sleep_states_do_nothing() {
        let (mut d, _, rx) = pm();
        d.write(4, &((3 << 10) | SLP_EN).to_le_bytes());
        assert!(rx.try_recv().is_none());
    }

    #[test]
    fn the_piix4_soft_off_type_that_ovmf_writes_powers_off() {
        let (mut d, _, rx) = pm();
        // OVMF: SLP_TYP cleared, then SLP_EN set.
        d.write(4, &0u16.to_le_bytes());
        assert!(rx.try_recv().is_none());
        d.write(4, &SLP_EN.to_le_bytes());
        assert_eq!(rx.try_recv(), Some(ExitRequest::PowerOff));
    }

    #[test]
    fn pm_timer_advances() {
        let (mut d, _, _) = pm();
        let mut a = [0u8; 4];
        d.read(8, &mut a);
        std::thread::sleep(std::time::Duration::from_millis(2));
        let mut b = [0u8; 4];
        d.read(8, &mut b);
        let (a, b) = (u32::from_le_bytes(a), u32::from_le_bytes(b));
        assert!(b.wrapping_sub(a) >= 7000, "{a} -> {b}");
    }
}
