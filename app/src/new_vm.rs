//! What the install wizard makes, without any GTK: the user's choices ([`NewVm`]) become a
//! VM definition, and [`NewVm::build`] makes the files it names in the VM's folder (the
//! VM's own copy of the firmware's variable store, the new empty disk), reporting each
//! step. An installer boots as on a PC: UEFI firmware (the distribution's OVMF) starts it
//! from the ISO, attached read-only, and the system it installs boots from the new disk
//! afterwards, through the boot entry the installer leaves in the VM's variables.

use crate::i18n::tr_args;
use crate::iso::Detected;
use crate::resources::Resources;
use phyllome_vmm::config::{
    AboutConfig, BootConfig, CdromConfig, DiskConfig, GpuConfig, MachineConfig, Renderer,
    SoundBackend, CONFIG_VERSION,
};
use phyllome_vmm::devices::virtio::blk::disk::create_image;
use phyllome_vmm::devices::virtio::blk::ImageFormat;
use phyllome_vmm::network::{Mac, NetMode, NetworkConfig};
use phyllome_vmm::VmConfig;
use std::path::{Path, PathBuf};

/// The VM's UEFI variable store (boot entries, firmware settings), beside the definition.
pub const FIRMWARE_VARS: &str = "efi-vars.fd";

/// What the VM boots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// An installer image, started by UEFI firmware.
    Iso {
        /// The image.
        path: PathBuf,
        /// What it is.
        detected: Detected,
        /// The firmware's code (its variable template lies beside it).
        firmware: PathBuf,
    },
    /// A kernel (and initrd and command line) the user names: the "Advanced" path.
    Kernel {
        /// The kernel.
        kernel: PathBuf,
        /// The initrd, if any.
        initrd: Option<PathBuf>,
        /// The command line; the VMM's default when empty.
        cmdline: String,
    },
}

/// Why a VM could not be made.
#[derive(Debug, thiserror::Error)]
pub enum NewVmError {
    /// The firmware's variable template could not be copied.
    #[error("Cannot copy the firmware's variable store from {}: {source}. Reinstall the ovmf package.", template.display())]
    Vars {
        /// The template.
        template: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The disk could not be made.
    #[error("{0}")]
    Disk(#[from] phyllome_vmm::devices::virtio::blk::DiskError),
}

/// One step of [`NewVm::build`], for the progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Making the VM's variable store.
    Vars,
    /// Making the disk.
    Disk,
}

/// Why an installer image cannot be started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unstartable {
    /// Windows's installer finds no disk it has a driver for: it needs an AHCI (SATA) or
    /// NVMe disk, and Phyllome's disks are virtio.
    Windows,
    /// No UEFI firmware is installed; the path looked at.
    NoFirmware(PathBuf),
}

impl Unstartable {
    /// The sentence the wizard shows for the system `os`.
    pub fn sentence(&self, os: &str) -> String {
        match self {
            Self::Windows => tr_args("wizard-windows-needs-disk", &[("os", os)]),
            Self::NoFirmware(path) => tr_args(
                "wizard-no-firmware",
                &[("path", &path.display().to_string())],
            ),
        }
    }
}

/// What a recognised installer image becomes: started by the UEFI firmware `firmware`
/// (where one is installed), unless it is a system whose installer cannot work here yet.
pub fn source_for_iso(
    path: &Path,
    detected: &Detected,
    firmware: Result<PathBuf, phyllome_vmm::boot::firmware::FirmwareError>,
) -> Result<Source, Unstartable> {
    if detected.family == crate::iso::OsFamily::Windows {
        return Err(Unstartable::Windows);
    }
    let firmware = firmware.map_err(|e| match e {
        phyllome_vmm::boot::firmware::FirmwareError::NotInstalled { tried } => {
            Unstartable::NoFirmware(tried)
        }
        _ => Unstartable::NoFirmware(PathBuf::from(
            phyllome_vmm::boot::firmware::FIRMWARE_PATHS[0],
        )),
    })?;
    Ok(Source::Iso {
        path: path.to_owned(),
        detected: detected.clone(),
        firmware,
    })
}

/// The wizard's choices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewVm {
    /// The name (unique in the library).
    pub name: String,
    /// What it boots.
    pub source: Source,
    /// vCPUs, memory, disk size.
    pub resources: Resources,
    /// The new disk's format.
    pub format: ImageFormat,
    /// How it draws: 2D, or 3D with OpenGL (virgl) or OpenGL and Vulkan (venus).
    pub renderer: Renderer,
    /// User-mode networking (passt) with this card address, or no network.
    pub network: Option<Mac>,
}

impl NewVm {
    /// The disk's file name in the VM's folder.
    pub fn disk_file(&self) -> &'static str {
        match self.format {
            ImageFormat::Qcow2 => "disk.qcow2",
            ImageFormat::Raw => "disk.img",
        }
    }

    /// The definition, for a VM whose folder is `dir`.
    pub fn config(&self, dir: &Path) -> VmConfig {
        let mut c = VmConfig::new(PathBuf::new());
        c.version = CONFIG_VERSION;
        c.name = self.name.trim().to_owned();
        c.machine = MachineConfig {
            cpus: self.resources.cpus,
            memory_mib: self.resources.memory_mib,
            no_reboot: false,
        };
        c.disks.push(DiskConfig {
            path: dir.join(self.disk_file()),
            readonly: false,
            format: Some(self.format),
            queues: 1,
            cache: phyllome_vmm::devices::virtio::blk::CacheMode::Writeback,
        });
        match &self.source {
            Source::Iso {
                path,
                detected,
                firmware,
            } => {
                c.boot = BootConfig {
                    kernel: PathBuf::new(),
                    initrd: None,
                    cmdline: None,
                    firmware: Some(firmware.clone()),
                    firmware_vars: Some(dir.join(FIRMWARE_VARS)),
                };
                // In a CD drive, as on a PC: installers look for their packages there,
                // and the firmware boots the disc from it.
                c.cdroms.push(CdromConfig {
                    path: Some(path.clone()),
                });
                c.about = AboutConfig {
                    os: Some(detected.name.clone()),
                    installer: Some(path.clone()),
                };
            }
            Source::Kernel {
                kernel,
                initrd,
                cmdline,
            } => {
                c.boot = BootConfig {
                    kernel: kernel.clone(),
                    initrd: initrd.clone(),
                    cmdline: (!cmdline.trim().is_empty()).then(|| cmdline.trim().to_owned()),
                    firmware: None,
                    firmware_vars: None,
                };
            }
        }
        c.devices.gpu = Some(GpuConfig {
            width: crate::runner::DEFAULT_DISPLAY.0,
            height: crate::runner::DEFAULT_DISPLAY.1,
            dump_scanout: None,
            display_socket: None,
            renderer: self.renderer,
        });
        c.devices.input = true;
        c.devices.rng = true;
        // Sound plays through the desktop; the microphone waits until the user allows it.
        c.devices.sound = Some(SoundBackend::Pipewire);
        if let Some(mac) = self.network {
            c.network = NetworkConfig {
                mode: NetMode::Passt,
                forward: Vec::new(),
                mac: Some(mac),
            };
        }
        c
    }

    /// The steps [`NewVm::build`] takes, in order.
    pub fn steps(&self) -> Vec<Step> {
        match self.source {
            Source::Iso { .. } => vec![Step::Vars, Step::Disk],
            Source::Kernel { .. } => vec![Step::Disk],
        }
    }

    /// Makes the files the definition for `dir` names, calling `progress` before each step.
    pub fn build(&self, dir: &Path, mut progress: impl FnMut(Step)) -> Result<(), NewVmError> {
        if let Source::Iso { firmware, .. } = &self.source {
            progress(Step::Vars);
            let template = phyllome_vmm::boot::firmware::vars_template(firmware);
            std::fs::copy(&template, dir.join(FIRMWARE_VARS))
                .map_err(|source| NewVmError::Vars { template, source })?;
        }
        progress(Step::Disk);
        create_image(
            &dir.join(self.disk_file()),
            self.resources.disk,
            self.format,
        )?;
        Ok(())
    }
}

/// A name for a new VM: `wanted`, or `wanted 2`, `wanted 3`... whichever is free in `taken`.
pub fn unique_name(wanted: &str, taken: &[String]) -> String {
    let wanted = wanted.trim();
    let wanted = if wanted.is_empty() {
        "Virtual machine"
    } else {
        wanted
    };
    let free = |n: &str| !taken.iter().any(|t| t.trim().eq_ignore_ascii_case(n));
    if free(wanted) {
        return wanted.to_owned();
    }
    (2..)
        .map(|i| format!("{wanted} {i}"))
        .find(|n| free(n))
        .unwrap_or_else(|| wanted.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::iso::{self, OsFamily};

    #[test]
    fn names_get_a_number_when_taken() {
        let taken = vec!["Debian 12".to_owned(), "debian 12 2".to_owned()];
        assert_eq!(unique_name("Fedora", &taken), "Fedora");
        assert_eq!(unique_name("Debian 12", &taken), "Debian 12 3");
        assert_eq!(unique_name("  ", &[]), "Virtual machine");
    }

    /// A Debian-like installer image whose kernel holds "KERNEL-BYTES" (its initrd holds
    /// "initrd").
    fn debian_iso(dir: &Path) -> PathBuf {
        let kernel = dir.join("vmlinuz");
        std::fs::write(&kernel, "KERNEL-BYTES").unwrap();
        let iso = dir.join("debian.iso");
        phyllome_tests::ui::debian_like_iso(&iso, &kernel);
        iso
    }

    #[test]
    fn an_installer_iso_becomes_a_definition_and_its_files() {
        let tmp = tempfile::tempdir().unwrap();
        let iso = debian_iso(tmp.path());
        let detected = iso::detect(&iso).unwrap();
        assert_eq!(detected.family, OsFamily::Debian);
        let firmware = fake_firmware(tmp.path());
        let new = NewVm {
            name: " Debian 12 ".into(),
            source: Source::Iso {
                path: iso.clone(),
                detected,
                firmware: firmware.clone(),
            },
            resources: Resources {
                cpus: 2,
                memory_mib: 2048,
                disk: 20 << 30,
            },
            format: ImageFormat::Qcow2,
            renderer: Renderer::Virgl,
            network: Some("52:54:00:0a:0b:0c".parse().unwrap()),
        };
        let dir = tmp.path().join("vm");
        std::fs::create_dir(&dir).unwrap();
        let mut steps = Vec::new();
        new.build(&dir, |s| steps.push(s)).unwrap();
        assert_eq!(steps, new.steps());
        assert_eq!(
            std::fs::read(dir.join(FIRMWARE_VARS)).unwrap(),
            b"VARS-TEMPLATE",
            "the VM's own copy of the variable template"
        );
        let disk =
            phyllome_vmm::devices::virtio::blk::Disk::open(&dir.join("disk.qcow2"), true, None)
                .unwrap();
        assert_eq!(disk.size(), 20 << 30);

        let c = new.config(&dir);
        c.validate().unwrap();
        assert_eq!(c.name, "Debian 12");
        assert_eq!((c.machine.cpus, c.machine.memory_mib), (2, 2048));
        assert_eq!(c.boot.firmware.as_deref(), Some(firmware.as_path()));
        assert_eq!(
            c.boot.firmware_vars.as_deref(),
            Some(dir.join(FIRMWARE_VARS).as_path())
        );
        assert!(c.boot.kernel.as_os_str().is_empty(), "no kernel is copied");
        assert_eq!(c.disks.len(), 1);
        assert!(!c.disks[0].readonly);
        assert_eq!(
            c.cdroms,
            vec![CdromConfig {
                path: Some(iso.clone())
            }],
            "the installer is the disc in a CD drive"
        );
        assert_eq!(c.about.installer.as_deref(), Some(iso.as_path()));
        assert!(c.about.os.as_deref().unwrap().contains("Debian"));
        assert_eq!(c.devices.gpu.unwrap().renderer, Renderer::Virgl);
        assert_eq!(c.network.mode, NetMode::Passt, "networking is on");
        assert_eq!(c.network.mac.unwrap().to_string(), "52:54:00:0a:0b:0c");
        // And it survives the store's round trip.
        assert_eq!(
            VmConfig::from_toml(&new.config(&dir).to_toml()).unwrap(),
            new.config(&dir)
        );
    }

    #[test]
    fn installers_start_through_firmware_except_windows_and_without_firmware() {
        let tmp = tempfile::tempdir().unwrap();
        let iso = debian_iso(tmp.path());
        let detected = iso::detect(&iso).unwrap();
        let firmware = fake_firmware(tmp.path());
        let source = source_for_iso(&iso, &detected, Ok(firmware.clone())).unwrap();
        assert!(matches!(source, Source::Iso { firmware: f, .. } if f == firmware));

        let missing = phyllome_vmm::boot::firmware::FirmwareError::NotInstalled {
            tried: "/usr/share/OVMF/OVMF_CODE_4M.fd".into(),
        };
        let why = source_for_iso(&iso, &detected, Err(missing)).unwrap_err();
        let text = why.sentence("Debian");
        assert!(text.contains("/usr/share/OVMF/OVMF_CODE_4M.fd"), "{text}");
        assert!(text.contains("ovmf"), "{text}");

        let windows = Detected {
            family: OsFamily::Windows,
            ..detected
        };
        let why = source_for_iso(&iso, &windows, Ok(firmware)).unwrap_err();
        assert_eq!(why, Unstartable::Windows);
        let text = why.sentence("Windows 11");
        assert!(text.contains("AHCI") && text.contains("NVMe"), "{text}");
    }

    /// A firmware file and its variable template ("VARS-TEMPLATE") in `dir`.
    fn fake_firmware(dir: &Path) -> PathBuf {
        let code = dir.join("OVMF_CODE_4M.fd");
        std::fs::write(&code, "CODE").unwrap();
        std::fs::write(dir.join("OVMF_VARS_4M.fd"), "VARS-TEMPLATE").unwrap();
        code
    }

    #[test]
    fn a_failed_copy_says_what_and_leaves_no_disk() {
        let tmp = tempfile::tempdir().unwrap();
        let iso = debian_iso(tmp.path());
        let detected = iso::detect(&iso).unwrap();
        let firmware = fake_firmware(tmp.path());
        std::fs::remove_file(tmp.path().join("OVMF_VARS_4M.fd")).unwrap();
        let new = NewVm {
            name: "D".into(),
            source: Source::Iso {
                path: iso,
                detected,
                firmware,
            },
            resources: Resources {
                cpus: 1,
                memory_mib: 512,
                disk: 1 << 30,
            },
            format: ImageFormat::Raw,
            renderer: Renderer::TwoD,
            network: None,
        };
        assert!(new.config(tmp.path()).network.is_default(), "no network");
        let err = new.build(tmp.path(), |_| {}).unwrap_err();
        assert!(err.to_string().contains("OVMF_VARS_4M.fd"), "{err}");
        assert!(err.to_string().contains("ovmf package"), "{err}");
        assert!(!tmp.path().join("disk.img").exists());
    }
}
