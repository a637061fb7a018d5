//! Helpers shared by the VMM's integration tests: assembling the tiny guests in
//! `tests/guests/` at test time (with binutils' `as` and `ld`), and running them.

#![allow(dead_code, clippy::unwrap_used)]

use phyllome_vmm::{SerialOutput, StopReason, Vm, VmConfig, VmEvent, VmHandle};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn guests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/guests")
}

/// Builds `tests/guests/<name>.S` once per test binary run into `<name>.<ext>`: assembles
/// it with `as <bits>`, then `finish(object, output)` makes the result. Tests run in
/// parallel threads: one at a time builds (two building the same guest would race on its
/// temporary files), and names are unique per process so parallel test binaries never
/// race on the same file.
fn build_once(name: &str, bits: &str, ext: &str, finish: impl FnOnce(&Path, &Path)) -> PathBuf {
    static BUILDING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = BUILDING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let out_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("guests");
    std::fs::create_dir_all(&out_dir).unwrap();
    let obj = out_dir.join(format!("{name}.{ext}.{}.o", std::process::id()));
    let out = out_dir.join(format!("{name}.{}.{ext}", std::process::id()));
    if out.exists() {
        return out;
    }
    let status = Command::new("as")
        .args([bits, "-I"])
        .arg(guests_dir())
        .arg("-o")
        .arg(&obj)
        .arg(guests_dir().join(format!("{name}.S")))
        .status()
        .expect("binutils' `as` is installed (scripts/install-deps.sh)");
    assert!(status.success(), "assembling {name}.S failed");
    let tmp = out.with_extension("tmp");
    finish(&obj, &tmp);
    std::fs::rename(&tmp, &out).unwrap();
    out
}

/// Assembles and links `tests/guests/<name>.S` into an ELF, once per test binary run.
pub fn guest(name: &str) -> PathBuf {
    build_once(name, "--64", "elf", |obj, out| {
        let status = Command::new("ld")
            .args([
                "-m",
                "elf_x86_64",
                "-nostdlib",
                "--no-warn-rwx-segments",
                "-T",
            ])
            .arg(guests_dir().join("guest.ld"))
            .arg("-o")
            .arg(out)
            .arg(obj)
            .status()
            .expect("binutils' `ld` is installed");
        assert!(status.success(), "linking {name} failed");
    })
}

/// Assembles `tests/guests/<name>.S` into a flat 4 KiB firmware image (`as --32`, then
/// `objcopy -O binary -j .text`; the source is never linked, so it must need no
/// relocations), once per test binary run.
pub fn firmware(name: &str) -> PathBuf {
    build_once(name, "--32", "fd", |obj, out| {
        let status = Command::new("objcopy")
            .args(["-O", "binary", "-j", ".text"])
            .arg(obj)
            .arg(out)
            .status()
            .expect("binutils' `objcopy` is installed");
        assert!(status.success(), "extracting {name}'s image failed");
        let len = std::fs::metadata(out).unwrap().len();
        assert_eq!(len, 4096, "{name}.S must assemble to a 4 KiB image");
    })
}

/// A config for a tiny guest whose serial output comes back as events.
pub fn config_for(name: &str) -> VmConfig {
    let mut c = VmConfig::new(guest(name));
    c.machine.memory_mib = 64;
    c.machine.no_reboot = true;
    c.serial.output = SerialOutput::Events;
    c
}

/// Serial text collected so far, and the stop reason once stopped.
#[derive(Default, Debug)]
pub struct Observed {
    pub serial: String,
    pub events: Vec<VmEvent>,
    pub stopped: Option<StopReason>,
}

/// Collects events until `until` holds or `timeout` passes.
pub fn watch(
    handle: &VmHandle,
    seen: &mut Observed,
    timeout: Duration,
    until: impl Fn(&Observed) -> bool,
) -> bool {
    let deadline = Instant::now() + timeout;
    while !until(seen) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        match handle.next_event(left.min(Duration::from_millis(50))) {
            Some(VmEvent::SerialOutput(bytes)) => {
                seen.serial.push_str(&String::from_utf8_lossy(&bytes))
            }
            Some(VmEvent::Stopped(r)) => {
                seen.stopped = Some(r.clone());
                seen.events.push(VmEvent::Stopped(r));
            }
            Some(e) => seen.events.push(e),
            None => {}
        }
    }
    true
}

/// Runs a guest to its stop (at most `timeout`), returning what it printed and why it stopped.
pub fn run_to_stop(config: VmConfig, timeout: Duration) -> Observed {
    let handle = Vm::start(config).expect("VM starts");
    let mut seen = Observed::default();
    let stopped = watch(&handle, &mut seen, timeout, |s| s.stopped.is_some());
    assert!(
        stopped,
        "guest did not stop within {timeout:?}; serial so far: {:?}",
        seen.serial
    );
    seen
}
