//! The CFI parallel flash (Intel/Sharp command set) that holds the firmware at the top of
//! 4 GiB. The distribution's OVMF runs its first instructions from it and keeps the UEFI
//! variables in it, programming and erasing them with the commands of QEMU's
//! `hw/block/pflash_cfi01.c`: OVMF was written and tested against that model, so where QEMU
//! and a real chip differ this device does what QEMU does, unless noted.
//!
//! One flash covers the variable store (first, writable) and the code (after it, read-only),
//! the whole ending at 4 GiB, as Debian's `OVMF_VARS_4M.fd` + `OVMF_CODE_4M.fd` expect. The
//! variable store reaches its file through [`VarsStore`]: atomically, and when the firmware
//! finishes an operation (it returns to read-array mode, or an erase completes).
//!
//! What OVMF's `QemuFlashFvbServicesRuntimeDxe` (edk2-stable202211) does with it:
//! - probe (`QemuFlashDetected`): read a byte of block 0 that is not 0x00/0x50/0x70, write
//!   0x50 (clear status) there and read it back (still the array byte: not RAM), write 0x70
//!   (read status) and read again: 0x00 means flash, and it writes 0xFF (read array).
//!   This relies on QEMU's clear status zeroing the whole register, ready bit included;
//!   a real chip would read 0x80 and OVMF would call it ROM.
//! - `QemuFlashWrite`: for each byte 0x10 then the byte, then 0xFF at the last address.
//! - `QemuFlashEraseBlock`: 0x20 then 0xD0 at the block's first byte, and nothing after:
//!   reads return the status register until the next command.
//!
//! Commands this model does not know (buffered write 0xE8, lock 0x60, ...) put it back in
//! read-array mode, as QEMU's error path does.

mod store;
#[cfg(test)]
mod tests;

pub use store::VarsStore;

use crate::devices::bus::BusDevice;
use std::path::PathBuf;

/// The flash's erase block, and the unit its two regions are sized in.
pub const BLOCK_SIZE: usize = 4096;
/// The most flash the top of 4 GiB gives the firmware (QEMU's PC machine allows as much).
pub const MAX_SIZE: usize = 16 << 20;
/// Where the flash ends: its last byte is at 4 GiB - 1.
pub const FLASH_END: u64 = 1 << 32;

const CMD_READ_ARRAY_QEMU: u8 = 0x00; // QEMU's own alias for read array
const CMD_PROGRAM: u8 = 0x10;
const CMD_BLOCK_ERASE: u8 = 0x20;
const CMD_PROGRAM_ALT: u8 = 0x40;
const CMD_CLEAR_STATUS: u8 = 0x50;
const CMD_READ_STATUS: u8 = 0x70;
const CMD_READ_ID: u8 = 0x90;
const CMD_QUERY: u8 = 0x98;
const CMD_ERASE_CONFIRM: u8 = 0xd0;
const CMD_AMD_RESET: u8 = 0xf0;
const CMD_READ_ARRAY: u8 = 0xff;

/// Status register: the write state machine is ready.
pub const STATUS_READY: u8 = 0x80;
/// Status register: an erase failed (also set, with the program bit, on a bad sequence).
pub const STATUS_ERASE_ERROR: u8 = 0x20;
/// Status register: a program failed.
pub const STATUS_PROGRAM_ERROR: u8 = 0x10;

/// Why the flash or its variable store could not be set up or saved.
#[derive(Debug, thiserror::Error)]
pub enum PflashError {
    /// A region is empty or not made of whole blocks.
    #[error(
        "The firmware {part} is {len:#x} bytes; it must be a non-zero multiple of the flash's 4 KiB block."
    )]
    BadSize {
        /// "code" or "variable store".
        part: &'static str,
        /// Its size in bytes.
        len: usize,
    },
    /// Code and variables together do not fit below 4 GiB.
    #[error(
        "The firmware code ({code:#x} bytes) and variable store ({vars:#x} bytes) together exceed the 16 MiB of flash below 4 GiB."
    )]
    TooLarge {
        /// Code size in bytes.
        code: usize,
        /// Variable store size in bytes.
        vars: usize,
    },
    /// The variable store's file could not be opened or read.
    #[error(
        "The firmware variable store {} could not be opened for reading and writing: {source}. Check that the file exists and that you may write to it.",
        path.display()
    )]
    Open {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// The variable store's file has a size the flash cannot hold.
    #[error(
        "The firmware variable store {} is {len} bytes, which is not a non-zero multiple of 4 KiB of at most 16 MiB; it was left as it is. Replace it with a fresh copy of the firmware's variable template (such as OVMF_VARS_4M.fd).",
        path.display()
    )]
    StoreSize {
        /// The file.
        path: PathBuf,
        /// Its size in bytes.
        len: u64,
    },
    /// The variable store could not be written back to its file.
    #[error(
        "The firmware variable store {} could not be saved: {source}. The firmware's latest changes are kept in memory and saving them is tried again.",
        path.display()
    )]
    Save {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
}

/// What reads return and what the next write means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Reads return the flash's contents; writes are commands.
    ReadArray,
    /// Reads return the status register (after read status, a program or an erase).
    Status,
    /// A program command came: the next write is the data. Reads return the status.
    Program,
    /// A block erase command came for the block at this offset: the next write must
    /// confirm it. Reads return the status.
    EraseSetup(usize),
    /// Reads return the identifier codes.
    ReadId,
    /// Reads return the CFI query table.
    Query,
}

/// Where the variable store shows at memory speed: called with its contents each time the
/// flash enters read-array mode (the VMM maps them read-only, so the firmware's reads of
/// its variables need no exit), and with `None` when it leaves it (reads must reach the
/// device again, for the status register). Contents change only outside read-array mode,
/// so what is shown is never stale.
pub type ArrayWindow = Box<dyn FnMut(Option<&[u8]>) + Send>;

/// The firmware flash: variable store then code, ending at [`FLASH_END`].
pub struct Pflash {
    vars: VarsStore,
    code: Vec<u8>,
    mode: Mode,
    status: u8,
    cfi: [u8; CFI_TABLE_LEN],
    mode_changed: bool,
    window: Option<ArrayWindow>,
}

impl std::fmt::Debug for Pflash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pflash")
            .field("vars", &self.vars)
            .field("code_len", &self.code.len())
            .field("mode", &self.mode)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

#[allow(
    clippy::len_without_is_empty,
    reason = "a flash is never empty: new() refuses empty regions"
)]
impl Pflash {
    /// A flash holding `vars` at its start and `code` after it. Each must be a non-zero
    /// multiple of [`BLOCK_SIZE`], together at most [`MAX_SIZE`].
    pub fn new(code: Vec<u8>, vars: VarsStore) -> Result<Self, PflashError> {
        let whole_blocks = |len: usize| len > 0 && len % BLOCK_SIZE == 0;
        if !whole_blocks(code.len()) {
            return Err(PflashError::BadSize {
                part: "code",
                len: code.len(),
            });
        }
        let vars_len = vars.bytes().len();
        if !whole_blocks(vars_len) {
            return Err(PflashError::BadSize {
                part: "variable store",
                len: vars_len,
            });
        }
        if code.len() + vars_len > MAX_SIZE {
            return Err(PflashError::TooLarge {
                code: code.len(),
                vars: vars_len,
            });
        }
        let cfi = cfi_table(code.len() + vars_len);
        Ok(Self {
            vars,
            code,
            mode: Mode::ReadArray,
            status: STATUS_READY,
            cfi,
            mode_changed: false,
            window: None,
        })
    }

    /// The guest-physical address of the flash's first byte (the variable store's).
    pub fn base(&self) -> u64 {
        FLASH_END - self.len()
    }

    /// The flash's size in bytes.
    pub fn len(&self) -> u64 {
        // Both are at most MAX_SIZE (checked in new), so the sum fits any u64.
        (self.vars.bytes().len() + self.code.len()) as u64
    }

    /// The guest-physical address of the code's first byte.
    pub fn code_base(&self) -> u64 {
        self.base() + self.vars.bytes().len() as u64
    }

    /// The code, for a read-only memory slot at [`Self::code_base`].
    pub fn code(&self) -> &[u8] {
        &self.code
    }

    /// The variable store as the guest last left it, for a read-only memory slot at
    /// [`Self::base`].
    pub fn vars(&self) -> &[u8] {
        self.vars.bytes()
    }

    /// The variable store and its file.
    pub fn store(&self) -> &VarsStore {
        &self.vars
    }

    /// Whether reads return the flash's contents, so that a read-only memory slot holding
    /// [`Self::vars`] and [`Self::code`] may answer them instead of this device. In any
    /// other mode every read must reach [`BusDevice::read`].
    pub fn read_array_mode(&self) -> bool {
        self.mode == Mode::ReadArray
    }

    /// Shows the variable store through `window` from now on (a new machine's; `None`:
    /// every read traps), told at once whether the flash is in read-array mode.
    pub fn set_array_window(&mut self, window: Option<ArrayWindow>) {
        self.window = window;
        self.mode_changed = false;
        self.show_window();
    }

    /// A machine reset: read-array mode, status ready (as QEMU's reset). Contents and
    /// unsaved changes are kept.
    pub fn reset(&mut self) {
        self.set_mode(Mode::ReadArray);
        self.status = STATUS_READY;
        self.window_follows_mode();
    }

    /// Tells the window of a change of mode since it was last told.
    fn window_follows_mode(&mut self) {
        if std::mem::take(&mut self.mode_changed) {
            self.show_window();
        }
    }

    fn show_window(&mut self) {
        if let Some(window) = self.window.as_mut() {
            window((self.mode == Mode::ReadArray).then(|| self.vars.bytes()));
        }
    }

    /// Writes unsaved changes of the variable store to its file (at VM stop).
    pub fn flush(&mut self) -> Result<(), PflashError> {
        self.vars.save()
    }

    fn set_mode(&mut self, mode: Mode) {
        if (self.mode == Mode::ReadArray) != (mode == Mode::ReadArray) {
            self.mode_changed = true;
        }
        self.mode = mode;
    }

    /// The start of an access of `len` bytes at `offset` if it lies inside the flash.
    fn start(&self, offset: u64, len: usize) -> Option<usize> {
        let start = usize::try_from(offset).ok()?;
        let total = self.vars.bytes().len() + self.code.len();
        (start.checked_add(len)? <= total).then_some(start)
    }

    fn read_array(&self, start: usize, data: &mut [u8]) {
        let image = self.vars.bytes().iter().chain(self.code.iter()).skip(start);
        for (d, s) in data.iter_mut().zip(image) {
            *d = *s;
        }
    }

    /// The `len` bytes at `start` to change, if they are all in the variable store (the
    /// code is read-only). Only then do they count as changed.
    fn writable(&mut self, start: usize, len: usize) -> Option<&mut [u8]> {
        let end = start.checked_add(len)?;
        if end > self.vars.bytes().len() {
            return None;
        }
        self.vars.bytes_mut().get_mut(start..end)
    }

    /// A write of the first cycle: a command.
    fn command(&mut self, start: usize, cmd: u8) {
        let mode = match cmd {
            CMD_PROGRAM | CMD_PROGRAM_ALT => Mode::Program,
            CMD_BLOCK_ERASE => Mode::EraseSetup(start - start % BLOCK_SIZE),
            CMD_CLEAR_STATUS => {
                // QEMU clears the whole register, ready bit included: OVMF's probe
                // depends on it.
                self.status = 0;
                Mode::ReadArray
            }
            CMD_READ_STATUS => Mode::Status,
            CMD_READ_ID => Mode::ReadId,
            CMD_QUERY => Mode::Query,
            CMD_READ_ARRAY | CMD_READ_ARRAY_QEMU | CMD_AMD_RESET => Mode::ReadArray,
            other => {
                log::debug!("pflash: unknown command {other:#04x} at {start:#x}; read array");
                Mode::ReadArray
            }
        };
        self.set_mode(mode);
    }

    /// The data cycle of a program command. Like QEMU, and unlike NOR flash (which can only
    /// clear bits: new = old & data), the data is stored as it is; OVMF only ever programs
    /// erased bytes or clears bits, so the two agree for it.
    fn program(&mut self, start: usize, data: &[u8]) {
        match self.writable(start, data.len()) {
            Some(dest) => dest.copy_from_slice(data),
            None => self.status |= STATUS_PROGRAM_ERROR,
        }
        self.status |= STATUS_READY;
        self.set_mode(Mode::Status);
    }

    /// The confirm cycle of a block erase. QEMU erases at the 0x20 already; this model
    /// erases at the confirm, as a real chip does, so that a wrong confirm changes nothing.
    fn confirm_erase(&mut self, block: usize, cmd: u8) {
        if cmd != CMD_ERASE_CONFIRM {
            // A real chip's "improper command sequence"; QEMU only goes back to read array.
            self.status |= STATUS_ERASE_ERROR | STATUS_PROGRAM_ERROR | STATUS_READY;
            self.set_mode(Mode::ReadArray);
            return;
        }
        match self.writable(block, BLOCK_SIZE) {
            Some(dest) => {
                dest.fill(0xff);
                // The erase is complete; OVMF sends nothing after it, so save now.
                self.vars.save_logged();
            }
            None => self.status |= STATUS_ERASE_ERROR,
        }
        self.status |= STATUS_READY;
        self.set_mode(Mode::Status);
    }
}

/// An access of 1, 2, 4 or 8 bytes at a multiple of its size.
fn aligned(offset: u64, len: usize) -> bool {
    matches!(len, 1 | 2 | 4 | 8) && offset % len as u64 == 0
}

/// Fills `data` from 32-bit little-endian words, `word(offset, bytes)` for each 4-byte
/// piece: QEMU's flash answers at most 4 bytes at a time, so an 8-byte read is two.
fn fill_words(offset: u64, data: &mut [u8], word: impl Fn(u64, usize) -> u32) {
    for (piece, chunk) in (0u64..).step_by(4).zip(data.chunks_mut(4)) {
        let value = word(offset + piece, chunk.len()).to_le_bytes();
        chunk.copy_from_slice(&value[..chunk.len()]);
    }
}

const CFI_TABLE_LEN: usize = 0x52;

/// The CFI query table QEMU's `pflash_cfi01` gives a one-byte-wide bank, sized for this
/// flash: "QRY", the Intel command set, uniform 4 KiB erase blocks.
fn cfi_table(len: usize) -> [u8; CFI_TABLE_LEN] {
    let mut t = [0u8; CFI_TABLE_LEN];
    let blocks = (len / BLOCK_SIZE).saturating_sub(1).to_le_bytes();
    let sector = (BLOCK_SIZE >> 8).to_le_bytes();
    // Device size as a power of two (QEMU takes the lowest set bit; the same for 4 MiB).
    let size_log2 = len.next_power_of_two().trailing_zeros().to_le_bytes();
    let fields: &[(usize, &[u8])] = &[
        (0x10, b"QRY"),
        (0x13, &[0x01, 0x00, 0x31, 0x00]), // Intel/Sharp command set, extended table at 0x31
        (0x1b, &[0x45, 0x55, 0x00, 0x00]), // Vcc 4.5-5.5 V, no Vpp
        (0x1f, &[0x07, 0x07, 0x0a, 0x00, 0x04, 0x04, 0x04, 0x00]), // timeouts
        (0x27, &size_log2[..1]),
        (0x28, &[0x02, 0x00, 0x08, 0x00]), // x8/x16 interface, 256-byte write buffer
        (0x2c, &[0x01, blocks[0], blocks[1], sector[0], sector[1]]), // one erase region
        (0x31, b"PRI10"),
        (0x3f, &[0x01]), // one protection field
    ];
    for (at, bytes) in fields {
        t[*at..*at + bytes.len()].copy_from_slice(bytes);
    }
    t
}

impl BusDevice for Pflash {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        let Some(start) = self.start(offset, data.len()) else {
            data.fill(0xff);
            return;
        };
        let status = u32::from(self.status);
        match self.mode {
            // What a memory slot would answer, for any size or alignment: OVMF copies
            // variables with whatever moves CopyMem picks.
            Mode::ReadArray => self.read_array(start, data),
            _ if !aligned(offset, data.len()) => data.fill(0xff),
            Mode::Status | Mode::Program | Mode::EraseSetup(_) => {
                // QEMU (bank width 1, no device width) repeats the status at byte 2 of a
                // 32-bit read.
                fill_words(offset, data, |_, n| {
                    if n == 4 {
                        status | status << 16
                    } else {
                        status
                    }
                });
            }
            // QEMU's PC flash leaves its identifier codes at zero.
            Mode::ReadId => data.fill(0),
            Mode::Query => fill_words(offset, data, |at, _| {
                let index = usize::try_from(at & 0xff).unwrap_or(usize::MAX);
                u32::from(self.cfi.get(index).copied().unwrap_or(0))
            }),
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        if !aligned(offset, data.len()) {
            return;
        }
        let Some(start) = self.start(offset, data.len()) else {
            return;
        };
        // The command is the low byte of the value, as in QEMU.
        let [cmd, ..] = *data else {
            return;
        };
        match self.mode {
            Mode::Program => self.program(start, data),
            Mode::EraseSetup(block) => self.confirm_erase(block, cmd),
            // QEMU leaves query mode only for read array.
            Mode::Query if cmd != CMD_READ_ARRAY => {}
            _ => self.command(start, cmd),
        }
        // The end of a program (QemuFlashWrite's last write) or of any operation: the
        // guest's changes go to the file now.
        if self.mode == Mode::ReadArray {
            self.vars.save_logged();
        }
        self.window_follows_mode();
    }
}
