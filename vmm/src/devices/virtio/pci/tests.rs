//! The transport driven the way Linux's virtio_pci driver drives it: capabilities found
//! in configuration space, features negotiated, a queue laid out in guest memory, a
//! request submitted through the doorbell, and its completion signalled by MSI-X.

use super::*;
use crate::devices::virtio::blk::{Block, RawDisk};
use crate::devices::virtio::VIRTIO_RING_F_EVENT_IDX;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::time::Duration;
use vm_memory::{Bytes, GuestAddress};

const BAR: u64 = 0xc000_0000;
const DESC: u64 = 0x1_0000;
const AVAIL: u64 = 0x2_0000;
const USED: u64 = 0x3_0000;
const HDR: u64 = 0x4_0000;
const DATA: u64 = 0x5_0000;
const STATUS_BYTE: u64 = 0x6_0000;
const QSIZE: u16 = 16;

struct Msi(Mutex<Sender<(u64, u32)>>);
impl MsiSink for Msi {
    fn deliver(&self, address: u64, data: u32) {
        let _ = lock(&self.0).send((address, data));
    }
}

struct NoDoorbells;
impl Doorbells for NoDoorbells {
    fn register(&self, _: u64, _: &EventFd) -> std::io::Result<()> {
        Ok(())
    }
    fn unregister(&self, _: u64, _: &EventFd) -> std::io::Result<()> {
        Ok(())
    }
}

struct Driver {
    dev: VirtioPci,
    mem: GuestMemory,
    msi: Receiver<(u64, u32)>,
    image: tempfile::NamedTempFile,
}

impl Driver {
    fn new() -> Self {
        let mem = GuestMemory::from_ranges(&[(GuestAddress(0), 0x10_0000)]).unwrap();
        let image = tempfile::NamedTempFile::new().unwrap();
        image.as_file().set_len(1 << 20).unwrap();
        let core = Block::new(RawDisk::open(image.path(), false).unwrap(), "t", 1);
        let (tx, rx) = channel();
        let dev = VirtioPci::new(
            Box::new(LocalEngine::new(Box::new(core))),
            mem.clone(),
            BAR,
            Arc::new(Msi(Mutex::new(tx))),
            Arc::new(NoDoorbells),
        )
        .unwrap();
        Self {
            dev,
            mem,
            msi: rx,
            image,
        }
    }

    fn w(&mut self, off: u64, v: u64, len: usize) {
        self.dev.bar_write(0, off, &v.to_le_bytes()[..len]);
    }

    fn r(&mut self, off: u64, len: usize) -> u64 {
        let mut b = [0u8; 8];
        self.dev.bar_read(0, off, &mut b[..len]);
        u64::from_le_bytes(b)
    }

    fn status(&mut self) -> u8 {
        self.r(0x14, 1) as u8
    }

    /// Linux's probe sequence up to FEATURES_OK; returns whether the device accepted.
    fn negotiate(&mut self, features: u64) -> bool {
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

    fn enable_msix(&mut self) {
        self.dev.write_config(4, &[0x06, 0]);
        let cap = self.dev.msix_cap;
        self.dev.write_config(cap + 3, &[0x80]);
        // Vector 1: the queue's interrupt.
        for (off, v) in [(0u64, 0xfee0_0000u64), (8, 0x41), (12, 0)] {
            let len = if off == 0 { 8 } else { 4 };
            self.w(MSIX_TABLE + 16 + off, v, len);
        }
    }

    fn setup_queue(&mut self) {
        self.w(0x16, 0, 2);
        self.w(0x18, u64::from(QSIZE), 2);
        self.w(0x1a, 1, 2);
        for (off, addr) in [(0x20, DESC), (0x28, AVAIL), (0x30, USED)] {
            self.w(off, addr & 0xffff_ffff, 4);
            self.w(off + 4, addr >> 32, 4);
        }
        self.w(0x1c, 1, 2);
    }

    fn desc(&self, i: u16, addr: u64, len: u32, flags: u16, next: u16) {
        let at = DESC + u64::from(i) * 16;
        self.mem.write_obj(addr, GuestAddress(at)).unwrap();
        self.mem.write_obj(len, GuestAddress(at + 8)).unwrap();
        self.mem.write_obj(flags, GuestAddress(at + 12)).unwrap();
        self.mem.write_obj(next, GuestAddress(at + 14)).unwrap();
    }

    /// Submits a write of `data` at `sector` as descriptors 0..3 and rings the doorbell.
    fn submit_write(&mut self, sector: u64, data: &[u8], avail_idx: u16) {
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
        self.mem
            .write_obj(avail_idx, GuestAddress(AVAIL + 2))
            .unwrap();
        self.w(NOTIFY, 0, 2);
    }

    fn used_idx(&self) -> u16 {
        self.mem.read_obj(GuestAddress(USED + 2)).unwrap()
    }
}

#[test]
fn capabilities_describe_common_notify_isr_device_and_msix() {
    let d = Driver::new();
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
    let mut d = Driver::new();
    assert!(!d.negotiate(VIRTIO_F_VERSION_1 | (1 << 40)));
    assert!(!d.negotiate(0), "legacy drivers (no VERSION_1) are refused");
    assert!(d.negotiate(VIRTIO_F_VERSION_1));
}

#[test]
fn a_write_through_the_queue_lands_on_disk_and_raises_msix() {
    let mut d = Driver::new();
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
    let image = std::fs::read(d.image.path()).unwrap();
    assert_eq!(&image[1024..1536], &[0xab; 512][..]);
}

#[test]
fn queue_outside_guest_memory_fails_the_device_not_the_vmm() {
    let mut d = Driver::new();
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
    let mut d = Driver::new();
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
    let mut d = Driver::new();
    assert_eq!(d.r(DEVICE, 8), 2048, "capacity in sectors of a 1 MiB image");
}
