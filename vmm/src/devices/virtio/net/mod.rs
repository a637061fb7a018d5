//! virtio-net (device ID 1): the guest's network card. It carries whole Ethernet frames
//! between the guest and a host backend (passt, later, over a socket): what the guest
//! transmits goes to a [`FrameBackend`]; what the host sends is pushed through a
//! [`NetHost`] handle, waits in a bounded queue, and fills the guest's receive buffers as
//! they come, the way the console delivers typed input: the core is
//! [`DeviceCore::ready`] for receive buffers only while a frame waits, and signals its
//! input EventFd when one arrives.
//!
//! No offloads are offered (no checksum, no segmentation), so every frame is complete and
//! checksummed in both directions, and the `virtio_net_hdr_v1` in front of each one
//! carries neither flags nor a GSO type; a transmitted frame whose header asks for either
//! is dropped and counted.
//!
//! Receive buffers are merged (`VIRTIO_NET_F_MRG_RXBUF`) when the driver accepts it: a
//! frame fills as many of the driver's buffers as it needs, `num_buffers` in its header
//! says how many, and they reach the used ring together (the transport publishes them in
//! one step: Linux's driver drops a merged frame whose later buffers it does not find
//! yet). A frame that needs more buffers than are posted waits, with its buffers back in
//! the ring, until the driver posts more. Without the feature each frame fills one chain:
//! a driver that negotiates `VIRTIO_NET_F_MTU` posts buffers that hold the MTU (Linux
//! posts page-chained "big" buffers for an MTU over 1500); a frame that does not fit the
//! buffer it is given is dropped and counted.

mod host;

pub use host::{NetHost, NetStats, PENDING_BYTES, PENDING_FRAMES};

use super::{
    Chain, DeviceCore, Filled, VIRTIO_F_VERSION_1, VIRTIO_RING_F_EVENT_IDX,
    VIRTIO_RING_F_INDIRECT_DESC,
};
use crate::memory::GuestMemory;
pub(crate) use host::Take;
use std::io::{Read, Write};
use virtio_bindings::virtio_net::{
    virtio_net_hdr_v1, VIRTIO_NET_F_MAC, VIRTIO_NET_F_MRG_RXBUF, VIRTIO_NET_F_MTU,
    VIRTIO_NET_F_STATUS, VIRTIO_NET_HDR_GSO_NONE, VIRTIO_NET_S_LINK_UP,
};
use vmm_sys_util::eventfd::EventFd;

#[cfg(test)]
mod tests;

/// The virtio device ID.
pub const DEVICE_TYPE: u32 = 1;
/// Frames to the guest.
pub const RX_QUEUE: usize = 0;
/// Frames from the guest.
pub const TX_QUEUE: usize = 1;
const QUEUE_SIZE: u16 = 256;
/// The configuration space's size: mac, status, max_virtqueue_pairs, mtu.
pub const CONFIG_LEN: usize = 12;
/// `virtio_net_hdr_v1`: flags, gso_type, hdr_len, gso_size, csum_start, csum_offset,
/// num_buffers. Always this long, since the transport requires `VIRTIO_F_VERSION_1`.
pub const NET_HDR_LEN: usize = 12;
const _: () = assert!(std::mem::size_of::<virtio_net_hdr_v1>() == NET_HDR_LEN);
/// The MTU passt offers its guests, and ours by default.
pub const DEFAULT_MTU: u16 = 65520;
/// The least MTU the device may state (virtio 1.2, 5.1.4.1; what IPv4 needs).
pub const MIN_MTU: u16 = 68;
/// A MAC address in QEMU's locally administered range, for a machine that names none.
pub const DEFAULT_MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
/// An Ethernet header: destination, source, EtherType.
const ETH_HLEN: usize = 14;
/// One 802.1Q tag, which a guest's VLAN interface adds to a frame of the full MTU.
const VLAN_HLEN: usize = 4;
/// The largest frame the guest may transmit: the largest MTU any driver may choose
/// (65535: a driver need not take ours) plus an Ethernet header and one VLAN tag. Longer
/// chains are dropped unread.
pub const MAX_FRAME: usize = u16::MAX as usize + ETH_HLEN + VLAN_HLEN;

/// Feature: the configuration holds the device's MAC address.
const F_MAC: u64 = 1 << VIRTIO_NET_F_MAC;
/// Feature: the configuration holds the link status.
const F_STATUS: u64 = 1 << VIRTIO_NET_F_STATUS;
/// Feature: the configuration holds the MTU.
const F_MTU: u64 = 1 << VIRTIO_NET_F_MTU;
/// Feature bit: a received frame may span several receive buffers.
const F_MRG_RXBUF: u64 = 1 << VIRTIO_NET_F_MRG_RXBUF;
/// The status bit of a link that is up (`VIRTIO_NET_S_LINK_UP`, a mask).
const S_LINK_UP: u16 = 1;
const _: () = assert!(S_LINK_UP as u32 == VIRTIO_NET_S_LINK_UP);

/// Why a network device could not be made.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The MTU is below what the specification allows.
    #[error(
        "The network MTU {0} is too small: a virtio network card needs at least {MIN_MTU} bytes."
    )]
    MtuTooSmall(u16),
    /// The MAC address is not one a card may have.
    #[error("The MAC address {} is not a unicast address, which a network card needs (an even first byte, not all zeros).", mac_text(.0))]
    MacNotUnicast([u8; 6]),
    /// The device's event notifiers.
    #[error("Cannot create the network device's event notifiers: {0}.")]
    EventFd(#[source] std::io::Error),
}

fn mac_text(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// How the device presents itself to the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetConfig {
    /// The card's MAC address (unicast).
    pub mac: [u8; 6],
    /// The MTU the guest is told, at least [`MIN_MTU`].
    pub mtu: u16,
}

impl Default for NetConfig {
    fn default() -> Self {
        Self {
            mac: DEFAULT_MAC,
            mtu: DEFAULT_MTU,
        }
    }
}

/// Where the guest's frames go on the host.
pub trait FrameBackend: Send {
    /// Takes one Ethernet frame the guest transmitted (no virtio-net header). It is called
    /// on the queue worker, so it should not wait long; an error drops this frame only.
    fn send(&mut self, frame: &[u8]) -> std::io::Result<()>;
}

/// Why a transmitted chain was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TxDrop {
    /// Not a frame: too short, too long, or unreadable.
    Malformed,
    /// The header asked for an offload that was not offered.
    Offload,
}

/// The network device.
pub struct Net {
    config: NetConfig,
    backend: Box<dyn FrameBackend>,
    host: NetHost,
    /// The frame being transmitted, kept to spare an allocation per frame.
    frame: Vec<u8>,
    /// The driver accepted merged receive buffers.
    merged: bool,
}

impl std::fmt::Debug for Net {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Net")
            .field("config", &self.config)
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

impl Net {
    /// A card presenting `config`, sending the guest's frames to `backend`, link up; the
    /// returned handle feeds it frames from the host.
    pub fn new(
        config: NetConfig,
        backend: Box<dyn FrameBackend>,
    ) -> Result<(Self, NetHost), NetError> {
        if config.mtu < MIN_MTU {
            return Err(NetError::MtuTooSmall(config.mtu));
        }
        if config.mac[0] & 1 != 0 || config.mac == [0; 6] {
            return Err(NetError::MacNotUnicast(config.mac));
        }
        let max_frame = usize::from(config.mtu) + ETH_HLEN + VLAN_HLEN;
        let host = NetHost::new(ETH_HLEN, max_frame).map_err(NetError::EventFd)?;
        Ok((
            Self {
                config,
                backend,
                host: host.clone(),
                frame: Vec::new(),
                merged: false,
            },
            host,
        ))
    }

    /// A handle on this card's host side.
    pub fn host(&self) -> NetHost {
        self.host.clone()
    }

    /// The counters now.
    pub fn stats(&self) -> NetStats {
        self.host.stats()
    }

    /// One transmitted chain: the header, then the frame, over any readable descriptors.
    /// The chain goes back empty, whatever became of the frame.
    fn transmit(&mut self, mem: &GuestMemory, chain: Chain<'_>) -> u32 {
        match self.read_frame(mem, chain) {
            Err(reason) => {
                // A guest can repeat a bad frame forever: only at debug level.
                log::debug!("virtio-net: dropped a transmitted frame ({reason:?})");
                self.host.count(|s| match reason {
                    TxDrop::Malformed => s.tx_malformed += 1,
                    TxDrop::Offload => s.tx_offload += 1,
                });
            }
            Ok(()) if !self.host.link_up() => self.host.count(|s| s.tx_link_down += 1),
            Ok(()) => match self.backend.send(&self.frame) {
                Ok(()) => {
                    let len = self.frame.len() as u64;
                    self.host.count(|s| {
                        s.tx_frames += 1;
                        s.tx_bytes += len;
                    });
                }
                Err(e) => {
                    log::debug!("virtio-net: the backend dropped a frame: {e}");
                    self.host.count(|s| s.tx_backend_errors += 1);
                }
            },
        }
        0
    }

    /// Reads a transmitted chain's frame into `self.frame`, checking its header.
    fn read_frame(&mut self, mem: &GuestMemory, chain: Chain<'_>) -> Result<(), TxDrop> {
        let mut reader = chain.reader(mem).map_err(|_| TxDrop::Malformed)?;
        let len = reader
            .available_bytes()
            .checked_sub(NET_HDR_LEN)
            .ok_or(TxDrop::Malformed)?;
        if !(ETH_HLEN..=MAX_FRAME).contains(&len) {
            return Err(TxDrop::Malformed);
        }
        let mut header = [0u8; NET_HDR_LEN];
        reader
            .read_exact(&mut header)
            .map_err(|_| TxDrop::Malformed)?;
        // flags (NEEDS_CSUM needs VIRTIO_NET_F_CSUM; the others are the device's to set)
        // and gso_type (anything but NONE needs a HOST_TSO/UFO/USO feature).
        if header[0] != 0 || u32::from(header[1]) != VIRTIO_NET_HDR_GSO_NONE {
            return Err(TxDrop::Offload);
        }
        self.frame.clear();
        self.frame.resize(len, 0);
        reader
            .read_exact(&mut self.frame)
            .map_err(|_| TxDrop::Malformed)
    }

    /// One receive buffer: the header, then the next waiting frame, over its writable
    /// descriptors. Returns the bytes written.
    fn receive(&mut self, mem: &GuestMemory, chain: Chain<'_>) -> u32 {
        let Ok(mut writer) = chain.writer(mem) else {
            // The buffer is unusable, not the frame: it waits for the next buffer.
            log::debug!("virtio-net: a receive buffer outside guest memory");
            return 0;
        };
        let room = writer.available_bytes().saturating_sub(NET_HDR_LEN);
        let frame = match self.host.take(room) {
            Take::Frame(frame) => frame,
            // Only when the waiting frames went after `ready` said yes (the link went down, a
            // reset): the buffer goes back empty, which drivers count as an error and repost.
            Take::Nothing => return 0,
            Take::TooLarge => {
                log::debug!("virtio-net: a receive buffer of {room} bytes is too small");
                return 0;
            }
        };
        match writer
            .write_all(&rx_header())
            .and_then(|()| writer.write_all(&frame))
        {
            Ok(()) => {
                let len = frame.len() as u64;
                self.host.count(|s| {
                    s.rx_frames += 1;
                    s.rx_bytes += len;
                });
                u32::try_from(NET_HDR_LEN + frame.len()).unwrap_or(0)
            }
            Err(e) => {
                log::debug!("virtio-net: cannot write a received frame: {e}");
                self.host.count(|s| s.rx_no_room += 1);
                0
            }
        }
    }
}

impl Net {
    /// One received frame over as many of the driver's buffers as it needs (merged
    /// receive buffers), the header's `num_buffers` saying how many.
    fn receive_merged<'m>(
        &mut self,
        mem: &'m GuestMemory,
        next: &mut dyn FnMut() -> Option<Chain<'m>>,
    ) -> Filled {
        let Some(len) = self.host.next_len() else {
            return Filled::default();
        };
        let need = NET_HDR_LEN + len;
        let mut buffers = Vec::new();
        let mut room = 0usize;
        let mut taken: u16 = 0;
        while room < need {
            let Some(chain) = next() else {
                return Filled {
                    used: Vec::new(),
                    unused: taken,
                    starved: true,
                };
            };
            taken += 1;
            let head = chain.head_index();
            match chain.writer(mem) {
                Ok(writer) => {
                    room += writer.available_bytes();
                    buffers.push((head, Some(writer)));
                }
                Err(_) => {
                    // A buffer outside guest memory: it goes back empty with the others.
                    log::debug!("virtio-net: a receive buffer outside guest memory");
                    buffers.push((head, None));
                    break;
                }
            }
            if usize::from(taken) >= usize::from(QUEUE_SIZE) && room < need {
                break;
            }
        }
        let frame = if room >= need && buffers.iter().all(|(_, w)| w.is_some()) {
            match self.host.take(usize::MAX) {
                Take::Frame(frame) => Some(frame),
                // The link went down, or a reset, since `next_len`: the buffers go back.
                Take::Nothing | Take::TooLarge => {
                    return Filled {
                        used: Vec::new(),
                        unused: taken,
                        starved: false,
                    }
                }
            }
        } else {
            // No ring holds it, or a buffer was unusable: the frame is dropped and the
            // buffers go back to the driver empty.
            if let Take::Frame(_) = self.host.take(usize::MAX) {
                self.host.count(|s| s.rx_no_room += 1);
            }
            None
        };
        let Some(frame) = frame else {
            return Filled {
                used: buffers.into_iter().map(|(head, _)| (head, 0)).collect(),
                unused: 0,
                starved: false,
            };
        };
        let mut header = rx_header();
        let count = u16::try_from(buffers.len()).unwrap_or(u16::MAX);
        header[10..12].copy_from_slice(&count.to_le_bytes());
        let (mut header_left, mut frame_left) = (&header[..], &frame[..]);
        let mut used = Vec::with_capacity(buffers.len());
        let mut failed = false;
        for (head, writer) in buffers {
            let mut written = 0usize;
            if let Some(mut writer) = writer {
                for part in [&mut header_left, &mut frame_left] {
                    let n = part.len().min(writer.available_bytes());
                    if writer.write_all(&part[..n]).is_err() {
                        failed = true;
                    }
                    *part = &part[n..];
                    written += n;
                }
            }
            used.push((head, u32::try_from(written).unwrap_or(0)));
        }
        if failed {
            log::debug!("virtio-net: cannot write a received frame");
            self.host.count(|s| s.rx_no_room += 1);
        } else {
            self.host.count(|s| {
                s.rx_frames += 1;
                s.rx_bytes += len as u64;
            });
        }
        Filled {
            used,
            unused: 0,
            starved: false,
        }
    }
}

/// The configuration a frontend presents for a card served elsewhere (whose backend
/// gives none): [`DEFAULT_MAC`], link up, one queue pair, [`DEFAULT_MTU`].
pub fn frontend_config() -> Vec<u8> {
    let mut c = Vec::with_capacity(CONFIG_LEN);
    c.extend_from_slice(&DEFAULT_MAC);
    c.extend_from_slice(&S_LINK_UP.to_le_bytes());
    c.extend_from_slice(&1u16.to_le_bytes());
    c.extend_from_slice(&DEFAULT_MTU.to_le_bytes());
    c
}

/// The header in front of a received frame: no flags, no GSO, in one buffer (virtio 1.2,
/// 5.1.6.4: `num_buffers` is 1 when `VIRTIO_NET_F_MRG_RXBUF` is not negotiated).
fn rx_header() -> [u8; NET_HDR_LEN] {
    let mut header = [0u8; NET_HDR_LEN];
    header[10..12].copy_from_slice(&1u16.to_le_bytes());
    header
}

impl DeviceCore for Net {
    fn device_type(&self) -> u32 {
        DEVICE_TYPE
    }
    fn num_queues(&self) -> usize {
        2
    }
    fn max_queue_size(&self) -> u16 {
        QUEUE_SIZE
    }
    /// The configuration's MAC, link status and MTU, and the ring features; no offloads
    /// merged receive buffers; no offloads and no control queue (see the module comment).
    fn features(&self) -> u64 {
        VIRTIO_F_VERSION_1
            | VIRTIO_RING_F_EVENT_IDX
            | VIRTIO_RING_F_INDIRECT_DESC
            | F_MAC
            | F_STATUS
            | F_MTU
            | F_MRG_RXBUF
    }
    /// `struct virtio_net_config` up to `mtu`: mac[6], status, max_virtqueue_pairs (1),
    /// mtu. The fields after it belong to features not offered.
    fn config(&self) -> Vec<u8> {
        let status = if self.host.link_up() { S_LINK_UP } else { 0 };
        let mut c = Vec::with_capacity(CONFIG_LEN);
        c.extend_from_slice(&self.config.mac);
        c.extend_from_slice(&status.to_le_bytes());
        c.extend_from_slice(&1u16.to_le_bytes());
        c.extend_from_slice(&self.config.mtu.to_le_bytes());
        c
    }
    /// Read-only: a driver under `VIRTIO_F_VERSION_1` sets no MAC through it.
    fn write_config(&mut self, offset: usize, data: &[u8]) {
        log::debug!(
            "virtio-net: ignored a {}-byte configuration write at {offset}",
            data.len()
        );
    }
    fn process(&mut self, queue: usize, mem: &GuestMemory, chain: Chain<'_>) -> u32 {
        match queue {
            RX_QUEUE => self.receive(mem, chain),
            TX_QUEUE => self.transmit(mem, chain),
            _ => 0,
        }
    }
    /// Receive buffers stay in the ring until a frame waits for one.
    fn ready(&self, queue: usize) -> bool {
        queue != RX_QUEUE || self.host.pending_frames() > 0
    }
    fn input_event(&self) -> Option<&EventFd> {
        Some(self.host.frame_ready())
    }
    fn config_event(&self) -> Option<&EventFd> {
        Some(self.host.config_changed())
    }
    /// The driver reset the device: frames waiting for it go (counted); the counters and
    /// the link state are the host's and stay.
    fn set_driver_features(&mut self, features: u64) {
        self.merged = features & F_MRG_RXBUF != 0;
    }
    fn spans_chains(&self, queue: usize) -> bool {
        queue == RX_QUEUE && self.merged
    }
    fn fill<'m>(
        &mut self,
        queue: usize,
        mem: &'m GuestMemory,
        next: &mut dyn FnMut() -> Option<Chain<'m>>,
    ) -> Filled {
        if queue == RX_QUEUE {
            self.receive_merged(mem, next)
        } else {
            Filled::default()
        }
    }
    fn reset(&mut self) {
        self.merged = false;
        self.host.discard_pending();
    }
}
