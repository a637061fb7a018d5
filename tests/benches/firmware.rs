//! Firmware benchmark: phyllome-vmm against QEMU (`-machine pc`, KVM) running the same
//! Debian OVMF, the same installer ISO and the same empty disk, both inside one nested L1
//! (QEMU's emulation with kvm-amd, as the firmware tests run; this `/dev/kvm` cannot run
//! OVMF). Each run is the product's main job: the firmware starts, boots the installer's
//! GRUB from the ISO, the installer partitions the disk, installs a boot loader with an
//! NVRAM entry and reboots, and the installed system comes up from its own disk and powers
//! off. The host stamps L1's console lines as they arrive; for each VMM it prints the
//! time from process start to the installer's GRUB and to the end of the whole cycle, the
//! medians over interleaved rounds (the order alternates), and our time as a ratio of
//! QEMU's. The target is at most 0.8x.
//!
//! `cargo bench -p phyllome-tests --bench firmware` (build the VMM first:
//! `cargo build --release -p phyllome-vmm`); `PHYLLOME_BENCH_ROUNDS` (default 3) rounds of
//! about 6 minutes each.

#![allow(
    clippy::unwrap_used,
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a benchmark binary: it reports on standard output and fails loudly"
)]

use phyllome_tests::desktop::Kill;
use phyllome_tests::{run_asset_script, vmm_binary, workspace};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";
const QEMU: &str = "/usr/bin/qemu-system-x86_64";
/// The option ROM QEMU's pc machine loads under KVM.
const VAPIC: &str = "/usr/share/qemu/kvmvapic.bin";
const ISO: &str = "fw-linux-installer.iso";

/// One VMM under test: its name and the L1 command line that runs it.
struct Contender {
    name: &'static str,
    command: String,
}

fn contenders() -> [Contender; 2] {
    let disks = format!("/l2/{ISO}");
    [
        Contender {
            name: "qemu",
            command: format!(
                "qemu-system-x86_64 -L /l2 -machine pc,accel=kvm -cpu host -smp 1 -m 512 \
                 -nodefaults -no-user-config -display none -serial stdio \
                 -drive if=pflash,format=raw,readonly=on,file=/l2/OVMF_CODE_4M.fd \
                 -drive if=pflash,format=raw,file=/vars.fd \
                 -drive if=virtio,format=raw,readonly=on,file={disks} \
                 -drive if=virtio,format=raw,file=/target.img"
            ),
        },
        Contender {
            name: "phyllome",
            command: format!(
                "/phyllome-vmm run --firmware /l2/OVMF_CODE_4M.fd --firmware-vars /vars.fd \
                 --cpus 1 --memory 512 --disk {disks},readonly --disk /target.img"
            ),
        },
    ]
}

/// The shell text L1 runs: every round runs both, in alternating order, each on a fresh
/// copy of the variable store and a fresh empty disk, between BEGIN and END markers, and
/// is stopped if it takes more than 15 minutes (a failed run, not a slow one).
fn l1_script(rounds: usize) -> String {
    let c = contenders();
    let mut s = String::new();
    for round in 0..rounds {
        let order: [&Contender; 2] = if round % 2 == 0 {
            [&c[0], &c[1]]
        } else {
            [&c[1], &c[0]]
        };
        for who in order {
            s.push_str(&format!(
                "cp /l2/OVMF_VARS_4M.fd /vars.fd; rm -f /target.img; \
                 dd if=/dev/zero of=/target.img bs=1M count=0 seek=96 2>/dev/null; \
                 echo PHYLLOME-BENCH-BEGIN {name} {round}; timeout 900 {cmd} </dev/null; \
                 echo PHYLLOME-BENCH-END {name} {round} status=$?\n",
                name = who.name,
                cmd = who.command,
            ));
        }
    }
    s
}

/// The console markers of one run, in the order they come, with what each ends.
const PHASES: [(&str, &str); 6] = [
    (
        "PHYLLOME-INSTALLER-GRUB",
        "firmware start to the installer's GRUB",
    ),
    (
        "PHYLLOME-INSTALLER-STARTED",
        "GRUB loads and starts the installer's Linux",
    ),
    (
        "PHYLLOME-INSTALLER-DONE",
        "the installer partitions, installs, adds the boot entry",
    ),
    (
        "PHYLLOME-INSTALLED-GRUB",
        "reboot: the firmware again, to the installed GRUB",
    ),
    ("PHYLLOME-INSTALLED-SYSTEM-UP", "the installed system boots"),
    (
        "PHYLLOME-BENCH-END",
        "it lists the boot entries and powers off, the VMM exits",
    ),
];

/// When each phase of one run ended, from the run's start.
type Run = [Duration; PHASES.len()];

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    for path in [OVMF_CODE, OVMF_VARS, QEMU, VAPIC] {
        assert!(
            std::path::Path::new(path).exists(),
            "{path} is missing: run scripts/install-deps.sh"
        );
    }
    let rounds: usize = std::env::var("PHYLLOME_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    let (assets, _) = run_asset_script("firmware-guest.sh", None);
    let mut child = Command::new(workspace().join("scripts/nested-kvm.sh"))
        .arg(vmm_binary())
        .args(["-", "-"])
        .env("PHYLLOME_NESTED_ICOUNT", "1")
        .env(
            "PHYLLOME_NESTED_FILES",
            format!(
                "{OVMF_CODE} {OVMF_VARS} {VAPIC} {}",
                assets.join(ISO).display()
            ),
        )
        .env("PHYLLOME_NESTED_BINS", QEMU)
        .env("PHYLLOME_NESTED_RUN", l1_script(rounds))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    // A failed run ends the benchmark, and with it the nested QEMU.
    let mut child = Kill(child);
    let log_path = workspace().join("target/nested-logs/firmware-bench.log");
    std::fs::create_dir_all(log_path.parent().unwrap()).unwrap();
    let mut log = String::new();
    let mut runs: Vec<(String, Run)> = Vec::new();
    // The run in progress: who, when it began, when each phase ended.
    let mut current: Option<(String, Instant, [Option<Duration>; PHASES.len()])> = None;
    let reader = BufReader::new(stdout);
    for line in reader.split(b'\n').map_while(Result::ok) {
        let now = Instant::now();
        let line = String::from_utf8_lossy(&line).replace(['\0', '\r'], "");
        log.push_str(&line);
        log.push('\n');
        if let Some(rest) = line.split("PHYLLOME-BENCH-BEGIN ").nth(1) {
            let name = rest
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_owned();
            eprintln!("firmware bench: {rest}");
            current = Some((name, now, [None; PHASES.len()]));
        } else if line.contains("PHYLLOME-BENCH-END") {
            if let Some((_, begin, ends)) = current.as_mut() {
                ends[PHASES.len() - 1] = Some(now - *begin);
            }
            match current.take() {
                Some((name, _, ends))
                    if line.ends_with("status=0") && ends.iter().all(Option::is_some) =>
                {
                    let run: Run = ends.map(Option::unwrap_or_default);
                    eprintln!("firmware bench: {name}: {run:.1?}");
                    runs.push((name, run));
                }
                other => {
                    std::fs::write(&log_path, &log).unwrap();
                    panic!(
                        "a run did not install and boot ({line}; phases ended: {:?}); the console is in {}",
                        other.map(|o| (o.0, o.2)),
                        log_path.display()
                    );
                }
            }
        } else if let Some((_, begin, ends)) = current.as_mut() {
            for (i, (marker, _)) in PHASES.iter().enumerate() {
                if line.contains(marker) && ends[i].is_none() {
                    ends[i] = Some(now - *begin);
                }
            }
        }
    }
    let _ = child.0.wait();
    std::fs::write(&log_path, &log).unwrap();
    assert_eq!(
        runs.len(),
        rounds * 2,
        "not every run finished; the console is in {}",
        log_path.display()
    );
    let pick = |name: &str, f: &dyn Fn(&Run) -> Duration| {
        median(
            runs.iter()
                .filter(|(n, _)| n == name)
                .map(|(_, r)| f(r))
                .collect(),
        )
    };
    let line = |what: &str, f: &dyn Fn(&Run) -> Duration| {
        let ours = pick("phyllome", f);
        let qemu = pick("qemu", f);
        println!(
            "  {what:<58} phyllome-vmm {:6.1} s  QEMU {:6.1} s  ratio {:.2}x",
            ours.as_secs_f64(),
            qemu.as_secs_f64(),
            ours.as_secs_f64() / qemu.as_secs_f64()
        );
    };
    println!(
        "firmware boot, nested (L1: QEMU TCG with kvm-amd, icount), {rounds} rounds, medians:"
    );
    line("firmware start to the installer's GRUB", &|r| r[0]);
    line(
        "the whole cycle: install, reboot, installed system, off",
        &|r| r[PHASES.len() - 1],
    );
    println!("phases:");
    for (i, (_, what)) in PHASES.iter().enumerate() {
        line(what, &|r| {
            r[i] - if i == 0 { Duration::ZERO } else { r[i - 1] }
        });
    }
}
