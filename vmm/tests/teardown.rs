//! A stopped VM leaves nothing behind: no thread, no file descriptor. This is the only
//! test in its binary, so nothing else changes the process's counts while it runs.

#![allow(clippy::unwrap_used)]

mod common;

use common::{config_for, run_to_stop};
use phyllome_vmm::{StopReason, Vm, VmCommand};
use std::time::Duration;

fn count(dir: &str) -> usize {
    std::fs::read_dir(dir).unwrap().count()
}

#[test]
fn stopped_vms_leave_no_threads_or_fds() {
    // Warm up: assemble the guests and let lazily created process state settle.
    let smp = {
        let mut c = config_for("smp");
        c.machine.cpus = 2;
        c
    };
    run_to_stop(smp.clone(), Duration::from_secs(60));
    let spin = config_for("spin");
    let (fds, threads) = (count("/proc/self/fd"), count("/proc/self/task"));

    for _ in 0..3 {
        let seen = run_to_stop(smp.clone(), Duration::from_secs(60));
        assert_eq!(seen.stopped, Some(StopReason::PowerOff));
        // A running VM forced off, and one dropped without a word.
        let h = Vm::start(spin.clone()).unwrap();
        h.send(VmCommand::ForceOff).unwrap();
        assert_eq!(h.wait(|_| {}), StopReason::ForcedOff);
        drop(Vm::start(spin.clone()).unwrap());
    }
    assert_eq!(count("/proc/self/task"), threads, "threads left behind");
    assert_eq!(count("/proc/self/fd"), fds, "file descriptors left behind");
}
