//! virtio-gpu (2D): the guest's screen. Resources live in host memory; the guest attaches
//! its own pages as backing, transfers rectangles from them into a resource, points a
//! scanout at a resource and flushes, and each flush hands the scanout's image and the
//! damaged rectangle to the [`display::DisplaySink`]. The cursor queue sets the cursor
//! image and position. Every request is checked (resource and scanout ids, formats,
//! rectangles, backing inside guest memory, total resource memory) and fails alone with
//! the matching error response.
//!
//! 3D (with the `virgl` feature and a 3D [`Renderer`]): contexts, 3D resources, transfers,
//! submissions and capsets go to [`virgl::Renderer3d`]; 2D resources stay here, in one id
//! space with the 3D ones, and a scanout may show either kind. Without 3D, 3D requests fail
//! with `ERR_UNSPEC`.

#![allow(
    clippy::cast_possible_truncation,
    reason = "sizes are validated against u32 dimensions and the memory cap before narrowing"
)]

pub mod boot_display;
pub mod display;
pub mod dump;
pub mod edid;
#[cfg(feature = "virgl")]
pub mod host_visible;
pub mod protocol;
#[cfg(feature = "virgl")]
pub mod virgl;

use super::{
    Chain, DeviceCore, VIRTIO_F_VERSION_1, VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC,
};
use crate::config::Renderer;
use crate::console_conn::buffer::SharedBuffer;
use crate::memory::GuestMemory;
use display::{Cursor, DisplaySink, Frame};
use protocol::*;
use std::collections::HashMap;
use std::io::Write;
use virtio_queue::{Reader, Writer};
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend};

/// Control queue.
/// The virtio device ID of a GPU.
pub const DEVICE_TYPE: u32 = 16;
pub const CONTROL_QUEUE: usize = 0;
/// Cursor queue.
pub const CURSOR_QUEUE: usize = 1;
const QUEUE_SIZE: u16 = 256;
/// Bytes of host memory all of one guest's resources may take together: enough for two
/// 4K (3840x2160) framebuffers, double-buffered, plus cursors.
pub const DEFAULT_RESOURCE_LIMIT: u64 = 256 << 20;
/// Largest width or height of a resource.
pub const MAX_DIMENSION: u32 = 16384;
/// Most backing entries one resource may have.
pub const MAX_BACKING_ENTRIES: u32 = 1 << 16;
const BYTES_PER_PIXEL: u32 = 4;
const CURSOR_SIZE: u32 = 64;

/// Where a resource's pixels live: on the heap until the resource is first shown on a
/// scanout, then in a shared buffer that display viewers map, so that a transfer writes the
/// guest's pixels straight where the viewer reads them (no copy at flush).
#[derive(Debug)]
enum Storage {
    Heap(Vec<u8>),
    Shared(SharedBuffer),
}

impl Storage {
    fn len(&self) -> usize {
        match self {
            Self::Heap(v) => v.len(),
            Self::Shared(b) => b.len(),
        }
    }

    /// Copies `len` bytes of the guest's backing, from `src` on, to `dst`; false when the
    /// backing or the storage is too short (nothing is read outside either).
    fn fill_from_guest(
        &mut self,
        mem: &GuestMemory,
        backing: &[(u64, u32)],
        src: u64,
        dst: usize,
        len: usize,
    ) -> bool {
        match self {
            Self::Heap(v) => match dst.checked_add(len).and_then(|end| v.get_mut(dst..end)) {
                Some(out) => read_backing(mem, backing, src, out),
                None => false,
            },
            Self::Shared(b) => {
                let Some(out) = b.volatile(dst, len) else {
                    return false;
                };
                backing_ranges(backing, src, len).is_some_and(|ranges| {
                    let mut done = 0;
                    ranges.iter().all(|&(addr, n)| {
                        let ok = copy_guest_range(mem, addr, n, &out, done);
                        done += n;
                        ok
                    })
                })
            }
        }
    }

    /// Reads `out.len()` bytes at `offset`.
    fn read(&self, offset: usize, out: &mut [u8]) -> bool {
        match self {
            Self::Heap(v) => match offset
                .checked_add(out.len())
                .and_then(|end| v.get(offset..end))
            {
                Some(bytes) => {
                    out.copy_from_slice(bytes);
                    true
                }
                None => false,
            },
            Self::Shared(b) => b.read(offset, out),
        }
    }

    /// Moves the pixels into a shared buffer (once; later calls do nothing).
    fn share(&mut self) -> std::io::Result<&SharedBuffer> {
        if let Self::Heap(v) = self {
            let b = SharedBuffer::create(v.len())?;
            b.write(0, v);
            *self = Self::Shared(b);
        }
        match self {
            Self::Shared(b) => Ok(b),
            Self::Heap(_) => Err(std::io::Error::other("the pixels were not shared")),
        }
    }
}

/// The guest ranges (address, length) that hold `len` bytes of a backing from `offset` on;
/// None when the backing is shorter.
fn backing_ranges(
    backing: &[(u64, u32)],
    mut offset: u64,
    len: usize,
) -> Option<Vec<(u64, usize)>> {
    let mut out = Vec::new();
    let mut left = len;
    for &(addr, n) in backing {
        if left == 0 {
            break;
        }
        let n = u64::from(n);
        if offset >= n {
            offset -= n;
            continue;
        }
        let take = usize::try_from(n - offset).unwrap_or(usize::MAX).min(left);
        out.push((addr.checked_add(offset)?, take));
        left -= take;
        offset = 0;
    }
    (left == 0).then_some(out)
}

/// Copies `n` bytes of guest memory at `addr` into `out` at `at`.
fn copy_guest_range(
    mem: &GuestMemory,
    addr: u64,
    n: usize,
    out: &vm_memory::volatile_memory::VolatileSlice<'_, ()>,
    at: usize,
) -> bool {
    let Ok(mut dst) = out.subslice(at, n) else {
        return false;
    };
    for slice in mem.get_slices(GuestAddress(addr), n) {
        let Ok(src) = slice else { return false };
        let len = src.len();
        src.copy_to_volatile_slice(dst);
        match dst.offset(len) {
            Ok(rest) => dst = rest,
            // The last piece: nothing left of the destination.
            Err(_) => return true,
        }
    }
    true
}

/// A host-side image the guest created.
#[derive(Debug)]
struct Resource {
    width: u32,
    height: u32,
    format: u32,
    pixels: Storage,
    /// Guest memory backing it: (address, length), each checked to lie in guest RAM.
    backing: Vec<(u64, u32)>,
}

impl Resource {
    fn stride(&self) -> u32 {
        self.width * BYTES_PER_PIXEL
    }
}

/// One display output.
#[derive(Debug, Clone, Copy, Default)]
struct Scanout {
    /// The display's size, as offered to the guest.
    width: u32,
    height: u32,
    /// The resource shown (0: off) and the part of it.
    resource: u32,
    rect: Rect,
    /// 3D: flushed damage not yet read back (left, top, right, bottom, in resource
    /// coordinates), held while the display does not want a frame.
    held: Option<(u32, u32, u32, u32)>,
}

impl Scanout {
    /// All of the part of its resource it shows (left, top, right, bottom).
    #[cfg_attr(not(feature = "virgl"), allow(dead_code, reason = "3D flush only"))]
    fn whole(&self) -> (u32, u32, u32, u32) {
        let r = &self.rect;
        (r.x, r.y, r.x + r.width, r.y + r.height)
    }

    /// Scanout `i`'s frame of its 2D resource `r` (whose pixels are `buffer`), with
    /// `damage` in scanout coordinates.
    fn frame<'a>(
        &self,
        i: usize,
        r: &Resource,
        buffer: &'a SharedBuffer,
        damage: (u32, u32, u32, u32),
    ) -> Frame<'a> {
        let stride = r.stride();
        Frame {
            scanout: i as u32,
            width: self.rect.width,
            height: self.rect.height,
            stride,
            format: r.format,
            buffer,
            offset: (self.rect.y * stride + self.rect.x * BYTES_PER_PIXEL) as usize,
            damage,
        }
    }

    /// The part of a flushed rectangle (in resource coordinates) that this scanout shows,
    /// as left, top, right, bottom; None when it shows none of it.
    fn flushed(&self, r: &Rect) -> Option<(u32, u32, u32, u32)> {
        let (x0, y0) = (r.x.max(self.rect.x), r.y.max(self.rect.y));
        let x1 = (r.x + r.width).min(self.rect.x + self.rect.width);
        let y1 = (r.y + r.height).min(self.rect.y + self.rect.height);
        (x0 < x1 && y0 < y1).then_some((x0, y0, x1, y1))
    }
}

/// The scanouts (index, scanout) that show part of the flushed rectangle of `f`'s
/// resource, with that part (left, top, right, bottom, in resource coordinates).
fn showing<'a>(
    scanouts: &'a [Scanout],
    f: &'a ResourceFlush,
) -> impl Iterator<Item = (usize, &'a Scanout, (u32, u32, u32, u32))> + 'a {
    scanouts
        .iter()
        .enumerate()
        .filter(move |(_, s)| s.resource == f.resource_id)
        .filter_map(move |(i, s)| Some((i, s, s.flushed(&f.r)?)))
}

/// An answer to a control request.
enum Response {
    NoData,
    DisplayInfo(Box<RespDisplayInfo>),
    Edid(Box<RespEdid>),
    #[cfg_attr(not(feature = "virgl"), allow(dead_code))]
    CapsetInfo(RespCapsetInfo),
    #[cfg_attr(not(feature = "virgl"), allow(dead_code))]
    Capset(Vec<u8>),
    #[cfg_attr(not(feature = "virgl"), allow(dead_code))]
    MapInfo(u32),
}

/// The 2D GPU device.
pub struct Gpu {
    scanouts: Vec<Scanout>,
    resources: HashMap<u32, Resource>,
    resource_bytes: u64,
    resource_limit: u64,
    sink: Box<dyn DisplaySink>,
    /// Whether ramfb or the virtio-gpu has scanout 0's screen.
    boot: boot_display::BootDisplay,
    events_read: u32,
    /// Signalled when `events_read` gains an event (the transport interrupts the driver).
    config_changed: vmm_sys_util::eventfd::EventFd,
    /// The 3D side, when the renderer is 3D.
    #[cfg(feature = "virgl")]
    three_d: Option<virgl::Renderer3d>,
    /// Where mappable blobs appear to the guest; with it, blobs are offered.
    #[cfg(feature = "virgl")]
    host_visible: Option<host_visible::HostVisible>,
    /// The host-visible region's size, when the device offers its transport one (shared
    /// memory region 1); the transport then hands it a mapper.
    #[cfg(feature = "virgl")]
    host_visible_offer: Option<u64>,
}

impl std::fmt::Debug for Gpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gpu")
            .field("scanouts", &self.scanouts.len())
            .field("resources", &self.resources.len())
            .field("resource_bytes", &self.resource_bytes)
            .finish_non_exhaustive()
    }
}

type CmdResult = Result<Response, u32>;

impl Gpu {
    /// A device with one scanout per entry of `sizes` (at most 16), offering each size as
    /// its preferred mode, sending output to `sink`.
    pub fn new(sizes: &[(u32, u32)], sink: Box<dyn DisplaySink>) -> std::io::Result<Self> {
        let scanouts = sizes
            .iter()
            .take(MAX_SCANOUTS)
            .map(|&(w, h)| Scanout {
                width: w.clamp(1, MAX_DIMENSION),
                height: h.clamp(1, MAX_DIMENSION),
                ..Scanout::default()
            })
            .collect();
        Ok(Self {
            scanouts,
            resources: HashMap::new(),
            resource_bytes: 0,
            resource_limit: DEFAULT_RESOURCE_LIMIT,
            sink,
            boot: boot_display::BootDisplay::default(),
            events_read: 0,
            config_changed: vmm_sys_util::eventfd::EventFd::new(libc::EFD_NONBLOCK)?,
            #[cfg(feature = "virgl")]
            three_d: None,
            #[cfg(feature = "virgl")]
            host_visible: None,
            #[cfg(feature = "virgl")]
            host_visible_offer: None,
        })
    }

    /// Like [`Gpu::new`], drawing with `renderer`: 2D, or 3D through virglrenderer (which
    /// must start here, or this fails saying why).
    pub fn with_renderer(
        sizes: &[(u32, u32)],
        sink: Box<dyn DisplaySink>,
        renderer: Renderer,
    ) -> std::io::Result<Self> {
        #[cfg_attr(not(feature = "virgl"), allow(unused_mut))]
        let mut gpu = Self::new(sizes, sink)?;
        if renderer.is_2d() {
            return Ok(gpu);
        }
        #[cfg(feature = "virgl")]
        {
            gpu.three_d = Some(virgl::Renderer3d::new(renderer).map_err(std::io::Error::other)?);
            Ok(gpu)
        }
        #[cfg(not(feature = "virgl"))]
        Err(std::io::Error::other(
            "this build of Phyllome has no 3D renderer (built without the `virgl` feature); choose 2D graphics",
        ))
    }

    /// Gives a 3D device its host-visible region: blob resources are offered from now on
    /// (`VIRTIO_GPU_F_RESOURCE_BLOB`). A 2D device has no use for one and refuses it.
    #[cfg(feature = "virgl")]
    pub fn set_host_visible(&mut self, region: host_visible::HostVisible) -> bool {
        if !self.is_3d() {
            return false;
        }
        self.host_visible = Some(region);
        true
    }

    /// Offers the transport a host-visible region of `size` bytes, where this renderer's
    /// mappable blobs can be shown to a guest from this process or another one; `Err`
    /// says why not (a 2D device, or a renderer whose blobs are not files), and blobs stay
    /// off.
    #[cfg(feature = "virgl")]
    pub fn offer_host_visible(&mut self, size: u64) -> Result<(), String> {
        let Some(t) = self.three_d.as_mut() else {
            return Err("a 2D device has no blobs".into());
        };
        t.blobs_shareable()?;
        self.host_visible_offer = Some(size / host_visible::PAGE * host_visible::PAGE);
        Ok(())
    }

    /// Whether 3D requests are served.
    pub fn is_3d(&self) -> bool {
        #[cfg(feature = "virgl")]
        {
            self.three_d.is_some()
        }
        #[cfg(not(feature = "virgl"))]
        false
    }

    /// Whether `id` names a 3D resource.
    fn is_3d_resource(&self, id: u32) -> bool {
        #[cfg(feature = "virgl")]
        {
            self.three_d.as_ref().is_some_and(|t| t.has(id))
        }
        #[cfg(not(feature = "virgl"))]
        {
            let _ = id;
            false
        }
    }

    /// Host memory all resources take (2D here, 3D estimated).
    fn all_resource_bytes(&self) -> u64 {
        #[cfg(feature = "virgl")]
        {
            self.resource_bytes + self.three_d.as_ref().map_or(0, virgl::Renderer3d::bytes)
        }
        #[cfg(not(feature = "virgl"))]
        self.resource_bytes
    }

    /// Caps the host memory resources may take.
    pub fn set_resource_limit(&mut self, bytes: u64) {
        self.resource_limit = bytes;
    }

    /// Host memory the guest's resources take now.
    pub fn resource_bytes(&self) -> u64 {
        self.resource_bytes
    }

    /// The host asks for a new size of `scanout` (the window was resized): the guest
    /// learns it from the next display info; the caller raises the configuration
    /// interrupt. Returns false for a scanout that does not exist.
    pub fn request_size(&mut self, scanout: u32, width: u32, height: u32) -> bool {
        let Some(s) = self.scanouts.get_mut(scanout as usize) else {
            return false;
        };
        s.width = width.clamp(1, MAX_DIMENSION);
        s.height = height.clamp(1, MAX_DIMENSION);
        self.events_read |= EVENT_DISPLAY;
        let _ = self.config_changed.write(1);
        true
    }

    fn display_info(&self) -> CmdResult {
        let mut info = Box::new(RespDisplayInfo::default());
        for (slot, s) in info.pmodes.iter_mut().zip(&self.scanouts) {
            slot.r = Rect {
                x: 0,
                y: 0,
                width: s.width,
                height: s.height,
            };
            slot.enabled = 1;
        }
        Ok(Response::DisplayInfo(info))
    }

    fn get_edid(&self, body: GetEdid) -> CmdResult {
        let s = self
            .scanouts
            .get(body.scanout as usize)
            .ok_or(RESP_ERR_INVALID_SCANOUT_ID)?;
        let block = edid::edid(s.width, s.height);
        let mut resp = Box::new(RespEdid {
            hdr: CtrlHdr::default(),
            size: block.len() as u32,
            padding: 0,
            edid: [0; 1024],
        });
        resp.edid[..block.len()].copy_from_slice(&block);
        Ok(Response::Edid(resp))
    }

    fn create_2d(&mut self, c: ResourceCreate2d) -> CmdResult {
        if c.resource_id == 0
            || self.resources.contains_key(&c.resource_id)
            || self.is_3d_resource(c.resource_id)
        {
            return Err(RESP_ERR_INVALID_RESOURCE_ID);
        }
        if !format_supported(c.format)
            || c.width == 0
            || c.height == 0
            || c.width > MAX_DIMENSION
            || c.height > MAX_DIMENSION
        {
            return Err(RESP_ERR_INVALID_PARAMETER);
        }
        let bytes = u64::from(c.width) * u64::from(c.height) * u64::from(BYTES_PER_PIXEL);
        if self.all_resource_bytes() + bytes > self.resource_limit {
            return Err(RESP_ERR_OUT_OF_MEMORY);
        }
        let mut heap = Vec::new();
        heap.try_reserve_exact(bytes as usize)
            .map_err(|_| RESP_ERR_OUT_OF_MEMORY)?;
        heap.resize(bytes as usize, 0);
        let pixels = Storage::Heap(heap);
        self.resource_bytes += bytes;
        self.resources.insert(
            c.resource_id,
            Resource {
                width: c.width,
                height: c.height,
                format: c.format,
                pixels,
                backing: Vec::new(),
            },
        );
        Ok(Response::NoData)
    }

    fn unref(&mut self, id: u32) -> CmdResult {
        #[cfg(feature = "virgl")]
        if let Some(t) = self.three_d.as_mut().filter(|t| t.has(id)) {
            // A mapped blob leaves the guest's view before its memory goes.
            if let Some(region) = self.host_visible.as_mut().filter(|r| r.is_mapped(id)) {
                t.unmap_blob(id, region)?;
            }
            t.unref(id)?;
            self.scanout_gone(id);
            return Ok(Response::NoData);
        }
        let r = self
            .resources
            .remove(&id)
            .ok_or(RESP_ERR_INVALID_RESOURCE_ID)?;
        self.resource_bytes -= r.pixels.len() as u64;
        self.scanout_gone(id);
        Ok(Response::NoData)
    }

    /// Whether the firmware's boot display (ramfb) has scanout 0's screen now (see
    /// [`boot_display`]); when not, its next frame must be whole.
    pub fn boot_display_on_screen(&self) -> bool {
        self.boot.on_screen()
    }

    /// Shows a frame of the firmware's boot display (ramfb), which changed, on scanout 0:
    /// it has the screen until it is still for a while.
    pub fn show_firmware_frame(&mut self, frame: &Frame<'_>) {
        self.boot.ramfb_changed(std::time::Instant::now());
        self.sink.frame(frame);
    }

    /// What a virtio-gpu flush of scanout `i` may show now.
    fn turn(&mut self, i: usize) -> boot_display::GpuTurn {
        if i == 0 {
            self.boot.gpu_flush(std::time::Instant::now())
        } else {
            boot_display::GpuTurn::Damage
        }
    }

    /// Turns off the scanouts that showed resource `id`.
    fn scanout_gone(&mut self, id: u32) {
        for (i, s) in self.scanouts.iter_mut().enumerate() {
            if s.resource == id {
                s.resource = 0;
                s.held = None;
                self.sink.disabled(i as u32);
            }
        }
    }

    fn attach_backing(
        &mut self,
        mem: &GuestMemory,
        a: AttachBacking,
        reader: &mut Reader<'_, ()>,
    ) -> CmdResult {
        if a.nr_entries == 0 {
            return Err(RESP_ERR_INVALID_PARAMETER);
        }
        let backing = read_entries(mem, reader, a.nr_entries)?;
        #[cfg(feature = "virgl")]
        if let Some(t) = self.three_d.as_mut().filter(|t| t.has(a.resource_id)) {
            t.attach_backing(mem, a.resource_id, &backing)?;
            return Ok(Response::NoData);
        }
        let r = self
            .resources
            .get_mut(&a.resource_id)
            .ok_or(RESP_ERR_INVALID_RESOURCE_ID)?;
        r.backing = backing;
        Ok(Response::NoData)
    }

    fn detach_backing(&mut self, id: u32) -> CmdResult {
        #[cfg(feature = "virgl")]
        if let Some(t) = self.three_d.as_mut().filter(|t| t.has(id)) {
            t.detach_backing(id)?;
            return Ok(Response::NoData);
        }
        let r = self
            .resources
            .get_mut(&id)
            .ok_or(RESP_ERR_INVALID_RESOURCE_ID)?;
        r.backing.clear();
        Ok(Response::NoData)
    }

    fn set_scanout(&mut self, s: SetScanout) -> CmdResult {
        let index = s.scanout_id as usize;
        if index >= self.scanouts.len() {
            return Err(RESP_ERR_INVALID_SCANOUT_ID);
        }
        if s.resource_id == 0 {
            self.scanouts[index].resource = 0;
            self.scanouts[index].held = None;
            // A screen ramfb has stays.
            if index != 0 || !self.boot.on_screen() {
                self.sink.disabled(s.scanout_id);
            }
            return Ok(Response::NoData);
        }
        #[cfg(feature = "virgl")]
        if let Some(t) = self.three_d.as_mut().filter(|t| t.has(s.resource_id)) {
            let (w, h, _) = t.scanout_buffer(s.resource_id)?;
            if s.r.width == 0 || s.r.height == 0 || !s.r.inside(w, h) {
                return Err(RESP_ERR_INVALID_PARAMETER);
            }
            let scanout = &mut self.scanouts[index];
            scanout.resource = s.resource_id;
            scanout.held = None;
            scanout.held = None;
            scanout.rect = s.r;
            return Ok(Response::NoData);
        }
        let r = self
            .resources
            .get_mut(&s.resource_id)
            .ok_or(RESP_ERR_INVALID_RESOURCE_ID)?;
        if s.r.width == 0 || s.r.height == 0 || !s.r.inside(r.width, r.height) {
            return Err(RESP_ERR_INVALID_PARAMETER);
        }
        // Shown from now on: its pixels move where viewers can map them.
        r.pixels.share().map_err(|_| RESP_ERR_OUT_OF_MEMORY)?;
        let scanout = &mut self.scanouts[index];
        scanout.resource = s.resource_id;
        scanout.held = None;
        scanout.rect = s.r;
        Ok(Response::NoData)
    }

    fn transfer_to_host(&mut self, mem: &GuestMemory, t: TransferToHost2d) -> CmdResult {
        #[cfg(feature = "virgl")]
        if let Some(three_d) = self.three_d.as_mut().filter(|x| x.has(t.resource_id)) {
            three_d.transfer_to_host(
                0,
                &Transfer3d {
                    b: Box3d {
                        x: t.r.x,
                        y: t.r.y,
                        z: 0,
                        w: t.r.width,
                        h: t.r.height,
                        d: 1,
                    },
                    offset: t.offset,
                    resource_id: t.resource_id,
                    level: 0,
                    stride: 0,
                    layer_stride: 0,
                },
            )?;
            return Ok(Response::NoData);
        }
        let r = self
            .resources
            .get_mut(&t.resource_id)
            .ok_or(RESP_ERR_INVALID_RESOURCE_ID)?;
        if !t.r.inside(r.width, r.height) {
            return Err(RESP_ERR_INVALID_PARAMETER);
        }
        if r.backing.is_empty() {
            return Err(RESP_ERR_UNSPEC);
        }
        let stride = u64::from(r.stride());
        let row_bytes = (t.r.width * BYTES_PER_PIXEL) as usize;
        if t.r.x == 0 && t.r.width == r.width {
            // Whole rows: one contiguous block on both sides.
            let dst = (u64::from(t.r.y) * stride) as usize;
            let len = row_bytes * t.r.height as usize;
            if !r
                .pixels
                .fill_from_guest(mem, &r.backing, t.offset, dst, len)
            {
                return Err(RESP_ERR_INVALID_PARAMETER);
            }
            return Ok(Response::NoData);
        }
        for row in 0..u64::from(t.r.height) {
            let src = t
                .offset
                .checked_add(stride * row)
                .ok_or(RESP_ERR_INVALID_PARAMETER)?;
            let dst =
                ((u64::from(t.r.y) + row) * stride + u64::from(t.r.x * BYTES_PER_PIXEL)) as usize;
            if !r
                .pixels
                .fill_from_guest(mem, &r.backing, src, dst, row_bytes)
            {
                return Err(RESP_ERR_INVALID_PARAMETER);
            }
        }
        Ok(Response::NoData)
    }

    fn flush(&mut self, f: ResourceFlush) -> CmdResult {
        #[cfg(feature = "virgl")]
        if self.is_3d_resource(f.resource_id) {
            return self.flush_3d(f);
        }
        let r = self
            .resources
            .get(&f.resource_id)
            .ok_or(RESP_ERR_INVALID_RESOURCE_ID)?;
        if !f.r.inside(r.width, r.height) {
            return Err(RESP_ERR_INVALID_PARAMETER);
        }
        let hit: Vec<usize> = showing(&self.scanouts, &f).map(|(i, _, _)| i).collect();
        let turns: Vec<boot_display::GpuTurn> = hit.iter().map(|&i| self.turn(i)).collect();
        let r = self
            .resources
            .get(&f.resource_id)
            .ok_or(RESP_ERR_INVALID_RESOURCE_ID)?;
        for ((i, s, (x0, y0, x1, y1)), turn) in showing(&self.scanouts, &f).zip(turns) {
            // Scanout resources live in shared buffers (SET_SCANOUT moved them there).
            let Storage::Shared(buffer) = &r.pixels else {
                continue;
            };
            let damage = match turn {
                boot_display::GpuTurn::Hidden => continue,
                boot_display::GpuTurn::Whole => (0, 0, s.rect.width, s.rect.height),
                boot_display::GpuTurn::Damage => (x0 - s.rect.x, y0 - s.rect.y, x1 - x0, y1 - y0),
            };
            self.sink.frame(&s.frame(i, r, buffer, damage));
        }
        Ok(Response::NoData)
    }

    fn update_cursor(&mut self, c: UpdateCursor) {
        let scanout = c.pos.scanout_id;
        if scanout as usize >= self.scanouts.len() {
            return;
        }
        let cursor = if c.resource_id == 0 {
            Cursor::Hidden
        } else {
            match self.resources.get(&c.resource_id) {
                Some(r) if r.width == CURSOR_SIZE && r.height == CURSOR_SIZE => {
                    let mut pixels = vec![0u8; r.pixels.len()];
                    if !r.pixels.read(0, &mut pixels) {
                        return;
                    }
                    Cursor::Image {
                        width: r.width,
                        height: r.height,
                        hot: (c.hot_x.min(CURSOR_SIZE - 1), c.hot_y.min(CURSOR_SIZE - 1)),
                        pixels,
                    }
                }
                // Not a cursor-sized resource: ignored, as the cursor queue has no errors.
                _ => return,
            }
        };
        self.sink.cursor(scanout, &cursor);
        self.sink.cursor_moved(scanout, c.pos.x, c.pos.y);
    }

    fn control(
        &mut self,
        mem: &GuestMemory,
        hdr: &CtrlHdr,
        reader: &mut Reader<'_, ()>,
    ) -> CmdResult {
        fn body<T: vm_memory::ByteValued>(reader: &mut Reader<'_, ()>) -> Result<T, u32> {
            reader.read_obj().map_err(|_| RESP_ERR_INVALID_PARAMETER)
        }
        match hdr.kind {
            CMD_GET_DISPLAY_INFO => self.display_info(),
            CMD_GET_EDID => self.get_edid(body(reader)?),
            CMD_RESOURCE_CREATE_2D => self.create_2d(body(reader)?),
            CMD_RESOURCE_UNREF => self.unref(body::<ResourceOnly>(reader)?.resource_id),
            CMD_RESOURCE_ATTACH_BACKING => {
                let a = body(reader)?;
                self.attach_backing(mem, a, reader)
            }
            CMD_RESOURCE_DETACH_BACKING => {
                self.detach_backing(body::<ResourceOnly>(reader)?.resource_id)
            }
            CMD_SET_SCANOUT => self.set_scanout(body(reader)?),
            CMD_TRANSFER_TO_HOST_2D => self.transfer_to_host(mem, body(reader)?),
            CMD_RESOURCE_FLUSH => self.flush(body(reader)?),
            #[cfg(feature = "virgl")]
            CMD_GET_CAPSET_INFO
            | CMD_GET_CAPSET
            | CMD_CTX_CREATE
            | CMD_CTX_DESTROY
            | CMD_CTX_ATTACH_RESOURCE
            | CMD_CTX_DETACH_RESOURCE
            | CMD_RESOURCE_CREATE_3D
            | CMD_TRANSFER_TO_HOST_3D
            | CMD_TRANSFER_FROM_HOST_3D
            | CMD_SUBMIT_3D => self.control_3d(hdr, reader),
            #[cfg(feature = "virgl")]
            CMD_RESOURCE_CREATE_BLOB | CMD_RESOURCE_MAP_BLOB | CMD_RESOURCE_UNMAP_BLOB => {
                self.control_blob(mem, hdr, reader)
            }
            // Also every 3D command on a 2D device.
            _ => Err(RESP_ERR_UNSPEC),
        }
    }
}

/// `count` memory entries from the request, each wholly guest RAM (now, and for transfers
/// later).
fn read_entries(
    mem: &GuestMemory,
    reader: &mut Reader<'_, ()>,
    count: u32,
) -> Result<Vec<(u64, u32)>, u32> {
    if count > MAX_BACKING_ENTRIES {
        return Err(RESP_ERR_INVALID_PARAMETER);
    }
    let mut entries = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let e: MemEntry = reader.read_obj().map_err(|_| RESP_ERR_INVALID_PARAMETER)?;
        if e.length == 0 || !mem.check_range(GuestAddress(e.addr), e.length as usize) {
            return Err(RESP_ERR_UNSPEC);
        }
        entries.push((e.addr, e.length));
    }
    Ok(entries)
}

#[cfg(feature = "virgl")]
impl Gpu {
    /// The blob commands; `ERR_UNSPEC` where blobs are not offered (no host-visible
    /// region, or a 2D device).
    fn control_blob(
        &mut self,
        mem: &GuestMemory,
        hdr: &CtrlHdr,
        reader: &mut Reader<'_, ()>,
    ) -> CmdResult {
        let budget = self
            .resource_limit
            .saturating_sub(self.all_resource_bytes());
        let (Some(t), Some(region)) = (self.three_d.as_mut(), self.host_visible.as_mut()) else {
            return Err(RESP_ERR_UNSPEC);
        };
        fn read<T: vm_memory::ByteValued>(reader: &mut Reader<'_, ()>) -> Result<T, u32> {
            reader.read_obj().map_err(|_| RESP_ERR_INVALID_PARAMETER)
        }
        match hdr.kind {
            CMD_RESOURCE_CREATE_BLOB => {
                let c: ResourceCreateBlob = read(reader)?;
                if c.resource_id == 0
                    || self.resources.contains_key(&c.resource_id)
                    || t.has(c.resource_id)
                {
                    return Err(RESP_ERR_INVALID_RESOURCE_ID);
                }
                let entries = read_entries(mem, reader, c.nr_entries)?;
                t.create_blob(mem, hdr.ctx_id, &c, &entries, budget, region.size())
                    .map(|()| Response::NoData)
            }
            CMD_RESOURCE_MAP_BLOB => {
                let m: ResourceMapBlob = read(reader)?;
                t.map_blob(m.resource_id, m.offset, region)
                    .map(Response::MapInfo)
            }
            CMD_RESOURCE_UNMAP_BLOB => {
                let r: ResourceOnly = read(reader)?;
                t.unmap_blob(r.resource_id, region)
                    .map(|()| Response::NoData)
            }
            _ => Err(RESP_ERR_UNSPEC),
        }
    }

    /// The 3D commands; `ERR_UNSPEC` on a 2D device.
    fn control_3d(&mut self, hdr: &CtrlHdr, reader: &mut Reader<'_, ()>) -> CmdResult {
        fn body<T: vm_memory::ByteValued>(reader: &mut Reader<'_, ()>) -> Result<T, u32> {
            reader.read_obj().map_err(|_| RESP_ERR_INVALID_PARAMETER)
        }
        let budget = self
            .resource_limit
            .saturating_sub(self.all_resource_bytes());
        let used_2d =
            |id: u32, resources: &HashMap<u32, Resource>| id == 0 || resources.contains_key(&id);
        let Some(t) = self.three_d.as_mut() else {
            return Err(RESP_ERR_UNSPEC);
        };
        match hdr.kind {
            CMD_GET_CAPSET_INFO => {
                let q: GetCapsetInfo = body(reader)?;
                t.capset_info(q.capset_index).map(Response::CapsetInfo)
            }
            CMD_GET_CAPSET => {
                let q: GetCapset = body(reader)?;
                t.capset(q.capset_id, q.capset_version)
                    .map(Response::Capset)
            }
            CMD_CTX_CREATE => t
                .ctx_create(hdr.ctx_id, &body(reader)?)
                .map(|()| Response::NoData),
            CMD_CTX_DESTROY => t.ctx_destroy(hdr.ctx_id).map(|()| Response::NoData),
            // Linux attaches every buffer a process opens to its context, dumb (2D) ones
            // too. Those live in the device's own memory, not the renderer's: nothing to
            // attach, once the context is known.
            CMD_CTX_ATTACH_RESOURCE | CMD_CTX_DETACH_RESOURCE => {
                let r: ResourceOnly = body(reader)?;
                if self.resources.contains_key(&r.resource_id) {
                    return t.check_ctx(hdr.ctx_id).map(|()| Response::NoData);
                }
                if hdr.kind == CMD_CTX_ATTACH_RESOURCE {
                    t.attach(hdr.ctx_id, r.resource_id)
                } else {
                    t.detach(hdr.ctx_id, r.resource_id)
                }
                .map(|()| Response::NoData)
            }
            CMD_RESOURCE_CREATE_3D => {
                let c: ResourceCreate3d = body(reader)?;
                if used_2d(c.resource_id, &self.resources) || t.has(c.resource_id) {
                    return Err(RESP_ERR_INVALID_RESOURCE_ID);
                }
                t.create(&c, budget).map(|()| Response::NoData)
            }
            CMD_TRANSFER_TO_HOST_3D => t
                .transfer_to_host(hdr.ctx_id, &body(reader)?)
                .map(|()| Response::NoData),
            CMD_TRANSFER_FROM_HOST_3D => t
                .transfer_from_host(hdr.ctx_id, &body(reader)?)
                .map(|()| Response::NoData),
            CMD_SUBMIT_3D => {
                let c: CmdSubmit = body(reader)?;
                // The commands must be in the request, whole: never past its descriptors.
                if c.size > virgl::MAX_SUBMIT || c.size as usize > reader.available_bytes() {
                    return Err(RESP_ERR_INVALID_PARAMETER);
                }
                let mut commands = vec![0u8; c.size as usize];
                std::io::Read::read_exact(reader, &mut commands)
                    .map_err(|_| RESP_ERR_INVALID_PARAMETER)?;
                t.submit(hdr.ctx_id, commands).map(|()| Response::NoData)
            }
            _ => Err(RESP_ERR_UNSPEC),
        }
    }

    /// A flush of a 3D resource: the shown part is read back from the renderer into the
    /// scanout's shared buffer, then handed to the display.
    ///
    /// Paced by the display: while it does not want a frame, the damage is held (merged)
    /// and read back later, once, by [`Gpu::flush_pending`], so a guest drawing faster
    /// than the screen is not read back frame by frame for nothing.
    fn flush_3d(&mut self, f: ResourceFlush) -> CmdResult {
        let Some(t) = self.three_d.as_mut() else {
            return Err(RESP_ERR_UNSPEC);
        };
        let (width, height, format) = t.scanout_buffer(f.resource_id)?;
        if !f.r.inside(width, height) {
            return Err(RESP_ERR_INVALID_PARAMETER);
        }
        let hit: Vec<(usize, (u32, u32, u32, u32))> = showing(&self.scanouts, &f)
            .map(|(i, _, damage)| (i, damage))
            .collect();
        let turns: Vec<boot_display::GpuTurn> = hit.iter().map(|&(i, _)| self.turn(i)).collect();
        let Some(t) = self.three_d.as_mut() else {
            return Err(RESP_ERR_UNSPEC);
        };
        for ((i, (mut x0, mut y0, mut x1, mut y1)), turn) in hit.into_iter().zip(turns) {
            let s = &mut self.scanouts[i];
            match turn {
                // Held until ramfb gives the screen back (then it is read back whole).
                boot_display::GpuTurn::Hidden => {
                    s.held = Some(s.whole());
                    continue;
                }
                boot_display::GpuTurn::Whole => (x0, y0, x1, y1) = s.whole(),
                boot_display::GpuTurn::Damage => {}
            }
            s.held = Some(match s.held {
                None => (x0, y0, x1, y1),
                Some((a, b, c, d)) => (a.min(x0), b.min(y0), c.max(x1), d.max(y1)),
            });
            if self.sink.wants_frame(i as u32) {
                show_held(t, self.sink.as_mut(), i, s, width, format)?;
            }
        }
        Ok(Response::NoData)
    }

    /// Reads back and shows the damage held for scanouts whose display now wants a frame
    /// (the viewer showed the last one).
    pub fn flush_pending(&mut self) {
        let Some(t) = self.three_d.as_mut() else {
            return;
        };
        let ramfb_shown = self.boot.on_screen();
        for (i, s) in self.scanouts.iter_mut().enumerate() {
            if s.held.is_none() || !self.sink.wants_frame(i as u32) || (i == 0 && ramfb_shown) {
                continue;
            }
            let shown = t.scanout_buffer(s.resource).and_then(|(width, _, format)| {
                show_held(t, self.sink.as_mut(), i, s, width, format)
            });
            if let Err(code) = shown {
                s.held = None;
                log::debug!("cannot show scanout {i}'s held frame: {code:#x}");
            }
        }
    }

    /// Waits for the fence a successful request asked for.
    fn fence_3d(&mut self, hdr: &CtrlHdr) -> Result<(), u32> {
        match self.three_d.as_mut() {
            Some(t) if hdr.flags & FLAG_FENCE != 0 => t.fence(hdr),
            _ => Ok(()),
        }
    }
}

#[cfg(not(feature = "virgl"))]
impl Gpu {
    /// A 2D device holds nothing back: its frames are in shared memory already.
    pub fn flush_pending(&mut self) {}
}

/// Reads scanout `i`'s held damage back from the renderer and hands it to the display.
#[cfg(feature = "virgl")]
fn show_held(
    t: &mut virgl::Renderer3d,
    sink: &mut dyn DisplaySink,
    i: usize,
    s: &mut Scanout,
    width: u32,
    format: u32,
) -> Result<(), u32> {
    let Some((x0, y0, x1, y1)) = s.held.take() else {
        return Ok(());
    };
    let damage = Rect {
        x: x0,
        y: y0,
        width: x1 - x0,
        height: y1 - y0,
    };
    let buffer = t.read_back(s.resource, damage)?;
    let stride = width * BYTES_PER_PIXEL;
    let offset = (s.rect.y * stride + s.rect.x * BYTES_PER_PIXEL) as usize;
    sink.frame(&Frame {
        scanout: i as u32,
        width: s.rect.width,
        height: s.rect.height,
        stride,
        format,
        buffer,
        offset,
        damage: (x0 - s.rect.x, y0 - s.rect.y, x1 - x0, y1 - y0),
    });
    Ok(())
}

/// Copies `out.len()` bytes starting `offset` bytes into the backing (a scatter list).
fn read_backing(mem: &GuestMemory, backing: &[(u64, u32)], offset: u64, out: &mut [u8]) -> bool {
    let Some(ranges) = backing_ranges(backing, offset, out.len()) else {
        return false;
    };
    let mut done = 0;
    ranges.iter().all(|&(addr, n)| {
        let ok = mem
            .read_slice(&mut out[done..done + n], GuestAddress(addr))
            .is_ok();
        done += n;
        ok
    })
}

/// Writes the response header (echoing the fence) and body; returns the bytes written.
fn respond(writer: &mut Writer<'_, ()>, req: &CtrlHdr, result: CmdResult) -> u32 {
    let (kind, body): (u32, Vec<u8>) = match result {
        Ok(Response::NoData) => (RESP_OK_NODATA, Vec::new()),
        Ok(Response::DisplayInfo(info)) => (
            RESP_OK_DISPLAY_INFO,
            vm_memory::ByteValued::as_slice(&*info)[24..].to_vec(),
        ),
        Ok(Response::Edid(e)) => (
            RESP_OK_EDID,
            vm_memory::ByteValued::as_slice(&*e)[24..].to_vec(),
        ),
        Ok(Response::CapsetInfo(c)) => (
            RESP_OK_CAPSET_INFO,
            vm_memory::ByteValued::as_slice(&c).to_vec(),
        ),
        Ok(Response::Capset(data)) => (RESP_OK_CAPSET, data),
        Ok(Response::MapInfo(map_info)) => (
            RESP_OK_MAP_INFO,
            vm_memory::ByteValued::as_slice(&RespMapInfo {
                map_info,
                padding: 0,
            })
            .to_vec(),
        ),
        Err(code) => (code, Vec::new()),
    };
    let mut hdr = CtrlHdr {
        kind,
        ..CtrlHdr::default()
    };
    if req.flags & FLAG_FENCE != 0 {
        hdr.flags = FLAG_FENCE;
        hdr.fence_id = req.fence_id;
        hdr.ctx_id = req.ctx_id;
        hdr.ring_idx = req.ring_idx;
    }
    if writer.write_obj(hdr).is_err() {
        return 0;
    }
    let n = body.len().min(writer.available_bytes());
    if writer.write_all(&body[..n]).is_err() {
        return 24;
    }
    (24 + n) as u32
}

impl DeviceCore for Gpu {
    fn device_type(&self) -> u32 {
        DEVICE_TYPE
    }
    fn num_queues(&self) -> usize {
        2
    }
    fn max_queue_size(&self) -> u16 {
        QUEUE_SIZE
    }
    fn features(&self) -> u64 {
        let three_d = if self.is_3d() {
            F_VIRGL | F_CONTEXT_INIT
        } else {
            0
        };
        #[cfg(feature = "virgl")]
        let three_d =
            if self.is_3d() && (self.host_visible.is_some() || self.host_visible_offer.is_some()) {
                three_d | F_RESOURCE_BLOB
            } else {
                three_d
            };
        VIRTIO_F_VERSION_1
            | VIRTIO_RING_F_EVENT_IDX
            | VIRTIO_RING_F_INDIRECT_DESC
            | F_EDID
            | three_d
    }
    /// `struct virtio_gpu_config`: events_read, events_clear, num_scanouts, num_capsets.
    fn config(&self) -> Vec<u8> {
        let mut c = Vec::with_capacity(16);
        c.extend_from_slice(&self.events_read.to_le_bytes());
        c.extend_from_slice(&0u32.to_le_bytes());
        c.extend_from_slice(&(self.scanouts.len() as u32).to_le_bytes());
        #[cfg(feature = "virgl")]
        let capsets = self
            .three_d
            .as_ref()
            .map_or(0, virgl::Renderer3d::num_capsets);
        #[cfg(not(feature = "virgl"))]
        let capsets = 0u32;
        c.extend_from_slice(&capsets.to_le_bytes());
        c
    }

    /// `events_clear` (offset 4) acknowledges events; nothing else is writable.
    fn write_config(&mut self, offset: usize, data: &[u8]) {
        if offset == 4 && data.len() == 4 {
            let clear = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
            self.events_read &= !clear;
        }
    }

    fn config_event(&self) -> Option<&vmm_sys_util::eventfd::EventFd> {
        Some(&self.config_changed)
    }

    fn shared_memory(&self) -> Vec<(u8, u64)> {
        #[cfg(feature = "virgl")]
        if let Some(size) = self.host_visible_offer {
            return vec![(host_visible::SHMEM_ID_HOST_VISIBLE, size)];
        }
        Vec::new()
    }

    fn set_shared_memory(
        &mut self,
        mapper: Option<std::sync::Arc<dyn crate::devices::virtio::shm::ShmMapper>>,
    ) {
        #[cfg(feature = "virgl")]
        if let Some(size) = self.host_visible_offer {
            if let Some(mut old) = self.host_visible.take() {
                old.clear();
            }
            self.host_visible = mapper.map(|m| {
                host_visible::HostVisible::new(size, Box::new(host_visible::SharedRegion(m)))
            });
        }
        #[cfg(not(feature = "virgl"))]
        let _ = mapper;
    }

    /// The driver reset the device: its resources and scanouts go; the display sizes
    /// (the host's) stay.
    fn reset(&mut self) {
        self.resources.clear();
        self.resource_bytes = 0;
        #[cfg(feature = "virgl")]
        {
            if let Some(region) = self.host_visible.as_mut() {
                region.clear();
            }
            if let Some(t) = self.three_d.as_mut() {
                t.reset();
            }
        }
        let ramfb_shown = self.boot.on_screen();
        for (i, s) in self.scanouts.iter_mut().enumerate() {
            if s.resource != 0 {
                s.resource = 0;
                s.held = None;
                if i != 0 || !ramfb_shown {
                    self.sink.disabled(i as u32);
                }
            }
        }
    }

    fn process(&mut self, queue: usize, mem: &GuestMemory, chain: Chain<'_>) -> u32 {
        let Ok(mut reader) = chain.clone().reader(mem) else {
            return 0;
        };
        let Ok(mut writer) = chain.writer(mem) else {
            return 0;
        };
        let Ok(hdr) = reader.read_obj::<CtrlHdr>() else {
            return respond(&mut writer, &CtrlHdr::default(), Err(RESP_ERR_UNSPEC));
        };
        if queue == CURSOR_QUEUE {
            match hdr.kind {
                CMD_UPDATE_CURSOR => {
                    if let Ok(c) = reader.read_obj::<UpdateCursor>() {
                        self.update_cursor(c);
                    }
                }
                CMD_MOVE_CURSOR => {
                    if let Ok(p) = reader.read_obj::<CursorPos>() {
                        if (p.scanout_id as usize) < self.scanouts.len() {
                            self.sink.cursor_moved(p.scanout_id, p.x, p.y);
                        }
                    }
                }
                _ => {}
            }
            // Cursor requests carry no response.
            return 0;
        }
        let result = self.control(mem, &hdr, &mut reader);
        if let Err(code) = result {
            // A guest can repeat a bad request forever: only at debug level.
            log::debug!("virtio-gpu: request {:#x} failed with {code:#x}", hdr.kind);
        }
        // A fenced request is answered once its work is done.
        #[cfg(feature = "virgl")]
        let result = result.and_then(|r| self.fence_3d(&hdr).map(|()| r));
        respond(&mut writer, &hdr, result)
    }
}

/// A [`Gpu`] shared between the machine's transport and the VM's control thread (which
/// asks for new display sizes), kept across reboots.
#[derive(Debug)]
pub struct SharedGpu {
    gpu: std::sync::Arc<std::sync::Mutex<Gpu>>,
    config_changed: vmm_sys_util::eventfd::EventFd,
}

impl SharedGpu {
    /// Shares `gpu`.
    pub fn new(gpu: std::sync::Arc<std::sync::Mutex<Gpu>>) -> std::io::Result<Self> {
        let config_changed = crate::devices::bus::lock(&gpu).config_changed.try_clone()?;
        Ok(Self {
            gpu,
            config_changed,
        })
    }
}

impl DeviceCore for SharedGpu {
    fn device_type(&self) -> u32 {
        crate::devices::bus::lock(&self.gpu).device_type()
    }
    fn num_queues(&self) -> usize {
        crate::devices::bus::lock(&self.gpu).num_queues()
    }
    fn max_queue_size(&self) -> u16 {
        crate::devices::bus::lock(&self.gpu).max_queue_size()
    }
    fn features(&self) -> u64 {
        crate::devices::bus::lock(&self.gpu).features()
    }
    fn config(&self) -> Vec<u8> {
        crate::devices::bus::lock(&self.gpu).config()
    }
    fn write_config(&mut self, offset: usize, data: &[u8]) {
        crate::devices::bus::lock(&self.gpu).write_config(offset, data);
    }
    fn config_event(&self) -> Option<&vmm_sys_util::eventfd::EventFd> {
        Some(&self.config_changed)
    }
    fn reset(&mut self) {
        crate::devices::bus::lock(&self.gpu).reset();
    }
    fn shared_memory(&self) -> Vec<(u8, u64)> {
        crate::devices::bus::lock(&self.gpu).shared_memory()
    }
    fn set_shared_memory(
        &mut self,
        mapper: Option<std::sync::Arc<dyn crate::devices::virtio::shm::ShmMapper>>,
    ) {
        crate::devices::bus::lock(&self.gpu).set_shared_memory(mapper);
    }
    fn process(&mut self, queue: usize, mem: &GuestMemory, chain: Chain<'_>) -> u32 {
        crate::devices::bus::lock(&self.gpu).process(queue, mem, chain)
    }
}

#[cfg(test)]
mod tests;
