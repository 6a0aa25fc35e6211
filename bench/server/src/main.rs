//! The project's HTTP server as `bench/run` measures it: `GET /hello` from a custom handler,
//! everything else from `SimpleHttpHandler` over `--dir`, compressing text files on the fly
//! for clients that send `Accept-Encoding` (the `gzip` workload; wrk sends none otherwise).
//!
//! ```text
//! socketserver-bench --port 8080 --dir /tmp/files [--workers N] [--threading]
//!                    [--tls-cert cert.pem --tls-key key.pem] [--loops N [--reuse-port]]
//! ```
//!
//! It serves on an `EventLoop`, as `examples/simple_http.rs` does: neither handler says a
//! request may block, so requests run on the loop's thread and the `--workers` (default 1)
//! are never used. `--threading` runs a thread per connection instead (Python's
//! `ThreadingHTTPServer`), for comparison. With `--tls-cert` and `--tls-key` it speaks
//! HTTPS instead (the `tls_*` workloads): the same handler and strategy on a
//! `Server<TlsTransport, ..>`, with `TlsConfig::from_pem_files` and its defaults (TLS 1.3
//! and 1.2, session tickets and a session cache). `--loops N` (the `multicore_*` workloads)
//! runs N event loops, each a `Server` on a thread of its own, as `simple-http --threads N`
//! does: sharing the first one's listening socket, or with `--reuse-port` each on a
//! `SO_REUSEPORT` socket of its own; each loop has its own `--workers`. It stops on SIGTERM (the default action: no
//! handler is installed, so nothing runs at exit that the benchmark would count).

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use socketserver::files::SimpleHttpHandler;
use socketserver::http::compress::Compression;
use socketserver::http::{HttpHandler, HttpRequest, Limits, Version};
use socketserver::server::Transport;
use socketserver::tls::{TlsConfig, TlsTransport};
use socketserver::{
    Concurrency, EventLoop, HandlerResult, Server, StreamSocket, TcpTransport, Threading,
};

const HELLO: &[u8] = b"Hello, world!";

struct Args {
    port: u16,
    dir: PathBuf,
    workers: usize,
    threading: bool,
    /// The certificate and key files (PEM) of the TLS mode.
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    /// Event loops, each a `Server` on a thread of its own (default 1).
    loops: usize,
    /// The loops after the first bind sockets of their own (`SO_REUSEPORT`) instead of
    /// sharing the first one's.
    reuse_port: bool,
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
        // The one-call API: the same bytes as send_response, two send_headers,
        // end_headers and a write.
        req.respond(200, "text/plain", HELLO)
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
    let workers = args.workers;
    match (tls, args.threading) {
        (None, true) => {
            run::<TcpTransport, _>(args, address, handler, || Ok(Threading::new()), None)
        }
        (None, false) => {
            run::<TcpTransport, _>(args, address, handler, || EventLoop::new(workers), None)
        }
        (Some(tls), true) => {
            run::<TlsTransport, _>(args, address, handler, || Ok(Threading::new()), Some(tls))
        }
        (Some(tls), false) => run::<TlsTransport, _>(
            args,
            address,
            handler,
            || EventLoop::new(workers),
            Some(tls),
        ),
    }
}

/// Builds `args.loops` servers on `address` and serves them, each on a thread of its own,
/// as `simple-http --threads N` does: the loops after the first adopt a duplicate of the
/// first one's listening socket (one accept queue that every loop's epoll watches), or, with
/// `--reuse-port`, bind sockets of their own with `SO_REUSEPORT` (an accept queue each; the
/// kernel spreads new connections over them by a hash of the addresses and ports). One
/// loop is the server every other workload measures. Over TLS with `tls`.
fn run<T, C>(
    args: &Args,
    address: SocketAddr,
    handler: BenchHandler,
    concurrency: impl Fn() -> io::Result<C>,
    tls: Option<TlsConfig>,
) -> io::Result<()>
where
    T: Transport<Request = StreamSocket, Address = SocketAddr>,
    C: Concurrency,
{
    // A server on an address of its own (bound with SO_REUSEPORT if asked), or on a
    // socket bound already: the first loop's, shared.
    let build = |source: Result<SocketAddr, OwnedFd>| -> io::Result<Server<T, BenchHandler, C>> {
        let mut builder = match source {
            Ok(address) => Server::<T, _>::builder(address, handler.clone())
                .allow_reuse_address(true)
                .allow_reuse_port(args.reuse_port),
            Err(socket) => Server::<T, _>::builder_from_socket(socket, handler.clone()),
        }
        .concurrency(concurrency()?)
        .request_queue_size(1024);
        if let Some(tls) = &tls {
            builder = builder.tls(tls.clone());
        }
        builder.build()
    };
    let first = build(Ok(address))?;
    // The port bound, which the other loops' sockets must share (`--port 0` picks one).
    let bound = first.server_address().inet().expect("a TCP server");
    let mut servers = vec![first];
    while servers.len() < args.loops {
        let source = if args.reuse_port {
            Ok(bound)
        } else {
            let socket = servers[0].socket().expect("a server just built");
            Err(socket.as_fd().try_clone_to_owned()?)
        };
        servers.push(build(source)?);
    }
    let listener = match (args.loops, args.reuse_port) {
        (1, _) => String::new(),
        (n, false) => format!(", {n} event loops sharing one listening socket"),
        (n, true) => format!(", {n} event loops, a SO_REUSEPORT socket each"),
    };
    println!(
        "socketserver-bench listening on {}{}{listener}",
        bound,
        if tls.is_some() { " (TLS)" } else { "" }
    );
    std::thread::scope(|scope| {
        let others: Vec<_> = servers[1..]
            .iter()
            .enumerate()
            .map(|(n, server)| {
                std::thread::Builder::new()
                    .name(format!("loop-{}", n + 1))
                    .spawn_scoped(scope, || server.serve_forever())
            })
            .collect::<io::Result<_>>()?;
        let mut result = servers[0].serve_forever();
        for running in others {
            let served = running
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("a loop panicked")));
            result = result.and(served);
        }
        result
    })
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        port: 8000,
        dir: PathBuf::from("."),
        workers: 1,
        threading: false,
        tls_cert: None,
        tls_key: None,
        loops: 1,
        reuse_port: false,
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
            "--loops" => args.loops = value()?.parse().map_err(|e| format!("--loops: {e}"))?,
            "--reuse-port" => args.reuse_port = true,
            _ => return Err(format!("unknown argument {flag}")),
        }
    }
    if args.tls_cert.is_some() != args.tls_key.is_some() {
        return Err("--tls-cert and --tls-key go together".to_string());
    }
    if args.loops == 0 || (args.threading && args.loops > 1) {
        return Err("--loops: at least 1, and only 1 with --threading".to_string());
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
                 [--tls-cert FILE --tls-key FILE] [--loops N [--reuse-port]]"
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
