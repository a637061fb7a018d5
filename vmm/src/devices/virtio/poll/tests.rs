//! Polling: work already there or arriving within the window is found, the doorbell is quiet
//! while the worker watches and on again when it stops, with and without `EVENT_IDX`.

use super::*;
use std::sync::Arc;
use virtio_queue::mock::MockSplitQueue;

const SIZE: u16 = 16;

fn memory() -> GuestMemory {
    GuestMemory::from_ranges(&[(GuestAddress(0), 0x10_0000)]).unwrap()
}

/// A queue over `vq` with `EVENT_IDX` as asked, whose device has taken everything so far.
fn queue(vq: &MockSplitQueue<'_, GuestMemory>, event_idx: bool) -> Queue {
    let mut q: Queue = vq.create_queue().unwrap();
    q.set_event_idx(event_idx);
    q
}

/// The used ring's `avail_event` field: where the driver kicks next.
fn avail_event(mem: &GuestMemory, vq: &MockSplitQueue<'_, GuestMemory>) -> u16 {
    mem.read_obj(vq.used_addr().unchecked_add(4 + 8 * u64::from(SIZE)))
        .unwrap()
}

fn used_flags(mem: &GuestMemory, vq: &MockSplitQueue<'_, GuestMemory>) -> u16 {
    mem.read_obj(vq.used_addr()).unwrap()
}

#[test]
fn an_idle_queue_is_watched_for_the_window_then_its_doorbell_is_on_again() {
    let mem = memory();
    let vq = MockSplitQueue::new(&mem, SIZE);
    let mut q = queue(&vq, true);
    let window = Duration::from_millis(20);
    assert!(quiet_doorbell(&q, &mem, window).unwrap());
    assert_eq!(avail_event(&mem, &vq), u16::MAX, "quiet while watching");
    let start = Instant::now();
    assert!(!poll_for_work(&mut q, &mem, window).unwrap());
    assert!(
        start.elapsed() >= Duration::from_millis(20),
        "watched the whole window"
    );
    assert_eq!(avail_event(&mem, &vq), 0, "kick me at the next request");
}

#[test]
fn work_that_arrives_while_polling_is_found_with_the_doorbell_quiet() {
    let mem = memory();
    let vq = MockSplitQueue::new(&mem, SIZE);
    let mut q = queue(&vq, true);
    let avail_idx = vq.avail_addr().unchecked_add(2);
    let driver_mem = Arc::new(mem.clone());
    let driver = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(5));
        driver_mem
            .store(1u16.to_le(), avail_idx, Ordering::Release)
            .unwrap();
    });
    assert!(quiet_doorbell(&q, &mem, Duration::from_secs(10)).unwrap());
    let start = Instant::now();
    assert!(poll_for_work(&mut q, &mem, Duration::from_secs(10)).unwrap());
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "found long before the window ended"
    );
    driver.join().unwrap();
    assert_eq!(
        avail_event(&mem, &vq),
        u16::MAX,
        "the driver is told not to kick (avail_event behind the device)"
    );
}

#[test]
fn without_event_idx_the_no_notify_flag_quiets_the_doorbell() {
    let mem = memory();
    let vq = MockSplitQueue::new(&mem, SIZE);
    let mut q = queue(&vq, false);
    vq.avail().idx().store(1);
    assert!(quiet_doorbell(&q, &mem, Duration::from_millis(20)).unwrap());
    assert!(poll_for_work(&mut q, &mem, Duration::from_millis(20)).unwrap());
    assert_eq!(used_flags(&mem, &vq), USED_F_NO_NOTIFY);
    // The device takes the request; nothing more comes: the flag goes.
    q.set_next_avail(1);
    assert!(quiet_doorbell(&q, &mem, Duration::from_millis(1)).unwrap());
    assert!(!poll_for_work(&mut q, &mem, Duration::from_millis(1)).unwrap());
    assert_eq!(used_flags(&mem, &vq), 0);
}

#[test]
fn no_window_means_no_polling_and_no_ring_writes() {
    let mem = memory();
    let vq = MockSplitQueue::new(&mem, SIZE);
    let q = queue(&vq, true);
    vq.avail().idx().store(3);
    assert!(!quiet_doorbell(&q, &mem, Duration::ZERO).unwrap());
    assert_eq!(avail_event(&mem, &vq), 0, "untouched");
}

#[test]
fn a_used_ring_outside_guest_memory_fails_that_poll_only() {
    let mem = memory();
    let mut q: Queue = Queue::new(SIZE).unwrap();
    q.set_size(SIZE);
    q.set_ready(true);
    q.set_event_idx(true);
    q.set_used_ring_address(Some(0xffff_f000), Some(0));
    assert!(matches!(
        quiet_doorbell(&q, &mem, Duration::from_millis(1)),
        Err(PollError::Ring)
    ));
}

#[test]
fn the_window_shrinks_while_requests_come_late_and_grows_when_they_come_soon() {
    let max = Duration::from_millis(20);
    let mut p = Poller::for_cpus(max, 2);
    assert_eq!(p.window(), max, "starts at its largest");
    // The driver comes back long after the window: spinning was wasted, halve it each time.
    for expected in [10, 5] {
        p.sleeping();
        std::thread::sleep(Duration::from_millis(30));
        p.woken();
        assert_eq!(p.window(), Duration::from_millis(expected));
    }
    for _ in 0..20 {
        p.sleeping();
        std::thread::sleep(Duration::from_millis(21));
        p.woken();
    }
    assert_eq!(
        p.window(),
        Duration::ZERO,
        "no polling for a driver this slow"
    );
    // It comes back soon: a window would have caught it, so grow again from the smallest.
    p.sleeping();
    p.woken();
    assert_eq!(p.window(), SMALLEST);
    for _ in 0..20 {
        p.sleeping();
        p.woken();
    }
    assert_eq!(p.window(), max, "never past the largest");
    // A wake-up without a sleep (host input) changes nothing.
    p.woken();
    assert_eq!(p.window(), max);
}

#[test]
fn a_poller_without_a_window_stays_without_one() {
    let one_cpu = Poller::for_cpus(Duration::from_micros(32), 1);
    assert_eq!(one_cpu.window(), Duration::ZERO, "one CPU: never spin");
    let mut p = Poller::for_cpus(Duration::ZERO, 4);
    p.sleeping();
    p.woken();
    assert_eq!(p.window(), Duration::ZERO);
}
