//! Failures: addresses that cannot be bound or parsed, and requests that go wrong, are
//! reported as errors and never stop the server.

mod common;

use std::io::{self, Write};
use std::net::{TcpListener, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::sync::mpsc::{self, Sender};

use common::*;
use socketserver::{
    ClientAddress, Concurrency, HandlerResult, RequestError, RequestHandler, Server, ServerHooks,
    StreamRequest, Synchronous, TcpServer, TcpTransport, Threading, UdpServer, UnixDatagramServer,
    UnixDatagramTransport, UnixStreamServer,
};

// ---------------------------------------------------------------------------------------
// Binding
// ---------------------------------------------------------------------------------------

#[test]
fn binding_a_tcp_port_in_use_fails_with_addr_in_use() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap();
    let err = TcpServer::bind(address, UpperEcho).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::AddrInUse, "{err}");
    // The error says which address.
    assert!(err.to_string().contains(&address.to_string()), "{err}");
}

/// An HTTP handler that is never asked anything.
#[derive(Clone)]
struct Quiet;

impl socketserver::http::HttpHandler for Quiet {}

#[test]
fn http_servers_reuse_their_address_as_pythons_do_and_tcp_servers_do_not() {
    let reuses = |socket: &std::net::TcpListener| socket2::SockRef::from(socket).reuse_address();
    let http = socketserver::http::HttpServer::bind("127.0.0.1:0", Quiet).unwrap();
    assert!(reuses(http.socket().unwrap().listener()).unwrap());
    let tcp = TcpServer::bind("127.0.0.1:0", UpperEcho).unwrap();
    assert!(!reuses(tcp.socket().unwrap().listener()).unwrap());
    // The builder decides, either way.
    let http = socketserver::http::HttpServer::builder("127.0.0.1:0", Quiet)
        .allow_reuse_address(false)
        .build()
        .unwrap();
    assert!(!reuses(http.socket().unwrap().listener()).unwrap());
}

#[test]
fn binding_a_udp_port_in_use_fails_with_addr_in_use() {
    let taken = UdpSocket::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap();
    let err = UdpServer::bind(address, UpperDatagram).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::AddrInUse, "{err}");
}

#[test]
fn unix_server_on_an_existing_path_fails_with_addr_in_use() {
    let dir = TempDir::new();

    // A plain file is in the way, and is left alone.
    let file = dir.join("file.sock");
    std::fs::write(&file, b"keep me").unwrap();
    let err = UnixStreamServer::bind(&file, UpperEcho).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::AddrInUse, "{err}");
    assert_eq!(std::fs::read(&file).unwrap(), b"keep me");

    // Another server's socket is in the way; that server goes on serving.
    let path = dir.join("taken.sock");
    let (first, thread) = serve(UnixStreamServer::bind(&path, UpperEcho).unwrap());
    let err = UnixStreamServer::bind(&path, UpperEcho).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::AddrInUse, "{err}");
    let mut client = connect_unix(&path);
    assert_eq!(exchange_line(&mut client, "first"), "FIRST\n");
    drop(client);
    stop(&first, thread);
}

#[test]
fn invalid_addresses_are_errors() {
    // None of these gets as far as a name lookup, so the test needs no resolver.
    for address in ["not an address", "127.0.0.1", "127.0.0.1:99999", ""] {
        let err = TcpServer::bind(address, UpperEcho).expect_err(address);
        assert_eq!(
            err.kind(),
            io::ErrorKind::InvalidInput,
            "{address:?}: {err}"
        );
        let err = UdpServer::bind(address, UpperDatagram).expect_err(address);
        assert_eq!(
            err.kind(),
            io::ErrorKind::InvalidInput,
            "{address:?}: {err}"
        );
        let err = TcpServer::builder(address, UpperEcho)
            .bind_and_activate(false)
            .build()
            .expect_err(address);
        assert_eq!(
            err.kind(),
            io::ErrorKind::InvalidInput,
            "{address:?}: {err}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Failing requests
// ---------------------------------------------------------------------------------------

/// Panics on "panic", otherwise answers one line in upper case.
#[derive(Clone)]
struct PanicsOnRequest;

impl RequestHandler for PanicsOnRequest {
    type Request = StreamRequest;

    fn handle(&mut self, req: &mut StreamRequest) -> HandlerResult {
        let line = req.rfile.readline(1024)?;
        if line.trim_ascii() == b"panic" {
            panic!("asked to panic");
        }
        req.wfile.write_all(&line.to_ascii_uppercase())?;
        Ok(())
    }
}

fn a_panic_does_not_stop<C: Concurrency>(server: Server<TcpTransport, PanicsOnRequest, C>) {
    let (server, thread) = serve(server);
    for _ in 0..2 {
        let mut client = connect_tcp(&server.server_address());
        client.write_all(b"panic\n").unwrap();
        assert_eq!(
            read_to_end(&mut client),
            b"",
            "the panicking request is closed"
        );
        assert!(server.handle().is_serving(), "still serving after a panic");
    }
    let mut client = connect_tcp(&server.server_address());
    assert_eq!(exchange_line(&mut client, "next"), "NEXT\n");
    stop(&server, thread);
}

#[test]
fn a_handler_panic_does_not_stop_a_synchronous_server() {
    let server = TcpServer::builder("127.0.0.1:0", PanicsOnRequest)
        .concurrency(Synchronous)
        .build()
        .unwrap();
    a_panic_does_not_stop(server);
}

#[test]
fn a_handler_panic_does_not_stop_a_threading_server() {
    let server = TcpServer::builder("127.0.0.1:0", PanicsOnRequest)
        .concurrency(Threading::new())
        .build()
        .unwrap();
    a_panic_does_not_stop(server);
}

/// Sends the client and the I/O error kind of every failure `handle_error` sees to the test.
struct ReportKinds(Sender<(ClientAddress, Option<io::ErrorKind>)>);

impl ServerHooks<UnixDatagramTransport> for ReportKinds {
    fn handle_error(&self, client: &ClientAddress, error: &RequestError) {
        let kind = match error {
            RequestError::Failed(err) => err.downcast_ref::<io::Error>().map(io::Error::kind),
            RequestError::Panicked(_) => None,
        };
        let _ = self.0.send((client.clone(), kind));
    }
}

#[test]
fn a_reply_to_an_unnamed_unix_datagram_client_is_an_error() {
    let dir = TempDir::new();
    let path = dir.join("dgram.sock");
    let (errors, reported) = mpsc::channel();
    let server = UnixDatagramServer::builder(&path, UpperDatagram)
        .hooks(ReportKinds(errors))
        .build()
        .unwrap();
    let (server, thread) = serve(server);

    // The client never binds, so there is no address to answer.
    let unnamed = UnixDatagram::unbound().unwrap();
    unnamed.send_to(b"who am i", &path).unwrap();
    let (client, kind) = reported
        .recv_timeout(IO_TIMEOUT)
        .expect("handle_error reports the undeliverable reply");
    assert_eq!(client, ClientAddress::Unix(None), "the unnamed client");
    assert_eq!(kind, Some(io::ErrorKind::InvalidInput));

    // The server goes on serving clients it can answer.
    let named = UnixDatagram::bind(dir.join("client.sock")).unwrap();
    named.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    named.send_to(b"named", &path).unwrap();
    let mut buf = [0; 16];
    let n = named.recv(&mut buf).expect("a reply");
    assert_eq!(&buf[..n], b"NAMED");
    assert!(server.handle().is_serving());
    stop(&server, thread);
}
