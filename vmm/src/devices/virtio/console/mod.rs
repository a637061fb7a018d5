//! virtio-console: one port, the guest's `hvc0`. What the guest transmits goes to a host
//! writer (stdout, a file); what the host types is queued and handed to the guest's receive
//! buffers as they are available. Receive buffers wait in the ring until there is input:
//! the core says when it is [`DeviceCore::ready`] for them, and signals its input EventFd.

pub mod endpoint;

use super::{
    Chain, DeviceCore, VIRTIO_F_VERSION_1, VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC,
};
use crate::devices::bus::lock;
use crate::memory::GuestMemory;
use std::collections::VecDeque;
use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use vmm_sys_util::eventfd::EventFd;

/// Receive queue (device to driver).
pub const RX_QUEUE: usize = 0;
/// Transmit queue (driver to device).
pub const TX_QUEUE: usize = 1;
const QUEUE_SIZE: u16 = 256;
/// Most host input kept waiting for the guest; beyond it, input is dropped.
pub const INPUT_CAPACITY: usize = 64 * 1024;

/// The host side's way to type into the console (cloneable, any thread).
#[derive(Debug, Clone)]
pub struct ConsoleInput {
    pending: Arc<Mutex<VecDeque<u8>>>,
    ready: Arc<EventFd>,
}

impl ConsoleInput {
    /// Queues bytes for the guest; returns how many fitted.
    pub fn push(&self, bytes: &[u8]) -> usize {
        let mut p = lock(&self.pending);
        let n = bytes.len().min(INPUT_CAPACITY - p.len());
        p.extend(&bytes[..n]);
        drop(p);
        if n > 0 {
            let _ = self.ready.write(1);
        }
        n
    }
}

/// The console device.
pub struct Console {
    output: Box<dyn Write + Send>,
    input: ConsoleInput,
}

impl std::fmt::Debug for Console {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Console").finish_non_exhaustive()
    }
}

impl Console {
    /// A console writing guest output to `output`; the returned handle types into it.
    pub fn new(output: Box<dyn Write + Send>) -> std::io::Result<(Self, ConsoleInput)> {
        let input = ConsoleInput {
            pending: Arc::new(Mutex::new(VecDeque::new())),
            ready: Arc::new(EventFd::new(libc::EFD_NONBLOCK)?),
        };
        Ok((
            Self {
                output,
                input: input.clone(),
            },
            input,
        ))
    }
}

impl Console {
    /// A handle that types into this console.
    pub fn input(&self) -> ConsoleInput {
        self.input.clone()
    }

    /// Whether host input is waiting for the guest.
    pub fn has_input(&self) -> bool {
        !lock(&self.input.pending).is_empty()
    }
}

impl DeviceCore for Console {
    fn device_type(&self) -> u32 {
        3
    }
    fn num_queues(&self) -> usize {
        2
    }
    fn max_queue_size(&self) -> u16 {
        QUEUE_SIZE
    }
    fn features(&self) -> u64 {
        VIRTIO_F_VERSION_1 | VIRTIO_RING_F_EVENT_IDX | VIRTIO_RING_F_INDIRECT_DESC
    }
    /// `struct virtio_console_config`: cols, rows, max_nr_ports, emerg_wr (unused here).
    fn config(&self) -> Vec<u8> {
        let mut c = vec![0u8; 12];
        c[4..8].copy_from_slice(&1u32.to_le_bytes());
        c
    }

    fn ready(&self, queue: usize) -> bool {
        queue != RX_QUEUE || !lock(&self.input.pending).is_empty()
    }

    fn input_event(&self) -> Option<&EventFd> {
        Some(&self.input.ready)
    }

    fn process(&mut self, queue: usize, mem: &GuestMemory, chain: Chain<'_>) -> u32 {
        match queue {
            RX_QUEUE => {
                let Ok(mut writer) = chain.writer(mem) else {
                    return 0;
                };
                let mut pending = lock(&self.input.pending);
                let n = writer.available_bytes().min(pending.len());
                let bytes: Vec<u8> = pending.drain(..n).collect();
                drop(pending);
                match writer.write_all(&bytes) {
                    Ok(()) => u32::try_from(n).unwrap_or(0),
                    Err(_) => 0,
                }
            }
            TX_QUEUE => {
                let Ok(mut reader) = chain.reader(mem) else {
                    return 0;
                };
                let mut buf = Vec::with_capacity(reader.available_bytes());
                if reader.read_to_end(&mut buf).is_ok() {
                    let _ = self.output.write_all(&buf);
                    let _ = self.output.flush();
                }
                0
            }
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::virtio::serve_queue;
    use virtio_queue::desc::{split::Descriptor, RawDescriptor};
    use virtio_queue::mock::MockSplitQueue;
    use virtio_queue::{Queue, QueueT};
    use vm_memory::{Bytes, GuestAddress};

    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);
    impl Write for Capture {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn queue_with(mem: &GuestMemory, addr: u64, len: u32, flags: u16) -> Queue {
        let vq = MockSplitQueue::new(mem, 16);
        vq.build_desc_chain(&[RawDescriptor::from(Descriptor::new(addr, len, flags, 0))])
            .unwrap();
        vq.create_queue().unwrap()
    }

    #[test]
    fn guest_output_reaches_the_host_writer() {
        let mem = GuestMemory::from_ranges(&[(GuestAddress(0), 0x10_0000)]).unwrap();
        let out = Capture::default();
        let (console, _) = Console::new(Box::new(out.clone())).unwrap();
        let core = Mutex::new(console);
        mem.write_slice(b"login: ", GuestAddress(0x8000)).unwrap();
        let mut q = queue_with(&mem, 0x8000, 7, 0);
        assert!(serve_queue(&mut q, TX_QUEUE, &mem, &core).unwrap());
        assert_eq!(*out.0.lock().unwrap(), b"login: ");
    }

    #[test]
    fn receive_buffers_wait_for_input_then_get_it() {
        let mem = GuestMemory::from_ranges(&[(GuestAddress(0), 0x10_0000)]).unwrap();
        let (console, input) = Console::new(Box::new(std::io::sink())).unwrap();
        let core = Mutex::new(console);
        let mut q = queue_with(&mem, 0x9000, 64, 2);
        assert!(
            !serve_queue(&mut q, RX_QUEUE, &mem, &core).unwrap(),
            "no input: the buffer stays"
        );
        assert_eq!(q.next_used(), 0);
        assert_eq!(input.push(b"ls\n"), 3);
        assert!(
            lock(&core).input_event().unwrap().read().is_ok(),
            "input signalled"
        );
        assert!(serve_queue(&mut q, RX_QUEUE, &mem, &core).unwrap());
        let mut got = [0u8; 3];
        mem.read_slice(&mut got, GuestAddress(0x9000)).unwrap();
        assert_eq!(&got, b"ls\n");
        assert!(!lock(&core).ready(RX_QUEUE));
    }

    #[test]
    fn waiting_receive_buffers_do_not_spin_with_event_idx() {
        let mem = GuestMemory::from_ranges(&[(GuestAddress(0), 0x10_0000)]).unwrap();
        let (console, _input) = Console::new(Box::new(std::io::sink())).unwrap();
        let core = Mutex::new(console);
        let mut q = queue_with(&mem, 0x9000, 64, 2);
        q.set_event_idx(true);
        // Before the fix this call never returned: the ring still held a buffer.
        assert!(!serve_queue(&mut q, RX_QUEUE, &mem, &core).unwrap());
        assert_eq!(q.next_used(), 0);
    }

    #[test]
    fn input_beyond_capacity_is_refused() {
        let (_console, input) = Console::new(Box::new(std::io::sink())).unwrap();
        assert_eq!(input.push(&vec![b'x'; INPUT_CAPACITY + 10]), INPUT_CAPACITY);
        assert_eq!(input.push(b"more"), 0);
    }
}
