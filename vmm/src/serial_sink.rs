//! Where the guest's serial output goes, shared by every incarnation of the machine (a
//! guest reboot rebuilds the devices, but a log file must not be truncated by it).

use crate::api::{EventSender, VmEvent};
use crate::config::SerialOutput;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// Bytes are delivered as an event at each newline, or when this many are pending.
const EVENT_CHUNK: usize = 256;

/// Why the serial output could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum SerialSinkError {
    /// The file could not be created or opened.
    #[error("Cannot open the serial output file {}: {source}.", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

enum Target {
    Stdout,
    Discard,
    File(std::fs::File),
    Events {
        events: EventSender,
        pending: Vec<u8>,
    },
}

/// A cloneable writer for the UART.
#[derive(Clone)]
pub struct SerialSink(Arc<Mutex<Target>>);

impl std::fmt::Debug for SerialSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SerialSink")
    }
}

impl SerialSink {
    pub(crate) fn open(
        output: &SerialOutput,
        events: &EventSender,
    ) -> Result<Self, SerialSinkError> {
        let target = match output {
            SerialOutput::Stdio => Target::Stdout,
            SerialOutput::None => Target::Discard,
            SerialOutput::File(path) => Target::File(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|source| SerialSinkError::File {
                        path: path.clone(),
                        source,
                    })?,
            ),
            SerialOutput::Events => Target::Events {
                events: events.clone(),
                pending: Vec::new(),
            },
        };
        Ok(Self(Arc::new(Mutex::new(target))))
    }

    /// Delivers whatever is still buffered (at VM stop).
    pub fn finish(&self) {
        let mut t = crate::devices::bus::lock(&self.0);
        match &mut *t {
            Target::Events { events, pending } if !pending.is_empty() => {
                events.send(VmEvent::SerialOutput(std::mem::take(pending)));
            }
            Target::Stdout => {
                let _ = std::io::stdout().flush();
            }
            Target::File(f) => {
                let _ = f.flush();
            }
            _ => {}
        }
    }
}

impl Write for SerialSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut t = crate::devices::bus::lock(&self.0);
        match &mut *t {
            Target::Stdout => std::io::stdout().write_all(buf)?,
            Target::Discard => {}
            Target::File(f) => f.write_all(buf)?,
            Target::Events { events, pending } => {
                pending.extend_from_slice(buf);
                if pending.len() >= EVENT_CHUNK || buf.contains(&b'\n') {
                    events.send(VmEvent::SerialOutput(std::mem::take(pending)));
                }
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        // The UART flushes after every byte; only the terminal needs it (for prompts).
        if let Target::Stdout = &*crate::devices::bus::lock(&self.0) {
            std::io::stdout().flush()?;
        }
        Ok(())
    }
}
