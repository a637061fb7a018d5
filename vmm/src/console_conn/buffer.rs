//! A shared pixel buffer: a memfd both sides map, so frames are written once by the device
//! (straight from guest memory, by a transfer) and read in place by the viewer. The GPU
//! keeps the images it shows on a scanout in these.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::FromRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use vm_memory::mmap::MmapRegion;
use vm_memory::volatile_memory::VolatileSlice;
use vm_memory::{Bytes, FileOffset, VolatileMemory};

/// Numbers buffers, so that a viewer can tell one it has mapped already.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A mapped memfd.
#[derive(Debug)]
pub struct SharedBuffer {
    file: File,
    map: MmapRegion<()>,
    id: u64,
}

impl SharedBuffer {
    /// A new zeroed buffer of `len` bytes.
    pub fn create(len: usize) -> std::io::Result<Self> {
        let name = CString::new("phyllome-scanout").map_err(std::io::Error::other)?;
        // SAFETY: `name` is a valid NUL-terminated string that outlives the call; the flags
        // are valid for memfd_create. The result is checked before use.
        let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by memfd_create, is valid, and nothing else owns it.
        let file = unsafe { File::from_raw_fd(fd) };
        file.set_len(len as u64)?;
        Self::map(file, len)
    }

    /// Maps a buffer received from the peer, which must hold at least `len` bytes.
    pub fn map(file: File, len: usize) -> std::io::Result<Self> {
        if file.metadata()?.len() < len as u64 || len == 0 {
            return Err(std::io::Error::other(
                "the shared buffer is smaller than announced",
            ));
        }
        let clone = file.try_clone()?;
        let map = MmapRegion::from_file(FileOffset::new(clone, 0), len)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        Ok(Self {
            file,
            map,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        })
    }

    /// This process's number for the buffer (unique while it runs).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// `len` bytes at `offset`, for copies straight into the buffer; None outside it.
    pub fn volatile(&self, offset: usize, len: usize) -> Option<VolatileSlice<'_, ()>> {
        self.map.as_volatile_slice().subslice(offset, len).ok()
    }

    /// The memfd, to send to the peer.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Bytes in the buffer.
    pub fn len(&self) -> usize {
        self.map.size()
    }

    /// Whether it is empty (never, once made).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Writes `data` at `offset` (ignored where it would not fit).
    pub fn write(&self, offset: usize, data: &[u8]) {
        let _ = self.map.as_volatile_slice().write_slice(data, offset);
    }

    /// Reads `out.len()` bytes at `offset`; false where that is outside the buffer.
    pub fn read(&self, offset: usize, out: &mut [u8]) -> bool {
        self.map.as_volatile_slice().read_slice(out, offset).is_ok()
    }
}
