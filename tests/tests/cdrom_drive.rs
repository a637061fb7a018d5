//! Linux's own CD-ROM driver against our drive: Debian's kernel under QEMU (software
//! emulation) with `vhost-user-scsi-pci` on `phyllome-vmm device scsi --cdrom`. Linux's
//! `sr` sees a type-5 device, mounts the ISO 9660 disc and reads a file and a payload byte
//! for byte; the guest ejects the disc itself; the host puts a second disc in (typed on
//! the backend's standard input), fails to take it out while the guest has it mounted (the
//! drive is locked), then forces it out; the guest sees each. The same guest
//! against QEMU's own `virtio-scsi-pci` + `scsi-cd` (changes through QEMU's monitor) shows
//! that the test itself is right.

#![allow(clippy::unwrap_used)]

use phyllome_tests::{sha256, vmm_binary, wait_for_path, Assets};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

static ONE_QEMU_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Who serves the drive, and how the host changes its disc.
enum Drive {
    /// `phyllome-vmm device scsi`; changes typed on its standard input.
    Phyllome(Child),
    /// QEMU's `scsi-cd`; changes through its monitor socket.
    Qemu(PathBuf),
}

impl Drive {
    fn insert(&mut self, iso: &Path) {
        match self {
            Self::Phyllome(child) => {
                let stdin = child.stdin.as_mut().unwrap();
                writeln!(stdin, "insert 0 {}", iso.display()).unwrap();
            }
            Self::Qemu(monitor) => qemu_monitor(monitor, &format!("change cd0 {}", iso.display())),
        }
    }

    fn eject(&mut self, force: bool) {
        match self {
            Self::Phyllome(child) => {
                let force = if force { " force" } else { "" };
                writeln!(child.stdin.as_mut().unwrap(), "eject 0{force}").unwrap();
            }
            Self::Qemu(monitor) => {
                qemu_monitor(monitor, if force { "eject -f cd0" } else { "eject cd0" });
            }
        }
    }
}

fn qemu_monitor(socket: &Path, command: &str) {
    let mut s = UnixStream::connect(socket).unwrap();
    writeln!(s, "{command}").unwrap();
    // Let the monitor read the line before the connection goes.
    std::thread::sleep(Duration::from_millis(500));
}

struct Discs {
    dir: tempfile::TempDir,
    payload: Vec<u8>,
}

impl Discs {
    /// Two ISO 9660 discs made with xorriso: the first with hello.txt and a 3 MiB
    /// pseudo-random payload, the second with second.txt.
    fn make() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let first = dir.path().join("first");
        std::fs::create_dir(&first).unwrap();
        std::fs::write(first.join("hello.txt"), "hello from the first disc").unwrap();
        let mut x: u32 = 0x1234_5678;
        let payload: Vec<u8> = (0..3 << 20)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x.to_le_bytes()[0]
            })
            .collect();
        std::fs::write(first.join("payload.bin"), &payload).unwrap();
        let second = dir.path().join("second");
        std::fs::create_dir(&second).unwrap();
        std::fs::write(second.join("second.txt"), "the second disc is in").unwrap();
        for (name, label) in [("first", "PHYLLOME_ONE"), ("second", "PHYLLOME_TWO")] {
            let out = Command::new("xorriso")
                .args(["-as", "mkisofs", "-quiet", "-V", label, "-o"])
                .arg(dir.path().join(format!("{name}.iso")))
                .arg(dir.path().join(name))
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "xorriso: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Self { dir, payload }
    }

    fn iso(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.iso"))
    }
}

/// Boots the CD guest with the drive `phyllome` (ours) or QEMU's own; changes the disc
/// when the guest says it waits. Returns the console, and the backend (if ours).
fn run_guest(ours: bool, discs: &Discs) -> (String, Option<Child>) {
    let _one = ONE_QEMU_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let assets = Assets::get();
    let socket = discs.dir.path().join("scsi.sock");
    let monitor = discs.dir.path().join("monitor.sock");
    let mut qemu = Command::new("timeout");
    qemu.args(["-k", "10", "240", "qemu-system-x86_64", "-accel", "tcg"])
        .args([
            "-m",
            "256",
            "-nodefaults",
            "-display",
            "none",
            "-serial",
            "stdio",
        ])
        .arg("-no-reboot")
        .args([
            "-object",
            "memory-backend-memfd,id=mem,size=256M,share=on",
            "-machine",
            "pc,memory-backend=mem",
        ])
        .arg("-kernel")
        .arg(assets.kernel("generic"))
        .arg("-initrd")
        .arg(assets.dir.join("cdrom-initrd.cpio"))
        .args(["-append", "console=ttyS0 panic=-1 quiet"]);
    let mut drive = if ours {
        let child = Command::new(vmm_binary())
            .args(["device", "scsi", "--socket"])
            .arg(&socket)
            .arg("--cdrom")
            .arg(discs.iso("first"))
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        wait_for_path(&socket);
        qemu.arg("-chardev")
            .arg(format!("socket,id=c0,path={}", socket.display()))
            .args(["-device", "vhost-user-scsi-pci,chardev=c0"]);
        Drive::Phyllome(child)
    } else {
        qemu.arg("-monitor")
            .arg(format!("unix:{},server=on,wait=off", monitor.display()))
            .arg("-drive")
            .arg(format!(
                "if=none,id=cd0,media=cdrom,readonly=on,file={}",
                discs.iso("first").display()
            ))
            .args(["-device", "virtio-scsi-pci", "-device", "scsi-cd,drive=cd0"]);
        Drive::Qemu(monitor)
    };
    let mut child = qemu.stdout(Stdio::piped()).spawn().unwrap();
    let mut console = String::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let Ok(line) = line else { break };
        if line.contains("PHYLLOME-WAITING-FOR-INSERT") {
            drive.insert(&discs.iso("second"));
        } else if line.contains("PHYLLOME-WAITING-FOR-EJECT") {
            drive.eject(false);
        } else if line.contains("PHYLLOME-WAITING-FOR-FORCED-EJECT") {
            drive.eject(true);
        }
        console.push_str(&line);
        console.push('\n');
    }
    child.wait().unwrap();
    let backend = match drive {
        Drive::Phyllome(child) => Some(child),
        Drive::Qemu(_) => None,
    };
    (console, backend)
}

fn check(console: &str, discs: &Discs) {
    let first = std::fs::read(discs.iso("first")).unwrap();
    let blocks = first.len() / 512;
    for marker in [
        "PHYLLOME-SR0-TYPE=5".to_owned(),
        format!("PHYLLOME-SR0-BLOCKS={blocks}"),
        "PHYLLOME-MOUNTED".to_owned(),
        "PHYLLOME-HELLO=hello from the first disc".to_owned(),
        format!("PHYLLOME-PAYLOAD-SHA256={}", sha256(&discs.payload)),
        format!(
            "PHYLLOME-PVD-SHA256={}",
            sha256(&first[16 * 2048..17 * 2048])
        ),
        "PHYLLOME-GUEST-EJECT-SEEN".to_owned(),
        "PHYLLOME-SECOND=the second disc is in".to_owned(),
        "PHYLLOME-LOCKED-DISC-STAYED".to_owned(),
        "PHYLLOME-HOST-EJECT-SEEN".to_owned(),
        "PHYLLOME-CDROM-TEST-DONE".to_owned(),
    ] {
        assert!(console.contains(&marker), "missing {marker} in:\n{console}");
    }
    assert!(!console.contains("INSMOD-FAILED"), "{console}");
}

#[test]
fn linux_mounts_reads_and_ejects_discs_in_our_cd_drive_which_exits_when_qemu_leaves() {
    let discs = Discs::make();
    let (console, backend) = run_guest(true, &discs);
    check(&console, &discs);
    let mut backend = backend.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = backend.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the backend did not exit after QEMU left"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "the backend exited with {status}");
    // What it said to the host: the disc in, the locked eject refused, the forced one done.
    let mut said = String::new();
    std::io::Read::read_to_string(&mut backend.stderr.take().unwrap(), &mut said).unwrap();
    let lines: Vec<&str> = said.lines().filter(|l| l.contains("CD drive 0")).collect();
    assert_eq!(
        lines,
        [
            format!(
                "phyllome device: CD drive 0: {} is in.",
                discs.iso("second").display()
            )
            .as_str(),
            "phyllome device: CD drive 0: The guest has locked the CD drive; eject it from the guest, or force the eject.",
            "phyllome device: CD drive 0: the disc is out.",
        ],
        "{said}"
    );
}

#[test]
fn the_same_guest_test_passes_against_qemus_own_cd_drive() {
    let discs = Discs::make();
    let (console, _) = run_guest(false, &discs);
    check(&console, &discs);
}
