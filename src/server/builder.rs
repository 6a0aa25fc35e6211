//! Building a server: Python's constructor arguments and class attributes, as options.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Duration;

use socket2::Socket;

use super::transport::{SocketOptions, Transport};
use super::{Server, Settings};
use crate::concurrency::{Concurrency, Synchronous};
use crate::handler::{RequestContext, RequestHandler};
use crate::proxy::ProxyProtocol;
use crate::server::hooks::{NoHooks, ServerHooks};
use crate::tls::TlsConfig;

/// Anything a transport's address can be made from: `"127.0.0.1:8000"`, `("::1", 0)` or a
/// `SocketAddr` for TCP and UDP; a path for Unix sockets.
pub trait ToAddress<A> {
    /// Resolves to the one address to bind.
    fn to_address(self) -> io::Result<A>;
}

impl<T: ToSocketAddrs> ToAddress<SocketAddr> for T {
    fn to_address(self) -> io::Result<SocketAddr> {
        self.to_socket_addrs()?.next().ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "address resolved to nothing")
        })
    }
}

impl<T: AsRef<Path>> ToAddress<PathBuf> for T {
    fn to_address(self) -> io::Result<PathBuf> {
        Ok(self.as_ref().to_path_buf())
    }
}

/// Where a server's socket comes from: made for an address, or handed in already bound.
#[derive(Debug)]
pub(super) enum Source<A> {
    Address(io::Result<A>),
    Socket(Socket),
}

/// Options for a [`Server`], ending in [`build`](ServerBuilder::build).
///
/// Start one with [`Server::builder`] (through an alias such as
/// `TcpServer::builder(addr, handler)`), or with [`Server::builder_from_socket`] for a
/// socket bound elsewhere (systemd's socket activation, `--fd N`).
///
/// ```no_run
/// use socketserver::{NoHooks, TcpServer, Threading};
/// # #[derive(Clone)] struct H;
/// # impl socketserver::RequestHandler for H { type Request = socketserver::StreamRequest;
/// #   fn handle(&mut self, _: &mut socketserver::StreamRequest) -> socketserver::HandlerResult { Ok(()) } }
/// let server = TcpServer::builder("127.0.0.1:8000", H)
///     .concurrency(Threading::new().daemon_threads(true))
///     .allow_reuse_address(true)
///     .request_queue_size(128)
///     .build()?;
/// server.serve_forever()?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct ServerBuilder<T: Transport, H, C = Synchronous, K = NoHooks> {
    source: Source<T::Address>,
    handler: H,
    concurrency: C,
    hooks: K,
    options: SocketOptions,
    settings: Settings,
    bind_and_activate: bool,
}

impl<T: Transport, H, C, K> ServerBuilder<T, H, C, K> {
    pub(super) fn new(source: Source<T::Address>, handler: H, concurrency: C, hooks: K) -> Self {
        ServerBuilder {
            source,
            handler,
            concurrency,
            hooks,
            options: SocketOptions::default(),
            settings: Settings {
                request_queue_size: 5,
                timeout: None,
                poll_interval: Some(Duration::from_millis(500)),
            },
            bind_and_activate: true,
        }
    }

    /// Uses another concurrency strategy (Python's mix-ins): [`Threading`](crate::Threading),
    /// [`ThreadPool`](crate::ThreadPool), [`Forking`](crate::Forking) or your own.
    pub fn concurrency<C2: Concurrency>(self, concurrency: C2) -> ServerBuilder<T, H, C2, K> {
        ServerBuilder {
            source: self.source,
            handler: self.handler,
            concurrency,
            hooks: self.hooks,
            options: self.options,
            settings: self.settings,
            bind_and_activate: self.bind_and_activate,
        }
    }

    /// Uses your overrides of the server's hooks (Python's subclass of the server).
    pub fn hooks<K2: ServerHooks<T>>(self, hooks: K2) -> ServerBuilder<T, H, C, K2> {
        ServerBuilder {
            source: self.source,
            handler: self.handler,
            concurrency: self.concurrency,
            hooks,
            options: self.options,
            settings: self.settings,
            bind_and_activate: self.bind_and_activate,
        }
    }

    /// `SO_REUSEADDR`: rebind a port with connections in `TIME_WAIT` (default `false`).
    pub fn allow_reuse_address(mut self, allow: bool) -> Self {
        self.options.allow_reuse_address = allow;
        self
    }

    /// `SO_REUSEPORT`: several sockets share one port (default `false`).
    pub fn allow_reuse_port(mut self, allow: bool) -> Self {
        self.options.allow_reuse_port = allow;
        self
    }

    /// `IPV6_V6ONLY` for a server on an IPv6 address: `false` serves IPv4 clients too on
    /// `::` (dual stack). Unset, the system default applies.
    pub fn ipv6_only(mut self, only: bool) -> Self {
        self.options.ipv6_only = Some(only);
        self
    }

    /// The listen backlog (Python's `request_queue_size`, default 5).
    pub fn request_queue_size(mut self, size: i32) -> Self {
        self.settings.request_queue_size = size;
        self
    }

    /// How long `handle_request` waits before calling `handle_timeout` (Python's `timeout`,
    /// default `None`: forever).
    pub fn timeout(mut self, timeout: Option<Duration>) -> Self {
        self.settings.timeout = timeout;
        self
    }

    /// Longest time between two calls of `service_actions` in `serve_forever` (Python's
    /// `poll_interval`, default 0.5 s; `None`: only when a request came). Shutdown does not
    /// depend on it: it wakes the loop at once.
    pub fn poll_interval(mut self, interval: Option<Duration>) -> Self {
        self.settings.poll_interval = interval;
        self
    }

    /// The certificate and TLS settings of a TLS server
    /// ([`TlsTransport`](crate::tls::TlsTransport), as in
    /// [`HttpsServer`](crate::http::HttpsServer)); a plain transport refuses them at
    /// [`build`](Self::build).
    pub fn tls(mut self, tls: TlsConfig) -> Self {
        self.options.tls = Some(tls);
        self
    }

    /// Reads a PROXY header (HAProxy's protocol, version 1 or 2) at the start of every
    /// connection from a proxy in the list, before anything else (before TLS): the
    /// handler's `client_address`, the access log and CGI's `REMOTE_ADDR` then name the
    /// client the proxy speaks for. A peer in the list must send a header; one outside it
    /// that sends one is refused. TCP and TLS servers only; see [`crate::proxy`].
    ///
    /// Give a [`TrustedProxies`](crate::proxy::TrustedProxies), or a [`ProxyProtocol`]
    /// with another header timeout (default 10 s). `verify_request` runs at the accept,
    /// before the header: it sees the proxy's address.
    pub fn proxy_protocol(mut self, proxy_protocol: impl Into<ProxyProtocol>) -> Self {
        self.options.proxy_protocol = Some(proxy_protocol.into());
        self
    }

    /// Largest datagram a datagram server reads (Python's `max_packet_size`, default 8192).
    pub fn max_packet_size(mut self, size: usize) -> Self {
        self.options.max_packet_size = size.max(1);
        self
    }

    /// `false` creates the socket unbound: call [`Server::server_bind`] and
    /// [`Server::server_activate`] yourself (Python's `bind_and_activate`, default `true`).
    /// A socket handed in ([`Server::builder_from_socket`]) is bound already and is
    /// activated at `build` whatever this says.
    pub fn bind_and_activate(mut self, bind_and_activate: bool) -> Self {
        self.bind_and_activate = bind_and_activate;
        self
    }
}

impl<T, H, C, K> ServerBuilder<T, H, C, K>
where
    T: Transport,
    H: RequestHandler,
    H::Request: RequestContext<Raw = T::Request>,
    C: Concurrency,
    K: ServerHooks<T>,
{
    /// Creates the server: the socket, bound and listening unless `bind_and_activate(false)`.
    /// A socket handed in is adopted ([`Transport::adopt`]) instead: checked to be of the
    /// transport's kind, listening, its own address the server's address.
    pub fn build(self) -> io::Result<Server<T, H, C, K>> {
        let adopted = matches!(self.source, Source::Socket(_));
        let (transport, address) = match self.source {
            Source::Address(address) => {
                let address = address?;
                (T::create(&address, &self.options)?, address)
            }
            Source::Socket(socket) => {
                T::adopt(socket, &self.options, self.settings.request_queue_size)?
            }
        };
        let server = Server::new(
            transport,
            address,
            self.handler,
            self.concurrency,
            self.hooks,
            self.settings,
        )?;
        if adopted {
            // Bound and listening: what server_bind and server_activate would leave.
            server.activated.store(true, Ordering::Release);
        } else if self.bind_and_activate {
            server.server_bind()?;
            server.server_activate()?;
        }
        Ok(server)
    }
}
