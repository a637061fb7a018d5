//! Firmware benchmark: phyllome-vmm against QEMU (`-machine pc`, KVM) running the same
//! Debian OVMF, the same installer ISO and the same empty disk, both inside one nested L1
//! (QEMU's emulation with kvm-amd, as the firmware tests run; this `/dev/kvm` cannot run
//! OVMF). Each run is the product's main job: the firmware starts, boots the installer's
//! GRUB from the ISO, the installer partitions the disk, installs a boot loader with an
//! NVRAM entry and reboots, and the installed system comes up from its own disk and powers
//! off. The host stamps L1's console lines as they arrive; for each VMM it prints the
//! time from process start to the installer's GRUB and to the end of the whole cycle, the
//! medians over interleaved rounds (the order alternates), and our time as a ratio of
//! QEMU's. The target is at most 0.8x. A run that the nested emulation stalls (it happens
//! to QEMU's guests and ours alike, see `run_nested`) is left out and said, and a fresh L1
//! takes the remaining runs.
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

use phyllome_tests::{run_asset_script, run_nested, vmm_binary, workspace, NestedEnd};
use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant};

const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";
const QEMU: &str = "/usr/bin/qemu-system-x86_64";
/// The option ROM QEMU's pc machine loads under KVM.
const VAPIC: &str = "/usr/share/qemu/kvmvapic.bin";
const ISO: &str = "fw-linux-installer.iso";
/// Console silence that means the nested emulation stalled (a good run is never quiet for
/// more than about 50 s).
const STALL: Duration = Duration::from_secs(150);

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

/// The runs of `rounds` rounds: both in each, in alternating order.
fn plan(rounds: usize) -> Vec<(usize, usize)> {
    (0..rounds)
        .flat_map(|round| {
            let first = round % 2;
            [(round, first), (round, 1 - first)]
        })
        .collect()
}

/// The shell text L1 runs for `runs` (round, contender): each on a fresh copy of the
/// variable store and a fresh empty disk, between BEGIN and END markers.
fn l1_script(runs: &[(usize, usize)]) -> String {
    let c = contenders();
    let mut s = String::new();
    for &(round, who) in runs {
        s.push_str(&format!(
            "cp /l2/OVMF_VARS_4M.fd /vars.fd; rm -f /target.img; \
             dd if=/dev/zero of=/target.img bs=1M count=0 seek=96 2>/dev/null; \
             echo PHYLLOME-BENCH-BEGIN {name} {round}; {cmd} </dev/null; \
             echo PHYLLOME-BENCH-END {name} {round} status=$?\n",
            name = c[who].name,
            cmd = c[who].command,
        ));
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
    let log_path = workspace().join("target/nested-logs/firmware-bench.log");
    std::fs::create_dir_all(log_path.parent().unwrap()).unwrap();
    let mut log = std::fs::File::create(&log_path).unwrap();
    let mut runs: Vec<(String, Run)> = Vec::new();
    let mut stalled: Vec<String> = Vec::new();
    let mut todo = plan(rounds);
    // One L1 for all the runs; a stall of the nested emulation (QEMU's guests and ours
    // both meet it, see run_nested) costs that run, and a fresh L1 takes the rest.
    while !todo.is_empty() {
        let mut command = Command::new(workspace().join("scripts/nested-kvm.sh"));
        command
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
            .env("PHYLLOME_NESTED_RUN", l1_script(&todo));
        // The run in progress: who, when it began, when each phase ended.
        let mut current: Option<(String, Instant, [Option<Duration>; PHASES.len()])> = None;
        let mut failed = None;
        let end = run_nested(&mut command, STALL, |line| {
            let now = Instant::now();
            let _ = log.write_all(line.as_bytes());
            let line = line.trim_end().replace('\r', "");
            if let Some(rest) = line.split("PHYLLOME-BENCH-BEGIN ").nth(1) {
                let name = rest
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                eprintln!("firmware bench: {rest}");
                current = Some((name, now, [None; PHASES.len()]));
            } else if line.contains("PHYLLOME-BENCH-END") {
                todo.remove(0);
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
                        failed.get_or_insert(format!(
                            "a run did not install and boot ({line}; phases ended: {:?})",
                            other.map(|o| (o.0, o.2))
                        ));
                    }
                }
            } else if let Some((_, begin, ends)) = current.as_mut() {
                for (i, (marker, _)) in PHASES.iter().enumerate() {
                    if line.contains(marker) && ends[i].is_none() {
                        ends[i] = Some(now - *begin);
                    }
                }
            }
        });
        if let Some(why) = failed {
            panic!("{why}; the console is in {}", log_path.display());
        }
        match end {
            NestedEnd::Stalled => {
                let who = current.map(|c| c.0).unwrap_or_else(|| "L1".into());
                eprintln!("firmware bench: {who}'s run stalled (no console output for {STALL:?}); a new L1 takes the rest");
                stalled.push(who);
                if !todo.is_empty() {
                    todo.remove(0);
                }
            }
            NestedEnd::Exited(_) => assert!(
                todo.is_empty(),
                "L1 ended before every run; the console is in {}",
                log_path.display()
            ),
        }
    }
    for name in ["phyllome", "qemu"] {
        assert!(
            runs.iter().any(|(n, _)| n == name),
            "no {name} run finished; the console is in {}",
            log_path.display()
        );
    }
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
    let count = |name: &str| runs.iter().filter(|(n, _)| n == name).count();
    println!(
        "firmware boot, nested (L1: QEMU TCG with kvm-amd, icount), {rounds} rounds, medians of \
         {} phyllome-vmm and {} QEMU runs{}:",
        count("phyllome"),
        count("qemu"),
        if stalled.is_empty() {
            String::new()
        } else {
            format!(" (stalled by the nested emulation, not counted: {stalled:?})")
        }
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
