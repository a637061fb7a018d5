//! Register state at a vCPU's first instruction, for each boot protocol, as pure functions
//! of what KVM reports, so that the values can be checked without a VM.

#![allow(
    clippy::cast_possible_truncation,
    reason = "GDT limits and APIC register bytes are small by construction"
)]

use super::gdt::{boot_gdt, segment_from_entry, BootMode};
use super::layout::{BOOT_STACK_ADDR, GDT_ADDR, IDT_ADDR, PML4_ADDR};
use kvm_bindings::{kvm_fpu, kvm_regs, kvm_sregs};

const X86_CR0_PE: u64 = 0x1;
const X86_CR0_ET: u64 = 0x10;
const X86_CR0_PG: u64 = 0x8000_0000;
const X86_CR4_PAE: u64 = 0x20;
const EFER_LME: u64 = 0x100;
const EFER_LMA: u64 = 0x400;

/// Where the boot vCPU starts and what it finds in its registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootEntry {
    /// Linux 64-bit boot protocol: long mode, `rsi` points at the zero page.
    Linux64 { entry: u64, zero_page: u64 },
    /// PVH: 32-bit protected mode, `rbx` points at `hvm_start_info`.
    Pvh { entry: u64, start_info: u64 },
}

impl BootEntry {
    /// The CPU mode the entry runs in.
    pub fn mode(self) -> BootMode {
        match self {
            BootEntry::Linux64 { .. } => BootMode::Long64,
            BootEntry::Pvh { .. } => BootMode::Protected32,
        }
    }
}

/// General-purpose registers for the boot vCPU.
pub fn boot_regs(entry: BootEntry) -> kvm_regs {
    let mut regs = kvm_regs {
        rflags: 0x2,
        ..Default::default()
    };
    match entry {
        BootEntry::Linux64 { entry, zero_page } => {
            regs.rip = entry;
            regs.rsp = BOOT_STACK_ADDR;
            regs.rbp = BOOT_STACK_ADDR;
            regs.rsi = zero_page;
        }
        BootEntry::Pvh { entry, start_info } => {
            regs.rip = entry;
            regs.rbx = start_info;
        }
    }
    regs
}

/// Special registers for the boot vCPU, starting from what KVM reported.
pub fn boot_sregs(mut sregs: kvm_sregs, mode: BootMode) -> kvm_sregs {
    let gdt = boot_gdt(mode);
    let code = segment_from_entry(gdt[2], 2);
    let data = segment_from_entry(gdt[3], 3);
    let tss = segment_from_entry(gdt[4], 4);

    sregs.gdt.base = GDT_ADDR;
    sregs.gdt.limit = (std::mem::size_of_val(&gdt) - 1) as u16;
    sregs.idt.base = IDT_ADDR;
    sregs.idt.limit = 7;
    sregs.cs = code;
    sregs.ds = data;
    sregs.es = data;
    sregs.fs = data;
    sregs.gs = data;
    sregs.ss = data;
    sregs.tr = tss;

    match mode {
        BootMode::Long64 => {
            sregs.cr0 |= X86_CR0_PE | X86_CR0_ET | X86_CR0_PG;
            sregs.cr3 = PML4_ADDR;
            sregs.cr4 |= X86_CR4_PAE;
            sregs.efer |= EFER_LME | EFER_LMA;
        }
        BootMode::Protected32 => {
            sregs.cr0 = X86_CR0_PE | X86_CR0_ET;
            sregs.cr3 = 0;
            sregs.cr4 = 0;
            sregs.efer = 0;
        }
    }
    sregs
}

/// The x87/SSE state of a CPU after `FNINIT` with SSE enabled.
pub fn boot_fpu() -> kvm_fpu {
    kvm_fpu {
        fcw: 0x37f,
        mxcsr: 0x1f80,
        ..Default::default()
    }
}

/// Local APIC register offsets (in the 1 KiB `kvm_lapic_state` page).
const APIC_LVT0: usize = 0x350;
const APIC_LVT1: usize = 0x360;
const APIC_MODE_NMI: u32 = 0x4;
const APIC_MODE_EXTINT: u32 = 0x7;

/// Wires LINT0 to the 8259 (ExtINT) and LINT1 to NMI, as firmware does on a PC.
pub fn set_lint(regs: &mut [std::os::raw::c_char; 1024]) {
    let update = |regs: &mut [std::os::raw::c_char; 1024], offset: usize, mode: u32| {
        let mut bytes = [0u8; 4];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = regs[offset + i] as u8;
        }
        let value = (u32::from_le_bytes(bytes) & !0x700) | (mode << 8);
        for (i, b) in value.to_le_bytes().iter().enumerate() {
            regs[offset + i] = *b as std::os::raw::c_char;
        }
    };
    update(regs, APIC_LVT0, APIC_MODE_EXTINT);
    update(regs, APIC_LVT1, APIC_MODE_NMI);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_mode_sregs_enable_paging_and_lma() {
        let s = boot_sregs(kvm_sregs::default(), BootMode::Long64);
        assert_eq!(s.cr0 & (X86_CR0_PE | X86_CR0_PG), X86_CR0_PE | X86_CR0_PG);
        assert_eq!(s.cr3, PML4_ADDR);
        assert_ne!(s.cr4 & X86_CR4_PAE, 0);
        assert_eq!(s.efer & (EFER_LME | EFER_LMA), EFER_LME | EFER_LMA);
        assert_eq!(
            (s.cs.selector, s.ds.selector, s.tr.selector),
            (0x10, 0x18, 0x20)
        );
        assert_eq!(s.gdt.limit, 39);
    }

    #[test]
    fn pvh_sregs_are_protected_mode_without_paging() {
        let s = boot_sregs(kvm_sregs::default(), BootMode::Protected32);
        assert_eq!(s.cr0, X86_CR0_PE | X86_CR0_ET);
        assert_eq!(s.efer, 0);
        assert_eq!(s.cs.db, 1);
    }

    #[test]
    fn boot_registers_carry_the_protocol_pointer() {
        let linux = boot_regs(BootEntry::Linux64 {
            entry: 0x100200,
            zero_page: 0x7000,
        });
        assert_eq!((linux.rip, linux.rsi, linux.rflags), (0x100200, 0x7000, 2));
        let pvh = boot_regs(BootEntry::Pvh {
            entry: 0x100000,
            start_info: 0x6000,
        });
        assert_eq!((pvh.rip, pvh.rbx), (0x100000, 0x6000));
    }

    #[test]
    fn lint_pins_get_extint_and_nmi() {
        let mut page = [0 as std::os::raw::c_char; 1024];
        page[APIC_LVT0 + 2] = 1; // a masked bit that must survive
        set_lint(&mut page);
        assert_eq!(page[APIC_LVT0 + 1] as u8, 0x07);
        assert_eq!(page[APIC_LVT0 + 2] as u8, 1);
        assert_eq!(page[APIC_LVT1 + 1] as u8, 0x04);
    }
}
