//! passt as a VM's network backend: a child process per VM, joined to it by a connected
//! socket pair (`passt --fd`), so no socket file is left anywhere and passt ends when the
//! VM lets go of its end. Frames cross the pair in QEMU's stream framing: a 4-byte
//! big-endian length, then the Ethernet frame.
//!
//! The guest's frames are written by the device's transmit worker ([`PasstLink`], a
//! [`FrameBackend`]); a reader thread takes passt's frames and pushes them to the card
//! ([`NetHost`]), waiting a little for room when the guest is slow so that TCP is slowed
//! rather than made to retransmit, and dropping (counted) when the guest does not read at
//! all. When passt ends, by itself or because its stream broke, the card's link goes down,
//! the VM runs on, and the reason (passt's last words) is handed to whoever started it.

use crate::devices::virtio::net::{FrameBackend, NetHost, MAX_FRAME};
use crate::network::{Forward, Protocol};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// The program run when none is named.
pub const PROGRAM: &str = "passt";
/// The least a frame from passt can be: an Ethernet header.
const MIN_FRAME: usize = 14;
/// How long the reader waits for the guest to make room before dropping a frame.
const ROOM_WAIT: Duration = Duration::from_millis(200);
/// How long a transmitted frame waits for passt to take it before it is dropped.
const SEND_WAIT: Duration = Duration::from_secs(1);
/// The most of passt's standard error kept, in lines, for the reason it ended.
const KEPT_LINES: usize = 8;
/// The socket buffer asked for in each direction (the kernel caps it at
/// `net.core.wmem_max`/`rmem_max`).
const SOCKET_BUFFER: libc::c_int = 4 << 20;

/// Why passt could not be started.
#[derive(Debug, thiserror::Error)]
pub enum PasstError {
    /// The program is not on this system.
    #[error("passt is not installed, so the VM has no network. Install the passt package (on Debian and Ubuntu: apt install passt), or turn the VM's network off.")]
    NotInstalled,
    /// Starting it failed for another reason.
    #[error("Cannot start passt for the VM's network: {0}.")]
    Spawn(#[source] io::Error),
    /// The socket pair could not be made.
    #[error("Cannot make the socket pair that joins passt to the VM: {0}.")]
    SocketPair(#[source] io::Error),
}

/// How to run passt.
#[derive(Debug, Clone, Default)]
pub struct PasstOptions {
    /// Host ports forwarded into the guest.
    pub forwards: Vec<Forward>,
    /// The program, when not [`PROGRAM`] on the `PATH` (tests name a stand-in).
    pub program: Option<PathBuf>,
}

/// Called once if passt ends while the VM still uses it, with a sentence saying why.
pub type OnDown = Box<dyn FnOnce(String) + Send>;

/// A running passt; dropping it ends it (and its threads).
#[derive(Debug)]
pub struct Passt {
    child: Arc<Mutex<Child>>,
    /// The VM's end of the pair, to shut down on drop.
    stream: UnixStream,
    stopping: Arc<AtomicBool>,
    reader: Option<JoinHandle<()>>,
}

impl Passt {
    /// Starts passt for a card whose host side is `host`; returns it and the card's
    /// backend (the guest's frames go there).
    pub fn start(
        options: &PasstOptions,
        host: NetHost,
        on_down: OnDown,
    ) -> Result<(Self, PasstLink), PasstError> {
        let (ours, theirs) = UnixStream::pair().map_err(PasstError::SocketPair)?;
        grow_buffers(&ours);
        grow_buffers(&theirs);
        let theirs = OwnedFd::from(theirs);
        let fd = theirs.as_raw_fd();
        let program = options
            .program
            .clone()
            .unwrap_or_else(|| PathBuf::from(PROGRAM));
        let mut command = Command::new(&program);
        // Foreground (our child), errors on standard error, quiet otherwise, our socket.
        command.args(["-f", "-e", "-q", "--fd", &fd.to_string()]);
        for f in &options.forwards {
            let flag = match f.protocol {
                Protocol::Tcp => "-t",
                Protocol::Udp => "-u",
            };
            command.arg(flag).arg(format!("{}:{}", f.host, f.guest));
        }
        command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // SAFETY: the closure runs in the forked child before exec and calls only
        // async-signal-safe functions (fcntl, prctl) on the descriptor `theirs`, which
        // stays open in this process until after spawn returns.
        unsafe {
            command.pre_exec(move || {
                // The pair was made close-on-exec; passt's end must survive the exec.
                if libc::fcntl(fd, libc::F_SETFD, 0) != 0 {
                    return Err(io::Error::last_os_error());
                }
                // passt also ends when the VM's end closes; this covers a VMM killed while
                // passt has not read yet.
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = command.spawn().map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                PasstError::NotInstalled
            } else {
                PasstError::Spawn(e)
            }
        })?;
        drop(theirs);
        let said = Arc::new(Mutex::new(Vec::<String>::new()));
        if let Some(stderr) = child.stderr.take() {
            let said = said.clone();
            let _ = std::thread::Builder::new()
                .name("passt stderr".into())
                .spawn(move || keep_last_lines(stderr, &said));
        }
        let child = Arc::new(Mutex::new(child));
        let stopping = Arc::new(AtomicBool::new(false));
        let read_end = ours.try_clone().map_err(PasstError::SocketPair)?;
        let write_end = ours.try_clone().map_err(PasstError::SocketPair)?;
        let reader = {
            let stopping = stopping.clone();
            let child = child.clone();
            std::thread::Builder::new()
                .name("passt reader".into())
                .spawn(move || {
                    let why = forward_frames(read_end, &host);
                    host.set_link(false);
                    if stopping.load(Ordering::SeqCst) {
                        return;
                    }
                    let reason = down_reason(why, &child, &said);
                    log::warn!("{reason}");
                    on_down(reason);
                })
                .map_err(PasstError::Spawn)?
        };
        write_end
            .set_write_timeout(Some(SEND_WAIT))
            .map_err(PasstError::SocketPair)?;
        Ok((
            Self {
                child,
                stream: ours,
                stopping,
                reader: Some(reader),
            },
            PasstLink::new(write_end),
        ))
    }

    /// passt's process ID.
    pub fn pid(&self) -> u32 {
        crate::devices::bus::lock(&self.child).id()
    }
}

impl Drop for Passt {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
        {
            let mut child = crate::devices::bus::lock(&self.child);
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

/// Asks for [`SOCKET_BUFFER`] bytes of send and receive buffer on `socket`: passt drops
/// the frames a full socket does not take (TCP then resends from the first one lost),
/// so its end may hold a burst as QEMU's connection to it does. Best effort: a smaller
/// buffer only costs speed.
fn grow_buffers(socket: &UnixStream) {
    for option in [libc::SO_SNDBUF, libc::SO_RCVBUF] {
        // SAFETY: setsockopt reads `size_of::<c_int>()` bytes from a live c_int; the
        // descriptor belongs to `socket`, open for the call.
        unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                option,
                std::ptr::from_ref(&SOCKET_BUFFER).cast(),
                libc::socklen_t::try_from(std::mem::size_of::<libc::c_int>()).unwrap_or(4),
            );
        }
    }
}

/// Why the stream from passt stopped.
#[derive(Debug)]
enum StreamEnd {
    /// passt closed it.
    Closed,
    /// A length prefix no frame can have: the stream cannot be followed any further.
    BadLength(u32),
    /// Reading failed.
    Failed(io::Error),
}

/// Reads frames from passt until the stream ends, pushing each to the card.
fn forward_frames(stream: UnixStream, host: &NetHost) -> StreamEnd {
    let mut input = BufReader::with_capacity(256 << 10, stream);
    // After a frame was dropped for a guest that does not read, the next ones do not wait
    // again until it has taken what waited.
    let mut stalled = false;
    loop {
        let mut prefix = [0u8; 4];
        match input.read_exact(&mut prefix) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return StreamEnd::Closed,
            Err(e) => return StreamEnd::Failed(e),
        }
        let len = u32::from_be_bytes(prefix);
        let Some(size) = usize::try_from(len)
            .ok()
            .filter(|n| (MIN_FRAME..=MAX_FRAME).contains(n))
        else {
            return StreamEnd::BadLength(len);
        };
        // Read into the new frame's spare capacity: no zeroing of 64 KiB per frame.
        let mut frame = Vec::with_capacity(size);
        match input.by_ref().take(u64::from(len)).read_to_end(&mut frame) {
            Ok(n) if n == size => {}
            // passt ended in the middle of a frame: the part is dropped.
            Ok(_) => return StreamEnd::Closed,
            Err(e) => return StreamEnd::Failed(e),
        }
        let patience = if stalled && host.pending_frames() > 0 {
            Duration::ZERO
        } else {
            ROOM_WAIT
        };
        stalled = !host.push_wait(frame, patience);
    }
}

/// The sentence for passt's end: what it said last, or how it ended.
fn down_reason(why: StreamEnd, child: &Mutex<Child>, said: &Mutex<Vec<String>>) -> String {
    let status = {
        let mut child = crate::devices::bus::lock(child);
        if matches!(why, StreamEnd::BadLength(_) | StreamEnd::Failed(_)) {
            let _ = child.kill();
        }
        // Its standard error closes as it exits; give it a moment to be read.
        let mut status = None;
        for _ in 0..20 {
            if let Ok(Some(s)) = child.try_wait() {
                status = Some(s);
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        status
    };
    std::thread::sleep(Duration::from_millis(50));
    let last = crate::devices::bus::lock(said).last().cloned();
    let what = match why {
        StreamEnd::BadLength(n) => {
            format!("passt sent a frame length of {n} bytes, which no frame has, so it was stopped")
        }
        StreamEnd::Failed(e) => format!("reading from passt failed ({e}), so it was stopped"),
        StreamEnd::Closed => match status {
            Some(s) if s.success() => "passt ended".to_string(),
            Some(s) => format!("passt ended ({s})"),
            None => "passt closed the VM's connection".to_string(),
        },
    };
    match last {
        Some(line) => format!("The network is down: {what}, saying \"{line}\". The VM runs on without a network; restart it to try again."),
        None => format!("The network is down: {what}. The VM runs on without a network; restart it to try again."),
    }
}

/// Keeps the last lines passt writes on its standard error (leaving out its complaints
/// that no system logger listens).
fn keep_last_lines(stderr: impl Read, said: &Mutex<Vec<String>>) {
    for line in BufReader::new(stderr).lines() {
        let Ok(line) = line else { break };
        let line = line.trim();
        if line.is_empty() || line.starts_with("Failed to send") {
            continue;
        }
        log::debug!("passt: {line}");
        let mut said = crate::devices::bus::lock(said);
        if said.len() == KEPT_LINES {
            said.remove(0);
        }
        said.push(line.to_string());
    }
}

/// The guest's side of the stream: each frame the guest transmits, framed and written.
#[derive(Debug)]
pub struct PasstLink {
    stream: UnixStream,
    /// The frame being written, with its prefix: one write per frame.
    buffer: Vec<u8>,
}

impl PasstLink {
    fn new(stream: UnixStream) -> Self {
        Self {
            stream,
            buffer: Vec::with_capacity(MAX_FRAME + 4),
        }
    }
}

impl FrameBackend for PasstLink {
    /// Writes the frame whole. When passt does not take any of it within [`SEND_WAIT`] it
    /// is dropped (an error for the counters); once part of it is written the rest must
    /// follow, or the stream would be broken, so it waits for as long as passt lives.
    fn send(&mut self, frame: &[u8]) -> io::Result<()> {
        let len = u32::try_from(frame.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "frame too long"))?;
        self.buffer.clear();
        self.buffer.extend_from_slice(&len.to_be_bytes());
        self.buffer.extend_from_slice(frame);
        let mut written = 0;
        while written < self.buffer.len() {
            match self.stream.write(&self.buffer[written..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e)
                    if written > 0
                        && matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                        ) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
