//! The one wait loop device threads need: block until one of several EventFds fires, hand
//! its index to the caller (after draining it), and return when the stop EventFd fires.
//! Queue workers wait on doorbells; the vhost-user interrupt relay waits on "call" fds.

use std::os::fd::AsRawFd;
use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};
use vmm_sys_util::eventfd::EventFd;

const STOP: u64 = u64::MAX;

/// Runs until `stop` is signalled (or epoll fails), calling `on_event(i)` each time
/// `events[i]` fires. Each EventFd is read (reset) before its handler runs.
pub fn wait_loop(events: &[&EventFd], stop: &EventFd, mut on_event: impl FnMut(usize)) {
    let Ok(epoll) = Epoll::new() else { return };
    let add = |fd: i32, token: u64| {
        epoll.ctl(
            ControlOperation::Add,
            fd,
            EpollEvent::new(EventSet::IN, token),
        )
    };
    if add(stop.as_raw_fd(), STOP).is_err() {
        return;
    }
    for (i, e) in events.iter().enumerate() {
        if add(e.as_raw_fd(), i as u64).is_err() {
            return;
        }
    }
    let mut ready = vec![EpollEvent::default(); events.len() + 1];
    loop {
        let n = match epoll.wait(-1, &mut ready) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return,
        };
        for ev in &ready[..n] {
            let token = ev.data();
            if token == STOP {
                return;
            }
            let Ok(i) = usize::try_from(token) else {
                continue;
            };
            if let Some(e) = events.get(i) {
                let _ = e.read();
                on_event(i);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_each_fired_event_and_stops_on_request() {
        let a = EventFd::new(libc::EFD_NONBLOCK).unwrap();
        let b = EventFd::new(libc::EFD_NONBLOCK).unwrap();
        let stop = EventFd::new(libc::EFD_NONBLOCK).unwrap();
        b.write(1).unwrap();
        let stop2 = stop.try_clone().unwrap();
        let mut seen = Vec::new();
        wait_loop(&[&a, &b], &stop, |i| {
            seen.push(i);
            stop2.write(1).unwrap();
        });
        assert_eq!(seen, vec![1]);
        assert!(b.read().is_err(), "the fired EventFd was drained");
    }
}
