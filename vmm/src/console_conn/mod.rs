//! The console connection: how the guest's screen leaves the GPU device and how input
//! comes back, the same whether the device runs in the VMM's process or in its own.
//!
//! # Protocol
//! A Unix stream socket; the device side listens, one viewer (the app) at a time connects.
//! Every message is [`MSG_LEN`] bytes: a `u32` kind and seven `u32` arguments, little-endian.
//! A message that carries a file descriptor (a memfd) sends it with its first byte
//! (`SCM_RIGHTS`).
//!
//! Device to viewer:
//! - `SCANOUT scanout width height stride format offset buffer` + memfd: the scanout's
//!   pixels now live in this shared buffer (the GPU resource itself), the image starting at
//!   byte `offset`, rows `stride` bytes apart, in virtio-gpu `format`. `buffer` numbers the
//!   memfd: a viewer that has it mapped already may keep its mapping (guests flip between a
//!   few buffers). Sent when a scanout shows another buffer or changes size, and to each
//!   viewer when it connects, followed by a whole-frame `UPDATE`.
//! - `UPDATE scanout x y width height`: that rectangle of the buffer changed. Frames are
//!   written into the buffer in place, so a viewer reads the damaged rectangle and
//!   uploads it; no pixels cross the socket.
//! - `DISABLED scanout`: the scanout is off.
//! - `CURSOR scanout width height hot_x hot_y` + memfd of `width * height * 4` bytes BGRA, or
//!   `width == 0` without a memfd: hidden.
//! - `CURSOR_POS scanout x y`.
//!
//! Viewer to device: `KEY code down`, `POINTER x y` (0..=32767 each), `BUTTON code down`,
//! `RESIZE scanout width height`, `WHEEL dx dy` (wheel clicks, two's complement `i32`:
//! `dy` positive scrolls up, `dx` positive right), and `FRAME_DONE`: the viewer has shown
//! what the last `UPDATE` said. A viewer that sends it is paced: after each `UPDATE` the
//! device holds later damage back, merged, until `FRAME_DONE` comes (or 100 ms pass), so a
//! guest drawing faster than the screen is not read back frame by frame for nothing. A
//! viewer that never sends it gets every update.
//!
//! In-process viewers use the same [`Message`]s over a channel ([`server`] and [`client`]
//! hold the socket ends).

pub mod buffer;
pub mod client;
pub mod server;

/// Bytes in every message.
pub const MSG_LEN: usize = 32;

const SCANOUT: u32 = 1;
const UPDATE: u32 = 2;
const DISABLED: u32 = 3;
const CURSOR: u32 = 4;
const CURSOR_POS: u32 = 5;
const KEY: u32 = 16;
const POINTER: u32 = 17;
const BUTTON: u32 = 18;
const RESIZE: u32 = 19;
const WHEEL: u32 = 20;
const FRAME_DONE: u32 = 21;

/// Why a connection failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    /// Socket trouble.
    #[error("The display connection failed: {0}.")]
    Io(#[from] std::io::Error),
    /// The peer sent something that is not a message of this protocol.
    #[error("The display connection sent an unknown message (kind {0}).")]
    Unknown(u32),
    /// A message that needs a buffer came without one, or with a buffer too small.
    #[error("The display connection sent a frame buffer that does not fit its size.")]
    BadBuffer,
}

/// One message, without its file descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message {
    /// A scanout's buffer (the memfd travels beside).
    Scanout {
        /// Scanout.
        scanout: u32,
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
        /// Bytes per row.
        stride: u32,
        /// virtio-gpu format.
        format: u32,
        /// Where the image starts in the buffer.
        offset: u32,
        /// The buffer's number.
        buffer: u32,
    },
    /// Damage.
    Update {
        /// Scanout.
        scanout: u32,
        /// Left.
        x: u32,
        /// Top.
        y: u32,
        /// Width.
        width: u32,
        /// Height.
        height: u32,
    },
    /// A scanout went off.
    Disabled {
        /// Scanout.
        scanout: u32,
    },
    /// A cursor image (memfd beside), or hidden when `width` is 0.
    Cursor {
        /// Scanout.
        scanout: u32,
        /// Width.
        width: u32,
        /// Height.
        height: u32,
        /// Hot spot x.
        hot_x: u32,
        /// Hot spot y.
        hot_y: u32,
    },
    /// The cursor moved.
    CursorPos {
        /// Scanout.
        scanout: u32,
        /// x.
        x: u32,
        /// y.
        y: u32,
    },
    /// A key (evdev code).
    Key {
        /// Code.
        code: u16,
        /// Pressed.
        down: bool,
    },
    /// The absolute pointer.
    Pointer {
        /// 0..=32767.
        x: u32,
        /// 0..=32767.
        y: u32,
    },
    /// A pointer button (evdev code).
    Button {
        /// Code.
        code: u16,
        /// Pressed.
        down: bool,
    },
    /// Wheel clicks: `dy` positive is up (away from the user), `dx` positive is right.
    Wheel {
        /// Horizontal clicks.
        dx: i32,
        /// Vertical clicks.
        dy: i32,
    },
    /// The viewer has shown the last update and can take the next.
    FrameDone,
    /// The viewer asks for a display size.
    Resize {
        /// Scanout.
        scanout: u32,
        /// Width.
        width: u32,
        /// Height.
        height: u32,
    },
}

impl Message {
    /// The wire form.
    pub fn encode(self) -> [u8; MSG_LEN] {
        let w: [u32; 8] = match self {
            Self::Scanout {
                scanout,
                width,
                height,
                stride,
                format,
                offset,
                buffer,
            } => [
                SCANOUT, scanout, width, height, stride, format, offset, buffer,
            ],
            Self::Update {
                scanout,
                x,
                y,
                width,
                height,
            } => [UPDATE, scanout, x, y, width, height, 0, 0],
            Self::Disabled { scanout } => [DISABLED, scanout, 0, 0, 0, 0, 0, 0],
            Self::Cursor {
                scanout,
                width,
                height,
                hot_x,
                hot_y,
            } => [CURSOR, scanout, width, height, hot_x, hot_y, 0, 0],
            Self::CursorPos { scanout, x, y } => [CURSOR_POS, scanout, x, y, 0, 0, 0, 0],
            Self::Key { code, down } => [KEY, u32::from(code), u32::from(down), 0, 0, 0, 0, 0],
            Self::Pointer { x, y } => [POINTER, x, y, 0, 0, 0, 0, 0],
            Self::Button { code, down } => {
                [BUTTON, u32::from(code), u32::from(down), 0, 0, 0, 0, 0]
            }
            Self::Resize {
                scanout,
                width,
                height,
            } => [RESIZE, scanout, width, height, 0, 0, 0, 0],
            Self::FrameDone => [FRAME_DONE, 0, 0, 0, 0, 0, 0, 0],
            Self::Wheel { dx, dy } => [
                WHEEL,
                u32::from_ne_bytes(dx.to_ne_bytes()),
                u32::from_ne_bytes(dy.to_ne_bytes()),
                0,
                0,
                0,
                0,
                0,
            ],
        };
        let mut b = [0u8; MSG_LEN];
        for (i, v) in w.iter().enumerate() {
            b[i * 4..i * 4 + 4].copy_from_slice(&v.to_le_bytes());
        }
        b
    }

    /// Parses the wire form; unknown kinds are an error (the peer speaks another version).
    pub fn decode(b: &[u8; MSG_LEN]) -> Result<Self, ConnError> {
        let w = |i: usize| u32::from_le_bytes([b[i * 4], b[i * 4 + 1], b[i * 4 + 2], b[i * 4 + 3]]);
        let code = || u16::try_from(w(1)).unwrap_or(u16::MAX);
        Ok(match w(0) {
            SCANOUT => Self::Scanout {
                scanout: w(1),
                width: w(2),
                height: w(3),
                stride: w(4),
                format: w(5),
                offset: w(6),
                buffer: w(7),
            },
            UPDATE => Self::Update {
                scanout: w(1),
                x: w(2),
                y: w(3),
                width: w(4),
                height: w(5),
            },
            DISABLED => Self::Disabled { scanout: w(1) },
            CURSOR => Self::Cursor {
                scanout: w(1),
                width: w(2),
                height: w(3),
                hot_x: w(4),
                hot_y: w(5),
            },
            CURSOR_POS => Self::CursorPos {
                scanout: w(1),
                x: w(2),
                y: w(3),
            },
            KEY => Self::Key {
                code: code(),
                down: w(2) != 0,
            },
            POINTER => Self::Pointer { x: w(1), y: w(2) },
            BUTTON => Self::Button {
                code: code(),
                down: w(2) != 0,
            },
            RESIZE => Self::Resize {
                scanout: w(1),
                width: w(2),
                height: w(3),
            },
            WHEEL => Self::Wheel {
                dx: i32::from_ne_bytes(w(1).to_ne_bytes()),
                dy: i32::from_ne_bytes(w(2).to_ne_bytes()),
            },
            FRAME_DONE => Self::FrameDone,
            other => return Err(ConnError::Unknown(other)),
        })
    }
}

#[cfg(test)]
mod tests;
