//! The data of a block request as host I/O vectors pointing straight into guest memory, so
//! reads and writes go between the image and the guest's buffers with one `preadv` or
//! `pwritev` and no bounce buffer. Every address comes from a descriptor the guest wrote:
//! each segment is checked to lie in guest RAM before its pointer is taken.

use crate::devices::virtio::Chain;
use crate::memory::GuestMemory;
use std::os::fd::RawFd;
use vm_memory::{GuestAddress, GuestMemoryBackend};

/// At most this many segments per system call (Linux's IOV_MAX).
const IOV_MAX: usize = 1024;

/// Host I/O vectors for the device-readable or device-writable part of a chain, less
/// `skip_front` bytes at its start and `skip_back` at its end (header and status byte).
pub fn data_iovecs(
    mem: &GuestMemory,
    chain: &Chain<'_>,
    writable: bool,
    skip_front: usize,
    skip_back: usize,
) -> Option<Vec<libc::iovec>> {
    let mut segments = Vec::new();
    for desc in chain.clone() {
        if desc.is_write_only() != writable {
            continue;
        }
        let len = usize::try_from(desc.len()).ok()?;
        let slice = mem.get_slice(GuestAddress(desc.addr().0), len).ok()?;
        segments.push((slice.ptr_guard_mut().as_ptr(), len));
    }
    let total: usize = segments.iter().map(|s| s.1).sum();
    let mut keep = total.checked_sub(skip_front)?.checked_sub(skip_back)?;
    let mut skip = skip_front;
    let mut iovecs = Vec::with_capacity(segments.len());
    for (ptr, len) in segments {
        if skip >= len {
            skip -= len;
            continue;
        }
        let take = (len - skip).min(keep);
        if take > 0 {
            // SAFETY: `ptr` points at `len` bytes of mapped guest memory (checked by
            // get_slice) and `skip + take <= len`, so the result stays inside that range.
            let base = unsafe { ptr.add(skip) };
            iovecs.push(libc::iovec {
                iov_base: base.cast(),
                iov_len: take,
            });
        }
        keep -= take;
        skip = 0;
    }
    Some(iovecs)
}

/// Reads (or writes) all of `iovecs` at `offset` of `fd`, resuming after short transfers.
pub fn transfer(
    fd: RawFd,
    mut iovecs: Vec<libc::iovec>,
    mut offset: u64,
    write: bool,
) -> std::io::Result<usize> {
    let mut done = 0usize;
    let mut start = 0usize;
    while start < iovecs.len() {
        let batch = &iovecs[start..iovecs.len().min(start + IOV_MAX)];
        let off = libc::off_t::try_from(offset)
            .map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
        // At most IOV_MAX (1024) entries: always fits a c_int.
        let count = libc::c_int::try_from(batch.len()).unwrap_or(libc::c_int::MAX);
        // SAFETY: every iovec points into mapped guest memory for its length (see
        // `data_iovecs`); the kernel only reads or writes within those ranges.
        let n = unsafe {
            if write {
                libc::pwritev(fd, batch.as_ptr(), count, off)
            } else {
                libc::preadv(fd, batch.as_ptr(), count, off)
            }
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof));
        }
        let mut n = n as usize;
        done += n;
        offset += n as u64;
        while n > 0 && start < iovecs.len() {
            let v = &mut iovecs[start];
            if n >= v.iov_len {
                n -= v.iov_len;
                start += 1;
            } else {
                // SAFETY: advancing within the same iovec's range (n < iov_len).
                v.iov_base = unsafe { v.iov_base.cast::<u8>().add(n) }.cast();
                v.iov_len -= n;
                n = 0;
            }
        }
    }
    Ok(done)
}
