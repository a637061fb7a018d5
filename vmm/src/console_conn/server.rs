//! The device side of the console connection: a [`DisplaySink`] that hands the viewer each
//! scanout's shared buffer (the GPU resource's own pixels: nothing is copied here) and tells
//! it what changed, and the listener that attaches viewers one at a time and hands their
//! input to a callback.

use super::buffer::SharedBuffer;
use super::{ConnError, Message, MSG_LEN};
use crate::devices::bus::lock;
use crate::devices::virtio::gpu::display::{Cursor, DisplaySink, Frame};
use crate::one_client::OneClientListener;
use std::collections::BTreeMap;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::{Arc, Mutex};
use vmm_sys_util::sock_ctrl_msg::ScmSocket;

/// What a scanout shows: a part of one shared buffer.
#[derive(PartialEq, Eq)]
struct ScanoutView {
    width: u32,
    height: u32,
    stride: u32,
    format: u32,
    offset: usize,
    buffer_id: u64,
}

struct ScanoutBuffer {
    view: ScanoutView,
    /// The buffer's memfd, to hand to viewers that attach later.
    file: std::fs::File,
}

/// How long a paced viewer may take to say it showed a frame before it gets the next.
const FRAME_DONE_WITHIN: std::time::Duration = std::time::Duration::from_millis(100);

#[derive(Default)]
struct State {
    viewer: Option<UnixStream>,
    scanouts: BTreeMap<u32, ScanoutBuffer>,
    cursor: Option<(u32, Cursor)>,
    /// The viewer says when it has shown a frame (`FRAME_DONE`).
    paced: bool,
    /// When the last update went to a paced viewer that has not shown it yet.
    in_flight: Option<std::time::Instant>,
}

impl State {
    /// Sends to the viewer, letting it go if it cannot take the message.
    fn send(&mut self, msg: Message, fd: Option<&std::fs::File>) {
        let Some(viewer) = &self.viewer else {
            return;
        };
        let bytes = msg.encode();
        let sent = match fd {
            Some(f) => viewer.send_with_fd(&bytes[..], f.as_raw_fd()),
            None => viewer.send_with_fds(&[&bytes[..]], &[]),
        };
        if !matches!(sent, Ok(n) if n == MSG_LEN) {
            log::info!("the display viewer went away");
            self.viewer = None;
        }
    }

    fn announce(&mut self, scanout: u32) {
        let Some(s) = self.scanouts.get(&scanout) else {
            return;
        };
        let v = &s.view;
        let msg = Message::Scanout {
            scanout,
            width: v.width,
            height: v.height,
            stride: v.stride,
            format: v.format,
            offset: u32::try_from(v.offset).unwrap_or(u32::MAX),
            // Low bits suffice: the viewer only compares it with the few it has mapped.
            buffer: u32::try_from(v.buffer_id & u64::from(u32::MAX)).unwrap_or(0),
        };
        let update = Message::Update {
            scanout,
            x: 0,
            y: 0,
            width: v.width,
            height: v.height,
        };
        let file = s.file.try_clone().ok();
        self.send(msg, file.as_ref());
        self.send_update(update);
    }

    /// An update, which a paced viewer must show before it is sent more.
    fn send_update(&mut self, update: Message) {
        if self.paced {
            self.in_flight = Some(std::time::Instant::now());
        }
        self.send(update, None);
    }

    fn send_cursor(&mut self) {
        let Some((scanout, cursor)) = self.cursor.clone() else {
            return;
        };
        match cursor {
            Cursor::Hidden => self.send(
                Message::Cursor {
                    scanout,
                    width: 0,
                    height: 0,
                    hot_x: 0,
                    hot_y: 0,
                },
                None,
            ),
            Cursor::Image {
                width,
                height,
                hot,
                pixels,
            } => {
                let Ok(buf) = SharedBuffer::create(pixels.len()) else {
                    return;
                };
                buf.write(0, &pixels);
                let msg = Message::Cursor {
                    scanout,
                    width,
                    height,
                    hot_x: hot.0,
                    hot_y: hot.1,
                };
                self.send(msg, Some(buf.file()));
            }
        }
    }
}

/// The sink half: give it to the GPU device.
pub struct ConsoleSink {
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for ConsoleSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleSink").finish_non_exhaustive()
    }
}

impl DisplaySink for ConsoleSink {
    fn frame(&mut self, f: &Frame<'_>) {
        let mut state = lock(&self.state);
        let view = ScanoutView {
            width: f.width,
            height: f.height,
            stride: f.stride,
            format: f.format,
            offset: f.offset,
            buffer_id: f.buffer.id(),
        };
        let fresh = state
            .scanouts
            .get(&f.scanout)
            .is_none_or(|s| s.view != view);
        if fresh {
            let Ok(file) = f.buffer.file().try_clone() else {
                log::warn!("cannot share the scanout's buffer with the viewer");
                return;
            };
            state
                .scanouts
                .insert(f.scanout, ScanoutBuffer { view, file });
            state.announce(f.scanout);
        } else {
            let (x, y, width, height) = f.damage;
            state.send_update(Message::Update {
                scanout: f.scanout,
                x,
                y,
                width,
                height,
            });
        }
    }

    fn disabled(&mut self, scanout: u32) {
        let mut state = lock(&self.state);
        if state.scanouts.remove(&scanout).is_some() {
            state.send(Message::Disabled { scanout }, None);
        }
    }

    fn cursor(&mut self, scanout: u32, cursor: &Cursor) {
        let mut state = lock(&self.state);
        state.cursor = Some((scanout, cursor.clone()));
        state.send_cursor();
    }

    fn cursor_moved(&mut self, scanout: u32, x: u32, y: u32) {
        lock(&self.state).send(Message::CursorPos { scanout, x, y }, None);
    }

    fn wants_frame(&self, _scanout: u32) -> bool {
        let state = lock(&self.state);
        state.viewer.is_none()
            || state
                .in_flight
                .is_none_or(|sent| sent.elapsed() >= FRAME_DONE_WITHIN)
    }
}

/// The listening half: owns the socket and the thread serving viewers; stops on drop.
pub struct ConsoleServer {
    state: Arc<Mutex<State>>,
    _listener: OneClientListener,
}

impl std::fmt::Debug for ConsoleServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleServer").finish_non_exhaustive()
    }
}

impl ConsoleServer {
    /// Listens on `path`; what viewers send goes to `on_input` (on the server's thread).
    pub fn listen(
        path: &Path,
        on_input: impl Fn(Message) + Send + 'static,
    ) -> Result<(Self, ConsoleSink), ConnError> {
        let state = Arc::new(Mutex::new(State::default()));
        let st = state.clone();
        let listener = OneClientListener::listen(path, "console-conn", move |stream| {
            serve(stream, &st, &on_input);
        })?;
        Ok((
            Self {
                state: state.clone(),
                _listener: listener,
            },
            ConsoleSink { state },
        ))
    }

    /// Whether a viewer is attached.
    pub fn viewer_attached(&self) -> bool {
        lock(&self.state).viewer.is_some()
    }
}

/// Serves one viewer: shows it the current picture, then takes its messages until it goes.
fn serve(stream: UnixStream, state: &Mutex<State>, on_input: &dyn Fn(Message)) {
    // A viewer that stops reading is let go rather than stalling the device.
    let _ = stream.set_write_timeout(Some(std::time::Duration::from_secs(1)));
    let Ok(mut reader) = stream.try_clone() else {
        return;
    };
    {
        let mut s = lock(state);
        s.viewer = Some(stream);
        (s.paced, s.in_flight) = (false, None);
        let scanouts: Vec<u32> = s.scanouts.keys().copied().collect();
        for scanout in scanouts {
            s.announce(scanout);
        }
        s.send_cursor();
    }
    let mut buf = [0u8; MSG_LEN];
    while reader.read_exact(&mut buf).is_ok() {
        match Message::decode(&buf) {
            Ok(Message::FrameDone) => {
                {
                    let mut s = lock(state);
                    (s.paced, s.in_flight) = (true, None);
                }
                on_input(Message::FrameDone);
            }
            Ok(msg) => on_input(msg),
            Err(e) => {
                log::warn!("{e}");
                break;
            }
        }
    }
    lock(state).viewer = None;
}
