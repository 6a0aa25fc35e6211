//! Addresses: where a server listens and who a request came from.
//!
//! Python uses tuples (`('127.0.0.1', 8000)`) for internet sockets and strings for Unix
//! sockets; here each is one enum so a handler can serve every transport.

use std::fmt;
use std::mem::offset_of;
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
use std::path::{Path, PathBuf};

use nix::sys::socket::{SockaddrLike, SockaddrStorage, UnixAddr};

/// The peer of a request: Python's `client_address`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ClientAddress {
    /// A TCP or UDP peer.
    Inet(SocketAddr),
    /// A Unix-socket peer; `None` when the peer's socket is unnamed (the usual case for
    /// stream clients, and for datagram clients that never bound).
    Unix(Option<PathBuf>),
}

impl ClientAddress {
    /// The internet address, if this is a TCP or UDP peer.
    pub fn inet(&self) -> Option<SocketAddr> {
        match self {
            ClientAddress::Inet(addr) => Some(*addr),
            ClientAddress::Unix(_) => None,
        }
    }

    pub(crate) fn from_unix(addr: &std::os::unix::net::SocketAddr) -> Self {
        ClientAddress::Unix(addr.as_pathname().map(Path::to_path_buf))
    }

    /// The sender of a UDP datagram, as the kernel reported it.
    pub(crate) fn from_inet(addr: Option<&SockaddrStorage>) -> Option<Self> {
        let addr = addr?;
        let inet = match (addr.as_sockaddr_in(), addr.as_sockaddr_in6()) {
            (Some(v4), _) => SocketAddrV4::from(*v4).into(),
            (None, Some(v6)) => SocketAddrV6::from(*v6).into(),
            (None, None) => return None,
        };
        Some(ClientAddress::Inet(inet))
    }

    /// The sender of a Unix datagram, as the kernel reported it.
    pub(crate) fn from_unix_addr(addr: Option<&UnixAddr>) -> Self {
        // An unnamed sender comes with no path at all, which `UnixAddr::path` does not expect.
        let named = addr.filter(|a| a.len() as usize > offset_of!(libc::sockaddr_un, sun_path));
        ClientAddress::Unix(named.and_then(UnixAddr::path).map(Path::to_path_buf))
    }
}

impl fmt::Display for ClientAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientAddress::Inet(addr) => addr.fmt(f),
            ClientAddress::Unix(Some(path)) => path.display().fmt(f),
            ClientAddress::Unix(None) => f.write_str("unix:unnamed"),
        }
    }
}

impl From<SocketAddr> for ClientAddress {
    fn from(addr: SocketAddr) -> Self {
        ClientAddress::Inet(addr)
    }
}

/// The address a server is bound to: Python's `server_address`.
///
/// After binding port 0 this holds the port the system chose.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ServerAddress {
    /// A TCP or UDP address.
    Inet(SocketAddr),
    /// The path of a Unix socket.
    Unix(PathBuf),
}

impl ServerAddress {
    /// The internet address, if the server is a TCP or UDP server.
    pub fn inet(&self) -> Option<SocketAddr> {
        match self {
            ServerAddress::Inet(addr) => Some(*addr),
            ServerAddress::Unix(_) => None,
        }
    }

    /// The port, if the server is a TCP or UDP server.
    pub fn port(&self) -> Option<u16> {
        self.inet().map(|addr| addr.port())
    }

    /// The socket path, if the server is a Unix server.
    pub fn path(&self) -> Option<&Path> {
        match self {
            ServerAddress::Inet(_) => None,
            ServerAddress::Unix(path) => Some(path),
        }
    }
}

impl fmt::Display for ServerAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerAddress::Inet(addr) => addr.fmt(f),
            ServerAddress::Unix(path) => path.display().fmt(f),
        }
    }
}

impl From<SocketAddr> for ServerAddress {
    fn from(addr: SocketAddr) -> Self {
        ServerAddress::Inet(addr)
    }
}

impl From<PathBuf> for ServerAddress {
    fn from(path: PathBuf) -> Self {
        ServerAddress::Unix(path)
    }
}
