//! KVM interrupt routing for MSI-X: each vector gets a GSI whose route carries the
//! vector's message and an irqfd that raises it, so a device (or a vhost-user backend in
//! another process) interrupts the guest with one EventFd write, without a system call
//! into the VMM's MSI path. KVM's routing table is replaced as a whole, so ours always
//! holds the default legacy routes (PIC and IOAPIC pins for GSIs 0 to 23) that the serial
//! port's irqfd relies on, plus one MSI route per programmed vector.

#![allow(
    clippy::cast_possible_truncation,
    reason = "MSI addresses are split into their 32-bit halves on purpose"
)]

use crate::devices::bus::lock;
use crate::devices::pci::msix::VectorRoutes;
use kvm_bindings::{
    kvm_irq_routing_entry, KvmIrqRouting, KVM_IRQCHIP_IOAPIC, KVM_IRQCHIP_PIC_MASTER,
    KVM_IRQCHIP_PIC_SLAVE, KVM_IRQ_ROUTING_IRQCHIP, KVM_IRQ_ROUTING_MSI,
};
use kvm_ioctls::VmFd;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use vmm_sys_util::eventfd::EventFd;

/// GSIs below this are the IOAPIC's pins.
const LEGACY_GSIS: u32 = 24;
/// KVM's limit on routing entries.
const MAX_ROUTES: u32 = 4096;

/// Why interrupt lines could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum RoutingError {
    /// Out of GSIs.
    #[error("The VM has no interrupt routes left for another device.")]
    Exhausted,
    /// An EventFd could not be made.
    #[error("Cannot create an interrupt line: {0}.")]
    Event(#[source] std::io::Error),
}

/// The VM's routing table.
#[derive(Debug)]
pub struct GsiRouter {
    vm: Arc<VmFd>,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    msi: BTreeMap<u32, (u64, u32)>,
    next_gsi: u32,
}

fn irqchip_entry(gsi: u32, chip: u32, pin: u32) -> kvm_irq_routing_entry {
    let mut e = kvm_irq_routing_entry {
        gsi,
        type_: KVM_IRQ_ROUTING_IRQCHIP,
        ..Default::default()
    };
    e.u.irqchip.irqchip = chip;
    e.u.irqchip.pin = pin;
    e
}

fn msi_entry(gsi: u32, address: u64, data: u32) -> kvm_irq_routing_entry {
    let mut e = kvm_irq_routing_entry {
        gsi,
        type_: KVM_IRQ_ROUTING_MSI,
        ..Default::default()
    };
    e.u.msi.address_lo = address as u32;
    e.u.msi.address_hi = (address >> 32) as u32;
    e.u.msi.data = data;
    e
}

/// KVM's default x86 routes: GSIs 0-15 reach the PICs and the IOAPIC, 16-23 the IOAPIC.
fn legacy_entries() -> Vec<kvm_irq_routing_entry> {
    let mut v = Vec::new();
    for gsi in 0..LEGACY_GSIS {
        if gsi < 16 {
            let chip = if gsi < 8 {
                KVM_IRQCHIP_PIC_MASTER
            } else {
                KVM_IRQCHIP_PIC_SLAVE
            };
            v.push(irqchip_entry(gsi, chip, gsi % 8));
        }
        v.push(irqchip_entry(gsi, KVM_IRQCHIP_IOAPIC, gsi));
    }
    v
}

impl GsiRouter {
    /// The router of `vm` (one per VM).
    pub fn new(vm: Arc<VmFd>) -> Arc<Self> {
        Arc::new(Self {
            vm,
            state: Mutex::new(State {
                msi: BTreeMap::new(),
                next_gsi: LEGACY_GSIS,
            }),
        })
    }

    /// `count` interrupt lines for one device's vectors.
    pub fn lines(self: &Arc<Self>, count: usize) -> Result<KvmLines, RoutingError> {
        let mut state = lock(&self.state);
        let first = state.next_gsi;
        let end = u32::try_from(count)
            .ok()
            .and_then(|n| first.checked_add(n))
            .filter(|end| *end <= MAX_ROUTES)
            .ok_or(RoutingError::Exhausted)?;
        state.next_gsi = end;
        drop(state);
        let events = (0..count)
            .map(|_| EventFd::new(libc::EFD_NONBLOCK))
            .collect::<Result<Vec<_>, _>>()
            .map_err(RoutingError::Event)?;
        Ok(KvmLines {
            router: self.clone(),
            gsis: (first..end).collect(),
            events,
            attached: vec![false; count],
        })
    }

    /// Sets (or with `None`, removes) the MSI route of `gsi` and hands KVM the new table.
    fn set_msi(&self, gsi: u32, message: Option<(u64, u32)>) -> std::io::Result<()> {
        let mut state = lock(&self.state);
        match message {
            Some(m) => state.msi.insert(gsi, m),
            None => state.msi.remove(&gsi),
        };
        let mut entries = legacy_entries();
        entries.extend(state.msi.iter().map(|(g, (a, d))| msi_entry(*g, *a, *d)));
        let mut table =
            KvmIrqRouting::new(0).map_err(|e| std::io::Error::other(format!("{e:?}")))?;
        for e in entries {
            table
                .push(e)
                .map_err(|e| std::io::Error::other(format!("{e:?}")))?;
        }
        self.vm
            .set_gsi_routing(&table)
            .map_err(|e| std::io::Error::from_raw_os_error(e.errno()))
    }
}

/// One device's interrupt lines.
#[derive(Debug)]
pub struct KvmLines {
    router: Arc<GsiRouter>,
    gsis: Vec<u32>,
    events: Vec<EventFd>,
    attached: Vec<bool>,
}

impl VectorRoutes for KvmLines {
    fn event(&self, vector: usize) -> Option<&EventFd> {
        self.events.get(vector)
    }

    fn update(&mut self, vector: usize, address: u64, data: u32, deliverable: bool) {
        let (Some(&gsi), Some(event)) = (self.gsis.get(vector), self.events.get(vector)) else {
            return;
        };
        if deliverable {
            if let Err(e) = self.router.set_msi(gsi, Some((address, data))) {
                log::warn!("cannot route MSI-X vector {vector}: {e}");
                return;
            }
            if !self.attached[vector] {
                // KVM delivers at once if the line was raised while detached.
                match self.router.vm.register_irqfd(event, gsi) {
                    Ok(()) => self.attached[vector] = true,
                    Err(e) => log::warn!("cannot attach MSI-X vector {vector}: {e}"),
                }
            }
        } else if self.attached[vector] {
            // Masked: raises wait in the EventFd until the vector is attached again.
            match self.router.vm.unregister_irqfd(event, gsi) {
                Ok(()) => self.attached[vector] = false,
                Err(e) => log::warn!("cannot detach MSI-X vector {vector}: {e}"),
            }
        }
    }
}

impl Drop for KvmLines {
    fn drop(&mut self) {
        for (i, (&gsi, event)) in self.gsis.iter().zip(&self.events).enumerate() {
            if self.attached[i] {
                let _ = self.router.vm.unregister_irqfd(event, gsi);
            }
            let _ = self.router.set_msi(gsi, None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_routes_match_kvms_defaults() {
        let e = legacy_entries();
        assert_eq!(e.len(), 16 * 2 + 8);
        let pins: Vec<(u32, u32, u32)> = e
            .iter()
            .map(|r| {
                // SAFETY: every legacy entry is an IRQCHIP route, so `irqchip` is the
                // union member that was written.
                let c = unsafe { r.u.irqchip };
                (r.gsi, c.irqchip, c.pin)
            })
            .collect();
        assert!(
            pins.contains(&(4, KVM_IRQCHIP_PIC_MASTER, 4)),
            "serial: PIC"
        );
        assert!(pins.contains(&(4, KVM_IRQCHIP_IOAPIC, 4)), "serial: IOAPIC");
        assert!(
            pins.contains(&(9, KVM_IRQCHIP_PIC_SLAVE, 1)),
            "SCI: slave PIC"
        );
        assert!(pins.contains(&(23, KVM_IRQCHIP_IOAPIC, 23)));
        assert!(!pins.iter().any(|p| p.0 >= 16 && p.1 != KVM_IRQCHIP_IOAPIC));
    }

    #[test]
    fn msi_entries_split_the_address() {
        let e = msi_entry(30, 0x1_fee0_1000, 0x4041);
        // SAFETY: built as an MSI route just above.
        let m = unsafe { e.u.msi };
        assert_eq!(
            (e.gsi, e.type_, m.address_lo, m.address_hi, m.data),
            (30, KVM_IRQ_ROUTING_MSI, 0xfee0_1000, 1, 0x4041)
        );
    }
}
