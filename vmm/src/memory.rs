//! Guest RAM. It is backed by one memfd so that devices living in other processes
//! (vhost-user backends) can map the very same pages, and it is laid out around the 32-bit
//! MMIO hole ([`crate::arch::x86_64::layout`]).

use crate::arch::x86_64::layout::ram_ranges;
use std::ffi::CString;
use std::fs::File;
use std::os::fd::FromRawFd;
use vm_memory::{FileOffset, GuestAddress, GuestMemoryMmap};

/// Guest RAM as mapped into this process.
pub type GuestMemory = GuestMemoryMmap<()>;

/// What can go wrong while creating guest RAM.
#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    /// `memfd_create` failed.
    #[error("Could not create the guest memory file: {0}.")]
    Memfd(#[source] std::io::Error),
    /// The memfd could not be sized.
    #[error("Could not reserve {mib} MiB of guest memory: {source}.")]
    Size {
        /// Requested size.
        mib: u64,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Mapping the memfd failed.
    #[error("Could not map {mib} MiB of guest memory into this process: {reason}. Give the VM less memory.")]
    Map {
        /// Requested size.
        mib: u64,
        /// Why.
        reason: String,
    },
}

/// Guest RAM together with the file that backs it.
#[derive(Debug)]
pub struct GuestRam {
    /// The mapping the VMM uses.
    pub memory: GuestMemory,
    /// The memfd, to share with other processes.
    pub file: File,
}

/// Creates `bytes` of guest RAM, memfd-backed, laid out around the MMIO hole.
pub fn create(bytes: u64) -> Result<GuestRam, MemoryError> {
    let mib = bytes >> 20;
    let name = CString::new("phyllome-guest-ram").expect("static name has no NUL");
    // SAFETY: `name` is a valid NUL-terminated string that outlives the call; the flags
    // are valid for memfd_create. The return value is checked before use.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(MemoryError::Memfd(std::io::Error::last_os_error()));
    }
    // SAFETY: `fd` was just returned by memfd_create, is valid, and nothing else owns it.
    let file = unsafe { File::from_raw_fd(fd) };
    file.set_len(bytes)
        .map_err(|source| MemoryError::Size { mib, source })?;

    let mut offset = 0u64;
    let mut regions = Vec::new();
    for (start, len) in ram_ranges(bytes) {
        let clone = file.try_clone().map_err(MemoryError::Memfd)?;
        let len_usize = usize::try_from(len).map_err(|_| MemoryError::Map {
            mib,
            reason: "the size does not fit this host's address space".into(),
        })?;
        regions.push((
            GuestAddress(start),
            len_usize,
            Some(FileOffset::new(clone, offset)),
        ));
        offset += len;
    }
    let memory =
        GuestMemoryMmap::from_ranges_with_files(regions).map_err(|e| MemoryError::Map {
            mib,
            reason: e.to_string(),
        })?;
    Ok(GuestRam { memory, file })
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_memory::{Bytes, GuestMemoryBackend, GuestMemoryRegion};

    #[test]
    fn regions_follow_the_layout_and_share_one_file() {
        let ram = create(64 << 20).expect("64 MiB memfd");
        let regions: Vec<_> = ram
            .memory
            .iter()
            .map(|r| (r.start_addr().0, r.len()))
            .collect();
        assert_eq!(regions, vec![(0, 64 << 20)]);
        assert_eq!(ram.file.metadata().map(|m| m.len()).ok(), Some(64 << 20));
    }

    #[test]
    fn writes_through_the_mapping_land_in_the_memfd() {
        use std::io::{Read, Seek, SeekFrom};
        let ram = create(4 << 20).expect("4 MiB memfd");
        ram.memory
            .write_slice(b"phyllome", GuestAddress(0x1234))
            .expect("in range");
        let mut f = ram.file.try_clone().expect("dup");
        f.seek(SeekFrom::Start(0x1234)).expect("seek");
        let mut buf = [0u8; 8];
        f.read_exact(&mut buf).expect("read");
        assert_eq!(&buf, b"phyllome");
    }

    #[test]
    fn memory_beyond_3gib_continues_above_4gib_in_the_same_file() {
        use std::io::{Read, Seek, SeekFrom};
        let ram = create(5 << 30).expect("sparse 5 GiB memfd");
        let regions: Vec<_> = ram
            .memory
            .iter()
            .map(|r| (r.start_addr().0, r.len()))
            .collect();
        assert_eq!(regions, vec![(0, 3 << 30), (4 << 30, 2 << 30)]);
        assert!(
            !ram.memory.address_in_range(GuestAddress(0xfee0_0000)),
            "the MMIO hole has no RAM"
        );
        ram.memory
            .write_slice(b"high", GuestAddress(4 << 30))
            .expect("in range");
        let mut f = ram.file.try_clone().expect("dup");
        f.seek(SeekFrom::Start(3 << 30)).expect("seek");
        let mut buf = [0u8; 4];
        f.read_exact(&mut buf).expect("read");
        assert_eq!(&buf, b"high");
    }
}
