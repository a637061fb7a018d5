//! Recognising an installer image: the ISO 9660 primary volume descriptor's volume id and
//! the file layouts of known installers (Debian, Ubuntu, Fedora, Arch, openSUSE, Windows)
//! say which OS it is, and, for the Linux ones, which kernel and initrd inside it to boot
//! directly (as `virt-install --location` does) with the command line that makes the
//! installer find its own medium.
//!
//! The reader is ours, and small: directory records, Rock Ridge names (`NM`), and plain
//! ISO 9660 names without their `;1`. The crates looked at did not fit: `cdfs` links FUSE
//! (and a command-line parser) into any user, and `iso9660` reads no Rock Ridge names, which
//! Linux installers' paths need. The image is the user's file and may be anything: every
//! offset and length is checked against the file, and a bad one is an error, never a crash.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// Why an image could not be read.
#[derive(Debug, thiserror::Error)]
pub enum IsoError {
    /// The file cannot be opened or read.
    #[error("Cannot read {}: {source}.", path.display())]
    Io {
        /// The image.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not an ISO 9660 image.
    #[error("{} is not an installer image (an .iso file): it has no ISO 9660 volume.", path.display())]
    NotIso {
        /// The file.
        path: PathBuf,
    },
    /// An ISO 9660 image whose structure is damaged.
    #[error("The image {} is damaged: {reason}. Download it again.", path.display())]
    Damaged {
        /// The image.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A file asked for is not in the image.
    #[error("The image has no {inner}.")]
    Missing {
        /// The path inside the image.
        inner: String,
    },
}

/// Which operating system an image installs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OsFamily {
    /// Debian (netinst, DVD).
    Debian,
    /// Ubuntu (desktop or server, casper).
    Ubuntu,
    /// Fedora (live or installer).
    Fedora,
    /// Arch Linux.
    Arch,
    /// openSUSE Leap or Tumbleweed.
    OpenSuse,
    /// Windows.
    Windows,
    /// Not one we know.
    Unknown,
}

/// A kernel and initrd inside the image, and the command line that boots the installer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectBoot {
    /// The kernel's path in the image.
    pub kernel: String,
    /// The initrd's path in the image.
    pub initrd: String,
    /// The kernel command line.
    pub cmdline: String,
}

/// What an image was found to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detected {
    /// The OS family.
    pub family: OsFamily,
    /// A name to show ("Debian GNU/Linux 12.8.0", or the volume id when that is all there is).
    pub name: String,
    /// The ISO 9660 volume id.
    pub volume_id: String,
    /// How to boot its installer without firmware, where that is possible.
    pub boot: Option<DirectBoot>,
}

/// The primary volume descriptor: sector 16, type 1, "CD001".
const PVD_OFFSET: u64 = 16 * 2048;

/// Reads the volume id straight from the primary volume descriptor.
fn volume_id(path: &Path) -> Result<String, IsoError> {
    let io = |source| IsoError::Io {
        path: path.to_owned(),
        source,
    };
    let mut f = File::open(path).map_err(io)?;
    let mut pvd = [0u8; 72];
    f.seek(SeekFrom::Start(PVD_OFFSET)).map_err(io)?;
    if f.read_exact(&mut pvd).is_err() || pvd[0] != 1 || &pvd[1..6] != b"CD001" {
        return Err(IsoError::NotIso {
            path: path.to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&pvd[40..72]).trim().to_owned())
}

/// The logical block size of every ISO 9660 image we read.
const BLOCK: u64 = 2048;
const BLOCK_BYTES: usize = 2048;
/// Directories larger than this are not an installer's.
const MAX_DIR: u64 = 16 << 20;
/// Path components followed at most.
const MAX_DEPTH: usize = 16;

/// A directory record: where its data is, how long, and its name.
#[derive(Debug, Clone)]
struct Record {
    extent: u64,
    size: u64,
    is_dir: bool,
    name: String,
}

/// The little-endian half of a both-endian 32-bit field at `at` (the caller checked the
/// record is at least 34 bytes, which holds every such field).
fn le32(r: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([r[at], r[at + 1], r[at + 2], r[at + 3]])
}

/// Parses the records of one directory's data (ISO 9660 section 9.1); `.` and `..` are
/// left out. A record that does not fit ends the listing.
fn parse_directory(data: &[u8]) -> Vec<Record> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos < data.len() {
        let len = usize::from(data[pos]);
        if len == 0 {
            // Records never cross a block: the rest of this block is padding.
            pos = (pos / BLOCK_BYTES + 1) * BLOCK_BYTES;
            continue;
        }
        let Some(r) = data.get(pos..pos + len) else {
            break;
        };
        if len < 34 {
            break;
        }
        let name_len = usize::from(r[32]);
        let Some(raw_name) = r.get(33..33 + name_len) else {
            break;
        };
        let extent = u64::from(le32(r, 2));
        let size = u64::from(le32(r, 10));
        let is_dir = r[25] & 0x02 != 0;
        pos += len;
        if raw_name == [0] || raw_name == [1] {
            continue;
        }
        // The system use area (Rock Ridge) follows the name, padded to an even offset.
        let su_start = 33 + name_len + usize::from(name_len % 2 == 0);
        let name = r
            .get(su_start..)
            .and_then(rock_ridge_name)
            .unwrap_or_else(|| plain_name(raw_name));
        out.push(Record {
            extent,
            size,
            is_dir,
            name,
        });
    }
    out
}

/// The Rock Ridge `NM` name in a system use area, if it has one.
fn rock_ridge_name(mut su: &[u8]) -> Option<String> {
    let mut name = Vec::new();
    let mut found = false;
    while su.len() >= 4 {
        let len = usize::from(su[2]);
        if len < 4 || len > su.len() {
            break;
        }
        if &su[..2] == b"NM" && len >= 5 {
            found = true;
            name.extend_from_slice(&su[5..len]);
        }
        su = &su[len..];
    }
    (found && !name.is_empty()).then(|| String::from_utf8_lossy(&name).into_owned())
}

/// A plain ISO 9660 name without its version (`;1`) and a trailing dot.
fn plain_name(raw: &[u8]) -> String {
    let s = String::from_utf8_lossy(raw);
    let s = s.split(';').next().unwrap_or_default();
    s.strip_suffix('.').unwrap_or(s).to_owned()
}

/// An opened image.
struct Image {
    path: PathBuf,
    file: File,
    len: u64,
    root: Record,
}

impl Image {
    fn open(path: &Path) -> Result<Self, IsoError> {
        let io = |source| IsoError::Io {
            path: path.to_owned(),
            source,
        };
        let mut file = File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        let mut pvd = [0u8; 190];
        file.seek(SeekFrom::Start(PVD_OFFSET)).map_err(io)?;
        if file.read_exact(&mut pvd).is_err() || pvd[0] != 1 || &pvd[1..6] != b"CD001" {
            return Err(IsoError::NotIso {
                path: path.to_owned(),
            });
        }
        // The root directory's record sits at offset 156 of the descriptor.
        let root = parse_root(&pvd[156..190]).ok_or_else(|| IsoError::Damaged {
            path: path.to_owned(),
            reason: "its root directory record is invalid".into(),
        })?;
        Ok(Self {
            path: path.to_owned(),
            file,
            len,
            root,
        })
    }

    /// Reads `size` bytes at block `extent`, checked against the image's length.
    fn read_extent(&mut self, extent: u64, size: u64) -> Result<Vec<u8>, IsoError> {
        let damaged = |reason: &str| IsoError::Damaged {
            path: self.path.clone(),
            reason: reason.to_owned(),
        };
        let start = extent
            .checked_mul(BLOCK)
            .ok_or_else(|| damaged("an extent is out of range"))?;
        let end = start
            .checked_add(size)
            .ok_or_else(|| damaged("an extent is out of range"))?;
        if end > self.len {
            return Err(damaged("a file runs past the end of the image"));
        }
        let mut buf = vec![0u8; usize::try_from(size).map_err(|_| damaged("a file is too large"))?];
        let io = |source| IsoError::Io {
            path: self.path.clone(),
            source,
        };
        self.file.seek(SeekFrom::Start(start)).map_err(io)?;
        self.file.read_exact(&mut buf).map_err(io)?;
        Ok(buf)
    }

    /// The record at `inner` (`/a/b/c`), matched without regard to case.
    fn lookup(&mut self, inner: &str) -> Result<Option<Record>, IsoError> {
        let mut current = self.root.clone();
        let parts: Vec<&str> = inner.split('/').filter(|p| !p.is_empty()).collect();
        if parts.len() > MAX_DEPTH {
            return Ok(None);
        }
        for part in parts {
            if !current.is_dir || current.size > MAX_DIR {
                return Ok(None);
            }
            let data = self.read_extent(current.extent, current.size)?;
            match parse_directory(&data)
                .into_iter()
                .find(|r| r.name.eq_ignore_ascii_case(part))
            {
                Some(r) => current = r,
                None => return Ok(None),
            }
        }
        Ok(Some(current))
    }

    /// The regular file at `inner`, if there is one.
    fn file(&mut self, inner: &str) -> Option<Record> {
        self.lookup(inner).ok().flatten().filter(|r| !r.is_dir)
    }

    fn has(&mut self, inner: &str) -> bool {
        self.file(inner).is_some()
    }

    /// A small text file's contents (at most 4 KiB), if it is there.
    fn text(&mut self, inner: &str) -> Option<String> {
        let r = self.file(inner)?;
        let bytes = self.read_extent(r.extent, r.size.min(4096)).ok()?;
        Some(String::from_utf8_lossy(&bytes).trim().to_owned())
    }
}

/// The root directory record of the primary volume descriptor.
fn parse_root(r: &[u8]) -> Option<Record> {
    if r.len() < 34 || r[0] < 34 || r[25] & 0x02 == 0 {
        return None;
    }
    Some(Record {
        extent: u64::from(le32(r, 2)),
        size: u64::from(le32(r, 10)),
        is_dir: true,
        name: String::new(),
    })
}

/// Recognises the image at `path`.
pub fn detect(path: &Path) -> Result<Detected, IsoError> {
    let volume_id = volume_id(path)?;
    let mut image = Image::open(path)?;
    let disk_info = image.text("/.disk/info");
    let upper = volume_id.to_uppercase();
    let boot = |kernel: &str, initrd: &str, cmdline: String| {
        Some(DirectBoot {
            kernel: kernel.to_owned(),
            initrd: initrd.to_owned(),
            cmdline,
        })
    };
    let name_or = |fallback: &str| {
        disk_info
            .as_deref()
            .map(|i| i.split(['"', '\n']).next().unwrap_or(i).trim().to_owned())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| fallback.to_owned())
    };
    let (family, name, boot) = if image.has("/casper/vmlinuz") {
        let initrd = ["/casper/initrd", "/casper/initrd.lz", "/casper/initrd.gz"]
            .into_iter()
            .find(|p| image.has(p))
            .unwrap_or("/casper/initrd");
        (
            OsFamily::Ubuntu,
            name_or(&volume_id),
            boot(
                "/casper/vmlinuz",
                initrd,
                "boot=casper quiet splash ---".into(),
            ),
        )
    } else if image.has("/install.amd/vmlinuz") {
        // The graphical installer where the image has it.
        let (kernel, initrd) = if image.has("/install.amd/gtk/initrd.gz") {
            ("/install.amd/gtk/vmlinuz", "/install.amd/gtk/initrd.gz")
        } else {
            ("/install.amd/vmlinuz", "/install.amd/initrd.gz")
        };
        let kernel = if image.has(kernel) {
            kernel
        } else {
            "/install.amd/vmlinuz"
        };
        (
            OsFamily::Debian,
            name_or(&volume_id),
            boot(kernel, initrd, "quiet".into()),
        )
    } else if image.has("/images/pxeboot/vmlinuz") {
        // Live images carry their root file system; installers find their stage 2 by label.
        let cmdline = if image.has("/LiveOS/squashfs.img") {
            format!("root=live:CDLABEL={volume_id} rd.live.image quiet")
        } else {
            format!("inst.stage2=hd:LABEL={volume_id} quiet")
        };
        let name = if upper.starts_with("FEDORA") {
            format!("Fedora ({volume_id})")
        } else {
            volume_id.clone()
        };
        (
            OsFamily::Fedora,
            name,
            boot(
                "/images/pxeboot/vmlinuz",
                "/images/pxeboot/initrd.img",
                cmdline,
            ),
        )
    } else if image.has("/arch/boot/x86_64/vmlinuz-linux") {
        (
            OsFamily::Arch,
            format!("Arch Linux ({volume_id})"),
            boot(
                "/arch/boot/x86_64/vmlinuz-linux",
                "/arch/boot/x86_64/initramfs-linux.img",
                format!("archisobasedir=arch archisolabel={volume_id}"),
            ),
        )
    } else if image.has("/boot/x86_64/loader/linux") {
        (
            OsFamily::OpenSuse,
            volume_id.replace('-', " "),
            boot(
                "/boot/x86_64/loader/linux",
                "/boot/x86_64/loader/initrd",
                String::new(),
            ),
        )
    } else if image.has("/sources/install.wim") || image.has("/sources/install.esd") {
        (OsFamily::Windows, format!("Windows ({volume_id})"), None)
    } else {
        (OsFamily::Unknown, volume_id.clone(), None)
    };
    // A direct boot needs both files to be there.
    let boot = boot.filter(|b| image.has(&b.kernel) && image.has(&b.initrd));
    Ok(Detected {
        family,
        name,
        volume_id,
        boot,
    })
}

/// Copies the file `inner` of the image at `path` to `dest` (a kernel or an initrd to boot);
/// returns its size.
pub fn extract(path: &Path, inner: &str, dest: &Path) -> Result<u64, IsoError> {
    let mut image = Image::open(path)?;
    let r = image.file(inner).ok_or_else(|| IsoError::Missing {
        inner: inner.to_owned(),
    })?;
    let start = r.extent.saturating_mul(BLOCK);
    if start.saturating_add(r.size) > image.len {
        return Err(IsoError::Damaged {
            path: path.to_owned(),
            reason: format!("{inner} runs past the end of the image"),
        });
    }
    let io = |p: &Path| {
        let p = p.to_owned();
        move |source| IsoError::Io { path: p, source }
    };
    image.file.seek(SeekFrom::Start(start)).map_err(io(path))?;
    let mut out = File::create(dest).map_err(io(dest))?;
    let copied = std::io::copy(&mut (&mut image.file).take(r.size), &mut out).map_err(io(dest))?;
    if copied != r.size {
        return Err(IsoError::Damaged {
            path: path.to_owned(),
            reason: format!("{inner} is cut short"),
        });
    }
    Ok(copied)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// Builds an ISO with volume id `volid` holding `files` (path, contents), with Rock
    /// Ridge and Joliet names.
    fn iso(dir: &Path, volid: &str, files: &[(&str, &str)]) -> PathBuf {
        iso_with(dir, volid, files, true)
    }

    /// The same, or with plain ISO 9660 names only (as Windows images have, besides UDF).
    fn iso_with(dir: &Path, volid: &str, files: &[(&str, &str)], rock_ridge: bool) -> PathBuf {
        let root = dir.join(format!("root-{volid}"));
        for (path, contents) in files {
            let p = root.join(path.trim_start_matches('/'));
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, contents).unwrap();
        }
        std::fs::create_dir_all(&root).unwrap();
        let out = dir.join(format!("{volid}.iso"));
        let names: &[&str] = if rock_ridge { &["-R", "-J"] } else { &[] };
        let status = Command::new("xorriso")
            .args(["-as", "mkisofs", "-quiet"])
            .args(names)
            .args(["-V", volid, "-o"])
            .arg(&out)
            .arg(&root)
            .stderr(std::process::Stdio::null())
            .status()
            .expect("xorriso is installed (scripts/install-deps.sh)");
        assert!(status.success());
        out
    }

    /// A volume id, the files, and the family, name and direct boot expected.
    type Case<'a> = (
        &'a str,
        Vec<(&'a str, &'a str)>,
        OsFamily,
        &'a str,
        Option<(&'a str, &'a str, &'a str)>,
    );

    #[test]
    fn installers_are_recognised_by_volume_id_and_layout() {
        let dir = tempfile::tempdir().unwrap();
        let cases: Vec<Case> = vec![
            (
                "Debian 12.8.0 amd64 n",
                vec![
                    (
                        "/.disk/info",
                        "Debian GNU/Linux 12.8.0 \"Bookworm\" - Official amd64 NETINST",
                    ),
                    ("/install.amd/vmlinuz", "kernel"),
                    ("/install.amd/initrd.gz", "initrd"),
                    ("/install.amd/gtk/vmlinuz", "gtk kernel"),
                    ("/install.amd/gtk/initrd.gz", "gtk initrd"),
                ],
                OsFamily::Debian,
                "Debian GNU/Linux 12.8.0",
                Some((
                    "/install.amd/gtk/vmlinuz",
                    "/install.amd/gtk/initrd.gz",
                    "quiet",
                )),
            ),
            (
                "Ubuntu 24.04.1 LTS amd64",
                vec![
                    (
                        "/.disk/info",
                        "Ubuntu 24.04.1 LTS \"Noble Numbat\" - Release amd64 (20240827)",
                    ),
                    ("/casper/vmlinuz", "kernel"),
                    ("/casper/initrd", "initrd"),
                ],
                OsFamily::Ubuntu,
                "Ubuntu 24.04.1 LTS",
                Some((
                    "/casper/vmlinuz",
                    "/casper/initrd",
                    "boot=casper quiet splash ---",
                )),
            ),
            (
                "Fedora-WS-Live-41-1-4",
                vec![
                    ("/images/pxeboot/vmlinuz", "kernel"),
                    ("/images/pxeboot/initrd.img", "initrd"),
                    ("/LiveOS/squashfs.img", "root"),
                ],
                OsFamily::Fedora,
                "Fedora (Fedora-WS-Live-41-1-4)",
                Some((
                    "/images/pxeboot/vmlinuz",
                    "/images/pxeboot/initrd.img",
                    "root=live:CDLABEL=Fedora-WS-Live-41-1-4 rd.live.image quiet",
                )),
            ),
            (
                "ARCH_202411",
                vec![
                    ("/arch/boot/x86_64/vmlinuz-linux", "kernel"),
                    ("/arch/boot/x86_64/initramfs-linux.img", "initrd"),
                ],
                OsFamily::Arch,
                "Arch Linux (ARCH_202411)",
                Some((
                    "/arch/boot/x86_64/vmlinuz-linux",
                    "/arch/boot/x86_64/initramfs-linux.img",
                    "archisobasedir=arch archisolabel=ARCH_202411",
                )),
            ),
            (
                "openSUSE-Leap-15.6-DVD-x86_64",
                vec![
                    ("/boot/x86_64/loader/linux", "kernel"),
                    ("/boot/x86_64/loader/initrd", "initrd"),
                ],
                OsFamily::OpenSuse,
                "openSUSE Leap 15.6 DVD x86_64",
                Some((
                    "/boot/x86_64/loader/linux",
                    "/boot/x86_64/loader/initrd",
                    "",
                )),
            ),
            (
                "CCCOMA_X64FRE_EN-US_DV9",
                vec![("/sources/install.wim", "wim"), ("/bootmgr", "boot")],
                OsFamily::Windows,
                "Windows (CCCOMA_X64FRE_EN-US_DV9)",
                None,
            ),
            (
                "MYDATA",
                vec![("/README.TXT", "hello")],
                OsFamily::Unknown,
                "MYDATA",
                None,
            ),
        ];
        for (volid, files, family, name, boot) in cases {
            let path = iso(dir.path(), volid, &files);
            let d = detect(&path).unwrap_or_else(|e| panic!("{volid}: {e}"));
            assert_eq!(d.volume_id, volid);
            assert_eq!(d.family, family, "{volid}");
            assert_eq!(d.name, name, "{volid}");
            let want = boot.map(|(k, i, c)| DirectBoot {
                kernel: k.into(),
                initrd: i.into(),
                cmdline: c.into(),
            });
            assert_eq!(d.boot, want, "{volid}");
        }
    }

    #[test]
    fn plain_iso9660_names_are_found_too() {
        let dir = tempfile::tempdir().unwrap();
        let path = iso_with(
            dir.path(),
            "CCCOMA_X64FRE_EN-US_DV9",
            &[("/sources/install.wim", "wim"), ("/bootmgr", "boot")],
            false,
        );
        let d = detect(&path).unwrap();
        assert_eq!(d.family, OsFamily::Windows);
        assert_eq!(d.boot, None, "Windows needs firmware: no direct boot");
    }

    #[test]
    fn damaged_images_give_errors_never_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let good = iso(
            dir.path(),
            "Debian 12 d",
            &[
                ("/install.amd/vmlinuz", "k"),
                ("/install.amd/initrd.gz", "i"),
                ("/.disk/info", "Debian"),
            ],
        );
        let bytes = std::fs::read(&good).unwrap();
        let bad = dir.path().join("bad.iso");
        // Flip bytes across the descriptors and directory records, one region at a time.
        for (n, at) in (16 * 2048..(bytes.len()).min(40 * 2048))
            .step_by(97)
            .enumerate()
        {
            let mut b = bytes.clone();
            for x in b.iter_mut().skip(at).take(8) {
                *x ^= 0x5a ^ n.to_le_bytes()[0];
            }
            std::fs::write(&bad, &b).unwrap();
            let _ = detect(&bad);
            let _ = extract(&bad, "/install.amd/vmlinuz", &dir.path().join("k"));
        }
    }

    #[test]
    fn the_kernel_comes_out_byte_for_byte() {
        let dir = tempfile::tempdir().unwrap();
        let kernel: String = (0..50_000)
            .map(|i| char::from(b'a' + (i % 26) as u8))
            .collect();
        let path = iso(
            dir.path(),
            "Debian 12 x",
            &[
                ("/install.amd/vmlinuz", &kernel),
                ("/install.amd/initrd.gz", "i"),
            ],
        );
        let dest = dir.path().join("vmlinuz");
        assert_eq!(
            extract(&path, "/install.amd/vmlinuz", &dest).unwrap(),
            50_000
        );
        assert_eq!(std::fs::read_to_string(&dest).unwrap(), kernel);
        let err = extract(&path, "/nope", &dest).unwrap_err();
        assert!(matches!(err, IsoError::Missing { .. }), "{err}");
    }

    #[test]
    fn files_that_are_not_installer_images_get_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let text = dir.path().join("notes.iso");
        std::fs::write(&text, "not an image").unwrap();
        let err = detect(&text).unwrap_err();
        assert!(matches!(err, IsoError::NotIso { .. }));
        assert!(err.to_string().contains("not an installer image"), "{err}");
        let missing = detect(&dir.path().join("gone.iso")).unwrap_err();
        assert!(matches!(missing, IsoError::Io { .. }), "{missing}");

        // A real image cut short, and one with its directory records overwritten: errors.
        let good = iso(dir.path(), "CUT", &[("/a/b/c.txt", "x")]);
        let bytes = std::fs::read(&good).unwrap();
        let cut = dir.path().join("cut.iso");
        std::fs::write(&cut, &bytes[..(17 * 2048).min(bytes.len())]).unwrap();
        assert!(detect(&cut).is_err() || detect(&cut).is_ok_and(|d| d.boot.is_none()));
        let mut garbled = bytes.clone();
        for b in garbled.iter_mut().skip(18 * 2048).take(8 * 2048) {
            *b = 0xa5;
        }
        let g = dir.path().join("garbled.iso");
        std::fs::write(&g, &garbled).unwrap();
        // Never a crash; an error or an unknown image.
        if let Ok(d) = detect(&g) {
            assert_eq!(d.boot, None);
        }
    }
}
