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

use phyllome_vmm::console_conn::server::ConsoleServer;
use phyllome_vmm::devices::virtio::gpu::protocol::*;
use phyllome_vmm::devices::virtio::gpu::Gpu;
use phyllome_vmm::devices::virtio::pci::harness::Driver;
use phyllome_vmm::devices::virtio::pci::LocalEngine;
use phyllome_vmm::devices::virtio::VIRTIO_F_VERSION_1;
use std::io::Write;
use vm_memory::{ByteValued, Bytes, GuestAddress};

/// Width and height of the picture.
pub const SIZE: (u32, u32) = (320, 240);
const REQ: u64 = 0x30_0000;
const RESP: u64 = 0x31_0000;
const PAGES: u64 = 0x40_0000;

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

fn command(d: &mut Driver, kind: u32, body: &[u8]) {
    let hdr = CtrlHdr {
        kind,
        ..CtrlHdr::default()
    };
    let mut req = hdr.as_slice().to_vec();
    req.extend_from_slice(body);
    d.mem.write_slice(&req, GuestAddress(REQ)).unwrap();
    let n = d.post(0, &[(REQ, req.len() as u32, false), (RESP, 24, true)]);
    d.wait_ring(0, n);
    let resp: u32 = d.mem.read_obj(GuestAddress(RESP)).unwrap();
    assert_eq!(resp, RESP_OK_NODATA, "command {kind:#x} failed");
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
    let gpu = Gpu::new(&[SIZE], Box::new(sink)).unwrap();
    let ram = phyllome_vmm::memory::create(16 << 20).unwrap();
    let mut d = Driver::with_engine(
        Box::new(LocalEngine::new(Box::new(gpu))),
        ram.memory.clone(),
    );
    assert!(d.negotiate(VIRTIO_F_VERSION_1));
    d.enable_msix_vectors(2);
    d.setup_ring(0);
    d.setup_ring(1);
    d.w(0x14, 0xf, 1);

    let (w, h) = SIZE;
    let pic = picture();
    d.mem.write_slice(&pic, GuestAddress(PAGES)).unwrap();
    let rect = Rect {
        x: 0,
        y: 0,
        width: w,
        height: h,
    };
    command(
        &mut d,
        CMD_RESOURCE_CREATE_2D,
        ResourceCreate2d {
            resource_id: 1,
            format: FORMAT_B8G8R8X8_UNORM,
            width: w,
            height: h,
        }
        .as_slice(),
    );
    let mut attach = AttachBacking {
        resource_id: 1,
        nr_entries: 1,
    }
    .as_slice()
    .to_vec();
    attach.extend_from_slice(
        MemEntry {
            addr: PAGES,
            length: pic.len() as u32,
            padding: 0,
        }
        .as_slice(),
    );
    command(&mut d, CMD_RESOURCE_ATTACH_BACKING, &attach);
    command(
        &mut d,
        CMD_TRANSFER_TO_HOST_2D,
        TransferToHost2d {
            r: rect,
            offset: 0,
            resource_id: 1,
            padding: 0,
        }
        .as_slice(),
    );
    command(
        &mut d,
        CMD_SET_SCANOUT,
        SetScanout {
            r: rect,
            scanout_id: 0,
            resource_id: 1,
        }
        .as_slice(),
    );
    command(
        &mut d,
        CMD_RESOURCE_FLUSH,
        ResourceFlush {
            r: rect,
            resource_id: 1,
            padding: 0,
        }
        .as_slice(),
    );
    println!("READY");
    let _ = std::io::stdout().flush();
    // `PATCH` on stdin: a 16x16 yellow square at (8, 8) (in the red quadrant), transferred
    // and flushed alone, so that only that rectangle is damaged.
    for line in std::io::stdin().lines().map_while(Result::ok) {
        if line.trim() != "PATCH" {
            continue;
        }
        let (px, py, side) = (8u32, 8u32, 16u32);
        for row in py..py + side {
            let yellow: Vec<u8> = (0..side).flat_map(|_| [0u8, 0xff, 0xff, 0]).collect();
            let at = PAGES + u64::from((row * w + px) * 4);
            d.mem.write_slice(&yellow, GuestAddress(at)).unwrap();
        }
        let r = Rect {
            x: px,
            y: py,
            width: side,
            height: side,
        };
        command(
            &mut d,
            CMD_TRANSFER_TO_HOST_2D,
            TransferToHost2d {
                r,
                offset: u64::from((py * w + px) * 4),
                resource_id: 1,
                padding: 0,
            }
            .as_slice(),
        );
        command(
            &mut d,
            CMD_RESOURCE_FLUSH,
            ResourceFlush {
                r,
                resource_id: 1,
                padding: 0,
            }
            .as_slice(),
        );
        println!("PATCHED");
        let _ = std::io::stdout().flush();
    }
    loop {
        std::thread::park();
    }
}
