//! Request parsing over real sockets: the request line and headers as the handler sees
//! them, the forms of request line the server accepts and the ones it rejects (with their
//! statuses), the size limits of the head, and request bodies (Content-Length, chunked,
//! `Expect: 100-continue`).

mod http_support;

use std::fmt::Write as _;
use std::io::Write;
use std::time::Duration;

use http_support::{
    connect, exchange_one, flavor, read_to_eof, start, Client, Echo, Echo11, Echoed,
};
use socketserver::http::{HttpHandler, HttpRequest, Limits, Version};
use socketserver::{BoxError, HandlerResult};

/// Answers with what the request looks like through the accessors of `HttpRequest`.
#[derive(Clone)]
struct Inspect;

impl HttpHandler for Inspect {
    const PROTOCOL_VERSION: Version = Version::HTTP_11;

    fn do_get(&mut self, req: &mut HttpRequest<'_>) -> HandlerResult {
        let mut text = String::new();
        let multi: Vec<String> = req
            .headers
            .get_all("X-MULTI")
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect();
        writeln!(text, "command={}", req.command).unwrap();
        writeln!(text, "path={}", req.path).unwrap();
        writeln!(text, "version={:?}", req.request_version).unwrap();
        writeln!(text, "requestline={}", req.requestline).unwrap();
        writeln!(
            text,
            "raw={:?}",
            String::from_utf8_lossy(&req.raw_requestline)
        )
        .unwrap();
        writeln!(text, "host={:?}", req.header("hOsT")).unwrap();
        writeln!(text, "multi={}", multi.join("|")).unwrap();
        writeln!(text, "query={:?}", req.query()).unwrap();
        writeln!(text, "client={}", req.address_string()).unwrap();
        writeln!(text, "close={}", req.close_connection).unwrap();
        http_support::send_body(req, "text/plain", text.as_bytes())
    }
}

fn lines(body: &str) -> Vec<&str> {
    body.lines().collect()
}

#[test]
fn request_line_and_headers_reach_the_handler() {
    let server = start(Inspect);
    let response = exchange_one(
        server.addr(),
        b"GET /a/b?x=1&y=%20 HTTP/1.1\r\nHost: example.org\r\nX-Multi: one\r\nx-multi: two\r\n\
          X-MULTI: three\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(response.status, 200, "{response:#?}");
    assert_eq!(
        lines(&response.text()),
        [
            "command=GET",
            "path=/a/b?x=1&y=%20",
            "version=HTTP/1.1",
            "requestline=GET /a/b?x=1&y=%20 HTTP/1.1",
            r#"raw="GET /a/b?x=1&y=%20 HTTP/1.1\r\n""#,
            r#"host=Some("example.org")"#,
            "multi=one|two|three",
            r#"query=Some("x=1&y=%20")"#,
            "client=127.0.0.1",
            "close=true",
        ]
    );
}

#[test]
fn headers_keep_their_order_and_repeats_in_the_echo() {
    let server = start(Echo::<false>::default());
    let response = exchange_one(
        server.addr(),
        b"GET /h HTTP/1.0\r\nAccept: a\r\nAccept: b\r\nX-Empty:\r\nX-Spaces:   padded value  \r\n\r\n",
    );
    let echoed = Echoed::parse(&response);
    assert_eq!(echoed.requestline, "GET /h HTTP/1.0");
    assert_eq!(echoed.header_all("accept"), ["a", "b"]);
    assert_eq!(echoed.header_all("x-empty"), [""]);
    // Leading and trailing whitespace (OWS) is not part of a field value.
    assert_eq!(echoed.header_all("x-spaces"), ["padded value"]);
}

#[test]
fn absolute_form_target_is_kept_in_path() {
    let server = start(Inspect);
    let response = exchange_one(
        server.addr(),
        b"GET http://example.com:8080/p/q?r=1 HTTP/1.1\r\nHost: example.com:8080\r\nConnection: close\r\n\r\n",
    );
    let text = response.text();
    assert!(
        text.contains("path=http://example.com:8080/p/q?r=1\n"),
        "{text}"
    );
    assert!(text.contains(r#"query=Some("r=1")"#), "{text}");
}

#[test]
fn bare_lf_line_endings_are_accepted() {
    let server = start(Echo11::default());
    let mut client = Client::connect(server.addr());
    client.send(b"GET /lf HTTP/1.1\nHost: a\nX-One: 1\n\nGET /second HTTP/1.1\nHost: a\n\n");
    let first = client.read_response();
    let echoed = Echoed::parse(&first);
    assert_eq!(echoed.requestline, "GET /lf HTTP/1.1");
    assert_eq!(echoed.header_all("x-one"), ["1"]);
    let second = Echoed::parse(&client.read_response());
    assert_eq!(second.requestline, "GET /second HTTP/1.1");
}

#[test]
fn empty_lines_before_a_request_are_ignored() {
    let server = start(Echo11::default());
    let mut client = Client::connect(server.addr());
    let response = client.request(b"\r\n\r\n\n\r\nGET /after-blank HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(
        Echoed::parse(&response).requestline,
        "GET /after-blank HTTP/1.1"
    );
    // As a client may leave after a POST body (RFC 9112 2.2), between two requests.
    let response = client.request(b"\r\nGET /next HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(Echoed::parse(&response).requestline, "GET /next HTTP/1.1");
}

#[test]
fn http_0_9_request_gets_505_at_once() {
    // With a head timeout shorter than the client's read timeout, a server that waited for
    // more of the head would answer 408, not 505.
    let limits = Limits {
        head_timeout: Duration::from_secs(3),
        ..Limits::default()
    };
    let server = start(Echo11::with_limits(limits));
    let mut stream = connect(server.addr());
    stream.write_all(b"GET /\r\n").unwrap();
    let responses = http_support::parse_all(&read_to_eof(&mut stream));
    assert_eq!(responses.len(), 1, "{responses:#?}");
    assert_eq!(responses[0].status, 505, "{:#?}", responses[0]);
}

#[test]
fn unsupported_versions_get_505() {
    let server = start(Echo11::default());
    for line in [
        "GET / HTTP/2.0",
        "GET / HTTP/1.2",
        "GET / HTTP/3.0",
        "GET / HTTP/0.9",
    ] {
        let response = exchange_one(
            server.addr(),
            format!("{line}\r\nHost: a\r\n\r\n").as_bytes(),
        );
        assert_eq!(response.status, 505, "{line}: {response:#?}");
        assert!(response.connection_has("close"), "{line}: {response:#?}");
    }
}

#[test]
fn malformed_request_lines_get_400() {
    let server = start(Echo11::default());
    for line in [
        "GARBAGE",
        "GET / FTP/1.0",
        "GET / HTTP/x.y",
        "GET / HTTP/1",
        "GET / HTTP/1.1 extra",
        "GET  / HTTP/1.1",
        "G@T / HTTP/1.1",
        "GET /a\u{1b}b HTTP/1.1",
        "GET a/b HTTP/1.1",
        "GET * HTTP/1.1",
        " GET / HTTP/1.1",
    ] {
        let response = exchange_one(
            server.addr(),
            format!("{line}\r\nHost: a\r\n\r\n").as_bytes(),
        );
        assert_eq!(response.status, 400, "{line:?}: {response:#?}");
        assert!(response.connection_has("close"), "{line:?}: {response:#?}");
        let text = response.text();
        assert!(text.contains("Error code: 400"), "{line:?}: {text}");
    }
}

#[test]
fn options_star_and_connect_authority_targets_are_accepted() {
    #[derive(Clone)]
    struct Targets;
    impl HttpHandler for Targets {
        fn do_options(&mut self, req: &mut HttpRequest<'_>) -> HandlerResult {
            let body = req.path.clone();
            http_support::send_body(req, "text/plain", body.as_bytes())
        }
        fn do_method(&mut self, req: &mut HttpRequest<'_>) -> HandlerResult {
            let body = format!("{} {}", req.command, req.path);
            http_support::send_body(req, "text/plain", body.as_bytes())
        }
    }
    let server = start(Targets);
    let response = exchange_one(server.addr(), b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!((response.status, response.text().as_str()), (200, "*"));
    let response = exchange_one(
        server.addr(),
        b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
    );
    assert_eq!(
        (response.status, response.text().as_str()),
        (200, "CONNECT example.com:443")
    );
}

#[test]
fn invalid_header_names_and_values_get_400() {
    let server = start(Echo11::default());
    for header in [
        "Host : a",
        "Host\t: a",
        "Ho\u{1}st: a",
        "X-A\u{7f}: b",
        "X(Y): b",
        ": empty-name",
        "NoColon",
        "X-Ctl: a\u{1}b",
        "X-Nul: a\u{0}b",
        "X-Esc: \u{1b}[31m",
    ] {
        let request = format!("GET / HTTP/1.0\r\n{header}\r\n\r\n");
        let response = exchange_one(server.addr(), request.as_bytes());
        assert_eq!(response.status, 400, "{header:?}: {response:#?}");
    }
}

#[test]
fn whitespace_before_the_first_header_and_folded_lines_get_400() {
    // RFC 9112 2.2 and 5.2 allow rejecting both; a line starting with whitespace must never
    // be read as a field of its own (here a second `Host`).
    let server = start(Echo11::default());
    for request in [
        "GET / HTTP/1.1\r\n Host: evil\r\nHost: a\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nX-Folded: one\r\n two\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nX-Folded: one\r\n\tHost: evil\r\n\r\n",
    ] {
        let response = exchange_one(server.addr(), request.as_bytes());
        assert_eq!(response.status, 400, "{request:?}: {response:#?}");
    }
}

#[test]
fn host_rules_of_http_1_1() {
    let server = start(Echo11::default());
    let response = exchange_one(
        server.addr(),
        b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(response.status, 400, "missing Host: {response:#?}");
    assert!(
        response.text().contains("Missing Host"),
        "{}",
        response.text()
    );

    let response = exchange_one(
        server.addr(),
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(response.status, 400, "repeated Host: {response:#?}");

    let response = exchange_one(
        server.addr(),
        b"GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(
        response.status, 400,
        "repeated identical Host: {response:#?}"
    );

    // HTTP/1.0 has no Host requirement.
    let response = exchange_one(server.addr(), b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!(response.status, 200, "{response:#?}");
}

fn get_with_target_len(len: usize) -> Vec<u8> {
    // "GET " + target + " HTTP/1.0\r\n" is `len` bytes.
    let target_len = len - "GET ".len() - " HTTP/1.0\r\n".len();
    let mut request = b"GET /".to_vec();
    request.resize(4 + target_len, b'a');
    request.extend_from_slice(b" HTTP/1.0\r\n\r\n");
    request
}

#[test]
fn request_line_of_64_kib_is_served_and_longer_gets_414() {
    let server = start(Echo::<false>::default());
    let response = exchange_one(server.addr(), &get_with_target_len(65536));
    assert_eq!(response.status, 200, "65536-byte request line");
    assert_eq!(
        Echoed::parse(&response).requestline.len(),
        65536 - 2,
        "the whole line reached the handler"
    );
    let response = exchange_one(server.addr(), &get_with_target_len(65537));
    assert_eq!(response.status, 414, "{:?}", response.reason);
    let response = exchange_one(server.addr(), &get_with_target_len(200_000));
    assert_eq!(response.status, 414, "{:?}", response.reason);
}

#[test]
fn a_long_request_line_without_an_end_gets_414_without_waiting() {
    let limits = Limits {
        head_timeout: Duration::from_secs(5),
        ..Limits::default()
    };
    let server = start(Echo11::with_limits(limits));
    let mut stream = connect(server.addr());
    let mut line = b"GET /".to_vec();
    line.resize(70_000, b'a');
    let _ = stream.write_all(&line);
    let started = std::time::Instant::now();
    let responses = http_support::parse_all(&read_to_eof(&mut stream));
    assert_eq!(responses.len(), 1);
    assert_eq!(responses[0].status, 414);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "waited for the head timeout"
    );
}

fn get_with_headers(n: usize) -> Vec<u8> {
    let mut request = String::from("GET / HTTP/1.0\r\n");
    for i in 0..n {
        write!(request, "X-Field-{i}: {i}\r\n").unwrap();
    }
    request.push_str("\r\n");
    request.into_bytes()
}

#[test]
fn one_hundred_header_fields_are_served_and_more_get_431() {
    let server = start(Echo::<false>::default());
    let response = exchange_one(server.addr(), &get_with_headers(100));
    assert_eq!(response.status, 200, "{:?}", response.reason);
    assert_eq!(Echoed::parse(&response).headers.len(), 100);
    let response = exchange_one(server.addr(), &get_with_headers(101));
    assert_eq!(response.status, 431, "{:?}", response.reason);
    let response = exchange_one(server.addr(), &get_with_headers(1000));
    assert_eq!(response.status, 431, "{:?}", response.reason);
}

#[test]
fn header_section_over_64_kib_gets_431() {
    let server = start(Echo::<false>::default());
    // Two fields of 30 000 bytes: under the limit.
    let value = "v".repeat(30_000);
    let request = format!("GET / HTTP/1.0\r\nX-A: {value}\r\nX-B: {value}\r\n\r\n");
    let response = exchange_one(server.addr(), request.as_bytes());
    assert_eq!(response.status, 200, "{:?}", response.reason);
    assert_eq!(Echoed::parse(&response).header_all("x-b"), [value.as_str()]);
    // Three: over it, although each field is fine and there are only three.
    let request = format!("GET / HTTP/1.0\r\nX-A: {value}\r\nX-B: {value}\r\nX-C: {value}\r\n\r\n");
    let response = exchange_one(server.addr(), request.as_bytes());
    assert_eq!(response.status, 431, "{:?}", response.reason);
    // One huge field, never ended.
    let mut stream = connect(server.addr());
    let mut head = b"GET / HTTP/1.0\r\nX-Huge: ".to_vec();
    head.resize(100_000, b'h');
    let _ = stream.write_all(&head);
    let responses = http_support::parse_all(&read_to_eof(&mut stream));
    assert_eq!(responses.len(), 1);
    assert_eq!(responses[0].status, 431);
}

#[test]
fn custom_head_limits_apply() {
    let limits = Limits {
        max_request_line: 100,
        max_headers: 3,
        max_header_bytes: 200,
        ..Limits::default()
    };
    let server = start(Echo::<false>::with_limits(limits));
    assert_eq!(
        exchange_one(server.addr(), &get_with_target_len(100)).status,
        200
    );
    assert_eq!(
        exchange_one(server.addr(), &get_with_target_len(101)).status,
        414
    );
    assert_eq!(
        exchange_one(server.addr(), &get_with_headers(3)).status,
        200
    );
    assert_eq!(
        exchange_one(server.addr(), &get_with_headers(4)).status,
        431
    );
    let big = format!("GET / HTTP/1.0\r\nX: {}\r\n\r\n", "b".repeat(250));
    assert_eq!(exchange_one(server.addr(), big.as_bytes()).status, 431);
}

// ---- bodies ----

#[test]
fn content_length_body_is_read_whole() {
    let server = start(Echo11::default());
    let mut client = Client::connect(server.addr());
    let body: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let mut request = format!(
        "POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(&body);
    let echoed = Echoed::parse(&client.request(&request));
    assert_eq!(echoed.requestline, "POST /upload HTTP/1.1");
    assert!(echoed.body == body, "the body came back different");
    // The connection is still in step: the next request is read as a request.
    let echoed = Echoed::parse(
        &client.request(b"PUT /next HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nxyz"),
    );
    assert_eq!(echoed.requestline, "PUT /next HTTP/1.1");
    assert_eq!(echoed.body, b"xyz");
}

#[test]
fn chunked_body_is_decoded_with_extensions_and_trailers() {
    let server = start(Echo11::default());
    let mut client = Client::connect(server.addr());
    let request = b"POST /chunked HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\
        5\r\nhello\r\n\
        6;name=value;flag\r\n, worl\r\n\
        A ; spaced=\"quoted\"\r\nd! 0123456\r\n\
        0\r\nX-Trailer: ignored\r\nX-Other: also\r\n\r\n";
    let echoed = Echoed::parse(&client.request(request));
    assert_eq!(echoed.requestline, "POST /chunked HTTP/1.1");
    assert_eq!(
        String::from_utf8_lossy(&echoed.body),
        "hello, world! 0123456"
    );
    // Trailers were consumed: the connection carries the next request.
    let echoed = Echoed::parse(&client.request(
        b"POST /two HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    ));
    assert_eq!(echoed.requestline, "POST /two HTTP/1.1");
    assert_eq!(echoed.body, b"abc");
}

#[test]
fn chunked_body_sent_in_pieces_is_decoded() {
    let server = start(Echo11::default());
    let mut client = Client::connect(server.addr());
    client.send(b"POST /slow HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n");
    for piece in [
        &b"4\r"[..],
        b"\nab",
        b"cd\r\n",
        b"1",
        b"0\r\n0123456789abcdef\r\n0\r",
        b"\n\r\n",
    ] {
        client.send(piece);
        client.stream.flush().unwrap();
    }
    let echoed = Echoed::parse(&client.read_response());
    assert_eq!(echoed.body, b"abcd0123456789abcdef");
}

/// Reads the body only if the path says so; records nothing else.
#[derive(Clone)]
struct MaybeRead;

impl HttpHandler for MaybeRead {
    const PROTOCOL_VERSION: Version = Version::HTTP_11;

    fn do_post(&mut self, req: &mut HttpRequest<'_>) -> HandlerResult {
        let body = if req.path == "/read" {
            req.read_body()?
        } else {
            b"not read".to_vec()
        };
        http_support::send_body(req, "text/plain", &body)
    }
}

#[test]
fn expect_100_continue_is_answered_when_the_handler_reads_the_body() {
    let server = start(MaybeRead);
    let mut client = Client::connect(server.addr());
    client.send(
        b"POST /read HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
    );
    let interim = b"HTTP/1.1 100 Continue\r\n\r\n";
    assert_eq!(client.read_exact_bytes(interim.len()), interim);
    client.send(b"hello");
    let response = client.read_response();
    assert_eq!(
        (response.status, response.body.as_slice()),
        (200, &b"hello"[..])
    );
}

#[test]
fn expect_100_continue_is_not_answered_when_the_body_is_not_read() {
    let server = start(MaybeRead);
    let mut client = Client::connect(server.addr());
    client.send(
        b"POST /ignore HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
    );
    if flavor().reads_ahead() {
        // The loop reads the body before the handler runs: `handle_expect_100` accepts it
        // (the default), and the request goes on as any other.
        let interim = b"HTTP/1.1 100 Continue\r\n\r\n";
        assert_eq!(client.read_exact_bytes(interim.len()), interim);
        client.send(b"hello");
        let response = client.read_response();
        assert_eq!(response.body, b"not read");
        assert!(!response.connection_has("close"), "{response:#?}");
        return;
    }
    // The final response comes first and alone: no 100 Continue before it.
    let response = client.read_response();
    assert_eq!(response.status, 200, "{response:#?}");
    assert_eq!(response.body, b"not read");
    // The client was never told to send the body, so the server cannot reuse the
    // connection (it would read the body as a request): it says so, and closes.
    assert!(response.connection_has("close"), "{response:#?}");
    client.expect_closed();
}

#[derive(Clone)]
struct Refuse100 {
    saw_body: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl HttpHandler for Refuse100 {
    const PROTOCOL_VERSION: Version = Version::HTTP_11;

    fn handle_expect_100(&mut self, req: &mut HttpRequest<'_>) -> Result<bool, BoxError> {
        if req.path == "/refuse" {
            req.send_error(417, "Not that body")?;
            return Ok(false);
        }
        Ok(true)
    }

    fn do_post(&mut self, req: &mut HttpRequest<'_>) -> HandlerResult {
        self.saw_body
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let body = req.read_body()?;
        http_support::send_body(req, "text/plain", &body)
    }
}

#[test]
fn handle_expect_100_can_refuse_the_body_with_417() {
    let saw_body = std::sync::Arc::default();
    let server = start(Refuse100 {
        saw_body: std::sync::Arc::clone(&saw_body),
    });
    let mut client = Client::connect(server.addr());
    client.send(
        b"POST /refuse HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
    );
    let response = client.read_response();
    assert_eq!(response.status, 417, "{response:#?}");
    assert!(response.connection_has("close"), "{response:#?}");
    assert!(
        response.text().contains("Not that body"),
        "{}",
        response.text()
    );
    client.expect_closed();
    assert!(
        !saw_body.load(std::sync::atomic::Ordering::SeqCst),
        "do_post ran for a refused body"
    );

    // The same handler accepts other paths: 100 Continue, then the body.
    let mut client = Client::connect(server.addr());
    client
        .send(b"POST /ok HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nExpect: 100-Continue\r\n\r\n");
    let interim = b"HTTP/1.1 100 Continue\r\n\r\n";
    assert_eq!(client.read_exact_bytes(interim.len()), interim);
    client.send(b"ok");
    assert_eq!(client.read_response().body, b"ok");
}

#[test]
fn expect_100_continue_after_a_pipelined_request_keeps_the_responses_in_order() {
    // The first response may be held back while the next pipelined request is read; the
    // 100 Continue for that next request must not overtake it.
    let server = start(MaybeRead);
    let mut client = Client::connect(server.addr());
    client.send(
        b"POST /read HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nfirst\
          POST /read HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nExpect: 100-continue\r\n\r\n",
    );
    let first = client.read_response();
    assert_eq!(first.status, 200, "{first:#?}");
    assert_eq!(first.body, b"first");
    let interim = b"HTTP/1.1 100 Continue\r\n\r\n";
    assert_eq!(
        client.read_exact_bytes(interim.len()),
        interim,
        "the 100 Continue of the second request"
    );
    client.send(b"second");
    let second = client.read_response();
    assert_eq!(second.body, b"second");
}

#[test]
fn unknown_expectation_gets_417() {
    let server = start(MaybeRead);
    let response = exchange_one(
        server.addr(),
        b"POST /read HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nExpect: something-else\r\n\r\n",
    );
    assert_eq!(response.status, 417, "{response:#?}");
}

#[test]
fn expect_100_continue_of_an_http_1_0_request_is_ignored() {
    // RFC 9110 10.1.1: no 100 to an HTTP/1.0 client; it sends its body anyway.
    let server = start(MaybeRead);
    let mut stream = connect(server.addr());
    stream
        .write_all(b"POST /read HTTP/1.0\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\nbody")
        .unwrap();
    let data = read_to_eof(&mut stream);
    let responses = http_support::parse_all(&data);
    assert_eq!(responses.len(), 1, "{}", String::from_utf8_lossy(&data));
    assert_eq!(responses[0].status, 200);
    assert_eq!(responses[0].body, b"body");
}
