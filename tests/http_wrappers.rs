//! Handlers that wrap another and add headers: `AddHeaders` (fixed headers on every answer,
//! error pages included) and `Cors` (the header on answers, preflights answered before the
//! inner handler), and the hook under both, `HttpRequest::add_response_header`.

mod http_support;

use std::process::Command;

use http_support::{start, Client, Echo11, TempDir};
use socketserver::files::SimpleHttpHandler;
use socketserver::http::{AddHeaders, Cors, HttpHandler, HttpRequest};
use socketserver::HandlerResult;

fn files() -> (TempDir, SimpleHttpHandler) {
    let dir = TempDir::new();
    dir.write("page.txt", "a page\n");
    let files = SimpleHttpHandler::new(dir.path()).unwrap();
    (dir, files)
}

fn request(client: &mut Client, head: &str) -> http_support::Response {
    client.request(format!("{head}\r\n\r\n").as_bytes())
}

#[test]
fn added_headers_are_on_every_answer_error_pages_included() {
    let (_dir, files) = files();
    let handler = AddHeaders::new(files)
        .header("Cache-Control", "no-cache")
        .unwrap()
        .header("X-Frame-Options", "DENY")
        .unwrap();
    let server = start(handler);
    for (target, status) in [("/page.txt", 200), ("/missing", 404)] {
        let mut client = Client::connect(server.addr());
        let answer = request(&mut client, &format!("GET {target} HTTP/1.0"));
        assert_eq!(answer.status, status, "{target}");
        assert_eq!(answer.header("cache-control"), Some("no-cache"), "{target}");
        assert_eq!(answer.header("x-frame-options"), Some("DENY"), "{target}");
    }
    let mut client = Client::connect(server.addr());
    client.send(b"HEAD /page.txt HTTP/1.0\r\n\r\n");
    let head = client.read_head_response();
    assert_eq!(head.header("cache-control"), Some("no-cache"));
    assert_eq!(head.header("content-length"), Some("7"));
}

#[test]
fn framing_headers_and_broken_values_cannot_be_added() {
    let (_dir, files) = files();
    for (name, value) in [
        ("Content-Length", "0"),
        ("transfer-encoding", "chunked"),
        ("Connection", "close"),
        ("X-Split", "a\r\nInjected: yes"),
        ("Bad Name", "x"),
        ("", "x"),
    ] {
        let refused = AddHeaders::new(files.clone()).header(name, value);
        assert!(refused.is_err(), "{name:?}: {value:?}");
    }
}

/// Adds a header in `do_get` through the hook, then fails or answers.
#[derive(Clone)]
struct Hooked;

impl HttpHandler for Hooked {
    fn do_get(&mut self, req: &mut HttpRequest<'_>) -> HandlerResult {
        req.add_response_header("X-Trace", "42")?;
        assert!(req.add_response_header("Content-Length", "1").is_err());
        assert!(req.add_response_header("X-Bad", "a\nb").is_err());
        match req.url_path() {
            "/fail" => Err("the handler failed".into()),
            _ => req.send_text(200, "ok"),
        }
    }
}

#[test]
fn a_header_added_before_a_failure_is_on_the_500() {
    let server = start(Hooked);
    for (target, status) in [("/ok", 200), ("/fail", 500)] {
        let mut client = Client::connect(server.addr());
        let answer = request(&mut client, &format!("GET {target} HTTP/1.0"));
        assert_eq!(answer.status, status);
        assert_eq!(answer.header("x-trace"), Some("42"), "{target}");
    }
}

#[test]
fn cors_answers_carry_the_origin_and_preflights_stop_here() {
    let server = start(Cors::new(Echo11::default()));
    let mut client = Client::connect(server.addr());
    let get = request(
        &mut client,
        "GET /x HTTP/1.1\r\nHost: a\r\nOrigin: http://app",
    );
    assert_eq!(get.status, 200);
    assert_eq!(get.header("access-control-allow-origin"), Some("*"));
    assert_eq!(get.header("vary"), None);
    // A preflight: answered without the echo handler, on the same connection.
    let preflight = request(
        &mut client,
        "OPTIONS /x HTTP/1.1\r\nHost: a\r\nOrigin: http://app\r\n\
         Access-Control-Request-Method: PUT\r\nAccess-Control-Request-Headers: content-type, x-token",
    );
    assert_eq!(preflight.status, 204);
    assert_eq!(preflight.header("access-control-allow-origin"), Some("*"));
    let methods = preflight.header("access-control-allow-methods").unwrap();
    assert!(methods.contains("PUT"), "{methods}");
    assert_eq!(
        preflight.header("access-control-allow-headers"),
        Some("content-type, x-token")
    );
    assert_eq!(preflight.header("access-control-max-age"), Some("86400"));
    assert!(preflight.body.is_empty());
    // OPTIONS that is no preflight reaches the inner handler.
    let plain = request(&mut client, "OPTIONS /x HTTP/1.1\r\nHost: a");
    assert_eq!(plain.status, 200);
    assert!(plain.text().starts_with("OPTIONS /x"), "{}", plain.text());
}

#[test]
fn cors_for_one_origin_varies_by_origin() {
    let cors = Cors::new(Echo11::default())
        .allow_origin("https://app.example")
        .unwrap();
    let server = start(cors);
    let mut client = Client::connect(server.addr());
    let get = request(&mut client, "GET / HTTP/1.1\r\nHost: a");
    assert_eq!(
        get.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    assert_eq!(get.header("vary"), Some("Origin"));
    assert!(Cors::new(Echo11::default()).allow_origin("x\r\ny").is_err());
}

#[test]
fn curl_sees_a_preflight_answered() {
    let (_dir, files) = files();
    let server = start(Cors::new(files));
    let output = Command::new("curl")
        .args(["-s", "-i", "-X", "OPTIONS"])
        .args([
            "-H",
            "Origin: http://app",
            "-H",
            "Access-Control-Request-Method: GET",
        ])
        .arg(format!("http://{}/page.txt", server.addr()))
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.starts_with("HTTP/1.0 204 "), "{text}");
    assert!(text.contains("Access-Control-Allow-Origin: *"), "{text}");
}
