//! The test that proves the boot path: Debian's own kernels, with a busybox initramfs,
//! boot on phyllome-vmm to `/init` with two vCPUs and power off through ACPI.
//!
//! On this project's machines `/dev/kvm` cannot run Linux, so the VMM runs nested: QEMU's
//! software emulation provides an L1 Linux with a real (emulated SVM) `/dev/kvm`, and
//! phyllome-vmm runs there (scripts/nested-kvm.sh). Where the host itself has VT-x or
//! AMD-V, the same boot is also run directly.

#![allow(clippy::unwrap_used)]

use phyllome_tests::desktop::{decode, text_rows};
use phyllome_tests::{
    guest_input_devices, png_from_console, vmm_binary, workspace, Assets, VIRTIO_INPUT_DEVICES,
};
use phyllome_vmm::host::has_hardware_virtualization;
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One nested QEMU at a time: each wants both cores.
static SERIAL: Mutex<()> = Mutex::new(());

fn nested_boot(flavour: &str) {
    let _one = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let assets = Assets::get();
    let started = Instant::now();
    let out = Command::new("timeout")
        .args(["-k", "30", "600"])
        .arg(workspace().join("scripts/nested-kvm.sh"))
        .arg(vmm_binary())
        .arg(assets.kernel(flavour))
        .arg(assets.test_initrd())
        .args(["--cpus", "2", "--memory", "256", "--no-reboot"])
        .output()
        .expect("scripts/nested-kvm.sh runs");
    let console = String::from_utf8_lossy(&out.stdout);
    let elapsed = started.elapsed();
    println!("{flavour}: nested run took {elapsed:.1?}");
    // The whole console, for when the last lines below are not enough to see why.
    let logs = workspace().join("target/nested-logs");
    std::fs::create_dir_all(&logs).unwrap();
    std::fs::write(logs.join(format!("{flavour}.log")), console.as_bytes()).unwrap();
    let tail: String = console
        .lines()
        .rev()
        .take(40)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        console.contains("PHYLLOME-L1-KVM-READY"),
        "L1 has no /dev/kvm:\n{tail}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let marker = format!(
        "PHYLLOME-L2-INIT cpus=2 kernel={}",
        assets.kernel_version(flavour)
    );
    assert!(
        console.contains(&marker),
        "L2 did not reach /init with 2 CPUs ({marker}); whole console in target/nested-logs/{flavour}.log:\n{tail}"
    );
    assert!(console.contains("smp: Brought up 1 node, 2 CPUs"), "{tail}");
    assert!(
        console.contains("ACPI: PM: Preparing to enter system sleep state S5"),
        "{tail}"
    );
    assert!(
        console.contains("PHYLLOME-VMM-EXIT=0"),
        "phyllome-vmm did not exit 0 after power-off:\n{tail}"
    );
    assert!(elapsed < Duration::from_secs(600));
}

#[test]
fn debian_cloud_kernel_boots_nested_with_two_cpus_and_powers_off() {
    nested_boot("cloud");
}

#[test]
fn debian_generic_kernel_boots_nested_with_two_cpus_and_powers_off() {
    nested_boot("generic");
}

/// `scripts/nested-kvm.sh` booting Debian's generic kernel with the virtio test initramfs
/// as L2, under a 600 s limit; callers add the VMM's arguments and L1's set-up and checks.
fn nested_virtio_guest(cpus: &str) -> Command {
    let assets = Assets::get();
    let mut c = Command::new("timeout");
    c.args(["-k", "30", "600"])
        .arg(workspace().join("scripts/nested-kvm.sh"))
        .arg(vmm_binary())
        .arg(assets.kernel("generic"))
        .arg(assets.dir.join("virtio-initrd.cpio"))
        .args(["--cpus", cpus, "--memory", "256", "--no-reboot"]);
    c
}

/// Our VMM's own virtio-pci transport with the real virtio_blk driver: a writable and a
/// read-only in-process disk, and a third disk served by `phyllome-vmm device blk` in
/// another L1 process over vhost-user; virtio_rng on our in-process entropy device; and
/// the real virtio_console driver on a console
/// served by `phyllome-vmm device console` in L1 (the guest writes to hvc0, L1 types a
/// line back once it sees it). Images are made inside L1 and checked there after the guest
/// stops; the backends must exit 0 when the VMM disconnects.
#[test]
fn debian_kernel_drives_in_process_and_vhost_user_virtio_devices_nested() {
    let _one = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let out = nested_virtio_guest("2")
        .args(["--disk", "/rw.img,queues=2", "--disk", "/ro.img,readonly", "--vhost-user", "blk,socket=/vu.sock"])
        .args(["--vhost-user", "console,socket=/con.sock", "--rng"])
        .env(
            "PHYLLOME_NESTED_SETUP",
            "dd if=/dev/zero of=/rw.img bs=1M count=16 2>/dev/null; printf PHYLLOME-READONLY-MARKER > /ro.img; \
             dd if=/dev/zero bs=1000 count=1048 >> /ro.img 2>/dev/null; \
             dd if=/dev/zero of=/vu.img bs=1M count=8 2>/dev/null; \
             /phyllome-vmm device blk --socket /vu.sock --path /vu.img & backend=$!; \
             while [ ! -S /vu.sock ]; do sleep 0.1; done; \
             (while ! grep -q PHYLLOME-HVC-OUTPUT /con.out 2>/dev/null; do sleep 0.2; done; echo typed-by-host) \
               | /phyllome-vmm device console --socket /con.sock --output file:/con.out & console=$!; \
             while [ ! -S /con.sock ]; do sleep 0.1; done",
        )
        .env(
            "PHYLLOME_NESTED_CHECK",
            "wait $backend; echo PHYLLOME-L1-BACKEND-EXIT=$?; \
             wait $console; echo PHYLLOME-L1-CONSOLE-EXIT=$?; \
             grep -c PHYLLOME-HVC-OUTPUT-FROM-GUEST /con.out > /count; \
             echo PHYLLOME-L1-CONSOLE-LINES=$(cat /count); \
             dd if=/rw.img bs=4096 skip=16 count=16 2>/dev/null | grep -c PHYLLOME-BLK-PATTERN > /count; \
             echo PHYLLOME-L1-PATTERN-LINES=$(cat /count); \
             dd if=/vu.img bs=4096 skip=8 count=16 2>/dev/null | grep -c PHYLLOME-VDC-PATTERN > /count; \
             echo PHYLLOME-L1-VU-PATTERN-LINES=$(cat /count)",
        )
        .output()
        .unwrap();
    let console = String::from_utf8_lossy(&out.stdout);
    for marker in [
        "virtio_blk virtio0: [vda] 32768 512-byte logical blocks",
        "PHYLLOME-BLOCK-DEVICES: vda vdb",
        "PHYLLOME-VDA-QUEUES=2",
        "PHYLLOME-VDA-WRITE-FLUSH-OK",
        "PHYLLOME-VDA-READBACK-OK",
        "PHYLLOME-VDB-RO=1",
        "PHYLLOME-VDB-READ-OK",
        "PHYLLOME-VDB-WRITE-REFUSED",
        "PHYLLOME-VDC-WRITE-FLUSH-OK",
        "PHYLLOME-VDC-READBACK-OK",
        "PHYLLOME-VMM-EXIT=0",
        "PHYLLOME-L1-BACKEND-EXIT=0",
        "PHYLLOME-HVC-INPUT=typed-by-host",
        "PHYLLOME-RNG-CURRENT=virtio_rng.0",
        "PHYLLOME-RNG-OK",
        "PHYLLOME-L1-CONSOLE-EXIT=0",
        "PHYLLOME-L1-CONSOLE-LINES=1",
        // 64 KiB of "PHYLLOME-BLK-PATTERN\n" is 3120 whole lines (the rest is cut off).
        "PHYLLOME-L1-PATTERN-LINES=3120",
        // 65536 / 21 again: "PHYLLOME-VDC-PATTERN\n" is 21 bytes too.
        "PHYLLOME-L1-VU-PATTERN-LINES=3120",
    ] {
        assert!(console.contains(marker), "missing {marker}:\n{console}");
    }
    // The first disk (slot 2, after the platform's functions) has its 64-bit BAR in the
    // window above 4 GiB where OVMF would put it: under QEMU's `-cpu max` (AMD, 40 bits),
    // the top eighth of the address space.
    let bar = console
        .lines()
        .find_map(|l| l.trim().strip_prefix("PHYLLOME-VIRTIO-BAR 0000:00:02.0 0x"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok());
    assert_eq!(bar, Some(0xe0_0000_0000), "{console}");
}

/// Linux's virtio_input driver binds our keyboard and tablet; its virtio_gpu driver on our
/// in-process GPU device brings up a framebuffer console;
/// text written to it reaches the dumped scanout. L1 sends the PNG back base64-encoded on
/// its console; the test decodes it and looks at the pixels (and keeps it for people to
/// look at in target/screenshots/).
#[test]
fn debian_kernel_draws_its_console_on_our_virtio_gpu_nested() {
    let _one = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let out = nested_virtio_guest("1")
        .args(["--cmdline", "console=tty0 console=ttyS0 reboot=k panic=-1"])
        .args([
            "--gpu",
            "640x480",
            "--dump-scanout",
            "/scanout.png",
            "--input",
        ])
        .env("PHYLLOME_NESTED_CHECK", phyllome_tests::SEND_SCANOUT_PNG)
        .output()
        .unwrap();
    let console = String::from_utf8_lossy(&out.stdout);
    for marker in [
        "PHYLLOME-GPU-FB=virtio_gpudrmfb 640,480",
        "PHYLLOME-DEVICE-TEST-DONE",
        "PHYLLOME-VMM-EXIT=0",
    ] {
        assert!(console.contains(marker), "missing {marker}:\n{console}");
    }
    // virtio_input binds both devices as evdev devices with the right capabilities: the
    // keyboard has keys (EV_SYN and EV_KEY: 3), the tablet keys, wheels and absolute axes
    // (f), X and Y (ABS=3).
    assert_eq!(
        guest_input_devices(&console),
        VIRTIO_INPUT_DEVICES,
        "{console}"
    );
    let shot = png_from_console(&console, "nested-gpu-console.png");

    let (w, h, rgb) = decode(&shot);
    assert_eq!((w, h), (640, 480));
    let (rows, share) = text_rows(w, h, &rgb, (0, 0, w, h));
    // A text console: some pixels lit (glyphs), most not (background), in lines.
    assert!((0.005..0.3).contains(&share), "lit share {share}");
    assert!(rows >= 8, "only {rows} rows of text");
}

/// Host-initiated resolution change with the real driver: L1 asks the running VM's
/// display for new sizes over its console connection (`phyllome-vmm display ... resize`,
/// what the app sends when its window is resized); the device raises its configuration
/// interrupt with the new display info and the guest's preferred mode follows. (Sizes
/// alternate, so that one sent before the driver came up still leaves a change to see.)
#[test]
fn a_display_resize_from_the_host_changes_the_guests_mode_nested() {
    let _one = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let out = nested_virtio_guest("1")
        .args([
            "--cmdline",
            "console=tty0 console=ttyS0 reboot=k panic=-1 phyllome.watchmode",
        ])
        .args(["--gpu", "640x480", "--display-socket", "/d.sock", "--input"])
        .env(
            "PHYLLOME_NESTED_SETUP",
            "(sleep 5; for i in $(seq 60); do \
               /phyllome-vmm display --socket /d.sock resize 800x600 2>/dev/null; sleep 2; \
               /phyllome-vmm display --socket /d.sock resize 1024x768 2>/dev/null; sleep 2; \
             done) &",
        )
        .output()
        .unwrap();
    let console = String::from_utf8_lossy(&out.stdout);
    let mode = |key: &str| -> String {
        console
            .lines()
            .find_map(|l| l.trim().strip_prefix(key))
            .unwrap_or_else(|| panic!("no {key}:\n{console}"))
            .trim()
            .to_owned()
    };
    let before = mode("PHYLLOME-GPU-MODE-BEFORE=");
    let after = mode("PHYLLOME-GPU-MODE-AFTER=");
    assert!(
        ["640x480", "800x600", "1024x768"].contains(&before.as_str()),
        "{before}\n{console}"
    );
    assert!(
        after != before && ["800x600", "1024x768"].contains(&after.as_str()),
        "the mode stayed {before} (then {after}):\n{console}"
    );
    assert!(console.contains("PHYLLOME-VMM-EXIT=0"), "{console}");
    eprintln!("the guest's preferred mode went from {before} to {after}");
}

#[test]
fn debian_kernel_boots_directly_where_the_host_has_hardware_virtualization() {
    if !has_hardware_virtualization() {
        println!("skipped: this CPU has neither vmx nor svm (see the nested tests)");
        return;
    }
    let assets = Assets::get();
    let out = Command::new("timeout")
        .arg("300")
        .arg(vmm_binary())
        .args([
            "run",
            "--cpus",
            "2",
            "--memory",
            "256",
            "--no-reboot",
            "--kernel",
        ])
        .arg(assets.kernel("cloud"))
        .arg("--initrd")
        .arg(assets.test_initrd())
        .output()
        .unwrap();
    let console = String::from_utf8_lossy(&out.stdout);
    assert!(console.contains("PHYLLOME-L2-INIT cpus=2"), "{console}");
    assert!(out.status.success());
}
