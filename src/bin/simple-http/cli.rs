//! The command line of `simple-http` (and of `cargo run --example simple_http`, which
//! includes this file): `python3 -m http.server`'s flags (CPython 3.14's `--tls-*`
//! included), on the crate's event loop.

use std::cell::Cell;
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use socketserver::cgi::CgiHttpHandler;
use socketserver::files::{SimpleHttpHandler, Uploads};
use socketserver::http::compress::Compression;
use socketserver::http::metrics::ServerGroup;
use socketserver::http::{
    AddHeaders, BasicAuth, Configured, Cors, Endpoints, ForwardedFor, HttpHandler, Limits, Version,
};
use socketserver::proxy::{ProxyProtocol, TrustedProxies};
use socketserver::server::Transport;
use socketserver::tls::{TlsConfig, TlsTransport};
use socketserver::{
    Concurrency, EventLoop, Server, ServerHandle, StreamSocket, TcpTransport, Threading,
};

#[derive(Parser)]
#[command(
    name = "simple-http",
    version,
    about = "Serve a directory over HTTP, like python3 -m http.server"
)]
struct Args {
    /// Port to listen on.
    #[arg(default_value_t = 8000)]
    port: u16,
    /// Address or host name to bind to [default: all interfaces, IPv6 and IPv4].
    #[arg(short, long, value_name = "ADDRESS")]
    bind: Option<String>,
    /// Serve on the TCP socket of descriptor N, bound by the parent process (PORT is then
    /// ignored). Without it, sockets of systemd's socket activation (LISTEN_FDS) are
    /// served on, the first of them.
    #[arg(long, value_name = "N", conflicts_with = "bind")]
    fd: Option<i32>,
    /// Directory to serve [default: the current directory].
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
    #[arg(long, conflicts_with_all = ["workers", "threads"])]
    threading: bool,
    /// Event loops, each on a thread of its own and taking connections from the same
    /// port [default: one per CPU]. The workers (--workers) are shared out among them.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    threads: Option<u16>,
    /// Bind with SO_REUSEPORT, so that a new instance can bind the same port while this one
    /// drains (a hand-off without a balancer), and give each event loop a socket of its
    /// own. Set `sysctl net.ipv4.tcp_migrate_req=1` so that no connection queued at the
    /// old one's close is reset.
    #[arg(long, conflicts_with = "fd")]
    reuse_port: bool,
    /// Seconds the requests in flight have to finish after SIGTERM or Ctrl-C (idle
    /// keep-alive connections close at once, queued connections are still served); then
    /// the rest are cut.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    shutdown_timeout: u64,
    /// Largest request body accepted, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = Limits::default().max_body_size)]
    max_body: u64,
    /// Seconds a client has to send a request head.
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    head_timeout: u64,
    /// Seconds an idle keep-alive connection stays open.
    #[arg(long, value_name = "SECONDS", default_value_t = 5)]
    keep_alive: u64,
    /// Serve and list names that begin with a dot (hidden, and 404, by default).
    #[arg(long)]
    hidden: bool,
    /// No directory listings: a directory without an index page answers 404.
    #[arg(long)]
    no_listing: bool,
    /// A single-page app: a path that names nothing gets the root's index.html.
    #[arg(long)]
    spa: bool,
    /// Send every file as it is: no precompressed `.br`/`.zst`/`.gz` files, no brotli,
    /// zstd or gzip on the fly (both on by default).
    #[arg(long)]
    no_compress: bool,
    /// The page a 404 answers with (an HTML file, say).
    #[arg(long = "404", value_name = "FILE")]
    not_found: Option<PathBuf>,
    /// Accept uploads: PUT of a file, and multipart/form-data POST of files to a directory
    /// (the listing's form); each at most --max-body bytes.
    #[arg(long)]
    upload: bool,
    /// With --upload: an upload may replace an existing file (else 409).
    #[arg(long, requires = "upload")]
    overwrite: bool,
    /// A header for every answer, as NAME:VALUE (repeatable).
    #[arg(short = 'H', long = "header", value_name = "NAME:VALUE")]
    headers: Vec<String>,
    /// `Cache-Control` of every answer (`no-cache`, `max-age=3600`, ...).
    #[arg(long, value_name = "VALUE")]
    cache_control: Option<String>,
    /// Let pages of any origin read the answers (CORS), preflights answered.
    #[arg(long)]
    cors: bool,
    /// A user who may log in (HTTP Basic), as USER:PASSWORD, USER:sha256:HEX
    /// (`printf %s pw | sha256sum`) or USER:BCRYPT (`htpasswd -nbB user pw`); repeatable.
    #[arg(long, value_name = "USER:PASSWORD")]
    auth: Vec<String>,
    /// With --auth: only writes (uploads, forms) need a login; reading stays open.
    #[arg(long, requires = "auth")]
    auth_writes_only: bool,
    /// The access log on stderr: `text` (Combined Log Format and the seconds taken, one
    /// line per request) or `json` (one object per line).
    #[arg(long, value_name = "FORMAT", default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    /// Serve HTTPS with this certificate chain (PEM, the server's certificate first).
    /// SIGHUP reads the certificate and key again.
    #[arg(long, value_name = "FILE")]
    tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM) [default: in the --tls-cert file].
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// A file whose content is the password of an encrypted --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_password_file: Option<PathBuf>,
    /// Serve HTTPS with a certificate made at start for the bind names, localhost and the
    /// loopback addresses; prints its SHA-256 fingerprint and where its PEM is.
    #[arg(long, conflicts_with = "tls_cert")]
    tls_self_signed: bool,
    /// A health check at PATH (`/healthz`) for a load balancer: GET answers 200 `ok`
    /// while serving, 503 `draining` once shutting down; no login needed.
    #[arg(long, value_name = "PATH", value_parser = endpoint_path)]
    health: Option<String>,
    /// Prometheus metrics at PATH (`/metrics`): answers by status class, bytes, latency,
    /// connections, requests in flight, memory, descriptors, CPU; no login needed.
    #[arg(long, value_name = "PATH", value_parser = endpoint_path)]
    metrics: Option<String>,
    /// Behind a load balancer in TCP mode (HAProxy's send-proxy, nginx's proxy_protocol):
    /// every connection from a trusted proxy (--trusted-proxy, default the loopback
    /// addresses) must start with a PROXY header, version 1 or 2, before TLS if any, and
    /// the client it names is the one logged and given to CGI. A PROXY header from anyone
    /// else is refused; their plain requests are served as usual.
    #[arg(long)]
    proxy_protocol: bool,
    /// A proxy whose word about the client is taken, as a network (10.0.0.0/8, fd00::/8)
    /// or an address; repeatable, or comma-separated. Given at least once, the
    /// X-Forwarded-For and Forwarded headers of requests from these proxies name the client
    /// (the right-most address that is not itself a trusted proxy); without it those
    /// headers are ignored. It is also the list --proxy-protocol trusts.
    #[arg(long, value_name = "CIDR")]
    trusted_proxy: Vec<String>,
}

/// `--health` and `--metrics`: a path of the server, `/` first.
fn endpoint_path(path: &str) -> Result<String, String> {
    if path.starts_with('/') {
        Ok(path.to_string())
    } else {
        Err(format!("{path:?} does not begin with '/'"))
    }
}

/// Where a program that includes this file serves from when `-d` is not given, and why.
pub struct DefaultDirectory {
    pub path: PathBuf,
    pub why: &'static str,
}

/// Parses the command line, serves until Ctrl-C or SIGTERM, and says how it ended.
pub fn run(default: DefaultDirectory) -> ExitCode {
    let args = Args::parse();
    let logger = if args.log_format == "json" {
        socketserver::http::log_json_to_stderr
    } else {
        socketserver::http::log_to_stderr
    };
    logger(log::LevelFilter::Info).expect("the only logger");
    match serve_args(args, default) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("simple-http: {err}");
            ExitCode::FAILURE
        }
    }
}

fn serve_args(args: Args, default: DefaultDirectory) -> io::Result<()> {
    let (directory, which) = match &args.directory {
        Some(dir) => (dir.clone(), "as asked"),
        None => (default.path, default.why),
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
    let mut files = SimpleHttpHandler::new(&directory)
        .map_err(|err| io::Error::new(err.kind(), format!("{}: {err}", directory.display())))?;
    files = files
        .show_hidden(args.hidden)
        .listing(!args.no_listing)
        .spa(args.spa)
        .compression(match args.no_compress {
            true => Compression::off(),
            false => Compression::new(),
        });
    if let Some(page) = &args.not_found {
        files = files.not_found_page(page)?;
    }
    if args.upload {
        let uploads = Uploads::new()
            .max_request_size(args.max_body)
            .overwrite(args.overwrite);
        files = files.uploads(uploads);
    }
    println!("Directory: {} ({which})", files.directory().display());
    let inherited = inherited_socket(args.fd)?;

    let trusted = trusted_proxies(&args.trusted_proxy)?;
    let settings = Settings {
        bind: bind_addresses(args.bind.as_deref(), args.port)?,
        inherited: Cell::new(inherited),
        limits,
        protocol,
        tls: https(&args)?,
        reuse_port: args.reuse_port,
        shutdown_timeout: Duration::from_secs(args.shutdown_timeout),
        servers: ServerGroup::new(),
        proxy_protocol: args.proxy_protocol.then(|| {
            let trusted = trusted.clone().unwrap_or_default();
            ProxyProtocol::new(trusted).header_timeout(limits.head_timeout)
        }),
        forwarded: trusted,
    };
    if args.cgi {
        with_auth(CgiHttpHandler::from_files(files), &args, &settings)
    } else {
        with_auth(files, &args, &settings)
    }
}

/// `--fd N`, or else the first socket of systemd's socket activation, if it passed any;
/// says which on stdout.
fn inherited_socket(fd: Option<i32>) -> io::Result<Option<OwnedFd>> {
    // Taken either way, so that LISTEN_* leave the environment before CGI scripts see it.
    let mut activated = socketserver::server::listen_fds()
        .map_err(|err| io::Error::new(err.kind(), format!("socket activation: {err}")))?;
    if let Some(n) = fd {
        let socket = socketserver::server::claim_fd(n)
            .map_err(|err| io::Error::new(err.kind(), format!("--fd {n}: {err}")))?;
        println!("Socket: descriptor {n} (--fd)");
        return Ok(Some(socket));
    }
    if activated.is_empty() {
        return Ok(None);
    }
    let count = activated.len();
    println!(
        "Socket: descriptor 3 from systemd's socket activation{}",
        match count {
            1 => String::new(),
            n => format!(" (the first of {n}; the others are not served)"),
        }
    );
    Ok(Some(activated.remove(0)))
}

/// What the server is held to, whatever handler it runs.
struct Settings {
    bind: Vec<SocketAddr>,
    /// A socket handed in (`--fd`, systemd), served on instead of binding `bind`; taken
    /// by the one server built.
    inherited: Cell<Option<OwnedFd>>,
    limits: Limits,
    protocol: Version,
    tls: Option<Https>,
    /// `--reuse-port`: every loop binds a socket of its own with SO_REUSEPORT.
    reuse_port: bool,
    shutdown_timeout: Duration,
    /// Every server of the process, for `--metrics` to add up.
    servers: ServerGroup,
    /// `--proxy-protocol`: PROXY headers from the trusted proxies.
    proxy_protocol: Option<ProxyProtocol>,
    /// `--trusted-proxy`, given: their forwarding headers name the client.
    forwarded: Option<TrustedProxies>,
}

/// The networks of `--trusted-proxy`; `None` if none was given.
fn trusted_proxies(specs: &[String]) -> io::Result<Option<TrustedProxies>> {
    if specs.is_empty() {
        return Ok(None);
    }
    let trusted: TrustedProxies = specs
        .join(",")
        .parse()
        .map_err(|err| usage(format!("--trusted-proxy: {err}")))?;
    Ok(Some(trusted))
}

/// The server's TLS, when it serves HTTPS.
struct Https {
    config: TlsConfig,
    /// The self-signed certificate's PEM file, removed when the server stops.
    _pem: Option<tempfile::TempPath>,
    /// SIGHUP reads the certificate files again (there are files to read).
    reload_on_sighup: bool,
}

/// `--tls-cert`, `--tls-key`, `--tls-password-file` (CPython's flags) or
/// `--tls-self-signed`.
fn https(args: &Args) -> io::Result<Option<Https>> {
    if args.tls_self_signed {
        let mut names = vec!["localhost".to_string(), "127.0.0.1".into(), "::1".into()];
        if let Some(bind) = &args.bind {
            names.push(bind.trim_matches(|c| c == '[' || c == ']').to_string());
        }
        if let Ok(host) = nix::unistd::gethostname() {
            names.push(host.to_string_lossy().into_owned());
        }
        names.sort();
        names.dedup();
        let tls = TlsConfig::self_signed(&names)?;
        // A fresh file of a random name (created with O_EXCL: nothing planted in /tmp is
        // followed), removed when the server stops.
        let mut file = tempfile::Builder::new()
            .prefix("simple-http-")
            .suffix(".pem")
            .tempfile()?;
        io::Write::write_all(&mut file, tls.certificate_pem().as_bytes())?;
        let pem = file.into_temp_path();
        println!("Self-signed certificate for {}", names.join(", "));
        println!("  SHA-256 fingerprint {}", tls.fingerprint());
        println!("  PEM in {} (curl --cacert it)", pem.display());
        return Ok(Some(Https {
            config: tls,
            _pem: Some(pem),
            reload_on_sighup: false,
        }));
    }
    let Some(cert) = &args.tls_cert else {
        return Ok(None);
    };
    let key = args.tls_key.as_ref().unwrap_or(cert);
    let tls = match &args.tls_password_file {
        None => TlsConfig::from_pem_files(cert, key)?,
        Some(file) => {
            let password = std::fs::read_to_string(file)
                .map_err(|err| io::Error::new(err.kind(), format!("{}: {err}", file.display())))?;
            TlsConfig::with_password(cert, key, password.trim().as_bytes())?
        }
    };
    Ok(Some(Https {
        config: tls,
        _pem: None,
        reload_on_sighup: true,
    }))
}

/// `--auth`: a login in front of the files.
fn with_auth<H: HttpHandler>(handler: H, args: &Args, settings: &Settings) -> io::Result<()> {
    if args.auth.is_empty() {
        return with_cors(handler, args, settings);
    }
    let mut auth = BasicAuth::new(handler, "simple-http");
    for spec in &args.auth {
        let (user, secret) = spec
            .split_once(':')
            .ok_or_else(|| usage(format!("--auth {spec:?} is not USER:PASSWORD")))?;
        let hashed = secret.starts_with("sha256:") || secret.starts_with("$2");
        auth = if hashed {
            auth.user_hashed(user, secret)?
        } else {
            auth.user(user, secret)?
        };
    }
    with_cors(auth.writes_only(args.auth_writes_only), args, settings)
}

/// `--cors`, outside the login: a browser's preflight carries no credentials.
fn with_cors<H: HttpHandler>(handler: H, args: &Args, settings: &Settings) -> io::Result<()> {
    if args.cors {
        with_headers(Cors::new(handler), args, settings)
    } else {
        with_headers(handler, args, settings)
    }
}

/// `-H` and `--cache-control`, outside all but the health check and metrics: on every
/// answer, a 401 included.
fn with_headers<H: HttpHandler>(handler: H, args: &Args, settings: &Settings) -> io::Result<()> {
    if args.headers.is_empty() && args.cache_control.is_none() {
        return with_forwarded(handler, args, settings);
    }
    let mut added = AddHeaders::new(handler);
    for spec in &args.headers {
        let (name, value) = spec
            .split_once(':')
            .ok_or_else(|| usage(format!("-H {spec:?} is not NAME:VALUE")))?;
        added = added.header(name.trim(), value.trim())?;
    }
    if let Some(value) = &args.cache_control {
        added = added.header("Cache-Control", value)?;
    }
    with_forwarded(added, args, settings)
}

/// `--trusted-proxy`: the login, CGI and the access log see the client the proxies name.
fn with_forwarded<H: HttpHandler>(handler: H, args: &Args, settings: &Settings) -> io::Result<()> {
    match &settings.forwarded {
        Some(trusted) => configured(ForwardedFor::new(handler, trusted.clone()), args, settings),
        None => configured(handler, args, settings),
    }
}

/// `--health` and `--metrics`, outermost: before the login, without the site's headers.
/// Always there (it passes everything on without them), so that the handler's type does
/// not double the program's code.
fn configured<H: HttpHandler>(handler: H, args: &Args, settings: &Settings) -> io::Result<()> {
    let mut handler = Endpoints::new(handler).servers(settings.servers.clone());
    if let Some(path) = &args.health {
        handler = handler.health(path)?;
    }
    if let Some(path) = &args.metrics {
        handler = handler.metrics(path)?;
    }
    let handler = Configured::new(handler)
        .limits(settings.limits)
        .protocol_version(settings.protocol);
    match &settings.tls {
        None => serve_on::<TcpTransport, _>(settings, handler, args),
        Some(_) => serve_on::<TlsTransport, _>(settings, handler, args),
    }
}

fn usage(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

/// Serves on the event loops (`--threads`), or a thread per connection with `--threading`.
fn serve_on<T: Transport<Request = StreamSocket, Address = SocketAddr>, H: HttpHandler>(
    settings: &Settings,
    handler: Configured<H>,
    args: &Args,
) -> io::Result<()> {
    if args.threading {
        return serve::<T, _, _>(settings, handler, 1, Threading::new);
    }
    let loops = match args.threads {
        Some(n) => usize::from(n),
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let workers = args.workers.div_ceil(loops);
    serve::<T, _, _>(settings, handler, loops, || {
        EventLoop::new(workers).expect("an epoll instance")
    })
}

/// The addresses to try, in order: those `-b` names (an IP address or a host name, as
/// Python's `-b` takes), or every interface (dual-stack IPv6, else IPv4).
fn bind_addresses(bind: Option<&str>, port: u16) -> io::Result<Vec<SocketAddr>> {
    let Some(bind) = bind else {
        return Ok(vec![
            SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port),
            SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port),
        ]);
    };
    if let Ok(ip) = bind
        .trim_matches(|c| c == '[' || c == ']')
        .parse::<IpAddr>()
    {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let found: Vec<SocketAddr> = (bind, port)
        .to_socket_addrs()
        .map_err(|err| io::Error::new(err.kind(), format!("cannot resolve {bind}: {err}")))?
        .collect();
    if found.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{bind} has no address"),
        ));
    }
    Ok(found)
}

fn serve<T, H, C>(
    settings: &Settings,
    handler: Configured<H>,
    loops: usize,
    concurrency: impl Fn() -> C,
) -> io::Result<()>
where
    T: Transport<Request = StreamSocket, Address = SocketAddr>,
    H: HttpHandler,
    C: Concurrency,
{
    let build = |source: Source| {
        let mut builder = match source {
            Source::Address(address) => Server::<T, _>::builder(address, handler.clone())
                .concurrency(concurrency())
                .ipv6_only(false)
                .allow_reuse_port(settings.reuse_port),
            // Bound already (by systemd, the parent, or for another loop): adopted.
            Source::Socket(socket) => Server::<T, _>::builder_from_socket(socket, handler.clone())
                .concurrency(concurrency()),
        }
        .request_queue_size(1024);
        if let Some(https) = &settings.tls {
            builder = builder.tls(https.config.clone());
        }
        if let Some(proxy) = &settings.proxy_protocol {
            builder = builder.proxy_protocol(proxy.clone());
        }
        builder.build()
    };
    let inherited = settings.inherited.take();
    // A socket handed in is shared by the loops: there is no port to bind again.
    let reuse_port = settings.reuse_port && inherited.is_none();
    let first = match inherited {
        Some(socket) => build(Source::Socket(socket))?,
        None => {
            let mut failure = None;
            let mut built = None;
            for &address in &settings.bind {
                match build(Source::Address(address)) {
                    Ok(server) => {
                        built = Some(server);
                        break;
                    }
                    Err(err) => failure = Some(err),
                }
            }
            built
                .ok_or_else(|| failure.unwrap_or_else(|| io::Error::other("no address to bind")))?
        }
    };
    let address = first.server_address().inet().expect("a TCP server");
    // The other loops: a socket of their own on the same port with --reuse-port (the
    // kernel spreads the connections), else the first one's, shared.
    let mut servers = vec![first];
    while servers.len() < loops {
        let source = if reuse_port {
            Source::Address(address)
        } else {
            let socket = servers[0].socket().expect("a server just built");
            Source::Socket(socket.as_fd().try_clone_to_owned()?)
        };
        servers.push(build(source)?);
    }
    for server in &servers {
        settings.servers.add(&server.handle());
    }
    let scheme = if settings.tls.is_some() {
        "https"
    } else {
        "http"
    };
    if loops > 1 {
        println!("Event loops: {loops}, each on a thread of its own");
    }
    println!(
        "Serving {} on {} port {} ({}) ...",
        scheme.to_ascii_uppercase(),
        address.ip(),
        address.port(),
        urls(address, scheme).join(" ")
    );
    let reload = settings
        .tls
        .as_ref()
        .filter(|https| https.reload_on_sighup)
        .map(|https| https.config.clone());
    let handles = servers.iter().map(Server::handle).collect();
    handle_signals(handles, settings.shutdown_timeout, reload)?;
    std::thread::scope(|scope| {
        let loops: Vec<_> = servers[1..]
            .iter()
            .enumerate()
            .map(|(n, server)| {
                std::thread::Builder::new()
                    .name(format!("loop-{}", n + 1))
                    .spawn_scoped(scope, || server.serve_forever())
            })
            .collect::<io::Result<_>>()?;
        let mut result = servers[0].serve_forever();
        for running in loops {
            let served = running
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("a loop panicked")));
            result = result.and(served);
        }
        result
    })?;
    for server in &servers {
        server.server_close();
    }
    Ok(())
}

/// Where a server's socket comes from.
enum Source {
    Address(SocketAddr),
    Socket(OwnedFd),
}

/// The URLs a person can open: the bound address, or for every interface (`::`,
/// `0.0.0.0`) the address of each interface that is up, loopback first.
fn urls(address: SocketAddr, scheme: &str) -> Vec<String> {
    let url = |ip: IpAddr| match ip {
        IpAddr::V6(ip) => format!("{scheme}://[{ip}]:{}/", address.port()),
        IpAddr::V4(ip) => format!("{scheme}://{ip}:{}/", address.port()),
    };
    if !address.ip().is_unspecified() {
        return vec![url(address.ip())];
    }
    let mut ips: Vec<IpAddr> = interface_addresses()
        .into_iter()
        .filter(|ip| address.is_ipv6() || ip.is_ipv4())
        // Link-local IPv6 addresses need a zone to be opened; they are no use in a banner.
        .filter(|ip| !matches!(ip, IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80))
        .collect();
    ips.sort_by_key(|ip| (!ip.is_loopback(), ip.is_ipv6(), *ip));
    ips.dedup();
    if ips.is_empty() {
        ips.push(address.ip());
    }
    ips.into_iter().map(url).collect()
}

fn interface_addresses() -> Vec<IpAddr> {
    let Ok(interfaces) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    interfaces
        .filter(|interface| {
            interface
                .flags
                .contains(nix::net::if_::InterfaceFlags::IFF_UP)
        })
        .filter_map(|interface| {
            let address = interface.address?;
            if let Some(v4) = address.as_sockaddr_in() {
                Some(IpAddr::V4(v4.ip()))
            } else {
                address.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip()))
            }
        })
        .collect()
}

/// Ctrl-C and SIGTERM shut the servers down gracefully: the connections already queued
/// are served, idle keep-alive connections close at once, the requests in flight have
/// `timeout` to finish. A second signal exits at once, for when one of those requests
/// takes too long. With certificate files, SIGHUP reads them again (connections already
/// open keep theirs); without, SIGHUP keeps its default and ends the server, as it ends
/// Python's.
fn handle_signals(
    servers: Vec<ServerHandle>,
    timeout: Duration,
    reload: Option<TlsConfig>,
) -> io::Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut wanted = vec![SIGINT, SIGTERM];
    if reload.is_some() {
        wanted.push(SIGHUP);
    }
    let mut signals = signal_hook::iterator::Signals::new(&wanted)?;
    let mut stops = 0;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                match (signal, &reload) {
                    (SIGHUP, Some(tls)) => match tls.reload() {
                        Ok(()) => {
                            log::info!("SIGHUP: certificate reloaded ({})", tls.fingerprint())
                        }
                        Err(err) => log::error!("SIGHUP: certificate not reloaded: {err}"),
                    },
                    _ if stops == 0 => {
                        stops += 1;
                        let open: u64 = servers.iter().map(|s| s.stats().connections_open()).sum();
                        // Not println!: stdout may be a pipe nobody reads any more, and a
                        // panic here would leave the server running.
                        let _ = writeln!(
                            io::stdout(),
                            "Shutting down: {open} connection(s) open, finishing requests in \
                             flight (up to {} s; a second signal stops at once) ...",
                            timeout.as_secs()
                        );
                        // Each loop drains on its own; started together, waited for here.
                        let servers = servers.clone();
                        std::thread::spawn(move || {
                            std::thread::scope(|scope| {
                                for server in &servers {
                                    scope.spawn(move || server.shutdown_gracefully(timeout));
                                }
                            })
                        });
                    }
                    _ => {
                        eprintln!("Second signal: exiting without waiting for requests in flight");
                        std::process::exit(130);
                    }
                }
            }
        })?;
    Ok(())
}
