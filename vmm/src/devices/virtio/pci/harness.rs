//! A minimal virtio-pci driver, for tests and benchmarks: it probes, negotiates, lays out
//! one queue in guest memory, submits block requests through the doorbell and watches
//! MSI-X, the way Linux's virtio_pci and virtio_blk drivers do. It plays the guest, so it
//! panics on anything a real driver would treat as a broken device.

#![allow(
    clippy::unwrap_used,
    clippy::cast_possible_truncation,
    missing_docs,
    reason = "a harness standing in for a guest driver: a failure is a bug in the device or the caller"
)]

use super::*;
use crate::devices::pci::msix::VectorRoutes;
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{channel, Receiver, Sender};
use vm_memory::{Bytes, GuestAddress};
use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};

pub const BAR: u64 = 0xc000_0000;
const DESC: u64 = 0x1_0000;
const AVAIL: u64 = 0x2_0000;
const USED: u64 = 0x3_0000;
const HDR: u64 = 0x4_0000;
/// Where request data goes (up to 1 MiB): give the harness at least 4 MiB of memory.
pub const DATA: u64 = 0x10_0000;
pub const STATUS_BYTE: u64 = 0x6_0000;
pub const QSIZE: u16 = 64;
/// Most requests [`Driver::request_batch`] has in flight (three descriptors each).
pub const MAX_BATCH: usize = 16;

#[derive(Debug)]
pub struct Msi(Mutex<Sender<(u64, u32)>>);
impl MsiSink for Msi {
    fn deliver(&self, address: u64, data: u32) {
        let _ = lock(&self.0).send((address, data));
    }
}

#[derive(Debug)]
pub struct NoDoorbells;
impl Doorbells for NoDoorbells {
    fn register(&self, _: u64, _: &EventFd) -> std::io::Result<()> {
        Ok(())
    }
    fn unregister(&self, _: u64, _: &EventFd) -> std::io::Result<()> {
        Ok(())
    }
}

#[derive(Debug)]
pub struct Driver {
    pub dev: VirtioPci,
    pub mem: GuestMemory,
    pub msi: Receiver<(u64, u32)>,
    next_avail: u16,
    /// Whether `EVENT_IDX` was negotiated: then the doorbell rings only when the device's
    /// `avail_event` asks for it, as Linux's `virtqueue_kick_prepare` does.
    event_idx: bool,
    /// Whether [`Driver::request`] and [`Driver::request_batch`] watch the used ring instead
    /// of asking for an interrupt (as Linux's virtio_blk poll queues do).
    pub poll_completions: bool,
    /// With interrupt lines: how long the driver watches its line for the interrupt before
    /// it sleeps, as KVM's halt polling keeps a halted vCPU spinning (200 µs by default)
    /// before the host deschedules it.
    pub halt_poll: std::time::Duration,
    /// How often [`Driver::request`] and [`Driver::request_batch`] rang the doorbell.
    pub kicks: u64,
    /// The queue's interrupt line and an epoll watching it, where the driver has lines.
    line: Option<(EventFd, Epoll)>,
}

/// Interrupt lines as KVM's irqfds are: one EventFd per vector, which the device (or a
/// vhost-user backend, handed it as its call fd) signals and the driver waits on directly.
struct Lines(Vec<EventFd>);

impl VectorRoutes for Lines {
    fn event(&self, vector: usize) -> Option<&EventFd> {
        self.0.get(vector)
    }
    fn update(&mut self, _vector: usize, _address: u64, _data: u32, _deliverable: bool) {}
}

/// Block request types the harness sends.
pub const REQ_READ: u32 = 0;
/// Write.
pub const REQ_WRITE: u32 = 1;

impl Driver {
    /// A driver for a device run by `engine`, in `mem`.
    pub fn with_engine(engine: Box<dyn QueueEngine>, mem: GuestMemory) -> Self {
        Self::with_doorbells(engine, mem, Arc::new(NoDoorbells))
    }

    /// A driver for a device run by `engine`, in `mem`, whose doorbells go to `doorbells`
    /// (as KVM's ioeventfds would).
    pub fn with_doorbells(
        engine: Box<dyn QueueEngine>,
        mem: GuestMemory,
        doorbells: Arc<dyn Doorbells>,
    ) -> Self {
        let (tx, rx) = channel::<(u64, u32)>();
        let dev = VirtioPci::new(
            engine,
            mem.clone(),
            BAR,
            Arc::new(Msi(Mutex::new(tx))),
            doorbells,
        )
        .unwrap();
        Self {
            dev,
            mem,
            msi: rx,
            next_avail: 0,
            event_idx: false,
            poll_completions: false,
            kicks: 0,
            halt_poll: std::time::Duration::ZERO,
            line: None,
        }
    }

    pub fn w(&mut self, off: u64, v: u64, len: usize) {
        self.dev.bar_write(0, off, &v.to_le_bytes()[..len]);
    }

    pub fn r(&mut self, off: u64, len: usize) -> u64 {
        let mut b = [0u8; 8];
        self.dev.bar_read(0, off, &mut b[..len]);
        u64::from_le_bytes(b)
    }

    pub fn status(&mut self) -> u8 {
        self.r(0x14, 1) as u8
    }

    /// Linux's probe sequence up to FEATURES_OK; returns whether the device accepted.
    pub fn negotiate(&mut self, features: u64) -> bool {
        self.w(0x14, 0, 1);
        self.w(0x14, 1, 1);
        self.w(0x14, 3, 1);
        for sel in 0..2 {
            self.w(0x08, sel, 4);
            self.w(0x0c, (features >> (32 * sel)) & 0xffff_ffff, 4);
        }
        self.w(0x14, 0xb, 1);
        self.status() & 8 != 0
    }

    pub fn enable_msix(&mut self) {
        self.dev.write_config(4, &[0x06, 0]);
        let cap = self.dev.msix_cap;
        self.dev.write_config(cap + 3, &[0x80]);
        // Vector 1: the queue's interrupt.
        for (off, v) in [(0u64, 0xfee0_0000u64), (8, 0x41), (12, 0)] {
            let len = if off == 0 { 8 } else { 4 };
            self.w(MSIX_TABLE + 16 + off, v, len);
        }
    }

    pub fn setup_queue(&mut self) {
        self.w(0x16, 0, 2);
        self.w(0x18, u64::from(QSIZE), 2);
        self.w(0x1a, 1, 2);
        for (off, addr) in [(0x20, DESC), (0x28, AVAIL), (0x30, USED)] {
            self.w(off, addr & 0xffff_ffff, 4);
            self.w(off + 4, addr >> 32, 4);
        }
        self.w(0x1c, 1, 2);
    }

    pub fn desc(&self, i: u16, addr: u64, len: u32, flags: u16, next: u16) {
        // One 16-byte store, as a driver writes a descriptor.
        let mut d = [0u8; 16];
        d[..8].copy_from_slice(&addr.to_le_bytes());
        d[8..12].copy_from_slice(&len.to_le_bytes());
        d[12..14].copy_from_slice(&flags.to_le_bytes());
        d[14..].copy_from_slice(&next.to_le_bytes());
        self.mem
            .write_slice(&d, GuestAddress(DESC + u64::from(i) * 16))
            .unwrap();
    }

    /// Writes a block request header (type, reserved, sector) at `at`.
    fn header(&self, at: u64, kind: u32, sector: u64) {
        let mut h = [0u8; 16];
        h[..4].copy_from_slice(&kind.to_le_bytes());
        h[8..].copy_from_slice(&sector.to_le_bytes());
        self.mem.write_slice(&h, GuestAddress(at)).unwrap();
    }

    /// Submits a write of `data` at `sector` as descriptors 0..3 and rings the doorbell.
    pub fn submit_write(&mut self, sector: u64, data: &[u8], avail_idx: u16) {
        self.mem.write_obj(1u32, GuestAddress(HDR)).unwrap();
        self.mem.write_obj(0u32, GuestAddress(HDR + 4)).unwrap();
        self.mem.write_obj(sector, GuestAddress(HDR + 8)).unwrap();
        self.mem.write_slice(data, GuestAddress(DATA)).unwrap();
        self.mem
            .write_obj(0xffu8, GuestAddress(STATUS_BYTE))
            .unwrap();
        self.desc(0, HDR, 16, 1, 1);
        self.desc(1, DATA, data.len() as u32, 1, 2);
        self.desc(2, STATUS_BYTE, 1, 2, 0);
        self.mem
            .write_obj(
                0u16,
                GuestAddress(AVAIL + 4 + 2 * u64::from(avail_idx - 1) % u64::from(QSIZE)),
            )
            .unwrap();
        // used_event (EVENT_IDX): interrupt me once this request is used, as Linux asks.
        let used_event = AVAIL + 4 + 2 * u64::from(QSIZE);
        self.mem
            .write_obj(avail_idx - 1, GuestAddress(used_event))
            .unwrap();
        self.mem
            .write_obj(avail_idx, GuestAddress(AVAIL + 2))
            .unwrap();
        self.w(NOTIFY, 0, 2);
    }

    /// Brings the device up the way Linux does: features, MSI-X, one queue, DRIVER_OK.
    pub fn bring_up(&mut self, features: u64) {
        assert!(self.negotiate(features), "the device refused the features");
        self.event_idx = features & crate::devices::virtio::VIRTIO_RING_F_EVENT_IDX != 0;
        self.enable_msix();
        self.setup_queue();
        self.w(0x14, 0xf, 1);
        assert_eq!(self.status() & 0x80, 0, "the device failed to start");
    }

    /// Sends one block request of `len` bytes at `sector` (data at [`DATA`]), waits for
    /// its interrupt and returns its status byte.
    pub fn request(&mut self, kind: u32, sector: u64, len: u32) -> u8 {
        self.next_avail = self.next_avail.wrapping_add(1);
        let idx = self.next_avail;
        self.header(HDR, kind, sector);
        self.mem
            .write_obj(0xffu8, GuestAddress(STATUS_BYTE))
            .unwrap();
        let data_flags = if kind == REQ_READ { 3 } else { 1 };
        self.desc(0, HDR, 16, 1, 1);
        self.desc(1, DATA, len, data_flags, 2);
        self.desc(2, STATUS_BYTE, 1, 2, 0);
        let slot = u64::from(idx.wrapping_sub(1) % QSIZE);
        self.mem
            .write_obj(0u16, GuestAddress(AVAIL + 4 + 2 * slot))
            .unwrap();
        self.publish(idx.wrapping_sub(1), idx);
        self.wait_used(idx);
        self.mem.read_obj(GuestAddress(STATUS_BYTE)).unwrap()
    }

    /// Makes the requests up to `new` available (those from `old` on are new) and rings the
    /// doorbell if the device wants it. Unless polling, asks for an interrupt once the last
    /// is used; when polling, for none.
    fn publish(&mut self, old: u16, new: u16) {
        let used_event = if self.poll_completions {
            new.wrapping_add(0x7fff)
        } else {
            new.wrapping_sub(1)
        };
        self.mem
            .write_obj(used_event, GuestAddress(AVAIL + 4 + 2 * u64::from(QSIZE)))
            .unwrap();
        self.mem
            .store(new, GuestAddress(AVAIL + 2), Ordering::Release)
            .unwrap();
        // The index must be visible before the device's wish is read (virtio_mb in Linux).
        std::sync::atomic::fence(Ordering::SeqCst);
        if self.event_idx {
            let avail_event: u16 = self
                .mem
                .load(
                    GuestAddress(USED + 4 + 8 * u64::from(QSIZE)),
                    Ordering::Acquire,
                )
                .unwrap();
            // vring_need_event: kick when `avail_event` lies in [old, new).
            if new.wrapping_sub(avail_event).wrapping_sub(1) >= new.wrapping_sub(old) {
                return;
            }
        }
        self.kicks += 1;
        self.w(NOTIFY, 0, 2);
    }

    /// Gives the device interrupt lines (as KVM irqfds): the queue's completions then wake
    /// the driver straight from the device's thread, or from the backend's process over
    /// vhost-user, with no relay in between. Call before [`Driver::bring_up`].
    pub fn use_interrupt_lines(&mut self) {
        let lines: Vec<EventFd> = (0..self.dev.vectors())
            .map(|_| EventFd::new(libc::EFD_NONBLOCK).unwrap())
            .collect();
        // Vector 1 is the queue's (see `setup_queue`).
        let queue_line = lines[1].try_clone().unwrap();
        let epoll = Epoll::new().unwrap();
        epoll
            .ctl(
                ControlOperation::Add,
                queue_line.as_raw_fd(),
                EpollEvent::new(EventSet::IN, 1),
            )
            .unwrap();
        self.line = Some((queue_line, epoll));
        self.dev.use_interrupt_lines(Box::new(Lines(lines)));
    }

    /// Waits until the used index reaches `idx`, watching the ring or the interrupts.
    fn wait_used(&mut self, idx: u16) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        if self.poll_completions {
            loop {
                for _ in 0..64 {
                    let used: u16 = self
                        .mem
                        .load(GuestAddress(USED + 2), Ordering::Acquire)
                        .unwrap();
                    if used == idx {
                        return;
                    }
                    std::hint::spin_loop();
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "the device completed the request"
                );
            }
        }
        // Devices may interrupt more often than asked; the used index says what is done.
        if let Some((line, epoll)) = &self.line {
            let spin_until = std::time::Instant::now() + self.halt_poll;
            while std::time::Instant::now() < spin_until {
                // The line fired: the device has used something (maybe not all yet).
                if line.read().is_ok() && self.used_idx() == idx {
                    return;
                }
                std::hint::spin_loop();
            }
            let mut ready = [EpollEvent::default()];
            while self.used_idx() != idx {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                assert!(!left.is_zero(), "the device completed the request");
                let ms = i32::try_from(left.as_millis()).unwrap_or(i32::MAX);
                let _ = epoll.wait(ms, &mut ready);
                let _ = line.read();
            }
            return;
        }
        while self.used_idx() != idx {
            self.msi
                .recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
                .expect("the device completed the request");
        }
    }

    pub fn used_idx(&self) -> u16 {
        self.mem.read_obj(GuestAddress(USED + 2)).unwrap()
    }

    /// Submits one block request per entry of `sectors` at once (queue depth
    /// `sectors.len()`, at most [`MAX_BATCH`]), each of `len` bytes with its own data area
    /// from [`DATA`] up, rings the doorbell once, waits for all, and checks every status.
    pub fn request_batch(&mut self, kind: u32, sectors: &[u64], len: u32) {
        assert!(sectors.len() <= MAX_BATCH);
        let first = self.next_avail;
        let data_flags = if kind == REQ_READ { 3 } else { 1 };
        for (i, &sector) in sectors.iter().enumerate() {
            let (hdr, status) = (HDR + 16 * i as u64, STATUS_BYTE + i as u64);
            let data = DATA + i as u64 * u64::from(len);
            self.header(hdr, kind, sector);
            self.mem.write_obj(0xffu8, GuestAddress(status)).unwrap();
            let d = 3 * i as u16;
            self.desc(d, hdr, 16, 1, d + 1);
            self.desc(d + 1, data, len, data_flags, d + 2);
            self.desc(d + 2, status, 1, 2, 0);
            let slot = u64::from(self.next_avail % QSIZE);
            self.mem
                .write_obj(d, GuestAddress(AVAIL + 4 + 2 * slot))
                .unwrap();
            self.next_avail = self.next_avail.wrapping_add(1);
        }
        let end = self.next_avail;
        self.publish(first, end);
        self.wait_used(end);
        for i in 0..sectors.len() {
            let status: u8 = self
                .mem
                .read_obj(GuestAddress(STATUS_BYTE + i as u64))
                .unwrap();
            assert_eq!(status, 0, "request {i} of the batch from {first} failed");
        }
    }

    /// Enables MSI-X vectors 1..=`n` (data 0x41, 0x42, ...).
    pub fn enable_msix_vectors(&mut self, n: u16) {
        self.dev.write_config(4, &[0x06, 0]);
        let cap = self.dev.msix_cap;
        self.dev.write_config(cap + 3, &[0x80]);
        for v in 1..=u64::from(n) {
            let entry = MSIX_TABLE + 16 * v;
            self.w(entry, 0xfee0_0000, 8);
            self.w(entry + 8, 0x40 + v, 4);
            self.w(entry + 12, 0, 4);
        }
    }

    /// Sets up queue `index` (any index; each has its own area, see [`ring_base`]) with
    /// MSI-X vector `index + 1`.
    pub fn setup_ring(&mut self, index: u16) {
        let base = ring_base(index);
        self.w(0x16, u64::from(index), 2);
        self.w(0x18, u64::from(QSIZE), 2);
        self.w(0x1a, u64::from(index) + 1, 2);
        for (off, addr) in [(0x20, base), (0x28, base + 0x1000), (0x30, base + 0x2000)] {
            self.w(off, addr & 0xffff_ffff, 4);
            self.w(off + 4, addr >> 32, 4);
        }
        self.w(0x1c, 1, 2);
    }

    /// Posts a chain of `(addr, len, device_writes)` buffers on ring `index` (set up with
    /// [`Driver::setup_ring`]) and rings its doorbell; returns the new available index.
    pub fn post(&mut self, index: u16, buffers: &[(u64, u32, bool)]) -> u16 {
        let next = self.offer(index, buffers);
        self.w(
            NOTIFY + u64::from(index) * u64::from(NOTIFY_MULTIPLIER),
            0,
            2,
        );
        next
    }

    /// [`Driver::post`] without ringing the doorbell (the caller rings it elsewhere, as
    /// the hypervisor's ioeventfd would); returns the new available index.
    pub fn offer(&mut self, index: u16, buffers: &[(u64, u32, bool)]) -> u16 {
        let base = ring_base(index);
        let avail = base + 0x1000;
        let idx: u16 = self.mem.read_obj(GuestAddress(avail + 2)).unwrap();
        let head = (idx % QSIZE) * 4 % QSIZE;
        for (n, &(addr, len, write)) in buffers.iter().enumerate() {
            let i = head + n as u16;
            let last = n + 1 == buffers.len();
            let flags = u16::from(!last) | if write { 2 } else { 0 };
            let at = base + u64::from(i) * 16;
            self.mem.write_obj(addr, GuestAddress(at)).unwrap();
            self.mem.write_obj(len, GuestAddress(at + 8)).unwrap();
            self.mem.write_obj(flags, GuestAddress(at + 12)).unwrap();
            self.mem.write_obj(i + 1, GuestAddress(at + 14)).unwrap();
        }
        let slot = u64::from(idx % QSIZE);
        self.mem
            .write_obj(head, GuestAddress(avail + 4 + 2 * slot))
            .unwrap();
        self.mem
            .write_obj(idx, GuestAddress(avail + 4 + 2 * u64::from(QSIZE)))
            .unwrap();
        let next = idx.wrapping_add(1);
        self.mem.write_obj(next, GuestAddress(avail + 2)).unwrap();
        next
    }

    /// The used index of ring `index`.
    pub fn ring_used(&self, index: u16) -> u16 {
        self.mem
            .read_obj(GuestAddress(ring_base(index) + 0x2002))
            .unwrap()
    }

    /// The used length of the used-ring entry for available index `n` (1-based) of ring `index`.
    pub fn ring_used_len(&self, index: u16, n: u16) -> u32 {
        let slot = u64::from(n.wrapping_sub(1) % QSIZE);
        self.mem
            .read_obj(GuestAddress(ring_base(index) + 0x2004 + 8 * slot + 4))
            .unwrap()
    }

    /// Waits (interrupts, then the used index) until ring `index` has used `n` chains.
    pub fn wait_ring(&mut self, index: u16, n: u16) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while self.ring_used(index) != n {
            assert!(
                std::time::Instant::now() < deadline,
                "ring {index} never used chain {n}"
            );
            let _ = self.msi.recv_timeout(std::time::Duration::from_millis(100));
        }
    }
}

/// Where ring `index` of [`Driver::setup_ring`] lives: descriptors at the base, the
/// available ring 4 KiB above, the used ring 8 KiB above; 0x30_0000 and up stay free for
/// buffers.
pub fn ring_base(index: u16) -> u64 {
    0x20_0000 + u64::from(index) * 0x1_0000
}
