//! Where a stream's sound goes and comes from: the sound server (PipeWire, in
//! [`super::pipewire`]) or nowhere. The null backend keeps the device working without a
//! sound server, or with sound off: it takes playback and gives capture (silence) at the
//! stream's own rate, on a timer, so the guest's audio clock runs as on real hardware.

use super::ring::Ring;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Errors of the sound backends.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The sound server could not be reached.
    #[error("The sound server could not be reached ({0}); the VM's sound is silent.")]
    Unreachable(String),
    /// The sound server refused a stream.
    #[error("The sound server refused the VM's {what} stream ({reason}).")]
    Stream {
        /// playback or capture.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// A thread could not be started.
    #[error("A sound thread could not be started: {0}.")]
    Thread(#[from] std::io::Error),
}

/// Samples as the guest sends and takes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleFormat {
    /// Signed 16-bit little-endian.
    S16,
    /// Signed 32-bit little-endian.
    S32,
    /// 32-bit float little-endian.
    Float,
}

impl SampleFormat {
    /// Bytes per sample.
    pub fn bytes(self) -> usize {
        match self {
            Self::S16 => 2,
            Self::S32 | Self::Float => 4,
        }
    }
}

/// Which way a stream's sound flows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Guest to speakers.
    Playback,
    /// Microphone to guest.
    Capture,
}

impl Direction {
    /// For messages: "playback" or "capture".
    pub fn word(self) -> &'static str {
        match self {
            Self::Playback => "playback",
            Self::Capture => "capture",
        }
    }
}

/// What the guest set for a stream (already checked against what we offer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamParams {
    /// The guest's whole buffer, in bytes.
    pub buffer_bytes: u32,
    /// One period, in bytes.
    pub period_bytes: u32,
    /// Channels (1 or 2).
    pub channels: u8,
    /// Sample format.
    pub format: SampleFormat,
    /// Frames per second.
    pub rate: u32,
}

impl StreamParams {
    /// Bytes per frame (one sample of each channel).
    pub fn frame_bytes(&self) -> usize {
        self.format.bytes() * usize::from(self.channels)
    }

    /// Bytes of `d` at this rate, whole frames.
    pub fn bytes_in(&self, d: Duration) -> usize {
        let frames = u128::from(self.rate) * d.as_nanos() / 1_000_000_000;
        usize::try_from(frames).unwrap_or(usize::MAX / 8) * self.frame_bytes()
    }
}

/// A stream opened on a backend: started and stopped as the guest says, closed when
/// dropped.
pub trait BackendStream: Send {
    /// The guest started the stream: the backend's clock runs.
    fn start(&mut self);
    /// The guest stopped it.
    fn stop(&mut self);
}

/// A sound backend: opens streams that move bytes through a [`Ring`].
pub trait AudioBackend: Send {
    /// Opens a stream (the guest prepared it).
    fn open(
        &mut self,
        direction: Direction,
        params: StreamParams,
        ring: Arc<Ring>,
    ) -> Result<Box<dyn BackendStream>, BackendError>;
}

/// No sound server: playback goes nowhere, capture is silence, both at the stream's rate.
#[derive(Debug, Default)]
pub struct NullBackend;

impl AudioBackend for NullBackend {
    fn open(
        &mut self,
        direction: Direction,
        params: StreamParams,
        ring: Arc<Ring>,
    ) -> Result<Box<dyn BackendStream>, BackendError> {
        Ok(Box::new(ClockStream::new(direction, params, ring)))
    }
}

/// How often the null backend's clock moves bytes.
pub const TICK: Duration = Duration::from_millis(5);

/// A stream's clock without a sound server: the bytes due since it (re)started.
#[derive(Debug)]
pub struct Clock {
    began: Instant,
    moved: usize,
}

impl Clock {
    /// A clock starting now.
    pub fn new() -> Self {
        Self {
            began: Instant::now(),
            moved: 0,
        }
    }

    /// Moves what is due since the last call: silence into capture, playback taken and
    /// dropped.
    pub fn tick(&mut self, direction: Direction, params: &StreamParams, ring: &Ring) {
        let due = params.bytes_in(self.began.elapsed());
        let n = due.saturating_sub(self.moved);
        if n == 0 {
            return;
        }
        let mut buf = vec![0u8; n];
        match direction {
            Direction::Playback => ring.take_playback(&mut buf),
            Direction::Capture => ring.put_capture(&buf),
        }
        self.moved = due;
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

/// A thread calling a function every [`TICK`] until stopped (when dropped).
#[derive(Debug)]
pub struct Ticker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Ticker {
    /// Starts calling `each` on a thread named `name`.
    pub fn spawn(name: &str, mut each: impl FnMut() + Send + 'static) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(TICK);
                    each();
                }
            })?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A stream driven by a [`Clock`] while started.
#[derive(Debug)]
pub struct ClockStream {
    direction: Direction,
    params: StreamParams,
    ring: Arc<Ring>,
    ticker: Option<Ticker>,
}

impl ClockStream {
    /// A silent stream for `direction`.
    pub fn new(direction: Direction, params: StreamParams, ring: Arc<Ring>) -> Self {
        Self {
            direction,
            params,
            ring,
            ticker: None,
        }
    }
}

impl BackendStream for ClockStream {
    fn start(&mut self) {
        if self.ticker.is_some() {
            return;
        }
        let (direction, params, ring) = (self.direction, self.params, self.ring.clone());
        let mut clock = Clock::new();
        match Ticker::spawn("snd-clock", move || clock.tick(direction, &params, &ring)) {
            Ok(ticker) => self.ticker = Some(ticker),
            Err(e) => log::warn!("The sound clock thread could not be started: {e}."),
        }
    }

    fn stop(&mut self) {
        self.ticker = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vmm_sys_util::eventfd::EventFd;

    const PARAMS: StreamParams = StreamParams {
        buffer_bytes: 19200,
        period_bytes: 3840,
        channels: 2,
        format: SampleFormat::S16,
        rate: 48000,
    };

    #[test]
    fn bytes_follow_the_rate() {
        assert_eq!(PARAMS.frame_bytes(), 4);
        assert_eq!(PARAMS.bytes_in(Duration::from_millis(20)), 3840);
    }

    #[test]
    fn the_null_backend_gives_silence_at_the_streams_rate() {
        let wake = Arc::new(EventFd::new(libc::EFD_NONBLOCK).unwrap());
        let ring = Arc::new(Ring::new(1 << 20, wake.clone()));
        let mut s = NullBackend
            .open(Direction::Capture, PARAMS, ring.clone())
            .unwrap();
        s.start();
        std::thread::sleep(Duration::from_millis(200));
        s.stop();
        let got = ring.len();
        // 200 ms at 192000 B/s is 38400 bytes; the thread may start late, never early.
        assert!(got > 0 && got <= 38400 + 3840, "{got} bytes");
        let mut out = vec![1u8; got];
        assert_eq!(ring.take_capture(&mut out), got);
        assert!(out.iter().all(|&b| b == 0), "silence");
        assert!(wake.read().unwrap() > 0);
    }
}
