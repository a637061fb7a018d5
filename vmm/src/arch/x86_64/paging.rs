//! Identity-mapped page tables for the 64-bit boot entry. Linux's `startup_64` and our
//! test guests need their image, the zero page and the command line mapped; we map the
//! whole first 4 GiB with 2 MiB pages, which also covers the MMIO hole for early probes.

#![allow(
    clippy::cast_possible_truncation,
    reason = "table counts are small constants"
)]

use super::layout::{PDPT_ADDR, PD_ADDR, PML4_ADDR};

const PRESENT_WRITABLE: u64 = 0x3;
const PAGE_SIZE_2M: u64 = 0x80;
/// Number of page directories: one per GiB mapped.
pub const PD_COUNT: u64 = 4;

/// The tables as (guest address, 64-bit entry) writes, in the order they are laid out.
pub fn identity_map_entries() -> Vec<(u64, u64)> {
    let mut writes = Vec::with_capacity(1 + PD_COUNT as usize * 513);
    writes.push((PML4_ADDR, PDPT_ADDR | PRESENT_WRITABLE));
    for gib in 0..PD_COUNT {
        let pd = PD_ADDR + gib * 0x1000;
        writes.push((PDPT_ADDR + gib * 8, pd | PRESENT_WRITABLE));
        for i in 0..512u64 {
            let phys = (gib << 30) | (i << 21);
            writes.push((pd + i * 8, phys | PRESENT_WRITABLE | PAGE_SIZE_2M));
        }
    }
    writes
}

/// Walks `entries` like the MMU would for `virt`, returning the physical address.
#[cfg(test)]
fn translate(entries: &[(u64, u64)], virt: u64) -> Option<u64> {
    let lookup = |addr: u64| entries.iter().find(|(a, _)| *a == addr).map(|(_, e)| *e);
    let pml4e = lookup(PML4_ADDR + ((virt >> 39) & 0x1ff) * 8)?;
    let pdpte = lookup((pml4e & !0xfff) + ((virt >> 30) & 0x1ff) * 8)?;
    let pde = lookup((pdpte & !0xfff) + ((virt >> 21) & 0x1ff) * 8)?;
    if pde & PAGE_SIZE_2M == 0 {
        return None;
    }
    Some((pde & !0x1f_ffff & !(1 << 63)) | (virt & 0x1f_ffff))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_four_gib_map_to_themselves() {
        let entries = identity_map_entries();
        for virt in [
            0u64,
            0x1000,
            0x10_0000,
            0x1234_5678,
            0xfee0_0000,
            (4 << 30) - 1,
        ] {
            assert_eq!(translate(&entries, virt), Some(virt), "{virt:#x}");
        }
        assert_eq!(translate(&entries, 4 << 30), None);
    }

    #[test]
    fn tables_stay_in_their_pages() {
        for (addr, _) in identity_map_entries() {
            assert!((PML4_ADDR..PD_ADDR + PD_COUNT * 0x1000).contains(&addr));
        }
    }
}
