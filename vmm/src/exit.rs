//! How the guest's wish to stop reaches the control thread: devices (the i8042 reset line,
//! the ACPI sleep register) and vCPU threads (faults) send an [`ExitRequest`] and wake the
//! control thread through the same EventFd its commands use.

use crate::api::StopReason;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use vmm_sys_util::eventfd::EventFd;

/// Something inside the machine asks for it to stop or restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExitRequest {
    /// The guest asked for a reset (i8042, FADT reset register, KVM system event).
    Reset,
    /// The guest entered S5 (soft off).
    PowerOff,
    /// A vCPU cannot go on.
    Fault(StopReason),
}

/// The sending side, cloned into every device and vCPU thread.
#[derive(Debug, Clone)]
pub struct ExitSender {
    tx: Sender<ExitRequest>,
    wake: Arc<EventFd>,
}

impl ExitSender {
    /// Sends a request; if the control thread is gone there is nobody left to tell.
    pub fn send(&self, request: ExitRequest) {
        if self.tx.send(request).is_ok() {
            let _ = self.wake.write(1);
        }
    }
}

/// The control thread's side.
#[derive(Debug)]
pub struct ExitReceiver {
    rx: Receiver<ExitRequest>,
}

impl ExitReceiver {
    /// The next pending request, if any.
    pub fn try_recv(&self) -> Option<ExitRequest> {
        self.rx.try_recv().ok()
    }
}

/// A channel that wakes `wake` on every request.
pub fn exit_channel_with(wake: Arc<EventFd>) -> (ExitSender, ExitReceiver) {
    let (tx, rx) = channel();
    (ExitSender { tx, wake }, ExitReceiver { rx })
}

/// A channel with its own wake-up EventFd (for tests of single devices).
pub fn exit_channel() -> std::io::Result<(ExitSender, ExitReceiver)> {
    Ok(exit_channel_with(Arc::new(EventFd::new(
        libc::EFD_NONBLOCK,
    )?)))
}
