//! The application as a user meets it, under Xvfb with a private session bus: the empty
//! library, the install wizard creating a VM from an installer image end to end (typed
//! with xdotool, the file chosen in GTK's own file chooser), bad input refused with its
//! reason, 3D off with its reason when OpenGL is disabled, a broken definition listed and
//! left alone, closing with VMs running, and the tray's menu reaching the app through a
//! fake StatusNotifierWatcher. Windows are read through the accessibility tree; every
//! screen is kept in `target/screenshots/`.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use phyllome_tests::desktop::find;
use phyllome_tests::processes::{kill_hard, one_gpu_child, seccomp_mode};
use phyllome_tests::ui::{debian_like_iso, tiny_guest, Session};
use phyllome_tests::workspace;
use phyllome_vmm::VmConfig;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// libadwaita's accent blue (suggested-action buttons).
const ACCENT: [u8; 3] = [0x35, 0x84, 0xe4];

/// Where an app run's output is kept (with the screenshots, as CI artifacts).
fn log(name: &str) -> std::path::PathBuf {
    let dir = workspace().join("target/screenshots/logs");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn wait_until(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

/// Writes a definition for a VM named `name` that boots `kernel`, as the app would.
fn define(session: &Session, folder: &str, name: &str, kernel: &Path) -> std::path::PathBuf {
    let dir = session.library().join(folder);
    std::fs::create_dir_all(&dir).unwrap();
    let mut c = VmConfig::new(kernel);
    c.name = name.into();
    c.machine.memory_mib = 64;
    c.about.os = Some("Tiny test guest".into());
    std::fs::write(dir.join("vm.toml"), c.to_toml()).unwrap();
    dir
}

/// A 4 KiB firmware whose reset vector halts with interrupts off (`cli; hlt; jmp $-1`),
/// and its variable template beside it: `SPIN_CODE.fd` and `SPIN_VARS.fd` in `dir`.
fn spinning_firmware(dir: &std::path::Path) -> std::path::PathBuf {
    let mut code = vec![0x90u8; 4096];
    code[0xff0..0xff4].copy_from_slice(&[0xfa, 0xf4, 0xeb, 0xfd]);
    let path = dir.join("SPIN_CODE.fd");
    std::fs::write(&path, code).unwrap();
    std::fs::write(dir.join("SPIN_VARS.fd"), vec![0xffu8; 4096]).unwrap();
    path
}

#[test]
fn the_wizard_creates_a_vm_from_an_installer_image_end_to_end() {
    let s = Session::new();
    let tmp = tempfile::tempdir().unwrap();
    let kernel = tmp.path().join("spin.elf");
    tiny_guest("spin", &kernel);
    let iso = tmp.path().join("debian-12.8.0-amd64-netinst.iso");
    debian_like_iso(&iso, &kernel);
    // The firmware new VMs boot: a tiny one that waits (this /dev/kvm cannot run OVMF's
    // x87 start-up code; tests/tests/firmware_boot.rs boots the real one nested).
    let firmware = spinning_firmware(tmp.path());
    let mut app = s.app(
        &[],
        &[("PHYLLOME_FIRMWARE", firmware.to_str().unwrap())],
        &log("wizard.log"),
    );

    // The empty library invites creating the first VM.
    s.focus("Phyllome");
    assert!(s.wait_text("No Virtual Machines Yet", 30));
    let empty = s.screenshot("library-empty.png");
    let (_, _, _, _, blue) = find(&empty, ACCENT);
    assert!(
        blue > 2000,
        "the empty state's Create button is not on screen"
    );
    s.press("Create a Virtual Machine");

    // 1. Source: the image, chosen in GTK's file chooser by typing its path.
    s.focus("New Virtual Machine");
    assert!(s.wait_text("Step 1 of 4: Installer", 10));
    s.screenshot("wizard-1-source-empty.png");
    s.press("Choose Installer Image…");
    s.focus("Choose Installer Image…");
    s.keys(&["ctrl+l"]);
    s.type_text(&iso.display().to_string());
    s.keys(&["Return"]);
    // Not a look at the accessibility tree while the chooser goes away: GTK 4.8 then
    // sends the tree a null object path and the app drops off it.
    assert!(wait_until(10, || !s.window_shown("Choose Installer Image…")));
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        s.wait_text("Debian GNU/Linux 12.8.0", 15),
        "the image was not recognised"
    );
    assert!(s.wait_text("starts with UEFI firmware", 5));
    s.focus("New Virtual Machine");
    s.screenshot("wizard-1-source.png");

    // 2. Resources, suggested; the name typed.
    s.keys(&["Return"]);
    assert!(s.wait_text("Step 2 of 4: Resources", 10));
    assert!(s.wait_text("This computer has", 5));
    s.screenshot("wizard-2-resources.png");
    s.keys(&["ctrl+a"]);
    s.type_text("Test Debian");
    s.keys(&["Return"]);

    // 3. Graphics: Mesa renders here, so 3D is on.
    assert!(s.wait_text("Step 3 of 4: Graphics", 10));
    assert!(
        s.wait_text("Available, drawn", 20),
        "the 3D probe did not answer"
    );
    let switch = s
        .tree()
        .into_iter()
        .find(|n| n.role == "check box" && n.name == "3D acceleration")
        .expect("the 3D switch");
    assert!(switch.states.iter().any(|x| x == "checked"), "{switch:?}");
    // Vulkan for guests: the device, or what this computer lacks (here: a Vulkan driver, or
    // a virglrenderer new enough for venus).
    assert!(s.wait_text("Guests get ", 5), "no word on Vulkan");
    s.screenshot("wizard-3-graphics.png");
    s.keys(&["Return"]);

    // 4. Summary, then Create.
    assert!(s.wait_text("Step 4 of 4: Summary", 10));
    let names: Vec<String> = s.tree().into_iter().map(|n| n.name).collect();
    for want in [
        "Test Debian",
        "Debian GNU/Linux 12.8.0",
        "qcow2",
        "3D acceleration",
        "User-mode networking (passt)",
    ] {
        assert!(
            names.iter().any(|n| n.contains(want)),
            "the summary lacks {want}"
        );
    }
    s.screenshot("wizard-4-summary.png");
    s.keys(&["Return"]);

    // The VM is made, started, and its display window opens.
    let dir = s.library().join("test-debian");
    assert!(
        wait_until(30, || s.window_shown("Test Debian – Phyllome")),
        "the display window did not open"
    );
    let config = VmConfig::from_file(&dir.join("vm.toml")).unwrap();
    assert_eq!(config.name, "Test Debian");
    assert_eq!(config.disks.len(), 1);
    let disk = std::fs::read(&config.disks[0].path).unwrap();
    assert_eq!(&disk[..4], b"QFI\xfb", "the new disk is a qcow2 image");
    assert!(!config.disks[0].readonly);
    assert_eq!(
        config.cdroms,
        [phyllome_vmm::config::CdromConfig {
            path: Some(iso.clone())
        }],
        "the installer is the disc in a CD drive"
    );
    assert_eq!(config.boot.firmware.as_deref(), Some(firmware.as_path()));
    assert!(
        config.boot.kernel.as_os_str().is_empty(),
        "no kernel is copied"
    );
    let vars = config.boot.firmware_vars.clone().unwrap();
    assert!(vars.starts_with(&dir), "the VM's own variable store");
    assert_eq!(
        std::fs::read(&vars).unwrap(),
        std::fs::read(tmp.path().join("SPIN_VARS.fd")).unwrap()
    );
    assert!(config.about.os.as_deref().unwrap().contains("Debian"));
    assert_eq!(
        config.network.mode,
        phyllome_vmm::network::NetMode::Passt,
        "the wizard turns networking on"
    );
    assert_eq!(config.network.mac.unwrap().0[..3], [0x52, 0x54, 0]);
    assert!(s.wait_text("Debian GNU/Linux 12.8.0 · Running", 20));
    // The running VM's network: passt, a child of the app on a socket pair.
    assert!(
        wait_until(10, || phyllome_tests::processes::passt_children(app.0.id())
            .len()
            == 1),
        "no passt serves the VM"
    );
    // This build has 3D: no toast may say otherwise (a stale one did for weeks).
    assert!(
        !s.tree()
            .iter()
            .any(|n| n.name.contains("not in this version")),
        "a toast says 3D is missing from a build that has it"
    );

    // Back to the library: it lists the VM.
    s.press_in("Close", "Test Debian – Phyllome");
    assert!(wait_until(10, || !s.window_shown("Test Debian – Phyllome")));
    s.focus("Phyllome");
    let populated = s.screenshot("library-populated.png");
    let (_, _, _, _, blue) = find(&populated, ACCENT);
    assert!(blue < 500, "the library still shows its empty state");
    assert!(s
        .tree()
        .iter()
        .any(|n| n.role == "list item" && n.name == "Test Debian"));

    // Closing with a VM running (and no tray host) asks first.
    let definition = std::fs::read(dir.join("vm.toml")).unwrap();
    s.press_in("Close", "Phyllome");
    assert!(s.wait_text("Virtual Machines Are Running", 10));
    s.screenshot("library-quit-running.png");
    s.press("Force Off and Quit");
    let status = app
        .wait_exit(20)
        .expect("the app quits after forcing the VM off");
    assert!(status.success(), "{status:?}");
    assert_eq!(std::fs::read(dir.join("vm.toml")).unwrap(), definition);
    assert!(config.disks[0].path.exists());
}

#[test]
fn bad_input_is_refused_with_its_reason_and_3d_says_why_it_is_off() {
    let s = Session::new();
    let tmp = tempfile::tempdir().unwrap();
    let kernel = tmp.path().join("spin.elf");
    tiny_guest("spin", &kernel);
    define(&s, "taken", "Taken", &kernel);

    // Not an ISO: the source page says so and Next stays off.
    let notes = tmp.path().join("notes.iso");
    std::fs::write(&notes, "just some notes, not an image\n".repeat(2000)).unwrap();
    {
        let _app = s.app(&[notes.as_os_str()], &[], &log("bad-input-a.log"));
        s.focus("New Virtual Machine");
        assert!(s.wait_text("is not an installer image", 20));
        let next = s
            .tree()
            .into_iter()
            .find(|n| n.role == "push button" && n.name == "Next")
            .unwrap();
        assert!(!next.states.iter().any(|x| x == "sensitive"), "{next:?}");
        s.screenshot("wizard-1-not-an-iso.png");
    }

    // With OpenGL disabled, 3D is off and the page says why; a taken name is refused.
    let iso = tmp.path().join("debian.iso");
    debian_like_iso(&iso, &kernel);
    let mut app = s.app(
        &[iso.as_os_str()],
        &[("GDK_DEBUG", "gl-disable")],
        &log("bad-input-b.log"),
    );
    s.focus("New Virtual Machine");
    assert!(s.wait_text("starts with UEFI firmware", 20));
    s.keys(&["Return"]);
    assert!(s.wait_text("Step 2 of 4", 10));
    s.keys(&["ctrl+a"]);
    s.type_text("taken");
    assert!(
        s.wait_text("exists already", 10),
        "a taken name was accepted"
    );
    s.screenshot("wizard-2-name-taken.png");
    s.keys(&["ctrl+a"]);
    s.type_text("Fresh");
    s.keys(&["Return"]);
    assert!(s.wait_text("Step 3 of 4", 10));
    assert!(
        s.wait_text("GDK_DEBUG=gl-disable", 20),
        "no reason for 3D being off"
    );
    let switch = s
        .tree()
        .into_iter()
        .find(|n| n.role == "check box" && n.name == "3D acceleration")
        .unwrap();
    assert!(!switch.states.iter().any(|x| x == "checked"), "{switch:?}");
    assert!(
        !switch.states.iter().any(|x| x == "sensitive"),
        "{switch:?}"
    );
    s.screenshot("wizard-3-graphics-no-gl.png");

    // Escape cancels: nothing is made.
    s.keys(&["Escape"]);
    assert!(wait_until(10, || !s.window_shown("New Virtual Machine")));
    let folders: Vec<_> = std::fs::read_dir(s.library())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(folders, ["taken"]);
    drop(app.0.kill());
}

/// The library window's background brightness, below its rows (at 380, 500).
fn background(shot: &(u32, u32, Vec<u8>)) -> u8 {
    let (w, _, rgb) = shot;
    let i = ((500 * w + 380) * 3) as usize;
    rgb[i]
}

#[test]
fn a_broken_definition_is_listed_with_its_reason_and_left_alone() {
    let s = Session::new();
    let tmp = tempfile::tempdir().unwrap();
    let kernel = tmp.path().join("spin.elf");
    tiny_guest("spin", &kernel);
    define(&s, "good", "Good VM", &kernel);
    let broken = s.library().join("broken");
    std::fs::create_dir_all(&broken).unwrap();
    let garbage = b"version = 1\nname = [unterminated\n\x00\xff garbage";
    std::fs::write(broken.join("vm.toml"), garbage).unwrap();
    {
        let _app = s.app(&[], &[], &log("broken.log"));
        s.focus("Phyllome");
        assert!(s.wait_text("Damaged definition in “broken”", 30));
        assert!(s.wait_text("Good VM", 5));
        let light = s.screenshot("library-broken.png");
        assert!(background(&light) > 200, "the light style is not light");
    }
    assert_eq!(std::fs::read(broken.join("vm.toml")).unwrap(), garbage);

    // The same in the dark style.
    let _app = s.app(
        &[],
        &[("ADW_DEBUG_COLOR_SCHEME", "prefer-dark")],
        &log("broken-dark.log"),
    );
    s.focus("Phyllome");
    assert!(s.wait_text("Damaged definition in “broken”", 30));
    let dark = s.screenshot("library-dark.png");
    assert!(background(&dark) < 80, "the dark style is not dark");
    assert_eq!(std::fs::read(broken.join("vm.toml")).unwrap(), garbage);
}

#[test]
fn the_tray_menu_reaches_the_app_and_keeps_vms_running_when_the_window_closes() {
    let s = Session::new();
    let tmp = tempfile::tempdir().unwrap();
    let kernel = tmp.path().join("power_button.elf");
    tiny_guest("power_button", &kernel);
    define(&s, "button", "Button", &kernel);

    let script = workspace().join("tests/scripts/sni_watcher.py");
    let mut watcher = s
        .command("/usr/bin/python3")
        .arg(&script)
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3-dbus is installed");
    let mut lines = BufReader::new(watcher.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "ready");

    let mut app = s.app(&[], &[], &log("tray.log"));
    let registered = lines.next().unwrap().unwrap();
    let service = registered
        .strip_prefix("registered ")
        .expect("the tray registered with the watcher")
        .to_owned();
    let menu = |args: &[&str]| -> (bool, String) {
        let out = s
            .command("/usr/bin/python3")
            .arg(&script)
            .args(args)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let click = |label: &str| {
        let (ok, _) = menu(&["click", &service, label]);
        assert!(ok, "no tray entry {label}");
    };
    let has_entry = |label: &str| menu(&["menu", &service]).1.lines().any(|l| l == label);

    // Hide and show the window from the tray.
    s.focus("Phyllome");
    assert!(s.wait_text("Button", 30));
    click("Hide Phyllome");
    assert!(
        wait_until(10, || !s.window_shown("Phyllome")),
        "the window stayed"
    );
    assert!(wait_until(10, || has_entry("Show Phyllome")));
    click("Show Phyllome");
    assert!(
        wait_until(10, || s.window_shown("Phyllome")),
        "the window did not come back"
    );

    // A running VM gets its own entries; pause, resume and shut down reach it.
    s.press("Start");
    assert!(s.wait_text("Tiny test guest · Running", 20));
    assert!(
        wait_until(10, || s.window_shown("Button – Phyllome")),
        "the display window did not open"
    );
    assert!(
        wait_until(10, || has_entry("Pause")),
        "{}",
        menu(&["menu", &service]).1
    );
    assert!(has_entry("Button"));
    click("Pause");
    assert!(s.wait_text("Tiny test guest · Paused", 10));
    click("Resume");
    assert!(s.wait_text("Tiny test guest · Running", 10));

    // With a tray host, closing the window keeps the VM running.
    s.press_in("Close", "Phyllome");
    assert!(
        wait_until(10, || !s.window_shown("Phyllome")),
        "the window stayed"
    );
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        app.0.try_wait().unwrap().is_none(),
        "the app quit with a VM running"
    );
    assert!(has_entry("Pause"), "the VM is no longer running");

    // The power button reaches the guest, which powers off.
    click("Shut Down");
    assert!(
        wait_until(20, || !has_entry("Pause")),
        "the guest did not power off"
    );
    // Its display window goes with it, and the app stays (it used to abort, now and
    // then, when GTK told the torn-down window's handlers it was no longer active).
    assert!(
        wait_until(10, || !s.window_shown("Button – Phyllome")),
        "the display window outlived its VM"
    );
    std::thread::sleep(Duration::from_secs(1));
    assert!(app.0.try_wait().unwrap().is_none(), "the app ended");
    click("Show Phyllome");
    s.focus("Phyllome");
    assert!(s.wait_text("Tiny test guest · Off", 10));
    click("Quit");
    let status = app
        .wait_exit(20)
        .expect("the tray's Quit quits once no VM runs");
    assert!(status.success());
    let _ = watcher.kill();
    let _ = watcher.wait();
}

#[test]
fn settings_eject_the_installer_and_turn_3d_on_and_delete_keeps_the_disk_when_asked() {
    let s = Session::new();
    let tmp = tempfile::tempdir().unwrap();
    let kernel = tmp.path().join("spin.elf");
    tiny_guest("spin", &kernel);
    let iso = tmp.path().join("installer.iso");
    debian_like_iso(&iso, &kernel);
    let dir = define(&s, "inst", "Installer VM", &kernel);
    let mut c = VmConfig::from_file(&dir.join("vm.toml")).unwrap();
    let disk = dir.join("disk.img");
    std::fs::write(&disk, vec![0x5a; 1 << 20]).unwrap();
    c.disks = vec![
        phyllome_vmm::config::DiskConfig {
            path: disk.clone(),
            readonly: false,
            format: None,
            queues: 1,
            cache: phyllome_vmm::devices::virtio::blk::CacheMode::Writeback,
        },
        phyllome_vmm::config::DiskConfig {
            path: iso.clone(),
            readonly: true,
            format: None,
            queues: 1,
            cache: phyllome_vmm::devices::virtio::blk::CacheMode::Writeback,
        },
    ];
    c.about.installer = Some(iso.clone());
    std::fs::write(dir.join("vm.toml"), c.to_toml()).unwrap();

    let _app = s.app(&[], &[], &log("settings.log"));
    s.focus("Phyllome");
    assert!(s.wait_text("Installer VM", 30));
    s.press("More Actions");
    s.press("Settings");
    s.focus("Installer VM Settings");
    s.screenshot("settings-general.png");
    s.press("Disks");
    assert!(s.wait_text("installer.iso", 10));
    s.screenshot("settings-disks.png");
    s.press("Eject");
    assert!(wait_until(10, || {
        let c = VmConfig::from_file(&dir.join("vm.toml")).unwrap();
        c.disks.len() == 1 && c.about.installer.is_none()
    }));
    let c = VmConfig::from_file(&dir.join("vm.toml")).unwrap();
    assert_eq!(c.disks[0].path, disk, "the wrong disk went");
    assert!(iso.exists(), "ejecting deleted the image");

    s.press("Graphics");
    assert!(
        s.wait_text("Available, drawn by", 20),
        "the 3D probe did not answer"
    );
    s.press("3D acceleration");
    assert!(wait_until(10, || {
        VmConfig::from_file(&dir.join("vm.toml"))
            .unwrap()
            .devices
            .gpu
            .is_some_and(|g| g.renderer == phyllome_vmm::config::Renderer::Virgl)
    }));
    s.screenshot("settings-graphics.png");
    s.press_in("Close", "Installer VM Settings");
    assert!(wait_until(10, || !s.window_shown("Installer VM Settings")));

    // Delete, keeping the disk: the library forgets the VM, the disk stays.
    s.focus("Phyllome");
    s.press("More Actions");
    s.press("Delete…");
    assert!(s.wait_text("Delete Installer VM?", 10));
    s.screenshot("library-delete.png");
    s.press("Delete, Keep Disks");
    // (The empty state's text is in the tree all along, on its hidden page.)
    assert!(wait_until(10, || !dir.exists()));
    assert!(wait_until(10, || !s
        .tree()
        .iter()
        .any(|n| n.role == "list item" && n.name == "Installer VM")));
    let kept = s.library().join(".kept-inst/disk.img");
    assert_eq!(std::fs::read(&kept).unwrap(), vec![0x5a; 1 << 20]);
}

#[test]
fn a_vm_whose_folder_vanished_says_so_and_nothing_crashes() {
    let s = Session::new();
    let tmp = tempfile::tempdir().unwrap();
    let kernel = tmp.path().join("spin.elf");
    tiny_guest("spin", &kernel);
    let dir = define(&s, "gone", "Gone VM", &kernel);
    let mut app = s.app(&[], &[], &log("gone.log"));
    s.focus("Phyllome");
    assert!(s.wait_text("Gone VM", 30));
    std::fs::remove_dir_all(&dir).unwrap();
    s.press("Start");
    assert!(s.wait_text("is gone; it was removed outside Phyllome", 10));
    s.screenshot("library-folder-gone.png");
    assert!(wait_until(10, || !s
        .tree()
        .iter()
        .any(|n| n.role == "list item" && n.name == "Gone VM")));
    assert!(app.0.try_wait().unwrap().is_none(), "the app crashed");
}

#[test]
fn a_3d_vms_graphics_process_dying_leaves_the_vm_running_and_restart_brings_it_back() {
    let s = Session::new();
    let tmp = tempfile::tempdir().unwrap();
    let kernel = tmp.path().join("spin.elf");
    tiny_guest("spin", &kernel);
    let dir = define(&s, "gl", "GL VM", &kernel);
    let mut c = VmConfig::from_file(&dir.join("vm.toml")).unwrap();
    c.devices.gpu = Some(phyllome_vmm::config::GpuConfig {
        width: 1024,
        height: 768,
        dump_scanout: None,
        display_socket: None,
        renderer: phyllome_vmm::config::Renderer::Virgl,
    });
    std::fs::write(dir.join("vm.toml"), c.to_toml()).unwrap();
    let disk_before = std::fs::read(dir.join("vm.toml")).unwrap();
    let app = s.app(&[], &[], &log("gpu-death.log"));
    s.focus("Phyllome");
    assert!(s.wait_text("GL VM", 30));
    s.press("Start");
    assert!(s.wait_text("Tiny test guest · Running", 20));
    // The display window attaches to the graphics process (the guest never draws).
    assert!(s.wait_text("Waiting for the guest's display…", 20));
    let gpu = one_gpu_child(app.0.id(), 20);
    assert_eq!(seccomp_mode(gpu), "2", "the graphics process is filtered");

    kill_hard(gpu);
    assert!(s.wait_text("The graphics device stopped", 10));
    assert!(s.wait_text(
        "The virtual machine is still running, without its display.",
        5
    ));
    s.screenshot("display-gpu-stopped.png");
    s.focus("Phyllome");
    assert!(
        s.wait_text("Tiny test guest · Running", 5),
        "the VM stopped"
    );
    assert!(app.0.id() > 0);

    s.press_in("Restart", "GL VM – Phyllome");
    assert!(s.wait_text("Waiting for the guest's display…", 20));
    let again = one_gpu_child(app.0.id(), 20);
    assert_ne!(again, gpu);
    assert_eq!(seccomp_mode(again), "2");
    s.screenshot("display-gpu-restarted.png");
    assert!(s.wait_text("Tiny test guest · Running", 5));
    assert_eq!(std::fs::read(dir.join("vm.toml")).unwrap(), disk_before);
    let mut app = app;
    assert!(app.0.try_wait().unwrap().is_none(), "the app crashed");
}

/// A running VM's CD drive, from its settings: the disc comes out and another goes in,
/// in the definition and in the running VM (which would say if it could not), and the
/// window shows the drive as it is.
#[test]
fn settings_eject_and_insert_discs_in_a_running_vms_cd_drive() {
    let s = Session::new();
    let tmp = tempfile::tempdir().unwrap();
    let kernel = tmp.path().join("spin.elf");
    tiny_guest("spin", &kernel);
    let (first, second) = (tmp.path().join("first.iso"), tmp.path().join("second.iso"));
    std::fs::write(&first, vec![1u8; 1 << 16]).unwrap();
    std::fs::write(&second, vec![2u8; 1 << 16]).unwrap();
    let dir = define(&s, "cd", "Disc VM", &kernel);
    let mut c = VmConfig::from_file(&dir.join("vm.toml")).unwrap();
    c.cdroms = vec![phyllome_vmm::config::CdromConfig {
        path: Some(first.clone()),
    }];
    std::fs::write(dir.join("vm.toml"), c.to_toml()).unwrap();
    let drive = || {
        VmConfig::from_file(&dir.join("vm.toml")).unwrap().cdroms[0]
            .path
            .clone()
    };

    let _app = s.app(&[], &[], &log("settings-cdrom.log"));
    s.focus("Phyllome");
    assert!(s.wait_text("Disc VM", 30));
    s.press("Start");
    assert!(s.wait_text("Tiny test guest · Running", 20));
    s.focus("Phyllome");
    s.press("More Actions");
    s.press("Settings");
    s.focus("Disc VM Settings");
    s.press("Disks");
    assert!(s.wait_text("first.iso", 10));
    assert!(s.wait_text("Discs change at once", 5));
    s.screenshot("settings-cdrom-disc.png");
    s.press("Eject");
    assert!(wait_until(10, || drive().is_none()));
    assert!(s.wait_text("No disc", 10));
    s.press("Insert Disc…");
    s.focus("Insert Disc…");
    s.keys(&["ctrl+l"]);
    s.type_text(&second.display().to_string());
    s.keys(&["Return"]);
    assert!(wait_until(10, || drive().as_deref() == Some(second.as_path())));
    assert!(wait_until(10, || !s.window_shown("Insert Disc…")));
    std::thread::sleep(Duration::from_secs(1));
    s.focus("Disc VM Settings");
    assert!(s.wait_text("second.iso", 10));
    s.screenshot("settings-cdrom-second.png");
    // The running VM took both changes: a refusal would be a toast in the library.
    let said: Vec<String> = s.tree().into_iter().map(|n| n.name).collect();
    assert!(
        !said
            .iter()
            .any(|n| n.contains("CD drive") || n.contains("CD image") || n.contains("locked")),
        "{said:?}"
    );
}

/// A VM's network in the app: while the VM runs, passt serves it as a child of the app on
/// a socket pair; the settings' Network page shows the card's address and turns the
/// network off (saved at once), and the next start has no passt.
#[test]
fn settings_turn_a_vms_network_off_and_the_next_start_has_no_passt() {
    use phyllome_tests::processes::passt_children;
    use phyllome_vmm::network::NetMode;
    let s = Session::new();
    let tmp = tempfile::tempdir().unwrap();
    let kernel = tmp.path().join("spin.elf");
    tiny_guest("spin", &kernel);
    let dir = define(&s, "net", "Net VM", &kernel);
    let mut c = VmConfig::from_file(&dir.join("vm.toml")).unwrap();
    c.network = "passt,mac=52:54:00:01:02:03".parse().unwrap();
    std::fs::write(dir.join("vm.toml"), c.to_toml()).unwrap();
    let mode = || {
        VmConfig::from_file(&dir.join("vm.toml"))
            .unwrap()
            .network
            .mode
    };

    let app = s.app(&[], &[], &log("settings-network.log"));
    let pid = app.0.id();
    s.focus("Phyllome");
    assert!(s.wait_text("Net VM", 30));
    s.press("Start");
    assert!(s.wait_text("Tiny test guest · Running", 20));
    assert!(
        wait_until(10, || passt_children(pid).len() == 1),
        "no passt serves the running VM"
    );
    s.focus("Phyllome");
    s.press("More Actions");
    s.press("Settings");
    s.focus("Net VM Settings");
    s.press("Network");
    assert!(s.wait_text("User-mode networking through passt", 10));
    assert!(s.wait_text("52:54:00:01:02:03", 5));
    assert!(s.wait_text("Changes take effect the next time", 5));
    s.screenshot("settings-network.png");
    s.press("Network card");
    assert!(wait_until(10, || mode() == NetMode::None), "not saved");
    s.keys(&["Escape"]);
    assert!(wait_until(10, || !s.window_shown("Net VM Settings")));

    // Off and on again: no passt this time.
    s.focus("Phyllome");
    s.press("More Actions");
    s.press("Force Off");
    assert!(s.wait_text("Tiny test guest · Off", 20));
    assert!(
        wait_until(10, || passt_children(pid).is_empty()),
        "passt outlived its VM"
    );
    s.press("Start");
    assert!(s.wait_text("Tiny test guest · Running", 20));
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        passt_children(pid).is_empty(),
        "a VM without a network ran passt"
    );
    let said: Vec<String> = s.tree().into_iter().map(|n| n.name).collect();
    assert!(
        !said.iter().any(|n| n.contains("network")),
        "a toast about the network: {said:?}"
    );
}
