//! System control port A (0x92, "fast A20 and reset"), because PC firmware and boot loaders
//! touch it: OVMF sets its A20 bit at start, and bit 0 going from 0 to 1 is a fast reset
//! some loaders use. A20 is always on here (the machine never wraps at 1 MiB); the bit
//! reads back as written.

use crate::devices::bus::BusDevice;
use crate::exit::{ExitRequest, ExitSender};

/// The port.
pub const PORT_92: u16 = 0x92;
const FAST_RESET: u8 = 1 << 0;
const A20: u8 = 1 << 1;

/// The register.
#[derive(Debug)]
pub struct Port92 {
    exits: ExitSender,
    value: u8,
}

impl Port92 {
    /// A20 on, as the firmware finds it; a fast reset reaches `exits`.
    pub fn new(exits: ExitSender) -> Self {
        Self { exits, value: A20 }
    }
}

impl BusDevice for Port92 {
    fn read(&mut self, _offset: u64, data: &mut [u8]) {
        data.fill(0);
        if let Some(b) = data.first_mut() {
            *b = self.value;
        }
    }

    fn write(&mut self, _offset: u64, data: &[u8]) {
        let [value] = data else {
            return;
        };
        if value & FAST_RESET != 0 && self.value & FAST_RESET == 0 {
            self.exits.send(ExitRequest::Reset);
        }
        self.value = value & (FAST_RESET | A20);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::exit_channel;

    #[test]
    fn a20_reads_back_and_a_rising_reset_bit_resets() {
        let (tx, rx) = exit_channel().expect("channel");
        let mut port = Port92::new(tx);
        let mut b = [0u8];
        port.read(0, &mut b);
        assert_eq!(b, [A20]);
        // OVMF: IoOr8 (0x92, BIT1).
        port.write(0, &[b[0] | A20]);
        assert!(rx.try_recv().is_none());
        port.write(0, &[A20 | FAST_RESET]);
        assert_eq!(rx.try_recv(), Some(ExitRequest::Reset));
        port.write(0, &[A20 | FAST_RESET]);
        assert!(rx.try_recv().is_none(), "only the rising edge resets");
    }
}
