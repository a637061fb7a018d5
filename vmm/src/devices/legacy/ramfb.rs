//! ramfb, QEMU's boot display: the firmware (OVMF's QemuRamfbDxe) puts a linear
//! framebuffer in guest RAM and tells us where through the fw_cfg file `etc/ramfb`. It is
//! the screen from the first instruction: OVMF's virtio-gpu driver only blits, which
//! GRUB's graphics and Linux's efifb cannot use, so without ramfb an installer shows
//! nothing until its own virtio-gpu driver loads.
//!
//! A worker looks at the framebuffer 20 times a second, copies the rows that changed into
//! a shared buffer and hands them to the GPU's display as scanout 0. The GPU decides which
//! of ramfb and its own scanout the screen shows (the one that changes:
//! [`crate::devices::virtio::gpu::boot_display`]): the firmware's own virtio-gpu driver sets
//! a scanout early, and GRUB's graphical menu and Linux's efifb still draw on ramfb only.
//! The configuration comes from the guest: it is checked against guest RAM and sane sizes,
//! and a bad one is refused with a logged reason (the display keeps what it had).

use crate::console_conn::buffer::SharedBuffer;
use crate::devices::bus::lock;
use crate::devices::legacy::fw_cfg::WriteHook;
use crate::devices::virtio::gpu::display::Frame;
use crate::devices::virtio::gpu::protocol::FORMAT_B8G8R8X8_UNORM;
use crate::devices::virtio::gpu::Gpu;
use crate::memory::GuestMemory;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;
use vm_memory::{Bytes, GuestAddress, GuestMemory as _};

/// The fw_cfg file the firmware writes its framebuffer's description to.
pub const RAMFB_FILE: &str = "etc/ramfb";
/// Its size: address (8), fourcc, flags, width, height, stride (4 each), big-endian.
pub const CONFIG_LEN: usize = 28;
/// DRM_FORMAT_XRGB8888 ("XR24"): what OVMF uses.
const XRGB8888: u32 = u32::from_le_bytes(*b"XR24");
/// DRM_FORMAT_ARGB8888 ("AR24"): the same bytes, alpha ignored.
const ARGB8888: u32 = u32::from_le_bytes(*b"AR24");
/// The largest side we show (QEMU's ramfb allows as much).
pub const MAX_SIDE: u32 = 8192;
/// How often the framebuffer is looked at (a boot menu's pace, not a game's: each look
/// reads the whole framebuffer).
const REFRESH: Duration = Duration::from_millis(50);

/// Why a framebuffer description was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RamfbError {
    /// Not the 28 bytes of a description.
    #[error("The ramfb description is {0} bytes, not 28.")]
    Length(usize),
    /// A pixel format we cannot show.
    #[error("The ramfb pixel format {0:#x} is not XRGB8888 or ARGB8888.")]
    Format(u32),
    /// Zero or too large.
    #[error("A ramfb of {width}x{height} is empty or larger than {MAX_SIDE}x{MAX_SIDE}.")]
    Size {
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
    },
    /// Rows shorter than the width.
    #[error("The ramfb stride of {stride} bytes is shorter than a {width}-pixel row.")]
    Stride {
        /// Bytes per row.
        stride: u32,
        /// Width in pixels.
        width: u32,
    },
    /// The framebuffer is not all in guest RAM.
    #[error("The ramfb at {address:#x} ({len} bytes) is not inside guest RAM.")]
    OutsideRam {
        /// Its address.
        address: u64,
        /// Its size.
        len: u64,
    },
}

/// A checked framebuffer description.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RamfbConfig {
    /// Guest-physical address of the first pixel.
    pub address: u64,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Bytes per row.
    pub stride: u32,
}

impl RamfbConfig {
    /// Reads and checks `etc/ramfb`'s contents against `memory`.
    pub fn parse(bytes: &[u8], memory: &GuestMemory) -> Result<Self, RamfbError> {
        let b: &[u8; CONFIG_LEN] = bytes
            .try_into()
            .map_err(|_| RamfbError::Length(bytes.len()))?;
        let be32 = |at: usize| u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
        let mut addr = [0u8; 8];
        addr.copy_from_slice(&b[0..8]);
        let address = u64::from_be_bytes(addr);
        let (fourcc, width, height, stride) = (be32(8), be32(16), be32(20), be32(24));
        if fourcc != XRGB8888 && fourcc != ARGB8888 {
            return Err(RamfbError::Format(fourcc));
        }
        let config = Self::new(address, width, height, stride)?;
        config.check_inside(memory)?;
        Ok(config)
    }

    /// Checks the sizes of an XRGB8888 framebuffer at `address` (a `stride` of 0 means
    /// tightly packed rows); where it lies is checked by [`RamfbConfig::check_inside`].
    pub fn new(address: u64, width: u32, height: u32, stride: u32) -> Result<Self, RamfbError> {
        if width == 0 || height == 0 || width > MAX_SIDE || height > MAX_SIDE {
            return Err(RamfbError::Size { width, height });
        }
        // At most 8192 * 4: no overflow.
        let stride = if stride == 0 { width * 4 } else { stride };
        if stride < width * 4 {
            return Err(RamfbError::Stride { stride, width });
        }
        Ok(Self {
            address,
            width,
            height,
            stride,
        })
    }

    /// The bytes from the first pixel to the end of the last row's stride.
    pub fn byte_len(&self) -> u64 {
        u64::from(self.stride) * u64::from(self.height)
    }

    /// Whether the whole framebuffer lies in `memory`.
    pub fn check_inside(&self, memory: &GuestMemory) -> Result<(), RamfbError> {
        let len = self.byte_len();
        let inside = self.address.checked_add(len).is_some()
            && usize::try_from(len).is_ok_and(|n| {
                memory.check_range(GuestAddress(self.address), n, vm_memory::Permissions::Read)
            });
        if inside {
            Ok(())
        } else {
            Err(RamfbError::OutsideRam {
                address: self.address,
                len,
            })
        }
    }
}

/// Told of each description the firmware gives (a 3D VM's VMM passes it on to the
/// graphics process, which draws the display).
type OnChange = Arc<dyn Fn(&RamfbConfig) + Send + Sync>;

/// The framebuffer description the firmware last gave, shared with the worker.
#[derive(Clone, Default)]
pub struct Ramfb {
    config: Arc<Mutex<Option<RamfbConfig>>>,
    on_change: Option<OnChange>,
}

impl std::fmt::Debug for Ramfb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ramfb")
            .field("config", &self.config())
            .field("forwarded", &self.on_change.is_some())
            .finish()
    }
}

impl Ramfb {
    /// No framebuffer yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// No framebuffer yet; each good description the firmware writes is also handed to
    /// `on_change` (on the vCPU thread that wrote it: it must not block for long).
    pub fn forwarding(on_change: impl Fn(&RamfbConfig) + Send + Sync + 'static) -> Self {
        Self {
            config: Arc::default(),
            on_change: Some(Arc::new(on_change)),
        }
    }

    /// The current description.
    pub fn config(&self) -> Option<RamfbConfig> {
        *lock(&self.config)
    }

    /// Replaces the description (for a framebuffer described from elsewhere: the VMM
    /// tells its graphics process); `None` stops the showing.
    pub fn set(&self, config: Option<RamfbConfig>) {
        *lock(&self.config) = config;
    }

    /// What `etc/ramfb` calls when the firmware writes it.
    pub fn write_hook(&self, memory: GuestMemory) -> WriteHook {
        let config = self.config.clone();
        let on_change = self.on_change.clone();
        Box::new(move |bytes| match RamfbConfig::parse(bytes, &memory) {
            Ok(c) => {
                *lock(&config) = Some(c);
                if let Some(f) = &on_change {
                    f(&c);
                }
            }
            Err(e) => log::warn!("{e}"),
        })
    }

    /// Starts the worker that shows the framebuffer on `gpu`'s display; it stops when the
    /// returned handle is dropped.
    pub fn show_on(
        &self,
        memory: GuestMemory,
        gpu: Arc<Mutex<Gpu>>,
    ) -> std::io::Result<RamfbWorker> {
        let stop = Arc::new(AtomicBool::new(false));
        let state = Refresher {
            config: self.config.clone(),
            memory,
            gpu,
            shown: None,
        };
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("ramfb".into())
            .spawn(move || state.run(&flag))?;
        Ok(RamfbWorker {
            stop,
            thread: Some(thread),
        })
    }
}

/// The running worker; dropping it stops and joins it.
#[derive(Debug)]
pub struct RamfbWorker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for RamfbWorker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What the worker showed last: the description, the buffer and a copy to compare with.
struct Shown {
    config: RamfbConfig,
    buffer: SharedBuffer,
    last: Vec<u8>,
}

struct Refresher {
    config: Arc<Mutex<Option<RamfbConfig>>>,
    memory: GuestMemory,
    gpu: Arc<Mutex<Gpu>>,
    shown: Option<Shown>,
}

impl Refresher {
    fn run(mut self, stop: &AtomicBool) {
        while !stop.load(Ordering::Relaxed) {
            self.refresh();
            std::thread::sleep(REFRESH);
        }
    }

    /// Looks at the framebuffer and shows the rows that changed since the last look.
    fn refresh(&mut self) {
        let Some(config) = *lock(&self.config) else {
            return;
        };
        let row = config.width as usize * 4;
        let len = row * config.height as usize;
        if self.shown.as_ref().map(|s| s.config) != Some(config) {
            match SharedBuffer::create(len) {
                Ok(buffer) => {
                    self.shown = Some(Shown {
                        config,
                        buffer,
                        last: Vec::new(),
                    });
                }
                Err(e) => {
                    log::warn!("Cannot make the ramfb display buffer: {e}.");
                    return;
                }
            }
        }
        let Some(shown) = self.shown.as_mut() else {
            return;
        };
        let fresh = shown.last.len() != len;
        if fresh {
            shown.last = vec![0; len];
        }
        // One pass over the guest's rows: each that changed is kept and copied out.
        let mut line = vec![0u8; row];
        let mut changed: Option<(u32, u32)> = None;
        for y in 0..config.height {
            let at = config.address + u64::from(y) * u64::from(config.stride);
            if self.memory.read_slice(&mut line, GuestAddress(at)).is_err() {
                return;
            }
            let start = y as usize * row;
            let kept = &mut shown.last[start..start + row];
            if fresh || *kept != *line {
                kept.copy_from_slice(&line);
                shown.buffer.write(start, &line);
                changed = Some(changed.map_or((y, y), |(first, _)| (first, y)));
            }
        }
        let Some((first, last)) = changed else {
            return;
        };
        let mut gpu = lock(&self.gpu);
        // Taking the screen from the virtio-gpu: all of it, not only what changed.
        let damage = if gpu.boot_display_on_screen() {
            (0, first, config.width, last + 1 - first)
        } else {
            (0, 0, config.width, config.height)
        };
        let frame = Frame {
            scanout: 0,
            width: config.width,
            height: config.height,
            stride: config.width * 4,
            format: FORMAT_B8G8R8X8_UNORM,
            buffer: &shown.buffer,
            offset: 0,
            damage,
        };
        gpu.show_firmware_frame(&frame);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_memory::GuestMemoryMmap;

    fn memory() -> GuestMemory {
        GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 16 << 20)]).expect("memory")
    }

    fn describe(address: u64, fourcc: u32, width: u32, height: u32, stride: u32) -> Vec<u8> {
        let mut b = address.to_be_bytes().to_vec();
        for v in [fourcc, 0, width, height, stride] {
            b.extend_from_slice(&v.to_be_bytes());
        }
        b
    }

    #[test]
    fn ovmfs_description_is_read() {
        let c = RamfbConfig::parse(&describe(0x10_0000, XRGB8888, 800, 600, 3200), &memory());
        assert_eq!(
            c,
            Ok(RamfbConfig {
                address: 0x10_0000,
                width: 800,
                height: 600,
                stride: 3200
            })
        );
        let packed = RamfbConfig::parse(&describe(0, ARGB8888, 2, 2, 0), &memory());
        assert_eq!(packed.map(|c| c.stride), Ok(8));
    }

    #[test]
    fn bad_descriptions_are_refused_with_their_reason() {
        let m = memory();
        assert_eq!(
            RamfbConfig::parse(&[0; 27], &m),
            Err(RamfbError::Length(27))
        );
        assert!(matches!(
            RamfbConfig::parse(&describe(0, 0x1234, 8, 8, 32), &m),
            Err(RamfbError::Format(0x1234))
        ));
        assert!(matches!(
            RamfbConfig::parse(&describe(0, XRGB8888, 0, 8, 32), &m),
            Err(RamfbError::Size { .. })
        ));
        assert!(matches!(
            RamfbConfig::parse(&describe(0, XRGB8888, 9000, 8, 36000), &m),
            Err(RamfbError::Size { .. })
        ));
        assert!(matches!(
            RamfbConfig::parse(&describe(0, XRGB8888, 8, 8, 16), &m),
            Err(RamfbError::Stride { .. })
        ));
        // Past the end of RAM, and wrapping around the address space.
        assert!(matches!(
            RamfbConfig::parse(&describe((16 << 20) - 100, XRGB8888, 8, 8, 32), &m),
            Err(RamfbError::OutsideRam { .. })
        ));
        assert!(matches!(
            RamfbConfig::parse(&describe(u64::MAX - 10, XRGB8888, 8, 8, 32), &m),
            Err(RamfbError::OutsideRam { .. })
        ));
    }

    #[test]
    fn the_hook_keeps_the_last_good_description() {
        let m = memory();
        let ramfb = Ramfb::new();
        let mut hook = ramfb.write_hook(m);
        hook(&describe(0x1000, XRGB8888, 4, 4, 16));
        hook(&describe(0x1000, 0x1234, 4, 4, 16));
        assert_eq!(ramfb.config().map(|c| c.width), Some(4));
    }

    #[test]
    fn a_forwarding_ramfb_passes_on_good_descriptions_only() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let ramfb = Ramfb::forwarding(move |c| lock(&s).push(c.width));
        let mut hook = ramfb.write_hook(memory());
        hook(&describe(0x1000, XRGB8888, 4, 4, 16));
        hook(&describe(0x1000, 0x1234, 6, 4, 24));
        hook(&describe(0x1000, XRGB8888, 8, 4, 32));
        assert_eq!(*lock(&seen), vec![4, 8]);
        ramfb.set(None);
        assert_eq!(ramfb.config(), None);
    }
}
