//! PCI: the bus our virtio devices sit on, because firmware and every guest OS find
//! devices there. One root bus (bus 0) behind a host bridge, reached through the legacy
//! 0xCF8/0xCFC ports and through ECAM (memory-mapped configuration, described by the
//! ACPI MCFG table); device BARs live in the 32-bit MMIO hole and are routed to their
//! function by address.

#![allow(
    clippy::cast_possible_truncation,
    reason = "bus, slot, function and register numbers are masked bit fields of 32-bit addresses"
)]

pub mod config;
pub mod msix;
pub mod piix;

use crate::devices::bus::{lock, BusDevice};
use crate::exit::{ExitRequest, ExitSender};
use config::{BarMove, ConfigSpace};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Reset control register (0xCF9) bits: the kind of reset, and "reset the CPU now".
const RCR_SYSTEM_RESET: u8 = 1 << 1;
const RCR_RESET_CPU: u8 = 1 << 2;
const RCR_FULL_RESET: u8 = 1 << 3;

/// Slots on the bus.
pub const SLOTS: usize = 32;
/// Bytes of ECAM per bus.
pub const ECAM_BUS_SIZE: u64 = 1 << 20;

/// A PCI function.
pub trait PciDevice: Send {
    /// Its configuration space.
    fn config(&self) -> &ConfigSpace;
    /// Writes to its configuration space (the device may react, e.g. to MSI-X enable).
    fn write_config(&mut self, offset: usize, data: &[u8]) -> Option<BarMove>;
    /// A read inside one of its BARs.
    fn bar_read(&mut self, bar: usize, offset: u64, data: &mut [u8]);
    /// A write inside one of its BARs.
    fn bar_write(&mut self, bar: usize, offset: u64, data: &[u8]);
    /// A BAR moved (the guest reprogrammed it): doorbells registered with KVM must follow.
    fn bar_moved(&mut self, _moved: BarMove) {}
}

/// A device shared between the bus and its worker.
pub type SharedPciDevice = Arc<Mutex<dyn PciDevice>>;

/// Bus 0 and the functions on it.
pub struct PciBus {
    functions: BTreeMap<(u8, u8), SharedPciDevice>,
}

impl std::fmt::Debug for PciBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let used: Vec<_> = self.functions.keys().collect();
        f.debug_struct("PciBus").field("functions", &used).finish()
    }
}

/// Why a device could not be plugged.
#[derive(Debug, thiserror::Error)]
pub enum PciError {
    /// All slots are taken.
    #[error("The PCI bus is full: at most {} devices fit.", SLOTS - piix::FIRST_FREE_SLOT)]
    Full,
}

impl PciBus {
    /// A bus with the PC platform's functions (the i440FX host bridge, the PIIX ISA bridge
    /// and power management: see [`piix`]).
    pub fn new() -> Self {
        let functions = piix::functions()
            .into_iter()
            .map(|(at, dev)| (at, Arc::new(Mutex::new(dev)) as SharedPciDevice))
            .collect();
        Self { functions }
    }

    /// Plugs `device` into the first free slot (function 0); returns the slot number.
    pub fn add(&mut self, device: SharedPciDevice) -> Result<usize, PciError> {
        let slot = (piix::FIRST_FREE_SLOT..SLOTS)
            .find(|&i| !self.functions.keys().any(|&(s, _)| usize::from(s) == i))
            .ok_or(PciError::Full)?;
        self.functions.insert((slot as u8, 0), device);
        Ok(slot)
    }

    fn function(&self, bus: u8, slot: u8, function: u8) -> Option<&SharedPciDevice> {
        if bus != 0 {
            return None;
        }
        self.functions.get(&(slot, function))
    }

    /// A configuration read; absent functions read as all ones.
    pub fn config_read(&self, bus: u8, slot: u8, function: u8, offset: usize, data: &mut [u8]) {
        match self.function(bus, slot, function) {
            Some(dev) => lock(dev).config().read(offset, data),
            None => data.fill(0xff),
        }
    }

    /// A configuration write.
    pub fn config_write(&self, bus: u8, slot: u8, function: u8, offset: usize, data: &[u8]) {
        if let Some(dev) = self.function(bus, slot, function) {
            let mut dev = lock(dev);
            if let Some(moved) = dev.write_config(offset, data) {
                log::debug!(
                    "PCI 00:{slot:02x}.{function}: BAR {} moved from {:#x} to {:#x}",
                    moved.index,
                    moved.from,
                    moved.to
                );
                dev.bar_moved(moved);
            }
        }
    }

    /// Routes a memory access in the MMIO window to the BAR that holds `addr`.
    fn bar_access(
        &self,
        addr: u64,
        len: usize,
        f: impl FnOnce(&mut dyn PciDevice, usize, u64),
    ) -> bool {
        for dev in self.functions.values() {
            let mut d = lock(dev);
            if !d.config().memory_enabled() {
                continue;
            }
            let hit = (0..6).find_map(|i| {
                let (base, size) = d.config().bar(i)?;
                let off = addr.checked_sub(base)?;
                (off + len as u64 <= size).then_some((i, off))
            });
            if let Some((bar, off)) = hit {
                f(&mut *d, bar, off);
                return true;
            }
        }
        false
    }
}

impl Default for PciBus {
    fn default() -> Self {
        Self::new()
    }
}

/// The legacy configuration mechanism: address at 0xCF8, data at 0xCFC..0xCFF.
#[derive(Debug)]
pub struct PciConfigIo {
    bus: Arc<Mutex<PciBus>>,
    address: u32,
    /// Where a write to the reset control register goes.
    reset: Option<ExitSender>,
    /// The reset control register's last value (bits 1 and 3: the kind of reset).
    reset_control: u8,
}

impl PciConfigIo {
    /// Ports for `bus`.
    pub fn new(bus: Arc<Mutex<PciBus>>) -> Self {
        Self {
            bus,
            address: 0,
            reset: None,
            reset_control: 0,
        }
    }

    /// Ports for `bus`, with the PIIX's reset control register at 0xCF9 (inside their
    /// range; a byte access reaches it) asking `exits` for a reset: how UEFI firmware's
    /// ResetSystem restarts an i440FX machine.
    pub fn with_reset(bus: Arc<Mutex<PciBus>>, exits: ExitSender) -> Self {
        Self {
            reset: Some(exits),
            ..Self::new(bus)
        }
    }

    fn target(&self, data_offset: u64) -> Option<(u8, u8, u8, usize)> {
        if self.address & 0x8000_0000 == 0 {
            return None;
        }
        let a = self.address;
        let register = (a & 0xfc) as usize + data_offset as usize;
        Some((
            ((a >> 16) & 0xff) as u8,
            ((a >> 11) & 0x1f) as u8,
            ((a >> 8) & 0x7) as u8,
            register,
        ))
    }
}

impl BusDevice for PciConfigIo {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        match (offset, &mut *data) {
            (1, [byte]) if self.reset.is_some() => {
                *byte = self.reset_control;
                return;
            }
            _ => {}
        }
        match offset {
            0..=3 if offset as usize + data.len() <= 4 => {
                let bytes = self.address.to_le_bytes();
                data.copy_from_slice(&bytes[offset as usize..offset as usize + data.len()]);
            }
            4..=7 => match self.target(offset - 4) {
                Some((b, s, f, reg)) => lock(&self.bus).config_read(b, s, f, reg, data),
                None => data.fill(0xff),
            },
            _ => data.fill(0xff),
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        if let (1, [value], Some(exits)) = (offset, data, &self.reset) {
            self.reset_control = value & (RCR_SYSTEM_RESET | RCR_FULL_RESET);
            if value & RCR_RESET_CPU != 0 {
                exits.send(ExitRequest::Reset);
            }
            return;
        }
        match offset {
            0 if data.len() == 4 => {
                self.address = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
            }
            4..=7 => {
                if let Some((b, s, f, reg)) = self.target(offset - 4) {
                    lock(&self.bus).config_write(b, s, f, reg, data);
                }
            }
            _ => {}
        }
    }
}

/// ECAM: configuration space mapped in memory, 4 KiB per function.
#[derive(Debug)]
pub struct PciConfigMmio {
    bus: Arc<Mutex<PciBus>>,
}

impl PciConfigMmio {
    /// ECAM for `bus`.
    pub fn new(bus: Arc<Mutex<PciBus>>) -> Self {
        Self { bus }
    }
}

fn ecam_decode(offset: u64) -> (u8, u8, u8, usize) {
    (
        ((offset >> 20) & 0xff) as u8,
        ((offset >> 15) & 0x1f) as u8,
        ((offset >> 12) & 0x7) as u8,
        (offset & 0xfff) as usize,
    )
}

impl BusDevice for PciConfigMmio {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        let (b, s, f, reg) = ecam_decode(offset);
        if reg >= 256 {
            data.fill(0);
            return;
        }
        lock(&self.bus).config_read(b, s, f, reg, data);
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        let (b, s, f, reg) = ecam_decode(offset);
        if reg < 256 {
            lock(&self.bus).config_write(b, s, f, reg, data);
        }
    }
}

/// The MMIO window where BARs live: forwards each access to the BAR that contains it.
#[derive(Debug)]
pub struct PciMmioWindow {
    bus: Arc<Mutex<PciBus>>,
    base: u64,
}

impl PciMmioWindow {
    /// The window starting at guest address `base`.
    pub fn new(bus: Arc<Mutex<PciBus>>, base: u64) -> Self {
        Self { bus, base }
    }
}

impl BusDevice for PciMmioWindow {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        let addr = self.base + offset;
        let len = data.len();
        let data_ptr = &mut *data;
        let hit =
            lock(&self.bus).bar_access(addr, len, |d, bar, off| d.bar_read(bar, off, data_ptr));
        if !hit {
            data.fill(0xff);
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        let addr = self.base + offset;
        lock(&self.bus).bar_access(addr, data.len(), |d, bar, off| d.bar_write(bar, off, data));
    }
}

#[cfg(test)]
mod tests {
    use super::config::PciId;
    use super::*;

    #[derive(Debug)]
    struct Dummy {
        config: ConfigSpace,
        writes: Vec<(usize, u64, Vec<u8>)>,
        moves: Vec<BarMove>,
    }

    impl PciDevice for Dummy {
        fn config(&self) -> &ConfigSpace {
            &self.config
        }
        fn write_config(&mut self, offset: usize, data: &[u8]) -> Option<BarMove> {
            self.config.write(offset, data)
        }
        fn bar_read(&mut self, _: usize, offset: u64, data: &mut [u8]) {
            data.fill(offset as u8);
        }
        fn bar_write(&mut self, bar: usize, offset: u64, data: &[u8]) {
            self.writes.push((bar, offset, data.to_vec()));
        }
        fn bar_moved(&mut self, moved: BarMove) {
            self.moves.push(moved);
        }
    }

    fn bus_with_dummy() -> (Arc<Mutex<PciBus>>, Arc<Mutex<Dummy>>) {
        let mut config = ConfigSpace::new(PciId {
            vendor: 0x1af4,
            device: 0x1044,
            revision: 1,
            class: 0xff_00_00,
            subsystem_vendor: 0x1af4,
            subsystem: 4,
        });
        config.set_bar(0, 0x4000, 0xc000_0000);
        let dummy = Arc::new(Mutex::new(Dummy {
            config,
            writes: vec![],
            moves: vec![],
        }));
        let mut bus = PciBus::new();
        assert_eq!(bus.add(dummy.clone()).unwrap(), 2);
        (Arc::new(Mutex::new(bus)), dummy)
    }

    fn cf8(io: &mut PciConfigIo, slot: u32, reg: u32) -> u32 {
        io.write(0, &(0x8000_0000 | (slot << 11) | reg).to_le_bytes());
        let mut b = [0u8; 4];
        io.read(4, &mut b);
        u32::from_le_bytes(b)
    }

    #[test]
    fn legacy_ports_reach_the_host_bridge_and_devices() {
        let (bus, _) = bus_with_dummy();
        let mut io = PciConfigIo::new(bus);
        assert_eq!(cf8(&mut io, 0, 0), 0x1237_8086);
        assert_eq!(cf8(&mut io, 2, 0), 0x1044_1af4);
        assert_eq!(cf8(&mut io, 3, 0), 0xffff_ffff, "empty slot");
        // A byte read at 0xCFE reads the device ID's low byte.
        io.write(0, &(0x8000_0000u32 | (2 << 11)).to_le_bytes());
        let mut b = [0u8; 1];
        io.read(6, &mut b);
        assert_eq!(b, [0x44]);
    }

    #[test]
    fn the_reset_control_register_resets_and_keeps_the_address_register_apart() {
        let (bus, _) = bus_with_dummy();
        let (tx, rx) = crate::exit::exit_channel().expect("channel");
        let mut io = PciConfigIo::with_reset(bus, tx);
        // OVMF's cold reset: the kind first, then the kind with "reset the CPU".
        io.write(1, &[RCR_SYSTEM_RESET]);
        assert!(rx.try_recv().is_none());
        let mut b = [0u8];
        io.read(1, &mut b);
        assert_eq!(b, [RCR_SYSTEM_RESET]);
        io.write(1, &[RCR_SYSTEM_RESET | RCR_RESET_CPU]);
        assert_eq!(rx.try_recv(), Some(ExitRequest::Reset));
        // The configuration mechanism is unaffected.
        assert_eq!(cf8(&mut io, 2, 0), 0x1044_1af4);
    }

    #[test]
    fn ecam_reaches_the_same_registers() {
        let (bus, _) = bus_with_dummy();
        let mut ecam = PciConfigMmio::new(bus);
        let mut b = [0u8; 4];
        ecam.read(2 << 15, &mut b);
        assert_eq!(u32::from_le_bytes(b), 0x1044_1af4);
        ecam.read((2 << 15) | 0x800, &mut b);
        assert_eq!(b, [0; 4], "extended space reads as zero");
    }

    #[test]
    fn bar_accesses_route_only_when_memory_decoding_is_on() {
        let (bus, dummy) = bus_with_dummy();
        let mut window = PciMmioWindow::new(bus.clone(), 0xc000_0000);
        window.write(0x10, &[1, 2]);
        assert!(lock(&dummy).writes.is_empty());
        let mut ecam = PciConfigMmio::new(bus);
        ecam.write((2 << 15) | 4, &[0x02, 0]);
        window.write(0x10, &[1, 2]);
        let mut b = [0u8; 1];
        window.read(0x3000, &mut b);
        assert_eq!(lock(&dummy).writes, vec![(0, 0x10, vec![1, 2])]);
        assert_eq!(b, [0]);
        window.read(0x4000, &mut b);
        assert_eq!(b, [0xff], "past the BAR");
    }

    #[test]
    fn reprogrammed_bar_is_reported_to_the_device() {
        let (bus, dummy) = bus_with_dummy();
        let mut io = PciConfigIo::new(bus);
        io.write(0, &(0x8000_0010u32 | (2 << 11)).to_le_bytes());
        io.write(4, &0xc001_0000u32.to_le_bytes());
        assert_eq!(
            lock(&dummy).moves,
            vec![BarMove {
                index: 0,
                from: 0xc000_0000,
                to: 0xc001_0000
            }]
        );
    }
}
