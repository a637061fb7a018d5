//! QEMU's firmware configuration device (fw_cfg, as QEMU's docs/specs/fw_cfg.rst describes
//! it), because the distribution's OVMF learns everything about the machine through it: the
//! CPU count, the memory map (`etc/e820`), the ACPI tables (through the table-loader script
//! in [`loader`]) and the ramfb framebuffer it is asked to set up.
//!
//! On x86 it sits at I/O ports 0x510 (16-bit selector), 0x511 (8-bit data) and 0x514..0x51c
//! (the DMA address, two big-endian 32-bit halves; writing the low half starts the
//! transfer). Guest-controlled values (selectors, DMA control blocks, lengths, addresses)
//! are all checked: a bad request reads zeros or sets the DMA error bit, as QEMU does, and
//! the VM runs on.

#![allow(
    clippy::cast_possible_truncation,
    reason = "items are at most 4 GiB (checked as they are added), so their lengths and offsets fit the protocol's 32 bits; selectors are the top 16 bits of a DMA control word"
)]

pub mod loader;
#[cfg(test)]
mod tests;

use crate::devices::bus::BusDevice;
use crate::memory::GuestMemory;
use std::collections::BTreeMap;
use vm_memory::{Bytes, GuestAddress};

/// The first I/O port: the selector (the data port is the next one, DMA at +4).
pub const FW_CFG_PORT: u16 = 0x510;
/// Ports the device answers, from [`FW_CFG_PORT`].
pub const FW_CFG_PORT_LEN: u64 = 12;

/// The "QEMU" signature item.
pub const KEY_SIGNATURE: u16 = 0x00;
/// The feature bits item (bit 0: traditional interface, bit 1: DMA).
pub const KEY_ID: u16 = 0x01;
/// The machine's UUID (16 bytes).
pub const KEY_UUID: u16 = 0x02;
/// The boot CPU count (16-bit little-endian).
pub const KEY_NB_CPUS: u16 = 0x05;
/// The most CPUs the machine can have (16-bit little-endian).
pub const KEY_MAX_CPUS: u16 = 0x0f;
/// The file directory.
pub const KEY_FILE_DIR: u16 = 0x19;
/// The first file's selector.
pub const KEY_FILE_FIRST: u16 = 0x20;
/// Selector bit QEMU once used for writes: ignored when looking an item up.
const WRITE_CHANNEL: u16 = 0x4000;

/// Longest file name, with its terminating zero.
pub const FILE_NAME_LEN: usize = 56;

/// What the DMA address register reads as: "QEMU CFG", big-endian.
const DMA_SIGNATURE: u64 = 0x5145_4d55_2043_4647;
/// DMA control bits.
const DMA_ERROR: u32 = 0x01;
const DMA_READ: u32 = 0x02;
const DMA_SKIP: u32 = 0x04;
const DMA_SELECT: u32 = 0x08;
const DMA_WRITE: u32 = 0x10;

/// Why an item could not be added.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FwCfgError {
    /// A file name that the directory cannot hold.
    #[error("The firmware configuration file name {0:?} is empty or longer than 55 bytes.")]
    BadName(String),
    /// The same file twice.
    #[error("The firmware configuration already has a file named {0:?}.")]
    Duplicate(String),
    /// More files than selectors.
    #[error("The firmware configuration has no selector left for another file.")]
    Full,
    /// An item larger than the protocol's 32-bit lengths.
    #[error("The firmware configuration item {0:?} is larger than 4 GiB.")]
    TooLarge(String),
}

/// Called with a writable item's whole contents after the guest wrote into it.
pub type WriteHook = Box<dyn FnMut(&[u8]) + Send>;

struct Item {
    data: Vec<u8>,
    on_write: Option<WriteHook>,
}

/// Collects the items before the machine starts.
#[derive(Default)]
pub struct FwCfgBuilder {
    items: BTreeMap<u16, Item>,
    files: BTreeMap<String, Item>,
}

impl std::fmt::Debug for FwCfgBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FwCfgBuilder")
            .field("items", &self.items.keys().collect::<Vec<_>>())
            .field("files", &self.files.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl FwCfgBuilder {
    /// A configuration with the signature and the feature bits (DMA offered).
    pub fn new() -> Self {
        let mut b = Self::default();
        b.item(KEY_SIGNATURE, b"QEMU".to_vec());
        // Traditional interface and DMA.
        b.item(KEY_ID, 3u32.to_le_bytes().to_vec());
        b
    }

    /// Sets a numbered item.
    pub fn item(&mut self, key: u16, data: Vec<u8>) -> &mut Self {
        self.items.insert(
            key,
            Item {
                data,
                on_write: None,
            },
        );
        self
    }

    /// The boot CPU count (and the maximum, which is the same: no CPU hotplug).
    pub fn cpus(&mut self, count: u16) -> &mut Self {
        self.item(KEY_NB_CPUS, count.to_le_bytes().to_vec());
        self.item(KEY_MAX_CPUS, count.to_le_bytes().to_vec())
    }

    /// Adds a read-only file.
    pub fn file(&mut self, name: &str, data: Vec<u8>) -> Result<&mut Self, FwCfgError> {
        self.add_file(
            name,
            Item {
                data,
                on_write: None,
            },
        )
    }

    /// Adds a file of `len` zero bytes that the guest may write by DMA; `on_write` sees its
    /// contents after each write.
    pub fn writable_file(
        &mut self,
        name: &str,
        len: usize,
        on_write: WriteHook,
    ) -> Result<&mut Self, FwCfgError> {
        self.add_file(
            name,
            Item {
                data: vec![0; len],
                on_write: Some(on_write),
            },
        )
    }

    fn add_file(&mut self, name: &str, item: Item) -> Result<&mut Self, FwCfgError> {
        if name.is_empty() || name.len() >= FILE_NAME_LEN || name.contains('\0') {
            return Err(FwCfgError::BadName(name.to_owned()));
        }
        if u32::try_from(item.data.len()).is_err() {
            return Err(FwCfgError::TooLarge(name.to_owned()));
        }
        if self.files.contains_key(name) {
            return Err(FwCfgError::Duplicate(name.to_owned()));
        }
        if self.files.len() >= usize::from(WRITE_CHANNEL - KEY_FILE_FIRST) {
            return Err(FwCfgError::Full);
        }
        self.files.insert(name.to_owned(), item);
        Ok(self)
    }

    /// The device, reading and writing guest memory through `memory` for DMA. Files get
    /// selectors from [`KEY_FILE_FIRST`] in name order, as QEMU sorts its directory.
    pub fn build(self, memory: GuestMemory) -> FwCfg {
        let mut items = self.items;
        let count = self.files.len() as u32;
        let mut dir = count.to_be_bytes().to_vec();
        for ((name, item), key) in self.files.into_iter().zip(KEY_FILE_FIRST..) {
            let mut entry = [0u8; 8 + FILE_NAME_LEN];
            entry[0..4].copy_from_slice(&(item.data.len() as u32).to_be_bytes());
            entry[4..6].copy_from_slice(&key.to_be_bytes());
            entry[8..8 + name.len()].copy_from_slice(name.as_bytes());
            dir.extend_from_slice(&entry);
            items.insert(key, item);
        }
        items.insert(
            KEY_FILE_DIR,
            Item {
                data: dir,
                on_write: None,
            },
        );
        FwCfg {
            items,
            selector: KEY_SIGNATURE,
            offset: 0,
            dma_high: 0,
            memory,
        }
    }
}

/// The device on the I/O bus.
pub struct FwCfg {
    items: BTreeMap<u16, Item>,
    selector: u16,
    /// Where in the selected item the next read or write goes.
    offset: u32,
    /// The DMA address's high half, written first.
    dma_high: u32,
    memory: GuestMemory,
}

impl std::fmt::Debug for FwCfg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FwCfg")
            .field("selector", &self.selector)
            .field("offset", &self.offset)
            .finish_non_exhaustive()
    }
}

impl FwCfg {
    fn select(&mut self, key: u16) {
        self.selector = key & !WRITE_CHANNEL;
        self.offset = 0;
    }

    fn current(&self) -> &[u8] {
        self.items
            .get(&self.selector)
            .map(|i| i.data.as_slice())
            .unwrap_or_default()
    }

    /// The data port: the selected item's next byte, zero past its end.
    fn read_data_byte(&mut self) -> u8 {
        let byte = self
            .current()
            .get(self.offset as usize)
            .copied()
            .unwrap_or(0);
        if (self.offset as usize) < self.current().len() {
            self.offset += 1;
        }
        byte
    }

    /// Runs the DMA request whose control block is at `addr`, then writes its outcome
    /// (0, or the error bit) back into the block's control field.
    fn dma(&mut self, addr: u64) {
        let mut block = [0u8; 16];
        if self
            .memory
            .read_slice(&mut block, GuestAddress(addr))
            .is_err()
        {
            log::debug!("fw_cfg: DMA control block at {addr:#x} is outside guest memory");
            return;
        }
        let field = |r: std::ops::Range<usize>| block.get(r).unwrap_or_default();
        let control = u32::from_be_bytes(field(0..4).try_into().unwrap_or_default());
        let length = u32::from_be_bytes(field(4..8).try_into().unwrap_or_default());
        let address = u64::from_be_bytes(field(8..16).try_into().unwrap_or_default());
        let outcome = match self.transfer(control, length, address) {
            Ok(()) => 0u32,
            Err(()) => DMA_ERROR,
        };
        let _ = self
            .memory
            .write_slice(&outcome.to_be_bytes(), GuestAddress(addr));
    }

    fn transfer(&mut self, control: u32, length: u32, address: u64) -> Result<(), ()> {
        if control & DMA_SELECT != 0 {
            self.select((control >> 16) as u16);
        }
        if control & DMA_READ != 0 {
            self.dma_read(length, address)
        } else if control & DMA_WRITE != 0 {
            self.dma_write(length, address)
        } else if control & DMA_SKIP != 0 {
            let len = self.current().len() as u32;
            self.offset = self.offset.saturating_add(length).min(len);
            Ok(())
        } else {
            Ok(())
        }
    }

    /// Copies the item's next `length` bytes to `address`: zeros past its end, as QEMU.
    fn dma_read(&mut self, length: u32, address: u64) -> Result<(), ()> {
        let start = self.offset as usize;
        let data = self.items.get(&self.selector).map(|i| i.data.as_slice());
        let available = data.unwrap_or_default().get(start..).unwrap_or_default();
        let n = available.len().min(length as usize);
        let guest = GuestAddress(address);
        if address.checked_add(u64::from(length)).is_none() {
            return Err(());
        }
        self.memory
            .write_slice(&available[..n], guest)
            .map_err(|_| ())?;
        let mut zeros_at = address + n as u64;
        let mut left = length as usize - n;
        const ZEROS: [u8; 4096] = [0; 4096];
        while left > 0 {
            let chunk = left.min(ZEROS.len());
            self.memory
                .write_slice(&ZEROS[..chunk], GuestAddress(zeros_at))
                .map_err(|_| ())?;
            zeros_at += chunk as u64;
            left -= chunk;
        }
        self.offset += n as u32;
        Ok(())
    }

    /// Copies `length` bytes from `address` into the selected item, if it is writable and
    /// they fit; its hook sees the result.
    fn dma_write(&mut self, length: u32, address: u64) -> Result<(), ()> {
        let start = self.offset as usize;
        let item = self.items.get_mut(&self.selector).ok_or(())?;
        let hook = item.on_write.as_mut().ok_or(())?;
        let end = start.checked_add(length as usize).ok_or(())?;
        let dest = item.data.get_mut(start..end).ok_or(())?;
        self.memory
            .read_slice(dest, GuestAddress(address))
            .map_err(|_| ())?;
        hook(&item.data);
        self.offset = end as u32;
        Ok(())
    }
}

impl BusDevice for FwCfg {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        match offset {
            // The data port (wider reads take consecutive bytes).
            1 => data.iter_mut().for_each(|b| *b = self.read_data_byte()),
            // The DMA address register reads as its signature.
            4..=11 => {
                let sig = DMA_SIGNATURE.to_be_bytes();
                for (i, b) in data.iter_mut().enumerate() {
                    *b = sig.get(offset as usize - 4 + i).copied().unwrap_or(0);
                }
            }
            _ => data.fill(0),
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        match (offset, data) {
            (0, [lo, hi]) => self.select(u16::from_le_bytes([*lo, *hi])),
            (0, [lo]) => self.select(u16::from(*lo)),
            (4, [a, b, c, d]) => self.dma_high = u32::from_be_bytes([*a, *b, *c, *d]),
            (8, [a, b, c, d]) => {
                let low = u32::from_be_bytes([*a, *b, *c, *d]);
                let addr = (u64::from(self.dma_high) << 32) | u64::from(low);
                self.dma_high = 0;
                self.dma(addr);
            }
            (4, bytes) if bytes.len() == 8 => {
                let mut be = [0u8; 8];
                be.copy_from_slice(bytes);
                self.dma(u64::from_be_bytes(be));
            }
            // Data port writes have been ignored since QEMU 2.4; so are odd widths.
            _ => {}
        }
    }
}
