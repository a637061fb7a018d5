use super::*;
use crate::exit::{exit_channel, ExitReceiver};
use std::sync::{Arc, Mutex};

const KEY_ESC: u16 = 1;
const KEY_ENTER: u16 = 28;
const KEY_A: u16 = 30;
const KEY_SYSRQ: u16 = 99;
const KEY_RIGHT: u16 = 106;
const KEY_PAUSE: u16 = 119;

/// A controller wired to an exit channel and an interrupt line that records its calls.
struct Rig {
    dev: I8042,
    exits: ExitReceiver,
    irq: Arc<Mutex<Vec<bool>>>,
}

fn rig() -> Rig {
    let (tx, exits) = exit_channel().expect("channel");
    let irq = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&irq);
    let dev = I8042::with_irq(
        tx,
        Box::new(move |level| log.lock().expect("irq log").push(level)),
    );
    Rig { dev, exits, irq }
}

impl Rig {
    fn command(&mut self, byte: u8) {
        self.dev.write(COMMAND_OFFSET, &[byte]);
    }

    fn data(&mut self, byte: u8) {
        self.dev.write(DATA_OFFSET, &[byte]);
    }

    fn status(&mut self) -> u8 {
        let mut byte = [0];
        self.dev.read(COMMAND_OFFSET, &mut byte);
        byte[0]
    }

    fn read(&mut self) -> u8 {
        let mut byte = [0];
        self.dev.read(DATA_OFFSET, &mut byte);
        byte[0]
    }

    /// Reads while the status says there is output, as the polling drivers do.
    fn drain(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        while self.status() & STS_OBF != 0 {
            out.push(self.read());
            assert!(out.len() <= 64, "output never ends: {out:02x?}");
        }
        out
    }

    /// A controller command with one reply.
    fn ask(&mut self, command: u8) -> u8 {
        self.command(command);
        let reply = self.drain();
        assert_eq!(reply.len(), 1, "reply to {command:#04x}: {reply:02x?}");
        reply[0]
    }

    fn set_command_byte(&mut self, value: u8) {
        self.command(CMD_WRITE_RAM);
        self.data(value);
    }

    /// The interrupt pulses since the last call; each must be `true` then `false`.
    fn pulses(&self) -> usize {
        let mut calls = self.irq.lock().expect("irq log");
        assert_eq!(calls.len() % 2, 0, "a pulse left the line high: {calls:?}");
        for pair in calls.chunks(2) {
            assert_eq!(pair, [true, false]);
        }
        let n = calls.len() / 2;
        calls.clear();
        n
    }
}

#[test]
fn reset_command_requests_a_reset() {
    let (tx, rx) = exit_channel().expect("channel");
    let mut dev = I8042::new(tx);
    dev.write(0, &[0xfe]); // data port: nothing
    assert!(rx.try_recv().is_none());
    dev.write(4, &[0xfe]);
    assert_eq!(rx.try_recv(), Some(ExitRequest::Reset));
}

#[test]
fn power_on_status_and_command_byte() {
    let mut r = rig();
    // Keyboard unlocked, last write a command, nothing to read, system flag clear.
    assert_eq!(r.status(), STS_UNLOCKED | STS_CMD);
    assert_eq!(r.dev.command_byte(), 0x45);
    assert_eq!(r.ask(CMD_READ_RAM), DEFAULT_COMMAND_BYTE);
}

#[test]
fn status_register_tracks_output_system_flag_and_last_write() {
    let mut r = rig();
    r.command(CMD_SELF_TEST);
    let status = r.status();
    assert_eq!(status & STS_OBF, STS_OBF);
    assert_eq!(status & STS_SYS, STS_SYS);
    assert_eq!(status & STS_CMD, STS_CMD);
    assert_eq!(status & 0x02, 0, "the input buffer is never seen full");
    assert_eq!(r.read(), SELF_TEST_OK);
    assert_eq!(r.status() & STS_OBF, 0);
    r.data(KBD_ECHO);
    let status = r.status();
    assert_eq!(status & STS_CMD, 0);
    assert_eq!(status & (STS_OBF | STS_AUX_OBF), STS_OBF);
    assert_eq!(r.read(), KBD_ECHO);
    // The system flag follows the command byte once written.
    r.set_command_byte(0x41);
    assert_eq!(r.status() & STS_SYS, 0);
}

/// `InitKeyboard` of MdeModulePkg/Bus/Isa/Ps2KeyboardDxe, first boot, extended
/// verification on (OVMF's default), with the values it waits for.
#[test]
fn edk2_ps2_keyboard_init_sequence_gets_its_replies() {
    let mut r = rig();
    // Driver start: a read, then "a controller decodes these ports" (parity and timeout
    // bits not both set).
    r.read();
    assert_ne!(r.status() & 0xc0, 0xc0);
    // Nothing to flush; the system flag is clear, so the first-time path.
    assert_eq!(r.status() & (STS_OBF | STS_SYS), 0);
    r.command(CMD_KBD_DISABLE);
    r.command(CMD_AUX_DISABLE);
    assert_eq!(r.drain(), []);
    r.command(CMD_SELF_TEST);
    assert_eq!(r.drain(), [0x55]);
    // Command byte: translation, aux disabled, system flag, both interrupts.
    r.command(CMD_WRITE_RAM);
    r.data(0x67);
    // CheckKeyboardConnect.
    r.data(0xf4);
    assert_eq!(r.drain(), [0xfa]);
    r.command(CMD_KBD_TEST);
    assert_eq!(r.drain(), [0x00]);
    r.data(0xff);
    assert_eq!(r.drain(), [0xfa, 0xaa]);
    r.data(0xf0);
    assert_eq!(r.drain(), [0xfa]);
    r.data(0x02);
    assert_eq!(r.drain(), [0xfa]);
    r.data(0xf4);
    assert_eq!(r.drain(), [0xfa]);
    // UpdateStatusLights, all off.
    r.data(0xed);
    assert_eq!(r.drain(), [0xfa]);
    r.data(0x00);
    assert_eq!(r.drain(), [0xfa]);
    assert_eq!(r.dev.leds(), 0);
    // KeyboardEfiReset's checks: no stuck key, keyboard not locked.
    assert_eq!(r.status() & (STS_OBF | STS_UNLOCKED), STS_UNLOCKED);

    // Its timer reads while OBF is set and AUX OBF is not, and decodes set 1.
    r.dev.key(KEY_A, true);
    r.dev.key(KEY_A, false);
    r.dev.key(KEY_ENTER, true);
    r.dev.key(KEY_ENTER, false);
    assert_eq!(r.status() & (STS_OBF | STS_AUX_OBF), STS_OBF);
    assert_eq!(r.drain(), [0x1e, 0x9e, 0x1c, 0x9c]);
    // Caps Lock pressed: it sets the LEDs.
    r.data(0xed);
    r.data(0x04);
    assert_eq!(r.drain(), [0xfa, 0xfa]);
    assert_eq!(r.dev.leds(), LED_CAPS_LOCK);

    // A later reset finds the system flag set and reads the command byte: aux disabled, so
    // it will not enable the mouse interface.
    assert_ne!(r.status() & STS_SYS, 0);
    assert_eq!(r.ask(CMD_READ_RAM), 0x67);
}

/// Linux's `i8042_probe` (with `i8042.reset`), then `atkbd_connect` on the translated port.
#[test]
fn linux_i8042_probe_finds_the_keyboard_and_no_aux_port() {
    let mut r = rig();
    // i8042_controller_check: the flush ends within I8042_BUFFER_SIZE bytes.
    assert!(r.drain().len() <= 16);
    // i8042_controller_selftest.
    assert_eq!(r.ask(CMD_SELF_TEST), 0x55);
    // i8042_controller_init: read the CTR until two reads agree, disable the keyboard
    // port and its interrupt, keep translation, write it back, flush.
    let ctr = r.ask(CMD_READ_RAM);
    assert_eq!(r.ask(CMD_READ_RAM), ctr);
    assert_ne!(ctr & CTR_TRANSLATE, 0, "a translated port (SERIO_8042_XL)");
    assert_ne!(r.status() & STS_UNLOCKED, 0, "no keylock warning");
    let mut ctr = (ctr | CTR_KBD_DISABLED) & !CTR_KBD_INT;
    r.set_command_byte(ctr);
    assert_eq!(r.drain(), []);
    r.pulses();

    // i8042_check_aux: the loopback answers from the aux side...
    r.command(CMD_WRITE_AUX_OUTPUT);
    r.data(0x5a);
    assert_eq!(r.status() & STS_AUX_OBF, STS_AUX_OBF);
    assert_eq!(r.drain(), [0x5a]);
    // ...the aux interface can be disabled...
    r.command(CMD_AUX_DISABLE);
    assert_ne!(r.ask(CMD_READ_RAM) & CTR_AUX_DISABLED, 0);
    // ...but not enabled: i8042_toggle_aux(true) fails after its 100 reads, no aux port.
    r.command(CMD_AUX_ENABLE);
    for _ in 0..100 {
        assert_ne!(r.ask(CMD_READ_RAM) & CTR_AUX_DISABLED, 0);
    }
    // Had the loopback failed, the interface test would have said the same.
    let test = r.ask(CMD_AUX_TEST);
    assert!(test != 0x00 && test != 0xfa && test != 0xff, "{test:#04x}");
    assert_eq!(r.pulses(), 0, "nothing on IRQ 1 while its interrupt is off");

    // i8042_enable_kbd_port.
    ctr = (ctr & !CTR_KBD_DISABLED) | CTR_KBD_INT;
    r.set_command_byte(ctr);

    // atkbd_probe: GETID (AB 83 through translation), then reset-and-disable.
    r.data(0xf2);
    assert_eq!(r.drain(), [0xfa, 0xab, 0x41]);
    r.data(0xf5);
    assert_eq!(r.drain(), [0xfa]);
    // atkbd_select_set: translated, so set 2 and nothing sent. atkbd_reset_state:
    r.data(0xed);
    assert_eq!(r.drain(), [0xfa]);
    r.data(0x00);
    assert_eq!(r.drain(), [0xfa]);
    r.data(0xf3);
    assert_eq!(r.drain(), [0xfa]);
    r.data(0x00);
    assert_eq!(r.drain(), [0xfa]);
    // Keys are not scanned until atkbd_activate.
    r.dev.key(KEY_A, true);
    assert_eq!(r.drain(), []);
    r.data(0xf4);
    assert_eq!(r.drain(), [0xfa]);
    assert_eq!(r.pulses(), 9, "one interrupt per byte");

    r.dev.key(KEY_ESC, true);
    assert_eq!(r.pulses(), 1);
    assert_eq!(r.drain(), [0x01]);
}

/// `atkbd` on a port Linux left untranslated (`i8042.direct`, or firmware that did), with
/// a full reset (`atkbd.reset`) and an explicit set 2.
#[test]
fn linux_atkbd_on_a_raw_port_reads_ab83_and_set_2() {
    let mut r = rig();
    r.set_command_byte(CTR_KBD_INT | CTR_SYS | CTR_AUX_DISABLED);
    r.data(0xff);
    assert_eq!(r.drain(), [0xfa, 0xaa]);
    r.data(0xf2);
    assert_eq!(r.drain(), [0xfa, 0xab, 0x83]);
    r.data(0xf0);
    r.data(0x02);
    assert_eq!(r.drain(), [0xfa, 0xfa]);
    r.data(0xf0);
    r.data(0x00);
    assert_eq!(r.drain(), [0xfa, 0xfa, 0x02]);
    r.data(0xed);
    r.data(LED_NUM_LOCK);
    assert_eq!(r.drain(), [0xfa, 0xfa]);
    assert_eq!(r.dev.leds(), LED_NUM_LOCK);
    r.data(0xf4);
    assert_eq!(r.drain(), [0xfa]);
    r.dev.key(KEY_A, true);
    r.dev.key(KEY_A, false);
    assert_eq!(r.drain(), [0x1c, 0xf0, 0x1c]);
}

#[test]
fn key_a_is_1e_9e_translated_and_1c_f0_1c_untranslated() {
    let mut r = rig();
    r.dev.key(KEY_A, true);
    r.dev.key(KEY_A, false);
    assert_eq!(r.drain(), [0x1e, 0x9e]);
    r.set_command_byte(DEFAULT_COMMAND_BYTE & !CTR_TRANSLATE);
    r.dev.key(KEY_A, true);
    r.dev.key(KEY_A, false);
    assert_eq!(r.drain(), [0x1c, 0xf0, 0x1c]);
}

#[test]
fn right_arrow_is_an_e0_key_in_both_sets() {
    let mut r = rig();
    r.dev.key(KEY_RIGHT, true);
    r.dev.key(KEY_RIGHT, false);
    assert_eq!(r.drain(), [0xe0, 0x4d, 0xe0, 0xcd]);
    r.set_command_byte(DEFAULT_COMMAND_BYTE & !CTR_TRANSLATE);
    r.dev.key(KEY_RIGHT, true);
    r.dev.key(KEY_RIGHT, false);
    assert_eq!(r.drain(), [0xe0, 0x74, 0xe0, 0xf0, 0x74]);
}

#[test]
fn print_screen_and_pause_send_their_long_sequences() {
    let mut r = rig();
    r.dev.key(KEY_SYSRQ, true);
    r.dev.key(KEY_SYSRQ, false);
    assert_eq!(r.drain(), [0xe0, 0x2a, 0xe0, 0x37, 0xe0, 0xb7, 0xe0, 0xaa]);
    r.dev.key(KEY_PAUSE, true);
    r.dev.key(KEY_PAUSE, false);
    assert_eq!(r.drain(), [0xe1, 0x1d, 0x45, 0xe1, 0x9d, 0xc5]);
    r.set_command_byte(DEFAULT_COMMAND_BYTE & !CTR_TRANSLATE);
    r.dev.key(KEY_PAUSE, true);
    assert_eq!(r.drain(), [0xe1, 0x14, 0x77, 0xe1, 0xf0, 0x14, 0xf0, 0x77]);
}

/// Linux's evdev codes 1-88 are the XT (set 1) scan codes, so translation must give each
/// key's own code back: this checks the whole main block and keypad of the table.
#[test]
fn every_standard_key_translates_to_its_set_1_code() {
    for code in (1..=83).chain(86..=88) {
        let key = set2_key(code).unwrap_or_else(|| panic!("key {code} has no scan code"));
        let make = u8::try_from(code).expect("small code");
        assert_eq!(to_set1(&set2_sequence(key, true)), [make], "key {code}");
        assert_eq!(
            to_set1(&set2_sequence(key, false)),
            [make | 0x80],
            "key {code}"
        );
    }
    // The E0 keys of a 104/105-key keyboard, with their set 1 codes.
    for (code, set1) in [
        (96, 0x1c),  // Keypad Enter
        (97, 0x1d),  // Right Ctrl
        (98, 0x35),  // Keypad /
        (100, 0x38), // Right Alt
        (102, 0x47), // Home
        (103, 0x48), // Up
        (104, 0x49), // Page Up
        (105, 0x4b), // Left
        (106, 0x4d), // Right
        (107, 0x4f), // End
        (108, 0x50), // Down
        (109, 0x51), // Page Down
        (110, 0x52), // Insert
        (111, 0x53), // Delete
        (125, 0x5b), // Left Windows
        (126, 0x5c), // Right Windows
        (127, 0x5d), // Menu
    ] {
        let key = set2_key(code).unwrap_or_else(|| panic!("key {code} has no scan code"));
        assert_eq!(to_set1(&set2_sequence(key, true)), [0xe0, set1], "{code}");
        assert_eq!(
            to_set1(&set2_sequence(key, false)),
            [0xe0, set1 | 0x80],
            "{code}"
        );
    }
    assert!(set2_key(KEY_SYSRQ).is_some() && set2_key(KEY_PAUSE).is_some());
}

#[test]
fn keyboard_asked_for_set_1_sends_set_1_untranslated() {
    let mut r = rig();
    r.set_command_byte(DEFAULT_COMMAND_BYTE & !CTR_TRANSLATE);
    r.data(0xf0);
    r.data(0x01);
    r.data(0xf0);
    r.data(0x00);
    assert_eq!(r.drain(), [0xfa, 0xfa, 0xfa, 0xfa, 0x01]);
    r.dev.key(KEY_RIGHT, true);
    r.dev.key(KEY_RIGHT, false);
    assert_eq!(r.drain(), [0xe0, 0x4d, 0xe0, 0xcd]);
    // Set 3 is not offered; the keyboard stays in set 1.
    r.data(0xf0);
    r.data(0x03);
    assert_eq!(r.drain(), [0xfa, 0xfe]);
    r.data(0xf0);
    r.data(0x00);
    assert_eq!(r.drain(), [0xfa, 0xfa, 0x01]);
}

#[test]
fn get_scancode_set_reply_goes_through_translation() {
    let mut r = rig();
    r.data(0xf0);
    r.data(0x00);
    // Both bytes acknowledged, then set 2's "2" read through the 8042's table, as on real
    // hardware and QEMU.
    assert_eq!(r.drain(), [0xfa, 0xfa, 0x41]);
}

#[test]
fn keys_are_dropped_while_the_keyboard_is_disabled() {
    let mut r = rig();
    // The keyboard's own disable (0xf5).
    r.data(0xf5);
    assert_eq!(r.drain(), [0xfa]);
    r.dev.key(KEY_A, true);
    assert_eq!(r.drain(), []);
    r.data(0xf4);
    assert_eq!(r.drain(), [0xfa]);
    r.dev.key(KEY_A, true);
    assert_eq!(r.drain(), [0x1e]);
    // The controller's (0xad).
    r.command(CMD_KBD_DISABLE);
    r.dev.key(KEY_A, false);
    assert_eq!(r.status() & STS_OBF, 0);
    r.command(CMD_KBD_ENABLE);
    assert_eq!(r.drain(), []);
    r.dev.key(KEY_A, false);
    assert_eq!(r.drain(), [0x9e]);
}

#[test]
fn writing_to_the_keyboard_enables_its_interface() {
    let mut r = rig();
    r.command(CMD_KBD_DISABLE);
    r.data(KBD_ECHO);
    assert_eq!(r.drain(), [KBD_ECHO]);
    assert_eq!(r.ask(CMD_READ_RAM) & CTR_KBD_DISABLED, 0);
}

#[test]
fn irq_is_raised_only_when_keyboard_interrupts_are_enabled() {
    let mut r = rig();
    r.set_command_byte(DEFAULT_COMMAND_BYTE & !CTR_KBD_INT);
    r.pulses();
    r.dev.key(KEY_A, true);
    r.dev.key(KEY_A, false);
    assert_eq!(r.pulses(), 0);
    assert_ne!(r.status() & STS_OBF, 0);
    // Enabling the interrupt with a byte waiting raises it.
    r.set_command_byte(DEFAULT_COMMAND_BYTE);
    assert_eq!(r.pulses(), 1);
    // Reading it brings up the next byte, with its own edge.
    assert_eq!(r.read(), 0x1e);
    assert_eq!(r.pulses(), 1);
    // Status reads do not.
    r.status();
    assert_eq!(r.pulses(), 0);
    assert_eq!(r.read(), 0x9e);
    assert_eq!(r.pulses(), 0);
    // A read with nothing new returns the last byte and raises nothing.
    assert_eq!(r.read(), 0x9e);
    assert_eq!(r.pulses(), 0);
    // Controller replies come through IRQ 1 too; aux bytes do not.
    r.command(CMD_KBD_TEST);
    assert_eq!(r.pulses(), 1);
    r.drain();
    r.command(CMD_WRITE_AUX_OUTPUT);
    r.data(0x12);
    assert_eq!(r.pulses(), 0);
    assert_eq!(r.drain(), [0x12]);
}

#[test]
fn d2_puts_a_byte_in_the_keyboard_output_buffer() {
    let mut r = rig();
    r.command(CMD_WRITE_KBD_OUTPUT);
    r.data(0x9c);
    assert_eq!(r.pulses(), 1);
    assert_eq!(r.status() & (STS_OBF | STS_AUX_OBF), STS_OBF);
    // Not translated: it comes from the controller, not the keyboard.
    assert_eq!(r.drain(), [0x9c]);
}

#[test]
fn output_port_write_with_bit_0_clear_requests_a_reset() {
    let mut r = rig();
    assert_eq!(r.ask(CMD_READ_OUTPUT_PORT), OUT_DEFAULT);
    // A20 on, CPU running: nothing.
    r.command(CMD_WRITE_OUTPUT_PORT);
    r.data(0xdf);
    assert!(r.exits.try_recv().is_none());
    r.command(CMD_WRITE_OUTPUT_PORT);
    r.data(0xdd);
    assert!(r.exits.try_recv().is_none());
    assert_eq!(
        r.ask(CMD_READ_OUTPUT_PORT) & (OUT_RESET | OUT_A20),
        OUT_RESET
    );
    // Bit 0 clear holds the CPU in reset.
    r.command(CMD_WRITE_OUTPUT_PORT);
    r.data(0xfe);
    assert_eq!(r.exits.try_recv(), Some(ExitRequest::Reset));
    assert!(r.exits.try_recv().is_none());
}

#[test]
fn pulse_commands_reset_only_through_bit_0() {
    let mut r = rig();
    for command in 0xf0..=0xff_u8 {
        r.command(command);
        let reset = r.exits.try_recv() == Some(ExitRequest::Reset);
        assert_eq!(reset, command & 1 == 0, "{command:#04x}");
    }
    assert!(r.exits.try_recv().is_none());
    assert_eq!(r.drain(), []);
}

#[test]
fn full_output_queue_stays_bounded() {
    let mut r = rig();
    for _ in 0..1000 {
        r.dev.key(KEY_RIGHT, true);
        r.dev.key(KEY_RIGHT, false);
    }
    // The keyboard still answers a command with its buffer full of keys.
    r.data(KBD_ECHO);
    let out = r.drain();
    assert!(
        out.len() <= 16,
        "Linux's flush stops at 16 bytes: {}",
        out.len()
    );
    assert_eq!(out.last(), Some(&KBD_ECHO));
    // Whole keys only: every E0 is followed by its code.
    let keys = out.get(..out.len() - 1).unwrap_or_default();
    assert_eq!(keys.len() % 2, 0);
    // Controller replies are bounded too.
    for _ in 0..1000 {
        r.command(CMD_WRITE_KBD_OUTPUT);
        r.data(0x42);
        r.command(CMD_READ_RAM);
    }
    assert!(r.drain().len() <= CONTROLLER_QUEUE_CAPACITY + 1);
}

#[test]
fn keyboard_echo_resend_identify_and_unknown_commands() {
    let mut r = rig();
    r.data(KBD_ECHO);
    assert_eq!(r.drain(), [0xee]);
    r.data(KBD_RESEND);
    assert_eq!(r.drain(), [0xee]);
    r.data(0xe8);
    assert_eq!(r.drain(), [0xfe]);
    r.data(0x00);
    assert_eq!(r.drain(), [0xfe]);
    // A command byte where an argument was expected is taken as a command.
    r.data(0xed);
    r.data(0xf2);
    assert_eq!(r.drain(), [0xfa, 0xfa, 0xab, 0x41]);
    r.data(0xf6);
    assert_eq!(r.drain(), [0xfa]);
}

#[test]
fn keyboard_reset_clears_leds_and_its_buffer() {
    let mut r = rig();
    r.data(0xed);
    r.data(0x07);
    assert_eq!(r.drain(), [0xfa, 0xfa]);
    assert_eq!(r.dev.leds(), LED_SCROLL_LOCK | LED_NUM_LOCK | LED_CAPS_LOCK);
    r.dev.key(KEY_A, true);
    r.dev.key(KEY_A, false);
    r.data(0xff);
    // The byte already in the controller stays; the keyboard's own are gone.
    assert_eq!(r.drain(), [0x1e, 0xfa, 0xaa]);
    assert_eq!(r.dev.leds(), 0);
}

#[test]
fn controller_reset_restores_power_on_state() {
    let mut r = rig();
    r.command(CMD_SELF_TEST);
    r.set_command_byte(0x00);
    r.data(0xf5);
    r.dev.reset();
    assert_eq!(r.status(), STS_UNLOCKED | STS_CMD);
    assert_eq!(r.dev.command_byte(), DEFAULT_COMMAND_BYTE);
    r.pulses();
    r.dev.key(KEY_A, true);
    assert_eq!(r.pulses(), 1, "the interrupt line survives");
    assert_eq!(r.drain(), [0x1e]);
}

#[test]
fn controller_ram_bytes_read_back() {
    let mut r = rig();
    r.command(CMD_WRITE_RAM + 5);
    r.data(0xa5);
    assert_eq!(r.ask(CMD_READ_RAM + 5), 0xa5);
    assert_eq!(r.ask(CMD_READ_RAM), DEFAULT_COMMAND_BYTE);
    assert_eq!(r.ask(CMD_READ_INPUT_PORT), INPUT_PORT);
}

#[test]
fn garbage_never_panics() {
    let mut r = rig();
    for command in 0..=0xff_u8 {
        r.command(command);
        r.data(command.wrapping_mul(37));
        r.data(command);
        r.command(command.rotate_left(3));
        for offset in 0..8 {
            for width in [0, 1, 2, 3, 4, 8] {
                let mut buf = vec![0; width];
                r.dev.read(offset, &mut buf);
                r.dev.write(offset, &buf);
            }
        }
        r.dev.read(u64::MAX, &mut [0]);
        r.dev.write(u64::MAX, &[command]);
        r.dev.key(u16::from(command) * 257, command & 1 == 0);
        r.drain();
    }
    for code in (0..=u16::MAX).step_by(7) {
        r.dev.key(code, true);
        r.dev.key(code, false);
    }
    r.drain();
    while r.exits.try_recv().is_some() {}

    // Writes to 0x61-0x63 change nothing, and read as zero.
    r.dev.reset();
    for offset in 1..4 {
        r.dev.write(offset, &[CMD_SELF_TEST]);
        let mut byte = [0xff];
        r.dev.read(offset, &mut byte);
        assert_eq!(byte, [0]);
    }
    // Wide accesses read as all ones and are ignored.
    let mut wide = [0; 2];
    r.dev.read(COMMAND_OFFSET, &mut wide);
    assert_eq!(wide, [0xff, 0xff]);
    r.dev.write(COMMAND_OFFSET, &[0xfe, 0xfe]);
    assert!(r.exits.try_recv().is_none());
    assert_eq!(r.status(), STS_UNLOCKED | STS_CMD);
}
