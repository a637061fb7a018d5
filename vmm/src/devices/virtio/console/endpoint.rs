//! Where a virtio-console port leads on the host: a file (output only), standard I/O, or
//! a Unix socket that one client at a time attaches to (what it sends is typed into the
//! guest; the guest's output goes to it, and is dropped while nobody is attached). The
//! same endpoints serve the in-process device and `phyllome-vmm device console`.

use super::{Console, ConsoleInput};
use crate::devices::bus::lock;
use crate::one_client::OneClientListener;
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

/// Why a console endpoint could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    /// The output file.
    #[error("Cannot open the console output file {}: {source}.", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The socket.
    #[error("Cannot listen for console clients on {}: {source}. Is another VM using it?", path.display())]
    Socket {
        /// The socket path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The console itself.
    #[error("Cannot create the console: {0}.")]
    Console(#[source] std::io::Error),
}

/// A console port's host side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum ConsoleEndpoint {
    /// Standard output; standard input is typed into the guest.
    Stdio,
    /// Output appended to a file; no input.
    File(PathBuf),
    /// A Unix socket one client at a time attaches to.
    Socket(PathBuf),
}

impl FromStr for ConsoleEndpoint {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "stdio" {
            return Ok(Self::Stdio);
        }
        match s.split_once(':') {
            Some(("file", p)) if !p.is_empty() => Ok(Self::File(p.into())),
            Some(("socket", p)) if !p.is_empty() => Ok(Self::Socket(p.into())),
            _ => Err(format!(
                "'{s}' is not a console endpoint; use stdio, file:PATH or socket:PATH"
            )),
        }
    }
}

impl std::fmt::Display for ConsoleEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Stdio => f.write_str("stdio"),
            Self::File(p) => write!(f, "file:{}", p.display()),
            Self::Socket(p) => write!(f, "socket:{}", p.display()),
        }
    }
}

impl TryFrom<String> for ConsoleEndpoint {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<ConsoleEndpoint> for String {
    fn from(e: ConsoleEndpoint) -> String {
        e.to_string()
    }
}

/// The attached socket client, if any.
type Client = Arc<Mutex<Option<UnixStream>>>;

/// Guest output to the attached client; a client that stops reading is let go.
struct ClientWriter(Client);

impl Write for ClientWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut client = lock(&self.0);
        if let Some(stream) = client.as_mut() {
            if stream.write_all(buf).is_err() {
                *client = None;
            }
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// What feeds a console from the host (the socket's listener); stopped on drop.
#[derive(Debug, Default)]
pub struct EndpointThreads {
    listener: Option<OneClientListener>,
    client: Option<Client>,
}

impl EndpointThreads {
    /// Whether a socket client is attached now.
    pub fn client_attached(&self) -> bool {
        self.client.as_ref().is_some_and(|c| lock(c).is_some())
    }
}

/// A console wired to `endpoint`, and the threads that feed it (keep them as long as
/// the console). Standard input is not joined on drop: a read on it cannot be cancelled.
pub fn open(endpoint: &ConsoleEndpoint) -> Result<(Console, EndpointThreads), EndpointError> {
    let mut threads = EndpointThreads::default();
    match endpoint {
        ConsoleEndpoint::File(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|source| EndpointError::File {
                    path: path.clone(),
                    source,
                })?;
            let (console, _) = Console::new(Box::new(file)).map_err(EndpointError::Console)?;
            Ok((console, threads))
        }
        ConsoleEndpoint::Stdio => {
            let (console, input) =
                Console::new(Box::new(std::io::stdout())).map_err(EndpointError::Console)?;
            // Detached: it ends with the process or at end of input.
            let _ = std::thread::Builder::new()
                .name("console-stdin".into())
                .spawn(move || feed(std::io::stdin(), &input));
            Ok((console, threads))
        }
        ConsoleEndpoint::Socket(path) => {
            let client: Client = Arc::new(Mutex::new(None));
            let (console, input) = Console::new(Box::new(ClientWriter(client.clone())))
                .map_err(EndpointError::Console)?;
            let attached = client.clone();
            let listener = OneClientListener::listen(path, "console-socket", move |stream| {
                let Ok(reader) = stream.try_clone() else {
                    return;
                };
                *lock(&attached) = Some(stream);
                feed(reader, &input);
                *lock(&attached) = None;
            })
            .map_err(|source| EndpointError::Socket {
                path: path.clone(),
                source,
            })?;
            threads.listener = Some(listener);
            threads.client = Some(client);
            Ok((console, threads))
        }
    }
}

/// Types everything `source` sends into the guest until it ends.
fn feed(mut source: impl Read, input: &ConsoleInput) {
    let mut buf = [0u8; 256];
    while let Ok(n) = source.read(&mut buf) {
        if n == 0 {
            break;
        }
        input.push(&buf[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse_and_print_back() {
        for s in ["stdio", "file:/tmp/c.log", "socket:/run/c.sock"] {
            assert_eq!(s.parse::<ConsoleEndpoint>().unwrap().to_string(), s);
        }
        let e = "tcp:1234".parse::<ConsoleEndpoint>().unwrap_err();
        assert!(e.contains("socket:PATH"), "{e}");
    }

    #[test]
    fn a_socket_client_types_into_the_console_and_its_threads_end_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.sock");
        let (console, threads) = open(&ConsoleEndpoint::Socket(path.clone())).unwrap();
        let mut client = UnixStream::connect(&path).unwrap();
        client.write_all(b"ls\n").unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !console.has_input() {
            assert!(std::time::Instant::now() < deadline, "input never arrived");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        drop(threads);
        assert!(!path.exists(), "the socket is removed");
        // The client sees the end.
        let mut rest = Vec::new();
        client
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        assert_eq!(client.read_to_end(&mut rest).unwrap(), 0);
        let _ = console;
    }

    #[test]
    fn guest_output_reaches_the_attached_client_and_is_dropped_without_one() {
        let (mine, theirs) = UnixStream::pair().unwrap();
        let client: Client = Arc::new(Mutex::new(None));
        let mut w = ClientWriter(client.clone());
        assert_eq!(w.write(b"lost").unwrap(), 4, "nobody attached: dropped");
        *lock(&client) = Some(mine);
        w.write_all(b"login: ").unwrap();
        let mut got = [0u8; 7];
        (&theirs).read_exact(&mut got).unwrap();
        assert_eq!(&got, b"login: ");
        drop(theirs);
        w.write_all(b"x").unwrap();
        w.write_all(b"y").unwrap();
        assert!(lock(&client).is_none(), "a gone client is let go");
    }

    #[test]
    fn a_stale_socket_file_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.sock");
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        assert!(path.exists());
        let (_console, _threads) = open(&ConsoleEndpoint::Socket(path.clone())).unwrap();
        assert!(UnixStream::connect(&path).is_ok());
    }

    #[test]
    fn a_busy_socket_path_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.sock");
        let _first = open(&ConsoleEndpoint::Socket(path.clone())).unwrap();
        let e = open(&ConsoleEndpoint::Socket(path)).unwrap_err();
        assert!(e.to_string().contains("c.sock"), "{e}");
    }
}
