//! A VM's definition: what to boot and with what resources. It is what the app stores as
//! TOML, what `phyllome-vmm run --config` reads, and what the command-line flags build.
//! Every field is checked by [`VmConfig::validate`] with an error that names it.

use crate::devices::virtio::blk::{CacheMode, ImageFormat};
use crate::devices::virtio::console::endpoint::ConsoleEndpoint;
use crate::network::NetworkConfig;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// The version of the format this build reads and writes.
pub const CONFIG_VERSION: u32 = 1;
/// Smallest guest we will start.
pub const MIN_MEMORY_MIB: u64 = 16;
/// The most vCPUs the MADT can describe with 8-bit APIC IDs (255 is broadcast).
pub const MAX_CPUS: u32 = 254;
/// Most disks a VM can have (PCI slots on bus 0, less the host bridge and room for others).
pub const MAX_DISKS: usize = 16;
/// Command line used when none is given: serial console, i8042 reboot, no reboot loop on panic.
pub const DEFAULT_CMDLINE: &str = "console=ttyS0 reboot=k panic=-1";

/// Where the guest's first serial port goes.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum SerialOutput {
    /// The VMM's standard output.
    #[default]
    Stdio,
    /// Discarded.
    None,
    /// Appended to a file.
    File(PathBuf),
    /// Delivered as [`crate::VmEvent::SerialOutput`] on the handle's event channel.
    Events,
}

impl fmt::Display for SerialOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SerialOutput::Stdio => f.write_str("stdio"),
            SerialOutput::None => f.write_str("none"),
            SerialOutput::File(p) => write!(f, "file:{}", p.display()),
            SerialOutput::Events => f.write_str("events"),
        }
    }
}

impl FromStr for SerialOutput {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "stdio" => Ok(Self::Stdio),
            "none" => Ok(Self::None),
            "events" => Ok(Self::Events),
            _ => match s.strip_prefix("file:") {
                Some(p) if !p.is_empty() => Ok(Self::File(PathBuf::from(p))),
                _ => Err(format!(
                    "'{s}' is not a serial output; use stdio, none, or file:PATH"
                )),
            },
        }
    }
}

impl TryFrom<String> for SerialOutput {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<SerialOutput> for String {
    fn from(s: SerialOutput) -> String {
        s.to_string()
    }
}

/// The virtual hardware.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MachineConfig {
    /// Number of vCPUs.
    #[serde(default = "default_cpus")]
    pub cpus: u32,
    /// Guest RAM in MiB.
    #[serde(default = "default_memory")]
    pub memory_mib: u64,
    /// Stop instead of rebooting when the guest resets.
    #[serde(default)]
    pub no_reboot: bool,
}

fn default_cpus() -> u32 {
    1
}

fn default_memory() -> u64 {
    512
}

impl Default for MachineConfig {
    fn default() -> Self {
        Self {
            cpus: default_cpus(),
            memory_mib: default_memory(),
            no_reboot: false,
        }
    }
}

/// What to boot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootConfig {
    /// bzImage, ELF vmlinux or PVH ELF (direct boot); empty when the VM boots firmware.
    #[serde(default, skip_serializing_if = "path_is_empty")]
    pub kernel: PathBuf,
    /// UEFI firmware code (such as Debian's `/usr/share/OVMF/OVMF_CODE_4M.fd`): the VM
    /// boots as a PC does, from its disks, instead of a kernel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firmware: Option<PathBuf>,
    /// The VM's own copy of the firmware's variable store (made from `OVMF_VARS_4M.fd`):
    /// boot entries and settings, kept across reboots and runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firmware_vars: Option<PathBuf>,
    /// Initial ramdisk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initrd: Option<PathBuf>,
    /// Kernel command line ([`DEFAULT_CMDLINE`] when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmdline: Option<String>,
}

/// Serial port wiring.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SerialConfig {
    /// Where COM1's output goes.
    #[serde(default)]
    pub output: SerialOutput,
}

/// A disk attached as virtio-blk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiskConfig {
    /// The image file.
    pub path: PathBuf,
    /// The guest may not write to it.
    #[serde(default)]
    pub readonly: bool,
    /// The image format; when absent, the file's first bytes decide (qcow2 or raw).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<ImageFormat>,
    /// Request queues the guest may use (1 to 16).
    #[serde(default = "one_queue")]
    pub queues: u16,
    /// Through the host's page cache (the default) or around it (raw images only).
    #[serde(default, skip_serializing_if = "is_writeback")]
    pub cache: CacheMode,
}

fn is_writeback(c: &CacheMode) -> bool {
    *c == CacheMode::Writeback
}

fn one_queue() -> u16 {
    1
}

/// Most request queues per disk.
pub const MAX_DISK_QUEUES: u16 = 16;

impl FromStr for DiskConfig {
    type Err = String;
    /// `PATH[,readonly][,format=raw|qcow2][,queues=N][,cache=writeback|none]` (a path may
    /// not contain commas).
    fn from_str(s: &str) -> Result<Self, String> {
        let mut parts = s.split(',');
        let path = parts.next().unwrap_or_default();
        if path.is_empty() {
            return Err("the disk needs a path".into());
        }
        let mut disk = Self {
            path: PathBuf::from(path),
            readonly: false,
            format: None,
            queues: 1,
            cache: CacheMode::Writeback,
        };
        for option in parts {
            match option.split_once('=') {
                None if option == "readonly" => disk.readonly = true,
                Some(("format", f)) => disk.format = Some(f.parse()?),
                Some(("cache", c)) => disk.cache = c.parse()?,
                Some(("queues", n)) => {
                    disk.queues = n
                        .parse()
                        .ok()
                        .filter(|n| (1..=MAX_DISK_QUEUES).contains(n))
                        .ok_or_else(|| {
                            format!("queues={n}: give a number from 1 to {MAX_DISK_QUEUES}")
                        })?;
                }
                _ => {
                    return Err(format!(
                        "unknown disk option '{option}'; use readonly, format=raw|qcow2, queues=N or cache=writeback|none"
                    ))
                }
            }
        }
        Ok(disk)
    }
}

/// Most CD/DVD drives a VM can have (targets on its one virtio-scsi adapter).
pub const MAX_CDROMS: usize = 4;

/// A CD/DVD drive on the VM's virtio-scsi adapter: installer media, as PCs have them.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CdromConfig {
    /// The disc image in the drive (ISO 9660 or UDF); none for an empty drive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
}

impl FromStr for CdromConfig {
    type Err = String;
    /// `PATH` of a disc image, or `empty` for a drive without a disc.
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "" => Err("give the disc image's path, or 'empty' for a drive without a disc".into()),
            "empty" => Ok(Self { path: None }),
            path => Ok(Self {
                path: Some(PathBuf::from(path)),
            }),
        }
    }
}

/// Which virtio device a vhost-user backend provides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VhostUserKind {
    /// virtio-blk.
    Blk,
    /// virtio-rng.
    Rng,
    /// virtio-console (one port, the guest's hvc0).
    Console,
    /// virtio-scsi (CD/DVD drives).
    Scsi,
    /// virtio-net (a network card).
    Net,
    /// virtio-snd (a sound card).
    Snd,
}

impl VhostUserKind {
    /// The virtio device ID.
    pub fn device_type(self) -> u32 {
        match self {
            Self::Blk => 2,
            Self::Rng => 4,
            Self::Console => 3,
            Self::Scsi => 8,
            Self::Net => 1,
            Self::Snd => crate::devices::virtio::snd::protocol::DEVICE_ID,
        }
    }

    /// Bytes of device configuration space to fetch from the backend.
    pub fn config_size(self) -> u32 {
        match self {
            Self::Blk => 60,
            Self::Rng => 0,
            Self::Console => 12,
            Self::Scsi => 36,
            // mac, status, max_virtqueue_pairs, mtu (`net::CONFIG_LEN`).
            Self::Net => 12,
            // jacks, streams, chmaps.
            Self::Snd => 12,
        }
    }
}

/// A device served by another process over vhost-user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VhostUserConfig {
    /// The device.
    pub kind: VhostUserKind,
    /// The backend's socket.
    pub socket: PathBuf,
}

impl FromStr for VhostUserConfig {
    type Err = String;
    /// `KIND,socket=PATH`.
    fn from_str(s: &str) -> Result<Self, String> {
        let (kind, rest) = s.split_once(',').unwrap_or((s, ""));
        let kind = match kind {
            "blk" => VhostUserKind::Blk,
            "rng" => VhostUserKind::Rng,
            "console" => VhostUserKind::Console,
            "scsi" => VhostUserKind::Scsi,
            "net" => VhostUserKind::Net,
            "snd" => VhostUserKind::Snd,
            other => {
                return Err(format!(
                    "'{other}' is not a vhost-user device kind; use blk, rng, console, scsi, net or snd"
                ))
            }
        };
        match rest.strip_prefix("socket=") {
            Some(p) if !p.is_empty() => Ok(Self {
                kind,
                socket: PathBuf::from(p),
            }),
            _ => Err("give the backend's socket: KIND,socket=PATH".into()),
        }
    }
}

/// A whole VM definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VmConfig {
    /// Format version; see [`CONFIG_VERSION`].
    pub version: u32,
    /// Name shown to the user.
    #[serde(default = "default_name")]
    pub name: String,
    /// Virtual hardware.
    #[serde(default)]
    pub machine: MachineConfig,
    /// What to boot.
    pub boot: BootConfig,
    /// Serial port.
    #[serde(default)]
    pub serial: SerialConfig,
    /// Disks, in the order the guest sees them (vda, vdb, ...).
    #[serde(default, rename = "disk", skip_serializing_if = "Vec::is_empty")]
    pub disks: Vec<DiskConfig>,
    /// CD/DVD drives, in the order the guest sees them (sr0, sr1, ...).
    #[serde(default, rename = "cdrom", skip_serializing_if = "Vec::is_empty")]
    pub cdroms: Vec<CdromConfig>,
    /// Devices served by other processes.
    #[serde(default, rename = "vhost_user", skip_serializing_if = "Vec::is_empty")]
    pub vhost_user: Vec<VhostUserConfig>,
    /// The network card and what is behind it (none when absent).
    #[serde(default, skip_serializing_if = "NetworkConfig::is_default")]
    pub network: NetworkConfig,
    /// Other in-process virtio devices.
    #[serde(default)]
    pub devices: DevicesConfig,
    /// What the VM is, for the people and programs that list it (the VMM ignores it).
    #[serde(default, skip_serializing_if = "AboutConfig::is_empty")]
    pub about: AboutConfig,
}

/// Descriptive facts about a VM, kept with its definition: the VMM does not use them.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AboutConfig {
    /// The operating system, as shown to the user ("Debian GNU/Linux 12").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    /// The installer image it was created from, while that is still attached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub installer: Option<PathBuf>,
}

impl AboutConfig {
    /// Nothing is known.
    pub fn is_empty(&self) -> bool {
        self.os.is_none() && self.installer.is_none()
    }
}

/// How the virtio-gpu draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Renderer {
    /// 2D only: the guest draws in its own memory (the default).
    #[default]
    #[serde(rename = "2d")]
    TwoD,
    /// OpenGL through virglrenderer.
    Virgl,
    /// Vulkan through virglrenderer's venus.
    Venus,
}

impl FromStr for Renderer {
    type Err = String;
    /// `2d`, `virgl` or `venus`.
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "2d" => Ok(Self::TwoD),
            "virgl" => Ok(Self::Virgl),
            "venus" => Ok(Self::Venus),
            _ => Err(format!(
                "'{s}' is not a renderer; use 2d, virgl (OpenGL) or venus (Vulkan)"
            )),
        }
    }
}

impl Renderer {
    /// Whether this is the 2D default.
    pub fn is_2d(&self) -> bool {
        *self == Self::TwoD
    }
}

/// In-process virtio devices besides disks.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevicesConfig {
    /// A virtio-rng entropy source (host entropy, capped at 1 MiB/s).
    #[serde(default)]
    pub rng: bool,
    /// A virtio-console port (the guest's hvc0) and where it leads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub console: Option<ConsoleEndpoint>,
    /// A virtio-gpu display (2D).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<GpuConfig>,
    /// A virtio keyboard and tablet, fed by [`crate::VmCommand::Key`] and its siblings.
    #[serde(default)]
    pub input: bool,
    /// A virtio-snd sound card and where its sound goes; none without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sound: Option<SoundBackend>,
    /// Whether the sound card's capture hears the host's microphone (otherwise the guest
    /// records silence); changed while running with [`crate::VmCommand::Microphone`].
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub microphone: bool,
}

/// Where a VM's sound goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SoundBackend {
    /// The desktop's PipeWire (silent, with a warning, where there is none).
    Pipewire,
    /// Nowhere: the card works and is silent, and records silence.
    None,
}

impl FromStr for SoundBackend {
    type Err = String;
    /// `pipewire` or `none`.
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "pipewire" => Ok(Self::Pipewire),
            "none" => Ok(Self::None),
            _ => Err(format!(
                "'{s}' is not a sound backend; use pipewire (the desktop's sound) or none (a silent card)"
            )),
        }
    }
}

/// The virtio-gpu display.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpuConfig {
    /// Width of the display the guest is offered, in pixels.
    pub width: u32,
    /// Its height.
    pub height: u32,
    /// Write the latest frame to this PNG file (throttled), for debugging and tests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dump_scanout: Option<PathBuf>,
    /// The Unix socket a viewer (the app) attaches to (see [`crate::console_conn`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_socket: Option<PathBuf>,
    /// 2D, or 3D acceleration through virglrenderer (OpenGL) or venus (Vulkan), drawn by the
    /// VM's graphics process. A build without virglrenderer keeps a 3D choice and runs the
    /// VM in 2D.
    #[serde(default, skip_serializing_if = "Renderer::is_2d")]
    pub renderer: Renderer,
}

impl FromStr for GpuConfig {
    type Err = String;
    /// `WIDTHxHEIGHT`.
    fn from_str(s: &str) -> Result<Self, String> {
        let bad =
            || format!("'{s}' is not a display size; write it as WIDTHxHEIGHT, such as 1280x800");
        let (w, h) = s.split_once('x').ok_or_else(bad)?;
        Ok(Self {
            width: w.parse().map_err(|_| bad())?,
            height: h.parse().map_err(|_| bad())?,
            dump_scanout: None,
            display_socket: None,
            renderer: Renderer::TwoD,
        })
    }
}

fn default_name() -> String {
    "Unnamed VM".into()
}

/// A configuration problem, naming the field at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("Cannot read the VM definition {}: {source}.", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The TOML is malformed or has wrong types.
    #[error("The VM definition{} is not valid: {message}", in_file(path))]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's explanation, which names the key and line.
        message: String,
    },
    /// A field has a value we cannot use.
    #[error("{field}: {reason}")]
    Invalid {
        /// Dotted path of the field, as in the TOML file.
        field: String,
        /// What is wrong and what to do.
        reason: String,
    },
}

fn in_file(path: &Path) -> String {
    if path.as_os_str().is_empty() {
        String::new()
    } else {
        format!(" {}", path.display())
    }
}

fn invalid(field: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.to_owned(),
        reason: reason.into(),
    }
}

/// Physical memory of this host in bytes (0 if unknown).
pub fn host_memory_bytes() -> u64 {
    // SAFETY: sysconf has no memory-safety preconditions; negative results are errors.
    let (pages, page_size) = unsafe {
        (
            libc::sysconf(libc::_SC_PHYS_PAGES),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    if pages <= 0 || page_size <= 0 {
        return 0;
    }
    (pages as u64).saturating_mul(page_size as u64)
}

fn path_is_empty(p: &Path) -> bool {
    p.as_os_str().is_empty()
}

impl VmConfig {
    /// A configuration that boots `kernel` with defaults for everything else.
    pub fn new(kernel: impl Into<PathBuf>) -> Self {
        Self {
            version: CONFIG_VERSION,
            name: default_name(),
            machine: MachineConfig::default(),
            boot: BootConfig {
                kernel: kernel.into(),
                firmware: None,
                firmware_vars: None,
                initrd: None,
                cmdline: None,
            },
            serial: SerialConfig::default(),
            disks: Vec::new(),
            cdroms: Vec::new(),
            network: NetworkConfig::default(),
            vhost_user: Vec::new(),
            devices: DevicesConfig::default(),
            about: AboutConfig::default(),
        }
    }

    /// Reads and validates a TOML file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let config = Self::from_toml(&text).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.to_owned(),
                message,
            },
            other => other,
        })?;
        Ok(config)
    }

    /// Parses and validates TOML text.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        // Look at the version first, so that a newer file gets a version error rather
        // than a confusing complaint about a field this build does not know.
        if let Ok(table) = text.parse::<toml::Table>() {
            if let Some(v) = table.get("version").and_then(toml::Value::as_integer) {
                if v != i64::from(CONFIG_VERSION) {
                    return Err(version_error(v));
                }
            }
        }
        let config: VmConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: PathBuf::new(),
            message: one_line_parse_error(text, &e),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// The TOML form.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }

    /// The command line to boot with.
    pub fn cmdline(&self) -> &str {
        self.boot.cmdline.as_deref().unwrap_or(DEFAULT_CMDLINE)
    }

    /// Checks every field; the first problem is returned.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.version != CONFIG_VERSION {
            return Err(version_error(i64::from(self.version)));
        }
        if self.name.trim().is_empty() {
            return Err(invalid("name", "the VM needs a name"));
        }
        let cpus = self.machine.cpus;
        if cpus == 0 || cpus > MAX_CPUS {
            return Err(invalid(
                "machine.cpus",
                format!("{cpus} vCPUs is not possible; choose between 1 and {MAX_CPUS}"),
            ));
        }
        let mib = self.machine.memory_mib;
        if mib < MIN_MEMORY_MIB {
            return Err(invalid(
                "machine.memory_mib",
                format!(
                    "{mib} MiB is too little memory; give the VM at least {MIN_MEMORY_MIB} MiB"
                ),
            ));
        }
        let host = host_memory_bytes();
        if host > 0 && mib.saturating_mul(1 << 20) > host {
            return Err(invalid(
                "machine.memory_mib",
                format!(
                    "{mib} MiB is more than this computer has ({} MiB); choose at most that",
                    host >> 20
                ),
            ));
        }
        let has_kernel = !self.boot.kernel.as_os_str().is_empty();
        match (&self.boot.firmware, has_kernel) {
            (None, false) => {
                return Err(invalid(
                    "boot.kernel",
                    "no kernel and no firmware were given; name one of them",
                ))
            }
            (Some(_), true) => {
                return Err(invalid(
                    "boot.firmware",
                    "a VM boots either firmware or a kernel; remove one of boot.firmware and boot.kernel",
                ))
            }
            (Some(f), false) if f.as_os_str().is_empty() => {
                return Err(invalid("boot.firmware", "the firmware path is empty"));
            }
            _ => {}
        }
        if self.boot.firmware_vars.is_some() && self.boot.firmware.is_none() {
            return Err(invalid(
                "boot.firmware_vars",
                "a variable store needs firmware; set boot.firmware too",
            ));
        }
        if self
            .boot
            .initrd
            .as_ref()
            .is_some_and(|p| p.as_os_str().is_empty())
        {
            return Err(invalid("boot.initrd", "the initrd path is empty"));
        }
        if let Some(c) = &self.boot.cmdline {
            if c.contains('\0') || !c.is_ascii() {
                return Err(invalid(
                    "boot.cmdline",
                    "the kernel command line must be plain ASCII text",
                ));
            }
        }
        if self.devices.console == Some(ConsoleEndpoint::Stdio) {
            return Err(invalid(
                "devices.console",
                "standard I/O belongs to the serial port; use file:PATH or socket:PATH",
            ));
        }
        if let Some(g) = &self.devices.gpu {
            let max = crate::devices::virtio::gpu::MAX_DIMENSION;
            if !(64..=max).contains(&g.width) || !(64..=max).contains(&g.height) {
                return Err(invalid(
                    "devices.gpu",
                    format!(
                        "{}x{} is not a usable display size; give 64 to {max} pixels each way",
                        g.width, g.height
                    ),
                ));
            }
        }
        if self.disks.len() + self.vhost_user.len() > MAX_DISKS {
            return Err(invalid(
                "disk",
                format!("a VM can have at most {MAX_DISKS} disks and vhost-user devices together"),
            ));
        }
        if self.cdroms.len() > MAX_CDROMS {
            return Err(invalid(
                "cdrom",
                format!("a VM can have at most {MAX_CDROMS} CD/DVD drives"),
            ));
        }
        for (i, c) in self.cdroms.iter().enumerate() {
            if c.path.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
                return Err(invalid(
                    &format!("cdrom[{i}].path"),
                    "the disc path is empty; leave `path` out for an empty drive",
                ));
            }
        }
        if let Some((field, why)) = self.network.problem() {
            return Err(invalid(&field, why));
        }
        for (i, d) in self.disks.iter().enumerate() {
            if d.path.as_os_str().is_empty() {
                return Err(invalid(
                    &format!("disk[{i}].path"),
                    "the disk path is empty",
                ));
            }
            if !(1..=MAX_DISK_QUEUES).contains(&d.queues) {
                return Err(invalid(
                    &format!("disk[{i}].queues"),
                    format!(
                        "{} queues is not possible; choose between 1 and {MAX_DISK_QUEUES}",
                        d.queues
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// "line L, column C: message", on one line, from a TOML error.
fn one_line_parse_error(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim_end_matches('\n').replace('\n', "; ");
    match e.span() {
        Some(span) => {
            let before = &text.as_bytes()[..span.start.min(text.len())];
            let line = before.iter().filter(|b| **b == b'\n').count() + 1;
            let column = before.iter().rev().take_while(|b| **b != b'\n').count() + 1;
            let source_line = text.lines().nth(line - 1).unwrap_or("").trim();
            format!("line {line} (`{source_line}`), column {column}: {message}.")
        }
        None => format!("{message}."),
    }
}

fn version_error(v: i64) -> ConfigError {
    invalid(
        "version",
        format!(
            "this definition has format version {v}, but this Phyllome reads version {CONFIG_VERSION}; {}",
            if v > i64::from(CONFIG_VERSION) { "update Phyllome" } else { "recreate the VM" }
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
version = 1
name = "Debian"

[machine]
cpus = 2
memory_mib = 1024

[boot]
kernel = "/boot/vmlinuz"
initrd = "/boot/initrd.img"
cmdline = "console=ttyS0"

[serial]
output = "file:/tmp/serial.log"

[[disk]]
path = "/var/lib/disk.img"

[[disk]]
path = "/var/lib/installer.iso"
readonly = true
"#;

    fn field_of(e: ConfigError) -> String {
        match e {
            ConfigError::Invalid { field, .. } => field,
            other => panic!("expected a field error, got {other}"),
        }
    }

    #[test]
    fn disk_options_parse_and_bad_ones_say_what_exists() {
        let d: DiskConfig = "/d.qcow2,readonly,format=qcow2,queues=4".parse().unwrap();
        assert_eq!(
            (d.readonly, d.format, d.queues),
            (true, Some(ImageFormat::Qcow2), 4)
        );
        let d: DiskConfig = "/d.img".parse().unwrap();
        assert_eq!((d.readonly, d.format, d.queues), (false, None, 1));
        assert_eq!(d.cache, CacheMode::Writeback);
        let d: DiskConfig = "/d.img,cache=none".parse().unwrap();
        assert_eq!(d.cache, CacheMode::None);
        for (bad, says) in [
            ("/d.img,format=vmdk", "raw or qcow2"),
            ("/d.img,queues=0", "from 1 to 16"),
            ("/d.img,queues=99", "from 1 to 16"),
            ("/d.img,cache=weird", "writeback or none"),
            ("/d.img,discard", "use readonly"),
            (",readonly", "needs a path"),
        ] {
            let e = bad.parse::<DiskConfig>().unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
        let toml = GOOD.replace(
            "path = \"/var/lib/disk.img\"",
            "path = \"/var/lib/disk.img\"\nformat = \"qcow2\"\nqueues = 2\ncache = \"none\"",
        );
        let c = VmConfig::from_toml(&toml).unwrap();
        assert_eq!(c.disks[0].format, Some(ImageFormat::Qcow2));
        assert_eq!(c.disks[0].queues, 2);
        assert_eq!(c.disks[0].cache, CacheMode::None);
        assert_eq!(c.disks[1].cache, CacheMode::Writeback);
        assert!(
            !c.to_toml().contains("writeback"),
            "the default is left out"
        );
        assert_eq!(VmConfig::from_toml(&c.to_toml()).unwrap(), c, "round trip");
        let e =
            VmConfig::from_toml(&GOOD.replace("readonly = true", "readonly = true\nqueues = 17"))
                .unwrap_err();
        assert_eq!(field_of(e), "disk[1].queues");
    }

    #[test]
    fn full_file_parses() {
        let c = VmConfig::from_toml(GOOD).expect("valid");
        assert_eq!(c.machine.cpus, 2);
        assert_eq!(c.machine.memory_mib, 1024);
        assert_eq!(
            c.boot.initrd.as_deref(),
            Some(Path::new("/boot/initrd.img"))
        );
        assert_eq!(
            c.serial.output,
            SerialOutput::File("/tmp/serial.log".into())
        );
    }

    #[test]
    fn round_trips_through_toml() {
        let c = VmConfig::from_toml(GOOD).expect("valid");
        assert_eq!(VmConfig::from_toml(&c.to_toml()).expect("round trip"), c);
    }

    #[test]
    fn sound_is_a_device_with_a_backend_and_a_microphone_setting() {
        let base = "version = 1\n[boot]\nkernel = \"k\"\n[devices]\n";
        let c = VmConfig::from_toml(&format!("{base}sound = \"pipewire\"\nmicrophone = true\n"))
            .expect("valid");
        assert_eq!(c.devices.sound, Some(SoundBackend::Pipewire));
        assert!(c.devices.microphone);
        assert_eq!(VmConfig::from_toml(&c.to_toml()).expect("round trip"), c);
        let none = VmConfig::from_toml(base).expect("valid");
        assert_eq!((none.devices.sound, none.devices.microphone), (None, false));
        assert!(
            !none.to_toml().contains("sound"),
            "no card, nothing written"
        );
        let err = VmConfig::from_toml(&format!("{base}sound = \"alsa\"\n")).unwrap_err();
        assert!(err.to_string().contains("sound"), "{err}");
    }

    #[test]
    fn minimal_file_gets_defaults() {
        let c = VmConfig::from_toml("version = 1\n[boot]\nkernel = \"k\"\n").expect("valid");
        assert_eq!((c.machine.cpus, c.machine.memory_mib), (1, 512));
        assert_eq!(c.cmdline(), DEFAULT_CMDLINE);
        assert_eq!(c.serial.output, SerialOutput::Stdio);
    }

    #[test]
    fn zero_cpus_names_the_field() {
        let t = GOOD.replace("cpus = 2", "cpus = 0");
        assert_eq!(
            field_of(VmConfig::from_toml(&t).unwrap_err()),
            "machine.cpus"
        );
    }

    #[test]
    fn zero_and_absurd_memory_name_the_field() {
        for m in ["0", "8", "999999999999"] {
            let t = GOOD.replace("memory_mib = 1024", &format!("memory_mib = {m}"));
            assert_eq!(
                field_of(VmConfig::from_toml(&t).unwrap_err()),
                "machine.memory_mib",
                "{m}"
            );
        }
    }

    #[test]
    fn newer_version_says_to_update() {
        let t = GOOD.replace("version = 1", "version = 7\nfuture_field = true");
        let e = VmConfig::from_toml(&t).unwrap_err();
        assert!(e.to_string().contains("update Phyllome"), "{e}");
    }

    #[test]
    fn unknown_field_and_wrong_type_are_parse_errors_naming_the_key() {
        let e = VmConfig::from_toml(&GOOD.replace("cpus = 2", "cpu = 2")).unwrap_err();
        assert!(
            matches!(e, ConfigError::Parse { .. }) && e.to_string().contains("cpu"),
            "{e}"
        );
        let e = VmConfig::from_toml(&GOOD.replace("cpus = 2", "cpus = \"two\"")).unwrap_err();
        assert!(e.to_string().contains("cpus"), "{e}");
    }

    #[test]
    fn parse_errors_are_one_line_with_position() {
        let e =
            VmConfig::from_toml("version = 1\n[boot]\nkernel = \"k\"\ncpus = [[\n").unwrap_err();
        let text = e.to_string();
        assert!(!text.contains('\n'), "{text}");
        assert!(text.contains("line 5"), "{text}");
    }

    #[test]
    fn bad_serial_output_is_refused() {
        let e = VmConfig::from_toml(&GOOD.replace("file:/tmp/serial.log", "printer")).unwrap_err();
        assert!(e.to_string().contains("not a serial output"), "{e}");
    }

    #[test]
    fn serial_output_parses_each_form() {
        assert_eq!("stdio".parse(), Ok(SerialOutput::Stdio));
        assert_eq!("none".parse(), Ok(SerialOutput::None));
        assert_eq!("file:/x".parse(), Ok(SerialOutput::File("/x".into())));
        assert!("file:".parse::<SerialOutput>().is_err());
    }

    #[test]
    fn non_ascii_cmdline_is_refused() {
        let e = VmConfig::from_toml(&GOOD.replace("console=ttyS0", "console=ttyS0 é")).unwrap_err();
        assert_eq!(field_of(e), "boot.cmdline");
    }
}
