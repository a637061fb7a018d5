//! A 3D VM's GPU runs in a process of its own (`phyllome-vmm device gpu`, under seccomp):
//! the VM starts it, serves the display through it, survives it being killed (and says
//! so), starts a fresh one when the guest resets, and leaves nothing behind when it stops.
//! The guest is a tiny one that spins (it never drives the GPU): what is tested here is the
//! process's life; tests/tests/virgl_guest.rs renders through the same program, filtered.

#![allow(clippy::unwrap_used, reason = "a test")]

use phyllome_tests::processes::{gpu_children, kill_hard, one_gpu_child, seccomp_mode};
use phyllome_tests::ui::tiny_guest;
use phyllome_tests::vmm_binary;
use phyllome_vmm::config::{GpuConfig, Renderer};
use phyllome_vmm::console_conn::client::ConsoleClient;
use phyllome_vmm::{SerialOutput, StopReason, Vm, VmCommand, VmConfig, VmEvent, VmHandle};
use std::path::Path;
use std::time::{Duration, Instant};

/// Collects events until one satisfies `want` (returned) or `secs` pass (panics).
fn wait_for(
    handle: &VmHandle,
    seen: &mut Vec<VmEvent>,
    secs: u64,
    want: impl Fn(&VmEvent) -> bool,
) -> VmEvent {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "waited {secs} s; events: {seen:?}");
        if let Some(e) = handle.next_event(left.min(Duration::from_millis(100))) {
            seen.push(e.clone());
            if want(&e) {
                return e;
            }
        }
    }
}

fn viewer_attaches(socket: &Path) {
    ConsoleClient::connect(socket).unwrap_or_else(|e| panic!("the display is served: {e}"));
}

#[test]
fn a_killed_graphics_process_leaves_the_vm_running_and_a_reset_brings_it_back() {
    // SAFETY: this binary's only test sets it before any VM (and any thread of ours) starts.
    unsafe { std::env::set_var(phyllome_vmm::gpu_process::PROGRAM_ENV, vmm_binary()) };
    let me = std::process::id();
    let dir = tempfile::tempdir().unwrap();
    let kernel = dir.path().join("spin.elf");
    tiny_guest("spin", &kernel);
    let display = dir.path().join("display.sock");
    let mut c = VmConfig::new(&kernel);
    c.machine.memory_mib = 64;
    c.serial.output = SerialOutput::Events;
    c.devices.input = true;
    c.devices.gpu = Some(GpuConfig {
        width: 640,
        height: 480,
        dump_scanout: None,
        display_socket: Some(display.clone()),
        renderer: Renderer::Virgl,
    });
    let handle = Vm::start(c).unwrap();
    let first = one_gpu_child(me, 10);
    assert_eq!(seccomp_mode(first), "2", "the GPU process is filtered");
    viewer_attaches(&display);

    // Killed: the VM says so and goes on.
    kill_hard(first);
    let mut seen = Vec::new();
    let VmEvent::GraphicsStopped(msg) = wait_for(&handle, &mut seen, 10, |e| {
        matches!(e, VmEvent::GraphicsStopped(_))
    }) else {
        unreachable!()
    };
    assert!(msg.contains("signal 9"), "{msg}");
    assert!(msg.contains("still running"), "{msg}");
    handle.send(VmCommand::Pause).unwrap();
    handle.send(VmCommand::Resume).unwrap();
    wait_for(&handle, &mut seen, 10, |e| matches!(e, VmEvent::Resumed));

    // A reset starts a fresh, filtered process serving the same display socket.
    handle.send(VmCommand::Reset).unwrap();
    wait_for(&handle, &mut seen, 20, |e| matches!(e, VmEvent::Rebooted));
    let second = one_gpu_child(me, 10);
    assert_ne!(first, second);
    assert_eq!(seccomp_mode(second), "2");
    viewer_attaches(&display);
    assert!(
        !seen
            .iter()
            .any(|e| matches!(e, VmEvent::Error(_) | VmEvent::Stopped(_))),
        "{seen:?}"
    );

    // Stopping the VM ends it, and its socket folder goes.
    handle.send(VmCommand::ForceOff).unwrap();
    let stopped = wait_for(&handle, &mut seen, 20, |e| matches!(e, VmEvent::Stopped(_)));
    assert!(matches!(stopped, VmEvent::Stopped(StopReason::ForcedOff)));
    drop(handle);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !gpu_children(me).is_empty() {
        assert!(Instant::now() < deadline, "the GPU process outlived its VM");
        std::thread::sleep(Duration::from_millis(50));
    }
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n.to_string_lossy().starts_with("gpu-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
