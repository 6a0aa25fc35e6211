//! The server hooks (`ServerHooks`): each override is called when Python's would be, and
//! what it returns or does takes effect.

mod common;

use std::io::{self, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use socketserver::server::{run_handler, Transport};
use socketserver::{
    ClientAddress, HandlerResult, RequestError, RequestHandler, ServerHandle, ServerHooks,
    StreamRequest, StreamSocket, TcpServer, TcpTransport,
};

/// Counts the requests it handled, and answers one line in upper case; "err" makes it fail
/// and "panic" makes it panic.
#[derive(Clone, Default)]
struct Counted(Arc<AtomicUsize>);

impl RequestHandler for Counted {
    type Request = StreamRequest;

    fn handle(&mut self, req: &mut StreamRequest) -> HandlerResult {
        self.0.fetch_add(1, Ordering::SeqCst);
        let line = req.rfile.readline(1024)?;
        match line.trim_ascii() {
            b"err" => Err("the handler failed".into()),
            b"panic" => panic!("the handler panicked"),
            _ => {
                req.wfile.write_all(&line.to_ascii_uppercase())?;
                Ok(())
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// verify_request
// ---------------------------------------------------------------------------------------

/// Refuses the first request, accepts the others, and counts the calls.
#[derive(Default)]
struct RefuseFirst {
    refused_one: AtomicBool,
    calls: AtomicUsize,
}

impl ServerHooks<TcpTransport> for RefuseFirst {
    fn verify_request(&self, _request: &StreamSocket, _client: &ClientAddress) -> bool {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.refused_one.swap(true, Ordering::SeqCst)
    }
}

#[test]
fn verify_request_refuses_a_client_and_the_server_goes_on() {
    let handler = Counted::default();
    let handled = Arc::clone(&handler.0);
    let server = TcpServer::builder("127.0.0.1:0", handler)
        .hooks(RefuseFirst::default())
        .build()
        .unwrap();
    let (server, thread) = serve(server);

    let mut refused = connect_tcp(&server.server_address());
    assert_eq!(
        read_to_end(&mut refused),
        b"",
        "a refused client gets end-of-file"
    );
    assert_eq!(
        handled.load(Ordering::SeqCst),
        0,
        "no handler for a refused client"
    );

    let mut allowed = connect_tcp(&server.server_address());
    assert_eq!(exchange_line(&mut allowed, "welcome"), "WELCOME\n");
    assert_eq!(handled.load(Ordering::SeqCst), 1);
    assert_eq!(server.hooks().calls.load(Ordering::SeqCst), 2);
    stop(&server, thread);
}

// ---------------------------------------------------------------------------------------
// handle_error
// ---------------------------------------------------------------------------------------

#[derive(Debug, PartialEq)]
enum Reported {
    Failed(String),
    Panicked(String),
}

/// Sends what `handle_error` sees to the test.
struct ReportErrors(Sender<(ClientAddress, Reported)>);

impl ServerHooks<TcpTransport> for ReportErrors {
    fn handle_error(&self, client: &ClientAddress, error: &RequestError) {
        let reported = match error {
            RequestError::Failed(err) => Reported::Failed(err.to_string()),
            RequestError::Panicked(message) => Reported::Panicked(message.clone()),
        };
        let _ = self.0.send((client.clone(), reported));
    }
}

#[test]
fn handle_error_sees_handler_errors_and_panics() {
    let (errors, reported) = mpsc::channel();
    let server = TcpServer::builder("127.0.0.1:0", Counted::default())
        .hooks(ReportErrors(errors))
        .build()
        .unwrap();
    let (server, thread) = serve(server);

    let cases = [
        ("err", Reported::Failed("the handler failed".into())),
        ("panic", Reported::Panicked("the handler panicked".into())),
    ];
    for (line, expected) in cases {
        let mut client = connect_tcp(&server.server_address());
        let client_address = client.local_addr().unwrap();
        client.write_all(format!("{line}\n").as_bytes()).unwrap();
        assert_eq!(
            read_to_end(&mut client),
            b"",
            "no answer from a failed handler"
        );
        let (from, error) = reported
            .recv_timeout(IO_TIMEOUT)
            .expect("handle_error is called");
        assert_eq!(error, expected);
        assert_eq!(from, ClientAddress::Inet(client_address));
    }

    // The server keeps serving, and a good request reports nothing.
    let mut client = connect_tcp(&server.server_address());
    assert_eq!(exchange_line(&mut client, "fine"), "FINE\n");
    drop(client);
    stop(&server, thread);
    assert!(reported.try_recv().is_err(), "no error for a good request");
}

// ---------------------------------------------------------------------------------------
// service_actions
// ---------------------------------------------------------------------------------------

/// Counts `service_actions` calls.
#[derive(Default)]
struct CountServiceActions(AtomicUsize);

impl ServerHooks<TcpTransport> for CountServiceActions {
    fn service_actions(&self, server: &ServerHandle) {
        assert!(server.is_serving(), "called from within serve_forever");
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn service_actions_runs_repeatedly_while_idle() {
    let server = TcpServer::builder("127.0.0.1:0", UpperEcho)
        .poll_interval(Some(Duration::from_millis(10)))
        .hooks(CountServiceActions::default())
        .build()
        .unwrap();
    assert_eq!(server.hooks().0.load(Ordering::SeqCst), 0);
    let (server, thread) = serve(server);
    // No client at all: only the poll interval can drive these calls.
    wait_until("service_actions to run five times", || {
        server.hooks().0.load(Ordering::SeqCst) >= 5
    });
    stop(&server, thread);
}

// ---------------------------------------------------------------------------------------
// get_request, finish_request
// ---------------------------------------------------------------------------------------

/// Takes requests through the transport but reports every client as coming from
/// 192.0.2.1:4242, counting the requests taken.
#[derive(Default)]
struct DisguiseClients(AtomicUsize);

const DISGUISE: &str = "192.0.2.1:4242";

impl ServerHooks<TcpTransport> for DisguiseClients {
    fn get_request(&self, transport: &TcpTransport) -> io::Result<(StreamSocket, ClientAddress)> {
        let (request, _real) = transport.get_request()?;
        self.0.fetch_add(1, Ordering::SeqCst);
        let disguise: SocketAddr = DISGUISE.parse().unwrap();
        Ok((request, ClientAddress::Inet(disguise)))
    }
}

/// Answers with the client address it was given.
#[derive(Clone)]
struct TellClientAddress;

impl RequestHandler for TellClientAddress {
    type Request = StreamRequest;

    fn handle(&mut self, req: &mut StreamRequest) -> HandlerResult {
        writeln!(req.wfile, "{}", req.client_address)?;
        Ok(())
    }
}

#[test]
fn get_request_override_is_used() {
    let server = TcpServer::builder("127.0.0.1:0", TellClientAddress)
        .hooks(DisguiseClients::default())
        .build()
        .unwrap();
    let (server, thread) = serve(server);
    for n in 1..=2 {
        let mut client = connect_tcp(&server.server_address());
        assert_eq!(read_line(&mut client).unwrap(), format!("{DISGUISE}\n"));
        assert_eq!(server.hooks().0.load(Ordering::SeqCst), n);
    }
    stop(&server, thread);
}

/// Records what it does around the default `finish_request`.
struct WrapFinishRequest(Arc<Mutex<Vec<&'static str>>>);

impl ServerHooks<TcpTransport> for WrapFinishRequest {
    fn finish_request<H: RequestHandler>(
        &self,
        handler: H,
        request: &mut H::Request,
    ) -> Result<(), RequestError> {
        self.0.lock().unwrap().push("before");
        let result = run_handler(handler, request);
        self.0.lock().unwrap().push("after");
        result
    }
}

/// Records its own hooks in the same log.
#[derive(Clone)]
struct Logged(Arc<Mutex<Vec<&'static str>>>);

impl RequestHandler for Logged {
    type Request = StreamRequest;

    fn setup(&mut self, _req: &mut StreamRequest) -> HandlerResult {
        self.0.lock().unwrap().push("setup");
        Ok(())
    }

    fn handle(&mut self, req: &mut StreamRequest) -> HandlerResult {
        self.0.lock().unwrap().push("handle");
        req.wfile.write_all(b"done\n")?;
        Ok(())
    }

    fn finish(&mut self, _req: &mut StreamRequest) -> HandlerResult {
        self.0.lock().unwrap().push("finish");
        Ok(())
    }
}

#[test]
fn finish_request_override_wraps_the_handler() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let server = TcpServer::builder("127.0.0.1:0", Logged(Arc::clone(&log)))
        .hooks(WrapFinishRequest(Arc::clone(&log)))
        .build()
        .unwrap();
    let (server, thread) = serve(server);
    let mut client = connect_tcp(&server.server_address());
    assert_eq!(read_to_end(&mut client), b"done\n");
    // Synchronous: once serve_forever has returned, the request is over.
    stop(&server, thread);
    assert_eq!(
        *log.lock().unwrap(),
        ["before", "setup", "handle", "finish", "after"]
    );
}

// ---------------------------------------------------------------------------------------
// shutdown_request, close_request
// ---------------------------------------------------------------------------------------

/// Refuses the first request and counts `shutdown_request` and `close_request` calls,
/// keeping the default behaviour of both.
#[derive(Default)]
struct CountEndings {
    refuse: RefuseFirst,
    shutdowns: AtomicUsize,
    closes: AtomicUsize,
}

impl ServerHooks<TcpTransport> for CountEndings {
    fn verify_request(&self, request: &StreamSocket, client: &ClientAddress) -> bool {
        self.refuse.verify_request(request, client)
    }

    fn shutdown_request(&self, request: StreamSocket) {
        self.shutdowns.fetch_add(1, Ordering::SeqCst);
        TcpTransport::shutdown_request(&request);
        self.close_request(request);
    }

    fn close_request(&self, request: StreamSocket) {
        self.closes.fetch_add(1, Ordering::SeqCst);
        drop(request);
    }
}

#[test]
fn shutdown_request_and_close_request_run_once_per_request() {
    let server = TcpServer::builder("127.0.0.1:0", Counted::default())
        .hooks(CountEndings::default())
        .build()
        .unwrap();
    let (server, thread) = serve(server);

    // Refused, served, and failed: every one is ended exactly once.
    let mut refused = connect_tcp(&server.server_address());
    assert_eq!(read_to_end(&mut refused), b"");
    let mut served = connect_tcp(&server.server_address());
    assert_eq!(exchange_line(&mut served, "ok"), "OK\n");
    assert_eq!(
        read_to_end(&mut served),
        b"",
        "the default shutdown still happens"
    );
    let mut failed = connect_tcp(&server.server_address());
    failed.write_all(b"err\n").unwrap();
    assert_eq!(read_to_end(&mut failed), b"");

    // Synchronous: once serve_forever has returned, every request is over.
    stop(&server, thread);
    assert_eq!(server.hooks().shutdowns.load(Ordering::SeqCst), 3);
    assert_eq!(server.hooks().closes.load(Ordering::SeqCst), 3);
}
