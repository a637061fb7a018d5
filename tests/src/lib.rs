//! Shared helpers for Phyllome's end-to-end tests: where the built binaries and the cached
//! guest assets are, and running the nested-KVM harness.

pub mod desktop;
pub mod gpu_guest;
pub mod netns;
pub mod processes;
pub mod sound;
pub mod ui;

use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// The `phyllome-vmm` binary: `$PHYLLOME_VMM_BIN`, else the release build, else the debug
/// build. `scripts/test.sh` builds the release binary before running the tests; a release
/// binary older than the VMM's sources is refused (a test would run yesterday's code).
pub fn vmm_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("PHYLLOME_VMM_BIN") {
        return PathBuf::from(p);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"));
    let release = target.join("release/phyllome-vmm");
    if let Ok(built) = std::fs::metadata(&release).and_then(|m| m.modified()) {
        let newest = newest_source(&release);
        assert!(
            newest <= built,
            "{} is older than the VMM's sources: run `cargo build --release -p phyllome-vmm`",
            release.display()
        );
        return release;
    }
    let debug = target.join("debug/phyllome-vmm");
    assert!(
        debug.exists(),
        "phyllome-vmm is not built: run `cargo build --release -p phyllome-vmm` (scripts/test.sh does)"
    );
    debug
}

/// When a source of `binary` last changed: the files cargo's dep-info (`<binary>.d`) lists
/// for it (test-only modules are not among them), else every file under `vmm/src`.
fn newest_source(binary: &Path) -> std::time::SystemTime {
    let Ok(deps) = std::fs::read_to_string(binary.with_extension("d")) else {
        return newest_change(&workspace().join("vmm/src"));
    };
    let sources = deps.split_once(':').map_or("", |(_, s)| s);
    sources
        .split_whitespace()
        .filter_map(|f| std::fs::metadata(f).and_then(|m| m.modified()).ok())
        .max()
        .unwrap_or(std::time::SystemTime::UNIX_EPOCH)
}

/// When a file under `dir` last changed.
fn newest_change(dir: &Path) -> std::time::SystemTime {
    let mut newest = std::time::SystemTime::UNIX_EPOCH;
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        let when = if path.is_dir() {
            newest_change(&path)
        } else {
            entry
                .metadata()
                .and_then(|m| m.modified())
                .unwrap_or(std::time::SystemTime::UNIX_EPOCH)
        };
        newest = newest.max(when);
    }
    newest
}

/// The app's binary (`cargo build -p phyllome`; scripts/test.sh builds it), or the one
/// `PHYLLOME_APP_BIN` names (the benchmarks run the release build users get).
pub fn app_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("PHYLLOME_APP_BIN") {
        return PathBuf::from(p);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"));
    let debug = target.join("debug/phyllome");
    assert!(
        debug.exists(),
        "the app is not built: run `cargo build -p phyllome` (scripts/test.sh does)"
    );
    debug
}

/// The guest-asset folder with the 3D test guest built in it (`scripts/gl-guest.sh`,
/// cached): `gl-rootfs.ext4`, `gl-initrd.cpio`, and the kernels.
pub fn gl_guest_assets() -> PathBuf {
    run_asset_script("gl-guest.sh", None).0
}

/// Runs `scripts/<script>` (a script that builds guest assets and names their folder as the
/// last line of its standard output) and returns that folder with the whole of its standard
/// output. With `cache_home`, the script builds under that `XDG_CACHE_HOME` instead of the
/// usual cache (as on a fresh machine).
///
/// # Panics
/// When the script fails, or its last line is not a folder (a tool's chatter on standard
/// output once became the "folder" on fresh machines).
pub fn run_asset_script(script: &str, cache_home: Option<&Path>) -> (PathBuf, String) {
    run_asset_script_with(script, &[], cache_home)
}

/// [`run_asset_script`] with arguments (`guest-assets.sh sound`: the optional asset sets
/// to build as well).
///
/// # Panics
/// As [`run_asset_script`].
pub fn run_asset_script_with(
    script: &str,
    args: &[&str],
    cache_home: Option<&Path>,
) -> (PathBuf, String) {
    let mut cmd = Command::new(workspace().join("scripts").join(script));
    cmd.args(args);
    if let Some(home) = cache_home {
        cmd.env("XDG_CACHE_HOME", home)
            .env_remove("PHYLLOME_ASSETS");
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("scripts/{script} cannot be started: {e}"));
    assert!(
        out.status.success(),
        "{script} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let last = stdout.lines().last().unwrap_or_default().trim();
    let dir = PathBuf::from(last);
    assert!(
        dir.is_dir(),
        "{script} should end its standard output with its asset folder, but its last line is {last:?} (all of it: {stdout:?})"
    );
    (dir, stdout)
}

/// QEMU (TCG, 2 vCPUs, 1 GiB of shareable memory for vhost-user) booting the 3D guest in
/// `assets` with `cmdline` added, its serial port to `serial`; the caller adds the GPU.
pub fn gl_guest_qemu(assets: &Path, serial: &Path, cmdline: &str) -> Command {
    let mut qemu = Command::new("qemu-system-x86_64");
    qemu.args(["-accel", "tcg", "-cpu", "max", "-smp", "2", "-m", "1024"])
        .args(["-nodefaults", "-no-reboot"])
        .arg("-serial")
        .arg(format!("file:{}", serial.display()))
        .args(["-object", "memory-backend-memfd,id=mem,size=1024M,share=on"])
        .args(["-machine", "pc,memory-backend=mem"])
        .arg("-kernel")
        .arg(assets.join("kernels/generic/vmlinuz"))
        .arg("-initrd")
        .arg(assets.join("gl-initrd.cpio"))
        .args([
            "-append",
            &format!("console=ttyS0 quiet panic=-1 {cmdline}"),
        ])
        .arg("-drive")
        .arg(format!(
            "file={},if=virtio,format=raw,snapshot=on",
            assets.join("gl-rootfs.ext4").display()
        ));
    qemu
}

/// QEMU booting the 3D guest (as [`gl_guest_qemu`]) with `vhost-user-gpu-pci` on the
/// backend at `gpu_socket` and no display of its own; killed when dropped. Not under
/// `timeout`: killing that would leave QEMU running.
///
/// # Panics
/// When QEMU cannot be started.
pub fn gl_guest_on_gpu(
    assets: &Path,
    serial: &Path,
    cmdline: &str,
    gpu_socket: &Path,
) -> desktop::Kill {
    let mut qemu = gl_guest_qemu(assets, serial, cmdline);
    qemu.args(["-display", "none"])
        .stdout(std::process::Stdio::null());
    vhost_user_device(&mut qemu, "gpu", "vhost-user-gpu-pci", gpu_socket);
    desktop::Kill(qemu.spawn().expect("QEMU runs"))
}

/// Adds a vhost-user device to `qemu`: `device` (such as `vhost-user-gpu-pci`) on the
/// backend listening at `socket`, its chardev named `id`.
pub fn vhost_user_device<'a>(
    qemu: &'a mut Command,
    id: &str,
    device: &str,
    socket: &Path,
) -> &'a mut Command {
    qemu.arg("-chardev")
        .arg(format!("socket,id={id},path={}", socket.display()))
        .arg("-device")
        .arg(format!("{device},chardev={id}"))
}

/// The L1 shell line that sends the VMM's dumped scanout (`--dump-scanout /scanout.png`)
/// back on the nested console, for [`png_from_console`].
pub const SEND_SCANOUT_PNG: &str =
    "echo PHYLLOME-PNG-BEGIN; base64 /scanout.png; echo PHYLLOME-PNG-END";

/// The PNG that [`SEND_SCANOUT_PNG`] put on a nested console, kept for people to look at
/// as `target/screenshots/<name>`; its path.
///
/// # Panics
/// When the console holds no PNG.
pub fn png_from_console(console: &str, name: &str) -> PathBuf {
    let encoded: String = console
        .split("PHYLLOME-PNG-BEGIN")
        .nth(1)
        .and_then(|rest| rest.split("PHYLLOME-PNG-END").next())
        .expect("L1 sent the PNG")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '='))
        .collect();
    let b64 = tempfile::NamedTempFile::new().expect("a temporary file");
    std::fs::write(b64.path(), encoded.as_bytes()).expect("written");
    let png_bytes = Command::new("base64")
        .arg("-d")
        .arg(b64.path())
        .output()
        .expect("base64 runs")
        .stdout;
    let shots = workspace().join("target/screenshots");
    std::fs::create_dir_all(&shots).expect("the screenshot folder");
    let shot = shots.join(name);
    std::fs::write(&shot, &png_bytes).expect("the screenshot");
    shot
}

/// The SHA-256 of `bytes` in hex, as `sha256sum` (coreutils) prints it: what guests print
/// of what they read, compared with what the test gave them.
pub fn sha256(bytes: &[u8]) -> String {
    use std::io::Write;
    let mut child = Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("sha256sum (coreutils) runs");
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(bytes)
        .expect("sha256sum reads its input");
    let out = child.wait_with_output().expect("sha256sum ends");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// Guest assets built (and cached) by `scripts/guest-assets.sh`.
#[derive(Debug)]
pub struct Assets {
    /// The asset folder.
    pub dir: PathBuf,
}

impl Assets {
    /// Builds the assets if needed and returns their folder.
    pub fn get() -> Self {
        Self::with_sets(&[])
    }

    /// Builds the assets and the optional sets named (see `scripts/guest-assets.sh`: "sound")
    /// if needed, and returns their folder.
    pub fn with_sets(sets: &[&str]) -> Self {
        Self {
            dir: run_asset_script_with("guest-assets.sh", sets, None).0,
        }
    }

    /// A kernel: "cloud" or "generic" (or "backports", with the "sound" set).
    pub fn kernel(&self, flavour: &str) -> PathBuf {
        self.dir.join("kernels").join(flavour).join("vmlinuz")
    }

    /// The kernel release string of a flavour.
    pub fn kernel_version(&self, flavour: &str) -> String {
        std::fs::read_to_string(self.dir.join("kernels").join(flavour).join("version"))
            .unwrap_or_default()
            .trim()
            .to_owned()
    }

    /// The test initramfs: prints `PHYLLOME-L2-INIT cpus=N kernel=V` and powers off.
    pub fn test_initrd(&self) -> PathBuf {
        self.dir.join("l2-initrd.cpio")
    }
}

/// Waits (up to 10 s) for `path` to appear: a socket a child process is about to listen on.
///
/// # Panics
/// When it does not appear in time.
pub fn wait_for_path(path: &Path) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !path.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// What our virtio keyboard and tablet look like to Linux (`/proc/bus/input/devices`:
/// names, event types, absolute axes), as the virtio test initramfs prints them.
pub const VIRTIO_INPUT_DEVICES: [&str; 5] = [
    "N: Name=\"Phyllome Virtio Keyboard\"",
    "B: EV=3",
    "N: Name=\"Phyllome Virtio Tablet\"",
    "B: EV=f",
    "B: ABS=3",
];

/// The input device lines a guest printed (`PHYLLOME-INPUT ...` on its console).
pub fn guest_input_devices(console: &str) -> Vec<&str> {
    console
        .lines()
        .filter_map(|l| l.trim().strip_prefix("PHYLLOME-INPUT "))
        .collect()
}

/// How a nested run (`scripts/nested-kvm.sh`) ended.
#[derive(Debug)]
pub enum NestedEnd {
    /// QEMU exited, with this status.
    Exited(std::process::ExitStatus),
    /// Its console stayed silent too long; it was stopped.
    Stalled,
}

/// Runs a nested-kvm.sh command, handing each console line (with its newline, NULs
/// dropped) to `on_line` as it comes, and stops it when the console stays silent for
/// `silence`: no byte at all, not only no newline (a boot menu drawn with cursor moves
/// writes minutes of output without one). Nested SVM under QEMU's TCG now and then stalls
/// an L2 guest for good, QEMU's own guests as well as ours (seen in the firmware benchmark:
/// QEMU's installer run stopped after its first disk writes, as one of ours once did), and
/// a stalled L2 keeps L1 busy, so L1's own clock (icount: one nanosecond per instruction)
/// hardly moves and no timeout inside L1 fires; only the silence tells.
pub fn run_nested(
    cmd: &mut Command,
    silence: std::time::Duration,
    mut on_line: impl FnMut(&str),
) -> NestedEnd {
    use std::io::Read;
    use std::os::unix::process::CommandExt;
    // Its own process group, so that a stall takes QEMU down too: `timeout` or the script
    // is the child, QEMU its child, and an orphaned QEMU would hold the console pipe (and
    // this function) open for good.
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("scripts/nested-kvm.sh runs");
    let group = i32::try_from(child.id()).expect("a process id");
    let mut stdout = child.stdout.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    let reader = std::thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        while let Ok(n @ 1..) = stdout.read(&mut chunk) {
            if tx.send(chunk[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut pending = Vec::new();
    let mut emit = |pending: &mut Vec<u8>, all: bool| {
        while let Some(end) = pending
            .iter()
            .position(|&b| b == b'\n')
            .map(|i| i + 1)
            .or(all.then_some(pending.len()).filter(|&n| n > 0))
        {
            let line: Vec<u8> = pending.drain(..end).collect();
            on_line(&String::from_utf8_lossy(&line).replace('\0', ""));
        }
    };
    let end = loop {
        match rx.recv_timeout(silence) {
            Ok(bytes) => {
                pending.extend_from_slice(&bytes);
                emit(&mut pending, false);
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                break NestedEnd::Exited(child.wait().expect("wait for QEMU"));
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                // SAFETY: kill(2) with a negative pid signals the process group the child
                // leads (made above); it touches no memory of ours.
                unsafe { libc::kill(-group, libc::SIGKILL) };
                let _ = child.wait();
                break NestedEnd::Stalled;
            }
        }
    };
    // Whatever is left of the group goes too (QEMU exited: normally nothing).
    // SAFETY: as above.
    unsafe { libc::kill(-group, libc::SIGKILL) };
    emit(&mut pending, true);
    // The pipe closes once the group is gone; a reader still blocked is left behind
    // rather than waited for.
    if reader.is_finished() {
        let _ = reader.join();
    }
    end
}
