//! The virtio-gpu wire format (virtio 1.2, section 5.7.6): command and response types, the
//! request structures the driver sends, and the responses we write back. Every structure is
//! `repr(C)` with explicit padding, little-endian as on x86, read whole from the chain.

#![allow(
    missing_docs,
    reason = "field names follow the specification's structures"
)]

use vm_memory::ByteValued;

// 2D commands.
pub const CMD_GET_DISPLAY_INFO: u32 = 0x0100;
pub const CMD_RESOURCE_CREATE_2D: u32 = 0x0101;
pub const CMD_RESOURCE_UNREF: u32 = 0x0102;
pub const CMD_SET_SCANOUT: u32 = 0x0103;
pub const CMD_RESOURCE_FLUSH: u32 = 0x0104;
pub const CMD_TRANSFER_TO_HOST_2D: u32 = 0x0105;
pub const CMD_RESOURCE_ATTACH_BACKING: u32 = 0x0106;
pub const CMD_RESOURCE_DETACH_BACKING: u32 = 0x0107;
pub const CMD_GET_CAPSET_INFO: u32 = 0x0108;
pub const CMD_GET_CAPSET: u32 = 0x0109;
pub const CMD_GET_EDID: u32 = 0x010a;
pub const CMD_RESOURCE_CREATE_BLOB: u32 = 0x010c;

// 3D commands (VIRTIO_GPU_F_VIRGL).
pub const CMD_CTX_CREATE: u32 = 0x0200;
pub const CMD_CTX_DESTROY: u32 = 0x0201;
pub const CMD_CTX_ATTACH_RESOURCE: u32 = 0x0202;
pub const CMD_CTX_DETACH_RESOURCE: u32 = 0x0203;
pub const CMD_RESOURCE_CREATE_3D: u32 = 0x0204;
pub const CMD_TRANSFER_TO_HOST_3D: u32 = 0x0205;
pub const CMD_TRANSFER_FROM_HOST_3D: u32 = 0x0206;
pub const CMD_SUBMIT_3D: u32 = 0x0207;
pub const CMD_RESOURCE_MAP_BLOB: u32 = 0x0208;
pub const CMD_RESOURCE_UNMAP_BLOB: u32 = 0x0209;
// Cursor commands.
pub const CMD_UPDATE_CURSOR: u32 = 0x0300;
pub const CMD_MOVE_CURSOR: u32 = 0x0301;
// Success responses.
pub const RESP_OK_NODATA: u32 = 0x1100;
pub const RESP_OK_DISPLAY_INFO: u32 = 0x1101;
pub const RESP_OK_CAPSET_INFO: u32 = 0x1102;
pub const RESP_OK_CAPSET: u32 = 0x1103;
pub const RESP_OK_EDID: u32 = 0x1104;
pub const RESP_OK_MAP_INFO: u32 = 0x1106;
// Error responses.
pub const RESP_ERR_UNSPEC: u32 = 0x1200;
pub const RESP_ERR_OUT_OF_MEMORY: u32 = 0x1201;
pub const RESP_ERR_INVALID_SCANOUT_ID: u32 = 0x1202;
pub const RESP_ERR_INVALID_RESOURCE_ID: u32 = 0x1203;
pub const RESP_ERR_INVALID_CONTEXT_ID: u32 = 0x1204;
pub const RESP_ERR_INVALID_PARAMETER: u32 = 0x1205;

/// The request asks for a fence: the response must echo its id.
pub const FLAG_FENCE: u32 = 1;
/// Feature bit: the device answers `GET_EDID`.
pub const F_EDID: u64 = 1 << 1;
/// 3D (virgl) commands.
pub const F_VIRGL: u64 = 1 << 0;
/// Context types chosen at CTX_CREATE (`context_init`).
pub const F_CONTEXT_INIT: u64 = 1 << 4;
/// Blob resources (`RESOURCE_CREATE_BLOB`, `RESOURCE_MAP_BLOB`).
pub const F_RESOURCE_BLOB: u64 = 1 << 3;
/// Blob memory: guest pages only.
pub const BLOB_MEM_GUEST: u32 = 1;
/// Blob memory: the host renderer's.
pub const BLOB_MEM_HOST3D: u32 = 2;
/// Blob memory: the host renderer's, backed by guest pages.
pub const BLOB_MEM_HOST3D_GUEST: u32 = 3;
/// Blob flag: the guest will map it (through the host-visible region).
pub const BLOB_FLAG_USE_MAPPABLE: u32 = 1;
/// Blob flag: shareable with other contexts.
pub const BLOB_FLAG_USE_SHAREABLE: u32 = 2;
/// Blob flag: shareable with other devices.
pub const BLOB_FLAG_USE_CROSS_DEVICE: u32 = 4;
/// The context type in `context_init`.
pub const CONTEXT_INIT_CAPSET_ID_MASK: u32 = 0xff;
/// Configuration event: the display configuration changed.
pub const EVENT_DISPLAY: u32 = 1;
/// Scanouts the protocol can describe.
pub const MAX_SCANOUTS: usize = 16;

// Pixel formats (all 32 bits per pixel).
pub const FORMAT_B8G8R8A8_UNORM: u32 = 1;
pub const FORMAT_B8G8R8X8_UNORM: u32 = 2;
pub const FORMAT_A8R8G8B8_UNORM: u32 = 3;
pub const FORMAT_X8R8G8B8_UNORM: u32 = 4;
pub const FORMAT_R8G8B8A8_UNORM: u32 = 67;
pub const FORMAT_X8B8G8R8_UNORM: u32 = 68;
pub const FORMAT_A8B8G8R8_UNORM: u32 = 121;
pub const FORMAT_R8G8B8X8_UNORM: u32 = 134;

/// Whether we can hold resources of `format`.
pub fn format_supported(format: u32) -> bool {
    matches!(
        format,
        FORMAT_B8G8R8A8_UNORM
            | FORMAT_B8G8R8X8_UNORM
            | FORMAT_A8R8G8B8_UNORM
            | FORMAT_X8R8G8B8_UNORM
            | FORMAT_R8G8B8A8_UNORM
            | FORMAT_X8B8G8R8_UNORM
            | FORMAT_A8B8G8R8_UNORM
            | FORMAT_R8G8B8X8_UNORM
    )
}

/// `struct virtio_gpu_ctrl_hdr`.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct CtrlHdr {
    pub kind: u32,
    pub flags: u32,
    pub fence_id: u64,
    pub ctx_id: u32,
    pub ring_idx: u8,
    pub padding: [u8; 3],
}

/// `struct virtio_gpu_rect`.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct Rect {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

impl Rect {
    /// Whether the rectangle lies inside a `width` x `height` area (no overflow).
    pub fn inside(&self, width: u32, height: u32) -> bool {
        self.x.checked_add(self.width).is_some_and(|r| r <= width)
            && self.y.checked_add(self.height).is_some_and(|b| b <= height)
    }
}

/// One scanout in `struct virtio_gpu_resp_display_info`.
#[derive(Clone, Copy, Default, Debug)]
#[repr(C)]
pub struct DisplayOne {
    pub r: Rect,
    pub enabled: u32,
    pub flags: u32,
}

/// `struct virtio_gpu_resp_display_info`.
#[derive(Clone, Copy, Default, Debug)]
#[repr(C)]
pub struct RespDisplayInfo {
    pub hdr: CtrlHdr,
    pub pmodes: [DisplayOne; MAX_SCANOUTS],
}

/// `struct virtio_gpu_resource_create_2d`.
#[derive(Clone, Copy, Default, Debug)]
#[repr(C)]
pub struct ResourceCreate2d {
    pub resource_id: u32,
    pub format: u32,
    pub width: u32,
    pub height: u32,
}

/// `struct virtio_gpu_resource_unref` and `..._detach_backing` (after the header).
#[derive(Clone, Copy, Default, Debug)]
#[repr(C)]
pub struct ResourceOnly {
    pub resource_id: u32,
    pub padding: u32,
}

/// `struct virtio_gpu_set_scanout`.
#[derive(Clone, Copy, Default, Debug)]
#[repr(C)]
pub struct SetScanout {
    pub r: Rect,
    pub scanout_id: u32,
    pub resource_id: u32,
}

/// `struct virtio_gpu_resource_flush`.
#[derive(Clone, Copy, Default, Debug)]
#[repr(C)]
pub struct ResourceFlush {
    pub r: Rect,
    pub resource_id: u32,
    pub padding: u32,
}

/// `struct virtio_gpu_transfer_to_host_2d`.
#[derive(Clone, Copy, Default, Debug)]
#[repr(C)]
pub struct TransferToHost2d {
    pub r: Rect,
    pub offset: u64,
    pub resource_id: u32,
    pub padding: u32,
}

/// `struct virtio_gpu_resource_attach_backing`, followed by `nr_entries` [`MemEntry`]s.
#[derive(Clone, Copy, Default, Debug)]
#[repr(C)]
pub struct AttachBacking {
    pub resource_id: u32,
    pub nr_entries: u32,
}

/// `struct virtio_gpu_mem_entry`.
#[derive(Clone, Copy, Default, Debug)]
#[repr(C)]
pub struct MemEntry {
    pub addr: u64,
    pub length: u32,
    pub padding: u32,
}

/// `struct virtio_gpu_resource_create_blob` (after the header); `nr_entries` memory
/// entries follow.
#[derive(Clone, Copy, Default, Debug)]
#[repr(C)]
pub struct ResourceCreateBlob {
    pub resource_id: u32,
    pub blob_mem: u32,
    pub blob_flags: u32,
    pub nr_entries: u32,
    pub blob_id: u64,
    pub size: u64,
}

/// `struct virtio_gpu_resource_map_blob` (after the header).
#[derive(Clone, Copy, Default, Debug)]
#[repr(C)]
pub struct ResourceMapBlob {
    pub resource_id: u32,
    pub padding: u32,
    pub offset: u64,
}

/// `struct virtio_gpu_resp_map_info` (after the header).
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct RespMapInfo {
    pub map_info: u32,
    pub padding: u32,
}

/// `struct virtio_gpu_get_edid` (after the header).
#[derive(Clone, Copy, Default, Debug)]
#[repr(C)]
pub struct GetEdid {
    pub scanout: u32,
    pub padding: u32,
}

/// `struct virtio_gpu_resp_edid`.
#[derive(Clone, Copy, Debug)]
#[repr(C)]
pub struct RespEdid {
    pub hdr: CtrlHdr,
    pub size: u32,
    pub padding: u32,
    pub edid: [u8; 1024],
}

/// `struct virtio_gpu_cursor_pos`.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct CursorPos {
    pub scanout_id: u32,
    pub x: u32,
    pub y: u32,
    pub padding: u32,
}

/// `struct virtio_gpu_update_cursor` (after the header).
#[derive(Clone, Copy, Default, Debug)]
#[repr(C)]
pub struct UpdateCursor {
    pub pos: CursorPos,
    pub resource_id: u32,
    pub hot_x: u32,
    pub hot_y: u32,
    pub padding: u32,
}

/// `struct virtio_gpu_ctx_create` (after the header).
#[derive(Clone, Copy, Debug)]
#[repr(C)]
pub struct CtxCreate {
    pub nlen: u32,
    pub context_init: u32,
    pub debug_name: [u8; 64],
}

impl Default for CtxCreate {
    fn default() -> Self {
        Self {
            nlen: 0,
            context_init: 0,
            debug_name: [0; 64],
        }
    }
}

/// `struct virtio_gpu_box`.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct Box3d {
    pub x: u32,
    pub y: u32,
    pub z: u32,
    pub w: u32,
    pub h: u32,
    pub d: u32,
}

/// `struct virtio_gpu_resource_create_3d` (after the header).
#[derive(Clone, Copy, Default, Debug)]
#[repr(C)]
pub struct ResourceCreate3d {
    pub resource_id: u32,
    pub target: u32,
    pub format: u32,
    pub bind: u32,
    pub width: u32,
    pub height: u32,
    pub depth: u32,
    pub array_size: u32,
    pub last_level: u32,
    pub nr_samples: u32,
    pub flags: u32,
    pub padding: u32,
}

/// `struct virtio_gpu_transfer_host_3d` (after the header).
#[derive(Clone, Copy, Default, Debug)]
#[repr(C)]
pub struct Transfer3d {
    pub b: Box3d,
    pub offset: u64,
    pub resource_id: u32,
    pub level: u32,
    pub stride: u32,
    pub layer_stride: u32,
}

/// `struct virtio_gpu_cmd_submit` (after the header); `size` bytes of commands follow.
#[derive(Clone, Copy, Default, Debug)]
#[repr(C)]
pub struct CmdSubmit {
    pub size: u32,
    pub padding: u32,
}

/// `struct virtio_gpu_get_capset_info` (after the header).
#[derive(Clone, Copy, Default, Debug)]
#[repr(C)]
pub struct GetCapsetInfo {
    pub capset_index: u32,
    pub padding: u32,
}

/// `struct virtio_gpu_resp_capset_info` (after the header).
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct RespCapsetInfo {
    pub capset_id: u32,
    pub capset_max_version: u32,
    pub capset_max_size: u32,
    pub padding: u32,
}

/// `struct virtio_gpu_get_capset` (after the header).
#[derive(Clone, Copy, Default, Debug)]
#[repr(C)]
pub struct GetCapset {
    pub capset_id: u32,
    pub capset_version: u32,
}

// SAFETY (all below): `repr(C)` structures of integers and integer arrays whose fields are
// laid out without implicit padding (explicit `padding` fields fill every gap), so every
// byte pattern is a valid value and the bytes fully describe the value.
// SAFETY: see above.
unsafe impl ByteValued for CtrlHdr {}
// SAFETY: see above.
unsafe impl ByteValued for ResourceCreateBlob {}
// SAFETY: see above.
unsafe impl ByteValued for ResourceMapBlob {}
// SAFETY: see above.
unsafe impl ByteValued for RespMapInfo {}
// SAFETY: see above.
unsafe impl ByteValued for CtxCreate {}
// SAFETY: see above.
unsafe impl ByteValued for Box3d {}
// SAFETY: see above.
unsafe impl ByteValued for ResourceCreate3d {}
// SAFETY: see above.
unsafe impl ByteValued for Transfer3d {}
// SAFETY: see above.
unsafe impl ByteValued for CmdSubmit {}
// SAFETY: see above.
unsafe impl ByteValued for GetCapsetInfo {}
// SAFETY: see above.
unsafe impl ByteValued for RespCapsetInfo {}
// SAFETY: see above.
unsafe impl ByteValued for GetCapset {}
// SAFETY: see above.
unsafe impl ByteValued for Rect {}
// SAFETY: see above.
unsafe impl ByteValued for DisplayOne {}
// SAFETY: see above.
unsafe impl ByteValued for RespDisplayInfo {}
// SAFETY: see above.
unsafe impl ByteValued for ResourceCreate2d {}
// SAFETY: see above.
unsafe impl ByteValued for ResourceOnly {}
// SAFETY: see above.
unsafe impl ByteValued for SetScanout {}
// SAFETY: see above.
unsafe impl ByteValued for ResourceFlush {}
// SAFETY: see above.
unsafe impl ByteValued for TransferToHost2d {}
// SAFETY: see above.
unsafe impl ByteValued for AttachBacking {}
// SAFETY: see above.
unsafe impl ByteValued for MemEntry {}
// SAFETY: see above.
unsafe impl ByteValued for GetEdid {}
// SAFETY: see above.
unsafe impl ByteValued for RespEdid {}
// SAFETY: see above.
unsafe impl ByteValued for CursorPos {}
// SAFETY: see above.
unsafe impl ByteValued for UpdateCursor {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::size_of;

    #[test]
    fn sizes_match_the_specification() {
        assert_eq!(size_of::<CtrlHdr>(), 24);
        assert_eq!(size_of::<RespDisplayInfo>(), 24 + 16 * 24);
        assert_eq!(size_of::<ResourceCreate2d>(), 16);
        assert_eq!(size_of::<SetScanout>(), 24);
        assert_eq!(size_of::<TransferToHost2d>(), 32);
        assert_eq!(size_of::<MemEntry>(), 16);
        assert_eq!(size_of::<RespEdid>(), 24 + 8 + 1024);
        assert_eq!(size_of::<UpdateCursor>(), 32);
        assert_eq!(size_of::<CtxCreate>(), 72);
        assert_eq!(size_of::<ResourceCreate3d>(), 48);
        assert_eq!(size_of::<Transfer3d>(), 48);
        assert_eq!(size_of::<CmdSubmit>(), 8);
        assert_eq!(size_of::<RespCapsetInfo>(), 16);
    }

    #[test]
    fn rectangles_that_overflow_are_outside() {
        let r = Rect {
            x: u32::MAX,
            y: 0,
            width: 2,
            height: 1,
        };
        assert!(!r.inside(100, 100));
        assert!(Rect {
            x: 10,
            y: 10,
            width: 90,
            height: 90
        }
        .inside(100, 100));
        assert!(!Rect {
            x: 10,
            y: 10,
            width: 91,
            height: 90
        }
        .inside(100, 100));
    }
}
