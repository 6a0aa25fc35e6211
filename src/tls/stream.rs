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
//! - A connection whose TLS failed, or whose response was cut short, sends nothing more:
//!   not even `close_notify`, which would tell the client that what it got is whole.

use std::fmt;
use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::{AsFd, AsRawFd};
use std::sync::{Mutex, MutexGuard, PoisonError, TryLockError};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{recv, sendmsg, MsgFlags};
use rustls::ServerConnection;

/// The answer to a plain HTTP request on a TLS port, sent in the clear: browsers and curl
/// show it, where a TLS alert would only be a cryptic failure.
const PLAIN_HTTP_BODY: &str = "400 Bad Request: this port speaks HTTPS; use an https:// URL.\n";

fn plain_http_answer() -> String {
    format!(
        "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{PLAIN_HTTP_BODY}",
        PLAIN_HTTP_BODY.len()
    )
}

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
    /// The TLS failed or the response was cut short: what rustls still holds (an alert
    /// already tried, the rest of a response) is dropped, and no `close_notify` is sent.
    cut: bool,
    /// Encrypted bytes the socket has taken: progress even when no plaintext moves.
    sent: u64,
    /// The client's `close_notify` has been decrypted: after the plaintext rustls holds,
    /// the stream ends, and epoll will not say so (the socket may stay open and empty).
    peer_closed: bool,
}

/// The client broke the TLS (a failed handshake, a bad record, a plain HTTP request): a
/// disconnect, logged at debug, and not a failure of the server's to report to
/// `handle_error` (Python drops the `ssl.SSLError` of a handshake in `get_request`).
#[derive(Debug)]
pub(crate) struct TlsFailure(String);

impl fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TLS: {}", self.0)
    }
}

impl std::error::Error for TlsFailure {}

impl TlsFailure {
    /// Whether `err`, or an error it wraps, is a TLS failure of the client's.
    pub(crate) fn is_cause_of(err: &(dyn std::error::Error + 'static)) -> bool {
        let mut cause = Some(err);
        while let Some(err) = cause {
            if err.is::<TlsFailure>() {
                return true;
            }
            if let Some(io) = err.downcast_ref::<io::Error>() {
                if io.get_ref().is_some_and(|inner| inner.is::<TlsFailure>()) {
                    return true;
                }
            }
            cause = err.source();
        }
        false
    }
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
                cut: false,
                sent: 0,
                peer_closed: false,
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
            if !self.receive(&mut state, flags)? {
                return Ok(0);
            }
        }
    }

    /// One read from the socket: its records processed, and what they call for (the
    /// handshake's next flight, an alert) sent if the socket takes it. `false` once the
    /// client has closed.
    fn receive(&self, state: &mut State, flags: MsgFlags) -> io::Result<bool> {
        if state.eof {
            return Ok(false);
        }
        if state.conn.is_handshaking() {
            // A blocking read waits as long as the socket's read timeout (the HTTP layer's
            // head timeout, or none); the handshake keeps its own, shorter limit.
            let left = self
                .handshake_deadline
                .saturating_duration_since(Instant::now());
            if left.is_zero() {
                state.cut();
                return Err(self.failed("the handshake took too long"));
            }
            if !flags.contains(MsgFlags::MSG_DONTWAIT) {
                let wait = self.tcp.read_timeout()?.map_or(left, |t| t.min(left));
                if !readable_within(&self.tcp, wait)? {
                    if wait < left {
                        // The socket's own read timeout, as the read would have said.
                        return Err(io::Error::new(
                            io::ErrorKind::WouldBlock,
                            "no data within the read timeout",
                        ));
                    }
                    state.cut();
                    return Err(self.failed("the handshake took too long"));
                }
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
        loop {
            match conn.read_tls(&mut raw) {
                Ok(0) => {
                    state.eof = true;
                    return Ok(false);
                }
                Ok(_) => break,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                // rustls's own refusals (a handshake message larger than its buffer):
                // the client's failure, not the server's.
                Err(err)
                    if matches!(
                        err.kind(),
                        io::ErrorKind::InvalidData | io::ErrorKind::Other
                    ) =>
                {
                    state.cut();
                    return Err(self.failed(&err.to_string()));
                }
                Err(err) => return Err(err),
            }
        }
        let processed = state.conn.process_new_packets();
        if let Ok(io_state) = &processed {
            state.peer_closed |= io_state.peer_has_closed();
        }
        if let Err(err) = processed {
            if state.first_byte.is_some_and(|b| b.is_ascii_uppercase()) {
                let answer = plain_http_answer();
                let _ = send_raw(&self.tcp, answer.as_bytes(), MsgFlags::MSG_DONTWAIT);
                state.cut();
                return Err(self.failed("a plain HTTP request on a TLS port"));
            }
            // The alert that says why, if the socket takes it now; then nothing more.
            let _ = state.flush(&self.tcp, MsgFlags::MSG_DONTWAIT);
            state.cut();
            return Err(self.failed(&err.to_string()));
        }
        match state.flush(&self.tcp, flags) {
            Ok(()) => Ok(true),
            // The handshake's answer waits, counted as unsent output.
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => Ok(true),
            Err(err) => Err(err),
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
        if !flags.contains(MsgFlags::MSG_DONTWAIT) {
            // A server that speaks first (a greeting) must wait for the client's hello:
            // what it writes before the handshake would only wait in the session.
            while state.conn.is_handshaking() {
                if !self.receive(&mut state, flags)? {
                    return Err(io::Error::new(
                        io::ErrorKind::BrokenPipe,
                        "the client closed during the TLS handshake",
                    ));
                }
            }
        }
        state.flush(&self.tcp, flags)?;
        // Without waiting, before the handshake is done, rustls keeps the plaintext (up to
        // its buffer limit) and sends it once the handshake that reads drive is over.
        let taken = state.conn.writer().write_vectored(data)?;
        if taken == 0 && data.iter().any(|d| !d.is_empty()) {
            return Err(io::Error::new(
                io::ErrorKind::OutOfMemory,
                "more than the TLS session buffers was written before its handshake",
            ));
        }
        match state.flush(&self.tcp, flags) {
            Ok(()) => Ok(taken),
            Err(err) if err.kind() == io::ErrorKind::WouldBlock && taken > 0 => Ok(taken),
            Err(err) => Err(err),
        }
    }

    /// Whether encrypted records wait for the socket.
    pub(crate) fn has_unsent(&self) -> bool {
        let state = self.lock();
        !state.cut && state.conn.wants_write()
    }

    /// Whether a read would return without the socket: the end of the stream, announced by
    /// the client's `close_notify`, waits in the session.
    pub(crate) fn holds_input(&self) -> bool {
        self.lock().peer_closed
    }

    /// Encrypted bytes the socket has taken so far.
    pub(crate) fn sent(&self) -> u64 {
        self.lock().sent
    }

    /// The response was cut short (the client is gone, a file shrank): nothing more is
    /// sent, and the end is a bare TCP close that the client sees as a truncation.
    pub(crate) fn cut(&self) {
        self.lock().cut();
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

    /// Ends the writing side with `close_notify` (sent if the socket takes it now, once the
    /// handshake is over), then shuts the TCP stream down. While another thread waits in a read of this session the
    /// TCP stream is shut down at once, without `close_notify`: the shutdown is what ends
    /// that wait.
    pub(crate) fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        if how != Shutdown::Read {
            let state = match self.state.try_lock() {
                Ok(state) => Some(state),
                Err(TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
                Err(TryLockError::WouldBlock) => None,
            };
            if let Some(mut state) = state {
                // Before the handshake is over there is no session to close: a client
                // that never finished (or never began) one gets a bare close, as a failed
                // handshake does, not a plaintext alert.
                if !state.closing && !state.cut && !state.conn.is_handshaking() {
                    state.closing = true;
                    state.conn.send_close_notify();
                    let _ = state.flush(&self.tcp, MsgFlags::MSG_DONTWAIT);
                }
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
        io::Error::new(
            io::ErrorKind::ConnectionAborted,
            TlsFailure(why.to_string()),
        )
    }
}

impl State {
    fn cut(&mut self) {
        self.cut = true;
        self.closing = true;
    }

    /// Sends queued records until none is left or the socket refuses (`WouldBlock`). After
    /// a cut, nothing leaves.
    fn flush(&mut self, tcp: &TcpStream, flags: MsgFlags) -> io::Result<()> {
        if self.cut {
            return Ok(());
        }
        let mut raw = Raw {
            tcp,
            flags,
            first_byte: None,
        };
        while self.conn.wants_write() {
            match self.conn.write_tls(&mut raw) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.sent += n as u64,
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
