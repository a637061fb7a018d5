//! Finding a VM's helper processes from a test: the children of a process that serve
//! `device gpu` or run passt, and whether the kernel filters their system calls.

use std::time::{Duration, Instant};

/// The children of `parent` whose command line (its words) `wanted` accepts. Zombies
/// have no command line and are not counted.
pub fn children_where(parent: u32, wanted: impl Fn(&[&[u8]]) -> bool) -> Vec<u32> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        // "pid (comm) state ppid ...": the name may hold spaces, so split after ')'.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let words: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        if ppid == Some(parent) && wanted(&words) {
            found.push(pid);
        }
    }
    found
}

/// The children of `parent` whose command line holds `device gpu` (a 3D VM's graphics
/// process, whichever program runs it).
pub fn gpu_children(parent: u32) -> Vec<u32> {
    children_where(parent, |words| {
        words
            .windows(2)
            .any(|w| w[0] == b"device".as_slice() && w[1] == b"gpu".as_slice())
    })
}

/// The children of `parent` that are passt serving a VM over a socket pair (`--fd`).
pub fn passt_children(parent: u32) -> Vec<u32> {
    children_where(parent, |words| {
        words.first().is_some_and(|w| w.ends_with(b"passt"))
            && words.iter().any(|w| *w == b"--fd".as_slice())
    })
}

/// Waits up to `secs` for `parent` to have exactly one graphics process, and returns it.
///
/// # Panics
/// When it does not happen in time.
pub fn one_gpu_child(parent: u32, secs: u64) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let c = gpu_children(parent);
        if let [one] = c.as_slice() {
            return *one;
        }
        assert!(
            Instant::now() < deadline,
            "graphics processes of {parent}: {c:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The "Seccomp:" mode in /proc/PID/status ("2": filtered; "0": not).
pub fn seccomp_mode(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Seccomp:"))
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// Ends `pid` with SIGKILL, as a crash in the renderer would.
///
/// # Panics
/// When the signal cannot be sent.
pub fn kill_hard(pid: u32) {
    let pid = libc::pid_t::try_from(pid).expect("a process ID");
    // SAFETY: kill() only sends a signal; the caller names a process it found just now.
    let sent = unsafe { libc::kill(pid, libc::SIGKILL) };
    assert_eq!(sent, 0, "cannot signal {pid}");
}
