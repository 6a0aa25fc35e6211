//! Soak: the `simple_http` example (`python3 -m http.server` in Rust) run as a child process
//! under a mixed load from several client threads for a bounded time, then checked for
//! what a long-running server must not do: fail requests, leak file descriptors or memory,
//! spin when idle, stop answering, or hang on SIGTERM.
//!
//! `SOAK_SECS` sets the length of the load (default 10; CI sets 60, a developer may set
//! 600). See the report with
//!
//! ```text
//! SOAK_SECS=60 cargo test --test soak -- --nocapture
//! ```
//!
//! Three tests: the default event loop with `--cgi` (every request on a worker thread),
//! the default event loop without `--cgi` (files served on the loop's own thread, as
//! `python3 -m http.server` and the benchmark run it; no CGI kinds), and `--threading`
//! with `--cgi`. Each measures its own child process, so they may run in parallel.
//! `cargo test` builds the examples this file runs.

mod common;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::{TempDir, IO_TIMEOUT};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use socket2::{Domain, SockRef, Socket, Type};

/// `--head-timeout` and `--keep-alive` of the server, in seconds.
const HEAD_TIMEOUT_SECS: u64 = 2;
const KEEP_ALIVE_SECS: u64 = 2;

const SMALL: &[u8] = b"hello from the soak test\n";
const MEDIUM_LEN: usize = 4 * 1024;
const BIG_LEN: usize = 16 * 1024 * 1024;
/// What aborting and slow clients read of the big file at a time.
const STEP: usize = 64 * 1024;

/// The long slow download: the whole big file, 64 KiB every 180 ms (about 350 KiB/s, some
/// 47 s), through a 64 KiB receive buffer, so that the server's sending itself lasts past
/// its 30 s `send_timeout` (the client's own buffer cannot take megabytes of it). It
/// starts only while the load has `LONG_DOWNLOAD_TIME` left: not in a 20 s soak.
const LONG_DOWNLOAD_PAUSE: Duration = Duration::from_millis(180);
const LONG_DOWNLOAD_TIME: Duration = Duration::from_secs(50);
const LONG_DOWNLOAD_RCVBUF: usize = 64 * 1024;

/// Load before the start sample, so that pools, caches and allocator arenas exist already.
const WARM_UP: Duration = Duration::from_secs(2);
/// Longest wait for the server to close what it held after the load.
const SETTLE_LIMIT: Duration = Duration::from_secs(10);
/// The window in which the idle server's CPU time is measured.
const IDLE_WINDOW: Duration = Duration::from_secs(1);
/// Longest wait for the server to exit after SIGTERM.
const STOP_LIMIT: Duration = Duration::from_secs(10);

/// Allowed differences between the start and end samples.
const FD_MARGIN: usize = 2;
const RSS_MARGIN_KIB: u64 = 8 * 1024;
const RSS_MARGIN_FRACTION: f64 = 0.25;
const IDLE_CPU_LIMIT: f64 = 0.10;

/// Echoes the method, query and body length (counted by reading standard input).
const CGI_SCRIPT: &str = "#!/bin/sh\n\
    n=$(wc -c | tr -d ' ')\n\
    printf 'Content-Type: text/plain\\r\\n\\r\\nmethod=%s query=%s length=%s content_length=%s\\n' \
    \"$REQUEST_METHOD\" \"$QUERY_STRING\" \"$n\" \"$CONTENT_LENGTH\"\n";

// ---------------------------------------------------------------------------------------
// What the clients do, and what they count.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Eight GETs on one connection, one after another.
    KeepAlive,
    /// One GET with `Connection: close`; the server must close after the response.
    Close,
    /// Sixteen GETs written at once, then their sixteen responses.
    Pipelined,
    /// The 4 KiB file, read completely; the client then hangs up.
    File4k,
    /// The 16 MiB file read completely, then a small GET on the same connection.
    File16m,
    /// 64 KiB of the big file, then close.
    Aborted,
    /// 64 KiB of the big file, then a reset (SO_LINGER 0).
    Reset,
    /// The big file in 64 KiB steps with pauses, for a second, then close.
    SlowReader,
    /// A head dripped a byte every 200 ms for a second, then close (before the head timeout).
    SlowlorisGiveUp,
    /// A head dripped a byte every 200 ms until the server cuts it (the head timeout).
    SlowlorisCut,
    /// The big file read completely at ~350 KiB/s (~47 s), on a thread of its own, in
    /// loads of at least `LONG_DOWNLOAD_TIME`.
    LongDownload,
    /// GET of the CGI script.
    CgiGet,
    /// POST to the CGI script with a body (`Content-Length` or chunked).
    CgiPost,
    /// Four form POSTs with `Content-Length` on one connection.
    FormLength,
    /// Four chunked form POSTs on one connection.
    FormChunked,
}

impl Kind {
    const ALL: [Kind; 15] = [
        Kind::KeepAlive,
        Kind::Close,
        Kind::Pipelined,
        Kind::File4k,
        Kind::File16m,
        Kind::Aborted,
        Kind::Reset,
        Kind::SlowReader,
        Kind::SlowlorisGiveUp,
        Kind::SlowlorisCut,
        Kind::LongDownload,
        Kind::CgiGet,
        Kind::CgiPost,
        Kind::FormLength,
        Kind::FormChunked,
    ];

    fn name(self) -> &'static str {
        match self {
            Kind::KeepAlive => "keep-alive GET x8",
            Kind::Close => "Connection: close GET",
            Kind::Pipelined => "pipelined GET x16",
            Kind::File4k => "4 KiB file",
            Kind::File16m => "16 MiB file (+GET)",
            Kind::Aborted => "aborted download",
            Kind::Reset => "reset download",
            Kind::SlowReader => "slow reader",
            Kind::SlowlorisGiveUp => "slowloris, gives up",
            Kind::SlowlorisCut => "slowloris, cut",
            Kind::LongDownload => "long slow download",
            Kind::CgiGet => "CGI GET",
            Kind::CgiPost => "CGI POST",
            Kind::FormLength => "form POST x4 (length)",
            Kind::FormChunked => "form POST x4 (chunked)",
        }
    }

    fn index(self) -> usize {
        Kind::ALL.iter().position(|&k| k == self).unwrap()
    }

    fn is_cgi(self) -> bool {
        matches!(self, Kind::CgiGet | Kind::CgiPost)
    }
}

/// The client threads: what each one runs, in turn.
const PLANS: &[&[Kind]] = &[
    &[
        Kind::KeepAlive,
        Kind::Close,
        Kind::Pipelined,
        Kind::File4k,
        Kind::CgiGet,
        Kind::CgiPost,
        Kind::FormLength,
        Kind::FormChunked,
    ],
    &[
        Kind::Pipelined,
        Kind::File4k,
        Kind::CgiGet,
        Kind::CgiPost,
        Kind::FormLength,
        Kind::FormChunked,
        Kind::KeepAlive,
        Kind::Close,
    ],
    &[
        Kind::CgiPost,
        Kind::FormLength,
        Kind::FormChunked,
        Kind::KeepAlive,
        Kind::Close,
        Kind::Pipelined,
        Kind::File4k,
        Kind::CgiGet,
    ],
    &[
        Kind::FormChunked,
        Kind::KeepAlive,
        Kind::Close,
        Kind::Pipelined,
        Kind::File4k,
        Kind::CgiGet,
        Kind::CgiPost,
        Kind::FormLength,
    ],
    &[Kind::File16m, Kind::Aborted, Kind::Reset],
    &[Kind::Aborted, Kind::File16m, Kind::Reset, Kind::KeepAlive],
    &[Kind::SlowReader],
    &[Kind::SlowlorisGiveUp, Kind::SlowlorisCut],
    &[Kind::SlowlorisCut, Kind::SlowlorisGiveUp],
];

/// Error messages kept per kind for the report.
const SAMPLES_PER_KIND: usize = 5;

#[derive(Default)]
struct KindStats {
    runs: AtomicU64,
    requests: AtomicU64,
    errors: AtomicU64,
    samples: Mutex<Vec<String>>,
}

/// Counts of one load phase.
struct Stats {
    kinds: Vec<KindStats>,
    /// Expected outcomes worth reporting (how slowloris connections ended, ...).
    notes: Mutex<BTreeMap<String, u64>>,
}

impl Stats {
    fn new() -> Self {
        Stats {
            kinds: Kind::ALL.iter().map(|_| KindStats::default()).collect(),
            notes: Mutex::new(BTreeMap::new()),
        }
    }

    fn of(&self, kind: Kind) -> &KindStats {
        &self.kinds[kind.index()]
    }

    fn record(&self, kind: Kind, result: Result<u64, String>) {
        let stats = self.of(kind);
        stats.runs.fetch_add(1, Ordering::Relaxed);
        match result {
            Ok(requests) => {
                stats.requests.fetch_add(requests, Ordering::Relaxed);
            }
            Err(message) => {
                stats.errors.fetch_add(1, Ordering::Relaxed);
                let mut samples = stats.samples.lock().unwrap();
                if samples.len() < SAMPLES_PER_KIND {
                    samples.push(message);
                }
            }
        }
    }

    fn note(&self, what: String) {
        *self.notes.lock().unwrap().entry(what).or_default() += 1;
    }

    fn total_requests(&self) -> u64 {
        self.kinds
            .iter()
            .map(|k| k.requests.load(Ordering::Relaxed))
            .sum()
    }

    fn total_errors(&self) -> u64 {
        self.kinds
            .iter()
            .map(|k| k.errors.load(Ordering::Relaxed))
            .sum()
    }

    fn table(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "  {:<24} {:>8} {:>10} {:>7}",
            "kind", "runs", "requests", "errors"
        );
        for kind in Kind::ALL {
            let s = self.of(kind);
            let _ = writeln!(
                out,
                "  {:<24} {:>8} {:>10} {:>7}",
                kind.name(),
                s.runs.load(Ordering::Relaxed),
                s.requests.load(Ordering::Relaxed),
                s.errors.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "  {:<24} {:>8} {:>10} {:>7}",
            "total",
            "",
            self.total_requests(),
            self.total_errors()
        );
        for (what, count) in self.notes.lock().unwrap().iter() {
            let _ = writeln!(out, "  expected: {what}: {count}");
        }
        for kind in Kind::ALL {
            for message in self.of(kind).samples.lock().unwrap().iter() {
                let _ = writeln!(out, "  ERROR {}: {message}", kind.name());
            }
        }
    }
}

/// The served files' contents, to check what comes back.
struct Content {
    medium: Vec<u8>,
    big: Vec<u8>,
}

/// xorshift64*: deterministic sizes and contents without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `low..=high`.
    fn range(&mut self, low: usize, high: usize) -> usize {
        low + (self.next() % (high - low + 1) as u64) as usize
    }
}

fn pseudo_random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng(seed);
    let mut bytes = Vec::with_capacity(len + 8);
    while bytes.len() < len {
        bytes.extend_from_slice(&rng.next().to_le_bytes());
    }
    bytes.truncate(len);
    bytes
}

/// What every client operation gets.
struct Ctx {
    addr: SocketAddr,
    /// Whether the server runs CGI scripts (`--cgi`); without, the CGI kinds are left out.
    cgi: bool,
    content: Arc<Content>,
    stats: Stats,
}

// ---------------------------------------------------------------------------------------
// A small HTTP/1.1 client on a raw socket, so that every byte and every close is ours.

struct Head {
    status: u16,
    length: Option<u64>,
    chunked: bool,
    close: bool,
    text: String,
}

struct Client {
    reader: BufReader<TcpStream>,
}

fn io_err(what: &str) -> impl Fn(io::Error) -> String + '_ {
    move |err| format!("{what}: {err} ({:?})", err.kind())
}

/// Whether `err` is the peer closing or resetting the connection.
fn is_close(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof
    )
}

/// Whether `err` is a read timeout expiring.
fn is_timeout(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

impl Client {
    fn connect(addr: SocketAddr) -> Result<Client, String> {
        let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT).map_err(io_err("connect"))?;
        Client::with_timeouts(stream)
    }

    /// A connection whose receive buffer is `rcvbuf` bytes (set before connecting, so the
    /// window the server sees stays that small).
    fn connect_small(addr: SocketAddr, rcvbuf: usize) -> Result<Client, String> {
        let socket =
            Socket::new(Domain::IPV4, Type::STREAM, None).map_err(io_err("create a socket"))?;
        socket
            .set_recv_buffer_size(rcvbuf)
            .map_err(io_err("set SO_RCVBUF"))?;
        socket
            .connect_timeout(&addr.into(), IO_TIMEOUT)
            .map_err(io_err("connect"))?;
        Client::with_timeouts(socket.into())
    }

    fn with_timeouts(stream: TcpStream) -> Result<Client, String> {
        stream
            .set_read_timeout(Some(IO_TIMEOUT))
            .map_err(io_err("set_read_timeout"))?;
        stream
            .set_write_timeout(Some(IO_TIMEOUT))
            .map_err(io_err("set_write_timeout"))?;
        Ok(Client {
            reader: BufReader::with_capacity(STEP, stream),
        })
    }

    fn stream(&self) -> &TcpStream {
        self.reader.get_ref()
    }

    fn send(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.reader
            .get_mut()
            .write_all(bytes)
            .map_err(io_err("send the request"))
    }

    fn line(&mut self, what: &str) -> Result<String, String> {
        let mut line = Vec::new();
        (&mut self.reader)
            .take(64 * 1024)
            .read_until(b'\n', &mut line)
            .map_err(io_err(what))?;
        if !line.ends_with(b"\n") {
            return Err(format!(
                "{what}: connection ended in a line: {:?}",
                String::from_utf8_lossy(&line)
            ));
        }
        String::from_utf8(line).map_err(|_| format!("{what}: not UTF-8"))
    }

    /// Reads a response head (skipping interim 1xx responses).
    fn head(&mut self) -> Result<Head, String> {
        loop {
            let status_line = self.line("read the status line")?;
            let mut parts = status_line.splitn(3, ' ');
            let version = parts.next().unwrap_or("");
            if version != "HTTP/1.1" {
                return Err(format!("bad status line {status_line:?}"));
            }
            let status: u16 = parts
                .next()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| format!("bad status line {status_line:?}"))?;
            let mut head = Head {
                status,
                length: None,
                chunked: false,
                close: false,
                text: status_line.clone(),
            };
            loop {
                let line = self.line("read a header line")?;
                head.text.push_str(&line);
                let line = line.trim_end();
                if line.is_empty() {
                    break;
                }
                let (name, value) = line
                    .split_once(':')
                    .ok_or_else(|| format!("bad header line {line:?}"))?;
                let value = value.trim();
                match name.to_ascii_lowercase().as_str() {
                    "content-length" => {
                        head.length = Some(
                            value
                                .parse()
                                .map_err(|_| format!("bad Content-Length {value:?}"))?,
                        )
                    }
                    "transfer-encoding" => {
                        head.chunked = value.eq_ignore_ascii_case("chunked");
                    }
                    "connection" => {
                        head.close = value
                            .split(',')
                            .any(|t| t.trim().eq_ignore_ascii_case("close"));
                    }
                    _ => {}
                }
            }
            if (100..200).contains(&head.status) {
                continue;
            }
            return Ok(head);
        }
    }

    /// Reads the body `head` announces, giving it to `sink` piece by piece.
    fn body(
        &mut self,
        head: &Head,
        mut sink: impl FnMut(&[u8]) -> Result<(), String>,
    ) -> Result<(), String> {
        let mut buf = vec![0u8; STEP];
        if head.chunked {
            loop {
                let line = self.line("read a chunk size")?;
                let size = line.trim_end().split(';').next().unwrap_or("");
                let size = usize::from_str_radix(size.trim(), 16)
                    .map_err(|_| format!("bad chunk size line {line:?}"))?;
                if size == 0 {
                    while !self.line("read a trailer")?.trim_end().is_empty() {}
                    return Ok(());
                }
                let mut left = size;
                while left > 0 {
                    let n = left.min(buf.len());
                    self.reader
                        .read_exact(&mut buf[..n])
                        .map_err(io_err("read a chunk"))?;
                    sink(&buf[..n])?;
                    left -= n;
                }
                if self.line("read a chunk end")?.trim_end() != "" {
                    return Err("a chunk does not end with CRLF".into());
                }
            }
        } else if let Some(length) = head.length {
            let mut left = length;
            while left > 0 {
                let n = (left.min(buf.len() as u64)) as usize;
                let got = self.reader.read(&mut buf[..n]);
                match got {
                    Ok(0) => {
                        return Err(format!(
                            "the connection closed {left} bytes before the end of the body"
                        ))
                    }
                    Ok(got) => {
                        sink(&buf[..got])?;
                        left -= got as u64;
                    }
                    Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                    Err(err) => {
                        return Err(format!(
                            "read the body, {left} of {length} bytes left: {err} ({:?})",
                            err.kind()
                        ))
                    }
                }
            }
            Ok(())
        } else if head.close {
            loop {
                match self.reader.read(&mut buf) {
                    Ok(0) => return Ok(()),
                    Ok(n) => sink(&buf[..n])?,
                    Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                    Err(err) => return Err(io_err("read a close-delimited body")(err)),
                }
            }
        } else {
            Err(format!(
                "a keep-alive response without Content-Length or chunked: {:?}",
                head.text
            ))
        }
    }

    fn response(&mut self) -> Result<(Head, Vec<u8>), String> {
        let head = self.head()?;
        let mut body = Vec::new();
        self.body(&head, |piece| {
            body.extend_from_slice(piece);
            Ok(())
        })?;
        Ok((head, body))
    }

    /// The server must have closed the connection: end-of-file, nothing more.
    fn expect_eof(&mut self) -> Result<(), String> {
        let mut byte = [0u8; 1];
        match self.reader.read(&mut byte) {
            Ok(0) => Ok(()),
            Ok(_) => Err("bytes after the response on a closing connection".into()),
            Err(err) => Err(io_err("wait for the server's close")(err)),
        }
    }
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: soak\r\n\r\n")
}

/// The paths the GET kinds rotate through.
const GET_PATHS: [&str; 3] = ["/small.txt", "/4k.bin", "/dir/"];

fn check_get(ctx: &Ctx, path: &str, head: &Head, body: &[u8]) -> Result<(), String> {
    if head.status != 200 {
        return Err(format!(
            "GET {path}: status {}: {:?}",
            head.status, head.text
        ));
    }
    let ok = match path {
        "/small.txt" => body == SMALL,
        "/4k.bin" => body == ctx.content.medium.as_slice(),
        "/dir/" => {
            let page = String::from_utf8_lossy(body);
            page.contains("href=\"a.txt\"") && page.contains("href=\"b.txt\"")
        }
        _ => unreachable!("{path}"),
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "GET {path}: wrong body ({} bytes): {:?}",
            body.len(),
            String::from_utf8_lossy(&body[..body.len().min(200)])
        ))
    }
}

fn with_context<T>(what: impl std::fmt::Display, result: Result<T, String>) -> Result<T, String> {
    result.map_err(|err| format!("{what}: {err}"))
}

// ---------------------------------------------------------------------------------------
// The operations. Each returns the number of requests it completed, or an unexpected error.

fn keep_alive(ctx: &Ctx, rng: &mut Rng) -> Result<u64, String> {
    let mut client = Client::connect(ctx.addr)?;
    let first = rng.range(0, GET_PATHS.len() - 1);
    for i in 0..8 {
        let path = GET_PATHS[(first + i) % GET_PATHS.len()];
        with_context(format!("request {} of 8 ({path})", i + 1), {
            client.send(get(path).as_bytes()).and_then(|()| {
                let (head, body) = client.response()?;
                if head.close {
                    return Err(format!(
                        "the server closed a keep-alive connection: {:?}",
                        head.text
                    ));
                }
                check_get(ctx, path, &head, &body)
            })
        })?;
    }
    Ok(8)
}

fn close(ctx: &Ctx, rng: &mut Rng) -> Result<u64, String> {
    let path = GET_PATHS[rng.range(0, GET_PATHS.len() - 1)];
    let mut client = Client::connect(ctx.addr)?;
    client.send(
        format!("GET {path} HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n\r\n").as_bytes(),
    )?;
    let (head, body) = client.response()?;
    check_get(ctx, path, &head, &body)?;
    if !head.close {
        return Err(format!(
            "no Connection: close in the answer: {:?}",
            head.text
        ));
    }
    client.expect_eof()?;
    Ok(1)
}

fn pipelined(ctx: &Ctx, rng: &mut Rng) -> Result<u64, String> {
    let mut client = Client::connect(ctx.addr)?;
    let first = rng.range(0, GET_PATHS.len() - 1);
    let paths: Vec<&str> = (0..16)
        .map(|i| GET_PATHS[(first + i) % GET_PATHS.len()])
        .collect();
    let requests: String = paths.iter().map(|path| get(path)).collect();
    client.send(requests.as_bytes())?;
    for (i, path) in paths.iter().enumerate() {
        with_context(format!("response {} of 16 ({path})", i + 1), {
            client
                .response()
                .and_then(|(head, body)| check_get(ctx, path, &head, &body))
        })?;
    }
    Ok(16)
}

fn file_4k(ctx: &Ctx, _rng: &mut Rng) -> Result<u64, String> {
    let mut client = Client::connect(ctx.addr)?;
    client.send(get("/4k.bin").as_bytes())?;
    let (head, body) = client.response()?;
    check_get(ctx, "/4k.bin", &head, &body)?;
    Ok(1) // the client hangs up on an idle keep-alive connection
}

/// Sends `GET /big.bin`, half the time with `Connection: close` (as urllib, wget and
/// HTTP/1.0 clients ask), and checks the head. Returns the client and which it was.
fn start_big(ctx: &Ctx, rng: &mut Rng) -> Result<(Client, Head, &'static str), String> {
    let close = rng.next() % 2 == 0;
    let variant = if close {
        "Connection: close"
    } else {
        "keep-alive"
    };
    let mut client = Client::connect(ctx.addr)?;
    let request = if close {
        "GET /big.bin HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n\r\n".to_string()
    } else {
        get("/big.bin")
    };
    let head = with_context(
        variant,
        client.send(request.as_bytes()).and_then(|()| client.head()),
    )?;
    if head.status != 200 || head.length != Some(BIG_LEN as u64) || head.close != close {
        return Err(format!("GET /big.bin ({variant}): {:?}", head.text));
    }
    Ok((client, head, variant))
}

/// Reads the next `STEP` bytes of the big file at `offset` and checks them.
fn read_big_step(ctx: &Ctx, client: &mut Client, offset: usize) -> Result<(), String> {
    let mut buf = vec![0u8; STEP];
    client
        .reader
        .read_exact(&mut buf)
        .map_err(io_err(&format!("read the big file at {offset}")))?;
    if buf != ctx.content.big[offset..offset + STEP] {
        return Err(format!("wrong bytes in the big file at {offset}"));
    }
    Ok(())
}

fn file_16m(ctx: &Ctx, rng: &mut Rng) -> Result<u64, String> {
    let (mut client, head, variant) = start_big(ctx, rng)?;
    let mut offset = 0;
    let big = &ctx.content.big;
    with_context(
        variant,
        client.body(&head, |piece| {
            if big[offset..offset + piece.len()] != *piece {
                return Err(format!("wrong bytes in the big file at {offset}"));
            }
            offset += piece.len();
            Ok(())
        }),
    )?;
    if head.close {
        with_context(variant, client.expect_eof())?;
        return Ok(1);
    }
    // The connection is still good for another request.
    client.send(get("/small.txt").as_bytes())?;
    let (head, body) = with_context("GET after the big file", client.response())?;
    check_get(ctx, "/small.txt", &head, &body)?;
    Ok(2)
}

fn aborted(ctx: &Ctx, rng: &mut Rng) -> Result<u64, String> {
    let (mut client, _, variant) = start_big(ctx, rng)?;
    with_context(variant, read_big_step(ctx, &mut client, 0))?;
    Ok(1) // dropped: closed with most of the file unread
}

fn reset(ctx: &Ctx, rng: &mut Rng) -> Result<u64, String> {
    let (mut client, _, variant) = start_big(ctx, rng)?;
    with_context(variant, read_big_step(ctx, &mut client, 0))?;
    SockRef::from(client.stream())
        .set_linger(Some(Duration::ZERO))
        .map_err(io_err("set SO_LINGER 0"))?;
    Ok(1) // dropped: a reset
}

fn slow_reader(ctx: &Ctx, rng: &mut Rng) -> Result<u64, String> {
    let (mut client, _, variant) = start_big(ctx, rng)?;
    let started = Instant::now();
    let mut offset = 0;
    while started.elapsed() < Duration::from_secs(1) {
        with_context(variant, read_big_step(ctx, &mut client, offset))?;
        offset += STEP;
        thread::sleep(Duration::from_millis(20)); // pacing: a slow reader
    }
    Ok(1)
}

/// Drips a request head that never ends, a byte every 200 ms, for at most `limit`.
/// Returns how long the server kept the connection, or `None` if it was still open.
fn drip(ctx: &Ctx, limit: Duration) -> Result<Option<(Duration, &'static str)>, String> {
    let mut client = Client::connect(ctx.addr)?;
    // The read timeout paces the drip and notices the server's close at once.
    client
        .stream()
        .set_read_timeout(Some(Duration::from_millis(200)))
        .map_err(io_err("set_read_timeout"))?;
    let head = b"GET /small.txt HTTP/1.1\r\nHost: soak\r\nX-Slow: ";
    let started = Instant::now();
    let mut sent = 0usize;
    let mut buf = [0u8; 4096];
    while started.elapsed() < limit {
        let byte = head.get(sent).copied().unwrap_or(b'a');
        match client.reader.get_mut().write(&[byte]) {
            Ok(_) => sent += 1,
            Err(err) if is_close(&err) => return Ok(Some((started.elapsed(), "send failed"))),
            Err(err) => return Err(io_err("send a byte")(err)),
        }
        match client.reader.read(&mut buf) {
            Err(err) if is_timeout(&err) || err.kind() == io::ErrorKind::Interrupted => {}
            Ok(0) => return Ok(Some((started.elapsed(), "closed without a response"))),
            Err(err) if is_close(&err) => return Ok(Some((started.elapsed(), "reset"))),
            Err(err) => return Err(io_err("wait on a slow head")(err)),
            Ok(n) => {
                let kept = started.elapsed();
                let mut answer = buf[..n].to_vec();
                client
                    .stream()
                    .set_read_timeout(Some(IO_TIMEOUT))
                    .map_err(io_err("set_read_timeout"))?;
                loop {
                    match client.reader.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => answer.extend_from_slice(&buf[..n]),
                        Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                        Err(err) if is_close(&err) => break,
                        Err(err) => return Err(io_err("read the answer to a slow head")(err)),
                    }
                }
                if answer.starts_with(b"HTTP/1.1 408 ") {
                    return Ok(Some((kept, "408, then close")));
                }
                return Err(format!(
                    "unexpected answer to a slow head after {kept:?}: {:?}",
                    String::from_utf8_lossy(&answer[..answer.len().min(200)])
                ));
            }
        }
    }
    Ok(None)
}

fn slowloris_give_up(ctx: &Ctx, _rng: &mut Rng) -> Result<u64, String> {
    match drip(ctx, Duration::from_secs(1))? {
        None => Ok(0),
        Some((kept, how)) => Err(format!(
            "the server cut a slow head after {kept:?} ({how}), before its {HEAD_TIMEOUT_SECS} s head timeout"
        )),
    }
}

fn slowloris_cut(ctx: &Ctx, _rng: &mut Rng) -> Result<u64, String> {
    let limit = Duration::from_secs(HEAD_TIMEOUT_SECS + 4);
    match drip(ctx, limit)? {
        None => Err(format!(
            "a slow head was still open after {limit:?} (head timeout {HEAD_TIMEOUT_SECS} s)"
        )),
        Some((kept, how)) => {
            ctx.stats
                .note(format!("slowloris cut by the server: {how}"));
            if kept < Duration::from_secs(HEAD_TIMEOUT_SECS) - Duration::from_millis(300) {
                return Err(format!(
                    "the server cut a slow head after {kept:?}, before its {HEAD_TIMEOUT_SECS} s head timeout"
                ));
            }
            Ok(0)
        }
    }
}

fn check_cgi(head: &Head, body: &[u8], expected: &str) -> Result<(), String> {
    if head.status != 200 {
        return Err(format!("CGI: status {}: {:?}", head.status, head.text));
    }
    if body != expected.as_bytes() {
        return Err(format!(
            "CGI: body {:?}, expected {expected:?}",
            String::from_utf8_lossy(body)
        ));
    }
    Ok(())
}

/// Reads a CGI response; without a length the server must close the connection after it.
fn cgi_response(client: &mut Client) -> Result<(Head, Vec<u8>), String> {
    let (head, body) = client.response()?;
    if head.length.is_none() && !head.chunked {
        client.expect_eof()?;
    }
    Ok((head, body))
}

fn cgi_get(ctx: &Ctx, rng: &mut Rng) -> Result<u64, String> {
    let n = rng.next() % 100_000;
    let mut client = Client::connect(ctx.addr)?;
    client.send(get(&format!("/cgi-bin/len.sh?n={n}")).as_bytes())?;
    let (head, body) = cgi_response(&mut client)?;
    check_cgi(
        &head,
        &body,
        &format!("method=GET query=n={n} length=0 content_length=\n"),
    )?;
    Ok(1)
}

/// `body` in chunks of random sizes, and the last chunk.
fn chunked(body: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 64);
    let mut rest = body;
    while !rest.is_empty() {
        let n = rng.range(1, rest.len().min(8192));
        out.extend_from_slice(format!("{n:x}\r\n").as_bytes());
        out.extend_from_slice(&rest[..n]);
        out.extend_from_slice(b"\r\n");
        rest = &rest[n..];
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

fn cgi_post(ctx: &Ctx, rng: &mut Rng) -> Result<u64, String> {
    let len = rng.range(0, 32 * 1024);
    let body = pseudo_random_bytes(len, rng.next() | 1);
    let use_chunked = rng.next() % 2 == 0;
    let mut request = "POST /cgi-bin/len.sh HTTP/1.1\r\nHost: soak\r\n\
                       Content-Type: application/octet-stream\r\n"
        .to_string()
        .into_bytes();
    if use_chunked {
        request.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
        request.extend_from_slice(&chunked(&body, rng));
    } else {
        request.extend_from_slice(format!("Content-Length: {len}\r\n\r\n").as_bytes());
        request.extend_from_slice(&body);
    }
    let framing = if use_chunked { "chunked" } else { "length" };
    let mut client = Client::connect(ctx.addr)?;
    with_context(format!("{len} bytes, {framing}"), {
        client.send(&request).and_then(|()| {
            let (head, answer) = cgi_response(&mut client)?;
            check_cgi(
                &head,
                &answer,
                &format!("method=POST query= length={len} content_length={len}\n"),
            )
        })
    })?;
    Ok(1)
}

fn forms(ctx: &Ctx, rng: &mut Rng, use_chunked: bool) -> Result<u64, String> {
    let mut client = Client::connect(ctx.addr)?;
    for i in 0..4 {
        let fields = rng.range(1, 20);
        let body: Vec<String> = (0..fields)
            .map(|f| format!("field{f}=value+{f}%21&"))
            .collect();
        let body = body.concat();
        let body = body.trim_end_matches('&').as_bytes();
        let mut request = "POST /form HTTP/1.1\r\nHost: soak\r\n\
                           Content-Type: application/x-www-form-urlencoded\r\n"
            .to_string()
            .into_bytes();
        if use_chunked {
            request.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
            request.extend_from_slice(&chunked(body, rng));
        } else {
            request.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
            request.extend_from_slice(body);
        }
        with_context(format!("form {} of 4 ({fields} fields)", i + 1), {
            client.send(&request).and_then(|()| {
                let (head, answer) = client.response()?;
                if head.status != 200 || head.close {
                    return Err(format!("{:?}", head.text));
                }
                let page = String::from_utf8_lossy(&answer);
                let summary =
                    format!("<p id=\"summary\">{fields} field(s) posted to <code>/form</code></p>");
                if !page.contains(&summary) || !page.contains("<td>value 0!</td>") {
                    return Err(format!("wrong page: {page:?}"));
                }
                Ok(())
            })
        })?;
    }
    Ok(4)
}

/// The whole big file, slowly; `close` asks for `Connection: close`.
fn long_download(ctx: &Ctx, close: bool) -> Result<u64, String> {
    let variant = if close {
        "Connection: close"
    } else {
        "keep-alive"
    };
    let mut client = Client::connect_small(ctx.addr, LONG_DOWNLOAD_RCVBUF)?;
    let request = if close {
        "GET /big.bin HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n\r\n".to_string()
    } else {
        get("/big.bin")
    };
    client.send(request.as_bytes())?;
    let head = with_context(variant, client.head())?;
    if head.status != 200 || head.length != Some(BIG_LEN as u64) {
        return Err(format!("GET /big.bin ({variant}): {:?}", head.text));
    }
    let started = Instant::now();
    let mut offset = 0;
    while offset < BIG_LEN {
        read_big_step(ctx, &mut client, offset).map_err(|err| {
            format!(
                "{variant}: cut after {offset} of {BIG_LEN} bytes, {:.1} s into the body: {err}",
                started.elapsed().as_secs_f64()
            )
        })?;
        offset += STEP;
        thread::sleep(LONG_DOWNLOAD_PAUSE); // pacing: a slow client
    }
    if close {
        with_context(variant, client.expect_eof())?;
    }
    ctx.stats.note(format!(
        "long slow download ({variant}) complete in {:.0} s",
        started.elapsed().as_secs_f64()
    ));
    Ok(1)
}

fn run(kind: Kind, ctx: &Ctx, rng: &mut Rng) -> Result<u64, String> {
    match kind {
        Kind::KeepAlive => keep_alive(ctx, rng),
        Kind::Close => close(ctx, rng),
        Kind::Pipelined => pipelined(ctx, rng),
        Kind::File4k => file_4k(ctx, rng),
        Kind::File16m => file_16m(ctx, rng),
        Kind::Aborted => aborted(ctx, rng),
        Kind::Reset => reset(ctx, rng),
        Kind::SlowReader => slow_reader(ctx, rng),
        Kind::SlowlorisGiveUp => slowloris_give_up(ctx, rng),
        Kind::SlowlorisCut => slowloris_cut(ctx, rng),
        Kind::LongDownload => long_download(ctx, rng.next() % 2 == 0),
        Kind::CgiGet => cgi_get(ctx, rng),
        Kind::CgiPost => cgi_post(ctx, rng),
        Kind::FormLength => forms(ctx, rng, false),
        Kind::FormChunked => forms(ctx, rng, true),
    }
}

/// Runs every plan on a thread of its own for `duration`, and waits for the operations in
/// flight to finish (each is bounded by its socket timeouts).
fn load(ctx: &Arc<Ctx>, duration: Duration, seed: u64) -> Duration {
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let deadline = started + duration;
    let mut threads: Vec<(Kind, thread::JoinHandle<()>)> = PLANS
        .iter()
        .enumerate()
        .map(|(i, plan)| {
            let ctx = Arc::clone(ctx);
            let stop = Arc::clone(&stop);
            let plan: Vec<Kind> = plan
                .iter()
                .copied()
                .filter(|kind| ctx.cgi || !kind.is_cgi())
                .collect();
            let first = plan[0];
            let thread = thread::Builder::new()
                .name(format!("soak-client-{i}"))
                .spawn(move || {
                    let mut rng = Rng(seed ^ (0x9e37_79b9_7f4a_7c15u64.wrapping_mul(i as u64 + 1)));
                    let mut turn = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let kind = plan[turn % plan.len()];
                        turn += 1;
                        let result = run(kind, &ctx, &mut rng);
                        ctx.stats.record(kind, result);
                    }
                })
                .expect("spawn a client thread");
            (first, thread)
        })
        .collect();
    if duration >= LONG_DOWNLOAD_TIME {
        // Long slow downloads, one at a time, each started only if it can end in the load:
        // `Connection: close`, then keep-alive, in turn.
        let ctx = Arc::clone(ctx);
        let thread = thread::Builder::new()
            .name("soak-long-download".into())
            .spawn(move || {
                let mut close = true;
                while Instant::now() + LONG_DOWNLOAD_TIME <= deadline {
                    let result = long_download(&ctx, close);
                    ctx.stats.record(Kind::LongDownload, result);
                    close = !close;
                }
            })
            .expect("spawn a client thread");
        threads.push((Kind::LongDownload, thread));
    } else {
        ctx.stats.note(format!(
            "long slow download: not run, the load is shorter than {} s",
            LONG_DOWNLOAD_TIME.as_secs()
        ));
    }
    thread::sleep(duration); // the length of the load, not a wait for anything
    stop.store(true, Ordering::Relaxed);
    for (i, (kind, thread)) in threads.into_iter().enumerate() {
        if thread.join().is_err() {
            // A panicking client is a bug here, but also a failed run of its current kind.
            ctx.stats
                .record(kind, Err(format!("client thread {i} panicked")));
        }
    }
    started.elapsed()
}

// ---------------------------------------------------------------------------------------
// The server process and what /proc says about it.

fn example_path(name: &str) -> PathBuf {
    // Integration tests run from target/<profile>/deps; examples live in target/<profile>/examples.
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target dir");
    let path = profile_dir.join("examples").join(name);
    assert!(
        path.exists(),
        "{} is missing: run the tests with `cargo test`, which builds the examples",
        path.display()
    );
    path
}

#[derive(Default)]
struct StderrLog {
    lines: u64,
    /// Lines counted by their message, digits folded to `N` (times, addresses, ports).
    messages: BTreeMap<String, u64>,
}

/// The message of a log line without its `[time LEVEL target]` prefix, digits as `N`.
fn log_message(line: &str) -> String {
    let message = line.split_once("] ").map_or(line, |(_, rest)| rest);
    let mut folded = String::new();
    for c in message.chars() {
        if c.is_ascii_digit() {
            if !folded.ends_with('N') {
                folded.push('N');
            }
        } else {
            folded.push(c);
        }
    }
    folded
}

/// The running `simple_http`, killed if the test ends before it stopped.
struct ServerProcess {
    child: Child,
    _stdout: BufReader<ChildStdout>,
    pid: i32,
    addr: SocketAddr,
    stderr: Arc<Mutex<StderrLog>>,
}

impl ServerProcess {
    fn start(directory: &std::path::Path, mode: &Mode) -> ServerProcess {
        let head_timeout = HEAD_TIMEOUT_SECS.to_string();
        let keep_alive = KEEP_ALIVE_SECS.to_string();
        let mut args = vec![
            "0",
            "-b",
            "127.0.0.1",
            "-p",
            "HTTP/1.1",
            "-d",
            directory.to_str().expect("a UTF-8 temporary path"),
            "--head-timeout",
            &head_timeout,
            "--keep-alive",
            &keep_alive,
        ];
        if mode.cgi {
            args.push("--cgi");
        }
        args.extend_from_slice(mode.args);
        let mut child = Command::new(example_path("simple_http"))
            .args(&args)
            // Warnings and errors only: an access line per request would drown the report.
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start simple_http");
        let pid = child.id() as i32;
        let stderr = Arc::new(Mutex::new(StderrLog::default()));
        let pipe = child.stderr.take().expect("piped stderr");
        let log = Arc::clone(&stderr);
        thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                let mut log = log.lock().unwrap();
                log.lines += 1;
                let message = log_message(&line);
                if log.messages.len() < 20 || log.messages.contains_key(&message) {
                    *log.messages.entry(message).or_default() += 1;
                }
            }
        });
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let port = port_from_banner(&mut stdout);
        ServerProcess {
            child,
            _stdout: stdout,
            pid,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            stderr,
        }
    }

    /// Sends SIGTERM and waits (bounded) for the exit.
    fn terminate(&mut self) -> Result<(ExitStatus, Duration), String> {
        kill(Pid::from_raw(self.pid), Signal::SIGTERM).map_err(|e| format!("SIGTERM: {e}"))?;
        let started = Instant::now();
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Ok((status, started.elapsed())),
                Ok(None) if started.elapsed() >= STOP_LIMIT => {
                    return Err(format!("still running {STOP_LIMIT:?} after SIGTERM"))
                }
                Ok(None) => thread::sleep(Duration::from_millis(20)),
                Err(err) => return Err(format!("waitpid: {err}")),
            }
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads stdout up to `Serving HTTP on ADDR port PORT (...)` and returns PORT.
fn port_from_banner(stdout: &mut impl BufRead) -> u16 {
    let mut line = String::new();
    loop {
        line.clear();
        let n = stdout
            .read_line(&mut line)
            .expect("read simple_http's stdout");
        assert!(n > 0, "simple_http exited before it served");
        if let Some(rest) = line.strip_prefix("Serving HTTP on ") {
            let port = rest.split(" port ").nth(1).expect("a port");
            return port
                .split_whitespace()
                .next()
                .unwrap()
                .parse()
                .expect("a number");
        }
    }
}

/// What /proc says about the server at one moment.
#[derive(Clone, Copy, Debug)]
struct Sample {
    rss_kib: u64,
    fds: usize,
    threads: u64,
    /// utime + stime, in clock ticks.
    cpu_ticks: u64,
}

fn sample(pid: i32) -> Result<Sample, String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("read /proc/{pid}/status: {e}"))?;
    let field = |name: &str| -> Result<u64, String> {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("no {name} in /proc/{pid}/status"))
    };
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map_err(|e| format!("read /proc/{pid}/fd: {e}"))?
        .count();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|e| format!("read /proc/{pid}/stat: {e}"))?;
    // After "pid (comm) ", fields start at 3 (state); utime and stime are fields 14 and 15.
    let after_comm = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or("a /proc/<pid>/stat without (comm)")?;
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    let tick = |i: usize| -> Result<u64, String> {
        fields
            .get(i)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("no field {} in /proc/{pid}/stat", i + 3))
    };
    Ok(Sample {
        rss_kib: field("VmRSS:")?,
        fds,
        threads: field("Threads:")?,
        cpu_ticks: tick(11)? + tick(12)?,
    })
}

/// Clock ticks per second of /proc/<pid>/stat (USER_HZ, 100 on Linux).
fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// Polls until the server holds at most `target` descriptors, up to `limit`; returns the
/// last sample and how long the wait took.
fn settle(pid: i32, target: usize, limit: Duration) -> Result<(Sample, Duration), String> {
    let started = Instant::now();
    loop {
        let now = sample(pid)?;
        if now.fds <= target || started.elapsed() >= limit {
            return Ok((now, started.elapsed()));
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// Resident KiB of each mapping of the server, by its start address and name (a growing
/// heap or allocator arena keeps its start), from /proc/PID/smaps.
fn mappings(pid: i32) -> Result<BTreeMap<String, u64>, String> {
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps"))
        .map_err(|e| format!("read /proc/{pid}/smaps: {e}"))?;
    let mut rss = BTreeMap::new();
    let mut current = String::new();
    for line in smaps.lines() {
        if let Some(kib) = line.strip_prefix("Rss:") {
            let kib: u64 = kib
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .unwrap_or(0);
            *rss.entry(current.clone()).or_default() += kib;
        } else if line
            .split_whitespace()
            .next()
            .is_some_and(|f| f.contains('-'))
        {
            // "start-end perms offset dev inode [name]"
            let fields: Vec<&str> = line.split_whitespace().collect();
            let start = fields[0].split('-').next().unwrap_or_default();
            let name = fields.get(5).copied().unwrap_or("(anonymous)");
            current = format!("{name} at {start} {}", fields.get(1).copied().unwrap_or(""));
        }
    }
    Ok(rss)
}

/// The mappings that grew most from `before` to `after`, for the report of an RSS failure.
fn grown_mappings(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> String {
    let mut grown: Vec<(i64, &String)> = after
        .iter()
        .map(|(name, &kib)| {
            (
                kib as i64 - before.get(name).copied().unwrap_or(0) as i64,
                name,
            )
        })
        .filter(|&(delta, _)| delta != 0)
        .collect();
    grown.sort_by_key(|&(delta, _)| std::cmp::Reverse(delta));
    let mut out = String::new();
    for (delta, name) in grown.iter().take(6) {
        let _ = writeln!(out, "  {:+8} KiB  {name}", delta);
    }
    out
}

fn soak_secs() -> u64 {
    match std::env::var("SOAK_SECS") {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("SOAK_SECS must be a number of seconds, not {v:?}")),
        Err(_) => 10,
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

// ---------------------------------------------------------------------------------------
// The soak.

/// How the server runs.
struct Mode {
    name: &'static str,
    /// `--cgi`: CGI scripts under /cgi-bin, and every request handled off the loop's thread.
    cgi: bool,
    args: &'static [&'static str],
}

fn soak(mode: Mode) {
    let secs = soak_secs();
    let content = Arc::new(Content {
        medium: pseudo_random_bytes(MEDIUM_LEN, 0x4b1d),
        big: pseudo_random_bytes(BIG_LEN, 0x51ab),
    });
    let site = TempDir::new();
    site.write("small.txt", SMALL);
    site.write("4k.bin", &content.medium);
    site.write("big.bin", &content.big);
    site.write("dir/a.txt", "a\n");
    site.write("dir/b.txt", "b\n");
    site.script("cgi-bin/len.sh", CGI_SCRIPT);

    let mut server = ServerProcess::start(site.path(), &mode);
    let pid = server.pid;
    let ticks = clock_ticks();
    let mut failures: Vec<String> = Vec::new();
    let mut report = format!(
        "\n=== soak: {} (simple_http{}{}; pid {pid}, {}, load {secs} s)\n",
        mode.name,
        if mode.cgi { " --cgi" } else { "" },
        mode.args
            .iter()
            .map(|a| format!(" {a}"))
            .collect::<String>(),
        server.addr
    );

    // The whole measurement; an Err is a failure that ends it early (the server died).
    let measured = (|| -> Result<(), String> {
        let warm = Arc::new(Ctx {
            addr: server.addr,
            cgi: mode.cgi,
            content: Arc::clone(&content),
            stats: Stats::new(),
        });
        // The banner comes before serve_forever's first wait, which opens descriptors of its
        // own (the event loop adds copies of the socket and the waker to epoll): the fresh
        // count is taken once the server has answered a request, and closed it.
        close(&warm, &mut Rng(3)).map_err(|err| format!("the first GET failed: {err}"))?;
        let fresh = sample(pid)?;
        let warm_time = load(&warm, WARM_UP.min(Duration::from_secs(secs.max(1))), 1);
        let (start, start_wait) = settle(pid, fresh.fds, SETTLE_LIMIT)?;
        let start_mappings = mappings(pid)?;
        let _ = writeln!(
            report,
            "warm-up {:.1} s: {} requests, {} errors; fds fresh {}, after warm-up {} (settled in {:.1} s)",
            warm_time.as_secs_f64(),
            warm.stats.total_requests(),
            warm.stats.total_errors(),
            fresh.fds,
            start.fds,
            start_wait.as_secs_f64()
        );
        if start.fds.abs_diff(fresh.fds) > FD_MARGIN {
            failures.push(format!(
                "the warm-up left {} fds open, {} before it (margin {FD_MARGIN})",
                start.fds, fresh.fds
            ));
        }
        if warm.stats.total_errors() > 0 {
            let _ = writeln!(report, "warm-up errors:");
            warm.stats.table(&mut report);
            failures.push(format!(
                "{} unexpected errors during the warm-up",
                warm.stats.total_errors()
            ));
        }

        let ctx = Arc::new(Ctx {
            addr: server.addr,
            cgi: mode.cgi,
            content: Arc::clone(&content),
            stats: Stats::new(),
        });
        let load_time = load(&ctx, Duration::from_secs(secs), 2);
        let after_load = sample(pid)?;
        let (end, end_wait) = settle(pid, start.fds, SETTLE_LIMIT)?;

        // The idle window: the load is over and the server has closed what it will close.
        let idle_from = sample(pid)?;
        let idle_started = Instant::now();
        thread::sleep(IDLE_WINDOW); // the measurement window itself
        let idle_to = sample(pid)?;
        let idle_wall = idle_started.elapsed().as_secs_f64();
        let idle_cpu = (idle_to.cpu_ticks - idle_from.cpu_ticks) as f64 / ticks;
        let idle_share = idle_cpu / idle_wall;

        let requests = ctx.stats.total_requests();
        let errors = ctx.stats.total_errors();
        let load_cpu = (after_load.cpu_ticks - start.cpu_ticks) as f64 / ticks;
        let _ = writeln!(
            report,
            "load {:.1} s: {requests} requests ({:.0}/s), {errors} unexpected errors, server CPU {load_cpu:.1} s",
            load_time.as_secs_f64(),
            requests as f64 / load_time.as_secs_f64(),
        );
        ctx.stats.table(&mut report);
        let rss_margin = RSS_MARGIN_KIB.max((start.rss_kib as f64 * RSS_MARGIN_FRACTION) as u64);
        let _ = writeln!(
            report,
            "RSS start {:.1} MiB, right after the load {:.1} MiB, end {:.1} MiB (allowed growth {:.1} MiB)",
            mib(start.rss_kib),
            mib(after_load.rss_kib),
            mib(end.rss_kib),
            mib(rss_margin)
        );
        let _ = writeln!(
            report,
            "fds start {}, right after the load {}, end {} (after {:.1} s of waiting, limit {:.0} s)",
            start.fds,
            after_load.fds,
            end.fds,
            end_wait.as_secs_f64(),
            SETTLE_LIMIT.as_secs_f64()
        );
        let _ = writeln!(
            report,
            "threads start {}, right after the load {}, end {}",
            start.threads, after_load.threads, end.threads
        );
        let _ = writeln!(
            report,
            "idle window {idle_wall:.2} s: server CPU {idle_cpu:.2} s ({:.1}% of a core)",
            idle_share * 100.0
        );

        if errors > 0 {
            failures.push(format!("{errors} unexpected errors during the load"));
        }
        if requests == 0 {
            failures.push("no request completed during the load".into());
        }
        if end.fds.abs_diff(start.fds) > FD_MARGIN {
            failures.push(format!(
                "the server holds {} fds at the end, {} at the start (margin {FD_MARGIN})",
                end.fds, start.fds
            ));
        }
        if end.rss_kib > start.rss_kib + rss_margin {
            let _ = write!(
                report,
                "the mappings that grew most (KiB resident):\n{}",
                grown_mappings(&start_mappings, &mappings(pid)?)
            );
            failures.push(format!(
                "RSS grew from {:.1} MiB to {:.1} MiB (allowed {:.1} MiB)",
                mib(start.rss_kib),
                mib(end.rss_kib),
                mib(rss_margin)
            ));
        }
        if idle_share >= IDLE_CPU_LIMIT {
            failures.push(format!(
                "the idle server used {:.1}% of a core (limit {:.0}%)",
                idle_share * 100.0,
                IDLE_CPU_LIMIT * 100.0
            ));
        }
        Ok(())
    })();
    if let Err(err) = measured {
        failures.push(format!("measurement stopped: {err}"));
    }

    // Still serving?
    let ctx = Ctx {
        addr: server.addr,
        cgi: mode.cgi,
        content: Arc::clone(&content),
        stats: Stats::new(),
    };
    match close(&ctx, &mut Rng(7)) {
        Ok(_) => {
            let _ = writeln!(report, "GET after the soak: ok");
        }
        Err(err) => {
            let _ = writeln!(report, "GET after the soak: FAILED: {err}");
            failures.push(format!("the server no longer answers a GET: {err}"));
        }
    }

    match server.terminate() {
        Ok((status, took)) => {
            let _ = writeln!(
                report,
                "SIGTERM: exited with {status} after {:.2} s",
                took.as_secs_f64()
            );
            if status.code() != Some(0) {
                failures.push(format!("SIGTERM: exit status {status}, not 0"));
            }
        }
        Err(err) => {
            let _ = writeln!(report, "SIGTERM: {err}");
            failures.push(format!("SIGTERM: {err}"));
        }
    }
    {
        let log = server.stderr.lock().unwrap();
        let _ = writeln!(report, "server stderr: {} lines", log.lines);
        for (message, count) in &log.messages {
            let _ = writeln!(report, "  {count:>6} x {message}");
        }
    }
    if failures.is_empty() {
        let _ = writeln!(report, "result: PASS");
    } else {
        let _ = writeln!(report, "result: FAIL");
        for failure in &failures {
            let _ = writeln!(report, "  - {failure}");
        }
    }
    println!("{report}");
    assert!(
        failures.is_empty(),
        "soak of the {} failed:\n  - {}",
        mode.name,
        failures.join("\n  - ")
    );
}

/// The default event loop, with `--cgi`: every request (files too) is handled on one of
/// the loop's worker threads, as the CGI handler may wait.
#[test]
fn soak_event_loop() {
    soak(Mode {
        name: "event loop",
        cgi: true,
        args: &[],
    });
}

/// The default event loop without `--cgi`: `python3 -m http.server`'s configuration, the
/// one the benchmark measures. Files are served on the loop's own thread, and output the
/// socket does not take waits parked in the loop. No CGI kinds.
#[test]
fn soak_event_loop_files_inline() {
    soak(Mode {
        name: "event loop, files inline",
        cgi: false,
        args: &[],
    });
}

/// `--threading`, with `--cgi`: a thread per connection (Python's ThreadingHTTPServer).
#[test]
fn soak_threading() {
    soak(Mode {
        name: "threading",
        cgi: true,
        args: &["--threading"],
    });
}
