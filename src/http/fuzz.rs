//! The request path, driven in-process from bytes: the entry point of the fuzz target in
//! `fuzz/`. Not part of the API.

use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::Duration;

use super::{HttpHandler, HttpRequest, Limits, Version};
use crate::address::{ClientAddress, ServerAddress};
use crate::connection::Connection;
use crate::handler::{HandlerResult, RequestContext, RequestHandler, StreamRequest};
use crate::server::{Control, ServerHandle};

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
    let input = &data[..data.len().min(64 * 1024)];
    let _ = (&client).write_all(input);
    let _ = client.shutdown(Shutdown::Write);

    let control = Arc::new(Control::new(ServerAddress::Unix("fuzz".into())).expect("eventfd"));
    let handle = ServerHandle(control);
    let connection = Connection::unix(server);
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

#[cfg(test)]
mod tests {
    use super::serve_bytes;

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
}
