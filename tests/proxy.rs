//! Behind a load balancer: the PROXY protocol (v1 and v2) from trusted proxies, refused from
//! others, before TLS too; and `X-Forwarded-For` / `Forwarded` from trusted HTTP proxies.
//! On the four strategies (event loop inline, event loop with workers, thread per
//! connection, thread pool):
//!
//! 1. a header (raw v1, v2 over IPv4 and IPv6 with TLVs, LOCAL, curl's
//!    `--haproxy-protocol`) names the client that the handler, the access log and CGI's
//!    `REMOTE_ADDR` see; so does a plain stream handler, from the start;
//! 2. faults, each followed by the health checks of tests/faults.rs (the process idles,
//!    holds its descriptors, serves): a header a byte at a time, an incomplete header
//!    (closed at the timeout), garbage and bad v2 headers, a header from an untrusted peer;
//! 3. PROXY before TLS (raw v2 and curl, `https://`);
//! 4. forwarding headers from trusted and untrusted peers, and after a PROXY header;
//! 5. `simple-http --proxy-protocol` and `--trusted-proxy`.
//!
//! The installed curl (7.88) has `--haproxy-protocol` (v1, with the real addresses) but not
//! `--haproxy-clientip`, which curl 8.2 added; the claimed addresses come from raw clients.

#[macro_use]
mod faults_support;
mod tls_support;

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv6Addr, SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use faults_support::{
    assert_idle, fd_count, poll_until, CpuClock, Site, Strategy, TempDir, TestConcurrency, WAIT,
};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection};
use socketserver::cgi::CgiHttpHandler;
use socketserver::files::SimpleHttpHandler;
use socketserver::http::{
    Configured, ForwardedFor, HttpHandler, HttpRequest, Limits, Version, LOG_TARGET,
};
use socketserver::proxy::{ProxyProtocol, TrustedProxies, V2_SIGNATURE};
use socketserver::server::{RequestContext, ServerHooks, Transport};
use socketserver::tls::{TlsConfig, TlsTransport};
use socketserver::{
    HandlerResult, RequestHandler, Server, ServerHandle, StreamRequest, TcpTransport,
};
use tls_support::{client_config, pem_to_der, ClientOptions};

on_every_strategy!(crate::tls_support::run_shared:
    v1_names_the_client,
    v2_names_the_client,
    local_and_unknown_keep_the_peer,
    curl_haproxy_protocol,
    a_stream_handler_sees_the_client_from_the_start,
    proxy_before_tls,
    forwarded_headers_from_a_trusted_proxy,
    forwarded_headers_from_others_are_ignored,
    forwarded_headers_after_a_proxy_header,
);

on_every_strategy!(crate::tls_support::run_alone:
    a_header_a_byte_at_a_time,
    an_incomplete_header_is_closed_at_the_timeout,
    garbage_and_bad_headers_are_closed,
    a_header_from_an_untrusted_peer_is_refused,
    an_incomplete_header_before_tls_is_closed_at_the_timeout,
);

// ---------------------------------------------------------------------------------------
// Headers

fn v1(source: &str, destination: &str) -> Vec<u8> {
    let (s, d): (SocketAddr, SocketAddr) = (source.parse().unwrap(), destination.parse().unwrap());
    let family = if s.is_ipv4() { "TCP4" } else { "TCP6" };
    format!(
        "PROXY {family} {} {} {} {}\r\n",
        s.ip(),
        d.ip(),
        s.port(),
        d.port()
    )
    .into_bytes()
}

/// A version 2 PROXY header for `source` (to `destination`), with an ALPN and a NOOP TLV.
fn v2(source: &str, destination: &str) -> Vec<u8> {
    let (s, d): (SocketAddr, SocketAddr) = (source.parse().unwrap(), destination.parse().unwrap());
    let mut block = Vec::new();
    let family = match (s, d) {
        (SocketAddr::V4(s), SocketAddr::V4(d)) => {
            block.extend(s.ip().octets());
            block.extend(d.ip().octets());
            0x11
        }
        (SocketAddr::V6(s), SocketAddr::V6(d)) => {
            block.extend(s.ip().octets());
            block.extend(d.ip().octets());
            0x21
        }
        _ => panic!("one family"),
    };
    block.extend(s.port().to_be_bytes());
    block.extend(d.port().to_be_bytes());
    block.extend([0x01, 0, 8]);
    block.extend(b"http/1.1");
    block.extend([0x04, 0, 3, 0, 0, 0]);
    v2_raw(0x21, family, &block)
}

fn v2_raw(version_command: u8, family: u8, block: &[u8]) -> Vec<u8> {
    let mut header = V2_SIGNATURE.to_vec();
    header.extend([version_command, family]);
    header.extend((block.len() as u16).to_be_bytes());
    header.extend(block);
    header
}

// ---------------------------------------------------------------------------------------
// The handler: `/who` says who asked, the rest is files and CGI

#[derive(Clone)]
struct Who {
    cgi: CgiHttpHandler,
    /// Every request says it may block: on an event loop with workers, it runs there.
    on_workers: bool,
}

impl HttpHandler for Who {
    fn may_block(&self, request: &HttpRequest<'_>) -> bool {
        self.on_workers || self.cgi.may_block(request)
    }

    fn dispatch(&mut self, request: &mut HttpRequest<'_>) -> HandlerResult {
        if request.url_path() == "/who" {
            let text = format!("{} {}\n", request.command, request.client_address);
            return request.send_text(200, &text);
        }
        self.cgi.dispatch(request)
    }
}

type App = Configured<ForwardedFor<Who>>;

const CGI_ENV: &str = "printf 'Content-Type: text/plain\\r\\n\\r\\n'\n\
                       printf 'REMOTE_ADDR=%s\\n' \"$REMOTE_ADDR\"\n";

fn site() -> Site {
    let site = Site::new();
    site.script("cgi-bin/env.sh", CGI_ENV);
    site
}

fn app(site: &Site, strategy: Strategy, forwarded: TrustedProxies, limits: Limits) -> App {
    let files = SimpleHttpHandler::new(site.root()).expect("serve the site");
    let who = Who {
        cgi: CgiHttpHandler::from_files(files),
        on_workers: matches!(strategy, Strategy::Loop { workers } if workers > 0),
    };
    Configured::new(ForwardedFor::new(who, forwarded))
        .limits(limits)
        .protocol_version(Version::HTTP_10)
}

fn limits(timeout: Duration) -> Limits {
    Limits {
        head_timeout: timeout,
        keep_alive_timeout: timeout,
        body_timeout: timeout,
        send_timeout: timeout,
        ..Limits::default()
    }
}

fn loopback() -> TrustedProxies {
    TrustedProxies::loopback()
}

fn ten() -> TrustedProxies {
    "10.0.0.0/8".parse().unwrap()
}

// ---------------------------------------------------------------------------------------
// The access log

/// Every access and error line of the HTTP log target.
fn log_lines() -> &'static Mutex<Vec<String>> {
    struct Collector(Mutex<Vec<String>>);

    impl log::Log for Collector {
        fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
            metadata.target() == LOG_TARGET
        }

        fn log(&self, record: &log::Record<'_>) {
            if record.target() == LOG_TARGET {
                let mut lines = self.0.lock().unwrap_or_else(|e| e.into_inner());
                lines.push(record.args().to_string());
            }
        }

        fn flush(&self) {}
    }

    static COLLECTOR: OnceLock<&'static Collector> = OnceLock::new();
    let collector = COLLECTOR.get_or_init(|| {
        let collector: &'static Collector = Box::leak(Box::new(Collector(Mutex::new(Vec::new()))));
        log::set_logger(collector).expect("the only logger of this test binary");
        log::set_max_level(log::LevelFilter::Info);
        collector
    });
    &collector.0
}

/// The access line of the request for `target` (unique to the test), waited for: it is
/// written once the response has left.
fn access_line(target: &str) -> String {
    let needle = format!("\"GET {target} HTTP/1.0\"");
    let mut found = None;
    poll_until(WAIT, || {
        let lines = log_lines().lock().unwrap_or_else(|e| e.into_inner());
        found = lines.iter().find(|l| l.contains(&needle)).cloned();
        found.is_some()
    });
    found.unwrap_or_else(|| panic!("no access line for {target}"))
}

fn unique(what: &str, strategy: Strategy) -> String {
    static COUNT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tag: String = strategy
        .to_string()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    format!("/who?{what}-{tag}-{n}")
}

// ---------------------------------------------------------------------------------------
// The rig

/// A server on 127.0.0.1, port 0, on a thread of its own; with the descriptors it holds
/// while it serves and no client is connected.
struct Rig {
    strategy: Strategy,
    addr: SocketAddr,
    cpu: CpuClock,
    handle: ServerHandle,
    stop: Option<Box<dyn FnOnce() + Send>>,
    /// The health check's client: PROXY header (if the peer owes one), and TLS (if any).
    health: Health,
    fds_serving: usize,
}

#[derive(Clone)]
struct Health {
    header: bool,
    tls: Option<Arc<ClientConfig>>,
}

/// How a rig's server reads PROXY headers and forwarding headers, and its limits.
struct Setup {
    proxy: Option<ProxyProtocol>,
    forwarded: TrustedProxies,
    tls: Option<TlsConfig>,
    timeout: Duration,
}

impl Setup {
    fn proxy(trusted: TrustedProxies) -> Setup {
        Setup {
            proxy: Some(ProxyProtocol::new(trusted).header_timeout(Duration::from_secs(1))),
            forwarded: TrustedProxies::none(),
            tls: None,
            timeout: Duration::from_secs(1),
        }
    }

    fn forwarded(trusted: TrustedProxies) -> Setup {
        Setup {
            proxy: None,
            forwarded: trusted,
            tls: None,
            timeout: Duration::from_secs(1),
        }
    }
}

impl Rig {
    fn start(strategy: Strategy, site: &Site, setup: Setup) -> Rig {
        // Installed before the first request: its access line must not be lost.
        log_lines();
        let cpu = CpuClock::open();
        let handler = app(site, strategy, setup.forwarded, limits(setup.timeout));
        let header = setup
            .proxy
            .as_ref()
            .is_some_and(|p| p.trusted().contains([127, 0, 0, 1].into()));
        let health = Health {
            header,
            tls: setup.tls.as_ref().map(|tls| {
                let der = pem_to_der(tls.certificate_pem().as_bytes());
                client_config(vec![der], ClientOptions::default())
            }),
        };
        let (addr, handle, stop) = match setup.tls {
            None => {
                let mut builder =
                    Server::<TcpTransport, App, TestConcurrency>::builder("127.0.0.1:0", handler)
                        .concurrency(strategy.concurrency().unwrap())
                        .request_queue_size(128);
                if let Some(proxy) = setup.proxy {
                    builder = builder.proxy_protocol(proxy);
                }
                launch(builder.build().expect("a TCP server"))
            }
            Some(tls) => {
                let mut builder =
                    Server::<TlsTransport, App, TestConcurrency>::builder("127.0.0.1:0", handler)
                        .concurrency(strategy.concurrency().unwrap())
                        .tls(tls)
                        .request_queue_size(128);
                if let Some(proxy) = setup.proxy {
                    builder = builder.proxy_protocol(proxy);
                }
                launch(builder.build().expect("a TLS server"))
            }
        };
        let mut rig = Rig {
            strategy,
            addr,
            cpu,
            handle,
            stop: Some(stop),
            health,
            fds_serving: 0,
        };
        rig.assert_serves("starting");
        rig.fds_serving = settled_fd_count();
        rig
    }

    /// A request over a new connection, `preamble` first (and TLS, on a TLS rig):
    /// everything the server sent until it closed, or why there was nothing.
    fn exchange(&self, preamble: &[u8], request: &str) -> Result<Vec<u8>, String> {
        exchange(
            self.addr,
            self.health.tls.as_ref(),
            preamble,
            request.as_bytes(),
        )
    }

    /// `GET target` with a PROXY header for `source`: the status and body.
    fn get_as(&self, source: &str, target: &str) -> (u16, String) {
        let destination = match source.starts_with('[') {
            true => "[2001:db8::1]:80",
            false => "198.51.100.1:80",
        };
        let header = v1(source, destination);
        let response = self
            .exchange(&header, &format!("GET {target} HTTP/1.0\r\n\r\n"))
            .unwrap_or_else(|e| panic!("GET {target} on {}: {e}", self.strategy));
        split(&response)
    }

    /// A GET of `/who`, with a PROXY header if the server wants one, is answered.
    fn assert_serves(&self, after: &str) {
        let preamble = match self.health.header {
            true => v1("192.0.2.200:1", "198.51.100.1:80"),
            false => Vec::new(),
        };
        let expected = match self.health.header {
            true => "GET 192.0.2.200:1\n",
            false => "GET 127.0.0.1:",
        };
        match self.exchange(&preamble, "GET /who HTTP/1.0\r\n\r\n") {
            Ok(response) => {
                let (status, body) = split(&response);
                assert!(
                    status == 200 && body.starts_with(expected),
                    "GET /who after {after} on {}: {status} {body:?}",
                    self.strategy
                );
            }
            Err(err) => panic!("GET /who after {after} on {}: {err}", self.strategy),
        }
    }

    /// Idle, the descriptors back, and serving.
    fn assert_healthy(&self, fault: &str) {
        assert_idle(&self.cpu, &format!("{fault} on {}", self.strategy), true);
        let expected = self.fds_serving;
        let back = poll_until(WAIT, || fd_count() == expected);
        assert!(
            back,
            "fds {} after {fault} on {}, expected {expected}",
            fd_count(),
            self.strategy
        );
        self.assert_serves(fault);
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.handle.shutdown();
        if let Some(stop) = self.stop.take() {
            stop();
        }
    }
}

/// Serves `server` on a thread: its address, its handle, and what stops and closes it.
fn launch<T, H, K>(server: Server<T, H, TestConcurrency, K>) -> Launched
where
    T: Transport,
    H: RequestHandler,
    H::Request: RequestContext<Raw = T::Request>,
    K: ServerHooks<T>,
{
    let addr = server.server_address().inet().expect("an inet address");
    let server = Arc::new(server);
    let serving = Arc::clone(&server);
    let thread: JoinHandle<io::Result<()>> = thread::Builder::new()
        .name("serve_forever".into())
        .spawn(move || serving.serve_forever())
        .expect("a serving thread");
    assert!(poll_until(WAIT, || server.handle().is_serving()));
    let handle = server.handle();
    let stop = Box::new(move || {
        server.handle().shutdown();
        let _ = thread.join();
        server.server_close();
    });
    (addr, handle, stop)
}

type Launched = (SocketAddr, ServerHandle, Box<dyn FnOnce() + Send>);

/// The descriptor count once it has not changed for 100 ms.
fn settled_fd_count() -> usize {
    let mut last = fd_count();
    let mut since = Instant::now();
    assert!(poll_until(WAIT, || {
        let now = fd_count();
        if now != last {
            (last, since) = (now, Instant::now());
        }
        since.elapsed() >= Duration::from_millis(100)
    }));
    last
}

/// Connects to `addr`, sends `preamble`, then (over TLS with `tls`) `request`; reads until
/// the server closes. An error if the server closed (or reset) without a byte.
fn exchange(
    addr: SocketAddr,
    tls: Option<&Arc<ClientConfig>>,
    preamble: &[u8],
    request: &[u8],
) -> Result<Vec<u8>, String> {
    let mut tcp = TcpStream::connect_timeout(&addr, WAIT).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(WAIT)).unwrap();
    tcp.set_write_timeout(Some(WAIT)).unwrap();
    tcp.write_all(preamble)
        .map_err(|e| format!("send the preamble: {e}"))?;
    let response = match tls {
        None => {
            tcp.write_all(request).map_err(|e| format!("send: {e}"))?;
            read_all(&mut tcp)
        }
        Some(config) => {
            let name = ServerName::try_from("localhost").unwrap();
            let conn = ClientConnection::new(Arc::clone(config), name).unwrap();
            let mut tls = rustls::StreamOwned::new(conn, tcp);
            tls.write_all(request).map_err(|e| format!("TLS: {e}"))?;
            read_all(&mut tls)
        }
    };
    match response {
        (data, _) if !data.is_empty() => Ok(data),
        (_, end) => Err(format!("closed without an answer ({end})")),
    }
}

/// Everything until the end (or a failure): the bytes and how it ended.
fn read_all(stream: &mut impl Read) -> (Vec<u8>, String) {
    let mut data = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => return (data, "end of stream".into()),
            Ok(n) => data.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return (data, e.to_string()),
        }
    }
}

/// The status and body of a whole response.
fn split(response: &[u8]) -> (u16, String) {
    let text = String::from_utf8_lossy(response);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, body.to_string())
}

/// Sends `data` on a raw connection, then waits for the server to close it: how long that
/// took from the connect, and what came (nothing is expected).
fn until_closed(addr: SocketAddr, data: &[u8]) -> (Duration, Vec<u8>) {
    let started = Instant::now();
    let mut tcp = TcpStream::connect_timeout(&addr, WAIT).unwrap();
    tcp.set_read_timeout(Some(WAIT)).unwrap();
    let _ = tcp.write_all(data);
    let (got, end) = read_all(&mut tcp);
    let took = started.elapsed();
    assert!(
        took < WAIT - Duration::from_secs(1),
        "not closed within {WAIT:?} ({end})"
    );
    (took, got)
}

// ---------------------------------------------------------------------------------------
// 1. The client the header names

fn v1_names_the_client(strategy: Strategy) {
    let site = site();
    let rig = Rig::start(strategy, &site, Setup::proxy(loopback()));
    let target = unique("v1", strategy);
    let (status, body) = rig.get_as("203.0.113.7:4711", &target);
    assert_eq!((status, body.as_str()), (200, "GET 203.0.113.7:4711\n"));
    let line = access_line(&target);
    assert!(line.starts_with("203.0.113.7 - - ["), "{line}");

    let (status, body) = rig.get_as("[2001:db8::7]:4712", "/who");
    assert_eq!((status, body.as_str()), (200, "GET [2001:db8::7]:4712\n"));

    let (status, body) = rig.get_as("203.0.113.8:9", "/cgi-bin/env.sh");
    assert_eq!((status, body.as_str()), (200, "REMOTE_ADDR=203.0.113.8\n"));

    // Without its header, a trusted peer is refused.
    let refused = rig.exchange(b"", "GET /who HTTP/1.0\r\n\r\n");
    assert!(refused.is_err(), "{refused:?}");
}

fn v2_names_the_client(strategy: Strategy) {
    let site = site();
    let rig = Rig::start(strategy, &site, Setup::proxy(loopback()));
    let target = unique("v2", strategy);
    let header = v2("203.0.113.9:4711", "198.51.100.1:80");
    let response = rig
        .exchange(&header, &format!("GET {target} HTTP/1.0\r\n\r\n"))
        .unwrap();
    assert_eq!(split(&response), (200, "GET 203.0.113.9:4711\n".into()));
    assert!(access_line(&target).starts_with("203.0.113.9 - - ["));

    let header = v2("[2001:db8::9]:4711", "[2001:db8::1]:443");
    let response = rig
        .exchange(&header, "GET /cgi-bin/env.sh HTTP/1.0\r\n\r\n")
        .unwrap();
    assert_eq!(split(&response), (200, "REMOTE_ADDR=2001:db8::9\n".into()));

    // An IPv4-mapped source is the IPv4 client.
    let mapped = Ipv6Addr::from(0xffff_cb00_710a_u128);
    let header = v2(&format!("[{mapped}]:1"), "[::1]:80");
    let response = rig.exchange(&header, "GET /who HTTP/1.0\r\n\r\n").unwrap();
    assert_eq!(split(&response), (200, "GET 203.0.113.10:1\n".into()));
}

fn local_and_unknown_keep_the_peer(strategy: Strategy) {
    let site = site();
    let rig = Rig::start(strategy, &site, Setup::proxy(loopback()));
    for header in [
        v2_raw(0x20, 0x00, &[]),
        v2_raw(0x21, 0x00, &[]),
        b"PROXY UNKNOWN\r\n".to_vec(),
        b"PROXY UNKNOWN 1.2.3.4 5.6.7.8 1 2\r\n".to_vec(),
    ] {
        let response = rig.exchange(&header, "GET /who HTTP/1.0\r\n\r\n").unwrap();
        let (status, body) = split(&response);
        assert_eq!(status, 200);
        assert!(body.starts_with("GET 127.0.0.1:"), "{body}");
    }
}

fn curl_haproxy_protocol(strategy: Strategy) {
    let site = site();
    let rig = Rig::start(strategy, &site, Setup::proxy(loopback()));
    let url = format!("http://{}/who", rig.addr);
    // curl's header carries its real addresses: the answer names curl's own port.
    let output = curl(&["--haproxy-protocol", "-w", " %{local_port}", &url]);
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (answer, port) = text.rsplit_once(' ').unwrap();
    assert_eq!(answer, format!("GET 127.0.0.1:{port}\n"), "{text}");
    let cgi = curl(&[
        "--haproxy-protocol",
        &format!("http://{}/cgi-bin/env.sh", rig.addr),
    ]);
    assert_eq!(
        String::from_utf8_lossy(&cgi.stdout),
        "REMOTE_ADDR=127.0.0.1\n"
    );
    // Without the header, curl's request is refused: no answer (an empty reply, or a
    // reset: the server closes with the request unread).
    let refused = curl(&[&url]);
    assert!(
        !refused.status.success() && refused.stdout.is_empty(),
        "{refused:?}"
    );
}

/// `curl --silent --show-error --max-time 10 ARGS`.
fn curl(args: &[&str]) -> std::process::Output {
    Command::new("curl")
        .args(["--silent", "--show-error", "--max-time", "10"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run curl (Debian package curl)")
}

/// A plain stream handler that speaks first: the client it greets, then one line echoed.
#[derive(Clone)]
struct Greeter;

impl RequestHandler for Greeter {
    type Request = StreamRequest;

    fn handle(&mut self, req: &mut StreamRequest) -> HandlerResult {
        writeln!(req.wfile, "hello {}", req.client_address)?;
        let line = req.rfile.readline(1024)?;
        req.wfile.write_all(&line)?;
        Ok(())
    }
}

fn a_stream_handler_sees_the_client_from_the_start(strategy: Strategy) {
    let start = |trusted: TrustedProxies| {
        Server::<TcpTransport, Greeter, TestConcurrency>::builder("127.0.0.1:0", Greeter)
            .concurrency(strategy.concurrency().unwrap())
            .proxy_protocol(trusted)
            .build()
            .map(launch)
            .unwrap()
    };
    let (addr, _handle, stop) = start(loopback());
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(WAIT)).unwrap();
    let mut data = v2("203.0.113.11:4711", "198.51.100.1:80");
    data.extend(b"echo\n");
    tcp.write_all(&data).unwrap();
    let mut reader = BufReader::new(tcp);
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert_eq!(line, "hello 203.0.113.11:4711\n");
    line.clear();
    reader.read_line(&mut line).unwrap();
    assert_eq!(line, "echo\n");
    drop(reader);
    stop();

    // A peer that owes no header is not waited for: the greeting comes first.
    let (addr, _handle, stop) = start(ten());
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(WAIT)).unwrap();
    let local = tcp.local_addr().unwrap();
    let mut reader = BufReader::new(tcp);
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert_eq!(line, format!("hello {local}\n"));
    drop(reader);
    stop();
}

// ---------------------------------------------------------------------------------------
// 2. Faults

fn a_header_a_byte_at_a_time(strategy: Strategy) {
    let site = site();
    let rig = Rig::start(strategy, &site, Setup::proxy(loopback()));
    for header in [
        v1("203.0.113.12:4711", "198.51.100.1:80"),
        v2("203.0.113.12:4711", "198.51.100.1:80"),
    ] {
        let mut tcp = TcpStream::connect(rig.addr).unwrap();
        tcp.set_read_timeout(Some(WAIT)).unwrap();
        tcp.set_nodelay(true).unwrap();
        for byte in &header {
            tcp.write_all(std::slice::from_ref(byte)).unwrap();
            // Pacing only: each byte its own segment, the server woken for each.
            thread::sleep(Duration::from_millis(2));
        }
        tcp.write_all(b"GET /who HTTP/1.0\r\n\r\n").unwrap();
        let (response, end) = read_all(&mut tcp);
        assert_eq!(
            split(&response),
            (200, "GET 203.0.113.12:4711\n".into()),
            "{end}"
        );
    }
    rig.assert_healthy("a header a byte at a time");
}

fn an_incomplete_header_is_closed_at_the_timeout(strategy: Strategy) {
    let site = site();
    let rig = Rig::start(strategy, &site, Setup::proxy(loopback()));
    for partial in [
        &b"PROXY TCP4 203.0.113.13 198.51.1"[..],
        &v2("203.0.113.13:1", "198.51.100.1:80")[..20],
        b"",
    ] {
        let cpu = rig.cpu.now();
        let (took, got) = until_closed(rig.addr, partial);
        let used = rig.cpu.now().saturating_sub(cpu);
        assert!(got.is_empty(), "{:?}", String::from_utf8_lossy(&got));
        assert!(took >= Duration::from_millis(900), "closed after {took:?}");
        // The part that came was taken: nothing woke the server again and again.
        assert!(
            used * 3 < took,
            "CPU {used:?} in {took:?} of waiting: a busy loop"
        );
    }
    rig.assert_healthy("an incomplete PROXY header");
}

fn garbage_and_bad_headers_are_closed(strategy: Strategy) {
    let site = site();
    // Long limits: a refusal that waited for them would show.
    let setup = Setup {
        proxy: Some(ProxyProtocol::new(loopback()).header_timeout(Duration::from_secs(5))),
        timeout: Duration::from_secs(5),
        ..Setup::proxy(loopback())
    };
    let rig = Rig::start(strategy, &site, setup);
    let mut oversized = V2_SIGNATURE.to_vec();
    oversized.extend([0x21, 0x11, 0x40, 0x00]);
    let cases: [(&str, Vec<u8>); 7] = [
        (
            "a request without a header",
            b"GET /who HTTP/1.0\r\n\r\n".to_vec(),
        ),
        ("garbage", b"\x00\xffgarbage\r\n\r\n".to_vec()),
        (
            "a bad v1 port",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n".to_vec(),
        ),
        (
            "a v1 line too long",
            [&b"PROXY UNKNOWN "[..], &[b'a'; 200]].concat(),
        ),
        ("v2 version 3", v2_raw(0x31, 0x11, &[0; 12])),
        ("v2 too long", oversized),
        ("v2 a TLV past the end", v2_raw(0x21, 0x11, &[0; 14])),
    ];
    for (what, data) in cases {
        let (took, got) = until_closed(rig.addr, &data);
        assert!(
            got.is_empty(),
            "{what}: {:?}",
            String::from_utf8_lossy(&got)
        );
        assert!(
            took < Duration::from_millis(2500),
            "{what}: closed after {took:?}"
        );
    }
    rig.assert_healthy("garbage and bad PROXY headers");
}

fn a_header_from_an_untrusted_peer_is_refused(strategy: Strategy) {
    let site = site();
    let rig = Rig::start(strategy, &site, Setup::proxy(ten()));
    for header in [
        v1("203.0.113.14:1", "198.51.100.1:80"),
        v2("203.0.113.14:1", "198.51.100.1:80"),
    ] {
        let refused = rig.exchange(&header, "GET /who HTTP/1.0\r\n\r\n");
        assert!(refused.is_err(), "{refused:?}");
    }
    // Its plain requests are served, with its own address.
    let response = rig
        .exchange(b"", "GET /cgi-bin/env.sh HTTP/1.0\r\n\r\n")
        .unwrap();
    assert_eq!(split(&response), (200, "REMOTE_ADDR=127.0.0.1\n".into()));
    // A method that starts like the signature ("PRO..."), in two pieces: the bytes taken
    // while it was not clear come back to the request.
    let mut tcp = TcpStream::connect(rig.addr).unwrap();
    tcp.set_read_timeout(Some(WAIT)).unwrap();
    tcp.set_nodelay(true).unwrap();
    tcp.write_all(b"PRO").unwrap();
    thread::sleep(Duration::from_millis(50));
    tcp.write_all(b"PFIND /who HTTP/1.0\r\n\r\n").unwrap();
    let (response, _) = read_all(&mut tcp);
    drop(tcp);
    let (status, body) = split(&response);
    assert_eq!(status, 200);
    assert!(body.starts_with("PROPFIND 127.0.0.1:"), "{body}");
    rig.assert_healthy("a PROXY header from an untrusted peer");
}

fn an_incomplete_header_before_tls_is_closed_at_the_timeout(strategy: Strategy) {
    let site = site();
    let dir = TempDir::new();
    let (tls, _pem) = tls_support::self_signed(&dir);
    let setup = Setup {
        tls: Some(tls),
        ..Setup::proxy(loopback())
    };
    let rig = Rig::start(strategy, &site, setup);
    let (took, got) = until_closed(rig.addr, b"PROXY TCP4 203.0.113.15 ");
    assert!(got.is_empty(), "{:?}", String::from_utf8_lossy(&got));
    assert!(took >= Duration::from_millis(900), "closed after {took:?}");
    rig.assert_healthy("an incomplete PROXY header before TLS");
}

// ---------------------------------------------------------------------------------------
// 3. PROXY before TLS

fn proxy_before_tls(strategy: Strategy) {
    let site = site();
    let dir = TempDir::new();
    let (tls, pem) = tls_support::self_signed(&dir);
    let setup = Setup {
        tls: Some(tls),
        ..Setup::proxy(loopback())
    };
    let rig = Rig::start(strategy, &site, setup);
    let target = unique("tls", strategy);
    let header = v2("203.0.113.16:4711", "198.51.100.1:443");
    let response = rig
        .exchange(&header, &format!("GET {target} HTTP/1.0\r\n\r\n"))
        .unwrap();
    assert_eq!(split(&response), (200, "GET 203.0.113.16:4711\n".into()));
    assert!(access_line(&target).starts_with("203.0.113.16 - - ["));

    // curl: PROXY v1, then the handshake.
    let url = format!("https://localhost:{}/cgi-bin/env.sh", rig.addr.port());
    let resolve = format!("localhost:{}:127.0.0.1", rig.addr.port());
    let pem = pem.to_str().unwrap();
    let output = curl(&[
        "--haproxy-protocol",
        "--cacert",
        pem,
        "--resolve",
        &resolve,
        &url,
    ]);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "REMOTE_ADDR=127.0.0.1\n"
    );
    // A ClientHello without the header is refused.
    let refused = curl(&["--cacert", pem, "--resolve", &resolve, &url]);
    assert!(!refused.status.success(), "{refused:?}");
}

// ---------------------------------------------------------------------------------------
// 4. Forwarding headers

fn get_with(rig: &Rig, preamble: &[u8], target: &str, headers: &str) -> (u16, String) {
    let request = format!("GET {target} HTTP/1.0\r\n{headers}\r\n");
    let response = rig
        .exchange(preamble, &request)
        .unwrap_or_else(|e| panic!("GET {target}: {e}"));
    split(&response)
}

fn forwarded_headers_from_a_trusted_proxy(strategy: Strategy) {
    let site = site();
    let rig = Rig::start(strategy, &site, Setup::forwarded(loopback()));
    let target = unique("xff", strategy);
    let xff = "X-Forwarded-For: 6.6.6.6, 203.0.113.17, 127.0.0.1\r\n";
    let (status, body) = get_with(&rig, b"", &target, xff);
    assert_eq!((status, body.as_str()), (200, "GET 203.0.113.17:0\n"));
    assert!(access_line(&target).starts_with("203.0.113.17 - - ["));
    let (_, body) = get_with(&rig, b"", "/cgi-bin/env.sh", xff);
    assert_eq!(body, "REMOTE_ADDR=203.0.113.17\n");

    let forwarded =
        "Forwarded: for=6.6.6.6\r\nForwarded: for=\"[2001:db8::17]:4711\";proto=http\r\n";
    let (_, body) = get_with(&rig, b"", "/who", forwarded);
    assert_eq!(body, "GET [2001:db8::17]:4711\n");
    // `unknown` names no one: the trusted hop stays.
    let (_, body) = get_with(&rig, b"", "/who", "Forwarded: for=6.6.6.6, for=unknown\r\n");
    assert!(body.starts_with("GET 127.0.0.1:"), "{body}");
}

fn forwarded_headers_from_others_are_ignored(strategy: Strategy) {
    let site = site();
    let rig = Rig::start(strategy, &site, Setup::forwarded(ten()));
    let headers = "X-Forwarded-For: 203.0.113.18\r\nForwarded: for=203.0.113.18\r\n";
    let (status, body) = get_with(&rig, b"", "/who", headers);
    assert_eq!(status, 200);
    assert!(body.starts_with("GET 127.0.0.1:"), "{body}");
    let (_, body) = get_with(&rig, b"", "/cgi-bin/env.sh", headers);
    assert_eq!(body, "REMOTE_ADDR=127.0.0.1\n");
}

fn forwarded_headers_after_a_proxy_header(strategy: Strategy) {
    let site = site();
    // The balancer (loopback) sends PROXY headers; behind it, HTTP proxies in 10/8.
    let setup = Setup {
        forwarded: ten(),
        ..Setup::proxy(loopback())
    };
    let rig = Rig::start(strategy, &site, setup);
    let xff = "X-Forwarded-For: 203.0.113.19\r\n";
    let from_proxy = v1("10.1.2.3:5000", "198.51.100.1:80");
    let (_, body) = get_with(&rig, &from_proxy, "/who", xff);
    assert_eq!(body, "GET 203.0.113.19:0\n");
    // A client the balancer names directly is not a proxy: its header is its own.
    let from_client = v1("198.51.100.20:5000", "198.51.100.1:80");
    let (_, body) = get_with(&rig, &from_client, "/who", xff);
    assert_eq!(body, "GET 198.51.100.20:5000\n");
    // The balancer itself (loopback) is not in the HTTP proxies' list.
    let (_, body) = get_with(&rig, &v2_raw(0x20, 0, &[]), "/who", xff);
    assert!(body.starts_with("GET 127.0.0.1:"), "{body}");
}

#[test]
fn only_tcp_and_tls_servers_take_proxy_protocol() {
    let dir = TempDir::new();
    let udp = socketserver::UdpServer::builder("127.0.0.1:0", Datagrams)
        .proxy_protocol(loopback())
        .build();
    let unix = socketserver::UnixStreamServer::builder(dir.join("s"), Greeter)
        .proxy_protocol(loopback())
        .build();
    for err in [udp.err(), unix.err()] {
        let err = err.expect("refused");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
        assert!(err.to_string().contains("PROXY"), "{err}");
    }
    let tcp = Server::<TcpTransport, Greeter>::builder("127.0.0.1:0", Greeter)
        .proxy_protocol(ProxyProtocol::new(ten()).header_timeout(Duration::from_secs(3)))
        .build();
    assert!(tcp.is_ok());
}

#[derive(Clone)]
struct Datagrams;

impl RequestHandler for Datagrams {
    type Request = socketserver::DatagramRequest;

    fn handle(&mut self, _req: &mut socketserver::DatagramRequest) -> HandlerResult {
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// 5. simple-http

#[cfg(feature = "cli")]
mod simple_http {
    use super::*;

    const BINARY: &str = env!("CARGO_BIN_EXE_simple-http");

    /// The running binary, its address, and its stderr (the access log) as it comes.
    struct SimpleHttp {
        child: Child,
        addr: SocketAddr,
        stderr: Arc<Mutex<String>>,
    }

    impl SimpleHttp {
        fn start(dir: &TempDir, args: &[&str]) -> SimpleHttp {
            let child = Command::new(BINARY)
                .args(["0", "-b", "127.0.0.1"])
                .args(args)
                .current_dir(dir.path())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start simple-http");
            // Owned from here, so that a failed assertion still stops it.
            let mut running = SimpleHttp {
                child,
                addr: SocketAddr::from(([127, 0, 0, 1], 0)),
                stderr: Arc::new(Mutex::new(String::new())),
            };
            let collected = Arc::clone(&running.stderr);
            let mut err = BufReader::new(running.child.stderr.take().unwrap());
            thread::spawn(move || {
                let mut line = String::new();
                while err.read_line(&mut line).is_ok_and(|n| n > 0) {
                    collected.lock().unwrap().push_str(&line);
                    line.clear();
                }
            });
            let mut stdout = BufReader::new(running.child.stdout.take().unwrap());
            let mut line = String::new();
            loop {
                line.clear();
                assert!(stdout.read_line(&mut line).unwrap() > 0, "no banner");
                if let Some(rest) = line.strip_prefix("Serving HTTP on 127.0.0.1 port ") {
                    let port: u16 = rest.split(' ').next().unwrap().parse().unwrap();
                    running.addr.set_port(port);
                    return running;
                }
            }
        }

        fn get(&self, preamble: &[u8], target: &str, headers: &str) -> Result<Vec<u8>, String> {
            let request = format!("GET {target} HTTP/1.0\r\n{headers}\r\n");
            exchange(self.addr, None, preamble, request.as_bytes())
        }

        /// The access line of `target`, waited for.
        fn access_line(&self, target: &str) -> String {
            let mut found = None;
            poll_until(WAIT, || {
                let stderr = self.stderr.lock().unwrap();
                found = stderr
                    .lines()
                    .find(|l| l.contains(&format!("\"GET {target} ")))
                    .map(str::to_string);
                found.is_some()
            });
            found.unwrap_or_else(|| panic!("no access line for {target}"))
        }
    }

    impl Drop for SimpleHttp {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    fn served_dir() -> TempDir {
        let dir = TempDir::new();
        dir.write("a.txt", "a\n");
        dir.script("cgi-bin/env.sh", &format!("#!/bin/sh\n{CGI_ENV}"));
        dir
    }

    #[test]
    fn simple_http_proxy_protocol() {
        let dir = served_dir();
        let server = SimpleHttp::start(&dir, &["--proxy-protocol", "--cgi"]);
        let header = v1("203.0.113.21:4711", "198.51.100.1:80");
        let response = server.get(&header, "/a.txt?pp", "").unwrap();
        assert_eq!(split(&response), (200, "a\n".into()));
        assert!(server
            .access_line("/a.txt?pp")
            .starts_with("203.0.113.21 - - ["));
        let response = server.get(&header, "/cgi-bin/env.sh", "").unwrap();
        assert_eq!(split(&response).1, "REMOTE_ADDR=203.0.113.21\n");
        // The loopback peer is trusted by default: it owes a header.
        assert!(server.get(b"", "/a.txt", "").is_err());
        // Forwarding headers are not read without --trusted-proxy.
        let response = server
            .get(&header, "/cgi-bin/env.sh", "X-Forwarded-For: 6.6.6.6\r\n")
            .unwrap();
        assert_eq!(split(&response).1, "REMOTE_ADDR=203.0.113.21\n");
    }

    #[test]
    fn simple_http_trusted_proxy() {
        let dir = served_dir();
        let args = [
            "--cgi",
            "--trusted-proxy",
            "127.0.0.1",
            "--trusted-proxy",
            "10.0.0.0/8,::1",
        ];
        let server = SimpleHttp::start(&dir, &args);
        let xff = "X-Forwarded-For: 6.6.6.6, 203.0.113.22, 10.9.9.9\r\n";
        let response = server.get(b"", "/a.txt?xff", xff).unwrap();
        assert_eq!(split(&response), (200, "a\n".into()));
        assert!(server
            .access_line("/a.txt?xff")
            .starts_with("203.0.113.22 - - ["));
        let response = server.get(b"", "/cgi-bin/env.sh", xff).unwrap();
        assert_eq!(split(&response).1, "REMOTE_ADDR=203.0.113.22\n");
        // No PROXY protocol without --proxy-protocol: a header is a bad request line.
        let header = v1("203.0.113.23:4711", "198.51.100.1:80");
        let response = server.get(&header, "/a.txt", "").unwrap();
        assert_eq!(split(&response).0, 400);
    }

    #[test]
    fn simple_http_proxy_protocol_with_trusted_proxies() {
        let dir = served_dir();
        let args = ["--proxy-protocol", "--trusted-proxy", "10.0.0.0/8"];
        let server = SimpleHttp::start(&dir, &args);
        // The list replaces the loopback default: 127.0.0.1 is a client like any other, whose
        // PROXY header is refused and whose plain requests are served.
        let header = v1("203.0.113.24:4711", "198.51.100.1:80");
        assert!(server.get(&header, "/a.txt", "").is_err());
        let response = server.get(b"", "/a.txt?plain", "").unwrap();
        assert_eq!(split(&response), (200, "a\n".into()));
        assert!(server
            .access_line("/a.txt?plain")
            .starts_with("127.0.0.1 - - ["));
    }

    #[test]
    fn simple_http_refuses_a_bad_network() {
        let output = Command::new(BINARY)
            .args(["0", "-b", "127.0.0.1", "--trusted-proxy", "10.0.0.1/8"])
            .output()
            .expect("run simple-http");
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("--trusted-proxy") && stderr.contains("10.0.0.1/8"),
            "{stderr}"
        );
    }
}
