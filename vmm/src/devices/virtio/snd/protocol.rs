//! The virtio-snd wire format (virtio 1.2, section 5.14): request codes, status codes,
//! the structures of the control, event and PCM queues, and the format, rate and
//! channel-position numbers. Every structure is `repr(C)` with explicit padding,
//! little-endian as on x86, read whole from the chain.

#![allow(
    missing_docs,
    reason = "names follow the specification's constants and structures"
)]

use vm_memory::ByteValued;

/// The virtio device ID of a sound card.
pub const DEVICE_ID: u32 = 25;

// Queues.
pub const CONTROL_QUEUE: usize = 0;
pub const EVENT_QUEUE: usize = 1;
pub const TX_QUEUE: usize = 2;
pub const RX_QUEUE: usize = 3;

// Jack requests.
pub const R_JACK_INFO: u32 = 1;
pub const R_JACK_REMAP: u32 = 2;
// PCM requests.
pub const R_PCM_INFO: u32 = 0x0100;
pub const R_PCM_SET_PARAMS: u32 = 0x0101;
pub const R_PCM_PREPARE: u32 = 0x0102;
pub const R_PCM_RELEASE: u32 = 0x0103;
pub const R_PCM_START: u32 = 0x0104;
pub const R_PCM_STOP: u32 = 0x0105;
// Channel-map requests.
pub const R_CHMAP_INFO: u32 = 0x0200;

// Events.
pub const EVT_JACK_CONNECTED: u32 = 0x1000;
pub const EVT_JACK_DISCONNECTED: u32 = 0x1001;
pub const EVT_PCM_PERIOD_ELAPSED: u32 = 0x1100;
pub const EVT_PCM_XRUN: u32 = 0x1101;

// Status codes.
pub const S_OK: u32 = 0x8000;
pub const S_BAD_MSG: u32 = 0x8001;
pub const S_NOT_SUPP: u32 = 0x8002;
pub const S_IO_ERR: u32 = 0x8003;

// Data flow directions.
pub const D_OUTPUT: u8 = 0;
pub const D_INPUT: u8 = 1;

// PCM stream features (bits of `PcmInfo::features` and `PcmSetParams::features`).
pub const PCM_F_EVT_XRUNS: u32 = 1 << 4;

// PCM sample formats (bit numbers in `PcmInfo::formats`).
pub const PCM_FMT_S16: u8 = 5;
pub const PCM_FMT_S32: u8 = 17;
pub const PCM_FMT_FLOAT: u8 = 19;

// PCM frame rates (bit numbers in `PcmInfo::rates`).
pub const PCM_RATE_44100: u8 = 6;
pub const PCM_RATE_48000: u8 = 7;

// Channel positions.
pub const CHMAP_FL: u8 = 3;
pub const CHMAP_FR: u8 = 4;
/// Most channel positions a channel map carries.
pub const CHMAP_MAX_SIZE: usize = 18;

// HDA pin default configuration (jack_info.hda_reg_defconf): the device in bits 20-23, the
// connectivity in bits 30-31 (0 = a jack), the location in bits 24-29 (1 = rear panel).
pub const HDA_DEFCONF_LINE_OUT: u32 = 0x0101_0010;
pub const HDA_DEFCONF_MIC_IN: u32 = 0x01a1_0020;

/// The device configuration space.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct Config {
    pub jacks: u32,
    pub streams: u32,
    pub chmaps: u32,
}
// SAFETY: `repr(C)` of three u32: no padding, every bit pattern valid.
unsafe impl ByteValued for Config {}

/// The code at the start of every request, response and event.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct Hdr {
    pub code: u32,
}
// SAFETY: `repr(C)` of one u32: no padding, every bit pattern valid.
unsafe impl ByteValued for Hdr {}

/// An information query: `count` items from `start_id`, each `size` bytes in the reply.
#[derive(Clone, Copy, Default, Debug)]
#[repr(C)]
pub struct QueryInfo {
    pub hdr: Hdr,
    pub start_id: u32,
    pub count: u32,
    pub size: u32,
}
// SAFETY: `repr(C)` of four u32: no padding, every bit pattern valid.
unsafe impl ByteValued for QueryInfo {}

/// A jack, as a query reply.
#[derive(Clone, Copy, Default, Debug)]
#[repr(C)]
pub struct JackInfo {
    pub hda_fn_nid: u32,
    pub features: u32,
    pub hda_reg_defconf: u32,
    pub hda_reg_caps: u32,
    pub connected: u8,
    pub padding: [u8; 7],
}
// SAFETY: `repr(C)`: four u32, then 8 bytes: 24 bytes, no implicit padding.
unsafe impl ByteValued for JackInfo {}

/// A PCM stream's capabilities, as a query reply.
#[derive(Clone, Copy, Default, Debug)]
#[repr(C)]
pub struct PcmInfo {
    pub hda_fn_nid: u32,
    pub features: u32,
    pub formats: u64,
    pub rates: u64,
    pub direction: u8,
    pub channels_min: u8,
    pub channels_max: u8,
    pub padding: [u8; 5],
}
// SAFETY: `repr(C)`: two u32, two u64 (8-aligned at offset 8), then 8 bytes: 32 bytes,
// no implicit padding.
unsafe impl ByteValued for PcmInfo {}

/// A channel map, as a query reply.
#[derive(Clone, Copy, Default, Debug)]
#[repr(C)]
pub struct ChmapInfo {
    pub hda_fn_nid: u32,
    pub direction: u8,
    pub channels: u8,
    pub positions: [u8; CHMAP_MAX_SIZE],
}
// SAFETY: `repr(C)`: one u32, then 20 bytes: 24 bytes, no implicit padding.
unsafe impl ByteValued for ChmapInfo {}

/// The header of every PCM control request.
#[derive(Clone, Copy, Default, Debug)]
#[repr(C)]
pub struct PcmHdr {
    pub hdr: Hdr,
    pub stream_id: u32,
}
// SAFETY: `repr(C)` of two u32: no padding, every bit pattern valid.
unsafe impl ByteValued for PcmHdr {}

/// SET_PARAMS.
#[derive(Clone, Copy, Default, Debug)]
#[repr(C)]
pub struct PcmSetParams {
    pub hdr: PcmHdr,
    pub buffer_bytes: u32,
    pub period_bytes: u32,
    pub features: u32,
    pub channels: u8,
    pub format: u8,
    pub rate: u8,
    pub padding: u8,
}
// SAFETY: `repr(C)`: five u32, then 4 bytes: 24 bytes, no implicit padding.
unsafe impl ByteValued for PcmSetParams {}

/// The header of every PCM I/O message.
#[derive(Clone, Copy, Default, Debug)]
#[repr(C)]
pub struct PcmXfer {
    pub stream_id: u32,
}
// SAFETY: `repr(C)` of one u32.
unsafe impl ByteValued for PcmXfer {}

/// The status at the end of every PCM I/O message.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct PcmStatus {
    pub status: u32,
    pub latency_bytes: u32,
}
// SAFETY: `repr(C)` of two u32: no padding, every bit pattern valid.
unsafe impl ByteValued for PcmStatus {}

/// An event to the driver.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct Event {
    pub hdr: Hdr,
    pub data: u32,
}
// SAFETY: `repr(C)` of two u32: no padding, every bit pattern valid.
unsafe impl ByteValued for Event {}
