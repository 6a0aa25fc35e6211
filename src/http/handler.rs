//! The HTTP request handler: Python's `BaseHTTPRequestHandler`, split into the trait you
//! implement ([`HttpHandler`], the `do_*` methods and class attributes) and the request you
//! answer ([`HttpRequest`], Python's `self` with its request state and response methods).

use std::fmt::{self, Write as _};
use std::io::{self, Write};
use std::time::{Duration, Instant};

use http::{HeaderMap, Method, StatusCode, Uri, Version};
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};

use super::body::Body;
use super::headers::RequestHeaders;
use super::limits::Limits;
use super::log::{log_line, AccessRecord, LOG_TARGET};
use super::response::{
    error_page, ResponseWriter, DEFAULT_ERROR_CONTENT_TYPE, DEFAULT_ERROR_MESSAGE,
};
use super::status;
use crate::address::{ClientAddress, ServerAddress};
use crate::handler::{BoxError, HandlerResult};
use crate::server::ServerHandle;

/// Handles HTTP requests: Python's `BaseHTTPRequestHandler`.
///
/// A value of this type is cloned for every connection, and every request on it is
/// [dispatched](HttpHandler::dispatch) by method to a `do_*` method with the request to
/// answer. A method left unimplemented goes to [`fallback`](HttpHandler::fallback), which
/// answers 501 as Python does. `HEAD` runs `do_get` with the body dropped, so a GET route
/// answers HEAD too unless `do_head` says otherwise.
///
/// Any type implementing it is a stream [`RequestHandler`](crate::RequestHandler), so it
/// serves on every stream server: [`HttpServer`](super::HttpServer) (an event loop),
/// [`ThreadingHttpServer`](super::ThreadingHttpServer), or `Server<UnixStreamTransport, _, _>`.
///
/// Methods that may be overridden: the `do_*` methods, [`fallback`](HttpHandler::fallback)
/// for what they leave, [`may_block`](HttpHandler::may_block),
/// [`handle_expect_100`](HttpHandler::handle_expect_100) and [`limits`](HttpHandler::limits).
/// Class attributes: the associated constants. Methods for the caller:
/// [`dispatch`](HttpHandler::dispatch), to hand a request to another handler.
///
/// ```no_run
/// use socketserver::http::{HttpHandler, HttpRequest, HttpServer};
/// use socketserver::HandlerResult;
///
/// #[derive(Clone)]
/// struct Hello;
///
/// impl HttpHandler for Hello {
///     fn do_get(&mut self, req: &mut HttpRequest<'_>) -> HandlerResult {
///         req.send_text(200, "Hello, world!")?;
///         Ok(())
///     }
/// }
///
/// let server = HttpServer::bind("127.0.0.1:8000", Hello)?;
/// server.serve_forever()?;
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # Composition
///
/// A handler that serves a few routes and leaves the rest to another (Python's
/// `super().do_GET()`) keeps that handler in a field and hands it what it does not answer,
/// whatever the method, from `fallback`:
///
/// ```no_run
/// use socketserver::files::SimpleHttpHandler;
/// use socketserver::http::{HttpHandler, HttpRequest, HttpServer, Version};
/// use socketserver::HandlerResult;
///
/// #[derive(Clone)]
/// struct App {
///     files: SimpleHttpHandler,
/// }
///
/// impl HttpHandler for App {
///     const PROTOCOL_VERSION: Version = Version::HTTP_11;
///
///     fn do_get(&mut self, req: &mut HttpRequest<'_>) -> HandlerResult {
///         match req.url_path() {
///             "/health" => Ok(req.send_text(200, "ok")?),
///             _ => self.fallback(req),
///         }
///     }
///
///     fn fallback(&mut self, req: &mut HttpRequest<'_>) -> HandlerResult {
///         self.files.dispatch(req)
///     }
/// }
///
/// let app = App { files: SimpleHttpHandler::new("www")? };
/// HttpServer::bind("127.0.0.1:8000", app)?.serve_forever()?;
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// `HEAD /health` answers like GET without the body; `HEAD /index.html`, `POST` forms and
/// every other method reach the files.
///
/// The server asks only the handler it was given, so what the inner handler would say of
/// itself is the outer one's to pass on:
///
/// - settings: `PROTOCOL_VERSION` and `limits` of the outer handler hold for every answer
///   (settings chosen at run time go on [`Configured`](super::Configured)), and so do
///   `SERVER_VERSION` and the error page;
/// - [`may_block`](HttpHandler::may_block): an inner handler whose requests may wait (a
///   [`CgiHttpHandler`](crate::cgi::CgiHttpHandler), a form handler that writes to a
///   database) needs `fn may_block(&self, req: &HttpRequest<'_>) -> bool {
///   self.inner.may_block(req) }` in the outer one, or its requests run on the event loop's
///   thread.
///
/// # Blocking
///
/// On [`HttpServer`](super::HttpServer), an event loop, requests run on the loop's own
/// thread unless [`may_block`](HttpHandler::may_block) says they may wait: while one runs,
/// no other connection is served. Answers made from memory and local files are right
/// there; a handler that sleeps, calls another service or a database, or runs a program
/// must return `true` from `may_block` for those requests, which then run on the loop's
/// workers. A request that holds the loop's thread for 200 ms or more is logged as a
/// warning (on stderr if no logger is installed). `ThreadingHttpServer` runs every
/// connection on a thread of its own and never asks.
pub trait HttpHandler: Clone + Send + Sync + 'static {
    /// The software name in the `Server` header (Python's `server_version`).
    const SERVER_VERSION: &'static str = concat!("socketserver/", env!("CARGO_PKG_VERSION"));
    /// Appended to the `Server` header (Python's `sys_version`).
    const SYS_VERSION: &'static str = "Rust";
    /// `HTTP/1.0` (Python's default: one request per connection) or `HTTP/1.1` (persistent
    /// connections and pipelining; every response then needs a `Content-Length` or the
    /// server closes the connection after it).
    const PROTOCOL_VERSION: Version = Version::HTTP_10;
    /// The page `send_error` sends, with `{code}`, `{message}` and `{explain}`.
    const ERROR_MESSAGE_FORMAT: &'static str = DEFAULT_ERROR_MESSAGE;
    /// The `Content-Type` of that page.
    const ERROR_CONTENT_TYPE: &'static str = DEFAULT_ERROR_CONTENT_TYPE;

    /// The sizes and timeouts connections are held to.
    fn limits(&self) -> Limits {
        Limits::default()
    }

    /// Whether answering `request` may wait: sleep, call another service or a database,
    /// run a program, stream a long answer. An [`EventLoop`](crate::concurrency::EventLoop)
    /// runs such requests on its workers and all others on its own thread, which is the
    /// fastest way to serve. The default, `false`, suits answers made from memory and local
    /// files; a request that runs long on the loop's thread anyway is logged as a warning
    /// with its request line. Asked on the loop's thread once the request is all here, so
    /// it must decide from the request alone, quickly; other strategies never ask.
    fn may_block(&self, _request: &HttpRequest<'_>) -> bool {
        false
    }

    /// `GET`.
    fn do_get(&mut self, request: &mut HttpRequest<'_>) -> HandlerResult {
        self.fallback(request)
    }

    /// `HEAD`: `do_get` with the body dropped (its headers, `Content-Length` included, are
    /// sent as they are).
    fn do_head(&mut self, request: &mut HttpRequest<'_>) -> HandlerResult {
        self.do_get(request)
    }

    /// `POST`.
    fn do_post(&mut self, request: &mut HttpRequest<'_>) -> HandlerResult {
        self.fallback(request)
    }

    /// `PUT`.
    fn do_put(&mut self, request: &mut HttpRequest<'_>) -> HandlerResult {
        self.fallback(request)
    }

    /// `DELETE`.
    fn do_delete(&mut self, request: &mut HttpRequest<'_>) -> HandlerResult {
        self.fallback(request)
    }

    /// `OPTIONS`.
    fn do_options(&mut self, request: &mut HttpRequest<'_>) -> HandlerResult {
        self.fallback(request)
    }

    /// `PATCH`.
    fn do_patch(&mut self, request: &mut HttpRequest<'_>) -> HandlerResult {
        self.fallback(request)
    }

    /// Any other method (`TRACE`, `CONNECT`, extensions); see `request.command`.
    fn do_method(&mut self, request: &mut HttpRequest<'_>) -> HandlerResult {
        self.fallback(request)
    }

    /// Every request the `do_*` methods leave: 501 (Python's "Unsupported method"), or, in
    /// a handler that wraps another, `self.inner.dispatch(request)`: the inner handler's,
    /// never `self.dispatch`, which would come back here (that request fails with 500).
    fn fallback(&mut self, request: &mut HttpRequest<'_>) -> HandlerResult {
        request.send_unsupported()
    }

    /// Calls the `do_*` method for the request's method: how the server runs a request,
    /// and how a handler hands one to another. Handlers that hand requests on in a circle
    /// fail the request (500) after 16 rounds instead of overflowing the stack.
    fn dispatch(&mut self, request: &mut HttpRequest<'_>) -> HandlerResult {
        let _nested = Nesting::enter()?;
        let method = request.command.clone();
        if method == Method::GET {
            self.do_get(request)
        } else if method == Method::HEAD {
            self.do_head(request)
        } else if method == Method::POST {
            self.do_post(request)
        } else if method == Method::PUT {
            self.do_put(request)
        } else if method == Method::DELETE {
            self.do_delete(request)
        } else if method == Method::OPTIONS {
            self.do_options(request)
        } else if method == Method::PATCH {
            self.do_patch(request)
        } else {
            self.do_method(request)
        }
    }

    /// Called for a request with `Expect: 100-continue` before its `do_*` method. Return
    /// `false` after answering it yourself (say 417 or 413) to refuse the body; `true` lets
    /// the request go on, and `100 Continue` is sent when the handler first reads the body.
    /// On an [`EventLoop`](crate::concurrency::EventLoop) it runs on the loop's thread
    /// before the body is read (`100 Continue` goes out when it returns `true`), so it must
    /// decide from the head alone and must not read the body.
    fn handle_expect_100(&mut self, _request: &mut HttpRequest<'_>) -> Result<bool, BoxError> {
        Ok(true)
    }
}

thread_local! {
    /// How many `dispatch` calls are running on this thread, one inside the other.
    static DISPATCHING: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// One `dispatch` running, for as long as it lives.
struct Nesting;

impl Nesting {
    /// Deeper than any handler that wraps others goes, far from the stack's end.
    const MAX: u32 = 16;

    fn enter() -> Result<Nesting, BoxError> {
        let depth = DISPATCHING.with(|d| d.get());
        if depth >= Self::MAX {
            return Err(format!(
                "dispatch nested {depth} deep: does a fallback call `self.dispatch` instead of \
                 the inner handler's?"
            )
            .into());
        }
        DISPATCHING.with(|d| d.set(depth + 1));
        Ok(Nesting)
    }
}

impl Drop for Nesting {
    fn drop(&mut self) {
        DISPATCHING.with(|d| d.set(d.get() - 1));
    }
}

/// A status code: `200`, `404u16` or `StatusCode::NOT_FOUND`.
pub trait IntoStatus {
    /// The status, or `InvalidInput` if the number is not a status code (100 to 999).
    fn into_status(self) -> io::Result<StatusCode>;
}

impl IntoStatus for StatusCode {
    fn into_status(self) -> io::Result<StatusCode> {
        Ok(self)
    }
}

impl IntoStatus for u16 {
    fn into_status(self) -> io::Result<StatusCode> {
        StatusCode::from_u16(self)
            .map_err(|_| invalid(format!("{self} is not an HTTP status code")))
    }
}

impl IntoStatus for i32 {
    fn into_status(self) -> io::Result<StatusCode> {
        u16::try_from(self)
            .map_err(|_| invalid(format!("{self} is not an HTTP status code")))?
            .into_status()
    }
}

/// The text of an error page: `"..."`, a `String` or `&String`, `Some("...")`, or `None` for
/// the standard text of the status.
pub trait Message {
    /// The text, if one is given.
    fn text(&self) -> Option<&str>;
}

impl Message for &str {
    fn text(&self) -> Option<&str> {
        Some(self)
    }
}

impl Message for String {
    fn text(&self) -> Option<&str> {
        Some(self)
    }
}

impl Message for &String {
    fn text(&self) -> Option<&str> {
        Some(self)
    }
}

impl Message for Option<&str> {
    fn text(&self) -> Option<&str> {
        *self
    }
}

fn invalid(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message.into())
}

/// The refusal of a header value that could end its line or the head.
fn invalid_value(name: &str) -> io::Error {
    invalid(format!(
        "invalid value for header {name}: control characters or line breaks"
    ))
}

/// Whether a header named `name` may be added to the answers of a request
/// ([`HttpRequest::add_response_header`]): a token, and not one of the framing headers,
/// which are the response's own.
pub(crate) fn check_added_name(name: &str) -> io::Result<()> {
    if name.is_empty() || !name.bytes().all(is_token_byte) {
        return Err(invalid(format!("invalid header name {name:?}")));
    }
    if ["content-length", "transfer-encoding", "connection"]
        .iter()
        .any(|framing| name.eq_ignore_ascii_case(framing))
    {
        return Err(invalid(format!("{name} is the response's own to send")));
    }
    Ok(())
}

/// Whether a header value holds no control character but tab (so no line break).
pub(crate) fn is_clean_value(value: &[u8]) -> bool {
    // Eight bytes at a time (every response checks its few values): a word with no byte
    // below 0x20 and none equal to 0x7f is clean; one with a tab is looked at byte by byte.
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    let clean_byte = |b: &u8| *b == b'\t' || (*b >= 0x20 && *b != 0x7f);
    let mut words = value.chunks_exact(8);
    for word in &mut words {
        let x = u64::from_ne_bytes(word.try_into().expect("eight bytes"));
        let below_space = x.wrapping_sub(ONES * 0x20) & !x & HIGH;
        let del = x ^ (ONES * 0x7f);
        let is_del = del.wrapping_sub(ONES) & !del & HIGH;
        if below_space | is_del != 0 && !word.iter().all(clean_byte) {
            return false;
        }
    }
    words.remainder().iter().all(clean_byte)
}

/// Python's rule: persistent when both sides speak HTTP/1.1, unless `Connection: close`;
/// an HTTP/1.0 client may ask with `Connection: keep-alive` if we (`ours`) speak HTTP/1.1.
fn wants_keep_alive(ours: Version, theirs: Version, headers: &RequestHeaders) -> bool {
    let ours = ours >= Version::HTTP_11;
    let mut keep = ours && theirs >= Version::HTTP_11;
    // Asked of the noted fields: the map is made only if the handler reads it.
    for token in headers
        .raw_strs(http::header::CONNECTION.as_str())
        .flatten()
        .flat_map(|v| v.split(','))
        .map(str::trim)
    {
        if token.eq_ignore_ascii_case("close") {
            return false;
        }
        if token.eq_ignore_ascii_case("keep-alive") && ours {
            keep = true;
        }
    }
    keep
}

/// `status`, if it is a final one: an interim (1xx) response is sent with
/// `send_response_only` and `end_headers`, never as a whole response.
fn final_status(status: impl IntoStatus) -> io::Result<StatusCode> {
    let status = status.into_status()?;
    if status.is_informational() {
        return Err(invalid(format!(
            "{status} is an interim status, not a whole response"
        )));
    }
    Ok(status)
}

/// What a `Location` value percent-encodes: controls, space, and (always) non-ASCII.
const LOCATION: &AsciiSet = &CONTROLS.add(b' ').add(b'"').add(b'<').add(b'>').add(b'`');

/// The class attributes of an [`HttpHandler`], as the request needs them.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Attributes {
    pub server_version: &'static str,
    pub sys_version: &'static str,
    pub protocol_version: Version,
    pub error_message_format: &'static str,
    pub error_content_type: &'static str,
    /// `server_version` and `sys_version` make a valid `Server` value, checked once per
    /// connection rather than with every response.
    pub server_is_clean: bool,
}

impl Attributes {
    pub(crate) fn of<H: HttpHandler>(protocol_version: Version) -> Self {
        Attributes {
            server_version: H::SERVER_VERSION,
            sys_version: H::SYS_VERSION,
            protocol_version,
            error_message_format: H::ERROR_MESSAGE_FORMAT,
            error_content_type: H::ERROR_CONTENT_TYPE,
            server_is_clean: is_clean_value(H::SERVER_VERSION.as_bytes())
                && is_clean_value(H::SYS_VERSION.as_bytes()),
        }
    }
}

/// Response state that decides whether the connection can stay open.
#[derive(Debug, Default)]
struct ResponseState {
    /// The final status sent, once `send_response_only` ran for one.
    status: Option<StatusCode>,
    /// A status line (final or interim) was sent and its headers are not ended yet.
    line_sent: bool,
    headers_ended: bool,
    /// The `Content-Length` sent, if one was.
    content_length: Option<u64>,
    chunked: bool,
    connection_header: bool,
    /// The handler said the response is incomplete.
    incomplete: bool,
}

/// The request being answered: Python's handler `self`, with the request's state as fields
/// and the response methods (`send_response`, `send_header`, `end_headers`, `send_error`).
pub struct HttpRequest<'a> {
    /// The method (Python's `command`).
    pub command: Method,
    /// The request target as sent: path and query, or an absolute URI (Python's `path`).
    pub path: String,
    /// `HTTP/1.0` or `HTTP/1.1` (Python's `request_version`).
    pub request_version: Version,
    /// The request line with its line ending, as received (Python's `raw_requestline`).
    pub raw_requestline: Vec<u8>,
    /// The request line without its line ending (Python's `requestline`).
    pub requestline: String,
    /// The request headers: a [`HeaderMap`] (names case-insensitive, repeated fields kept),
    /// made the first time it is read ([`RequestHeaders`]).
    pub headers: RequestHeaders,
    /// The client.
    pub client_address: ClientAddress,
    /// The server (to shut it down, or for its address); `clone()` it to keep it past the
    /// request.
    pub server: &'a ServerHandle,
    /// Whether the connection closes after this request (Python's `close_connection`).
    pub close_connection: bool,
    /// The request body, bounded to this request (Python's `rfile`).
    pub rfile: Body<'a>,
    /// The response (Python's `wfile`).
    pub wfile: ResponseWriter<'a>,
    /// The connection's, lent: a copy would cost a move of its 72 bytes per request.
    attributes: &'a Attributes,
    response: ResponseState,
    /// Header lines for the final response, whoever sends it (`add_response_header`).
    added_headers: Vec<u8>,
    /// The authenticated user, for the access log.
    remote_user: Option<String>,
    /// When the server began on the request, for the access log's time taken.
    received: Instant,
    /// When its response completed and how long it took, once it has.
    completed: Option<(Instant, Duration)>,
}

impl<'a> HttpRequest<'a> {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        command: Method,
        path: String,
        request_version: Version,
        raw_requestline: Vec<u8>,
        requestline: String,
        headers: RequestHeaders,
        client_address: ClientAddress,
        server: &'a ServerHandle,
        rfile: Body<'a>,
        wfile: ResponseWriter<'a>,
        attributes: &'a Attributes,
        received: Instant,
    ) -> Self {
        // Decided before the request is made, so that it is made where it is returned
        // rather than made and then copied (it is some 600 bytes, made per request).
        let close_connection =
            !wants_keep_alive(attributes.protocol_version, request_version, &headers);
        HttpRequest {
            command,
            path,
            request_version,
            raw_requestline,
            requestline,
            headers,
            client_address,
            server,
            close_connection,
            rfile,
            wfile,
            attributes,
            response: ResponseState::default(),
            added_headers: Vec::new(),
            remote_user: None,
            received,
            completed: None,
        }
    }

    /// What the TLS session of the connection negotiated, and the client's certificates
    /// (mutual TLS); `None` on a plain connection. Python's `self.connection.version()`,
    /// `cipher()` and `getpeercert()` in a handler of `HTTPSServer`.
    pub fn tls_info(&self) -> Option<crate::tls::TlsInfo> {
        self.wfile.connection().tls_info()
    }

    /// Whether the request came over TLS (`https`).
    pub fn is_secure(&self) -> bool {
        self.wfile.connection().is_tls()
    }

    /// The first value of header `name` as text, if present and visible ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The target parsed as a URI, if it is one.
    pub fn uri(&self) -> Option<Uri> {
        self.path.parse().ok()
    }

    /// The query string of the target, without `?`.
    pub fn query(&self) -> Option<&str> {
        let target = self.path.split('#').next().unwrap_or("");
        target.split_once('?').map(|(_, q)| q)
    }

    /// The path of the target, without its query or fragment: what a route matches.
    /// `"/api/notes"` for `/api/notes?limit=5`.
    pub fn url_path(&self) -> &str {
        let end = self.path.find(['?', '#']).unwrap_or(self.path.len());
        let path = &self.path[..end];
        // An absolute-form target (`http://host/path`, as sent to proxies) names its path
        // after the authority.
        match path.split_once("://") {
            Some((scheme, rest)) if !scheme.contains('/') => {
                rest.find('/').map_or("/", |slash| &rest[slash..])
            }
            _ => path,
        }
    }

    /// The fields of the query, decoded, in order: Python's
    /// `parse_qsl(urlsplit(self.path).query)`.
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        super::parse_qsl(self.query().unwrap_or("").as_bytes())
    }

    /// Reads the whole body (bounded by `max_body_size`): Python's
    /// `rfile.read(int(self.headers['Content-Length']))`, for chunked bodies too.
    pub fn read_body(&mut self) -> io::Result<Vec<u8>> {
        self.rfile.read_all()
    }

    /// The body as text. A body that is not UTF-8 fails with `InvalidData`, which the
    /// server answers with 400 if the handler returns it before answering.
    pub fn body_text(&mut self) -> io::Result<String> {
        let body = self.read_body()?;
        String::from_utf8(body).map_err(|_| self.rfile.refuse("the request body is not UTF-8"))
    }

    /// The body's form fields (`application/x-www-form-urlencoded`), decoded, in order.
    pub fn body_form(&mut self) -> io::Result<Vec<(String, String)>> {
        Ok(super::parse_qsl(&self.read_body()?))
    }

    /// The body as JSON, read into `T`. A body that is not JSON, or not a `T`, fails with
    /// `InvalidData`, which the server answers with 400 if the handler returns it before
    /// answering.
    #[cfg(feature = "json")]
    pub fn body_json<T: serde::de::DeserializeOwned>(&mut self) -> io::Result<T> {
        let body = self.read_body()?;
        serde_json::from_slice(&body).map_err(|err| {
            self.rfile
                .refuse(&format!("the request body is not the JSON expected: {err}"))
        })
    }

    /// A whole response in one call: `status`, `Content-Type`, `Content-Length` and the
    /// body (not sent for `HEAD`, whose answer has the same headers).
    pub fn respond(
        &mut self,
        status: impl IntoStatus,
        content_type: &str,
        body: impl AsRef<[u8]>,
    ) -> HandlerResult {
        let body = body.as_ref();
        let status = final_status(status)?;
        if status::forbids_body(status) {
            if !body.is_empty() {
                return Err(invalid(format!("a {status} response has no body")).into());
            }
            return self.send_empty(status);
        }
        if self.attributes.server_is_clean
            && content_type.len() <= super::date::MAX_CACHED_CONTENT_TYPE
        {
            self.send_preamble(status, Some(content_type))?;
        } else {
            self.send_response(status)?;
            self.push_header("Content-Type", |head| {
                head.extend_from_slice(content_type.as_bytes())
            })?;
        }
        self.send_content_length(body.len() as u64)?;
        self.end_headers()?;
        self.wfile.write_all(body)?;
        Ok(())
    }

    /// [`respond`](HttpRequest::respond) with `text/plain; charset=utf-8`.
    pub fn send_text(&mut self, status: impl IntoStatus, text: &str) -> HandlerResult {
        self.respond(status, "text/plain; charset=utf-8", text)
    }

    /// [`respond`](HttpRequest::respond) with `text/html; charset=utf-8`.
    pub fn send_html(&mut self, status: impl IntoStatus, html: &str) -> HandlerResult {
        self.respond(status, "text/html; charset=utf-8", html)
    }

    /// A redirect: `status` (301, 302, 303, 307 or 308) with `Location` and no body.
    pub fn redirect(&mut self, status: impl IntoStatus, location: &str) -> HandlerResult {
        let status = status.into_status()?;
        if !matches!(status.as_u16(), 300..=303 | 307 | 308) {
            return Err(invalid(format!("{status} is not a redirect status")).into());
        }
        // A header value is ASCII: other characters go percent-encoded, as browsers send them.
        let location = utf8_percent_encode(location, LOCATION);
        self.send_response(status)?;
        self.send_header("Location", location)?;
        self.send_content_length(0)?;
        self.end_headers()?;
        Ok(())
    }

    /// A response without a body: the status, and `Content-Length: 0` unless the status
    /// ends the response by itself (204 and 304).
    pub fn send_empty(&mut self, status: impl IntoStatus) -> HandlerResult {
        let status = final_status(status)?;
        self.send_response(status)?;
        if !status::ends_with_head(status) {
            self.send_content_length(0)?;
        }
        self.end_headers()?;
        Ok(())
    }

    /// `value` as a JSON response (`application/json`, `Content-Length` set).
    #[cfg(feature = "json")]
    pub fn send_json<T: serde::Serialize + ?Sized>(
        &mut self,
        status: impl IntoStatus,
        value: &T,
    ) -> HandlerResult {
        let body = serde_json::to_vec(value)?;
        self.respond(status, "application/json", body)
    }

    /// The HTTP version this server answers with (Python's `protocol_version`).
    pub fn protocol_version(&self) -> Version {
        self.attributes.protocol_version
    }

    /// Whether a final response's headers have been ended.
    pub fn response_complete(&self) -> bool {
        self.response.headers_ended
    }

    /// Drops a response whose status line was sent but whose headers were never ended, if
    /// none of it has left yet, so that an error status can be sent in its place (Python
    /// never sends a head that `end_headers` did not end). `true` if it was dropped.
    pub(crate) fn discard_unended_response(&mut self) -> bool {
        if !self.response.line_sent || self.response.headers_ended || !self.wfile.discard_unsent() {
            return false;
        }
        self.response = ResponseState::default();
        true
    }

    /// The final status sent so far, if any.
    pub fn status(&self) -> Option<StatusCode> {
        self.response.status
    }

    /// Python's `server_name`: the host name for a server on all interfaces, else the
    /// address it is bound to.
    pub fn server_name(&self) -> String {
        server_name(&self.server.server_address())
    }

    /// Python's `server_port` (0 for a Unix-socket server).
    pub fn server_port(&self) -> u16 {
        self.server.server_address().port().unwrap_or(0)
    }

    /// Sends the status line and the `Server` and `Date` headers: Python's `send_response`.
    /// The request is logged when its response is complete.
    pub fn send_response(&mut self, code: impl IntoStatus) -> io::Result<()> {
        self.send_response_message(code, None)
    }

    /// [`send_response`](HttpRequest::send_response) with a reason phrase of your own.
    pub fn send_response_message(
        &mut self,
        code: impl IntoStatus,
        message: Option<&str>,
    ) -> io::Result<()> {
        let code = code.into_status()?;
        let (server, sys) = (self.attributes.server_version, self.attributes.sys_version);
        if message.is_none() && self.attributes.server_is_clean {
            return self.send_preamble(code, None);
        }
        self.send_response_only(code, message)?;
        if self.attributes.server_is_clean {
            status::write_server_line(self.wfile.head_mut(), server, sys);
        } else {
            // Refused there, with the reason.
            self.push_header("Server", |head| {
                head.extend_from_slice(server.as_bytes());
                head.push(b' ');
                head.extend_from_slice(sys.as_bytes());
            })?;
        }
        super::date::with_now(|date| self.push_own_header(b"Date: ", &[date.as_bytes()]))
    }

    /// Sends only the status line: Python's `send_response_only`. `message` defaults to the
    /// standard reason phrase; control characters in it become spaces.
    pub fn send_response_only(
        &mut self,
        code: impl IntoStatus,
        message: Option<&str>,
    ) -> io::Result<()> {
        let code = code.into_status()?;
        self.start_response(code)?;
        let cleaned;
        let reason = match message {
            None => status::reason(code),
            Some(message) if !message.bytes().any(|b| b.is_ascii_control()) => message,
            Some(message) => {
                cleaned = message.replace(|c: char| c.is_ascii_control(), " ");
                &cleaned
            }
        };
        let version = self.protocol_name();
        status::write_status_line(self.wfile.head_mut(), version, code, reason);
        Ok(())
    }

    /// The usual start of a response, made once a second and copied whole: the status line,
    /// `Server` and `Date`, and `content_type` if given (refused as `send_header` refuses
    /// a value, after the rest is sent). For a handler whose `Server` value is clean.
    fn send_preamble(&mut self, code: StatusCode, content_type: Option<&str>) -> io::Result<()> {
        use super::date::{with_preamble, PreambleKind};
        self.start_response(code)?;
        let kind = PreambleKind {
            version: self.protocol_name(),
            status: code,
            server: self.attributes.server_version,
            sys: self.attributes.sys_version,
            content_type,
        };
        let head = self.wfile.head_mut();
        let copy = |preamble: Option<&[u8]>| preamble.map(|p| head.extend_from_slice(p));
        if with_preamble(kind, copy).is_some() {
            return Ok(());
        }
        // The response goes on as `send_header` would leave it: without the header.
        let plain = PreambleKind {
            content_type: None,
            ..kind
        };
        let head = self.wfile.head_mut();
        with_preamble(plain, |preamble| {
            preamble.map(|p| head.extend_from_slice(p))
        });
        Err(invalid_value("Content-Type"))
    }

    /// The response state of a status line about to be written, unless one was already.
    fn start_response(&mut self, code: StatusCode) -> io::Result<()> {
        if self.response.status.is_some() {
            return Err(invalid("a response was already sent for this request"));
        }
        self.response = ResponseState {
            status: (!code.is_informational()).then_some(code),
            line_sent: true,
            ..ResponseState::default()
        };
        Ok(())
    }

    /// The version on the status line.
    fn protocol_name(&self) -> &'static str {
        match self.attributes.protocol_version {
            Version::HTTP_11 => "HTTP/1.1",
            _ => "HTTP/1.0",
        }
    }

    /// Adds a header: Python's `send_header`. `Connection: close` / `keep-alive` set
    /// [`close_connection`](HttpRequest::close_connection). A name that is not a token or a
    /// value with a line break or control character is refused (`InvalidInput`), so client
    /// data can never inject a header.
    pub fn send_header(&mut self, keyword: &str, value: impl fmt::Display) -> io::Result<()> {
        self.push_header(keyword, |head| {
            let _ = write!(HeadWriter(head), "{value}");
        })
    }

    /// `send_header("Content-Length", length)`, its digits written without the
    /// formatting machinery: every response with a body sends one.
    pub(crate) fn send_content_length(&mut self, length: u64) -> io::Result<()> {
        const NAME: &[u8] = b"Content-Length: ";
        // Made whole, from the end, and copied into the head at once.
        let mut line = [0u8; NAME.len() + 20 + 2];
        let crlf = line.len() - 2;
        line[crlf..].copy_from_slice(b"\r\n");
        let start = decimal_before(&mut line, crlf, length) - NAME.len();
        line[start..start + NAME.len()].copy_from_slice(NAME);
        self.check_header_allowed()?;
        self.wfile.head_mut().extend_from_slice(&line[start..]);
        self.response.content_length = Some(length);
        Ok(())
    }

    /// A header whose name and value (in parts) the library wrote or checked, and so knows
    /// to be clean: the checks of [`push_header`](Self::push_header) about the response's
    /// state only. Not for a framing header: those have their own bookkeeping.
    fn push_own_header(&mut self, name_colon: &'static [u8], value: &[&[u8]]) -> io::Result<()> {
        self.check_header_allowed()?;
        let head = self.wfile.head_mut();
        head.extend_from_slice(name_colon);
        for part in value {
            head.extend_from_slice(part);
        }
        head.extend_from_slice(b"\r\n");
        Ok(())
    }

    /// Adds a header whose value `write_value` appends to the head: the checks and
    /// bookkeeping of [`send_header`](HttpRequest::send_header), without formatting for
    /// values that are bytes already.
    /// Adds a header to the final response of this request, whoever sends it and whenever:
    /// how a handler that wraps another (say a [`SimpleHttpHandler`](crate::files::SimpleHttpHandler))
    /// adds `Cache-Control` or CORS headers to its answers, error pages included. Framing
    /// headers (`Content-Length`, `Transfer-Encoding`, `Connection`) are the response's own
    /// and refused, as are names and values `send_header` refuses.
    pub fn add_response_header(&mut self, name: &str, value: impl fmt::Display) -> io::Result<()> {
        check_added_name(name)?;
        let start = self.added_headers.len();
        self.added_headers.extend_from_slice(name.as_bytes());
        self.added_headers.extend_from_slice(b": ");
        let value_start = self.added_headers.len();
        let _ = write!(HeadWriter(&mut self.added_headers), "{value}");
        if !is_clean_value(&self.added_headers[value_start..]) {
            self.added_headers.truncate(start);
            return Err(invalid_value(name));
        }
        self.added_headers.extend_from_slice(b"\r\n");
        Ok(())
    }

    /// Whether a header may be sent now: after the status line, before the headers end.
    fn check_header_allowed(&self) -> io::Result<()> {
        if self.response.headers_ended {
            return Err(invalid("send_header after end_headers"));
        }
        if !self.response.line_sent {
            return Err(invalid("send_header before send_response"));
        }
        Ok(())
    }

    fn push_header(
        &mut self,
        keyword: &str,
        write_value: impl FnOnce(&mut Vec<u8>),
    ) -> io::Result<()> {
        self.check_header_allowed()?;
        if keyword.is_empty() || !keyword.bytes().all(is_token_byte) {
            return Err(invalid(format!("invalid header name {keyword:?}")));
        }
        let head = self.wfile.head_mut();
        let start = head.len();
        head.extend_from_slice(keyword.as_bytes());
        head.extend_from_slice(b": ");
        let value_start = head.len();
        write_value(head);
        if !is_clean_value(&head[value_start..]) {
            self.wfile.truncate_head(start);
            return Err(invalid_value(keyword));
        }
        let value_end = self.wfile.head_mut().len();
        self.wfile.push_head(b"\r\n");
        if keyword.eq_ignore_ascii_case("connection") {
            self.response.connection_header = true;
            let head = self.wfile.head_mut();
            for token in head[value_start..value_end].split(|&b| b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    self.close_connection = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    self.close_connection = false;
                }
            }
        } else if keyword.eq_ignore_ascii_case("content-length") {
            let head = self.wfile.head_mut();
            self.response.content_length = parse_decimal(&head[value_start..value_end]);
        } else if keyword.eq_ignore_ascii_case("transfer-encoding") {
            let head = self.wfile.head_mut();
            self.response.chunked = head[value_start..value_end]
                .windows(7)
                .any(|w| w.eq_ignore_ascii_case(b"chunked"));
        }
        Ok(())
    }

    /// Ends the headers: Python's `end_headers`. Adds `Connection: close` when the
    /// response has no length and the connection would otherwise stay open (the client
    /// could not tell where the body ends), or `Connection: keep-alive` for an HTTP/1.0
    /// client that asked for it.
    pub fn end_headers(&mut self) -> io::Result<()> {
        if self.response.headers_ended {
            return Err(invalid("end_headers called twice"));
        }
        if !self.response.line_sent {
            return Err(invalid("end_headers before send_response"));
        }
        let Some(code) = self.response.status else {
            // An interim (1xx) response: send it now, the final one follows.
            self.wfile.push_head(b"\r\n");
            self.wfile.flush()?;
            self.wfile.end_interim();
            self.response.line_sent = false;
            return Ok(());
        };
        if !self.added_headers.is_empty() {
            let added = std::mem::take(&mut self.added_headers);
            self.wfile.push_head(&added);
        }
        let framed_by_head = status::ends_with_head(code) || self.command == Method::HEAD;
        if !self.close_connection && self.server.is_draining() {
            // A graceful shutdown: the client must not send another request here.
            self.send_header("Connection", "close")?;
        }
        if !self.close_connection {
            let unframed =
                !framed_by_head && self.response.content_length.is_none() && !self.response.chunked;
            // A client still waiting for `100 Continue` will never send the body, so the
            // connection cannot carry another request (RFC 9110, 10.1.1: say so).
            if unframed || self.rfile.awaits_continue() {
                self.send_header("Connection", "close")?;
            } else if self.request_version == Version::HTTP_10 && !self.response.connection_header {
                self.send_header("Connection", "keep-alive")?;
            }
        } else if self.attributes.protocol_version >= Version::HTTP_11
            && !self.response.connection_header
        {
            // HTTP/1.1 responses are persistent unless they say otherwise (RFC 9112, 9.6).
            self.send_header("Connection", "close")?;
        }
        self.wfile.push_head(b"\r\n");
        self.response.headers_ended = true;
        self.wfile
            .start_body(status::forbids_body(code) || self.command == Method::HEAD);
        Ok(())
    }

    /// Writes out what is buffered: Python's `flush_headers`. Needed only to stream (the
    /// server flushes when the handler returns).
    pub fn flush_headers(&mut self) -> io::Result<()> {
        self.wfile.flush()
    }

    /// Sends an error page: Python's `send_error(code, message)`. `message` is any text
    /// (`"..."`, a `String`) or `None` for the standard reason phrase; use
    /// [`send_error_explain`](HttpRequest::send_error_explain) for the explanation too.
    pub fn send_error(&mut self, code: impl IntoStatus, message: impl Message) -> HandlerResult {
        self.send_error_explain(code, message, None)
    }

    /// Python's `send_error(code, message, explain)`: logs the error, sends the status, and
    /// unless the status forbids a body (1xx, 204, 205, 304) the `ERROR_MESSAGE_FORMAT`
    /// page with every value HTML-escaped (no body for `HEAD`). `None` for either text
    /// takes the standard one of the status.
    pub fn send_error_explain(
        &mut self,
        code: impl IntoStatus,
        message: impl Message,
        explain: impl Message,
    ) -> HandlerResult {
        let code = code.into_status()?;
        Ok(self.error_response(code, message.text(), explain.text())?)
    }

    /// `send_error_explain`, for the server's own answers.
    pub(crate) fn error_response(
        &mut self,
        code: StatusCode,
        message: Option<&str>,
        explain: Option<&str>,
    ) -> io::Result<()> {
        let message = message.unwrap_or_else(|| status::reason(code));
        let explain = explain.unwrap_or_else(|| status::explain(code));
        self.log_error(&format!("code {}, message {message}", code.as_u16()));
        self.send_response_message(code, Some(message))?;
        if self.close_connection {
            self.send_header("Connection", "close")?;
        }
        let body = (code.as_u16() >= 200 && !status::forbids_body(code)).then(|| {
            error_page(
                self.attributes.error_message_format,
                code.as_u16(),
                message,
                explain,
            )
        });
        if let Some(body) = &body {
            self.send_header("Content-Type", self.attributes.error_content_type)?;
            self.send_content_length(body.len() as u64)?;
        }
        self.end_headers()?;
        if let Some(body) = body {
            self.wfile.write_all(body.as_bytes())?;
        }
        Ok(())
    }

    /// 501 for a method the handler does not implement.
    pub fn send_unsupported(&mut self) -> HandlerResult {
        let message = format!("Unsupported method ('{}')", self.command);
        self.send_error(StatusCode::NOT_IMPLEMENTED, message)
    }

    /// `SERVER_VERSION SYS_VERSION`: Python's `version_string`.
    pub fn version_string(&self) -> String {
        format!(
            "{} {}",
            self.attributes.server_version, self.attributes.sys_version
        )
    }

    /// The current time as an HTTP date: Python's `date_time_string`.
    pub fn date_time_string(&self) -> String {
        super::date::with_now(str::to_string)
    }

    /// The client's address for the log: Python's `address_string`.
    pub fn address_string(&self) -> String {
        super::log::address_string(&self.client_address)
    }

    /// Logs the request line with `code` and `size`: Python's `log_request`.
    pub fn log_request(&self, code: impl fmt::Display, size: impl fmt::Display) {
        // Formatting costs as much as a small response: only when the line is wanted.
        if log::log_enabled!(target: LOG_TARGET, log::Level::Info) {
            self.log_message(&format!("\"{}\" {code} {size}", self.requestline));
        }
    }

    /// Logs an error at `warn` level: Python's `log_error`.
    pub fn log_error(&self, message: &str) {
        log::warn!(target: LOG_TARGET, "{}", self.log_line(message));
    }

    /// Logs a line at `info` level in Common Log Format: Python's `log_message`. Control
    /// characters are escaped.
    pub fn log_message(&self, message: &str) {
        log::info!(target: LOG_TARGET, "{}", self.log_line(message));
    }

    fn log_line(&self, message: &str) -> String {
        log_line(&self.address_string(), self.remote_user.as_deref(), message)
    }

    /// Names the user the request was authenticated as: the access line and the request's
    /// other log lines show it in Common Log Format's user field (`-` until it is set).
    /// [`BasicAuth`](super::BasicAuth) sets it; a handler with authentication of its own
    /// may too. Control characters in it are escaped in the log.
    pub fn set_remote_user(&mut self, user: impl Into<String>) {
        self.remote_user = Some(user.into());
    }

    /// The user the request was authenticated as, if
    /// [`set_remote_user`](HttpRequest::set_remote_user) named one.
    pub fn remote_user(&self) -> Option<&str> {
        self.remote_user.as_deref()
    }

    /// Body bytes the response's `Content-Length` promised and the handler did not write
    /// (0 for a response without one, or without a body).
    pub(crate) fn body_shortfall(&self) -> u64 {
        let discarded =
            self.command == Method::HEAD || self.response.status.is_some_and(status::forbids_body);
        match self.response.content_length {
            Some(n) if !discarded && self.response.headers_ended => {
                n.saturating_sub(self.wfile.body_bytes())
            }
            _ => 0,
        }
    }

    /// Marks the response as incomplete (the handler cut it short): the connection closes
    /// after it, and the access log says so.
    pub(crate) fn mark_incomplete(&mut self) {
        self.response.incomplete = true;
        self.close_connection = true;
    }

    /// When the response completed: the clock read once, when it does.
    pub(crate) fn completed(&mut self) -> Instant {
        self.completion().0
    }

    /// How long the request took, from its receipt to its response's completion.
    pub(crate) fn answered_in(&mut self) -> Duration {
        self.completion().1
    }

    fn completion(&mut self) -> (Instant, Duration) {
        let received = self.received;
        *self.completed.get_or_insert_with(|| {
            let now = Instant::now();
            (now, now.saturating_duration_since(received))
        })
    }

    /// The access line of this request's response, to be written once the response has
    /// left.
    pub(crate) fn access_record(&self) -> AccessRecord {
        let discarded =
            self.command == Method::HEAD || self.response.status.is_some_and(status::forbids_body);
        let promised = if discarded {
            0
        } else {
            self.response
                .content_length
                .unwrap_or(self.wfile.body_bytes())
                .max(self.wfile.body_bytes())
        };
        AccessRecord {
            client_address: self.client_address.clone(),
            requestline: self.requestline.clone(),
            remote_user: self.remote_user.clone(),
            referer: self.header("referer").map(str::to_string),
            user_agent: self.header("user-agent").map(str::to_string),
            received: self.received,
            status: self.response.status,
            body_origin: self.wfile.body_origin(),
            promised,
            incomplete: self.response.incomplete,
        }
    }
}

impl fmt::Debug for HttpRequest<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpRequest")
            .field("requestline", &self.requestline)
            .field("client_address", &self.client_address)
            .field("headers", &RedactedHeaders(&self.headers))
            .field("close_connection", &self.close_connection)
            .finish_non_exhaustive()
    }
}

/// Headers for a `{:?}` that may end up in a log: credentials show as `<redacted>`.
struct RedactedHeaders<'h>(&'h HeaderMap);

impl fmt::Debug for RedactedHeaders<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SECRET: [&str; 4] = [
            "authorization",
            "proxy-authorization",
            "cookie",
            "set-cookie",
        ];
        let mut map = f.debug_map();
        for (name, value) in self.0 {
            if SECRET.contains(&name.as_str()) {
                map.entry(&name.as_str(), &"<redacted>");
            } else {
                map.entry(&name.as_str(), value);
            }
        }
        map.finish()
    }
}

/// Writes `n` in decimal into `buf`, ending at `end` (which leaves room for 20 digits),
/// and returns where it begins.
fn decimal_before(buf: &mut [u8], end: usize, mut n: u64) -> usize {
    let mut start = end;
    loop {
        start -= 1;
        buf[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return start;
        }
    }
}

/// A decimal number of up to 19 digits (so it fits a `u64`), spaces around it allowed.
fn parse_decimal(bytes: &[u8]) -> Option<u64> {
    let digits = bytes.trim_ascii();
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &d| {
        d.is_ascii_digit().then(|| n * 10 + u64::from(d - b'0'))
    })
}

/// Lets `write!` format a header value straight into the head buffer.
struct HeadWriter<'b>(&'b mut Vec<u8>);

impl fmt::Write for HeadWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// Whether `b` may appear in a header name (RFC 9110 `tchar`).
/// RFC 9110 `tchar`: a byte of a token (header names, codings, parameters).
pub(crate) fn is_token_byte(b: u8) -> bool {
    TOKEN[usize::from(b)]
}

const TOKEN: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'!' | b'#'
                    | b'$'
                    | b'%'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b'+'
                    | b'-'
                    | b'.'
                    | b'^'
                    | b'_'
                    | b'`'
                    | b'|'
                    | b'~'
            );
        b += 1;
    }
    table
};

/// Python's `HTTPServer.server_name`: `socket.getfqdn(host)`, without a DNS lookup.
pub fn server_name(address: &ServerAddress) -> String {
    match address {
        ServerAddress::Inet(addr) if addr.ip().is_unspecified() => nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| addr.ip().to_string()),
        ServerAddress::Inet(addr) => addr.ip().to_string(),
        ServerAddress::Unix(path) => path.display().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_version_with_a_line_break_never_reaches_the_wire() {
        #[derive(Clone)]
        struct Injecting;
        impl HttpHandler for Injecting {
            const SERVER_VERSION: &'static str = "evil/1.0\r\nSet-Cookie: x=1";
            fn do_get(&mut self, req: &mut HttpRequest<'_>) -> HandlerResult {
                let refused = req.send_response(200).unwrap_err();
                assert!(refused.to_string().contains("Server"), "{refused}");
                Err(refused.into())
            }
        }
        let raw = crate::http::TestRequest::get("/").run_raw(&Injecting);
        let raw = String::from_utf8_lossy(&raw);
        assert!(!raw.contains("Set-Cookie"), "{raw:?}");
        assert!(!raw.contains("evil"), "{raw:?}");
        let attributes = Attributes::of::<Injecting>(Version::HTTP_11);
        assert!(!attributes.server_is_clean);
        #[derive(Clone)]
        struct Plain;
        impl HttpHandler for Plain {}
        assert!(Attributes::of::<Plain>(Version::HTTP_11).server_is_clean);
    }

    #[test]
    fn a_content_type_with_a_line_break_never_reaches_the_wire() {
        #[derive(Clone)]
        struct Injecting;
        impl HttpHandler for Injecting {
            fn do_get(&mut self, req: &mut HttpRequest<'_>) -> HandlerResult {
                let value = format!("text/plain\r\nSet-Cookie: x={}", req.path.len());
                let refused = req.respond(200, &value, "hi").unwrap_err();
                assert!(refused.to_string().contains("Content-Type"), "{refused}");
                // The same value again: refused again, never found in the cache.
                let mut again = req.respond(200, &value, "hi");
                assert!(again.is_err());
                again = req.send_text(201, "fine");
                assert!(again.is_err(), "a response was begun");
                Err(refused)
            }
        }
        for _ in 0..2 {
            let raw = crate::http::TestRequest::get("/").run_raw(&Injecting);
            let raw = String::from_utf8_lossy(&raw);
            assert!(
                raw.lines()
                    .next()
                    .is_some_and(|line| line.contains(" 500 ")),
                "{raw:?}"
            );
            assert!(!raw.contains("Set-Cookie"), "{raw:?}");
        }
        // A clean value after the refused one is cached and sent.
        #[derive(Clone)]
        struct Clean;
        impl HttpHandler for Clean {
            fn do_get(&mut self, req: &mut HttpRequest<'_>) -> HandlerResult {
                req.respond(200, "text/x-clean", "hi")
            }
        }
        let response = crate::http::TestRequest::get("/").run(&Clean);
        assert_eq!(response.status, StatusCode::OK);
        assert_eq!(response.header("content-type"), Some("text/x-clean"));
        assert_eq!(response.text(), "hi");
    }

    #[test]
    fn decimals_are_written_as_display_writes_them() {
        for n in [
            0,
            7,
            9,
            10,
            13,
            99,
            100,
            4096,
            1 << 20,
            u64::MAX - 1,
            u64::MAX,
        ] {
            let mut digits = [0u8; 24];
            let start = decimal_before(&mut digits, 22, n);
            assert_eq!(&digits[start..22], n.to_string().as_bytes());
        }
    }

    #[test]
    fn clean_values_have_no_control_character_but_tab() {
        assert!(is_clean_value(b"text/plain; charset=utf-8\tx"));
        assert!(is_clean_value("caf\u{e9}".as_bytes()));
        for bad in [&b"a\r\nb"[..], b"a\nb", b"\0", b"x\x7f", b"\x1b[0m"] {
            assert!(!is_clean_value(bad), "{bad:?}");
        }
        // Every byte, at every place of a word and of the tail, against the plain rule.
        for len in [1, 7, 8, 9, 16, 23] {
            for at in 0..len {
                for b in 0..=255u8 {
                    let mut value = vec![b'a'; len];
                    value[at] = b;
                    let clean = b == b'\t' || (b >= 0x20 && b != 0x7f);
                    assert_eq!(is_clean_value(&value), clean, "{b:#x} at {at} of {len}");
                }
            }
        }
    }
}
