//! Entry points of the fuzz targets in `fuzz/`: the request path driven in-process from
//! bytes, and thin wrappers over the crate-private parsers. Not part of the API.

use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use super::{HeaderMap, HeaderValue, HttpHandler, HttpRequest, Limits, Version};
use crate::address::{ClientAddress, ServerAddress};
use crate::files::conditional::{self, RangeRequest, Validators};
use crate::files::path;
use crate::handler::{HandlerResult, RequestContext, RequestHandler, StreamRequest};
use crate::server::{Control, ServerHandle};
use crate::socket::StreamSocket;

/// The most of its input [`serve_bytes`] sends; the rest is dropped.
pub const MAX_INPUT: usize = 64 * 1024;

/// Reads every body, answers with its length; HTTP/1.1 so pipelines run.
#[derive(Clone)]
struct Echo;

impl HttpHandler for Echo {
    const PROTOCOL_VERSION: Version = Version::HTTP_11;

    fn limits(&self) -> Limits {
        Limits {
            max_body_size: 1 << 20,
            head_timeout: Duration::from_millis(200),
            keep_alive_timeout: Duration::from_millis(200),
            body_timeout: Duration::from_millis(200),
            send_timeout: Duration::from_millis(200),
            ..Limits::default()
        }
    }

    fn do_get(&mut self, request: &mut HttpRequest<'_>) -> HandlerResult {
        let body = request.read_body()?;
        let reply = format!("{} {}", request.command, body.len());
        request.send_response(200)?;
        request.send_header("Content-Length", reply.len())?;
        request.end_headers()?;
        request.wfile.write_all(reply.as_bytes())?;
        Ok(())
    }

    fn do_post(&mut self, request: &mut HttpRequest<'_>) -> HandlerResult {
        self.do_get(request)
    }

    fn do_head(&mut self, request: &mut HttpRequest<'_>) -> HandlerResult {
        self.do_get(request)
    }

    fn do_method(&mut self, request: &mut HttpRequest<'_>) -> HandlerResult {
        self.do_get(request)
    }
}

/// Serves `data` as everything one client sends on a connection, then its end-of-file.
/// Returns what the server answered. Panics only if the server code does.
pub fn serve_bytes(data: &[u8]) -> Vec<u8> {
    let (client, server) = UnixStream::pair().expect("socketpair");
    let reader = client.try_clone().expect("clone");
    let answers = std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = (&reader).read_to_end(&mut out);
        out
    });
    // Bounded so a large input cannot block on a full socket buffer before anyone reads.
    let input = &data[..data.len().min(MAX_INPUT)];
    let _ = (&client).write_all(input);
    let _ = client.shutdown(Shutdown::Write);

    let control = Arc::new(Control::new(ServerAddress::Unix("fuzz".into())).expect("eventfd"));
    let handle = ServerHandle(control);
    let connection = StreamSocket::unix(server);
    let mut request = StreamRequest::new::<Echo>(connection, ClientAddress::Unix(None), handle)
        .expect("stream request");
    let _ = Echo.handle(&mut request);
    // As the server does after the handler: sends answers held back for a pipelined request.
    let _ = request.deliver();
    let raw = request.into_raw();
    let _ = raw.shutdown(Shutdown::Both);
    drop(raw);
    answers.join().expect("reader thread")
}

/// The head [`serve_chunked`] puts before its body.
pub const CHUNKED_HEAD: &[u8] = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";

/// `chunked` target: the chunked body decoder, end to end (`body` after [`CHUNKED_HEAD`]).
pub fn serve_chunked(body: &[u8]) -> Vec<u8> {
    serve_bytes(&[CHUNKED_HEAD, body].concat())
}

/// The entity tag of the file that [`range`] and [`not_modified`] test against.
pub const ETAG: &str = "\"5f3a-400-2b8e0c4d1a000\"";
/// Its `Last-Modified`: 784111777 seconds after the epoch.
pub const LAST_MODIFIED: &str = "Sun, 06 Nov 1994 08:49:37 GMT";

/// What the file handler makes of `Range` (and `If-Range`); the crate's `RangeRequest`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Range {
    /// Send the whole file.
    Full,
    /// Send bytes `start..=end`.
    Partial { start: u64, end: u64 },
    /// Send these ranges `(start, end)` (inclusive), in this order, as `multipart/byteranges`.
    Multipart(Vec<(u64, u64)>),
    /// Answer 416.
    Unsatisfiable,
}

/// The most ranges a `Range` header may ask for before it is ignored.
pub const MAX_RANGES: usize = conditional::MAX_RANGES;

/// A request's headers from `(name, value)` pairs, leaving out those no request could carry.
fn header_map(headers: &[(&[u8], &[u8])]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        if let (Ok(name), Ok(value)) = (
            ::http::HeaderName::from_bytes(name),
            HeaderValue::from_bytes(value),
        ) {
            map.append(name, value);
        }
    }
    map
}

fn validators() -> Validators {
    Validators {
        etag: ETAG.to_string(),
        last_modified: UNIX_EPOCH + Duration::from_secs(784111777),
    }
}

/// `range` target: the `Range` and `If-Range` parsers, for a file of `len` bytes.
pub fn range(headers: &[(&[u8], &[u8])], len: u64) -> Range {
    match conditional::range(&header_map(headers), len, &validators()) {
        RangeRequest::Full => Range::Full,
        RangeRequest::Partial { start, end } => Range::Partial { start, end },
        RangeRequest::Multipart(ranges) => {
            Range::Multipart(ranges.iter().map(|r| (r.start, r.end)).collect())
        }
        RangeRequest::Unsatisfiable => Range::Unsatisfiable,
    }
}

/// `range` target: the `If-Match` and `If-Unmodified-Since` parsers (`true`: 412).
pub fn precondition_failed(headers: &[(&[u8], &[u8])]) -> bool {
    validators().precondition_failed(&header_map(headers))
}

/// `range` target: the `If-None-Match` and `If-Modified-Since` parsers (`true`: 304).
pub fn not_modified(headers: &[(&[u8], &[u8])]) -> bool {
    validators().not_modified(&header_map(headers))
}

/// `path` target: `SimpleHttpHandler::translate_path` (symlinks out not followed) under
/// `root`; the error is the status.
pub fn translate_path(root: &Path, target: &str) -> Result<PathBuf, u16> {
    let translated = path::translate(root, target).map_err(|s| s.as_u16())?;
    path::resolve(root, &translated.path, false).map_err(|s| s.as_u16())
}

/// `path` target: the file the file handler opens for `target` under `root` (by `openat2`,
/// or in user space if `user_space`), named by `/proc/self/fd`; the error is the status.
pub fn open_path(root: &Path, target: &str, user_space: bool) -> Result<PathBuf, u16> {
    let mut root = path::Root::open(root).map_err(|_| 500u16)?;
    root.beneath &= !user_space;
    let translated = path::translate(root.path(), target).map_err(|s| s.as_u16())?;
    let file = root
        .open_file(&translated.relative, false)
        .map_err(|s| s.as_u16())?;
    std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())).map_err(|_| 500)
}

/// `form` target: the form and query decoder, [`parse_qsl`](super::parse_qsl).
pub fn form(data: &[u8]) -> Vec<(String, String)> {
    super::parse_qsl(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_harness_answers_requests() {
        let out = serve_bytes(b"GET / HTTP/1.1\r\nHost: a\r\n\r\nPOST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
        let text = String::from_utf8_lossy(&out);
        assert!(text.contains("GET 0"), "{text}");
        assert!(text.contains("POST 3"), "{text}");
        assert!(serve_bytes(b"\xff\x00garbage\r\n\r\n").starts_with(b"HTTP/1.1 400"));
    }

    /// Blank lines after a request look like a pipelined head, so its answer is held back
    /// until the connection ends: the harness must deliver it, as the server does.
    #[test]
    fn the_harness_delivers_answers_held_back() {
        let out = serve_bytes(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n\r\n\r\n");
        assert!(out.ends_with(b"GET 0"), "{}", String::from_utf8_lossy(&out));
    }

    #[test]
    fn each_wrapper_runs_its_parser() {
        let out = serve_chunked(b"3\r\nabc\r\n0\r\n\r\n");
        assert!(
            out.ends_with(b"POST 3"),
            "{}",
            String::from_utf8_lossy(&out)
        );

        let range_of = |value: &[u8], len| range(&[(b"Range", value)], len);
        assert_eq!(
            range_of(b"bytes=2-", 5),
            Range::Partial { start: 2, end: 4 }
        );
        assert_eq!(range_of(b"bytes=5-", 5), Range::Unsatisfiable);
        assert_eq!(
            range(&[(b"Range", b"bytes=0-0"), (b"If-Range", b"\"old\"")], 5),
            Range::Full
        );
        assert!(not_modified(&[(b"If-None-Match", ETAG.as_bytes())]));
        assert!(not_modified(&[(
            b"If-Modified-Since",
            LAST_MODIFIED.as_bytes()
        )]));
        assert!(!not_modified(&[(b"If-None-Match", b"\"other\"")]));
        assert_eq!(
            range_of(b"bytes=0-0,2-", 5),
            Range::Multipart(vec![(0, 0), (2, 4)])
        );
        assert!(precondition_failed(&[(b"If-Match", b"\"other\"")]));
        assert!(!precondition_failed(&[(b"If-Match", ETAG.as_bytes())]));

        let base = std::env::temp_dir().join(format!("socketserver-fuzz-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(base.join("root/sub")).unwrap();
        std::fs::write(base.join("root/sub/f.txt"), "f").unwrap();
        std::fs::write(base.join("secret"), "s").unwrap();
        std::os::unix::fs::symlink("../secret", base.join("root/out")).unwrap();
        let root = std::fs::canonicalize(base.join("root")).unwrap();
        let file = root.join("sub/f.txt");
        assert_eq!(translate_path(&root, "/sub/f.txt?q"), Ok(file.clone()));
        assert_eq!(translate_path(&root, "/%2e%2e/secret"), Err(400));
        assert_eq!(translate_path(&root, "/out"), Err(404));
        for user_space in [false, true] {
            assert_eq!(open_path(&root, "/sub/f.txt", user_space), Ok(file.clone()));
            assert_eq!(open_path(&root, "/out", user_space), Err(404));
        }
        std::fs::remove_dir_all(&base).unwrap();

        assert_eq!(
            form(b"a=1+2&b=%E4%B8%AD&c"),
            [("a", "1 2"), ("b", "中"), ("c", "")].map(|(k, v)| (k.to_string(), v.to_string()))
        );
    }
}
