//! The bare loop on io_uring: peer-bare's twin (bench/peers/bare), to measure what io_uring
//! gives over epoll when nothing but the I/O costs anything. Same answers, same behaviour:
//! one thread finds each request's `\r\n\r\n` and answers every complete request (pipelined
//! ones too) with a canned `200 OK`, with `Connection: close` and a close after it when the
//! request contains `Connection: close`. It parses nothing else.
//!
//! ```text
//! peer-bare-uring --port 8080 [--dir DIR] [--files fixed|plain]
//! ```
//!
//! `--dir` is accepted and ignored. `--files plain` uses plain descriptors instead of the
//! ring's registered-file table (the default, `fixed`), to see what registered files give.
//!
//! The I/O, on one ring (see `uring.rs`, the one module with `unsafe`):
//!
//! - one multishot accept, put back when it ends (a completion without `F_MORE`); the
//!   accepted sockets go straight into the registered-file table;
//! - per connection one multishot receive, into buffers of a provided-buffer ring; a buffer
//!   goes back to the ring as soon as its bytes are answered (an incomplete request's bytes
//!   are copied out first); a receive that ends (no `F_MORE`: `ENOBUFS` when the ring ran
//!   dry, or any other reason) is put back after the batch, unless it ended the connection
//!   (end of stream, reset);
//! - the answers of one batch of completions go out in one send per connection
//!   (`MSG_WAITALL`; a send that still comes back short is sent on from where it stopped);
//!   answers made while a send is in flight wait for it;
//! - a connection to close (`Connection: close` answered, end of stream, an error) gets its
//!   receive cancelled and a close linked to its last send;
//! - one `submit_and_wait` per loop: it submits everything the last batch produced and
//!   waits for the next.
//!
//! If io_uring cannot be set up (`kernel.io_uring_disabled`, a seccomp filter, an old
//! kernel) it says so and exits with status 1.

mod uring;

use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::os::fd::AsRawFd;

use uring::{BufRing, Fd, Queue};

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

/// A request head larger than this is dropped with the connection, as peer-bare does.
const HEAD_LIMIT: usize = 4 * 1024;
/// Submission entries (the completion queue has four times as many).
const ENTRIES: u32 = 4096;
/// The provided-buffer ring: buffers and their size (a receive may fill several).
const BUFFERS: u16 = 2048;
const BUFFER_LEN: usize = 2048;
const GROUP: u16 = 0;
/// Slots of the registered-file table.
const FILES: u32 = 16384;

// What a completion is for: the kind in the high 32 bits of its user data, the connection
// in the low ones.
const ACCEPT: u64 = 0;
const RECV: u64 = 1;
const SEND: u64 = 2;
const CANCEL: u64 = 3;
const CLOSE: u64 = 4;

fn user_data(kind: u64, id: usize) -> u64 {
    kind << 32 | id as u64
}

struct Connection {
    fd: Fd,
    /// An incomplete request's bytes, copied out of the ring's buffers.
    input: Vec<u8>,
    /// Answers made while `sending` is in flight.
    queued: Vec<u8>,
    /// What the send in flight (or the last one) sends; not touched while it is in flight.
    sending: Vec<u8>,
    /// How much of `sending` has gone.
    sent: usize,
    send_in_flight: bool,
    recv_armed: bool,
    /// Operations whose last completion has not come: the connection is freed only at 0.
    in_flight: u32,
    /// Read nothing more; close once everything answered is sent.
    closing: bool,
    /// The close is pushed: no operation may be pushed any more.
    closed: bool,
    /// In the batch's list of connections to look at after it.
    dirty: bool,
}

struct Server {
    fixed: bool,
    listener: TcpListener,
    connections: Vec<Option<Connection>>,
    free: Vec<usize>,
    dirty: Vec<usize>,
    buffers: BufRing,
    accept_armed: bool,
}

fn main() {
    let (port, fixed) = parse_args();
    let listener = listen(port).unwrap_or_else(|err| fail("cannot listen", err));
    let addr = listener
        .local_addr()
        .unwrap_or_else(|err| fail("cannot listen", err));
    let mut ring = uring::setup(ENTRIES).unwrap_or_else(|err| no_uring("setting up a ring", err));
    let (submitter, sq, mut cq) = ring.split();
    let mut queue = Queue::new(submitter, sq);
    if let Err(err) = queue.submitter().register_ring_fd() {
        no_uring("registering the ring's descriptor", err);
    }
    if fixed {
        if let Err(err) = queue.submitter().register_files_sparse(FILES) {
            no_uring("registering a file table", err);
        }
    }
    let buffers = BufRing::register(queue.submitter(), BUFFERS, BUFFER_LEN, GROUP)
        .unwrap_or_else(|err| no_uring("registering a provided-buffer ring", err));
    let mut server = Server {
        fixed,
        listener,
        connections: Vec::new(),
        free: Vec::new(),
        dirty: Vec::new(),
        buffers,
        accept_armed: false,
    };
    println!(
        "peer-bare-uring listening on {addr} ({} files)",
        if fixed { "fixed" } else { "plain" }
    );
    // Errors end the process at once (`fail` exits): nothing is dropped while the kernel
    // may still use the buffers of operations in flight.
    loop {
        server
            .after_batch(&mut queue)
            .unwrap_or_else(|err| fail("cannot submit", err));
        match queue.submit_and_wait(1) {
            Ok(_) => {}
            Err(err) if matches!(err.raw_os_error(), Some(libc::EINTR | libc::EBUSY)) => {}
            Err(err) => fail("io_uring_enter", err),
        }
        cq.sync();
        for cqe in &mut cq {
            server
                .complete(&mut queue, cqe.user_data(), cqe.result(), cqe.flags())
                .unwrap_or_else(|err| fail("cannot submit", err));
        }
        // The completions read are the kernel's to reuse before we wait again.
        cq.sync();
    }
}

impl Server {
    fn complete(&mut self, queue: &mut Queue, data: u64, res: i32, flags: u32) -> io::Result<()> {
        let id = (data & u64::from(u32::MAX)) as usize;
        let more = io_uring::cqueue::more(flags);
        match data >> 32 {
            ACCEPT => {
                self.accept_armed = more;
                // A failed accept (out of descriptors or table slots, a connection reset
                // before it was taken) is left: the next one may succeed.
                if res >= 0 {
                    self.accepted(queue, res)?;
                }
                return Ok(());
            }
            RECV => {
                let bid = self.buffers.take(flags);
                let conn = self.connections[id].as_mut().expect("a live connection");
                if !more {
                    conn.recv_armed = false;
                    conn.in_flight -= 1;
                }
                if res > 0 && !conn.closing {
                    let bytes = self.buffers.bytes(bid.expect("a buffer"), res as usize);
                    conn.receive(bytes);
                } else if res == 0 || (res < 0 && res != -libc::ENOBUFS) {
                    // End of stream, reset, cancelled: nothing more to read.
                    conn.closing = true;
                }
                if let Some(bid) = bid {
                    self.buffers.give_back(bid);
                }
            }
            SEND => {
                let conn = self.connections[id].as_mut().expect("a live connection");
                conn.in_flight -= 1;
                conn.send_in_flight = false;
                if res > 0 {
                    conn.sent += res as usize;
                } else {
                    // The peer is gone: drop what it will never read.
                    conn.closing = true;
                    conn.sent = conn.sending.len();
                    conn.queued.clear();
                }
            }
            CANCEL => {
                let conn = self.connections[id].as_mut().expect("a live connection");
                conn.in_flight -= 1;
            }
            CLOSE => {
                let conn = self.connections[id].as_mut().expect("a live connection");
                conn.in_flight -= 1;
                if res == -libc::ECANCELED {
                    // The send it was linked to came back short or failed: the socket is
                    // still open; send on or close again after the batch.
                    conn.closed = false;
                }
            }
            kind => unreachable!("a completion of kind {kind}"),
        }
        let conn = self.connections[id].as_mut().expect("a live connection");
        if conn.closed {
            if conn.in_flight == 0 {
                self.connections[id] = None;
                self.free.push(id);
            }
        } else if !conn.dirty {
            conn.dirty = true;
            self.dirty.push(id);
        }
        Ok(())
    }

    fn accepted(&mut self, queue: &mut Queue, res: i32) -> io::Result<()> {
        let fd = if self.fixed {
            Fd::Fixed(res as u32)
        } else {
            Fd::Plain(res)
        };
        let id = self.free.pop().unwrap_or_else(|| {
            self.connections.push(None);
            self.connections.len() - 1
        });
        self.connections[id] = Some(Connection {
            fd,
            input: Vec::new(),
            queued: Vec::new(),
            sending: Vec::new(),
            sent: 0,
            send_in_flight: false,
            recv_armed: true,
            in_flight: 1,
            closing: false,
            closed: false,
            dirty: false,
        });
        queue.recv_multi(fd, GROUP, user_data(RECV, id))
    }

    /// After a batch of completions: gives the buffers back, sends what the batch answered,
    /// closes what is to close, puts back ended receives and the accept.
    fn after_batch(&mut self, queue: &mut Queue) -> io::Result<()> {
        self.buffers.publish();
        for id in self.dirty.drain(..) {
            let Some(conn) = self.connections[id].as_mut() else {
                continue;
            };
            conn.dirty = false;
            if conn.closed {
                continue;
            }
            if !conn.send_in_flight {
                if conn.sent == conn.sending.len() && !conn.queued.is_empty() {
                    std::mem::swap(&mut conn.sending, &mut conn.queued);
                    conn.queued.clear();
                    conn.sent = 0;
                }
                if conn.closing && conn.recv_armed {
                    queue.cancel(user_data(RECV, id), user_data(CANCEL, id))?;
                    conn.in_flight += 1;
                }
                if conn.sent < conn.sending.len() {
                    let link = conn.closing;
                    // SAFETY: `sending` is not changed or dropped until this send's
                    // completion: it is swapped only when no send is in flight, and the
                    // connection is freed only when nothing is (the process exits without
                    // dropping anything on errors).
                    unsafe {
                        queue.send(
                            conn.fd,
                            &conn.sending[conn.sent..],
                            link,
                            user_data(SEND, id),
                        )?;
                    }
                    conn.send_in_flight = true;
                    conn.in_flight += 1;
                }
                if conn.closing {
                    // Linked to the send just pushed, if one was.
                    queue.close(conn.fd, user_data(CLOSE, id))?;
                    conn.in_flight += 1;
                    conn.closed = true;
                    continue;
                }
            }
            if !conn.closing && !conn.recv_armed {
                queue.recv_multi(conn.fd, GROUP, user_data(RECV, id))?;
                conn.recv_armed = true;
                conn.in_flight += 1;
            }
        }
        if !self.accept_armed {
            queue.accept_multi(self.listener.as_raw_fd(), self.fixed, user_data(ACCEPT, 0))?;
            self.accept_armed = true;
        }
        Ok(())
    }
}

impl Connection {
    /// Answers every complete request in what was received (after what was kept of the
    /// last receive), keeps an incomplete one's bytes.
    fn receive(&mut self, bytes: &[u8]) {
        let close = if self.input.is_empty() {
            let (answered, close) = answer(bytes, 0, &mut self.queued);
            if !close {
                self.input.extend_from_slice(&bytes[answered..]);
            }
            close
        } else {
            // Only the new bytes and the three before them can hold an end not seen yet.
            let scan_from = self.input.len().saturating_sub(3);
            self.input.extend_from_slice(bytes);
            let (answered, close) = answer(&self.input, scan_from, &mut self.queued);
            self.input.drain(..answered);
            close
        };
        if close || self.input.len() >= HEAD_LIMIT {
            self.closing = true;
            self.input = Vec::new();
        }
    }
}

/// Appends to `out` an answer for each complete request in `input` (each ends at a
/// `\r\n\r\n`; the search for the first starts at `scan_from`), stopping after one that
/// contains `Connection: close`. Returns how many bytes those requests took and whether
/// the last of them asked for the close. (peer-bare's, appending instead of replacing.)
fn answer(input: &[u8], scan_from: usize, out: &mut Vec<u8>) -> (usize, bool) {
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

/// A listening socket with a backlog of 1024, as peer-bare's. `TCP_NODELAY` is set on it:
/// Linux gives it to the sockets it accepts, which a multishot accept into the file table
/// leaves no descriptor to set it on.
fn listen(port: u16) -> io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.set_tcp_nodelay(true)?;
    socket.bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, port)).into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

fn no_uring(what: &str, err: io::Error) -> ! {
    let disabled = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
        .map(|text| text.trim().to_string())
        .unwrap_or_else(|_| "unreadable".to_string());
    eprintln!(
        "peer-bare-uring: io_uring is not available here: {what} failed: {err} \
         (kernel.io_uring_disabled = {disabled}: 0 allows it, 1 only for the \
         io_uring_group, 2 for no one; a seccomp filter, as in many containers, or a kernel \
         older than 6.1 also refuses it)"
    );
    std::process::exit(1)
}

fn fail(what: &str, err: io::Error) -> ! {
    eprintln!("peer-bare-uring: {what}: {err}");
    std::process::exit(1)
}

fn parse_args() -> (u16, bool) {
    let mut port = 8000;
    let mut fixed = true;
    let mut argv = std::env::args().skip(1);
    while let Some(flag) = argv.next() {
        let value = argv.next().unwrap_or_else(|| usage(&flag));
        match flag.as_str() {
            "--port" => port = value.parse().unwrap_or_else(|_| usage(&flag)),
            "--dir" => {}
            "--files" => {
                fixed = match value.as_str() {
                    "fixed" => true,
                    "plain" => false,
                    _ => usage(&flag),
                }
            }
            _ => usage(&flag),
        }
    }
    (port, fixed)
}

fn usage(flag: &str) -> ! {
    eprintln!(
        "peer-bare-uring: bad argument {flag}; usage: peer-bare-uring [--port N] [--dir DIR] \
         [--files fixed|plain]"
    );
    std::process::exit(2)
}
