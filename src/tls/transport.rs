//! The TLS transport: TCP, with a TLS session on every accepted connection.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;
use std::time::Instant;

use rustls::ServerConfig;
use socket2::Socket;

use super::stream::TlsStream;
use super::TlsConfig;
use crate::address::{ClientAddress, ServerAddress};
use crate::concurrency::Concurrency;
use crate::handler::{RequestContext, RequestHandler};
use crate::server::{Server, ServerHooks, SocketOptions, TcpTransport, ToAddress, Transport};
use crate::socket::StreamSocket;

/// The transport of [`HttpsServer`](crate::http::HttpsServer): a TCP listener whose
/// connections speak TLS. Handlers see plaintext through the same
/// [`StreamSocket`], `rfile` and `wfile` as on TCP; the handshake happens on the first
/// read, so it runs where the handler runs and, on an event loop, never blocks the loop.
///
/// The certificate comes from [`ServerBuilder::tls`](crate::ServerBuilder::tls) or
/// [`Server::bind_tls`].
#[derive(Debug)]
pub struct TlsTransport {
    tcp: TcpTransport,
    tls: TlsConfig,
    config: Arc<ServerConfig>,
}

impl TlsTransport {
    /// The listening socket's transport.
    pub fn tcp(&self) -> &TcpTransport {
        &self.tcp
    }

    /// The TLS settings, to [`reload`](TlsConfig::reload) the certificate.
    pub fn tls(&self) -> &TlsConfig {
        &self.tls
    }
}

impl AsFd for TlsTransport {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.tcp.as_fd()
    }
}

/// The TLS settings a TLS transport needs, their rustls configuration, and the options
/// left for its TCP socket.
fn split_options(
    options: &SocketOptions,
) -> io::Result<(TlsConfig, Arc<ServerConfig>, SocketOptions)> {
    let tls = options.tls.clone().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "a TLS server needs a certificate: build it with `.tls(TlsConfig)` or `bind_tls`",
        )
    })?;
    let config = tls.server_config()?;
    let plain = SocketOptions {
        tls: None,
        ..options.clone()
    };
    Ok((tls, config, plain))
}

impl Transport for TlsTransport {
    type Request = StreamSocket;
    type Address = SocketAddr;

    fn create(address: &SocketAddr, options: &SocketOptions) -> io::Result<Self> {
        let (tls, config, plain) = split_options(options)?;
        Ok(TlsTransport {
            tcp: TcpTransport::create(address, &plain)?,
            tls,
            config,
        })
    }

    fn adopt(
        socket: Socket,
        options: &SocketOptions,
        request_queue_size: i32,
    ) -> io::Result<(Self, SocketAddr)> {
        let (tls, config, plain) = split_options(options)?;
        let (tcp, address) = TcpTransport::adopt(socket, &plain, request_queue_size)?;
        Ok((TlsTransport { tcp, tls, config }, address))
    }

    fn bind(&self, address: &SocketAddr) -> io::Result<ServerAddress> {
        self.tcp.bind(address)
    }

    fn activate(&self, request_queue_size: i32) -> io::Result<()> {
        self.tcp.activate(request_queue_size)
    }

    fn get_request(&self) -> io::Result<(StreamSocket, ClientAddress)> {
        let (stream, peer) = self.tcp.accept()?;
        let conn = TlsConfig::accept(&self.config)?;
        let deadline = Instant::now() + self.tls.handshake_limit();
        let stream = TlsStream::new(stream, conn, deadline);
        let intake = self.tcp.intake(peer);
        Ok((
            StreamSocket::from_tls(stream, intake),
            ClientAddress::Inet(peer),
        ))
    }

    fn shutdown_request(request: &StreamSocket) {
        TcpTransport::shutdown_request(request);
    }
}

impl<H, C, K> Server<TlsTransport, H, C, K>
where
    H: RequestHandler,
    H::Request: RequestContext<Raw = StreamSocket>,
    C: Concurrency + Default,
    K: ServerHooks<TlsTransport> + Default,
{
    /// Creates the server, bound and listening, with the certificate of `tls`: Python's
    /// `HTTPSServer(address, Handler, certfile=..., keyfile=...)`.
    pub fn bind_tls(
        address: impl ToAddress<SocketAddr>,
        handler: H,
        tls: TlsConfig,
    ) -> io::Result<Self> {
        Self::builder(address, handler).tls(tls).build()
    }
}
