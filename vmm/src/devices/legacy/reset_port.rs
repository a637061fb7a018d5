//! The i8042's reset line alone, for machines that describe no PS/2 keyboard: a direct
//! Linux boot, whose keyboard is virtio. Linux (`reboot=k`) and the FADT's reset register
//! still pulse the line through port 0x64; every other command goes unanswered, and the
//! status register reads empty, so a probing driver finds no controller and moves on.

use crate::devices::bus::BusDevice;
use crate::exit::{ExitRequest, ExitSender};

/// The "pulse reset line" command.
const PULSE_RESET: u8 = 0xfe;

/// Ports 0x60..=0x64, reset only.
#[derive(Debug)]
pub struct ResetPort {
    exits: ExitSender,
}

impl ResetPort {
    /// A port whose reset command reaches `exits`.
    pub fn new(exits: ExitSender) -> Self {
        Self { exits }
    }
}

impl BusDevice for ResetPort {
    fn read(&mut self, _offset: u64, data: &mut [u8]) {
        data.fill(0);
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        if offset == 4 && data == [PULSE_RESET] {
            self.exits.send(ExitRequest::Reset);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::exit_channel;

    #[test]
    fn only_the_reset_command_does_anything() {
        let (tx, rx) = exit_channel().expect("channel");
        let mut port = ResetPort::new(tx);
        port.write(4, &[0xaa]); // self-test: unanswered
        let mut status = [0xffu8];
        port.read(4, &mut status);
        assert_eq!(status, [0], "nothing to read, nothing pending");
        port.write(0, &[PULSE_RESET]); // data port: not a command
        assert!(rx.try_recv().is_none());
        port.write(4, &[PULSE_RESET]);
        assert_eq!(rx.try_recv(), Some(ExitRequest::Reset));
    }
}
