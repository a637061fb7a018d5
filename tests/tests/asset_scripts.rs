//! The guest-asset scripts as a fresh machine runs them: into an empty cache folder, their
//! standard output is the asset folder alone, and what they built there is what the tests
//! use. A warm cache hides a first-run failure (mke2fs's chatter once became the 3D guest's
//! "folder" on every new machine), so this test always starts from nothing.

#![allow(clippy::unwrap_used, reason = "a test")]

use phyllome_tests::run_asset_script;
use std::path::Path;

fn starts_with(path: &Path, offset: u64, magic: &[u8]) -> bool {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut buf = vec![0; magic.len()];
    f.seek(SeekFrom::Start(offset)).unwrap();
    f.read_exact(&mut buf).is_ok() && buf == magic
}

#[test]
fn the_3d_guest_builds_into_an_empty_cache_and_its_script_answers_only_the_folder() {
    let home = tempfile::tempdir().unwrap();
    let expected = home.path().join("phyllome/assets");

    let (dir, stdout) = run_asset_script("gl-guest.sh", Some(home.path()));
    assert_eq!(dir, expected, "the folder under the new XDG_CACHE_HOME");
    assert_eq!(
        stdout.lines().count(),
        1,
        "gl-guest.sh's standard output is the folder alone on a first run: {stdout:?}"
    );
    // What the 3D tests boot: an ext4 root (superblock magic 0xEF53 at byte 1080), a newc
    // initramfs, and Debian's kernel (a bzImage: "HdrS" at 0x202).
    assert!(starts_with(
        &dir.join("gl-rootfs.ext4"),
        1080,
        &[0x53, 0xEF]
    ));
    assert!(starts_with(&dir.join("gl-initrd.cpio"), 0, b"070701"));
    assert!(starts_with(
        &dir.join("kernels/generic/vmlinuz"),
        0x202,
        b"HdrS"
    ));
    assert!(
        !dir.join("gl-rootfs.ext4.tmp").exists(),
        "no half-made image is left"
    );

    // guest-assets.sh (which gl-guest.sh called) answers the same folder, alone, from the
    // cache it made: the tests' other path in.
    let (again, stdout) = run_asset_script("guest-assets.sh", Some(home.path()));
    assert_eq!(again, expected);
    assert_eq!(stdout.lines().count(), 1, "{stdout:?}");
    for initrd in ["l2-initrd.cpio", "demo-initrd.cpio", "virtio-initrd.cpio"] {
        assert!(starts_with(&dir.join(initrd), 0, b"070701"), "{initrd}");
    }
}

/// gl-guest.sh run by a user who is not root and has no password-less sudo, with only the
/// root file system left to build: one line saying it needs root and why, not a failure
/// deep inside debootstrap. (As root, the test runs it as `nobody`.)
#[test]
fn the_3d_guest_build_says_in_one_line_that_it_needs_root() {
    let home = tempfile::tempdir().unwrap();
    // The kernels and initramfs images are there (as root): only the 3D guest is missing.
    run_asset_script("guest-assets.sh", Some(home.path()));
    let workspace = phyllome_tests::workspace();
    // SAFETY: geteuid has no preconditions and touches no memory of ours.
    let as_root = unsafe { libc::geteuid() } == 0;
    let mut cmd = if as_root {
        let status = std::process::Command::new("chown")
            .args(["-R", "65534:65534"])
            .arg(home.path())
            .status()
            .unwrap();
        assert!(status.success());
        let mut c = std::process::Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"]);
        c.arg(workspace.join("scripts/gl-guest.sh"));
        c
    } else {
        let sudo = std::process::Command::new("sudo")
            .args(["-n", "true"])
            .output()
            .is_ok_and(|o| o.status.success());
        if sudo {
            eprintln!("skipped: this user has password-less sudo, so gl-guest.sh may build");
            return;
        }
        std::process::Command::new(workspace.join("scripts/gl-guest.sh"))
    };
    let out = cmd
        .env("XDG_CACHE_HOME", home.path())
        .env_remove("PHYLLOME_ASSETS")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "it cannot build without root: {stderr}"
    );
    assert!(out.stdout.is_empty(), "no folder is named when it fails");
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("gl-guest:"))
        .collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].contains("needs root") && lines[0].contains("debootstrap"),
        "{stderr}"
    );
}
