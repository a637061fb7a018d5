//! The PC platform's own PCI functions, with the identity of QEMU's "pc" machine (an
//! i440FX host bridge and a PIIX3/PIIX4 south bridge), because the distribution's OVMF
//! (edk2-stable202211) works on that platform and on Q35 only: its PlatformPei branches on
//! the host bridge's device ID, and its boot manager finds COM1 and the PS/2 keyboard
//! behind an ISA bridge.
//!
//! Why i440FX rather than Q35: Q35's firmware moves PCI configuration to ECAM at
//! 0xB0000000 and then uses ECAM alone, and wants the ICH9's root complex block; i440FX
//! needs only the 0xCF8/0xCFC ports, which every guest already uses, and a power
//! management function whose register block the firmware takes where we put it.
//!
//! - 00:00.0 host bridge 8086:1237;
//! - 00:01.0 ISA bridge 8086:7000 (multi-function), with its PIRQ routing registers;
//! - 00:01.3 power management 8086:7113, its I/O block already enabled at
//!   [`ACPI_PM_PORT`] (PMBA 0x40, PMREGMISC 0x80 with PMIOSE set: the firmware keeps a
//!   base that is already enabled).

use super::config::{BarMove, ConfigSpace, PciId, COMMAND};
use super::PciDevice;
use crate::arch::x86_64::layout::ACPI_PM_PORT;

/// The first slot free for devices (0 and 1 are the platform's).
pub const FIRST_FREE_SLOT: usize = 2;

/// PIIX4 PM: the PM I/O base register.
pub const PMBA: usize = 0x40;
/// PIIX4 PM: miscellaneous register; bit 0 (PMIOSE) enables the PM I/O block.
pub const PMREGMISC: usize = 0x80;
/// PIIX3: PIRQ route control registers 0x60..0x63.
const PIRQ_ROUTE: usize = 0x60;

/// A platform function: configuration space only, no BARs.
#[derive(Debug)]
pub struct PlatformFunction(ConfigSpace);

impl PciDevice for PlatformFunction {
    fn config(&self) -> &ConfigSpace {
        &self.0
    }
    fn write_config(&mut self, offset: usize, data: &[u8]) -> Option<BarMove> {
        self.0.write(offset, data)
    }
    fn bar_read(&mut self, _: usize, _: u64, data: &mut [u8]) {
        data.fill(0xff);
    }
    fn bar_write(&mut self, _: usize, _: u64, _: &[u8]) {}
}

fn intel(device: u16, revision: u8, class: u32) -> ConfigSpace {
    ConfigSpace::new(PciId {
        vendor: 0x8086,
        device,
        revision,
        class,
        subsystem_vendor: 0x1af4,
        subsystem: 0x1100,
    })
}

/// The platform's functions and where they sit: ((slot, function), device).
pub fn functions() -> Vec<((u8, u8), PlatformFunction)> {
    let host = intel(0x1237, 0x02, 0x06_00_00);

    let mut isa = intel(0x7000, 0x00, 0x06_01_00);
    isa.set_multifunction();
    // Every PIRQ line unrouted (bit 7), as at power-on; firmware may route them.
    isa.set_register(PIRQ_ROUTE, 0x8080_8080, 0x8f8f_8f8f);

    let mut pm = intel(0x7113, 0x03, 0x06_80_00);
    // I/O decoding on, and the PM block enabled at our fixed port.
    pm.set_register(COMMAND, 0x0001, 0x0001);
    pm.set_register(PMBA, u32::from(ACPI_PM_PORT) | 1, 0);
    pm.set_register(PMREGMISC, 1, 0);

    vec![
        ((0, 0), PlatformFunction(host)),
        ((1, 0), PlatformFunction(isa)),
        ((1, 3), PlatformFunction(pm)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find(slot: u8, function: u8) -> ConfigSpace {
        functions()
            .into_iter()
            .find(|(at, _)| *at == (slot, function))
            .map(|(_, f)| f.0)
            .expect("present")
    }

    #[test]
    fn the_host_bridge_and_south_bridge_have_the_ids_ovmf_expects() {
        assert_eq!(find(0, 0).read_reg(0), 0x1237_8086);
        let isa = find(1, 0);
        assert_eq!(isa.read_reg(0), 0x7000_8086);
        assert_eq!(isa.read_reg(8) >> 8, 0x06_01_00, "an ISA bridge");
        assert_ne!(isa.read_reg(0x0c) & (0x80 << 16), 0, "multi-function");
        assert_eq!(find(1, 3).read_reg(0), 0x7113_8086);
    }

    #[test]
    fn the_pm_block_is_enabled_at_our_port_and_stays_there() {
        let mut pm = find(1, 3);
        assert_eq!(pm.read_reg(PMBA) & !0x3f, u32::from(ACPI_PM_PORT));
        assert_eq!(pm.read_reg(PMBA) & 1, 1, "an I/O base");
        assert_eq!(pm.read_reg(PMREGMISC) & 1, 1, "PMIOSE: enabled");
        pm.write(PMBA, &0x1000u32.to_le_bytes());
        assert_eq!(pm.read_reg(PMBA) & !0x3f, u32::from(ACPI_PM_PORT));
    }
}
