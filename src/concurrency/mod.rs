//! How the server processes a request: Python's `process_request` and its mix-ins.
//!
//! The serve loop accepts a request, checks it with `verify_request`, wraps the rest of its
//! life (handler, `shutdown_request`, `handle_error`) in a [`Job`] and gives the job to the
//! server's [`Concurrency`] strategy:
//!
//! | strategy | Python | runs a job |
//! |---|---|---|
//! | [`Synchronous`] | `TCPServer` as is | inline, one request at a time |
//! | [`Threading`] | `ThreadingMixIn` | on a new thread |
//! | [`ThreadPool`] | — | on one of a fixed set of threads, with a bounded queue |
//! | [`Forking`] | `ForkingMixIn` | in a forked child process |
//! | [`EventLoop`] | — | on the serving thread or a worker, between waits in epoll |

mod event_loop;
mod forking;
mod pool;
mod threading;
mod workers;

use std::fmt;
use std::io;
use std::os::fd::BorrowedFd;
use std::time::Duration;

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use crate::address::ClientAddress;
use crate::handler::Park;
use crate::socket::StreamSocket;

pub use event_loop::EventLoop;
pub use forking::Forking;
pub use pool::ThreadPool;
pub use threading::Threading;

/// Python's name for [`Threading`].
pub type ThreadingMixIn = Threading;
/// Python's name for [`Forking`].
pub type ForkingMixIn = Forking;

/// One accepted request with everything left to do for it: run the handler, report errors to
/// `handle_error`, and end the request with `shutdown_request`.
///
/// Dropping a job without running it closes the request unanswered.
pub struct Job {
    client_address: ClientAddress,
    nonblocking: bool,
    work: Box<dyn FnOnce(RunMode) -> Step + Send>,
}

/// Where a job or a parked connection runs, and so whether its handler may park.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RunMode {
    /// To the end, on a thread of its own: no parking.
    Blocking,
    /// On an event loop's worker thread: may park.
    Worker,
    /// On the event loop's own thread: may park, must not wait.
    Inline,
}

/// How far a job (or a parked connection taken up again) got.
pub(crate) enum Step {
    /// The request is over; `false` if it failed.
    Done(bool),
    /// The handler parked the connection: it waits for its wake-up.
    Parked(Box<dyn Resumable>),
}

/// A connection parked between runs of its handler, with everything to take it up again.
pub(crate) trait Resumable: Send {
    /// What it waits for, and until when.
    fn park(&self) -> Park;
    /// The handler is `NONBLOCKING`: it may run on the event loop's thread.
    fn nonblocking(&self) -> bool;
    /// Runs `handle` again.
    fn resume(self: Box<Self>, mode: RunMode) -> Step;
    /// The deadline passed: `finish` and close.
    fn expire(self: Box<Self>);
    /// The deadline passed and the handler asked to run again then: the next `resume` is
    /// for that.
    fn time_out(&mut self);
    /// The connection (a clone), to watch it.
    fn connection(&self) -> StreamSocket;
    /// Output the socket did not take yet waits to be sent.
    fn has_output(&self) -> bool;
    /// Sends what the socket takes now of the waiting output; `true` once all is sent.
    /// Progress moves the deadline of a park with a send timeout. An error means the
    /// connection cannot carry the rest: the output is dropped, and the handler, run next,
    /// ends the connection.
    fn flush_output(&mut self) -> io::Result<bool>;
}

impl Job {
    pub(crate) fn new(
        client_address: ClientAddress,
        nonblocking: bool,
        work: impl FnOnce(RunMode) -> Step + Send + 'static,
    ) -> Self {
        Job {
            client_address,
            nonblocking,
            work: Box::new(work),
        }
    }

    /// Who sent the request.
    pub fn client_address(&self) -> &ClientAddress {
        &self.client_address
    }

    /// Processes the request; `false` if it failed (the failure went to `handle_error`).
    /// Never panics: a panicking handler is reported, not propagated.
    pub fn run(self) -> bool {
        match (self.work)(RunMode::Blocking) {
            Step::Done(ok) => ok,
            // Parking needs RunMode::Worker or Inline: the handler was told it cannot.
            Step::Parked(parked) => {
                parked.expire();
                true
            }
        }
    }

    /// Processes the request as far as it goes in `mode`.
    pub(crate) fn start(self, mode: RunMode) -> Step {
        (self.work)(mode)
    }

    /// The handler is `NONBLOCKING`.
    pub(crate) fn nonblocking(&self) -> bool {
        self.nonblocking
    }
}

impl fmt::Debug for Job {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Job")
            .field("client_address", &self.client_address)
            .finish_non_exhaustive()
    }
}

/// A concurrency strategy: Python's `process_request` with the mix-ins' other overrides.
///
/// Methods that may be overridden:
/// - [`process_request`](Concurrency::process_request): run or hand off the job (required).
///   An error closes the request and goes to `handle_error`.
/// - [`service_actions`](Concurrency::service_actions): each turn of the serve loop
///   (forking reaps children here).
/// - [`handle_timeout`](Concurrency::handle_timeout): `handle_request` timed out.
/// - [`shutdown_requested`](Concurrency::shutdown_requested): `shutdown()` was called; a
///   strategy that blocks `process_request` for backpressure must stop blocking.
/// - [`server_close`](Concurrency::server_close): wait for what is still running, as the
///   strategy's `block_on_close` says.
/// - [`stop_accepting`](Concurrency::stop_accepting): a graceful shutdown closes the server
///   socket; let it go.
pub trait Concurrency: Send + Sync + 'static {
    /// Runs `job` now or arranges for it to run.
    fn process_request(&self, job: Job) -> io::Result<()>;

    /// Called once per turn of the serve loop.
    fn service_actions(&self) {}

    /// Called when `handle_request` times out.
    fn handle_timeout(&self) {}

    /// Called (from any thread) when the server is asked to shut down.
    fn shutdown_requested(&self) {}

    /// Called by `server_close` after the socket is closed.
    fn server_close(&self) {}

    /// Called when a graceful shutdown stops taking connections, before the server socket
    /// closes: a strategy that watches the socket itself lets it go. The serve loop then
    /// calls `wait` without a server socket until the open connections have ended.
    fn stop_accepting(&self) {}

    /// Waits until the server socket or the shutdown waker (each if given) is readable, or
    /// `timeout` passes, and says which: the serve loop's wait. The server socket is not
    /// given while accepting is paused (the process ran out of file descriptors). The
    /// default polls them; a strategy with sockets of its own serves those meanwhile
    /// ([`EventLoop`]).
    fn wait(
        &self,
        server: Option<BorrowedFd<'_>>,
        waker: Option<BorrowedFd<'_>>,
        timeout: Option<Duration>,
    ) -> io::Result<Readiness> {
        let mut fds = Vec::with_capacity(2);
        fds.extend(server.map(|server| PollFd::new(server, PollFlags::POLLIN)));
        fds.extend(waker.map(|waker| PollFd::new(waker, PollFlags::POLLIN)));
        match poll(&mut fds, poll_timeout(timeout)) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(errno) => return Err(errno.into()),
        }
        let ready = |fd: &PollFd<'_>| fd.revents().is_some_and(|r| !r.is_empty());
        let waker_index = usize::from(server.is_some());
        Ok(Readiness {
            server: server.is_some() && ready(&fds[0]),
            shutdown: fds.get(waker_index).is_some_and(ready),
        })
    }
}

/// What [`Concurrency::wait`] saw.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Readiness {
    /// The server socket has a request (or a connection) to take.
    pub server: bool,
    /// A shutdown was requested.
    pub shutdown: bool,
}

/// A poll timeout from an optional duration, rounded up so that a sub-millisecond remainder
/// does not become a busy loop.
pub(crate) fn poll_timeout(timeout: Option<Duration>) -> PollTimeout {
    match timeout {
        None => PollTimeout::NONE,
        Some(d) => {
            let ms = d.as_nanos().div_ceil(1_000_000);
            PollTimeout::try_from(ms.min(i32::MAX as u128)).unwrap_or(PollTimeout::MAX)
        }
    }
}

/// Processes each request inline on the serving thread: plain `TCPServer`/`UDPServer`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Synchronous;

impl Concurrency for Synchronous {
    fn process_request(&self, job: Job) -> io::Result<()> {
        job.run();
        Ok(())
    }
}
