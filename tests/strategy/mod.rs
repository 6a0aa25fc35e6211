//! The concurrency strategy of the test servers. The HTTP, file and CGI suites run three
//! times: as their own test binaries (a thread per connection), and included again by
//! `tests/event_loop_inline.rs` (an `EventLoop` without workers: every handler on the loop's
//! thread, as `HttpServer` runs a handler that never blocks) and
//! `tests/event_loop_workers.rs` (an `EventLoop` with workers, where the suites' own
//! handlers say their requests may block, so that they run on a worker). The binary is told
//! by the module path this file is compiled at.

use std::io;
use std::os::fd::BorrowedFd;
use std::time::Duration;

use socketserver::concurrency::{Concurrency, EventLoop, Job, Readiness, ThreadPool, Threading};

/// Which strategy this test binary's servers use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    Threads,
    LoopInline,
    LoopWorkers,
}

impl Flavor {
    /// On an event loop the server reads a request's body whole, as it arrives, before the
    /// handler runs (no thread waits for a slow client): a body it cannot have is answered
    /// without the handler, and an early answer comes once the body is in. On a thread the
    /// handler reads the body as it comes.
    pub fn reads_ahead(self) -> bool {
        self != Flavor::Threads
    }
}

/// Whether the suites' own handlers say, from `HttpHandler::may_block`, that their requests
/// may block: on the binary with workers, so that they run there.
pub fn requests_on_workers() -> bool {
    flavor() == Flavor::LoopWorkers
}

pub fn flavor() -> Flavor {
    let path = module_path!();
    if path.starts_with("event_loop_inline") {
        Flavor::LoopInline
    } else if path.starts_with("event_loop_workers") {
        Flavor::LoopWorkers
    } else {
        Flavor::Threads
    }
}

/// `Threading` with daemon threads (a connection a failing test leaves open cannot make the
/// server's drop wait), or an `EventLoop`, as the binary says; or a `ThreadPool`, for the
/// suites that choose their strategy themselves (tests/faults.rs). One server type for
/// every strategy, so that a test is written once.
#[derive(Debug)]
pub enum TestConcurrency {
    Threads(Threading),
    Loop(EventLoop),
    Pool(ThreadPool),
}

impl Default for TestConcurrency {
    fn default() -> Self {
        match flavor() {
            Flavor::Threads => TestConcurrency::Threads(Threading::new().daemon_threads(true)),
            Flavor::LoopInline => TestConcurrency::Loop(EventLoop::new(0).expect("epoll")),
            Flavor::LoopWorkers => TestConcurrency::Loop(EventLoop::new(4).expect("epoll")),
        }
    }
}

impl TestConcurrency {
    fn inner(&self) -> &dyn Concurrency {
        match self {
            TestConcurrency::Threads(c) => c,
            TestConcurrency::Loop(c) => c,
            TestConcurrency::Pool(c) => c,
        }
    }
}

impl Concurrency for TestConcurrency {
    fn process_request(&self, job: Job) -> io::Result<()> {
        self.inner().process_request(job)
    }

    fn service_actions(&self) {
        self.inner().service_actions()
    }

    fn handle_timeout(&self) {
        self.inner().handle_timeout()
    }

    fn shutdown_requested(&self) {
        self.inner().shutdown_requested()
    }

    fn server_close(&self) {
        self.inner().server_close()
    }

    fn stop_accepting(&self) {
        self.inner().stop_accepting()
    }

    fn wait(
        &self,
        server: Option<BorrowedFd<'_>>,
        waker: Option<BorrowedFd<'_>>,
        timeout: Option<Duration>,
    ) -> io::Result<Readiness> {
        self.inner().wait(server, waker, timeout)
    }
}
