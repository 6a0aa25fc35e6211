//! The server's counters and the `Endpoints` wrapper: answers counted by status class (2xx,
//! 404, a 400 for garbage, a 413 for a body too large), their body bytes against what the
//! client received, the latency histogram's count against the requests; connections open
//! and parked with idle keep-alive clients (parked on the event loop only); requests in
//! flight while a slow handler runs; two servers that keep their own counts and a page that
//! adds them up; the Prometheus page parsed line by line (and checked by `promtool check
//! metrics` of Debian's `prometheus` package, when it is installed); the health check's 200
//! and 405. Each case runs on `EventLoop::new(0)`, `EventLoop::new(4)`, `Threading` and
//! `ThreadPool::new(4, 16)`.
//!
//! The `simple-http` binary (feature `cli`): `--health` and `--metrics` answer without the
//! login of `--auth` and without the headers of `-H`, on the event loop and with
//! `--threading`; a path without `/` is refused.
//!
//! Not here yet: the health check's 503 while a graceful shutdown drains, which needs
//! `ServerHandle::shutdown_gracefully` (being written on another branch); the test is in
//! `draining` below, compiled out until then.

mod common;
#[path = "strategy/mod.rs"]
#[allow(dead_code)]
mod strategy;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use common::{connect, exchange, read_to_eof, wait_until, IO_TIMEOUT};
use socketserver::http::metrics::{self, ServerGroup, BUCKETS, CONTENT_TYPE};
use socketserver::http::{Configured, Endpoints, HttpHandler, HttpRequest, Limits, Version};
use socketserver::{EventLoop, HandlerResult, Server, ServerHandle, TcpTransport, ThreadPool};
use strategy::TestConcurrency;

// ---------------------------------------------------------------------------------------
// Strategies

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Strategy {
    LoopInline,
    LoopWorkers,
    Threads,
    Pool,
}

impl Strategy {
    fn concurrency(self) -> TestConcurrency {
        match self {
            Strategy::LoopInline => TestConcurrency::Loop(EventLoop::new(0).expect("epoll")),
            Strategy::LoopWorkers => TestConcurrency::Loop(EventLoop::new(4).expect("epoll")),
            Strategy::Threads => {
                TestConcurrency::Threads(socketserver::Threading::new().daemon_threads(true))
            }
            Strategy::Pool => TestConcurrency::Pool(ThreadPool::new(4, 16)),
        }
    }

    /// Connections wait parked between requests (on an event loop), not on a thread.
    fn parks(self) -> bool {
        matches!(self, Strategy::LoopInline | Strategy::LoopWorkers)
    }

    /// A slow handler leaves the server free to answer others meanwhile.
    fn serves_beside_a_slow_handler(self) -> bool {
        self != Strategy::LoopInline
    }
}

/// One test per strategy for each case: `case::event_loop_inline` and so on.
macro_rules! on_every_strategy {
    ($($case:ident),+ $(,)?) => {$(
        mod $case {
            use super::Strategy;

            #[test]
            fn event_loop_inline() {
                super::$case(Strategy::LoopInline);
            }

            #[test]
            fn event_loop_workers() {
                super::$case(Strategy::LoopWorkers);
            }

            #[test]
            fn threading() {
                super::$case(Strategy::Threads);
            }

            #[test]
            fn thread_pool() {
                super::$case(Strategy::Pool);
            }
        }
    )+};
}

on_every_strategy!(
    counts_answers_by_class_bytes_and_time,
    counts_each_of_pipelined_answers_sent_together,
    counts_idle_keep_alive_connections_open_and_parked,
    counts_a_request_in_flight_while_its_handler_runs,
    two_servers_keep_their_own_counts,
    the_page_parses_line_by_line,
    health_answers_ok_and_refuses_other_methods,
);

// ---------------------------------------------------------------------------------------
// The server

/// Bodies larger than this get 413.
const MAX_BODY: u64 = 1000;

/// Holds `/slow` until opened.
#[derive(Default)]
struct Gate {
    open: Mutex<bool>,
    opened: Condvar,
    entered: AtomicUsize,
}

impl Gate {
    fn wait(&self) {
        self.entered.fetch_add(1, Ordering::SeqCst);
        let mut open = self.open.lock().unwrap();
        while !*open {
            let (guard, timeout) = self.opened.wait_timeout(open, IO_TIMEOUT).unwrap();
            open = guard;
            assert!(!timeout.timed_out() || *open, "the gate was never opened");
        }
    }

    fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.opened.notify_all();
    }
}

/// `/ok` answers `hello`, `/slow` waits for its gate, `/login` answers 401 unless the
/// request carries `Authorization` (a stand-in for a login the endpoints must pass by),
/// anything else 404.
#[derive(Clone)]
struct App {
    gate: Arc<Gate>,
}

impl HttpHandler for App {
    const PROTOCOL_VERSION: Version = Version::HTTP_11;

    fn may_block(&self, request: &HttpRequest<'_>) -> bool {
        request.url_path() == "/slow"
    }

    fn fallback(&mut self, request: &mut HttpRequest<'_>) -> HandlerResult {
        if request.header("authorization").is_none() {
            return request.send_error(401, "log in first");
        }
        match request.url_path() {
            "/ok" => request.send_text(200, "hello"),
            "/slow" => {
                self.gate.wait();
                request.send_text(200, "slow")
            }
            _ => request.send_error(404, "nothing here"),
        }
    }
}

type Handler = Configured<Endpoints<App>>;

struct Served {
    server: Arc<Server<TcpTransport, Handler, TestConcurrency>>,
    thread: Option<JoinHandle<std::io::Result<()>>>,
    addr: SocketAddr,
    gate: Arc<Gate>,
}

impl Served {
    fn start(strategy: Strategy) -> Served {
        Self::start_in(strategy, ServerGroup::new())
    }

    /// A server whose metrics page adds up the servers of `group` (this one included).
    fn start_in(strategy: Strategy, group: ServerGroup) -> Served {
        let gate = Arc::new(Gate::default());
        let app = App {
            gate: Arc::clone(&gate),
        };
        let endpoints = Endpoints::new(app)
            .health("/healthz")
            .unwrap()
            .metrics("/metrics")
            .unwrap()
            .servers(group.clone());
        let limits = Limits {
            max_body_size: MAX_BODY,
            keep_alive_timeout: Duration::from_secs(60),
            ..Limits::default()
        };
        let handler = Configured::new(endpoints).limits(limits);
        let server = Server::<TcpTransport, _, TestConcurrency>::builder("127.0.0.1:0", handler)
            .concurrency(strategy.concurrency())
            .build()
            .expect("build the server");
        group.add(&server.handle());
        let addr = server.server_address().inet().expect("a TCP address");
        let (server, thread) = common::serve(server);
        Served {
            server,
            thread: Some(thread),
            addr,
            gate,
        }
    }

    fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// `GET path` with `Authorization` on a connection of its own.
    fn get(&self, path: &str) -> Response {
        self.send(&format!(
            "GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: yes\r\nConnection: close\r\n\r\n"
        ))
    }

    fn send(&self, raw: &str) -> Response {
        Response::parse(&exchange(self.addr, raw.as_bytes()))
    }

    /// The figures of this server's metrics page, fetched over HTTP.
    fn page(&self) -> Page {
        let response = self.get("/metrics");
        assert_eq!(response.status, 200, "{response:?}");
        Page::parse(&response.text())
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.gate.open();
        if let Some(thread) = self.thread.take() {
            common::stop(&self.server, thread);
        }
        self.server.server_close();
    }
}

#[derive(Debug)]
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn parse(raw: &[u8]) -> Response {
        let end = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or_else(|| panic!("no head in {:?}", String::from_utf8_lossy(raw)));
        let head = String::from_utf8_lossy(&raw[..end]).into_owned();
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|line| line.split(' ').nth(1))
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("no status in {head:?}"));
        let headers = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_string()))
            .collect();
        Response {
            status,
            headers,
            body: raw[end + 4..].to_vec(),
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8(self.body.clone()).expect("a UTF-8 body")
    }
}

/// Reads one response of a kept-alive connection: its head and `Content-Length` bytes.
fn read_response(stream: &mut TcpStream) -> Response {
    let mut raw = Vec::new();
    let mut byte = [0u8; 1];
    while !raw.ends_with(b"\r\n\r\n") {
        assert_eq!(
            stream.read(&mut byte).expect("read a head"),
            1,
            "closed early"
        );
        raw.push(byte[0]);
    }
    let mut response = Response::parse(&raw);
    let length: usize = response
        .header("content-length")
        .expect("a Content-Length")
        .parse()
        .unwrap();
    let mut body = vec![0; length];
    stream.read_exact(&mut body).expect("read a body");
    response.body = body;
    response
}

// ---------------------------------------------------------------------------------------
// The page

/// A metrics page parsed, and checked as it is parsed: every line is a `# HELP`, a
/// `# TYPE` or a sample `name{labels} value`; a family's HELP and TYPE come before its
/// samples, once each; a histogram's buckets rise to `+Inf`, which equals its `_count`.
#[derive(Debug, Default)]
struct Page {
    /// `name{labels}` (labels as written) to value.
    samples: HashMap<String, f64>,
    types: HashMap<String, String>,
    /// Sample names in order, with their `le` if any.
    order: Vec<(String, Option<String>)>,
}

impl Page {
    fn parse(text: &str) -> Page {
        let mut page = Page::default();
        let mut helped = Vec::<String>::new();
        let mut seen_samples_of = Vec::<String>::new();
        assert!(text.ends_with('\n'), "the page ends with a line end");
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, help) = rest.split_once(' ').expect("HELP name text");
                assert!(valid_name(name), "{line}");
                assert!(!help.is_empty(), "{line}");
                assert!(!helped.contains(&name.to_string()), "HELP twice: {line}");
                assert!(
                    !seen_samples_of.contains(&name.to_string()),
                    "HELP late: {line}"
                );
                helped.push(name.to_string());
                continue;
            }
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("TYPE name type");
                assert!(valid_name(name), "{line}");
                assert!(
                    ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                    "{line}"
                );
                assert!(
                    page.types.insert(name.into(), kind.into()).is_none(),
                    "{line}"
                );
                assert!(
                    !seen_samples_of.contains(&name.to_string()),
                    "TYPE late: {line}"
                );
                continue;
            }
            assert!(
                !line.starts_with('#'),
                "a comment other than HELP and TYPE: {line}"
            );
            let (series, value) = line.rsplit_once(' ').expect("name value");
            let value: f64 = match value {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                v => v.parse().unwrap_or_else(|_| panic!("not a number: {line}")),
            };
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => {
                    let labels = rest.strip_suffix('}').expect("labels end with }");
                    (name, parse_labels(labels, line))
                }
                None => (series, Vec::new()),
            };
            assert!(valid_name(name), "{line}");
            let family = family_of(name, &page.types);
            assert!(page.types.contains_key(&family), "no TYPE before {line}");
            assert!(helped.contains(&family), "no HELP before {line}");
            if !seen_samples_of.contains(&family) {
                seen_samples_of.push(family);
            }
            let le = labels
                .iter()
                .find(|(k, _)| k == "le")
                .map(|(_, v)| v.clone());
            page.order.push((name.to_string(), le));
            assert!(
                page.samples.insert(series.to_string(), value).is_none(),
                "a series twice: {line}"
            );
        }
        page.check_histograms();
        page
    }

    fn check_histograms(&self) {
        for (family, kind) in &self.types {
            if kind != "histogram" {
                continue;
            }
            let bucket = format!("{family}_bucket");
            let bounds: Vec<&str> = self
                .order
                .iter()
                .filter(|(name, _)| *name == bucket)
                .map(|(_, le)| le.as_deref().expect("a bucket has le"))
                .collect();
            assert_eq!(bounds.last(), Some(&"+Inf"), "{family} ends with +Inf");
            let mut last_bound = f64::NEG_INFINITY;
            let mut last_count = 0.0;
            for le in &bounds {
                let bound: f64 = if *le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().unwrap()
                };
                assert!(bound > last_bound, "{family}: bounds rise ({le})");
                let count = self.samples[&format!("{bucket}{{le=\"{le}\"}}")];
                assert!(
                    count >= last_count,
                    "{family}: buckets are cumulative ({le})"
                );
                last_bound = bound;
                last_count = count;
            }
            assert_eq!(
                last_count,
                self.value(&format!("{family}_count")),
                "{family}"
            );
            assert!(
                self.samples.contains_key(&format!("{family}_sum")),
                "{family}"
            );
        }
    }

    fn value(&self, series: &str) -> f64 {
        *self
            .samples
            .get(series)
            .unwrap_or_else(|| panic!("no {series} on the page"))
    }

    fn class(&self, class: &str) -> f64 {
        self.value(&format!("simple_http_requests_total{{class=\"{class}\"}}"))
    }
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// `k="v",k2="v2"`, with no escapes (the page has none).
fn parse_labels(labels: &str, line: &str) -> Vec<(String, String)> {
    labels
        .split(',')
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or_else(|| panic!("{line}"));
            assert!(valid_name(key), "label name: {line}");
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or_else(|| panic!("label value quoted: {line}"));
            assert!(!value.contains(['"', '\\', '\n']), "{line}");
            (key.to_string(), value.to_string())
        })
        .collect()
}

/// The family a sample belongs to: a histogram's `_bucket`, `_sum` and `_count` are its.
fn family_of(name: &str, types: &HashMap<String, String>) -> String {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix) {
            if types.get(base).is_some_and(|t| t == "histogram") {
                return base.to_string();
            }
        }
    }
    name.to_string()
}

/// `promtool check metrics` of the page, if promtool is installed (Debian: `prometheus`).
fn promtool_check(page: &str) -> Option<String> {
    let mut child = match Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return None,
        Err(err) => panic!("cannot run promtool: {err}"),
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(page.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "promtool check metrics: {said}\n{page}"
    );
    Some(said)
}

// ---------------------------------------------------------------------------------------
// The cases

fn counts_answers_by_class_bytes_and_time(strategy: Strategy) {
    let served = Served::start(strategy);
    let mut body_bytes = 0;
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let response = served.get("/ok");
        assert_eq!(response.text(), "hello");
        statuses.push(response.status);
        body_bytes += response.body.len();
    }
    let head = served
        .send("HEAD /ok HTTP/1.1\r\nHost: x\r\nAuthorization: yes\r\nConnection: close\r\n\r\n");
    assert!(head.body.is_empty(), "{head:?}");
    statuses.push(head.status);
    let missing = served.get("/missing");
    statuses.push(missing.status);
    body_bytes += missing.body.len();
    let garbage = served.send("garbage\r\n\r\n");
    statuses.push(garbage.status);
    body_bytes += garbage.body.len();
    let too_large = served.send(&format!(
        "POST /ok HTTP/1.1\r\nHost: x\r\nAuthorization: yes\r\nContent-Length: {}\r\n\r\n",
        MAX_BODY + 1
    ));
    statuses.push(too_large.status);
    body_bytes += too_large.body.len();
    assert_eq!(statuses, [200, 200, 200, 200, 404, 400, 413]);

    // An answer is counted once it is made; its client may have read it a moment before.
    let stats = served.handle();
    wait_until("7 answers counted", || {
        stats.stats().http().snapshot().requests() == 7
    });
    let http = stats.stats().http().snapshot();
    assert_eq!(http.requests_by_class, [0, 4, 0, 3, 0], "{http:?}");
    assert_eq!(http.response_bytes, body_bytes as u64, "{http:?}");
    assert_eq!(http.duration_buckets.iter().sum::<u64>(), 7);
    assert!(http.duration_sum > Duration::ZERO, "{http:?}");
    // The page says the same (it does not count itself).
    let page = served.page();
    assert_eq!(page.class("2xx"), 4.0);
    assert_eq!(page.class("4xx"), 3.0);
    assert_eq!(
        page.class("1xx") + page.class("3xx") + page.class("5xx"),
        0.0
    );
    assert_eq!(
        page.value("simple_http_response_bytes_total"),
        body_bytes as f64
    );
    assert_eq!(
        page.value("simple_http_request_duration_seconds_count"),
        7.0
    );
    let sum = page.value("simple_http_request_duration_seconds_sum");
    assert!(
        (sum - http.duration_sum.as_secs_f64()).abs() < 1e-6,
        "{sum} {http:?}"
    );
    // Now the page was counted too: one more 2xx.
    wait_until("the page counted", || {
        stats.stats().http().snapshot().requests_by_class[1] == 5
    });
}

/// Answers to pipelined requests leave together, and are counted together: each of them,
/// the last one's rejection included, with its own class and bytes.
fn counts_each_of_pipelined_answers_sent_together(strategy: Strategy) {
    let served = Served::start(strategy);
    let request =
        |path: &str| format!("GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: yes\r\n\r\n");
    let batch = [
        request("/ok"),
        request("/ok"),
        request("/missing"),
        request("/ok"),
        // Malformed: answered with 400, and the connection closes.
        "GET /ok HTTP/1.1\r\nHost: x\r\nBad header\r\n\r\n".to_string(),
    ]
    .concat();
    let mut client = connect(served.addr);
    client.write_all(batch.as_bytes()).unwrap();
    let responses: Vec<Response> = (0..5).map(|_| read_response(&mut client)).collect();
    let statuses: Vec<u16> = responses.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 200, 404, 200, 400]);
    let body_bytes: usize = responses.iter().map(|r| r.body.len()).sum();

    let handle = served.handle();
    wait_until("5 answers counted", || {
        handle.stats().http().snapshot().requests() == 5
    });
    let http = handle.stats().http().snapshot();
    assert_eq!(http.requests_by_class, [0, 3, 0, 2, 0], "{http:?}");
    assert_eq!(http.response_bytes, body_bytes as u64, "{http:?}");
    assert_eq!(handle.stats().requests_in_flight(), 0);
}

fn counts_idle_keep_alive_connections_open_and_parked(strategy: Strategy) {
    // Fewer than the pool's workers: a connection queued for one would not be open yet.
    const CLIENTS: usize = 3;
    let served = Served::start(strategy);
    let handle = served.handle();
    assert_eq!(handle.stats().connections_open(), 0);
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let mut client = connect(served.addr);
        client
            .write_all(b"GET /ok HTTP/1.1\r\nHost: x\r\nAuthorization: yes\r\n\r\n")
            .unwrap();
        let response = read_response(&mut client);
        assert_eq!((response.status, response.text().as_str()), (200, "hello"));
        clients.push(client);
    }
    let parked = if strategy.parks() { CLIENTS as u64 } else { 0 };
    // A request is in flight until its answer is complete, a moment after the client has it.
    wait_until("the idle connections counted", || {
        let stats = handle.stats();
        stats.connections_open() == CLIENTS as u64
            && stats.connections_parked() == parked
            && stats.requests_in_flight() == 0
    });
    // The page's own connection is open, and running, not parked.
    let page = served.page();
    assert_eq!(
        page.value("simple_http_connections_open"),
        (CLIENTS + 1) as f64
    );
    assert_eq!(page.value("simple_http_connections_parked"), parked as f64);
    assert_eq!(page.value("simple_http_requests_in_flight"), 1.0);

    drop(clients);
    wait_until("the closed connections counted out", || {
        let stats = handle.stats();
        stats.connections_open() == 0 && stats.connections_parked() == 0
    });
}

fn counts_a_request_in_flight_while_its_handler_runs(strategy: Strategy) {
    let served = Served::start(strategy);
    let handle = served.handle();
    let addr = served.addr;
    let client = thread::spawn(move || {
        exchange(
            addr,
            b"GET /slow HTTP/1.1\r\nHost: x\r\nAuthorization: yes\r\nConnection: close\r\n\r\n",
        )
    });
    wait_until("the slow handler to run", || {
        served.gate.entered.load(Ordering::SeqCst) == 1
    });
    assert_eq!(handle.stats().requests_in_flight(), 1);
    assert_eq!(handle.stats().connections_open(), 1);
    assert_eq!(handle.stats().connections_parked(), 0);
    if strategy.serves_beside_a_slow_handler() {
        // The slow request and the page's own.
        let page = served.page();
        assert_eq!(page.value("simple_http_requests_in_flight"), 2.0);
        assert_eq!(page.value("simple_http_connections_open"), 2.0);
    }
    served.gate.open();
    let response = Response::parse(&common::join_within(client, IO_TIMEOUT));
    assert_eq!((response.status, response.text().as_str()), (200, "slow"));
    wait_until("the request counted out", || {
        handle.stats().requests_in_flight() == 0 && handle.stats().connections_open() == 0
    });
}

fn two_servers_keep_their_own_counts(strategy: Strategy) {
    let group = ServerGroup::new();
    let a = Served::start_in(strategy, group.clone());
    let b = Served::start_in(strategy, group.clone());
    for _ in 0..2 {
        assert_eq!(a.get("/ok").status, 200);
    }
    assert_eq!(b.get("/missing").status, 404);
    wait_until("the answers counted", || {
        a.handle().stats().http().snapshot().requests() == 2
            && b.handle().stats().http().snapshot().requests() == 1
    });
    assert_eq!(
        a.handle().stats().http().snapshot().requests_by_class,
        [0, 2, 0, 0, 0]
    );
    assert_eq!(
        b.handle().stats().http().snapshot().requests_by_class,
        [0, 0, 0, 1, 0]
    );
    // Each page adds up the group, whichever server serves it (a page is counted by the
    // server that served it, once it is made).
    let page = a.page();
    assert_eq!((page.class("2xx"), page.class("4xx")), (2.0, 1.0));
    wait_until("a's page counted", || {
        a.handle().stats().http().snapshot().requests() == 3
    });
    let page = b.page();
    assert_eq!((page.class("2xx"), page.class("4xx")), (3.0, 1.0));
    // Rendered for one server alone, only its own.
    wait_until("the pages counted", || {
        a.handle().stats().http().snapshot().requests() == 3
            && b.handle().stats().http().snapshot().requests() == 2
    });
    let alone = Page::parse(&metrics::render(&[b.handle()]));
    assert_eq!(alone.class("2xx"), 1.0);
    assert_eq!(alone.class("4xx"), 1.0);
    let both = Page::parse(&metrics::render(&[a.handle(), b.handle()]));
    assert_eq!(
        both.value("simple_http_request_duration_seconds_count"),
        5.0
    );
}

fn the_page_parses_line_by_line(strategy: Strategy) {
    let served = Served::start(strategy);
    for path in ["/ok", "/missing", "/ok"] {
        served.get(path);
    }
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut response = agent
        .get(&format!("http://{}/metrics", served.addr))
        .call()
        .expect("GET /metrics");
    assert_eq!(response.status(), 200);
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    assert_eq!(header("content-type").as_deref(), Some(CONTENT_TYPE));
    assert_eq!(header("cache-control").as_deref(), Some("no-store"));
    let text = response.body_mut().read_to_string().unwrap();
    let page = Page::parse(&text);
    let expected = [
        ("simple_http_requests_total", "counter"),
        ("simple_http_response_bytes_total", "counter"),
        ("simple_http_request_duration_seconds", "histogram"),
        ("simple_http_connections_open", "gauge"),
        ("simple_http_connections_parked", "gauge"),
        ("simple_http_requests_in_flight", "gauge"),
        ("process_resident_memory_bytes", "gauge"),
        ("process_open_fds", "gauge"),
        ("process_cpu_seconds_total", "counter"),
    ];
    for (name, kind) in expected {
        assert_eq!(
            page.types.get(name).map(String::as_str),
            Some(kind),
            "{name}"
        );
    }
    let buckets = page
        .order
        .iter()
        .filter(|(name, _)| name == "simple_http_request_duration_seconds_bucket")
        .count();
    assert_eq!(buckets, BUCKETS.len() + 1);
    assert!(page.value("process_resident_memory_bytes") > 1e6);
    assert!(page.value("process_open_fds") >= 3.0);
    assert!(page.value("process_cpu_seconds_total") >= 0.0);
    if let Some(said) = promtool_check(&text) {
        assert!(!said.contains("error"), "{said}");
    }
}

fn health_answers_ok_and_refuses_other_methods(strategy: Strategy) {
    let served = Served::start(strategy);
    // No Authorization: the endpoints never reach the application.
    for target in ["/healthz", "/healthz?from=balancer"] {
        let response = served.send(&format!(
            "GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        ));
        assert_eq!(response.status, 200, "{response:?}");
        assert_eq!(response.text(), "ok\n");
        assert_eq!(response.header("cache-control"), Some("no-store"));
        assert_eq!(
            response.header("content-type"),
            Some("text/plain; charset=utf-8")
        );
    }
    let head = served.send("HEAD /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!((head.status, head.body.len()), (200, 0), "{head:?}");
    assert_eq!(head.header("content-length"), Some("3"));
    for target in ["/healthz", "/metrics"] {
        let response = served.send(&format!(
            "POST {target} HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi"
        ));
        assert_eq!(response.status, 405, "{response:?}");
        assert_eq!(response.header("allow"), Some("GET, HEAD"));
        assert_eq!(response.header("cache-control"), Some("no-store"));
    }
    // With `Expect: 100-continue` the refusal comes before the body is asked for.
    let mut client = connect(served.addr);
    client
        .write_all(
            b"PUT /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
        )
        .unwrap();
    let raw = read_to_eof(&mut client);
    let response = Response::parse(&raw);
    assert_eq!(response.status, 405, "{response:?}");
    // The application itself still wants its login, and gets its requests.
    assert_eq!(
        served
            .send("GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .status,
        401
    );
    assert_eq!(served.get("/ok").status, 200);
}

/// The health check while a graceful shutdown drains.
mod draining {
    use super::*;

    fn health_answers_503_while_draining(strategy: Strategy) {
        let served = Served::start(strategy);
        let handle = served.handle();
        let addr = served.addr;
        // A request begun and not finished keeps the server draining while the health
        // check asks (a slow handler would block the only thread of an inline loop).
        let mut begun = connect(addr);
        begun.write_all(b"GET /ok HTTP/1.1\r\nHost: x\r\n").unwrap();
        let mut keep_alive = connect(addr);
        keep_alive
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        assert_eq!(read_response(&mut keep_alive).status, 200);
        let shutting = thread::spawn(move || handle.shutdown_gracefully(IO_TIMEOUT));
        wait_until("draining", || served.handle().is_draining());
        keep_alive
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let response = read_response(&mut keep_alive);
        assert_eq!(
            (response.status, response.text().as_str()),
            (503, "draining\n")
        );
        // The request in flight is still answered, and then the drain is over.
        begun.write_all(b"Authorization: yes\r\n\r\n").unwrap();
        assert_eq!(read_response(&mut begun).status, 200);
        common::join_within(shutting, IO_TIMEOUT);
    }

    on_every_strategy!(health_answers_503_while_draining);
}

// ---------------------------------------------------------------------------------------
// simple-http

#[cfg(feature = "cli")]
mod binary {
    use std::io::{BufRead, BufReader};
    use std::process::{Child, Command, Stdio};

    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;

    use super::common::{exchange, TempDir};
    use super::{Page, Response};

    const BINARY: &str = env!("CARGO_BIN_EXE_simple-http");

    struct Running {
        child: Child,
        addr: std::net::SocketAddr,
    }

    impl Running {
        fn start(dir: &TempDir, args: &[&str]) -> Running {
            let child = Command::new(BINARY)
                .args(["0", "-b", "127.0.0.1"])
                .args(args)
                .current_dir(dir.path())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("start simple-http");
            // Owned by `Running` from here, so that a failed assertion still stops it.
            let mut running = Running {
                child,
                addr: ([127, 0, 0, 1], 0).into(),
            };
            let mut stdout = BufReader::new(running.child.stdout.take().unwrap());
            let mut line = String::new();
            loop {
                line.clear();
                let read = stdout.read_line(&mut line).unwrap();
                assert!(read > 0, "simple-http {args:?} printed no banner");
                if let Some(rest) = line.strip_prefix("Serving HTTP on 127.0.0.1 port ") {
                    running
                        .addr
                        .set_port(rest.split(' ').next().unwrap().parse().unwrap());
                    return running;
                }
            }
        }

        fn get(&self, path: &str, extra: &str) -> Response {
            let request = format!("GET {path} HTTP/1.0\r\nHost: x\r\n{extra}\r\n");
            Response::parse(&exchange(self.addr, request.as_bytes()))
        }
    }

    impl Drop for Running {
        fn drop(&mut self) {
            let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
            let _ = self.child.wait();
        }
    }

    fn endpoints_answer_without_the_login(mode: &[&str]) {
        let dir = TempDir::new();
        dir.write("a.txt", "a file\n");
        let mut args = vec![
            "--auth",
            "ann:secret",
            "-H",
            "X-Site: yes",
            "--health",
            "/healthz",
            "--metrics",
            "/metrics",
        ];
        args.extend_from_slice(mode);
        let running = Running::start(&dir, &args);
        let refused = running.get("/a.txt", "");
        assert_eq!(refused.status, 401, "{refused:?}");
        assert_eq!(refused.header("x-site"), Some("yes"));
        // ann:secret
        let file = running.get("/a.txt", "Authorization: Basic YW5uOnNlY3JldA==\r\n");
        assert_eq!((file.status, file.text().as_str()), (200, "a file\n"));
        let health = running.get("/healthz", "");
        assert_eq!((health.status, health.text().as_str()), (200, "ok\n"));
        assert_eq!(health.header("x-site"), None, "the site's headers stay off");
        assert_eq!(health.header("cache-control"), Some("no-store"));
        // The answers are counted once made: the health check's may follow the page.
        let mut page = Page::default();
        super::wait_until("the three answers on the page", || {
            let response = running.get("/metrics", "");
            assert_eq!(response.status, 200, "{response:?}");
            assert_eq!(response.header("content-type"), Some(super::CONTENT_TYPE));
            page = Page::parse(&response.text());
            // In flight: the page's own request, once the others are complete.
            page.class("2xx") >= 2.0
                && page.class("4xx") >= 1.0
                && page.value("simple_http_requests_in_flight") == 1.0
        });
        assert_eq!(page.class("4xx"), 1.0);
        assert!(page.value("simple_http_response_bytes_total") >= 10.0);
        assert!(page.value("process_open_fds") >= 3.0);
    }

    #[test]
    fn endpoints_answer_without_the_login_on_the_event_loop() {
        endpoints_answer_without_the_login(&[]);
    }

    #[test]
    fn endpoints_answer_without_the_login_with_threading() {
        endpoints_answer_without_the_login(&["--threading"]);
    }

    #[test]
    fn an_endpoint_path_without_a_slash_is_refused() {
        let dir = TempDir::new();
        for flag in ["--health", "--metrics"] {
            let output = Command::new(BINARY)
                .args(["0", "-b", "127.0.0.1", flag, "healthz"])
                .current_dir(dir.path())
                .output()
                .expect("run simple-http");
            assert!(!output.status.success(), "{flag}");
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(
                stderr.contains("does not begin with '/'"),
                "{flag}: {stderr}"
            );
        }
        let output = Command::new(BINARY)
            .args(["0", "-b", "127.0.0.1", "--health", "/x", "--metrics", "/x"])
            .current_dir(dir.path())
            .output()
            .expect("run simple-http");
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("must differ"), "{stderr}");
    }
}
