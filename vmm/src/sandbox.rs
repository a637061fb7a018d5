//! The GPU process's confinement. With 3D on, virglrenderer and Mesa (C code that parses
//! what the guest sends) run in `device gpu`, a process of their own; two layers narrow what
//! a fault there could do.
//!
//! Landlock (where the kernel has it): the file system stays readable (drivers and their
//! configuration live anywhere), but writable only in the folders the process needs (its
//! sockets', Mesa's shader cache, a scanout dump) and /dev (render nodes open read-write).
//! A compromised renderer cannot plant anything in the user's home.
//!
//! seccomp: no new programs, no network, no connecting to other services (the session bus,
//! say), no debugging other processes.
//!
//! Two filters, both installed: an allowlist (what the GPU process was seen to need while
//! Mesa drew kmscube, glmark2 and our GLES check, plus what a GPU driver's ioctls and
//! Mesa's shader cache need) whose other system calls fail with `EPERM`, so an unexpected
//! but harmless call from a driver fails softly; and a short list that ends the process at
//! once, the calls only an attacker makes.

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule,
};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// How far the file-system rules hold on this kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilesConfined {
    /// Every rule is enforced.
    Fully,
    /// Some are (an older Landlock ABI).
    Partly,
    /// None: the kernel has no Landlock. seccomp still holds.
    No,
}

/// Why the filter could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The filter could not be compiled (an unsupported architecture, say).
    #[error("Cannot build the GPU process's system-call filter: {0}.")]
    Build(String),
    /// The kernel refused it.
    #[error("Cannot install the GPU process's system-call filter: {0}. Is seccomp available?")]
    Install(String),
    /// The file-system rules could not be set up.
    #[error("Cannot restrict the GPU process's file access: {0}.")]
    Files(String),
}

/// Allowed without conditions.
const ALLOWED: &[libc::c_long] = &[
    // Memory.
    libc::SYS_mmap,
    libc::SYS_munmap,
    libc::SYS_mprotect,
    libc::SYS_mremap,
    libc::SYS_madvise,
    libc::SYS_brk,
    libc::SYS_memfd_create,
    libc::SYS_ftruncate,
    libc::SYS_fallocate,
    libc::SYS_membarrier,
    // Threads, signals, time, identity.
    libc::SYS_clone,
    libc::SYS_clone3,
    libc::SYS_exit,
    libc::SYS_exit_group,
    libc::SYS_futex,
    libc::SYS_set_robust_list,
    libc::SYS_rseq,
    libc::SYS_set_tid_address,
    libc::SYS_sched_yield,
    libc::SYS_sched_getaffinity,
    libc::SYS_sched_setaffinity,
    libc::SYS_sched_setscheduler,
    libc::SYS_sched_getscheduler,
    libc::SYS_sched_getparam,
    libc::SYS_setpriority,
    libc::SYS_getpriority,
    libc::SYS_prctl,
    libc::SYS_arch_prctl,
    libc::SYS_gettid,
    libc::SYS_getpid,
    libc::SYS_getppid,
    libc::SYS_tgkill,
    libc::SYS_rt_sigaction,
    libc::SYS_rt_sigprocmask,
    libc::SYS_rt_sigreturn,
    libc::SYS_sigaltstack,
    libc::SYS_nanosleep,
    libc::SYS_clock_nanosleep,
    libc::SYS_clock_gettime,
    libc::SYS_clock_getres,
    libc::SYS_gettimeofday,
    libc::SYS_getrandom,
    libc::SYS_uname,
    libc::SYS_sysinfo,
    libc::SYS_prlimit64,
    libc::SYS_getrlimit,
    libc::SYS_getuid,
    libc::SYS_geteuid,
    libc::SYS_getgid,
    libc::SYS_getegid,
    libc::SYS_getresuid,
    libc::SYS_getresgid,
    libc::SYS_getcwd,
    // Files: Mesa's drivers, its configuration and shader cache, the sockets' files.
    libc::SYS_read,
    libc::SYS_write,
    libc::SYS_readv,
    libc::SYS_writev,
    libc::SYS_pread64,
    libc::SYS_pwrite64,
    libc::SYS_open,
    libc::SYS_openat,
    libc::SYS_close,
    libc::SYS_fstat,
    libc::SYS_stat,
    libc::SYS_lstat,
    libc::SYS_newfstatat,
    libc::SYS_statx,
    libc::SYS_lseek,
    libc::SYS_getdents64,
    libc::SYS_readlink,
    libc::SYS_readlinkat,
    libc::SYS_access,
    libc::SYS_faccessat,
    libc::SYS_faccessat2,
    libc::SYS_fcntl,
    libc::SYS_dup,
    libc::SYS_dup2,
    libc::SYS_dup3,
    libc::SYS_ioctl,
    libc::SYS_mkdir,
    libc::SYS_mkdirat,
    libc::SYS_rename,
    libc::SYS_renameat,
    libc::SYS_renameat2,
    libc::SYS_unlink,
    libc::SYS_unlinkat,
    libc::SYS_flock,
    libc::SYS_fsync,
    libc::SYS_fdatasync,
    // Waiting.
    libc::SYS_epoll_create1,
    libc::SYS_epoll_ctl,
    libc::SYS_epoll_wait,
    libc::SYS_epoll_pwait,
    libc::SYS_eventfd2,
    libc::SYS_poll,
    libc::SYS_ppoll,
    libc::SYS_select,
    libc::SYS_pselect6,
    libc::SYS_pipe2,
    // The vhost-user and console sockets (listening and accepted; never connecting out).
    libc::SYS_bind,
    libc::SYS_listen,
    libc::SYS_accept,
    libc::SYS_accept4,
    libc::SYS_sendmsg,
    libc::SYS_recvmsg,
    libc::SYS_sendto,
    libc::SYS_recvfrom,
    libc::SYS_shutdown,
    libc::SYS_getsockopt,
    libc::SYS_setsockopt,
    libc::SYS_getsockname,
    libc::SYS_getpeername,
];

/// Calls that end the process at once: running programs, reading or writing other
/// processes, changing the file system's view, loading kernel code.
const FATAL: &[libc::c_long] = &[
    libc::SYS_execve,
    libc::SYS_execveat,
    libc::SYS_ptrace,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
    libc::SYS_kexec_load,
    libc::SYS_init_module,
    libc::SYS_finit_module,
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_pivot_root,
    libc::SYS_chroot,
    libc::SYS_setns,
    libc::SYS_unshare,
    libc::SYS_bpf,
    libc::SYS_userfaultfd,
];

/// The two compiled filters, in the order they go in.
fn programs() -> Result<[BpfProgram; 2], SandboxError> {
    let build = |e: seccompiler::BackendError| SandboxError::Build(e.to_string());
    let arch = std::env::consts::ARCH
        .try_into()
        .map_err(|e: seccompiler::BackendError| SandboxError::Build(e.to_string()))?;
    let mut allowed: BTreeMap<i64, Vec<SeccompRule>> =
        ALLOWED.iter().map(|n| (*n, Vec::new())).collect();
    // Sockets: Unix ones only.
    let unix = SeccompCondition::new(
        0,
        SeccompCmpArgLen::Dword,
        SeccompCmpOp::Eq,
        libc::AF_UNIX as u64,
    )
    .map_err(build)?;
    allowed.insert(
        libc::SYS_socket,
        vec![SeccompRule::new(vec![unix]).map_err(build)?],
    );
    let allow = SeccompFilter::new(
        allowed,
        SeccompAction::Errno(libc::EPERM as u32),
        SeccompAction::Allow,
        arch,
    )
    .map_err(build)?;
    let fatal = SeccompFilter::new(
        FATAL.iter().map(|n| (*n, Vec::new())).collect(),
        SeccompAction::Allow,
        SeccompAction::KillProcess,
        arch,
    )
    .map_err(build)?;
    // The fatal list first: once the allowlist is in, seccomp() itself is refused.
    Ok([
        fatal.try_into().map_err(build)?,
        allow.try_into().map_err(build)?,
    ])
}

/// Where Mesa keeps its shader cache (made if missing, so the rules can name it).
pub fn mesa_shader_cache() -> Option<PathBuf> {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let dir = env("MESA_SHADER_CACHE_DIR")
        .or_else(|| env("XDG_CACHE_HOME").map(|c| c.join("mesa_shader_cache")))
        .or_else(|| env("HOME").map(|h| h.join(".cache/mesa_shader_cache")))?;
    std::fs::create_dir_all(&dir).ok()?;
    Some(dir)
}

/// Landlock: everything readable, `writable` (and /dev) writable, the rest not.
fn restrict_files(writable: &[PathBuf]) -> Result<FilesConfined, SandboxError> {
    use landlock::{
        path_beneath_rules, Access, AccessFs, Ruleset, RulesetAttr, RulesetCreatedAttr,
        RulesetStatus, ABI,
    };
    let err = |e: landlock::RulesetError| SandboxError::Files(e.to_string());
    let abi = ABI::V5;
    let read = AccessFs::from_read(abi);
    let status = Ruleset::default()
        .handle_access(AccessFs::from_all(abi))
        .map_err(err)?
        .create()
        .map_err(err)?
        .add_rules(path_beneath_rules(["/"], read))
        .map_err(err)?
        .add_rules(path_beneath_rules(
            ["/dev"],
            read | AccessFs::WriteFile | AccessFs::IoctlDev,
        ))
        .map_err(err)?
        .add_rules(path_beneath_rules(writable, AccessFs::from_all(abi)))
        .map_err(err)?
        .restrict_self()
        .map_err(err)?;
    Ok(match status.ruleset {
        RulesetStatus::FullyEnforced => FilesConfined::Fully,
        RulesetStatus::PartiallyEnforced => FilesConfined::Partly,
        _ => FilesConfined::No,
    })
}

/// Confines this process (every thread, and every thread it starts later) to what the GPU
/// process needs, writing only under `writable`. It cannot be undone. Says how far the
/// file-system rules hold (they need Landlock; seccomp is required).
pub fn confine_gpu_process(writable: &[PathBuf]) -> Result<FilesConfined, SandboxError> {
    // Landlock first: once the seccomp allowlist is in, its system calls are refused.
    let files = restrict_files(writable)?;
    for program in programs()? {
        seccompiler::apply_filter_all_threads(&program)
            .map_err(|e| SandboxError::Install(e.to_string()))?;
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `body` in a forked child under the filters; returns how the child ended.
    fn in_confined_child(body: fn() -> i32) -> libc::c_int {
        let programs = programs().expect("the filters compile");
        // SAFETY: the child only makes system calls (no allocation, no locks) before it
        // leaves with _exit; the parent waits for it below.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            for p in &programs {
                if seccompiler::apply_filter_all_threads(p).is_err() {
                    // SAFETY: _exit ends the child without running the parent's destructors.
                    unsafe { libc::_exit(90) };
                }
            }
            let code = body();
            // SAFETY: as above.
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        // SAFETY: `pid` is our child and `status` a valid place for its status.
        let waited = unsafe { libc::waitpid(pid, &raw mut status, 0) };
        assert_eq!(waited, pid);
        status
    }

    #[test]
    #[allow(
        clippy::cast_possible_truncation,
        reason = "AF_UNIX and the address size are small constants"
    )]
    fn unix_sockets_work_network_sockets_and_connecting_out_do_not() {
        let status = in_confined_child(|| {
            // SAFETY: plain system calls on values we own.
            unsafe {
                let unix = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0);
                if unix < 0 {
                    return 1;
                }
                let inet = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
                if inet >= 0 || *libc::__errno_location() != libc::EPERM {
                    return 2;
                }
                let addr = libc::sockaddr_un {
                    sun_family: libc::AF_UNIX as libc::sa_family_t,
                    sun_path: [0; 108],
                };
                let len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
                let r = libc::connect(unix, (&raw const addr).cast(), len);
                if r == 0 || *libc::__errno_location() != libc::EPERM {
                    return 3;
                }
                // Ordinary work still goes through.
                if libc::getpid() <= 0 {
                    return 4;
                }
            }
            0
        });
        assert!(libc::WIFEXITED(status), "status {status:#x}");
        assert_eq!(libc::WEXITSTATUS(status), 0);
    }

    /// The confined side of the test below, run in a process of its own (this test
    /// binary, started again): the rules cannot be undone, and a forked child of a threaded
    /// test runner must not allocate.
    #[test]
    #[ignore = "run by files_are_writable_only_where_allowed in a child process"]
    fn landlock_child() {
        let (Some(allowed), Some(other)) = (
            std::env::var_os("PHYLLOME_TEST_ALLOWED"),
            std::env::var_os("PHYLLOME_TEST_OTHER"),
        ) else {
            return;
        };
        let allowed = PathBuf::from(allowed);
        if restrict_files(std::slice::from_ref(&allowed)).unwrap() == FilesConfined::No {
            println!("PHYLLOME-NO-LANDLOCK");
            return;
        }
        assert!(std::fs::write(allowed.join("ok"), b"x").is_ok());
        let denied = std::fs::write(PathBuf::from(other).join("no"), b"x").unwrap_err();
        assert_eq!(denied.kind(), std::io::ErrorKind::PermissionDenied);
        assert!(
            std::fs::read("/etc/passwd").is_ok(),
            "reading stays allowed"
        );
        println!("PHYLLOME-CONFINED");
    }

    /// Where the kernel has Landlock: reading works everywhere, writing only where allowed.
    #[test]
    fn files_are_writable_only_where_allowed() {
        let allowed = tempfile::tempdir().unwrap();
        let other = tempfile::tempdir().unwrap();
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--ignored",
                "--exact",
                "--nocapture",
                "sandbox::tests::landlock_child",
            ])
            .env("PHYLLOME_TEST_ALLOWED", allowed.path())
            .env("PHYLLOME_TEST_OTHER", other.path())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        if text.contains("PHYLLOME-NO-LANDLOCK") {
            eprintln!("this kernel has no Landlock: nothing to check (seccomp still holds)");
            return;
        }
        assert!(text.contains("PHYLLOME-CONFINED"), "{text}");
        assert!(allowed.path().join("ok").exists());
        assert!(!other.path().join("no").exists());
    }

    #[test]
    fn running_a_program_kills_the_process() {
        let status = in_confined_child(|| {
            let path = c"/bin/true";
            let argv = [path.as_ptr(), std::ptr::null()];
            let envp = [std::ptr::null()];
            // SAFETY: argv and envp are null-terminated arrays of C strings.
            unsafe { libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
            5
        });
        assert!(libc::WIFSIGNALED(status), "status {status:#x}");
        assert_eq!(libc::WTERMSIG(status), libc::SIGSYS);
    }
}
