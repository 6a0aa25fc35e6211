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

mod forking;
mod pool;
mod threading;

use std::fmt;
use std::io;

use crate::address::ClientAddress;

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
    work: Box<dyn FnOnce() -> bool + Send>,
}

impl Job {
    pub(crate) fn new(
        client_address: ClientAddress,
        work: impl FnOnce() -> bool + Send + 'static,
    ) -> Self {
        Job {
            client_address,
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
        (self.work)()
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
