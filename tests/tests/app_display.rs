//! The app's display window under Xvfb, on a console connection served by a harness that
//! drives our virtio-gpu device with a known picture (red, green / blue, white quadrants):
//! the screenshot shows the picture at its aspect ratio; keys typed and clicks made with
//! xdotool reach the device as evdev events; when the device side goes away the window
//! says the display was lost (and the picture is gone). Screenshots are kept in
//! target/screenshots/.

#![allow(
    clippy::unwrap_used,
    clippy::cast_possible_truncation,
    reason = "a test: screenshots are small"
)]

use phyllome_tests::{app_binary, workspace};
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts Xvfb on a free display; returns it and its number.
fn xvfb() -> (Kill, String) {
    let mut x = Command::new("Xvfb")
        .args([
            "-displayfd",
            "1",
            "-screen",
            "0",
            "1024x768x24",
            "-nolisten",
            "tcp",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("Xvfb is installed (scripts/install-deps.sh)");
    let mut out = x.stdout.take().unwrap();
    let mut number = String::new();
    let mut byte = [0u8; 1];
    while out.read(&mut byte).unwrap() == 1 && byte[0] != b'\n' {
        number.push(byte[0] as char);
    }
    (Kill(x), format!(":{}", number.trim()))
}

/// Lines the harness prints, as they come.
fn lines(child: &mut Child) -> Receiver<String> {
    let (tx, rx) = channel();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    rx
}

fn wait_line(rx: &Receiver<String>, want: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(l) if l.contains(want) => return true,
            Ok(_) => {}
            Err(_) => return false,
        }
    }
    false
}

fn screenshot(display: &str, name: &str) -> (u32, u32, Vec<u8>) {
    let dir = workspace().join("target/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    // PNG24: always RGB, even for an all-black screen.
    let ok = Command::new("import")
        .args(["-window", "root"])
        .arg(format!("PNG24:{}", path.display()))
        .env("DISPLAY", display)
        .status()
        .expect("ImageMagick's import is installed")
        .success();
    assert!(ok, "screenshot failed");
    decode(&path)
}

fn decode(path: &Path) -> (u32, u32, Vec<u8>) {
    let mut reader = png::Decoder::new(std::fs::File::open(path).unwrap())
        .read_info()
        .unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    let rgb = buf
        .chunks_exact(channels)
        .take((info.width * info.height) as usize)
        .flat_map(|p| [p[0], p[1], p[2]])
        .collect();
    (info.width, info.height, rgb)
}

/// The bounding box (x0, y0, x1, y1) of pixels exactly `color`, and how many there are.
fn find(shot: &(u32, u32, Vec<u8>), color: [u8; 3]) -> (u32, u32, u32, u32, usize) {
    let (w, _, rgb) = shot;
    let (mut x0, mut y0, mut x1, mut y1, mut n) = (u32::MAX, u32::MAX, 0, 0, 0);
    for (i, p) in rgb.chunks_exact(3).enumerate() {
        if p == color {
            let (x, y) = (i as u32 % w, i as u32 / w);
            (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x), y1.max(y));
            n += 1;
        }
    }
    (x0, y0, x1, y1, n)
}

#[test]
fn the_display_window_shows_the_guest_picture_sends_input_and_survives_losing_it() {
    let (_x, display) = xvfb();
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("display.sock");
    let mut harness = Command::new(env!("CARGO_BIN_EXE_display_harness"))
        .arg(&socket)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let from_device = lines(&mut harness);
    let mut harness = Kill(harness);
    assert!(
        wait_line(&from_device, "READY"),
        "the harness never showed its picture"
    );

    let _app = Kill(
        Command::new("dbus-run-session")
            .arg("--")
            .arg(app_binary())
            .arg("--console")
            .arg(&socket)
            .env("DISPLAY", &display)
            .env("GDK_BACKEND", "x11")
            .env("GSK_RENDERER", "cairo")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // Wait until the picture is on screen.
    let deadline = Instant::now() + Duration::from_secs(30);
    let shot = loop {
        std::thread::sleep(Duration::from_millis(500));
        let shot = screenshot(&display, "app-display.png");
        if find(&shot, [0xff, 0, 0]).4 > 1000 || Instant::now() > deadline {
            break shot;
        }
    };
    let red = find(&shot, [0xff, 0, 0]);
    let green = find(&shot, [0, 0xff, 0]);
    let blue = find(&shot, [0, 0, 0xff]);
    for (name, q) in [("red", red), ("green", green), ("blue", blue)] {
        assert!(q.4 > 10_000, "{name} quadrant missing: {q:?}");
        // A solid rectangle: (almost) every pixel in its box has the colour.
        let area = ((q.2 - q.0 + 1) * (q.3 - q.1 + 1)) as usize;
        assert!(q.4 * 100 >= area * 98, "{name} is not a solid block: {q:?}");
    }
    // Quadrants where they belong, each the same size, and the picture's 4:3 kept.
    assert!(
        red.2 < green.0 && red.3 < blue.1,
        "{red:?} {green:?} {blue:?}"
    );
    let (qw, qh) = (red.2 - red.0 + 1, red.3 - red.1 + 1);
    assert!((green.2 - green.0 + 1).abs_diff(qw) <= 1 && (blue.3 - blue.1 + 1).abs_diff(qh) <= 1);
    let aspect = f64::from(qw) / f64::from(qh);
    assert!((aspect - 4.0 / 3.0).abs() < 0.02, "aspect {aspect}");

    // Keyboard and mouse through xdotool reach the device as evdev events.
    let window = String::from_utf8(
        Command::new("xdotool")
            .args(["search", "--onlyvisible", "--name", "Phyllome"])
            .env("DISPLAY", &display)
            .output()
            .expect("xdotool is installed")
            .stdout,
    )
    .unwrap();
    let window = window
        .lines()
        .next()
        .expect("the window is on screen")
        .to_owned();
    let xdo = |args: &[&str]| {
        Command::new("xdotool")
            .args(args)
            .env("DISPLAY", &display)
            .status()
            .unwrap();
    };
    xdo(&["windowactivate", "--sync", &window]);
    xdo(&["windowfocus", "--sync", &window]);
    xdo(&["key", "--window", &window, "a"]);
    assert!(
        wait_line(&from_device, "Key { code: 30, down: true }"),
        "KEY_A never arrived"
    );
    assert!(wait_line(&from_device, "Key { code: 30, down: false }"));
    let (cx, cy) = ((red.0 + red.2) / 2, (red.1 + red.3) / 2);
    xdo(&["mousemove", &cx.to_string(), &cy.to_string()]);
    xdo(&["click", "1"]);
    assert!(
        wait_line(&from_device, "Pointer"),
        "no pointer motion arrived"
    );
    assert!(
        wait_line(&from_device, "Button { code: 272, down: true }"),
        "BTN_LEFT never arrived"
    );

    // Resizing the window asks the guest for the new screen size, once it settles. (The
    // first request, for the window's first size, came earlier.)
    xdo(&["windowsize", &window, "900", "700"]);
    let size_of = |l: &str| -> Option<(u32, u32)> {
        let rest = l.split("Resize { scanout: 0, width: ").nth(1)?;
        let (w, rest) = rest.split_once(", height: ")?;
        let h = rest.trim_end_matches([' ', '}']);
        Some((w.parse().ok()?, h.parse().ok()?))
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut asked = None;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match from_device.recv_timeout(left) {
            Ok(l) => {
                if let Some((w, h)) = size_of(&l).filter(|(w, _)| *w > 850) {
                    asked = Some((w, h));
                    break;
                }
            }
            Err(_) => break,
        }
    }
    // The screen area is the window less its frame and header bar.
    let (w, h) = asked.expect("no resize request for the new size reached the device");
    assert!(
        (860..=900).contains(&w) && (600..=700).contains(&h),
        "{w}x{h}"
    );

    // The device side goes away: the window stays and says so.
    drop(harness.0.kill());
    let _ = harness.0.wait();
    let deadline = Instant::now() + Duration::from_secs(20);
    let lost = loop {
        std::thread::sleep(Duration::from_millis(500));
        let shot = screenshot(&display, "app-display-lost.png");
        if find(&shot, [0xff, 0, 0]).4 == 0 || Instant::now() > deadline {
            break shot;
        }
    };
    assert_eq!(find(&lost, [0xff, 0, 0]).4, 0, "the picture is still shown");
    let alive = Command::new("xdotool")
        .args(["search", "--onlyvisible", "--name", "Phyllome"])
        .env("DISPLAY", &display)
        .output()
        .unwrap();
    assert!(
        !alive.stdout.is_empty(),
        "the window closed with the display"
    );
}
