//! The sound guest (`guest-assets.sh sound`) under QEMU: the command that boots it with a
//! virtio-snd device (QEMU's own, or a vhost-user backend such as ours), running it while
//! watching its console, and reading back what it reported there (its tools' exit statuses,
//! its recording in base64).

use super::{failed, samples_from_le_bytes, SoundError, SoundServer};
use crate::Assets;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::Instant;

/// Which virtio-snd device the sound guest gets in QEMU.
#[derive(Clone, Copy, Debug)]
pub enum SoundDevice<'a> {
    /// QEMU's own `virtio-sound-pci` on `-audiodev pipewire`: the reference, which shows
    /// that the harness itself is right.
    Qemu,
    /// `vhost-user-snd-pci` on the backend listening at this socket; the guest's memory is
    /// a shared memfd, as vhost-user needs.
    VhostUser(&'a Path),
}

/// What the sound guest does (`phyllome.sound=` on its command line).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuestTask {
    /// Plays 4 s of a 440 Hz tone (S16_LE, 48 kHz, stereo, half of full scale) on hw:0,0.
    Play,
    /// Records 4 s from hw:0,0 and sends them on the console ([`capture_from_console`]).
    Record,
    /// Both at once.
    Duplex,
}

impl GuestTask {
    /// The word on the guest's command line.
    pub fn word(self) -> &'static str {
        match self {
            Self::Play => "play",
            Self::Record => "record",
            Self::Duplex => "duplex",
        }
    }
}

/// The frequency of the guest's tone ([`GuestTask::Play`]), Hz.
pub const GUEST_TONE_HZ: f64 = 440.0;
/// How long the guest plays or records, seconds.
pub const GUEST_SECONDS: f64 = 4.0;

/// The sound guest's assets (`guest-assets.sh sound`: bookworm-backports' kernel and
/// `sound-initrd.cpio`), built if needed.
pub fn sound_assets() -> Assets {
    Assets::with_sets(&["sound"])
}

/// QEMU (software emulation, 256 MiB, serial console on standard output, under a `limit`
/// of seconds, a client of `server`) booting the sound guest from `assets` to do `task` on
/// `device`.
pub fn sound_guest_qemu(
    server: &SoundServer,
    assets: &Assets,
    device: SoundDevice<'_>,
    task: GuestTask,
    limit: u32,
) -> Command {
    let mut qemu = server.command("timeout");
    qemu.args(["-k", "10", &limit.to_string()])
        .args(["qemu-system-x86_64", "-accel", "tcg", "-m", "256"])
        .args([
            "-nodefaults",
            "-display",
            "none",
            "-serial",
            "stdio",
            "-no-reboot",
        ])
        .arg("-kernel")
        .arg(assets.kernel("backports"))
        .arg("-initrd")
        .arg(assets.dir.join("sound-initrd.cpio"))
        .arg("-append")
        .arg(format!(
            "console=ttyS0 panic=-1 quiet phyllome.sound={}",
            task.word()
        ));
    match device {
        SoundDevice::Qemu => {
            qemu.args(["-audiodev", "pipewire,id=snd0"])
                .args(["-device", "virtio-sound-pci,audiodev=snd0"]);
        }
        SoundDevice::VhostUser(socket) => {
            qemu.args([
                "-object",
                "memory-backend-memfd,id=mem,size=256M,share=on",
                "-machine",
                "pc,memory-backend=mem",
            ]);
            crate::vhost_user_device(&mut qemu, "snd0", "vhost-user-snd-pci", socket);
        }
    }
    qemu
}

/// How a guest run went.
#[derive(Debug)]
pub struct GuestRun {
    /// The serial console, lines joined with `\n` (carriage returns dropped).
    pub console: String,
    /// What QEMU wrote to its standard error.
    pub qemu_log: String,
    /// How `timeout` (and QEMU under it) ended: 124 when the limit ran out.
    pub status: ExitStatus,
    /// From start to exit.
    pub seconds: f64,
}

/// Runs `qemu` (as [`sound_guest_qemu`] makes it) to its end, handing each console line
/// (without its line ending) to `on_line` as it comes.
///
/// # Errors
/// When QEMU cannot be started or waited for.
pub fn run_guest(
    qemu: &mut Command,
    mut on_line: impl FnMut(&str),
) -> Result<GuestRun, SoundError> {
    let started = Instant::now();
    let mut child = qemu
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| failed("QEMU (under timeout) cannot be started", e))?;
    let mut stderr = child
        .stderr
        .take()
        .ok_or_else(|| SoundError("QEMU's standard error is not a pipe.".to_owned()))?;
    let errors = std::thread::spawn(move || {
        let mut text = Vec::new();
        let _ = stderr.read_to_end(&mut text);
        String::from_utf8_lossy(&text).into_owned()
    });
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| SoundError("QEMU's standard output is not a pipe.".to_owned()))?;
    let mut console = String::new();
    let mut reader = BufReader::new(stdout);
    let mut line = Vec::new();
    while reader.read_until(b'\n', &mut line).unwrap_or(0) > 0 {
        let text = String::from_utf8_lossy(&line);
        let text = text
            .trim_end_matches(['\r', '\n'])
            .replace(['\r', '\0'], "");
        on_line(&text);
        console.push_str(&text);
        console.push('\n');
        line.clear();
    }
    let status = child
        .wait()
        .map_err(|e| failed("Cannot wait for QEMU", e))?;
    Ok(GuestRun {
        console,
        qemu_log: errors.join().unwrap_or_default(),
        status,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The exit status the guest printed for `what` ("PLAY" or "RECORD": aplay's or arecord's,
/// on its `PHYLLOME-SOUND-<what>-END status=N` line).
pub fn guest_status(console: &str, what: &str) -> Option<i32> {
    let prefix = format!("PHYLLOME-SOUND-{what}-END status=");
    console.lines().find_map(|l| {
        l.trim()
            .strip_prefix(prefix.as_str())?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    })
}

/// The samples the guest recorded ([`GuestTask::Record`]), from the base64 it wrote
/// between `PHYLLOME-SOUND-CAPTURE-BEGIN` and `-END` on its console.
///
/// # Errors
/// When the markers are missing or what is between them is not base64.
pub fn capture_from_console(console: &str) -> Result<Vec<i16>, SoundError> {
    let after = console
        .split_once("PHYLLOME-SOUND-CAPTURE-BEGIN")
        .ok_or_else(|| {
            SoundError(
                "The guest sent no capture (no PHYLLOME-SOUND-CAPTURE-BEGIN line).".to_owned(),
            )
        })?
        .1;
    let encoded = after
        .split_once("PHYLLOME-SOUND-CAPTURE-END")
        .ok_or_else(|| {
            SoundError(
                "The guest's capture is cut short (no PHYLLOME-SOUND-CAPTURE-END line).".to_owned(),
            )
        })?
        .0;
    Ok(samples_from_le_bytes(&decode_base64(encoded)?))
}

/// The bytes of base64 `text`, whitespace (the console's line breaks) ignored.
///
/// # Errors
/// When the text is not base64.
pub fn decode_base64(text: &str) -> Result<Vec<u8>, SoundError> {
    use base64::Engine;
    let chars: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(chars)
        .map_err(|e| SoundError(format!("The guest's recording is not base64: {e}.")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_decodes_with_and_without_padding_across_lines() {
        assert_eq!(decode_base64("aGVs\nbG8=\n").unwrap(), b"hello");
        assert_eq!(decode_base64("aGVsbG8h").unwrap(), b"hello!");
        assert_eq!(decode_base64("aGk=").unwrap(), b"hi");
        assert_eq!(decode_base64("aA==").unwrap(), b"h");
        assert!(decode_base64("aGk").is_err());
        assert!(decode_base64("a*k=").is_err());
    }

    #[test]
    fn a_capture_is_read_back_from_the_console() {
        let console = "noise\nPHYLLOME-SOUND-CAPTURE-BEGIN\nAQD//w==\nPHYLLOME-SOUND-CAPTURE-END\n";
        assert_eq!(capture_from_console(console).unwrap(), vec![1, -1]);
        assert!(capture_from_console("PHYLLOME-SOUND-CAPTURE-BEGIN\nAQD//w==\n").is_err());
    }

    #[test]
    fn the_guest_status_is_read_from_its_end_line() {
        let console = "PHYLLOME-SOUND-PLAY-START at 1.0\nPHYLLOME-SOUND-PLAY-END status=1 at 2.0\n";
        assert_eq!(guest_status(console, "PLAY"), Some(1));
        assert_eq!(guest_status(console, "RECORD"), None);
    }
}
