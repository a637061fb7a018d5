//! An MMC CD/DVD-ROM drive (peripheral device type 5) over a read-only image, so that a
//! guest can install from an ISO and the user can change discs while it runs.
//!
//! The drive has a tray and a disc, as QEMU's `scsi-cd` models them: the guest's eject
//! (START STOP UNIT) opens the tray and leaves the disc on it, and its load closes the tray
//! with the same disc; the host's eject ([`Cdrom::eject`]) takes the disc away and leaves
//! the tray open; the host's insert closes the tray on the new disc. The guest learns of
//! changes in the two ways real drives tell them: a unit attention on its next command
//! (6/3a/00 when a disc goes, 6/28/00 when one comes), which every driver handles, and a
//! media event for GET EVENT STATUS NOTIFICATION, which Linux's `sr` polls. PREVENT ALLOW
//! MEDIUM REMOVAL locks the tray against both ejects; the host may force its own.
//!
//! Images of up to 80 minutes of CD (360,000 blocks) are CD-ROMs, larger ones DVD-ROMs,
//! as in QEMU: the current profile, the TOC and READ DISC STRUCTURE follow. Blocks are 2048
//! bytes; an image whose size is not a multiple of that reads its last block padded with
//! zeros.
//!
//! Where the standards leave a choice:
//! - REQUEST SENSE always answers in fixed format (the DESC bit is ignored; SPC allows a
//!   unit that has no descriptor format to do so).
//! - MODE SENSE never returns a block descriptor, whatever DBD says, and leaves the medium
//!   type and device-specific parameter zero: MMC-5 defines neither for CD/DVD drives
//!   (QEMU does the same). MODE SELECT is accepted and ignored.
//! - READ(6), which MMC does not list, is served as SBC defines it (QEMU does too), for old
//!   software that still sends it.
//! - READ CD and READ CD MSF transfer user data (2048 bytes a block) only; raw sectors,
//!   headers and sub-channels are refused as an invalid field.

use super::{
    cdb_len, Outcome, Sense, CHECK_CONDITION, ILLEGAL_MODE_FOR_TRACK, INCOMPATIBLE_FORMAT,
    INVALID_FIELD_IN_CDB, INVALID_OPCODE, LBA_OUT_OF_RANGE, MEDIUM_REMOVAL_PREVENTED,
    NOT_READY_NO_MEDIUM, NOT_READY_REMOVAL_PREVENTED, NOT_READY_TRAY_OPEN, NO_SENSE,
    POWER_ON_RESET, SAVING_PARAMETERS_NOT_SUPPORTED, UNIT_ATTENTION_MEDIUM_CHANGED,
    UNIT_ATTENTION_NO_MEDIUM, UNRECOVERED_READ_ERROR, WRITE_PROTECTED,
};
use std::collections::VecDeque;
use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// The drive's block size: a CD or DVD data sector's user data.
pub const BLOCK_SIZE: u64 = 2048;
/// Images of more blocks than an 80-minute CD (80 × 60 × 75) are DVDs (QEMU's rule).
pub const CD_MAX_BLOCKS: u64 = 80 * 60 * 75;
/// Reads go through a buffer of at most this many bytes at a time.
const CHUNK: usize = 128 << 10;
/// The standard INQUIRY data's vendor, product and revision.
const VENDOR: &[u8; 8] = b"PHYLLOME";
const PRODUCT: &[u8] = b"CD-ROM";
const REVISION: &[u8] = b"1.0";
/// The unit serial number (VPD page 0x80) unless [`Cdrom::with_serial`] sets one.
const DEFAULT_SERIAL: &str = "PHYLLOME-CD0";
/// Most pending unit attentions or media events kept; older ones give way.
const QUEUE_MAX: usize = 4;

// Operation codes (SPC-3, SBC-2, MMC-5).
const TEST_UNIT_READY: u8 = 0x00;
const REQUEST_SENSE: u8 = 0x03;
const FORMAT_UNIT: u8 = 0x04;
const READ_6: u8 = 0x08;
const WRITE_6: u8 = 0x0a;
const INQUIRY: u8 = 0x12;
const MODE_SELECT_6: u8 = 0x15;
const RESERVE_6: u8 = 0x16;
const RELEASE_6: u8 = 0x17;
const MODE_SENSE_6: u8 = 0x1a;
const START_STOP_UNIT: u8 = 0x1b;
const PREVENT_ALLOW_MEDIUM_REMOVAL: u8 = 0x1e;
const READ_CAPACITY_10: u8 = 0x25;
const READ_10: u8 = 0x28;
const WRITE_10: u8 = 0x2a;
const SEEK_10: u8 = 0x2b;
const WRITE_AND_VERIFY_10: u8 = 0x2e;
const VERIFY_10: u8 = 0x2f;
const SYNCHRONIZE_CACHE_10: u8 = 0x35;
const WRITE_SAME_10: u8 = 0x41;
const READ_TOC_PMA_ATIP: u8 = 0x43;
const GET_CONFIGURATION: u8 = 0x46;
const GET_EVENT_STATUS_NOTIFICATION: u8 = 0x4a;
const READ_DISC_INFORMATION: u8 = 0x51;
const READ_TRACK_INFORMATION: u8 = 0x52;
const RESERVE_TRACK: u8 = 0x53;
const MODE_SELECT_10: u8 = 0x55;
const RESERVE_10: u8 = 0x56;
const RELEASE_10: u8 = 0x57;
const MODE_SENSE_10: u8 = 0x5a;
const CLOSE_TRACK_SESSION: u8 = 0x5b;
const SEND_CUE_SHEET: u8 = 0x5d;
const READ_16: u8 = 0x88;
const WRITE_16: u8 = 0x8a;
const WRITE_AND_VERIFY_16: u8 = 0x8e;
const VERIFY_16: u8 = 0x8f;
const SYNCHRONIZE_CACHE_16: u8 = 0x91;
const WRITE_SAME_16: u8 = 0x93;
const SERVICE_ACTION_IN_16: u8 = 0x9e;
const REPORT_LUNS: u8 = 0xa0;
const READ_12: u8 = 0xa8;
const WRITE_12: u8 = 0xaa;
const READ_DISC_STRUCTURE: u8 = 0xad;
const WRITE_AND_VERIFY_12: u8 = 0xae;
const VERIFY_12: u8 = 0xaf;
const SET_STREAMING: u8 = 0xb6;
const READ_CD_MSF: u8 = 0xb9;
const SET_CD_SPEED: u8 = 0xbb;
const MECHANISM_STATUS: u8 = 0xbd;
const READ_CD: u8 = 0xbe;

/// SERVICE ACTION IN(16)'s READ CAPACITY(16).
const SAI_READ_CAPACITY_16: u8 = 0x10;

/// Media event codes (MMC-5, GET EVENT STATUS NOTIFICATION, media class).
pub const MEDIA_EVENT_NO_CHANGE: u8 = 0;
/// The user asked for the disc (the host's eject while the guest holds the lock).
pub const MEDIA_EVENT_EJECT_REQUEST: u8 = 1;
/// A disc came in (host insert, or the tray closed on one).
pub const MEDIA_EVENT_NEW_MEDIA: u8 = 2;
/// The disc went out (host eject, or the tray opened).
pub const MEDIA_EVENT_MEDIA_REMOVAL: u8 = 3;
/// Event notification class: media (bit 4 of the class request and supported classes).
const GESN_MEDIA: u8 = 4;

/// MMC profiles.
const PROFILE_NONE: u16 = 0x0000;
const PROFILE_CD_ROM: u16 = 0x0008;
const PROFILE_DVD_ROM: u16 = 0x0010;

/// Why an image cannot go in the drive, or the drive will not give it up.
#[derive(Debug, thiserror::Error)]
pub enum MediumError {
    /// Missing or unreadable.
    #[error("Cannot open the CD image {}: {source}.", path.display())]
    Open {
        /// The image.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A folder was chosen.
    #[error("The CD image {} is a folder, not a file; choose an ISO image.", path.display())]
    NotAFile {
        /// The path.
        path: PathBuf,
    },
    /// Zero bytes: no disc in it.
    #[error("The CD image {} is empty; choose an ISO image that holds a disc.", path.display())]
    Empty {
        /// The image.
        path: PathBuf,
    },
}

/// Why the host's eject did not happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EjectError {
    /// The guest prevented medium removal and the eject was not forced. The guest was sent
    /// an eject request, which desktops act on.
    #[error("The guest has locked the CD drive; eject it from the guest, or force the eject.")]
    Locked,
}

/// A disc: a read-only image and its length.
#[derive(Debug)]
pub struct Medium {
    file: File,
    path: PathBuf,
    len: u64,
}

impl Medium {
    /// Opens an image read-only. Any non-zero length is taken (the last partial block reads
    /// padded with zeros); an empty file, a folder or an unreadable path is refused with a
    /// sentence naming the path.
    pub fn open(path: &Path) -> Result<Self, MediumError> {
        let open_error = |source| MediumError::Open {
            path: path.to_path_buf(),
            source,
        };
        let mut file = File::open(path).map_err(open_error)?;
        if file.metadata().map_err(open_error)?.is_dir() {
            return Err(MediumError::NotAFile {
                path: path.to_path_buf(),
            });
        }
        // Seeking to the end measures block devices too, whose metadata says 0.
        let len = file.seek(SeekFrom::End(0)).map_err(open_error)?;
        if len == 0 {
            return Err(MediumError::Empty {
                path: path.to_path_buf(),
            });
        }
        Ok(Self {
            file,
            path: path.to_path_buf(),
            len,
        })
    }

    /// A medium over an already open file of `len` bytes (the tests' way to a file that
    /// fails its reads).
    #[cfg(test)]
    pub(super) fn from_file(file: File, path: &Path, len: u64) -> Self {
        Self {
            file,
            path: path.to_path_buf(),
            len,
        }
    }

    /// The image's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The image's size in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Never true: empty images are refused. (For symmetry with [`Medium::len`].)
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The disc's size in 2048-byte blocks, a partial last block counted.
    pub fn blocks(&self) -> u64 {
        self.len.div_ceil(BLOCK_SIZE)
    }

    /// Whether the disc counts as a DVD (larger than an 80-minute CD).
    pub fn is_dvd(&self) -> bool {
        self.blocks() > CD_MAX_BLOCKS
    }

    /// Copies `len` bytes from `offset` to `out` in chunks, zeros past the end of the file.
    /// Returns the bytes written, and whether the host read failed (then the count is what
    /// went out before it). Stops early, without error, where `out` takes no more.
    fn copy_to(&self, offset: u64, len: usize, out: &mut dyn Write) -> (usize, bool) {
        let mut buf = vec![0u8; len.min(CHUNK)];
        let mut done = 0usize;
        while done < len {
            let n = (len - done).min(CHUNK);
            let chunk = &mut buf[..n];
            let Some(at) = u64::try_from(done).ok().and_then(|d| offset.checked_add(d)) else {
                return (done, true);
            };
            if !self.read_padded(at, chunk) {
                return (done, true);
            }
            let wrote = write_counted(out, chunk);
            done = done.saturating_add(wrote);
            if wrote < n {
                break;
            }
        }
        (done, false)
    }

    /// Fills `buf` from `offset`, zeros beyond the end of the file; false on a read error.
    fn read_padded(&self, offset: u64, buf: &mut [u8]) -> bool {
        let mut filled = 0usize;
        while filled < buf.len() {
            let Some(at) = u64::try_from(filled)
                .ok()
                .and_then(|f| offset.checked_add(f))
            else {
                return false;
            };
            if at >= self.len {
                break;
            }
            match self.file.read_at(&mut buf[filled..], at) {
                // The file shrank under us: what is gone reads as zeros.
                Ok(0) => break,
                Ok(n) => filled = filled.saturating_add(n).min(buf.len()),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    log::warn!(
                        "CD image {}: read of {} bytes at {at} failed: {e}",
                        self.path.display(),
                        buf.len() - filled
                    );
                    return false;
                }
            }
        }
        buf[filled..].fill(0);
        true
    }
}

/// Writes as much of `buf` as `out` takes; returns how much that was.
fn write_counted(out: &mut dyn Write, buf: &[u8]) -> usize {
    let mut done = 0usize;
    while done < buf.len() {
        match out.write(&buf[done..]) {
            Ok(0) => break,
            Ok(n) => done = done.saturating_add(n).min(buf.len()),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    done
}

/// `n` big-endian bytes of `cdb` from `at` (missing bytes read as zero).
fn field(cdb: &[u8], at: usize, n: usize) -> u64 {
    (0..n.min(8)).fold(0u64, |acc, i| {
        let byte = at.checked_add(i).and_then(|j| cdb.get(j)).copied();
        (acc << 8) | u64::from(byte.unwrap_or(0))
    })
}

/// Byte `at` of `cdb`, zero if absent.
fn byte(cdb: &[u8], at: usize) -> u8 {
    cdb.get(at).copied().unwrap_or(0)
}

/// `v` as a big-endian u16, saturated.
fn be16(v: usize) -> [u8; 2] {
    u16::try_from(v).unwrap_or(u16::MAX).to_be_bytes()
}

/// `v` as a big-endian u32, saturated.
fn be32(v: u64) -> [u8; 4] {
    u32::try_from(v).unwrap_or(u32::MAX).to_be_bytes()
}

/// An LBA as minutes, seconds and frames (150 frames of lead-in first), saturated.
fn msf(lba: u64) -> [u8; 3] {
    let frames = lba.saturating_add(150);
    let minutes = u8::try_from(frames / (75 * 60)).unwrap_or(u8::MAX);
    let seconds = u8::try_from(frames / 75 % 60).unwrap_or(0);
    let frame = u8::try_from(frames % 75).unwrap_or(0);
    [minutes, seconds, frame]
}

/// A TOC address: `[0, M, S, F]` or the LBA as a big-endian u32.
fn toc_address(lba: u64, as_msf: bool) -> [u8; 4] {
    if as_msf {
        let [m, s, f] = msf(lba);
        [0, m, s, f]
    } else {
        be32(lba)
    }
}

/// A CD-ROM drive: the tray, the disc, the guest's lock and what the guest has yet to hear.
#[derive(Debug)]
pub struct Cdrom {
    medium: Option<Medium>,
    tray_open: bool,
    locked: bool,
    /// Unit attentions to report, oldest first.
    attention: VecDeque<Sense>,
    /// Media events for GET EVENT STATUS NOTIFICATION, oldest first.
    events: VecDeque<u8>,
    /// The sense of the last failed command, for a REQUEST SENSE right after it.
    last_sense: Option<Sense>,
    /// The guest ejected the disc since the host last asked.
    guest_ejected: bool,
    serial: String,
}

/// Where a command's data goes: the transport's writer and how much its buffer holds.
struct DataIn<'a> {
    out: &'a mut dyn Write,
    room: usize,
}

impl DataIn<'_> {
    /// GOOD, with `data` cut to the allocation length and the buffer.
    fn reply(&mut self, data: &[u8], alloc: u64) -> Outcome {
        let alloc = usize::try_from(alloc).unwrap_or(usize::MAX);
        let n = data.len().min(alloc).min(self.room);
        Outcome::good(write_counted(self.out, &data[..n]))
    }
}

impl Cdrom {
    /// A drive, with or without a disc, tray closed and unlocked. It starts with a POWER ON
    /// unit attention (6/29/00) pending, as real drives do.
    pub fn new(medium: Option<Medium>) -> Self {
        Self {
            medium,
            tray_open: false,
            locked: false,
            attention: VecDeque::from([POWER_ON_RESET]),
            events: VecDeque::new(),
            last_sense: None,
            guest_ejected: false,
            serial: DEFAULT_SERIAL.to_owned(),
        }
    }

    /// Sets the unit serial number (VPD pages 0x80 and 0x83; at most 32 bytes are kept, of
    /// printable ASCII), so that several drives have distinct `/dev/disk/by-id` names.
    #[must_use]
    pub fn with_serial(mut self, serial: &str) -> Self {
        self.serial = serial
            .chars()
            .filter(|c| c.is_ascii_graphic())
            .take(32)
            .collect();
        self
    }

    /// The disc, on the tray or in the drive.
    pub fn medium(&self) -> Option<&Medium> {
        self.medium.as_ref()
    }

    /// Whether the guest prevents medium removal.
    pub fn locked(&self) -> bool {
        self.locked
    }

    /// Whether the tray is open (the guest ejected, or the host took the disc).
    pub fn tray_open(&self) -> bool {
        self.tray_open
    }

    /// True once after the guest ejected a disc with START STOP UNIT (LoEj=1, Start=0), so
    /// the host can tell the user (or take the disc out).
    pub fn take_guest_eject(&mut self) -> bool {
        std::mem::take(&mut self.guest_ejected)
    }

    /// The host puts a disc in: it replaces any disc and the tray closes. The guest gets a
    /// unit attention (6/28/00) and a NEW MEDIA event; when a disc was replaced, a removal
    /// (6/3a/00, MEDIA REMOVAL) comes first. The guest's lock stays.
    pub fn insert(&mut self, medium: Medium) {
        if self.medium.is_some() {
            self.removed();
        }
        self.medium = Some(medium);
        self.tray_open = false;
        self.events.retain(|&e| e != MEDIA_EVENT_EJECT_REQUEST);
        self.push_event(MEDIA_EVENT_NEW_MEDIA);
        self.push_attention(UNIT_ATTENTION_MEDIUM_CHANGED);
    }

    /// The host takes the disc out, leaving the tray open. While the guest holds the lock
    /// on a closed tray this is refused unless `force` (which also drops the lock), and the
    /// guest is sent an EJECT REQUEST event. An empty drive gives `Ok(None)`. The guest
    /// gets a unit attention (6/3a/00) and a MEDIA REMOVAL event.
    pub fn eject(&mut self, force: bool) -> Result<Option<Medium>, EjectError> {
        if self.medium.is_none() {
            return Ok(None);
        }
        if self.locked && !self.tray_open {
            if !force {
                self.push_event(MEDIA_EVENT_EJECT_REQUEST);
                return Err(EjectError::Locked);
            }
            self.locked = false;
        }
        let medium = self.medium.take();
        self.tray_open = true;
        self.removed();
        Ok(medium)
    }

    /// A bus or device reset: the lock goes, pending unit attentions and sense give way to
    /// POWER ON, RESET (6/29/00). The tray stays as it is (it is mechanical), so a guest
    /// that ejected its installer and rebooted does not find the disc back.
    pub fn reset(&mut self) {
        self.locked = false;
        self.last_sense = None;
        self.attention.clear();
        self.attention.push_back(POWER_ON_RESET);
    }

    fn removed(&mut self) {
        self.events.retain(|&e| e != MEDIA_EVENT_EJECT_REQUEST);
        self.push_event(MEDIA_EVENT_MEDIA_REMOVAL);
        self.push_attention(UNIT_ATTENTION_NO_MEDIUM);
    }

    fn push_attention(&mut self, sense: Sense) {
        if self.attention.back() == Some(&sense) {
            return;
        }
        if self.attention.len() >= QUEUE_MAX {
            self.attention.pop_front();
        }
        self.attention.push_back(sense);
    }

    fn push_event(&mut self, event: u8) {
        if self.events.back() == Some(&event) {
            return;
        }
        if self.events.len() >= QUEUE_MAX {
            self.events.pop_front();
        }
        self.events.push_back(event);
    }

    /// The disc, if it can be read now; else the NOT READY sense that says why.
    fn ready(&self) -> Result<&Medium, Sense> {
        if self.tray_open {
            return Err(NOT_READY_TRAY_OPEN);
        }
        self.medium.as_ref().ok_or(NOT_READY_NO_MEDIUM)
    }

    /// A disc is in and the tray closed.
    fn present(&self) -> bool {
        self.ready().is_ok()
    }

    /// Runs one command. `cdb` is the CDB as the transport received it (virtio-scsi pads it
    /// to 32 bytes): the command's own length comes from its opcode's group, and a CDB
    /// shorter than that is an INVALID FIELD IN CDB. Data the command returns goes to
    /// `data_in`, at most `data_in_len` bytes and at most the CDB's allocation length.
    /// `data_out` is what the initiator sent (MODE SELECT's parameters: ignored).
    pub fn execute(
        &mut self,
        cdb: &[u8],
        data_out: &[u8],
        data_in: &mut dyn Write,
        data_in_len: usize,
    ) -> Outcome {
        let _ = data_out;
        // Sense is kept for the next command only (SPC's contingent allegiance, loosely).
        let last_sense = self.last_sense.take();
        let mut data_in = DataIn {
            out: data_in,
            room: data_in_len,
        };
        let outcome = self.dispatch(cdb, &mut data_in, last_sense);
        if outcome.status == CHECK_CONDITION {
            self.last_sense = outcome.sense;
        }
        outcome
    }

    fn dispatch(&mut self, cdb: &[u8], out: &mut DataIn<'_>, last: Option<Sense>) -> Outcome {
        let Some(&opcode) = cdb.first() else {
            return Outcome::check(INVALID_FIELD_IN_CDB);
        };
        let cdb = match cdb_len(opcode) {
            Some(len) => match cdb.get(..len) {
                Some(cdb) => cdb,
                None => return Outcome::check(INVALID_FIELD_IN_CDB),
            },
            None => cdb,
        };
        // SPC-3 5.9.7 (and MMC for the two event commands): these run despite a unit
        // attention; every other command reports it, once.
        let exempt = matches!(
            opcode,
            INQUIRY
                | REQUEST_SENSE
                | REPORT_LUNS
                | GET_CONFIGURATION
                | GET_EVENT_STATUS_NOTIFICATION
        );
        if !exempt {
            if let Some(ua) = self.attention.pop_front() {
                return Outcome::check(ua);
            }
        }
        match opcode {
            TEST_UNIT_READY => match self.ready() {
                Ok(_) => Outcome::good(0),
                Err(sense) => Outcome::check(sense),
            },
            REQUEST_SENSE => self.request_sense(cdb, out, last),
            INQUIRY => self.inquiry(cdb, out),
            REPORT_LUNS => report_luns(cdb, out),
            MODE_SENSE_6 | MODE_SENSE_10 => self.mode_sense(cdb, out),
            MODE_SELECT_6 | MODE_SELECT_10 => Outcome::good(0),
            RESERVE_6 | RELEASE_6 | RESERVE_10 | RELEASE_10 => Outcome::good(0),
            START_STOP_UNIT => self.start_stop(cdb),
            PREVENT_ALLOW_MEDIUM_REMOVAL => {
                self.locked = byte(cdb, 4) & 1 != 0;
                Outcome::good(0)
            }
            GET_CONFIGURATION => self.get_configuration(cdb, out),
            GET_EVENT_STATUS_NOTIFICATION => self.event_status(cdb, out),
            MECHANISM_STATUS => self.mechanism_status(cdb, out),
            SET_CD_SPEED | SET_STREAMING => Outcome::good(0),
            READ_DISC_STRUCTURE => self.disc_structure(cdb, out),
            _ => self.with_medium(opcode, cdb, out),
        }
    }

    /// The commands that need a disc in and the tray closed.
    fn with_medium(&mut self, opcode: u8, cdb: &[u8], out: &mut DataIn<'_>) -> Outcome {
        let known = matches!(
            opcode,
            READ_6
                | READ_10
                | READ_12
                | READ_16
                | READ_CD
                | READ_CD_MSF
                | READ_CAPACITY_10
                | SERVICE_ACTION_IN_16
                | READ_TOC_PMA_ATIP
                | READ_DISC_INFORMATION
                | READ_TRACK_INFORMATION
                | SEEK_10
                | VERIFY_10
                | VERIFY_12
                | VERIFY_16
                | SYNCHRONIZE_CACHE_10
                | SYNCHRONIZE_CACHE_16
                | WRITE_6
                | WRITE_10
                | WRITE_12
                | WRITE_16
                | WRITE_AND_VERIFY_10
                | WRITE_AND_VERIFY_12
                | WRITE_AND_VERIFY_16
                | WRITE_SAME_10
                | WRITE_SAME_16
                | FORMAT_UNIT
                | RESERVE_TRACK
                | CLOSE_TRACK_SESSION
                | SEND_CUE_SHEET
        );
        if !known {
            return Outcome::check(INVALID_OPCODE);
        }
        let medium = match self.ready() {
            Ok(m) => m,
            Err(sense) => return Outcome::check(sense),
        };
        let blocks = medium.blocks();
        match opcode {
            READ_6 => {
                let lba = field(cdb, 1, 3) & 0x1f_ffff;
                // A transfer length of 0 means 256 blocks in READ(6).
                let count = match byte(cdb, 4) {
                    0 => 256,
                    n => u64::from(n),
                };
                read(medium, lba, count, out)
            }
            READ_10 | READ_12 | READ_16 => {
                // RDPROTECT: no protection information on a CD.
                if byte(cdb, 1) & 0xe0 != 0 {
                    return Outcome::check(INVALID_FIELD_IN_CDB);
                }
                let (lba, count) = match opcode {
                    READ_10 => (field(cdb, 2, 4), field(cdb, 7, 2)),
                    READ_12 => (field(cdb, 2, 4), field(cdb, 6, 4)),
                    _ => (field(cdb, 2, 8), field(cdb, 10, 4)),
                };
                read(medium, lba, count, out)
            }
            READ_CD | READ_CD_MSF => read_cd(medium, cdb, out),
            READ_CAPACITY_10 => {
                // PMI clear: the LBA field must be zero.
                if byte(cdb, 8) & 1 == 0 && field(cdb, 2, 4) != 0 {
                    return Outcome::check(INVALID_FIELD_IN_CDB);
                }
                let mut d = [0u8; 8];
                d[..4].copy_from_slice(&be32(blocks.saturating_sub(1)));
                d[4..].copy_from_slice(&be32(BLOCK_SIZE));
                out.reply(&d, 8)
            }
            SERVICE_ACTION_IN_16 => {
                if byte(cdb, 1) & 0x1f != SAI_READ_CAPACITY_16
                    || (byte(cdb, 14) & 1 == 0 && field(cdb, 2, 8) != 0)
                {
                    return Outcome::check(INVALID_FIELD_IN_CDB);
                }
                let mut d = [0u8; 32];
                d[..8].copy_from_slice(&blocks.saturating_sub(1).to_be_bytes());
                d[8..12].copy_from_slice(&be32(BLOCK_SIZE));
                out.reply(&d, field(cdb, 10, 4))
            }
            READ_TOC_PMA_ATIP => read_toc(blocks, cdb, out),
            READ_DISC_INFORMATION => disc_information(cdb, out),
            READ_TRACK_INFORMATION => track_information(blocks, cdb, out),
            SEEK_10 => {
                if field(cdb, 2, 4) >= blocks {
                    Outcome::check(LBA_OUT_OF_RANGE)
                } else {
                    Outcome::good(0)
                }
            }
            VERIFY_10 | VERIFY_12 | VERIFY_16 => {
                // BYTCHK would compare data out with the disc: not offered.
                if byte(cdb, 1) & 0x06 != 0 {
                    return Outcome::check(INVALID_FIELD_IN_CDB);
                }
                let (lba, count) = match opcode {
                    VERIFY_10 => (field(cdb, 2, 4), field(cdb, 7, 2)),
                    VERIFY_12 => (field(cdb, 2, 4), field(cdb, 6, 4)),
                    _ => (field(cdb, 2, 8), field(cdb, 10, 4)),
                };
                match lba.checked_add(count) {
                    Some(end) if end <= blocks => Outcome::good(0),
                    _ => Outcome::check(LBA_OUT_OF_RANGE),
                }
            }
            SYNCHRONIZE_CACHE_10 | SYNCHRONIZE_CACHE_16 => Outcome::good(0),
            // The writes: a pressed disc.
            _ => Outcome::check(WRITE_PROTECTED),
        }
    }

    /// REQUEST SENSE: a pending unit attention (cleared), else the last command's sense,
    /// else NOT READY if the drive is, else NO SENSE; always fixed format.
    fn request_sense(&mut self, cdb: &[u8], out: &mut DataIn<'_>, last: Option<Sense>) -> Outcome {
        let sense = self
            .attention
            .pop_front()
            .or(last)
            .or_else(|| self.ready().err())
            .unwrap_or(NO_SENSE);
        out.reply(&sense.fixed(), u64::from(byte(cdb, 4)))
    }

    fn inquiry(&self, cdb: &[u8], out: &mut DataIn<'_>) -> Outcome {
        let evpd = byte(cdb, 1) & 1 != 0;
        let cmddt = byte(cdb, 1) & 2 != 0;
        let page = byte(cdb, 2);
        let alloc = field(cdb, 3, 2);
        if cmddt {
            return Outcome::check(INVALID_FIELD_IN_CDB);
        }
        if !evpd {
            if page != 0 {
                return Outcome::check(INVALID_FIELD_IN_CDB);
            }
            let mut d = [b' '; 36];
            d[0] = 0x05; // Connected, CD/DVD device.
            d[1] = 0x80; // RMB: removable medium.
            d[2] = 0x05; // SPC-3.
            d[3] = 0x12; // HiSup, response data format 2.
            d[4] = 36 - 5; // Additional length.
            d[5] = 0;
            d[6] = 0;
            d[7] = 0x02; // CmdQue: the transport takes several commands at once.
            d[8..16].copy_from_slice(VENDOR);
            d[16..16 + PRODUCT.len()].copy_from_slice(PRODUCT);
            d[32..32 + REVISION.len()].copy_from_slice(REVISION);
            return out.reply(&d, alloc);
        }
        let mut d = vec![0x05, page, 0, 0];
        match page {
            // Supported pages.
            0x00 => d.extend_from_slice(&[0x00, 0x80, 0x83]),
            // Unit serial number.
            0x80 => d.extend_from_slice(self.serial.as_bytes()),
            // Device identification: one T10 vendor ID designator, ASCII, for the unit.
            0x83 => {
                let id_len = VENDOR.len() + self.serial.len();
                d.extend_from_slice(&[0x02, 0x01, 0x00, u8::try_from(id_len).unwrap_or(0)]);
                d.extend_from_slice(VENDOR);
                d.extend_from_slice(self.serial.as_bytes());
            }
            _ => return Outcome::check(INVALID_FIELD_IN_CDB),
        }
        let page_len = be16(d.len() - 4);
        d[2..4].copy_from_slice(&page_len);
        out.reply(&d, alloc)
    }

    /// MODE SENSE(6) and (10): pages 0x01 (read error recovery), 0x2a (capabilities and
    /// mechanical status) and 0x3f (both); no block descriptor (MMC has none).
    fn mode_sense(&self, cdb: &[u8], out: &mut DataIn<'_>) -> Outcome {
        let ten = byte(cdb, 0) == MODE_SENSE_10;
        let control = byte(cdb, 2) >> 6;
        let page = byte(cdb, 2) & 0x3f;
        let subpage = byte(cdb, 3);
        let alloc = if ten {
            field(cdb, 7, 2)
        } else {
            u64::from(byte(cdb, 4))
        };
        if control == 3 {
            return Outcome::check(SAVING_PARAMETERS_NOT_SUPPORTED);
        }
        if subpage != 0 && !(page == 0x3f && subpage == 0xff) {
            return Outcome::check(INVALID_FIELD_IN_CDB);
        }
        // Changeable values: nothing is, so every bit of the mask is zero.
        let changeable = control == 1;
        let mut d = if ten { vec![0u8; 8] } else { vec![0u8; 4] };
        match page {
            0x01 => d.extend_from_slice(&self.error_recovery_page(changeable)),
            0x2a => d.extend_from_slice(&self.capabilities_page(changeable)),
            0x3f => {
                d.extend_from_slice(&self.error_recovery_page(changeable));
                d.extend_from_slice(&self.capabilities_page(changeable));
            }
            _ => return Outcome::check(INVALID_FIELD_IN_CDB),
        }
        if ten {
            let len = be16(d.len() - 2);
            d[..2].copy_from_slice(&len);
        } else {
            d[0] = u8::try_from(d.len() - 1).unwrap_or(u8::MAX);
        }
        out.reply(&d, alloc)
    }

    /// Read/write error recovery parameters (page 0x01, 10 bytes after its header).
    fn error_recovery_page(&self, changeable: bool) -> [u8; 12] {
        let mut p = [0u8; 12];
        p[0] = 0x01;
        p[1] = 0x0a;
        if !changeable {
            p[3] = 0x20; // Read retry count.
        }
        p
    }

    /// CD/DVD capabilities and mechanical status (page 0x2a, MMC-2's 20 bytes, which Linux's
    /// `sr` reads): reads CD-R/RW and DVD-ROM/R/RAM, writes nothing; a tray that ejects and
    /// locks, with the lock's state.
    fn capabilities_page(&self, changeable: bool) -> [u8; 22] {
        let mut p = [0u8; 22];
        p[0] = 0x2a;
        p[1] = 0x14;
        if changeable {
            return p;
        }
        p[2] = 0x3b; // CD-R, CD-RW, DVD-ROM, DVD-R, DVD-RAM read.
        p[3] = 0x00; // No writing.
        p[4] = 0x50; // Multi-session, mode 2 form 1.
        p[5] = 0x00;
        // Tray loading mechanism, eject, the prevent jumper bit as QEMU sets it, lock; and
        // the lock's state.
        p[6] = 0x2d | if self.locked { 0x02 } else { 0 };
        p[7] = 0x00;
        let max_speed: u16 = 50 * 176; // kB/s, 50x.
        p[8..10].copy_from_slice(&max_speed.to_be_bytes());
        p[12..14].copy_from_slice(&2048u16.to_be_bytes()); // Buffer, KiB.
        p[14..16].copy_from_slice(&max_speed.to_be_bytes()); // Current read speed.
        p
    }

    /// START STOP UNIT: with LoEj, Start=0 opens the tray (refused while locked), Start=1
    /// closes it; the power conditions and the motor are nothing to a file.
    fn start_stop(&mut self, cdb: &[u8]) -> Outcome {
        let flags = byte(cdb, 4);
        let start = flags & 1 != 0;
        let load_eject = flags & 2 != 0;
        let power_condition = flags & 0xf0;
        if power_condition != 0 || !load_eject {
            return Outcome::good(0);
        }
        if start {
            if self.tray_open {
                self.tray_open = false;
                if self.medium.is_some() {
                    self.push_event(MEDIA_EVENT_NEW_MEDIA);
                    self.push_attention(UNIT_ATTENTION_MEDIUM_CHANGED);
                }
            }
            return Outcome::good(0);
        }
        if self.tray_open {
            return Outcome::good(0);
        }
        if self.locked {
            return Outcome::check(if self.medium.is_some() {
                MEDIUM_REMOVAL_PREVENTED
            } else {
                NOT_READY_REMOVAL_PREVENTED
            });
        }
        self.tray_open = true;
        if self.medium.is_some() {
            self.guest_ejected = true;
            self.push_event(MEDIA_EVENT_MEDIA_REMOVAL);
        }
        Outcome::good(0)
    }

    /// GET CONFIGURATION: the profile list (DVD-ROM, CD-ROM), core, morphing, removable
    /// medium, random readable, CD read and DVD read features, filtered by RT and the
    /// starting feature number.
    fn get_configuration(&self, cdb: &[u8], out: &mut DataIn<'_>) -> Outcome {
        let rt = byte(cdb, 1) & 3;
        let start = u16::try_from(field(cdb, 2, 2)).unwrap_or(u16::MAX);
        let alloc = field(cdb, 7, 2);
        if rt == 3 {
            return Outcome::check(INVALID_FIELD_IN_CDB);
        }
        let present = self.present();
        let dvd = present && self.medium.as_ref().is_some_and(Medium::is_dvd);
        let profile = match (present, dvd) {
            (false, _) => PROFILE_NONE,
            (true, true) => PROFILE_DVD_ROM,
            (true, false) => PROFILE_CD_ROM,
        };
        // (feature code, version, persistent, current, additional data)
        let mut profiles = Vec::with_capacity(8);
        for p in [PROFILE_DVD_ROM, PROFILE_CD_ROM] {
            profiles.extend_from_slice(&p.to_be_bytes());
            profiles.extend_from_slice(&[u8::from(p == profile), 0]);
        }
        let block = u32::try_from(BLOCK_SIZE).unwrap_or(0).to_be_bytes();
        let blocking: u16 = if dvd { 16 } else { 1 };
        let mut random = Vec::with_capacity(8);
        random.extend_from_slice(&block);
        random.extend_from_slice(&blocking.to_be_bytes());
        random.extend_from_slice(&[0, 0]);
        let features: [(u16, u8, bool, bool, Vec<u8>); 7] = [
            (0x0000, 0, true, true, profiles),
            // Core: SCSI physical interface, DBE (mandatory).
            (0x0001, 2, true, true, vec![0, 0, 0, 1, 0x01, 0, 0, 0]),
            // Morphing: no asynchronous (or operational change) events.
            (0x0002, 1, true, true, vec![0, 0, 0, 0]),
            // Removable medium: tray, load, eject, lock.
            (0x0003, 2, true, true, vec![0x39, 0, 0, 0]),
            (0x0010, 0, false, present, random),
            (0x001e, 2, false, present && !dvd, vec![0, 0, 0, 0]),
            (0x001f, 0, false, dvd, Vec::new()),
        ];
        let mut d = vec![0u8; 8];
        d[6..8].copy_from_slice(&profile.to_be_bytes());
        for (code, version, persistent, current, data) in features {
            let wanted = match rt {
                0 => code >= start,
                1 => code >= start && current,
                _ => code == start,
            };
            if !wanted {
                continue;
            }
            d.extend_from_slice(&code.to_be_bytes());
            d.push((version << 2) | (u8::from(persistent) << 1) | u8::from(current));
            d.push(u8::try_from(data.len()).unwrap_or(0));
            d.extend_from_slice(&data);
        }
        let len = be32(u64::try_from(d.len() - 4).unwrap_or(0));
        d[..4].copy_from_slice(&len);
        out.reply(&d, alloc)
    }

    /// GET EVENT STATUS NOTIFICATION, polled only: the media class with the oldest media
    /// event (taken only if the buffer holds it) and the tray/disc status; other classes
    /// answer "no event available".
    fn event_status(&mut self, cdb: &[u8], out: &mut DataIn<'_>) -> Outcome {
        if byte(cdb, 1) & 1 == 0 {
            // Asynchronous notification is not offered.
            return Outcome::check(INVALID_FIELD_IN_CDB);
        }
        let classes = byte(cdb, 4);
        let alloc = field(cdb, 7, 2);
        let mut d = vec![0u8, 0, 0, 1 << GESN_MEDIA];
        if classes & (1 << GESN_MEDIA) != 0 {
            d[2] = GESN_MEDIA;
            let fits = usize::try_from(alloc).unwrap_or(usize::MAX).min(out.room) >= 5;
            let event = if fits {
                self.events.pop_front().unwrap_or(MEDIA_EVENT_NO_CHANGE)
            } else {
                self.events
                    .front()
                    .copied()
                    .unwrap_or(MEDIA_EVENT_NO_CHANGE)
            };
            let status = if self.tray_open {
                0x01 // Door or tray open.
            } else if self.medium.is_some() {
                0x02 // Media present.
            } else {
                0x00
            };
            d.extend_from_slice(&[event, status, 0, 0]);
        } else {
            d[2] = 0x80; // NEA: no event available (of the classes asked).
        }
        let len = be16(d.len() - 4);
        d[..2].copy_from_slice(&len);
        out.reply(&d, alloc)
    }

    /// MECHANISM STATUS: no changer, the tray's state.
    fn mechanism_status(&self, cdb: &[u8], out: &mut DataIn<'_>) -> Outcome {
        let mut d = [0u8; 8];
        if self.tray_open {
            d[1] = 0x10;
        }
        out.reply(&d, field(cdb, 8, 2))
    }

    /// READ DISC STRUCTURE: the capability list anytime; for a DVD, physical format
    /// (layer 0), copyright and manufacturing information; a CD has none.
    fn disc_structure(&self, cdb: &[u8], out: &mut DataIn<'_>) -> Outcome {
        let media_type = byte(cdb, 1) & 0x0f;
        let address = field(cdb, 2, 4);
        let layer = byte(cdb, 6);
        let format = byte(cdb, 7);
        let alloc = field(cdb, 8, 2);
        if media_type != 0 {
            return Outcome::check(INVALID_FIELD_IN_CDB);
        }
        // (format, data length after the header)
        const FORMATS: [(u8, usize); 3] = [(0x00, 2048), (0x01, 4), (0x04, 2048)];
        let mut d = vec![0u8; 4];
        if format == 0xff {
            for (f, len) in FORMATS {
                d.extend_from_slice(&[f, 0x40]); // Readable, not writable.
                d.extend_from_slice(&be16(len + 4));
            }
        } else {
            let medium = match self.ready() {
                Ok(m) => m,
                Err(sense) => return Outcome::check(sense),
            };
            if !medium.is_dvd() {
                return Outcome::check(INCOMPATIBLE_FORMAT);
            }
            let Some(&(_, len)) = FORMATS.iter().find(|(f, _)| *f == format) else {
                return Outcome::check(INVALID_FIELD_IN_CDB);
            };
            d.resize(4 + len, 0);
            if format == 0x00 {
                if layer != 0 || address != 0 {
                    return Outcome::check(INVALID_FIELD_IN_CDB);
                }
                const START: u64 = 0x03_0000;
                d[4] = 0x01; // DVD-ROM, part version 1.
                d[5] = 0x0f; // 120 mm, maximum rate not specified.
                d[6] = 0x01; // One layer, embossed (read-only).
                d[8..12].copy_from_slice(&be32(START));
                let end = START
                    .saturating_add(medium.blocks())
                    .saturating_sub(1)
                    .min(0x00ff_ffff);
                d[12..16].copy_from_slice(&be32(end));
            }
        }
        let len = be16(d.len() - 2);
        d[..2].copy_from_slice(&len);
        out.reply(&d, alloc)
    }
}

/// REPORT LUNS: LUN 0 alone.
fn report_luns(cdb: &[u8], out: &mut DataIn<'_>) -> Outcome {
    let select = byte(cdb, 2);
    let alloc = field(cdb, 6, 4);
    if select > 2 || alloc < 16 {
        return Outcome::check(INVALID_FIELD_IN_CDB);
    }
    let mut d = [0u8; 16];
    d[3] = 8; // One LUN of 8 bytes, all zero.
    out.reply(&d, alloc)
}

/// Reads `count` blocks from `lba`: as much as the buffer holds (the transport reports
/// the rest as residual). Past the end of the disc: LBA OUT OF RANGE.
fn read(medium: &Medium, lba: u64, count: u64, out: &mut DataIn<'_>) -> Outcome {
    match lba.checked_add(count) {
        Some(end) if end <= medium.blocks() => {}
        _ => return Outcome::check(LBA_OUT_OF_RANGE),
    }
    let (Some(offset), Some(bytes)) = (lba.checked_mul(BLOCK_SIZE), count.checked_mul(BLOCK_SIZE))
    else {
        return Outcome::check(LBA_OUT_OF_RANGE);
    };
    let len = usize::try_from(bytes).unwrap_or(usize::MAX).min(out.room);
    match medium.copy_to(offset, len, out.out) {
        (done, false) => Outcome::good(done),
        (done, true) => Outcome {
            data_in: done,
            ..Outcome::check(UNRECOVERED_READ_ERROR)
        },
    }
}

/// READ CD and READ CD MSF, for user data: any or mode 1 sectors, user data only (or
/// nothing); sub-channels, headers, sync and EDC are refused.
fn read_cd(medium: &Medium, cdb: &[u8], out: &mut DataIn<'_>) -> Outcome {
    let sector_type = (byte(cdb, 1) >> 2) & 7;
    let fields = byte(cdb, 9);
    let subchannel = byte(cdb, 10) & 7;
    match sector_type {
        0 | 2 => {}
        1 | 3..=5 => return Outcome::check(ILLEGAL_MODE_FOR_TRACK),
        _ => return Outcome::check(INVALID_FIELD_IN_CDB),
    }
    if (fields != 0x10 && fields != 0) || subchannel != 0 {
        return Outcome::check(INVALID_FIELD_IN_CDB);
    }
    let (lba, count) = if byte(cdb, 0) == READ_CD {
        (field(cdb, 2, 4), field(cdb, 6, 3))
    } else {
        let frames = |at: usize| {
            (u64::from(byte(cdb, at)) * 60 + u64::from(byte(cdb, at + 1))) * 75
                + u64::from(byte(cdb, at + 2))
        };
        let (start, end) = (frames(3), frames(6));
        if end < start {
            return Outcome::check(INVALID_FIELD_IN_CDB);
        }
        let Some(lba) = start.checked_sub(150) else {
            return Outcome::check(LBA_OUT_OF_RANGE);
        };
        (lba, end - start)
    };
    if fields == 0 {
        return match lba.checked_add(count) {
            Some(end) if end <= medium.blocks() => Outcome::good(0),
            _ => Outcome::check(LBA_OUT_OF_RANGE),
        };
    }
    read(medium, lba, count, out)
}

/// READ TOC/PMA/ATIP: formats 0 (TOC: track 1 and the lead-out), 1 (session information)
/// and 2 (raw TOC, MSF). The format may also come in the control byte's top bits, where
/// SFF-8020 (ATAPI) put it and Linux's `sr` still sends it.
fn read_toc(blocks: u64, cdb: &[u8], out: &mut DataIn<'_>) -> Outcome {
    let as_msf = byte(cdb, 1) & 2 != 0;
    let format = match byte(cdb, 2) & 0x0f {
        0 => byte(cdb, 9) >> 6,
        f => f,
    };
    let track = byte(cdb, 6);
    let alloc = field(cdb, 7, 2);
    // Header: data length, first and last track (or session).
    let mut d = vec![0u8, 0, 1, 1];
    match format {
        0 => {
            if track > 1 && track != 0xaa {
                return Outcome::check(INVALID_FIELD_IN_CDB);
            }
            if track <= 1 {
                // Track 1: ADR 1, control 4 (data, recorded uninterrupted).
                d.extend_from_slice(&[0, 0x14, 1, 0]);
                d.extend_from_slice(&toc_address(0, as_msf));
            }
            d.extend_from_slice(&[0, 0x14, 0xaa, 0]);
            d.extend_from_slice(&toc_address(blocks, as_msf));
        }
        1 => {
            // The first track of the last session: track 1 at 0.
            d.extend_from_slice(&[0, 0x14, 1, 0]);
            d.extend_from_slice(&toc_address(0, as_msf));
        }
        2 => {
            // Session 1's points A0 (first track, disc type CD-ROM), A1 (last track),
            // A2 (lead-out) and track 1, each with its PMIN/PSEC/PFRAME.
            let [lm, ls, lf] = msf(blocks);
            let [tm, ts, tf] = msf(0);
            for (point, p) in [
                (0xa0, [1, 0x00, 0]),
                (0xa1, [1, 0, 0]),
                (0xa2, [lm, ls, lf]),
                (0x01, [tm, ts, tf]),
            ] {
                d.extend_from_slice(&[1, 0x14, 0, point, 0, 0, 0, 0]);
                d.extend_from_slice(&p);
            }
        }
        _ => return Outcome::check(INVALID_FIELD_IN_CDB),
    }
    let len = be16(d.len() - 2);
    d[..2].copy_from_slice(&len);
    out.reply(&d, alloc)
}

/// READ DISC INFORMATION (standard disc information only): a finalized disc, one
/// complete session of one track.
fn disc_information(cdb: &[u8], out: &mut DataIn<'_>) -> Outcome {
    if byte(cdb, 1) & 7 != 0 {
        return Outcome::check(INVALID_FIELD_IN_CDB);
    }
    let mut d = [0u8; 34];
    d[1] = 32;
    d[2] = 0x0e; // Last session complete, disc finalized, not erasable.
    d[3] = 1; // First track on the disc.
    d[4] = 1; // Sessions.
    d[5] = 1; // First track of the last session.
    d[6] = 1; // Last track of the last session.
    d[7] = 0x20; // Unrestricted use.
    d[8] = 0x00; // CD-ROM (or DVD-ROM).
                 // The last session's lead-in start and last possible lead-out: none (all ones).
    d[16..24].fill(0xff);
    out.reply(&d, field(cdb, 7, 2))
}

/// READ TRACK INFORMATION of track 1, addressed by an LBA in it, its number or session 1.
fn track_information(blocks: u64, cdb: &[u8], out: &mut DataIn<'_>) -> Outcome {
    let number = field(cdb, 2, 4);
    let valid = match byte(cdb, 1) & 3 {
        0 => number < blocks,
        1 | 2 => number == 1,
        _ => false,
    };
    if !valid {
        return Outcome::check(INVALID_FIELD_IN_CDB);
    }
    let mut d = [0u8; 36];
    d[1] = 34;
    d[2] = 1; // Track.
    d[3] = 1; // Session.
    d[5] = 0x04; // Data track, recorded uninterrupted.
    d[6] = 0x01; // Data mode 1.
    d[24..28].copy_from_slice(&be32(blocks)); // Track size.
    d[28..32].copy_from_slice(&be32(blocks.saturating_sub(1))); // Last recorded address.
    out.reply(&d, field(cdb, 7, 2))
}
