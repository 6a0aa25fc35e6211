//! Sockets handed in by number: systemd's socket activation (`LISTEN_FDS`, what
//! `sd_listen_fds` reads; `systemd-socket-activate` speaks it too) and a descriptor a
//! parent process left open (`simple-http --fd N`). Serve on one with
//! [`Server::from_socket`](crate::Server::from_socket).
//!
//! A server started this way needs no privileges to bind a low port, keeps its port
//! across restarts (connections queue in the kernel meanwhile), and starts on the first
//! connection.

use std::env;
use std::io;
use std::os::fd::{OwnedFd, RawFd};

use crate::sys;

/// The first descriptor of socket activation (`SD_LISTEN_FDS_START`).
const LISTEN_FDS_START: RawFd = 3;

/// The sockets systemd (or `systemd-socket-activate`) passed this process, in order
/// (`sd_listen_fds`): if `LISTEN_PID` is this process's pid, the `LISTEN_FDS` descriptors
/// from 3 on, each checked to be an open socket and made close-on-exec; otherwise none.
///
/// Like `sd_listen_fds(1)` it removes `LISTEN_PID`, `LISTEN_FDS` and `LISTEN_FDNAMES`
/// from the environment, so that children (CGI scripts) do not take the sockets for
/// theirs and a second call returns none: call it once, early, before other threads read
/// the environment. A malformed variable, or a descriptor that is not an open socket, is
/// an error.
pub fn listen_fds() -> io::Result<Vec<OwnedFd>> {
    let pid = env::var("LISTEN_PID").ok();
    let count = env::var("LISTEN_FDS").ok();
    for name in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        env::remove_var(name);
    }
    let Some(pid) = pid else {
        return Ok(Vec::new());
    };
    let pid: u32 = pid.trim().parse().map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("LISTEN_PID={pid:?} is not a process id"),
        )
    })?;
    if pid != std::process::id() {
        // Meant for another process (our parent, before it exec'd a child).
        return Ok(Vec::new());
    }
    let count = count.unwrap_or_default();
    let n: RawFd = count.trim().parse().map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("LISTEN_FDS={count:?} is not a number of descriptors"),
        )
    })?;
    if n < 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("LISTEN_FDS={n} is negative"),
        ));
    }
    (LISTEN_FDS_START..LISTEN_FDS_START + n)
        .map(sys::claim_socket_fd)
        .collect()
}

/// Takes over descriptor `fd`, a socket the process was handed by number (`--fd N`, a
/// supervisor's inherited listener), checked to be open and a socket, and made
/// close-on-exec.
///
/// Pass only a number the process was given to own: nothing else in it may have opened
/// that descriptor. Each number is taken at most once per process (the second time, and
/// for a number [`listen_fds`] took, it fails with `AlreadyExists`), so two `OwnedFd`s
/// never own one descriptor.
pub fn claim_fd(fd: RawFd) -> io::Result<OwnedFd> {
    sys::claim_socket_fd(fd)
}
