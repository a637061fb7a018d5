//! 3D for the virtio-gpu device: contexts, 3D resources, transfers, command submission and
//! capability sets, carried out by virglrenderer through `rutabaga_gfx`. The renderer runs
//! headless (EGL surfaceless, desktop OpenGL: a GPU's render node where there is one,
//! llvmpipe otherwise), and a 3D resource shown on a scanout is read back into a shared buffer for
//! the display, because llvmpipe cannot export dma-bufs (asking crashes inside Mesa).
//!
//! Every id and size the guest sends is checked here before virglrenderer sees it: unknown
//! contexts and resources, resources in use by the 2D side, capset indexes and ids we do not
//! offer, backing outside guest RAM, command buffers longer than their descriptor. Fences
//! complete before their response is written (the worker polls the renderer until the
//! fence retires, with a time limit), so a response always means "done".
//!
//! virglrenderer keeps global state and starts once per process (rutabaga refuses a second
//! start, even after the first is dropped), and its EGL context belongs to the thread that
//! made it. So the process has one renderer thread, started on first use and kept, that
//! owns rutabaga; every call goes there (the device may be served from any thread), and one
//! device at a time holds it ([`Renderer3d::new`] refuses a second; dropping the device
//! clears its contexts and resources and hands the renderer back). That is one 3D VM per
//! process: the GPU device process, as the design wants.

use super::host_visible::{BlobMemory, HostVisible, RegionError};
use super::protocol::*;
use crate::config::Renderer;
use crate::console_conn::buffer::SharedBuffer;
use crate::memory::GuestMemory;
use rutabaga_gfx::{
    ResourceCreate3D, Rutabaga, RutabagaBuilder, RutabagaComponentType, RutabagaFence,
    RutabagaFenceHandler, RutabagaIovec, Transfer3D, RUTABAGA_CAPSET_VENUS, RUTABAGA_CAPSET_VIRGL,
    RUTABAGA_CAPSET_VIRGL2, RUTABAGA_FLAG_FENCE, RUTABAGA_FLAG_INFO_RING_IDX,
    RUTABAGA_MAP_CACHE_CACHED, RUTABAGA_MEM_HANDLE_TYPE_DMABUF, RUTABAGA_MEM_HANDLE_TYPE_SHM,
};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};
use vm_memory::{GuestAddress, GuestMemoryBackend};

/// Largest command buffer one SUBMIT_3D may carry.
pub const MAX_SUBMIT: u32 = 4 << 20;
/// How long a fence may take before its request fails.
const FENCE_TIMEOUT: Duration = Duration::from_secs(10);
/// Most contexts a guest may hold.
const MAX_CONTEXTS: usize = 1024;

/// One device at a time uses the process's renderer.
static IN_USE: AtomicBool = AtomicBool::new(false);
/// The process's renderer thread, once started (or why it could not start).
static ENGINE: Mutex<Option<Result<Engine, String>>> = Mutex::new(None);

/// The renderer thread: where its work goes, and the capsets it has.
#[derive(Clone)]
struct Engine {
    jobs: Sender<Job>,
    capsets: Vec<RespCapsetInfo>,
    retired: Arc<Retired>,
}

/// Why the 3D renderer could not start.
#[derive(Debug, thiserror::Error)]
pub enum Renderer3dError {
    /// The renderer is 2D: nothing to start.
    #[error("The 2D renderer needs no 3D renderer.")]
    NotThreeD,
    /// Another renderer runs in this process.
    #[error("A 3D renderer runs in this process already; virglrenderer allows one.")]
    Busy,
    /// virglrenderer (or EGL under it) failed.
    #[error("The 3D renderer (virglrenderer, EGL surfaceless) cannot start here: {0}. Choose 2D graphics, or install Mesa's EGL driver.")]
    Start(String),
}

/// A 3D resource as the device tracks it (virglrenderer holds the pixels).
#[derive(Debug)]
struct Resource {
    width: u32,
    height: u32,
    format: u32,
    bytes: u64,
    /// Where it is read back to while a scanout shows it.
    readback: Option<SharedBuffer>,
    /// A blob's flags (`BLOB_FLAG_*`); None for a classic 3D resource.
    blob: Option<u32>,
    /// A mappable blob's memory as a file, once exported (kept: rutabaga hands it out once).
    exported: Option<std::fs::File>,
    /// Whether it is mapped through the renderer's own pointer (unmapped through it too).
    pointer_mapped: bool,
}

/// virgl's `PIPE_RESOURCE_CREATE`: a `size`-byte persistent, coherent buffer the next
/// `RESOURCE_CREATE_BLOB` with `blob_id` turns into a mappable host blob (what Mesa's
/// guest driver sends for `GL_MAP_PERSISTENT_BIT` buffers).
pub(crate) fn pipe_buffer_stream(blob_id: u32, size: u32) -> Vec<u8> {
    const PIPE_RESOURCE_CREATE: u32 = 48;
    const PIPE_BUFFER: u32 = 0;
    const FORMAT_R8_UNORM: u32 = 64;
    const BIND_VERTEX_BUFFER: u32 = 1 << 4;
    const MAP_PERSISTENT_COHERENT: u32 = (1 << 1) | (1 << 2);
    let words = [
        PIPE_RESOURCE_CREATE | (11 << 16),
        PIPE_BUFFER,
        FORMAT_R8_UNORM,
        BIND_VERTEX_BUFFER,
        size,
        1,
        1,
        1,
        0,
        0,
        MAP_PERSISTENT_COHERENT,
        blob_id,
    ];
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

/// Retired fences, by (context, ring): the latest fence id.
#[derive(Debug, Default)]
struct Retired {
    done: Mutex<HashMap<(u32, u8), u64>>,
    changed: Condvar,
}

/// Work for the renderer's thread.
type Job = Box<dyn FnOnce(&mut Rutabaga) + Send>;

/// The device's 3D side.
pub struct Renderer3d {
    jobs: Sender<Job>,
    /// The capsets this device offers (of the renderer's, those `renderer` allows).
    capsets: Vec<RespCapsetInfo>,
    renderer: Renderer,
    contexts: HashSet<u32>,
    resources: HashMap<u32, Resource>,
    retired: Arc<Retired>,
}

impl std::fmt::Debug for Renderer3d {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Renderer3d")
            .field("renderer", &self.renderer)
            .field("contexts", &self.contexts.len())
            .field("resources", &self.resources.len())
            .finish_non_exhaustive()
    }
}

impl Drop for Renderer3d {
    fn drop(&mut self) {
        // The next device finds the renderer as new.
        self.reset();
        IN_USE.store(false, Ordering::SeqCst);
    }
}

/// Unit tests take turns with the process's one renderer (anywhere in the crate).
#[cfg(test)]
pub(crate) fn test_turn() -> std::sync::MutexGuard<'static, ()> {
    static TURN: Mutex<()> = Mutex::new(());
    TURN.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The venus wire format this process's virglrenderer speaks (the first word of its venus
/// capset), or None when it has no venus capset. 0 means its venus cannot serve guests:
/// Debian 12's virglrenderer 0.10.4 reports 0; guests' Mesa needs 1 or newer.
pub fn venus_wire_format() -> Result<Option<u32>, Renderer3dError> {
    let renderer = Renderer3d::new(Renderer::Venus)?;
    let Some(info) = renderer
        .capsets
        .iter()
        .find(|c| c.capset_id == RUTABAGA_CAPSET_VENUS)
        .copied()
    else {
        return Ok(None);
    };
    let bytes = renderer
        .capset(info.capset_id, info.capset_max_version)
        .map_err(|code| {
            Renderer3dError::Start(format!("the venus capset is unreadable ({code:#x})"))
        })?;
    Ok(bytes
        .get(..4)
        .and_then(|w| w.try_into().ok())
        .map(u32::from_le_bytes))
}

/// Each entry (checked guest RAM) as the host addresses virglrenderer reads and writes.
fn iovecs(mem: &GuestMemory, entries: &[(u64, u32)]) -> Result<Vec<RutabagaIovec>, u32> {
    let mut iovecs = Vec::with_capacity(entries.len());
    for &(addr, len) in entries {
        // One entry may span two regions (RAM around the MMIO hole): one iovec each.
        for slice in mem.get_slices(GuestAddress(addr), len as usize) {
            let slice = slice.map_err(|_| RESP_ERR_UNSPEC)?;
            iovecs.push(RutabagaIovec {
                base: slice.ptr_guard_mut().as_ptr().cast(),
                len: slice.len(),
            });
        }
    }
    Ok(iovecs)
}

/// Gallium's `PIPE_BUFFER` target: `width` is a size in bytes.
const PIPE_BUFFER: u32 = 0;
/// Largest buffer resource.
const MAX_BUFFER: u32 = 1 << 30;

/// An estimate of the host memory a 3D resource takes, or None when its description is
/// out of bounds: textures up to 16384 texels a side (4 bytes a texel, a third more for
/// mipmaps), buffers up to 1 GiB.
fn resource_bytes(c: &ResourceCreate3d) -> Option<u64> {
    if c.width == 0 || c.last_level > 15 || c.nr_samples > 16 || c.array_size > 2048 {
        return None;
    }
    if c.target == PIPE_BUFFER {
        return (c.width <= MAX_BUFFER && c.height <= 1 && c.depth <= 1 && c.array_size <= 1)
            .then_some(u64::from(c.width));
    }
    let max = super::MAX_DIMENSION;
    if c.width > max || c.height > max || c.depth > max {
        return None;
    }
    let texels = u64::from(c.width)
        * u64::from(c.height.max(1))
        * u64::from(c.depth.max(1))
        * u64::from(c.array_size.max(1))
        * u64::from(c.nr_samples.max(1));
    Some(texels * 4 * 4 / 3)
}

/// The capsets a renderer offers.
fn capset_mask(renderer: Renderer) -> u64 {
    let virgl = (1 << RUTABAGA_CAPSET_VIRGL) | (1 << RUTABAGA_CAPSET_VIRGL2);
    match renderer {
        Renderer::TwoD => 0,
        Renderer::Virgl => virgl,
        Renderer::Venus => virgl | (1 << RUTABAGA_CAPSET_VENUS),
    }
}

impl Renderer3d {
    /// Takes the process's renderer (starting it headless on first use) for a device
    /// drawing with `renderer` (virgl, or venus with virgl beside it).
    pub fn new(renderer: Renderer) -> Result<Self, Renderer3dError> {
        if renderer.is_2d() {
            return Err(Renderer3dError::NotThreeD);
        }
        if IN_USE.swap(true, Ordering::SeqCst) {
            return Err(Renderer3dError::Busy);
        }
        let engine = {
            let mut slot = ENGINE
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            slot.get_or_insert_with(start_engine).clone()
        };
        match engine {
            Ok(e) => {
                let mask = capset_mask(renderer);
                Ok(Self {
                    jobs: e.jobs,
                    capsets: e
                        .capsets
                        .into_iter()
                        .filter(|c| c.capset_id < 64 && mask & (1 << c.capset_id) != 0)
                        .collect(),
                    renderer,
                    contexts: HashSet::new(),
                    resources: HashMap::new(),
                    retired: e.retired,
                })
            }
            Err(why) => {
                IN_USE.store(false, Ordering::SeqCst);
                Err(Renderer3dError::Start(why))
            }
        }
    }

    /// Runs `f` on the renderer's thread and returns what it returns (`ERR_UNSPEC` when the
    /// thread is gone).
    fn run<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Rutabaga) -> R + Send + 'static,
    ) -> Result<R, u32> {
        let (tx, rx) = channel();
        let job: Job = Box::new(move |r| {
            let _ = tx.send(f(r));
        });
        self.jobs.send(job).map_err(|_| RESP_ERR_UNSPEC)?;
        rx.recv().map_err(|_| RESP_ERR_UNSPEC)
    }

    /// Which renderer this is.
    pub fn renderer(&self) -> Renderer {
        self.renderer
    }

    /// How many capsets the guest may ask about.
    pub fn num_capsets(&self) -> u32 {
        self.capsets.len() as u32
    }

    /// `GET_CAPSET_INFO`.
    pub fn capset_info(&self, index: u32) -> Result<RespCapsetInfo, u32> {
        self.capsets
            .get(index as usize)
            .copied()
            .ok_or(RESP_ERR_INVALID_PARAMETER)
    }

    /// `GET_CAPSET`: only ids and versions we offer.
    pub fn capset(&self, id: u32, version: u32) -> Result<Vec<u8>, u32> {
        let offered = self
            .capsets
            .iter()
            .find(|c| c.capset_id == id)
            .ok_or(RESP_ERR_INVALID_PARAMETER)?;
        if version > offered.capset_max_version {
            return Err(RESP_ERR_INVALID_PARAMETER);
        }
        self.run(move |r| r.get_capset(id, version))?
            .map_err(|_| RESP_ERR_INVALID_PARAMETER)
    }

    /// `CTX_CREATE`: a context of the type in `context_init` (0: virgl).
    pub fn ctx_create(&mut self, ctx_id: u32, c: &CtxCreate) -> Result<(), u32> {
        if ctx_id == 0 || self.contexts.contains(&ctx_id) || self.contexts.len() >= MAX_CONTEXTS {
            return Err(RESP_ERR_INVALID_CONTEXT_ID);
        }
        let capset = c.context_init & CONTEXT_INIT_CAPSET_ID_MASK;
        if capset != 0 && capset_mask(self.renderer) & (1 << capset) == 0 {
            return Err(RESP_ERR_INVALID_PARAMETER);
        }
        let len = (c.nlen as usize).min(c.debug_name.len());
        let name = String::from_utf8_lossy(&c.debug_name[..len]).into_owned();
        let init = c.context_init;
        self.run(move |r| r.create_context(ctx_id, init, Some(&name)))?
            .map_err(|_| RESP_ERR_UNSPEC)?;
        self.contexts.insert(ctx_id);
        Ok(())
    }

    /// `CTX_DESTROY`.
    pub fn ctx_destroy(&mut self, ctx_id: u32) -> Result<(), u32> {
        if !self.contexts.remove(&ctx_id) {
            return Err(RESP_ERR_INVALID_CONTEXT_ID);
        }
        self.run(move |r| r.destroy_context(ctx_id))?
            .map_err(|_| RESP_ERR_UNSPEC)
    }

    /// `ERR_INVALID_CONTEXT_ID` unless `ctx_id` was created.
    pub fn check_ctx(&self, ctx_id: u32) -> Result<(), u32> {
        if self.contexts.contains(&ctx_id) {
            Ok(())
        } else {
            Err(RESP_ERR_INVALID_CONTEXT_ID)
        }
    }

    fn check_res(&self, resource_id: u32) -> Result<&Resource, u32> {
        self.resources
            .get(&resource_id)
            .ok_or(RESP_ERR_INVALID_RESOURCE_ID)
    }

    /// `CTX_ATTACH_RESOURCE`.
    pub fn attach(&mut self, ctx_id: u32, resource_id: u32) -> Result<(), u32> {
        self.check_ctx(ctx_id)?;
        self.check_res(resource_id)?;
        self.run(move |r| r.context_attach_resource(ctx_id, resource_id))?
            .map_err(|_| RESP_ERR_UNSPEC)?;
        Ok(())
    }

    /// `CTX_DETACH_RESOURCE`.
    pub fn detach(&mut self, ctx_id: u32, resource_id: u32) -> Result<(), u32> {
        self.check_ctx(ctx_id)?;
        self.check_res(resource_id)?;
        self.run(move |r| r.context_detach_resource(ctx_id, resource_id))?
            .map_err(|_| RESP_ERR_UNSPEC)?;
        Ok(())
    }

    /// Whether `resource_id` is a 3D resource.
    pub fn has(&self, resource_id: u32) -> bool {
        self.resources.contains_key(&resource_id)
    }

    /// Bytes its resources take (counted against the device's limit).
    pub fn bytes(&self) -> u64 {
        self.resources.values().map(|r| r.bytes).sum()
    }

    /// `RESOURCE_CREATE_3D`; `budget` is what the device's memory cap leaves.
    pub fn create(&mut self, c: &ResourceCreate3d, budget: u64) -> Result<(), u32> {
        let bytes = resource_bytes(c).ok_or(RESP_ERR_INVALID_PARAMETER)?;
        if bytes > budget {
            return Err(RESP_ERR_OUT_OF_MEMORY);
        }
        let id = c.resource_id;
        let args = ResourceCreate3D {
            target: c.target,
            format: c.format,
            bind: c.bind,
            width: c.width,
            height: c.height,
            depth: c.depth,
            array_size: c.array_size,
            last_level: c.last_level,
            nr_samples: c.nr_samples,
            flags: c.flags,
        };
        self.run(move |r| r.resource_create_3d(id, args))?
            .map_err(|_| RESP_ERR_INVALID_PARAMETER)?;
        self.resources.insert(
            c.resource_id,
            Resource {
                width: c.width,
                height: c.height.max(1),
                format: c.format,
                bytes,
                readback: None,
                blob: None,
                exported: None,
                pointer_mapped: false,
            },
        );
        Ok(())
    }

    /// `RESOURCE_CREATE_BLOB`. `entries` (checked guest RAM) back guest blobs; mappable
    /// blobs must fit the host-visible region (`region` bytes); `budget` is what the
    /// device's memory cap leaves.
    pub fn create_blob(
        &mut self,
        mem: &GuestMemory,
        ctx_id: u32,
        c: &ResourceCreateBlob,
        entries: &[(u64, u32)],
        budget: u64,
        region: u64,
    ) -> Result<(), u32> {
        let known = BLOB_FLAG_USE_MAPPABLE | BLOB_FLAG_USE_SHAREABLE | BLOB_FLAG_USE_CROSS_DEVICE;
        if c.size == 0 || c.size > u64::from(MAX_BUFFER) || c.blob_flags & !known != 0 {
            return Err(RESP_ERR_INVALID_PARAMETER);
        }
        let mappable = c.blob_flags & BLOB_FLAG_USE_MAPPABLE != 0;
        let backed: u64 = entries.iter().map(|e| u64::from(e.1)).sum();
        match c.blob_mem {
            // The guest has its own pages: nothing for it to map.
            BLOB_MEM_GUEST if mappable || backed < c.size => {
                return Err(RESP_ERR_INVALID_PARAMETER)
            }
            BLOB_MEM_GUEST => {}
            BLOB_MEM_HOST3D => {
                self.check_ctx(ctx_id)?;
                if !entries.is_empty() {
                    return Err(RESP_ERR_INVALID_PARAMETER);
                }
            }
            BLOB_MEM_HOST3D_GUEST => {
                self.check_ctx(ctx_id)?;
                if backed < c.size {
                    return Err(RESP_ERR_INVALID_PARAMETER);
                }
            }
            _ => return Err(RESP_ERR_INVALID_PARAMETER),
        }
        if mappable && c.size > region {
            return Err(RESP_ERR_INVALID_PARAMETER);
        }
        if c.size > budget {
            return Err(RESP_ERR_OUT_OF_MEMORY);
        }
        let iovecs = if entries.is_empty() {
            None
        } else {
            Some(iovecs(mem, entries)?)
        };
        let id = c.resource_id;
        let args = rutabaga_gfx::ResourceCreateBlob {
            blob_mem: c.blob_mem,
            blob_flags: c.blob_flags,
            blob_id: c.blob_id,
            size: c.size,
        };
        self.run(move |r| r.resource_create_blob(ctx_id, id, args, iovecs, None))?
            .map_err(|_| RESP_ERR_INVALID_PARAMETER)?;
        self.resources.insert(
            id,
            Resource {
                width: 0,
                height: 0,
                format: 0,
                bytes: c.size,
                readback: None,
                blob: Some(c.blob_flags),
                exported: None,
                pointer_mapped: false,
            },
        );
        Ok(())
    }

    /// `RESOURCE_MAP_BLOB`: the renderer's memory of a mappable blob goes at `offset` in
    /// the host-visible region. Returns the mapping's caching (`map_info`).
    pub fn map_blob(
        &mut self,
        resource_id: u32,
        offset: u64,
        region: &mut HostVisible,
    ) -> Result<u32, u32> {
        let r = self.check_res(resource_id)?;
        if r.blob.is_none_or(|f| f & BLOB_FLAG_USE_MAPPABLE == 0) || region.is_mapped(resource_id) {
            return Err(RESP_ERR_INVALID_PARAMETER);
        }
        let size = r.bytes;
        let info =
            self.run(move |r| r.map_info(resource_id).unwrap_or(RUTABAGA_MAP_CACHE_CACHED))?;
        // The blob's memory as a file (a dma-buf, or shared memory) reaches a guest from
        // any process; failing that, the renderer's own pointer (this process only).
        if self
            .resources
            .get(&resource_id)
            .is_some_and(|r| r.exported.is_none())
        {
            let handle = self.run(move |r| r.export_blob(resource_id))?.ok();
            if let Some(r) = self.resources.get_mut(&resource_id) {
                r.exported = handle
                    .filter(|h| {
                        matches!(
                            h.handle_type,
                            RUTABAGA_MEM_HANDLE_TYPE_DMABUF | RUTABAGA_MEM_HANDLE_TYPE_SHM
                        )
                    })
                    .map(|h| std::fs::File::from(h.os_handle));
            }
        }
        let mapped = match self
            .resources
            .get(&resource_id)
            .and_then(|r| r.exported.as_ref())
        {
            Some(file) => {
                use std::os::fd::AsFd;
                region.map(resource_id, offset, BlobMemory::File(file.as_fd()), size)
            }
            None => {
                let mapping = self
                    .run(move |r| r.map(resource_id))?
                    .map_err(|_| RESP_ERR_UNSPEC)?;
                let mapped = region.map(
                    resource_id,
                    offset,
                    BlobMemory::Pointer(mapping.ptr),
                    mapping.size,
                );
                if mapped.is_err() {
                    let _ = self.run(move |r| r.unmap(resource_id));
                } else if let Some(r) = self.resources.get_mut(&resource_id) {
                    r.pointer_mapped = true;
                }
                mapped
            }
        };
        mapped.map_err(|e| {
            log::warn!("blob {resource_id} not mapped: {e}");
            match e {
                RegionError::Mapper(_) => RESP_ERR_UNSPEC,
                _ => RESP_ERR_INVALID_PARAMETER,
            }
        })?;
        Ok(info)
    }

    /// Whether this renderer's mappable blobs can be shown to a guest from another
    /// process: it makes a small one and asks for its memory as a file. `Err` says why
    /// not (llvmpipe's GL buffers, for one, are plain process memory).
    pub fn blobs_shareable(&mut self) -> Result<(), String> {
        if self.renderer == Renderer::Venus {
            // Vulkan memory is exported as a dma-buf where the driver can (Mesa's can);
            // the host-visible region is what venus needs at all.
            return Ok(());
        }
        const PROBE_CTX: u32 = u32::MAX;
        const PROBE_RES: u32 = u32::MAX;
        let mut words = pipe_buffer_stream(1, 4096);
        let handle = self.run(move |r| {
            r.create_context(PROBE_CTX, 0, Some("phyllome-probe"))?;
            let made = r.submit_command(PROBE_CTX, &mut words).and_then(|()| {
                let blob = rutabaga_gfx::ResourceCreateBlob {
                    blob_mem: BLOB_MEM_HOST3D,
                    blob_flags: BLOB_FLAG_USE_MAPPABLE,
                    blob_id: 1,
                    size: 4096,
                };
                r.resource_create_blob(PROBE_CTX, PROBE_RES, blob, None, None)
            });
            let exported = made.and_then(|()| r.export_blob(PROBE_RES));
            let _ = r.unref_resource(PROBE_RES);
            let _ = r.destroy_context(PROBE_CTX);
            exported.map(|h| h.handle_type)
        });
        match handle {
            Ok(Ok(RUTABAGA_MEM_HANDLE_TYPE_DMABUF | RUTABAGA_MEM_HANDLE_TYPE_SHM)) => Ok(()),
            Ok(Ok(other)) => Err(format!(
                "the renderer exports mappable buffers as handle type {other}, which cannot be mapped"
            )),
            Ok(Err(e)) => Err(format!(
                "the renderer's mappable buffers are not files it can share ({e})"
            )),
            Err(_) => Err("the renderer stopped".into()),
        }
    }

    /// `RESOURCE_UNMAP_BLOB`.
    pub fn unmap_blob(&mut self, resource_id: u32, region: &mut HostVisible) -> Result<(), u32> {
        self.check_res(resource_id)?;
        region.unmap(resource_id).map_err(|e| match e {
            RegionError::NotMapped(_) => RESP_ERR_INVALID_PARAMETER,
            _ => RESP_ERR_UNSPEC,
        })?;
        let by_pointer = self
            .resources
            .get_mut(&resource_id)
            .is_some_and(|r| std::mem::take(&mut r.pointer_mapped));
        if !by_pointer {
            return Ok(());
        }
        self.run(move |r| r.unmap(resource_id))?
            .map_err(|_| RESP_ERR_UNSPEC)
    }

    /// `RESOURCE_UNREF` of a 3D resource.
    pub fn unref(&mut self, resource_id: u32) -> Result<(), u32> {
        self.check_res(resource_id)?;
        self.resources.remove(&resource_id);
        self.run(move |r| r.unref_resource(resource_id))?
            .map_err(|_| RESP_ERR_UNSPEC)
    }

    /// `RESOURCE_ATTACH_BACKING` of a 3D resource: each entry, checked to be guest RAM, as
    /// the host address virglrenderer reads and writes.
    pub fn attach_backing(
        &mut self,
        mem: &GuestMemory,
        resource_id: u32,
        entries: &[(u64, u32)],
    ) -> Result<(), u32> {
        self.check_res(resource_id)?;
        let iovecs = iovecs(mem, entries)?;
        self.run(move |r| r.attach_backing(resource_id, iovecs))?
            .map_err(|_| RESP_ERR_UNSPEC)
    }

    /// `RESOURCE_DETACH_BACKING` of a 3D resource.
    pub fn detach_backing(&mut self, resource_id: u32) -> Result<(), u32> {
        self.check_res(resource_id)?;
        self.run(move |r| r.detach_backing(resource_id))?
            .map_err(|_| RESP_ERR_UNSPEC)
    }

    fn transfer(t: &Transfer3d) -> Transfer3D {
        Transfer3D {
            x: t.b.x,
            y: t.b.y,
            z: t.b.z,
            w: t.b.w,
            h: t.b.h,
            d: t.b.d,
            level: t.level,
            stride: t.stride,
            layer_stride: t.layer_stride,
            offset: t.offset,
        }
    }

    /// `TRANSFER_TO_HOST_3D` (and `TRANSFER_TO_HOST_2D` of a 3D resource, as context 0).
    pub fn transfer_to_host(&mut self, ctx_id: u32, t: &Transfer3d) -> Result<(), u32> {
        if ctx_id != 0 {
            self.check_ctx(ctx_id)?;
        }
        self.check_box(t)?;
        let (id, transfer) = (t.resource_id, Self::transfer(t));
        self.run(move |r| r.transfer_write(ctx_id, id, transfer))?
            .map_err(|_| RESP_ERR_INVALID_PARAMETER)
    }

    /// `TRANSFER_FROM_HOST_3D`: into the resource's guest backing.
    pub fn transfer_from_host(&mut self, ctx_id: u32, t: &Transfer3d) -> Result<(), u32> {
        if ctx_id != 0 {
            self.check_ctx(ctx_id)?;
        }
        self.check_box(t)?;
        let (id, transfer) = (t.resource_id, Self::transfer(t));
        self.run(move |r| r.transfer_read(ctx_id, id, transfer, None))?
            .map_err(|_| RESP_ERR_INVALID_PARAMETER)
    }

    /// The box must lie inside the resource (for 2D targets; buffers are 1-high).
    fn check_box(&self, t: &Transfer3d) -> Result<(), u32> {
        let r = self.check_res(t.resource_id)?;
        let inside = t.b.x.checked_add(t.b.w).is_some_and(|e| e <= r.width)
            && t.b.y.checked_add(t.b.h).is_some_and(|e| e <= r.height);
        if inside {
            Ok(())
        } else {
            Err(RESP_ERR_INVALID_PARAMETER)
        }
    }

    /// `SUBMIT_3D`: `commands` for context `ctx_id`.
    pub fn submit(&mut self, ctx_id: u32, mut commands: Vec<u8>) -> Result<(), u32> {
        self.check_ctx(ctx_id)?;
        if commands.len() % 4 != 0 {
            return Err(RESP_ERR_INVALID_PARAMETER);
        }
        self.run(move |r| r.submit_command(ctx_id, &mut commands))?
            .map_err(|_| RESP_ERR_INVALID_PARAMETER)
    }

    /// Creates the fence a request asked for and waits until it retires.
    pub fn fence(&mut self, hdr: &CtrlHdr) -> Result<(), u32> {
        let with_ring = hdr.flags & RUTABAGA_FLAG_INFO_RING_IDX != 0;
        if hdr.ctx_id != 0 {
            self.check_ctx(hdr.ctx_id)?;
        }
        if with_ring && hdr.ring_idx >= 64 {
            return Err(RESP_ERR_INVALID_PARAMETER);
        }
        let ring = if with_ring { hdr.ring_idx } else { 0 };
        let fence = RutabagaFence {
            flags: RUTABAGA_FLAG_FENCE | (hdr.flags & RUTABAGA_FLAG_INFO_RING_IDX),
            fence_id: hdr.fence_id,
            ctx_id: hdr.ctx_id,
            ring_idx: ring,
        };
        self.run(move |r| r.create_fence(fence))?
            .map_err(|_| RESP_ERR_UNSPEC)?;
        let deadline = Instant::now() + FENCE_TIMEOUT;
        loop {
            self.run(|r| r.event_poll())?;
            let done = self
                .retired
                .done
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            // Fences on one timeline retire in order: a later one means this one is done.
            // Without a ring, the fence is on the device's global timeline (reported as
            // context 0).
            let timeline = if with_ring {
                (hdr.ctx_id, ring)
            } else {
                (0, 0)
            };
            if done.get(&timeline).is_some_and(|&f| f >= hdr.fence_id) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(RESP_ERR_UNSPEC);
            }
            let _ = self
                .retired
                .changed
                .wait_timeout(done, Duration::from_millis(1));
        }
    }

    /// The shared buffer a scanout of `resource_id` shows (made on first use), and the
    /// resource's width, height and format.
    pub fn scanout_buffer(&mut self, resource_id: u32) -> Result<(u32, u32, u32), u32> {
        let r = self
            .resources
            .get_mut(&resource_id)
            .ok_or(RESP_ERR_INVALID_RESOURCE_ID)?;
        if !super::format_supported(r.format) {
            return Err(RESP_ERR_INVALID_PARAMETER);
        }
        if r.readback.is_none() {
            let len = r.width as usize * r.height as usize * 4;
            r.readback = Some(SharedBuffer::create(len).map_err(|_| RESP_ERR_OUT_OF_MEMORY)?);
        }
        Ok((r.width, r.height, r.format))
    }

    /// Reads the rectangle `rect` of `resource_id` back into its scanout buffer (rows of
    /// `width * 4` bytes) and returns that buffer.
    pub fn read_back(&mut self, resource_id: u32, rect: Rect) -> Result<&SharedBuffer, u32> {
        let r = self.check_res(resource_id)?;
        if !rect.inside(r.width, r.height) || r.readback.is_none() {
            return Err(RESP_ERR_INVALID_PARAMETER);
        }
        let stride = r.width * 4;
        let buffer = r.readback.as_ref().ok_or(RESP_ERR_INVALID_PARAMETER)?;
        let len = buffer.len();
        let Some(volatile) = buffer.volatile(0, len) else {
            return Err(RESP_ERR_UNSPEC);
        };
        // The mapping's address crosses to the renderer's thread as a number.
        let base = volatile.ptr_guard_mut().as_ptr() as usize;
        let transfer = Transfer3D {
            x: rect.x,
            y: rect.y,
            z: 0,
            w: rect.width,
            h: rect.height,
            d: 1,
            level: 0,
            stride,
            layer_stride: 0,
            offset: u64::from(rect.y) * u64::from(stride) + u64::from(rect.x) * 4,
        };
        self.run(move |r| {
            // SAFETY: `base..base + len` is the whole mapping of the resource's readback
            // buffer, which stays mapped while this call runs (the caller holds the device,
            // and with it the buffer, until `run` returns); nothing else in this process
            // touches it meanwhile (viewers in other processes only read it, racing as a
            // display always does), and virglrenderer writes only the rectangle's rows,
            // which were checked to lie inside the resource, whose size the buffer has.
            let out = unsafe { std::slice::from_raw_parts_mut(base as *mut u8, len) };
            r.transfer_read(
                0,
                resource_id,
                transfer,
                Some(std::io::IoSliceMut::new(out)),
            )
        })?
        .map_err(|_| RESP_ERR_UNSPEC)?;
        let r = self.check_res(resource_id)?;
        r.readback.as_ref().ok_or(RESP_ERR_UNSPEC)
    }

    /// The driver reset the device: every context and 3D resource goes.
    pub fn reset(&mut self) {
        let contexts: Vec<u32> = std::mem::take(&mut self.contexts).into_iter().collect();
        let resources: Vec<u32> = std::mem::take(&mut self.resources).into_keys().collect();
        let _ = self.run(move |r| {
            for ctx in contexts {
                let _ = r.destroy_context(ctx);
            }
            for id in resources {
                let _ = r.unref_resource(id);
            }
        });
    }
}

/// Starts the renderer thread: rutabaga with virglrenderer, EGL surfaceless, desktop
/// OpenGL (core profile: the guest then gets OpenGL 4.x; an OpenGL ES host context would
/// cap it lower), every capset we may offer (virgl, virgl2, venus).
fn start_engine() -> Result<Engine, String> {
    let retired = Arc::new(Retired::default());
    let r = retired.clone();
    let handler = RutabagaFenceHandler::new(move |fence: RutabagaFence| {
        let ring = if fence.flags & RUTABAGA_FLAG_INFO_RING_IDX != 0 {
            fence.ring_idx
        } else {
            0
        };
        let mut done = r
            .done
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let last = done.entry((fence.ctx_id, ring)).or_insert(0);
        *last = (*last).max(fence.fence_id);
        r.changed.notify_all();
    });
    let (jobs, inbox) = channel::<Job>();
    let (started, start) = channel::<Result<Vec<RespCapsetInfo>, String>>();
    std::thread::Builder::new()
        .name("virgl".into())
        .spawn(move || {
            let built = RutabagaBuilder::new(
                RutabagaComponentType::VirglRenderer,
                capset_mask(Renderer::Venus),
            )
            .set_use_egl(true)
            .set_use_gles(false)
            .set_use_surfaceless(true)
            .set_use_external_blob(false)
            .set_use_render_server(false)
            .build(handler, None);
            let mut rutabaga = match built {
                Ok(r) => r,
                Err(e) => {
                    let _ = started.send(Err(e.to_string()));
                    return;
                }
            };
            let capsets = (0..rutabaga.get_num_capsets())
                .filter_map(|i| rutabaga.get_capset_info(i).ok())
                .map(|(id, version, size)| RespCapsetInfo {
                    capset_id: id,
                    capset_max_version: version,
                    capset_max_size: size,
                    padding: 0,
                })
                .collect();
            let _ = started.send(Ok(capsets));
            // Serves for the life of the process.
            for job in inbox {
                job(&mut rutabaga);
            }
        })
        .map_err(|e| e.to_string())?;
    let capsets = start
        .recv()
        .map_err(|_| "the renderer's thread ended".to_owned())??;
    Ok(Engine {
        jobs,
        capsets,
        retired,
    })
}
