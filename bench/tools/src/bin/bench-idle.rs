//! Holds many idle keep-alive connections open: each makes one `GET /hello`, then stays
//! silent. Prints `ready N failed M` once they are set up, then waits for a line (or the end)
//! of its input and prints `open N`: how many the server has not closed meanwhile.
//!
//! ```text
//! bench-idle 127.0.0.1:8080 10000
//! ```

use std::io::{self, BufRead, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::thread;
use std::time::{Duration, Instant};

/// Connections set up together: few enough to stay inside any server's listen backlog,
/// enough that 10,000 take seconds, not minutes.
const BATCH: usize = 100;
/// A server that serves only so many connections at once (a bounded worker pool) leaves the
/// rest unanswered for good; past this time they count as failed.
const SETUP_LIMIT: Duration = Duration::from_secs(30);

struct Pending {
    stream: TcpStream,
    received: Vec<u8>,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(Ok(address)), Some(Ok(count))) = (
        args.first().map(|a| a.parse::<SocketAddr>()),
        args.get(1).map(|n| n.parse::<usize>()),
    ) else {
        eprintln!("usage: bench-idle ADDRESS COUNT");
        return ExitCode::from(2);
    };
    let deadline = Instant::now() + SETUP_LIMIT;
    let request = bench_tools::request("/hello");
    let mut held = Vec::with_capacity(count);
    let mut first_error = None;
    let mut tried = 0;
    while tried < count && Instant::now() < deadline {
        let mut batch = Vec::with_capacity(BATCH);
        for _ in 0..BATCH.min(count - tried) {
            tried += 1;
            match open(&address, &request, deadline) {
                Ok(stream) => batch.push(Pending {
                    stream,
                    received: Vec::new(),
                }),
                Err(err) => {
                    first_error.get_or_insert(err);
                }
            }
        }
        if let Err(err) = answer_all(&mut batch, deadline, &mut held) {
            first_error.get_or_insert(err);
        }
    }
    if let Some(err) = first_error {
        eprintln!("bench-idle: first failure: {err}");
    }
    println!("ready {} failed {}", held.len(), count - held.len());
    let _ = io::stdout().flush();

    let mut line = String::new();
    let _ = io::stdin().lock().read_line(&mut line);
    let open = held.iter().filter(|s| still_open(s)).count();
    println!("open {open}");
    ExitCode::SUCCESS
}

fn open(address: &SocketAddr, request: &[u8], deadline: Instant) -> io::Result<TcpStream> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(io::Error::new(ErrorKind::TimedOut, "setup took too long"));
    }
    let mut stream = TcpStream::connect_timeout(address, left)?;
    stream.write_all(request)?;
    stream.set_nonblocking(true)?;
    Ok(stream)
}

/// Reads the batch's responses in whatever order they come, so one connection the server
/// never answers does not hold up the others; moves the answered ones to `held`.
fn answer_all(
    batch: &mut Vec<Pending>,
    deadline: Instant,
    held: &mut Vec<TcpStream>,
) -> io::Result<()> {
    let mut first_error = None;
    let mut chunk = [0u8; 4096];
    while !batch.is_empty() && Instant::now() < deadline {
        let mut progress = false;
        let mut i = 0;
        while i < batch.len() {
            let pending = &mut batch[i];
            let outcome = match pending.stream.read(&mut chunk) {
                Ok(0) => Some(Err(io::Error::new(
                    ErrorKind::UnexpectedEof,
                    "closed before answering",
                ))),
                Ok(n) => {
                    progress = true;
                    pending.received.extend_from_slice(&chunk[..n]);
                    bench_tools::parse_response(&pending.received)
                }
                Err(err) if err.kind() == ErrorKind::WouldBlock => None,
                Err(err) => Some(Err(err)),
            };
            match outcome {
                None => i += 1,
                Some(Ok(200)) => held.push(batch.swap_remove(i).stream),
                Some(Ok(status)) => {
                    batch.swap_remove(i);
                    first_error.get_or_insert(io::Error::other(format!("status {status}")));
                }
                Some(Err(err)) => {
                    batch.swap_remove(i);
                    first_error.get_or_insert(err);
                }
            }
        }
        if !progress {
            thread::sleep(Duration::from_millis(1));
        }
    }
    if !batch.is_empty() {
        first_error.get_or_insert(io::Error::new(
            ErrorKind::TimedOut,
            format!(
                "{} connections unanswered after {SETUP_LIMIT:?}",
                batch.len()
            ),
        ));
    }
    first_error.map_or(Ok(()), Err)
}

/// Open means the server has neither closed nor reset it: a peek finds nothing to read yet.
/// Anything the server sent unasked (a 408 before closing, say) counts as closed.
fn still_open(stream: &TcpStream) -> bool {
    let mut byte = [0u8; 1];
    matches!(stream.peek(&mut byte), Err(err) if err.kind() == ErrorKind::WouldBlock)
}
