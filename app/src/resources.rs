//! What a new VM gets: vCPUs, memory and disk size suggested from the OS being installed and
//! bounded by this computer (its cores, its memory, the free space where the disk goes). The
//! wizard shows the suggestion and refuses what does not fit, saying why.

use crate::iso::OsFamily;
use std::path::Path;

/// One MiB, in bytes.
const MIB: u64 = 1 << 20;
/// One GiB, in bytes.
const GIB: u64 = 1 << 30;

/// This computer, as far as a new VM is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Host {
    /// Logical CPUs.
    pub cpus: u32,
    /// Total memory, bytes.
    pub memory: u64,
    /// Free space where the VM's disk will be, bytes.
    pub free_disk: u64,
}

/// A VM's resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resources {
    /// vCPUs.
    pub cpus: u32,
    /// Memory, MiB.
    pub memory_mib: u64,
    /// Disk size, bytes (a sparse file: it takes space as the guest writes).
    pub disk: u64,
}

/// Why a choice does not fit this computer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResourceError {
    /// More vCPUs than the host has.
    #[error("This computer has {host} CPUs; give the virtual machine at most {host}.")]
    TooManyCpus {
        /// The host's CPUs.
        host: u32,
    },
    /// No vCPU.
    #[error("Give the virtual machine at least one CPU.")]
    NoCpu,
    /// More memory than leaves the host enough to run.
    #[error("This computer has {host_mib} MiB of memory; give the virtual machine at most {max_mib} MiB so the desktop keeps enough.")]
    TooMuchMemory {
        /// The host's memory.
        host_mib: u64,
        /// The most a VM may have.
        max_mib: u64,
    },
    /// Less memory than any installer runs in.
    #[error("{min_mib} MiB of memory is the least an installer runs in.")]
    TooLittleMemory {
        /// The least.
        min_mib: u64,
    },
    /// A disk larger than the free space.
    #[error("The disk would need up to {want_gib} GiB, but only {free_gib} GiB is free there; choose a smaller disk or free some space.")]
    DiskTooLarge {
        /// Asked, GiB.
        want_gib: u64,
        /// Free, GiB.
        free_gib: u64,
    },
    /// A disk too small to install anything on.
    #[error("A disk of less than {min_gib} GiB cannot hold an operating system.")]
    DiskTooSmall {
        /// The least, GiB.
        min_gib: u64,
    },
}

/// The least memory any VM gets, MiB.
pub const MIN_MEMORY_MIB: u64 = 256;
/// The least disk any VM gets, GiB.
pub const MIN_DISK_GIB: u64 = 1;

/// What the OS asks for: (vCPUs, memory MiB, disk GiB), from its installers' documented
/// requirements, comfortably.
fn wanted(os: OsFamily) -> (u32, u64, u64) {
    match os {
        OsFamily::Windows => (4, 4096, 64),
        OsFamily::Ubuntu | OsFamily::Fedora | OsFamily::OpenSuse => (2, 4096, 25),
        OsFamily::Debian => (2, 2048, 20),
        OsFamily::Arch => (2, 2048, 20),
        OsFamily::Unknown => (2, 2048, 20),
    }
}

/// The most memory a VM may have: the host keeps a quarter, and at least 1 GiB.
fn max_memory_mib(host: &Host) -> u64 {
    let host_mib = host.memory / MIB;
    host_mib
        .saturating_sub((host_mib / 4).max(1024))
        .max(MIN_MEMORY_MIB)
}

/// A suggestion for `os` on `host`: what the OS wants, cut to what the host can give
/// (half its CPUs, the memory it can spare, the free space less a margin).
pub fn suggest(os: OsFamily, host: &Host) -> Resources {
    let (cpus, memory_mib, disk_gib) = wanted(os);
    let cpus = cpus.min((host.cpus / 2).max(1));
    let memory_mib = memory_mib.min(max_memory_mib(host)).max(MIN_MEMORY_MIB);
    // Leave a tenth of the free space (and 1 GiB) to the host.
    let spare = host
        .free_disk
        .saturating_sub((host.free_disk / 10).max(GIB));
    let disk = (disk_gib * GIB).min(spare).max(MIN_DISK_GIB * GIB);
    Resources {
        cpus,
        memory_mib,
        disk,
    }
}

/// Whether `r` fits `host`; the first reason it does not.
pub fn check(r: &Resources, host: &Host) -> Result<(), ResourceError> {
    if r.cpus == 0 {
        return Err(ResourceError::NoCpu);
    }
    if r.cpus > host.cpus {
        return Err(ResourceError::TooManyCpus { host: host.cpus });
    }
    if r.memory_mib < MIN_MEMORY_MIB {
        return Err(ResourceError::TooLittleMemory {
            min_mib: MIN_MEMORY_MIB,
        });
    }
    let max_mib = max_memory_mib(host);
    if r.memory_mib > max_mib {
        return Err(ResourceError::TooMuchMemory {
            host_mib: host.memory / MIB,
            max_mib,
        });
    }
    if r.disk < MIN_DISK_GIB * GIB {
        return Err(ResourceError::DiskTooSmall {
            min_gib: MIN_DISK_GIB,
        });
    }
    if r.disk > host.free_disk {
        return Err(ResourceError::DiskTooLarge {
            want_gib: r.disk.div_ceil(GIB),
            free_gib: host.free_disk / GIB,
        });
    }
    Ok(())
}

/// This computer: CPUs, memory (`/proc/meminfo`), and the free space in `disk_dir`.
pub fn probe_host(disk_dir: &Path) -> std::io::Result<Host> {
    let cpus = std::thread::available_parallelism()
        .map(|n| u32::try_from(n.get()).unwrap_or(u32::MAX))
        .unwrap_or(1);
    let meminfo = std::fs::read_to_string("/proc/meminfo")?;
    let memory = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024);
    Ok(Host {
        cpus,
        memory,
        free_disk: free_space(disk_dir)?,
    })
}

/// Bytes free for an unprivileged user in the file system holding `dir`.
fn free_space(dir: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::other("the folder's name holds a NUL byte"))?;
    // SAFETY: `c` is a valid NUL-terminated path that outlives the call, and `stat` is a
    // zeroed struct we own, which statvfs only writes into.
    let (rc, stat) = unsafe {
        let mut stat: libc::statvfs = std::mem::zeroed();
        let rc = libc::statvfs(c.as_ptr(), &mut stat);
        (rc, stat)
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAPTOP: Host = Host {
        cpus: 8,
        memory: 16 * GIB,
        free_disk: 200 * GIB,
    };
    const SMALL: Host = Host {
        cpus: 2,
        memory: 2 * GIB,
        free_disk: 10 * GIB,
    };

    #[test]
    fn suggestions_follow_the_os_and_fit_the_host() {
        let w = suggest(OsFamily::Windows, &LAPTOP);
        assert_eq!((w.cpus, w.memory_mib, w.disk), (4, 4096, 64 * GIB));
        let d = suggest(OsFamily::Debian, &LAPTOP);
        assert_eq!((d.cpus, d.memory_mib, d.disk), (2, 2048, 20 * GIB));
        // On a small host everything shrinks, and still fits.
        for os in [OsFamily::Windows, OsFamily::Fedora, OsFamily::Unknown] {
            let s = suggest(os, &SMALL);
            assert_eq!(check(&s, &SMALL), Ok(()), "{os:?}: {s:?}");
            assert_eq!(s.cpus, 1);
            assert_eq!(s.memory_mib, 1024, "2 GiB host keeps 1 GiB");
            assert_eq!(s.disk, 9 * GIB, "10 GiB free keeps 1 GiB");
        }
    }

    #[test]
    fn choices_that_do_not_fit_say_why() {
        let ok = Resources {
            cpus: 2,
            memory_mib: 2048,
            disk: 20 * GIB,
        };
        assert_eq!(check(&ok, &LAPTOP), Ok(()));
        let err = check(&Resources { cpus: 9, ..ok }, &LAPTOP).unwrap_err();
        assert_eq!(err, ResourceError::TooManyCpus { host: 8 });
        assert!(err.to_string().contains("at most 8"), "{err}");
        assert_eq!(
            check(&Resources { cpus: 0, ..ok }, &LAPTOP),
            Err(ResourceError::NoCpu)
        );
        let err = check(
            &Resources {
                memory_mib: 16 * 1024,
                ..ok
            },
            &LAPTOP,
        )
        .unwrap_err();
        assert_eq!(
            err,
            ResourceError::TooMuchMemory {
                host_mib: 16384,
                max_mib: 12288
            }
        );
        assert!(matches!(
            check(
                &Resources {
                    memory_mib: 100,
                    ..ok
                },
                &LAPTOP
            ),
            Err(ResourceError::TooLittleMemory { .. })
        ));
        let err = check(
            &Resources {
                disk: 300 * GIB,
                ..ok
            },
            &LAPTOP,
        )
        .unwrap_err();
        assert_eq!(
            err,
            ResourceError::DiskTooLarge {
                want_gib: 300,
                free_gib: 200
            }
        );
        assert!(err.to_string().contains("only 200 GiB is free"), "{err}");
        assert!(matches!(
            check(&Resources { disk: MIB, ..ok }, &LAPTOP),
            Err(ResourceError::DiskTooSmall { .. })
        ));
    }

    #[test]
    fn this_host_is_probed() {
        let dir = tempfile::tempdir().unwrap();
        let host = probe_host(dir.path()).unwrap();
        assert!(host.cpus >= 1);
        assert!(host.memory > 64 * MIB, "{host:?}");
        assert!(host.free_disk > 0, "{host:?}");
        assert!(probe_host(Path::new("/no/such/folder")).is_err());
    }
}
