//! qcow2 images, through the `imago` crate: sparse, growing files that most virtualization
//! tools exchange. We open them on a file we have already locked (see [`super::disk`]) and
//! refuse backing files and external data files: opening another file named inside an image
//! would let an image (or a guest that wrote one) read any file this user can.

use super::disk::DiskError;
use imago::file::File as ImagoFile;
use imago::qcow2::Qcow2;
use imago::{
    DenyImplicitOpenGate, FormatAccess, FormatCreateBuilder, FormatDriverBuilder,
    StorageOpenOptions,
};
use std::path::{Path, PathBuf};

/// The first four bytes of every qcow2 file.
pub const MAGIC: [u8; 4] = *b"QFI\xfb";

/// An open qcow2 image.
pub struct Qcow2Disk {
    image: FormatAccess<ImagoFile>,
    size: u64,
    readonly: bool,
}

impl std::fmt::Debug for Qcow2Disk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Qcow2Disk")
            .field("size", &self.size)
            .field("readonly", &self.readonly)
            .finish_non_exhaustive()
    }
}

fn corrupt(path: &Path, e: &std::io::Error) -> DiskError {
    DiskError::Corrupt {
        path: path.to_owned(),
        reason: e.to_string(),
    }
}

impl Qcow2Disk {
    /// Opens the qcow2 image in `file` (opened and locked by the caller, writable unless
    /// `readonly`), found at `path`.
    pub fn open(file: std::fs::File, path: &Path, readonly: bool) -> Result<Self, DiskError> {
        let opts = StorageOpenOptions::new().filename(path).write(!readonly);
        let storage = ImagoFile::from_open_file(file, opts).map_err(|e| DiskError::Open {
            path: path.to_owned(),
            source: e,
        })?;
        let qcow2 = Qcow2::<ImagoFile>::builder(storage)
            .write(!readonly)
            .open(DenyImplicitOpenGate::default())
            .map_err(|e| {
                if e.to_string().to_lowercase().contains("implicit") {
                    DiskError::Unsupported {
                        path: path.to_owned(),
                        what: "a backing file or an external data file".into(),
                    }
                } else {
                    corrupt(path, &e)
                }
            })?;
        if qcow2.implicit_backing_file().is_some() || qcow2.requires_external_data_file() {
            return Err(DiskError::Unsupported {
                path: path.to_owned(),
                what: "a backing file or an external data file".into(),
            });
        }
        let image = FormatAccess::new(qcow2);
        let size = image.size();
        Ok(Self {
            image,
            size,
            readonly,
        })
    }

    /// Creates a new, empty qcow2 image of `size` bytes at `path` (which must not exist).
    pub fn create(path: &Path, size: u64) -> Result<(), DiskError> {
        let create_err = |source| DiskError::Create {
            path: PathBuf::from(path),
            source,
        };
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(create_err)?;
        let opts = StorageOpenOptions::new().filename(path).write(true);
        let result = ImagoFile::from_open_file(file, opts).and_then(|storage| {
            Qcow2::<ImagoFile>::create_builder(storage)
                .size(size)
                .create()
        });
        if let Err(e) = result {
            // Nothing of value was in it: we just made it.
            let _ = std::fs::remove_file(path);
            return Err(create_err(e));
        }
        Ok(())
    }

    /// Virtual size in bytes (whole sectors).
    pub fn size(&self) -> u64 {
        self.size / super::SECTOR_SIZE * super::SECTOR_SIZE
    }

    /// Whether writes are refused.
    pub fn readonly(&self) -> bool {
        self.readonly
    }

    /// Fills `buf` from guest offset `offset`.
    pub fn read_at(&self, buf: &mut Vec<u8>, offset: u64) -> std::io::Result<()> {
        self.image.read(buf, offset)
    }

    /// Writes `buf` at guest offset `offset`.
    pub fn write_at(&self, buf: &Vec<u8>, offset: u64) -> std::io::Result<()> {
        self.image.write(buf, offset)
    }

    /// Writes cached metadata and makes every completed write durable.
    pub fn flush(&self) -> std::io::Result<()> {
        self.image.flush()?;
        self.image.sync()
    }

    /// Deallocates a range; it reads back as zeroes.
    pub fn discard(&mut self, offset: u64, len: u64) -> std::io::Result<()> {
        self.image.discard_to_zero(offset, len)
    }

    /// Zeroes a range, deallocating it when `unmap` allows.
    pub fn write_zeroes(&mut self, offset: u64, len: u64, unmap: bool) -> std::io::Result<()> {
        if unmap {
            self.image.discard_to_zero(offset, len)
        } else {
            self.image.write_zeroes(offset, len)
        }
    }
}

#[cfg(test)]
mod tests;
