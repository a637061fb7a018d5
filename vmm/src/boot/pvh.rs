//! The PVH boot protocol's `hvm_start_info`, module list and memory map: how a kernel
//! entered at its `XEN_ELFNOTE_PHYS32_ENTRY` in 32-bit mode finds its command line,
//! initrd, memory and ACPI tables. See Xen's docs/misc/pvh.pandoc.

#![allow(
    clippy::cast_possible_truncation,
    reason = "the memory map has a few entries"
)]

use super::e820::MemoryRange;
use linux_loader::loader::elf::start_info::{
    hvm_memmap_table_entry, hvm_modlist_entry, hvm_start_info,
};
use vm_memory::ByteValued;

const XEN_HVM_START_MAGIC_VALUE: u32 = 0x336e_c578;

/// `hvm_start_info` as bytes.
#[derive(Clone, Copy, Default, Debug)]
#[repr(transparent)]
pub struct StartInfo(pub hvm_start_info);
// SAFETY: a `repr(C)` bindgen struct of u32/u64 fields laid out without implicit padding
// (4+4+4+4+8*4+4+4 bytes); every bit pattern is valid.
unsafe impl ByteValued for StartInfo {}

/// One `hvm_memmap_table_entry`.
#[derive(Clone, Copy, Default, Debug)]
#[repr(transparent)]
pub struct MemmapEntry(pub hvm_memmap_table_entry);
// SAFETY: `repr(C)` of u64, u64, u32, u32: no padding, every bit pattern valid.
unsafe impl ByteValued for MemmapEntry {}

/// One `hvm_modlist_entry`.
#[derive(Clone, Copy, Default, Debug)]
#[repr(transparent)]
pub struct ModlistEntry(pub hvm_modlist_entry);
// SAFETY: `repr(C)` of four u64: no padding, every bit pattern valid.
unsafe impl ByteValued for ModlistEntry {}

/// Builds the start info and its tables.
pub fn start_info(
    cmdline_addr: u64,
    rsdp_addr: u64,
    memmap_addr: u64,
    map: &[MemoryRange],
    modlist_addr: u64,
    initrd: Option<(u64, u64)>,
) -> (StartInfo, Vec<MemmapEntry>, Option<ModlistEntry>) {
    let memmap: Vec<MemmapEntry> = map
        .iter()
        .map(|r| {
            MemmapEntry(hvm_memmap_table_entry {
                addr: r.start,
                size: r.len,
                type_: r.kind,
                reserved: 0,
            })
        })
        .collect();
    let module = initrd.map(|(paddr, size)| {
        ModlistEntry(hvm_modlist_entry {
            paddr,
            size,
            cmdline_paddr: 0,
            reserved: 0,
        })
    });
    let info = hvm_start_info {
        magic: XEN_HVM_START_MAGIC_VALUE,
        version: 1,
        flags: 0,
        nr_modules: u32::from(module.is_some()),
        modlist_paddr: if module.is_some() { modlist_addr } else { 0 },
        cmdline_paddr: cmdline_addr,
        rsdp_paddr: rsdp_addr,
        memmap_paddr: memmap_addr,
        memmap_entries: memmap.len() as u32,
        reserved: 0,
    };
    (StartInfo(info), memmap, module)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot::e820::memory_map;

    #[test]
    fn start_info_has_magic_and_points_at_tables() {
        let map = memory_map(64 << 20, 0x200);
        let (info, memmap, module) = start_info(
            0x20000,
            0xe0000,
            0x6080,
            &map,
            0x6040,
            Some((0x300_0000, 4096)),
        );
        assert_eq!(info.0.magic, 0x336e_c578);
        assert_eq!(info.0.version, 1);
        assert_eq!(info.0.memmap_entries as usize, map.len());
        assert_eq!((info.0.nr_modules, info.0.modlist_paddr), (1, 0x6040));
        assert_eq!(memmap[0].0.type_, 1);
        let m = module.expect("initrd module");
        assert_eq!((m.0.paddr, m.0.size), (0x300_0000, 4096));
        assert_eq!(std::mem::size_of::<StartInfo>(), 56);
    }

    #[test]
    fn without_initrd_there_are_no_modules() {
        let (info, _, module) = start_info(0x20000, 0, 0x6080, &[], 0x6040, None);
        assert_eq!((info.0.nr_modules, info.0.modlist_paddr), (0, 0));
        assert!(module.is_none());
    }
}
