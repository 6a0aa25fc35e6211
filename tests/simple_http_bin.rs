//! The installed `simple-http` binary (feature `cli`): serves the directory it is started
//! in, takes host names for `-b`, lists the URLs to open, and fails clearly on a name that
//! does not resolve.
#![cfg(feature = "cli")]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

use common::{connect, TempDir};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

const BINARY: &str = env!("CARGO_BIN_EXE_simple-http");

/// The running binary and the URLs of its banner.
struct Running {
    child: Child,
    urls: Vec<String>,
}

impl Running {
    fn start(dir: &TempDir, args: &[&str]) -> Running {
        Self::start_with_stderr(dir, args, Stdio::null())
    }

    /// [`Running::start`], its stderr going to `stderr`.
    fn start_with_stderr(dir: &TempDir, args: &[&str], stderr: impl Into<Stdio>) -> Running {
        let child = Command::new(BINARY)
            .args(args)
            .current_dir(dir.path())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("start simple-http");
        // Owned by `Running` from here, so that a failed assertion still stops it.
        let mut running = Running {
            child,
            urls: Vec::new(),
        };
        let mut stdout = BufReader::new(running.child.stdout.take().unwrap());
        let mut line = String::new();
        loop {
            line.clear();
            assert!(stdout.read_line(&mut line).unwrap() > 0, "no banner");
            if let Some(rest) = line.strip_prefix("Serving HTTP on ") {
                let inside = rest.split_once('(').unwrap().1.split_once(')').unwrap().0;
                running.urls = inside.split(' ').map(str::to_string).collect();
                return running;
            }
        }
    }

    /// `GET path` from the first URL of the banner.
    fn get(&self, path: &str) -> String {
        get_with(self, path, "")
    }

    /// The `host:port` of the first URL of the banner.
    fn host(&self) -> String {
        self.urls[0]
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
        let _ = self.child.wait();
    }
}

#[test]
fn serves_the_directory_it_is_started_in() {
    let dir = TempDir::new();
    dir.write("hello.txt", "from the current directory\n");
    let running = Running::start(&dir, &["0", "-b", "127.0.0.1"]);
    assert_eq!(running.urls.len(), 1, "{:?}", running.urls);
    assert!(
        running.urls[0].starts_with("http://127.0.0.1:"),
        "{:?}",
        running.urls
    );
    let response = running.get("/hello.txt");
    assert!(response.starts_with("HTTP/1.0 200 "), "{response}");
    assert!(
        response.ends_with("\r\n\r\nfrom the current directory\n"),
        "{response}"
    );
}

#[test]
fn binds_a_host_name() {
    let dir = TempDir::new();
    dir.write("a.txt", "a");
    let running = Running::start(&dir, &["0", "-b", "localhost"]);
    let url = &running.urls[0];
    assert!(
        url.starts_with("http://127.0.0.1:") || url.starts_with("http://[::1]:"),
        "{url}"
    );
    assert!(running.get("/a.txt").ends_with("\r\n\r\na"));
}

#[test]
fn every_interface_lists_the_loopback_url_first() {
    let dir = TempDir::new();
    let running = Running::start(&dir, &["0"]);
    assert!(
        running.urls[0].starts_with("http://127.0.0.1:"),
        "{:?}",
        running.urls
    );
    assert!(running.get("/").starts_with("HTTP/1.0 200 "));
}

#[test]
fn a_name_that_does_not_resolve_fails_with_its_name() {
    let dir = TempDir::new();
    let output = Command::new(BINARY)
        .args(["0", "-b", "no-such-host.invalid"])
        .current_dir(dir.path())
        .output()
        .expect("run simple-http");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no-such-host.invalid"), "{stderr}");
}

/// `GET path` from the first URL of the banner with `extra` header lines.
fn get_with(running: &Running, path: &str, extra: &str) -> String {
    let host = running.host();
    send(
        running,
        &format!("GET {path} HTTP/1.0\r\nHost: {host}\r\n{extra}\r\n"),
    )
}

#[test]
fn header_and_cache_control_flags_are_on_every_answer() {
    let dir = TempDir::new();
    dir.write("a.txt", "a");
    let running = Running::start(
        &dir,
        &[
            "0",
            "-b",
            "127.0.0.1",
            "-H",
            "X-Served-By: simple-http",
            "--header",
            "X-Frame-Options:DENY",
            "--cache-control",
            "max-age=60",
        ],
    );
    for path in ["/a.txt", "/missing"] {
        let response = running.get(path);
        assert!(
            response.contains("\r\nX-Served-By: simple-http\r\n"),
            "{response}"
        );
        assert!(
            response.contains("\r\nX-Frame-Options: DENY\r\n"),
            "{response}"
        );
        assert!(
            response.contains("\r\nCache-Control: max-age=60\r\n"),
            "{response}"
        );
    }
}

#[test]
fn a_header_flag_that_is_no_header_is_refused() {
    let dir = TempDir::new();
    for bad in ["NoColon", "Content-Length: 5", "X-Bad Name: v"] {
        let output = Command::new(BINARY)
            .args(["0", "-b", "127.0.0.1", "-H", bad])
            .current_dir(dir.path())
            .output()
            .expect("run simple-http");
        assert!(!output.status.success(), "{bad}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("simple-http: "), "{bad}: {stderr}");
    }
}

#[test]
fn cors_flag_answers_preflights() {
    let dir = TempDir::new();
    dir.write("a.txt", "a");
    let running = Running::start(&dir, &["0", "-b", "127.0.0.1", "--cors"]);
    let response = running.get("/a.txt");
    assert!(
        response.contains("\r\nAccess-Control-Allow-Origin: *\r\n"),
        "{response}"
    );
}

#[test]
fn auth_flags_require_a_login_or_only_for_writes() {
    let dir = TempDir::new();
    dir.write("a.txt", "a");
    // alice:secret (base64 "YWxpY2U6c2VjcmV0"); bob by the SHA-256 of "hunter2".
    let bob = "bob:sha256:f52fbd32b2b3b86ff88ef6c490628285f482af15ddcb29541f94bcf526a3f6c7";
    let running = Running::start(
        &dir,
        &[
            "0",
            "-b",
            "127.0.0.1",
            "--auth",
            "alice:secret",
            "--auth",
            bob,
        ],
    );
    let refused = running.get("/a.txt");
    assert!(refused.starts_with("HTTP/1.0 401 "), "{refused}");
    assert!(
        refused.contains("WWW-Authenticate: Basic realm=\"simple-http\""),
        "{refused}"
    );
    let alice = get_with(
        &running,
        "/a.txt",
        "Authorization: Basic YWxpY2U6c2VjcmV0\r\n",
    );
    assert!(alice.starts_with("HTTP/1.0 200 "), "{alice}");
    let bob = get_with(
        &running,
        "/a.txt",
        "Authorization: Basic Ym9iOmh1bnRlcjI=\r\n",
    );
    assert!(bob.starts_with("HTTP/1.0 200 "), "{bob}");
    drop(running);
    let open_reads = Running::start(
        &dir,
        &[
            "0",
            "-b",
            "127.0.0.1",
            "--auth",
            "alice:secret",
            "--auth-writes-only",
        ],
    );
    assert!(open_reads.get("/a.txt").starts_with("HTTP/1.0 200 "));
}

#[test]
fn json_log_format_writes_one_object_per_request() {
    let dir = TempDir::new();
    dir.write("a.txt", "abc");
    let log = dir.path().join("stderr.log");
    let args = ["0", "-b", "127.0.0.1", "--log-format", "json"];
    let running = Running::start_with_stderr(&dir, &args, std::fs::File::create(&log).unwrap());
    let response = get_with(&running, "/a.txt", "User-Agent: tester\r\n");
    assert!(response.ends_with("abc"), "{response}");
    drop(running); // SIGTERM, then wait: the log is complete.
    let text = std::fs::read_to_string(&log).unwrap();
    let access = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["request"] == "GET /a.txt HTTP/1.0")
        .unwrap_or_else(|| panic!("no JSON access line in {text:?}"));
    assert_eq!(access["status"], 200);
    assert_eq!(access["bytes"], 3);
    assert_eq!(access["remote"], "127.0.0.1");
    assert_eq!(access["user_agent"], "tester");
    assert_eq!(access["referer"], serde_json::Value::Null);
    assert!(access["seconds"].as_f64().is_some(), "{access}");
    assert!(
        access["time"]
            .as_str()
            .is_some_and(|t| t.ends_with("+0000")),
        "{access}"
    );
}

/// `request` (head and body) to the first URL of the banner; the whole answer.
fn send(running: &Running, request: &str) -> String {
    let address: SocketAddr = running.host().parse().expect("an address in the URL");
    let mut client = connect(address);
    client.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    client.read_to_string(&mut response).unwrap();
    response
}

#[test]
fn upload_flags_accept_files_and_replace_only_with_overwrite() {
    let dir = TempDir::new();
    let put = "PUT /new.txt HTTP/1.0\r\nContent-Length: 5\r\n\r\nhello";
    let closed = Running::start(&dir, &["0", "-b", "127.0.0.1"]);
    let refused = send(&closed, put);
    assert!(refused.starts_with("HTTP/1.0 405 "), "{refused}");
    assert!(refused.contains("\r\nAllow: "), "{refused}");
    drop(closed);
    let open = Running::start(&dir, &["0", "-b", "127.0.0.1", "--upload"]);
    let created = send(&open, put);
    assert!(created.starts_with("HTTP/1.0 201 "), "{created}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("new.txt")).unwrap(),
        "hello"
    );
    let again = send(&open, put);
    assert!(again.starts_with("HTTP/1.0 409 "), "{again}");
    drop(open);
    let replacing = Running::start(&dir, &["0", "-b", "127.0.0.1", "--upload", "--overwrite"]);
    let replace = "PUT /new.txt HTTP/1.0\r\nContent-Length: 3\r\n\r\nbye";
    let replaced = send(&replacing, replace);
    assert!(replaced.starts_with("HTTP/1.0 204 "), "{replaced}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("new.txt")).unwrap(),
        "bye"
    );
}

#[test]
fn listing_flags_hide_or_show_dotfiles_and_listings() {
    let dir = TempDir::new();
    dir.write(".env", "SECRET=1");
    dir.write("sub/file.txt", "f");
    let plain = Running::start(&dir, &["0", "-b", "127.0.0.1"]);
    assert!(plain.get("/.env").starts_with("HTTP/1.0 404 "));
    let listing = plain.get("/sub/");
    assert!(
        listing.starts_with("HTTP/1.0 200 ") && listing.contains("file.txt"),
        "{listing}"
    );
    drop(plain);
    let shown = Running::start(&dir, &["0", "-b", "127.0.0.1", "--hidden", "--no-listing"]);
    assert!(shown.get("/.env").ends_with("SECRET=1"));
    assert!(shown.get("/sub/").starts_with("HTTP/1.0 404 "));
    assert!(shown.get("/sub/file.txt").ends_with("\r\n\r\nf"));
}

#[test]
fn spa_and_404_flags_answer_what_names_nothing() {
    let dir = TempDir::new();
    dir.write("index.html", "<p>the app</p>");
    dir.write("app.js", "js");
    let pages = TempDir::new();
    let missing = pages.write("missing.html", "<p>no such page</p>");
    let spa = Running::start(&dir, &["0", "-b", "127.0.0.1", "--spa"]);
    let route = spa.get("/users/42/settings");
    assert!(route.starts_with("HTTP/1.0 200 "), "{route}");
    assert!(route.ends_with("<p>the app</p>"), "{route}");
    assert!(spa.get("/app.js").ends_with("\r\n\r\njs"));
    drop(spa);
    let custom = Running::start(
        &dir,
        &["0", "-b", "127.0.0.1", "--404", missing.to_str().unwrap()],
    );
    let answer = custom.get("/nothing-here");
    assert!(answer.starts_with("HTTP/1.0 404 "), "{answer}");
    assert!(answer.contains("Content-Type: text/html"), "{answer}");
    assert!(answer.ends_with("<p>no such page</p>"), "{answer}");
    let output = Command::new(BINARY)
        .args(["0", "-b", "127.0.0.1", "--404", "/no/such/page.html"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("/no/such/page.html"));
}

#[test]
fn protocol_keep_alive_body_limit_and_threading_flags_hold() {
    let dir = TempDir::new();
    dir.write("a.txt", "a");
    for mode in [&[][..], &["--threading"][..]] {
        let mut args = vec![
            "0",
            "-b",
            "127.0.0.1",
            "-p",
            "HTTP/1.1",
            "--keep-alive",
            "30",
        ];
        args.extend_from_slice(&["--max-body", "10"]);
        args.extend_from_slice(mode);
        let running = Running::start(&dir, &args);
        // HTTP/1.1 keeps the connection: two answers on one.
        let both = send(
            &running,
            "GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\nGET /a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        assert_eq!(
            both.matches("HTTP/1.1 200 OK").count(),
            2,
            "{mode:?}: {both}"
        );
        // Over --max-body: 413.
        let big = send(
            &running,
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n\
             Content-Length: 11\r\nConnection: close\r\n\r\na=123456789",
        );
        assert!(big.starts_with("HTTP/1.1 413 "), "{mode:?}: {big}");
    }
}

/// `GET path` with `Accept-Encoding: gzip`: the head as text, and the body's bytes.
fn get_gzip(running: &Running, path: &str) -> (String, Vec<u8>) {
    let host = running.urls[0]
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let mut client = connect(host.parse().unwrap());
    write!(
        client,
        "GET {path} HTTP/1.0\r\nHost: {host}\r\nAccept-Encoding: gzip\r\n\r\n"
    )
    .unwrap();
    let mut response = Vec::new();
    client.read_to_end(&mut response).unwrap();
    let end = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head")
        + 4;
    let body = response.split_off(end);
    (String::from_utf8_lossy(&response).into_owned(), body)
}

#[test]
fn compresses_by_default_and_not_with_no_compress() {
    let dir = TempDir::new();
    let text = "a line of text that repeats\n".repeat(200);
    dir.write("page.txt", &text);
    let on = Running::start(&dir, &["0", "-b", "127.0.0.1"]);
    let (head, body) = get_gzip(&on, "/page.txt");
    assert!(head.starts_with("HTTP/1.0 200 "), "{head}");
    assert!(head.contains("\r\nContent-Encoding: gzip\r\n"), "{head}");
    assert!(head.contains("\r\nVary: Accept-Encoding\r\n"), "{head}");
    let mut decoded = String::new();
    flate2::read::GzDecoder::new(&body[..])
        .read_to_string(&mut decoded)
        .expect("a gzip body");
    assert_eq!(decoded, text);
    drop(on);
    let off = Running::start(&dir, &["0", "-b", "127.0.0.1", "--no-compress"]);
    let (head, body) = get_gzip(&off, "/page.txt");
    assert!(head.starts_with("HTTP/1.0 200 "), "{head}");
    assert!(!head.contains("Content-Encoding"), "{head}");
    assert!(!head.contains("Vary"), "{head}");
    assert_eq!(body, text.as_bytes());
}

// ---------------------------------------------------------------------------------------
// HTTPS: --tls-cert, --tls-key, --tls-password-file, --tls-self-signed, and SIGHUP.
// Certificates are made by `openssl` in temporary directories.

/// Runs `openssl args` in `dir`; panics with its stderr if it fails.
fn openssl(dir: &TempDir, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .output()
        .expect("run openssl");
    assert!(
        output.status.success(),
        "openssl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A self-signed ECDSA certificate for localhost and 127.0.0.1: `name.crt` and `name.key`.
fn tls_pair(dir: &TempDir, name: &str) -> (String, String) {
    let cert = dir.join(&format!("{name}.crt")).display().to_string();
    let key = dir.join(&format!("{name}.key")).display().to_string();
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-nodes",
            "-days",
            "2",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-keyout",
            &key,
            "-out",
            &cert,
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
    );
    (cert, key)
}

/// The binary serving HTTPS: its banner's URLs, and the lines it printed before the banner.
fn start_https(dir: &TempDir, args: &[&str]) -> (Running, Vec<String>) {
    let child = Command::new(BINARY)
        .args(args)
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start simple-http");
    let mut running = Running {
        child,
        urls: Vec::new(),
    };
    let mut stdout = BufReader::new(running.child.stdout.take().unwrap());
    let mut before = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "no HTTPS banner after {before:?}"
        );
        if let Some(rest) = line.strip_prefix("Serving HTTPS on ") {
            let inside = rest.split_once('(').unwrap().1.split_once(')').unwrap().0;
            running.urls = inside.split(' ').map(str::to_string).collect();
            before.push(line.trim_end().to_string());
            return (running, before);
        }
        before.push(line.trim_end().to_string());
    }
}

/// `curl --cacert CA URL`: the body, or curl's complaint.
fn curl_https(cacert: &str, url: &str) -> Result<String, String> {
    let output = Command::new("curl")
        .args(["--silent", "--show-error", "--max-time", "10"])
        .args(["--cacert", cacert, url])
        .stdin(Stdio::null())
        .output()
        .expect("run curl");
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

/// The SHA-256 of a certificate (the first in `pem`), as `AB:CD:...`.
fn pem_fingerprint(pem: &str) -> String {
    use rustls_pki_types::pem::PemObject;
    use sha2::Digest;
    let der = rustls_pki_types::CertificateDer::from_pem_slice(pem.as_bytes())
        .unwrap_or_else(|e| panic!("no certificate in {pem:?}: {e}"));
    let hex: Vec<String> = sha2::Sha256::digest(der.as_ref())
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    hex.join(":")
}

/// The fingerprint of the certificate a new connection to `host` (`ip:port`) is shown.
fn served_fingerprint(host: &str) -> String {
    try_served_fingerprint(host).unwrap_or_else(|text| panic!("no certificate from {host}: {text}"))
}

/// As [`served_fingerprint`]; what `openssl s_client` said if it got no certificate.
fn try_served_fingerprint(host: &str) -> Result<String, String> {
    let output = Command::new("openssl")
        .args(["s_client", "-connect", host, "-servername", "localhost"])
        .stdin(Stdio::null())
        .output()
        .expect("run openssl s_client");
    let text = String::from_utf8_lossy(&output.stdout);
    match text.find("-----BEGIN CERTIFICATE-----") {
        Some(begin) => Ok(pem_fingerprint(&text[begin..])),
        None => Err(format!("{text}{}", String::from_utf8_lossy(&output.stderr))),
    }
}

fn file_fingerprint(path: &str) -> String {
    pem_fingerprint(&std::fs::read_to_string(path).unwrap())
}

/// The `ip:port` of an https:// URL.
fn https_host(url: &str) -> String {
    url.trim_start_matches("https://")
        .trim_end_matches('/')
        .to_string()
}

#[test]
fn tls_cert_and_key_serve_https() {
    let dir = TempDir::new();
    dir.write("hello.txt", "over TLS\n");
    let certs = TempDir::new();
    let (cert, key) = tls_pair(&certs, "server");
    let (running, lines) = start_https(
        &dir,
        &[
            "0",
            "-b",
            "127.0.0.1",
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
        ],
    );
    let url = &running.urls[0];
    let port = url
        .trim_start_matches("https://127.0.0.1:")
        .trim_end_matches('/');
    assert_eq!(
        lines.last().unwrap(),
        &format!("Serving HTTPS on 127.0.0.1 port {port} (https://127.0.0.1:{port}/) ..."),
        "{lines:?}"
    );
    assert_eq!(
        curl_https(&cert, &format!("{url}hello.txt")).as_deref(),
        Ok("over TLS\n")
    );
    assert_eq!(
        served_fingerprint(&https_host(url)),
        file_fingerprint(&cert)
    );
    drop(running);

    // One file holding both: --tls-key may be left out.
    let both = certs.write(
        "both.pem",
        std::fs::read_to_string(&cert).unwrap() + &std::fs::read_to_string(&key).unwrap(),
    );
    let both = both.display().to_string();
    let (running, _) = start_https(&dir, &["0", "-b", "127.0.0.1", "--tls-cert", &both]);
    let url = &running.urls[0];
    assert_eq!(
        curl_https(&cert, &format!("{url}hello.txt")).as_deref(),
        Ok("over TLS\n")
    );
}

#[test]
fn tls_password_file_unlocks_an_encrypted_key() {
    let dir = TempDir::new();
    dir.write("hello.txt", "locked\n");
    let certs = TempDir::new();
    let key = certs.join("locked.key").display().to_string();
    let cert = certs.join("locked.crt").display().to_string();
    openssl(
        &certs,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-aes256",
            "-pass",
            "pass:correct horse",
            "-out",
            &key,
        ],
    );
    openssl(
        &certs,
        &[
            "req",
            "-x509",
            "-days",
            "2",
            "-key",
            &key,
            "-passin",
            "pass:correct horse",
            "-out",
            &cert,
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
    );
    // The file's line end is not part of the password.
    let password = certs.write("password.txt", "correct horse\n");
    let password = password.display().to_string();
    let tls = ["--tls-cert", &cert, "--tls-key", &key];
    let mut args = vec!["0", "-b", "127.0.0.1"];
    args.extend_from_slice(&tls);
    args.extend_from_slice(&["--tls-password-file", &password]);
    let (running, _) = start_https(&dir, &args);
    let url = &running.urls[0];
    assert_eq!(
        curl_https(&cert, &format!("{url}hello.txt")).as_deref(),
        Ok("locked\n")
    );
    drop(running);

    let wrong = certs.write("wrong.txt", "battery staple\n");
    let wrong = wrong.display().to_string();
    for (extra, expected) in [
        (
            vec!["--tls-password-file", wrong.as_str()],
            "wrong password",
        ),
        (vec![], "--tls-password-file"),
    ] {
        let mut args = vec!["0", "-b", "127.0.0.1"];
        args.extend_from_slice(&tls);
        args.extend_from_slice(&extra);
        let output = Command::new(BINARY)
            .args(&args)
            .current_dir(dir.path())
            .output()
            .expect("run simple-http");
        assert!(!output.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}

#[test]
fn tls_self_signed_prints_the_fingerprint_it_serves() {
    let dir = TempDir::new();
    dir.write("hello.txt", "self-signed\n");
    let (running, lines) = start_https(&dir, &["0", "-b", "127.0.0.1", "--tls-self-signed"]);
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("Self-signed certificate for ") && l.contains("127.0.0.1")),
        "{lines:?}"
    );
    let printed = lines
        .iter()
        .find_map(|l| l.strip_prefix("  SHA-256 fingerprint "))
        .unwrap_or_else(|| panic!("no fingerprint in {lines:?}"))
        .to_string();
    let pem = lines
        .iter()
        .find_map(|l| {
            l.strip_prefix("  PEM in ")?
                .strip_suffix(" (curl --cacert it)")
        })
        .unwrap_or_else(|| panic!("no PEM path in {lines:?}"))
        .to_string();
    let url = running.urls[0].clone();
    let served = served_fingerprint(&https_host(&url));
    let in_file = file_fingerprint(&pem);
    let fetched = curl_https(&pem, &format!("{url}hello.txt"));
    assert!(std::path::Path::new(&pem).exists());
    drop(running);
    let left_behind = std::path::Path::new(&pem).exists();
    let _ = std::fs::remove_file(&pem);
    assert!(!left_behind, "{pem} outlived the server");
    assert!(
        std::path::Path::new(&pem)
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("simple-http-") && n.ends_with(".pem")),
        "{pem}"
    );
    assert_eq!(served, printed, "the certificate served is the one printed");
    assert_eq!(
        in_file, printed,
        "the PEM file holds the certificate printed"
    );
    assert_eq!(
        fetched.as_deref(),
        Ok("self-signed\n"),
        "curl --cacert {pem}"
    );
}

#[test]
fn sighup_reloads_the_certificate_files() {
    let dir = TempDir::new();
    dir.write("hello.txt", "reloaded\n");
    let certs = TempDir::new();
    let (a_cert, a_key) = tls_pair(&certs, "a");
    let (b_cert, b_key) = tls_pair(&certs, "b");
    let served_cert = certs.write("served.crt", std::fs::read(&a_cert).unwrap());
    let served_key = certs.write("served.key", std::fs::read(&a_key).unwrap());
    let (mut running, _) = start_https(
        &dir,
        &[
            "0",
            "-b",
            "127.0.0.1",
            "--tls-cert",
            served_cert.to_str().unwrap(),
            "--tls-key",
            served_key.to_str().unwrap(),
        ],
    );
    let host = https_host(&running.urls[0]);
    let (a, b) = (file_fingerprint(&a_cert), file_fingerprint(&b_cert));
    assert_eq!(served_fingerprint(&host), a);
    std::fs::write(&served_cert, std::fs::read(&b_cert).unwrap()).unwrap();
    std::fs::write(&served_key, std::fs::read(&b_key).unwrap()).unwrap();
    kill(Pid::from_raw(running.child.id() as i32), Signal::SIGHUP).unwrap();
    // Until a new connection sees B, or the process is gone, or 10 s have passed.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let seen = loop {
        let seen = try_served_fingerprint(&host);
        let exited = running.child.try_wait().unwrap();
        if let Some(status) = exited {
            panic!("simple-http exited on SIGHUP ({status}) instead of reloading");
        }
        if seen.as_ref() == Ok(&b) || std::time::Instant::now() >= deadline {
            break seen;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert_eq!(seen, Ok(b), "a new connection after SIGHUP (A was {a})");
    let url = format!("{}hello.txt", running.urls[0]);
    assert_eq!(curl_https(&b_cert, &url).as_deref(), Ok("reloaded\n"));
}
