//! virtio-blk: the guest's disks. Requests (read, write, flush, get ID, discard,
//! write-zeroes) are parsed from descriptor chains and carried out on a [`Disk`] (raw or qcow2).
//! A request the guest got wrong (short header, sectors past the end, a write to a
//! read-only disk, an unknown type) completes with the matching status; the device goes on.

pub mod disk;
mod iov;
mod parallel;
mod qcow2;

pub use disk::{CacheMode, Disk, DiskError, ImageFormat, RawDisk, SECTOR_SIZE};
pub use qcow2::Qcow2Disk;

use super::{
    Chain, DeviceCore, VIRTIO_F_VERSION_1, VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC,
};
use crate::memory::GuestMemory;
use std::io::{Read, Write};
use virtio_queue::{Reader, Writer};
use vm_memory::ByteValued;

const VIRTIO_BLK_F_SEG_MAX: u64 = 1 << 2;
const VIRTIO_BLK_F_RO: u64 = 1 << 5;
const VIRTIO_BLK_F_BLK_SIZE: u64 = 1 << 6;
const VIRTIO_BLK_F_FLUSH: u64 = 1 << 9;
const VIRTIO_BLK_F_MQ: u64 = 1 << 12;
const VIRTIO_BLK_F_DISCARD: u64 = 1 << 13;
const VIRTIO_BLK_F_WRITE_ZEROES: u64 = 1 << 14;

/// Request types.
pub const VIRTIO_BLK_T_IN: u32 = 0;
/// Write.
pub const VIRTIO_BLK_T_OUT: u32 = 1;
/// Flush.
pub const VIRTIO_BLK_T_FLUSH: u32 = 4;
/// Device ID string.
pub const VIRTIO_BLK_T_GET_ID: u32 = 8;
/// Discard.
pub const VIRTIO_BLK_T_DISCARD: u32 = 11;
/// Write zeroes.
pub const VIRTIO_BLK_T_WRITE_ZEROES: u32 = 13;

/// Status: success.
pub const VIRTIO_BLK_S_OK: u8 = 0;
/// Status: I/O error (also for requests that break the rules).
pub const VIRTIO_BLK_S_IOERR: u8 = 1;
/// Status: unsupported request.
pub const VIRTIO_BLK_S_UNSUPP: u8 = 2;

const QUEUE_SIZE: u16 = 256;
const SEG_MAX: u32 = (QUEUE_SIZE as u32) - 2;
/// Formatted images are read and written through a buffer of at most this many bytes at a time.
const BUFFER_CHUNK: usize = 1 << 20;
const MAX_DISCARD_SECTORS: u32 = 1 << 22;
const ID_LEN: usize = 20;

#[derive(Clone, Copy, Default, Debug)]
#[repr(C)]
struct RequestHeader {
    kind: u32,
    ioprio: u32,
    sector: u64,
}
// SAFETY: `repr(C)` of u32, u32, u64: no padding, every bit pattern valid.
unsafe impl ByteValued for RequestHeader {}

#[derive(Clone, Copy, Default, Debug)]
#[repr(C)]
struct DiscardSegment {
    sector: u64,
    num_sectors: u32,
    flags: u32,
}
// SAFETY: `repr(C)` of u64, u32, u32: no padding, every bit pattern valid.
unsafe impl ByteValued for DiscardSegment {}

const WRITE_ZEROES_UNMAP: u32 = 1;

/// The block device.
#[derive(Debug)]
pub struct Block {
    disk: Disk,
    id: [u8; ID_LEN],
    queues: u16,
    poll: std::time::Duration,
    /// Helper threads for the large transfers of a batch.
    pool: parallel::Pool,
}

/// Requests through the page cache at least this large are worth a helper thread's wake-up
/// (a guest's readahead is 128 KiB).
const PARALLEL_MIN: usize = 128 << 10;

/// Most requests taken from a queue at once.
const BATCH_LIMIT: usize = 32;

/// A raw read or write of a batch, checked and ready to run, with where its status goes.
struct Planned<'a> {
    transfer: parallel::Transfer,
    len: usize,
    status: Writer<'a, ()>,
    /// Worth a helper thread (large, or waiting for the disk); else run in place.
    overlap: bool,
}

/// How long a block worker watches its queue after a batch (see
/// [`crate::devices::virtio::poll`]): QEMU's iothread default (`poll-max-ns`, 32 µs). A
/// driver that waits for each request sends the next one well within it.
pub const DEFAULT_POLL_WINDOW: std::time::Duration = std::time::Duration::from_micros(32);

impl Block {
    /// A device serving `disk` on `queues` queues, reporting `id` (truncated to 20 bytes).
    pub fn new(disk: impl Into<Disk>, id: &str, queues: u16) -> Self {
        let disk = disk.into();
        let pool = match &disk {
            Disk::Raw(raw) if raw.cache() == CacheMode::None => parallel::Pool::for_waits(),
            _ => parallel::Pool::for_copies(),
        };
        let mut buf = [0u8; ID_LEN];
        let n = id.len().min(ID_LEN);
        buf[..n].copy_from_slice(&id.as_bytes()[..n]);
        Self {
            disk,
            id: buf,
            queues: queues.max(1),
            poll: DEFAULT_POLL_WINDOW,
            pool,
        }
    }

    /// Sets how long the worker watches the queue after a batch (zero: never).
    #[must_use]
    pub fn with_poll_window(mut self, window: std::time::Duration) -> Self {
        self.poll = window;
        self
    }

    /// A read or write of a raw disk, checked and ready to run (by a helper where it is
    /// worth one); `None` for anything else, and for a request that fails its checks
    /// (carried out, or failed, by [`Block::process`]).
    fn plan<'a>(&self, mem: &'a GuestMemory, chain: &Chain<'a>) -> Option<Planned<'a>> {
        let Disk::Raw(raw) = &self.disk else {
            return None;
        };
        let header = chain
            .clone()
            .reader(mem)
            .ok()?
            .read_obj::<RequestHeader>()
            .ok()?;
        let write = match header.kind {
            VIRTIO_BLK_T_IN => false,
            VIRTIO_BLK_T_OUT if !raw.readonly() => true,
            _ => return None,
        };
        let mut data = chain.clone().writer(mem).ok()?;
        let writable = data.available_bytes();
        let status = data.split_at(writable.checked_sub(1)?).ok()?;
        let iovecs = if write {
            iov::data_iovecs(mem, chain, false, std::mem::size_of::<RequestHeader>(), 0)?
        } else {
            iov::data_iovecs(mem, chain, true, 0, 1)?
        };
        let len: usize = iovecs.iter().map(|v| v.iov_len).sum();
        if len as u64 % SECTOR_SIZE != 0 {
            return None;
        }
        let offset = self.range(header.sector, len as u64)?;
        let fd = raw.data_fd(&iovecs, offset);
        // A direct transfer waits for the disk: worth a helper whatever its size.
        let overlap = len >= PARALLEL_MIN || fd != raw.as_raw_fd();
        Some(Planned {
            overlap,
            transfer: parallel::Transfer {
                fd,
                iovecs,
                offset,
                write,
            },
            len,
            status,
        })
    }

    /// Runs the planned transfers together, writes their statuses and records their used
    /// lengths.
    fn run_planned(&mut self, planned: &mut Vec<(usize, Planned<'_>)>, used: &mut [u32]) {
        let (slots, rest): (Vec<usize>, Vec<Planned<'_>>) = planned.drain(..).unzip();
        let mut transfers = Vec::with_capacity(rest.len());
        let mut finish = Vec::with_capacity(rest.len());
        for p in rest {
            finish.push((p.len, p.transfer.write, p.status));
            transfers.push(p.transfer);
        }
        let results = self.pool.run(transfers);
        for ((slot, (len, write, mut status)), result) in slots.into_iter().zip(finish).zip(results)
        {
            let ok = matches!(result, Ok(n) if n == len);
            let code = if ok {
                VIRTIO_BLK_S_OK
            } else {
                VIRTIO_BLK_S_IOERR
            };
            if status.write_all(&[code]).is_err() {
                continue;
            }
            // A read wrote its data and the status byte; a write only the status byte.
            let written = if ok && !write { len + 1 } else { 1 };
            if let Some(u) = used.get_mut(slot) {
                *u = u32::try_from(written).unwrap_or(u32::MAX);
            }
        }
    }

    /// The byte offset of `sector` if `bytes` from there lie inside the disk.
    fn range(&self, sector: u64, bytes: u64) -> Option<u64> {
        let offset = sector.checked_mul(SECTOR_SIZE)?;
        (offset.checked_add(bytes)? <= self.disk.size()).then_some(offset)
    }

    /// Carries out one request; returns its status and the bytes written to the data area.
    fn execute(
        &mut self,
        mem: &GuestMemory,
        chain: &Chain<'_>,
        reader: &mut Reader<'_, ()>,
        data: &mut Writer<'_, ()>,
    ) -> (u8, usize) {
        let Ok(header) = reader.read_obj::<RequestHeader>() else {
            return (VIRTIO_BLK_S_IOERR, 0);
        };
        match header.kind {
            VIRTIO_BLK_T_IN => match &self.disk {
                Disk::Raw(raw) => self.read_sectors(raw, header.sector, mem, chain),
                Disk::Qcow2(q) => self.read_buffered(q, header.sector, data),
            },
            VIRTIO_BLK_T_OUT => match &self.disk {
                Disk::Raw(raw) => (self.write_sectors(raw, header.sector, mem, chain), 0),
                Disk::Qcow2(q) => (self.write_buffered(q, header.sector, reader), 0),
            },
            VIRTIO_BLK_T_FLUSH => (ok_or_ioerr(self.disk.flush()), 0),
            VIRTIO_BLK_T_GET_ID => {
                let n = data.available_bytes().min(ID_LEN);
                match data.write_all(&self.id[..n]) {
                    Ok(()) => (VIRTIO_BLK_S_OK, n),
                    Err(_) => (VIRTIO_BLK_S_IOERR, 0),
                }
            }
            VIRTIO_BLK_T_DISCARD | VIRTIO_BLK_T_WRITE_ZEROES => {
                (self.discard_or_zero(header.kind, reader), 0)
            }
            _ => (VIRTIO_BLK_S_UNSUPP, 0),
        }
    }

    /// Reads from the image straight into the guest's writable buffers (less the status byte).
    fn read_sectors(
        &self,
        raw: &RawDisk,
        sector: u64,
        mem: &GuestMemory,
        chain: &Chain<'_>,
    ) -> (u8, usize) {
        let Some(iovecs) = iov::data_iovecs(mem, chain, true, 0, 1) else {
            return (VIRTIO_BLK_S_IOERR, 0);
        };
        let len: usize = iovecs.iter().map(|v| v.iov_len).sum();
        let Some(offset) = self
            .range(sector, len as u64)
            .filter(|_| len as u64 % SECTOR_SIZE == 0)
        else {
            return (VIRTIO_BLK_S_IOERR, 0);
        };
        match iov::transfer(raw.data_fd(&iovecs, offset), iovecs, offset, false) {
            Ok(n) if n == len => (VIRTIO_BLK_S_OK, len),
            _ => (VIRTIO_BLK_S_IOERR, 0),
        }
    }

    /// Writes the guest's readable buffers (after the 16-byte header) into the image.
    fn write_sectors(
        &self,
        raw: &RawDisk,
        sector: u64,
        mem: &GuestMemory,
        chain: &Chain<'_>,
    ) -> u8 {
        if raw.readonly() {
            return VIRTIO_BLK_S_IOERR;
        }
        let Some(iovecs) =
            iov::data_iovecs(mem, chain, false, std::mem::size_of::<RequestHeader>(), 0)
        else {
            return VIRTIO_BLK_S_IOERR;
        };
        let len: usize = iovecs.iter().map(|v| v.iov_len).sum();
        let Some(offset) = self
            .range(sector, len as u64)
            .filter(|_| len as u64 % SECTOR_SIZE == 0)
        else {
            return VIRTIO_BLK_S_IOERR;
        };
        match iov::transfer(raw.data_fd(&iovecs, offset), iovecs, offset, true) {
            Ok(n) if n == len => VIRTIO_BLK_S_OK,
            _ => VIRTIO_BLK_S_IOERR,
        }
    }

    /// Reads a formatted image (qcow2) through a buffer into the guest's writable data
    /// buffers: the format driver maps clusters, so there is no file range to read into
    /// guest memory directly.
    fn read_buffered(&self, q: &Qcow2Disk, sector: u64, data: &mut Writer<'_, ()>) -> (u8, usize) {
        let len = data.available_bytes();
        let Some(offset) = self
            .range(sector, len as u64)
            .filter(|_| len as u64 % SECTOR_SIZE == 0)
        else {
            return (VIRTIO_BLK_S_IOERR, 0);
        };
        let mut done = 0;
        while done < len {
            let mut buf = vec![0u8; (len - done).min(BUFFER_CHUNK)];
            if q.read_at(&mut buf, offset + done as u64).is_err() || data.write_all(&buf).is_err() {
                return (VIRTIO_BLK_S_IOERR, 0);
            }
            done += buf.len();
        }
        (VIRTIO_BLK_S_OK, len)
    }

    /// Writes the guest's data (what follows the header) into a formatted image.
    fn write_buffered(&self, q: &Qcow2Disk, sector: u64, reader: &mut Reader<'_, ()>) -> u8 {
        if q.readonly() {
            return VIRTIO_BLK_S_IOERR;
        }
        let len = reader.available_bytes();
        let Some(offset) = self
            .range(sector, len as u64)
            .filter(|_| len as u64 % SECTOR_SIZE == 0)
        else {
            return VIRTIO_BLK_S_IOERR;
        };
        let mut done = 0;
        while done < len {
            let mut buf = vec![0u8; (len - done).min(BUFFER_CHUNK)];
            if reader.read_exact(&mut buf).is_err()
                || q.write_at(&buf, offset + done as u64).is_err()
            {
                return VIRTIO_BLK_S_IOERR;
            }
            done += buf.len();
        }
        VIRTIO_BLK_S_OK
    }

    fn discard_or_zero(&mut self, kind: u32, reader: &mut Reader<'_, ()>) -> u8 {
        if self.disk.readonly() {
            return VIRTIO_BLK_S_IOERR;
        }
        let seg_len = std::mem::size_of::<DiscardSegment>();
        let len = reader.available_bytes();
        // One segment per request, as the configuration space says.
        if len != seg_len {
            return VIRTIO_BLK_S_UNSUPP;
        }
        let Ok(seg) = reader.read_obj::<DiscardSegment>() else {
            return VIRTIO_BLK_S_IOERR;
        };
        let unmap = seg.flags & WRITE_ZEROES_UNMAP != 0;
        if seg.flags & !WRITE_ZEROES_UNMAP != 0 || (kind == VIRTIO_BLK_T_DISCARD && unmap) {
            return VIRTIO_BLK_S_UNSUPP;
        }
        let bytes = u64::from(seg.num_sectors) * SECTOR_SIZE;
        let Some(offset) = self
            .range(seg.sector, bytes)
            .filter(|_| seg.num_sectors <= MAX_DISCARD_SECTORS)
        else {
            return VIRTIO_BLK_S_IOERR;
        };
        ok_or_ioerr(if kind == VIRTIO_BLK_T_DISCARD {
            self.disk.discard(offset, bytes)
        } else {
            self.disk.write_zeroes(offset, bytes, unmap)
        })
    }
}

fn ok_or_ioerr(r: std::io::Result<()>) -> u8 {
    if r.is_ok() {
        VIRTIO_BLK_S_OK
    } else {
        VIRTIO_BLK_S_IOERR
    }
}

impl DeviceCore for Block {
    fn device_type(&self) -> u32 {
        2
    }

    fn num_queues(&self) -> usize {
        usize::from(self.queues)
    }

    fn max_queue_size(&self) -> u16 {
        QUEUE_SIZE
    }

    fn poll_window(&self) -> std::time::Duration {
        self.poll
    }

    fn batch_limit(&self) -> usize {
        BATCH_LIMIT
    }

    /// Large raw reads and writes run together on several cores; anything else (a flush,
    /// a small or a qcow2 request) first waits for those before it, then runs in place, so
    /// a flush still follows every write the driver sent before it. A small raw read or
    /// write runs from its plan, so its chain is not read twice.
    fn process_batch(
        &mut self,
        queue: usize,
        mem: &GuestMemory,
        chains: Vec<Chain<'_>>,
    ) -> Vec<u32> {
        let mut used = vec![0u32; chains.len()];
        let mut planned = Vec::new();
        for (slot, chain) in chains.into_iter().enumerate() {
            match self.plan(mem, &chain) {
                Some(p) if p.overlap => planned.push((slot, p)),
                Some(p) => {
                    self.run_planned(&mut planned, &mut used);
                    self.run_planned(&mut vec![(slot, p)], &mut used);
                }
                None => {
                    self.run_planned(&mut planned, &mut used);
                    used[slot] = self.process(queue, mem, chain);
                }
            }
        }
        self.run_planned(&mut planned, &mut used);
        used
    }

    fn features(&self) -> u64 {
        let mut f = VIRTIO_F_VERSION_1
            | VIRTIO_RING_F_EVENT_IDX
            | VIRTIO_RING_F_INDIRECT_DESC
            | VIRTIO_BLK_F_SEG_MAX
            | VIRTIO_BLK_F_BLK_SIZE
            | VIRTIO_BLK_F_FLUSH;
        if self.queues > 1 {
            f |= VIRTIO_BLK_F_MQ;
        }
        if self.disk.readonly() {
            f |= VIRTIO_BLK_F_RO;
        } else {
            f |= VIRTIO_BLK_F_DISCARD | VIRTIO_BLK_F_WRITE_ZEROES;
        }
        f
    }

    /// `struct virtio_blk_config` (virtio 1.2, 5.2.4), up to `write_zeroes_may_unmap`.
    fn config(&self) -> Vec<u8> {
        let mut c = vec![0u8; 60];
        let mut put = |off: usize, bytes: &[u8]| c[off..off + bytes.len()].copy_from_slice(bytes);
        put(0, &(self.disk.size() / SECTOR_SIZE).to_le_bytes()); // capacity
        put(12, &SEG_MAX.to_le_bytes()); // seg_max
        put(20, &512u32.to_le_bytes()); // blk_size (SECTOR_SIZE)
        put(34, &self.queues.to_le_bytes()); // num_queues
        put(36, &MAX_DISCARD_SECTORS.to_le_bytes()); // max_discard_sectors
        put(40, &1u32.to_le_bytes()); // max_discard_seg
        put(44, &1u32.to_le_bytes()); // discard_sector_alignment
        put(48, &MAX_DISCARD_SECTORS.to_le_bytes()); // max_write_zeroes_sectors
        put(52, &1u32.to_le_bytes()); // max_write_zeroes_seg
        put(56, &[1]); // write_zeroes_may_unmap
        c
    }

    fn process(&mut self, _queue: usize, mem: &GuestMemory, chain: Chain<'_>) -> u32 {
        // The status byte is the last writable byte; without one there is nobody to tell.
        let Ok(mut data) = chain.clone().writer(mem) else {
            return 0;
        };
        let writable = data.available_bytes();
        if writable == 0 {
            return 0;
        }
        let Ok(mut status_byte) = data.split_at(writable - 1) else {
            return 0;
        };
        let (status, written) = match chain.clone().reader(mem) {
            Ok(mut reader) => self.execute(mem, &chain, &mut reader, &mut data),
            Err(_) => (VIRTIO_BLK_S_IOERR, 0),
        };
        if status_byte.write_all(&[status]).is_err() {
            return 0;
        }
        u32::try_from(written + 1).unwrap_or(u32::MAX)
    }
}

#[cfg(test)]
mod tests;
