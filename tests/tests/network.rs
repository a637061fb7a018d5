//! Linux's own virtio-net driver on passt: Debian's kernel under QEMU (software emulation)
//! with `-netdev vhost-user` on `phyllome-vmm device net --passt`. The guest takes a DHCP
//! lease from passt (address, default route and MTU from it), fetches a page and 4 MiB over
//! HTTP from a server this test runs on the host's 127.0.0.1 (through the gateway address),
//! posts 4 MiB back to it (checksums compared on the host), and answers a
//! connection forwarded in from a host port (`--forward tcp:HOST:GUEST`). The same guest
//! on QEMU's own `virtio-net-pci` with `-netdev stream` to a passt of the test's own shows
//! that the test itself is right.
//!
//! Everything runs in a network namespace the test makes (loopback, and a veth pair whose
//! far end is down and goes nowhere, with an address and a default route through it, which
//! passt needs): no packet leaves this machine. Making it needs root (`CAP_SYS_ADMIN`).

#![allow(clippy::unwrap_used, reason = "a test")]

use phyllome_tests::desktop::Kill;
use phyllome_tests::{vmm_binary, Assets};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

static ONE_QEMU_AT_A_TIME: Mutex<()> = Mutex::new(());

/// The guest's MAC address.
const MAC: &str = "52:54:00:12:34:56";
/// The host end of the namespace's veth, which passt gives the guest by DHCP.
const HOST_ADDRESS: &str = "10.0.2.15/24";
/// The namespace's default gateway (nobody answers there): the guest's gateway, which
/// passt maps to the host's 127.0.0.1.
const GATEWAY: &str = "10.0.2.2";
/// The host port forwarded in, and the guest port it reaches.
const HOST_PORT: u16 = 10022;
const GUEST_PORT: u16 = 7777;
/// The page the host's HTTP server serves at `/page`.
const PAGE: &str = "hello from the host's HTTP server\n";
/// What the host says on the forwarded connection.
const PING: &str = "PING FROM THE HOST\n";
/// The guest's answer there: this line, then the first MiB of the download.
const REPLY_LINE: &str = "PHYLLOME-FORWARDED-REPLY\n";
const MIB: usize = 1 << 20;

/// Who gives the guest its network.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Backend {
    /// `phyllome-vmm device net --passt` behind QEMU's `-netdev vhost-user`.
    Phyllome,
    /// QEMU's own virtio-net on `-netdev stream` to a passt of the test's own.
    QemuOnPasst,
}

/// What one run saw.
struct Run {
    console: String,
    /// What the host's HTTP server received at `POST /upload`: its length and SHA-256.
    upload: Option<(usize, String)>,
    /// What the host read on the forwarded connection.
    forwarded: Option<Result<Vec<u8>, String>>,
    /// The backend's (or passt's) exit, and what it wrote to standard error.
    backend_status: Option<ExitStatus>,
    backend_log: String,
    qemu_log: String,
    /// Whether the forwarded host port still took connections after QEMU left.
    port_open_after: bool,
    seconds: f64,
}

fn sha256(bytes: &[u8]) -> String {
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

/// 4 MiB of reproducible pseudo-random bytes (xorshift): what `/blob` serves.
fn blob() -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9;
    (0..4 * MIB)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x.to_le_bytes()[0]
        })
        .collect()
}

/// Runs `f` on a thread of its own inside a new network namespace: loopback up, and a veth
/// pair (both ends here; the far one stays down, so nothing answers) with
/// [`HOST_ADDRESS`] and a default route via [`GATEWAY`]. The namespace belongs to that
/// thread alone (and to the threads and processes it starts), never to the test harness's
/// other threads.
fn in_own_network<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(move || {
        // SAFETY: unshare takes no pointers; CLONE_NEWNET moves only this thread.
        let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
        assert_eq!(
            rc,
            0,
            "cannot make a network namespace (unshare: {}): the network test needs root, \
             so that no packet leaves this machine",
            std::io::Error::last_os_error()
        );
        for args in [
            "link set lo up",
            "link add veth0 type veth peer name veth1",
            &format!("addr add {HOST_ADDRESS} dev veth0"),
            "link set veth0 up",
            &format!("route add default via {GATEWAY} dev veth0"),
        ] {
            let out = Command::new("ip")
                .args(args.split(' '))
                .output()
                .expect("ip (iproute2) runs");
            assert!(
                out.status.success(),
                "ip {args}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        f()
    })
    .join()
    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// Accepts one connection on `listener` (non-blocking) unless `stop` is set first.
fn accept(listener: &TcpListener, stop: &AtomicBool) -> Option<TcpStream> {
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false).unwrap();
                stream
                    .set_read_timeout(Some(Duration::from_secs(120)))
                    .unwrap();
                return Some(stream);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if stop.load(Ordering::Relaxed) {
                    return None;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
}

/// What the host's HTTP server received at `POST /upload`: its length and SHA-256.
type Upload = Arc<Mutex<Option<(usize, String)>>>;

/// A tiny HTTP/1.0 server on `listener`, until `stop`: `GET /page` is [`PAGE`],
/// `GET /blob` is `blob`; `POST /upload` reads the body (`Content-Length`), keeps its
/// length and SHA-256 in `upload` and answers with them; anything else is 404.
fn serve_http(listener: TcpListener, blob: Arc<Vec<u8>>, upload: Upload, stop: Arc<AtomicBool>) {
    while let Some(mut stream) = accept(&listener, &stop) {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            match stream.read(&mut byte) {
                Ok(1) => head.push(byte[0]),
                _ => break,
            }
        }
        let head = String::from_utf8_lossy(&head);
        let mut words = head.split(' ');
        let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
        let length: usize = head
            .lines()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse().ok())?
            })
            .unwrap_or(0);
        let ack;
        let (status, body): (&str, &[u8]) = match (method, path) {
            ("GET", "/page") => ("200 OK", PAGE.as_bytes()),
            ("GET", "/blob") => ("200 OK", &blob),
            ("POST", "/upload") => {
                let mut data = vec![0; length];
                if let Err(e) = stream.read_exact(&mut data) {
                    ack = format!("read {length} bytes: {e}\n");
                } else {
                    let sum = sha256(&data);
                    ack = format!("received {length} bytes, sha256 {sum}\n");
                    *upload.lock().unwrap() = Some((length, sum));
                }
                ("200 OK", ack.as_bytes())
            }
            _ => ("404 Not Found", b"no such page\n"),
        };
        let head = format!(
            "HTTP/1.0 {status}\r\nContent-Type: application/octet-stream\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        // A guest that gives up mid-body is the guest's failure, seen on its console.
        let _ = stream
            .write_all(head.as_bytes())
            .and_then(|()| stream.write_all(body));
        let _ = stream.shutdown(Shutdown::Both);
    }
}

/// The host's side of the forwarded connection: connects to 127.0.0.1:[`HOST_PORT`],
/// says [`PING`] and reads the guest's answer to its end.
fn connect_forwarded() -> Result<Vec<u8>, String> {
    let mut stream = TcpStream::connect(("127.0.0.1", HOST_PORT))
        .map_err(|e| format!("connect to 127.0.0.1:{HOST_PORT}: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    stream
        .write_all(PING.as_bytes())
        .map_err(|e| format!("write: {e}"))?;
    let mut got = Vec::new();
    stream
        .read_to_end(&mut got)
        .map_err(|e| format!("read (after {} bytes): {e}", got.len()))?;
    Ok(got)
}

/// Whether a Unix socket at `path` is listening in this thread's network namespace
/// (`/proc/thread-self/net/unix`: flag `00010000` is `__SO_ACCEPTCON`). A socket file
/// appears at bind, a moment before its listen: a client that came then would be refused.
fn unix_listening(path: &Path) -> bool {
    let path = path.to_string_lossy();
    std::fs::read_to_string("/proc/thread-self/net/unix")
        .unwrap_or_default()
        .lines()
        .any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() >= 8 && f[3] == "00010000" && f[7] == path
        })
}

/// Waits (up to 20 s) for `child` to listen at `socket`; panics with its log when it
/// exits first or never does.
fn wait_for_listener(child: &mut Child, socket: &Path, what: &str, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !unix_listening(socket) {
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "{what} exited ({status}) before it listened on {}:\n{}",
                socket.display(),
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!(
                "{what} did not listen on {} within 20 s:\n{}",
                socket.display(),
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits up to `seconds` for `child` to exit.
fn wait_exit(child: &mut Child, seconds: u64) -> Option<ExitStatus> {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether 127.0.0.1:[`HOST_PORT`] still takes connections after up to 5 s of asking.
fn forward_still_open() -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", HOST_PORT)).is_err() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    true
}

/// Boots the network guest on `backend`, serving it from the host's 127.0.0.1 (in the
/// namespace this thread is in).
fn run_guest(backend: Backend, blob: &Arc<Vec<u8>>, assets: &Assets) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("net.sock");
    let backend_log = dir.path().join("backend.log");
    let qemu_log = dir.path().join("qemu.log");

    let stop = Arc::new(AtomicBool::new(false));
    let http = TcpListener::bind("127.0.0.1:0").unwrap();
    let http_port = http.local_addr().unwrap().port();
    http.set_nonblocking(true).unwrap();
    let upload = Upload::default();
    let http_thread = {
        let (blob, upload, stop) = (Arc::clone(blob), Arc::clone(&upload), Arc::clone(&stop));
        std::thread::spawn(move || serve_http(http, blob, upload, stop))
    };

    let mut backend_child = Kill(match backend {
        Backend::Phyllome => Command::new(vmm_binary())
            .args(["device", "net", "--socket"])
            .arg(&socket)
            .arg("--passt")
            .arg("--forward")
            .arg(format!("tcp:{HOST_PORT}:{GUEST_PORT}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&backend_log).unwrap())
            .spawn()
            .unwrap(),
        Backend::QemuOnPasst => {
            // As root, passt would switch to nobody, who cannot reach the socket's folder.
            // SAFETY: getuid has no preconditions.
            let uid = unsafe { libc::getuid() };
            Command::new("passt")
                .args(["-f", "-1", "--runas", &uid.to_string(), "-s"])
                .arg(&socket)
                .arg("-t")
                .arg(format!("{HOST_PORT}:{GUEST_PORT}"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&backend_log).unwrap())
                .spawn()
                .expect("passt (Debian package passt) runs")
        }
    });
    let what = match backend {
        Backend::Phyllome => "phyllome-vmm device net",
        Backend::QemuOnPasst => "passt",
    };
    wait_for_listener(&mut backend_child.0, &socket, what, &backend_log);

    let mut qemu = Command::new("timeout");
    qemu.args(["-k", "10", "180", "qemu-system-x86_64", "-accel", "tcg"])
        .args(["-m", "256", "-nodefaults", "-display", "none"])
        .args(["-serial", "stdio", "-no-reboot"])
        .arg("-kernel")
        .arg(assets.kernel("generic"))
        .arg("-initrd")
        .arg(assets.dir.join("net-initrd.cpio"))
        .arg("-append")
        .arg(format!(
            "console=ttyS0 panic=-1 quiet phyllome.net={http_port},{GUEST_PORT}"
        ));
    match backend {
        Backend::Phyllome => {
            qemu.args([
                "-object",
                "memory-backend-memfd,id=mem,size=256M,share=on",
                "-machine",
                "pc,memory-backend=mem",
            ])
            .arg("-chardev")
            .arg(format!("socket,id=c0,path={}", socket.display()))
            .args(["-netdev", "vhost-user,id=n0,chardev=c0"])
            .arg("-device")
            .arg(format!("virtio-net-pci,netdev=n0,mac={MAC},host_mtu=65520"));
        }
        Backend::QemuOnPasst => {
            qemu.arg("-device")
                .arg(format!("virtio-net-pci,netdev=n0,mac={MAC}"))
                .arg("-netdev")
                .arg(format!(
                    "stream,id=n0,server=off,addr.type=unix,addr.path={}",
                    socket.display()
                ));
        }
    }
    let started = Instant::now();
    let mut child = qemu
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&qemu_log).unwrap())
        .spawn()
        .unwrap();
    let mut console = String::new();
    let mut forward_thread: Option<JoinHandle<Result<Vec<u8>, String>>> = None;
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = Vec::new();
    while stdout.read_until(b'\n', &mut line).unwrap_or(0) > 0 {
        let text = String::from_utf8_lossy(&line);
        if text.contains("PHYLLOME-LISTENING") && forward_thread.is_none() {
            forward_thread = Some(std::thread::spawn(connect_forwarded));
        }
        console.push_str(text.trim_end());
        console.push('\n');
        line.clear();
    }
    child.wait().unwrap();
    let seconds = started.elapsed().as_secs_f64();

    stop.store(true, Ordering::Relaxed);
    http_thread.join().unwrap();
    let upload = upload.lock().unwrap().take();
    let forwarded = forward_thread.map(|t| t.join().unwrap());
    let backend_status = wait_exit(&mut backend_child.0, 10);
    let port_open_after = backend == Backend::Phyllome && forward_still_open();
    drop(backend_child);
    Run {
        console,
        upload,
        forwarded,
        backend_status,
        backend_log: std::fs::read_to_string(&backend_log).unwrap_or_default(),
        qemu_log: std::fs::read_to_string(&qemu_log).unwrap_or_default(),
        port_open_after,
        seconds,
    }
}

/// The value of the console line `PHYLLOME-<key>=...`.
fn marker<'a>(console: &'a str, key: &str) -> Option<&'a str> {
    let key = format!("PHYLLOME-{key}=");
    console
        .lines()
        .find_map(|l| l.trim().strip_prefix(key.as_str()))
}

/// The guest's checks, common to both backends.
fn check(run: &Run, blob: &[u8], label: &str) {
    let console = &run.console;
    let context = format!(
        "{label}\n--- console:\n{console}\n--- backend (exit: {}):\n{}\n--- QEMU:\n{}",
        run.backend_status
            .map_or_else(|| "none yet".to_owned(), |s| s.to_string()),
        run.backend_log,
        run.qemu_log
    );
    println!(
        "{label}: QEMU ran {:.1} s; guest uptime: lease at {} s, 4 MiB down {} s, 4 MiB up {} s, done {} s",
        run.seconds,
        marker(console, "NET-LEASE-AT").unwrap_or("?"),
        marker(console, "DOWNLOAD-TIME").unwrap_or("?"),
        marker(console, "UPLOAD-TIME").unwrap_or("?"),
        console
            .lines()
            .find_map(|l| l.trim().strip_prefix("PHYLLOME-NET-TEST-DONE at "))
            .unwrap_or("?"),
    );
    // Shown with --nocapture (and by a failing test's output).
    println!("{label}: the guest's console:\n{console}");
    assert!(!console.contains("INSMOD-FAILED"), "{context}");
    assert!(
        !console.contains("PHYLLOME-NET-NO-LEASE"),
        "the guest got no DHCP lease from passt: {context}"
    );
    let host_ip = HOST_ADDRESS.split('/').next().unwrap();
    for (key, want) in [
        ("NET-MAC", MAC.to_owned()),
        ("NET-ADDRESS", HOST_ADDRESS.to_owned()),
        ("NET-GATEWAY", GATEWAY.to_owned()),
        ("NET-LEASE-MTU", "65520".to_owned()),
        ("NET-MTU", "65520".to_owned()),
        ("PAGE", PAGE.trim_end().to_owned()),
        ("PAGE-SHA256", sha256(PAGE.as_bytes())),
        ("DOWNLOAD-SHA256", sha256(blob)),
        ("DOWNLOAD-BYTES", blob.len().to_string()),
    ] {
        assert_eq!(
            marker(console, key),
            Some(want.as_str()),
            "PHYLLOME-{key} (the guest's address is the host's {host_ip}) in {context}"
        );
    }
    assert!(
        console.contains(&format!(
            "PHYLLOME-NET-ROUTE=default via {GATEWAY} dev eth0"
        )),
        "the default route from the lease, in {context}"
    );
    // What the guest sent, as the host received it.
    let (len, sum) = run
        .upload
        .clone()
        .unwrap_or_else(|| panic!("the host's HTTP server received no upload: {context}"));
    assert_eq!(len, 4 * MIB, "bytes the host received, {context}");
    assert_eq!(
        marker(console, "UPLOAD-SHA256"),
        Some(sum.as_str()),
        "the guest's upload as the host received it, {context}"
    );
    assert_eq!(
        marker(console, "UPLOAD-ACK"),
        Some(format!("received {len} bytes, sha256 {sum}").as_str()),
        "the host's answer as the guest received it, {context}"
    );
    // The connection forwarded in, both ways.
    let forwarded = run
        .forwarded
        .clone()
        .unwrap_or_else(|| panic!("the guest never listened: {context}"))
        .unwrap_or_else(|e| panic!("the forwarded connection: {e}; {context}"));
    let mut want = REPLY_LINE.as_bytes().to_vec();
    want.extend_from_slice(&blob[..MIB]);
    assert!(
        forwarded == want,
        "the guest's answer on 127.0.0.1:{HOST_PORT}: {} bytes, {} wanted, starting {:?}; {context}",
        forwarded.len(),
        want.len(),
        String::from_utf8_lossy(&forwarded[..forwarded.len().min(40)])
    );
    assert_eq!(
        marker(console, "FORWARD-GOT"),
        Some(PING.trim_end()),
        "what the host said on the forwarded connection, {context}"
    );
    assert!(!console.contains("-FAILED"), "{context}");
    assert!(console.contains("PHYLLOME-NET-TEST-DONE"), "{context}");
}

#[test]
fn linux_gets_a_lease_fetches_uploads_and_answers_a_forward_on_our_vhost_user_net_with_passt() {
    // Built (or fetched: apt-get download) before the namespace, where no network is.
    let assets = Assets::get();
    let blob = Arc::new(blob());
    let run = {
        let blob = Arc::clone(&blob);
        in_own_network(move || {
            let _one = ONE_QEMU_AT_A_TIME
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            run_guest(Backend::Phyllome, &blob, &assets)
        })
    };
    check(&run, &blob, "phyllome-vmm device net --passt (vhost-user)");
    // QEMU has left: the backend exits 0, and its passt with it (the forwarded port closes).
    let status = run.backend_status.unwrap_or_else(|| {
        panic!(
            "the backend did not exit after QEMU left:\n{}",
            run.backend_log
        )
    });
    assert!(
        status.success(),
        "the backend exited with {status}:\n{}",
        run.backend_log
    );
    assert!(
        !run.port_open_after,
        "127.0.0.1:{HOST_PORT} still takes connections after the backend exited: its passt lives on"
    );
}

#[test]
fn the_same_guest_test_passes_against_qemus_own_virtio_net_on_passt() {
    // Built (or fetched: apt-get download) before the namespace, where no network is.
    let assets = Assets::get();
    let blob = Arc::new(blob());
    let run = {
        let blob = Arc::clone(&blob);
        in_own_network(move || {
            let _one = ONE_QEMU_AT_A_TIME
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            run_guest(Backend::QemuOnPasst, &blob, &assets)
        })
    };
    check(
        &run,
        &blob,
        "QEMU virtio-net-pci on -netdev stream to passt",
    );
}

/// The namespace is the test's alone: in it, nothing but loopback and the veth pair, and
/// no route leads anywhere but to the veth whose far end is down.
#[test]
fn the_test_network_namespace_has_no_way_out() {
    let (links, routes) = in_own_network(|| {
        let run = |args: &[&str]| {
            let out = Command::new("ip").args(args).output().unwrap();
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        (run(&["-o", "link"]), run(&["route"]))
    });
    let mut names: Vec<&str> = links
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["lo", "veth0", "veth1"], "{links}");
    assert!(
        links
            .lines()
            .any(|l| l.contains("veth1@veth0") && l.contains("state DOWN")),
        "{links}"
    );
    assert!(
        routes.contains(&format!("default via {GATEWAY} dev veth0")),
        "{routes}"
    );
}
