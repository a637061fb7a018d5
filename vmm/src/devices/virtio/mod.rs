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
    let batch_limit = lock(core).batch_limit().max(1);
    let mut notify = false;
    loop {
        if event_idx {
            queue.disable_notification(mem)?;
        }
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
