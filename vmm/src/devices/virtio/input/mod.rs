//! virtio-input: a keyboard (evdev key codes) and a tablet (absolute pointer, buttons,
//! wheel) that Linux binds as ordinary input devices. The driver reads what each device
//! is through the configuration space, choosing with `select`/`subsel`: name, serial,
//! ids, property bits, the codes of each event type, and each absolute axis' range.
//! Events the host sends wait until the guest has posted buffers, one event per buffer;
//! LED updates the guest sends on the status queue are taken and dropped.

#![allow(
    clippy::cast_possible_truncation,
    reason = "configuration fields are bytes; sizes are bounded by the 128-byte union"
)]

use super::{
    Chain, DeviceCore, VIRTIO_F_VERSION_1, VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC,
};
use crate::devices::bus::lock;
use crate::memory::GuestMemory;
use std::collections::VecDeque;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use vmm_sys_util::eventfd::EventFd;

/// Events to the driver.
pub const EVENT_QUEUE: usize = 0;
/// LED and other status from the driver.
pub const STATUS_QUEUE: usize = 1;
const QUEUE_SIZE: u16 = 64;
/// Most host events kept waiting for the guest (a guest not reading loses the rest).
pub const EVENT_CAPACITY: usize = 4096;

// Configuration selectors.
const CFG_ID_NAME: u8 = 0x01;
const CFG_ID_SERIAL: u8 = 0x02;
const CFG_ID_DEVIDS: u8 = 0x03;
const CFG_PROP_BITS: u8 = 0x10;
const CFG_EV_BITS: u8 = 0x11;
const CFG_ABS_INFO: u8 = 0x12;

// evdev event types and codes (linux/input-event-codes.h).
/// Synchronization events.
pub const EV_SYN: u16 = 0x00;
/// Keys and buttons.
pub const EV_KEY: u16 = 0x01;
/// Relative axes.
pub const EV_REL: u16 = 0x02;
/// Absolute axes.
pub const EV_ABS: u16 = 0x03;
/// Key repeat.
pub const EV_REP: u16 = 0x14;
/// End of an event group.
pub const SYN_REPORT: u16 = 0;
/// Absolute X.
pub const ABS_X: u16 = 0x00;
/// Absolute Y.
pub const ABS_Y: u16 = 0x01;
/// Horizontal wheel.
pub const REL_HWHEEL: u16 = 0x06;
/// Vertical wheel.
pub const REL_WHEEL: u16 = 0x08;
/// Left mouse button.
pub const BTN_LEFT: u16 = 0x110;
/// Right mouse button.
pub const BTN_RIGHT: u16 = 0x111;
/// Middle mouse button.
pub const BTN_MIDDLE: u16 = 0x112;
/// The tablet's axes run from 0 to this.
pub const TABLET_MAX: u32 = 0x7fff;
/// Highest keyboard key code offered (KEY_MICMUTE).
const KEY_MAX_OFFERED: u16 = 248;
const BUS_VIRTUAL: u16 = 0x06;

/// One evdev event, as `struct virtio_input_event`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputEvent {
    /// Type (`EV_*`).
    pub kind: u16,
    /// Code.
    pub code: u16,
    /// Value (1 press, 0 release, 2 repeat; an axis position; a wheel step).
    pub value: u32,
}

impl InputEvent {
    fn to_bytes(self) -> [u8; 8] {
        let mut b = [0u8; 8];
        b[0..2].copy_from_slice(&self.kind.to_le_bytes());
        b[2..4].copy_from_slice(&self.code.to_le_bytes());
        b[4..8].copy_from_slice(&self.value.to_le_bytes());
        b
    }
}

/// The host side's way to send events (cloneable, any thread).
#[derive(Debug, Clone)]
pub struct InputSender {
    pending: Arc<Mutex<VecDeque<InputEvent>>>,
    ready: Arc<EventFd>,
    /// A driver has bound the device (it chose what to read from its configuration), and
    /// has not reset it since.
    driven: Arc<AtomicBool>,
}

impl InputSender {
    /// Queues one group of events and the `SYN_REPORT` that ends it. Returns false (and
    /// queues nothing) when the guest is not reading and the queue is full.
    pub fn send(&self, events: &[InputEvent]) -> bool {
        let mut p = lock(&self.pending);
        if p.len() + events.len() + 1 > EVENT_CAPACITY {
            return false;
        }
        p.extend(events.iter().copied());
        p.push_back(InputEvent {
            kind: EV_SYN,
            code: SYN_REPORT,
            value: 0,
        });
        drop(p);
        let _ = self.ready.write(1);
        true
    }

    /// Whether a guest driver has bound the device (and so reads what is sent): until
    /// then, keys are better sent to the PS/2 keyboard that firmware reads.
    pub fn driven(&self) -> bool {
        self.driven.load(Ordering::Relaxed)
    }

    /// A key press (`down`) or release, by evdev code.
    pub fn key(&self, code: u16, down: bool) -> bool {
        self.send(&[InputEvent {
            kind: EV_KEY,
            code,
            value: u32::from(down),
        }])
    }

    /// Wheel clicks: `dy` positive scrolls up, `dx` positive scrolls right.
    pub fn wheel(&self, dx: i32, dy: i32) -> bool {
        let mut events = Vec::with_capacity(2);
        if dy != 0 {
            events.push(InputEvent {
                kind: EV_REL,
                code: REL_WHEEL,
                value: u32::from_ne_bytes(dy.to_ne_bytes()),
            });
        }
        if dx != 0 {
            events.push(InputEvent {
                kind: EV_REL,
                code: REL_HWHEEL,
                value: u32::from_ne_bytes(dx.to_ne_bytes()),
            });
        }
        events.is_empty() || self.send(&events)
    }

    /// The pointer at (`x`, `y`) in 0..=[`TABLET_MAX`] on each axis.
    pub fn pointer(&self, x: u32, y: u32) -> bool {
        self.send(&[
            InputEvent {
                kind: EV_ABS,
                code: ABS_X,
                value: x.min(TABLET_MAX),
            },
            InputEvent {
                kind: EV_ABS,
                code: ABS_Y,
                value: y.min(TABLET_MAX),
            },
        ])
    }
}

/// Which device this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    /// A keyboard.
    Keyboard,
    /// An absolute pointer with buttons and wheels.
    Tablet,
}

/// A virtio-input device.
#[derive(Debug)]
pub struct Input {
    kind: InputKind,
    select: u8,
    subsel: u8,
    sender: InputSender,
}

impl Input {
    /// A device of `kind`; the returned sender feeds it events.
    pub fn new(kind: InputKind) -> std::io::Result<(Self, InputSender)> {
        let sender = InputSender {
            pending: Arc::new(Mutex::new(VecDeque::new())),
            ready: Arc::new(EventFd::new(libc::EFD_NONBLOCK)?),
            driven: Arc::new(AtomicBool::new(false)),
        };
        Ok((
            Self {
                kind,
                select: 0,
                subsel: 0,
                sender: sender.clone(),
            },
            sender,
        ))
    }

    /// Codes of event type `ev` this device produces, as a bitmap (empty: none).
    fn ev_bits(&self, ev: u16) -> Vec<u8> {
        let mut bits = vec![0u8; 128];
        let mut set = |code: u16| bits[usize::from(code / 8)] |= 1 << (code % 8);
        match (self.kind, ev) {
            (InputKind::Keyboard, EV_KEY) => (1..=KEY_MAX_OFFERED).for_each(&mut set),
            (InputKind::Keyboard, EV_REP) => {}
            (InputKind::Tablet, EV_KEY) => {
                [BTN_LEFT, BTN_RIGHT, BTN_MIDDLE].into_iter().for_each(set)
            }
            (InputKind::Tablet, EV_ABS) => [ABS_X, ABS_Y].into_iter().for_each(set),
            (InputKind::Tablet, EV_REL) => [REL_HWHEEL, REL_WHEEL].into_iter().for_each(set),
            _ => return Vec::new(),
        }
        // The driver takes the size as the number of meaningful bytes.
        let used = bits.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1);
        bits.truncate(used);
        bits
    }

    /// What the union holds for the current selection.
    fn selected(&self) -> Vec<u8> {
        let name = match self.kind {
            InputKind::Keyboard => "Phyllome Virtio Keyboard",
            InputKind::Tablet => "Phyllome Virtio Tablet",
        };
        match self.select {
            CFG_ID_NAME => name.as_bytes().to_vec(),
            CFG_ID_SERIAL => b"0".to_vec(),
            CFG_ID_DEVIDS => {
                let product: u16 = match self.kind {
                    InputKind::Keyboard => 1,
                    InputKind::Tablet => 3,
                };
                [BUS_VIRTUAL, 0x0627, product, 1]
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect()
            }
            CFG_PROP_BITS => Vec::new(),
            CFG_EV_BITS => self.ev_bits(u16::from(self.subsel)),
            CFG_ABS_INFO
                if self.kind == InputKind::Tablet
                    && matches!(u16::from(self.subsel), ABS_X | ABS_Y) =>
            {
                // min, max, fuzz, flat, res
                [0, TABLET_MAX, 0, 0, 0]
                    .iter()
                    .flat_map(|v: &u32| v.to_le_bytes())
                    .collect()
            }
            _ => Vec::new(),
        }
    }
}

impl DeviceCore for Input {
    fn device_type(&self) -> u32 {
        18
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
    /// `struct virtio_input_config`: select, subsel, size, 5 reserved, a 128-byte union.
    fn config(&self) -> Vec<u8> {
        let payload = self.selected();
        let mut c = vec![0u8; 136];
        c[0] = self.select;
        c[1] = self.subsel;
        c[2] = payload.len().min(128) as u8;
        let n = payload.len().min(128);
        c[8..8 + n].copy_from_slice(&payload[..n]);
        c
    }
    fn write_config(&mut self, offset: usize, data: &[u8]) {
        // A driver chooses what to read while it binds the device (Linux's virtio_input
        // reads the name, the IDs and the event bits before DRIVER_OK).
        self.sender.driven.store(true, Ordering::Relaxed);
        // Only select and subsel are writable.
        for (i, b) in data.iter().enumerate() {
            match offset + i {
                0 => self.select = *b,
                1 => self.subsel = *b,
                _ => {}
            }
        }
    }
    /// The driver reset the device: selections and undelivered events go.
    fn reset(&mut self) {
        self.select = 0;
        self.subsel = 0;
        lock(&self.sender.pending).clear();
        self.sender.driven.store(false, Ordering::Relaxed);
    }
    fn ready(&self, queue: usize) -> bool {
        queue != EVENT_QUEUE || !lock(&self.sender.pending).is_empty()
    }
    fn input_event(&self) -> Option<&EventFd> {
        Some(&self.sender.ready)
    }
    fn process(&mut self, queue: usize, mem: &GuestMemory, chain: Chain<'_>) -> u32 {
        if queue != EVENT_QUEUE {
            // Status (LEDs): read and dropped.
            return 0;
        }
        let Ok(mut writer) = chain.writer(mem) else {
            return 0;
        };
        if writer.available_bytes() < 8 {
            return 0;
        }
        let Some(event) = lock(&self.sender.pending).pop_front() else {
            return 0;
        };
        match writer.write_all(&event.to_bytes()) {
            Ok(()) => 8,
            Err(_) => 0,
        }
    }
}

#[cfg(test)]
mod tests;
