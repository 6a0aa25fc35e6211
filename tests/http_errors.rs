//! Dispatch and error handling: every `do_*` method for its method, 501 for the rest, HEAD
//! through GET, error pages (escaped, no body where none is allowed), and what the server
//! answers when a handler answers nothing, fails, panics, tries to inject a header, or reads
//! a malformed or cut-off body.

mod http_support;

use std::io::{self, Write};
use std::net::Shutdown;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use http_support::{connect, exchange, exchange_one, read_to_eof, send_body, start, Client};
use socketserver::http::{HttpHandler, HttpRequest, Version};
use socketserver::HandlerResult;

/// Every `do_*` method answers with its own name and the method it was called for.
#[derive(Clone)]
struct Dispatch;

fn named(req: &mut HttpRequest<'_>, name: &str) -> HandlerResult {
    let body = format!("{name} {}", req.command);
    send_body(req, "text/plain", body.as_bytes())
}

impl HttpHandler for Dispatch {
    const PROTOCOL_VERSION: Version = Version::HTTP_11;

    fn do_get(&mut self, req: &mut HttpRequest<'_>) -> HandlerResult {
        named(req, "do_get")
    }
    fn do_head(&mut self, req: &mut HttpRequest<'_>) -> HandlerResult {
        self.do_get(req)
    }
    fn do_post(&mut self, req: &mut HttpRequest<'_>) -> HandlerResult {
        named(req, "do_post")
    }
    fn do_put(&mut self, req: &mut HttpRequest<'_>) -> HandlerResult {
        named(req, "do_put")
    }
    fn do_delete(&mut self, req: &mut HttpRequest<'_>) -> HandlerResult {
        named(req, "do_delete")
    }
    fn do_options(&mut self, req: &mut HttpRequest<'_>) -> HandlerResult {
        named(req, "do_options")
    }
    fn do_patch(&mut self, req: &mut HttpRequest<'_>) -> HandlerResult {
        named(req, "do_patch")
    }
    fn do_method(&mut self, req: &mut HttpRequest<'_>) -> HandlerResult {
        named(req, "do_method")
    }
}

/// Implements nothing: every method gets the default 501.
#[derive(Clone)]
struct Nothing;

impl HttpHandler for Nothing {}

#[test]
fn each_method_is_dispatched_to_its_do_method() {
    let server = start(Dispatch);
    let mut client = Client::connect(server.addr());
    for (method, expected) in [
        ("GET", "do_get GET"),
        ("POST", "do_post POST"),
        ("PUT", "do_put PUT"),
        ("DELETE", "do_delete DELETE"),
        ("OPTIONS", "do_options OPTIONS"),
        ("PATCH", "do_patch PATCH"),
        ("TRACE", "do_method TRACE"),
        ("BREW", "do_method BREW"),
        ("PROPFIND", "do_method PROPFIND"),
    ] {
        let response = client.request(format!("{method} / HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes());
        assert_eq!(response.status, 200, "{method}: {response:#?}");
        assert_eq!(response.text(), expected);
    }
    // Method names are case-sensitive: `get` is an extension method, not GET.
    let response = client.request(b"get / HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(response.text(), "do_method get");
}

#[test]
fn unimplemented_methods_get_501_with_an_html_page() {
    let server = start(Nothing);
    for method in [
        "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "BREW",
    ] {
        let data = exchange(
            server.addr(),
            format!("{method} /x HTTP/1.0\r\n\r\n").as_bytes(),
        );
        let (response, _) = http_support::parse_response(
            &data,
            if method == "HEAD" {
                http_support::Framing::Head
            } else {
                http_support::Framing::Normal
            },
            true,
        )
        .unwrap()
        .unwrap();
        assert_eq!(response.status, 501, "{method}: {response:#?}");
        assert_eq!(
            response.header("content-type"),
            Some("text/html;charset=utf-8")
        );
        let message = format!("Unsupported method ('{method}')");
        assert_eq!(response.reason, message);
        if method == "HEAD" {
            let body_start = data.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
            assert_eq!(&data[body_start..], b"", "a body for HEAD");
            assert!(response.content_length().unwrap() > 0);
        } else {
            let text = response.text();
            assert!(text.starts_with("<!DOCTYPE HTML>"), "{text}");
            assert!(text.contains("Error code: 501"), "{text}");
            // The page escapes as Python's `html.escape` does.
            let escaped = message.replace('\'', "&#x27;");
            assert!(text.contains(&format!("Message: {escaped}.")), "{text}");
            assert!(
                text.contains("Server does not support this operation"),
                "{text}"
            );
            assert_eq!(response.content_length(), Some(response.body.len()));
        }
    }
}

/// GET with a fixed body and headers of its own; HEAD through GET.
#[derive(Clone)]
struct Page;

impl HttpHandler for Page {
    const PROTOCOL_VERSION: Version = Version::HTTP_11;

    fn do_get(&mut self, req: &mut HttpRequest<'_>) -> HandlerResult {
        let body = format!("page at {}", req.path);
        req.send_response(200)?;
        req.send_header("Content-Type", "text/plain; charset=utf-8")?;
        req.send_header("Content-Length", body.len())?;
        req.send_header("X-Custom", "yes")?;
        req.send_header("Last-Modified", "Sun, 06 Nov 1994 08:49:37 GMT")?;
        req.end_headers()?;
        req.wfile.write_all(body.as_bytes())?;
        Ok(())
    }

    fn do_head(&mut self, req: &mut HttpRequest<'_>) -> HandlerResult {
        self.do_get(req)
    }
}

#[test]
fn head_through_do_get_sends_the_same_headers_and_no_body() {
    let server = start(Page);
    let mut client = Client::connect(server.addr());
    let get = client.request(b"GET /same HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(get.text(), "page at /same");
    client.send(b"HEAD /same HTTP/1.1\r\nHost: a\r\n\r\n");
    let head = client.read_head_response();
    // Had a body been sent for HEAD, it would be read here in place of the next response.
    let after = client.request(b"GET /after HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(after.text(), "page at /after");

    let without_date = |r: &http_support::Response| -> Vec<(String, String)> {
        r.headers
            .iter()
            .filter(|(n, _)| !n.eq_ignore_ascii_case("date"))
            .cloned()
            .collect()
    };
    assert_eq!(get.status, head.status);
    assert_eq!(without_date(&get), without_date(&head));
    assert_eq!(head.content_length(), Some("page at /same".len()));

    // HTTP/1.0, closed after the response: nothing at all follows the head.
    let data = exchange(server.addr(), b"HEAD /same HTTP/1.0\r\n\r\n");
    assert!(
        data.ends_with(b"\r\n\r\n"),
        "{}",
        String::from_utf8_lossy(&data)
    );
    assert!(!String::from_utf8_lossy(&data).contains("page at"));
}

#[derive(Clone)]
struct Errors;

const HOSTILE: &str = "<script>alert('x')</script> & \"q\" {explain}";

impl HttpHandler for Errors {
    const PROTOCOL_VERSION: Version = Version::HTTP_11;

    fn do_get(&mut self, req: &mut HttpRequest<'_>) -> HandlerResult {
        match req.path.as_str() {
            "/hostile" => req.send_error_explain(404, HOSTILE, "<b>why</b>")?,
            "/no-content" => {
                req.send_response(204)?;
                req.end_headers()?;
                // Dropped: a 204 has no body.
                req.wfile.write_all(b"must not be sent")?;
            }
            "/not-modified" => {
                req.send_response(304)?;
                req.send_header("ETag", "\"v1\"")?;
                req.end_headers()?;
                req.wfile.write_all(b"must not be sent")?;
            }
            "/error-204" => req.send_error(204, None)?,
            "/error-304" => req.send_error(304, None)?,
            "/error-404" => req.send_error(404, "Nothing here")?,
            // Any text: a `String` built on the spot, or a borrowed one.
            "/error-string" => req.send_error(400, format!("Bad {}", "input"))?,
            "/error-ref" => {
                let why = String::from("Taken");
                req.send_error_explain(409, &why, format!("{why} already"))?
            }
            other => panic!("unexpected path {other}"),
        }
        Ok(())
    }

    fn do_head(&mut self, req: &mut HttpRequest<'_>) -> HandlerResult {
        self.do_get(req)
    }
}

#[test]
fn send_error_escapes_every_value_in_the_page() {
    let server = start(Errors);
    let response = exchange_one(
        server.addr(),
        b"GET /hostile HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(response.status, 404);
    let text = response.text();
    assert!(
        text.contains(
            "Message: &lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; &quot;q&quot; {explain}."
        ),
        "{text}"
    );
    assert!(text.contains("404 - &lt;b&gt;why&lt;/b&gt;."), "{text}");
    assert!(!text.contains("<script"), "{text}");
    assert!(!text.contains("<b>"), "{text}");
    assert_eq!(
        response.header("content-type"),
        Some("text/html;charset=utf-8")
    );
}

#[test]
fn send_error_takes_a_string_or_a_borrowed_one() {
    let server = start(Errors);
    let mut client = Client::connect(server.addr());
    let response = client.request(b"GET /error-string HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(
        (response.status, response.reason.as_str()),
        (400, "Bad input")
    );
    assert!(
        response.text().contains("Message: Bad input."),
        "{}",
        response.text()
    );
    let response = client.request(b"GET /error-ref HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!((response.status, response.reason.as_str()), (409, "Taken"));
    assert!(
        response.text().contains("409 - Taken already."),
        "{}",
        response.text()
    );
}

#[test]
fn no_body_for_head_204_and_304() {
    let server = start(Errors);
    let mut client = Client::connect(server.addr());
    // All on one keep-alive connection: a stray body would be read as the next response.
    client.send(b"HEAD /error-404 HTTP/1.1\r\nHost: a\r\n\r\n");
    let head = client.read_head_response();
    assert_eq!(head.status, 404);
    assert!(head.content_length().unwrap() > 0, "{head:#?}");

    for path in ["/no-content", "/error-204"] {
        let response = client.request(format!("GET {path} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes());
        assert_eq!(response.status, 204, "{path}");
        assert_eq!(
            response.header("content-type"),
            None,
            "{path}: {response:#?}"
        );
    }
    for path in ["/not-modified", "/error-304"] {
        let response = client.request(format!("GET {path} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes());
        assert_eq!(response.status, 304, "{path}");
        assert_eq!(
            response.header("content-type"),
            None,
            "{path}: {response:#?}"
        );
    }
    let response = client.request(b"GET /error-404 HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(response.status, 404);
    assert!(response.text().contains("Nothing here"));
    // Nothing else arrives: close our side and check the server sent nothing more.
    client.stream.shutdown(Shutdown::Write).unwrap();
    client.expect_closed();
}

#[derive(Clone)]
struct CustomPage;

impl HttpHandler for CustomPage {
    const ERROR_MESSAGE_FORMAT: &'static str = "{\"code\": {code}, \"message\": \"{message}\"}";
    const ERROR_CONTENT_TYPE: &'static str = "application/json";
    const SERVER_VERSION: &'static str = "TestServer/9.9";
    const SYS_VERSION: &'static str = "TestSys/1.0";
}

#[test]
fn error_page_format_content_type_and_server_header_are_the_handlers() {
    let server = start(CustomPage);
    let response = exchange_one(server.addr(), b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!(response.status, 501);
    assert_eq!(response.header("content-type"), Some("application/json"));
    assert_eq!(
        response.header("server"),
        Some("TestServer/9.9 TestSys/1.0")
    );
    assert_eq!(
        response.text(),
        "{\"code\": 501, \"message\": \"Unsupported method (&#x27;GET&#x27;)\"}"
    );
    let date = response.header("date").expect("a Date header");
    assert!(httpdate_like(date), "{date}");
}

/// `Sun, 06 Nov 1994 08:49:37 GMT`.
fn httpdate_like(date: &str) -> bool {
    date.len() == 29 && date.ends_with(" GMT") && date.as_bytes()[3] == b','
}

/// Misbehaves in the way its path names.
#[derive(Clone)]
struct Faulty {
    injection: Arc<Mutex<Vec<io::ErrorKind>>>,
}

impl HttpHandler for Faulty {
    const PROTOCOL_VERSION: Version = Version::HTTP_11;

    fn do_get(&mut self, req: &mut HttpRequest<'_>) -> HandlerResult {
        match req.path.as_str() {
            "/ok" => send_body(req, "text/plain", b"fine"),
            "/silent" => Ok(()),
            "/fail" => Err("the handler failed".into()),
            "/fail-after-answering" => {
                send_body(req, "text/plain", b"answered")?;
                Err("failed afterwards".into())
            }
            "/panic" => panic!("handler panic (expected by the test)"),
            "/inject" => {
                req.send_response(200)?;
                let mut kinds = Vec::new();
                for (name, value) in [
                    ("X-Injected", "a\r\nSet-Cookie: evil=1"),
                    ("X-Injected", "a\nSet-Cookie: evil=2"),
                    ("X-Injected", "a\rSet-Cookie: evil=3"),
                    ("X-Injected", "nul\0evil=4"),
                    ("Set-Cookie: evil=5\r\nX", "v"),
                    ("X Space", "evil=6"),
                    ("", "evil=7"),
                ] {
                    if let Err(err) = req.send_header(name, value) {
                        kinds.push(err.kind());
                    }
                }
                *self.injection.lock().unwrap() = kinds;
                req.send_header("Content-Length", 4)?;
                req.end_headers()?;
                req.wfile.write_all(b"safe")?;
                Ok(())
            }
            "/unended-ok" | "/unended-err" | "/unended-panic" => {
                req.send_response(200)?;
                req.send_header("X-Unended", "yes")?;
                match req.path.as_str() {
                    "/unended-ok" => Ok(()),
                    "/unended-err" => Err("failed in the middle of the head".into()),
                    _ => panic!("panic in the middle of the head (expected by the test)"),
                }
            }
            "/inject-propagate" => {
                req.send_response(200)?;
                req.send_header("X-Injected", "a\r\nSet-Cookie: evil=8")?;
                unreachable!("send_header accepted a line break");
            }
            other => panic!("unexpected path {other}"),
        }
    }
}

fn faulty() -> (
    http_support::Running<socketserver::TcpTransport, Faulty>,
    Arc<Mutex<Vec<io::ErrorKind>>>,
) {
    let injection = Arc::default();
    let server = start(Faulty {
        injection: Arc::clone(&injection),
    });
    (server, injection)
}

#[test]
fn handler_returning_ok_without_a_response_gets_500() {
    let (server, _) = faulty();
    let mut client = Client::connect(server.addr());
    let response = client.request(b"GET /silent HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(response.status, 500, "{response:#?}");
    assert!(response.text().contains("Error code: 500"));
    assert!(response.connection_has("close"), "{response:#?}");
    client.expect_closed();
}

#[test]
fn handler_error_before_responding_gets_500_and_a_close() {
    let (server, _) = faulty();
    let mut client = Client::connect(server.addr());
    let response = client.request(b"GET /fail HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(response.status, 500, "{response:#?}");
    assert!(response.connection_has("close"), "{response:#?}");
    client.expect_closed();
}

#[test]
fn handler_error_after_responding_keeps_the_response_and_closes() {
    let (server, _) = faulty();
    let mut client = Client::connect(server.addr());
    client.send(
        b"GET /fail-after-answering HTTP/1.1\r\nHost: a\r\n\r\nGET /ok HTTP/1.1\r\nHost: a\r\n\r\n",
    );
    let response = client.read_response();
    assert_eq!(
        (response.status, response.text().as_str()),
        (200, "answered")
    );
    // The pipelined second request is not served on a connection whose handler failed.
    client.expect_closed();
}

#[test]
fn handler_panic_gets_500_closes_and_the_server_serves_on() {
    let (server, _) = faulty();
    let mut client = Client::connect(server.addr());
    let response = client.request(b"GET /panic HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(response.status, 500, "{response:#?}");
    assert!(response.connection_has("close"));
    client.expect_closed();
    for _ in 0..3 {
        let mut next = Client::connect(server.addr());
        let response = next.request(b"GET /ok HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!((response.status, response.text().as_str()), (200, "fine"));
    }
}

#[test]
fn header_injection_is_refused_and_never_reaches_the_wire() {
    let (server, injection) = faulty();
    let data = exchange(
        server.addr(),
        b"GET /inject HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    );
    let text = String::from_utf8_lossy(&data);
    assert!(!text.contains("evil"), "{text}");
    assert!(!text.to_ascii_lowercase().contains("set-cookie"), "{text}");
    assert!(!text.contains("X-Injected"), "{text}");
    let responses = http_support::parse_all(&data);
    assert_eq!(responses.len(), 1);
    assert_eq!(responses[0].text(), "safe");
    assert_eq!(
        *injection.lock().unwrap(),
        vec![io::ErrorKind::InvalidInput; 7],
        "every attempt must fail with InvalidInput"
    );

    // A handler that propagates the refusal with `?` fails before ending its headers: the
    // head it began is dropped and the client gets a 500 in its place, never a truncated head.
    let data = exchange(
        server.addr(),
        b"GET /inject-propagate HTTP/1.1\r\nHost: a\r\n\r\n",
    );
    let text = String::from_utf8_lossy(&data);
    assert!(!text.contains("evil"), "{text}");
    assert!(!text.to_ascii_lowercase().contains("set-cookie"), "{text}");
    let responses = http_support::parse_all(&data);
    assert_eq!(responses.len(), 1, "{text}");
    assert_eq!(responses[0].status, 500, "{text}");
    assert!(responses[0].connection_has("close"), "{text}");
}

#[test]
fn handler_that_never_ends_its_headers_gets_500_not_a_truncated_head() {
    let (server, _) = faulty();
    for path in ["/unended-ok", "/unended-err", "/unended-panic"] {
        let data = exchange(
            server.addr(),
            format!("GET {path} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes(),
        );
        let text = String::from_utf8_lossy(&data);
        let responses = http_support::parse_all(&data);
        assert_eq!(responses.len(), 1, "{path}: {text}");
        assert_eq!(responses[0].status, 500, "{path}: {text}");
        assert!(!text.contains("X-Unended"), "{path}: {text}");
    }
}

/// Reads the body and answers with it.
#[derive(Clone)]
struct ReadBody {
    served: Arc<AtomicUsize>,
}

impl HttpHandler for ReadBody {
    const PROTOCOL_VERSION: Version = Version::HTTP_11;

    fn do_post(&mut self, req: &mut HttpRequest<'_>) -> HandlerResult {
        let body = req.read_body()?;
        self.served.fetch_add(1, Ordering::SeqCst);
        send_body(req, "application/octet-stream", &body)
    }

    fn do_get(&mut self, req: &mut HttpRequest<'_>) -> HandlerResult {
        send_body(req, "text/plain", b"alive")
    }
}

#[test]
fn malformed_chunked_bodies_get_400_and_a_close() {
    let served = Arc::new(AtomicUsize::new(0));
    let server = start(ReadBody {
        served: Arc::clone(&served),
    });
    for body in [
        "zz\r\nhello\r\n0\r\n\r\n",
        "-1\r\nhello\r\n0\r\n\r\n",
        "0x5\r\nhello\r\n0\r\n\r\n",
        "+5\r\nhello\r\n0\r\n\r\n",
        "\r\nhello\r\n0\r\n\r\n",
        "5 5\r\nhello\r\n0\r\n\r\n",
        "10000000000000000\r\nhello\r\n0\r\n\r\n",
        "3\r\nhello\r\n0\r\n\r\n",
        "5\r\nhelloXX0\r\n\r\n",
    ] {
        let request = format!(
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n{body}GET / HTTP/1.1\r\nHost: a\r\n\r\n"
        );
        let responses = http_support::exchange_parsed(server.addr(), request.as_bytes());
        assert_eq!(responses.len(), 1, "{body:?}: {responses:#?}");
        assert_eq!(responses[0].status, 400, "{body:?}: {:#?}", responses[0]);
        assert!(responses[0].connection_has("close"), "{body:?}");
    }
    assert_eq!(
        served.load(Ordering::SeqCst),
        0,
        "a malformed body was served"
    );
}

#[test]
fn a_client_closing_mid_body_does_not_take_the_server_down() {
    let served = Arc::new(AtomicUsize::new(0));
    let server = start(ReadBody {
        served: Arc::clone(&served),
    });
    // Half-close: the server sees end-of-file inside the body and may still answer.
    let mut stream = connect(server.addr());
    stream
        .write_all(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nonly part")
        .unwrap();
    stream.shutdown(Shutdown::Write).unwrap();
    let responses = http_support::parse_all(&read_to_eof(&mut stream));
    assert!(responses.len() <= 1, "{responses:#?}");
    if let Some(response) = responses.first() {
        assert_eq!(response.status, 400, "{response:#?}");
    }
    // Full close in the middle of a chunked body.
    for request in [
        &b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nabc"[..],
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\nabc",
    ] {
        let mut stream = connect(server.addr());
        stream.write_all(request).unwrap();
        drop(stream);
    }
    assert_eq!(served.load(Ordering::SeqCst), 0);
    for _ in 0..3 {
        let response = Client::connect(server.addr()).request(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(response.text(), "alive");
    }
    let response = Client::connect(server.addr())
        .request(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nok");
    assert_eq!(response.body, b"ok");
    assert_eq!(served.load(Ordering::SeqCst), 1);
}

#[test]
fn error_page_on_a_keep_alive_connection_keeps_it_open() {
    let server = start(Errors);
    let mut client = Client::connect(server.addr());
    for _ in 0..3 {
        let response = client.request(b"GET /error-404 HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(response.status, 404);
        assert!(!response.connection_has("close"), "{response:#?}");
        assert_eq!(response.content_length(), Some(response.body.len()));
    }
}

#[test]
fn head_request_rejected_before_the_handler_gets_no_error_page() {
    let server = start(Errors);
    // 431: more header fields than the limit; the request line was read, so it was a HEAD.
    let mut request = b"HEAD / HTTP/1.1\r\nHost: a\r\n".to_vec();
    for i in 0..200 {
        request.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
    }
    request.extend_from_slice(b"\r\n");
    let data = exchange(server.addr(), &request);
    let text = String::from_utf8_lossy(&data);
    assert!(text.starts_with("HTTP/1.1 431 "), "{text}");
    let body_start = text.find("\r\n\r\n").expect("a complete head") + 4;
    assert!(text.contains("Content-Length: "), "{text}");
    assert_eq!(&text[body_start..], "", "an error page for HEAD");
}

#[test]
fn head_request_too_large_to_read_gets_no_error_page() {
    let server = start(Errors);
    // 414: a request line over 64 KiB; 431: a header section over 64 KiB. Neither line is
    // kept, and the answer still knows the request was a HEAD.
    let long_line = format!("HEAD /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(70_000));
    let big_fields = format!(
        "HEAD / HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n",
        "b".repeat(70_000)
    );
    for (request, status) in [(long_line, "414"), (big_fields, "431")] {
        let data = exchange(server.addr(), request.as_bytes());
        let text = String::from_utf8_lossy(&data);
        assert!(text.starts_with(&format!("HTTP/1.1 {status} ")), "{text}");
        let body_start = text.find("\r\n\r\n").expect("a complete head") + 4;
        assert_eq!(&text[body_start..], "", "an error page for HEAD ({status})");
    }
}
