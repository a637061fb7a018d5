//! The app as its user meets it, for the UI tests: on its own X display (Xvfb), with a
//! private D-Bus session bus (and, on it, the accessibility bus that GTK starts), and its
//! own data, state and runtime folders. Tests type with xdotool, read the windows through
//! the accessibility tree (`tests/scripts/ui.py`, AT-SPI as screen readers see it) and
//! take screenshots.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::missing_panics_doc,
    reason = "test helpers: a failure here is a failed test"
)]

use crate::desktop::{xvfb_sized, Kill};
use crate::workspace;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One accessible object: role, name, states ("sensitive", "checked", "focused").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// "push button", "label", "check box"...
    pub role: String,
    /// Its name (a label's text, a button's label).
    pub name: String,
    /// Its states.
    pub states: Vec<String>,
}

/// A private desktop session for the app.
#[derive(Debug)]
pub struct Session {
    /// The X display (":N").
    pub display: String,
    /// The session bus address.
    pub bus: String,
    /// The session's home for XDG folders.
    pub home: tempfile::TempDir,
    _bus: Kill,
    _x: Kill,
}

impl Session {
    /// A 1280x800 screen and a private session bus.
    pub fn new() -> Self {
        let (x, display) = xvfb_sized("1280x800x24");
        let home = tempfile::tempdir().unwrap();
        for d in ["data", "state", "config", "cache", "runtime"] {
            std::fs::create_dir_all(home.path().join(d)).unwrap();
        }
        std::fs::set_permissions(
            home.path().join("runtime"),
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .unwrap();
        // The services the bus starts (the accessibility bus among them) inherit its
        // environment: give them this session's display and runtime folder, or sessions
        // running side by side would share one accessibility bus socket.
        let mut daemon = Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--print-address=1"])
            .env("DISPLAY", &display)
            .env("XDG_RUNTIME_DIR", home.path().join("runtime"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("dbus-daemon is installed (scripts/install-deps.sh)");
        let mut address = String::new();
        BufReader::new(daemon.stdout.take().unwrap())
            .read_line(&mut address)
            .unwrap();
        Self {
            display,
            bus: address.trim().to_owned(),
            home,
            _bus: Kill(daemon),
            _x: x,
        }
    }

    /// The VM library's folder.
    pub fn library(&self) -> PathBuf {
        self.home.path().join("data/phyllome/vms")
    }

    /// A command with this session's environment.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new(program);
        let h = self.home.path();
        c.env("DISPLAY", &self.display)
            .env("DBUS_SESSION_BUS_ADDRESS", &self.bus)
            .env("XDG_DATA_HOME", h.join("data"))
            .env("XDG_STATE_HOME", h.join("state"))
            .env("XDG_CONFIG_HOME", h.join("config"))
            .env("XDG_CACHE_HOME", h.join("cache"))
            .env("XDG_RUNTIME_DIR", h.join("runtime"))
            .env("GDK_BACKEND", "x11")
            .env("GSK_RENDERER", "cairo")
            .env("LANG", "C.UTF-8")
            .env_remove("LC_ALL")
            .env_remove("LC_MESSAGES")
            .env_remove("LANGUAGE")
            .env_remove("GDK_DEBUG");
        c
    }

    /// Starts the app with `args` and `env`; its output goes to `log`.
    pub fn app(&self, args: &[&std::ffi::OsStr], env: &[(&str, &str)], log: &Path) -> App {
        let mut c = self.command(crate::app_binary());
        c.args(args)
            .envs(env.iter().copied())
            .stdout(std::fs::File::create(log).unwrap())
            .stderr(std::fs::File::create(log.with_extension("err")).unwrap());
        App(c.spawn().expect("the app runs"))
    }

    /// Runs `tests/scripts/ui.py` with `args`: its success and output.
    pub fn ui(&self, args: &[&str]) -> (bool, String) {
        let out = self
            .command("/usr/bin/python3")
            .arg(workspace().join("tests/scripts/ui.py"))
            .args(args)
            .output()
            .expect("python3-pyatspi is installed (scripts/install-deps.sh)");
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), text)
    }

    /// Every object of the app's windows.
    pub fn tree(&self) -> Vec<Node> {
        let (_, text) = self.ui(&["tree"]);
        text.lines()
            .filter_map(|l| {
                let mut f = l.split('\t');
                Some(Node {
                    role: f.next()?.to_owned(),
                    name: f.next()?.to_owned(),
                    states: f
                        .next()
                        .unwrap_or_default()
                        .split(',')
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect(),
                })
            })
            .collect()
    }

    /// Waits (up to `secs`) until some object's name contains `text`.
    pub fn wait_text(&self, text: &str, secs: u32) -> bool {
        let found = self.ui(&["wait", text, &secs.to_string()]).0;
        if !found {
            // What was there instead, for the failure's report.
            let names: Vec<String> = self
                .tree()
                .into_iter()
                .filter(|n| !n.name.is_empty() && n.role != "panel" && n.role != "filler")
                .map(|n| format!("{}: {}", n.role, n.name))
                .collect();
            eprintln!("no {text:?} in:\n  {}", names.join("\n  "));
        }
        found
    }

    /// Presses the button named `name`.
    pub fn press(&self, name: &str) {
        let (ok, out) = self.ui(&["press", name]);
        assert!(ok, "pressing {name:?}: {out}");
    }

    /// Presses the button named `name` in the window titled `window`.
    pub fn press_in(&self, name: &str, window: &str) {
        let (ok, out) = self.ui(&["press", name, window]);
        assert!(ok, "pressing {name:?} in {window:?}: {out}");
    }

    /// Focuses the X window named exactly `name` (waiting for it) and returns its id.
    pub fn focus(&self, name: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = self
                .command("xdotool")
                .args(["search", "--onlyvisible", "--name", &format!("^{name}$")])
                .output()
                .unwrap();
            if let Some(w) = String::from_utf8_lossy(&out.stdout).lines().next() {
                let w = w.to_owned();
                let _ = self.command("xdotool").args(["windowfocus", &w]).status();
                std::thread::sleep(Duration::from_millis(300));
                return w;
            }
            assert!(Instant::now() < deadline, "no window named {name:?}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Types keys with xdotool (`key` arguments such as "Return", "ctrl+a").
    pub fn keys(&self, keys: &[&str]) {
        let ok = self
            .command("xdotool")
            .arg("key")
            .args(keys)
            .status()
            .unwrap()
            .success();
        assert!(ok, "xdotool key {keys:?}");
        std::thread::sleep(Duration::from_millis(400));
    }

    /// Types text with xdotool.
    pub fn type_text(&self, text: &str) {
        let ok = self
            .command("xdotool")
            .args(["type", "--delay", "20", text])
            .status()
            .unwrap()
            .success();
        assert!(ok, "xdotool type");
    }

    /// Whether a visible window named exactly `name` exists now.
    pub fn window_shown(&self, name: &str) -> bool {
        let out = self
            .command("xdotool")
            .args(["search", "--onlyvisible", "--name", &format!("^{name}$")])
            .output()
            .unwrap();
        !String::from_utf8_lossy(&out.stdout).trim().is_empty()
    }

    /// A screenshot kept as `target/screenshots/<name>`, decoded.
    pub fn screenshot(&self, name: &str) -> (u32, u32, Vec<u8>) {
        crate::desktop::screenshot(&self.display, name)
    }
}

impl Default for Session {
    fn default() -> Self {
        Self::new()
    }
}

/// The app's process, killed when dropped unless it exited.
#[derive(Debug)]
pub struct App(pub Child);

impl App {
    /// Waits up to `secs` for the app to exit; its exit status.
    pub fn wait_exit(&mut self, secs: u64) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            if let Ok(Some(s)) = self.0.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    }
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Builds an installer image at `iso` laid out as Debian's netinst (volume id, `.disk/info`,
/// `install.amd/vmlinuz` and `initrd.gz`), with `kernel` as its kernel.
pub fn debian_like_iso(iso: &Path, kernel: &Path) {
    let root = iso.with_extension("root");
    std::fs::create_dir_all(root.join("install.amd")).unwrap();
    std::fs::create_dir_all(root.join(".disk")).unwrap();
    std::fs::write(
        root.join(".disk/info"),
        "Debian GNU/Linux 12.8.0 \"Bookworm\" - Official amd64 NETINST",
    )
    .unwrap();
    std::fs::copy(kernel, root.join("install.amd/vmlinuz")).unwrap();
    std::fs::write(root.join("install.amd/initrd.gz"), b"initrd").unwrap();
    let ok = Command::new("xorriso")
        .args([
            "-as",
            "mkisofs",
            "-quiet",
            "-R",
            "-J",
            "-V",
            "Debian 12.8.0 amd64 n",
            "-o",
        ])
        .arg(iso)
        .arg(&root)
        .stderr(Stdio::null())
        .status()
        .expect("xorriso is installed (scripts/install-deps.sh)")
        .success();
    assert!(ok, "xorriso failed");
}

/// Assembles one of the VMM's tiny test guests (`vmm/tests/guests/<name>.S`) into an ELF
/// with a PVH entry at `out`: a kernel this machine's KVM runs, for VMs that must start.
pub fn tiny_guest(name: &str, out: &Path) {
    let guests = workspace().join("vmm/tests/guests");
    let obj = out.with_extension("o");
    let ok = Command::new("as")
        .args(["--64", "-I"])
        .arg(&guests)
        .arg("-o")
        .arg(&obj)
        .arg(guests.join(format!("{name}.S")))
        .status()
        .expect("binutils is installed")
        .success();
    assert!(ok, "assembling {name}.S");
    let ok = Command::new("ld")
        .args([
            "-m",
            "elf_x86_64",
            "-nostdlib",
            "--no-warn-rwx-segments",
            "-T",
        ])
        .arg(guests.join("guest.ld"))
        .arg("-o")
        .arg(out)
        .arg(&obj)
        .status()
        .expect("binutils is installed")
        .success();
    assert!(ok, "linking {name}");
}
