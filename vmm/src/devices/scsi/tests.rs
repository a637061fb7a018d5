//! The CD-ROM drive over real image files: every command's answer, the bytes of the fields
//! guests read, every sense path, allocation-length and buffer truncation, the host's
//! insert and eject, and a loop of random CDBs that must never panic.

use super::cdrom::{
    BLOCK_SIZE, CD_MAX_BLOCKS, MEDIA_EVENT_EJECT_REQUEST, MEDIA_EVENT_MEDIA_REMOVAL,
    MEDIA_EVENT_NEW_MEDIA, MEDIA_EVENT_NO_CHANGE,
};
use super::*;
use std::io::Write;
use tempfile::NamedTempFile;

const BLOCK: usize = 2048;

/// The image's byte at `offset`: differs between blocks and within them.
fn pattern(offset: usize) -> u8 {
    let block = u8::try_from(offset / BLOCK % 256).unwrap();
    let within = u8::try_from(offset % 251).unwrap();
    block.wrapping_mul(37) ^ within
}

/// An image of `len` bytes filled with [`pattern`].
fn image(len: usize) -> NamedTempFile {
    let file = NamedTempFile::new().unwrap();
    let bytes: Vec<u8> = (0..len).map(pattern).collect();
    std::fs::write(file.path(), bytes).unwrap();
    file
}

fn medium(file: &NamedTempFile) -> Medium {
    Medium::open(file.path()).unwrap()
}

/// A drive holding a `len`-byte image, its power-on unit attention already taken.
fn drive(len: usize) -> (NamedTempFile, Cdrom) {
    let file = image(len);
    let mut d = Cdrom::new(Some(medium(&file)));
    assert_eq!(run(&mut d, &[0]).0.sense, Some(POWER_ON_RESET));
    (file, d)
}

/// Takes every pending unit attention (with TEST UNIT READY).
fn settle(d: &mut Cdrom) {
    for _ in 0..8 {
        if run(d, &[0]).0.sense.map(|s| s.key) != Some(6) {
            return;
        }
    }
    panic!("unit attentions without end");
}

/// Takes every pending media event.
fn drain_events(d: &mut Cdrom) {
    for _ in 0..8 {
        if media_event(d).0 == MEDIA_EVENT_NO_CHANGE {
            return;
        }
    }
    panic!("media events without end");
}

/// An empty drive, its power-on unit attention already taken.
fn empty() -> Cdrom {
    let mut d = Cdrom::new(None);
    assert_eq!(run(&mut d, &[0]).0.sense, Some(POWER_ON_RESET));
    d
}

/// `bytes` padded to 32, as virtio-scsi hands CDBs over.
fn pad(bytes: &[u8]) -> Vec<u8> {
    let mut cdb = bytes.to_vec();
    cdb.resize(32, 0);
    cdb
}

/// Runs `cdb` (padded) with `room` bytes of data-in buffer.
fn run_room(d: &mut Cdrom, cdb: &[u8], room: usize) -> (Outcome, Vec<u8>) {
    let mut data = Vec::new();
    let outcome = d.execute(&pad(cdb), &[], &mut data, room);
    assert_eq!(
        outcome.data_in,
        data.len(),
        "data_in counts what was written"
    );
    assert!(data.len() <= room);
    assert_eq!(outcome.status == GOOD, outcome.sense.is_none());
    (outcome, data)
}

fn run(d: &mut Cdrom, cdb: &[u8]) -> (Outcome, Vec<u8>) {
    run_room(d, cdb, 1 << 20)
}

/// The data of a command that must succeed.
fn good(d: &mut Cdrom, cdb: &[u8]) -> Vec<u8> {
    let (outcome, data) = run(d, cdb);
    assert_eq!(outcome.status, GOOD, "{cdb:02x?}: {:?}", outcome.sense);
    data
}

/// The sense of a command that must fail.
fn fails(d: &mut Cdrom, cdb: &[u8]) -> Sense {
    let (outcome, data) = run(d, cdb);
    assert_eq!(outcome.status, CHECK_CONDITION, "{cdb:02x?}");
    assert_eq!(data.len(), 0);
    outcome.sense.unwrap()
}

fn be32(d: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(d[at..at + 4].try_into().unwrap())
}

fn be16(d: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([d[at], d[at + 1]])
}

fn read10(lba: u32, count: u16) -> Vec<u8> {
    let mut c = vec![0x28, 0];
    c.extend_from_slice(&lba.to_be_bytes());
    c.push(0);
    c.extend_from_slice(&count.to_be_bytes());
    c.push(0);
    c
}

fn gesn(alloc: u16) -> Vec<u8> {
    let a = alloc.to_be_bytes();
    vec![0x4a, 1, 0, 0, 1 << 4, 0, 0, a[0], a[1], 0]
}

/// (event code, media status) from GET EVENT STATUS NOTIFICATION.
fn media_event(d: &mut Cdrom) -> (u8, u8) {
    let data = good(d, &gesn(8));
    assert_eq!(data.len(), 8);
    assert_eq!(be16(&data, 0), 4, "event data length");
    assert_eq!(data[2], 4, "media class");
    assert_eq!(data[3], 1 << 4, "supported classes");
    (data[4], data[5])
}

#[test]
fn fixed_sense_data_is_18_bytes_with_key_asc_ascq_in_place() {
    let s = Sense::new(0x15, 0x3a, 0x02).fixed();
    assert_eq!(s.len(), 18);
    assert_eq!(s[0], 0x70);
    assert_eq!(s[2], 0x05, "the key is 4 bits");
    assert_eq!(s[7], 10);
    assert_eq!((s[12], s[13]), (0x3a, 0x02));
    assert_eq!(NO_SENSE.fixed()[2], 0);
}

#[test]
fn cdb_lengths_come_from_the_opcode_group() {
    assert_eq!(cdb_len(0x00), Some(6));
    assert_eq!(cdb_len(0x1f), Some(6));
    assert_eq!(cdb_len(0x28), Some(10));
    assert_eq!(cdb_len(0x5a), Some(10));
    assert_eq!(cdb_len(0x7f), None);
    assert_eq!(cdb_len(0x88), Some(16));
    assert_eq!(cdb_len(0xa8), Some(12));
    assert_eq!(cdb_len(0xc0), None);
    assert_eq!(cdb_len(0xff), None);
}

#[test]
fn images_open_read_only_and_bad_ones_are_refused_with_sentences() {
    let file = image(5000);
    let m = medium(&file);
    assert_eq!(m.path(), file.path());
    assert_eq!(m.len(), 5000);
    assert_eq!(m.blocks(), 3, "a partial last block counts");
    assert!(!m.is_dvd());

    let missing = std::path::Path::new("/nonexistent/phyllome.iso");
    let err = Medium::open(missing).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.starts_with("Cannot open the CD image /nonexistent/phyllome.iso: "),
        "{msg}"
    );
    assert!(msg.ends_with('.'));

    let empty = NamedTempFile::new().unwrap();
    let err = Medium::open(empty.path()).unwrap_err();
    assert!(matches!(err, MediumError::Empty { .. }));
    assert!(err.to_string().contains("is empty; choose an ISO image"));

    let dir = tempfile::tempdir().unwrap();
    let err = Medium::open(dir.path()).unwrap_err();
    assert!(matches!(err, MediumError::NotAFile { .. }));
    assert!(err.to_string().contains("is a folder"));
}

#[test]
fn the_power_on_unit_attention_is_reported_once_then_cleared() {
    let file = image(4 * BLOCK);
    let mut d = Cdrom::new(Some(medium(&file)));
    assert_eq!(fails(&mut d, &[0]), POWER_ON_RESET);
    good(&mut d, &[0]);
    // A read, too, gets the attention first.
    let mut d = Cdrom::new(Some(medium(&file)));
    assert_eq!(fails(&mut d, &read10(0, 1)), POWER_ON_RESET);
    assert_eq!(good(&mut d, &read10(0, 1)).len(), BLOCK);
}

#[test]
fn inquiry_request_sense_report_luns_and_the_event_commands_run_despite_a_unit_attention() {
    let file = image(4 * BLOCK);
    let mut d = Cdrom::new(Some(medium(&file)));
    good(&mut d, &[0x12, 0, 0, 0, 36, 0]);
    good(&mut d, &[0xa0, 0, 0, 0, 0, 0, 0, 0, 0, 16, 0, 0]);
    good(&mut d, &[0x46, 0, 0, 0, 0, 0, 0, 0, 64, 0]);
    good(&mut d, &gesn(8));
    // Still pending: REQUEST SENSE returns it (GOOD) and clears it.
    let data = good(&mut d, &[0x03, 0, 0, 0, 18, 0]);
    assert_eq!((data[2], data[12], data[13]), (6, 0x29, 0));
    good(&mut d, &[0]);
    // Other commands report it: MODE SENSE, PREVENT ALLOW, START STOP.
    for cdb in [
        vec![0x5a, 0, 0x2a, 0, 0, 0, 0, 0, 64, 0],
        vec![0x1e, 0, 0, 0, 1, 0],
        vec![0x1b, 0, 0, 0, 0, 0],
    ] {
        d.reset();
        assert_eq!(fails(&mut d, &cdb), POWER_ON_RESET);
    }
}

#[test]
fn test_unit_ready_says_no_medium_or_tray_open() {
    let mut d = empty();
    assert_eq!(fails(&mut d, &[0]), NOT_READY_NO_MEDIUM);
    assert_eq!(NOT_READY_NO_MEDIUM, Sense::new(2, 0x3a, 0));
    // The guest opens the empty tray.
    good(&mut d, &[0x1b, 0, 0, 0, 0x02, 0]);
    assert!(d.tray_open());
    assert_eq!(fails(&mut d, &[0]), NOT_READY_TRAY_OPEN);
    assert_eq!(NOT_READY_TRAY_OPEN, Sense::new(2, 0x3a, 2));
    assert!(!d.take_guest_eject(), "no disc went out");
}

#[test]
fn standard_inquiry_names_a_removable_cd_dvd_device() {
    let (_f, mut d) = drive(4 * BLOCK);
    let data = good(&mut d, &[0x12, 0, 0, 0, 96, 0]);
    assert_eq!(data.len(), 36);
    assert_eq!(data[0], 0x05, "qualifier 0, type 5");
    assert_eq!(data[1], 0x80, "RMB");
    assert_eq!(data[2], 0x05, "SPC-3");
    assert_eq!(data[3] & 0x0f, 2, "response data format");
    assert_eq!(data[4], 31, "additional length");
    assert_eq!(&data[8..16], b"PHYLLOME");
    assert_eq!(&data[16..32], b"CD-ROM          ");
    assert_eq!(&data[32..36], b"1.0 ");
    // Allocation length 5: five bytes.
    assert_eq!(good(&mut d, &[0x12, 0, 0, 0, 5, 0]), data[..5]);
    // Allocation length over 255 (two bytes).
    assert_eq!(good(&mut d, &[0x12, 0, 0, 1, 0, 0]).len(), 36);
    // A buffer smaller than the allocation length: the buffer wins.
    let (o, part) = run_room(&mut d, &[0x12, 0, 0, 0, 36, 0], 3);
    assert_eq!((o.status, o.data_in), (GOOD, 3));
    assert_eq!(part, data[..3]);
    // A page code without EVPD, and CmdDt, are invalid.
    assert_eq!(
        fails(&mut d, &[0x12, 0, 0x80, 0, 36, 0]),
        INVALID_FIELD_IN_CDB
    );
    assert_eq!(fails(&mut d, &[0x12, 2, 0, 0, 36, 0]), INVALID_FIELD_IN_CDB);
    // Even with no disc, INQUIRY answers.
    let mut e = empty();
    assert_eq!(good(&mut e, &[0x12, 0, 0, 0, 36, 0])[0], 5);
}

#[test]
fn vital_product_data_pages_list_serial_and_identification() {
    let file = image(BLOCK);
    let mut d = Cdrom::new(Some(medium(&file))).with_serial("CD 7\u{e9}x");
    let page0 = good(&mut d, &[0x12, 1, 0x00, 0, 255, 0]);
    assert_eq!(page0, [5, 0x00, 0, 3, 0x00, 0x80, 0x83]);
    let page80 = good(&mut d, &[0x12, 1, 0x80, 0, 255, 0]);
    assert_eq!(&page80[..4], &[5, 0x80, 0, 4]);
    assert_eq!(&page80[4..], b"CD7x", "printable ASCII only");
    let page83 = good(&mut d, &[0x12, 1, 0x83, 0, 255, 0]);
    assert_eq!(&page83[..2], &[5, 0x83]);
    assert_eq!(usize::from(be16(&page83, 2)), page83.len() - 4);
    assert_eq!(page83[4] & 0x0f, 2, "ASCII");
    assert_eq!(page83[5] & 0x0f, 1, "T10 vendor ID");
    assert_eq!(usize::from(page83[7]), page83.len() - 8);
    assert_eq!(&page83[8..16], b"PHYLLOME");
    assert_eq!(&page83[16..], b"CD7x");
    assert_eq!(
        fails(&mut d, &[0x12, 1, 0xb0, 0, 255, 0]),
        INVALID_FIELD_IN_CDB
    );
    assert_eq!(
        fails(&mut d, &[0x12, 1, 0x81, 0, 255, 0]),
        INVALID_FIELD_IN_CDB
    );
}

#[test]
fn read_capacity_gives_the_last_lba_and_2048_byte_blocks() {
    // Five blocks and a bit: six blocks, the last padded.
    let (_f, mut d) = drive(5 * BLOCK + 100);
    let data = good(&mut d, &[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(data.len(), 8);
    assert_eq!(be32(&data, 0), 5, "last LBA");
    assert_eq!(be32(&data, 4), 2048);
    // PMI clear with an LBA: invalid; PMI set: fine.
    assert_eq!(
        fails(&mut d, &[0x25, 0, 0, 0, 0, 1, 0, 0, 0, 0]),
        INVALID_FIELD_IN_CDB
    );
    good(&mut d, &[0x25, 0, 0, 0, 0, 1, 0, 0, 1, 0]);
    // READ CAPACITY(16).
    let mut c16 = vec![0x9e, 0x10];
    c16.extend_from_slice(&[0; 8]);
    c16.extend_from_slice(&32u32.to_be_bytes());
    c16.extend_from_slice(&[0, 0]);
    let data = good(&mut d, &c16);
    assert_eq!(data.len(), 32);
    assert_eq!(u64::from_be_bytes(data[..8].try_into().unwrap()), 5);
    assert_eq!(be32(&data, 8), 2048);
    // Allocation length 12.
    c16[13] = 12;
    assert_eq!(good(&mut d, &c16).len(), 12);
    // Another service action.
    c16[1] = 0x11;
    assert_eq!(fails(&mut d, &c16), INVALID_FIELD_IN_CDB);
    // No disc.
    let mut e = empty();
    assert_eq!(
        fails(&mut e, &[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
        NOT_READY_NO_MEDIUM
    );
}

#[test]
fn reads_return_the_image_bytes_and_pad_the_last_block() {
    let len = 3 * BLOCK + 1000;
    let (_f, mut d) = drive(len);
    let expect = |lba: usize, blocks: usize| -> Vec<u8> {
        (lba * BLOCK..(lba + blocks) * BLOCK)
            .map(|o| if o < len { pattern(o) } else { 0 })
            .collect()
    };
    assert_eq!(good(&mut d, &read10(1, 2)), expect(1, 2));
    // The last block: 1000 bytes of image, then zeros.
    let last = good(&mut d, &read10(3, 1));
    assert_eq!(last, expect(3, 1));
    assert!(last[1000..].iter().all(|&b| b == 0));
    assert_ne!(last[..1000], [0u8; 1000][..]);
    // READ(12) and READ(16).
    let mut r12 = vec![0xa8, 0, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0];
    assert_eq!(good(&mut d, &r12), expect(2, 2));
    let mut r16 = vec![0x88, 0];
    r16.extend_from_slice(&0u64.to_be_bytes());
    r16.extend_from_slice(&4u32.to_be_bytes());
    r16.extend_from_slice(&[0, 0]);
    assert_eq!(good(&mut d, &r16), expect(0, 4));
    // READ(6): LBA 2, one block; a count of 0 means 256, past the end here.
    assert_eq!(good(&mut d, &[0x08, 0, 0, 2, 1, 0]), expect(2, 1));
    assert_eq!(fails(&mut d, &[0x08, 0, 0, 0, 0, 0]), LBA_OUT_OF_RANGE);
    // Past the end, straddling it, and overflowing.
    assert_eq!(fails(&mut d, &read10(4, 1)), LBA_OUT_OF_RANGE);
    assert_eq!(fails(&mut d, &read10(3, 2)), LBA_OUT_OF_RANGE);
    assert_eq!(fails(&mut d, &read10(u32::MAX, 0xffff)), LBA_OUT_OF_RANGE);
    r16[2..10].copy_from_slice(&u64::MAX.to_be_bytes());
    assert_eq!(fails(&mut d, &r16), LBA_OUT_OF_RANGE);
    // No blocks: fine, even at the end.
    assert_eq!(good(&mut d, &read10(4, 0)).len(), 0);
    // RDPROTECT is not offered.
    r12[1] = 0x20;
    assert_eq!(fails(&mut d, &r12), INVALID_FIELD_IN_CDB);
}

#[test]
fn a_read_larger_than_the_buffer_transfers_what_fits() {
    let (_f, mut d) = drive(8 * BLOCK);
    let (o, data) = run_room(&mut d, &read10(0, 4), 2 * BLOCK + 100);
    assert_eq!(o, Outcome::good(2 * BLOCK + 100));
    let expect: Vec<u8> = (0..2 * BLOCK + 100).map(pattern).collect();
    assert_eq!(data, expect);
    let (o, data) = run_room(&mut d, &read10(5, 3), 0);
    assert_eq!((o.status, data.len()), (GOOD, 0));
}

#[test]
fn reads_larger_than_the_copy_chunk_come_through_whole() {
    let len = 300 * 1024 + 17;
    let (_f, mut d) = drive(len);
    let blocks = u16::try_from(len.div_ceil(BLOCK)).unwrap();
    let data = good(&mut d, &read10(0, blocks));
    assert_eq!(data.len(), usize::from(blocks) * BLOCK);
    assert!(data[..len]
        .iter()
        .enumerate()
        .all(|(i, &b)| b == pattern(i)));
    assert!(data[len..].iter().all(|&b| b == 0));
}

#[test]
fn a_host_read_error_is_an_unrecovered_read_error() {
    let file = image(4 * BLOCK);
    // A file opened for writing only: its reads fail (EBADF).
    let write_only = std::fs::OpenOptions::new()
        .write(true)
        .open(file.path())
        .unwrap();
    let m = Medium::from_file(write_only, file.path(), 4 * BLOCK_SIZE);
    let mut d = Cdrom::new(Some(m));
    run(&mut d, &[0]);
    let (o, data) = run(&mut d, &read10(0, 2));
    assert_eq!(o.status, CHECK_CONDITION);
    assert_eq!(o.sense, Some(UNRECOVERED_READ_ERROR));
    assert_eq!(UNRECOVERED_READ_ERROR, Sense::new(3, 0x11, 0));
    assert_eq!((o.data_in, data.len()), (0, 0));
}

/// Accepts `limit` bytes, then fails.
struct Failing {
    data: Vec<u8>,
    limit: usize,
}

impl Write for Failing {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.limit - self.data.len());
        if n == 0 {
            return Err(std::io::Error::other("full"));
        }
        self.data.extend_from_slice(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_failing_data_in_writer_stops_the_transfer_and_is_counted_exactly() {
    let (_f, mut d) = drive(8 * BLOCK);
    let mut w = Failing {
        data: Vec::new(),
        limit: 3000,
    };
    let o = d.execute(&pad(&read10(0, 4)), &[], &mut w, 4 * BLOCK);
    assert_eq!(o, Outcome::good(3000));
    assert_eq!(w.data.len(), 3000);
    let mut w = Failing {
        data: Vec::new(),
        limit: 10,
    };
    let o = d.execute(&pad(&[0x12, 0, 0, 0, 36, 0]), &[], &mut w, 36);
    assert_eq!(o, Outcome::good(10));
}

#[test]
fn writes_are_refused_as_write_protected() {
    let (_f, mut d) = drive(4 * BLOCK);
    for op in [
        0x0a, 0x2a, 0xaa, 0x8a, 0x2e, 0xae, 0x8e, 0x41, 0x93, 0x04, 0x53, 0x5b, 0x5d,
    ] {
        let mut cdb = vec![op, 0, 0, 0, 0, 0, 0, 0, 1, 0];
        cdb.resize(16, 0);
        assert_eq!(fails(&mut d, &cdb), WRITE_PROTECTED, "opcode {op:#04x}");
    }
    assert_eq!(WRITE_PROTECTED, Sense::new(7, 0x27, 0));
    // Without a disc, the drive is not ready first.
    let mut e = empty();
    assert_eq!(
        fails(&mut e, &[0x2a, 0, 0, 0, 0, 0, 0, 0, 1, 0]),
        NOT_READY_NO_MEDIUM
    );
}

#[test]
fn commands_that_need_a_disc_say_not_ready_without_one() {
    let mut d = empty();
    for cdb in [
        read10(0, 1),
        vec![0x08, 0, 0, 0, 1, 0],
        vec![0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        vec![0x43, 0, 0, 0, 0, 0, 0, 0, 12, 0],
        vec![0x51, 0, 0, 0, 0, 0, 0, 0, 34, 0],
        vec![0x52, 1, 0, 0, 0, 1, 0, 0, 36, 0],
        vec![0x2b, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        vec![0x2f, 0, 0, 0, 0, 0, 0, 0, 1, 0],
        vec![0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        vec![0xbe, 0, 0, 0, 0, 0, 0, 0, 1, 0x10, 0, 0],
        vec![0xad, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0],
    ] {
        assert_eq!(fails(&mut d, &cdb), NOT_READY_NO_MEDIUM, "{cdb:02x?}");
    }
    // And what needs none answers.
    for cdb in [
        vec![0x12, 0, 0, 0, 36, 0],
        vec![0x5a, 0, 0x3f, 0, 0, 0, 0, 0, 255, 0],
        vec![0x1a, 0, 0x2a, 0, 255, 0],
        vec![0x15, 0x10, 0, 0, 0, 0],
        vec![0x1e, 0, 0, 0, 0, 0],
        vec![0x46, 0, 0, 0, 0, 0, 0, 0, 255, 0],
        gesn(8),
        vec![0xbd, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0],
        vec![0xbb, 0, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0],
        vec![0xad, 0, 0, 0, 0, 0, 0, 0xff, 0, 64, 0, 0],
        vec![0x16, 0, 0, 0, 0, 0],
        vec![0x57, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    ] {
        good(&mut d, &cdb);
    }
}

/// The opcodes the drive serves (any other is an invalid opcode).
const KNOWN: &[u8] = &[
    0x00, 0x03, 0x04, 0x08, 0x0a, 0x12, 0x15, 0x16, 0x17, 0x1a, 0x1b, 0x1e, 0x25, 0x28, 0x2a, 0x2b,
    0x2e, 0x2f, 0x35, 0x41, 0x43, 0x46, 0x4a, 0x51, 0x52, 0x53, 0x55, 0x56, 0x57, 0x5a, 0x5b, 0x5d,
    0x88, 0x8a, 0x8e, 0x8f, 0x91, 0x93, 0x9e, 0xa0, 0xa8, 0xaa, 0xad, 0xae, 0xaf, 0xb6, 0xb9, 0xbb,
    0xbd, 0xbe,
];

#[test]
fn every_other_opcode_is_an_invalid_command_operation_code() {
    let (_f, mut d) = drive(4 * BLOCK);
    let mut unknown = 0;
    for op in 0..=255u8 {
        if KNOWN.contains(&op) {
            continue;
        }
        unknown += 1;
        assert_eq!(fails(&mut d, &[op]), INVALID_OPCODE, "opcode {op:#04x}");
    }
    assert!(unknown > 200);
    assert_eq!(INVALID_OPCODE, Sense::new(5, 0x20, 0));
    // Among them, commands a CD drive might be sent but does not serve.
    for op in [0x42, 0x5c, 0xa1, 0x85, 0xac, 0x23, 0x7f, 0xc0, 0xff] {
        assert_eq!(fails(&mut d, &[op]), INVALID_OPCODE);
    }
}

#[test]
fn a_cdb_shorter_than_its_group_is_an_invalid_field() {
    let (_f, mut d) = drive(4 * BLOCK);
    for (op, len) in [
        (0x00u8, 6usize),
        (0x12, 6),
        (0x28, 10),
        (0x88, 16),
        (0x8f, 16),
        (0xa8, 12),
        (0xbb, 12),
        (0x25, 10),
    ] {
        for short in 1..len {
            let mut cdb = vec![0u8; short];
            cdb[0] = op;
            let o = d.execute(&cdb, &[], &mut Vec::new(), 4096);
            assert_eq!(
                o,
                Outcome::check(INVALID_FIELD_IN_CDB),
                "{op:#04x}, {short} bytes"
            );
        }
        let mut cdb = vec![0u8; len];
        cdb[0] = op;
        let o = d.execute(&cdb, &[], &mut Vec::new(), 4096);
        assert_ne!(
            o.sense,
            Some(INVALID_FIELD_IN_CDB),
            "{op:#04x}, {len} bytes"
        );
    }
    // No CDB at all.
    let o = d.execute(&[], &[], &mut Vec::new(), 4096);
    assert_eq!(o, Outcome::check(INVALID_FIELD_IN_CDB));
    // A short CDB does not take the unit attention.
    let mut fresh = Cdrom::new(None);
    let o = fresh.execute(&[0x28, 0], &[], &mut Vec::new(), 4096);
    assert_eq!(o.sense, Some(INVALID_FIELD_IN_CDB));
    assert_eq!(fails(&mut fresh, &[0]), POWER_ON_RESET);
    // An exactly-sized READ(10) reads.
    let o = d.execute(&read10(0, 1), &[], &mut Vec::new(), 4096);
    assert_eq!(o, Outcome::good(BLOCK));
}

#[test]
fn the_toc_has_track_one_at_zero_and_the_lead_out_at_the_end() {
    let blocks = 1000u32;
    let (_f, mut d) = drive(usize::try_from(blocks).unwrap() * BLOCK);
    let toc =
        |msf: bool, track: u8| vec![0x43, if msf { 2 } else { 0 }, 0, 0, 0, 0, track, 0, 100, 0];
    let data = good(&mut d, &toc(false, 0));
    assert_eq!(data.len(), 20);
    assert_eq!(be16(&data, 0), 18);
    assert_eq!((data[2], data[3]), (1, 1), "first and last track");
    assert_eq!(&data[4..8], &[0, 0x14, 1, 0], "track 1, data");
    assert_eq!(be32(&data, 8), 0);
    assert_eq!(&data[12..16], &[0, 0x14, 0xaa, 0], "lead-out");
    assert_eq!(be32(&data, 16), blocks);
    // MSF: 150 frames of lead-in first; 1150 frames = 00:15:25.
    let data = good(&mut d, &toc(true, 1));
    assert_eq!(&data[8..12], &[0, 0, 2, 0]);
    assert_eq!(&data[16..20], &[0, 0, 15, 25]);
    // From the lead-out: it alone.
    let data = good(&mut d, &toc(false, 0xaa));
    assert_eq!(data.len(), 12);
    assert_eq!(data[6], 0xaa);
    assert_eq!(be32(&data, 8), blocks);
    // No track 2.
    assert_eq!(fails(&mut d, &toc(false, 2)), INVALID_FIELD_IN_CDB);
    // Allocation length 4: the header only.
    assert_eq!(good(&mut d, &[0x43, 0, 0, 0, 0, 0, 0, 0, 4, 0]).len(), 4);
    // Session information, asked MMC's way and SFF-8020's (Linux's multisession check).
    let s = good(&mut d, &[0x43, 0, 1, 0, 0, 0, 0, 0, 12, 0]);
    assert_eq!(s, [0, 10, 1, 1, 0, 0x14, 1, 0, 0, 0, 0, 0]);
    assert_eq!(good(&mut d, &[0x43, 0, 0, 0, 0, 0, 0, 0, 12, 0x40]), s);
    // The raw TOC: A0, A1, A2 and track 1, lead-out in MSF.
    let raw = good(&mut d, &[0x43, 0, 2, 0, 0, 0, 0, 0, 255, 0]);
    assert_eq!(raw.len(), 4 + 4 * 11);
    assert_eq!(be16(&raw, 0), 46);
    assert_eq!(raw[4 + 3], 0xa0);
    assert_eq!(raw[4 + 8], 1, "first track");
    assert_eq!(raw[15 + 3], 0xa1);
    assert_eq!(raw[26 + 3], 0xa2);
    assert_eq!(&raw[26 + 8..26 + 11], &[0, 15, 25]);
    assert_eq!(raw[37 + 3], 1);
    assert_eq!(&raw[37 + 8..37 + 11], &[0, 2, 0]);
    // Other formats.
    for format in [3, 4, 5, 0xf] {
        assert_eq!(
            fails(&mut d, &[0x43, 0, format, 0, 0, 0, 0, 0, 255, 0]),
            INVALID_FIELD_IN_CDB
        );
    }
}

#[test]
fn disc_and_track_information_describe_one_closed_session_of_one_track() {
    let (_f, mut d) = drive(50 * BLOCK);
    let data = good(&mut d, &[0x51, 0, 0, 0, 0, 0, 0, 0, 255, 0]);
    assert_eq!(data.len(), 34);
    assert_eq!(be16(&data, 0), 32);
    assert_eq!(data[2] & 3, 2, "finalized");
    assert_eq!((data[3], data[4], data[5], data[6]), (1, 1, 1, 1));
    assert_eq!(
        fails(&mut d, &[0x51, 1, 0, 0, 0, 0, 0, 0, 255, 0]),
        INVALID_FIELD_IN_CDB
    );
    // Track 1 by number, by LBA, by session.
    for (kind, n) in [(1u8, 1u32), (0, 49), (2, 1)] {
        let mut c = vec![0x52, kind];
        c.extend_from_slice(&n.to_be_bytes());
        c.extend_from_slice(&[0, 0, 36, 0]);
        let t = good(&mut d, &c);
        assert_eq!(t.len(), 36);
        assert_eq!((t[2], t[3]), (1, 1));
        assert_eq!(be32(&t, 8), 0, "track start");
        assert_eq!(be32(&t, 24), 50, "track size");
    }
    for (kind, n) in [(1u8, 2u32), (1, 0), (0, 50), (2, 2), (3, 1)] {
        let mut c = vec![0x52, kind];
        c.extend_from_slice(&n.to_be_bytes());
        c.extend_from_slice(&[0, 0, 36, 0]);
        assert_eq!(fails(&mut d, &c), INVALID_FIELD_IN_CDB);
    }
}

#[test]
fn mode_sense_serves_the_error_recovery_and_capabilities_pages() {
    let (_f, mut d) = drive(4 * BLOCK);
    // MODE SENSE(10), page 0x2a.
    let data = good(&mut d, &[0x5a, 0, 0x2a, 0, 0, 0, 0, 0, 255, 0]);
    assert_eq!(usize::from(be16(&data, 0)), data.len() - 2);
    assert_eq!(be16(&data, 6), 0, "no block descriptor");
    assert_eq!(data[8] & 0x3f, 0x2a);
    assert_eq!(data[9], 0x14);
    assert_eq!(data.len(), 8 + 22);
    assert_eq!(data[8 + 2] & 0x08, 0x08, "reads DVD-ROM");
    assert_eq!(data[8 + 3], 0, "writes nothing");
    assert_eq!(data[8 + 6] & 0x09, 0x09, "ejects and locks");
    assert_eq!(data[8 + 6] >> 5, 1, "tray");
    assert_eq!(data[8 + 6] & 0x02, 0, "unlocked");
    // Locked, the page says so.
    good(&mut d, &[0x1e, 0, 0, 0, 1, 0]);
    let data = good(&mut d, &[0x5a, 0, 0x2a, 0, 0, 0, 0, 0, 255, 0]);
    assert_eq!(data[8 + 6] & 0x02, 0x02);
    // MODE SENSE(6), page 0x01, even with DBD clear.
    let data = good(&mut d, &[0x1a, 0, 0x01, 0, 255, 0]);
    assert_eq!(usize::from(data[0]), data.len() - 1);
    assert_eq!(data[3], 0, "no block descriptor");
    assert_eq!(&data[4..6], &[0x01, 0x0a]);
    // All pages.
    let data = good(&mut d, &[0x1a, 0, 0x3f, 0, 255, 0]);
    assert_eq!(data.len(), 4 + 12 + 22);
    assert_eq!(data[4], 0x01);
    assert_eq!(data[16], 0x2a);
    good(&mut d, &[0x1a, 0, 0x3f, 0xff, 255, 0]);
    // Allocation length.
    assert_eq!(good(&mut d, &[0x1a, 0, 0x3f, 0, 7, 0]).len(), 7);
    // Changeable values: nothing is.
    let data = good(&mut d, &[0x1a, 0, 0x40 | 0x2a, 0, 255, 0]);
    assert!(data[6..].iter().all(|&b| b == 0));
    // Default values: as current.
    good(&mut d, &[0x1a, 0, 0x80 | 0x2a, 0, 255, 0]);
    // Saved values are not supported; nor other pages and subpages.
    assert_eq!(
        fails(&mut d, &[0x1a, 0, 0xc0 | 0x2a, 0, 255, 0]),
        SAVING_PARAMETERS_NOT_SUPPORTED
    );
    assert_eq!(SAVING_PARAMETERS_NOT_SUPPORTED, Sense::new(5, 0x39, 0));
    for page in [0x00, 0x08, 0x0e, 0x1a, 0x3e] {
        assert_eq!(
            fails(&mut d, &[0x1a, 0, page, 0, 255, 0]),
            INVALID_FIELD_IN_CDB
        );
    }
    assert_eq!(
        fails(&mut d, &[0x1a, 0, 0x2a, 1, 255, 0]),
        INVALID_FIELD_IN_CDB
    );
    // MODE SELECT is taken and ignored.
    let params = [0u8, 0, 0, 0, 0x01, 0x0a, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0];
    let o = d.execute(
        &pad(&[0x15, 0x10, 0, 0, 16, 0]),
        &params,
        &mut Vec::new(),
        0,
    );
    assert_eq!(o, Outcome::good(0));
    let o = d.execute(
        &pad(&[0x55, 0x10, 0, 0, 0, 0, 0, 0, 16, 0]),
        &params,
        &mut Vec::new(),
        0,
    );
    assert_eq!(o, Outcome::good(0));
}

/// GET CONFIGURATION's (current profile, feature codes with their current bits).
fn configuration(d: &mut Cdrom, rt: u8, start: u16) -> (u16, Vec<(u16, bool)>) {
    let s = start.to_be_bytes();
    let data = good(d, &[0x46, rt, s[0], s[1], 0, 0, 0, 0x10, 0, 0]);
    assert_eq!(usize::try_from(be32(&data, 0)).unwrap(), data.len() - 4);
    let mut features = Vec::new();
    let mut at = 8;
    while at < data.len() {
        features.push((be16(&data, at), data[at + 2] & 1 != 0));
        at += 4 + usize::from(data[at + 3]);
    }
    assert_eq!(at, data.len());
    (be16(&data, 6), features)
}

#[test]
fn get_configuration_reports_the_cd_or_dvd_profile_and_the_features() {
    let (_f, mut d) = drive(4 * BLOCK);
    let (profile, features) = configuration(&mut d, 0, 0);
    assert_eq!(profile, 0x0008, "CD-ROM");
    let codes: Vec<u16> = features.iter().map(|f| f.0).collect();
    assert_eq!(
        codes,
        [0x0000, 0x0001, 0x0002, 0x0003, 0x0010, 0x001e, 0x001f]
    );
    assert!(features.contains(&(0x001e, true)), "CD read current");
    assert!(features.contains(&(0x001f, false)));
    // The profile list: DVD-ROM then CD-ROM, the CD current.
    let data = good(&mut d, &[0x46, 2, 0, 0, 0, 0, 0, 0, 64, 0]);
    assert_eq!(data.len(), 8 + 4 + 8);
    assert_eq!(&data[12..20], &[0x00, 0x10, 0, 0, 0x00, 0x08, 1, 0]);
    // One feature (RT 2): the removable medium one, tray with load, eject and lock.
    let data = good(&mut d, &[0x46, 2, 0, 3, 0, 0, 0, 0, 64, 0]);
    assert_eq!(data.len(), 8 + 8);
    assert_eq!(be16(&data, 8), 3);
    assert_eq!(data[12], 0x39);
    // From feature 0x10 on.
    let (_, features) = configuration(&mut d, 0, 0x10);
    assert_eq!(features.len(), 3);
    // Allocation length 8: the header alone.
    assert_eq!(good(&mut d, &[0x46, 0, 0, 0, 0, 0, 0, 0, 8, 0]).len(), 8);
    assert_eq!(
        fails(&mut d, &[0x46, 3, 0, 0, 0, 0, 0, 0, 8, 0]),
        INVALID_FIELD_IN_CDB
    );
    // No disc: no profile, and only the current features with RT 1.
    let mut e = empty();
    let (profile, features) = configuration(&mut e, 1, 0);
    assert_eq!(profile, 0);
    let codes: Vec<u16> = features.iter().map(|f| f.0).collect();
    assert_eq!(codes, [0x0000, 0x0001, 0x0002, 0x0003]);
}

#[test]
fn an_image_larger_than_a_cd_is_a_dvd() {
    let file = NamedTempFile::new().unwrap();
    file.as_file()
        .set_len((CD_MAX_BLOCKS + 1) * BLOCK_SIZE)
        .unwrap();
    let mut d = Cdrom::new(Some(medium(&file)));
    run(&mut d, &[0]);
    assert!(d.medium().unwrap().is_dvd());
    let (profile, features) = configuration(&mut d, 1, 0);
    assert_eq!(profile, 0x0010, "DVD-ROM");
    assert!(features.contains(&(0x001f, true)));
    assert!(!features.iter().any(|f| f.0 == 0x001e));
    // READ DISC STRUCTURE: physical format of layer 0.
    let data = good(&mut d, &[0xad, 0, 0, 0, 0, 0, 0, 0, 0x08, 0x04, 0, 0]);
    assert_eq!(data.len(), 2052);
    assert_eq!(be16(&data, 0), 2050);
    assert_eq!(data[4], 0x01, "DVD-ROM");
    assert_eq!(data[6] & 0x0f, 1, "embossed");
    assert_eq!(be32(&data, 8), 0x30000);
    assert_eq!(u64::from(be32(&data, 12)), 0x30000 + CD_MAX_BLOCKS + 1 - 1);
    // Copyright and manufacturing information; layer 1 and BCA are not there.
    assert_eq!(
        good(&mut d, &[0xad, 0, 0, 0, 0, 0, 0, 1, 0, 8, 0, 0]).len(),
        8
    );
    assert_eq!(
        good(&mut d, &[0xad, 0, 0, 0, 0, 0, 0, 4, 0x08, 0x04, 0, 0]).len(),
        2052
    );
    assert_eq!(
        fails(&mut d, &[0xad, 0, 0, 0, 0, 0, 1, 0, 8, 0, 0, 0]),
        INVALID_FIELD_IN_CDB
    );
    assert_eq!(
        fails(&mut d, &[0xad, 0, 0, 0, 0, 0, 0, 3, 8, 0, 0, 0]),
        INVALID_FIELD_IN_CDB
    );
    assert_eq!(
        fails(&mut d, &[0xad, 1, 0, 0, 0, 0, 0, 0, 8, 0, 0, 0]),
        INVALID_FIELD_IN_CDB
    );
    // The TOC's lead-out in MSF: 80 minutes and a bit.
    let toc = good(&mut d, &[0x43, 2, 0, 0, 0, 0, 0, 0, 100, 0]);
    assert_eq!(toc[17], 80);
}

#[test]
fn a_cd_has_no_dvd_structures_but_lists_them() {
    let (_f, mut d) = drive(4 * BLOCK);
    assert_eq!(
        fails(&mut d, &[0xad, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0, 0]),
        INCOMPATIBLE_FORMAT
    );
    assert_eq!(INCOMPATIBLE_FORMAT, Sense::new(5, 0x30, 2));
    let list = good(&mut d, &[0xad, 0, 0, 0, 0, 0, 0, 0xff, 0, 64, 0, 0]);
    assert_eq!(list.len(), 4 + 3 * 4);
    assert_eq!(be16(&list, 0), 14);
    assert_eq!((list[4], list[8], list[12]), (0, 1, 4));
    assert_eq!(be16(&list, 6), 2052);
}

#[test]
fn media_events_follow_insert_and_eject() {
    let first = image(4 * BLOCK);
    let second = image(8 * BLOCK);
    let mut d = empty();
    assert_eq!(media_event(&mut d), (MEDIA_EVENT_NO_CHANGE, 0));
    d.insert(medium(&first));
    assert_eq!(
        media_event(&mut d),
        (MEDIA_EVENT_NEW_MEDIA, 2),
        "new media, present"
    );
    assert_eq!(MEDIA_EVENT_NEW_MEDIA, 2);
    assert_eq!(
        media_event(&mut d),
        (MEDIA_EVENT_NO_CHANGE, 2),
        "reported once"
    );
    // The unit attention: medium changed, once.
    assert_eq!(fails(&mut d, &[0]), UNIT_ATTENTION_MEDIUM_CHANGED);
    assert_eq!(UNIT_ATTENTION_MEDIUM_CHANGED, Sense::new(6, 0x28, 0));
    good(&mut d, &[0]);
    // Ejected: removal, the tray open.
    let out = d.eject(false).unwrap().unwrap();
    assert_eq!(out.path(), first.path());
    assert!(d.medium().is_none() && d.tray_open());
    assert_eq!(media_event(&mut d), (MEDIA_EVENT_MEDIA_REMOVAL, 1));
    assert_eq!(MEDIA_EVENT_MEDIA_REMOVAL, 3);
    assert_eq!(fails(&mut d, &[0]), UNIT_ATTENTION_NO_MEDIUM);
    assert_eq!(fails(&mut d, &[0]), NOT_READY_TRAY_OPEN);
    // Ejecting an empty drive: nothing.
    assert!(d.eject(false).unwrap().is_none());
    assert_eq!(media_event(&mut d), (MEDIA_EVENT_NO_CHANGE, 1));
    // A disc replaced without an eject between: removal, then the new disc.
    d.insert(medium(&first));
    run(&mut d, &[0]);
    media_event(&mut d);
    d.insert(medium(&second));
    assert_eq!(media_event(&mut d).0, MEDIA_EVENT_MEDIA_REMOVAL);
    assert_eq!(media_event(&mut d), (MEDIA_EVENT_NEW_MEDIA, 2));
    assert_eq!(fails(&mut d, &[0]), UNIT_ATTENTION_NO_MEDIUM);
    assert_eq!(fails(&mut d, &[0]), UNIT_ATTENTION_MEDIUM_CHANGED);
    good(&mut d, &[0]);
    let cap = good(&mut d, &[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(be32(&cap, 0), 7, "the second disc's size");
}

#[test]
fn event_status_is_polled_only_and_keeps_an_event_the_buffer_cannot_hold() {
    let file = image(4 * BLOCK);
    let mut d = empty();
    d.insert(medium(&file));
    assert_eq!(
        fails(&mut d, &[0x4a, 0, 0, 0, 0x10, 0, 0, 0, 8, 0]),
        INVALID_FIELD_IN_CDB
    );
    // Header only: the event stays.
    assert_eq!(good(&mut d, &gesn(4)).len(), 4);
    let (o, _) = run_room(&mut d, &gesn(8), 4);
    assert_eq!(o.data_in, 4);
    // Another class (operational change): no event available, nothing after the header.
    let data = good(&mut d, &[0x4a, 1, 0, 0, 1 << 1, 0, 0, 0, 8, 0]);
    assert_eq!(data, [0, 0, 0x80, 1 << 4]);
    assert_eq!(media_event(&mut d).0, MEDIA_EVENT_NEW_MEDIA);
}

#[test]
fn a_locked_drive_refuses_the_host_eject_unless_forced() {
    let file = image(4 * BLOCK);
    let mut d = Cdrom::new(Some(medium(&file)));
    run(&mut d, &[0]);
    good(&mut d, &[0x1e, 0, 0, 0, 1, 0]);
    assert!(d.locked());
    let err = d.eject(false).unwrap_err();
    assert_eq!(err, EjectError::Locked);
    assert_eq!(
        err.to_string(),
        "The guest has locked the CD drive; eject it from the guest, or force the eject."
    );
    assert!(d.medium().is_some() && !d.tray_open());
    // The guest is asked for the disc.
    assert_eq!(media_event(&mut d), (MEDIA_EVENT_EJECT_REQUEST, 2));
    assert_eq!(MEDIA_EVENT_EJECT_REQUEST, 1);
    // The guest unlocks: the eject goes through.
    good(&mut d, &[0x1e, 0, 0, 0, 0, 0]);
    assert!(!d.locked());
    assert!(d.eject(false).unwrap().is_some());
    // Locked again, forced: out, and unlocked.
    d.insert(medium(&file));
    settle(&mut d);
    drain_events(&mut d);
    good(&mut d, &[0x1e, 0, 0, 0, 1, 0]);
    assert!(d.eject(false).is_err());
    assert!(d.eject(true).unwrap().is_some());
    assert!(!d.locked());
    assert_eq!(
        media_event(&mut d).0,
        MEDIA_EVENT_MEDIA_REMOVAL,
        "the request gave way"
    );
}

#[test]
fn the_guest_ejects_and_loads_with_start_stop_unit() {
    let file = image(4 * BLOCK);
    let mut d = Cdrom::new(Some(medium(&file)));
    run(&mut d, &[0]);
    // Locked: refused.
    good(&mut d, &[0x1e, 0, 0, 0, 1, 0]);
    assert_eq!(
        fails(&mut d, &[0x1b, 0, 0, 0, 0x02, 0]),
        MEDIUM_REMOVAL_PREVENTED
    );
    assert_eq!(MEDIUM_REMOVAL_PREVENTED, Sense::new(5, 0x53, 2));
    assert!(!d.tray_open() && !d.take_guest_eject());
    // Unlocked: the tray opens with the disc on it.
    good(&mut d, &[0x1e, 0, 0, 0, 0, 0]);
    good(&mut d, &[0x1b, 1, 0, 0, 0x02, 0]);
    assert!(d.tray_open());
    assert!(d.medium().is_some());
    assert!(d.take_guest_eject());
    assert!(!d.take_guest_eject(), "once");
    assert_eq!(fails(&mut d, &[0]), NOT_READY_TRAY_OPEN);
    assert_eq!(fails(&mut d, &read10(0, 1)), NOT_READY_TRAY_OPEN);
    assert_eq!(media_event(&mut d), (MEDIA_EVENT_MEDIA_REMOVAL, 1));
    // Opening an open tray: nothing, even locked.
    good(&mut d, &[0x1e, 0, 0, 0, 1, 0]);
    good(&mut d, &[0x1b, 0, 0, 0, 0x02, 0]);
    // With the tray open, the host may take the disc despite the lock.
    // Instead the guest closes it: the same disc is back.
    good(&mut d, &[0x1b, 0, 0, 0, 0x03, 0]);
    assert!(!d.tray_open());
    assert_eq!(fails(&mut d, &[0]), UNIT_ATTENTION_MEDIUM_CHANGED);
    good(&mut d, &[0]);
    assert_eq!(media_event(&mut d), (MEDIA_EVENT_NEW_MEDIA, 2));
    assert_eq!(good(&mut d, &read10(0, 1)).len(), BLOCK);
    // Start or stop without LoEj, and power conditions: nothing moves.
    good(&mut d, &[0x1b, 0, 0, 0, 0x00, 0]);
    good(&mut d, &[0x1b, 0, 0, 0, 0x01, 0]);
    good(&mut d, &[0x1b, 0, 0, 0, 0x32, 0]);
    assert!(!d.tray_open());
    // Open again, then the host ejects despite the lock (the tray is open).
    good(&mut d, &[0x1e, 0, 0, 0, 0, 0]);
    good(&mut d, &[0x1b, 0, 0, 0, 0x02, 0]);
    good(&mut d, &[0x1e, 0, 0, 0, 1, 0]);
    assert!(d.eject(false).unwrap().is_some());
    settle(&mut d);
    // A locked, empty drive with its tray closed: NOT READY, removal prevented.
    good(&mut d, &[0x1b, 0, 0, 0, 0x03, 0]);
    run(&mut d, &[0]);
    assert_eq!(
        fails(&mut d, &[0x1b, 0, 0, 0, 0x02, 0]),
        NOT_READY_REMOVAL_PREVENTED
    );
}

#[test]
fn reset_unlocks_and_leaves_a_power_on_unit_attention() {
    let file = image(4 * BLOCK);
    let mut d = Cdrom::new(Some(medium(&file)));
    run(&mut d, &[0]);
    good(&mut d, &[0x1e, 0, 0, 0, 1, 0]);
    d.insert(medium(&file));
    d.reset();
    assert!(!d.locked());
    assert_eq!(
        fails(&mut d, &[0]),
        POWER_ON_RESET,
        "the reset supersedes the rest"
    );
    good(&mut d, &[0]);
    // The tray keeps its state across a reset.
    good(&mut d, &[0x1b, 0, 0, 0, 0x02, 0]);
    d.reset();
    assert!(d.tray_open());
    run(&mut d, &[0]);
    assert_eq!(fails(&mut d, &[0]), NOT_READY_TRAY_OPEN);
}

#[test]
fn request_sense_returns_the_last_sense_once_then_the_state() {
    let (_f, mut d) = drive(4 * BLOCK);
    assert_eq!(fails(&mut d, &read10(9, 1)), LBA_OUT_OF_RANGE);
    let data = good(&mut d, &[0x03, 0, 0, 0, 252, 0]);
    assert_eq!(data.len(), 18);
    assert_eq!((data[0], data[2], data[12], data[13]), (0x70, 5, 0x21, 0));
    // Cleared: no sense now.
    let data = good(&mut d, &[0x03, 0, 0, 0, 18, 0]);
    assert_eq!((data[2], data[12]), (0, 0));
    // Another command in between clears it too.
    fails(&mut d, &read10(9, 1));
    good(&mut d, &[0]);
    assert_eq!(good(&mut d, &[0x03, 0, 0, 0, 18, 0])[2], 0);
    // DESC set: still fixed format. Allocation length 8.
    fails(&mut d, &[0xff]);
    let data = good(&mut d, &[0x03, 1, 0, 0, 8, 0]);
    assert_eq!(data.len(), 8);
    assert_eq!((data[0], data[2]), (0x70, 5));
    // No disc: NOT READY, MEDIUM NOT PRESENT.
    // (The unit attention that `empty` took is the last sense until another command.)
    let mut e = empty();
    let data = good(&mut e, &[0x03, 0, 0, 0, 18, 0]);
    assert_eq!((data[2], data[12], data[13]), (6, 0x29, 0));
    let data = good(&mut e, &[0x03, 0, 0, 0, 18, 0]);
    assert_eq!((data[2], data[12], data[13]), (2, 0x3a, 0));
}

#[test]
fn report_luns_lists_lun_zero() {
    let (_f, mut d) = drive(BLOCK);
    let data = good(&mut d, &[0xa0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0]);
    assert_eq!(data.len(), 16);
    assert_eq!(be32(&data, 0), 8);
    assert!(data[4..].iter().all(|&b| b == 0));
    assert_eq!(
        fails(&mut d, &[0xa0, 0, 0, 0, 0, 0, 0, 0, 0, 15, 0, 0]),
        INVALID_FIELD_IN_CDB
    );
    assert_eq!(
        fails(&mut d, &[0xa0, 0, 3, 0, 0, 0, 0, 0, 0, 16, 0, 0]),
        INVALID_FIELD_IN_CDB
    );
}

#[test]
fn seek_verify_sync_speed_and_mechanism_status() {
    let (_f, mut d) = drive(10 * BLOCK);
    good(&mut d, &[0x2b, 0, 0, 0, 0, 9, 0, 0, 0, 0]);
    assert_eq!(
        fails(&mut d, &[0x2b, 0, 0, 0, 0, 10, 0, 0, 0, 0]),
        LBA_OUT_OF_RANGE
    );
    good(&mut d, &[0x2f, 0, 0, 0, 0, 5, 0, 0, 5, 0]);
    assert_eq!(
        fails(&mut d, &[0x2f, 0, 0, 0, 0, 5, 0, 0, 6, 0]),
        LBA_OUT_OF_RANGE
    );
    assert_eq!(
        fails(&mut d, &[0x2f, 2, 0, 0, 0, 5, 0, 0, 1, 0]),
        INVALID_FIELD_IN_CDB
    );
    good(&mut d, &[0xaf, 0, 0, 0, 0, 0, 0, 0, 0, 10, 0, 0]);
    let mut v16 = vec![0x8f, 0];
    v16.extend_from_slice(&u64::MAX.to_be_bytes());
    v16.extend_from_slice(&[0, 0, 0, 1, 0, 0]);
    assert_eq!(fails(&mut d, &v16), LBA_OUT_OF_RANGE);
    good(&mut d, &[0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    good(&mut d, &[0x91, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    good(&mut d, &[0xbb, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0]);
    good(&mut d, &[0xb6, 0, 0, 0, 0, 0, 0, 0, 0, 28, 0, 0]);
    let m = good(&mut d, &[0xbd, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0]);
    assert_eq!(m, [0u8; 8]);
    good(&mut d, &[0x1b, 0, 0, 0, 0x02, 0]);
    let m = good(&mut d, &[0xbd, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0]);
    assert_eq!(m[1] & 0x10, 0x10, "door open");
}

#[test]
fn read_cd_transfers_user_data_only() {
    let (_f, mut d) = drive(6 * BLOCK);
    let plain = good(&mut d, &read10(2, 2));
    let read_cd = |lba: u8, count: u8, sector_type: u8, fields: u8| {
        vec![
            0xbe,
            sector_type << 2,
            0,
            0,
            0,
            lba,
            0,
            0,
            count,
            fields,
            0,
            0,
        ]
    };
    assert_eq!(good(&mut d, &read_cd(2, 2, 0, 0x10)), plain);
    assert_eq!(good(&mut d, &read_cd(2, 2, 2, 0x10)), plain);
    assert_eq!(good(&mut d, &read_cd(2, 2, 0, 0)).len(), 0);
    assert_eq!(
        fails(&mut d, &read_cd(2, 2, 1, 0x10)),
        ILLEGAL_MODE_FOR_TRACK
    );
    assert_eq!(ILLEGAL_MODE_FOR_TRACK, Sense::new(5, 0x64, 0));
    assert_eq!(fails(&mut d, &read_cd(2, 2, 0, 0xf8)), INVALID_FIELD_IN_CDB);
    assert_eq!(fails(&mut d, &read_cd(2, 2, 7, 0x10)), INVALID_FIELD_IN_CDB);
    assert_eq!(fails(&mut d, &read_cd(5, 2, 0, 0x10)), LBA_OUT_OF_RANGE);
    // READ CD MSF: 00:02:02 to 00:02:04 is LBA 2, two blocks.
    assert_eq!(
        good(&mut d, &[0xb9, 0, 0, 0, 2, 2, 0, 2, 4, 0x10, 0, 0]),
        plain
    );
    assert_eq!(
        fails(&mut d, &[0xb9, 0, 0, 0, 2, 4, 0, 2, 2, 0x10, 0, 0]),
        INVALID_FIELD_IN_CDB
    );
    assert_eq!(
        fails(&mut d, &[0xb9, 0, 0, 0, 0, 0, 0, 2, 2, 0x10, 0, 0]),
        LBA_OUT_OF_RANGE,
        "the lead-in"
    );
}

/// xorshift64*: deterministic noise for the no-panic loop.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn byte(&mut self) -> u8 {
        self.next().to_le_bytes()[0]
    }
}

#[test]
fn random_cdbs_of_every_length_and_opcode_never_panic() {
    let file = image(3 * BLOCK + 5);
    let mut noise = Noise(0x1234_5678_9abc_def1);
    let mut drives = [Cdrom::new(Some(medium(&file))), Cdrom::new(None)];
    let rooms = [0usize, 1, 7, 18, 36, 512, 2048, 5000, 1 << 20];
    for round in 0..3 {
        for op in 0..=255u8 {
            for len in 0..=32usize {
                for d in &mut drives {
                    let mut cdb: Vec<u8> = (0..len).map(|_| noise.byte()).collect();
                    if let Some(first) = cdb.first_mut() {
                        *first = op;
                    }
                    // Small LBAs and counts now and then, so reads get through.
                    if round == 1 && len > 9 {
                        cdb[2..6].fill(0);
                        cdb[7] = 0;
                    }
                    let room = rooms[usize::from(noise.byte()) % rooms.len()];
                    let data_out: Vec<u8> = (0..usize::from(noise.byte() % 64))
                        .map(|_| noise.byte())
                        .collect();
                    let mut data = Vec::new();
                    let o = d.execute(&cdb, &data_out, &mut data, room);
                    assert!(data.len() <= room, "{cdb:02x?}");
                    assert_eq!(o.data_in, data.len());
                    assert!(o.status == GOOD || o.status == CHECK_CONDITION);
                    assert_eq!(o.status == CHECK_CONDITION, o.sense.is_some());
                }
            }
            // Host operations between commands.
            match noise.byte() % 16 {
                0 => drives[0].insert(medium(&file)),
                1 => {
                    let _ = drives[0].eject(noise.byte() & 1 != 0);
                }
                2 => drives[1].reset(),
                3 => {
                    drives[0].take_guest_eject();
                }
                _ => {}
            }
        }
    }
}

#[test]
fn the_drive_can_be_shared_with_the_transport_thread() {
    fn send<T: Send + std::fmt::Debug>() {}
    send::<Cdrom>();
    send::<Medium>();
    send::<Outcome>();
}
