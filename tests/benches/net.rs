//! Network benchmark: iperf3 in a Linux guest under QEMU (software emulation), guest to
//! host and host to guest, through our `phyllome-vmm device net --passt` (QEMU's
//! `-netdev vhost-user`) against QEMU's own virtio-net on `-netdev stream` to passt, the
//! same guest, kernel and passt. Everything runs in a network namespace of the benchmark's
//! own (see `phyllome_tests::netns`); the iperf3 servers listen on its 127.0.0.1, which
//! the guest reaches through passt's gateway address. The order of the two alternates
//! from round to round; the benchmark prints every run, the medians, our throughput as a
//! ratio of QEMU's (the target is at least 1.0x both ways), and the CPU time our backend
//! process spent per GiB it moved (its passt not counted: both contenders have one).
//!
//! `cargo bench -p phyllome-tests --bench net` (build the VMM first: `cargo build
//! --release -p phyllome-vmm`; needs root for the namespace). `PHYLLOME_BENCH_ROUNDS`
//! (default 5) rounds, `PHYLLOME_BENCH_SECONDS` (default 5) seconds each way;
//! `PHYLLOME_BENCH_LOGS=1` prints each run's backend log and guest console (with the
//! guest's TCP counters: retransmissions and out-of-order segments show frames lost on
//! the way; `RUST_LOG=info` adds our card's own counters).
//!
//! passt drops the frames its socket does not take when full, so both contenders depend
//! on the socket's send buffer, which the kernel caps at `net.core.wmem_max`: this
//! machine allows 4 MiB; Debian's default (212992 bytes) costs QEMU and us alike most of
//! the host-to-guest speed (see the README).

#![allow(
    clippy::unwrap_used,
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a benchmark binary: it reports on standard output and fails loudly"
)]

use phyllome_tests::desktop::Kill;
use phyllome_tests::netns::{in_own_network, Backend};
use phyllome_tests::Assets;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const MAC: &str = "52:54:00:12:34:56";
const GIB: f64 = (1u64 << 30) as f64;

/// What one run measured.
#[derive(Clone, Copy, Debug)]
struct Measured {
    /// Guest to host and host to guest, bits per second as the host's iperf3 counted them.
    up_bps: f64,
    down_bps: f64,
    /// Bytes moved, both ways together.
    bytes: f64,
    /// CPU time (user and system) our backend process used, for our runs.
    backend_cpu: Option<Duration>,
}

/// An unused TCP port on 127.0.0.1 (the kernel's pick, released again).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Whether something listens on 127.0.0.1:`port` in this thread's network namespace
/// (state 0A in `/proc/thread-self/net/tcp`). Asked this way rather than by connecting,
/// which a one-off iperf3 server would take for its one client.
fn tcp_listening(port: u16) -> bool {
    let local = format!("0100007F:{port:04X}");
    std::fs::read_to_string("/proc/thread-self/net/tcp")
        .unwrap_or_default()
        .lines()
        .any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 3 && f[1] == local && f[3] == "0A"
        })
}

/// A one-off iperf3 server on 127.0.0.1:`port`, its JSON report to `report`.
fn iperf_server(port: u16, report: &Path) -> Kill {
    let child = Command::new("iperf3")
        .args(["-s", "-1", "-J", "-B", "127.0.0.1", "-p", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(report).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .expect("iperf3 (Debian package iperf3) runs");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !tcp_listening(port) {
        assert!(
            Instant::now() < deadline,
            "iperf3 -s did not listen on port {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Kill(child)
}

/// What the host's iperf3 server counted in its JSON report (`sum`: `sum_received` where
/// the guest sends, `sum_sent` where it receives, as a server in reverse mode has no
/// receiver's count): bits per second and bytes.
fn counted(report: &Path, sum: &str) -> Result<(f64, f64), String> {
    let text = std::fs::read_to_string(report).map_err(|e| e.to_string())?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{e} in {text}"))?;
    let sum = &json["end"][sum];
    match (sum["bits_per_second"].as_f64(), sum["bytes"].as_f64()) {
        (Some(bps), Some(bytes)) if bytes > 0.0 => Ok((bps, bytes)),
        _ => Err(format!("no end.{sum} in {text}")),
    }
}

/// Waits for `child` to exit (up to 20 s, then kills it) and returns the CPU time it used
/// (`wait4`'s resource usage: user and system).
fn cpu_at_exit(mut child: Child) -> Duration {
    let pid = i32::try_from(child.id()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut status = 0;
        // SAFETY: an all-zero rusage is a valid value of that plain C struct.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: wait4 writes only to `status` and `usage`, which live across the call;
        // `pid` is our own child, not yet reaped (std's Child has not waited for it).
        let rc = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if rc == pid {
            let time = |t: libc::timeval| {
                Duration::from_secs(u64::try_from(t.tv_sec).unwrap())
                    + Duration::from_micros(u64::try_from(t.tv_usec).unwrap())
            };
            return time(usage.ru_utime) + time(usage.ru_stime);
        }
        assert!(rc == 0, "wait4: {}", std::io::Error::last_os_error());
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the backend did not exit after QEMU left");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One boot of the benchmark guest on `backend`: iperf3 up, then down.
fn run(backend: Backend, assets: &Assets, initrd: &Path, seconds: u32) -> Measured {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("net.sock");
    let log = dir.path().join("backend.log");
    let (up_port, down_port) = (free_port(), free_port());
    let (up_report, down_report) = (dir.path().join("up.json"), dir.path().join("down.json"));
    let up_server = iperf_server(up_port, &up_report);
    let down_server = iperf_server(down_port, &down_report);
    let backend_child = backend.start(&socket, &[], &log);
    let mut qemu = backend
        .qemu(
            assets,
            &socket,
            MAC,
            initrd,
            &format!("console=ttyS0 panic=-1 quiet phyllome.iperf={up_port},{down_port},{seconds}"),
            120 + 4 * seconds,
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut console = String::new();
    for line in BufReader::new(qemu.stdout.take().unwrap()).lines() {
        let line = line.unwrap_or_default();
        console.push_str(&line);
        console.push('\n');
    }
    qemu.wait().unwrap();
    let backend_cpu = match backend {
        Backend::Phyllome => Some(cpu_at_exit(backend_child)),
        Backend::QemuOnPasst => {
            drop(Kill(backend_child));
            None
        }
    };
    drop((up_server, down_server));
    if std::env::var_os("PHYLLOME_BENCH_LOGS").is_some() {
        println!(
            "{backend:?} backend log:\n{}\nconsole:\n{console}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }
    let fail = |what: &str, e: String| -> ! {
        panic!(
            "{backend:?}: {what}: {e}\n--- guest console:\n{console}\n--- backend:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        )
    };
    let (up_bps, up_bytes) =
        counted(&up_report, "sum_received").unwrap_or_else(|e| fail("guest to host", e));
    let (down_bps, down_bytes) =
        counted(&down_report, "sum_sent").unwrap_or_else(|e| fail("host to guest", e));
    Measured {
        up_bps,
        down_bps,
        bytes: up_bytes + down_bytes,
        backend_cpu,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn env_number(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// net-initrd.cpio with net-bench.cpio appended (the kernel unpacks both in turn).
fn bench_initrd(assets: &Assets, dir: &Path) -> PathBuf {
    let bench = assets.dir.join("net-bench.cpio");
    assert!(
        bench.exists(),
        "{} is missing: install iperf3 (scripts/install-deps.sh) and run scripts/guest-assets.sh",
        bench.display()
    );
    let mut bytes = std::fs::read(assets.dir.join("net-initrd.cpio")).unwrap();
    bytes.extend(std::fs::read(bench).unwrap());
    let path = dir.join("net-bench-initrd.cpio");
    std::fs::write(&path, bytes).unwrap();
    path
}

fn main() {
    // `cargo bench` passes --bench; there are no filters to honour.
    let rounds = env_number("PHYLLOME_BENCH_ROUNDS", 5).max(1);
    let seconds = env_number("PHYLLOME_BENCH_SECONDS", 5).max(1);
    let dir = tempfile::tempdir().unwrap();
    let assets = Assets::get();
    let initrd = bench_initrd(&assets, dir.path());
    println!(
        "network: iperf3 in a guest under QEMU TCG, {seconds} s each way, {rounds} rounds; \
         phyllome-vmm device net --passt (vhost-user) against QEMU's virtio-net on -netdev stream to passt"
    );
    let runs = in_own_network(move || {
        let mut runs: Vec<(Backend, Measured)> = Vec::new();
        for round in 0..rounds {
            let mut order = [Backend::Phyllome, Backend::QemuOnPasst];
            if round % 2 == 1 {
                order.reverse();
            }
            for backend in order {
                let m = run(backend, &assets, &initrd, seconds);
                println!(
                    "  round {} {:<12} up {:6.0} Mbit/s  down {:6.0} Mbit/s{}",
                    round + 1,
                    format!("{backend:?}"),
                    m.up_bps / 1e6,
                    m.down_bps / 1e6,
                    m.backend_cpu.map_or_else(String::new, |cpu| format!(
                        "  backend CPU {:.2} s for {:.2} GiB",
                        cpu.as_secs_f64(),
                        m.bytes / GIB
                    ))
                );
                runs.push((backend, m));
            }
        }
        runs
    });
    let pick = |backend: Backend, f: &dyn Fn(&Measured) -> f64| {
        median(
            runs.iter()
                .filter(|(b, _)| *b == backend)
                .map(|(_, m)| f(m))
                .collect(),
        )
    };
    for (what, f) in [
        (
            "guest to host",
            &(|m: &Measured| m.up_bps) as &dyn Fn(&Measured) -> f64,
        ),
        ("host to guest", &|m: &Measured| m.down_bps),
    ] {
        let ours = pick(Backend::Phyllome, f);
        let qemu = pick(Backend::QemuOnPasst, f);
        println!(
            "median {what}: phyllome-vmm {:6.0} Mbit/s  QEMU {:6.0} Mbit/s  ratio {:.2}x (target at least 1.0x)",
            ours / 1e6,
            qemu / 1e6,
            ours / qemu
        );
    }
    let per_gib = pick(Backend::Phyllome, &|m| {
        m.backend_cpu.map_or(f64::NAN, |c| c.as_secs_f64()) / (m.bytes / GIB)
    });
    println!("median CPU time of our backend process: {per_gib:.2} s per GiB moved");
}
