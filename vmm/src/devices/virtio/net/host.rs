//! The host's side of a virtio-net device, shared by the queue worker and whoever feeds
//! the device from another thread (the reader of the backend's socket, the VM's control
//! thread): frames waiting for the guest's receive buffers, bounded so that a guest that
//! stops reading costs frames and never memory; the link state; and the counters of what
//! went through and what was dropped.

use crate::devices::bus::lock;
use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};
use vmm_sys_util::eventfd::EventFd;

/// Most frames kept waiting for the guest; more are dropped.
pub const PENDING_FRAMES: usize = 256;
/// Most bytes of frames kept waiting for the guest (64 frames of the largest size); more
/// are dropped.
pub const PENDING_BYTES: usize = 4 << 20;

/// What went through the device and what it dropped, since it was made (a driver reset
/// does not clear them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetStats {
    /// Frames the guest sent that the backend took.
    pub tx_frames: u64,
    /// Their bytes (Ethernet frames, without the virtio-net header).
    pub tx_bytes: u64,
    /// Transmitted chains dropped as malformed: shorter than the header, a frame shorter
    /// than an Ethernet header or over [`super::MAX_FRAME`], or unreadable memory.
    pub tx_malformed: u64,
    /// Transmitted frames dropped because their header asked for checksum or segmentation
    /// offload, which the device does not offer.
    pub tx_offload: u64,
    /// Frames the backend failed to take.
    pub tx_backend_errors: u64,
    /// Frames the guest sent while the link was down.
    pub tx_link_down: u64,
    /// Frames delivered into the guest's receive buffers.
    pub rx_frames: u64,
    /// Their bytes (without the virtio-net header).
    pub rx_bytes: u64,
    /// Host frames dropped because [`PENDING_FRAMES`] or [`PENDING_BYTES`] were already
    /// waiting (the guest was not reading).
    pub rx_overflow: u64,
    /// Host frames refused for their size: shorter than an Ethernet header, or longer than
    /// the MTU the guest was told allows.
    pub rx_invalid: u64,
    /// Host frames dropped because the receive buffer the guest gave could not hold them.
    pub rx_no_room: u64,
    /// Host frames dropped because the link was down, or because the driver reset the
    /// device before they were delivered.
    pub rx_discarded: u64,
}

/// What [`NetHost::take`] found for a receive buffer.
#[derive(Debug)]
pub(crate) enum Take {
    /// No frame waits.
    Nothing,
    /// The next frame, which fits.
    Frame(Vec<u8>),
    /// The next frame did not fit and was dropped (counted).
    TooLarge,
}

#[derive(Debug)]
struct State {
    pending: VecDeque<Vec<u8>>,
    pending_bytes: usize,
    link_up: bool,
    stats: NetStats,
}

impl State {
    /// Drops every waiting frame, counting them.
    fn discard(&mut self) {
        self.stats.rx_discarded += self.pending.len() as u64;
        self.pending.clear();
        self.pending_bytes = 0;
    }
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    /// Frames shorter than this are not Ethernet frames.
    min_frame: usize,
    /// Frames longer than this exceed the MTU the guest was told.
    max_frame: usize,
    /// Signalled when a frame arrives with none waiting: receive buffers become usable.
    frame_ready: EventFd,
    /// Signalled when the link state changes (the configuration interrupt).
    config_changed: EventFd,
    /// Notified when waiting frames leave (delivered or dropped): room for more.
    room: Condvar,
}

/// The host side's handle on a virtio-net device (cloneable, any thread): pushes frames
/// to the guest, sets the link, reads the counters.
#[derive(Debug, Clone)]
pub struct NetHost {
    shared: Arc<Shared>,
}

impl NetHost {
    /// A handle for a device taking host frames of `min_frame..=max_frame` bytes, link up.
    pub(super) fn new(min_frame: usize, max_frame: usize) -> std::io::Result<Self> {
        Ok(Self {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    pending: VecDeque::new(),
                    pending_bytes: 0,
                    link_up: true,
                    stats: NetStats::default(),
                }),
                min_frame,
                max_frame,
                frame_ready: EventFd::new(libc::EFD_NONBLOCK)?,
                config_changed: EventFd::new(libc::EFD_NONBLOCK)?,
                room: Condvar::new(),
            }),
        })
    }

    /// Queues one Ethernet frame (no virtio-net header) for the guest. Never blocks:
    /// returns false, and counts the frame, when it is dropped instead: a size no guest
    /// may be given, the link down, or too much already waiting for a guest that is not
    /// reading.
    pub fn push(&self, frame: Vec<u8>) -> bool {
        let shared = &*self.shared;
        let mut state = lock(&shared.state);
        if !(shared.min_frame..=shared.max_frame).contains(&frame.len()) {
            state.stats.rx_invalid += 1;
            return false;
        }
        if !state.link_up {
            state.stats.rx_discarded += 1;
            return false;
        }
        if state.pending.len() >= PENDING_FRAMES
            || state.pending_bytes + frame.len() > PENDING_BYTES
        {
            state.stats.rx_overflow += 1;
            return false;
        }
        let was_empty = state.pending.is_empty();
        state.pending_bytes += frame.len();
        state.pending.push_back(frame);
        drop(state);
        // With frames already waiting, the worker either takes this one with them (it
        // asks `ready` under the same lock before each buffer) or waits for the guest to
        // post buffers: waking it again would find nothing new to do.
        if was_empty {
            let _ = shared.frame_ready.write(1);
        }
        true
    }

    /// Like [`NetHost::push`], but when too much is waiting already it first waits up to
    /// `patience` for the guest to take some: a backend thread that can wait (passt's
    /// reader) slows the sender down this way instead of making TCP retransmit. A guest
    /// that does not read at all still costs only dropped frames.
    pub fn push_wait(&self, frame: Vec<u8>, patience: Duration) -> bool {
        let shared = &*self.shared;
        let deadline = Instant::now() + patience;
        let mut state = lock(&shared.state);
        while state.link_up
            && (state.pending.len() >= PENDING_FRAMES
                || state.pending_bytes + frame.len() > PENDING_BYTES)
        {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            state = match shared.room.wait_timeout(state, left) {
                Ok((s, _)) => s,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        drop(state);
        self.push(frame)
    }

    /// Plugs (`up`) or unplugs the virtual cable: the guest sees the status change through
    /// the configuration interrupt. Unplugging drops the frames waiting for the guest, and
    /// while the link is down frames in either direction are dropped (counted).
    pub fn set_link(&self, up: bool) {
        let mut state = lock(&self.shared.state);
        if state.link_up == up {
            return;
        }
        state.link_up = up;
        if !up {
            state.discard();
            self.shared.room.notify_all();
        }
        drop(state);
        let _ = self.shared.config_changed.write(1);
    }

    /// Whether the link is up.
    pub fn link_up(&self) -> bool {
        lock(&self.shared.state).link_up
    }

    /// The counters now.
    pub fn stats(&self) -> NetStats {
        lock(&self.shared.state).stats
    }

    /// The length of the next frame waiting for the guest.
    pub(crate) fn next_len(&self) -> Option<usize> {
        lock(&self.shared.state).pending.front().map(Vec::len)
    }

    /// How many frames wait for the guest's receive buffers.
    pub fn pending_frames(&self) -> usize {
        lock(&self.shared.state).pending.len()
    }

    /// Takes the next waiting frame for a buffer of `room` bytes (after the header); a
    /// frame larger than that is dropped, since no later buffer of this driver is likely
    /// to be larger and holding it would stall every frame behind it.
    pub(crate) fn take(&self, room: usize) -> Take {
        let mut state = lock(&self.shared.state);
        let Some(frame) = state.pending.pop_front() else {
            return Take::Nothing;
        };
        state.pending_bytes -= frame.len();
        self.shared.room.notify_all();
        if frame.len() > room {
            state.stats.rx_no_room += 1;
            return Take::TooLarge;
        }
        Take::Frame(frame)
    }

    /// Updates the counters.
    pub(super) fn count(&self, update: impl FnOnce(&mut NetStats)) {
        update(&mut lock(&self.shared.state).stats);
    }

    /// Drops every waiting frame (the driver reset the device), counting them.
    pub(super) fn discard_pending(&self) {
        lock(&self.shared.state).discard();
        self.shared.room.notify_all();
    }

    pub(super) fn frame_ready(&self) -> &EventFd {
        &self.shared.frame_ready
    }

    pub(super) fn config_changed(&self) -> &EventFd {
        &self.shared.config_changed
    }
}
