//! Every transport end to end (TCP and UDP over IPv4 and IPv6, Unix stream and datagram),
//! binding and closing the server's socket, and the handler's `rfile`/`wfile` and settings.

mod common;

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use socketserver::{
    ClientAddress, DatagramRequest, HandlerResult, RequestError, RequestHandler, ServerHooks,
    StreamRequest, TcpServer, TcpTransport, UdpServer, UnixDatagramServer, UnixDatagramTransport,
    UnixStreamServer,
};

// ---------------------------------------------------------------------------------------
// Round trips
// ---------------------------------------------------------------------------------------

/// The server bound to `[::1]`; `None` (the test skips) only if this machine has no IPv6
/// loopback address, saying so. Any other failure fails the test.
fn bind_or_skip_ipv6<S>(bound: io::Result<S>) -> Option<S> {
    match bound {
        Err(err) if err.kind() == io::ErrorKind::AddrNotAvailable => {
            eprintln!("skipping: cannot bind [::1] on this machine ({err})");
            None
        }
        bound => Some(bound.expect("bind [::1]:0")),
    }
}

/// Two lines through an upper-case echo server, then a clean close.
fn tcp_round_trip(server: TcpServer<UpperEcho>) {
    let (server, thread) = serve(server);
    let mut client = connect_tcp(&server.server_address());
    assert_eq!(exchange_line(&mut client, "hello"), "HELLO\n");
    assert_eq!(exchange_line(&mut client, "again"), "AGAIN\n");
    client.shutdown(Shutdown::Write).unwrap();
    assert_eq!(
        read_to_end(&mut client),
        b"",
        "end-of-file after the client closed"
    );
    stop(&server, thread);
}

#[test]
fn tcp_ipv4_round_trip() {
    let server = TcpServer::bind("127.0.0.1:0", UpperEcho).unwrap();
    assert!(server.server_address().inet().unwrap().is_ipv4());
    tcp_round_trip(server);
}

#[test]
fn tcp_ipv6_round_trip() {
    let Some(server) = bind_or_skip_ipv6(TcpServer::bind("[::1]:0", UpperEcho)) else {
        return;
    };
    assert!(server.server_address().inet().unwrap().is_ipv6());
    tcp_round_trip(server);
}

/// Two datagrams to an upper-case server from a client bound to `client_address`.
fn udp_round_trip(server: UdpServer<UpperDatagram>, client_address: &str) {
    let (server, thread) = serve(server);
    let server_address = inet(&server.server_address());
    let client = UdpSocket::bind(client_address).unwrap();
    client.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    for message in ["hello", "datagram two"] {
        client.send_to(message.as_bytes(), server_address).unwrap();
        let mut buf = [0; 64];
        let (n, from) = client.recv_from(&mut buf).expect("a reply");
        assert_eq!(&buf[..n], message.to_uppercase().as_bytes());
        assert_eq!(
            from, server_address,
            "the reply comes from the server's socket"
        );
    }
    stop(&server, thread);
}

#[test]
fn udp_ipv4_round_trip() {
    let server = UdpServer::bind("127.0.0.1:0", UpperDatagram).unwrap();
    udp_round_trip(server, "127.0.0.1:0");
}

#[test]
fn udp_ipv6_round_trip() {
    let Some(server) = bind_or_skip_ipv6(UdpServer::bind("[::1]:0", UpperDatagram)) else {
        return;
    };
    udp_round_trip(server, "[::1]:0");
}

#[test]
fn unix_stream_round_trip() {
    let dir = TempDir::new();
    let path = dir.join("stream.sock");
    let (server, thread) = serve(UnixStreamServer::bind(&path, UpperEcho).unwrap());
    assert_eq!(server.server_address().path(), Some(path.as_path()));

    let mut client = connect_unix(&path);
    assert_eq!(exchange_line(&mut client, "over unix"), "OVER UNIX\n");
    client.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_to_end(&mut client), b"");
    stop(&server, thread);
}

#[test]
fn unix_datagram_round_trip() {
    let dir = TempDir::new();
    let path = dir.join("dgram.sock");
    let (server, thread) = serve(UnixDatagramServer::bind(&path, UpperDatagram).unwrap());

    // The client binds a path of its own so that the server has somewhere to reply.
    let client_path = dir.join("client.sock");
    let client = UnixDatagram::bind(&client_path).unwrap();
    client.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    client.send_to(b"unix datagram", &path).unwrap();
    let mut buf = [0; 64];
    let (n, from) = client.recv_from(&mut buf).expect("a reply");
    assert_eq!(&buf[..n], b"UNIX DATAGRAM");
    assert_eq!(from.as_pathname(), Some(path.as_path()));
    stop(&server, thread);
}

/// Upper-cases datagrams, but gives up on a reply after 100 ms instead of 10 s.
#[derive(Clone, Debug, Default)]
struct ImpatientUpper;

impl RequestHandler for ImpatientUpper {
    type Request = DatagramRequest;

    fn setup(&mut self, req: &mut DatagramRequest) -> HandlerResult {
        let socket = req.socket.as_unix().expect("a Unix datagram server");
        socket.set_write_timeout(Some(Duration::from_millis(100)))?;
        Ok(())
    }

    fn handle(&mut self, req: &mut DatagramRequest) -> HandlerResult {
        UpperDatagram.handle(req)
    }
}

/// Sends the kind of every failed request to the test.
struct ReportKinds(Sender<io::ErrorKind>);

impl ServerHooks<UnixDatagramTransport> for ReportKinds {
    fn handle_error(&self, _client: &ClientAddress, error: &RequestError) {
        let kind = match error {
            RequestError::Failed(err) => err
                .downcast_ref::<io::Error>()
                .map_or(io::ErrorKind::Other, io::Error::kind),
            RequestError::Panicked(_) => io::ErrorKind::Other,
        };
        let _ = self.0.send(kind);
    }
}

#[test]
fn unix_datagram_reply_to_a_client_that_never_reads_times_out() {
    // A Unix datagram client that does not read fills its queue; the reply must then fail
    // after the send timeout, not block (or spin) forever.
    let dir = TempDir::new();
    let path = dir.join("dgram.sock");
    let (errors, reported) = mpsc::channel();
    let server = UnixDatagramServer::builder(&path, ImpatientUpper)
        .hooks(ReportKinds(errors))
        .build()
        .unwrap();
    let (server, thread) = serve(server);

    let deaf_path = dir.join("deaf.sock");
    let deaf = UnixDatagram::bind(&deaf_path).unwrap();
    deaf.set_write_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut first_error = None;
    for _ in 0..100_000 {
        // Sending blocks too once the server stops reading: a timed-out send is fine.
        let _ = deaf.send_to(b"never read", &path);
        if let Ok(kind) = reported.try_recv() {
            first_error = Some(kind);
            break;
        }
    }
    assert_eq!(first_error, Some(io::ErrorKind::TimedOut));

    // Once the deaf client is gone, its queued datagrams fail fast and others are served.
    drop(deaf);
    std::fs::remove_file(&deaf_path).unwrap();
    let client_path = dir.join("client.sock");
    let client = UnixDatagram::bind(&client_path).unwrap();
    client.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    client.send_to(b"still serving", &path).unwrap();
    let mut buf = [0; 64];
    let (n, _) = client.recv_from(&mut buf).expect("a reply");
    assert_eq!(&buf[..n], b"STILL SERVING");
    stop(&server, thread);
}

// ---------------------------------------------------------------------------------------
// Binding, activating and closing
// ---------------------------------------------------------------------------------------

#[test]
fn port_zero_reports_the_real_port() {
    let tcp = TcpServer::bind("127.0.0.1:0", UpperEcho).unwrap();
    let address = inet(&tcp.server_address());
    assert_ne!(address.port(), 0);
    assert_eq!(address.ip().to_string(), "127.0.0.1");
    assert_eq!(tcp.server_address().port(), Some(address.port()));
    // The port is really the listening socket's: a plain connect reaches it.
    TcpStream::connect(address).expect("connect to the reported port");
    assert_eq!(
        tcp.socket().unwrap().listener().local_addr().unwrap(),
        address
    );

    let udp = UdpServer::bind("127.0.0.1:0", UpperDatagram).unwrap();
    let port = udp.server_address().port().unwrap();
    assert_ne!(port, 0);
    let local = udp
        .socket()
        .unwrap()
        .socket()
        .as_udp()
        .unwrap()
        .local_addr();
    assert_eq!(local.unwrap().port(), port);
}

#[test]
fn bind_and_activate_false_then_bind_and_activate_by_hand() {
    let server = TcpServer::builder("127.0.0.1:0", UpperEcho)
        .bind_and_activate(false)
        .build()
        .unwrap();
    assert!(server.fileno() >= 0, "the socket exists before binding");
    assert_eq!(server.server_address().port(), Some(0), "not bound yet");

    server.server_bind().unwrap();
    let address = server.server_address();
    assert_ne!(address.port(), Some(0), "bound to a real port");
    let refused = TcpStream::connect(inet(&address)).unwrap_err();
    assert_eq!(
        refused.kind(),
        io::ErrorKind::ConnectionRefused,
        "bound but not listening yet"
    );

    server.server_activate().unwrap();
    tcp_round_trip(server);
}

#[test]
fn fileno_is_the_socket_until_server_close() {
    let server = TcpServer::bind("127.0.0.1:0", UpperEcho).unwrap();
    let fd = server.fileno();
    assert!(fd >= 0);
    let listener = server.socket().unwrap();
    assert_eq!(
        std::os::fd::AsRawFd::as_raw_fd(listener.listener()),
        fd,
        "fileno() is the listening socket"
    );
    drop(listener);

    server.server_close();
    assert_eq!(server.fileno(), -1);
    assert!(server.socket().is_none());
    server.server_close(); // idempotent
    assert_eq!(server.fileno(), -1);
}

#[test]
fn unix_socket_file_is_removed_by_server_close() {
    let dir = TempDir::new();
    let path = dir.join("close.sock");
    let (server, thread) = serve(UnixStreamServer::bind(&path, UpperEcho).unwrap());
    assert!(path.exists(), "the socket file exists while serving");
    let mut client = connect_unix(&path);
    assert_eq!(exchange_line(&mut client, "x"), "X\n");
    drop(client); // the synchronous handler serves it until end-of-file
    stop(&server, thread);
    assert!(path.exists(), "shutdown() alone keeps the socket file");

    server.server_close();
    assert!(!path.exists(), "server_close() removes the socket file");
    server.server_close(); // idempotent, and no complaint about the missing file
}

#[test]
fn unix_socket_files_are_removed_on_drop() {
    let dir = TempDir::new();
    let stream_path = dir.join("drop-stream.sock");
    let dgram_path = dir.join("drop-dgram.sock");
    let stream = UnixStreamServer::bind(&stream_path, UpperEcho).unwrap();
    let dgram = UnixDatagramServer::bind(&dgram_path, UpperDatagram).unwrap();
    assert!(stream_path.exists() && dgram_path.exists());
    drop(stream);
    drop(dgram);
    assert!(
        !stream_path.exists(),
        "dropping a Unix stream server removes its file"
    );
    assert!(
        !dgram_path.exists(),
        "dropping a Unix datagram server removes its file"
    );
}

#[test]
fn server_close_leaves_a_replaced_socket_file_alone() {
    let dir = TempDir::new();
    let path = dir.join("replaced.sock");
    let server = UnixStreamServer::bind(&path, UpperEcho).unwrap();
    // Someone else removes the socket file and puts their own file there.
    std::fs::remove_file(&path).unwrap();
    std::fs::write(&path, b"not yours").unwrap();

    server.server_close();
    assert_eq!(
        std::fs::read(&path).expect("the replacement still exists"),
        b"not yours"
    );

    // Same for a Unix datagram server whose file was replaced by another server's socket.
    let dgram_path = dir.join("replaced-dgram.sock");
    let first = UnixDatagramServer::bind(&dgram_path, UpperDatagram).unwrap();
    std::fs::remove_file(&dgram_path).unwrap();
    let second = UnixDatagramServer::bind(&dgram_path, UpperDatagram).unwrap();
    first.server_close();
    assert!(
        dgram_path.exists(),
        "the second server's socket file survives"
    );
    second.server_close();
    assert!(!dgram_path.exists());
}

// ---------------------------------------------------------------------------------------
// rfile and wfile
// ---------------------------------------------------------------------------------------

/// Reads one line with a limit of 5, then the rest of the line, and reports both.
#[derive(Clone)]
struct LimitedLines;

impl RequestHandler for LimitedLines {
    type Request = StreamRequest;

    fn handle(&mut self, req: &mut StreamRequest) -> HandlerResult {
        let first = req.rfile.readline(5)?;
        let rest = req.rfile.readline(100)?;
        let short = req.rfile.readline(100)?;
        let reply = format!(
            "{}|{}|{}\n",
            String::from_utf8_lossy(&first).escape_debug(),
            String::from_utf8_lossy(&rest).escape_debug(),
            String::from_utf8_lossy(&short).escape_debug(),
        );
        req.wfile.write_all(reply.as_bytes())?;
        Ok(())
    }
}

#[test]
fn rfile_readline_respects_its_limit() {
    let (server, thread) = serve(TcpServer::bind("127.0.0.1:0", LimitedLines).unwrap());
    let mut client = connect_tcp(&server.server_address());
    client.write_all(b"abcdefghij\nxy\n").unwrap();
    assert_eq!(read_line(&mut client).unwrap(), "abcde|fghij\\n|xy\\n\n");
    stop(&server, thread);
}

/// Writes to the reply in `handle` and again in `finish`.
#[derive(Clone)]
struct ReplyInFinish;

impl RequestHandler for ReplyInFinish {
    type Request = DatagramRequest;

    fn handle(&mut self, req: &mut DatagramRequest) -> HandlerResult {
        req.wfile.extend_from_slice(b"handle+");
        Ok(())
    }

    fn finish(&mut self, req: &mut DatagramRequest) -> HandlerResult {
        req.wfile.extend_from_slice(b"finish");
        Ok(())
    }
}

#[test]
fn datagram_reply_is_sent_after_finish() {
    let (server, thread) = serve(UdpServer::bind("127.0.0.1:0", ReplyInFinish).unwrap());
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    client
        .send_to(b"anything", inet(&server.server_address()))
        .unwrap();
    let mut buf = [0; 64];
    let n = client.recv(&mut buf).expect("a reply");
    assert_eq!(
        &buf[..n],
        b"handle+finish",
        "one datagram, sent after finish"
    );

    // Exactly one datagram per request.
    client
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let extra = client.recv(&mut buf).unwrap_err();
    assert!(matches!(
        extra.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    ));
    stop(&server, thread);
}

/// Buffers its writes (`WBUFSIZE`), writes in `handle`, waits to be released, writes again
/// in `finish`, and never flushes.
#[derive(Clone)]
struct Buffered {
    wrote: Sender<()>,
    release: Arc<Mutex<mpsc::Receiver<()>>>,
}

impl RequestHandler for Buffered {
    type Request = StreamRequest;
    const WBUFSIZE: usize = 65536;

    fn handle(&mut self, req: &mut StreamRequest) -> HandlerResult {
        req.wfile.write_all(b"from handle, ")?;
        self.wrote.send(())?;
        self.release.lock().unwrap().recv_timeout(IO_TIMEOUT)?;
        Ok(())
    }

    fn finish(&mut self, req: &mut StreamRequest) -> HandlerResult {
        req.wfile.write_all(b"from finish")?;
        Ok(())
    }
}

#[test]
fn buffered_stream_wfile_is_flushed_after_finish() {
    let (wrote, handler_wrote) = mpsc::channel();
    let (release, released) = mpsc::channel();
    let handler = Buffered {
        wrote,
        release: Arc::new(Mutex::new(released)),
    };
    let (server, thread) = serve(TcpServer::bind("127.0.0.1:0", handler).unwrap());
    let mut client = connect_tcp(&server.server_address());

    handler_wrote.recv_timeout(IO_TIMEOUT).unwrap();
    // The handler wrote, but into its buffer: nothing reaches the client yet.
    client
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buf = [0; 64];
    let early = client.read(&mut buf).unwrap_err();
    assert!(
        matches!(
            early.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        ),
        "buffered data must not be sent before the handler is done: {early:?}"
    );

    release.send(()).unwrap();
    client.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    assert_eq!(read_to_end(&mut client), b"from handle, from finish");
    stop(&server, thread);
}

// ---------------------------------------------------------------------------------------
// Handler settings
// ---------------------------------------------------------------------------------------

/// Reads a line with a short `TIMEOUT`.
#[derive(Clone)]
struct Impatient;

impl RequestHandler for Impatient {
    type Request = StreamRequest;
    const TIMEOUT: Option<Duration> = Some(Duration::from_millis(100));

    fn handle(&mut self, req: &mut StreamRequest) -> HandlerResult {
        req.rfile.readline(1024)?;
        Ok(())
    }
}

/// Sends the kind of every failed request's I/O error to the test.
struct ErrorKinds(Sender<Option<io::ErrorKind>>);

impl ServerHooks<TcpTransport> for ErrorKinds {
    fn handle_error(&self, _client: &ClientAddress, error: &RequestError) {
        let kind = match error {
            RequestError::Failed(err) => err.downcast_ref::<io::Error>().map(io::Error::kind),
            RequestError::Panicked(_) => None,
        };
        let _ = self.0.send(kind);
    }
}

#[test]
fn handler_timeout_makes_a_silent_client_fail() {
    let (errors, error_kinds) = mpsc::channel();
    let server = TcpServer::builder("127.0.0.1:0", Impatient)
        .hooks(ErrorKinds(errors))
        .build()
        .unwrap();
    let (server, thread) = serve(server);

    // Connected, but says nothing.
    let mut client = connect_tcp(&server.server_address());
    let kind = error_kinds
        .recv_timeout(IO_TIMEOUT)
        .expect("handle_error called after the handler's read timed out");
    assert!(
        matches!(
            kind,
            Some(io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
        ),
        "a read timeout, got {kind:?}"
    );
    assert_eq!(read_to_end(&mut client), b"", "the connection is closed");
    stop(&server, thread);
}
