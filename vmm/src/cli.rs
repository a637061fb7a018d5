//! The `phyllome-vmm` command line: a thin front over [`crate::Vm`], so that everything
//! the binary can do the library can do too.

use crate::config::{SerialOutput, VmConfig, CONFIG_VERSION};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// Phyllome's virtual machine monitor, headless.
#[derive(Debug, Parser)]
#[command(name = "phyllome-vmm", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Boot a kernel (or a VM definition) and run it until it powers off.
    Run(Box<RunArgs>),
    /// Serve one virtio device to a vhost-user frontend (QEMU, or another VMM) until it disconnects.
    #[command(subcommand)]
    Device(DeviceCommand),
    /// Talks to a running VM's display over its console connection, as the app does
    /// (for scripts and tests; the app must not be attached: one viewer at a time).
    Display {
        /// The VM's display socket (`run --display-socket`, `device gpu --console`).
        #[arg(long)]
        socket: PathBuf,
        /// What to ask.
        #[command(subcommand)]
        action: DisplayAction,
    },
}

/// `phyllome-vmm device <kind>`.
#[derive(Debug, Subcommand)]
pub enum DeviceCommand {
    /// A virtio-blk disk backed by a raw or qcow2 image.
    Blk {
        /// The vhost-user socket to listen on.
        #[arg(long)]
        socket: PathBuf,
        /// The disk image.
        #[arg(long)]
        path: PathBuf,
        /// The image format (raw or qcow2); by default the file's first bytes decide.
        #[arg(long)]
        format: Option<crate::devices::virtio::blk::ImageFormat>,
        /// Refuse writes (the guest sees a read-only disk).
        #[arg(long)]
        readonly: bool,
        /// Number of request queues.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
        queues: u16,
        /// How long, in microseconds, the device keeps watching a queue after a batch
        /// before it sleeps until the next doorbell (0: never; at most 1000). Watching costs
        /// CPU time and saves a wake-up per request when the guest sends them one by one.
        #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(0..=1000))]
        poll_us: u64,
        /// Through the host's page cache (writeback) or around it (none, raw images only).
        #[arg(long, default_value = "writeback")]
        cache: crate::devices::virtio::blk::CacheMode,
    },
    /// A virtio-console port (the guest's hvc0): output to stdout (typing on stdin reaches
    /// the guest) or to a file.
    Console {
        /// The vhost-user socket to listen on.
        #[arg(long)]
        socket: PathBuf,
        /// Where the port leads: stdio, file:PATH (output only) or socket:PATH (one client
        /// at a time sends input and gets output).
        #[arg(long, default_value = "stdio")]
        output: crate::devices::virtio::console::endpoint::ConsoleEndpoint,
    },
    /// A virtio-gpu display (2D or 3D), with an optional virtio keyboard and tablet, for
    /// frontends such as QEMU's `vhost-user-gpu-pci` and `vhost-user-input-pci`.
    Gpu {
        /// The GPU's vhost-user socket to listen on.
        #[arg(long)]
        socket: PathBuf,
        /// The display size offered at start, WIDTHxHEIGHT.
        #[arg(long, default_value = "1280x800")]
        size: crate::config::GpuConfig,
        /// Also serve a keyboard on PREFIX.keyboard and a tablet on PREFIX.tablet.
        #[arg(long, value_name = "PREFIX")]
        input_socket: Option<PathBuf>,
        /// Listen for the app (`phyllome --console PATH`) here.
        #[arg(long)]
        console: Option<PathBuf>,
        /// Listen here for the VMM's firmware link: the firmware's boot framebuffer (ramfb)
        /// comes in and is shown on the display; keys typed before the guest binds the
        /// virtio keyboard go back to the VMM's PS/2 keyboard.
        #[arg(long)]
        boot_socket: Option<PathBuf>,
        /// Write the latest flushed frame to this PNG file (throttled).
        #[arg(long)]
        dump_scanout: Option<PathBuf>,
        /// How it draws: 2d, virgl (OpenGL through virglrenderer) or venus (Vulkan).
        #[arg(long, default_value = "2d")]
        renderer: crate::config::Renderer,
        /// Run without the system-call filter (for debugging a driver; not for guests you
        /// do not trust).
        #[arg(long)]
        no_sandbox: bool,
        /// With 3D, the size of the host-visible region where mappable blobs appear to the
        /// guest (address space, not memory), in MiB; 0 turns blob resources off. Offered
        /// only where the renderer can share its blobs' memory.
        #[arg(long, default_value_t = 1024)]
        host_visible_mib: u64,
    },
    /// A virtio-scsi adapter with CD/DVD drives, for QEMU's `vhost-user-scsi-pci`. Lines
    /// on standard input change discs while it runs: `eject N`, `eject N force`,
    /// `insert N PATH`.
    Scsi {
        /// The vhost-user socket to listen on.
        #[arg(long)]
        socket: PathBuf,
        /// A drive with this disc image in it, or `empty` (repeatable: targets 0, 1, ...).
        #[arg(long, required = true)]
        cdrom: Vec<crate::config::CdromConfig>,
    },
    /// A virtio-net card with passt behind it (user-mode networking), for QEMU's
    /// `-netdev vhost-user`; passt ends with it.
    Net {
        /// The vhost-user socket to listen on.
        #[arg(long)]
        socket: PathBuf,
        /// Start passt as the backend (the only one there is; the flag says so).
        #[arg(long, required = true)]
        passt: bool,
        /// A host port forwarded into the guest: tcp:HOST:GUEST or udp:HOST:GUEST
        /// (repeatable).
        #[arg(long)]
        forward: Vec<crate::network::Forward>,
    },
    /// A virtio-snd sound card playing and recording through the PipeWire of the calling
    /// environment, for QEMU's `vhost-user-snd-pci`.
    Snd {
        /// The vhost-user socket to listen on.
        #[arg(long)]
        socket: PathBuf,
        /// Where the sound goes: pipewire, or none (a silent card).
        #[arg(long, default_value = "pipewire")]
        sound: crate::config::SoundBackend,
        /// Let the guest hear the host's microphone (without it, it records silence).
        #[arg(long)]
        microphone: bool,
        /// The name the sound server shows for the streams ("Phyllome: NAME").
        #[arg(long, default_value = "VM")]
        name: String,
    },
    /// A virtio-rng entropy source.
    Rng {
        /// The vhost-user socket to listen on.
        #[arg(long)]
        socket: PathBuf,
        /// Most bytes of entropy per second.
        #[arg(long, default_value_t = crate::devices::virtio::rng::DEFAULT_BYTES_PER_SEC)]
        rate: u64,
    },
}

/// What `phyllome-vmm display` asks.
#[derive(Debug, Subcommand)]
pub enum DisplayAction {
    /// A new display size, WIDTHxHEIGHT: the guest is told its display changed.
    Resize {
        /// The size.
        size: crate::config::GpuConfig,
    },
    /// Keys typed, in order, each pressed and released: Linux evdev key codes (28 Enter,
    /// 103 Up, 108 Down, 1 Escape, 30 A...).
    Key {
        /// The codes.
        #[arg(required = true)]
        codes: Vec<u16>,
    },
}

/// `phyllome-vmm run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// A VM definition (TOML); the other options are then not allowed.
    #[arg(long, conflicts_with_all = ["kernel", "firmware", "initrd", "cmdline", "cpus", "memory", "no_reboot", "serial", "disk", "cdrom", "vhost_user", "net", "sound", "microphone"])]
    pub config: Option<PathBuf>,
    /// Kernel: bzImage, ELF vmlinux, or an ELF with a PVH entry note.
    #[arg(long, required_unless_present_any = ["config", "firmware"], conflicts_with = "firmware")]
    pub kernel: Option<PathBuf>,
    /// Boot UEFI firmware instead of a kernel, as a PC does (Debian's
    /// /usr/share/OVMF/OVMF_CODE_4M.fd): it starts the OS on the disks.
    #[arg(long, conflicts_with_all = ["initrd", "cmdline"])]
    pub firmware: Option<PathBuf>,
    /// The firmware's variable store (boot entries, settings), written as the firmware
    /// changes it: this VM's own copy of /usr/share/OVMF/OVMF_VARS_4M.fd. Without it the
    /// variables live in memory only and are lost when the VM stops.
    #[arg(long)]
    pub firmware_vars: Option<PathBuf>,
    /// Initial ramdisk.
    #[arg(long)]
    pub initrd: Option<PathBuf>,
    /// Kernel command line.
    #[arg(long)]
    pub cmdline: Option<String>,
    /// Number of vCPUs.
    #[arg(long, default_value_t = 1)]
    pub cpus: u32,
    /// Guest memory in MiB.
    #[arg(long, default_value_t = 512)]
    pub memory: u64,
    /// Stop instead of rebooting when the guest resets.
    #[arg(long)]
    pub no_reboot: bool,
    /// A disk image as virtio-blk: PATH[,readonly][,format=raw|qcow2][,queues=N][,cache=writeback|none] (repeatable: vda, vdb, ...).
    #[arg(long)]
    pub disk: Vec<crate::config::DiskConfig>,
    /// A CD/DVD drive on virtio-scsi with this disc image in it, or `empty` (repeatable:
    /// sr0, sr1, ...). The firmware boots installer discs from it.
    #[arg(long)]
    pub cdrom: Vec<crate::config::CdromConfig>,
    /// A device served by another process: KIND,socket=PATH with KIND blk, rng, console, scsi, net or snd (repeatable).
    #[arg(long)]
    pub vhost_user: Vec<crate::config::VhostUserConfig>,
    /// The network: `passt` (user-mode networking through passt, with
    /// `,forward=tcp:HOST:GUEST` for each host port that leads into the guest and
    /// optionally `,mac=52:54:00:...`) or `none`.
    #[arg(long, default_value = "none")]
    pub net: crate::network::NetworkConfig,
    /// Where the serial console goes: stdio, none, or file:PATH.
    #[arg(long, default_value = "stdio", value_parser = parse_serial)]
    pub serial: SerialOutput,
    /// A virtio-rng entropy source.
    #[arg(long)]
    pub rng: bool,
    /// A virtio-console port (hvc0) leading to file:PATH or socket:PATH.
    #[arg(long)]
    pub console: Option<crate::devices::virtio::console::endpoint::ConsoleEndpoint>,
    /// A virtio-gpu display of WIDTHxHEIGHT pixels.
    #[arg(long)]
    pub gpu: Option<crate::config::GpuConfig>,
    /// A virtio keyboard and tablet.
    #[arg(long)]
    pub input: bool,
    /// A virtio-snd sound card: pipewire (the desktop's sound) or none (silent).
    #[arg(long)]
    pub sound: Option<crate::config::SoundBackend>,
    /// Let the sound card's capture hear the host's microphone (otherwise the guest
    /// records silence).
    #[arg(long, requires = "sound")]
    pub microphone: bool,
    /// Write the display's latest frame to this PNG file (needs --gpu).
    #[arg(long, requires = "gpu")]
    pub dump_scanout: Option<PathBuf>,
    /// Listen for a display viewer (the app: `phyllome --console PATH`) here (needs --gpu).
    #[arg(long, requires = "gpu")]
    pub display_socket: Option<PathBuf>,
}

fn parse_serial(s: &str) -> Result<SerialOutput, String> {
    match s.parse()? {
        SerialOutput::Events => {
            Err("'events' is for programs using the library; use stdio, none, or file:PATH".into())
        }
        other => Ok(other),
    }
}

impl RunArgs {
    /// The VM definition these arguments describe (not yet validated).
    pub fn to_config(&self) -> Result<VmConfig, crate::config::ConfigError> {
        if let Some(path) = &self.config {
            return VmConfig::from_file(path);
        }
        let mut c = VmConfig::new(self.kernel.clone().unwrap_or_default());
        c.version = CONFIG_VERSION;
        c.boot.initrd = self.initrd.clone();
        c.boot.cmdline = self.cmdline.clone();
        c.boot.firmware = self.firmware.clone();
        c.boot.firmware_vars = self.firmware_vars.clone();
        c.machine.cpus = self.cpus;
        c.machine.memory_mib = self.memory;
        c.machine.no_reboot = self.no_reboot;
        c.serial.output = self.serial.clone();
        c.disks = self.disk.clone();
        c.cdroms = self.cdrom.clone();
        c.devices.rng = self.rng;
        c.devices.console = self.console.clone();
        c.devices.input = self.input;
        c.devices.sound = self.sound;
        c.devices.microphone = self.microphone;
        c.devices.gpu = self.gpu.clone().map(|mut g| {
            g.dump_scanout = self.dump_scanout.clone();
            g.display_socket = self.display_socket.clone();
            g
        });
        c.vhost_user = self.vhost_user.clone();
        c.network = self.net.clone();
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("phyllome-vmm").chain(args.iter().copied()))
    }

    #[test]
    fn flags_become_a_config() {
        let cli = parse(&[
            "run",
            "--kernel",
            "k",
            "--cpus",
            "2",
            "--memory",
            "64",
            "--no-reboot",
            "--serial",
            "none",
            "--disk",
            "/a.img",
            "--disk",
            "/b.iso,readonly",
        ])
        .expect("valid");
        let Command::Run(args) = cli.command else {
            panic!("expected run");
        };
        let c = args.to_config().expect("config");
        assert_eq!(
            (c.machine.cpus, c.machine.memory_mib, c.machine.no_reboot),
            (2, 64, true)
        );
        assert_eq!(c.serial.output, SerialOutput::None);
        assert_eq!(c.disks.len(), 2);
        assert!(c.disks[1].readonly);
    }

    #[test]
    fn firmware_flags_become_a_firmware_boot() {
        let cli = parse(&[
            "run",
            "--firmware",
            "/usr/share/OVMF/OVMF_CODE_4M.fd",
            "--firmware-vars",
            "vars.fd",
        ])
        .expect("valid");
        let Command::Run(args) = cli.command else {
            panic!("expected run");
        };
        let c = args.to_config().expect("config");
        assert_eq!(
            c.boot.firmware.as_deref(),
            Some(std::path::Path::new("/usr/share/OVMF/OVMF_CODE_4M.fd"))
        );
        assert_eq!(
            c.boot.firmware_vars.as_deref(),
            Some(std::path::Path::new("vars.fd"))
        );
        assert!(c.boot.kernel.as_os_str().is_empty());
        c.validate().expect("a firmware boot needs no kernel");
        assert!(parse(&["run", "--firmware", "f", "--kernel", "k"]).is_err());
        // A variable store without firmware: refused, by clap or by validation.
        let refused = parse(&["run", "--firmware-vars", "v", "--kernel", "k"]).map(|cli| {
            let Command::Run(args) = cli.command else {
                panic!("expected run");
            };
            args.to_config().expect("config").validate()
        });
        assert!(!matches!(refused, Ok(Ok(()))), "{refused:?}");
        assert!(parse(&["run"]).is_err(), "a kernel or firmware is needed");
    }

    #[test]
    fn display_key_takes_evdev_codes_in_order() {
        let cli = parse(&["display", "--socket", "/d.sock", "key", "108", "28"]).expect("valid");
        let Command::Display { action, .. } = cli.command else {
            panic!("expected display");
        };
        assert!(matches!(action, DisplayAction::Key { codes } if codes == [108, 28]));
        assert!(
            parse(&["display", "--socket", "/d.sock", "key"]).is_err(),
            "no keys"
        );
        assert!(parse(&["display", "--socket", "/d.sock", "key", "70000"]).is_err());
    }

    #[test]
    fn device_subcommands_parse() {
        let cli = parse(&[
            "device",
            "blk",
            "--socket",
            "/s",
            "--path",
            "/d.img",
            "--readonly",
        ])
        .expect("valid");
        assert!(matches!(
            cli.command,
            Command::Device(DeviceCommand::Blk {
                readonly: true,
                queues: 1,
                poll_us: 32,
                ..
            })
        ));
        let direct = [
            "device", "blk", "--socket", "/s", "--path", "/d", "--cache", "none",
        ];
        assert!(matches!(
            parse(&direct).unwrap().command,
            Command::Device(DeviceCommand::Blk {
                cache: crate::devices::virtio::blk::CacheMode::None,
                ..
            })
        ));
        let bogus = [
            "device", "blk", "--socket", "/s", "--path", "/d", "--cache", "unsafe",
        ];
        assert!(parse(&bogus).is_err());
        for (poll, ok) in [("0", true), ("1000", true), ("5000", false)] {
            let args = [
                "device",
                "blk",
                "--socket",
                "/s",
                "--path",
                "/d",
                "--poll-us",
                poll,
            ];
            assert_eq!(
                parse(&args).is_ok(),
                ok,
                "--poll-us {poll}: at most a millisecond"
            );
        }
        assert!(matches!(
            parse(&[
                "device",
                "gpu",
                "--socket",
                "/g",
                "--input-socket",
                "/in",
                "--size",
                "800x600"
            ])
            .unwrap()
            .command,
            Command::Device(DeviceCommand::Gpu {
                size: crate::config::GpuConfig {
                    width: 800,
                    height: 600,
                    ..
                },
                input_socket: Some(_),
                console: None,
                ..
            })
        ));
        assert!(matches!(
            parse(&["device", "gpu", "--socket", "/g", "--boot-socket", "/b"])
                .unwrap()
                .command,
            Command::Device(DeviceCommand::Gpu {
                boot_socket: Some(_),
                ..
            })
        ));
        assert!(parse(&["device", "gpu", "--socket", "/g", "--size", "big"]).is_err());
        assert!(
            parse(&["device", "blk", "--socket", "/s"]).is_err(),
            "an image is required"
        );
        assert!(
            parse(&["device", "blk", "--socket", "/s", "--path", "/d", "--queues", "0"]).is_err()
        );
        assert!(parse(&["device", "rng", "--socket", "/s", "--rate", "4096"]).is_ok());
        assert!(parse(&[
            "device",
            "console",
            "--socket",
            "/s",
            "--output",
            "file:/tmp/c.log"
        ])
        .is_ok());
        assert!(parse(&["device", "console", "--socket", "/s", "--output", "printer"]).is_err());
        assert!(matches!(
            parse(&["device", "snd", "--socket", "/s", "--microphone"])
                .unwrap()
                .command,
            Command::Device(DeviceCommand::Snd {
                sound: crate::config::SoundBackend::Pipewire,
                microphone: true,
                ..
            })
        ));
        assert!(parse(&["device", "snd", "--socket", "/s", "--sound", "alsa"]).is_err());
    }

    #[test]
    fn sound_flags_become_the_config() {
        let Command::Run(run) = parse(&["run", "--kernel", "k", "--sound", "none", "--microphone"])
            .unwrap()
            .command
        else {
            panic!("not run");
        };
        let c = run.to_config().unwrap();
        assert_eq!(c.devices.sound, Some(crate::config::SoundBackend::None));
        assert!(c.devices.microphone);
        let err = parse(&["run", "--kernel", "k", "--microphone"]).unwrap_err();
        assert!(err.to_string().contains("--sound"), "{err}");
        let err = parse(&["run", "--kernel", "k", "--sound", "loud"]).unwrap_err();
        assert!(err.to_string().contains("pipewire"), "{err}");
    }

    #[test]
    fn config_excludes_other_flags_and_kernel_is_required() {
        assert!(parse(&["run", "--config", "a.toml", "--cpus", "2"]).is_err());
        assert!(parse(&["run"]).is_err());
        assert!(parse(&["run", "--kernel", "k", "--serial", "events"]).is_err());
    }
}
