//! The request body: a reader that stops where the request ends.
//!
//! It decodes `Content-Length` and `chunked` framing, never reads into the next pipelined
//! request, sends `100 Continue` the first time a handler reads a body the client is holding
//! back, and remembers why a read failed so the server can answer with the right status.

use std::io::{self, BufRead, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use http::StatusCode;

use super::head::Framing;
use super::socket::TimedSocket;
use crate::handler::Rfile;

/// Longest chunk-size line (size, extensions and line end).
const MAX_CHUNK_LINE: usize = 4096;
/// Largest trailer section, which is read and discarded.
const MAX_TRAILER_BYTES: usize = 16 * 1024;

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
    state: State,
    max_size: u64,
    received: u64,
    timeout: Duration,
    /// `Expect: 100-continue` was sent and no 100 yet.
    continue_pending: bool,
    response_started: &'a AtomicBool,
    failure: Option<StatusCode>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Length(u64),
    ChunkSize,
    ChunkData(u64),
    ChunkEnd,
    Trailers,
    Done,
}

impl<'a> Body<'a> {
    pub(crate) fn new(
        input: &'a mut Rfile,
        socket: &'a mut TimedSocket,
        framing: Framing,
        max_size: u64,
        timeout: Duration,
        expect_continue: bool,
        response_started: &'a AtomicBool,
    ) -> Self {
        let state = match framing {
            Framing::Length(0) => State::Done,
            Framing::Length(n) => State::Length(n),
            Framing::Chunked => State::ChunkSize,
        };
        Body {
            input,
            socket,
            framing,
            state,
            max_size,
            received: 0,
            timeout,
            continue_pending: expect_continue && state != State::Done,
            response_started,
            failure: None,
        }
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

    /// Bytes buffered after what this body has consumed: the rest of the body or the next
    /// pipelined request.
    pub(crate) fn input_buffer(&self) -> &[u8] {
        self.input.buffer()
    }

    /// Body bytes read so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Whether the whole body has been read.
    pub fn is_complete(&self) -> bool {
        self.state == State::Done
    }

    /// The status a failed read calls for (400, 408 or 413), if a read failed.
    pub fn failure(&self) -> Option<StatusCode> {
        self.failure
    }

    /// Reads the rest of the body into a vector (bounded by the server's `max_body_size`).
    pub fn read_all(&mut self) -> io::Result<Vec<u8>> {
        let mut data = Vec::new();
        if let Some(n) = self.content_length() {
            data.reserve(n.min(1 << 20) as usize);
        }
        self.read_to_end(&mut data)?;
        Ok(data)
    }

    /// After the handler: reads and discards up to `max` unread bytes so the connection can
    /// carry the next request. `false` if the body is not done by then (or a client waiting
    /// for `100 Continue` was never told to send it): the connection must close.
    /// The client asked for `100 Continue` and has not been sent it: it holds the body back.
    pub(crate) fn awaits_continue(&self) -> bool {
        self.continue_pending
    }

    pub(crate) fn drain(&mut self, max: u64) -> bool {
        if self.state == State::Done {
            return true;
        }
        if self.continue_pending {
            return false;
        }
        let mut budget = max;
        let mut scratch = [0u8; 8192];
        while self.state != State::Done {
            let want = scratch.len().min(budget.min(usize::MAX as u64) as usize);
            if want == 0 {
                return false;
            }
            match self.read(&mut scratch[..want]) {
                Ok(0) => return self.state == State::Done,
                Ok(n) => budget -= n as u64,
                Err(_) => return false,
            }
        }
        true
    }

    fn fail(&mut self, status: StatusCode, kind: io::ErrorKind, message: &str) -> io::Error {
        self.failure.get_or_insert(status);
        self.state = State::Done;
        io::Error::new(kind, message.to_string())
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

    /// Buffered input, reading more if there is none; fails on end-of-file.
    fn fill(&mut self) -> io::Result<&[u8]> {
        if self.input.buffer().is_empty() {
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
                    Ok(_) => break,
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
                        self.state = State::Done;
                        return Err(e);
                    }
                }
            }
        }
        Ok(self.input.buffer())
    }

    /// Copies up to `remaining` body bytes into `out`.
    fn copy_data(&mut self, out: &mut [u8], remaining: u64) -> io::Result<usize> {
        let available = self.fill()?;
        let n = available
            .len()
            .min(out.len())
            .min(remaining.min(usize::MAX as u64) as usize);
        out[..n].copy_from_slice(&available[..n]);
        self.input.consume(n);
        self.received += n as u64;
        Ok(n)
    }

    /// Reads one line of at most `max` bytes, line end included.
    fn read_line(&mut self, max: usize, what: &str) -> io::Result<Vec<u8>> {
        let mut line = Vec::new();
        loop {
            let available = self.fill()?;
            let (take, done) = match available.iter().position(|&b| b == b'\n') {
                Some(i) => (i + 1, true),
                None => (available.len(), false),
            };
            if line.len() + take > max {
                return Err(self.fail(
                    StatusCode::BAD_REQUEST,
                    io::ErrorKind::InvalidData,
                    &format!("{what} too long"),
                ));
            }
            line.extend_from_slice(&available[..take]);
            self.input.consume(take);
            if done {
                return Ok(line);
            }
        }
    }

    fn read_chunk_size(&mut self) -> io::Result<u64> {
        let line = self.read_line(MAX_CHUNK_LINE, "chunk size line")?;
        let line = trim_line_end(&line);
        let digits_end = line
            .iter()
            .position(|b| !b.is_ascii_hexdigit())
            .unwrap_or(line.len());
        let (digits, rest) = line.split_at(digits_end);
        // After the size: optional whitespace, then nothing or `;extensions`.
        let rest = rest.trim_ascii_start();
        let valid_rest = rest.is_empty() || rest.starts_with(b";");
        if digits.is_empty() || digits.len() > 16 || !valid_rest {
            return Err(self.fail(
                StatusCode::BAD_REQUEST,
                io::ErrorKind::InvalidData,
                "malformed chunk size",
            ));
        }
        let digits = std::str::from_utf8(digits).unwrap_or("");
        u64::from_str_radix(digits, 16).map_err(|_| {
            self.fail(
                StatusCode::BAD_REQUEST,
                io::ErrorKind::InvalidData,
                "malformed chunk size",
            )
        })
    }
}

fn trim_line_end(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

impl Read for Body<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() || self.state == State::Done {
            return Ok(0);
        }
        self.send_continue()?;
        loop {
            match self.state {
                State::Done => return Ok(0),
                State::Length(remaining) => {
                    let n = self.copy_data(out, remaining)?;
                    let left = remaining - n as u64;
                    self.state = if left == 0 {
                        State::Done
                    } else {
                        State::Length(left)
                    };
                    return Ok(n);
                }
                State::ChunkSize => {
                    let size = self.read_chunk_size()?;
                    if size == 0 {
                        self.state = State::Trailers;
                    } else if self.received.saturating_add(size) > self.max_size {
                        return Err(self.fail(
                            StatusCode::PAYLOAD_TOO_LARGE,
                            io::ErrorKind::InvalidData,
                            "the request body is larger than the server accepts",
                        ));
                    } else {
                        self.state = State::ChunkData(size);
                    }
                }
                State::ChunkData(remaining) => {
                    let n = self.copy_data(out, remaining)?;
                    let left = remaining - n as u64;
                    self.state = if left == 0 {
                        State::ChunkEnd
                    } else {
                        State::ChunkData(left)
                    };
                    return Ok(n);
                }
                State::ChunkEnd => {
                    let line = self.read_line(2, "chunk data")?;
                    if !trim_line_end(&line).is_empty() {
                        return Err(self.fail(
                            StatusCode::BAD_REQUEST,
                            io::ErrorKind::InvalidData,
                            "chunk data longer than its size",
                        ));
                    }
                    self.state = State::ChunkSize;
                }
                State::Trailers => {
                    let mut total = 0;
                    loop {
                        let line = self.read_line(MAX_TRAILER_BYTES - total, "trailer section")?;
                        total += line.len();
                        if trim_line_end(&line).is_empty() {
                            break;
                        }
                    }
                    self.state = State::Done;
                    return Ok(0);
                }
            }
        }
    }
}

impl std::fmt::Debug for Body<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Body")
            .field("state", &self.state)
            .field("received", &self.received)
            .field("failure", &self.failure)
            .finish_non_exhaustive()
    }
}
