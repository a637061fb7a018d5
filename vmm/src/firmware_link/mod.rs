//! The firmware link: what a 3D VM's firmware needs across the line between the VMM and its
//! graphics process ([`crate::gpu_process`]). Firmware, boot loaders and installers before
//! their own drivers show their screen through ramfb (a framebuffer in guest RAM that the
//! VMM learns of through fw_cfg) and read the PS/2 keyboard (the VMM's i8042); a 3D VM's
//! display and the app's input live in the graphics process. This link carries each to
//! the side that has the other half: the framebuffer's place goes to the graphics process,
//! which draws it on the display, and the keys the app types while the guest has not bound
//! its virtio keyboard come back to the VMM's PS/2 keyboard.
//!
//! # Protocol
//! A Unix stream socket; the graphics process listens (`device gpu --boot-socket PATH`),
//! the VMM connects once per process. Every message is an 8-byte header, a `u32` kind and
//! the `u32` length of what follows, then that many bytes, little-endian; each kind has one
//! length, and no message is longer than [`MAX_PAYLOAD`].
//!
//! VMM to graphics process (trusted: the VMM started the process):
//! - `RAMFB address file_offset width height stride` (`u64 u64 u32 u32 u32`) + the guest
//!   RAM's memfd (`SCM_RIGHTS`, with the first byte): the framebuffer (XRGB8888) is at
//!   guest-physical `address`, which is byte `file_offset` of the memfd. The process maps
//!   just that range, so it needs no vhost-user device to have started first, and a
//!   rebooted machine's new RAM comes with its own message.
//! - `RAMFB_OFF`: no framebuffer (a new machine, until its firmware sets one up).
//!
//! Graphics process to VMM (untrusted: the process parses what the guest sends): `KEY code
//! down` (`u16 u16`, `down` 0 or 1). The VMM hands the code to its PS/2 keyboard, which
//! ignores codes it has no scan code for; anything malformed closes the link, with the
//! reason logged, and the VM runs on.

pub mod gpu_end;
pub mod vmm_end;

#[cfg(test)]
mod tests;

use crate::devices::legacy::ramfb::RamfbError;
use std::fs::File;
use std::io::Read;
use std::os::unix::net::UnixStream;
use vmm_sys_util::sock_ctrl_msg::ScmSocket;

pub use gpu_end::{FirmwareKeys, FirmwareLinkServer};
pub use vmm_end::{FirmwareLink, KeySink};

/// Bytes of every message's header.
pub const HEADER_LEN: usize = 8;
/// The most bytes a message carries after its header.
pub const MAX_PAYLOAD: u32 = 64;

const RAMFB: u32 = 1;
const RAMFB_OFF: u32 = 2;
const KEY: u32 = 16;

/// Why the link failed, or a message on it was refused.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// Socket trouble.
    #[error("The firmware link to the graphics process failed: {0}.")]
    Io(#[from] std::io::Error),
    /// The peer closed the link between messages.
    #[error("The firmware link was closed by the other side.")]
    Closed,
    /// Fewer bytes than the message needs.
    #[error("A firmware link message is cut short: {got} of {needed} bytes.")]
    Truncated {
        /// Bytes the message needs.
        needed: usize,
        /// Bytes there were.
        got: usize,
    },
    /// A header announcing more than a message may carry.
    #[error("A firmware link message announces {0} bytes, more than the {MAX_PAYLOAD} a message may carry.")]
    Oversized(u32),
    /// A kind this protocol does not have.
    #[error("The firmware link sent an unknown message (kind {0}).")]
    Unknown(u32),
    /// A known kind with the wrong length.
    #[error("A firmware link message of kind {kind} carries {len} bytes, which is not that kind's size.")]
    Length {
        /// The kind.
        kind: u32,
        /// Its announced length.
        len: u32,
    },
    /// A field out of its range.
    #[error("A firmware link message is malformed: {0}.")]
    Malformed(&'static str),
    /// A message only the other side sends.
    #[error("The firmware link sent a message meant for the other side (kind {0}).")]
    WrongWay(u32),
    /// A framebuffer came without the memory it lies in.
    #[error(
        "The firmware link described a framebuffer without sending the guest memory it lies in."
    )]
    NoMemory,
    /// The framebuffer cannot be shown.
    #[error(transparent)]
    Ramfb(#[from] RamfbError),
    /// The framebuffer's memory could not be mapped.
    #[error("Cannot map the firmware's framebuffer: {0}.")]
    Map(String),
}

/// Where a framebuffer lies, as the VMM describes it (unchecked: the graphics process
/// checks it against the memory that comes with it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FramebufferAt {
    /// Guest-physical address of the first pixel.
    pub address: u64,
    /// Where that address is in the guest RAM's memfd.
    pub file_offset: u64,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Bytes per row.
    pub stride: u32,
}

/// One message, without its file descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message {
    /// VMM to graphics process: show this framebuffer (the memfd travels beside).
    Ramfb(FramebufferAt),
    /// VMM to graphics process: no framebuffer.
    RamfbOff,
    /// Graphics process to VMM: a key for the PS/2 keyboard, by evdev code.
    Key {
        /// The evdev code.
        code: u16,
        /// Pressed (or repeated) rather than released.
        down: bool,
    },
}

/// The payload length of each kind; None for kinds this protocol does not have.
fn payload_len(kind: u32) -> Option<u32> {
    match kind {
        RAMFB => Some(28),
        RAMFB_OFF => Some(0),
        KEY => Some(4),
        _ => None,
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(w)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

/// Checks a header: the whole message's length, or why it is refused. A stream reader
/// calls it before reading the rest, so an announced length is never trusted.
pub fn check_header(header: &[u8]) -> Result<usize, LinkError> {
    if header.len() < HEADER_LEN {
        return Err(LinkError::Truncated {
            needed: HEADER_LEN,
            got: header.len(),
        });
    }
    let (kind, len) = (u32_at(header, 0), u32_at(header, 4));
    if len > MAX_PAYLOAD {
        return Err(LinkError::Oversized(len));
    }
    let expected = payload_len(kind).ok_or(LinkError::Unknown(kind))?;
    if len != expected {
        return Err(LinkError::Length { kind, len });
    }
    // At most 64: no overflow.
    Ok(HEADER_LEN + len as usize)
}

impl Message {
    /// The message's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(HEADER_LEN + MAX_PAYLOAD as usize);
        let (kind, payload): (u32, Vec<u8>) = match *self {
            Self::Ramfb(at) => {
                let mut p = Vec::with_capacity(28);
                p.extend_from_slice(&at.address.to_le_bytes());
                p.extend_from_slice(&at.file_offset.to_le_bytes());
                for v in [at.width, at.height, at.stride] {
                    p.extend_from_slice(&v.to_le_bytes());
                }
                (RAMFB, p)
            }
            Self::RamfbOff => (RAMFB_OFF, Vec::new()),
            Self::Key { code, down } => {
                let mut p = code.to_le_bytes().to_vec();
                p.extend_from_slice(&u16::from(down).to_le_bytes());
                (KEY, p)
            }
        };
        b.extend_from_slice(&kind.to_le_bytes());
        let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
        b.extend_from_slice(&len.to_le_bytes());
        b.extend_from_slice(&payload);
        b
    }

    /// Reads the message at the start of `bytes`: it and the bytes it took.
    pub fn decode(bytes: &[u8]) -> Result<(Self, usize), LinkError> {
        let total = check_header(bytes)?;
        if bytes.len() < total {
            return Err(LinkError::Truncated {
                needed: total,
                got: bytes.len(),
            });
        }
        let p = &bytes[HEADER_LEN..total];
        let message = match u32_at(bytes, 0) {
            RAMFB => Self::Ramfb(FramebufferAt {
                address: u64_at(p, 0),
                file_offset: u64_at(p, 8),
                width: u32_at(p, 16),
                height: u32_at(p, 20),
                stride: u32_at(p, 24),
            }),
            RAMFB_OFF => Self::RamfbOff,
            // check_header let only known kinds through.
            _ => {
                let code = u16::from_le_bytes([p[0], p[1]]);
                let down = match u16::from_le_bytes([p[2], p[3]]) {
                    0 => false,
                    1 => true,
                    _ => return Err(LinkError::Malformed("a key is neither down (1) nor up (0)")),
                };
                Self::Key { code, down }
            }
        };
        Ok((message, total))
    }

    /// Its kind, as on the wire.
    fn kind(&self) -> u32 {
        match self {
            Self::Ramfb(_) => RAMFB,
            Self::RamfbOff => RAMFB_OFF,
            Self::Key { .. } => KEY,
        }
    }
}

/// Sends `message` (with `file`, for a framebuffer) whole, or says why not.
fn send(stream: &UnixStream, message: &Message, file: Option<&File>) -> Result<(), LinkError> {
    use std::os::fd::AsRawFd;
    let bytes = message.encode();
    let fds: Vec<_> = file.iter().map(|f| f.as_raw_fd()).collect();
    let sent = stream
        .send_with_fds(&[&bytes[..]], &fds)
        .map_err(|e| LinkError::Io(std::io::Error::from_raw_os_error(e.errno())))?;
    if sent != bytes.len() {
        // A stream socket may take part of a message only when its buffer is full: the
        // peer stopped reading, and the rest would be misread.
        return Err(LinkError::Io(std::io::ErrorKind::WriteZero.into()));
    }
    Ok(())
}

/// Reads the next message and the file that came with it, if any.
fn receive(stream: &UnixStream) -> Result<(Message, Option<File>), LinkError> {
    let mut header = [0u8; HEADER_LEN];
    let (n, file) = stream
        .recv_with_fd(&mut header)
        .map_err(|e| LinkError::Io(std::io::Error::from_raw_os_error(e.errno())))?;
    if n == 0 {
        return Err(LinkError::Closed);
    }
    let mut reader = stream;
    reader.read_exact(&mut header[n..])?;
    let total = check_header(&header)?;
    let mut frame = [0u8; HEADER_LEN + MAX_PAYLOAD as usize];
    frame[..HEADER_LEN].copy_from_slice(&header);
    reader.read_exact(&mut frame[HEADER_LEN..total])?;
    let (message, _) = Message::decode(&frame[..total])?;
    Ok((message, file))
}
