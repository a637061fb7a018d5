//! Block benchmark: 4 KiB random reads, 1 MiB sequential reads and 1 MiB sequential writes
//! through the vhost-user-blk protocol, driven by the same client (our harness acting as
//! frontend and guest driver, at queue depth 1 and at a depth a guest keeps in flight)
//! against `phyllome-vmm device blk` and against `qemu-storage-daemon` on the same image,
//! interleaved, medians of several rounds; plus the same patterns on the host file directly,
//! as a tight pread/pwrite loop and as `fio` (psync, or io_uring at depth) where it is
//! installed. Two tables: from the page cache, and around it (our `--cache none`, qsd's
//! `cache.direct=on`, fio `--direct=1`). The client waits for completions three ways: asleep
//! on its interrupt line, halt-polling first as KVM's vCPUs do, or watching the used ring.
//! Run with `cargo bench -p phyllome-vmm --bench blk`.

#![allow(
    clippy::unwrap_used,
    clippy::print_stdout,
    clippy::cast_possible_truncation,
    clippy::zombie_processes
)]

use phyllome_vmm::devices::virtio::pci::harness::{Driver, REQ_READ, REQ_WRITE};
use phyllome_vmm::devices::virtio::{VIRTIO_F_VERSION_1, VIRTIO_RING_F_EVENT_IDX};
use phyllome_vmm::vhost_user::VhostUserEngine;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const IMAGE_MIB: u64 = 256;
const RANDOM_READS: usize = 4000;
const ROUNDS: usize = 7;
/// Rounds around the page cache, where the disk's own speed makes each one slow.
const DIRECT_ROUNDS: usize = 5;

struct Pattern {
    name: &'static str,
    kind: u32,
    len: u32,
    count: usize,
    random: bool,
    depth: usize,
}

const fn pattern(name: &'static str, kind: u32, len: u32, random: bool, depth: usize) -> Pattern {
    Pattern {
        name,
        kind,
        len,
        count: if random {
            RANDOM_READS
        } else {
            IMAGE_MIB as usize
        },
        random,
        depth,
    }
}

const PATTERNS: [Pattern; 6] = [
    pattern("4 KiB random read", REQ_READ, 4096, true, 1),
    pattern("4 KiB random read", REQ_READ, 4096, true, 16),
    pattern("1 MiB sequential read", REQ_READ, 1 << 20, false, 1),
    pattern("1 MiB sequential read", REQ_READ, 1 << 20, false, 8),
    pattern("1 MiB sequential write", REQ_WRITE, 1 << 20, false, 1),
    pattern("1 MiB sequential write", REQ_WRITE, 1 << 20, false, 8),
];

/// A deterministic sequence of sector offsets (xorshift), 4 KiB aligned, inside the image.
fn offsets(p: &Pattern) -> Vec<u64> {
    let blocks = (IMAGE_MIB << 20) / u64::from(p.len);
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    (0..p.count as u64)
        .map(|i| {
            if p.random {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x % blocks) * u64::from(p.len)
            } else {
                (i % blocks) * u64::from(p.len)
            }
        })
        .collect()
}

fn run_driver(d: &mut Driver, p: &Pattern) -> Duration {
    let sectors: Vec<u64> = offsets(p).iter().map(|o| o / 512).collect();
    let start = Instant::now();
    if p.depth == 1 {
        for s in sectors {
            assert_eq!(d.request(p.kind, s, p.len), 0, "request failed");
        }
    } else {
        for batch in sectors.chunks(p.depth) {
            d.request_batch(p.kind, batch, p.len);
        }
    }
    start.elapsed()
}

fn run_host(file: &std::fs::File, p: &Pattern) -> Duration {
    let mut buf = vec![0x5au8; p.len as usize];
    let start = Instant::now();
    for off in offsets(p) {
        if p.kind == REQ_READ {
            file.read_exact_at(&mut buf, off).unwrap();
        } else {
            file.write_all_at(&buf, off).unwrap();
        }
    }
    start.elapsed()
}

/// What `fio` gets on the host file, from the page cache or around it as the backends:
/// requests per second
/// (psync at depth 1, io_uring at the pattern's depth), the median of three one-second runs;
/// `None` without fio.
fn run_fio(image: &Path, p: &Pattern, direct: bool) -> Option<f64> {
    let mut runs = Vec::new();
    for _ in 0..3 {
        let mut cmd = Command::new("fio");
        cmd.args([
            "--name=host",
            "--invalidate=0",
            "--runtime=1",
            "--time_based",
        ])
        .arg(format!("--direct={}", u8::from(direct)))
        .arg(format!("--filename={}", image.display()))
        .arg(format!("--bs={}", p.len))
        .arg(format!(
            "--rw={}",
            match (p.kind == REQ_READ, p.random) {
                (true, true) => "randread",
                (true, false) => "read",
                (false, true) => "randwrite",
                (false, false) => "write",
            }
        ))
        .args(if p.depth == 1 {
            vec!["--ioengine=psync".to_owned()]
        } else {
            vec![
                "--ioengine=io_uring".to_owned(),
                format!("--iodepth={}", p.depth),
            ]
        })
        .args(["--output-format=terse", "--terse-version=3"]);
        let out = cmd.output().ok()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let fields: Vec<&str> = text.trim().split(';').collect();
        // Terse v3: read IOPS is field 8, write IOPS field 49 (1-based).
        let iops: f64 = fields
            .get(if p.kind == REQ_READ { 7 } else { 48 })?
            .parse()
            .ok()?;
        runs.push(iops);
    }
    runs.sort_by(f64::total_cmp);
    runs.get(1).copied()
}

fn wait_socket(path: &Path) {
    for _ in 0..500 {
        if path.exists() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("{} never appeared", path.display());
}

fn connect(socket: &Path) -> Driver {
    wait_socket(socket);
    let ram = phyllome_vmm::memory::create(32 << 20).unwrap();
    let engine = VhostUserEngine::connect(2, 60, socket, 256).unwrap();
    let mut d = Driver::with_engine(Box::new(engine), ram.memory.clone());
    // The backend's completions wake the client directly, as a KVM irqfd wakes a vCPU.
    d.use_interrupt_lines();
    d.bring_up(VIRTIO_F_VERSION_1 | VIRTIO_RING_F_EVENT_IDX);
    d
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn rate(p: &Pattern, t: Duration) -> String {
    per_sec(p, p.count as f64 / t.as_secs_f64())
}

fn per_sec(p: &Pattern, per_sec: f64) -> String {
    if p.len == 4096 {
        format!("{per_sec:>9.0} IOPS")
    } else {
        format!("{:>9.0} MB/s", per_sec * f64::from(p.len) / 1e6)
    }
}

/// Where the two backends serve from: the page cache, or around it (direct I/O).
#[derive(Clone, Copy, PartialEq)]
enum Cache {
    Writeback,
    Direct,
}

/// Our backend and qemu-storage-daemon (its best set-up: an iothread, which polls,
/// `poll-max-ns` 32 µs by default) serving `image`, each with its own socket in `dir`.
fn start_backends(dir: &Path, image: &Path, cache: Cache) -> (Child, Child, Driver, Driver) {
    let tag = if cache == Cache::Direct {
        "direct"
    } else {
        "cached"
    };
    let ours_sock = dir.join(format!("ours-{tag}.sock"));
    let qsd_sock = dir.join(format!("qsd-{tag}.sock"));
    let ours: Child = Command::new(env!("CARGO_BIN_EXE_phyllome-vmm"))
        .args(["device", "blk", "--socket"])
        .arg(&ours_sock)
        .arg("--path")
        .arg(image)
        .args(if cache == Cache::Direct {
            &["--cache", "none"][..]
        } else {
            &[]
        })
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let direct = if cache == Cache::Direct { "on" } else { "off" };
    let qsd: Child = Command::new("qemu-storage-daemon")
        .arg("--blockdev")
        .arg(format!(
            "driver=file,node-name=file0,filename={},locking=off,cache.direct={direct}",
            image.display()
        ))
        .arg("--blockdev")
        .arg("driver=raw,node-name=disk0,file=file0")
        .args(["--object", "iothread,id=io0"])
        .arg("--export")
        .arg(format!(
            "type=vhost-user-blk,id=exp0,node-name=disk0,iothread=io0,addr.type=unix,addr.path={},writable=on",
            qsd_sock.display()
        ))
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let ours_d = connect(&ours_sock);
    let qsd_d = connect(&qsd_sock);
    (ours, qsd, ours_d, qsd_d)
}

/// Stops both backends: ours exits when its frontend goes, qsd is killed.
fn stop_backends(mut ours: Child, mut qsd: Child, ours_d: Driver, qsd_d: Driver) {
    drop((ours_d, qsd_d));
    let _ = ours.wait();
    let _ = qsd.kill();
    let _ = qsd.wait();
}

/// Rows met of each target: (rows, at least 1.0x qsd, within 80% of fio).
#[derive(Default)]
struct Met {
    rows: usize,
    qsd: usize,
    fio: usize,
}

impl Met {
    fn print(&self) {
        // The targets: at least 1.0x qemu-storage-daemon, and at least 80% of fio.
        println!(
            "at least 1.0x qemu-storage-daemon: {} of {} rows",
            self.qsd, self.rows
        );
        println!(
            "within 80% of fio on the host file: {} of {} rows",
            self.fio, self.rows
        );
    }
}

/// How the client waits for a completion.
#[derive(Clone, Copy)]
enum Client {
    /// Sleeps until its interrupt line (an irqfd) fires.
    Irq,
    /// Watches its line for 200 µs first, as KVM's halt polling keeps a halted vCPU.
    Kvm,
    /// Watches the used ring, asking for no interrupt.
    Poll,
}

impl Client {
    fn set(self, d: &mut Driver) {
        d.poll_completions = matches!(self, Self::Poll);
        d.halt_poll = match self {
            Self::Kvm => Duration::from_micros(200),
            _ => Duration::ZERO,
        };
    }

    fn name(self) -> &'static str {
        match self {
            Self::Irq => "irq",
            Self::Kvm => "kvm",
            Self::Poll => "poll",
        }
    }
}

/// How one table is measured.
struct Setup<'a> {
    image: &'a Path,
    cache: Cache,
    clients: &'a [Client],
    rounds: usize,
    /// The file for the tight pread loop, if that column is wanted.
    host: Option<&'a std::fs::File>,
}

/// Measures every pattern (or the one PHYLLOME_BENCH_PATTERN names) as `setup` says and
/// prints a table.
fn table(setup: &Setup<'_>, ours_d: &mut Driver, qsd_d: &mut Driver) -> Met {
    println!(
        "{:<24} {:>5} {:>6} {:>14} {:>14} {:>14} {:>14} {:>7} {:>7} {:>7}",
        "pattern",
        "depth",
        "client",
        "phyllome",
        "qemu-sd",
        "host pread",
        "host fio",
        "vs qsd",
        "vs pread",
        "vs fio"
    );
    // PHYLLOME_BENCH_PATTERN=N runs the Nth pattern only (for profiling).
    let only: Option<usize> = std::env::var("PHYLLOME_BENCH_PATTERN")
        .ok()
        .and_then(|v| v.parse().ok());
    let mut met = Met::default();
    for (n, p) in PATTERNS.iter().enumerate() {
        if only.is_some_and(|o| o != n) {
            continue;
        }
        let fio = run_fio(setup.image, p, setup.cache == Cache::Direct);
        for &client in setup.clients {
            client.set(ours_d);
            client.set(qsd_d);
            let (mut a, mut b, mut h) = (Vec::new(), Vec::new(), Vec::new());
            for round in 0..setup.rounds {
                // Who goes first changes each round: the first runner of a round was seen
                // to gain up to 20% on this machine.
                if round % 2 == 0 {
                    a.push(run_driver(ours_d, p));
                    b.push(run_driver(qsd_d, p));
                } else {
                    b.push(run_driver(qsd_d, p));
                    a.push(run_driver(ours_d, p));
                }
                if let Some(file) = setup.host {
                    h.push(run_host(file, p));
                }
            }
            let (a, b) = (median(&mut a), median(&mut b));
            let ours_rate = p.count as f64 / a.as_secs_f64();
            let vs_qsd = b.as_secs_f64() / a.as_secs_f64();
            let vs_fio = fio.map(|f| ours_rate / f);
            met.rows += 1;
            met.qsd += usize::from(vs_qsd >= 1.0);
            met.fio += usize::from(vs_fio.is_some_and(|r| r >= 0.8));
            let (pread, vs_pread) = if h.is_empty() {
                (format!("{:>14}", "-"), format!("{:>7}", "-"))
            } else {
                let h = median(&mut h);
                (
                    rate(p, h),
                    format!("{:>6.2}x", h.as_secs_f64() / a.as_secs_f64()),
                )
            };
            println!(
                "{:<24} {:>5} {:>6} {} {} {} {} {:>6.2}x {} {}",
                p.name,
                p.depth,
                client.name(),
                rate(p, a),
                rate(p, b),
                pread,
                fio.map_or_else(|| format!("{:>14}", "no fio"), |f| per_sec(p, f)),
                vs_qsd,
                vs_pread,
                vs_fio.map_or_else(|| "-".to_owned(), |r| format!("{r:>6.2}x"))
            );
        }
    }
    met
}

fn make_image(path: &Path) {
    let f = std::fs::File::create(path).unwrap();
    let chunk = vec![0xa5u8; 1 << 20];
    for i in 0..IMAGE_MIB {
        f.write_all_at(&chunk, i << 20).unwrap();
    }
    f.sync_all().unwrap();
}

fn main() {
    if Command::new("qemu-storage-daemon")
        .arg("--version")
        .output()
        .is_err()
    {
        println!("qemu-storage-daemon is missing (scripts/install-deps.sh installs it): no peer to measure");
        return;
    }
    let dir = tempfile::tempdir_in(
        std::env::var_os("PHYLLOME_BENCH_DIR").unwrap_or_else(|| "/var/tmp".into()),
    )
    .unwrap();
    println!(
        "images of {IMAGE_MIB} MiB in {}, interleaved rounds, medians",
        dir.path().display()
    );
    println!(
        "client \"irq\": sleeps until its interrupt line (an irqfd) fires; \"kvm\": watches the line for 200 µs first (KVM's halt polling); \"poll\": watches the used ring"
    );

    let image = dir.path().join("bench.img");
    make_image(&image);
    let host = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&image)
        .unwrap();
    println!("\nfrom the page cache ({ROUNDS} rounds; fio --invalidate=0)");
    let (ours, qsd, mut ours_d, mut qsd_d) = start_backends(dir.path(), &image, Cache::Writeback);
    let setup = Setup {
        image: &image,
        cache: Cache::Writeback,
        clients: &[Client::Irq, Client::Kvm, Client::Poll],
        rounds: ROUNDS,
        host: Some(&host),
    };
    table(&setup, &mut ours_d, &mut qsd_d).print();
    stop_backends(ours, qsd, ours_d, qsd_d);

    // Around the page cache: our cache=none, qsd's cache.direct=on and fio --direct=1 on
    // another image. The disk sets the pace, and a guest's vCPU sleeps (or halt-polls)
    // while it waits, so those two clients are measured.
    let direct_image = dir.path().join("direct.img");
    make_image(&direct_image);
    println!("\naround the page cache ({DIRECT_ROUNDS} rounds; cache=none, cache.direct=on, fio --direct=1)");
    let (ours, qsd, mut ours_d, mut qsd_d) =
        start_backends(dir.path(), &direct_image, Cache::Direct);
    let setup = Setup {
        image: &direct_image,
        cache: Cache::Direct,
        clients: &[Client::Irq, Client::Kvm],
        rounds: DIRECT_ROUNDS,
        host: None,
    };
    table(&setup, &mut ours_d, &mut qsd_d).print();
    stop_backends(ours, qsd, ours_d, qsd_d);
}
