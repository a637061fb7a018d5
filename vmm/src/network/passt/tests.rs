#![allow(clippy::unwrap_used)]
//! passt's side is played by small Python programs given as `program`: they take the same
//! arguments (`--fd N` among them) and speak, or break, the same framing.

use super::*;
use crate::devices::virtio::net::{Net, NetConfig};
use std::os::unix::fs::PermissionsExt;
use std::sync::mpsc;

/// A card whose own transmit path is unused: the tests write through the link directly.
struct Nowhere;
impl FrameBackend for Nowhere {
    fn send(&mut self, _: &[u8]) -> io::Result<()> {
        Ok(())
    }
}

fn card() -> NetHost {
    Net::new(NetConfig::default(), Box::new(Nowhere)).unwrap().1
}

/// A stand-in for passt: `body` runs with `s`, a socket on the descriptor after `--fd`,
/// and `args`, the arguments.
fn stand_in(dir: &std::path::Path, body: &str) -> PathBuf {
    let path = dir.join("passt");
    std::fs::write(
        &path,
        format!(
            "#!/usr/bin/python3\nimport socket, struct, sys, os, time\nargs = sys.argv[1:]\n\
             s = socket.socket(fileno=int(args[args.index('--fd') + 1]))\n{body}\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn start(
    program: PathBuf,
    forwards: &[&str],
) -> (Passt, PasstLink, NetHost, mpsc::Receiver<String>) {
    let host = card();
    let (tx, rx) = mpsc::channel();
    let options = PasstOptions {
        forwards: forwards.iter().map(|f| f.parse().unwrap()).collect(),
        program: Some(program),
    };
    let (passt, link) = Passt::start(
        &options,
        host.clone(),
        Box::new(move |why| {
            let _ = tx.send(why);
        }),
    )
    .unwrap();
    (passt, link, host, rx)
}

fn wait_for(mut done: impl FnMut() -> bool) {
    let until = std::time::Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(std::time::Instant::now() < until, "timed out");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn frames_cross_in_the_stream_framing_both_ways_and_forwards_become_arguments() {
    let dir = tempfile::tempdir().unwrap();
    // Echoes every frame back, reversed, after sending its arguments as a first frame.
    let program = stand_in(
        dir.path(),
        "a = ' '.join(args).encode().ljust(14, b'.')\n\
         s.sendall(struct.pack('>I', len(a)) + a)\n\
         f = s.makefile('rb')\n\
         while True:\n    h = f.read(4)\n    if len(h) < 4: break\n    \
         n = struct.unpack('>I', h)[0]\n    d = f.read(n)\n    \
         s.sendall(struct.pack('>I', n) + d[::-1])",
    );
    let (passt, mut link, host, downs) = start(program, &["tcp:2222:22", "udp:5353"]);
    let small: Vec<u8> = (0..60u8).collect();
    let large: Vec<u8> = (0..65_000u32).map(|i| (i % 251) as u8).collect();
    link.send(&small).unwrap();
    link.send(&large).unwrap();
    wait_for(|| host.pending_frames() == 3);
    let mut got = Vec::new();
    while let crate::devices::virtio::net::Take::Frame(f) = host.take(usize::MAX) {
        got.push(f);
    }
    let args = String::from_utf8(got[0].clone()).unwrap();
    assert!(
        args.starts_with("-f -e -q --fd ") && args.ends_with("-t 2222:22 -u 5353:5353"),
        "{args}"
    );
    assert_eq!(got[1], small.iter().rev().copied().collect::<Vec<_>>());
    assert_eq!(got[2], large.iter().rev().copied().collect::<Vec<_>>());
    drop(passt);
    // Ending it ourselves is not a network failure.
    assert!(downs.recv_timeout(Duration::from_millis(300)).is_err());
    assert!(!host.link_up());
}

#[test]
fn passt_ending_takes_the_link_down_and_says_what_it_said_last() {
    let dir = tempfile::tempdir().unwrap();
    let program = stand_in(
        dir.path(),
        "print('Failed to send 20 bytes to syslog', file=sys.stderr)\n\
         print('External interface not usable', file=sys.stderr)\nsys.exit(1)",
    );
    let (_passt, mut link, host, downs) = start(program, &[]);
    let why = downs.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(
        why.starts_with("The network is down: passt ended (exit status: 1), saying \"External interface not usable\"."),
        "{why}"
    );
    assert!(why.ends_with("restart it to try again."), "{why}");
    assert!(!host.link_up());
    // The guest's frames now fail one by one; nothing waits.
    assert!(link.send(&[0u8; 60]).is_err());
}

#[test]
fn a_length_no_frame_has_stops_passt_and_the_frames_before_it_arrive() {
    let dir = tempfile::tempdir().unwrap();
    let program = stand_in(
        dir.path(),
        "s.sendall(struct.pack('>I', 20) + bytes(range(20)))\n\
         s.sendall(struct.pack('>I', 0x00ffffff))\ntime.sleep(60)",
    );
    let (_passt, _link, host, downs) = start(program, &[]);
    let why = downs.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(
        why.contains(
            "passt sent a frame length of 16777215 bytes, which no frame has, so it was stopped"
        ),
        "{why}"
    );
    // The good frame came first; the link then went down, which drops what waited.
    assert_eq!(host.stats().rx_discarded, 1);
    assert!(!host.link_up());
}

#[test]
fn a_frame_cut_short_by_passt_ending_is_dropped_alone() {
    let dir = tempfile::tempdir().unwrap();
    let program = stand_in(
        dir.path(),
        "s.sendall(struct.pack('>I', 100) + bytes(40))\nsys.exit(0)",
    );
    let (_passt, _link, host, downs) = start(program, &[]);
    let why = downs.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(
        why.starts_with("The network is down: passt ended."),
        "{why}"
    );
    assert_eq!(host.stats().rx_frames + host.stats().rx_discarded, 0);
}

#[test]
fn a_missing_program_says_to_install_passt() {
    let e = Passt::start(
        &PasstOptions {
            forwards: Vec::new(),
            program: Some(PathBuf::from("/nonexistent/passt")),
        },
        card(),
        Box::new(|_| {}),
    )
    .unwrap_err();
    assert!(matches!(e, PasstError::NotInstalled));
    assert!(e.to_string().contains("apt install passt"), "{e}");
}

#[test]
fn a_guest_that_does_not_read_costs_dropped_frames_not_a_stuck_reader() {
    let dir = tempfile::tempdir().unwrap();
    // 600 frames of 1000 bytes, more than the card keeps waiting, then a marker file.
    let done = dir.path().join("done");
    let program = stand_in(
        dir.path(),
        &format!(
            "for i in range(600):\n    s.sendall(struct.pack('>I', 1000) + bytes([i % 256]) * 1000)\n\
             open('{}', 'w').close()\ntime.sleep(60)",
            done.display()
        ),
    );
    let (_passt, _link, host, _downs) = start(program, &[]);
    wait_for(|| done.exists());
    wait_for(|| {
        let s = host.stats();
        s.rx_overflow + host.pending_frames() as u64 == 600
    });
    assert_eq!(
        host.pending_frames(),
        crate::devices::virtio::net::PENDING_FRAMES
    );
}

/// passt drops what a full socket refuses (TCP then resends a whole window): its end of
/// the pair gets as much send buffer as the system allows, up to `SOCKET_BUFFER`.
#[test]
fn passts_end_of_the_socket_gets_the_largest_send_buffer_allowed() {
    let dir = tempfile::tempdir().unwrap();
    // Sends its socket's send buffer size (as the kernel reports it) as a frame.
    let program = stand_in(
        dir.path(),
        "n = str(s.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)).encode().ljust(14, b'.')\n\
         s.sendall(struct.pack('>I', len(n)) + n)\ntime.sleep(5)",
    );
    let (_passt, _link, host, _downs) = start(program, &[]);
    wait_for(|| host.pending_frames() == 1);
    let crate::devices::virtio::net::Take::Frame(frame) = host.take(usize::MAX) else {
        panic!("no frame");
    };
    let reported: usize = String::from_utf8(frame)
        .unwrap()
        .trim_end_matches('.')
        .parse()
        .unwrap();
    let allowed: usize = std::fs::read_to_string("/proc/sys/net/core/wmem_max")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let asked = usize::try_from(SOCKET_BUFFER).unwrap();
    // Linux reports twice what was set (its bookkeeping's share included).
    assert_eq!(reported, 2 * asked.min(allowed), "wmem_max {allowed}");
}
