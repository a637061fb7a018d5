//! The 3D side over mock queues, with the real virglrenderer (EGL surfaceless on llvmpipe
//! here): capsets, contexts and resources checked, a render target cleared by a real virgl
//! command stream and read back to the display, fences answered once retired, venus
//! contexts created. virglrenderer allows one renderer per process: these tests take
//! turns.

use super::*;

fn rig_3d(renderer: Renderer) -> (std::sync::MutexGuard<'static, ()>, Rig) {
    let turn = crate::devices::virtio::gpu::virgl::test_turn();
    let seen = Recorder::default();
    let rig = Rig {
        mem: GuestMemory::from_ranges(&[(GuestAddress(0), 0x100_0000)]).unwrap(),
        gpu: Gpu::with_renderer(&[(640, 480)], Box::new(seen.clone()), renderer)
            .expect("virglrenderer starts headless here (Mesa's EGL surfaceless)"),
        seen,
    };
    (turn, rig)
}

impl Rig {
    /// A control command with a context id (and flags) in its header; the response's type
    /// and the response bytes.
    fn ctx_cmd(&mut self, h: CtrlHdr, body: &[u8]) -> (u32, Vec<u8>) {
        let mut req = h.as_slice().to_vec();
        req.extend_from_slice(body);
        let (_, resp) = self.send(CONTROL_QUEUE, &req, 256);
        (u32::from_le_bytes(resp[0..4].try_into().unwrap()), resp)
    }

    fn in_ctx(&mut self, kind: u32, ctx_id: u32, body: &[u8]) -> u32 {
        self.ctx_cmd(
            CtrlHdr {
                kind,
                ctx_id,
                ..CtrlHdr::default()
            },
            body,
        )
        .0
    }

    /// Context 1 with resource 10, a 64x48 render target, attached; the resource.
    fn target_in_context(&mut self) -> ResourceOnly {
        assert_eq!(
            self.in_ctx(CMD_CTX_CREATE, 1, CtxCreate::default().as_slice()),
            RESP_OK_NODATA
        );
        assert_eq!(self.create_3d(10, 64, 48), RESP_OK_NODATA);
        let res = ResourceOnly {
            resource_id: 10,
            padding: 0,
        };
        assert_eq!(
            self.in_ctx(CMD_CTX_ATTACH_RESOURCE, 1, res.as_slice()),
            RESP_OK_NODATA
        );
        res
    }

    fn create_3d(&mut self, id: u32, w: u32, h: u32) -> u32 {
        self.cmd(
            CMD_RESOURCE_CREATE_3D,
            ResourceCreate3d {
                resource_id: id,
                target: PIPE_TEXTURE_2D,
                format: FORMAT_B8G8R8X8_UNORM,
                bind: PIPE_BIND_RENDER_TARGET | PIPE_BIND_SAMPLER_VIEW | PIPE_BIND_SCANOUT,
                width: w,
                height: h,
                depth: 1,
                array_size: 1,
                ..ResourceCreate3d::default()
            },
        )
    }
}

const PIPE_TEXTURE_2D: u32 = 2;
const PIPE_BIND_RENDER_TARGET: u32 = 1 << 1;
const PIPE_BIND_SAMPLER_VIEW: u32 = 1 << 3;
const PIPE_BIND_SCANOUT: u32 = 1 << 19;

/// `VIRGL_CMD0(cmd, obj, len)`.
fn virgl_cmd(cmd: u32, obj: u32, len: u32) -> u32 {
    cmd | (obj << 8) | (len << 16)
}

/// A virgl command stream that makes resource `res` a colour buffer and clears it to
/// `rgba` (Gallium's CREATE_OBJECT surface, SET_FRAMEBUFFER_STATE, CLEAR).
fn clear_stream(res: u32, rgba: [f32; 4]) -> Vec<u8> {
    const CREATE_OBJECT: u32 = 1;
    const SET_FRAMEBUFFER_STATE: u32 = 5;
    const CLEAR: u32 = 7;
    const OBJECT_SURFACE: u32 = 8;
    const CLEAR_COLOR0: u32 = 1 << 2;
    let surface = 1;
    let mut words = vec![
        virgl_cmd(CREATE_OBJECT, OBJECT_SURFACE, 5),
        surface,
        res,
        FORMAT_B8G8R8X8_UNORM,
        0, // level
        0, // first and last layer
        virgl_cmd(SET_FRAMEBUFFER_STATE, 0, 3),
        1, // colour buffers
        0, // no depth buffer
        surface,
        virgl_cmd(CLEAR, 0, 8),
        CLEAR_COLOR0,
    ];
    words.extend(rgba.iter().map(|c| c.to_bits()));
    words.extend([0, 0, 0]); // depth (a double) and stencil
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

fn submit(rig: &mut Rig, ctx: u32, stream: &[u8], fence: Option<u64>) -> (u32, Vec<u8>) {
    let mut body = CmdSubmit {
        size: stream.len() as u32,
        padding: 0,
    }
    .as_slice()
    .to_vec();
    body.extend_from_slice(stream);
    let mut h = CtrlHdr {
        kind: CMD_SUBMIT_3D,
        ctx_id: ctx,
        ..CtrlHdr::default()
    };
    if let Some(f) = fence {
        h.flags = FLAG_FENCE;
        h.fence_id = f;
    }
    rig.ctx_cmd(h, &body)
}

#[test]
fn a_virgl_device_offers_its_capsets_and_refuses_others() {
    let (_turn, mut rig) = rig_3d(Renderer::Virgl);
    assert_ne!(rig.gpu.features() & F_VIRGL, 0);
    let capsets = u32::from_le_bytes(rig.gpu.config()[12..16].try_into().unwrap());
    assert!(capsets >= 2, "virgl and virgl2: {capsets}");
    let (kind, resp) = rig.ctx_cmd(
        hdr(CMD_GET_CAPSET_INFO),
        GetCapsetInfo::default().as_slice(),
    );
    assert_eq!(kind, RESP_OK_CAPSET_INFO);
    let info = RespCapsetInfo::from_slice(&resp[24..40]).copied().unwrap();
    assert_eq!(info.capset_id, 1, "capset 0 is virgl");
    assert!(
        info.capset_max_size > 0 && info.capset_max_version >= 1,
        "{info:?}"
    );
    // The capset itself, at its size.
    let (kind, resp) = rig.ctx_cmd(
        hdr(CMD_GET_CAPSET),
        GetCapset {
            capset_id: 1,
            capset_version: info.capset_max_version,
        }
        .as_slice(),
    );
    assert_eq!(kind, RESP_OK_CAPSET);
    assert!(resp[24..].iter().any(|&b| b != 0), "an empty capset");
    // What we do not offer.
    for (index, id, version) in [(capsets, 1, 1), (0, 3, 1), (0, 99, 1), (0, 1, 999)] {
        if index == capsets {
            let q = GetCapsetInfo {
                capset_index: index,
                padding: 0,
            };
            assert_eq!(rig.cmd(CMD_GET_CAPSET_INFO, q), RESP_ERR_INVALID_PARAMETER);
        } else {
            let q = GetCapset {
                capset_id: id,
                capset_version: version,
            };
            assert_eq!(
                rig.cmd(CMD_GET_CAPSET, q),
                RESP_ERR_INVALID_PARAMETER,
                "{id} v{version}"
            );
        }
    }
}

#[test]
fn contexts_and_resources_are_checked_and_bad_requests_fail_alone() {
    let (_turn, mut rig) = rig_3d(Renderer::Virgl);
    let create = CtxCreate {
        nlen: 4,
        ..CtxCreate::default()
    };
    assert_eq!(
        rig.in_ctx(CMD_CTX_CREATE, 1, create.as_slice()),
        RESP_OK_NODATA
    );
    assert_eq!(
        rig.in_ctx(CMD_CTX_CREATE, 1, create.as_slice()),
        RESP_ERR_INVALID_CONTEXT_ID,
        "the same context twice"
    );
    assert_eq!(
        rig.in_ctx(CMD_CTX_CREATE, 0, create.as_slice()),
        RESP_ERR_INVALID_CONTEXT_ID
    );
    let venus = CtxCreate {
        context_init: 4,
        ..CtxCreate::default()
    };
    assert_eq!(
        rig.in_ctx(CMD_CTX_CREATE, 2, venus.as_slice()),
        RESP_ERR_INVALID_PARAMETER,
        "a venus context on a virgl-only device"
    );
    assert_eq!(
        rig.in_ctx(CMD_CTX_DESTROY, 7, &[]),
        RESP_ERR_INVALID_CONTEXT_ID
    );
    let res = ResourceOnly {
        resource_id: 42,
        padding: 0,
    };
    assert_eq!(
        rig.in_ctx(CMD_CTX_ATTACH_RESOURCE, 1, res.as_slice()),
        RESP_ERR_INVALID_RESOURCE_ID
    );
    // One id space for 2D and 3D resources.
    assert_eq!(rig.create(5, 64, 64), RESP_OK_NODATA);
    assert_eq!(rig.create_3d(5, 64, 64), RESP_ERR_INVALID_RESOURCE_ID);
    assert_eq!(rig.create_3d(6, 64, 64), RESP_OK_NODATA);
    assert_eq!(rig.create(6, 64, 64), RESP_ERR_INVALID_RESOURCE_ID);
    // A dumb (2D) buffer attached to a context, as Linux does for every buffer a process
    // opens: nothing for the renderer, and no error; an unknown context still is one.
    let dumb = ResourceOnly {
        resource_id: 5,
        padding: 0,
    };
    for kind in [CMD_CTX_ATTACH_RESOURCE, CMD_CTX_DETACH_RESOURCE] {
        assert_eq!(rig.in_ctx(kind, 1, dumb.as_slice()), RESP_OK_NODATA);
        assert_eq!(
            rig.in_ctx(kind, 9, dumb.as_slice()),
            RESP_ERR_INVALID_CONTEXT_ID
        );
    }
    assert_eq!(rig.create_3d(7, 100_000, 64), RESP_ERR_INVALID_PARAMETER);
    assert_eq!(rig.create_3d(0, 64, 64), RESP_ERR_INVALID_RESOURCE_ID);
    // Beyond the memory cap.
    rig.gpu.set_resource_limit(1 << 20);
    assert_eq!(rig.create_3d(8, 4096, 4096), RESP_ERR_OUT_OF_MEMORY);
    // Submissions: unknown context, longer than the request, not whole words.
    assert_eq!(
        submit(&mut rig, 9, &[0; 8], None).0,
        RESP_ERR_INVALID_CONTEXT_ID
    );
    let mut body = CmdSubmit {
        size: 4096,
        padding: 0,
    }
    .as_slice()
    .to_vec();
    body.extend_from_slice(&[0; 16]);
    assert_eq!(
        rig.in_ctx(CMD_SUBMIT_3D, 1, &body),
        RESP_ERR_INVALID_PARAMETER,
        "a command buffer longer than its descriptor"
    );
    assert_eq!(
        submit(&mut rig, 1, &[0; 6], None).0,
        RESP_ERR_INVALID_PARAMETER
    );
    // Transfers outside the resource.
    let t = Transfer3d {
        b: Box3d {
            x: 60,
            y: 0,
            z: 0,
            w: 10,
            h: 1,
            d: 1,
        },
        resource_id: 6,
        ..Transfer3d::default()
    };
    assert_eq!(
        rig.in_ctx(CMD_TRANSFER_TO_HOST_3D, 1, t.as_slice()),
        RESP_ERR_INVALID_PARAMETER
    );
    // Still serving.
    assert_eq!(
        rig.cmd_bytes(CMD_GET_DISPLAY_INFO, &[]),
        RESP_OK_DISPLAY_INFO
    );
    assert_eq!(rig.in_ctx(CMD_CTX_DESTROY, 1, &[]), RESP_OK_NODATA);
}

#[test]
fn a_render_target_cleared_by_virgl_commands_reaches_the_display() {
    let (_turn, mut rig) = rig_3d(Renderer::Virgl);
    let res = rig.target_in_context();
    // Red, fenced: the response comes once the work is done, echoing the fence.
    let (kind, resp) = submit(
        &mut rig,
        1,
        &clear_stream(10, [1.0, 0.0, 0.0, 1.0]),
        Some(77),
    );
    assert_eq!(kind, RESP_OK_NODATA);
    let answer = CtrlHdr::from_slice(&resp[..24]).copied().unwrap();
    assert_eq!(
        (answer.flags & FLAG_FENCE, answer.fence_id, answer.ctx_id),
        (FLAG_FENCE, 77, 1)
    );

    assert_eq!(rig.scanout(0, 10, rect(0, 0, 64, 48)), RESP_OK_NODATA);
    assert_eq!(rig.flush(10, rect(0, 0, 64, 48)), RESP_OK_NODATA);
    let seen = rig.seen();
    let Some(Seen::Frame {
        size,
        damage,
        pixels,
        ..
    }) = seen.last()
    else {
        panic!("no frame: {seen:?}");
    };
    assert_eq!((*size, *damage), ((64, 48), (0, 0, 64, 48)));
    // B8G8R8X8: blue, green, red.
    for px in pixels.chunks(4) {
        assert_eq!(&px[..3], &[0, 0, 255], "not red");
    }

    // Green over part of it: a flush of that part brings the change.
    let (kind, _) = submit(
        &mut rig,
        1,
        &clear_stream(10, [0.0, 1.0, 0.0, 1.0]),
        Some(78),
    );
    assert_eq!(kind, RESP_OK_NODATA);
    assert_eq!(rig.flush(10, rect(8, 8, 16, 16)), RESP_OK_NODATA);
    let seen = rig.seen();
    let Some(Seen::Frame { damage, pixels, .. }) = seen.last() else {
        panic!("no frame");
    };
    assert_eq!(*damage, (8, 8, 16, 16));
    let at = |x: usize, y: usize| &pixels[(y * 64 + x) * 4..(y * 64 + x) * 4 + 3];
    assert_eq!(at(10, 10), &[0, 255, 0], "the flushed part is green");

    // Unref turns the scanout off; the device goes on.
    assert_eq!(rig.cmd(CMD_RESOURCE_UNREF, res), RESP_OK_NODATA);
    assert!(rig.seen().contains(&Seen::Disabled(0)));
    assert_eq!(
        rig.flush(10, rect(0, 0, 1, 1)),
        RESP_ERR_INVALID_RESOURCE_ID
    );
}

#[test]
fn a_device_reset_drops_contexts_and_3d_resources() {
    let (_turn, mut rig) = rig_3d(Renderer::Virgl);
    assert_eq!(
        rig.in_ctx(CMD_CTX_CREATE, 3, CtxCreate::default().as_slice()),
        RESP_OK_NODATA
    );
    assert_eq!(rig.create_3d(11, 32, 32), RESP_OK_NODATA);
    rig.gpu.reset();
    assert_eq!(
        rig.in_ctx(CMD_CTX_DESTROY, 3, &[]),
        RESP_ERR_INVALID_CONTEXT_ID
    );
    assert_eq!(
        rig.create_3d(11, 32, 32),
        RESP_OK_NODATA,
        "the id is free again"
    );
}

#[test]
fn venus_contexts_are_created_on_a_venus_device() {
    let (_turn, mut rig) = rig_3d(Renderer::Venus);
    let capsets = u32::from_le_bytes(rig.gpu.config()[12..16].try_into().unwrap());
    let ids: Vec<u32> = (0..capsets)
        .map(|i| {
            let (_, resp) = rig.ctx_cmd(
                hdr(CMD_GET_CAPSET_INFO),
                GetCapsetInfo {
                    capset_index: i,
                    padding: 0,
                }
                .as_slice(),
            );
            RespCapsetInfo::from_slice(&resp[24..40]).unwrap().capset_id
        })
        .collect();
    assert!(ids.contains(&4), "the venus capset is offered: {ids:?}");
    let venus = CtxCreate {
        context_init: 4,
        ..CtxCreate::default()
    };
    assert_eq!(
        rig.in_ctx(CMD_CTX_CREATE, 1, venus.as_slice()),
        RESP_OK_NODATA
    );
    assert_eq!(rig.in_ctx(CMD_CTX_DESTROY, 1, &[]), RESP_OK_NODATA);
}

#[test]
fn a_second_renderer_in_one_process_is_refused() {
    let (_turn, _rig) = rig_3d(Renderer::Virgl);
    let second = Gpu::with_renderer(&[(64, 64)], Box::new(Recorder::default()), Renderer::Virgl);
    assert!(second.unwrap_err().to_string().contains("one"));
}

/// A host-visible region's mapper that records what it is asked to do and reads the first
/// byte behind each pointer (which must be the renderer's live memory).
fn region_log() -> host_visible::tests::Recorder {
    host_visible::tests::Recorder {
        touch: true,
        ..Default::default()
    }
}

/// The host-visible region's size in these tests.
const REGION: u64 = 1 << 20;

fn blob(id: u32, mem: u32, flags: u32, blob_id: u64, size: u64, entries: &[(u64, u32)]) -> Vec<u8> {
    let body = ResourceCreateBlob {
        resource_id: id,
        blob_mem: mem,
        blob_flags: flags,
        nr_entries: entries.len() as u32,
        blob_id,
        size,
    };
    with_entries(body.as_slice(), entries)
}

fn map_blob(rig: &mut Rig, id: u32, offset: u64) -> (u32, Vec<u8>) {
    rig.ctx_cmd(
        hdr(CMD_RESOURCE_MAP_BLOB),
        ResourceMapBlob {
            resource_id: id,
            padding: 0,
            offset,
        }
        .as_slice(),
    )
}

#[test]
fn blobs_are_offered_only_with_a_host_visible_region() {
    let (_turn, mut rig) = rig_3d(Renderer::Venus);
    assert_eq!(rig.gpu.features() & F_RESOURCE_BLOB, 0);
    let body = blob(5, BLOB_MEM_GUEST, 0, 0, 4096, &[(0x10_0000, 4096)]);
    assert_eq!(
        rig.cmd_bytes(CMD_RESOURCE_CREATE_BLOB, &body),
        RESP_ERR_UNSPEC
    );
    assert!(rig.gpu.set_host_visible(host_visible::HostVisible::new(
        REGION,
        Box::new(region_log())
    )));
    assert_ne!(rig.gpu.features() & F_RESOURCE_BLOB, 0);
    assert_eq!(
        rig.cmd_bytes(CMD_RESOURCE_CREATE_BLOB, &body),
        RESP_OK_NODATA
    );
    // A 2D device has nowhere to put one.
    let mut two_d = Gpu::new(&[(640, 480)], Box::new(Recorder::default())).unwrap();
    assert!(!two_d.set_host_visible(host_visible::HostVisible::new(
        REGION,
        Box::new(region_log())
    )));
    assert_eq!(two_d.features() & F_RESOURCE_BLOB, 0);
}

#[test]
fn bad_blob_requests_fail_alone_and_the_device_keeps_serving() {
    let (_turn, mut rig) = rig_3d(Renderer::Virgl);
    rig.gpu.set_host_visible(host_visible::HostVisible::new(
        REGION,
        Box::new(region_log()),
    ));
    assert_eq!(
        rig.in_ctx(CMD_CTX_CREATE, 1, CtxCreate::default().as_slice()),
        RESP_OK_NODATA
    );
    let ram = (0x10_0000, 8192);
    let create = |rig: &mut Rig, ctx: u32, body: Vec<u8>| {
        rig.ctx_cmd(
            CtrlHdr {
                kind: CMD_RESOURCE_CREATE_BLOB,
                ctx_id: ctx,
                ..CtrlHdr::default()
            },
            &body,
        )
        .0
    };
    for (why, ctx, body, want) in [
        (
            "no size",
            0,
            blob(5, BLOB_MEM_GUEST, 0, 0, 0, &[ram]),
            RESP_ERR_INVALID_PARAMETER,
        ),
        (
            "unknown memory",
            1,
            blob(5, 9, 0, 0, 4096, &[]),
            RESP_ERR_INVALID_PARAMETER,
        ),
        (
            "unknown flag",
            0,
            blob(5, BLOB_MEM_GUEST, 1 << 7, 0, 4096, &[ram]),
            RESP_ERR_INVALID_PARAMETER,
        ),
        (
            "guest pages short of its size",
            0,
            blob(5, BLOB_MEM_GUEST, 0, 0, 3 * 4096, &[ram]),
            RESP_ERR_INVALID_PARAMETER,
        ),
        (
            "guest pages are not mappable",
            0,
            blob(5, BLOB_MEM_GUEST, BLOB_FLAG_USE_MAPPABLE, 0, 4096, &[ram]),
            RESP_ERR_INVALID_PARAMETER,
        ),
        (
            "pages outside guest RAM",
            0,
            blob(5, BLOB_MEM_GUEST, 0, 0, 4096, &[(0x4000_0000, 4096)]),
            RESP_ERR_UNSPEC,
        ),
        (
            "host blob in no context",
            7,
            blob(5, BLOB_MEM_HOST3D, 0, 1, 4096, &[]),
            RESP_ERR_INVALID_CONTEXT_ID,
        ),
        (
            "host blob with guest pages",
            1,
            blob(5, BLOB_MEM_HOST3D, 0, 1, 4096, &[ram]),
            RESP_ERR_INVALID_PARAMETER,
        ),
        (
            "mappable, larger than the region",
            1,
            blob(
                5,
                BLOB_MEM_HOST3D,
                BLOB_FLAG_USE_MAPPABLE,
                1,
                REGION + 4096,
                &[],
            ),
            RESP_ERR_INVALID_PARAMETER,
        ),
        (
            "a blob id the context never made",
            1,
            blob(5, BLOB_MEM_HOST3D, BLOB_FLAG_USE_MAPPABLE, 77, 4096, &[]),
            RESP_ERR_INVALID_PARAMETER,
        ),
        (
            "resource id 0",
            0,
            blob(0, BLOB_MEM_GUEST, 0, 0, 4096, &[ram]),
            RESP_ERR_INVALID_RESOURCE_ID,
        ),
    ] {
        assert_eq!(create(&mut rig, ctx, body), want, "{why}");
    }
    // More entries than the request holds.
    let mut short = blob(5, BLOB_MEM_GUEST, 0, 0, 4096, &[ram]);
    short[12..16].copy_from_slice(&3u32.to_le_bytes());
    assert_eq!(create(&mut rig, 0, short), RESP_ERR_INVALID_PARAMETER);
    // A good one, then its id again.
    assert_eq!(
        create(&mut rig, 0, blob(5, BLOB_MEM_GUEST, 0, 0, 8192, &[ram])),
        RESP_OK_NODATA
    );
    assert_eq!(
        create(&mut rig, 0, blob(5, BLOB_MEM_GUEST, 0, 0, 4096, &[ram])),
        RESP_ERR_INVALID_RESOURCE_ID
    );
    // Mapping: only mappable blobs, only known ones; unmapping what is not mapped.
    assert_eq!(map_blob(&mut rig, 5, 0).0, RESP_ERR_INVALID_PARAMETER);
    assert_eq!(map_blob(&mut rig, 99, 0).0, RESP_ERR_INVALID_RESOURCE_ID);
    let unmap = ResourceOnly {
        resource_id: 5,
        padding: 0,
    };
    assert_eq!(
        rig.cmd(CMD_RESOURCE_UNMAP_BLOB, unmap),
        RESP_ERR_INVALID_PARAMETER
    );
    // Still serving.
    assert_eq!(
        rig.cmd_bytes(CMD_GET_DISPLAY_INFO, &[]),
        RESP_OK_DISPLAY_INFO
    );
    assert_eq!(rig.cmd(CMD_RESOURCE_UNREF, unmap), RESP_OK_NODATA);
}

#[test]
fn a_mappable_host_blob_appears_in_the_region_inside_its_bounds() {
    let (_turn, mut rig) = rig_3d(Renderer::Virgl);
    let log = region_log();
    rig.gpu.set_host_visible(host_visible::HostVisible::new(
        REGION,
        Box::new(log.clone()),
    ));
    assert_eq!(
        rig.in_ctx(CMD_CTX_CREATE, 1, CtxCreate::default().as_slice()),
        RESP_OK_NODATA
    );
    let host_blob = |rig: &mut Rig, id: u32, blob_id: u32| {
        let (kind, _) = submit(rig, 1, &virgl::pipe_buffer_stream(blob_id, 65536), None);
        assert_eq!(kind, RESP_OK_NODATA);
        rig.ctx_cmd(
            CtrlHdr {
                kind: CMD_RESOURCE_CREATE_BLOB,
                ctx_id: 1,
                ..CtrlHdr::default()
            },
            &blob(
                id,
                BLOB_MEM_HOST3D,
                BLOB_FLAG_USE_MAPPABLE,
                u64::from(blob_id),
                65536,
                &[],
            ),
        )
        .0
    };
    assert_eq!(host_blob(&mut rig, 20, 1), RESP_OK_NODATA);
    assert_eq!(host_blob(&mut rig, 21, 2), RESP_OK_NODATA);
    let (kind, resp) = map_blob(&mut rig, 20, 0x1000);
    assert_eq!(kind, RESP_OK_MAP_INFO);
    let info = RespMapInfo::from_slice(&resp[24..32]).copied().unwrap();
    assert!(
        (1..=3).contains(&(info.map_info & 0xf)),
        "a caching mode: {info:?}"
    );
    assert_eq!(
        map_blob(&mut rig, 20, 0x40000).0,
        RESP_ERR_INVALID_PARAMETER,
        "twice"
    );
    assert_eq!(
        map_blob(&mut rig, 21, 0x8000).0,
        RESP_ERR_INVALID_PARAMETER,
        "over 20"
    );
    assert_eq!(
        map_blob(&mut rig, 21, REGION - 0x1000).0,
        RESP_ERR_INVALID_PARAMETER,
        "past the end"
    );
    assert_eq!(
        map_blob(&mut rig, 21, 0x11001).0,
        RESP_ERR_INVALID_PARAMETER,
        "unaligned"
    );
    assert_eq!(map_blob(&mut rig, 21, !0xfff).0, RESP_ERR_INVALID_PARAMETER);
    assert_eq!(map_blob(&mut rig, 21, 0x11000).0, RESP_OK_MAP_INFO);
    let unmap = ResourceOnly {
        resource_id: 20,
        padding: 0,
    };
    assert_eq!(rig.cmd(CMD_RESOURCE_UNMAP_BLOB, unmap), RESP_OK_NODATA);
    // Unref of a mapped blob takes it out of the region first.
    let unref = ResourceOnly {
        resource_id: 21,
        padding: 0,
    };
    assert_eq!(rig.cmd(CMD_RESOURCE_UNREF, unref), RESP_OK_NODATA);
    // A renderer whose blobs are files hands the file over; llvmpipe's are only memory.
    let how = if rig.gpu.offer_host_visible(REGION).is_ok() {
        "file"
    } else {
        "pointer"
    };
    assert_eq!(
        *log.log.lock().unwrap(),
        [
            format!("map 0x1000+0x10000 {how}"),
            format!("map 0x11000+0x10000 {how}"),
            "unmap 0x1000+0x10000".into(),
            "unmap 0x11000+0x10000".into(),
        ]
    );
}

/// The host-visible region goes to the transport only where this renderer's blobs are
/// files another process can map: a venus device offers it (Vulkan exports its memory),
/// and llvmpipe's virgl, whose mappable buffers are plain memory, says why not. The offer
/// is shared memory region 1 and turns blobs on; the mapper the transport hands back
/// becomes the region, and a reset of the machine (no mapper) takes it away.
#[test]
fn the_host_visible_region_is_offered_where_blobs_can_be_shared() {
    use crate::devices::virtio::shm::{layout, ShmWindow};
    let (_turn, mut rig) = rig_3d(Renderer::Virgl);
    let offered = rig.gpu.offer_host_visible(REGION);
    match offered {
        Ok(()) => assert_eq!(rig.gpu.shared_memory(), [(1, REGION)]),
        Err(why) => {
            assert!(why.contains("not files it can share"), "{why}");
            assert_eq!(rig.gpu.shared_memory(), []);
            assert_eq!(rig.gpu.features() & F_RESOURCE_BLOB, 0);
        }
    }
    drop(rig);
    drop(_turn);

    let (_turn, mut rig) = rig_3d(Renderer::Venus);
    rig.gpu.offer_host_visible(REGION + 100).unwrap();
    assert_eq!(rig.gpu.shared_memory(), [(1, REGION)], "whole pages");
    assert_ne!(rig.gpu.features() & F_RESOURCE_BLOB, 0);
    let slots = Arc::new(crate::devices::virtio::shm::tests::Slots::default());
    let (regions, size) = layout(&rig.gpu.shared_memory());
    let window = Arc::new(ShmWindow::new(regions, size, slots).unwrap());
    rig.gpu.set_shared_memory(Some(window.clone()));
    // Blob commands now reach a region: an unknown blob fails as such, not as UNSPEC.
    assert_eq!(map_blob(&mut rig, 99, 0).0, RESP_ERR_INVALID_RESOURCE_ID);
    rig.gpu.set_shared_memory(None);
    assert_eq!(map_blob(&mut rig, 99, 0).0, RESP_ERR_UNSPEC);
    assert_ne!(
        rig.gpu.features() & F_RESOURCE_BLOB,
        0,
        "the offer stands for the next machine"
    );
}

/// A display that wants frames only when told to.
#[derive(Clone, Default)]
struct Gated {
    wants: Arc<std::sync::atomic::AtomicBool>,
    seen: Recorder,
}

impl DisplaySink for Gated {
    fn frame(&mut self, f: &Frame<'_>) {
        self.seen.frame(f);
    }
    fn disabled(&mut self, scanout: u32) {
        self.seen.disabled(scanout);
    }
    fn cursor(&mut self, scanout: u32, cursor: &Cursor) {
        self.seen.cursor(scanout, cursor);
    }
    fn cursor_moved(&mut self, scanout: u32, x: u32, y: u32) {
        self.seen.cursor_moved(scanout, x, y);
    }
    fn wants_frame(&self, _: u32) -> bool {
        self.wants.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// While the display does not want a frame, 3D flushes are held and merged; the next
/// flush_pending reads back once, over all of it, with the latest pixels.
#[test]
fn flushes_wait_for_a_display_that_is_busy_and_go_once_merged() {
    let turn = crate::devices::virtio::gpu::virgl::test_turn();
    let gate = Gated::default();
    let mut rig = Rig {
        mem: GuestMemory::from_ranges(&[(GuestAddress(0), 0x100_0000)]).unwrap(),
        gpu: Gpu::with_renderer(&[(640, 480)], Box::new(gate.clone()), Renderer::Virgl).unwrap(),
        seen: gate.seen.clone(),
    };
    rig.target_in_context();
    assert_eq!(rig.scanout(0, 10, rect(0, 0, 64, 48)), RESP_OK_NODATA);
    let frames = |rig: &Rig| {
        rig.seen()
            .iter()
            .filter(|s| matches!(s, Seen::Frame { .. }))
            .count()
    };
    // Busy: red, then green, each flushed in part; nothing is read back.
    for (rgba, r) in [
        ([1.0, 0.0, 0.0, 1.0], rect(0, 0, 8, 8)),
        ([0.0, 1.0, 0.0, 1.0], rect(20, 10, 4, 4)),
    ] {
        let (kind, _) = submit(&mut rig, 1, &clear_stream(10, rgba), Some(5));
        assert_eq!(kind, RESP_OK_NODATA);
        assert_eq!(rig.flush(10, r), RESP_OK_NODATA);
    }
    assert_eq!(frames(&rig), 0, "held while the display is busy");
    rig.gpu.flush_pending();
    assert_eq!(frames(&rig), 0, "still busy");
    // Free: one frame over both rectangles, showing the latest (green) pixels.
    gate.wants.store(true, std::sync::atomic::Ordering::SeqCst);
    rig.gpu.flush_pending();
    let seen = rig.seen();
    let shown: Vec<_> = seen
        .iter()
        .filter_map(|s| match s {
            Seen::Frame { damage, pixels, .. } => Some((*damage, &pixels[..3])),
            _ => None,
        })
        .collect();
    assert_eq!(
        shown,
        [((0, 0, 24, 14), &[0u8, 255, 0][..])],
        "one frame over the union of what was held, with the latest pixels"
    );
    rig.gpu.flush_pending();
    assert_eq!(frames(&rig), 0, "nothing held any more");
    drop(rig);
    drop(turn);
}
