#![allow(clippy::cast_possible_truncation, reason = "test addresses are small")]

use super::loader::{self, Command, LoaderError, Zone};
use super::*;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use vm_memory::GuestMemoryMmap;

const RAM: u64 = 0x10_0000;
const BLOCK: u64 = 0x1000;
const BUF: u64 = 0x2000;

fn memory() -> GuestMemory {
    GuestMemoryMmap::from_ranges(&[(GuestAddress(0), RAM as usize)]).expect("test memory")
}

fn device(b: FwCfgBuilder) -> (FwCfg, GuestMemory) {
    let mem = memory();
    (b.build(mem.clone()), mem)
}

fn select(dev: &mut FwCfg, key: u16) {
    dev.write(0, &key.to_le_bytes());
}

fn read_port(dev: &mut FwCfg, n: usize) -> Vec<u8> {
    (0..n)
        .map(|_| {
            let mut b = [0u8];
            dev.read(1, &mut b);
            b[0]
        })
        .collect()
}

/// Writes a DMA control block at [`BLOCK`] and starts it, as the firmware does (high half,
/// then low half); returns the control field afterwards.
fn dma(dev: &mut FwCfg, mem: &GuestMemory, control: u32, length: u32, address: u64) -> u32 {
    let mut block = Vec::new();
    block.extend_from_slice(&control.to_be_bytes());
    block.extend_from_slice(&length.to_be_bytes());
    block.extend_from_slice(&address.to_be_bytes());
    mem.write_slice(&block, GuestAddress(BLOCK)).expect("block");
    dev.write(4, &((BLOCK >> 32) as u32).to_be_bytes());
    dev.write(8, &(BLOCK as u32).to_be_bytes());
    let mut out = [0u8; 4];
    mem.read_slice(&mut out, GuestAddress(BLOCK)).expect("read");
    u32::from_be_bytes(out)
}

fn guest(mem: &GuestMemory, at: u64, n: usize) -> Vec<u8> {
    let mut v = vec![0; n];
    mem.read_slice(&mut v, GuestAddress(at)).expect("read");
    v
}

fn with_files() -> FwCfgBuilder {
    let mut b = FwCfgBuilder::new();
    b.cpus(3);
    b.file("etc/e820", vec![1, 2, 3, 4, 5]).expect("file");
    b.file("bootorder", b"/pci@i0cf8/x\0".to_vec())
        .expect("file");
    b
}

/// The directory as the firmware reads it: (name, size, selector).
fn directory(dev: &mut FwCfg) -> Vec<(String, u32, u16)> {
    select(dev, KEY_FILE_DIR);
    let count = u32::from_be_bytes(read_port(dev, 4).try_into().expect("4"));
    (0..count)
        .map(|_| {
            let e = read_port(dev, 64);
            let size = u32::from_be_bytes(e[0..4].try_into().expect("4"));
            let key = u16::from_be_bytes([e[4], e[5]]);
            let end = e[8..].iter().position(|&b| b == 0).expect("nul") + 8;
            (
                String::from_utf8(e[8..end].to_vec()).expect("utf8"),
                size,
                key,
            )
        })
        .collect()
}

#[test]
fn the_signature_and_the_dma_feature_read_through_the_data_port() {
    let (mut dev, _) = device(with_files());
    select(&mut dev, KEY_SIGNATURE);
    assert_eq!(read_port(&mut dev, 4), b"QEMU");
    select(&mut dev, KEY_ID);
    let id = u32::from_le_bytes(read_port(&mut dev, 4).try_into().expect("4"));
    assert_eq!(id & 2, 2, "DMA is offered");
    select(&mut dev, KEY_NB_CPUS);
    assert_eq!(read_port(&mut dev, 2), [3, 0]);
    // Past the end: zeros.
    assert_eq!(read_port(&mut dev, 2), [0, 0]);
}

#[test]
fn the_dma_register_reads_as_its_signature() {
    let (mut dev, _) = device(with_files());
    let mut hi = [0u8; 4];
    let mut lo = [0u8; 4];
    dev.read(4, &mut hi);
    dev.read(8, &mut lo);
    assert_eq!([hi, lo].concat(), b"QEMU CFG");
}

#[test]
fn the_directory_lists_files_in_name_order_and_each_reads_by_its_selector() {
    let (mut dev, _) = device(with_files());
    let dir = directory(&mut dev);
    assert_eq!(
        dir,
        vec![
            ("bootorder".to_owned(), 13, KEY_FILE_FIRST),
            ("etc/e820".to_owned(), 5, KEY_FILE_FIRST + 1),
        ]
    );
    select(&mut dev, KEY_FILE_FIRST + 1);
    assert_eq!(read_port(&mut dev, 5), [1, 2, 3, 4, 5]);
}

#[test]
fn a_dma_read_selects_copies_and_fills_past_the_end_with_zeros() {
    let (mut dev, mem) = device(with_files());
    mem.write_slice(&[0xaa; 8], GuestAddress(BUF))
        .expect("fill");
    let control = (u32::from(KEY_FILE_FIRST + 1) << 16) | DMA_SELECT | DMA_READ;
    assert_eq!(dma(&mut dev, &mem, control, 8, BUF), 0, "no error");
    assert_eq!(guest(&mem, BUF, 8), [1, 2, 3, 4, 5, 0, 0, 0]);
}

#[test]
fn a_dma_skip_moves_the_offset_for_the_next_read() {
    let (mut dev, mem) = device(with_files());
    let skip = (u32::from(KEY_FILE_FIRST + 1) << 16) | DMA_SELECT | DMA_SKIP;
    assert_eq!(dma(&mut dev, &mem, skip, 3, 0), 0);
    assert_eq!(dma(&mut dev, &mem, DMA_READ, 2, BUF), 0);
    assert_eq!(guest(&mem, BUF, 2), [4, 5]);
    // Port reads follow the same offset: the item is used up.
    assert_eq!(read_port(&mut dev, 1), [0]);
}

#[test]
fn a_dma_write_reaches_a_writable_file_and_its_hook() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let hook_seen = seen.clone();
    let mut b = with_files();
    b.writable_file(
        "etc/ramfb",
        8,
        Box::new(move |d| *hook_seen.lock().expect("lock") = d.to_vec()),
    )
    .expect("file");
    let (mut dev, mem) = device(b);
    let key = directory(&mut dev)
        .into_iter()
        .find(|(n, ..)| n == "etc/ramfb")
        .expect("listed")
        .2;
    mem.write_slice(&[9, 8, 7, 6], GuestAddress(BUF))
        .expect("w");
    let skip = (u32::from(key) << 16) | DMA_SELECT | DMA_SKIP;
    assert_eq!(dma(&mut dev, &mem, skip, 2, 0), 0);
    assert_eq!(dma(&mut dev, &mem, DMA_WRITE, 4, BUF), 0);
    assert_eq!(*seen.lock().expect("lock"), [0, 0, 9, 8, 7, 6, 0, 0]);
    // Past the end of the file: an error, nothing changes.
    assert_eq!(dma(&mut dev, &mem, DMA_WRITE, 4, BUF), DMA_ERROR);
    assert_eq!(*seen.lock().expect("lock"), [0, 0, 9, 8, 7, 6, 0, 0]);
}

#[test]
fn a_dma_write_to_a_read_only_item_fails_and_changes_nothing() {
    let (mut dev, mem) = device(with_files());
    mem.write_slice(&[0xee; 4], GuestAddress(BUF)).expect("w");
    let control = (u32::from(KEY_FILE_FIRST + 1) << 16) | DMA_SELECT | DMA_WRITE;
    assert_eq!(dma(&mut dev, &mem, control, 4, BUF), DMA_ERROR);
    select(&mut dev, KEY_FILE_FIRST + 1);
    assert_eq!(read_port(&mut dev, 5), [1, 2, 3, 4, 5]);
    // Nor does an item that does not exist take a write.
    assert_eq!(
        dma(
            &mut dev,
            &mem,
            (0x1234 << 16) | DMA_SELECT | DMA_WRITE,
            4,
            BUF
        ),
        DMA_ERROR
    );
}

#[test]
fn dma_buffers_outside_guest_memory_or_wrapping_fail_the_request_only() {
    let (mut dev, mem) = device(with_files());
    let read = (u32::from(KEY_FILE_FIRST) << 16) | DMA_SELECT | DMA_READ;
    assert_eq!(dma(&mut dev, &mem, read, 4, RAM - 2), DMA_ERROR);
    assert_eq!(dma(&mut dev, &mem, read, 16, u64::MAX - 4), DMA_ERROR);
    assert_eq!(dma(&mut dev, &mem, read, u32::MAX, BUF), DMA_ERROR);
    // A control block outside memory: nothing to answer, the device goes on.
    dev.write(4, &[0, 0, 0, 0x10]);
    dev.write(8, &[0, 0, 0, 0]);
    assert_eq!(dma(&mut dev, &mem, read, 4, BUF), 0);
    assert_eq!(guest(&mem, BUF, 4), b"/pci");
}

#[test]
fn an_unknown_selector_reads_zeros() {
    let (mut dev, mem) = device(with_files());
    select(&mut dev, 0x7777);
    assert_eq!(read_port(&mut dev, 4), [0; 4]);
    mem.write_slice(&[0xaa; 4], GuestAddress(BUF)).expect("w");
    assert_eq!(
        dma(
            &mut dev,
            &mem,
            (0x7777 << 16) | DMA_SELECT | DMA_READ,
            4,
            BUF
        ),
        0
    );
    assert_eq!(guest(&mem, BUF, 4), [0; 4]);
}

#[test]
fn bad_file_names_and_duplicates_are_refused() {
    let mut b = FwCfgBuilder::new();
    assert_eq!(
        b.file("", vec![]).err(),
        Some(FwCfgError::BadName(String::new()))
    );
    let long = "x".repeat(56);
    assert_eq!(b.file(&long, vec![]).err(), Some(FwCfgError::BadName(long)));
    b.file("a", vec![]).expect("first");
    assert_eq!(
        b.file("a", vec![]).err(),
        Some(FwCfgError::Duplicate("a".into()))
    );
}

fn script() -> Vec<Command> {
    vec![
        Command::Allocate {
            file: "etc/acpi/rsdp".into(),
            align: 16,
            zone: Zone::FSeg,
        },
        Command::Allocate {
            file: "etc/acpi/tables".into(),
            align: 64,
            zone: Zone::High,
        },
        Command::AddPointer {
            dest: "etc/acpi/rsdp".into(),
            src: "etc/acpi/tables".into(),
            offset: 4,
            size: 4,
        },
        Command::AddChecksum {
            file: "etc/acpi/rsdp".into(),
            result: 0,
            start: 0,
            length: 8,
        },
    ]
}

#[test]
fn a_loader_script_reads_back_as_written() {
    let bytes = loader::encode(&script());
    assert_eq!(bytes.len(), 4 * loader::COMMAND_LEN);
    assert_eq!(loader::parse(&bytes), Ok(script()));
    assert_eq!(loader::parse(&bytes[..100]), Err(LoaderError::Length(100)));
    let mut unknown = bytes.clone();
    unknown[0] = 9;
    assert_eq!(loader::parse(&unknown), Err(LoaderError::Unknown(9)));
}

fn files(pointer: u32) -> BTreeMap<String, Vec<u8>> {
    let mut rsdp = vec![0u8; 8];
    rsdp[1] = 7;
    rsdp[4..8].copy_from_slice(&pointer.to_le_bytes());
    BTreeMap::from([
        ("etc/acpi/rsdp".to_owned(), rsdp),
        ("etc/acpi/tables".to_owned(), vec![0u8; 0x40]),
    ])
}

#[test]
fn applying_a_script_patches_pointers_then_checksums() {
    let mut f = files(0x10);
    let at = BTreeMap::from([
        ("etc/acpi/rsdp".to_owned(), 0xe0000),
        ("etc/acpi/tables".to_owned(), 0xe0040),
    ]);
    loader::apply(&script(), &mut f, &at).expect("applies");
    let rsdp = &f["etc/acpi/rsdp"];
    assert_eq!(rsdp[4..8], 0xe0050u32.to_le_bytes());
    assert_eq!(rsdp.iter().fold(0u8, |a, b| a.wrapping_add(*b)), 0);
}

#[test]
fn a_script_pointing_outside_its_source_or_at_unallocated_files_is_refused() {
    let at = BTreeMap::from([
        ("etc/acpi/rsdp".to_owned(), 0xe0000),
        ("etc/acpi/tables".to_owned(), 0xe0040),
    ]);
    assert_eq!(
        loader::apply(&script(), &mut files(0x40), &at),
        Err(LoaderError::Pointer("etc/acpi/rsdp".into()))
    );
    let overflow = BTreeMap::from([
        ("etc/acpi/rsdp".to_owned(), 0xe0000),
        ("etc/acpi/tables".to_owned(), 0xffff_fff0),
    ]);
    assert_eq!(
        loader::apply(&script(), &mut files(0x20), &overflow),
        Err(LoaderError::Pointer("etc/acpi/rsdp".into())),
        "a 4-byte pointer cannot hold the sum"
    );
    let mut no_alloc = script();
    no_alloc.remove(1);
    assert_eq!(
        loader::apply(&no_alloc, &mut files(0x10), &at),
        Err(LoaderError::Missing("etc/acpi/tables".into()))
    );
    let mut bad_size = script();
    bad_size[2] = Command::AddPointer {
        dest: "etc/acpi/rsdp".into(),
        src: "etc/acpi/tables".into(),
        offset: 4,
        size: 3,
    };
    assert_eq!(
        loader::apply(&bad_size, &mut files(0x10), &at),
        Err(LoaderError::Range("etc/acpi/rsdp".into()))
    );
}
