//! The examples, run as a user runs them: start the binary on port 0 (or a temp socket path),
//! talk to it with a real client, stop it with SIGTERM and check it exits cleanly.
//!
//! `cargo test` builds the examples before running this file.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

const TIMEOUT: Duration = Duration::from_secs(10);

fn example_path(name: &str) -> PathBuf {
    // Integration tests run from target/<profile>/deps; examples live in target/<profile>/examples.
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target dir");
    let path = profile_dir.join("examples").join(name);
    assert!(
        path.exists(),
        "{} is missing: run the tests with `cargo test`, which builds the examples",
        path.display()
    );
    path
}

/// A running example, killed if a test fails before stopping it.
struct Example {
    child: Child,
    stdout: BufReader<ChildStdout>,
}

impl Example {
    fn start(name: &str, args: &[&str]) -> Example {
        Self::start_with_stderr(name, args, Stdio::inherit())
    }

    fn start_with_stderr(name: &str, args: &[&str], stderr: impl Into<Stdio>) -> Example {
        Self::spawn(Command::new(example_path(name)).args(args).stderr(stderr))
    }

    /// Runs `command` with its stdout piped, to read the address it serves on.
    fn spawn(command: &mut Command) -> Example {
        let mut child = command
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the example");
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        Example { child, stdout }
    }

    /// Reads stdout up to the "serving on ADDRESS" line and returns ADDRESS.
    fn serving_address(&mut self) -> String {
        let mut line = String::new();
        loop {
            line.clear();
            let n = self
                .stdout
                .read_line(&mut line)
                .expect("read example stdout");
            assert!(n > 0, "the example exited before it served");
            if let Some((_, address)) = line.trim_end().split_once(" serving on ") {
                return address.to_string();
            }
        }
    }

    /// Reads stdout up to `Serving HTTP on ADDR port PORT (...)` and returns PORT.
    fn port_from_banner(&mut self) -> u16 {
        let mut line = String::new();
        loop {
            line.clear();
            let n = self
                .stdout
                .read_line(&mut line)
                .expect("read example stdout");
            assert!(n > 0, "the example exited before it served");
            if let Some(rest) = line.strip_prefix("Serving HTTP on ") {
                let port = rest.split(" port ").nth(1).expect("a port");
                return port
                    .split_whitespace()
                    .next()
                    .unwrap()
                    .parse()
                    .expect("a number");
            }
        }
    }

    fn inet_address(&mut self) -> SocketAddr {
        self.serving_address().parse().expect("a socket address")
    }

    /// Sends SIGTERM and waits (bounded) for the process to exit.
    fn terminate(mut self) -> ExitStatus {
        kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM).expect("send SIGTERM");
        self.wait()
    }

    fn wait(&mut self) -> ExitStatus {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for the example") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the example did not exit in time"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn rest_of_stdout(&mut self) -> String {
        let mut rest = String::new();
        self.stdout.read_to_string(&mut rest).expect("read stdout");
        rest
    }
}

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn connect(address: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(address).expect("connect");
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream
}

/// Reads until `expected.len()` bytes arrived (replies may come in pieces).
fn read_exact_reply(stream: &mut impl Read, expected: &[u8]) {
    let mut got = vec![0; expected.len()];
    stream.read_exact(&mut got).expect("read the reply");
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(expected)
    );
}

fn temp_socket_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "socketserver-ex-{}-{name}.sock",
        std::process::id()
    ))
}

#[test]
fn tcp_upper_answers_in_upper_case_and_stops_on_sigterm() {
    let mut example = Example::start("tcp_upper", &["127.0.0.1:0"]);
    let address = example.inet_address();
    let mut client = connect(address);
    client.write_all(b"  hello world \n").unwrap();
    read_exact_reply(&mut client, b"HELLO WORLD");
    client.write_all(b"again").unwrap();
    read_exact_reply(&mut client, b"AGAIN");
    drop(client);
    assert!(example.terminate().success());
}

#[test]
fn udp_upper_replies_to_the_sender() {
    let mut example = Example::start("udp_upper", &["127.0.0.1:0"]);
    let address = example.inet_address();
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.set_read_timeout(Some(TIMEOUT)).unwrap();
    client.send_to(b" datagram \n", address).unwrap();
    let mut buf = [0; 64];
    let (n, from) = client.recv_from(&mut buf).expect("the reply");
    assert_eq!(&buf[..n], b"DATAGRAM");
    assert_eq!(from, address);
    assert!(example.terminate().success());
}

#[test]
fn unix_upper_serves_and_removes_its_socket_file() {
    let path = temp_socket_path("upper");
    let _ = std::fs::remove_file(&path);
    let mut example = Example::start("unix_upper", &[path.to_str().unwrap()]);
    assert_eq!(PathBuf::from(example.serving_address()), path);
    let mut client = UnixStream::connect(&path).expect("connect to the unix socket");
    client.set_read_timeout(Some(TIMEOUT)).unwrap();
    // The same handler as tcp_upper: each recv is answered, stripped, without waiting for
    // a line end.
    client.write_all(b"  unix line \n").unwrap();
    read_exact_reply(&mut client, b"UNIX LINE");
    client.write_all(b"again").unwrap();
    read_exact_reply(&mut client, b"AGAIN");
    drop(client);
    assert!(example.terminate().success());
    assert!(!path.exists(), "the socket file was not removed");
}

#[test]
fn timestamp_prefixes_the_line_with_ctime() {
    let mut example = Example::start("timestamp", &["127.0.0.1:0"]);
    let address = example.inet_address();
    let mut client = connect(address);
    client.write_all(b"what time is it\r\n").unwrap();
    let mut reply = String::new();
    client
        .read_to_string(&mut reply)
        .expect("the reply, then EOF");
    // "[Mon Nov 23 09:12:00 2026] what time is it\r\n"
    let (stamp, rest) = reply.split_once("] ").expect("a [ctime] prefix");
    assert_eq!(rest, "what time is it\r\n");
    let fields: Vec<&str> = stamp.trim_start_matches('[').split_whitespace().collect();
    assert_eq!(fields.len(), 5, "ctime has five fields: {stamp}");
    assert_eq!(fields[3].len(), 8, "hh:mm:ss: {stamp}");
    assert!(fields[4].parse::<u32>().is_ok(), "year: {stamp}");
    assert!(example.terminate().success());
}

fn menu_conversation(address: SocketAddr) {
    let mut first = connect(address);
    read_exact_reply(
        &mut first,
        "欢迎致电 10086,请输入1xxx,0转人工服务.".as_bytes(),
    );
    // A second caller is served while the first is still on the line.
    let mut second = connect(address);
    read_exact_reply(
        &mut second,
        "欢迎致电 10086,请输入1xxx,0转人工服务.".as_bytes(),
    );
    first.write_all(b"0").unwrap();
    read_exact_reply(&mut first, "通过可能会被录音.balabala一大推".as_bytes());
    second.write_all(b"1234\n").unwrap();
    read_exact_reply(&mut second, "请重新输入.".as_bytes());
    for mut caller in [first, second] {
        caller.write_all(b"exit").unwrap();
        let mut rest = Vec::new();
        caller.read_to_end(&mut rest).expect("hang up");
        assert!(rest.is_empty(), "nothing after exit: {rest:?}");
    }
}

#[test]
fn menu_forking_serves_several_callers() {
    let mut example = Example::start("menu", &["127.0.0.1:0"]);
    menu_conversation(example.inet_address());
    assert!(example.terminate().success());
}

#[test]
fn menu_threading_serves_several_callers() {
    let mut example = Example::start("menu", &["127.0.0.1:0", "--threading"]);
    menu_conversation(example.inet_address());
    assert!(example.terminate().success());
}

#[test]
fn echo_threads_prints_three_replies_from_handler_threads() {
    let mut example = Example::start("echo_threads", &[]);
    let status = example.wait();
    let output = example.rest_of_stdout();
    assert!(status.success(), "exit status {status}");
    let replies: Vec<&str> = output
        .lines()
        .filter(|l| l.starts_with("Received: "))
        .collect();
    assert_eq!(replies.len(), 3, "{output}");
    for (i, reply) in replies.iter().enumerate() {
        let (thread, message) = reply["Received: ".len()..]
            .split_once(": ")
            .expect("thread-name: data");
        assert!(thread.starts_with("Thread-"), "{reply}");
        assert_eq!(message, format!("Hello World {}", i + 1));
    }
}

#[test]
fn simple_http_serves_the_shipped_site() {
    let mut example = Example::start("simple_http", &["0", "--bind", "127.0.0.1"]);
    let port = example.port_from_banner();
    let mut client = connect(SocketAddr::from(([127, 0, 0, 1], port)));
    client
        .write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    client
        .read_to_string(&mut response)
        .expect("the page, then EOF");
    assert!(response.starts_with("HTTP/1.0 200 OK\r\n"), "{response}");
    assert!(response.contains("<form method=\"post\""), "{response}");
    assert!(example.terminate().success());
}

#[test]
fn simple_http_exits_at_once_on_a_second_sigterm() {
    // A download the client never reads holds the first SIGTERM's close (it finishes the
    // requests in flight); the second one must not wait for it.
    let dir = std::env::temp_dir().join(format!("simple-http-sigterm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("big.bin"), vec![b'b'; 32 << 20]).unwrap();
    let dir_arg = dir.to_str().unwrap().to_string();
    let mut example = Example::start("simple_http", &["0", "--bind", "127.0.0.1", "-d", &dir_arg]);
    let address = SocketAddr::from(([127, 0, 0, 1], example.port_from_banner()));
    let mut stalled = connect(address);
    socket2::SockRef::from(&stalled)
        .set_recv_buffer_size(4096)
        .unwrap();
    stalled.write_all(b"GET /big.bin HTTP/1.0\r\n\r\n").unwrap();
    let mut first = [0u8; 16];
    stalled.read_exact(&mut first).expect("the download starts");
    let pid = Pid::from_raw(example.child.id() as i32);
    kill(pid, Signal::SIGTERM).unwrap();
    // The first signal closed the listener: the server is in its close now.
    let deadline = Instant::now() + TIMEOUT;
    while TcpStream::connect(address).is_ok() {
        assert!(
            Instant::now() < deadline,
            "the listener stayed open after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    kill(pid, Signal::SIGTERM).unwrap();
    let status = example.wait();
    assert_eq!(status.code(), Some(130), "{status:?}");
    drop(stalled);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn custom_routes_answers_its_routes_and_falls_back_to_files() {
    let mut example = Example::start("custom_routes", &["0", "--bind", "127.0.0.1"]);
    let address = example.inet_address();
    let get = |request: &str| -> String {
        let mut client = connect(address);
        client.write_all(request.as_bytes()).unwrap();
        let mut response = String::new();
        client
            .read_to_string(&mut response)
            .expect("a response, then EOF");
        response
    };
    let hello = get("GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert!(hello.starts_with("HTTP/1.1 200 OK\r\n"), "{hello}");
    assert!(hello.contains("\r\nWelcome: Contect\r\n"), "{hello}");
    assert!(hello.ends_with("\r\n\r\nIt works"), "{hello}");
    let time = get("GET /api/time HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert!(time.contains("Content-Type: application/json"), "{time}");
    assert!(time.contains("\"unix\": "), "{time}");
    let body = "a=1&b=x+y&c=%E4%B8%AD";
    let echo = get(&format!(
        "POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    ));
    assert!(echo.ends_with("\r\n\r\na=1\nb=x y\nc=中\n"), "{echo}");
    let css = get("GET /style.css HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert!(css.starts_with("HTTP/1.1 200 OK\r\n"), "{css}");
    assert!(css.contains("Content-Type: text/css"), "{css}");
    let missing = get("GET /missing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert!(missing.starts_with("HTTP/1.1 404 "), "{missing}");
    // HEAD of the custom route and of a file: the GET's head, no body.
    let head = get("HEAD /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.contains("\r\nContent-Length: 8\r\n"), "{head}");
    assert!(head.ends_with("\r\n\r\n"), "{head}");
    let head = get("HEAD /style.css HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert!(head.contains("Content-Type: text/css"), "{head}");
    assert!(head.ends_with("\r\n\r\n"), "{head}");
    assert!(example.terminate().success());
}

/// What an HTTP example wrote to stderr while it answered `GET /hello`, up to its exit.
fn stderr_of_one_request(name: &str, args: &[&str]) -> String {
    let log = std::env::temp_dir().join(format!("{name}-{}.stderr", std::process::id()));
    let file = std::fs::File::create(&log).expect("create the stderr file");
    let mut example = Example::start_with_stderr(name, args, file);
    let port = match name {
        "simple_http" => example.port_from_banner(),
        _ => example.inet_address().port(),
    };
    let mut client = connect(SocketAddr::from(([127, 0, 0, 1], port)));
    client
        .write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut response = Vec::new();
    client.read_to_end(&mut response).unwrap();
    assert!(!response.is_empty());
    assert!(example.terminate().success());
    let text = std::fs::read_to_string(&log).expect("read the stderr file");
    let _ = std::fs::remove_file(&log);
    text
}

/// `127.0.0.1 - - [01/Dec/2026:22:31:03 +0000] "GET /hello HTTP/1.1" STATUS SIZE`: the
/// client first, one timestamp, nothing before or after (Python's `log_message`).
fn assert_plain_access_line(stderr: &str, status: u16) {
    let line = stderr
        .lines()
        .find(|l| l.contains("\"GET /hello HTTP/1.1\""))
        .unwrap_or_else(|| panic!("no access line in {stderr:?}"));
    let rest = line
        .strip_prefix("127.0.0.1 - - [")
        .unwrap_or_else(|| panic!("not the client address first: {line:?}"));
    let (date, rest) = rest.split_once("] ").expect("a [date]");
    assert_eq!(date.len(), "01/Dec/2026:22:31:03 +0000".len(), "{line:?}");
    assert!(date.ends_with(" +0000"), "{line:?}");
    assert!(!rest.contains('['), "a second timestamp: {line:?}");
    assert!(
        rest.starts_with(&format!("\"GET /hello HTTP/1.1\" {status} ")),
        "{line:?}"
    );
}

#[test]
fn http_examples_log_plain_access_lines_to_stderr() {
    let routes = stderr_of_one_request("custom_routes", &["0", "--bind", "127.0.0.1"]);
    assert_plain_access_line(&routes, 200);
    let files = stderr_of_one_request("simple_http", &["0", "--bind", "127.0.0.1"]);
    assert_plain_access_line(&files, 404);
}

/// The Python program in `examples/notes_api.rs`'s doc comment.
fn python_twin_of_notes_api() -> String {
    let source = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/notes_api.rs"),
    )
    .unwrap();
    let mut lines = source.lines().skip_while(|l| *l != "//! ```python").skip(1);
    let mut python = String::new();
    for line in lines.by_ref().take_while(|l| *l != "//! ```") {
        python.push_str(
            line.strip_prefix("//! ")
                .unwrap_or(line.trim_start_matches("//!")),
        );
        python.push('\n');
    }
    python
}

/// Status, content type and body (JSON compared as values) of every step of a session.
fn notes_session(address: SocketAddr) -> Vec<(u16, String, String)> {
    let steps: [(&str, &str, &str, &str); 15] = [
        (
            "POST",
            "/api/notes",
            "application/json",
            r#"{"text": "milk"}"#,
        ),
        (
            "POST",
            "/api/notes",
            "application/json",
            r#"{"text": "eggs"}"#,
        ),
        ("POST", "/api/notes", "application/json", r#"{"note": 1}"#),
        ("DELETE", "/api/notes/1", "", ""),
        ("DELETE", "/api/notes/1", "", ""),
        ("GET", "/api/notes", "", ""),
        ("GET", "/health", "", ""),
        (
            "POST",
            "/submit",
            "application/x-www-form-urlencoded",
            "a=1&b=x+y",
        ),
        ("GET", "/style.css", "", ""),
        ("HEAD", "/index.html", "", ""),
        (
            "POST",
            "/elsewhere",
            "application/x-www-form-urlencoded",
            "a=1",
        ),
        ("DELETE", "/api/notes/+2", "", ""),
        ("DELETE", "/api/notes/99999999999999999999999", "", ""),
        ("DELETE", "/api/notes/", "", ""),
        ("GET", "http://x/api/notes", "", ""),
    ];
    steps
        .iter()
        .map(|(method, target, content_type, body)| {
            let mut client = connect(address);
            let mut request = format!(
                "{method} {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n",
                body.len()
            );
            if !content_type.is_empty() {
                request.push_str(&format!("Content-Type: {content_type}\r\n"));
            }
            request.push_str("\r\n");
            request.push_str(body);
            client.write_all(request.as_bytes()).unwrap();
            let mut response = String::new();
            client.read_to_string(&mut response).unwrap();
            let (head, body) = response.split_once("\r\n\r\n").expect("a head");
            let status = head[9..12].parse().unwrap();
            // The media type: Python's files have no charset parameter, ours have.
            let content_type = head
                .lines()
                .filter_map(|l| l.split_once(": "))
                .find(|(name, _)| name.eq_ignore_ascii_case("content-type"))
                .map_or("", |(_, value)| value.split(';').next().unwrap_or(""))
                .to_string();
            let body = match content_type.as_str() {
                "application/json" => serde_json::from_str::<serde_json::Value>(body)
                    .unwrap()
                    .to_string(),
                // Error pages differ in wording between the two servers.
                _ if status >= 400 => String::new(),
                _ => body.to_string(),
            };
            (status, content_type, body)
        })
        .collect()
}

#[test]
fn notes_api_answers_as_its_python_twin_does() {
    let mut rust = Example::start("notes_api", &["127.0.0.1:0"]);
    let rust_session = notes_session(rust.inet_address());
    assert!(rust.terminate().success());
    assert_eq!(
        rust_session[0],
        (
            201,
            "application/json".into(),
            r#"{"id":1,"text":"milk"}"#.into()
        )
    );
    assert_eq!(rust_session[2].0, 400, "not a note: {rust_session:?}");
    assert_eq!(rust_session[3].0, 204, "{rust_session:?}");
    assert_eq!(rust_session[4].0, 404, "{rust_session:?}");
    assert_eq!(rust_session[5].2, r#"[{"id":2,"text":"eggs"}]"#);
    assert_eq!(rust_session[7].2, "a=1\nb=x y\n");

    let dir = std::env::temp_dir().join(format!("notes-twin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("notes.py");
    std::fs::write(&script, python_twin_of_notes_api()).unwrap();
    let mut python = Example::spawn(
        Command::new("python3")
            .arg(&script)
            .arg("127.0.0.1:0")
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stderr(Stdio::null()),
    );
    let python_session = notes_session(python.inet_address());
    python.terminate();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(rust_session, python_session);
}
