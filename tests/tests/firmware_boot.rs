//! Booting as a PC does: Debian's own OVMF on phyllome-vmm (`--firmware`), nested under
//! QEMU's emulation as the real-Linux tests are (this `/dev/kvm` cannot run the firmware's
//! x87 start-up code). The firmware finds our i440FX platform, reads its tables and memory
//! map through fw_cfg, assigns our virtio disk's BAR, binds its own virtio-blk driver to
//! it, boots the GRUB of an installer-style ISO (GPT + EFI system partition, from
//! `scripts/firmware-guest.sh`) and keeps its variables in the VM's own store. GRUB's
//! `halt` powers off through the firmware's ResetSystem, which the PIIX4 PM block takes.
//!
//! The product's main job runs here too: an installer ISO partitions the VM's empty disk,
//! installs a boot loader with an NVRAM entry and reboots, and the VM comes up from its disk.
//!
//! L1 runs on one vCPU under `-icount` (scripts/nested-kvm.sh says why); each test takes
//! 1-3 minutes. A run whose console stays silent for 150 s stalled in the nested emulation
//! (QEMU's own guests stall there too, see `run_nested`): it is retried, twice at most, and
//! said.

#![allow(clippy::unwrap_used)]

use phyllome_tests::desktop::{decode, text_rows};
use phyllome_tests::{
    png_from_console, run_asset_script, run_nested, vmm_binary, workspace, NestedEnd,
    SEND_SCANOUT_PNG,
};
use std::process::Command;
use std::time::Instant;

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// How the test ISO is attached.
#[derive(Clone, Copy)]
enum Medium {
    /// A read-only virtio disk.
    Disk,
    /// The disc in a CD drive (virtio-scsi).
    Cdrom,
}

const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";
/// Console silence that means the nested emulation stalled: three times the longest quiet
/// stretch of a good run (GRUB loading the installer's kernel and initrd, about 50 s).
const STALL: std::time::Duration = std::time::Duration::from_secs(150);
/// Runs tried before a stall fails a test.
const ATTEMPTS: u32 = 3;

/// Boots Debian's OVMF nested with the test ISO `iso` (from `scripts/firmware-guest.sh`) in
/// the VM as `medium` (a read-only disk, or a disc in a CD drive) and `args` added, L1 on `l1_cpus` vCPUs under icount; L1 runs `setup`
/// before the VMM and `check` after it. The console, also kept in
/// `target/nested-logs/<log>`.
fn nested_firmware(
    iso: &str,
    medium: Medium,
    args: &[&str],
    l1_cpus: &str,
    setup: &str,
    check: &str,
    log: &str,
) -> String {
    // One nested QEMU at a time (each wants both cores), and one build of the test ISO.
    let _one = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    assert!(
        std::path::Path::new(OVMF_CODE).exists(),
        "Debian's ovmf is installed (scripts/install-deps.sh)"
    );
    let (assets, _) = run_asset_script("firmware-guest.sh", None);
    let command = || {
        // TERM after 15 minutes, KILL 30 s later if QEMU has not gone.
        let mut c = Command::new("timeout");
        c.args(["-k", "30", "900"])
            .arg(workspace().join("scripts/nested-kvm.sh"))
            .arg(vmm_binary())
            .args(["-", "-"])
            .args(match medium {
                Medium::Disk => ["--disk".to_owned(), format!("/l2/{iso},readonly")],
                Medium::Cdrom => ["--cdrom".to_owned(), format!("/l2/{iso}")],
            })
            .args(args)
            .env("PHYLLOME_NESTED_ICOUNT", l1_cpus)
            .env(
                "PHYLLOME_NESTED_FILES",
                format!("{OVMF_CODE} {OVMF_VARS} {}", assets.join(iso).display()),
            )
            .env(
                "PHYLLOME_NESTED_BOOT",
                "--firmware /l2/OVMF_CODE_4M.fd --firmware-vars /vars.fd",
            )
            .env(
                "PHYLLOME_NESTED_SETUP",
                format!("cp /l2/OVMF_VARS_4M.fd /vars.fd; {setup}"),
            )
            .env("PHYLLOME_NESTED_CHECK", check);
        c
    };
    let logs = workspace().join("target/nested-logs");
    std::fs::create_dir_all(&logs).unwrap();
    // A stall of the nested emulation (see run_nested; QEMU's own guests stall the same
    // way there, in the benchmark about as often) is retried, twice at most, and said; a
    // third one fails the test.
    for attempt in 1..=ATTEMPTS {
        let started = Instant::now();
        let mut console = String::new();
        let end = run_nested(&mut command(), STALL, |line| console.push_str(line));
        println!("{log}: nested run took {:.1?} ({end:?})", started.elapsed());
        std::fs::write(logs.join(log), console.as_bytes()).unwrap();
        match end {
            NestedEnd::Exited(_) => return console,
            NestedEnd::Stalled if attempt < ATTEMPTS => {
                let stalled = logs.join(format!("stalled-{attempt}-{log}"));
                std::fs::write(&stalled, console.as_bytes()).unwrap();
                println!(
                    "{log}: the nested guest stalled (no console output for {STALL:?}), which nested \
                     SVM under TCG does now and then; its console is in {}; trying again. \
                     Its last lines:\n{}",
                    stalled.display(),
                    tail(&console, 8)
                );
            }
            NestedEnd::Stalled => panic!(
                "{log}: the nested guest stalled {ATTEMPTS} times (no console output for {STALL:?}):\n{}",
                tail(&console, 40)
            ),
        }
    }
    unreachable!("the last attempt returns or panics")
}

#[test]
fn debian_ovmf_boots_grub_from_an_installer_iso_and_keeps_its_variables_nested() {
    let vars_len = std::fs::metadata(OVMF_VARS).unwrap().len();
    let console = nested_firmware(
        "fw-installer.iso",
        Medium::Disk,
        &["--memory", "256", "--no-reboot"],
        "1",
        ":",
        "cmp -s /vars.fd /l2/OVMF_VARS_4M.fd && echo PHYLLOME-VARS-UNCHANGED || echo PHYLLOME-VARS-CHANGED; \
         echo PHYLLOME-VARS-SIZE=$(wc -c < /vars.fd); ls /vars.fd.tmp 2>/dev/null && echo PHYLLOME-VARS-TMP-LEFT",
        "firmware-boot.log",
    );
    for marker in [
        "PHYLLOME-L1-KVM-READY",
        // GRUB, loaded by the firmware from the ISO's EFI system partition on our disk.
        "PHYLLOME-GRUB-MENU",
        "Phyllome firmware test",
        "PHYLLOME-GRUB-BOOTED",
        // GRUB's halt: UEFI ResetSystem(Shutdown), SLP_EN on the PIIX4 PM block.
        "PHYLLOME-VMM-EXIT=0",
        // The firmware wrote its variables (boot options) through our flash into the file,
        // which kept its size and was replaced whole.
        "PHYLLOME-VARS-CHANGED",
        &format!("PHYLLOME-VARS-SIZE={vars_len}"),
    ] {
        assert!(
            console.contains(marker),
            "missing {marker} (whole console in target/nested-logs/firmware-boot.log):\n{}",
            tail(&console, 40)
        );
    }
    assert!(!console.contains("PHYLLOME-VARS-TMP-LEFT"), "{console}");
    assert!(!console.contains("PHYLLOME-GRUB-SECOND-ENTRY"));
}

/// Installer discs boot from the CD drive, as on a PC: the firmware's own virtio-scsi
/// driver finds our drive, reads the disc's El Torito catalog and starts the EFI boot image
/// on it, GRUB, which powers off.
#[test]
fn the_firmware_boots_an_installer_disc_from_the_cd_drive_nested() {
    let console = nested_firmware(
        "fw-installer.iso",
        Medium::Cdrom,
        &["--memory", "256", "--no-reboot"],
        "1",
        ":",
        ":",
        "firmware-cdrom.log",
    );
    for marker in [
        "PHYLLOME-GRUB-MENU",
        "PHYLLOME-GRUB-BOOTED",
        "PHYLLOME-VMM-EXIT=0",
    ] {
        assert!(
            console.contains(marker),
            "missing {marker} (whole console in target/nested-logs/firmware-cdrom.log):\n{}",
            tail(&console, 40)
        );
    }
}

/// The boot menu is usable from the window: keys sent on the display connection (as the
/// app sends them) reach the PS/2 keyboard the firmware reads, and GRUB's menu moves to its
/// second entry and starts it; the display shows GRUB's graphical menu (drawn on the
/// firmware's ramfb, as distributions' GRUBs draw theirs), the second entry highlighted,
/// while it waits. L1 runs on two vCPUs (still under icount), so that the VMM's display and
/// device threads do not wait for the vCPU's time slice.
#[test]
fn keys_from_the_display_connection_pick_a_grub_menu_entry_nested() {
    const KEY_DOWN: u16 = 108;
    const KEY_ENTER: u16 = 28;
    // GRUB marks the highlighted entry with `*` on its serial terminal.
    const SECOND_HIGHLIGHTED: &str = "*Phyllome firmware test: second entry";
    let console = nested_firmware(
        "fw-installer.iso",
        Medium::Disk,
        &[
            "--memory",
            "256",
            "--no-reboot",
            "--gpu",
            "800x600",
            "--display-socket",
            "/d.sock",
            "--dump-scanout",
            "/scanout.png",
            "--serial",
            "file:/serial.log",
        ],
        "2",
        &format!(
            "(while [ ! -f /serial.log ]; do sleep 0.2; done; tail -f /serial.log) & \
             (while ! grep -q PHYLLOME-GRUB-MENU /serial.log 2>/dev/null; do sleep 0.2; done; sleep 1; \
              /phyllome-vmm display --socket /d.sock key {KEY_DOWN} && echo PHYLLOME-DOWN-SENT; \
              while ! grep -q -F '{SECOND_HIGHLIGHTED}' /serial.log; do sleep 0.2; done; sleep 3; \
              cp /scanout.png /menu.png && echo PHYLLOME-MENU-SHOT; \
              /phyllome-vmm display --socket /d.sock key {KEY_ENTER} && echo PHYLLOME-KEYS-SENT) &"
        ),
        &format!("cat /serial.log; cp /menu.png /scanout.png && {SEND_SCANOUT_PNG}"),
        "firmware-keys.log",
    );
    for marker in [
        "PHYLLOME-GRUB-MENU",
        "PHYLLOME-DOWN-SENT",
        SECOND_HIGHLIGHTED,
        "PHYLLOME-MENU-SHOT",
        "PHYLLOME-KEYS-SENT",
        "PHYLLOME-GRUB-SECOND-ENTRY",
        "PHYLLOME-VMM-EXIT=0",
    ] {
        assert!(
            console.contains(marker),
            "missing {marker} (whole console in target/nested-logs/firmware-keys.log):\n{}",
            tail(&console, 40)
        );
    }
    assert!(
        !console.contains("PHYLLOME-GRUB-BOOTED"),
        "the default entry ran"
    );
    // The screen while GRUB waited: its menu in GRUB's own font, the second entry on a lit
    // bar (GRUB's highlight, light grey) and the first entry as text just above it.
    let shot = png_from_console(&console, "nested-firmware-grub-menu.png");
    let (w, h, rgb) = decode(&shot);
    assert!(w >= 640 && h >= 480, "{w}x{h}");
    let (rows, share) = text_rows(w, h, &rgb, (0, 0, w, h));
    assert!((0.005..0.3).contains(&share), "lit share {share}");
    assert!(rows >= 4, "only {rows} rows of text");
    let lit_share = |y: u32| {
        let row = &rgb[(y * w * 3) as usize..((y + 1) * w * 3) as usize];
        let lit = row
            .chunks(3)
            .filter(|p| p.iter().any(|c| *c > 0x80))
            .count();
        lit as f64 / f64::from(w)
    };
    // Bands of pixel rows lit across most of the screen; the menu box's one-pixel borders
    // are not bands.
    let mut bands: Vec<std::ops::Range<u32>> = Vec::new();
    for y in (0..h).filter(|&y| lit_share(y) >= 0.6) {
        match bands.last_mut() {
            Some(band) if band.end == y => band.end = y + 1,
            _ => bands.push(y..y + 1),
        }
    }
    bands.retain(|b| b.len() >= 5);
    assert!(
        bands.len() == 1 && (10..=40).contains(&bands[0].len()),
        "one highlight bar, a text row tall: {bands:?}"
    );
    let top = bands[0].start;
    let above = (top.saturating_sub(20)..top)
        .map(lit_share)
        .fold(0.0, f64::max);
    assert!(
        (0.01..0.5).contains(&above),
        "the first entry's text just above the bar (most lit row {above})"
    );
}

/// The product's main job, end to end: an installer booted by the firmware from its ISO
/// partitions the VM's empty disk, installs a boot loader and a system on it with an NVRAM
/// boot entry (efibootmgr, through the firmware's runtime variable services and so our
/// flash), and reboots; the same VM then comes up from its own disk through that entry.
#[test]
fn an_installer_installs_to_the_empty_disk_and_the_reboot_starts_the_installed_system_nested() {
    let console = nested_firmware(
        "fw-linux-installer.iso",
        Medium::Disk,
        &["--memory", "512", "--disk", "/target.img"],
        "1",
        "busybox dd if=/dev/zero of=/target.img bs=1M count=0 seek=96 2>/dev/null",
        "busybox dd if=/target.img bs=512 skip=1 count=1 2>/dev/null | grep -q 'EFI PART' && echo PHYLLOME-TARGET-HAS-GPT",
        "firmware-install.log",
    );
    let missing = |marker: &str| {
        format!(
            "missing {marker} (whole console in target/nested-logs/firmware-install.log):\n{}",
            tail(&console, 60)
        )
    };
    for marker in [
        "PHYLLOME-INSTALLER-GRUB",
        "PHYLLOME-INSTALLER-STARTED",
        "PHYLLOME-INSTALLER-TARGET=/dev/vdb",
        "PHYLLOME-INSTALLER-DONE",
        // The reboot: the firmware starts again and loads the installed disk's GRUB.
        "PHYLLOME-INSTALLED-GRUB",
        "PHYLLOME-INSTALLED-SYSTEM-UP",
        "PHYLLOME-VMM-EXIT=0",
        "PHYLLOME-TARGET-HAS-GPT",
    ] {
        assert!(console.contains(marker), "{}", missing(marker));
    }
    // The installed system is the one this run's installer wrote (its token), and it came
    // up through the boot entry the installer made.
    let token = |prefix: &str| {
        console
            .lines()
            .find_map(|l| l.split(prefix).nth(1))
            .map(|t| t.trim().to_owned())
            .unwrap_or_else(|| panic!("{}", missing(prefix)))
    };
    let written = token("PHYLLOME-INSTALLER-DONE token=");
    assert_eq!(written.len(), 36, "{written}");
    assert_eq!(token("PHYLLOME-INSTALLED-SYSTEM-UP token="), written);
    let installed = console
        .split("PHYLLOME-INSTALLED-SYSTEM-UP")
        .nth(1)
        .unwrap_or_default();
    let current = installed
        .lines()
        .find_map(|l| l.split("PHYLLOME-EFI BootCurrent: ").nth(1))
        .map(str::trim)
        .unwrap_or_else(|| panic!("{}", missing("BootCurrent")));
    assert!(
        installed.contains(&format!("PHYLLOME-EFI Boot{current}* Phyllome test system")),
        "the installed system came up from Boot{current}, not the installer's entry:\n{installed}"
    );
    assert!(
        !console.contains("PHYLLOME-INSTALLER-FAILED"),
        "{}",
        tail(&console, 60)
    );
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
