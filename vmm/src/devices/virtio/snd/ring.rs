//! The bytes between a PCM stream's queue and its sound backend. The queue worker puts
//! the guest's playback in and takes its capture out; the backend's clock (PipeWire's
//! process callback, or the null backend's timer) does the other side and wakes the worker.
//! Neither side ever waits for the other: a backend that finds too little plays silence
//! and counts an underrun, capture that nobody takes drops its oldest bytes and counts an
//! overrun.

use crate::devices::bus::lock;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use vmm_sys_util::eventfd::EventFd;

/// What happened on a stream, for the log and the tests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RingStats {
    /// Bytes the guest gave (playback) or took (capture).
    pub guest_bytes: u64,
    /// Bytes the backend took (playback) or gave (capture).
    pub backend_bytes: u64,
    /// Times the backend found less playback than it asked for while the stream ran.
    pub underruns: u64,
    /// Bytes of silence the backend played in their place.
    pub silence_bytes: u64,
    /// Bytes of capture dropped because the guest did not take them in time.
    pub overrun_bytes: u64,
    /// Times capture began to be dropped (each run of drops between two takes is one).
    pub overruns: u64,
}

#[derive(Debug)]
struct Inner {
    bytes: VecDeque<u8>,
    /// Playback: the worker stops taking the guest's messages at this level. Capture: the
    /// most kept; older bytes go first.
    limit: usize,
    /// Whether the guest started the stream (an empty ring then is an underrun).
    running: bool,
    /// Capture is being dropped, and the guest has not taken any since.
    overflowing: bool,
    stats: RingStats,
}

/// One stream's bytes in flight.
#[derive(Debug)]
pub struct Ring {
    inner: Mutex<Inner>,
    wake: Arc<EventFd>,
}

impl Ring {
    /// An empty ring holding up to `limit` bytes, waking `wake` when the backend moved
    /// bytes.
    pub fn new(limit: usize, wake: Arc<EventFd>) -> Self {
        Self {
            inner: Mutex::new(Inner {
                bytes: VecDeque::with_capacity(limit),
                limit: limit.max(1),
                running: false,
                overflowing: false,
                stats: RingStats::default(),
            }),
            wake,
        }
    }

    /// Bytes waiting.
    pub fn len(&self) -> usize {
        lock(&self.inner).bytes.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Playback: whether the worker may put another message in.
    pub fn has_room(&self) -> bool {
        let inner = lock(&self.inner);
        inner.bytes.len() < inner.limit
    }

    /// Marks the stream running (started) or not.
    pub fn set_running(&self, running: bool) {
        lock(&self.inner).running = running;
    }

    /// Drops everything waiting (the stream was released).
    pub fn clear(&self) {
        lock(&self.inner).bytes.clear();
    }

    /// What happened so far.
    pub fn stats(&self) -> RingStats {
        lock(&self.inner).stats
    }

    /// Playback, the worker's side: the guest's bytes; returns the bytes then waiting
    /// (the message's latency).
    pub fn put_playback(&self, data: &[u8]) -> usize {
        let mut inner = lock(&self.inner);
        inner.bytes.extend(data);
        inner.stats.guest_bytes += data.len() as u64;
        inner.bytes.len()
    }

    /// Playback, the backend's side: fills `out` with what waits and silence after it
    /// (every format we offer is signed or float: silence is zero bytes).
    pub fn take_playback(&self, out: &mut [u8]) {
        let mut inner = lock(&self.inner);
        let n = out.len().min(inner.bytes.len());
        for (dst, src) in out.iter_mut().zip(inner.bytes.drain(..n)) {
            *dst = src;
        }
        out[n..].fill(0);
        inner.stats.backend_bytes += n as u64;
        if n < out.len() && inner.running {
            inner.stats.underruns += 1;
            inner.stats.silence_bytes += (out.len() - n) as u64;
        }
        drop(inner);
        let _ = self.wake.write(1);
    }

    /// Capture, the backend's side: bytes heard (or silence); the oldest go when the ring
    /// is full.
    pub fn put_capture(&self, data: &[u8]) {
        let mut inner = lock(&self.inner);
        inner.bytes.extend(data);
        inner.stats.backend_bytes += data.len() as u64;
        let over = inner.bytes.len().saturating_sub(inner.limit);
        if over > 0 {
            inner.bytes.drain(..over);
            inner.stats.overrun_bytes += over as u64;
            if !inner.overflowing {
                inner.overflowing = true;
                inner.stats.overruns += 1;
            }
        }
        drop(inner);
        let _ = self.wake.write(1);
    }

    /// Capture, the worker's side: up to `out.len()` bytes; returns how many.
    pub fn take_capture(&self, out: &mut [u8]) -> usize {
        let mut inner = lock(&self.inner);
        let n = out.len().min(inner.bytes.len());
        for (dst, src) in out.iter_mut().zip(inner.bytes.drain(..n)) {
            *dst = src;
        }
        inner.stats.guest_bytes += n as u64;
        inner.overflowing = false;
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(limit: usize) -> (Ring, Arc<EventFd>) {
        let wake = Arc::new(EventFd::new(libc::EFD_NONBLOCK).unwrap());
        (Ring::new(limit, wake.clone()), wake)
    }

    #[test]
    fn playback_plays_what_waits_then_silence_and_counts_the_underrun() {
        let (r, wake) = ring(8);
        assert!(r.has_room());
        assert_eq!(r.put_playback(&[1, 2, 3, 4, 5, 6, 7, 8]), 8);
        assert!(!r.has_room(), "at the limit the worker waits");
        r.set_running(true);
        let mut out = [9u8; 6];
        r.take_playback(&mut out);
        assert_eq!(out, [1, 2, 3, 4, 5, 6]);
        assert_eq!(wake.read().unwrap(), 1, "the worker is woken");
        assert!(r.has_room());
        r.take_playback(&mut out);
        assert_eq!(out, [7, 8, 0, 0, 0, 0]);
        let s = r.stats();
        assert_eq!((s.underruns, s.silence_bytes, s.backend_bytes), (1, 4, 8));
    }

    #[test]
    fn silence_before_the_start_is_no_underrun() {
        let (r, _) = ring(8);
        let mut out = [0u8; 4];
        r.take_playback(&mut out);
        assert_eq!(r.stats().underruns, 0);
    }

    #[test]
    fn capture_keeps_the_newest_bytes() {
        let (r, _) = ring(4);
        r.put_capture(&[1, 2, 3]);
        r.put_capture(&[4, 5, 6]);
        r.put_capture(&[7]);
        assert_eq!(r.stats().overrun_bytes, 3);
        assert_eq!(r.stats().overruns, 1, "one episode until the guest takes");
        let mut out = [0u8; 8];
        assert_eq!(r.take_capture(&mut out), 4);
        assert_eq!(&out[..4], &[4, 5, 6, 7]);
        assert!(r.is_empty());
        r.put_capture(&[0; 5]);
        assert_eq!(r.stats().overruns, 2, "a new episode after a take");
    }
}
