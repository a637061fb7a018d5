//! The Linux x86 boot protocol's "zero page" (`struct boot_params`): how a 64-bit kernel
//! entered directly learns its command line, initrd, memory map and ACPI root pointer.
//! See the kernel's Documentation/arch/x86/boot.rst.

#![allow(
    clippy::cast_possible_truncation,
    reason = "the boot protocol splits 64-bit values into 32-bit halves on purpose"
)]

use super::e820::MemoryRange;
use linux_loader::loader::bootparam::{boot_params, setup_header};
use vm_memory::ByteValued;

/// `boot_params` as bytes vm-memory can write.
#[derive(Clone, Copy, Default, Debug)]
#[repr(transparent)]
pub struct BootParams(pub boot_params);

// SAFETY: `boot_params` is a plain-old-data `repr(C, packed)` bindgen struct made of
// integers and arrays of integers: every bit pattern is valid and it has no padding that
// could leak uninitialised memory (it is packed).
unsafe impl ByteValued for BootParams {}

const KERNEL_BOOT_FLAG_MAGIC: u16 = 0xaa55;
const KERNEL_HDR_MAGIC: u32 = 0x5372_6448; // "HdrS"
const KERNEL_LOADER_OTHER: u8 = 0xff;
const KERNEL_MIN_ALIGNMENT_BYTES: u32 = 0x0100_0000;
const LOADFLAG_LOADED_HIGH: u8 = 0x1;
const LOADFLAG_CAN_USE_HEAP: u8 = 0x80;
const E820_MAX_ENTRIES: usize = 128;

/// What the zero page must say.
#[derive(Debug, Clone)]
pub struct ZeroPageInput<'a> {
    /// The setup header read from a bzImage, or `None` for an ELF vmlinux.
    pub header: Option<setup_header>,
    /// Where the command line is, and its length without the NUL.
    pub cmdline_addr: u64,
    /// Length of the command line without its NUL.
    pub cmdline_len: usize,
    /// Initrd location and size, if any.
    pub initrd: Option<(u64, u64)>,
    /// The memory map.
    pub memory_map: &'a [MemoryRange],
    /// Where the ACPI RSDP is.
    pub rsdp_addr: u64,
}

/// Fills in `boot_params` for a direct 64-bit boot.
pub fn zero_page(input: &ZeroPageInput<'_>) -> BootParams {
    let mut params = boot_params::default();
    if let Some(hdr) = input.header {
        params.hdr = hdr;
    }
    params.hdr.type_of_loader = KERNEL_LOADER_OTHER;
    params.hdr.boot_flag = KERNEL_BOOT_FLAG_MAGIC;
    params.hdr.header = KERNEL_HDR_MAGIC;
    params.hdr.loadflags |= LOADFLAG_LOADED_HIGH | LOADFLAG_CAN_USE_HEAP;
    params.hdr.heap_end_ptr = 0xfe00;
    params.hdr.cmd_line_ptr = input.cmdline_addr as u32;
    params.ext_cmd_line_ptr = (input.cmdline_addr >> 32) as u32;
    params.hdr.cmdline_size = input.cmdline_len as u32;
    if params.hdr.kernel_alignment == 0 {
        params.hdr.kernel_alignment = KERNEL_MIN_ALIGNMENT_BYTES;
    }
    if let Some((addr, size)) = input.initrd {
        params.hdr.ramdisk_image = addr as u32;
        params.ext_ramdisk_image = (addr >> 32) as u32;
        params.hdr.ramdisk_size = size as u32;
        params.ext_ramdisk_size = (size >> 32) as u32;
    }
    params.acpi_rsdp_addr = input.rsdp_addr;
    for (slot, range) in params
        .e820_table
        .iter_mut()
        .zip(input.memory_map.iter().take(E820_MAX_ENTRIES))
    {
        slot.addr = range.start;
        slot.size = range.len;
        slot.r#type = range.kind;
    }
    params.e820_entries = input.memory_map.len().min(E820_MAX_ENTRIES) as u8;
    BootParams(params)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot::e820::memory_map;

    #[test]
    fn zero_page_carries_cmdline_initrd_e820_and_rsdp() {
        let map = memory_map(256 << 20, 0x300);
        let p = zero_page(&ZeroPageInput {
            header: None,
            cmdline_addr: 0x20000,
            cmdline_len: 42,
            initrd: Some((0x0f00_0000, 0x12_3456)),
            memory_map: &map,
            rsdp_addr: 0xe0000,
        })
        .0;
        let hdr = p.hdr;
        assert_eq!({ hdr.boot_flag }, 0xaa55);
        assert_eq!({ hdr.header }, 0x5372_6448);
        assert_eq!({ hdr.type_of_loader }, 0xff);
        assert_eq!({ hdr.cmd_line_ptr }, 0x20000);
        assert_eq!({ hdr.ramdisk_image }, 0x0f00_0000);
        assert_eq!({ hdr.ramdisk_size }, 0x12_3456);
        assert_eq!({ p.acpi_rsdp_addr }, 0xe0000);
        assert_eq!(p.e820_entries as usize, map.len());
        for (slot, range) in p.e820_table.iter().zip(&map) {
            assert_eq!(
                ({ slot.addr }, { slot.size }, { slot.r#type }),
                (range.start, range.len, range.kind)
            );
        }
        assert!(map
            .iter()
            .any(|r| (r.start, r.len, r.kind) == (0x10_0000, (256 << 20) - 0x10_0000, 1)));
    }

    #[test]
    fn header_from_bzimage_is_kept() {
        let hdr = setup_header {
            version: 0x020f,
            kernel_alignment: 0x20_0000,
            ..Default::default()
        };
        let p = zero_page(&ZeroPageInput {
            header: Some(hdr),
            cmdline_addr: 0x20000,
            cmdline_len: 0,
            initrd: None,
            memory_map: &[],
            rsdp_addr: 0,
        })
        .0;
        assert_eq!({ p.hdr.version }, 0x020f);
        assert_eq!({ p.hdr.kernel_alignment }, 0x20_0000);
        assert_eq!({ p.hdr.ramdisk_image }, 0);
    }
}
