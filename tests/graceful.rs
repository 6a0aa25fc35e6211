//! Graceful shutdown: `ServerHandle::shutdown_gracefully(timeout)` on every strategy
//! (`EventLoop::new(0)`, `EventLoop::new(4)`, `Threading`, `ThreadPool::new(4, 16)`), over
//! HTTP and, for the idle and in-flight cases, HTTPS:
//!
//! - an idle keep-alive connection is closed by the drain, long before its keep-alive
//!   timeout (60 s here), and the drain then ends at once;
//! - a download in flight when the drain begins finishes whole; a request whose head was
//!   half sent when the drain began is answered, with `Connection: close`;
//! - connections queued in the kernel, not yet accepted, are served, not reset;
//! - what never finishes is cut at the deadline, and `shutdown_gracefully` returns then;
//! - a plain `shutdown()` during a drain ends it at once;
//! - `is_draining()` is true while it drains, and the port refuses connections as soon as
//!   the drain has begun.
//!
//! After every drain the port refuses connections, the process idles (CPU time from
//! `/proc/self/stat`) and holds the descriptors it held before the server existed (as in
//! tests/faults.rs, whose rig this suite uses). The bounds on how long a drain takes are
//! loose (seconds, far from the limits a wrong drain would wait for): they tell a drain
//! that waited for a timeout from one that did not, they do not measure speed.
//!
//! Every test measures the whole process, so each takes the one lock of
//! `faults_support::run`, and this binary holds nothing else.

#[macro_use]
mod faults_support;
mod tls_support;

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::sync::{Condvar, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use faults_support::*;
use socketserver::http::{Limits, Version};
use socketserver::{RequestHandler, ServerHandle, ServerHooks, StreamRequest, TcpTransport};
use tls_support::{TlsConn, TlsEnd, TlsRig};

on_every_strategy!(
    idle_keep_alive_is_closed_at_once,
    download_in_flight_finishes,
    head_in_parts_is_answered_with_close,
    next_head_begun_before_the_drain_is_answered,
    queued_connections_are_served,
    deadline_cuts_what_is_left,
    plain_shutdown_ends_the_drain,
    tls_idle_keep_alive_is_closed_at_once,
    tls_download_in_flight_finishes,
);

/// The keep-alive timeout of these servers: a connection the drain did not close would
/// stay open this long.
const KEEP_ALIVE: Duration = Duration::from_secs(60);

/// The drain's timeout where the deadline is not what a case is about.
const LONG: Duration = Duration::from_secs(30);

/// How long a drain may take once nothing is left for it to wait for: far below [`LONG`]
/// and [`KEEP_ALIVE`], so that a drain that waited for either fails.
const SOON: Duration = Duration::from_secs(5);

/// Nothing but the drain ends a connection in these cases: every limit is [`KEEP_ALIVE`].
fn long_limits() -> Limits {
    Limits {
        head_timeout: KEEP_ALIVE,
        keep_alive_timeout: KEEP_ALIVE,
        body_timeout: KEEP_ALIVE,
        send_timeout: KEEP_ALIVE,
        ..Limits::default()
    }
}

// ---------------------------------------------------------------------------------------
// The drain, from the outside

/// `shutdown_gracefully(timeout)` running on a thread of its own, as a supervisor calls it.
struct Drain {
    thread: JoinHandle<Duration>,
}

impl Drain {
    fn begin(handle: ServerHandle, timeout: Duration) -> Drain {
        assert!(!handle.is_draining(), "draining before shutdown_gracefully");
        let thread = thread::Builder::new()
            .name("shutdown_gracefully".into())
            .spawn(move || {
                let started = Instant::now();
                handle.shutdown_gracefully(timeout);
                started.elapsed()
            })
            .expect("spawn the thread of shutdown_gracefully");
        Drain { thread }
    }

    /// Waits (bounded by `limit`) for `shutdown_gracefully` to return; how long it took.
    fn ended_within(self, limit: Duration, what: &str) -> Duration {
        let started = Instant::now();
        let ended = poll_until(limit, || self.thread.is_finished());
        assert!(
            ended,
            "shutdown_gracefully did not return within {limit:?} of {what} ({} ms)",
            started.elapsed().as_millis()
        );
        self.thread.join().expect("shutdown_gracefully panicked")
    }
}

/// Waits (bounded) until the server says it drains.
fn wait_draining(handle: &ServerHandle) {
    assert!(
        poll_until(WAIT, || handle.is_draining()),
        "is_draining() not true within {WAIT:?} of shutdown_gracefully"
    );
}

/// Panics unless a connection to `addr` is refused: the listening socket is closed.
fn assert_refused(addr: SocketAddr, when: &str) {
    match TcpStream::connect_timeout(&addr, WAIT) {
        Err(err) if err.kind() == io::ErrorKind::ConnectionRefused => {}
        Err(err) => panic!("connecting to {addr} {when}: {err}, expected ECONNREFUSED"),
        Ok(_) => panic!("connecting to {addr} {when} succeeded, expected ECONNREFUSED"),
    }
}

/// Waits (bounded) until connections to `addr` are refused. A connection made before the
/// socket closed is dropped at once (the drain serves or resets it, either is fine here).
fn wait_refused(addr: SocketAddr, when: &str) {
    let mut last = String::new();
    let refused = poll_until(WAIT, || match TcpStream::connect_timeout(&addr, WAIT) {
        Err(err) if err.kind() == io::ErrorKind::ConnectionRefused => true,
        Err(err) => {
            last = err.to_string();
            false
        }
        Ok(_) => {
            last = "a connection".into();
            false
        }
    });
    assert!(
        refused,
        "connections to {addr} not refused within {WAIT:?} {when} (last: {last})"
    );
}

/// After a drain: `serve_forever` has returned, the port refuses connections, the process
/// idles, and once the server is dropped it holds the descriptors it held before (a
/// `ServerHandle` holds the server's waker: the caller drops its clones first).
fn after_drain<H, K>(mut rig: Rig<H, K>, what: &str)
where
    H: RequestHandler<Request = StreamRequest>,
    K: ServerHooks<TcpTransport>,
{
    rig.serving_ended(WAIT);
    assert_refused(rig.addr, &format!("after {what}"));
    rig.assert_idle(&format!("the drain of {what}"));
    rig.finish();
}

// ---------------------------------------------------------------------------------------
// Clients

/// A keep-alive connection that has had one answer: `GET /small.txt HTTP/1.1`, read whole.
fn keep_alive_exchange(addr: SocketAddr) -> Conn {
    let mut conn = Conn::open(addr);
    conn.send(&get_request(Version::HTTP_11, SMALL)).unwrap();
    let head = conn
        .head()
        .unwrap_or_else(|e| panic!("the first answer: {e}"));
    assert_eq!(head.status, 200, "{}", head.text);
    assert_ne!(head.header("connection"), Some("close"), "{}", head.text);
    let (got, end) = conn.body_against(SMALL_BODY, SMALL_BODY.len());
    assert_eq!(
        (got, end),
        (SMALL_BODY.len(), None),
        "the first answer's body"
    );
    conn
}

/// The server closes `conn` cleanly (within [`WAIT`], far below [`KEEP_ALIVE`]) and sends
/// nothing more.
fn expect_eof(conn: &mut Conn, what: &str) {
    let (data, end) = conn.until_end();
    assert_eq!(
        end,
        End::Eof,
        "{what}: expected the server's close within {WAIT:?}, after {:?}",
        String::from_utf8_lossy(&data)
    );
    assert!(
        data.is_empty(),
        "{what}: {:?} before the close",
        String::from_utf8_lossy(&data)
    );
}

/// An answer to `GET /small.txt` that closes its connection: 200, `Connection: close`,
/// the file, then the end.
fn expect_small_with_close(conn: &mut Conn, what: &str) {
    let head = conn.head().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(head.status, 200, "{what}: {}", head.text);
    assert_eq!(
        head.header("connection"),
        Some("close"),
        "{what}: an answer during a drain must close: {}",
        head.text
    );
    let (body, end) = conn.until_end();
    assert_eq!(end, End::Eof, "{what}: the end of the answer");
    assert_eq!(body, SMALL_BODY, "{what}: the body");
}

/// The head of a request without its blank line: the server waits for the rest.
const HALF_HEAD: &[u8] = b"GET /small.txt HTTP/1.1\r\nHost: graceful\r\n";

// ---------------------------------------------------------------------------------------
// 1. Idle keep-alive connections

/// Two keep-alive connections wait for a next request that never comes: one idle for
/// longer than the drain's grace (200 ms) when the drain begins, one just answered. The
/// drain closes both (each reads EOF, long before the 60 s keep-alive timeout) and then
/// has nothing to wait for.
fn idle_keep_alive_is_closed_at_once(strategy: Strategy) {
    let site = Site::new();
    let rig = Rig::start(strategy, || site.files(long_limits(), Version::HTTP_11));
    let mut earlier = keep_alive_exchange(rig.addr);
    // Pacing, not a race: whichever side of the grace a connection is on, the drain
    // closes it; this one is past it, to take the "idle long enough, at once" path.
    thread::sleep(Duration::from_millis(300));
    let mut fresh = keep_alive_exchange(rig.addr);
    let drain = Drain::begin(rig.handle(), LONG);
    expect_eof(
        &mut earlier,
        "a connection idle for 300 ms when the drain began",
    );
    expect_eof(&mut fresh, "a connection idle since just before the drain");
    drain.ended_within(SOON, "closing the idle connections");
    drop((earlier, fresh));
    after_drain(rig, "idle keep-alive connections");
}

// ---------------------------------------------------------------------------------------
// 2. Requests in flight

/// A client reads an 8 MiB download slowly (a 64 KiB receive buffer, and it stops after
/// the first 64 KiB) when the drain begins. The port closes at once, the download
/// finishes whole; its answer began before the drain, so it keeps the connection open,
/// which then idles: the drain closes it, and ends.
fn download_in_flight_finishes(strategy: Strategy) {
    let site = Site::new();
    let big = site.big("big.bin", 8 * MIB, 21);
    let rig = Rig::start(strategy, || site.files(long_limits(), Version::HTTP_11));
    let mut conn = Conn::open_slow(rig.addr);
    conn.send(&get_request(Version::HTTP_11, "/big.bin"))
        .unwrap();
    let head = conn
        .head()
        .unwrap_or_else(|e| panic!("the download's head: {e}"));
    assert_eq!(head.status, 200, "{}", head.text);
    assert_eq!(
        head.content_length(),
        Some(big.len() as u64),
        "{}",
        head.text
    );
    assert_ne!(head.header("connection"), Some("close"), "{}", head.text);
    let (got, end) = conn.body_against(&big, 64 * KIB);
    assert_eq!(
        (got, end),
        (64 * KIB, None),
        "the first 64 KiB of the download"
    );

    let handle = rig.handle();
    let drain = Drain::begin(handle.clone(), LONG);
    wait_draining(&handle);
    wait_refused(rig.addr, "once the drain began");
    assert!(handle.is_draining(), "is_draining() during the drain");

    let rest = big.len() - got;
    let (more, end) = conn.body_against(&big[got..], rest);
    assert_eq!(
        (more, end),
        (rest, None),
        "the rest of the download during the drain"
    );
    expect_eof(&mut conn, "the download's connection once idle");
    drain.ended_within(SOON, "the download's end");
    drop((conn, handle));
    after_drain(rig, "a download in flight");
}

/// A client has sent half a request head when the drain begins (the connection is taken,
/// its first request not yet whole: not idle). It sends the rest during the drain, and
/// gets its answer, with `Connection: close`, then the close.
fn head_in_parts_is_answered_with_close(strategy: Strategy) {
    let site = Site::new();
    let rig = Rig::start(strategy, || site.files(long_limits(), Version::HTTP_11));
    let mut conn = Conn::open(rig.addr);
    conn.send(HALF_HEAD).unwrap();
    rig.wait_connections(1);
    let handle = rig.handle();
    let drain = Drain::begin(handle.clone(), LONG);
    wait_draining(&handle);
    wait_refused(rig.addr, "once the drain began");
    conn.send(b"\r\n").unwrap();
    expect_small_with_close(&mut conn, "a head finished during the drain");
    drain.ended_within(SOON, "the answer to the head sent in parts");
    drop((conn, handle));
    after_drain(rig, "a request head sent in parts");
}

/// Bytes the kernel holds unread on the server's side of the loopback connection from
/// `client` (a local address of this process), from /proc/self/net/tcp's `rx_queue`.
fn server_unread(client: SocketAddr) -> Option<u64> {
    let table = std::fs::read_to_string("/proc/self/net/tcp").ok()?;
    let wanted = format!(":{:04X}", client.port());
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // The server's side: its remote address is the client's.
        if !fields.get(2)?.ends_with(&wanted) {
            return None;
        }
        let (_, rx) = fields.get(4)?.split_once(':')?;
        u64::from_str_radix(rx, 16).ok()
    })
}

/// A keep-alive connection, idle longer than the drain's grace, begins its next head
/// just before the drain: it is busy, not idle, and its request is answered (on threads it
/// used to be marked idle until the whole head was in, and was cut).
fn next_head_begun_before_the_drain_is_answered(strategy: Strategy) {
    let site = Site::new();
    let rig = Rig::start(strategy, || site.files(long_limits(), Version::HTTP_11));
    let mut conn = keep_alive_exchange(rig.addr);
    // Idle for longer than the drain's grace (200 ms): the part of the feature under test
    // is a time, so time passes here; nothing waits on another thread's progress.
    thread::sleep(Duration::from_millis(400));
    conn.send(HALF_HEAD).unwrap();
    let client = conn.stream.local_addr().unwrap();
    let read = poll_until(WAIT, || server_unread(client) == Some(0));
    assert!(read, "the server did not read the half head on {strategy}");
    let handle = rig.handle();
    let drain = Drain::begin(handle.clone(), LONG);
    wait_draining(&handle);
    wait_refused(rig.addr, "once the drain began");
    conn.send(b"\r\n").unwrap();
    expect_small_with_close(&mut conn, "a second head begun before the drain");
    drain.ended_within(SOON, "the answer to the second head");
    drop((conn, handle));
    after_drain(rig, "a second head begun before the drain");
}

// ---------------------------------------------------------------------------------------
// 3. Connections queued in the kernel

/// Server hooks that hold the serve loop in `service_actions` (on the serving thread,
/// after a turn) until released: while held, the server accepts nothing, so connections
/// pile up in the kernel's accept queue, as they do in front of a busy server. Released,
/// the hook asks for the graceful shutdown itself, from the serving thread (where the call
/// only signals and returns): the loop's next wait sees it, and the drain is what finds
/// the queued connections. No race between the request and the release.
#[derive(Default)]
struct Gate {
    state: Mutex<GateState>,
    changed: Condvar,
}

#[derive(Default)]
struct GateState {
    armed: bool,
    holding: bool,
    /// Released, with the timeout of the graceful shutdown to ask for.
    release: Option<Duration>,
}

impl Gate {
    fn lock(&self) -> std::sync::MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The next `service_actions` holds the loop; waits (bounded) until it does.
    fn hold(&self) {
        self.lock().armed = true;
        let (state, _) = self
            .changed
            .wait_timeout_while(self.lock(), WAIT, |s| !s.holding)
            .unwrap_or_else(PoisonError::into_inner);
        assert!(state.holding, "the serve loop not held within {WAIT:?}");
    }

    /// Lets the loop go, with a graceful shutdown of `timeout` asked for.
    fn release_gracefully(&self, timeout: Duration) {
        self.lock().release = Some(timeout);
        self.changed.notify_all();
    }
}

impl ServerHooks<TcpTransport> for Gate {
    fn service_actions(&self, server: &ServerHandle) {
        let mut state = self.lock();
        if !state.armed {
            return;
        }
        state.armed = false;
        state.holding = true;
        self.changed.notify_all();
        // Bounded: a failed test that never releases it still lets the rig stop.
        let (mut state, _) = self
            .changed
            .wait_timeout_while(state, WAIT, |s| s.release.is_none())
            .unwrap_or_else(PoisonError::into_inner);
        state.holding = false;
        let release = state.release.take();
        drop(state);
        if let Some(timeout) = release {
            server.shutdown_gracefully(timeout);
        }
    }
}

/// Eight clients connect and send their requests while the serve loop is held: the kernel
/// completes their handshakes and queues them (the process holds only the clients' ends:
/// none is accepted). Then the graceful shutdown: each gets its whole answer, with
/// `Connection: close`, none is reset.
fn queued_connections_are_served(strategy: Strategy) {
    const CLIENTS: usize = 8;
    let site = Site::new();
    let rig = Rig::start_with_hooks(strategy, Gate::default(), || {
        site.files(long_limits(), Version::HTTP_11)
    });
    let gate = rig.server().hooks();
    gate.hold();
    let mut clients: Vec<Conn> = (0..CLIENTS)
        .map(|_| {
            let mut conn = Conn::open(rig.addr);
            conn.send(&get_request(Version::HTTP_11, SMALL)).unwrap();
            conn
        })
        .collect();
    assert_eq!(
        fd_count(),
        rig.fds_serving() + CLIENTS,
        "the {CLIENTS} clients' connections must wait in the kernel's queue, none accepted"
    );
    gate.release_gracefully(LONG);
    for (n, conn) in clients.iter_mut().enumerate() {
        expect_small_with_close(conn, &format!("queued client {n}"));
    }
    drop(clients);
    after_drain(rig, "connections queued in the kernel");
}

// ---------------------------------------------------------------------------------------
// 4. The deadline

/// Two clients never finish: one sent half a request head, one stalls a 32 MiB download
/// after 64 KiB. The drain waits for them until its deadline (1.5 s), then cuts both and
/// returns; the process idles and its descriptors are back.
fn deadline_cuts_what_is_left(strategy: Strategy) {
    const DEADLINE: Duration = Duration::from_millis(1500);
    let site = Site::new();
    let big = site.big("big.bin", 32 * MIB, 22);
    let rig = Rig::start(strategy, || site.files(long_limits(), Version::HTTP_11));
    let mut half = Conn::open(rig.addr);
    half.send(HALF_HEAD).unwrap();
    let mut stalled = Conn::open_slow(rig.addr);
    stalled
        .send(&get_request(Version::HTTP_11, "/big.bin"))
        .unwrap();
    let head = stalled
        .head()
        .unwrap_or_else(|e| panic!("the download's head: {e}"));
    assert_eq!(head.status, 200, "{}", head.text);
    let (got, end) = stalled.body_against(&big, 64 * KIB);
    assert_eq!(
        (got, end),
        (64 * KIB, None),
        "the first 64 KiB of the download"
    );
    rig.wait_connections(2);

    let drain = Drain::begin(rig.handle(), DEADLINE);
    let took = drain.ended_within(DEADLINE + SOON, "its deadline");
    assert!(
        took >= DEADLINE,
        "shutdown_gracefully returned after {} ms, before its deadline of {} ms, with two \
         connections open",
        took.as_millis(),
        DEADLINE.as_millis()
    );

    let (_, end) = half.until_end();
    assert!(
        end.is_close(),
        "the half head's connection at the deadline: {end:?}"
    );
    let (more, end) = stalled.body_against(&big[got..], big.len() - got);
    assert!(
        more < big.len() - got && end.is_some_and(End::is_close),
        "the stalled download at the deadline: {more} more bytes, {end:?}; expected the cut"
    );
    drop((half, stalled));
    after_drain(rig, "a drain cut at its deadline");
}

// ---------------------------------------------------------------------------------------
// 5. A plain shutdown during a drain

/// A client holds the drain (half a head sent); a plain `shutdown()` ends the drain at
/// once, cutting it, and both calls return.
fn plain_shutdown_ends_the_drain(strategy: Strategy) {
    let site = Site::new();
    let rig = Rig::start(strategy, || site.files(long_limits(), Version::HTTP_11));
    let mut conn = Conn::open(rig.addr);
    conn.send(HALF_HEAD).unwrap();
    rig.wait_connections(1);
    let handle = rig.handle();
    let drain = Drain::begin(handle.clone(), LONG);
    wait_draining(&handle);
    let stopping = handle.clone();
    within(WAIT, "shutdown() during a drain", move || {
        stopping.shutdown()
    });
    drain.ended_within(WAIT, "shutdown() during the drain");
    let (_, end) = conn.until_end();
    assert!(end.is_close(), "the connection after shutdown(): {end:?}");
    drop((conn, handle));
    after_drain(rig, "a drain ended by shutdown()");
}

// ---------------------------------------------------------------------------------------
// 6. The same over HTTPS

fn tls_rig(strategy: Strategy, site: &Site) -> TlsRig {
    let tls = socketserver::tls::TlsConfig::self_signed(&["localhost", "127.0.0.1"])
        .expect("a self-signed certificate");
    TlsRig::measured(strategy, site, tls, long_limits(), Version::HTTP_11)
}

/// The server ends a TLS connection (close_notify or not, within [`WAIT`]) with no more
/// data.
fn expect_tls_close(conn: &mut TlsConn, what: &str) {
    let mut buf = [0u8; 4096];
    match conn.read(&mut buf) {
        Ok(n) => panic!(
            "{what}: {:?}, expected the close",
            String::from_utf8_lossy(&buf[..n])
        ),
        Err(TlsEnd::TimedOut) => panic!("{what}: no close within {WAIT:?}"),
        Err(_) => {}
    }
}

/// After a drain over TLS: the port refuses, the process idles, its descriptors are back.
fn after_tls_drain(rig: TlsRig, what: &str) {
    assert_refused(rig.addr, &format!("after {what}"));
    assert_idle(
        &rig.cpu,
        &format!("the drain of {what} on {}", rig.strategy),
        true,
    );
    rig.finish();
}

/// As [`idle_keep_alive_is_closed_at_once`], over TLS.
fn tls_idle_keep_alive_is_closed_at_once(strategy: Strategy) {
    let site = Site::new();
    let rig = tls_rig(strategy, &site);
    let mut conn = TlsConn::open(rig.addr, &rig.client());
    conn.send(&get_request(Version::HTTP_11, SMALL)).unwrap();
    let head = conn
        .head()
        .unwrap_or_else(|e| panic!("the first answer: {e}"));
    assert_eq!(head.status, 200, "{}", head.text);
    assert_ne!(head.header("connection"), Some("close"), "{}", head.text);
    let body = conn
        .body(SMALL_BODY.len())
        .expect("the first answer's body");
    assert_eq!(body, SMALL_BODY);
    let drain = Drain::begin(rig.server().handle(), LONG);
    expect_tls_close(
        &mut conn,
        "an idle TLS keep-alive connection during the drain",
    );
    drain.ended_within(SOON, "closing the idle TLS connection");
    drop(conn);
    after_tls_drain(rig, "an idle TLS keep-alive connection");
}

/// As [`download_in_flight_finishes`], over TLS.
fn tls_download_in_flight_finishes(strategy: Strategy) {
    let site = Site::new();
    let big = site.big("big.bin", 8 * MIB, 23);
    let rig = tls_rig(strategy, &site);
    let mut conn = TlsConn::open_slow(rig.addr, &rig.client());
    conn.send(&get_request(Version::HTTP_11, "/big.bin"))
        .unwrap();
    let head = conn
        .head()
        .unwrap_or_else(|e| panic!("the download's head: {e}"));
    assert_eq!(head.status, 200, "{}", head.text);
    assert_eq!(head.content_length(), Some(big.len()), "{}", head.text);
    let (got, end) = conn.body_against(&big, 64 * KIB);
    assert_eq!(
        (got, end),
        (64 * KIB, None),
        "the first 64 KiB of the download"
    );

    let handle = rig.server().handle();
    let drain = Drain::begin(handle.clone(), LONG);
    wait_draining(&handle);
    wait_refused(rig.addr, "once the TLS drain began");
    let rest = big.len() - got;
    let (more, end) = conn.body_against(&big[got..], rest);
    assert_eq!(
        (more, end),
        (rest, None),
        "the rest of the TLS download during the drain"
    );
    expect_tls_close(&mut conn, "the TLS download's connection once idle");
    drain.ended_within(SOON, "the TLS download's end");
    drop((conn, handle));
    after_tls_drain(rig, "a TLS download in flight");
}
