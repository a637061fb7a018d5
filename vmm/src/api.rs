//! The one way in and out of a running VM.
//!
//! The caller (the app's GTK main loop, the headless binary, a test) holds a [`VmHandle`].
//! It sends [`VmCommand`]s, which go over an mpsc channel to the VM's control thread and
//! wake it through an EventFd. The control thread answers with [`VmEvent`]s over a second
//! channel and bumps a second EventFd, which a main loop can watch (`event_fd()`), so the
//! caller never blocks and never touches KVM. Dropping the handle forces the VM off and
//! waits for all of its threads.

use std::os::fd::{AsRawFd, RawFd};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use vmm_sys_util::eventfd::EventFd;

/// What a caller can ask of a running VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VmCommand {
    /// Stop running guest code; valid while running.
    Pause,
    /// Continue after [`VmCommand::Pause`]; valid while paused.
    Resume,
    /// Press the ACPI power button: a cooperative guest shuts down.
    PowerButton,
    /// Stop the VM now, like pulling the plug.
    ForceOff,
    /// Press the reset button: reboots, or stops if `no_reboot` is set.
    Reset,
    /// Type bytes into the first serial port.
    SerialInput(Vec<u8>),
    /// Let the sound card's capture hear the host's microphone, or not (the guest then
    /// records silence); a recording under way follows within a few milliseconds.
    Microphone(bool),
    /// A key pressed (`down`) or released on the virtio keyboard, by evdev code.
    Key {
        /// evdev key code (`KEY_A` is 30).
        code: u16,
        /// Pressed or released.
        down: bool,
    },
    /// The pointer moved on the virtio tablet: each axis from 0 to 32767 across the screen.
    Pointer {
        /// Horizontal position.
        x: u32,
        /// Vertical position.
        y: u32,
    },
    /// Offer the guest a new display size (the window was resized); a guest with a
    /// virtio-gpu driver switches to it.
    DisplaySize {
        /// Scanout (0 for the first display).
        scanout: u32,
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
    },
    /// A pointer button (evdev `BTN_LEFT` 0x110, `BTN_RIGHT`, `BTN_MIDDLE`).
    Button {
        /// evdev button code.
        code: u16,
        /// Pressed or released.
        down: bool,
    },
    /// Take the disc out of CD drive `drive` (0 for the first), leaving its tray open.
    /// While the guest has locked the drive this fails, and the guest is asked to eject
    /// the disc itself, unless `force`.
    EjectDisc {
        /// Which drive.
        drive: usize,
        /// Take it out even though the guest locked the drive.
        force: bool,
    },
    /// Put the disc image at `path` in CD drive `drive`, replacing the disc there (which a
    /// guest's lock keeps in).
    InsertDisc {
        /// Which drive.
        drive: usize,
        /// The image.
        path: std::path::PathBuf,
    },
    /// Wheel clicks on the tablet: `dy` positive scrolls up, `dx` positive right.
    Wheel {
        /// Horizontal clicks.
        dx: i32,
        /// Vertical clicks.
        dy: i32,
    },
}

/// Why a VM stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StopReason {
    /// The guest powered itself off (ACPI S5).
    #[error("The guest powered off.")]
    PowerOff,
    /// The guest reset while rebooting was disabled.
    #[error("The guest reset, and rebooting is off, so the VM stopped.")]
    Reset,
    /// [`VmCommand::ForceOff`] or the handle was dropped.
    #[error("The VM was forced off.")]
    ForcedOff,
    /// A vCPU triple-faulted: the guest crashed beyond recovery.
    #[error("The guest crashed: vCPU {vcpu} triple-faulted at RIP {rip:#x}.")]
    TripleFault {
        /// Which vCPU.
        vcpu: u8,
        /// Where.
        rip: u64,
    },
    /// KVM could not emulate something the guest did.
    #[error("KVM stopped the guest: internal error (suberror {suberror}) on vCPU {vcpu} at RIP {rip:#x}.")]
    InternalError {
        /// Which vCPU.
        vcpu: u8,
        /// KVM's `KVM_INTERNAL_ERROR_*` code.
        suberror: u32,
        /// Where.
        rip: u64,
    },
    /// The processor refused to enter the guest.
    #[error("KVM could not enter the guest on vCPU {vcpu} at RIP {rip:#x} (hardware reason {reason:#x}).")]
    EntryFailed {
        /// Which vCPU.
        vcpu: u8,
        /// Hardware failure reason.
        reason: u64,
        /// Where.
        rip: u64,
    },
    /// Running a vCPU failed on the host side.
    #[error("vCPU {vcpu} failed: {message}")]
    VcpuFailed {
        /// Which vCPU.
        vcpu: u8,
        /// What happened.
        message: String,
    },
    /// The VM could not be rebuilt after a reset.
    #[error("The VM could not restart after a reset: {0}")]
    RebootFailed(String),
}

impl StopReason {
    /// Whether the guest chose to stop (as opposed to crashing or being forced off).
    pub fn is_clean(&self) -> bool {
        matches!(self, StopReason::PowerOff | StopReason::Reset)
    }
}

/// What a running VM reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VmEvent {
    /// The vCPUs are running (first start).
    Started,
    /// The guest reset and the VM is starting again.
    Rebooted,
    /// The vCPUs are parked.
    Paused,
    /// The vCPUs run again.
    Resumed,
    /// The VM is gone; the handle's thread ends after this.
    Stopped(StopReason),
    /// A command could not be carried out; the VM goes on.
    Error(String),
    /// CD drive `drive` now holds `disc`, or no disc (`None`): the host's
    /// [`VmCommand::EjectDisc`] or [`VmCommand::InsertDisc`], or the guest ejected it.
    DiscChanged {
        /// Which drive.
        drive: usize,
        /// The image now in it.
        disc: Option<std::path::PathBuf>,
    },
    /// [`VmCommand::EjectDisc`] was refused: the guest locked CD drive `drive` while it
    /// uses the disc. The guest was asked to eject it; the user may force it out.
    DiscLocked {
        /// Which drive.
        drive: usize,
    },
    /// The network card's link went down: passt could not start, or it ended. The VM
    /// runs on without a network; its next start or reboot tries again. The sentence says
    /// what happened.
    NetworkDown(String),
    /// Bytes the guest wrote to the serial port (when configured to `events`).
    SerialOutput(Vec<u8>),
    /// A 3D VM's graphics process ended on its own (a fault in the renderer, or killed).
    /// The VM goes on without a display; a guest reset starts a fresh process. The
    /// sentence says what happened and what to do.
    GraphicsStopped(String),
}

/// The event side shared with the control thread.
#[derive(Debug, Clone)]
pub(crate) struct EventSender {
    pub(crate) tx: Sender<VmEvent>,
    pub(crate) ready: Arc<EventFd>,
}

impl EventSender {
    pub(crate) fn send(&self, event: VmEvent) {
        if self.tx.send(event).is_ok() {
            let _ = self.ready.write(1);
        }
    }
}

/// Why a command could not be delivered.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HandleError {
    /// The VM has stopped.
    #[error("The VM is no longer running.")]
    Stopped,
}

/// Sends commands to a VM from any thread.
#[derive(Debug, Clone)]
pub struct CommandSender {
    pub(crate) commands: Sender<VmCommand>,
    pub(crate) wake: Arc<EventFd>,
}

impl CommandSender {
    /// Same as [`VmHandle::send`].
    pub fn send(&self, command: VmCommand) -> Result<(), HandleError> {
        self.commands
            .send(command)
            .map_err(|_| HandleError::Stopped)?;
        self.wake.write(1).map_err(|_| HandleError::Stopped)
    }
}

/// A running VM, seen from outside.
#[derive(Debug)]
pub struct VmHandle {
    pub(crate) commands: CommandSender,
    pub(crate) events: Receiver<VmEvent>,
    pub(crate) events_ready: Arc<EventFd>,
    pub(crate) thread: Option<JoinHandle<()>>,
}

impl VmHandle {
    /// Sends a command; it is carried out on the VM's control thread.
    pub fn send(&self, command: VmCommand) -> Result<(), HandleError> {
        self.commands.send(command)
    }

    /// A cloneable sender for other threads (a stdin reader, a tray menu).
    pub fn command_sender(&self) -> CommandSender {
        self.commands.clone()
    }

    /// The next event, if one is waiting.
    pub fn try_event(&self) -> Option<VmEvent> {
        let event = self.events.try_recv().ok();
        if event.is_some() {
            // Keep the counter from growing without bound; its value carries no meaning.
            let _ = self.events_ready.read();
        }
        event
    }

    /// The next event, waiting at most `timeout`.
    pub fn next_event(&self, timeout: Duration) -> Option<VmEvent> {
        self.events.recv_timeout(timeout).ok()
    }

    /// A file descriptor that becomes readable when events are waiting (for poll/glib).
    pub fn event_fd(&self) -> RawFd {
        self.events_ready.as_raw_fd()
    }

    /// Blocks until the VM stops and returns why, passing every other event to `on_event`.
    pub fn wait(mut self, mut on_event: impl FnMut(&VmEvent)) -> StopReason {
        let reason = loop {
            match self.events.recv() {
                Ok(VmEvent::Stopped(reason)) => break reason,
                Ok(other) => on_event(&other),
                Err(_) => break StopReason::ForcedOff,
            }
        };
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        reason
    }
}

impl Drop for VmHandle {
    fn drop(&mut self) {
        if let Some(thread) = self.thread.take() {
            let _ = self.send(VmCommand::ForceOff);
            let _ = thread.join();
        }
    }
}
