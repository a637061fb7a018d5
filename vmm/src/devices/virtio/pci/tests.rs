//! The transport driven the way Linux's virtio_pci driver drives it: capabilities found
//! in configuration space, features negotiated, a queue laid out in guest memory, a
//! request submitted through the doorbell, and its completion signalled by MSI-X.

use super::harness::*;
use super::*;
use crate::devices::virtio::blk::{Block, RawDisk};
use crate::devices::virtio::VIRTIO_RING_F_EVENT_IDX;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;
use vm_memory::{Bytes, GuestAddress};

fn block_driver() -> (Driver, tempfile::NamedTempFile) {
    block_driver_polling(crate::devices::virtio::blk::DEFAULT_POLL_WINDOW)
}

fn block_driver_polling(window: Duration) -> (Driver, tempfile::NamedTempFile) {
    let mem = GuestMemory::from_ranges(&[(GuestAddress(0), 0x40_0000)]).unwrap();
    let image = tempfile::NamedTempFile::new().unwrap();
    image.as_file().set_len(1 << 20).unwrap();
    let core =
        Block::new(RawDisk::open(image.path(), false).unwrap(), "t", 1).with_poll_window(window);
    (
        Driver::with_engine(Box::new(LocalEngine::new(Box::new(core))), mem),
        image,
    )
}

#[test]
fn capabilities_describe_common_notify_isr_device_and_msix() {
    let (d, _image) = block_driver();
    let c = d.dev.config();
    assert_eq!(c.read_reg(0), 0x1042_1af4, "virtio-blk, modern ID");
    let mut types = Vec::new();
    let mut ptr = (c.read_reg(0x34) & 0xff) as usize;
    while ptr != 0 {
        let head = c.read_reg(ptr);
        match head & 0xff {
            0x09 => types.push((head >> 24) as u8),
            0x11 => types.push(0x11),
            other => panic!("unexpected capability {other:#x}"),
        }
        ptr = ((head >> 8) & 0xff) as usize;
    }
    assert_eq!(types, vec![1, 2, 3, 4, 0x11]);
}

#[test]
fn features_the_device_never_offered_are_refused() {
    let (mut d, _image) = block_driver();
    assert!(!d.negotiate(VIRTIO_F_VERSION_1 | (1 << 40)));
    assert!(!d.negotiate(0), "legacy drivers (no VERSION_1) are refused");
    assert!(d.negotiate(VIRTIO_F_VERSION_1));
}

#[test]
fn a_write_through_the_queue_lands_on_disk_and_raises_msix() {
    let (mut d, image) = block_driver();
    assert!(d.negotiate(VIRTIO_F_VERSION_1 | VIRTIO_RING_F_EVENT_IDX));
    d.enable_msix();
    d.setup_queue();
    d.w(0x14, 0xf, 1); // DRIVER_OK
    assert_eq!(d.status() & STATUS_FAILED, 0);
    d.submit_write(2, &[0xab; 512], 1);
    let msg = d
        .msi
        .recv_timeout(Duration::from_secs(5))
        .expect("an interrupt");
    assert_eq!(msg, (0xfee0_0000, 0x41));
    assert_eq!(d.used_idx(), 1);
    assert_eq!(d.mem.read_obj::<u8>(GuestAddress(STATUS_BYTE)).unwrap(), 0);
    d.submit_write(3, &[0xcd; 512], 2);
    let second = d
        .msi
        .recv_timeout(Duration::from_secs(5))
        .expect("a second interrupt");
    assert_eq!(second, (0xfee0_0000, 0x41));
    assert_eq!(d.used_idx(), 2);
    let image = std::fs::read(image.path()).unwrap();
    assert_eq!(&image[1024..1536], &[0xab; 512][..]);
    assert_eq!(&image[1536..2048], &[0xcd; 512][..]);
}

#[test]
fn a_polling_device_takes_back_to_back_requests_without_doorbells() {
    // Polling for longer than the driver takes to send the next request: one doorbell for
    // the first, none after (the device said so in avail_event). Without polling, each
    // request rings. Either way every write lands.
    for (window, most_kicks) in [(Duration::from_millis(300), 5), (Duration::ZERO, 20)] {
        let (mut d, image) = block_driver_polling(window);
        d.bring_up(VIRTIO_F_VERSION_1 | VIRTIO_RING_F_EVENT_IDX);
        for i in 0..20u8 {
            d.mem
                .write_slice(&[i + 1; 512], GuestAddress(DATA))
                .unwrap();
            assert_eq!(d.request(REQ_WRITE, u64::from(i), 512), 0);
        }
        assert!(
            d.kicks <= most_kicks,
            "{} doorbells for 20 requests with a {window:?} window",
            d.kicks
        );
        if window.is_zero() {
            assert_eq!(d.kicks, 20, "without polling every request rings");
        }
        let bytes = std::fs::read(image.path()).unwrap();
        for i in 0..20usize {
            assert!(bytes[i * 512..(i + 1) * 512]
                .iter()
                .all(|&b| b == i as u8 + 1));
        }
    }
}

#[test]
fn queue_outside_guest_memory_fails_the_device_not_the_vmm() {
    let (mut d, _image) = block_driver();
    assert!(d.negotiate(VIRTIO_F_VERSION_1));
    d.w(0x16, 0, 2);
    d.w(0x20, 0xffff_0000, 4);
    d.w(0x24, 0x10, 4);
    d.w(0x1c, 1, 2);
    d.w(0x14, 0xf, 1);
    assert_ne!(
        d.status() & STATUS_FAILED,
        0,
        "DEVICE_NEEDS_RESET/FAILED reported"
    );
    // A reset brings it back.
    assert!(d.negotiate(VIRTIO_F_VERSION_1));
}

#[test]
fn invalid_queue_sizes_are_ignored_and_reset_clears_state() {
    let (mut d, _image) = block_driver();
    d.w(0x16, 0, 2);
    d.w(0x18, 3, 2);
    assert_eq!(d.r(0x18, 2), 256, "not a power of two");
    d.w(0x18, 1024, 2);
    assert_eq!(d.r(0x18, 2), 256, "above the maximum");
    d.w(0x18, 64, 2);
    assert_eq!(d.r(0x18, 2), 64);
    d.w(0x14, 0, 1);
    assert_eq!(d.r(0x18, 2), 256);
    assert_eq!(d.r(0x12, 2), 1, "one queue");
    d.w(0x16, 5, 2);
    assert_eq!(d.r(0x18, 2), 0, "no such queue");
}

#[test]
fn config_space_is_the_device_config() {
    let (mut d, _image) = block_driver();
    assert_eq!(d.r(DEVICE, 8), 2048, "capacity in sectors of a 1 MiB image");
}

#[test]
fn in_process_console_serves_both_queues_and_waits_for_input() {
    use crate::devices::virtio::console::endpoint::{self, ConsoleEndpoint};
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("con.sock");
    let (console, threads) = endpoint::open(&ConsoleEndpoint::Socket(path.clone())).unwrap();
    let mut client = std::os::unix::net::UnixStream::connect(&path).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // Output goes only to an attached client: wait until the connection is accepted.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !threads.client_attached() {
        assert!(std::time::Instant::now() < deadline, "never attached");
        std::thread::sleep(Duration::from_millis(5));
    }
    let mem = GuestMemory::from_ranges(&[(GuestAddress(0), 0x40_0000)]).unwrap();
    let mut d = Driver::with_engine(Box::new(LocalEngine::new(Box::new(console))), mem);
    assert!(d.negotiate(VIRTIO_F_VERSION_1 | VIRTIO_RING_F_EVENT_IDX));
    d.enable_msix_vectors(2);
    d.setup_ring(0);
    d.setup_ring(1);
    d.w(0x14, 0xf, 1);
    assert_eq!(d.status() & STATUS_FAILED, 0);
    let rx = d.post(0, &[(0x31_0000, 64, true)]);
    d.mem.write_slice(b"$ ", GuestAddress(0x30_0000)).unwrap();
    let tx = d.post(1, &[(0x30_0000, 2, false)]);
    d.wait_ring(1, tx);
    let mut prompt = [0u8; 2];
    client.read_exact(&mut prompt).unwrap();
    assert_eq!(
        &prompt, b"$ ",
        "the guest's output reached the socket client"
    );
    assert_eq!(d.ring_used(0), 0, "no input yet");
    client.write_all(b"uname\n").unwrap();
    d.wait_ring(0, rx);
    assert_eq!(d.ring_used_len(0, rx), 6);
    let mut got = [0u8; 6];
    d.mem.read_slice(&mut got, GuestAddress(0x31_0000)).unwrap();
    assert_eq!(&got, b"uname\n");
}

#[test]
fn a_host_display_resize_raises_the_configuration_vector() {
    use crate::devices::virtio::gpu::display::NullSink;
    use crate::devices::virtio::gpu::{Gpu, SharedGpu};
    let mem = GuestMemory::from_ranges(&[(GuestAddress(0), 0x40_0000)]).unwrap();
    let gpu = Arc::new(Mutex::new(
        Gpu::new(&[(1024, 768)], Box::new(NullSink)).unwrap(),
    ));
    let core = SharedGpu::new(gpu.clone()).unwrap();
    let mut d = Driver::with_engine(Box::new(LocalEngine::new(Box::new(core))), mem);
    assert!(d.negotiate(VIRTIO_F_VERSION_1));
    d.enable_msix_vectors(2);
    // Vector 0 for configuration changes (the queues use 1 and 2), data 0x40.
    for (off, v, len) in [(0u64, 0xfee0_0000u64, 8), (8, 0x40, 4), (12, 0, 4)] {
        d.w(MSIX_TABLE + off, v, len);
    }
    d.setup_ring(0);
    d.setup_ring(1);
    d.w(0x10, 0, 2); // config_msix_vector
    d.w(0x14, 0xf, 1);
    assert_eq!(d.status() & STATUS_FAILED, 0);
    assert!(lock(&gpu).request_size(0, 1280, 800));
    let msg = d
        .msi
        .recv_timeout(Duration::from_secs(5))
        .expect("a configuration interrupt");
    assert_eq!(msg, (0xfee0_0000, 0x40));
    assert_eq!(d.r(0x2000, 4), 1, "events_read says the display changed");

    d.w(0x2004, 1, 4); // events_clear
    assert_eq!(d.r(0x2000, 4), 0);
    // The configuration generation counts device-side changes.
    let generation = d.r(0x15, 1);
    assert_eq!(d.r(0x15, 1), generation, "stable while nothing changes");
    assert!(lock(&gpu).request_size(0, 800, 600));
    let _ = d.msi.recv_timeout(Duration::from_secs(5));
    assert_ne!(d.r(0x15, 1), generation, "the generation counts the change");
}

/// A device with two shared memory regions that keeps the mapper it is given.
struct WithShm(Arc<Mutex<Option<Arc<dyn ShmMapper>>>>);

impl DeviceCore for WithShm {
    fn device_type(&self) -> u32 {
        16
    }
    fn num_queues(&self) -> usize {
        1
    }
    fn max_queue_size(&self) -> u16 {
        16
    }
    fn features(&self) -> u64 {
        0
    }
    fn config(&self) -> Vec<u8> {
        Vec::new()
    }
    fn process(&mut self, _: usize, _: &GuestMemory, _: crate::devices::virtio::Chain<'_>) -> u32 {
        0
    }
    fn shared_memory(&self) -> Vec<(u8, u64)> {
        vec![(1, 0x3000), (2, 0x1000)]
    }
    fn set_shared_memory(&mut self, mapper: Option<Arc<dyn ShmMapper>>) {
        *self.0.lock().unwrap() = mapper;
    }
}

#[test]
fn shared_memory_regions_sit_in_bar_2_with_a_capability_each_and_follow_its_moves() {
    use crate::devices::virtio::shm::tests::Slots;
    use std::os::fd::AsFd;
    let mem = GuestMemory::from_ranges(&[(GuestAddress(0), 0x40_0000)]).unwrap();
    let mapper = Arc::new(Mutex::new(None));
    let engine = LocalEngine::new(Box::new(WithShm(mapper.clone())));
    let mut d = Driver::with_engine(Box::new(engine), mem);
    assert_eq!(d.dev.shared_memory_size(), Some(0x4000));
    let slots = Arc::new(Slots::default());
    d.dev
        .attach_shared_memory(0x2_0000_0000, Arc::new(OverRam(slots.clone())))
        .unwrap();
    assert_eq!(d.dev.config().bar(SHM_BAR), Some((0x2_0000_0000, 0x4000)));

    // One virtio_pci_cap64 per region: type 8, BAR 2, its ID, offset and length.
    let c = d.dev.config();
    let mut shm = Vec::new();
    let mut ptr = (c.read_reg(0x34) & 0xff) as usize;
    while ptr != 0 {
        let head = c.read_reg(ptr);
        if head & 0xff == 0x09 && (head >> 24) == 8 {
            let bar_id = c.read_reg(ptr + 4);
            let (off, len) = (c.read_reg(ptr + 8), c.read_reg(ptr + 12));
            let (off_hi, len_hi) = (c.read_reg(ptr + 16), c.read_reg(ptr + 20));
            assert_eq!((head >> 16) & 0xff, 24, "cap_len of a virtio_pci_cap64");
            shm.push((
                bar_id & 0xff,
                (bar_id >> 8) & 0xff,
                off,
                len,
                off_hi,
                len_hi,
            ));
        }
        ptr = ((head >> 8) & 0xff) as usize;
    }
    assert_eq!(shm, [(2, 1, 0, 0x3000, 0, 0), (2, 2, 0x3000, 0x1000, 0, 0)]);

    // The device maps through the window it was given; a driver reset takes it out.
    let file = tempfile::tempfile().unwrap();
    file.set_len(0x1000).unwrap();
    let m = mapper
        .lock()
        .unwrap()
        .clone()
        .expect("the device got a mapper");
    m.map(2, 0, file.as_fd(), 0, 0x1000, true).unwrap();
    assert!(m.map(2, 0x1000, file.as_fd(), 0, 0x1000, true).is_err());
    d.w(0x14, 0, 1);
    assert!(m.unmap(2, 0, 0x1000).is_err(), "the reset unmapped it");

    // The guest moves BAR 2 (both halves): KVM's slot follows.
    for (reg, value) in [(0x18, 0x4000_0000u32), (0x1c, 3)] {
        // What the PCI bus does with a write that moves a BAR.
        let moved = d.dev.write_config(reg, &value.to_le_bytes()).unwrap();
        d.dev.bar_moved(moved);
    }
    assert_eq!(d.dev.config().bar(SHM_BAR), Some((0x3_4000_0000, 0x4000)));
    let window = d.dev.shm.clone().expect("a window");
    assert_eq!(window.placed_at(), Some(0x3_4000_0000));

    // Onto guest RAM, where KVM refuses a slot (EEXIST): the window is left unplaced (the
    // guest reads RAM there) and the device goes on: it maps, and serves its queue.
    for (reg, value) in [(0x18, 0x10_0000u32), (0x1c, 0)] {
        let moved = d.dev.write_config(reg, &value.to_le_bytes()).unwrap();
        d.dev.bar_moved(moved);
    }
    assert_eq!(d.dev.config().bar(SHM_BAR), Some((0x10_0000, 0x4000)));
    assert_eq!(window.placed_at(), None, "no slot over RAM");
    assert!(d.negotiate(VIRTIO_F_VERSION_1));
    d.enable_msix_vectors(1);
    d.setup_ring(0);
    d.w(0x14, 0xf, 1);
    assert_eq!(d.status() & STATUS_FAILED, 0);
    m.map(2, 0, file.as_fd(), 0, 0x1000, true).unwrap();
    let n = d.post(0, &[(0x30_0000, 16, true)]);
    d.wait_ring(0, n);

    // A later move to a free place shows the window, with its mapping, there.
    let moved = d.dev.write_config(0x18, &0x5000_0000u32.to_le_bytes());
    d.dev.bar_moved(moved.unwrap());
    assert_eq!(window.placed_at(), Some(0x5000_0000));
    assert_eq!(window.mappings(), 1);
    drop((m, window));
    drop(d);
    assert!(
        mapper.lock().unwrap().is_none(),
        "the device lost its mapper"
    );
    assert_eq!(
        *slots.log.lock().unwrap(),
        [
            "add 0x200000000+0x4000",
            "remove 1 0x200000000",
            "add 0x240000000+0x4000",
            "remove 2 0x240000000",
            "add 0x340000000+0x4000",
            "remove 3 0x340000000",
            "add 0x300100000+0x4000",
            "remove 4 0x300100000",
            "refused 0x100000+0x4000",
            "add 0x50000000+0x4000",
            "remove 5 0x50000000"
        ]
    );
}

/// KVM's memory slots as they meet guest RAM (the harness's first 4 MiB): a slot over it is
/// refused with EEXIST, as `KVM_SET_USER_MEMORY_REGION` refuses overlapping slots; others
/// go to the recording [`Slots`](crate::devices::virtio::shm::tests::Slots).
struct OverRam(Arc<crate::devices::virtio::shm::tests::Slots>);

impl MemorySlots for OverRam {
    fn add(&self, gpa: u64, len: u64, host: u64) -> std::io::Result<u32> {
        if gpa < 0x40_0000 {
            let mut log = self.0.log.lock().unwrap();
            log.push(format!("refused {gpa:#x}+{len:#x}"));
            return Err(std::io::Error::from_raw_os_error(libc::EEXIST));
        }
        self.0.add(gpa, len, host)
    }
    fn remove(&self, slot: u32, gpa: u64, len: u64, host: u64) {
        self.0.remove(slot, gpa, len, host);
    }
}

/// Doorbells as KVM keeps its ioeventfds: at most one EventFd per address (another is
/// refused with EEXIST), an unregister that matches no registration fails with ENOENT,
/// and every call is logged as (registering, address, EventFd, accepted).
#[derive(Default)]
struct Bells {
    live: Mutex<Vec<(u64, RawFd, EventFd)>>,
    log: Mutex<Vec<(bool, u64, RawFd, bool)>>,
}

impl Bells {
    /// What a guest write at `addr` does in the hypervisor: signals the EventFd registered
    /// there, if any (and says whether there was one).
    fn ring(&self, addr: u64) -> bool {
        let live = self.live.lock().unwrap();
        let Some((_, _, event)) = live.iter().find(|(a, _, _)| *a == addr) else {
            return false;
        };
        event.write(1).unwrap();
        true
    }

    /// (address, EventFd) of every registration, by address.
    fn live(&self) -> Vec<(u64, RawFd)> {
        let mut l: Vec<_> = self
            .live
            .lock()
            .unwrap()
            .iter()
            .map(|e| (e.0, e.1))
            .collect();
        l.sort_unstable();
        l
    }

    fn take_log(&self) -> Vec<(bool, u64, RawFd, bool)> {
        std::mem::take(&mut *self.log.lock().unwrap())
    }
}

impl Doorbells for Bells {
    fn register(&self, addr: u64, event: &EventFd) -> std::io::Result<()> {
        let fd = event.as_raw_fd();
        let mut live = self.live.lock().unwrap();
        let taken = live.iter().any(|(a, _, _)| *a == addr);
        self.log.lock().unwrap().push((true, addr, fd, !taken));
        if taken {
            return Err(std::io::Error::from_raw_os_error(libc::EEXIST));
        }
        live.push((addr, fd, event.try_clone()?));
        Ok(())
    }

    fn unregister(&self, addr: u64, event: &EventFd) -> std::io::Result<()> {
        let fd = event.as_raw_fd();
        let mut live = self.live.lock().unwrap();
        let at = live.iter().position(|e| (e.0, e.1) == (addr, fd));
        self.log
            .lock()
            .unwrap()
            .push((false, addr, fd, at.is_some()));
        match at {
            Some(i) => {
                live.remove(i);
                Ok(())
            }
            None => Err(std::io::Error::from_raw_os_error(libc::ENOENT)),
        }
    }
}

/// Drops every MSI-X message.
struct NoMsi;

impl MsiSink for NoMsi {
    fn deliver(&self, _: u64, _: u32) {}
}

/// A device with the given number of queues that uses every buffer as it comes, and one
/// shared memory region (so that it has a BAR 2 to move as well).
struct Queues(usize);

impl DeviceCore for Queues {
    fn device_type(&self) -> u32 {
        4
    }
    fn num_queues(&self) -> usize {
        self.0
    }
    fn max_queue_size(&self) -> u16 {
        QSIZE
    }
    fn features(&self) -> u64 {
        0
    }
    fn config(&self) -> Vec<u8> {
        Vec::new()
    }
    fn process(&mut self, _: usize, _: &GuestMemory, _: crate::devices::virtio::Chain<'_>) -> u32 {
        0
    }
    fn shared_memory(&self) -> Vec<(u8, u64)> {
        vec![(1, 0x1000)]
    }
}

/// The doorbell of queue `i` of a BAR 0 at `bar`.
fn bell(bar: u64, i: usize) -> u64 {
    bar + NOTIFY + i as u64 * u64::from(NOTIFY_MULTIPLIER)
}

/// Writes the configuration register at `reg` and follows a BAR move, as the PCI bus does.
fn write_reg(dev: &mut VirtioPci, reg: usize, value: u32) {
    if let Some(moved) = dev.write_config(reg, &value.to_le_bytes()) {
        dev.bar_moved(moved);
    }
}

/// Moves 64-bit BAR `index` to `addr` the way firmware does: low half, then high half.
fn move_bar64(dev: &mut VirtioPci, index: usize, addr: u64) {
    write_reg(dev, 0x10 + 4 * index, addr as u32);
    write_reg(dev, 0x14 + 4 * index, (addr >> 32) as u32);
}

/// A driver for a [`Queues`] device whose doorbells go to `bells`, brought up with its
/// `n` rings, and the device's doorbell EventFds.
fn ringing_driver(n: usize, bells: Arc<Bells>) -> (Driver, Vec<RawFd>) {
    use crate::devices::virtio::shm::tests::Slots;
    let mem = GuestMemory::from_ranges(&[(GuestAddress(0), 0x40_0000)]).unwrap();
    let engine = LocalEngine::new(Box::new(Queues(n)));
    let mut d = Driver::with_doorbells(Box::new(engine), mem, bells);
    d.dev
        .attach_shared_memory(0x1_0000_0000, Arc::new(Slots::default()))
        .unwrap();
    assert!(d.negotiate(VIRTIO_F_VERSION_1));
    d.enable_msix_vectors(n as u16);
    for q in 0..n as u16 {
        d.setup_ring(q);
    }
    d.w(0x14, 0xf, 1);
    assert_eq!(d.status() & STATUS_FAILED, 0);
    let fds = d.dev.kicks.iter().map(AsRawFd::as_raw_fd).collect();
    (d, fds)
}

/// Offers a buffer on every ring, rings each at `old` (if given: nothing may serve it) and
/// then at `new` through the hypervisor's doorbells, and waits for each to be used.
fn serve_every_ring(d: &mut Driver, bells: &Bells, old: Option<u64>, new: u64) {
    for q in 0..d.dev.queues.len() {
        let n = d.offer(q as u16, &[(0x30_0000 + q as u64 * 0x1000, 16, true)]);
        if let Some(old) = old {
            assert!(
                !bells.ring(bell(old, q)),
                "queue {q} still rings at {old:#x}"
            );
        }
        assert_eq!(d.ring_used(q as u16), n - 1);
        assert!(
            bells.ring(bell(new, q)),
            "queue {q} does not ring at {new:#x}"
        );
        d.wait_ring(q as u16, n);
    }
}

/// UEFI firmware reassigns every BAR: when BAR 0 moves, each queue's doorbell (a KVM
/// ioeventfd) leaves the old address and is registered at the new one, the driver's
/// doorbell there serves the queue and the old address serves nothing; moving it back and
/// forth (and sizing it, as firmware does) leaves exactly one registration per queue; a
/// move of BAR 2 or other configuration writes leave the doorbells alone; the device's end
/// takes them all out.
#[test]
fn bar_0_moves_take_each_queues_doorbell_along_and_other_writes_leave_them() {
    const NEW: u64 = 0xd000_0000;
    let bells = Arc::new(Bells::default());
    let (mut d, fds) = ringing_driver(3, bells.clone());
    let at = |bar: u64| -> Vec<_> { (0..3).map(|i| (bell(bar, i), fds[i])).collect() };
    assert_eq!(bells.live(), at(BAR), "registered where BAR 0 starts");
    serve_every_ring(&mut d, &bells, None, BAR);
    bells.take_log();

    // One register write moves it (the upper half stays 0): each doorbell goes over.
    write_reg(&mut d.dev, 0x10, NEW as u32);
    assert_eq!(d.dev.config().bar(0), Some((NEW, BAR_SIZE)));
    let expected: Vec<_> = (0..3)
        .flat_map(|i| {
            [
                (false, bell(BAR, i), fds[i], true),
                (true, bell(NEW, i), fds[i], true),
            ]
        })
        .collect();
    assert_eq!(bells.take_log(), expected);
    assert_eq!(bells.live(), at(NEW));
    serve_every_ring(&mut d, &bells, Some(BAR), NEW);

    // Above 4 GiB and back, twice (through an intermediate place at each half's write),
    // then sized as firmware sizes a 64-bit BAR (all ones in both halves) and restored.
    for _ in 0..2 {
        move_bar64(&mut d.dev, 0, 0x8_0000_0000);
        assert_eq!(bells.live(), at(0x8_0000_0000));
        serve_every_ring(&mut d, &bells, Some(NEW), 0x8_0000_0000);
        move_bar64(&mut d.dev, 0, NEW);
        assert_eq!(bells.live(), at(NEW));
    }
    write_reg(&mut d.dev, 0x10, 0xffff_ffff);
    write_reg(&mut d.dev, 0x14, 0xffff_ffff);
    assert_eq!(d.dev.config().read_reg(0x10), 0xffff_000c, "the size mask");
    move_bar64(&mut d.dev, 0, NEW);
    assert_eq!(bells.live(), at(NEW), "exactly one doorbell per queue");
    let log = bells.take_log();
    assert!(
        log.iter().all(|&(_, _, _, accepted)| accepted),
        "every unregister found its doorbell, every register a free place: {log:x?}"
    );
    for fd in &fds {
        let net: i32 = log
            .iter()
            .filter(|e| e.2 == *fd)
            .map(|e| if e.0 { 1 } else { -1 })
            .sum();
        assert_eq!(net, 0, "as many registrations as unregistrations");
    }
    serve_every_ring(&mut d, &bells, Some(0x8_0000_0000), NEW);

    // BAR 2 moves (both halves), memory decoding, MSI-X: the doorbells stay.
    move_bar64(&mut d.dev, SHM_BAR, 0x2_0000_0000);
    assert_eq!(d.dev.config().bar(SHM_BAR), Some((0x2_0000_0000, 0x1000)));
    write_reg(&mut d.dev, 0x04, 0x0006);
    let msix = d.dev.msix_cap;
    let control = d.dev.config().read_reg(msix);
    write_reg(&mut d.dev, msix, 0x8000_0000 | control);
    write_reg(&mut d.dev, 0x20, 0xffff_ffff); // BAR 4: none
    assert_eq!(bells.take_log(), [], "no doorbell touched");
    assert_eq!(bells.live(), at(NEW));
    serve_every_ring(&mut d, &bells, None, NEW);

    drop(d);
    assert_eq!(bells.live(), [], "the device took its doorbells along");
}

/// A guest that moves one device's BAR 0 onto another's: the hypervisor refuses the
/// doorbells there (KVM answers EEXIST for an address it has), the other device keeps its
/// own and the moved one still works through MMIO exits; moved apart again, it gets its
/// doorbells back and both ring.
#[test]
fn a_bar_moved_onto_another_devices_bar_leaves_its_doorbells_and_gets_its_own_back_apart() {
    const OTHER: u64 = BAR + BAR_SIZE;
    const APART: u64 = BAR + 2 * BAR_SIZE;
    let bells = Arc::new(Bells::default());
    let (mut d, fds) = ringing_driver(1, bells.clone());
    let other = VirtioPci::new(
        Box::new(LocalEngine::new(Box::new(Queues(1)))),
        d.mem.clone(),
        OTHER,
        Arc::new(NoMsi),
        bells.clone(),
    )
    .unwrap();
    let other_fd = other.kicks[0].as_raw_fd();
    bells.take_log();

    write_reg(&mut d.dev, 0x10, OTHER as u32);
    assert_eq!(
        bells.take_log(),
        [
            (false, bell(BAR, 0), fds[0], true),
            (true, bell(OTHER, 0), fds[0], false)
        ],
        "refused where the other device's doorbell is"
    );
    assert_eq!(bells.live(), [(bell(OTHER, 0), other_fd)]);
    // The driver's doorbell write reaches the device the slow way (an MMIO exit).
    let n = d.post(0, &[(0x30_0000, 16, true)]);
    d.wait_ring(0, n);
    assert_eq!(d.r(0x14, 1), 0xf, "still DRIVER_OK");

    write_reg(&mut d.dev, 0x10, APART as u32);
    assert_eq!(
        bells.take_log(),
        [
            (false, bell(OTHER, 0), fds[0], false),
            (true, bell(APART, 0), fds[0], true)
        ],
        "the other device's doorbell is not taken away"
    );
    assert_eq!(
        bells.live(),
        [(bell(OTHER, 0), other_fd), (bell(APART, 0), fds[0])]
    );
    serve_every_ring(&mut d, &bells, None, APART);
    drop(other);
    drop(d);
    assert_eq!(bells.live(), []);
}
