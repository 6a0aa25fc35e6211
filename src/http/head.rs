//! Reading, parsing and checking a request head: everything before the body.
//!
//! The head is read with deadlines so a slow client cannot hold a connection, parsed by
//! `httparse`, then checked for what parsing alone does not catch: the `Host` rules of HTTP/1.1
//! and every ambiguity of message framing that request smuggling feeds on.

use std::io::{self, BufRead};
use std::mem::MaybeUninit;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::header::{CONTENT_LENGTH, EXPECT, HOST, TRANSFER_ENCODING};
use http::{HeaderName, Method, StatusCode, Version};

use super::handler::is_token_byte;
use super::headers::RequestHeaders;
use super::limits::Limits;
use super::socket::TimedSocket;
use crate::handler::Rfile;

/// A parsed request head. A connection parses each of its heads in place into the one its
/// [`HeadStorage`] keeps, and takes the parts back from the request they were lent to,
/// emptied ([`Head::empty`]): a keep-alive connection's requests reuse the strings, the fields'
/// notes and the header map, so that one answered by the one-call API allocates nothing
/// once the first has been (the header values share the connection's head buffer, see
/// [`parse_head`]), and the head is never moved whole on its way to the handler.
#[derive(Debug, Default)]
pub(crate) struct Head {
    pub method: Method,
    pub target: String,
    pub version: Version,
    pub raw_requestline: Vec<u8>,
    /// The request line without its line ending.
    pub requestline: String,
    pub headers: RequestHeaders,
}

impl Head {
    /// Strings longer than this are freed rather than kept: one long URL must not cost an
    /// idle connection its memory for good.
    const MAX_STRING: usize = 1024;

    /// Empties the head for the next to be parsed into, keeping its storage unless it
    /// grew large. Drops the fields, and with them their shares of the head buffer, which
    /// the buffer can then reuse.
    pub(crate) fn empty(&mut self) {
        /// `value` emptied by `clear`, or freed if it holds more than `MAX_STRING` bytes.
        fn empty_kept<T: Default>(capacity: usize, value: &mut T, clear: fn(&mut T)) {
            if capacity > Head::MAX_STRING {
                *value = T::default();
            } else {
                clear(value);
            }
        }
        empty_kept(self.target.capacity(), &mut self.target, String::clear);
        empty_kept(
            self.requestline.capacity(),
            &mut self.requestline,
            String::clear,
        );
        empty_kept(
            self.raw_requestline.capacity(),
            &mut self.raw_requestline,
            Vec::clear,
        );
        self.headers.recycle();
    }

    /// Whether the head holds nothing of a request: as [`empty`](Self::empty) leaves it.
    fn is_empty(&self) -> bool {
        self.raw_requestline.is_empty()
            && self.requestline.is_empty()
            && self.target.is_empty()
            && self.headers.is_recycled()
    }
}

/// Which of the fields that decide a request's framing its head holds: noted as the
/// fields are, so that the usual head, one `Host` and none of the others, is checked
/// without making the header map.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct FramingFields {
    hosts: usize,
    content_length: bool,
    transfer_encoding: bool,
    expect: bool,
}

impl FramingFields {
    fn note(&mut self, name: &[u8]) {
        let is = |known: &HeaderName| name.eq_ignore_ascii_case(known.as_str().as_bytes());
        match name.len() {
            4 if is(&HOST) => self.hosts += 1,
            14 if is(&CONTENT_LENGTH) => self.content_length = true,
            17 if is(&TRANSFER_ENCODING) => self.transfer_encoding = true,
            6 if is(&EXPECT) => self.expect = true,
            _ => {}
        }
    }
}

/// How the request's body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Framing {
    Length(u64),
    Chunked,
}

/// A request the server answers with an error status, then closes the connection.
#[derive(Debug)]
pub(crate) struct Rejection {
    pub status: StatusCode,
    pub message: String,
    /// The request line, when it was read, for the log.
    pub requestline: String,
    /// The request is a HEAD (known even when its line was not read): the answer has no page.
    pub head: bool,
}

impl Rejection {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Rejection {
            status,
            message: message.into(),
            requestline: String::new(),
            head: false,
        }
    }
}

/// Why no request head came.
#[derive(Debug)]
pub(crate) enum HeadError {
    /// The client closed the connection between requests.
    Closed,
    /// Nothing came within the idle time: close quietly.
    Idle,
    /// Part of a head came, not all of it in time.
    TimedOut,
    /// The head is malformed or too large.
    Rejected(Rejection),
    /// The connection failed.
    Io(io::Error),
}

/// What a connection reads and parses its heads with: the buffer a head is read into, and
/// the [`Head`] it is parsed into. An idle connection on an event loop gives it to
/// its thread's pool, and the next connection with a head to read takes it from there, so
/// that ten thousand idle connections hold none, and a loop that answers each connection's
/// request before the next one's (its own thread) allocates none.
#[derive(Debug, Default)]
pub(crate) struct HeadStorage {
    pub buf: BytesMut,
    pub head: Head,
}

thread_local! {
    /// Storage given back by idle connections on this thread.
    static POOL: std::cell::RefCell<Vec<HeadStorage>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

impl HeadStorage {
    /// The pool's bound: a loop's thread needs one at a time; workers a few each.
    const POOLED: usize = 16;
    /// A new head buffer's room: a browser's head fits.
    const BUFFER: usize = 1024;

    /// Storage for a connection that has a head to read: the pool's, or new.
    pub(crate) fn take() -> HeadStorage {
        POOL.try_with(|pool| pool.borrow_mut().pop())
            .ok()
            .flatten()
            .unwrap_or_else(|| HeadStorage {
                buf: BytesMut::with_capacity(Self::BUFFER),
                head: Head::default(),
            })
    }

    /// Whether this holds memory (storage a connection has not given back).
    pub(crate) fn is_held(&self) -> bool {
        self.buf.capacity() > 0
    }

    /// Gives the storage of a connection with no head begun to the pool (or frees it, if
    /// the pool is full); a connection with part of a head keeps its storage.
    pub(crate) fn give(storage: &mut HeadStorage) {
        if !storage.is_held() || !storage.buf.is_empty() {
            return;
        }
        let mut storage = std::mem::take(storage);
        // Whatever the head still holds (a request closed before its body came) is let go.
        storage.head.empty();
        // `try_with`: storage given back as the thread ends is freed with it.
        let _ = POOL.try_with(|pool| {
            let mut pool = pool.borrow_mut();
            if pool.len() < Self::POOLED {
                pool.push(storage);
            }
        });
    }
}

/// Reads one request head into `buf` (cleared first), consuming exactly the head from
/// `input` so that the body and any pipelined requests stay buffered there.
///
/// Waits `idle` for the first byte, then at most `limits.head_timeout` for the rest;
/// calls `begun` when the first bytes have come.
pub(crate) fn read_head(
    input: &mut Rfile,
    socket: &mut TimedSocket,
    buf: &mut BytesMut,
    limits: &Limits,
    idle: Duration,
    begun: &mut dyn FnMut(),
) -> Result<(), HeadError> {
    buf.clear();
    let mut deadline: Option<Instant> = None;
    loop {
        if take_head(input, buf, limits).map_err(HeadError::Rejected)? {
            return Ok(());
        }
        // `take_head` took everything buffered: the rest must be read.
        let wait = match deadline {
            None => idle,
            Some(d) => d.saturating_duration_since(Instant::now()),
        };
        if wait.is_zero() {
            return Err(HeadError::TimedOut);
        }
        socket.set_read_timeout(wait).map_err(HeadError::Io)?;
        match input.fill_buf() {
            // Between requests, or halfway through a head: nobody is left to answer.
            Ok([]) => return Err(HeadError::Closed),
            Ok(_) => {}
            Err(e) if is_timeout(&e) && deadline.is_none() => return Err(HeadError::Idle),
            Err(e) if is_timeout(&e) => return Err(HeadError::TimedOut),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(HeadError::Io(e)),
        }
        deadline.get_or_insert_with(|| {
            begun();
            Instant::now() + limits.head_timeout
        });
    }
}

/// Moves what `input` holds of a request head into `buf`, up to the end of the head, and
/// leaves the body and pipelined requests buffered; `true` once the head in `buf` is whole.
/// Reads nothing, so it serves both the blocking reader and the event loop, which collects
/// a head of any size this way across reads. Blank lines before a request line are
/// dropped (RFC 9112 2.2).
pub(crate) fn take_head(
    input: &mut Rfile,
    buf: &mut BytesMut,
    limits: &Limits,
) -> Result<bool, Rejection> {
    if buf.is_empty() {
        // Where `head_follows` found it, while answering the request before.
        let found = input.found();
        skip_blank_lines(input);
        let available = input.buffer();
        let found = found
            .and_then(|at| usize::try_from(at.checked_sub(input.position())?).ok())
            .filter(|&end| end <= available.len());
        // The usual case, a whole head in the buffer: copy just the head, not the
        // pipelined requests behind it.
        if let Some(end) = found.or_else(|| head_end(available).map(HeadEnd::len)) {
            buf.extend_from_slice(&available[..end]);
            input.consume(end);
            check_size(buf, limits)?;
            return Ok(true);
        }
    }
    let available = input.buffer();
    if available.is_empty() {
        return Ok(false);
    }
    let old_len = buf.len();
    buf.extend_from_slice(available);
    let end = find_head_end(buf, old_len.saturating_sub(3)).or_else(|| versionless_line_end(buf));
    let head_len = end.unwrap_or(buf.len());
    buf.truncate(head_len);
    input.consume(head_len - old_len);
    check_size(buf, limits)?;
    Ok(end.is_some())
}

fn is_timeout(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// The index just past the blank line that ends a head (`\n\n` or `\n\r\n`), searching
/// from `from`.
pub(crate) fn find_head_end(buf: &[u8], from: usize) -> Option<usize> {
    memchr::memchr_iter(b'\n', &buf[from..]).find_map(|offset| {
        let nl = from + offset;
        match buf.get(nl + 1..) {
            Some([b'\n', ..]) => Some(nl + 2),
            Some([b'\r', b'\n', ..]) => Some(nl + 3),
            _ => None,
        }
    })
}

/// Whether `input` holds a whole request head, after the blank lines that may precede it.
/// Where it ends is noted in `input` for [`take_head`].
pub(crate) fn head_follows(input: &mut Rfile) -> bool {
    let buffered = input.buffer();
    let start = buffered
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(buffered.len());
    match head_end(&buffered[start..]) {
        Some(HeadEnd::BlankLine(end)) => {
            let at = input.position() + (start + end) as u64;
            input.set_found(at);
            true
        }
        // Not noted: a line without a version ends its head only until more of it arrives,
        // when the blank line after its fields does.
        Some(HeadEnd::Versionless(_)) => true,
        None => false,
    }
}

/// Where a head that is all there ends, and what ends it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum HeadEnd {
    /// Just past the blank line after its fields.
    BlankLine(usize),
    /// Just past its one line, which has no version (see [`versionless_line_end`]).
    Versionless(usize),
}

impl HeadEnd {
    fn len(self) -> usize {
        match self {
            HeadEnd::BlankLine(end) | HeadEnd::Versionless(end) => end,
        }
    }
}

/// How the head at the start of `buf` ends, if it is all there.
#[inline]
fn head_end(buf: &[u8]) -> Option<HeadEnd> {
    if buf.is_empty() {
        return None;
    }
    match find_head_end(buf, 0) {
        Some(end) => Some(HeadEnd::BlankLine(end)),
        None => versionless_line_end(buf).map(HeadEnd::Versionless),
    }
}

/// Drops the empty lines buffered before a request line (RFC 9112 2.2: old clients leave
/// them after a POST body); `true` if there were any.
fn skip_blank_lines(input: &mut Rfile) -> bool {
    let blank = input
        .buffer()
        .iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count();
    input.consume(blank);
    blank > 0
}

/// An HTTP/0.9-style request is one line without a version: it has no blank line to wait
/// for, so its line ends the head (and gets its 505 at once).
fn versionless_line_end(buf: &[u8]) -> Option<usize> {
    let nl = memchr::memchr(b'\n', buf)?;
    let line = buf[..nl].strip_suffix(b"\r").unwrap_or(&buf[..nl]);
    let words = line.split(|&b| b == b' ').count();
    (words < 3).then_some(nl + 1)
}

#[inline]
fn check_size(buf: &[u8], limits: &Limits) -> Result<(), Rejection> {
    if buf.len() <= limits.max_request_line.min(limits.max_header_bytes) {
        // The usual head: neither its line nor its fields can be too long.
        return Ok(());
    }
    check_long_head(buf, limits)
}

/// [`check_size`] for a head longer than the shorter limit.
#[cold]
fn check_long_head(buf: &[u8], limits: &Limits) -> Result<(), Rejection> {
    let line_len = match memchr::memchr(b'\n', buf) {
        Some(nl) => nl + 1,
        None => buf.len(),
    };
    if line_len > limits.max_request_line {
        return Err(Rejection {
            head: buf.starts_with(b"HEAD "),
            ..Rejection::new(StatusCode::URI_TOO_LONG, "Request line too long")
        });
    }
    if buf.len() - line_len > limits.max_header_bytes {
        return Err(Rejection {
            head: buf.starts_with(b"HEAD "),
            ..Rejection::new(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "Header section too large",
            )
        });
    }
    Ok(())
}

/// Parses a complete head (as [`read_head`] leaves it in `buf`) into `head`, in place,
/// and says what its framing depends on. The header fields are noted, not made into a map
/// ([`RequestHeaders`]): their values will be slices of `buf`, which they share instead of
/// taking a copy each.
pub(crate) fn parse_head(
    buf: Bytes,
    head: &mut Head,
    limits: &Limits,
) -> Result<FramingFields, Rejection> {
    // A head given back by its request was emptied then; one refused was not.
    if !head.is_empty() {
        head.empty();
    }
    // Left uninitialized for httparse to fill: writing a hundred empty headers first cost
    // more than parsing the head.
    let mut storage =
        [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; Limits::MAX_HEADERS];
    let max = limits.max_headers.min(Limits::MAX_HEADERS);
    let mut request = httparse::Request::new(&mut []);
    let parsed = request.parse_with_uninit_headers(&buf, &mut storage[..max]);
    let line_len = match (&parsed, request.method, request.path) {
        (Ok(httparse::Status::Complete(_)), Some(method), Some(target)) => {
            parsed_line_len(&buf, method, target)
        }
        _ => None,
    };
    let line_len = line_len.unwrap_or_else(|| match memchr::memchr(b'\n', &buf) {
        Some(nl) => nl + 1,
        None => buf.len(),
    });
    let raw_requestline = &mut head.raw_requestline;
    raw_requestline.extend_from_slice(&buf[..line_len]);
    let line = raw_requestline
        .strip_suffix(b"\n")
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .unwrap_or(raw_requestline);
    let reject = |status: StatusCode, message: String| Rejection {
        status,
        message,
        requestline: String::from_utf8_lossy(line).into_owned(),
        head: false,
    };
    if !matches!(parsed, Ok(httparse::Status::Complete(_))) {
        // What httparse takes, this takes too: only a refused line needs telling why.
        check_request_line(line).map_err(|(status, message)| reject(status, message))?;
    }
    match parsed {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => {
            return Err(reject(StatusCode::BAD_REQUEST, "Incomplete request".into()))
        }
        Err(httparse::Error::TooManyHeaders) => {
            return Err(reject(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "Too many headers".into(),
            ))
        }
        Err(err) => {
            return Err(reject(
                StatusCode::BAD_REQUEST,
                format!("Bad request syntax ({err})"),
            ))
        }
    }
    let (Some(method_text), Some(target), Some(minor)) =
        (request.method, request.path, request.version)
    else {
        return Err(reject(StatusCode::BAD_REQUEST, "Bad request syntax".into()));
    };
    let method = Method::from_bytes(method_text.as_bytes())
        .map_err(|_| reject(StatusCode::BAD_REQUEST, "Bad request method".into()))?;
    let version = if minor == 0 {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    check_target(&method, target).map_err(|message| reject(StatusCode::BAD_REQUEST, message))?;
    // Nothing fails from here on. The map is made when a handler reads it: here the fields are only noted.
    let headers = &mut head.headers;
    headers.reserve(request.headers.len());
    let mut fields = FramingFields::default();
    for header in request.headers.iter() {
        fields.note(header.name.as_bytes());
        headers.note(&buf, header.name.as_bytes(), header.value);
    }
    head.target.push_str(target);
    // httparse took the line as method, one space, target, one space and version, each of
    // them text: put together again, they need no second check of their UTF-8.
    let requestline = &mut head.requestline;
    requestline.push_str(method_text);
    requestline.push(' ');
    requestline.push_str(target);
    requestline.push_str(if minor == 0 { " HTTP/1.0" } else { " HTTP/1.1" });
    debug_assert_eq!(
        requestline.as_bytes(),
        head.raw_requestline.trim_ascii_end(),
        "the request line put together again"
    );
    head.method = method;
    head.version = version;
    head.headers.set_head(buf);
    Ok(fields)
}

/// The length, with its line end, of the request line of a head httparse took whole:
/// its method, one space, its target, one space and `HTTP/1.x` (httparse takes nothing
/// else), then CRLF or LF; `None` if `buf` does not read so, for the line to be searched.
fn parsed_line_len(buf: &[u8], method: &str, target: &str) -> Option<usize> {
    if method.as_ptr() != buf.as_ptr() {
        return None;
    }
    let end = method.len() + 1 + target.len() + 1 + b"HTTP/1.1".len();
    match buf.get(end..end + 2)? {
        b"\r\n" => Some(end + 2),
        [b'\n', _] => Some(end + 1),
        _ => None,
    }
}

/// Checks the version of a request line before `httparse` sees it, to tell an unsupported
/// version (505) from a malformed line (400), as Python's `parse_request` does.
fn check_request_line(line: &[u8]) -> Result<(), (StatusCode, String)> {
    let mut words = line.split(|&b| b == b' ');
    let words = [words.next(), words.next(), words.next(), words.next()];
    match words {
        [Some(_), Some(_), Some(version), None] => {
            let Some(number) = version.strip_prefix(b"HTTP/") else {
                return Err((
                    StatusCode::BAD_REQUEST,
                    format!("Bad request version ({})", String::from_utf8_lossy(version)),
                ));
            };
            match number {
                b"1.0" | b"1.1" => Ok(()),
                [major, b'.', minor] if major.is_ascii_digit() && minor.is_ascii_digit() => Err((
                    StatusCode::HTTP_VERSION_NOT_SUPPORTED,
                    format!("Invalid HTTP version ({})", String::from_utf8_lossy(number)),
                )),
                _ => Err((
                    StatusCode::BAD_REQUEST,
                    format!("Bad request version ({})", String::from_utf8_lossy(version)),
                )),
            }
        }
        [Some(b"GET"), Some(_), None, _] => Err((
            StatusCode::HTTP_VERSION_NOT_SUPPORTED,
            "HTTP/0.9 requests are not supported".into(),
        )),
        _ => Err((StatusCode::BAD_REQUEST, "Bad request syntax".into())),
    }
}

/// The request-target forms of RFC 9112 section 3.2.
fn check_target(method: &Method, target: &str) -> Result<(), String> {
    let ok = if target.starts_with('/') {
        true
    } else if target == "*" {
        method == Method::OPTIONS
    } else if method == Method::CONNECT {
        !target.contains('/')
    } else {
        // absolute-form: scheme "://" ...
        target.split_once("://").is_some_and(|(scheme, _)| {
            !scheme.is_empty()
                && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        })
    };
    if ok {
        Ok(())
    } else {
        Err("Bad request target".into())
    }
}

/// Applies the framing and `Host` rules of RFC 9112 to a parsed head. Every ambiguity is a
/// 400 (or 501 for a transfer coding we do not decode): a proxy in front of this server
/// might read the message differently, which is what request smuggling exploits.
pub(crate) fn framing(head: &Head, fields: FramingFields) -> Result<Framing, Rejection> {
    let reject = |status, message: &str| Rejection {
        status,
        message: message.into(),
        requestline: head.requestline.clone(),
        head: false,
    };
    let hosts = fields.hosts;
    if hosts > 1 {
        return Err(reject(StatusCode::BAD_REQUEST, "Multiple Host headers"));
    }
    if hosts == 0 && head.version == Version::HTTP_11 {
        return Err(reject(StatusCode::BAD_REQUEST, "Missing Host header"));
    }

    let has_length = fields.content_length;
    if fields.transfer_encoding {
        if head.version == Version::HTTP_10 {
            return Err(reject(
                StatusCode::BAD_REQUEST,
                "Transfer-Encoding in an HTTP/1.0 request",
            ));
        }
        if has_length {
            return Err(reject(
                StatusCode::BAD_REQUEST,
                "Both Content-Length and Transfer-Encoding",
            ));
        }
        let codings = list_elements(head.headers.raw_strs(TRANSFER_ENCODING.as_str()))
            .ok_or_else(|| reject(StatusCode::BAD_REQUEST, "Malformed Transfer-Encoding"))?;
        let chunked = |c: &str| c.eq_ignore_ascii_case("chunked");
        let chunked_count = codings.iter().filter(|c| chunked(c)).count();
        if !codings.last().is_some_and(|c| chunked(c)) || chunked_count > 1 {
            return Err(reject(
                StatusCode::BAD_REQUEST,
                "Transfer-Encoding must end in a single chunked",
            ));
        }
        if codings.len() > 1 {
            return Err(reject(
                StatusCode::NOT_IMPLEMENTED,
                "Transfer codings other than chunked are not supported",
            ));
        }
        return Ok(Framing::Chunked);
    }
    if has_length {
        let values = list_elements(head.headers.raw_strs(CONTENT_LENGTH.as_str()))
            .ok_or_else(|| reject(StatusCode::BAD_REQUEST, "Malformed Content-Length"))?;
        let mut length = None;
        for value in values {
            let n = parse_length(value)
                .ok_or_else(|| reject(StatusCode::BAD_REQUEST, "Malformed Content-Length"))?;
            if length.is_some_and(|l| l != n) {
                return Err(reject(
                    StatusCode::BAD_REQUEST,
                    "Conflicting Content-Length",
                ));
            }
            length = Some(n);
        }
        return Ok(Framing::Length(length.unwrap_or(0)));
    }
    Ok(Framing::Length(0))
}

/// Whether the client sent `Expect: 100-continue`; other expectations get 417.
pub(crate) fn expects_continue(head: &Head, fields: FramingFields) -> Result<bool, Rejection> {
    if !fields.expect {
        return Ok(false);
    }
    let Some(expect) = head.headers.raw_values(EXPECT.as_str()).next() else {
        return Ok(false);
    };
    if head.version == Version::HTTP_10 {
        // RFC 9110 10.1.1: a server MUST ignore 100-continue in an HTTP/1.0 request.
        return Ok(false);
    }
    if expect.eq_ignore_ascii_case(b"100-continue") {
        Ok(true)
    } else {
        Err(Rejection {
            status: StatusCode::EXPECTATION_FAILED,
            message: "Unsupported expectation".into(),
            requestline: head.requestline.clone(),
            head: false,
        })
    }
}

/// The elements of a comma-separated header list over all its fields (`None` for a value
/// that is not visible ASCII), or `None` if any element is empty or not a token.
fn list_elements<'a>(values: impl Iterator<Item = Option<&'a str>>) -> Option<Vec<&'a str>> {
    let mut elements = Vec::new();
    for value in values {
        let value = value?;
        for element in value.split(',') {
            let element = element.trim_matches([' ', '\t']);
            if element.is_empty() || !element.bytes().all(is_token_byte) {
                return None;
            }
            elements.push(element);
        }
    }
    Some(elements)
}

/// A Content-Length value: decimal digits only (no sign, no hex, no spaces), no overflow.
fn parse_length(value: &str) -> Option<u64> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(raw: &str) -> Result<(Head, FramingFields), Rejection> {
        let buf = Bytes::copy_from_slice(raw.as_bytes());
        let mut head = Head::default();
        parse_head(buf, &mut head, &Limits::default()).map(|fields| (head, fields))
    }

    fn head(raw: &str) -> Result<Head, Rejection> {
        parsed(raw).map(|(head, _)| head)
    }

    #[test]
    fn takes_the_head_that_the_look_ahead_found_and_no_more() {
        let two = b"\r\nGET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n";
        let (mut input, _client) = crate::handler::buffered_rfile(two);
        assert!(head_follows(&mut input));
        assert_eq!(
            input.found(),
            Some(30),
            "past the blank line before it, and the head"
        );
        let mut buf = BytesMut::new();
        assert!(take_head(&mut input, &mut buf, &Limits::default()).unwrap());
        assert_eq!(&buf[..], &two[2..30]);
        // Found from where the first head began: of no use for the second.
        assert_eq!(input.found(), None);
        buf.clear();
        assert!(take_head(&mut input, &mut buf, &Limits::default()).unwrap());
        assert_eq!(&buf[..], &two[30..]);
        assert!(!head_follows(&mut input));
    }

    #[test]
    fn a_partial_head_is_not_one_that_follows() {
        let (mut input, _client) = crate::handler::buffered_rfile(b"\r\n\r\nGET / HTTP/1.1\r\nHo");
        assert!(!head_follows(&mut input));
        assert_eq!(input.found(), None);
        let (mut input, _client) = crate::handler::buffered_rfile(b"GET /\r\n");
        assert!(
            head_follows(&mut input),
            "a line without a version ends its head"
        );
        assert_eq!(input.found(), None, "until the rest of its head arrives");
    }

    #[test]
    fn the_raw_request_line_is_the_first_line_with_its_line_end() {
        let long = format!("/{}", "t".repeat(300));
        for (raw, line) in [
            ("GET / HTTP/1.1\r\nHost: a\r\n\r\n", "GET / HTTP/1.1\r\n"),
            ("GET / HTTP/1.1\nHost: a\n\n", "GET / HTTP/1.1\n"),
            ("POST /x?y=1 HTTP/1.0\r\n\r\n", "POST /x?y=1 HTTP/1.0\r\n"),
            (
                "OPTIONS * HTTP/1.1\nHost: a\r\n\r\n",
                "OPTIONS * HTTP/1.1\n",
            ),
            (
                &format!("GET {long} HTTP/1.1\r\nHost: a\r\n\r\n"),
                &format!("GET {long} HTTP/1.1\r\n"),
            ),
        ] {
            let head = head(raw).unwrap_or_else(|r| panic!("{raw:?}: {}", r.message));
            assert_eq!(String::from_utf8_lossy(&head.raw_requestline), line);
            assert_eq!(head.requestline, line.trim_end());
        }
        // A line httparse refuses is searched for, for the rejection's log line.
        let refused = head("GET  /two-spaces HTTP/1.1\r\nHost: a\r\n\r\n").unwrap_err();
        assert_eq!(refused.requestline, "GET  /two-spaces HTTP/1.1");
        let refused = head("GET / HTTP/2.0\r\nHost: a\r\n\r\n").unwrap_err();
        assert_eq!(refused.status, StatusCode::HTTP_VERSION_NOT_SUPPORTED);
        assert_eq!(refused.requestline, "GET / HTTP/2.0");
    }

    #[test]
    fn finds_the_end_of_a_head_with_crlf_or_bare_lf() {
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\n\r\nrest", 0), Some(18));
        assert_eq!(find_head_end(b"GET / HTTP/1.1\n\nrest", 0), Some(16));
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\nA: b\r\n", 0), None);
    }

    #[test]
    fn a_reused_head_buffer_leaves_the_values_a_handler_kept_intact() {
        // Heads read into one buffer, one after the other, as a keep-alive connection reads
        // them, each parsed into the one head the connection keeps: a value kept from the
        // first must still read as it came once the buffer holds the second.
        let (mut buf, mut head) = (BytesMut::with_capacity(64), Head::default());
        let mut next = |raw: &str, head: &mut Head| {
            buf.extend_from_slice(raw.as_bytes());
            parse_head(buf.split().freeze(), head, &Limits::default()).unwrap();
        };
        next(
            "POST /first HTTP/1.1\r\nHost: one\r\nX-Kept: alpha\r\n\r\n",
            &mut head,
        );
        let kept = head.headers.get("x-kept").unwrap().clone();
        // Lent to a request and given back, as the connection does; or not, as when a
        // request is refused: the next head is parsed over what is left.
        for i in 0..8 {
            if i % 2 == 0 {
                head.empty();
            }
            let raw = format!("GET /n{i} HTTP/1.1\r\nHost: two\r\nX-Other: {i:->40}\r\n\r\n");
            next(&raw, &mut head);
            assert_eq!(head.method, Method::GET);
            assert_eq!(head.target, format!("/n{i}"));
            assert_eq!(head.requestline, format!("GET /n{i} HTTP/1.1"));
            assert_eq!(
                head.raw_requestline,
                format!("GET /n{i} HTTP/1.1\r\n").as_bytes()
            );
            assert_eq!(head.headers.len(), 2, "no field of an earlier head is left");
            assert_eq!(head.headers["host"], "two");
            assert!(head.headers.get("x-kept").is_none());
        }
        assert_eq!(kept, "alpha");
    }

    #[test]
    fn head_storage_that_grew_large_is_freed() {
        let mut head = Head::default();
        let long = format!("/{}", "a".repeat(4000));
        let raw = format!("GET {long} HTTP/1.1\r\nHost: a\r\n\r\n");
        let limits = Limits {
            max_request_line: 8192,
            ..Limits::default()
        };
        parse_head(Bytes::from(raw), &mut head, &limits).unwrap();
        assert_eq!(head.target, long);
        // Read, as a handler reads it: the map is made.
        assert_eq!(head.headers["host"], "a");
        head.empty();
        assert_eq!(head.target.capacity(), 0);
        assert_eq!(head.raw_requestline.capacity(), 0);
        assert_eq!(head.requestline.capacity(), 0);
        assert!(head.headers.capacity() > 0, "a usual header map is kept");
        assert!(head.headers.is_empty());
        assert!(head.headers.is_built());
    }

    #[test]
    fn a_usual_head_is_checked_without_making_its_header_map() {
        let (head, fields) = parsed("GET /x HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\n").unwrap();
        assert_eq!(framing(&head, fields).unwrap(), Framing::Length(0));
        assert!(!expects_continue(&head, fields).unwrap());
        assert!(!head.headers.is_built());
        assert_eq!(head.headers.len(), 2, "made when read");
        // Nor that of a head with a body.
        let raw = "POST / HTTP/1.1\r\nhOsT: a\r\ncontent-LENGTH: 5\r\nExpect: 100-Continue\r\n\r\n";
        let (head, fields) = parsed(raw).unwrap();
        assert_eq!(framing(&head, fields).unwrap(), Framing::Length(5));
        assert!(expects_continue(&head, fields).unwrap());
        assert!(!head.headers.is_built());
        let (head, fields) = parsed("GET / HTTP/1.1\r\nHOST: a\r\nhost: b\r\n\r\n").unwrap();
        assert_eq!(
            framing(&head, fields).unwrap_err().status,
            StatusCode::BAD_REQUEST
        );
    }

    #[test]
    fn parses_a_request() {
        let h = head("POST /x?y=1 HTTP/1.1\r\nHost: a\r\nX: 1\r\nX: 2\r\n\r\n").unwrap();
        assert_eq!(h.method, Method::POST);
        assert_eq!(h.target, "/x?y=1");
        assert_eq!(h.version, Version::HTTP_11);
        assert_eq!(h.headers.get_all("x").iter().count(), 2);
        assert_eq!(h.raw_requestline, b"POST /x?y=1 HTTP/1.1\r\n");
    }

    #[test]
    fn versions() {
        assert_eq!(head("GET / HTTP/2.0\r\n\r\n").unwrap_err().status, 505);
        assert_eq!(head("GET / HTTP/1.2\r\n\r\n").unwrap_err().status, 505);
        assert_eq!(head("GET / HTTP/x.y\r\n\r\n").unwrap_err().status, 400);
        assert_eq!(head("GET / FTP/1.0\r\n\r\n").unwrap_err().status, 400);
        assert_eq!(head("GET /\r\n\r\n").unwrap_err().status, 505);
        assert_eq!(head("GET  / HTTP/1.1\r\n\r\n").unwrap_err().status, 400);
    }

    #[test]
    fn framing_rules() {
        let framing_of = |raw: &str| {
            let (head, fields) = parsed(raw).unwrap();
            framing(&head, fields).map_err(|r| r.status)
        };
        assert_eq!(framing_of("GET / HTTP/1.0\r\n\r\n"), Ok(Framing::Length(0)));
        assert_eq!(
            framing_of("GET / HTTP/1.1\r\n\r\n"),
            Err(StatusCode::BAD_REQUEST)
        );
        assert_eq!(
            framing_of("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
            Err(StatusCode::BAD_REQUEST)
        );
        let post =
            |headers: &str| framing_of(&format!("POST / HTTP/1.1\r\nHost: a\r\n{headers}\r\n"));
        assert_eq!(post("Content-Length: 5\r\n"), Ok(Framing::Length(5)));
        assert_eq!(post("Content-Length: 5, 5\r\n"), Ok(Framing::Length(5)));
        assert_eq!(
            post("Content-Length: 5\r\nContent-Length: 5\r\n"),
            Ok(Framing::Length(5))
        );
        for bad in [
            "+5",
            "-5",
            "0x5",
            "5 5",
            "5, 6",
            "",
            "99999999999999999999999",
            "5.0",
        ] {
            assert_eq!(
                post(&format!("Content-Length: {bad}\r\n")),
                Err(StatusCode::BAD_REQUEST),
                "{bad}"
            );
        }
        assert_eq!(
            post("Content-Length: 5\r\nContent-Length: 6\r\n"),
            Err(StatusCode::BAD_REQUEST)
        );
        assert_eq!(post("Transfer-Encoding: chunked\r\n"), Ok(Framing::Chunked));
        assert_eq!(post("Transfer-Encoding: Chunked\r\n"), Ok(Framing::Chunked));
        assert_eq!(
            post("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n"),
            Err(StatusCode::BAD_REQUEST)
        );
        for bad in [
            "chunked, identity",
            "xchunked",
            "chunked, chunked",
            "identity",
            "\"chunked\"",
            "chunked;q=1",
            ",chunked",
        ] {
            assert_eq!(
                post(&format!("Transfer-Encoding: {bad}\r\n")),
                Err(StatusCode::BAD_REQUEST),
                "{bad}"
            );
        }
        assert_eq!(
            post("Transfer-Encoding: gzip, chunked\r\n"),
            Err(StatusCode::NOT_IMPLEMENTED)
        );
        assert_eq!(
            framing_of("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Err(StatusCode::BAD_REQUEST)
        );
    }

    #[test]
    fn targets() {
        assert!(head("GET http://example.com/a HTTP/1.1\r\nHost: a\r\n\r\n").is_ok());
        assert!(head("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n").is_ok());
        assert_eq!(
            head("GET * HTTP/1.1\r\nHost: a\r\n\r\n")
                .unwrap_err()
                .status,
            400
        );
        assert_eq!(
            head("GET a/b HTTP/1.1\r\nHost: a\r\n\r\n")
                .unwrap_err()
                .status,
            400
        );
    }

    #[test]
    fn header_limits() {
        let many: String = (0..101).map(|i| format!("H{i}: v\r\n")).collect();
        let err = head(&format!("GET / HTTP/1.1\r\nHost: a\r\n{many}\r\n")).unwrap_err();
        assert_eq!(err.status, 431);
        assert_eq!(
            head("GET / HTTP/1.1\r\nHost : a\r\n\r\n")
                .unwrap_err()
                .status,
            400
        );
        assert_eq!(
            head("GET / HTTP/1.1\r\nHo\x01st: a\r\n\r\n")
                .unwrap_err()
                .status,
            400
        );
    }
}
