//! Large transfers of one batch on several cores. A guest reading a file sequentially keeps
//! several large requests in flight; done one after another on the queue's worker, each is a
//! page-cache copy that keeps one core busy while the others idle (qemu-storage-daemon hands
//! each request to a thread pool). Here the worker and a few helper threads take the batch's
//! transfers from a shared list until it is empty, and the worker waits for every one
//! before the requests complete. Around the page cache (`cache=none`) a transfer mostly
//! waits for the disk, not a core: there more helpers keep more requests at the disk at
//! once, small ones included.

use super::iov;
use crate::devices::bus::lock;
use std::collections::VecDeque;
use std::os::fd::RawFd;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};

/// Most helper threads per device (besides its worker) for copies, which keep a core busy.
const MAX_COPY_HELPERS: usize = 3;

/// Helper threads for transfers that wait for the disk (direct I/O): the worker and these
/// keep up to 16 requests at the disk, a guest's usual queue depth.
const WAIT_HELPERS: usize = 15;

/// One read or write between a file and guest memory.
#[derive(Debug)]
pub struct Transfer {
    /// The disk's open file.
    pub fd: RawFd,
    /// The guest's buffers.
    pub iovecs: Vec<libc::iovec>,
    /// Where in the file.
    pub offset: u64,
    /// A write (else a read).
    pub write: bool,
}

// SAFETY: the iovecs point into guest memory and `fd` is the disk's open file. The thread
// that hands transfers to helpers (`Pool::run`) does not return before every transfer it
// handed out has reported back, or every helper has let go of the batch (it can run no
// more), so the memory stays mapped, the file open, and nobody else uses those bytes.
unsafe impl Send for Transfer {}

impl Transfer {
    fn run(self) -> std::io::Result<usize> {
        iov::transfer(self.fd, self.iovecs, self.offset, self.write)
    }
}

type Batch = Arc<Mutex<VecDeque<(usize, Transfer)>>>;
type Results = Sender<(usize, std::io::Result<usize>)>;

/// The helper threads of one device, started on its first batch and ended with it.
#[derive(Debug)]
pub struct Pool {
    helpers: Vec<Sender<(Batch, Results)>>,
    started: bool,
    /// How many helpers to start.
    wanted: usize,
}

impl Default for Pool {
    fn default() -> Self {
        Self::for_copies()
    }
}

fn helper(batches: &Receiver<(Batch, Results)>) {
    for (batch, results) in batches {
        loop {
            let next = lock(&batch).pop_front();
            let Some((i, transfer)) = next else { break };
            let _ = results.send((i, transfer.run()));
        }
    }
}

impl Pool {
    /// Helpers for page-cache copies: one per other core, at most three.
    pub fn for_copies() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        Self::with_helpers(cores.saturating_sub(1).min(MAX_COPY_HELPERS))
    }

    /// Helpers for transfers that wait for the disk (direct I/O), whatever the cores.
    pub fn for_waits() -> Self {
        Self::with_helpers(WAIT_HELPERS)
    }

    fn with_helpers(wanted: usize) -> Self {
        Self {
            helpers: Vec::new(),
            started: false,
            wanted,
        }
    }

    fn helpers(&mut self) -> &[Sender<(Batch, Results)>] {
        if !self.started {
            self.started = true;
            for _ in 0..self.wanted {
                let (tx, rx) = channel();
                match std::thread::Builder::new()
                    .name("virtio-blk-io".into())
                    .spawn(move || helper(&rx))
                {
                    Ok(_) => self.helpers.push(tx),
                    Err(e) => {
                        log::warn!(
                            "virtio-blk: no helper thread ({e}); transfers stay on one core"
                        );
                        break;
                    }
                }
            }
        }
        &self.helpers
    }

    /// Carries out `transfers`, on as many cores as there are transfers and helpers; returns
    /// each one's result, in order.
    pub fn run(&mut self, transfers: Vec<Transfer>) -> Vec<std::io::Result<usize>> {
        let n = transfers.len();
        let helpers = self.helpers();
        if n < 2 || helpers.is_empty() {
            return transfers.into_iter().map(Transfer::run).collect();
        }
        let batch: Batch = Arc::new(Mutex::new(transfers.into_iter().enumerate().collect()));
        let (tx, rx) = channel();
        let mut handed = 0;
        for h in helpers.iter().take(n - 1) {
            if h.send((batch.clone(), tx.clone())).is_ok() {
                handed += 1;
            }
        }
        // Only the helpers hold senders now: if they all go, the wait below ends.
        drop(tx);
        let mut results: Vec<Option<std::io::Result<usize>>> = (0..n).map(|_| None).collect();
        let mut own = 0;
        loop {
            let next = lock(&batch).pop_front();
            let Some((i, transfer)) = next else { break };
            results[i] = Some(transfer.run());
            own += 1;
        }
        if handed > 0 {
            // Every transfer was taken; those the helpers took report back here.
            for _ in own..n {
                let Ok((i, result)) = rx.recv() else { break };
                results[i] = Some(result);
            }
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(std::io::Error::other("a helper thread went away"))))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::FileExt;

    fn iovec(buf: &mut [u8]) -> libc::iovec {
        libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        }
    }

    #[test]
    fn a_batch_of_reads_and_writes_moves_every_byte_and_reports_in_order() {
        let file = tempfile::tempfile().unwrap();
        let len = 256 << 10;
        let fill: Vec<u8> = (0..8 * len)
            .map(|i| u8::try_from(i * 13 % 251).unwrap())
            .collect();
        file.write_all_at(&fill, 0).unwrap();
        let mut pool = Pool::default();
        let mut bufs: Vec<Vec<u8>> = (0..8).map(|_| vec![0u8; len]).collect();
        let mut ones = vec![1u8; len];
        let mut transfers: Vec<Transfer> = bufs
            .iter_mut()
            .enumerate()
            .map(|(i, b)| Transfer {
                fd: file.as_raw_fd(),
                iovecs: vec![iovec(b)],
                offset: (i * len) as u64,
                write: false,
            })
            .collect();
        // A write far from the reads, and a read past the end of the file that must fail.
        transfers.push(Transfer {
            fd: file.as_raw_fd(),
            iovecs: vec![iovec(&mut ones)],
            offset: (16 * len) as u64,
            write: true,
        });
        let mut past = vec![0u8; 4096];
        transfers.push(Transfer {
            fd: file.as_raw_fd(),
            iovecs: vec![iovec(&mut past)],
            offset: (32 * len) as u64,
            write: false,
        });
        let results = pool.run(transfers);
        assert_eq!(results.len(), 10);
        for r in &results[..9] {
            assert_eq!(*r.as_ref().unwrap(), len);
        }
        assert!(results[9].is_err(), "the read past the end failed alone");
        assert_eq!(bufs.concat(), fill);
        let mut back = vec![0u8; len];
        file.read_exact_at(&mut back, (16 * len) as u64).unwrap();
        assert!(back.iter().all(|&b| b == 1));
        if std::thread::available_parallelism().map_or(1, usize::from) > 1 {
            assert!(!pool.helpers.is_empty(), "helpers took part");
        }
    }
}
