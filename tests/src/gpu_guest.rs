//! A guest driver for our virtio-gpu device without a guest: descriptors written into guest
//! memory and virtio-pci registers programmed through the transport, the way Linux's
//! `virtio_gpu` does, to put a picture on a scanout and change it. Used by the display
//! harness (the app's display test) and the display benchmark.

#![allow(
    clippy::unwrap_used,
    clippy::missing_panics_doc,
    clippy::cast_possible_truncation,
    reason = "a test driver with small, fixed sizes: a failure is a failed test"
)]

use phyllome_vmm::devices::virtio::gpu::display::DisplaySink;
use phyllome_vmm::devices::virtio::gpu::protocol::{
    AttachBacking, CtrlHdr, MemEntry, Rect, ResourceCreate2d, ResourceFlush, SetScanout,
    TransferToHost2d, CMD_RESOURCE_ATTACH_BACKING, CMD_RESOURCE_CREATE_2D, CMD_RESOURCE_FLUSH,
    CMD_SET_SCANOUT, CMD_TRANSFER_TO_HOST_2D, FORMAT_B8G8R8X8_UNORM, RESP_OK_NODATA,
};
use phyllome_vmm::devices::virtio::gpu::Gpu;
use phyllome_vmm::devices::virtio::pci::harness::Driver;
use phyllome_vmm::devices::virtio::pci::LocalEngine;
use phyllome_vmm::devices::virtio::VIRTIO_F_VERSION_1;
use vm_memory::{ByteValued, Bytes, GuestAddress};

const REQ: u64 = 0x30_0000;
const RESP: u64 = 0x31_0000;
/// Where the picture's pages are in guest memory.
pub const PAGES: u64 = 0x40_0000;

/// A GPU with one BGRX resource of `width` x `height` on scanout 0.
#[derive(Debug)]
pub struct GpuGuest {
    driver: Driver,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

impl GpuGuest {
    /// Creates the device (its frames go to `sink`), the resource and its backing, and
    /// shows the resource on scanout 0 (nothing flushed yet).
    pub fn new(width: u32, height: u32, sink: Box<dyn DisplaySink>) -> Self {
        let gpu = Gpu::new(&[(width, height)], sink).unwrap();
        let bytes = u64::from(width * height * 4);
        let ram = phyllome_vmm::memory::create((PAGES + bytes).next_power_of_two()).unwrap();
        let mut driver = Driver::with_engine(
            Box::new(LocalEngine::new(Box::new(gpu))),
            ram.memory.clone(),
        );
        assert!(driver.negotiate(VIRTIO_F_VERSION_1));
        driver.enable_msix_vectors(2);
        driver.setup_ring(0);
        driver.setup_ring(1);
        driver.w(0x14, 0xf, 1);
        let mut g = Self {
            driver,
            width,
            height,
        };
        g.command(
            CMD_RESOURCE_CREATE_2D,
            ResourceCreate2d {
                resource_id: 1,
                format: FORMAT_B8G8R8X8_UNORM,
                width,
                height,
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
                length: bytes as u32,
                padding: 0,
            }
            .as_slice(),
        );
        g.command(CMD_RESOURCE_ATTACH_BACKING, &attach);
        g.command(
            CMD_SET_SCANOUT,
            SetScanout {
                r: g.whole(),
                scanout_id: 0,
                resource_id: 1,
            }
            .as_slice(),
        );
        g
    }

    /// The whole frame.
    pub fn whole(&self) -> Rect {
        Rect {
            x: 0,
            y: 0,
            width: self.width,
            height: self.height,
        }
    }

    /// Sends one control command and checks it succeeded.
    pub fn command(&mut self, kind: u32, body: &[u8]) {
        let hdr = CtrlHdr {
            kind,
            ..CtrlHdr::default()
        };
        let mut req = hdr.as_slice().to_vec();
        req.extend_from_slice(body);
        self.driver
            .mem
            .write_slice(&req, GuestAddress(REQ))
            .unwrap();
        let n = self
            .driver
            .post(0, &[(REQ, req.len() as u32, false), (RESP, 24, true)]);
        self.driver.wait_ring(0, n);
        let resp: u32 = self.driver.mem.read_obj(GuestAddress(RESP)).unwrap();
        assert_eq!(resp, RESP_OK_NODATA, "command {kind:#x} failed");
    }

    /// Writes BGRX rows of `r` into the resource's backing pages (tight rows, `r.width * 4`
    /// bytes each).
    pub fn draw(&mut self, r: Rect, pixels: &[u8]) {
        let row = (r.width * 4) as usize;
        for (i, line) in pixels.chunks_exact(row).take(r.height as usize).enumerate() {
            let at = PAGES + u64::from(((r.y + i as u32) * self.width + r.x) * 4);
            self.driver.mem.write_slice(line, GuestAddress(at)).unwrap();
        }
    }

    /// Writes one whole frame of BGRX bytes straight into the backing pages.
    pub fn draw_all(&mut self, pixels: &[u8]) {
        self.driver
            .mem
            .write_slice(pixels, GuestAddress(PAGES))
            .unwrap();
    }

    /// Transfers `r` from the backing to the resource and flushes it to the scanout.
    pub fn present(&mut self, r: Rect) {
        self.command(
            CMD_TRANSFER_TO_HOST_2D,
            TransferToHost2d {
                r,
                offset: u64::from((r.y * self.width + r.x) * 4),
                resource_id: 1,
                padding: 0,
            }
            .as_slice(),
        );
        self.command(
            CMD_RESOURCE_FLUSH,
            ResourceFlush {
                r,
                resource_id: 1,
                padding: 0,
            }
            .as_slice(),
        );
    }
}
