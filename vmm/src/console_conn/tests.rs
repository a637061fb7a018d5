//! The console connection end to end: a GPU sink on one side, a viewer on the other.

#![allow(
    clippy::cast_possible_truncation,
    reason = "test patterns are taken modulo 256"
)]

use super::buffer::SharedBuffer;
use super::client::{ConsoleClient, Received};
use super::server::ConsoleServer;
use super::*;
use crate::devices::virtio::gpu::display::{Cursor, DisplaySink, Frame};
use crate::devices::virtio::gpu::protocol::FORMAT_B8G8R8X8_UNORM;
use std::sync::mpsc::channel;
use std::time::Duration;

#[test]
fn every_message_round_trips_and_unknown_kinds_are_refused() {
    let all = [
        Message::Scanout {
            scanout: 1,
            width: 2,
            height: 3,
            stride: 8,
            format: 2,
            offset: 16,
            buffer: 7,
        },
        Message::Update {
            scanout: 0,
            x: 1,
            y: 2,
            width: 3,
            height: 4,
        },
        Message::Disabled { scanout: 2 },
        Message::Cursor {
            scanout: 0,
            width: 64,
            height: 64,
            hot_x: 1,
            hot_y: 2,
        },
        Message::CursorPos {
            scanout: 0,
            x: 5,
            y: 6,
        },
        Message::Key {
            code: 30,
            down: true,
        },
        Message::Pointer { x: 100, y: 32767 },
        Message::FrameDone,
        Message::Button {
            code: 0x110,
            down: false,
        },
        Message::Resize {
            scanout: 0,
            width: 1280,
            height: 800,
        },
        Message::Wheel { dx: 0, dy: -3 },
        Message::Wheel { dx: 2, dy: 1 },
    ];
    for m in all {
        assert_eq!(Message::decode(&m.encode()).unwrap(), m);
    }
    let mut bad = [0u8; MSG_LEN];
    bad[0] = 99;
    assert!(matches!(Message::decode(&bad), Err(ConnError::Unknown(99))));
}

fn frame(buffer: &SharedBuffer, w: u32, h: u32, damage: (u32, u32, u32, u32)) -> Frame<'_> {
    Frame {
        scanout: 0,
        width: w,
        height: h,
        stride: w * 4,
        format: FORMAT_B8G8R8X8_UNORM,
        buffer,
        offset: 0,
        damage,
    }
}

#[test]
fn a_viewer_gets_the_buffer_damage_and_cursor_and_its_input_reaches_the_device() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("display.sock");
    let (tx, rx) = channel();
    let (server, mut sink) = ConsoleServer::listen(&path, move |m| {
        let _ = tx.send(m);
    })
    .unwrap();
    let (w, h) = (8u32, 4u32);
    let first: Vec<u8> = (0..w * h * 4).map(|i| (i % 256) as u8).collect();
    // The device's buffer (a GPU resource's pixels). A frame before anyone watches: kept,
    // and shown to the viewer when it attaches.
    let device_buffer = SharedBuffer::create(first.len()).unwrap();
    device_buffer.write(0, &first);
    sink.frame(&frame(&device_buffer, w, h, (0, 0, w, h)));

    let mut viewer = ConsoleClient::connect(&path).unwrap();
    let Received::Scanout { info, buffer } = viewer.recv().unwrap() else {
        panic!("the scanout comes first");
    };
    assert_eq!(
        info,
        Message::Scanout {
            scanout: 0,
            width: w,
            height: h,
            stride: w * 4,
            format: FORMAT_B8G8R8X8_UNORM,
            offset: 0,
            buffer: device_buffer.id() as u32,
        }
    );
    let Received::Other(full) = viewer.recv().unwrap() else {
        panic!()
    };
    assert_eq!(
        full,
        Message::Update {
            scanout: 0,
            x: 0,
            y: 0,
            width: w,
            height: h
        }
    );
    let mut seen = vec![0u8; first.len()];
    assert!(buffer.read(0, &mut seen));
    assert_eq!(seen, first);

    // A 2x2 change at (3, 1): written in place by the device, announced as damage.
    let mut second = first.clone();
    for y in 1..3usize {
        for x in 3..5usize {
            second[(y * 8 + x) * 4..(y * 8 + x) * 4 + 4].copy_from_slice(&[0xaa; 4]);
        }
    }
    device_buffer.write(0, &second);
    sink.frame(&frame(&device_buffer, w, h, (3, 1, 2, 2)));
    let Received::Other(update) = viewer.recv().unwrap() else {
        panic!()
    };
    assert_eq!(
        update,
        Message::Update {
            scanout: 0,
            x: 3,
            y: 1,
            width: 2,
            height: 2
        }
    );
    assert!(buffer.read(0, &mut seen));
    assert_eq!(seen, second, "the viewer's mapping shows the new pixels");

    // A page flip: the scanout shows another buffer (the viewer maps it), then the first
    // again (the viewer keeps its mapping: the same shared pages, no new mmap).
    let flipped = SharedBuffer::create(first.len()).unwrap();
    flipped.write(0, &first);
    sink.frame(&frame(&flipped, w, h, (0, 0, w, h)));
    let Received::Scanout {
        info,
        buffer: other,
    } = viewer.recv().unwrap()
    else {
        panic!("a new buffer is announced");
    };
    assert!(matches!(info, Message::Scanout { buffer, .. } if buffer == flipped.id() as u32));
    assert!(!std::sync::Arc::ptr_eq(&other, &buffer));
    assert!(matches!(
        viewer.recv().unwrap(),
        Received::Other(Message::Update { .. })
    ));
    sink.frame(&frame(&device_buffer, w, h, (0, 0, w, h)));
    let Received::Scanout { buffer: again, .. } = viewer.recv().unwrap() else {
        panic!("the first buffer is announced again");
    };
    assert!(
        std::sync::Arc::ptr_eq(&again, &buffer),
        "the mapping was reused"
    );
    assert!(matches!(
        viewer.recv().unwrap(),
        Received::Other(Message::Update { .. })
    ));

    // Cursor image and position.
    let cursor = vec![0x55u8; 64 * 64 * 4];
    sink.cursor(
        0,
        &Cursor::Image {
            width: 64,
            height: 64,
            hot: (1, 2),
            pixels: cursor.clone(),
        },
    );
    let Received::Cursor { info, pixels } = viewer.recv().unwrap() else {
        panic!()
    };
    assert_eq!(
        info,
        Message::Cursor {
            scanout: 0,
            width: 64,
            height: 64,
            hot_x: 1,
            hot_y: 2
        }
    );
    assert_eq!(pixels, cursor);
    sink.cursor_moved(0, 10, 20);
    let Received::Other(pos) = viewer.recv().unwrap() else {
        panic!()
    };
    assert_eq!(
        pos,
        Message::CursorPos {
            scanout: 0,
            x: 10,
            y: 20
        }
    );

    // Input back to the device.
    viewer
        .send(Message::Key {
            code: 30,
            down: true,
        })
        .unwrap();
    viewer
        .send(Message::Resize {
            scanout: 0,
            width: 1280,
            height: 800,
        })
        .unwrap();
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(5)).unwrap(),
        Message::Key {
            code: 30,
            down: true
        }
    );
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(5)).unwrap(),
        Message::Resize {
            scanout: 0,
            width: 1280,
            height: 800
        }
    );

    sink.disabled(0);
    let Received::Other(off) = viewer.recv().unwrap() else {
        panic!()
    };
    assert_eq!(off, Message::Disabled { scanout: 0 });

    // The device side going away ends the viewer's connection, not the viewer.
    drop(server);
    assert!(viewer.recv().is_err());
    assert!(!path.exists());
}

#[test]
fn a_viewer_that_dies_does_not_stop_the_display() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("display.sock");
    let (server, mut sink) = ConsoleServer::listen(&path, |_| {}).unwrap();
    let viewer = ConsoleClient::connect(&path).unwrap();
    while !server.viewer_attached() {
        std::thread::sleep(Duration::from_millis(5));
    }
    drop(viewer);
    let px = SharedBuffer::create(4 * 4 * 4).unwrap();
    px.write(0, &[1u8; 4 * 4 * 4]);
    for _ in 0..3 {
        sink.frame(&frame(&px, 4, 4, (0, 0, 4, 4)));
    }
    // A new viewer attaches and gets the current image.
    let mut again = ConsoleClient::connect(&path).unwrap();
    let Received::Scanout { buffer, .. } = again.recv().unwrap() else {
        panic!()
    };
    let mut seen = vec![0u8; px.len()];
    assert!(buffer.read(0, &mut seen));
    assert_eq!(seen, vec![1u8; 4 * 4 * 4]);
}

/// A viewer that says when it showed a frame is paced: after an update the device is told
/// to hold frames until FRAME_DONE (or 100 ms); a viewer that never says so is not.
#[test]
fn a_viewer_that_acknowledges_frames_paces_the_device() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("display.sock");
    let (done_tx, done_rx) = channel();
    let (_server, mut sink) = ConsoleServer::listen(&socket, move |m| {
        if m == Message::FrameDone {
            let _ = done_tx.send(());
        }
    })
    .unwrap();
    let buffer = SharedBuffer::create(16 * 16 * 4).unwrap();
    let frame = |sink: &mut dyn DisplaySink| {
        sink.frame(&Frame {
            scanout: 0,
            width: 16,
            height: 16,
            stride: 64,
            format: FORMAT_B8G8R8X8_UNORM,
            buffer: &buffer,
            offset: 0,
            damage: (0, 0, 16, 16),
        });
    };
    assert!(sink.wants_frame(0), "no viewer: nothing to wait for");
    let mut viewer = ConsoleClient::connect(&socket).unwrap();
    frame(&mut sink);
    assert!(matches!(viewer.recv().unwrap(), Received::Scanout { .. }));
    assert!(
        sink.wants_frame(0),
        "a viewer that never acknowledges gets every frame"
    );
    viewer.send(Message::FrameDone).unwrap();
    done_rx.recv_timeout(Duration::from_secs(5)).unwrap();
    frame(&mut sink);
    assert!(!sink.wants_frame(0), "shown, not yet acknowledged");
    viewer.send(Message::FrameDone).unwrap();
    done_rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert!(sink.wants_frame(0), "acknowledged");
    frame(&mut sink);
    assert!(!sink.wants_frame(0));
    std::thread::sleep(Duration::from_millis(150));
    assert!(
        sink.wants_frame(0),
        "a viewer that stays silent is not waited on for long"
    );
}
