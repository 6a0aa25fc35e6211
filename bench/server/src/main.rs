//! The project's HTTP server as `bench/run` measures it: `GET /hello` from a custom handler,
//! everything else from `SimpleHttpHandler` over `--dir`, compressing text files on the fly
//! for clients that send `Accept-Encoding` (the `gzip` workload; wrk sends none otherwise).
//!
//! ```text
//! socketserver-bench --port 8080 --dir /tmp/files [--workers N] [--threading]
//!                    [--tls-cert cert.pem --tls-key key.pem]
//! ```
//!
//! It serves on an `EventLoop`, as `examples/simple_http.rs` does: neither handler says a
//! request may block, so requests run on the loop's thread and the `--workers` (default 1)
//! are never used. `--threading` runs a thread per connection instead (Python's
//! `ThreadingHTTPServer`), for comparison. With `--tls-cert` and `--tls-key` it speaks
//! HTTPS instead (the `tls_*` workloads): the same handler and strategy on a
//! `Server<TlsTransport, ..>`, with `TlsConfig::from_pem_files` and its defaults (TLS 1.3
//! and 1.2, session tickets and a session cache). It stops on SIGTERM (the default action: no
//! handler is installed, so nothing runs at exit that the benchmark would count).

use std::io::{self, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use socketserver::files::SimpleHttpHandler;
use socketserver::http::compress::Compression;
use socketserver::http::{HttpHandler, HttpRequest, Limits, Version};
use socketserver::tls::{TlsConfig, TlsTransport};
use socketserver::{Concurrency, EventLoop, HandlerResult, Server, TcpTransport, Threading};

const HELLO: &[u8] = b"Hello, world!";

struct Args {
    port: u16,
    dir: PathBuf,
    workers: usize,
    threading: bool,
    /// The certificate and key files (PEM) of the TLS mode.
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
}

#[derive(Clone)]
struct BenchHandler {
    files: SimpleHttpHandler,
}

impl HttpHandler for BenchHandler {
    const PROTOCOL_VERSION: Version = Version::HTTP_11;

    fn limits(&self) -> Limits {
        limits()
    }

    fn do_get(&mut self, req: &mut HttpRequest<'_>) -> HandlerResult {
        if req.path != "/hello" {
            return self.files.dispatch(req);
        }
        req.send_response(200)?;
        req.send_header("Content-Type", "text/plain")?;
        req.send_header("Content-Length", HELLO.len())?;
        req.end_headers()?;
        req.wfile.write_all(HELLO)?;
        Ok(())
    }

    fn fallback(&mut self, req: &mut HttpRequest<'_>) -> HandlerResult {
        self.files.dispatch(req)
    }
}

/// The idle10k workload holds connections open for longer than the 5 s default; 60 s keeps
/// them through a whole run, like the peers' keep-alive settings.
fn limits() -> Limits {
    Limits {
        keep_alive_timeout: Duration::from_secs(60),
        ..Limits::default()
    }
}

/// Builds the server and serves until the process is killed: the one place that decides
/// how the benchmark's server runs (concurrency, backlog, socket options).
fn serve(args: &Args) -> io::Result<()> {
    // Compression on the fly with the library's defaults (gzip level 2, compressible types
    // of 1 KiB to 256 KiB), as the `gzip` workload measures it. No precompressed files:
    // looking for `x.br`, `x.zst`, `x.gz` would cost up to three `open`s per file request
    // in every workload, and there are none (nginx's `gzip_static` is off too). The other
    // workloads are untouched: their files are `application/octet-stream` (never coded, so
    // no `Vary` either) and `/hello` is this handler's own.
    let files =
        SimpleHttpHandler::new(&args.dir)?.compression(Compression::new().precompressed(false));
    let handler = BenchHandler { files };
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, args.port));
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(TlsConfig::from_pem_files(cert, key)?),
        _ => None,
    };
    match (tls, args.threading) {
        (None, true) => run(address, handler, Threading::new()),
        (None, false) => run(address, handler, EventLoop::new(args.workers)?),
        (Some(tls), true) => run_tls(address, handler, Threading::new(), tls),
        (Some(tls), false) => run_tls(address, handler, EventLoop::new(args.workers)?, tls),
    }
}

fn run<C: Concurrency>(
    address: SocketAddr,
    handler: BenchHandler,
    concurrency: C,
) -> io::Result<()> {
    let server = Server::<TcpTransport, _>::builder(address, handler)
        .concurrency(concurrency)
        .allow_reuse_address(true)
        .request_queue_size(1024)
        .build()?;
    println!(
        "socketserver-bench listening on {}",
        server.server_address()
    );
    server.serve_forever()
}

/// `run`, over TLS: the same handler, strategy and socket options.
fn run_tls<C: Concurrency>(
    address: SocketAddr,
    handler: BenchHandler,
    concurrency: C,
    tls: TlsConfig,
) -> io::Result<()> {
    let server = Server::<TlsTransport, _>::builder(address, handler)
        .concurrency(concurrency)
        .allow_reuse_address(true)
        .request_queue_size(1024)
        .tls(tls)
        .build()?;
    println!(
        "socketserver-bench listening on {} (TLS)",
        server.server_address()
    );
    server.serve_forever()
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        port: 8000,
        dir: PathBuf::from("."),
        workers: 1,
        threading: false,
        tls_cert: None,
        tls_key: None,
    };
    let mut argv = std::env::args().skip(1);
    while let Some(flag) = argv.next() {
        let mut value = || argv.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--port" => args.port = value()?.parse().map_err(|e| format!("--port: {e}"))?,
            "--dir" => args.dir = PathBuf::from(value()?),
            "--workers" => {
                args.workers = value()?.parse().map_err(|e| format!("--workers: {e}"))?
            }
            "--threading" => args.threading = true,
            "--tls-cert" => args.tls_cert = Some(PathBuf::from(value()?)),
            "--tls-key" => args.tls_key = Some(PathBuf::from(value()?)),
            _ => return Err(format!("unknown argument {flag}")),
        }
    }
    if args.tls_cert.is_some() != args.tls_key.is_some() {
        return Err("--tls-cert and --tls-key go together".to_string());
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("socketserver-bench: {message}");
            eprintln!(
                "usage: socketserver-bench [--port N] [--dir DIR] [--workers N] [--threading] \
                 [--tls-cert FILE --tls-key FILE]"
            );
            return ExitCode::from(2);
        }
    };
    match serve(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("socketserver-bench: {err}");
            ExitCode::FAILURE
        }
    }
}
