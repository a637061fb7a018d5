//! Vulkan in a guest through venus, end to end where the pieces exist: Debian's kernel and
//! Mesa (the 3D test guest, `scripts/gl-guest.sh`) under QEMU/TCG with `vhost-user-gpu-pci`
//! on our `phyllome-vmm device gpu --renderer venus`.
//!
//! What it checks everywhere: the guest's virtio-gpu driver sees 3D and our three capsets
//! (virgl, virgl2 and venus). Guest Vulkan then needs four more things, and the test names
//! each one that is missing: the frontend passing context-init and blob resources and a
//! host-visible region to the guest (QEMU's vhost-user-gpu passes none of them), a host
//! virglrenderer whose venus speaks a wire format newer than 0 (Debian 12's 0.10.4 reports
//! 0), and a guest Mesa with the venus driver (Debian 12's Mesa 22.3 ships none;
//! bookworm-backports' Mesa 25.0 has it, `libvulkan_virtio.so`, but the two host-side gaps
//! stop Vulkan first, so the test guest keeps Debian 12's Mesa that the virgl tests and
//! their QEMU comparison use). Where all are there, `vulkaninfo` in the guest must name the
//! "Virtio-GPU Venus" device.

#![allow(clippy::unwrap_used, reason = "a test")]

use phyllome_tests::desktop::Kill;
use phyllome_tests::{gl_guest_assets, gl_guest_on_gpu, vmm_binary, wait_for_path};
use std::process::Command;
use std::time::{Duration, Instant};

/// The guest's `virtio-gpu-features` line for `name` ("virgl", "cap sets", ...).
fn feature<'a>(serial: &'a str, name: &str) -> Option<&'a str> {
    serial.lines().find_map(|l| {
        let (key, value) = l.strip_prefix("PHYLLOME-GPU-FEATURE ")?.split_once(':')?;
        (key.trim() == name).then(|| value.trim())
    })
}

#[test]
fn a_guest_sees_the_venus_capset_and_gets_vulkan_where_the_stack_allows() {
    let assets = gl_guest_assets();
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);
    let backend = Command::new(vmm_binary())
        .args([
            "device",
            "gpu",
            "--renderer",
            "venus",
            "--size",
            "800x600",
            "--socket",
        ])
        .arg(p("gpu.sock"))
        .spawn()
        .unwrap();
    let _backend = Kill(backend);
    wait_for_path(&p("gpu.sock"));
    let mut qemu = gl_guest_on_gpu(&assets, &p("serial.txt"), "phyllome.vulkan", &p("gpu.sock"));
    let serial = || {
        String::from_utf8_lossy(&std::fs::read(p("serial.txt")).unwrap_or_default()).into_owned()
    };
    let deadline = Instant::now() + Duration::from_secs(180);
    while !serial().contains("PHYLLOME-GL-TEST-DONE") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = qemu.0.kill();
    let console = serial();
    assert!(
        console.contains("PHYLLOME-GL-TEST-DONE"),
        "the guest never finished:\n{console}"
    );

    // Everywhere: 3D, and our three capsets, reached the guest's driver.
    assert_eq!(feature(&console, "virgl"), Some("yes"), "{console}");
    assert_eq!(
        feature(&console, "cap sets"),
        Some("3"),
        "virgl, virgl2 and venus:\n{console}"
    );

    // What guest Vulkan still lacks here, each named.
    let mut missing = Vec::new();
    for (name, what) in [
        (
            "context init",
            "the frontend does not pass context-init (VIRTIO_GPU_F_CONTEXT_INIT)",
        ),
        (
            "blob resources",
            "the frontend does not pass blob resources (VIRTIO_GPU_F_RESOURCE_BLOB)",
        ),
    ] {
        if feature(&console, name) != Some("yes") {
            missing.push(what.to_owned());
        }
    }
    if feature(&console, "host visible region").is_none() {
        missing.push("the guest has no host-visible region (virtio shared memory 1)".into());
    }
    let wire = phyllome_vmm::devices::virtio::gpu::virgl::venus_wire_format();
    if !matches!(wire, Ok(Some(v)) if v > 0) {
        missing.push(format!(
            "the host's virglrenderer reports venus wire format {wire:?} (needs 1 or newer: virglrenderer 1.0)"
        ));
    }
    let icds = console
        .lines()
        .find_map(|l| l.strip_prefix("PHYLLOME-VULKAN-ICDS"))
        .unwrap_or_default();
    if !icds.contains("virtio") {
        missing.push(format!(
            "the guest's Mesa has no venus driver (its Vulkan drivers: {})",
            icds.trim()
        ));
    }
    let devices: Vec<&str> = console
        .lines()
        .filter_map(|l| l.strip_prefix("PHYLLOME-VULKAN "))
        .collect();
    if missing.is_empty() {
        assert!(
            devices.iter().any(|d| d.contains("Virtio-GPU Venus")),
            "everything venus needs is there, yet the guest's Vulkan devices are {devices:?}:\n{console}"
        );
    } else {
        eprintln!(
            "Guest Vulkan through venus cannot run here:\n  - {}\n(the guest's Vulkan devices: {devices:?})",
            missing.join("\n  - ")
        );
        // Whatever the guest found, it is not our device.
        assert!(!devices.iter().any(|d| d.contains("Venus")), "{devices:?}");
    }
}
