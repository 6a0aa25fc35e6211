//! The one module allowed `unsafe`: forking a child that never returns into the server.
//!
//! Everything else (poll, eventfd, waitpid, socket options) goes through the safe APIs of
//! `nix` and `socket2`.
#![allow(unsafe_code)]

use std::io::{self, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};

use nix::unistd::{fork, ForkResult, Pid};

/// Forks; the child runs `work` and exits with `_exit(0)` if it returned `true`, else
/// `_exit(1)`. Returns the child's pid to the parent, where `work` is dropped unrun.
///
/// The child never returns from this function, not even by a panic: unwinding into the
/// serve loop would leave a second copy of the server accepting requests.
pub(crate) fn fork_child(work: impl FnOnce() -> bool) -> io::Result<Pid> {
    // SAFETY: after fork only the calling thread exists in the child. The child runs the
    // request's work and leaves through `_exit`, so it never returns into code that assumes
    // the other threads exist, and runs no destructors or atexit handlers of the parent's
    // state. Locks held by other threads at the fork stay held in the child; that is the
    // documented caveat of `Forking`, the same as Python's ForkingMixIn.
    match unsafe { fork() }? {
        ForkResult::Parent { child } => Ok(child),
        ForkResult::Child => {
            let ok = catch_unwind(AssertUnwindSafe(work)).unwrap_or(false);
            // `_exit` skips std's flush of stdout at exit; a handler's output must not vanish.
            let _ = io::stdout().flush();
            // SAFETY: `_exit` takes no pointers and never returns.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) }
        }
    }
}
