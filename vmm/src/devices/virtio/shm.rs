//! Virtio shared memory regions (virtio 1.2, 2.10): windows of guest-physical space behind
//! a PCI BAR where a device shows host memory to the guest directly (the GPU's
//! host-visible region, where mappable blobs appear). The window reserves host address
//! space for its BAR and gives it to KVM as one memory slot; a device then places a file's
//! pages at an offset (`mmap` over the reservation) and takes them out again. The guest
//! sees each change at once, with no exit, and where nothing is mapped it reads zeros.
//!
//! Devices in this process reach a window directly; a vhost-user backend reaches it
//! through `SHMEM_MAP` and `SHMEM_UNMAP` requests, which the frontend hands here. Either
//! way the requests are the device's, so every one is checked: its region exists, it is
//! page aligned, it fits, and it covers no other mapping.

use std::collections::BTreeMap;
use std::os::fd::BorrowedFd;
use std::sync::{Arc, Mutex};

/// Mappings start and end on page boundaries.
pub const PAGE: u64 = 4096;

/// Why a shared memory request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShmError {
    /// The device has no region with this ID.
    #[error("The device has no shared memory region {0}.")]
    NoRegion(u8),
    /// Offset, file offset or length is not a whole number of pages (or is zero).
    #[error("A shared memory mapping must be whole pages: offset {offset:#x}, file offset {fd_offset:#x}, length {len:#x}.")]
    Unaligned {
        /// Offset in the region.
        offset: u64,
        /// Offset in the file.
        fd_offset: u64,
        /// Length.
        len: u64,
    },
    /// It would reach past the region.
    #[error(
        "A mapping of {len:#x} bytes at {offset:#x} does not fit region {shmid} ({size:#x} bytes)."
    )]
    Outside {
        /// The region.
        shmid: u8,
        /// Offset in the region.
        offset: u64,
        /// Length.
        len: u64,
        /// The region's size.
        size: u64,
    },
    /// Something is mapped there already.
    #[error("Region {shmid} already has a mapping at {offset:#x}.")]
    Overlap {
        /// The region.
        shmid: u8,
        /// Where the other mapping starts.
        offset: u64,
    },
    /// An unmap that matches no mapping exactly.
    #[error("Region {shmid} has no mapping of {len:#x} bytes at {offset:#x}.")]
    NotMapped {
        /// The region.
        shmid: u8,
        /// Offset in the region.
        offset: u64,
        /// Length.
        len: u64,
    },
    /// The host refused (mmap or KVM).
    #[error("The host could not {what}: {reason}.")]
    Host {
        /// What was being done.
        what: &'static str,
        /// The system's reason.
        reason: String,
    },
}

/// Puts files' pages into a device's shared memory regions and takes them out: a window
/// in this process, or a vhost-user backend's channel to its frontend.
pub trait ShmMapper: Send + Sync {
    /// Shows `len` bytes of `fd` from `fd_offset` at `offset` in region `shmid`.
    fn map(
        &self,
        shmid: u8,
        offset: u64,
        fd: BorrowedFd<'_>,
        fd_offset: u64,
        len: u64,
        writable: bool,
    ) -> Result<(), ShmError>;
    /// Takes the mapping of `len` bytes at `offset` in region `shmid` out again.
    fn unmap(&self, shmid: u8, offset: u64, len: u64) -> Result<(), ShmError>;
}

/// Gives guest-physical ranges to the hypervisor as memory (KVM memory slots).
pub trait MemorySlots: Send + Sync {
    /// Makes `len` bytes of this process's memory at `host` the guest's memory at `gpa`;
    /// returns the slot's handle.
    fn add(&self, gpa: u64, len: u64, host: u64) -> std::io::Result<u32>;
    /// Takes the slot back (before its memory goes away).
    fn remove(&self, slot: u32, gpa: u64, len: u64, host: u64);
}

/// One region: its ID, where it starts in the window, and its size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    /// The virtio shared memory ID.
    pub shmid: u8,
    /// Offset in the window (and the BAR).
    pub offset: u64,
    /// Size in bytes.
    pub len: u64,
}

/// Lays `regions` (ID, size) out one after the other on page boundaries; returns them
/// and the BAR size that holds them (a power of two, as BARs are; `u64::MAX`, which no
/// BAR space has room for, when none is that large). Sizes are rounded up to pages; empty
/// regions are left out.
pub fn layout(regions: &[(u8, u64)]) -> (Vec<Region>, u64) {
    let mut out = Vec::new();
    let mut next = 0u64;
    for &(shmid, len) in regions {
        let len = len.div_ceil(PAGE).saturating_mul(PAGE);
        if len == 0 {
            continue;
        }
        out.push(Region {
            shmid,
            offset: next,
            len,
        });
        next = next.saturating_add(len);
    }
    let bar = next
        .max(PAGE)
        .checked_next_power_of_two()
        .unwrap_or(u64::MAX);
    (out, bar)
}

struct Placed {
    slot: u32,
    gpa: u64,
}

struct State {
    /// Where the window is in guest-physical space, if KVM has it now.
    placed: Option<Placed>,
    /// What is mapped, by offset in the window: its length.
    maps: BTreeMap<u64, u64>,
}

/// A BAR's worth of reserved host address space, shown to the guest through one KVM slot.
pub struct ShmWindow {
    host: u64,
    size: u64,
    regions: Vec<Region>,
    slots: Arc<dyn MemorySlots>,
    state: Mutex<State>,
}

impl std::fmt::Debug for ShmWindow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShmWindow")
            .field("size", &self.size)
            .field("regions", &self.regions)
            .finish_non_exhaustive()
    }
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Anonymous, private, unreserved pages at `addr` (`MAP_FIXED` there when given).
fn anonymous(addr: Option<u64>, len: u64) -> std::io::Result<u64> {
    let len = usize::try_from(len).map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    let mut flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE;
    if addr.is_some() {
        flags |= libc::MAP_FIXED;
    }
    // SAFETY: with no address the kernel picks fresh space; with one, the callers pass a
    // range inside this window's own reservation, which nothing else in the process uses
    // (the guest reaches it through KVM only), so replacing its pages breaks no Rust
    // reference.
    let p = unsafe {
        libc::mmap(
            addr.unwrap_or(0) as *mut libc::c_void,
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            flags,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(std::io::Error::last_os_error());
    }
    Ok(p as u64)
}

impl ShmWindow {
    /// Reserves a window of `size` bytes holding `regions` (from [`layout`]); KVM gets it
    /// once [`ShmWindow::place`] says where.
    pub fn new(
        regions: Vec<Region>,
        size: u64,
        slots: Arc<dyn MemorySlots>,
    ) -> Result<Self, ShmError> {
        let host = anonymous(None, size).map_err(|e| ShmError::Host {
            what: "reserve address space for shared memory",
            reason: e.to_string(),
        })?;
        Ok(Self {
            host,
            size,
            regions,
            slots,
            state: Mutex::new(State {
                placed: None,
                maps: BTreeMap::new(),
            }),
        })
    }

    /// The window's size in bytes (the BAR's).
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Its regions.
    pub fn regions(&self) -> &[Region] {
        &self.regions
    }

    /// Where the window is in this process (for tests and host-side readers).
    pub fn host_address(&self) -> u64 {
        self.host
    }

    /// Shows the window to the guest at `gpa` (its BAR moved there), or nowhere. A place
    /// KVM refuses (the middle of a BAR sizing, over RAM) leaves it unplaced until the
    /// next move; the guest then reads the BAR as empty MMIO.
    pub fn place(&self, gpa: Option<u64>) {
        let mut s = lock(&self.state);
        if s.placed.as_ref().map(|p| p.gpa) == gpa {
            return;
        }
        if let Some(old) = s.placed.take() {
            self.slots.remove(old.slot, old.gpa, self.size, self.host);
        }
        if let Some(gpa) = gpa {
            match self.slots.add(gpa, self.size, self.host) {
                Ok(slot) => s.placed = Some(Placed { slot, gpa }),
                Err(e) => log::debug!("shared memory window not placed at {gpa:#x}: {e}"),
            }
        }
    }

    /// Where the guest sees it now.
    pub fn placed_at(&self) -> Option<u64> {
        lock(&self.state).placed.as_ref().map(|p| p.gpa)
    }

    fn region(&self, shmid: u8) -> Result<Region, ShmError> {
        self.regions
            .iter()
            .find(|r| r.shmid == shmid)
            .copied()
            .ok_or(ShmError::NoRegion(shmid))
    }

    /// Takes every mapping out (the device was reset).
    pub fn clear(&self) {
        let mut s = lock(&self.state);
        for (offset, len) in std::mem::take(&mut s.maps) {
            if let Err(e) = anonymous(Some(self.host + offset), len) {
                log::warn!("cannot clear a shared memory mapping: {e}");
            }
        }
    }

    /// How many mappings are in place.
    pub fn mappings(&self) -> usize {
        lock(&self.state).maps.len()
    }
}

impl ShmMapper for ShmWindow {
    fn map(
        &self,
        shmid: u8,
        offset: u64,
        fd: BorrowedFd<'_>,
        fd_offset: u64,
        len: u64,
        writable: bool,
    ) -> Result<(), ShmError> {
        use std::os::fd::AsRawFd;
        let r = self.region(shmid)?;
        if len == 0 || (offset | fd_offset | len) % PAGE != 0 {
            return Err(ShmError::Unaligned {
                offset,
                fd_offset,
                len,
            });
        }
        if offset.checked_add(len).is_none_or(|end| end > r.len) {
            return Err(ShmError::Outside {
                shmid,
                offset,
                len,
                size: r.len,
            });
        }
        let (start, end) = (r.offset + offset, r.offset + offset + len);
        let mut s = lock(&self.state);
        // The mapping that starts last before `end` is the only one that can overlap.
        if let Some((&at, &l)) = s.maps.range(..end).next_back() {
            if at + l > start {
                return Err(ShmError::Overlap {
                    shmid,
                    offset: at - r.offset,
                });
            }
        }
        let (Ok(size), Ok(file_offset)) = (usize::try_from(len), libc::off_t::try_from(fd_offset))
        else {
            return Err(ShmError::Outside {
                shmid,
                offset,
                len,
                size: r.len,
            });
        };
        let prot = libc::PROT_READ | if writable { libc::PROT_WRITE } else { 0 };
        // SAFETY: the target range lies inside this window's reservation (checked against
        // the region above), so MAP_FIXED replaces only pages this window owns, which no
        // Rust reference points into; `fd` is a live descriptor for the call's duration.
        let p = unsafe {
            libc::mmap(
                (self.host + start) as *mut libc::c_void,
                size,
                prot,
                libc::MAP_SHARED | libc::MAP_FIXED,
                fd.as_raw_fd(),
                file_offset,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(ShmError::Host {
                what: "map the file",
                reason: std::io::Error::last_os_error().to_string(),
            });
        }
        s.maps.insert(start, len);
        Ok(())
    }

    fn unmap(&self, shmid: u8, offset: u64, len: u64) -> Result<(), ShmError> {
        let r = self.region(shmid)?;
        let start = r.offset.saturating_add(offset);
        let mut s = lock(&self.state);
        if offset >= r.len || s.maps.get(&start) != Some(&len) {
            return Err(ShmError::NotMapped { shmid, offset, len });
        }
        anonymous(Some(self.host + start), len).map_err(|e| ShmError::Host {
            what: "unmap the file",
            reason: e.to_string(),
        })?;
        s.maps.remove(&start);
        Ok(())
    }
}

impl Drop for ShmWindow {
    fn drop(&mut self) {
        self.place(None);
        if let Ok(len) = usize::try_from(self.size) {
            // SAFETY: the reservation was made by `new` with this size and KVM no longer
            // has it (place(None) removed the slot), so nothing refers to it.
            unsafe { libc::munmap(self.host as *mut libc::c_void, len) };
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
