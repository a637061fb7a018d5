//! A PCI function's 256-byte configuration space: identity registers, the command
//! register, 32- and 64-bit memory BARs with the sizing protocol (write all ones, read
//! back the mask), and a capability list. Only the bits a real device lets software
//! change are writable.

#![allow(
    clippy::cast_possible_truncation,
    reason = "configuration registers are 32-bit; offsets and BAR sizes are masked to fit"
)]

/// Offset of the command register.
pub const COMMAND: usize = 0x04;
/// Command bit: the function decodes memory BARs.
pub const COMMAND_MEMORY: u16 = 0x2;
const COMMAND_WRITABLE: u32 = 0x0407; // I/O, memory, bus master, INTx disable
const STATUS_CAP_LIST: u32 = 0x10 << 16;
const HEADER_TYPE: usize = 0x0c;
const BAR0: usize = 0x10;
const CAP_PTR: usize = 0x34;
const FIRST_CAP: usize = 0x40;

/// Identity of a function.
#[derive(Debug, Clone, Copy)]
pub struct PciId {
    /// Vendor ID.
    pub vendor: u16,
    /// Device ID.
    pub device: u16,
    /// Revision.
    pub revision: u8,
    /// Class code (class, subclass, programming interface).
    pub class: u32,
    /// Subsystem vendor ID.
    pub subsystem_vendor: u16,
    /// Subsystem ID.
    pub subsystem: u16,
}

/// A BAR change the device must follow (its notify doorbells move with it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BarMove {
    /// Which BAR.
    pub index: usize,
    /// Where it was.
    pub from: u64,
    /// Where it is now.
    pub to: u64,
}

/// The configuration space.
#[derive(Debug, Clone)]
pub struct ConfigSpace {
    regs: [u32; 64],
    writable: [u32; 64],
    bar_sizes: [u64; 6],
    /// BARs that take two registers (the next one holds the upper address half).
    bar_is_64: [bool; 6],
    next_cap: usize,
    last_cap: Option<usize>,
}

impl ConfigSpace {
    /// A type-0 header for `id`.
    pub fn new(id: PciId) -> Self {
        let mut c = Self {
            regs: [0; 64],
            writable: [0; 64],
            bar_sizes: [0; 6],
            bar_is_64: [false; 6],
            next_cap: FIRST_CAP,
            last_cap: None,
        };
        c.regs[0] = u32::from(id.vendor) | (u32::from(id.device) << 16);
        c.regs[2] = u32::from(id.revision) | (id.class << 8);
        c.regs[11] = u32::from(id.subsystem_vendor) | (u32::from(id.subsystem) << 16);
        c.writable[COMMAND / 4] = COMMAND_WRITABLE;
        c.writable[0x3c / 4] = 0xff; // interrupt line: scratch for the OS
        c
    }

    /// Declares 32-bit memory BAR `index` of `size` bytes (a power of two, >= 4 KiB) at `addr`.
    pub fn set_bar(&mut self, index: usize, size: u64, addr: u64) {
        debug_assert!(size.is_power_of_two() && size >= 0x1000 && index < 6);
        self.bar_sizes[index] = size;
        self.regs[BAR0 / 4 + index] = (addr & !(size - 1)) as u32;
        self.writable[BAR0 / 4 + index] = !(size as u32 - 1);
    }

    /// Declares 64-bit prefetchable memory BAR `index` (it also takes register
    /// `index + 1`) of `size` bytes (a power of two, >= 4 KiB) at `addr`.
    pub fn set_bar64(&mut self, index: usize, size: u64, addr: u64) {
        debug_assert!(size.is_power_of_two() && size >= 0x1000 && index < 5);
        const TYPE_64_PREFETCHABLE: u32 = 0b1100;
        let addr = addr & !(size - 1);
        let mask = !(size - 1);
        self.bar_sizes[index] = size;
        self.bar_is_64[index] = true;
        self.regs[BAR0 / 4 + index] = addr as u32 | TYPE_64_PREFETCHABLE;
        self.regs[BAR0 / 4 + index + 1] = (addr >> 32) as u32;
        self.writable[BAR0 / 4 + index] = mask as u32 & !0xf;
        self.writable[BAR0 / 4 + index + 1] = (mask >> 32) as u32;
    }

    /// Sets the dword register at `offset` (below the BARs' range or past the header) to
    /// `value`, of which the bits in `writable` software may change.
    pub fn set_register(&mut self, offset: usize, value: u32, writable: u32) {
        debug_assert!(offset % 4 == 0 && offset < 256);
        if let (Some(r), Some(w)) = (
            self.regs.get_mut(offset / 4),
            self.writable.get_mut(offset / 4),
        ) {
            *r = value;
            *w = writable;
        }
    }

    /// Marks the function as the first of a multi-function device (header type bit 7).
    pub fn set_multifunction(&mut self) {
        self.regs[HEADER_TYPE / 4] |= 0x80 << 16;
    }

    /// Where BAR `index` is, if it exists.
    pub fn bar(&self, index: usize) -> Option<(u64, u64)> {
        let size = *self.bar_sizes.get(index)?;
        if size == 0 {
            return None;
        }
        let low = u64::from(self.regs[BAR0 / 4 + index] & !0xf);
        let high = if self.bar_is_64[index] {
            u64::from(self.regs[BAR0 / 4 + index + 1]) << 32
        } else {
            0
        };
        Some((high | low, size))
    }

    /// The BAR whose registers include register `reg`, if any.
    fn bar_of_register(&self, reg: usize) -> Option<usize> {
        let i = reg.checked_sub(BAR0 / 4).filter(|i| *i < 6)?;
        if i > 0 && self.bar_is_64[i - 1] {
            Some(i - 1)
        } else {
            Some(i)
        }
    }

    /// Whether memory decoding is on.
    pub fn memory_enabled(&self) -> bool {
        self.regs[COMMAND / 4] as u16 & COMMAND_MEMORY != 0
    }

    /// Appends a capability (`bytes` starts with its ID; the next pointer is filled in).
    /// Returns its offset. `writable` marks the bytes software may change (same length).
    pub fn add_capability(&mut self, bytes: &[u8], writable: &[u8]) -> usize {
        let offset = self.next_cap;
        let mut raw = bytes.to_vec();
        raw[1] = 0;
        for (i, (b, w)) in raw.iter().zip(writable).enumerate() {
            self.set_byte(offset + i, *b, *w);
        }
        match self.last_cap {
            Some(prev) => self.set_byte(prev + 1, offset as u8, 0),
            None => {
                self.set_byte(CAP_PTR, offset as u8, 0);
                self.regs[1] |= STATUS_CAP_LIST;
            }
        }
        self.last_cap = Some(offset);
        self.next_cap = (offset + raw.len() + 3) & !3;
        offset
    }

    fn set_byte(&mut self, offset: usize, value: u8, writable: u8) {
        let (reg, shift) = (offset / 4, (offset % 4) * 8);
        self.regs[reg] = (self.regs[reg] & !(0xff << shift)) | (u32::from(value) << shift);
        self.writable[reg] =
            (self.writable[reg] & !(0xff << shift)) | (u32::from(writable) << shift);
    }

    /// Reads the dword register at `offset & !3`.
    pub fn read_reg(&self, offset: usize) -> u32 {
        self.regs.get(offset / 4).copied().unwrap_or(0xffff_ffff)
    }

    /// Reads `data.len()` bytes at `offset` (the access may not cross a dword).
    pub fn read(&self, offset: usize, data: &mut [u8]) {
        let value = self.read_reg(offset).to_le_bytes();
        let start = offset % 4;
        for (i, b) in data.iter_mut().enumerate() {
            *b = value.get(start + i).copied().unwrap_or(0xff);
        }
    }

    /// Writes bytes at `offset` through the writable mask; reports a moved BAR.
    pub fn write(&mut self, offset: usize, data: &[u8]) -> Option<BarMove> {
        let reg = offset / 4;
        if reg >= 64 || offset % 4 + data.len() > 4 {
            return None;
        }
        let bar_index = self.bar_of_register(reg);
        let bar_before = bar_index.and_then(|i| self.bar(i));
        let mut value = self.regs[reg].to_le_bytes();
        let mask = self.writable[reg].to_le_bytes();
        for (i, b) in data.iter().enumerate() {
            let at = offset % 4 + i;
            value[at] = (value[at] & !mask[at]) | (b & mask[at]);
        }
        self.regs[reg] = u32::from_le_bytes(value);
        let (index, (from, _)) = (bar_index?, bar_before?);
        let (to, _) = self.bar(index)?;
        (from != to).then_some(BarMove { index, from, to })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn space() -> ConfigSpace {
        ConfigSpace::new(PciId {
            vendor: 0x1af4,
            device: 0x1042,
            revision: 1,
            class: 0x01_80_00,
            subsystem_vendor: 0x1af4,
            subsystem: 2,
        })
    }

    #[test]
    fn identity_registers_read_back_and_are_read_only() {
        let mut c = space();
        assert_eq!(c.read_reg(0), 0x1042_1af4);
        assert_eq!(c.read_reg(8), 0x0180_0001);
        c.write(0, &[0, 0, 0, 0]);
        assert_eq!(c.read_reg(0), 0x1042_1af4);
    }

    #[test]
    fn bar_sizing_protocol_returns_the_size_mask_and_reports_moves() {
        let mut c = space();
        c.set_bar(0, 0x4000, 0xc000_0000);
        assert_eq!(
            c.write(0x10, &0xffff_ffffu32.to_le_bytes()),
            Some(BarMove {
                index: 0,
                from: 0xc000_0000,
                to: 0xffff_c000
            })
        );
        assert_eq!(c.read_reg(0x10), 0xffff_c000);
        assert_eq!(
            c.write(0x10, &0xc000_0000u32.to_le_bytes()),
            Some(BarMove {
                index: 0,
                from: 0xffff_c000,
                to: 0xc000_0000
            })
        );
        assert_eq!(c.bar(0), Some((0xc000_0000, 0x4000)));
        // An absent BAR reads as zero whatever is written.
        c.write(0x14, &0xffff_ffffu32.to_le_bytes());
        assert_eq!(c.read_reg(0x14), 0);
    }

    #[test]
    fn a_64_bit_bar_sizes_and_moves_across_both_registers() {
        let mut c = space();
        c.set_bar64(0, 0x1_0000, 0x4_0000_0000);
        assert_eq!(c.read_reg(0x10), 0xc, "64-bit, prefetchable, low half zero");
        assert_eq!(c.read_reg(0x14), 4);
        assert_eq!(c.bar(0), Some((0x4_0000_0000, 0x1_0000)));
        // Linux sizes each half: all ones in, the size mask out.
        c.write(0x10, &0xffff_ffffu32.to_le_bytes());
        c.write(0x14, &0xffff_ffffu32.to_le_bytes());
        assert_eq!(c.read_reg(0x10), 0xffff_000c);
        assert_eq!(c.read_reg(0x14), 0xffff_ffff);
        c.write(0x10, &0u32.to_le_bytes());
        let moved = c.write(0x14, &5u32.to_le_bytes()).expect("a move");
        assert_eq!(moved.index, 0);
        assert_eq!(moved.to, 0x5_0000_0000);
        assert_eq!(c.bar(0), Some((0x5_0000_0000, 0x1_0000)));
        assert_eq!(c.bar(1), None, "the upper half is not a BAR of its own");
    }

    #[test]
    fn capabilities_form_a_linked_list() {
        let mut c = space();
        let a = c.add_capability(&[0x09, 0, 16, 1], &[0; 4]);
        let b = c.add_capability(&[0x11, 0, 0, 0], &[0, 0, 0, 0xc0]);
        assert_eq!((a, b), (0x40, 0x44));
        assert_ne!(
            c.read_reg(4) & (0x10 << 16),
            0,
            "status says there is a list"
        );
        assert_eq!(c.read_reg(0x34) & 0xff, 0x40);
        assert_eq!((c.read_reg(0x40) >> 8) & 0xff, 0x44);
        assert_eq!((c.read_reg(0x44) >> 8) & 0xff, 0);
        c.write(0x47, &[0xff]);
        assert_eq!(
            c.read_reg(0x44) >> 24,
            0xc0,
            "only the writable bits changed"
        );
    }

    #[test]
    fn command_register_enables_memory_decoding() {
        let mut c = space();
        assert!(!c.memory_enabled());
        c.write(4, &[0x06, 0x00]);
        assert!(c.memory_enabled());
        assert_eq!(c.read_reg(4) & 0xffff, 0x06);
    }
}
