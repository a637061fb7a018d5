//! virtio-scsi (device ID 8): a SCSI host adapter whose targets are CD-ROM drives
//! ([`crate::devices::scsi::Cdrom`]), because installers look for their medium on a CD
//! drive, and firmware boots CDs through El Torito. Target `i` is the `i`-th drive, each
//! with LUN 0. The SCSI commands themselves are the drive's business; this module reads
//! the virtio request around them (LUN, CDB, data out), writes the response (status,
//! sense, residual, data in), and answers task management on the control queue.
//!
//! Media changes are told the way QEMU's `scsi-cd` tells them: a unit attention on the
//! drive's next command and a media event for GET EVENT STATUS NOTIFICATION, which
//! Linux's `sr` polls; so the event queue carries nothing (no hot-plug, no parameter
//! change is offered) and its buffers stay with the device.

use super::{
    Chain, DeviceCore, VIRTIO_F_VERSION_1, VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC,
};
use crate::devices::bus::lock;
use crate::devices::scsi::{Cdrom, Sense, CHECK_CONDITION, GOOD};
use crate::memory::GuestMemory;
use std::io::{Read, Write};
use std::sync::{Arc, Mutex};

#[cfg(test)]
mod tests;

/// The virtio device ID.
pub const DEVICE_TYPE: u32 = 8;
/// The control queue.
pub const CONTROL_QUEUE: usize = 0;
/// The event queue.
pub const EVENT_QUEUE: usize = 1;
/// The (only) request queue.
pub const REQUEST_QUEUE: usize = 2;
const QUEUE_SIZE: u16 = 128;
/// The configuration space's size.
pub const CONFIG_LEN: usize = 36;
/// The CDB and sense sizes a driver gets until it writes its own (virtio 1.2, 5.6.4).
pub const DEFAULT_CDB_SIZE: u32 = 32;
/// See [`DEFAULT_CDB_SIZE`].
pub const DEFAULT_SENSE_SIZE: u32 = 96;
/// The largest CDB or sense size a driver may set; more is clamped.
const MAX_AREA: u32 = 256;
/// Most segments per request, and sectors (512 bytes) per transfer, offered.
const SEG_MAX: u32 = QUEUE_SIZE as u32 - 2;
const MAX_SECTORS: u32 = 0xffff;
const CMD_PER_LUN: u32 = 128;
/// `virtio_scsi_event`: event, lun[8], reason.
const EVENT_INFO_SIZE: u32 = 16;

/// Request status: completed (the SCSI status says how).
pub const S_OK: u8 = 0;
/// The target does not exist.
pub const S_BAD_TARGET: u8 = 3;
/// The request could not be read (too short for its header).
pub const S_FAILURE: u8 = 9;
/// Task management: done.
pub const S_FUNCTION_COMPLETE: u8 = 0;
/// Task management: the function is not supported.
pub const S_FUNCTION_REJECTED: u8 = 11;
/// Task management: the queried task is not in the task set.
pub const S_INCORRECT_LUN: u8 = 12;

/// Feature: the driver takes parameter-change events.
pub const VIRTIO_SCSI_F_CHANGE: u64 = 1 << 2;

/// Control request types.
const T_TMF: u32 = 0;
const T_AN_QUERY: u32 = 1;
const T_AN_SUBSCRIBE: u32 = 2;
/// Task management functions.
const TMF_ABORT_TASK: u32 = 0;
const TMF_ABORT_TASK_SET: u32 = 1;
const TMF_CLEAR_ACA: u32 = 2;
const TMF_CLEAR_TASK_SET: u32 = 3;
const TMF_I_T_NEXUS_RESET: u32 = 4;
const TMF_LOGICAL_UNIT_RESET: u32 = 5;
const TMF_QUERY_TASK: u32 = 6;
const TMF_QUERY_TASK_SET: u32 = 7;

/// The logical unit a request names is not there (SPC: 5/25/00).
const LUN_NOT_SUPPORTED: Sense = Sense {
    key: 5,
    asc: 0x25,
    ascq: 0,
};
/// INQUIRY.
const INQUIRY: u8 = 0x12;
/// REQUEST SENSE.
const REQUEST_SENSE: u8 = 0x03;
/// REPORT LUNS.
const REPORT_LUNS: u8 = 0xa0;

/// A drive on the adapter, shared with whoever changes its disc (the app's Eject).
pub type Drive = Arc<Mutex<Cdrom>>;

/// Told the index of a drive whose disc the guest ejected (START STOP UNIT), so that the
/// host can say so.
pub type EjectNotice = Arc<dyn Fn(usize) + Send + Sync>;

/// The adapter.
pub struct Scsi {
    drives: Vec<Drive>,
    cdb_size: u32,
    sense_size: u32,
    on_guest_eject: Option<EjectNotice>,
}

impl std::fmt::Debug for Scsi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scsi")
            .field("drives", &self.drives)
            .field("cdb_size", &self.cdb_size)
            .field("sense_size", &self.sense_size)
            .finish_non_exhaustive()
    }
}

/// Where a request points: a target on this adapter and a LUN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Address {
    target: u8,
    lun: u16,
}

/// Decodes virtio-scsi's 8-byte LUN field: `1, target, (0x40 | lun >> 8), lun & 0xff`
/// (single-level flat addressing); anything else names no unit of ours.
fn address(lun: &[u8; 8]) -> Option<Address> {
    if lun[0] != 1 {
        return None;
    }
    let lun16 = match lun[2] >> 6 {
        // Peripheral addressing of LUN 0..255, flat addressing of up to 16383.
        0 => u16::from(lun[3]) | (u16::from(lun[2]) << 8),
        1 => (u16::from(lun[2] & 0x3f) << 8) | u16::from(lun[3]),
        _ => return None,
    };
    lun[4..].iter().all(|&b| b == 0).then_some(Address {
        target: lun[1],
        lun: lun16,
    })
}

impl Scsi {
    /// An adapter with these drives, target 0 first.
    pub fn new(drives: Vec<Drive>) -> Self {
        Self {
            drives,
            cdb_size: DEFAULT_CDB_SIZE,
            sense_size: DEFAULT_SENSE_SIZE,
            on_guest_eject: None,
        }
    }

    /// Calls `notice` with a drive's index each time the guest ejects its disc.
    #[must_use]
    pub fn with_eject_notice(mut self, notice: EjectNotice) -> Self {
        self.on_guest_eject = Some(notice);
        self
    }

    /// The drives, to change their discs.
    pub fn drives(&self) -> &[Drive] {
        &self.drives
    }

    fn drive(&self, target: u8) -> Option<&Drive> {
        self.drives.get(usize::from(target))
    }

    /// A command request: `virtio_scsi_cmd_req` (lun[8], id, task_attr, prio, crn,
    /// cdb[cdb_size]) and data out readable; `virtio_scsi_cmd_resp` (sense_len, resid,
    /// status_qualifier, status, response, sense[sense_size]) and data in writable.
    fn command(&self, mem: &GuestMemory, chain: Chain<'_>) -> u32 {
        let header_len = 19 + self.cdb_size as usize;
        let response_len = 12 + self.sense_size as usize;
        let Ok(mut writer) = chain.clone().writer(mem) else {
            return 0;
        };
        if writer.available_bytes() < response_len {
            // No room for the response: nothing can be said; the chain goes back empty.
            log::debug!("virtio-scsi: a request without room for its response");
            return 0;
        }
        let Ok(mut data_in) = writer.split_at(response_len) else {
            return 0;
        };
        let mut header = vec![0u8; header_len];
        let read = chain
            .reader(mem)
            .ok()
            .and_then(|mut r| r.read_exact(&mut header).ok().map(|()| r));
        let Some(mut reader) = read else {
            return respond(
                &mut writer,
                self.sense_size,
                Response::failure(S_FAILURE),
                0,
            );
        };
        let mut lun = [0u8; 8];
        lun.copy_from_slice(&header[..8]);
        let cdb = &header[19..];
        let Some(addr) = address(&lun) else {
            return respond(
                &mut writer,
                self.sense_size,
                Response::failure(S_BAD_TARGET),
                0,
            );
        };
        let Some(drive) = self.drive(addr.target) else {
            return respond(
                &mut writer,
                self.sense_size,
                Response::failure(S_BAD_TARGET),
                0,
            );
        };
        let data_in_len = data_in.available_bytes();
        if addr.lun != 0 {
            let answer = absent_lun(cdb, &mut data_in, data_in_len);
            let written = answer.1;
            return respond(
                &mut writer,
                self.sense_size,
                answer.0,
                data_in_len - written,
            ) + u32::try_from(written).unwrap_or(u32::MAX);
        }
        // Data out is bounded by what a CD takes (MODE SELECT's parameter list); more
        // is not read.
        let out_len = reader.available_bytes().min(64 * 1024);
        let mut data_out = vec![0u8; out_len];
        if reader.read_exact(&mut data_out).is_err() {
            data_out.clear();
        }
        let (outcome, ejected) = {
            let mut d = lock(drive);
            let outcome = d.execute(cdb, &data_out, &mut data_in, data_in_len);
            (outcome, d.take_guest_eject())
        };
        if let (true, Some(notice)) = (ejected, &self.on_guest_eject) {
            notice(usize::from(addr.target));
        }
        let written = outcome.data_in.min(data_in_len);
        let response = Response {
            response: S_OK,
            status: outcome.status,
            sense: outcome.sense,
        };
        respond(
            &mut writer,
            self.sense_size,
            response,
            data_in_len - written,
        ) + u32::try_from(written).unwrap_or(u32::MAX)
    }

    /// A control request: task management, or asynchronous-notification queries (none
    /// is supported: the answer names no event).
    fn control(&self, mem: &GuestMemory, chain: Chain<'_>) -> u32 {
        let Ok(mut reader) = chain.clone().reader(mem) else {
            return 0;
        };
        let Ok(mut writer) = chain.writer(mem) else {
            return 0;
        };
        let mut kind = [0u8; 4];
        if reader.read_exact(&mut kind).is_err() {
            return 0;
        }
        match u32::from_le_bytes(kind) {
            T_TMF => {
                // subtype u32, lun[8], id u64; response: u8.
                let mut req = [0u8; 20];
                if reader.read_exact(&mut req).is_err() {
                    return 0;
                }
                let subtype = u32::from_le_bytes([req[0], req[1], req[2], req[3]]);
                let mut lun = [0u8; 8];
                lun.copy_from_slice(&req[4..12]);
                let answer = self.task_management(subtype, &lun);
                u32::from(writer.write_all(&[answer]).is_ok())
            }
            T_AN_QUERY | T_AN_SUBSCRIBE => {
                // lun[8], event_requested u32; response: event_actual u32, response u8.
                let mut resp = [0u8; 5];
                resp[4] = S_OK;
                if writer.write_all(&resp).is_ok() {
                    5
                } else {
                    0
                }
            }
            other => {
                log::debug!("virtio-scsi: unknown control request type {other}");
                0
            }
        }
    }

    fn task_management(&self, subtype: u32, lun: &[u8; 8]) -> u8 {
        let Some(addr) = address(lun) else {
            return S_BAD_TARGET;
        };
        let Some(drive) = self.drive(addr.target) else {
            return S_BAD_TARGET;
        };
        match subtype {
            // Every command completes before its request goes back: nothing is ever in
            // flight to abort or to find.
            TMF_ABORT_TASK | TMF_ABORT_TASK_SET | TMF_CLEAR_ACA | TMF_CLEAR_TASK_SET => {
                S_FUNCTION_COMPLETE
            }
            TMF_QUERY_TASK | TMF_QUERY_TASK_SET => S_FUNCTION_COMPLETE,
            TMF_LOGICAL_UNIT_RESET | TMF_I_T_NEXUS_RESET => {
                if addr.lun != 0 {
                    return S_INCORRECT_LUN;
                }
                lock(drive).reset();
                S_FUNCTION_COMPLETE
            }
            _ => S_FUNCTION_REJECTED,
        }
    }
}

/// What goes in a command's response header.
struct Response {
    response: u8,
    status: u8,
    sense: Option<Sense>,
}

impl Response {
    fn failure(response: u8) -> Self {
        Self {
            response,
            status: GOOD,
            sense: None,
        }
    }
}

/// Writes the response header (sense_len, resid, status_qualifier, status, response,
/// sense); returns its length, the bytes the device wrote before the data in.
fn respond(writer: &mut impl Write, sense_size: u32, r: Response, resid: usize) -> u32 {
    let sense = r.sense.map(|s| s.fixed());
    let sense_bytes: &[u8] = sense.as_ref().map_or(&[], |s| &s[..]);
    let sense_len = sense_bytes.len().min(sense_size as usize);
    let mut head = Vec::with_capacity(12 + sense_size as usize);
    head.extend_from_slice(&u32::try_from(sense_len).unwrap_or(0).to_le_bytes());
    head.extend_from_slice(&u32::try_from(resid).unwrap_or(u32::MAX).to_le_bytes());
    head.extend_from_slice(&0u16.to_le_bytes());
    head.push(r.status);
    head.push(r.response);
    head.extend_from_slice(&sense_bytes[..sense_len]);
    head.resize(12 + sense_size as usize, 0);
    if writer.write_all(&head).is_err() {
        return 0;
    }
    u32::try_from(head.len()).unwrap_or(0)
}

/// A command for a LUN the target does not have: INQUIRY says "no unit here"
/// (peripheral qualifier 3), REQUEST SENSE says why, REPORT LUNS lists LUN 0, the rest
/// are refused with LOGICAL UNIT NOT SUPPORTED (SPC-4, 4.5). Returns the response and the
/// data-in bytes written.
fn absent_lun(cdb: &[u8], data_in: &mut impl Write, room: usize) -> (Response, usize) {
    let good = |bytes: &[u8], alloc: usize, data_in: &mut dyn Write| {
        let n = bytes.len().min(alloc).min(room);
        let written = if data_in.write_all(&bytes[..n]).is_ok() {
            n
        } else {
            0
        };
        (
            Response {
                response: S_OK,
                status: GOOD,
                sense: None,
            },
            written,
        )
    };
    let byte = |i: usize| usize::from(cdb.get(i).copied().unwrap_or(0));
    match cdb.first() {
        Some(&INQUIRY) => {
            let alloc = (byte(3) << 8) | byte(4);
            let mut data = [0u8; 36];
            data[0] = 0x7f;
            data[2] = 5;
            data[3] = 2;
            data[4] = 31;
            good(&data, alloc, data_in)
        }
        Some(&REQUEST_SENSE) => {
            let alloc = byte(4);
            good(&LUN_NOT_SUPPORTED.fixed(), alloc, data_in)
        }
        Some(&REPORT_LUNS) => {
            let alloc = (byte(6) << 24) | (byte(7) << 16) | (byte(8) << 8) | byte(9);
            let mut data = [0u8; 16];
            data[3] = 8;
            good(&data, alloc, data_in)
        }
        _ => (
            Response {
                response: S_OK,
                status: CHECK_CONDITION,
                sense: Some(LUN_NOT_SUPPORTED),
            },
            0,
        ),
    }
}

impl DeviceCore for Scsi {
    fn device_type(&self) -> u32 {
        DEVICE_TYPE
    }
    fn num_queues(&self) -> usize {
        3
    }
    fn max_queue_size(&self) -> u16 {
        QUEUE_SIZE
    }
    /// `VIRTIO_SCSI_F_CHANGE` says only that the driver takes parameter-change events;
    /// none is ever due (a media change is told by unit attention), but QEMU's
    /// `vhost-user-scsi-pci` offers the bit to its guest itself and passes the guest's
    /// acknowledgement on, which a backend must have offered.
    fn features(&self) -> u64 {
        VIRTIO_F_VERSION_1
            | VIRTIO_RING_F_EVENT_IDX
            | VIRTIO_RING_F_INDIRECT_DESC
            | VIRTIO_SCSI_F_CHANGE
    }
    fn config(&self) -> Vec<u8> {
        let max_target = u16::try_from(self.drives.len().saturating_sub(1)).unwrap_or(255);
        let mut c = Vec::with_capacity(CONFIG_LEN);
        for v in [
            1, // request queues
            SEG_MAX,
            MAX_SECTORS,
            CMD_PER_LUN,
            EVENT_INFO_SIZE,
            self.sense_size,
            self.cdb_size,
        ] {
            c.extend_from_slice(&v.to_le_bytes());
        }
        c.extend_from_slice(&0u16.to_le_bytes()); // max_channel
        c.extend_from_slice(&max_target.to_le_bytes());
        c.extend_from_slice(&0u32.to_le_bytes()); // max_lun
        c
    }
    /// The driver may set `sense_size` (offset 20) and `cdb_size` (offset 24); the rest
    /// is read-only. Sizes above 256 are taken as 256.
    fn write_config(&mut self, offset: usize, data: &[u8]) {
        let value = |d: &[u8]| -> Option<u32> { Some(u32::from_le_bytes(d.try_into().ok()?)) };
        match (offset, value(data)) {
            (20, Some(v)) => self.sense_size = v.min(MAX_AREA),
            (24, Some(v)) => self.cdb_size = v.min(MAX_AREA),
            _ => log::debug!(
                "virtio-scsi: ignored a {}-byte configuration write at {offset}",
                data.len()
            ),
        }
    }
    fn process(&mut self, queue: usize, mem: &GuestMemory, chain: Chain<'_>) -> u32 {
        match queue {
            CONTROL_QUEUE => self.control(mem, chain),
            REQUEST_QUEUE => self.command(mem, chain),
            _ => 0,
        }
    }
    /// The event queue's buffers stay with the device: no event is ever sent.
    fn ready(&self, queue: usize) -> bool {
        queue != EVENT_QUEUE
    }
    fn reset(&mut self) {
        self.cdb_size = DEFAULT_CDB_SIZE;
        self.sense_size = DEFAULT_SENSE_SIZE;
        for d in &self.drives {
            lock(d).reset();
        }
    }
}
