//! The event loop: parked connections hold no thread, a handler of any protocol can park,
//! output the socket does not take waits without blocking the loop, and closing the server
//! ends what is parked. (The HTTP suites run on an `EventLoop` too: `event_loop_*.rs`.)

mod common;

use std::collections::BTreeSet;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::Mutex;
use std::time::Duration;

use common::*;
use socketserver::concurrency::EventLoop;
use socketserver::http::{HttpHandler, HttpRequest, Limits, Version};
use socketserver::{HandlerResult, RequestHandler, Server, StreamRequest, TcpTransport};

/// The names of the threads `Hello` ran on, in every test of this binary.
static HELLO_THREADS: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// `/hello` on the loop's thread; `/big?N` answers N bytes.
#[derive(Clone)]
struct Hello;

impl HttpHandler for Hello {
    const PROTOCOL_VERSION: Version = Version::HTTP_11;

    fn limits(&self) -> Limits {
        Limits {
            keep_alive_timeout: Duration::from_secs(60),
            ..Limits::default()
        }
    }

    fn do_get(&mut self, req: &mut HttpRequest<'_>) -> HandlerResult {
        let name = std::thread::current()
            .name()
            .unwrap_or("unnamed")
            .to_string();
        HELLO_THREADS.lock().unwrap().insert(name);
        let size = req
            .query()
            .and_then(|q| q.parse::<usize>().ok())
            .unwrap_or(0);
        let body = if req.path.starts_with("/big") {
            vec![b'b'; size]
        } else {
            b"Hello, world!".to_vec()
        };
        req.send_response(200)?;
        req.send_header("Content-Length", body.len())?;
        req.end_headers()?;
        req.wfile.write_all(&body)?;
        Ok(())
    }

    /// Answers with what it was sent: path, `X-Tag` and body.
    fn do_post(&mut self, req: &mut HttpRequest<'_>) -> HandlerResult {
        let tag = req.header("x-tag").unwrap_or("-").to_string();
        let body = req.body_text()?;
        let text = format!("{} {tag} {body}", req.path);
        req.send_text(200, &text)
    }
}

fn hello_server(workers: usize) -> Server<TcpTransport, Hello, EventLoop> {
    Server::<TcpTransport, Hello, EventLoop>::builder("127.0.0.1:0", Hello)
        .concurrency(EventLoop::new(workers).unwrap())
        .request_queue_size(1024)
        .build()
        .unwrap()
}

/// Reads one response with a `Content-Length` (the tests' own responses) and returns its
/// body.
fn read_response(reader: &mut BufReader<TcpStream>) -> Vec<u8> {
    let mut length = None;
    loop {
        let mut line = String::new();
        assert!(reader.read_line(&mut line).unwrap() > 0, "closed mid-head");
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some(value) = line
            .to_ascii_lowercase()
            .strip_prefix("content-length:")
            .map(str::trim)
            .map(str::to_string)
        {
            length = Some(value.parse::<usize>().unwrap());
        }
    }
    let mut body = vec![0; length.expect("a Content-Length")];
    reader.read_exact(&mut body).unwrap();
    body
}

fn get(reader: &mut BufReader<TcpStream>, target: &str) -> Vec<u8> {
    let request = format!("GET {target} HTTP/1.1\r\nHost: a\r\n\r\n");
    reader.get_mut().write_all(request.as_bytes()).unwrap();
    read_response(reader)
}

fn client(server: &Server<TcpTransport, Hello, EventLoop>) -> BufReader<TcpStream> {
    BufReader::new(connect_tcp(&server.server_address()))
}

#[test]
fn a_thousand_idle_keep_alive_connections_hold_no_thread() {
    let (server, thread) = serve(hello_server(2));
    let mut clients: Vec<_> = (0..1000).map(|_| client(&server)).collect();
    for reader in &mut clients {
        assert_eq!(get(reader, "/hello"), b"Hello, world!");
    }
    wait_until("every connection to be parked", || {
        server.concurrency().parked() == 1000
    });
    // Every request ran on the thread of its server's loop, none on a worker: no thread
    // waits for a connection.
    let threads = HELLO_THREADS.lock().unwrap().clone();
    assert!(threads.contains("serve_forever"), "{threads:?}");
    assert!(
        !threads.iter().any(|t| t.starts_with("Worker")),
        "{threads:?}"
    );
    // Parked connections are served again when they speak.
    for reader in clients.iter_mut().step_by(97) {
        assert_eq!(get(reader, "/hello"), b"Hello, world!");
    }
    stop(&server, thread);
}

/// A request parked while its body comes keeps its head, while the loop serves other
/// connections whose head storage comes from and goes back to the loop's pool.
#[test]
fn a_request_waiting_for_its_body_keeps_its_head_meanwhile() {
    let (server, thread) = serve(hello_server(0));
    let mut waiting = client(&server);
    let head = "POST /waiting HTTP/1.1\r\nHost: a\r\nX-Tag: alpha\r\n\
                Content-Length: 10\r\nExpect: 100-continue\r\n\r\n";
    waiting.get_mut().write_all(head.as_bytes()).unwrap();
    // The 100 says the head was read and the request waits, parked, for its body.
    let mut line = String::new();
    waiting.read_line(&mut line).unwrap();
    assert_eq!(line, "HTTP/1.1 100 Continue\r\n");
    waiting.read_line(&mut line).unwrap();
    let mut others: Vec<_> = (0..3).map(|_| client(&server)).collect();
    for (i, other) in others.iter_mut().enumerate() {
        let request = format!(
            "POST /other{i} HTTP/1.1\r\nHost: a\r\nX-Tag: t{i}\r\nContent-Length: 2\r\n\r\nok"
        );
        other.get_mut().write_all(request.as_bytes()).unwrap();
        let answer = read_response(other);
        assert_eq!(
            String::from_utf8_lossy(&answer),
            format!("/other{i} t{i} ok")
        );
    }
    waiting.get_mut().write_all(b"0123456789").unwrap();
    let answer = read_response(&mut waiting);
    assert_eq!(
        String::from_utf8_lossy(&answer),
        "/waiting alpha 0123456789"
    );
    stop(&server, thread);
}

#[test]
fn server_close_ends_parked_connections() {
    let (server, thread) = serve(hello_server(0));
    let mut clients: Vec<_> = (0..20).map(|_| client(&server)).collect();
    for reader in &mut clients {
        assert_eq!(get(reader, "/hello"), b"Hello, world!");
    }
    wait_until("the connections to be parked", || {
        server.concurrency().parked() == 20
    });
    stop(&server, thread);
    server.server_close();
    assert_eq!(server.concurrency().parked(), 0);
    for reader in &mut clients {
        assert_eq!(
            read_to_end(reader),
            b"",
            "a parked connection was left open"
        );
    }
}

#[test]
fn a_client_that_does_not_read_does_not_hold_up_the_loop() {
    // Without workers, one thread serves everything: a response that waits for a slow
    // reader must wait in the loop, not on its thread.
    let (server, thread) = serve(hello_server(0));
    let mut slow = client(&server);
    let size = 200 * 1024;
    let mut pipelined = String::new();
    for _ in 0..16 {
        pipelined.push_str(&format!("GET /big?{size} HTTP/1.1\r\nHost: a\r\n\r\n"));
    }
    slow.get_mut().write_all(pipelined.as_bytes()).unwrap();
    // 3 MiB of answers do not fit in the socket buffers of a connection that is not read;
    // meanwhile others are served.
    for _ in 0..20 {
        let mut other = client(&server);
        assert_eq!(get(&mut other, "/hello"), b"Hello, world!");
    }
    for _ in 0..16 {
        let body = read_response(&mut slow);
        assert_eq!(body.len(), size);
        assert!(body.iter().all(|&b| b == b'b'));
    }
    assert_eq!(get(&mut slow, "/hello"), b"Hello, world!");
    stop(&server, thread);
}

#[test]
fn handle_request_on_an_event_loop_serves_one_connection() {
    let server = hello_server(0);
    let mut reader = client(&server);
    reader
        .get_mut()
        .write_all(b"GET /hello HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    server.handle_request().unwrap();
    assert_eq!(read_response(&mut reader), b"Hello, world!");
}

/// A line protocol that parks between lines: it answers every complete line it has and
/// gives its thread back when it has none.
#[derive(Clone, Default)]
struct ParkingUpper;

impl RequestHandler for ParkingUpper {
    type Request = StreamRequest;

    fn handle(&mut self, req: &mut StreamRequest) -> HandlerResult {
        loop {
            if req.can_park() {
                // Take what has come; with no whole line, give the thread back.
                while !req.rfile.buffer().contains(&b'\n') {
                    match req.rfile.read_available() {
                        Ok(0) => return Ok(()),
                        Ok(_) => {}
                        Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                            req.park(Some(IO_TIMEOUT));
                            return Ok(());
                        }
                        Err(err) => return Err(err.into()),
                    }
                }
            }
            let line = req.rfile.readline(1024)?;
            if line.is_empty() {
                return Ok(());
            }
            req.wfile.write_all(&line.to_ascii_uppercase())?;
        }
    }
}

#[test]
fn any_stream_handler_can_park_so_one_worker_serves_many_clients() {
    // One worker: without parking, the first client would keep it for its whole session.
    let server =
        Server::<TcpTransport, ParkingUpper, EventLoop>::builder("127.0.0.1:0", ParkingUpper)
            .concurrency(EventLoop::new(1).unwrap())
            .build()
            .unwrap();
    let (server, thread) = serve(server);
    let mut clients: Vec<_> = (0..10)
        .map(|_| connect_tcp(&server.server_address()))
        .collect();
    for round in 0..3 {
        for (i, stream) in clients.iter_mut().enumerate() {
            let line = format!("client {i} round {round}");
            assert_eq!(exchange_line(stream, &line), line.to_uppercase() + "\n");
        }
    }
    stop(&server, thread);
}

#[test]
fn parking_is_refused_by_other_strategies() {
    // The same handler on a thread per connection: park() says no, so it reads on.
    let server = Server::<TcpTransport, ParkingUpper, socketserver::Threading>::bind(
        "127.0.0.1:0",
        ParkingUpper,
    )
    .unwrap();
    let (server, thread) = serve(server);
    let mut stream = connect_tcp(&server.server_address());
    assert_eq!(exchange_line(&mut stream, "still served"), "STILL SERVED\n");
    drop(stream);
    stop(&server, thread);
}

/// Waits on a worker, then lets its connection idle past a short keep-alive timeout.
#[derive(Clone)]
struct OnAWorker;

impl HttpHandler for OnAWorker {
    fn may_block(&self, _request: &HttpRequest<'_>) -> bool {
        true
    }

    const PROTOCOL_VERSION: Version = Version::HTTP_11;

    fn limits(&self) -> Limits {
        Limits {
            keep_alive_timeout: Duration::from_millis(300),
            ..Limits::default()
        }
    }

    fn do_get(&mut self, req: &mut HttpRequest<'_>) -> HandlerResult {
        let name = std::thread::current().name().unwrap_or("").to_string();
        req.send_response(200)?;
        req.send_header("Content-Length", name.len())?;
        req.end_headers()?;
        req.wfile.write_all(name.as_bytes())?;
        Ok(())
    }
}

#[test]
fn a_deadline_set_on_a_worker_wakes_a_loop_that_sleeps_without_one() {
    // No poll interval: the loop sleeps until an event. The keep-alive deadline of the
    // connection is set by the worker that answered, after the loop went to sleep.
    let server = Server::<TcpTransport, OnAWorker, EventLoop>::builder("127.0.0.1:0", OnAWorker)
        .concurrency(EventLoop::new(1).unwrap())
        .poll_interval(None)
        .build()
        .unwrap();
    let (server, thread) = serve(server);
    let mut reader = BufReader::new(connect_tcp(&server.server_address()));
    reader
        .get_mut()
        .write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    let ran_on = read_response(&mut reader);
    assert!(
        ran_on.starts_with(b"Worker"),
        "{:?}",
        String::from_utf8_lossy(&ran_on)
    );
    // The idle connection closes at its deadline, well within the read timeout.
    let mut rest = Vec::new();
    reader
        .read_to_end(&mut rest)
        .expect("end-of-file at the keep-alive deadline");
    assert!(rest.is_empty(), "{rest:?}");
    stop(&server, thread);
}
