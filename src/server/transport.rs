//! The socket a server binds and takes requests from: one trait, four transports.
//!
//! Python picks the transport by subclass (`TCPServer`, `UDPServer`, ...); here it is the
//! first type parameter of [`Server`](crate::Server). The serve loop polls the server's
//! socket together with the shutdown waker and takes requests until the kernel has none
//! left, so taking a request never blocks: listening sockets are non-blocking, datagram
//! sockets are read with `MSG_DONTWAIT`.

use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

use crate::address::{ClientAddress, ServerAddress};
use crate::proxy::ProxyProtocol;
use crate::tls::TlsConfig;

/// How long a reply on a datagram socket may wait for room at the receiver before `sendto`
/// fails. A Unix datagram client that never reads fills its queue; Python would block the
/// server forever.
pub(crate) const DATAGRAM_SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// A listening socket is non-blocking, so that accepting never waits. A datagram socket
/// blocks, so that a reply can wait in the kernel for a full receiver (the only way to wait
/// for a Unix datagram peer: `poll` reports the socket writable all along), up to
/// [`DATAGRAM_SEND_TIMEOUT`]; it is read with `MSG_DONTWAIT` instead.
pub(crate) fn configure_blocking(socket: &Socket, ty: Type) -> io::Result<()> {
    if ty == Type::DGRAM {
        socket.set_nonblocking(false)?;
        socket.set_write_timeout(Some(DATAGRAM_SEND_TIMEOUT))
    } else {
        socket.set_nonblocking(true)
    }
}

/// What a socket handed in is, for the error when it is not what the transport takes:
/// "a UDP socket", "a Unix stream listener", ...
fn describe(socket: &Socket) -> String {
    let domain = socket.domain().ok();
    let ty = socket.r#type().ok();
    let listening = socket.is_listener().unwrap_or(false);
    let kind = match (domain, ty) {
        (Some(Domain::IPV4 | Domain::IPV6), Some(Type::STREAM)) => "TCP",
        (Some(Domain::IPV4 | Domain::IPV6), Some(Type::DGRAM)) => "UDP",
        (Some(Domain::UNIX), Some(Type::STREAM)) => "Unix stream",
        (Some(Domain::UNIX), Some(Type::DGRAM)) => "Unix datagram",
        (Some(Domain::UNIX), Some(Type::SEQPACKET)) => "Unix seqpacket",
        _ => return format!("a socket of family {domain:?} and type {ty:?}"),
    };
    let what = if listening { "listener" } else { "socket" };
    format!("a {kind} {what}")
}

/// Checks that a socket handed in (by systemd, `--fd N`, the caller) is of the family and
/// type the transport serves, and gives it the blocking mode the transport's `create`
/// gives; a stream socket not yet listening gets `listen(request_queue_size)`.
///
/// `wanted` names what the transport takes, for the error: "a TCP listener".
pub(crate) fn adopt_socket(
    socket: &Socket,
    domains: &[Domain],
    ty: Type,
    protocol: Option<Protocol>,
    wanted: &str,
    request_queue_size: i32,
) -> io::Result<()> {
    let domain_ok = socket.domain().is_ok_and(|d| domains.contains(&d));
    let type_ok = socket.r#type().is_ok_and(|t| t == ty);
    // SO_PROTOCOL tells TCP from SCTP, both SOCK_STREAM on inet.
    let protocol_ok = match protocol {
        None => true,
        Some(p) => socket.protocol()?.is_none_or(|got| got == p),
    };
    if !(domain_ok && type_ok && protocol_ok) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "fd {} is {}, not {wanted}",
                socket.as_raw_fd(),
                describe(socket)
            ),
        ));
    }
    if ty == Type::STREAM && !socket.is_listener()? {
        socket.listen(request_queue_size)?;
    }
    configure_blocking(socket, ty)
}

/// Socket options fixed when the server's socket is created, before it is bound.
#[derive(Clone, Debug)]
pub struct SocketOptions {
    /// `SO_REUSEADDR` (Python's `allow_reuse_address`; default `false`).
    pub allow_reuse_address: bool,
    /// `SO_REUSEPORT` (Python's `allow_reuse_port`; default `false`).
    pub allow_reuse_port: bool,
    /// `IPV6_V6ONLY` for an IPv6 socket: `Some(false)` also accepts IPv4 clients on `::`
    /// (dual stack, what `python3 -m http.server` does); `None` keeps the system default.
    pub ipv6_only: Option<bool>,
    /// Largest datagram a datagram server reads (Python's `max_packet_size`; default 8192).
    /// Longer datagrams are truncated by the kernel.
    pub max_packet_size: usize,
    /// The certificate and TLS settings of a [`TlsTransport`](crate::tls::TlsTransport),
    /// which needs them; other transports refuse them.
    pub tls: Option<TlsConfig>,
    /// PROXY headers from trusted proxies ([`ServerBuilder::proxy_protocol`]), read before
    /// anything else of a connection (before TLS); TCP and TLS transports take them,
    /// others refuse them.
    ///
    /// [`ServerBuilder::proxy_protocol`]: crate::ServerBuilder::proxy_protocol
    pub proxy_protocol: Option<ProxyProtocol>,
}

impl Default for SocketOptions {
    fn default() -> Self {
        SocketOptions {
            allow_reuse_address: false,
            allow_reuse_port: false,
            ipv6_only: None,
            max_packet_size: 8192,
            tls: None,
            proxy_protocol: None,
        }
    }
}

/// Refuses PROXY protocol settings for a transport that does not read PROXY headers.
pub(crate) fn refuse_proxy_protocol(options: &SocketOptions, transport: &str) -> io::Result<()> {
    if options.proxy_protocol.is_some() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("PROXY protocol settings for {transport}: only TCP and TLS servers read PROXY headers"),
        ));
    }
    Ok(())
}

/// A kind of server socket: TCP, UDP, Unix stream or Unix datagram.
///
/// Methods for the server (the user rarely calls them directly):
/// - [`create`](Transport::create): make the socket and set its options (Python's
///   `socket.socket(...)` in `__init__`).
/// - [`bind`](Transport::bind): Python's `server_bind`.
/// - [`activate`](Transport::activate): Python's `server_activate` (`listen`).
/// - [`get_request`](Transport::get_request): Python's `get_request`, non-blocking.
/// - [`shutdown_request`](Transport::shutdown_request): the transport's part of Python's
///   `shutdown_request`.
/// - [`adopt`](Transport::adopt): take over a socket bound by someone else (systemd's
///   socket activation, a descriptor handed in), instead of `create`, `bind`, `activate`.
/// - [`close`](Transport::close): cleanup at `server_close` beyond closing the socket.
pub trait Transport: AsFd + Send + Sync + Sized + 'static {
    /// What one request is: a [`StreamSocket`](crate::StreamSocket) for stream transports, a
    /// [`Datagram`](crate::server::Datagram) for datagram transports.
    type Request: Send + 'static;
    /// The address the server binds: `SocketAddr` or a path.
    type Address: Clone + fmt::Debug + Send + Sync + Into<ServerAddress> + 'static;

    /// Creates the unbound, non-blocking socket for `address` with `options` applied.
    fn create(address: &Self::Address, options: &SocketOptions) -> io::Result<Self>;

    /// Binds the socket and returns the address it got (the real port for port 0).
    fn bind(&self, address: &Self::Address) -> io::Result<ServerAddress>;

    /// Starts listening with a backlog of `request_queue_size`; nothing for datagrams.
    fn activate(&self, request_queue_size: i32) -> io::Result<()>;

    /// Takes over `socket`, already bound (by systemd, a parent process, the caller), and
    /// returns the transport with the socket's own local address. It stands for `create`,
    /// `bind` and `activate`: a stream socket not yet listening gets
    /// `listen(request_queue_size)`, and the socket gets the blocking mode `create` gives.
    /// The options fixed before binding (`SO_REUSEADDR`, `IPV6_V6ONLY`) are the creator's
    /// business and are not applied; the others (`tls`, `max_packet_size`) are.
    ///
    /// Fails with `InvalidInput` if the socket is not of the transport's family and type
    /// ("fd 3 is a UDP socket, not a TCP listener"). The default refuses every socket,
    /// for transports that cannot adopt one.
    fn adopt(
        socket: Socket,
        options: &SocketOptions,
        request_queue_size: i32,
    ) -> io::Result<(Self, Self::Address)> {
        let _ = (options, request_queue_size);
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!(
                "fd {}: this transport cannot take over a socket",
                socket.as_raw_fd()
            ),
        ))
    }

    /// Takes one pending request, or fails with `WouldBlock` when there is none.
    fn get_request(&self) -> io::Result<(Self::Request, ClientAddress)>;

    /// Ends a request after its handler finished: for streams, shuts the socket down for
    /// writing so the client sees end-of-file even if a handler kept a clone.
    fn shutdown_request(request: &Self::Request);

    /// Extra cleanup when the server closes (a Unix server removes its socket file).
    fn close(&self) {}
}
