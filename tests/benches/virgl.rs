//! 3D speed, guest to screen: the same Debian guest and Mesa (scripts/gl-guest.sh), under
//! QEMU/TCG on the same llvmpipe, once with `vhost-user-gpu-pci` on our
//! `phyllome-vmm device gpu --renderer virgl`, once with QEMU's own `virtio-gpu-gl-pci` and
//! `-display gtk,gl=on` (on Xvfb), both at 800x600 and both shown on the same X server
//! (ours in the app's window): kmscube's frames per second and a short glmark2-es2-drm
//! run's score, and the ratio. (glmark2-es2-drm 2023.01's first mode set fails on either
//! device, "Failed to set crtc: -22", so its frames are drawn but not flipped: its score
//! compares rendering only.) Then kmscube at 1920x1080 on ours with a
//! viewer on the console connection: frames that reach the viewer per second.
//!
//! The app is the release build users run (`cargo build --release -p phyllome` first, or
//! name one with PHYLLOME_APP_BIN), and the bench checks, once per round, that its window
//! is showing the cube while kmscube runs. Rounds alternate between the two devices
//! (PHYLLOME_BENCH_ROUNDS, 3 by default); medians are compared.
//!
//! `cargo bench -p phyllome-tests --bench virgl` (several minutes; starts its own Xvfb).

#![allow(
    clippy::unwrap_used,
    clippy::print_stdout,
    clippy::cast_precision_loss,
    reason = "a benchmark binary printing its figures"
)]

use phyllome_tests::desktop::{app, screenshot, xvfb_sized, Kill};
use phyllome_tests::{gl_guest_assets, gl_guest_qemu, vmm_binary, wait_for_path};
use phyllome_vmm::console_conn::client::ConsoleClient;
use phyllome_vmm::console_conn::client::Received;
use phyllome_vmm::console_conn::Message;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// QEMU with the guest, `gpu` as the GPU arguments; waits for the guest to finish (or
/// `secs`) and returns its serial output.
fn boot(
    assets: &Path,
    dir: &Path,
    display: &str,
    gpu: &[String],
    cmdline: &str,
    secs: u64,
) -> String {
    let serial = dir.join("serial.txt");
    let _ = std::fs::remove_file(&serial);
    let mut qemu = gl_guest_qemu(assets, &serial, cmdline);
    qemu.args(gpu)
        .env("DISPLAY", display)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut qemu = Kill(qemu.spawn().unwrap());
    let deadline = Instant::now() + Duration::from_secs(secs);
    while qemu.0.try_wait().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    String::from_utf8_lossy(&std::fs::read(&serial).unwrap_or_default()).into_owned()
}

/// kmscube's last "Rendered N frames in T sec (F fps)" figure, and glmark2's score.
fn figures(serial: &str) -> (f64, f64) {
    let fps = serial
        .lines()
        .filter(|l| l.contains("PHYLLOME-KMSCUBE Rendered"))
        .filter_map(|l| l.split('(').nth(1)?.split(' ').next()?.parse().ok())
        .next_back()
        .unwrap_or(0.0);
    let score = serial
        .lines()
        .find_map(|l| l.split("Score:").nth(1)?.trim().parse().ok())
        .unwrap_or(0.0);
    (fps, score)
}

/// A second and a half after kmscube starts (its start is marked on the serial console),
/// takes one screenshot and says whether the cube is on screen (enough saturated pixels:
/// the app's window is showing the guest's frames while we measure).
fn watch_the_window(
    dir: &Path,
    display: &str,
    round: usize,
    done: Arc<AtomicBool>,
) -> std::thread::JoinHandle<bool> {
    let serial = dir.join("serial.txt");
    let display = display.to_owned();
    std::thread::spawn(move || {
        while !done.load(Ordering::Relaxed) {
            let text = std::fs::read(&serial).unwrap_or_default();
            if String::from_utf8_lossy(&text).contains("PHYLLOME-KMSCUBE-START") {
                std::thread::sleep(Duration::from_millis(1500));
                let (_, _, rgb) = screenshot(&display, &format!("bench-virgl-{round}.png"));
                let colourful = rgb
                    .chunks(3)
                    .filter(|p| {
                        let (hi, lo) = (p.iter().max().unwrap(), p.iter().min().unwrap());
                        hi - lo > 80
                    })
                    .count();
                return colourful > 5000;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    })
}

/// Our backend for one boot.
fn our_backend(dir: &Path, size: &str, console: bool) -> (Kill, Vec<String>) {
    let sock = dir.join("gpu.sock");
    let _ = std::fs::remove_file(&sock);
    let mut c = Command::new(vmm_binary());
    c.args([
        "device",
        "gpu",
        "--renderer",
        "virgl",
        "--size",
        size,
        "--socket",
    ])
    .arg(&sock);
    if console {
        let _ = std::fs::remove_file(dir.join("console.sock"));
        c.arg("--console").arg(dir.join("console.sock"));
    }
    let backend = Kill(c.stderr(Stdio::null()).spawn().unwrap());
    wait_for_path(&sock);
    (
        backend,
        vec![
            "-display".into(),
            "none".into(),
            "-chardev".into(),
            format!("socket,id=gpu,path={}", sock.display()),
            "-device".into(),
            "vhost-user-gpu-pci,chardev=gpu".into(),
        ],
    )
}

fn main() {
    // The app users run: its release build, unless PHYLLOME_APP_BIN names another.
    if std::env::var_os("PHYLLOME_APP_BIN").is_none() {
        let release = phyllome_tests::workspace().join("target/release/phyllome");
        assert!(
            release.exists(),
            "build the app first: cargo build --release -p phyllome"
        );
        // SAFETY: set before any thread of this program starts.
        unsafe { std::env::set_var("PHYLLOME_APP_BIN", &release) };
    }
    println!(
        "app: {}",
        std::env::var("PHYLLOME_APP_BIN").unwrap_or_default()
    );
    let assets = gl_guest_assets();
    let dir = tempfile::tempdir().unwrap();
    let (_x, display) = xvfb_sized("1920x1080x24");
    let work = "phyllome.kmscube=1500 phyllome.glmark2";

    // Both show their frames on the same X server: QEMU in its GTK window, ours in the
    // app's window on the console connection. Rounds alternate (this machine is noisy);
    // the medians are compared.
    let qemu_gpu: Vec<String> = [
        "-display",
        "gtk,gl=on",
        "-device",
        "virtio-gpu-gl-pci,xres=800,yres=600",
    ]
    .iter()
    .map(|s| (*s).to_string())
    .collect();
    let rounds: usize = std::env::var("PHYLLOME_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    let (mut ours_all, mut peer_all) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        let (backend, gpu) = our_backend(dir.path(), "800x600", true);
        let console = dir.path().join("console.sock");
        wait_for_path(&console);
        let window = app(&display, &["--console".as_ref(), console.as_os_str()]);
        let done = Arc::new(AtomicBool::new(false));
        let watcher = watch_the_window(dir.path(), &display, round, done.clone());
        let ours = figures(&boot(&assets, dir.path(), &display, &gpu, work, 900));
        done.store(true, Ordering::Relaxed);
        assert!(
            watcher.join().unwrap(),
            "round {round}: the app's window did not show the cube (see target/screenshots/bench-virgl-{round}.png)"
        );
        drop(window);
        drop(backend);
        let peer = figures(&boot(&assets, dir.path(), &display, &qemu_gpu, work, 900));
        println!(
            "round {round}: kmscube {:.1} / {:.1} fps, glmark2 {:.0} / {:.0} (ours / QEMU)",
            ours.0, peer.0, ours.1, peer.1
        );
        ours_all.push(ours);
        peer_all.push(peer);
    }
    let median = |v: &[(f64, f64)], pick: fn(&(f64, f64)) -> f64| {
        let mut x: Vec<f64> = v.iter().map(pick).collect();
        x.sort_by(f64::total_cmp);
        x[x.len() / 2]
    };
    let ours = (median(&ours_all, |f| f.0), median(&ours_all, |f| f.1));
    let peer = (median(&peer_all, |f| f.0), median(&peer_all, |f| f.1));

    println!(
        "3D through virgl, Debian 12 guest with Mesa under QEMU/TCG, llvmpipe, 800x600 (medians of {rounds} alternating rounds):"
    );
    println!("| | phyllome device gpu | QEMU virtio-gpu-gl-pci | ratio |");
    println!("|---|---|---|---|");
    println!(
        "| kmscube fps | {:.1} | {:.1} | {:.2}x |",
        ours.0,
        peer.0,
        ours.0 / peer.0.max(f64::MIN_POSITIVE)
    );
    println!(
        "| glmark2-es2-drm score (6 scenes) | {:.0} | {:.0} | {:.2}x |",
        ours.1,
        peer.1,
        ours.1 / peer.1.max(f64::MIN_POSITIVE)
    );

    // 1920x1080 frames reaching a viewer on the console connection.
    let (backend, gpu) = our_backend(dir.path(), "1920x1080", true);
    let console = dir.path().join("console.sock");
    wait_for_path(&console);
    let counter = std::thread::spawn(move || {
        let mut client = ConsoleClient::connect(&console).unwrap();
        let mut frames: Vec<Instant> = Vec::new();
        // Each flush of the scanout is an Update; a page flip is a Scanout (then an Update).
        while let Ok(m) = client.recv() {
            if let Received::Other(Message::Update { width: 1920, .. }) = m {
                frames.push(Instant::now());
            }
        }
        frames
    });
    let serial = boot(
        &assets,
        dir.path(),
        &display,
        &gpu,
        "phyllome.kmscube=1200",
        600,
    );
    drop(backend);
    let frames = counter.join().unwrap();
    let (fps, _) = figures(&serial);
    // The viewer's rate over the busiest 2 seconds (inside kmscube's run, which is longer).
    let window = Duration::from_secs(2);
    let best = frames
        .iter()
        .enumerate()
        .map(|(i, t)| frames[i..].iter().take_while(|u| **u < *t + window).count())
        .max()
        .unwrap_or(0);
    println!(
        "1920x1080: kmscube {fps:.1} fps in the guest; {:.1} frames/s reached the console viewer (target: at least 30)",
        best as f64 / window.as_secs_f64()
    );
}
