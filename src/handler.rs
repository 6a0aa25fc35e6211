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
use std::io::{self, BufRead, BufReader, BufWriter, Cursor, Read, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use crate::address::ClientAddress;
use crate::connection::{Connection, Datagram, DatagramSocket};
use crate::server::ServerHandle;

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
pub fn run_handler<H: RequestHandler>(
    mut handler: H,
    request: &mut H::Request,
) -> Result<(), RequestError> {
    handler.setup(request).map_err(RequestError::Failed)?;
    let handled = catch_unwind(AssertUnwindSafe(|| handler.handle(request)));
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

    /// Delivers what the handler wrote (flushes `wfile`, or sends the reply datagram).
    #[doc(hidden)]
    fn deliver(&mut self) -> io::Result<()>;

    #[doc(hidden)]
    fn into_raw(self) -> Self::Raw;
}

/// A connection being handled: `self.request`, `self.rfile`, `self.wfile`,
/// `self.client_address` and `self.server` of Python's `StreamRequestHandler`.
#[derive(Debug)]
pub struct StreamRequest {
    /// The connected socket.
    pub request: Connection,
    /// Buffered reader of the connection.
    pub rfile: Rfile,
    /// Writer to the connection, buffered if the handler's `WBUFSIZE` is not 0.
    pub wfile: Wfile,
    /// The peer.
    pub client_address: ClientAddress,
    /// The server that accepted the connection.
    pub server: ServerHandle,
}

impl RequestContext for StreamRequest {
    type Raw = Connection;

    fn new<H: RequestHandler>(
        request: Connection,
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
        Ok(StreamRequest {
            rfile: Rfile(BufReader::with_capacity(
                H::RBUFSIZE.max(1),
                request.clone(),
            )),
            wfile: Wfile::new(request.clone(), H::WBUFSIZE),
            request,
            client_address,
            server,
        })
    }

    fn deliver(&mut self) -> io::Result<()> {
        self.wfile.flush()
    }

    fn into_raw(self) -> Connection {
        self.request
    }
}

/// The buffered reading side of a connection: Python's `rfile`.
#[derive(Debug)]
pub struct Rfile(BufReader<Connection>);

impl Rfile {
    /// Reads one line, newline included, of at most `limit` bytes: Python's
    /// `rfile.readline(limit)`. A line longer than `limit` comes back cut at `limit` bytes
    /// with the rest left unread; an empty result means end-of-file.
    pub fn readline(&mut self, limit: usize) -> io::Result<Vec<u8>> {
        let mut line = Vec::new();
        (&mut self.0)
            .take(limit as u64)
            .read_until(b'\n', &mut line)?;
        Ok(line)
    }

    /// The bytes read from the socket and not yet consumed; never reads.
    pub fn buffer(&self) -> &[u8] {
        self.0.buffer()
    }

    /// Reads until end-of-file or `limit` bytes, whichever comes first.
    pub fn read_to_limit(&mut self, limit: usize) -> io::Result<Vec<u8>> {
        let mut data = Vec::new();
        (&mut self.0).take(limit as u64).read_to_end(&mut data)?;
        Ok(data)
    }
}

impl Read for Rfile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl BufRead for Rfile {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.0.fill_buf()
    }

    fn consume(&mut self, amt: usize) {
        self.0.consume(amt)
    }
}

/// The writing side of a connection: Python's `wfile`.
#[derive(Debug)]
pub struct Wfile(WfileInner);

#[derive(Debug)]
enum WfileInner {
    Direct(Connection),
    Buffered(BufWriter<Connection>),
}

impl Wfile {
    fn new(connection: Connection, bufsize: usize) -> Self {
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
}
