//! Booting firmware (the distribution's OVMF) instead of a kernel: its flash, loaded from
//! the firmware file and the VM's variable store, and what the machine tells firmware
//! through fw_cfg, in one place: the CPU count, the RAM map (`etc/e820`, RAM entries only,
//! as QEMU gives it), and the ACPI tables with their table-loader script (the only way
//! OVMF gets them). Every machine has fw_cfg, as every QEMU PC does; a direct-boot guest
//! simply never asks.

use crate::arch::x86_64::acpi::{AcpiFiles, RSDP_FILE, TABLES_FILE};
use crate::arch::x86_64::layout::ram_ranges;
use crate::boot::e820::E820_RAM;
use crate::devices::legacy::fw_cfg::{loader, FwCfg, FwCfgBuilder, FwCfgError};
use crate::devices::legacy::pflash::{Pflash, PflashError, VarsStore};
use crate::devices::legacy::ramfb::{Ramfb, CONFIG_LEN, RAMFB_FILE};
use crate::memory::GuestMemory;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use vm_memory::MmapRegion;

/// Where distributions install OVMF's 4 MiB, non-secure-boot build, in the order tried
/// (Debian and Ubuntu; Fedora; Arch).
pub const FIRMWARE_PATHS: &[&str] = &[
    "/usr/share/OVMF/OVMF_CODE_4M.fd",
    "/usr/share/edk2/ovmf/OVMF_CODE.fd",
    "/usr/share/edk2/x64/OVMF_CODE.4m.fd",
];

/// The UEFI firmware new VMs boot: `$PHYLLOME_FIRMWARE` if set (for tests and unusual
/// set-ups), else the first of [`FIRMWARE_PATHS`] that exists, with its variable template
/// beside it.
pub fn installed() -> Result<PathBuf, FirmwareError> {
    find_installed(std::env::var_os("PHYLLOME_FIRMWARE"))
}

fn find_installed(chosen: Option<std::ffi::OsString>) -> Result<PathBuf, FirmwareError> {
    let candidates: Vec<PathBuf> = match chosen {
        Some(p) => vec![PathBuf::from(p)],
        None => FIRMWARE_PATHS.iter().map(PathBuf::from).collect(),
    };
    candidates
        .iter()
        .find(|p| p.is_file() && vars_template(p).is_file())
        .cloned()
        .ok_or_else(|| FirmwareError::NotInstalled {
            tried: candidates.first().cloned().unwrap_or_default(),
        })
}

/// Why the firmware could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum FirmwareError {
    /// No firmware is installed where we look.
    #[error("UEFI firmware is not installed: install Debian's ovmf package (apt install ovmf), which puts it at {}.", tried.display())]
    NotInstalled {
        /// The first path looked at.
        tried: PathBuf,
    },
    /// The firmware file cannot be read.
    #[error("Cannot read the firmware {}: {source}. Install Debian's UEFI firmware (apt install ovmf) or give the path of an OVMF_CODE file.", path.display())]
    Unreadable {
        /// The path tried.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// No variable store was named and none sits beside the firmware.
    #[error("The firmware {} needs a variable store, and there is no {} beside it: give the VM its own copy of the firmware's OVMF_VARS file (--firmware-vars).", code.display(), template.display())]
    NoVars {
        /// The firmware.
        code: PathBuf,
        /// The template looked for.
        template: PathBuf,
    },
    /// The flash could not be made from these files.
    #[error(transparent)]
    Flash(#[from] PflashError),
    /// Memory for the firmware's code could not be had.
    #[error("Cannot map the firmware's code: {0}.")]
    Map(String),
}

/// The firmware's flash, kept across guest reboots (as the variables are), and
/// page-aligned copies of its code and its variable store that KVM maps read-only, so the
/// firmware runs and reads its variables at memory speed: the code always, the variables
/// while the flash is in read-array mode (commands and status reads trap to the device).
pub struct FirmwareFlash {
    /// The flash device (variables and commands).
    pub device: Arc<Mutex<Pflash>>,
    code: MmapRegion<()>,
    code_base: u64,
    vars: Arc<MmapRegion<()>>,
}

impl std::fmt::Debug for FirmwareFlash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FirmwareFlash")
            .field("code_base", &format_args!("{:#x}", self.code_base))
            .finish_non_exhaustive()
    }
}

/// The variable template Debian installs beside a firmware file: `OVMF_CODE_4M.fd` ->
/// `OVMF_VARS_4M.fd`, `OVMF_CODE.fd` -> `OVMF_VARS.fd`.
pub fn vars_template(code: &Path) -> PathBuf {
    let name = code
        .file_name()
        .map(|n| n.to_string_lossy().replace("CODE", "VARS"))
        .unwrap_or_default();
    code.with_file_name(name)
}

impl FirmwareFlash {
    /// Loads `code` and the VM's variable store `vars` (written as the firmware changes
    /// it); without one, the template beside `code` is used in memory only.
    pub fn open(code: &Path, vars: Option<&Path>) -> Result<Self, FirmwareError> {
        let unreadable = |path: &Path| {
            let path = path.to_owned();
            move |source| FirmwareError::Unreadable { path, source }
        };
        let bytes = std::fs::read(code).map_err(unreadable(code))?;
        let store = match vars {
            Some(path) => VarsStore::open(path)?,
            None => {
                let template = vars_template(code);
                let bytes = std::fs::read(&template).map_err(|_| FirmwareError::NoVars {
                    code: code.to_owned(),
                    template: template.clone(),
                })?;
                VarsStore::in_memory(bytes)
            }
        };
        let flash = Pflash::new(bytes, store)?;
        let len = flash.code().len();
        let region = MmapRegion::<()>::new(len).map_err(|e| FirmwareError::Map(e.to_string()))?;
        // SAFETY: `region` is a fresh private anonymous mapping of exactly `len` bytes that
        // nothing else references yet; the source is a distinct heap buffer of `len` bytes.
        unsafe {
            std::ptr::copy_nonoverlapping(flash.code().as_ptr(), region.as_ptr(), len);
        }
        let vars = MmapRegion::<()>::new(flash.vars().len())
            .map_err(|e| FirmwareError::Map(e.to_string()))?;
        Ok(Self {
            code_base: flash.code_base(),
            device: Arc::new(Mutex::new(flash)),
            code: region,
            vars: Arc::new(vars),
        })
    }

    /// The page-aligned memory that shows the variable store (the window's contents are
    /// copied there; its guest address is the flash's base).
    pub fn vars_region(&self) -> Arc<MmapRegion<()>> {
        self.vars.clone()
    }

    /// Where the code lies in the guest, its host address and its length: a memory slot.
    pub fn code_slot(&self) -> (u64, u64, u64) {
        (
            self.code_base,
            self.code.as_ptr() as u64,
            self.code.size() as u64,
        )
    }

    /// The whole flash's guest range (the device traps everything the slot does not map).
    pub fn range(&self) -> (u64, u64) {
        let dev = crate::devices::bus::lock(&self.device);
        (dev.base(), dev.len())
    }

    /// A guest reset: the flash back in read-array mode.
    pub fn reset(&self) {
        crate::devices::bus::lock(&self.device).reset();
    }
}

impl Drop for FirmwareFlash {
    fn drop(&mut self) {
        if let Err(e) = crate::devices::bus::lock(&self.device).flush() {
            log::warn!("{e}");
        }
    }
}

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

/// The machine's fw_cfg device, DMA reaching `memory`; with `ramfb`, the firmware may set
/// up a boot framebuffer there.
pub fn fw_cfg(
    cpus: u8,
    ram_bytes: u64,
    acpi: &AcpiFiles,
    memory: GuestMemory,
    ramfb: Option<&Ramfb>,
) -> Result<FwCfg, FwCfgError> {
    let mut b = FwCfgBuilder::new();
    if let Some(ramfb) = ramfb {
        b.writable_file(RAMFB_FILE, CONFIG_LEN, ramfb.write_hook(memory.clone()))?;
    }
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
    fn the_installed_firmware_needs_its_vars_template_beside_it() {
        let dir = tempfile::tempdir().expect("dir");
        let code = dir.path().join("OVMF_CODE_4M.fd");
        std::fs::write(&code, [0u8; 16]).expect("write");
        let chosen = || Some(code.clone().into_os_string());
        let without_vars = find_installed(chosen());
        std::fs::write(dir.path().join("OVMF_VARS_4M.fd"), [0u8; 16]).expect("write");
        let with_vars = find_installed(chosen());
        let text = without_vars.expect_err("no template").to_string();
        assert!(text.contains("apt install ovmf"), "{text}");
        assert_eq!(with_vars.expect("found"), code);
    }

    #[test]
    fn the_vars_template_sits_beside_the_code() {
        assert_eq!(
            vars_template(Path::new("/usr/share/OVMF/OVMF_CODE_4M.fd")),
            Path::new("/usr/share/OVMF/OVMF_VARS_4M.fd")
        );
    }

    #[test]
    fn missing_firmware_names_the_package_and_the_path() {
        let e = FirmwareFlash::open(Path::new("/nonexistent/OVMF_CODE_4M.fd"), None)
            .expect_err("no such file");
        let text = e.to_string();
        assert!(text.contains("/nonexistent/OVMF_CODE_4M.fd"), "{text}");
        assert!(text.contains("apt install ovmf"), "{text}");
    }

    #[test]
    fn a_firmware_without_vars_beside_it_asks_for_them() {
        let dir = tempfile::tempdir().expect("dir");
        let code = dir.path().join("OVMF_CODE_4M.fd");
        std::fs::write(&code, vec![0u8; 0x1000]).expect("write");
        let text = FirmwareFlash::open(&code, None)
            .expect_err("no vars")
            .to_string();
        assert!(
            text.contains("OVMF_VARS_4M.fd") && text.contains("--firmware-vars"),
            "{text}"
        );
    }

    #[test]
    fn the_code_is_mapped_at_the_top_of_4_gib_after_the_vars() {
        let dir = tempfile::tempdir().expect("dir");
        let code = dir.path().join("OVMF_CODE_4M.fd");
        let mut bytes = vec![0u8; 0x3000];
        bytes[0x2ff0] = 0xea; // where the reset vector would be
        std::fs::write(&code, &bytes).expect("write");
        std::fs::write(dir.path().join("OVMF_VARS_4M.fd"), vec![0xffu8; 0x2000]).expect("write");
        let flash = FirmwareFlash::open(&code, None).expect("loads");
        let (gpa, host, len) = flash.code_slot();
        assert_eq!((gpa, len), ((1 << 32) - 0x3000, 0x3000));
        assert_eq!(flash.range(), ((1 << 32) - 0x5000, 0x5000));
        assert_eq!(
            host % 4096,
            0,
            "a memory slot needs a page-aligned host address"
        );
        // SAFETY: `host` is the start of the live mapping of `len` bytes `flash` owns.
        let mapped = unsafe {
            std::slice::from_raw_parts(host as *const u8, usize::try_from(len).expect("small"))
        };
        assert_eq!(mapped, &bytes[..]);
    }

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
