//! ACPI tables that describe our virtual machine to the guest: how many CPUs it has
//! (MADT, so kernels without MP-table support bring the APs up), where the interrupt
//! controllers are, and where the fixed-hardware power-management registers are (FADT,
//! DSDT with `\_S5`), which is how the guest powers off and how the power button reaches it.
//!
//! We use the classic fixed-hardware model (PM1 event/control blocks and a PM timer at
//! I/O ports) rather than the hardware-reduced one: every x86 OS and firmware speaks it.

#![allow(
    clippy::cast_possible_truncation,
    reason = "ACPI fields hold our own small constants (ports, IRQs, 32-bit MMIO addresses)"
)]

use super::layout::{
    ACPI_PM_PORT, ACPI_SCI_IRQ, ACPI_TABLES_START, I8042_PORT, IOAPIC_ADDR, LAPIC_ADDR,
    PCI_CONFIG_PORT, PCI_ECAM_START, PCI_MMIO_END, PCI_MMIO_START,
};
use crate::devices::legacy::fw_cfg::loader::{self, Command, LoaderError, Zone};
use acpi_tables::aml;
use acpi_tables::facs::FACS;
use acpi_tables::fadt::{FADTBuilder, Flags, PmProfile};
use acpi_tables::gas::{AccessSize, AddressSpace, GAS};
use acpi_tables::madt::{
    EnabledStatus, IoApic, LocalInterruptController, ProcessorLocalApic, MADT,
};
use acpi_tables::mcfg::MCFG;
use acpi_tables::rsdp::Rsdp;
use acpi_tables::sdt::Sdt;
use acpi_tables::xsdt::XSDT;
use acpi_tables::Aml;
use std::collections::BTreeMap;
use zerocopy::{Immutable, IntoBytes};

const OEM_ID: [u8; 6] = *b"PHYLLO";
const OEM_TABLE_ID: [u8; 8] = *b"PHYLLOME";
const OEM_REVISION: u32 = 1;

/// Offsets of the registers inside the PM block at [`ACPI_PM_PORT`].
pub const PM1_STATUS_OFFSET: u16 = 0;
/// PM1 enable register offset.
pub const PM1_ENABLE_OFFSET: u16 = 2;
/// PM1 control register offset.
pub const PM1_CONTROL_OFFSET: u16 = 4;
/// PM timer offset (24-bit, 3.579545 MHz).
pub const PM_TIMER_OFFSET: u16 = 8;
/// Length of the whole block.
pub const PM_BLOCK_LEN: u16 = 12;
/// The `SLP_TYPx` value `\_S5` (soft off) advertises.
pub const SLP_TYP_S5: u16 = 5;
/// The value the guest writes to the FADT reset register (an i8042 "pulse reset line").
pub const RESET_VALUE: u8 = 0xfe;
/// The i8042 command port, used as the FADT reset register.
pub const RESET_PORT: u16 = I8042_PORT + 4;

/// MADT interrupt source override (type 2).
#[repr(C, packed)]
#[derive(Clone, Copy, Debug, IntoBytes, Immutable)]
struct InterruptSourceOverride {
    r#type: u8,
    length: u8,
    bus: u8,
    source: u8,
    gsi: u32,
    flags: u16,
}

impl Aml for InterruptSourceOverride {
    fn to_aml_bytes(&self, sink: &mut dyn acpi_tables::AmlSink) {
        sink.vec(self.as_bytes());
    }
}

/// MADT local APIC NMI (type 4).
#[repr(C, packed)]
#[derive(Clone, Copy, Debug, IntoBytes, Immutable)]
struct LocalApicNmi {
    r#type: u8,
    length: u8,
    processor_uid: u8,
    flags: u16,
    lint: u8,
}

impl Aml for LocalApicNmi {
    fn to_aml_bytes(&self, sink: &mut dyn acpi_tables::AmlSink) {
        sink.vec(self.as_bytes());
    }
}

/// The tables, laid out from [`ACPI_TABLES_START`]; the RSDP comes first.
#[derive(Debug)]
pub struct AcpiTables {
    /// Address of the RSDP (what `boot_params.acpi_rsdp_addr` and PVH's `rsdp_paddr` carry).
    pub rsdp_addr: u64,
    /// Each table and where it goes.
    pub blobs: Vec<(u64, Vec<u8>)>,
}

impl AcpiTables {
    /// Total bytes spanned, from the first table to the end of the last.
    pub fn span(&self) -> u64 {
        self.blobs
            .iter()
            .map(|(addr, data)| addr + data.len() as u64)
            .max()
            .unwrap_or(ACPI_TABLES_START)
            - ACPI_TABLES_START
    }
}

fn to_bytes(table: &dyn Aml) -> Vec<u8> {
    let mut bytes = Vec::new();
    table.to_aml_bytes(&mut bytes);
    bytes
}

fn io_gas(port: u16, bytes: u8) -> GAS {
    let access = match bytes {
        1 => AccessSize::ByteAccess,
        2 => AccessSize::WordAccess,
        _ => AccessSize::DwordAccess,
    };
    GAS::new(
        AddressSpace::SystemIo,
        bytes * 8,
        0,
        access,
        u64::from(port),
    )
}

/// The PCI host bridge `\_SB.PCI0`: bus 0, the configuration ports, all other I/O ports,
/// and the MMIO windows where BARs live (32-bit, and `mmio64` above RAM when the CPU has
/// room). Linux scans only the root buses ACPI names, and keeps BARs inside these windows.
fn pci_host_bridge(mmio64: Option<(u64, u64)>) -> Vec<u8> {
    use aml::{AddressSpace, AddressSpaceCacheable, Device, EISAName, Name, ResourceTemplate, IO};
    let bus = AddressSpace::new_bus_number(0u16, 0u16);
    let config_ports = IO::new(PCI_CONFIG_PORT, PCI_CONFIG_PORT, 1, 8);
    let io_low = AddressSpace::new_io(0u16, PCI_CONFIG_PORT - 1, None);
    let io_high = AddressSpace::new_io(PCI_CONFIG_PORT + 8, 0xffffu16, None);
    let window = AddressSpace::new_memory(
        AddressSpaceCacheable::NotCacheable,
        true,
        PCI_MMIO_START as u32,
        (PCI_MMIO_END - 1) as u32,
        None,
    );
    let high = mmio64.map(|(start, size)| {
        AddressSpace::new_memory(
            AddressSpaceCacheable::NotCacheable,
            true,
            start,
            start + size - 1,
            None,
        )
    });
    let mut resources: Vec<&dyn Aml> = vec![&bus, &config_ports, &io_low, &io_high, &window];
    if let Some(h) = &high {
        resources.push(h);
    }
    let crs = ResourceTemplate::new(resources);
    let (hid, cid) = (EISAName::new("PNP0A08"), EISAName::new("PNP0A03"));
    let names = [
        Name::new("_HID".into(), &hid),
        Name::new("_CID".into(), &cid),
        Name::new("_ADR".into(), &0u8),
        Name::new("_SEG".into(), &0u8),
        Name::new("_UID".into(), &0u8),
        Name::new("_BBN".into(), &0u8),
        Name::new("_CRS".into(), &crs),
    ];
    let children: Vec<&dyn Aml> = names.iter().map(|n| n as &dyn Aml).collect();
    let device = Device::new("PCI0".into(), children);
    to_bytes(&aml::Scope::new("\\_SB_".into(), vec![&device]))
}

/// The DSDT: the `\_S5` sleep state (soft-off) and the PCI host bridge.
pub fn dsdt(mmio64: Option<(u64, u64)>) -> Vec<u8> {
    let s5 = aml::Name::new(
        "_S5_".into(),
        &aml::Package::new(vec![&(SLP_TYP_S5 as u8), &(SLP_TYP_S5 as u8), &0u8, &0u8]),
    );
    let mut sdt = Sdt::new(*b"DSDT", 36, 2, OEM_ID, OEM_TABLE_ID, OEM_REVISION);
    sdt.append_slice(&to_bytes(&s5));
    sdt.append_slice(&pci_host_bridge(mmio64));
    sdt.as_slice().to_vec()
}

/// The FADT for our PM block, SCI and reset register.
pub fn fadt(dsdt_addr: u64, facs_addr: u64) -> Vec<u8> {
    let pm = ACPI_PM_PORT;
    let mut f = FADTBuilder::new(OEM_ID, OEM_TABLE_ID, OEM_REVISION)
        .preferred_pm_profile(PmProfile::Desktop)
        .flag(Flags::Wbinvd)
        .flag(Flags::ResetRegSup)
        .flag(Flags::TmrValExt)
        .dsdt_64(dsdt_addr)
        .firmware_ctrl_64(facs_addr);
    f.sci_int = (ACPI_SCI_IRQ as u16).into();
    // No SMI command port: the machine is in ACPI mode from power-on (SCI_EN set).
    f.smi_cmd = 0.into();
    f.pm1a_evt_blk = u32::from(pm + PM1_STATUS_OFFSET).into();
    f.pm1a_cnt_blk = u32::from(pm + PM1_CONTROL_OFFSET).into();
    f.pm_tmr_blk = u32::from(pm + PM_TIMER_OFFSET).into();
    f.pm1_evt_len = 4;
    f.pm1_cnt_len = 2;
    f.pm_tmr_len = 4;
    f.x_pm1a_evt_blk = io_gas(pm + PM1_STATUS_OFFSET, 4);
    f.x_pm1a_cnt_blk = io_gas(pm + PM1_CONTROL_OFFSET, 2);
    f.x_pm_tmr_blk = io_gas(pm + PM_TIMER_OFFSET, 4);
    // CMOS offset of the century register.
    f.century = 0x32;
    // IA-PC boot architecture: an 8042 is present.
    f.iapc_boot_arch = 0x2.into();
    f.reset_reg = io_gas(RESET_PORT, 1);
    f.reset_value = RESET_VALUE;
    to_bytes(&f.finalize())
}

/// The MADT: one local APIC per vCPU, the IOAPIC, the SCI override and LINT1 as NMI.
pub fn madt(cpu_count: u8) -> Vec<u8> {
    let mut madt = MADT::new(
        OEM_ID,
        OEM_TABLE_ID,
        OEM_REVISION,
        LocalInterruptController::Address(LAPIC_ADDR as u32),
    );
    for id in 0..cpu_count {
        madt.add_structure(ProcessorLocalApic::new(id, id, EnabledStatus::Enabled));
    }
    madt.add_structure(IoApic::new(0, IOAPIC_ADDR as u32, 0));
    madt.add_structure(InterruptSourceOverride {
        r#type: 2,
        length: 10,
        bus: 0,
        source: ACPI_SCI_IRQ as u8,
        gsi: ACPI_SCI_IRQ,
        // Active high (0b01), level triggered (0b11 << 2): what KVM's IOAPIC line model wants.
        flags: 0x000d,
    });
    madt.add_structure(LocalApicNmi {
        r#type: 4,
        length: 6,
        processor_uid: 0xff,
        flags: 0,
        lint: 1,
    });
    let mut bytes = to_bytes(&madt);
    // MADT flags: PCAT_COMPAT, dual 8259s are present (KVM's in-kernel PIC).
    bytes[40] |= 1;
    fix_checksum(&mut bytes);
    bytes
}

/// The MCFG: ECAM for PCI segment 0, bus 0.
pub fn mcfg() -> Vec<u8> {
    let mut mcfg = MCFG::new(OEM_ID, OEM_TABLE_ID, OEM_REVISION);
    mcfg.add_ecam(PCI_ECAM_START, 0, 0, 0);
    to_bytes(&mcfg)
}

fn fix_checksum(table: &mut [u8]) {
    table[9] = 0;
    let sum = table.iter().fold(0u8, |acc, b| acc.wrapping_add(*b));
    table[9] = 0u8.wrapping_sub(sum);
}

/// The fw_cfg file holding the RSDP.
pub const RSDP_FILE: &str = "etc/acpi/rsdp";
/// The fw_cfg file holding every other table.
pub const TABLES_FILE: &str = "etc/acpi/tables";

/// The tables as QEMU hands them to firmware: two fw_cfg files whose pointers hold offsets
/// into [`TABLES_FILE`] and whose checksums are zero, and the table-loader script that
/// places them, patches the pointers and sets the checksums.
#[derive(Debug)]
pub struct AcpiFiles {
    /// The RSDP.
    pub rsdp: Vec<u8>,
    /// The XSDT, FACS, DSDT, FADT, MADT and MCFG, one after another.
    pub tables: Vec<u8>,
    /// What the firmware does with them (`etc/table-loader`).
    pub script: Vec<Command>,
    /// Where each table is in `tables` (offset, length), the XSDT first.
    layout: Vec<(usize, usize)>,
}

/// Collects tables into [`TABLES_FILE`] with the loader commands they need.
struct Packer {
    tables: Vec<u8>,
    pointers: Vec<Command>,
    checksums: Vec<Command>,
    layout: Vec<(usize, usize)>,
}

impl Packer {
    /// Appends `table` at the next multiple of `align`; a table with a standard header gets
    /// its checksum zeroed here and set by the loader. Returns its offset.
    fn push(&mut self, mut table: Vec<u8>, align_to: usize, checksummed: bool) -> usize {
        let offset = self.tables.len().div_ceil(align_to) * align_to;
        self.tables.resize(offset, 0);
        if checksummed {
            table[9] = 0;
            self.checksums.push(Command::AddChecksum {
                file: TABLES_FILE.into(),
                result: (offset + 9) as u32,
                start: offset as u32,
                length: table.len() as u32,
            });
        }
        self.layout.push((offset, table.len()));
        self.tables.extend_from_slice(&table);
        offset
    }

    /// The 8-byte field at `at` in `file` points into the tables.
    fn pointer(&mut self, file: &str, at: usize) {
        self.pointers.push(Command::AddPointer {
            dest: file.into(),
            src: TABLES_FILE.into(),
            offset: at as u32,
            size: 8,
        });
    }
}

/// Builds the tables for `cpu_count` vCPUs, as fw_cfg files and their loader script;
/// `mmio64` is the 64-bit PCI window, if the machine has one.
pub fn files(cpu_count: u8, mmio64: Option<(u64, u64)>) -> AcpiFiles {
    let mut p = Packer {
        tables: Vec::new(),
        pointers: Vec::new(),
        checksums: Vec::new(),
        layout: Vec::new(),
    };
    let facs = p.push(to_bytes(&FACS::new()), 64, false);
    let dsdt = p.push(dsdt(mmio64), 16, true);
    let fadt = p.push(fadt(dsdt as u64, facs as u64), 16, true);
    p.pointer(TABLES_FILE, fadt + FADT_X_FIRMWARE_CTRL);
    p.pointer(TABLES_FILE, fadt + FADT_X_DSDT);
    let madt = p.push(madt(cpu_count), 16, true);
    let mcfg = p.push(mcfg(), 16, true);
    let mut xsdt_table = XSDT::new(OEM_ID, OEM_TABLE_ID, OEM_REVISION);
    for table in [fadt, madt, mcfg] {
        xsdt_table.add_entry(table as u64);
    }
    let xsdt = p.push(to_bytes(&xsdt_table), 16, true);
    for i in 0..3 {
        p.pointer(TABLES_FILE, xsdt + 36 + 8 * i);
    }
    // The XSDT leads the layout (the RSDP's target).
    p.layout.rotate_right(1);

    let mut rsdp = to_bytes(&Rsdp::new(OEM_ID, xsdt as u64));
    rsdp[RSDP_CHECKSUM] = 0;
    rsdp[RSDP_EXTENDED_CHECKSUM] = 0;
    p.pointer(RSDP_FILE, RSDP_XSDT_ADDRESS);
    // The first checksum covers the ACPI 1.0 part, the second the whole (including the first).
    for (result, length) in [(RSDP_CHECKSUM, 20), (RSDP_EXTENDED_CHECKSUM, rsdp.len())] {
        p.checksums.push(Command::AddChecksum {
            file: RSDP_FILE.into(),
            result: result as u32,
            start: 0,
            length: length as u32,
        });
    }

    let mut script = vec![
        Command::Allocate {
            file: RSDP_FILE.into(),
            align: 16,
            zone: Zone::FSeg,
        },
        Command::Allocate {
            file: TABLES_FILE.into(),
            align: 64,
            zone: Zone::High,
        },
    ];
    script.append(&mut p.pointers);
    script.append(&mut p.checksums);
    AcpiFiles {
        rsdp,
        tables: p.tables,
        script,
        layout: p.layout,
    }
}

/// FADT field offsets the loader patches.
const FADT_X_FIRMWARE_CTRL: usize = 132;
const FADT_X_DSDT: usize = 140;
/// RSDP field offsets.
const RSDP_CHECKSUM: usize = 8;
const RSDP_XSDT_ADDRESS: usize = 24;
const RSDP_EXTENDED_CHECKSUM: usize = 32;

impl AcpiFiles {
    /// The tables placed as a direct boot needs them: the RSDP at `rsdp_addr` (in the BIOS
    /// area, where Linux looks), the rest right after it, by running the loader script as
    /// the firmware would.
    pub fn placed_at(&self, rsdp_addr: u64) -> Result<AcpiTables, LoaderError> {
        let tables_addr = (rsdp_addr + self.rsdp.len() as u64).div_ceil(64) * 64;
        let mut files = BTreeMap::from([
            (RSDP_FILE.to_owned(), self.rsdp.clone()),
            (TABLES_FILE.to_owned(), self.tables.clone()),
        ]);
        let addresses = BTreeMap::from([
            (RSDP_FILE.to_owned(), rsdp_addr),
            (TABLES_FILE.to_owned(), tables_addr),
        ]);
        loader::apply(&self.script, &mut files, &addresses)?;
        let mut blobs = vec![(rsdp_addr, files.remove(RSDP_FILE).unwrap_or_default())];
        let tables = files.remove(TABLES_FILE).unwrap_or_default();
        for &(offset, len) in &self.layout {
            let bytes = tables.get(offset..offset + len).unwrap_or_default();
            blobs.push((tables_addr + offset as u64, bytes.to_vec()));
        }
        Ok(AcpiTables { rsdp_addr, blobs })
    }
}

/// Builds all tables for `cpu_count` vCPUs at their final addresses for a direct boot;
/// `mmio64` is the 64-bit PCI window, if the machine has one.
pub fn build(cpu_count: u8, mmio64: Option<(u64, u64)>) -> AcpiTables {
    files(cpu_count, mmio64)
        .placed_at(ACPI_TABLES_START)
        .expect("our own loader script places our own tables")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sums_to_zero(bytes: &[u8]) -> bool {
        bytes.iter().fold(0u8, |a, b| a.wrapping_add(*b)) == 0
    }

    fn table<'a>(tables: &'a AcpiTables, sig: &[u8]) -> &'a [u8] {
        &tables
            .blobs
            .iter()
            .find(|(_, b)| &b[..sig.len()] == sig)
            .expect("table present")
            .1
    }

    #[test]
    fn every_table_checksums_and_has_its_length() {
        let tables = build(4, None);
        for (_, bytes) in &tables.blobs {
            if bytes.starts_with(b"RSD PTR ") {
                assert!(sums_to_zero(&bytes[..20]));
                assert!(sums_to_zero(bytes));
            } else if bytes.starts_with(b"FACS") {
                assert_eq!(
                    u32::from_le_bytes(bytes[4..8].try_into().unwrap_or_default()),
                    64
                );
            } else {
                assert!(sums_to_zero(bytes), "{:?}", &bytes[..4]);
                let len = u32::from_le_bytes(bytes[4..8].try_into().unwrap_or_default());
                assert_eq!(len as usize, bytes.len());
            }
        }
    }

    #[test]
    fn tables_do_not_overlap_and_fit_below_1mib() {
        let tables = build(255, None);
        let mut spans: Vec<_> = tables
            .blobs
            .iter()
            .map(|(a, b)| (*a, b.len() as u64))
            .collect();
        spans.sort();
        for w in spans.windows(2) {
            assert!(w[0].0 + w[0].1 <= w[1].0);
        }
        assert!(ACPI_TABLES_START + tables.span() <= 0x10_0000);
    }

    #[test]
    fn madt_has_one_enabled_lapic_per_cpu_and_an_ioapic() {
        let tables = build(3, None);
        let madt = table(&tables, b"APIC");
        assert_eq!(
            u32::from_le_bytes(madt[36..40].try_into().unwrap_or_default()),
            0xfee0_0000
        );
        let mut lapics = Vec::new();
        let mut ioapics = 0;
        let mut isos = Vec::new();
        let mut off = 44;
        while off < madt.len() {
            let (kind, len) = (madt[off], madt[off + 1] as usize);
            match kind {
                0 => lapics.push((madt[off + 2], madt[off + 3], madt[off + 4] & 1)),
                1 => ioapics += 1,
                2 => isos.push((madt[off + 3], madt[off + 4])),
                _ => {}
            }
            off += len;
        }
        assert_eq!(lapics, vec![(0, 0, 1), (1, 1, 1), (2, 2, 1)]);
        assert_eq!(ioapics, 1);
        assert_eq!(isos, vec![(9, 9)]);
    }

    #[test]
    fn fadt_points_at_dsdt_facs_and_pm_block() {
        let tables = build(1, None);
        let fadt = table(&tables, b"FACP");
        let dsdt_addr = tables
            .blobs
            .iter()
            .find(|(_, b)| b.starts_with(b"DSDT"))
            .map(|x| x.0);
        let x_dsdt = u64::from_le_bytes(fadt[140..148].try_into().unwrap_or_default());
        assert_eq!(Some(x_dsdt), dsdt_addr);
        let pm1a_evt = u32::from_le_bytes(fadt[56..60].try_into().unwrap_or_default());
        let pm1a_cnt = u32::from_le_bytes(fadt[64..68].try_into().unwrap_or_default());
        assert_eq!((pm1a_evt, pm1a_cnt), (0xb000, 0xb004));
        assert_eq!(u16::from_le_bytes([fadt[46], fadt[47]]), 9);
        // Reset register: system I/O port 0x64, value 0xfe.
        assert_eq!(fadt[116], 1);
        assert_eq!(
            u64::from_le_bytes(fadt[120..128].try_into().unwrap_or_default()),
            0x64
        );
        assert_eq!(fadt[128], 0xfe);
    }

    #[test]
    fn iasl_reads_mcfg_with_ecam_for_bus_0() {
        let text = iasl_listing("mcfg", &mcfg());
        assert!(!text.contains("Invalid"), "{text}");
        assert!(text.contains("Base Address : 00000000E0000000"), "{text}");
        assert!(text.contains("End Bus Number : 00"), "{text}");
    }

    #[test]
    fn dsdt_defines_s5() {
        let dsdt = dsdt(None);
        assert!(dsdt.windows(4).any(|w| w == b"_S5_"));
    }

    #[test]
    fn rsdp_points_at_xsdt_listing_fadt_and_madt() {
        let tables = build(2, None);
        let rsdp = &tables.blobs[0].1;
        let xsdt_addr = u64::from_le_bytes(rsdp[24..32].try_into().unwrap_or_default());
        let (addr, xsdt) = &tables.blobs[1];
        assert_eq!(*addr, xsdt_addr);
        assert_eq!(&xsdt[..4], b"XSDT");
        let entries: Vec<u64> = xsdt[36..]
            .chunks(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap_or_default()))
            .collect();
        let sig_at = |a: u64| {
            tables
                .blobs
                .iter()
                .find(|(x, _)| *x == a)
                .map(|(_, b)| b[..4].to_vec())
        };
        assert_eq!(sig_at(entries[0]), Some(b"FACP".to_vec()));
        assert_eq!(sig_at(entries[1]), Some(b"APIC".to_vec()));
        assert_eq!(sig_at(entries[2]), Some(b"MCFG".to_vec()));
    }

    /// What OVMF does with `etc/table-loader`: parse it, allocate the files where it likes,
    /// patch and checksum, then install every table an ADD_POINTER points at (the XSDT
    /// aside). Each must be a whole table with a valid checksum, and together they are
    /// the FACS, DSDT, FADT, MADT and MCFG.
    #[test]
    fn firmware_running_the_loader_script_anywhere_finds_every_table() {
        let f = files(2, Some((8 << 30, 32 << 30)));
        let script = loader::parse(&loader::encode(&f.script)).expect("parses");
        let (rsdp_at, tables_at) = (0xf_5a10u64, 0x7fe7_e000u64);
        let mut placed = BTreeMap::from([
            (RSDP_FILE.to_owned(), f.rsdp.clone()),
            (TABLES_FILE.to_owned(), f.tables.clone()),
        ]);
        let at = BTreeMap::from([
            (RSDP_FILE.to_owned(), rsdp_at),
            (TABLES_FILE.to_owned(), tables_at),
        ]);
        loader::apply(&script, &mut placed, &at).expect("applies");
        let rsdp = &placed[RSDP_FILE];
        assert!(sums_to_zero(&rsdp[..20]) && sums_to_zero(rsdp));
        let tables = &placed[TABLES_FILE];
        let mut installed = Vec::new();
        for cmd in &script {
            let Command::AddPointer {
                dest, offset, size, ..
            } = cmd
            else {
                continue;
            };
            assert_eq!(*size, 8);
            let file = &placed[dest.as_str()];
            let o = *offset as usize;
            let target = u64::from_le_bytes(file[o..o + 8].try_into().unwrap_or_default());
            let off = usize::try_from(target - tables_at).expect("points into the tables");
            let sig = &tables[off..off + 4];
            let len = u32::from_le_bytes(tables[off + 4..off + 8].try_into().unwrap_or_default());
            let table = &tables[off..off + len as usize];
            if sig != b"FACS" {
                assert!(sums_to_zero(table), "{sig:?}");
            }
            if sig != b"XSDT" {
                installed.push(String::from_utf8_lossy(sig).into_owned());
            }
        }
        installed.sort();
        assert_eq!(installed, ["APIC", "DSDT", "FACP", "FACS", "MCFG"]);
    }

    /// Disassembles a table with ACPICA's `iasl`, the reference implementation, and
    /// returns its listing. `iasl` comes with Debian's acpica-tools (scripts/install-deps.sh).
    fn iasl_listing(name: &str, bytes: &[u8]) -> String {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join(format!("{name}.dat"));
        std::fs::write(&path, bytes).expect("write table");
        let out = std::process::Command::new("iasl")
            .arg("-d")
            .arg(&path)
            .current_dir(dir.path())
            .output()
            .expect("iasl (acpica-tools) is installed");
        assert!(
            out.status.success(),
            "iasl rejected {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::read_to_string(dir.path().join(format!("{name}.dsl")))
            .expect("iasl wrote a listing")
    }

    #[test]
    fn iasl_reads_madt_with_every_cpu_and_the_sci_override() {
        let tables = build(4, None);
        let text = iasl_listing("apic", table(&tables, b"APIC"));
        assert!(!text.contains("Invalid"), "{text}");
        assert_eq!(
            text.matches("Subtable Type : 00 [Processor Local APIC]")
                .count(),
            4,
            "{text}"
        );
        assert!(text.contains("Subtable Type : 01 [I/O APIC]"));
        assert!(text.contains("Subtable Type : 02 [Interrupt Source Override]"));
        assert!(text.contains("Subtable Type : 04 [Local APIC NMI]"));
        assert!(text.contains("PC-AT Compatibility : 1"));
    }

    #[test]
    fn iasl_reads_fadt_with_our_pm_block_and_reset_register() {
        let tables = build(1, None);
        let text = iasl_listing("facp", table(&tables, b"FACP"));
        assert!(!text.contains("Invalid"), "{text}");
        assert!(
            text.contains("PM1A Event Block Address : 0000B000"),
            "{text}"
        );
        assert!(
            text.contains("PM1A Control Block Address : 0000B004"),
            "{text}"
        );
        assert!(text.contains("PM Timer Block Address : 0000B008"), "{text}");
        assert!(text.contains("SCI Interrupt : 0009"), "{text}");
        assert!(text.contains("Value to cause reset : FE"), "{text}");
    }

    #[test]
    fn iasl_decompiles_dsdt_with_s5() {
        let text = iasl_listing("dsdt", &dsdt(Some((4 << 30, 32 << 30))));
        assert!(text.contains("Name (_S5, Package (0x04)"), "{text}");
        assert!(text.contains("Device (PCI0)"), "{text}");
        assert!(text.contains("EisaId (\"PNP0A08\")"), "{text}");
        assert!(
            text.contains("0xC0000000,         // Range Minimum"),
            "{text}"
        );
        assert!(
            text.contains("0xDFFFFFFF,         // Range Maximum"),
            "{text}"
        );
        assert!(text.contains("QWordMemory"), "{text}");
        assert!(
            text.contains("0x0000000100000000, // Range Minimum"),
            "{text}"
        );
        assert!(
            text.contains("0x00000008FFFFFFFF, // Range Maximum"),
            "{text}"
        );
    }
}
