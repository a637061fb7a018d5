//! A 3D VM's host-visible region crosses the process boundary: the GPU process (`device
//! gpu`) offers it where its renderer's blobs are files (venus), our frontend asks for it
//! (`GET_SHMEM_CONFIG`) and puts it behind BAR 2 of the GPU with a shared-memory
//! capability, which a tiny guest finds the way Linux's virtio_pci driver does. A virgl
//! renderer on llvmpipe, whose mappable buffers are plain process memory, offers none, so
//! its guest sees no region and no blob feature.

#![allow(clippy::unwrap_used, reason = "a test")]

use phyllome_tests::ui::tiny_guest;
use phyllome_tests::vmm_binary;
use phyllome_vmm::config::{GpuConfig, Renderer};
use phyllome_vmm::{SerialOutput, StopReason, Vm, VmConfig, VmEvent};
use std::path::Path;
use std::time::{Duration, Instant};

/// Runs the capability-listing guest on a GPU drawing with `renderer`; its serial output.
fn listed(kernel: &Path, renderer: Renderer) -> String {
    let mut c = VmConfig::new(kernel);
    c.machine.memory_mib = 64;
    c.machine.no_reboot = true;
    c.serial.output = SerialOutput::Events;
    c.devices.gpu = Some(GpuConfig {
        width: 640,
        height: 480,
        dump_scanout: None,
        display_socket: None,
        renderer,
    });
    let handle = Vm::start(c).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut serial = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "the guest did not finish: {serial:?}");
        match handle.next_event(left) {
            Some(VmEvent::SerialOutput(b)) => serial.extend(b),
            Some(VmEvent::Stopped(reason)) => {
                assert_eq!(reason, StopReason::PowerOff);
                break;
            }
            _ => {}
        }
    }
    String::from_utf8_lossy(&serial).into_owned()
}

#[test]
fn the_gpu_process_region_reaches_the_guest_where_blobs_can_be_shared() {
    // SAFETY: this binary's only test sets it before any VM (and any thread of ours) starts.
    unsafe { std::env::set_var(phyllome_vmm::gpu_process::PROGRAM_ENV, vmm_binary()) };
    let dir = tempfile::tempdir().unwrap();
    let kernel = dir.path().join("shm_cap.elf");
    tiny_guest("shm_cap", &kernel);

    // venus: a 1 GiB region (the default), ID 1, behind BAR 2 of the GPU (1af4:1050).
    let venus = listed(&kernel, Renderer::Venus);
    assert!(
        venus.contains("PHYLLOME-SHM-CAP device=1050 bar=02 id=01 len=0000000040000000\n"),
        "{venus:?}"
    );
    assert_eq!(venus.matches("PHYLLOME-SHM-CAP").count(), 1, "{venus:?}");
    assert!(venus.ends_with("PHYLLOME-SHM-DONE\n"), "{venus:?}");

    // virgl on llvmpipe: nothing to share, so no region.
    let virgl = listed(&kernel, Renderer::Virgl);
    assert_eq!(virgl, "PHYLLOME-SHM-DONE\n");
}
