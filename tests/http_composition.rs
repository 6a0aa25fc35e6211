//! A handler with routes of its own that hands the rest to `SimpleHttpHandler`, as a Python
//! subclass calls `super()`: every method and `HEAD` reach the inner handler, a custom GET
//! route answers `HEAD` too, and the server's settings (`PROTOCOL_VERSION`, `limits`, or
//! `Configured`) hold for the inner handler's answers as well. `HttpServer` itself runs
//! requests on its event loop's thread, and those that may block on its workers.

mod http_support;

use std::collections::BTreeSet;
use std::fs;
use std::sync::{Arc, Mutex};

use http_support::common::{serve, stop};
use http_support::{start, Client, TempDir};
use socketserver::files::SimpleHttpHandler;
use socketserver::http::{Configured, HttpHandler, HttpRequest, HttpServer, Limits, Version};
use socketserver::HandlerResult;

const PAGE: &str = "<p>the index page</p>\n";

/// `/health` and `POST /submit` of its own; everything else from the files.
#[derive(Clone)]
struct App {
    files: SimpleHttpHandler,
}

impl HttpHandler for App {
    const PROTOCOL_VERSION: Version = Version::HTTP_11;

    fn do_get(&mut self, req: &mut HttpRequest<'_>) -> HandlerResult {
        match req.url_path() {
            "/health" => req.send_text(200, "ok"),
            _ => self.fallback(req),
        }
    }

    fn do_post(&mut self, req: &mut HttpRequest<'_>) -> HandlerResult {
        match req.url_path() {
            "/submit" => {
                let fields = req.body_form()?;
                req.send_text(201, &format!("{} fields", fields.len()))
            }
            _ => self.fallback(req),
        }
    }

    fn fallback(&mut self, req: &mut HttpRequest<'_>) -> HandlerResult {
        self.files.dispatch(req)
    }
}

fn site() -> TempDir {
    let dir = TempDir::new();
    fs::write(dir.path().join("index.html"), PAGE).unwrap();
    fs::write(dir.path().join("notes.txt"), "some notes\n").unwrap();
    dir
}

fn app(dir: &TempDir) -> App {
    App {
        files: SimpleHttpHandler::new(dir.path()).unwrap(),
    }
}

fn request(client: &mut Client, method: &str, target: &str) -> http_support::Response {
    client.request(format!("{method} {target} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes())
}

#[test]
fn head_of_a_custom_get_route_answers_like_get_without_a_body() {
    let dir = site();
    let server = start(app(&dir));
    let mut client = Client::connect(server.addr());
    client.send(b"HEAD /health HTTP/1.1\r\nHost: a\r\n\r\n");
    let head = client.read_head_response();
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("2"));
    assert_eq!(
        head.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    // No body was sent: the next answer is the next request's, on the same connection.
    assert_eq!(request(&mut client, "GET", "/health").text(), "ok");
}

#[test]
fn head_of_a_file_reaches_the_inner_handler() {
    let dir = site();
    let server = start(app(&dir));
    let mut client = Client::connect(server.addr());
    client.send(b"HEAD /notes.txt HTTP/1.1\r\nHost: a\r\n\r\n");
    let head = client.read_head_response();
    assert_eq!(head.status, 200, "{head:?}");
    assert_eq!(head.header("content-length"), Some("11"));
    assert!(head.header("last-modified").is_some(), "{head:?}");
    client.send(b"HEAD /missing HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(client.read_head_response().status, 404);
    assert_eq!(request(&mut client, "GET", "/").text(), PAGE);
}

#[test]
fn every_other_method_reaches_the_inner_handler() {
    let dir = site();
    let server = start(app(&dir));
    let mut client = Client::connect(server.addr());
    // The route of its own...
    let submit = client.request(
        b"POST /submit HTTP/1.1\r\nHost: a\r\nContent-Type: application/x-www-form-urlencoded\r\n\
          Content-Length: 7\r\n\r\na=1&b=2",
    );
    assert_eq!((submit.status, submit.text().as_str()), (201, "2 fields"));
    // ...and a form elsewhere is the file handler's: its page of the decoded fields.
    let form = client.request(
        b"POST /elsewhere HTTP/1.1\r\nHost: a\r\nContent-Type: application/x-www-form-urlencoded\r\n\
          Content-Length: 5\r\n\r\nname=",
    );
    assert_eq!(form.status, 200);
    assert!(form.text().contains("Form received"), "{}", form.text());
    // PUT and DELETE reach the file handler, which has uploads off: 405 with what it allows.
    for method in ["DELETE", "PUT"] {
        let answer = request(&mut client, method, "/notes.txt");
        assert_eq!(answer.status, 405, "{method}");
        assert_eq!(answer.header("allow"), Some("GET, HEAD, POST, OPTIONS"));
    }
    // A method neither implements: the inner handler's 501, as Python's.
    let answer = request(&mut client, "BREW", "/notes.txt");
    assert_eq!(answer.status, 501);
    assert!(answer.text().contains("BREW"), "{}", answer.text());
    assert_eq!(request(&mut client, "GET", "/health").text(), "ok");
}

#[test]
fn the_outer_handlers_protocol_version_holds_for_the_files() {
    let dir = site();
    let server = start(app(&dir));
    let mut client = Client::connect(server.addr());
    let file = request(&mut client, "GET", "/notes.txt");
    assert_eq!(file.version, "HTTP/1.1");
    assert!(!file.connection_has("close"), "{file:?}");
    // Still the same connection.
    assert_eq!(request(&mut client, "GET", "/health").version, "HTTP/1.1");
}

#[test]
fn configured_limits_and_version_hold_for_the_whole_composition() {
    let dir = site();
    let limits = Limits {
        max_body_size: 64,
        ..Limits::default()
    };
    let handler = Configured::new(app(&dir))
        .limits(limits)
        .protocol_version(Version::HTTP_10);
    let server = start(handler);
    let form = |body: &str| {
        let mut client = Client::connect(server.addr());
        client.request(
            format!(
                "POST /elsewhere HTTP/1.0\r\nContent-Type: application/x-www-form-urlencoded\r\n\
                 Content-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        )
    };
    let small = form("a=1");
    assert_eq!((small.status, small.version.as_str()), (200, "HTTP/1.0"));
    // Over the limit: refused for the inner handler too, not answered 200.
    assert_eq!(form(&format!("a={}", "x".repeat(100))).status, 413);
    let mut client = Client::connect(server.addr());
    let file = client.request(b"GET /notes.txt HTTP/1.0\r\n\r\n");
    assert_eq!((file.status, file.version.as_str()), (200, "HTTP/1.0"));
}

/// A handler with no `do_get`: HEAD, which runs `do_get`, is 501 as GET is.
#[derive(Clone)]
struct PostOnly;

impl HttpHandler for PostOnly {
    fn do_post(&mut self, req: &mut HttpRequest<'_>) -> HandlerResult {
        req.send_text(200, "posted")
    }
}

#[test]
fn head_without_do_get_is_unsupported_as_get_is() {
    let server = start(PostOnly);
    for method in ["GET", "HEAD"] {
        let mut client = Client::connect(server.addr());
        client.send(format!("{method} / HTTP/1.0\r\n\r\n").as_bytes());
        assert_eq!(client.read_head_response().status, 501, "{method}");
    }
}

/// Records the thread each request ran on; `/wait` may block.
#[derive(Clone, Default)]
struct Threads {
    seen: Arc<Mutex<BTreeSet<(String, String)>>>,
}

impl HttpHandler for Threads {
    const PROTOCOL_VERSION: Version = Version::HTTP_11;

    fn may_block(&self, req: &HttpRequest<'_>) -> bool {
        req.url_path() == "/wait"
    }

    fn do_get(&mut self, req: &mut HttpRequest<'_>) -> HandlerResult {
        let thread = std::thread::current().name().unwrap_or("").to_string();
        self.seen
            .lock()
            .unwrap()
            .insert((req.url_path().to_string(), thread));
        req.send_text(200, "ran")
    }
}

#[test]
fn http_server_runs_requests_on_its_loop_and_those_that_may_block_on_workers() {
    let handler = Threads::default();
    let seen = Arc::clone(&handler.seen);
    let server = HttpServer::bind("127.0.0.1:0", handler).unwrap();
    let (server, thread) = serve(server);
    let addr = server.server_address().inet().unwrap();
    let mut client = Client::connect(addr);
    assert_eq!(request(&mut client, "GET", "/quick").text(), "ran");
    assert_eq!(request(&mut client, "GET", "/wait").text(), "ran");
    assert_eq!(request(&mut client, "GET", "/quick").text(), "ran");
    let seen = seen.lock().unwrap().clone();
    let threads_of = |path: &str| -> Vec<String> {
        seen.iter()
            .filter(|(p, _)| p == path)
            .map(|(_, t)| t.clone())
            .collect()
    };
    // The thread that runs `serve_forever` is the loop's own.
    assert_eq!(threads_of("/quick"), vec!["serve_forever".to_string()]);
    let waits = threads_of("/wait");
    assert_eq!(waits.len(), 1, "{seen:?}");
    assert!(waits[0].starts_with("Worker-"), "{seen:?}");
    drop(client);
    stop(&server, thread);
}
