//! The firmware link against the real graphics process: `phyllome-vmm device gpu` (2D, so
//! no GPU is needed) runs confined by its sandbox, as a 3D VM's does. A framebuffer the VMM
//! describes on the link reaches the app's display, and a key the app types before the
//! guest binds its virtio keyboard comes back on the link, all without the system-call
//! filter or the file rules stopping the process.

#![allow(
    clippy::unwrap_used,
    clippy::cast_possible_truncation,
    reason = "a test: test patterns are taken modulo 256"
)]

use phyllome_vmm::console_conn::client::{ConsoleClient, Received};
use phyllome_vmm::console_conn::Message;
use phyllome_vmm::devices::legacy::ramfb::RamfbConfig;
use phyllome_vmm::firmware_link::FirmwareLink;
use std::path::Path;
use std::process::{Child, Command};
use std::sync::mpsc::channel;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use vm_memory::{Bytes, GuestAddress};

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for(path: &Path, process: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !path.exists() {
        assert!(
            process.try_wait().unwrap().is_none(),
            "the graphics process ended"
        );
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_confined_graphics_process_shows_the_firmwares_framebuffer_and_sends_back_its_keys() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);
    let child = Command::new(env!("CARGO_BIN_EXE_phyllome-vmm"))
        .args(["device", "gpu", "--renderer", "2d", "--size", "640x480"])
        .arg("--socket")
        .arg(p("gpu.sock"))
        .arg("--console")
        .arg(p("console.sock"))
        .arg("--input-socket")
        .arg(p("in"))
        .arg("--boot-socket")
        .arg(p("boot.sock"))
        .spawn()
        .unwrap();
    let mut process = Kill(child);
    wait_for(&p("gpu.sock"), &mut process.0);

    let (tx, keys) = channel();
    let tx = Mutex::new(tx);
    let link = FirmwareLink::new(Arc::new(move |code, down| {
        let _ = tx.lock().unwrap().send((code, down));
    }));
    link.connect(&p("boot.sock")).unwrap();
    let mut viewer = ConsoleClient::connect(&p("console.sock")).unwrap();

    let ram = phyllome_vmm::memory::create(16 << 20).unwrap();
    let (address, width, height) = (0x40_0000u64, 32u32, 16u32);
    let mut expected = Vec::new();
    for y in 0..height {
        let row: Vec<u8> = (0..width)
            .flat_map(|x| [x as u8, y as u8, 0x5a, 0xff])
            .collect();
        let at = address + u64::from(y * width * 4);
        ram.memory.write_slice(&row, GuestAddress(at)).unwrap();
        expected.push(row);
    }
    let config = RamfbConfig::new(address, width, height, 0).unwrap();
    link.show_ramfb(&config, &ram.memory);

    let deadline = Instant::now() + Duration::from_secs(10);
    let shown = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "the framebuffer never reached the display");
        if let Some(Received::Scanout {
            info:
                Message::Scanout {
                    width: 32,
                    height: 16,
                    stride,
                    offset,
                    ..
                },
            buffer,
        }) = viewer.recv_timeout(left).unwrap()
        {
            break (0..height)
                .map(|y| {
                    let mut row = vec![0u8; width as usize * 4];
                    assert!(buffer.read(offset as usize + (y * stride) as usize, &mut row));
                    row
                })
                .collect::<Vec<_>>();
        }
    };
    assert_eq!(shown, expected);

    viewer
        .send(Message::Key {
            code: 108,
            down: true,
        })
        .unwrap();
    assert_eq!(keys.recv_timeout(Duration::from_secs(5)), Ok((108, true)));
    assert!(
        process.0.try_wait().unwrap().is_none(),
        "the sandbox let the process do all of it"
    );
}
