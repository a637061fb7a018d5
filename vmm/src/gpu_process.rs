//! A 3D VM's GPU in a process of its own. virglrenderer and Mesa are C code that parses what
//! the guest sends; they run as `<program> device gpu` (confined by [`crate::sandbox`]),
//! which serves the GPU, the keyboard and the tablet over vhost-user and the display to the
//! app over the console connection. The VMM drives those devices like any other vhost-user
//! backend, so a fault in the renderer ends that process only: the VM runs on without a
//! display, [`VmEvent::GraphicsStopped`] says so, and the next guest reset starts a fresh
//! process. A firmware VM also links to the process through [`crate::firmware_link`] (the
//! boot framebuffer goes there, PS/2 keys come back), reconnected with each fresh process.

use crate::api::{EventSender, VmEvent};
use crate::config::{GpuConfig, Renderer};
use crate::devices::bus::lock;
use crate::devices::virtio::input::InputKind;
use crate::firmware_link::{FirmwareLink, KeySink, LinkError};
use crate::vhost_user::gpu::input_socket_path;
use crate::vhost_user::{FrontendError, SharedEngine, VhostUserEngine};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The program started as `<program> device gpu ...` when set; else this process's own
/// program (`phyllome-vmm` and the app's binary both take `device gpu`).
pub const PROGRAM_ENV: &str = "PHYLLOME_GPU_PROGRAM";

/// How long the process has to open its sockets.
const READY_WITHIN: Duration = Duration::from_secs(20);

/// Why the GPU process could not be had.
#[derive(Debug, thiserror::Error)]
pub enum GpuProcessError {
    /// The program could not be found or run.
    #[error("Cannot start the graphics process {}: {source}.", program.display())]
    Spawn {
        /// The program.
        program: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// It ended while starting.
    #[error("The graphics process ended while starting ({0}); its message is in the VM's log.")]
    Exited(String),
    /// Its sockets did not appear in time.
    #[error("The graphics process did not get ready within {} seconds.", READY_WITHIN.as_secs())]
    Timeout,
    /// Its socket folder could not be made.
    #[error("Cannot create the folder for the graphics process's sockets, {}: {source}.", path.display())]
    Folder {
        /// The folder.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A device it serves could not be attached.
    #[error(transparent)]
    Attach(#[from] FrontendError),
    /// The firmware link could not be made.
    #[error("Cannot link the firmware's boot display and keyboard to the graphics process: {0}")]
    FirmwareLink(#[from] LinkError),
}

/// A sentence about how the process ended.
fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("it exited with status {code}"),
        (None, Some(libc::SIGSYS)) => "it was stopped for a system call outside its sandbox".into(),
        (None, Some(signal)) => format!("it was ended by signal {signal}"),
        (None, None) => "it ended".into(),
    }
}

/// What to start, kept for restarts.
#[derive(Debug, Clone)]
struct Launch {
    program: PathBuf,
    args: Vec<OsString>,
    gpu_socket: PathBuf,
    input: Option<PathBuf>,
    display: Option<PathBuf>,
    /// The firmware link's socket, for a VM that boots firmware.
    boot: Option<PathBuf>,
}

impl Launch {
    fn new(gpu: &GpuConfig, input: bool, firmware: bool, dir: &Path) -> Self {
        let program = std::env::var_os(PROGRAM_ENV)
            .map(PathBuf::from)
            .or_else(|| std::env::current_exe().ok())
            .unwrap_or_else(|| PathBuf::from("phyllome-vmm"));
        let gpu_socket = dir.join("gpu.sock");
        let input = input.then(|| dir.join("input"));
        let boot = firmware.then(|| dir.join("boot.sock"));
        let renderer = match gpu.renderer {
            Renderer::TwoD => "2d",
            Renderer::Virgl => "virgl",
            Renderer::Venus => "venus",
        };
        let mut args: Vec<OsString> = vec![
            "device".into(),
            "gpu".into(),
            "--renderer".into(),
            renderer.into(),
            "--size".into(),
            format!("{}x{}", gpu.width, gpu.height).into(),
            "--socket".into(),
            gpu_socket.clone().into(),
        ];
        let mut pair = |flag: &str, value: Option<&PathBuf>| {
            if let Some(v) = value {
                args.push(flag.into());
                args.push(v.into());
            }
        };
        pair("--console", gpu.display_socket.as_ref());
        pair("--dump-scanout", gpu.dump_scanout.as_ref());
        pair("--input-socket", input.as_ref());
        pair("--boot-socket", boot.as_ref());
        Self {
            program,
            args,
            gpu_socket,
            input,
            display: gpu.display_socket.clone(),
            boot,
        }
    }

    /// (device type, configuration bytes, socket) of each device the process serves.
    fn devices(&self) -> Vec<(u32, u32, PathBuf)> {
        let mut d = vec![(16, 16, self.gpu_socket.clone())];
        if let Some(prefix) = &self.input {
            for kind in [InputKind::Keyboard, InputKind::Tablet] {
                d.push((18, 136, input_socket_path(prefix, kind)));
            }
        }
        d
    }
}

/// One running incarnation, shared with the thread that watches it.
struct Running {
    pid: u32,
    child: Arc<Mutex<Child>>,
    alive: Arc<AtomicBool>,
    /// Set before an exit we caused, so it is not reported.
    expected: Arc<AtomicBool>,
    watcher: JoinHandle<()>,
}

/// The GPU process of one VM and the devices it serves.
pub struct GpuProcess {
    launch: Launch,
    dir: PathBuf,
    running: Option<Running>,
    /// The GPU, then the keyboard and tablet when asked for.
    engines: Vec<SharedEngine>,
    /// The firmware link, for a VM that boots firmware (the same across restarts).
    firmware: Option<FirmwareLink>,
    events: EventSender,
}

impl std::fmt::Debug for GpuProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuProcess")
            .field("dir", &self.dir)
            .field("pid", &self.pid())
            .finish_non_exhaustive()
    }
}

/// A fresh private folder for one VM's GPU sockets, beside `near` when given.
fn private_folder(near: Option<&Path>) -> Result<PathBuf, GpuProcessError> {
    use std::os::unix::fs::DirBuilderExt;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let base = near.map_or_else(std::env::temp_dir, Path::to_path_buf);
    let path = base.join(format!(
        "gpu-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&path);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&path)
        .map_err(|source| GpuProcessError::Folder {
            path: path.clone(),
            source,
        })?;
    Ok(path)
}

impl GpuProcess {
    /// Starts the process for `gpu` (with a keyboard and tablet when `input`) and attaches
    /// its devices; for a VM that boots firmware (`firmware_keys`: where the keys typed
    /// during boot go), links the firmware's boot display and keyboard too.
    pub(crate) fn start(
        gpu: &GpuConfig,
        input: bool,
        firmware_keys: Option<KeySink>,
        events: EventSender,
    ) -> Result<Self, GpuProcessError> {
        let near = gpu.display_socket.as_deref().and_then(Path::parent);
        let dir = private_folder(near)?;
        let launch = Launch::new(gpu, input, firmware_keys.is_some(), &dir);
        let mut process = Self {
            launch,
            dir,
            running: None,
            engines: Vec::new(),
            firmware: firmware_keys.map(FirmwareLink::new),
            events,
        };
        let engines = process.spawn()?;
        process.engines = engines
            .into_iter()
            .map(|e| SharedEngine(Arc::new(Mutex::new(e))))
            .collect();
        Ok(process)
    }

    /// The devices to put on the PCI bus (the same engines across restarts).
    pub(crate) fn engines(&self) -> &[SharedEngine] {
        &self.engines
    }

    /// The firmware link, for a VM that boots firmware (connected to the current process).
    pub(crate) fn firmware_link(&self) -> Option<&FirmwareLink> {
        self.firmware.as_ref()
    }

    /// The process's ID while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.running
            .as_ref()
            .filter(|r| r.alive.load(Ordering::Acquire))
            .map(|r| r.pid)
    }

    /// Starts a fresh process if the last one died, and points the engines at it. For a
    /// guest reset: the new machine's devices then reach a working GPU.
    pub(crate) fn restart_if_stopped(&mut self) -> Result<(), GpuProcessError> {
        if self.pid().is_some() {
            return Ok(());
        }
        self.reap();
        let fresh = self.spawn()?;
        for (shared, engine) in self.engines.iter().zip(fresh) {
            *lock(&shared.0) = engine;
        }
        Ok(())
    }

    /// Runs the program, waits for its sockets, and connects to each device.
    fn spawn(&mut self) -> Result<Vec<VhostUserEngine>, GpuProcessError> {
        let l = &self.launch;
        // A dead process leaves its socket files; the display's is ours too (only this
        // VM's graphics process listens on it).
        for (_, _, socket) in l.devices() {
            let _ = std::fs::remove_file(&socket);
        }
        for own in [&l.display, &l.boot].into_iter().flatten() {
            let _ = std::fs::remove_file(own);
        }
        let mut child = Command::new(&l.program)
            .args(&l.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .map_err(|source| GpuProcessError::Spawn {
                program: l.program.clone(),
                source,
            })?;
        let deadline = Instant::now() + READY_WITHIN;
        let mut engines = Vec::new();
        for (device_type, config_size, socket) in l.devices() {
            loop {
                if let Ok(Some(status)) = child.try_wait() {
                    return Err(GpuProcessError::Exited(describe(status)));
                }
                // The socket file appears at bind(), a moment before listen().
                if socket.exists() {
                    match VhostUserEngine::connect(device_type, config_size, &socket, 256) {
                        Ok(e) => {
                            engines.push(e);
                            break;
                        }
                        Err(e) if Instant::now() >= deadline => {
                            let _ = child.kill();
                            let _ = child.wait();
                            return Err(e.into());
                        }
                        Err(_) => {}
                    }
                }
                if Instant::now() >= deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(GpuProcessError::Timeout);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        // The process listens on the link before it serves the GPU, which answered.
        if let (Some(link), Some(socket)) = (&self.firmware, &l.boot) {
            if let Err(e) = link.connect(socket) {
                let _ = child.kill();
                let _ = child.wait();
                return Err(e.into());
            }
        }
        self.running = Some(self.watch(child));
        Ok(engines)
    }

    /// A thread that notices the child ending (it looks ten times a second; the child is
    /// shared so that ending it ourselves can never signal a reaped, reused process ID)
    /// and reports an exit nobody asked for.
    fn watch(&self, child: Child) -> Running {
        let pid = child.id();
        let child = Arc::new(Mutex::new(child));
        let alive = Arc::new(AtomicBool::new(true));
        let expected = Arc::new(AtomicBool::new(false));
        let (c, a, x, events) = (
            child.clone(),
            alive.clone(),
            expected.clone(),
            self.events.clone(),
        );
        let watcher = std::thread::Builder::new()
            .name("gpu-process".into())
            .spawn(move || {
                let status = loop {
                    match lock(&c).try_wait() {
                        Ok(Some(status)) => break Ok(status),
                        Ok(None) => {}
                        Err(e) => break Err(e),
                    }
                    std::thread::sleep(Duration::from_millis(100));
                };
                a.store(false, Ordering::Release);
                if x.load(Ordering::Acquire) {
                    return;
                }
                let how = status.map_or_else(|e| e.to_string(), describe);
                log::error!("the graphics process {pid} stopped: {how}");
                events.send(VmEvent::GraphicsStopped(format!(
                    "The graphics device stopped: {how}. The virtual machine is still running; restart it to get its display back. Its disks are not affected."
                )));
            });
        let watcher = match watcher {
            Ok(w) => w,
            Err(e) => {
                // Without a watcher nobody reaps it: run on, unwatched, and say so.
                log::warn!("cannot watch the graphics process {pid}: {e}");
                std::thread::spawn(|| {})
            }
        };
        Running {
            pid,
            child,
            alive,
            expected,
            watcher,
        }
    }

    /// Ends the current process (if any) and waits for it.
    fn reap(&mut self) {
        let Some(r) = self.running.take() else {
            return;
        };
        r.expected.store(true, Ordering::Release);
        // It leaves by itself once its frontend (our engines) disconnects; give it a moment.
        let deadline = Instant::now() + Duration::from_secs(3);
        while r.alive.load(Ordering::Acquire) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        if r.alive.load(Ordering::Acquire) {
            // std signals only a child it has not reaped.
            let _ = lock(&r.child).kill();
        }
        let _ = r.watcher.join();
    }
}

impl Drop for GpuProcess {
    fn drop(&mut self) {
        if let Some(r) = &self.running {
            r.expected.store(true, Ordering::Release);
        }
        // Closing the connections tells the process to leave.
        self.engines.clear();
        self.reap();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_firmware_vms_process_listens_for_the_firmware_link_beside_its_other_sockets() {
        let gpu = GpuConfig {
            width: 800,
            height: 600,
            dump_scanout: None,
            display_socket: None,
            renderer: Renderer::Virgl,
        };
        let dir = Path::new("/run/vm/gpu-1");
        let firmware = Launch::new(&gpu, true, true, dir);
        let at = firmware.args.iter().position(|a| a == "--boot-socket");
        let socket = at.and_then(|i| firmware.args.get(i + 1));
        assert_eq!(socket.map(PathBuf::from), Some(dir.join("boot.sock")));
        assert_eq!(firmware.boot, Some(dir.join("boot.sock")));
        let kernel = Launch::new(&gpu, true, false, dir);
        assert!(!kernel.args.iter().any(|a| a == "--boot-socket"));
        assert_eq!(kernel.boot, None);
    }
}
