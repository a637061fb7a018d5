//! The display's reader side, off the GTK main loop: receives the console connection's
//! messages and turns each update into the pixels the window needs, copying out of the
//! shared buffer only the damaged rectangle (or, when damage has piled up, one whole
//! frame). This copy is the only one on the app's side; GTK then uploads the bytes as they
//! are. The window paces it: while the window is busy, damage is merged and held.

use crate::screen::Pixels;
use phyllome_vmm::console_conn::buffer::SharedBuffer;
use phyllome_vmm::console_conn::client::{ConsoleClient, Received};
use phyllome_vmm::console_conn::{ConnError, Message};
use relm4::gtk::gdk;
use std::sync::atomic::{AtomicBool, Ordering};

/// virtio-gpu formats (the spec's `VIRTIO_GPU_FORMAT_*`).
const B8G8R8A8: u32 = 1;
const B8G8R8X8: u32 = 2;
const A8R8G8B8: u32 = 3;
const X8R8G8B8: u32 = 4;
const R8G8B8A8: u32 = 67;
const X8B8G8R8: u32 = 68;
const A8B8G8R8: u32 = 121;
const R8G8B8X8: u32 = 134;

/// The GDK memory format of a virtio-gpu format, and which byte of a pixel holds alpha
/// (made opaque: X formats leave it undefined, and the guest's screen has no holes).
pub fn layout(format: u32) -> Option<(gdk::MemoryFormat, usize)> {
    Some(match format {
        B8G8R8A8 | B8G8R8X8 => (gdk::MemoryFormat::B8g8r8a8, 3),
        A8R8G8B8 | X8R8G8B8 => (gdk::MemoryFormat::A8r8g8b8, 0),
        R8G8B8A8 | R8G8B8X8 => (gdk::MemoryFormat::R8g8b8a8, 3),
        A8B8G8R8 | X8B8G8R8 => (gdk::MemoryFormat::A8b8g8r8, 0),
        _ => return None,
    })
}

/// The scanout being shown.
#[derive(Debug)]
pub struct Scanout {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Bytes per row in the buffer.
    pub stride: u32,
    /// Its GDK format and alpha byte.
    pub layout: (gdk::MemoryFormat, usize),
    /// Where the image starts in the buffer.
    pub offset: usize,
    /// The shared pixels.
    pub buffer: std::sync::Arc<SharedBuffer>,
}

impl Scanout {
    /// Copies the rectangle (clipped to the frame) into tight rows with opaque alpha; None
    /// when nothing of it is inside or the buffer is shorter than its size says.
    pub fn copy(&self, x: u32, y: u32, width: u32, height: u32) -> Option<Pixels> {
        let x_end = x.saturating_add(width).min(self.width);
        let y_end = y.saturating_add(height).min(self.height);
        if x >= x_end || y >= y_end {
            return None;
        }
        let (w, h) = (x_end - x, y_end - y);
        let row = w as usize * 4;
        let mut bytes = vec![0u8; row * h as usize];
        for (i, out) in bytes.chunks_exact_mut(row).enumerate() {
            let offset = self.offset + (y as usize + i) * self.stride as usize + x as usize * 4;
            if !self.buffer.read(offset, out) {
                return None;
            }
        }
        let alpha = self.layout.1;
        for px in bytes.chunks_exact_mut(4) {
            px[alpha] = 0xff;
        }
        Some(Pixels {
            width: w,
            height: h,
            stride: w * 4,
            format: self.layout.0,
            bytes,
        })
    }

    /// The whole frame.
    pub fn copy_all(&self) -> Option<Pixels> {
        self.copy(0, 0, self.width, self.height)
    }
}

/// Decides, update by update, whether to send the damaged rectangle or a whole frame:
/// a rectangle covering half the frame or more goes as a frame (one texture is cheaper
/// than a big patch over an old base), and so does the update after many patches or after
/// patches adding up to a frame's area (so that the window never draws a long pile).
#[derive(Debug, Default)]
pub struct Damage {
    patches: u32,
    area: u64,
    /// The next update must be a whole frame (a new scanout, or a viewer that just came).
    force_full: bool,
}

/// Patches drawn over one base at most.
pub const MAX_PATCHES: u32 = 32;

impl Damage {
    /// The next update will be sent whole.
    pub fn reset(&mut self) {
        self.force_full = true;
    }

    /// Whether an update of `rect_area` pixels of a `frame_area`-pixel frame goes whole.
    pub fn whole_frame(&mut self, rect_area: u64, frame_area: u64) -> bool {
        let whole = self.force_full
            || rect_area.saturating_mul(2) >= frame_area
            || self.patches >= MAX_PATCHES
            || self.area.saturating_add(rect_area) >= frame_area;
        if whole {
            *self = Self::default();
        } else {
            self.patches += 1;
            self.area += rect_area;
        }
        whole
    }
}

/// What the reader hands the window.
#[derive(Debug)]
pub enum FrameEvent {
    /// A whole new frame.
    Frame(Pixels),
    /// A changed rectangle at (x, y).
    Patch(u32, u32, Pixels),
    /// The guest's cursor image and hot spot, or hidden.
    Cursor(Option<(Pixels, i32, i32)>),
}

/// How soon the reader looks again for damage it held while the window was busy.
const HELD_TICK: std::time::Duration = std::time::Duration::from_millis(4);

/// Damage waiting for the window, as a bounding box (x0, y0, x1, y1).
type Held = Option<(u32, u32, u32, u32)>;

fn hold(held: Held, x: u32, y: u32, width: u32, height: u32) -> Held {
    let (x1, y1) = (x.saturating_add(width), y.saturating_add(height));
    Some(match held {
        None => (x, y, x1, y1),
        Some((a, b, c, d)) => (a.min(x), b.min(y), c.max(x1), d.max(y1)),
    })
}

/// Reads the connection until it fails, turning scanout 0's updates into frames and
/// patches; returns why it ended.
///
/// Paced by the window: `ready` says the window took the last frame or patch (it sets it
/// again once it has). Damage that comes while the window is busy is held, merged, and
/// copied once when the window is ready, so a guest drawing faster than the screen costs
/// one copy per frame shown, not one per frame drawn, and what is shown is the latest.
pub fn read_frames(
    client: &mut ConsoleClient,
    ready: &AtomicBool,
    emit: &mut dyn FnMut(FrameEvent),
) -> ConnError {
    let mut current: Option<Scanout> = None;
    let mut damage = Damage::default();
    let mut held: Held = None;
    loop {
        let received = if held.is_some() {
            match client.recv_timeout(HELD_TICK) {
                Ok(r) => r,
                Err(e) => return e,
            }
        } else {
            match client.recv() {
                Ok(r) => Some(r),
                Err(e) => return e,
            }
        };
        match received {
            Some(Received::Scanout {
                info:
                    Message::Scanout {
                        scanout: 0,
                        width,
                        height,
                        stride,
                        format,
                        offset,
                        ..
                    },
                buffer,
            }) => {
                current = layout(format).map(|layout| Scanout {
                    width,
                    height,
                    stride,
                    layout,
                    offset: offset as usize,
                    buffer,
                });
                damage.reset();
            }
            Some(Received::Other(Message::Update {
                scanout: 0,
                x,
                y,
                width,
                height,
            })) => held = hold(held, x, y, width, height),
            Some(Received::Other(Message::Disabled { scanout: 0 })) => {
                current = None;
                held = None;
            }
            Some(Received::Cursor {
                info:
                    Message::Cursor {
                        scanout: 0,
                        width,
                        height,
                        hot_x,
                        hot_y,
                    },
                pixels,
            }) => {
                let image = (width > 0
                    && height > 0
                    && pixels.len() >= width as usize * height as usize * 4)
                    .then(|| {
                        (
                            Pixels {
                                width,
                                height,
                                stride: width * 4,
                                format: gdk::MemoryFormat::B8g8r8a8,
                                bytes: pixels,
                            },
                            i32::try_from(hot_x).unwrap_or(0),
                            i32::try_from(hot_y).unwrap_or(0),
                        )
                    });
                emit(FrameEvent::Cursor(image));
            }
            Some(_) | None => {}
        }
        // Hand over what is held once the window can take it.
        let (Some(s), Some((x0, y0, x1, y1))) = (&current, held) else {
            continue;
        };
        if !ready.swap(false, Ordering::AcqRel) {
            continue;
        }
        held = None;
        let (width, height) = (x1 - x0, y1 - y0);
        let area = u64::from(width) * u64::from(height);
        let frame = u64::from(s.width) * u64::from(s.height);
        let event = if damage.whole_frame(area, frame) {
            s.copy_all().map(FrameEvent::Frame)
        } else {
            s.copy(x0, y0, width, height)
                .map(|p| FrameEvent::Patch(x0, y0, p))
        };
        match event {
            Some(e) => emit(e),
            // Nothing to show: the window is still free.
            None => ready.store(true, Ordering::Release),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// While the window is busy, updates are held and merged: taking one frame again
    /// gives one copy of the latest pixels over all the damage, not one per update.
    #[test]
    fn the_reader_holds_damage_until_the_window_takes_it() {
        use phyllome_vmm::console_conn::server::ConsoleServer;
        use phyllome_vmm::devices::virtio::gpu::display::{DisplaySink, Frame};
        use std::sync::{mpsc, Arc};
        use std::time::Duration;
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("display.sock");
        let (_server, mut sink) = ConsoleServer::listen(&socket, |_| {}).unwrap();
        let (w, h) = (64u32, 48u32);
        let buffer = SharedBuffer::create((w * h * 4) as usize).unwrap();
        let mut client = ConsoleClient::connect(&socket).unwrap();
        let ready = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel();
        let r = ready.clone();
        std::thread::spawn(move || {
            read_frames(&mut client, &r, &mut |e| {
                let _ = tx.send(e);
            })
        });
        // Wait until the server has the viewer (its first frame then reaches it).
        std::thread::sleep(Duration::from_millis(100));
        let frame = |sink: &mut dyn DisplaySink, damage, shade: u8| {
            buffer.write(0, &vec![shade; (w * h * 4) as usize]);
            sink.frame(&Frame {
                scanout: 0,
                width: w,
                height: h,
                stride: w * 4,
                format: 2,
                buffer: &buffer,
                offset: 0,
                damage,
            });
        };
        // A first frame, then small updates, all while the window is busy.
        frame(&mut sink, (0, 0, w, h), 1);
        for (i, shade) in (0u32..10).zip(2u8..12) {
            frame(&mut sink, (i, i, 2, 2), shade);
        }
        assert!(
            rx.recv_timeout(Duration::from_millis(300)).is_err(),
            "nothing goes to a busy window"
        );
        ready.store(true, Ordering::Release);
        let first = rx.recv_timeout(Duration::from_secs(5)).expect("one frame");
        let FrameEvent::Frame(p) = first else {
            panic!("the first is whole: {first:?}")
        };
        assert_eq!((p.width, p.height), (w, h));
        assert_eq!(p.bytes[0], 11, "the latest pixels");
        assert!(
            rx.recv_timeout(Duration::from_millis(300)).is_err(),
            "one copy for all of it"
        );
        // Taken; the next updates come as one merged patch.
        ready.store(true, Ordering::Release);
        frame(&mut sink, (10, 10, 2, 2), 20);
        let next = rx.recv_timeout(Duration::from_secs(5)).expect("the patch");
        let FrameEvent::Patch(x, y, p) = next else {
            panic!("a small update is a patch: {next:?}")
        };
        assert_eq!((x, y, p.width, p.height), (10, 10, 2, 2));
        assert_eq!(p.bytes[0], 20);
    }

    #[test]
    fn small_updates_go_as_patches_until_they_pile_up() {
        let frame = 1000 * 1000;
        let mut d = Damage::default();
        d.reset();
        assert!(d.whole_frame(10, frame), "the first update after a reset");
        for i in 0..MAX_PATCHES {
            assert!(!d.whole_frame(10, frame), "patch {i}");
        }
        assert!(d.whole_frame(10, frame), "too many patches: a whole frame");
        assert!(!d.whole_frame(10, frame), "and patches again after it");
        assert!(d.whole_frame(frame / 2, frame), "half the frame goes whole");
        assert!(!d.whole_frame(frame * 2 / 5, frame));
        assert!(!d.whole_frame(frame * 2 / 5, frame));
        assert!(
            d.whole_frame(frame * 2 / 5, frame),
            "patches adding up to a frame"
        );
    }

    #[test]
    fn copies_clip_to_the_frame_and_make_alpha_opaque() {
        let (w, h, stride) = (4u32, 3u32, 20u32);
        let buffer = SharedBuffer::create((stride * h) as usize).unwrap();
        let mut src = vec![0u8; (stride * h) as usize];
        for (i, b) in src.iter_mut().enumerate() {
            *b = u8::try_from(i % 251).unwrap();
        }
        buffer.write(0, &src);
        let s = Scanout {
            width: w,
            height: h,
            stride,
            layout: layout(B8G8R8X8).unwrap(),
            offset: 0,
            buffer: std::sync::Arc::new(buffer),
        };
        let p = s.copy(2, 1, 10, 10).unwrap();
        assert_eq!((p.width, p.height, p.stride), (2, 2, 8));
        for row in 0..2usize {
            let from = (1 + row) * stride as usize + 2 * 4;
            let mut want = src[from..from + 8].to_vec();
            want[3] = 0xff;
            want[7] = 0xff;
            assert!(p.bytes[row * 8..row * 8 + 8] == want[..], "row {row}");
        }
        assert!(s.copy(4, 0, 1, 1).is_none(), "outside the frame");
        assert!(s.copy(0, 3, 1, 1).is_none());
        let all = s.copy_all().unwrap();
        assert_eq!((all.width, all.height), (w, h));
        // An image that starts one row into the buffer (a scanout showing part of a
        // resource): row 0 of the image is row 1 of the buffer.
        let shifted = Scanout {
            height: h - 1,
            offset: stride as usize,
            ..s
        };
        let p = shifted.copy(0, 0, 1, 1).unwrap();
        let from = stride as usize;
        assert!(p.bytes[..3] == src[from..from + 3]);
    }

    #[test]
    fn formats_map_to_gdk_with_their_alpha_byte() {
        assert_eq!(layout(B8G8R8X8), Some((gdk::MemoryFormat::B8g8r8a8, 3)));
        assert_eq!(layout(X8R8G8B8), Some((gdk::MemoryFormat::A8r8g8b8, 0)));
        assert_eq!(layout(R8G8B8X8), Some((gdk::MemoryFormat::R8g8b8a8, 3)));
        assert_eq!(layout(X8B8G8R8), Some((gdk::MemoryFormat::A8b8g8r8, 0)));
        assert_eq!(layout(999), None);
    }
}
