//! virtio-snd over mock queues: the information queries, every control request in and out
//! of order, parameters outside what PCM_INFO offers, playback and capture messages with
//! their status and latency, pacing by the ring, messages held while stopped and given back
//! on release, and bad messages failing alone.

#![allow(
    clippy::cast_possible_truncation,
    reason = "test buffers are small and their sizes known"
)]

use super::*;
use crate::devices::bus::lock;
use crate::devices::virtio::serve_queue;
use std::sync::Mutex;
use virtio_queue::desc::{split::Descriptor, RawDescriptor};
use virtio_queue::mock::MockSplitQueue;
use virtio_queue::QueueT;
use vm_memory::{Bytes, GuestAddress};

const WRITE: u16 = 2;
const NEXT: u16 = 1;
const REQ: u64 = 0x1000;
const REPLY: u64 = 0x2000;
const DATA: u64 = 0x10000;
const STATUS: u64 = 0x3000;

/// A backend that records what the device asked of it.
/// A stream the probe opened.
type Opened = (Direction, StreamParams, Arc<Ring>);

#[derive(Default, Clone)]
struct Probe {
    opened: Arc<Mutex<Vec<Opened>>>,
    log: Arc<Mutex<Vec<&'static str>>>,
    refuse: bool,
}

struct ProbeStream(Arc<Mutex<Vec<&'static str>>>);

impl BackendStream for ProbeStream {
    fn start(&mut self) {
        lock(&self.0).push("start");
    }
    fn stop(&mut self) {
        lock(&self.0).push("stop");
    }
}

impl Drop for ProbeStream {
    fn drop(&mut self) {
        lock(&self.0).push("close");
    }
}

impl AudioBackend for Probe {
    fn open(
        &mut self,
        direction: Direction,
        params: StreamParams,
        ring: Arc<Ring>,
    ) -> Result<Box<dyn BackendStream>, backend::BackendError> {
        if self.refuse {
            return Err(backend::BackendError::Unreachable(
                "refused by the test".into(),
            ));
        }
        lock(&self.opened).push((direction, params, ring));
        lock(&self.log).push("open");
        Ok(Box::new(ProbeStream(self.log.clone())))
    }
}

struct Rig {
    mem: GuestMemory,
    dev: Snd,
    probe: Probe,
}

fn rig() -> Rig {
    let probe = Probe::default();
    Rig {
        mem: GuestMemory::from_ranges(&[(GuestAddress(0), 0x10_0000)]).unwrap(),
        dev: Snd::new(Box::new(probe.clone())).unwrap(),
        probe,
    }
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

impl Rig {
    /// A control request with `reply_len` bytes of reply room: (used, status, reply after
    /// the status).
    fn control(&mut self, request: &[u8], reply_len: u32) -> (u32, u32, Vec<u8>) {
        self.mem.write_slice(request, GuestAddress(REQ)).unwrap();
        self.mem
            .write_slice(&vec![0xee; reply_len as usize], GuestAddress(REPLY))
            .unwrap();
        let descs = [
            RawDescriptor::from(Descriptor::new(REQ, request.len() as u32, 0, 0)),
            RawDescriptor::from(Descriptor::new(REPLY, reply_len, WRITE, 0)),
        ];
        let vq = MockSplitQueue::new(&self.mem, 16);
        let chain = vq.build_desc_chain(&descs).unwrap();
        let used = self.dev.process(CONTROL_QUEUE, &self.mem, chain);
        let mut reply = vec![0u8; reply_len as usize];
        self.mem
            .read_slice(&mut reply, GuestAddress(REPLY))
            .unwrap();
        let status = if used >= 4 { le32(&reply, 0) } else { 0 };
        (
            used,
            status,
            reply[4.min(reply.len())..used as usize].to_vec(),
        )
    }

    fn query(&mut self, code: u32, start: u32, count: u32, size: u32) -> (u32, Vec<u8>) {
        let mut q = Vec::new();
        for v in [code, start, count, size] {
            q.extend(v.to_le_bytes());
        }
        let (_, status, reply) = self.control(&q, 4 + count.saturating_mul(size).min(4096));
        (status, reply)
    }

    fn pcm(&mut self, code: u32, stream: u32) -> u32 {
        let mut q = code.to_le_bytes().to_vec();
        q.extend(stream.to_le_bytes());
        self.control(&q, 4).1
    }

    #[allow(clippy::too_many_arguments, reason = "the request's fields")]
    fn set_params_raw(
        &mut self,
        stream: u32,
        buffer: u32,
        period: u32,
        features: u32,
        channels: u8,
        format: u8,
        rate: u8,
    ) -> u32 {
        let mut q = R_PCM_SET_PARAMS.to_le_bytes().to_vec();
        for v in [stream, buffer, period, features] {
            q.extend(v.to_le_bytes());
        }
        q.extend([channels, format, rate, 0]);
        self.control(&q, 4).1
    }

    /// 48 kHz stereo S16: 4 bytes a frame; periods of 960 bytes (5 ms).
    fn set_params(&mut self, stream: u32) -> u32 {
        self.set_params_raw(stream, 9600, 960, 0, 2, PCM_FMT_S16, PCM_RATE_48000)
    }

    fn ready_to_run(&mut self, stream: u32) {
        assert_eq!(self.set_params(stream), S_OK);
        assert_eq!(self.pcm(R_PCM_PREPARE, stream), S_OK);
        assert_eq!(self.pcm(R_PCM_START, stream), S_OK);
    }

    /// A playback message: (used, status).
    fn tx(&mut self, stream: u32, data: &[u8]) -> (u32, PcmStatus) {
        let mut msg = stream.to_le_bytes().to_vec();
        msg.extend(data);
        self.mem.write_slice(&msg, GuestAddress(DATA)).unwrap();
        let descs = [
            RawDescriptor::from(Descriptor::new(DATA, msg.len() as u32, 0, 0)),
            RawDescriptor::from(Descriptor::new(STATUS, 8, WRITE, 0)),
        ];
        let vq = MockSplitQueue::new(&self.mem, 16);
        let chain = vq.build_desc_chain(&descs).unwrap();
        let used = self.dev.process(TX_QUEUE, &self.mem, chain);
        (used, self.mem.read_obj(GuestAddress(STATUS)).unwrap())
    }

    /// A capture message with `room` bytes for sound: (used, bytes, status).
    fn rx(&mut self, stream: u32, room: u32) -> (u32, Vec<u8>, PcmStatus) {
        self.mem
            .write_slice(&stream.to_le_bytes(), GuestAddress(REQ))
            .unwrap();
        let descs = [
            RawDescriptor::from(Descriptor::new(REQ, 4, 0, 0)),
            RawDescriptor::from(Descriptor::new(DATA, room, WRITE, 0)),
            RawDescriptor::from(Descriptor::new(STATUS, 8, WRITE, 0)),
        ];
        let vq = MockSplitQueue::new(&self.mem, 16);
        let chain = vq.build_desc_chain(&descs).unwrap();
        let used = self.dev.process(RX_QUEUE, &self.mem, chain);
        let mut data = vec![0u8; used.saturating_sub(8) as usize];
        self.mem.read_slice(&mut data, GuestAddress(DATA)).unwrap();
        (used, data, self.mem.read_obj(GuestAddress(STATUS)).unwrap())
    }

    fn ring(&self, index: usize) -> Arc<Ring> {
        lock(&self.probe.opened)[index].2.clone()
    }
}

#[test]
fn configuration_announces_two_jacks_two_streams_two_maps() {
    let r = rig();
    let c = r.dev.config();
    assert_eq!(c.len(), 12);
    assert_eq!((le32(&c, 0), le32(&c, 4), le32(&c, 8)), (2, 2, 2));
    assert_eq!(r.dev.device_type(), 25);
    assert_eq!(r.dev.num_queues(), 4);
}

#[test]
fn pcm_info_offers_what_the_device_delivers() {
    let mut r = rig();
    let (status, reply) = r.query(R_PCM_INFO, 0, 2, 32);
    assert_eq!(status, S_OK);
    assert_eq!(reply.len(), 64);
    for (i, direction) in [(0, D_OUTPUT), (1, D_INPUT)] {
        let info = &reply[i * 32..];
        let formats = u64::from_le_bytes(info[8..16].try_into().unwrap());
        let rates = u64::from_le_bytes(info[16..24].try_into().unwrap());
        assert_eq!(formats, 1 << 5 | 1 << 17 | 1 << 19, "S16, S32, FLOAT");
        assert_eq!(rates, 1 << 6 | 1 << 7, "44.1 and 48 kHz");
        assert_eq!((info[24], info[25], info[26]), (direction, 1, 2));
        let features = le32(info, 4);
        let xruns = if direction == D_INPUT {
            PCM_F_EVT_XRUNS
        } else {
            0
        };
        assert_eq!(features, xruns, "capture tells of overruns");
    }
    // A driver asking for bigger items gets ours zero-padded.
    let (status, reply) = r.query(R_PCM_INFO, 1, 1, 40);
    assert_eq!((status, reply.len()), (S_OK, 40));
    assert_eq!(reply[24], D_INPUT);
    assert!(reply[32..].iter().all(|&b| b == 0));
}

#[test]
fn jack_and_channel_map_queries_are_answered() {
    let mut r = rig();
    let (status, jacks) = r.query(R_JACK_INFO, 0, 2, 24);
    assert_eq!(status, S_OK);
    assert_eq!(le32(&jacks, 8) >> 20 & 0xf, 0x0, "line out");
    assert_eq!(le32(&jacks, 24 + 8) >> 20 & 0xf, 0xa, "microphone in");
    assert_eq!((jacks[16], jacks[24 + 16]), (1, 1), "connected");
    let (status, maps) = r.query(R_CHMAP_INFO, 0, 2, 24);
    assert_eq!(status, S_OK);
    assert_eq!(&maps[4..8], &[D_OUTPUT, 2, CHMAP_FL, CHMAP_FR]);
    assert_eq!(&maps[28..32], &[D_INPUT, 2, CHMAP_FL, CHMAP_FR]);
}

#[test]
fn queries_outside_the_device_fail_alone() {
    let mut r = rig();
    for (start, count, size) in [(2, 1, 32), (1, 2, 32), (u32::MAX, 2, 32), (0, 1, 8)] {
        let (status, reply) = r.query(R_PCM_INFO, start, count, size);
        assert_eq!(
            (status, reply.len()),
            (S_BAD_MSG, 0),
            "{start} {count} {size}"
        );
    }
    // Room for the status only.
    let mut q = Vec::new();
    for v in [R_JACK_INFO, 0, 2, 24] {
        q.extend(u32::to_le_bytes(v));
    }
    assert_eq!(r.control(&q, 4).1, S_BAD_MSG);
    // A truncated request, an unknown code, a remap we do not offer.
    assert_eq!(r.control(&R_PCM_INFO.to_le_bytes(), 4).1, S_BAD_MSG);
    assert_eq!(r.control(&0x7777u32.to_le_bytes(), 4).1, S_NOT_SUPP);
    assert_eq!(r.control(&R_JACK_REMAP.to_le_bytes(), 4).1, S_NOT_SUPP);
    // An oversized request; then the device still answers.
    assert_eq!(r.control(&[0u8; 200], 4).1, S_BAD_MSG);
    assert_eq!(r.query(R_PCM_INFO, 0, 1, 32).0, S_OK);
}

#[test]
fn streams_go_through_the_states_in_order() {
    let mut r = rig();
    assert_eq!(r.pcm(R_PCM_PREPARE, 0), S_BAD_MSG, "no parameters yet");
    assert_eq!(r.pcm(R_PCM_START, 0), S_BAD_MSG);
    assert_eq!(r.set_params(0), S_OK);
    assert_eq!(r.dev.stream_state(0), Some(StreamState::ParamsSet));
    assert_eq!(r.pcm(R_PCM_START, 0), S_BAD_MSG, "not prepared");
    assert_eq!(r.pcm(R_PCM_PREPARE, 0), S_OK);
    assert_eq!(r.pcm(R_PCM_STOP, 0), S_BAD_MSG, "not started");
    assert_eq!(r.pcm(R_PCM_START, 0), S_OK);
    assert_eq!(r.pcm(R_PCM_RELEASE, 0), S_BAD_MSG, "running");
    assert_eq!(r.set_params(0), S_BAD_MSG, "running");
    assert_eq!(r.pcm(R_PCM_STOP, 0), S_OK);
    assert_eq!(r.pcm(R_PCM_START, 0), S_OK, "again after a stop");
    assert_eq!(r.pcm(R_PCM_STOP, 0), S_OK);
    assert_eq!(r.pcm(R_PCM_RELEASE, 0), S_OK);
    assert_eq!(r.dev.stream_state(0), Some(StreamState::Released));
    assert_eq!(
        r.pcm(R_PCM_PREPARE, 0),
        S_OK,
        "prepared again after release"
    );
    // A stopped playback stream's backend goes on (to play what the ring holds); the
    // release closes it.
    assert_eq!(
        *lock(&r.probe.log),
        ["open", "start", "start", "stop", "close", "open"]
    );
    assert_eq!(r.pcm(R_PCM_PREPARE, 2), S_BAD_MSG, "no stream 2");
    assert_eq!(r.pcm(R_PCM_START, u32::MAX), S_BAD_MSG);
}

#[test]
fn parameters_outside_the_offer_are_refused_and_change_nothing() {
    let mut r = rig();
    assert_eq!(r.set_params(1), S_OK);
    let bad = [
        (9600, 960, 0, 2, PCM_FMT_S16, 0),                   // 5512 Hz
        (9600, 960, 0, 2, 4, PCM_RATE_48000),                // U8
        (9600, 960, 0, 3, PCM_FMT_S16, PCM_RATE_48000),      // 3 channels
        (9600, 960, 0, 0, PCM_FMT_S16, PCM_RATE_48000),      // no channel
        (960, 9600, 0, 2, PCM_FMT_S16, PCM_RATE_48000),      // period > buffer
        (9600, 0, 0, 2, PCM_FMT_S16, PCM_RATE_48000),        // empty period
        (9600, 962, 0, 2, PCM_FMT_S16, PCM_RATE_48000),      // not whole frames
        (9600, 960, 1 << 2, 2, PCM_FMT_S16, PCM_RATE_48000), // polling, not offered
        (MAX_BUFFER_BYTES + 4, 960, 0, 2, PCM_FMT_S16, PCM_RATE_48000),
    ];
    assert_eq!(
        r.set_params_raw(
            0,
            9600,
            960,
            PCM_F_EVT_XRUNS,
            2,
            PCM_FMT_S16,
            PCM_RATE_48000
        ),
        S_BAD_MSG,
        "playback does not offer overrun events"
    );
    for (buffer, period, features, channels, format, rate) in bad {
        assert_eq!(
            r.set_params_raw(1, buffer, period, features, channels, format, rate),
            S_BAD_MSG,
            "{buffer} {period} {features} {channels} {format} {rate}"
        );
    }
    assert_eq!(r.pcm(R_PCM_PREPARE, 1), S_OK, "the good parameters stand");
    let (_, params, _) = lock(&r.probe.opened)[0].clone();
    assert_eq!(
        params,
        StreamParams {
            buffer_bytes: 9600,
            period_bytes: 960,
            channels: 2,
            format: SampleFormat::S16,
            rate: 48000
        }
    );
}

#[test]
fn playback_reaches_the_ring_with_its_latency_and_paces_the_guest() {
    let mut r = rig();
    assert!(r.dev.ready(TX_QUEUE), "an idle stream answers at once");
    r.ready_to_run(0);
    let ring = r.ring(0);
    // The ring takes a period (960 bytes) or, more here, 20 ms (3840 bytes) ahead.
    let (used, status) = r.tx(0, &[7u8; 1920]);
    assert_eq!((used, status.status, status.latency_bytes), (8, S_OK, 1920));
    assert!(r.dev.ready(TX_QUEUE));
    let (_, status) = r.tx(0, &[8u8; 1920]);
    assert_eq!(status.latency_bytes, 3840);
    assert!(!r.dev.ready(TX_QUEUE), "full: the next message waits");
    let mut played = [0u8; 1924];
    ring.take_playback(&mut played);
    assert_eq!(&played[1918..1922], &[7, 7, 8, 8]);
    assert!(r.dev.ready(TX_QUEUE), "room again");
}

#[test]
fn what_the_guest_was_told_is_played_still_plays_after_the_release() {
    let mut r = rig();
    r.ready_to_run(0);
    assert_eq!(r.tx(0, &[5u8; 1920]).1.status, S_OK);
    assert_eq!(r.pcm(R_PCM_STOP, 0), S_OK);
    assert_eq!(r.pcm(R_PCM_RELEASE, 0), S_OK);
    let ring = r.ring(0);
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert!(
        !lock(&r.probe.log).contains(&"close"),
        "the backend still plays the end"
    );
    let mut end = [0u8; 1920];
    ring.take_playback(&mut end);
    assert_eq!(end, [5u8; 1920], "the whole end, not silence");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    while !lock(&r.probe.log).contains(&"close") {
        assert!(std::time::Instant::now() < deadline, "never closed");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert_eq!(
        ring.stats().underruns,
        0,
        "silence after a stop is no underrun"
    );
}

#[test]
fn a_capture_stream_stops_its_backend_at_once() {
    let mut r = rig();
    r.ready_to_run(1);
    assert_eq!(r.pcm(R_PCM_STOP, 1), S_OK);
    assert_eq!(*lock(&r.probe.log), ["open", "start", "stop"]);
}

#[test]
fn bad_playback_messages_fail_alone() {
    let mut r = rig();
    let (_, status) = r.tx(0, &[1; 16]);
    assert_eq!(status.status, S_BAD_MSG, "not prepared");
    r.ready_to_run(0);
    assert_eq!(r.tx(1, &[1; 16]).1.status, S_BAD_MSG, "the capture stream");
    assert_eq!(r.tx(9, &[1; 16]).1.status, S_BAD_MSG, "no such stream");
    assert_eq!(
        r.tx(0, &[1; 9604]).1.status,
        S_BAD_MSG,
        "larger than the buffer"
    );
    assert_eq!(r.ring(0).len(), 0, "none of it was kept");
    // No room for the status: nothing to say, nothing used.
    let descs = [RawDescriptor::from(Descriptor::new(DATA, 64, 0, 0))];
    let vq = MockSplitQueue::new(&r.mem, 16);
    let chain = vq.build_desc_chain(&descs).unwrap();
    assert_eq!(r.dev.process(TX_QUEUE, &r.mem, chain), 0);
    // No header: the status says so.
    let descs = [
        RawDescriptor::from(Descriptor::new(DATA, 2, 0, 0)),
        RawDescriptor::from(Descriptor::new(STATUS, 8, WRITE, 0)),
    ];
    let chain = vq.build_desc_chain(&descs).unwrap();
    assert_eq!(r.dev.process(TX_QUEUE, &r.mem, chain), 8);
    let status: PcmStatus = r.mem.read_obj(GuestAddress(STATUS)).unwrap();
    assert_eq!(status.status, S_BAD_MSG);
    assert_eq!(r.tx(0, &[1; 16]).1.status, S_OK, "the stream still plays");
}

#[test]
fn capture_waits_for_a_period_then_fills_the_message() {
    let mut r = rig();
    r.ready_to_run(1);
    let ring = r.ring(0);
    assert!(!r.dev.ready(RX_QUEUE), "nothing heard yet");
    let heard: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
    ring.put_capture(&heard);
    assert!(r.dev.ready(RX_QUEUE), "a period waits");
    let (used, data, status) = r.rx(1, 960);
    assert_eq!((used, status.status), (968, S_OK));
    assert_eq!(data, heard[..960]);
    assert_eq!(status.latency_bytes, 40, "what still waits");
    assert!(!r.dev.ready(RX_QUEUE));
    assert_eq!(r.rx(0, 960).2.status, S_BAD_MSG, "the playback stream");
    assert_eq!(r.rx(1, 9604).2.status, S_BAD_MSG, "larger than the buffer");
}

#[test]
fn stopped_streams_hold_their_messages_until_released() {
    let mut r = rig();
    r.ready_to_run(0);
    assert_eq!(r.pcm(R_PCM_STOP, 0), S_OK);
    let core = Mutex::new(r.dev);
    // Three messages in the ring while stopped: none is taken.
    let mut descs = Vec::new();
    for i in 0..3u16 {
        r.mem
            .write_slice(
                &0u32.to_le_bytes(),
                GuestAddress(DATA + u64::from(i) * 0x100),
            )
            .unwrap();
        descs.push(RawDescriptor::from(Descriptor::new(
            DATA + u64::from(i) * 0x100,
            64,
            NEXT,
            2 * i + 1,
        )));
        descs.push(RawDescriptor::from(Descriptor::new(
            STATUS + u64::from(i) * 0x10,
            8,
            WRITE,
            0,
        )));
    }
    let vq = MockSplitQueue::new(&r.mem, 16);
    vq.add_desc_chains(&descs, 0).unwrap();
    let mut q = vq.create_queue().unwrap();
    serve_queue(&mut q, TX_QUEUE, &r.mem, &core).unwrap();
    assert_eq!(q.next_used(), 0, "held while stopped");
    let mut release = R_PCM_RELEASE.to_le_bytes().to_vec();
    release.extend(0u32.to_le_bytes());
    let reply = lock(&core).control(&release, 4);
    assert_eq!(le32(&reply, 0), S_OK);
    serve_queue(&mut q, TX_QUEUE, &r.mem, &core).unwrap();
    assert_eq!(q.next_used(), 3, "all given back on release");
    for i in 0..3 {
        let status: PcmStatus = r.mem.read_obj(GuestAddress(STATUS + i * 0x10)).unwrap();
        assert_eq!(
            status,
            PcmStatus {
                status: S_OK,
                latency_bytes: 0
            }
        );
    }
}

#[test]
fn a_backend_that_refuses_leaves_the_stream_silent_not_broken() {
    let probe = Probe {
        refuse: true,
        ..Probe::default()
    };
    let mut r = Rig {
        mem: GuestMemory::from_ranges(&[(GuestAddress(0), 0x10_0000)]).unwrap(),
        dev: Snd::new(Box::new(probe.clone())).unwrap(),
        probe,
    };
    r.ready_to_run(0);
    assert_eq!(r.tx(0, &[1; 64]).1.status, S_OK);
    assert_eq!(r.pcm(R_PCM_STOP, 0), S_OK);
    assert_eq!(r.pcm(R_PCM_RELEASE, 0), S_OK);
}

#[test]
fn reset_closes_every_backend_stream() {
    let mut r = rig();
    r.ready_to_run(0);
    r.ready_to_run(1);
    r.dev.reset();
    let log = lock(&r.probe.log).clone();
    assert_eq!(log.iter().filter(|e| **e == "close").count(), 2);
    assert_eq!(r.dev.stream_state(0), Some(StreamState::Idle));
    assert_eq!(r.pcm(R_PCM_PREPARE, 0), S_BAD_MSG, "parameters forgotten");
}

#[test]
fn a_capture_overrun_is_told_once_as_an_xrun_event_when_asked_for() {
    let mut r = rig();
    assert_eq!(
        r.set_params_raw(
            1,
            9600,
            960,
            PCM_F_EVT_XRUNS,
            2,
            PCM_FMT_S16,
            PCM_RATE_48000
        ),
        S_OK
    );
    assert_eq!(r.pcm(R_PCM_PREPARE, 1), S_OK);
    assert_eq!(r.pcm(R_PCM_START, 1), S_OK);
    let ring = r.ring(0);
    assert!(!r.dev.ready(EVENT_QUEUE));
    // More than the guest's buffer (9600 bytes) arrives before it takes any.
    ring.put_capture(&[1u8; 12000]);
    assert!(r.dev.ready(EVENT_QUEUE), "an overrun to tell");
    let descs = [RawDescriptor::from(Descriptor::new(DATA, 8, WRITE, 0))];
    let vq = MockSplitQueue::new(&r.mem, 16);
    let chain = vq.build_desc_chain(&descs).unwrap();
    assert_eq!(r.dev.process(EVENT_QUEUE, &r.mem, chain), 8);
    let event: Event = r.mem.read_obj(GuestAddress(DATA)).unwrap();
    assert_eq!(
        event,
        Event {
            hdr: Hdr { code: EVT_PCM_XRUN },
            data: 1
        }
    );
    assert!(!r.dev.ready(EVENT_QUEUE), "told once");
    ring.put_capture(&[1u8; 960]);
    assert!(!r.dev.ready(EVENT_QUEUE), "the same episode");
    let _ = r.rx(1, 960);
    ring.put_capture(&[1u8; 1920]);
    assert!(r.dev.ready(EVENT_QUEUE), "a new overrun after a take");
}

#[test]
fn without_asking_the_driver_hears_of_no_overrun() {
    let mut r = rig();
    r.ready_to_run(1);
    r.ring(0).put_capture(&[1u8; 20000]);
    assert!(!r.dev.ready(EVENT_QUEUE));
}
