//! A Unix socket served to one client at a time, on a thread of its own, stopped cleanly
//! on drop: the console port's socket and the display's console connection both work
//! this way. A socket file left by a crashed process is replaced; one in use is not.

use crate::devices::bus::lock;
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
        let _ = UnixStream::connect(&self.path);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}
