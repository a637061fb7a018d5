//! The PipeWire backend: each stream the guest prepares becomes a PipeWire stream named
//! after the VM ("Phyllome: Debian"), with a media role, linked by the session manager to
//! the desktop's default sink or source and following it when the user changes it.
//! PipeWire's objects live on one thread of their own (its main loop); the device asks it
//! through a PipeWire channel, and each stream's process callback moves bytes through the
//! stream's [`Ring`] without ever waiting for the guest.
//!
//! The microphone is the user's to allow: without leave no capture stream is open on the
//! sound server (the guest records silence at the stream's pace); leave given or taken back
//! while the guest records opens or closes one within a few milliseconds.

use super::backend::{
    AudioBackend, BackendError, BackendStream, Clock, Direction, SampleFormat, StreamParams, Ticker,
};
use super::ring::Ring;
use pipewire as pw;
use pw::spa;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

/// What the device asks of the PipeWire thread.
enum Command {
    Open {
        key: u64,
        direction: Direction,
        params: StreamParams,
        ring: Arc<Ring>,
        reply: mpsc::Sender<Result<(), String>>,
    },
    Active {
        key: u64,
        active: bool,
    },
    Close {
        key: u64,
    },
    Quit,
}

/// A connection to the desktop's PipeWire.
pub struct PipeWireBackend {
    server: Server,
    thread: Option<JoinHandle<()>>,
    microphone: Arc<AtomicBool>,
}

/// How streams are asked of the PipeWire thread (from the device, or from a microphone's
/// gate).
#[derive(Clone)]
struct Server {
    commands: pw::channel::Sender<Command>,
    next_key: Arc<AtomicU64>,
}

impl Server {
    /// Opens a stream on the sound server, inactive until started.
    fn open(
        &self,
        direction: Direction,
        params: StreamParams,
        ring: Arc<Ring>,
    ) -> Result<PipeWireStream, BackendError> {
        let key = self.next_key.fetch_add(1, Ordering::Relaxed);
        let (reply, answer) = mpsc::channel();
        let refused = |reason: String| BackendError::Stream {
            what: direction.word(),
            reason,
        };
        self.commands
            .send(Command::Open {
                key,
                direction,
                params,
                ring,
                reply,
            })
            .map_err(|_| refused("its thread has ended".into()))?;
        match answer.recv_timeout(OPEN_TIMEOUT) {
            Ok(Ok(())) => Ok(PipeWireStream {
                key,
                commands: self.commands.clone(),
            }),
            Ok(Err(reason)) => Err(refused(reason)),
            Err(_) => Err(refused("no answer within 5 seconds".into())),
        }
    }
}

impl std::fmt::Debug for PipeWireBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipeWireBackend").finish_non_exhaustive()
    }
}

/// How long the device waits for the sound server to open a stream.
const OPEN_TIMEOUT: Duration = Duration::from_secs(5);

impl PipeWireBackend {
    /// Connects to the PipeWire of this environment (`XDG_RUNTIME_DIR`, `PIPEWIRE_REMOTE`),
    /// naming streams after `vm`. `microphone` says whether capture may hear the host.
    pub fn connect(vm: &str, microphone: Arc<AtomicBool>) -> Result<Self, BackendError> {
        let (commands, receiver) = pw::channel::channel::<Command>();
        let (ready_tx, ready_rx) = mpsc::channel();
        let name = vm.to_owned();
        let mic = microphone.clone();
        let thread = std::thread::Builder::new()
            .name("snd-pipewire".into())
            .spawn(move || run(&name, &mic, receiver, &ready_tx))?;
        match ready_rx.recv_timeout(OPEN_TIMEOUT) {
            Ok(Ok(())) => Ok(Self {
                server: Server {
                    commands,
                    next_key: Arc::new(AtomicU64::new(1)),
                },
                thread: Some(thread),
                microphone,
            }),
            Ok(Err(reason)) => {
                let _ = thread.join();
                Err(BackendError::Unreachable(reason))
            }
            Err(_) => Err(BackendError::Unreachable(
                "it did not answer within 5 seconds".into(),
            )),
        }
    }
}

impl Drop for PipeWireBackend {
    fn drop(&mut self) {
        let _ = self.server.commands.send(Command::Quit);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl AudioBackend for PipeWireBackend {
    fn open(
        &mut self,
        direction: Direction,
        params: StreamParams,
        ring: Arc<Ring>,
    ) -> Result<Box<dyn BackendStream>, BackendError> {
        match direction {
            Direction::Playback => Ok(Box::new(self.server.open(direction, params, ring)?)),
            Direction::Capture => Ok(Box::new(GatedCapture {
                server: self.server.clone(),
                microphone: self.microphone.clone(),
                params,
                ring,
                gate: None,
            })),
        }
    }
}

/// Capture behind the user's leave: while the microphone is not allowed, a [`Clock`]
/// gives the guest silence and nothing is open on the sound server; once allowed, a
/// PipeWire capture stream feeds the ring; when leave is taken back, that stream closes
/// (its process callback already gives silence from the moment the flag changes). A
/// [`Ticker`] watches the flag while the guest records.
struct GatedCapture {
    server: Server,
    microphone: Arc<AtomicBool>,
    params: StreamParams,
    ring: Arc<Ring>,
    gate: Option<Ticker>,
}

impl BackendStream for GatedCapture {
    fn start(&mut self) {
        if self.gate.is_some() {
            return;
        }
        let (server, microphone, params, ring) = (
            self.server.clone(),
            self.microphone.clone(),
            self.params,
            self.ring.clone(),
        );
        let mut live: Option<PipeWireStream> = None;
        let mut refused = false;
        let mut clock = Clock::new();
        let each = move || {
            let allowed = microphone.load(Ordering::Relaxed);
            if allowed && live.is_none() && !refused {
                match server.open(Direction::Capture, params, ring.clone()) {
                    Ok(mut stream) => {
                        stream.start();
                        log::info!("The microphone is allowed: the guest hears it.");
                        live = Some(stream);
                    }
                    Err(e) => {
                        log::warn!("{e} The guest records silence.");
                        refused = true;
                    }
                }
            } else if !allowed && (live.is_some() || refused) {
                if live.take().is_some() {
                    log::info!("The microphone is no longer allowed: the guest records silence.");
                }
                refused = false;
                clock = Clock::new();
            }
            if live.is_none() {
                clock.tick(Direction::Capture, &params, &ring);
            }
        };
        match Ticker::spawn("snd-microphone", each) {
            Ok(ticker) => self.gate = Some(ticker),
            Err(e) => log::warn!("The microphone's thread could not be started: {e}."),
        }
    }

    fn stop(&mut self) {
        // The ticker's state, an open stream included, goes with its thread.
        self.gate = None;
    }
}

/// A stream on the PipeWire thread, closed when dropped.
struct PipeWireStream {
    key: u64,
    commands: pw::channel::Sender<Command>,
}

impl BackendStream for PipeWireStream {
    fn start(&mut self) {
        let _ = self.commands.send(Command::Active {
            key: self.key,
            active: true,
        });
    }
    fn stop(&mut self) {
        let _ = self.commands.send(Command::Active {
            key: self.key,
            active: false,
        });
    }
}

impl Drop for PipeWireStream {
    fn drop(&mut self) {
        let _ = self.commands.send(Command::Close { key: self.key });
    }
}

type Streams = Rc<RefCell<HashMap<u64, (pw::stream::StreamRc, pw::stream::StreamListener<()>)>>>;

/// The PipeWire thread: connects, says whether it could, then serves commands until Quit.
fn run(
    vm: &str,
    microphone: &Arc<AtomicBool>,
    commands: pw::channel::Receiver<Command>,
    ready: &mpsc::Sender<Result<(), String>>,
) {
    pw::init();
    let setup = || -> Result<_, pw::Error> {
        let mainloop = pw::main_loop::MainLoopRc::new(None)?;
        let context = pw::context::ContextRc::new(&mainloop, None)?;
        let core = context.connect_rc(None)?;
        Ok((mainloop, context, core))
    };
    let (mainloop, _context, core) = match setup() {
        Ok(v) => v,
        Err(e) => {
            let _ = ready.send(Err(e.to_string()));
            return;
        }
    };
    let _ = ready.send(Ok(()));
    let streams: Streams = Rc::new(RefCell::new(HashMap::new()));
    let vm = vm.to_owned();
    let mic = microphone.clone();
    let quit = mainloop.downgrade();
    let _attached = commands.attach(mainloop.loop_(), move |command| match command {
        Command::Open {
            key,
            direction,
            params,
            ring,
            reply,
        } => {
            let made = open_stream(&core, &vm, direction, params, ring, mic.clone());
            let _ = reply.send(match made {
                Ok(stream) => {
                    streams.borrow_mut().insert(key, stream);
                    Ok(())
                }
                Err(e) => Err(e.to_string()),
            });
        }
        Command::Active { key, active } => {
            if let Some((stream, _)) = streams.borrow().get(&key) {
                if let Err(e) = stream.set_active(active) {
                    log::warn!("The sound server did not start or stop a stream: {e}.");
                }
            }
        }
        Command::Close { key } => {
            if let Some((stream, listener)) = streams.borrow_mut().remove(&key) {
                let _ = stream.disconnect();
                drop(listener);
            }
        }
        Command::Quit => {
            streams.borrow_mut().clear();
            if let Some(mainloop) = quit.upgrade() {
                mainloop.quit();
            }
        }
    });
    mainloop.run();
}

fn spa_format(format: SampleFormat) -> spa::param::audio::AudioFormat {
    use spa::param::audio::AudioFormat;
    match format {
        SampleFormat::S16 => AudioFormat::S16LE,
        SampleFormat::S32 => AudioFormat::S32LE,
        SampleFormat::Float => AudioFormat::F32LE,
    }
}

/// The stream's format as the EnumFormat parameter PipeWire wants.
fn format_pod(params: StreamParams) -> Result<Vec<u8>, pw::Error> {
    let mut info = spa::param::audio::AudioInfoRaw::new();
    info.set_format(spa_format(params.format));
    info.set_rate(params.rate);
    info.set_channels(u32::from(params.channels));
    let mut position = [0; spa::param::audio::MAX_CHANNELS];
    if params.channels == 1 {
        position[0] = spa::sys::SPA_AUDIO_CHANNEL_MONO;
    } else {
        position[0] = spa::sys::SPA_AUDIO_CHANNEL_FL;
        position[1] = spa::sys::SPA_AUDIO_CHANNEL_FR;
    }
    info.set_position(position);
    let pod = spa::pod::Value::Object(spa::pod::Object {
        type_: spa::sys::SPA_TYPE_OBJECT_Format,
        id: spa::sys::SPA_PARAM_EnumFormat,
        properties: info.into(),
    });
    spa::pod::serialize::PodSerializer::serialize(std::io::Cursor::new(Vec::new()), &pod)
        .map(|(cursor, _)| cursor.into_inner())
        .map_err(|_| pw::Error::CreationFailed)
}

fn open_stream(
    core: &pw::core::CoreRc,
    vm: &str,
    direction: Direction,
    params: StreamParams,
    ring: Arc<Ring>,
    microphone: Arc<AtomicBool>,
) -> Result<(pw::stream::StreamRc, pw::stream::StreamListener<()>), pw::Error> {
    let title = format!("Phyllome: {vm}");
    let period_frames = params.period_bytes as usize / params.frame_bytes().max(1);
    let mut props = pw::properties::PropertiesBox::new();
    props.insert(*pw::keys::MEDIA_TYPE, "Audio");
    props.insert(*pw::keys::APP_NAME, "Phyllome");
    props.insert(*pw::keys::APP_ICON_NAME, "org.phyllome.Phyllome");
    props.insert(*pw::keys::NODE_DESCRIPTION, title.as_str());
    props.insert(*pw::keys::MEDIA_NAME, title.as_str());
    props.insert(
        *pw::keys::NODE_LATENCY,
        format!("{period_frames}/{}", params.rate),
    );
    match direction {
        Direction::Playback => {
            props.insert(*pw::keys::MEDIA_CATEGORY, "Playback");
            // The guest is a whole desktop: games, video and calls alike; "Game" asks for
            // low latency without the ducking rules of calls.
            props.insert(*pw::keys::MEDIA_ROLE, "Game");
        }
        Direction::Capture => {
            props.insert(*pw::keys::MEDIA_CATEGORY, "Capture");
            props.insert(*pw::keys::MEDIA_ROLE, "Communication");
        }
    }
    let stream = pw::stream::StreamRc::new(core.clone(), &title, props)?;
    let frame = params.frame_bytes().max(1);
    let listener = match direction {
        Direction::Playback => stream
            .add_local_listener_with_user_data(())
            .process(move |stream, ()| play(stream, &ring, frame))
            .register()?,
        Direction::Capture => stream
            .add_local_listener_with_user_data(())
            .process(move |stream, ()| record(stream, &ring, &microphone))
            .register()?,
    };
    let pod = format_pod(params)?;
    let pod = spa::pod::Pod::from_bytes(&pod).ok_or(pw::Error::CreationFailed)?;
    let spa_direction = match direction {
        Direction::Playback => spa::utils::Direction::Output,
        Direction::Capture => spa::utils::Direction::Input,
    };
    stream.connect(
        spa_direction,
        None,
        pw::stream::StreamFlags::AUTOCONNECT
            | pw::stream::StreamFlags::MAP_BUFFERS
            | pw::stream::StreamFlags::RT_PROCESS
            | pw::stream::StreamFlags::INACTIVE,
        &mut [pod],
    )?;
    Ok((stream, listener))
}

/// The playback process callback: what the guest gave, silence after it.
fn play(stream: &pw::stream::Stream, ring: &Ring, frame: usize) {
    let Some(mut buffer) = stream.dequeue_buffer() else {
        return;
    };
    let requested = usize::try_from(buffer.requested()).unwrap_or(0);
    let datas = buffer.datas_mut();
    let Some(data) = datas.first_mut() else {
        return;
    };
    let written = match data.data() {
        Some(slice) => {
            let room = slice.len() / frame * frame;
            let want = if requested > 0 {
                (requested * frame).min(room)
            } else {
                room
            };
            ring.take_playback(&mut slice[..want]);
            want
        }
        None => 0,
    };
    let chunk = data.chunk_mut();
    *chunk.offset_mut() = 0;
    *chunk.stride_mut() = i32::try_from(frame).unwrap_or(4);
    *chunk.size_mut() = u32::try_from(written).unwrap_or(0);
}

/// The capture process callback: what the microphone heard, or silence without leave.
fn record(stream: &pw::stream::Stream, ring: &Ring, microphone: &AtomicBool) {
    let Some(mut buffer) = stream.dequeue_buffer() else {
        return;
    };
    let datas = buffer.datas_mut();
    let Some(data) = datas.first_mut() else {
        return;
    };
    let (offset, size) = {
        let chunk = data.chunk();
        (chunk.offset() as usize, chunk.size() as usize)
    };
    let Some(slice) = data.data() else {
        return;
    };
    let Some(heard) = offset
        .checked_add(size)
        .and_then(|end| slice.get(offset..end))
    else {
        return;
    };
    if microphone.load(Ordering::Relaxed) {
        ring.put_capture(heard);
    } else {
        ring.put_capture(&vec![0u8; heard.len()]);
    }
}
