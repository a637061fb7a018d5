//! A display sink that writes the latest flushed scanout to a PNG file, at most every
//! half second while frames arrive, half a second after the last one (a writer thread
//! catches up), and once more when the device goes away: the file holds the screen as it
//! is, within half a second, while the VM runs, and the last frame at the end. For
//! debugging and for tests that look at what the guest drew (`--dump-scanout FILE.png`).

use super::display::{Cursor, DisplaySink, Frame};
use super::protocol::*;
use std::path::PathBuf;
use std::sync::mpsc::{channel, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Shortest time between two writes.
pub const THROTTLE: Duration = Duration::from_millis(500);

/// The dumper.
#[derive(Debug)]
pub struct PngDump {
    state: Arc<Mutex<DumpState>>,
    /// Dropped to stop the catch-up writer.
    stop: Option<Sender<()>>,
    writer: Option<JoinHandle<()>>,
}

/// The latest frame and when it was written.
#[derive(Debug)]
struct DumpState {
    path: PathBuf,
    scanout: u32,
    size: (u32, u32),
    rgba: Vec<u8>,
    dirty: bool,
    last_write: Option<Instant>,
}

impl PngDump {
    /// Dumps scanout 0 to `path`.
    pub fn new(path: PathBuf) -> Self {
        let state = Arc::new(Mutex::new(DumpState {
            path,
            scanout: 0,
            size: (0, 0),
            rgba: Vec::new(),
            dirty: false,
            last_write: None,
        }));
        let (stop, stopped) = channel::<()>();
        let catch_up = Arc::clone(&state);
        let writer = std::thread::Builder::new()
            .name("png-dump".into())
            .spawn(move || {
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(THROTTLE) {
                    let mut s = catch_up.lock().unwrap_or_else(PoisonError::into_inner);
                    if s.dirty && s.last_write.is_none_or(|t| t.elapsed() >= THROTTLE) {
                        s.write();
                    }
                }
            })
            .map_err(|e| log::warn!("no catch-up writer for the scanout dump: {e}"))
            .ok();
        Self {
            state,
            stop: Some(stop),
            writer,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, DumpState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl DumpState {
    fn write(&mut self) {
        let (w, h) = self.size;
        if w == 0 || h == 0 {
            return;
        }
        let tmp = self.path.with_extension("png.tmp");
        let result = (|| -> Result<(), Box<dyn std::error::Error>> {
            let file = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
            let mut enc = png::Encoder::new(file, w, h);
            enc.set_color(png::ColorType::Rgba);
            enc.set_depth(png::BitDepth::Eight);
            enc.write_header()?.write_image_data(&self.rgba)?;
            std::fs::rename(&tmp, &self.path)?;
            Ok(())
        })();
        if let Err(e) = result {
            log::warn!("cannot write {}: {e}", self.path.display());
        }
        self.dirty = false;
        self.last_write = Some(Instant::now());
    }
}

/// Converts one 4-byte pixel of `format` to RGBA (alpha forced opaque for X formats).
pub fn to_rgba(format: u32, p: [u8; 4]) -> [u8; 4] {
    match format {
        FORMAT_B8G8R8A8_UNORM => [p[2], p[1], p[0], p[3]],
        FORMAT_B8G8R8X8_UNORM => [p[2], p[1], p[0], 0xff],
        FORMAT_A8R8G8B8_UNORM => [p[1], p[2], p[3], p[0]],
        FORMAT_X8R8G8B8_UNORM => [p[1], p[2], p[3], 0xff],
        FORMAT_R8G8B8A8_UNORM => p,
        FORMAT_X8B8G8R8_UNORM => [p[3], p[2], p[1], 0xff],
        FORMAT_A8B8G8R8_UNORM => [p[3], p[2], p[1], p[0]],
        _ => [p[0], p[1], p[2], 0xff],
    }
}

impl DisplaySink for PngDump {
    fn frame(&mut self, f: &Frame<'_>) {
        let mut s = self.state();
        if f.scanout != s.scanout {
            return;
        }
        s.size = (f.width, f.height);
        s.rgba.clear();
        for px in f.to_vec().chunks_exact(4) {
            s.rgba
                .extend_from_slice(&to_rgba(f.format, [px[0], px[1], px[2], px[3]]));
        }
        s.dirty = true;
        if s.last_write.is_none_or(|t| t.elapsed() >= THROTTLE) {
            s.write();
        }
    }
    fn disabled(&mut self, _: u32) {}
    fn cursor(&mut self, _: u32, _: &Cursor) {}
    fn cursor_moved(&mut self, _: u32, _: u32, _: u32) {}
}

impl Drop for PngDump {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
        let mut s = self.state();
        if s.dirty {
            s.write();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::console_conn::buffer::SharedBuffer;

    #[test]
    fn the_last_frame_ends_up_in_the_file_as_rgba() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.png");
        let mut d = PngDump::new(path.clone());
        // 2x1 BGRX: blue, then red; stride with 4 bytes of row padding.
        let pixels = [0xff, 0, 0, 0, 0, 0, 0xff, 0, 9, 9, 9, 9];
        let buffer = SharedBuffer::create(12).unwrap();
        let frame = |b| Frame {
            scanout: 0,
            width: 2,
            height: 1,
            stride: 12,
            format: FORMAT_B8G8R8X8_UNORM,
            buffer: b,
            offset: 0,
            damage: (0, 0, 2, 1),
        };
        buffer.write(0, &pixels);
        d.frame(&frame(&buffer));
        // Within the throttle: kept, written at drop.
        buffer.write(0, &[0, 0xff, 0, 0, 0, 0xff, 0, 0, 0, 0, 0, 0]);
        d.frame(&frame(&buffer));
        drop(d);
        let decoder = png::Decoder::new(std::fs::File::open(&path).unwrap());
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!((info.width, info.height), (2, 1));
        assert_eq!(
            &buf[..8],
            &[0, 0xff, 0, 0xff, 0, 0xff, 0, 0xff],
            "both green"
        );
    }

    #[test]
    fn a_frame_held_back_by_the_throttle_reaches_the_file_while_the_vm_runs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.png");
        let mut d = PngDump::new(path.clone());
        let buffer = SharedBuffer::create(4).unwrap();
        let frame = |b| Frame {
            scanout: 0,
            width: 1,
            height: 1,
            stride: 4,
            format: FORMAT_B8G8R8X8_UNORM,
            buffer: b,
            offset: 0,
            damage: (0, 0, 1, 1),
        };
        buffer.write(0, &[0xff, 0, 0, 0]);
        d.frame(&frame(&buffer));
        // Within the throttle, and no frame after it: the writer thread catches up.
        buffer.write(0, &[0, 0, 0xff, 0]);
        d.frame(&frame(&buffer));
        let red = |path: &std::path::Path| {
            let Ok(file) = std::fs::File::open(path) else {
                return false;
            };
            let mut reader = png::Decoder::new(file).read_info().unwrap();
            let mut buf = vec![0; reader.output_buffer_size()];
            reader.next_frame(&mut buf).unwrap();
            buf[..4] == [0xff, 0, 0, 0xff]
        };
        let start = Instant::now();
        while !red(&path) {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "the held-back frame never reached the file"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        drop(d);
    }

    #[test]
    fn formats_convert_to_rgba() {
        assert_eq!(to_rgba(FORMAT_B8G8R8A8_UNORM, [1, 2, 3, 4]), [3, 2, 1, 4]);
        assert_eq!(to_rgba(FORMAT_X8R8G8B8_UNORM, [1, 2, 3, 4]), [2, 3, 4, 255]);
        assert_eq!(to_rgba(FORMAT_R8G8B8A8_UNORM, [1, 2, 3, 4]), [1, 2, 3, 4]);
    }
}
