//! A 3D VM's GPU runs in a process of its own (`phyllome-vmm device gpu`, under seccomp):
//! the VM starts it, serves the display through it, survives it being killed (and says
//! so), starts a fresh one when the guest resets, and leaves nothing behind when it stops.
//! The guest is a tiny one that spins (it never drives the GPU): what is tested here is
//! the process's life, not rendering (tests/tests/virgl_guest.rs renders through it).

#![allow(clippy::unwrap_used, reason = "a test")]

mod common;

use common::{config_for, watch, Observed};
use phyllome_vmm::config::{GpuConfig, Renderer};
use phyllome_vmm::console_conn::client::ConsoleClient;
use phyllome_vmm::{StopReason, Vm, VmCommand, VmEvent};
use std::path::Path;
use std::time::{Duration, Instant};

/// This process's children whose command line is `... device gpu ...`.
fn gpu_children() -> Vec<u32> {
    let me = std::process::id();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        // "pid (comm) state ppid ...": the comm may hold spaces, so split after ')'.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let words: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        let serves_gpu = words
            .windows(2)
            .any(|w| w[0] == b"device".as_slice() && w[1] == b"gpu".as_slice());
        if ppid == Some(me) && serves_gpu {
            found.push(pid);
        }
    }
    found
}

/// Waits up to 10 s for exactly one GPU child, and returns it.
fn one_gpu_child() -> u32 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let c = gpu_children();
        if c.len() == 1 {
            return c[0];
        }
        assert!(Instant::now() < deadline, "GPU processes: {c:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The "Seccomp:" mode in /proc/PID/status (2: filtered).
fn seccomp_mode(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Seccomp:"))
        .unwrap_or_default()
        .trim()
        .to_owned()
}

fn viewer_attaches(socket: &Path) {
    ConsoleClient::connect(socket).unwrap_or_else(|e| panic!("the display is served: {e}"));
}

#[test]
fn a_killed_graphics_process_leaves_the_vm_running_and_a_reset_brings_it_back() {
    // SAFETY: this binary's only test sets it before any VM (and any thread of ours) starts.
    unsafe {
        std::env::set_var(
            phyllome_vmm::gpu_process::PROGRAM_ENV,
            env!("CARGO_BIN_EXE_phyllome-vmm"),
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let display = dir.path().join("display.sock");
    let mut c = config_for("spin");
    c.machine.no_reboot = false;
    c.devices.input = true;
    c.devices.gpu = Some(GpuConfig {
        width: 640,
        height: 480,
        dump_scanout: None,
        display_socket: Some(display.clone()),
        renderer: Renderer::Virgl,
    });
    let handle = Vm::start(c).unwrap();
    let first = one_gpu_child();
    assert_eq!(seccomp_mode(first), "2", "the GPU process is filtered");
    viewer_attaches(&display);

    // Killed: the VM says so and goes on.
    let pid = libc::pid_t::try_from(first).unwrap();
    // SAFETY: kill() only signals; `pid` is our unreaped child (the VM's watcher reaps it).
    let killed = unsafe { libc::kill(pid, libc::SIGKILL) };
    assert_eq!(killed, 0);
    let mut seen = Observed::default();
    let stopped_msg = |s: &Observed| {
        s.events.iter().find_map(|e| match e {
            VmEvent::GraphicsStopped(m) => Some(m.clone()),
            _ => None,
        })
    };
    assert!(
        watch(&handle, &mut seen, Duration::from_secs(10), |s| {
            stopped_msg(s).is_some()
        }),
        "no GraphicsStopped event: {:?}",
        seen.events
    );
    let msg = stopped_msg(&seen).unwrap();
    assert!(msg.contains("signal 9"), "{msg}");
    assert!(msg.contains("still running"), "{msg}");
    handle.send(VmCommand::Pause).unwrap();
    handle.send(VmCommand::Resume).unwrap();
    assert!(
        watch(&handle, &mut seen, Duration::from_secs(10), |s| {
            s.events.iter().any(|e| matches!(e, VmEvent::Resumed))
        }),
        "the VM stopped answering: {:?}",
        seen.events
    );
    assert!(seen.stopped.is_none(), "{:?}", seen.stopped);

    // A reset starts a fresh, filtered process serving the same display socket.
    handle.send(VmCommand::Reset).unwrap();
    assert!(
        watch(&handle, &mut seen, Duration::from_secs(20), |s| {
            s.events.iter().any(|e| matches!(e, VmEvent::Rebooted))
        }),
        "{:?}",
        seen.events
    );
    let second = one_gpu_child();
    assert_ne!(first, second);
    assert_eq!(seccomp_mode(second), "2");
    viewer_attaches(&display);

    // Stopping the VM ends it, and its socket folder goes.
    handle.send(VmCommand::ForceOff).unwrap();
    assert!(watch(&handle, &mut seen, Duration::from_secs(20), |s| s
        .stopped
        .is_some()));
    assert_eq!(seen.stopped, Some(StopReason::ForcedOff));
    drop(handle);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !gpu_children().is_empty() {
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
