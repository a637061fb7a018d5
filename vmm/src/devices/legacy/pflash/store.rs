//! The firmware's variable store and the file that keeps it between runs. The guest changes
//! an in-memory copy; the whole copy goes to the file when the firmware finishes an
//! operation, through a temporary file, fsync and rename, so that a crash leaves either
//! the previous store or the new one, never a mix.

use super::{PflashError, BLOCK_SIZE, MAX_SIZE};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// The variable store's bytes and, when it has one, its file.
pub struct VarsStore {
    bytes: Vec<u8>,
    file: Option<PathBuf>,
    dirty: bool,
    /// The last save failure, so that a failing disk is reported once, not at every write.
    last_error: Option<String>,
}

impl std::fmt::Debug for VarsStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VarsStore")
            .field("len", &self.bytes.len())
            .field("file", &self.file)
            .field("dirty", &self.dirty)
            .field("last_error", &self.last_error)
            .finish()
    }
}

impl VarsStore {
    /// The store kept in the file at `path` (the VM's own copy of the firmware's variable
    /// template), which must be readable and writable and a non-zero multiple of 4 KiB of
    /// at most 16 MiB. A file that is not is refused and left as it is.
    pub fn open(path: &Path) -> Result<Self, PflashError> {
        let open_err = |source| PflashError::Open {
            path: path.to_owned(),
            source,
        };
        // The real file, so that saving replaces it and not a symbolic link to it.
        let real = fs::canonicalize(path).map_err(open_err)?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&real)
            .map_err(open_err)?;
        let len = file.metadata().map_err(open_err)?.len();
        let fits = usize::try_from(len).is_ok_and(|n| n <= MAX_SIZE);
        if len == 0 || len % BLOCK_SIZE as u64 != 0 || !fits {
            return Err(PflashError::StoreSize {
                path: path.to_owned(),
                len,
            });
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(open_err)?;
        if bytes.len() as u64 != len {
            // The file changed size while we read it.
            return Err(PflashError::StoreSize {
                path: path.to_owned(),
                len: bytes.len() as u64,
            });
        }
        Ok(Self {
            bytes,
            file: Some(real),
            dirty: false,
            last_error: None,
        })
    }

    /// A store without a file: the guest's changes last until the VM stops.
    pub fn in_memory(bytes: Vec<u8>) -> Self {
        Self {
            bytes,
            file: None,
            dirty: false,
            last_error: None,
        }
    }

    /// The file the store is saved to, if any.
    pub fn path(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// The store's current contents.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Whether the guest changed the store since it was last saved.
    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// Why the last save failed, while the changes are still unsaved.
    pub fn last_save_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// The contents, to change; they count as unsaved from now.
    pub(super) fn bytes_mut(&mut self) -> &mut [u8] {
        self.dirty = true;
        &mut self.bytes
    }

    /// Writes unsaved changes to the file. On failure they stay unsaved, to be tried again.
    pub fn save(&mut self) -> Result<(), PflashError> {
        if !self.dirty {
            return Ok(());
        }
        let Some(path) = &self.file else {
            self.dirty = false;
            return Ok(());
        };
        match write_atomically(path, &self.bytes) {
            Ok(()) => {
                self.dirty = false;
                self.last_error = None;
                Ok(())
            }
            Err(source) => {
                let e = PflashError::Save {
                    path: path.clone(),
                    source,
                };
                self.last_error = Some(e.to_string());
                Err(e)
            }
        }
    }

    /// [`Self::save`] from the guest's path: a failure is logged (once while it lasts), the
    /// VM runs on and the next save tries again.
    pub(super) fn save_logged(&mut self) {
        let before = self.last_error.take();
        if let Err(e) = self.save() {
            let message = e.to_string();
            if before.as_deref() != Some(message.as_str()) {
                log::warn!("{message}");
            }
        }
    }
}

impl Drop for VarsStore {
    fn drop(&mut self) {
        self.save_logged();
    }
}

/// Writes `bytes` over `path` so that a crash leaves either the old file or the new one:
/// `<path>.tmp` in the same folder (with the file's permissions), fsync, rename, fsync of
/// the folder.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(".tmp");
    let temp = path.with_file_name(name);
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&temp)?;
        if let Ok(meta) = fs::metadata(path) {
            f.set_permissions(meta.permissions())?;
        }
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&temp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result?;
    // The rename itself must reach the disk.
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}
