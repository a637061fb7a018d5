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

use phyllome_tests::app_binary;
use phyllome_tests::desktop::{find, lines, screenshot, wait_line, xvfb, Kill};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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
