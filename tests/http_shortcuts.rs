//! The one-call responses and the request accessors: `respond`, `send_text`, `send_html`,
//! `redirect`; `url_path`, `query_pairs`, `body_text`, `body_form`. Each answers as the
//! five calls it stands for would, `HEAD` included.

mod http_support;

use http_support::{start, Client};
use socketserver::http::{HttpHandler, HttpRequest, Version};
use socketserver::HandlerResult;

#[derive(Clone)]
struct Shortcuts;

impl HttpHandler for Shortcuts {
    const PROTOCOL_VERSION: Version = Version::HTTP_11;

    fn do_get(&mut self, req: &mut HttpRequest<'_>) -> HandlerResult {
        match req.url_path() {
            "/text" => req.send_text(200, "plain words")?,
            "/html" => req.send_html(200, "<p>a page</p>")?,
            "/bytes" => req.respond(201, "application/octet-stream", [1u8, 2, 3])?,
            "/moved" => req.redirect(303, "/there")?,
            "/not-a-redirect" => req.redirect(200, "/there")?,
            "/not-modified-redirect" => req.redirect(304, "/there")?,
            "/accented" => req.redirect(308, "/café au lait")?,
            "/reset" => req.send_empty(205)?,
            "/no-content" => req.send_empty(204)?,
            "/empty-204" => req.respond(204, "text/plain", "")?,
            "/body-on-204" => req.respond(204, "text/plain", "oops")?,
            "/interim" => req.send_text(100, "hi")?,
            "/debug" => {
                let debug = format!("{req:?}");
                req.send_text(200, &debug)?
            }
            "/path" => {
                let path = req.url_path().to_string();
                req.send_text(200, &path)?
            }
            "/query" => {
                let fields = format!("{:?}", req.query_pairs());
                req.send_text(200, &fields)?
            }
            _ => req.send_error(404, None)?,
        }
        Ok(())
    }

    fn do_post(&mut self, req: &mut HttpRequest<'_>) -> HandlerResult {
        match req.url_path() {
            "/text" => {
                let text = req.body_text()?;
                req.send_text(200, &text.to_uppercase())?
            }
            "/form" => {
                let fields = format!("{:?}", req.body_form()?);
                req.send_text(200, &fields)?
            }
            "/json" => {
                let value: Vec<u32> = req.body_json()?;
                req.send_json(200, &value)?
            }
            _ => req.send_error(404, None)?,
        }
        Ok(())
    }
}

fn get(client: &mut Client, target: &str) -> http_support::Response {
    client.request(format!("GET {target} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes())
}

#[test]
fn one_call_responses_set_type_and_length() {
    let server = start(Shortcuts);
    let mut client = Client::connect(server.addr());
    let text = get(&mut client, "/text");
    assert_eq!(text.status, 200);
    assert_eq!(
        text.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(text.header("content-length"), Some("11"));
    assert_eq!(text.text(), "plain words");
    let html = get(&mut client, "/html");
    assert_eq!(
        html.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(html.text(), "<p>a page</p>");
    let bytes = get(&mut client, "/bytes");
    assert_eq!(
        (bytes.status, bytes.body.as_slice()),
        (201, &[1u8, 2, 3][..])
    );
    let moved = get(&mut client, "/moved");
    assert_eq!(moved.status, 303);
    assert_eq!(moved.header("location"), Some("/there"));
    assert_eq!(moved.header("content-length"), Some("0"));
    // HEAD: the same head, no body (the connection stays in step).
    client.send(b"HEAD /text HTTP/1.1\r\nHost: a\r\n\r\n");
    let head = client.read_head_response();
    assert_eq!(head.header("content-length"), Some("11"));
    assert_eq!(get(&mut client, "/text").text(), "plain words");
}

#[test]
fn a_redirect_needs_a_redirect_status() {
    let server = start(Shortcuts);
    let mut client = Client::connect(server.addr());
    // The handler's error, before it answered: 500.
    assert_eq!(get(&mut client, "/not-a-redirect").status, 500);
}

#[test]
fn accessors_split_the_target_and_decode_the_body() {
    let server = start(Shortcuts);
    let mut client = Client::connect(server.addr());
    let query = get(&mut client, "/query?name=Ada+L&lang=%E4%B8%AD&empty=#frag");
    assert_eq!(
        query.text(),
        r#"[("name", "Ada L"), ("lang", "中"), ("empty", "")]"#
    );
    let mut client = Client::connect(server.addr());
    let text = client.request(b"POST /text HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello");
    assert_eq!(text.text(), "HELLO");
    let form =
        client.request(b"POST /form HTTP/1.1\r\nHost: a\r\nContent-Length: 9\r\n\r\na=1&b=x+y");
    assert_eq!(form.text(), r#"[("a", "1"), ("b", "x y")]"#);
    // A body that is not UTF-8 is the client's fault: 400.
    let bad =
        client.request(b"POST /text HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n\xff\xfe");
    assert_eq!(bad.status, 400);
}

#[test]
fn bodiless_statuses_are_framed_so_the_connection_goes_on() {
    let server = start(Shortcuts);
    let mut client = Client::connect(server.addr());
    // 205 has no content but is not over at its head: Content-Length 0 frames it.
    let reset = get(&mut client, "/reset");
    assert_eq!(reset.status, 205);
    assert_eq!(reset.header("content-length"), Some("0"));
    for target in ["/no-content", "/empty-204"] {
        client.send(format!("GET {target} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes());
        let answer = client.read_head_response();
        assert_eq!(answer.status, 204, "{target}");
        assert_eq!(
            answer.header("content-length"),
            None,
            "{target}: {answer:?}"
        );
        assert_eq!(answer.header("content-type"), None, "{target}: {answer:?}");
    }
    assert_eq!(get(&mut client, "/text").text(), "plain words");
}

#[test]
fn one_call_responses_refuse_what_they_cannot_send() {
    let server = start(Shortcuts);
    // A body on a 204, a whole response with an interim status, a 304 as a redirect: the
    // handler's error, before anything was sent: 500.
    for target in ["/body-on-204", "/interim", "/not-modified-redirect"] {
        let mut client = Client::connect(server.addr());
        assert_eq!(get(&mut client, target).status, 500, "{target}");
    }
}

#[test]
fn a_redirect_location_is_percent_encoded() {
    let server = start(Shortcuts);
    let mut client = Client::connect(server.addr());
    let moved = get(&mut client, "/accented");
    assert_eq!(moved.status, 308);
    assert_eq!(moved.header("location"), Some("/caf%C3%A9%20au%20lait"));
}

#[test]
fn url_path_of_an_absolute_form_target_is_its_path() {
    let server = start(Shortcuts);
    let mut client = Client::connect(server.addr());
    let answer = get(&mut client, "http://a/path?x=1");
    assert_eq!(answer.text(), "/path");
    assert_eq!(get(&mut client, "/path#frag").text(), "/path");
}

#[test]
fn a_refused_body_says_why_and_keeps_the_connection() {
    let server = start(Shortcuts);
    let mut client = Client::connect(server.addr());
    let body = r#"{"not": "a list"}"#;
    let bad = client.request(
        format!(
            "POST /json HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
    assert_eq!(bad.status, 400);
    assert!(bad.text().contains("expected a sequence"), "{}", bad.text());
    assert!(!bad.connection_has("close"), "{bad:?}");
    let good = client.request(b"POST /json HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\n\r\n[1, 2]");
    assert_eq!((good.status, good.text().as_str()), (200, "[1,2]"));
}

/// Hands every request to itself: the mistake `dispatch` guards against.
#[derive(Clone)]
struct Circular;

impl HttpHandler for Circular {
    fn fallback(&mut self, req: &mut HttpRequest<'_>) -> HandlerResult {
        self.dispatch(req)
    }
}

#[test]
fn a_fallback_that_calls_its_own_dispatch_fails_the_request_not_the_server() {
    let server = start(Circular);
    for _ in 0..2 {
        let mut client = Client::connect(server.addr());
        let answer = client.request(b"GET / HTTP/1.0\r\n\r\n");
        assert_eq!(answer.status, 500);
    }
}

#[test]
fn a_request_printed_with_debug_shows_no_credentials() {
    let server = start(Shortcuts);
    let mut client = Client::connect(server.addr());
    let answer = client.request(
        b"GET /debug HTTP/1.1\r\nHost: a\r\nAuthorization: Basic c2VjcmV0OnB3\r\n\
          Cookie: session=hunter2\r\nX-Visible: shown\r\n\r\n",
    );
    let text = answer.text();
    assert!(!text.contains("c2VjcmV0OnB3"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
    assert!(text.contains("<redacted>"), "{text}");
    assert!(text.contains("shown"), "{text}");
}
