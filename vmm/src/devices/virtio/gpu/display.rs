//! Where the GPU device's output goes: a [`DisplaySink`] receives each flushed frame (the
//! scanout's whole image and the damaged rectangle), cursor changes, and scanouts turned
//! off. The app's console connection, a PNG dumper and tests implement it; [`NullSink`]
//! drops everything, for headless VMs.

/// One flushed frame of a scanout: 32-bit pixels in the resource's format.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    /// Which scanout.
    pub scanout: u32,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Bytes per row.
    pub stride: u32,
    /// virtio-gpu format (`FORMAT_*` in [`super::protocol`]).
    pub format: u32,
    /// The resource's pixels, shared with display viewers.
    pub buffer: &'a crate::console_conn::buffer::SharedBuffer,
    /// Where the image starts in `buffer` (its rows are `stride` bytes apart).
    pub offset: usize,
    /// The part that changed since the last frame: (x, y, width, height).
    pub damage: (u32, u32, u32, u32),
}

impl Frame<'_> {
    /// Copies row `y` (`width * 4` bytes) into `out`; false outside the image or buffer.
    pub fn read_row(&self, y: u32, out: &mut [u8]) -> bool {
        if y >= self.height || out.len() != self.width as usize * 4 {
            return false;
        }
        let at = self.offset + y as usize * self.stride as usize;
        self.buffer.read(at, out)
    }

    /// The whole image as tight rows (`width * 4` bytes each); empty if it cannot be read.
    pub fn to_vec(&self) -> Vec<u8> {
        let row = self.width as usize * 4;
        let mut v = vec![0u8; row * self.height as usize];
        for (y, out) in (0..self.height).zip(v.chunks_exact_mut(row)) {
            if !self.read_row(y, out) {
                return Vec::new();
            }
        }
        v
    }
}

/// A cursor image change: a 64x64 BGRA image and its hot spot, or hidden.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cursor {
    /// No cursor.
    Hidden,
    /// A new image.
    Image {
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
        /// Hot spot.
        hot: (u32, u32),
        /// Pixels, `width * height * 4` bytes.
        pixels: Vec<u8>,
    },
}

/// Receives the device's output.
pub trait DisplaySink: Send {
    /// A scanout's image changed.
    fn frame(&mut self, frame: &Frame<'_>);
    /// A scanout was turned off.
    fn disabled(&mut self, scanout: u32);
    /// The cursor image changed.
    fn cursor(&mut self, scanout: u32, cursor: &Cursor);
    /// The cursor moved.
    fn cursor_moved(&mut self, scanout: u32, x: u32, y: u32);
    /// Whether a new frame of `scanout` is wanted now. A 3D device reads a frame back from
    /// the renderer only when it is; otherwise it holds the damage for
    /// [`crate::devices::virtio::gpu::Gpu::flush_pending`].
    fn wants_frame(&self, _scanout: u32) -> bool {
        true
    }
}

/// A sink that drops everything.
#[derive(Debug, Default)]
pub struct NullSink;

impl DisplaySink for NullSink {
    fn frame(&mut self, _: &Frame<'_>) {}
    fn disabled(&mut self, _: u32) {}
    fn cursor(&mut self, _: u32, _: &Cursor) {}
    fn cursor_moved(&mut self, _: u32, _: u32, _: u32) {}
}

/// Sends everything to each of several sinks (none: drops everything).
pub struct Tee(pub Vec<Box<dyn DisplaySink>>);

impl std::fmt::Debug for Tee {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tee").field("sinks", &self.0.len()).finish()
    }
}

impl DisplaySink for Tee {
    fn frame(&mut self, frame: &Frame<'_>) {
        self.0.iter_mut().for_each(|s| s.frame(frame));
    }
    fn disabled(&mut self, scanout: u32) {
        self.0.iter_mut().for_each(|s| s.disabled(scanout));
    }
    fn cursor(&mut self, scanout: u32, cursor: &Cursor) {
        self.0.iter_mut().for_each(|s| s.cursor(scanout, cursor));
    }
    fn cursor_moved(&mut self, scanout: u32, x: u32, y: u32) {
        self.0
            .iter_mut()
            .for_each(|s| s.cursor_moved(scanout, x, y));
    }
    fn wants_frame(&self, scanout: u32) -> bool {
        self.0.iter().any(|s| s.wants_frame(scanout))
    }
}
