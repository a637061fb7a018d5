//! virtio-rng: fills the guest's buffers with host entropy (getrandom), capped to a rate
//! so that one guest cannot drain the host's pool for everyone.

use super::{
    Chain, DeviceCore, VIRTIO_F_VERSION_1, VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC,
};
use crate::memory::GuestMemory;
use std::io::Write;
use std::time::{Duration, Instant};

/// The default cap: 1 MiB of entropy per second.
pub const DEFAULT_BYTES_PER_SEC: u64 = 1 << 20;
const MAX_REQUEST: usize = 64 * 1024;
const QUEUE_SIZE: u16 = 256;

/// A token bucket: at most `rate` bytes per second, bursts up to one second's worth.
#[derive(Debug)]
pub struct RateLimit {
    rate: u64,
    tokens: u64,
    last: Instant,
}

impl RateLimit {
    /// A full bucket for `rate` bytes per second.
    pub fn new(rate: u64) -> Self {
        Self {
            rate: rate.max(1),
            tokens: rate.max(1),
            last: Instant::now(),
        }
    }

    fn refill(&mut self) {
        let now = Instant::now();
        let earned = u64::try_from(
            now.duration_since(self.last).as_nanos() * u128::from(self.rate) / 1_000_000_000,
        )
        .unwrap_or(u64::MAX);
        if earned > 0 {
            self.tokens = self.tokens.saturating_add(earned).min(self.rate);
            self.last = now;
        }
    }

    /// Takes up to `want` bytes, waiting for the first ones if the bucket is empty.
    pub fn take(&mut self, want: usize) -> usize {
        self.refill();
        while self.tokens == 0 {
            let wait = Duration::from_nanos(1_000_000_000 / self.rate.min(1_000_000_000))
                .max(Duration::from_micros(100));
            std::thread::sleep(wait);
            self.refill();
        }
        let n = want.min(usize::try_from(self.tokens).unwrap_or(usize::MAX));
        self.tokens -= n as u64;
        n
    }
}

/// The entropy device.
#[derive(Debug)]
pub struct Rng {
    limit: RateLimit,
}

impl Rng {
    /// An entropy device giving at most `bytes_per_sec`.
    pub fn new(bytes_per_sec: u64) -> Self {
        Self {
            limit: RateLimit::new(bytes_per_sec),
        }
    }
}

fn getrandom(buf: &mut [u8]) -> std::io::Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        let rest = &mut buf[filled..];
        // SAFETY: `rest` is a valid, writable buffer of `rest.len()` bytes for the call.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        filled += n as usize;
    }
    Ok(())
}

impl DeviceCore for Rng {
    fn device_type(&self) -> u32 {
        4
    }
    fn num_queues(&self) -> usize {
        1
    }
    fn max_queue_size(&self) -> u16 {
        QUEUE_SIZE
    }
    fn features(&self) -> u64 {
        VIRTIO_F_VERSION_1 | VIRTIO_RING_F_EVENT_IDX | VIRTIO_RING_F_INDIRECT_DESC
    }
    fn config(&self) -> Vec<u8> {
        Vec::new()
    }

    fn process(&mut self, _queue: usize, mem: &GuestMemory, chain: Chain<'_>) -> u32 {
        let Ok(mut writer) = chain.writer(mem) else {
            return 0;
        };
        let want = writer.available_bytes().min(MAX_REQUEST);
        if want == 0 {
            return 0;
        }
        let n = self.limit.take(want);
        let mut buf = vec![0u8; n];
        if getrandom(&mut buf).is_err() || writer.write_all(&buf).is_err() {
            return 0;
        }
        u32::try_from(n).unwrap_or(u32::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use virtio_queue::desc::{split::Descriptor as SplitDescriptor, RawDescriptor};
    use virtio_queue::mock::MockSplitQueue;
    use virtio_queue::{QueueOwnedT, QueueT};
    use vm_memory::{Bytes, GuestAddress};

    const VRING_DESC_F_WRITE: u16 = 2;

    #[test]
    fn fills_writable_buffers_with_random_bytes() {
        let mem = GuestMemory::from_ranges(&[(GuestAddress(0), 0x10_0000)]).unwrap();
        let vq = MockSplitQueue::new(&mem, 16);
        let descs = [RawDescriptor::from(SplitDescriptor::new(
            0x8000,
            64,
            VRING_DESC_F_WRITE,
            0,
        ))];
        vq.build_desc_chain(&descs).unwrap();
        let mut q: virtio_queue::Queue = vq.create_queue().unwrap();
        let chain = q.iter(&mem).unwrap().next().unwrap();
        let mut rng = Rng::new(DEFAULT_BYTES_PER_SEC);
        assert_eq!(rng.process(0, &mem, chain), 64);
        let mut out = [0u8; 64];
        mem.read_slice(&mut out, GuestAddress(0x8000)).unwrap();
        assert!(out.iter().any(|b| *b != 0));
        assert!(q.is_valid(&mem));
    }

    #[test]
    fn read_only_buffers_get_nothing() {
        let mem = GuestMemory::from_ranges(&[(GuestAddress(0), 0x10_0000)]).unwrap();
        let vq = MockSplitQueue::new(&mem, 16);
        let descs = [RawDescriptor::from(SplitDescriptor::new(0x8000, 64, 0, 0))];
        vq.build_desc_chain(&descs).unwrap();
        let mut q: virtio_queue::Queue = vq.create_queue().unwrap();
        let chain = q.iter(&mem).unwrap().next().unwrap();
        assert_eq!(Rng::new(DEFAULT_BYTES_PER_SEC).process(0, &mem, chain), 0);
    }

    #[test]
    fn rate_limit_caps_throughput() {
        let mut limit = RateLimit::new(10_000);
        let start = Instant::now();
        let mut got = 0;
        while got < 20_000 {
            got += limit.take(4096);
        }
        // A full bucket of 10 000, then 10 000 more at 10 000/s: about a second.
        assert!(
            start.elapsed() >= Duration::from_millis(900),
            "{:?}",
            start.elapsed()
        );
    }
}
