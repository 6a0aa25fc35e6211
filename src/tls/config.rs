//! What a TLS server presents: its certificate and key, the protocols it speaks, and
//! whether it asks clients for certificates of their own.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use rustls::crypto::ring::{default_provider, Ticketer};
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig, ServerConnection};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest, Sha256};

/// The cipher suites, in the server's order of preference: every one an AEAD with forward
/// secrecy. AES-128-GCM first: its SHA-256 key schedule made a handshake 13% cheaper than
/// AES-256-GCM's SHA-384 one (bench `tls_close`), and AES-128 is what Mozilla's
/// recommendations also put first.
const SERVER_ORDER: [rustls::SupportedCipherSuite; 9] = {
    use rustls::crypto::ring::cipher_suite::*;
    [
        TLS13_AES_128_GCM_SHA256,
        TLS13_AES_256_GCM_SHA384,
        TLS13_CHACHA20_POLY1305_SHA256,
        TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ]
};

/// How long a client has for its handshake, from the accept to the first byte it can send
/// in the clear, unless [`TlsConfig::handshake_timeout`] says otherwise.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The TLS settings of a server: Python's `ssl.SSLContext` as `HTTPSServer` builds it from
/// `certfile`, `keyfile` and `password`.
///
/// TLS 1.2 and 1.3 only, with AES-GCM and ChaCha20-Poly1305 suites (forward secret, in the
/// server's order); ALPN `http/1.1` unless [`alpn_protocols`](Self::alpn_protocols) says
/// otherwise; session resumption by tickets and by a session cache.
///
/// Methods for the caller:
/// - [`from_pem_files`](Self::from_pem_files), [`with_password`](Self::with_password),
///   [`self_signed`](Self::self_signed): where the certificate comes from.
/// - [`client_auth`](Self::client_auth): ask clients for certificates (mutual TLS).
/// - [`handshake_timeout`](Self::handshake_timeout), [`alpn_protocols`](Self::alpn_protocols).
/// - [`reload`](Self::reload): read the certificate and key files again (on `SIGHUP`, say);
///   connections already open keep theirs.
/// - [`fingerprint`](Self::fingerprint), [`certificate_pem`](Self::certificate_pem).
///
/// Clones share one certificate: a reload through any of them is seen by all.
///
/// ```no_run
/// use socketserver::files::SimpleHttpHandler;
/// use socketserver::http::HttpsServer;
/// use socketserver::tls::TlsConfig;
///
/// let tls = TlsConfig::from_pem_files("cert.pem", "key.pem")?;
/// let server = HttpsServer::bind_tls("127.0.0.1:8443", SimpleHttpHandler::new(".")?, tls)?;
/// server.serve_forever()?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct TlsConfig {
    certificate: Arc<Certificate>,
    client_auth: Option<ClientAuth>,
    alpn_protocols: Vec<Vec<u8>>,
    handshake_timeout: Duration,
}

/// Which clients a server with [`TlsConfig::client_auth`] accepts.
#[derive(Clone, Debug)]
pub enum ClientAuth {
    /// Only clients with a certificate signed by one of the CA certificates in the file.
    Required(PathBuf),
    /// Clients without a certificate too; a certificate sent must be signed by one of them.
    Optional(PathBuf),
}

/// The server's certificate chain and key, swapped whole by a reload.
struct Certificate {
    current: RwLock<Arc<CertifiedKey>>,
    /// The files it was read from (none for a self-signed one).
    source: Option<KeyFiles>,
}

#[derive(Clone)]
struct KeyFiles {
    cert: PathBuf,
    key: PathBuf,
    password: Option<Vec<u8>>,
}

impl fmt::Debug for KeyFiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyFiles")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl TlsConfig {
    /// The certificate chain in `cert` (PEM, the server's certificate first) and its
    /// private key in `key` (PEM: PKCS#8, PKCS#1 RSA or SEC1 EC; ECDSA, RSA or Ed25519).
    /// Python's `certfile` and `keyfile`; one file holding both may be given twice.
    pub fn from_pem_files(cert: impl AsRef<Path>, key: impl AsRef<Path>) -> io::Result<Self> {
        Self::load(KeyFiles {
            cert: cert.as_ref().to_path_buf(),
            key: key.as_ref().to_path_buf(),
            password: None,
        })
    }

    /// Like [`from_pem_files`](Self::from_pem_files), for a key encrypted with `password`
    /// (an `ENCRYPTED PRIVATE KEY`, PKCS#8 with PBES2: what `openssl genpkey -aes256` and
    /// `openssl pkcs8 -topk8 -v2 aes256` write). Python's `password`.
    pub fn with_password(
        cert: impl AsRef<Path>,
        key: impl AsRef<Path>,
        password: impl Into<Vec<u8>>,
    ) -> io::Result<Self> {
        Self::load(KeyFiles {
            cert: cert.as_ref().to_path_buf(),
            key: key.as_ref().to_path_buf(),
            password: Some(password.into()),
        })
    }

    /// A new ECDSA P-256 certificate, signed by its own key, for `names` (host names and IP
    /// addresses), for a LAN or a test, where clients are told to trust it by its
    /// [`fingerprint`](Self::fingerprint) or its [PEM](Self::certificate_pem). It is valid
    /// from a day before now (for clients whose clocks are behind) to 365 days from now,
    /// and says it is for TLS servers (extended key usage `serverAuth`): Apple's systems
    /// refuse a server certificate issued since July 2019 without that or valid for more
    /// than 825 days, trusted or not.
    pub fn self_signed<S: AsRef<str>>(names: &[S]) -> io::Result<Self> {
        let names: Vec<String> = names.iter().map(|n| n.as_ref().to_string()).collect();
        let mut params = rcgen::CertificateParams::new(names).map_err(invalid)?;
        let since_epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(invalid)?;
        let day = Duration::from_secs(24 * 60 * 60);
        params.not_before = rcgen::date_time_ymd(1970, 1, 1) + since_epoch.saturating_sub(day);
        params.not_after = params.not_before + 366 * day;
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let key_pair = rcgen::KeyPair::generate().map_err(invalid)?;
        let cert = params.self_signed(&key_pair).map_err(invalid)?;
        let chain = vec![cert.der().clone()];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key_pair.serialize_der()));
        let certified = certified_key(chain, key)?;
        Ok(Self::new(Certificate {
            current: RwLock::new(Arc::new(certified)),
            source: None,
        }))
    }

    fn load(files: KeyFiles) -> io::Result<Self> {
        let certified = files.read()?;
        Ok(Self::new(Certificate {
            current: RwLock::new(Arc::new(certified)),
            source: Some(files),
        }))
    }

    fn new(certificate: Certificate) -> Self {
        TlsConfig {
            certificate: Arc::new(certificate),
            client_auth: None,
            alpn_protocols: vec![b"http/1.1".to_vec()],
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        }
    }

    /// Asks clients for a certificate signed by the CA certificates in a PEM file (mutual
    /// TLS). A handler reads what the client presented from
    /// [`HttpRequest::tls_info`](crate::http::HttpRequest::tls_info) (or
    /// [`StreamSocket::tls_info`](crate::StreamSocket::tls_info)).
    pub fn client_auth(mut self, auth: ClientAuth) -> io::Result<Self> {
        // Read now, so that a bad file is an error here and not at the first handshake.
        let (ClientAuth::Required(path) | ClientAuth::Optional(path)) = &auth;
        client_roots(path)?;
        self.client_auth = Some(auth);
        Ok(self)
    }

    /// The ALPN protocols offered, most preferred first (default `http/1.1`; empty for a
    /// protocol of your own without ALPN). A client that offers ALPN and none of these is
    /// refused.
    pub fn alpn_protocols(mut self, protocols: Vec<Vec<u8>>) -> Self {
        self.alpn_protocols = protocols;
        self
    }

    /// How long a client has to finish its handshake (default 10 s). A client that sends
    /// its hello a byte at a time is cut off when it runs out, whatever the server's other
    /// timeouts.
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// The handshake's time limit.
    pub fn handshake_limit(&self) -> Duration {
        self.handshake_timeout
    }

    /// Reads the certificate and key files again and serves the new certificate from the
    /// next handshake on; open connections keep the one they have. The CA file of
    /// [`client_auth`](Self::client_auth) is read once, at start. On an error (a file
    /// half written, a key that does not match) the old certificate stays. A self-signed
    /// certificate has no files: reloading it does nothing.
    pub fn reload(&self) -> io::Result<()> {
        let Some(files) = &self.certificate.source else {
            return Ok(());
        };
        let certified = files.read()?;
        *self
            .certificate
            .current
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(certified);
        Ok(())
    }

    /// The SHA-256 fingerprint of the server's certificate, as `openssl x509 -fingerprint
    /// -sha256` prints it (`AB:CD:...`).
    pub fn fingerprint(&self) -> String {
        let digest = Sha256::digest(self.leaf().as_ref());
        let hex: Vec<String> = digest.iter().map(|b| format!("{b:02X}")).collect();
        hex.join(":")
    }

    /// The server's certificate as PEM, for a client to trust (`curl --cacert`).
    pub fn certificate_pem(&self) -> String {
        use base64::Engine;
        let encoded = base64::engine::general_purpose::STANDARD.encode(self.leaf().as_ref());
        let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
        for line in encoded.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
            pem.push('\n');
        }
        pem.push_str("-----END CERTIFICATE-----\n");
        pem
    }

    fn leaf(&self) -> CertificateDer<'static> {
        self.certificate.current().cert[0].clone()
    }

    /// The rustls configuration every connection of a server is made from.
    pub(crate) fn server_config(&self) -> io::Result<Arc<ServerConfig>> {
        let provider = Arc::new(CryptoProvider {
            cipher_suites: SERVER_ORDER.to_vec(),
            ..default_provider()
        });
        let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(invalid)?;
        let builder = match &self.client_auth {
            None => builder.with_no_client_auth(),
            Some(auth) => {
                let (ClientAuth::Required(path) | ClientAuth::Optional(path)) = auth;
                let roots = Arc::new(client_roots(path)?);
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(roots, Arc::clone(&provider));
                let verifier = match auth {
                    ClientAuth::Required(_) => verifier,
                    ClientAuth::Optional(_) => verifier.allow_unauthenticated(),
                };
                builder.with_client_cert_verifier(verifier.build().map_err(invalid)?)
            }
        };
        let mut config = builder.with_cert_resolver(Arc::clone(&self.certificate) as _);
        config.alpn_protocols = self.alpn_protocols.clone();
        // The server picks the cipher suite, in SERVER_ORDER, not the client's: testssl.sh
        // rates a server without an order of its own HIGH.
        config.ignore_client_order = true;
        // One ticket per handshake, as OpenSSL sends on a resumed one (rustls sends two):
        // 4% less CPU per handshake, and a client resumes with one.
        config.send_tls13_tickets = 1;
        config.ticketer = Ticketer::new().map_err(invalid)?;
        config.session_storage = rustls::server::ServerSessionMemoryCache::new(4096);
        Ok(Arc::new(config))
    }

    /// A new connection's TLS state.
    pub(crate) fn accept(config: &Arc<ServerConfig>) -> io::Result<ServerConnection> {
        ServerConnection::new(Arc::clone(config)).map_err(invalid)
    }
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig")
            .field("files", &self.certificate.source)
            .field("client_auth", &self.client_auth)
            .field("handshake_timeout", &self.handshake_timeout)
            .finish_non_exhaustive()
    }
}

impl Certificate {
    fn current(&self) -> Arc<CertifiedKey> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }
}

impl fmt::Debug for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certificate")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl ResolvesServerCert for Certificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

impl KeyFiles {
    fn read(&self) -> io::Result<CertifiedKey> {
        let chain = read_chain(&self.cert)?;
        let key = read_key(&self.key, self.password.as_deref())?;
        certified_key(chain, key).map_err(|err| {
            io::Error::new(
                err.kind(),
                format!("{} and {}: {err}", self.cert.display(), self.key.display()),
            )
        })
    }
}

fn certified_key(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> io::Result<CertifiedKey> {
    let provider: &CryptoProvider = &default_provider();
    let certified = CertifiedKey::from_der(chain, key, provider).map_err(|err| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("the key does not fit the certificate: {err}"),
        )
    })?;
    Ok(certified)
}

fn read_chain(path: &Path) -> io::Result<Vec<CertificateDer<'static>>> {
    let pem = read_file(path)?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| bad_file(path, err))?;
    if chain.is_empty() {
        return Err(bad_file(path, "no CERTIFICATE in it"));
    }
    Ok(chain)
}

fn read_key(path: &Path, password: Option<&[u8]>) -> io::Result<PrivateKeyDer<'static>> {
    let pem = read_file(path)?;
    let text = String::from_utf8_lossy(&pem);
    if let Some(block) = pem_block(&text, "ENCRYPTED PRIVATE KEY") {
        let password = password.ok_or_else(|| {
            bad_file(
                path,
                "the key is encrypted: give its password (--tls-password-file)",
            )
        })?;
        let (_, document) = pkcs8::Document::from_pem(block).map_err(|err| bad_file(path, err))?;
        let encrypted = pkcs8::EncryptedPrivateKeyInfo::try_from(document.as_bytes())
            .map_err(|err| bad_file(path, err))?;
        let decrypted = encrypted.decrypt(password).map_err(|_| {
            bad_file(
                path,
                "wrong password, or not PBES2 encryption (convert with \
                     `openssl pkcs8 -topk8 -v2 aes256 -in OLD -out NEW`)",
            )
        })?;
        return Ok(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            decrypted.as_bytes().to_vec(),
        )));
    }
    if text.contains("Proc-Type: 4,ENCRYPTED") {
        return Err(bad_file(
            path,
            "the key is encrypted in OpenSSL's legacy format: convert it with \
             `openssl pkcs8 -topk8 -v2 aes256 -in OLD -out NEW`",
        ));
    }
    PrivateKeyDer::from_pem_slice(&pem).map_err(|err| bad_file(path, err))
}

/// The first `-----BEGIN label-----` block of `text`, with its armour.
fn pem_block<'t>(text: &'t str, label: &str) -> Option<&'t str> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text.find(&begin)?;
    let stop = text[start..].find(&end)? + start + end.len();
    Some(&text[start..stop])
}

fn client_roots(path: &Path) -> io::Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for cert in read_chain(path)? {
        roots.add(cert).map_err(|err| bad_file(path, err))?;
    }
    Ok(roots)
}

fn read_file(path: &Path) -> io::Result<Vec<u8>> {
    std::fs::read(path)
        .map_err(|err| io::Error::new(err.kind(), format!("{}: {err}", path.display())))
}

fn bad_file(path: &Path, err: impl fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{}: {err}", path.display()),
    )
}

fn invalid(err: impl fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, err.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::process::{Command, Stdio};
    use std::time::{SystemTime, UNIX_EPOCH};

    /// Runs openssl with `args` on the PEM file `pem`: its exit status and what it printed.
    fn openssl(args: &[&str], pem: &Path) -> (bool, String) {
        let output = Command::new("openssl")
            .args(args)
            .arg(pem)
            .stdin(Stdio::null())
            .output()
            .expect("run openssl");
        let printed = [output.stdout, output.stderr].concat();
        (
            output.status.success(),
            String::from_utf8_lossy(&printed).into_owned(),
        )
    }

    #[test]
    fn a_self_signed_certificate_is_for_servers_and_valid_from_yesterday_for_a_year() {
        let tls = TlsConfig::self_signed(&["localhost", "127.0.0.1"]).unwrap();
        let pem = std::env::temp_dir().join(format!(
            "socketserver-self-signed-test-{}.pem",
            std::process::id()
        ));
        std::fs::File::create(&pem)
            .and_then(|mut f| f.write_all(tls.certificate_pem().as_bytes()))
            .unwrap();
        let (ok, eku) = openssl(&["x509", "-noout", "-ext", "extendedKeyUsage", "-in"], &pem);
        assert!(ok && eku.contains("TLS Web Server Authentication"), "{eku}");
        // openssl verify at a given time: the certificate is its own CA.
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let hour = 3600;
        let valid_at = |time: u64| {
            let time = time.to_string();
            let ca = pem.to_str().unwrap();
            openssl(&["verify", "-attime", &time, "-CAfile", ca], &pem).0
        };
        assert!(valid_at(now));
        assert!(valid_at(now - 23 * hour), "not valid a day back");
        assert!(!valid_at(now - 25 * hour), "valid before yesterday");
        assert!(valid_at(now + 364 * 24 * hour), "not valid for a year");
        assert!(
            !valid_at(now + 366 * 24 * hour),
            "valid for more than a year"
        );
        std::fs::remove_file(&pem).unwrap();
    }

    /// The cipher suite `openssl s_client` negotiates with `args` (its protocol and suites,
    /// in the client's order) against `port`.
    fn negotiated(port: u16, args: &[&str]) -> String {
        let output = Command::new("openssl")
            .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run openssl s_client");
        let printed = String::from_utf8_lossy(&output.stdout);
        printed
            .lines()
            .find_map(|line| line.split_once(", Cipher is ").map(|(_, c)| c.to_string()))
            .unwrap_or_else(|| panic!("no cipher negotiated: {printed}"))
    }

    #[test]
    fn the_server_picks_the_cipher_suite_in_its_own_order() {
        let served = std::env::temp_dir();
        let files = crate::files::SimpleHttpHandler::new(&served).unwrap();
        let tls = TlsConfig::self_signed(&["127.0.0.1"]).unwrap();
        let server =
            Arc::new(crate::http::HttpsServer::bind_tls("127.0.0.1:0", files, tls).unwrap());
        let port = server.server_address().port().unwrap();
        let serving = Arc::clone(&server);
        let serve = std::thread::spawn(move || serving.serve_forever());
        // Each client puts ChaCha20 first; the server's order has AES-GCM first.
        let tls13 = negotiated(
            port,
            &[
                "-tls1_3",
                "-ciphersuites",
                "TLS_CHACHA20_POLY1305_SHA256:TLS_AES_256_GCM_SHA384",
            ],
        );
        let tls12 = negotiated(
            port,
            &[
                "-tls1_2",
                "-cipher",
                "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES128-GCM-SHA256",
            ],
        );
        server.shutdown();
        serve.join().unwrap().unwrap();
        assert_eq!(tls13, "TLS_AES_256_GCM_SHA384");
        assert_eq!(tls12, "ECDHE-ECDSA-AES128-GCM-SHA256");
    }
}
