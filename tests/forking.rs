//! The `Forking` strategy: handlers in child processes, `max_children`, reaping, closing,
//! failures in a child, and forking datagram servers.
//!
//! A binary of its own, and its tests take turns (`serial()`): forking a process with
//! several test threads running is delicate, and `max_children` reaps any child of the
//! process, so concurrent forking tests would steal each other's children.

mod common;

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::Duration;

use common::*;
use nix::errno::Errno;
use nix::sys::signal::kill;
use nix::unistd::Pid;
use socketserver::{
    ClientAddress, DatagramRequest, Forking, ForkingTcpServer, ForkingUdpServer, HandlerResult,
    RequestError, RequestHandler, ServerHooks, StreamRequest, TcpServer, TcpTransport,
};

fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Whether process `pid` is gone: exited and reaped (a zombie still counts as present).
fn is_gone(pid: Pid) -> bool {
    kill(pid, None) == Err(Errno::ESRCH)
}

/// Reads the pid a handler sent as its first line.
fn read_pid(client: &mut TcpStream) -> Pid {
    let line = read_line(client).expect("the handler's greeting");
    Pid::from_raw(line.trim().parse().expect("a pid"))
}

/// Greets with its pid, then answers "panic" by panicking, and anything else by waiting for
/// the client to close.
#[derive(Clone)]
struct Child;

impl RequestHandler for Child {
    type Request = StreamRequest;
    /// A safety net: if a test fails before releasing a child, the child must not outlive
    /// the test process forever (it holds copies of the client sockets, so it never sees
    /// end-of-file on its own).
    const TIMEOUT: Option<Duration> = Some(Duration::from_secs(30));

    fn handle(&mut self, req: &mut StreamRequest) -> HandlerResult {
        writeln!(req.wfile, "{}", std::process::id())?;
        let line = req.rfile.readline(1024)?;
        if line.trim_ascii() == b"panic" {
            panic!("child handler panicked");
        }
        req.rfile.read_to_limit(1 << 20)?;
        Ok(())
    }
}

/// Tells the child to finish: it waits for end-of-file. (Dropping the client is not enough:
/// forked children hold copies of the test's client sockets too.)
fn release(client: &TcpStream) {
    client.shutdown(Shutdown::Write).unwrap();
}

#[test]
fn handler_runs_in_another_process() {
    let _serial = serial();
    let (server, thread) = serve(ForkingTcpServer::bind("127.0.0.1:0", Child).unwrap());
    let mut client = connect_tcp(&server.server_address());
    let pid = read_pid(&mut client);
    assert_ne!(
        pid.as_raw() as u32,
        std::process::id(),
        "handled in a child process"
    );
    assert!(!is_gone(pid), "the child runs until the client closes");
    // The child may greet before the parent has recorded it.
    wait_until("the child to be recorded", || {
        server.concurrency().active_children() == 1
    });

    release(&client);
    assert_eq!(read_to_end(&mut client), b"");
    stop(&server, thread);
    server.server_close();
    assert!(is_gone(pid), "server_close reaped the child");
    assert_eq!(server.concurrency().active_children(), 0);
}

#[test]
fn max_children_limits_live_children() {
    let _serial = serial();
    let server = TcpServer::builder("127.0.0.1:0", Child)
        .concurrency(Forking::new().max_children(2))
        .build()
        .unwrap();
    let (server, thread) = serve(server);
    let address = server.server_address();

    let mut first = connect_tcp(&address);
    let first_pid = read_pid(&mut first);
    let mut second = connect_tcp(&address);
    let second_pid = read_pid(&mut second);
    wait_until("both children to be recorded", || {
        server.concurrency().active_children() == 2
    });

    // A third client is accepted, but no child is forked for it while two are alive.
    let mut third = connect_tcp(&address);
    third
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = [0; 32];
    match third.read(&mut buf) {
        Err(err)
            if matches!(
                err.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) => {}
        other => panic!("a third child ran while two were alive: {other:?}"),
    }

    // One child ends: the server reaps it and forks for the third client.
    release(&first);
    third.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let third_pid = read_pid(&mut third);
    assert!(
        is_gone(first_pid),
        "the first child was reaped before the third forked"
    );
    assert!(!is_gone(second_pid));
    wait_until("the second and third children to be recorded", || {
        server.concurrency().active_children() == 2
    });

    release(&second);
    release(&third);
    stop(&server, thread);
    server.server_close();
    assert!(is_gone(second_pid) && is_gone(third_pid));
}

/// Greets with its pid and ends at once.
#[derive(Clone)]
struct QuickChild;

impl RequestHandler for QuickChild {
    type Request = StreamRequest;

    fn handle(&mut self, req: &mut StreamRequest) -> HandlerResult {
        writeln!(req.wfile, "{}", std::process::id())?;
        Ok(())
    }
}

#[test]
fn finished_children_are_reaped_while_serving() {
    let _serial = serial();
    let server = ForkingTcpServer::builder("127.0.0.1:0", QuickChild)
        .poll_interval(Some(Duration::from_millis(20)))
        .build()
        .unwrap();
    let (server, thread) = serve(server);

    let mut pids = Vec::new();
    for _ in 0..3 {
        let mut client = connect_tcp(&server.server_address());
        pids.push(read_pid(&mut client));
        assert_eq!(read_to_end(&mut client), b"", "the child ended the request");
    }
    // Still serving, with no new request: service_actions must reap them (no zombies).
    wait_until("every finished child to be reaped", || {
        pids.iter().all(|&pid| is_gone(pid)) && server.concurrency().active_children() == 0
    });
    assert!(server.handle().is_serving());
    stop(&server, thread);
}

#[test]
fn block_on_close_waits_for_children() {
    let _serial = serial();
    let (server, thread) = serve(ForkingTcpServer::bind("127.0.0.1:0", Child).unwrap());
    let mut client = connect_tcp(&server.server_address());
    let pid = read_pid(&mut client);

    let (closed, close_returned) = mpsc::channel();
    let closing = Arc::clone(&server);
    thread::spawn(move || {
        closing.server_close();
        let _ = closed.send(is_gone(pid));
    });
    // The socket is closed (the children still hold copies of it, so the port would
    // still accept): server_close is now waiting for the child.
    wait_until("server_close to close the socket", || server.fileno() == -1);
    assert!(
        close_returned.try_recv().is_err(),
        "server_close returned while a child was running"
    );
    assert!(!is_gone(pid), "the child is still running");

    release(&client);
    let gone_at_close = close_returned
        .recv_timeout(IO_TIMEOUT)
        .expect("server_close returns once the child has exited");
    assert!(
        gone_at_close,
        "server_close returned before reaping the child"
    );
    join_within(thread, IO_TIMEOUT).unwrap();
}

/// Reports `handle_error` calls, which happen in the child, over a Unix datagram socket.
struct ReportFromChild(PathBuf);

impl ServerHooks<TcpTransport> for ReportFromChild {
    fn handle_error(&self, _client: &ClientAddress, error: &RequestError) {
        let kind = match error {
            RequestError::Failed(_) => "failed",
            RequestError::Panicked(_) => "panicked",
        };
        let report = format!("{} {kind}: {error}", std::process::id());
        if let Ok(socket) = UnixDatagram::unbound() {
            let _ = socket.send_to(report.as_bytes(), &self.0);
        }
    }
}

#[test]
fn a_panic_in_a_child_is_reported_and_the_server_goes_on() {
    let _serial = serial();
    let dir = TempDir::new();
    let reports_path = dir.join("reports.sock");
    let reports = UnixDatagram::bind(&reports_path).unwrap();
    reports.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let server = ForkingTcpServer::builder("127.0.0.1:0", Child)
        .hooks(ReportFromChild(reports_path))
        .build()
        .unwrap();
    let (server, thread) = serve(server);

    let mut client = connect_tcp(&server.server_address());
    let pid = read_pid(&mut client);
    client.write_all(b"panic\n").unwrap();
    assert_eq!(read_to_end(&mut client), b"");
    let mut buf = [0; 256];
    let n = reports.recv(&mut buf).expect("the child reports the panic");
    assert_eq!(
        std::str::from_utf8(&buf[..n]).unwrap(),
        format!("{pid} panicked: handler panicked: child handler panicked")
    );

    let mut next = connect_tcp(&server.server_address());
    let next_pid = read_pid(&mut next);
    assert_ne!(next_pid, pid);
    release(&next);
    assert_eq!(read_to_end(&mut next), b"");
    stop(&server, thread);
    server.server_close();
    assert!(is_gone(pid) && is_gone(next_pid));
}

/// Answers a datagram with its pid and the datagram in upper case.
#[derive(Clone)]
struct DatagramChild;

impl RequestHandler for DatagramChild {
    type Request = DatagramRequest;

    fn handle(&mut self, req: &mut DatagramRequest) -> HandlerResult {
        let reply = format!(
            "{} {}",
            std::process::id(),
            String::from_utf8_lossy(req.data()).to_uppercase()
        );
        req.wfile.extend_from_slice(reply.as_bytes());
        Ok(())
    }
}

#[test]
fn forking_udp_round_trip() {
    let _serial = serial();
    let (server, thread) = serve(ForkingUdpServer::bind("127.0.0.1:0", DatagramChild).unwrap());
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    client
        .send_to(b"forked", inet(&server.server_address()))
        .unwrap();
    let mut buf = [0; 64];
    let n = client.recv(&mut buf).expect("a reply from the child");
    let reply = std::str::from_utf8(&buf[..n]).unwrap();
    let (pid, text) = reply.split_once(' ').unwrap();
    assert_eq!(text, "FORKED");
    let pid = Pid::from_raw(pid.parse().unwrap());
    assert_ne!(pid.as_raw() as u32, std::process::id());
    stop(&server, thread);
    server.server_close();
    assert!(is_gone(pid));
}
