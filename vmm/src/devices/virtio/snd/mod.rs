//! virtio-snd: a sound card with one playback and one capture stream (stereo or mono;
//! S16, S32 or float; 44.1 or 48 kHz), a line-out and a microphone jack, and a channel map
//! for each stream. The guest's control requests drive each stream through the
//! specification's states (SET_PARAMS, PREPARE, START, STOP, RELEASE); its I/O messages
//! carry the sound, through a [`ring::Ring`], to a backend: PipeWire, or the null backend
//! that plays nothing and records silence at the stream's own pace.
//!
//! Pacing: a playback message completes when its bytes are in the ring, and the worker
//! takes the next one only while the ring holds less than a period (at least 20 ms), so
//! the guest's audio clock follows the backend's. What the ring holds when the guest stops
//! and releases the stream still plays (the guest was told it had), as a sound card's FIFO. A capture message completes when a period of capture
//! waits. A stream that is stopped keeps its messages until it is released, which
//! completes them all (the specification asks for that, and Linux waits for it).
//!
//! The device offers one stream in each direction, so a queue's readiness is its stream's.
//! Its one event is a capture overrun (the guest fell behind and the oldest capture was
//! dropped), for drivers that ask; its jacks do not change, and a playback underrun plays
//! silence instead of stopping the guest's stream.

pub mod backend;
#[cfg(feature = "pipewire")]
pub mod pipewire;
pub mod protocol;
pub mod ring;

use super::{
    Chain, DeviceCore, VIRTIO_F_VERSION_1, VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC,
};
use crate::memory::GuestMemory;
use backend::{AudioBackend, BackendStream, ClockStream, Direction, SampleFormat, StreamParams};
use protocol::*;
use ring::Ring;
use std::io::{Read, Write};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use vm_memory::ByteValued;
use vmm_sys_util::eventfd::EventFd;

const QUEUE_SIZE: u16 = 256;
/// Stream 0 plays, stream 1 records.
pub const OUTPUT_STREAM: u32 = 0;
/// The capture stream's ID.
pub const INPUT_STREAM: u32 = 1;
/// The largest buffer a guest may ask for (Linux's driver stays well below).
pub const MAX_BUFFER_BYTES: u32 = 8 << 20;
/// Control requests are at most this long (the longest, SET_PARAMS, is 24 bytes).
const MAX_REQUEST: usize = 64;
/// Playback kept in the ring at least, when periods are short.
const MIN_PLAYBACK_AHEAD: Duration = Duration::from_millis(20);
/// How much longer than its length the end of a playback may take to play out.
const DRAIN_SLACK: Duration = Duration::from_millis(200);

/// Formats offered (bit numbers of `PcmInfo::formats`).
const FORMATS: [(u8, SampleFormat); 3] = [
    (PCM_FMT_S16, SampleFormat::S16),
    (PCM_FMT_S32, SampleFormat::S32),
    (PCM_FMT_FLOAT, SampleFormat::Float),
];
/// Rates offered.
const RATES: [(u8, u32); 2] = [(PCM_RATE_44100, 44100), (PCM_RATE_48000, 48000)];
const CHANNELS_MIN: u8 = 1;
const CHANNELS_MAX: u8 = 2;

/// A stream's place in the specification's state machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamState {
    /// Nothing set since the device was reset.
    Idle,
    /// SET_PARAMS accepted.
    ParamsSet,
    /// PREPARE accepted: the backend stream is open, messages are taken.
    Prepared,
    /// Playing or recording.
    Started,
    /// Stopped: messages wait until START or RELEASE.
    Stopped,
    /// Released: the backend stream is closed; messages complete at once.
    Released,
}

#[derive(Debug)]
struct Stream {
    direction: Direction,
    state: StreamState,
    params: Option<StreamParams>,
    ring: Option<Arc<Ring>>,
    port: Option<Box<dyn BackendStream>>,
    /// The guest started the stream since it was prepared (its backend has played).
    started: bool,
    /// The driver asked to be told of capture overruns (VIRTIO_SND_PCM_F_EVT_XRUNS).
    xrun_events: bool,
    /// How many of the ring's overruns the driver has been told of.
    xruns_told: u64,
}

impl std::fmt::Debug for dyn BackendStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BackendStream")
    }
}

impl Stream {
    fn new(direction: Direction) -> Self {
        Self {
            direction,
            state: StreamState::Idle,
            params: None,
            ring: None,
            port: None,
            started: false,
            xrun_events: false,
            xruns_told: 0,
        }
    }

    /// Whether the worker should take this stream's next message now.
    fn accepts(&self) -> bool {
        match (self.state, self.direction, &self.ring) {
            (StreamState::Prepared | StreamState::Started, Direction::Playback, Some(r)) => {
                r.has_room()
            }
            (StreamState::Started, Direction::Capture, Some(r)) => {
                let period = self.params.map_or(1, |p| p.period_bytes as usize);
                r.len() >= period
            }
            (StreamState::Prepared | StreamState::Stopped, _, _) => false,
            (StreamState::Started, _, None) => false,
            // Not set up, or released: the message completes at once.
            _ => true,
        }
    }

    /// Whether capture overran since the driver was last told (and it asked to be told).
    fn xrun_to_tell(&self) -> Option<u64> {
        let overruns = self.ring.as_ref()?.stats().overruns;
        (self.xrun_events && overruns > self.xruns_told).then_some(overruns)
    }

    /// Closes the backend stream. Playback the guest was told is played (its messages
    /// completed) but that still waits in the ring is played first, on a thread of its
    /// own, as a sound card's FIFO would: the stream closes when the ring is empty, or
    /// when it should have been. Returns that thread.
    fn close(&mut self) -> Option<JoinHandle<()>> {
        let ring = self.ring.take();
        self.xruns_told = 0;
        let started = std::mem::take(&mut self.started);
        let port = self.port.take()?;
        let direction = self.direction;
        let finish = move |mut port: Box<dyn BackendStream>, ring: Option<Arc<Ring>>| {
            port.stop();
            drop(port);
            if let Some(ring) = ring {
                log_stats(direction, &ring);
            }
        };
        match (ring, self.params) {
            (Some(ring), Some(params))
                if direction == Direction::Playback && started && !ring.is_empty() =>
            {
                let bytes_per_second = params.bytes_in(Duration::from_secs(1)).max(1);
                let left = Duration::from_secs_f64(ring.len() as f64 / bytes_per_second as f64);
                let deadline = std::time::Instant::now() + left + DRAIN_SLACK;
                let spawned =
                    std::thread::Builder::new()
                        .name("snd-drain".into())
                        .spawn(move || {
                            while !ring.is_empty() && std::time::Instant::now() < deadline {
                                std::thread::sleep(Duration::from_millis(5));
                            }
                            finish(port, Some(ring));
                        });
                match spawned {
                    Ok(thread) => Some(thread),
                    Err(e) => {
                        log::warn!(
                            "The end of the guest's playback is cut: no thread to play it ({e})."
                        );
                        None
                    }
                }
            }
            (ring, _) => {
                finish(port, ring);
                None
            }
        }
    }
}

/// Logs what happened on a stream.
fn log_stats(direction: Direction, ring: &Ring) {
    let s = ring.stats();
    if s.guest_bytes > 0 || s.backend_bytes > 0 {
        log::info!(
            "virtio-snd {}: guest {} bytes, backend {} bytes, {} underruns ({} bytes of silence), {} bytes of capture dropped",
            direction.word(),
            s.guest_bytes,
            s.backend_bytes,
            s.underruns,
            s.silence_bytes,
            s.overrun_bytes
        );
    }
}

/// The sound card.
pub struct Snd {
    streams: [Stream; 2],
    backend: Box<dyn AudioBackend>,
    wake: Arc<EventFd>,
    /// Streams playing the end of their playback after their release (see
    /// [`Stream::close`]); the card waits for them when it goes.
    draining: Vec<JoinHandle<()>>,
}

impl Drop for Snd {
    fn drop(&mut self) {
        for stream in &mut self.streams {
            self.draining.extend(stream.close());
        }
        for thread in self.draining.drain(..) {
            let _ = thread.join();
        }
    }
}

impl std::fmt::Debug for Snd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snd")
            .field("streams", &self.streams)
            .finish_non_exhaustive()
    }
}

/// The backend for `kind`: PipeWire where asked and reachable (streams named after `vm`,
/// capture hearing the host while `microphone` says so), else the null backend, with a
/// warning saying why the VM is silent.
pub fn backend_for(
    kind: crate::config::SoundBackend,
    vm: &str,
    microphone: Arc<std::sync::atomic::AtomicBool>,
) -> Box<dyn AudioBackend> {
    match kind {
        crate::config::SoundBackend::None => Box::new(backend::NullBackend),
        #[cfg(feature = "pipewire")]
        crate::config::SoundBackend::Pipewire => {
            match pipewire::PipeWireBackend::connect(vm, microphone) {
                Ok(b) => Box::new(b),
                Err(e) => {
                    log::warn!("{e}");
                    Box::new(backend::NullBackend)
                }
            }
        }
        #[cfg(not(feature = "pipewire"))]
        crate::config::SoundBackend::Pipewire => {
            let _ = (vm, microphone);
            log::warn!("This build has no PipeWire support; the VM's sound is silent.");
            Box::new(backend::NullBackend)
        }
    }
}

impl Snd {
    /// A sound card whose streams go to `backend` (fails only if its wake-up event
    /// cannot be made).
    pub fn new(backend: Box<dyn AudioBackend>) -> std::io::Result<Self> {
        Ok(Self {
            streams: [
                Stream::new(Direction::Playback),
                Stream::new(Direction::Capture),
            ],
            backend,
            wake: Arc::new(EventFd::new(libc::EFD_NONBLOCK)?),
            draining: Vec::new(),
        })
    }

    /// A stream's state (for tests and diagnostics).
    pub fn stream_state(&self, id: u32) -> Option<StreamState> {
        self.streams.get(id as usize).map(|s| s.state)
    }

    fn stream_mut(&mut self, id: u32) -> Option<&mut Stream> {
        self.streams.get_mut(id as usize)
    }

    /// Checks SET_PARAMS against what PCM_INFO offered.
    fn params(req: &PcmSetParams, offered_features: u32) -> Option<StreamParams> {
        let format = FORMATS
            .iter()
            .find(|(bit, _)| *bit == req.format)
            .map(|(_, f)| *f)?;
        let rate = RATES
            .iter()
            .find(|(bit, _)| *bit == req.rate)
            .map(|(_, r)| *r)?;
        if !(CHANNELS_MIN..=CHANNELS_MAX).contains(&req.channels)
            || req.features & !offered_features != 0
        {
            return None;
        }
        let p = StreamParams {
            buffer_bytes: req.buffer_bytes,
            period_bytes: req.period_bytes,
            channels: req.channels,
            format,
            rate,
        };
        let frame = u32::try_from(p.frame_bytes()).ok()?;
        let sound = p.period_bytes > 0
            && p.period_bytes <= p.buffer_bytes
            && p.buffer_bytes <= MAX_BUFFER_BYTES
            && p.period_bytes % frame == 0
            && p.buffer_bytes % frame == 0;
        sound.then_some(p)
    }

    /// One PCM control request; returns the status.
    fn pcm_control(&mut self, code: u32, request: &[u8]) -> u32 {
        let Some(hdr) = read_struct::<PcmHdr>(request) else {
            return S_BAD_MSG;
        };
        let ring_wake = self.wake.clone();
        let Some(stream) = self.streams.get_mut(hdr.stream_id as usize) else {
            return S_BAD_MSG;
        };
        use StreamState::*;
        let mut drain = None;
        let status = match (code, stream.state) {
            (R_PCM_SET_PARAMS, Idle | ParamsSet | Prepared | Released) => {
                let offered = stream_features(stream.direction);
                let Some((params, features)) = read_struct::<PcmSetParams>(request)
                    .and_then(|r| Some((Self::params(&r, offered)?, r.features)))
                else {
                    return S_BAD_MSG;
                };
                drain = stream.close();
                stream.params = Some(params);
                stream.xrun_events = features & PCM_F_EVT_XRUNS != 0;
                stream.state = ParamsSet;
                S_OK
            }
            (R_PCM_PREPARE, ParamsSet | Prepared | Released) => {
                let Some(params) = stream.params else {
                    return S_BAD_MSG;
                };
                drain = stream.close();
                let limit = match stream.direction {
                    Direction::Playback => (params.period_bytes as usize)
                        .max(params.bytes_in(MIN_PLAYBACK_AHEAD))
                        .min(params.buffer_bytes as usize),
                    Direction::Capture => params.buffer_bytes as usize,
                };
                let ring = Arc::new(Ring::new(limit, ring_wake));
                let port = match self.backend.open(stream.direction, params, ring.clone()) {
                    Ok(port) => port,
                    Err(e) => {
                        log::warn!("{e} The guest's {} is silent.", stream.direction.word());
                        Box::new(ClockStream::new(stream.direction, params, ring.clone()))
                    }
                };
                stream.ring = Some(ring);
                stream.port = Some(port);
                stream.state = Prepared;
                S_OK
            }
            (R_PCM_START, Prepared | Stopped) => {
                stream.started = true;
                if let Some(ring) = &stream.ring {
                    ring.set_running(true);
                }
                if let Some(port) = &mut stream.port {
                    port.start();
                }
                stream.state = Started;
                S_OK
            }
            (R_PCM_STOP, Started) => {
                // Playback goes on to the end of what the guest was told is played (the
                // backend then plays silence, not counted as underruns); capture stops.
                if let (Some(port), Direction::Capture) = (&mut stream.port, stream.direction) {
                    port.stop();
                }
                if let Some(ring) = &stream.ring {
                    ring.set_running(false);
                }
                stream.state = Stopped;
                S_OK
            }
            (R_PCM_RELEASE, Prepared | Stopped) => {
                drain = stream.close();
                stream.state = Released;
                S_OK
            }
            (R_PCM_SET_PARAMS | R_PCM_PREPARE | R_PCM_START | R_PCM_STOP | R_PCM_RELEASE, _) => {
                S_BAD_MSG
            }
            _ => S_NOT_SUPP,
        };
        self.draining.retain(|t| !t.is_finished());
        self.draining.extend(drain);
        // The I/O queues' readiness may have changed (a start, or a release to flush).
        let _ = self.wake.write(1);
        status
    }

    /// An information query: writes `count` items of `size` bytes after the status.
    fn query<T: ByteValued>(request: &[u8], items: &[T], out: &mut Vec<u8>, room: usize) -> u32 {
        let Some(q) = read_struct::<QueryInfo>(request) else {
            return S_BAD_MSG;
        };
        let (start, count, size) = (q.start_id as usize, q.count as usize, q.size as usize);
        let Some(end) = start.checked_add(count) else {
            return S_BAD_MSG;
        };
        let fits = count
            .checked_mul(size)
            .and_then(|n| n.checked_add(4))
            .is_some_and(|n| n <= room);
        if end > items.len() || size < std::mem::size_of::<T>() || !fits {
            return S_BAD_MSG;
        }
        for item in &items[start..end] {
            let at = out.len();
            out.extend_from_slice(item.as_slice());
            out.resize(at + size, 0);
        }
        S_OK
    }

    fn jacks() -> [JackInfo; 2] {
        let jack = |defconf| JackInfo {
            hda_fn_nid: 0,
            features: 0,
            hda_reg_defconf: defconf,
            hda_reg_caps: 0,
            connected: 1,
            padding: [0; 7],
        };
        [jack(HDA_DEFCONF_LINE_OUT), jack(HDA_DEFCONF_MIC_IN)]
    }

    fn pcm_infos() -> [PcmInfo; 2] {
        let formats = FORMATS.iter().fold(0u64, |m, (bit, _)| m | 1 << bit);
        let rates = RATES.iter().fold(0u64, |m, (bit, _)| m | 1 << bit);
        let info = |direction| PcmInfo {
            hda_fn_nid: 0,
            features: stream_features(if direction == D_OUTPUT {
                Direction::Playback
            } else {
                Direction::Capture
            }),
            formats,
            rates,
            direction,
            channels_min: CHANNELS_MIN,
            channels_max: CHANNELS_MAX,
            padding: [0; 5],
        };
        [info(D_OUTPUT), info(D_INPUT)]
    }

    fn chmaps() -> [ChmapInfo; 2] {
        let mut positions = [0u8; CHMAP_MAX_SIZE];
        positions[0] = CHMAP_FL;
        positions[1] = CHMAP_FR;
        let map = |direction| ChmapInfo {
            hda_fn_nid: 0,
            direction,
            channels: 2,
            positions,
        };
        [map(D_OUTPUT), map(D_INPUT)]
    }

    /// A control-queue request: the reply (status first) to write back.
    fn control(&mut self, request: &[u8], room: usize) -> Vec<u8> {
        let mut out = vec![0u8; 4];
        let status = match read_struct::<Hdr>(request).map(|h| h.code) {
            Some(R_JACK_INFO) => Self::query(request, &Self::jacks(), &mut out, room),
            Some(R_PCM_INFO) => Self::query(request, &Self::pcm_infos(), &mut out, room),
            Some(R_CHMAP_INFO) => Self::query(request, &Self::chmaps(), &mut out, room),
            Some(code @ R_PCM_SET_PARAMS..=R_PCM_STOP) => self.pcm_control(code, request),
            Some(R_JACK_REMAP) => S_NOT_SUPP,
            Some(_) => S_NOT_SUPP,
            None => S_BAD_MSG,
        };
        if status != S_OK {
            out.truncate(4);
        }
        out[..4].copy_from_slice(&status.to_le_bytes());
        out
    }

    /// A playback message: the status to report, with its latency.
    fn playback(&mut self, stream_id: u32, data: &mut dyn Read, len: usize) -> PcmStatus {
        let fail = PcmStatus {
            status: S_BAD_MSG,
            latency_bytes: 0,
        };
        let Some(stream) = self.stream_mut(stream_id) else {
            return fail;
        };
        if stream.direction != Direction::Playback {
            return fail;
        }
        match (stream.state, &stream.ring, stream.params) {
            (StreamState::Prepared | StreamState::Started, Some(ring), Some(p)) => {
                if len > p.buffer_bytes as usize {
                    return fail;
                }
                let mut buf = vec![0u8; len];
                if data.read_exact(&mut buf).is_err() {
                    return PcmStatus {
                        status: S_IO_ERR,
                        latency_bytes: 0,
                    };
                }
                let waiting = ring.put_playback(&buf);
                PcmStatus {
                    status: S_OK,
                    latency_bytes: u32::try_from(waiting).unwrap_or(u32::MAX),
                }
            }
            // Released (or stopped and then released): the message is given back.
            (StreamState::Released | StreamState::Stopped, _, _) => PcmStatus {
                status: S_OK,
                latency_bytes: 0,
            },
            _ => fail,
        }
    }

    /// A capture message: bytes into `data` (at most its room), and the status.
    fn capture(&mut self, stream_id: u32, room: usize) -> (Vec<u8>, PcmStatus) {
        let fail = PcmStatus {
            status: S_BAD_MSG,
            latency_bytes: 0,
        };
        let Some(stream) = self.stream_mut(stream_id) else {
            return (Vec::new(), fail);
        };
        if stream.direction != Direction::Capture {
            return (Vec::new(), fail);
        }
        match (stream.state, &stream.ring, stream.params) {
            (StreamState::Started, Some(ring), Some(p)) => {
                if room > p.buffer_bytes as usize {
                    return (Vec::new(), fail);
                }
                let mut buf = vec![0u8; room];
                let n = ring.take_capture(&mut buf);
                buf.truncate(n);
                let status = PcmStatus {
                    status: S_OK,
                    latency_bytes: u32::try_from(ring.len()).unwrap_or(u32::MAX),
                };
                (buf, status)
            }
            (StreamState::Released | StreamState::Stopped, _, _) => (
                Vec::new(),
                PcmStatus {
                    status: S_OK,
                    latency_bytes: 0,
                },
            ),
            _ => (Vec::new(), fail),
        }
    }

    fn process_control(&mut self, mem: &GuestMemory, chain: Chain<'_>) -> u32 {
        let Ok(mut reader) = chain.clone().reader(mem) else {
            return 0;
        };
        let Ok(mut writer) = chain.writer(mem) else {
            return 0;
        };
        let room = writer.available_bytes();
        let reply = if reader.available_bytes() > MAX_REQUEST {
            S_BAD_MSG.to_le_bytes().to_vec()
        } else {
            let mut request = vec![0u8; reader.available_bytes()];
            if reader.read_exact(&mut request).is_err() {
                return 0;
            }
            self.control(&request, room)
        };
        if room < reply.len() || writer.write_all(&reply).is_err() {
            return 0;
        }
        u32::try_from(reply.len()).unwrap_or(0)
    }

    fn process_tx(&mut self, mem: &GuestMemory, chain: Chain<'_>) -> u32 {
        let Ok(mut reader) = chain.clone().reader(mem) else {
            return 0;
        };
        let Ok(mut writer) = chain.writer(mem) else {
            return 0;
        };
        let room = writer.available_bytes();
        let Some(mut status_at) = room.checked_sub(8).and_then(|at| writer.split_at(at).ok())
        else {
            // No room for a status: nothing can be said to the driver.
            return 0;
        };
        let status = match reader.read_obj::<PcmXfer>() {
            Ok(xfer) => {
                let len = reader.available_bytes();
                self.playback(xfer.stream_id, &mut reader, len)
            }
            Err(_) => PcmStatus {
                status: S_BAD_MSG,
                latency_bytes: 0,
            },
        };
        match status_at.write_obj(status) {
            Ok(()) => 8,
            Err(_) => 0,
        }
    }

    /// An event buffer: an overrun to tell, if any.
    fn process_event(&mut self, mem: &GuestMemory, chain: Chain<'_>) -> u32 {
        let Ok(mut writer) = chain.writer(mem) else {
            return 0;
        };
        if writer.available_bytes() < std::mem::size_of::<Event>() {
            return 0;
        }
        let Some((id, stream, overruns)) = (0u32..)
            .zip(self.streams.iter_mut())
            .find_map(|(id, s)| s.xrun_to_tell().map(|n| (id, s, n)))
        else {
            return 0;
        };
        let event = Event {
            hdr: Hdr { code: EVT_PCM_XRUN },
            data: id,
        };
        if writer.write_obj(event).is_err() {
            return 0;
        }
        stream.xruns_told = overruns;
        8
    }

    fn process_rx(&mut self, mem: &GuestMemory, chain: Chain<'_>) -> u32 {
        let Ok(mut reader) = chain.clone().reader(mem) else {
            return 0;
        };
        let Ok(mut data) = chain.writer(mem) else {
            return 0;
        };
        let Some(room) = data.available_bytes().checked_sub(8) else {
            return 0;
        };
        let Ok(mut status_at) = data.split_at(room) else {
            return 0;
        };
        let (bytes, status) = match reader.read_obj::<PcmXfer>() {
            Ok(xfer) => self.capture(xfer.stream_id, room),
            Err(_) => (
                Vec::new(),
                PcmStatus {
                    status: S_BAD_MSG,
                    latency_bytes: 0,
                },
            ),
        };
        if data.write_all(&bytes).is_err() || status_at.write_obj(status).is_err() {
            return 0;
        }
        u32::try_from(bytes.len() + 8).unwrap_or(0)
    }
}

/// The PCM features a stream offers: capture tells of its overruns (the guest's reader
/// fell behind, and the oldest capture was dropped), so that the guest's ALSA reports them
/// as a sound card's would. Playback offers none: the guest sees its own underruns.
fn stream_features(direction: Direction) -> u32 {
    match direction {
        Direction::Playback => 0,
        Direction::Capture => PCM_F_EVT_XRUNS,
    }
}

/// A structure from the front of `bytes`, if they hold one.
fn read_struct<T: ByteValued>(bytes: &[u8]) -> Option<T> {
    T::from_slice(bytes.get(..std::mem::size_of::<T>())?).copied()
}

impl DeviceCore for Snd {
    fn device_type(&self) -> u32 {
        DEVICE_ID
    }
    fn num_queues(&self) -> usize {
        4
    }
    fn max_queue_size(&self) -> u16 {
        QUEUE_SIZE
    }
    fn features(&self) -> u64 {
        VIRTIO_F_VERSION_1 | VIRTIO_RING_F_EVENT_IDX | VIRTIO_RING_F_INDIRECT_DESC
    }
    fn config(&self) -> Vec<u8> {
        Config {
            jacks: 2,
            streams: 2,
            chmaps: 2,
        }
        .as_slice()
        .to_vec()
    }
    fn process(&mut self, queue: usize, mem: &GuestMemory, chain: Chain<'_>) -> u32 {
        match queue {
            CONTROL_QUEUE => self.process_control(mem, chain),
            TX_QUEUE => self.process_tx(mem, chain),
            RX_QUEUE => self.process_rx(mem, chain),
            EVENT_QUEUE => self.process_event(mem, chain),
            _ => 0,
        }
    }
    fn ready(&self, queue: usize) -> bool {
        match queue {
            CONTROL_QUEUE => true,
            TX_QUEUE => self.streams[OUTPUT_STREAM as usize].accepts(),
            RX_QUEUE => self.streams[INPUT_STREAM as usize].accepts(),
            EVENT_QUEUE => self.streams.iter().any(|s| s.xrun_to_tell().is_some()),
            _ => false,
        }
    }
    fn input_event(&self) -> Option<&EventFd> {
        Some(&self.wake)
    }
    fn reset(&mut self) {
        for stream in &mut self.streams {
            self.draining.extend(stream.close());
            stream.params = None;
            stream.state = StreamState::Idle;
        }
    }
}

#[cfg(test)]
mod tests;
