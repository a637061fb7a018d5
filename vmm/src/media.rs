//! A VM's CD drives as the host sees them: opened from the definition once (their discs
//! outlive guest reboots, as a PC's do), put on a fresh virtio-scsi adapter for each
//! machine, and changed by the host's Eject and Insert commands. Every change, the guest's
//! own ejects included, is reported as [`VmEvent::DiscChanged`], so the app can show what
//! is in each drive.

use crate::api::{EventSender, VmEvent};
use crate::config::CdromConfig;
use crate::devices::bus::lock;
use crate::devices::scsi::{Cdrom, EjectError, Medium, MediumError};
use crate::devices::virtio::scsi::{Drive, Scsi};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// Why a disc could not go in or come out.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// The drive number names no drive.
    #[error("This VM has no CD drive {drive}; it has {count}.")]
    NoDrive {
        /// Asked for (0 for the first).
        drive: usize,
        /// How many there are.
        count: usize,
    },
    /// The image could not be opened.
    #[error(transparent)]
    Medium(#[from] MediumError),
    /// The guest locked the drive.
    #[error(transparent)]
    Eject(#[from] EjectError),
}

/// The drives, in the order the guest sees them.
#[derive(Debug)]
pub(crate) struct Drives {
    drives: Vec<Drive>,
    events: EventSender,
}

/// A drive with the disc named in `config`, or an empty one; its serial number tells
/// drives apart in the guest's `/dev/disk/by-id`.
pub fn drive(index: usize, config: &CdromConfig) -> Result<Drive, MediumError> {
    let medium = config.path.as_deref().map(Medium::open).transpose()?;
    let cdrom = Cdrom::new(medium).with_serial(&format!("PHYLLOME-CD{index}"));
    Ok(Arc::new(Mutex::new(cdrom)))
}

impl Drives {
    /// Opens every drive's disc; the first that cannot be opened is the error.
    pub(crate) fn open(config: &[CdromConfig], events: EventSender) -> Result<Self, MediumError> {
        let drives = config
            .iter()
            .enumerate()
            .map(|(i, c)| drive(i, c))
            .collect::<Result<_, _>>()?;
        Ok(Self { drives, events })
    }

    /// The adapter for a new machine, or none for a VM without drives: as at power-on,
    /// each drive forgets the guest's lock and reports a reset.
    pub(crate) fn adapter(&self) -> Option<Scsi> {
        if self.drives.is_empty() {
            return None;
        }
        for d in &self.drives {
            lock(d).reset();
        }
        let events = self.events.clone();
        Some(
            Scsi::new(self.drives.clone()).with_eject_notice(Arc::new(move |drive| {
                events.send(VmEvent::DiscChanged { drive, disc: None });
            })),
        )
    }

    fn get(&self, drive: usize) -> Result<&Drive, MediaError> {
        self.drives.get(drive).ok_or(MediaError::NoDrive {
            drive,
            count: self.drives.len(),
        })
    }

    /// Takes the disc out (see [`Cdrom::eject`]); a drive already empty is fine.
    pub(crate) fn eject(&self, drive: usize, force: bool) -> Result<(), MediaError> {
        lock(self.get(drive)?).eject(force)?;
        self.events.send(VmEvent::DiscChanged { drive, disc: None });
        Ok(())
    }

    /// Puts the image at `path` in, in place of any disc there. A disc the guest locked in
    /// stays: the guest is asked to eject it, and this fails.
    pub(crate) fn insert(&self, drive: usize, path: &Path) -> Result<(), MediaError> {
        let slot = self.get(drive)?;
        let medium = Medium::open(path)?;
        let mut d = lock(slot);
        d.eject(false)?;
        d.insert(medium);
        drop(d);
        self.events.send(VmEvent::DiscChanged {
            drive,
            disc: Some(path.to_path_buf()),
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::sync::mpsc::channel;

    fn image(dir: &Path, name: &str) -> std::path::PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, vec![7u8; 4096]).unwrap();
        path
    }

    #[test]
    fn discs_go_in_and_out_by_command_and_each_change_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let first = image(dir.path(), "first.iso");
        let second = image(dir.path(), "second.iso");
        let (tx, rx) = channel();
        let events = EventSender {
            tx,
            ready: Arc::new(vmm_sys_util::eventfd::EventFd::new(0).unwrap()),
        };
        let config = [
            CdromConfig {
                path: Some(first.clone()),
            },
            CdromConfig { path: None },
        ];
        let drives = Drives::open(&config, events).unwrap();
        assert!(drives.adapter().is_some());
        // An empty drive takes a disc; the full one gives its disc up.
        drives.insert(1, &second).unwrap();
        drives.eject(0, false).unwrap();
        let seen: Vec<VmEvent> = rx.try_iter().collect();
        assert_eq!(
            seen,
            vec![
                VmEvent::DiscChanged {
                    drive: 1,
                    disc: Some(second.clone())
                },
                VmEvent::DiscChanged {
                    drive: 0,
                    disc: None
                },
            ]
        );
        assert!(lock(&drives.drives[0]).medium().is_none());
        assert_eq!(
            lock(&drives.drives[1]).medium().unwrap().path(),
            second.as_path()
        );
        // Mistakes are sentences, and change nothing.
        let e = drives.insert(2, &second).unwrap_err();
        assert_eq!(e.to_string(), "This VM has no CD drive 2; it has 2.");
        let e = drives.insert(0, &dir.path().join("gone.iso")).unwrap_err();
        assert!(e.to_string().starts_with("Cannot open the CD image"), "{e}");
        assert!(rx.try_iter().next().is_none());
    }

    #[test]
    fn a_locked_drive_keeps_its_disc_unless_forced() {
        let dir = tempfile::tempdir().unwrap();
        let first = image(dir.path(), "first.iso");
        let (tx, rx) = channel();
        let events = EventSender {
            tx,
            ready: Arc::new(vmm_sys_util::eventfd::EventFd::new(0).unwrap()),
        };
        let drives = Drives::open(&[CdromConfig { path: Some(first) }], events).unwrap();
        let mut sink = Vec::new();
        // PREVENT ALLOW MEDIUM REMOVAL, prevent=1, after the power-on attention.
        let mut d = lock(&drives.drives[0]);
        d.execute(&[0x00; 6], &[], &mut sink, 0);
        assert_eq!(
            d.execute(&[0x1e, 0, 0, 0, 1, 0], &[], &mut sink, 0).status,
            0
        );
        drop(d);
        let e = drives.eject(0, false).unwrap_err();
        assert_eq!(
            e.to_string(),
            "The guest has locked the CD drive; eject it from the guest, or force the eject."
        );
        assert!(rx.try_iter().next().is_none());
        drives.eject(0, true).unwrap();
        assert_eq!(
            rx.try_iter().collect::<Vec<_>>(),
            vec![VmEvent::DiscChanged {
                drive: 0,
                disc: None
            }]
        );
    }
}
