//! Direct kernel boot: loads a Linux bzImage, an ELF vmlinux, or any ELF that carries a
//! PVH entry note into guest memory, places the initrd and command line, and writes the
//! boot-protocol structures so that the first vCPU can start at the kernel's entry.
//!
//! Everything read from the kernel and initrd files is untrusted input: it is checked
//! against guest memory before anything is written.

pub mod e820;
pub mod firmware;
pub mod linux;
pub mod pvh;

use crate::arch::x86_64::acpi::AcpiTables;
use crate::arch::x86_64::gdt::{boot_gdt, BootMode};
use crate::arch::x86_64::layout::{
    ram_ranges, CMDLINE_ADDR, CMDLINE_MAX_SIZE, GDT_ADDR, HIMEM_START, IDT_ADDR, PVH_INFO_ADDR,
    PVH_MEMMAP_ADDR, PVH_MODLIST_ADDR, ZERO_PAGE_ADDR,
};
use crate::arch::x86_64::paging::identity_map_entries;
use crate::arch::x86_64::regs::BootEntry;
use crate::memory::GuestMemory;
use linux_loader::cmdline::Cmdline;
use linux_loader::loader::{BzImage, Elf, KernelLoader, PvhBootCapability};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use vm_memory::{Bytes, GuestAddress};

/// Bit in the bzImage header's `xloadflags`: the kernel has a 64-bit entry at +0x200.
const XLF_KERNEL_64: u16 = 1;
/// Offset of the 64-bit entry point in a bzImage's protected-mode code.
const BZIMAGE_64BIT_ENTRY_OFFSET: u64 = 0x200;
/// The boot protocol's default `initrd_addr_max` for kernels that do not say.
const DEFAULT_INITRD_ADDR_MAX: u64 = 0x37ff_ffff;
const PAGE_SIZE: u64 = 4096;

/// What went wrong while loading the guest's kernel and initrd.
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    /// The kernel file could not be opened or read.
    #[error("Cannot read the kernel {}: {source}. Check the path.", path.display())]
    KernelUnreadable {
        /// The path given.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The kernel file is empty.
    #[error("The kernel {} is an empty file. Give the path of a bzImage or vmlinux.", path.display())]
    KernelEmpty {
        /// The path given.
        path: PathBuf,
    },
    /// Neither ELF nor bzImage.
    #[error("{} is not a Linux kernel: it is neither a bzImage nor an ELF vmlinux.", path.display())]
    NotAKernel {
        /// The path given.
        path: PathBuf,
    },
    /// A bzImage without a 64-bit entry point.
    #[error("The bzImage {} has no 64-bit entry point; Phyllome boots 64-bit kernels only.", path.display())]
    Not64Bit {
        /// The path given.
        path: PathBuf,
    },
    /// The loader rejected the image (corrupt, or does not fit).
    #[error("Cannot load the kernel {}: {reason}. The file may be damaged, or the VM may need more memory.", path.display())]
    KernelLoad {
        /// The path given.
        path: PathBuf,
        /// What the loader said.
        reason: String,
    },
    /// The command line is not acceptable.
    #[error("The kernel command line is not usable: {0}.")]
    Cmdline(String),
    /// The initrd file could not be opened or read.
    #[error("Cannot read the initrd {}: {source}. Check the path.", path.display())]
    InitrdUnreadable {
        /// The path given.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The initrd does not fit between the kernel and the end of low memory.
    #[error("The initrd {} ({size_mib} MiB) does not fit in the guest's memory next to the kernel. Give the VM more memory (--memory).", path.display())]
    InitrdTooLarge {
        /// The path given.
        path: PathBuf,
        /// Its size in MiB (rounded up).
        size_mib: u64,
    },
    /// Writing a boot structure into guest memory failed.
    #[error("Cannot write the {what} into guest memory; the VM's memory is too small.")]
    GuestWrite {
        /// Which structure.
        what: &'static str,
    },
}

/// The kernel, initrd and command line to boot.
#[derive(Debug, Clone)]
pub struct BootSource<'a> {
    /// bzImage, ELF vmlinux or PVH ELF.
    pub kernel: &'a Path,
    /// Optional initial ramdisk.
    pub initrd: Option<&'a Path>,
    /// Kernel command line.
    pub cmdline: &'a str,
}

enum KernelKind {
    Elf,
    BzImage,
}

fn sniff(path: &Path, file: &mut File) -> Result<KernelKind, BootError> {
    let unreadable = |source| BootError::KernelUnreadable {
        path: path.to_owned(),
        source,
    };
    let len = file.metadata().map_err(unreadable)?.len();
    if len == 0 {
        return Err(BootError::KernelEmpty {
            path: path.to_owned(),
        });
    }
    let mut head = [0u8; 0x210];
    let n = read_up_to(file, &mut head).map_err(unreadable)?;
    file.seek(SeekFrom::Start(0)).map_err(unreadable)?;
    if n >= 4 && head[..4] == *b"\x7fELF" {
        Ok(KernelKind::Elf)
    } else if n >= 0x206 && head[0x202..0x206] == *b"HdrS" {
        Ok(KernelKind::BzImage)
    } else {
        Err(BootError::NotAKernel {
            path: path.to_owned(),
        })
    }
}

fn read_up_to(file: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

struct LoadedKernel {
    entry: BootEntryKind,
    end: u64,
    header: Option<linux_loader::loader::bootparam::setup_header>,
}

enum BootEntryKind {
    Linux64(u64),
    Pvh(u64),
}

fn load_kernel(mem: &GuestMemory, path: &Path) -> Result<LoadedKernel, BootError> {
    let mut file = File::open(path).map_err(|source| BootError::KernelUnreadable {
        path: path.to_owned(),
        source,
    })?;
    let load_error = |e: &dyn std::fmt::Display| BootError::KernelLoad {
        path: path.to_owned(),
        reason: e.to_string(),
    };
    match sniff(path, &mut file)? {
        KernelKind::Elf => {
            let r = Elf::load(mem, None, &mut file, Some(GuestAddress(HIMEM_START)))
                .map_err(|e| load_error(&e))?;
            let entry = match r.pvh_boot_cap {
                PvhBootCapability::PvhEntryPresent(addr) => BootEntryKind::Pvh(addr.0),
                _ => BootEntryKind::Linux64(r.kernel_load.0),
            };
            Ok(LoadedKernel {
                entry,
                end: r.kernel_end,
                header: None,
            })
        }
        KernelKind::BzImage => {
            let r = BzImage::load(mem, None, &mut file, Some(GuestAddress(HIMEM_START)))
                .map_err(|e| load_error(&e))?;
            let header = r
                .setup_header
                .ok_or_else(|| load_error(&"no setup header"))?;
            if header.xloadflags & XLF_KERNEL_64 == 0 {
                return Err(BootError::Not64Bit {
                    path: path.to_owned(),
                });
            }
            Ok(LoadedKernel {
                entry: BootEntryKind::Linux64(r.kernel_load.0 + BZIMAGE_64BIT_ENTRY_OFFSET),
                end: r.kernel_end,
                header: Some(header),
            })
        }
    }
}

/// Chooses where the initrd goes: as high as the kernel allows, page aligned, above the kernel.
fn initrd_address(size: u64, low_ram_end: u64, addr_max: u64, kernel_end: u64) -> Option<u64> {
    let top = low_ram_end.min(addr_max.saturating_add(1));
    let start = top.checked_sub(size)? & !(PAGE_SIZE - 1);
    (start >= kernel_end && start >= HIMEM_START).then_some(start)
}

fn load_initrd(
    mem: &GuestMemory,
    path: &Path,
    ram_bytes: u64,
    kernel: &LoadedKernel,
) -> Result<(u64, u64), BootError> {
    let unreadable = |source| BootError::InitrdUnreadable {
        path: path.to_owned(),
        source,
    };
    let mut file = File::open(path).map_err(unreadable)?;
    let size = file.metadata().map_err(unreadable)?.len();
    let addr_max = kernel
        .header
        .map(|h| u64::from(h.initrd_addr_max))
        .filter(|&m| m != 0)
        .unwrap_or(DEFAULT_INITRD_ADDR_MAX);
    let low_end = ram_ranges(ram_bytes)[0].1;
    let too_large = || BootError::InitrdTooLarge {
        path: path.to_owned(),
        size_mib: size.div_ceil(1 << 20),
    };
    let addr = initrd_address(size, low_end, addr_max, kernel.end).ok_or_else(too_large)?;
    let len = usize::try_from(size).map_err(|_| too_large())?;
    mem.read_exact_volatile_from(GuestAddress(addr), &mut file, len)
        .map_err(|e| match e {
            vm_memory::GuestMemoryError::IOError(source) => unreadable(source),
            _ => too_large(),
        })?;
    Ok((addr, size))
}

fn write_cmdline(
    mem: &GuestMemory,
    cmdline: &str,
    kernel: &LoadedKernel,
) -> Result<usize, BootError> {
    let capacity = kernel
        .header
        .map(|h| h.cmdline_size as usize + 1)
        .filter(|&c| c > 1)
        .unwrap_or(2048)
        .min(CMDLINE_MAX_SIZE);
    if cmdline.len() >= capacity {
        return Err(BootError::Cmdline(format!(
            "it is {} bytes long, and this kernel accepts at most {}",
            cmdline.len(),
            capacity - 1
        )));
    }
    let cmd =
        Cmdline::try_from(cmdline, capacity).map_err(|e| BootError::Cmdline(e.to_string()))?;
    linux_loader::loader::load_cmdline(mem, GuestAddress(CMDLINE_ADDR), &cmd).map_err(|_| {
        BootError::GuestWrite {
            what: "command line",
        }
    })?;
    Ok(cmdline.len())
}

fn write_tables(mem: &GuestMemory, mode: BootMode) -> Result<(), BootError> {
    for (i, entry) in boot_gdt(mode).iter().enumerate() {
        mem.write_obj(*entry, GuestAddress(GDT_ADDR + i as u64 * 8))
            .map_err(|_| BootError::GuestWrite { what: "GDT" })?;
    }
    mem.write_obj(0u64, GuestAddress(IDT_ADDR))
        .map_err(|_| BootError::GuestWrite { what: "IDT" })?;
    if mode == BootMode::Long64 {
        for (addr, entry) in identity_map_entries() {
            mem.write_obj(entry, GuestAddress(addr))
                .map_err(|_| BootError::GuestWrite {
                    what: "page tables",
                })?;
        }
    }
    Ok(())
}

/// Loads everything and writes the boot structures; returns where the boot vCPU starts.
pub fn load(
    mem: &GuestMemory,
    ram_bytes: u64,
    source: &BootSource<'_>,
    acpi: &AcpiTables,
) -> Result<BootEntry, BootError> {
    let kernel = load_kernel(mem, source.kernel)?;
    let cmdline_len = write_cmdline(mem, source.cmdline, &kernel)?;
    let initrd = source
        .initrd
        .map(|path| load_initrd(mem, path, ram_bytes, &kernel))
        .transpose()?;
    let map = e820::memory_map(ram_bytes, acpi.span());

    let entry = match kernel.entry {
        BootEntryKind::Linux64(entry) => {
            let params = linux::zero_page(&linux::ZeroPageInput {
                header: kernel.header,
                cmdline_addr: CMDLINE_ADDR,
                cmdline_len,
                initrd,
                memory_map: &map,
                rsdp_addr: acpi.rsdp_addr,
            });
            mem.write_obj(params, GuestAddress(ZERO_PAGE_ADDR))
                .map_err(|_| BootError::GuestWrite { what: "zero page" })?;
            BootEntry::Linux64 {
                entry,
                zero_page: ZERO_PAGE_ADDR,
            }
        }
        BootEntryKind::Pvh(entry) => {
            let (info, memmap, module) = pvh::start_info(
                CMDLINE_ADDR,
                acpi.rsdp_addr,
                PVH_MEMMAP_ADDR,
                &map,
                PVH_MODLIST_ADDR,
                initrd,
            );
            let write_error = |_| BootError::GuestWrite {
                what: "PVH start info",
            };
            mem.write_obj(info, GuestAddress(PVH_INFO_ADDR))
                .map_err(write_error)?;
            for (i, e) in memmap.iter().enumerate() {
                let addr = PVH_MEMMAP_ADDR + (i * std::mem::size_of::<pvh::MemmapEntry>()) as u64;
                mem.write_obj(*e, GuestAddress(addr)).map_err(write_error)?;
            }
            if let Some(m) = module {
                mem.write_obj(m, GuestAddress(PVH_MODLIST_ADDR))
                    .map_err(write_error)?;
            }
            BootEntry::Pvh {
                entry,
                start_info: PVH_INFO_ADDR,
            }
        }
    };
    write_tables(mem, entry.mode())?;
    Ok(entry)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::x86_64::acpi;
    use crate::memory;
    use std::io::Write;

    fn file_with(bytes: &[u8]) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().expect("temp file");
        f.write_all(bytes).expect("write");
        f
    }

    fn try_load(kernel: &Path, initrd: Option<&Path>, ram: u64) -> Result<BootEntry, BootError> {
        let ram_mem = memory::create(ram).expect("ram");
        let source = BootSource {
            kernel,
            initrd,
            cmdline: "console=ttyS0",
        };
        load(&ram_mem.memory, ram, &source, &acpi::build(1, None))
    }

    #[test]
    fn missing_kernel_is_reported_with_its_path() {
        let err = try_load(Path::new("/nonexistent/vmlinuz"), None, 16 << 20).unwrap_err();
        assert!(matches!(err, BootError::KernelUnreadable { .. }));
        assert!(err.to_string().contains("/nonexistent/vmlinuz"));
    }

    #[test]
    fn empty_kernel_is_refused() {
        let f = file_with(b"");
        assert!(matches!(
            try_load(f.path(), None, 16 << 20),
            Err(BootError::KernelEmpty { .. })
        ));
    }

    #[test]
    fn random_bytes_are_not_a_kernel() {
        let noise: Vec<u8> = (0..8192u32)
            .map(|i| i.wrapping_mul(2_654_435_761).to_le_bytes()[1])
            .collect();
        let f = file_with(&noise);
        let err = try_load(f.path(), None, 16 << 20).unwrap_err();
        assert!(matches!(err, BootError::NotAKernel { .. }), "{err}");
    }

    #[test]
    fn truncated_elf_fails_to_load_cleanly() {
        let f = file_with(b"\x7fELF\x02\x01\x01\0garbage");
        assert!(matches!(
            try_load(f.path(), None, 16 << 20),
            Err(BootError::KernelLoad { .. })
        ));
    }

    #[test]
    fn initrd_goes_high_and_page_aligned_above_the_kernel() {
        let addr = initrd_address(10_000, 64 << 20, DEFAULT_INITRD_ADDR_MAX, 0x20_0000);
        assert_eq!(addr, Some(((64 << 20) - 10_000) & !0xfff));
        // Capped by the kernel's initrd_addr_max.
        let capped = initrd_address(4096, 3 << 30, 0x37ff_ffff, 0x20_0000);
        assert_eq!(capped, Some(0x3800_0000 - 4096));
        // Too big to fit above the kernel.
        assert_eq!(
            initrd_address(60 << 20, 64 << 20, DEFAULT_INITRD_ADDR_MAX, 8 << 20),
            None
        );
        assert_eq!(
            initrd_address(128 << 20, 64 << 20, DEFAULT_INITRD_ADDR_MAX, 0),
            None
        );
    }
}
