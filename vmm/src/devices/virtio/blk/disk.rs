//! Disk images: opening (with an advisory lock, so two VMs never write the same image:
//! shared for read-only users, exclusive otherwise), telling raw from qcow2, and the raw
//! format itself: positioned reads and writes, flush to stable storage (fdatasync),
//! discard (punching holes) and write-zeroes. A raw image may also bypass the host's page
//! cache (`cache=none`, as QEMU's): the guest keeps its own cache, so the host's would hold
//! the same data twice.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Bytes in a virtio-blk sector.
pub const SECTOR_SIZE: u64 = 512;

/// Why an image could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    /// Missing or unreadable.
    #[error("Cannot open the disk image {}: {source}.", path.display())]
    Open {
        /// The image.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A writable disk on a file we may only read.
    #[error("The disk image {} is read-only for this user; attach it read-only or fix its permissions.", path.display())]
    NotWritable {
        /// The image.
        path: PathBuf,
    },
    /// Another process holds it.
    #[error("The disk image {} is in use by another program (it is locked); stop that VM first.", path.display())]
    Locked {
        /// The image.
        path: PathBuf,
    },
    /// A qcow2 image whose header or tables do not make sense.
    #[error("The disk image {} is damaged or not a valid qcow2 image ({reason}); check it with `qemu-img check`.", path.display())]
    Corrupt {
        /// The image.
        path: PathBuf,
        /// What the qcow2 driver said.
        reason: String,
    },
    /// A qcow2 feature we do not open.
    #[error("The disk image {} uses {what}, which Phyllome does not open; convert it with `qemu-img convert -O qcow2`.", path.display())]
    Unsupported {
        /// The image.
        path: PathBuf,
        /// The feature.
        what: String,
    },
    /// A new image could not be made.
    #[error("Cannot create the disk image {}: {source}.", path.display())]
    Create {
        /// The image.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Not a regular file or block device.
    #[error("{} is not a disk image: it is a folder or a special file.", path.display())]
    NotAFile {
        /// The path.
        path: PathBuf,
    },
    /// `cache=none` asked of a file system or a format that cannot do it.
    #[error("The disk image {} cannot bypass the host's cache: {reason}; use cache=writeback.", path.display())]
    NoDirectIo {
        /// The image.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// Whether a disk's data goes through the host's page cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheMode {
    /// Through the page cache; FLUSH makes it durable (fdatasync). The default.
    #[default]
    Writeback,
    /// Around it (`O_DIRECT`), for raw images: the guest's data is cached once, by the
    /// guest. Requests the file system cannot take directly (misaligned buffers) still go
    /// through the cache, which the kernel keeps coherent with direct I/O.
    None,
}

impl std::str::FromStr for CacheMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "writeback" => Ok(Self::Writeback),
            "none" => Ok(Self::None),
            other => Err(format!(
                "'{other}' is not a cache mode; use writeback or none"
            )),
        }
    }
}

/// The second descriptor of a `cache=none` image, opened `O_DIRECT`, and what it needs.
#[derive(Debug)]
struct Direct {
    file: File,
    /// Every buffer's address must be a multiple of this.
    mem_align: usize,
    /// Every file offset and length must be a multiple of this.
    offset_align: usize,
}

/// An open raw image.
#[derive(Debug)]
pub struct RawDisk {
    file: File,
    size: u64,
    readonly: bool,
    direct: Option<Direct>,
}

/// How an image's bytes map to the guest's disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageFormat {
    /// The file is the disk, byte for byte.
    Raw,
    /// QEMU's copy-on-write format.
    Qcow2,
}

impl std::str::FromStr for ImageFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "raw" => Ok(Self::Raw),
            "qcow2" => Ok(Self::Qcow2),
            other => Err(format!("'{other}' is not a disk format; use raw or qcow2")),
        }
    }
}

/// An open disk image of either format.
#[derive(Debug)]
pub enum Disk {
    /// A raw image.
    Raw(RawDisk),
    /// A qcow2 image.
    Qcow2(super::qcow2::Qcow2Disk),
}

impl Disk {
    /// Opens and locks `path` as `format`, or as what its first bytes say when `None`.
    pub fn open(
        path: &Path,
        readonly: bool,
        format: Option<ImageFormat>,
    ) -> Result<Self, DiskError> {
        Self::open_cached(path, readonly, format, CacheMode::Writeback)
    }

    /// Like [`Disk::open`], with the data through the host's cache or around it.
    pub fn open_cached(
        path: &Path,
        readonly: bool,
        format: Option<ImageFormat>,
        cache: CacheMode,
    ) -> Result<Self, DiskError> {
        let file = open_locked(path, readonly)?;
        let format = match format {
            Some(f) => f,
            None => {
                let mut magic = [0u8; 4];
                match file.read_exact_at(&mut magic, 0) {
                    Ok(()) if magic == super::qcow2::MAGIC => ImageFormat::Qcow2,
                    _ => ImageFormat::Raw,
                }
            }
        };
        match (format, cache) {
            (ImageFormat::Raw, CacheMode::Writeback) => {
                RawDisk::from_locked(file, path, readonly).map(Self::Raw)
            }
            (ImageFormat::Raw, CacheMode::None) => RawDisk::from_locked(file, path, readonly)?
                .bypass_cache(path)
                .map(Self::Raw),
            (ImageFormat::Qcow2, CacheMode::Writeback) => {
                super::qcow2::Qcow2Disk::open(file, path, readonly).map(Self::Qcow2)
            }
            (ImageFormat::Qcow2, CacheMode::None) => Err(DiskError::NoDirectIo {
                path: path.to_owned(),
                reason: "cache=none is for raw images, and this one is qcow2".into(),
            }),
        }
    }

    /// Size in bytes the guest sees (whole sectors).
    pub fn size(&self) -> u64 {
        match self {
            Self::Raw(d) => d.size(),
            Self::Qcow2(d) => d.size(),
        }
    }

    /// Whether writes are refused.
    pub fn readonly(&self) -> bool {
        match self {
            Self::Raw(d) => d.readonly(),
            Self::Qcow2(d) => d.readonly(),
        }
    }

    /// Makes every completed write durable.
    pub fn flush(&self) -> std::io::Result<()> {
        match self {
            Self::Raw(d) => d.flush(),
            Self::Qcow2(d) => d.flush(),
        }
    }

    /// Deallocates a range (it reads back as zeroes).
    pub fn discard(&mut self, offset: u64, len: u64) -> std::io::Result<()> {
        match self {
            Self::Raw(d) => d.discard(offset, len),
            Self::Qcow2(d) => d.discard(offset, len),
        }
    }

    /// Zeroes a range, deallocating it where allowed and possible.
    pub fn write_zeroes(&mut self, offset: u64, len: u64, unmap: bool) -> std::io::Result<()> {
        match self {
            Self::Raw(d) => d.write_zeroes(offset, len, unmap),
            Self::Qcow2(d) => d.write_zeroes(offset, len, unmap),
        }
    }
}

impl From<RawDisk> for Disk {
    fn from(d: RawDisk) -> Self {
        Self::Raw(d)
    }
}

/// Makes a new, empty disk image of `size` bytes at `path`, which must not exist: a sparse
/// raw file (it takes space only as the guest writes) or a qcow2 image. A half-made image
/// is removed.
pub fn create_image(path: &Path, size: u64, format: ImageFormat) -> Result<(), DiskError> {
    match format {
        ImageFormat::Qcow2 => super::qcow2::Qcow2Disk::create(path, size),
        ImageFormat::Raw => {
            let create_err = |source| DiskError::Create {
                path: path.to_owned(),
                source,
            };
            let file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
                .map_err(create_err)?;
            if let Err(e) = file.set_len(size).and_then(|()| file.sync_all()) {
                let _ = std::fs::remove_file(path);
                return Err(create_err(e));
            }
            Ok(())
        }
    }
}

/// What direct I/O on `file` needs: (buffer address alignment, file offset and length
/// alignment), as the kernel reports it (statx `STATX_DIOALIGN`, Linux 6.1 and later).
fn dio_alignment(file: &File) -> Option<(usize, usize)> {
    // SAFETY: statx is plain data, for which all zeroes is a valid value.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: a valid descriptor, an empty path with AT_EMPTY_PATH (the descriptor itself),
    // and a pointer to a statx we own for the kernel to fill.
    let rc = unsafe {
        libc::statx(
            file.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            libc::STATX_DIOALIGN,
            &mut stx,
        )
    };
    if rc != 0 || stx.stx_mask & libc::STATX_DIOALIGN == 0 || stx.stx_dio_offset_align == 0 {
        return None;
    }
    Some((
        usize::try_from(stx.stx_dio_mem_align).ok()?.max(1),
        usize::try_from(stx.stx_dio_offset_align).ok()?,
    ))
}

/// Opens `path` for reading (and writing unless `readonly`) and takes the advisory lock.
fn open_locked(path: &Path, readonly: bool) -> Result<File, DiskError> {
    let open_err = |source| DiskError::Open {
        path: path.to_owned(),
        source,
    };
    let file = match OpenOptions::new().read(true).write(!readonly).open(path) {
        Ok(f) => f,
        Err(e) if !readonly && e.kind() == std::io::ErrorKind::PermissionDenied => {
            return Err(DiskError::NotWritable {
                path: path.to_owned(),
            })
        }
        Err(e) if e.raw_os_error() == Some(libc::EROFS) => {
            return Err(DiskError::NotWritable {
                path: path.to_owned(),
            })
        }
        Err(e) => return Err(open_err(e)),
    };
    let meta = file.metadata().map_err(open_err)?;
    if meta.is_dir() {
        return Err(DiskError::NotAFile {
            path: path.to_owned(),
        });
    }
    let lock = if readonly {
        libc::LOCK_SH
    } else {
        libc::LOCK_EX
    };
    // SAFETY: flock on a file descriptor we own; it has no memory-safety preconditions.
    if unsafe { libc::flock(file.as_raw_fd(), lock | libc::LOCK_NB) } != 0 {
        return Err(DiskError::Locked {
            path: path.to_owned(),
        });
    }
    Ok(file)
}

impl RawDisk {
    /// Opens and locks `path` as a raw image.
    pub fn open(path: &Path, readonly: bool) -> Result<Self, DiskError> {
        Self::from_locked(open_locked(path, readonly)?, path, readonly)
    }

    fn from_locked(file: File, path: &Path, readonly: bool) -> Result<Self, DiskError> {
        let open_err = |source| DiskError::Open {
            path: path.to_owned(),
            source,
        };
        let size = {
            use std::io::{Seek, SeekFrom};
            let mut f = &file;
            f.seek(SeekFrom::End(0)).map_err(open_err)?
        };
        Ok(Self {
            file,
            size,
            readonly,
            direct: None,
        })
    }

    /// Opens the image a second time, `O_DIRECT`, for the guest's reads and writes.
    fn bypass_cache(mut self, path: &Path) -> Result<Self, DiskError> {
        let refused = |reason: String| DiskError::NoDirectIo {
            path: path.to_owned(),
            reason,
        };
        let file = OpenOptions::new()
            .read(true)
            .write(!self.readonly)
            .custom_flags(libc::O_DIRECT)
            .open(path)
            .map_err(|e| match e.raw_os_error() {
                Some(libc::EINVAL) => refused("its file system does not do direct I/O".into()),
                _ => refused(e.to_string()),
            })?;
        let (mem_align, offset_align) = dio_alignment(&file).unwrap_or((4096, 4096));
        self.direct = Some(Direct {
            file,
            mem_align,
            offset_align,
        });
        Ok(self)
    }

    /// Whether the guest's data bypasses the host's cache.
    pub fn cache(&self) -> CacheMode {
        if self.direct.is_some() {
            CacheMode::None
        } else {
            CacheMode::Writeback
        }
    }

    /// The descriptor to move `iovecs` at `offset` with: the direct one where this image
    /// bypasses the cache and the request is aligned as direct I/O needs, else the cached one.
    pub fn data_fd(&self, iovecs: &[libc::iovec], offset: u64) -> std::os::fd::RawFd {
        match &self.direct {
            Some(d)
                if offset % d.offset_align as u64 == 0
                    && iovecs.iter().all(|v| {
                        v.iov_base as usize % d.mem_align == 0 && v.iov_len % d.offset_align == 0
                    }) =>
            {
                d.file.as_raw_fd()
            }
            _ => self.file.as_raw_fd(),
        }
    }

    /// Size in bytes (whole sectors).
    pub fn size(&self) -> u64 {
        self.size / SECTOR_SIZE * SECTOR_SIZE
    }

    /// The file descriptor, for vectored I/O straight into guest memory.
    pub fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.file.as_raw_fd()
    }

    /// Whether writes are refused.
    pub fn readonly(&self) -> bool {
        self.readonly
    }

    /// Reads exactly `buf.len()` bytes at `offset`.
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }

    /// Writes all of `buf` at `offset`.
    pub fn write_at(&self, buf: &[u8], offset: u64) -> std::io::Result<()> {
        self.file.write_all_at(buf, offset)
    }

    /// Makes every completed write durable.
    pub fn flush(&self) -> std::io::Result<()> {
        self.file.sync_data()
    }

    /// Deallocates a range (it reads back as zeroes).
    pub fn discard(&self, offset: u64, len: u64) -> std::io::Result<()> {
        self.fallocate(
            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
            offset,
            len,
        )
    }

    /// Zeroes a range, deallocating it where the filesystem can.
    pub fn write_zeroes(&self, offset: u64, len: u64, unmap: bool) -> std::io::Result<()> {
        if unmap && self.discard(offset, len).is_ok() {
            return Ok(());
        }
        if self
            .fallocate(
                libc::FALLOC_FL_ZERO_RANGE | libc::FALLOC_FL_KEEP_SIZE,
                offset,
                len,
            )
            .is_ok()
        {
            return Ok(());
        }
        let zeroes = vec![0u8; 1 << 20];
        let mut done = 0;
        while done < len {
            let n = usize::try_from(len - done).map_or(zeroes.len(), |left| left.min(zeroes.len()));
            self.write_at(&zeroes[..n], offset + done)?;
            done += n as u64;
        }
        Ok(())
    }

    fn fallocate(&self, mode: libc::c_int, offset: u64, len: u64) -> std::io::Result<()> {
        let (Ok(off), Ok(len)) = (libc::off_t::try_from(offset), libc::off_t::try_from(len)) else {
            return Err(std::io::Error::from_raw_os_error(libc::EINVAL));
        };
        // SAFETY: fallocate on a file descriptor we own, with checked non-negative ranges.
        if unsafe { libc::fallocate(self.file.as_raw_fd(), mode, off, len) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A page-aligned buffer, as direct I/O wants.
    #[repr(C, align(4096))]
    struct Page([u8; 4096]);

    fn iovec(ptr: *mut u8, len: usize) -> libc::iovec {
        libc::iovec {
            iov_base: ptr.cast(),
            iov_len: len,
        }
    }

    #[test]
    fn cache_none_moves_aligned_requests_around_the_page_cache_and_the_rest_through_it() {
        let image = tempfile::NamedTempFile::new_in("/var/tmp").unwrap();
        image.as_file().set_len(1 << 20).unwrap();
        let Disk::Raw(d) =
            Disk::open_cached(image.path(), false, Some(ImageFormat::Raw), CacheMode::None)
                .unwrap()
        else {
            panic!("a raw image")
        };
        assert_eq!(d.cache(), CacheMode::None);
        // The direct descriptor is the second one, opened O_DIRECT.
        let mut page = Page([0x3c; 4096]);
        let aligned = [iovec(page.0.as_mut_ptr(), 4096)];
        let fd = d.data_fd(&aligned, 8192);
        assert_ne!(fd, d.as_raw_fd());
        // SAFETY: F_GETFL on a descriptor the disk owns.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
        assert_ne!(flags & libc::O_DIRECT, 0);
        assert_eq!(
            super::super::iov::transfer(fd, aligned.to_vec(), 8192, true).unwrap(),
            4096
        );
        // Misaligned: a length that is no whole block, an offset inside a block: the cached
        // descriptor.
        let odd = [iovec(page.0[1..].as_mut_ptr(), 100)];
        assert_eq!(d.data_fd(&odd, 8192), d.as_raw_fd());
        assert_eq!(d.data_fd(&aligned, 8192 + 100), d.as_raw_fd());
        // Both see the same bytes: the kernel keeps the cache coherent with direct I/O.
        let mut back = vec![0u8; 4096];
        d.read_at(&mut back, 8192).unwrap();
        assert_eq!(back, vec![0x3c; 4096]);
        let plain = Disk::open(image.path(), true, None);
        assert!(plain.is_err(), "still locked by the writer");
    }

    #[test]
    fn cache_none_is_refused_for_qcow2_and_writeback_has_no_second_descriptor() {
        let dir = tempfile::tempdir().unwrap();
        let q = dir.path().join("a.qcow2");
        create_image(&q, 1 << 20, ImageFormat::Qcow2).unwrap();
        let e = Disk::open_cached(&q, false, None, CacheMode::None).unwrap_err();
        assert!(matches!(e, DiskError::NoDirectIo { .. }));
        assert!(e.to_string().contains("use cache=writeback"), "{e}");
        let raw = dir.path().join("a.img");
        create_image(&raw, 1 << 20, ImageFormat::Raw).unwrap();
        let Disk::Raw(d) = Disk::open(&raw, false, None).unwrap() else {
            panic!("a raw image")
        };
        assert_eq!(d.cache(), CacheMode::Writeback);
        let mut page = Page([0; 4096]);
        assert_eq!(
            d.data_fd(&[iovec(page.0.as_mut_ptr(), 4096)], 0),
            d.as_raw_fd()
        );
        assert_eq!("none".parse::<CacheMode>(), Ok(CacheMode::None));
        assert!("unsafe"
            .parse::<CacheMode>()
            .unwrap_err()
            .contains("writeback or none"));
    }

    #[test]
    fn new_images_are_sparse_of_their_size_and_never_replace_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("a.img");
        create_image(&raw, 8 << 30, ImageFormat::Raw).unwrap();
        let meta = std::fs::metadata(&raw).unwrap();
        assert_eq!(meta.len(), 8 << 30);
        assert!(
            std::os::unix::fs::MetadataExt::blocks(&meta) < 64,
            "not sparse"
        );
        let q = dir.path().join("a.qcow2");
        create_image(&q, 8 << 30, ImageFormat::Qcow2).unwrap();
        let opened = Disk::open(&q, false, None).unwrap();
        assert_eq!(opened.size(), 8 << 30);
        assert!(std::fs::metadata(&q).unwrap().len() < 1 << 20);
        std::fs::write(dir.path().join("b.img"), b"mine").unwrap();
        for format in [ImageFormat::Raw, ImageFormat::Qcow2] {
            assert!(matches!(
                create_image(&dir.path().join("b.img"), 1 << 30, format),
                Err(DiskError::Create { .. })
            ));
        }
        assert_eq!(std::fs::read(dir.path().join("b.img")).unwrap(), b"mine");
    }

    fn image(bytes: u64) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        f.as_file().set_len(bytes).unwrap();
        f
    }

    #[test]
    fn missing_image_is_a_clear_error() {
        let e = RawDisk::open(Path::new("/nonexistent/disk.img"), false).unwrap_err();
        assert!(
            matches!(e, DiskError::Open { .. }) && e.to_string().contains("/nonexistent/disk.img")
        );
    }

    #[test]
    fn second_writer_is_refused_but_readers_share() {
        let f = image(1 << 20);
        let _a = RawDisk::open(f.path(), false).unwrap();
        assert!(matches!(
            RawDisk::open(f.path(), false),
            Err(DiskError::Locked { .. })
        ));
        assert!(matches!(
            RawDisk::open(f.path(), true),
            Err(DiskError::Locked { .. })
        ));
        drop(_a);
        let _r1 = RawDisk::open(f.path(), true).unwrap();
        let _r2 = RawDisk::open(f.path(), true).unwrap();
        assert!(matches!(
            RawDisk::open(f.path(), false),
            Err(DiskError::Locked { .. })
        ));
    }

    #[test]
    fn folder_is_not_a_disk() {
        let d = tempfile::tempdir().unwrap();
        assert!(matches!(
            RawDisk::open(d.path(), true),
            Err(DiskError::NotAFile { .. })
        ));
    }

    #[test]
    fn discard_and_write_zeroes_read_back_as_zero() {
        let f = image(1 << 20);
        let d = RawDisk::open(f.path(), false).unwrap();
        d.write_at(&[0xaa; 8192], 4096).unwrap();
        d.discard(4096, 4096).unwrap();
        d.write_zeroes(8192, 4096, false).unwrap();
        let mut buf = [1u8; 8192];
        d.read_at(&mut buf, 4096).unwrap();
        assert!(buf.iter().all(|b| *b == 0));
        assert_eq!(d.size(), 1 << 20);
    }
}
