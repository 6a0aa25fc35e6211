//! Writing the response: Python's `wfile`, with the status line and headers in the same
//! buffer so a small response leaves in one write.

use std::fs::File;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::buffer;
use crate::handler::Rfile;
use crate::output::{FileRange, Output, Wait};
use crate::socket::StreamSocket;

/// Output kept back before it is written: a whole small response, or the headers of a large
/// one (which then leave together with the first body write in one `writev`).
pub(crate) const OUTPUT_BUFFER: usize = 16 * 1024;

/// Python's `DEFAULT_ERROR_MESSAGE`: the page `send_error` fills with `{code}`, `{message}`
/// and `{explain}` (each HTML-escaped).
pub const DEFAULT_ERROR_MESSAGE: &str = r#"<!DOCTYPE HTML>
<html lang="en">
    <head>
        <meta charset="utf-8">
        <title>Error response</title>
    </head>
    <body>
        <h1>Error response</h1>
        <p>Error code: {code}</p>
        <p>Message: {message}.</p>
        <p>Error code explanation: {code} - {explain}.</p>
    </body>
</html>
"#;

/// Python's `DEFAULT_ERROR_CONTENT_TYPE`.
pub const DEFAULT_ERROR_CONTENT_TYPE: &str = "text/html;charset=utf-8";

/// The response being written: Python's `wfile`.
///
/// Writes are buffered until the handler returns (or calls `flush`), so the status line,
/// headers and a small body go out in one write; a large body goes out directly, headers
/// first in the same `writev`. After `end_headers`, the body of a `HEAD` request or of a
/// 204/304 response is discarded, so a handler may share code between GET and HEAD.
pub struct ResponseWriter<'a> {
    connection: &'a StreamSocket,
    out: &'a mut Output,
    started: &'a AtomicBool,
    in_body: bool,
    discard_body: bool,
    body_bytes: u64,
    /// Where this response begins in the connection's output stream (earlier pipelined
    /// answers may still wait before it).
    origin: u64,
    /// Where its body begins, once the headers are ended.
    body_origin: Option<u64>,
    /// On the event loop's thread: never wait for the socket; what it does not take stays
    /// in the buffer and leaves as the socket drains.
    nonblocking: bool,
}

impl<'a> ResponseWriter<'a> {
    /// The connection the response goes to.
    pub(crate) fn connection(&self) -> &StreamSocket {
        self.connection
    }

    pub(crate) fn new(
        connection: &'a StreamSocket,
        out: &'a mut Output,
        started: &'a AtomicBool,
        nonblocking: bool,
    ) -> Self {
        // Heads go into the buffer, before a waiting file: a response begins only once the
        // file of the one before it has left.
        debug_assert!(out.file.is_none(), "a response began behind a waiting file");
        if out.bytes.capacity() == 0 {
            out.bytes = buffer::take_empty(OUTPUT_BUFFER);
        }
        let origin = out.position();
        ResponseWriter {
            connection,
            out,
            started,
            in_body: false,
            discard_body: false,
            body_bytes: 0,
            origin,
            body_origin: None,
            nonblocking,
        }
    }

    /// Bytes of body written (not counting status line and headers).
    pub fn body_bytes(&self) -> u64 {
        self.body_bytes
    }

    /// Whether anything of the response has been written yet.
    pub fn started(&self) -> bool {
        self.started.load(Ordering::Acquire)
    }

    /// Where the response's body begins in the connection's output stream, once its
    /// headers are ended.
    pub(crate) fn body_origin(&self) -> Option<u64> {
        self.body_origin
    }

    /// Calls `then` with how far the connection's output was sent, once everything
    /// written so far has left (or the connection ended before it could).
    pub(crate) fn when_sent(&mut self, then: Box<dyn FnOnce(u64) + Send>) {
        let end = self.out.position();
        self.out.when_sent(end, then);
    }

    /// Whether some of this response has been handed to the socket.
    fn has_left(&self) -> bool {
        self.out.sent() > self.origin
    }

    /// Whether the output waits for the answer to the next pipelined request (see
    /// `exchange::holds_back`).
    pub(crate) fn holds_back(&self, input: &mut Rfile) -> bool {
        super::exchange::holds_back(self.out, input)
    }

    /// Appends head bytes (status line, headers) without counting them as body.
    pub(crate) fn push_head(&mut self, bytes: &[u8]) {
        self.started.store(true, Ordering::Release);
        self.out.bytes.extend_from_slice(bytes);
    }

    /// Removes head bytes appended after `len` (a header that failed validation).
    pub(crate) fn truncate_head(&mut self, len: usize) {
        self.out.bytes.truncate(len);
    }

    pub(crate) fn head_mut(&mut self) -> &mut Vec<u8> {
        self.started.store(true, Ordering::Release);
        &mut self.out.bytes
    }

    /// From now on writes are body; `discard` drops them (HEAD, 204, 304).
    pub(crate) fn start_body(&mut self, discard: bool) {
        self.in_body = true;
        self.discard_body = discard;
        self.body_origin = Some(self.out.position());
    }

    /// Drops this response if none of it has been handed to the socket yet; `false` (and
    /// nothing dropped) otherwise.
    pub(crate) fn discard_unsent(&mut self) -> bool {
        if self.has_left() || self.out.failed() {
            return false;
        }
        // Nothing of it has left, so all of it waits at the end of the buffer.
        let this = (self.out.position() - self.origin) as usize;
        let keep = self.out.bytes.len().saturating_sub(this);
        self.out.bytes.truncate(keep);
        self.in_body = false;
        self.discard_body = false;
        self.body_bytes = 0;
        self.body_origin = None;
        self.started.store(false, Ordering::Release);
        true
    }

    /// Back to head mode after an interim (1xx) response.
    pub(crate) fn end_interim(&mut self) {
        self.in_body = false;
        self.discard_body = false;
    }

    /// How writes treat the socket: on the event loop's thread they never wait.
    fn wait(&self) -> Wait {
        if self.nonblocking {
            Wait::Never
        } else {
            Wait::Yes
        }
    }

    /// Whether sending this connection's output failed: nothing more reaches the client.
    pub(crate) fn failed(&self) -> bool {
        self.out.failed()
    }

    /// Sends `length` bytes of `file` from `offset` as (part of) the body: Python's
    /// `shutil.copyfileobj(f, self.wfile)`, done by the kernel with `sendfile`, so a large
    /// file costs no copy through memory. On an event loop's thread it leaves as the socket
    /// drains, like everything else written.
    pub fn send_file(&mut self, file: File, offset: u64, length: u64) -> io::Result<()> {
        self.started.store(true, Ordering::Release);
        self.out.check()?;
        if self.in_body {
            if self.discard_body {
                return Ok(());
            }
            self.body_bytes += length;
        }
        if length == 0 {
            return Ok(());
        }
        let wait = self.wait();
        self.out
            .send_file(self.connection, FileRange::new(file, offset, length), wait)
    }
}

impl Write for ResponseWriter<'_> {
    /// Buffers a small write; a larger one leaves with what is buffered, in one `writev`.
    /// On an event loop's thread what the socket does not take waits (in memory, then in a
    /// temporary file): a write there never waits for the client.
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.started.store(true, Ordering::Release);
        self.out.check()?;
        if self.in_body {
            if self.discard_body {
                return Ok(data.len());
            }
            self.body_bytes += data.len() as u64;
        }
        if self.out.file.is_none() && self.out.bytes.len() + data.len() <= OUTPUT_BUFFER {
            self.out.bytes.extend_from_slice(data);
        } else {
            let wait = self.wait();
            self.out.write(self.connection, data, wait)?;
        }
        Ok(data.len())
    }

    /// One [`write`](Self::write): it takes all of `data` or fails, so the loop of the
    /// default `write_all` would only add its checks to every body written.
    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        self.write(data).map(drop)
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.wait() {
            Wait::Never => self.out.send_now(self.connection).map(drop),
            Wait::Yes => self.out.send_all(self.connection),
        }
    }
}

impl std::fmt::Debug for ResponseWriter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseWriter")
            .field("buffered", &self.out.bytes.len())
            .field("body_bytes", &self.body_bytes)
            .finish_non_exhaustive()
    }
}

/// Escapes `&`, `<`, `>`, `"` and `'` for HTML text and attribute values.
pub fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
    out
}

/// Fills an error page template: `{code}`, `{message}` and `{explain}`, in one pass so a
/// placeholder inside a value stays text; the values are escaped here.
pub(crate) fn error_page(template: &str, code: u16, message: &str, explain: &str) -> String {
    let mut out = String::with_capacity(template.len() + message.len() + explain.len());
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        rest = &rest[start..];
        let (value, len) = if rest.starts_with("{code}") {
            (code.to_string(), "{code}".len())
        } else if rest.starts_with("{message}") {
            (html_escape(message), "{message}".len())
        } else if rest.starts_with("{explain}") {
            (html_escape(explain), "{explain}".len())
        } else {
            ("{".to_string(), 1)
        };
        out.push_str(&value);
        rest = &rest[len..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_page_escapes_and_does_not_reexpand() {
        let page = error_page(
            "{code}|{message}|{explain}|{x}",
            404,
            "<a>{explain}",
            "\"&'",
        );
        assert_eq!(page, "404|&lt;a&gt;{explain}|&quot;&amp;&#x27;|{x}");
    }
}
