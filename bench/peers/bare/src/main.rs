//! The bare loop: the machine's limit for `/hello`-shaped loads. One thread, one mio poll
//! (epoll, edge-triggered); it accepts, reads, finds each `\r\n\r\n` in what it has read and
//! answers every complete request in the buffer (pipelined ones too) with a canned
//! `200 OK` in one write per read. It parses nothing else: the method, the path and the
//! headers are never looked at, except that a request containing `Connection: close`
//! gets the answer with `Connection: close` and the connection is closed after it.
//!
//! ```text
//! peer-bare --port 8080 [--dir DIR]   # --dir is accepted and ignored: it serves no files
//! ```
//!
//! The answer has the bytes of our server's `/hello` (bench/server): the same status line,
//! `Server` and `Date` headers of the same lengths (the date fixed, not kept current),
//! `Content-Type`, `Content-Length` and the 13-byte body: 148 bytes.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

const HELLO: &[u8] = b"HTTP/1.1 200 OK\r\n\
Server: bare-loop/0.1.0 mio 1.x\r\n\
Date: Wed, 02 Dec 2026 06:00:00 GMT\r\n\
Content-Type: text/plain\r\n\
Content-Length: 13\r\n\
\r\n\
Hello, world!";

const HELLO_CLOSE: &[u8] = b"HTTP/1.1 200 OK\r\n\
Server: bare-loop/0.1.0 mio 1.x\r\n\
Date: Wed, 02 Dec 2026 06:00:00 GMT\r\n\
Content-Type: text/plain\r\n\
Content-Length: 13\r\n\
Connection: close\r\n\
\r\n\
Hello, world!";

const LISTENER: Token = Token(usize::MAX);
/// A connection's read buffer: a request head larger than this is dropped with the
/// connection (wrk's are ~40 bytes, 16 pipelined ~650).
const BUFFER: usize = 4 * 1024;

struct Connection {
    stream: TcpStream,
    /// Bytes read and not yet answered (the start of an incomplete request).
    input: Vec<u8>,
    filled: usize,
    /// Answers the socket did not take yet; nothing more is read until they are written.
    pending: Vec<u8>,
    /// Close once `pending` is written (a request said `Connection: close`).
    closing: bool,
}

fn main() -> io::Result<()> {
    let port = parse_args();
    let mut listener = listen(port)?;
    println!("peer-bare listening on {}", listener.local_addr()?);
    let mut poll = Poll::new()?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let mut events = Events::with_capacity(1024);
    let mut connections: Vec<Option<Connection>> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    // The answers of one read, reused.
    let mut out = Vec::with_capacity(64 * HELLO_CLOSE.len());
    loop {
        if let Err(err) = poll.poll(&mut events, None) {
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        for event in events.iter() {
            if event.token() == LISTENER {
                accept(&listener, &poll, &mut connections, &mut free)?;
                continue;
            }
            let slot = event.token().0;
            let done = match connections.get_mut(slot).and_then(Option::as_mut) {
                Some(conn) => serve(conn, &mut out),
                None => continue,
            };
            if done {
                if let Some(mut conn) = connections[slot].take() {
                    let _ = poll.registry().deregister(&mut conn.stream);
                }
                free.push(slot);
            }
        }
    }
}

/// A listening socket with a backlog of 1024, as ours and nginx's have (mio's and std's
/// 128 would make `c1000` measure SYN retries).
fn listen(port: u16) -> io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, port)).into())?;
    socket.listen(1024)?;
    socket.set_nonblocking(true)?;
    Ok(TcpListener::from_std(socket.into()))
}

fn accept(
    listener: &TcpListener,
    poll: &Poll,
    connections: &mut Vec<Option<Connection>>,
    free: &mut Vec<usize>,
) -> io::Result<()> {
    loop {
        let (mut stream, _) = match listener.accept() {
            Ok(accepted) => accepted,
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            // Out of descriptors, a connection reset before it was taken: try later.
            Err(_) => return Ok(()),
        };
        stream.set_nodelay(true)?;
        let slot = free.pop().unwrap_or_else(|| {
            connections.push(None);
            connections.len() - 1
        });
        poll.registry().register(
            &mut stream,
            Token(slot),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        connections[slot] = Some(Connection {
            stream,
            input: vec![0; BUFFER],
            filled: 0,
            pending: Vec::new(),
            closing: false,
        });
    }
}

/// Reads and answers until the socket has nothing more (edge-triggered); true when the
/// connection is to be dropped.
fn serve(conn: &mut Connection, out: &mut Vec<u8>) -> bool {
    loop {
        if !conn.pending.is_empty() {
            match conn.stream.write(&conn.pending) {
                Ok(n) => {
                    conn.pending.drain(..n);
                    if !conn.pending.is_empty() {
                        continue;
                    }
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return false,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return true,
            }
        }
        if conn.closing {
            return true;
        }
        let n = match conn.stream.read(&mut conn.input[conn.filled..]) {
            Ok(0) => return true,
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => return false,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return true,
        };
        // Only the new bytes and the three before them can hold an end not seen yet.
        let scan_from = conn.filled.saturating_sub(3);
        conn.filled += n;
        let (answered, closing) = answer(&conn.input[..conn.filled], scan_from, out);
        if answered == 0 {
            if conn.filled == conn.input.len() {
                return true; // a head larger than the buffer
            }
            continue;
        }
        conn.input.copy_within(answered..conn.filled, 0);
        conn.filled -= answered;
        conn.closing = closing;
        // One write for every answer of this read.
        let mut written = 0;
        while written < out.len() {
            match conn.stream.write(&out[written..]) {
                Ok(n) => written += n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => return true,
            }
        }
        conn.pending.extend_from_slice(&out[written..]);
    }
}

/// Puts into `out` an answer for each complete request in `input` (each ends at a
/// `\r\n\r\n`; the search for the first starts at `scan_from`), stopping after one that
/// contains `Connection: close`. Returns how many bytes those requests took and whether
/// the last of them asked for the close.
fn answer(input: &[u8], scan_from: usize, out: &mut Vec<u8>) -> (usize, bool) {
    out.clear();
    let mut start = 0;
    let mut from = scan_from;
    while let Some(at) = find(&input[from..], b"\r\n\r\n") {
        let end = from + at + 4;
        let request = &input[start..end];
        let close = find(request, b"Connection: close").is_some()
            || find(request, b"connection: close").is_some();
        out.extend_from_slice(if close { HELLO_CLOSE } else { HELLO });
        start = end;
        from = end;
        if close {
            return (start, true);
        }
    }
    (start, false)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn parse_args() -> u16 {
    let mut port = 8000;
    let mut argv = std::env::args().skip(1);
    while let Some(flag) = argv.next() {
        let value = argv.next().unwrap_or_else(|| usage(&flag));
        match flag.as_str() {
            "--port" => port = value.parse().unwrap_or_else(|_| usage(&flag)),
            "--dir" => {}
            _ => usage(&flag),
        }
    }
    port
}

fn usage(flag: &str) -> ! {
    eprintln!("peer-bare: bad argument {flag}; usage: peer-bare [--port N] [--dir DIR]");
    std::process::exit(2)
}
