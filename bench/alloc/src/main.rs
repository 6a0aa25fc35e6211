//! Counts the heap allocations of our server per request: `bench/run --only allocations`.
//!
//! ```text
//! bench-alloc [--requests N] [--warmup N]
//! ```
//!
//! Starts the server in this process, as `bench/server` builds it for `/hello` (an
//! `HttpServer` on `EventLoop::new(0)`: requests run on the loop's own thread), with a
//! one-call handler (`req.respond(200, "text/plain", "Hello, world!")`). A counting global
//! allocator counts only on the server's thread: a thread-local flag, set there before
//! `serve_forever`, says which allocations are the server's; the client (this thread) is
//! never counted. For each shape, on a connection of its own: `--warmup` requests, a mark,
//! `--requests` requests, a mark; the figures are the difference over the requests.
//!
//! - `keep_alive`: one request, its whole response, the next request (as wrk's `hello`).
//! - `pipelined`: 16 requests written together, their 16 responses read (as `pipelined`).
//!
//! It prints a line per shape and a last line `BENCH_ALLOC {json}` for the harness. It
//! fails on nothing but a broken exchange: the counts are figures, not a test (yet).

#![deny(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc;

use socketserver::http::{HttpHandler, HttpRequest, HttpServer, Version};
use socketserver::{EventLoop, HandlerResult, Server, TcpTransport};

const HELLO: &[u8] = b"Hello, world!";
const REQUEST: &[u8] = b"GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
const DEPTH: usize = 16;

/// The system allocator, counting what the threads that asked for it allocate.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static REALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Whether this thread's allocations count: set on the server's thread only. A const
    /// initializer and no destructor: reading it never allocates.
    static COUNTED: Cell<bool> = const { Cell::new(false) };
}

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
}

fn mark() -> Counts {
    Counts {
        allocations: ALLOCATIONS.load(Relaxed),
        reallocations: REALLOCATIONS.load(Relaxed),
        bytes: BYTES.load(Relaxed),
    }
}

/// bench/server's `/hello`, in the one call a handler that answers it needs.
#[derive(Clone)]
struct Hello;

impl HttpHandler for Hello {
    const PROTOCOL_VERSION: Version = Version::HTTP_11;

    fn do_get(&mut self, req: &mut HttpRequest<'_>) -> HandlerResult {
        req.respond(200, "text/plain", HELLO)
    }
}

/// Starts the server on a thread of its own, counted; returns its address.
fn start() -> io::Result<SocketAddr> {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("server".into())
        .spawn(move || {
            let built = Server::<TcpTransport, _, EventLoop>::builder(
                SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
                Hello,
            )
            .concurrency(match EventLoop::new(0) {
                Ok(event_loop) => event_loop,
                Err(err) => return tx.send(Err(err)).unwrap_or(()),
            })
            .build();
            let server: HttpServer<Hello> = match built {
                Ok(server) => server,
                Err(err) => return tx.send(Err(err)).unwrap_or(()),
            };
            let address = server.server_address().inet().expect("a TCP server");
            COUNTED.with(|c| c.set(true));
            let _ = tx.send(Ok(address));
            if let Err(err) = server.serve_forever() {
                eprintln!("bench-alloc: the server stopped: {err}");
            }
        })?;
    rx.recv()
        .map_err(|_| io::Error::other("the server thread ended before it listened"))?
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
}

fn measure(
    address: SocketAddr,
    shape: &Shape,
    warmup: usize,
    requests: usize,
) -> io::Result<String> {
    let mut client = Client::connect(address)?;
    client.run(warmup, shape.depth)?;
    let before = mark();
    client.run(requests, shape.depth)?;
    let after = mark();
    let n = requests as f64;
    let allocations = (after.allocations - before.allocations) as f64 / n;
    let reallocations = (after.reallocations - before.reallocations) as f64 / n;
    let bytes = (after.bytes - before.bytes) as f64 / n;
    println!(
        "{:<10} {} requests ({} deep) after {} of warm-up: {:.2} allocations, {:.2} \
         reallocations, {:.0} bytes per request",
        shape.name, requests, shape.depth, warmup, allocations, reallocations, bytes
    );
    Ok(format!(
        "\"{}\": {{\"depth\": {}, \"requests\": {}, \"warmup\": {}, \
         \"allocations\": {}, \"reallocations\": {}, \"bytes\": {}, \
         \"allocations_per_request\": {:.4}, \"reallocations_per_request\": {:.4}, \
         \"bytes_per_request\": {:.1}}}",
        shape.name,
        shape.depth,
        requests,
        warmup,
        after.allocations - before.allocations,
        after.reallocations - before.reallocations,
        after.bytes - before.bytes,
        allocations,
        reallocations,
        bytes
    ))
}

fn parse_args() -> Result<(usize, usize), String> {
    let (mut requests, mut warmup) = (20_000, 2_000);
    let mut argv = std::env::args().skip(1);
    while let Some(flag) = argv.next() {
        let value = argv.next().ok_or(format!("{flag} needs a value"))?;
        let number = value.parse().map_err(|e| format!("{flag}: {e}"))?;
        match flag.as_str() {
            "--requests" if number > 0 => requests = number,
            "--warmup" => warmup = number,
            _ => return Err(format!("bad argument {flag} {value}")),
        }
    }
    Ok((requests, warmup))
}

fn main() -> ExitCode {
    let (requests, warmup) = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("bench-alloc: {message}; usage: bench-alloc [--requests N] [--warmup N]");
            return ExitCode::from(2);
        }
    };
    let shapes = [
        Shape {
            name: "keep_alive",
            depth: 1,
        },
        Shape {
            name: "pipelined",
            depth: DEPTH,
        },
    ];
    let run = || -> io::Result<Vec<String>> {
        let address = start()?;
        shapes
            .iter()
            .map(|shape| measure(address, shape, warmup, requests))
            .collect()
    };
    match run() {
        Ok(parts) => {
            println!("BENCH_ALLOC {{{}}}", parts.join(", "));
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("bench-alloc: {err}");
            ExitCode::FAILURE
        }
    }
}
