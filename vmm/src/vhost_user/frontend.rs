//! The frontend side: a virtio-pci function whose queues are served by a vhost-user
//! backend in another process. We hand the backend our memfd-backed guest memory, each
//! queue's addresses, the doorbell EventFd KVM signals (so the backend is woken directly),
//! and a "call" EventFd per queue, which a relay thread turns into MSI-X interrupts.
//! A backend with shared memory regions (`SHMEM`) asks us, over its own channel, to map
//! its files into the regions' window; a thread of ours serves that channel.

#![allow(
    clippy::cast_possible_truncation,
    reason = "queue indices and sizes are small"
)]

use crate::devices::bus::lock;
use crate::devices::pci::msix::Msix;
use crate::devices::virtio::event_loop::wait_loop;
use crate::devices::virtio::pci::{ActiveQueue, QueueEngine};
use crate::devices::virtio::shm::{ShmMapper, ShmWindow};
use crate::memory::GuestMemory;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use vhost::vhost_user::message::{
    VhostUserConfigFlags, VhostUserHeaderFlag, VhostUserMMap, VhostUserMMapFlags,
    VhostUserProtocolFeatures, VhostUserVirtioFeatures,
};
use vhost::vhost_user::{
    Frontend, FrontendReqHandler, HandlerResult, VhostUserFrontend, VhostUserFrontendReqHandler,
};
use vhost::{VhostBackend, VhostUserMemoryRegionInfo, VringConfigData};
use virtio_queue::QueueT;
use vm_memory::{GuestAddress, GuestMemoryBackend};
use vmm_sys_util::eventfd::EventFd;

/// Why a vhost-user device could not be attached.
#[derive(Debug, thiserror::Error)]
pub enum FrontendError {
    /// Connecting or the first exchange failed.
    #[error("Cannot attach the vhost-user device at {}: {reason}. Is its backend running?", path.display())]
    Connect {
        /// The socket.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
}

struct Relay {
    stop: EventFd,
    thread: JoinHandle<()>,
}

/// The most shared memory (all regions together) a backend may ask for: a BAR in the
/// 64-bit PCI window, which is 32 GiB.
const MAX_SHARED_MEMORY: u64 = 16 << 30;

/// The window a backend's shared memory requests land in; none between machines.
#[derive(Default)]
struct ShmTarget(Mutex<Option<Arc<ShmWindow>>>);

impl ShmTarget {
    fn window(&self) -> std::io::Result<Arc<ShmWindow>> {
        lock(&self.0).clone().ok_or_else(|| {
            std::io::Error::other("the device's shared memory is not attached to a machine")
        })
    }
}

fn refused(e: impl std::fmt::Display) -> std::io::Error {
    log::warn!("vhost-user shared memory request refused: {e}");
    std::io::Error::other(e.to_string())
}

impl VhostUserFrontendReqHandler for ShmTarget {
    fn shmem_map(&self, req: &VhostUserMMap, fd: &dyn AsRawFd) -> HandlerResult<u64> {
        let (shmid, offset, fd_offset, len, flags) =
            (req.shmid, req.shm_offset, req.fd_offset, req.len, req.flags);
        // SAFETY: the descriptor came with the request and stays open for this call.
        let fd = unsafe { BorrowedFd::borrow_raw(fd.as_raw_fd()) };
        let writable = flags & VhostUserMMapFlags::WRITABLE.bits() != 0;
        self.window()?
            .map(shmid, offset, fd, fd_offset, len, writable)
            .map_err(refused)?;
        Ok(0)
    }

    fn shmem_unmap(&self, req: &VhostUserMMap) -> HandlerResult<u64> {
        let (shmid, offset, len) = (req.shmid, req.shm_offset, req.len);
        self.window()?.unmap(shmid, offset, len).map_err(refused)?;
        Ok(0)
    }
}

/// The thread serving a backend's requests.
struct BackendChannel {
    stop: EventFd,
    thread: JoinHandle<()>,
}

/// A device served by a vhost-user backend.
pub struct VhostUserEngine {
    frontend: Frontend,
    path: PathBuf,
    device_type: u32,
    num_queues: usize,
    max_queue_size: u16,
    features: u64,
    backend_features: u64,
    config: Vec<u8>,
    active: Vec<usize>,
    relay: Option<Relay>,
    severed: bool,
    /// The backend takes SET_CONFIG (the CONFIG protocol feature was negotiated).
    config_writable: bool,
    /// The backend's shared memory regions (ID, bytes), from GET_SHMEM_CONFIG.
    shared_memory: Vec<(u8, u64)>,
    /// Whether replies to the backend's requests were negotiated (REPLY_ACK).
    reply_ack: bool,
    /// Where its shared memory requests go.
    shm_target: Arc<ShmTarget>,
    /// The thread serving them, once a window was attached.
    channel: Option<BackendChannel>,
}

impl std::fmt::Debug for VhostUserEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VhostUserEngine")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl VhostUserEngine {
    /// Connects to the backend at `socket` for a device of `device_type` whose
    /// configuration space is `config_size` bytes.
    pub fn connect(
        device_type: u32,
        config_size: u32,
        socket: &Path,
        max_queue_size: u16,
    ) -> Result<Self, FrontendError> {
        let err = |reason: String| FrontendError::Connect {
            path: socket.to_owned(),
            reason,
        };
        let mut f = Frontend::connect(socket, 16).map_err(|e| err(e.to_string()))?;
        f.set_owner().map_err(|e| err(format!("SET_OWNER: {e}")))?;
        let backend_features = f
            .get_features()
            .map_err(|e| err(format!("GET_FEATURES: {e}")))?;
        let protocol_bit = VhostUserVirtioFeatures::PROTOCOL_FEATURES.bits();
        let mut num_queues = 1;
        let mut config_writable = false;
        let mut shared_memory = Vec::new();
        let mut reply_ack = false;
        let mut config = vec![0u8; config_size as usize];
        if backend_features & protocol_bit != 0 {
            let offered = f
                .get_protocol_features()
                .map_err(|e| err(format!("GET_PROTOCOL_FEATURES: {e}")))?;
            let mut wanted =
                offered & (VhostUserProtocolFeatures::CONFIG | VhostUserProtocolFeatures::MQ);
            // Shared memory needs the backend's request channel; its replies carry
            // refusals back (a blob the guest may not map there).
            let shm = VhostUserProtocolFeatures::SHMEM | VhostUserProtocolFeatures::BACKEND_REQ;
            if offered.contains(shm) {
                wanted |= shm | (offered & VhostUserProtocolFeatures::REPLY_ACK);
            }
            f.set_protocol_features(wanted)
                .map_err(|e| err(format!("SET_PROTOCOL_FEATURES: {e}")))?;
            reply_ack = wanted.contains(VhostUserProtocolFeatures::REPLY_ACK);
            if wanted.contains(VhostUserProtocolFeatures::SHMEM) {
                let c = f
                    .get_shmem_config()
                    .map_err(|e| err(format!("GET_SHMEM_CONFIG: {e}")))?;
                let sizes = c.memory_sizes;
                shared_memory = (0u8..=255).zip(sizes).filter(|&(_, len)| len > 0).collect();
                let total = shared_memory
                    .iter()
                    .fold(0u64, |sum, &(_, len)| sum.saturating_add(len));
                if total > MAX_SHARED_MEMORY {
                    return Err(err(format!(
                        "it asks for {total} bytes of shared memory, more than the {MAX_SHARED_MEMORY} a device may have"
                    )));
                }
            }
            if wanted.contains(VhostUserProtocolFeatures::MQ) {
                num_queues = f
                    .get_queue_num()
                    .map_err(|e| err(format!("GET_QUEUE_NUM: {e}")))?
                    as usize;
            }
            config_writable = wanted.contains(VhostUserProtocolFeatures::CONFIG);
            if wanted.contains(VhostUserProtocolFeatures::CONFIG) && config_size > 0 {
                let (_, payload) = f
                    .get_config(0, config_size, VhostUserConfigFlags::WRITABLE, &config)
                    .map_err(|e| err(format!("GET_CONFIG: {e}")))?;
                config = payload.to_vec();
            }
        }
        // A network card's backend (ours offers no CONFIG for it) gives no
        // configuration: the frontend owns it, as QEMU's virtio-net does, with one queue
        // pair, the default address, the link up and passt's MTU.
        if device_type == crate::devices::virtio::net::DEVICE_TYPE {
            num_queues = num_queues.max(2);
            if config.iter().all(|&b| b == 0) {
                config = crate::devices::virtio::net::frontend_config();
            }
        }
        // A block device advertises its real queue count in its configuration space.
        if device_type == 2 && config.len() >= 36 {
            let advertised = usize::from(u16::from_le_bytes([config[34], config[35]]));
            if advertised > 0 {
                num_queues = num_queues.min(advertised);
            }
        }
        Ok(Self {
            frontend: f,
            path: socket.to_owned(),
            device_type,
            num_queues: num_queues.clamp(1, 16),
            max_queue_size,
            features: backend_features & !protocol_bit,
            backend_features,
            config,
            active: Vec::new(),
            relay: None,
            severed: false,
            config_writable,
            shared_memory,
            reply_ack,
            shm_target: Arc::default(),
            channel: None,
        })
    }

    /// Hands the backend its request channel and starts serving it.
    fn open_backend_channel(&mut self) -> Result<(), String> {
        let mut handler =
            FrontendReqHandler::new(self.shm_target.clone()).map_err(|e| e.to_string())?;
        handler.set_reply_ack_flag(self.reply_ack);
        self.frontend
            .set_backend_request_fd(&handler.get_tx_raw_fd())
            .map_err(|e| format!("SET_BACKEND_REQ_FD: {e}"))?;
        let stop = EventFd::new(libc::EFD_NONBLOCK).map_err(|e| e.to_string())?;
        let stop_thread = stop.try_clone().map_err(|e| e.to_string())?;
        let thread = std::thread::Builder::new()
            .name("vhost-user-backend-req".into())
            .spawn(move || serve_backend_requests(&mut handler, &stop_thread))
            .map_err(|e| e.to_string())?;
        self.channel = Some(BackendChannel { stop, thread });
        Ok(())
    }

    /// Cuts the connection as if this process had died: no goodbye, rings left running.
    /// For tests of what a backend does when its frontend vanishes mid-request.
    pub fn sever(&mut self) {
        use std::os::fd::AsRawFd;
        // SAFETY: shutdown() on the socket this engine owns; it only changes the socket's
        // state (later messages fail), never memory.
        unsafe { libc::shutdown(self.frontend.as_raw_fd(), libc::SHUT_RDWR) };
        self.severed = true;
    }

    fn start(
        &mut self,
        mem: &GuestMemory,
        features: u64,
        queues: &[ActiveQueue],
        calls: &[EventFd],
    ) -> Result<(), String> {
        let f = &mut self.frontend;
        let protocol_bit = VhostUserVirtioFeatures::PROTOCOL_FEATURES.bits();
        f.set_features(features | (self.backend_features & protocol_bit))
            .map_err(|e| format!("SET_FEATURES: {e}"))?;
        let regions = mem
            .iter()
            .map(VhostUserMemoryRegionInfo::from_guest_region)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("guest memory cannot be shared: {e}"))?;
        f.set_mem_table(&regions)
            .map_err(|e| format!("SET_MEM_TABLE: {e}"))?;
        let hva = |gpa: u64| -> Result<u64, String> {
            mem.get_host_address(GuestAddress(gpa))
                .map(|p| p as u64)
                .map_err(|_| format!("queue address {gpa:#x} is not guest RAM"))
        };
        for (q, call) in queues.iter().zip(calls) {
            let i = q.index;
            f.set_vring_num(i, q.queue.size())
                .map_err(|e| format!("SET_VRING_NUM: {e}"))?;
            let addrs = VringConfigData {
                queue_max_size: self.max_queue_size,
                queue_size: q.queue.size(),
                flags: 0,
                desc_table_addr: hva(q.queue.desc_table())?,
                used_ring_addr: hva(q.queue.used_ring())?,
                avail_ring_addr: hva(q.queue.avail_ring())?,
                log_addr: None,
            };
            f.set_vring_addr(i, &addrs)
                .map_err(|e| format!("SET_VRING_ADDR: {e}"))?;
            f.set_vring_base(i, 0)
                .map_err(|e| format!("SET_VRING_BASE: {e}"))?;
            f.set_vring_call(i, call)
                .map_err(|e| format!("SET_VRING_CALL: {e}"))?;
            f.set_vring_kick(i, &q.kick)
                .map_err(|e| format!("SET_VRING_KICK: {e}"))?;
            if self.backend_features & protocol_bit != 0 {
                f.set_vring_enable(i, true)
                    .map_err(|e| format!("SET_VRING_ENABLE: {e}"))?;
            }
            self.active.push(i);
        }
        Ok(())
    }
}

impl QueueEngine for VhostUserEngine {
    fn device_type(&self) -> u32 {
        self.device_type
    }
    fn num_queues(&self) -> usize {
        self.num_queues
    }
    fn max_queue_size(&self) -> u16 {
        self.max_queue_size
    }
    fn features(&self) -> u64 {
        self.features
    }
    fn config(&self) -> Vec<u8> {
        self.config.clone()
    }
    fn shared_memory(&self) -> Vec<(u8, u64)> {
        self.shared_memory.clone()
    }
    fn attach_shared_memory(&mut self, window: Option<Arc<ShmWindow>>) {
        let attach = window.is_some();
        *lock(&self.shm_target.0) = window;
        if attach && self.channel.is_none() && !self.severed {
            if let Err(e) = self.open_backend_channel() {
                log::warn!(
                    "the vhost-user device at {} gets no shared memory: {e}",
                    self.path.display()
                );
            }
        }
    }

    fn write_config(&mut self, offset: usize, data: &[u8]) {
        if !self.config_writable || data.is_empty() {
            return;
        }
        let Ok(off) = u32::try_from(offset) else {
            return;
        };
        // The write may make the backend map shared memory the guest reads next: where
        // replies were negotiated, wait until it has acted.
        if self.reply_ack {
            self.frontend.set_hdr_flags(VhostUserHeaderFlag::NEED_REPLY);
        }
        let written = self
            .frontend
            .set_config(off, VhostUserConfigFlags::WRITABLE, data);
        self.frontend.set_hdr_flags(VhostUserHeaderFlag::empty());
        if let Err(e) = written {
            log::warn!("vhost-user SET_CONFIG failed: {e}");
            return;
        }
        // What the device shows may depend on what was written (virtio-input's selectors).
        let size = self.config.len() as u32;
        match self.frontend.get_config(
            0,
            size,
            VhostUserConfigFlags::WRITABLE,
            &vec![0; size as usize],
        ) {
            Ok((_, payload)) => self.config = payload.to_vec(),
            Err(e) => log::warn!("vhost-user GET_CONFIG failed: {e}"),
        }
    }

    fn activate(
        &mut self,
        mem: &GuestMemory,
        features: u64,
        queues: Vec<ActiveQueue>,
        msix: Arc<Mutex<Msix>>,
        _config_vector: u16,
    ) -> Result<(), String> {
        // Where the hypervisor gives each vector an interrupt line (KVM irqfd), the
        // backend signals it directly; otherwise a relay thread raises the vector.
        let mut calls = Vec::with_capacity(queues.len());
        let mut relayed = Vec::new();
        for q in &queues {
            match lock(&msix).vector_event(q.vector) {
                Some(line) => calls.push(line),
                None => {
                    let own = EventFd::new(libc::EFD_NONBLOCK).map_err(|e| e.to_string())?;
                    relayed.push((own.try_clone().map_err(|e| e.to_string())?, q.vector));
                    calls.push(own);
                }
            }
        }
        self.start(mem, features, &queues, &calls)?;
        if relayed.is_empty() {
            return Ok(());
        }
        let stop = EventFd::new(libc::EFD_NONBLOCK).map_err(|e| e.to_string())?;
        let stop_relay = stop.try_clone().map_err(|e| e.to_string())?;
        let thread = std::thread::Builder::new()
            .name("vhost-user-irq".into())
            .spawn(move || {
                let (events, vectors): (Vec<EventFd>, Vec<u16>) = relayed.into_iter().unzip();
                relay_interrupts(&events, &vectors, &stop_relay, &msix);
            })
            .map_err(|e| e.to_string())?;
        self.relay = Some(Relay { stop, thread });
        Ok(())
    }

    fn deactivate(&mut self) {
        if self.severed {
            self.active.clear();
        }
        for i in std::mem::take(&mut self.active) {
            // GET_VRING_BASE stops the ring in the backend.
            let _ = self.frontend.get_vring_base(i);
        }
        if let Some(r) = self.relay.take() {
            let _ = r.stop.write(1);
            let _ = r.thread.join();
        }
    }
}

impl Drop for VhostUserEngine {
    fn drop(&mut self) {
        self.deactivate();
        if let Some(c) = self.channel.take() {
            let _ = c.stop.write(1);
            let _ = c.thread.join();
        }
    }
}

/// Serves the backend's requests until it hangs up or `stop` is signalled.
fn serve_backend_requests(handler: &mut FrontendReqHandler<ShmTarget>, stop: &EventFd) {
    let mut fds = [
        libc::pollfd {
            fd: handler.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: stop.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    loop {
        // SAFETY: `fds` is a valid array of two pollfd structures for the call's duration.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
        if n < 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return;
        }
        if fds[1].revents != 0 {
            return;
        }
        if fds[0].revents != 0 {
            if let Err(e) = handler.handle_request() {
                // A refused request was answered already; a broken channel ends it.
                if matches!(
                    e,
                    vhost::vhost_user::Error::Disconnected
                        | vhost::vhost_user::Error::SocketBroken(_)
                        | vhost::vhost_user::Error::PartialMessage
                ) {
                    return;
                }
                log::debug!("vhost-user backend request: {e}");
            }
        }
    }
}

/// One machine's use of a vhost-user connection that outlives it: the VM keeps its
/// connections across guest reboots (a backend serves one connection, and the device's
/// state belongs to the guest, which resets it anyway), so each rebuilt machine's
/// virtio-pci function drives the same engine. Dropping the function stops the rings and
/// keeps the connection.
#[derive(Debug, Clone)]
pub struct SharedEngine(pub Arc<Mutex<VhostUserEngine>>);

impl QueueEngine for SharedEngine {
    fn device_type(&self) -> u32 {
        lock(&self.0).device_type
    }
    fn num_queues(&self) -> usize {
        lock(&self.0).num_queues
    }
    fn max_queue_size(&self) -> u16 {
        lock(&self.0).max_queue_size
    }
    fn features(&self) -> u64 {
        lock(&self.0).features
    }
    fn config(&self) -> Vec<u8> {
        lock(&self.0).config.clone()
    }
    fn shared_memory(&self) -> Vec<(u8, u64)> {
        lock(&self.0).shared_memory.clone()
    }
    fn attach_shared_memory(&mut self, window: Option<Arc<ShmWindow>>) {
        lock(&self.0).attach_shared_memory(window);
    }
    fn write_config(&mut self, offset: usize, data: &[u8]) {
        lock(&self.0).write_config(offset, data);
    }
    fn activate(
        &mut self,
        mem: &GuestMemory,
        features: u64,
        queues: Vec<ActiveQueue>,
        msix: Arc<Mutex<Msix>>,
        config_vector: u16,
    ) -> Result<(), String> {
        lock(&self.0).activate(mem, features, queues, msix, config_vector)
    }
    fn deactivate(&mut self) {
        lock(&self.0).deactivate();
    }
}

impl Drop for SharedEngine {
    fn drop(&mut self) {
        self.deactivate();
    }
}

/// Waits on the backend's "used buffers" EventFds and raises the matching MSI-X vectors.
fn relay_interrupts(calls: &[EventFd], vectors: &[u16], stop: &EventFd, msix: &Mutex<Msix>) {
    let refs: Vec<&EventFd> = calls.iter().collect();
    wait_loop(&refs, stop, |i| {
        if let Some(vector) = vectors.get(i) {
            lock(msix).trigger(*vector);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::virtio::blk::{Block, RawDisk};
    use crate::devices::virtio::pci::harness::{Driver, STATUS_BYTE};
    use crate::devices::virtio::{VIRTIO_F_VERSION_1, VIRTIO_RING_F_EVENT_IDX};
    use std::time::Duration;
    use vm_memory::Bytes;

    fn wait_for(path: &Path) {
        for _ in 0..500 {
            if path.exists() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("{} never appeared", path.display());
    }

    /// A block backend serving a fresh 1 MiB image on a thread, polling for `window`:
    /// (its folder, the image, the socket, the thread).
    fn blk_backend(
        window: Duration,
    ) -> (
        tempfile::TempDir,
        std::path::PathBuf,
        std::path::PathBuf,
        std::thread::JoinHandle<Result<(), crate::vhost_user::ServeError>>,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("blk.sock");
        let image = dir.path().join("disk.img");
        std::fs::File::create(&image)
            .unwrap()
            .set_len(1 << 20)
            .unwrap();
        let disk = RawDisk::open(&image, false).unwrap();
        let sock = socket.clone();
        let backend = std::thread::spawn(move || {
            let core = Block::new(disk, "vu", 1).with_poll_window(window);
            crate::vhost_user::serve("t", core, &sock)
        });
        wait_for(&socket);
        (dir, image, socket, backend)
    }

    #[test]
    fn requests_reach_a_vhost_user_backend_and_completions_raise_msix() {
        let (_dir, image, socket, backend) =
            blk_backend(crate::devices::virtio::blk::DEFAULT_POLL_WINDOW);

        let ram = crate::memory::create(16 << 20).unwrap();
        let engine = VhostUserEngine::connect(2, 60, &socket, 256).unwrap();
        assert_eq!(
            u64::from_le_bytes(engine.config()[0..8].try_into().unwrap()),
            2048,
            "capacity from GET_CONFIG"
        );
        let mut d = Driver::with_engine(Box::new(engine), ram.memory.clone());
        assert!(d.negotiate(VIRTIO_F_VERSION_1 | VIRTIO_RING_F_EVENT_IDX));
        d.enable_msix();
        d.setup_queue();
        d.w(0x14, 0xf, 1);
        assert_eq!(d.status() & 0x80, 0, "activation failed");
        for (i, sector) in [(1u16, 4u64), (2, 9)] {
            d.submit_write(sector, &[0x40 + i as u8; 512], i);
            let msg = d
                .msi
                .recv_timeout(Duration::from_secs(10))
                .expect("an interrupt from the backend");
            assert_eq!(msg, (0xfee0_0000, 0x41));
            assert_eq!(d.used_idx(), i);
            assert_eq!(d.mem.read_obj::<u8>(GuestAddress(STATUS_BYTE)).unwrap(), 0);
        }
        // The driver resets the device (as at a reboot) and sets it up again: the same
        // connection serves the new rings.
        d.w(0x14, 0, 1);
        for area in [0x2_0000u64, 0x3_0000] {
            d.mem.write_slice(&[0u8; 512], GuestAddress(area)).unwrap();
        }
        assert!(d.negotiate(VIRTIO_F_VERSION_1 | VIRTIO_RING_F_EVENT_IDX));
        d.enable_msix();
        d.setup_queue();
        d.w(0x14, 0xf, 1);
        assert_eq!(d.status() & 0x80, 0, "reactivation failed");
        d.submit_write(12, &[0x43; 512], 1);
        d.msi
            .recv_timeout(Duration::from_secs(10))
            .expect("an interrupt after the reset");
        assert_eq!(d.used_idx(), 1);
        let bytes = std::fs::read(&image).unwrap();
        assert_eq!(&bytes[4 * 512..5 * 512], &[0x41; 512][..]);
        assert_eq!(&bytes[9 * 512..10 * 512], &[0x42; 512][..]);
        assert_eq!(&bytes[12 * 512..13 * 512], &[0x43; 512][..]);
        // Dropping the device closes the connection: the backend returns cleanly.
        drop(d);
        assert!(backend.join().unwrap().is_ok());
    }

    /// A backend that keeps watching its queue takes a driver's back-to-back requests
    /// without doorbells (each one would be a system call and a wake-up), whether the driver
    /// waits for interrupts or watches the used ring itself.
    #[test]
    fn a_polling_backend_takes_back_to_back_requests_without_doorbells() {
        use crate::devices::virtio::pci::harness::{DATA, REQ_READ, REQ_WRITE};
        let (_dir, image, socket, backend) = blk_backend(Duration::from_millis(300));
        let ram = crate::memory::create(16 << 20).unwrap();
        let engine = VhostUserEngine::connect(2, 60, &socket, 256).unwrap();
        let mut d = Driver::with_engine(Box::new(engine), ram.memory.clone());
        // Completions come on an interrupt line the backend signals itself (its call fd).
        d.use_interrupt_lines();
        d.bring_up(VIRTIO_F_VERSION_1 | VIRTIO_RING_F_EVENT_IDX);
        for i in 0..40u8 {
            d.poll_completions = i >= 20;
            d.mem
                .write_slice(&[i + 1; 512], GuestAddress(DATA))
                .unwrap();
            assert_eq!(d.request(REQ_WRITE, u64::from(i), 512), 0);
        }
        assert!(d.kicks <= 6, "{} doorbells for 40 requests", d.kicks);
        for i in 0..40u8 {
            assert_eq!(d.request(REQ_READ, u64::from(i), 512), 0);
            let mut back = [0u8; 512];
            d.mem.read_slice(&mut back, GuestAddress(DATA)).unwrap();
            assert!(back.iter().all(|&b| b == i + 1), "sector {i} reads back");
        }
        let bytes = std::fs::read(&image).unwrap();
        assert!(bytes[39 * 512..40 * 512].iter().all(|&b| b == 40));
        drop(d);
        assert!(backend.join().unwrap().is_ok());
    }

    /// A guest that reboots meets a clean device: the backend's state (here a GPU's
    /// resources) ends when the frontend stops the rings, so the new guest's resource ids
    /// are free again.
    #[test]
    fn a_reset_through_vhost_user_clears_the_backends_device_state() {
        use crate::devices::virtio::gpu::display::NullSink;
        use crate::devices::virtio::gpu::protocol::{
            CtrlHdr, ResourceCreate2d, CMD_RESOURCE_CREATE_2D, FORMAT_B8G8R8X8_UNORM,
            RESP_ERR_INVALID_RESOURCE_ID, RESP_OK_NODATA,
        };
        use crate::devices::virtio::gpu::Gpu;
        use vm_memory::ByteValued;
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("gpu.sock");
        let gpu = Gpu::new(&[(640, 480)], Box::new(NullSink)).unwrap();
        let sock = socket.clone();
        let backend = std::thread::spawn(move || crate::vhost_user::serve("t", gpu, &sock));
        wait_for(&socket);
        let ram = crate::memory::create(16 << 20).unwrap();
        let engine = VhostUserEngine::connect(16, 16, &socket, 256).unwrap();
        let mut d = Driver::with_engine(Box::new(engine), ram.memory.clone());
        let (req, resp) = (0x30_0000u64, 0x31_0000u64);
        let mut request = CtrlHdr {
            kind: CMD_RESOURCE_CREATE_2D,
            ..CtrlHdr::default()
        }
        .as_slice()
        .to_vec();
        request.extend_from_slice(
            ResourceCreate2d {
                resource_id: 1,
                format: FORMAT_B8G8R8X8_UNORM,
                width: 64,
                height: 64,
            }
            .as_slice(),
        );
        d.mem.write_slice(&request, GuestAddress(req)).unwrap();
        let create = |d: &mut Driver| -> u32 {
            let n = d.post(0, &[(req, request.len() as u32, false), (resp, 24, true)]);
            d.wait_ring(0, n);
            d.mem.read_obj(GuestAddress(resp)).unwrap()
        };
        let bring_up = |d: &mut Driver| {
            assert!(d.negotiate(VIRTIO_F_VERSION_1));
            d.enable_msix_vectors(2);
            d.setup_ring(0);
            d.setup_ring(1);
            d.w(0x14, 0xf, 1);
            assert_eq!(d.status() & 0x80, 0, "activation failed");
        };
        bring_up(&mut d);
        assert_eq!(create(&mut d), RESP_OK_NODATA);
        assert_eq!(
            create(&mut d),
            RESP_ERR_INVALID_RESOURCE_ID,
            "the id is taken"
        );
        // The guest reboots: its driver resets the device and sets it up again.
        d.w(0x14, 0, 1);
        for index in [0u16, 1] {
            let base = crate::devices::virtio::pci::harness::ring_base(index);
            d.mem
                .write_slice(&[0u8; 0x3000], GuestAddress(base))
                .unwrap();
        }
        bring_up(&mut d);
        assert_eq!(create(&mut d), RESP_OK_NODATA, "resource 1 is free again");
        drop(d);
        assert!(backend.join().unwrap().is_ok());
    }

    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Capture {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn console_transmits_and_receives_over_vhost_user() {
        use crate::devices::virtio::console::Console;
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("con.sock");
        let out = Capture::default();
        let (console, input) = Console::new(Box::new(out.clone())).unwrap();
        let sock = socket.clone();
        let backend = std::thread::spawn(move || crate::vhost_user::serve("t", console, &sock));
        wait_for(&socket);

        let ram = crate::memory::create(16 << 20).unwrap();
        let engine = VhostUserEngine::connect(3, 12, &socket, 256).unwrap();
        assert_eq!(engine.num_queues(), 2);
        let mut d = Driver::with_engine(Box::new(engine), ram.memory.clone());
        assert!(d.negotiate(VIRTIO_F_VERSION_1 | VIRTIO_RING_F_EVENT_IDX));
        d.enable_msix_vectors(2);
        d.setup_ring(0);
        d.setup_ring(1);
        d.w(0x14, 0xf, 1);
        assert_eq!(d.status() & 0x80, 0, "activation failed");

        // Receive buffers are posted first, as Linux's driver does at probe; they wait
        // for input without keeping the device from serving the transmit queue.
        let n = d.post(0, &[(0x31_0000, 64, true)]);
        // Transmit: the guest's bytes reach the backend's output.
        d.mem
            .write_slice(b"hello from hvc0\n", GuestAddress(0x30_0000))
            .unwrap();
        let t = d.post(1, &[(0x30_0000, 16, false)]);
        d.wait_ring(1, t);
        assert_eq!(&*out.0.lock().unwrap(), b"hello from hvc0\n");

        // The receive buffer then gets the host's input.
        assert_eq!(d.ring_used(0), 0, "no input yet: the buffer waits");
        assert_eq!(input.push(b"ls\n"), 3);
        d.wait_ring(0, n);
        assert_eq!(d.ring_used_len(0, n), 3);
        let mut got = [0u8; 3];
        d.mem.read_slice(&mut got, GuestAddress(0x31_0000)).unwrap();
        assert_eq!(&got, b"ls\n");
        drop(d);
        assert!(backend.join().unwrap().is_ok());
    }

    /// Four 64 KiB writes are in flight when the frontend vanishes: the backend must end
    /// cleanly and leave a qcow2 image that `qemu-img check` finds consistent, holding
    /// every write it completed.
    #[test]
    fn a_frontend_vanishing_mid_request_leaves_a_consistent_image() {
        use crate::devices::virtio::blk::{Disk, Qcow2Disk};
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("blk.sock");
        let image = dir.path().join("disk.qcow2");
        Qcow2Disk::create(&image, 8 << 20).unwrap();
        let disk = Disk::open(&image, false, None).unwrap();
        let sock = socket.clone();
        let backend = std::thread::spawn(move || {
            crate::vhost_user::serve("t", Block::new(disk, "vu", 1), &sock)
        });
        wait_for(&socket);
        let ram = crate::memory::create(16 << 20).unwrap();
        let engine = Arc::new(Mutex::new(
            VhostUserEngine::connect(2, 60, &socket, 256).unwrap(),
        ));
        let mut d = Driver::with_engine(Box::new(SharedEngine(engine.clone())), ram.memory.clone());
        assert!(d.negotiate(VIRTIO_F_VERSION_1));
        d.enable_msix_vectors(1);
        d.setup_ring(0);
        d.w(0x14, 0xf, 1);
        for i in 0..4u64 {
            let (hdr, data, status) = (
                0x38_0000 + i * 0x100,
                0x30_0000 + i * 0x1_0000,
                0x39_0000 + i,
            );
            d.mem.write_obj(1u32, GuestAddress(hdr)).unwrap();
            d.mem.write_obj(0u32, GuestAddress(hdr + 4)).unwrap();
            d.mem.write_obj(i * 128, GuestAddress(hdr + 8)).unwrap();
            d.mem
                .write_slice(&[0x60 + i as u8; 65536], GuestAddress(data))
                .unwrap();
            d.mem.write_obj(0xffu8, GuestAddress(status)).unwrap();
            d.post(
                0,
                &[(hdr, 16, false), (data, 65536, false), (status, 1, true)],
            );
        }
        lock(&engine).sever();
        assert!(backend.join().unwrap().is_ok(), "the backend ends cleanly");
        let completed = d.ring_used(0);
        drop(d);
        let out = std::process::Command::new("qemu-img")
            .arg("check")
            .arg(&image)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        let Disk::Qcow2(q) = Disk::open(&image, true, None).unwrap() else {
            panic!("not qcow2");
        };
        for i in 0..u64::from(completed) {
            let mut back = vec![0u8; 65536];
            q.read_at(&mut back, i * 65536).unwrap();
            assert!(
                back.iter().all(|b| *b == 0x60 + i as u8),
                "completed write {i} is missing"
            );
        }
    }

    /// A backend asking for more shared memory than a BAR can hold is refused at connect.
    #[test]
    fn a_backend_asking_for_too_much_shared_memory_is_refused() {
        use crate::devices::virtio::rng::Rng;
        use crate::devices::virtio::{Chain, DeviceCore};
        struct Greedy(Rng);
        impl DeviceCore for Greedy {
            fn device_type(&self) -> u32 {
                self.0.device_type()
            }
            fn num_queues(&self) -> usize {
                self.0.num_queues()
            }
            fn max_queue_size(&self) -> u16 {
                self.0.max_queue_size()
            }
            fn features(&self) -> u64 {
                self.0.features()
            }
            fn config(&self) -> Vec<u8> {
                self.0.config()
            }
            fn process(&mut self, queue: usize, mem: &GuestMemory, chain: Chain<'_>) -> u32 {
                self.0.process(queue, mem, chain)
            }
            fn shared_memory(&self) -> Vec<(u8, u64)> {
                vec![(1, 1 << 40)]
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("rng.sock");
        let sock = socket.clone();
        let backend = std::thread::spawn(move || {
            crate::vhost_user::serve("t", Greedy(Rng::new(1024)), &sock)
        });
        wait_for(&socket);
        let e = VhostUserEngine::connect(4, 0, &socket, 256).unwrap_err();
        assert!(e.to_string().contains("more than the"), "{e}");
        let _ = backend.join();
    }

    #[test]
    fn a_missing_backend_is_a_clear_error() {
        let e =
            VhostUserEngine::connect(2, 60, Path::new("/nonexistent/blk.sock"), 256).unwrap_err();
        assert!(
            e.to_string().contains("/nonexistent/blk.sock")
                && e.to_string().contains("backend running"),
            "{e}"
        );
    }
}
