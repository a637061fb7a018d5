//! vhost-user: serving a device core to a virtual machine monitor in another process
//! (QEMU, or a later Phyllome VMM) over a Unix socket, with the guest's memory shared by
//! file descriptor. This is how Linux's real virtio drivers exercise our devices in tests,
//! and how a device handling untrusted guest input can live in its own process.

pub mod backend;
pub mod frontend;
pub mod gpu;
mod net_relay;

pub use backend::{serve, CoreBackend, ServeError};
pub use frontend::{FrontendError, SharedEngine, VhostUserEngine};
pub use gpu::{serve_gpu, GpuServeError, GpuServeOptions};
