//! One TLS connection: the TCP stream and rustls's state for it.
//!
//! It is read and written the way the plain stream is, waiting or not (`MSG_DONTWAIT`), so
//! that every concurrency strategy and the event loop serve TLS without knowing it:
//!
//! - A read returns plaintext. Handshake records are answered on the way; on an event loop
//!   a handshake advances a flight per wake-up and never waits.
//! - A write takes plaintext and returns how much rustls took (at most its 64 KiB buffer).
//!   Records the socket did not take stay queued ("unsent"): a write that must not wait
//!   says `WouldBlock` until they have left, and the output layer counts them as output
//!   still waiting, so a connection parks for writability while any are left.
//! - A short non-blocking read means rustls holds no plaintext either: what is left waits
//!   in the kernel, where epoll sees it.

use std::fmt;
use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::{AsFd, AsRawFd};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{recv, sendmsg, MsgFlags};
use rustls::ServerConnection;

/// The answer to a plain HTTP request on a TLS port, sent in the clear: browsers and curl
/// show it, where a TLS alert would only be a cryptic failure.
const PLAIN_HTTP_ANSWER: &[u8] = b"HTTP/1.1 400 Bad Request\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Length: 62\r\n\
Connection: close\r\n\
\r\n\
400 Bad Request: this port speaks HTTPS; use an https:// URL.\n";

pub(crate) struct TlsStream {
    tcp: TcpStream,
    state: Mutex<State>,
    /// When a handshake not finished by then fails.
    handshake_deadline: Instant,
}

struct State {
    conn: ServerConnection,
    /// The client closed its side.
    eof: bool,
    /// The first byte the client sent: a TLS record starts with 0x16, a plain HTTP request
    /// with a method's letter.
    first_byte: Option<u8>,
    /// `close_notify` is queued (or the connection failed): nothing more is written.
    closing: bool,
}

/// What a TLS connection negotiated, and the client's certificates (mutual TLS): Python's
/// `SSLSocket.version()`, `cipher()`, `selected_alpn_protocol()` and `getpeercert()`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsInfo {
    /// `"TLSv1.3"` or `"TLSv1.2"`; `None` before the handshake is done.
    pub protocol_version: Option<String>,
    /// The cipher suite, as IANA names it (`TLS13_AES_128_GCM_SHA256`).
    pub cipher_suite: Option<String>,
    /// The protocol agreed by ALPN (`b"http/1.1"`), if the client offered any.
    pub alpn_protocol: Option<Vec<u8>>,
    /// The host name the client asked for (SNI).
    pub server_name: Option<String>,
    /// The client's certificate chain, DER-encoded, its own certificate first; empty
    /// unless the server asks for one and the client sent it.
    pub peer_certificates: Vec<Vec<u8>>,
}

impl TlsStream {
    pub(crate) fn new(tcp: TcpStream, conn: ServerConnection, handshake_deadline: Instant) -> Self {
        TlsStream {
            tcp,
            state: Mutex::new(State {
                conn,
                eof: false,
                first_byte: None,
                closing: false,
            }),
            handshake_deadline,
        }
    }

    pub(crate) fn tcp(&self) -> &TcpStream {
        &self.tcp
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reads plaintext into `buf`: 0 once the client closed. With `MSG_DONTWAIT`,
    /// `WouldBlock` when none has arrived; else waits, each wait bounded by the socket's
    /// read timeout.
    pub(crate) fn read(&self, buf: &mut [u8], flags: MsgFlags) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let mut state = self.lock();
        loop {
            match state.conn.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                // Closed without close_notify: HTTP frames its own messages, so a cut is
                // seen there; to the reader it is the end of the stream (as for nginx).
                Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(err) => return Err(err),
            }
            if state.eof {
                return Ok(0);
            }
            if state.conn.is_handshaking() && Instant::now() >= self.handshake_deadline {
                state.closing = true;
                return Err(self.failed("the handshake took too long"));
            }
            // A blocking read waits as long as the socket's read timeout (the HTTP layer's
            // head timeout); a client that sends part of its hello and then nothing must
            // still be cut off at the handshake's own limit, as on the event loop.
            if state.conn.is_handshaking() && !flags.contains(MsgFlags::MSG_DONTWAIT) {
                let left = self
                    .handshake_deadline
                    .saturating_duration_since(Instant::now());
                let shorter = self.tcp.read_timeout()?.is_none_or(|t| left < t);
                if shorter && !readable_within(&self.tcp, left)? {
                    state.closing = true;
                    return Err(self.failed("the handshake took too long"));
                }
            }
            let State {
                conn, first_byte, ..
            } = &mut *state;
            let mut raw = Raw {
                tcp: &self.tcp,
                flags,
                first_byte: Some(first_byte),
            };
            match conn.read_tls(&mut raw) {
                Ok(0) => {
                    state.eof = true;
                    return Ok(0);
                }
                Ok(_) => {}
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(err),
            }
            if let Err(err) = state.conn.process_new_packets() {
                state.closing = true;
                if state.first_byte.is_some_and(|b| b.is_ascii_uppercase()) {
                    let _ = send_raw(&self.tcp, PLAIN_HTTP_ANSWER, MsgFlags::MSG_DONTWAIT);
                    return Err(self.failed("a plain HTTP request on a TLS port"));
                }
                // The alert that says why, if the socket takes it.
                let _ = state.flush(&self.tcp, MsgFlags::MSG_DONTWAIT);
                return Err(self.failed(&err.to_string()));
            }
            match state.flush(&self.tcp, flags) {
                Ok(()) => {}
                // The handshake's answer waits, counted as unsent output.
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                Err(err) => return Err(err),
            }
        }
    }

    /// Encrypts what rustls takes of `data` and sends what the socket takes of it; returns
    /// the plaintext bytes taken. `WouldBlock` (with `MSG_DONTWAIT`, or after the socket's
    /// write timeout) while earlier records are still unsent.
    pub(crate) fn write(&self, data: &[IoSlice<'_>], flags: MsgFlags) -> io::Result<usize> {
        let mut state = self.lock();
        if state.closing {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the TLS connection is closing",
            ));
        }
        state.flush(&self.tcp, flags)?;
        let taken = state.conn.writer().write_vectored(data)?;
        match state.flush(&self.tcp, flags) {
            Ok(()) => Ok(taken),
            Err(err) if err.kind() == io::ErrorKind::WouldBlock && taken > 0 => Ok(taken),
            Err(err) => Err(err),
        }
    }

    /// Whether encrypted records wait for the socket.
    pub(crate) fn has_unsent(&self) -> bool {
        self.lock().conn.wants_write()
    }

    /// Sends the records that wait; `true` once none is left.
    pub(crate) fn flush_unsent(&self, flags: MsgFlags) -> io::Result<bool> {
        match self.lock().flush(&self.tcp, flags) {
            Ok(()) => Ok(true),
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// Until when the handshake may go on, while it does.
    pub(crate) fn handshake_deadline(&self) -> Option<Instant> {
        self.lock()
            .conn
            .is_handshaking()
            .then_some(self.handshake_deadline)
    }

    /// Ends the writing side with `close_notify` (sent if the socket takes it now), then
    /// shuts the TCP stream down.
    pub(crate) fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        if how != Shutdown::Read {
            let mut state = self.lock();
            if !state.closing {
                state.closing = true;
                state.conn.send_close_notify();
                let _ = state.flush(&self.tcp, MsgFlags::MSG_DONTWAIT);
            }
        }
        self.tcp.shutdown(how)
    }

    pub(crate) fn info(&self) -> TlsInfo {
        let state = self.lock();
        let conn = &state.conn;
        TlsInfo {
            protocol_version: conn.protocol_version().map(|v| match v {
                rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3".to_string(),
                rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2".to_string(),
                other => format!("{other:?}"),
            }),
            cipher_suite: conn
                .negotiated_cipher_suite()
                .and_then(|s| s.suite().as_str())
                .map(str::to_string),
            alpn_protocol: conn.alpn_protocol().map(<[u8]>::to_vec),
            server_name: conn.server_name().map(str::to_string),
            peer_certificates: conn
                .peer_certificates()
                .unwrap_or_default()
                .iter()
                .map(|c| c.as_ref().to_vec())
                .collect(),
        }
    }

    /// A failure of the TLS layer, logged and returned as a disconnect: the client is
    /// refused, and the server has nothing to report beyond a debug line (nginx logs
    /// failed handshakes at `info`).
    fn failed(&self, why: &str) -> io::Error {
        let peer = self
            .tcp
            .peer_addr()
            .map_or_else(|_| "a client".to_string(), |a| a.to_string());
        log::debug!(target: "socketserver::tls", "{peer}: TLS failed: {why}");
        io::Error::new(io::ErrorKind::ConnectionAborted, format!("TLS: {why}"))
    }
}

impl State {
    /// Sends queued records until none is left or the socket refuses (`WouldBlock`).
    fn flush(&mut self, tcp: &TcpStream, flags: MsgFlags) -> io::Result<()> {
        let mut raw = Raw {
            tcp,
            flags,
            first_byte: None,
        };
        while self.conn.wants_write() {
            match self.conn.write_tls(&mut raw) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err),
            }
        }
        Ok(())
    }
}

impl fmt::Debug for TlsStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsStream")
            .field("tcp", &self.tcp)
            .finish_non_exhaustive()
    }
}

/// The TCP stream as rustls reads and writes it, with the caller's flags.
struct Raw<'a> {
    tcp: &'a TcpStream,
    flags: MsgFlags,
    /// Where to note the first byte received, if it is not known yet.
    first_byte: Option<&'a mut Option<u8>>,
}

impl Read for Raw<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = recv(self.tcp.as_raw_fd(), buf, self.flags)?;
        if let Some(first) = self.first_byte.as_deref_mut() {
            if first.is_none() && n > 0 {
                *first = Some(buf[0]);
            }
        }
        Ok(n)
    }
}

impl Write for Raw<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        send_raw(self.tcp, buf, self.flags)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let flags = self.flags | MsgFlags::MSG_NOSIGNAL;
        Ok(sendmsg::<()>(self.tcp.as_raw_fd(), bufs, &[], flags, None)?)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Waits at most `limit` for input (or the end) on `tcp`; `false` if none came.
fn readable_within(tcp: &TcpStream, limit: Duration) -> io::Result<bool> {
    let millis = limit.as_millis().saturating_add(1);
    let timeout = PollTimeout::try_from(millis).unwrap_or(PollTimeout::MAX);
    let mut fds = [PollFd::new(tcp.as_fd(), PollFlags::POLLIN)];
    loop {
        match poll(&mut fds, timeout) {
            Ok(ready) => return Ok(ready > 0),
            Err(nix::errno::Errno::EINTR) => {}
            Err(err) => return Err(err.into()),
        }
    }
}

/// One `send`, never a SIGPIPE.
fn send_raw(tcp: &TcpStream, buf: &[u8], flags: MsgFlags) -> io::Result<usize> {
    let flags = flags | MsgFlags::MSG_NOSIGNAL;
    Ok(nix::sys::socket::send(tcp.as_raw_fd(), buf, flags)?)
}
