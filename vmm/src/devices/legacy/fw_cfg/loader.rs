//! QEMU's ACPI table-loader script (`etc/table-loader`), because it is the only way the
//! distribution's OVMF installs a VMM's ACPI tables: the firmware allocates each file named
//! in the script, patches the pointers between them to the addresses it chose, and fixes
//! their checksums. Our direct-boot path runs the same script itself ([`apply`]) with the
//! files at fixed addresses, so both boots give the guest the very same tables.
//!
//! Each command is 128 bytes, little-endian: a 32-bit command number, then its fields (file
//! names are zero-padded to 56 bytes).

use super::FILE_NAME_LEN;
use std::collections::BTreeMap;

/// One command's size in the script.
pub const COMMAND_LEN: usize = 128;

const ALLOCATE: u32 = 1;
const ADD_POINTER: u32 = 2;
const ADD_CHECKSUM: u32 = 3;

/// Where the firmware may put an allocated file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Zone {
    /// Anywhere in 32-bit memory.
    High = 1,
    /// The legacy 0xF0000 segment (where old OSes scan for the RSDP).
    FSeg = 2,
}

/// A loader command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Allocate memory for `file` and copy it there.
    Allocate {
        /// The fw_cfg file.
        file: String,
        /// Alignment of its address (a power of two).
        align: u32,
        /// Where it may go.
        zone: Zone,
    },
    /// Add `src`'s address to the `size`-byte little-endian value at `offset` in `dest`.
    AddPointer {
        /// The file holding the pointer.
        dest: String,
        /// The file pointed into.
        src: String,
        /// Where the pointer is in `dest`.
        offset: u32,
        /// 1, 2, 4 or 8 bytes.
        size: u8,
    },
    /// Set the byte at `result` in `file` so that `start..start + length` sums to zero.
    AddChecksum {
        /// The file.
        file: String,
        /// The checksum byte (inside the range, and zero beforehand).
        result: u32,
        /// First byte summed.
        start: u32,
        /// Bytes summed.
        length: u32,
    },
}

/// Why a script could not be read or run.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LoaderError {
    /// Not whole commands.
    #[error("The table-loader script is {0} bytes long, which is not a whole number of 128-byte commands.")]
    Length(usize),
    /// A command number we do not know.
    #[error("The table-loader script has command {0}, which is not one we know.")]
    Unknown(u32),
    /// A name that is not zero-terminated text.
    #[error("A table-loader file name is not zero-terminated text.")]
    Name,
    /// A zone we do not know.
    #[error("The table-loader script allocates in zone {0}, which is not one we know.")]
    Zone(u8),
    /// A command names a file that was not allocated.
    #[error("The table-loader script uses {0:?}, which it never allocated.")]
    Missing(String),
    /// A pointer or checksum outside its file, or a pointer of a size we cannot patch.
    #[error("A table-loader command reaches outside {0:?} or has an impossible size.")]
    Range(String),
    /// A pointer that does not point inside its source file, or overflows when patched.
    #[error("A table-loader pointer in {0:?} does not point inside the file it names.")]
    Pointer(String),
}

fn put_name(out: &mut [u8], name: &str) {
    let n = name.len().min(FILE_NAME_LEN - 1);
    out[..n].copy_from_slice(&name.as_bytes()[..n]);
}

fn get_name(field: &[u8]) -> Result<String, LoaderError> {
    let end = field
        .iter()
        .position(|&b| b == 0)
        .ok_or(LoaderError::Name)?;
    String::from_utf8(field[..end].to_vec()).map_err(|_| LoaderError::Name)
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(b)
}

/// The script's bytes.
pub fn encode(commands: &[Command]) -> Vec<u8> {
    let mut out = Vec::with_capacity(commands.len() * COMMAND_LEN);
    for command in commands {
        let mut c = [0u8; COMMAND_LEN];
        let n = FILE_NAME_LEN;
        match command {
            Command::Allocate { file, align, zone } => {
                c[0..4].copy_from_slice(&ALLOCATE.to_le_bytes());
                put_name(&mut c[4..4 + n], file);
                c[4 + n..8 + n].copy_from_slice(&align.to_le_bytes());
                c[8 + n] = *zone as u8;
            }
            Command::AddPointer {
                dest,
                src,
                offset,
                size,
            } => {
                c[0..4].copy_from_slice(&ADD_POINTER.to_le_bytes());
                put_name(&mut c[4..4 + n], dest);
                put_name(&mut c[4 + n..4 + 2 * n], src);
                c[4 + 2 * n..8 + 2 * n].copy_from_slice(&offset.to_le_bytes());
                c[8 + 2 * n] = *size;
            }
            Command::AddChecksum {
                file,
                result,
                start,
                length,
            } => {
                c[0..4].copy_from_slice(&ADD_CHECKSUM.to_le_bytes());
                put_name(&mut c[4..4 + n], file);
                c[4 + n..8 + n].copy_from_slice(&result.to_le_bytes());
                c[8 + n..12 + n].copy_from_slice(&start.to_le_bytes());
                c[12 + n..16 + n].copy_from_slice(&length.to_le_bytes());
            }
        }
        out.extend_from_slice(&c);
    }
    out
}

/// Reads a script back (as the firmware does).
pub fn parse(script: &[u8]) -> Result<Vec<Command>, LoaderError> {
    if script.len() % COMMAND_LEN != 0 {
        return Err(LoaderError::Length(script.len()));
    }
    let n = FILE_NAME_LEN;
    script
        .chunks_exact(COMMAND_LEN)
        .map(|c| {
            Ok(match u32_at(c, 0) {
                ALLOCATE => Command::Allocate {
                    file: get_name(&c[4..4 + n])?,
                    align: u32_at(c, 4 + n),
                    zone: match c[8 + n] {
                        1 => Zone::High,
                        2 => Zone::FSeg,
                        z => return Err(LoaderError::Zone(z)),
                    },
                },
                ADD_POINTER => Command::AddPointer {
                    dest: get_name(&c[4..4 + n])?,
                    src: get_name(&c[4 + n..4 + 2 * n])?,
                    offset: u32_at(c, 4 + 2 * n),
                    size: c[8 + 2 * n],
                },
                ADD_CHECKSUM => Command::AddChecksum {
                    file: get_name(&c[4..4 + n])?,
                    result: u32_at(c, 4 + n),
                    start: u32_at(c, 8 + n),
                    length: u32_at(c, 12 + n),
                },
                other => return Err(LoaderError::Unknown(other)),
            })
        })
        .collect()
}

/// Runs `commands` over `files` as the firmware would, with each allocated file at the
/// address `addresses` gives: pointers patched, checksums set. Checks what OVMF checks.
pub fn apply(
    commands: &[Command],
    files: &mut BTreeMap<String, Vec<u8>>,
    addresses: &BTreeMap<String, u64>,
) -> Result<(), LoaderError> {
    let mut allocated = BTreeMap::new();
    for command in commands {
        match command {
            Command::Allocate { file, .. } => {
                let addr = addresses
                    .get(file)
                    .filter(|_| files.contains_key(file))
                    .ok_or_else(|| LoaderError::Missing(file.clone()))?;
                allocated.insert(file.clone(), *addr);
            }
            Command::AddPointer {
                dest,
                src,
                offset,
                size,
            } => {
                let src_addr = *allocated
                    .get(src)
                    .ok_or_else(|| LoaderError::Missing(src.clone()))?;
                let src_len = files.get(src).map_or(0, Vec::len) as u64;
                if !allocated.contains_key(dest) {
                    return Err(LoaderError::Missing(dest.clone()));
                }
                let data = files
                    .get_mut(dest)
                    .ok_or_else(|| LoaderError::Missing(dest.clone()))?;
                let size = usize::from(*size);
                let at = *offset as usize;
                let field = at
                    .checked_add(size)
                    .and_then(|end| data.get_mut(at..end))
                    .filter(|_| matches!(size, 1 | 2 | 4 | 8))
                    .ok_or_else(|| LoaderError::Range(dest.clone()))?;
                let mut value = [0u8; 8];
                value[..size].copy_from_slice(field);
                let pointer = u64::from_le_bytes(value);
                let limit = if size == 8 {
                    u64::MAX
                } else {
                    (1u64 << (size * 8)) - 1
                };
                let patched = pointer
                    .checked_add(src_addr)
                    .filter(|p| pointer < src_len && *p <= limit)
                    .ok_or_else(|| LoaderError::Pointer(dest.clone()))?;
                field.copy_from_slice(&patched.to_le_bytes()[..size]);
            }
            Command::AddChecksum {
                file,
                result,
                start,
                length,
            } => {
                let data = files
                    .get_mut(file)
                    .filter(|_| allocated.contains_key(file))
                    .ok_or_else(|| LoaderError::Missing(file.clone()))?;
                let range = (*start as usize)
                    ..(*start as usize)
                        .checked_add(*length as usize)
                        .ok_or_else(|| LoaderError::Range(file.clone()))?;
                let sum = data
                    .get(range)
                    .ok_or_else(|| LoaderError::Range(file.clone()))?
                    .iter()
                    .fold(0u8, |a, b| a.wrapping_add(*b));
                let byte = data
                    .get_mut(*result as usize)
                    .ok_or_else(|| LoaderError::Range(file.clone()))?;
                // As OVMF: the byte becomes minus the range's sum, its own old value
                // counted (the script's files carry zero there).
                *byte = 0u8.wrapping_sub(sum);
            }
        }
    }
    Ok(())
}
