//! vCPU threads: set-up of each vCPU's registers, and the run loop that enters the guest
//! and dispatches its exits to the port-I/O and MMIO buses.
//!
//! Pausing and stopping use a shared [`RunControl`]: the control thread sets the desired
//! state and kicks each thread out of `KVM_RUN` with a signal (repeating the kick until the
//! thread acknowledges, which closes the race between checking the state and entering
//! the guest). A parked thread waits on a condition variable and touches nothing.

use crate::api::StopReason;
use crate::arch::x86_64::cpuid::{self, Topology};
use crate::arch::x86_64::msr::boot_msrs;
use crate::arch::x86_64::regs::{boot_fpu, boot_regs, boot_sregs, set_lint, BootEntry};
use crate::devices::bus::Bus;
use crate::exit::{ExitRequest, ExitSender};
use kvm_bindings::{CpuId, KVM_SYSTEM_EVENT_RESET, KVM_SYSTEM_EVENT_SHUTDOWN};
use kvm_ioctls::{VcpuExit, VcpuFd};
use std::sync::{Arc, Condvar, Mutex, Once};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use vmm_sys_util::signal::{register_signal_handler, Killable, SIGRTMIN};

/// What went wrong while preparing a vCPU.
#[derive(Debug, thiserror::Error)]
pub enum VcpuError {
    /// A KVM ioctl failed.
    #[error("Cannot set up vCPU {vcpu}: {what} failed: {source}.")]
    Setup {
        /// Which vCPU.
        vcpu: u8,
        /// Which step.
        what: &'static str,
        /// The error from KVM.
        #[source]
        source: kvm_ioctls::Error,
    },
    /// Not every MSR was accepted.
    #[error("Cannot set up vCPU {vcpu}: KVM accepted only {set} of {wanted} boot MSRs.")]
    Msrs {
        /// Which vCPU.
        vcpu: u8,
        /// How many were set.
        set: usize,
        /// How many we asked for.
        wanted: usize,
    },
    /// The vCPU thread could not be created.
    #[error("Cannot start the thread of vCPU {vcpu}: {source}.")]
    Spawn {
        /// Which vCPU.
        vcpu: u8,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// The state the control thread wants the vCPUs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Desired {
    /// Run guest code.
    Run,
    /// Park until told otherwise.
    Pause,
    /// Leave the run loop for good.
    Exit,
}

#[derive(Debug)]
struct RunState {
    desired: Desired,
    parked: usize,
    finished: usize,
}

/// Shared between the control thread and every vCPU thread of one machine.
#[derive(Debug)]
pub struct RunControl {
    state: Mutex<RunState>,
    changed: Condvar,
}

impl RunControl {
    /// Starts in [`Desired::Run`].
    pub fn new() -> Self {
        Self {
            state: Mutex::new(RunState {
                desired: Desired::Run,
                parked: 0,
                finished: 0,
            }),
            changed: Condvar::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RunState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Sets the desired state and kicks `threads` until every live one has obeyed
    /// (parked for `Pause`, returned for `Exit`).
    pub fn drive(&self, desired: Desired, threads: &[JoinHandle<()>]) {
        {
            let mut s = self.lock();
            s.desired = desired;
            self.changed.notify_all();
        }
        if desired == Desired::Run {
            return;
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let done = {
                let s = self.lock();
                match desired {
                    Desired::Pause => s.parked + s.finished >= threads.len(),
                    _ => s.finished >= threads.len(),
                }
            };
            if done {
                return;
            }
            for t in threads.iter().filter(|t| !t.is_finished()) {
                let _ = t.kill(kick_signal());
            }
            let s = self.lock();
            let _ = self.changed.wait_timeout(s, Duration::from_millis(1));
            if Instant::now() > deadline {
                log::error!("vCPU threads did not answer a {desired:?} request in 10 s");
                return;
            }
        }
    }

    /// Called by a vCPU thread between runs: parks while paused; false means exit.
    fn checkpoint(&self) -> bool {
        let mut s = self.lock();
        if s.desired == Desired::Pause {
            s.parked += 1;
            self.changed.notify_all();
            while s.desired == Desired::Pause {
                s = self
                    .changed
                    .wait(s)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
            }
            s.parked -= 1;
        }
        s.desired != Desired::Exit
    }

    fn finished(&self) {
        let mut s = self.lock();
        s.finished += 1;
        self.changed.notify_all();
    }
}

impl Default for RunControl {
    fn default() -> Self {
        Self::new()
    }
}

/// The real-time signal used to interrupt `KVM_RUN`.
pub fn kick_signal() -> i32 {
    SIGRTMIN()
}

extern "C" fn on_kick(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {}

/// Installs the (empty) kick handler once per process, so the signal interrupts `KVM_RUN`
/// with EINTR instead of killing the process.
pub fn install_kick_handler() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if let Err(e) = register_signal_handler(kick_signal(), on_kick) {
            log::error!("cannot install the vCPU kick handler: {e}");
        }
    });
}

/// Prepares vCPU `index` of `count`; the boot vCPU also gets the entry state.
pub fn configure(
    vcpu: &VcpuFd,
    supported: &CpuId,
    index: u8,
    count: u8,
    boot: Option<BootEntry>,
) -> Result<(), VcpuError> {
    let setup = |what| {
        move |source| VcpuError::Setup {
            vcpu: index,
            what,
            source,
        }
    };
    let mut cpuid = supported.clone();
    cpuid::filter(
        &mut cpuid,
        Topology {
            apic_id: index,
            cpu_count: count,
        },
    );
    vcpu.set_cpuid2(&cpuid).map_err(setup("KVM_SET_CPUID2"))?;

    let msrs =
        boot_msrs().expect("the boot MSR list is a dozen entries, far below KVM's FAM limit");
    let wanted = msrs.as_slice().len();
    let set = vcpu.set_msrs(&msrs).map_err(setup("KVM_SET_MSRS"))?;
    if set != wanted {
        return Err(VcpuError::Msrs {
            vcpu: index,
            set,
            wanted,
        });
    }
    vcpu.set_fpu(&boot_fpu()).map_err(setup("KVM_SET_FPU"))?;

    let mut lapic = vcpu.get_lapic().map_err(setup("KVM_GET_LAPIC"))?;
    set_lint(&mut lapic.regs);
    vcpu.set_lapic(&lapic).map_err(setup("KVM_SET_LAPIC"))?;

    if let Some(entry) = boot {
        let sregs = vcpu.get_sregs().map_err(setup("KVM_GET_SREGS"))?;
        vcpu.set_sregs(&boot_sregs(sregs, entry.mode()))
            .map_err(setup("KVM_SET_SREGS"))?;
        vcpu.set_regs(&boot_regs(entry))
            .map_err(setup("KVM_SET_REGS"))?;
    }
    Ok(())
}

/// What every vCPU thread of a machine shares.
#[derive(Debug, Clone)]
pub struct VcpuContext {
    /// Port I/O devices.
    pub pio: Arc<Bus>,
    /// MMIO devices.
    pub mmio: Arc<Bus>,
    /// Pause/exit control.
    pub control: Arc<RunControl>,
    /// Where to report that the guest wants to stop, or crashed.
    pub exits: ExitSender,
}

/// Starts the thread that runs `vcpu`.
pub fn spawn(mut vcpu: VcpuFd, index: u8, ctx: VcpuContext) -> Result<JoinHandle<()>, VcpuError> {
    install_kick_handler();
    std::thread::Builder::new()
        .name(format!("vcpu{index}"))
        .spawn(move || {
            run_loop(&mut vcpu, index, &ctx);
            ctx.control.finished();
        })
        .map_err(|source| VcpuError::Spawn {
            vcpu: index,
            source,
        })
}

fn rip(vcpu: &VcpuFd) -> u64 {
    vcpu.get_regs().map(|r| r.rip).unwrap_or(0)
}

/// The KVM internal-error sub-code of the last exit.
fn internal_suberror(vcpu: &mut VcpuFd) -> u32 {
    let run = vcpu.get_kvm_run();
    // SAFETY: the last exit reason was KVM_EXIT_INTERNAL_ERROR, for which KVM fills the
    // `internal` member of the exit union; reading a u32 from it is valid for any bits.
    unsafe { run.__bindgen_anon_1.internal.suberror }
}

enum Step {
    Continue,
    Stop(ExitRequest),
}

fn handle_exit(vcpu: &mut VcpuFd, index: u8, ctx: &VcpuContext) -> Step {
    let kind = match vcpu.run() {
        Ok(VcpuExit::IoIn(port, data)) => {
            if !ctx.pio.read(u64::from(port), data) {
                log::trace!("vCPU {index}: nobody answers a read of port {port:#x}");
            }
            return Step::Continue;
        }
        Ok(VcpuExit::IoOut(port, data)) => {
            if !ctx.pio.write(u64::from(port), data) {
                log::trace!("vCPU {index}: nobody takes a write to port {port:#x}");
            }
            return Step::Continue;
        }
        Ok(VcpuExit::MmioRead(addr, data)) => {
            if !ctx.mmio.read(addr, data) {
                log::debug!("vCPU {index}: nobody answers a read at {addr:#x}");
            }
            return Step::Continue;
        }
        Ok(VcpuExit::MmioWrite(addr, data)) => {
            if !ctx.mmio.write(addr, data) {
                log::debug!("vCPU {index}: nobody takes a write at {addr:#x}");
            }
            return Step::Continue;
        }
        // With the in-kernel LAPIC, HLT is handled by KVM; a stray exit just re-enters.
        Ok(VcpuExit::Hlt | VcpuExit::IrqWindowOpen | VcpuExit::Intr) => return Step::Continue,
        Ok(VcpuExit::Shutdown) => ExitKind::TripleFault,
        Ok(VcpuExit::InternalError) => ExitKind::Internal,
        Ok(VcpuExit::FailEntry(reason, _cpu)) => ExitKind::FailEntry(reason),
        Ok(VcpuExit::SystemEvent(kind, _)) => match kind {
            KVM_SYSTEM_EVENT_SHUTDOWN => return Step::Stop(ExitRequest::PowerOff),
            KVM_SYSTEM_EVENT_RESET => return Step::Stop(ExitRequest::Reset),
            other => ExitKind::Other(format!("unexpected system event {other}")),
        },
        Ok(other) => ExitKind::Other(format!("unexpected exit {other:?}")),
        Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {
            return Step::Continue;
        }
        Err(e) => ExitKind::Other(format!("KVM_RUN failed: {e}")),
    };
    let rip = rip(vcpu);
    let reason = match kind {
        ExitKind::TripleFault => StopReason::TripleFault { vcpu: index, rip },
        ExitKind::Internal => StopReason::InternalError {
            vcpu: index,
            suberror: internal_suberror(vcpu),
            rip,
        },
        ExitKind::FailEntry(reason) => StopReason::EntryFailed {
            vcpu: index,
            reason,
            rip,
        },
        ExitKind::Other(message) => StopReason::VcpuFailed {
            vcpu: index,
            message: format!("{message} at RIP {rip:#x}"),
        },
    };
    Step::Stop(ExitRequest::Fault(reason))
}

enum ExitKind {
    TripleFault,
    Internal,
    FailEntry(u64),
    Other(String),
}

fn run_loop(vcpu: &mut VcpuFd, index: u8, ctx: &VcpuContext) {
    while ctx.control.checkpoint() {
        if let Step::Stop(request) = handle_exit(vcpu, index, ctx) {
            let fatal = matches!(request, ExitRequest::Fault(_));
            ctx.exits.send(request);
            if fatal {
                return;
            }
        }
    }
}
