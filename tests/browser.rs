//! End to end in a real browser: headless Chromium, driven through chromedriver's WebDriver
//! API, loads the shipped site from `SimpleHttpHandler`, checks that the page rendered (text,
//! stylesheet, image), submits the form and reads the decoded answer. Over HTTPS, on every
//! server mode, Chromium trusts a self-signed certificate by its public key
//! (`--ignore-certificate-errors-spki-list`, computed with `openssl`), and the page is a
//! secure context; without that flag it refuses the certificate.
//!
//! `.ci/run` installs Debian's `chromium` and `chromium-driver`. Where they are missing the
//! test says so and passes, except under CI (`CI` set), where it fails.

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use socketserver::files::SimpleHttpHandler;
use socketserver::http::ThreadingHttpServer;
use socketserver::server::Server;
use socketserver::tls::{TlsConfig, TlsTransport};
use socketserver::{Concurrency, EventLoop, ThreadPool, Threading};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

fn browser_available() -> bool {
    let present = Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists();
    if !present {
        assert!(
            std::env::var_os("CI").is_none(),
            "chromium and chromedriver are required under CI (apt-get install chromium chromium-driver)"
        );
        eprintln!("skipping the browser test: install chromium and chromium-driver to run it");
    }
    present
}

/// A free port for chromedriver, which cannot be told to pick one itself.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

struct Driver {
    process: Child,
    base: String,
    session: Option<String>,
}

impl Driver {
    fn start() -> Driver {
        let port = free_port();
        let process = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let driver = Driver {
            process,
            base: format!("http://127.0.0.1:{port}"),
            session: None,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(status) = driver.call("GET", "/status", None) {
                if status["value"]["ready"] == json!(true) {
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not become ready"
            );
            thread::sleep(Duration::from_millis(50));
        }
        driver
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        let url = format!("{}{path}", self.base);
        let response = match (method, body) {
            ("GET", _) => agent.get(&url).call(),
            ("DELETE", _) => agent.delete(&url).call(),
            (_, body) => agent
                .post(&url)
                .send_json(body.unwrap_or_else(|| json!({}))),
        };
        let mut response = response.map_err(|e| e.to_string())?;
        let status = response.status();
        let value: Value = response.body_mut().read_json().map_err(|e| e.to_string())?;
        if status.is_success() {
            Ok(value)
        } else {
            Err(format!("{method} {path}: {status} {value}"))
        }
    }

    fn session_call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let session = self.session.as_ref().expect("a session");
        self.call(method, &format!("/session/{session}{path}"), body)
            .unwrap_or_else(|e| panic!("{e}"))["value"]
            .take()
    }

    /// A browser with a profile of its own in `profile`, and `extra` flags.
    fn open_session(&mut self, profile: &Path, extra: &[String]) {
        let mut args = vec![
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1024,768",
        ]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
        args.push(format!("--user-data-dir={}", profile.display()));
        args.extend_from_slice(extra);
        let capabilities = json!({
            "capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {"binary": CHROMIUM, "args": args}
            }}
        });
        let session = self
            .call("POST", "/session", Some(capabilities))
            .unwrap_or_else(|e| panic!("{e}"));
        self.session = Some(
            session["value"]["sessionId"]
                .as_str()
                .expect("a session id")
                .to_string(),
        );
    }

    fn navigate(&self, url: &str) {
        self.session_call("POST", "/url", Some(json!({"url": url})));
    }

    /// Navigates, and returns WebDriver's error instead of panicking on it.
    fn try_navigate(&self, url: &str) -> Result<Value, String> {
        let session = self.session.as_ref().expect("a session");
        self.call(
            "POST",
            &format!("/session/{session}/url"),
            Some(json!({"url": url})),
        )
    }

    fn script(&self, script: &str) -> Value {
        self.session_call(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
    }

    fn element(&self, css: &str) -> String {
        let found = self.session_call(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        );
        found
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no element {css}"))
            .to_string()
    }

    fn text(&self, css: &str) -> String {
        let id = self.element(css);
        self.session_call("GET", &format!("/element/{id}/text"), None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Polls `script` until it returns true, for page loads after a click.
    fn wait_for(&self, script: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.script(script) != json!(true) {
            assert!(Instant::now() < deadline, "timed out waiting for: {script}");
            thread::sleep(Duration::from_millis(50));
        }
    }

    fn screenshot(&self, path: &Path) {
        let data = self.session_call("GET", "/screenshot", None);
        let png = decode_base64(data.as_str().expect("base64 PNG"));
        assert!(png.starts_with(b"\x89PNG"), "the screenshot is a PNG");
        std::fs::File::create(path)
            .and_then(|mut f| f.write_all(&png))
            .expect("save the screenshot");
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if let Some(session) = self.session.take() {
            let _ = self.call("DELETE", &format!("/session/{session}"), None);
        }
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

fn decode_base64(text: &str) -> Vec<u8> {
    let value = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => (c - b'A') as u32,
            b'a'..=b'z' => (c - b'a' + 26) as u32,
            b'0'..=b'9' => (c - b'0' + 52) as u32,
            b'+' => 62,
            b'/' => 63,
            _ => 0,
        }
    };
    let bytes: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &c)| acc | value(c) << (18 - 6 * i));
        let real = chunk.iter().filter(|&&c| c != b'=').count();
        out.extend_from_slice(&n.to_be_bytes()[1..real.max(1)]);
    }
    out
}

#[test]
fn the_shipped_site_renders_and_its_form_is_answered() {
    if !browser_available() {
        return;
    }
    let www = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("www");
    let server = Arc::new(
        ThreadingHttpServer::bind("127.0.0.1:0", SimpleHttpHandler::new(&www).unwrap()).unwrap(),
    );
    let port = server.server_address().port().unwrap();
    let serving = Arc::clone(&server);
    let loop_thread = thread::spawn(move || serving.serve_forever());

    let profile =
        std::env::temp_dir().join(format!("socketserver-chromium-{}", std::process::id()));
    let mut driver = Driver::start();
    driver.open_session(&profile, &[]);
    let site = format!("http://127.0.0.1:{port}");

    driver.navigate(&format!("{site}/"));
    assert_eq!(driver.text("h1"), "It works!");
    // The stylesheet applied: the heading has the accent colour from style.css.
    assert_eq!(
        driver.script("return getComputedStyle(document.querySelector('h1')).color;"),
        json!("rgb(194, 65, 12)")
    );
    // The image loaded and decoded.
    driver.wait_for("return document.getElementById('logo').complete;");
    assert!(
        driver
            .script("return document.getElementById('logo').naturalWidth;")
            .as_u64()
            > Some(0),
        "the logo did not load"
    );
    let shot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browser-index.png");
    driver.screenshot(&shot);

    // Submit the form as a user would: click the button.
    let send = driver.element("#send");
    driver.session_call("POST", &format!("/element/{send}/click"), None);
    driver.wait_for("return document.title === 'Form received';");
    assert_eq!(driver.text("h1"), "Form received");
    let fields = driver.text("#fields");
    assert!(fields.contains("Ada Lovelace"), "{fields}");
    assert!(fields.contains("Hello & welcome, 世界!"), "{fields}");

    // A directory without an index page is listed.
    driver.navigate(&format!("{site}/docs"));
    driver.wait_for("return document.title.startsWith('Directory listing for /docs/');");
    assert!(driver.text("table").contains("notes.txt"));

    drop(driver);
    let _ = std::fs::remove_dir_all(&profile);
    server.shutdown();
    loop_thread.join().unwrap().unwrap();
}

#[test]
fn a_file_uploaded_through_the_listing_page_comes_back_whole() {
    if !browser_available() {
        return;
    }
    let served = std::env::temp_dir().join(format!("socketserver-upload-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&served);
    std::fs::create_dir_all(served.join("photos")).unwrap();
    std::fs::write(served.join("README.txt"), "files for the listing\n").unwrap();
    std::fs::write(served.join("notes.md"), "# notes\n".repeat(200)).unwrap();
    let outside = std::env::temp_dir().join(format!("socketserver-pick-{}", std::process::id()));
    std::fs::create_dir_all(&outside).unwrap();
    let picked = outside.join("upload me.txt");
    let contents = "uploaded through the page: é, 世界, and a tab\tin it\n".repeat(50);
    std::fs::write(&picked, &contents).unwrap();

    let files = SimpleHttpHandler::new(&served)
        .unwrap()
        .uploads(socketserver::files::Uploads::new());
    let server = Arc::new(ThreadingHttpServer::bind("127.0.0.1:0", files).unwrap());
    let port = server.server_address().port().unwrap();
    let serving = Arc::clone(&server);
    let loop_thread = thread::spawn(move || serving.serve_forever());

    let profile =
        std::env::temp_dir().join(format!("socketserver-chromium-up-{}", std::process::id()));
    let mut driver = Driver::start();
    driver.open_session(&profile, &[]);
    let site = format!("http://127.0.0.1:{port}");
    driver.navigate(&format!("{site}/"));
    driver.wait_for("return document.title.startsWith('Directory listing for /');");
    // Choose the file as a user would, then press the button.
    let input = driver.element("form.upload input[type=file]");
    driver.session_call(
        "POST",
        &format!("/element/{input}/value"),
        Some(json!({"text": picked.to_str().unwrap()})),
    );
    let button = driver.element("form.upload button");
    driver.session_call("POST", &format!("/element/{button}/click"), None);
    // The server sends the browser back to the listing, which now lists the file.
    driver.wait_for(
        "return document.querySelector('table') !== null && \
         document.querySelector('table').innerText.includes('upload me.txt');",
    );
    let shot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browser-listing.png");
    driver.screenshot(&shot);
    assert_eq!(
        std::fs::read_to_string(served.join("upload me.txt")).unwrap(),
        contents
    );
    // Download it back through the link on the page.
    let href = driver.script(
        "return [...document.querySelectorAll('td.name a')]\
         .find(a => a.textContent === 'upload me.txt').href;",
    );
    let href = href.as_str().expect("a link to the upload").to_string();
    assert!(href.ends_with("/upload%20me.txt"), "{href}");
    let downloaded = ureq::get(&href)
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    assert_eq!(downloaded, contents);

    drop(driver);
    let _ = std::fs::remove_dir_all(&profile);
    let _ = std::fs::remove_dir_all(&served);
    let _ = std::fs::remove_dir_all(&outside);
    server.shutdown();
    loop_thread.join().unwrap().unwrap();
}

/// The base64 SHA-256 of the SubjectPublicKeyInfo of the certificate in `pem`: what
/// `--ignore-certificate-errors-spki-list` takes. Computed by openssl, as a user would.
fn spki_sha256(pem: &str) -> String {
    let mut openssl = Command::new("bash")
        .args([
            "-c",
            "set -o pipefail; openssl x509 -pubkey -noout | openssl pkey -pubin -outform der \
             | openssl dgst -sha256 -binary | base64",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run openssl");
    openssl
        .stdin
        .take()
        .unwrap()
        .write_all(pem.as_bytes())
        .unwrap();
    let output = openssl.wait_with_output().unwrap();
    assert!(output.status.success(), "openssl: {:?}", output.status);
    let spki = String::from_utf8(output.stdout).unwrap().trim().to_string();
    assert_eq!(
        decode_base64(&spki).len(),
        32,
        "a SHA-256 in base64: {spki}"
    );
    spki
}

/// An HTTPS file server on 127.0.0.1 with one concurrency strategy, stopped on drop.
struct TlsSite {
    strategy: &'static str,
    port: u16,
    stop: Option<Box<dyn FnOnce()>>,
}

impl TlsSite {
    fn start<C>(strategy: &'static str, concurrency: C, dir: &Path, tls: TlsConfig) -> TlsSite
    where
        C: Concurrency + Send + Sync + 'static,
    {
        let files = SimpleHttpHandler::new(dir).unwrap();
        let server =
            Server::<TlsTransport, SimpleHttpHandler, Threading>::builder("127.0.0.1:0", files)
                .concurrency(concurrency)
                .tls(tls)
                .build()
                .unwrap();
        let port = server.server_address().port().unwrap();
        let server = Arc::new(server);
        let serving = Arc::clone(&server);
        let loop_thread = thread::spawn(move || serving.serve_forever());
        TlsSite {
            strategy,
            port,
            stop: Some(Box::new(move || {
                server.shutdown();
                loop_thread.join().unwrap().unwrap();
            })),
        }
    }
}

impl Drop for TlsSite {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            stop();
        }
    }
}

/// The name the pages are loaded at: not `localhost` nor a loopback address, which Chromium
/// counts as secure even over plain HTTP, but a LAN-like name (`.test` is reserved, RFC
/// 6761) that the browser is told resolves to 127.0.0.1.
const LAN_NAME: &str = "lan.test";

fn resolve_lan_name() -> String {
    format!("--host-resolver-rules=MAP {LAN_NAME} 127.0.0.1")
}

#[test]
fn over_https_chromium_trusts_the_certificate_by_its_key_and_the_page_is_a_secure_context() {
    if !browser_available() {
        return;
    }
    let served = std::env::temp_dir().join(format!("socketserver-https-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&served);
    std::fs::create_dir_all(&served).unwrap();
    std::fs::write(
        served.join("index.html"),
        "<!doctype html><title>Over TLS</title><h1>Served over TLS</h1>\n",
    )
    .unwrap();
    let tls = TlsConfig::self_signed(&[LAN_NAME, "127.0.0.1", "localhost"]).unwrap();
    let spki = spki_sha256(&tls.certificate_pem());
    let sites = [
        TlsSite::start(
            "EventLoop::new(0)",
            EventLoop::new(0).unwrap(),
            &served,
            tls.clone(),
        ),
        TlsSite::start(
            "EventLoop::new(4)",
            EventLoop::new(4).unwrap(),
            &served,
            tls.clone(),
        ),
        TlsSite::start(
            "ThreadPool::new(4, 16)",
            ThreadPool::new(4, 16),
            &served,
            tls.clone(),
        ),
        TlsSite::start(
            "Threading",
            Threading::new().daemon_threads(true),
            &served,
            tls.clone(),
        ),
    ];

    // Trusted by the SHA-256 of its public key: the page loads and is a secure context.
    let profile =
        std::env::temp_dir().join(format!("socketserver-chromium-tls-{}", std::process::id()));
    let mut driver = Driver::start();
    driver.open_session(
        &profile,
        &[
            format!("--ignore-certificate-errors-spki-list={spki}"),
            resolve_lan_name(),
        ],
    );
    for site in &sites {
        let strategy = site.strategy;
        driver.navigate(&format!("https://{LAN_NAME}:{}/", site.port));
        assert_eq!(driver.text("h1"), "Served over TLS", "{strategy}");
        assert_eq!(
            driver.script("return location.protocol;"),
            json!("https:"),
            "{strategy}"
        );
        assert_eq!(
            driver.script("return window.isSecureContext;"),
            json!(true),
            "{strategy}"
        );
    }
    let shot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browser-https.png");
    driver.screenshot(&shot);
    // The same name over plain HTTP is no secure context: what TLS brings. (The TLS port
    // answers a plaintext request with a 400 in the clear.)
    driver.navigate(&format!("http://{LAN_NAME}:{}/", sites[0].port));
    assert_eq!(driver.script("return location.protocol;"), json!("http:"));
    assert_eq!(
        driver.script("return window.isSecureContext;"),
        json!(false)
    );
    drop(driver);
    let _ = std::fs::remove_dir_all(&profile);

    // Without the flag the certificate is nobody's: Chromium refuses the page.
    let profile = std::env::temp_dir().join(format!(
        "socketserver-chromium-notls-{}",
        std::process::id()
    ));
    let mut driver = Driver::start();
    driver.open_session(&profile, &[resolve_lan_name()]);
    for site in &sites {
        let strategy = site.strategy;
        // chromedriver either answers "insecure certificate" or, as Chromium 156's does,
        // navigates to the interstitial: the error page, not the server's.
        match driver.try_navigate(&format!("https://{LAN_NAME}:{}/", site.port)) {
            Err(err) => assert!(err.contains("insecure certificate"), "{strategy}: {err}"),
            Ok(_) => {
                let url = driver.script("return document.URL;");
                assert!(
                    url.as_str()
                        .unwrap_or_default()
                        .starts_with("chrome-error://"),
                    "{strategy}: {url}"
                );
            }
        }
        let shown = driver.script("return document.body ? document.body.innerText : '';");
        let shown = shown.as_str().unwrap_or_default();
        assert!(!shown.contains("Served over TLS"), "{strategy}: {shown}");
        assert!(
            shown.contains("ERR_CERT_AUTHORITY_INVALID"),
            "{strategy}: {shown}"
        );
    }
    drop(driver);
    let _ = std::fs::remove_dir_all(&profile);
    drop(sites);
    let _ = std::fs::remove_dir_all(&served);
}
