//! Testing handlers without a server: request bytes in, the responses out.
//!
//! ```
//! use socketserver::http::{HttpHandler, HttpRequest, TestRequest};
//! use socketserver::HandlerResult;
//!
//! #[derive(Clone)]
//! struct Hello;
//!
//! impl HttpHandler for Hello {
//!     fn do_get(&mut self, req: &mut HttpRequest<'_>) -> HandlerResult {
//!         req.send_text(200, "Hello, world!")
//!     }
//! }
//!
//! let response = TestRequest::get("/hello").run(&Hello);
//! assert_eq!(response.status, 200);
//! assert_eq!(response.text(), "Hello, world!");
//! ```
//!
//! [`TestRequest`] writes a request into one end of a Unix socket pair and runs the
//! connection's other end through the server's own code on the calling thread: the
//! per-connection setup of a stream server, the blocking HTTP driver of
//! [`ThreadingHttpServer`](super::ThreadingHttpServer), delivery, `shutdown_request` and
//! `handle_error`. A helper thread collects what the server writes and [`TestResponse`]
//! parses it as a client would. No port, no listening socket, no event loop.

use std::fmt;
use std::io::Read;
use std::net::{Shutdown, SocketAddr};
use std::os::unix::net::UnixStream;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::thread;

use http::header::{CONNECTION, CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Version};

use super::connection::Configured;
use super::handler::HttpHandler;
use crate::address::{ClientAddress, ServerAddress};
use crate::handler::{RequestContext, RequestError, RequestHandler, StreamRequest};
use crate::server::{Control, NoHooks, ServerHandle, ServerHooks, UnixStreamTransport};
use crate::socket::StreamSocket;

/// What a [`TestRequest`] runs on: any [`HttpHandler`], or a [`Configured`] one (to choose
/// the protocol version and limits at run time, as a server does). Sealed.
pub trait ServesHttp: RequestHandler<Request = StreamRequest> + sealed::Sealed {}

mod sealed {
    pub trait Sealed {}
}

impl<H: HttpHandler> sealed::Sealed for H {}
impl<H: HttpHandler> ServesHttp for H {}
impl<H: HttpHandler> sealed::Sealed for Configured<H> {}
impl<H: HttpHandler> ServesHttp for Configured<H> {}

/// A request to run a handler on without a server, and read its response: tiny_http's
/// `TestRequest`, for [`HttpHandler`]s.
///
/// ```
/// use socketserver::http::{Configured, HttpHandler, HttpRequest, TestRequest, Version};
/// use socketserver::HandlerResult;
///
/// #[derive(Clone)]
/// struct Greeter;
///
/// impl HttpHandler for Greeter {
///     fn do_get(&mut self, req: &mut HttpRequest<'_>) -> HandlerResult {
///         match req.url_path() {
///             "/hello" => req.send_text(200, "Hello, world!"),
///             _ => req.send_error(404, "No such page"),
///         }
///     }
///
///     fn do_post(&mut self, req: &mut HttpRequest<'_>) -> HandlerResult {
///         let name = req.body_text()?;
///         req.send_text(200, &format!("Hello, {name}!"))
///     }
/// }
///
/// let response = TestRequest::get("/hello").run(&Greeter);
/// assert_eq!(response.status, 200);
/// assert_eq!(response.header("content-type"), Some("text/plain; charset=utf-8"));
/// assert_eq!(response.text(), "Hello, world!");
///
/// assert_eq!(TestRequest::get("/nope").run(&Greeter).status, 404);
/// assert_eq!(TestRequest::head("/hello").run(&Greeter).body, b"");
///
/// let response = TestRequest::post("/").body("Ada").run(&Greeter);
/// assert_eq!(response.text(), "Hello, Ada!");
///
/// // Settings chosen at run time, as a server gets them: HTTP/1.1 keeps the connection open,
/// // so two pipelined requests get two responses.
/// let two = TestRequest::raw("GET /hello HTTP/1.1\r\nHost: a\r\n\r\nGET /x HTTP/1.1\r\nHost: a\r\n\r\n");
/// let responses = two.run_all(&Configured::new(Greeter).protocol_version(Version::HTTP_11));
/// let statuses: Vec<u16> = responses.iter().map(|r| r.status.as_u16()).collect();
/// assert_eq!(statuses, [200, 404]);
/// ```
///
/// # What runs
///
/// The request goes through the code a [`ThreadingHttpServer`](super::ThreadingHttpServer)
/// runs for a connection, not an imitation of it: the connection is one end of a Unix
/// socket pair, set up as the server sets up an accepted one (the handler's `RBUFSIZE`,
/// `TIMEOUT`, ...); the handler is cloned for it, as the server clones it for every
/// connection, and run through the server's default hooks (`finish_request`, then the
/// delivery of held-back output, `shutdown_request`, and `handle_error` for a failure,
/// which logs it). So the head parser, the limits, the error answers (400, 413, 431, 505,
/// ...), `100 Continue`, keep-alive and pipelining, HEAD and 304 without a body, the 500
/// for a handler that fails or panics, and the access log lines are the server's.
///
/// The request's bytes are written, then the client's side is shut down for writing: the
/// server sees the end of the input after the last request, as from a client that sent
/// everything and waits for the answers. A helper thread writes them and another reads
/// what the server writes, so neither a large upload nor a large file (`sendfile` and
/// all) can fill a socket buffer nobody drains.
///
/// # What does not
///
/// - The event loop: connections are served by the blocking driver, as on a
///   `ThreadingHttpServer`, `ThreadPool` or forking server. On an
///   [`HttpServer`](super::HttpServer) the same exchange runs, but reading ahead, parking
///   and [`may_block`](HttpHandler::may_block) are its own; the integration tests cover them.
/// - Time: the whole request is there at once, so the timeouts of
///   [`Limits`](super::Limits) never fire, and a slow or vanishing client cannot be played.
/// - The listening socket, `verify_request` and the other server hooks of your own.
///
/// # The request
///
/// Built requests are `METHOD target HTTP/1.1` (see [`version`](TestRequest::version))
/// with a `Host: localhost` header unless one is given, the [`header`](TestRequest::header)s
/// in the order given, and a `Content-Length` for a [`body`](TestRequest::body) unless a
/// `Content-Length` or `Transfer-Encoding` header is given (the body is then sent as it
/// is). [`raw`](TestRequest::raw) sends exact bytes instead: malformed, hostile or
/// pipelined requests. The client is `127.0.0.1:50000` unless
/// [`client_address`](TestRequest::client_address) says otherwise; the server is
/// `127.0.0.1:8000`.
#[derive(Clone, Debug)]
pub struct TestRequest {
    input: Input,
    client_address: ClientAddress,
}

#[derive(Clone, Debug)]
enum Input {
    Built(Built),
    Raw(Vec<u8>),
}

#[derive(Clone, Debug)]
struct Built {
    method: Method,
    target: String,
    version: Version,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
}

impl TestRequest {
    /// A `method` request for `target` (the request line's target: `/path?query`, or an
    /// absolute URI). Panics if `target` is empty or holds whitespace or control
    /// characters: use [`raw`](TestRequest::raw) to send such a request line.
    pub fn new(method: Method, target: impl Into<String>) -> Self {
        let target = target.into();
        assert!(
            !target.is_empty()
                && !target
                    .bytes()
                    .any(|b| b.is_ascii_whitespace() || b.is_ascii_control()),
            "TestRequest target {target:?} is empty or holds whitespace or control characters; \
             use TestRequest::raw to send it"
        );
        TestRequest {
            input: Input::Built(Built {
                method,
                target,
                version: Version::HTTP_11,
                headers: Vec::new(),
                body: None,
            }),
            client_address: ClientAddress::Inet(SocketAddr::from(([127, 0, 0, 1], 50000))),
        }
    }

    /// A `GET` request.
    pub fn get(target: impl Into<String>) -> Self {
        Self::new(Method::GET, target)
    }

    /// A `HEAD` request.
    pub fn head(target: impl Into<String>) -> Self {
        Self::new(Method::HEAD, target)
    }

    /// A `POST` request; give it a [`body`](TestRequest::body).
    pub fn post(target: impl Into<String>) -> Self {
        Self::new(Method::POST, target)
    }

    /// A `PUT` request.
    pub fn put(target: impl Into<String>) -> Self {
        Self::new(Method::PUT, target)
    }

    /// A `DELETE` request.
    pub fn delete(target: impl Into<String>) -> Self {
        Self::new(Method::DELETE, target)
    }

    /// Exactly these bytes, as everything the client sends on the connection: one request,
    /// several pipelined ones (see [`run_all`](TestRequest::run_all)), or anything at all.
    pub fn raw(bytes: impl Into<Vec<u8>>) -> Self {
        TestRequest {
            input: Input::Raw(bytes.into()),
            ..Self::get("/")
        }
    }

    /// Adds a header field (a repeated name is sent repeated). Panics if the name is empty
    /// or holds a colon, if either holds a line break, or on a [`raw`](TestRequest::raw)
    /// request.
    pub fn header(mut self, name: &str, value: impl fmt::Display) -> Self {
        let value = value.to_string();
        assert!(
            !name.is_empty() && !name.contains(['\r', '\n', ':']) && !value.contains(['\r', '\n']),
            "TestRequest header {name:?}: {value:?} is not one header field; \
             use TestRequest::raw to send it"
        );
        self.built("header").headers.push((name.to_string(), value));
        self
    }

    /// The body, with a `Content-Length` unless a `Content-Length` or `Transfer-Encoding`
    /// header is given. Panics on a [`raw`](TestRequest::raw) request.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.built("body").body = Some(body.into());
        self
    }

    /// The request line's version (default `HTTP/1.1`; the server answers 505 to any but
    /// 1.0 and 1.1). Panics on a [`raw`](TestRequest::raw) request.
    pub fn version(mut self, version: Version) -> Self {
        self.built("version").version = version;
        self
    }

    /// The client's address, as the handler sees it in `client_address` (default
    /// `127.0.0.1:50000`).
    pub fn client_address(mut self, address: impl Into<ClientAddress>) -> Self {
        self.client_address = address.into();
        self
    }

    fn built(&mut self, what: &str) -> &mut Built {
        match &mut self.input {
            Input::Built(built) => built,
            Input::Raw(_) => {
                panic!("TestRequest::{what} on a raw request, which is sent as given")
            }
        }
    }

    /// The bytes the client sends.
    pub fn to_bytes(&self) -> Vec<u8> {
        let built = match &self.input {
            Input::Raw(bytes) => return bytes.clone(),
            Input::Built(built) => built,
        };
        let has = |name: HeaderName| {
            built
                .headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case(name.as_str()))
        };
        let mut head = format!("{} {} {:?}\r\n", built.method, built.target, built.version);
        if !has(HOST) {
            head.push_str("Host: localhost\r\n");
        }
        for (name, value) in &built.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if let Some(body) = &built.body {
            if !has(CONTENT_LENGTH) && !has(TRANSFER_ENCODING) {
                head.push_str(&format!("Content-Length: {}\r\n", body.len()));
            }
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(built.body.as_deref().unwrap_or_default());
        bytes
    }

    /// Runs the request on (a clone of) `handler` and returns its response. Interim
    /// responses (`100 Continue`) are left out; [`run_all`](TestRequest::run_all) has them.
    ///
    /// Panics unless the server answered with exactly one final response, well-formed:
    /// for none, for pipelined requests or for output that is not HTTP, use `run_all` or
    /// [`run_raw`](TestRequest::run_raw).
    pub fn run<S: ServesHttp>(&self, handler: &S) -> TestResponse {
        let mut responses = self.run_all(handler);
        responses.retain(|r| !r.status.is_informational());
        match responses.len() {
            1 => responses.remove(0),
            n => panic!(
                "TestRequest::run: the server sent {n} final responses, not one; \
                 use run_all for pipelined requests: {responses:#?}"
            ),
        }
    }

    /// Runs the request on (a clone of) `handler` and returns every response the server
    /// sent, in order, interim ones (`100 Continue`) included: one per pipelined request
    /// it answered (it stops after one that closes the connection), none if it closed
    /// without answering.
    ///
    /// Panics if the output is not well-formed HTTP/1.x responses, each complete: a body
    /// shorter than its `Content-Length`, a bad chunk, bytes after a response that closed
    /// the connection. [`run_raw`](TestRequest::run_raw) gives the bytes whatever they are.
    pub fn run_all<S: ServesHttp>(&self, handler: &S) -> Vec<TestResponse> {
        let input = self.to_bytes();
        let (output, error) = serve(&input, handler, &self.client_address);
        match parse_responses(&output, &head_requests(&input)) {
            Ok(mut responses) => {
                if let Some(last) = responses.last_mut() {
                    last.error = error;
                }
                responses
            }
            Err(problem) => panic!(
                "TestRequest: the server's output is not well-formed HTTP: {problem}\n\
                 output ({} bytes): {}",
                output.len(),
                excerpt(&output)
            ),
        }
    }

    /// Runs the request on (a clone of) `handler` and returns the bytes the server wrote,
    /// unparsed.
    pub fn run_raw<S: ServesHttp>(&self, handler: &S) -> Vec<u8> {
        serve(&self.to_bytes(), handler, &self.client_address).0
    }
}

/// Serves `input` as everything one client sends on a connection, as a stream server
/// serves an accepted connection; returns what the server wrote, and what it would have
/// reported to `handle_error`.
fn serve<S: ServesHttp>(
    input: &[u8],
    handler: &S,
    client_address: &ClientAddress,
) -> (Vec<u8>, Option<String>) {
    let (client, server) = UnixStream::pair().expect("TestRequest: socketpair");
    // Writes through `StreamSocket` never raise SIGPIPE when the server closes first.
    let client = StreamSocket::unix(client);
    let address = ServerAddress::Inet(SocketAddr::from(([127, 0, 0, 1], 8000)));
    let control = Control::new(address).expect("TestRequest: eventfd");
    let server_handle = ServerHandle(Arc::new(control));
    thread::scope(|scope| {
        let writer = client.clone();
        scope.spawn(move || {
            // Fails only once the server closed without reading it all, as it may.
            let _ = writer.sendall(input);
            let _ = writer.shutdown(Shutdown::Write);
        });
        let reader = scope.spawn(move || {
            let mut output = Vec::new();
            let _ = (&client).read_to_end(&mut output);
            output
        });
        let error = serve_connection(
            handler,
            StreamSocket::unix(server),
            client_address,
            server_handle,
        );
        let output = reader
            .join()
            .expect("TestRequest: the reader thread panicked");
        (output, error)
    })
}

/// What a stream server does with an accepted connection: the request and its setup, the
/// handler through the hooks' `finish_request`, delivery, `shutdown_request`, and
/// `handle_error` for what failed (the server's session, without a concurrency strategy).
fn serve_connection<S: ServesHttp>(
    handler: &S,
    connection: StreamSocket,
    client_address: &ClientAddress,
    server: ServerHandle,
) -> Option<String> {
    let hooks = NoHooks;
    let outcome = catch_unwind(AssertUnwindSafe(|| -> Result<(), RequestError> {
        let mut request = StreamRequest::new::<S>(connection, client_address.clone(), server)?;
        // Served on the calling thread, blocking: the driver of a thread per connection.
        request.set_run_mode(None);
        let handled = catch_unwind(AssertUnwindSafe(|| {
            <NoHooks as ServerHooks<UnixStreamTransport>>::finish_request(
                &hooks,
                handler.clone(),
                &mut request,
            )
        }))
        .unwrap_or_else(|panic| Err(RequestError::from_panic(panic)));
        let delivered = request.deliver();
        <NoHooks as ServerHooks<UnixStreamTransport>>::shutdown_request(&hooks, request.into_raw());
        handled?;
        Ok(delivered?)
    }));
    let error = match outcome {
        Ok(Ok(())) => return None,
        Ok(Err(error)) => error,
        Err(panic) => RequestError::from_panic(panic),
    };
    <NoHooks as ServerHooks<UnixStreamTransport>>::handle_error(&hooks, client_address, &error);
    Some(error.to_string())
}

/// One response the server sent, parsed from its bytes as a client reads it: the head, and
/// the body as its framing delimits it (`Content-Length`, chunked, or the end of the
/// connection; none for HEAD, 1xx, 204 and 304).
///
/// ```
/// use socketserver::http::{HttpHandler, HttpRequest, TestRequest, Version};
/// use socketserver::HandlerResult;
///
/// #[derive(Clone)]
/// struct Hello;
///
/// impl HttpHandler for Hello {
///     fn do_get(&mut self, req: &mut HttpRequest<'_>) -> HandlerResult {
///         req.send_text(200, "Hello, world!")
///     }
/// }
///
/// let response = TestRequest::get("/").run(&Hello);
/// assert_eq!(response.reason, "OK");
/// assert_eq!(response.version, Version::HTTP_10); // Hello's PROTOCOL_VERSION
/// assert_eq!(response.header("content-length"), Some("13"));
/// assert_eq!(response.body, b"Hello, world!");
/// assert!(response.closes_connection()); // as HTTP/1.0 does after every response
/// assert_eq!(response.handler_error(), None);
/// ```
#[derive(Clone)]
pub struct TestResponse {
    /// The status code.
    pub status: StatusCode,
    /// The reason phrase of the status line.
    pub reason: String,
    /// The status line's version.
    pub version: Version,
    /// The header fields, repeated ones kept.
    pub headers: HeaderMap,
    /// The body, de-chunked.
    pub body: Vec<u8>,
    /// The trailer fields of a chunked body.
    pub trailers: HeaderMap,
    closes: bool,
    error: Option<String>,
}

impl TestResponse {
    /// The first value of header `name` (any case), if present and visible ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body as text; panics if it is not UTF-8.
    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap_or_else(|err| {
            panic!(
                "TestResponse::text: the body is not UTF-8 ({err}): {}",
                excerpt(&self.body)
            )
        })
    }

    /// Whether the server closes the connection after this response, as the response
    /// says (`Connection: close`, HTTP/1.0 without `keep-alive`, or a body that ends with
    /// the connection).
    pub fn closes_connection(&self) -> bool {
        self.closes
    }

    /// What the server reported to `handle_error` after this response, the last of its
    /// connection: the handler's error or panic (the client got a 500 for it, or the
    /// response was cut short), or a failure of the connection. `None` when all went well.
    pub fn handler_error(&self) -> Option<&str> {
        self.error.as_deref()
    }
}

impl fmt::Debug for TestResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("TestResponse");
        s.field("status", &self.status)
            .field("reason", &self.reason)
            .field("version", &self.version)
            .field("headers", &self.headers)
            .field("body", &format_args!("{}", excerpt(&self.body)));
        if !self.trailers.is_empty() {
            s.field("trailers", &self.trailers);
        }
        if self.closes {
            s.field("closes_connection", &true);
        }
        if let Some(error) = &self.error {
            s.field("handler_error", error);
        }
        s.finish()
    }
}

/// `bytes` quoted with non-printable bytes escaped, cut after 2 KiB.
fn excerpt(bytes: &[u8]) -> String {
    const MAX: usize = 2048;
    let shown = &bytes[..bytes.len().min(MAX)];
    let mut text = format!("b\"{}\"", shown.escape_ascii());
    if bytes.len() > MAX {
        text.push_str(&format!(" ... ({} more bytes)", bytes.len() - MAX));
    }
    text
}

/// For each request in `input`, in order, whether it is a HEAD (its response has no
/// body). Follows the requests' framing as far as it is clear; the server closes the
/// connection at the first request whose framing is not.
fn head_requests(mut input: &[u8]) -> Vec<bool> {
    let mut heads = Vec::new();
    loop {
        let start = input
            .iter()
            .position(|&b| b != b'\r' && b != b'\n')
            .unwrap_or(input.len());
        input = &input[start..];
        if input.is_empty() {
            return heads;
        }
        // As the server judges a request it rejects: by the first word of its line.
        heads.push(input.starts_with(b"HEAD "));
        let mut storage = vec![httparse::EMPTY_HEADER; 1024];
        let mut request = httparse::Request::new(&mut storage);
        let Ok(httparse::Status::Complete(head_len)) = request.parse(input) else {
            return heads;
        };
        let mut chunked = false;
        let mut length = None;
        for header in request.headers.iter() {
            if header.name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = true;
            } else if header.name.eq_ignore_ascii_case("content-length") {
                match (length, decimal(header.value)) {
                    (None, Some(n)) => length = Some(n),
                    (Some(m), Some(n)) if m == n => {}
                    _ => return heads,
                }
            }
        }
        input = &input[head_len..];
        if chunked {
            match decode_chunked(input) {
                Ok((_, _, used)) => input = &input[used..],
                Err(_) => return heads,
            }
        } else if let Some(n) = length {
            match usize::try_from(n).ok().and_then(|n| input.get(n..)) {
                Some(rest) => input = rest,
                None => return heads,
            }
        }
    }
}

/// The responses in `output`, the answers to requests whose HEAD-ness `heads` gives.
fn parse_responses(mut output: &[u8], heads: &[bool]) -> Result<Vec<TestResponse>, String> {
    let mut responses = Vec::new();
    let mut answered = 0;
    while !output.is_empty() {
        let head_request = heads.get(answered).copied().unwrap_or(false);
        let (response, used) = parse_response(output, head_request)
            .map_err(|problem| format!("response {}: {problem}", responses.len() + 1))?;
        output = &output[used..];
        if !response.status.is_informational() {
            answered += 1;
        }
        let closes = response.closes;
        responses.push(response);
        if closes && !output.is_empty() {
            return Err(format!(
                "{} bytes after response {}, which closed the connection",
                output.len(),
                responses.len()
            ));
        }
    }
    Ok(responses)
}

/// One response at the start of `output`, and how many bytes it took.
fn parse_response(output: &[u8], head_request: bool) -> Result<(TestResponse, usize), String> {
    let mut storage = vec![httparse::EMPTY_HEADER; 1024];
    let mut parsed = httparse::Response::new(&mut storage);
    let head_len = match parsed.parse(output) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Err("the head is cut short".into()),
        Err(err) => return Err(format!("malformed head: {err}")),
    };
    let version = match parsed.version {
        Some(0) => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    let code = parsed.code.unwrap_or_default();
    let status = StatusCode::from_u16(code).map_err(|_| format!("bad status {code}"))?;
    let reason = parsed.reason.unwrap_or_default().to_string();
    let headers = header_map(parsed.headers)?;

    let tokens = |name: HeaderName| -> Vec<String> {
        headers
            .get_all(name)
            .iter()
            .flat_map(|v| v.as_bytes().split(|&b| b == b','))
            .map(|t| String::from_utf8_lossy(t.trim_ascii()).to_ascii_lowercase())
            .collect()
    };
    let connection = tokens(CONNECTION);
    let mut closes = connection.iter().any(|t| t == "close")
        || (version == Version::HTTP_10 && !connection.iter().any(|t| t == "keep-alive"));

    let body_start = &output[head_len..];
    let no_body = head_request
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let lengths: Vec<_> = headers.get_all(CONTENT_LENGTH).iter().collect();
    let codings = tokens(TRANSFER_ENCODING);
    if !codings.is_empty() && !lengths.is_empty() {
        return Err("both Transfer-Encoding and Content-Length".into());
    }
    let (body, trailers, body_len) = if no_body {
        (Vec::new(), HeaderMap::new(), 0)
    } else if codings.last().is_some_and(|c| c == "chunked") {
        decode_chunked(body_start)?
    } else if !codings.is_empty() {
        closes = true;
        (body_start.to_vec(), HeaderMap::new(), body_start.len())
    } else if let Some(value) = lengths.first() {
        if lengths.len() > 1 {
            return Err("more than one Content-Length".into());
        }
        let n = decimal(value.as_bytes())
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| format!("bad Content-Length {value:?}"))?;
        let body = body_start.get(..n).ok_or_else(|| {
            format!(
                "the body is cut short: {} of its Content-Length {n} bytes",
                body_start.len()
            )
        })?;
        (body.to_vec(), HeaderMap::new(), n)
    } else {
        // Neither: the body ends with the connection.
        closes = true;
        (body_start.to_vec(), HeaderMap::new(), body_start.len())
    };
    let response = TestResponse {
        status,
        reason,
        version,
        headers,
        body,
        trailers,
        closes: closes && !status.is_informational(),
        error: None,
    };
    Ok((response, head_len + body_len))
}

fn header_map(fields: &[httparse::Header<'_>]) -> Result<HeaderMap, String> {
    let mut map = HeaderMap::new();
    for field in fields {
        let name = HeaderName::from_bytes(field.name.as_bytes())
            .map_err(|_| format!("bad header name {:?}", field.name))?;
        let value = HeaderValue::from_bytes(field.value)
            .map_err(|_| format!("bad value of {name}: {}", excerpt(field.value)))?;
        map.append(name, value);
    }
    Ok(map)
}

/// A decimal number, digits only.
fn decimal(bytes: &[u8]) -> Option<u64> {
    if bytes.is_empty() || bytes.len() > 19 || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

/// A chunked body at the start of `input` (RFC 9112 7.1): its data, its trailer fields,
/// and how many bytes it took.
fn decode_chunked(input: &[u8]) -> Result<(Vec<u8>, HeaderMap, usize), String> {
    let mut body = Vec::new();
    let mut pos = 0;
    loop {
        let rest = &input[pos..];
        let line_len = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("a chunk size line is cut short")?;
        let line = &rest[..line_len];
        let size = line.split(|&b| b == b';').next().unwrap_or_default();
        let size = size.trim_ascii_end();
        if size.is_empty() || size.len() > 15 || !size.iter().all(u8::is_ascii_hexdigit) {
            return Err(format!("bad chunk size line {}", excerpt(line)));
        }
        let size = std::str::from_utf8(size)
            .ok()
            .and_then(|s| usize::from_str_radix(s, 16).ok())
            .ok_or("bad chunk size")?;
        pos += line_len + 2;
        if size == 0 {
            let mut storage = vec![httparse::EMPTY_HEADER; 256];
            return match httparse::parse_headers(&input[pos..], &mut storage) {
                Ok(httparse::Status::Complete((used, fields))) => {
                    Ok((body, header_map(fields)?, pos + used))
                }
                Ok(httparse::Status::Partial) => Err("the trailer section is cut short".into()),
                Err(err) => Err(format!("malformed trailer section: {err}")),
            };
        }
        let data = input
            .get(pos..pos + size)
            .ok_or_else(|| format!("a chunk of {size} bytes is cut short"))?;
        body.extend_from_slice(data);
        pos += size;
        if input.get(pos..pos + 2) != Some(b"\r\n") {
            return Err("a chunk does not end with CRLF".into());
        }
        pos += 2;
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::handler::HandlerResult;
    use crate::http::{HttpRequest, Limits};

    /// Answers `/hello`, echoes bodies with their length, and misbehaves on request.
    #[derive(Clone)]
    struct Probe;

    impl HttpHandler for Probe {
        fn do_get(&mut self, req: &mut HttpRequest<'_>) -> HandlerResult {
            match req.url_path() {
                "/hello" => req.send_text(200, "Hello, world!"),
                "/client" => {
                    let client = req.client_address.to_string();
                    req.send_text(200, &client)
                }
                "/fail" => Err("the database is down".into()),
                "/panic" => panic!("boom"),
                "/chunked" => {
                    req.send_response(200)?;
                    req.send_header("Transfer-Encoding", "chunked")?;
                    req.send_header("Trailer", "X-Sum")?;
                    req.end_headers()?;
                    req.wfile.write_all(
                        b"5\r\nHello\r\n8;ext=1\r\n, world!\r\n0\r\nX-Sum: 13\r\n\r\n",
                    )?;
                    Ok(())
                }
                "/unframed" => {
                    req.send_response(200)?;
                    req.end_headers()?;
                    req.wfile.write_all(b"until the end")?;
                    Ok(())
                }
                "/big" => req.respond(200, "application/octet-stream", big()),
                _ => req.send_error(404, None),
            }
        }

        fn do_post(&mut self, req: &mut HttpRequest<'_>) -> HandlerResult {
            let body = req.read_body()?;
            req.send_text(200, &format!("{} bytes, sum {}", body.len(), sum(&body)))
        }
    }

    fn big() -> Vec<u8> {
        (0..4u32 << 20).map(|i| (i % 251) as u8).collect()
    }

    fn sum(bytes: &[u8]) -> u64 {
        bytes.iter().map(|&b| u64::from(b)).sum()
    }

    fn http11() -> Configured<Probe> {
        Configured::new(Probe).protocol_version(Version::HTTP_11)
    }

    #[test]
    fn built_requests_are_the_bytes_a_client_sends() {
        assert_eq!(
            TestRequest::get("/a?b=c").to_bytes(),
            b"GET /a?b=c HTTP/1.1\r\nHost: localhost\r\n\r\n"
        );
        let post = TestRequest::post("/form")
            .version(Version::HTTP_10)
            .header("host", "example.org")
            .header("X-N", 5)
            .header("X-N", 6)
            .body("a=1");
        assert_eq!(
            post.to_bytes(),
            b"POST /form HTTP/1.0\r\nhost: example.org\r\nX-N: 5\r\nX-N: 6\r\n\
              Content-Length: 3\r\n\r\na=1"
        );
        let chunked = TestRequest::post("/")
            .header("Transfer-Encoding", "chunked")
            .body("1\r\nx\r\n0\r\n\r\n");
        assert!(!String::from_utf8(chunked.to_bytes())
            .unwrap()
            .contains("Content-Length"));
        assert_eq!(TestRequest::raw("anything\r\n").to_bytes(), b"anything\r\n");
    }

    #[test]
    #[should_panic(expected = "use TestRequest::raw")]
    fn a_header_with_a_line_break_is_refused() {
        let _ = TestRequest::get("/").header("X-A", "1\r\nX-B: 2");
    }

    #[test]
    #[should_panic(expected = "raw request")]
    fn raw_requests_take_no_headers() {
        let _ = TestRequest::raw("GET / HTTP/1.0\r\n\r\n").header("X-A", 1);
    }

    #[test]
    fn a_response_is_parsed_from_what_the_server_wrote() {
        let response = TestRequest::get("/hello").run(&Probe);
        assert_eq!(response.status, StatusCode::OK);
        assert_eq!(response.reason, "OK");
        assert_eq!(response.version, Version::HTTP_10);
        assert_eq!(response.header("Content-Length"), Some("13"));
        assert!(response
            .header("server")
            .is_some_and(|s| s.starts_with("socketserver/")));
        assert!(response.header("date").is_some());
        assert_eq!(response.text(), "Hello, world!");
        assert!(
            response.closes_connection(),
            "HTTP/1.0 closes: {response:?}"
        );
        assert_eq!(response.handler_error(), None);

        let raw = TestRequest::get("/hello").run_raw(&Probe);
        assert!(raw.starts_with(b"HTTP/1.0 200 OK\r\n"));
        assert!(raw.ends_with(b"\r\n\r\nHello, world!"));

        let kept = TestRequest::get("/hello").run(&http11());
        assert_eq!(kept.version, Version::HTTP_11);
        assert!(!kept.closes_connection(), "{kept:?}");
        let closed = TestRequest::get("/hello")
            .header("Connection", "close")
            .run(&http11());
        assert_eq!(closed.header("connection"), Some("close"));
        assert!(closed.closes_connection());
    }

    #[test]
    fn pipelined_requests_get_one_response_each_and_head_none_of_the_body() {
        let input = "GET /hello HTTP/1.1\r\nHost: a\r\n\r\n\
                     HEAD /hello HTTP/1.1\r\nHost: a\r\n\r\n\
                     POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc\
                     GET /missing HTTP/1.1\r\nHost: a\r\n\r\n";
        let responses = TestRequest::raw(input).run_all(&http11());
        let statuses: Vec<u16> = responses.iter().map(|r| r.status.as_u16()).collect();
        assert_eq!(statuses, [200, 200, 200, 404], "{responses:#?}");
        assert_eq!(responses[1].header("content-length"), Some("13"));
        assert!(responses[1].body.is_empty());
        assert_eq!(responses[2].text(), "3 bytes, sum 294");
        assert!(responses[3].text().contains("404"));
        assert!(responses.iter().all(|r| !r.closes_connection()));
    }

    #[test]
    #[should_panic(expected = "use run_all")]
    fn run_wants_one_response() {
        let two = "GET /hello HTTP/1.1\r\nHost: a\r\n\r\nGET /hello HTTP/1.1\r\nHost: a\r\n\r\n";
        TestRequest::raw(two).run(&http11());
    }

    #[test]
    fn chunked_bodies_are_decoded_with_their_trailers() {
        let twice =
            "GET /chunked HTTP/1.1\r\nHost: a\r\n\r\nGET /hello HTTP/1.1\r\nHost: a\r\n\r\n";
        let responses = TestRequest::raw(twice).run_all(&http11());
        assert_eq!(responses.len(), 2, "{responses:#?}");
        assert_eq!(responses[0].text(), "Hello, world!");
        assert_eq!(
            responses[0].trailers.get("x-sum").map(|v| v.as_bytes()),
            Some(&b"13"[..])
        );
        assert!(responses[0].header("content-length").is_none());
        assert_eq!(responses[1].text(), "Hello, world!");
    }

    #[test]
    fn a_body_without_length_ends_with_the_connection() {
        let response = TestRequest::get("/unframed").run(&http11());
        assert_eq!(response.header("connection"), Some("close"));
        assert!(response.closes_connection());
        assert_eq!(response.text(), "until the end");
    }

    #[test]
    fn failures_get_a_500_and_reach_handle_error() {
        let failed = TestRequest::get("/fail").run(&Probe);
        assert_eq!(failed.status, 500);
        assert_eq!(failed.handler_error(), Some("the database is down"));
        let panicked = TestRequest::get("/panic").run(&http11());
        assert_eq!(panicked.status, 500);
        assert!(panicked.closes_connection());
        assert_eq!(panicked.handler_error(), Some("handler panicked: boom"));
    }

    #[test]
    fn hostile_input_gets_the_servers_answers() {
        let status = |input: &str| TestRequest::raw(input).run(&http11()).status.as_u16();
        assert_eq!(status("\u{7f}garbage\r\n\r\n"), 400);
        assert_eq!(status("GET / HTTP/1.1\r\n\r\n"), 400, "Host is required");
        assert_eq!(status("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), 400);
        assert_eq!(status("GET / HTTP/2.0\r\nHost: a\r\n\r\n"), 505);
        assert_eq!(
            status("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"),
            400,
            "smuggling"
        );
        let many: String = (0..101).map(|i| format!("X-{i}: {i}\r\n")).collect();
        assert_eq!(
            status(&format!("GET / HTTP/1.1\r\nHost: a\r\n{many}\r\n")),
            431
        );

        // A rejected request ends the connection: the request after it gets nothing.
        let then = "GET / HTTP/1.1\r\n\r\nGET /hello HTTP/1.1\r\nHost: a\r\n\r\n";
        let responses = TestRequest::raw(then).run_all(&http11());
        assert_eq!(responses.len(), 1);
        assert!(responses[0].closes_connection());

        // Half a head, then the end: no answer.
        assert!(TestRequest::raw("GET /hello HTT")
            .run_all(&http11())
            .is_empty());
    }

    #[test]
    fn configured_limits_apply() {
        let small = Configured::new(Probe).limits(Limits {
            max_body_size: 10,
            ..Limits::default()
        });
        let refused = TestRequest::post("/").body("0123456789!").run(&small);
        assert_eq!(refused.status, 413);
        let taken = TestRequest::post("/").body("0123456789").run(&small);
        assert_eq!(taken.text(), "10 bytes, sum 525");
    }

    #[test]
    fn expect_100_continue_comes_before_the_answer() {
        let request = TestRequest::post("/")
            .header("Expect", "100-continue")
            .body("abc");
        let responses = request.run_all(&http11());
        let statuses: Vec<u16> = responses.iter().map(|r| r.status.as_u16()).collect();
        assert_eq!(statuses, [100, 200], "{responses:#?}");
        assert_eq!(request.run(&http11()).text(), "3 bytes, sum 294");
    }

    #[test]
    fn large_bodies_either_way_do_not_fill_a_socket_buffer() {
        let upload = big();
        let response = TestRequest::post("/").body(upload.clone()).run(&Probe);
        assert_eq!(
            response.text(),
            format!("{} bytes, sum {}", upload.len(), sum(&upload))
        );
        let download = TestRequest::get("/big").run(&Probe);
        assert_eq!(download.body.len(), upload.len());
        assert!(download.body == upload);
    }

    #[test]
    fn the_handler_sees_the_client_address() {
        let address: SocketAddr = "192.0.2.7:4242".parse().unwrap();
        let response = TestRequest::get("/client")
            .client_address(address)
            .run(&Probe);
        assert_eq!(response.text(), "192.0.2.7:4242");
        assert_eq!(
            TestRequest::get("/client").run(&Probe).text(),
            "127.0.0.1:50000"
        );
    }

    #[test]
    fn the_parser_is_strict() {
        let parse = |output: &[u8], heads: &[bool]| parse_responses(output, heads);
        // 304, 204 and HEAD have no body whatever their Content-Length says.
        let ok = parse(
            b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n\
              HTTP/1.1 204 No Content\r\n\r\n\
              HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n\
              HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
            &[false, false, true, false],
        )
        .unwrap();
        assert_eq!(ok.len(), 4);
        assert_eq!(ok[3].body, b"ok");
        for (output, problem) in [
            (
                &b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nabc"[..],
                "cut short",
            ),
            (b"HTTP/1.1 200 OK\r\nContent-Len", "cut short"),
            (
                b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.0 200 OK\r\n\r\n",
                "closed the connection",
            ),
            (
                b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\nx",
                "closed the connection",
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
                "more than one",
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: +1\r\n\r\nx",
                "bad Content-Length",
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n",
                "both",
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcd\r\n0\r\n\r\n",
                "CRLF",
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nx\r\n",
                "bad chunk size",
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n",
                "trailer",
            ),
            (b"SSH-2.0-OpenSSH\r\n\r\n", "malformed head"),
        ] {
            let err = parse(output, &[false, false]).unwrap_err();
            assert!(err.contains(problem), "{err:?} for {}", excerpt(output));
        }
    }

    #[test]
    fn requests_are_followed_to_find_the_heads() {
        let input = b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nHEAD\
                      \r\nHEAD / HTTP/1.1\r\nHost: a\r\n\r\n\
                      POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\
                      4\r\nHEAD\r\n0\r\n\r\n\
                      HEAD /x HTTP/1.1\r\n";
        assert_eq!(head_requests(input), [false, true, false, true]);
    }
}
