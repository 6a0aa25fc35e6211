//! `python3 -m http.server`, in Rust: serves a directory over HTTP.
//!
//! ```text
//! cargo run --example simple_http                     # www/ on port 8000, all interfaces
//! cargo run --example simple_http -- 8080 -b 127.0.0.1 -d /srv/files -p HTTP/1.1
//! RUST_LOG=warn cargo run --example simple_http       # errors only, no access log
//! ```
//!
//! Run from the repository it serves the shipped `www/` site, elsewhere the current
//! directory (the banner says which). Ctrl-C or SIGTERM stops it after the requests in
//! flight are answered.

mod common;

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use socketserver::cgi::CgiHttpHandler;
use socketserver::files::SimpleHttpHandler;
use socketserver::http::{Configured, HttpHandler, Limits, Version};
use socketserver::{Concurrency, EventLoop, Server, TcpTransport, Threading};

#[derive(Parser)]
#[command(about = "Serve a directory over HTTP, like python3 -m http.server")]
struct Args {
    /// Port to listen on.
    #[arg(default_value_t = 8000)]
    port: u16,
    /// Address to bind to [default: all interfaces, IPv6 and IPv4].
    #[arg(short, long, value_name = "ADDRESS")]
    bind: Option<IpAddr>,
    /// Directory to serve [default: the shipped www/ in the repository, else the current
    /// directory].
    #[arg(short, long)]
    directory: Option<PathBuf>,
    /// HTTP version of the responses; HTTP/1.1 keeps connections open.
    #[arg(short, long, default_value = "HTTP/1.0", value_parser = ["HTTP/1.0", "HTTP/1.1"])]
    protocol: String,
    /// Run executables under /cgi-bin and /htbin as CGI scripts.
    #[arg(long)]
    cgi: bool,
    /// Worker threads of the event loop, for requests that may wait (CGI scripts); files
    /// are served on the loop's own thread.
    #[arg(long, value_name = "N", default_value_t = 16)]
    workers: usize,
    /// A thread per connection instead of the event loop (Python's ThreadingHTTPServer).
    #[arg(long, conflicts_with = "workers")]
    threading: bool,
    /// Largest request body accepted, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = Limits::default().max_body_size)]
    max_body: u64,
    /// Seconds a client has to send a request head.
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    head_timeout: u64,
    /// Seconds an idle keep-alive connection stays open.
    #[arg(long, value_name = "SECONDS", default_value_t = 5)]
    keep_alive: u64,
}

fn main() -> io::Result<()> {
    socketserver::http::log_to_stderr(log::LevelFilter::Info).expect("the only logger");
    let args = Args::parse();

    let shipped = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("www");
    let (directory, which) = match &args.directory {
        Some(dir) => (dir.clone(), "as asked"),
        None if shipped.is_dir() => (shipped, "the shipped site"),
        None => (PathBuf::from("."), "the current directory"),
    };
    let limits = Limits {
        max_body_size: args.max_body,
        head_timeout: Duration::from_secs(args.head_timeout),
        keep_alive_timeout: Duration::from_secs(args.keep_alive),
        ..Limits::default()
    };
    let protocol = if args.protocol == "HTTP/1.1" {
        Version::HTTP_11
    } else {
        Version::HTTP_10
    };
    let files = SimpleHttpHandler::new(&directory)?;
    println!("Directory: {} ({which})", files.directory().display());

    let workers = args.workers;
    let event_loop = || EventLoop::new(workers).expect("an epoll instance");
    let with_args = |handler| {
        Configured::new(handler)
            .limits(limits)
            .protocol_version(protocol)
    };
    let (bind, port) = (args.bind, args.port);
    match (args.cgi, args.threading) {
        (true, true) => {
            let cgi = Configured::new(CgiHttpHandler::from_files(files));
            serve(
                bind,
                port,
                cgi.limits(limits).protocol_version(protocol),
                Threading::new,
            )
        }
        (true, false) => {
            let cgi = Configured::new(CgiHttpHandler::from_files(files));
            serve(
                bind,
                port,
                cgi.limits(limits).protocol_version(protocol),
                event_loop,
            )
        }
        (false, true) => serve(bind, port, with_args(files), Threading::new),
        (false, false) => serve(bind, port, with_args(files), event_loop),
    }
}

fn serve<H: HttpHandler, C: Concurrency>(
    bind: Option<IpAddr>,
    port: u16,
    handler: Configured<H>,
    concurrency: impl Fn() -> C,
) -> io::Result<()> {
    let build = |ip: IpAddr| {
        Server::<TcpTransport, _>::builder(SocketAddr::new(ip, port), handler.clone())
            .concurrency(concurrency())
            .ipv6_only(false)
            .request_queue_size(1024)
            .build()
    };
    let server = match bind {
        Some(ip) => build(ip)?,
        // Dual stack where the system has IPv6, else IPv4 only.
        None => build(IpAddr::V6(Ipv6Addr::UNSPECIFIED)).or_else(|err| {
            let no_ipv6 = err.kind() == io::ErrorKind::AddrNotAvailable
                || err.raw_os_error() == Some(libc_eafnosupport());
            if no_ipv6 {
                build(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
            } else {
                Err(err)
            }
        })?,
    };
    let address = server.server_address().inet().expect("a TCP server");
    let url_host = match address.ip() {
        IpAddr::V6(ip) => format!("[{ip}]"),
        IpAddr::V4(ip) => ip.to_string(),
    };
    println!(
        "Serving HTTP on {} port {} (http://{url_host}:{}/) ...",
        address.ip(),
        address.port(),
        address.port()
    );
    let handle = server.handle();
    common::stop_on_signal(handle);
    server.serve_forever()?;
    println!("Shutting down, finishing requests in flight ...");
    server.server_close();
    Ok(())
}

/// `EAFNOSUPPORT` on Linux: the kernel has no IPv6.
fn libc_eafnosupport() -> i32 {
    97
}
