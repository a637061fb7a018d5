//! COM1: a 16550A UART (vm-superio's model) on port 0x3f8, raising ISA IRQ 4 through an
//! irqfd. What the guest writes goes to a host writer (stdout, a file, nowhere, or the
//! VM's event channel); what the host enqueues arrives as received data with an interrupt.

use crate::devices::bus::BusDevice;
use std::io::Write;
use vm_superio::{serial::NoEvents, Serial, Trigger};
use vmm_sys_util::eventfd::EventFd;

/// An interrupt line backed by an irqfd: writing the EventFd injects the interrupt.
#[derive(Debug)]
pub struct IrqLine(pub EventFd);

impl Trigger for IrqLine {
    type E = std::io::Error;
    fn trigger(&self) -> std::io::Result<()> {
        self.0.write(1)
    }
}

/// The UART as a bus device.
pub struct SerialDevice {
    uart: Serial<IrqLine, NoEvents, Box<dyn Write + Send>>,
}

impl std::fmt::Debug for SerialDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SerialDevice").finish_non_exhaustive()
    }
}

impl SerialDevice {
    /// A UART that interrupts through `irq` and writes its output to `out`.
    pub fn new(irq: IrqLine, out: Box<dyn Write + Send>) -> Self {
        Self {
            uart: Serial::new(irq, out),
        }
    }

    /// Queues host input for the guest; returns how many bytes fitted in the FIFO.
    pub fn enqueue(&mut self, bytes: &[u8]) -> usize {
        let room = self.uart.fifo_capacity();
        let take = &bytes[..bytes.len().min(room)];
        if take.is_empty() {
            return 0;
        }
        match self.uart.enqueue_raw_bytes(take) {
            Ok(n) => n,
            Err(e) => {
                log::warn!("serial input dropped: {e:?}");
                0
            }
        }
    }

    /// Flushes the host writer (at VM stop).
    pub fn flush(&mut self) {
        let _ = self.uart.writer_mut().flush();
    }
}

impl BusDevice for SerialDevice {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        match (u8::try_from(offset), data) {
            (Ok(off), [byte]) => *byte = self.uart.read(off),
            (_, data) => data.fill(0xff),
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        if let (Ok(off), [byte]) = (u8::try_from(offset), data) {
            if let Err(e) = self.uart.write(off, *byte) {
                log::debug!("serial write: {e:?}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);
    impl Write for Capture {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("capture").extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn transmitted_bytes_reach_the_writer_and_received_bytes_interrupt() {
        let out = Capture::default();
        let irq = EventFd::new(libc::EFD_NONBLOCK).expect("eventfd");
        let mut dev = SerialDevice::new(
            IrqLine(irq.try_clone().expect("dup")),
            Box::new(out.clone()),
        );
        for b in b"hi" {
            dev.write(0, &[*b]);
        }
        assert_eq!(*out.0.lock().expect("capture"), b"hi");
        // Enable the received-data interrupt, then feed input.
        dev.write(1, &[0x01]);
        let _ = irq.read();
        assert_eq!(dev.enqueue(b"ok"), 2);
        assert!(irq.read().is_ok(), "an interrupt was raised");
        let mut b = [0u8];
        dev.read(0, &mut b);
        assert_eq!(b, [b'o']);
    }

    #[test]
    fn wide_accesses_are_ignored() {
        let mut dev = SerialDevice::new(
            IrqLine(EventFd::new(libc::EFD_NONBLOCK).expect("eventfd")),
            Box::new(std::io::sink()),
        );
        let mut b = [0u8; 2];
        dev.read(0, &mut b);
        assert_eq!(b, [0xff, 0xff]);
        dev.write(0, &[1, 2]);
    }
}
