//! Python's `http.server`: an HTTP/1.0 and HTTP/1.1 server on the socket server core.
//!
//! Implement [`HttpHandler`] (Python's `BaseHTTPRequestHandler`) with `do_get`, `do_post`,
//! ...; every such type is a stream request handler, so [`HttpServer`] and
//! [`ThreadingHttpServer`] are the core's TCP servers and everything of the core applies:
//! hooks, concurrency strategies, `shutdown`, Unix sockets.
//!
//! The request you answer is an [`HttpRequest`]: Python's handler `self`, with `command`,
//! `path`, `headers`, the body as `rfile` and the response as `wfile`, and the methods
//! `send_response`, `send_header`, `end_headers`, `send_error`.
//!
//! Hostile input is answered, never trusted: request lines over 64 KiB get 414, more than
//! 100 header fields or 64 KiB of them 431, ambiguous framing (the stuff of request
//! smuggling) 400, bodies over [`Limits::max_body_size`] 413, unsupported versions 505, and
//! slow clients are cut off by the timeouts of [`Limits`].

mod ahead;
mod auth;
mod body;
mod chunked;
pub mod compress;
mod connection;
mod date;
mod exchange;
mod form;
mod forwarded;
#[doc(hidden)]
pub mod fuzz;
mod handler;
mod head;
mod headers;
mod limits;
mod log;
pub mod metrics;
mod response;
mod socket;
pub(crate) mod spool;
pub mod status;
mod testing;
mod wrappers;

pub use auth::BasicAuth;
pub use body::Body;
pub use connection::Configured;
pub(crate) use connection::ConnectionState as HttpConnection;
pub use form::parse_qsl;
pub(crate) use handler::is_token_byte;
pub use handler::{server_name, HttpHandler, HttpRequest, IntoStatus, Message};
pub use headers::RequestHeaders;
pub use limits::Limits;
pub use log::{
    escape_control, log_date_time_string, log_json_to_stderr, log_to_stderr, LOG_TARGET,
};
pub use response::{
    html_escape, ResponseWriter, DEFAULT_ERROR_CONTENT_TYPE, DEFAULT_ERROR_MESSAGE,
};
pub use testing::{ServesHttp, TestRequest, TestResponse};
pub use wrappers::{AddHeaders, Cors, Endpoints, ForwardedFor};

pub use ::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, Version};

use crate::concurrency::{EventLoop, Threading};
use crate::server::{Server, TcpTransport};
use crate::tls::TlsTransport;

/// Python's `HTTPServer`, on an [`EventLoop`]: idle keep-alive connections cost no thread,
/// requests run on the loop's thread, and those that
/// [may block](HttpHandler::may_block) on its workers (16, started as needed).
///
/// Python's serves one connection at a time; `Server<TcpTransport, H, Synchronous>` does
/// that here.
pub type HttpServer<H> = Server<TcpTransport, H, EventLoop>;

/// Python's `ThreadingHTTPServer`: a thread per connection.
pub type ThreadingHttpServer<H> = Server<TcpTransport, H, Threading>;

/// Python's `HTTPSServer`: [`HttpServer`] over TLS, on the event loop. Build it with
/// [`bind_tls`](Server::bind_tls) or `builder(...).tls(...)`; see [`crate::tls`].
pub type HttpsServer<H> = Server<TlsTransport, H, EventLoop>;

/// Python's `ThreadingHTTPSServer`: a thread per TLS connection.
pub type ThreadingHttpsServer<H> = Server<TlsTransport, H, Threading>;

/// The current time as an HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`): Python's
/// `date_time_string()`.
pub fn date_time_string() -> String {
    date::with_now(str::to_string)
}
