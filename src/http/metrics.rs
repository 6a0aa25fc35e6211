//! Metrics of HTTP servers, for Prometheus: the answers by status class, their body bytes,
//! a histogram of the time they took, the connections and requests of the moment, and a
//! few figures of the process, in the [text exposition format] 0.0.4.
//!
//! Every server counts on its own, as it works (see [`ServerHandle::stats`]): the figures
//! are atomics, and recording an answer takes no lock and allocates nothing. A page sums
//! the servers it is given, so that a process with several (one per event loop) reports
//! one set:
//!
//! ```no_run
//! use socketserver::files::SimpleHttpHandler;
//! use socketserver::http::metrics::{self, ServerGroup};
//! use socketserver::http::{Endpoints, HttpServer};
//!
//! let group = ServerGroup::new();
//! let files = SimpleHttpHandler::new("www")?;
//! let handler = Endpoints::new(files)
//!     .health("/healthz")?
//!     .metrics("/metrics")?
//!     .servers(group.clone());
//! let server = HttpServer::bind("127.0.0.1:8000", handler)?;
//! group.add(&server.handle());
//! println!("{}", metrics::render(&[server.handle()]));
//! server.serve_forever()?;
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! Names and meanings:
//!
//! | metric | type | what |
//! |---|---|---|
//! | `simple_http_requests_total{class="2xx"}` | counter | answers by status class, `1xx` to `5xx` |
//! | `simple_http_response_bytes_total` | counter | body bytes of the answers |
//! | `simple_http_request_duration_seconds` | histogram | from the request's head to its answer made |
//! | `simple_http_connections_open` | gauge | connections taken and not closed |
//! | `simple_http_connections_parked` | gauge | connections parked in an event loop |
//! | `simple_http_requests_in_flight` | gauge | requests being answered |
//! | `process_resident_memory_bytes` | gauge | resident memory (`VmRSS`) |
//! | `process_open_fds` | gauge | open descriptors |
//! | `process_cpu_seconds_total` | counter | user and system CPU time |
//!
//! An answer is counted once it is made and handed to the socket, when the access line of
//! the log is (a rejected request's 400, 408, 413 ... too), with the body bytes written
//! for it: on an event loop its last bytes may still be on their way, and a client that
//! goes away meanwhile gets less. The answers to pipelined requests, which leave in one
//! write, are counted together as it is made. A page does not count itself (it is made before its own answer is), but is one of
//! the requests in flight.
//!
//! [text exposition format]: https://prometheus.io/docs/instrumenting/exposition_formats/

use std::fmt::Write;
use std::fs;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use http::StatusCode;

use crate::server::ServerHandle;

/// The content type of a metrics page: the text format, version 0.0.4.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Upper bounds of the latency histogram's buckets, in seconds (Prometheus's defaults, and
/// three below 5 ms for answers made from memory); `+Inf` follows.
pub const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// [`BUCKETS`] in nanoseconds, for comparing without floating point.
const BOUNDS_NANOS: [u64; 14] = [
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];

/// Status classes: `1xx` to `5xx`.
pub const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// The answers of one server: by status class, body bytes, and a latency histogram.
/// Atomics only; [`record`](HttpMetrics::record) takes no lock and allocates nothing.
#[derive(Debug, Default)]
pub struct HttpMetrics {
    classes: [AtomicU64; 5],
    response_bytes: AtomicU64,
    /// Per bucket, not cumulative: the last is above the last bound (`+Inf`).
    buckets: [AtomicU64; 15],
    sum_nanos: AtomicU64,
}

impl HttpMetrics {
    /// Counts one answer: its status, the body bytes sent with it, and the time it took.
    /// A status outside 100..=599 is not counted.
    pub fn record(&self, status: StatusCode, body_bytes: u64, took: Duration) {
        let Some(answer) = Answer::of(status, took) else {
            return;
        };
        self.classes[answer.class].fetch_add(1, Relaxed);
        self.response_bytes.fetch_add(body_bytes, Relaxed);
        self.buckets[answer.bucket].fetch_add(1, Relaxed);
        self.sum_nanos.fetch_add(answer.nanos, Relaxed);
    }

    /// The figures, read now.
    pub fn snapshot(&self) -> HttpSnapshot {
        HttpSnapshot {
            requests_by_class: self.classes.each_ref().map(|c| c.load(Relaxed)),
            response_bytes: self.response_bytes.load(Relaxed),
            duration_buckets: self.buckets.each_ref().map(|b| b.load(Relaxed)),
            duration_sum: Duration::from_nanos(self.sum_nanos.load(Relaxed)),
        }
    }
}

/// Where one answer is counted: its status class and latency bucket.
struct Answer {
    class: usize,
    bucket: usize,
    nanos: u64,
}

impl Answer {
    /// `None` for a status outside 100..=599, which is not counted.
    fn of(status: StatusCode, took: Duration) -> Option<Answer> {
        let class = usize::from((status.as_u16() / 100).checked_sub(1)?);
        if class >= CLASSES.len() {
            return None;
        }
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        let bucket = BOUNDS_NANOS.partition_point(|&bound| bound < nanos);
        Some(Answer {
            class,
            bucket,
            nanos,
        })
    }
}

/// The answers of one connection counted and not yet added to its server's
/// [`HttpMetrics`]: the answers to a pipelined batch leave in one write, and are added in
/// one go just before it ([`add_to`](Tally::add_to)), a few atomic additions for the batch
/// instead of four per answer.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    answers: u64,
    classes: [u64; 5],
    response_bytes: u64,
    buckets: [u64; 15],
    sum_nanos: u64,
}

impl Tally {
    /// Counts one answer, as [`HttpMetrics::record`] does.
    pub(crate) fn record(&mut self, status: StatusCode, body_bytes: u64, took: Duration) {
        let Some(answer) = Answer::of(status, took) else {
            return;
        };
        self.answers += 1;
        self.classes[answer.class] += 1;
        self.response_bytes += body_bytes;
        self.buckets[answer.bucket] += 1;
        self.sum_nanos = self.sum_nanos.saturating_add(answer.nanos);
    }

    /// Adds what was counted to `metrics`, and starts again from nothing.
    pub(crate) fn add_to(&mut self, metrics: &HttpMetrics) {
        if self.answers == 0 {
            return;
        }
        let add = |counter: &AtomicU64, n: u64| {
            if n > 0 {
                counter.fetch_add(n, Relaxed);
            }
        };
        for (counter, n) in metrics.classes.iter().zip(self.classes) {
            add(counter, n);
        }
        add(&metrics.response_bytes, self.response_bytes);
        for (counter, n) in metrics.buckets.iter().zip(self.buckets) {
            add(counter, n);
        }
        add(&metrics.sum_nanos, self.sum_nanos);
        *self = Tally::default();
    }
}

/// The figures of [`HttpMetrics`] at one moment.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HttpSnapshot {
    /// Answers of each class, `1xx` to `5xx` ([`CLASSES`]).
    pub requests_by_class: [u64; 5],
    /// Body bytes of the answers.
    pub response_bytes: u64,
    /// Answers per bucket of [`BUCKETS`], the last one above them all; not cumulative.
    pub duration_buckets: [u64; 15],
    /// The time all the answers took.
    pub duration_sum: Duration,
}

impl HttpSnapshot {
    /// Answers counted: the histogram's `_count`, the classes' sum.
    pub fn requests(&self) -> u64 {
        self.duration_buckets.iter().sum()
    }

    /// Adds `other` in.
    pub fn merge(&mut self, other: &HttpSnapshot) {
        for (a, b) in self
            .requests_by_class
            .iter_mut()
            .zip(other.requests_by_class)
        {
            *a += b;
        }
        self.response_bytes += other.response_bytes;
        for (a, b) in self.duration_buckets.iter_mut().zip(other.duration_buckets) {
            *a += b;
        }
        self.duration_sum += other.duration_sum;
    }
}

/// The servers a metrics page reports on: every server of the process, for one set of
/// figures however many loops serve. Cloning shares the group; add each server's handle
/// once it is built.
#[derive(Clone, Debug, Default)]
pub struct ServerGroup(Arc<RwLock<Vec<ServerHandle>>>);

impl ServerGroup {
    /// An empty group.
    pub fn new() -> Self {
        ServerGroup::default()
    }

    /// Adds a server (once: a handle already in the group is not added again).
    pub fn add(&self, server: &ServerHandle) {
        let mut servers = self.0.write().unwrap_or_else(PoisonError::into_inner);
        if !servers.iter().any(|s| same_server(s, server)) {
            servers.push(server.clone());
        }
    }

    /// The servers of the group, and `also` if it is not one of them: what a page
    /// served by `also` reports on.
    pub fn with(&self, also: &ServerHandle) -> Vec<ServerHandle> {
        let mut servers = self
            .0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if !servers.iter().any(|s| same_server(s, also)) {
            servers.push(also.clone());
        }
        servers
    }
}

fn same_server(a: &ServerHandle, b: &ServerHandle) -> bool {
    Arc::ptr_eq(&a.0, &b.0)
}

/// The metrics page of `servers`, their figures added up, and of the process.
pub fn render(servers: &[ServerHandle]) -> String {
    let mut page = String::with_capacity(4096);
    render_into(servers, &mut page);
    page
}

/// [`render`], appended to `page`.
pub fn render_into(servers: &[ServerHandle], page: &mut String) {
    let mut total = None;
    for server in servers {
        let snapshot = server.stats().snapshot();
        match &mut total {
            None => total = Some(snapshot),
            Some(total) => total.merge(&snapshot),
        }
    }
    let total = total.unwrap_or_default();
    let http = &total.http;

    family(
        page,
        "simple_http_requests_total",
        "counter",
        "HTTP answers, by status class.",
    );
    for (class, count) in CLASSES.iter().zip(http.requests_by_class) {
        let _ = writeln!(
            page,
            "simple_http_requests_total{{class=\"{class}\"}} {count}"
        );
    }
    family(
        page,
        "simple_http_response_bytes_total",
        "counter",
        "Body bytes of the HTTP answers.",
    );
    let _ = writeln!(
        page,
        "simple_http_response_bytes_total {}",
        http.response_bytes
    );

    let name = "simple_http_request_duration_seconds";
    family(
        page,
        name,
        "histogram",
        "Time from a request's head to its answer, in seconds.",
    );
    let mut cumulative = 0;
    for (bound, count) in BUCKETS.iter().zip(http.duration_buckets) {
        cumulative += count;
        let _ = writeln!(page, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
    }
    cumulative += http.duration_buckets[BUCKETS.len()];
    let _ = writeln!(page, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
    let _ = writeln!(page, "{name}_sum {}", http.duration_sum.as_secs_f64());
    let _ = writeln!(page, "{name}_count {cumulative}");

    let gauges = [
        (
            "simple_http_connections_open",
            "Connections taken and not closed yet.",
            total.connections_open,
        ),
        (
            "simple_http_connections_parked",
            "Connections parked in an event loop between requests.",
            total.connections_parked,
        ),
        (
            "simple_http_requests_in_flight",
            "HTTP requests being answered.",
            total.requests_in_flight,
        ),
    ];
    for (name, help, value) in gauges {
        family(page, name, "gauge", help);
        let _ = writeln!(page, "{name} {value}");
    }
    process_metrics(page);
}

/// `# HELP` and `# TYPE` of a family.
fn family(page: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(page, "# HELP {name} {help}");
    let _ = writeln!(page, "# TYPE {name} {kind}");
}

/// What `/proc/self` tells cheaply: resident memory, open descriptors, CPU time. A figure
/// that cannot be read is left out.
fn process_metrics(page: &mut String) {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    let rss_kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        });
    if let Some(kib) = rss_kib {
        let name = "process_resident_memory_bytes";
        family(page, name, "gauge", "Resident memory size in bytes.");
        let _ = writeln!(page, "{name} {}", kib * 1024);
    }
    if let Ok(entries) = fs::read_dir("/proc/self/fd") {
        // Less the descriptor that lists them.
        let open = entries.count().saturating_sub(1);
        let name = "process_open_fds";
        family(page, name, "gauge", "Number of open file descriptors.");
        let _ = writeln!(page, "{name} {open}");
    }
    if let Some(seconds) = cpu_seconds() {
        let name = "process_cpu_seconds_total";
        family(
            page,
            name,
            "counter",
            "Total user and system CPU time spent in seconds.",
        );
        let _ = writeln!(page, "{name} {seconds}");
    }
}

/// utime + stime of `/proc/self/stat` (fields 14 and 15, counted from the end of the
/// command name, which may hold spaces), in seconds.
fn cpu_seconds() -> Option<f64> {
    let stat = fs::read_to_string("/proc/self/stat").ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / clock_ticks() as f64)
}

/// The kernel's clock ticks per second for `/proc` times (`sysconf(_SC_CLK_TCK)`), from
/// the auxiliary vector (`AT_CLKTCK`); 100, the value on every Linux, if it cannot be read.
fn clock_ticks() -> u64 {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        const AT_CLKTCK: usize = 17;
        const WORD: usize = std::mem::size_of::<usize>();
        let word = |b: &[u8]| usize::from_ne_bytes(b.try_into().expect("a word"));
        let auxv = fs::read("/proc/self/auxv").unwrap_or_default();
        auxv.chunks_exact(2 * WORD)
            .map(|pair| (word(&pair[..WORD]), word(&pair[WORD..])))
            .find(|&(key, _)| key == AT_CLKTCK)
            .map(|(_, value)| value as u64)
            .filter(|&ticks| ticks > 0)
            .unwrap_or(100)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_holds_what_is_up_to_its_bound() {
        let metrics = HttpMetrics::default();
        let ms = Duration::from_micros;
        for took in [ms(0), ms(500), ms(501), ms(1000), Duration::from_secs(11)] {
            metrics.record(StatusCode::OK, 10, took);
        }
        let snapshot = metrics.snapshot();
        assert_eq!(&snapshot.duration_buckets[..3], &[2, 2, 0]);
        assert_eq!(snapshot.duration_buckets[BUCKETS.len()], 1);
        assert_eq!(snapshot.requests(), 5);
        assert_eq!(snapshot.response_bytes, 50);
        assert_eq!(snapshot.duration_sum, ms(2001) + Duration::from_secs(11));
    }

    #[test]
    fn counts_classes_and_skips_statuses_outside_them() {
        let metrics = HttpMetrics::default();
        for code in [100, 101, 204, 304, 404, 413, 503, 599, 600, 999] {
            let status = StatusCode::from_u16(code).unwrap();
            metrics.record(status, 1, Duration::ZERO);
        }
        let snapshot = metrics.snapshot();
        assert_eq!(snapshot.requests_by_class, [2, 1, 1, 2, 2]);
        assert_eq!(snapshot.requests(), 8);
        assert_eq!(snapshot.response_bytes, 8);
    }

    #[test]
    fn bounds_in_nanoseconds_are_the_buckets() {
        for (seconds, nanos) in BUCKETS.iter().zip(BOUNDS_NANOS) {
            assert_eq!(
                Duration::from_secs_f64(*seconds).as_nanos(),
                u128::from(nanos)
            );
        }
    }

    #[test]
    fn merged_snapshots_add_up() {
        let (a, b) = (HttpMetrics::default(), HttpMetrics::default());
        a.record(StatusCode::OK, 3, Duration::from_millis(2));
        b.record(StatusCode::NOT_FOUND, 4, Duration::from_millis(30));
        let mut total = a.snapshot();
        total.merge(&b.snapshot());
        assert_eq!(total.requests_by_class, [0, 1, 0, 1, 0]);
        assert_eq!(total.response_bytes, 7);
        assert_eq!(total.requests(), 2);
        assert_eq!(total.duration_sum, Duration::from_millis(32));
    }

    #[test]
    fn a_tally_adds_what_record_would_have() {
        let (direct, tallied) = (HttpMetrics::default(), HttpMetrics::default());
        let mut tally = Tally::default();
        let answers = [
            (200, 13, Duration::from_micros(3)),
            (200, 13, Duration::from_millis(7)),
            (404, 0, Duration::from_secs(20)),
            (600, 5, Duration::ZERO),
        ];
        for (code, bytes, took) in answers {
            let status = StatusCode::from_u16(code).unwrap();
            direct.record(status, bytes, took);
            tally.record(status, bytes, took);
        }
        assert_eq!(
            tallied.snapshot(),
            HttpSnapshot::default(),
            "nothing before add_to"
        );
        tally.add_to(&tallied);
        assert_eq!(tallied.snapshot(), direct.snapshot());
        // Emptied: adding again adds nothing.
        tally.add_to(&tallied);
        assert_eq!(tallied.snapshot(), direct.snapshot());
    }

    #[test]
    fn the_clock_ticks_are_read() {
        assert!(clock_ticks() > 0);
        assert!(cpu_seconds().is_some_and(|s| s >= 0.0));
    }
}
