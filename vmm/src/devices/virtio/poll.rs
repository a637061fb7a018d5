//! Polling a queue after it was served. A driver that waits for each request before sending
//! the next (a block device at queue depth 1) otherwise pays a doorbell and a thread wake-up
//! per request, which costs far more than a page-cache read. So after a batch a worker keeps
//! watching the available ring for a short window with the driver's doorbell turned off, as
//! QEMU's iothreads do (`poll-max-ns`), and only then goes back to sleep on the doorbell.
//! Like QEMU's, the window adapts: it shrinks while the driver's next request comes long
//! after the window would have ended (spinning for nothing) and grows back when it comes
//! soon after the device went to sleep.

use crate::memory::GuestMemory;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use virtio_queue::{Queue, QueueT};
use vm_memory::{Address, Bytes, GuestAddress};

/// The `VRING_USED_F_NO_NOTIFY` flag (virtio 1.x 2.7.10): "do not kick me".
const USED_F_NO_NOTIFY: u16 = 1;

/// The smallest window worth spinning for; below it, no polling at all.
const SMALLEST: Duration = Duration::from_micros(4);

/// One queue's polling window, adapted to how soon the driver comes back.
#[derive(Debug, Clone)]
pub struct Poller {
    max: Duration,
    window: Duration,
    /// When the worker last went to sleep on the doorbell.
    slept_at: Option<Instant>,
}

impl Poller {
    /// A window of at most `max` (zero: never poll), starting at `max`; none where this
    /// process may use only one CPU.
    pub fn new(max: Duration) -> Self {
        Self::for_cpus(
            max,
            std::thread::available_parallelism().map_or(1, usize::from),
        )
    }

    /// On one CPU the spinning worker would keep the guest's vCPU from sending the very
    /// request it waits for: there, never poll.
    fn for_cpus(max: Duration, cpus: usize) -> Self {
        let max = if cpus > 1 { max } else { Duration::ZERO };
        Self {
            max,
            window: max,
            slept_at: None,
        }
    }

    /// How long to watch the queue after serving it now.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// The worker goes to sleep on the doorbell.
    pub fn sleeping(&mut self) {
        self.slept_at = Some(Instant::now());
    }

    /// The doorbell woke the worker: a request that came within the largest window means a
    /// window would have caught it (grow); one that came later, that spinning was wasted
    /// (shrink, down to none).
    pub fn woken(&mut self) {
        let Some(at) = self.slept_at.take() else {
            return;
        };
        if self.max.is_zero() {
            return;
        }
        if at.elapsed() <= self.max {
            self.window = (self.window * 2).max(SMALLEST).min(self.max);
        } else {
            self.window /= 2;
            if self.window < SMALLEST {
                self.window = Duration::ZERO;
            }
        }
    }
}

/// Why polling a queue failed: its rings are not where the driver said.
#[derive(Debug, thiserror::Error)]
pub enum PollError {
    /// The queue could not be read or written.
    #[error("Cannot poll the queue: {0}.")]
    Queue(#[from] virtio_queue::Error),
    /// A ring field lies outside guest memory.
    #[error("Cannot poll the queue: its used ring is outside guest memory.")]
    Ring,
}

/// Starts polling `queue` for `window` (returns false, changing nothing, when there is no
/// window): asks the driver not to ring the doorbell for what it adds next. Call it after
/// serving and before telling the driver (the interrupt): a driver woken by it sends the next
/// request at once, and should find the doorbell already quiet. With `EVENT_IDX` that is an
/// `avail_event` just behind the device's position (the driver kicks only when its index
/// passes `avail_event`, which it then cannot do until the index wraps: one harmless kick
/// every 65536 requests); without it, the used ring's `NO_NOTIFY` flag.
pub fn quiet_doorbell(
    queue: &Queue,
    mem: &GuestMemory,
    window: Duration,
) -> Result<bool, PollError> {
    if window.is_zero() || !queue.ready() {
        return Ok(false);
    }
    let used = GuestAddress(queue.used_ring());
    if queue.event_idx_enabled() {
        // The field after the ring's `size` elements of 8 bytes and its 4-byte header.
        let at = used
            .checked_add(4 + 8 * u64::from(queue.size()))
            .ok_or(PollError::Ring)?;
        let behind = queue.next_avail().wrapping_sub(1);
        mem.store(behind.to_le(), at, Ordering::Release)
    } else {
        mem.store(USED_F_NO_NOTIFY.to_le(), used, Ordering::Release)
    }
    .map_err(|_| PollError::Ring)?;
    Ok(true)
}

/// Watches `queue` for up to `window` after [`quiet_doorbell`] started polling. Returns
/// whether the driver made more requests (serve them, then poll again); otherwise the
/// doorbell is on again (and a request that raced with turning it on is reported, not lost).
pub fn poll_for_work(
    queue: &mut Queue,
    mem: &GuestMemory,
    window: Duration,
) -> Result<bool, PollError> {
    let start = Instant::now();
    loop {
        // Reading the clock costs more than a look at the ring: look a few times per read.
        for _ in 0..32 {
            if !queue.ready() {
                return Ok(false);
            }
            if queue.avail_idx(mem, Ordering::Acquire)?.0 != queue.next_avail() {
                return Ok(true);
            }
            std::hint::spin_loop();
        }
        if start.elapsed() >= window {
            break;
        }
    }
    Ok(queue.enable_notification(mem)?)
}

#[cfg(test)]
mod tests;
