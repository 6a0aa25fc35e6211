//! TLS with rustls, for every stream server and every concurrency strategy: Python's
//! `HTTPSServer` and `ssl.SSLContext.wrap_socket`.
//!
//! ```no_run
//! use socketserver::files::SimpleHttpHandler;
//! use socketserver::http::HttpsServer;
//! use socketserver::tls::TlsConfig;
//!
//! let tls = TlsConfig::from_pem_files("cert.pem", "key.pem")?;
//! let server = HttpsServer::bind_tls("127.0.0.1:8443", SimpleHttpHandler::new("www")?, tls)?;
//! println!("serving on https://{}", server.server_address());
//! server.serve_forever()?;
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! The pieces:
//!
//! - [`TlsConfig`]: the certificate and key (PEM files, a password, or made at start),
//!   reloaded on demand; client certificates; the handshake's time limit.
//! - [`TlsTransport`]: the transport of `HttpsServer`, `ThreadingHttpsServer` and of any
//!   `Server<TlsTransport, H, C>`.
//! - [`TlsInfo`]: what a connection negotiated, from
//!   [`StreamSocket::tls_info`](crate::StreamSocket::tls_info).
//!
//! Files are sent by copying them through the encryption (`sendfile` cannot encrypt): a
//! 64 KiB read at a time, at the file's offset.

mod config;
mod stream;
mod transport;

pub use config::{ClientAuth, TlsConfig, DEFAULT_HANDSHAKE_TIMEOUT};
pub use stream::TlsInfo;
pub(crate) use stream::{TlsFailure, TlsStream};
pub use transport::TlsTransport;
