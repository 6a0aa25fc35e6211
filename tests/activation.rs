//! Socket activation: servers on sockets bound elsewhere (`Server::from_socket`,
//! `builder_from_socket`), and `simple-http` on a socket handed down by a launcher
//! (`LISTEN_FDS`/`LISTEN_PID`, `--fd N`, `systemd-socket-activate`).

mod common;

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::process::{Command, Output};

use common::{connect, exchange_line, serve, stop, TempDir, UpperDatagram, UpperEcho, IO_TIMEOUT};
use socket2::{Domain, Socket, Type};
use socketserver::files::SimpleHttpHandler;
use socketserver::http::{HttpServer, HttpsServer};
use socketserver::tls::{TlsConfig, TlsTransport};
use socketserver::{
    Concurrency, EventLoop, Server, ServerAddress, TcpServer, TcpTransport, ThreadPool, Threading,
    UdpServer, UnixStreamServer,
};

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// A TCP socket bound to 127.0.0.1:0, listening if `listen`.
fn tcp_socket(listen: bool) -> (Socket, SocketAddr) {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket.bind(&loopback().into()).unwrap();
    if listen {
        socket.listen(8).unwrap();
    }
    let address = socket.local_addr().unwrap().as_socket().unwrap();
    (socket, address)
}

/// An echo server of strategy `concurrency` on an adopted listener: its address is the
/// socket's and it serves at once, two clients in turn.
fn serves_on_an_adopted_listener<C: Concurrency>(concurrency: C) {
    let (socket, address) = tcp_socket(true);
    let server = Server::<TcpTransport, _>::builder_from_socket(socket, UpperEcho)
        .concurrency(concurrency)
        .build()
        .unwrap();
    assert_eq!(server.server_address(), ServerAddress::Inet(address));
    let (server, thread) = serve(server);
    for line in ["hello\n", "again\n"] {
        let mut client = connect(address);
        assert_eq!(exchange_line(&mut client, line), line.to_uppercase());
    }
    stop(&server, thread);
}

#[test]
fn adopted_tcp_listener_serves_on_the_event_loop_inline() {
    serves_on_an_adopted_listener(EventLoop::new(0).unwrap());
}

#[test]
fn adopted_tcp_listener_serves_on_the_event_loop_with_workers() {
    serves_on_an_adopted_listener(EventLoop::new(2).unwrap());
}

#[test]
fn adopted_tcp_listener_serves_on_a_thread_pool() {
    serves_on_an_adopted_listener(ThreadPool::new(2, 4));
}

#[test]
fn adopted_tcp_listener_serves_on_a_thread_per_connection() {
    serves_on_an_adopted_listener(Threading::new().daemon_threads(true));
}

#[test]
fn from_socket_takes_a_std_listener_and_serve_forever_works_at_once() {
    let listener = std::net::TcpListener::bind(loopback()).unwrap();
    let address = listener.local_addr().unwrap();
    let server = TcpServer::from_socket(listener, UpperEcho).unwrap();
    assert_eq!(server.server_address().inet(), Some(address));
    let (server, thread) = serve(server);
    let mut client = connect(address);
    assert_eq!(exchange_line(&mut client, "std\n"), "STD\n");
    // One request at a time (Synchronous): the echo ends when its client closes.
    drop(client);
    stop(&server, thread);
}

#[test]
fn a_bound_socket_not_listening_is_made_to_listen() {
    let (socket, address) = tcp_socket(false);
    assert!(!socket.is_listener().unwrap());
    let fd = socket.try_clone().unwrap();
    let server = TcpServer::builder_from_socket(socket, UpperEcho)
        .request_queue_size(16)
        .build()
        .unwrap();
    assert!(fd.is_listener().unwrap(), "adopt did not listen");
    assert!(fd.nonblocking().unwrap(), "a listener is non-blocking");
    assert_eq!(server.server_address().inet(), Some(address));
    let (server, thread) = serve(server);
    let mut client = connect(address);
    assert_eq!(exchange_line(&mut client, "listen\n"), "LISTEN\n");
    drop(client);
    stop(&server, thread);
}

#[test]
fn a_udp_socket_for_a_tcp_server_is_refused_clearly() {
    let udp = UdpSocket::bind(loopback()).unwrap();
    let fd = std::os::fd::AsRawFd::as_raw_fd(&udp);
    let err = TcpServer::from_socket(udp, UpperEcho).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    assert_eq!(
        err.to_string(),
        format!("fd {fd} is a UDP socket, not a TCP listener")
    );
}

#[test]
fn a_tcp_listener_for_a_udp_or_unix_server_is_refused_clearly() {
    let (socket, _) = tcp_socket(true);
    let err = UdpServer::from_socket(socket, UpperDatagram).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    assert!(
        err.to_string()
            .ends_with("is a TCP listener, not a UDP socket"),
        "{err}"
    );
    let (socket, _) = tcp_socket(true);
    let err = UnixStreamServer::from_socket(socket, UpperEcho).unwrap_err();
    assert!(
        err.to_string()
            .ends_with("is a TCP listener, not a Unix stream listener"),
        "{err}"
    );
}

#[test]
fn a_plain_tcp_server_refuses_tls_settings_on_an_adopted_socket_too() {
    let (socket, _) = tcp_socket(true);
    let tls = TlsConfig::self_signed(&["localhost"]).unwrap();
    let err = TcpServer::builder_from_socket(socket, UpperEcho)
        .tls(tls)
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
}

#[test]
fn adopted_udp_socket_answers_a_datagram() {
    let socket = UdpSocket::bind(loopback()).unwrap();
    let address = socket.local_addr().unwrap();
    let server = UdpServer::from_socket(socket, UpperDatagram).unwrap();
    assert_eq!(server.server_address().inet(), Some(address));
    let (server, thread) = serve(server);
    let client = UdpSocket::bind(loopback()).unwrap();
    client.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    client.send_to(b"ping", address).unwrap();
    let mut reply = [0; 64];
    let (n, from) = client.recv_from(&mut reply).unwrap();
    assert_eq!((&reply[..n], from), (&b"PING"[..], address));
    stop(&server, thread);
}

#[test]
fn adopted_unix_listener_serves_and_its_file_is_left_to_its_owner() {
    let dir = TempDir::new();
    let path = dir.join("adopted.sock");
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let server = UnixStreamServer::from_socket(listener, UpperEcho).unwrap();
    assert_eq!(server.server_address(), ServerAddress::Unix(path.clone()));
    let (server, thread) = serve(server);
    let mut client = common::connect_unix(&path);
    assert_eq!(exchange_line(&mut client, "unix\n"), "UNIX\n");
    drop(client);
    stop(&server, thread);
    server.server_close();
    assert!(
        path.exists(),
        "the server removed a socket file it did not bind"
    );
}

fn curl(args: &[&str]) -> Output {
    Command::new("curl")
        .args(["-sS", "--max-time", "10"])
        .args(args)
        .output()
        .expect("run curl")
}

fn site() -> TempDir {
    let dir = TempDir::new();
    dir.write("hello.txt", "adopted\n");
    dir
}

#[test]
fn http_server_on_an_adopted_socket_serves_curl() {
    let dir = site();
    let (socket, address) = tcp_socket(true);
    let handler = SimpleHttpHandler::new(dir.path()).unwrap();
    let server = HttpServer::from_socket(socket, handler).unwrap();
    let (server, thread) = serve(server);
    let out = curl(&[&format!("http://{address}/hello.txt")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, b"adopted\n");
    stop(&server, thread);
}

#[test]
fn https_server_on_an_adopted_socket_serves_curl() {
    let dir = site();
    let tls = TlsConfig::self_signed(&["localhost", "127.0.0.1"]).unwrap();
    let pem = dir.write("cert.pem", tls.certificate_pem());
    let (socket, address) = tcp_socket(false);
    let handler = SimpleHttpHandler::new(dir.path()).unwrap();
    let server: HttpsServer<_> =
        Server::<TlsTransport, _, EventLoop>::builder_from_socket(socket, handler)
            .tls(tls)
            .build()
            .unwrap();
    let (server, thread) = serve(server);
    let url = format!("https://localhost:{}/hello.txt", address.port());
    let resolve = format!("localhost:{}:127.0.0.1", address.port());
    let out = curl(&[
        "--cacert",
        pem.to_str().unwrap(),
        "--resolve",
        &resolve,
        &url,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, b"adopted\n");
    stop(&server, thread);
}

#[test]
fn a_tls_server_without_a_certificate_refuses_an_adopted_socket() {
    let (socket, _) = tcp_socket(true);
    let handler = SimpleHttpHandler::new(".").unwrap();
    let err = HttpsServer::from_socket(socket, handler).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
}

#[test]
fn claim_fd_refuses_what_is_not_an_open_socket_and_takes_a_socket_once() {
    use std::os::fd::IntoRawFd;
    let err = socketserver::server::claim_fd(-1).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    let file = std::fs::File::open("/proc/self/status").unwrap();
    let err = socketserver::server::claim_fd(std::os::fd::AsRawFd::as_raw_fd(&file)).unwrap_err();
    assert!(err.to_string().ends_with("is not a socket"), "{err}");
    // Handed over as a number, as a parent process hands it: owned by no Rust value here.
    let (socket, address) = tcp_socket(true);
    let raw = socket.into_raw_fd();
    let owned = socketserver::server::claim_fd(raw).unwrap();
    let err = socketserver::server::claim_fd(raw).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
    let server = TcpServer::from_socket(owned, UpperEcho).unwrap();
    let (server, thread) = serve(server);
    let mut client = connect(address);
    assert_eq!(exchange_line(&mut client, "claimed\n"), "CLAIMED\n");
    drop(client);
    stop(&server, thread);
}

#[test]
fn listen_fds_is_empty_for_another_pid_and_clears_the_environment() {
    // The only test of this binary that touches the environment.
    std::env::set_var("LISTEN_PID", "1");
    std::env::set_var("LISTEN_FDS", "1");
    assert!(socketserver::server::listen_fds().unwrap().is_empty());
    assert!(std::env::var_os("LISTEN_PID").is_none());
    assert!(std::env::var_os("LISTEN_FDS").is_none());
}

#[cfg(feature = "cli")]
mod cli {
    //! `simple-http` on a socket a launcher bound and handed down as descriptor 3.

    use std::io::{BufRead, BufReader, Read};
    use std::process::{Child, ChildStderr, Command, Stdio};
    use std::sync::mpsc;
    use std::thread;
    use std::time::Instant;

    use super::{curl, site};
    use crate::common::{TempDir, IO_TIMEOUT};
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;

    const BINARY: &str = env!("CARGO_BIN_EXE_simple-http");

    /// Binds 127.0.0.1:0, puts the listener on descriptor 3, prints its port, and becomes
    /// simple-http (execv: the same pid, so LISTEN_PID is its pid).
    const LAUNCHER: &str = r#"
import os, socket, sys
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(16)
port = s.getsockname()[1]
if s.fileno() != 3:
    os.dup2(s.fileno(), 3)
    s.close()
else:
    s.detach()
os.set_inheritable(3, True)
mode, binary = sys.argv[1], sys.argv[2]
if mode == "env":
    os.environ["LISTEN_FDS"] = "1"
    os.environ["LISTEN_PID"] = str(os.getpid())
print("PORT", port, flush=True)
os.execv(binary, [binary] + sys.argv[3:])
"#;

    /// A child process, stopped (SIGTERM) and reaped on drop, and its stdout's lines as
    /// they come.
    struct Launched {
        child: Child,
        lines: mpsc::Receiver<String>,
    }

    impl Launched {
        fn spawn(mut command: Command) -> Launched {
            let mut child = command
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start the launcher");
            let stdout = BufReader::new(child.stdout.take().unwrap());
            let (send, lines) = mpsc::channel();
            thread::spawn(move || {
                for line in stdout.lines().map_while(Result::ok) {
                    if send.send(line).is_err() {
                        break;
                    }
                }
            });
            Launched { child, lines }
        }

        /// The next stdout line that starts with `prefix`, within [`IO_TIMEOUT`].
        fn line_starting(&self, prefix: &str) -> String {
            let deadline = Instant::now() + IO_TIMEOUT;
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                match self.lines.recv_timeout(left) {
                    Ok(line) if line.starts_with(prefix) => return line,
                    Ok(_) => {}
                    Err(err) => panic!("no line {prefix:?} on stdout: {err}"),
                }
            }
        }
    }

    impl Drop for Launched {
        fn drop(&mut self) {
            let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
            let _ = self.child.wait();
        }
    }

    fn launch(dir: &TempDir, mode: &str, args: &[&str]) -> (Launched, u16) {
        let mut command = Command::new("python3");
        command
            .args(["-c", LAUNCHER, mode, BINARY])
            .args(args)
            .current_dir(dir.path())
            .env_remove("LISTEN_FDS")
            .env_remove("LISTEN_PID");
        let launched = Launched::spawn(command);
        let port: u16 = launched.line_starting("PORT ")[5..].parse().unwrap();
        (launched, port)
    }

    /// The banner's port, after it said which socket it serves on.
    fn banner_port(launched: &Launched, socket_line: &str, scheme: &str) -> u16 {
        assert_eq!(launched.line_starting("Socket: "), socket_line);
        let banner = launched.line_starting(&format!("Serving {scheme} on "));
        let rest = banner.split_once(" port ").unwrap().1;
        rest.split_once(' ').unwrap().0.parse().unwrap()
    }

    fn get_file(port: u16) {
        let out = curl(&[&format!("http://127.0.0.1:{port}/hello.txt")]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.stdout, b"adopted\n");
    }

    #[test]
    fn listen_fds_from_a_launcher_are_served() {
        let dir = site();
        let (launched, port) = launch(&dir, "env", &["-b", "127.0.0.1"]);
        let socket = "Socket: descriptor 3 from systemd's socket activation";
        assert_eq!(banner_port(&launched, socket, "HTTP"), port);
        get_file(port);
    }

    #[test]
    fn fd_flag_serves_descriptor_3_and_ignores_the_port() {
        let dir = site();
        let (launched, port) = launch(&dir, "fd", &["--fd", "3", "1"]);
        assert_eq!(
            banner_port(&launched, "Socket: descriptor 3 (--fd)", "HTTP"),
            port
        );
        get_file(port);
    }

    #[test]
    fn fd_flag_serves_https_with_tls_flags() {
        let dir = site();
        let (launched, port) = launch(&dir, "fd", &["--fd", "3", "--tls-self-signed"]);
        // "Socket:" comes first, then the certificate's lines, then the banner.
        let socket = launched.line_starting("Socket: ");
        assert_eq!(socket, "Socket: descriptor 3 (--fd)");
        let pem_line = launched.line_starting("  PEM in ");
        let pem = pem_line["  PEM in ".len()..]
            .split(" (")
            .next()
            .unwrap()
            .to_string();
        let banner = launched.line_starting("Serving HTTPS on 127.0.0.1 port ");
        assert!(banner.contains(&format!(" port {port} ")), "{banner}");
        let url = format!("https://127.0.0.1:{port}/hello.txt");
        let out = curl(&["--cacert", &pem, &url]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.stdout, b"adopted\n");
    }

    #[test]
    fn fd_flag_on_a_descriptor_that_is_no_socket_fails_clearly() {
        let dir = site();
        let out = Command::new(BINARY)
            .args(["--fd", "0"])
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("--fd 0: fd 0 is not a socket"), "{stderr}");
    }

    #[test]
    fn fd_flag_conflicts_with_bind() {
        let out = Command::new(BINARY)
            .args(["--fd", "3", "-b", "127.0.0.1"])
            .output()
            .unwrap();
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("cannot be used with"));
    }

    /// `systemd-socket-activate -l ADDRESS` refuses port 0 ("Failed to parse socket
    /// address"), so the port is found by binding port 0 and closing it right before: the
    /// only way with that tool. Another process may take the port in between; then it
    /// fails with EADDRINUSE and we try another.
    fn socket_activate(dir: &TempDir) -> (Launched, BufReader<ChildStderr>, u16) {
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let mut command = Command::new("systemd-socket-activate");
            command
                .args([
                    "-l",
                    &format!("127.0.0.1:{port}"),
                    BINARY,
                    "-b",
                    "127.0.0.1",
                ])
                .current_dir(dir.path());
            let mut launched = Launched::spawn(command);
            let mut stderr = BufReader::new(launched.child.stderr.take().unwrap());
            let mut line = String::new();
            // It prints this line once it listens, then waits for the first connection to
            // exec simple-http; a failure ends it, so the read ends either way.
            stderr.read_line(&mut line).unwrap();
            if line.trim() == format!("Listening on 127.0.0.1:{port} as 3.") {
                return (launched, stderr, port);
            }
            let mut rest = String::new();
            let _ = stderr.read_to_string(&mut rest);
            assert!(
                (line.clone() + &rest).contains("Address already in use"),
                "systemd-socket-activate: {line}{rest}"
            );
        }
        panic!("no free port for systemd-socket-activate in 5 tries");
    }

    #[test]
    fn systemd_socket_activate_starts_it_on_the_first_connection() {
        let dir = site();
        let (launched, _stderr, port) = socket_activate(&dir);
        // The connection waits in the socket's queue while simple-http starts.
        get_file(port);
        let socket = "Socket: descriptor 3 from systemd's socket activation";
        assert_eq!(banner_port(&launched, socket, "HTTP"), port);
        get_file(port);
    }
}
