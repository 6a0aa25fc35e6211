//! A process per request: Python's `ForkingMixIn`.

use std::collections::HashSet;
use std::io;
use std::sync::{Mutex, MutexGuard, PoisonError};

use nix::errno::Errno;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::{Concurrency, Job};
use crate::sys;

/// Runs every request in a forked child process, like Python's `ForkingMixIn`.
///
/// - `max_children` (default 40): at that many live children, `process_request` waits for
///   one to exit before forking again.
/// - `block_on_close` (default `true`): `server_close` waits for every child.
///
/// Children are reaped on every turn of the serve loop and before every fork, so none stays
/// a zombie longer than one `poll_interval`. The child runs the handler, `shutdown_request`
/// and `handle_error`, then exits with `_exit` (status 0, or 1 if the request failed)
/// without running destructors or `atexit` handlers it inherited.
///
/// The usual caveats of `fork` in a multi-threaded process apply: only the serving thread
/// exists in the child, so a lock another thread held at the fork stays held there.
/// Waiting at `max_children` reaps any child of the process, as Python does.
#[derive(Debug)]
pub struct Forking {
    max_children: usize,
    block_on_close: bool,
    active: Mutex<HashSet<Pid>>,
}

impl Forking {
    /// Python's defaults: `max_children = 40`, `block_on_close = True`.
    pub fn new() -> Self {
        Forking {
            max_children: 40,
            block_on_close: true,
            active: Mutex::default(),
        }
    }

    /// Python's `max_children` (at least 1).
    pub fn max_children(mut self, max: usize) -> Self {
        self.max_children = max.max(1);
        self
    }

    /// Python's `block_on_close`.
    pub fn block_on_close(mut self, block: bool) -> Self {
        self.block_on_close = block;
        self
    }

    /// Children forked and not yet reaped (Python's `len(active_children)`).
    pub fn active_children(&self) -> usize {
        self.lock().len()
    }

    /// Reaps exited children; first waits while `max_children` are alive. With `blocking`,
    /// waits for every child. Python's `collect_children`.
    pub fn collect_children(&self, blocking: bool) {
        // The lock is never held across a blocking wait, so `active_children` answers at once.
        while self.active_children() >= self.max_children {
            match waitpid(None::<Pid>, None) {
                Ok(status) => {
                    if let Some(pid) = status.pid() {
                        self.lock().remove(&pid);
                    }
                }
                Err(Errno::EINTR) => {}
                Err(Errno::ECHILD) => self.lock().clear(),
                Err(_) => break,
            }
        }
        let flags = if blocking {
            None
        } else {
            Some(WaitPidFlag::WNOHANG)
        };
        let children: Vec<Pid> = self.lock().iter().copied().collect();
        for pid in children {
            if reap(pid, flags) {
                self.lock().remove(&pid);
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashSet<Pid>> {
        self.active.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Waits for `pid` as `flags` say; `true` once it is gone.
fn reap(pid: Pid, flags: Option<WaitPidFlag>) -> bool {
    loop {
        match waitpid(pid, flags) {
            Ok(WaitStatus::Exited(..) | WaitStatus::Signaled(..)) => return true,
            Ok(_) => return false,
            Err(Errno::EINTR) => {}
            Err(Errno::ECHILD) => return true,
            Err(_) => return false,
        }
    }
}

impl Default for Forking {
    fn default() -> Self {
        Forking::new()
    }
}

impl Concurrency for Forking {
    fn process_request(&self, job: Job) -> io::Result<()> {
        self.collect_children(false);
        // In the parent the job is dropped, which closes its copy of the request.
        let pid = sys::fork_child(move || job.run())?;
        self.lock().insert(pid);
        Ok(())
    }

    fn service_actions(&self) {
        self.collect_children(false);
    }

    fn handle_timeout(&self) {
        self.collect_children(false);
    }

    fn server_close(&self) {
        self.collect_children(self.block_on_close);
    }
}
