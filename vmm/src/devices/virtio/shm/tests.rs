use super::*;
use std::io::Write;
use std::os::fd::AsFd;

/// Records what KVM would be told; refuses guest addresses at or above 1 << 40.
#[derive(Default)]
pub(crate) struct Slots {
    pub(crate) log: Mutex<Vec<String>>,
}

impl MemorySlots for Slots {
    fn add(&self, gpa: u64, len: u64, _host: u64) -> std::io::Result<u32> {
        if gpa >= 1 << 40 {
            return Err(std::io::Error::from_raw_os_error(libc::EINVAL));
        }
        let mut log = self.log.lock().unwrap();
        log.push(format!("add {gpa:#x}+{len:#x}"));
        Ok(u32::try_from(log.iter().filter(|l| l.starts_with("add")).count()).unwrap())
    }
    fn remove(&self, slot: u32, gpa: u64, _len: u64, _host: u64) {
        self.log
            .lock()
            .unwrap()
            .push(format!("remove {slot} {gpa:#x}"));
    }
}

fn window(slots: Arc<Slots>) -> ShmWindow {
    let (regions, size) = layout(&[(1, 0x4000), (3, 0x2000)]);
    ShmWindow::new(regions, size, slots).unwrap()
}

fn file_with(bytes: &[u8], len: u64) -> std::fs::File {
    let mut f = tempfile::tempfile().unwrap();
    f.write_all(bytes).unwrap();
    f.set_len(len).unwrap();
    f
}

fn read(w: &ShmWindow, at: u64, len: usize) -> Vec<u8> {
    assert!(at + len as u64 <= w.size());
    // SAFETY: inside the window's reservation, which stays mapped while `w` lives.
    unsafe { std::slice::from_raw_parts((w.host_address() + at) as *const u8, len) }.to_vec()
}

#[test]
fn regions_are_laid_out_on_pages_in_a_power_of_two_bar() {
    let (regions, size) = layout(&[(1, 0x3000), (0, 0), (2, 0x1001)]);
    assert_eq!(
        regions,
        [
            Region {
                shmid: 1,
                offset: 0,
                len: 0x3000
            },
            Region {
                shmid: 2,
                offset: 0x3000,
                len: 0x2000
            }
        ]
    );
    assert_eq!(size, 0x8000);
    assert_eq!(layout(&[]).1, PAGE);
    assert_eq!(layout(&[(1, u64::MAX)]).1, u64::MAX, "no BAR is that large");
}

#[test]
fn a_mapped_file_shows_in_its_region_and_unmapping_brings_zeros_back() {
    let w = window(Arc::new(Slots::default()));
    let f = file_with(b"PHYLLOME-SHM", 0x2000);
    // Region 3 starts at 0x4000 in the window.
    w.map(3, 0x1000, f.as_fd(), 0, 0x1000, true).unwrap();
    assert_eq!(read(&w, 0x5000, 12), b"PHYLLOME-SHM");
    assert_eq!(read(&w, 0x4000, 12), [0; 12], "nothing mapped reads zeros");
    // Writes through the window reach the file: the mapping is shared.
    // SAFETY: inside the mapping just made.
    unsafe { *((w.host_address() + 0x5000) as *mut u8) = b'p' };
    let mut back = [0u8; 1];
    std::os::unix::fs::FileExt::read_at(&f, &mut back, 0).unwrap();
    assert_eq!(&back, b"p");
    assert_eq!(w.mappings(), 1);

    w.unmap(3, 0x1000, 0x1000).unwrap();
    assert_eq!(read(&w, 0x5000, 12), [0; 12]);
    assert_eq!(w.mappings(), 0);
    // The file keeps what was written.
    std::os::unix::fs::FileExt::read_at(&f, &mut back, 1).unwrap();
    assert_eq!(&back, b"H");
}

#[test]
fn requests_a_device_should_not_make_are_refused_one_by_one() {
    let w = window(Arc::new(Slots::default()));
    let f = file_with(b"x", 0x4000);
    let fd = f.as_fd();
    assert_eq!(
        w.map(2, 0, fd, 0, 0x1000, false),
        Err(ShmError::NoRegion(2))
    );
    for (offset, fd_offset, len) in [
        (0x800, 0, 0x1000),
        (0, 0x10, 0x1000),
        (0, 0, 0x100),
        (0, 0, 0),
    ] {
        assert_eq!(
            w.map(1, offset, fd, fd_offset, len, false),
            Err(ShmError::Unaligned {
                offset,
                fd_offset,
                len
            })
        );
    }
    assert!(matches!(
        w.map(1, 0x3000, fd, 0, 0x2000, false),
        Err(ShmError::Outside { shmid: 1, .. })
    ));
    assert!(matches!(
        w.map(1, !0xfff, fd, 0, 0x1000, false),
        Err(ShmError::Outside { .. })
    ));
    // Region 1 must not spill into region 3 either.
    assert!(matches!(
        w.map(3, 0x1000, fd, 0, 0x2000, false),
        Err(ShmError::Outside { shmid: 3, .. })
    ));
    w.map(1, 0x1000, fd, 0, 0x2000, false).unwrap();
    for (offset, len) in [(0x1000, 0x1000), (0, 0x2000), (0x2000, 0x2000)] {
        assert_eq!(
            w.map(1, offset, fd, 0, len, false),
            Err(ShmError::Overlap {
                shmid: 1,
                offset: 0x1000
            }),
            "{offset:#x}+{len:#x}"
        );
    }
    // Next to it is fine.
    w.map(1, 0, fd, 0, 0x1000, false).unwrap();
    // Unmapping must name a mapping exactly.
    for (shmid, offset, len) in [(1, 0x1000, 0x1000), (1, 0x2000, 0x1000), (3, 0, 0x1000)] {
        assert_eq!(
            w.unmap(shmid, offset, len),
            Err(ShmError::NotMapped { shmid, offset, len })
        );
    }
    assert_eq!(w.unmap(9, 0, 0x1000), Err(ShmError::NoRegion(9)));
    assert_eq!(w.mappings(), 2);
    w.clear();
    assert_eq!(w.mappings(), 0);
    assert_eq!(read(&w, 0x1000, 1), [0]);
}

#[test]
fn the_window_follows_its_bar_and_leaves_kvm_before_its_memory_goes() {
    let slots = Arc::new(Slots::default());
    let w = window(slots.clone());
    assert_eq!(w.placed_at(), None);
    w.place(Some(0x1_0000_0000));
    w.place(Some(0x1_0000_0000));
    // A BAR sizing writes all ones: KVM refuses, and the window waits for the next move.
    w.place(Some(0xffff_ffff_ffff_0000));
    assert_eq!(w.placed_at(), None);
    w.place(Some(0x2_0000_0000));
    assert_eq!(w.placed_at(), Some(0x2_0000_0000));
    drop(w);
    assert_eq!(
        *slots.log.lock().unwrap(),
        [
            "add 0x100000000+0x8000",
            "remove 1 0x100000000",
            "add 0x200000000+0x8000",
            "remove 2 0x200000000"
        ]
    );
}
