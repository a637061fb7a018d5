//! SCSI logical units, apart from any transport. Installers look for their medium on a CD
//! drive and firmware boots CDs through El Torito, so the unit here is an MMC CD/DVD-ROM
//! drive, [`Cdrom`], which a transport (virtio-scsi) hands whole CDBs and buffers to. It
//! answers what Linux's `sr` and `cdrom` drivers, OVMF's `VirtioScsiDxe` + `ScsiDiskDxe`
//! and installers (media detection, eject) send, following QEMU's `scsi-cd` where the
//! standards (SPC-3, MMC-5) leave room. This module knows nothing of queues or guest memory.
//!
//! Everything in a CDB is the guest's: fields are read with bounds-checked helpers and all
//! arithmetic on them is checked, so a command can fail but never panic.

pub mod cdrom;
#[cfg(test)]
mod tests;

pub use cdrom::{Cdrom, EjectError, Medium, MediumError};

/// SCSI status: the command completed.
pub const GOOD: u8 = 0x00;
/// SCSI status: the command failed; the sense data says why.
pub const CHECK_CONDITION: u8 = 0x02;

/// Sense key: nothing to report.
pub const KEY_NO_SENSE: u8 = 0x0;
/// Sense key: the unit cannot serve the command now (no medium, tray open).
pub const KEY_NOT_READY: u8 = 0x2;
/// Sense key: the medium could not be read.
pub const KEY_MEDIUM_ERROR: u8 = 0x3;
/// Sense key: the command or one of its fields is not valid.
pub const KEY_ILLEGAL_REQUEST: u8 = 0x5;
/// Sense key: something changed (reset, medium) since the initiator last looked.
pub const KEY_UNIT_ATTENTION: u8 = 0x6;
/// Sense key: the medium may not be written.
pub const KEY_DATA_PROTECT: u8 = 0x7;

/// Sense key / additional sense code / qualifier triple.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sense {
    /// The sense key (4 bits).
    pub key: u8,
    /// The additional sense code.
    pub asc: u8,
    /// The additional sense code qualifier.
    pub ascq: u8,
}

impl Sense {
    /// A sense triple.
    pub const fn new(key: u8, asc: u8, ascq: u8) -> Self {
        Self { key, asc, ascq }
    }

    /// Fixed-format sense data (SPC-3, 4.5.3): 18 bytes, response code 0x70 (current
    /// error), additional sense length 10.
    pub fn fixed(&self) -> [u8; 18] {
        let mut d = [0u8; 18];
        d[0] = 0x70;
        d[2] = self.key & 0x0f;
        d[7] = 10;
        d[12] = self.asc;
        d[13] = self.ascq;
        d
    }
}

/// No sense (0/00/00): what REQUEST SENSE says when all is well.
pub const NO_SENSE: Sense = Sense::new(KEY_NO_SENSE, 0, 0);
/// NOT READY, MEDIUM NOT PRESENT (2/3a/00).
pub const NOT_READY_NO_MEDIUM: Sense = Sense::new(KEY_NOT_READY, 0x3a, 0x00);
/// NOT READY, MEDIUM NOT PRESENT - TRAY OPEN (2/3a/02).
pub const NOT_READY_TRAY_OPEN: Sense = Sense::new(KEY_NOT_READY, 0x3a, 0x02);
/// NOT READY, MEDIUM REMOVAL PREVENTED (2/53/02): a locked, empty drive asked to eject.
pub const NOT_READY_REMOVAL_PREVENTED: Sense = Sense::new(KEY_NOT_READY, 0x53, 0x02);
/// MEDIUM ERROR, UNRECOVERED READ ERROR (3/11/00): the host could not read the image.
pub const UNRECOVERED_READ_ERROR: Sense = Sense::new(KEY_MEDIUM_ERROR, 0x11, 0x00);
/// ILLEGAL REQUEST, INVALID COMMAND OPERATION CODE (5/20/00).
pub const INVALID_OPCODE: Sense = Sense::new(KEY_ILLEGAL_REQUEST, 0x20, 0x00);
/// ILLEGAL REQUEST, LOGICAL BLOCK ADDRESS OUT OF RANGE (5/21/00).
pub const LBA_OUT_OF_RANGE: Sense = Sense::new(KEY_ILLEGAL_REQUEST, 0x21, 0x00);
/// ILLEGAL REQUEST, INVALID FIELD IN CDB (5/24/00); also for a CDB shorter than its opcode's.
pub const INVALID_FIELD_IN_CDB: Sense = Sense::new(KEY_ILLEGAL_REQUEST, 0x24, 0x00);
/// ILLEGAL REQUEST, CANNOT READ MEDIUM - INCOMPATIBLE FORMAT (5/30/02): a DVD structure
/// asked of a CD.
pub const INCOMPATIBLE_FORMAT: Sense = Sense::new(KEY_ILLEGAL_REQUEST, 0x30, 0x02);
/// ILLEGAL REQUEST, SAVING PARAMETERS NOT SUPPORTED (5/39/00).
pub const SAVING_PARAMETERS_NOT_SUPPORTED: Sense = Sense::new(KEY_ILLEGAL_REQUEST, 0x39, 0x00);
/// ILLEGAL REQUEST, MEDIUM REMOVAL PREVENTED (5/53/02): the guest locked the drive.
pub const MEDIUM_REMOVAL_PREVENTED: Sense = Sense::new(KEY_ILLEGAL_REQUEST, 0x53, 0x02);
/// ILLEGAL REQUEST, ILLEGAL MODE FOR THIS TRACK (5/64/00): READ CD of audio or mode 2
/// sectors from a mode 1 data track.
pub const ILLEGAL_MODE_FOR_TRACK: Sense = Sense::new(KEY_ILLEGAL_REQUEST, 0x64, 0x00);
/// UNIT ATTENTION, NOT READY TO READY CHANGE, MEDIUM MAY HAVE CHANGED (6/28/00).
pub const UNIT_ATTENTION_MEDIUM_CHANGED: Sense = Sense::new(KEY_UNIT_ATTENTION, 0x28, 0x00);
/// UNIT ATTENTION, POWER ON, RESET, OR BUS DEVICE RESET OCCURRED (6/29/00).
pub const POWER_ON_RESET: Sense = Sense::new(KEY_UNIT_ATTENTION, 0x29, 0x00);
/// UNIT ATTENTION, MEDIUM NOT PRESENT (6/3a/00): the disc was taken out.
pub const UNIT_ATTENTION_NO_MEDIUM: Sense = Sense::new(KEY_UNIT_ATTENTION, 0x3a, 0x00);
/// DATA PROTECT, WRITE PROTECTED (7/27/00): a write to the read-only disc.
pub const WRITE_PROTECTED: Sense = Sense::new(KEY_DATA_PROTECT, 0x27, 0x00);

/// The result of one command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The SCSI status ([`GOOD`] or [`CHECK_CONDITION`]).
    pub status: u8,
    /// Why the command failed, with [`CHECK_CONDITION`].
    pub sense: Option<Sense>,
    /// Bytes written to the data-in writer (never more than its `data_in_len`); the
    /// transport reports the rest of its buffer as residual.
    pub data_in: usize,
}

impl Outcome {
    /// GOOD status with `data_in` bytes transferred.
    pub fn good(data_in: usize) -> Self {
        Self {
            status: GOOD,
            sense: None,
            data_in,
        }
    }

    /// CHECK CONDITION with `sense`, no data.
    pub fn check(sense: Sense) -> Self {
        Self {
            status: CHECK_CONDITION,
            sense: Some(sense),
            data_in: 0,
        }
    }
}

/// The length of a CDB from its operation code's group (SPC-3, 4.3.4.1): 6 bytes for
/// 0x00-0x1f, 10 for 0x20-0x5f, 16 for 0x80-0x9f, 12 for 0xa0-0xbf; `None` for the
/// reserved and variable-length group (0x60-0x7f) and the vendor-specific ones (0xc0-0xff).
pub fn cdb_len(opcode: u8) -> Option<usize> {
    match opcode >> 5 {
        0 => Some(6),
        1 | 2 => Some(10),
        4 => Some(16),
        5 => Some(12),
        _ => None,
    }
}
