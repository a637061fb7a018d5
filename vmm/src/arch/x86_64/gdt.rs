//! The boot-time global descriptor table. Linux's 64-bit boot protocol expects flat code
//! and data segments at selectors 0x10 and 0x18 (`__BOOT_CS`, `__BOOT_DS`); PVH starts in
//! 32-bit protected mode and wants the same layout with a 32-bit code segment.

#![allow(
    clippy::cast_possible_truncation,
    reason = "descriptor fields are masked bit ranges that fit their types"
)]

use kvm_bindings::kvm_segment;

/// Selector of the boot code segment.
pub const CODE_SELECTOR: u16 = 0x10;
/// Selector of the boot data segment.
pub const DATA_SELECTOR: u16 = 0x18;
/// Selector of the task state segment.
pub const TSS_SELECTOR: u16 = 0x20;

/// Which execution mode the boot entry runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootMode {
    /// 64-bit long mode with paging (Linux boot protocol).
    Long64,
    /// 32-bit protected mode, paging off (PVH).
    Protected32,
}

/// Packs a descriptor from its flags (access byte in bits 0-7, flags nibble in 12-15),
/// base and limit, as the CPU stores it.
pub fn gdt_entry(flags: u16, base: u32, limit: u32) -> u64 {
    ((u64::from(base) & 0xff00_0000) << (56 - 24))
        | ((u64::from(flags) & 0x0000_f0ff) << 40)
        | ((u64::from(limit) & 0x000f_0000) << (48 - 16))
        | ((u64::from(base) & 0x00ff_ffff) << 16)
        | (u64::from(limit) & 0x0000_ffff)
}

/// The five-entry table for `mode`: null, null, code, data, TSS.
pub fn boot_gdt(mode: BootMode) -> [u64; 5] {
    let code = match mode {
        BootMode::Long64 => gdt_entry(0xa09b, 0, 0xfffff),
        BootMode::Protected32 => gdt_entry(0xc09b, 0, 0xfffff),
    };
    [
        0,
        0,
        code,
        gdt_entry(0xc093, 0, 0xfffff),
        gdt_entry(0x808b, 0, 0xfffff),
    ]
}

/// Decodes a descriptor into the form KVM's `KVM_SET_SREGS` takes.
pub fn segment_from_entry(entry: u64, table_index: u8) -> kvm_segment {
    let bits = |shift: u32, mask: u64| (entry >> shift) & mask;
    let base = (bits(16, 0xff_ffff) | (bits(56, 0xff) << 24)) as u32;
    let raw_limit = (bits(0, 0xffff) | (bits(48, 0xf) << 16)) as u32;
    let granularity = bits(55, 1) as u8;
    // With 4 KiB granularity the limit counts pages: expand it to bytes.
    let limit = if granularity == 1 {
        (raw_limit << 12) | 0xfff
    } else {
        raw_limit
    };
    kvm_segment {
        base: u64::from(base),
        limit,
        selector: u16::from(table_index) * 8,
        type_: bits(40, 0xf) as u8,
        present: bits(47, 1) as u8,
        dpl: bits(45, 0x3) as u8,
        db: bits(54, 1) as u8,
        s: bits(44, 1) as u8,
        l: bits(53, 1) as u8,
        g: granularity,
        avl: bits(52, 1) as u8,
        padding: 0,
        unusable: u8::from(bits(47, 1) == 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_mode_code_segment_is_64_bit_and_present() {
        let gdt = boot_gdt(BootMode::Long64);
        let cs = segment_from_entry(gdt[2], 2);
        assert_eq!(cs.selector, CODE_SELECTOR);
        assert_eq!((cs.l, cs.db, cs.present, cs.s, cs.type_), (1, 0, 1, 1, 0xb));
        assert_eq!(cs.limit, 0xffff_ffff);
        assert_eq!(cs.unusable, 0);
    }

    #[test]
    fn pvh_code_segment_is_32_bit() {
        let cs = segment_from_entry(boot_gdt(BootMode::Protected32)[2], 2);
        assert_eq!((cs.l, cs.db), (0, 1));
    }

    #[test]
    fn entry_round_trips_base_and_limit() {
        let e = gdt_entry(0x0093, 0x1234_5678, 0xabcde);
        let seg = segment_from_entry(e, 3);
        assert_eq!(seg.base, 0x1234_5678);
        assert_eq!(seg.limit, 0xabcde);
        assert_eq!(seg.selector, 0x18);
        // Known encoding (matches the Intel SDM layout).
        assert_eq!(gdt_entry(0xa09b, 0, 0xfffff), 0x00af_9b00_0000_ffff);
    }

    #[test]
    fn null_entry_is_unusable() {
        assert_eq!(segment_from_entry(0, 0).unusable, 1);
    }
}
