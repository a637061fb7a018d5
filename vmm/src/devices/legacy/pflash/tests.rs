use super::*;
use std::path::Path;

/// Debian 12's `OVMF_VARS_4M.fd` and `OVMF_CODE_4M.fd` sizes.
const VARS_LEN: usize = 0x84000;
const CODE_LEN: usize = 0x37c000;
const CODE: u64 = VARS_LEN as u64;

/// OVMF's command bytes (QemuFlash.c).
const WRITE_BYTE_CMD: u8 = 0x10;
const BLOCK_ERASE_CMD: u8 = 0x20;
const CLEAR_STATUS_CMD: u8 = 0x50;
const READ_STATUS_CMD: u8 = 0x70;
const BLOCK_ERASE_CONFIRM_CMD: u8 = 0xd0;
const READ_ARRAY_CMD: u8 = 0xff;
const CLEARED_ARRAY_STATUS: u8 = 0x00;

/// A variable store that starts like OVMF's: a firmware volume header (16 zero bytes, the
/// file system GUID, "_FVH"), then erased flash.
fn vars_image() -> Vec<u8> {
    let mut v = vec![0xff; VARS_LEN];
    v[..16].fill(0);
    v[16..32].copy_from_slice(&[
        0x8d, 0x2b, 0xf1, 0xff, 0x96, 0x76, 0x8b, 0x4c, 0xa9, 0x85, 0x27, 0x47, 0x07, 0x5b, 0x4f,
        0x50,
    ]);
    v[0x28..0x2c].copy_from_slice(b"_FVH");
    v
}

fn code_image() -> Vec<u8> {
    (0..CODE_LEN)
        .map(|i| u8::try_from(i % 251).unwrap_or(0))
        .collect()
}

fn flash() -> Pflash {
    Pflash::new(code_image(), VarsStore::in_memory(vars_image())).expect("valid sizes")
}

fn read8(f: &mut Pflash, offset: u64) -> u8 {
    let mut b = [0u8];
    f.read(offset, &mut b);
    b[0]
}

fn write8(f: &mut Pflash, offset: u64, value: u8) {
    f.write(offset, &[value]);
}

#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    NoProbeLocation,
    Rom,
    Ram,
    Flash,
    Undecided,
}

/// `QemuFlashDetected` from edk2-stable202211's OvmfPkg/QemuFlashFvbServicesRuntimeDxe/
/// QemuFlash.c (without SEV-ES), step by step, on block 0.
fn qemu_flash_detected(f: &mut Pflash, block_size: u64) -> Verdict {
    let mut offset = 0;
    while offset < block_size {
        let probe = read8(f, offset);
        if probe != CLEAR_STATUS_CMD && probe != READ_STATUS_CMD && probe != CLEARED_ARRAY_STATUS {
            break;
        }
        offset += 1;
    }
    if offset >= block_size {
        return Verdict::NoProbeLocation;
    }
    let original = read8(f, offset);
    write8(f, offset, CLEAR_STATUS_CMD);
    let probe = read8(f, offset);
    if original != CLEAR_STATUS_CMD && probe == CLEAR_STATUS_CMD {
        write8(f, offset, original);
        return Verdict::Ram;
    }
    write8(f, offset, READ_STATUS_CMD);
    let probe = read8(f, offset);
    if probe == original {
        Verdict::Rom
    } else if probe == READ_STATUS_CMD {
        write8(f, offset, original);
        Verdict::Ram
    } else if probe == CLEARED_ARRAY_STATUS {
        write8(f, offset, READ_ARRAY_CMD);
        Verdict::Flash
    } else {
        Verdict::Undecided
    }
}

/// `QemuFlashWrite`: per byte the program command then the byte, read array at the end.
fn qemu_flash_write(f: &mut Pflash, offset: u64, bytes: &[u8]) {
    for (at, b) in (offset..).zip(bytes) {
        write8(f, at, WRITE_BYTE_CMD);
        write8(f, at, *b);
    }
    if !bytes.is_empty() {
        write8(f, offset + bytes.len() as u64 - 1, READ_ARRAY_CMD);
    }
}

/// `QemuFlashEraseBlock`: erase and confirm at the block's first byte, nothing after.
fn qemu_flash_erase_block(f: &mut Pflash, lba: u64) {
    let at = lba * BLOCK_SIZE as u64;
    write8(f, at, BLOCK_ERASE_CMD);
    write8(f, at, BLOCK_ERASE_CONFIRM_CMD);
}

fn read_status(f: &mut Pflash) -> u8 {
    write8(f, 0, READ_STATUS_CMD);
    let s = read8(f, 0);
    write8(f, 0, READ_ARRAY_CMD);
    s
}

fn vars_file(dir: &Path, bytes: &[u8]) -> std::path::PathBuf {
    let path = dir.join("OVMF_VARS_4M.fd");
    std::fs::write(&path, bytes).expect("write the test store");
    path
}

#[test]
fn debian_layout_ends_at_4_gib() {
    let f = flash();
    assert_eq!(f.len(), 0x40_0000);
    assert_eq!(f.base(), 0xffc0_0000);
    assert_eq!(f.code_base(), 0xffc8_4000);
    assert_eq!(f.code(), &code_image()[..]);
    assert_eq!(f.vars(), &vars_image()[..]);
    assert!(f.read_array_mode());
}

#[test]
fn ovmf_probe_detects_flash_and_leaves_it_in_read_array_mode() {
    let mut f = flash();
    assert_eq!(
        qemu_flash_detected(&mut f, BLOCK_SIZE as u64),
        Verdict::Flash
    );
    assert!(f.read_array_mode());
    assert_eq!(f.vars(), &vars_image()[..]);
    assert_eq!(read8(&mut f, 16), 0x8d);
}

#[test]
fn ovmf_probe_finds_no_location_in_a_zeroed_block() {
    let mut f = Pflash::new(code_image(), VarsStore::in_memory(vec![0; VARS_LEN])).expect("ok");
    assert_eq!(
        qemu_flash_detected(&mut f, BLOCK_SIZE as u64),
        Verdict::NoProbeLocation
    );
}

#[test]
fn ovmf_write_reads_back_in_read_array_mode() {
    let mut f = flash();
    qemu_flash_write(&mut f, 0x1000, b"Boot0001");
    assert!(f.read_array_mode());
    let mut back = [0u8; 8];
    f.read(0x1000, &mut back);
    assert_eq!(&back, b"Boot0001");
    assert_eq!(&f.vars()[0x1000..0x1008], b"Boot0001");
    // QEMU stores the data as it is; NOR flash could only have cleared bits.
    qemu_flash_write(&mut f, 0x1000, &[0x0f]);
    assert_eq!(read8(&mut f, 0x1000), 0x0f);
    qemu_flash_write(&mut f, 0x1000, &[0xf0]);
    assert_eq!(read8(&mut f, 0x1000), 0xf0);
}

#[test]
fn reads_after_a_program_return_the_ready_status() {
    let mut f = flash();
    write8(&mut f, 0x2000, WRITE_BYTE_CMD);
    assert!(!f.read_array_mode());
    write8(&mut f, 0x2000, 0x42);
    assert_eq!(read8(&mut f, 0x2000), STATUS_READY);
    write8(&mut f, 0x2000, READ_STATUS_CMD);
    assert_eq!(read8(&mut f, 0x1234), STATUS_READY);
    write8(&mut f, 0x2000, READ_ARRAY_CMD);
    assert_eq!(read8(&mut f, 0x2000), 0x42);
}

#[test]
fn wide_program_stores_every_byte() {
    let mut f = flash();
    f.write(0x3000, &[WRITE_BYTE_CMD, 0, 0, 0]);
    f.write(0x3000, &0x1122_3344_5566_7788u64.to_le_bytes());
    f.write(0x3000, &[READ_ARRAY_CMD, 0]);
    let mut back = [0u8; 8];
    f.read(0x3000, &mut back);
    assert_eq!(u64::from_le_bytes(back), 0x1122_3344_5566_7788);
}

#[test]
fn ovmf_erase_sets_the_block_to_ff_and_nothing_else() {
    let mut f = flash();
    qemu_flash_write(&mut f, 0x1ffc, &[1, 2, 3, 4]);
    qemu_flash_write(&mut f, 0x2000, &[0; 32]);
    qemu_flash_write(&mut f, 0x3000, &[5]);
    qemu_flash_erase_block(&mut f, 2);
    // OVMF sends nothing after the confirm: reads return the status until a command.
    assert!(!f.read_array_mode());
    assert_eq!(read8(&mut f, 0x2000), STATUS_READY);
    write8(&mut f, 0, READ_ARRAY_CMD);
    assert!(f.vars()[0x2000..0x3000].iter().all(|b| *b == 0xff));
    assert_eq!(&f.vars()[0x1ffc..0x2000], &[1, 2, 3, 4]);
    assert_eq!(read8(&mut f, 0x3000), 5);
}

#[test]
fn the_code_region_refuses_program_and_erase_with_error_status() {
    let mut f = flash();
    write8(&mut f, CODE + 0x10, WRITE_BYTE_CMD);
    write8(&mut f, CODE + 0x10, 0x00);
    assert_eq!(
        read8(&mut f, CODE + 0x10),
        STATUS_READY | STATUS_PROGRAM_ERROR
    );
    write8(&mut f, CODE, CLEAR_STATUS_CMD);
    write8(&mut f, CODE + 0x1000, BLOCK_ERASE_CMD);
    write8(&mut f, CODE + 0x1000, BLOCK_ERASE_CONFIRM_CMD);
    assert_eq!(
        read8(&mut f, CODE + 0x1000),
        STATUS_READY | STATUS_ERASE_ERROR
    );
    write8(&mut f, CODE, READ_ARRAY_CMD);
    assert_eq!(f.code(), &code_image()[..]);
    assert!(!f.store().is_dirty());
    // The last block of the variable store is still writable.
    qemu_flash_write(&mut f, CODE - 1, &[0x5a]);
    assert_eq!(read8(&mut f, CODE - 1), 0x5a);
}

#[test]
fn clear_status_makes_the_status_read_zero() {
    let mut f = flash();
    write8(&mut f, CODE, WRITE_BYTE_CMD);
    write8(&mut f, CODE, 0);
    assert_ne!(read_status(&mut f), 0);
    write8(&mut f, 0, CLEAR_STATUS_CMD);
    assert!(f.read_array_mode());
    assert_eq!(read_status(&mut f), 0);
}

#[test]
fn a_wrong_erase_confirm_is_a_sequence_error_and_erases_nothing() {
    let mut f = flash();
    write8(&mut f, 0, BLOCK_ERASE_CMD);
    write8(&mut f, 0, 0x42);
    assert!(f.read_array_mode());
    assert_eq!(f.vars(), &vars_image()[..]);
    assert!(!f.store().is_dirty());
    assert_eq!(
        read_status(&mut f),
        STATUS_READY | STATUS_ERASE_ERROR | STATUS_PROGRAM_ERROR
    );
}

#[test]
fn unknown_commands_return_to_read_array_mode() {
    let mut f = flash();
    write8(&mut f, 0, READ_STATUS_CMD);
    write8(&mut f, 0, 0xe8); // buffered write: not modelled
    assert!(f.read_array_mode());
    assert_eq!(read8(&mut f, 16), 0x8d);
}

#[test]
fn status_reads_repeat_like_qemu_for_wide_accesses() {
    let mut f = flash();
    write8(&mut f, 0, READ_STATUS_CMD);
    let mut w = [0u8; 2];
    f.read(2, &mut w);
    assert_eq!(w, [0x80, 0]);
    let mut d = [0u8; 4];
    f.read(4, &mut d);
    assert_eq!(d, [0x80, 0, 0x80, 0]);
    let mut q = [0u8; 8];
    f.read(8, &mut q);
    assert_eq!(q, [0x80, 0, 0x80, 0, 0x80, 0, 0x80, 0]);
}

#[test]
fn cfi_query_answers_qry_and_the_block_layout() {
    let mut f = flash();
    write8(&mut f, 0, 0x98);
    let qry: Vec<u8> = (0x10..0x13).map(|o| read8(&mut f, o)).collect();
    assert_eq!(qry, b"QRY");
    assert_eq!(read8(&mut f, 0x13), 0x01); // Intel command set
    assert_eq!(read8(&mut f, 0x27), 22); // 4 MiB
    let blocks = u16::from_le_bytes([read8(&mut f, 0x2d), read8(&mut f, 0x2e)]);
    assert_eq!(usize::from(blocks) + 1, (VARS_LEN + CODE_LEN) / BLOCK_SIZE);
    assert_eq!(read8(&mut f, 0x2f), 0x10); // 4 KiB blocks, in 256-byte units
    assert_eq!(read8(&mut f, 0x60), 0);
    // Query mode is left only for read array, as in QEMU.
    write8(&mut f, 0, READ_STATUS_CMD);
    assert_eq!(read8(&mut f, 0x10), b'Q');
    write8(&mut f, 0, READ_ARRAY_CMD);
    assert_eq!(read8(&mut f, 0x10), 0x8d);
    write8(&mut f, 0, 0x90);
    assert_eq!(read8(&mut f, 0), 0);
    assert_eq!(read8(&mut f, 1), 0);
}

#[test]
fn out_of_range_and_odd_accesses_are_ignored_or_all_ones() {
    let mut f = flash();
    let end = f.len();
    let mut b = [0u8; 4];
    f.read(end, &mut b);
    assert_eq!(b, [0xff; 4]);
    f.read(end - 2, &mut b);
    assert_eq!(b, [0xff; 4]);
    f.read(u64::MAX, &mut b);
    assert_eq!(b, [0xff; 4]);
    f.write(end, &[WRITE_BYTE_CMD]);
    f.write(u64::MAX, &[WRITE_BYTE_CMD]);
    f.write(u64::MAX - 7, &[0; 8]);
    f.write(0x1001, &[WRITE_BYTE_CMD, 0]); // misaligned
    f.write(0x1000, &[WRITE_BYTE_CMD, 0, 0]); // three bytes
    f.write(0x1000, &[WRITE_BYTE_CMD; 16]); // sixteen bytes
    f.write(0x1000, &[]);
    assert!(f.read_array_mode());
    assert_eq!(f.vars(), &vars_image()[..]);
    // In read-array mode any read inside the flash sees the contents, as a memory slot would.
    let mut odd = [0u8; 3];
    f.read(15, &mut odd);
    assert_eq!(odd, [0, 0x8d, 0x2b]);
    let mut across = [0u8; 4];
    f.read(CODE - 2, &mut across);
    assert_eq!(across, [0xff, 0xff, 0, 1]);
    // Outside it, a misaligned or odd-sized read is all ones.
    write8(&mut f, 0, READ_STATUS_CMD);
    f.read(1, &mut b[..2]);
    assert_eq!(b[..2], [0xff, 0xff]);
    f.read(0, &mut odd);
    assert_eq!(odd, [0xff; 3]);
}

/// What a window was told, in order: the contents shown (their first byte and length),
/// or `None` when hidden.
type WindowLog = std::sync::Arc<std::sync::Mutex<Vec<Option<(u8, usize)>>>>;

fn recording_window() -> (ArrayWindow, WindowLog) {
    let seen = WindowLog::default();
    let log = seen.clone();
    let window: ArrayWindow = Box::new(move |contents: Option<&[u8]>| {
        log.lock()
            .expect("log")
            .push(contents.map(|c| (c[0], c.len())));
    });
    (window, seen)
}

#[test]
fn the_array_window_shows_fresh_contents_in_read_array_mode_only() {
    let mut f = flash();
    let (window, seen) = recording_window();
    let len = vars_image().len();
    let first = vars_image()[0];
    // Installed in read-array mode: shown at once.
    f.set_array_window(Some(window));
    assert_eq!(*seen.lock().expect("log"), [Some((first, len))]);
    // A command that stays in read-array mode changes nothing.
    write8(&mut f, 0, READ_ARRAY_CMD);
    assert_eq!(seen.lock().expect("log").len(), 1);
    // A program hides the window for its whole length (its status reads must trap) and
    // shows the new byte when read-array mode comes back.
    write8(&mut f, 0, WRITE_BYTE_CMD);
    assert_eq!(seen.lock().expect("log")[1], None);
    write8(&mut f, 0, 0x00);
    write8(&mut f, 0, READ_ARRAY_CMD);
    assert_eq!(
        *seen.lock().expect("log"),
        [Some((first, len)), None, Some((0x00, len))]
    );
    // An erase left in status mode, then a reset: shown again, erased.
    write8(&mut f, 0, 0x20);
    write8(&mut f, 0, 0xd0);
    f.reset();
    assert!(f.read_array_mode());
    assert_eq!(seen.lock().expect("log")[3..], [None, Some((0xff, len))]);
    // Taken away: nothing more is told.
    f.set_array_window(None);
    write8(&mut f, 0, READ_STATUS_CMD);
    assert_eq!(seen.lock().expect("log").len(), 5);
}

#[test]
fn sizes_are_checked_with_a_sentence() {
    let err = Pflash::new(vec![0; 100], VarsStore::in_memory(vars_image())).expect_err("odd");
    assert!(matches!(
        err,
        PflashError::BadSize {
            part: "code",
            len: 100
        }
    ));
    assert_eq!(
        err.to_string(),
        "The firmware code is 0x64 bytes; it must be a non-zero multiple of the flash's 4 KiB block."
    );
    let err = Pflash::new(code_image(), VarsStore::in_memory(Vec::new())).expect_err("empty");
    assert!(matches!(
        err,
        PflashError::BadSize {
            part: "variable store",
            len: 0
        }
    ));
    let err = Pflash::new(vec![0; MAX_SIZE], VarsStore::in_memory(vars_image())).expect_err("big");
    assert!(matches!(err, PflashError::TooLarge { .. }));
    assert!(err.to_string().contains("16 MiB"));
    let f = Pflash::new(
        vec![0; MAX_SIZE - BLOCK_SIZE],
        VarsStore::in_memory(vec![0; 4096]),
    );
    assert_eq!(f.expect("exactly 16 MiB").base(), 0xff00_0000);
}

#[test]
fn an_ovmf_write_reaches_the_file_at_its_read_array() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = vars_file(dir.path(), &vars_image());
    let mut f = Pflash::new(code_image(), VarsStore::open(&path).expect("store")).expect("ok");
    assert_eq!(qemu_flash_detected(&mut f, 4096), Verdict::Flash);
    write8(&mut f, 0x1000, WRITE_BYTE_CMD);
    write8(&mut f, 0x1000, 0xab);
    // Not yet: the firmware has not finished.
    assert_eq!(std::fs::read(&path).expect("read")[0x1000], 0xff);
    write8(&mut f, 0x1000, READ_ARRAY_CMD);
    let on_disk = std::fs::read(&path).expect("read");
    assert_eq!(on_disk[0x1000], 0xab);
    assert_eq!(on_disk.len(), VARS_LEN);
    assert!(!f.store().is_dirty());
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .expect("list")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names, ["OVMF_VARS_4M.fd"]);
}

#[test]
fn an_ovmf_erase_reaches_the_file_and_a_restart_sees_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = vars_file(dir.path(), &vars_image());
    {
        let mut f = Pflash::new(code_image(), VarsStore::open(&path).expect("store")).expect("ok");
        qemu_flash_write(&mut f, 0x4000, b"first");
        qemu_flash_erase_block(&mut f, 0);
        assert_eq!(&std::fs::read(&path).expect("read")[..16], &[0xff; 16]);
        write8(&mut f, 0, READ_ARRAY_CMD);
        qemu_flash_write(&mut f, 0x5000, b"second");
    }
    let mut f = Pflash::new(code_image(), VarsStore::open(&path).expect("store")).expect("ok");
    assert_eq!(&f.vars()[0x4000..0x4005], b"first");
    assert_eq!(&f.vars()[0x5000..0x5006], b"second");
    assert!(f.vars()[..BLOCK_SIZE].iter().all(|b| *b == 0xff));
    assert_eq!(read8(&mut f, 0x5000), b's');
}

#[test]
fn flush_and_drop_save_pending_changes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = vars_file(dir.path(), &vars_image());
    let mut f = Pflash::new(code_image(), VarsStore::open(&path).expect("store")).expect("ok");
    write8(&mut f, 0x1000, WRITE_BYTE_CMD);
    write8(&mut f, 0x1000, 0x11);
    f.flush().expect("flush");
    assert_eq!(std::fs::read(&path).expect("read")[0x1000], 0x11);
    write8(&mut f, 0x1001, WRITE_BYTE_CMD);
    write8(&mut f, 0x1001, 0x22);
    drop(f);
    assert_eq!(std::fs::read(&path).expect("read")[0x1001], 0x22);
}

#[test]
fn a_failed_save_is_kept_and_retried() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = vars_file(dir.path(), &vars_image());
    let temp = dir.path().join("OVMF_VARS_4M.fd.tmp");
    // A folder where the temporary file goes makes every save fail, even for root.
    std::fs::create_dir(&temp).expect("block the temporary file");
    let mut f = Pflash::new(code_image(), VarsStore::open(&path).expect("store")).expect("ok");
    qemu_flash_write(&mut f, 0x1000, &[0x33]);
    assert!(f.store().is_dirty());
    let message = f.store().last_save_error().expect("kept").to_owned();
    assert!(
        message.starts_with("The firmware variable store "),
        "{message}"
    );
    assert!(message.contains("could not be saved"), "{message}");
    assert_eq!(std::fs::read(&path).expect("read"), vars_image());
    assert!(matches!(f.flush(), Err(PflashError::Save { .. })));
    std::fs::remove_dir(&temp).expect("unblock");
    f.flush().expect("retry");
    assert_eq!(std::fs::read(&path).expect("read")[0x1000], 0x33);
    assert!(f.store().last_save_error().is_none());
    assert!(!temp.exists());
}

#[test]
fn a_store_of_the_wrong_size_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = vars_file(dir.path(), &[0x5a; 1000]);
    let err = VarsStore::open(&path).expect_err("1000 bytes");
    assert!(matches!(err, PflashError::StoreSize { len: 1000, .. }));
    let message = err.to_string();
    assert!(
        message.starts_with(&format!(
            "The firmware variable store {} is 1000 bytes",
            path.display()
        )),
        "{message}"
    );
    assert!(message.ends_with('.'), "{message}");
    assert_eq!(std::fs::read(&path).expect("read"), vec![0x5a; 1000]);
    let empty = vars_file(dir.path(), &[]);
    assert!(matches!(
        VarsStore::open(&empty),
        Err(PflashError::StoreSize { len: 0, .. })
    ));
}

#[test]
fn a_store_that_cannot_be_opened_is_refused_with_a_sentence() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("missing.fd");
    let err = VarsStore::open(&missing).expect_err("missing");
    assert!(matches!(err, PflashError::Open { .. }));
    let message = err.to_string();
    assert!(
        message.starts_with(&format!(
            "The firmware variable store {} could not be opened for reading and writing: ",
            missing.display()
        )),
        "{message}"
    );
    assert!(!missing.exists());
    assert!(matches!(
        VarsStore::open(dir.path()),
        Err(PflashError::Open { .. })
    ));
}
