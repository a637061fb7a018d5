//! What the machine tells firmware through fw_cfg, in one place: the CPU count, the RAM
//! map (`etc/e820`, RAM entries only, as QEMU gives it), and the ACPI tables with their
//! table-loader script (the only way the distribution's OVMF gets them). Every machine has
//! it, as every QEMU PC does; a direct-boot guest simply never asks.

use crate::arch::x86_64::acpi::{AcpiFiles, RSDP_FILE, TABLES_FILE};
use crate::arch::x86_64::layout::ram_ranges;
use crate::boot::e820::E820_RAM;
use crate::devices::legacy::fw_cfg::{loader, FwCfg, FwCfgBuilder, FwCfgError};
use crate::memory::GuestMemory;

/// The table-loader script's fw_cfg file.
pub const LOADER_FILE: &str = "etc/table-loader";
/// The RAM map's fw_cfg file.
pub const E820_FILE: &str = "etc/e820";

/// `etc/e820`: one 20-byte entry (address, length, type; little-endian) per RAM range.
pub fn e820_file(ram_bytes: u64) -> Vec<u8> {
    let mut out = Vec::new();
    for (start, len) in ram_ranges(ram_bytes) {
        out.extend_from_slice(&start.to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&E820_RAM.to_le_bytes());
    }
    out
}

/// The machine's fw_cfg device, DMA reaching `memory`.
pub fn fw_cfg(
    cpus: u8,
    ram_bytes: u64,
    acpi: &AcpiFiles,
    memory: GuestMemory,
) -> Result<FwCfg, FwCfgError> {
    let mut b = FwCfgBuilder::new();
    b.cpus(u16::from(cpus));
    b.file(E820_FILE, e820_file(ram_bytes))?;
    b.file(RSDP_FILE, acpi.rsdp.clone())?;
    b.file(TABLES_FILE, acpi.tables.clone())?;
    b.file(LOADER_FILE, loader::encode(&acpi.script))?;
    Ok(b.build(memory))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_e820_file_lists_ram_below_and_above_the_hole() {
        let f = e820_file(4 << 30);
        assert_eq!(f.len(), 40);
        let entry = |i: usize| {
            let e = &f[i * 20..i * 20 + 20];
            (
                u64::from_le_bytes(e[0..8].try_into().unwrap_or_default()),
                u64::from_le_bytes(e[8..16].try_into().unwrap_or_default()),
                u32::from_le_bytes(e[16..20].try_into().unwrap_or_default()),
            )
        };
        assert_eq!(entry(0), (0, 3 << 30, 1));
        assert_eq!(entry(1), (4 << 30, 1 << 30, 1));
    }
}
