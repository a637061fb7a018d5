//! The VMM's end of the firmware link: it tells the graphics process where the firmware's
//! framebuffer is, and hands the keys that come back to the machine's PS/2 keyboard. What
//! the process sends is untrusted: one malformed message closes the link (logged), and the
//! VM runs on without it.

use super::{receive, send, FramebufferAt, LinkError, Message};
use crate::devices::bus::lock;
use crate::devices::legacy::ramfb::RamfbConfig;
use crate::memory::GuestMemory;
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;
use vm_memory::{GuestAddress, GuestMemoryBackend, GuestMemoryRegion};

/// Where the keys the graphics process sends go: the current machine's PS/2 keyboard.
/// Called on the link's reader thread.
pub type KeySink = Arc<dyn Fn(u16, bool) + Send + Sync>;

/// The highest evdev key code (`KEY_MAX`); anything above is no key and is dropped here.
const KEY_MAX: u16 = 0x2ff;

/// How long a send may wait for a process that stopped reading: sends come from vCPU
/// threads (the firmware writing `etc/ramfb`).
const SEND_WITHIN: Duration = Duration::from_millis(200);

struct Connection {
    stream: UnixStream,
    reader: JoinHandle<()>,
}

impl Connection {
    /// Cuts the connection and waits for its reader.
    fn close(self) {
        let _ = self.stream.shutdown(Shutdown::Both);
        let _ = self.reader.join();
    }
}

struct Shared {
    keys: KeySink,
    connection: Mutex<Option<Connection>>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        if let Some(c) = lock(&self.connection).take() {
            c.close();
        }
    }
}

/// The VMM's end, shared by the machines of one VM: each new graphics process is
/// connected through [`FirmwareLink::connect`], and each machine's `etc/ramfb` sends
/// through a clone.
#[derive(Clone)]
pub struct FirmwareLink {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for FirmwareLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FirmwareLink")
            .field("connected", &self.connected())
            .finish_non_exhaustive()
    }
}

impl FirmwareLink {
    /// Not connected yet; keys that come later go to `keys`.
    pub fn new(keys: KeySink) -> Self {
        Self {
            shared: Arc::new(Shared {
                keys,
                connection: Mutex::new(None),
            }),
        }
    }

    /// Connects to a graphics process listening on `socket`, replacing any earlier
    /// connection.
    pub fn connect(&self, socket: &Path) -> Result<(), LinkError> {
        self.attach(UnixStream::connect(socket)?)
    }

    /// Uses `stream` as the connection, replacing any earlier one.
    pub fn attach(&self, stream: UnixStream) -> Result<(), LinkError> {
        stream.set_write_timeout(Some(SEND_WITHIN))?;
        let read_half = stream.try_clone()?;
        let keys = self.shared.keys.clone();
        let reader = std::thread::Builder::new()
            .name("firmware-link".into())
            .spawn(move || take_keys(&read_half, keys.as_ref()))?;
        let old = lock(&self.shared.connection).replace(Connection { stream, reader });
        if let Some(old) = old {
            old.close();
        }
        Ok(())
    }

    /// Whether a connection is up.
    pub fn connected(&self) -> bool {
        lock(&self.shared.connection).is_some()
    }

    /// Tells the graphics process to show `config`'s framebuffer, which lies in `memory`.
    pub fn show_ramfb(&self, config: &RamfbConfig, memory: &GuestMemory) {
        let Some((file, file_offset)) = memfd_at(memory, config) else {
            log::warn!(
                "the firmware's framebuffer at {:#x} is not in one piece of shareable guest memory; it is not shown",
                config.address
            );
            return;
        };
        let at = FramebufferAt {
            address: config.address,
            file_offset,
            width: config.width,
            height: config.height,
            stride: config.stride,
        };
        self.send(&Message::Ramfb(at), Some(file));
    }

    /// Tells the graphics process there is no framebuffer (a new machine).
    pub fn hide_ramfb(&self) {
        self.send(&Message::RamfbOff, None);
    }

    fn send(&self, message: &Message, file: Option<&std::fs::File>) {
        let mut connection = lock(&self.shared.connection);
        let Some(c) = connection.as_ref() else {
            return;
        };
        if let Err(e) = send(&c.stream, message, file) {
            log::warn!("{e} The VM's boot display stops.");
            if let Some(c) = connection.take() {
                drop(connection);
                c.close();
            }
        }
    }
}

/// The memfd holding `config`'s framebuffer and where in it the framebuffer starts; None
/// when it is not inside one file-backed region.
fn memfd_at<'m>(memory: &'m GuestMemory, config: &RamfbConfig) -> Option<(&'m std::fs::File, u64)> {
    let region = memory.find_region(GuestAddress(config.address))?;
    let into = config.address.checked_sub(region.start_addr().0)?;
    if into.checked_add(config.byte_len())? > region.len() {
        return None;
    }
    let file = region.file_offset()?;
    Some((file.file(), file.start().checked_add(into)?))
}

/// The reader: hands each key to `keys` until the process goes or misbehaves.
fn take_keys(stream: &UnixStream, keys: &(dyn Fn(u16, bool) + Send + Sync)) {
    loop {
        match receive(stream) {
            // Codes without a PS/2 scan code are ignored by the keyboard itself.
            Ok((Message::Key { code, down }, _)) if code <= KEY_MAX => keys(code, down),
            Ok((Message::Key { code, .. }, _)) => {
                log::debug!("the graphics process sent key code {code}, which is no key");
            }
            Ok((other, _)) => {
                log::warn!(
                    "{} Keys typed during boot stop.",
                    LinkError::WrongWay(other.kind())
                );
                break;
            }
            Err(LinkError::Closed) => break,
            Err(e) => {
                log::warn!("{e} Keys typed during boot stop; the VM runs on.");
                break;
            }
        }
    }
    // Whatever the reason, the process learns the link is gone.
    let _ = stream.shutdown(Shutdown::Both);
}
