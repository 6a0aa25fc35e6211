//! Counts the heap allocations of our server per request, in every server mode:
//! `bench/run --only allocations`, or on its own as a check.
//!
//! ```text
//! bench-alloc [--requests N] [--warmup N] [--max-per-request X]
//! ```
//!
//! Starts the server in this process, as `bench/server` builds it for `/hello` (an
//! `HttpServer`, `PROTOCOL_VERSION` HTTP/1.1), with a one-call handler
//! (`req.respond(200, "text/plain", "Hello, world!")`), once per mode and shape:
//!
//! - `event_loop`: `EventLoop::new(0)`, requests on the loop's own thread (`bench/server`'s);
//! - `event_loop_workers`: `EventLoop::new(2)`; the handler does not `may_block`, so its
//!   requests still run on the loop's thread, and the run fails if one does not;
//! - `threading`: `Threading::new()`, a thread per connection;
//! - `thread_pool`: `ThreadPool::new(2, 16)`, the connection on a worker.
//!
//! and the shapes:
//!
//! - `keep_alive`: one request, its whole response, the next request (as wrk's `hello`);
//! - `pipelined`: 16 requests written together, their 16 responses read (as `pipelined`);
//! - `keep_alive_64`: 64 connections, one request to each in turn (event-loop modes only):
//!   each connection parks idle between its requests and gives its head storage to the
//!   thread's pool, from which the next connection's request takes it.
//!
//! A counting global allocator counts only on threads whose thread-local flag is set, and
//! the handler sets it, on its first call on a thread. The handler's thread is the
//! request's thread in every mode (the loop's, the connection's thread, the worker's): it
//! reads the request, parses it, runs the handler and writes the answer, so its
//! allocations are the request's. What a thread does before its first request (building
//! the server, starting the thread, accepting) is not counted, which is right: that is
//! set-up, warm-up at most. The client (the main thread) never runs the handler and is
//! never counted; nor is the thread that only accepts (`Threading`'s, the pool's).
//!
//! Each mode and shape gets a server of its own and its connections: the first request
//! (which gives the responses' length), `--warmup` requests, a mark, `--requests`
//! requests, a mark; the figures are the differences over the requests. The client takes
//! the marks between batches, when it has read every response sent so far: the server's
//! last few steps after the last warm-up response (back to waiting) may fall after the
//! first mark, as those after the last measured response may fall after the second; in
//! the steady state they are alike, so the difference is the cost of `--requests` whole
//! requests. The window must hold nothing else, so the run fails (a broken measurement,
//! not a figure) unless every request in it reached the handler, on the one thread that
//! had run it before the window (a thread starting in the window would have its
//! request's start uncounted), the loop's thread in an event loop mode. Then the client
//! closes its connection and the server is shut down and closed (which joins its threads)
//! before the next one starts, so no connection's end lands in another's window.
//!
//! It prints a line per mode and shape and a last line `BENCH_ALLOC {json}` for the
//! harness: `{mode: {shape: {...}}}`. With `--max-per-request X` it is a test: it exits 1,
//! after its figures, naming each mode and shape whose allocations per request
//! (allocations and reallocations together) are above `X`; `--max-per-request 0` is issue
//! 15's "a warm request allocates nothing". Without it (`bench/run`) it only records. A
//! broken exchange or measurement exits 1 as well; bad arguments exit 2.

#![deny(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{mpsc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};

use socketserver::http::{HttpHandler, HttpRequest, Version};
use socketserver::{
    Concurrency, EventLoop, HandlerResult, Server, ServerHandle, TcpTransport, ThreadPool,
    Threading,
};

const HELLO: &[u8] = b"Hello, world!";
const REQUEST: &[u8] = b"GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
const DEPTH: usize = 16;
/// The name of the thread that calls `serve_forever`: an event loop's thread.
const SERVING_THREAD: &str = "serve";

/// The system allocator, counting what the threads that asked for it allocate.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static REALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Whether this thread's allocations count: set by the handler, on its first call on
    /// the thread. A const initializer and no destructor: reading it never allocates.
    static COUNTED: Cell<bool> = const { Cell::new(false) };
}

/// The names of the threads that have run the handler, of the server running now, in the
/// order of their first call.
static HANDLER_THREADS: Mutex<Vec<String>> = Mutex::new(Vec::new());
/// Calls of the handler.
static CALLS: AtomicU64 = AtomicU64::new(0);

fn counted() -> bool {
    // After the thread's locals are gone (its exit), nothing counts.
    COUNTED.try_with(Cell::get).unwrap_or(false)
}

// SAFETY: every method hands its arguments on to `System` unchanged and returns what it
// returns, so `System`'s guarantees are ours; the counting touches only atomics and a
// const-initialized thread-local, neither of which allocates.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if counted() {
            ALLOCATIONS.fetch_add(1, Relaxed);
            BYTES.fetch_add(layout.size() as u64, Relaxed);
        }
        // SAFETY: the caller's guarantees for `alloc` are `System.alloc`'s.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if counted() {
            ALLOCATIONS.fetch_add(1, Relaxed);
            BYTES.fetch_add(layout.size() as u64, Relaxed);
        }
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if counted() {
            REALLOCATIONS.fetch_add(1, Relaxed);
            BYTES.fetch_add(new_size.saturating_sub(layout.size()) as u64, Relaxed);
        }
        // SAFETY: `ptr` and `layout` come from this allocator, i.e. from `System`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` and `layout` come from this allocator, i.e. from `System`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[derive(Clone, Copy)]
struct Counts {
    allocations: u64,
    reallocations: u64,
    bytes: u64,
    calls: u64,
    handler_threads: usize,
}

fn mark() -> Counts {
    Counts {
        allocations: ALLOCATIONS.load(Relaxed),
        reallocations: REALLOCATIONS.load(Relaxed),
        bytes: BYTES.load(Relaxed),
        calls: CALLS.load(Relaxed),
        handler_threads: handler_threads().len(),
    }
}

fn handler_threads() -> std::sync::MutexGuard<'static, Vec<String>> {
    HANDLER_THREADS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
}

/// bench/server's `/hello`, in the one call a handler that answers it needs.
#[derive(Clone)]
struct Hello;

impl HttpHandler for Hello {
    const PROTOCOL_VERSION: Version = Version::HTTP_11;

    fn do_get(&mut self, req: &mut HttpRequest<'_>) -> HandlerResult {
        if !COUNTED.with(Cell::get) {
            // This thread's first request: from here on its allocations are requests'.
            // (Naming it allocates, before the flag is set.)
            let name = thread::current().name().unwrap_or("unnamed").to_owned();
            handler_threads().push(name);
            COUNTED.with(|c| c.set(true));
        }
        CALLS.fetch_add(1, Relaxed);
        req.respond(200, "text/plain", HELLO)
    }
}

/// A server mode: how its concurrency is made.
struct Mode {
    name: &'static str,
    concurrency: &'static str,
    /// Whether the handler must run on the serving thread (an event loop's).
    on_loop_thread: bool,
    start: fn() -> io::Result<Running>,
}

const MODES: [Mode; 4] = [
    Mode {
        name: "event_loop",
        concurrency: "EventLoop::new(0)",
        on_loop_thread: true,
        start: || start(EventLoop::new(0)?),
    },
    Mode {
        name: "event_loop_workers",
        concurrency: "EventLoop::new(2)",
        on_loop_thread: true,
        start: || start(EventLoop::new(2)?),
    },
    Mode {
        name: "threading",
        concurrency: "Threading::new()",
        on_loop_thread: false,
        start: || start(Threading::new()),
    },
    Mode {
        name: "thread_pool",
        concurrency: "ThreadPool::new(2, 16)",
        on_loop_thread: false,
        start: || start(ThreadPool::new(2, 16)),
    },
];

/// A server serving on a thread of its own.
struct Running {
    address: SocketAddr,
    handle: ServerHandle,
    thread: JoinHandle<()>,
}

impl Running {
    /// Stops and closes the server (which joins its threads), and joins its thread.
    fn stop(self) -> io::Result<()> {
        self.handle.shutdown();
        self.thread
            .join()
            .map_err(|_| io::Error::other("the server thread panicked"))
    }
}

/// Starts the server on a thread of its own, `SERVING_THREAD`.
fn start<C: Concurrency>(concurrency: C) -> io::Result<Running> {
    let (tx, rx) = mpsc::channel();
    let thread = thread::Builder::new()
        .name(SERVING_THREAD.into())
        .spawn(move || {
            // `builder` starts from a default strategy (any will do: `Threading`'s costs
            // nothing to make) that `concurrency` replaces.
            let built = Server::<TcpTransport, Hello, Threading>::builder(
                SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
                Hello,
            )
            .concurrency(concurrency)
            .build();
            let server = match built {
                Ok(server) => server,
                Err(err) => return tx.send(Err(err)).unwrap_or(()),
            };
            let address = server.server_address().inet().expect("a TCP server");
            let _ = tx.send(Ok((address, server.handle())));
            if let Err(err) = server.serve_forever() {
                eprintln!("bench-alloc: the server stopped: {err}");
            }
            server.server_close();
        })?;
    let (address, handle) = rx
        .recv()
        .map_err(|_| io::Error::other("the server thread ended before it listened"))??;
    Ok(Running {
        address,
        handle,
        thread,
    })
}

/// One connection's client: writes requests, reads exactly the responses' bytes.
struct Client {
    stream: TcpStream,
    /// The length of one response (they are all alike but for the date, whose length is
    /// fixed), learnt from the first.
    response_len: usize,
    buffer: Vec<u8>,
    batch: Vec<u8>,
}

impl Client {
    fn connect(address: SocketAddr) -> io::Result<Self> {
        let mut stream = TcpStream::connect(address)?;
        stream.set_nodelay(true)?;
        stream.write_all(REQUEST)?;
        // The first response: its head's end and Content-Length give every one's length.
        let mut buffer = vec![0u8; 64 * 1024];
        let mut filled = 0;
        let response_len = loop {
            let n = stream.read(&mut buffer[filled..])?;
            if n == 0 {
                return Err(io::Error::other("the server closed the connection"));
            }
            filled += n;
            let head = &buffer[..filled];
            if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                let text = String::from_utf8_lossy(&head[..end]).to_ascii_lowercase();
                let length: usize = text
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .ok_or_else(|| io::Error::other("a response without Content-Length"))?;
                if !text.starts_with("http/1.1 200") {
                    return Err(io::Error::other(format!("not a 200: {text:?}")));
                }
                if filled >= end + 4 + length {
                    break end + 4 + length;
                }
            }
        };
        let batch = REQUEST.repeat(DEPTH);
        Ok(Client {
            stream,
            response_len,
            buffer,
            batch,
        })
    }

    /// `requests` requests, `depth` at a time (1: one after the other's response).
    fn run(&mut self, requests: usize, depth: usize) -> io::Result<()> {
        let mut left = requests;
        while left > 0 {
            let n = left.min(depth);
            self.stream.write_all(&self.batch[..n * REQUEST.len()])?;
            let want = n * self.response_len;
            self.stream.read_exact(&mut self.buffer[..want])?;
            if !self.buffer.starts_with(b"HTTP/1.1 200 ") || !self.buffer[..want].ends_with(HELLO) {
                return Err(io::Error::other("an unexpected response"));
            }
            left -= n;
        }
        Ok(())
    }
}

struct Shape {
    name: &'static str,
    depth: usize,
    /// Connections, each sent a batch in turn. More than one only where one thread serves
    /// them all (the event loop's): the check that an idle connection's head storage,
    /// given back to the thread's pool, serves the next connection's request.
    connections: usize,
}

const SHAPES: [Shape; 3] = [
    Shape {
        name: "keep_alive",
        depth: 1,
        connections: 1,
    },
    Shape {
        name: "pipelined",
        depth: DEPTH,
        connections: 1,
    },
    Shape {
        name: "keep_alive_64",
        depth: 1,
        connections: 64,
    },
];

/// `requests` requests over `clients`, a batch of `depth` to each in turn.
fn run_all(clients: &mut [Client], requests: usize, depth: usize) -> io::Result<()> {
    let mut left = requests;
    while left > 0 {
        for client in clients.iter_mut() {
            let n = left.min(depth);
            if n == 0 {
                break;
            }
            client.run(n, depth)?;
            left -= n;
        }
    }
    Ok(())
}

/// One mode and shape's figures.
struct Figures {
    mode: &'static str,
    shape: &'static str,
    requests: usize,
    /// Allocations and reallocations: per request, what `--max-per-request` bounds.
    allocations: u64,
    reallocations: u64,
    json: String,
}

impl Figures {
    fn per_request(&self) -> f64 {
        (self.allocations + self.reallocations) as f64 / self.requests as f64
    }
}

/// Counts one shape against a server of its own in one mode.
fn measure(mode: &Mode, shape: &Shape, warmup: usize, requests: usize) -> io::Result<Figures> {
    handler_threads().clear();
    let server = (mode.start)()?;
    let measured = measure_on(server.address, mode, shape, warmup, requests);
    // The client is closed by now: a `Threading` server's close waits for its thread.
    server.stop()?;
    measured
}

fn measure_on(
    address: SocketAddr,
    mode: &Mode,
    shape: &Shape,
    warmup: usize,
    requests: usize,
) -> io::Result<Figures> {
    let mut clients = (0..shape.connections)
        .map(|_| Client::connect(address))
        .collect::<io::Result<Vec<_>>>()?;
    run_all(&mut clients, warmup, shape.depth)?;
    let before = mark();
    run_all(&mut clients, requests, shape.depth)?;
    let after = mark();
    drop(clients);

    // The window holds the requests, all of them, on the one thread counted before it.
    let calls = after.calls - before.calls;
    if calls != requests as u64 {
        return Err(io::Error::other(format!(
            "{calls} calls of the handler for {requests} requests"
        )));
    }
    let threads = handler_threads().clone();
    if after.handler_threads != before.handler_threads || threads.len() != 1 {
        return Err(io::Error::other(format!(
            "the handler ran on {threads:?}, {} of them first inside the window: not one \
             thread counted from before the window",
            after.handler_threads - before.handler_threads
        )));
    }
    let thread = &threads[0];
    if mode.on_loop_thread && thread != SERVING_THREAD {
        return Err(io::Error::other(format!(
            "the handler ran on {thread:?}, not on the loop's thread: the loop's share of \
             each request was not counted"
        )));
    }

    let allocations = after.allocations - before.allocations;
    let reallocations = after.reallocations - before.reallocations;
    let bytes = after.bytes - before.bytes;
    let n = requests as f64;
    let (allocations_pr, reallocations_pr, bytes_pr) = (
        allocations as f64 / n,
        reallocations as f64 / n,
        bytes as f64 / n,
    );
    println!(
        "{:<18} {:<13} {} requests ({} deep) after {} of warm-up: {:.2} allocations, {:.2} \
         reallocations, {:.0} bytes per request (handler on {thread})",
        mode.name,
        shape.name,
        requests,
        shape.depth,
        warmup,
        allocations_pr,
        reallocations_pr,
        bytes_pr
    );
    let json = format!(
        "\"{}\": {{\"depth\": {}, \"requests\": {}, \"warmup\": {}, \
         \"allocations\": {}, \"reallocations\": {}, \"bytes\": {}, \
         \"allocations_per_request\": {:.4}, \"reallocations_per_request\": {:.4}, \
         \"bytes_per_request\": {:.1}, \"concurrency\": \"{}\", \"handler_thread\": \"{}\"}}",
        shape.name,
        shape.depth,
        requests,
        warmup,
        allocations,
        reallocations,
        bytes,
        allocations_pr,
        reallocations_pr,
        bytes_pr,
        mode.concurrency,
        thread.escape_default()
    );
    Ok(Figures {
        mode: mode.name,
        shape: shape.name,
        requests,
        allocations,
        reallocations,
        json,
    })
}

struct Args {
    requests: usize,
    warmup: usize,
    max_per_request: Option<f64>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        requests: 20_000,
        warmup: 2_000,
        max_per_request: None,
    };
    let mut argv = std::env::args().skip(1);
    while let Some(flag) = argv.next() {
        let value = argv.next().ok_or(format!("{flag} needs a value"))?;
        let bad = |e: &dyn std::fmt::Display| format!("{flag} {value}: {e}");
        match flag.as_str() {
            "--requests" => match value.parse() {
                Ok(0) => return Err(bad(&"must be at least 1")),
                Ok(n) => args.requests = n,
                Err(e) => return Err(bad(&e)),
            },
            "--warmup" => args.warmup = value.parse().map_err(|e| bad(&e))?,
            "--max-per-request" => match value.parse::<f64>() {
                Ok(x) if x >= 0.0 => args.max_per_request = Some(x),
                Ok(_) => return Err(bad(&"must be 0 or more")),
                Err(e) => return Err(bad(&e)),
            },
            _ => return Err(format!("unknown argument {flag}")),
        }
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!(
                "bench-alloc: {message}; usage: bench-alloc [--requests N] [--warmup N] \
                 [--max-per-request X]"
            );
            return ExitCode::from(2);
        }
    };
    let mut figures = Vec::new();
    for mode in &MODES {
        for shape in &SHAPES {
            if shape.connections > 1 && !mode.on_loop_thread {
                // A thread per connection keeps its storage: nothing to pool.
                continue;
            }
            match measure(mode, shape, args.warmup, args.requests) {
                Ok(f) => figures.push(f),
                Err(err) => {
                    eprintln!("bench-alloc: {} {}: {err}", mode.name, shape.name);
                    return ExitCode::FAILURE;
                }
            }
        }
    }
    let modes: Vec<String> = MODES
        .iter()
        .map(|mode| {
            let shapes: Vec<&str> = figures
                .iter()
                .filter(|f| f.mode == mode.name)
                .map(|f| f.json.as_str())
                .collect();
            format!("\"{}\": {{{}}}", mode.name, shapes.join(", "))
        })
        .collect();
    println!("BENCH_ALLOC {{{}}}", modes.join(", "));

    let Some(max) = args.max_per_request else {
        return ExitCode::SUCCESS;
    };
    let over: Vec<&Figures> = figures.iter().filter(|f| f.per_request() > max).collect();
    for f in &over {
        eprintln!(
            "bench-alloc: FAIL: {} {}: {} allocations + {} reallocations over {} requests, \
             {} per request > --max-per-request {max}",
            f.mode,
            f.shape,
            f.allocations,
            f.reallocations,
            f.requests,
            f.per_request()
        );
    }
    if over.is_empty() {
        println!(
            "bench-alloc: every mode and shape at most {max} allocations per request \
             (reallocations included)"
        );
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
