//! virtio-gpu 2D over virtio-queue's mock queues: every command, good and malformed, the
//! pixels that reach the display sink, and the device going on after each bad request.

use super::*;
use std::sync::{Arc, Mutex};
use virtio_queue::desc::{split::Descriptor, RawDescriptor};
use virtio_queue::mock::MockSplitQueue;
use virtio_queue::{Queue, QueueOwnedT};
use vm_memory::ByteValued;

const REQ: u64 = 0x1_0000;
const RESP: u64 = 0x2_0000;
/// Guest pages backing resources.
const PAGES: u64 = 0x10_0000;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    Frame {
        scanout: u32,
        size: (u32, u32),
        damage: (u32, u32, u32, u32),
        pixels: Vec<u8>,
    },
    Disabled(u32),
    Cursor(u32, Cursor),
    Moved(u32, u32, u32),
}

#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Seen>>>);

impl DisplaySink for Recorder {
    fn frame(&mut self, f: &Frame<'_>) {
        // Keep the visible pixels row by row (the image strides over the resource).
        let pixels = f.to_vec();
        self.0.lock().unwrap().push(Seen::Frame {
            scanout: f.scanout,
            size: (f.width, f.height),
            damage: f.damage,
            pixels,
        });
    }
    fn disabled(&mut self, scanout: u32) {
        self.0.lock().unwrap().push(Seen::Disabled(scanout));
    }
    fn cursor(&mut self, scanout: u32, cursor: &Cursor) {
        self.0
            .lock()
            .unwrap()
            .push(Seen::Cursor(scanout, cursor.clone()));
    }
    fn cursor_moved(&mut self, scanout: u32, x: u32, y: u32) {
        self.0.lock().unwrap().push(Seen::Moved(scanout, x, y));
    }
}

struct Rig {
    mem: GuestMemory,
    gpu: Gpu,
    seen: Recorder,
}

fn rig() -> Rig {
    let seen = Recorder::default();
    Rig {
        mem: GuestMemory::from_ranges(&[(GuestAddress(0), 0x100_0000)]).unwrap(),
        gpu: Gpu::new(&[(1024, 768), (800, 600)], Box::new(seen.clone())).unwrap(),
        seen,
    }
}

fn hdr(kind: u32) -> CtrlHdr {
    CtrlHdr {
        kind,
        ..CtrlHdr::default()
    }
}

impl Rig {
    /// Sends `request` on `queue` with a `resp_len`-byte response buffer; returns the
    /// used length and the response bytes.
    fn send(&mut self, queue: usize, request: &[u8], resp_len: u32) -> (u32, Vec<u8>) {
        self.mem.write_slice(request, GuestAddress(REQ)).unwrap();
        let vq = MockSplitQueue::new(&self.mem, 16);
        let mut descs = vec![RawDescriptor::from(Descriptor::new(
            REQ,
            request.len() as u32,
            u16::from(resp_len > 0),
            1,
        ))];
        if resp_len > 0 {
            descs.push(RawDescriptor::from(Descriptor::new(RESP, resp_len, 2, 0)));
        }
        vq.build_desc_chain(&descs).unwrap();
        let mut q: Queue = vq.create_queue().unwrap();
        let chain = q.iter(&self.mem).unwrap().next().unwrap();
        let used = self.gpu.process(queue, &self.mem, chain);
        let mut resp = vec![0u8; resp_len as usize];
        self.mem.read_slice(&mut resp, GuestAddress(RESP)).unwrap();
        (used, resp)
    }

    /// A control command made of a header and a body; returns the response type.
    fn cmd<T: ByteValued>(&mut self, kind: u32, body: T) -> u32 {
        self.cmd_bytes(kind, body.as_slice())
    }

    fn cmd_bytes(&mut self, kind: u32, body: &[u8]) -> u32 {
        let mut req = hdr(kind).as_slice().to_vec();
        req.extend_from_slice(body);
        let (_, resp) = self.send(CONTROL_QUEUE, &req, 64);
        u32::from_le_bytes(resp[0..4].try_into().unwrap())
    }

    fn create(&mut self, id: u32, w: u32, h: u32) -> u32 {
        self.cmd(
            CMD_RESOURCE_CREATE_2D,
            ResourceCreate2d {
                resource_id: id,
                format: FORMAT_B8G8R8X8_UNORM,
                width: w,
                height: h,
            },
        )
    }

    fn attach(&mut self, id: u32, entries: &[(u64, u32)]) -> u32 {
        let body = AttachBacking {
            resource_id: id,
            nr_entries: entries.len() as u32,
        };
        self.cmd_bytes(
            CMD_RESOURCE_ATTACH_BACKING,
            &with_entries(body.as_slice(), entries),
        )
    }

    fn transfer(&mut self, id: u32, r: Rect, offset: u64) -> u32 {
        self.cmd(
            CMD_TRANSFER_TO_HOST_2D,
            TransferToHost2d {
                r,
                offset,
                resource_id: id,
                padding: 0,
            },
        )
    }

    fn scanout(&mut self, scanout: u32, id: u32, r: Rect) -> u32 {
        self.cmd(
            CMD_SET_SCANOUT,
            SetScanout {
                r,
                scanout_id: scanout,
                resource_id: id,
            },
        )
    }

    fn flush(&mut self, id: u32, r: Rect) -> u32 {
        self.cmd(
            CMD_RESOURCE_FLUSH,
            ResourceFlush {
                r,
                resource_id: id,
                padding: 0,
            },
        )
    }

    fn seen(&self) -> Vec<Seen> {
        std::mem::take(&mut *self.seen.0.lock().unwrap())
    }
}

/// A request body followed by its memory entries.
fn with_entries(body: &[u8], entries: &[(u64, u32)]) -> Vec<u8> {
    let mut out = body.to_vec();
    for &(addr, length) in entries {
        out.extend_from_slice(
            MemEntry {
                addr,
                length,
                padding: 0,
            }
            .as_slice(),
        );
    }
    out
}

fn rect(x: u32, y: u32, width: u32, height: u32) -> Rect {
    Rect {
        x,
        y,
        width,
        height,
    }
}

/// A distinct 4-byte value per pixel of a `w`-wide image.
fn pattern(w: u32, h: u32) -> Vec<u8> {
    (0..w * h)
        .flat_map(|i| [(i % 251) as u8, (i / 251 % 251) as u8, 0x40, 0xff])
        .collect()
}

#[test]
fn display_info_lists_each_scanout_enabled_at_its_size() {
    let mut r = rig();
    let (used, resp) = r.send(CONTROL_QUEUE, hdr(CMD_GET_DISPLAY_INFO).as_slice(), 408);
    assert_eq!(used, 408);
    let info = RespDisplayInfo::from_slice(&resp).copied().unwrap();
    assert_eq!(info.hdr.kind, RESP_OK_DISPLAY_INFO);
    assert_eq!(
        (info.pmodes[0].r.width, info.pmodes[0].r.height),
        (1024, 768)
    );
    assert_eq!((info.pmodes[1].r.width, info.pmodes[1].enabled), (800, 1));
    assert_eq!(info.pmodes[2].enabled, 0);
    assert_eq!(r.gpu.config()[8..12], 2u32.to_le_bytes(), "num_scanouts");
}

#[test]
fn edid_describes_the_scanout_and_bad_scanouts_are_refused() {
    let mut r = rig();
    let mut req = hdr(CMD_GET_EDID).as_slice().to_vec();
    req.extend_from_slice(
        GetEdid {
            scanout: 1,
            padding: 0,
        }
        .as_slice(),
    );
    let (used, resp) = r.send(CONTROL_QUEUE, &req, 1056);
    assert_eq!(used, 1056);
    let e = RespEdid::from_slice(&resp).copied().unwrap();
    assert_eq!((e.hdr.kind, e.size), (RESP_OK_EDID, 128));
    assert_eq!(e.edid[..128], edid::edid(800, 600));
    assert_eq!(
        r.cmd(
            CMD_GET_EDID,
            GetEdid {
                scanout: 2,
                padding: 0
            }
        ),
        RESP_ERR_INVALID_SCANOUT_ID
    );
}

#[test]
fn pixels_go_from_scattered_guest_pages_to_the_sink_with_their_damage() {
    let mut r = rig();
    let (w, h) = (64u32, 32u32);
    assert_eq!(r.create(7, w, h), RESP_OK_NODATA);
    // The 8 KiB image over two separate guest regions, split mid-row.
    let img = pattern(w, h);
    let split = 3000usize;
    r.mem
        .write_slice(&img[..split], GuestAddress(PAGES))
        .unwrap();
    r.mem
        .write_slice(&img[split..], GuestAddress(PAGES + 0x8_0000))
        .unwrap();
    let entries = [
        (PAGES, split as u32),
        (PAGES + 0x8_0000, (img.len() - split) as u32),
    ];
    assert_eq!(r.attach(7, &entries), RESP_OK_NODATA);
    assert_eq!(r.transfer(7, rect(0, 0, w, h), 0), RESP_OK_NODATA);
    assert_eq!(r.scanout(0, 7, rect(0, 0, w, h)), RESP_OK_NODATA);
    assert_eq!(r.flush(7, rect(0, 0, w, h)), RESP_OK_NODATA);
    assert_eq!(
        r.seen(),
        vec![Seen::Frame {
            scanout: 0,
            size: (w, h),
            damage: (0, 0, w, h),
            pixels: img.clone(),
        }]
    );

    // A partial update: the guest changes a 20x10 box at (10, 5) and transfers only it
    // (offset = the box's first byte in the backing, as Linux computes it).
    let mut img2 = img.clone();
    for y in 5..15usize {
        for x in 10..30usize {
            img2[(y * 64 + x) * 4..(y * 64 + x) * 4 + 4].copy_from_slice(&[1, 2, 3, 4]);
        }
    }
    r.mem
        .write_slice(&img2[..split], GuestAddress(PAGES))
        .unwrap();
    r.mem
        .write_slice(&img2[split..], GuestAddress(PAGES + 0x8_0000))
        .unwrap();
    let offset = u64::from(5 * w * 4 + 10 * 4);
    assert_eq!(r.transfer(7, rect(10, 5, 20, 10), offset), RESP_OK_NODATA);
    assert_eq!(r.flush(7, rect(10, 5, 20, 10)), RESP_OK_NODATA);
    let [Seen::Frame { damage, pixels, .. }] = &r.seen()[..] else {
        panic!("one frame expected");
    };
    assert_eq!(*damage, (10, 5, 20, 10));
    assert!(*pixels == img2, "the box changed and nothing else");

    // Now shown on a scanout, the resource lives in a shared buffer: a whole-frame
    // transfer goes there in one block, across both guest regions.
    let img3: Vec<u8> = img.iter().map(|b| b.wrapping_add(77)).collect();
    r.mem
        .write_slice(&img3[..split], GuestAddress(PAGES))
        .unwrap();
    r.mem
        .write_slice(&img3[split..], GuestAddress(PAGES + 0x8_0000))
        .unwrap();
    assert_eq!(r.transfer(7, rect(0, 0, w, h), 0), RESP_OK_NODATA);
    assert_eq!(r.flush(7, rect(0, 0, w, h)), RESP_OK_NODATA);
    let [Seen::Frame { pixels, .. }] = &r.seen()[..] else {
        panic!("one frame expected");
    };
    assert!(*pixels == img3, "the whole frame arrived");
    // A backing too short for a transfer fails it, and nothing is read past it.
    assert_eq!(r.attach(7, &[(PAGES, 100)]), RESP_OK_NODATA);
    assert_eq!(
        r.transfer(7, rect(0, 0, w, h), 0),
        RESP_ERR_INVALID_PARAMETER
    );
}

#[test]
fn a_scanout_showing_part_of_a_resource_gets_that_part() {
    let mut r = rig();
    assert_eq!(r.create(1, 32, 16), RESP_OK_NODATA);
    let img = pattern(32, 16);
    r.mem.write_slice(&img, GuestAddress(PAGES)).unwrap();
    r.attach(1, &[(PAGES, img.len() as u32)]);
    r.transfer(1, rect(0, 0, 32, 16), 0);
    // Scanout 1 shows the right half.
    assert_eq!(r.scanout(1, 1, rect(16, 0, 16, 16)), RESP_OK_NODATA);
    r.flush(1, rect(0, 0, 32, 16));
    let [Seen::Frame {
        scanout,
        size,
        damage,
        pixels,
    }] = &r.seen()[..]
    else {
        panic!("one frame expected");
    };
    assert_eq!((*scanout, *size, *damage), (1, (16, 16), (0, 0, 16, 16)));
    let right: Vec<u8> = (0..16usize)
        .flat_map(|y| img[(y * 32 + 16) * 4..(y * 32 + 32) * 4].to_vec())
        .collect();
    assert!(*pixels == right);
}

#[test]
fn bad_requests_fail_alone_with_the_right_error() {
    let mut r = rig();
    r.gpu.set_resource_limit(1 << 20);
    assert_eq!(r.create(0, 8, 8), RESP_ERR_INVALID_RESOURCE_ID, "id 0");
    assert_eq!(r.create(1, 8, 8), RESP_OK_NODATA);
    assert_eq!(r.create(1, 8, 8), RESP_ERR_INVALID_RESOURCE_ID, "taken");
    assert_eq!(r.create(2, 0, 8), RESP_ERR_INVALID_PARAMETER, "empty");
    assert_eq!(
        r.create(2, 16385, 8),
        RESP_ERR_INVALID_PARAMETER,
        "too wide"
    );
    assert_eq!(
        r.create(2, 1024, 1024),
        RESP_ERR_OUT_OF_MEMORY,
        "over the cap"
    );
    let yuv = ResourceCreate2d {
        resource_id: 2,
        format: 0x3231_564e,
        width: 8,
        height: 8,
    };
    assert_eq!(
        r.cmd(CMD_RESOURCE_CREATE_2D, yuv),
        RESP_ERR_INVALID_PARAMETER,
        "format"
    );
    assert_eq!(
        r.cmd(
            CMD_RESOURCE_UNREF,
            ResourceOnly {
                resource_id: 9,
                padding: 0
            }
        ),
        RESP_ERR_INVALID_RESOURCE_ID
    );
    assert_eq!(r.attach(9, &[(PAGES, 256)]), RESP_ERR_INVALID_RESOURCE_ID);
    assert_eq!(
        r.attach(1, &[(0xffff_0000_0000, 256)]),
        RESP_ERR_UNSPEC,
        "outside RAM"
    );
    assert_eq!(
        r.attach(1, &[(0xfff_f000, 0x2000)]),
        RESP_ERR_UNSPEC,
        "runs off RAM"
    );
    // Claims two entries but carries one.
    let mut short = AttachBacking {
        resource_id: 1,
        nr_entries: 2,
    }
    .as_slice()
    .to_vec();
    short.extend_from_slice(
        MemEntry {
            addr: PAGES,
            length: 256,
            padding: 0,
        }
        .as_slice(),
    );
    assert_eq!(
        r.cmd_bytes(CMD_RESOURCE_ATTACH_BACKING, &short),
        RESP_ERR_INVALID_PARAMETER
    );
    assert_eq!(
        r.transfer(1, rect(0, 0, 8, 8), 0),
        RESP_ERR_UNSPEC,
        "no backing"
    );
    assert_eq!(r.attach(1, &[(PAGES, 64)]), RESP_OK_NODATA);
    assert_eq!(
        r.transfer(1, rect(0, 0, 8, 8), 0),
        RESP_ERR_INVALID_PARAMETER,
        "backing too short"
    );
    assert_eq!(
        r.transfer(1, rect(4, 4, 8, 8), 0),
        RESP_ERR_INVALID_PARAMETER,
        "outside the resource"
    );
    assert_eq!(
        r.transfer(1, rect(0, 0, 1, 1), u64::MAX - 2),
        RESP_ERR_INVALID_PARAMETER,
        "offset overflow"
    );
    assert_eq!(
        r.scanout(2, 1, rect(0, 0, 8, 8)),
        RESP_ERR_INVALID_SCANOUT_ID
    );
    assert_eq!(
        r.scanout(0, 9, rect(0, 0, 8, 8)),
        RESP_ERR_INVALID_RESOURCE_ID
    );
    assert_eq!(
        r.scanout(0, 1, rect(1, 0, 8, 8)),
        RESP_ERR_INVALID_PARAMETER
    );
    assert_eq!(r.flush(9, rect(0, 0, 1, 1)), RESP_ERR_INVALID_RESOURCE_ID);
    assert_eq!(r.flush(1, rect(0, 0, 9, 1)), RESP_ERR_INVALID_PARAMETER);
    assert_eq!(r.cmd_bytes(0x0777, &[]), RESP_ERR_UNSPEC, "unknown command");
    assert_eq!(
        r.cmd_bytes(CMD_RESOURCE_CREATE_2D, &[1, 2]),
        RESP_ERR_INVALID_PARAMETER,
        "short body"
    );
    let (used, resp) = r.send(CONTROL_QUEUE, &[1, 2, 3], 24);
    assert_eq!(
        (used, u32::from_le_bytes(resp[0..4].try_into().unwrap())),
        (24, RESP_ERR_UNSPEC)
    );
    assert!(r.seen().is_empty(), "nothing reached the display");
    // And it goes on working.
    assert_eq!(r.detach_then_reattach_and_show(), RESP_OK_NODATA);
}

impl Rig {
    fn detach_then_reattach_and_show(&mut self) -> u32 {
        assert_eq!(
            self.cmd(
                CMD_RESOURCE_DETACH_BACKING,
                ResourceOnly {
                    resource_id: 1,
                    padding: 0
                }
            ),
            RESP_OK_NODATA
        );
        assert_eq!(self.attach(1, &[(PAGES, 256)]), RESP_OK_NODATA);
        assert_eq!(self.transfer(1, rect(0, 0, 8, 8), 0), RESP_OK_NODATA);
        assert_eq!(self.scanout(0, 1, rect(0, 0, 8, 8)), RESP_OK_NODATA);
        let resp = self.flush(1, rect(0, 0, 8, 8));
        assert_eq!(self.seen().len(), 1);
        resp
    }
}

#[test]
fn fences_are_echoed() {
    let mut r = rig();
    let mut h = hdr(CMD_GET_DISPLAY_INFO);
    h.flags = FLAG_FENCE;
    h.fence_id = 0xdead_beef_0042;
    let (_, resp) = r.send(CONTROL_QUEUE, h.as_slice(), 408);
    let back = CtrlHdr::from_slice(&resp[..24]).copied().unwrap();
    assert_eq!((back.flags, back.fence_id), (FLAG_FENCE, 0xdead_beef_0042));
}

#[test]
fn unref_frees_memory_and_turns_off_its_scanouts() {
    let mut r = rig();
    r.create(3, 16, 16);
    assert_eq!(r.gpu.resource_bytes(), 16 * 16 * 4);
    r.scanout(1, 3, rect(0, 0, 16, 16));
    assert_eq!(
        r.cmd(
            CMD_RESOURCE_UNREF,
            ResourceOnly {
                resource_id: 3,
                padding: 0
            }
        ),
        RESP_OK_NODATA
    );
    assert_eq!(r.gpu.resource_bytes(), 0);
    assert_eq!(r.seen(), vec![Seen::Disabled(1)]);
    assert_eq!(
        r.scanout(0, 0, rect(0, 0, 0, 0)),
        RESP_OK_NODATA,
        "resource 0 turns off"
    );
    assert_eq!(r.seen(), vec![Seen::Disabled(0)]);
}

#[test]
fn cursor_queue_sets_image_and_position() {
    let mut r = rig();
    r.create(5, 64, 64);
    let img = pattern(64, 64);
    r.mem.write_slice(&img, GuestAddress(PAGES)).unwrap();
    r.attach(5, &[(PAGES, img.len() as u32)]);
    r.transfer(5, rect(0, 0, 64, 64), 0);
    let mut req = hdr(CMD_UPDATE_CURSOR).as_slice().to_vec();
    let pos = CursorPos {
        scanout_id: 0,
        x: 100,
        y: 50,
        padding: 0,
    };
    req.extend_from_slice(
        UpdateCursor {
            pos,
            resource_id: 5,
            hot_x: 3,
            hot_y: 4,
            padding: 0,
        }
        .as_slice(),
    );
    assert_eq!(
        r.send(CURSOR_QUEUE, &req, 0).0,
        0,
        "no response on the cursor queue"
    );
    let mut mv = hdr(CMD_MOVE_CURSOR).as_slice().to_vec();
    mv.extend_from_slice(
        CursorPos {
            scanout_id: 0,
            x: 7,
            y: 8,
            padding: 0,
        }
        .as_slice(),
    );
    r.send(CURSOR_QUEUE, &mv, 0);
    let seen = r.seen();
    assert_eq!(
        seen[0],
        Seen::Cursor(
            0,
            Cursor::Image {
                width: 64,
                height: 64,
                hot: (3, 4),
                pixels: img
            }
        )
    );
    assert_eq!(&seen[1..], &[Seen::Moved(0, 100, 50), Seen::Moved(0, 7, 8)]);
    // A resource that is not 64x64, or a scanout that does not exist: ignored.
    r.create(6, 8, 8);
    let mut bad = hdr(CMD_UPDATE_CURSOR).as_slice().to_vec();
    bad.extend_from_slice(
        UpdateCursor {
            pos,
            resource_id: 6,
            ..UpdateCursor::default()
        }
        .as_slice(),
    );
    r.send(CURSOR_QUEUE, &bad, 0);
    let mut far = hdr(CMD_MOVE_CURSOR).as_slice().to_vec();
    far.extend_from_slice(
        CursorPos {
            scanout_id: 9,
            ..CursorPos::default()
        }
        .as_slice(),
    );
    r.send(CURSOR_QUEUE, &far, 0);
    assert!(r.seen().is_empty());
}

#[test]
fn a_host_resize_changes_display_info_and_raises_the_display_event() {
    let mut r = rig();
    assert_eq!(r.gpu.config()[0..4], 0u32.to_le_bytes());
    assert!(r.gpu.request_size(0, 1280, 800));
    assert!(!r.gpu.request_size(4, 1280, 800));
    assert_eq!(r.gpu.config()[0..4], EVENT_DISPLAY.to_le_bytes());
    assert_eq!(
        r.gpu.config_event().unwrap().read().unwrap(),
        1,
        "interrupt asked for"
    );
    let (_, resp) = r.send(CONTROL_QUEUE, hdr(CMD_GET_DISPLAY_INFO).as_slice(), 408);
    let info = RespDisplayInfo::from_slice(&resp).copied().unwrap();
    assert_eq!(
        (info.pmodes[0].r.width, info.pmodes[0].r.height),
        (1280, 800)
    );
    // The driver acknowledges through events_clear.
    r.gpu.write_config(4, &EVENT_DISPLAY.to_le_bytes());
    assert_eq!(r.gpu.config()[0..4], 0u32.to_le_bytes());
}

#[test]
fn a_device_reset_forgets_resources_and_scanouts() {
    let mut r = rig();
    r.create(1, 16, 16);
    r.scanout(0, 1, rect(0, 0, 16, 16));
    r.gpu.reset();
    assert_eq!(r.gpu.resource_bytes(), 0);
    assert_eq!(r.seen(), vec![Seen::Disabled(0)]);
    assert_eq!(r.create(1, 16, 16), RESP_OK_NODATA, "the id is free again");
}

#[test]
fn a_2d_device_refuses_3d_requests_and_offers_no_capsets() {
    let mut rig = rig();
    assert_eq!(rig.gpu.features() & F_VIRGL, 0);
    assert_eq!(&rig.gpu.config()[12..16], &0u32.to_le_bytes());
    assert_eq!(
        rig.cmd(CMD_CTX_CREATE, CtxCreate::default()),
        RESP_ERR_UNSPEC
    );
    assert_eq!(
        rig.cmd(CMD_GET_CAPSET_INFO, GetCapsetInfo::default()),
        RESP_ERR_UNSPEC
    );
    assert_eq!(rig.create(1, 64, 64), RESP_OK_NODATA);
}

#[cfg(feature = "virgl")]
mod three_d;

/// Two displays on scanout 0: ramfb (GRUB's graphical menu, efifb) takes the screen each
/// time it changes; the virtio-gpu's flushes stay off it meanwhile (and its disable does
/// not blank it); the virtio-gpu's first flush after ramfb has been still takes the screen
/// back, whole.
#[test]
fn ramfb_has_the_screen_while_it_changes_and_the_virtio_scanout_takes_it_back_whole() {
    let mut r = rig();
    let (w, h) = (16u32, 8u32);
    let img = pattern(w, h);
    r.mem.write_slice(&img, GuestAddress(PAGES)).unwrap();
    assert_eq!(r.create(7, w, h), RESP_OK_NODATA);
    assert_eq!(r.attach(7, &[(PAGES, img.len() as u32)]), RESP_OK_NODATA);
    assert_eq!(r.transfer(7, rect(0, 0, w, h), 0), RESP_OK_NODATA);
    assert_eq!(r.scanout(0, 7, rect(0, 0, w, h)), RESP_OK_NODATA);
    assert_eq!(r.flush(7, rect(0, 0, 4, 4)), RESP_OK_NODATA);
    assert_eq!(r.seen().len(), 1, "the virtio-gpu shows its damage");
    let ramfb_frame = |seen: &[Seen]| matches!(seen, [Seen::Frame { size: (4, 4), .. }]);

    // ramfb changes: shown, and the virtio-gpu's flushes are not.
    let ramfb = crate::console_conn::buffer::SharedBuffer::create(4 * 4 * 4).unwrap();
    let frame = Frame {
        scanout: 0,
        width: 4,
        height: 4,
        stride: 16,
        format: protocol::FORMAT_B8G8R8X8_UNORM,
        buffer: &ramfb,
        offset: 0,
        damage: (0, 0, 4, 4),
    };
    assert!(!r.gpu.boot_display_on_screen());
    r.gpu.show_firmware_frame(&frame);
    assert!(r.gpu.boot_display_on_screen());
    assert_eq!(r.flush(7, rect(0, 0, 4, 4)), RESP_OK_NODATA);
    assert!(ramfb_frame(&r.seen()), "only ramfb's frame went out");
    // While ramfb has the screen, the guest turning its scanout off leaves it alone.
    assert_eq!(r.scanout(0, 0, rect(0, 0, 0, 0)), RESP_OK_NODATA);
    assert!(r.seen().is_empty(), "ramfb's picture was blanked");
    assert_eq!(r.scanout(0, 7, rect(0, 0, w, h)), RESP_OK_NODATA);

    // ramfb still long enough: the virtio-gpu's next flush takes the screen, whole.
    std::thread::sleep(boot_display::QUIET);
    assert!(
        r.gpu.boot_display_on_screen(),
        "a still ramfb keeps the screen"
    );
    assert_eq!(r.flush(7, rect(0, 0, 4, 4)), RESP_OK_NODATA);
    assert!(!r.gpu.boot_display_on_screen());
    assert_eq!(
        r.seen(),
        [Seen::Frame {
            scanout: 0,
            size: (w, h),
            damage: (0, 0, w, h),
            pixels: img.clone(),
        }]
    );
    // Then its flushes show their damage again.
    assert_eq!(r.flush(7, rect(0, 0, 4, 4)), RESP_OK_NODATA);
    assert!(matches!(
        r.seen()[..],
        [Seen::Frame {
            damage: (0, 0, 4, 4),
            ..
        }]
    ));
}
