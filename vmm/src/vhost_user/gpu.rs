//! `phyllome-vmm device gpu`: the virtio-gpu device (and, on request, a virtio keyboard and
//! tablet) served over vhost-user to a frontend such as QEMU's `vhost-user-gpu-pci` and
//! `vhost-user-input-pci`, with the picture going to the app over the console connection
//! and the app's input coming back the same way. One process owns the whole display path,
//! which is how the GPU (and later its 3D renderer) is kept out of the VMM's process.
//!
//! Host-initiated resolution changes need the frontend to raise the device's configuration
//! interrupt. QEMU's `vhost-user-gpu` keeps `events_read` to itself and drops backend
//! configuration-change messages ("unhandled backend config change"), so under QEMU a
//! window resize updates what `GET_DISPLAY_INFO` answers, and the guest sees it the next
//! time it asks (a mode probe); with Phyllome's own VMM the in-process device notifies.

use super::backend::{serve, ServeError};
use crate::console_conn::server::ConsoleServer;
use crate::console_conn::Message;
use crate::devices::bus::lock;
use crate::devices::virtio::gpu::display::{DisplaySink, Tee};
use crate::devices::virtio::gpu::dump::PngDump;
use crate::devices::virtio::gpu::{Gpu, SharedGpu};
use crate::devices::virtio::input::{Input, InputKind, InputSender};
use crate::firmware_link::{FirmwareKeys, FirmwareLinkServer};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The largest host-visible region: half the 64-bit PCI window, as one BAR.
pub const MAX_HOST_VISIBLE_MIB: u64 = 16 << 10;

/// What `device gpu` serves, and where.
#[derive(Debug, Clone)]
pub struct GpuServeOptions {
    /// The GPU's vhost-user socket.
    pub socket: PathBuf,
    /// The display size offered at start.
    pub width: u32,
    /// Its height.
    pub height: u32,
    /// Serve a keyboard on `<prefix>.keyboard` and a tablet on `<prefix>.tablet`.
    pub input_socket: Option<PathBuf>,
    /// Where the app attaches (the console connection).
    pub console: Option<PathBuf>,
    /// Where the VMM attaches the firmware link ([`crate::firmware_link`]): the firmware's
    /// framebuffer comes in, and keys for its PS/2 keyboard go out.
    pub boot_socket: Option<PathBuf>,
    /// Write the latest flushed frame here as a PNG (throttled).
    pub dump_scanout: Option<PathBuf>,
    /// 2D, or 3D through virglrenderer.
    pub renderer: crate::config::Renderer,
    /// Confine the process with [`crate::sandbox`] before anything else (the default).
    pub sandbox: bool,
    /// The host-visible region offered with 3D, in MiB (0: none, so no blob resources).
    pub host_visible_mib: u64,
}

/// Why `device gpu` could not run.
#[derive(Debug, thiserror::Error)]
pub enum GpuServeError {
    /// A device could not be created.
    #[error("Cannot create the {what}: {source}.")]
    Create {
        /// Which device.
        what: &'static str,
        /// Why.
        source: std::io::Error,
    },
    /// The console connection could not listen.
    #[error("Cannot listen for the app on the console connection: {0}")]
    Console(String),
    /// The firmware link could not listen.
    #[error("Cannot listen for the VMM on the firmware link: {0}.")]
    FirmwareLink(#[source] std::io::Error),
    /// A size or path the user gave cannot work.
    #[error("{0}")]
    Invalid(String),
    /// Serving over vhost-user failed.
    #[error(transparent)]
    Serve(#[from] ServeError),
    /// The system-call filter could not be installed.
    #[error(transparent)]
    Sandbox(#[from] crate::sandbox::SandboxError),
}

/// The socket path of one input device: `<prefix>.keyboard` or `<prefix>.tablet`.
pub fn input_socket_path(prefix: &Path, kind: InputKind) -> PathBuf {
    let mut p = prefix.as_os_str().to_owned();
    p.push(match kind {
        InputKind::Keyboard => ".keyboard",
        InputKind::Tablet => ".tablet",
    });
    PathBuf::from(p)
}

/// The input devices' senders, fed by the app's messages.
#[derive(Debug, Clone)]
struct Senders {
    keys: InputSender,
    pointer: InputSender,
}

/// Where the app's keys go: the virtio keyboard once the guest binds it; before that the
/// VMM's PS/2 keyboard, which firmware and boot loaders read, when a VMM is linked.
fn route_key(code: u16, down: bool, input: Option<&Senders>, firmware: Option<&FirmwareKeys>) {
    let driven = input.is_some_and(|i| i.keys.driven());
    if !driven && firmware.is_some_and(|f| f.key(code, down)) {
        return;
    }
    if let Some(i) = input {
        i.keys.key(code, down);
    }
}

/// Acts on one message from the app.
fn on_viewer_message(
    m: Message,
    gpu: &Mutex<Gpu>,
    input: Option<&Senders>,
    firmware: Option<&FirmwareKeys>,
) {
    match (m, input) {
        // The app showed the last frame: what was held back goes now.
        (Message::FrameDone, _) => lock(gpu).flush_pending(),
        (Message::Key { code, down }, _) => route_key(code, down, input, firmware),
        (Message::Pointer { x, y }, Some(i)) => {
            i.pointer.pointer(x, y);
        }
        (Message::Button { code, down }, Some(i)) => {
            i.pointer.key(code, down);
        }
        (Message::Wheel { dx, dy }, Some(i)) => {
            i.pointer.wheel(dx, dy);
        }
        (
            Message::Resize {
                scanout,
                width,
                height,
            },
            _,
        ) if !lock(gpu).request_size(scanout, width, height) => {
            log::warn!("the app asked to resize display {scanout}, which does not exist");
        }
        _ => {}
    }
}

/// Serves until the GPU's frontend disconnects (the input devices end with the process).
pub fn serve_gpu(options: &GpuServeOptions) -> Result<(), GpuServeError> {
    let create = |what| move |source| GpuServeError::Create { what, source };
    let max = crate::devices::virtio::gpu::MAX_DIMENSION;
    if !(64..=max).contains(&options.width) || !(64..=max).contains(&options.height) {
        return Err(GpuServeError::Invalid(format!(
            "{}x{} is not a usable display size; give 64 to {max} pixels each way.",
            options.width, options.height
        )));
    }
    if options.host_visible_mib > MAX_HOST_VISIBLE_MIB {
        return Err(GpuServeError::Invalid(format!(
            "A {} MiB host-visible region does not fit the machine's PCI space; give 0 to {MAX_HOST_VISIBLE_MIB} MiB.",
            options.host_visible_mib
        )));
    }
    // Every socket's folder must exist: found now, not when a frontend fails to connect.
    let sockets = [
        Some(&options.socket),
        options.input_socket.as_ref(),
        options.console.as_ref(),
        options.boot_socket.as_ref(),
    ];
    for path in sockets.into_iter().flatten() {
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
        if dir.is_some_and(|d| !d.is_dir()) {
            return Err(GpuServeError::Invalid(format!(
                "Cannot listen on {}: its folder does not exist.",
                path.display()
            )));
        }
    }
    // First, so every thread (the renderer's, Mesa's) starts confined. Writable: the
    // sockets' folders, Mesa's shader cache and the scanout dump's folder.
    if options.sandbox {
        let writable: Vec<PathBuf> = sockets
            .iter()
            .flatten()
            .map(|p| p.as_path())
            .chain(options.dump_scanout.as_deref())
            .filter_map(Path::parent)
            .filter(|d| !d.as_os_str().is_empty())
            .map(Path::to_path_buf)
            .chain(crate::sandbox::mesa_shader_cache())
            .collect();
        let files = crate::sandbox::confine_gpu_process(&writable)?;
        if files == crate::sandbox::FilesConfined::No {
            log::warn!("this kernel has no Landlock: the GPU process's file access is not restricted (its system calls are)");
        }
    }
    let mut senders = None;
    let mut input_threads = Vec::new();
    if let Some(prefix) = &options.input_socket {
        let (keyboard, keys) = Input::new(InputKind::Keyboard).map_err(create("keyboard"))?;
        let (tablet, pointer) = Input::new(InputKind::Tablet).map_err(create("tablet"))?;
        senders = Some(Senders { keys, pointer });
        for (name, kind, core) in [
            ("phyllome-keyboard", InputKind::Keyboard, keyboard),
            ("phyllome-tablet", InputKind::Tablet, tablet),
        ] {
            let path = input_socket_path(prefix, kind);
            input_threads.push(std::thread::spawn(move || {
                if let Err(e) = serve(name, core, &path) {
                    log::warn!("{e}");
                }
            }));
        }
    }

    let mut sinks: Vec<Box<dyn DisplaySink>> = Vec::new();
    if let Some(path) = &options.dump_scanout {
        sinks.push(Box::new(PngDump::new(path.clone())));
    }
    // The GPU is created after the console server (its sink goes in the GPU), but the
    // server's input handler needs the GPU: it reaches it through this slot.
    let slot: Arc<Mutex<Option<Arc<Mutex<Gpu>>>>> = Arc::new(Mutex::new(None));
    let firmware_keys = options
        .boot_socket
        .as_ref()
        .map(|_| FirmwareKeys::default());
    let mut _server = None;
    if let Some(path) = &options.console {
        let slot = slot.clone();
        let senders = senders.clone();
        let firmware_keys = firmware_keys.clone();
        let (server, sink) = ConsoleServer::listen(path, move |m| {
            let gpu = lock(&slot).clone();
            if let Some(gpu) = gpu {
                on_viewer_message(m, &gpu, senders.as_ref(), firmware_keys.as_ref());
            }
        })
        .map_err(|e| GpuServeError::Console(e.to_string()))?;
        _server = Some(server);
        sinks.push(Box::new(sink));
    }
    #[cfg_attr(not(feature = "virgl"), allow(unused_mut))]
    let mut gpu = Gpu::with_renderer(
        &[(options.width, options.height)],
        Box::new(Tee(sinks)),
        options.renderer,
    )
    .map_err(create("GPU"))?;
    #[cfg(feature = "virgl")]
    if gpu.is_3d() && options.host_visible_mib > 0 {
        match gpu.offer_host_visible(options.host_visible_mib << 20) {
            Ok(()) => log::info!(
                "blob resources on, in a {} MiB host-visible region",
                options.host_visible_mib
            ),
            Err(why) => log::info!("blob resources off: {why}"),
        }
    }
    let gpu = Arc::new(Mutex::new(gpu));
    *lock(&slot) = Some(gpu.clone());
    // Listening before the GPU's socket appears: a VMM that found the GPU finds this too.
    let _firmware_link = match (&options.boot_socket, firmware_keys) {
        (Some(path), Some(keys)) => Some(
            FirmwareLinkServer::listen(path, gpu.clone(), keys)
                .map_err(GpuServeError::FirmwareLink)?,
        ),
        _ => None,
    };
    let core = SharedGpu::new(gpu).map_err(create("GPU"))?;
    serve("phyllome-gpu", core, &options.socket)?;
    // The input threads serve until their own frontends go; the process ends here.
    drop(input_threads);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::virtio::gpu::display::NullSink;
    use crate::devices::virtio::DeviceCore;

    #[test]
    fn bad_sizes_and_missing_folders_are_refused_before_anything_listens() {
        let options = |w, h, socket: &str| GpuServeOptions {
            socket: socket.into(),
            width: w,
            height: h,
            input_socket: None,
            console: None,
            boot_socket: None,
            dump_scanout: None,
            renderer: crate::config::Renderer::TwoD,
            // Never in the test process: the checks below fail before it would be installed.
            sandbox: false,
            host_visible_mib: 0,
        };
        let err = serve_gpu(&options(0, 600, "/tmp/x.sock")).unwrap_err();
        assert!(
            err.to_string().contains("not a usable display size"),
            "{err}"
        );
        let err = serve_gpu(&options(800, 600, "/no/such/folder/gpu.sock")).unwrap_err();
        assert!(err.to_string().contains("folder does not exist"), "{err}");
        let huge = GpuServeOptions {
            host_visible_mib: MAX_HOST_VISIBLE_MIB + 1,
            ..options(800, 600, "/tmp/x.sock")
        };
        let err = serve_gpu(&huge).unwrap_err();
        assert!(err.to_string().contains("give 0 to 16384 MiB"), "{err}");
    }

    #[test]
    fn input_sockets_sit_beside_the_prefix() {
        let p = Path::new("/run/vm/in");
        assert_eq!(
            input_socket_path(p, InputKind::Keyboard),
            Path::new("/run/vm/in.keyboard")
        );
        assert_eq!(
            input_socket_path(p, InputKind::Tablet),
            Path::new("/run/vm/in.tablet")
        );
    }

    #[test]
    fn the_apps_messages_reach_the_keyboard_the_tablet_and_the_display_size() {
        let gpu = Mutex::new(Gpu::new(&[(640, 480)], Box::new(NullSink)).unwrap());
        let (keyboard, keys) = Input::new(InputKind::Keyboard).unwrap();
        let (tablet, pointer) = Input::new(InputKind::Tablet).unwrap();
        let senders = Senders { keys, pointer };
        let events = crate::devices::virtio::input::EVENT_QUEUE;
        assert!(!keyboard.ready(events) && !tablet.ready(events));

        on_viewer_message(
            Message::Key {
                code: 30,
                down: true,
            },
            &gpu,
            Some(&senders),
            None,
        );
        assert!(keyboard.ready(events), "the key went to the keyboard");
        assert!(!tablet.ready(events));
        on_viewer_message(Message::Pointer { x: 5, y: 6 }, &gpu, Some(&senders), None);
        assert!(tablet.ready(events), "the motion went to the tablet");

        // A new size raises the display event (events_read, the first config word).
        assert_eq!(lock(&gpu).config()[..4], [0, 0, 0, 0]);
        on_viewer_message(
            Message::Resize {
                scanout: 0,
                width: 1024,
                height: 768,
            },
            &gpu,
            None,
            None,
        );
        assert_eq!(lock(&gpu).config()[..4], [1, 0, 0, 0]);
        // Input without input devices, or for a display that does not exist: ignored.
        on_viewer_message(
            Message::Key {
                code: 30,
                down: true,
            },
            &gpu,
            None,
            None,
        );
        on_viewer_message(
            Message::Resize {
                scanout: 7,
                width: 1024,
                height: 768,
            },
            &gpu,
            None,
            None,
        );
    }

    #[test]
    fn keys_go_to_the_vmms_ps2_keyboard_until_the_guest_binds_the_virtio_keyboard() {
        use crate::firmware_link::Message as LinkMessage;
        use std::io::Read;
        let gpu = Mutex::new(Gpu::new(&[(640, 480)], Box::new(NullSink)).unwrap());
        let (mut keyboard, keys) = Input::new(InputKind::Keyboard).unwrap();
        let (_tablet, pointer) = Input::new(InputKind::Tablet).unwrap();
        let senders = Senders { keys, pointer };
        let (ours, mut vmm) = std::os::unix::net::UnixStream::pair().unwrap();
        let firmware = FirmwareKeys::default();
        firmware.attach(Some(ours));
        let events = crate::devices::virtio::input::EVENT_QUEUE;
        let key = |code| Message::Key { code, down: true };

        on_viewer_message(key(30), &gpu, Some(&senders), Some(&firmware));
        let mut got = [0u8; 12];
        vmm.read_exact(&mut got).unwrap();
        assert_eq!(
            LinkMessage::decode(&got).unwrap().0,
            LinkMessage::Key {
                code: 30,
                down: true
            }
        );
        assert!(!keyboard.ready(events), "not also queued for virtio");

        // The guest's driver binds the keyboard (it writes the configuration's selector).
        keyboard.write_config(0, &[1]);
        on_viewer_message(key(31), &gpu, Some(&senders), Some(&firmware));
        assert!(
            keyboard.ready(events),
            "the key went to the virtio keyboard"
        );
        vmm.set_nonblocking(true).unwrap();
        assert!(vmm.read(&mut got).is_err(), "and not to the VMM");

        // Reset (a reboot): the PS/2 keyboard again; with the VMM gone, virtio anyway.
        keyboard.reset();
        drop(vmm);
        on_viewer_message(key(32), &gpu, Some(&senders), Some(&firmware));
        assert!(keyboard.ready(events));
    }
}
