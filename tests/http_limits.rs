//! Limits and timeouts: bodies over `max_body_size`, idle and slow clients cut off by the
//! timeouts of `Limits`, a client that does not read its response, slowloris, and many
//! concurrent keep-alive connections.

mod http_support;

use std::io::{self, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use http_support::{
    connect, flavor, read_to_eof, start, wait_until, Client, Echo11, Echoed, IO_TIMEOUT,
};
use socketserver::http::{HttpHandler, HttpRequest, Limits, Version};
use socketserver::HandlerResult;

const SHORT: Duration = Duration::from_millis(300);

/// Reads the body (propagating its errors) and answers with its length; counts the calls.
#[derive(Clone)]
struct Upload {
    limits: Limits,
    calls: Arc<AtomicUsize>,
}

impl Upload {
    fn new(limits: Limits) -> (Self, Arc<AtomicUsize>) {
        let calls = Arc::new(AtomicUsize::new(0));
        (
            Upload {
                limits,
                calls: Arc::clone(&calls),
            },
            calls,
        )
    }
}

impl HttpHandler for Upload {
    const PROTOCOL_VERSION: Version = Version::HTTP_11;

    fn limits(&self) -> Limits {
        self.limits
    }

    fn do_post(&mut self, req: &mut HttpRequest<'_>) -> HandlerResult {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let body = req.read_body()?;
        http_support::send_body(req, "text/plain", body.len().to_string().as_bytes())
    }
}

fn small_bodies() -> Limits {
    Limits {
        max_body_size: 1000,
        ..Limits::default()
    }
}

#[test]
fn content_length_over_max_body_size_gets_413_before_the_handler_runs() {
    let (handler, calls) = Upload::new(small_bodies());
    let server = start(handler);

    // Exactly the limit is fine.
    let mut client = Client::connect(server.addr());
    let mut request = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\n".to_vec();
    request.resize(request.len() + 1000, b'b');
    assert_eq!(client.request(&request).text(), "1000");
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    // One byte more: 413 on the head alone (the body is never sent), and a close.
    let mut client = Client::connect(server.addr());
    client.send(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1001\r\n\r\n");
    let response = client.read_response();
    assert_eq!(response.status, 413, "{response:#?}");
    assert!(response.connection_has("close"));
    client.expect_closed();

    // With Expect: 100-continue the client is refused without a 100.
    let mut client = Client::connect(server.addr());
    client.send(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5000000\r\nExpect: 100-continue\r\n\r\n",
    );
    let response = client.read_response();
    assert_eq!(response.status, 413, "{response:#?}");
    client.expect_closed();

    assert_eq!(calls.load(Ordering::SeqCst), 1, "the handler ran for a 413");
}

/// Answers a POST with a large body without reading the request's.
#[derive(Clone)]
struct BigAnswer;

const BIG_ANSWER: usize = 4 * 1024 * 1024;

impl HttpHandler for BigAnswer {
    const PROTOCOL_VERSION: Version = Version::HTTP_11;

    fn do_post(&mut self, req: &mut HttpRequest<'_>) -> HandlerResult {
        http_support::send_body(req, "application/octet-stream", &vec![b'a'; BIG_ANSWER])
    }
}

#[test]
fn response_survives_the_close_of_a_connection_with_unread_body() {
    // The body is larger than the server drains, so the connection closes with input
    // unread. Closing such a socket resets it, and the reset throws away the part of the
    // response still queued in the kernel; the server must close its side and linger.
    let server = start(BigAnswer);
    let mut stream = connect(server.addr());
    let head: &[u8] = if flavor().reads_ahead() {
        // The loop answers once a body is in, so the input left unread is what follows a
        // request that closes the connection.
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    } else {
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10000000\r\n\r\n"
    };
    // In one write, so that the server reads unread input with the head. Sent apart, the
    // rest could arrive after the server (seeing none) has answered and closed: a client
    // that sends after `Connection: close` is reset, whichever server it talks to.
    let mut sent = head.to_vec();
    sent.extend_from_slice(&vec![b'u'; 256 * 1024]);
    stream.write_all(&sent).unwrap();
    let responses = http_support::parse_all(&read_to_eof(&mut stream));
    assert_eq!(responses.len(), 1);
    assert_eq!(responses[0].status, 200);
    assert_eq!(
        responses[0].body.len(),
        BIG_ANSWER,
        "the response was cut short"
    );
}

#[test]
fn chunked_body_growing_past_max_body_size_gets_413() {
    let (handler, calls) = Upload::new(small_bodies());
    let server = start(handler);
    let chunk = "c".repeat(600);

    let mut client = Client::connect(server.addr());
    let request = format!(
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n258\r\n{chunk}\r\n190\r\n{}\r\n0\r\n\r\n",
        "d".repeat(400)
    );
    assert_eq!(client.request(request.as_bytes()).text(), "1000");

    let mut client = Client::connect(server.addr());
    let request = format!(
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n258\r\n{chunk}\r\n258\r\n{chunk}\r\n0\r\n\r\n"
    );
    client.send(request.as_bytes());
    let response = client.read_response();
    assert_eq!(response.status, 413, "{response:#?}");
    assert!(response.connection_has("close"));
    client.expect_closed();

    // A single chunk declaring a huge size is refused on its size line.
    let mut client = Client::connect(server.addr());
    client
        .send(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nfffffffff\r\nabc");
    let response = client.read_response();
    assert_eq!(response.status, 413, "{response:#?}");
    client.expect_closed();
    // Read ahead, a body over the limit never reaches the handler.
    let expected = if flavor().reads_ahead() { 1 } else { 3 };
    assert_eq!(calls.load(Ordering::SeqCst), expected);
}

#[test]
fn idle_keep_alive_connection_is_closed_after_keep_alive_timeout() {
    let limits = Limits {
        keep_alive_timeout: SHORT,
        ..Limits::default()
    };
    let server = start(Echo11::with_limits(limits));
    let mut client = Client::connect(server.addr());
    let response = client.request(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(response.status, 200);
    let idle_since = Instant::now();
    // The server closes quietly: no 408 for a connection that was merely idle.
    client.expect_closed();
    let idle = idle_since.elapsed();
    // The server's clock started when it sent the response, a little before ours.
    assert!(idle >= SHORT / 2, "closed after {idle:?}");
    assert!(idle < IO_TIMEOUT / 2, "closed after {idle:?}");
}

#[test]
fn silent_new_connection_is_closed_after_head_timeout() {
    let limits = Limits {
        head_timeout: SHORT,
        ..Limits::default()
    };
    let server = start(Echo11::with_limits(limits));
    let mut stream = connect(server.addr());
    let started = Instant::now();
    let data = read_to_eof(&mut stream);
    assert!(data.is_empty(), "{}", String::from_utf8_lossy(&data));
    let waited = started.elapsed();
    assert!(waited >= SHORT - Duration::from_millis(50), "{waited:?}");
    assert!(waited < IO_TIMEOUT / 2, "{waited:?}");
}

#[test]
fn partial_head_gets_408_after_head_timeout() {
    let limits = Limits {
        head_timeout: SHORT,
        keep_alive_timeout: Duration::from_secs(5),
        ..Limits::default()
    };
    let server = start(Echo11::with_limits(limits));
    let mut stream = connect(server.addr());
    stream.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n").unwrap();
    let started = Instant::now();
    let responses = http_support::parse_all(&read_to_eof(&mut stream));
    assert_eq!(responses.len(), 1);
    assert_eq!(responses[0].status, 408, "{:#?}", responses[0]);
    assert!(responses[0].connection_has("close"));
    assert!(started.elapsed() < IO_TIMEOUT / 2);

    // The same on a keep-alive connection, for a second request that never ends.
    let mut client = Client::connect(server.addr());
    assert_eq!(
        client.request(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").status,
        200
    );
    client.send(b"GET /second HTTP/1.1\r\n");
    let response = client.read_response();
    assert_eq!(response.status, 408);
    client.expect_closed();
}

#[test]
fn head_trickling_in_is_cut_off_by_the_head_timeout() {
    // A byte every 20 ms never leaves the socket idle long, but the head as a whole must
    // arrive within head_timeout.
    let limits = Limits {
        head_timeout: SHORT,
        ..Limits::default()
    };
    let server = start(Echo11::with_limits(limits));
    let mut stream = connect(server.addr());
    let mut writer = stream.try_clone().unwrap();
    let trickle = thread::spawn(move || {
        let head = b"GET /slow HTTP/1.1\r\nHost: a\r\nX-Long: ".iter().copied();
        let deadline = Instant::now() + IO_TIMEOUT;
        for byte in head.chain(std::iter::repeat(b'x')) {
            if writer.write_all(&[byte]).is_err() || Instant::now() > deadline {
                return;
            }
            // Pacing a slow client, not waiting for anything.
            thread::sleep(Duration::from_millis(20));
        }
    });
    let started = Instant::now();
    let responses = http_support::parse_all(&read_to_eof(&mut stream));
    let waited = started.elapsed();
    assert_eq!(responses.len(), 1);
    assert_eq!(responses[0].status, 408);
    assert!(waited < Duration::from_secs(3), "cut off after {waited:?}");
    trickle.join().unwrap();
}

#[test]
fn slow_body_gets_408() {
    let limits = Limits {
        body_timeout: SHORT,
        ..Limits::default()
    };
    let (handler, calls) = Upload::new(limits);
    let server = start(handler);
    let mut client = Client::connect(server.addr());
    client.send(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc");
    let started = Instant::now();
    let response = client.read_response();
    assert_eq!(response.status, 408, "{response:#?}");
    assert!(response.connection_has("close"));
    client.expect_closed();
    assert!(started.elapsed() >= SHORT - Duration::from_millis(50));
    let expected = if flavor().reads_ahead() { 0 } else { 1 };
    assert_eq!(calls.load(Ordering::SeqCst), expected);

    // Chunked: a chunk that never completes.
    let mut client = Client::connect(server.addr());
    client.send(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nabc");
    let response = client.read_response();
    assert_eq!(response.status, 408, "{response:#?}");
    client.expect_closed();
}

/// Writes a response far larger than socket buffers; records how the write ended.
#[derive(Clone)]
struct Flood {
    outcome: Arc<Mutex<Option<io::Result<()>>>>,
}

impl HttpHandler for Flood {
    // A long answer written as it goes: its writes wait for the client.
    fn may_block(&self, _request: &HttpRequest<'_>) -> bool {
        true
    }

    fn limits(&self) -> Limits {
        Limits {
            send_timeout: SHORT,
            ..Limits::default()
        }
    }

    fn do_get(&mut self, req: &mut HttpRequest<'_>) -> HandlerResult {
        let total = 256 * 1024 * 1024;
        req.send_response(200)?;
        req.send_header("Content-Length", total)?;
        req.end_headers()?;
        let chunk = vec![b'f'; 1024 * 1024];
        let result = (0..total / chunk.len()).try_for_each(|_| req.wfile.write_all(&chunk));
        let failed = result.is_err();
        *self.outcome.lock().unwrap() = Some(result);
        if failed {
            return Err("the client does not read".into());
        }
        Ok(())
    }
}

#[test]
fn client_that_does_not_read_is_cut_off_by_send_timeout() {
    let outcome = Arc::new(Mutex::new(None));
    let server = start(Flood {
        outcome: Arc::clone(&outcome),
    });
    let mut stream = connect(server.addr());
    stream.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    // We never read; the server must give up on its own.
    wait_until("the handler's write to time out", || {
        outcome.lock().unwrap().is_some()
    });
    let result = outcome.lock().unwrap().take().unwrap();
    let err = result.expect_err("256 MiB cannot fit in socket buffers");
    assert!(
        matches!(
            err.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        ),
        "{err:?}"
    );
    // Then it closes: reading drains what was buffered and ends.
    let received = read_to_eof(&mut stream).len();
    assert!(received < 256 * 1024 * 1024, "{received}");
}

#[test]
fn slowloris_connections_do_not_block_other_clients() {
    // Default limits: the partial heads are held for the whole head timeout (10 s), much
    // longer than this test.
    let server = start(Echo11::default());
    let mut loris = Vec::new();
    for i in 0..200 {
        let mut stream = connect(server.addr());
        stream
            .write_all(format!("GET /loris{i} HTTP/1.1\r\nHost: a\r\nX-Part").as_bytes())
            .unwrap();
        loris.push(stream);
    }
    for round in 0..3 {
        let started = Instant::now();
        let mut client = Client::connect(server.addr());
        let response = client.request(b"GET /normal HTTP/1.1\r\nHost: a\r\n\r\n");
        let took = started.elapsed();
        assert_eq!(Echoed::parse(&response).requestline, "GET /normal HTTP/1.1");
        assert!(took < Duration::from_secs(3), "round {round} took {took:?}");
    }
    // The held connections are still waiting (nothing was answered to them): finishing
    // one head now gets it its answer.
    let mut last = loris.pop().unwrap();
    last.write_all(b": y\r\n\r\n").unwrap();
    let mut client = Client::new(last);
    let response = client.read_response();
    assert_eq!(
        Echoed::parse(&response).requestline,
        "GET /loris199 HTTP/1.1"
    );
    drop(loris);
}

#[test]
fn a_thousand_concurrent_keep_alive_connections_each_make_two_requests() {
    const CONNECTIONS: usize = 1000;
    const THREADS: usize = 20;
    let server = start(Echo11::default());
    let addr = server.addr();
    let started = Instant::now();
    // Every connection is opened before any second request is sent, so all 1000 are open
    // at once; each thread drives its share of them.
    let opened = Arc::new(std::sync::Barrier::new(THREADS));
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let opened = Arc::clone(&opened);
            thread::spawn(move || -> Result<usize, String> {
                let mut clients: Vec<Client> = (0..CONNECTIONS / THREADS)
                    .map(|_| Client::connect(addr))
                    .collect();
                for round in 0..2 {
                    for (i, client) in clients.iter_mut().enumerate() {
                        client.send(
                            format!("GET /t{t}/c{i}/r{round} HTTP/1.1\r\nHost: a\r\n\r\n")
                                .as_bytes(),
                        );
                    }
                    for (i, client) in clients.iter_mut().enumerate() {
                        let response = client.read_response();
                        let line = Echoed::parse(&response).requestline;
                        let expected = format!("GET /t{t}/c{i}/r{round} HTTP/1.1");
                        if line != expected || response.connection_has("close") {
                            return Err(format!("{expected}: {response:#?}"));
                        }
                    }
                    if round == 0 {
                        opened.wait();
                    }
                }
                Ok(clients.len() * 2)
            })
        })
        .collect();
    let mut answered = 0;
    for worker in workers {
        answered += worker.join().expect("a client thread panicked").unwrap();
    }
    assert_eq!(answered, CONNECTIONS * 2);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn limits_default_values_are_pythons() {
    let limits = Limits::default();
    assert_eq!(limits.max_request_line, 65536);
    assert_eq!(limits.max_headers, 100);
    assert_eq!(limits.max_header_bytes, 64 * 1024);
}
