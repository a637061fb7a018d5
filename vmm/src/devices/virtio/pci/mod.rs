//! The virtio-pci transport (virtio 1.x "modern" only): presents a [`DeviceCore`] as a
//! PCI function with the common, notify, ISR and device-configuration structures in BAR 0,
//! MSI-X for interrupts, and one doorbell per queue that KVM turns into an EventFd
//! (ioeventfd), so a guest's notify never stops a vCPU in user space. When the driver sets
//! DRIVER_OK, a worker thread serves the queues; a reset stops it.
//!
//! BAR 0 layout: common 0x0000, ISR 0x1000, device config 0x2000, notify 0x3000 (4 bytes
//! per queue), MSI-X table 0x8000, PBA 0xC000. A device with shared memory regions has
//! them in BAR 2 ([`super::shm`]), one shared-memory capability each.

#![allow(
    clippy::cast_possible_truncation,
    reason = "register values are masked to their widths"
)]

use super::event_loop::wait_loop;
use super::poll::{poll_for_work, quiet_doorbell, Poller};
use super::shm::{self, MemorySlots, ShmMapper, ShmWindow};
use super::{serve_queue, DeviceCore, VIRTIO_F_VERSION_1};
use crate::devices::bus::lock;
use crate::devices::pci::config::{BarMove, ConfigSpace, PciId};
use crate::devices::pci::msix::{MsiSink, Msix, VectorRoutes, CONTROL_ENABLE, NO_VECTOR};
use crate::devices::pci::PciDevice;
use crate::memory::GuestMemory;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use virtio_queue::{Queue, QueueT};
use vmm_sys_util::eventfd::EventFd;

/// Size of BAR 0.
pub const BAR_SIZE: u64 = 0x1_0000;
/// The BAR that holds shared memory regions.
pub const SHM_BAR: usize = 2;
/// The capability type of a shared memory region (`VIRTIO_PCI_CAP_SHARED_MEMORY_CFG`).
const CAP_SHARED_MEMORY: u8 = 8;
const COMMON: u64 = 0x0000;
const ISR: u64 = 0x1000;
const DEVICE: u64 = 0x2000;
/// Offset of the notify area in BAR 0.
pub const NOTIFY: u64 = 0x3000;
/// Bytes between two queues' doorbells.
pub const NOTIFY_MULTIPLIER: u32 = 4;
const MSIX_TABLE: u64 = 0x8000;
const MSIX_PBA: u64 = 0xc000;

const STATUS_DRIVER_OK: u8 = 4;
const STATUS_FEATURES_OK: u8 = 8;
const STATUS_FAILED: u8 = 0x80;

/// Registers the doorbells with the hypervisor (KVM ioeventfd), or does nothing in tests.
pub trait Doorbells: Send + Sync {
    /// A write to guest address `addr` signals `event`.
    fn register(&self, addr: u64, event: &EventFd) -> std::io::Result<()>;
    /// Undoes [`Doorbells::register`].
    fn unregister(&self, addr: u64, event: &EventFd) -> std::io::Result<()>;
}

/// A queue the driver set up, ready to be served.
pub struct ActiveQueue {
    /// Queue index.
    pub index: usize,
    /// The configured, validated queue.
    pub queue: Queue,
    /// Signalled when the driver rings this queue's doorbell.
    pub kick: EventFd,
    /// The MSI-X vector for its completions.
    pub vector: u16,
}

/// What runs a virtio-pci function's queues: a device core in this process, or a
/// vhost-user backend in another.
pub trait QueueEngine: Send {
    /// Virtio device ID.
    fn device_type(&self) -> u32;
    /// Number of queues.
    fn num_queues(&self) -> usize;
    /// Largest queue size.
    fn max_queue_size(&self) -> u16;
    /// Device features.
    fn features(&self) -> u64;
    /// Device configuration space.
    fn config(&self) -> Vec<u8>;
    /// The driver wrote device configuration space.
    fn write_config(&mut self, offset: usize, data: &[u8]);
    /// Starts serving `queues` with the negotiated `features`; interrupts go to `msix`,
    /// configuration changes to `config_vector`.
    fn activate(
        &mut self,
        mem: &GuestMemory,
        features: u64,
        queues: Vec<ActiveQueue>,
        msix: Arc<Mutex<Msix>>,
        config_vector: u16,
    ) -> Result<(), String>;
    /// Stops serving (the driver reset the device).
    fn deactivate(&mut self);
    /// The device's shared memory regions: (virtio shared memory ID, bytes).
    fn shared_memory(&self) -> Vec<(u8, u64)> {
        Vec::new()
    }
    /// The window its regions live in on this machine, or none (the machine is going).
    fn attach_shared_memory(&mut self, _window: Option<Arc<ShmWindow>>) {}
}

impl std::fmt::Debug for ActiveQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActiveQueue")
            .field("index", &self.index)
            .field("vector", &self.vector)
            .finish()
    }
}

impl std::fmt::Debug for LocalEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalEngine")
            .field("running", &self.worker.is_some())
            .finish()
    }
}

/// Serves the queues with a [`DeviceCore`] on a worker thread of this process.
pub struct LocalEngine {
    core: Arc<Mutex<Box<dyn DeviceCore>>>,
    worker: Option<Worker>,
}

impl LocalEngine {
    /// Runs `core`'s queues here.
    pub fn new(core: Box<dyn DeviceCore>) -> Self {
        Self::shared(Arc::new(Mutex::new(core)))
    }

    /// Runs the queues of a core that outlives this engine (a console whose host side
    /// stays connected across guest reboots).
    pub fn shared(core: Arc<Mutex<Box<dyn DeviceCore>>>) -> Self {
        Self { core, worker: None }
    }
}

impl QueueEngine for LocalEngine {
    fn device_type(&self) -> u32 {
        lock(&self.core).device_type()
    }
    fn num_queues(&self) -> usize {
        lock(&self.core).num_queues()
    }
    fn max_queue_size(&self) -> u16 {
        lock(&self.core).max_queue_size()
    }
    fn features(&self) -> u64 {
        lock(&self.core).features()
    }
    fn config(&self) -> Vec<u8> {
        lock(&self.core).config()
    }
    fn write_config(&mut self, offset: usize, data: &[u8]) {
        lock(&self.core).write_config(offset, data);
    }
    fn shared_memory(&self) -> Vec<(u8, u64)> {
        lock(&self.core).shared_memory()
    }
    fn attach_shared_memory(&mut self, window: Option<Arc<ShmWindow>>) {
        lock(&self.core).set_shared_memory(window.map(|w| w as Arc<dyn ShmMapper>));
    }

    fn activate(
        &mut self,
        mem: &GuestMemory,
        features: u64,
        queues: Vec<ActiveQueue>,
        msix: Arc<Mutex<Msix>>,
        config_vector: u16,
    ) -> Result<(), String> {
        lock(&self.core).set_driver_features(features);
        let stop = EventFd::new(libc::EFD_NONBLOCK).map_err(|e| e.to_string())?;
        let stop_worker = stop.try_clone().map_err(|e| e.to_string())?;
        let (core, mem) = (self.core.clone(), mem.clone());
        let thread = std::thread::Builder::new()
            .name("virtio-worker".into())
            .spawn(move || run_worker(queues, stop_worker, &core, &msix, &mem, config_vector))
            .map_err(|e| e.to_string())?;
        self.worker = Some(Worker { stop, thread });
        Ok(())
    }

    fn deactivate(&mut self) {
        if let Some(w) = self.worker.take() {
            let _ = w.stop.write(1);
            let _ = w.thread.join();
            lock(&self.core).reset();
        }
    }
}

impl Drop for LocalEngine {
    fn drop(&mut self) {
        self.deactivate();
    }
}

#[derive(Debug, Clone, Copy)]
struct QueueRegs {
    size: u16,
    enabled: bool,
    vector: u16,
    desc: u64,
    driver: u64,
    device: u64,
}

struct Worker {
    stop: EventFd,
    thread: JoinHandle<()>,
}

/// A virtio device on PCI.
pub struct VirtioPci {
    config: ConfigSpace,
    msix_cap: usize,
    engine: Box<dyn QueueEngine>,
    msix: Arc<Mutex<Msix>>,
    mem: GuestMemory,
    doorbells: Arc<dyn Doorbells>,
    kicks: Vec<EventFd>,
    device_features: u64,
    device_feature_select: u32,
    driver_feature_select: u32,
    driver_features: u64,
    config_vector: u16,
    status: u8,
    queue_select: u16,
    queues: Vec<QueueRegs>,
    max_queue_size: u16,
    active: bool,
    /// The device configuration the driver last saw a generation for, and that generation.
    seen_config: (Vec<u8>, u8),
    /// The shared memory window behind BAR 2, if the device has regions.
    shm: Option<Arc<ShmWindow>>,
}

impl std::fmt::Debug for VirtioPci {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VirtioPci")
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

/// Why a virtio-pci device could not be created.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// An EventFd could not be created or registered.
    #[error("Cannot set up the doorbells of a virtio device: {0}.")]
    Doorbell(#[source] std::io::Error),
    /// The shared memory window could not be reserved.
    #[error("Cannot set up a virtio device's shared memory: {0}")]
    SharedMemory(#[source] shm::ShmError),
}

/// A `virtio_pci_cap64` for shared memory region `shmid` at `offset` in BAR 2.
fn shm_cap(shmid: u8, offset: u64, length: u64) -> Vec<u8> {
    let mut c = vec![0x09, 0, 24, CAP_SHARED_MEMORY, SHM_BAR as u8, shmid, 0, 0];
    c.extend_from_slice(&(offset as u32).to_le_bytes());
    c.extend_from_slice(&(length as u32).to_le_bytes());
    c.extend_from_slice(&((offset >> 32) as u32).to_le_bytes());
    c.extend_from_slice(&((length >> 32) as u32).to_le_bytes());
    c
}

fn virtio_cap(cfg_type: u8, offset: u32, length: u32, extra: Option<u32>) -> Vec<u8> {
    let len = if extra.is_some() { 20 } else { 16 };
    let mut c = vec![0x09, 0, len, cfg_type, 0, 0, 0, 0];
    c.extend_from_slice(&offset.to_le_bytes());
    c.extend_from_slice(&length.to_le_bytes());
    if let Some(x) = extra {
        c.extend_from_slice(&x.to_le_bytes());
    }
    c
}

impl VirtioPci {
    /// Presents `engine`'s device, with BAR 0 at `bar_addr`, interrupts to `msi` and
    /// doorbells via `doorbells`.
    pub fn new(
        engine: Box<dyn QueueEngine>,
        mem: GuestMemory,
        bar_addr: u64,
        msi: Arc<dyn MsiSink>,
        doorbells: Arc<dyn Doorbells>,
    ) -> Result<Self, TransportError> {
        let device_type = engine.device_type();
        let num_queues = engine.num_queues();
        let mut config = ConfigSpace::new(PciId {
            vendor: 0x1af4,
            device: 0x1040 + device_type as u16,
            revision: 1,
            class: match device_type {
                2 => 0x01_80_00,
                16 => 0x03_80_00,
                _ => 0xff_00_00,
            },
            subsystem_vendor: 0x1af4,
            subsystem: 0x40,
        });
        // 64-bit and prefetchable, as QEMU's modern virtio-pci BAR.
        config.set_bar64(0, BAR_SIZE, bar_addr);
        config.add_capability(&virtio_cap(1, COMMON as u32, 0x38, None), &[0; 16]);
        config.add_capability(
            &virtio_cap(2, NOTIFY as u32, 0x1000, Some(NOTIFY_MULTIPLIER)),
            &[0; 20],
        );
        config.add_capability(&virtio_cap(3, ISR as u32, 1, None), &[0; 16]);
        config.add_capability(&virtio_cap(4, DEVICE as u32, 0x1000, None), &[0; 16]);
        let msix = Msix::new(num_queues as u16 + 1, msi);
        let (cap, writable) = msix.capability(0, MSIX_TABLE as u32, MSIX_PBA as u32);
        let msix_cap = config.add_capability(&cap, &writable);

        let mut kicks = Vec::with_capacity(num_queues);
        for i in 0..num_queues {
            let e = EventFd::new(libc::EFD_NONBLOCK).map_err(TransportError::Doorbell)?;
            doorbells
                .register(
                    bar_addr + NOTIFY + i as u64 * u64::from(NOTIFY_MULTIPLIER),
                    &e,
                )
                .map_err(TransportError::Doorbell)?;
            kicks.push(e);
        }
        let max_queue_size = engine.max_queue_size();
        Ok(Self {
            config,
            msix_cap,
            device_features: engine.features() | VIRTIO_F_VERSION_1,
            engine,
            msix: Arc::new(Mutex::new(msix)),
            mem,
            doorbells,
            kicks,
            device_feature_select: 0,
            driver_feature_select: 0,
            driver_features: 0,
            config_vector: NO_VECTOR,
            status: 0,
            queue_select: 0,
            queues: vec![
                QueueRegs {
                    size: max_queue_size,
                    enabled: false,
                    vector: NO_VECTOR,
                    desc: 0,
                    driver: 0,
                    device: 0
                };
                num_queues
            ],
            max_queue_size,
            active: false,
            seen_config: (Vec::new(), 0),
            shm: None,
        })
    }

    /// The size of the BAR the device's shared memory regions need, if it has any.
    pub fn shared_memory_size(&self) -> Option<u64> {
        let regions = self.engine.shared_memory();
        (!regions.is_empty()).then(|| shm::layout(&regions).1)
    }

    /// Puts the device's shared memory regions in BAR 2 at `addr` (a place of
    /// [`VirtioPci::shared_memory_size`] bytes), shown to the guest through `slots`.
    pub fn attach_shared_memory(
        &mut self,
        addr: u64,
        slots: Arc<dyn MemorySlots>,
    ) -> Result<(), TransportError> {
        let (regions, size) = shm::layout(&self.engine.shared_memory());
        if regions.is_empty() {
            return Ok(());
        }
        let window = Arc::new(
            ShmWindow::new(regions.clone(), size, slots).map_err(TransportError::SharedMemory)?,
        );
        self.config.set_bar64(SHM_BAR, size, addr);
        for r in &regions {
            self.config
                .add_capability(&shm_cap(r.shmid, r.offset, r.len), &[0; 24]);
        }
        window.place(Some(addr));
        self.engine.attach_shared_memory(Some(window.clone()));
        self.shm = Some(window);
        Ok(())
    }

    /// Counts changes of the device configuration (a new display size, a selector the
    /// driver wrote), so that a driver reading a multi-field configuration can tell it
    /// changed underneath and read again.
    fn config_generation(&mut self) -> u8 {
        let now = self.engine.config();
        if now != self.seen_config.0 {
            self.seen_config = (now, self.seen_config.1.wrapping_add(1));
        }
        self.seen_config.1
    }

    fn selected(&mut self) -> Option<&mut QueueRegs> {
        self.queues.get_mut(usize::from(self.queue_select))
    }

    fn read_common(&mut self, offset: u64) -> u64 {
        let q = self.queues.get(usize::from(self.queue_select)).copied();
        match offset {
            0x00 => u64::from(self.device_feature_select),
            0x04 => match self.device_feature_select {
                0 => self.device_features & 0xffff_ffff,
                1 => self.device_features >> 32,
                _ => 0,
            },
            0x08 => u64::from(self.driver_feature_select),
            0x0c => match self.driver_feature_select {
                0 => self.driver_features & 0xffff_ffff,
                1 => self.driver_features >> 32,
                _ => 0,
            },
            0x10 => u64::from(self.config_vector),
            0x12 => self.queues.len() as u64,
            0x14 => u64::from(self.status),
            0x15 => u64::from(self.config_generation()),
            0x16 => u64::from(self.queue_select),
            0x18 => q.map_or(0, |q| u64::from(q.size)),
            0x1a => q.map_or(u64::from(NO_VECTOR), |q| u64::from(q.vector)),
            0x1c => q.map_or(0, |q| u64::from(q.enabled)),
            0x1e => u64::from(self.queue_select), // notify offset = queue index
            0x20 => q.map_or(0, |q| q.desc & 0xffff_ffff),
            0x24 => q.map_or(0, |q| q.desc >> 32),
            0x28 => q.map_or(0, |q| q.driver & 0xffff_ffff),
            0x2c => q.map_or(0, |q| q.driver >> 32),
            0x30 => q.map_or(0, |q| q.device & 0xffff_ffff),
            0x34 => q.map_or(0, |q| q.device >> 32),
            _ => 0,
        }
    }

    fn write_common(&mut self, offset: u64, value: u64) {
        let set_lo = |field: &mut u64, v: u64| *field = (*field & !0xffff_ffff) | (v & 0xffff_ffff);
        let set_hi = |field: &mut u64, v: u64| *field = (*field & 0xffff_ffff) | (v << 32);
        // Queue set-up is only allowed before DRIVER_OK (virtio 1.2, 4.1.4.3.2).
        let live = self.status & STATUS_DRIVER_OK != 0;
        match offset {
            0x00 => self.device_feature_select = value as u32,
            0x08 => self.driver_feature_select = value as u32,
            0x0c if self.status & STATUS_FEATURES_OK == 0 => match self.driver_feature_select {
                0 => set_lo(&mut self.driver_features, value),
                1 => set_hi(&mut self.driver_features, value),
                _ => {}
            },
            0x10 => self.config_vector = value as u16,
            0x14 => {
                log::debug!("virtio device status {:#x} -> {value:#x}", self.status);
                self.write_status(value as u8);
            }
            0x16 => self.queue_select = value as u16,
            0x18 if !live => {
                let max = self.max_queue_size;
                if let Some(q) = self.selected() {
                    let v = value as u16;
                    if v.is_power_of_two() && v <= max {
                        q.size = v;
                    }
                }
            }
            0x1a => {
                if let Some(q) = self.selected() {
                    q.vector = value as u16;
                }
            }
            0x1c if !live => {
                if let Some(q) = self.selected() {
                    q.enabled = value & 1 == 1;
                }
            }
            0x20..=0x34 if !live => {
                if let Some(q) = self.selected() {
                    let field = match offset & !4 {
                        0x20 => &mut q.desc,
                        0x28 => &mut q.driver,
                        _ => &mut q.device,
                    };
                    if offset & 4 == 0 {
                        set_lo(field, value);
                    } else {
                        set_hi(field, value);
                    }
                }
            }
            _ => {}
        }
    }

    fn write_status(&mut self, value: u8) {
        if value == 0 {
            self.reset();
            return;
        }
        let mut value = value;
        if value & STATUS_FEATURES_OK != 0 && self.status & STATUS_FEATURES_OK == 0 {
            // Refuse features we never offered, and drivers without VERSION_1 (legacy).
            let unknown = self.driver_features & !self.device_features != 0;
            if unknown || self.driver_features & VIRTIO_F_VERSION_1 == 0 {
                value &= !STATUS_FEATURES_OK;
            }
        }
        let becomes_live = value & STATUS_DRIVER_OK != 0 && self.status & STATUS_DRIVER_OK == 0;
        self.status = value;
        if becomes_live && self.activate().is_err() {
            self.status |= STATUS_FAILED;
        }
    }

    fn activate(&mut self) -> Result<(), String> {
        let event_idx = self.driver_features & super::VIRTIO_RING_F_EVENT_IDX != 0;
        let mut queues = Vec::new();
        for (i, regs) in self.queues.iter().enumerate() {
            if !regs.enabled {
                continue;
            }
            let mut q = Queue::new(self.max_queue_size).map_err(|e| e.to_string())?;
            q.set_size(regs.size);
            q.set_desc_table_address(Some(regs.desc as u32), Some((regs.desc >> 32) as u32));
            q.set_avail_ring_address(Some(regs.driver as u32), Some((regs.driver >> 32) as u32));
            q.set_used_ring_address(Some(regs.device as u32), Some((regs.device >> 32) as u32));
            q.set_event_idx(event_idx);
            q.set_ready(true);
            if !q.is_valid(&self.mem) {
                return Err(format!("queue {i} does not fit in guest memory"));
            }
            let kick = self.kicks[i].try_clone().map_err(|e| e.to_string())?;
            queues.push(ActiveQueue {
                index: i,
                queue: q,
                kick,
                vector: regs.vector,
            });
        }
        self.engine.activate(
            &self.mem,
            self.driver_features,
            queues,
            self.msix.clone(),
            self.config_vector,
        )?;
        self.active = true;
        Ok(())
    }

    fn stop_worker(&mut self) {
        if std::mem::take(&mut self.active) {
            self.engine.deactivate();
        }
    }

    fn reset(&mut self) {
        self.stop_worker();
        // What the device showed its last driver goes with it.
        if let Some(w) = &self.shm {
            w.clear();
        }
        self.status = 0;
        self.driver_features = 0;
        self.device_feature_select = 0;
        self.driver_feature_select = 0;
        self.config_vector = NO_VECTOR;
        self.queue_select = 0;
        for q in &mut self.queues {
            *q = QueueRegs {
                size: self.max_queue_size,
                enabled: false,
                vector: NO_VECTOR,
                desc: 0,
                driver: 0,
                device: 0,
            };
        }
    }

    fn sync_msix_control(&mut self) {
        let control = (self.config.read_reg(self.msix_cap) >> 16) as u16;
        lock(&self.msix).set_control(
            control & (CONTROL_ENABLE | crate::devices::pci::msix::CONTROL_FUNCTION_MASK),
        );
    }
}

impl Drop for VirtioPci {
    fn drop(&mut self) {
        self.stop_worker();
        if self.shm.take().is_some() {
            self.engine.attach_shared_memory(None);
        }
        if let Some((base, _)) = self.config.bar(0) {
            for (i, k) in self.kicks.iter().enumerate() {
                let _ = self
                    .doorbells
                    .unregister(base + NOTIFY + i as u64 * u64::from(NOTIFY_MULTIPLIER), k);
            }
        }
    }
}

/// The queue worker: waits for doorbells (and host input), serves the queue that needs it,
/// raises its vector.
fn run_worker(
    mut queues: Vec<ActiveQueue>,
    stop: EventFd,
    core: &Mutex<Box<dyn DeviceCore>>,
    msix: &Mutex<Msix>,
    mem: &GuestMemory,
    config_vector: u16,
) {
    let mut events: Vec<EventFd> = match queues.iter().map(|q| q.kick.try_clone()).collect() {
        Ok(k) => k,
        Err(_) => return,
    };
    // Host input makes waiting receive buffers usable: serve every queue then.
    let input = lock(core).input_event().and_then(|e| e.try_clone().ok());
    let input_slot = input.as_ref().map(|_| events.len());
    events.extend(input);
    // A host-initiated configuration change raises the configuration vector.
    let config = lock(core).config_event().and_then(|e| e.try_clone().ok());
    let config_slot = config.as_ref().map(|_| events.len());
    events.extend(config);
    let refs: Vec<&EventFd> = events.iter().collect();
    let mut pollers = vec![Poller::new(lock(core).poll_window()); queues.len()];
    wait_loop(&refs, &stop, |slot| {
        if Some(slot) == input_slot {
            for (q, poller) in queues.iter_mut().zip(pollers.iter_mut()) {
                serve_one(q, poller, core, msix, mem);
            }
        } else if Some(slot) == config_slot {
            lock(msix).trigger(config_vector);
        } else if let (Some(q), Some(poller)) = (queues.get_mut(slot), pollers.get_mut(slot)) {
            poller.woken();
            serve_one(q, poller, core, msix, mem);
        }
    });
}

fn serve_one(
    q: &mut ActiveQueue,
    poller: &mut Poller,
    core: &Mutex<Box<dyn DeviceCore>>,
    msix: &Mutex<Msix>,
    mem: &GuestMemory,
) {
    serve_and_poll(q, poller.window(), core, msix, mem);
    // However that ended, the worker now sleeps until the next doorbell.
    poller.sleeping();
}

/// Serves `q`, then watches it for `window` and serves again what comes, until a window
/// passes without a request.
fn serve_and_poll(
    q: &mut ActiveQueue,
    window: std::time::Duration,
    core: &Mutex<Box<dyn DeviceCore>>,
    msix: &Mutex<Msix>,
    mem: &GuestMemory,
) {
    let index = q.index;
    loop {
        let notify = match serve_queue(&mut q.queue, index, mem, core) {
            Ok(notify) => notify,
            Err(e) => {
                log::warn!("virtio queue {index}: {e}");
                return;
            }
        };
        // Quiet before the interrupt: the driver it wakes may send the next request at once.
        let polling = quiet_doorbell(&q.queue, mem, window);
        if notify {
            lock(msix).trigger(q.vector);
        }
        match polling.and_then(|p| {
            if p {
                poll_for_work(&mut q.queue, mem, window)
            } else {
                Ok(false)
            }
        }) {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                log::warn!("virtio queue {index}: {e}");
                return;
            }
        }
    }
}

impl VirtioPci {
    /// MSI-X vectors: one per queue and one for configuration changes.
    pub fn vectors(&self) -> usize {
        self.queues.len() + 1
    }

    /// Raises interrupts through the hypervisor's lines (KVM irqfds) from now on.
    pub fn use_interrupt_lines(&mut self, lines: Box<dyn VectorRoutes>) {
        lock(&self.msix).set_routes(lines);
    }
}

impl PciDevice for VirtioPci {
    fn config(&self) -> &ConfigSpace {
        &self.config
    }

    fn write_config(&mut self, offset: usize, data: &[u8]) -> Option<BarMove> {
        let moved = self.config.write(offset, data);
        if (self.msix_cap..self.msix_cap + 4).contains(&offset) {
            self.sync_msix_control();
        }
        moved
    }

    fn bar_read(&mut self, bar: usize, offset: u64, data: &mut [u8]) {
        if bar != 0 {
            data.fill(0xff);
            return;
        }
        match offset {
            COMMON..=0xfff => {
                // Drivers access each register at its offset with its own width.
                let bytes = self.read_common(offset).to_le_bytes();
                let n = data.len().min(8);
                data[..n].copy_from_slice(&bytes[..n]);
            }
            ISR..=0x1fff => {
                data.fill(0); // MSI-X only: the ISR is never set
            }
            DEVICE..=0x2fff => {
                let cfg = self.engine.config();
                let start = (offset - DEVICE) as usize;
                for (i, b) in data.iter_mut().enumerate() {
                    *b = cfg.get(start + i).copied().unwrap_or(0);
                }
            }
            MSIX_TABLE..=0xbfff => lock(&self.msix).read_table(offset - MSIX_TABLE, data),
            MSIX_PBA..=0xffff => lock(&self.msix).read_pba(offset - MSIX_PBA, data),
            _ => data.fill(0),
        }
    }

    fn bar_write(&mut self, bar: usize, offset: u64, data: &[u8]) {
        if bar != 0 {
            return;
        }
        let mut raw = [0u8; 8];
        let n = data.len().min(8);
        raw[..n].copy_from_slice(&data[..n]);
        let value = u64::from_le_bytes(raw);
        match offset {
            COMMON..=0xfff => self.write_common(offset, value),
            DEVICE..=0x2fff => self.engine.write_config((offset - DEVICE) as usize, data),
            NOTIFY..=0x3fff => {
                // Without an ioeventfd (tests, or before KVM knows the address), kick by hand.
                let index = ((offset - NOTIFY) / u64::from(NOTIFY_MULTIPLIER)) as usize;
                if let Some(k) = self.kicks.get(index) {
                    let _ = k.write(1);
                }
            }
            MSIX_TABLE..=0xbfff => lock(&self.msix).write_table(offset - MSIX_TABLE, data),
            _ => {}
        }
    }

    fn bar_moved(&mut self, moved: BarMove) {
        if moved.index == SHM_BAR {
            if let Some(w) = &self.shm {
                w.place(Some(moved.to));
            }
            return;
        }
        if moved.index != 0 {
            return;
        }
        for (i, k) in self.kicks.iter().enumerate() {
            let off = NOTIFY + i as u64 * u64::from(NOTIFY_MULTIPLIER);
            let _ = self.doorbells.unregister(moved.from + off, k);
            if let Err(e) = self.doorbells.register(moved.to + off, k) {
                log::warn!("cannot move a virtio doorbell: {e}");
            }
        }
    }
}

pub mod harness;
#[cfg(test)]
mod tests;
