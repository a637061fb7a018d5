//! The display pipeline's speed, end to end: full-frame 1920x1080 updates written by a
//! guest driver into guest memory, through our virtio-gpu device (transfer, flush), the
//! console connection, the app's reader and into a GTK texture drawn in a window on Xvfb.
//! Printed against the bound of copying the same bytes with one memcpy per frame, measured
//! in the same run:
//! - frames/s through the pipeline (frames the window turned into textures) and frames/s
//!   presented (painted, as the window's GdkFrameClock reports after each paint);
//! - CPU time per frame (all threads of this process: device, reader, GTK);
//! - the time from the guest's flush to the frame being presented (median, p95), one
//!   frame at a time.
//!
//! `cargo bench -p phyllome --bench display` (starts its own Xvfb; `GSK_RENDERER` picks
//! GTK's renderer, cairo by default here, where there is no GPU).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    reason = "a benchmark binary printing its figures"
)]

use phyllome::frames::{read_frames, FrameEvent};
use phyllome::screen::GuestScreen;
use phyllome_tests::desktop::xvfb_sized;
use phyllome_tests::gpu_guest::GpuGuest;
use phyllome_vmm::console_conn::client::ConsoleClient;
use phyllome_vmm::console_conn::server::ConsoleServer;
use relm4::gtk::prelude::*;
use relm4::gtk::{self, gdk, glib};
use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

const W: u32 = 1920;
const H: u32 = 1080;
const LATENCY_FRAMES: usize = 60;
const THROUGHPUT_FRAMES: usize = 240;

/// CPU time (user + system) of the whole process so far.
fn cpu_time() -> Duration {
    // SAFETY: getrusage writes one `rusage` into the zeroed struct we own; no other memory
    // is touched.
    let usage = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut u);
        u
    };
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn p95(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[(v.len() * 95 / 100).min(v.len() - 1)]
}

/// Milliseconds per full-frame memcpy, median of 100.
fn memcpy_ms() -> f64 {
    let n = (W * H * 4) as usize;
    let src: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
    let mut dst = vec![0u8; n];
    let mut times = Vec::with_capacity(100);
    for _ in 0..100 {
        let t = Instant::now();
        dst.copy_from_slice(&src);
        std::hint::black_box(&mut dst);
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    median(&mut times)
}

/// An undecorated window showing `picture` at one frame's size (1:1 on the Xvfb screen).
fn full_frame_window(picture: &gtk::Picture) -> gtk::Window {
    let window = gtk::Window::builder()
        .decorated(false)
        .default_width(W as i32)
        .default_height(H as i32)
        .child(picture)
        .build();
    window.present();
    window
}

/// The toolkit's own bound on this machine: a window whose picture gets a new full-frame
/// texture on every frame-clock tick (no device, no connection, no copy of ours); paints
/// per second over two seconds.
fn gtk_alone_fps() -> f64 {
    let n = (W * H * 4) as usize;
    let bytes = glib::Bytes::from_owned((0..n).map(|i| (i % 239) as u8).collect::<Vec<u8>>());
    let picture = gtk::Picture::new();
    let window = full_frame_window(&picture);
    let paints = Rc::new(Cell::new(0u64));
    let hooked = Rc::new(Cell::new(false));
    let p = paints.clone();
    picture.add_tick_callback(move |pic, _| {
        // A new texture object each tick: GTK must upload and draw it again.
        let texture = gdk::MemoryTexture::new(
            W as i32,
            H as i32,
            gdk::MemoryFormat::B8g8r8a8,
            &bytes,
            (W * 4) as usize,
        );
        pic.set_paintable(Some(&texture));
        if !hooked.get() {
            if let Some(clock) = pic.frame_clock() {
                let p = p.clone();
                clock.connect_after_paint(move |_| p.set(p.get() + 1));
                hooked.set(true);
            }
        }
        glib::ControlFlow::Continue
    });
    let main_loop = glib::MainLoop::new(None, false);
    let ml = main_loop.clone();
    // Count for two seconds from the first paint.
    let start = Rc::new(Cell::new(None::<(u64, Instant)>));
    let st = start.clone();
    let pc = paints.clone();
    let result = Rc::new(Cell::new(0.0));
    let r = result.clone();
    glib::timeout_add_local(Duration::from_millis(50), move || {
        match st.get() {
            None if pc.get() > 0 => st.set(Some((pc.get(), Instant::now()))),
            Some((n0, t0)) if t0.elapsed() >= Duration::from_secs(2) => {
                r.set((pc.get() - n0) as f64 / t0.elapsed().as_secs_f64());
                ml.quit();
                return glib::ControlFlow::Break;
            }
            _ => {}
        }
        glib::ControlFlow::Continue
    });
    main_loop.run();
    window.destroy();
    result.get()
}

fn main() {
    let renderer = std::env::var("GSK_RENDERER").unwrap_or_else(|_| "cairo".into());
    let (_x, display) = xvfb_sized(&format!("{W}x{H}x24"));
    // SAFETY: no other thread runs yet, so nothing reads the environment while it changes.
    unsafe {
        std::env::set_var("DISPLAY", &display);
        std::env::set_var("GDK_BACKEND", "x11");
        std::env::set_var("GSK_RENDERER", &renderer);
    }
    gtk::init().expect("GTK starts on Xvfb");

    let copy_ms = memcpy_ms();
    let gtk_fps = gtk_alone_fps();

    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("console.sock");
    let (server, sink) = ConsoleServer::listen(&socket, |_| {}).unwrap();

    // The window: one picture of the guest's screen, 1:1.
    let screen = GuestScreen::default();
    let picture = gtk::Picture::for_paintable(&screen);
    let _window = full_frame_window(&picture);

    // Frames set on the screen (numbered) and painted.
    let set = Rc::new(Cell::new(0u64));
    let painted = Rc::new(Cell::new(0u64));
    // Paints that showed a new frame.
    let paints_count = Rc::new(Cell::new(0u64));
    let (presented_tx, presented_rx) = mpsc::channel::<(Instant, Instant)>();
    let (events_tx, events_rx) = relm4::channel::<FrameEvent>();

    // The guest driver: its own thread, as a guest's vCPU would be.
    let (start_tx, start_rx) = mpsc::channel::<()>();
    let (result_tx, result_rx) =
        mpsc::channel::<(Vec<f64>, Vec<f64>, Instant, Duration, Duration, u64)>();
    std::thread::spawn(move || {
        let mut g = GpuGuest::new(W, H, Box::new(sink));
        let mut frame: Vec<u8> = (0..W * H * 4).map(|i| (i % 241) as u8).collect();
        start_rx.recv().unwrap();
        // One frame at a time: flush, wait until painted.
        let mut latencies = Vec::new();
        let mut to_texture = Vec::new();
        for i in 0..LATENCY_FRAMES {
            frame[..4].copy_from_slice(&(i as u32).to_le_bytes());
            g.draw_all(&frame);
            let t0 = Instant::now();
            g.present(g.whole());
            match presented_rx.recv_timeout(Duration::from_secs(10)) {
                Ok((set_at, at)) => {
                    latencies.push(at.duration_since(t0).as_secs_f64() * 1e3);
                    to_texture.push(set_at.duration_since(t0).as_secs_f64() * 1e3);
                }
                Err(_) => panic!("frame {i} was never painted"),
            }
        }
        // As fast as the guest can: the pipeline's throughput.
        let cpu0 = cpu_time();
        let t0 = Instant::now();
        for i in 0..THROUGHPUT_FRAMES {
            frame[..4].copy_from_slice(&(i as u32).to_le_bytes());
            g.present(g.whole());
        }
        let device_time = t0.elapsed();
        result_tx
            .send((
                latencies,
                to_texture,
                t0,
                device_time,
                cpu0,
                THROUGHPUT_FRAMES as u64,
            ))
            .unwrap();
        std::thread::park();
    });

    // The app's reader thread, as the display window runs it.
    let sock = socket.clone();
    let frame_taken = Arc::new(AtomicBool::new(true));
    let reader_ready = frame_taken.clone();
    std::thread::spawn(move || {
        let mut client = loop {
            if let Ok(c) = ConsoleClient::connect(&sock) {
                break c;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let _ = read_frames(&mut client, &reader_ready, &mut |e| {
            events_tx.send(e).unwrap_or(());
        });
    });

    // The main loop: frames onto the screen; after each paint that showed a new frame,
    // tell the guest driver.
    let s = screen.clone();
    let set_count = set.clone();
    let last_set = Rc::new(Cell::new(None::<Instant>));
    let last = last_set.clone();
    glib::MainContext::default().spawn_local(async move {
        while let Some(e) = events_rx.recv().await {
            match e {
                FrameEvent::Frame(p) => {
                    s.set_frame(p);
                    set_count.set(set_count.get() + 1);
                    last.set(Some(Instant::now()));
                    frame_taken.store(true, Ordering::Release);
                }
                FrameEvent::Patch(x, y, p) => {
                    s.add_patch(x, y, p);
                    frame_taken.store(true, Ordering::Release);
                }
                FrameEvent::Cursor(_) => {}
            }
        }
    });
    let painted_count = painted.clone();
    let last_set_paint = last_set.clone();
    let paint_counter = paints_count.clone();
    let set_seen = set.clone();
    let clock_hooked = Rc::new(Cell::new(false));
    let hooked = clock_hooked.clone();
    picture.add_tick_callback(move |pic, _| {
        if !hooked.get() {
            if let Some(clock) = pic.frame_clock() {
                let painted_count = painted_count.clone();
                let set_seen = set_seen.clone();
                let tx = presented_tx.clone();
                let (last, paints) = (last_set_paint.clone(), paint_counter.clone());
                clock.connect_after_paint(move |_| {
                    let n = set_seen.get();
                    if n > painted_count.get() {
                        painted_count.set(n);
                        paints.set(paints.get() + 1);
                        if let Some(set_at) = last.get() {
                            let _ = tx.send((set_at, Instant::now()));
                        }
                    }
                });
                hooked.set(true);
            }
        }
        glib::ControlFlow::Continue
    });

    let main_loop = glib::MainLoop::new(None, false);
    // Start once the window is up.
    let start = Some(start_tx);
    let start = std::cell::RefCell::new(start);
    glib::timeout_add_local(Duration::from_millis(500), move || {
        if let Some(tx) = start.borrow_mut().take() {
            let _ = tx.send(());
        }
        glib::ControlFlow::Break
    });
    let ml = main_loop.clone();
    let results = Rc::new(std::cell::RefCell::new(None));
    let r = results.clone();
    // When the driver finished flushing.
    let done_at = Cell::new(None::<Instant>);
    glib::timeout_add_local(Duration::from_millis(5), move || {
        if let Ok(res) = result_rx.try_recv() {
            // The driver is done flushing; the window drains what is in flight.
            done_at.set(Some(Instant::now()));
            *r.borrow_mut() = Some(res);
        }
        if let Some(at) = done_at.get() {
            if at.elapsed() > Duration::from_millis(1500) {
                ml.quit();
                return glib::ControlFlow::Break;
            }
        }
        glib::ControlFlow::Continue
    });
    main_loop.run();
    drop(server);

    let (mut latencies, mut to_texture, t0, device_time, cpu0, frames) = results
        .borrow_mut()
        .take()
        .expect("the guest driver finished");
    let cpu = cpu_time() - cpu0;
    let total_set = set.get() - LATENCY_FRAMES as u64;
    let total_painted = paints_count.get() - LATENCY_FRAMES as u64;
    // Wall time of the pipelined phase: from the first flush until the last texture was set.
    let wall = last_set
        .get()
        .map_or(device_time, |l| l.duration_since(t0))
        .as_secs_f64()
        .max(1e-9);
    let fps_through = total_set as f64 / wall;
    let fps_painted = total_painted as f64 / wall;
    let cpu_ms = cpu.as_secs_f64() * 1e3 / frames as f64;
    let bound_fps = 1e3 / copy_ms;
    println!("display pipeline, {W}x{H} full-frame updates, GSK_RENDERER={renderer}, Xvfb");
    println!(
        "  memcpy bound (one copy per frame): {copy_ms:.2} ms/frame = {bound_fps:.0} frames/s"
    );
    println!(
        "  guest flushes: {frames} in {:.0} ms = {:.0} frames/s",
        device_time.as_secs_f64() * 1e3,
        frames as f64 / device_time.as_secs_f64()
    );
    println!(
        "  textures set: {total_set} ({fps_through:.0} frames/s, {:.2}x the memcpy bound); presented: {total_painted} ({fps_painted:.0} frames/s)",
        fps_through / bound_fps
    );
    println!(
        "  GTK alone (a new full-frame texture each tick, nothing of ours): {gtk_fps:.0} frames/s presented; ours presents {:.2}x that",
        fps_painted / gtk_fps.max(1e-9)
    );
    println!(
        "  CPU per frame (all threads): {cpu_ms:.2} ms = {:.1}x one memcpy",
        cpu_ms / copy_ms
    );
    println!(
        "  flush to texture set, one frame at a time: median {:.2} ms, p95 {:.2} ms",
        median(&mut to_texture),
        p95(&mut to_texture)
    );
    println!(
        "  flush to presented, one frame at a time: median {:.2} ms, p95 {:.2} ms ({} frames)",
        median(&mut latencies),
        p95(&mut latencies),
        latencies.len()
    );
}
