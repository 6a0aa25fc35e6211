//! TLS under handlers that are not HTTP: a server that speaks first (Python's time server of
//! the seeds), and a line echo, on every strategy, with Python's `ssl` as the client.

mod common;

use std::io::Write;
use std::process::Command;

use common::*;
use socketserver::tls::{TlsConfig, TlsTransport};
use socketserver::{
    Concurrency, EventLoop, HandlerResult, RequestHandler, Server, StreamRequest, Synchronous,
    ThreadPool, Threading,
};

/// Writes a greeting before reading anything, then echoes lines in upper case.
#[derive(Clone)]
struct Greeter;

impl RequestHandler for Greeter {
    type Request = StreamRequest;

    fn handle(&mut self, req: &mut StreamRequest) -> HandlerResult {
        req.wfile.write_all(b"hello, this is TLS\n")?;
        req.wfile.flush()?;
        loop {
            let line = req.rfile.readline(1024)?;
            if line.is_empty() {
                return Ok(());
            }
            req.wfile.write_all(&line.to_ascii_uppercase())?;
            req.wfile.flush()?;
        }
    }
}

/// The client: trusts `pem`, reads the greeting, sends two lines, closes; prints what it
/// got and the TLS version.
const CLIENT: &str = r#"
import socket, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[2])
with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10) as raw:
    with ctx.wrap_socket(raw, server_hostname="localhost") as s:
        f = s.makefile("rwb")
        greeting = f.readline()
        f.write(b"one\ntwo\n"); f.flush()
        print(greeting.decode().strip(), f.readline().decode().strip(), f.readline().decode().strip(), s.version())
"#;

/// `handler` over TLS on `concurrency`, with a self-signed certificate for localhost; the
/// certificate's PEM file, for the client to trust, is in the returned directory.
struct TlsServed<H: RequestHandler<Request = StreamRequest>, C: Concurrency> {
    serving: Serving<TlsTransport, H, C, socketserver::NoHooks>,
    port: u16,
    pem: std::path::PathBuf,
    _dir: TempDir,
}

fn serve_tls<H: RequestHandler<Request = StreamRequest>, C: Concurrency>(
    handler: H,
    concurrency: C,
) -> TlsServed<H, C> {
    let dir = TempDir::new();
    let tls = TlsConfig::self_signed(&["localhost"]).unwrap();
    let pem = dir.write("cert.pem", tls.certificate_pem());
    let server = Server::<TlsTransport, _>::builder("127.0.0.1:0", handler)
        .concurrency(concurrency)
        .tls(tls)
        .build()
        .unwrap();
    let port = inet(&server.server_address()).port();
    TlsServed {
        serving: serve(server),
        port,
        pem,
        _dir: dir,
    }
}

impl<H: RequestHandler<Request = StreamRequest>, C: Concurrency> TlsServed<H, C> {
    /// Runs a Python client with the port and the PEM path as arguments; its output.
    fn python(&self, code: &str) -> String {
        let output = Command::new("python3")
            .args([
                "-c",
                code,
                &self.port.to_string(),
                self.pem.to_str().unwrap(),
            ])
            .output()
            .expect("python3");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }

    fn stop(self) {
        let (server, thread) = self.serving;
        stop(&server, thread);
    }
}

fn greets_over_tls<C: Concurrency>(concurrency: C) {
    let served = serve_tls(Greeter, concurrency);
    for _ in 0..3 {
        assert_eq!(served.python(CLIENT), "hello, this is TLS ONE TWO TLSv1.3");
    }
    served.stop();
}

#[test]
fn a_server_that_speaks_first_over_tls_synchronous() {
    greets_over_tls(Synchronous);
}

#[test]
fn a_server_that_speaks_first_over_tls_threading() {
    greets_over_tls(Threading::new());
}

#[test]
fn a_server_that_speaks_first_over_tls_thread_pool() {
    greets_over_tls(ThreadPool::new(2, 8));
}

#[test]
fn a_server_that_speaks_first_over_tls_event_loop_workers() {
    greets_over_tls(EventLoop::new(2).unwrap());
}

/// Python's time server of the seeds: writes the answer and closes, reading nothing.
#[derive(Clone)]
struct Teller;

impl RequestHandler for Teller {
    type Request = StreamRequest;

    fn handle(&mut self, req: &mut StreamRequest) -> HandlerResult {
        req.wfile.write_all(b"it is time\n")?;
        Ok(())
    }
}

const READER: &str = r#"
import socket, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[2])
with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10) as raw:
    with ctx.wrap_socket(raw, server_hostname="localhost") as s:
        data = b""
        while True:
            try:
                chunk = s.recv(100)
            except ssl.SSLEOFError:
                break
            if not chunk:
                break
            data += chunk
        print(data.decode().strip())
"#;

/// A handler that writes and returns without reading: its answer must not wait in the
/// session for a handshake nobody drives.
fn tells_over_tls<C: Concurrency>(concurrency: C) {
    let served = serve_tls(Teller, concurrency);
    assert_eq!(served.python(READER), "it is time");
    served.stop();
}

#[test]
fn a_server_that_only_writes_over_tls_threading() {
    tells_over_tls(Threading::new());
}

#[test]
fn a_server_that_only_writes_over_tls_synchronous() {
    tells_over_tls(Synchronous);
}

#[test]
fn a_tcp_server_refuses_tls_settings_and_a_tls_server_needs_them() {
    let tls = TlsConfig::self_signed(&["localhost"]).unwrap();
    let err = socketserver::TcpServer::builder("127.0.0.1:0", Greeter)
        .tls(tls)
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("TlsTransport"), "{err}");
    let err = Server::<TlsTransport, _>::builder("127.0.0.1:0", Greeter)
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("certificate"), "{err}");
}
