//! Fuzzes what a guest controls in a virtio-blk request: the descriptor chain (addresses,
//! lengths, flags, links) and every byte of guest memory it points at (header, data,
//! discard segments). The device must never panic, and must never touch the image outside
//! the request's checked range (the image is small and the fuzzer sees any crash). Bit 6 of
//! the first byte picks a qcow2 image instead of a raw one. Raw requests go through the
//! batch path too (twice in one batch), where large reads and writes run on helper threads.

#![no_main]

use libfuzzer_sys::fuzz_target;
use phyllome_vmm::devices::virtio::blk::{Block, Disk, ImageFormat, Qcow2Disk, RawDisk};
use phyllome_vmm::devices::virtio::DeviceCore;
use virtio_queue::desc::{split::Descriptor, RawDescriptor};
use virtio_queue::mock::MockSplitQueue;
use virtio_queue::{Queue, QueueOwnedT};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

const MEM: u64 = 0x4_0000;
/// Sectors of the raw image: large enough for the batch path's large transfers (128 KiB+).
const RAW_SECTORS: u64 = 512;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let mem: GuestMemoryMmap = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), MEM as usize)]).unwrap();
    // The first byte says how many descriptors; each takes 12 bytes; the rest is memory.
    let count = usize::from(data[0] % 8) + 1;
    let (descs, payload) = data[1..].split_at((count * 12).min(data.len() - 1));
    let _ = mem.write_slice(&payload[..payload.len().min(0x4000)], GuestAddress(0x8000));
    let raw: Vec<RawDescriptor> = descs
        .chunks_exact(12)
        .map(|d| {
            let addr = u64::from(u32::from_le_bytes([d[0], d[1], d[2], d[3]]));
            let len = u32::from_le_bytes([d[4], d[5], d[6], d[7]]);
            let flags = u16::from_le_bytes([d[8], d[9]]) & 0x7;
            let next = u16::from_le_bytes([d[10], d[11]]) % 16;
            RawDescriptor::from(Descriptor::new(addr, len, flags, next))
        })
        .collect();
    if raw.is_empty() {
        return;
    }
    let vq = MockSplitQueue::new(&mem, 16);
    if vq.build_desc_chain(&raw).is_err() {
        return;
    }
    let Ok(mut q) = vq.create_queue::<Queue>() else { return };
    let readonly = data[0] & 0x80 != 0;
    if data[0] & 0x40 != 0 {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fuzz.qcow2");
        Qcow2Disk::create(&path, 64 * 512).unwrap();
        let disk = Disk::open(&path, readonly, Some(ImageFormat::Qcow2)).unwrap();
        assert_eq!(disk.size(), 64 * 512);
        let mut dev = Block::new(disk, "fuzz", 1);
        if let Some(chain) = q.iter(&mem).ok().and_then(|mut i| i.next()) {
            let used = dev.process(0, &mem, chain);
            assert!(u64::from(used) <= MEM);
        }
        return;
    }
    let image = tempfile::NamedTempFile::new().unwrap();
    image.as_file().set_len(RAW_SECTORS * 512).unwrap();
    let mut dev = Block::new(RawDisk::open(image.path(), readonly).unwrap(), "fuzz", 1);
    if let Some(chain) = q.iter(&mem).ok().and_then(|mut i| i.next()) {
        let used = dev.process(0, &mem, chain.clone());
        assert!(u64::from(used) <= MEM);
        let batch = dev.process_batch(0, &mem, vec![chain.clone(), chain]);
        assert_eq!(batch.len(), 2, "an answer for every request of a batch");
        assert!(batch.iter().all(|&u| u64::from(u) <= MEM));
    }
    assert_eq!(
        image.as_file().metadata().unwrap().len(),
        RAW_SECTORS * 512,
        "the image never grows"
    );
});
