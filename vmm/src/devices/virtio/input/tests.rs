//! virtio-input: the configuration-space answers Linux's driver asks for, events in
//! order with their SYN_REPORT, buffers waiting for events, and the selectors written
//! through the virtio-pci transport and over vhost-user.

use super::*;
use crate::devices::virtio::serve_queue;
use virtio_queue::desc::{split::Descriptor, RawDescriptor};
use virtio_queue::mock::MockSplitQueue;
use virtio_queue::{Queue, QueueT};
use vm_memory::{Bytes, GuestAddress};

fn ask(dev: &mut Input, select: u8, subsel: u8) -> Vec<u8> {
    dev.write_config(0, &[select, subsel]);
    let c = dev.config();
    assert_eq!((c[0], c[1]), (select, subsel));
    c[8..8 + usize::from(c[2])].to_vec()
}

fn has_bit(bits: &[u8], code: u16) -> bool {
    bits.get(usize::from(code / 8))
        .is_some_and(|b| b & (1 << (code % 8)) != 0)
}

#[test]
fn keyboard_describes_itself_as_linux_expects() {
    let (mut k, _) = Input::new(InputKind::Keyboard).unwrap();
    assert_eq!(ask(&mut k, CFG_ID_NAME, 0), b"Phyllome Virtio Keyboard");
    let ids = ask(&mut k, CFG_ID_DEVIDS, 0);
    assert_eq!(u16::from_le_bytes([ids[0], ids[1]]), BUS_VIRTUAL);
    let keys = ask(&mut k, CFG_EV_BITS, EV_KEY as u8);
    for code in [1u16, 30, 28, 57, 125, 248] {
        assert!(has_bit(&keys, code), "KEY {code}");
    }
    assert!(!has_bit(&keys, BTN_LEFT));
    assert!(ask(&mut k, CFG_EV_BITS, EV_ABS as u8).is_empty(), "no axes");
    assert!(ask(&mut k, CFG_ABS_INFO, ABS_X as u8).is_empty());
    assert!(ask(&mut k, 0x7f, 0).is_empty(), "unknown selector: size 0");
}

#[test]
fn tablet_has_absolute_axes_buttons_and_wheels() {
    let (mut t, _) = Input::new(InputKind::Tablet).unwrap();
    assert_eq!(ask(&mut t, CFG_ID_NAME, 0), b"Phyllome Virtio Tablet");
    let abs = ask(&mut t, CFG_EV_BITS, EV_ABS as u8);
    assert!(has_bit(&abs, ABS_X) && has_bit(&abs, ABS_Y));
    let keys = ask(&mut t, CFG_EV_BITS, EV_KEY as u8);
    assert!(has_bit(&keys, BTN_LEFT) && has_bit(&keys, BTN_RIGHT) && has_bit(&keys, BTN_MIDDLE));
    assert!(!has_bit(&keys, 30), "no letters on a tablet");
    let rel = ask(&mut t, CFG_EV_BITS, EV_REL as u8);
    assert!(has_bit(&rel, REL_WHEEL) && has_bit(&rel, REL_HWHEEL));
    let info = ask(&mut t, CFG_ABS_INFO, ABS_Y as u8);
    assert_eq!(info.len(), 20);
    assert_eq!(
        u32::from_le_bytes(info[4..8].try_into().unwrap()),
        TABLET_MAX
    );
}

/// An event queue holding `n` one-descriptor chains of 8 writable bytes, buffer `i` at
/// 0x8000 + i * 0x100.
fn event_buffers(mem: &GuestMemory, n: u64) -> Queue {
    let descs: Vec<RawDescriptor> = (0..n)
        .map(|i| RawDescriptor::from(Descriptor::new(0x8000 + i * 0x100, 8, 2, 0)))
        .collect();
    let vq = MockSplitQueue::new(mem, 16);
    vq.add_desc_chains(&descs, 0).unwrap();
    vq.create_queue().unwrap()
}

/// The event the device wrote into buffer `i`: (type, code, value).
fn event_in(mem: &GuestMemory, i: u64) -> (u16, u16, u32) {
    let mut b = [0u8; 8];
    mem.read_slice(&mut b, GuestAddress(0x8000 + i * 0x100))
        .unwrap();
    (
        u16::from_le_bytes([b[0], b[1]]),
        u16::from_le_bytes([b[2], b[3]]),
        u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
    )
}

#[test]
fn events_wait_for_buffers_and_arrive_in_order_with_syn() {
    let mem = GuestMemory::from_ranges(&[(GuestAddress(0), 0x10_0000)]).unwrap();
    let (dev, input) = Input::new(InputKind::Keyboard).unwrap();
    let core = std::sync::Mutex::new(dev);
    let mut q = event_buffers(&mem, 3);
    assert!(
        !serve_queue(&mut q, EVENT_QUEUE, &mem, &core).unwrap(),
        "nothing to send yet"
    );
    assert!(input.key(30, true));
    assert!(serve_queue(&mut q, EVENT_QUEUE, &mem, &core).unwrap());
    assert_eq!(event_in(&mem, 0), (EV_KEY, 30, 1), "KEY_A down");
    assert_eq!(event_in(&mem, 1), (EV_SYN, SYN_REPORT, 0));
    assert_eq!(q.next_used(), 2, "the third buffer still waits");
}

#[test]
fn a_guest_that_never_reads_loses_events_not_memory() {
    let (_dev, input) = Input::new(InputKind::Tablet).unwrap();
    let mut sent = 0;
    while input.pointer(1, 2) {
        sent += 1;
    }
    assert_eq!(sent, EVENT_CAPACITY / 3);
}

#[test]
fn selectors_written_through_virtio_pci_change_what_config_shows() {
    use crate::devices::virtio::pci::harness::Driver;
    use crate::devices::virtio::pci::LocalEngine;
    let mem = GuestMemory::from_ranges(&[(GuestAddress(0), 0x40_0000)]).unwrap();
    let (dev, _) = Input::new(InputKind::Tablet).unwrap();
    let mut d = Driver::with_engine(Box::new(LocalEngine::new(Box::new(dev))), mem);
    d.w(0x2000, u64::from(CFG_ID_NAME), 1);
    d.w(0x2001, 0, 1);
    assert_eq!(d.r(0x2002, 1), 22, "size of the name");
    let name: Vec<u8> = (0..22).map(|i| d.r(0x2008 + i, 1) as u8).collect();
    assert_eq!(name, b"Phyllome Virtio Tablet");
}

#[test]
fn selectors_reach_a_vhost_user_backend() {
    use crate::devices::virtio::pci::QueueEngine;
    use crate::vhost_user::VhostUserEngine;
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("input.sock");
    let (dev, _) = Input::new(InputKind::Keyboard).unwrap();
    let sock = socket.clone();
    let backend = std::thread::spawn(move || crate::vhost_user::serve("t", dev, &sock));
    while !socket.exists() {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let mut engine = VhostUserEngine::connect(18, 136, &socket, 64).unwrap();
    engine.write_config(0, &[CFG_ID_NAME, 0]);
    let c = engine.config();
    assert_eq!(&c[8..8 + usize::from(c[2])], b"Phyllome Virtio Keyboard");
    drop(engine);
    assert!(backend.join().unwrap().is_ok());
}

#[test]
fn wheel_clicks_arrive_as_relative_wheel_events_with_their_sign() {
    let mem = GuestMemory::from_ranges(&[(GuestAddress(0), 0x10_0000)]).unwrap();
    let (dev, input) = Input::new(InputKind::Tablet).unwrap();
    let core = std::sync::Mutex::new(dev);
    let mut q = event_buffers(&mem, 4);
    assert!(
        input.wheel(0, 0),
        "no clicks: nothing to send, nothing refused"
    );
    assert!(!serve_queue(&mut q, EVENT_QUEUE, &mem, &core).unwrap());
    assert!(input.wheel(1, -2));
    assert!(serve_queue(&mut q, EVENT_QUEUE, &mem, &core).unwrap());
    // The value field carries the signed count in two's complement.
    let read = |i| {
        let (kind, code, value) = event_in(&mem, i);
        (kind, code, i32::from_ne_bytes(value.to_ne_bytes()))
    };
    assert_eq!(read(0), (EV_REL, REL_WHEEL, -2), "two clicks down");
    assert_eq!(read(1), (EV_REL, REL_HWHEEL, 1), "one click right");
    assert_eq!(read(2), (EV_SYN, SYN_REPORT, 0));
}
