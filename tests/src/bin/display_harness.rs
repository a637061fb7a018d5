//! Drives Phyllome's virtio-gpu device the way a guest driver would (descriptors in guest
//! memory, virtio-pci registers, doorbells) to show a known picture, and serves it on a
//! console connection: `display_harness SOCKET`. Prints `READY` once the picture is
//! flushed, and one `INPUT <message>` line per message a viewer sends; `PATCH` on stdin
//! changes one small rectangle (printing `PATCHED`). Used by the app's
//! display test; runs until killed.

#![allow(
    clippy::unwrap_used,
    clippy::print_stdout,
    clippy::cast_possible_truncation,
    reason = "a test harness with small, fixed sizes"
)]

use phyllome_tests::gpu_guest::GpuGuest;
use phyllome_vmm::console_conn::server::ConsoleServer;
use phyllome_vmm::devices::virtio::gpu::protocol::Rect;
use std::io::Write;

/// Width and height of the picture.
pub const SIZE: (u32, u32) = (320, 240);

/// The picture: red, green / blue, white quadrants (BGRX bytes).
fn picture() -> Vec<u8> {
    let (w, h) = SIZE;
    let mut v = Vec::with_capacity((w * h * 4) as usize);
    for y in 0..h {
        for x in 0..w {
            let px: [u8; 4] = match (x < w / 2, y < h / 2) {
                (true, true) => [0, 0, 0xff, 0],
                (false, true) => [0, 0xff, 0, 0],
                (true, false) => [0xff, 0, 0, 0],
                (false, false) => [0xff, 0xff, 0xff, 0],
            };
            v.extend_from_slice(&px);
        }
    }
    v
}

fn main() {
    let socket = std::env::args()
        .nth(1)
        .expect("usage: display_harness SOCKET");
    let (_server, sink) = ConsoleServer::listen(socket.as_ref(), |m| {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "INPUT {m:?}");
        let _ = out.flush();
    })
    .unwrap();
    let mut g = GpuGuest::new(SIZE.0, SIZE.1, Box::new(sink));
    g.draw_all(&picture());
    g.present(g.whole());
    println!("READY");
    let _ = std::io::stdout().flush();
    // `PATCH` on stdin: a 16x16 yellow square at (8, 8) (in the red quadrant), transferred
    // and flushed alone, so that only that rectangle is damaged.
    for line in std::io::stdin().lines().map_while(Result::ok) {
        if line.trim() != "PATCH" {
            continue;
        }
        let r = Rect {
            x: 8,
            y: 8,
            width: 16,
            height: 16,
        };
        let yellow: Vec<u8> = (0..16 * 16).flat_map(|_| [0u8, 0xff, 0xff, 0]).collect();
        g.draw(r, &yellow);
        g.present(r);
        println!("PATCHED");
        let _ = std::io::stdout().flush();
    }
    loop {
        std::thread::park();
    }
}
