//! Helpers shared by the HTTP integration tests: a server running on a thread of its own and
//! stopped on drop, raw clients with read timeouts (no test can hang), a small response
//! parser, a bounded poll, and an echo handler.
//!
//! Every `tests/http_*.rs` binary includes this module but uses only part of it.
#![allow(dead_code)]

use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::{mpsc, Arc};
use std::thread::{self, JoinHandle};

use socketserver::http::{HttpHandler, HttpRequest, Limits, Version};
use socketserver::server::{RequestContext, Transport};
use socketserver::{
    HandlerResult, RequestHandler, Server, ServerAddress, StreamRequest, TcpTransport,
};

#[path = "../strategy/mod.rs"]
pub mod strategy;
#[allow(unused_imports)]
pub use strategy::{flavor, Flavor, TestConcurrency};

#[path = "../common/mod.rs"]
pub mod common;
#[allow(unused_imports)]
pub use common::{connect, exchange, is_close, read_to_eof, wait_until, TempDir, IO_TIMEOUT};

/// A server running `serve_forever` on a thread; shut down and joined on drop.
///
/// Handler threads are daemon threads, so a connection a failing test leaves open cannot
/// make the drop wait for it.
pub struct Running<T: Transport, H> {
    pub server: Arc<Server<T, H, TestConcurrency>>,
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl<T, H> Running<T, H>
where
    T: Transport,
    H: RequestHandler,
    H::Request: RequestContext<Raw = T::Request>,
{
    /// Serves an already built server.
    pub fn serve(server: Server<T, H, TestConcurrency>) -> Self {
        let server = Arc::new(server);
        let serving = Arc::clone(&server);
        let thread = thread::Builder::new()
            .name("serve_forever".into())
            .spawn(move || serving.serve_forever())
            .expect("spawn the serving thread");
        wait_until("serve_forever() to start", || server.handle().is_serving());
        Running {
            server,
            thread: Some(thread),
        }
    }

    pub fn address(&self) -> ServerAddress {
        self.server.server_address()
    }
}

impl<H: RequestHandler<Request = socketserver::StreamRequest>> Running<TcpTransport, H> {
    /// The TCP address to connect to.
    pub fn addr(&self) -> SocketAddr {
        self.server.server_address().inet().expect("a TCP server")
    }
}

impl<T: Transport, H> Drop for Running<T, H> {
    fn drop(&mut self) {
        let handle = self.server.handle();
        let (done, finished) = mpsc::channel();
        thread::spawn(move || {
            handle.shutdown();
            let _ = done.send(());
        });
        let stopped = finished.recv_timeout(IO_TIMEOUT).is_ok();
        let result = self.thread.take().map(|t| t.join());
        if !thread::panicking() {
            assert!(stopped, "shutdown() did not return within {IO_TIMEOUT:?}");
            match result {
                Some(Ok(Ok(()))) | None => {}
                Some(Ok(Err(err))) => panic!("serve_forever failed: {err}"),
                Some(Err(_)) => panic!("serve_forever panicked"),
            }
        }
    }
}

/// A threading HTTP server for `handler` on 127.0.0.1, port 0.
pub fn start<H: RequestHandler<Request = StreamRequest>>(handler: H) -> Running<TcpTransport, H> {
    start_on("127.0.0.1:0", handler)
}

/// A threading HTTP server for `handler` on `address` (port 0).
pub fn start_on<H: RequestHandler<Request = StreamRequest>>(
    address: &str,
    handler: H,
) -> Running<TcpTransport, H> {
    let server = Server::<TcpTransport, H, TestConcurrency>::builder(address, handler)
        .request_queue_size(1024)
        .build()
        .expect("bind the HTTP server");
    Running::serve(server)
}

/// [`exchange`], parsed into the responses it holds; all bytes must be responses.
pub fn exchange_parsed(addr: SocketAddr, request: &[u8]) -> Vec<Response> {
    parse_all(&exchange(addr, request))
}

/// [`exchange`] for a request that must get exactly one response and a close.
pub fn exchange_one(addr: SocketAddr, request: &[u8]) -> Response {
    let mut responses = exchange_parsed(addr, request);
    assert_eq!(
        responses.len(),
        1,
        "expected one response to {:?}, got {responses:#?}",
        String::from_utf8_lossy(&request[..request.len().min(200)])
    );
    responses.remove(0)
}

/// A parsed response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub version: String,
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of header `name`.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Whether the response has a `StreamSocket` header with `token`.
    pub fn connection_has(&self, token: &str) -> bool {
        self.header_all("connection")
            .iter()
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn content_length(&self) -> Option<usize> {
        self.header("content-length")
            .map(|v| v.parse().expect("a numeric Content-Length"))
    }
}

/// How the body of a response is delimited, as the parser needs to know it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// By `Content-Length`, or by the close of the connection without one.
    Normal,
    /// A response to HEAD: never a body.
    Head,
}

/// Parses one response from the start of `buf`: `Ok(Some((response, consumed)))`, `Ok(None)`
/// if more bytes are needed, `Err` if malformed. A body without `Content-Length` runs to the
/// end of `buf` when `at_eof`.
pub fn parse_response(
    buf: &[u8],
    framing: Framing,
    at_eof: bool,
) -> Result<Option<(Response, usize)>, String> {
    let Some(head_end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = std::str::from_utf8(&buf[..head_end]).map_err(|e| format!("head: {e}"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or("").to_string();
    if !version.starts_with("HTTP/1.") {
        return Err(format!("bad status line {status_line:?}"));
    }
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let reason = parts.next().unwrap_or("").to_string();
    let mut headers = Vec::new();
    for line in lines {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| format!("bad header line {line:?}"))?;
        if name.is_empty() || name.contains([' ', '\t']) {
            return Err(format!("bad header name in {line:?}"));
        }
        headers.push((name.to_string(), value.trim().to_string()));
    }
    let body_start = head_end + 4;
    let mut response = Response {
        version,
        status,
        reason,
        headers,
        body: Vec::new(),
    };
    let no_body =
        framing == Framing::Head || (100..200).contains(&status) || status == 204 || status == 304;
    if no_body {
        return Ok(Some((response, body_start)));
    }
    if let Some(te) = response.header("transfer-encoding") {
        return Err(format!("unexpected Transfer-Encoding {te:?} in a response"));
    }
    match response.content_length() {
        Some(n) => {
            if buf.len() < body_start + n {
                return Ok(None);
            }
            response.body = buf[body_start..body_start + n].to_vec();
            Ok(Some((response, body_start + n)))
        }
        None if at_eof => {
            response.body = buf[body_start..].to_vec();
            Ok(Some((response, buf.len())))
        }
        None => Ok(None),
    }
}

/// Parses every response in `buf`, which ends where the connection closed.
pub fn parse_all(buf: &[u8]) -> Vec<Response> {
    let mut responses = Vec::new();
    let mut rest = buf;
    while !rest.is_empty() {
        match parse_response(rest, Framing::Normal, true) {
            Ok(Some((response, used))) => {
                responses.push(response);
                rest = &rest[used..];
            }
            Ok(None) => panic!(
                "truncated response of {} bytes: {:?}... (after {} complete ones)",
                rest.len(),
                String::from_utf8_lossy(&rest[..rest.len().min(512)]),
                responses.len()
            ),
            Err(err) => panic!("{err}: {:?}", String::from_utf8_lossy(rest)),
        }
    }
    responses
}

/// A persistent connection: send requests, read responses one at a time.
pub struct Client<S = TcpStream> {
    pub stream: S,
    buf: Vec<u8>,
    eof: bool,
}

impl Client<TcpStream> {
    pub fn connect(addr: SocketAddr) -> Self {
        Client::new(connect(addr))
    }
}

impl Client<UnixStream> {
    pub fn connect_unix(path: &Path) -> Self {
        let stream = UnixStream::connect(path).expect("connect to the Unix socket");
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        Client::new(stream)
    }
}

impl<S: Read + Write> Client<S> {
    pub fn new(stream: S) -> Self {
        Client {
            stream,
            buf: Vec::new(),
            eof: false,
        }
    }

    pub fn send(&mut self, data: &[u8]) {
        self.stream.write_all(data).expect("send to the server");
    }

    /// Reads more input; `false` at end-of-file. Panics on a timeout.
    fn fill(&mut self) -> bool {
        if self.eof {
            return false;
        }
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    self.eof = true;
                    return false;
                }
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return true;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_close(&e) => {
                    self.eof = true;
                    return false;
                }
                Err(e) => panic!(
                    "reading a response failed ({e}); buffered: {:?}",
                    String::from_utf8_lossy(&self.buf)
                ),
            }
        }
    }

    fn read_framed(&mut self, framing: Framing) -> Response {
        loop {
            match parse_response(&self.buf, framing, self.eof) {
                Ok(Some((response, used))) => {
                    self.buf.drain(..used);
                    return response;
                }
                Ok(None) => {
                    if !self.fill() && !self.eof_completes(framing) {
                        panic!(
                            "the connection closed before a complete response: {:?}",
                            String::from_utf8_lossy(&self.buf)
                        );
                    }
                }
                Err(err) => panic!("{err}"),
            }
        }
    }

    /// After end-of-file, whether parsing again can succeed (a body delimited by the close).
    fn eof_completes(&self, framing: Framing) -> bool {
        matches!(parse_response(&self.buf, framing, true), Ok(Some(_)))
    }

    /// Reads the next response.
    pub fn read_response(&mut self) -> Response {
        self.read_framed(Framing::Normal)
    }

    /// Reads the next response, to a HEAD request.
    pub fn read_head_response(&mut self) -> Response {
        self.read_framed(Framing::Head)
    }

    /// Sends `request` and reads its response.
    pub fn request(&mut self, request: &[u8]) -> Response {
        self.send(request);
        self.read_response()
    }

    /// Reads exactly `n` raw bytes (e.g. an interim response).
    pub fn read_exact_bytes(&mut self, n: usize) -> Vec<u8> {
        while self.buf.len() < n {
            assert!(
                self.fill(),
                "the connection closed after {:?}",
                String::from_utf8_lossy(&self.buf)
            );
        }
        self.buf.drain(..n).collect()
    }

    /// Asserts the server closes the connection with nothing more sent.
    pub fn expect_closed(&mut self) {
        while self.fill() {}
        assert!(
            self.buf.is_empty(),
            "expected a close, got more data: {:?}",
            String::from_utf8_lossy(&self.buf)
        );
    }

    /// The bytes received and not yet parsed.
    pub fn buffered(&self) -> &[u8] {
        &self.buf
    }
}

/// Answers every request with 200 and a text description of it: the request line, each
/// header as `name: value`, a blank line, then the body (read whole). `V11` picks the
/// protocol version; `limits` the server's limits.
#[derive(Clone, Debug, Default)]
pub struct Echo<const V11: bool = false> {
    pub limits: Option<Limits>,
}

/// [`Echo`] speaking HTTP/1.1 (persistent connections).
pub type Echo11 = Echo<true>;

impl<const V11: bool> Echo<V11> {
    pub fn with_limits(limits: Limits) -> Self {
        Echo {
            limits: Some(limits),
        }
    }
}

/// The description [`Echo`] answers with.
pub fn describe(request: &mut HttpRequest<'_>) -> io::Result<Vec<u8>> {
    let mut text = format!(
        "{} {} {:?}\n",
        request.command, request.path, request.request_version
    );
    for (name, value) in request.headers.iter() {
        let _ = writeln!(
            text,
            "{name}: {}",
            String::from_utf8_lossy(value.as_bytes())
        );
    }
    text.push('\n');
    let mut body = text.into_bytes();
    body.extend(request.read_body()?);
    Ok(body)
}

/// Sends a complete 200 response with `body` and a `Content-Length`.
pub fn send_body(request: &mut HttpRequest<'_>, content_type: &str, body: &[u8]) -> HandlerResult {
    request.send_response(200)?;
    request.send_header("Content-Type", content_type)?;
    request.send_header("Content-Length", body.len())?;
    request.end_headers()?;
    request.wfile.write_all(body)?;
    Ok(())
}

fn echo(request: &mut HttpRequest<'_>) -> HandlerResult {
    let body = describe(request)?;
    send_body(request, "text/plain", &body)
}

impl<const V11: bool> HttpHandler for Echo<V11> {
    const PROTOCOL_VERSION: Version = if V11 {
        Version::HTTP_11
    } else {
        Version::HTTP_10
    };

    fn limits(&self) -> Limits {
        self.limits.unwrap_or_default()
    }

    fn may_block(&self, _request: &HttpRequest<'_>) -> bool {
        strategy::requests_on_workers()
    }

    fn do_get(&mut self, request: &mut HttpRequest<'_>) -> HandlerResult {
        echo(request)
    }

    fn do_head(&mut self, request: &mut HttpRequest<'_>) -> HandlerResult {
        echo(request)
    }

    fn do_post(&mut self, request: &mut HttpRequest<'_>) -> HandlerResult {
        echo(request)
    }

    fn do_put(&mut self, request: &mut HttpRequest<'_>) -> HandlerResult {
        echo(request)
    }

    fn do_delete(&mut self, request: &mut HttpRequest<'_>) -> HandlerResult {
        echo(request)
    }

    fn do_options(&mut self, request: &mut HttpRequest<'_>) -> HandlerResult {
        echo(request)
    }

    fn do_patch(&mut self, request: &mut HttpRequest<'_>) -> HandlerResult {
        echo(request)
    }
}

/// The body of an [`Echo`] response, split into the request line, the headers and the body.
pub struct Echoed {
    pub requestline: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Echoed {
    pub fn parse(response: &Response) -> Self {
        assert_eq!(response.status, 200, "{response:#?}");
        let split = response
            .body
            .windows(2)
            .position(|w| w == b"\n\n")
            .expect("an Echo body");
        let text = String::from_utf8_lossy(&response.body[..split]).into_owned();
        let mut lines = text.lines();
        let requestline = lines.next().unwrap_or("").to_string();
        let headers = lines
            .map(|l| {
                let (n, v) = l.split_once(": ").expect("name: value");
                (n.to_string(), v.to_string())
            })
            .collect();
        Echoed {
            requestline,
            headers,
            body: response.body[split + 2..].to_vec(),
        }
    }

    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}
