//! CPUID as each vCPU should see it: the host features KVM can virtualise (KVM's
//! supported list), with a topology that matches the vCPU count, the vCPU's own APIC ID,
//! and the hypervisor bit set so that guests know to use paravirtual clocks.

use kvm_bindings::{kvm_cpuid_entry2, CpuId};

const LEAF_FEATURES: u32 = 0x1;
const LEAF_CACHE_PARAMS: u32 = 0x4;
const LEAF_TOPOLOGY: u32 = 0xb;
const LEAF_TOPOLOGY_V2: u32 = 0x1f;
const LEAF_AMD_ADDR_SIZES: u32 = 0x8000_0008;
const LEAF_AMD_EXT_APIC_ID: u32 = 0x8000_001e;

const ECX_HYPERVISOR: u32 = 1 << 31;
const EDX_HTT: u32 = 1 << 28;
const TOPO_LEVEL_SMT: u32 = 1;
const TOPO_LEVEL_CORE: u32 = 2;

/// Where a vCPU sits: its APIC ID and how many vCPUs share its one socket.
#[derive(Debug, Clone, Copy)]
pub struct Topology {
    /// This vCPU's APIC ID (equal to its index).
    pub apic_id: u8,
    /// vCPUs in the VM: one socket, one thread per core.
    pub cpu_count: u8,
}

impl Topology {
    /// Bits of the APIC ID that number cores in the package.
    fn core_id_bits(self) -> u32 {
        u32::from(self.cpu_count.max(1))
            .next_power_of_two()
            .trailing_zeros()
    }
}

/// Rewrites `cpuid` (KVM's supported list) for one vCPU.
pub fn filter(cpuid: &mut CpuId, topo: Topology) {
    for entry in cpuid.as_mut_slice() {
        adjust_entry(entry, topo);
    }
}

fn adjust_entry(entry: &mut kvm_cpuid_entry2, topo: Topology) {
    let apic = u32::from(topo.apic_id);
    let count = u32::from(topo.cpu_count.max(1));
    match entry.function {
        LEAF_FEATURES => {
            // EBX: [31:24] initial APIC ID, [23:16] logical processors, [15:8] CLFLUSH
            // line size in 8-byte units (64 bytes).
            entry.ebx = (apic << 24) | (count << 16) | (8 << 8) | (entry.ebx & 0xff);
            entry.ecx |= ECX_HYPERVISOR;
            if count > 1 {
                entry.edx |= EDX_HTT;
            } else {
                entry.edx &= !EDX_HTT;
            }
        }
        LEAF_CACHE_PARAMS => {
            // EAX [31:26]: cores per package - 1; [25:14]: threads sharing this cache - 1.
            let level = (entry.eax >> 5) & 0x7;
            let sharing = if level >= 3 { count - 1 } else { 0 };
            entry.eax = (entry.eax & 0x3fff) | ((count - 1) << 26) | (sharing << 14);
        }
        LEAF_TOPOLOGY | LEAF_TOPOLOGY_V2 => {
            entry.edx = apic;
            match entry.index {
                0 => {
                    entry.eax = 0;
                    entry.ebx = 1;
                    entry.ecx = (TOPO_LEVEL_SMT << 8) | entry.index;
                }
                1 => {
                    entry.eax = topo.core_id_bits();
                    entry.ebx = count;
                    entry.ecx = (TOPO_LEVEL_CORE << 8) | entry.index;
                }
                _ => {
                    entry.eax = 0;
                    entry.ebx = 0;
                    entry.ecx = entry.index;
                }
            }
        }
        LEAF_AMD_ADDR_SIZES => {
            // ECX: [15:12] APIC ID size, [7:0] cores - 1.
            entry.ecx = (topo.core_id_bits() << 12) | (count - 1);
        }
        LEAF_AMD_EXT_APIC_ID => {
            entry.eax = apic;
            entry.ebx &= !0xff;
            entry.ecx &= !0x7ff;
        }
        _ => {}
    }
}

/// Physical address bits the guest's CPU reports (CPUID 0x8000_0008 EAX[7:0]); 36 when the
/// leaf is missing, as the architecture defines.
pub fn phys_bits(cpuid: &CpuId) -> u8 {
    cpuid
        .as_slice()
        .iter()
        .find(|e| e.function == LEAF_AMD_ADDR_SIZES)
        .map_or(36, |e| (e.eax & 0xff) as u8)
}

/// The physical address width the distribution's OVMF trusts and uses for its 64-bit PCI
/// aperture (PlatformInitLib's `PlatformAddressWidthFromCpuid`, with QEMU's quirk rules):
/// CPUID's width if it is 41 or more, or 36/39 on Intel, or 40 on AMD (other small values
/// may be QEMU's made-up default); capped at 47, and at 40 without 1 GiB pages. `None`
/// where OVMF would not trust it.
pub fn firmware_phys_bits(cpuid: &CpuId) -> Option<u8> {
    let leaf = |f: u32| {
        cpuid
            .as_slice()
            .iter()
            .find(|e| e.function == f && e.index == 0)
    };
    let vendor = leaf(0).map(|e| {
        let mut v = [0u8; 12];
        v[0..4].copy_from_slice(&e.ebx.to_le_bytes());
        v[4..8].copy_from_slice(&e.edx.to_le_bytes());
        v[8..12].copy_from_slice(&e.ecx.to_le_bytes());
        v
    });
    let bits = phys_bits(cpuid);
    let valid = bits >= 41
        || (vendor == Some(*b"GenuineIntel") && matches!(bits, 36 | 39))
        || (vendor == Some(*b"AuthenticAMD") && bits == 40);
    if !valid {
        return None;
    }
    let page_1g = leaf(0x8000_0001).is_some_and(|e| e.edx & (1 << 26) != 0);
    let bits = bits.min(47);
    Some(if page_1g { bits } else { bits.min(40) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vendor_leaf(name: &[u8; 12]) -> kvm_cpuid_entry2 {
        let word = |i: usize| u32::from_le_bytes([name[i], name[i + 1], name[i + 2], name[i + 3]]);
        kvm_cpuid_entry2 {
            function: 0,
            ebx: word(0),
            edx: word(4),
            ecx: word(8),
            ..Default::default()
        }
    }

    fn cpu(vendor: &[u8; 12], bits: u32, page_1g: bool) -> CpuId {
        let leaves = [
            vendor_leaf(vendor),
            kvm_cpuid_entry2 {
                function: 0x8000_0001,
                edx: if page_1g { 1 << 26 } else { 0 },
                ..Default::default()
            },
            kvm_cpuid_entry2 {
                function: LEAF_AMD_ADDR_SIZES,
                eax: bits,
                ..Default::default()
            },
        ];
        CpuId::from_entries(&leaves).expect("three leaves")
    }

    #[test]
    fn firmware_trusts_the_widths_ovmf_trusts() {
        assert_eq!(
            firmware_phys_bits(&cpu(b"AuthenticAMD", 40, true)),
            Some(40)
        );
        assert_eq!(firmware_phys_bits(&cpu(b"AuthenticAMD", 39, true)), None);
        assert_eq!(
            firmware_phys_bits(&cpu(b"GenuineIntel", 39, true)),
            Some(39)
        );
        assert_eq!(firmware_phys_bits(&cpu(b"GenuineIntel", 40, true)), None);
        assert_eq!(
            firmware_phys_bits(&cpu(b"GenuineIntel", 46, true)),
            Some(46)
        );
        assert_eq!(
            firmware_phys_bits(&cpu(b"GenuineIntel", 52, true)),
            Some(47)
        );
        assert_eq!(
            firmware_phys_bits(&cpu(b"AuthenticAMD", 48, false)),
            Some(40)
        );
    }

    fn entry(function: u32, index: u32) -> kvm_cpuid_entry2 {
        kvm_cpuid_entry2 {
            function,
            index,
            eax: 0xffff_ffff,
            ebx: 0xffff_ffff,
            ecx: 0,
            edx: 0,
            ..Default::default()
        }
    }

    fn filtered(topo: Topology) -> Vec<kvm_cpuid_entry2> {
        let mut cpuid = CpuId::from_entries(&[
            entry(1, 0),
            entry(4, 0),
            kvm_cpuid_entry2 {
                function: 4,
                index: 3,
                eax: 3 << 5,
                ..Default::default()
            },
            entry(0xb, 0),
            entry(0xb, 1),
            entry(0x8000_0008, 0),
            entry(0x4000_0000, 0),
        ])
        .expect("few entries");
        filter(&mut cpuid, topo);
        cpuid.as_slice().to_vec()
    }

    #[test]
    fn leaf1_carries_apic_id_count_and_hypervisor_bit() {
        let e = filtered(Topology {
            apic_id: 3,
            cpu_count: 4,
        });
        assert_eq!(e[0].ebx >> 24, 3);
        assert_eq!((e[0].ebx >> 16) & 0xff, 4);
        assert_ne!(e[0].ecx & ECX_HYPERVISOR, 0);
        assert_ne!(e[0].edx & EDX_HTT, 0);
    }

    #[test]
    fn single_cpu_has_no_htt() {
        let e = filtered(Topology {
            apic_id: 0,
            cpu_count: 1,
        });
        assert_eq!(e[0].edx & EDX_HTT, 0);
        assert_eq!(e[1].eax >> 26, 0);
    }

    #[test]
    fn topology_leaf_describes_one_socket_of_n_cores() {
        let e = filtered(Topology {
            apic_id: 2,
            cpu_count: 3,
        });
        let (smt, core) = (&e[3], &e[4]);
        assert_eq!((smt.eax, smt.ebx, smt.ecx >> 8, smt.edx), (0, 1, 1, 2));
        assert_eq!((core.eax, core.ebx, core.ecx >> 8, core.edx), (2, 3, 2, 2));
        // Leaf 4: cores per package, and the L3 is shared by all of them.
        assert_eq!(e[1].eax >> 26, 2);
        assert_eq!((e[2].eax >> 14) & 0xfff, 2);
        assert_eq!(e[5].ecx, (2 << 12) | 2);
    }

    #[test]
    fn unrelated_leaves_are_untouched() {
        let e = filtered(Topology {
            apic_id: 1,
            cpu_count: 2,
        });
        assert_eq!(e[6].eax, 0xffff_ffff);
    }
}
