//! The viewer side of the console connection (the app, or a test): receives scanout
//! buffers, damage and cursor changes, and sends input.

use super::buffer::SharedBuffer;
use super::{ConnError, Message, MSG_LEN};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Arc;
use vmm_sys_util::sock_ctrl_msg::ScmSocket;

/// Buffers kept mapped, most recent first (a guest flips between two or three).
const MAPPINGS: usize = 4;

/// What arrived.
#[derive(Debug)]
pub enum Received {
    /// A scanout's buffer, mapped.
    Scanout {
        /// The message.
        info: Message,
        /// Its pixels (the image starts at the message's `offset`).
        buffer: Arc<SharedBuffer>,
    },
    /// A cursor image (its pixels copied out), or hidden (`pixels` empty).
    Cursor {
        /// The message.
        info: Message,
        /// BGRA pixels.
        pixels: Vec<u8>,
    },
    /// Anything else.
    Other(Message),
}

/// A connection to a device's console socket.
#[derive(Debug)]
pub struct ConsoleClient {
    stream: UnixStream,
    /// Buffers mapped already, by the device's number for them.
    mapped: Vec<(u32, Arc<SharedBuffer>)>,
}

impl ConsoleClient {
    /// Connects to `path`.
    pub fn connect(path: &Path) -> Result<Self, ConnError> {
        Ok(Self {
            stream: UnixStream::connect(path)?,
            mapped: Vec::new(),
        })
    }

    /// A second handle on the same connection, for sending from another thread.
    pub fn try_clone(&self) -> Result<Self, ConnError> {
        Ok(Self {
            stream: self.stream.try_clone()?,
            mapped: Vec::new(),
        })
    }

    /// The socket, to poll it (e.g. from the GTK main loop).
    pub fn stream(&self) -> &UnixStream {
        &self.stream
    }

    /// Sends input to the device.
    pub fn send(&mut self, msg: Message) -> Result<(), ConnError> {
        self.stream.write_all(&msg.encode())?;
        Ok(())
    }

    /// Waits up to `timeout` for the next message; None when none came.
    pub fn recv_timeout(
        &mut self,
        timeout: std::time::Duration,
    ) -> Result<Option<Received>, ConnError> {
        use std::os::fd::AsRawFd;
        let mut fds = libc::pollfd {
            fd: self.stream.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
        // SAFETY: one pollfd, valid for the call, on a socket this client owns.
        let ready = unsafe { libc::poll(&raw mut fds, 1, ms) };
        match ready {
            0 => Ok(None),
            n if n > 0 => self.recv().map(Some),
            _ => {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    Ok(None)
                } else {
                    Err(ConnError::Io(e))
                }
            }
        }
    }

    /// Waits for the next message.
    pub fn recv(&mut self) -> Result<Received, ConnError> {
        let mut buf = [0u8; MSG_LEN];
        let (n, file) = self
            .stream
            .recv_with_fd(&mut buf)
            .map_err(|e| ConnError::Io(std::io::Error::from_raw_os_error(e.errno())))?;
        if n == 0 {
            return Err(ConnError::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
        self.stream.read_exact(&mut buf[n..])?;
        let info = Message::decode(&buf)?;
        match info {
            Message::Scanout {
                width,
                height,
                stride,
                offset,
                buffer: number,
                ..
            } => {
                let file = file.ok_or(ConnError::BadBuffer)?;
                // The image must lie inside the buffer.
                let needed = (height as usize)
                    .checked_sub(1)
                    .and_then(|rows| rows.checked_mul(stride as usize))
                    .and_then(|n| n.checked_add(offset as usize))
                    .and_then(|n| n.checked_add(width as usize * 4))
                    .filter(|_| width > 0 && stride >= width.saturating_mul(4))
                    .ok_or(ConnError::BadBuffer)?;
                let len =
                    usize::try_from(file.metadata()?.len()).map_err(|_| ConnError::BadBuffer)?;
                if needed > len {
                    return Err(ConnError::BadBuffer);
                }
                let known = self
                    .mapped
                    .iter()
                    .position(|(n, b)| *n == number && b.len() == len);
                let buffer = match known {
                    Some(i) => self.mapped.remove(i).1,
                    None => {
                        Arc::new(SharedBuffer::map(file, len).map_err(|_| ConnError::BadBuffer)?)
                    }
                };
                self.mapped.insert(0, (number, buffer.clone()));
                self.mapped.truncate(MAPPINGS);
                Ok(Received::Scanout { info, buffer })
            }
            Message::Cursor { width, height, .. } if width > 0 => {
                let len = width as usize * height as usize * 4;
                let file = file.ok_or(ConnError::BadBuffer)?;
                let buffer = SharedBuffer::map(file, len).map_err(|_| ConnError::BadBuffer)?;
                let mut pixels = vec![0u8; len];
                if !buffer.read(0, &mut pixels) {
                    return Err(ConnError::BadBuffer);
                }
                Ok(Received::Cursor { info, pixels })
            }
            Message::Cursor { .. } => Ok(Received::Cursor {
                info,
                pixels: Vec::new(),
            }),
            other => Ok(Received::Other(other)),
        }
    }
}
