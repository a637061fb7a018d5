//! The app's display window under Xvfb, on a console connection served by a harness that
//! drives our virtio-gpu device with a known picture (red, green / blue, white quadrants):
//! the screenshot shows the picture at its aspect ratio; keys typed and clicks made with
//! xdotool reach the device as evdev events; when the device side goes away the window
//! says the display was lost (and the picture is gone). A firmware's boot screen (ramfb)
//! shows the same way before any guest driver runs. Screenshots are kept in
//! target/screenshots/.

#![allow(
    clippy::unwrap_used,
    clippy::cast_possible_truncation,
    reason = "a test: screenshots are small"
)]

use phyllome_tests::app_binary;
use phyllome_tests::desktop::{
    find, geometry, lines, screenshot, wait_line, wait_resize, xvfb, Kill,
};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

type Shot = (u32, u32, Vec<u8>);
type Found = (u32, u32, u32, u32, usize);

/// Starts the harness on `socket` (with `args` after it) and, once it says READY, the app's
/// display window on the same connection; returns the harness, its lines and the app.
fn open_window(
    display: &str,
    socket: &std::path::Path,
    args: &[&str],
) -> (Kill, std::sync::mpsc::Receiver<String>, Kill) {
    let mut harness = Command::new(env!("CARGO_BIN_EXE_display_harness"))
        .arg(socket)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let from_device = lines(&mut harness);
    let harness = Kill(harness);
    assert!(
        wait_line(&from_device, "READY"),
        "the harness never showed its picture"
    );
    let app = Kill(
        Command::new("dbus-run-session")
            .arg("--")
            .arg(app_binary())
            .arg("--console")
            .arg(socket)
            .env("DISPLAY", display)
            .env("GDK_BACKEND", "x11")
            .env("GSK_RENDERER", "cairo")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    (harness, from_device, app)
}

/// Screenshots (kept as `name`) every `every` until more than `min` pixels are `color`,
/// or `within` has passed; returns the last one.
fn shot_when(
    display: &str,
    name: &str,
    color: [u8; 3],
    min: usize,
    every: Duration,
    within: Duration,
) -> Shot {
    let deadline = Instant::now() + within;
    loop {
        std::thread::sleep(every);
        let shot = screenshot(display, name);
        if find(&shot, color).4 > min || Instant::now() > deadline {
            return shot;
        }
    }
}

/// The harness's picture in `shot`: the red, green and blue quadrants, each a solid block,
/// where they belong, the same size, the picture's 4:3 kept.
fn quadrants(shot: &Shot) -> [Found; 3] {
    let red = find(shot, [0xff, 0, 0]);
    let green = find(shot, [0, 0xff, 0]);
    let blue = find(shot, [0, 0, 0xff]);
    for (name, q) in [("red", red), ("green", green), ("blue", blue)] {
        assert!(q.4 > 10_000, "{name} quadrant missing: {q:?}");
        // A solid rectangle: (almost) every pixel in its box has the colour.
        let area = ((q.2 - q.0 + 1) * (q.3 - q.1 + 1)) as usize;
        assert!(q.4 * 100 >= area * 98, "{name} is not a solid block: {q:?}");
    }
    assert!(
        red.2 < green.0 && red.3 < blue.1,
        "{red:?} {green:?} {blue:?}"
    );
    let (qw, qh) = (red.2 - red.0 + 1, red.3 - red.1 + 1);
    assert!((green.2 - green.0 + 1).abs_diff(qw) <= 1 && (blue.3 - blue.1 + 1).abs_diff(qh) <= 1);
    let aspect = f64::from(qw) / f64::from(qh);
    assert!((aspect - 4.0 / 3.0).abs() < 0.02, "aspect {aspect}");
    [red, green, blue]
}

#[test]
fn the_display_window_shows_the_guest_picture_sends_input_and_survives_losing_it() {
    let (_x, display) = xvfb();
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("display.sock");
    let (mut harness, from_device, _app) = open_window(&display, &socket, &[]);
    // Wait until the picture is on screen.
    let shot = shot_when(
        &display,
        "app-display.png",
        [0xff, 0, 0],
        1000,
        Duration::from_millis(500),
        Duration::from_secs(30),
    );
    let [red, green, _] = quadrants(&shot);
    let qw = red.2 - red.0 + 1;
    // The bars beside the letterboxed picture are black (the app's bundled stylesheet).
    let (w, _, rgb) = &shot;
    assert!(red.0 > 8, "the window is wider than the picture: {red:?}");
    let (bx, by) = (red.0 - 4, (red.1 + red.3) / 2);
    let i = ((by * w + bx) * 3) as usize;
    assert_eq!(rgb[i..i + 3], [0, 0, 0], "letterbox bar at ({bx}, {by})");

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
    // The wheel: button 4 is up (one click, positive), 5 is down.
    xdo(&["click", "4"]);
    assert!(
        wait_line(&from_device, "Wheel { dx: 0, dy: 1 }"),
        "wheel up"
    );
    xdo(&["click", "5"]);
    assert!(
        wait_line(&from_device, "Wheel { dx: 0, dy: -1 }"),
        "wheel down"
    );

    // Ctrl+Alt releases the keyboard: Ctrl, already sent down, is released in the guest,
    // and keys typed then stay out of it; a click on the screen captures it again.
    xdo(&["key", "--window", &window, "ctrl+alt"]);
    assert!(
        wait_line(&from_device, "Key { code: 29, down: false }"),
        "Ctrl was not released in the guest"
    );
    xdo(&["key", "--window", &window, "b"]);
    xdo(&["click", "1"]);
    xdo(&["key", "--window", &window, "c"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match from_device.recv_timeout(left) {
            Ok(l) => {
                let done = l.contains("Key { code: 46, down: true }");
                seen.push(l);
                if done {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    assert!(
        seen.iter()
            .any(|l| l.contains("Key { code: 46, down: true }")),
        "C never arrived after the click: {seen:?}"
    );
    assert!(
        !seen.iter().any(|l| l.contains("Key { code: 48,")),
        "B reached the guest while the keyboard was released: {seen:?}"
    );

    // Damage: one small rectangle changes in the guest; only it is sent, drawn over the
    // picture in its place (scaled like the rest).
    writeln!(harness.0.stdin.as_mut().unwrap(), "PATCH").unwrap();
    assert!(wait_line(&from_device, "PATCHED"));
    let scale = f64::from(qw) / 160.0;
    let patched = shot_when(
        &display,
        "app-display-patched.png",
        [0xff, 0xff, 0],
        0,
        Duration::from_millis(300),
        Duration::from_secs(20),
    );
    let yellow = find(&patched, [0xff, 0xff, 0]);
    let side = 16.0 * scale;
    #[allow(clippy::cast_precision_loss, reason = "small pixel counts")]
    let filled = yellow.4 as f64 / (side * side);
    assert!(
        filled > 0.8 && filled < 1.2,
        "yellow square {yellow:?}, scale {scale}"
    );
    let expect_x = f64::from(red.0) + 8.0 * scale;
    let expect_y = f64::from(red.1) + 8.0 * scale;
    assert!(
        (f64::from(yellow.0) - expect_x).abs() <= 2.0
            && (f64::from(yellow.1) - expect_y).abs() <= 2.0,
        "yellow square at {yellow:?}, expected near ({expect_x}, {expect_y})"
    );
    // The rest of the picture is still there.
    let red_after = find(&patched, [0xff, 0, 0]);
    #[allow(clippy::cast_precision_loss, reason = "small pixel counts")]
    let red_lost = (red.4 - red_after.4) as f64;
    assert!(
        red_lost > 0.8 * side * side && red_lost < 1.5 * side * side,
        "red before {red:?}, after {red_after:?}"
    );
    assert_eq!(find(&patched, [0, 0xff, 0]).4, green.4, "green changed");

    // F11 hides the header bar (fullscreen; Xvfb has no window manager to resize the
    // window): the screen area grows, and the guest is asked for the taller size.
    let (_, _, _, win_h) = geometry(&display, &window);
    xdo(&["key", "--window", &window, "F11"]);

    // (Without a window manager the window keeps its 5-pixel client-side border.)
    let taller = wait_resize(&from_device, |_, h| h + 12 >= win_h);
    assert!(
        taller.is_some(),
        "no size as tall as the window ({win_h}) asked for without the header bar"
    );
    xdo(&["key", "--window", &window, "F11"]);
    let back = wait_resize(&from_device, |_, h| h + 30 < win_h);
    assert!(
        back.is_some(),
        "leaving fullscreen did not bring the header bar back"
    );

    // Resizing the window asks the guest for the new screen size, once it settles. (The
    // first request, for the window's first size, came earlier.)
    xdo(&["windowsize", &window, "900", "700"]);
    let asked = wait_resize(&from_device, |w, _| w > 850);
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

/// A firmware's boot screen (ramfb: a framebuffer in guest RAM that OVMF describes through
/// fw_cfg, before any guest driver runs) shows in the display window as the guest draws
/// it, and a redraw in guest RAM (a boot menu's highlight moving) reaches the window.
#[test]
fn the_display_window_shows_the_firmwares_boot_screen() {
    let (_x, display) = xvfb();
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("display.sock");
    let (mut harness, from_device, _app) = open_window(&display, &socket, &["--ramfb"]);
    let shot = shot_when(
        &display,
        "app-display-ramfb.png",
        [0xff, 0, 0],
        1000,
        Duration::from_millis(500),
        Duration::from_secs(30),
    );
    let [red, green, _] = quadrants(&shot);
    let qw = red.2 - red.0 + 1;

    // The guest redraws part of its framebuffer: the window follows within a moment.
    writeln!(harness.0.stdin.as_mut().unwrap(), "PATCH").unwrap();
    assert!(wait_line(&from_device, "PATCHED"));
    let patched = shot_when(
        &display,
        "app-display-ramfb-patched.png",
        [0xff, 0xff, 0],
        0,
        Duration::from_millis(300),
        Duration::from_secs(20),
    );
    let yellow = find(&patched, [0xff, 0xff, 0]);
    let side = 16.0 * f64::from(qw) / 160.0;
    #[allow(clippy::cast_precision_loss, reason = "small pixel counts")]
    let filled = yellow.4 as f64 / (side * side);
    assert!(
        filled > 0.8 && filled < 1.2,
        "the redrawn square on the boot screen: {yellow:?}"
    );
    assert_eq!(find(&patched, [0, 0xff, 0]).4, green.4, "green changed");
}
