//! Shutdown: the waker that stops the serve loop, and the handle that pulls it.
//!
//! Python's `shutdown()` sets a flag the loop sees at its next `poll_interval` tick, and hangs
//! forever when called from a handler on the serving thread. Here the flag is an eventfd the
//! loop polls together with the listening socket, so the loop wakes at once; a call from the
//! serving thread itself, or from a forked child, only signals and returns.

use std::fmt;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, PoisonError, RwLock, Weak};
use std::thread::{self, ThreadId};
use std::time::{Duration, Instant};

use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::unistd::{getpid, Pid};

use super::connections::{OpenConnections, Registered};
use crate::address::ServerAddress;
use crate::concurrency::Concurrency;
use crate::socket::StreamSocket;

use super::stats::ServerStats;

pub(crate) struct Control {
    /// Readable while a shutdown is requested and not yet carried out.
    waker: EventFd,
    state: Mutex<LoopState>,
    stopped: Condvar,
    /// The process that owns the loop; a forked child only signals it.
    owner: Pid,
    address: RwLock<ServerAddress>,
    /// Told about shutdown so a strategy blocked on backpressure lets the loop go.
    concurrency: OnceLock<Weak<dyn Concurrency>>,
    /// A graceful shutdown has begun: answers close their connections, health checks fail.
    draining: AtomicBool,
    /// When a graceful shutdown asked for must be over; `None` for a plain shutdown.
    drain_deadline: Mutex<Option<Instant>>,
    connections: OpenConnections,
    /// What the server counts as it works: connections, requests, answers.
    stats: ServerStats,
}

#[derive(Default)]
struct LoopState {
    running: bool,
    thread: Option<ThreadId>,
}

impl Control {
    pub(crate) fn new(address: ServerAddress) -> io::Result<Self> {
        Ok(Control {
            waker: EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)?,
            state: Mutex::default(),
            stopped: Condvar::new(),
            owner: getpid(),
            address: RwLock::new(address),
            concurrency: OnceLock::new(),
            draining: AtomicBool::new(false),
            drain_deadline: Mutex::new(None),
            connections: OpenConnections::new(),
            stats: ServerStats::default(),
        })
    }

    pub(crate) fn waker(&self) -> BorrowedFd<'_> {
        self.waker.as_fd()
    }

    pub(crate) fn set_concurrency(&self, concurrency: Weak<dyn Concurrency>) {
        let _ = self.concurrency.set(concurrency);
    }

    pub(crate) fn set_address(&self, address: ServerAddress) {
        *self.address.write().unwrap_or_else(PoisonError::into_inner) = address;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LoopState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Marks the loop as running on this thread until the guard is dropped.
    pub(crate) fn enter(&self) -> io::Result<LoopGuard<'_>> {
        let mut state = self.lock();
        if state.running {
            return Err(io::Error::new(
                io::ErrorKind::ResourceBusy,
                "serve_forever() is already running on another thread",
            ));
        }
        state.running = true;
        state.thread = Some(thread::current().id());
        Ok(LoopGuard(self))
    }

    fn request_shutdown(&self) {
        // EAGAIN means the counter is already far from zero: a shutdown is pending anyway.
        let _ = self.waker.write(1);
        if let Some(concurrency) = self.concurrency.get().and_then(Weak::upgrade) {
            concurrency.shutdown_requested();
        }
    }

    fn shutdown(&self) {
        if self.draining.load(Ordering::Relaxed) {
            // During a drain, a plain shutdown cuts what is left now.
            self.set_drain_deadline(Instant::now());
        }
        self.request_shutdown();
        self.wait_stopped();
    }

    /// Waits until the loop has stopped, unless called from the loop's own thread or a
    /// forked child.
    fn wait_stopped(&self) {
        if getpid() != self.owner {
            return;
        }
        let mut state = self.lock();
        if state.thread == Some(thread::current().id()) {
            // Called from a handler on the serving thread: the loop stops once it returns.
            return;
        }
        while state.running {
            state = self
                .stopped
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    fn set_drain_deadline(&self, deadline: Instant) {
        let mut current = self
            .drain_deadline
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *current = Some(current.map_or(deadline, |d| d.min(deadline)));
    }

    /// The deadline of the graceful shutdown asked for, if one was.
    pub(crate) fn drain_deadline(&self) -> Option<Instant> {
        *self
            .drain_deadline
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The serve loop begins to drain: consumes the request that woke it, so the waker
    /// next tells when the last connection has closed (or the deadline moved).
    pub(crate) fn begin_draining(&self) {
        let _ = self.waker.read();
        self.draining.store(true, Ordering::Relaxed);
    }

    /// Consumes a wake-up of the waker during a drain.
    pub(crate) fn clear_waker(&self) {
        let _ = self.waker.read();
    }

    pub(crate) fn connections(&self) -> &OpenConnections {
        &self.connections
    }
}

/// A stream connection counted among the server's open ones until dropped.
pub(crate) struct OpenConnection {
    control: Arc<Control>,
    registered: Registered,
}

impl OpenConnection {
    pub(crate) fn new(server: &ServerHandle, socket: StreamSocket) -> Self {
        let registered = server.0.connections.register(socket);
        OpenConnection {
            control: Arc::clone(&server.0),
            registered,
        }
    }

    /// Waiting for the next request of a keep-alive connection (`true`), or not.
    pub(crate) fn set_idle(&self, idle: bool) {
        self.control.connections.set_idle(&self.registered, idle);
        if idle && self.control.draining.load(Ordering::Relaxed) {
            // An answer begun before the drain kept its connection open: the drain, which
            // may be waiting for its deadline, must close it once its grace has passed.
            let _ = self.control.waker.write(1);
        }
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        let open = self.control.connections.leave(&self.registered);
        if open == 0 && self.control.draining.load(Ordering::Relaxed) {
            // The drain waits for this.
            let _ = self.control.waker.write(1);
        }
    }
}

impl fmt::Debug for OpenConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenConnection").finish_non_exhaustive()
    }
}

pub(crate) struct LoopGuard<'a>(&'a Control);

impl Drop for LoopGuard<'_> {
    fn drop(&mut self) {
        // Consume the request that stopped this loop; a later serve_forever runs afresh.
        let _ = self.0.waker.read();
        let mut state = self.0.lock();
        state.running = false;
        state.thread = None;
        self.0.stopped.notify_all();
    }
}

/// A cheap, cloneable handle to a server: stop it from any thread, a signal handler's thread,
/// or a handler (Python's `self.server` as far as shutting down goes).
#[derive(Clone)]
pub struct ServerHandle(pub(crate) Arc<Control>);

impl ServerHandle {
    /// Stops `serve_forever` and waits until it has returned: Python's `shutdown()`.
    ///
    /// Called from a handler running on the serving thread, or from a forked child, it
    /// returns at once and the loop stops right after. Called while no loop runs, the next
    /// `serve_forever` returns immediately (as in Python).
    pub fn shutdown(&self) {
        self.0.shutdown();
    }

    /// Stops `serve_forever` gracefully, and waits until it has returned: the server takes
    /// the connections already waiting in the kernel's queue (none is reset), closes its
    /// socket, closes keep-alive connections that wait idle for a next request, lets the
    /// requests in flight finish (each answer with `Connection: close`) for up to
    /// `timeout`, then cuts the connections still open, and `serve_forever` returns. A
    /// server shut down so is closed: it cannot serve again.
    ///
    /// While it drains, [`is_draining`](ServerHandle::is_draining) is true. A plain
    /// [`shutdown`](ServerHandle::shutdown) meanwhile ends the drain at once. Called from
    /// a handler on the serving thread, it returns at once, as `shutdown` does. Under
    /// [`Forking`](crate::Forking) the children's connections are not the parent's: it
    /// stops accepting, and `server_close` waits for the children as it always does.
    pub fn shutdown_gracefully(&self, timeout: Duration) {
        self.0.set_drain_deadline(Instant::now() + timeout);
        self.0.request_shutdown();
        self.0.wait_stopped();
    }

    /// Asks `serve_forever` to stop without waiting for it.
    pub fn request_shutdown(&self) {
        self.0.request_shutdown();
    }

    /// The address the server is bound to: Python's `server_address`.
    pub fn server_address(&self) -> ServerAddress {
        self.0
            .address
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Whether a graceful shutdown has begun: the server takes no new connections, and
    /// each answer closes its connection. A health check answers 503 while it is so, for
    /// a load balancer to send the requests elsewhere.
    pub fn is_draining(&self) -> bool {
        self.0.draining.load(Ordering::Relaxed)
    }

    /// The server's counters: connections open and parked, requests in flight, and the
    /// HTTP answers by status class, bytes and time taken. Lock-free to read at any time;
    /// `socketserver::http::metrics::render` turns them into a Prometheus page.
    pub fn stats(&self) -> &ServerStats {
        &self.0.stats
    }

    /// Whether `serve_forever` is running.
    pub fn is_serving(&self) -> bool {
        self.0.lock().running
    }
}

impl fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerHandle")
            .field("server_address", &self.server_address())
            .field("serving", &self.is_serving())
            .finish()
    }
}
