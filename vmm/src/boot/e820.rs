//! The guest's memory map, as both the Linux zero page (e820) and PVH (`hvm_memmap`)
//! report it: RAM where RAM is; the EBDA/BIOS area, the ACPI tables and PCI ECAM reserved.

use crate::arch::x86_64::layout::{
    ram_ranges, ACPI_TABLES_START, EBDA_START, HIMEM_START, PCI_ECAM_SIZE, PCI_ECAM_START,
};

/// Usable RAM.
pub const E820_RAM: u32 = 1;
/// Reserved: not for the OS.
pub const E820_RESERVED: u32 = 2;
/// ACPI tables, reclaimable once parsed.
pub const E820_ACPI: u32 = 3;

/// One map entry: start, length, type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryRange {
    /// First byte.
    pub start: u64,
    /// Size in bytes.
    pub len: u64,
    /// One of the `E820_*` types.
    pub kind: u32,
}

/// The memory map for `ram_bytes` of RAM whose ACPI tables span `acpi_span` bytes.
pub fn memory_map(ram_bytes: u64, acpi_span: u64) -> Vec<MemoryRange> {
    let entry = |start, len, kind| MemoryRange { start, len, kind };
    let mut map = vec![
        entry(0, EBDA_START, E820_RAM),
        entry(EBDA_START, 0xa_0000 - EBDA_START, E820_RESERVED),
        entry(ACPI_TABLES_START, acpi_span, E820_ACPI),
    ];
    let acpi_end = ACPI_TABLES_START + acpi_span;
    if acpi_end < HIMEM_START {
        map.push(entry(acpi_end, HIMEM_START - acpi_end, E820_RESERVED));
    }
    for (start, len) in ram_ranges(ram_bytes) {
        let start_above_1m = start.max(HIMEM_START);
        let end = start + len;
        if end > start_above_1m {
            map.push(entry(start_above_1m, end - start_above_1m, E820_RAM));
        }
    }
    // Linux only trusts ECAM (from the MCFG table) if the firmware map reserves it.
    map.push(entry(PCI_ECAM_START, PCI_ECAM_SIZE, E820_RESERVED));
    map.sort_by_key(|e| e.start);
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn low_memory_reserves_ebda_and_bios_area() {
        let map = memory_map(128 << 20, 0x400);
        assert_eq!(
            map[0],
            MemoryRange {
                start: 0,
                len: 0x9_fc00,
                kind: E820_RAM
            }
        );
        assert_eq!(map[1].kind, E820_RESERVED);
        assert_eq!(
            map[2],
            MemoryRange {
                start: 0xe_0000,
                len: 0x400,
                kind: E820_ACPI
            }
        );
        assert_eq!(
            map[3],
            MemoryRange {
                start: 0xe_0400,
                len: 0x1_fc00,
                kind: E820_RESERVED
            }
        );
        assert_eq!(
            map[4],
            MemoryRange {
                start: 0x10_0000,
                len: (128 << 20) - 0x10_0000,
                kind: E820_RAM
            }
        );
        assert_eq!(
            map[5],
            MemoryRange {
                start: 0xe000_0000,
                len: 1 << 20,
                kind: E820_RESERVED
            }
        );
        assert_eq!(map.len(), 6);
    }

    #[test]
    fn high_memory_appears_above_4gib() {
        let map = memory_map(5 << 30, 0x400);
        let ram: Vec<_> = map.iter().filter(|e| e.kind == E820_RAM).collect();
        assert_eq!(ram.len(), 3);
        assert_eq!(ram[1].start + ram[1].len, 3 << 30);
        assert_eq!((ram[2].start, ram[2].len), (4 << 30, 2 << 30));
        let total: u64 = ram.iter().map(|e| e.len).sum();
        assert!(total <= 5 << 30);
    }
}
