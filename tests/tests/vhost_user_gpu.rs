//! Linux's own virtio-gpu and virtio-input drivers against `phyllome-vmm device gpu`,
//! served over vhost-user to QEMU (TCG): the guest's framebuffer console reaches the dumped
//! scanout; with the app attached to the console connection under Xvfb, the app's window
//! shows the guest's console and what xdotool types into the window runs in the guest's
//! shell. Screenshots are kept in target/screenshots/.

#![allow(
    clippy::unwrap_used,
    clippy::cast_possible_truncation,
    clippy::cast_precision_loss,
    reason = "a test: screenshots are small"
)]

use phyllome_tests::desktop::{
    app, decode, geometry, screenshot, text_rows, window_named, xdo, xvfb, Kill,
};
use phyllome_tests::{
    guest_input_devices, vhost_user_device, vmm_binary, wait_for_path, workspace, Assets,
    VIRTIO_INPUT_DEVICES,
};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const WIDTH: u32 = 800;
const HEIGHT: u32 = 600;

struct Guest {
    qemu: Kill,
    backend: Option<Child>,
    dir: tempfile::TempDir,
}

impl Drop for Guest {
    fn drop(&mut self) {
        if let Some(mut b) = self.backend.take() {
            let _ = b.kill();
            let _ = b.wait();
        }
    }
}

impl Guest {
    /// Our GPU backend (with keyboard and tablet, and the console connection when
    /// `console`), then QEMU booting Debian's kernel with `initrd` (from the asset cache).
    fn start(initrd: &str, cmdline: &str, console: bool) -> Self {
        let assets = Assets::get();
        let dir = tempfile::tempdir().unwrap();
        let p = |n: &str| dir.path().join(n);
        let mut backend = Command::new(vmm_binary());
        backend
            .args(["device", "gpu", "--socket"])
            .arg(p("gpu.sock"))
            .args(["--size", &format!("{WIDTH}x{HEIGHT}"), "--input-socket"])
            .arg(p("in"))
            .arg("--dump-scanout")
            .arg(p("scanout.png"));
        if console {
            backend.arg("--console").arg(p("console.sock"));
        }
        let backend = backend.spawn().unwrap();
        for s in ["gpu.sock", "in.keyboard", "in.tablet"] {
            wait_for_path(&p(s));
        }
        if console {
            wait_for_path(&p("console.sock"));
        }
        // Not under `timeout`: killing that would leave QEMU running.
        let mut qemu = Command::new("qemu-system-x86_64");
        qemu.args(["-accel", "tcg", "-m", "256"])
            .args(["-nodefaults", "-display", "none", "-no-reboot"])
            .arg("-serial")
            .arg(format!("file:{}", p("serial.txt").display()))
            .args(["-object", "memory-backend-memfd,id=mem,size=256M,share=on"])
            .args(["-machine", "pc,memory-backend=mem"])
            .arg("-kernel")
            .arg(assets.kernel("generic"))
            .arg("-initrd")
            .arg(assets.dir.join(initrd))
            .args(["-append", cmdline])
            .stdout(Stdio::null());
        for (id, device, socket) in [
            ("gpu", "vhost-user-gpu-pci", "gpu.sock"),
            ("kbd", "vhost-user-input-pci", "in.keyboard"),
            ("tab", "vhost-user-input-pci", "in.tablet"),
        ] {
            vhost_user_device(&mut qemu, id, device, &p(socket));
        }
        let qemu = qemu.spawn().unwrap();
        Self {
            qemu: Kill(qemu),
            backend: Some(backend),
            dir,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn serial(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(self.path("serial.txt")).unwrap_or_default())
            .into_owned()
    }

    /// Whether the guest's serial output shows `marker` within `secs`.
    fn wait_serial(&self, marker: &str, secs: u64) -> bool {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            if self.serial().contains(marker) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        false
    }

    /// QEMU is stopped (or has stopped); our backend must then exit 0.
    fn finish(mut self) {
        let _ = self.qemu.0.kill();
        let _ = self.qemu.0.wait();
        let mut backend = self.backend.take().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = backend.try_wait().unwrap() {
                assert!(status.success(), "the GPU backend ended with {status}");
                return;
            }
            if Instant::now() > deadline {
                let _ = backend.kill();
                panic!("the GPU backend did not exit when QEMU left");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Text rows and lit share of the guest's screen inside the app's window: the bounding
/// box of the console's black background within the window.
fn screen_text(display: &str, window: &str, shot: &(u32, u32, Vec<u8>)) -> Option<(usize, f64)> {
    let (gx, gy, gw, gh) = geometry(display, window);
    let (w, h, rgb) = shot;
    let (x_end, y_end) = ((gx + gw).min(*w), (gy + gh).min(*h));
    let (mut x0, mut y0, mut x1, mut y1) = (u32::MAX, u32::MAX, 0, 0);
    for y in gy..y_end {
        for x in gx..x_end {
            let i = ((y * w + x) * 3) as usize;
            if rgb[i..i + 3] == [0, 0, 0] {
                (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x), y1.max(y));
            }
        }
    }
    (x1 > x0 + 100 && y1 > y0 + 100).then(|| text_rows(*w, *h, rgb, (x0, y0, x1 + 1, y1 + 1)))
}

/// Screenshots (kept as `name`) until the guest's screen in `window` shows text that
/// satisfies `enough` (text rows, lit share), for up to `secs`; the last reading.
fn wait_screen_text(
    display: &str,
    window: &str,
    name: &str,
    secs: u64,
    enough: impl Fn((usize, f64)) -> bool,
) -> Option<(usize, f64)> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        std::thread::sleep(Duration::from_millis(500));
        let shot = screenshot(display, name);
        let text = screen_text(display, window, &shot);
        if text.is_some_and(&enough) || Instant::now() > deadline {
            return text;
        }
    }
}

/// Types `command` and Return into `window` with xdotool, as a user at the keyboard would.
/// (Xvfb has no window manager to activate windows: focus is enough.)
fn type_line(display: &str, window: &str, command: &str) {
    assert!(xdo(display, &["windowfocus", "--sync", window]));
    assert!(xdo(
        display,
        &["type", "--window", window, "--delay", "40", command]
    ));
    assert!(xdo(display, &["key", "--window", window, "Return"]));
}

#[test]
fn linux_draws_its_console_through_our_gpu_backend_and_binds_our_input_backends() {
    let guest = Guest::start("virtio-initrd.cpio", "console=ttyS0 panic=-1 quiet", false);
    assert!(
        guest.wait_serial("PHYLLOME-DEVICE-TEST-DONE", 240),
        "the guest never finished:\n{}",
        guest.serial()
    );
    // The guest powers off by itself.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut guest = guest;
    let exited = loop {
        if guest.qemu.0.try_wait().unwrap().is_some() {
            break true;
        }
        if Instant::now() > deadline {
            break false;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(exited, "QEMU did not stop after the guest powered off");
    let console = guest.serial();
    // The driver took our display size from GET_DISPLAY_INFO / EDID.
    assert!(
        console.contains(&format!("PHYLLOME-GPU-FB=virtio_gpudrmfb {WIDTH},{HEIGHT}")),
        "{console}"
    );
    // QEMU's PC adds its own PS/2 keyboard; ours come after it.
    let input: Vec<&str> = guest_input_devices(&console)
        .into_iter()
        .filter(|l| !l.contains("AT Translated") && !l.contains("EV=120013"))
        .collect();
    assert_eq!(input, VIRTIO_INPUT_DEVICES, "{console}");
    let scanout = guest.path("scanout.png");
    guest_finished_dump(&scanout);
    guest.finish();
}

/// The dump (written when the backend stops at the latest) shows the console's text lines.
fn guest_finished_dump(scanout: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !scanout.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let (w, h, rgb) = decode(scanout);
    let shots = workspace().join("target/screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    std::fs::copy(scanout, shots.join("qemu-gpu-console.png")).unwrap();
    assert_eq!((w, h), (WIDTH, HEIGHT));
    let (rows, share) = text_rows(w, h, &rgb, (0, 0, w, h));
    assert!((0.005..0.3).contains(&share), "lit share {share}");
    assert!(rows >= 8, "only {rows} rows of text");
}

#[test]
fn the_app_shows_the_guest_console_and_what_is_typed_runs_in_the_guest() {
    let (_x, display) = xvfb();
    let guest = Guest::start(
        "virtio-initrd.cpio",
        "console=ttyS0 panic=-1 quiet phyllome.shell",
        true,
    );
    assert!(
        guest.wait_serial("PHYLLOME-SHELL-READY", 240),
        "the guest's shell never started:\n{}",
        guest.serial()
    );
    let _app = app(
        &display,
        &["--console".as_ref(), guest.path("console.sock").as_os_str()],
    );
    let window = window_named(&display, "Phyllome").expect("the app's window shows");
    // The console's eight lines of text show in the window (scaled to fit it).
    let before = wait_screen_text(
        &display,
        &window,
        "app-qemu-console.png",
        30,
        |(rows, share)| rows >= 8 && share < 0.3,
    );
    let before = before.expect("the guest's screen is not in the window");
    assert!(
        before.0 >= 8,
        "the guest's console is not in the window: {before:?}"
    );

    // Typed into the window, run by the guest's shell: the output reaches its serial port.
    type_line(
        &display,
        &window,
        "echo PHYLLOME-TYPED-$((6*7)) > /dev/ttyS0",
    );
    assert!(
        guest.wait_serial("PHYLLOME-TYPED-42", 60),
        "what was typed never ran in the guest:\n{}",
        guest.serial()
    );
    // And the command line shows on the guest's console in the window: more text.
    let after = wait_screen_text(&display, &window, "app-qemu-console-typed.png", 20, |t| {
        t.0 > before.0
    })
    .unwrap_or_default();
    // The command line and its prompt: at least one more row of text.
    assert!(
        after.0 > before.0,
        "no new text in the window: {before:?} then {after:?}"
    );
    guest.finish();
}

/// The README's demo VM on a display: its initramfs loads virtio-gpu and virtio-input and
/// starts a shell on the display's console (as well as on the serial port). Through the
/// app, under QEMU in place of our VMM: the welcome text shows, and a typed command runs.
#[test]
fn the_demo_vm_offers_a_shell_on_its_display() {
    let (_x, display) = xvfb();
    let guest = Guest::start(
        "demo-initrd.cpio",
        "console=tty0 console=ttyS0 panic=-1 quiet",
        true,
    );
    assert!(
        guest.wait_serial("PHYLLOME-DEMO-DISPLAY-SHELL", 240),
        "the demo started no shell on its display:\n{}",
        guest.serial()
    );
    let _app = app(
        &display,
        &[
            "--console".as_ref(),
            guest.path("console.sock").as_os_str(),
            "--name".as_ref(),
            "Demo".as_ref(),
        ],
    );
    let window = window_named(&display, "Demo").expect("the app's window shows");
    let shown = wait_screen_text(&display, &window, "app-demo-vm.png", 30, |(rows, _)| {
        rows >= 3
    });
    assert!(
        shown.is_some_and(|(rows, _)| rows >= 3),
        "no welcome text on the display: {shown:?}"
    );
    type_line(&display, &window, "echo demo-$((2+3)) > /dev/ttyS0");
    assert!(
        guest.wait_serial("demo-5", 60),
        "the command typed on the display never ran:\n{}",
        guest.serial()
    );
    guest.finish();
}
