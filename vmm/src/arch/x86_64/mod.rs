//! Everything that makes an x86-64 guest's first instruction see a sane machine: the
//! address map, boot-time descriptor and page tables, CPUID, MSRs, registers and the
//! ACPI tables that describe the virtual hardware.

pub mod acpi;
pub mod cpuid;
pub mod gdt;
pub mod layout;
pub mod msr;
pub mod paging;
pub mod regs;
