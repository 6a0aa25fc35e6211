//! Support for the TLS suite (`tests/tls.rs`): certificates made with the `openssl` command
//! in a temporary directory (nothing is committed), a TLS server rig on every strategy that
//! knows what "healthy" means (the idle and descriptor checks of `tests/faults_support`, and
//! a GET over TLS), an in-process rustls client that can stall, hang up or reset, and
//! wrappers for the outside clients (curl, python3, openssl s_client).
//!
//! The rig's health check and the raw client pin the server's certificate by its bytes: a
//! handshake that succeeds has seen that very certificate, whatever its extensions.
#![allow(dead_code)]

use std::collections::HashMap;
use std::fs;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, OnceLock, PoisonError, RwLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{ring, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};
use socket2::{Domain, SockRef, Socket, Type};
use socketserver::files::SimpleHttpHandler;
use socketserver::http::{Configured, HttpHandler, HttpRequest, Limits, Version};
use socketserver::tls::{TlsConfig, TlsTransport};
use socketserver::{HandlerResult, RequestHandler, Server, StreamRequest, StreamSocket};

use crate::faults_support::{
    assert_idle, check_bytes, fd_count, poll_until, CpuClock, Site, Strategy, TempDir,
    TestConcurrency, KIB, SMALL, SMALL_BODY, WAIT,
};

// ---------------------------------------------------------------------------------------
// Serialization

/// Fault cases measure the whole process (CPU time, descriptors): they take this lock for
/// writing and run alone. The other cases only talk to their own server: they take it for
/// reading and run side by side.
static LOCK: RwLock<()> = RwLock::new(());

/// The descriptors open when the first fault case started.
static QUIET_FDS: OnceLock<usize> = OnceLock::new();

/// Runs a fault case alone in the process, once the descriptors of earlier cases are gone.
pub fn run_alone(case: fn(Strategy), strategy: Strategy) {
    let _alone = LOCK.write().unwrap_or_else(PoisonError::into_inner);
    let quiet = *QUIET_FDS.get_or_init(fd_count);
    poll_until(WAIT, || fd_count() <= quiet);
    case(strategy);
}

/// Runs a case that does not measure the process, beside others of its kind.
pub fn run_shared(case: fn(Strategy), strategy: Strategy) {
    let _shared = LOCK.read().unwrap_or_else(PoisonError::into_inner);
    case(strategy);
}

// ---------------------------------------------------------------------------------------
// Certificates

/// A certificate and its key, as files.
#[derive(Clone, Debug)]
pub struct KeyPair {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl KeyPair {
    /// The certificate, DER-encoded.
    pub fn der(&self) -> Vec<u8> {
        pem_to_der(&fs::read(&self.cert).expect("read a certificate"))
    }

    /// Its SHA-256 fingerprint, as `openssl x509 -fingerprint -sha256` prints it.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.der())
    }

    pub fn config(&self) -> TlsConfig {
        TlsConfig::from_pem_files(&self.cert, &self.key)
            .unwrap_or_else(|err| panic!("load {}: {err}", self.cert.display()))
    }
}

/// A temporary directory of certificates and keys made by `openssl`.
pub struct Pki {
    pub dir: TempDir,
}

/// The subject and names of every server certificate: curl and Python check them.
const SERVER_SUBJECT: &str = "/CN=localhost";
const SERVER_NAMES: &str = "subjectAltName=DNS:localhost,IP:127.0.0.1";

impl Pki {
    pub fn new() -> Pki {
        Pki {
            dir: TempDir::new(),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Runs `openssl args` in the directory; panics with its stderr if it fails.
    pub fn openssl(&self, args: &[&str]) {
        let output = Command::new("openssl")
            .args(args)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .output()
            .expect("run openssl (Debian package openssl)");
        assert!(
            output.status.success(),
            "openssl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// A self-signed ECDSA P-256 server certificate for localhost and 127.0.0.1.
    pub fn ec_server(&self, name: &str) -> KeyPair {
        self.self_signed(
            name,
            &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
        )
    }

    /// A self-signed RSA 2048 server certificate for localhost and 127.0.0.1.
    pub fn rsa_server(&self, name: &str) -> KeyPair {
        self.self_signed(name, &["-newkey", "rsa:2048"])
    }

    fn self_signed(&self, name: &str, key_args: &[&str]) -> KeyPair {
        let pair = self.pair(name);
        let (cert, key) = (path_str(&pair.cert), path_str(&pair.key));
        let mut args = vec!["req", "-x509", "-nodes", "-days", "2"];
        args.extend_from_slice(key_args);
        args.extend_from_slice(&["-keyout", &key, "-out", &cert]);
        args.extend_from_slice(&["-subj", SERVER_SUBJECT, "-addext", SERVER_NAMES]);
        self.openssl(&args);
        pair
    }

    /// A certificate authority (self-signed, `CA:TRUE`).
    pub fn ca(&self, name: &str) -> KeyPair {
        let pair = self.pair(name);
        let subject = format!("/CN=socketserver test CA {name}");
        self.openssl(&[
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
            &path_str(&pair.key),
            "-out",
            &path_str(&pair.cert),
            "-subj",
            &subject,
        ]);
        pair
    }

    /// A client certificate (`extendedKeyUsage=clientAuth`) signed by `ca`.
    pub fn client(&self, name: &str, ca: &KeyPair) -> KeyPair {
        let pair = self.pair(name);
        let csr = self.path(&format!("{name}.csr"));
        let ext = self.dir.write(
            &format!("{name}.ext"),
            "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n\
             extendedKeyUsage=clientAuth\n",
        );
        self.openssl(&[
            "req",
            "-new",
            "-nodes",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-keyout",
            &path_str(&pair.key),
            "-out",
            &path_str(&csr),
            "-subj",
            &format!("/CN={name}"),
        ]);
        self.openssl(&[
            "x509",
            "-req",
            "-days",
            "2",
            "-in",
            &path_str(&csr),
            "-CA",
            &path_str(&ca.cert),
            "-CAkey",
            &path_str(&ca.key),
            "-CAcreateserial",
            "-out",
            &path_str(&pair.cert),
            "-extfile",
            &path_str(&ext),
        ]);
        pair
    }

    /// `key` encrypted with `password` by `openssl pkcs8 -topk8 -v2 aes256`.
    pub fn pkcs8_encrypted(&self, key: &Path, name: &str, password: &str) -> PathBuf {
        let out = self.path(name);
        self.openssl(&[
            "pkcs8",
            "-topk8",
            "-v2",
            "aes256",
            "-in",
            &path_str(key),
            "-out",
            &path_str(&out),
            "-passout",
            &format!("pass:{password}"),
        ]);
        out
    }

    /// A key written encrypted by `openssl genpkey -aes256`, and a self-signed certificate
    /// for it.
    pub fn genpkey_encrypted(&self, name: &str, password: &str) -> KeyPair {
        let pair = self.pair(name);
        let pass = format!("pass:{password}");
        self.openssl(&[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-aes256",
            "-pass",
            &pass,
            "-out",
            &path_str(&pair.key),
        ]);
        self.openssl(&[
            "req",
            "-x509",
            "-days",
            "2",
            "-key",
            &path_str(&pair.key),
            "-passin",
            &pass,
            "-out",
            &path_str(&pair.cert),
            "-subj",
            SERVER_SUBJECT,
            "-addext",
            SERVER_NAMES,
        ]);
        pair
    }

    /// An EC `key` encrypted in OpenSSL's legacy PEM format (`Proc-Type: 4,ENCRYPTED`).
    pub fn legacy_encrypted(&self, key: &Path, name: &str, password: &str) -> PathBuf {
        let out = self.path(name);
        self.openssl(&[
            "ec",
            "-in",
            &path_str(key),
            "-aes256",
            "-passout",
            &format!("pass:{password}"),
            "-out",
            &path_str(&out),
        ]);
        out
    }

    fn pair(&self, name: &str) -> KeyPair {
        KeyPair {
            cert: self.path(&format!("{name}.crt")),
            key: self.path(&format!("{name}.key")),
        }
    }
}

impl Default for Pki {
    fn default() -> Self {
        Pki::new()
    }
}

pub fn path_str(path: &Path) -> String {
    path.to_str().expect("a UTF-8 path").to_string()
}

/// The first certificate of a PEM text, DER-encoded.
pub fn pem_to_der(pem: &[u8]) -> Vec<u8> {
    CertificateDer::from_pem_slice(pem)
        .expect("a PEM certificate")
        .as_ref()
        .to_vec()
}

/// The SHA-256 of `der` as `AB:CD:...`.
pub fn fingerprint(der: &[u8]) -> String {
    let hex: Vec<String> = Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    hex.join(":")
}

/// What `openssl x509 -noout -fingerprint -sha256` says of a certificate file.
pub fn openssl_fingerprint(cert: &Path) -> String {
    let output = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(cert)
        .output()
        .expect("run openssl");
    assert!(output.status.success(), "openssl x509 -fingerprint failed");
    let text = String::from_utf8_lossy(&output.stdout);
    text.trim()
        .split_once('=')
        .unwrap_or_else(|| panic!("no fingerprint in {text:?}"))
        .1
        .to_string()
}

/// A self-signed certificate from the library, and its PEM written where clients read it.
pub fn self_signed(dir: &TempDir) -> (TlsConfig, PathBuf) {
    let tls = TlsConfig::self_signed(&["localhost", "127.0.0.1"]).expect("a self-signed cert");
    let pem = dir.write("self-signed.pem", tls.certificate_pem());
    (tls, pem)
}

// ---------------------------------------------------------------------------------------
// The handler

/// The site's files, and two answers of its own: `GET /tls-info` (what the connection
/// negotiated, from `StreamSocket::tls_info`) and `POST /echo-length` (the body's length
/// and SHA-256).
///
/// An `HttpHandler` cannot reach its connection (`HttpRequest` has no accessor for the
/// socket or its `TlsInfo`), so [`Served`] hands it a clone of the connection's
/// `StreamSocket` before each run.
#[derive(Clone)]
pub struct App {
    files: SimpleHttpHandler,
    /// Every request says it may block: on an event loop with workers, it runs there.
    on_workers: bool,
    connection: Option<StreamSocket>,
}

impl HttpHandler for App {
    /// Hashing a large body takes a while: not on the event loop's thread.
    fn may_block(&self, request: &HttpRequest<'_>) -> bool {
        self.on_workers || request.url_path() == "/echo-length"
    }

    fn do_get(&mut self, req: &mut HttpRequest<'_>) -> HandlerResult {
        if req.url_path() == "/tls-info" {
            let Some(info) = self.connection.as_ref().and_then(StreamSocket::tls_info) else {
                return req.send_text(500, "no TLS on this connection\n");
            };
            let peer = info
                .peer_certificates
                .first()
                .map_or_else(|| "none".to_string(), |der| fingerprint(der));
            let text = format!(
                "protocol {}\ncipher {}\nalpn {}\nsni {}\npeer-certificates {}\npeer-sha256 {}\n",
                info.protocol_version.as_deref().unwrap_or("none"),
                info.cipher_suite.as_deref().unwrap_or("none"),
                info.alpn_protocol
                    .as_deref()
                    .map_or_else(|| "none".into(), String::from_utf8_lossy),
                info.server_name.as_deref().unwrap_or("none"),
                info.peer_certificates.len(),
                peer,
            );
            return req.send_text(200, &text);
        }
        self.files.dispatch(req)
    }

    fn do_post(&mut self, req: &mut HttpRequest<'_>) -> HandlerResult {
        if req.url_path() == "/echo-length" {
            let body = req.read_body()?;
            let text = format!("length={}\nsha256={}\n", body.len(), fingerprint(&body));
            return req.send_text(200, &text);
        }
        self.files.dispatch(req)
    }

    fn fallback(&mut self, req: &mut HttpRequest<'_>) -> HandlerResult {
        self.files.dispatch(req)
    }
}

/// Parses the lines of `GET /tls-info`.
pub fn tls_info_lines(body: &str) -> HashMap<String, String> {
    body.lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// [`App`] with its limits and protocol version, given its connection at every run.
#[derive(Clone)]
pub struct Served {
    app: App,
    limits: Limits,
    version: Version,
}

impl Served {
    pub fn new(site: &Site, strategy: Strategy, limits: Limits, version: Version) -> Served {
        Served {
            app: App {
                files: SimpleHttpHandler::new(site.root()).expect("serve the site directory"),
                on_workers: matches!(strategy, Strategy::Loop { workers } if workers > 0),
                connection: None,
            },
            limits,
            version,
        }
    }
}

impl RequestHandler for Served {
    type Request = StreamRequest;

    // As every HttpHandler has them.
    const RBUFSIZE: usize = 16 * KIB;
    const DISABLE_NAGLE_ALGORITHM: bool = true;
    const ALLOW_REUSE_ADDRESS: bool = true;
    const NONBLOCKING: bool = true;

    fn handle(&mut self, stream: &mut StreamRequest) -> HandlerResult {
        let mut app = self.app.clone();
        app.connection = Some(stream.request.clone());
        let mut configured = Configured::new(app)
            .limits(self.limits)
            .protocol_version(self.version);
        configured.handle(stream)
    }
}

/// Limits for the cases that are not about timeouts: nothing runs out during a test.
pub fn roomy_limits() -> Limits {
    Limits {
        head_timeout: Duration::from_secs(10),
        keep_alive_timeout: Duration::from_secs(10),
        body_timeout: Duration::from_secs(10),
        send_timeout: Duration::from_secs(10),
        ..Limits::default()
    }
}

// ---------------------------------------------------------------------------------------
// The server rig

pub type TlsTestServer = Server<TlsTransport, Served, TestConcurrency>;

/// An HTTPS server on 127.0.0.1, port 0, serving [`Served`] on a thread of its own. A rig
/// started [`measured`](TlsRig::measured) knows the descriptors of the process before the
/// server and while it serves, for the fault cases.
pub struct TlsRig {
    pub strategy: Strategy,
    pub addr: SocketAddr,
    /// A clone of the server's configuration: a reload through it is the server's.
    pub tls: TlsConfig,
    pub cpu: CpuClock,
    /// The certificates the health check accepts.
    trusted: Vec<Vec<u8>>,
    /// The certificate the health check presents, for a server that requires one.
    client_cert: Option<KeyPair>,
    server: Option<Arc<TlsTestServer>>,
    thread: Option<JoinHandle<io::Result<()>>>,
    measured: bool,
    fds_before: usize,
    fds_serving: usize,
}

impl TlsRig {
    /// A server for a case that does not measure the process.
    pub fn start(
        strategy: Strategy,
        site: &Site,
        tls: TlsConfig,
        limits: Limits,
        version: Version,
    ) -> TlsRig {
        Self::launch(strategy, site, tls, limits, version, false, None)
    }

    /// A server that requires client certificates: the health check presents `cert`.
    pub fn start_with_client_cert(
        strategy: Strategy,
        site: &Site,
        tls: TlsConfig,
        limits: Limits,
        version: Version,
        cert: &KeyPair,
    ) -> TlsRig {
        Self::launch(
            strategy,
            site,
            tls,
            limits,
            version,
            false,
            Some(cert.clone()),
        )
    }

    /// A server for a fault case: the descriptor counts are taken.
    pub fn measured(
        strategy: Strategy,
        site: &Site,
        tls: TlsConfig,
        limits: Limits,
        version: Version,
    ) -> TlsRig {
        Self::launch(strategy, site, tls, limits, version, true, None)
    }

    fn launch(
        strategy: Strategy,
        site: &Site,
        tls: TlsConfig,
        limits: Limits,
        version: Version,
        measured: bool,
        client_cert: Option<KeyPair>,
    ) -> TlsRig {
        let cpu = CpuClock::open();
        let fds_before = fd_count();
        let trusted = vec![pem_to_der(tls.certificate_pem().as_bytes())];
        let server = Server::<TlsTransport, Served, TestConcurrency>::builder(
            "127.0.0.1:0",
            Served::new(site, strategy, limits, version),
        )
        .concurrency(strategy.concurrency().expect("the strategy"))
        .tls(tls.clone())
        .request_queue_size(128)
        .build()
        .unwrap_or_else(|err| panic!("cannot start an HTTPS server on {strategy}: {err}"));
        let addr = server.server_address().inet().expect("a TCP address");
        let server = Arc::new(server);
        let serving = Arc::clone(&server);
        let thread = thread::Builder::new()
            .name("serve_forever".into())
            .spawn(move || serving.serve_forever())
            .expect("spawn the serving thread");
        let mut rig = TlsRig {
            strategy,
            addr,
            tls,
            cpu,
            trusted,
            client_cert,
            server: Some(server),
            thread: Some(thread),
            measured,
            fds_before,
            fds_serving: 0,
        };
        let started = poll_until(WAIT, || rig.server().handle().is_serving());
        assert!(started, "serve_forever() did not start within {WAIT:?}");
        rig.assert_serves("starting");
        if measured {
            rig.fds_serving = settled_fd_count();
        }
        rig
    }

    pub fn server(&self) -> &TlsTestServer {
        self.server.as_ref().expect("the server is still there")
    }

    pub fn fds_serving(&self) -> usize {
        assert!(self.measured, "an unmeasured rig has no descriptor counts");
        self.fds_serving
    }

    /// Also accept `der` in health checks (a certificate reloaded into the server).
    pub fn trust(&mut self, der: Vec<u8>) {
        self.trusted.push(der);
    }

    /// A client configuration that accepts the certificates this rig trusts.
    pub fn client(&self) -> Arc<ClientConfig> {
        let options = ClientOptions {
            client_cert: self.client_cert.clone(),
            ..ClientOptions::default()
        };
        client_config(self.trusted.clone(), options)
    }

    /// The server is healthy again after `fault`: the process idles, holds the descriptors
    /// it held before, and a GET over TLS gets the right answer.
    pub fn assert_healthy(&self, fault: &str) {
        let fault = format!("{fault} on {}", self.strategy);
        assert_idle(&self.cpu, &fault, true);
        let cleanup = self.assert_fds_back(&fault);
        if cleanup > Duration::from_secs(1) {
            assert_idle(
                &self.cpu,
                &format!("{fault}, once its fds were closed"),
                true,
            );
        }
        self.assert_serves(&fault);
    }

    /// Waits (bounded) until the process holds the descriptors it held while serving with
    /// no connection; returns how long that took.
    pub fn assert_fds_back(&self, when: &str) -> Duration {
        let expected = self.fds_serving();
        wait_fds(&self.cpu, expected, WAIT, when)
    }

    /// A GET of [`SMALL`] over TLS gets 200 and its bytes.
    pub fn assert_serves(&self, after: &str) {
        match tls_get(self.addr, &self.client(), SMALL) {
            Ok((head, body)) if head.status == 200 && body == SMALL_BODY => {}
            Ok((head, body)) => panic!(
                "GET {SMALL} over TLS after {after} on {}: {} with {:?}",
                self.strategy,
                head.status_line(),
                String::from_utf8_lossy(&body[..body.len().min(200)])
            ),
            Err(err) => panic!(
                "GET {SMALL} over TLS after {after} on {}: {err}",
                self.strategy
            ),
        }
    }

    /// `https://127.0.0.1:PORT/`.
    pub fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.addr.port())
    }

    /// `https://localhost:PORT/` (curl then sends SNI; resolve with [`TlsRig::resolve`]).
    pub fn localhost_url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.addr.port())
    }

    /// curl's `--resolve` for [`localhost_url`](TlsRig::localhost_url).
    pub fn resolve(&self) -> String {
        format!("localhost:{}:127.0.0.1", self.addr.port())
    }

    /// Stops and closes the server and drops it; a measured rig checks the process holds
    /// the descriptors it held before the server existed.
    pub fn finish(mut self) {
        let handle = self.server().handle();
        within(WAIT, "shutdown()", move || handle.shutdown());
        let thread = self.thread.take().expect("the serving thread");
        assert!(
            poll_until(WAIT, || thread.is_finished()),
            "serve_forever() did not return within {WAIT:?} of shutdown()"
        );
        match thread.join() {
            Ok(Ok(())) => {}
            Ok(Err(err)) => panic!("serve_forever() failed on {}: {err}", self.strategy),
            Err(_) => panic!("serve_forever() panicked on {}", self.strategy),
        }
        let server = self.server.take().expect("the server");
        let closing = Arc::clone(&server);
        within(WAIT, "server_close()", move || closing.server_close());
        assert_eq!(
            Arc::strong_count(&server),
            1,
            "references outlive the server"
        );
        drop(server);
        if self.measured {
            let when = format!("shutdown, server_close and drop on {}", self.strategy);
            wait_fds(&self.cpu, self.fds_before, WAIT, &when);
        }
    }
}

impl Drop for TlsRig {
    /// A failed test still stops its server (bounded, never panicking).
    fn drop(&mut self) {
        let Some(server) = self.server.take() else {
            return;
        };
        let thread = self.thread.take();
        let (done, stopped) = std::sync::mpsc::channel();
        thread::spawn(move || {
            server.handle().shutdown();
            if let Some(thread) = thread {
                let _ = thread.join();
            }
            server.server_close();
            let _ = done.send(());
        });
        let _ = stopped.recv_timeout(WAIT);
    }
}

/// Runs `f` on a helper thread; panics if it has not returned within `limit`.
pub fn within(limit: Duration, what: &str, f: impl FnOnce() + Send + 'static) {
    let (done, finished) = std::sync::mpsc::channel();
    thread::spawn(move || {
        f();
        let _ = done.send(());
    });
    if finished.recv_timeout(limit).is_err() {
        panic!("{what} did not return within {limit:?}");
    }
}

/// Waits until the process holds `expected` descriptors; returns how long that took.
pub fn wait_fds(cpu: &CpuClock, expected: usize, limit: Duration, when: &str) -> Duration {
    let cpu_before = cpu.now();
    let started = Instant::now();
    let mut seen = 0;
    let back = poll_until(limit, || {
        seen = fd_count();
        seen == expected
    });
    let took = started.elapsed();
    if !back {
        let used = cpu.now().saturating_sub(cpu_before);
        panic!(
            "fds {seen}, expected {expected}, {limit:?} after {when} (CPU meanwhile {} ms of \
             {} ms)",
            used.as_millis(),
            took.as_millis()
        );
    }
    took
}

/// The descriptor count once it stopped changing for 100 ms.
fn settled_fd_count() -> usize {
    let mut last = fd_count();
    let mut since = Instant::now();
    let settled = poll_until(WAIT, || {
        let now = fd_count();
        if now != last {
            last = now;
            since = Instant::now();
        }
        since.elapsed() >= Duration::from_millis(100)
    });
    assert!(
        settled,
        "the descriptor count did not settle within {WAIT:?}"
    );
    last
}

// ---------------------------------------------------------------------------------------
// The in-process client

/// What a client offers beyond the defaults (TLS 1.3 and 1.2, ALPN `http/1.1`).
#[derive(Clone, Debug)]
pub struct ClientOptions {
    pub alpn: Vec<Vec<u8>>,
    /// A certificate to present (mutual TLS).
    pub client_cert: Option<KeyPair>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            alpn: vec![b"http/1.1".to_vec()],
            client_cert: None,
        }
    }
}

/// A rustls client that accepts exactly the certificates in `trusted` (signatures are
/// checked as usual).
pub fn client_config(trusted: Vec<Vec<u8>>, options: ClientOptions) -> Arc<ClientConfig> {
    let provider = Arc::new(ring::default_provider());
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .expect("TLS 1.3 and 1.2")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Pinned { trusted, provider }));
    let mut config = match &options.client_cert {
        None => builder.with_no_client_auth(),
        Some(pair) => {
            let chain = vec![CertificateDer::from(pair.der())];
            let key = PrivateKeyDer::from_pem_file(&pair.key).expect("the client's key");
            builder
                .with_client_auth_cert(chain, key)
                .expect("the client's certificate")
        }
    };
    config.alpn_protocols = options.alpn;
    Arc::new(config)
}

/// Accepts the certificates it was given, by their bytes.
#[derive(Debug)]
struct Pinned {
    trusted: Vec<Vec<u8>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self.trusted.iter().any(|t| t[..] == end_entity[..]) {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// How a read of a TLS connection ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TlsEnd {
    /// `close_notify`, then the end of the stream.
    CloseNotify,
    /// The TCP stream ended without `close_notify` (or in the middle of a record).
    Eof,
    Reset,
    TimedOut,
    /// Anything else (a TLS alert, a decoding error): the text of the error.
    Failed(String),
}

impl TlsEnd {
    /// The connection is over (the server closed, reset or aborted it).
    pub fn is_close(&self) -> bool {
        !matches!(self, TlsEnd::TimedOut)
    }

    fn of(err: &io::Error) -> TlsEnd {
        match err.kind() {
            io::ErrorKind::UnexpectedEof => TlsEnd::Eof,
            io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted => TlsEnd::Reset,
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => TlsEnd::TimedOut,
            _ => TlsEnd::Failed(err.to_string()),
        }
    }
}

/// A response head.
#[derive(Clone, Debug)]
pub struct Head {
    pub status: u16,
    pub text: String,
}

impl Head {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.text.split("\r\n").skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    pub fn content_length(&self) -> Option<usize> {
        self.header("content-length")?.parse().ok()
    }

    pub fn status_line(&self) -> &str {
        self.text.lines().next().unwrap_or("")
    }
}

/// A TLS client connection, handshake done, with what it read past a head in `pending`.
pub struct TlsConn {
    pub tls: rustls::StreamOwned<ClientConnection, TcpStream>,
    pending: Vec<u8>,
}

impl TlsConn {
    /// Connects and completes the handshake (for `localhost`: SNI is sent).
    pub fn open(addr: SocketAddr, config: &Arc<ClientConfig>) -> TlsConn {
        Self::try_open(addr, config).unwrap_or_else(|e| panic!("TLS connection to {addr}: {e}"))
    }

    pub fn try_open(addr: SocketAddr, config: &Arc<ClientConfig>) -> io::Result<TlsConn> {
        let tcp = TcpStream::connect_timeout(&addr, WAIT)?;
        Self::over(tcp, config)
    }

    /// As [`open`](TlsConn::open), on a socket whose receive buffer is 64 KiB (set before
    /// connecting): what the server can push ahead of a client that does not read is
    /// bounded by its own send buffer.
    pub fn open_slow(addr: SocketAddr, config: &Arc<ClientConfig>) -> TlsConn {
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("a socket");
        socket.set_recv_buffer_size(64 * KIB).expect("SO_RCVBUF");
        socket
            .connect_timeout(&addr.into(), WAIT)
            .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
        Self::over(socket.into(), config).unwrap_or_else(|e| panic!("TLS handshake: {e}"))
    }

    fn over(tcp: TcpStream, config: &Arc<ClientConfig>) -> io::Result<TlsConn> {
        tcp.set_read_timeout(Some(WAIT))?;
        tcp.set_write_timeout(Some(WAIT))?;
        let name = ServerName::try_from("localhost").expect("a server name");
        let conn = ClientConnection::new(Arc::clone(config), name).map_err(io::Error::other)?;
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        while tls.conn.is_handshaking() {
            tls.conn.complete_io(&mut tls.sock)?;
        }
        Ok(TlsConn {
            tls,
            pending: Vec::new(),
        })
    }

    /// The certificate the server presented.
    pub fn peer_certificate(&self) -> Vec<u8> {
        self.tls
            .conn
            .peer_certificates()
            .and_then(|c| c.first())
            .expect("a server certificate")
            .as_ref()
            .to_vec()
    }

    pub fn tcp(&self) -> &TcpStream {
        &self.tls.sock
    }

    pub fn set_read_timeout(&self, timeout: Duration) {
        self.tcp()
            .set_read_timeout(Some(timeout.max(Duration::from_millis(1))))
            .expect("set a read timeout");
    }

    pub fn send(&mut self, data: &[u8]) -> io::Result<()> {
        self.tls.write_all(data)?;
        self.tls.flush()
    }

    /// Reads plaintext into `buf`, the pending bytes first.
    pub fn read(&mut self, buf: &mut [u8]) -> Result<usize, TlsEnd> {
        if !self.pending.is_empty() {
            let n = buf.len().min(self.pending.len());
            buf[..n].copy_from_slice(&self.pending[..n]);
            self.pending.drain(..n);
            return Ok(n);
        }
        loop {
            match self.tls.read(buf) {
                Ok(0) => return Err(TlsEnd::CloseNotify),
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(TlsEnd::of(&e)),
            }
        }
    }

    /// Reads the next response head.
    pub fn head(&mut self) -> Result<Head, String> {
        loop {
            if let Some(end) = find(&self.pending, b"\r\n\r\n") {
                let text = String::from_utf8_lossy(&self.pending[..end]).into_owned();
                self.pending.drain(..end + 4);
                let status = text
                    .split(' ')
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| format!("not a status line: {text:?}"))?;
                return Ok(Head { status, text });
            }
            let mut chunk = [0u8; 16 * KIB];
            match self.tls.read(&mut chunk) {
                Ok(0) => return Err(format!("closed before a head ({:?})", self.pending)),
                Ok(n) => self.pending.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("reading a head: {e}")),
            }
        }
    }

    /// Reads `len` body bytes.
    pub fn body(&mut self, len: usize) -> Result<Vec<u8>, TlsEnd> {
        let mut body = vec![0u8; len];
        let mut got = 0;
        while got < len {
            got += self.read(&mut body[got..])?;
        }
        Ok(body)
    }

    /// Reads up to `len` body bytes, checking them against `expected` (from the start of
    /// the body); returns how many came, and how reading ended if before `len`.
    pub fn body_against(&mut self, expected: &[u8], len: usize) -> (usize, Option<TlsEnd>) {
        let mut got = 0;
        let mut chunk = vec![0u8; 64 * KIB];
        while got < len {
            let want = (len - got).min(chunk.len());
            match self.read(&mut chunk[..want]) {
                Ok(n) => {
                    let checked = n.min(expected.len().saturating_sub(got));
                    if checked > 0 {
                        check_bytes(&chunk[..checked], expected, got);
                    }
                    got += n;
                }
                Err(end) => return (got, Some(end)),
            }
        }
        (got, None)
    }

    /// Reads until the connection ends: the bytes and how it ended.
    pub fn until_end(&mut self) -> (Vec<u8>, TlsEnd) {
        let mut data = std::mem::take(&mut self.pending);
        let mut chunk = [0u8; 16 * KIB];
        loop {
            match self.read(&mut chunk) {
                Ok(n) => data.extend_from_slice(&chunk[..n]),
                Err(end) => return (data, end),
            }
        }
    }

    /// Closes the TCP stream without `close_notify` (and with unread data, the kernel
    /// resets it).
    pub fn close_without_notify(self) {
        let _ = self.tls.sock.shutdown(Shutdown::Write);
    }

    /// Aborts: SO_LINGER 0, so the close sends a reset at once.
    pub fn reset(self) {
        SockRef::from(&self.tls.sock)
            .set_linger(Some(Duration::ZERO))
            .expect("SO_LINGER 0");
    }
}

pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// `GET target HTTP/1.0` over a new TLS connection: the head and the body (checked against
/// its `Content-Length`).
pub fn tls_get(
    addr: SocketAddr,
    config: &Arc<ClientConfig>,
    target: &str,
) -> Result<(Head, Vec<u8>), String> {
    let mut conn = TlsConn::try_open(addr, config).map_err(|e| format!("TLS connect: {e}"))?;
    conn.send(format!("GET {target} HTTP/1.0\r\n\r\n").as_bytes())
        .map_err(|e| format!("send: {e}"))?;
    let head = conn.head()?;
    let (body, end) = conn.until_end();
    if !end.is_close() {
        return Err(format!("the body ended with {end:?}"));
    }
    if let Some(len) = head.content_length() {
        if len != body.len() {
            return Err(format!("Content-Length {len} but {} bytes", body.len()));
        }
    }
    Ok((head, body))
}

/// The first flight of a TLS client: its ClientHello record, as it would send it.
pub fn client_hello(config: &Arc<ClientConfig>) -> Vec<u8> {
    let name = ServerName::try_from("localhost").expect("a server name");
    let mut conn = ClientConnection::new(Arc::clone(config), name).expect("a client");
    let mut hello = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut hello).expect("write the ClientHello");
    }
    assert_eq!(hello[0], 0x16, "a handshake record");
    hello
}

// ---------------------------------------------------------------------------------------
// Outside clients

/// `curl --silent --show-error --max-time 10 ARGS`.
pub fn curl(args: &[&str]) -> Output {
    Command::new("curl")
        .args(["--silent", "--show-error", "--max-time", "10"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run curl (Debian package curl)")
}

/// [`curl`], which must succeed: its stdout.
pub fn curl_ok(args: &[&str]) -> Vec<u8> {
    let output = curl(args);
    assert!(
        output.status.success(),
        "curl {}: {} {}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// `python3 -c SCRIPT ARGS`, which must succeed and print one JSON object.
pub fn python(script: &str, args: &[&str]) -> serde_json::Value {
    let output = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run python3");
    assert!(
        output.status.success(),
        "python3: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "python3 printed no JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

/// `openssl s_client -connect ADDR -servername localhost ARGS`, with nothing to send: its
/// exit status and what it printed (stdout and stderr).
pub fn s_client(addr: SocketAddr, args: &[&str]) -> (bool, String) {
    let mut child = Command::new("openssl")
        .args(["s_client", "-connect", &addr.to_string()])
        .args(["-servername", "localhost"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run openssl s_client");
    // Q on stdin: s_client quits after the handshake (and at once on a failed one).
    let _ = child.stdin.take().expect("stdin").write_all(b"Q\n");
    let deadline = Instant::now() + WAIT;
    while child.try_wait().expect("s_client status").is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!("openssl s_client did not end within {WAIT:?}");
        }
        thread::sleep(Duration::from_millis(5));
    }
    let output = child.wait_with_output().expect("s_client output");
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

/// The fingerprint of the certificate a new connection sees, by `openssl s_client`.
pub fn s_client_fingerprint(addr: SocketAddr) -> String {
    let (ok, text) = s_client(addr, &[]);
    assert!(ok, "openssl s_client failed: {text}");
    let begin = text
        .find("-----BEGIN CERTIFICATE-----")
        .unwrap_or_else(|| panic!("no certificate in {text}"));
    fingerprint(&pem_to_der(&text.as_bytes()[begin..]))
}
