//! Real clients against the server: Python's `http.client`, curl and ureq; the same handler
//! over a Unix socket; and a request over IPv6.
//!
//! python3 and curl must be installed (CI installs them); a missing one fails the test with
//! a message saying so.

mod http_support;

use std::io;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use http_support::{start, Client, Running, TempDir, TestConcurrency};
use socketserver::http::{parse_qsl, HttpHandler, HttpRequest, Version};
use socketserver::{HandlerResult, Server, TcpTransport, UnixStreamTransport};

/// A small application: a greeting, a form decoder, an upload checksum, the client's
/// address, and 404 for the rest.
#[derive(Clone)]
struct App;

/// The checksum `/upload` answers with.
fn checksum(data: &[u8]) -> u64 {
    data.iter().fold(0u64, |acc, &b| {
        acc.wrapping_mul(31).wrapping_add(u64::from(b))
    })
}

impl HttpHandler for App {
    const PROTOCOL_VERSION: Version = Version::HTTP_11;

    fn do_get(&mut self, req: &mut HttpRequest<'_>) -> HandlerResult {
        let path = req.path.split('?').next().unwrap_or("").to_string();
        match path.as_str() {
            "/hello" => http_support::send_body(req, "text/plain", b"Hello, world!"),
            "/whoami" => {
                let who = req.address_string();
                http_support::send_body(req, "text/plain", who.as_bytes())
            }
            "/query" => {
                let pairs = parse_qsl(req.query().unwrap_or("").as_bytes());
                let text: String = pairs.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
                http_support::send_body(req, "text/plain; charset=utf-8", text.as_bytes())
            }
            _ => {
                req.send_error(404, "No such page")?;
                Ok(())
            }
        }
    }

    fn do_head(&mut self, req: &mut HttpRequest<'_>) -> HandlerResult {
        self.do_get(req)
    }

    fn do_post(&mut self, req: &mut HttpRequest<'_>) -> HandlerResult {
        match req.path.as_str() {
            "/form" => {
                let body = req.read_body()?;
                let text: String = parse_qsl(&body)
                    .iter()
                    .map(|(k, v)| format!("{k}={v}\n"))
                    .collect();
                http_support::send_body(req, "text/plain; charset=utf-8", text.as_bytes())
            }
            "/upload" => {
                let chunked = req.rfile.is_chunked();
                let body = req.read_body()?;
                let text = format!(
                    "{} bytes, checksum {}, chunked {chunked}",
                    body.len(),
                    checksum(&body)
                );
                http_support::send_body(req, "text/plain", text.as_bytes())
            }
            _ => {
                req.send_error(404, "No such page")?;
                Ok(())
            }
        }
    }
}

/// Runs `command` to completion within `limit`, killing it after that; fails clearly if the
/// program is not installed.
fn run(mut command: Command, limit: Duration) -> Output {
    let program = command.get_program().to_string_lossy().into_owned();
    let mut child = match command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            panic!("{program} is required for this test (CI installs it) but is not installed")
        }
        Err(err) => panic!("cannot run {program}: {err}"),
    };
    let deadline = Instant::now() + limit;
    // Pipes are drained by wait_with_output below; our outputs are small enough not to
    // fill a pipe before the process exits.
    loop {
        if child.try_wait().expect("wait for the child").is_some() {
            break;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let output = child.wait_with_output().expect("collect the output");
            panic!(
                "{program} did not finish within {limit:?}; stderr: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let output = child.wait_with_output().expect("collect the output");
    assert!(
        output.status.success(),
        "{program} failed ({}): stdout: {} stderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn python(script: &str, port: u16) -> String {
    let mut command = Command::new("python3");
    command.arg("-c").arg(script).arg(port.to_string());
    let output = run(command, Duration::from_secs(30));
    String::from_utf8(output.stdout).expect("UTF-8 output")
}

fn curl(args: &[&str]) -> String {
    let mut command = Command::new("curl");
    command.args(["-sS", "--max-time", "20"]).args(args);
    let output = run(command, Duration::from_secs(30));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

const PY_REQUESTS: &str = r#"
import http.client, sys, urllib.parse
port = int(sys.argv[1])
c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
c.request("GET", "/hello")
r = c.getresponse()
print("GET", r.status, r.version, r.getheader("Content-Type"), r.read().decode())
c.request("HEAD", "/hello")
r = c.getresponse()
print("HEAD", r.status, r.getheader("Content-Length"), repr(r.read()))
form = urllib.parse.urlencode([("name", "Ada Lovelace"), ("lang", "中文"), ("sym", "a&b=c"), ("lang", "rs")])
c.request("POST", "/form", form, {"Content-Type": "application/x-www-form-urlencoded"})
r = c.getresponse()
print("POST", r.status, repr(r.read().decode()))
c.request("POST", "/upload", body=iter([b"abc", b"", b"defgh"]), encode_chunked=True,
          headers={"Transfer-Encoding": "chunked"})
r = c.getresponse()
print("CHUNKED", r.status, r.read().decode())
c.request("GET", "/nope")
r = c.getresponse()
print("404", r.status, r.reason, "Error code: 404" in r.read().decode())
c.close()
"#;

#[test]
fn python_http_client_get_head_post_and_chunked() {
    let server = start(App);
    let out = python(PY_REQUESTS, server.addr().port());
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            "GET 200 11 text/plain Hello, world!",
            "HEAD 200 13 b''",
            r"POST 200 'name=Ada Lovelace\nlang=中文\nsym=a&b=c\nlang=rs\n'",
            &format!(
                "CHUNKED 200 8 bytes, checksum {}, chunked true",
                checksum(b"abcdefgh")
            ),
            "404 404 No such page True",
        ],
        "{out}"
    );
}

const PY_KEEP_ALIVE: &str = r#"
import http.client, sys
port = int(sys.argv[1])
c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
c.connect()
sock = c.sock
local = sock.getsockname()
for i in range(5):
    c.request("GET", "/query?i=%d" % i)
    r = c.getresponse()
    body = r.read().decode()
    print(i, r.status, body.strip(), c.sock is sock, r.will_close)
print("same local address", c.sock.getsockname() == local)
"#;

#[test]
fn python_http_client_keeps_one_connection_for_a_sequence() {
    let server = start(App);
    let out = python(PY_KEEP_ALIVE, server.addr().port());
    let lines: Vec<&str> = out.lines().collect();
    let mut expected: Vec<String> = (0..5)
        .map(|i| format!("{i} 200 i={i} True False"))
        .collect();
    expected.push("same local address True".into());
    assert_eq!(lines, expected, "{out}");
}

/// Splits curl `-i` output into (status lines, last body).
fn curl_statuses(out: &str) -> Vec<String> {
    out.lines()
        .filter(|l| l.starts_with("HTTP/"))
        .map(|l| l.trim_end().to_string())
        .collect()
}

#[test]
fn curl_get_http_1_0_and_form_post() {
    let server = start(App);
    let base = format!("http://{}", server.addr());

    let out = curl(&["-i", &format!("{base}/hello")]);
    assert_eq!(curl_statuses(&out), ["HTTP/1.1 200 OK"], "{out}");
    assert!(out.ends_with("\r\n\r\nHello, world!"), "{out}");
    assert!(out.contains("Content-Length: 13\r\n"), "{out}");

    let out = curl(&["-i", "--http1.0", &format!("{base}/hello")]);
    assert_eq!(curl_statuses(&out), ["HTTP/1.1 200 OK"], "{out}");
    assert!(out.ends_with("Hello, world!"), "{out}");

    let out = curl(&[
        "-i",
        "-d",
        "name=Grace+Hopper&x=%26%3D",
        &format!("{base}/form"),
    ]);
    assert_eq!(curl_statuses(&out), ["HTTP/1.1 200 OK"], "{out}");
    assert!(out.ends_with("\r\n\r\nname=Grace Hopper\nx=&=\n"), "{out}");

    let out = curl(&["-i", "-I", &format!("{base}/hello")]);
    assert_eq!(curl_statuses(&out), ["HTTP/1.1 200 OK"], "{out}");
    assert!(out.contains("Content-Length: 13\r\n"), "{out}");
    assert!(!out.contains("Hello"), "{out}");

    let out = curl(&["-i", &format!("{base}/missing")]);
    assert_eq!(curl_statuses(&out), ["HTTP/1.1 404 No such page"], "{out}");
}

#[test]
fn curl_reuses_the_connection_for_several_urls() {
    let server = start(App);
    let base = format!("http://{}", server.addr());
    // One `-o` per URL: each applies to the next URL only.
    let (first, second, third) = (
        format!("{base}/hello"),
        format!("{base}/query?a=1"),
        format!("{base}/hello"),
    );
    let out = curl(&[
        "-w",
        "%{http_code} %{num_connects}\n",
        "-o",
        "/dev/null",
        &first,
        "-o",
        "/dev/null",
        &second,
        "-o",
        "/dev/null",
        &third,
    ]);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["200 1", "200 0", "200 0"],
        "{out}"
    );
}

fn upload_file(dir: &TempDir, size: usize) -> (std::path::PathBuf, Vec<u8>) {
    let data: Vec<u8> = (0..size).map(|i| (i * 7 % 256) as u8).collect();
    let path = dir.path().join("upload.bin");
    std::fs::write(&path, &data).unwrap();
    (path, data)
}

#[test]
fn curl_expect_100_continue_with_a_large_body() {
    let server = start(App);
    let dir = TempDir::new();
    let (path, data) = upload_file(&dir, 3 * 1024 * 1024);
    let out = curl(&[
        "-i",
        "-H",
        "Expect: 100-continue",
        "-H",
        "Content-Type: application/octet-stream",
        "--data-binary",
        &format!("@{}", path.display()),
        &format!("http://{}/upload", server.addr()),
    ]);
    assert_eq!(
        curl_statuses(&out),
        ["HTTP/1.1 100 Continue", "HTTP/1.1 200 OK"],
        "{out}"
    );
    let expected = format!(
        "{} bytes, checksum {}, chunked false",
        data.len(),
        checksum(&data)
    );
    assert!(out.ends_with(&expected), "{out}");
}

#[test]
fn curl_chunked_upload_from_a_file() {
    let server = start(App);
    let dir = TempDir::new();
    let (path, data) = upload_file(&dir, 500_000);
    let out = curl(&[
        "-i",
        "-H",
        "Transfer-Encoding: chunked",
        "--data-binary",
        &format!("@{}", path.display()),
        &format!("http://{}/upload", server.addr()),
    ]);
    assert_eq!(
        curl_statuses(&out).last().map(String::as_str),
        Some("HTTP/1.1 200 OK"),
        "{out}"
    );
    let expected = format!(
        "{} bytes, checksum {}, chunked true",
        data.len(),
        checksum(&data)
    );
    assert!(out.ends_with(&expected), "{out}");
}

#[test]
fn ureq_get_and_post() {
    let server = start(App);
    let base = format!("http://{}", server.addr());
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();

    let mut response = agent.get(&format!("{base}/hello")).call().unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers().get("content-type").unwrap(),
        "text/plain"
    );
    assert_eq!(
        response.body_mut().read_to_string().unwrap(),
        "Hello, world!"
    );

    let mut response = agent
        .post(&format!("{base}/form"))
        .send_form([("name", "Alan Turing"), ("q", "1+1=2 & more")])
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.body_mut().read_to_string().unwrap(),
        "name=Alan Turing\nq=1+1=2 & more\n"
    );

    let payload: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
    let mut response = agent
        .post(&format!("{base}/upload"))
        .send(&payload[..])
        .unwrap();
    assert_eq!(
        response.body_mut().read_to_string().unwrap(),
        format!(
            "{} bytes, checksum {}, chunked false",
            payload.len(),
            checksum(&payload)
        )
    );

    let mut response = agent.get(&format!("{base}/missing")).call().unwrap();
    assert_eq!(response.status(), 404);
    assert!(response
        .body_mut()
        .read_to_string()
        .unwrap()
        .contains("No such page"));

    // The default agent treats 4xx as an error.
    match ureq::get(&format!("{base}/missing")).call() {
        Err(ureq::Error::StatusCode(404)) => {}
        other => panic!("expected a 404 error, got {other:?}"),
    }
}

#[test]
fn the_same_handler_serves_over_a_unix_socket() {
    let dir = TempDir::new();
    let path = dir.path().join("http.sock");
    let server = Server::<UnixStreamTransport, App, TestConcurrency>::builder(&path, App)
        .build()
        .expect("bind the Unix socket");
    let running = Running::serve(server);
    assert_eq!(running.address().path(), Some(path.as_path()));
    let mut client = Client::connect_unix(&path);
    let response = client.request(b"GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!(
        (response.status, response.text().as_str()),
        (200, "Hello, world!")
    );
    // Keep-alive works there too.
    let response =
        client.request(b"POST /form HTTP/1.1\r\nHost: localhost\r\nContent-Length: 3\r\n\r\na=b");
    assert_eq!(response.text(), "a=b\n");
    let response = client.request(b"GET /whoami HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!(response.status, 200);
    drop(client);
    drop(running);
    assert!(
        !Path::new(&path).exists(),
        "the socket file outlived the server"
    );
}

#[test]
fn a_request_over_ipv6_loopback() {
    let server = match Server::<TcpTransport, App, TestConcurrency>::builder("[::1]:0", App).build()
    {
        Ok(server) => server,
        Err(err) => {
            println!("skipped: cannot bind [::1] on this machine ({err})");
            return;
        }
    };
    let running = Running::serve(server);
    let addr = running.addr();
    assert!(addr.is_ipv6());
    let mut client = Client::connect(addr);
    let response = client.request(b"GET /whoami HTTP/1.1\r\nHost: [::1]\r\n\r\n");
    assert_eq!((response.status, response.text().as_str()), (200, "::1"));
    let response = client.request(b"GET /hello HTTP/1.1\r\nHost: [::1]\r\n\r\n");
    assert_eq!(response.text(), "Hello, world!");
    let out = curl(&["-g", &format!("http://[::1]:{}/hello", addr.port())]);
    assert_eq!(out, "Hello, world!");
}
