//! Sound for the virtio-snd tests, heard the way a user would hear it: a PipeWire server of
//! the test's own (PipeWire and WirePlumber as child processes, headless, with their own
//! runtime, configuration and state folders and no session bus), where a null sink stands for
//! the speakers and a loopback for the microphone; recording that sink and playing tones
//! into that microphone (pw-record, pw-play); QEMU booting the sound guest
//! (`guest-assets.sh sound`) with a virtio-snd device on that server; and the analysis of
//! what was heard (dominant frequency, seconds heard, dropouts, when it started), in Rust so
//! that no test needs numpy.

mod analysis;
mod guest;

pub use analysis::{analyse, Heard, DROPOUT_WINDOWS, LOUD_RMS, WINDOW_FRAMES};
pub use guest::{
    capture_from_console, decode_base64, guest_status, run_guest, sound_assets, sound_guest_qemu,
    GuestRun, GuestTask, SoundDevice, GUEST_SECONDS, GUEST_TONE_HZ,
};

use crate::desktop::Kill;
use std::ffi::OsString;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The null sink that guests play into: the speakers, and the default sink.
pub const SINK: &str = "phyllome-test-sink";
/// The microphone: the loopback's source, which guests record from (the default source).
pub const MICROPHONE: &str = "phyllome-test-microphone";
/// The loopback's sink side: what is played into it comes out of [`MICROPHONE`].
pub const MICROPHONE_INPUT: &str = "phyllome-test-microphone-input";
/// Frames a second: everything here is 48 kHz.
pub const RATE: u32 = 48_000;
/// Samples a frame: everything here is stereo, S16_LE, interleaved.
pub const CHANNELS: usize = 2;

/// The server's configuration drop-in (`pipewire.conf.d`): the sink and the microphone. The
/// sink outranks the microphone's sink side as the default sink, and the microphone outranks
/// the sink's monitor as the default source (`priority.session`, which WirePlumber picks
/// defaults by).
const SERVER_CONFIG: &str = r#"
context.objects = [
    { factory = adapter
      args = {
          factory.name = support.null-audio-sink
          node.name = "phyllome-test-sink"
          node.description = "Phyllome test sink"
          media.class = "Audio/Sink"
          audio.position = [ FL FR ]
          audio.rate = 48000
          priority.session = 1000
          object.linger = true
          monitor.channel-volumes = true
      }
    }
]
context.modules = [
    { name = libpipewire-module-loopback
      args = {
          node.description = "Phyllome test microphone"
          audio.position = [ FL FR ]
          capture.props = {
              node.name = "phyllome-test-microphone-input"
              media.class = "Audio/Sink"
              priority.session = 1
          }
          playback.props = {
              node.name = "phyllome-test-microphone"
              media.class = "Audio/Source"
              priority.session = 2000
          }
      }
    }
]
"#;

/// Why something in the sound harness failed, as a sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SoundError(pub String);

impl std::fmt::Display for SoundError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SoundError {}

/// A [`SoundError`] saying what failed and why.
fn failed(what: impl std::fmt::Display, why: impl std::fmt::Display) -> SoundError {
    SoundError(format!("{what}: {why}."))
}

/// Creates (or empties) the file at `path`.
fn create(path: &Path) -> Result<std::fs::File, SoundError> {
    std::fs::File::create(path).map_err(|e| failed(format!("Cannot create {}", path.display()), e))
}

/// Variables that would lead a client to another sound server, or to a display.
const FOREIGN_VARIABLES: [&str; 4] = [
    "PIPEWIRE_REMOTE",
    "PULSE_SERVER",
    "DISPLAY",
    "WAYLAND_DISPLAY",
];

/// A PipeWire server of the test's own, with WirePlumber; both killed when dropped.
#[derive(Debug)]
pub struct SoundServer {
    dir: PathBuf,
    // Dropped in this order: the session manager before the server it talks to.
    wireplumber: Kill,
    pipewire: Kill,
}

impl SoundServer {
    /// Starts PipeWire and WirePlumber with their folders under `dir` (which must exist and
    /// outlive the server), and waits (up to 20 s) until WirePlumber has made [`SINK`] the
    /// default sink and [`MICROPHONE`] the default source.
    ///
    /// # Errors
    /// When a folder cannot be made, either program does not start or exits, or the
    /// defaults do not appear in time (the error holds both logs).
    pub fn start(dir: &Path) -> Result<Self, SoundError> {
        let runtime = dir.join("runtime");
        let drop_in = dir.join("config/pipewire/pipewire.conf.d");
        for folder in [&runtime, &drop_in, &dir.join("state")] {
            std::fs::create_dir_all(folder)
                .map_err(|e| failed(format!("Cannot make {}", folder.display()), e))?;
        }
        std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| failed(format!("Cannot restrict {}", runtime.display()), e))?;
        let config = drop_in.join("phyllome-test.conf");
        std::fs::write(&config, SERVER_CONFIG)
            .map_err(|e| failed(format!("Cannot write {}", config.display()), e))?;

        let pipewire = Kill(spawn_logged(
            &mut client_command(dir, "pipewire"),
            &dir.join("pipewire.log"),
        )?);
        let socket = runtime.join("pipewire-0");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !socket.exists() {
            if Instant::now() > deadline {
                return Err(SoundError(format!(
                    "PipeWire did not make its socket {} within 10 s. {}",
                    socket.display(),
                    logs_in(dir)
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let wireplumber = Kill(spawn_logged(
            &mut client_command(dir, "wireplumber"),
            &dir.join("wireplumber.log"),
        )?);
        let mut server = Self {
            dir: dir.to_path_buf(),
            wireplumber,
            pipewire,
        };
        server.wait_for_defaults(Duration::from_secs(20))?;
        Ok(server)
    }

    /// Waits until the "default" metadata names [`SINK`] and [`MICROPHONE`].
    fn wait_for_defaults(&mut self, limit: Duration) -> Result<(), SoundError> {
        let deadline = Instant::now() + limit;
        loop {
            for (name, child) in [
                ("PipeWire", &mut self.pipewire.0),
                ("WirePlumber", &mut self.wireplumber.0),
            ] {
                if let Ok(Some(status)) = child.try_wait() {
                    return Err(SoundError(format!(
                        "{name} exited ({status}) while starting. {}",
                        logs_in(&self.dir)
                    )));
                }
            }
            let metadata = self
                .command("timeout")
                .args(["5", "pw-metadata", "-n", "default"])
                .stdin(Stdio::null())
                .output()
                .map_err(|e| failed("pw-metadata (pipewire-bin) cannot be run", e))?;
            let metadata = String::from_utf8_lossy(&metadata.stdout);
            let names = |key: &str, node: &str| {
                metadata.contains(&format!("key:'{key}' value:'{{\"name\":\"{node}\"}}'"))
            };
            if names("default.audio.sink", SINK) && names("default.audio.source", MICROPHONE) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(SoundError(format!(
                    "WirePlumber did not make {SINK} the default sink and {MICROPHONE} the \
                     default source within {limit:?} (the default metadata: {metadata:?}). {}",
                    self.logs()
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The environment a client of this server needs (`XDG_RUNTIME_DIR` and the rest).
    /// [`SoundServer::apply`] also removes what would point a client elsewhere.
    pub fn env(&self) -> Vec<(&'static str, OsString)> {
        env_of(&self.dir)
    }

    /// Makes `command` a client of this server (a backend, or QEMU): [`SoundServer::env`]
    /// set, and the variables that would lead it to another server or a display removed.
    pub fn apply<'a>(&self, command: &'a mut Command) -> &'a mut Command {
        make_client(&self.dir, command)
    }

    /// `program` as a client of this server.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        client_command(&self.dir, program)
    }

    /// What PipeWire and WirePlumber have logged so far: for failure messages.
    pub fn logs(&self) -> String {
        logs_in(&self.dir)
    }

    /// Records what reaches [`SINK`] (its monitor) to `file`, raw S16_LE 48 kHz stereo,
    /// until [`Recording::stop`].
    ///
    /// # Errors
    /// When pw-record cannot be started.
    pub fn record_sink(&self, file: &Path) -> Result<Recording, SoundError> {
        let log = self.dir.join("pw-record.log");
        // With --raw, pw-record writes the samples to its standard output.
        let child = self
            .command("pw-record")
            .args(["--raw", "--target", SINK, "-P", "stream.capture.sink=true"])
            .args(raw_format())
            .stdin(Stdio::null())
            .stdout(create(file)?)
            .stderr(create(&log)?)
            .spawn()
            .map_err(|e| failed("pw-record (pipewire-bin) cannot be started", e))?;
        Ok(Recording {
            child: Kill(child),
            file: file.to_path_buf(),
            log,
        })
    }

    /// Plays `wav` into the microphone ([`MICROPHONE_INPUT`]); the player is killed when
    /// the returned value is dropped.
    ///
    /// # Errors
    /// When pw-play cannot be started.
    pub fn play_into_microphone(&self, wav: &Path) -> Result<Kill, SoundError> {
        let mut play = self.command("pw-play");
        play.args(["--target", MICROPHONE_INPUT])
            .arg(wav)
            .stdin(Stdio::null());
        Ok(Kill(self.spawn_player(&mut play)?))
    }

    /// Plays a tone of `frequency` Hz (as [`tone`]) into the microphone without end, until
    /// the returned value is dropped: pw-play reads it raw from a pipe that a thread keeps
    /// full (pw-play takes it in real time), so no length has to be guessed in advance.
    ///
    /// # Errors
    /// When pw-play cannot be started.
    pub fn play_tone_into_microphone(&self, frequency: f64) -> Result<Kill, SoundError> {
        let mut play = self.command("pw-play");
        play.args(["--raw", "--target", MICROPHONE_INPUT])
            .args(raw_format())
            .stdin(Stdio::piped());
        let mut child = self.spawn_player(&mut play)?;
        let mut pipe = child
            .stdin
            .take()
            .ok_or_else(|| SoundError("pw-play's standard input is not a pipe.".to_owned()))?;
        std::thread::spawn(move || {
            let chunk = frames_in(0.1);
            // Until pw-play is gone, and the pipe with it.
            for first in (0..).step_by(chunk) {
                let bytes: Vec<u8> = tone_from(frequency, first, chunk)
                    .iter()
                    .flat_map(|s| s.to_le_bytes())
                    .collect();
                if pipe.write_all(&bytes).is_err() {
                    break;
                }
            }
        });
        Ok(Kill(child))
    }

    /// Starts `play` (pw-play), its errors to `pw-play.log`.
    fn spawn_player(&self, play: &mut Command) -> Result<Child, SoundError> {
        play.stdout(Stdio::null())
            .stderr(create(&self.dir.join("pw-play.log"))?)
            .spawn()
            .map_err(|e| failed("pw-play (pipewire-bin) cannot be started", e))
    }
}

/// pw-record's and pw-play's arguments for raw [`RATE`], [`CHANNELS`] S16_LE on standard
/// output or input.
fn raw_format() -> [String; 7] {
    [
        "--rate",
        &RATE.to_string(),
        "--channels",
        &CHANNELS.to_string(),
        "--format",
        "s16",
        "-",
    ]
    .map(str::to_owned)
}

/// The environment of a server whose folders are under `dir`.
fn env_of(dir: &Path) -> Vec<(&'static str, OsString)> {
    let runtime = dir.join("runtime").into_os_string();
    let mut no_bus = OsString::from("unix:path=");
    no_bus.push(dir.join("no-session-bus"));
    vec![
        ("XDG_RUNTIME_DIR", runtime.clone()),
        ("PIPEWIRE_RUNTIME_DIR", runtime),
        ("XDG_CONFIG_HOME", dir.join("config").into_os_string()),
        ("XDG_STATE_HOME", dir.join("state").into_os_string()),
        // Nothing listens there: no session bus is autolaunched, none is used.
        ("DBUS_SESSION_BUS_ADDRESS", no_bus),
    ]
}

/// Makes `command` a client of the server whose folders are under `dir`.
fn make_client<'a>(dir: &Path, command: &'a mut Command) -> &'a mut Command {
    for name in FOREIGN_VARIABLES {
        command.env_remove(name);
    }
    command.envs(env_of(dir))
}

/// `program` as a client of the server whose folders are under `dir`.
fn client_command(dir: &Path, program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut command = Command::new(program);
    make_client(dir, &mut command);
    command
}

/// Starts `command` with its standard output and error to `log`.
fn spawn_logged(command: &mut Command, log: &Path) -> Result<Child, SoundError> {
    let out = create(log)?;
    let err = out
        .try_clone()
        .map_err(|e| failed(format!("Cannot share {}", log.display()), e))?;
    command
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| failed(format!("{:?} cannot be started", command.get_program()), e))
}

/// The PipeWire and WirePlumber logs under `dir`, for a failure message.
fn logs_in(dir: &Path) -> String {
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
    format!(
        "PipeWire's log:\n{}\nWirePlumber's log:\n{}",
        read("pipewire.log"),
        read("wireplumber.log")
    )
}

/// A running pw-record; killed when dropped.
#[derive(Debug)]
pub struct Recording {
    child: Kill,
    file: PathBuf,
    log: PathBuf,
}

impl Recording {
    /// Stops the recording (SIGINT, as Ctrl-C: pw-record flushes what it has) and returns
    /// its samples, interleaved stereo.
    ///
    /// # Errors
    /// When the recording cannot be read, or pw-record had already failed.
    pub fn stop(mut self) -> Result<Vec<i16>, SoundError> {
        let child = &mut self.child.0;
        if let Ok(Some(status)) = child.try_wait() {
            return Err(SoundError(format!(
                "pw-record had exited ({status}) before it was stopped: {}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            )));
        }
        let pid = libc::pid_t::try_from(child.id())
            .map_err(|e| failed("pw-record's process ID is out of range", e))?;
        // SAFETY: kill(2) only sends a signal, to our own child, not yet reaped.
        unsafe { libc::kill(pid, libc::SIGINT) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let bytes = std::fs::read(&self.file)
            .map_err(|e| failed(format!("Cannot read {}", self.file.display()), e))?;
        Ok(samples_from_le_bytes(&bytes))
    }
}

/// S16_LE samples from bytes (an odd last byte is left out).
pub fn samples_from_le_bytes(bytes: &[u8]) -> Vec<i16> {
    bytes
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect()
}

/// A sine of `frequency` Hz for `seconds` at half of full scale, the same on both channels,
/// interleaved, at [`RATE`].
pub fn tone(frequency: f64, seconds: f64) -> Vec<i16> {
    tone_from(frequency, 0, frames_in(seconds))
}

/// `frames` of [`tone`] from frame `first` on (so that pieces join without a jump).
pub fn tone_from(frequency: f64, first: usize, frames: usize) -> Vec<i16> {
    let mut samples = Vec::with_capacity(frames * CHANNELS);
    for i in first..first + frames {
        let t = i as f64 / f64::from(RATE);
        let v = to_sample(16384.0 * (2.0 * std::f64::consts::PI * frequency * t).sin());
        samples.extend([v; CHANNELS]);
    }
    samples
}

/// The frames in `seconds` at [`RATE`] (negative: none).
pub fn frames_in(seconds: f64) -> usize {
    rounded(seconds * f64::from(RATE))
}

/// `x` rounded to a count (negative: 0).
#[allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "rounded and clamped at zero first; the counts here are far below usize::MAX"
)]
fn rounded(x: f64) -> usize {
    x.round().max(0.0) as usize
}

/// A sample from a value, rounded and clamped to the i16 range.
#[allow(
    clippy::cast_possible_truncation,
    reason = "clamped to the i16 range first"
)]
fn to_sample(v: f64) -> i16 {
    v.round().clamp(f64::from(i16::MIN), f64::from(i16::MAX)) as i16
}

/// Writes interleaved stereo `samples` as a WAV file (PCM S16_LE, [`RATE`]).
///
/// # Errors
/// When the file cannot be written.
pub fn write_wav(path: &Path, samples: &[i16]) -> Result<(), SoundError> {
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let cannot = |e: hound::Error| SoundError(format!("Cannot write {}: {e}.", path.display()));
    let mut wav = hound::WavWriter::create(path, spec).map_err(cannot)?;
    for &s in samples {
        wav.write_sample(s).map_err(cannot)?;
    }
    wav.finalize().map_err(cannot)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wav_file_has_the_canonical_header() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.wav");
        write_wav(&path, &[1, 2, 3, 4]).unwrap();
        let bytes = std::fs::read(path).unwrap();
        assert_eq!(bytes.len(), 44 + 8);
        assert_eq!(&bytes[..4], b"RIFF");
        assert_eq!(&bytes[8..16], b"WAVEfmt ");
        assert_eq!(u32::from_le_bytes(bytes[24..28].try_into().unwrap()), RATE);
        assert_eq!(&bytes[44..], &[1, 0, 2, 0, 3, 0, 4, 0]);
    }
}
