//! The limits that keep one client from holding more than its share of the server.

use std::time::Duration;

/// Sizes and timeouts an HTTP connection is held to; every one answers a hostile client
/// with a status code (or a closed connection) instead of unbounded memory or a held thread.
///
/// Return your own from [`HttpHandler::limits`](crate::http::HttpHandler::limits).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Longest request line, CRLF included; longer gets 414 (Python: 65536).
    pub max_request_line: usize,
    /// Largest header section after the request line; larger gets 431.
    pub max_header_bytes: usize,
    /// Most header fields; more gets 431 (Python: 100). At most [`Limits::MAX_HEADERS`].
    pub max_headers: usize,
    /// Largest request body; a larger `Content-Length` gets 413 before the handler runs, a
    /// chunked body fails with 413 when it grows past it.
    pub max_body_size: u64,
    /// Time to wait for the first request on a new connection, and for a whole request head
    /// once its first byte came; then 408 (or a quiet close if nothing came).
    pub head_timeout: Duration,
    /// Time an idle keep-alive connection is kept open between requests.
    pub keep_alive_timeout: Duration,
    /// Longest pause while reading a request body; then 408.
    pub body_timeout: Duration,
    /// Longest pause while the client does not read the response.
    pub send_timeout: Duration,
    /// Unread request body the server discards to keep a connection alive after the
    /// handler returns; with more left over, the connection is closed instead.
    pub max_drain: u64,
}

impl Limits {
    /// The hard cap on [`max_headers`](Limits::max_headers).
    pub const MAX_HEADERS: usize = 256;
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_request_line: 65536,
            max_header_bytes: 64 * 1024,
            max_headers: 100,
            max_body_size: 64 * 1024 * 1024,
            head_timeout: Duration::from_secs(10),
            keep_alive_timeout: Duration::from_secs(5),
            body_timeout: Duration::from_secs(30),
            send_timeout: Duration::from_secs(30),
            max_drain: 64 * 1024,
        }
    }
}
