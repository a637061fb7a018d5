//! A Unix socket served to one client at a time, on a thread of its own, stopped cleanly
//! on drop: the console port's socket and the display's console connection both work
//! this way. A socket file left by a crashed process is replaced; one in use is not.

use crate::devices::bus::lock;
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// The listener and its thread.
#[derive(Debug)]
pub struct OneClientListener {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    current: Arc<Mutex<Option<UnixStream>>>,
    /// The listening socket, to wake the accepting thread at stop even when the socket
    /// file has gone (a removed folder): shutting a listener down ends a blocked accept.
    wake: UnixListener,
    thread: Option<JoinHandle<()>>,
}

/// Listens on `path`, replacing a socket file nobody listens on any more (left by a
/// process that crashed), but never one in use.
pub fn bind(path: &Path) -> std::io::Result<UnixListener> {
    match UnixListener::bind(path) {
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            let stale = matches!(
                UnixStream::connect(path),
                Err(c) if c.kind() == std::io::ErrorKind::ConnectionRefused
            );
            if !stale {
                return Err(e);
            }
            std::fs::remove_file(path)?;
            UnixListener::bind(path)
        }
        other => other,
    }
}

impl OneClientListener {
    /// Listens on `path`; each client in turn is handed to `serve`, on the listener's
    /// thread (named `name`), which returns when it is done with it.
    pub fn listen(
        path: &Path,
        name: &str,
        serve: impl Fn(UnixStream) + Send + 'static,
    ) -> std::io::Result<Self> {
        let listener = bind(path)?;
        let wake = listener.try_clone()?;
        let stop = Arc::new(AtomicBool::new(false));
        let current: Arc<Mutex<Option<UnixStream>>> = Arc::new(Mutex::new(None));
        let (st, cur) = (stop.clone(), current.clone());
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                for stream in listener.incoming() {
                    if st.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(stream) = stream else { continue };
                    *lock(&cur) = stream.try_clone().ok();
                    // Stopping sets the flag before it cuts the current client off: a
                    // client taken after that must not keep this thread busy.
                    if st.load(Ordering::SeqCst) {
                        return;
                    }
                    serve(stream);
                    *lock(&cur) = None;
                }
            })?;
        Ok(Self {
            path: path.to_owned(),
            stop,
            current,
            wake,
            thread: Some(thread),
        })
    }
}

impl Drop for OneClientListener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(client) = lock(&self.current).take() {
            let _ = client.shutdown(std::net::Shutdown::Both);
        }
        // Wakes the accepting thread, which then sees the flag.
        // SAFETY: `wake` owns this open socket descriptor for the whole call; shutdown
        // touches no memory and only ends the socket's pending and future accepts.
        unsafe {
            libc::shutdown(self.wake.as_raw_fd(), libc::SHUT_RDWR);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn stops_even_when_its_socket_file_is_gone_and_a_client_is_attached() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let listener = OneClientListener::listen(&path, "test-listener", |mut s| {
            let mut b = [0u8; 1];
            while matches!(s.read(&mut b), Ok(1)) {}
        })
        .unwrap();
        let mut client = UnixStream::connect(&path).unwrap();
        client.write_all(b"x").unwrap();
        drop(dir);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            drop(listener);
            let _ = tx.send(());
        });
        assert!(
            rx.recv_timeout(std::time::Duration::from_secs(5)).is_ok(),
            "the listener did not stop"
        );
        // The client was cut off: an end of stream if it had been taken, a reset if it was
        // still waiting to be.
        let mut b = [0u8; 1];
        let cut = client.read(&mut b);
        assert!(
            matches!(&cut, Ok(0))
                || matches!(&cut, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset),
            "{cut:?}"
        );
    }

    #[test]
    fn stops_when_idle_with_its_socket_file_gone() {
        let dir = tempfile::tempdir().unwrap();
        let listener =
            OneClientListener::listen(&dir.path().join("s.sock"), "test-idle", |_| {}).unwrap();
        drop(dir);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            drop(listener);
            let _ = tx.send(());
        });
        assert!(rx.recv_timeout(std::time::Duration::from_secs(5)).is_ok());
    }
}
