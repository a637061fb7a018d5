//! A relay between QEMU's `-netdev vhost-user` and our backend, for one reason: QEMU's
//! virtio-net sends SET_VRING_ENABLE as soon as the guest picks its features, before it
//! has sent any SET_FEATURES, and for a network card that message is the only one that
//! enables the rings (QEMU starts net backends without enabling them again). The vhost
//! crate refuses SET_VRING_ENABLE until `VHOST_USER_F_PROTOCOL_FEATURES` is acknowledged
//! in SET_FEATURES, and closes the connection. The relay passes every message through,
//! file descriptors included, except that it holds each SET_VRING_ENABLE that comes
//! before SET_FEATURES and hands it on right after SET_FEATURES. QEMU asks for a reply to
//! it (it does whatever the protocol features say): the relay acknowledges a held message
//! itself and hands it on without the request for a reply, so that the backend's own
//! acknowledgement does not reach QEMU twice.

use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use vmm_sys_util::sock_ctrl_msg::ScmSocket;

/// `VHOST_USER_SET_FEATURES`.
const SET_FEATURES: u32 = 2;
/// `VHOST_USER_SET_VRING_ENABLE`.
const SET_VRING_ENABLE: u32 = 18;
/// The header flags: protocol version 1.
const VERSION: u32 = 1;
/// The header flags: this is a reply.
const REPLY: u32 = 1 << 2;
/// The header flags: the frontend waits for an acknowledgement.
const NEED_REPLY: u32 = 1 << 3;
/// `VHOST_USER_F_PROTOCOL_FEATURES`.
const PROTOCOL_FEATURES: u64 = 1 << 30;
/// request, flags, size.
const HEADER: usize = 12;
/// No frontend message is longer (a memory table of 8 regions is 264 bytes).
const MAX_PAYLOAD: usize = 64 << 10;
/// The most descriptors one message carries (a memory table of 8 regions).
const MAX_FDS: usize = 32;

/// One frontend message: its bytes and the descriptors that came with them.
#[derive(Debug)]
struct Message {
    bytes: Vec<u8>,
    fds: Vec<OwnedFd>,
}

impl Message {
    fn request(&self) -> u32 {
        u32::from_le_bytes([self.bytes[0], self.bytes[1], self.bytes[2], self.bytes[3]])
    }

    fn flags(&self) -> u32 {
        u32::from_le_bytes([self.bytes[4], self.bytes[5], self.bytes[6], self.bytes[7]])
    }

    fn set_flags(&mut self, flags: u32) {
        self.bytes[4..8].copy_from_slice(&flags.to_le_bytes());
    }

    /// The acknowledgement of success for this message.
    fn ack(&self) -> Self {
        let mut bytes = Vec::with_capacity(HEADER + 8);
        bytes.extend_from_slice(&self.request().to_le_bytes());
        bytes.extend_from_slice(&(VERSION | REPLY).to_le_bytes());
        bytes.extend_from_slice(&8u32.to_le_bytes());
        bytes.extend_from_slice(&0u64.to_le_bytes());
        Self {
            bytes,
            fds: Vec::new(),
        }
    }

    /// The payload's first 8 bytes as a number (SET_FEATURES' features), if it has them.
    fn value(&self) -> Option<u64> {
        let b = self.bytes.get(HEADER..HEADER + 8)?;
        Some(u64::from_le_bytes(b.try_into().ok()?))
    }

    fn send(&self, to: &UnixStream) -> io::Result<()> {
        let fds: Vec<RawFd> = self.fds.iter().map(AsRawFd::as_raw_fd).collect();
        let sent = to
            .send_with_fds(&[&self.bytes[..]], &fds)
            .map_err(|e| io::Error::from_raw_os_error(e.errno()))?;
        if sent == self.bytes.len() {
            return Ok(());
        }
        // The descriptors went with the first part; the rest is plain bytes.
        let mut rest = &self.bytes[sent..];
        io::copy(&mut rest, &mut &*to).map(|_| ())
    }
}

/// Receives up to `buf.len()` bytes and the descriptors sent with them.
fn receive(from: &UnixStream, buf: &mut [u8]) -> io::Result<(usize, Vec<OwnedFd>)> {
    let mut raw = [-1 as RawFd; MAX_FDS];
    let mut iov = [libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    }];
    // SAFETY: the one iovec points at `buf`, which is writable for `buf.len()` bytes and
    // outlives the call; `raw` has room for MAX_FDS descriptors, the count passed.
    let (n, count) = unsafe { from.recv_with_fds(&mut iov, &mut raw) }
        .map_err(|e| io::Error::from_raw_os_error(e.errno()))?;
    let fds = raw[..count.min(MAX_FDS)]
        .iter()
        // SAFETY: each descriptor was just received through SCM_RIGHTS, so it is open and
        // owned by nothing else in this process.
        .map(|&fd| unsafe { OwnedFd::from_raw_fd(fd) })
        .collect();
    Ok((n, fds))
}

/// Reads one whole message from the frontend; `None` when it has gone.
fn read_message(from: &UnixStream) -> io::Result<Option<Message>> {
    let mut header = [0u8; HEADER];
    let (n, mut fds) = receive(from, &mut header)?;
    if n == 0 {
        return Ok(None);
    }
    if n < HEADER {
        (&*from).read_exact(&mut header[n..])?;
    }
    let size = u32::from_le_bytes([header[8], header[9], header[10], header[11]]) as usize;
    if size > MAX_PAYLOAD {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a vhost-user message of {size} bytes is longer than any"),
        ));
    }
    let mut bytes = header.to_vec();
    bytes.resize(HEADER + size, 0);
    let mut got = 0;
    while got < size {
        let (n, more) = receive(from, &mut bytes[HEADER + got..])?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        got += n;
        fds.extend(more);
    }
    Ok(Some(Message { bytes, fds }))
}

/// The frontend's end, written by both directions (replies, and the relay's own
/// acknowledgements) one message at a time.
type Front = std::sync::Mutex<UnixStream>;

fn send_front(front: &Front, message: &Message) -> io::Result<()> {
    let stream = front
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    message.send(&stream)
}

/// Passes the frontend's messages to the backend, holding early SET_VRING_ENABLEs (see
/// the module comment), until either side goes.
fn frontend_to_backend(from: &UnixStream, front: &Front, back: &UnixStream) -> io::Result<()> {
    let mut features_set = false;
    let mut held: Vec<Message> = Vec::new();
    while let Some(mut message) = read_message(from)? {
        match message.request() {
            SET_VRING_ENABLE if !features_set => {
                let flags = message.flags();
                if flags & NEED_REPLY != 0 {
                    send_front(front, &message.ack())?;
                    message.set_flags(flags & !NEED_REPLY);
                }
                held.push(message);
            }
            SET_FEATURES => {
                message.send(back)?;
                features_set = message.value().is_some_and(|f| f & PROTOCOL_FEATURES != 0);
                // Without protocol features the rings start with SET_FEATURES itself, and
                // the backend would refuse the held messages: they go.
                for early in held.drain(..) {
                    if features_set {
                        early.send(back)?;
                    }
                }
            }
            _ => message.send(back)?,
        }
    }
    Ok(())
}

/// Passes the backend's replies to the frontend, one whole message at a time (the relay's
/// own acknowledgements go between them).
fn backend_to_frontend(back: &UnixStream, front: &Front) -> io::Result<()> {
    while let Some(reply) = read_message(back)? {
        send_front(front, &reply)?;
    }
    Ok(())
}

/// Relays between `front` (QEMU) and `back` (the vhost crate's end) until either side
/// closes; then closes both, so that the other side sees the end too.
pub fn relay(front: UnixStream, back: UnixStream) -> io::Result<()> {
    let writer = std::sync::Arc::new(std::sync::Mutex::new(front.try_clone()?));
    let (writer2, back2) = (writer.clone(), back.try_clone()?);
    let replies = std::thread::Builder::new()
        .name("vhost-user replies".into())
        .spawn(move || {
            let r = backend_to_frontend(&back2, &writer2);
            let _ = back2.shutdown(std::net::Shutdown::Both);
            let stream = writer2
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let _ = stream.shutdown(std::net::Shutdown::Both);
            r
        })?;
    let r = frontend_to_backend(&front, &writer, &back);
    let _ = back.shutdown(std::net::Shutdown::Both);
    let _ = front.shutdown(std::net::Shutdown::Both);
    let replies = replies.join().unwrap_or(Ok(()));
    r.and(replies)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::io::Write;

    fn message(request: u32, payload: &[u8]) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&request.to_le_bytes());
        m.extend_from_slice(&1u32.to_le_bytes());
        m.extend_from_slice(&u32::try_from(payload.len()).unwrap().to_le_bytes());
        m.extend_from_slice(payload);
        m
    }

    fn enable(index: u32) -> Vec<u8> {
        let mut p = index.to_le_bytes().to_vec();
        p.extend_from_slice(&1u32.to_le_bytes());
        message(SET_VRING_ENABLE, &p)
    }

    /// Everything the backend end receives until the relay closes it.
    fn run(front_sends: impl FnOnce(&mut UnixStream)) -> Vec<u8> {
        let (mut qemu, front) = UnixStream::pair().unwrap();
        let (back, mut backend) = UnixStream::pair().unwrap();
        let relay = std::thread::spawn(move || relay(front, back));
        front_sends(&mut qemu);
        drop(qemu);
        let mut got = Vec::new();
        backend.read_to_end(&mut got).unwrap();
        relay.join().unwrap().unwrap();
        got
    }

    #[test]
    fn early_ring_enables_wait_for_set_features_and_follow_it_in_order() {
        let features = message(SET_FEATURES, &(PROTOCOL_FEATURES | 1 << 32).to_le_bytes());
        let got = run(|q| {
            q.write_all(&message(1, &[])).unwrap();
            q.write_all(&enable(0)).unwrap();
            q.write_all(&enable(1)).unwrap();
            q.write_all(&features).unwrap();
            q.write_all(&enable(0)).unwrap();
        });
        let want = [message(1, &[]), features, enable(0), enable(1), enable(0)].concat();
        assert_eq!(got, want);
    }

    #[test]
    fn a_held_enable_that_asks_for_a_reply_is_acknowledged_by_the_relay_and_passed_on_without_asking(
    ) {
        let (mut qemu, front) = UnixStream::pair().unwrap();
        let (back, mut backend) = UnixStream::pair().unwrap();
        let relay = std::thread::spawn(move || relay(front, back));
        let mut asking = enable(0);
        asking[4..8].copy_from_slice(&(VERSION | NEED_REPLY).to_le_bytes());
        qemu.write_all(&asking).unwrap();
        let mut ack = [0u8; HEADER + 8];
        qemu.read_exact(&mut ack).unwrap();
        let mut want = SET_VRING_ENABLE.to_le_bytes().to_vec();
        want.extend_from_slice(&(VERSION | REPLY).to_le_bytes());
        want.extend_from_slice(&8u32.to_le_bytes());
        want.extend_from_slice(&0u64.to_le_bytes());
        assert_eq!(ack.to_vec(), want, "success, from the relay");
        let features = message(SET_FEATURES, &PROTOCOL_FEATURES.to_le_bytes());
        qemu.write_all(&features).unwrap();
        drop(qemu);
        let mut got = Vec::new();
        backend.read_to_end(&mut got).unwrap();
        relay.join().unwrap().unwrap();
        assert_eq!(
            got,
            [features, enable(0)].concat(),
            "handed on without NEED_REPLY"
        );
    }

    #[test]
    fn without_protocol_features_the_held_enables_are_dropped() {
        let features = message(SET_FEATURES, &(1u64 << 32).to_le_bytes());
        let got = run(|q| {
            q.write_all(&enable(0)).unwrap();
            q.write_all(&features).unwrap();
        });
        assert_eq!(got, features);
    }

    #[test]
    fn descriptors_travel_with_their_message() {
        let (mut qemu, front) = UnixStream::pair().unwrap();
        let (back, backend) = UnixStream::pair().unwrap();
        let relay = std::thread::spawn(move || relay(front, back));
        let file = tempfile::tempfile().unwrap();
        (&file).write_all(b"shared").unwrap();
        let call = message(13, &0u64.to_le_bytes());
        qemu.send_with_fds(&[&call[..]], &[file.as_raw_fd()])
            .unwrap();
        let mut buf = vec![0u8; call.len()];
        let (n, fds) = receive(&backend, &mut buf).unwrap();
        assert_eq!((n, buf), (call.len(), call));
        assert_eq!(fds.len(), 1);
        let mut text = String::new();
        let mut f = std::fs::File::from(fds.into_iter().next().unwrap());
        std::io::Seek::rewind(&mut f).unwrap();
        f.read_to_string(&mut text).unwrap();
        assert_eq!(text, "shared");
        // A reply goes back; the frontend leaving ends the relay.
        let reply = message(1, &7u64.to_le_bytes());
        (&backend).write_all(&reply).unwrap();
        let mut got = vec![0u8; reply.len()];
        qemu.read_exact(&mut got).unwrap();
        assert_eq!(got, reply);
        drop(qemu);
        relay.join().unwrap().unwrap();
    }

    #[test]
    fn an_impossible_length_ends_the_relay_with_an_error() {
        let (mut qemu, front) = UnixStream::pair().unwrap();
        let (back, _backend) = UnixStream::pair().unwrap();
        let relay = std::thread::spawn(move || relay(front, back));
        let mut m = message(1, &[]);
        m[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        qemu.write_all(&m).unwrap();
        let e = relay.join().unwrap().unwrap_err();
        assert!(e.to_string().contains("longer than any"), "{e}");
    }
}
