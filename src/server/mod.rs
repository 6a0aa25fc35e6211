//! The server: Python's `BaseServer` and its four socket classes, as one generic type.
//!
//! [`Server`] owns the socket and runs the loop; what varies is a type parameter each:
//! the [`Transport`] (TCP, UDP, Unix stream, Unix datagram), the handler, the
//! [`Concurrency`] strategy and the [`ServerHooks`]. Python's class names are aliases.

mod activation;
mod builder;
mod connections;
mod control;
mod hooks;
mod inet;
mod session;
mod stats;
mod transport;
mod unix;

use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags};

pub use crate::handler::{run_handler, RequestContext};
pub use crate::socket::Datagram;
pub use activation::{claim_fd, listen_fds};
pub use builder::{ServerBuilder, ToAddress};
pub use control::ServerHandle;
pub use hooks::{NoHooks, ServerHooks};
pub use inet::{TcpTransport, UdpTransport};
pub(crate) use stats::Tracked;
pub use stats::{ServerStats, StatsSnapshot};
pub use transport::{SocketOptions, Transport};
pub use unix::{UnixDatagramTransport, UnixStreamTransport};

use crate::address::{ClientAddress, ServerAddress};
use crate::concurrency::{poll_timeout, Concurrency, Forking, Job, Synchronous, Threading};
use crate::handler::{RequestError, RequestHandler};
pub(crate) use control::{Control, OpenConnection};
use session::Session;

/// Python's `TCPServer`: one request at a time over TCP.
pub type TcpServer<H> = Server<TcpTransport, H>;
/// Python's `UDPServer`.
pub type UdpServer<H> = Server<UdpTransport, H>;
/// Python's `UnixStreamServer`.
pub type UnixStreamServer<H> = Server<UnixStreamTransport, H>;
/// Python's `UnixDatagramServer`.
pub type UnixDatagramServer<H> = Server<UnixDatagramTransport, H>;
/// Python's `ThreadingTCPServer`: a thread per connection.
pub type ThreadingTcpServer<H> = Server<TcpTransport, H, Threading>;
/// Python's `ThreadingUDPServer`: a thread per datagram.
pub type ThreadingUdpServer<H> = Server<UdpTransport, H, Threading>;
/// Python's `ThreadingUnixStreamServer`.
pub type ThreadingUnixStreamServer<H> = Server<UnixStreamTransport, H, Threading>;
/// Python's `ThreadingUnixDatagramServer`.
pub type ThreadingUnixDatagramServer<H> = Server<UnixDatagramTransport, H, Threading>;
/// Python's `ForkingTCPServer`: a child process per connection.
pub type ForkingTcpServer<H> = Server<TcpTransport, H, Forking>;
/// Python's `ForkingUDPServer`.
pub type ForkingUdpServer<H> = Server<UdpTransport, H, Forking>;
/// Python's `ForkingUnixStreamServer`.
pub type ForkingUnixStreamServer<H> = Server<UnixStreamTransport, H, Forking>;
/// Python's `ForkingUnixDatagramServer`.
pub type ForkingUnixDatagramServer<H> = Server<UnixDatagramTransport, H, Forking>;

/// Requests taken from the socket per wake-up before the loop looks at shutdown and
/// `service_actions` again.
const MAX_REQUESTS_PER_TURN: usize = 64;

/// Most connections a graceful shutdown takes from the kernel's queue before closing the
/// socket: all of a full queue, and not forever under a flood.
const MAX_DRAINED: usize = 1 << 16;

/// How long a keep-alive connection must have waited for its next request before a
/// graceful shutdown closes it: a client that sends its next request at once is spared.
const IDLE_GRACE: Duration = Duration::from_millis(200);

/// How long the loop rests when the process runs out of file descriptors or memory, instead
/// of spinning on a socket that stays readable. A shutdown still ends the rest at once.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// What one turn of taking requests from the socket did.
#[derive(Debug, Default)]
struct Taken {
    /// Requests taken (refused ones included).
    requests: usize,
    /// It stopped because the process is out of file descriptors or memory.
    exhausted: bool,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct Settings {
    request_queue_size: i32,
    timeout: Option<Duration>,
    poll_interval: Option<Duration>,
}

/// A server over transport `T`, handing each request to a clone of handler `H`, processed by
/// concurrency strategy `C`, with server hooks `K`: Python's `BaseServer`.
///
/// Methods for the caller:
/// - [`bind`](Server::bind), [`builder`](Server::builder): create it (`__init__`).
/// - [`from_socket`](Server::from_socket),
///   [`builder_from_socket`](Server::builder_from_socket): create it on a socket bound
///   elsewhere: systemd's socket activation ([`listen_fds`]), a
///   descriptor a parent handed down ([`claim_fd`]), a listener
///   the caller made. Python's equivalent is `bind_and_activate=False` and replacing
///   `server.socket`.
/// - [`serve_forever`](Server::serve_forever): handle requests until
///   [`shutdown`](Server::shutdown).
/// - [`handle_request`](Server::handle_request): handle one request, or time out.
/// - [`server_close`](Server::server_close): close the socket (also on drop).
/// - [`server_bind`](Server::server_bind), [`server_activate`](Server::server_activate):
///   for servers built with `bind_and_activate(false)`.
/// - [`server_address`](Server::server_address), [`fileno`](Server::fileno),
///   [`handle`](Server::handle), [`hooks`](Server::hooks),
///   [`concurrency`](Server::concurrency).
///
/// Methods that may be overridden live in [`ServerHooks`] (`verify_request`,
/// `finish_request`, `handle_error`, ...) and [`Concurrency`] (`process_request`).
///
/// ```no_run
/// use socketserver::{HandlerResult, RequestHandler, StreamRequest, TcpServer};
///
/// #[derive(Clone)]
/// struct Echo;
///
/// impl RequestHandler for Echo {
///     type Request = StreamRequest;
///     fn handle(&mut self, req: &mut StreamRequest) -> HandlerResult {
///         std::io::copy(&mut req.rfile, &mut req.wfile)?;
///         Ok(())
///     }
/// }
///
/// let server = TcpServer::bind("127.0.0.1:9999", Echo)?;
/// server.serve_forever()?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Server<T: Transport, H, C: Concurrency = Synchronous, K = NoHooks> {
    /// `None` once closed; the serve loop keeps its own reference while it runs.
    transport: RwLock<Option<Arc<T>>>,
    requested_address: T::Address,
    handler: H,
    hooks: Arc<K>,
    concurrency: Arc<C>,
    control: Arc<Control>,
    activated: AtomicBool,
    settings: Settings,
}

impl<T, H, C, K> Server<T, H, C, K>
where
    T: Transport,
    H: RequestHandler,
    H::Request: RequestContext<Raw = T::Request>,
    C: Concurrency + Default,
    K: ServerHooks<T> + Default,
{
    /// Creates the server, bound and listening: Python's `TCPServer(address, Handler)`.
    ///
    /// `address` is `"host:port"`, `("host", port)` or a `SocketAddr` for TCP and UDP
    /// (port 0 picks a free port, see [`server_address`](Server::server_address)), a path
    /// for Unix sockets.
    pub fn bind(address: impl ToAddress<T::Address>, handler: H) -> io::Result<Self> {
        Self::builder(address, handler).build()
    }

    /// Starts a [`ServerBuilder`] for the options Python sets as class attributes.
    pub fn builder(address: impl ToAddress<T::Address>, handler: H) -> ServerBuilder<T, H, C, K> {
        ServerBuilder::new(
            builder::Source::Address(address.to_address()),
            handler,
            C::default(),
            K::default(),
        )
        .allow_reuse_address(H::ALLOW_REUSE_ADDRESS)
    }

    /// Creates the server on `socket`, already bound (and listening, or it is made to):
    /// the socket of systemd's socket activation, of `--fd N`, or one the caller set up
    /// with options the builder lacks. The server's address is the socket's own; the
    /// server is activated, so [`serve_forever`](Server::serve_forever) works at once.
    ///
    /// Fails with `InvalidInput` if the socket is not of the transport's kind (a UDP
    /// socket for a TCP server, say).
    pub fn from_socket(socket: impl Into<OwnedFd>, handler: H) -> io::Result<Self> {
        Self::builder_from_socket(socket, handler).build()
    }

    /// Starts a [`ServerBuilder`] on `socket`, already bound, for the options that still
    /// matter (concurrency, hooks, `tls`, `request_queue_size` if it is not listening
    /// yet, ...); those fixed before binding (`allow_reuse_address`, `ipv6_only`) are
    /// the socket's creator's and not applied. See [`from_socket`](Server::from_socket).
    ///
    /// `socket` is anything that owns a descriptor: a `socket2::Socket`, a
    /// `std::net::TcpListener`, an `OwnedFd` from [`listen_fds`].
    pub fn builder_from_socket(
        socket: impl Into<OwnedFd>,
        handler: H,
    ) -> ServerBuilder<T, H, C, K> {
        ServerBuilder::new(
            builder::Source::Socket(socket2::Socket::from(socket.into())),
            handler,
            C::default(),
            K::default(),
        )
    }
}

impl<T, H, C, K> Server<T, H, C, K>
where
    T: Transport,
    H: RequestHandler,
    H::Request: RequestContext<Raw = T::Request>,
    C: Concurrency,
    K: ServerHooks<T>,
{
    fn new(
        transport: T,
        requested_address: T::Address,
        handler: H,
        concurrency: C,
        hooks: K,
        settings: Settings,
    ) -> io::Result<Self> {
        let control = Arc::new(Control::new(requested_address.clone().into())?);
        let concurrency = Arc::new(concurrency);
        let weak = Arc::downgrade(&concurrency);
        control.set_concurrency(weak);
        Ok(Server {
            transport: RwLock::new(Some(Arc::new(transport))),
            requested_address,
            handler,
            hooks: Arc::new(hooks),
            concurrency,
            control,
            activated: AtomicBool::new(false),
            settings,
        })
    }

    fn active_transport(&self) -> io::Result<Arc<T>> {
        let transport = self.transport()?;
        if !self.activated.load(Ordering::Acquire) {
            return Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "the server is not activated: call server_bind() and server_activate() first",
            ));
        }
        Ok(transport)
    }

    /// Binds the socket to the address given at creation: Python's `server_bind`.
    pub fn server_bind(&self) -> io::Result<()> {
        let address = self
            .transport()?
            .bind(&self.requested_address)
            .map_err(|err| {
                let requested: ServerAddress = self.requested_address.clone().into();
                io::Error::new(err.kind(), format!("cannot bind {requested}: {err}"))
            })?;
        self.control.set_address(address);
        Ok(())
    }

    /// Starts listening: Python's `server_activate`.
    pub fn server_activate(&self) -> io::Result<()> {
        self.transport()?
            .activate(self.settings.request_queue_size)?;
        self.activated.store(true, Ordering::Release);
        Ok(())
    }

    /// Handles requests until [`shutdown`](Server::shutdown) is called: Python's
    /// `serve_forever`. Calls `service_actions` after every turn, at least every
    /// `poll_interval`.
    ///
    /// Fails if the server is closed or not activated, if another thread is already serving,
    /// or if polling the socket fails.
    pub fn serve_forever(&self) -> io::Result<()> {
        let transport = self.active_transport()?;
        let _running = self.control.enter()?;
        let handle = self.handle();
        // Out of file descriptors (or memory), accepting rests for a while: the socket
        // would stay readable and the loop spin. The rest of the server serves on.
        let mut paused_until: Option<Instant> = None;
        loop {
            let now = Instant::now();
            paused_until = paused_until.filter(|&until| until > now);
            let timeout = match (paused_until, self.settings.poll_interval) {
                (Some(until), Some(interval)) => Some(interval.min(until - now)),
                (Some(until), None) => Some(until - now),
                (None, interval) => interval,
            };
            let server = paused_until.is_none().then(|| transport.as_fd());
            let ready = self
                .concurrency
                .wait(server, Some(self.control.waker()), timeout)?;
            if ready.shutdown {
                if let Some(deadline) = self.control.drain_deadline() {
                    self.drain(transport, deadline)?;
                }
                return Ok(());
            }
            if ready.server {
                let taken = self.handle_pending(&transport, MAX_REQUESTS_PER_TURN);
                if taken.exhausted {
                    paused_until = Some(Instant::now() + ACCEPT_BACKOFF);
                }
            }
            self.hooks.service_actions(&handle);
            self.concurrency.service_actions();
        }
    }

    /// A graceful shutdown (see [`ServerHandle::shutdown_gracefully`]): serve what the
    /// kernel has queued, close the socket, then serve the open connections until they
    /// end or `deadline` passes, closing idle keep-alive connections on the way.
    fn drain(&self, transport: Arc<T>, deadline: Instant) -> io::Result<()> {
        self.control.begin_draining();
        // Taken, not left to be reset by the close. A new instance bound to the same port
        // (SO_REUSEPORT) gets the connections that come after the close; with
        // `net.ipv4.tcp_migrate_req` set, also any that slip in between.
        self.handle_pending(&transport, MAX_DRAINED);
        self.concurrency.stop_accepting();
        drop(transport);
        let closed = self
            .transport
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(transport) = closed {
            transport.close();
        }
        let connections = self.control.connections();
        loop {
            let next_idle = connections.close_idle(IDLE_GRACE);
            let deadline = self.control.drain_deadline().unwrap_or(deadline);
            let now = Instant::now();
            if connections.open() == 0 {
                return Ok(());
            }
            if now >= deadline {
                let open = connections.open();
                log::warn!("shutdown: {open} connection(s) still open at the deadline, cut");
                connections.cut_all();
                return Ok(());
            }
            let until = next_idle.map_or(deadline, |idle| idle.min(deadline));
            let ready = self.concurrency.wait(
                None,
                Some(self.control.waker()),
                Some(until.saturating_duration_since(now)),
            )?;
            if ready.shutdown {
                self.control.clear_waker();
            }
        }
    }

    /// Handles one request, waiting at most the server's `timeout` for it; calls
    /// `handle_timeout` if none came: Python's `handle_request`.
    pub fn handle_request(&self) -> io::Result<()> {
        let transport = self.active_transport()?;
        let deadline = self.settings.timeout.map(|t| Instant::now() + t);
        loop {
            let remaining = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            let ready = self
                .concurrency
                .wait(Some(transport.as_fd()), None, remaining)?;
            if ready.server {
                let taken = self.handle_pending(&transport, 1);
                if taken.requests > 0 {
                    return Ok(());
                }
                if taken.exhausted {
                    self.rest(ACCEPT_BACKOFF);
                }
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                self.hooks.handle_timeout(&self.handle());
                self.concurrency.handle_timeout();
                return Ok(());
            }
        }
    }

    /// Takes up to `max` pending requests from the socket and processes them.
    fn handle_pending(&self, transport: &T, max: usize) -> Taken {
        let mut taken = Taken::default();
        while taken.requests < max {
            match self.hooks.get_request(transport) {
                Ok((request, client_address)) => {
                    taken.requests += 1;
                    self.dispatch(request, client_address);
                }
                Err(err) => match err.kind() {
                    io::ErrorKind::WouldBlock => break,
                    // The client gave up between the kernel's accept queue and ours.
                    io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted => {}
                    _ => {
                        log::error!("cannot take a request from the server socket: {err}");
                        taken.exhausted = is_resource_exhaustion(&err);
                        break;
                    }
                },
            }
        }
        taken
    }

    /// Waits until `duration` has passed or a shutdown is requested.
    fn rest(&self, duration: Duration) {
        let mut fds = [PollFd::new(self.control.waker(), PollFlags::POLLIN)];
        let _ = poll(&mut fds, poll_timeout(Some(duration)));
    }

    /// `verify_request`, then `process_request` (or `shutdown_request` if refused). A hook
    /// that panics here fails only this request.
    fn dispatch(&self, request: T::Request, client_address: ClientAddress) {
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            if !self.hooks.verify_request(&request, &client_address) {
                self.hooks.shutdown_request(request);
                return Ok(());
            }
            let job = self.job(request, client_address.clone());
            self.concurrency.process_request(job)
        }));
        let error = match outcome {
            Ok(Ok(())) => return,
            Ok(Err(err)) => RequestError::from(err),
            Err(panic) => RequestError::from_panic(panic),
        };
        let _ = catch_unwind(AssertUnwindSafe(|| {
            self.hooks.handle_error(&client_address, &error)
        }));
    }

    /// The rest of a request's life, to run wherever the concurrency strategy likes:
    /// `finish_request`, delivering the reply, `shutdown_request`, `handle_error`.
    fn job(&self, raw: T::Request, client_address: ClientAddress) -> Job {
        let handler = self.handler.clone();
        let hooks = Arc::clone(&self.hooks);
        let server = self.handle();
        Job::new(client_address.clone(), H::NONBLOCKING, move |mode| {
            Session::<T, H, K>::start(raw, client_address, handler, hooks, server, mode)
        })
    }
}

impl<T: Transport, H, C: Concurrency, K> Server<T, H, C, K> {
    fn transport(&self) -> io::Result<Arc<T>> {
        self.transport
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "the server is closed"))
    }

    /// Stops `serve_forever` and waits for it to return: Python's `shutdown`. See
    /// [`ServerHandle::shutdown`] for calls from handlers and other threads.
    pub fn shutdown(&self) {
        self.control_handle().shutdown();
    }

    /// Stops `serve_forever` gracefully, within `timeout`, and waits until it has
    /// returned: see [`ServerHandle::shutdown_gracefully`].
    pub fn shutdown_gracefully(&self, timeout: Duration) {
        self.control_handle().shutdown_gracefully(timeout);
    }

    fn control_handle(&self) -> ServerHandle {
        ServerHandle(Arc::clone(&self.control))
    }

    /// Closes the socket and cleans up: Python's `server_close`. Stops a running
    /// `serve_forever` first, then lets the concurrency strategy wait for running requests
    /// (`block_on_close`). A Unix server removes its socket file. Calling it again does
    /// nothing; dropping the server calls it.
    pub fn server_close(&self) {
        if self.control_handle().is_serving() {
            self.shutdown();
        }
        let transport = self
            .transport
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(transport) = transport {
            transport.close();
        }
        self.concurrency.server_close();
    }

    /// The address the socket is bound to, with the real port when bound to port 0.
    pub fn server_address(&self) -> ServerAddress {
        self.control_handle().server_address()
    }

    /// The socket's file descriptor, or -1 once closed: Python's `fileno()`.
    pub fn fileno(&self) -> RawFd {
        self.transport
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map_or(-1, |t| t.as_fd().as_raw_fd())
    }

    /// A handle to stop the server from another thread or a signal handler.
    pub fn handle(&self) -> ServerHandle {
        self.control_handle()
    }

    /// The server hooks (Python's attributes of a server subclass live here).
    pub fn hooks(&self) -> &K {
        &self.hooks
    }

    /// The concurrency strategy, e.g. to ask a [`Forking`] for its `active_children`.
    pub fn concurrency(&self) -> &C {
        &self.concurrency
    }

    /// The handler every request gets a clone of (Python's `RequestHandlerClass`).
    pub fn handler(&self) -> &H {
        &self.handler
    }

    /// The socket, unless closed.
    pub fn socket(&self) -> Option<Arc<T>> {
        self.transport().ok()
    }

    /// `handle_request`'s timeout (Python's `timeout`).
    pub fn timeout(&self) -> Option<Duration> {
        self.settings.timeout
    }
}

impl<T: Transport, H, C: Concurrency, K> AsRawFd for Server<T, H, C, K> {
    fn as_raw_fd(&self) -> RawFd {
        self.fileno()
    }
}

impl<T: Transport, H, C: Concurrency, K> Drop for Server<T, H, C, K> {
    fn drop(&mut self) {
        self.server_close();
    }
}

impl<T: Transport, H, C: Concurrency, K> fmt::Debug for Server<T, H, C, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("server_address", &self.server_address())
            .field("fileno", &self.fileno())
            .finish_non_exhaustive()
    }
}

fn is_resource_exhaustion(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error().map(Errno::from_raw),
        Some(Errno::EMFILE | Errno::ENFILE | Errno::ENOBUFS | Errno::ENOMEM)
    )
}
