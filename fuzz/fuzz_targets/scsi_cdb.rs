//! Fuzzes what a guest controls in the CD-ROM drive: every byte of a sequence of CDBs (of
//! any length up to virtio-scsi's 32, shorter than their opcode's or not) and the size of
//! each data-in buffer, mixed with the host's insert, eject, reset and guest-eject polls.
//! The drive must never panic, never write more than the buffer it was given, and count
//! exactly what it wrote.
//!
//! Input: the first byte says whether the drive starts with a disc (bit 0), the image's
//! blocks (bits 1-3, plus one) and whether its last block is partial (bit 4). Then records:
//! a tag byte; tags 0-3 (mod 8) are host operations (insert, eject — forced if bit 7 —,
//! reset, take the guest-eject flag); any other is a command: a length byte (mod 33), two
//! bytes of data-in room (little-endian), then the CDB.

#![no_main]

use libfuzzer_sys::fuzz_target;
use phyllome_vmm::devices::scsi::{Cdrom, Medium, CHECK_CONDITION, GOOD};
use std::io::Write;

/// Counts what the drive writes, and checks it against the room it was given.
struct Sink {
    written: usize,
    room: usize,
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.written += buf.len();
        assert!(self.written <= self.room, "data in past the buffer");
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, mut rest)) = data.split_first() else {
        return;
    };
    let blocks = usize::from((first >> 1) & 7) + 1;
    let tail = if first & 0x10 != 0 { 100 } else { 0 };
    let image = tempfile::NamedTempFile::new().unwrap();
    let bytes: Vec<u8> = (0..blocks * 2048 - tail).map(|i| (i % 251) as u8).collect();
    std::fs::write(image.path(), &bytes).unwrap();
    let disc = || Medium::open(image.path()).unwrap();
    let mut drive = Cdrom::new((first & 1 != 0).then(disc));

    while let Some((&tag, after)) = rest.split_first() {
        rest = after;
        match tag % 8 {
            0 => drive.insert(disc()),
            1 => {
                let _ = drive.eject(tag & 0x80 != 0);
            }
            2 => drive.reset(),
            3 => {
                drive.take_guest_eject();
            }
            _ => {
                if rest.len() < 3 {
                    return;
                }
                let len = usize::from(rest[0] % 33).min(rest.len() - 3);
                let room = usize::from(u16::from_le_bytes([rest[1], rest[2]]));
                let cdb = &rest[3..3 + len];
                rest = &rest[3 + len..];
                let mut sink = Sink { written: 0, room };
                let outcome = drive.execute(cdb, &[], &mut sink, room);
                assert_eq!(
                    outcome.data_in, sink.written,
                    "data_in counts what was written"
                );
                assert!(outcome.status == GOOD || outcome.status == CHECK_CONDITION);
                assert_eq!(outcome.status == CHECK_CONDITION, outcome.sense.is_some());
            }
        }
    }
    assert_eq!(
        image.as_file().metadata().unwrap().len(),
        bytes.len() as u64,
        "the image is never written"
    );
});
