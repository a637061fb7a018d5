//! virtio-scsi over virtio-queue's mock queues: commands reaching the drive, the response
//! header, addressing, task management, and malformed requests.

use super::*;
use crate::devices::scsi::Medium;
use virtio_queue::desc::{split::Descriptor as SplitDescriptor, RawDescriptor};
use virtio_queue::mock::MockSplitQueue;
use virtio_queue::{Queue, QueueOwnedT};
use vm_memory::{Bytes, GuestAddress};

const NEXT: u16 = 1;
const WRITE: u16 = 2;
const REQ: u64 = 0x1_0000;
const RESP: u64 = 0x2_0000;
const DATA: u64 = 0x3_0000;
const RESP_LEN: u32 = 12 + DEFAULT_SENSE_SIZE;

struct Rig {
    mem: GuestMemory,
    _image: tempfile::NamedTempFile,
    dev: Scsi,
}

/// An adapter with one drive holding a 4-block image whose block `i` is filled with `i + 1`.
fn rig() -> Rig {
    let mem = GuestMemory::from_ranges(&[(GuestAddress(0), 0x10_0000)]).unwrap();
    let image = tempfile::NamedTempFile::new().unwrap();
    let bytes: Vec<u8> = (0..4u8).flat_map(|b| [b + 1; 2048]).collect();
    std::fs::write(image.path(), &bytes).unwrap();
    let medium = Medium::open(image.path()).unwrap();
    let drive = Arc::new(Mutex::new(Cdrom::new(Some(medium))));
    Rig {
        mem,
        _image: image,
        dev: Scsi::new(vec![drive]),
    }
}

fn lun(target: u8, lun: u8) -> [u8; 8] {
    [1, target, 0x40, lun, 0, 0, 0, 0]
}

impl Rig {
    /// Runs a chain of (address, length, flags) on `queue` after writing `req` at REQ.
    fn submit(&mut self, queue: usize, req: &[u8], descs: &[(u64, u32, u16)]) -> u32 {
        self.mem.write_slice(req, GuestAddress(REQ)).unwrap();
        self.mem
            .write_slice(&[0xee; 0x200], GuestAddress(RESP))
            .unwrap();
        let vq = MockSplitQueue::new(&self.mem, 16);
        let raw: Vec<RawDescriptor> = descs
            .iter()
            .enumerate()
            .map(|(i, &(addr, len, flags))| {
                let flags = if i + 1 < descs.len() {
                    flags | NEXT
                } else {
                    flags
                };
                RawDescriptor::from(SplitDescriptor::new(
                    addr,
                    len,
                    flags,
                    u16::try_from(i + 1).unwrap(),
                ))
            })
            .collect();
        vq.build_desc_chain(&raw).unwrap();
        let mut q: Queue = vq.create_queue().unwrap();
        let chain = q.iter(&self.mem).unwrap().next().unwrap();
        self.dev.process(queue, &self.mem, chain)
    }

    /// A command to (target, lun) with `cdb`, `data_in` bytes of room; the used length.
    fn command(&mut self, addr: [u8; 8], cdb: &[u8], data_in: u32) -> u32 {
        let mut req = vec![0u8; 19 + DEFAULT_CDB_SIZE as usize];
        req[..8].copy_from_slice(&addr);
        req[8] = 0x42; // tag
        req[19..19 + cdb.len()].copy_from_slice(cdb);
        let len = u32::try_from(req.len()).unwrap();
        let mut descs = vec![(REQ, len, 0), (RESP, RESP_LEN, WRITE)];
        if data_in > 0 {
            descs.push((DATA, data_in, WRITE));
        }
        self.submit(REQUEST_QUEUE, &req, &descs)
    }

    /// (sense_len, resid, status, response, sense key/asc/ascq).
    fn response(&self) -> (u32, u32, u8, u8, [u8; 3]) {
        let mut r = [0u8; 12 + 18];
        self.mem.read_slice(&mut r, GuestAddress(RESP)).unwrap();
        let u = |i: usize| u32::from_le_bytes(r[i..i + 4].try_into().unwrap());
        (
            u(0),
            u(4),
            r[10],
            r[11],
            [r[12 + 2] & 0xf, r[12 + 12], r[12 + 13]],
        )
    }

    fn data(&self, len: usize) -> Vec<u8> {
        let mut d = vec![0u8; len];
        self.mem.read_slice(&mut d, GuestAddress(DATA)).unwrap();
        d
    }
}

#[test]
fn the_configuration_names_one_request_queue_the_targets_and_the_default_sizes() {
    let r = rig();
    let c = r.dev.config();
    assert_eq!(c.len(), CONFIG_LEN);
    let u = |i: usize| u32::from_le_bytes(c[i..i + 4].try_into().unwrap());
    assert_eq!(u(0), 1);
    assert_eq!(u(16), 16, "event_info_size");
    assert_eq!(u(20), 96, "sense_size");
    assert_eq!(u(24), 32, "cdb_size");
    assert_eq!(
        u16::from_le_bytes([c[30], c[31]]),
        0,
        "max_target: one drive"
    );
    assert_eq!(u(32), 0, "max_lun");
    assert_eq!(r.dev.device_type(), 8);
    assert_eq!(r.dev.num_queues(), 3);
}

#[test]
fn a_unit_attention_then_inquiry_and_a_read_reach_the_drive_with_their_residuals() {
    let mut r = rig();
    // The drive's power-on unit attention comes first, with its sense.
    let used = r.command(lun(0, 0), &[0, 0, 0, 0, 0, 0], 0);
    assert_eq!(used, RESP_LEN);
    let (sense_len, _, status, response, sense) = r.response();
    assert_eq!((status, response), (CHECK_CONDITION, S_OK));
    assert_eq!(sense_len, 18);
    assert_eq!(sense, [6, 0x29, 0]);
    // INQUIRY: a CD-ROM (type 5), removable.
    let used = r.command(lun(0, 0), &[0x12, 0, 0, 0, 96, 0], 96);
    let (sense_len, resid, status, response, _) = r.response();
    assert_eq!((status, response, sense_len), (GOOD, S_OK, 0));
    let data = r.data(8);
    assert_eq!(data[0] & 0x1f, 5);
    assert_eq!(data[1] & 0x80, 0x80);
    assert_eq!(used, RESP_LEN + 96 - resid);
    // READ(10) of blocks 2 and 3 into a 3-block buffer: their bytes, one block left over.
    let used = r.command(lun(0, 0), &[0x28, 0, 0, 0, 0, 2, 0, 0, 2, 0], 3 * 2048);
    let (_, resid, status, _, _) = r.response();
    assert_eq!(status, GOOD);
    assert_eq!(resid, 2048);
    assert_eq!(used, RESP_LEN + 2 * 2048);
    let data = r.data(2 * 2048);
    assert!(data[..2048].iter().all(|&b| b == 3));
    assert!(data[2048..].iter().all(|&b| b == 4));
}

#[test]
fn a_target_that_does_not_exist_is_a_bad_target_and_a_missing_lun_is_said_so() {
    let mut r = rig();
    r.command(lun(1, 0), &[0x12, 0, 0, 0, 36, 0], 36);
    assert_eq!(r.response().3, S_BAD_TARGET);
    r.command([2, 0, 0, 0, 0, 0, 0, 0], &[0x12, 0, 0, 0, 36, 0], 36);
    assert_eq!(r.response().3, S_BAD_TARGET, "not single-level addressing");
    // LUN 3 of target 0: INQUIRY says nothing is there, other commands are refused.
    r.command(lun(0, 3), &[0x12, 0, 0, 0, 36, 0], 36);
    let (_, resid, status, response, _) = r.response();
    assert_eq!((status, response, resid), (GOOD, S_OK, 0));
    assert_eq!(r.data(1)[0], 0x7f);
    r.command(lun(0, 3), &[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0], 8);
    let (_, _, status, _, sense) = r.response();
    assert_eq!((status, sense), (CHECK_CONDITION, [5, 0x25, 0]));
}

#[test]
fn malformed_requests_fail_alone_and_the_adapter_goes_on() {
    let mut r = rig();
    // A header shorter than lun + id + attributes + CDB.
    let used = r.submit(
        REQUEST_QUEUE,
        &[1, 0, 0x40, 0],
        &[(REQ, 4, 0), (RESP, RESP_LEN, WRITE)],
    );
    assert_eq!(used, RESP_LEN);
    assert_eq!(r.response().3, S_FAILURE);
    // No room for the response: the chain goes back empty.
    let used = r.submit(REQUEST_QUEUE, &[0; 51], &[(REQ, 51, 0), (RESP, 10, WRITE)]);
    assert_eq!(used, 0);
    // Only readable descriptors.
    assert_eq!(r.submit(REQUEST_QUEUE, &[0; 51], &[(REQ, 51, 0)]), 0);
    // A tiny CDB size set by the driver: commands get no CDB, and nothing breaks.
    r.dev.write_config(24, &1u32.to_le_bytes());
    let mut req = vec![0u8; 20];
    req[..8].copy_from_slice(&lun(0, 3));
    req[19] = 0x12;
    r.submit(
        REQUEST_QUEUE,
        &req,
        &[(REQ, 20, 0), (RESP, RESP_LEN, WRITE), (DATA, 64, WRITE)],
    );
    assert_eq!(r.response().3, S_OK);
    r.dev.reset();
    assert_eq!(
        u32::from_le_bytes(r.dev.config()[24..28].try_into().unwrap()),
        32
    );
    // And a good command still works.
    r.command(lun(0, 0), &[0x12, 0, 0, 0, 36, 0], 36);
    assert_eq!((r.response().2, r.data(1)[0] & 0x1f), (GOOD, 5));
}

#[test]
fn task_management_resets_the_drive_and_answers_every_function() {
    let mut r = rig();
    // Clear the power-on unit attention.
    r.command(lun(0, 0), &[0, 0, 0, 0, 0, 0], 0);
    let tmf = |subtype: u32, addr: [u8; 8]| {
        let mut req = Vec::new();
        req.extend_from_slice(&T_TMF.to_le_bytes());
        req.extend_from_slice(&subtype.to_le_bytes());
        req.extend_from_slice(&addr);
        req.extend_from_slice(&0x42u64.to_le_bytes());
        req
    };
    for (subtype, addr, expect) in [
        (TMF_ABORT_TASK, lun(0, 0), S_FUNCTION_COMPLETE),
        (TMF_QUERY_TASK_SET, lun(0, 0), S_FUNCTION_COMPLETE),
        (TMF_LOGICAL_UNIT_RESET, lun(5, 0), S_BAD_TARGET),
        (TMF_LOGICAL_UNIT_RESET, lun(0, 2), S_INCORRECT_LUN),
        (99, lun(0, 0), S_FUNCTION_REJECTED),
        (TMF_LOGICAL_UNIT_RESET, lun(0, 0), S_FUNCTION_COMPLETE),
    ] {
        let req = tmf(subtype, addr);
        let used = r.submit(CONTROL_QUEUE, &req, &[(REQ, 24, 0), (RESP, 1, WRITE)]);
        assert_eq!(used, 1);
        let mut answer = [0u8];
        r.mem.read_slice(&mut answer, GuestAddress(RESP)).unwrap();
        assert_eq!(answer[0], expect, "subtype {subtype}");
    }
    // The reset left a unit attention (power on, reset) for the next command.
    r.command(lun(0, 0), &[0, 0, 0, 0, 0, 0], 0);
    assert_eq!(r.response().4, [6, 0x29, 0]);
    // An asynchronous-notification query: no event supported.
    let mut an = Vec::new();
    an.extend_from_slice(&T_AN_QUERY.to_le_bytes());
    an.extend_from_slice(&lun(0, 0));
    an.extend_from_slice(&0x10u32.to_le_bytes());
    let used = r.submit(CONTROL_QUEUE, &an, &[(REQ, 16, 0), (RESP, 5, WRITE)]);
    assert_eq!(used, 5);
    let mut answer = [0xffu8; 5];
    r.mem.read_slice(&mut answer, GuestAddress(RESP)).unwrap();
    assert_eq!(answer, [0, 0, 0, 0, S_OK]);
    // Truncated control requests go back empty.
    assert_eq!(
        r.submit(CONTROL_QUEUE, &[0, 0], &[(REQ, 2, 0), (RESP, 1, WRITE)]),
        0
    );
}

#[test]
fn the_event_queue_keeps_its_buffers() {
    let r = rig();
    assert!(!r.dev.ready(EVENT_QUEUE));
    assert!(r.dev.ready(REQUEST_QUEUE) && r.dev.ready(CONTROL_QUEUE));
}

#[test]
fn a_guest_eject_is_told_to_the_host_once_with_its_drive() {
    let told = Arc::new(Mutex::new(Vec::new()));
    let mut r = rig();
    let sink = told.clone();
    r.dev = Scsi::new(r.dev.drives().to_vec())
        .with_eject_notice(Arc::new(move |drive| sink.lock().unwrap().push(drive)));
    // TEST UNIT READY takes the power-on attention; no eject yet.
    r.command(lun(0, 0), &[0x00; 6], 0);
    r.command(lun(0, 0), &[0x00; 6], 0);
    assert!(told.lock().unwrap().is_empty());
    // START STOP UNIT, LoEj=1 Start=0: the guest ejects.
    r.command(lun(0, 0), &[0x1b, 0, 0, 0, 0x02, 0], 0);
    assert_eq!(*told.lock().unwrap(), vec![0]);
    assert!(lock(&r.dev.drives()[0]).tray_open());
    // Further commands do not repeat it.
    r.command(lun(0, 0), &[0x00; 6], 0);
    assert_eq!(*told.lock().unwrap(), vec![0]);
}
