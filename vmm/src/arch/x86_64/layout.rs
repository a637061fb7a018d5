//! The guest physical address map, in one place, so that the boot code, the ACPI tables
//! and the e820 map can never disagree about where things are.
//!
//! ```text
//! 0x0000_0500  GDT               0x0000_6000  PVH start_info (+ module list, memory map)
//! 0x0000_7000  Linux zero page   0x0000_8ff0  boot stack (grows down)
//! 0x0000_9000  page tables (PML4, PDPT, 4 x PD: identity map of the first 4 GiB)
//! 0x0002_0000  kernel command line
//! 0x0009_fc00  EBDA (reserved)   0x000e_0000  ACPI tables (RSDP first, reserved)
//! 0x0010_0000  kernel            ... RAM up to 3 GiB
//! 0xc000_0000  32-bit MMIO hole: PCI BARs, ECAM at 0xe000_0000, IOAPIC 0xfec0_0000, LAPIC 0xfee0_0000
//! 4 GiB        RAM that did not fit below the hole
//! ```

/// Global descriptor table used at boot.
pub const GDT_ADDR: u64 = 0x500;
/// An empty interrupt descriptor table (the guest installs its own).
pub const IDT_ADDR: u64 = 0x540;
/// PVH `hvm_start_info`.
pub const PVH_INFO_ADDR: u64 = 0x6000;
/// PVH module list (the initrd).
pub const PVH_MODLIST_ADDR: u64 = 0x6040;
/// PVH memory map.
pub const PVH_MEMMAP_ADDR: u64 = 0x6080;
/// Linux `boot_params`, the "zero page".
pub const ZERO_PAGE_ADDR: u64 = 0x7000;
/// Initial stack pointer for the 64-bit Linux entry.
pub const BOOT_STACK_ADDR: u64 = 0x8ff0;
/// Top-level page table (PML4).
pub const PML4_ADDR: u64 = 0x9000;
/// Page-directory-pointer table.
pub const PDPT_ADDR: u64 = 0xa000;
/// First of the four page directories (2 MiB pages).
pub const PD_ADDR: u64 = 0xb000;
/// Kernel command line.
pub const CMDLINE_ADDR: u64 = 0x2_0000;
/// Longest command line we ever place (the kernel may accept less).
pub const CMDLINE_MAX_SIZE: usize = 0x1_0000;
/// Start of the extended BIOS data area: not RAM as far as the guest knows.
pub const EBDA_START: u64 = 0x9_fc00;
/// Start of the legacy VGA/BIOS area.
pub const LEGACY_HOLE_START: u64 = 0xa_0000;
/// Where the ACPI tables live (the RSDP must be in 0xe0000..0xfffff for legacy scans).
pub const ACPI_TABLES_START: u64 = 0xe_0000;
/// End of the first megabyte.
pub const HIMEM_START: u64 = 0x10_0000;
/// Start of the 32-bit MMIO hole: RAM stops here and continues at 4 GiB.
pub const MMIO_HOLE_START: u64 = 0xc000_0000;
/// End of the 32-bit MMIO hole.
pub const MMIO_HOLE_END: u64 = 1 << 32;
/// The PCI MMIO window for 32-bit BARs: from the start of the hole up to ECAM.
pub const PCI_MMIO_START: u64 = MMIO_HOLE_START;
/// End of the PCI MMIO window.
pub const PCI_MMIO_END: u64 = PCI_ECAM_START;
/// PCI ECAM (memory-mapped configuration) for bus 0: 1 MiB.
pub const PCI_ECAM_START: u64 = 0xe000_0000;
/// Size of the ECAM region we decode (bus 0 only).
pub const PCI_ECAM_SIZE: u64 = 1 << 20;
/// IOAPIC registers (KVM's in-kernel IOAPIC answers here).
pub const IOAPIC_ADDR: u64 = 0xfec0_0000;
/// Local APIC registers (in-kernel).
pub const LAPIC_ADDR: u64 = 0xfee0_0000;
/// Where KVM's TSS for real-mode emulation goes (three pages below the IOAPIC, where QEMU
/// puts them: the top 4 MiB of the address space belong to the firmware's flash).
pub const KVM_TSS_ADDR: u64 = 0xfeff_d000;
/// Where RAM resumes above the hole.
pub const HIGH_RAM_START: u64 = MMIO_HOLE_END;
/// Size of the PCI MMIO window for 64-bit BARs, above RAM (room for large device memory,
/// such as a GPU's host-visible region).
pub const PCI_MMIO64_SIZE: u64 = 32 << 30;

/// The 64-bit PCI MMIO window for a guest with `ram_bytes` of RAM on a CPU with
/// `phys_bits` physical address bits, where the distribution's OVMF puts its 64-bit PCI
/// aperture, so that a firmware boot and a direct boot place BARs alike (the firmware
/// assigns every BAR, and they must land where we route them). As OVMF's PlatformInitLib:
/// where it trusts the CPU's width (`firmware_bits`, see
/// [`super::cpuid::firmware_phys_bits`]) and an eighth of the address space is more than
/// the classic 32 GiB, the top eighth; otherwise 32 GiB above RAM, aligned to its size.
/// `None` if the window does not fit under the CPU's address limit.
pub fn pci_mmio64_window(
    ram_bytes: u64,
    phys_bits: u8,
    firmware_bits: Option<u8>,
) -> Option<(u64, u64)> {
    let ram_end = HIGH_RAM_START + ram_bytes.saturating_sub(MMIO_HOLE_START);
    let classic = ram_end
        .div_ceil(1 << 30)
        .checked_mul(1 << 30)?
        .div_ceil(PCI_MMIO64_SIZE)
        .checked_mul(PCI_MMIO64_SIZE)?;
    let (start, size) = firmware_bits
        .and_then(|bits| {
            let space = 1u64.checked_shl(u32::from(bits))?;
            let eighth = space >> 3;
            (PCI_MMIO64_SIZE < eighth && classic.checked_add(eighth)? < space)
                .then_some((space - eighth, eighth))
        })
        .unwrap_or((classic, PCI_MMIO64_SIZE));
    let end = start.checked_add(size)?;
    let limit = 1u64.checked_shl(u32::from(phys_bits)).unwrap_or(u64::MAX);
    (end <= limit).then_some((start, size))
}

/// Port of the first 16550 UART (COM1).
pub const SERIAL_PORT: u16 = 0x3f8;
/// Its ISA interrupt.
pub const SERIAL_IRQ: u32 = 4;
/// The PS/2 keyboard's ISA interrupt.
pub const KEYBOARD_IRQ: u32 = 1;
/// The i8042 keyboard controller's data and command ports.
pub const I8042_PORT: u16 = 0x60;
/// The CMOS/RTC index and data ports.
pub const CMOS_PORT: u16 = 0x70;
/// ACPI fixed-hardware block: PM1a event (status + enable), PM1a control, PM timer.
pub const ACPI_PM_PORT: u16 = 0xb000;
/// The legacy PCI configuration ports (0xCF8 address, 0xCFC data).
pub const PCI_CONFIG_PORT: u16 = 0xcf8;
/// ACPI System Control Interrupt (ISA IRQ 9, level, active high).
pub const ACPI_SCI_IRQ: u32 = 9;

/// The guest RAM ranges for `ram_bytes` of memory: below the hole, then above 4 GiB.
pub fn ram_ranges(ram_bytes: u64) -> Vec<(u64, u64)> {
    let low = ram_bytes.min(MMIO_HOLE_START);
    let mut ranges = vec![(0, low)];
    if ram_bytes > low {
        ranges.push((HIGH_RAM_START, ram_bytes - low));
    }
    ranges
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_guest_fits_below_hole() {
        assert_eq!(ram_ranges(64 << 20), vec![(0, 64 << 20)]);
    }

    #[test]
    fn large_guest_splits_around_mmio_hole() {
        let ranges = ram_ranges(4 << 30);
        assert_eq!(ranges, vec![(0, 3 << 30), (4 << 30, 1 << 30)]);
    }

    #[test]
    fn boot_structures_do_not_overlap() {
        let mut areas = [
            (GDT_ADDR, 0x40),
            (IDT_ADDR, 8),
            (PVH_INFO_ADDR, 0x40),
            (PVH_MODLIST_ADDR, 0x40),
            (PVH_MEMMAP_ADDR, 0xf80),
            (ZERO_PAGE_ADDR, 0x1000),
            (PML4_ADDR, 0x1000),
            (PDPT_ADDR, 0x1000),
            (PD_ADDR, 0x4000),
            (CMDLINE_ADDR, CMDLINE_MAX_SIZE as u64),
        ];
        areas.sort();
        for pair in areas.windows(2) {
            assert!(pair[0].0 + pair[0].1 <= pair[1].0, "{pair:x?} overlap");
        }
        assert!(CMDLINE_ADDR + CMDLINE_MAX_SIZE as u64 <= EBDA_START);
    }
}

#[cfg(test)]
mod window_tests {
    use super::*;

    #[test]
    fn the_64_bit_window_sits_above_ram_and_under_the_address_limit() {
        // A width OVMF does not trust: 32 GiB above RAM, aligned to 32 GiB.
        assert_eq!(
            pci_mmio64_window(256 << 20, 40, None),
            Some((32 << 30, PCI_MMIO64_SIZE))
        );
        // 31 GiB of RAM: 3 GiB below the hole, 28 GiB from 4 GiB, so RAM ends at 32 GiB.
        assert_eq!(pci_mmio64_window(31 << 30, 40, None).unwrap().0, 32 << 30);
        assert_eq!(
            pci_mmio64_window((31 << 30) + 1, 40, None).unwrap().0,
            64 << 30
        );
        assert_eq!(
            pci_mmio64_window(256 << 20, 36, Some(36)),
            Some((32 << 30, PCI_MMIO64_SIZE)),
            "a 64 GiB CPU: an eighth is too small, the classic window just fits"
        );
        assert_eq!(
            pci_mmio64_window(256 << 20, 35, None),
            None,
            "32 GiB CPU: no room"
        );
        // A trusted 40-bit width (AMD, as QEMU's -cpu max): the top eighth of 1 TiB.
        assert_eq!(
            pci_mmio64_window(256 << 20, 40, Some(40)),
            Some((896 << 30, 128 << 30))
        );
        // 46 bits (a current Intel desktop): the top 8 TiB of 64 TiB.
        assert_eq!(
            pci_mmio64_window(16 << 30, 46, Some(46)),
            Some((56 << 40, 8 << 40))
        );
    }
}
