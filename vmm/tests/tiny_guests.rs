//! Tiny guests on /dev/kvm, through the public API: boot entries, port I/O and MMIO
//! routing, the serial interrupt, reset, shutdown, crashes, SMP start-up, the power
//! button, and pause/resume.

#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

mod common;

use common::{config_for, run_to_stop, watch, Observed};
use phyllome_vmm::devices::bus::BusDevice;
use phyllome_vmm::devices::virtio::shm::ShmMapper;
use phyllome_vmm::devices::virtio::DeviceCore;
use phyllome_vmm::vm::{AddressSpace, ExtraDevice};
use phyllome_vmm::{StopReason, Vm, VmCommand, VmEvent};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const T: Duration = Duration::from_secs(20);

#[test]
fn long_mode_elf_entry_sees_zero_page_and_powers_off() {
    let seen = run_to_stop(config_for("hello64"), T);
    assert!(
        seen.serial.contains("PHYLLOME-LONG-MODE-OK"),
        "{:?}",
        seen.serial
    );
    assert_eq!(seen.stopped, Some(StopReason::PowerOff));
}

#[test]
fn pvh_entry_gets_start_info_and_command_line() {
    let mut c = config_for("hello_pvh");
    c.boot.cmdline = Some("phyllome.test=pvh-cmdline".into());
    let seen = run_to_stop(c, T);
    assert!(
        seen.serial
            .contains("PHYLLOME-PVH-OK cmdline=phyllome.test=pvh-cmdline"),
        "{:?}",
        seen.serial
    );
    assert_eq!(seen.stopped, Some(StopReason::PowerOff));
}

#[test]
fn reset_under_no_reboot_stops_with_reset() {
    let seen = run_to_stop(config_for("reset"), T);
    assert_eq!(seen.serial.matches("PHYLLOME-BOOT").count(), 1);
    assert_eq!(seen.stopped, Some(StopReason::Reset));
}

#[test]
fn reset_with_reboot_restarts_the_guest() {
    let mut c = config_for("reset");
    c.machine.no_reboot = false;
    let handle = Vm::start(c).unwrap();
    let mut seen = Observed::default();
    let rebooted_twice = watch(&handle, &mut seen, T, |s| {
        s.serial.matches("PHYLLOME-BOOT").count() >= 3
    });
    assert!(rebooted_twice, "{seen:?}");
    assert!(
        seen.events
            .iter()
            .filter(|e| **e == VmEvent::Rebooted)
            .count()
            >= 2,
        "{seen:?}"
    );
    handle.send(VmCommand::ForceOff).unwrap();
    assert!(watch(&handle, &mut seen, T, |s| s.stopped.is_some()));
    assert_eq!(seen.stopped, Some(StopReason::ForcedOff));
}

/// A vhost-user backend serves one connection; the VM must keep it across guest reboots
/// (each rebuilt machine drives the same connection) and close it only when it stops.
#[test]
fn vhost_user_connections_survive_reboots_and_close_at_stop() {
    use phyllome_vmm::config::{VhostUserConfig, VhostUserKind};
    use phyllome_vmm::devices::virtio::blk::{Block, RawDisk};
    let dir = tempfile::tempdir().unwrap();
    let (socket, image) = (dir.path().join("blk.sock"), dir.path().join("disk.img"));
    std::fs::File::create(&image)
        .unwrap()
        .set_len(1 << 20)
        .unwrap();
    let disk = RawDisk::open(&image, false).unwrap();
    let sock = socket.clone();
    let backend = std::thread::spawn(move || {
        phyllome_vmm::vhost_user::serve("t", Block::new(disk, "t", 1), &sock)
    });
    while !socket.exists() {
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut c = config_for("reset");
    c.machine.no_reboot = false;
    c.vhost_user.push(VhostUserConfig {
        kind: VhostUserKind::Blk,
        socket,
    });
    let handle = Vm::start(c).unwrap();
    let mut seen = Observed::default();
    let rebooted = watch(&handle, &mut seen, T, |s| {
        s.serial.matches("PHYLLOME-BOOT").count() >= 3 || s.stopped.is_some()
    });
    assert!(rebooted && seen.stopped.is_none(), "{seen:?}");
    assert!(
        !backend.is_finished(),
        "the connection was dropped at a reboot"
    );
    handle.send(VmCommand::ForceOff).unwrap();
    assert!(watch(&handle, &mut seen, T, |s| s.stopped.is_some()));
    assert_eq!(seen.stopped, Some(StopReason::ForcedOff));
    drop(handle);
    assert!(backend.join().unwrap().is_ok(), "the backend ends cleanly");
}

/// A test device with a 1 MiB shared memory region: a 1 written to its configuration maps
/// `file` at 0x2000 in the region, a 2 unmaps it; what the mapper answered is kept.
struct ShmDevice {
    file: std::fs::File,
    mapper: Option<Arc<dyn ShmMapper>>,
    answers: Arc<Mutex<Vec<String>>>,
}

impl DeviceCore for ShmDevice {
    fn device_type(&self) -> u32 {
        4
    }
    fn num_queues(&self) -> usize {
        1
    }
    fn max_queue_size(&self) -> u16 {
        16
    }
    fn features(&self) -> u64 {
        0
    }
    fn config(&self) -> Vec<u8> {
        Vec::new()
    }
    fn write_config(&mut self, _offset: usize, data: &[u8]) {
        use std::os::fd::AsFd;
        let Some(m) = &self.mapper else {
            self.answers.lock().unwrap().push("no mapper".into());
            return;
        };
        let answer = match data.first() {
            Some(1) => m.map(1, 0x2000, self.file.as_fd(), 0, 0x1000, true),
            Some(2) => m.unmap(1, 0x2000, 0x1000),
            // Past the region: refused, and the device goes on.
            _ => m.map(1, 0x10_0000, self.file.as_fd(), 0, 0x1000, true),
        };
        self.answers.lock().unwrap().push(format!("{answer:?}"));
    }
    fn process(
        &mut self,
        _queue: usize,
        _mem: &phyllome_vmm::memory::GuestMemory,
        _chain: phyllome_vmm::devices::virtio::Chain<'_>,
    ) -> u32 {
        0
    }
    fn shared_memory(&self) -> Vec<(u8, u64)> {
        vec![(1, 1 << 20)]
    }
    fn set_shared_memory(&mut self, mapper: Option<Arc<dyn ShmMapper>>) {
        self.mapper = mapper;
    }
}

/// A vhost-user backend's shared memory region appears in the guest behind BAR 2: the
/// guest reads the file the backend maps there (through our frontend's SHMEM_MAP
/// handling and a KVM memory slot), its writes reach the file, and after SHMEM_UNMAP it
/// reads zeros. A request outside the region is refused back to the backend.
#[test]
fn a_backends_shared_memory_mapping_reaches_the_guest_and_leaves_again() {
    use phyllome_vmm::config::{VhostUserConfig, VhostUserKind};
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("shm.sock");
    let mut file = tempfile::tempfile().unwrap();
    file.write_all(b"PHYLLOME-SHM-OK\n\0").unwrap();
    file.set_len(0x1000).unwrap();
    let answers = Arc::new(Mutex::new(Vec::new()));
    let device = ShmDevice {
        file: file.try_clone().unwrap(),
        mapper: None,
        answers: answers.clone(),
    };
    let sock = socket.clone();
    let backend = std::thread::spawn(move || phyllome_vmm::vhost_user::serve("t", device, &sock));
    while !socket.exists() {
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut c = config_for("shm");
    c.vhost_user.push(VhostUserConfig {
        kind: VhostUserKind::Rng,
        socket,
    });
    let seen = run_to_stop(c, T);
    assert!(
        seen.serial
            .contains("PHYLLOME-SHM-OK\nPHYLLOME-SHM-UNMAPPED-ZERO"),
        "{:?} {:?}",
        seen.serial,
        answers.lock().unwrap()
    );
    assert_eq!(seen.stopped, Some(StopReason::PowerOff));
    let mut back = [0u8; 15];
    std::os::unix::fs::FileExt::read_at(&file, &mut back, 0).unwrap();
    assert_eq!(
        &back, b"PHYLLOME-sHM-OK",
        "the guest's write reached the file"
    );
    let answers = answers.lock().unwrap();
    assert_eq!(answers[..2], ["Ok(())", "Ok(())"]);
    assert!(
        answers[2].starts_with("Err(Host") && answers.len() == 3,
        "the frontend refused the mapping past the region: {answers:?}"
    );
    assert!(backend.join().unwrap().is_ok());
}

/// A guest moves the entropy device's BAR 0, as UEFI firmware reassigns every BAR, and
/// drives it at its new place (see `guests/bar_move.S`): the doorbell at the old address
/// serves nothing, while with memory decoding off (no MMIO exit reaches the device) the
/// doorbell at the new address does, so KVM's ioeventfd went along; BAR 0 moved onto RAM
/// leaves RAM as RAM and the device running, and moved onto the keyboard's BAR 0 and apart
/// again, both devices answer.
#[test]
fn a_moved_virtio_bar_rings_its_doorbell_at_the_new_address_only() {
    let mut c = config_for("bar_move");
    c.devices.rng = true;
    c.devices.input = true;
    let handle = Vm::start(c).unwrap();
    let mut seen = Observed::default();
    let stopped = watch(&handle, &mut seen, Duration::from_secs(60), |s| {
        s.stopped.is_some()
    });
    assert!(stopped, "{seen:?}");
    let markers = [
        "PHYLLOME-BAR-MOVED\n",
        "PHYLLOME-BAR-OLD-DOORBELL-QUIET\n",
        "PHYLLOME-BAR-IOEVENTFD-KICKED entropy=",
        "PHYLLOME-BAR-ON-RAM-IS-RAM\n",
        "PHYLLOME-BAR-BACK-FROM-RAM\n",
        "PHYLLOME-BAR-OVERLAP-SURVIVED num_queues=",
        "PHYLLOME-BAR-APART-BOTH-ANSWER\n",
        "PHYLLOME-BAR-DONE\n",
    ];
    let mut rest = seen.serial.as_str();
    for m in markers {
        let at = rest
            .find(m)
            .unwrap_or_else(|| panic!("no {m:?} in {:?}", seen.serial));
        rest = &rest[at + m.len()..];
    }
    let entropy = seen
        .serial
        .split("entropy=")
        .nth(1)
        .and_then(|s| s.get(..16))
        .unwrap();
    assert!(
        entropy.bytes().all(|b| b.is_ascii_hexdigit()) && entropy != "0".repeat(16),
        "{entropy:?}"
    );
    assert!(
        !seen.serial.contains("PHYLLOME-BAR-BAD"),
        "{:?}",
        seen.serial
    );
    assert_eq!(seen.stopped, Some(StopReason::PowerOff));
    assert!(
        !seen.events.iter().any(|e| matches!(e, VmEvent::Error(_))),
        "{seen:?}"
    );
}

#[test]
fn triple_fault_stops_with_the_faulting_rip() {
    let seen = run_to_stop(config_for("triple_fault"), T);
    assert!(seen.serial.contains("PHYLLOME-ABOUT-TO-CRASH"));
    match seen.stopped {
        Some(StopReason::TripleFault { vcpu: 0, rip }) => {
            assert!(
                (0x10_0000..0x10_1000).contains(&rip),
                "rip {rip:#x} is in the guest image"
            );
        }
        other => panic!("expected a triple fault, got {other:?}"),
    }
}

/// Records writes and answers reads with the offset in every byte.
#[derive(Default)]
struct Probe {
    writes: Vec<(u64, Vec<u8>)>,
}

impl BusDevice for Probe {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        data.fill(offset as u8);
    }
    fn write(&mut self, offset: u64, data: &[u8]) {
        self.writes.push((offset, data.to_vec()));
    }
}

#[test]
fn port_io_and_mmio_reach_the_right_device() {
    let pio = Arc::new(Mutex::new(Probe::default()));
    let mmio = Arc::new(Mutex::new(Probe::default()));
    let extra = vec![
        ExtraDevice {
            space: AddressSpace::Pio,
            base: 0x520,
            len: 4,
            device: pio.clone(),
        },
        ExtraDevice {
            space: AddressSpace::Mmio,
            base: 0xf000_0000,
            len: 0x1000,
            device: mmio.clone(),
        },
    ];
    let handle = Vm::start_with_devices(config_for("io_devices"), extra).unwrap();
    let mut seen = Observed::default();
    assert!(watch(&handle, &mut seen, T, |s| s.stopped.is_some()));
    assert!(seen.serial.contains("PHYLLOME-IO-OK"), "{:?}", seen.serial);
    assert_eq!(seen.stopped, Some(StopReason::PowerOff));
    assert_eq!(
        pio.lock().unwrap().writes,
        vec![(0, vec![0xab]), (0, vec![0x34, 0x12])]
    );
    assert_eq!(
        mmio.lock().unwrap().writes,
        vec![(0x10, 0xcafe_f00du32.to_le_bytes().to_vec())]
    );
}

#[test]
fn serial_interrupt_reaches_the_guest_handler() {
    let seen = run_to_stop(config_for("serial_irq"), T);
    assert!(
        seen.serial.contains("PHYLLOME-IRQ-ARMED"),
        "{:?}",
        seen.serial
    );
    assert!(
        seen.serial.contains("PHYLLOME-IRQ-HANDLED"),
        "{:?}",
        seen.serial
    );
    assert_eq!(seen.stopped, Some(StopReason::PowerOff));
}

#[test]
fn second_vcpu_starts_through_init_sipi_and_reports_in() {
    let mut c = config_for("smp");
    c.machine.cpus = 2;
    let seen = run_to_stop(c, Duration::from_secs(60));
    assert!(
        seen.serial.contains("PHYLLOME-AP-ALIVE apic=1"),
        "{:?}",
        seen.serial
    );
    assert!(
        seen.serial.contains("PHYLLOME-BSP-SAW-AP"),
        "{:?}",
        seen.serial
    );
    assert_eq!(seen.stopped, Some(StopReason::PowerOff));
}

#[test]
fn power_button_reaches_the_guest_which_powers_off() {
    let handle = Vm::start(config_for("power_button")).unwrap();
    let mut seen = Observed::default();
    assert!(watch(&handle, &mut seen, T, |s| s
        .serial
        .contains("WAITING-FOR-BUTTON")));
    assert!(!seen.serial.contains("BUTTON-PRESSED"));
    handle.send(VmCommand::PowerButton).unwrap();
    assert!(watch(&handle, &mut seen, T, |s| s.stopped.is_some()));
    assert!(seen.serial.contains("PHYLLOME-BUTTON-PRESSED"));
    assert_eq!(seen.stopped, Some(StopReason::PowerOff));
}

/// Remembers the last value written and how many writes there were.
#[derive(Default)]
struct Counter {
    last: u32,
    writes: u64,
}

impl BusDevice for Counter {
    fn read(&mut self, _: u64, data: &mut [u8]) {
        data.fill(0);
    }
    fn write(&mut self, _: u64, data: &[u8]) {
        let mut b = [0u8; 4];
        b[..data.len().min(4)].copy_from_slice(&data[..data.len().min(4)]);
        self.last = u32::from_le_bytes(b);
        self.writes += 1;
    }
}

#[test]
fn pause_stops_guest_progress_and_resume_restarts_it() {
    let counter = Arc::new(Mutex::new(Counter::default()));
    let extra = vec![ExtraDevice {
        space: AddressSpace::Pio,
        base: 0x520,
        len: 4,
        device: counter.clone(),
    }];
    let handle = Vm::start_with_devices(config_for("spin"), extra).unwrap();
    let writes = || counter.lock().unwrap().writes;
    let deadline = std::time::Instant::now() + T;
    while writes() < 100 {
        assert!(std::time::Instant::now() < deadline, "the guest never ran");
        std::thread::sleep(Duration::from_millis(5));
    }

    handle.send(VmCommand::Pause).unwrap();
    let mut seen = Observed::default();
    assert!(watch(&handle, &mut seen, T, |s| s
        .events
        .contains(&VmEvent::Paused)));
    let frozen = writes();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(writes(), frozen, "no guest progress while paused");
    let last = counter.lock().unwrap().last;
    assert_eq!(u64::from(last), frozen, "the guest's own counter agrees");

    handle.send(VmCommand::Pause).unwrap();
    assert!(watch(&handle, &mut seen, T, |s| s
        .events
        .iter()
        .any(|e| matches!(e, VmEvent::Error(_)))));

    handle.send(VmCommand::Resume).unwrap();
    assert!(watch(&handle, &mut seen, T, |s| s
        .events
        .contains(&VmEvent::Resumed)));
    let deadline = std::time::Instant::now() + T;
    while writes() < frozen + 100 {
        assert!(
            std::time::Instant::now() < deadline,
            "the guest did not resume"
        );
        std::thread::sleep(Duration::from_millis(5));
    }

    handle.send(VmCommand::ForceOff).unwrap();
    assert!(watch(&handle, &mut seen, T, |s| s.stopped.is_some()));
    assert_eq!(seen.stopped, Some(StopReason::ForcedOff));
}

#[test]
fn input_commands_without_input_devices_say_so_and_with_them_are_accepted() {
    let handle = Vm::start(config_for("spin")).unwrap();
    handle
        .send(VmCommand::Key {
            code: 30,
            down: true,
        })
        .unwrap();
    let mut seen = Observed::default();
    assert!(watch(&handle, &mut seen, T, |s| s.events.iter().any(
        |e| matches!(e, VmEvent::Error(m) if m.contains("no keyboard"))
    )));
    handle.send(VmCommand::ForceOff).unwrap();
    assert!(watch(&handle, &mut seen, T, |s| s.stopped.is_some()));

    let mut c = config_for("spin");
    c.devices.input = true;
    let handle = Vm::start(c).unwrap();
    let mut seen = Observed::default();
    handle.send(VmCommand::Pointer { x: 10, y: 20 }).unwrap();
    handle
        .send(VmCommand::Button {
            code: 0x110,
            down: true,
        })
        .unwrap();
    handle.send(VmCommand::ForceOff).unwrap();
    assert!(watch(&handle, &mut seen, T, |s| s.stopped.is_some()));
    assert!(
        !seen.events.iter().any(|e| matches!(e, VmEvent::Error(_))),
        "{seen:?}"
    );
}

/// A display viewer's input and resize requests become commands to the VM: with no
/// keyboard and one display, a key and a resize of display 5 are refused with errors that
/// come back as events; a resize of display 0 is taken.
#[test]
fn a_display_viewer_drives_the_vm_through_the_console_connection() {
    use phyllome_vmm::config::GpuConfig;
    use phyllome_vmm::console_conn::client::ConsoleClient;
    use phyllome_vmm::console_conn::Message;
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("display.sock");
    let mut c = config_for("spin");
    c.devices.gpu = Some(GpuConfig {
        width: 640,
        height: 480,
        dump_scanout: None,
        display_socket: Some(socket.clone()),
        renderer: phyllome_vmm::config::Renderer::TwoD,
    });
    let handle = Vm::start(c).unwrap();
    let mut viewer = ConsoleClient::connect(&socket).unwrap();
    viewer
        .send(Message::Resize {
            scanout: 0,
            width: 800,
            height: 600,
        })
        .unwrap();
    viewer
        .send(Message::Resize {
            scanout: 5,
            width: 800,
            height: 600,
        })
        .unwrap();
    viewer
        .send(Message::Key {
            code: 30,
            down: true,
        })
        .unwrap();
    let mut seen = Observed::default();
    let errors = |s: &Observed| {
        s.events
            .iter()
            .filter_map(|e| match e {
                VmEvent::Error(m) => Some(m.clone()),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    assert!(
        watch(&handle, &mut seen, T, |s| errors(s).len() >= 2),
        "{seen:?}"
    );
    let e = errors(&seen);
    assert!(e[0].contains("no display 5"), "{e:?}");
    assert!(e[1].contains("no keyboard"), "{e:?}");
    handle.send(VmCommand::ForceOff).unwrap();
    assert!(watch(&handle, &mut seen, T, |s| s.stopped.is_some()));
    drop(handle);
    assert!(!socket.exists(), "the socket goes with the VM");
}

/// The firmware's view of fw_cfg: the signature and DMA bit by port, the directory by
/// port (four files: the RAM map, the two ACPI files and the loader script), and the
/// loader script's first command by DMA, whose control field comes back zero.
#[test]
fn a_guest_reads_fw_cfg_by_port_and_by_dma() {
    let seen = run_to_stop(config_for("fw_cfg"), T);
    assert!(
        seen.serial.contains("PHYLLOME-FWCFG-SIGNATURE-OK"),
        "{:?}",
        seen.serial
    );
    assert!(
        seen.serial.contains("PHYLLOME-FWCFG-FILES=04"),
        "{:?}",
        seen.serial
    );
    // The control field read as a little-endian dword: zero; the first command is
    // ALLOCATE (1) as a little-endian 32-bit number.
    assert!(
        seen.serial
            .contains("PHYLLOME-FWCFG-DMA control=00000000 first=00000001"),
        "{:?}",
        seen.serial
    );
    assert_eq!(seen.stopped, Some(StopReason::PowerOff));
}

/// A config that boots the firmware image `image` with the variable store `vars`.
fn firmware_config(image: &std::path::Path, vars: &std::path::Path) -> phyllome_vmm::VmConfig {
    let mut c = phyllome_vmm::VmConfig::new(std::path::PathBuf::new());
    c.boot.kernel = std::path::PathBuf::new();
    c.boot.firmware = Some(image.to_owned());
    c.boot.firmware_vars = Some(vars.to_owned());
    c.machine.memory_mib = 64;
    c.machine.no_reboot = true;
    c.serial.output = phyllome_vmm::SerialOutput::Events;
    c
}

/// Firmware starting at the reset vector programs two bytes of its variable store, erases
/// a block and is refused a write to its code, as OVMF's flash driver would: the changes
/// reach the vars file (atomically, no temporary file left) and the next run sees them.
#[test]
fn firmware_programs_and_erases_its_flash_and_the_vars_file_keeps_it() {
    let image = common::firmware("flash_fw");
    let dir = tempfile::tempdir().unwrap();
    let vars = dir.path().join("VARS.fd");
    // Block 0 erased but for a header; block 1 all zero so that its erase shows.
    let mut initial = vec![0xffu8; 8192];
    initial[..4].copy_from_slice(b"_FVH");
    initial[0x20..0x24].copy_from_slice(&[1, 2, 3, 4]);
    initial[0x1000..].fill(0);
    std::fs::write(&vars, &initial).unwrap();

    let seen = run_to_stop(firmware_config(&image, &vars), T);
    assert!(
        seen.serial.contains("PHYLLOME-FLASH-FRESH"),
        "{:?}",
        seen.serial
    );
    assert!(
        seen.serial.contains("PHYLLOME-FLASH-OK"),
        "{:?}",
        seen.serial
    );
    assert_eq!(
        seen.stopped,
        Some(StopReason::PowerOff),
        "{:?}",
        seen.serial
    );

    let saved = std::fs::read(&vars).unwrap();
    assert_eq!(saved.len(), 8192);
    assert_eq!(saved[0x10..0x12], [0x5a, 0xa5]);
    assert!(saved[0x1000..].iter().all(|&b| b == 0xff));
    // Everything else as it was.
    assert_eq!(saved[..0x10], initial[..0x10]);
    assert_eq!(saved[0x12..0x1000], initial[0x12..0x1000]);
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    let seen = run_to_stop(firmware_config(&image, &vars), T);
    assert!(
        seen.serial.contains("PHYLLOME-FLASH-PERSISTED"),
        "{:?}",
        seen.serial
    );
    assert!(
        seen.serial.contains("PHYLLOME-FLASH-OK"),
        "{:?}",
        seen.serial
    );
    assert_eq!(
        seen.stopped,
        Some(StopReason::PowerOff),
        "{:?}",
        seen.serial
    );
    assert_eq!(std::fs::read(&vars).unwrap(), saved);
}

/// A vars file the flash cannot hold (not a multiple of 4 KiB) stops the VM from starting,
/// with an error that says so, and is left as it was.
#[test]
fn firmware_vars_file_of_the_wrong_size_is_refused_and_left_alone() {
    let image = common::firmware("flash_fw");
    let dir = tempfile::tempdir().unwrap();
    let vars = dir.path().join("VARS.fd");
    let initial: Vec<u8> = (0..5000u32).map(|i| i as u8).collect();
    std::fs::write(&vars, &initial).unwrap();

    let err = match Vm::start(firmware_config(&image, &vars)) {
        Ok(_) => panic!("a 5000-byte variable store was accepted"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("5000 bytes") && err.contains("multiple of 4 KiB"),
        "{err}"
    );
    assert_eq!(std::fs::read(&vars).unwrap(), initial);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

/// Keys typed into a firmware VM reach its PS/2 keyboard while the guest has not bound its
/// virtio keyboard (firmware never does): a polling real-mode reader, as boot firmware
/// is, gets the A key's make and break codes in scancode set 1 (the controller translates).
#[test]
fn keys_reach_the_ps2_keyboard_of_a_firmware_vm() {
    let image = common::firmware("ps2_fw");
    let dir = tempfile::tempdir().unwrap();
    let vars = dir.path().join("VARS.fd");
    std::fs::write(&vars, vec![0xffu8; 4096]).unwrap();
    let mut c = firmware_config(&image, &vars);
    c.devices.input = true;
    let handle = Vm::start(c).unwrap();
    let mut seen = Observed::default();
    assert!(
        watch(&handle, &mut seen, T, |s| s
            .serial
            .contains("PHYLLOME-PS2-READY")),
        "{seen:?}"
    );
    const KEY_A: u16 = 30;
    handle
        .send(VmCommand::Key {
            code: KEY_A,
            down: true,
        })
        .unwrap();
    handle
        .send(VmCommand::Key {
            code: KEY_A,
            down: false,
        })
        .unwrap();
    assert!(
        watch(&handle, &mut seen, T, |s| s.stopped.is_some()),
        "{seen:?}"
    );
    assert!(
        seen.serial.contains("PHYLLOME-PS2 1e\nPHYLLOME-PS2 9e\n"),
        "{:?}",
        seen.serial
    );
    assert_eq!(seen.stopped, Some(StopReason::PowerOff));
    assert!(
        !seen.events.iter().any(|e| matches!(e, VmEvent::Error(_))),
        "{seen:?}"
    );
}

/// The firmware's boot display: firmware that sets up ramfb through fw_cfg (finding
/// `etc/ramfb` in the directory, describing its framebuffer by DMA) and paints it has that
/// picture on the VM's display (scanout 0), before any virtio-gpu driver exists.
#[test]
fn a_firmware_ramfb_reaches_the_display() {
    let image = common::firmware("ramfb_fw");
    let dir = tempfile::tempdir().unwrap();
    let vars = dir.path().join("VARS.fd");
    std::fs::write(&vars, vec![0xffu8; 4096]).unwrap();
    let shot = dir.path().join("scanout.png");
    let mut c = firmware_config(&image, &vars);
    c.devices.gpu = Some(phyllome_vmm::config::GpuConfig {
        width: 640,
        height: 480,
        dump_scanout: Some(shot.clone()),
        display_socket: None,
        renderer: phyllome_vmm::config::Renderer::TwoD,
    });
    let handle = Vm::start(c).unwrap();
    let mut seen = Observed::default();
    assert!(
        watch(&handle, &mut seen, T, |s| s
            .serial
            .contains("PHYLLOME-RAMFB-SET")),
        "{seen:?}"
    );
    // The worker looks 20 times a second; the dump is throttled: wait for the picture.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let picture = loop {
        let decoded = std::fs::File::open(&shot).ok().and_then(|f| {
            let mut reader = png::Decoder::new(std::io::BufReader::new(f))
                .read_info()
                .ok()?;
            let mut buf = vec![0; reader.output_buffer_size()];
            let info = reader.next_frame(&mut buf).ok()?;
            Some((info.width, info.height, info.color_type, buf))
        });
        match decoded {
            Some(p) => break p,
            None if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50));
            }
            None => panic!("no scanout was dumped: {seen:?}"),
        }
    };
    handle.send(VmCommand::ForceOff).unwrap();
    assert!(watch(&handle, &mut seen, T, |s| s.stopped.is_some()));
    let (width, height, color, pixels) = picture;
    assert_eq!((width, height), (64, 48), "the framebuffer's own size");
    let channels = match color {
        png::ColorType::Rgba => 4,
        png::ColorType::Rgb => 3,
        other => panic!("unexpected PNG colour type {other:?}"),
    };
    for px in pixels.chunks_exact(channels) {
        assert_eq!(&px[..3], &[0xff, 0x80, 0x00], "orange everywhere");
    }
}

/// CD drives take the host's disc changes while the VM runs: each change comes back as an
/// event, a drive that does not exist or a disc that cannot be opened is an error that
/// names it, and the VM goes on.
#[test]
fn discs_go_in_and_out_of_the_cd_drives_of_a_running_vm() {
    let tmp = tempfile::tempdir().unwrap();
    let (first, second) = (tmp.path().join("first.iso"), tmp.path().join("second.iso"));
    std::fs::write(&first, vec![1u8; 8192]).unwrap();
    std::fs::write(&second, vec![2u8; 8192]).unwrap();
    let mut c = config_for("spin");
    c.cdroms = vec![
        phyllome_vmm::config::CdromConfig {
            path: Some(first.clone()),
        },
        phyllome_vmm::config::CdromConfig { path: None },
    ];
    let handle = Vm::start(c).unwrap();
    let mut seen = Observed::default();
    handle
        .send(VmCommand::InsertDisc {
            drive: 1,
            path: second.clone(),
        })
        .unwrap();
    handle
        .send(VmCommand::EjectDisc {
            drive: 0,
            force: false,
        })
        .unwrap();
    handle
        .send(VmCommand::InsertDisc {
            drive: 2,
            path: second.clone(),
        })
        .unwrap();
    handle
        .send(VmCommand::InsertDisc {
            drive: 0,
            path: tmp.path().join("missing.iso"),
        })
        .unwrap();
    assert!(watch(&handle, &mut seen, T, |s| s
        .events
        .iter()
        .filter(|e| matches!(e, VmEvent::Error(_)))
        .count()
        == 2));
    let changes: Vec<&VmEvent> = seen
        .events
        .iter()
        .filter(|e| matches!(e, VmEvent::DiscChanged { .. }))
        .collect();
    assert_eq!(
        changes,
        [
            &VmEvent::DiscChanged {
                drive: 1,
                disc: Some(second.clone())
            },
            &VmEvent::DiscChanged {
                drive: 0,
                disc: None
            },
        ]
    );
    let errors: Vec<String> = seen
        .events
        .iter()
        .filter_map(|e| match e {
            VmEvent::Error(m) => Some(m.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(errors[0], "This VM has no CD drive 2; it has 2.");
    assert!(
        errors[1].starts_with("Cannot open the CD image") && errors[1].contains("missing.iso"),
        "{}",
        errors[1]
    );
    handle.send(VmCommand::ForceOff).unwrap();
    assert!(watch(&handle, &mut seen, T, |s| s.stopped.is_some()));
    assert_eq!(seen.stopped, Some(phyllome_vmm::api::StopReason::ForcedOff));

    // A disc that cannot be opened stops the start, with a sentence naming it.
    let mut c = config_for("spin");
    c.cdroms = vec![phyllome_vmm::config::CdromConfig {
        path: Some(tmp.path().join("missing.iso")),
    }];
    let e = Vm::start(c).unwrap_err().to_string();
    assert!(e.starts_with("Cannot open the CD image"), "{e}");
}

/// `--vhost-user scsi`: a VM attaches CD drives served by another process (here a thread
/// serving our virtio-scsi adapter), fetching the adapter's configuration at start, and
/// the backend ends cleanly when the VM stops.
#[test]
fn a_vhost_user_scsi_backend_attaches_and_ends_with_the_vm() {
    use phyllome_vmm::config::{CdromConfig, VhostUserConfig, VhostUserKind};
    use phyllome_vmm::devices::virtio::scsi::Scsi;
    let dir = tempfile::tempdir().unwrap();
    let (socket, iso) = (dir.path().join("scsi.sock"), dir.path().join("disc.iso"));
    std::fs::write(&iso, vec![5u8; 8192]).unwrap();
    let drive = phyllome_vmm::media::drive(0, &CdromConfig { path: Some(iso) }).unwrap();
    let sock = socket.clone();
    let backend = std::thread::spawn(move || {
        phyllome_vmm::vhost_user::serve("t", Scsi::new(vec![drive]), &sock)
    });
    while !socket.exists() {
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut c = config_for("spin");
    c.vhost_user.push(VhostUserConfig {
        kind: VhostUserKind::Scsi,
        socket,
    });
    let handle = Vm::start(c).unwrap();
    let mut seen = Observed::default();
    assert!(!watch(
        &handle,
        &mut seen,
        Duration::from_millis(300),
        |s| s.stopped.is_some()
    ));
    handle.send(VmCommand::ForceOff).unwrap();
    assert!(watch(&handle, &mut seen, T, |s| s.stopped.is_some()));
    assert_eq!(seen.stopped, Some(StopReason::ForcedOff));
    drop(handle);
    assert!(backend.join().unwrap().is_ok(), "the backend ends cleanly");
}
