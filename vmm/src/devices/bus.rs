//! Address-range routing for port I/O and MMIO exits: each vCPU looks up the device that
//! owns an address and hands it the access. Accesses nobody claims read as all ones and
//! are otherwise ignored, as on a real bus, so a probing guest never stops the VM.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// A device reached through one address range of a bus.
pub trait BusDevice: Send {
    /// The guest reads `data.len()` bytes at `offset` into the device's range.
    fn read(&mut self, offset: u64, data: &mut [u8]);
    /// The guest writes `data` at `offset` into the device's range.
    fn write(&mut self, offset: u64, data: &[u8]);
}

/// A device shared between the bus and whoever else drives it (the control thread).
pub type SharedDevice = Arc<Mutex<dyn BusDevice>>;

/// Why a device could not be placed on a bus.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BusError {
    /// Zero-length or wrapping range.
    #[error("The range at {base:#x} of {len:#x} bytes is empty or wraps around.")]
    BadRange {
        /// Start.
        base: u64,
        /// Length.
        len: u64,
    },
    /// Another device already owns part of the range.
    #[error("The range at {base:#x} of {len:#x} bytes overlaps a device that is already there.")]
    Overlap {
        /// Start.
        base: u64,
        /// Length.
        len: u64,
    },
}

/// One address space (port I/O or MMIO).
#[derive(Default)]
pub struct Bus {
    ranges: BTreeMap<u64, (u64, SharedDevice)>,
}

impl std::fmt::Debug for Bus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ranges: Vec<_> = self.ranges.iter().map(|(b, (l, _))| (*b, *l)).collect();
        f.debug_struct("Bus").field("ranges", &ranges).finish()
    }
}

impl Bus {
    /// An empty bus.
    pub fn new() -> Self {
        Self::default()
    }

    /// Gives `device` the addresses `base..base + len`.
    pub fn insert(&mut self, base: u64, len: u64, device: SharedDevice) -> Result<(), BusError> {
        let end = base
            .checked_add(len)
            .filter(|_| len > 0)
            .ok_or(BusError::BadRange { base, len })?;
        let before = self.ranges.range(..end).next_back();
        if let Some((&b, &(l, _))) = before {
            if b + l > base {
                return Err(BusError::Overlap { base, len });
            }
        }
        self.ranges.insert(base, (len, device));
        Ok(())
    }

    fn find(&self, addr: u64, size: usize) -> Option<(u64, &SharedDevice)> {
        let (&base, (len, dev)) = self.ranges.range(..=addr).next_back()?;
        let offset = addr - base;
        (offset.checked_add(size as u64)? <= *len).then_some((offset, dev))
    }

    /// Routes a read; returns `false` (and all ones) if no device owns the address.
    pub fn read(&self, addr: u64, data: &mut [u8]) -> bool {
        match self.find(addr, data.len()) {
            Some((offset, dev)) => {
                lock(dev).read(offset, data);
                true
            }
            None => {
                data.fill(0xff);
                false
            }
        }
    }

    /// Routes a write; returns `false` if no device owns the address.
    pub fn write(&self, addr: u64, data: &[u8]) -> bool {
        match self.find(addr, data.len()) {
            Some((offset, dev)) => {
                lock(dev).write(offset, data);
                true
            }
            None => false,
        }
    }
}

/// Locks a device, carrying on if a previous holder panicked: device state is plain data
/// and a poisoned lock must not take the whole VM down with it.
pub fn lock<T: ?Sized>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Recorder {
        writes: Vec<(u64, Vec<u8>)>,
    }

    impl BusDevice for Recorder {
        fn read(&mut self, offset: u64, data: &mut [u8]) {
            data.fill(offset.to_le_bytes()[0]);
        }
        fn write(&mut self, offset: u64, data: &[u8]) {
            self.writes.push((offset, data.to_vec()));
        }
    }

    #[test]
    fn accesses_reach_the_owner_with_the_right_offset() {
        let dev = Arc::new(Mutex::new(Recorder::default()));
        let mut bus = Bus::new();
        bus.insert(0x3f8, 8, dev.clone()).expect("free range");
        assert!(bus.write(0x3fb, &[0x80]));
        let mut b = [0u8; 1];
        assert!(bus.read(0x3fd, &mut b));
        assert_eq!(b, [5]);
        assert_eq!(lock(&dev).writes, vec![(3, vec![0x80])]);
    }

    #[test]
    fn unclaimed_reads_are_all_ones_and_writes_are_dropped() {
        let mut bus = Bus::new();
        bus.insert(0x100, 4, Arc::new(Mutex::new(Recorder::default())))
            .expect("free");
        let mut b = [0u8; 4];
        assert!(!bus.read(0x200, &mut b));
        assert_eq!(b, [0xff; 4]);
        // Straddling the end of a device is not the device's access.
        assert!(!bus.read(0x102, &mut b));
        assert!(!bus.write(0xff, &[1]));
    }

    #[test]
    fn overlapping_and_empty_ranges_are_refused() {
        let mut bus = Bus::new();
        let d = || -> SharedDevice { Arc::new(Mutex::new(Recorder::default())) };
        bus.insert(0x1000, 0x100, d()).expect("free");
        assert_eq!(
            bus.insert(0x10ff, 1, d()),
            Err(BusError::Overlap {
                base: 0x10ff,
                len: 1
            })
        );
        assert_eq!(
            bus.insert(0xf00, 0x101, d()),
            Err(BusError::Overlap {
                base: 0xf00,
                len: 0x101
            })
        );
        assert_eq!(
            bus.insert(0x2000, 0, d()),
            Err(BusError::BadRange {
                base: 0x2000,
                len: 0
            })
        );
        assert!(bus.insert(0x1100, 0x10, d()).is_ok());
        assert!(bus.insert(0xf00, 0x100, d()).is_ok());
    }
}
