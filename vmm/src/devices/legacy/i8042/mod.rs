//! The i8042 keyboard controller with a PS/2 keyboard behind it, on ports 0x60 (data) and
//! 0x64 (status and commands), so that UEFI firmware (edk2's `Ps2KeyboardDxe`) and Linux
//! (`i8042` + `atkbd`) find a keyboard there and the VMM can type into the guest with
//! [`I8042::key`]. It follows QEMU's `hw/input/pckbd.c` and `ps2.c`, which those drivers
//! are tested against, and a real controller where QEMU cuts corners.
//!
//! The controller's "pulse output port" commands (0xf0-0xff with bit 0 clear, 0xfe being
//! the usual one) and an output-port write with bit 0 clear (0xd1) reset the machine: that is
//! how Linux's `reboot=k` and the FADT reset register restart it.
//!
//! The keyboard speaks scan code set 2 (or 1 on request). When the command byte's
//! translation bit is set, as firmware leaves it, the controller turns every byte coming
//! from the keyboard into set 1, as a real 8042 does: that is what edk2's driver decodes and
//! what Linux calls a translated port.
//!
//! There is no mouse. The auxiliary port answers as absent: its loopback command works (it
//! is part of the controller) but its interface cannot be enabled (0xa8 leaves the "aux
//! disabled" bit set, the sign of a single-channel controller) and its interface test
//! fails, so Linux's `i8042_check_aux` gives up within a few milliseconds and no guest waits
//! for a mouse that will not answer. Bytes sent to it (0xd4) are dropped.
//!
//! What the guests do with it:
//! - edk2 `InitKeyboard` (first boot, system flag clear): 0xad, 0xa7, 0xaa (waits for 0x55),
//!   0x60 0x67; then, with extended verification, 0xf4 (FA), 0xab (00), 0xff (FA AA),
//!   0xf0 0x02 (FA, FA), 0xf4 (FA), 0xed 0x00 (FA, FA). It polls; it decodes set 1.
//! - Linux `i8042`: flushes (giving up, "no controller", past 16 bytes), reads the command
//!   byte until two reads agree, writes it with the keyboard disabled, probes the aux port
//!   (0xd3 loopback, 0xa7/0xa8 with command byte reads), then enables the keyboard port and
//!   its interrupt. `atkbd` then sends 0xf2 (FA AB 83, or AB 41 through translation), 0xf5,
//!   0xed 0x00, 0xf3 0x00 and 0xf4, and takes keys from IRQ 1.
//!
//! Each byte that reaches the output buffer with keyboard interrupts enabled (command byte
//! bit 0) raises IRQ 1 as an edge: the interrupt callback is called with `true` then `false`.

#[cfg(test)]
mod tests;

use crate::devices::bus::BusDevice;
use crate::exit::{ExitRequest, ExitSender};
use std::collections::VecDeque;

/// Drives ISA IRQ 1 (edge triggered): called with `true` then `false` for each byte that
/// lands in the output buffer while keyboard interrupts are enabled.
pub type IrqLine = Box<dyn Fn(bool) + Send>;

/// The command byte after power-on: keyboard interrupt on, system flag, set 1 translation,
/// keyboard interface enabled (0x45). QEMU resets it to 0x03 and leaves the rest to its
/// BIOS; with no BIOS (a kernel booted directly) this is what a PC's firmware would have
/// left, and translation on makes Linux drive the keyboard as it does on real PCs.
pub const DEFAULT_COMMAND_BYTE: u8 = CTR_KBD_INT | CTR_SYS | CTR_TRANSLATE;

/// [`I8042::leds`] bits, as the guest sets them with the keyboard's 0xed command.
pub const LED_SCROLL_LOCK: u8 = 1 << 0;
/// Num Lock's LED.
pub const LED_NUM_LOCK: u8 = 1 << 1;
/// Caps Lock's LED.
pub const LED_CAPS_LOCK: u8 = 1 << 2;

const DATA_OFFSET: u64 = 0;
const COMMAND_OFFSET: u64 = 4;

// Status register (read from port 0x64).
const STS_OBF: u8 = 1 << 0;
const STS_SYS: u8 = 1 << 2;
const STS_CMD: u8 = 1 << 3;
const STS_UNLOCKED: u8 = 1 << 4;
const STS_AUX_OBF: u8 = 1 << 5;

// Command byte (byte 0 of the controller's RAM).
const CTR_KBD_INT: u8 = 1 << 0;
const CTR_SYS: u8 = 1 << 2;
const CTR_KBD_DISABLED: u8 = 1 << 4;
const CTR_AUX_DISABLED: u8 = 1 << 5;
const CTR_TRANSLATE: u8 = 1 << 6;

// Output port (0xd0/0xd1).
const OUT_RESET: u8 = 1 << 0;
const OUT_A20: u8 = 1 << 1;
const OUT_KBD_OBF: u8 = 1 << 4;
const OUT_AUX_OBF: u8 = 1 << 5;
/// Out of reset, A20 on, unused lines and the keyboard clock and data lines high (QEMU's
/// value, 0xcf, before the buffer-full bits).
const OUT_DEFAULT: u8 = 0xcf;

// Controller commands (port 0x64).
const CMD_READ_RAM: u8 = 0x20; // ..=0x3f; 0x20 reads the command byte
const CMD_WRITE_RAM: u8 = 0x60; // ..=0x7f; 0x60 writes the command byte
const CMD_AUX_DISABLE: u8 = 0xa7;
const CMD_AUX_ENABLE: u8 = 0xa8;
const CMD_AUX_TEST: u8 = 0xa9;
const CMD_SELF_TEST: u8 = 0xaa;
const CMD_KBD_TEST: u8 = 0xab;
const CMD_KBD_DISABLE: u8 = 0xad;
const CMD_KBD_ENABLE: u8 = 0xae;
const CMD_READ_INPUT_PORT: u8 = 0xc0;
const CMD_READ_OUTPUT_PORT: u8 = 0xd0;
const CMD_WRITE_OUTPUT_PORT: u8 = 0xd1;
const CMD_WRITE_KBD_OUTPUT: u8 = 0xd2;
const CMD_WRITE_AUX_OUTPUT: u8 = 0xd3;
const CMD_WRITE_AUX: u8 = 0xd4;
const CMD_A20_DISABLE: u8 = 0xdd;
const CMD_A20_ENABLE: u8 = 0xdf;
const CMD_PULSE: u8 = 0xf0; // ..=0xff: pulse the output-port bits 0-3 that are clear

// Controller replies.
const SELF_TEST_OK: u8 = 0x55;
const INTERFACE_OK: u8 = 0x00;
/// The aux interface test's "clock line stuck high": nothing answers on that port.
const AUX_CLOCK_STUCK_HIGH: u8 = 0x02;
/// Input port: keyboard not inhibited.
const INPUT_PORT: u8 = 0x80;

// Keyboard commands and replies.
const KBD_SET_LEDS: u8 = 0xed;
const KBD_ECHO: u8 = 0xee;
const KBD_SCANCODE_SET: u8 = 0xf0;
const KBD_IDENTIFY: u8 = 0xf2;
const KBD_TYPEMATIC: u8 = 0xf3;
const KBD_ENABLE: u8 = 0xf4;
const KBD_DISABLE: u8 = 0xf5;
const KBD_DEFAULTS: u8 = 0xf6;
const KBD_RESEND: u8 = 0xfe;
const KBD_RESET: u8 = 0xff;
const KBD_ACK: u8 = 0xfa;
const KBD_NAK: u8 = 0xfe;
const KBD_SELF_TEST_OK: u8 = 0xaa;
/// An MF2 keyboard.
const KBD_ID: [u8; 2] = [0xab, 0x83];

const BREAK_PREFIX: u8 = 0xf0;
const EXTENDED_PREFIX: u8 = 0xe0;

/// What the keyboard holds for the controller. With the byte in the output buffer that
/// makes 16, what a real keyboard buffers and no more than Linux's `i8042_flush` reads
/// before it decides there is no controller.
const KBD_QUEUE_CAPACITY: usize = 15;
/// Room kept for command replies (0xf2's three bytes are the longest): keys stop short of it.
const KBD_REPLY_ROOM: usize = 3;
/// Controller replies waiting for the output buffer (a guest that never reads them).
const CONTROLLER_QUEUE_CAPACITY: usize = 8;

/// The 8042's translation from set 2 to set 1, for bytes below 0x80 (above, only 0x83 and
/// 0x84 change). A set 2 break prefix (0xf0) sets bit 7 of the next translated byte.
const SET2_TO_SET1: [u8; 128] = [
    0xff, 0x43, 0x41, 0x3f, 0x3d, 0x3b, 0x3c, 0x58, 0x64, 0x44, 0x42, 0x40, 0x3e, 0x0f, 0x29, 0x59,
    0x65, 0x38, 0x2a, 0x70, 0x1d, 0x10, 0x02, 0x5a, 0x66, 0x71, 0x2c, 0x1f, 0x1e, 0x11, 0x03, 0x5b,
    0x67, 0x2e, 0x2d, 0x20, 0x12, 0x05, 0x04, 0x5c, 0x68, 0x39, 0x2f, 0x21, 0x14, 0x13, 0x06, 0x5d,
    0x69, 0x31, 0x30, 0x23, 0x22, 0x15, 0x07, 0x5e, 0x6a, 0x72, 0x32, 0x24, 0x16, 0x08, 0x09, 0x5f,
    0x6b, 0x33, 0x25, 0x17, 0x18, 0x0b, 0x0a, 0x60, 0x6c, 0x34, 0x35, 0x26, 0x27, 0x19, 0x0c, 0x61,
    0x6d, 0x73, 0x28, 0x74, 0x1a, 0x0d, 0x62, 0x6e, 0x3a, 0x36, 0x1c, 0x1b, 0x75, 0x2b, 0x63, 0x76,
    0x55, 0x56, 0x77, 0x78, 0x79, 0x7a, 0x0e, 0x7b, 0x7c, 0x4f, 0x7d, 0x4b, 0x47, 0x7e, 0x7f, 0x6f,
    0x52, 0x53, 0x50, 0x4c, 0x4d, 0x48, 0x01, 0x45, 0x57, 0x4e, 0x51, 0x4a, 0x37, 0x49, 0x46, 0x54,
];

fn set2_to_set1(byte: u8) -> u8 {
    match byte {
        0x83 => 0x41, // F7
        0x84 => 0x54, // Alt+SysRq
        _ => SET2_TO_SET1.get(usize::from(byte)).copied().unwrap_or(byte),
    }
}

/// How a key is sent in scan code set 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Set2Key {
    /// One byte; break is 0xf0 then the byte.
    Plain(u8),
    /// 0xe0 then the byte; break is 0xe0 0xf0 then the byte.
    Extended(u8),
    /// Print Screen, sent with its fake shift: E0 12 E0 7C, E0 F0 7C E0 F0 12.
    PrintScreen,
    /// Pause: E1 14 77 E1 F0 14 F0 77 on press, nothing on release.
    Pause,
}

/// The set 2 code of a Linux evdev key code (`KEY_*` in `input-event-codes.h`): the whole
/// 104/105-key layout, the Japanese and Brazilian extra keys, and the common multimedia and
/// ACPI keys, as Linux's `atkbd_set2_keycode` table reads them back.
fn set2_key(code: u16) -> Option<Set2Key> {
    use Set2Key::{Extended, Pause, Plain, PrintScreen};
    Some(match code {
        1 => Plain(0x76),      // Esc
        2 => Plain(0x16),      // 1
        3 => Plain(0x1e),      // 2
        4 => Plain(0x26),      // 3
        5 => Plain(0x25),      // 4
        6 => Plain(0x2e),      // 5
        7 => Plain(0x36),      // 6
        8 => Plain(0x3d),      // 7
        9 => Plain(0x3e),      // 8
        10 => Plain(0x46),     // 9
        11 => Plain(0x45),     // 0
        12 => Plain(0x4e),     // -
        13 => Plain(0x55),     // =
        14 => Plain(0x66),     // Backspace
        15 => Plain(0x0d),     // Tab
        16 => Plain(0x15),     // Q
        17 => Plain(0x1d),     // W
        18 => Plain(0x24),     // E
        19 => Plain(0x2d),     // R
        20 => Plain(0x2c),     // T
        21 => Plain(0x35),     // Y
        22 => Plain(0x3c),     // U
        23 => Plain(0x43),     // I
        24 => Plain(0x44),     // O
        25 => Plain(0x4d),     // P
        26 => Plain(0x54),     // [
        27 => Plain(0x5b),     // ]
        28 => Plain(0x5a),     // Enter
        29 => Plain(0x14),     // Left Ctrl
        30 => Plain(0x1c),     // A
        31 => Plain(0x1b),     // S
        32 => Plain(0x23),     // D
        33 => Plain(0x2b),     // F
        34 => Plain(0x34),     // G
        35 => Plain(0x33),     // H
        36 => Plain(0x3b),     // J
        37 => Plain(0x42),     // K
        38 => Plain(0x4b),     // L
        39 => Plain(0x4c),     // ;
        40 => Plain(0x52),     // '
        41 => Plain(0x0e),     // `
        42 => Plain(0x12),     // Left Shift
        43 => Plain(0x5d),     // \ (ISO: #)
        44 => Plain(0x1a),     // Z
        45 => Plain(0x22),     // X
        46 => Plain(0x21),     // C
        47 => Plain(0x2a),     // V
        48 => Plain(0x32),     // B
        49 => Plain(0x31),     // N
        50 => Plain(0x3a),     // M
        51 => Plain(0x41),     // ,
        52 => Plain(0x49),     // .
        53 => Plain(0x4a),     // /
        54 => Plain(0x59),     // Right Shift
        55 => Plain(0x7c),     // Keypad *
        56 => Plain(0x11),     // Left Alt
        57 => Plain(0x29),     // Space
        58 => Plain(0x58),     // Caps Lock
        59 => Plain(0x05),     // F1
        60 => Plain(0x06),     // F2
        61 => Plain(0x04),     // F3
        62 => Plain(0x0c),     // F4
        63 => Plain(0x03),     // F5
        64 => Plain(0x0b),     // F6
        65 => Plain(0x83),     // F7
        66 => Plain(0x0a),     // F8
        67 => Plain(0x01),     // F9
        68 => Plain(0x09),     // F10
        69 => Plain(0x77),     // Num Lock
        70 => Plain(0x7e),     // Scroll Lock
        71 => Plain(0x6c),     // Keypad 7
        72 => Plain(0x75),     // Keypad 8
        73 => Plain(0x7d),     // Keypad 9
        74 => Plain(0x7b),     // Keypad -
        75 => Plain(0x6b),     // Keypad 4
        76 => Plain(0x73),     // Keypad 5
        77 => Plain(0x74),     // Keypad 6
        78 => Plain(0x79),     // Keypad +
        79 => Plain(0x69),     // Keypad 1
        80 => Plain(0x72),     // Keypad 2
        81 => Plain(0x7a),     // Keypad 3
        82 => Plain(0x70),     // Keypad 0
        83 => Plain(0x71),     // Keypad .
        85 => Plain(0x5f),     // Zenkaku/Hankaku
        86 => Plain(0x61),     // the ISO key left of Z (102nd)
        87 => Plain(0x78),     // F11
        88 => Plain(0x07),     // F12
        89 => Plain(0x51),     // Ro
        90 => Plain(0x63),     // Katakana
        91 => Plain(0x62),     // Hiragana
        92 => Plain(0x64),     // Henkan
        93 => Plain(0x13),     // Katakana/Hiragana
        94 => Plain(0x67),     // Muhenkan
        95 => Plain(0x27),     // Keypad JP comma
        96 => Extended(0x5a),  // Keypad Enter
        97 => Extended(0x14),  // Right Ctrl
        98 => Extended(0x4a),  // Keypad /
        99 => PrintScreen,     // Print Screen / SysRq
        100 => Extended(0x11), // Right Alt (AltGr)
        102 => Extended(0x6c), // Home
        103 => Extended(0x75), // Up
        104 => Extended(0x7d), // Page Up
        105 => Extended(0x6b), // Left
        106 => Extended(0x74), // Right
        107 => Extended(0x69), // End
        108 => Extended(0x72), // Down
        109 => Extended(0x7a), // Page Down
        110 => Extended(0x70), // Insert
        111 => Extended(0x71), // Delete
        113 => Extended(0x23), // Mute
        114 => Extended(0x21), // Volume Down
        115 => Extended(0x32), // Volume Up
        116 => Extended(0x37), // Power
        117 => Plain(0x0f),    // Keypad =
        119 => Pause,          // Pause / Break
        121 => Plain(0x6d),    // Keypad comma
        124 => Plain(0x6a),    // Yen
        125 => Extended(0x1f), // Left Meta (Windows)
        126 => Extended(0x27), // Right Meta
        127 => Extended(0x2f), // Compose (Menu)
        128 => Extended(0x28), // Stop
        140 => Extended(0x2b), // Calculator
        142 => Extended(0x3f), // Sleep
        143 => Extended(0x5e), // Wake
        155 => Extended(0x48), // Mail
        156 => Extended(0x18), // Bookmarks
        157 => Extended(0x40), // Computer
        158 => Extended(0x38), // Back
        159 => Extended(0x30), // Forward
        163 => Extended(0x4d), // Next song
        164 => Extended(0x34), // Play/Pause
        165 => Extended(0x15), // Previous song
        166 => Extended(0x3b), // Stop CD
        172 => Extended(0x3a), // Home page
        173 => Extended(0x20), // Refresh
        217 => Extended(0x10), // Search
        226 => Extended(0x50), // Media
        _ => return None,
    })
}

/// The set 2 bytes for a key going down or up.
fn set2_sequence(key: Set2Key, down: bool) -> Vec<u8> {
    match (key, down) {
        (Set2Key::Plain(c), true) => vec![c],
        (Set2Key::Plain(c), false) => vec![BREAK_PREFIX, c],
        (Set2Key::Extended(c), true) => vec![EXTENDED_PREFIX, c],
        (Set2Key::Extended(c), false) => vec![EXTENDED_PREFIX, BREAK_PREFIX, c],
        (Set2Key::PrintScreen, true) => vec![0xe0, 0x12, 0xe0, 0x7c],
        (Set2Key::PrintScreen, false) => vec![0xe0, 0xf0, 0x7c, 0xe0, 0xf0, 0x12],
        (Set2Key::Pause, true) => vec![0xe1, 0x14, 0x77, 0xe1, 0xf0, 0x14, 0xf0, 0x77],
        (Set2Key::Pause, false) => Vec::new(),
    }
}

/// Set 2 bytes as set 1 (what the keyboard sends when asked for set 1, and what the
/// controller's translation makes of set 2).
fn to_set1(set2: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(set2.len());
    let mut release = false;
    for &byte in set2 {
        if byte == BREAK_PREFIX {
            release = true;
        } else {
            out.push(set2_to_set1(byte) | if release { 0x80 } else { 0 });
            release = false;
        }
    }
    out
}

/// The PS/2 keyboard: its output buffer, scanning state, scan code set and LEDs.
#[derive(Debug)]
struct Keyboard {
    queue: VecDeque<u8>,
    scanning: bool,
    /// 1 or 2 (set 3 is not offered).
    set: u8,
    leds: u8,
    /// A command waiting for its argument byte (0xed, 0xf0, 0xf3).
    awaiting: Option<u8>,
    /// The last byte handed to the controller, for 0xfe (resend).
    last_sent: u8,
}

impl Keyboard {
    /// After power-on and its self test: scanning, set 2, LEDs off.
    fn new() -> Self {
        Self {
            queue: VecDeque::with_capacity(KBD_QUEUE_CAPACITY),
            scanning: true,
            set: 2,
            leds: 0,
            awaiting: None,
            last_sent: 0,
        }
    }

    /// Power-on defaults (0xf5, 0xf6, 0xff): set 2, LEDs off, buffer emptied.
    fn defaults(&mut self) {
        self.queue.clear();
        self.set = 2;
        self.leds = 0;
        self.awaiting = None;
    }

    fn pop(&mut self) -> Option<u8> {
        let byte = self.queue.pop_front()?;
        self.last_sent = byte;
        Some(byte)
    }

    /// Queues `bytes` whole if they fit within `limit`; a key is never sent in part.
    fn push(&mut self, bytes: &[u8], limit: usize) -> bool {
        if self.queue.len() + bytes.len() > limit {
            log::debug!("i8042: keyboard buffer full, dropping {bytes:02x?}");
            return false;
        }
        self.queue.extend(bytes);
        true
    }

    fn reply(&mut self, bytes: &[u8]) {
        self.push(bytes, KBD_QUEUE_CAPACITY);
    }

    /// A byte from the host: a command, or the argument of the previous one.
    fn write(&mut self, byte: u8) {
        // No argument is a command byte (0xed and up): one sent instead starts over.
        if let Some(command) = self.awaiting.take().filter(|_| byte < KBD_SET_LEDS) {
            self.argument(command, byte);
            return;
        }
        match byte {
            KBD_SET_LEDS | KBD_SCANCODE_SET | KBD_TYPEMATIC => {
                self.awaiting = Some(byte);
                self.reply(&[KBD_ACK]);
            }
            KBD_ECHO => self.reply(&[KBD_ECHO]),
            KBD_IDENTIFY => self.reply(&[KBD_ACK, KBD_ID[0], KBD_ID[1]]),
            KBD_ENABLE => {
                self.scanning = true;
                self.reply(&[KBD_ACK]);
            }
            KBD_DISABLE => {
                self.defaults();
                self.scanning = false;
                self.reply(&[KBD_ACK]);
            }
            KBD_DEFAULTS => {
                self.defaults();
                self.scanning = true;
                self.reply(&[KBD_ACK]);
            }
            KBD_RESEND => {
                let last = self.last_sent;
                self.reply(&[last]);
            }
            KBD_RESET => {
                self.defaults();
                self.scanning = true;
                self.reply(&[KBD_ACK, KBD_SELF_TEST_OK]);
            }
            _ => {
                log::debug!("i8042: unknown keyboard command {byte:#04x}");
                self.reply(&[KBD_NAK]);
            }
        }
    }

    fn argument(&mut self, command: u8, arg: u8) {
        match command {
            KBD_SET_LEDS => {
                self.leds = arg & (LED_SCROLL_LOCK | LED_NUM_LOCK | LED_CAPS_LOCK);
                self.reply(&[KBD_ACK]);
            }
            KBD_SCANCODE_SET => match arg {
                0 => {
                    let set = self.set;
                    self.reply(&[KBD_ACK, set]);
                }
                1 | 2 => {
                    self.set = arg;
                    self.reply(&[KBD_ACK]);
                }
                _ => self.reply(&[KBD_NAK]),
            },
            // Typematic rate and delay: the VMM repeats keys itself, if at all.
            _ => self.reply(&[KBD_ACK]),
        }
    }

    /// Queues a key's make or break code; false if it was dropped.
    fn key(&mut self, code: u16, down: bool) -> bool {
        if !self.scanning {
            log::debug!("i8042: keyboard not scanning, key {code} dropped");
            return false;
        }
        let Some(key) = set2_key(code) else {
            log::debug!("i8042: no scan code for key {code}");
            return false;
        };
        let set2 = set2_sequence(key, down);
        let bytes = if self.set == 1 { to_set1(&set2) } else { set2 };
        self.push(&bytes, KBD_QUEUE_CAPACITY - KBD_REPLY_ROOM)
    }
}

/// A byte in (or waiting for) the output buffer, and which port it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Output {
    byte: u8,
    aux: bool,
}

/// Where the next byte written to port 0x60 goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DataTarget {
    /// The keyboard (no controller command pending).
    Keyboard,
    /// A byte of the controller's RAM; 0 is the command byte.
    Ram(usize),
    OutputPort,
    KbdOutput,
    AuxOutput,
    Aux,
}

/// The controller on ports 0x60..=0x64 and its keyboard.
pub struct I8042 {
    exits: ExitSender,
    irq: Option<IrqLine>,
    irq_level: bool,
    /// The controller's RAM; byte 0 is the command byte.
    ram: [u8; 32],
    sys_flag: bool,
    last_write_was_command: bool,
    output_port: u8,
    target: DataTarget,
    obf: Option<Output>,
    last_read: u8,
    replies: VecDeque<Output>,
    /// Translation saw a set 2 break prefix: the next byte gets bit 7.
    translate_release: bool,
    kbd: Keyboard,
}

impl std::fmt::Debug for I8042 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("I8042")
            .field("command_byte", &self.command_byte())
            .field("status", &self.status())
            .field("obf", &self.obf)
            .field("kbd", &self.kbd)
            .finish_non_exhaustive()
    }
}

impl I8042 {
    /// A controller whose reset lines reach `exits`, with no interrupt line (polled only).
    pub fn new(exits: ExitSender) -> Self {
        Self {
            exits,
            irq: None,
            irq_level: false,
            ram: Self::power_on_ram(),
            sys_flag: false,
            last_write_was_command: true,
            output_port: OUT_DEFAULT,
            target: DataTarget::Keyboard,
            obf: None,
            last_read: 0,
            replies: VecDeque::with_capacity(CONTROLLER_QUEUE_CAPACITY),
            translate_release: false,
            kbd: Keyboard::new(),
        }
    }

    /// A controller that also raises IRQ 1 through `irq`.
    pub fn with_irq(exits: ExitSender, irq: IrqLine) -> Self {
        Self {
            irq: Some(irq),
            ..Self::new(exits)
        }
    }

    fn power_on_ram() -> [u8; 32] {
        let mut ram = [0; 32];
        ram[0] = DEFAULT_COMMAND_BYTE;
        ram
    }

    /// Back to the power-on state (a machine reset), keeping the exit and interrupt lines.
    pub fn reset(&mut self) {
        let irq = self.irq.take();
        *self = Self {
            irq,
            ..Self::new(self.exits.clone())
        };
    }

    /// A key from the host, as a Linux evdev key code (`KEY_A` = 30, ...), going down
    /// (`true`, again for each repeat) or up. Dropped, as on a real machine, while the
    /// guest has the keyboard disabled (0xf5, or the controller's 0xad) or its buffer is
    /// full; keys without a PS/2 scan code are ignored.
    pub fn key(&mut self, code: u16, down: bool) {
        if self.command_byte() & CTR_KBD_DISABLED != 0 {
            log::debug!("i8042: keyboard interface disabled, key {code} dropped");
            return;
        }
        if self.kbd.key(code, down) {
            self.fill_output();
        }
    }

    /// The keyboard LEDs the guest last set: [`LED_SCROLL_LOCK`] | [`LED_NUM_LOCK`] |
    /// [`LED_CAPS_LOCK`].
    pub fn leds(&self) -> u8 {
        self.kbd.leds
    }

    /// The controller's command byte.
    pub fn command_byte(&self) -> u8 {
        self.ram[0]
    }

    fn status(&self) -> u8 {
        let mut status = STS_UNLOCKED;
        if let Some(out) = self.obf {
            status |= STS_OBF;
            if out.aux {
                status |= STS_AUX_OBF;
            }
        }
        if self.sys_flag {
            status |= STS_SYS;
        }
        if self.last_write_was_command {
            status |= STS_CMD;
        }
        status
    }

    fn set_command_byte(&mut self, value: u8) {
        self.ram[0] = value;
        self.sys_flag = value & CTR_SYS != 0;
        if value & CTR_TRANSLATE == 0 {
            self.translate_release = false;
        }
        // Enabling the keyboard lets its bytes through; enabling the interrupt with a byte
        // waiting raises it.
        self.fill_output();
    }

    fn request_reset(&self) {
        self.exits.send(ExitRequest::Reset);
    }

    /// Queues a byte of the controller's own, ahead of the keyboard's.
    fn reply(&mut self, out: Output) {
        if self.replies.len() >= CONTROLLER_QUEUE_CAPACITY {
            log::debug!("i8042: controller output full, dropping {:#04x}", out.byte);
            return;
        }
        self.replies.push_back(out);
        self.fill_output();
    }

    fn reply_kbd(&mut self, byte: u8) {
        self.reply(Output { byte, aux: false });
    }

    /// The next keyboard byte for the output buffer, through translation when it is on.
    /// Nothing passes while the keyboard interface is disabled: the keyboard keeps it.
    fn next_keyboard_byte(&mut self) -> Option<Output> {
        if self.command_byte() & CTR_KBD_DISABLED != 0 {
            return None;
        }
        while let Some(byte) = self.kbd.pop() {
            if self.command_byte() & CTR_TRANSLATE == 0 {
                return Some(Output { byte, aux: false });
            }
            if byte == BREAK_PREFIX {
                self.translate_release = true;
                continue;
            }
            let release = if std::mem::take(&mut self.translate_release) {
                0x80
            } else {
                0
            };
            return Some(Output {
                byte: set2_to_set1(byte) | release,
                aux: false,
            });
        }
        None
    }

    /// Loads the output buffer if it is empty, then updates IRQ 1.
    fn fill_output(&mut self) {
        if self.obf.is_none() {
            self.obf = match self.replies.pop_front() {
                Some(out) => Some(out),
                None => self.next_keyboard_byte(),
            };
        }
        self.update_irq();
    }

    /// IRQ 1 follows "keyboard byte in the output buffer and its interrupt enabled"; each
    /// rising edge of that goes out as a pulse on the edge-triggered ISA line.
    fn update_irq(&mut self) {
        let level = matches!(self.obf, Some(Output { aux: false, .. }))
            && self.command_byte() & CTR_KBD_INT != 0;
        if level && !self.irq_level {
            if let Some(irq) = &self.irq {
                irq(true);
                irq(false);
            }
        }
        self.irq_level = level;
    }

    fn read_data(&mut self) -> u8 {
        match self.obf.take() {
            Some(out) => {
                self.last_read = out.byte;
                self.update_irq();
                self.fill_output();
                out.byte
            }
            // Nothing new: the last byte again, as QEMU does (and DOS extenders expect).
            None => self.last_read,
        }
    }

    fn output_port_value(&self) -> u8 {
        let mut value = self.output_port;
        match self.obf {
            Some(Output { aux: false, .. }) => value |= OUT_KBD_OBF,
            Some(Output { aux: true, .. }) => value |= OUT_AUX_OBF,
            None => {}
        }
        value
    }

    fn write_output_port(&mut self, value: u8) {
        // A20 (bit 1) is not modelled: the guest's memory is always reachable. The buffer
        // full bits are the controller's own.
        self.output_port = (value | OUT_RESET) & !(OUT_KBD_OBF | OUT_AUX_OBF);
        if value & OUT_RESET == 0 {
            self.request_reset();
        }
    }

    fn write_command(&mut self, command: u8) {
        self.last_write_was_command = true;
        // A new command ends any wait for the previous one's data byte.
        self.target = DataTarget::Keyboard;
        match command {
            CMD_READ_RAM..=0x3f => {
                let byte = self.ram[usize::from(command - CMD_READ_RAM)];
                self.reply_kbd(byte);
            }
            CMD_WRITE_RAM..=0x7f => {
                self.target = DataTarget::Ram(usize::from(command - CMD_WRITE_RAM));
            }
            CMD_AUX_DISABLE => self.set_command_byte(self.command_byte() | CTR_AUX_DISABLED),
            // No aux device: its interface stays disabled, which is how guests tell.
            CMD_AUX_ENABLE => log::debug!("i8042: no aux port to enable"),
            CMD_AUX_TEST => self.reply_kbd(AUX_CLOCK_STUCK_HIGH),
            CMD_SELF_TEST => {
                self.sys_flag = true;
                self.reply_kbd(SELF_TEST_OK);
            }
            CMD_KBD_TEST => self.reply_kbd(INTERFACE_OK),
            CMD_KBD_DISABLE => self.set_command_byte(self.command_byte() | CTR_KBD_DISABLED),
            CMD_KBD_ENABLE => self.set_command_byte(self.command_byte() & !CTR_KBD_DISABLED),
            CMD_READ_INPUT_PORT => self.reply_kbd(INPUT_PORT),
            CMD_READ_OUTPUT_PORT => {
                let value = self.output_port_value();
                self.reply_kbd(value);
            }
            CMD_WRITE_OUTPUT_PORT => self.target = DataTarget::OutputPort,
            CMD_WRITE_KBD_OUTPUT => self.target = DataTarget::KbdOutput,
            CMD_WRITE_AUX_OUTPUT => self.target = DataTarget::AuxOutput,
            CMD_WRITE_AUX => self.target = DataTarget::Aux,
            CMD_A20_DISABLE => self.output_port &= !OUT_A20,
            CMD_A20_ENABLE => self.output_port |= OUT_A20,
            // Pulse output port bits 0-3 whose command bit is clear; bit 0 is the CPU reset.
            CMD_PULSE..=0xff => {
                if command & OUT_RESET == 0 {
                    self.request_reset();
                }
            }
            _ => log::debug!("i8042: unknown controller command {command:#04x}"),
        }
    }

    fn write_data(&mut self, byte: u8) {
        self.last_write_was_command = false;
        match std::mem::replace(&mut self.target, DataTarget::Keyboard) {
            DataTarget::Keyboard => {
                // Sending to the keyboard releases its clock: the interface is enabled again.
                if self.command_byte() & CTR_KBD_DISABLED != 0 {
                    self.ram[0] &= !CTR_KBD_DISABLED;
                }
                self.kbd.write(byte);
                self.fill_output();
            }
            DataTarget::Ram(0) => self.set_command_byte(byte),
            DataTarget::Ram(index) => {
                if let Some(slot) = self.ram.get_mut(index) {
                    *slot = byte;
                }
            }
            DataTarget::OutputPort => self.write_output_port(byte),
            DataTarget::KbdOutput => self.reply(Output { byte, aux: false }),
            DataTarget::AuxOutput => self.reply(Output { byte, aux: true }),
            DataTarget::Aux => log::debug!("i8042: no aux device, {byte:#04x} dropped"),
        }
    }
}

impl BusDevice for I8042 {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        let [byte] = data else {
            data.fill(0xff);
            return;
        };
        *byte = match offset {
            DATA_OFFSET => self.read_data(),
            COMMAND_OFFSET => self.status(),
            // 0x61-0x63 are not the controller's.
            _ => 0,
        };
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        let [byte] = data else {
            return;
        };
        match offset {
            DATA_OFFSET => self.write_data(*byte),
            COMMAND_OFFSET => self.write_command(*byte),
            _ => {}
        }
    }
}
