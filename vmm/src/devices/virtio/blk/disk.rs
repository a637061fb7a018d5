//! Disk images: opening (with an advisory lock, so two VMs never write the same image:
//! shared for read-only users, exclusive otherwise), telling raw from qcow2, and the raw
//! format itself: positioned reads and writes, flush to stable storage (fdatasync),
//! discard (punching holes) and write-zeroes.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
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
}

/// An open raw image.
#[derive(Debug)]
pub struct RawDisk {
    file: File,
    size: u64,
    readonly: bool,
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
        match format {
            ImageFormat::Raw => RawDisk::from_locked(file, path, readonly).map(Self::Raw),
            ImageFormat::Qcow2 => {
                super::qcow2::Qcow2Disk::open(file, path, readonly).map(Self::Qcow2)
            }
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
        })
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
