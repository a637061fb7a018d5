//! The host-visible shared memory region: the window of guest-physical space (virtio
//! shared memory region 1, behind a PCI BAR) where mappable blob resources appear, so the
//! guest's Vulkan (venus) and GL drivers read and write the renderer's memory directly.
//! This module decides where a guest's request may land (inside the window, page aligned,
//! over no other mapping) and remembers which resource sits where; putting the host's
//! pages there is a [`RegionMapper`]'s job: [`SharedRegion`] hands a blob's memory, as a
//! file, to the transport's shared memory window (directly, or through vhost-user's
//! `SHMEM_MAP` from a GPU process).

use crate::devices::virtio::shm::ShmMapper;
use std::collections::BTreeMap;
use std::os::fd::BorrowedFd;
use std::sync::Arc;

/// Mappings start on page boundaries and take whole pages.
pub const PAGE: u64 = 4096;

/// The virtio shared memory ID of the host-visible region.
pub const SHMEM_ID_HOST_VISIBLE: u8 = 1;

/// Where a blob's memory is: a file (a dma-buf or shared memory, which any process can
/// map), or only an address in this process (what llvmpipe's GL buffers are).
#[derive(Debug, Clone, Copy)]
pub enum BlobMemory<'a> {
    /// The blob's pages, from offset 0 of this file.
    File(BorrowedFd<'a>),
    /// The blob's pages at this address of this process.
    Pointer(u64),
}

/// Puts host memory into the guest's view of the region, and takes it out.
pub trait RegionMapper: Send {
    /// Shows `len` bytes of `memory` at `offset` in the region.
    fn map(&mut self, offset: u64, memory: BlobMemory<'_>, len: u64) -> Result<(), String>;
    /// Takes the `len` bytes at `offset` out again.
    fn unmap(&mut self, offset: u64, len: u64) -> Result<(), String>;
}

/// The region as the transport's shared memory region 1: blob files go there.
pub struct SharedRegion(pub Arc<dyn ShmMapper>);

impl std::fmt::Debug for SharedRegion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedRegion")
    }
}

impl RegionMapper for SharedRegion {
    fn map(&mut self, offset: u64, memory: BlobMemory<'_>, len: u64) -> Result<(), String> {
        match memory {
            BlobMemory::File(fd) => self
                .0
                .map(SHMEM_ID_HOST_VISIBLE, offset, fd, 0, len, true)
                .map_err(|e| e.to_string()),
            BlobMemory::Pointer(_) => Err("the renderer keeps this blob in its own memory, \
                 not in a file, so it cannot be shown to the guest (a GPU driver that \
                 exports dma-bufs can)"
                .into()),
        }
    }

    fn unmap(&mut self, offset: u64, len: u64) -> Result<(), String> {
        self.0
            .unmap(SHMEM_ID_HOST_VISIBLE, offset, len)
            .map_err(|e| e.to_string())
    }
}

/// Why a mapping was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegionError {
    /// It would reach past the region.
    #[error(
        "A mapping of {len} bytes at {offset:#x} does not fit the {size}-byte host-visible region."
    )]
    Outside {
        /// Where it was asked for.
        offset: u64,
        /// Its length.
        len: u64,
        /// The region's size.
        size: u64,
    },
    /// The offset is not on a page boundary.
    #[error("The mapping offset {0:#x} is not on a page boundary.")]
    Unaligned(u64),
    /// Another resource's mapping is there.
    #[error("The mapping would cover resource {0}'s.")]
    Overlap(u32),
    /// The resource is mapped already.
    #[error("Resource {0} is mapped already.")]
    AlreadyMapped(u32),
    /// The resource is not mapped.
    #[error("Resource {0} is not mapped.")]
    NotMapped(u32),
    /// The host side failed.
    #[error("The host could not map it: {0}.")]
    Mapper(String),
}

/// One mapping: where, how long, and whose.
#[derive(Debug, Clone, Copy)]
struct Mapping {
    len: u64,
    resource: u32,
}

/// The region: its size, its mapper and what is mapped where (by offset).
pub struct HostVisible {
    size: u64,
    mapper: Box<dyn RegionMapper>,
    maps: BTreeMap<u64, Mapping>,
}

impl std::fmt::Debug for HostVisible {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostVisible")
            .field("size", &self.size)
            .field("mappings", &self.maps.len())
            .finish_non_exhaustive()
    }
}

impl HostVisible {
    /// A region of `size` bytes (a whole number of pages) whose pages `mapper` places.
    pub fn new(size: u64, mapper: Box<dyn RegionMapper>) -> Self {
        Self {
            size: size / PAGE * PAGE,
            mapper,
            maps: BTreeMap::new(),
        }
    }

    /// Its size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Whether `resource` is mapped.
    pub fn is_mapped(&self, resource: u32) -> bool {
        self.maps.values().any(|m| m.resource == resource)
    }

    /// Maps `len` bytes of `memory` for `resource` at `offset`, once checked.
    pub fn map(
        &mut self,
        resource: u32,
        offset: u64,
        memory: BlobMemory<'_>,
        len: u64,
    ) -> Result<(), RegionError> {
        if self.is_mapped(resource) {
            return Err(RegionError::AlreadyMapped(resource));
        }
        if offset % PAGE != 0 {
            return Err(RegionError::Unaligned(offset));
        }
        let outside = RegionError::Outside {
            offset,
            len,
            size: self.size,
        };
        let pages = len
            .div_ceil(PAGE)
            .checked_mul(PAGE)
            .ok_or(outside.clone())?;
        let end = offset.checked_add(pages).ok_or(outside.clone())?;
        if len == 0 || end > self.size {
            return Err(outside);
        }
        // The nearest mapping below must end before us; none may start inside us.
        if let Some((start, m)) = self.maps.range(..=offset).next_back() {
            if start + m.len.div_ceil(PAGE) * PAGE > offset {
                return Err(RegionError::Overlap(m.resource));
            }
        }
        if let Some((_, m)) = self.maps.range(offset..end).next() {
            return Err(RegionError::Overlap(m.resource));
        }
        self.mapper
            .map(offset, memory, pages)
            .map_err(RegionError::Mapper)?;
        self.maps.insert(
            offset,
            Mapping {
                len: pages,
                resource,
            },
        );
        Ok(())
    }

    /// Takes `resource`'s mapping out.
    pub fn unmap(&mut self, resource: u32) -> Result<(), RegionError> {
        let (&offset, m) = self
            .maps
            .iter()
            .find(|(_, m)| m.resource == resource)
            .ok_or(RegionError::NotMapped(resource))?;
        let len = m.len;
        self.maps.remove(&offset);
        self.mapper.unmap(offset, len).map_err(RegionError::Mapper)
    }

    /// Takes every mapping out (a device reset).
    pub fn clear(&mut self) {
        for (offset, m) in std::mem::take(&mut self.maps) {
            if let Err(e) = self.mapper.unmap(offset, m.len) {
                log::warn!(
                    "cannot unmap resource {} from the host-visible region: {e}",
                    m.resource
                );
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Records what it was asked to do.
    #[derive(Clone, Default)]
    pub(crate) struct Recorder {
        pub(crate) log: Arc<Mutex<Vec<String>>>,
        /// Read the first byte behind each pointer (a renderer's live mapping).
        pub(crate) touch: bool,
    }

    impl RegionMapper for Recorder {
        fn map(&mut self, offset: u64, memory: BlobMemory<'_>, len: u64) -> Result<(), String> {
            let how = match memory {
                BlobMemory::Pointer(host) => {
                    if self.touch {
                        // SAFETY: with `touch`, `host` is the renderer's live mapping of
                        // at least `len` (> 0) bytes.
                        let _first = unsafe { std::ptr::read_volatile(host as *const u8) };
                    }
                    "pointer"
                }
                BlobMemory::File(_) => "file",
            };
            self.log
                .lock()
                .unwrap()
                .push(format!("map {offset:#x}+{len:#x} {how}"));
            Ok(())
        }
        fn unmap(&mut self, offset: u64, len: u64) -> Result<(), String> {
            self.log
                .lock()
                .unwrap()
                .push(format!("unmap {offset:#x}+{len:#x}"));
            Ok(())
        }
    }

    #[test]
    fn mappings_stay_inside_aligned_and_apart() {
        let seen = Recorder::default();
        let mut r = HostVisible::new(16 * PAGE, Box::new(seen.clone()));
        r.map(1, 0, BlobMemory::Pointer(0x1000), 2 * PAGE).unwrap();
        // A partial page takes the whole page.
        r.map(2, 2 * PAGE, BlobMemory::Pointer(0x9000), 100)
            .unwrap();
        assert_eq!(
            r.map(3, PAGE, BlobMemory::Pointer(0x1), PAGE),
            Err(RegionError::Overlap(1))
        );
        assert_eq!(
            r.map(3, 2 * PAGE, BlobMemory::Pointer(0x1), PAGE),
            Err(RegionError::Overlap(2))
        );
        assert_eq!(
            r.map(3, 0, BlobMemory::Pointer(0x1), 16 * PAGE),
            Err(RegionError::Overlap(1))
        );
        assert_eq!(
            r.map(3, 5, BlobMemory::Pointer(0x1), PAGE),
            Err(RegionError::Unaligned(5))
        );
        assert!(matches!(
            r.map(3, 15 * PAGE, BlobMemory::Pointer(0x1), 2 * PAGE),
            Err(RegionError::Outside { .. })
        ));
        assert!(matches!(
            r.map(3, u64::MAX - PAGE + 1, BlobMemory::Pointer(0x1), 2 * PAGE),
            Err(RegionError::Outside { .. })
        ));
        assert!(matches!(
            r.map(3, 4 * PAGE, BlobMemory::Pointer(0x1), 0),
            Err(RegionError::Outside { .. })
        ));
        assert_eq!(
            r.map(1, 8 * PAGE, BlobMemory::Pointer(0x1), PAGE),
            Err(RegionError::AlreadyMapped(1))
        );
        r.map(3, 15 * PAGE, BlobMemory::Pointer(0x1), PAGE).unwrap();
        assert_eq!(r.unmap(4), Err(RegionError::NotMapped(4)));
        r.unmap(1).unwrap();
        // Its pages are free again.
        r.map(4, PAGE, BlobMemory::Pointer(0x1), PAGE).unwrap();
        r.clear();
        assert!(!r.is_mapped(2));
        assert_eq!(
            *seen.log.lock().unwrap(),
            [
                "map 0x0+0x2000 pointer",
                "map 0x2000+0x1000 pointer",
                "map 0xf000+0x1000 pointer",
                "unmap 0x0+0x2000",
                "map 0x1000+0x1000 pointer",
                "unmap 0x1000+0x1000",
                "unmap 0x2000+0x1000",
                "unmap 0xf000+0x1000",
            ]
        );
    }

    /// The production mapper hands files to region 1 of the transport's window and
    /// refuses memory that is only an address in this process, saying why.
    #[test]
    fn blob_files_go_to_shared_memory_region_1_and_pointers_are_refused() {
        use crate::devices::virtio::shm::{layout, tests::Slots, ShmWindow};
        use std::io::Write;
        use std::os::fd::AsFd;
        let (regions, size) = layout(&[(SHMEM_ID_HOST_VISIBLE, 4 * PAGE)]);
        let window = Arc::new(ShmWindow::new(regions, size, Arc::new(Slots::default())).unwrap());
        let mut r = HostVisible::new(4 * PAGE, Box::new(SharedRegion(window.clone())));
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(b"blob").unwrap();
        file.set_len(PAGE).unwrap();
        r.map(7, PAGE, BlobMemory::File(file.as_fd()), 100).unwrap();
        // SAFETY: inside the window's reservation, which `window` keeps mapped.
        let seen =
            unsafe { std::slice::from_raw_parts((window.host_address() + PAGE) as *const u8, 4) };
        assert_eq!(seen, b"blob");
        let err = r
            .map(8, 2 * PAGE, BlobMemory::Pointer(0x1000), PAGE)
            .unwrap_err();
        assert!(
            err.to_string().contains("cannot be shown to the guest"),
            "{err}"
        );
        assert!(!r.is_mapped(8));
        r.unmap(7).unwrap();
        assert_eq!(window.mappings(), 0);
    }
}
