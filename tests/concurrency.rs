//! The in-process concurrency strategies: `Threading` (a thread per request, its
//! `block_on_close` and `daemon_threads`), `ThreadPool` (bounded workers and queue) and
//! `Synchronous` (one request at a time).

mod common;

use std::io::{self, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::Duration;

use common::*;
use socketserver::{
    ClientAddress, HandlerResult, RequestHandler, ServerAddress, ServerHooks, StreamRequest,
    StreamSocket, TcpServer, TcpTransport, ThreadPool, Threading, ThreadingTcpServer,
};

/// Waits on `barrier`, giving up after `limit`: a helper thread does the waiting, so a
/// barrier that never fills fails the handler instead of blocking it (and the server's
/// `server_close`) forever.
fn wait_on_barrier(barrier: &Arc<Barrier>, limit: Duration) -> bool {
    let (done, waited) = mpsc::channel();
    let barrier = Arc::clone(barrier);
    thread::spawn(move || {
        barrier.wait();
        let _ = done.send(());
    });
    waited.recv_timeout(limit).is_ok()
}

/// Meets the handlers of the other clients at a barrier, then says whether they all came.
#[derive(Clone)]
struct MeetAtBarrier(Arc<Barrier>);

impl RequestHandler for MeetAtBarrier {
    type Request = StreamRequest;

    fn handle(&mut self, req: &mut StreamRequest) -> HandlerResult {
        let met = wait_on_barrier(&self.0, IO_TIMEOUT);
        req.wfile
            .write_all(if met { b"together\n" } else { b"alone\n" })?;
        Ok(())
    }
}

#[test]
fn threading_serves_two_clients_at_once() {
    let server =
        ThreadingTcpServer::bind("127.0.0.1:0", MeetAtBarrier(Arc::new(Barrier::new(2)))).unwrap();
    let (server, thread) = serve(server);
    // Neither handler can finish unless both run at the same time.
    let mut first = connect_tcp(&server.server_address());
    let mut second = connect_tcp(&server.server_address());
    assert_eq!(read_line(&mut first).unwrap(), "together\n");
    assert_eq!(read_line(&mut second).unwrap(), "together\n");
    stop(&server, thread);
}

/// Answers with the name of the thread it runs on.
#[derive(Clone)]
struct ThreadName;

impl RequestHandler for ThreadName {
    type Request = StreamRequest;

    fn handle(&mut self, req: &mut StreamRequest) -> HandlerResult {
        let name = thread::current().name().unwrap_or("<unnamed>").to_string();
        writeln!(req.wfile, "{name}")?;
        Ok(())
    }
}

#[test]
fn threading_names_its_threads_like_python() {
    let (server, thread) = serve(ThreadingTcpServer::bind("127.0.0.1:0", ThreadName).unwrap());
    let mut names = Vec::new();
    for _ in 0..3 {
        let mut client = connect_tcp(&server.server_address());
        let name = read_line(&mut client).unwrap().trim_end().to_string();
        assert!(name.starts_with("Thread-"), "thread name {name:?}");
        names.push(name);
    }
    names.dedup();
    assert_eq!(names.len(), 3, "a new thread per request: {names:?}");
    stop(&server, thread);
}

// ---------------------------------------------------------------------------------------
// Threading: closing with requests still running
// ---------------------------------------------------------------------------------------

/// Reads a line; then tells the test it started, waits until the test releases it, and marks
/// itself finished. A client that sends nothing (such as the probes of
/// `refuses_connections`) is let go at once.
#[derive(Clone)]
struct HeldUntilReleased {
    started: Sender<()>,
    release: Arc<Mutex<Receiver<()>>>,
    finished: Arc<AtomicBool>,
}

/// A `HeldUntilReleased` handler and the test's ends of its channels.
struct Held {
    handler: HeldUntilReleased,
    started: Receiver<()>,
    release: Sender<()>,
    finished: Arc<AtomicBool>,
}

impl Held {
    fn new() -> Self {
        let (started, started_rx) = mpsc::channel();
        let (release, release_rx) = mpsc::channel();
        let finished = Arc::new(AtomicBool::new(false));
        Held {
            handler: HeldUntilReleased {
                started,
                release: Arc::new(Mutex::new(release_rx)),
                finished: Arc::clone(&finished),
            },
            started: started_rx,
            release,
            finished,
        }
    }
}

impl RequestHandler for HeldUntilReleased {
    type Request = StreamRequest;

    fn handle(&mut self, req: &mut StreamRequest) -> HandlerResult {
        if req.rfile.readline(1024)?.is_empty() {
            return Ok(());
        }
        self.started.send(())?;
        self.release.lock().unwrap().recv_timeout(IO_TIMEOUT)?;
        self.finished.store(true, Ordering::SeqCst);
        Ok(())
    }
}

/// Whether a TCP connect to `address` is refused, i.e. the listening socket is closed.
fn refuses_connections(address: &ServerAddress) -> bool {
    TcpStream::connect_timeout(&inet(address), Duration::from_secs(1))
        .is_err_and(|err| err.kind() == io::ErrorKind::ConnectionRefused)
}

#[test]
fn block_on_close_waits_for_running_handlers() {
    let held = Held::new();
    let (server, thread) = serve(ThreadingTcpServer::bind("127.0.0.1:0", held.handler).unwrap());
    let address = server.server_address();
    let mut client = connect_tcp(&address);
    client.write_all(b"hold\n").unwrap();
    held.started
        .recv_timeout(IO_TIMEOUT)
        .expect("the handler starts");

    let (closed, close_returned) = mpsc::channel();
    let closing = Arc::clone(&server);
    let finished = Arc::clone(&held.finished);
    thread::spawn(move || {
        closing.server_close();
        let _ = closed.send(finished.load(Ordering::SeqCst));
    });
    // The socket is gone, so server_close is under way; it must now wait for the handler.
    wait_until("server_close to close the socket", || {
        refuses_connections(&address)
    });
    assert!(
        close_returned.try_recv().is_err(),
        "server_close returned while a handler was still running"
    );

    held.release.send(()).unwrap();
    let finished_at_close = close_returned
        .recv_timeout(IO_TIMEOUT)
        .expect("server_close returns once the handler is done");
    assert!(
        finished_at_close,
        "server_close returned before the handler finished"
    );
    join_within(thread, IO_TIMEOUT).unwrap();
}

fn server_close_does_not_wait(threading: Threading) {
    let held = Held::new();
    let server = TcpServer::builder("127.0.0.1:0", held.handler)
        .concurrency(threading)
        .build()
        .unwrap();
    let (server, thread) = serve(server);
    let mut client = connect_tcp(&server.server_address());
    client.write_all(b"hold\n").unwrap();
    held.started
        .recv_timeout(IO_TIMEOUT)
        .expect("the handler starts");

    let (closed, close_returned) = mpsc::channel();
    let closing = Arc::clone(&server);
    thread::spawn(move || {
        closing.server_close();
        let _ = closed.send(());
    });
    close_returned
        .recv_timeout(IO_TIMEOUT)
        .expect("server_close returns without waiting for the handler");
    assert!(
        !held.finished.load(Ordering::SeqCst),
        "the handler is still blocked"
    );
    join_within(thread, IO_TIMEOUT).unwrap();

    // Let the handler go, so its thread ends.
    held.release.send(()).unwrap();
    wait_until("the released handler to finish", || {
        held.finished.load(Ordering::SeqCst)
    });
}

#[test]
fn daemon_threads_are_not_waited_for() {
    server_close_does_not_wait(Threading::new().daemon_threads(true));
}

#[test]
fn block_on_close_false_does_not_wait() {
    server_close_does_not_wait(Threading::new().block_on_close(false));
}

// ---------------------------------------------------------------------------------------
// ThreadPool
// ---------------------------------------------------------------------------------------

/// Tracks how many handlers run at once; each waits for one line from its client, then
/// answers it.
#[derive(Clone, Default)]
struct Gauge {
    running: Arc<AtomicUsize>,
    most: Arc<AtomicUsize>,
    served: Arc<AtomicUsize>,
}

impl RequestHandler for Gauge {
    type Request = StreamRequest;

    fn handle(&mut self, req: &mut StreamRequest) -> HandlerResult {
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        let line = req.rfile.readline(1024);
        self.running.fetch_sub(1, Ordering::SeqCst);
        let line = line?;
        self.served.fetch_add(1, Ordering::SeqCst); // before the answer the test waits for
        req.wfile.write_all(&line.to_ascii_uppercase())?;
        Ok(())
    }
}

/// Sends a line on every client, then checks each one's answer.
fn release_all(clients: &mut [TcpStream]) {
    for (i, client) in clients.iter_mut().enumerate() {
        client
            .write_all(format!("client {i}\n").as_bytes())
            .unwrap();
    }
    for (i, client) in clients.iter_mut().enumerate() {
        assert_eq!(read_line(client).unwrap(), format!("CLIENT {i}\n"));
    }
}

#[test]
fn thread_pool_never_runs_more_than_its_workers() {
    const WORKERS: usize = 2;
    const CLIENTS: usize = 6;
    let gauge = Gauge::default();
    let server = TcpServer::builder("127.0.0.1:0", gauge.clone())
        .concurrency(ThreadPool::new(WORKERS, 16))
        .build()
        .unwrap();
    let (server, thread) = serve(server);

    let mut clients: Vec<_> = (0..CLIENTS)
        .map(|_| connect_tcp(&server.server_address()))
        .collect();
    // Every worker is busy and the rest of the requests wait in the queue.
    wait_until("the workers to be busy and the rest queued", || {
        gauge.running.load(Ordering::SeqCst) == WORKERS
            && server.concurrency().queued() == CLIENTS - WORKERS
    });
    assert_eq!(gauge.most.load(Ordering::SeqCst), WORKERS);

    release_all(&mut clients);
    assert_eq!(
        gauge.served.load(Ordering::SeqCst),
        CLIENTS,
        "all requests served"
    );
    assert_eq!(
        gauge.most.load(Ordering::SeqCst),
        WORKERS,
        "never more handlers at once than workers"
    );
    stop(&server, thread);
    server.server_close();
    assert_eq!(server.concurrency().queued(), 0);
}

/// Counts the requests the loop took and handed on.
#[derive(Default)]
struct CountVerified(AtomicUsize);

impl ServerHooks<TcpTransport> for CountVerified {
    fn verify_request(&self, _request: &StreamSocket, _client: &ClientAddress) -> bool {
        self.0.fetch_add(1, Ordering::SeqCst);
        true
    }
}

#[test]
fn thread_pool_with_a_full_queue_still_shuts_down() {
    let gauge = Gauge::default();
    let server = TcpServer::builder("127.0.0.1:0", gauge.clone())
        .concurrency(ThreadPool::new(1, 1))
        .hooks(CountVerified::default())
        .build()
        .unwrap();
    let (server, thread) = serve(server);

    // One request runs, one waits in the queue, and the loop blocks handing on the third.
    let mut clients: Vec<_> = (0..3)
        .map(|_| connect_tcp(&server.server_address()))
        .collect();
    wait_until("one running, one queued, a third taken", || {
        gauge.running.load(Ordering::SeqCst) == 1
            && server.concurrency().queued() == 1
            && server.hooks().0.load(Ordering::SeqCst) == 3
    });

    shutdown_within(&server, Duration::from_secs(5));
    join_within(thread, IO_TIMEOUT).expect("serve_forever returns Ok");

    // No request was dropped: the queued ones, including the one the loop was blocked on,
    // are still served.
    release_all(&mut clients);
    assert_eq!(gauge.served.load(Ordering::SeqCst), 3);
    assert_eq!(gauge.most.load(Ordering::SeqCst), 1);
    server.server_close();
}

// ---------------------------------------------------------------------------------------
// Synchronous
// ---------------------------------------------------------------------------------------

/// A `Gauge` that also tells the test each time a handler starts.
#[derive(Clone)]
struct AnnouncedGauge {
    gauge: Gauge,
    started: Sender<()>,
}

impl RequestHandler for AnnouncedGauge {
    type Request = StreamRequest;

    fn handle(&mut self, req: &mut StreamRequest) -> HandlerResult {
        self.started.send(())?;
        self.gauge.handle(req)
    }
}

#[test]
fn synchronous_serves_one_client_at_a_time() {
    let gauge = Gauge::default();
    let (started, handler_started) = mpsc::channel();
    let handler = AnnouncedGauge {
        gauge: gauge.clone(),
        started,
    };
    let (server, thread) = serve(TcpServer::bind("127.0.0.1:0", handler).unwrap());

    let mut first = connect_tcp(&server.server_address());
    handler_started
        .recv_timeout(IO_TIMEOUT)
        .expect("the first handler starts");
    let mut second = connect_tcp(&server.server_address());
    second.write_all(b"second\n").unwrap();
    // The second client is connected and has spoken, but the first handler still runs.
    assert!(
        handler_started
            .recv_timeout(Duration::from_millis(300))
            .is_err(),
        "a second handler started while the first was running"
    );

    first.write_all(b"first\n").unwrap();
    assert_eq!(read_line(&mut first).unwrap(), "FIRST\n");
    handler_started
        .recv_timeout(IO_TIMEOUT)
        .expect("then the second handler starts");
    assert_eq!(read_line(&mut second).unwrap(), "SECOND\n");
    assert_eq!(gauge.most.load(Ordering::SeqCst), 1);
    stop(&server, thread);
}
