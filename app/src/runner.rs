//! Runs the library's VMs inside the app: each VM's monitor works on its own threads
//! ([`phyllome_vmm::Vm`]); one more thread per VM starts it (loading a kernel and initrd
//! takes a moment) and then forwards its events. The GTK main loop only ever receives
//! events and sends commands, so it never waits on a VM.

use phyllome_vmm::api::CommandSender;
use phyllome_vmm::config::{GpuConfig, Renderer, SerialOutput};
use phyllome_vmm::{Vm, VmConfig, VmEvent};
use std::path::{Path, PathBuf};

/// The display the guest is offered when its definition names none.
pub const DEFAULT_DISPLAY: (u32, u32) = (1280, 800);

/// What a VM's runner thread reports.
#[derive(Debug)]
pub enum RunnerEvent {
    /// The VM is built and running; commands go through this sender.
    Started(CommandSender),
    /// It could not start; nothing ran. The sentence says why.
    Failed(String),
    /// An event from the running VM (its last is `Stopped`).
    Vm(VmEvent),
}

/// Where the app's sockets for running VMs live: `$XDG_RUNTIME_DIR/phyllome`, or a private
/// folder in `/tmp` when there is no runtime folder.
pub fn runtime_dir() -> PathBuf {
    std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .map_or_else(
            || {
                // SAFETY: getuid has no preconditions and cannot fail.
                let uid = unsafe { libc::getuid() };
                std::env::temp_dir().join(format!("phyllome-{uid}"))
            },
            |p| p.join("phyllome"),
        )
}

/// The display socket of the VM in `dir`, in a runtime folder of that VM's own (a 3D VM's
/// graphics process may write there and nowhere near another VM's sockets). Short: Unix
/// socket paths are limited to 107 bytes.
pub fn display_socket(dir: &Path) -> PathBuf {
    let name: String = dir
        .file_name()
        .map(|n| n.to_string_lossy().chars().take(40).collect())
        .unwrap_or_else(|| "vm".into());
    runtime_dir().join(name).join("display")
}

/// The definition as it runs from the app: the serial port logged beside the definition,
/// a display with a keyboard and tablet, and the display's socket for the window.
pub fn runtime_config(dir: &Path, config: &VmConfig) -> VmConfig {
    let mut c = config.clone();
    c.serial.output = SerialOutput::File(dir.join("serial.log"));
    let gpu = c.devices.gpu.get_or_insert(GpuConfig {
        width: DEFAULT_DISPLAY.0,
        height: DEFAULT_DISPLAY.1,
        dump_scanout: None,
        display_socket: None,
        renderer: Renderer::TwoD,
    });
    gpu.display_socket = Some(display_socket(dir));
    c.devices.input = true;
    c
}

/// Starts the VM in `dir` on a new thread; `emit` receives what happens, from that thread.
pub fn launch(dir: &Path, config: &VmConfig, emit: impl Fn(RunnerEvent) + Send + 'static) {
    let config = runtime_config(dir, config);
    std::thread::spawn(move || {
        if let Some(parent) = config
            .devices
            .gpu
            .as_ref()
            .and_then(|g| g.display_socket.as_deref())
            .and_then(Path::parent)
        {
            if let Err(e) = create_private_dir(parent) {
                emit(RunnerEvent::Failed(format!(
                    "Cannot create the folder for the display's socket, {}: {e}.",
                    parent.display()
                )));
                return;
            }
        }
        let handle = match Vm::start(config) {
            Ok(h) => h,
            Err(e) => {
                emit(RunnerEvent::Failed(e.to_string()));
                return;
            }
        };
        emit(RunnerEvent::Started(handle.command_sender()));
        // Blocks this thread until the VM stops, and joins the VM's threads.
        let reason = handle.wait(|event| emit(RunnerEvent::Vm(event.clone())));
        emit(RunnerEvent::Vm(VmEvent::Stopped(reason)));
    });
}

/// Makes `dir` (mode 0700) if it is missing.
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
    {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_runtime_definition_adds_a_display_input_and_a_serial_log() {
        let mut c = VmConfig::new("/boot/vmlinuz");
        c.name = "Debian".into();
        let dir =
            Path::new("/data/phyllome/vms/a-very-long-folder-name-that-goes-on-and-on-and-on");
        let r = runtime_config(dir, &c);
        assert_eq!(r.serial.output, SerialOutput::File(dir.join("serial.log")));
        assert!(r.devices.input);
        let gpu = r.devices.gpu.unwrap();
        assert_eq!((gpu.width, gpu.height), DEFAULT_DISPLAY);
        let socket = gpu.display_socket.unwrap();
        assert!(socket.starts_with(runtime_dir()));
        assert!(socket.as_os_str().len() < 108, "{}", socket.display());
        // Each VM's sockets in a folder of its own.
        let other = runtime_config(Path::new("/data/phyllome/vms/other"), &c);
        let other = other.devices.gpu.unwrap().display_socket.unwrap();
        assert_ne!(socket.parent(), other.parent());
        assert_eq!(other.parent(), Some(runtime_dir().join("other").as_path()));
        // The stored definition is not changed.
        assert!(c.devices.gpu.is_none());
    }
}
