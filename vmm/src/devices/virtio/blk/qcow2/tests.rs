//! qcow2 through the block device, checked against QEMU's own tools: images we write must
//! pass `qemu-img check` and convert to the bytes the guest wrote; images `qemu-img` and
//! `qemu-io` made must read back what they wrote. Bad images fail at open with a clear error.

use super::super::{Block, Disk, DiskError, ImageFormat, VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_OK};
use super::*;
use crate::devices::virtio::DeviceCore;
use crate::memory::GuestMemory;
use std::process::Command;
use virtio_queue::desc::{split::Descriptor, RawDescriptor};
use virtio_queue::mock::MockSplitQueue;
use virtio_queue::{Queue, QueueOwnedT};
use vm_memory::{Bytes, GuestAddress};

const HDR: u64 = 0x1_0000;
const DATA: u64 = 0x2_0000;
/// Above the data area (which holds up to 1.5 MiB here).
const STATUS: u64 = 0x3f_0000;

fn qemu(tool: &str, args: &[&str]) -> std::process::Output {
    let out = Command::new(tool)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{tool} is needed (scripts/install-deps.sh installs it): {e}"));
    assert!(
        out.status.success(),
        "{tool} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Sends one request (kind, sector, data length) and returns its status byte.
fn request(dev: &mut Block, mem: &GuestMemory, kind: u32, sector: u64, len: u32) -> u8 {
    mem.write_obj(kind, GuestAddress(HDR)).unwrap();
    mem.write_obj(0u32, GuestAddress(HDR + 4)).unwrap();
    mem.write_obj(sector, GuestAddress(HDR + 8)).unwrap();
    mem.write_obj(0xffu8, GuestAddress(STATUS)).unwrap();
    let data_flags = if kind == 0 { 2 } else { 0 };
    let vq = MockSplitQueue::new(mem, 16);
    vq.build_desc_chain(&[
        RawDescriptor::from(Descriptor::new(HDR, 16, 1, 1)),
        RawDescriptor::from(Descriptor::new(DATA, len, data_flags | 1, 2)),
        RawDescriptor::from(Descriptor::new(STATUS, 1, 2, 0)),
    ])
    .unwrap();
    let mut q: Queue = vq.create_queue().unwrap();
    let chain = q.iter(mem).unwrap().next().unwrap();
    dev.process(0, mem, chain);
    mem.read_obj(GuestAddress(STATUS)).unwrap()
}

fn memory() -> GuestMemory {
    GuestMemory::from_ranges(&[(GuestAddress(0), 0x40_0000)]).unwrap()
}

#[test]
fn a_new_image_takes_guest_writes_that_qemu_img_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new.qcow2");
    Qcow2Disk::create(&path, 16 << 20).unwrap();
    let mem = memory();
    let disk = Disk::open(&path, false, None).unwrap();
    assert!(matches!(disk, Disk::Qcow2(_)), "the magic says qcow2");
    assert_eq!(disk.size(), 16 << 20);
    let mut dev = Block::new(disk, "q", 1);
    // 1.5 MiB across a cluster boundary: more than one buffered chunk.
    let pattern: Vec<u8> = (0..3 * 512 * 1024).map(|i| (i % 251) as u8).collect();
    mem.write_slice(&pattern, GuestAddress(DATA)).unwrap();
    assert_eq!(request(&mut dev, &mem, 1, 100, 3 << 19), VIRTIO_BLK_S_OK);
    assert_eq!(request(&mut dev, &mem, 4, 0, 0), VIRTIO_BLK_S_OK, "flush");
    mem.write_slice(&vec![0u8; pattern.len()], GuestAddress(DATA))
        .unwrap();
    assert_eq!(request(&mut dev, &mem, 0, 100, 3 << 19), VIRTIO_BLK_S_OK);
    let mut back = vec![0u8; pattern.len()];
    mem.read_slice(&mut back, GuestAddress(DATA)).unwrap();
    assert!(back == pattern, "read back differs from what was written");
    drop(dev);

    let file_len = std::fs::metadata(&path).unwrap().len();
    assert!(
        file_len < 4 << 20,
        "sparse: {file_len} bytes for 1.5 MiB of data"
    );
    qemu("qemu-img", &["check", path.to_str().unwrap()]);
    let raw = dir.path().join("out.raw");
    qemu(
        "qemu-img",
        &[
            "convert",
            "-f",
            "qcow2",
            "-O",
            "raw",
            path.to_str().unwrap(),
            raw.to_str().unwrap(),
        ],
    );
    let bytes = std::fs::read(&raw).unwrap();
    assert_eq!(bytes.len(), 16 << 20);
    assert!(
        bytes[100 * 512..100 * 512 + pattern.len()] == pattern[..],
        "qemu-img sees other bytes"
    );
    assert!(bytes[..100 * 512].iter().all(|b| *b == 0));
}

#[test]
fn an_image_made_by_qemu_reads_what_qemu_io_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("qemu.qcow2");
    let p = path.to_str().unwrap();
    qemu("qemu-img", &["create", "-q", "-f", "qcow2", p, "4M"]);
    qemu(
        "qemu-io",
        &["-f", "qcow2", "-c", "write -P 0x5a 65536 4096", p],
    );
    let mem = memory();
    let mut dev = Block::new(
        Disk::open(&path, true, Some(ImageFormat::Qcow2)).unwrap(),
        "q",
        1,
    );
    assert_eq!(request(&mut dev, &mem, 0, 128, 4096), VIRTIO_BLK_S_OK);
    let mut back = vec![0u8; 4096];
    mem.read_slice(&mut back, GuestAddress(DATA)).unwrap();
    assert!(back.iter().all(|b| *b == 0x5a));
    // Read-only: writes are refused and the file is untouched.
    let before = std::fs::read(&path).unwrap();
    assert_eq!(request(&mut dev, &mem, 1, 0, 512), VIRTIO_BLK_S_IOERR);
    drop(dev);
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

#[test]
fn discard_and_write_zeroes_read_back_as_zero() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("z.qcow2");
    Qcow2Disk::create(&path, 4 << 20).unwrap();
    let mut disk = Disk::open(&path, false, None).unwrap();
    let Disk::Qcow2(q) = &mut disk else {
        panic!("not qcow2")
    };
    q.write_at(&vec![0xaa; 256 * 1024], 0).unwrap();
    q.discard(0, 65536).unwrap();
    q.write_zeroes(65536, 65536, false).unwrap();
    q.write_zeroes(131_072, 512, true).unwrap();
    let mut back = vec![1u8; 256 * 1024];
    q.read_at(&mut back, 0).unwrap();
    assert!(back[..131_072 + 512].iter().all(|b| *b == 0));
    assert!(back[131_072 + 512..].iter().all(|b| *b == 0xaa));
    drop(disk);
    qemu("qemu-img", &["check", path.to_str().unwrap()]);
}

#[test]
fn a_corrupt_image_is_a_clear_error_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.qcow2");
    let mut bytes = MAGIC.to_vec();
    bytes.extend_from_slice(&[0xff; 4092]);
    std::fs::write(&path, &bytes).unwrap();
    let e = Disk::open(&path, false, None).unwrap_err();
    assert!(matches!(e, DiskError::Corrupt { .. }), "{e}");
    assert!(
        e.to_string().contains("bad.qcow2") && e.to_string().contains("qemu-img check"),
        "{e}"
    );
    // Nothing was written to it.
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
    // A raw file named as qcow2 is also refused.
    let raw = dir.path().join("raw.img");
    std::fs::write(&raw, vec![0u8; 65536]).unwrap();
    let e = Disk::open(&raw, true, Some(ImageFormat::Qcow2)).unwrap_err();
    assert!(matches!(e, DiskError::Corrupt { .. }), "{e}");
}

#[test]
fn backing_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base.raw");
    std::fs::write(&base, vec![0x11u8; 1 << 20]).unwrap();
    let over = dir.path().join("over.qcow2");
    qemu(
        "qemu-img",
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-b",
            base.to_str().unwrap(),
            "-F",
            "raw",
            over.to_str().unwrap(),
        ],
    );
    let e = Disk::open(&over, true, None).unwrap_err();
    assert!(matches!(e, DiskError::Unsupported { .. }), "{e}");
    assert!(e.to_string().contains("backing file"), "{e}");
}

#[test]
fn a_second_writer_is_refused_on_qcow2_too() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.qcow2");
    Qcow2Disk::create(&path, 1 << 20).unwrap();
    let _first = Disk::open(&path, false, None).unwrap();
    assert!(matches!(
        Disk::open(&path, false, None),
        Err(DiskError::Locked { .. })
    ));
    let e = Qcow2Disk::create(&path, 1 << 20).unwrap_err();
    assert!(
        matches!(e, DiskError::Create { .. }),
        "never overwrites: {e}"
    );
}
