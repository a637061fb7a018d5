//! virtio-blk over virtio-queue's mock queues: good requests and every malformed kind.

use super::*;
use virtio_queue::desc::{split::Descriptor as SplitDescriptor, RawDescriptor};
use virtio_queue::mock::MockSplitQueue;
use virtio_queue::{Queue, QueueOwnedT, QueueT};
use vm_memory::Address;
use vm_memory::{Bytes, GuestAddress};

const NEXT: u16 = 1;
const WRITE: u16 = 2;
const HDR: u64 = 0x1_0000;
const DATA: u64 = 0x2_0000;
const STATUS: u64 = 0x3_0000;

struct Rig {
    mem: GuestMemory,
    image: tempfile::NamedTempFile,
    dev: Block,
}

fn rig(readonly: bool) -> Rig {
    let mem = GuestMemory::from_ranges(&[(GuestAddress(0), 0x10_0000)]).unwrap();
    let image = tempfile::NamedTempFile::new().unwrap();
    image.as_file().set_len(64 * 512).unwrap();
    let dev = Block::new(
        RawDisk::open(image.path(), readonly).unwrap(),
        "phyllome-disk-0",
        1,
    );
    Rig { mem, image, dev }
}

impl Rig {
    /// Submits a chain of (address, length, flags) after writing `header` at HDR.
    fn submit(&mut self, header: Option<(u32, u64)>, descs: &[Desc]) -> u32 {
        if let Some((kind, sector)) = header {
            let h = RequestHeader {
                kind,
                ioprio: 0,
                sector,
            };
            self.mem.write_obj(h, GuestAddress(HDR)).unwrap();
        }
        self.mem.write_obj(0xffu8, GuestAddress(STATUS)).unwrap();
        let vq = MockSplitQueue::new(&self.mem, 16);
        let raw: Vec<RawDescriptor> = descs
            .iter()
            .enumerate()
            .map(|(i, &(addr, len, flags))| {
                let next = if i + 1 < descs.len() {
                    flags | NEXT
                } else {
                    flags
                };
                RawDescriptor::from(SplitDescriptor::new(
                    addr,
                    len,
                    next,
                    u16::try_from(i + 1).unwrap(),
                ))
            })
            .collect();
        vq.build_desc_chain(&raw).unwrap();
        let mut q: Queue = vq.create_queue().unwrap();
        let chain = q.iter(&self.mem).unwrap().next().unwrap();
        self.dev.process(0, &self.mem, chain)
    }

    fn status(&self) -> u8 {
        self.mem.read_obj(GuestAddress(STATUS)).unwrap()
    }

    fn image_bytes(&self, offset: usize, len: usize) -> Vec<u8> {
        std::fs::read(self.image.path()).unwrap()[offset..offset + len].to_vec()
    }
}

/// (address, length, flags) of one descriptor.
type Desc = (u64, u32, u16);

fn rw(kind: u32, sector: u64, len: u32) -> (Option<(u32, u64)>, Vec<Desc>) {
    let data_flags = if kind == VIRTIO_BLK_T_IN { WRITE } else { 0 };
    (
        Some((kind, sector)),
        vec![(HDR, 16, 0), (DATA, len, data_flags), (STATUS, 1, WRITE)],
    )
}

#[test]
fn write_then_read_round_trips_through_the_image() {
    let mut r = rig(false);
    r.mem
        .write_slice(&[0x5a; 1024], GuestAddress(DATA))
        .unwrap();
    let (h, d) = rw(VIRTIO_BLK_T_OUT, 3, 1024);
    assert_eq!(r.submit(h, &d), 1);
    assert_eq!(r.status(), VIRTIO_BLK_S_OK);
    assert_eq!(r.image_bytes(3 * 512, 1024), vec![0x5a; 1024]);

    r.mem.write_slice(&[0u8; 1024], GuestAddress(DATA)).unwrap();
    let (h, d) = rw(VIRTIO_BLK_T_IN, 3, 1024);
    assert_eq!(r.submit(h, &d), 1025);
    assert_eq!(r.status(), VIRTIO_BLK_S_OK);
    let mut back = [0u8; 1024];
    r.mem.read_slice(&mut back, GuestAddress(DATA)).unwrap();
    assert_eq!(back, [0x5a; 1024]);
}

#[test]
fn sectors_past_the_end_fail_with_ioerr_and_leave_the_image_alone() {
    let mut r = rig(false);
    let (h, d) = rw(VIRTIO_BLK_T_OUT, 63, 1024);
    r.submit(h, &d);
    assert_eq!(r.status(), VIRTIO_BLK_S_IOERR);
    assert_eq!(r.image_bytes(63 * 512, 512), vec![0; 512]);
    let (h, d) = rw(VIRTIO_BLK_T_IN, u64::MAX / 256, 512);
    assert_eq!(r.submit(h, &d), 1);
    assert_eq!(r.status(), VIRTIO_BLK_S_IOERR);
}

#[test]
fn partial_sector_transfers_are_refused() {
    let mut r = rig(false);
    let (h, d) = rw(VIRTIO_BLK_T_OUT, 0, 100);
    r.submit(h, &d);
    assert_eq!(r.status(), VIRTIO_BLK_S_IOERR);
}

#[test]
fn writes_to_a_read_only_disk_fail_and_reads_work() {
    let mut r = rig(true);
    assert_ne!(r.dev.features() & VIRTIO_BLK_F_RO, 0);
    let (h, d) = rw(VIRTIO_BLK_T_OUT, 0, 512);
    r.submit(h, &d);
    assert_eq!(r.status(), VIRTIO_BLK_S_IOERR);
    let (h, d) = rw(VIRTIO_BLK_T_IN, 0, 512);
    r.submit(h, &d);
    assert_eq!(r.status(), VIRTIO_BLK_S_OK);
}

#[test]
fn unknown_request_type_is_unsupported() {
    let mut r = rig(false);
    let (_, d) = rw(VIRTIO_BLK_T_OUT, 0, 512);
    r.submit(Some((77, 0)), &d);
    assert_eq!(r.status(), VIRTIO_BLK_S_UNSUPP);
}

#[test]
fn short_header_is_an_ioerr() {
    let mut r = rig(false);
    r.submit(
        Some((VIRTIO_BLK_T_IN, 0)),
        &[(HDR, 8, 0), (STATUS, 1, WRITE)],
    );
    assert_eq!(r.status(), VIRTIO_BLK_S_IOERR);
}

#[test]
fn chain_without_a_writable_byte_gets_no_answer() {
    let mut r = rig(false);
    assert_eq!(r.submit(Some((VIRTIO_BLK_T_FLUSH, 0)), &[(HDR, 16, 0)]), 0);
    assert_eq!(r.status(), 0xff);
}

#[test]
fn descriptor_outside_guest_memory_fails_the_request_only() {
    let mut r = rig(false);
    r.submit(
        Some((VIRTIO_BLK_T_OUT, 0)),
        &[(HDR, 16, 0), (0xfff_0000, 512, 0), (STATUS, 1, WRITE)],
    );
    // The chain is unusable as a whole: no status can be trusted to land, nothing is written.
    assert_eq!(r.image_bytes(0, 512), vec![0; 512]);
    // The device still serves the next request.
    r.submit(
        Some((VIRTIO_BLK_T_FLUSH, 0)),
        &[(HDR, 16, 0), (STATUS, 1, WRITE)],
    );
    assert_eq!(r.status(), VIRTIO_BLK_S_OK);
}

#[test]
fn flush_and_get_id_succeed() {
    let mut r = rig(false);
    assert_eq!(
        r.submit(
            Some((VIRTIO_BLK_T_FLUSH, 0)),
            &[(HDR, 16, 0), (STATUS, 1, WRITE)]
        ),
        1
    );
    assert_eq!(r.status(), VIRTIO_BLK_S_OK);
    let used = r.submit(
        Some((VIRTIO_BLK_T_GET_ID, 0)),
        &[(HDR, 16, 0), (DATA, 20, WRITE), (STATUS, 1, WRITE)],
    );
    assert_eq!(used, 21);
    let mut id = [0u8; 20];
    r.mem.read_slice(&mut id, GuestAddress(DATA)).unwrap();
    assert_eq!(&id[..15], b"phyllome-disk-0");
}

#[test]
fn discard_and_write_zeroes_clear_sectors() {
    let mut r = rig(false);
    r.mem
        .write_slice(&[0x77; 2048], GuestAddress(DATA))
        .unwrap();
    let (h, d) = rw(VIRTIO_BLK_T_OUT, 8, 2048);
    r.submit(h, &d);
    for kind in [VIRTIO_BLK_T_DISCARD, VIRTIO_BLK_T_WRITE_ZEROES] {
        let sector = if kind == VIRTIO_BLK_T_DISCARD { 8 } else { 10 };
        let seg = DiscardSegment {
            sector,
            num_sectors: 2,
            flags: 0,
        };
        r.mem.write_obj(seg, GuestAddress(DATA + 0x8000)).unwrap();
        r.submit(
            Some((kind, 0)),
            &[(HDR, 16, 0), (DATA + 0x8000, 16, 0), (STATUS, 1, WRITE)],
        );
        assert_eq!(r.status(), VIRTIO_BLK_S_OK, "kind {kind}");
    }
    assert_eq!(r.image_bytes(8 * 512, 2048), vec![0; 2048]);
    // Unmap on a discard is not a thing; segments past the end are errors.
    let bad = DiscardSegment {
        sector: 60,
        num_sectors: 8,
        flags: 0,
    };
    r.mem.write_obj(bad, GuestAddress(DATA + 0x8000)).unwrap();
    r.submit(
        Some((VIRTIO_BLK_T_DISCARD, 0)),
        &[(HDR, 16, 0), (DATA + 0x8000, 16, 0), (STATUS, 1, WRITE)],
    );
    assert_eq!(r.status(), VIRTIO_BLK_S_IOERR);
}

#[test]
fn config_space_reports_capacity_and_limits() {
    let r = rig(false);
    let c = r.dev.config();
    assert_eq!(u64::from_le_bytes(c[0..8].try_into().unwrap()), 64);
    assert_eq!(u32::from_le_bytes(c[20..24].try_into().unwrap()), 512);
    assert_eq!(u16::from_le_bytes([c[34], c[35]]), 1);
    assert_eq!(
        r.dev.features() & (VIRTIO_BLK_F_RO | VIRTIO_BLK_F_DISCARD),
        VIRTIO_BLK_F_DISCARD
    );
}

#[test]
fn any_layout_header_with_data_and_data_split_across_descriptors() {
    let mut r = rig(false);
    // Write: header and the first 512 bytes in one descriptor, 512 more in a second.
    r.mem
        .write_slice(&[0x11; 512], GuestAddress(HDR + 16))
        .unwrap();
    r.mem.write_slice(&[0x22; 512], GuestAddress(DATA)).unwrap();
    r.submit(
        Some((VIRTIO_BLK_T_OUT, 5)),
        &[(HDR, 16 + 512, 0), (DATA, 512, 0), (STATUS, 1, WRITE)],
    );
    assert_eq!(r.status(), VIRTIO_BLK_S_OK);
    assert_eq!(r.image_bytes(5 * 512, 512), vec![0x11; 512]);
    assert_eq!(r.image_bytes(6 * 512, 512), vec![0x22; 512]);
    // Read back into two buffers, the second also holding the status byte.
    let used = r.submit(
        Some((VIRTIO_BLK_T_IN, 5)),
        &[
            (HDR, 16, 0),
            (DATA + 0x1000, 512, WRITE),
            (DATA + 0x2000, 513, WRITE),
        ],
    );
    assert_eq!(used, 1025);
    let mut a = [0u8; 512];
    let mut b = [0u8; 513];
    r.mem
        .read_slice(&mut a, GuestAddress(DATA + 0x1000))
        .unwrap();
    r.mem
        .read_slice(&mut b, GuestAddress(DATA + 0x2000))
        .unwrap();
    assert_eq!(a, [0x11; 512]);
    assert_eq!(&b[..512], &[0x22; 512][..]);
    assert_eq!(b[512], VIRTIO_BLK_S_OK);
}

#[test]
fn a_batch_runs_large_transfers_together_and_keeps_flushes_and_small_requests_in_order() {
    batch_in_order(CacheMode::Writeback);
}

#[test]
fn around_the_page_cache_a_batch_runs_small_transfers_together_too_in_order() {
    batch_in_order(CacheMode::None);
}

/// A batch of large and small reads, a write, a flush and a failing read: each answered
/// right, the flush after the write, the read after the flush seeing the write.
fn batch_in_order(cache: CacheMode) {
    let mem = GuestMemory::from_ranges(&[(GuestAddress(0), 0x100_0000)]).unwrap();
    let image = tempfile::NamedTempFile::new_in("/var/tmp").unwrap();
    let fill: Vec<u8> = (0..8usize << 20)
        .map(|i| u8::try_from(i * 7 % 253).unwrap())
        .collect();
    std::fs::write(image.path(), &fill).unwrap();
    let disk = Disk::open_cached(image.path(), false, Some(ImageFormat::Raw), cache).unwrap();
    let core = std::sync::Mutex::new(Block::new(disk, "b", 1));
    let big: u32 = 256 << 10;
    mem.write_slice(&vec![0xc3; big as usize], GuestAddress(0x40_0000))
        .unwrap();
    let end_sector = (8u64 << 20) / 512;
    // (type, sector, data address, data length) in the order the driver queued them.
    let requests = [
        (VIRTIO_BLK_T_IN, 0, 0x10_0000, big),
        (VIRTIO_BLK_T_IN, 4096, 0x14_0000, big),
        (VIRTIO_BLK_T_OUT, 8192, 0x40_0000, big),
        (VIRTIO_BLK_T_FLUSH, 0, 0, 0),
        // After the flush: sees the write before it.
        (VIRTIO_BLK_T_IN, 8192, 0x18_0000, 4096),
        // Past the end of the disk: fails alone.
        (VIRTIO_BLK_T_IN, end_sector - 8, 0x1c_0000, big),
        (VIRTIO_BLK_T_IN, 8, 0x20_0000, big),
    ];
    let mut descs = Vec::new();
    for (i, &(kind, sector, data, len)) in requests.iter().enumerate() {
        let hdr = 0x8000 + 0x100 * i as u64;
        let status = 0x9000 + i as u64;
        let h = RequestHeader {
            kind,
            ioprio: 0,
            sector,
        };
        mem.write_obj(h, GuestAddress(hdr)).unwrap();
        mem.write_obj(0xffu8, GuestAddress(status)).unwrap();
        let mut chain = vec![(hdr, 16, 0)];
        if len > 0 {
            let flags = if kind == VIRTIO_BLK_T_IN { WRITE } else { 0 };
            chain.push((data, len, flags));
        }
        chain.push((status, 1, WRITE));
        let last = chain.len() - 1;
        for (j, (addr, len, flags)) in chain.into_iter().enumerate() {
            let next = u16::try_from(descs.len() + 1).unwrap();
            let flags = if j < last { flags | NEXT } else { flags };
            descs.push(RawDescriptor::from(SplitDescriptor::new(
                addr, len, flags, next,
            )));
        }
    }
    let vq = MockSplitQueue::new(&mem, 64);
    vq.add_desc_chains(&descs, 0).unwrap();
    let mut q: Queue = vq.create_queue().unwrap();
    assert!(crate::devices::virtio::serve_queue(&mut q, 0, &mem, &core).unwrap());
    assert_eq!(
        q.next_used(),
        u16::try_from(requests.len()).unwrap(),
        "every request answered"
    );

    let used = |i: u64| -> u32 {
        mem.read_obj(vq.used_addr().unchecked_add(4 + 8 * i + 4))
            .unwrap()
    };
    let status = |i: u64| -> u8 { mem.read_obj(GuestAddress(0x9000 + i)).unwrap() };
    let read = |addr: u64, len: usize| {
        let mut b = vec![0u8; len];
        mem.read_slice(&mut b, GuestAddress(addr)).unwrap();
        b
    };
    let big = big as usize;
    let expect = [
        (VIRTIO_BLK_S_OK, big + 1),
        (VIRTIO_BLK_S_OK, big + 1),
        (VIRTIO_BLK_S_OK, 1),
        (VIRTIO_BLK_S_OK, 1),
        (VIRTIO_BLK_S_OK, 4097),
        (VIRTIO_BLK_S_IOERR, 1),
        (VIRTIO_BLK_S_OK, big + 1),
    ];
    for (i, &(s, len)) in expect.iter().enumerate() {
        assert_eq!(
            (status(i as u64), used(i as u64) as usize),
            (s, len),
            "request {i}"
        );
    }
    assert_eq!(read(0x10_0000, big), fill[..big]);
    assert_eq!(read(0x14_0000, big), fill[2 << 20..(2 << 20) + big]);
    assert_eq!(read(0x18_0000, 4096), vec![0xc3; 4096]);
    assert_eq!(read(0x20_0000, big), fill[4096..4096 + big]);
    let on_disk = std::fs::read(image.path()).unwrap();
    assert_eq!(on_disk[4 << 20..(4 << 20) + big], vec![0xc3; big][..]);
    assert_eq!(
        on_disk[(4 << 20) + big..],
        fill[(4 << 20) + big..],
        "nothing else written"
    );
}

#[test]
fn a_disk_around_the_page_cache_reads_and_writes_aligned_and_misaligned_buffers() {
    let mem = GuestMemory::from_ranges(&[(GuestAddress(0), 0x10_0000)]).unwrap();
    let image = tempfile::NamedTempFile::new_in("/var/tmp").unwrap();
    image.as_file().set_len(64 * 512).unwrap();
    let disk =
        Disk::open_cached(image.path(), false, Some(ImageFormat::Raw), CacheMode::None).unwrap();
    let mut r = Rig {
        mem,
        image,
        dev: Block::new(disk, "direct", 1),
    };
    // A page-aligned guest buffer, and one a byte off, which direct I/O may refuse (then
    // the request goes through the cache): both must land.
    for (sector, addr, fill) in [(8u64, DATA, 0x11u8), (16, DATA + 0x1000 + 1, 0x22)] {
        r.mem
            .write_slice(&[fill; 4096], GuestAddress(addr))
            .unwrap();
        let descs = vec![(HDR, 16, 0), (addr, 4096, 0), (STATUS, 1, WRITE)];
        assert_eq!(r.submit(Some((VIRTIO_BLK_T_OUT, sector)), &descs), 1);
        assert_eq!(r.status(), VIRTIO_BLK_S_OK);
        assert_eq!(
            r.image_bytes(usize::try_from(sector).unwrap() * 512, 4096),
            vec![fill; 4096]
        );
        r.mem.write_slice(&[0u8; 4096], GuestAddress(addr)).unwrap();
        let descs = vec![(HDR, 16, 0), (addr, 4096, WRITE), (STATUS, 1, WRITE)];
        assert_eq!(r.submit(Some((VIRTIO_BLK_T_IN, sector)), &descs), 4097);
        assert_eq!(r.status(), VIRTIO_BLK_S_OK);
        let mut back = vec![0u8; 4096];
        r.mem.read_slice(&mut back, GuestAddress(addr)).unwrap();
        assert_eq!(back, vec![fill; 4096]);
    }
    let (h, d) = rw(VIRTIO_BLK_T_FLUSH, 0, 0);
    r.submit(
        h,
        &d[..1].iter().chain(&d[2..]).copied().collect::<Vec<_>>(),
    );
    assert_eq!(r.status(), VIRTIO_BLK_S_OK, "flush");
}
