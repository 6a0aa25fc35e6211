//! The one module allowed `unsafe`: forking a child that never returns into the server,
//! and taking ownership of a socket descriptor handed to the process by number (systemd's
//! `LISTEN_FDS`, `--fd N`), checked to be an open socket and claimed at most once.
//!
//! Everything else (poll, eventfd, waitpid, socket options) goes through the safe APIs of
//! `nix` and `socket2`.
#![allow(unsafe_code)]

use std::collections::BTreeSet;
use std::io::{self, Write};
use std::os::fd::{BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Mutex, PoisonError};

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, FdFlag};
use nix::sys::stat::{fstat, SFlag};
use nix::unistd::{fork, ForkResult, Pid};

/// The descriptor numbers [`claim_socket_fd`] turned into an `OwnedFd`. A number stays in
/// the set after that `OwnedFd` closes it: the number may since name a file someone else
/// opened, which must not get a second owner.
static CLAIMED: Mutex<BTreeSet<RawFd>> = Mutex::new(BTreeSet::new());

/// Takes ownership of descriptor `fd`, handed to the process by number, after checking it
/// is open and a socket; sets `FD_CLOEXEC` on it, so CGI scripts and other children do not
/// inherit the server's socket. Each number is claimed once per process; a second claim
/// fails with `AlreadyExists`.
pub(crate) fn claim_socket_fd(fd: RawFd) -> io::Result<OwnedFd> {
    if fd < 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("fd {fd} is not a file descriptor"),
        ));
    }
    let mut claimed = CLAIMED.lock().unwrap_or_else(PoisonError::into_inner);
    if claimed.contains(&fd) {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("fd {fd} was taken over already"),
        ));
    }
    // SAFETY: the borrow lives only for the three fcntl/fstat calls below, which take no
    // ownership; on a number that is not open they fail with EBADF, checked first.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    match fcntl(borrowed, FcntlArg::F_GETFD) {
        Ok(_) => {}
        Err(Errno::EBADF) => {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("fd {fd} is not open"),
            ))
        }
        Err(err) => return Err(err.into()),
    }
    let stat = fstat(borrowed)?;
    if SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT != SFlag::S_IFSOCK {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("fd {fd} is not a socket"),
        ));
    }
    fcntl(borrowed, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))?;
    claimed.insert(fd);
    // SAFETY: `fd` is open (F_GETFD succeeded) and a socket. It is a descriptor the process
    // was handed by number (LISTEN_FDS, --fd) for the server to own, and the set above,
    // held locked until here, makes sure this function gives it out once: no two
    // `OwnedFd`s made here own it. Callers pass only numbers nothing else in the process
    // has opened (the public functions say so).
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

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
