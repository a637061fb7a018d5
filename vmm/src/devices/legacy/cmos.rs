//! The MC146818 CMOS real-time clock on ports 0x70/0x71: guests read the wall-clock time
//! from it at boot (Linux's `rtc_cmos`, firmware). Time comes from the host's UTC clock at
//! each read; the registers are BCD, 24-hour, as PC firmware leaves them.

#![allow(
    clippy::cast_possible_truncation,
    reason = "calendar fields are bounded (seconds < 60, year < 10000)"
)]

use crate::devices::bus::BusDevice;

const REG_SECONDS: u8 = 0x00;
const REG_MINUTES: u8 = 0x02;
const REG_HOURS: u8 = 0x04;
const REG_WEEKDAY: u8 = 0x06;
const REG_DAY: u8 = 0x07;
const REG_MONTH: u8 = 0x08;
const REG_YEAR: u8 = 0x09;
const REG_STATUS_A: u8 = 0x0a;
const REG_STATUS_B: u8 = 0x0b;
const REG_STATUS_C: u8 = 0x0c;
const REG_STATUS_D: u8 = 0x0d;
const REG_CENTURY: u8 = 0x32;

/// A broken-down UTC time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WallClock {
    /// Full year, e.g. 2026.
    pub year: u32,
    /// 1-12.
    pub month: u32,
    /// 1-31.
    pub day: u32,
    /// 0 = Sunday.
    pub weekday: u32,
    /// 0-23.
    pub hour: u32,
    /// 0-59.
    pub minute: u32,
    /// 0-59.
    pub second: u32,
}

impl WallClock {
    /// The host's current UTC time.
    pub fn now() -> Self {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        Self::from_unix(secs)
    }

    /// Converts seconds since 1970 (UTC) to calendar fields.
    pub fn from_unix(secs: u64) -> Self {
        let days = secs / 86_400;
        let rem = secs % 86_400;
        // Civil-from-days (Howard Hinnant's algorithm), valid for the whole u64 range we use.
        let z = days as i64 + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        Self {
            year: year as u32,
            month: month as u32,
            day: day as u32,
            weekday: ((days + 4) % 7) as u32,
            hour: (rem / 3600) as u32,
            minute: (rem / 60 % 60) as u32,
            second: (rem % 60) as u32,
        }
    }
}

fn bcd(v: u32) -> u8 {
    (((v / 10) % 10) << 4 | (v % 10)) as u8
}

/// The RTC and its 128 bytes of CMOS memory.
pub struct Cmos {
    index: u8,
    ram: [u8; 128],
    clock: Box<dyn Fn() -> WallClock + Send>,
}

impl std::fmt::Debug for Cmos {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cmos")
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

impl Cmos {
    /// A CMOS whose clock reads the host's time.
    pub fn new() -> Self {
        Self::with_clock(Box::new(WallClock::now))
    }

    /// A CMOS whose clock is `clock` (for tests).
    pub fn with_clock(clock: Box<dyn Fn() -> WallClock + Send>) -> Self {
        let mut ram = [0u8; 128];
        ram[usize::from(REG_STATUS_A)] = 0x26; // 32.768 kHz base, 1024 Hz rate
        ram[usize::from(REG_STATUS_B)] = 0x02; // 24-hour, BCD
        ram[usize::from(REG_STATUS_D)] = 0x80; // battery good
        Self {
            index: 0,
            ram,
            clock,
        }
    }

    /// Fills the NVRAM bytes where PC firmware reads the memory size (as QEMU's pc machine
    /// does): base and extended memory in KiB, RAM from 16 MiB to the 32-bit hole and RAM
    /// above 4 GiB in 64 KiB units; `low` is the RAM below the hole, `high` above 4 GiB.
    pub fn set_memory(&mut self, low: u64, high: u64, cpus: u8) {
        let mut put16 = |reg: usize, v: u64| {
            let v = v.min(0xffff) as u16;
            self.ram[reg..reg + 2].copy_from_slice(&v.to_le_bytes());
        };
        put16(0x15, 640);
        let extended_kib = (low.min(64 << 20).saturating_sub(1 << 20)) >> 10;
        put16(0x17, extended_kib);
        put16(0x30, extended_kib);
        put16(0x34, low.saturating_sub(16 << 20) >> 16);
        let high_64k = (high >> 16).min(0xff_ffff) as u32;
        self.ram[0x5b..0x5e].copy_from_slice(&high_64k.to_le_bytes()[..3]);
        self.ram[0x5f] = cpus.saturating_sub(1);
    }

    fn register(&mut self, reg: u8) -> u8 {
        let now = || (self.clock)();
        match reg {
            REG_SECONDS => bcd(now().second),
            REG_MINUTES => bcd(now().minute),
            REG_HOURS => bcd(now().hour),
            REG_WEEKDAY => bcd(now().weekday + 1),
            REG_DAY => bcd(now().day),
            REG_MONTH => bcd(now().month),
            REG_YEAR => bcd(now().year % 100),
            REG_CENTURY => bcd(now().year / 100),
            REG_STATUS_C => {
                // Reading C acknowledges pending interrupt flags.
                std::mem::take(&mut self.ram[usize::from(REG_STATUS_C)])
            }
            r => self.ram[usize::from(r & 0x7f)],
        }
    }
}

impl Default for Cmos {
    fn default() -> Self {
        Self::new()
    }
}

impl BusDevice for Cmos {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        match (offset, data) {
            (0, [b]) => *b = self.index,
            (1, [b]) => *b = self.register(self.index & 0x7f),
            (_, data) => data.fill(0xff),
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        match (offset, data) {
            // Bit 7 of the index port masks NMIs; we keep only the register number.
            (0, [b]) => self.index = b & 0x7f,
            (1, [b]) => {
                let reg = self.index & 0x7f;
                // The clock itself follows the host; status and NVRAM bytes are stored.
                if !matches!(
                    reg,
                    REG_SECONDS | REG_MINUTES | REG_HOURS | REG_STATUS_C | REG_STATUS_D
                ) {
                    self.ram[usize::from(reg)] = *b;
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_reg(c: &mut Cmos, reg: u8) -> u8 {
        c.write(0, &[reg | 0x80]);
        let mut b = [0u8];
        c.read(1, &mut b);
        b[0]
    }

    #[test]
    fn unix_time_converts_to_calendar() {
        // 2026-11-26 18:58:49 UTC, a Thursday.
        let t = WallClock::from_unix(1_795_719_529);
        assert_eq!((t.year, t.month, t.day), (2026, 11, 26));
        assert_eq!((t.hour, t.minute, t.second, t.weekday), (18, 58, 49, 4));
        let leap = WallClock::from_unix(951_782_400); // 2000-02-29
        assert_eq!((leap.year, leap.month, leap.day), (2000, 2, 29));
    }

    #[test]
    fn clock_registers_are_bcd() {
        let mut c = Cmos::with_clock(Box::new(|| WallClock::from_unix(1_795_719_529)));
        assert_eq!(read_reg(&mut c, REG_SECONDS), 0x49);
        assert_eq!(read_reg(&mut c, REG_HOURS), 0x18);
        assert_eq!(read_reg(&mut c, REG_DAY), 0x26);
        assert_eq!(read_reg(&mut c, REG_MONTH), 0x11);
        assert_eq!(read_reg(&mut c, REG_YEAR), 0x26);
        assert_eq!(read_reg(&mut c, REG_CENTURY), 0x20);
        assert_eq!(read_reg(&mut c, REG_STATUS_B), 0x02);
        assert_eq!(read_reg(&mut c, REG_STATUS_D), 0x80);
    }

    #[test]
    fn memory_size_bytes_say_what_firmware_reads() {
        let mut c = Cmos::new();
        c.set_memory(3 << 30, 1 << 30, 4);
        let word =
            |c: &mut Cmos, r: u8| u16::from(read_reg(c, r)) | (u16::from(read_reg(c, r + 1)) << 8);
        assert_eq!(word(&mut c, 0x15), 640);
        assert_eq!(word(&mut c, 0x30), 63 * 1024, "1 MiB to 64 MiB, in KiB");
        assert_eq!(word(&mut c, 0x34), 0xbf00, "16 MiB to 3 GiB, in 64 KiB");
        let high = u32::from(read_reg(&mut c, 0x5b))
            | (u32::from(read_reg(&mut c, 0x5c)) << 8)
            | (u32::from(read_reg(&mut c, 0x5d)) << 16);
        assert_eq!(high, (1 << 30) >> 16);
        assert_eq!(read_reg(&mut c, 0x5f), 3);
    }

    #[test]
    fn nvram_bytes_are_kept() {
        let mut c = Cmos::new();
        c.write(0, &[0x40]);
        c.write(1, &[0xab]);
        assert_eq!(read_reg(&mut c, 0x40), 0xab);
    }
}
