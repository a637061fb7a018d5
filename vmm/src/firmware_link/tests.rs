//! The firmware link: its messages, both ends' handling of what the other sends, and the
//! graphics process's side end to end (`device gpu` served in this process, 2D, unconfined):
//! a framebuffer described on the link reaches the app's display, and the app's keys come
//! back on the link until the guest binds the virtio keyboard.

#![allow(
    clippy::unwrap_used,
    clippy::cast_possible_truncation,
    reason = "a test: test patterns are taken modulo 256"
)]

use super::*;
use crate::console_conn::client::{ConsoleClient, Received};
use crate::devices::bus::lock;
use crate::devices::legacy::ramfb::RamfbConfig;
use crate::devices::virtio::gpu::display::NullSink;
use crate::devices::virtio::gpu::Gpu;
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::mpsc::{channel, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use vm_memory::{Bytes, GuestAddress};

fn all_messages() -> [Message; 4] {
    [
        Message::Ramfb(FramebufferAt {
            address: 0x1_2345_6000,
            file_offset: 0x2345_6000,
            width: 1280,
            height: 800,
            stride: 5120,
        }),
        Message::RamfbOff,
        Message::Key {
            code: 108,
            down: true,
        },
        Message::Key {
            code: 28,
            down: false,
        },
    ]
}

#[test]
fn every_message_round_trips_one_after_another() {
    let mut stream = Vec::new();
    for m in all_messages() {
        let bytes = m.encode();
        assert_eq!(Message::decode(&bytes).unwrap(), (m, bytes.len()));
        stream.extend_from_slice(&bytes);
    }
    let mut at = 0;
    for m in all_messages() {
        let (got, used) = Message::decode(&stream[at..]).unwrap();
        assert_eq!(got, m);
        at += used;
    }
    assert_eq!(at, stream.len());
}

fn header(kind: u32, len: u32) -> Vec<u8> {
    let mut b = kind.to_le_bytes().to_vec();
    b.extend_from_slice(&len.to_le_bytes());
    b
}

#[test]
fn truncated_oversized_unknown_and_malformed_messages_are_refused_with_their_reason() {
    let ramfb = all_messages()[0].encode();
    assert!(matches!(
        Message::decode(&ramfb[..5]),
        Err(LinkError::Truncated { needed: 8, got: 5 })
    ));
    assert!(matches!(
        Message::decode(&ramfb[..ramfb.len() - 1]),
        Err(LinkError::Truncated {
            needed: 36,
            got: 35
        })
    ));
    // An announced length is refused before anything more is read.
    for len in [MAX_PAYLOAD + 1, u32::MAX] {
        assert!(matches!(
            check_header(&header(KEY, len)),
            Err(LinkError::Oversized(n)) if n == len
        ));
    }
    assert!(matches!(
        Message::decode(&header(99, 0)),
        Err(LinkError::Unknown(99))
    ));
    let mut long_key = header(KEY, 8);
    long_key.extend_from_slice(&[0; 8]);
    assert!(matches!(
        Message::decode(&long_key),
        Err(LinkError::Length { kind: KEY, len: 8 })
    ));
    let mut half_pressed = header(KEY, 4);
    half_pressed.extend_from_slice(&[30, 0, 2, 0]);
    assert!(matches!(
        Message::decode(&half_pressed),
        Err(LinkError::Malformed(_))
    ));
    // And each reads as a sentence.
    let e = Message::decode(&header(99, 0)).unwrap_err().to_string();
    assert!(
        e.starts_with("The firmware link") && e.ends_with('.'),
        "{e}"
    );
}

/// A VMM end whose keys arrive on the returned channel, attached to one end of a pair; the
/// other end plays the graphics process.
fn vmm_end() -> (FirmwareLink, UnixStream, Receiver<(u16, bool)>) {
    let (tx, rx) = channel();
    let tx = Mutex::new(tx);
    let link = FirmwareLink::new(Arc::new(move |code, down| {
        let _ = lock(&tx).send((code, down));
    }));
    let (ours, process) = UnixStream::pair().unwrap();
    link.attach(ours).unwrap();
    (link, process, rx)
}

/// Whether the other side closed `stream` within a few seconds.
fn closed(stream: &mut UnixStream) -> bool {
    use std::io::Read;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut b = [0u8; 64];
    loop {
        match stream.read(&mut b) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(_) => return false,
        }
    }
}

#[test]
fn the_vmm_takes_keys_ignores_codes_that_are_no_keys_and_drops_a_misbehaving_process() {
    let (_link, mut process, keys) = vmm_end();
    let wait = Duration::from_secs(5);
    for m in [
        Message::Key {
            code: 30,
            down: true,
        },
        Message::Key {
            code: 0x300,
            down: true,
        },
        Message::Key {
            code: 30,
            down: false,
        },
    ] {
        process.write_all(&m.encode()).unwrap();
    }
    assert_eq!(keys.recv_timeout(wait), Ok((30, true)));
    assert_eq!(
        keys.recv_timeout(wait),
        Ok((30, false)),
        "0x300 was skipped"
    );

    // Each of these closes the link; the keys that follow it go nowhere.
    let ramfb_from_the_process = Message::RamfbOff.encode();
    for garbage in [header(KEY, 1 << 20), header(7, 0), ramfb_from_the_process] {
        let (link, mut process, keys) = vmm_end();
        process.write_all(&garbage).unwrap();
        let after = Message::Key {
            code: 30,
            down: true,
        };
        let _ = process.write_all(&after.encode());
        assert!(closed(&mut process), "the VMM let go of the link");
        assert!(keys.recv_timeout(Duration::from_millis(200)).is_err());
        // Its own sends fail quietly (the VM runs on) and it lets go of the connection.
        link.hide_ramfb();
        assert!(!link.connected());
    }
}

/// 16 MiB of guest RAM with an XRGB pattern at `address`, rows `stride` apart (the bytes
/// between rows are 0xee): the RAM, and each row's pixels as the display should show them.
fn ram_with_pattern(
    address: u64,
    width: u32,
    height: u32,
    stride: u32,
) -> (crate::memory::GuestRam, Vec<Vec<u8>>) {
    let ram = crate::memory::create(16 << 20).unwrap();
    let mut rows = Vec::new();
    for y in 0..height {
        let mut row = vec![0xee; stride as usize];
        for x in 0..width as usize {
            let px = [x as u8, y as u8, (x * 3 + y as usize) as u8, 0xff];
            row[x * 4..x * 4 + 4].copy_from_slice(&px);
        }
        let at = address + u64::from(y) * u64::from(stride);
        ram.memory.write_slice(&row, GuestAddress(at)).unwrap();
        row.truncate(width as usize * 4);
        rows.push(row);
    }
    (ram, rows)
}

fn memfd_of(ram: &crate::memory::GuestRam) -> std::fs::File {
    ram.file.try_clone().unwrap()
}

#[test]
fn a_framebuffer_is_mapped_from_the_memfd_only_when_it_lies_inside() {
    let address = 0x80_0040;
    let (ram, rows) = ram_with_pattern(address, 16, 4, 96);
    let at = FramebufferAt {
        address,
        file_offset: address,
        width: 16,
        height: 4,
        stride: 96,
    };
    let (config, memory) = gpu_end::map_framebuffer(&at, memfd_of(&ram)).unwrap();
    assert_eq!(config.stride, 96);
    let mut row = vec![0u8; 64];
    memory
        .read_slice(&mut row, GuestAddress(address + 3 * 96))
        .unwrap();
    assert_eq!(row, rows[3], "the mapping shows the guest's pixels");

    let refused = |at: FramebufferAt| gpu_end::map_framebuffer(&at, memfd_of(&ram)).unwrap_err();
    let past_the_end = FramebufferAt {
        address: (16 << 20) - 64,
        file_offset: (16 << 20) - 64,
        ..at
    };
    assert!(matches!(
        refused(past_the_end),
        LinkError::Ramfb(RamfbError::OutsideRam { .. })
    ));
    let wrapping = FramebufferAt {
        address: u64::MAX - 100,
        file_offset: (u64::MAX - 100) % 4096,
        ..at
    };
    assert!(matches!(refused(wrapping), LinkError::Ramfb(_)));
    let askew = FramebufferAt {
        file_offset: address + 4,
        ..at
    };
    assert!(matches!(refused(askew), LinkError::Malformed(_)));
    let huge = FramebufferAt { width: 9000, ..at };
    assert!(matches!(
        refused(huge),
        LinkError::Ramfb(RamfbError::Size { .. })
    ));
    let short_rows = FramebufferAt { stride: 32, ..at };
    assert!(matches!(
        refused(short_rows),
        LinkError::Ramfb(RamfbError::Stride { .. })
    ));
}

fn wait_for(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn the_graphics_process_drops_a_vmm_that_sends_what_only_it_sends() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("boot.sock");
    let gpu = Arc::new(Mutex::new(
        Gpu::new(&[(640, 480)], Box::new(NullSink)).unwrap(),
    ));
    let keys = FirmwareKeys::default();
    let _server = FirmwareLinkServer::listen(&socket, gpu, keys.clone()).unwrap();
    let mut vmm = UnixStream::connect(&socket).unwrap();
    // A framebuffer without its memory is refused, and the link stays.
    let no_memory = all_messages()[0].encode();
    vmm.write_all(&no_memory).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !keys.key(1, false) {
        assert!(Instant::now() < deadline, "the VMM was never attached");
        std::thread::sleep(Duration::from_millis(10));
    }
    // A key is the process's to send: the link goes, and keys no longer reach it.
    vmm.write_all(&all_messages()[2].encode()).unwrap();
    assert!(closed(&mut vmm));
    assert!(!keys.key(1, false));
}

/// The first scanout of `width` the viewer gets within 10 seconds, and its rows.
fn frame_of_width(viewer: &mut ConsoleClient, width: u32, height: u32) -> Vec<Vec<u8>> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "no {width}-pixel frame reached the display"
        );
        let Some(Received::Scanout { info, buffer }) = viewer.recv_timeout(left).unwrap() else {
            continue;
        };
        let crate::console_conn::Message::Scanout {
            scanout: 0,
            width: w,
            height: h,
            stride,
            offset,
            ..
        } = info
        else {
            continue;
        };
        if (w, h) != (width, height) {
            continue;
        }
        return (0..height)
            .map(|y| {
                let mut row = vec![0u8; width as usize * 4];
                assert!(buffer.read(offset as usize + (y * stride) as usize, &mut row));
                row
            })
            .collect();
    }
}

#[test]
fn ramfb_on_the_link_reaches_the_display_and_keys_come_back_until_the_keyboard_is_bound() {
    use crate::config::Renderer;
    use crate::console_conn::Message as ViewerMessage;
    use crate::devices::virtio::input::InputKind;
    use crate::devices::virtio::pci::harness::Driver;
    use crate::devices::virtio::VIRTIO_F_VERSION_1;
    use crate::vhost_user::gpu::input_socket_path;
    use crate::vhost_user::{serve_gpu, GpuServeOptions, VhostUserEngine};

    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);
    let options = GpuServeOptions {
        socket: p("gpu.sock"),
        width: 640,
        height: 480,
        input_socket: Some(p("in")),
        console: Some(p("console.sock")),
        boot_socket: Some(p("boot.sock")),
        dump_scanout: None,
        renderer: Renderer::TwoD,
        sandbox: false,
        host_visible_mib: 0,
    };
    let process = std::thread::spawn(move || serve_gpu(&options));
    // The GPU's socket comes last, as a VMM waits for it.
    wait_for(&p("gpu.sock"));
    let (tx, keys) = channel();
    let tx = Mutex::new(tx);
    let link = FirmwareLink::new(Arc::new(move |code, down| {
        let _ = lock(&tx).send((code, down));
    }));
    link.connect(&p("boot.sock")).unwrap();
    let mut viewer = ConsoleClient::connect(&p("console.sock")).unwrap();

    // Not page-aligned, rows padded: the display gets exactly the guest's pixels.
    let (address, width, height, stride) = (0x80_0040, 40, 30, 192);
    let (ram, rows) = ram_with_pattern(address, width, height, stride);
    let config = RamfbConfig::new(address, width, height, stride).unwrap();
    link.show_ramfb(&config, &ram.memory);
    assert_eq!(frame_of_width(&mut viewer, width, height), rows);

    // A new machine: none, then another framebuffer in its new RAM (rows packed).
    link.hide_ramfb();
    let (ram2, rows2) = ram_with_pattern(0x90_0000, 24, 8, 96);
    let config2 = RamfbConfig::new(0x90_0000, 24, 8, 0).unwrap();
    link.show_ramfb(&config2, &ram2.memory);
    assert_eq!(frame_of_width(&mut viewer, 24, 8), rows2);

    // No driver has bound the virtio keyboard: the app's keys come back for PS/2.
    let wait = Duration::from_secs(5);
    viewer
        .send(ViewerMessage::Key {
            code: 108,
            down: true,
        })
        .unwrap();
    assert_eq!(keys.recv_timeout(wait), Ok((108, true)));

    // A driver binds it (it selects what to read, then starts the queues): keys go there.
    let keyboard = input_socket_path(&p("in"), InputKind::Keyboard);
    let engine = VhostUserEngine::connect(18, 136, &keyboard, 256).unwrap();
    let mut driver = Driver::with_engine(Box::new(engine), ram.memory.clone());
    assert!(driver.negotiate(VIRTIO_F_VERSION_1));
    driver.w(0x2000, 1, 1);
    driver.enable_msix_vectors(2);
    driver.setup_ring(0);
    driver.setup_ring(1);
    driver.w(0x14, 0xf, 1);
    assert_eq!(driver.status() & 0x80, 0, "activation failed");
    let event_at = 0x30_0000;
    let n = driver.post(0, &[(event_at, 8, true)]);
    viewer
        .send(ViewerMessage::Key {
            code: 28,
            down: true,
        })
        .unwrap();
    driver.wait_ring(0, n);
    let mut event = [0u8; 8];
    driver
        .mem
        .read_slice(&mut event, GuestAddress(event_at))
        .unwrap();
    assert_eq!(
        event,
        [1, 0, 28, 0, 1, 0, 0, 0],
        "EV_KEY 28 down, in virtio"
    );
    assert!(
        keys.recv_timeout(Duration::from_millis(300)).is_err(),
        "and not on the link"
    );

    // The VMM goes: the process's frontends disconnect and it ends.
    drop(driver);
    drop(link);
    let tablet = input_socket_path(&p("in"), InputKind::Tablet);
    drop(VhostUserEngine::connect(18, 136, &tablet, 256).unwrap());
    drop(VhostUserEngine::connect(16, 16, &p("gpu.sock"), 256).unwrap());
    assert!(process.join().unwrap().is_ok());
}
