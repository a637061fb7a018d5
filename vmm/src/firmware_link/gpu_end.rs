//! The graphics process's end of the firmware link: it maps the framebuffer the VMM
//! describes and shows it on this process's display with the same worker as an in-process
//! GPU ([`crate::devices::legacy::ramfb`]), and sends the VMM the keys the app types while
//! the guest has not bound its virtio keyboard.

use super::{receive, send, FramebufferAt, LinkError, Message};
use crate::devices::bus::lock;
use crate::devices::legacy::ramfb::{Ramfb, RamfbConfig, RamfbError, RamfbWorker};
use crate::devices::virtio::gpu::Gpu;
use crate::memory::GuestMemory;
use crate::one_client::OneClientListener;
use std::fs::File;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use vm_memory::{FileOffset, GuestAddress, GuestMemoryMmap};

/// Guest RAM regions, and so their places in the memfd, start on page boundaries.
const PAGE: u64 = 4096;

/// How long sending a key may wait for a VMM that stopped reading.
const SEND_WITHIN: Duration = Duration::from_millis(200);

/// The way to the VMM's PS/2 keyboard, while a VMM is connected (cloneable, any thread).
#[derive(Debug, Clone, Default)]
pub struct FirmwareKeys {
    vmm: Arc<Mutex<Option<UnixStream>>>,
}

impl FirmwareKeys {
    /// Sends a key (evdev `code`, `down` or up) to the VMM; false when no VMM is connected
    /// or it did not take it.
    pub fn key(&self, code: u16, down: bool) -> bool {
        let mut vmm = lock(&self.vmm);
        let Some(stream) = vmm.as_ref() else {
            return false;
        };
        match send(stream, &Message::Key { code, down }, None) {
            Ok(()) => true,
            Err(e) => {
                log::warn!("{e} Keys go to the virtio keyboard.");
                *vmm = None;
                false
            }
        }
    }

    /// Sends keys to `stream` from now on (None: nowhere).
    pub(crate) fn attach(&self, stream: Option<UnixStream>) {
        *lock(&self.vmm) = stream;
    }
}

/// The listening end: owns the socket and the thread serving the VMM; stops on drop.
#[derive(Debug)]
pub struct FirmwareLinkServer {
    _listener: OneClientListener,
}

impl FirmwareLinkServer {
    /// Listens on `path`; the framebuffers a VMM describes are shown on `gpu`'s display,
    /// and `keys` reaches that VMM while it is connected.
    pub fn listen(path: &Path, gpu: Arc<Mutex<Gpu>>, keys: FirmwareKeys) -> std::io::Result<Self> {
        let listener = OneClientListener::listen(path, "firmware-link", move |stream| {
            serve_vmm(&stream, &gpu, &keys);
        })?;
        Ok(Self {
            _listener: listener,
        })
    }
}

/// Serves one VMM until it goes: framebuffers to show, and the way back for keys.
fn serve_vmm(stream: &UnixStream, gpu: &Arc<Mutex<Gpu>>, keys: &FirmwareKeys) {
    let _ = stream.set_write_timeout(Some(SEND_WITHIN));
    keys.attach(stream.try_clone().ok());
    let ramfb = Ramfb::new();
    let mut worker: Option<RamfbWorker> = None;
    loop {
        match receive(stream) {
            Ok((Message::Ramfb(at), file)) => {
                let mapped = file
                    .ok_or(LinkError::NoMemory)
                    .and_then(|f| map_framebuffer(&at, f));
                match mapped {
                    Ok((config, memory)) => {
                        // The old worker reads the old mapping: it stops first.
                        drop(worker.take());
                        ramfb.set(Some(config));
                        worker = ramfb
                            .show_on(memory, gpu.clone())
                            .map_err(|e| log::warn!("Cannot start the boot display: {e}."))
                            .ok();
                    }
                    // The display keeps what it had, as with a bad `etc/ramfb`.
                    Err(e) => log::warn!("{e}"),
                }
            }
            Ok((Message::RamfbOff, _)) => {
                drop(worker.take());
                ramfb.set(None);
            }
            Ok((other, _)) => {
                log::warn!("{}", LinkError::WrongWay(other.kind()));
                break;
            }
            Err(LinkError::Closed) => break,
            Err(e) => {
                log::warn!("{e}");
                break;
            }
        }
    }
    drop(worker);
    keys.attach(None);
}

/// Maps the framebuffer `at` describes from `file` (guest RAM's memfd), after checking its
/// sizes and that it lies inside the file: the checked description and the mapping, which
/// reads as guest memory holding just the framebuffer.
pub fn map_framebuffer(
    at: &FramebufferAt,
    file: File,
) -> Result<(RamfbConfig, GuestMemory), LinkError> {
    let config = RamfbConfig::new(at.address, at.width, at.height, at.stride)?;
    let len = config.byte_len();
    let outside = || RamfbError::OutsideRam {
        address: at.address,
        len,
    };
    // mmap() takes whole pages of the file: start at the page holding the first pixel.
    let head = at.file_offset % PAGE;
    if at.address % PAGE != head {
        return Err(LinkError::Malformed(
            "the framebuffer's address and its place in guest memory disagree within a page",
        ));
    }
    let start = at.address - head;
    let file_start = at.file_offset - head;
    let map_len = len.checked_add(head).ok_or_else(outside)?;
    // Pages past the file's end would fault when read: the whole range must be inside.
    let file_len = file.metadata()?.len();
    let inside = file_start
        .checked_add(map_len)
        .is_some_and(|end| end <= file_len)
        && start.checked_add(map_len).is_some();
    let map_bytes = usize::try_from(map_len).ok().filter(|_| inside);
    let Some(map_bytes) = map_bytes else {
        return Err(outside().into());
    };
    let memory = GuestMemoryMmap::from_ranges_with_files([(
        GuestAddress(start),
        map_bytes,
        Some(FileOffset::new(file, file_start)),
    )])
    .map_err(|e| LinkError::Map(e.to_string()))?;
    config.check_inside(&memory)?;
    Ok((config, memory))
}
