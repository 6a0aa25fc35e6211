//! Request handlers: Python's `BaseRequestHandler`, `StreamRequestHandler` and
//! `DatagramRequestHandler`.
//!
//! A handler is a value the server clones for every request (Python instantiates the handler
//! class per request), so per-request state lives in its fields and shared state in an `Arc`
//! among them. Its hooks get the request: a [`StreamRequest`] with `request`, `rfile` and
//! `wfile` for TCP and Unix stream servers, a [`DatagramRequest`] for UDP and Unix datagram
//! servers.

use std::any::Any;
use std::error::Error;
use std::fmt;
use std::io::{self, BufRead, BufWriter, Cursor, Read, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use crate::address::ClientAddress;
use crate::buffer;
use crate::http::HttpConnection;
use crate::output::Output;
use crate::server::{OpenConnection, ServerHandle};
use crate::socket::{Datagram, DatagramSocket, StreamSocket};

/// Any error a handler hook returns; `?` works on every error type.
pub type BoxError = Box<dyn Error + Send + Sync + 'static>;

/// What a handler hook returns.
pub type HandlerResult = Result<(), BoxError>;

/// Handles one request: Python's `BaseRequestHandler`.
///
/// Methods that may be overridden:
/// - [`setup`](RequestHandler::setup): before `handle`; if it fails, neither `handle` nor
///   `finish` runs.
/// - [`handle`](RequestHandler::handle): does the work (required).
/// - [`finish`](RequestHandler::finish): after `handle`, even when `handle` failed or
///   panicked.
///
/// After `finish`, the server flushes `wfile` (streams) or sends it to the client
/// (datagrams), so an override never has to call the default like Python's `super().finish()`.
///
/// Settings that may be overridden, Python's class attributes of `StreamRequestHandler`
/// (datagram handlers ignore them): [`TIMEOUT`](RequestHandler::TIMEOUT),
/// [`RBUFSIZE`](RequestHandler::RBUFSIZE), [`WBUFSIZE`](RequestHandler::WBUFSIZE),
/// [`DISABLE_NAGLE_ALGORITHM`](RequestHandler::DISABLE_NAGLE_ALGORITHM).
///
/// ```
/// use std::io::Write;
/// use socketserver::{HandlerResult, RequestHandler, StreamRequest};
///
/// #[derive(Clone)]
/// struct Upper;
///
/// impl RequestHandler for Upper {
///     type Request = StreamRequest;
///
///     fn handle(&mut self, req: &mut StreamRequest) -> HandlerResult {
///         let line = req.rfile.readline(1024)?;
///         req.wfile.write_all(&line.to_ascii_uppercase())?;
///         Ok(())
///     }
/// }
/// ```
pub trait RequestHandler: Clone + Send + Sync + 'static {
    /// [`StreamRequest`] or [`DatagramRequest`]; it must match the server's transport.
    type Request: RequestContext;

    /// Read and write timeout of the connection; `None` blocks forever (Python's `timeout`).
    const TIMEOUT: Option<Duration> = None;
    /// Buffer size of `rfile` (Python's `rbufsize`; Python's default is the io default).
    const RBUFSIZE: usize = 8192;
    /// Buffer size of `wfile`; 0 writes straight through (Python's `wbufsize`, default 0).
    const WBUFSIZE: usize = 0;
    /// Sets `TCP_NODELAY` on the connection (Python's `disable_nagle_algorithm`).
    const DISABLE_NAGLE_ALGORITHM: bool = false;
    /// `SO_REUSEADDR` on the socket of a server built for this handler, unless the builder
    /// says otherwise: Python's `allow_reuse_address` of the server class, `false` as in
    /// `TCPServer`; every HTTP handler sets it, as Python's `HTTPServer` does, so that a
    /// restarted server can bind its port while old connections linger in `TIME_WAIT`.
    const ALLOW_REUSE_ADDRESS: bool = false;
    /// `handle` never waits: it reads only what has arrived (on an event loop, `rfile` then
    /// fails with `WouldBlock` instead of waiting, and the handler
    /// [parks](StreamRequest::park)) and its replies are small. An
    /// [`EventLoop`](crate::concurrency::EventLoop) server runs such a handler on its own
    /// thread, the fastest way; any other handler runs on one of its workers. Every other
    /// strategy ignores this.
    const NONBLOCKING: bool = false;

    /// Called before [`handle`](RequestHandler::handle).
    fn setup(&mut self, _request: &mut Self::Request) -> HandlerResult {
        Ok(())
    }

    /// Serves the request.
    fn handle(&mut self, request: &mut Self::Request) -> HandlerResult;

    /// Called after [`handle`](RequestHandler::handle), whatever it did.
    fn finish(&mut self, _request: &mut Self::Request) -> HandlerResult {
        Ok(())
    }
}

/// Why a request failed, as [`ServerHooks::handle_error`](crate::ServerHooks::handle_error)
/// sees it.
#[derive(Debug)]
pub enum RequestError {
    /// A hook returned an error, or the server could not deliver the reply.
    Failed(BoxError),
    /// A hook panicked; the message of the panic.
    Panicked(String),
}

impl RequestError {
    pub(crate) fn from_panic(payload: Box<dyn Any + Send>) -> Self {
        let message = if let Some(s) = payload.downcast_ref::<&str>() {
            (*s).to_string()
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s.clone()
        } else {
            "panic with a non-string payload".to_string()
        };
        RequestError::Panicked(message)
    }
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestError::Failed(err) => err.fmt(f),
            RequestError::Panicked(msg) => write!(f, "handler panicked: {msg}"),
        }
    }
}

impl Error for RequestError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            RequestError::Failed(err) => Some(&**err),
            RequestError::Panicked(_) => None,
        }
    }
}

impl From<io::Error> for RequestError {
    fn from(err: io::Error) -> Self {
        RequestError::Failed(err.into())
    }
}

/// Runs `setup`, `handle` and `finish` on `request`: the default
/// [`ServerHooks::finish_request`](crate::ServerHooks::finish_request).
///
/// `finish` runs even if `handle` fails or panics; the first failure is returned.
///
/// If `handle` [parks](StreamRequest::park) the connection, `finish` waits: the server keeps
/// the handler with the connection and calls `handle` again when the client sends more.
pub fn run_handler<H: RequestHandler>(
    mut handler: H,
    request: &mut H::Request,
) -> Result<(), RequestError> {
    handler.setup(request).map_err(RequestError::Failed)?;
    continue_handler(handler, request)
}

/// `handle`, then `finish` unless `handle` parked the connection (then the handler is kept
/// with the connection for the next run).
pub(crate) fn continue_handler<H: RequestHandler>(
    mut handler: H,
    request: &mut H::Request,
) -> Result<(), RequestError> {
    let handled = catch_unwind(AssertUnwindSafe(|| handler.handle(request)));
    if let (Ok(Ok(())), Some(stream)) = (&handled, request.as_stream()) {
        if stream.parking.requested.is_some() {
            stream.parking.handler = Some(Box::new(Kept(handler)));
            return Ok(());
        }
    }
    if let Some(stream) = request.as_stream() {
        stream.parking.requested = None;
    }
    finish_handler(handler, request, handled)
}

/// A handler kept with its parked connection, whatever its type.
pub(crate) trait KeptHandler: Send {
    /// `handle` again, and `finish` unless it parks again.
    fn resume(self: Box<Self>, stream: &mut StreamRequest) -> Result<(), RequestError>;

    /// `finish`: the connection is over.
    fn finish(self: Box<Self>, stream: &mut StreamRequest) -> Result<(), RequestError>;
}

struct Kept<H>(H);

impl<H: RequestHandler> KeptHandler for Kept<H> {
    fn resume(self: Box<Self>, stream: &mut StreamRequest) -> Result<(), RequestError> {
        match H::Request::of_stream(stream) {
            Some(request) => continue_handler(self.0, request),
            None => Ok(()),
        }
    }

    fn finish(self: Box<Self>, stream: &mut StreamRequest) -> Result<(), RequestError> {
        match H::Request::of_stream(stream) {
            Some(request) => finish_handler(self.0, request, Ok(Ok(()))),
            None => Ok(()),
        }
    }
}

/// `finish`, after `handle` ended with `handled`; the first failure is returned.
pub(crate) fn finish_handler<H: RequestHandler>(
    mut handler: H,
    request: &mut H::Request,
    handled: std::thread::Result<HandlerResult>,
) -> Result<(), RequestError> {
    let finished = catch_unwind(AssertUnwindSafe(|| handler.finish(request)));
    for outcome in [handled, finished] {
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(err)) => return Err(RequestError::Failed(err)),
            Err(panic) => return Err(RequestError::from_panic(panic)),
        }
    }
    Ok(())
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::StreamRequest {}
    impl Sealed for super::DatagramRequest {}
}

/// What a handler's hooks get: [`StreamRequest`] or [`DatagramRequest`]. Sealed.
pub trait RequestContext: sealed::Sealed + Send + Sized + 'static {
    /// The transport's request this is made from.
    type Raw: Send + 'static;

    #[doc(hidden)]
    fn new<H: RequestHandler>(
        raw: Self::Raw,
        client_address: ClientAddress,
        server: ServerHandle,
    ) -> io::Result<Self>;

    /// Reads the PROXY header a trusted proxy owes on `raw`, waiting if `blocking`;
    /// the client it names, if it names one. Nothing for a datagram.
    #[doc(hidden)]
    fn read_proxy_header(raw: &Self::Raw, blocking: bool) -> io::Result<Option<ClientAddress>> {
        let _ = (raw, blocking);
        Ok(None)
    }

    /// Delivers what the handler wrote (flushes `wfile`, or sends the reply datagram).
    #[doc(hidden)]
    fn deliver(&mut self) -> io::Result<()>;

    #[doc(hidden)]
    fn into_raw(self) -> Self::Raw;

    /// The stream request, for parking; `None` for a datagram.
    #[doc(hidden)]
    fn as_stream(&mut self) -> Option<&mut StreamRequest>;

    #[doc(hidden)]
    fn as_stream_ref(&self) -> Option<&StreamRequest>;

    /// This request type out of a stream request; `None` for a datagram.
    #[doc(hidden)]
    fn of_stream(stream: &mut StreamRequest) -> Option<&mut Self>;
}

/// What a stream request needs to be parked between runs of `handle`; set by the server.
#[derive(Default)]
pub(crate) struct Parking {
    /// The server's strategy can park this connection: it runs an event loop.
    pub(crate) available: bool,
    /// `handle` runs on the event loop's own thread and must not wait.
    pub(crate) inline: bool,
    /// What `handle` asked for before it returned.
    pub(crate) requested: Option<Park>,
    /// The handler, kept between runs of `handle`.
    pub(crate) handler: Option<Box<dyn KeptHandler>>,
    /// The HTTP connection's state, kept between runs of its `handle`.
    pub(crate) http: Option<Box<HttpConnection>>,
    /// This run of `handle` is for a passed deadline.
    pub(crate) timed_out: bool,
}

impl fmt::Debug for Parking {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Parking")
            .field("available", &self.available)
            .field("inline", &self.inline)
            .field("requested", &self.requested)
            .finish_non_exhaustive()
    }
}

/// When a parked connection is taken up again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wake {
    /// When the client has sent something (or closed).
    Readable,
    /// When the socket takes more output.
    Writable,
    /// At once, on a worker thread: the rest may wait.
    Worker,
}

/// A parked connection's wake-up condition, and when it is given up if that never comes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Park {
    pub(crate) wake: Wake,
    pub(crate) deadline: Option<Instant>,
    /// While output waits, each send that makes progress moves the deadline to this long
    /// from then: a pause of the client is bounded, not the whole response.
    pub(crate) send_timeout: Option<Duration>,
    /// At the deadline, run `handle` again (with `timed_out` set) instead of ending.
    pub(crate) resume_at_deadline: bool,
}

/// A connection being handled: `self.request`, `self.rfile`, `self.wfile`,
/// `self.client_address` and `self.server` of Python's `StreamRequestHandler`.
#[derive(Debug)]
pub struct StreamRequest {
    /// The connected socket.
    pub request: StreamSocket,
    /// Buffered reader of the connection.
    pub rfile: Rfile,
    /// Writer to the connection, buffered if the handler's `WBUFSIZE` is not 0.
    pub wfile: Wfile,
    /// The peer; behind a trusted proxy that sends a PROXY header
    /// ([`proxy_protocol`](crate::ServerBuilder::proxy_protocol)), the client the header
    /// names. On an event loop's thread the header may not be here when `handle` first
    /// runs: the field is updated when `handle` runs again, and
    /// [`request.proxy_source()`](StreamSocket::proxy_source) has it as soon as a read
    /// took it.
    pub client_address: ClientAddress,
    /// The server that accepted the connection.
    pub server: ServerHandle,
    pub(crate) parking: Parking,
    /// Output written for the client that the socket has not taken yet (the HTTP layer's
    /// response buffer); sent before the connection closes.
    pub(crate) output: Output,
    /// Counted among the server's open connections, for a graceful shutdown.
    pub(crate) open: OpenConnection,
}

impl StreamRequest {
    /// Whether [`park`](StreamRequest::park) can keep this connection: the server runs an
    /// [`EventLoop`](crate::concurrency::EventLoop).
    pub fn can_park(&self) -> bool {
        self.parking.available
    }

    /// Keeps the connection open, without a thread, once `handle` returns: the server calls
    /// `handle` again when the client sends more, or ends the request (`finish`, then the
    /// socket closes) if nothing comes within `idle`. Returns `false`, and does nothing, if
    /// the server cannot park; the handler then goes on reading as Python's would.
    pub fn park(&mut self, idle: Option<Duration>) -> bool {
        self.park_until(Park {
            wake: Wake::Readable,
            deadline: idle.map(|idle| Instant::now() + idle),
            send_timeout: None,
            resume_at_deadline: false,
        })
    }

    /// Whether `handle` runs on the event loop's own thread (a
    /// [`NONBLOCKING`](RequestHandler::NONBLOCKING) handler): `rfile` then takes only what
    /// has arrived.
    pub fn is_inline(&self) -> bool {
        self.parking.inline
    }

    /// Sends what the socket takes now of the waiting output; `true` once all is sent.
    pub(crate) fn send_output_now(&mut self) -> io::Result<bool> {
        self.output.send_now(&self.request)
    }

    pub(crate) fn park_until(&mut self, park: Park) -> bool {
        if self.parking.available {
            self.parking.requested = Some(park);
        }
        self.parking.available
    }

    /// Sets how the next run of `handle` may park: `None` when it cannot, else whether it
    /// runs inline on the event loop.
    pub(crate) fn set_run_mode(&mut self, inline: Option<bool>) {
        self.parking.available = inline.is_some();
        self.parking.inline = inline == Some(true);
        self.parking.requested = None;
        self.rfile.set_nonblocking(self.parking.inline);
    }
}

impl RequestContext for StreamRequest {
    type Raw = StreamSocket;

    fn new<H: RequestHandler>(
        request: StreamSocket,
        client_address: ClientAddress,
        server: ServerHandle,
    ) -> io::Result<Self> {
        if H::TIMEOUT.is_some() {
            request.set_read_timeout(H::TIMEOUT)?;
            request.set_write_timeout(H::TIMEOUT)?;
        }
        if H::DISABLE_NAGLE_ALGORITHM {
            request.set_nodelay(true)?;
        }
        let output = Output::new(&request);
        let open = OpenConnection::new(&server, request.clone());
        Ok(StreamRequest {
            rfile: Rfile::new(request.clone(), H::RBUFSIZE),
            wfile: Wfile::new(request.clone(), H::WBUFSIZE),
            request,
            client_address,
            server,
            parking: Parking::default(),
            output,
            open,
        })
    }

    fn read_proxy_header(raw: &StreamSocket, blocking: bool) -> io::Result<Option<ClientAddress>> {
        match raw.read_proxy_header(blocking) {
            Ok(()) => {}
            // Not all here yet: the first reads go on with it.
            Err(err) if !blocking && err.kind() == io::ErrorKind::WouldBlock => {}
            Err(err) => return Err(err),
        }
        Ok(raw.proxy_source().map(ClientAddress::Inet))
    }

    fn deliver(&mut self) -> io::Result<()> {
        self.wfile.flush()?;
        self.output.send_all(&self.request)
    }

    fn into_raw(self) -> StreamSocket {
        self.request
    }

    fn as_stream(&mut self) -> Option<&mut StreamRequest> {
        Some(self)
    }

    fn as_stream_ref(&self) -> Option<&StreamRequest> {
        Some(self)
    }

    fn of_stream(stream: &mut StreamRequest) -> Option<&mut Self> {
        Some(stream)
    }
}

/// The buffered reading side of a connection: Python's `rfile`.
///
/// While a non-blocking handler runs on an event loop's thread, reads take only what has
/// arrived and fail with [`io::ErrorKind::WouldBlock`] instead of waiting.
pub struct Rfile {
    connection: StreamSocket,
    /// Empty while released; otherwise `capacity` bytes, of which `pos..filled` are unread.
    buf: Vec<u8>,
    pos: usize,
    filled: usize,
    capacity: usize,
    nonblocking: bool,
    /// The last read took less than it had room for: the socket had nothing more then.
    drained: bool,
    /// Bytes consumed since the connection opened: where `buf[pos]` lies in the stream.
    position: u64,
    /// What a parser found ahead in the stream and left for the next parse ([`Found`]).
    found: Option<Found>,
}

/// A position in the stream that a parser found by searching from `from` (for HTTP, where
/// the next request head ends): kept so that the bytes are not searched twice. The bytes of
/// a stream never change once read, so the finding holds for as long as the reader has
/// not moved on from `from`.
#[derive(Clone, Copy, Debug)]
struct Found {
    from: u64,
    at: u64,
}

impl Rfile {
    fn new(connection: StreamSocket, capacity: usize) -> Self {
        Rfile {
            connection,
            buf: Vec::new(),
            pos: 0,
            filled: 0,
            capacity: capacity.max(1),
            nonblocking: false,
            drained: false,
            position: 0,
            found: None,
        }
    }

    /// Reads one line, newline included, of at most `limit` bytes: Python's
    /// `rfile.readline(limit)`. A line longer than `limit` comes back cut at `limit` bytes
    /// with the rest left unread; an empty result means end-of-file.
    pub fn readline(&mut self, limit: usize) -> io::Result<Vec<u8>> {
        let mut line = Vec::new();
        self.take(limit as u64).read_until(b'\n', &mut line)?;
        Ok(line)
    }

    /// The bytes read from the socket and not yet consumed; never reads.
    pub fn buffer(&self) -> &[u8] {
        &self.buf[self.pos..self.filled]
    }

    /// How many bytes have been consumed since the connection opened.
    pub(crate) fn position(&self) -> u64 {
        self.position
    }

    /// Notes that a search from the current position found `at` (a stream position), for
    /// [`found`](Self::found) to give back.
    pub(crate) fn set_found(&mut self, at: u64) {
        self.found = Some(Found {
            from: self.position,
            at,
        });
    }

    /// What [`set_found`](Self::set_found) noted, if it was noted at the current position.
    pub(crate) fn found(&self) -> Option<u64> {
        self.found
            .filter(|found| found.from == self.position)
            .map(|found| found.at)
    }

    /// Reads until end-of-file or `limit` bytes, whichever comes first.
    pub fn read_to_limit(&mut self, limit: usize) -> io::Result<Vec<u8>> {
        let mut data = Vec::new();
        self.take(limit as u64).read_to_end(&mut data)?;
        Ok(data)
    }

    /// How many bytes the buffer holds at most.
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Whether the buffer is full: no more input fits until some is consumed.
    pub(crate) fn is_full(&self) -> bool {
        self.filled - self.pos >= self.capacity
    }

    /// Reads more input after what is buffered, moving the unread bytes to the front if
    /// needed; `Ok(0)` at end-of-file or when the buffer is full.
    pub(crate) fn fill_more(&mut self) -> io::Result<usize> {
        if self.buf.is_empty() {
            self.buf = buffer::take(self.capacity);
        }
        if self.filled == self.buf.len() && self.pos > 0 {
            self.buf.copy_within(self.pos..self.filled, 0);
            self.filled -= self.pos;
            self.pos = 0;
        }
        if self.filled == self.buf.len() {
            return Ok(0);
        }
        let room = self.buf.len() - self.filled;
        let n = recv_into(
            &self.connection,
            &mut self.buf[self.filled..],
            self.nonblocking,
        )?;
        self.filled += n;
        // A short read emptied the socket, unless a TLS session holds the end of the
        // stream: the next read returns it without waiting for epoll.
        self.drained = n < room && !self.connection.holds_input();
        Ok(n)
    }

    /// Reads what has arrived after what is buffered, without waiting: the way for a
    /// handler that [parks](StreamRequest::park) to take its input. Returns how many bytes
    /// came; `Ok(0)` means end-of-file, [`io::ErrorKind::WouldBlock`] that nothing new has
    /// arrived. Fails with [`io::ErrorKind::InvalidInput`] if the buffer is full (consume
    /// some of it first).
    pub fn read_available(&mut self) -> io::Result<usize> {
        if self.is_full() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the read buffer is full: consume some of it first",
            ));
        }
        let nonblocking = std::mem::replace(&mut self.nonblocking, true);
        let result = self.fill_more();
        self.nonblocking = nonblocking;
        result
    }

    /// Whether the last read emptied the socket (it took less than it had room for).
    pub(crate) fn drained(&self) -> bool {
        self.drained
    }

    /// Reads of this file take only what has arrived (an event loop runs the handler).
    pub(crate) fn set_nonblocking(&mut self, nonblocking: bool) {
        self.nonblocking = nonblocking;
    }

    /// Gives the buffer back for reuse (src/buffer.rs) if nothing is left in it.
    pub(crate) fn release(&mut self) {
        if self.pos == self.filled && !self.buf.is_empty() {
            buffer::give(std::mem::take(&mut self.buf));
            self.pos = 0;
            self.filled = 0;
        }
    }
}

fn recv_into(connection: &StreamSocket, buf: &mut [u8], nonblocking: bool) -> io::Result<usize> {
    if nonblocking {
        connection.recv_now(buf)
    } else {
        (&*connection).read(buf)
    }
}

impl Read for Rfile {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        // Large reads of an empty buffer skip the copy.
        if self.pos == self.filled && out.len() >= self.capacity {
            let n = recv_into(&self.connection, out, self.nonblocking)?;
            self.position += n as u64;
            return Ok(n);
        }
        let available = self.fill_buf()?;
        let n = available.len().min(out.len());
        out[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for Rfile {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.pos == self.filled {
            self.pos = 0;
            self.filled = 0;
            self.fill_more()?;
        }
        Ok(self.buffer())
    }

    fn consume(&mut self, amt: usize) {
        let amt = amt.min(self.filled - self.pos);
        self.pos += amt;
        self.position += amt as u64;
    }
}

impl fmt::Debug for Rfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rfile")
            .field("buffered", &(self.filled - self.pos))
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

/// The writing side of a connection: Python's `wfile`.
#[derive(Debug)]
pub struct Wfile(WfileInner);

#[derive(Debug)]
enum WfileInner {
    Direct(StreamSocket),
    Buffered(BufWriter<StreamSocket>),
}

impl Wfile {
    fn new(connection: StreamSocket, bufsize: usize) -> Self {
        Wfile(if bufsize == 0 {
            WfileInner::Direct(connection)
        } else {
            WfileInner::Buffered(BufWriter::with_capacity(bufsize, connection))
        })
    }
}

impl Write for Wfile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.0 {
            WfileInner::Direct(c) => c.write(buf),
            WfileInner::Buffered(w) => w.write(buf),
        }
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        match &mut self.0 {
            WfileInner::Direct(c) => c.write_vectored(bufs),
            WfileInner::Buffered(w) => w.write_vectored(bufs),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.0 {
            WfileInner::Direct(_) => Ok(()),
            WfileInner::Buffered(w) => w.flush(),
        }
    }
}

/// A datagram being handled: Python's `DatagramRequestHandler`, whose `rfile` holds the
/// datagram and whose `wfile` is sent back to the client after `finish` (if not empty).
#[derive(Debug)]
pub struct DatagramRequest {
    /// The datagram, to read from.
    pub rfile: Cursor<Vec<u8>>,
    /// The reply; sent as one datagram after `finish` unless empty.
    pub wfile: Vec<u8>,
    /// The server's socket (Python's `self.socket`), for replies of your own.
    pub socket: DatagramSocket,
    /// The sender.
    pub client_address: ClientAddress,
    /// The server that received the datagram.
    pub server: ServerHandle,
}

impl DatagramRequest {
    /// The whole datagram (Python's `self.request[0]`).
    pub fn data(&self) -> &[u8] {
        self.rfile.get_ref()
    }
}

impl RequestContext for DatagramRequest {
    type Raw = Datagram;

    fn new<H: RequestHandler>(
        datagram: Datagram,
        client_address: ClientAddress,
        server: ServerHandle,
    ) -> io::Result<Self> {
        Ok(DatagramRequest {
            rfile: Cursor::new(datagram.data),
            wfile: Vec::new(),
            socket: datagram.socket,
            client_address,
            server,
        })
    }

    fn deliver(&mut self) -> io::Result<()> {
        if !self.wfile.is_empty() {
            self.socket.sendto(&self.wfile, &self.client_address)?;
            self.wfile.clear();
        }
        Ok(())
    }

    fn into_raw(self) -> Datagram {
        Datagram {
            data: self.rfile.into_inner(),
            socket: self.socket,
        }
    }

    fn as_stream(&mut self) -> Option<&mut StreamRequest> {
        None
    }

    fn as_stream_ref(&self) -> Option<&StreamRequest> {
        None
    }

    fn of_stream(_stream: &mut StreamRequest) -> Option<&mut Self> {
        None
    }
}

/// An [`Rfile`] whose buffer holds `input`, read from a real connection on 127.0.0.1, and
/// the client's end of it.
#[cfg(test)]
pub(crate) fn buffered_rfile(input: &[u8]) -> (Rfile, std::net::TcpStream) {
    use std::net::{TcpListener, TcpStream};
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let mut client = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
    let (server, _) = listener.accept().expect("accept");
    client.write_all(input).expect("send");
    let mut rfile = Rfile::new(StreamSocket::tcp(server, None), input.len().max(64));
    while rfile.buffer().len() < input.len() {
        assert!(rfile.fill_more().expect("receive") > 0, "the client closed");
    }
    (rfile, client)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_finding_holds_until_the_reader_moves_on() {
        let (mut rfile, mut client) = buffered_rfile(b"0123456789");
        assert_eq!(rfile.found(), None);
        rfile.set_found(7);
        assert_eq!(rfile.found(), Some(7));
        // More input behind it changes nothing ahead of the position.
        client.write_all(b"abc").unwrap();
        while rfile.buffer().len() < 13 {
            rfile.fill_more().unwrap();
        }
        assert_eq!(rfile.found(), Some(7));
        rfile.consume(3);
        assert_eq!(rfile.position(), 3);
        assert_eq!(
            rfile.found(),
            None,
            "found from a position the reader has left"
        );
        let mut rest = [0u8; 20];
        assert_eq!(rfile.read(&mut rest).unwrap(), 10);
        assert_eq!(rfile.position(), 13);
        // A large read of an empty buffer bypasses it, and counts all the same.
        client.write_all(b"defgh").unwrap();
        let mut large = [0u8; 128];
        let mut read = 0;
        while read < 5 {
            read += rfile.read(&mut large[read..]).unwrap();
        }
        assert_eq!(rfile.position(), 18);
    }
}
