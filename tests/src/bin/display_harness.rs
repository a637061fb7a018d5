//! Drives Phyllome's virtio-gpu device the way a guest driver would (descriptors in guest
//! memory, virtio-pci registers, doorbells) to show a known picture, and serves it on a
//! console connection: `display_harness SOCKET`. Prints `READY` once the picture is
//! flushed, and one `INPUT <message>` line per message a viewer sends; `PATCH` on stdin
//! changes one small rectangle (printing `PATCHED`). Used by the app's
//! display test; runs until killed.
//!
//! `display_harness SOCKET --ramfb` shows the same picture as a firmware's boot screen
//! does before any guest driver runs: the picture sits in guest RAM, described by the
//! 28 bytes OVMF writes to the fw_cfg file `etc/ramfb`, and our ramfb worker puts it on the
//! GPU's display; `PATCH` writes the square into guest RAM, as a boot menu redraws.

#![allow(
    clippy::unwrap_used,
    clippy::print_stdout,
    clippy::cast_possible_truncation,
    reason = "a test harness with small, fixed sizes"
)]

use phyllome_tests::gpu_guest::GpuGuest;
use phyllome_vmm::console_conn::server::ConsoleServer;
use phyllome_vmm::devices::legacy::ramfb::Ramfb;
use phyllome_vmm::devices::virtio::gpu::display::DisplaySink;
use phyllome_vmm::devices::virtio::gpu::protocol::Rect;
use phyllome_vmm::devices::virtio::gpu::Gpu;
use std::io::Write;
use std::sync::{Arc, Mutex};
use vm_memory::{Bytes, GuestAddress};

/// Where the ramfb picture sits in guest RAM (OVMF puts it in its own allocation).
const RAMFB_AT: u64 = 0x10_0000;

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

/// The picture on a firmware's boot screen: the GPU has no driver, ramfb shows it.
fn ramfb(sink: Box<dyn DisplaySink>) -> ! {
    let (w, h) = SIZE;
    let gpu = Arc::new(Mutex::new(Gpu::new(&[(w, h)], sink).unwrap()));
    let ram = phyllome_vmm::memory::create(16 << 20).unwrap();
    ram.memory
        .write_slice(&picture(), GuestAddress(RAMFB_AT))
        .unwrap();
    let fb = Ramfb::new();
    // The description as OVMF's QemuRamfbDxe writes it: address, fourcc "XR24", flags,
    // width, height, stride, all big-endian.
    let mut description = RAMFB_AT.to_be_bytes().to_vec();
    for v in [u32::from_le_bytes(*b"XR24"), 0, w, h, w * 4] {
        description.extend_from_slice(&v.to_be_bytes());
    }
    (fb.write_hook(ram.memory.clone()))(&description);
    let _worker = fb.show_on(ram.memory.clone(), gpu).unwrap();
    // The worker looks at the framebuffer as it starts, then 20 times a second.
    std::thread::sleep(std::time::Duration::from_millis(300));
    println!("READY");
    let _ = std::io::stdout().flush();
    for line in std::io::stdin().lines().map_while(Result::ok) {
        if line.trim() != "PATCH" {
            continue;
        }
        for y in 8..24u64 {
            let row: Vec<u8> = (0..16).flat_map(|_| [0u8, 0xff, 0xff, 0]).collect();
            let at = RAMFB_AT + (y * u64::from(w) + 8) * 4;
            ram.memory.write_slice(&row, GuestAddress(at)).unwrap();
        }
        println!("PATCHED");
        let _ = std::io::stdout().flush();
    }
    loop {
        std::thread::park();
    }
}

fn main() {
    let socket = std::env::args()
        .nth(1)
        .expect("usage: display_harness SOCKET [--ramfb]");
    let (_server, sink) = ConsoleServer::listen(socket.as_ref(), |m| {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "INPUT {m:?}");
        let _ = out.flush();
    })
    .unwrap();
    if std::env::args().nth(2).as_deref() == Some("--ramfb") {
        ramfb(Box::new(sink));
    }
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
