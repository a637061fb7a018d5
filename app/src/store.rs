//! The VM library on disk: one folder per VM under `$XDG_DATA_HOME/phyllome/vms/` holding its
//! definition (`vm.toml`, a [`VmConfig`] with its format version) and, beside it, its disks.
//! Definitions are written atomically (a temporary file, fsync, rename, fsync of the folder),
//! so a crash leaves the old file or the new one, never half of one. A definition that does
//! not parse is listed as broken, with the reason, and is never overwritten by a save: the
//! user's data is not lost to a bug or a newer version's format.

use phyllome_vmm::config::VmConfig;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The definition's file name in a VM's folder.
pub const DEFINITION: &str = "vm.toml";

/// Why the library could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file or folder could not be read or written.
    #[error("Cannot {what} {}: {source}.", path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// Where.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The name is empty (or only spaces).
    #[error("Give the virtual machine a name.")]
    EmptyName,
    /// Another VM has this name.
    #[error("A virtual machine named “{0}” exists already; choose another name.")]
    NameTaken(String),
    /// The definition there does not parse: saving would destroy it.
    #[error("The definition {} cannot be read ({reason}); it was left as it is. Fix or remove it first.", path.display())]
    Broken {
        /// The file.
        path: PathBuf,
        /// Why it does not parse.
        reason: String,
    },
    /// The VM's folder is gone (deleted behind the app's back).
    #[error("The folder of this virtual machine, {}, is gone.", .0.display())]
    Gone(PathBuf),
}

/// One VM in the library, as found on disk.
#[derive(Debug, Clone)]
pub enum Entry {
    /// A readable definition.
    Vm {
        /// The VM's folder.
        dir: PathBuf,
        /// Its definition.
        config: Box<VmConfig>,
    },
    /// A folder whose definition is missing or does not parse.
    Broken {
        /// The VM's folder.
        dir: PathBuf,
        /// What is wrong, as a sentence.
        reason: String,
    },
}

impl Entry {
    /// The VM's folder.
    pub fn dir(&self) -> &Path {
        match self {
            Self::Vm { dir, .. } | Self::Broken { dir, .. } => dir,
        }
    }
}

/// The library's root folder.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// `$XDG_DATA_HOME/phyllome/vms` (or `~/.local/share/phyllome/vms`).
    pub fn default_root() -> PathBuf {
        let data = std::env::var_os("XDG_DATA_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
            .unwrap_or_else(|| PathBuf::from("."));
        data.join("phyllome").join("vms")
    }

    /// The library at `root`, created if missing.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let root = root.into();
        fs::create_dir_all(&root).map_err(|source| StoreError::Io {
            what: "create the library folder",
            path: root.clone(),
            source,
        })?;
        Ok(Self { root })
    }

    /// Where the library lives.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Every VM folder, readable or broken, by name (broken ones last, by folder).
    pub fn list(&self) -> Result<Vec<Entry>, StoreError> {
        let io = |source| StoreError::Io {
            what: "read the library folder",
            path: self.root.clone(),
            source,
        };
        let mut entries = Vec::new();
        for item in fs::read_dir(&self.root).map_err(io)? {
            let item = item.map_err(io)?;
            let dir = item.path();
            // Temporary and hidden folders are not VMs.
            if !dir.is_dir() || item.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            entries.push(read_entry(dir));
        }
        entries.sort_by(|a, b| match (a, b) {
            (Entry::Vm { config: x, .. }, Entry::Vm { config: y, .. }) => {
                x.name.to_lowercase().cmp(&y.name.to_lowercase())
            }
            (Entry::Vm { .. }, Entry::Broken { .. }) => std::cmp::Ordering::Less,
            (Entry::Broken { .. }, Entry::Vm { .. }) => std::cmp::Ordering::Greater,
            (x, y) => x.dir().cmp(y.dir()),
        });
        Ok(entries)
    }

    /// Adds a VM: checks its name is set and free, makes its folder (named after it) and
    /// writes its definition. Returns the folder.
    pub fn create(&self, config: &VmConfig) -> Result<PathBuf, StoreError> {
        let name = config.name.trim();
        if name.is_empty() {
            return Err(StoreError::EmptyName);
        }
        let taken = self.list()?.iter().any(|e| match e {
            Entry::Vm { config: c, .. } => c.name.trim().eq_ignore_ascii_case(name),
            Entry::Broken { .. } => false,
        });
        if taken {
            return Err(StoreError::NameTaken(name.to_owned()));
        }
        let base = folder_name(name);
        let dir = (1..)
            .map(|n| {
                if n == 1 {
                    self.root.join(&base)
                } else {
                    self.root.join(format!("{base}-{n}"))
                }
            })
            .find(|d| !d.exists())
            .unwrap_or_else(|| self.root.join(&base));
        fs::create_dir(&dir).map_err(|source| StoreError::Io {
            what: "create the folder",
            path: dir.clone(),
            source,
        })?;
        write_atomically(&dir.join(DEFINITION), config.to_toml().as_bytes())?;
        Ok(dir)
    }

    /// Replaces the definition in `dir` (atomically); refuses when the file there does not
    /// parse, or when the folder is gone.
    pub fn save(&self, dir: &Path, config: &VmConfig) -> Result<(), StoreError> {
        if !dir.is_dir() {
            return Err(StoreError::Gone(dir.to_owned()));
        }
        let path = dir.join(DEFINITION);
        if path.exists() {
            if let Entry::Broken { reason, .. } = read_entry(dir.to_owned()) {
                return Err(StoreError::Broken { path, reason });
            }
        }
        write_atomically(&path, config.to_toml().as_bytes())
    }

    /// Deletes the VM in `dir`: its definition, and its disks unless `keep_disks` (they stay
    /// in the folder, which then remains).
    pub fn delete(&self, dir: &Path, keep_disks: bool) -> Result<(), StoreError> {
        if !dir.starts_with(&self.root) || dir == self.root {
            return Err(StoreError::Gone(dir.to_owned()));
        }
        if !dir.is_dir() {
            return Err(StoreError::Gone(dir.to_owned()));
        }
        let io = |what, source| StoreError::Io {
            what,
            path: dir.to_owned(),
            source,
        };
        if keep_disks {
            match fs::remove_file(dir.join(DEFINITION)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(io("remove the definition in", e))
                }
                _ => {}
            }
            // Kept disks stay where they are; the folder is renamed so that the library no
            // longer lists it.
            let kept = dir.with_file_name(format!(
                ".kept-{}",
                dir.file_name()
                    .map(|n| n.to_string_lossy())
                    .unwrap_or_default()
            ));
            fs::rename(dir, &kept).map_err(|e| io("set aside the disks in", e))
        } else {
            fs::remove_dir_all(dir).map_err(|e| io("delete", e))
        }
    }
}

/// Reads the definition in `dir`.
fn read_entry(dir: PathBuf) -> Entry {
    let path = dir.join(DEFINITION);
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Entry::Broken {
                dir,
                reason: format!("the folder has no {DEFINITION}"),
            }
        }
        Err(e) => {
            return Entry::Broken {
                dir,
                reason: format!("{DEFINITION} cannot be read: {e}"),
            }
        }
    };
    match VmConfig::from_toml(&text) {
        Ok(config) => Entry::Vm {
            dir,
            config: Box::new(config),
        },
        Err(e) => Entry::Broken {
            dir,
            reason: e.to_string(),
        },
    }
}

/// A folder name for a VM called `name`: letters and digits kept, the rest as dashes.
fn folder_name(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_alphanumeric() {
            out.extend(c.to_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let trimmed = out.trim_matches('-');
    if trimmed.is_empty() {
        "vm".to_owned()
    } else {
        trimmed.to_owned()
    }
}

/// Writes `bytes` to `path` so that a crash leaves either the old file or the new one.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let io = |what, p: &Path| {
        let p = p.to_owned();
        move |source| StoreError::Io {
            what,
            path: p,
            source,
        }
    };
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&temp)
            .map_err(io("write", &temp))?;
        f.write_all(bytes).map_err(io("write", &temp))?;
        f.sync_all().map_err(io("flush", &temp))?;
        fs::rename(&temp, path).map_err(io("replace", path))?;
        // The rename itself must reach the disk.
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io("flush the folder", dir))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(name: &str) -> VmConfig {
        let mut c =
            VmConfig::from_toml("version = 1\n[boot]\nkernel = \"/boot/vmlinuz\"\n").unwrap();
        c.name = name.to_owned();
        c
    }

    #[test]
    fn vms_are_created_listed_by_name_and_saved_atomically() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path().join("vms")).unwrap();
        let b = store.create(&config("Fedora Workstation")).unwrap();
        let a = store.create(&config("arch")).unwrap();
        assert_eq!(b.file_name().unwrap(), "fedora-workstation");
        let names: Vec<String> = store
            .list()
            .unwrap()
            .iter()
            .map(|e| match e {
                Entry::Vm { config, .. } => config.name.clone(),
                Entry::Broken { reason, .. } => panic!("broken: {reason}"),
            })
            .collect();
        assert_eq!(names, ["arch", "Fedora Workstation"]);

        let mut changed = config("arch");
        changed.machine.cpus = 3;
        store.save(&a, &changed).unwrap();
        let text = fs::read_to_string(a.join(DEFINITION)).unwrap();
        assert_eq!(VmConfig::from_toml(&text).unwrap().machine.cpus, 3);
        assert!(
            text.contains("version = 1"),
            "the format version is written"
        );
        // No temporary file is left behind.
        let left: Vec<_> = fs::read_dir(&a)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, [DEFINITION]);
    }

    #[test]
    fn names_must_be_set_and_free() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        assert!(matches!(
            store.create(&config("  ")),
            Err(StoreError::EmptyName)
        ));
        store.create(&config("Debian")).unwrap();
        let err = store.create(&config("debian ")).unwrap_err();
        assert!(matches!(&err, StoreError::NameTaken(n) if n == "debian"));
        assert!(err.to_string().contains("choose another name"), "{err}");
        // A name that makes the same folder name gets its own folder.
        let other = store.create(&config("Debian!")).unwrap();
        assert_eq!(other.file_name().unwrap(), "debian-2");
    }

    #[test]
    fn a_broken_definition_is_listed_with_its_reason_and_never_overwritten() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        let dir = store.create(&config("Good")).unwrap();
        let broken = root.path().join("broken");
        fs::create_dir(&broken).unwrap();
        let garbage = "version = 1\n[boot\nkernel = ";
        fs::write(broken.join(DEFINITION), garbage).unwrap();
        fs::create_dir(root.path().join("empty")).unwrap();
        let list = store.list().unwrap();
        assert_eq!(list.len(), 3);
        assert!(matches!(&list[0], Entry::Vm { dir: d, .. } if *d == dir));
        let Entry::Broken { reason, .. } = &list[1] else {
            panic!("{list:?}")
        };
        assert!(!reason.is_empty());
        let Entry::Broken { reason, .. } = &list[2] else {
            panic!("{list:?}")
        };
        assert!(reason.contains("no vm.toml"), "{reason}");
        // Saving over it is refused, and the bytes stay.
        let err = store.save(&broken, &config("Over")).unwrap_err();
        assert!(matches!(err, StoreError::Broken { .. }), "{err}");
        assert_eq!(
            fs::read_to_string(broken.join(DEFINITION)).unwrap(),
            garbage
        );
    }

    #[test]
    fn deleting_keeps_disks_when_asked_and_a_vanished_folder_is_reported() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        let keep = store.create(&config("Keep")).unwrap();
        fs::write(keep.join("disk.qcow2"), b"user data").unwrap();
        store.delete(&keep, true).unwrap();
        assert!(store.list().unwrap().is_empty(), "no longer in the library");
        let kept = root.path().join(".kept-keep/disk.qcow2");
        assert_eq!(fs::read(kept).unwrap(), b"user data");

        let gone = store.create(&config("Gone")).unwrap();
        store.delete(&gone, false).unwrap();
        assert!(!gone.exists());
        assert!(matches!(
            store.save(&gone, &config("Gone")),
            Err(StoreError::Gone(_))
        ));
        assert!(matches!(
            store.delete(&gone, false),
            Err(StoreError::Gone(_))
        ));
        // Nothing outside the library is ever deleted.
        assert!(matches!(
            store.delete(Path::new("/tmp"), false),
            Err(StoreError::Gone(_))
        ));
    }
}
