//! The transport driven the way Linux's virtio_pci driver drives it: capabilities found
//! in configuration space, features negotiated, a queue laid out in guest memory, a
//! request submitted through the doorbell, and its completion signalled by MSI-X.

use super::harness::*;
use super::*;
use crate::devices::virtio::blk::{Block, RawDisk};
use crate::devices::virtio::VIRTIO_RING_F_EVENT_IDX;
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
        .attach_shared_memory(0x2_0000_0000, slots.clone())
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
    drop(m);
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
            "remove 3 0x340000000"
        ]
    );
}
