//! Linux's own virtio-net driver on passt: Debian's kernel under QEMU (software emulation)
//! with `-netdev vhost-user` on `phyllome-vmm device net --passt`. The guest takes a DHCP
//! lease from passt (address, default route and MTU from it), fetches a page and 4 MiB over
//! HTTP from a server this test runs on the host's 127.0.0.1 (through the gateway address),
//! posts 4 MiB back to it (checksums compared on the host), and answers a
//! connection forwarded in from a host port (`--forward tcp:HOST:GUEST`). The same guest
//! on QEMU's own `virtio-net-pci` with `-netdev stream` to a passt of the test's own shows
//! that the test itself is right. Nested (see `real_linux.rs`), our own VMM with its
//! in-process card (`run --net passt`) passes the same guest checks, L1 being the host.
//!
//! Everything runs in a network namespace the test makes (loopback, and a veth pair whose
//! far end is down and goes nowhere, with an address and a default route through it, which
//! passt needs): no packet leaves this machine. Making it needs root (`CAP_SYS_ADMIN`).

#![allow(clippy::unwrap_used, reason = "a test")]

use phyllome_tests::desktop::Kill;
use phyllome_tests::netns::{in_own_network, Backend, GATEWAY, HOST_ADDRESS};
use phyllome_tests::{run_nested, sha256, vmm_binary, workspace, Assets, NestedEnd};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

static ONE_QEMU_AT_A_TIME: Mutex<()> = Mutex::new(());

/// The guest's MAC address.
const MAC: &str = "52:54:00:12:34:56";
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

/// What one run saw.
struct Run {
    console: String,
    /// What the host's HTTP server received at `POST /cgi-bin/upload`: its length and SHA-256.
    upload: Option<(usize, String)>,
    /// What the host read on the forwarded connection.
    forwarded: Option<Result<Received, String>>,
    /// The backend's (or passt's) exit, and what it wrote to standard error.
    backend_status: Option<ExitStatus>,
    backend_log: String,
    qemu_log: String,
    /// Whether the forwarded host port still took connections after QEMU left.
    port_open_after: bool,
    seconds: f64,
}

/// What one side received: its length, SHA-256 and first line.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Received {
    bytes: usize,
    sha256: String,
    first_line: String,
}

impl Received {
    fn of(bytes: &[u8]) -> Self {
        let line = bytes.split(|&b| b == b'\n').next().unwrap_or_default();
        Self {
            bytes: bytes.len(),
            sha256: sha256(bytes),
            first_line: String::from_utf8_lossy(line).into_owned(),
        }
    }
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

/// What the host's HTTP server received at `POST /cgi-bin/upload`: its length and SHA-256.
type Upload = Arc<Mutex<Option<(usize, String)>>>;

/// A tiny HTTP/1.0 server on `listener`, until `stop`: `GET /page` is [`PAGE`],
/// `GET /blob` is `blob`; `POST /cgi-bin/upload` reads the body (`Content-Length`), keeps its
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
            ("POST", "/cgi-bin/upload") => {
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
fn connect_forwarded() -> Result<Received, String> {
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
    Ok(Received::of(&got))
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

    let mut backend_child = Kill(backend.start(&socket, &[(HOST_PORT, GUEST_PORT)], &backend_log));
    let mut qemu = backend.qemu(
        assets,
        &socket,
        MAC,
        &assets.dir.join("net-initrd.cpio"),
        &format!("console=ttyS0 panic=-1 quiet phyllome.net={http_port},{GUEST_PORT}"),
        180,
    );
    let started = Instant::now();
    let mut child = qemu
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&qemu_log).unwrap())
        .spawn()
        .unwrap();
    let mut console = String::new();
    let mut forward_thread: Option<JoinHandle<Result<Received, String>>> = None;
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
    // The driver's features (bit N is character N): merged receive buffers (15) taken.
    assert_eq!(
        marker(console, "NET-FEATURES").and_then(|f| f.chars().nth(15)),
        Some('1'),
        "VIRTIO_NET_F_MRG_RXBUF negotiated, in {context}"
    );
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
    assert_eq!(
        forwarded,
        Received::of(&want),
        "the guest's answer on 127.0.0.1:{HOST_PORT}; {context}"
    );
    assert_eq!(
        marker(console, "FORWARD-GOT"),
        Some(PING.trim_end()),
        "what the host said on the forwarded connection, {context}"
    );
    assert!(!console.contains("-FAILED"), "{context}");
    assert!(console.contains("PHYLLOME-NET-TEST-DONE"), "{context}");
}

/// The guest on `backend`, in a network namespace of its own; what it saw, and the blob
/// it was served.
fn run_in_own_network(backend: Backend) -> (Run, Arc<Vec<u8>>) {
    // Built (or fetched: apt-get download) before the namespace, where no network is.
    let assets = Assets::get();
    let blob = Arc::new(blob());
    let run = {
        let blob = Arc::clone(&blob);
        in_own_network(move || {
            let _one = ONE_QEMU_AT_A_TIME
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            run_guest(backend, &blob, &assets)
        })
    };
    (run, blob)
}

#[test]
fn linux_gets_a_lease_fetches_uploads_and_answers_a_forward_on_our_vhost_user_net_with_passt() {
    let (run, blob) = run_in_own_network(Backend::Phyllome);
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
    let (run, blob) = run_in_own_network(Backend::QemuOnPasst);
    check(
        &run,
        &blob,
        "QEMU virtio-net-pci on -netdev stream to passt",
    );
}

/// The port of the HTTP server (busybox's httpd) on L1's 127.0.0.1 in the nested run.
const L1_HTTP_PORT: u16 = 8080;

/// The CGI program L1's httpd runs for `POST /cgi-bin/upload`: it keeps the body and
/// answers as the test's own server does.
const L1_UPLOAD_CGI: &str = r#"#!/bin/sh
head -c "$CONTENT_LENGTH" > /tmp/upload
n=$(wc -c < /tmp/upload)
sum=$(sha256sum /tmp/upload | cut -d' ' -f1)
printf 'Content-Type: application/octet-stream\r\n\r\n'
echo "received $n bytes, sha256 $sum"
"#;

/// Our VMM with its in-process network card (`--net passt`) boots the same guest nested
/// (see `real_linux.rs`): L1 is the host, with a dummy interface as passt's way out (L1
/// has no network card at all, so nothing leaves it), busybox's httpd on its 127.0.0.1,
/// and a client that connects to the forwarded port once the guest listens. Stalls of the
/// nested emulation are retried once.
fn run_nested_guest(blob: &[u8], assets: &Assets) -> Run {
    let files = tempfile::tempdir().unwrap();
    let file = |name: &str, bytes: &[u8]| {
        let path = files.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path.display().to_string()
    };
    let l2_files = [
        file("page", PAGE.as_bytes()),
        file("blob", blob),
        file("upload.cgi", L1_UPLOAD_CGI.as_bytes()),
    ]
    .join(" ");
    let setup = format!(
        "export PATH=/bin; /bin/busybox --install -s /bin; mkdir -p /etc /www/cgi-bin; \
         echo 'nobody:x:65534:65534:nobody:/nonexistent:/bin/false' > /etc/passwd; \
         echo 'nogroup:x:65534:' > /etc/group; \
         ip link set lo up; ip addr add {HOST_ADDRESS} dev dummy0 && ip link set dummy0 up \
           && ip route add default via {GATEWAY} dev dummy0 || echo PHYLLOME-L1-NET-FAILED; \
         echo \"PHYLLOME-L1-ROUTE=$(ip route show default)\"; \
         cp /l2/page /l2/blob /www/; cp /l2/upload.cgi /www/cgi-bin/upload; chmod +x /www/cgi-bin/upload; \
         httpd -p 127.0.0.1:{L1_HTTP_PORT} -h /www || echo PHYLLOME-L1-HTTPD-FAILED; \
         mkdir /newroot; mount -o rbind / /newroot || echo PHYLLOME-L1-ROOT-FAILED"
    );
    // The VMM's standard output (the guest's serial port) goes through a loop that
    // connects to the forwarded port when the guest says it listens. The VMM runs on a
    // bind mount of L1's root moved over `/` (as switch_root does): passt's sandbox makes a
    // user namespace (refused to a process in a plain chroot) and moves to a root of its
    // own with pivot_root (refused where the root is the initramfs's rootfs), as a real
    // host allows.
    let run = format!(
        "( cd /newroot && mount -o move /newroot / && chroot . /phyllome-vmm run --kernel /l2/kernel --initrd /l2/initrd --memory 256 --no-reboot \
           --net passt,forward=tcp:{HOST_PORT}:{GUEST_PORT},mac={MAC} \
           --cmdline 'console=ttyS0 panic=-1 quiet phyllome.net={L1_HTTP_PORT},{GUEST_PORT}' </dev/null; \
           echo PHYLLOME-VMM-EXIT=$? ) | while IFS= read -r l; do echo \"$l\"; case \"$l\" in \
           *PHYLLOME-LISTENING*) ( (printf '{}\\n'; sleep 120) \
             | {{ timeout 120 nc 127.0.0.1 {HOST_PORT} > /tmp/fwd; touch /tmp/fwd.done; }} ) & ;; esac; done",
        PING.trim_end()
    );
    let check = "for i in $(seq 100); do [ -e /tmp/fwd.done ] && break; sleep 0.1; done; \
         echo \"PHYLLOME-L1-FORWARD=$(wc -c < /tmp/fwd) $(sha256sum /tmp/fwd | cut -d' ' -f1) $(head -n 1 /tmp/fwd)\"; \
         echo \"PHYLLOME-L1-UPLOAD=$(wc -c < /tmp/upload) $(sha256sum /tmp/upload | cut -d' ' -f1)\"; \
         echo \"PHYLLOME-L1-PASST-LEFT=$(pidof passt)\"";
    let command = || {
        let mut c = Command::new("timeout");
        c.args(["-k", "30", "900"])
            .arg(workspace().join("scripts/nested-kvm.sh"))
            .arg(vmm_binary())
            .arg(assets.kernel("generic"))
            .arg(assets.dir.join("net-initrd.cpio"))
            .env("PHYLLOME_NESTED_MODULES", "dummy")
            .env("PHYLLOME_NESTED_BINS", "/usr/bin/passt")
            .env("PHYLLOME_NESTED_FILES", &l2_files)
            .env("PHYLLOME_NESTED_SETUP", &setup)
            .env("PHYLLOME_NESTED_RUN", &run)
            .env("PHYLLOME_NESTED_CHECK", check);
        c
    };
    let logs = workspace().join("target/nested-logs");
    std::fs::create_dir_all(&logs).unwrap();
    let silence = Duration::from_secs(150);
    for attempt in 1..=2 {
        let started = Instant::now();
        let mut console = String::new();
        let end = run_nested(&mut command(), silence, |line| console.push_str(line));
        let seconds = started.elapsed().as_secs_f64();
        std::fs::write(logs.join("network.log"), console.as_bytes()).unwrap();
        if matches!(end, NestedEnd::Stalled) && attempt == 1 {
            println!(
                "the nested run stalled (no console output for {silence:?}), which nested SVM \
                 under TCG does now and then; trying again. Its console:\n{console}"
            );
            continue;
        }
        assert!(
            matches!(end, NestedEnd::Exited(_)),
            "the nested run stalled twice (no console output for {silence:?}):\n{console}"
        );
        let l1 = |key: &str| marker(&console, key).map(str::to_owned);
        let upload = l1("L1-UPLOAD").and_then(|v| {
            let (n, sum) = v.split_once(' ')?;
            Some((n.parse().ok()?, sum.to_owned()))
        });
        let forwarded = l1("L1-FORWARD").map(|v| {
            let mut words = v.splitn(3, ' ');
            let bytes = words.next().and_then(|n| n.parse().ok());
            match (bytes, words.next(), words.next()) {
                (Some(bytes), Some(sum), first) => Ok(Received {
                    bytes,
                    sha256: sum.to_owned(),
                    first_line: first.unwrap_or_default().to_owned(),
                }),
                _ => Err(format!("L1's nc received nothing readable: {v:?}")),
            }
        });
        let backend_status = l1("VMM-EXIT")
            .and_then(|code| code.parse::<i32>().ok())
            .map(|code| std::os::unix::process::ExitStatusExt::from_raw(code << 8));
        return Run {
            upload,
            forwarded,
            backend_status,
            backend_log: "(on the console)".to_owned(),
            qemu_log: String::new(),
            port_open_after: !l1("L1-PASST-LEFT").unwrap_or_default().is_empty(),
            seconds,
            console,
        };
    }
    unreachable!("the second attempt returns or panics")
}

#[test]
fn linux_gets_a_lease_fetches_uploads_and_answers_a_forward_on_our_in_process_net_nested() {
    let _one = ONE_QEMU_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let assets = Assets::get();
    let blob = blob();
    let run = run_nested_guest(&blob, &assets);
    for failure in [
        "PHYLLOME-L1-INSMOD-FAILED",
        "PHYLLOME-L1-NO-KVM",
        "PHYLLOME-L1-NET-FAILED",
        "PHYLLOME-L1-HTTPD-FAILED",
        "PHYLLOME-L1-ROOT-FAILED",
    ] {
        assert!(
            !run.console.contains(failure),
            "L1's own set-up failed ({failure}):\n{}",
            run.console
        );
    }
    check(&run, &blob, "phyllome-vmm run --net passt (nested)");
    let status = run.backend_status.unwrap_or_else(|| {
        panic!(
            "the VMM's exit status is not on the console:\n{}",
            run.console
        )
    });
    assert!(status.success(), "the VMM exited with {status}");
    assert!(
        !run.port_open_after,
        "passt still runs in L1 after the VMM exited:\n{}",
        run.console
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
