//! The sound harness, proved on QEMU's own virtio-snd device (`virtio-sound-pci` on
//! `-audiodev pipewire`) before any device of ours is judged by it: bookworm-backports'
//! kernel (Linux's virtio_snd driver) under QEMU's software emulation, with alsa-utils in
//! the guest, against a PipeWire server of the test's own (see `phyllome_tests::sound`).
//! The guest's 440 Hz tone must reach the server's sink whole (its frequency, its length,
//! no gaps); a 660 Hz tone played into the server's microphone must reach the guest's
//! recording. The same checks then judge our device: `phyllome-vmm device snd` under QEMU's
//! `vhost-user-snd-pci` ([`SoundDevice::VhostUser`]), with the microphone allowed (the
//! guest hears the host's tone) and not (the guest records silence).

#![allow(clippy::unwrap_used, reason = "a test")]

use phyllome_tests::sound::{
    analyse, capture_from_console, frames_in, guest_status, run_guest, sound_assets,
    sound_guest_qemu, write_wav, GuestRun, GuestTask, Heard, SoundDevice, SoundServer, CHANNELS,
    GUEST_SECONDS, GUEST_TONE_HZ,
};
use phyllome_tests::{vmm_binary, wait_for_path, workspace};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::Mutex;

/// One guest at a time: each wants both cores, and sound under emulation wants them on time.
static ONE_QEMU_AT_A_TIME: Mutex<()> = Mutex::new(());

/// The tone the host plays into the microphone, Hz.
const MICROPHONE_HZ: f64 = 660.0;
/// The most a run may take, seconds (about 15 s here).
const LIMIT: u32 = 180;

/// Keeps what was heard as `target/sound/<name>.wav`, for people to listen to.
fn keep(name: &str, samples: &[i16]) {
    let folder = workspace().join("target/sound");
    std::fs::create_dir_all(&folder).unwrap();
    write_wav(&folder.join(format!("{name}.wav")), samples).unwrap();
}

/// The guest's console, QEMU's errors and the server's logs: what a failure shows.
fn context(run: &GuestRun, server: &SoundServer) -> String {
    format!(
        "QEMU ended with {} after {:.1} s\n--- console:\n{}\n--- QEMU:\n{}\n--- {}",
        run.status,
        run.seconds,
        run.console,
        run.qemu_log,
        server.logs()
    )
}

/// The guest's own account (its sound devices, and when each step started and ended, in
/// seconds of uptime): shown with --nocapture.
fn show_guest(run: &GuestRun) {
    for line in run.console.lines() {
        if line.starts_with("PHYLLOME-SOUND-") {
            println!("    {line}");
        }
    }
}

/// The checks every run makes of the guest itself: its driver probed and the tool it ran
/// (aplay for "PLAY", arecord for "RECORD") exited 0.
fn check_guest(run: &GuestRun, server: &SoundServer, what: &str) {
    let console = &run.console;
    assert!(
        !console.contains("PHYLLOME-INSMOD-FAILED"),
        "{}",
        context(run, server)
    );
    assert!(
        console.contains("PHYLLOME-SOUND-DEVICES=") && console.contains("pcmC0D0"),
        "the guest has no PCM device: {}",
        context(run, server)
    );
    assert_eq!(
        guest_status(console, what),
        Some(0),
        "the guest's {what} status: {}",
        context(run, server)
    );
    assert!(
        console.contains("PHYLLOME-SOUND-DONE"),
        "{}",
        context(run, server)
    );
}

/// A tone of `hz` was heard whole: within 2 Hz, at least `seconds` - 0.5 s of it, no gaps.
fn check_tone(heard: &Heard, hz: f64, seconds: f64, what: &str) {
    let frequency = heard
        .frequency
        .unwrap_or_else(|| panic!("{what}: nothing heard ({heard})"));
    assert!(
        (frequency - hz).abs() <= 2.0,
        "{what}: {frequency:.1} Hz instead of {hz} Hz ({heard})"
    );
    assert!(
        heard.seconds_heard >= seconds - 0.5,
        "{what}: {:.2} s heard of {seconds} s ({heard})",
        heard.seconds_heard
    );
    assert!(
        heard.dropouts.is_empty(),
        "{what}: {} dropout(s) ({heard})",
        heard.dropouts.len()
    );
}

#[test]
fn a_guest_tone_reaches_the_sink_whole_through_qemus_own_virtio_sound() {
    let _one = ONE_QEMU_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let assets = sound_assets();
    let dir = tempfile::tempdir().unwrap();
    let server = SoundServer::start(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    let recording = server
        .record_sink(&dir.path().join("sink.raw"))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut qemu = sound_guest_qemu(&server, &assets, SoundDevice::Qemu, GuestTask::Play, LIMIT);
    let run = run_guest(&mut qemu, |_| {}).unwrap_or_else(|e| panic!("{e}"));
    let samples = recording.stop().unwrap_or_else(|e| panic!("{e}"));
    keep("qemu-virtio-sound-playback", &samples);
    let heard = analyse(&samples);
    println!(
        "QEMU's virtio-sound-pci, the guest's {GUEST_TONE_HZ} Hz at the sink: {heard}; \
         QEMU ran {:.1} s",
        run.seconds
    );
    show_guest(&run);
    check_guest(&run, &server, "PLAY");
    check_tone(
        &heard,
        GUEST_TONE_HZ,
        GUEST_SECONDS,
        &format!("the sink's recording\n{}", context(&run, &server)),
    );
}

#[test]
fn a_tone_played_into_the_microphone_reaches_the_guest_through_qemus_own_virtio_sound() {
    let _one = ONE_QEMU_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let assets = sound_assets();
    let dir = tempfile::tempdir().unwrap();
    let server = SoundServer::start(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    // Playing from before the guest boots until after it has recorded.
    let _microphone = server
        .play_tone_into_microphone(MICROPHONE_HZ)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut qemu = sound_guest_qemu(
        &server,
        &assets,
        SoundDevice::Qemu,
        GuestTask::Record,
        LIMIT,
    );
    let run = run_guest(&mut qemu, |_| {}).unwrap_or_else(|e| panic!("{e}"));
    show_guest(&run);
    check_guest(&run, &server, "RECORD");
    let samples = capture_from_console(&run.console)
        .unwrap_or_else(|e| panic!("{e}\n{}", context(&run, &server)));
    keep("qemu-virtio-sound-capture", &samples);
    let heard = analyse(&samples);
    println!(
        "QEMU's virtio-sound-pci, the host's {MICROPHONE_HZ} Hz in the guest's recording: \
         {heard}; QEMU ran {:.1} s",
        run.seconds
    );
    assert_eq!(
        samples.len(),
        frames_in(GUEST_SECONDS) * CHANNELS,
        "samples the guest recorded"
    );
    check_tone(
        &heard,
        MICROPHONE_HZ,
        GUEST_SECONDS,
        &format!("the guest's recording\n{}", context(&run, &server)),
    );
}

/// Our `device snd` on `socket`, a client of `server`; logs to `log`.
fn our_backend(server: &SoundServer, socket: &Path, microphone: bool, log: &Path) -> Child {
    let mut cmd = server.command(vmm_binary());
    cmd.args(["device", "snd", "--name", "sound test", "--socket"])
        .arg(socket)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap());
    if microphone {
        cmd.arg("--microphone");
    }
    let child = cmd.spawn().unwrap();
    wait_for_path(socket);
    child
}

/// Waits for the backend to leave after its frontend did: it must exit 0 by itself.
fn backend_exits_cleanly(mut backend: Child, log: &Path) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let status = loop {
        if let Some(status) = backend.try_wait().unwrap() {
            break Some(status);
        }
        if std::time::Instant::now() > deadline {
            let _ = backend.kill();
            let _ = backend.wait();
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let text = std::fs::read_to_string(log).unwrap_or_default();
    assert!(
        status.is_some_and(|s| s.success()),
        "device snd did not exit 0 when QEMU left ({status:?}):\n{text}"
    );
    text
}

#[test]
fn a_guest_tone_reaches_the_sink_whole_through_our_vhost_user_sound_card() {
    let _one = ONE_QEMU_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let assets = sound_assets();
    let dir = tempfile::tempdir().unwrap();
    let server = SoundServer::start(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    let socket = dir.path().join("snd.sock");
    let log = dir.path().join("device-snd.log");
    let backend = our_backend(&server, &socket, false, &log);
    let recording = server
        .record_sink(&dir.path().join("sink.raw"))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut qemu = sound_guest_qemu(
        &server,
        &assets,
        SoundDevice::VhostUser(&socket),
        GuestTask::Play,
        LIMIT,
    );
    let run = run_guest(&mut qemu, |_| {}).unwrap_or_else(|e| panic!("{e}"));
    // The card plays the end of the tone out before it goes.
    let log = backend_exits_cleanly(backend, &log);
    let samples = recording.stop().unwrap_or_else(|e| panic!("{e}"));
    keep("phyllome-vhost-user-playback", &samples);
    for line in log.lines().filter(|l| l.contains("virtio-snd")) {
        println!("    device snd: {line}");
    }
    let heard = analyse(&samples);
    println!(
        "Our device snd, the guest's {GUEST_TONE_HZ} Hz at the sink: {heard}; QEMU ran {:.1} s",
        run.seconds
    );
    show_guest(&run);
    let context = format!("{}\n--- device snd:\n{log}", context(&run, &server));
    check_guest(&run, &server, "PLAY");
    check_tone(
        &heard,
        GUEST_TONE_HZ,
        GUEST_SECONDS,
        &format!("the sink's recording\n{context}"),
    );
    assert!(
        log.contains("virtio-snd playback: guest 768000 bytes, backend 768000 bytes"),
        "the whole tone went through the card: {context}"
    );
    assert!(
        heard.seconds_heard >= GUEST_SECONDS - 0.2,
        "the end of the tone was cut: {heard}"
    );
}

/// The guest records `seconds` while the host plays 660 Hz into the microphone, through our
/// card allowed to hear it or not: what the guest recorded.
fn record_through_our_card(microphone: bool) -> Vec<i16> {
    let _one = ONE_QEMU_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let assets = sound_assets();
    let dir = tempfile::tempdir().unwrap();
    let server = SoundServer::start(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    let _tone = server
        .play_tone_into_microphone(MICROPHONE_HZ)
        .unwrap_or_else(|e| panic!("{e}"));
    let socket = dir.path().join("snd.sock");
    let log = dir.path().join("device-snd.log");
    let backend = our_backend(&server, &socket, microphone, &log);
    let mut qemu = sound_guest_qemu(
        &server,
        &assets,
        SoundDevice::VhostUser(&socket),
        GuestTask::Record,
        LIMIT,
    );
    let run = run_guest(&mut qemu, |_| {}).unwrap_or_else(|e| panic!("{e}"));
    let log = backend_exits_cleanly(backend, &log);
    show_guest(&run);
    check_guest(&run, &server, "RECORD");
    let context = format!("{}\n--- device snd:\n{log}", context(&run, &server));
    let samples = capture_from_console(&run.console).unwrap_or_else(|e| panic!("{e}\n{context}"));
    assert_eq!(
        samples.len(),
        frames_in(GUEST_SECONDS) * CHANNELS,
        "samples the guest recorded: {context}"
    );
    samples
}

#[test]
fn with_the_microphone_allowed_the_guest_records_the_hosts_tone_through_our_card() {
    let samples = record_through_our_card(true);
    keep("phyllome-vhost-user-capture", &samples);
    let heard = analyse(&samples);
    println!("Our device snd --microphone, the host's {MICROPHONE_HZ} Hz in the guest: {heard}");
    check_tone(
        &heard,
        MICROPHONE_HZ,
        GUEST_SECONDS,
        "the guest's recording",
    );
}

#[test]
fn without_leave_the_guest_records_silence_through_our_card() {
    let samples = record_through_our_card(false);
    let heard = analyse(&samples);
    println!(
        "Our device snd without --microphone, while the host plays {MICROPHONE_HZ} Hz: {heard}"
    );
    assert!(
        heard.frequency.is_none() && heard.seconds_heard == 0.0,
        "the guest heard the microphone without leave: {heard}"
    );
    assert!(samples.iter().all(|&s| s == 0), "silence is zeros");
}
