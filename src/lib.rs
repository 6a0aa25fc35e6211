//! Python's `socketserver`, in Rust: the same servers, handlers and hooks, on real sockets.
//!
//! ```no_run
//! use socketserver::{HandlerResult, RequestHandler, StreamRequest, ThreadingTcpServer};
//! use std::io::Write;
//!
//! /// Answers every line with the line in upper case.
//! #[derive(Clone)]
//! struct Upper;
//!
//! impl RequestHandler for Upper {
//!     type Request = StreamRequest;
//!
//!     fn handle(&mut self, req: &mut StreamRequest) -> HandlerResult {
//!         loop {
//!             let line = req.rfile.readline(65536)?;
//!             if line.is_empty() {
//!                 return Ok(()); // the client closed the connection
//!             }
//!             req.wfile.write_all(line.trim_ascii().to_ascii_uppercase().as_slice())?;
//!         }
//!     }
//! }
//!
//! fn main() -> std::io::Result<()> {
//!     let server = ThreadingTcpServer::bind("127.0.0.1:9999", Upper)?;
//!     println!("serving on {}", server.server_address());
//!     server.serve_forever()
//! }
//! ```
//!
//! The pieces, as in Python:
//!
//! - A **server** ([`Server`], aliased as [`TcpServer`], [`UdpServer`],
//!   [`UnixStreamServer`], [`UnixDatagramServer`] and their `Threading*`/`Forking*` forms)
//!   owns the socket and runs [`serve_forever`](Server::serve_forever) until
//!   [`shutdown`](Server::shutdown).
//! - A **handler** ([`RequestHandler`]) is cloned for every request and runs `setup`,
//!   `handle`, `finish` on a [`StreamRequest`] (`request`, `rfile`, `wfile`) or a
//!   [`DatagramRequest`].
//! - A **concurrency strategy** ([`Concurrency`]: [`Synchronous`], [`Threading`],
//!   [`ThreadPool`], [`Forking`]) is Python's `process_request` and its mix-ins.
//! - **Server hooks** ([`ServerHooks`]) are the methods a Python server subclass overrides:
//!   `verify_request`, `handle_error`, `service_actions`, ...
//!
//! The README maps every name of Python's `socketserver` to its spelling here.
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod address;
mod buffer;
pub mod cgi;
pub mod concurrency;
pub mod files;
mod handler;
pub mod http;
mod output;
pub mod proxy;
pub mod server;
mod socket;
mod sys;
pub mod tls;

// The root holds what a program writes: servers, handlers and their requests, hooks and
// strategies. The plumbing for new transports and strategies stays in `server` and
// `concurrency`.
pub use address::{ClientAddress, ServerAddress};
pub use concurrency::{
    Concurrency, EventLoop, Forking, ForkingMixIn, Synchronous, ThreadPool, Threading,
    ThreadingMixIn,
};
pub use handler::{
    BoxError, DatagramRequest, HandlerResult, RequestError, RequestHandler, Rfile, StreamRequest,
    Wfile,
};
pub use server::{
    ForkingTcpServer, ForkingUdpServer, ForkingUnixDatagramServer, ForkingUnixStreamServer,
    NoHooks, Server, ServerBuilder, ServerHandle, ServerHooks, TcpServer, TcpTransport,
    ThreadingTcpServer, ThreadingUdpServer, ThreadingUnixDatagramServer, ThreadingUnixStreamServer,
    UdpServer, UdpTransport, UnixDatagramServer, UnixDatagramTransport, UnixStreamServer,
    UnixStreamTransport,
};
pub use socket::{DatagramSocket, StreamSocket};

/// The README's examples, compiled as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
