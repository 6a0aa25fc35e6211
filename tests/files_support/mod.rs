//! Helpers for the directory and CGI handler tests (`files_*.rs`, `cgi.rs`): temporary
//! directory trees removed on drop, a threading HTTP server stopped on drop, raw requests
//! over `TcpStream` with read timeouts, a response parser, and `curl` / `python3` runners
//! with a bounded wait (no test can hang).
//!
//! Every binary that includes this module uses only part of it.
#![allow(dead_code)]

use std::fs;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{mpsc, Arc};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, UNIX_EPOCH};

use socketserver::{RequestHandler, Server, StreamRequest, TcpTransport};

#[path = "../strategy/mod.rs"]
pub mod strategy;
#[allow(unused_imports)]
pub use strategy::{flavor, Flavor, TestConcurrency};

#[path = "../common/mod.rs"]
pub mod common;
#[allow(unused_imports)]
pub use common::{
    connect, exchange, read_to_eof, running_as_root, set_mode, wait_until, TempDir, IO_TIMEOUT,
};

/// 2001-09-09 01:46:40 UTC, the modification time of the files whose dates are checked.
pub const MTIME_SECS: u64 = 1_000_000_000;
pub const MTIME_HTTP: &str = "Sun, 09 Sep 2001 01:46:40 GMT";

/// Sets the modification time of `path` to `secs` after the epoch.
pub fn set_mtime(path: &Path, secs: u64) {
    fs::File::options()
        .write(true)
        .open(path)
        .and_then(|f| f.set_modified(UNIX_EPOCH + Duration::from_secs(secs)))
        .expect("set the modification time");
}

// ---------------------------------------------------------------------------------------
// The server

/// An HTTP server (on the binary's strategy) serving on a thread of its own; shut down on
/// drop.
pub struct Served<H: RequestHandler<Request = StreamRequest>> {
    pub server: Arc<Server<TcpTransport, H, TestConcurrency>>,
    pub addr: SocketAddr,
    thread: Option<JoinHandle<io::Result<()>>>,
}

/// Serves `handler` on 127.0.0.1, port 0, with `serve_forever` on a thread.
///
/// Handler threads are daemon threads, so a connection a failing test leaves open cannot
/// make the drop wait for it.
pub fn serve<H: RequestHandler<Request = StreamRequest>>(handler: H) -> Served<H> {
    let server = Server::<TcpTransport, H, TestConcurrency>::builder("127.0.0.1:0", handler)
        .build()
        .expect("bind the HTTP server on 127.0.0.1:0");
    let addr = server
        .server_address()
        .inet()
        .expect("a TCP server address");
    let server = Arc::new(server);
    let serving = Arc::clone(&server);
    let thread = thread::spawn(move || serving.serve_forever());
    wait_until("serve_forever() to start", || server.handle().is_serving());
    Served {
        server,
        addr,
        thread: Some(thread),
    }
}

impl<H: RequestHandler<Request = StreamRequest>> Served<H> {
    /// `http://127.0.0.1:port` followed by `target`.
    pub fn url(&self, target: &str) -> String {
        format!("http://{}{target}", self.addr)
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `GET target HTTP/1.0`, the whole response.
    pub fn get(&self, target: &str) -> Response {
        self.raw(format!("GET {target} HTTP/1.0\r\n\r\n").as_bytes())
    }

    /// Sends `request` on a new connection and parses the one response to it (read until
    /// the server closes the connection).
    pub fn raw(&self, request: &[u8]) -> Response {
        let head_request = request.starts_with(b"HEAD ");
        let bytes = exchange(self.addr, request);
        parse(&bytes, head_request).unwrap_or_else(|err| {
            panic!(
                "{err}; request {:?}, response {:?}",
                String::from_utf8_lossy(request),
                String::from_utf8_lossy(&bytes)
            )
        })
    }
}

impl<H: RequestHandler<Request = StreamRequest>> Drop for Served<H> {
    fn drop(&mut self) {
        let handle = self.server.handle();
        let (done, stopped) = mpsc::channel();
        thread::spawn(move || {
            handle.shutdown();
            let _ = done.send(());
        });
        let stopped = stopped.recv_timeout(IO_TIMEOUT).is_ok();
        let joined = if stopped {
            self.thread.take().map(|t| t.join())
        } else {
            None
        };
        if !thread::panicking() {
            assert!(stopped, "shutdown() did not return within {IO_TIMEOUT:?}");
            match joined {
                Some(Ok(Ok(()))) | None => {}
                Some(Ok(Err(err))) => panic!("serve_forever failed: {err}"),
                Some(Err(_)) => panic!("serve_forever panicked"),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Raw clients

/// Reads from `stream` until `buf` holds a complete head (`\r\n\r\n`); returns its end.
pub fn read_head(stream: &mut impl Read, buf: &mut Vec<u8>) -> usize {
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(i) = find(buf, b"\r\n\r\n") {
            return i + 4;
        }
        let n = stream.read(&mut chunk).expect("read a response head");
        assert!(
            n > 0,
            "connection closed before a complete head: {:?}",
            String::from_utf8_lossy(buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    }
}

pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

pub fn contains(haystack: &[u8], needle: &str) -> bool {
    find(haystack, needle.as_bytes()).is_some()
}

// ---------------------------------------------------------------------------------------
// Responses

/// A parsed HTTP response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
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

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The headers other than `Date`, lower-cased names, sorted: what HEAD and GET share.
    pub fn stable_headers(&self) -> Vec<(String, String)> {
        let mut headers: Vec<(String, String)> = self
            .headers
            .iter()
            .filter(|(n, _)| !n.eq_ignore_ascii_case("date"))
            .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
            .collect();
        headers.sort();
        headers
    }
}

/// A parsed head: status, reason, headers, and where the body starts.
type Head = (u16, String, Vec<(String, String)>, usize);

/// Parses one head at the start of `bytes`.
fn parse_head(bytes: &[u8]) -> Result<Head, String> {
    let end = find(bytes, b"\r\n\r\n").ok_or("no complete response head")?;
    let head = std::str::from_utf8(&bytes[..end]).map_err(|e| format!("head: {e}"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    if !version.starts_with("HTTP/1.") {
        return Err(format!("bad status line {status_line:?}"));
    }
    let status = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let reason = parts.next().unwrap_or("").to_string();
    let mut headers = Vec::new();
    for line in lines {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| format!("bad header line {line:?}"))?;
        headers.push((name.to_string(), value.trim().to_string()));
    }
    Ok((status, reason, headers, end + 4))
}

/// Parses a whole exchange: interim (1xx) responses are skipped, then exactly one final
/// response whose body is everything up to the close (checked against `Content-Length`).
pub fn parse(bytes: &[u8], head_request: bool) -> Result<Response, String> {
    let mut rest = bytes;
    loop {
        let (status, reason, headers, body_start) = parse_head(rest)?;
        if (100..200).contains(&status) {
            rest = &rest[body_start..];
            continue;
        }
        let response = Response {
            status,
            reason,
            headers,
            body: rest[body_start..].to_vec(),
        };
        let no_body = head_request || status == 204 || status == 304;
        if no_body && !response.body.is_empty() {
            return Err(format!(
                "a {status} response{} carried {} body bytes",
                if head_request { " to HEAD" } else { "" },
                response.body.len()
            ));
        }
        if let (false, Some(length)) = (no_body, response.header("content-length")) {
            let length: usize = length.parse().map_err(|_| "bad Content-Length")?;
            if length != response.body.len() {
                return Err(format!(
                    "Content-Length {length} but {} body bytes before the close",
                    response.body.len()
                ));
            }
        }
        return Ok(response);
    }
}

/// A persistent connection: one request, one response at a time (by `Content-Length`).
pub struct KeepAlive {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl KeepAlive {
    pub fn connect(addr: SocketAddr) -> Self {
        KeepAlive {
            stream: connect(addr),
            buf: Vec::new(),
        }
    }

    /// Sends `request` and reads its response; a body needs a `Content-Length`.
    pub fn request(&mut self, request: &str) -> Response {
        self.stream
            .write_all(request.as_bytes())
            .expect("send a request");
        let body_start = read_head(&mut self.stream, &mut self.buf);
        let (status, reason, headers, _) = parse_head(&self.buf).expect("a response head");
        let mut response = Response {
            status,
            reason,
            headers,
            body: Vec::new(),
        };
        let no_body = request.starts_with("HEAD ") || status == 304 || status == 204;
        let length = if no_body {
            0
        } else {
            response
                .header("content-length")
                .unwrap_or_else(|| panic!("no Content-Length on a kept-alive {status}"))
                .parse()
                .expect("a numeric Content-Length")
        };
        let mut chunk = [0u8; 16 * 1024];
        while self.buf.len() < body_start + length {
            let n = self.stream.read(&mut chunk).expect("read a response body");
            assert!(n > 0, "connection closed inside a body");
            self.buf.extend_from_slice(&chunk[..n]);
        }
        response.body = self.buf[body_start..body_start + length].to_vec();
        self.buf.drain(..body_start + length);
        response
    }
}

// ---------------------------------------------------------------------------------------
// External clients

/// Runs `program args`, kills it after `IO_TIMEOUT`; returns (success, stdout, stderr).
/// Panics with a clear message if the program is not installed.
pub fn run_tool(program: &str, args: &[&str], stdin: Option<&[u8]>) -> (bool, Vec<u8>, String) {
    let mut child = Command::new(program)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| {
            panic!("cannot run `{program}` ({err}): these tests need curl and python3 installed")
        });
    let feeder = child.stdin.take().map(|mut pipe| {
        let data = stdin.unwrap_or_default().to_vec();
        thread::spawn(move || {
            let _ = pipe.write_all(&data);
        })
    });
    let mut out_pipe = child.stdout.take().expect("piped stdout");
    let mut err_pipe = child.stderr.take().expect("piped stderr");
    let out = thread::spawn(move || {
        let mut data = Vec::new();
        let _ = out_pipe.read_to_end(&mut data);
        data
    });
    let err = thread::spawn(move || {
        let mut data = Vec::new();
        let _ = err_pipe.read_to_end(&mut data);
        data
    });
    let deadline = Instant::now() + IO_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for a tool") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("`{program} {args:?}` did not finish within {IO_TIMEOUT:?}");
        }
        thread::sleep(Duration::from_millis(5));
    };
    if let Some(feeder) = feeder {
        let _ = feeder.join();
    }
    let stdout = out.join().unwrap_or_default();
    let stderr = String::from_utf8_lossy(&err.join().unwrap_or_default()).into_owned();
    (status.success(), stdout, stderr)
}

/// `curl -sS -i --max-time 10 args...`, parsed; interim 100 responses are skipped.
pub fn curl(args: &[&str]) -> Response {
    curl_raw(args).1
}

/// Like [`curl`], also returns the raw output (with any `100 Continue`).
pub fn curl_raw(args: &[&str]) -> (Vec<u8>, Response) {
    let mut all = vec!["-sS", "-i", "--max-time", "10"];
    all.extend_from_slice(args);
    let (ok, stdout, stderr) = run_tool("curl", &all, None);
    assert!(ok, "curl {args:?} failed: {stderr}");
    let head_request = args.iter().any(|a| *a == "-I" || *a == "--head");
    let response = parse(&stdout, head_request).unwrap_or_else(|err| {
        panic!(
            "curl {args:?}: {err}: {:?}",
            String::from_utf8_lossy(&stdout)
        )
    });
    (stdout, response)
}

/// `python3 -c code args...`; panics unless it succeeds; returns its standard output.
pub fn python(code: &str, args: &[&str]) -> String {
    let mut all = vec!["-c", code];
    all.extend_from_slice(args);
    let (ok, stdout, stderr) = run_tool("python3", &all, None);
    assert!(ok, "python3 failed: {stderr}");
    String::from_utf8(stdout).expect("python3 printed UTF-8")
}

/// Percent-encodes every byte but unreserved ones (for request targets in tests).
pub fn encode(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
