//! HTTPS: the TLS transport with real clients (curl, python3's `ssl` and `http.client`,
//! `openssl s_client`, and rustls in the process), on the four strategies (event loop
//! inline, event loop with workers, thread pool, thread per connection):
//!
//! 1. curl: small and large files, keep-alive, HEAD, ranges, a large POST;
//! 2. Python: one connection for several requests, TLS 1.3 and 1.2, TLS 1.1 refused;
//! 3. ALPN and what a handler sees of the connection (`TlsInfo`);
//! 4. plain HTTP on the TLS port;
//! 5. faults over TLS (hang-ups, resets, slow and stalled readers, silent and slow
//!    handshakes, garbage, no close_notify), each followed by the health checks of
//!    tests/faults.rs: the process idles, holds its descriptors, and serves;
//! 6. client certificates (mutual TLS);
//! 7. keys: RSA and ECDSA, encrypted PKCS#8, mismatched and legacy keys;
//! 8. certificate reload.
//!
//! Certificates are made in temporary directories by `openssl` (or by
//! `TlsConfig::self_signed`); none is committed. Fault cases run alone in the process (they
//! measure it); the others run side by side.

#[macro_use]
mod faults_support;
mod tls_support;

use std::fs;
use std::io::Read;
use std::thread;
use std::time::{Duration, Instant};

use faults_support::{
    fd_count, pattern, poll_until, short_limits, Conn, Site, Strategy, TempDir, KIB, MIB, SMALL,
    SMALL_BODY, WAIT,
};
use socketserver::http::{Limits, Version};
use socketserver::tls::{ClientAuth, TlsConfig};
use tls_support::*;

on_every_strategy!(crate::tls_support::run_shared:
    curl_gets_small_and_large_files,
    curl_keeps_one_connection_for_two_urls,
    curl_head_and_range,
    curl_posts_several_megabytes,
    python_uses_one_connection_with_tls13_and_tls12,
    tls11_clients_are_refused,
    alpn_negotiates_http11,
    handler_sees_protocol_cipher_alpn_and_sni,
    plain_http_gets_400_promptly,
    client_certificate_required,
    client_certificate_optional,
    rsa_ecdsa_and_encrypted_keys_serve,
    reload_serves_the_new_certificate_to_new_connections,
);

on_every_strategy!(crate::tls_support::run_alone:
    hang_up_mid_download,
    reset_mid_download,
    slow_steady_reader_gets_whole_file,
    stalled_reader_is_cut_off,
    silent_client_is_closed_after_head_timeout,
    trickled_client_hello_is_cut_off_by_handshake_timeout,
    partial_client_hello_is_cut_off_by_handshake_timeout,
    garbage_instead_of_client_hello,
    close_without_close_notify,
);

const SECOND: Duration = Duration::from_secs(1);
const MS: Duration = Duration::from_millis(1);

/// A site with the small file, `other.txt` and a 3 MiB `big.bin`; a self-signed
/// certificate from the library, its PEM in a directory of its own (not served).
struct Fixture {
    site: Site,
    certs: TempDir,
    tls: TlsConfig,
    pem: String,
    big: Vec<u8>,
}

impl Fixture {
    fn new() -> Fixture {
        let site = Site::new();
        site.dir.write("other.txt", "another file\n");
        let big = site.big("big.bin", 3 * MIB, 11);
        let certs = TempDir::new();
        let (tls, pem) = self_signed(&certs);
        Fixture {
            site,
            certs,
            tls,
            pem: path_str(&pem),
            big,
        }
    }

    fn start(&self, strategy: Strategy) -> TlsRig {
        TlsRig::start(
            strategy,
            &self.site,
            self.tls.clone(),
            roomy_limits(),
            Version::HTTP_11,
        )
    }
}

/// Where two byte strings first differ, for a failure message.
fn first_difference(a: &[u8], b: &[u8]) -> String {
    match a.iter().zip(b).position(|(x, y)| x != y) {
        Some(i) => format!("first difference at byte {i}"),
        None => format!("lengths {} and {}", a.len(), b.len()),
    }
}

// ---------------------------------------------------------------------------------------
// 1. curl

fn curl_gets_small_and_large_files(strategy: Strategy) {
    let f = Fixture::new();
    let rig = f.start(strategy);
    let small = curl_ok(&["--cacert", &f.pem, &rig.url(SMALL)]);
    assert_eq!(small, SMALL_BODY, "GET {SMALL} on {strategy}");
    let big = curl_ok(&["--cacert", &f.pem, &rig.url("/big.bin")]);
    assert!(
        big == f.big,
        "GET /big.bin (3 MiB) on {strategy}: {}",
        first_difference(&big, &f.big)
    );
    rig.finish();
}

fn curl_keeps_one_connection_for_two_urls(strategy: Strategy) {
    let f = Fixture::new();
    let rig = f.start(strategy);
    let out = curl_ok(&[
        "--cacert",
        &f.pem,
        "-w",
        "%{http_code} %{num_connects} %{local_port}\n",
        "-o",
        "/dev/null",
        "-o",
        "/dev/null",
        &rig.url(SMALL),
        &rig.url("/other.txt"),
    ]);
    let out = String::from_utf8_lossy(&out);
    let lines: Vec<Vec<&str>> = out.lines().map(|l| l.split(' ').collect()).collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert_eq!(
        lines[0][..2],
        ["200", "1"],
        "first URL on {strategy}: {out}"
    );
    assert_eq!(
        lines[1][..2],
        ["200", "0"],
        "the second URL made a connection of its own on {strategy}: {out}"
    );
    assert_eq!(lines[0][2], lines[1][2], "two local ports: {out}");
    rig.finish();
}

fn curl_head_and_range(strategy: Strategy) {
    let f = Fixture::new();
    let rig = f.start(strategy);
    let head = curl_ok(&["--cacert", &f.pem, "-I", &rig.url("/big.bin")]);
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    assert!(
        head.starts_with("http/1.1 200 "),
        "HEAD on {strategy}: {head}"
    );
    assert!(
        head.contains(&format!("\r\ncontent-length: {}\r\n", f.big.len())),
        "HEAD on {strategy}: {head}"
    );
    assert!(head.ends_with("\r\n\r\n"), "HEAD with a body: {head:?}");

    let answer = curl_ok(&[
        "--cacert",
        &f.pem,
        "-D",
        "-",
        "-r",
        "1000-1999",
        &rig.url("/big.bin"),
    ]);
    let end = find(&answer, b"\r\n\r\n").expect("a head") + 4;
    let (head, body) = answer.split_at(end);
    let head = String::from_utf8_lossy(head).to_ascii_lowercase();
    assert!(
        head.starts_with("http/1.1 206 "),
        "Range on {strategy}: {head}"
    );
    assert!(
        head.contains(&format!(
            "\r\ncontent-range: bytes 1000-1999/{}\r\n",
            f.big.len()
        )),
        "{head}"
    );
    assert!(
        body == &f.big[1000..2000],
        "the range's bytes on {strategy}"
    );
    rig.finish();
}

fn curl_posts_several_megabytes(strategy: Strategy) {
    let f = Fixture::new();
    let upload = pattern(6 * MIB + 123, 12);
    let file = f.certs.write("upload.bin", &upload);
    let rig = f.start(strategy);
    let answer = curl_ok(&[
        "--cacert",
        &f.pem,
        "-H",
        "Content-Type: application/octet-stream",
        "--data-binary",
        &format!("@{}", path_str(&file)),
        &rig.url("/echo-length"),
    ]);
    assert_eq!(
        String::from_utf8_lossy(&answer),
        format!("length={}\nsha256={}\n", upload.len(), fingerprint(&upload)),
        "POST of {} bytes on {strategy}",
        upload.len()
    );
    rig.finish();
}

// ---------------------------------------------------------------------------------------
// 2. Python's ssl and http.client

const PYTHON_ONE_CONNECTION: &str = r#"
import http.client, json, ssl, sys
port, ca = int(sys.argv[1]), sys.argv[2]
def context(maximum=None):
    ctx = ssl.create_default_context(cafile=ca)
    if maximum:
        ctx.maximum_version = maximum
    return ctx
out = {}
conn = http.client.HTTPSConnection("127.0.0.1", port, context=context(), timeout=10)
answers, ports = [], []
for path in ["/small.txt", "/other.txt", "/small.txt"]:
    conn.request("GET", path)
    r = conn.getresponse()
    answers.append([r.status, r.read().decode()])
    ports.append(conn.sock.getsockname()[1])
out["answers"], out["ports"], out["version"] = answers, ports, conn.sock.version()
conn.close()
conn = http.client.HTTPSConnection(
    "127.0.0.1", port, context=context(ssl.TLSVersion.TLSv1_2), timeout=10)
conn.request("GET", "/small.txt")
r = conn.getresponse()
out["tls12"] = [r.status, r.read().decode(), conn.sock.version(), conn.sock.cipher()[0]]
print(json.dumps(out))
"#;

fn python_uses_one_connection_with_tls13_and_tls12(strategy: Strategy) {
    let f = Fixture::new();
    let rig = f.start(strategy);
    let out = python(
        PYTHON_ONE_CONNECTION,
        &[&rig.addr.port().to_string(), &f.pem],
    );
    let small = String::from_utf8_lossy(SMALL_BODY);
    assert_eq!(
        out["answers"],
        serde_json::json!([[200, small], [200, "another file\n"], [200, small]]),
        "on {strategy}: {out}"
    );
    let ports = out["ports"].as_array().expect("ports");
    assert!(
        ports.iter().all(|p| *p == ports[0]),
        "three requests took more than one connection on {strategy}: {out}"
    );
    assert_eq!(out["version"], "TLSv1.3", "on {strategy}: {out}");
    assert_eq!(
        out["tls12"][0], 200,
        "a TLS 1.2 client on {strategy}: {out}"
    );
    assert_eq!(out["tls12"][1], small.as_ref(), "{out}");
    assert_eq!(out["tls12"][2], "TLSv1.2", "{out}");
    assert!(
        out["tls12"][3]
            .as_str()
            .is_some_and(|c| c.starts_with("ECDHE-ECDSA-")),
        "a forward-secret TLS 1.2 suite: {out}"
    );
    rig.finish();
}

/// Python's client limited to TLS 1.1: with OpenSSL 3's default security level it refuses
/// to even try (no cipher is allowed for TLS 1.1; it sends only an alert), so the case that
/// reaches the server lowers the level to 0 and sends a real TLS 1.1 ClientHello.
const PYTHON_TLS11: &str = r#"
import json, socket, ssl, sys, warnings
warnings.simplefilter("ignore", DeprecationWarning)
port, ca = int(sys.argv[1]), sys.argv[2]
out = {}
for name, ciphers in [("default", None), ("seclevel0", "DEFAULT:@SECLEVEL=0")]:
    ctx = ssl.create_default_context(cafile=ca)
    ctx.minimum_version = ssl.TLSVersion.TLSv1
    ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    if ciphers:
        ctx.set_ciphers(ciphers)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            with ctx.wrap_socket(s, server_hostname="127.0.0.1") as t:
                out[name] = ["connected", t.version()]
    except ssl.SSLError as e:
        out[name] = ["refused", e.reason or "", str(e)]
    except OSError as e:
        out[name] = ["closed", type(e).__name__, str(e)]
print(json.dumps(out))
"#;

fn tls11_clients_are_refused(strategy: Strategy) {
    let f = Fixture::new();
    let rig = f.start(strategy);
    let out = python(PYTHON_TLS11, &[&rig.addr.port().to_string(), &f.pem]);
    assert_eq!(
        out["default"][0], "refused",
        "Python's TLS 1.1 client at the default security level on {strategy}: {out}"
    );
    assert_eq!(
        out["seclevel0"][0], "refused",
        "a TLS 1.1 ClientHello on {strategy}: {out}"
    );
    // rustls answers a TLS 1.1 ClientHello with a handshake_failure alert.
    assert!(
        out["seclevel0"][1]
            .as_str()
            .is_some_and(|r| r.contains("ALERT")),
        "refused by the server's alert on {strategy}: {out}"
    );
    rig.assert_serves("Python's TLS 1.1 clients");

    let (ok, text) = s_client(rig.addr, &["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"]);
    assert!(
        !ok,
        "openssl s_client -tls1_1 connected on {strategy}: {text}"
    );
    assert!(
        text.contains("alert protocol version") || text.contains("alert handshake failure"),
        "openssl s_client -tls1_1 on {strategy}: {text}"
    );
    assert!(!text.contains("BEGIN CERTIFICATE"), "{text}");
    rig.assert_serves("openssl s_client -tls1_1");
    rig.finish();
}

// ---------------------------------------------------------------------------------------
// 3. ALPN and TlsInfo

fn alpn_negotiates_http11(strategy: Strategy) {
    let f = Fixture::new();
    let rig = f.start(strategy);
    let (ok, text) = s_client(rig.addr, &["-alpn", "http/1.1", "-CAfile", &f.pem]);
    assert!(ok, "openssl s_client -alpn http/1.1 on {strategy}: {text}");
    assert!(
        text.contains("ALPN protocol: http/1.1"),
        "on {strategy}: {text}"
    );
    assert!(
        text.contains("Verify return code: 0 (ok)"),
        "on {strategy}: {text}"
    );
    // A client that offers only protocols the server does not speak is refused.
    let (ok, text) = s_client(rig.addr, &["-alpn", "h2"]);
    assert!(!ok, "a client offering only h2 on {strategy}: {text}");
    assert!(
        text.contains("no application protocol"),
        "on {strategy}: {text}"
    );
    rig.assert_serves("a client offering only h2");
    rig.finish();
}

fn handler_sees_protocol_cipher_alpn_and_sni(strategy: Strategy) {
    let f = Fixture::new();
    let rig = f.start(strategy);
    // By name: curl sends SNI; -v says which suite it got.
    let output = curl(&[
        "-v",
        "--cacert",
        &f.pem,
        "--resolve",
        &rig.resolve(),
        &rig.localhost_url("/tls-info"),
    ]);
    assert!(output.status.success(), "curl /tls-info on {strategy}");
    let info = tls_info_lines(&String::from_utf8_lossy(&output.stdout));
    let verbose = String::from_utf8_lossy(&output.stderr);
    assert_eq!(info["protocol"], "TLSv1.3", "on {strategy}: {info:?}");
    assert_eq!(info["alpn"], "http/1.1", "{info:?}");
    assert_eq!(info["sni"], "localhost", "{info:?}");
    assert_eq!(info["peer-certificates"], "0", "{info:?}");
    // curl (OpenSSL) says TLS_AES_256_GCM_SHA384 where rustls says TLS13_AES_256_GCM_SHA384.
    let suite = verbose
        .lines()
        .find_map(|l| l.split("SSL connection using TLSv1.3 / ").nth(1))
        .unwrap_or_else(|| panic!("no suite in curl -v: {verbose}"));
    assert_eq!(
        info["cipher"].strip_prefix("TLS13_"),
        suite.trim().strip_prefix("TLS_"),
        "the suite the handler sees and the one curl got on {strategy}"
    );

    // By address: no SNI; TLS 1.2.
    let body = curl_ok(&[
        "--cacert",
        &f.pem,
        "--tls-max",
        "1.2",
        &rig.url("/tls-info"),
    ]);
    let info = tls_info_lines(&String::from_utf8_lossy(&body));
    assert_eq!(info["protocol"], "TLSv1.2", "on {strategy}: {info:?}");
    assert!(
        info["cipher"].starts_with("TLS_ECDHE_ECDSA_WITH_"),
        "{info:?}"
    );
    assert_eq!(info["sni"], "none", "SNI for an IP address: {info:?}");
    rig.finish();
}

// ---------------------------------------------------------------------------------------
// 4. Plain HTTP on the TLS port

fn plain_http_gets_400_promptly(strategy: Strategy) {
    let f = Fixture::new();
    let rig = f.start(strategy);
    let url = format!("http://127.0.0.1:{}{SMALL}", rig.addr.port());
    let started = Instant::now();
    let output = curl(&["-i", &url]);
    let took = started.elapsed();
    let answer = String::from_utf8_lossy(&output.stdout);
    assert!(
        answer.starts_with("HTTP/1.1 400 Bad Request\r\n"),
        "plain HTTP on {strategy}: {answer:?} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        answer.ends_with("\r\n\r\n400 Bad Request: this port speaks HTTPS; use an https:// URL.\n"),
        "{answer:?}"
    );
    assert!(
        took < 2 * SECOND,
        "the answer to plain HTTP took {took:?} (head timeout 10 s) on {strategy}"
    );
    let body = curl_ok(&["--cacert", &f.pem, &rig.url(SMALL)]);
    assert_eq!(body, SMALL_BODY, "HTTPS after plain HTTP on {strategy}");
    rig.finish();
}

// ---------------------------------------------------------------------------------------
// 6. Client certificates

struct Clients {
    /// Holds the files.
    _pki: Pki,
    ca: KeyPair,
    client: KeyPair,
    /// Signed by another CA.
    stranger: KeyPair,
}

impl Clients {
    fn new() -> Clients {
        let pki = Pki::new();
        let ca = pki.ca("ca");
        let client = pki.client("client", &ca);
        let other_ca = pki.ca("other-ca");
        let stranger = pki.client("stranger", &other_ca);
        Clients {
            _pki: pki,
            ca,
            client,
            stranger,
        }
    }

    /// `GET /tls-info` by curl, with `pair` as its certificate.
    fn tls_info(
        &self,
        f: &Fixture,
        rig: &TlsRig,
        pair: Option<&KeyPair>,
    ) -> Result<String, String> {
        let mut args = vec!["--cacert".to_string(), f.pem.clone()];
        if let Some(pair) = pair {
            args.extend([
                "--cert".into(),
                path_str(&pair.cert),
                "--key".into(),
                path_str(&pair.key),
            ]);
        }
        args.push(rig.url("/tls-info"));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let output = curl(&args);
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(format!(
                "{} {}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    }
}

fn client_certificate_required(strategy: Strategy) {
    let f = Fixture::new();
    let clients = Clients::new();
    let tls = f
        .tls
        .clone()
        .client_auth(ClientAuth::Required(clients.ca.cert.clone()))
        .expect("the CA file");
    let rig = TlsRig::start_with_client_cert(
        strategy,
        &f.site,
        tls,
        roomy_limits(),
        Version::HTTP_11,
        &clients.client,
    );
    let refused = clients.tls_info(&f, &rig, None);
    assert!(
        refused.is_err(),
        "a client without a certificate on {strategy}: {refused:?}"
    );
    let refused = clients.tls_info(&f, &rig, Some(&clients.stranger));
    assert!(
        refused.is_err(),
        "a certificate of another CA on {strategy}: {refused:?}"
    );
    let body = clients
        .tls_info(&f, &rig, Some(&clients.client))
        .unwrap_or_else(|e| panic!("a client with its certificate on {strategy}: {e}"));
    let info = tls_info_lines(&body);
    assert_eq!(info["peer-certificates"], "1", "on {strategy}: {body}");
    assert_eq!(
        info["peer-sha256"],
        clients.client.fingerprint(),
        "the handler sees the client's certificate on {strategy}"
    );
    rig.assert_serves("clients without and with certificates");
    rig.finish();
}

fn client_certificate_optional(strategy: Strategy) {
    let f = Fixture::new();
    let clients = Clients::new();
    let tls = f
        .tls
        .clone()
        .client_auth(ClientAuth::Optional(clients.ca.cert.clone()))
        .expect("the CA file");
    let rig = f.start_with(strategy, tls);
    let anonymous = clients
        .tls_info(&f, &rig, None)
        .unwrap_or_else(|e| panic!("a client without a certificate on {strategy}: {e}"));
    assert_eq!(tls_info_lines(&anonymous)["peer-certificates"], "0");
    let known = clients
        .tls_info(&f, &rig, Some(&clients.client))
        .unwrap_or_else(|e| panic!("a client with its certificate on {strategy}: {e}"));
    let info = tls_info_lines(&known);
    assert_eq!(info["peer-certificates"], "1", "{known}");
    assert_eq!(info["peer-sha256"], clients.client.fingerprint());
    let refused = clients.tls_info(&f, &rig, Some(&clients.stranger));
    assert!(
        refused.is_err(),
        "Optional still checks a certificate sent, on {strategy}: {refused:?}"
    );
    rig.assert_serves("clients without and with certificates");
    rig.finish();
}

impl Fixture {
    fn start_with(&self, strategy: Strategy, tls: TlsConfig) -> TlsRig {
        TlsRig::start(strategy, &self.site, tls, roomy_limits(), Version::HTTP_11)
    }
}

// ---------------------------------------------------------------------------------------
// 7. Keys

fn rsa_ecdsa_and_encrypted_keys_serve(strategy: Strategy) {
    let f = Fixture::new();
    let pki = Pki::new();
    let rsa = pki.rsa_server("rsa");
    let ec = pki.ec_server("ec");
    let encrypted = pki.genpkey_encrypted("encrypted", "open sesame");
    let configs = [
        ("RSA 2048", &rsa, rsa.config()),
        ("ECDSA P-256", &ec, ec.config()),
        (
            "ECDSA P-256, encrypted key",
            &encrypted,
            TlsConfig::with_password(&encrypted.cert, &encrypted.key, "open sesame")
                .expect("the encrypted key with its password"),
        ),
    ];
    for (what, pair, tls) in configs {
        let expected = openssl_fingerprint(&pair.cert);
        assert_eq!(
            tls.fingerprint(),
            expected,
            "{what}: TlsConfig::fingerprint"
        );
        let rig = f.start_with(strategy, tls);
        let cacert = path_str(&pair.cert);
        for max in ["1.3", "1.2"] {
            let body = curl_ok(&["--cacert", &cacert, "--tls-max", max, &rig.url(SMALL)]);
            assert_eq!(body, SMALL_BODY, "{what}, TLS {max}, on {strategy}");
        }
        assert_eq!(
            s_client_fingerprint(rig.addr),
            expected,
            "{what}: the certificate served on {strategy}"
        );
        rig.finish();
    }
}

#[test]
fn encrypted_pkcs8_keys_load_with_their_password_only() {
    let pki = Pki::new();
    let plain = pki.ec_server("plain");
    let topk8 = pki.pkcs8_encrypted(&plain.key, "topk8.key", "s3cret");
    let genpkey = pki.genpkey_encrypted("genpkey", "s3cret");
    for (cert, key) in [(&plain.cert, &topk8), (&genpkey.cert, &genpkey.key)] {
        let loaded = TlsConfig::with_password(cert, key, "s3cret")
            .unwrap_or_else(|e| panic!("{}: {e}", key.display()));
        assert_eq!(loaded.fingerprint(), openssl_fingerprint(cert));
        let wrong = TlsConfig::with_password(cert, key, "guess").expect_err("a wrong password");
        let text = wrong.to_string();
        assert!(
            text.contains("wrong password") && text.contains(&path_str(key)),
            "{text}"
        );
        let none = TlsConfig::from_pem_files(cert, key).expect_err("no password");
        let text = none.to_string();
        assert!(
            text.contains("encrypted") && text.contains("password"),
            "{text}"
        );
    }
}

#[test]
fn a_key_that_does_not_match_the_certificate_is_refused_at_load() {
    let pki = Pki::new();
    let a = pki.ec_server("a");
    let b = pki.ec_server("b");
    let rsa = pki.rsa_server("rsa");
    for key in [&b.key, &rsa.key] {
        let err = TlsConfig::from_pem_files(&a.cert, key).expect_err("a key of another cert");
        let text = err.to_string();
        assert!(
            text.contains("does not fit the certificate"),
            "{}: {text}",
            key.display()
        );
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    }
}

#[test]
fn a_legacy_encrypted_pem_key_says_how_to_convert_it() {
    let pki = Pki::new();
    let plain = pki.ec_server("plain");
    let legacy = pki.legacy_encrypted(&plain.key, "legacy.key", "s3cret");
    let pem = fs::read_to_string(&legacy).unwrap();
    assert!(pem.contains("Proc-Type: 4,ENCRYPTED"), "{pem}");
    for result in [
        TlsConfig::from_pem_files(&plain.cert, &legacy),
        TlsConfig::with_password(&plain.cert, &legacy, "s3cret"),
    ] {
        let text = result.expect_err("a legacy encrypted key").to_string();
        assert!(
            text.contains("openssl pkcs8 -topk8 -v2 aes256"),
            "the error should say how to convert: {text}"
        );
    }
}

#[test]
fn missing_and_empty_files_name_the_file() {
    let pki = Pki::new();
    let pair = pki.ec_server("pair");
    let missing = pki.path("missing.pem");
    let err = TlsConfig::from_pem_files(&missing, &pair.key).expect_err("no cert file");
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    assert!(err.to_string().contains(&path_str(&missing)), "{err}");
    let empty = pki.dir.write("empty.pem", "");
    let err = TlsConfig::from_pem_files(&empty, &pair.key).expect_err("an empty cert file");
    assert!(err.to_string().contains("no CERTIFICATE"), "{err}");
    let err = TlsConfig::from_pem_files(&pair.cert, &empty).expect_err("an empty key file");
    assert!(err.to_string().contains(&path_str(&empty)), "{err}");
}

#[test]
fn fingerprints_are_openssl_s() {
    let pki = Pki::new();
    let pair = pki.ec_server("pair");
    assert_eq!(pair.config().fingerprint(), openssl_fingerprint(&pair.cert));
    let dir = TempDir::new();
    let (tls, pem) = self_signed(&dir);
    assert_eq!(tls.fingerprint(), openssl_fingerprint(&pem));
}

// ---------------------------------------------------------------------------------------
// 8. Reload

const PYTHON_PEER_CERT: &str = r#"
import hashlib, json, socket, ssl, sys
port, ca = int(sys.argv[1]), sys.argv[2]
ctx = ssl.create_default_context(cafile=ca)
with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
    with ctx.wrap_socket(s, server_hostname="localhost") as t:
        der = t.getpeercert(binary_form=True)
print(json.dumps({"sha256": ":".join("%02X" % b for b in hashlib.sha256(der).digest())}))
"#;

fn reload_serves_the_new_certificate_to_new_connections(strategy: Strategy) {
    let f = Fixture::new();
    let pki = Pki::new();
    let a = pki.ec_server("a");
    let b = pki.ec_server("b");
    let (a_fp, b_fp) = (a.fingerprint(), b.fingerprint());
    let (a_cert, a_key) = (fs::read(&a.cert).unwrap(), fs::read(&a.key).unwrap());
    // The server reads these files; they are overwritten with B's below.
    let served = KeyPair {
        cert: pki.dir.write("served.crt", &a_cert),
        key: pki.dir.write("served.key", &a_key),
    };
    let mut rig = f.start_with(strategy, served.config());
    rig.trust(b.der());
    let client = rig.client();
    let mut kept = TlsConn::open(rig.addr, &client);
    assert_eq!(fingerprint(&kept.peer_certificate()), a_fp);
    keep_alive_get(&mut kept, "before the reloads");

    // A broken certificate file, then B's certificate with A's key: errors, A stays.
    fs::write(&served.cert, "-----BEGIN CERTIFICATE-----\nnot base64\n").unwrap();
    let err = rig.tls.reload().expect_err("a reload of a broken file");
    assert!(err.to_string().contains(&path_str(&served.cert)), "{err}");
    fs::write(&served.cert, fs::read(&b.cert).unwrap()).unwrap();
    let err = rig
        .tls
        .reload()
        .expect_err("a reload of a key that does not fit");
    assert!(err.to_string().contains("does not fit"), "{err}");
    assert_eq!(
        rig.tls.fingerprint(),
        a_fp,
        "a failed reload changed the certificate"
    );
    let fresh = TlsConn::open(rig.addr, &client);
    assert_eq!(
        fingerprint(&fresh.peer_certificate()),
        a_fp,
        "after failed reloads on {strategy}"
    );
    drop(fresh);

    // Now B whole.
    fs::write(&served.key, fs::read(&b.key).unwrap()).unwrap();
    rig.tls.reload().expect("a reload of B");
    assert_eq!(rig.tls.fingerprint(), b_fp);
    let out = python(
        PYTHON_PEER_CERT,
        &[&rig.addr.port().to_string(), &path_str(&b.cert)],
    );
    assert_eq!(
        out["sha256"],
        b_fp.as_str(),
        "Python after the reload on {strategy}"
    );
    assert_eq!(
        s_client_fingerprint(rig.addr),
        b_fp,
        "openssl s_client after the reload on {strategy}"
    );
    let body = curl_ok(&["--cacert", &path_str(&b.cert), &rig.url(SMALL)]);
    assert_eq!(body, SMALL_BODY);
    // The connection opened before still works, with its certificate.
    keep_alive_get(&mut kept, "after the reload");
    assert_eq!(fingerprint(&kept.peer_certificate()), a_fp);
    drop(kept);
    rig.finish();
}

/// `GET /small.txt` on a kept-alive HTTP/1.1 connection.
fn keep_alive_get(conn: &mut TlsConn, when: &str) {
    conn.send(format!("GET {SMALL} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes())
        .unwrap_or_else(|e| panic!("send on the kept connection {when}: {e}"));
    let head = conn
        .head()
        .unwrap_or_else(|e| panic!("the kept connection {when}: {e}"));
    assert_eq!(head.status, 200, "{when}: {}", head.text);
    let body = conn.body(head.content_length().expect("a length")).unwrap();
    assert_eq!(body, SMALL_BODY, "{when}");
}

// ---------------------------------------------------------------------------------------
// 5. Faults over TLS

/// A server on `strategy` with a library self-signed certificate.
fn fault_rig(strategy: Strategy, site: &Site, limits: Limits, tls: TlsConfig) -> TlsRig {
    TlsRig::measured(strategy, site, tls, limits, Version::HTTP_10)
}

fn library_cert() -> TlsConfig {
    TlsConfig::self_signed(&["localhost"]).expect("a self-signed certificate")
}

/// Sends `GET target HTTP/1.0`, expects 200 with `len` bytes.
fn start_download(conn: &mut TlsConn, target: &str, len: usize) {
    conn.send(format!("GET {target} HTTP/1.0\r\n\r\n").as_bytes())
        .expect("send the request");
    let head = conn
        .head()
        .unwrap_or_else(|e| panic!("the download's head: {e}"));
    assert_eq!(head.status, 200, "{}", head.text);
    assert_eq!(head.content_length(), Some(len), "{}", head.text);
}

fn hang_up_mid_download(strategy: Strategy) {
    cut_mid_download(strategy, false);
}

fn reset_mid_download(strategy: Strategy) {
    cut_mid_download(strategy, true);
}

/// The client takes 64 KiB of a 16 MiB file (far more than the socket buffers hold) and
/// goes, without close_notify: the rest of the encrypted copy has nowhere to go.
fn cut_mid_download(strategy: Strategy, reset: bool) {
    let site = Site::new();
    let big = site.big("big.bin", 16 * MIB, 21);
    let rig = fault_rig(strategy, &site, short_limits(), library_cert());
    let mut conn = TlsConn::open(rig.addr, &rig.client());
    start_download(&mut conn, "/big.bin", big.len());
    let (got, end) = conn.body_against(&big, 64 * KIB);
    assert!(
        end.is_none(),
        "the download ended ({end:?}) after {got} bytes"
    );
    if reset {
        conn.reset();
        rig.assert_healthy("a reset 64 KiB into a 16 MiB download over TLS");
    } else {
        conn.close_without_notify();
        rig.assert_healthy("a hang-up 64 KiB into a 16 MiB download over TLS");
    }
    rig.finish();
}

/// A client that reads steadily gets the whole 8 MiB however long it takes: send_timeout
/// bounds a pause, not the response.
fn slow_steady_reader_gets_whole_file(strategy: Strategy) {
    let site = Site::new();
    let big = site.big("big.bin", 8 * MIB, 22);
    let limits = Limits {
        send_timeout: Duration::from_millis(300),
        ..short_limits()
    };
    let rig = fault_rig(strategy, &site, limits, library_cert());
    let mut conn = TlsConn::open_slow(rig.addr, &rig.client());
    start_download(&mut conn, "/big.bin", big.len());
    // 8 MiB/s: about 1 s, with pauses of a few ms between 16 KiB reads.
    let rate = 8.0 * MIB as f64;
    let started = Instant::now();
    let mut longest_pause = Duration::ZERO;
    let mut got = 0;
    let mut chunk = vec![0u8; 16 * KIB];
    while got < big.len() {
        let due = started + Duration::from_secs_f64(got as f64 / rate);
        let now = Instant::now();
        if due > now {
            let pause = (due - now).min(Duration::from_millis(50));
            thread::sleep(pause);
            longest_pause = longest_pause.max(pause);
        }
        let want = (big.len() - got).min(chunk.len());
        match conn.read(&mut chunk[..want]) {
            Ok(n) => {
                faults_support::check_bytes(&chunk[..n], &big, got);
                got += n;
            }
            Err(end) => panic!(
                "the response was cut ({end:?}) after {got} of {} bytes, {} ms into a steady \
                 download (pauses of at most {} ms, send_timeout {} ms) on {strategy}",
                big.len(),
                started.elapsed().as_millis(),
                longest_pause.as_millis(),
                limits.send_timeout.as_millis()
            ),
        }
    }
    let took = started.elapsed();
    assert!(
        took >= 2 * limits.send_timeout,
        "the download took only {took:?}: too short to show anything"
    );
    drop(conn);
    rig.assert_healthy("a slow, steady download over TLS");
    rig.finish();
}

/// A client that stops reading is cut off after about send_timeout.
fn stalled_reader_is_cut_off(strategy: Strategy) {
    let site = Site::new();
    let big = site.big("big.bin", 16 * MIB, 23);
    let limits = short_limits();
    let rig = fault_rig(strategy, &site, limits, library_cert());
    let mut conn = TlsConn::open_slow(rig.addr, &rig.client());
    start_download(&mut conn, "/big.bin", big.len());
    let (got, end) = conn.body_against(&big, 64 * KIB);
    assert!(
        end.is_none(),
        "the download ended ({end:?}) after {got} bytes"
    );
    let stalled = Instant::now();
    // As in tests/faults.rs: the kernel takes data for a while after the client stopped
    // reading (the send buffer grows), so the cut may come some seconds after send_timeout.
    let limit = limits.send_timeout + 6 * SECOND;
    let mut fds = 0;
    let cut = poll_until(limit, || {
        fds = fd_count();
        fds <= rig.fds_serving() + 1
    });
    let cut_after = stalled.elapsed();
    assert!(
        cut,
        "a client that stopped reading was not cut off within {limit:?} on {strategy}: fds \
         {fds}, expected {}",
        rig.fds_serving() + 1
    );
    assert!(
        cut_after >= limits.send_timeout / 2,
        "cut off after {cut_after:?}, well before send_timeout {:?}",
        limits.send_timeout
    );
    conn.set_read_timeout(5 * SECOND);
    let rest = big.len() - 64 * KIB;
    let (more, end) = conn.body_against(&big[64 * KIB..], rest);
    match end {
        Some(end) if end.is_close() => {}
        other => panic!(
            "after the cut the client read {more} more bytes and then {other:?}, expected the \
             connection to end short of {} bytes",
            big.len()
        ),
    }
    drop(conn);
    rig.assert_healthy("a client that stopped reading mid-download over TLS");
    rig.finish();
}

/// Waits for the server to end a raw connection: how long that took from `since`.
fn wait_for_close(conn: &mut Conn, since: Instant, limit: Duration) -> Duration {
    conn.set_read_timeout(limit);
    let (_, end) = conn.until_end();
    assert!(
        end.is_close(),
        "the server did not close within {limit:?}: {end:?}"
    );
    since.elapsed()
}

/// A client that connects and sends nothing is closed after the head timeout (500 ms),
/// long before the handshake's own limit (10 s).
fn silent_client_is_closed_after_head_timeout(strategy: Strategy) {
    let site = Site::new();
    let limits = Limits {
        head_timeout: Duration::from_millis(500),
        ..short_limits()
    };
    let rig = fault_rig(strategy, &site, limits, library_cert());
    let connected = Instant::now();
    let mut conn = Conn::open(rig.addr);
    conn.set_read_timeout(WAIT);
    let (sent, end) = conn.until_end();
    assert!(
        end.is_close(),
        "the server did not close within {WAIT:?}: {end:?}"
    );
    let took = connected.elapsed();
    // No handshake, no session: a bare close, not a plaintext close_notify alert.
    assert!(
        sent.is_empty(),
        "a client that sent nothing got {sent:02x?} before the close on {strategy}"
    );
    assert!(
        took >= limits.head_timeout * 4 / 5 && took < limits.head_timeout + 2 * SECOND,
        "a silent client was closed after {took:?} on {strategy} (head timeout {:?}, \
         handshake limit 10 s)",
        limits.head_timeout
    );
    drop(conn);
    rig.assert_healthy("a client that sent nothing");
    rig.finish();
}

/// Limits under which only the handshake's own limit can cut a slow handshake: every HTTP
/// timeout is 5 s.
fn slow_handshake_limits(handshake: Duration) -> (Limits, TlsConfig) {
    let limits = Limits {
        head_timeout: 5 * SECOND,
        keep_alive_timeout: 5 * SECOND,
        body_timeout: 5 * SECOND,
        send_timeout: 5 * SECOND,
        ..Limits::default()
    };
    (limits, library_cert().handshake_timeout(handshake))
}

/// Whether the close of a slow handshake came near the handshake limit, not near the head
/// timeout (5 s).
fn assert_cut_by_handshake_limit(took: Duration, limit: Duration, what: &str, strategy: Strategy) {
    assert!(
        took >= limit * 4 / 5 && took < limit + 1500 * MS,
        "{what} was closed after {took:?} on {strategy}: expected about the handshake \
         limit ({limit:?}), not the head timeout (5 s)"
    );
}

/// A client that sends its ClientHello a byte every 200 ms is cut off by the handshake's
/// limit (1 s): each byte would restart an idle timeout.
fn trickled_client_hello_is_cut_off_by_handshake_timeout(strategy: Strategy) {
    let site = Site::new();
    let limit = SECOND;
    let (limits, tls) = slow_handshake_limits(limit);
    let rig = fault_rig(strategy, &site, limits, tls);
    let hello = client_hello(&rig.client());
    let connected = Instant::now();
    let mut conn = Conn::open(rig.addr);
    conn.set_read_timeout(Duration::from_millis(200));
    let mut sent = 0;
    let closed = loop {
        if connected.elapsed() > WAIT {
            break false;
        }
        if sent < hello.len() {
            if conn.send(&hello[sent..sent + 1]).is_err() {
                break true;
            }
            sent += 1;
        }
        let mut buf = [0u8; 1024];
        match conn.stream.read(&mut buf) {
            Ok(0) => break true,
            Ok(_) => {} // an alert, perhaps; the close follows
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break true,
        }
    };
    let took = connected.elapsed();
    assert!(
        closed,
        "a trickled ClientHello was never cut off on {strategy}"
    );
    assert!(
        sent < hello.len(),
        "the whole ClientHello went out ({sent} bytes)"
    );
    let what = "a ClientHello sent a byte every 200 ms";
    assert_cut_by_handshake_limit(took, limit, what, strategy);
    drop(conn);
    rig.assert_healthy("a ClientHello trickled a byte every 200 ms");
    rig.finish();
}

/// Half a ClientHello, then silence: the handshake's limit (500 ms) holds while nothing
/// comes too.
fn partial_client_hello_is_cut_off_by_handshake_timeout(strategy: Strategy) {
    let site = Site::new();
    let limit = 500 * MS;
    let (limits, tls) = slow_handshake_limits(limit);
    let rig = fault_rig(strategy, &site, limits, tls);
    let hello = client_hello(&rig.client());
    let connected = Instant::now();
    let mut conn = Conn::open(rig.addr);
    conn.send(&hello[..hello.len() / 2]).unwrap();
    let took = wait_for_close(&mut conn, connected, WAIT);
    assert_cut_by_handshake_limit(took, limit, "half a ClientHello, then nothing,", strategy);
    drop(conn);
    rig.assert_healthy("half a ClientHello, then silence");
    rig.finish();
}

/// Bytes that are no ClientHello: a binary mess, and a handshake record whose message is
/// nonsense. Each is refused at once (an alert and a close), not after a timeout.
fn garbage_instead_of_client_hello(strategy: Strategy) {
    let site = Site::new();
    let (limits, tls) = slow_handshake_limits(SECOND);
    let rig = fault_rig(strategy, &site, limits, tls);
    let mut junk_record = vec![0x16, 0x03, 0x01, 0x01, 0x00];
    junk_record.extend(std::iter::repeat_n(0xee, 0x100));
    let mut mess = pattern(1024, 24);
    mess[0] = 0x00; // not a record type, not an HTTP method's letter
    for (what, bytes) in [
        ("binary garbage", mess),
        ("a nonsense handshake record", junk_record),
    ] {
        let sent = Instant::now();
        let mut conn = Conn::open(rig.addr);
        conn.send(&bytes).unwrap();
        let took = wait_for_close(&mut conn, sent, WAIT);
        assert!(
            took < SECOND,
            "{what} was answered by a close only after {took:?} on {strategy}"
        );
    }
    rig.assert_healthy("binary garbage and a nonsense handshake record");
    rig.finish();
}

/// A client that completes the handshake and closes without close_notify, before any
/// request and after one on a kept-alive connection: the server closes at once (its
/// timeouts are 5 s).
fn close_without_close_notify(strategy: Strategy) {
    let site = Site::new();
    let (limits, _) = slow_handshake_limits(SECOND);
    let rig = TlsRig::measured(strategy, &site, library_cert(), limits, Version::HTTP_11);
    for after_request in [false, true] {
        let mut conn = TlsConn::open(rig.addr, &rig.client());
        if after_request {
            keep_alive_get(&mut conn, "before the close");
        }
        conn.close_without_notify();
        let took = rig.assert_fds_back("a close without close_notify");
        assert!(
            took < 2 * SECOND,
            "the server held a connection closed without close_notify for {took:?} on \
             {strategy} (after a request: {after_request})"
        );
    }
    rig.assert_healthy("closes without close_notify");
    rig.finish();
}
