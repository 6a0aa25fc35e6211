//! A thread per request: Python's `ThreadingMixIn`.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::thread::{self, JoinHandle};

use super::{Concurrency, Job};

/// Runs every request on a thread of its own, named `Thread-N` like Python's.
///
/// - `daemon_threads` (default `false`): when `true`, `server_close` never waits for
///   handler threads, and the process may exit while they run.
/// - `block_on_close` (default `true`): `server_close` joins the handler threads that are
///   still running, so no request is cut off by closing the server.
///
/// Thread-per-request suits long-lived connections in modest numbers; for many short
/// requests under load prefer [`ThreadPool`](crate::ThreadPool), which bounds the threads.
#[derive(Debug)]
pub struct Threading {
    daemon_threads: bool,
    block_on_close: bool,
    threads: Mutex<Vec<JoinHandle<()>>>,
    spawned: AtomicUsize,
}

impl Threading {
    /// Python's defaults: `daemon_threads = False`, `block_on_close = True`.
    pub fn new() -> Self {
        Threading {
            daemon_threads: false,
            block_on_close: true,
            threads: Mutex::default(),
            spawned: AtomicUsize::new(0),
        }
    }

    /// Python's `daemon_threads`.
    pub fn daemon_threads(mut self, daemon: bool) -> Self {
        self.daemon_threads = daemon;
        self
    }

    /// Python's `block_on_close`.
    pub fn block_on_close(mut self, block: bool) -> Self {
        self.block_on_close = block;
        self
    }

    /// Handler threads that `server_close` would still join.
    pub fn active_threads(&self) -> usize {
        let mut threads = self.threads.lock().unwrap_or_else(PoisonError::into_inner);
        threads.retain(|t| !t.is_finished());
        threads.len()
    }
}

impl Default for Threading {
    fn default() -> Self {
        Threading::new()
    }
}

impl Concurrency for Threading {
    fn process_request(&self, job: Job) -> io::Result<()> {
        let n = self.spawned.fetch_add(1, Ordering::Relaxed) + 1;
        let thread = thread::Builder::new()
            .name(format!("Thread-{n}"))
            .spawn(move || {
                job.run();
            })?;
        if !self.daemon_threads && self.block_on_close {
            let mut threads = self.threads.lock().unwrap_or_else(PoisonError::into_inner);
            threads.retain(|t| !t.is_finished());
            threads.push(thread);
        }
        Ok(())
    }

    fn server_close(&self) {
        if self.daemon_threads || !self.block_on_close {
            return;
        }
        let threads =
            std::mem::take(&mut *self.threads.lock().unwrap_or_else(PoisonError::into_inner));
        let me = thread::current().id();
        for thread in threads {
            // A handler that closes its own server cannot wait for itself.
            if thread.thread().id() != me {
                let _ = thread.join();
            }
        }
    }
}
