//! Booting as a PC does: Debian's own OVMF on phyllome-vmm (`--firmware`), nested under
//! QEMU's emulation as the real-Linux tests are (this `/dev/kvm` cannot run the firmware's
//! x87 start-up code). The firmware finds our i440FX platform, reads its tables and memory
//! map through fw_cfg, assigns our virtio disk's BAR, binds its own virtio-blk driver to
//! it, boots the GRUB of an installer-style ISO (GPT + EFI system partition, from
//! `scripts/firmware-guest.sh`) and keeps its variables in the VM's own store. GRUB's
//! `halt` powers off through the firmware's ResetSystem, which the PIIX4 PM block takes.
//!
//! L1 runs on one vCPU under `-icount` (scripts/nested-kvm.sh says why); about 3 minutes.

#![allow(clippy::unwrap_used)]

use phyllome_tests::{run_asset_script, vmm_binary, workspace};
use std::process::Command;
use std::time::Instant;

const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";

#[test]
fn debian_ovmf_boots_grub_from_an_installer_iso_and_keeps_its_variables_nested() {
    assert!(
        std::path::Path::new(OVMF_CODE).exists(),
        "Debian's ovmf is installed (scripts/install-deps.sh)"
    );
    let (assets, _) = run_asset_script("firmware-guest.sh", None);
    let iso = assets.join("fw-installer.iso");
    let vars_len = std::fs::metadata(OVMF_VARS).unwrap().len();
    let started = Instant::now();
    let out = Command::new("timeout")
        .arg("900")
        .arg(workspace().join("scripts/nested-kvm.sh"))
        .arg(vmm_binary())
        .args(["-", "-"])
        .args(["--memory", "256", "--no-reboot", "--disk"])
        .arg("/l2/fw-installer.iso,readonly")
        .env("PHYLLOME_NESTED_ICOUNT", "1")
        .env(
            "PHYLLOME_NESTED_FILES",
            format!("{OVMF_CODE} {OVMF_VARS} {}", iso.display()),
        )
        .env(
            "PHYLLOME_NESTED_BOOT",
            "--firmware /l2/OVMF_CODE_4M.fd --firmware-vars /vars.fd",
        )
        .env("PHYLLOME_NESTED_SETUP", "cp /l2/OVMF_VARS_4M.fd /vars.fd")
        .env(
            "PHYLLOME_NESTED_CHECK",
            "cmp -s /vars.fd /l2/OVMF_VARS_4M.fd && echo PHYLLOME-VARS-UNCHANGED || echo PHYLLOME-VARS-CHANGED; \
             echo PHYLLOME-VARS-SIZE=$(wc -c < /vars.fd); ls /vars.fd.tmp 2>/dev/null && echo PHYLLOME-VARS-TMP-LEFT",
        )
        .output()
        .expect("scripts/nested-kvm.sh runs");
    let console = String::from_utf8_lossy(&out.stdout).replace('\0', "");
    println!("firmware boot: nested run took {:.1?}", started.elapsed());
    let logs = workspace().join("target/nested-logs");
    std::fs::create_dir_all(&logs).unwrap();
    std::fs::write(logs.join("firmware-boot.log"), console.as_bytes()).unwrap();
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

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
