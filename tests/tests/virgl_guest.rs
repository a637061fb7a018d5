//! 3D end to end: Debian's kernel and Mesa (a debootstrapped root file system, made and
//! cached by `scripts/gl-guest.sh`) under QEMU/TCG, with `vhost-user-gpu-pci` on our
//! `phyllome-vmm device gpu --renderer virgl`. In the guest, our GLES check draws a triangle
//! on the render node and reads back the right pixels, `GL_RENDERER` names virgl, and
//! kmscube runs on the card; the dumped scanout and the app's window (on the console
//! connection, under Xvfb) show the cube, all with the backend under its seccomp filter.
//! Screenshots are kept in target/screenshots/.

#![allow(
    clippy::unwrap_used,
    clippy::cast_possible_truncation,
    reason = "a test: screenshots are small"
)]

use phyllome_tests::desktop::{app, decode, geometry, screenshot, window_named, xvfb};
use phyllome_tests::{gl_guest_assets, gl_guest_on_gpu, vmm_binary, wait_for_path, workspace};
use std::process::Command;
use std::time::{Duration, Instant};

/// Share of the pixels in the middle of `rgb` (a `w` x `h` image, or its `area`) that are
/// neither grey (kmscube's background) nor black: the cube's coloured faces.
fn coloured_share(w: u32, rgb: &[u8], area: (u32, u32, u32, u32)) -> f64 {
    let (x0, y0, x1, y1) = area;
    let (mut coloured, mut all) = (0usize, 0usize);
    for y in y0..y1 {
        for x in x0..x1 {
            let i = ((y * w + x) * 3) as usize;
            let (r, g, b) = (rgb[i], rgb[i + 1], rgb[i + 2]);
            let spread = r.max(g).max(b) - r.min(g).min(b);
            all += 1;
            if spread > 40 {
                coloured += 1;
            }
        }
    }
    coloured as f64 / all.max(1) as f64
}

#[test]
fn mesa_renders_through_our_virgl_backend_and_the_cube_reaches_the_display() {
    let assets = gl_guest_assets();
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);
    let (_x, display) = xvfb();
    let mut backend = Command::new(vmm_binary())
        .args([
            "device",
            "gpu",
            "--renderer",
            "virgl",
            "--size",
            "800x600",
            "--socket",
        ])
        .arg(p("gpu.sock"))
        .arg("--console")
        .arg(p("console.sock"))
        .arg("--dump-scanout")
        .arg(p("scanout.png"))
        .spawn()
        .unwrap();
    wait_for_path(&p("gpu.sock"));
    wait_for_path(&p("console.sock"));
    // Everything below runs under the GPU process's system-call filter.
    assert_eq!(
        phyllome_tests::processes::seccomp_mode(backend.id()),
        "2",
        "device gpu runs filtered"
    );
    let _app = app(
        &display,
        &["--console".as_ref(), p("console.sock").as_os_str()],
    );
    let window = window_named(&display, "Phyllome").expect("the app's window shows");
    let mut qemu = gl_guest_on_gpu(
        &assets,
        &p("serial.txt"),
        "phyllome.kmscube=2000",
        &p("gpu.sock"),
    );
    let serial = || {
        String::from_utf8_lossy(&std::fs::read(p("serial.txt")).unwrap_or_default()).into_owned()
    };
    let wait = |marker: &str, secs: u64| {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            if serial().contains(marker) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        false
    };

    // The GLES check on the render node: its verdict (the pixels line comes just before).
    let deadline = Instant::now() + Duration::from_secs(180);
    while !["PHYLLOME-GLES-OK", "PHYLLOME-GLES-FAIL"]
        .iter()
        .any(|m| serial().contains(m))
    {
        assert!(
            Instant::now() < deadline,
            "the guest never finished the check:\n{}",
            serial()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let console = serial();
    let renderer = console
        .lines()
        .find_map(|l| l.strip_prefix("PHYLLOME-GL-RENDERER="))
        .unwrap_or_default();
    assert!(
        renderer.starts_with("virgl"),
        "GL_RENDERER is {renderer:?}:\n{console}"
    );
    assert!(console.contains("PHYLLOME-GLES-OK"), "{console}");

    // kmscube on the card: while it turns, the app's window and the dumped scanout (the
    // last frame the device flushed) show the cube.
    let deadline = Instant::now() + Duration::from_secs(60);
    let (gx, gy, gw, gh) = geometry(&display, &window);
    let (mut in_window, mut in_dump) = (0.0f64, 0.0f64);
    while (in_window <= 0.1 || in_dump <= 0.1)
        && Instant::now() < deadline
        && !serial().contains("PHYLLOME-GL-TEST-DONE")
    {
        std::thread::sleep(Duration::from_millis(500));
        if in_window <= 0.1 {
            let (w, h, rgb) = screenshot(&display, "app-virgl-kmscube.png");
            let area = (
                gx + gw / 4,
                gy + gh / 4,
                (gx + 3 * gw / 4).min(w),
                (gy + 3 * gh / 4).min(h),
            );
            in_window = coloured_share(w, &rgb, area);
        }
        if in_dump <= 0.1 && p("scanout.png").exists() {
            let kept = workspace().join("target/screenshots/virgl-kmscube-scanout.png");
            // The dump is replaced by rename: a copy is always a whole PNG.
            if std::fs::copy(p("scanout.png"), &kept).is_ok() {
                let (w, h, rgb) = decode(&kept);
                assert_eq!((w, h), (800, 600));
                in_dump = coloured_share(w, &rgb, (w / 4, h / 4, 3 * w / 4, 3 * h / 4));
            }
        }
    }
    assert!(
        in_window > 0.1,
        "the app's window shows no cube ({in_window:.3} coloured)"
    );
    assert!(
        in_dump > 0.1,
        "the dumped scanout shows no cube ({in_dump:.3} coloured)"
    );

    assert!(
        wait("PHYLLOME-GL-TEST-DONE", 120),
        "kmscube never finished:\n{}",
        serial()
    );
    let console = serial();
    assert!(console.contains("PHYLLOME-KMSCUBE-EXIT=0"), "{console}");
    let frames: u32 = console
        .lines()
        .filter_map(|l| l.split("Rendered ").nth(1)?.split(' ').next()?.parse().ok())
        .max()
        .unwrap_or(0);
    assert!(
        frames >= 1000,
        "kmscube rendered {frames} frames:\n{console}"
    );

    // The guest powers off; the backend then exits 0.
    let deadline = Instant::now() + Duration::from_secs(60);
    while qemu.0.try_wait().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = qemu.0.kill();
    let _ = qemu.0.wait();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = backend.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = backend.kill();
            panic!("the GPU backend did not exit when QEMU left");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "the GPU backend ended with {status}");
}
