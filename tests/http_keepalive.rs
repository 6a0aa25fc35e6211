//! Persistent connections and pipelining: when a connection stays open and when it closes,
//! the `StreamSocket` headers the server adds, pipelined requests answered in order, and
//! unread request bodies drained (or the connection closed when there is too much).

mod http_support;

use std::io::Write;
use std::net::Shutdown;

use std::time::Duration;

use http_support::{exchange, flavor, start, Client, Echo, Echo11, Echoed};
use socketserver::http::{HttpHandler, HttpRequest, Limits, Version};
use socketserver::HandlerResult;

#[test]
fn http_1_0_protocol_closes_after_each_response() {
    let server = start(Echo::<false>::default());
    // Even an HTTP/1.1 client asking for keep-alive gets one answer: the server speaks 1.0.
    let data = exchange(
        server.addr(),
        b"GET /one HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\n\r\nGET /two HTTP/1.1\r\nHost: a\r\n\r\n",
    );
    let responses = http_support::parse_all(&data);
    assert_eq!(responses.len(), 1, "{responses:#?}");
    assert_eq!(responses[0].version, "HTTP/1.0");
    assert_eq!(
        Echoed::parse(&responses[0]).requestline,
        "GET /one HTTP/1.1"
    );
    assert!(
        !responses[0].connection_has("keep-alive"),
        "{:#?}",
        responses[0]
    );
}

#[test]
fn http_1_1_protocol_serves_several_requests_on_one_connection() {
    let server = start(Echo11::default());
    let mut client = Client::connect(server.addr());
    for i in 0..5 {
        let response = client.request(format!("GET /r{i} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes());
        assert_eq!(response.version, "HTTP/1.1");
        assert!(!response.connection_has("close"), "{response:#?}");
        assert_eq!(
            Echoed::parse(&response).requestline,
            format!("GET /r{i} HTTP/1.1")
        );
    }
    // Ending our side ends the connection quietly, with nothing more sent.
    client.stream.shutdown(Shutdown::Write).unwrap();
    client.expect_closed();
}

#[test]
fn connection_close_from_the_client_is_honoured() {
    let server = start(Echo11::default());
    let mut client = Client::connect(server.addr());
    assert_eq!(
        client.request(b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\n").status,
        200
    );
    // `close` among other tokens, in any case.
    client.send(
        b"GET /2 HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, CLOSE\r\n\r\nGET /3 HTTP/1.1\r\nHost: a\r\n\r\n",
    );
    let response = client.read_response();
    assert_eq!(Echoed::parse(&response).requestline, "GET /2 HTTP/1.1");
    // An HTTP/1.1 response that ends the connection says so.
    assert!(response.connection_has("close"), "{response:#?}");
    client.expect_closed();
}

#[test]
fn http_1_0_client_asking_for_keep_alive_gets_it_from_an_http_1_1_handler() {
    let server = start(Echo11::default());
    let mut client = Client::connect(server.addr());
    for i in 0..3 {
        let response = client
            .request(format!("GET /k{i} HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").as_bytes());
        assert_eq!(response.status, 200);
        assert!(response.connection_has("keep-alive"), "{response:#?}");
        assert_eq!(
            Echoed::parse(&response).requestline,
            format!("GET /k{i} HTTP/1.0")
        );
    }
    // Without asking, an HTTP/1.0 client gets one response and a close.
    let response = client.request(b"GET /last HTTP/1.0\r\n\r\n");
    assert!(!response.connection_has("keep-alive"), "{response:#?}");
    client.expect_closed();
}

/// Answers without a Content-Length (the body ends with the connection), or closes on
/// request of the path.
#[derive(Clone)]
struct Framing;

impl HttpHandler for Framing {
    const PROTOCOL_VERSION: Version = Version::HTTP_11;

    fn do_get(&mut self, req: &mut HttpRequest<'_>) -> HandlerResult {
        match req.path.as_str() {
            "/no-length" => {
                req.send_response(200)?;
                req.send_header("Content-Type", "text/plain")?;
                req.end_headers()?;
                req.wfile.write_all(b"until the close")?;
            }
            "/close-field" => {
                req.close_connection = true;
                http_support::send_body(req, "text/plain", b"closing")?;
            }
            "/close-header" => {
                req.send_response(200)?;
                req.send_header("Connection", "close")?;
                req.send_header("Content-Length", 7)?;
                req.end_headers()?;
                req.wfile.write_all(b"closing")?;
            }
            _ => http_support::send_body(req, "text/plain", b"normal")?,
        }
        Ok(())
    }
}

#[test]
fn response_without_content_length_on_keep_alive_gets_connection_close() {
    let server = start(Framing);
    let mut client = Client::connect(server.addr());
    assert_eq!(
        client
            .request(b"GET /first HTTP/1.1\r\nHost: a\r\n\r\n")
            .text(),
        "normal"
    );
    client
        .send(b"GET /no-length HTTP/1.1\r\nHost: a\r\n\r\nGET /never HTTP/1.1\r\nHost: a\r\n\r\n");
    let response = client.read_response();
    assert!(response.connection_has("close"), "{response:#?}");
    assert_eq!(response.content_length(), None);
    // The parser read the body up to the close: nothing of a second response follows.
    assert_eq!(response.text(), "until the close");
}

#[test]
fn handler_can_close_the_connection() {
    let server = start(Framing);
    for path in ["/close-field", "/close-header"] {
        let mut client = Client::connect(server.addr());
        client.send(
            format!("GET {path} HTTP/1.1\r\nHost: a\r\n\r\nGET /never HTTP/1.1\r\nHost: a\r\n\r\n")
                .as_bytes(),
        );
        assert_eq!(client.read_response().text(), "closing", "{path}");
        client.expect_closed();
    }
}

#[test]
fn ten_pipelined_requests_in_one_write_are_answered_in_order() {
    let server = start(Echo11::default());
    let mut client = Client::connect(server.addr());
    let mut batch = Vec::new();
    for i in 0..10 {
        if i % 3 == 1 {
            let body = format!("body number {i}");
            write!(
                batch,
                "POST /p{i} HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .unwrap();
        } else if i % 3 == 2 {
            write!(
                batch,
                "PUT /p{i} HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nput{i}\r\n0\r\n\r\n"
            )
            .unwrap();
        } else {
            write!(batch, "GET /p{i} HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
        }
    }
    client.send(&batch);
    for i in 0..10 {
        let echoed = Echoed::parse(&client.read_response());
        let method = ["GET", "POST", "PUT"][i % 3];
        assert_eq!(echoed.requestline, format!("{method} /p{i} HTTP/1.1"));
        let body = match i % 3 {
            1 => format!("body number {i}"),
            2 => format!("put{i}"),
            _ => String::new(),
        };
        assert_eq!(String::from_utf8_lossy(&echoed.body), body, "request {i}");
    }
    // Still open after the batch.
    let echoed = Echoed::parse(&client.request(b"GET /after HTTP/1.1\r\nHost: a\r\n\r\n"));
    assert_eq!(echoed.requestline, "GET /after HTTP/1.1");
}

#[test]
fn many_pipelined_requests_with_large_responses_are_all_answered() {
    // More output than the server keeps back, so answers leave while requests still come.
    let server = start(Echo11::default());
    let mut client = Client::connect(server.addr());
    let padding = "p".repeat(3000);
    let mut batch = Vec::new();
    for i in 0..200 {
        write!(
            batch,
            "GET /{i} HTTP/1.1\r\nHost: a\r\nX-Pad: {padding}\r\n\r\n"
        )
        .unwrap();
    }
    let mut writer = client.stream.try_clone().unwrap();
    let sender = std::thread::spawn(move || writer.write_all(&batch));
    for i in 0..200 {
        let echoed = Echoed::parse(&client.read_response());
        assert_eq!(echoed.requestline, format!("GET /{i} HTTP/1.1"));
    }
    sender.join().unwrap().unwrap();
}

/// Never reads the request body.
#[derive(Clone)]
struct Unread {
    limits: Limits,
}

impl HttpHandler for Unread {
    const PROTOCOL_VERSION: Version = Version::HTTP_11;

    fn limits(&self) -> Limits {
        self.limits
    }

    fn do_post(&mut self, req: &mut HttpRequest<'_>) -> HandlerResult {
        let body = format!("ignored {}", req.path);
        http_support::send_body(req, "text/plain", body.as_bytes())
    }

    fn do_get(&mut self, req: &mut HttpRequest<'_>) -> HandlerResult {
        let body = format!("got {}", req.path);
        http_support::send_body(req, "text/plain", body.as_bytes())
    }
}

fn unread(max_drain: u64) -> Unread {
    Unread {
        limits: Limits {
            max_drain,
            ..Limits::default()
        },
    }
}

#[test]
fn unread_request_body_is_drained_and_the_next_request_works() {
    let server = start(unread(64 * 1024));
    let mut client = Client::connect(server.addr());
    // A body that looks like a request: if it were not drained, it would be answered.
    let body = "GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n".repeat(100);
    let request = format!(
        "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n{body}GET /next HTTP/1.1\r\nHost: a\r\n\r\n",
        body.len()
    );
    client.send(request.as_bytes());
    assert_eq!(client.read_response().text(), "ignored /a");
    assert_eq!(client.read_response().text(), "got /next");
    // The same for a chunked body with a trailer.
    client.send(
        b"POST /b HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\
          10\r\nGET /smuggled H\r\n0\r\nX-Trailer: t\r\n\r\nGET /next2 HTTP/1.1\r\nHost: a\r\n\r\n",
    );
    assert_eq!(client.read_response().text(), "ignored /b");
    assert_eq!(client.read_response().text(), "got /next2");
}

#[test]
fn unread_body_larger_than_max_drain_closes_the_connection() {
    let server = start(unread(1024));
    let mut client = Client::connect(server.addr());
    let body = vec![b'x'; 100_000];
    let mut request = format!(
        "POST /big HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(&body);
    request.extend_from_slice(b"GET /never HTTP/1.1\r\nHost: a\r\n\r\n");
    // The server may close before it took all of this: write from another thread and
    // ignore a failed write.
    let mut writer = client.stream.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        let _ = writer.write_all(&request);
    });
    let response = client.read_response();
    assert_eq!(response.text(), "ignored /big");
    if flavor().reads_ahead() {
        // The loop read the body before the handler ran: nothing is left to drain, and
        // the connection carries the next request.
        assert_eq!(client.read_response().text(), "got /never");
    } else {
        client.expect_closed();
    }
    sender.join().unwrap();

    // Under the limit, the same server keeps the connection.
    let mut client = Client::connect(server.addr());
    let request = format!(
        "POST /small HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\n{}GET /next HTTP/1.1\r\nHost: a\r\n\r\n",
        "y".repeat(1000)
    );
    client.send(request.as_bytes());
    assert_eq!(client.read_response().text(), "ignored /small");
    assert_eq!(client.read_response().text(), "got /next");
}

#[test]
fn blank_lines_after_a_request_do_not_hold_its_answer_back() {
    // Answers wait only for a pipelined request that is all here; blank lines (which old
    // clients send after a body) are no request, and the answer must not wait for the
    // keep-alive timeout behind them.
    let server = start(Echo11::with_limits(Limits {
        keep_alive_timeout: Duration::from_secs(60),
        ..Limits::default()
    }));
    let mut client = Client::connect(server.addr());
    for blank in ["\r\n\r\n", "\n\n", "\r\n"] {
        client.send(format!("GET /blank HTTP/1.1\r\nHost: a\r\n\r\n{blank}").as_bytes());
        let echoed = Echoed::parse(&client.read_response());
        assert_eq!(echoed.requestline, "GET /blank HTTP/1.1", "after {blank:?}");
    }
}

#[test]
fn blank_lines_do_not_keep_an_idle_connection_open() {
    // A line end every 200 ms is no request: the connection closes by the head timeout
    // (blank lines count as the start of a head), not whenever the client stops.
    let server = start(Echo11::with_limits(Limits {
        head_timeout: Duration::from_millis(500),
        keep_alive_timeout: Duration::from_millis(500),
        ..Limits::default()
    }));
    let mut client = Client::connect(server.addr());
    client.send(b"GET /first HTTP/1.1\r\nHost: a\r\n\r\n");
    Echoed::parse(&client.read_response());
    let stream = &mut client.stream;
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let started = std::time::Instant::now();
    let mut scratch = [0u8; 1024];
    let closed = loop {
        if started.elapsed() > Duration::from_secs(5) {
            break false;
        }
        if stream.write_all(b"\r\n").is_err() {
            break true;
        }
        match std::io::Read::read(stream, &mut scratch) {
            // End-of-file, or the 408 that comes before it.
            Ok(_) => break true,
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => break true,
        }
    };
    assert!(closed, "still open after 5 s of blank lines");
}
