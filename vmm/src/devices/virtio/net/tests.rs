//! virtio-net over virtio-queue's mock queues: the configuration and features the guest
//! sees, frames in both directions byte for byte, malformed transmissions, receive
//! buffers waiting for frames, the bounded queue of host frames, and the link.

use super::*;
use crate::devices::bus::lock;
use crate::devices::virtio::serve_queue;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use virtio_bindings::virtio_net::{
    VIRTIO_NET_F_CSUM, VIRTIO_NET_F_CTRL_VQ, VIRTIO_NET_F_GUEST_CSUM, VIRTIO_NET_F_GUEST_TSO4,
    VIRTIO_NET_F_GUEST_TSO6, VIRTIO_NET_F_HOST_TSO4, VIRTIO_NET_F_HOST_TSO6, VIRTIO_NET_F_MQ,
    VIRTIO_NET_F_MRG_RXBUF, VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_TCPV4,
};
use virtio_queue::desc::{split::Descriptor, RawDescriptor};
use virtio_queue::mock::MockSplitQueue;
use virtio_queue::{Queue, QueueT};
use vm_memory::{Bytes, GuestAddress};

const WRITE: u16 = 2;
/// Where transmitted parts and receive buffers live, 0x2_0000 apart (a whole frame fits).
const DATA: u64 = 0x10_0000;
const SLOT: u64 = 0x2_0000;

/// Records what the guest sent; fails while `fail` is set.
#[derive(Clone, Default)]
struct Wire {
    sent: Arc<Mutex<Vec<Vec<u8>>>>,
    fail: Arc<AtomicBool>,
}

impl FrameBackend for Wire {
    fn send(&mut self, frame: &[u8]) -> std::io::Result<()> {
        if self.fail.load(Ordering::Relaxed) {
            return Err(std::io::Error::other("the peer is gone"));
        }
        self.sent.lock().unwrap().push(frame.to_vec());
        Ok(())
    }
}

struct Rig {
    mem: GuestMemory,
    wire: Wire,
    host: NetHost,
    dev: Mutex<Net>,
}

fn rig_with(config: NetConfig) -> Rig {
    let mem = GuestMemory::from_ranges(&[(GuestAddress(0), 0x80_0000)]).unwrap();
    let wire = Wire::default();
    let (dev, host) = Net::new(config, Box::new(wire.clone())).unwrap();
    Rig {
        mem,
        wire,
        host,
        dev: Mutex::new(dev),
    }
}

fn rig() -> Rig {
    rig_with(NetConfig::default())
}

/// An Ethernet frame of `len` bytes whose bytes count up from `seed`.
fn frame(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| seed.wrapping_add(u8::try_from(i % 251).unwrap()))
        .collect()
}

/// A transmit header with these flags and GSO type.
fn tx_header(flags: u8, gso_type: u8) -> Vec<u8> {
    let mut h = vec![0u8; NET_HDR_LEN];
    h[0] = flags;
    h[1] = gso_type;
    h
}

impl Rig {
    /// Transmits one chain whose readable descriptors hold `parts`, in order; the used
    /// length.
    fn transmit(&self, parts: &[&[u8]]) -> u32 {
        let descs: Vec<RawDescriptor> = parts
            .iter()
            .enumerate()
            .map(|(i, part)| {
                let addr = DATA + i as u64 * SLOT;
                self.mem.write_slice(part, GuestAddress(addr)).unwrap();
                let len = u32::try_from(part.len()).unwrap();
                RawDescriptor::from(Descriptor::new(addr, len, 0, 0))
            })
            .collect();
        let vq = MockSplitQueue::new(&self.mem, 16);
        let chain = vq.build_desc_chain(&descs).unwrap();
        lock(&self.dev).process(TX_QUEUE, &self.mem, chain)
    }

    /// Transmits header + frame in one descriptor.
    fn transmit_frame(&self, header: &[u8], frame: &[u8]) -> u32 {
        let whole = [header, frame].concat();
        self.transmit(&[&whole])
    }

    fn sent(&self) -> Vec<Vec<u8>> {
        self.wire.sent.lock().unwrap().clone()
    }

    /// Serves the receive queue; whether the driver is to be interrupted.
    fn serve_rx(&self, q: &mut Queue) -> bool {
        serve_queue(q, RX_QUEUE, &self.mem, &self.dev).unwrap()
    }

    fn read(&self, addr: u64, len: usize) -> Vec<u8> {
        let mut b = vec![0u8; len];
        self.mem.read_slice(&mut b, GuestAddress(addr)).unwrap();
        b
    }
}

/// Receive buffers, one single-descriptor chain of `len` writable bytes each, buffer `i`
/// at DATA + i * SLOT, posted from descriptor `first` on.
fn post_buffers(vq: &MockSplitQueue<'_, GuestMemory>, first: u16, lens: &[u32]) {
    let descs: Vec<RawDescriptor> = lens
        .iter()
        .enumerate()
        .map(|(i, &len)| {
            let slot = u64::from(first) + i as u64;
            RawDescriptor::from(Descriptor::new(DATA + slot * SLOT, len, WRITE, 0))
        })
        .collect();
    vq.add_desc_chains(&descs, first).unwrap();
}

/// The used ring's entry `i`: (head, length).
fn used(vq: &MockSplitQueue<'_, GuestMemory>, i: usize) -> (u32, u32) {
    let e = vq.used().ring().ref_at(i).unwrap().load();
    (e.id(), e.len())
}

/// The header a received frame must carry: no flags, no GSO, one buffer.
fn expected_rx_header() -> Vec<u8> {
    let mut h = vec![0u8; NET_HDR_LEN];
    h[10] = 1;
    h
}

#[test]
fn the_configuration_holds_the_mac_the_link_one_queue_pair_and_the_mtu() {
    let r = rig_with(NetConfig {
        mac: [0x52, 0x54, 0x00, 0xab, 0xcd, 0xef],
        mtu: 1500,
    });
    let dev = lock(&r.dev);
    let c = dev.config();
    assert_eq!(c.len(), CONFIG_LEN);
    assert_eq!(&c[..6], &[0x52, 0x54, 0x00, 0xab, 0xcd, 0xef]);
    assert_eq!(u16::from_le_bytes([c[6], c[7]]), 1, "VIRTIO_NET_S_LINK_UP");
    assert_eq!(u16::from_le_bytes([c[8], c[9]]), 1, "max_virtqueue_pairs");
    assert_eq!(u16::from_le_bytes([c[10], c[11]]), 1500, "mtu");
    assert_eq!(dev.device_type(), 1);
    assert_eq!(dev.num_queues(), 2);
    let default = rig();
    let c = lock(&default.dev).config();
    assert_eq!(&c[..6], &DEFAULT_MAC);
    assert_eq!(u16::from_le_bytes([c[10], c[11]]), 65520, "passt's MTU");
}

#[test]
fn the_features_are_the_ring_configuration_and_merged_buffer_ones_without_offloads() {
    let r = rig();
    let features = lock(&r.dev).features();
    let bit = |n: u32| 1u64 << n;
    assert_eq!(
        features,
        (1 << 32) | (1 << 28) | (1 << 29) | bit(5) | bit(16) | bit(3) | bit(15),
        "VERSION_1, INDIRECT_DESC, EVENT_IDX, MAC, STATUS, MTU, MRG_RXBUF"
    );
    for (name, n) in [
        ("CSUM", VIRTIO_NET_F_CSUM),
        ("GUEST_CSUM", VIRTIO_NET_F_GUEST_CSUM),
        ("HOST_TSO4", VIRTIO_NET_F_HOST_TSO4),
        ("HOST_TSO6", VIRTIO_NET_F_HOST_TSO6),
        ("GUEST_TSO4", VIRTIO_NET_F_GUEST_TSO4),
        ("GUEST_TSO6", VIRTIO_NET_F_GUEST_TSO6),
        ("CTRL_VQ", VIRTIO_NET_F_CTRL_VQ),
        ("MQ", VIRTIO_NET_F_MQ),
    ] {
        assert_eq!(features & bit(n), 0, "{name} is not offered");
    }
}

#[test]
fn a_frame_spread_over_three_descriptors_reaches_the_backend_byte_for_byte() {
    let r = rig();
    let f = frame(1514, 7);
    // The header and the frame's first bytes share a descriptor; the rest is split.
    let first = [tx_header(0, 0), f[..100].to_vec()].concat();
    assert_eq!(r.transmit(&[&first, &f[100..900], &f[900..]]), 0);
    assert_eq!(r.sent(), vec![f]);
    let s = r.host.stats();
    assert_eq!((s.tx_frames, s.tx_bytes), (1, 1514));
}

#[test]
fn malformed_transmissions_are_dropped_and_counted_and_the_next_frame_goes_through() {
    let r = rig();
    // Shorter than the header.
    assert_eq!(r.transmit(&[&[0u8; 5]]), 0);
    // A header and no frame.
    assert_eq!(r.transmit(&[&tx_header(0, 0)]), 0);
    // Less than an Ethernet header.
    assert_eq!(r.transmit_frame(&tx_header(0, 0), &[0xaa; 13]), 0);
    // Longer than any MTU allows.
    assert_eq!(
        r.transmit_frame(&tx_header(0, 0), &frame(MAX_FRAME + 1, 1)),
        0
    );
    // Offloads that were never offered: checksum, then TCP segmentation.
    let csum = u8::try_from(VIRTIO_NET_HDR_F_NEEDS_CSUM).unwrap();
    let tso = u8::try_from(VIRTIO_NET_HDR_GSO_TCPV4).unwrap();
    assert_eq!(r.transmit_frame(&tx_header(csum, 0), &frame(60, 2)), 0);
    assert_eq!(r.transmit_frame(&tx_header(0, tso), &frame(60, 3)), 0);
    assert!(r.sent().is_empty(), "nothing malformed reached the backend");
    let s = r.host.stats();
    assert_eq!((s.tx_malformed, s.tx_offload, s.tx_frames), (4, 2, 0));
    // A good frame after them, and the largest one allowed, still go through.
    let good = frame(60, 9);
    let largest = frame(MAX_FRAME, 4);
    r.transmit_frame(&tx_header(0, 0), &good);
    r.transmit_frame(&tx_header(0, 0), &largest);
    assert_eq!(r.sent(), vec![good, largest]);
    assert_eq!(r.host.stats().tx_frames, 2);
}

#[test]
fn a_backend_error_drops_that_frame_only_and_is_counted() {
    let r = rig();
    r.wire.fail.store(true, Ordering::Relaxed);
    assert_eq!(r.transmit_frame(&tx_header(0, 0), &frame(60, 1)), 0);
    r.wire.fail.store(false, Ordering::Relaxed);
    let next = frame(60, 2);
    r.transmit_frame(&tx_header(0, 0), &next);
    assert_eq!(r.sent(), vec![next]);
    let s = r.host.stats();
    assert_eq!((s.tx_backend_errors, s.tx_frames), (1, 1));
}

#[test]
fn a_frame_fills_one_buffer_behind_a_header_with_one_buffer_and_no_flags() {
    let r = rig();
    let vq = MockSplitQueue::new(&r.mem, 16);
    post_buffers(&vq, 0, &[2048]);
    let mut q: Queue = vq.create_queue().unwrap();
    let f = frame(1514, 5);
    assert!(r.host.push(f.clone()));
    assert!(r.serve_rx(&mut q));
    assert_eq!(used(&vq, 0), (0, 12 + 1514));
    assert_eq!(r.read(DATA, NET_HDR_LEN), expected_rx_header());
    assert_eq!(r.read(DATA + 12, 1514), f);
    let s = r.host.stats();
    assert_eq!((s.rx_frames, s.rx_bytes), (1, 1514));
    assert_eq!(r.host.pending_frames(), 0);
}

#[test]
fn a_frame_spreads_over_the_descriptors_of_one_buffer_as_linux_big_buffers_are() {
    // Linux's "big" receive buffers: the header alone, then pages.
    let r = rig();
    let vq = MockSplitQueue::new(&r.mem, 16);
    let descs = [
        RawDescriptor::from(Descriptor::new(DATA, 12, WRITE, 0)),
        RawDescriptor::from(Descriptor::new(DATA + SLOT, 4096, WRITE, 0)),
        RawDescriptor::from(Descriptor::new(DATA + 2 * SLOT, 4096, WRITE, 0)),
    ];
    vq.build_desc_chain(&descs).unwrap();
    let mut q: Queue = vq.create_queue().unwrap();
    let f = frame(6000, 11);
    assert!(r.host.push(f.clone()));
    assert!(r.serve_rx(&mut q));
    assert_eq!(used(&vq, 0), (0, 12 + 6000));
    assert_eq!(r.read(DATA, NET_HDR_LEN), expected_rx_header());
    assert_eq!(r.read(DATA + SLOT, 4096), f[..4096]);
    assert_eq!(r.read(DATA + 2 * SLOT, 6000 - 4096), f[4096..]);
}

#[test]
fn a_frame_waits_without_a_buffer_and_arrives_when_one_is_posted() {
    let r = rig();
    let vq = MockSplitQueue::new(&r.mem, 16);
    let mut q: Queue = vq.create_queue().unwrap();
    assert!(!lock(&r.dev).ready(RX_QUEUE), "no frame: buffers stay");
    let f = frame(100, 3);
    assert!(r.host.push(f.clone()));
    assert!(
        lock(&r.dev).input_event().unwrap().read().is_ok(),
        "the frame was signalled"
    );
    assert!(lock(&r.dev).ready(RX_QUEUE));
    assert!(!r.serve_rx(&mut q), "no buffer yet: nothing to tell");
    assert_eq!(r.host.pending_frames(), 1, "the frame waits");
    // The driver posts two buffers and kicks: one takes the frame, the other waits.
    post_buffers(&vq, 0, &[2048, 2048]);
    assert!(r.serve_rx(&mut q));
    assert_eq!(q.next_used(), 1, "the second buffer stays in the ring");
    assert_eq!(used(&vq, 0), (0, 12 + 100));
    assert_eq!(r.read(DATA + 12, 100), f);
    // The next frame takes it.
    let g = frame(200, 4);
    assert!(r.host.push(g.clone()));
    assert!(r.serve_rx(&mut q));
    assert_eq!(used(&vq, 1), (1, 12 + 200));
    assert_eq!(r.read(DATA + SLOT + 12, 200), g);
}

#[test]
fn waiting_receive_buffers_do_not_spin_with_event_idx() {
    let r = rig();
    let vq = MockSplitQueue::new(&r.mem, 16);
    post_buffers(&vq, 0, &[2048]);
    let mut q: Queue = vq.create_queue().unwrap();
    q.set_event_idx(true);
    assert!(!r.serve_rx(&mut q));
    assert_eq!(q.next_used(), 0);
}

#[test]
fn a_buffer_too_small_for_the_frame_drops_it_and_the_next_frame_is_delivered() {
    let r = rig();
    let vq = MockSplitQueue::new(&r.mem, 16);
    post_buffers(&vq, 0, &[12 + 1000, 12 + 1000]);
    let mut q: Queue = vq.create_queue().unwrap();
    assert!(r.host.push(frame(1001, 1)));
    let small = frame(1000, 2);
    assert!(r.host.push(small.clone()));
    assert!(r.serve_rx(&mut q));
    assert_eq!(used(&vq, 0), (0, 0), "the first buffer goes back empty");
    assert_eq!(used(&vq, 1), (1, 12 + 1000));
    assert_eq!(r.read(DATA + SLOT + 12, 1000), small);
    let s = r.host.stats();
    assert_eq!((s.rx_no_room, s.rx_frames), (1, 1));
}

#[test]
fn the_frames_waiting_for_a_guest_that_does_not_read_are_bounded_and_drops_counted() {
    let r = rig();
    for i in 0..PENDING_FRAMES {
        assert!(
            r.host.push(frame(60, u8::try_from(i % 256).unwrap())),
            "frame {i}"
        );
    }
    assert!(!r.host.push(frame(60, 0)), "one frame too many");
    assert_eq!(r.host.pending_frames(), PENDING_FRAMES);
    assert_eq!(r.host.stats().rx_overflow, 1);
    // Bytes are bounded too: large frames fill the budget before the count does.
    let r = rig();
    let big = usize::from(DEFAULT_MTU) + 14;
    let fit = PENDING_BYTES / big;
    for _ in 0..fit {
        assert!(r.host.push(frame(big, 0)));
    }
    assert!(!r.host.push(frame(big, 0)));
    assert!(
        r.host.push(frame(60, 0)),
        "a small frame still fits the bytes left"
    );
    assert_eq!(r.host.pending_frames(), fit + 1);
    assert_eq!(r.host.stats().rx_overflow, 1);
}

#[test]
fn host_frames_of_no_ethernet_size_or_over_the_mtu_are_refused() {
    let r = rig_with(NetConfig {
        mtu: 1500,
        ..NetConfig::default()
    });
    assert!(!r.host.push(Vec::new()));
    assert!(!r.host.push(frame(13, 0)));
    assert!(!r.host.push(frame(1500 + 14 + 4 + 1, 0)));
    assert!(
        r.host.push(frame(1500 + 14 + 4, 0)),
        "a VLAN-tagged full frame"
    );
    assert_eq!(r.host.stats().rx_invalid, 3);
    assert_eq!(r.host.pending_frames(), 1);
}

#[test]
fn link_down_and_up_change_the_status_and_signal_a_configuration_change() {
    let r = rig();
    let status = |r: &Rig| {
        let c = lock(&r.dev).config();
        u16::from_le_bytes([c[6], c[7]])
    };
    assert_eq!(status(&r), 1);
    assert!(r.host.push(frame(60, 0)));
    r.host.set_link(false);
    assert_eq!(status(&r), 0);
    assert!(!r.host.link_up());
    assert_eq!(
        lock(&r.dev).config_event().unwrap().read().unwrap(),
        1,
        "the configuration interrupt is due"
    );
    // The unplugged cable carries nothing either way.
    assert_eq!(r.host.pending_frames(), 0, "the waiting frame went");
    assert!(!r.host.push(frame(60, 0)));
    r.transmit_frame(&tx_header(0, 0), &frame(60, 0));
    assert!(r.sent().is_empty());
    let s = r.host.stats();
    assert_eq!((s.rx_discarded, s.tx_link_down), (2, 1));
    // Setting the same state again changes nothing.
    r.host.set_link(false);
    assert!(lock(&r.dev).config_event().unwrap().read().is_err());
    r.host.set_link(true);
    assert_eq!(status(&r), 1);
    assert_eq!(lock(&r.dev).config_event().unwrap().read().unwrap(), 1);
    assert!(r.host.push(frame(60, 0)));
}

#[test]
fn a_reset_forgets_the_waiting_frames_but_not_the_counters() {
    let r = rig();
    r.transmit_frame(&tx_header(0, 0), &frame(60, 0));
    assert!(r.host.push(frame(60, 1)));
    assert!(r.host.push(frame(60, 2)));
    lock(&r.dev).reset();
    assert_eq!(r.host.pending_frames(), 0);
    assert!(!lock(&r.dev).ready(RX_QUEUE));
    let s = r.host.stats();
    assert_eq!((s.rx_discarded, s.tx_frames), (2, 1));
    // The next frame after the reset is signalled again.
    let _ = lock(&r.dev).input_event().unwrap().read();
    assert!(r.host.push(frame(60, 3)));
    assert!(lock(&r.dev).input_event().unwrap().read().is_ok());
}

#[test]
fn a_small_mtu_or_a_multicast_mac_is_refused_with_a_reason() {
    let small = Net::new(
        NetConfig {
            mtu: 67,
            ..NetConfig::default()
        },
        Box::new(Wire::default()),
    )
    .unwrap_err();
    assert!(small.to_string().contains("67"), "{small}");
    let multicast = Net::new(
        NetConfig {
            mac: [0x01, 0, 0x5e, 0, 0, 1],
            ..NetConfig::default()
        },
        Box::new(Wire::default()),
    )
    .unwrap_err();
    assert!(
        multicast.to_string().contains("01:00:5e:00:00:01"),
        "{multicast}"
    );
    assert!(Net::new(
        NetConfig {
            mac: [0; 6],
            ..NetConfig::default()
        },
        Box::new(Wire::default())
    )
    .is_err());
}

/// A rig whose driver accepted merged receive buffers.
fn merged_rig() -> Rig {
    let r = rig();
    lock(&r.dev).set_driver_features(VIRTIO_F_VERSION_1 | (1 << VIRTIO_NET_F_MRG_RXBUF));
    assert!(lock(&r.dev).spans_chains(RX_QUEUE));
    assert!(!lock(&r.dev).spans_chains(TX_QUEUE));
    r
}

/// The header of a merged frame over `n` buffers.
fn merged_header(n: u16) -> Vec<u8> {
    let mut h = vec![0u8; NET_HDR_LEN];
    h[10..12].copy_from_slice(&n.to_le_bytes());
    h
}

#[test]
fn merged_a_frame_fills_as_many_buffers_as_it_needs_and_they_are_published_together() {
    let r = merged_rig();
    let vq = MockSplitQueue::new(&r.mem, 16);
    post_buffers(&vq, 0, &[2048, 2048, 2048, 2048]);
    let mut q: Queue = vq.create_queue().unwrap();
    let f = frame(5000, 9);
    assert!(r.host.push(f.clone()));
    assert!(r.serve_rx(&mut q));
    assert_eq!(q.next_used(), 3, "three buffers used, the fourth waits");
    assert_eq!(
        vq.used().idx().load(),
        3,
        "the ring's index moved once, past all three"
    );
    assert_eq!(used(&vq, 0), (0, 2048));
    assert_eq!(used(&vq, 1), (1, 2048));
    assert_eq!(used(&vq, 2), (2, 12 + 5000 - 4096));
    assert_eq!(r.read(DATA, NET_HDR_LEN), merged_header(3));
    let mut got = r.read(DATA + 12, 2048 - 12);
    got.extend(r.read(DATA + SLOT, 2048));
    got.extend(r.read(DATA + 2 * SLOT, 5000 + 12 - 4096));
    assert_eq!(got, f);
    // A small frame takes one buffer, its header saying so.
    let g = frame(60, 1);
    assert!(r.host.push(g.clone()));
    assert!(r.serve_rx(&mut q));
    assert_eq!(used(&vq, 3), (3, 12 + 60));
    assert_eq!(r.read(DATA + 3 * SLOT, NET_HDR_LEN), merged_header(1));
    assert_eq!(r.read(DATA + 3 * SLOT + 12, 60), g);
    let s = r.host.stats();
    assert_eq!((s.rx_frames, s.rx_bytes, s.rx_no_room), (2, 5060, 0));
}

#[test]
fn merged_a_frame_waits_with_its_buffers_back_in_the_ring_until_enough_are_posted() {
    let r = merged_rig();
    let vq = MockSplitQueue::new(&r.mem, 16);
    post_buffers(&vq, 0, &[2048, 2048]);
    let mut q: Queue = vq.create_queue().unwrap();
    // The mock's used ring starts inside the available ring's `used_event`: one of its own
    // (at 0x4000) keeps the two apart, as a driver's are.
    q.set_used_ring_address(Some(0x4000), Some(0));
    q.set_event_idx(true);
    let f = frame(5000, 2);
    assert!(r.host.push(f.clone()));
    assert!(!r.serve_rx(&mut q), "nothing was used");
    assert_eq!(
        (q.next_used(), q.next_avail()),
        (0, 0),
        "the two buffers went back"
    );
    assert_eq!(r.host.pending_frames(), 1, "the frame waits");
    // The driver is asked to ring when it posts the next buffer: avail_event is its index.
    let avail_event = GuestAddress(q.used_ring() + 4 + 8 * 16);
    assert_eq!(r.mem.read_obj::<u16>(avail_event).unwrap(), 2);
    post_buffers(&vq, 2, &[2048]);
    let notify = r.serve_rx(&mut q);
    assert_eq!((q.next_used(), q.next_avail()), (3, 3));
    assert!(notify);
    assert_eq!(r.read(DATA, NET_HDR_LEN), merged_header(3));
    let mut got = r.read(DATA + 12, 2048 - 12);
    got.extend(r.read(DATA + SLOT, 2048));
    got.extend(r.read(DATA + 2 * SLOT, 5000 + 12 - 4096));
    assert_eq!(got, f);
    assert_eq!(r.host.pending_frames(), 0);
}

#[test]
fn merged_a_frame_no_ring_can_hold_is_dropped_and_the_buffers_go_back_empty() {
    let r = merged_rig();
    let vq = MockSplitQueue::new(&r.mem, 256);
    let descs: Vec<RawDescriptor> = (0..256u64)
        .map(|i| RawDescriptor::from(Descriptor::new(DATA + i * 64, 64, WRITE, 0)))
        .collect();
    vq.add_desc_chains(&descs, 0).unwrap();
    let mut q: Queue = vq.create_queue().unwrap();
    assert!(r.host.push(frame(65_534, 0)));
    assert!(r.serve_rx(&mut q));
    assert_eq!(q.next_used(), 256);
    assert!(
        (0..256).all(|i| used(&vq, i).1 == 0),
        "every buffer back empty"
    );
    let s = r.host.stats();
    assert_eq!((s.rx_frames, s.rx_no_room), (0, 1));
    assert_eq!(r.host.pending_frames(), 0);
}
