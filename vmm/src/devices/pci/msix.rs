//! MSI-X: the per-vector message table and pending-bit array a device exposes in a BAR,
//! and the capability that enables it. Raising a vector sends its message (address and
//! data) to the interrupt controller unless it is masked, in which case it waits as a
//! pending bit and goes out when the guest unmasks it.
//!
//! Where the hypervisor offers interrupt lines (KVM: an irqfd per vector on a GSI whose
//! route carries the vector's message), [`VectorRoutes`] keeps each route in step with the
//! table, and raising a vector is one EventFd write, which another process (a vhost-user
//! backend) can also do directly. A masked vector's line is detached; KVM delivers what
//! arrived meanwhile when it is attached again.

#![allow(
    clippy::cast_possible_truncation,
    reason = "vector counts are at most 2048 and table offsets are bounded by the BAR"
)]

use std::sync::Arc;

/// Bytes per table entry.
pub const ENTRY_SIZE: u64 = 16;
/// Message-control bit: MSI-X is enabled.
pub const CONTROL_ENABLE: u16 = 1 << 15;
/// Message-control bit: all vectors masked.
pub const CONTROL_FUNCTION_MASK: u16 = 1 << 14;
/// "No vector" in virtio's vector registers.
pub const NO_VECTOR: u16 = 0xffff;

/// Where MSI messages go (KVM in the VMM; a recorder in tests).
pub trait MsiSink: Send + Sync {
    /// Delivers one message.
    fn deliver(&self, address: u64, data: u32);
}

/// Interrupt lines, one per vector, that the hypervisor delivers by itself.
pub trait VectorRoutes: Send {
    /// The EventFd that raises `vector`.
    fn event(&self, vector: usize) -> Option<&vmm_sys_util::eventfd::EventFd>;
    /// Points `vector`'s line at `address`/`data`, attached when `deliverable`.
    fn update(&mut self, vector: usize, address: u64, data: u32, deliverable: bool);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    address: u64,
    data: u32,
    masked: bool,
}

impl Entry {
    /// The 16 bytes the guest sees: address, data, vector control (bit 0 = masked).
    fn to_bytes(self) -> [u8; 16] {
        let mut raw = [0u8; 16];
        raw[0..8].copy_from_slice(&self.address.to_le_bytes());
        raw[8..12].copy_from_slice(&self.data.to_le_bytes());
        raw[12] = u8::from(self.masked);
        raw
    }

    fn from_bytes(raw: &[u8; 16]) -> Self {
        Self {
            address: u64::from_le_bytes(raw[0..8].try_into().unwrap_or_default()),
            data: u32::from_le_bytes(raw[8..12].try_into().unwrap_or_default()),
            masked: raw[12] & 1 != 0,
        }
    }
}

/// A device's MSI-X state.
pub struct Msix {
    entries: Vec<Entry>,
    pending: Vec<bool>,
    enabled: bool,
    function_masked: bool,
    sink: Arc<dyn MsiSink>,
    routes: Option<Box<dyn VectorRoutes>>,
}

impl std::fmt::Debug for Msix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Msix")
            .field("vectors", &self.entries.len())
            .field("enabled", &self.enabled)
            .finish_non_exhaustive()
    }
}

impl Msix {
    /// `vectors` entries, all masked, delivering to `sink`.
    pub fn new(vectors: u16, sink: Arc<dyn MsiSink>) -> Self {
        let n = usize::from(vectors);
        Self {
            entries: vec![
                Entry {
                    address: 0,
                    data: 0,
                    masked: true
                };
                n
            ],
            pending: vec![false; n],
            enabled: false,
            function_masked: false,
            sink,
            routes: None,
        }
    }

    /// Delivers through `routes` from now on (set before the guest runs).
    pub fn set_routes(&mut self, routes: Box<dyn VectorRoutes>) {
        self.routes = Some(routes);
        self.sync_routes();
    }

    /// The EventFd that raises `vector` without going through this object, if the
    /// platform has interrupt lines.
    pub fn vector_event(&self, vector: u16) -> Option<vmm_sys_util::eventfd::EventFd> {
        self.routes
            .as_ref()?
            .event(usize::from(vector))?
            .try_clone()
            .ok()
    }

    fn sync_routes(&mut self) {
        let states: Vec<(u64, u32, bool)> = (0..self.entries.len())
            .map(|v| {
                let e = self.entries[v];
                (e.address, e.data, self.deliverable(v))
            })
            .collect();
        if let Some(routes) = self.routes.as_mut() {
            for (v, (address, data, deliverable)) in states.into_iter().enumerate() {
                routes.update(v, address, data, deliverable);
            }
        }
    }

    /// The capability bytes (ID 0x11) for a table at `table_offset` and PBA at
    /// `pba_offset`, both in `bar`, and which bytes the guest may write.
    pub fn capability(&self, bar: u8, table_offset: u32, pba_offset: u32) -> (Vec<u8>, Vec<u8>) {
        let mut c = vec![0x11, 0];
        c.extend_from_slice(&(self.entries.len() as u16 - 1).to_le_bytes());
        c.extend_from_slice(&(table_offset | u32::from(bar)).to_le_bytes());
        c.extend_from_slice(&(pba_offset | u32::from(bar)).to_le_bytes());
        let mut w = vec![0u8; c.len()];
        w[3] = 0xc0; // enable and function mask
        (c, w)
    }

    /// Follows the guest's writes to the capability's message-control word.
    pub fn set_control(&mut self, control: u16) {
        self.enabled = control & CONTROL_ENABLE != 0;
        self.function_masked = control & CONTROL_FUNCTION_MASK != 0;
        self.sync_routes();
        self.flush_pending();
    }

    /// Whether MSI-X is on.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    fn deliverable(&self, v: usize) -> bool {
        self.enabled && !self.function_masked && !self.entries[v].masked
    }

    fn flush_pending(&mut self) {
        for v in 0..self.entries.len() {
            if self.pending[v] && self.deliverable(v) {
                self.pending[v] = false;
                self.sink
                    .deliver(self.entries[v].address, self.entries[v].data);
            }
        }
    }

    /// Raises `vector` (ignored if out of range or [`NO_VECTOR`]).
    pub fn trigger(&mut self, vector: u16) {
        let v = usize::from(vector);
        if v >= self.entries.len() {
            return;
        }
        if let Some(event) = self.routes.as_ref().and_then(|r| r.event(v)) {
            // The hypervisor delivers it, now or when the vector is unmasked.
            let _ = event.write(1);
            return;
        }
        if self.deliverable(v) {
            self.sink
                .deliver(self.entries[v].address, self.entries[v].data);
        } else {
            self.pending[v] = true;
        }
    }

    /// A read in the table.
    pub fn read_table(&self, offset: u64, data: &mut [u8]) {
        let Some(e) = self.entries.get((offset / ENTRY_SIZE) as usize) else {
            data.fill(0);
            return;
        };
        let raw = e.to_bytes();
        let start = (offset % ENTRY_SIZE) as usize;
        for (i, b) in data.iter_mut().enumerate() {
            *b = raw.get(start + i).copied().unwrap_or(0);
        }
    }

    /// A write in the table.
    pub fn write_table(&mut self, offset: u64, data: &[u8]) {
        let index = (offset / ENTRY_SIZE) as usize;
        let Some(e) = self.entries.get(index).copied() else {
            return;
        };
        let mut raw = e.to_bytes();
        let start = (offset % ENTRY_SIZE) as usize;
        for (i, b) in data.iter().enumerate() {
            if let Some(slot) = raw.get_mut(start + i) {
                *slot = *b;
            }
        }
        let updated = Entry::from_bytes(&raw);
        self.entries[index] = updated;
        if updated != e {
            let deliverable = self.deliverable(index);
            if let Some(routes) = self.routes.as_mut() {
                routes.update(index, updated.address, updated.data, deliverable);
            }
        }
        self.flush_pending();
    }

    /// A read in the pending-bit array.
    pub fn read_pba(&self, offset: u64, data: &mut [u8]) {
        for (i, b) in data.iter_mut().enumerate() {
            let first = (offset as usize + i) * 8;
            *b = (0..8).fold(0u8, |acc, bit| {
                acc | (u8::from(self.pending.get(first + bit).copied().unwrap_or(false)) << bit)
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Recorder(Mutex<Vec<(u64, u32)>>);
    impl MsiSink for Recorder {
        fn deliver(&self, address: u64, data: u32) {
            self.0.lock().unwrap().push((address, data));
        }
    }

    fn program(m: &mut Msix, v: u64, addr: u64, data: u32, masked: bool) {
        m.write_table(v * 16, &addr.to_le_bytes());
        m.write_table(v * 16 + 8, &data.to_le_bytes());
        m.write_table(v * 16 + 12, &u32::from(masked).to_le_bytes());
    }

    #[test]
    fn unmasked_vector_delivers_its_message() {
        let rec = Arc::new(Recorder::default());
        let mut m = Msix::new(2, rec.clone());
        program(&mut m, 1, 0xfee0_0000, 0x41, false);
        m.set_control(CONTROL_ENABLE);
        m.trigger(1);
        assert_eq!(*rec.0.lock().unwrap(), vec![(0xfee0_0000, 0x41)]);
        m.trigger(7);
        m.trigger(NO_VECTOR);
        assert_eq!(rec.0.lock().unwrap().len(), 1);
    }

    #[test]
    fn masked_vector_pends_and_fires_on_unmask() {
        let rec = Arc::new(Recorder::default());
        let mut m = Msix::new(2, rec.clone());
        m.set_control(CONTROL_ENABLE);
        program(&mut m, 0, 0xfee0_0000, 0x30, true);
        m.trigger(0);
        assert!(rec.0.lock().unwrap().is_empty());
        let mut pba = [0u8];
        m.read_pba(0, &mut pba);
        assert_eq!(pba, [1]);
        m.write_table(12, &0u32.to_le_bytes());
        assert_eq!(*rec.0.lock().unwrap(), vec![(0xfee0_0000, 0x30)]);
        m.read_pba(0, &mut pba);
        assert_eq!(pba, [0]);
    }

    #[test]
    fn disabled_or_function_masked_msix_holds_messages() {
        let rec = Arc::new(Recorder::default());
        let mut m = Msix::new(1, rec.clone());
        program(&mut m, 0, 0xfee0_0000, 0x22, false);
        m.trigger(0);
        m.set_control(CONTROL_ENABLE | CONTROL_FUNCTION_MASK);
        assert!(rec.0.lock().unwrap().is_empty());
        m.set_control(CONTROL_ENABLE);
        assert_eq!(rec.0.lock().unwrap().len(), 1);
    }

    /// (vector, address, data, attached) of each route update.
    type RouteLog = Arc<Mutex<Vec<(usize, u64, u32, bool)>>>;

    #[derive(Default)]
    struct Lines {
        events: Vec<vmm_sys_util::eventfd::EventFd>,
        log: RouteLog,
    }
    impl VectorRoutes for Lines {
        fn event(&self, v: usize) -> Option<&vmm_sys_util::eventfd::EventFd> {
            self.events.get(v)
        }
        fn update(&mut self, v: usize, address: u64, data: u32, deliverable: bool) {
            self.log
                .lock()
                .unwrap()
                .push((v, address, data, deliverable));
        }
    }

    #[test]
    fn routes_follow_the_table_and_triggers_use_the_lines() {
        use vmm_sys_util::eventfd::EventFd;
        let rec = Arc::new(Recorder::default());
        let mut m = Msix::new(2, rec.clone());
        let log = Arc::new(Mutex::new(Vec::new()));
        m.set_routes(Box::new(Lines {
            events: (0..2)
                .map(|_| EventFd::new(libc::EFD_NONBLOCK).unwrap())
                .collect(),
            log: log.clone(),
        }));
        log.lock().unwrap().clear();
        program(&mut m, 1, 0xfee0_0000, 0x41, false);
        m.set_control(CONTROL_ENABLE);
        let last = *log.lock().unwrap().last().unwrap();
        assert_eq!(last, (1, 0xfee0_0000, 0x41, true), "enabled: attached");
        m.write_table(16 + 12, &1u32.to_le_bytes());
        let last = *log.lock().unwrap().last().unwrap();
        assert_eq!(last, (1, 0xfee0_0000, 0x41, false), "masked: detached");
        m.trigger(1);
        assert!(rec.0.lock().unwrap().is_empty(), "lines, not messages");
        assert_eq!(m.vector_event(1).unwrap().read().unwrap(), 1);
        assert!(m.vector_event(5).is_none());
    }

    #[test]
    fn table_reads_back_what_was_written() {
        let mut m = Msix::new(1, Arc::new(Recorder::default()));
        program(&mut m, 0, 0xfee0_1000, 0x1234, false);
        let mut b = [0u8; 16];
        m.read_table(0, &mut b);
        assert_eq!(u64::from_le_bytes(b[0..8].try_into().unwrap()), 0xfee0_1000);
        assert_eq!(u32::from_le_bytes(b[8..12].try_into().unwrap()), 0x1234);
        assert_eq!(b[12], 0);
    }
}
