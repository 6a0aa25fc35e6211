//! TCP and UDP transports.

use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsFd, BorrowedFd};

use socket2::{Domain, Protocol, SockRef, Socket, Type};

use super::transport::{
    adopt_socket, configure_blocking, refuse_proxy_protocol, SocketOptions, Transport,
};
use crate::address::{ClientAddress, ServerAddress};
use crate::proxy::{Intake, ProxyProtocol};
use crate::socket::{Datagram, DatagramSocket, StreamSocket};

fn new_socket(address: &SocketAddr, ty: Type, options: &SocketOptions) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(*address), ty, None)?;
    socket.set_reuse_address(options.allow_reuse_address)?;
    socket.set_reuse_port(options.allow_reuse_port)?;
    if let (Some(only), true) = (options.ipv6_only, address.is_ipv6()) {
        socket.set_only_v6(only)?;
    }
    configure_blocking(&socket, ty)?;
    Ok(socket)
}

fn bind(fd: BorrowedFd<'_>, address: &SocketAddr) -> io::Result<ServerAddress> {
    let socket = SockRef::from(&fd);
    socket.bind(&(*address).into())?;
    let local = socket.local_addr()?.as_socket().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "bound socket has no inet address",
        )
    })?;
    Ok(ServerAddress::Inet(local))
}

/// The inet address a socket handed in is bound to.
fn local_inet(socket: &Socket) -> io::Result<SocketAddr> {
    socket.local_addr()?.as_socket().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "the socket has no inet address",
        )
    })
}

fn refuse_tls(options: &SocketOptions) -> io::Result<()> {
    if options.tls.is_some() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "TLS settings for a plain TCP server: use TlsTransport (HttpsServer) for TLS",
        ));
    }
    Ok(())
}

/// The TCP transport of [`TcpServer`](crate::TcpServer): IPv4 or IPv6 by the address.
#[derive(Debug)]
pub struct TcpTransport {
    listener: TcpListener,
    proxy_protocol: Option<ProxyProtocol>,
}

impl TcpTransport {
    /// The listening socket.
    pub fn listener(&self) -> &TcpListener {
        &self.listener
    }

    /// Accepts one pending connection, blocking as sockets do by default.
    pub(crate) fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let (stream, peer) = self.listener.accept()?;
        // Accepted sockets do not inherit O_NONBLOCK on Linux, but do elsewhere.
        stream.set_nonblocking(false)?;
        Ok((stream, peer))
    }

    /// The PROXY header stage of a connection from `peer`, if the server reads headers.
    pub(crate) fn intake(&self, peer: SocketAddr) -> Option<Intake> {
        self.proxy_protocol.as_ref().map(|p| p.intake(peer))
    }
}

impl AsFd for TcpTransport {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.listener.as_fd()
    }
}

impl Transport for TcpTransport {
    type Request = StreamSocket;
    type Address = SocketAddr;

    fn create(address: &SocketAddr, options: &SocketOptions) -> io::Result<Self> {
        refuse_tls(options)?;
        let socket = new_socket(address, Type::STREAM, options)?;
        Ok(TcpTransport {
            listener: socket.into(),
            proxy_protocol: options.proxy_protocol.clone(),
        })
    }

    fn bind(&self, address: &SocketAddr) -> io::Result<ServerAddress> {
        bind(self.listener.as_fd(), address)
    }

    fn adopt(
        socket: Socket,
        options: &SocketOptions,
        request_queue_size: i32,
    ) -> io::Result<(Self, SocketAddr)> {
        refuse_tls(options)?;
        adopt_socket(
            &socket,
            &[Domain::IPV4, Domain::IPV6],
            Type::STREAM,
            Some(Protocol::TCP),
            "a TCP listener",
            request_queue_size,
        )?;
        // Read after listen: listening on an unbound socket picks a port.
        let address = local_inet(&socket)?;
        Ok((
            TcpTransport {
                listener: socket.into(),
                proxy_protocol: options.proxy_protocol.clone(),
            },
            address,
        ))
    }

    fn activate(&self, request_queue_size: i32) -> io::Result<()> {
        SockRef::from(&self.listener).listen(request_queue_size)
    }

    fn get_request(&self) -> io::Result<(StreamSocket, ClientAddress)> {
        let (stream, peer) = self.accept()?;
        let intake = self.intake(peer);
        Ok((StreamSocket::tcp(stream, intake), ClientAddress::Inet(peer)))
    }

    fn shutdown_request(request: &StreamSocket) {
        // The peer may have gone already; there is nobody to tell.
        let _ = request.shutdown(Shutdown::Write);
    }
}

/// The UDP transport of [`UdpServer`](crate::UdpServer).
#[derive(Debug)]
pub struct UdpTransport {
    socket: DatagramSocket,
    max_packet_size: usize,
}

impl UdpTransport {
    /// The server's socket.
    pub fn socket(&self) -> &DatagramSocket {
        &self.socket
    }
}

impl AsFd for UdpTransport {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

impl Transport for UdpTransport {
    type Request = Datagram;
    type Address = SocketAddr;

    fn create(address: &SocketAddr, options: &SocketOptions) -> io::Result<Self> {
        refuse_proxy_protocol(options, "a UDP server")?;
        let socket: UdpSocket = new_socket(address, Type::DGRAM, options)?.into();
        Ok(UdpTransport {
            socket: DatagramSocket::udp(socket),
            max_packet_size: options.max_packet_size,
        })
    }

    fn bind(&self, address: &SocketAddr) -> io::Result<ServerAddress> {
        bind(self.socket.as_fd(), address)
    }

    fn adopt(
        socket: Socket,
        options: &SocketOptions,
        request_queue_size: i32,
    ) -> io::Result<(Self, SocketAddr)> {
        refuse_proxy_protocol(options, "a UDP server")?;
        adopt_socket(
            &socket,
            &[Domain::IPV4, Domain::IPV6],
            Type::DGRAM,
            Some(Protocol::UDP),
            "a UDP socket",
            request_queue_size,
        )?;
        let address = local_inet(&socket)?;
        let socket: UdpSocket = socket.into();
        Ok((
            UdpTransport {
                socket: DatagramSocket::udp(socket),
                max_packet_size: options.max_packet_size,
            },
            address,
        ))
    }

    fn activate(&self, _request_queue_size: i32) -> io::Result<()> {
        Ok(())
    }

    fn get_request(&self) -> io::Result<(Datagram, ClientAddress)> {
        let (data, from) = self.socket.recv_from(self.max_packet_size)?;
        let socket = self.socket.clone();
        Ok((Datagram { data, socket }, from))
    }

    fn shutdown_request(_request: &Datagram) {}
}
