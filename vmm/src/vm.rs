//! Building and running a VM: [`Vm::start`] checks KVM, builds the machine (memory, ACPI
//! tables, kernel, devices, vCPUs) and hands the running machine to a control thread,
//! which owns it until it stops. The control thread carries out [`VmCommand`]s, reacts
//! to the guest's own wish to reset or power off, and rebuilds the machine on a reboot.

#![allow(
    clippy::cast_possible_truncation,
    reason = "memory slots and vCPU indices are bounded by validated configuration (at most 254 vCPUs)"
)]

use crate::api::{CommandSender, EventSender, StopReason, VmCommand, VmEvent, VmHandle};
use crate::arch::x86_64::acpi::{self, PM_BLOCK_LEN};
use crate::arch::x86_64::layout::{
    ACPI_PM_PORT, ACPI_SCI_IRQ, CMOS_PORT, I8042_PORT, KEYBOARD_IRQ, KVM_TSS_ADDR, PCI_CONFIG_PORT,
    PCI_ECAM_SIZE, PCI_ECAM_START, PCI_MMIO_END, PCI_MMIO_START, SERIAL_IRQ, SERIAL_PORT,
};
use crate::arch::x86_64::{cpuid, layout};
use crate::boot::firmware::{FirmwareError, FirmwareFlash};
use crate::boot::{self, BootError, BootSource};
use crate::config::{ConfigError, VmConfig};
use crate::console_conn::server::ConsoleServer;
use crate::console_conn::Message;
use crate::devices::bus::{lock, Bus, BusError, SharedDevice};
use crate::devices::legacy::acpi_pm::AcpiPm;
use crate::devices::legacy::cmos::Cmos;
use crate::devices::legacy::fw_cfg::{FW_CFG_PORT, FW_CFG_PORT_LEN};
use crate::devices::legacy::i8042::I8042;
use crate::devices::legacy::pflash::ArrayWindow;
use crate::devices::legacy::port92::{Port92, PORT_92};
use crate::devices::legacy::ramfb::{Ramfb, RamfbWorker};
use crate::devices::legacy::reset_port::ResetPort;
use crate::devices::legacy::serial::{IrqLine, SerialDevice};
use crate::devices::pci::msix::MsiSink;
use crate::devices::pci::{PciBus, PciConfigIo, PciConfigMmio, PciError, PciMmioWindow};
use crate::devices::virtio::blk::{Block, Disk, DiskError};
use crate::devices::virtio::console::endpoint::{self, EndpointError, EndpointThreads};
use crate::devices::virtio::gpu::display::{DisplaySink, Tee};
use crate::devices::virtio::gpu::dump::PngDump;
use crate::devices::virtio::gpu::{Gpu, SharedGpu};
use crate::devices::virtio::input::{Input, InputKind, InputSender};
use crate::devices::virtio::pci as pci_transport;
use crate::devices::virtio::pci::{Doorbells, LocalEngine, QueueEngine, TransportError, VirtioPci};
use crate::devices::virtio::rng::{Rng, DEFAULT_BYTES_PER_SEC};
use crate::devices::virtio::shm::MemorySlots;
use crate::devices::virtio::snd::{self, Snd};
use crate::devices::virtio::DeviceCore;
use crate::exit::{exit_channel_with, ExitReceiver, ExitRequest, ExitSender};
use crate::firmware_link::KeySink;
use crate::gpu_process::{GpuProcess, GpuProcessError};
use crate::irq_routing::{GsiRouter, RoutingError};
use crate::memory::{self, MemoryError};
use crate::network::card::{NetworkCard, Notice};
use crate::network::passt::PasstOptions;
use crate::network::NetMode;
use crate::serial_sink::{SerialSink, SerialSinkError};
use crate::vcpu::{self, Desired, RunControl, VcpuContext, VcpuError};
use crate::vhost_user::{FrontendError, SharedEngine, VhostUserEngine};
use kvm_bindings::{
    kvm_msi, kvm_pit_config, kvm_userspace_memory_region, CpuId, KVM_MAX_CPUID_ENTRIES,
    KVM_MEM_READONLY, KVM_PIT_SPEAKER_DUMMY,
};
use kvm_ioctls::{IoEventAddress, Kvm, NoDatamatch, VmFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, TryRecvError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use vm_allocator::{AddressAllocator, AllocPolicy};
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryRegion, VolatileMemory};
use vmm_sys_util::eventfd::EventFd;

/// Why a VM could not start.
#[derive(Debug, thiserror::Error)]
pub enum VmError {
    /// The configuration is not usable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The network card could not be made.
    #[error(transparent)]
    Network(#[from] crate::devices::virtio::net::NetError),
    /// No KVM device.
    #[error("/dev/kvm does not exist: this computer cannot run virtual machines until virtualization is enabled in its firmware settings and the kvm_intel or kvm_amd module is loaded.")]
    NoKvm,
    /// KVM exists but we may not use it.
    #[error("No permission to use /dev/kvm. Add yourself to the kvm group (sudo usermod -aG kvm $USER), then log out and back in.")]
    KvmPermission,
    /// Opening KVM failed otherwise.
    #[error("Cannot open /dev/kvm: {0}.")]
    KvmOpen(#[source] kvm_ioctls::Error),
    /// Unexpected KVM API.
    #[error("/dev/kvm speaks API version {0}, but Phyllome needs version 12.")]
    KvmApi(i32),
    /// More vCPUs than KVM allows.
    #[error("machine.cpus: this computer's KVM allows at most {max} vCPUs per VM, and {asked} were asked for.")]
    TooManyCpus {
        /// Asked for.
        asked: u32,
        /// KVM's limit.
        max: usize,
    },
    /// A KVM call failed while building the machine.
    #[error("Cannot create the virtual machine: {what} failed: {source}.")]
    Kvm {
        /// Which step.
        what: &'static str,
        /// The error.
        #[source]
        source: kvm_ioctls::Error,
    },
    /// Guest memory could not be created.
    #[error(transparent)]
    Memory(#[from] MemoryError),
    /// The kernel or initrd could not be loaded.
    #[error(transparent)]
    Boot(#[from] BootError),
    /// A vCPU could not be set up.
    #[error(transparent)]
    Vcpu(#[from] VcpuError),
    /// The serial output could not be opened.
    #[error(transparent)]
    Serial(#[from] SerialSinkError),
    /// Two devices claim the same addresses.
    #[error("Cannot place a device: {0}")]
    Bus(#[from] BusError),
    /// A disk image could not be opened.
    #[error(transparent)]
    Disk(#[from] DiskError),
    /// A CD drive's disc could not be opened.
    #[error(transparent)]
    Disc(#[from] crate::devices::scsi::MediumError),
    /// The display socket could not be opened.
    #[error("Cannot open the display connection: {0}")]
    Display(String),
    /// The console's host side could not be opened.
    #[error(transparent)]
    Console(#[from] EndpointError),
    /// The PCI windows have no room for a device's registers.
    #[error("Cannot place a PCI device's registers: {0}. Attach fewer devices.")]
    BarSpace(String),
    /// Interrupt lines for a device could not be set up.
    #[error(transparent)]
    Routing(#[from] RoutingError),
    /// A virtio device could not be created.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// A vhost-user backend could not be reached.
    #[error(transparent)]
    VhostUser(#[from] FrontendError),
    /// A 3D VM's graphics process could not be started.
    #[error(transparent)]
    GpuProcess(#[from] GpuProcessError),
    /// The PCI bus is full.
    #[error(transparent)]
    Pci(#[from] PciError),
    /// The firmware could not be loaded.
    #[error(transparent)]
    Firmware(#[from] FirmwareError),
    /// The platform's firmware interface could not be built (a bug, not the user's doing).
    #[error("Cannot build the machine's firmware interface: {0}")]
    Platform(String),
    /// An OS resource (eventfd, thread) could not be had.
    #[error("Cannot create the VM's {what}: {source}.")]
    Os {
        /// What.
        what: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

fn kvm_err(what: &'static str) -> impl FnOnce(kvm_ioctls::Error) -> VmError {
    move |source| VmError::Kvm { what, source }
}

/// Which bus an extra device sits on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressSpace {
    /// x86 port I/O.
    Pio,
    /// Memory-mapped I/O.
    Mmio,
}

/// A device the caller adds to the machine (PCI and virtio come this way, and tests).
#[derive(Clone)]
pub struct ExtraDevice {
    /// Which bus.
    pub space: AddressSpace,
    /// First address.
    pub base: u64,
    /// Length of the range.
    pub len: u64,
    /// The device; it is kept across guest reboots.
    pub device: SharedDevice,
}

impl std::fmt::Debug for ExtraDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExtraDevice")
            .field("space", &self.space)
            .field("base", &self.base)
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

/// Entry point to start VMs.
#[derive(Debug)]
pub struct Vm;

/// What stays the same across reboots of one VM.
struct Blueprint {
    config: VmConfig,
    kvm: Kvm,
    cpuid: CpuId,
    serial_out: SerialSink,
    extra: Vec<ExtraDevice>,
    exits: ExitSender,
    /// vhost-user connections, made once: each machine drives them in config order.
    vhost_user: Vec<SharedEngine>,
    /// The console port and its host side, which stay connected across reboots.
    console: Option<(SharedCore, EndpointThreads)>,
    /// The keyboard and tablet, and how events reach them; kept across reboots.
    input: Option<InputDevices>,
    /// The GPU, kept across reboots (its display sizes are the host's).
    gpu: Option<Arc<Mutex<Gpu>>>,
    /// A 3D VM's GPU, keyboard and tablet, served by a process of their own.
    gpu_process: Option<GpuProcess>,
    /// Where a viewer (the app) attaches to the display; held for its listening thread.
    _display_server: Option<ConsoleServer>,
    /// The firmware's flash, when the VM boots firmware (its variables outlive reboots).
    firmware: Option<FirmwareFlash>,
    /// The current machine's PS/2 keyboard, where a 3D VM's graphics process sends the
    /// keys typed during boot.
    ps2: Ps2Slot,
    /// The CD drives; their discs stay across reboots.
    drives: crate::media::Drives,
    /// The network card and the passt behind it, kept across reboots.
    network: Option<(NetworkCard, SharedCore)>,
    /// The sound card (its sound server connection outlives reboots) and whether its
    /// capture may hear the microphone.
    sound: Option<(SharedCore, Arc<AtomicBool>)>,
}

/// The current machine's PS/2 keyboard, replaced with each machine.
type Ps2Slot = Arc<Mutex<Option<Arc<Mutex<I8042>>>>>;

/// Keys handed to whichever PS/2 keyboard `slot` holds at the time.
fn keys_to(slot: &Ps2Slot) -> KeySink {
    let slot = slot.clone();
    Arc::new(move |code, down| {
        let ps2 = lock(&slot).clone();
        if let Some(ps2) = ps2 {
            lock(&ps2).key(code, down);
        }
    })
}

/// What a display viewer's message asks of the VM.
fn viewer_command(m: Message) -> Option<VmCommand> {
    Some(match m {
        Message::Key { code, down } => VmCommand::Key { code, down },
        Message::Pointer { x, y } => VmCommand::Pointer { x, y },
        Message::Button { code, down } => VmCommand::Button { code, down },
        Message::Wheel { dx, dy } => VmCommand::Wheel { dx, dy },
        Message::Resize {
            scanout,
            width,
            height,
        } => VmCommand::DisplaySize {
            scanout,
            width,
            height,
        },
        _ => return None,
    })
}

struct InputDevices {
    keyboard: SharedCore,
    tablet: SharedCore,
    keys: InputSender,
    pointer: InputSender,
}

impl InputDevices {
    fn new() -> Result<Self, VmError> {
        let os = |source| VmError::Os {
            what: "input device",
            source,
        };
        let (kb, keys) = Input::new(InputKind::Keyboard).map_err(os)?;
        let (tab, pointer) = Input::new(InputKind::Tablet).map_err(os)?;
        Ok(Self {
            keyboard: Arc::new(Mutex::new(Box::new(kb))),
            tablet: Arc::new(Mutex::new(Box::new(tab))),
            keys,
            pointer,
        })
    }
}

/// A device core shared by successive machines.
type SharedCore = Arc<Mutex<Box<dyn DeviceCore>>>;

/// One incarnation of the machine: built at start and after every guest reset.
struct Machine {
    // Field order is drop order: devices (and their worker threads) first, then the VM
    // and its memory slots, then the mapping.
    _ramfb: Option<RamfbWorker>,
    _pci: Arc<Mutex<PciBus>>,
    _vm: Arc<VmFd>,
    _ram: memory::GuestRam,
    serial: Arc<Mutex<SerialDevice>>,
    pm: Arc<Mutex<AcpiPm>>,
    /// The PS/2 keyboard's controller, on firmware machines.
    ps2: Option<Arc<Mutex<I8042>>>,
    control: Arc<RunControl>,
    threads: Vec<JoinHandle<()>>,
    /// vCPUs built but not yet running.
    pending: Option<(Vec<kvm_ioctls::VcpuFd>, VcpuContext)>,
}

impl Machine {
    fn build(bp: &Blueprint) -> Result<Self, VmError> {
        let config = &bp.config;
        let cpus = u8::try_from(config.machine.cpus).map_err(|_| VmError::TooManyCpus {
            asked: config.machine.cpus,
            max: usize::from(u8::MAX),
        })?;
        let vm = bp.kvm.create_vm().map_err(kvm_err("KVM_CREATE_VM"))?;
        vm.set_tss_address(KVM_TSS_ADDR as usize)
            .map_err(kvm_err("KVM_SET_TSS_ADDR"))?;
        vm.create_irq_chip()
            .map_err(kvm_err("KVM_CREATE_IRQCHIP"))?;
        let pit = kvm_pit_config {
            flags: KVM_PIT_SPEAKER_DUMMY,
            ..Default::default()
        };
        vm.create_pit2(pit).map_err(kvm_err("KVM_CREATE_PIT2"))?;

        let ram_bytes = config.machine.memory_mib << 20;
        let ram = memory::create(ram_bytes)?;
        for (slot, region) in ram.memory.iter().enumerate() {
            let host = ram
                .memory
                .get_host_address(region.start_addr())
                .map_err(|e| MemoryError::Map {
                    mib: ram_bytes >> 20,
                    reason: e.to_string(),
                })?;
            let region = kvm_userspace_memory_region {
                slot: slot as u32,
                flags: 0,
                guest_phys_addr: region.start_addr().0,
                memory_size: region.len(),
                userspace_addr: host as u64,
            };
            // SAFETY: the host range [host, host + memory_size) is a live mapping owned by
            // `ram.memory`, which outlives the VM: every vCPU thread holds a clone of the
            // guest memory until it exits, and the VmFd is dropped with the machine.
            unsafe { vm.set_user_memory_region(region) }
                .map_err(kvm_err("KVM_SET_USER_MEMORY_REGION"))?;
        }

        let mmio64 = layout::pci_mmio64_window(
            ram_bytes,
            cpuid::phys_bits(&bp.cpuid),
            cpuid::firmware_phys_bits(&bp.cpuid),
        );
        let acpi_files = acpi::files(cpus, mmio64);
        let vm = Arc::new(vm);
        let mut next_slot = ram.memory.iter().count() as u32;
        let entry = match &bp.firmware {
            // Firmware starts at the reset vector, in its flash, and finds the tables
            // through fw_cfg.
            Some(flash) => {
                map_firmware_code(&vm, &bp.kvm, flash, next_slot)?;
                next_slot += 1;
                // Variables at memory speed where KVM has read-only slots (a write must
                // exit to the flash device); elsewhere every access traps.
                let window = bp
                    .kvm
                    .check_extension(kvm_ioctls::Cap::ReadonlyMem)
                    .then(|| vars_window(vm.clone(), next_slot, flash));
                next_slot += 1;
                lock(&flash.device).set_array_window(window);
                flash.reset();
                None
            }
            None => {
                let tables = acpi_files
                    .placed_at(layout::ACPI_TABLES_START)
                    .map_err(|e| VmError::Platform(e.to_string()))?;
                for (addr, blob) in &tables.blobs {
                    ram.memory
                        .write_slice(blob, GuestAddress(*addr))
                        .map_err(|_| BootError::GuestWrite {
                            what: "ACPI tables",
                        })?;
                }
                let source = BootSource {
                    kernel: &config.boot.kernel,
                    initrd: config.boot.initrd.as_deref(),
                    cmdline: config.cmdline(),
                };
                Some(boot::load(&ram.memory, ram_bytes, &source, &tables)?)
            }
        };

        let os = |what| move |source| VmError::Os { what, source };
        let serial_irq = EventFd::new(libc::EFD_NONBLOCK).map_err(os("serial interrupt"))?;
        vm.register_irqfd(&serial_irq, SERIAL_IRQ)
            .map_err(kvm_err("KVM_IRQFD"))?;
        let serial = Arc::new(Mutex::new(SerialDevice::new(
            IrqLine(serial_irq),
            Box::new(bp.serial_out.clone()),
        )));
        let sci_vm = Arc::clone(&vm);
        let sci = Box::new(move |level| {
            if let Err(e) = sci_vm.set_irq_line(ACPI_SCI_IRQ, level) {
                log::warn!("cannot drive the ACPI SCI: {e}");
            }
        });
        let pm = Arc::new(Mutex::new(AcpiPm::new(sci, bp.exits.clone())));

        let mut pio = Bus::new();
        pio.insert(u64::from(SERIAL_PORT), 8, serial.clone())?;
        // Firmware machines have a PS/2 keyboard (boot menus, installers before their own
        // drivers); a direct boot's keyboard is virtio, and its i8042 only resets.
        let ps2 = match &bp.firmware {
            Some(_) => {
                let irq_vm = Arc::clone(&vm);
                let irq = Box::new(move |level| {
                    if let Err(e) = irq_vm.set_irq_line(KEYBOARD_IRQ, level) {
                        log::warn!("cannot drive the keyboard interrupt: {e}");
                    }
                });
                let dev = Arc::new(Mutex::new(I8042::with_irq(bp.exits.clone(), irq)));
                pio.insert(u64::from(I8042_PORT), 5, dev.clone())?;
                Some(dev)
            }
            None => {
                let port = Arc::new(Mutex::new(ResetPort::new(bp.exits.clone())));
                pio.insert(u64::from(I8042_PORT), 5, port)?;
                None
            }
        };
        pio.insert(
            u64::from(PORT_92),
            1,
            Arc::new(Mutex::new(Port92::new(bp.exits.clone()))),
        )?;
        let mut cmos = Cmos::new();
        let low_ram = ram_bytes.min(layout::MMIO_HOLE_START);
        cmos.set_memory(low_ram, ram_bytes - low_ram, cpus);
        pio.insert(u64::from(CMOS_PORT), 2, Arc::new(Mutex::new(cmos)))?;
        pio.insert(u64::from(ACPI_PM_PORT), u64::from(PM_BLOCK_LEN), pm.clone())?;
        *lock(&bp.ps2) = ps2.clone();
        // A firmware's boot display: drawn by this process with an in-process GPU, else
        // by a 3D VM's graphics process, told of it over the firmware link.
        let link = bp.gpu_process.as_ref().and_then(GpuProcess::firmware_link);
        let ramfb = match (&bp.firmware, &bp.gpu, link) {
            (Some(_), Some(_), _) => Some(Ramfb::new()),
            (Some(_), None, Some(link)) => {
                // The last machine's framebuffer is gone with its memory.
                link.hide_ramfb();
                let (link, memory) = (link.clone(), ram.memory.clone());
                Some(Ramfb::forwarding(move |c| link.show_ramfb(c, &memory)))
            }
            _ => None,
        };
        let fw_cfg = boot::firmware::fw_cfg(
            cpus,
            ram_bytes,
            &acpi_files,
            ram.memory.clone(),
            ramfb.as_ref(),
        )
        .map_err(|e| VmError::Platform(e.to_string()))?;
        let ramfb_worker = match (&ramfb, &bp.gpu) {
            (Some(r), Some(gpu)) => Some(r.show_on(ram.memory.clone(), gpu.clone()).map_err(
                |source| VmError::Os {
                    what: "boot display",
                    source,
                },
            )?),
            _ => None,
        };
        pio.insert(
            u64::from(FW_CFG_PORT),
            FW_CFG_PORT_LEN,
            Arc::new(Mutex::new(fw_cfg)),
        )?;
        let mut mmio = Bus::new();
        if let Some(flash) = &bp.firmware {
            let (base, len) = flash.range();
            mmio.insert(base, len, flash.device.clone())?;
        }
        let pci = attach_pci(bp, &vm, &ram.memory, next_slot, mmio64, &mut pio, &mut mmio)?;
        for extra in &bp.extra {
            let bus = match extra.space {
                AddressSpace::Pio => &mut pio,
                AddressSpace::Mmio => &mut mmio,
            };
            bus.insert(extra.base, extra.len, extra.device.clone())?;
        }

        let mut vcpus = Vec::with_capacity(usize::from(cpus));
        for index in 0..cpus {
            let fd = vm
                .create_vcpu(u64::from(index))
                .map_err(kvm_err("KVM_CREATE_VCPU"))?;
            vcpu::configure(&fd, &bp.cpuid, index, cpus, entry.filter(|_| index == 0))?;
            vcpus.push(fd);
        }

        let control = Arc::new(RunControl::new());
        let ctx = VcpuContext {
            pio: Arc::new(pio),
            mmio: Arc::new(mmio),
            control: control.clone(),
            exits: bp.exits.clone(),
        };
        let machine = Machine {
            _ramfb: ramfb_worker,
            _pci: pci,
            _vm: vm,
            _ram: ram,
            serial,
            pm,
            ps2,
            control,
            threads: Vec::new(),
            pending: Some((vcpus, ctx)),
        };
        Ok(machine)
    }

    /// Starts the vCPU threads of a freshly built machine.
    fn start(&mut self) -> Result<(), VmError> {
        let Some((vcpus, ctx)) = self.pending.take() else {
            return Ok(());
        };
        for (index, fd) in vcpus.into_iter().enumerate() {
            match vcpu::spawn(fd, index as u8, ctx.clone()) {
                Ok(t) => self.threads.push(t),
                Err(e) => {
                    self.shut_down();
                    return Err(e.into());
                }
            }
        }
        Ok(())
    }

    /// Stops and joins every vCPU thread.
    fn shut_down(&mut self) {
        self.control.drive(Desired::Exit, &self.threads);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        self.shut_down();
    }
}

/// Maps the firmware's code at the top of 4 GiB as memory slot `slot`: read-only where
/// KVM can (a write then reaches the flash device, which refuses it), else plain memory
/// holding a private copy.
fn map_firmware_code(
    vm: &VmFd,
    kvm: &Kvm,
    flash: &FirmwareFlash,
    slot: u32,
) -> Result<(), VmError> {
    let (gpa, host, len) = flash.code_slot();
    let flags = if kvm.check_extension(kvm_ioctls::Cap::ReadonlyMem) {
        KVM_MEM_READONLY
    } else {
        0
    };
    let region = kvm_userspace_memory_region {
        slot,
        flags,
        guest_phys_addr: gpa,
        memory_size: len,
        userspace_addr: host,
    };
    // SAFETY: [host, host + len) is the code mapping `flash` owns; the blueprint holds the
    // flash for the VM's whole life, longer than any machine (and so any VmFd) built from it.
    unsafe { vm.set_user_memory_region(region) }
        .map_err(kvm_err("KVM_SET_USER_MEMORY_REGION (firmware)"))
}

/// Shows `flash`'s variable store as read-only memory slot `slot` of `vm` while the flash
/// is in read-array mode (see [`ArrayWindow`]): the contents are copied into the flash's
/// own page-aligned region and mapped at the flash's base; leaving read-array mode removes
/// the slot, so reads reach the device and its status register again.
fn vars_window(vm: Arc<VmFd>, slot: u32, flash: &FirmwareFlash) -> ArrayWindow {
    let region = flash.vars_region();
    let gpa = lock(&flash.device).base();
    let mut mapped = false;
    Box::new(move |contents| {
        let (host, len) = (region.as_ptr() as u64, region.size() as u64);
        let set = |memory_size: u64| {
            let r = kvm_userspace_memory_region {
                slot,
                flags: KVM_MEM_READONLY,
                guest_phys_addr: gpa,
                memory_size,
                userspace_addr: host,
            };
            // SAFETY: [host, host + len) is the variable store's region, which this
            // closure keeps alive (an Arc) for as long as it can map it; a size of 0
            // removes the slot, after which KVM no longer touches the range.
            unsafe { vm.set_user_memory_region(r) }
        };
        match contents {
            Some(bytes) => {
                if bytes.len() as u64 != len {
                    return;
                }
                region.as_volatile_slice().copy_from(bytes);
                match set(len) {
                    Ok(()) => mapped = true,
                    Err(e) => log::warn!(
                        "The firmware's variables stay behind the flash device (slower): KVM refused their memory slot: {e}."
                    ),
                }
            }
            None if mapped => match set(0) {
                Ok(()) => mapped = false,
                Err(e) => log::warn!("Cannot take the firmware's variables out of memory: {e}."),
            },
            None => {}
        }
    })
}

/// The KVM device: `$PHYLLOME_KVM_DEVICE` if set (for tests and unusual set-ups), else /dev/kvm.
fn kvm_device() -> std::ffi::CString {
    let path = std::env::var_os("PHYLLOME_KVM_DEVICE").unwrap_or_else(|| "/dev/kvm".into());
    std::ffi::CString::new(std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str()))
        .unwrap_or_else(|_| c"/dev/kvm".to_owned())
}

/// Delivers MSI messages through KVM.
struct KvmMsi(Arc<VmFd>);

impl MsiSink for KvmMsi {
    fn deliver(&self, address: u64, data: u32) {
        let msi = kvm_msi {
            address_lo: address as u32,
            address_hi: (address >> 32) as u32,
            data,
            ..Default::default()
        };
        if let Err(e) = self.0.signal_msi(msi) {
            log::warn!("cannot deliver an MSI: {e}");
        }
    }
}

/// Turns guest writes to a virtio doorbell into an EventFd signal inside KVM.
struct KvmDoorbells(Arc<VmFd>);

impl Doorbells for KvmDoorbells {
    fn register(&self, addr: u64, event: &EventFd) -> std::io::Result<()> {
        self.0
            .register_ioevent(event, &IoEventAddress::Mmio(addr), NoDatamatch)
            .map_err(|e| std::io::Error::from_raw_os_error(e.errno()))
    }

    fn unregister(&self, addr: u64, event: &EventFd) -> std::io::Result<()> {
        self.0
            .unregister_ioevent(event, &IoEventAddress::Mmio(addr), NoDatamatch)
            .map_err(|e| std::io::Error::from_raw_os_error(e.errno()))
    }
}

/// KVM memory slots for shared memory windows, numbered after guest RAM's, reused once
/// given back.
struct KvmSlots {
    vm: Arc<VmFd>,
    free: Mutex<(u32, Vec<u32>)>,
}

impl KvmSlots {
    fn new(vm: Arc<VmFd>, first: u32) -> Self {
        Self {
            vm,
            free: Mutex::new((first, Vec::new())),
        }
    }

    fn set(&self, slot: u32, gpa: u64, len: u64, host: u64) -> std::io::Result<()> {
        let region = kvm_userspace_memory_region {
            slot,
            flags: 0,
            guest_phys_addr: gpa,
            memory_size: len,
            userspace_addr: host,
        };
        // SAFETY: the callers are shared memory windows, whose reservation [host,
        // host + len) stays mapped until they have removed the slot again (a length of 0
        // removes it; KVM then no longer touches the range).
        unsafe { self.vm.set_user_memory_region(region) }
            .map_err(|e| std::io::Error::from_raw_os_error(e.errno()))
    }
}

impl MemorySlots for KvmSlots {
    fn add(&self, gpa: u64, len: u64, host: u64) -> std::io::Result<u32> {
        let slot = {
            let mut f = lock(&self.free);
            match f.1.pop() {
                Some(s) => s,
                None => {
                    f.0 += 1;
                    f.0 - 1
                }
            }
        };
        match self.set(slot, gpa, len, host) {
            Ok(()) => Ok(slot),
            Err(e) => {
                lock(&self.free).1.push(slot);
                Err(e)
            }
        }
    }

    fn remove(&self, slot: u32, gpa: u64, _len: u64, host: u64) {
        if let Err(e) = self.set(slot, gpa, 0, host) {
            log::warn!("cannot remove KVM memory slot {slot}: {e}");
            return;
        }
        lock(&self.free).1.push(slot);
    }
}

/// Where BARs go: the 64-bit window above RAM when there is one (as firmware places
/// 64-bit BARs), else the 32-bit window in the hole.
struct BarSpace {
    low: AddressAllocator,
    high: Option<AddressAllocator>,
}

impl BarSpace {
    fn new(mmio64: Option<(u64, u64)>) -> Result<Self, VmError> {
        let err = |e: vm_allocator::Error| VmError::BarSpace(e.to_string());
        Ok(Self {
            low: AddressAllocator::new(PCI_MMIO_START, PCI_MMIO_END - PCI_MMIO_START)
                .map_err(err)?,
            high: mmio64
                .map(|(base, size)| AddressAllocator::new(base, size))
                .transpose()
                .map_err(err)?,
        })
    }

    /// A naturally aligned place for a BAR of `size` bytes.
    fn place(&mut self, size: u64) -> Result<u64, VmError> {
        let policy = AllocPolicy::FirstMatch;
        self.high
            .as_mut()
            .and_then(|a| a.allocate(size, size, policy).ok())
            .or_else(|| self.low.allocate(size, size, policy).ok())
            .map(|range| range.start())
            .ok_or_else(|| VmError::BarSpace(format!("no room for a {size}-byte BAR")))
    }
}

/// Builds PCI bus 0 with a virtio-blk function per disk, and puts its configuration
/// ports, ECAM and BAR windows on the buses.
fn attach_pci(
    bp: &Blueprint,
    vm: &Arc<VmFd>,
    memory: &memory::GuestMemory,
    ram_slots: u32,
    mmio64: Option<(u64, u64)>,
    pio: &mut Bus,
    mmio: &mut Bus,
) -> Result<Arc<Mutex<PciBus>>, VmError> {
    let pci = Arc::new(Mutex::new(PciBus::new()));
    let msi: Arc<dyn MsiSink> = Arc::new(KvmMsi(vm.clone()));
    let doorbells: Arc<dyn Doorbells> = Arc::new(KvmDoorbells(vm.clone()));
    let router = GsiRouter::new(vm.clone());
    let mut bars = BarSpace::new(mmio64)?;
    let slots: Arc<dyn MemorySlots> = Arc::new(KvmSlots::new(vm.clone(), ram_slots));
    let mut add = |engine: Box<dyn QueueEngine>| -> Result<(), VmError> {
        let mut dev = VirtioPci::new(
            engine,
            memory.clone(),
            bars.place(pci_transport::BAR_SIZE)?,
            msi.clone(),
            doorbells.clone(),
        )?;
        if let Some(size) = dev.shared_memory_size() {
            dev.attach_shared_memory(bars.place(size)?, slots.clone())?;
        }
        dev.use_interrupt_lines(Box::new(router.lines(dev.vectors())?));
        lock(&pci).add(Arc::new(Mutex::new(dev)))?;
        Ok(())
    };
    for (i, disk) in bp.config.disks.iter().enumerate() {
        let image = Disk::open_cached(&disk.path, disk.readonly, disk.format, disk.cache)?;
        let core = Block::new(image, &format!("phyllome-disk-{i}"), disk.queues);
        add(Box::new(LocalEngine::new(Box::new(core))))?;
    }
    if let Some(scsi) = bp.drives.adapter() {
        add(Box::new(LocalEngine::new(Box::new(scsi))))?;
    }
    if let Some((_, net)) = &bp.network {
        add(Box::new(LocalEngine::shared(net.clone())))?;
    }
    let mut local: Vec<LocalEngine> = Vec::new();
    if let Some((card, _)) = &bp.sound {
        local.push(LocalEngine::shared(card.clone()));
    }
    if bp.config.devices.rng {
        local.push(LocalEngine::new(Box::new(Rng::new(DEFAULT_BYTES_PER_SEC))));
    }
    if let Some((core, _)) = &bp.console {
        local.push(LocalEngine::shared(core.clone()));
    }
    if let Some(i) = &bp.input {
        local.push(LocalEngine::shared(i.keyboard.clone()));
        local.push(LocalEngine::shared(i.tablet.clone()));
    }
    if let Some(gpu) = &bp.gpu {
        let shared = SharedGpu::new(gpu.clone()).map_err(|source| VmError::Os {
            what: "GPU device",
            source,
        })?;
        local.push(LocalEngine::new(Box::new(shared)));
    }
    for engine in local {
        add(Box::new(engine))?;
    }
    let remote = bp.gpu_process.iter().flat_map(GpuProcess::engines);
    for engine in bp.vhost_user.iter().chain(remote) {
        add(Box::new(engine.clone()))?;
    }
    pio.insert(
        u64::from(PCI_CONFIG_PORT),
        8,
        Arc::new(Mutex::new(PciConfigIo::with_reset(
            pci.clone(),
            bp.exits.clone(),
        ))),
    )?;
    mmio.insert(
        PCI_ECAM_START,
        PCI_ECAM_SIZE,
        Arc::new(Mutex::new(PciConfigMmio::new(pci.clone()))),
    )?;
    let window = PciMmioWindow::new(pci.clone(), PCI_MMIO_START);
    mmio.insert(
        PCI_MMIO_START,
        PCI_MMIO_END - PCI_MMIO_START,
        Arc::new(Mutex::new(window)),
    )?;
    if let Some((base, size)) = mmio64 {
        let high = PciMmioWindow::new(pci.clone(), base);
        mmio.insert(base, size, Arc::new(Mutex::new(high)))?;
    }
    Ok(pci)
}

fn open_kvm() -> Result<Kvm, VmError> {
    let kvm = Kvm::new_with_path(kvm_device().as_c_str()).map_err(|e| match e.errno() {
        libc::ENOENT | libc::ENXIO | libc::ENODEV => VmError::NoKvm,
        libc::EACCES | libc::EPERM => VmError::KvmPermission,
        _ => VmError::KvmOpen(e),
    })?;
    match kvm.get_api_version() {
        12 => Ok(kvm),
        v => Err(VmError::KvmApi(v)),
    }
}

impl Vm {
    /// Checks `config`, builds the machine and starts it. Errors here mean nothing ran.
    pub fn start(config: VmConfig) -> Result<VmHandle, VmError> {
        Self::start_with_devices(config, Vec::new())
    }

    /// Like [`Vm::start`], with additional devices on the buses.
    pub fn start_with_devices(
        config: VmConfig,
        extra: Vec<ExtraDevice>,
    ) -> Result<VmHandle, VmError> {
        config.validate()?;
        let firmware = match &config.boot.firmware {
            Some(code) => Some(FirmwareFlash::open(
                code,
                config.boot.firmware_vars.as_deref(),
            )?),
            None => None,
        };
        let kvm = open_kvm()?;
        let max = kvm.get_max_vcpus().min(usize::from(u8::MAX) - 1);
        if config.machine.cpus as usize > max {
            return Err(VmError::TooManyCpus {
                asked: config.machine.cpus,
                max,
            });
        }
        let cpuid = kvm
            .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
            .map_err(kvm_err("KVM_GET_SUPPORTED_CPUID"))?;

        let os = |what| move |source| VmError::Os { what, source };
        let wake = Arc::new(EventFd::new(0).map_err(os("control event"))?);
        let events_ready =
            Arc::new(EventFd::new(libc::EFD_NONBLOCK).map_err(os("event notifier"))?);
        let (event_tx, event_rx) = channel();
        let events = EventSender {
            tx: event_tx,
            ready: events_ready.clone(),
        };
        let (exits, exit_rx) = exit_channel_with(wake.clone());
        let serial_out = SerialSink::open(&config.serial.output, &events)?;
        let drives = crate::media::Drives::open(&config.cdroms, events.clone())?;
        let (network, network_failure) = match config.network.mode {
            NetMode::None => (None, None),
            NetMode::Passt => {
                let to_app = events.clone();
                let notice: Notice = Arc::new(move |why| to_app.send(VmEvent::NetworkDown(why)));
                let options = PasstOptions {
                    forwards: config.network.forward.clone(),
                    program: None,
                };
                let (card, net, failure) = NetworkCard::open(&config.network, options, notice)?;
                let core: SharedCore = Arc::new(Mutex::new(Box::new(net)));
                (Some((card, core)), failure)
            }
        };

        let vhost_user = config
            .vhost_user
            .iter()
            .map(|d| {
                let (kind, socket) = (d.kind, &d.socket);
                VhostUserEngine::connect(kind.device_type(), kind.config_size(), socket, 256)
                    .map(|e| SharedEngine(Arc::new(Mutex::new(e))))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let console = match &config.devices.console {
            Some(endpoint) => {
                let (core, threads) = endpoint::open(endpoint)?;
                let core: SharedCore = Arc::new(Mutex::new(Box::new(core)));
                Some((core, threads))
            }
            None => None,
        };
        // 3D: the renderer, and the input devices beside the display it serves, live in
        // their own process (crate::gpu_process).
        let ps2: Ps2Slot = Arc::default();
        let gpu_process = match &config.devices.gpu {
            Some(g) if !g.renderer.is_2d() => {
                let firmware_keys = firmware.as_ref().map(|_| keys_to(&ps2));
                Some(GpuProcess::start(
                    g,
                    config.devices.input,
                    firmware_keys,
                    events.clone(),
                )?)
            }
            _ => None,
        };
        let input = if config.devices.input && gpu_process.is_none() {
            Some(InputDevices::new()?)
        } else {
            None
        };
        let (cmd_tx, cmd_rx) = channel();
        let commands = CommandSender {
            commands: cmd_tx,
            wake: wake.clone(),
        };
        let mut display_server = None;
        let gpu = match &config.devices.gpu {
            Some(g) if gpu_process.is_none() => {
                let mut sinks: Vec<Box<dyn DisplaySink>> = Vec::new();
                if let Some(path) = &g.dump_scanout {
                    sinks.push(Box::new(PngDump::new(path.clone())));
                }
                if let Some(path) = &g.display_socket {
                    // What the viewer sends becomes commands to this VM.
                    let to_vm = commands.clone();
                    let (server, sink) = ConsoleServer::listen(path, move |m| {
                        if let Some(c) = viewer_command(m) {
                            let _ = to_vm.send(c);
                        }
                    })
                    .map_err(|e| VmError::Display(e.to_string()))?;
                    display_server = Some(server);
                    sinks.push(Box::new(sink));
                }
                let gpu =
                    Gpu::with_renderer(&[(g.width, g.height)], Box::new(Tee(sinks)), g.renderer)
                        .map_err(os("GPU device"))?;
                Some(Arc::new(Mutex::new(gpu)))
            }
            _ => None,
        };
        let sound = match config.devices.sound {
            Some(kind) => {
                let mic = Arc::new(AtomicBool::new(config.devices.microphone));
                let card = Snd::new(snd::backend_for(kind, &config.name, mic.clone()))
                    .map_err(os("sound card"))?;
                let card: SharedCore = Arc::new(Mutex::new(Box::new(card)));
                Some((card, mic))
            }
            None => None,
        };
        let blueprint = Blueprint {
            sound,
            network,
            drives,
            _display_server: display_server,
            firmware,
            ps2,
            gpu,
            gpu_process,
            input,
            console,
            config,
            kvm,
            cpuid,
            serial_out,
            extra,
            exits,
            vhost_user,
        };
        let mut machine = Machine::build(&blueprint)?;
        events.send(VmEvent::Started);
        if let Some(why) = network_failure {
            events.send(VmEvent::NetworkDown(why));
        }
        machine.start()?;

        let control = Control {
            blueprint,
            machine: Some(machine),
            paused: false,
            commands: cmd_rx,
            exit_rx,
            wake: wake.clone(),
            events,
        };
        let thread = std::thread::Builder::new()
            .name("vm-control".into())
            .spawn(move || control.run())
            .map_err(os("control thread"))?;
        Ok(VmHandle {
            commands,
            events: event_rx,
            events_ready,
            thread: Some(thread),
        })
    }
}

/// The control thread's state.
struct Control {
    blueprint: Blueprint,
    machine: Option<Machine>,
    paused: bool,
    commands: Receiver<VmCommand>,
    exit_rx: ExitReceiver,
    wake: Arc<EventFd>,
    events: EventSender,
}

enum Next {
    Continue,
    Stop(StopReason),
}

impl Control {
    fn run(mut self) {
        let reason = loop {
            // Blocks until a command or an exit request arrives.
            if let Err(e) = self.wake.read() {
                log::error!("control wake-up failed: {e}");
                break StopReason::ForcedOff;
            }
            if let Next::Stop(reason) = self.drain() {
                break reason;
            }
        };
        if let Some(mut machine) = self.machine.take() {
            machine.shut_down();
            lock(&machine.serial).flush();
        }
        self.blueprint.serial_out.finish();
        self.events.send(VmEvent::Stopped(reason));
    }

    fn drain(&mut self) -> Next {
        while let Some(request) = self.exit_rx.try_recv() {
            if let Next::Stop(r) = self.on_exit_request(request) {
                return Next::Stop(r);
            }
        }
        loop {
            match self.commands.try_recv() {
                Ok(command) => {
                    if let Next::Stop(r) = self.on_command(command) {
                        return Next::Stop(r);
                    }
                }
                Err(TryRecvError::Empty) => return Next::Continue,
                // The handle is gone without saying goodbye: nobody can see this VM.
                Err(TryRecvError::Disconnected) => return Next::Stop(StopReason::ForcedOff),
            }
        }
    }

    fn on_exit_request(&mut self, request: ExitRequest) -> Next {
        match request {
            ExitRequest::PowerOff => Next::Stop(StopReason::PowerOff),
            ExitRequest::Fault(reason) => Next::Stop(reason),
            ExitRequest::Reset if self.blueprint.config.machine.no_reboot => {
                Next::Stop(StopReason::Reset)
            }
            ExitRequest::Reset => self.reboot(),
        }
    }

    fn reboot(&mut self) -> Next {
        if let Some(mut old) = self.machine.take() {
            old.shut_down();
        }
        // Requests the old vCPUs sent on their way out belong to the old machine.
        while self.exit_rx.try_recv().is_some() {}
        // A machine reset resets the input devices it keeps: keys go to the PS/2 keyboard
        // again until the next guest binds its virtio keyboard.
        if let Some(i) = &self.blueprint.input {
            lock(&i.keyboard).reset();
            lock(&i.tablet).reset();
        }
        // A graphics process that died comes back with the new machine.
        if let Some(gpu) = &mut self.blueprint.gpu_process {
            if let Err(e) = gpu.restart_if_stopped() {
                self.events.send(VmEvent::Error(format!(
                    "The VM restarts without its display: {e}"
                )));
            }
        }
        // A passt that ended comes back with the new machine.
        if let Some((card, _)) = &self.blueprint.network {
            card.revive();
        }
        let mut machine = match Machine::build(&self.blueprint) {
            Ok(m) => m,
            Err(e) => return Next::Stop(StopReason::RebootFailed(e.to_string())),
        };
        self.events.send(VmEvent::Rebooted);
        if let Err(e) = machine.start() {
            return Next::Stop(StopReason::RebootFailed(e.to_string()));
        }
        self.machine = Some(machine);
        self.paused = false;
        Next::Continue
    }

    /// Sends input events; says why when there is no input device or the guest is not
    /// reading.
    fn input(&self, send: impl FnOnce(&InputDevices) -> bool) {
        let error = match &self.blueprint.input {
            None if self.blueprint.gpu_process.is_some() => {
                "This VM's keyboard and tablet are served by its graphics process; send input through its display connection."
            }
            None => "This VM has no keyboard or tablet (devices.input is off).",
            Some(i) if !send(i) => {
                "The guest is not reading its keyboard or tablet; input was dropped."
            }
            Some(_) => return,
        };
        self.events.send(VmEvent::Error(error.into()));
    }

    fn on_command(&mut self, command: VmCommand) -> Next {
        let Some(machine) = self.machine.as_mut() else {
            return Next::Stop(StopReason::ForcedOff);
        };
        match command {
            VmCommand::Pause if self.paused => self
                .events
                .send(VmEvent::Error("The VM is already paused.".into())),
            VmCommand::Pause => {
                machine.control.drive(Desired::Pause, &machine.threads);
                self.paused = true;
                self.events.send(VmEvent::Paused);
            }
            VmCommand::Resume if !self.paused => self
                .events
                .send(VmEvent::Error("The VM is not paused.".into())),
            VmCommand::Resume => {
                machine.control.drive(Desired::Run, &machine.threads);
                self.paused = false;
                self.events.send(VmEvent::Resumed);
            }
            VmCommand::PowerButton => lock(&machine.pm).power_button(),
            VmCommand::ForceOff => return Next::Stop(StopReason::ForcedOff),
            VmCommand::Reset => return self.on_exit_request(ExitRequest::Reset),
            VmCommand::DisplaySize {
                scanout,
                width,
                height,
            } => {
                let known = self
                    .blueprint
                    .gpu
                    .as_ref()
                    .is_some_and(|g| lock(g).request_size(scanout, width, height));
                if self.blueprint.gpu_process.is_some() {
                    self.events.send(VmEvent::Error(
                        "This VM's display is served by its graphics process; ask for a new size through its display connection.".into(),
                    ));
                } else if !known {
                    self.events.send(VmEvent::Error(format!(
                        "This VM has no display {scanout} to resize."
                    )));
                }
            }
            VmCommand::Key { code, down } => {
                // The PS/2 keyboard until the guest binds its virtio keyboard (as QEMU
                // hands input to whichever handler the guest activated last).
                let virtio_driven = self
                    .blueprint
                    .input
                    .as_ref()
                    .is_some_and(|i| i.keys.driven());
                match &machine.ps2 {
                    Some(ps2) if !virtio_driven => lock(ps2).key(code, down),
                    _ => self.input(|i| i.keys.key(code, down)),
                }
            }
            VmCommand::Pointer { x, y } => self.input(|i| i.pointer.pointer(x, y)),
            VmCommand::Button { code, down } => self.input(|i| i.pointer.key(code, down)),
            VmCommand::Wheel { dx, dy } => self.input(|i| i.pointer.wheel(dx, dy)),
            VmCommand::EjectDisc { drive, force } => {
                match self.blueprint.drives.eject(drive, force) {
                    Ok(()) => {}
                    Err(crate::media::MediaError::Eject(_)) => {
                        self.events.send(VmEvent::DiscLocked { drive });
                    }
                    Err(e) => self.events.send(VmEvent::Error(e.to_string())),
                }
            }
            VmCommand::InsertDisc { drive, path } => {
                if let Err(e) = self.blueprint.drives.insert(drive, &path) {
                    self.events.send(VmEvent::Error(e.to_string()));
                }
            }
            VmCommand::Microphone(allowed) => match &self.blueprint.sound {
                Some((_, mic)) => mic.store(allowed, Ordering::Relaxed),
                None => self.events.send(VmEvent::Error(
                    "This VM has no sound card to record with.".into(),
                )),
            },
            VmCommand::SerialInput(bytes) => {
                let taken = lock(&machine.serial).enqueue(&bytes);
                if taken < bytes.len() {
                    self.events.send(VmEvent::Error(format!(
                        "The guest's serial port is not reading; {} of {} bytes were dropped.",
                        bytes.len() - taken,
                        bytes.len()
                    )));
                }
            }
        }
        Next::Continue
    }
}
