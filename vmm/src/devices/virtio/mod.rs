//! Virtio device cores: the request handling of each device, independent of how the
//! device reaches the guest. The same core serves a queue inside the VMM (virtio-pci,
//! later) or in another process as a vhost-user backend ([`crate::vhost_user`]).
//!
//! Everything a core reads from a descriptor chain is guest-controlled: a malformed chain
//! fails that one request (with the device's error status where the chain leaves room for
//! one) and the core goes on serving.

pub mod blk;
pub mod console;
pub mod event_loop;
pub mod gpu;
pub mod input;
pub mod net;
pub mod pci;
pub mod poll;
pub mod rng;
pub mod scsi;
pub mod shm;
pub mod snd;

use crate::devices::bus::lock;
use crate::memory::GuestMemory;
use std::sync::Mutex;
use virtio_queue::{DescriptorChain, Queue, QueueT};

/// Feature bit: the device complies with virtio 1.0+.
pub const VIRTIO_F_VERSION_1: u64 = 1 << 32;
/// Feature bit: indirect descriptors.
pub const VIRTIO_RING_F_INDIRECT_DESC: u64 = 1 << 28;
/// Feature bit: used/available event index suppression.
pub const VIRTIO_RING_F_EVENT_IDX: u64 = 1 << 29;

/// A chain popped from a queue, borrowing guest memory.
pub type Chain<'a> = DescriptorChain<&'a GuestMemory>;

/// What every device core offers its transport.
pub trait DeviceCore: Send {
    /// The virtio device ID (2 = block, 4 = entropy, ...).
    fn device_type(&self) -> u32;
    /// How many virtqueues the device has.
    fn num_queues(&self) -> usize;
    /// The largest queue size the device accepts.
    fn max_queue_size(&self) -> u16;
    /// Device feature bits, transport-independent ones included.
    fn features(&self) -> u64;
    /// The device-specific configuration space.
    fn config(&self) -> Vec<u8>;
    /// The driver wrote `data` at `offset` in the configuration space (most devices
    /// have nothing writable there).
    fn write_config(&mut self, _offset: usize, _data: &[u8]) {}
    /// Handles one request; returns how many bytes it wrote into the chain (the used length).
    fn process(&mut self, queue: usize, mem: &GuestMemory, chain: Chain<'_>) -> u32;
    /// How many chains the device takes at once in [`DeviceCore::process_batch`]; one (the
    /// default) for devices whose requests must be taken one at a time, as receive queues
    /// that wait for host input.
    fn batch_limit(&self) -> usize {
        1
    }
    /// Handles several requests of one queue, which the driver had in flight together (a
    /// device may overlap them); returns each one's used length, in order.
    fn process_batch(
        &mut self,
        queue: usize,
        mem: &GuestMemory,
        chains: Vec<Chain<'_>>,
    ) -> Vec<u32> {
        chains
            .into_iter()
            .map(|chain| self.process(queue, mem, chain))
            .collect()
    }
    /// Whether the device can use the next buffer of `queue` now. Receive queues that
    /// wait for host input say no until there is some (the buffers stay in the ring).
    fn ready(&self, _queue: usize) -> bool {
        true
    }
    /// Signalled when a queue that was not ready may have become ready (host input).
    fn input_event(&self) -> Option<&vmm_sys_util::eventfd::EventFd> {
        None
    }
    /// Signalled when the configuration space changed on the host's initiative (a new
    /// display size): the transport raises the configuration interrupt.
    fn config_event(&self) -> Option<&vmm_sys_util::eventfd::EventFd> {
        None
    }
    /// The driver reset the device: forget what it set up (resources, selections).
    fn reset(&mut self) {}
    /// The device's shared memory regions: (virtio shared memory ID, bytes).
    fn shared_memory(&self) -> Vec<(u8, u64)> {
        Vec::new()
    }
    /// Where the device puts pages into its shared memory regions, or nowhere (the
    /// machine or the connection is going).
    fn set_shared_memory(&mut self, _mapper: Option<std::sync::Arc<dyn shm::ShmMapper>>) {}
    /// How long the worker keeps watching a queue after serving it (see [`poll`]); none by
    /// default: only devices whose drivers wait on each request gain from it.
    fn poll_window(&self) -> std::time::Duration {
        std::time::Duration::ZERO
    }
    /// The features the driver accepted, told before its queues are served.
    fn set_driver_features(&mut self, _features: u64) {}
    /// Whether one request of `queue` may take several chains (virtio-net's merged receive
    /// buffers): that queue is then served by [`DeviceCore::fill`], not `process`.
    fn spans_chains(&self, _queue: usize) -> bool {
        false
    }
    /// Serves one request of a queue that [`DeviceCore::spans_chains`], taking chains from
    /// `next` as it needs them; the chains it used are published together.
    fn fill<'m>(
        &mut self,
        _queue: usize,
        _mem: &'m GuestMemory,
        _next: &mut dyn FnMut() -> Option<Chain<'m>>,
    ) -> Filled {
        Filled::default()
    }
}

/// What [`DeviceCore::fill`] did with the chains it took.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Filled {
    /// The chains used, as (head index, bytes written), in the order taken: they go to the
    /// used ring together.
    pub used: Vec<(u16, u32)>,
    /// How many chains, taken last, were not used: they go back to the available ring.
    pub unused: u16,
    /// The queue had too few chains for the request, which waits for the driver to post
    /// more (nothing was used).
    pub starved: bool,
}

impl<C: DeviceCore + ?Sized> DeviceCore for Box<C> {
    fn device_type(&self) -> u32 {
        (**self).device_type()
    }
    fn num_queues(&self) -> usize {
        (**self).num_queues()
    }
    fn max_queue_size(&self) -> u16 {
        (**self).max_queue_size()
    }
    fn features(&self) -> u64 {
        (**self).features()
    }
    fn config(&self) -> Vec<u8> {
        (**self).config()
    }
    fn write_config(&mut self, offset: usize, data: &[u8]) {
        (**self).write_config(offset, data);
    }
    fn process(&mut self, queue: usize, mem: &GuestMemory, chain: Chain<'_>) -> u32 {
        (**self).process(queue, mem, chain)
    }
    fn batch_limit(&self) -> usize {
        (**self).batch_limit()
    }
    fn process_batch(
        &mut self,
        queue: usize,
        mem: &GuestMemory,
        chains: Vec<Chain<'_>>,
    ) -> Vec<u32> {
        (**self).process_batch(queue, mem, chains)
    }
    fn ready(&self, queue: usize) -> bool {
        (**self).ready(queue)
    }
    fn input_event(&self) -> Option<&vmm_sys_util::eventfd::EventFd> {
        (**self).input_event()
    }
    fn config_event(&self) -> Option<&vmm_sys_util::eventfd::EventFd> {
        (**self).config_event()
    }
    fn reset(&mut self) {
        (**self).reset();
    }
    fn shared_memory(&self) -> Vec<(u8, u64)> {
        (**self).shared_memory()
    }
    fn set_shared_memory(&mut self, mapper: Option<std::sync::Arc<dyn shm::ShmMapper>>) {
        (**self).set_shared_memory(mapper);
    }
    fn poll_window(&self) -> std::time::Duration {
        (**self).poll_window()
    }
    fn set_driver_features(&mut self, features: u64) {
        (**self).set_driver_features(features);
    }
    fn spans_chains(&self, queue: usize) -> bool {
        (**self).spans_chains(queue)
    }
    fn fill<'m>(
        &mut self,
        queue: usize,
        mem: &'m GuestMemory,
        next: &mut dyn FnMut() -> Option<Chain<'m>>,
    ) -> Filled {
        (**self).fill(queue, mem, next)
    }
}

/// Puts `used` (head index, length) on the used ring of `queue` and then, once, moves
/// the ring's index past them all: a driver reading the index sees all of them or none
/// (one merged frame's buffers must arrive together; virtio-queue's `add_used` moves the
/// index per chain). Returns whether the driver wants an interrupt for them.
fn publish_together(
    queue: &mut Queue,
    mem: &GuestMemory,
    used: &[(u16, u32)],
) -> Result<bool, virtio_queue::Error> {
    use std::num::Wrapping;
    use std::sync::atomic::{fence, Ordering};
    use vm_memory::{Address, Bytes, GuestAddress};
    let size = queue.size();
    let ring = GuestAddress(queue.used_ring());
    let start = Wrapping(queue.next_used());
    let mut end = start;
    for &(head, len) in used {
        if head >= size {
            return Err(virtio_queue::Error::InvalidDescriptorIndex);
        }
        let slot = u64::from(end.0 % size);
        let at = ring
            .checked_add(4 + 8 * slot)
            .ok_or(virtio_queue::Error::AddressOverflow)?;
        // struct virtq_used_elem: the head's index and the length, little-endian.
        let mut element = [0u8; 8];
        element[..4].copy_from_slice(&u32::from(head).to_le_bytes());
        element[4..].copy_from_slice(&len.to_le_bytes());
        mem.write_slice(&element, at)
            .map_err(virtio_queue::Error::GuestMemory)?;
        end += Wrapping(1);
    }
    let index = ring
        .checked_add(2)
        .ok_or(virtio_queue::Error::AddressOverflow)?;
    mem.store(end.0.to_le(), index, Ordering::Release)
        .map_err(virtio_queue::Error::GuestMemory)?;
    queue.set_next_used(end.0);
    if !queue.event_idx_enabled() {
        return Ok(true);
    }
    // As virtio-queue's `needs_notification` does: the index written before reading the
    // driver's `used_event` (after the available ring's `size` entries and its header).
    fence(Ordering::SeqCst);
    let at = GuestAddress(queue.avail_ring())
        .checked_add(4 + 2 * u64::from(size))
        .ok_or(virtio_queue::Error::AddressOverflow)?;
    let used_event = Wrapping(u16::from_le(
        mem.load::<u16>(at, Ordering::Acquire)
            .map_err(virtio_queue::Error::GuestMemory)?,
    ));
    Ok(end - used_event - Wrapping(1) < end - start)
}

/// Why [`serve_spanning`] stopped.
enum Stopped {
    /// The core waits for host input.
    ForHost,
    /// The request needs more chains than the driver has posted.
    Starved,
}

/// Serves requests of a queue whose requests may span chains (see
/// [`DeviceCore::spans_chains`]) while the core is ready; returns whether to interrupt,
/// and why it stopped.
fn serve_spanning<C: DeviceCore + ?Sized>(
    queue: &mut Queue,
    index: usize,
    mem: &GuestMemory,
    core: &Mutex<C>,
) -> Result<(bool, Stopped), virtio_queue::Error> {
    let mut notify = false;
    loop {
        if !lock(core).ready(index) {
            return Ok((notify, Stopped::ForHost));
        }
        let filled = {
            let mut next = || queue.pop_descriptor_chain(mem);
            lock(core).fill(index, mem, &mut next)
        };
        queue.set_next_avail(queue.next_avail().wrapping_sub(filled.unused));
        if !filled.used.is_empty() {
            notify |= publish_together(queue, mem, &filled.used)?;
        }
        if filled.starved {
            return Ok((notify, Stopped::Starved));
        }
    }
}

/// After a request found too few chains: asks the driver to ring for the next chain it
/// posts (with `EVENT_IDX`, `avail_event` at the driver's index now, not at the first
/// chain not taken, which the driver has long passed); returns whether it posted more
/// meanwhile (serve again).
fn ring_on_next_post(queue: &mut Queue, mem: &GuestMemory) -> Result<bool, virtio_queue::Error> {
    use std::sync::atomic::{fence, Ordering};
    use vm_memory::{Address, Bytes, GuestAddress};
    let seen = queue.avail_idx(mem, Ordering::Acquire)?;
    if queue.event_idx_enabled() {
        let at = GuestAddress(queue.used_ring())
            .checked_add(4 + 8 * u64::from(queue.size()))
            .ok_or(virtio_queue::Error::AddressOverflow)?;
        mem.store(seen.0.to_le(), at, Ordering::Release)
            .map_err(virtio_queue::Error::GuestMemory)?;
    } else {
        queue.enable_notification(mem)?;
    }
    fence(Ordering::SeqCst);
    Ok(queue.avail_idx(mem, Ordering::Acquire)? != seen)
}

/// Serves chains of `queue` one request per chain (in batches where the core takes them),
/// while the core is ready; returns whether to interrupt, and whether it stopped for host
/// input (otherwise for want of chains).
fn serve_chains<C: DeviceCore + ?Sized>(
    queue: &mut Queue,
    index: usize,
    mem: &GuestMemory,
    core: &Mutex<C>,
) -> Result<(bool, bool), virtio_queue::Error> {
    let batch_limit = lock(core).batch_limit().max(1);
    let mut notify = false;
    let mut waiting_for_host = false;
    loop {
        if !lock(core).ready(index) {
            waiting_for_host = true;
            break;
        }
        let Some(first) = queue.pop_descriptor_chain(mem) else {
            break;
        };
        // One chain (the common case at low depth) goes without a batch's allocations.
        let second = if batch_limit > 1 && lock(core).ready(index) {
            queue.pop_descriptor_chain(mem)
        } else {
            None
        };
        let Some(second) = second else {
            let head = first.head_index();
            let used = lock(core).process(index, mem, first);
            queue.add_used(mem, head, used)?;
            notify |= queue.needs_notification(mem)?;
            continue;
        };
        let mut chains = vec![first, second];
        while chains.len() < batch_limit {
            if !lock(core).ready(index) {
                waiting_for_host = true;
                break;
            }
            let Some(chain) = queue.pop_descriptor_chain(mem) else {
                break;
            };
            chains.push(chain);
        }
        let heads: Vec<u16> = chains.iter().map(DescriptorChain::head_index).collect();
        let used = lock(core).process_batch(index, mem, chains);
        for (i, &head) in heads.iter().enumerate() {
            // A core that answered for fewer chains still returns them all (empty).
            queue.add_used(mem, head, used.get(i).copied().unwrap_or(0))?;
        }
        notify |= queue.needs_notification(mem)?;
        if waiting_for_host {
            break;
        }
    }
    Ok((notify, waiting_for_host))
}

/// Serves every available chain of `queue` with `core`, returning the chains to the used
/// ring. Returns whether the driver wants an interrupt (always, unless `EVENT_IDX` says not).
/// With `EVENT_IDX`, chains that arrive while notifications are re-enabled are served too.
pub fn serve_queue<C: DeviceCore + ?Sized>(
    queue: &mut Queue,
    index: usize,
    mem: &GuestMemory,
    core: &Mutex<C>,
) -> Result<bool, virtio_queue::Error> {
    // A queue the driver has not (yet) set up has nothing to serve; host input can arrive
    // before that.
    if !queue.ready() {
        return Ok(false);
    }
    let event_idx = queue.event_idx_enabled();
    let spanning = lock(core).spans_chains(index);
    let mut notify = false;
    loop {
        if event_idx {
            queue.disable_notification(mem)?;
        }
        let waiting_for_host = if spanning {
            let (more, stopped) = serve_spanning(queue, index, mem, core)?;
            notify |= more;
            match stopped {
                Stopped::ForHost => true,
                Stopped::Starved if ring_on_next_post(queue, mem)? => continue,
                Stopped::Starved => return Ok(notify),
            }
        } else {
            let (more, for_host) = serve_chains(queue, index, mem, core)?;
            notify |= more;
            for_host
        };
        if waiting_for_host {
            // The buffers left in the ring wait for host input, which calls us again:
            // re-checking the ring now would spin on them.
            if event_idx {
                queue.enable_notification(mem)?;
            }
            return Ok(notify);
        }
        if !event_idx || !queue.enable_notification(mem)? {
            return Ok(notify);
        }
    }
}
