//! Driving the app on a virtual X display in tests: Xvfb on a free display number,
//! screenshots decoded to RGB, and the lines a child process prints, as they come.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::missing_panics_doc,
    clippy::cast_possible_truncation,
    reason = "test helpers: a failure here is a failed test; screenshots are small"
)]

use crate::workspace;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

/// A child process killed (and reaped) when dropped.
#[derive(Debug)]
pub struct Kill(pub Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts Xvfb (1024x768) on a free display; returns it and its number.
pub fn xvfb() -> (Kill, String) {
    xvfb_sized("1024x768x24")
}

/// Starts Xvfb with a screen of `geometry` (`WxHxDEPTH`) on a free display.
pub fn xvfb_sized(geometry: &str) -> (Kill, String) {
    let mut x = Command::new("Xvfb")
        .args([
            "-displayfd",
            "1",
            "-screen",
            "0",
            geometry,
            "-nolisten",
            "tcp",
            // Tests start apps one after another: no server reset when the last leaves.
            "-noreset",
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

/// Lines the child prints on stdout, as they come.
pub fn lines(child: &mut Child) -> Receiver<String> {
    let (tx, rx) = channel();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    rx
}

/// Whether a line containing `want` comes within 20 s.
pub fn wait_line(rx: &Receiver<String>, want: &str) -> bool {
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

/// Saves the whole screen as target/screenshots/NAME and returns it as (w, h, RGB).
pub fn screenshot(display: &str, name: &str) -> (u32, u32, Vec<u8>) {
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

/// A PNG file as (w, h, RGB).
pub fn decode(path: &Path) -> (u32, u32, Vec<u8>) {
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
pub fn find(shot: &(u32, u32, Vec<u8>), color: [u8; 3]) -> (u32, u32, u32, u32, usize) {
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

/// Runs xdotool on `display`; whether it succeeded.
pub fn xdo(display: &str, args: &[&str]) -> bool {
    Command::new("xdotool")
        .args(args)
        .env("DISPLAY", display)
        .status()
        .expect("xdotool is installed")
        .success()
}

/// The first visible window whose name contains `name`, once one shows (within 30 s).
pub fn window_named(display: &str, name: &str) -> Option<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let out = Command::new("xdotool")
            .args(["search", "--onlyvisible", "--name", name])
            .env("DISPLAY", display)
            .output()
            .expect("xdotool is installed");
        if let Some(w) = String::from_utf8_lossy(&out.stdout).lines().next() {
            return Some(w.to_owned());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    None
}

/// Starts the app on `display` (X11, a private session bus) with `args`.
pub fn app(display: &str, args: &[&std::ffi::OsStr]) -> Kill {
    Kill(
        Command::new("dbus-run-session")
            .arg("--")
            .arg(crate::app_binary())
            .args(args)
            .env("DISPLAY", display)
            .env("GDK_BACKEND", "x11")
            .env("GSK_RENDERER", "cairo")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the app runs"),
    )
}

/// The window's geometry (x, y, width, height) on the screen.
pub fn geometry(display: &str, window: &str) -> (u32, u32, u32, u32) {
    let out = Command::new("xdotool")
        .args(["getwindowgeometry", "--shell", window])
        .env("DISPLAY", display)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let get = |key: &str| -> u32 {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    (get("X"), get("Y"), get("WIDTH"), get("HEIGHT"))
}

/// The next `Resize { scanout: 0, width, height }` line (printed by a harness) whose size
/// satisfies `want`, within 20 s.
pub fn wait_resize(rx: &Receiver<String>, want: impl Fn(u32, u32) -> bool) -> Option<(u32, u32)> {
    let size_of = |l: &str| -> Option<(u32, u32)> {
        let rest = l.split("Resize { scanout: 0, width: ").nth(1)?;
        let (w, rest) = rest.split_once(", height: ")?;
        let h = rest.trim_end_matches([' ', '}']);
        Some((w.parse().ok()?, h.parse().ok()?))
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(l) => {
                if let Some((w, h)) = size_of(&l).filter(|(w, h)| want(*w, *h)) {
                    return Some((w, h));
                }
            }
            Err(_) => return None,
        }
    }
    None
}

/// How many 16-pixel text rows (the Linux console font's height) of the `area` (x0, y0, x1,
/// y1) of an RGB picture have glyphs (bright pixels), and the share of bright pixels.
pub fn text_rows(width: u32, height: u32, rgb: &[u8], area: (u32, u32, u32, u32)) -> (usize, f64) {
    let (x0, y0, x1, y1) = area;
    let lit = |x: u32, y: u32| {
        let i = ((y * width + x) * 3) as usize;
        rgb[i..i + 3].iter().any(|c| *c > 0x80)
    };
    assert!(x1 <= width && y1 <= height);
    let mut lit_count = 0usize;
    let mut rows = 0;
    let mut y = y0;
    while y < y1 {
        let band_end = (y + 16).min(y1);
        let mut any = false;
        for yy in y..band_end {
            for x in x0..x1 {
                if lit(x, yy) {
                    lit_count += 1;
                    any = true;
                }
            }
        }
        rows += usize::from(any);
        y = band_end;
    }
    let share = lit_count as f64 / f64::from((x1 - x0) * (y1 - y0));
    (rows, share)
}
