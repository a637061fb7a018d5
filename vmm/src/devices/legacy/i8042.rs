//! The i8042 keyboard controller, reduced to what matters here: its "pulse reset line"
//! command (0xfe on port 0x64), which is how Linux (`reboot=k`) and the FADT reset register
//! restart the machine. Input devices come from virtio, not PS/2.

use crate::devices::bus::BusDevice;
use crate::exit::{ExitRequest, ExitSender};
use vm_superio::{I8042Device, Trigger};

/// Reports the reset line to the control thread.
#[derive(Debug, Clone)]
pub struct ResetLine(pub ExitSender);

impl Trigger for ResetLine {
    type E = ();
    fn trigger(&self) -> Result<(), ()> {
        self.0.send(ExitRequest::Reset);
        Ok(())
    }
}

/// The controller on ports 0x60..=0x64.
pub struct I8042 {
    inner: I8042Device<ResetLine>,
}

impl std::fmt::Debug for I8042 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("I8042").finish_non_exhaustive()
    }
}

impl I8042 {
    /// A controller whose reset command reaches `exits`.
    pub fn new(exits: ExitSender) -> Self {
        Self {
            inner: I8042Device::new(ResetLine(exits)),
        }
    }
}

impl BusDevice for I8042 {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        match (u8::try_from(offset), data) {
            (Ok(off), [byte]) => *byte = self.inner.read(off),
            (_, data) => data.fill(0xff),
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        if let (Ok(off), [byte]) = (u8::try_from(offset), data) {
            let _ = self.inner.write(off, *byte);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::exit_channel;

    #[test]
    fn reset_command_requests_a_reset() {
        let (tx, rx) = exit_channel().expect("channel");
        let mut dev = I8042::new(tx);
        dev.write(0, &[0xfe]); // data port: nothing
        assert!(rx.try_recv().is_none());
        dev.write(4, &[0xfe]);
        assert_eq!(rx.try_recv(), Some(ExitRequest::Reset));
    }
}
