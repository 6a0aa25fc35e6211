//! `CgiHttpHandler`: scripts under `/cgi-bin` run with the RFC 3875 environment (and nothing
//! of the server's), the body on standard input, their CGI headers turned into the response;
//! broken, missing, unrunnable and slow scripts get their statuses; nothing outside the
//! script directory is run, and other paths are served as files.
//!
//! Every test builds its own tree of `#!/bin/sh` scripts in a fresh temporary directory.

mod files_support;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use files_support::{curl, exchange, python, serve, set_mode, Served, TempDir};
use socketserver::cgi::CgiHttpHandler;
use socketserver::files::SimpleHttpHandler;
use socketserver::http::{Configured, Version};

/// Printed by scripts that must never run.
const MARKER: &str = "SCRIPT-RAN-5b1e";
const SECRET: &str = "CGI-SECRET-91d2";
/// A variable set in the test process; scripts must not see it.
const LEAK_NAME: &str = "SOCKETSERVER_CGI_TEST_LEAK";
const LEAK_VALUE: &str = "leaked-value-c0ffee";

const ENV_SCRIPT: &str = "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\nenv\n";

/// `base/secret` outside; `base/root` served, with `cgi-bin/` scripts.
struct Site {
    base: TempDir,
}

impl Site {
    fn new() -> Self {
        let base = TempDir::new();
        base.write("secret", SECRET);
        base.script(
            "secret.sh",
            &format!("#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n{MARKER}'\n"),
        );
        base.write("root/index.html", "<p>the index</p>");
        base.write("root/page.txt", "a page\n");
        base.script("root/cgi-bin/env.sh", ENV_SCRIPT);
        base.script("root/cgi-bin/sub/deep.sh", ENV_SCRIPT);
        base.script(
            "root/cgi-bin/stdin.sh",
            "#!/bin/sh\nprintf 'Content-Type: application/octet-stream\\r\\nX-Length: %s\\r\\n\\r\\n' \"$CONTENT_LENGTH\"\ncat\n",
        );
        base.script(
            "root/cgi-bin/status.sh",
            "#!/bin/sh\nprintf 'Status: 404 Not Here\\r\\nContent-Type: text/plain\\r\\n\\r\\nnothing here\\n'\n",
        );
        base.script(
            "root/cgi-bin/redirect.sh",
            "#!/bin/sh\nprintf 'Location: /x\\r\\n\\r\\n'\n",
        );
        base.script(
            "root/cgi-bin/headers.sh",
            "#!/bin/sh\nprintf 'Content-Type: text/x-custom\\nX-Script: yes\\n\\nbody after LF headers'\n",
        );
        base.script(
            "root/cgi-bin/garbage.sh",
            "#!/bin/sh\necho 'this is not a header'\necho\necho body\n",
        );
        base.script(
            "root/cgi-bin/no_type.sh",
            "#!/bin/sh\nprintf 'X-Only: 1\\r\\n\\r\\nbody'\n",
        );
        base.script("root/cgi-bin/silent.sh", "#!/bin/sh\nexit 0\n");
        base.script(
            "root/cgi-bin/unterminated.sh",
            "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n'\n",
        );
        base.script(
            "root/cgi-bin/fails.sh",
            "#!/bin/sh\necho 'oops' >&2\nexit 3\n",
        );
        let plain = base.write(
            "root/cgi-bin/plain.sh",
            format!("#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n{MARKER}'\n"),
        );
        set_mode(&plain, 0o644);
        base.script(
            "root/cgi-bin/sleep.sh",
            "#!/bin/sh\nsleep 20\nprintf 'Content-Type: text/plain\\r\\n\\r\\nlate'\n",
        );
        base.script(
            "root/cgi-bin/partial.sh",
            "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\npartial'\nsleep 20\nprintf 'late'\n",
        );
        // A script outside the CGI directory, and a directory that only starts like one.
        base.script(
            "root/secret.sh",
            &format!("#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n{MARKER}'\n"),
        );
        base.script(
            "root/cgi-binx/run.sh",
            &format!("#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n{MARKER}'\n"),
        );
        base.script(
            "root/cgi-bin/background.sh",
            "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\nshort'\nsleep 20 &\nexit 0\n",
        );
        // A symlink in cgi-bin to a script outside the root.
        base.symlink("../../secret.sh", "root/cgi-bin/outside.sh");
        Site { base }
    }

    fn root(&self) -> PathBuf {
        self.base.join("root")
    }

    fn serve(&self) -> Served<CgiHttpHandler> {
        serve(
            CgiHttpHandler::new(self.root())
                .unwrap()
                .time_limit(Duration::from_millis(500)),
        )
    }
}

/// `KEY=value` lines of `env` output (single-line values only).
fn env_map(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn the_script_sees_the_cgi_environment() {
    let site = Site::new();
    let server = site.serve();
    let response = curl(&[
        "-A",
        "TestAgent/1.0",
        "-H",
        "X-Test: hello world",
        "-H",
        "Content-Type: application/x-www-form-urlencoded",
        "--data-binary",
        "k=v&x=12",
        &server.url("/cgi-bin/env.sh/extra/path?a=1&b=%20"),
    ]);
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.reason, "Script output follows");
    assert_eq!(response.header("content-type"), Some("text/plain"));
    let env = env_map(&response.text());
    let port = server.port().to_string();
    for (name, value) in [
        ("REQUEST_METHOD", "POST"),
        ("QUERY_STRING", "a=1&b=%20"),
        ("CONTENT_LENGTH", "8"),
        ("CONTENT_TYPE", "application/x-www-form-urlencoded"),
        ("PATH_INFO", "/extra/path"),
        ("SCRIPT_NAME", "/cgi-bin/env.sh"),
        ("REMOTE_ADDR", "127.0.0.1"),
        ("SERVER_PORT", port.as_str()),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("GATEWAY_INTERFACE", "CGI/1.1"),
        ("HTTP_USER_AGENT", "TestAgent/1.0"),
        ("HTTP_X_TEST", "hello world"),
        ("SERVER_NAME", "127.0.0.1"),
    ] {
        assert_eq!(
            env.get(name).map(String::as_str),
            Some(value),
            "{name} in {env:#?}"
        );
    }
    assert!(env
        .get("SERVER_SOFTWARE")
        .is_some_and(|s| s.starts_with("CGIHTTP/")));
    assert_eq!(env.get("REQUEST_SCHEME").map(String::as_str), Some("http"));
    assert!(!env.contains_key("HTTPS"), "{env:#?}");
    let translated = site.root().canonicalize().unwrap().join("extra/path");
    assert_eq!(
        env.get("PATH_TRANSLATED").map(String::as_str),
        translated.to_str()
    );
    // A GET over HTTP/1.0 without a body or query.
    let response = server.get("/cgi-bin/env.sh");
    assert_eq!(response.status, 200);
    let env = env_map(&response.text());
    assert_eq!(env["REQUEST_METHOD"], "GET");
    assert_eq!(env["SERVER_PROTOCOL"], "HTTP/1.0");
    assert_eq!(env["QUERY_STRING"], "");
    assert_eq!(env["PATH_INFO"], "");
    assert!(!env.contains_key("CONTENT_LENGTH"), "{env:#?}");
    assert!(!env.contains_key("CONTENT_TYPE"), "{env:#?}");
    assert!(!env.contains_key("PATH_TRANSLATED"), "{env:#?}");
}

#[test]
fn scripts_in_subdirectories_split_script_name_and_path_info() {
    let site = Site::new();
    let server = site.serve();
    let env = env_map(&server.get("/cgi-bin/sub/deep.sh/more/info?q").text());
    assert_eq!(env["SCRIPT_NAME"], "/cgi-bin/sub/deep.sh");
    assert_eq!(env["PATH_INFO"], "/more/info");
    assert_eq!(env["QUERY_STRING"], "q");
    // Percent-encoded path info is decoded; repeated slashes and dots collapse.
    let env = env_map(&server.get("//cgi-bin/./env.sh/a%20b//c").text());
    assert_eq!(env["SCRIPT_NAME"], "/cgi-bin/env.sh");
    assert_eq!(env["PATH_INFO"], "/a b/c");
}

#[test]
fn nothing_of_the_server_environment_leaks() {
    // Edition 2021: set_var is safe; the value is distinctive and only this test reads it.
    std::env::set_var(LEAK_NAME, LEAK_VALUE);
    assert_eq!(std::env::var(LEAK_NAME).as_deref(), Ok(LEAK_VALUE));
    let site = Site::new();
    let server = site.serve();
    let response = curl(&[
        "-H",
        "Proxy: http://evil.example:3128",
        "-H",
        "Authorization: Basic dXNlcjpwYXNz",
        "-H",
        "X-Test: 1",
        "-H",
        "X_Test: spoofed",
        &server.url("/cgi-bin/env.sh"),
    ]);
    assert_eq!(response.status, 200);
    let text = response.text();
    assert!(!text.contains(LEAK_NAME), "{text}");
    assert!(!text.contains(LEAK_VALUE), "{text}");
    assert!(!text.contains("evil.example"), "{text}");
    assert!(!text.contains("dXNlcjpwYXNz"), "{text}");
    assert!(!text.contains("spoofed"), "{text}");
    let env = env_map(&text);
    assert!(!env.contains_key("HTTP_PROXY"), "{env:#?}");
    assert!(!env.contains_key("HTTP_AUTHORIZATION"), "{env:#?}");
    assert_eq!(env.get("AUTH_TYPE").map(String::as_str), Some("Basic"));
    assert_eq!(env.get("HTTP_X_TEST").map(String::as_str), Some("1"));
    // Nothing else of ours: only meta-variables, HTTP_*, PATH, and what the shell adds.
    if std::env::var_os("HOME").is_some() {
        assert!(!env.contains_key("HOME"), "{env:#?}");
    }
    for name in env.keys() {
        assert!(
            name.starts_with("HTTP_")
                || [
                    "GATEWAY_INTERFACE",
                    "SERVER_SOFTWARE",
                    "SERVER_NAME",
                    "SERVER_PORT",
                    "SERVER_PROTOCOL",
                    "REQUEST_METHOD",
                    "SCRIPT_NAME",
                    "PATH_INFO",
                    "PATH_TRANSLATED",
                    "QUERY_STRING",
                    "REMOTE_ADDR",
                    "REMOTE_HOST",
                    "REQUEST_SCHEME",
                    "HTTPS",
                    "AUTH_TYPE",
                    "CONTENT_TYPE",
                    "CONTENT_LENGTH",
                    "PATH",
                    "PWD",
                ]
                .contains(&name.as_str()),
            "unexpected variable {name} in {env:#?}"
        );
    }
    // The Proxy header in any case, raw.
    let response =
        server.raw(b"GET /cgi-bin/env.sh HTTP/1.0\r\nPROXY: http://evil.example\r\n\r\n");
    assert!(!env_map(&response.text()).contains_key("HTTP_PROXY"));
}

#[test]
fn the_body_arrives_on_stdin() {
    let site = Site::new();
    let server = site.serve();
    let response = curl(&[
        "-H",
        "Content-Type: text/plain",
        "--data-binary",
        "hello stdin",
        &server.url("/cgi-bin/stdin.sh"),
    ]);
    assert_eq!(response.status, 200);
    assert_eq!(response.header("x-length"), Some("11"));
    assert_eq!(response.text(), "hello stdin");
    // Larger than a pipe buffer, binary: fed while the output is relayed.
    let body: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let mut request = format!(
        "POST /cgi-bin/stdin.sh HTTP/1.0\r\nContent-Type: application/octet-stream\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(&body);
    let response = server.raw(&request);
    assert_eq!(response.status, 200);
    assert_eq!(response.header("x-length"), Some("300000"));
    assert!(response.body == body, "the script echoed a different body");
    // A chunked body is decoded first; the script gets its length.
    let response = server.raw(
        b"POST /cgi-bin/stdin.sh HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\
          Transfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n3\r\nefg\r\n0\r\n\r\n",
    );
    assert_eq!(response.status, 200);
    assert_eq!(response.header("x-length"), Some("7"));
    assert_eq!(response.text(), "abcdefg");
    // Python's http.client, with Expect: 100-continue.
    let out = python(
        "import http.client, sys\n\
         c = http.client.HTTPConnection('127.0.0.1', int(sys.argv[1]), timeout=10)\n\
         c.request('POST', '/cgi-bin/stdin.sh', b'from python', {'Content-Type': 'text/plain'})\n\
         r = c.getresponse(); print(r.status, r.getheader('X-Length'), r.read().decode())\n",
        &[&server.port().to_string()],
    );
    assert_eq!(out, "200 11 from python\n");
}

#[test]
fn cgi_headers_set_the_status() {
    let site = Site::new();
    let server = site.serve();
    let response = server.get("/cgi-bin/status.sh");
    assert_eq!(response.status, 404);
    assert_eq!(response.reason, "Not Here");
    assert_eq!(response.text(), "nothing here\n");
    let response = server.get("/cgi-bin/redirect.sh");
    assert_eq!(response.status, 302);
    assert_eq!(response.header("location"), Some("/x"));
    // LF-only header lines, custom headers passed through.
    let response = server.get("/cgi-bin/headers.sh");
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-type"), Some("text/x-custom"));
    assert_eq!(response.header("x-script"), Some("yes"));
    assert_eq!(response.text(), "body after LF headers");
    // A script that fails after valid output still answers what it printed.
    let response = curl(&[&server.url("/cgi-bin/redirect.sh")]);
    assert_eq!(response.status, 302);
}

#[test]
fn broken_output_is_502() {
    let site = Site::new();
    let server = site.serve();
    for script in [
        "garbage.sh",
        "no_type.sh",
        "silent.sh",
        "unterminated.sh",
        "fails.sh",
    ] {
        let response = server.get(&format!("/cgi-bin/{script}"));
        assert_eq!(response.status, 502, "{script}: {}", response.text());
        assert!(
            !response.text().contains("this is not a header"),
            "{script}"
        );
    }
}

#[test]
fn unrunnable_and_missing_scripts() {
    let site = Site::new();
    let server = site.serve();
    let response = server.get("/cgi-bin/plain.sh");
    assert_eq!(response.status, 403, "{}", response.text());
    assert!(!response.text().contains(MARKER));
    let response = server.get("/cgi-bin/missing.sh");
    assert_eq!(response.status, 404);
    let response = server.get("/cgi-bin/missing.sh/path/info");
    assert_eq!(response.status, 404);
    for target in ["/cgi-bin/", "/cgi-bin", "/cgi-bin/sub/"] {
        let response = server.get(target);
        assert_eq!(response.status, 403, "{target}: {}", response.text());
        assert!(!response.text().contains("env.sh"), "{target} was listed");
    }
    // A symlink out of the root is not run (nor served).
    let response = server.get("/cgi-bin/outside.sh");
    assert_eq!(response.status, 404);
    assert!(!response.text().contains(MARKER));
}

#[test]
fn a_slow_script_is_killed_with_504() {
    let site = Site::new();
    let server = site.serve();
    let started = Instant::now();
    let response = server.get("/cgi-bin/sleep.sh");
    let elapsed = started.elapsed();
    assert_eq!(response.status, 504, "{}", response.text());
    assert!(!response.text().contains("late"));
    assert!(
        elapsed < Duration::from_secs(5),
        "the 504 took {elapsed:?} for a 500 ms limit"
    );
    // Once output has started the status cannot change: the response is cut short.
    let started = Instant::now();
    let response = server.get("/cgi-bin/partial.sh");
    let elapsed = started.elapsed();
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), "partial");
    assert!(
        elapsed < Duration::from_secs(5),
        "the cut took {elapsed:?} for a 500 ms limit"
    );
    // A script that exits and leaves a child holding its output: still bounded.
    let started = Instant::now();
    let response = server.get("/cgi-bin/background.sh");
    let elapsed = started.elapsed();
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), "short");
    assert!(
        elapsed < Duration::from_secs(5),
        "a background child held the response for {elapsed:?}"
    );
    // The server still answers.
    assert_eq!(server.get("/page.txt").text(), "a page\n");
}

#[test]
fn answers_without_a_length_are_chunked_on_http_1_1_so_a_cut_shows() {
    let site = Site::new();
    let files = SimpleHttpHandler::new(site.root()).unwrap();
    let cgi = CgiHttpHandler::from_files(files).time_limit(Duration::from_millis(500));
    let server = serve(Configured::new(cgi).protocol_version(Version::HTTP_11));
    let request = |target: &str| {
        let request = format!("GET {target} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
        String::from_utf8(exchange(server.addr, request.as_bytes())).unwrap()
    };
    // A GET has no body: a script reading its input sees end-of-file at once, and its
    // answer ends with the last chunk well before the time limit.
    let whole = request("/cgi-bin/stdin.sh");
    assert!(whole.starts_with("HTTP/1.1 200 "), "{whole}");
    assert!(whole.contains("Transfer-Encoding: chunked\r\n"), "{whole}");
    assert!(whole.ends_with("\r\n\r\n0\r\n\r\n"), "{whole}");
    // Killed at the time limit after part of its answer: no last chunk.
    let cut = request("/cgi-bin/partial.sh");
    assert!(cut.contains("\r\n\r\n7\r\npartial\r\n"), "{cut}");
    assert!(
        !cut.ends_with("0\r\n\r\n"),
        "a cut answer looks whole: {cut}"
    );
}

#[test]
fn a_scripts_answer_is_relayed_as_it_comes() {
    // The script prints a line, then waits for a file the test makes only once it has read
    // that line: an answer held until the script exits would never show it.
    let site = Site::new();
    site.base.script(
        "root/cgi-bin/stream.sh",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\nfirst\\n'\n\
         while [ ! -e \"$QUERY_STRING\" ]; do sleep 0.02; done\nprintf 'second\\n'\n",
    );
    let go = site.base.join("go");
    let server = serve(
        CgiHttpHandler::new(site.root())
            .unwrap()
            .time_limit(Duration::from_secs(30)),
    );
    let mut stream = files_support::connect(server.addr);
    let request = format!("GET /cgi-bin/stream.sh?{} HTTP/1.0\r\n\r\n", go.display());
    stream.write_all(request.as_bytes()).unwrap();
    let mut seen = Vec::new();
    let mut chunk = [0u8; 1024];
    while !String::from_utf8_lossy(&seen).ends_with("first\n") {
        let n = stream
            .read(&mut chunk)
            .expect("the first line while the script still runs");
        assert!(n > 0, "closed before the first line: {seen:?}");
        seen.extend_from_slice(&chunk[..n]);
    }
    std::fs::write(&go, "").unwrap();
    let rest = files_support::read_to_eof(&mut stream);
    assert_eq!(String::from_utf8_lossy(&rest), "second\n");
}

#[test]
fn nothing_outside_the_cgi_directory_runs() {
    let site = Site::new();
    let server = site.serve();
    for target in [
        "/cgi-bin/../secret.sh",
        "/cgi-bin/%2e%2e/secret.sh",
        "/cgi-bin/%2E%2E%2Fsecret.sh",
        "/cgi-bin/..%2fsecret.sh",
        "/cgi-bin%2f..%2fsecret.sh",
        "/cgi-bin/..%5csecret.sh",
        "/cgi-bin/../../secret.sh",
        "/cgi-bin/%2e%2e/%2e%2e/secret.sh",
        "/cgi-bin/../../secret",
        "/cgi-bin/%2e%2e/x",
        "/cgi-bin/../secret",
        "/cgi-bin/%c0%ae%c0%ae/secret.sh",
    ] {
        for method in ["GET", "POST"] {
            let response = server
                .raw(format!("{method} {target} HTTP/1.0\r\nContent-Length: 0\r\n\r\n").as_bytes());
            // A POST that names no script is a form for the file handler: an empty form
            // here, answered with its page of no fields.
            let refused: &[u16] = if method == "POST" {
                &[200, 400, 403, 404]
            } else {
                &[400, 403, 404]
            };
            assert!(
                refused.contains(&response.status),
                "{method} {target}: {} {}",
                response.status,
                response.text()
            );
            let text = response.text();
            assert!(!text.contains(MARKER), "{method} {target} ran a script");
            assert!(!text.contains(SECRET), "{method} {target} leaked");
        }
    }
}

#[test]
fn other_paths_are_served_as_files() {
    let site = Site::new();
    let server = site.serve();
    let response = server.get("/");
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), "<p>the index</p>");
    assert_eq!(server.get("/page.txt").text(), "a page\n");
    // An executable outside /cgi-bin is a file: its source is sent, it is not run.
    for target in ["/secret.sh", "/cgi-binx/run.sh"] {
        let response = server.get(target);
        assert_eq!(response.status, 200, "{target}");
        assert!(response.text().starts_with("#!/bin/sh\n"), "{target}");
        assert!(response.text().contains("printf"), "{target} ran");
    }
    // The file handler's POST (a form) still works.
    let response = server.raw(
        b"POST /page.txt HTTP/1.0\r\nContent-Type: application/x-www-form-urlencoded\r\n\
          Content-Length: 3\r\n\r\na=b",
    );
    assert_eq!(response.status, 200);
    assert!(response.text().contains("<tr><th>a</th><td>b</td></tr>"));
    // HEAD of a script: its headers, no body.
    let head = server.raw(b"HEAD /cgi-bin/headers.sh HTTP/1.0\r\n\r\n");
    assert_eq!(head.status, 200);
    assert_eq!(head.header("x-script"), Some("yes"));
    assert!(head.body.is_empty());
}

#[test]
fn configured_cgi_directories_and_file_settings() {
    let site = Site::new();
    site.base.script("root/scripts/env.sh", ENV_SCRIPT);
    let server = serve(
        CgiHttpHandler::from_files(
            SimpleHttpHandler::new(site.root())
                .unwrap()
                .extension("sh", "text/x-shellscript"),
        )
        .cgi_directories(["scripts/"]),
    );
    let env = env_map(&server.get("/scripts/env.sh/i").text());
    assert_eq!(env["SCRIPT_NAME"], "/scripts/env.sh");
    assert_eq!(env["PATH_INFO"], "/i");
    // /cgi-bin is no longer a script directory: its files are served, typed by extension.
    let response = server.get("/cgi-bin/env.sh");
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), ENV_SCRIPT);
    assert_eq!(response.header("content-type"), Some("text/x-shellscript"));
}

#[test]
fn the_shipped_hello_script_greets() {
    let www = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("www");
    let (ok, _, err) = files_support::run_tool("python3", &["--version"], None);
    assert!(ok, "python3 is required for www/cgi-bin/hello.py: {err}");
    let server = serve(CgiHttpHandler::new(&www).unwrap());
    let response = server.get("/cgi-bin/hello.py?name=Bob");
    assert_eq!(response.status, 200, "{}", response.text());
    assert!(
        response.text().contains("Hello, Bob!"),
        "{}",
        response.text()
    );
    assert_eq!(
        response.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    // Escaped, and from a POSTed form too.
    let response = curl(&[
        "--data-urlencode",
        "name=<Ada>",
        &server.url("/cgi-bin/hello.py"),
    ]);
    assert_eq!(response.status, 200);
    assert!(
        response.text().contains("Hello, &lt;Ada&gt;!"),
        "{}",
        response.text()
    );
    assert!(server
        .get("/cgi-bin/hello.py")
        .text()
        .contains("Hello, world!"));
}

#[test]
fn a_user_proved_by_basic_auth_is_remote_user() {
    let site = Site::new();
    let cgi = CgiHttpHandler::new(site.root())
        .unwrap()
        .time_limit(Duration::from_millis(500));
    let guarded = socketserver::http::BasicAuth::new(cgi, "scripts")
        .user("alice", "secret")
        .unwrap();
    let server = serve(guarded);
    // "alice:secret"
    let response = server
        .raw(b"GET /cgi-bin/env.sh HTTP/1.0\r\nAuthorization: Basic YWxpY2U6c2VjcmV0\r\n\r\n");
    assert_eq!(response.status, 200, "{}", response.text());
    let env = env_map(&response.text());
    assert_eq!(env.get("REMOTE_USER").map(String::as_str), Some("alice"));
    assert_eq!(env.get("AUTH_TYPE").map(String::as_str), Some("Basic"));
    assert_eq!(
        server.raw(b"GET /cgi-bin/env.sh HTTP/1.0\r\n\r\n").status,
        401
    );
}

#[test]
fn a_script_behind_tls_sees_https_on() {
    use socketserver::tls::{TlsConfig, TlsTransport};
    use socketserver::Server;

    let site = Site::new();
    let tls = TlsConfig::self_signed(&["localhost"]).unwrap();
    let pem = site.base.join("cert.pem");
    std::fs::write(&pem, tls.certificate_pem()).unwrap();
    let handler = CgiHttpHandler::new(site.root()).unwrap();
    let server =
        Server::<TlsTransport, _, socketserver::Threading>::builder("127.0.0.1:0", handler)
            .tls(tls)
            .build()
            .unwrap();
    let port = server.server_address().inet().unwrap().port();
    let server = std::sync::Arc::new(server);
    let serving = std::sync::Arc::clone(&server);
    let thread = std::thread::spawn(move || serving.serve_forever());
    let url = format!("https://localhost:{port}/cgi-bin/env.sh");
    let response = curl(&["--cacert", pem.to_str().unwrap(), &url]);
    server.shutdown();
    thread.join().unwrap().unwrap();
    assert_eq!(response.status, 200, "{}", response.text());
    let env = env_map(&response.text());
    assert_eq!(env.get("HTTPS").map(String::as_str), Some("on"), "{env:#?}");
    assert_eq!(env.get("REQUEST_SCHEME").map(String::as_str), Some("https"));
    assert_eq!(env.get("SERVER_PORT"), Some(&port.to_string()));
}
