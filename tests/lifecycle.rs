//! The server's life: `serve_forever` and `shutdown` from every kind of caller,
//! `handle_request`, closing and rebinding, and the order of a handler's hooks.

mod common;

use std::io::{self, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use socketserver::{
    ClientAddress, HandlerResult, RequestError, RequestHandler, ServerHandle, ServerHooks,
    StreamRequest, TcpServer, TcpTransport, Threading,
};

/// Runs `serve_forever` on a thread that reports its result on a channel, so that a loop
/// that never stops fails the test instead of hanging it.
fn serve_reporting<H, C, K>(
    server: &Arc<socketserver::Server<TcpTransport, H, C, K>>,
) -> mpsc::Receiver<io::Result<()>>
where
    H: RequestHandler<Request = StreamRequest>,
    C: socketserver::Concurrency,
    K: ServerHooks<TcpTransport>,
{
    let (report, result) = mpsc::channel();
    let server = Arc::clone(server);
    thread::spawn(move || {
        let _ = report.send(server.serve_forever());
    });
    result
}

// ---------------------------------------------------------------------------------------
// shutdown
// ---------------------------------------------------------------------------------------

#[test]
fn shutdown_from_another_thread_wakes_a_loop_without_poll_interval() {
    // With no poll_interval the loop only wakes for a request or the shutdown waker.
    let server = TcpServer::builder("127.0.0.1:0", UpperEcho)
        .poll_interval(None)
        .build()
        .map(Arc::new)
        .unwrap();
    let result = serve_reporting(&server);
    wait_until("serve_forever() to start", || server.handle().is_serving());

    shutdown_within(&server, Duration::from_secs(5));
    let served = result
        .recv_timeout(Duration::from_secs(5))
        .expect("serve_forever() returns after shutdown()");
    served.expect("serve_forever() returns Ok");
    assert!(!server.handle().is_serving());
}

#[test]
fn idle_shutdown_latency() {
    const RUNS: usize = 20;
    let mut latencies = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let server = TcpServer::builder("127.0.0.1:0", UpperEcho)
            .poll_interval(None)
            .build()
            .unwrap();
        let (server, serving) = serve(server);
        // Timed on a helper thread, so that a shutdown() that never returns fails the test.
        let (report, latency) = mpsc::channel();
        let handle = server.handle();
        thread::spawn(move || {
            let start = Instant::now();
            handle.shutdown();
            let _ = report.send(start.elapsed());
        });
        let latency = latency
            .recv_timeout(Duration::from_secs(5))
            .expect("shutdown() returns");
        latencies.push(latency);
        join_within(serving, IO_TIMEOUT).unwrap();
    }
    latencies.sort();
    let (min, median, max) = (latencies[0], latencies[RUNS / 2], latencies[RUNS - 1]);
    eprintln!(
        "idle shutdown() latency over {RUNS} runs: min {min:?}, median {median:?}, max {max:?}"
    );
    // Only a sanity bound: the waker makes it far shorter than any poll_interval.
    assert!(max < Duration::from_secs(2), "shutdown() took {max:?}");
}

/// Calls `shutdown()` on its own server, then answers "bye".
#[derive(Clone)]
struct ShutsDown;

impl RequestHandler for ShutsDown {
    type Request = StreamRequest;

    fn handle(&mut self, req: &mut StreamRequest) -> HandlerResult {
        req.server.shutdown();
        req.wfile.write_all(b"bye\n")?;
        Ok(())
    }
}

#[test]
fn shutdown_from_a_synchronous_handler_does_not_deadlock() {
    let server = Arc::new(TcpServer::bind("127.0.0.1:0", ShutsDown).unwrap());
    let result = serve_reporting(&server);
    wait_until("serve_forever() to start", || server.handle().is_serving());

    let mut client = connect_tcp(&server.server_address());
    assert_eq!(
        read_to_end(&mut client),
        b"bye\n",
        "the handler went on after shutdown()"
    );
    result
        .recv_timeout(Duration::from_secs(5))
        .expect("serve_forever() stops after the handler returns")
        .unwrap();
}

#[test]
fn shutdown_from_a_threading_handler_stops_the_loop() {
    let server = TcpServer::builder("127.0.0.1:0", ShutsDown)
        .concurrency(Threading::new())
        .build()
        .map(Arc::new)
        .unwrap();
    let result = serve_reporting(&server);
    wait_until("serve_forever() to start", || server.handle().is_serving());

    let mut client = connect_tcp(&server.server_address());
    assert_eq!(read_to_end(&mut client), b"bye\n");
    result
        .recv_timeout(Duration::from_secs(5))
        .expect("serve_forever() stops")
        .unwrap();
    server.server_close();
}

#[test]
fn shutdown_before_serve_forever_makes_it_return_at_once() {
    let server = Arc::new(TcpServer::bind("127.0.0.1:0", UpperEcho).unwrap());
    shutdown_within(&server, Duration::from_secs(5)); // nothing is serving: returns at once
    let result = serve_reporting(&server);
    result
        .recv_timeout(Duration::from_secs(5))
        .expect("serve_forever() returns at once after an earlier shutdown()")
        .unwrap();
}

#[test]
fn serve_forever_runs_again_after_a_shutdown() {
    let server = Arc::new(TcpServer::bind("127.0.0.1:0", UpperEcho).unwrap());
    for round in ["first", "second", "third"] {
        let thread = spawn_serve(&server);
        wait_until("serve_forever() to start", || server.handle().is_serving());
        let mut client = connect_tcp(&server.server_address());
        assert_eq!(
            exchange_line(&mut client, round),
            format!("{}\n", round.to_uppercase())
        );
        drop(client);
        stop(&server, thread);
    }
}

#[test]
fn a_second_concurrent_serve_forever_is_refused() {
    let (server, thread) = serve(TcpServer::bind("127.0.0.1:0", UpperEcho).unwrap());
    let second = serve_reporting(&server);
    let err = second
        .recv_timeout(Duration::from_secs(5))
        .expect("the second serve_forever() returns at once")
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ResourceBusy);

    // The first loop is unaffected.
    assert!(server.handle().is_serving());
    let mut client = connect_tcp(&server.server_address());
    assert_eq!(exchange_line(&mut client, "still"), "STILL\n");
    drop(client);
    stop(&server, thread);
}

#[test]
fn serve_forever_on_a_closed_server_fails() {
    let server = TcpServer::bind("127.0.0.1:0", UpperEcho).unwrap();
    server.server_close();
    assert_eq!(
        server.serve_forever().unwrap_err().kind(),
        io::ErrorKind::NotConnected
    );
    assert_eq!(
        server.handle_request().unwrap_err().kind(),
        io::ErrorKind::NotConnected
    );
}

#[test]
fn serve_forever_on_a_server_not_activated_fails() {
    let server = TcpServer::builder("127.0.0.1:0", UpperEcho)
        .bind_and_activate(false)
        .build()
        .unwrap();
    assert_eq!(
        server.serve_forever().unwrap_err().kind(),
        io::ErrorKind::NotConnected
    );
    server.server_bind().unwrap();
    assert_eq!(
        server.serve_forever().unwrap_err().kind(),
        io::ErrorKind::NotConnected,
        "bound but not listening"
    );
    assert_eq!(
        server.handle_request().unwrap_err().kind(),
        io::ErrorKind::NotConnected
    );
}

// ---------------------------------------------------------------------------------------
// handle_request
// ---------------------------------------------------------------------------------------

/// Answers one line, counting the requests it handled.
#[derive(Clone)]
struct CountingEcho(Arc<AtomicUsize>);

impl RequestHandler for CountingEcho {
    type Request = StreamRequest;

    fn handle(&mut self, req: &mut StreamRequest) -> HandlerResult {
        self.0.fetch_add(1, Ordering::SeqCst);
        let line = req.rfile.readline(1024)?;
        req.wfile.write_all(&line.to_ascii_uppercase())?;
        Ok(())
    }
}

/// Counts `handle_timeout` calls.
#[derive(Default)]
struct TimeoutCounter(AtomicUsize);

impl ServerHooks<TcpTransport> for TimeoutCounter {
    fn handle_timeout(&self, _server: &ServerHandle) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn handle_request_handles_exactly_one_request() {
    let handled = Arc::new(AtomicUsize::new(0));
    let server = TcpServer::builder("127.0.0.1:0", CountingEcho(Arc::clone(&handled)))
        .timeout(Some(IO_TIMEOUT)) // a broken handle_request gives up instead of hanging
        .hooks(TimeoutCounter::default())
        .build()
        .unwrap();

    // Both clients are waiting in the backlog before the first handle_request.
    let mut first = connect_tcp(&server.server_address());
    let mut second = connect_tcp(&server.server_address());
    first.write_all(b"one\n").unwrap();
    second.write_all(b"two\n").unwrap();

    server.handle_request().unwrap();
    assert_eq!(handled.load(Ordering::SeqCst), 1, "one request per call");
    assert_eq!(read_line(&mut first).unwrap(), "ONE\n");

    server.handle_request().unwrap();
    assert_eq!(handled.load(Ordering::SeqCst), 2);
    assert_eq!(read_line(&mut second).unwrap(), "TWO\n");
    assert_eq!(server.hooks().0.load(Ordering::SeqCst), 0, "no timeout");
}

#[test]
fn handle_request_times_out_once_without_a_client() {
    let handled = Arc::new(AtomicUsize::new(0));
    let timeout = Duration::from_millis(100);
    let server = TcpServer::builder("127.0.0.1:0", CountingEcho(Arc::clone(&handled)))
        .timeout(Some(timeout))
        .hooks(TimeoutCounter::default())
        .build()
        .unwrap();
    assert_eq!(server.timeout(), Some(timeout));

    let start = Instant::now();
    server.handle_request().expect("a timeout is not an error");
    let elapsed = start.elapsed();
    assert_eq!(
        server.hooks().0.load(Ordering::SeqCst),
        1,
        "handle_timeout once"
    );
    assert_eq!(handled.load(Ordering::SeqCst), 0);
    assert!(
        elapsed >= timeout,
        "returned after {elapsed:?}, before the timeout"
    );
    assert!(elapsed < IO_TIMEOUT, "took {elapsed:?}");
}

// ---------------------------------------------------------------------------------------
// setup, handle, finish
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy)]
enum Fail {
    InSetup,
    WithErr,
    WithPanic,
}

/// Records which of its hooks ran, failing where told.
#[derive(Clone)]
struct Recorder {
    fail: Fail,
    log: Arc<Mutex<Vec<&'static str>>>,
}

impl Recorder {
    fn record(&self, event: &'static str) {
        self.log.lock().unwrap().push(event);
    }
}

impl RequestHandler for Recorder {
    type Request = StreamRequest;

    fn setup(&mut self, _req: &mut StreamRequest) -> HandlerResult {
        self.record("setup");
        match self.fail {
            Fail::InSetup => Err("setup failed".into()),
            _ => Ok(()),
        }
    }

    fn handle(&mut self, _req: &mut StreamRequest) -> HandlerResult {
        self.record("handle");
        match self.fail {
            Fail::WithErr => Err("handle failed".into()),
            Fail::WithPanic => panic!("handle panicked"),
            Fail::InSetup => Ok(()),
        }
    }

    fn finish(&mut self, _req: &mut StreamRequest) -> HandlerResult {
        self.record("finish");
        Ok(())
    }
}

/// Sends every error `handle_error` sees to the test, as text.
struct ErrorsToChannel(Sender<String>);

impl ServerHooks<TcpTransport> for ErrorsToChannel {
    fn handle_error(&self, _client: &ClientAddress, error: &RequestError) {
        let _ = self.0.send(error.to_string());
    }
}

/// Serves one request with a `Recorder` failing as told; returns its log and the error.
fn run_recorder(fail: Fail) -> (Vec<&'static str>, String) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let (errors, reported) = mpsc::channel();
    let handler = Recorder {
        fail,
        log: Arc::clone(&log),
    };
    let server = TcpServer::builder("127.0.0.1:0", handler)
        .timeout(Some(IO_TIMEOUT))
        .hooks(ErrorsToChannel(errors))
        .build()
        .unwrap();
    let mut client = connect_tcp(&server.server_address());
    server.handle_request().unwrap();
    let error = reported
        .recv_timeout(IO_TIMEOUT)
        .expect("handle_error reports the failure");
    assert_eq!(read_to_end(&mut client), b"", "the connection is closed");
    let log = log.lock().unwrap().clone();
    (log, error)
}

#[test]
fn finish_runs_when_handle_returns_an_error() {
    let (log, error) = run_recorder(Fail::WithErr);
    assert_eq!(log, ["setup", "handle", "finish"]);
    assert_eq!(error, "handle failed");
}

#[test]
fn finish_runs_when_handle_panics() {
    let (log, error) = run_recorder(Fail::WithPanic);
    assert_eq!(log, ["setup", "handle", "finish"]);
    assert_eq!(error, "handler panicked: handle panicked");
}

#[test]
fn failing_setup_skips_handle_and_finish() {
    let (log, error) = run_recorder(Fail::InSetup);
    assert_eq!(log, ["setup"]);
    assert_eq!(error, "setup failed");
}

// ---------------------------------------------------------------------------------------
// Closing and rebinding
// ---------------------------------------------------------------------------------------

#[test]
fn port_can_be_bound_again_after_server_close() {
    let server = TcpServer::bind("127.0.0.1:0", UpperEcho).unwrap();
    let address = inet(&server.server_address());
    server.server_close();
    // No SO_REUSEADDR anywhere: only a closed listening socket lets this bind.
    let again = TcpServer::bind(address, UpperEcho).expect("rebind after server_close");
    assert_eq!(inet(&again.server_address()), address);
    drop(again); // dropping closes too
    TcpListener::bind(address).expect("rebind after drop");
}

#[test]
fn port_can_be_bound_again_after_serving_a_client() {
    // The server ends each connection first, so they linger in TIME_WAIT on its side;
    // allow_reuse_address is what lets a new server bind the port anyway.
    let handled = Arc::new(AtomicUsize::new(0));
    let server = TcpServer::builder("127.0.0.1:0", CountingEcho(Arc::clone(&handled)))
        .allow_reuse_address(true)
        .build()
        .unwrap();
    let (server, thread) = serve(server);
    let address = inet(&server.server_address());
    let mut client = connect_tcp(&server.server_address());
    assert_eq!(exchange_line(&mut client, "once"), "ONCE\n");
    assert_eq!(read_to_end(&mut client), b"", "the server closed first");
    drop(client);
    stop(&server, thread);
    server.server_close();

    let again = TcpServer::builder(address, CountingEcho(Arc::clone(&handled)))
        .allow_reuse_address(true)
        .build()
        .expect("rebind after server_close");
    let (again, thread) = serve(again);
    let mut client = connect_tcp(&again.server_address());
    assert_eq!(exchange_line(&mut client, "twice"), "TWICE\n");
    stop(&again, thread);
    assert_eq!(handled.load(Ordering::SeqCst), 2);
}
