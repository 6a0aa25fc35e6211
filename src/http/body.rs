//! The request body: a reader that stops where the request ends.
//!
//! It decodes `Content-Length` and `chunked` framing, never reads into the next pipelined
//! request, sends `100 Continue` the first time a handler reads a body the client is holding
//! back, and remembers why a read failed so the server can answer with the right status.
//! On an event loop the body has been read ahead (into the connection's buffer, or a
//! [`Spool`] when it is larger or chunked) before the handler runs, so reading it never
//! waits for the client.

use std::io::{self, BufRead, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use http::StatusCode;

use super::chunked::{ChunkedDecoder, Malformed};
use super::head::Framing;
use super::socket::TimedSocket;
use super::spool::Spool;
use crate::handler::Rfile;

/// The body of the request being handled: Python's `rfile`, bounded to this request.
///
/// Reading past the end gives end-of-file, not the next request. A malformed chunked body,
/// one larger than the server's `max_body_size`, or a client too slow to send it fails the
/// read; if the handler then returns the error without having answered, the server answers
/// 400, 413 or 408 for it.
pub struct Body<'a> {
    input: &'a mut Rfile,
    socket: &'a mut TimedSocket,
    framing: Framing,
    /// What is left to read of the body on the connection.
    wire: Wire,
    /// The body, read ahead whole; reads come from here.
    spool: Option<&'a mut Spool>,
    /// Not readable yet: `handle_expect_100` runs before the body is asked for.
    held: bool,
    received: u64,
    timeout: Duration,
    /// `Expect: 100-continue` was sent and no 100 yet.
    continue_pending: bool,
    response_started: &'a AtomicBool,
    failure: Option<StatusCode>,
    /// Why a body read whole was refused (not UTF-8, not the JSON asked for).
    refusal: Option<String>,
}

#[derive(Debug)]
enum Wire {
    Length(u64),
    Chunked(ChunkedDecoder),
    Done,
}

impl<'a> Body<'a> {
    /// A body read from the connection as the handler asks for it.
    pub(crate) fn new(
        input: &'a mut Rfile,
        socket: &'a mut TimedSocket,
        framing: Framing,
        max_size: u64,
        timeout: Duration,
        expect_continue: bool,
        response_started: &'a AtomicBool,
    ) -> Self {
        let wire = match framing {
            Framing::Length(0) => Wire::Done,
            Framing::Length(n) => Wire::Length(n),
            Framing::Chunked => Wire::Chunked(ChunkedDecoder::new(max_size)),
        };
        Body {
            input,
            socket,
            framing,
            continue_pending: expect_continue && !matches!(wire, Wire::Done),
            wire,
            spool: None,
            held: false,
            received: 0,
            timeout,
            response_started,
            failure: None,
            refusal: None,
        }
    }

    /// The same body, read ahead whole into `spool`.
    pub(crate) fn spooled(mut self, spool: &'a mut Spool) -> Self {
        self.wire = Wire::Done;
        self.continue_pending = false;
        self.spool = Some(spool);
        self
    }

    /// The same body, not to be read yet (the client waits for `100 Continue`).
    pub(crate) fn held(mut self) -> Self {
        self.held = true;
        self
    }

    /// The declared length of a `Content-Length` body; `None` for a chunked one.
    pub fn content_length(&self) -> Option<u64> {
        match self.framing {
            Framing::Length(n) => Some(n),
            Framing::Chunked => None,
        }
    }

    /// Whether the body is chunked.
    pub fn is_chunked(&self) -> bool {
        self.framing == Framing::Chunked
    }

    /// The body's length if it is known before it is read: its `Content-Length`, or the
    /// length of a chunked body the server has read ahead.
    pub fn known_length(&self) -> Option<u64> {
        match &self.spool {
            Some(spool) => Some(spool.len()),
            None => self.content_length(),
        }
    }

    /// Bytes buffered after what this body has consumed: the rest of the body or the next
    /// pipelined request.
    pub(crate) fn input_buffer(&self) -> &[u8] {
        self.input.buffer()
    }

    /// The connection's input, for a look at what follows the body.
    pub(crate) fn input_mut(&mut self) -> &mut Rfile {
        self.input
    }

    /// The spooled body, for a reader that wants it whole (CGI).
    pub(crate) fn spool_mut(&mut self) -> Option<&mut Spool> {
        self.spool.as_deref_mut()
    }

    /// Body bytes read so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Whether the whole body has been read.
    pub fn is_complete(&self) -> bool {
        match &self.spool {
            Some(spool) => spool.remaining() == 0,
            None => self.wire_complete(),
        }
    }

    /// Whether nothing of the body is left on the connection (read by the handler, or
    /// ahead of it).
    pub(crate) fn wire_complete(&self) -> bool {
        matches!(self.wire, Wire::Done)
    }

    /// The status a failed read calls for (400, 408 or 413), if a read failed.
    pub fn failure(&self) -> Option<StatusCode> {
        self.failure
    }

    /// Reads the rest of the body into a vector (bounded by the server's `max_body_size`).
    pub fn read_all(&mut self) -> io::Result<Vec<u8>> {
        let mut data = Vec::new();
        if let Some(n) = self.known_length() {
            data.reserve(n.min(1 << 20) as usize);
        }
        self.read_to_end(&mut data)?;
        Ok(data)
    }

    /// The client asked for `100 Continue` and has not been sent it: it holds the body back.
    pub(crate) fn awaits_continue(&self) -> bool {
        self.continue_pending || self.held
    }

    /// After the handler: reads and discards up to `max` unread bytes so the connection can
    /// carry the next request. `false` if the body is not done by then (or a client waiting
    /// for `100 Continue` was never told to send it): the connection must close.
    pub(crate) fn drain(&mut self, max: u64) -> bool {
        if self.wire_complete() {
            return true;
        }
        if self.awaits_continue() {
            return false;
        }
        let mut budget = max;
        let mut scratch = [0u8; 8192];
        while !self.wire_complete() {
            let want = scratch.len().min(budget.min(usize::MAX as u64) as usize);
            if want == 0 {
                return false;
            }
            match self.read(&mut scratch[..want]) {
                Ok(0) => return self.wire_complete(),
                Ok(n) => budget -= n as u64,
                Err(_) => return false,
            }
        }
        true
    }

    fn fail(&mut self, status: StatusCode, kind: io::ErrorKind, message: &str) -> io::Error {
        self.failure.get_or_insert(status);
        self.wire = Wire::Done;
        io::Error::new(kind, message.to_string())
    }

    /// Fails the body with 400 for `message`: it was read, and is not what it must be.
    pub(crate) fn refuse(&mut self, message: &str) -> io::Error {
        self.failure.get_or_insert(StatusCode::BAD_REQUEST);
        self.refusal = Some(message.to_string());
        io::Error::new(io::ErrorKind::InvalidData, message.to_string())
    }

    /// Why the body, read whole, was refused: the connection is still in step.
    pub(crate) fn refusal(&self) -> Option<&str> {
        self.refusal.as_deref()
    }

    fn malformed(&mut self, malformed: Malformed) -> io::Error {
        self.fail(
            malformed.status,
            io::ErrorKind::InvalidData,
            malformed.message,
        )
    }

    fn send_continue(&mut self) -> io::Result<()> {
        if std::mem::take(&mut self.continue_pending)
            && !self.response_started.load(Ordering::Acquire)
        {
            use io::Write;
            let mut connection = self.socket.connection();
            connection.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        }
        Ok(())
    }

    /// Makes sure some input is buffered, reading more if there is none; fails on
    /// end-of-file.
    fn fill(&mut self) -> io::Result<()> {
        if !self.input.buffer().is_empty() {
            return Ok(());
        }
        self.socket.set_read_timeout(self.timeout)?;
        loop {
            match self.input.fill_buf() {
                Ok([]) => {
                    return Err(self.fail(
                        StatusCode::BAD_REQUEST,
                        io::ErrorKind::UnexpectedEof,
                        "the client closed the connection before the end of the body",
                    ))
                }
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(self.fail(
                        StatusCode::REQUEST_TIMEOUT,
                        io::ErrorKind::TimedOut,
                        "timed out reading the request body",
                    ))
                }
                Err(e) => {
                    self.wire = Wire::Done;
                    return Err(e);
                }
            }
        }
    }

    /// Reads body bytes from the connection into `out`.
    fn read_wire(&mut self, out: &mut [u8]) -> io::Result<usize> {
        self.send_continue()?;
        loop {
            match &mut self.wire {
                Wire::Done => return Ok(0),
                Wire::Length(remaining) => {
                    let remaining = *remaining;
                    self.fill()?;
                    let available = self.input.buffer();
                    let n = available
                        .len()
                        .min(out.len())
                        .min(remaining.min(usize::MAX as u64) as usize);
                    out[..n].copy_from_slice(&available[..n]);
                    self.input.consume(n);
                    let left = remaining - n as u64;
                    self.wire = if left == 0 {
                        Wire::Done
                    } else {
                        Wire::Length(left)
                    };
                    return Ok(n);
                }
                Wire::Chunked(decoder) if decoder.is_done() => self.wire = Wire::Done,
                Wire::Chunked(_) => {
                    self.fill()?;
                    let Wire::Chunked(decoder) = &mut self.wire else {
                        unreachable!("the wire is chunked")
                    };
                    // No more data than `out` holds: what the decoder takes, it has given.
                    let available = self.input.buffer();
                    let piece = &available[..available.len().min(out.len())];
                    let decoded = match decoder.decode(piece) {
                        Ok(decoded) => decoded,
                        Err(malformed) => return Err(self.malformed(malformed)),
                    };
                    let n = decoded.data.len();
                    out[..n].copy_from_slice(decoded.data);
                    let consumed = decoded.consumed;
                    self.input.consume(consumed);
                    if n > 0 {
                        return Ok(n);
                    }
                }
            }
        }
    }
}

impl Read for Body<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        if self.held {
            return Err(io::Error::other(
                "the body can be read once handle_expect_100 has returned",
            ));
        }
        let n = match &mut self.spool {
            Some(spool) => spool.read(out)?,
            None => self.read_wire(out)?,
        };
        self.received += n as u64;
        Ok(n)
    }
}

impl std::fmt::Debug for Body<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Body")
            .field("framing", &self.framing)
            .field("wire", &self.wire)
            .field("spooled", &self.spool.is_some())
            .field("received", &self.received)
            .field("failure", &self.failure)
            .finish_non_exhaustive()
    }
}
