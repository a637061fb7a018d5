//! The backend side: adapts any [`DeviceCore`] to the `vhost-user-backend` crate's daemon.
//! Each kick of a queue pops its descriptor chains, hands them to the core, and returns
//! them to the used ring, notifying the driver as `EVENT_IDX` allows.

use crate::devices::bus::lock;
use crate::devices::virtio::poll::{poll_for_work, quiet_doorbell, Poller};
use crate::devices::virtio::shm::{ShmError, ShmMapper};
use crate::devices::virtio::{serve_queue, DeviceCore};
use crate::memory::GuestMemory;
use std::os::fd::AsRawFd;
use std::os::fd::BorrowedFd;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use vhost::vhost_user::message::{
    VhostUserMMap, VhostUserMMapFlags, VhostUserProtocolFeatures, VhostUserShMemConfig,
    VhostUserVirtioFeatures,
};
use vhost::vhost_user::{Backend, GpuBackend, VhostUserFrontendReqHandler};
use vhost_user_backend::{VhostUserBackend, VhostUserDaemon, VringRwLock, VringT};
use vm_memory::{GuestAddressSpace, GuestMemoryAtomic};
use vmm_sys_util::epoll::EventSet;
use vmm_sys_util::event::{
    new_event_consumer_and_notifier, EventConsumer, EventFlag, EventNotifier,
};
use vmm_sys_util::eventfd::EventFd;

/// Why serving stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The daemon could not be created.
    #[error("Cannot start the vhost-user device: {0}.")]
    Start(String),
    /// The socket or the connection failed.
    #[error("The vhost-user connection on {path} failed: {reason}.")]
    Connection {
        /// The socket path.
        path: String,
        /// What happened.
        reason: String,
    },
}

/// Per-queue reset (virtio 1.2). Over vhost-user the frontend carries it out with the
/// ordinary ring messages (stop, then set up again), so any core can offer it. It is offered
/// to GPU frontends only, because QEMU's `vhost-user-gpu` passes the guest's acceptance of it
/// on whether or not the backend offered it, and the backend crate refuses unoffered bits.
const VIRTIO_F_RING_RESET: u64 = 1 << 40;

/// A device core served over vhost-user.
pub struct CoreBackend<C> {
    core: Mutex<C>,
    mem: RwLock<Option<GuestMemoryAtomic<GuestMemory>>>,
    // Fixed at creation so that the frontend sees stable answers.
    num_queues: usize,
    max_queue_size: usize,
    features: u64,
    /// Tells the (single) queue worker thread to exit when the frontend is gone.
    exit: Option<(EventConsumer, EventNotifier)>,
    /// The core's host-input EventFd, if it has one (console).
    input: Option<EventFd>,
    /// Whether the core is a GPU (QEMU's `vhost-user-gpu` frontends hand it a display socket).
    is_gpu: bool,
    /// Whether the core is a network card (no protocol extras; served through the relay).
    is_net: bool,
    /// The display socket a `vhost-user-gpu` frontend handed over. Frames go to the console
    /// connection instead (no pixel copies through QEMU); it is held so that the frontend
    /// sees a live peer.
    gpu_socket: Mutex<Option<GpuBackend>>,
    /// The core's shared memory regions (ID, bytes), fixed at creation.
    shared_memory: Vec<(u8, u64)>,
    /// Each queue's polling window (all queues are served on one thread).
    pollers: Mutex<Vec<Poller>>,
}

/// A backend's shared memory requests, sent to its frontend (`SHMEM_MAP`, `SHMEM_UNMAP`),
/// which maps the pages into the guest's window; with `REPLY_ACK` its refusal comes back.
struct FrontendShm(Backend);

impl ShmMapper for FrontendShm {
    fn map(
        &self,
        shmid: u8,
        offset: u64,
        fd: BorrowedFd<'_>,
        fd_offset: u64,
        len: u64,
        writable: bool,
    ) -> Result<(), ShmError> {
        let flags = if writable {
            VhostUserMMapFlags::WRITABLE
        } else {
            VhostUserMMapFlags::empty()
        };
        let req = VhostUserMMap {
            shmid,
            fd_offset,
            shm_offset: offset,
            len,
            flags: flags.bits(),
            ..Default::default()
        };
        self.0
            .shmem_map(&req, &fd)
            .map(drop)
            .map_err(|e| ShmError::Host {
                what: "map shared memory through the frontend",
                reason: e.to_string(),
            })
    }

    fn unmap(&self, shmid: u8, offset: u64, len: u64) -> Result<(), ShmError> {
        let req = VhostUserMMap {
            shmid,
            shm_offset: offset,
            len,
            ..Default::default()
        };
        self.0
            .shmem_unmap(&req)
            .map(drop)
            .map_err(|e| ShmError::Host {
                what: "unmap shared memory through the frontend",
                reason: e.to_string(),
            })
    }
}

impl<C> std::fmt::Debug for CoreBackend<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CoreBackend")
            .field("num_queues", &self.num_queues)
            .finish_non_exhaustive()
    }
}

impl<C: DeviceCore> CoreBackend<C> {
    /// Wraps `core`.
    pub fn new(core: C) -> Self {
        let input = core.input_event().and_then(|e| e.try_clone().ok());
        let is_gpu = core.device_type() == crate::devices::virtio::gpu::DEVICE_TYPE;
        let is_net = core.device_type() == crate::devices::virtio::net::DEVICE_TYPE;
        let shared_memory = core.shared_memory();
        let pollers = vec![Poller::new(core.poll_window()); core.num_queues()];
        Self {
            shared_memory,
            pollers: Mutex::new(pollers),
            num_queues: core.num_queues(),
            max_queue_size: usize::from(core.max_queue_size()),
            features: core.features()
                | VhostUserVirtioFeatures::PROTOCOL_FEATURES.bits()
                | if is_gpu { VIRTIO_F_RING_RESET } else { 0 },
            core: Mutex::new(core),
            mem: RwLock::new(None),
            exit: new_event_consumer_and_notifier(EventFlag::NONBLOCK).ok(),
            input,
            is_gpu,
            is_net,
            gpu_socket: Mutex::new(None),
        }
    }

    /// The epoll token of the host-input event: right after the queues and the exit event.
    fn input_token(&self) -> u16 {
        u16::try_from(self.num_queues + 1).unwrap_or(u16::MAX)
    }

    fn process_queue(
        &self,
        index: usize,
        vring: &VringRwLock,
        kicked: bool,
    ) -> std::io::Result<()> {
        let mem = {
            let guard = self
                .mem
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match guard.as_ref() {
                Some(m) => m.memory(),
                None => return Ok(()),
            }
        };
        let window = {
            let mut pollers = lock(&self.pollers);
            let Some(poller) = pollers.get_mut(index) else {
                return Ok(());
            };
            if kicked {
                poller.woken();
            }
            poller.window()
        };
        let result = self.serve_and_poll(index, vring, &mem, window);
        // However that ended, the worker now sleeps until the next doorbell.
        if let Some(poller) = lock(&self.pollers).get_mut(index) {
            poller.sleeping();
        }
        result
    }

    /// Serves queue `index`, then watches it for `window` and serves again what comes,
    /// until a window passes without a request.
    fn serve_and_poll(
        &self,
        index: usize,
        vring: &VringRwLock,
        mem: &GuestMemory,
        window: std::time::Duration,
    ) -> std::io::Result<()> {
        let failed = |e: &dyn std::fmt::Display| std::io::Error::other(e.to_string());
        loop {
            let (notify, polling) = {
                let mut state = vring.get_mut();
                let queue = state.get_queue_mut();
                let notify = serve_queue(queue, index, mem, &self.core).map_err(|e| failed(&e))?;
                // Quiet before the interrupt: the driver it wakes may send the next one at once.
                let polling = quiet_doorbell(queue, mem, window).map_err(|e| failed(&e))?;
                (notify, polling)
            };
            if notify {
                vring.signal_used_queue()?;
            }
            // The ring's lock is let go between polls: the frontend's messages (a stop) go on.
            if !polling
                || !poll_for_work(vring.get_mut().get_queue_mut(), mem, window)
                    .map_err(|e| failed(&e))?
            {
                return Ok(());
            }
        }
    }
}

impl<C: DeviceCore + 'static> VhostUserBackend for CoreBackend<C> {
    type Bitmap = ();
    type Vring = VringRwLock;

    fn num_queues(&self) -> usize {
        self.num_queues
    }

    fn max_queue_size(&self) -> usize {
        self.max_queue_size
    }

    fn features(&self) -> u64 {
        self.features
    }

    fn protocol_features(&self) -> VhostUserProtocolFeatures {
        // A network card needs none: its frontend owns the configuration (QEMU warns of
        // a CONFIG it does not use), one queue pair needs no MQ, and without REPLY_ACK no
        // SET_VRING_ENABLE the relay holds back is waiting for a reply (`net_relay`).
        if self.is_net {
            return VhostUserProtocolFeatures::empty();
        }
        let base = VhostUserProtocolFeatures::CONFIG
            | VhostUserProtocolFeatures::MQ
            | VhostUserProtocolFeatures::REPLY_ACK;
        if self.shared_memory.is_empty() {
            base
        } else {
            base | VhostUserProtocolFeatures::BACKEND_REQ | VhostUserProtocolFeatures::SHMEM
        }
    }

    fn get_shmem_config(&self) -> std::io::Result<VhostUserShMemConfig> {
        // Sizes are indexed by shared memory ID.
        let mut sizes = [0u64; 256];
        for &(shmid, len) in &self.shared_memory {
            sizes[usize::from(shmid)] = len;
        }
        let count = self
            .shared_memory
            .iter()
            .map(|&(shmid, _)| u32::from(shmid) + 1)
            .max()
            .unwrap_or(0);
        Ok(VhostUserShMemConfig::new(count, &sizes))
    }

    fn set_backend_req_fd(&self, backend: Backend) {
        if !self.shared_memory.is_empty() {
            lock(&self.core).set_shared_memory(Some(Arc::new(FrontendShm(backend))));
        }
    }

    fn exit_event(&self, _thread_index: usize) -> Option<(EventConsumer, EventNotifier)> {
        // All queues share one worker thread (the default), so one exit event serves.
        let (consumer, notifier) = self.exit.as_ref()?;
        Some((consumer.try_clone().ok()?, notifier.try_clone().ok()?))
    }

    fn stop_vring(&self, queue_index: u32) -> std::io::Result<()> {
        // A frontend stops the rings when the device stops: the driver reset it, or the
        // guest rebooted. Like a virtio reset, that ends the device's state (a GPU's
        // resources and 3D contexts, which a rebooted guest's ids would otherwise meet).
        if queue_index == 0 {
            lock(&self.core).reset();
        }
        Ok(())
    }

    fn acked_features(&self, features: u64) {
        lock(&self.core).set_driver_features(features);
    }

    fn set_event_idx(&self, _enabled: bool) {
        // The vrings carry the setting themselves (the daemon sets it on each queue).
    }

    fn get_config(&self, offset: u32, size: u32) -> Vec<u8> {
        // The frontend asks for arbitrary windows: answer what exists, zeroes beyond it.
        // Asked live: what some devices show depends on what the driver wrote.
        let config = lock(&self.core).config();
        let mut out = vec![0u8; size as usize];
        let start = (offset as usize).min(config.len());
        let end = start.saturating_add(size as usize).min(config.len());
        out[..end - start].copy_from_slice(&config[start..end]);
        out
    }

    fn set_config(&self, offset: u32, buf: &[u8]) -> std::io::Result<()> {
        lock(&self.core).write_config(offset as usize, buf);
        Ok(())
    }

    fn set_gpu_socket(&self, gpu_backend: GpuBackend) -> std::io::Result<()> {
        if !self.is_gpu {
            return Err(std::io::Error::other("only a GPU takes a display socket"));
        }
        *lock(&self.gpu_socket) = Some(gpu_backend);
        Ok(())
    }

    fn update_memory(&self, mem: GuestMemoryAtomic<GuestMemory>) -> std::io::Result<()> {
        *self
            .mem
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(mem);
        Ok(())
    }

    fn handle_event(
        &self,
        device_event: u16,
        evset: EventSet,
        vrings: &[VringRwLock],
        _thread: usize,
    ) -> std::io::Result<()> {
        if evset != EventSet::IN {
            return Err(std::io::Error::other(format!(
                "unexpected event set {evset:?}"
            )));
        }
        if device_event == self.input_token() {
            if let Some(input) = &self.input {
                let _ = input.read();
            }
            for (index, vring) in vrings.iter().enumerate() {
                self.process_queue(index, vring, false)?;
            }
            return Ok(());
        }
        let index = usize::from(device_event);
        let vring = vrings
            .get(index)
            .ok_or_else(|| std::io::Error::other(format!("no queue {index}")))?;
        self.process_queue(index, vring, true)
    }
}

/// A daemon serving a core, and the backend it serves.
type Daemon<C> = (VhostUserDaemon<Arc<CoreBackend<C>>>, Arc<CoreBackend<C>>);

/// The daemon serving `core`, with the device's host input watched by its worker.
fn daemon<C: DeviceCore + 'static>(name: &str, core: C) -> Result<Daemon<C>, ServeError> {
    let backend = Arc::new(CoreBackend::new(core));
    let input = backend
        .input
        .as_ref()
        .map(|e| (e.as_raw_fd(), backend.input_token()));
    let daemon = VhostUserDaemon::new(
        name.to_owned(),
        backend.clone(),
        GuestMemoryAtomic::new(GuestMemory::new()),
    )
    .map_err(|e| ServeError::Start(format!("{e:?}")))?;
    if let Some((fd, token)) = input {
        for handler in daemon.get_epoll_handlers() {
            handler
                .register_listener(fd, EventSet::IN, u64::from(token))
                .map_err(|e| ServeError::Start(format!("cannot watch the device's input: {e}")))?;
        }
    }
    Ok((daemon, backend))
}

/// Serves `core` on `socket` to one frontend; returns when it disconnects. A network
/// card is served through [`super::net_relay`] (QEMU's virtio-net enables its rings
/// before the vhost crate accepts that).
pub fn serve<C: DeviceCore + 'static>(
    name: &str,
    core: C,
    socket: &Path,
) -> Result<(), ServeError> {
    if core.device_type() == crate::devices::virtio::net::DEVICE_TYPE {
        return serve_relayed(name, core, socket);
    }
    let (mut daemon, _) = daemon(name, core)?;
    daemon.serve(socket).map_err(|e| ServeError::Connection {
        path: socket.display().to_string(),
        reason: format!("{e:?}"),
    })
}

/// Serves `core` to the one frontend that connects to `socket`, through the relay: the
/// daemon takes the relay's end of a connection on an abstract socket of this process
/// (no file), and the relay carries the frontend's messages to it.
fn serve_relayed<C: DeviceCore + 'static>(
    name: &str,
    core: C,
    socket: &Path,
) -> Result<(), ServeError> {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};
    static RELAYS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let connection = |e: std::io::Error| ServeError::Connection {
        path: socket.display().to_string(),
        reason: e.to_string(),
    };
    let _ = std::fs::remove_file(socket);
    let listener = UnixListener::bind(socket).map_err(connection)?;
    let (front, _) = listener.accept().map_err(connection)?;
    drop(listener);
    let n = RELAYS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let inner =
        SocketAddr::from_abstract_name(format!("phyllome-vhost-relay-{}-{n}", std::process::id()))
            .map_err(connection)?;
    let inner_listener = UnixListener::bind_addr(&inner).map_err(connection)?;
    // Connecting first leaves the connection waiting in the backlog for the daemon.
    let back = UnixStream::connect_addr(&inner).map_err(connection)?;
    let (mut daemon, backend) = daemon(name, core)?;
    daemon
        .start(&mut vhost::vhost_user::Listener::from(inner_listener))
        .map_err(|e| ServeError::Start(format!("{e:?}")))?;
    let relay = std::thread::Builder::new()
        .name("vhost-user relay".into())
        .spawn(move || super::net_relay::relay(front, back))
        .map_err(connection)?;
    let result = daemon.wait();
    // The worker threads end with the connection, as `serve` makes them.
    if let Some((_, notifier)) = &backend.exit {
        let _ = notifier.notify();
    }
    if let Ok(Err(e)) = relay.join() {
        log::debug!("the vhost-user relay ended: {e}");
    }
    match result {
        Ok(())
        | Err(vhost_user_backend::Error::HandleRequest(
            vhost::vhost_user::Error::Disconnected | vhost::vhost_user::Error::PartialMessage,
        )) => Ok(()),
        Err(e) => Err(ServeError::Connection {
            path: socket.display().to_string(),
            reason: format!("{e:?}"),
        }),
    }
}
