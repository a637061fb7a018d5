//! Linux's own virtio drivers against our devices: Debian's kernel under QEMU (software
//! emulation) with `vhost-user-blk-pci` and `vhost-user-rng-pci` connected to
//! `phyllome-vmm device ...` backends. The guest writes, flushes and reads back a pattern on
//! a writable disk (the test then finds it in the image file), reads a read-only disk and
//! is refused a write, and reads entropy. The same guest against `qemu-storage-daemon`'s
//! vhost-user-blk export shows that the test itself is right.

#![allow(clippy::unwrap_used)]

use phyllome_tests::{vmm_binary, wait_for_path, Assets};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

static ONE_QEMU_AT_A_TIME: Mutex<()> = Mutex::new(());

const PATTERN_OFFSET: usize = 16 * 4096;
const PATTERN_LEN: usize = 65536;

/// Which program serves the two disks.
#[derive(Clone, Copy, PartialEq, Eq)]
enum BlkServer {
    Phyllome,
    /// Our backend on qcow2 images (made and checked with qemu-img).
    PhyllomeQcow2,
    QemuStorageDaemon,
}

struct Images {
    dir: tempfile::TempDir,
}

fn qemu_img(args: &[&str]) {
    let out = Command::new("qemu-img").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "qemu-img {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Images {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::File::create(dir.path().join("rw.img"))
            .unwrap()
            .set_len(16 << 20)
            .unwrap();
        let mut ro = b"PHYLLOME-READONLY-MARKER".to_vec();
        ro.resize(1 << 20, 0);
        std::fs::write(dir.path().join("ro.img"), &ro).unwrap();
        Self { dir }
    }

    /// Turns both images into qcow2 (`*.qcow2` beside them).
    fn convert_to_qcow2(&self) {
        for name in ["rw", "ro"] {
            let (raw, q) = (
                self.path(&format!("{name}.img")),
                self.path(&format!("{name}.qcow2")),
            );
            qemu_img(&[
                "convert",
                "-f",
                "raw",
                "-O",
                "qcow2",
                raw.to_str().unwrap(),
                q.to_str().unwrap(),
            ]);
            std::fs::remove_file(raw).unwrap();
        }
    }

    /// Checks the qcow2 images and turns them back into the raw files the checks read.
    fn convert_back_to_raw(&self) {
        for name in ["rw", "ro"] {
            let (raw, q) = (
                self.path(&format!("{name}.img")),
                self.path(&format!("{name}.qcow2")),
            );
            qemu_img(&["check", q.to_str().unwrap()]);
            qemu_img(&[
                "convert",
                "-f",
                "qcow2",
                "-O",
                "raw",
                q.to_str().unwrap(),
                raw.to_str().unwrap(),
            ]);
        }
    }
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

fn spawn_blk(server: BlkServer, image: &Path, socket: &Path, readonly: bool) -> Child {
    let child = match server {
        BlkServer::Phyllome | BlkServer::PhyllomeQcow2 => {
            let mut c = Command::new(vmm_binary());
            c.args(["device", "blk", "--socket"]).arg(socket).arg("--path").arg(image);
            if readonly {
                c.arg("--readonly");
            }
            // The raw disk the guest writes goes around the host's page cache (cache=none):
            // Linux's driver through O_DIRECT, the test's checks of the file through the cache.
            if server == BlkServer::Phyllome && !readonly {
                c.args(["--cache", "none"]);
            }
            c.stdout(Stdio::null()).spawn().unwrap()
        }
        BlkServer::QemuStorageDaemon => Command::new("qemu-storage-daemon")
            .arg("--blockdev")
            .arg(format!("driver=file,node-name=file0,filename={}", image.display()))
            .arg("--blockdev")
            .arg("driver=raw,node-name=disk0,file=file0")
            .arg("--export")
            .arg(format!(
                "type=vhost-user-blk,id=exp0,node-name=disk0,addr.type=unix,addr.path={},writable={}",
                socket.display(),
                if readonly { "off" } else { "on" }
            ))
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    };
    wait_for_path(socket);
    child
}

fn run_guest(server: BlkServer) -> (String, Images, Vec<Child>) {
    let assets = Assets::get();
    let images = Images::new();
    let ext = if server == BlkServer::PhyllomeQcow2 {
        images.convert_to_qcow2();
        "qcow2"
    } else {
        "img"
    };
    let (b0, b1, r0) = (
        images.path("b0.sock"),
        images.path("b1.sock"),
        images.path("r0.sock"),
    );
    let mut children = vec![
        spawn_blk(server, &images.path(&format!("rw.{ext}")), &b0, false),
        spawn_blk(server, &images.path(&format!("ro.{ext}")), &b1, true),
    ];
    children.push(
        Command::new(vmm_binary())
            .args(["device", "rng", "--socket"])
            .arg(&r0)
            .spawn()
            .unwrap(),
    );
    wait_for_path(&r0);
    let out = Command::new("timeout")
        .args([
            "180",
            "qemu-system-x86_64",
            "-accel",
            "tcg",
            "-m",
            "256",
            "-nodefaults",
        ])
        .args(["-display", "none", "-serial", "stdio", "-no-reboot"])
        .args([
            "-object",
            "memory-backend-memfd,id=mem,size=256M,share=on",
            "-machine",
            "pc,memory-backend=mem",
        ])
        .arg("-kernel")
        .arg(assets.kernel("generic"))
        .arg("-initrd")
        .arg(assets.dir.join("virtio-initrd.cpio"))
        .args(["-append", "console=ttyS0 panic=-1 quiet"])
        .arg("-chardev")
        .arg(format!("socket,id=c0,path={}", b0.display()))
        .args(["-device", "vhost-user-blk-pci,chardev=c0"])
        .arg("-chardev")
        .arg(format!("socket,id=c1,path={}", b1.display()))
        .args(["-device", "vhost-user-blk-pci,chardev=c1"])
        .arg("-chardev")
        .arg(format!("socket,id=c2,path={}", r0.display()))
        .args(["-device", "vhost-user-rng-pci,chardev=c2"])
        .output()
        .unwrap();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        images,
        children,
    )
}

fn check_guest_saw_working_devices(console: &str, images: &Images) {
    for marker in [
        "PHYLLOME-BLOCK-DEVICES: vda vdb",
        "PHYLLOME-VDA-WRITE-FLUSH-OK",
        "PHYLLOME-VDA-READBACK-OK",
        "PHYLLOME-VDB-RO=1",
        "PHYLLOME-VDB-READ-OK",
        "PHYLLOME-VDB-WRITE-REFUSED",
        "PHYLLOME-RNG-CURRENT=virtio_rng.0",
        "PHYLLOME-RNG-OK",
        "PHYLLOME-DEVICE-TEST-DONE",
    ] {
        assert!(console.contains(marker), "missing {marker} in:\n{console}");
    }
    let image = std::fs::read(images.path("rw.img")).unwrap();
    let written = &image[PATTERN_OFFSET..PATTERN_OFFSET + PATTERN_LEN];
    let expected: Vec<u8> = b"PHYLLOME-BLK-PATTERN\n"
        .iter()
        .copied()
        .cycle()
        .take(PATTERN_LEN)
        .collect();
    assert!(
        written == expected.as_slice(),
        "the image does not hold the guest's pattern"
    );
    assert!(
        image[..PATTERN_OFFSET].iter().all(|b| *b == 0),
        "bytes before the pattern changed"
    );
    let ro = std::fs::read(images.path("ro.img")).unwrap();
    assert!(ro.starts_with(b"PHYLLOME-READONLY-MARKER") && ro[24..].iter().all(|b| *b == 0));
}

fn wait_exit_zero(mut child: Child) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "backend exited with {status}");
            return;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("backend did not exit after the frontend disconnected");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn linux_drivers_use_our_blk_and_rng_backends_which_exit_when_qemu_leaves() {
    let _one = ONE_QEMU_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let (console, images, children) = run_guest(BlkServer::Phyllome);
    check_guest_saw_working_devices(&console, &images);
    for child in children {
        wait_exit_zero(child);
    }
}

#[test]
fn linux_drivers_use_qcow2_images_through_our_blk_backend() {
    let _one = ONE_QEMU_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let (console, images, children) = run_guest(BlkServer::PhyllomeQcow2);
    for child in children {
        wait_exit_zero(child);
    }
    images.convert_back_to_raw();
    check_guest_saw_working_devices(&console, &images);
}

#[test]
fn the_same_guest_test_passes_against_qemu_storage_daemon() {
    let _one = ONE_QEMU_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let (console, images, mut children) = run_guest(BlkServer::QemuStorageDaemon);
    check_guest_saw_working_devices(&console, &images);
    // qemu-storage-daemon keeps serving after a disconnect: stop it.
    for c in &mut children[..2] {
        let _ = c.kill();
        let _ = c.wait();
    }
    wait_exit_zero(children.pop().unwrap());
}
