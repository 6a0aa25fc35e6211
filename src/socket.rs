//! What a transport hands to a handler: a connected stream (plain or TLS), or one datagram
//! and the socket to answer on.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::io::{IoSlice, IoSliceMut};

use nix::sys::socket::{recv, recvmsg, sendmsg, MsgFlags, SockaddrLike, SockaddrStorage, UnixAddr};

use crate::address::ClientAddress;
use crate::proxy::{Intake, ProxyFailure, Wait};
use crate::tls::{TlsInfo, TlsStream};

/// One datagram into `buf`, and its sender, if one is queued.
fn recv_now<S: SockaddrLike>(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<(usize, Option<S>)> {
    let mut iov = [IoSliceMut::new(buf)];
    let message = recvmsg::<S>(fd.as_raw_fd(), &mut iov, None, MsgFlags::MSG_DONTWAIT)?;
    Ok((message.bytes, message.address))
}

/// A connected stream socket, TCP, Unix or TLS: Python's `self.request` in a stream
/// handler.
///
/// Cloning is cheap and shares the socket (the handler's `rfile` and `wfile` are clones);
/// the socket closes when the last clone is dropped. On a TLS connection reads and writes
/// carry plaintext; the clones share one TLS session, used by one of them at a time.
#[derive(Clone, Debug)]
pub struct StreamSocket(Arc<Connection>);

#[derive(Debug)]
struct Connection {
    stream: Stream,
    /// The PROXY header stage of a server with
    /// [`proxy_protocol`](crate::ServerBuilder::proxy_protocol): run by the first reads,
    /// before the stream's own (before TLS, whose ClientHello follows the header).
    intake: Option<Intake>,
}

#[derive(Debug)]
enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
    // Boxed: a plain connection does not carry the size of a TLS session.
    Tls(Box<TlsStream>),
}

/// The socket under a stream, TLS or not.
enum Plain<'a> {
    Tcp(&'a TcpStream),
    Unix(&'a UnixStream),
}

impl StreamSocket {
    fn new(stream: Stream, intake: Option<Intake>) -> Self {
        StreamSocket(Arc::new(Connection { stream, intake }))
    }

    pub(crate) fn tcp(stream: TcpStream, intake: Option<Intake>) -> Self {
        StreamSocket::new(Stream::Tcp(stream), intake)
    }

    pub(crate) fn unix(stream: UnixStream) -> Self {
        StreamSocket::new(Stream::Unix(stream), None)
    }

    pub(crate) fn from_tls(stream: TlsStream, intake: Option<Intake>) -> Self {
        StreamSocket::new(Stream::Tls(Box::new(stream)), intake)
    }

    fn plain(&self) -> Plain<'_> {
        match &self.0.stream {
            Stream::Tcp(s) => Plain::Tcp(s),
            Stream::Unix(s) => Plain::Unix(s),
            Stream::Tls(s) => Plain::Tcp(s.tcp()),
        }
    }

    fn tls(&self) -> Option<&TlsStream> {
        match &self.0.stream {
            Stream::Tls(s) => Some(s),
            _ => None,
        }
    }

    /// Reads at most `max` bytes; an empty result means the peer closed its side.
    /// Python's `request.recv(max)`.
    pub fn recv(&self, max: usize) -> io::Result<Vec<u8>> {
        let mut buf = vec![0; max];
        let n = (&*self).read(&mut buf)?;
        buf.truncate(n);
        Ok(buf)
    }

    /// Reads what has arrived, without waiting: `WouldBlock` if nothing has. A read that
    /// returns less than `buf` holds has emptied the socket (and the TLS session).
    pub(crate) fn recv_now(&self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(n) = self.through_intake(false, buf)? {
            return Ok(n);
        }
        match self.tls() {
            Some(tls) => tls.read(buf, MsgFlags::MSG_DONTWAIT),
            None => Ok(recv(self.as_fd().as_raw_fd(), buf, MsgFlags::MSG_DONTWAIT)?),
        }
    }

    /// Writes what the socket takes now, without waiting: `WouldBlock` if it takes nothing.
    pub(crate) fn send_now(&self, data: &[IoSlice<'_>]) -> io::Result<usize> {
        self.send_with(data, MsgFlags::MSG_DONTWAIT)
    }

    /// One `sendmsg` with `flags` (and `MSG_NOSIGNAL`: a closed peer is an error, not a
    /// signal); waits for room unless `MSG_DONTWAIT`. On TLS, what the session took.
    pub(crate) fn send_with(&self, data: &[IoSlice<'_>], flags: MsgFlags) -> io::Result<usize> {
        if let Some(tls) = self.tls() {
            if !flags.contains(MsgFlags::MSG_DONTWAIT) {
                // A blocking write waits for the handshake, which follows the PROXY header.
                self.read_proxy_header(true)?;
            }
            return tls.write(data, flags);
        }
        let flags = flags | MsgFlags::MSG_NOSIGNAL;
        Ok(sendmsg::<()>(
            self.as_fd().as_raw_fd(),
            data,
            &[],
            flags,
            None,
        )?)
    }

    /// Whether this is a TLS connection: files cannot leave by `sendfile`.
    pub(crate) fn is_tls(&self) -> bool {
        self.tls().is_some()
    }

    /// Whether a TLS session holds records the socket has not taken yet.
    pub(crate) fn has_unsent(&self) -> bool {
        self.tls().is_some_and(TlsStream::has_unsent)
    }

    /// Sends the TLS records that wait (waiting for room unless `MSG_DONTWAIT`); `true`
    /// once none is left. Always `true` for a plain socket.
    pub(crate) fn flush_unsent(&self, flags: MsgFlags) -> io::Result<bool> {
        self.tls().map_or(Ok(true), |tls| tls.flush_unsent(flags))
    }

    /// Whether input waits outside the socket, where epoll cannot see it: a TLS session's
    /// end of stream (`close_notify`) behind the plaintext already read, or the first
    /// bytes of a peer that looked like the start of a PROXY header and were not.
    pub(crate) fn holds_input(&self) -> bool {
        self.tls().is_some_and(TlsStream::holds_input)
            || self.0.intake.as_ref().is_some_and(Intake::holds_input)
    }

    /// Runs the PROXY header stage before a read into `buf`, if it is not over: `Some(n)`
    /// when the read is answered from bytes it consumed, `None` when it goes on.
    /// `blocking`: the read may wait, as long as the socket's read timeout.
    fn through_intake(&self, blocking: bool, buf: &mut [u8]) -> io::Result<Option<usize>> {
        let Some(intake) = self.0.intake.as_ref().filter(|i| !i.is_settled()) else {
            return Ok(None);
        };
        let wait = match (blocking, self.plain()) {
            (false, _) => Wait::No,
            (true, Plain::Tcp(s)) => Wait::Yes(s.read_timeout()?),
            (true, Plain::Unix(s)) => Wait::Yes(s.read_timeout()?),
        };
        let read = intake.before_read(self.as_fd(), self.is_tls(), wait, buf);
        if read
            .as_ref()
            .is_err_and(|err| ProxyFailure::is_cause_of(err))
        {
            // Refused before any TLS: not even a `close_notify` leaves.
            self.cut_tls();
        }
        read
    }

    /// Reads the PROXY header a trusted proxy owes, if it has not been read yet: waiting
    /// as a read does (bounded by the socket's read timeout and the header's own limit)
    /// if `blocking`, else `WouldBlock` while it is not all here. Nothing after the
    /// header is consumed. A peer that owes none is not waited for: its first bytes
    /// are the stream's, and it may expect the server to speak first.
    pub(crate) fn read_proxy_header(&self, blocking: bool) -> io::Result<()> {
        if self.0.intake.as_ref().and_then(Intake::deadline).is_some() {
            self.through_intake(blocking, &mut [])?;
        }
        Ok(())
    }

    /// The client's address, as the PROXY header of a trusted proxy gave it, once read;
    /// `None` on a server without [`proxy_protocol`](crate::ServerBuilder::proxy_protocol),
    /// before the header, and for a header that names no client (`LOCAL`, `UNKNOWN`). The
    /// socket's own peer is [`peer_addr`](Self::peer_addr).
    pub fn proxy_source(&self) -> Option<SocketAddr> {
        self.0.intake.as_ref().and_then(Intake::source)
    }

    /// Encrypted bytes a TLS session has handed to the socket (0 for a plain socket):
    /// progress of a response whose plaintext the session has taken already.
    pub(crate) fn tls_sent(&self) -> u64 {
        self.tls().map_or(0, TlsStream::sent)
    }

    /// Ends a TLS session without `close_notify` and drops what it still holds: the
    /// response was cut short, and the client must see a truncation, not a clean end.
    pub(crate) fn cut_tls(&self) {
        if let Some(tls) = self.tls() {
            tls.cut();
        }
    }

    /// Until when a TLS handshake still under way, or a trusted proxy's PROXY header not
    /// read yet, may go on.
    pub(crate) fn handshake_deadline(&self) -> Option<Instant> {
        let proxy = self.0.intake.as_ref().and_then(Intake::deadline);
        let tls = self.tls().and_then(TlsStream::handshake_deadline);
        match (proxy, tls) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// What the TLS session negotiated, and the client's certificates; `None` for a plain
    /// connection. Python's `SSLSocket.version()`, `cipher()` and `getpeercert()`.
    pub fn tls_info(&self) -> Option<TlsInfo> {
        self.tls().map(TlsStream::info)
    }

    /// Makes every operation on the socket fail with `WouldBlock` instead of waiting.
    pub(crate) fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        match self.plain() {
            Plain::Tcp(s) => s.set_nonblocking(nonblocking),
            Plain::Unix(s) => s.set_nonblocking(nonblocking),
        }
    }

    /// Writes all of `data`. Python's `request.sendall(data)`.
    pub fn sendall(&self, data: &[u8]) -> io::Result<()> {
        (&*self).write_all(data)?;
        (&*self).flush()
    }

    /// The peer's address (Python's `getpeername()`).
    pub fn peer_addr(&self) -> io::Result<ClientAddress> {
        match self.plain() {
            Plain::Tcp(s) => s.peer_addr().map(ClientAddress::Inet),
            Plain::Unix(s) => s.peer_addr().map(|a| ClientAddress::from_unix(&a)),
        }
    }

    /// Shuts down the read half, the write half, or both. On TLS, ending the write half
    /// sends `close_notify` first.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        match &self.0.stream {
            Stream::Tcp(s) => s.shutdown(how),
            Stream::Unix(s) => s.shutdown(how),
            Stream::Tls(s) => s.shutdown(how),
        }
    }

    /// Sets the timeout of blocking reads; `None` blocks forever.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        match self.plain() {
            Plain::Tcp(s) => s.set_read_timeout(timeout),
            Plain::Unix(s) => s.set_read_timeout(timeout),
        }
    }

    /// Sets the timeout of blocking writes; `None` blocks forever.
    pub fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        match self.plain() {
            Plain::Tcp(s) => s.set_write_timeout(timeout),
            Plain::Unix(s) => s.set_write_timeout(timeout),
        }
    }

    /// Sets `TCP_NODELAY` (Python's `disable_nagle_algorithm`); a no-op on Unix sockets.
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        match self.plain() {
            Plain::Tcp(s) => s.set_nodelay(nodelay),
            Plain::Unix(_) => Ok(()),
        }
    }

    /// The TCP stream, if this is a TCP connection. On TLS it is the stream under the
    /// encryption: bytes written to it directly break the session.
    pub fn as_tcp(&self) -> Option<&TcpStream> {
        match self.plain() {
            Plain::Tcp(s) => Some(s),
            Plain::Unix(_) => None,
        }
    }

    /// The Unix stream, if this is a Unix-socket connection.
    pub fn as_unix(&self) -> Option<&UnixStream> {
        match self.plain() {
            Plain::Tcp(_) => None,
            Plain::Unix(s) => Some(s),
        }
    }
}

impl Read for &StreamSocket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(n) = self.through_intake(true, buf)? {
            return Ok(n);
        }
        match &self.0.stream {
            Stream::Tcp(s) => (&*s).read(buf),
            Stream::Unix(s) => (&*s).read(buf),
            Stream::Tls(s) => s.read(buf, MsgFlags::empty()),
        }
    }

    fn read_vectored(&mut self, bufs: &mut [io::IoSliceMut<'_>]) -> io::Result<usize> {
        if self.0.intake.as_ref().is_some_and(|i| !i.is_settled()) {
            let Some(buf) = bufs.iter_mut().find(|b| !b.is_empty()) else {
                return Ok(0);
            };
            return self.read(buf);
        }
        match &self.0.stream {
            Stream::Tcp(s) => (&*s).read_vectored(bufs),
            Stream::Unix(s) => (&*s).read_vectored(bufs),
            Stream::Tls(s) => match bufs.iter_mut().find(|b| !b.is_empty()) {
                Some(buf) => s.read(buf, MsgFlags::empty()),
                None => Ok(0),
            },
        }
    }
}

/// Writes are `sendmsg` with `MSG_NOSIGNAL`: a client that went away is an error, never a
/// SIGPIPE that would kill a program which did not ignore it (as Rust's runtime does).
impl Write for &StreamSocket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.send_with(&[IoSlice::new(buf)], MsgFlags::empty())
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        self.send_with(bufs, MsgFlags::empty())
    }

    /// Sends what a TLS session still holds (`WouldBlock` if the socket's write timeout
    /// passes first); nothing to do on a plain socket.
    fn flush(&mut self) -> io::Result<()> {
        match self.flush_unsent(MsgFlags::empty())? {
            true => Ok(()),
            false => Err(unsent()),
        }
    }
}

impl Read for StreamSocket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self).read(buf)
    }

    fn read_vectored(&mut self, bufs: &mut [io::IoSliceMut<'_>]) -> io::Result<usize> {
        (&*self).read_vectored(bufs)
    }
}

impl Write for StreamSocket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self).write(buf)
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        (&*self).write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        (&*self).flush()
    }
}

impl AsFd for StreamSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self.plain() {
            Plain::Tcp(s) => s.as_fd(),
            Plain::Unix(s) => s.as_fd(),
        }
    }
}

impl AsRawFd for StreamSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.as_fd().as_raw_fd()
    }
}

/// The error of a blocking send whose records the socket would not take in time.
pub(crate) fn unsent() -> io::Error {
    io::Error::new(
        io::ErrorKind::WouldBlock,
        "the client did not take the TLS records within the write timeout",
    )
}

/// A datagram socket, UDP or Unix, shared by a datagram server and its handlers.
#[derive(Clone, Debug)]
pub struct DatagramSocket(Arc<DgramSocket>);

#[derive(Debug)]
enum DgramSocket {
    Udp(UdpSocket),
    Unix(UnixDatagram),
}

impl DatagramSocket {
    pub(crate) fn udp(socket: UdpSocket) -> Self {
        DatagramSocket(Arc::new(DgramSocket::Udp(socket)))
    }

    pub(crate) fn unix(socket: UnixDatagram) -> Self {
        DatagramSocket(Arc::new(DgramSocket::Unix(socket)))
    }

    /// Sends `data` as one datagram to `address`. Python's `socket.sendto(data, address)`.
    ///
    /// Waits while the receiver has no room (a Unix datagram client that does not read), but
    /// fails with [`io::ErrorKind::TimedOut`] after 10 seconds rather than blocking the server
    /// forever; set another limit with `set_write_timeout` on [`as_udp`](Self::as_udp) or
    /// [`as_unix`](Self::as_unix).
    pub fn sendto(&self, data: &[u8], address: &ClientAddress) -> io::Result<usize> {
        self.send_to(data, address).map_err(|err| match err.kind() {
            io::ErrorKind::WouldBlock => io::Error::new(
                io::ErrorKind::TimedOut,
                format!("{address} did not take the datagram in time"),
            ),
            _ => err,
        })
    }

    fn send_to(&self, data: &[u8], address: &ClientAddress) -> io::Result<usize> {
        match (&*self.0, address) {
            (DgramSocket::Udp(s), ClientAddress::Inet(addr)) => s.send_to(data, addr),
            (DgramSocket::Unix(s), ClientAddress::Unix(Some(path))) => s.send_to(data, path),
            (DgramSocket::Unix(_), ClientAddress::Unix(None)) => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "cannot reply to an unnamed Unix datagram socket (the client never bound)",
            )),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "address family does not match the socket",
            )),
        }
    }

    /// Receives one datagram of at most `max` bytes (the rest of a longer one is dropped, as
    /// in Python) without waiting: `WouldBlock` when none is queued.
    pub(crate) fn recv_from(&self, max: usize) -> io::Result<(Vec<u8>, ClientAddress)> {
        let mut buf = vec![0; max];
        let (n, from) = match &*self.0 {
            DgramSocket::Udp(s) => {
                let (n, from) = recv_now::<SockaddrStorage>(s.as_fd(), &mut buf)?;
                let from = ClientAddress::from_inet(from.as_ref()).ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        "datagram from a non-inet sender",
                    )
                })?;
                (n, from)
            }
            DgramSocket::Unix(s) => {
                let (n, from) = recv_now::<UnixAddr>(s.as_fd(), &mut buf)?;
                (n, ClientAddress::from_unix_addr(from.as_ref()))
            }
        };
        buf.truncate(n);
        Ok((buf, from))
    }

    /// The UDP socket, if this is a UDP server.
    pub fn as_udp(&self) -> Option<&UdpSocket> {
        match &*self.0 {
            DgramSocket::Udp(s) => Some(s),
            DgramSocket::Unix(_) => None,
        }
    }

    /// The Unix datagram socket, if this is a Unix datagram server.
    pub fn as_unix(&self) -> Option<&UnixDatagram> {
        match &*self.0 {
            DgramSocket::Udp(_) => None,
            DgramSocket::Unix(s) => Some(s),
        }
    }
}

impl AsFd for DatagramSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match &*self.0 {
            DgramSocket::Udp(s) => s.as_fd(),
            DgramSocket::Unix(s) => s.as_fd(),
        }
    }
}

/// One received datagram and the socket it arrived on: Python's `(data, socket)` request.
#[derive(Debug)]
pub struct Datagram {
    /// The bytes of the datagram.
    pub data: Vec<u8>,
    /// The server's socket, to reply on.
    pub socket: DatagramSocket,
}
