//! What the install wizard makes, without any GTK: the user's choices ([`NewVm`]) become a
//! VM definition, and [`NewVm::build`] makes the files it names in the VM's folder (the
//! installer's kernel and initrd copied out of the ISO, the new empty disk), reporting each
//! step. Until the firmware lands, Linux installers boot directly from the kernel and initrd
//! inside their ISO (as `virt-install --location` does), with the ISO attached read-only.

use crate::iso::{self, Detected, DirectBoot};
use crate::resources::Resources;
use phyllome_vmm::config::{
    AboutConfig, BootConfig, DiskConfig, GpuConfig, MachineConfig, Renderer, CONFIG_VERSION,
};
use phyllome_vmm::devices::virtio::blk::disk::create_image;
use phyllome_vmm::devices::virtio::blk::ImageFormat;
use phyllome_vmm::VmConfig;
use std::path::{Path, PathBuf};

/// The installer's kernel, copied beside the definition.
pub const INSTALLER_KERNEL: &str = "installer-kernel";
/// Its initrd.
pub const INSTALLER_INITRD: &str = "installer-initrd";

/// What the VM boots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// An installer image, recognised, with the kernel to boot inside it.
    Iso {
        /// The image.
        path: PathBuf,
        /// What it is.
        detected: Detected,
        /// Its kernel, initrd and command line.
        boot: DirectBoot,
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
    /// The kernel or initrd could not be copied out of the image.
    #[error("Cannot copy the installer's {what} out of the image: {source}")]
    Extract {
        /// "kernel" or "initrd".
        what: &'static str,
        /// Why.
        source: iso::IsoError,
    },
    /// The disk could not be made.
    #[error("{0}")]
    Disk(#[from] phyllome_vmm::devices::virtio::blk::DiskError),
}

/// One step of [`NewVm::build`], for the progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Copying the installer's kernel.
    Kernel,
    /// Copying its initrd.
    Initrd,
    /// Making the disk.
    Disk,
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
                boot,
            } => {
                c.boot = BootConfig {
                    kernel: dir.join(INSTALLER_KERNEL),
                    initrd: Some(dir.join(INSTALLER_INITRD)),
                    cmdline: Some(boot.cmdline.clone()),
                    firmware: None,
                    firmware_vars: None,
                };
                c.disks.push(DiskConfig {
                    path: path.clone(),
                    readonly: true,
                    format: Some(ImageFormat::Raw),
                    queues: 1,
                    cache: phyllome_vmm::devices::virtio::blk::CacheMode::Writeback,
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
        c
    }

    /// The steps [`NewVm::build`] takes, in order.
    pub fn steps(&self) -> Vec<Step> {
        match self.source {
            Source::Iso { .. } => vec![Step::Kernel, Step::Initrd, Step::Disk],
            Source::Kernel { .. } => vec![Step::Disk],
        }
    }

    /// Makes the files the definition for `dir` names, calling `progress` before each step.
    pub fn build(&self, dir: &Path, mut progress: impl FnMut(Step)) -> Result<(), NewVmError> {
        if let Source::Iso { path, boot, .. } = &self.source {
            progress(Step::Kernel);
            iso::extract(path, &boot.kernel, &dir.join(INSTALLER_KERNEL)).map_err(|source| {
                NewVmError::Extract {
                    what: "kernel",
                    source,
                }
            })?;
            progress(Step::Initrd);
            iso::extract(path, &boot.initrd, &dir.join(INSTALLER_INITRD)).map_err(|source| {
                NewVmError::Extract {
                    what: "initrd",
                    source,
                }
            })?;
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
    use crate::iso::OsFamily;

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
        let boot = detected.boot.clone().unwrap();
        let new = NewVm {
            name: " Debian 12 ".into(),
            source: Source::Iso {
                path: iso.clone(),
                detected,
                boot,
            },
            resources: Resources {
                cpus: 2,
                memory_mib: 2048,
                disk: 20 << 30,
            },
            format: ImageFormat::Qcow2,
            renderer: Renderer::Virgl,
        };
        let dir = tmp.path().join("vm");
        std::fs::create_dir(&dir).unwrap();
        let mut steps = Vec::new();
        new.build(&dir, |s| steps.push(s)).unwrap();
        assert_eq!(steps, new.steps());
        assert_eq!(
            std::fs::read(dir.join(INSTALLER_KERNEL)).unwrap(),
            b"KERNEL-BYTES"
        );
        assert_eq!(
            std::fs::read(dir.join(INSTALLER_INITRD)).unwrap(),
            b"initrd"
        );
        let disk =
            phyllome_vmm::devices::virtio::blk::Disk::open(&dir.join("disk.qcow2"), true, None)
                .unwrap();
        assert_eq!(disk.size(), 20 << 30);

        let c = new.config(&dir);
        c.validate().unwrap();
        assert_eq!(c.name, "Debian 12");
        assert_eq!((c.machine.cpus, c.machine.memory_mib), (2, 2048));
        assert_eq!(c.boot.kernel, dir.join(INSTALLER_KERNEL));
        assert_eq!(c.disks.len(), 2);
        assert!(!c.disks[0].readonly);
        assert_eq!(c.disks[1].path, iso);
        assert!(c.disks[1].readonly, "the installer is attached read-only");
        assert_eq!(c.about.installer.as_deref(), Some(iso.as_path()));
        assert!(c.about.os.as_deref().unwrap().contains("Debian"));
        assert_eq!(c.devices.gpu.unwrap().renderer, Renderer::Virgl);
        // And it survives the store's round trip.
        assert_eq!(
            VmConfig::from_toml(&new.config(&dir).to_toml()).unwrap(),
            new.config(&dir)
        );
    }

    #[test]
    fn a_failed_copy_says_what_and_leaves_no_disk() {
        let tmp = tempfile::tempdir().unwrap();
        let iso = debian_iso(tmp.path());
        let detected = iso::detect(&iso).unwrap();
        let mut boot = detected.boot.clone().unwrap();
        boot.initrd = "/install.amd/missing.gz".into();
        let new = NewVm {
            name: "D".into(),
            source: Source::Iso {
                path: iso,
                detected,
                boot,
            },
            resources: Resources {
                cpus: 1,
                memory_mib: 512,
                disk: 1 << 30,
            },
            format: ImageFormat::Raw,
            renderer: Renderer::TwoD,
        };
        let err = new.build(tmp.path(), |_| {}).unwrap_err();
        assert!(err.to_string().contains("initrd"), "{err}");
        assert!(!tmp.path().join("disk.img").exists());
    }
}
