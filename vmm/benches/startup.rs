//! Start-up benchmark: `phyllome-vmm` against QEMU's microvm (with qboot, the fastest QEMU
//! set-up; `-cpu host,-arch-capabilities` because this machine's KVM refuses that MSR)
//! booting the same tiny PVH guest. For each, the time from process start to the
//! guest's first serial marker and the process's peak RSS, as medians of interleaved runs,
//! with the ratio. Run with `cargo bench -p phyllome-vmm --bench startup`.

#![allow(
    clippy::unwrap_used,
    clippy::print_stdout,
    clippy::cast_possible_truncation
)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const MARKER: &[u8] = b"PHYLLOME-PVH-OK";
const RUNS: usize = 21;

fn guest() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/guests");
    let out = std::env::temp_dir().join(format!("phyllome-bench-{}", std::process::id()));
    std::fs::create_dir_all(&out).unwrap();
    let obj = out.join("hello_pvh.o");
    let elf = out.join("hello_pvh.elf");
    assert!(Command::new("as")
        .args(["--64", "-I"])
        .arg(&dir)
        .arg("-o")
        .arg(&obj)
        .arg(dir.join("hello_pvh.S"))
        .status()
        .unwrap()
        .success());
    assert!(Command::new("ld")
        .args([
            "-m",
            "elf_x86_64",
            "-nostdlib",
            "--no-warn-rwx-segments",
            "-T"
        ])
        .arg(dir.join("guest.ld"))
        .arg("-o")
        .arg(&elf)
        .arg(&obj)
        .status()
        .unwrap()
        .success());
    elf
}

/// Spawns `cmd` (reaped with wait4 below, for its rusage), returns (time to marker, peak RSS in KiB); kills it after the marker.
#[allow(
    clippy::zombie_processes,
    reason = "reaped by wait4 to read its peak RSS"
)]
fn measure(cmd: &mut Command) -> (Duration, u64) {
    let start = Instant::now();
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let elapsed = loop {
        let n = stdout.read(&mut buf).unwrap();
        assert!(
            n > 0,
            "process exited before the marker: {:?}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&buf[..n]);
        if seen.windows(MARKER.len()).any(|w| w == MARKER) {
            break start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no marker in 30 s"
        );
    };
    let _ = child.kill();
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: rusage is plain data that wait4 fills in; `pid` is our unreaped child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointers to local variables; reaping our own child.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(r, pid);
    (elapsed, usage.ru_maxrss as u64)
}

fn median<T: Copy + Ord>(v: &mut [T]) -> T {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let elf = guest();
    let qboot = Path::new("/usr/share/qemu/qboot.rom");
    let qemu_ok = qboot.exists()
        && Command::new("qemu-system-x86_64")
            .arg("--version")
            .output()
            .is_ok();
    let (mut ours_t, mut ours_rss, mut qemu_t, mut qemu_rss) = (vec![], vec![], vec![], vec![]);
    for _ in 0..RUNS {
        let (t, rss) = measure(
            Command::new(env!("CARGO_BIN_EXE_phyllome-vmm"))
                .args(["run", "--memory", "64", "--serial", "stdio", "--kernel"])
                .arg(&elf),
        );
        ours_t.push(t);
        ours_rss.push(rss);
        if qemu_ok {
            let (t, rss) = measure(
                Command::new("qemu-system-x86_64")
                    .args([
                        "-M",
                        "microvm",
                        "-accel",
                        "kvm",
                        "-cpu",
                        "host,-arch-capabilities",
                        "-m",
                        "64",
                        "-nodefaults",
                        "-no-user-config",
                    ])
                    .args(["-display", "none", "-serial", "stdio", "-bios"])
                    .arg(qboot)
                    .arg("-kernel")
                    .arg(&elf),
            );
            qemu_t.push(t);
            qemu_rss.push(rss);
        }
    }
    let (ot, orss) = (median(&mut ours_t), median(&mut ours_rss));
    println!("guest: tiny PVH ELF, 64 MiB, {RUNS} interleaved runs, medians");
    println!(
        "phyllome-vmm        start->marker {:>8.1} ms   peak RSS {:>7.1} MiB",
        ot.as_secs_f64() * 1e3,
        orss as f64 / 1024.0
    );
    if qemu_ok {
        let (qt, qrss) = (median(&mut qemu_t), median(&mut qemu_rss));
        println!(
            "qemu microvm+qboot  start->marker {:>8.1} ms   peak RSS {:>7.1} MiB",
            qt.as_secs_f64() * 1e3,
            qrss as f64 / 1024.0
        );
        println!(
            "ratio (phyllome / qemu): time {:.2}x, peak RSS {:.2}x",
            ot.as_secs_f64() / qt.as_secs_f64(),
            orss as f64 / qrss as f64
        );
    } else {
        println!("qemu-system-x86_64 or qboot.rom missing: no peer measured (scripts/install-deps.sh installs them)");
    }
}
