//! Helpers shared by the integration tests: running a server on a thread, stopping it
//! without risking a hang, simple handlers and clients, temporary Unix socket paths, and a
//! bounded wait.
//!
//! Every test binary includes this module but uses only part of it.
#![allow(dead_code)]

use std::fs;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use socketserver::server::{RequestContext, Transport};
use socketserver::{
    Concurrency, DatagramRequest, HandlerResult, RequestHandler, Server, ServerAddress,
    ServerHooks, StreamRequest,
};

/// Read/write timeout of test clients, and the default limit of every wait: long enough for
/// a loaded CI machine, short enough that a broken feature fails instead of hanging.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// A server being served by `serve_forever` on a thread of its own.
pub type Serving<T, H, C, K> = (Arc<Server<T, H, C, K>>, JoinHandle<io::Result<()>>);

/// Runs `serve_forever` on a new thread and returns once the loop is running.
pub fn serve<T, H, C, K>(server: Server<T, H, C, K>) -> Serving<T, H, C, K>
where
    T: Transport,
    H: RequestHandler,
    H::Request: RequestContext<Raw = T::Request>,
    C: Concurrency,
    K: ServerHooks<T>,
{
    let server = Arc::new(server);
    let thread = spawn_serve(&server);
    wait_until("serve_forever() to start", || server.handle().is_serving());
    (server, thread)
}

/// Runs `serve_forever` of an already shared server on a new thread; does not wait for it
/// to start.
pub fn spawn_serve<T, H, C, K>(server: &Arc<Server<T, H, C, K>>) -> JoinHandle<io::Result<()>>
where
    T: Transport,
    H: RequestHandler,
    H::Request: RequestContext<Raw = T::Request>,
    C: Concurrency,
    K: ServerHooks<T>,
{
    let server = Arc::clone(server);
    thread::Builder::new()
        .name("serve_forever".into())
        .spawn(move || server.serve_forever())
        .expect("spawn the serving thread")
}

/// Calls `shutdown()` on a helper thread and panics if it does not return within `limit`.
pub fn shutdown_within<T, H, C, K>(server: &Server<T, H, C, K>, limit: Duration)
where
    T: Transport,
    C: Concurrency,
{
    let handle = server.handle();
    let (done, finished) = mpsc::channel();
    thread::spawn(move || {
        handle.shutdown();
        let _ = done.send(());
    });
    finished
        .recv_timeout(limit)
        .unwrap_or_else(|_| panic!("shutdown() did not return within {limit:?}"));
}

/// Shuts the server down, joins its serving thread and checks `serve_forever` returned Ok.
pub fn stop<T, H, C, K>(server: &Server<T, H, C, K>, thread: JoinHandle<io::Result<()>>)
where
    T: Transport,
    C: Concurrency,
{
    shutdown_within(server, IO_TIMEOUT);
    join_within(thread, IO_TIMEOUT).expect("serve_forever() failed");
}

/// Joins `thread`, panicking if it has not finished within `limit`.
pub fn join_within<R>(thread: JoinHandle<R>, limit: Duration) -> R {
    wait_until_within("a thread to finish", limit, || thread.is_finished());
    thread.join().expect("the thread panicked")
}

/// Polls `condition` every few milliseconds until it holds; panics after [`IO_TIMEOUT`].
pub fn wait_until(what: &str, condition: impl FnMut() -> bool) {
    wait_until_within(what, IO_TIMEOUT, condition);
}

/// Polls `condition` every few milliseconds until it holds; panics naming `what` once
/// `limit` has passed. The only place the tests sleep.
pub fn wait_until_within(what: &str, limit: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !condition() {
        if Instant::now() >= deadline {
            panic!("timed out after {limit:?} waiting for {what}");
        }
        thread::sleep(Duration::from_millis(5));
    }
}

/// Answers every line with the line in upper case, until the client closes.
#[derive(Clone, Debug, Default)]
pub struct UpperEcho;

impl RequestHandler for UpperEcho {
    type Request = StreamRequest;

    fn handle(&mut self, req: &mut StreamRequest) -> HandlerResult {
        loop {
            let line = req.rfile.readline(65536)?;
            if line.is_empty() {
                return Ok(());
            }
            req.wfile.write_all(&line.to_ascii_uppercase())?;
        }
    }
}

/// Answers every datagram with the datagram in upper case.
#[derive(Clone, Debug, Default)]
pub struct UpperDatagram;

impl RequestHandler for UpperDatagram {
    type Request = DatagramRequest;

    fn handle(&mut self, req: &mut DatagramRequest) -> HandlerResult {
        let reply = req.data().to_ascii_uppercase();
        req.wfile.extend_from_slice(&reply);
        Ok(())
    }
}

/// The TCP address of an internet server.
pub fn inet(address: &ServerAddress) -> SocketAddr {
    address.inet().expect("an internet server address")
}

/// Connects to a TCP server, with [`IO_TIMEOUT`] on reads and writes.
pub fn connect_tcp(address: &ServerAddress) -> TcpStream {
    connect(inet(address))
}

/// A TCP connection to `addr` with [`IO_TIMEOUT`] on reads and writes.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("connect to the test server");
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    stream
}

/// Connects to a Unix stream server, with [`IO_TIMEOUT`] on reads and writes.
pub fn connect_unix(path: &Path) -> UnixStream {
    let stream = UnixStream::connect(path).expect("connect");
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    stream
}

/// Reads one line (without buffering past it), newline included; empty at end-of-file.
pub fn read_line(stream: &mut impl Read) -> io::Result<String> {
    let mut line = Vec::new();
    let mut byte = [0; 1];
    while line.last() != Some(&b'\n') {
        if stream.read(&mut byte)? == 0 {
            break;
        }
        line.push(byte[0]);
    }
    Ok(String::from_utf8(line).expect("utf-8 from the server"))
}

/// Sends `line` and a newline, and returns the one line of answer.
pub fn exchange_line(stream: &mut (impl Read + Write), line: &str) -> String {
    stream
        .write_all(format!("{line}\n").as_bytes())
        .expect("send a line");
    read_line(stream).expect("read the answer")
}

/// Whether a read error means the peer closed the connection (a reset after the server
/// closed with unread input is such a close).
pub fn is_close(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted
    )
}

/// Reads until the peer closes the connection, a reset counting as a close; panics on a
/// timeout.
pub fn read_to_eof(stream: &mut impl Read) -> Vec<u8> {
    let mut data = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return data,
            Ok(n) => data.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if is_close(&e) => return data,
            Err(e) => panic!(
                "reading to end-of-file failed after {} bytes ({e}); got so far: {:?}",
                data.len(),
                String::from_utf8_lossy(&data[..data.len().min(2000)])
            ),
        }
    }
}

/// Sends `request` on a new connection and reads everything until the server closes it.
pub fn exchange(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut stream = connect(addr);
    // The server may answer and close before it read everything (a rejected head): a
    // failed write is then part of the test, not an error.
    let _ = stream.write_all(request);
    read_to_eof(&mut stream)
}

/// Reads until the server closes the connection.
pub fn read_to_end(stream: &mut impl Read) -> Vec<u8> {
    let mut data = Vec::new();
    stream
        .read_to_end(&mut data)
        .expect("read until end-of-file");
    data
}

/// A fresh directory under the system's temporary directory, removed with all it holds on
/// drop. Its name is short: a Unix socket path must fit in about 100 bytes.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!("sockserv-{}-{n}-{nanos:x}", std::process::id());
        let path = std::env::temp_dir().join(name);
        fs::create_dir(&path).expect("create a temporary directory");
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// A path inside the directory.
    pub fn join(&self, relative: &str) -> PathBuf {
        self.0.join(relative)
    }

    /// Writes `contents` to `relative`, creating the parent directories.
    pub fn write(&self, relative: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.join(relative);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).expect("create parent directories");
        }
        fs::write(&path, contents).expect("write a test file");
        path
    }

    /// Creates the directory `relative` (and its parents).
    pub fn mkdir(&self, relative: &str) -> PathBuf {
        let path = self.join(relative);
        fs::create_dir_all(&path).expect("create a test directory");
        path
    }

    /// Writes an executable (mode 755) script to `relative`.
    pub fn script(&self, relative: &str, contents: &str) -> PathBuf {
        let path = self.write(relative, contents);
        set_mode(&path, 0o755);
        path
    }

    /// A symlink at `relative` pointing to `target` (taken as is: relative or absolute).
    pub fn symlink(&self, target: impl AsRef<Path>, relative: &str) -> PathBuf {
        let link = self.join(relative);
        std::os::unix::fs::symlink(target, &link).expect("create a symlink");
        link
    }
}

impl Default for TempDir {
    fn default() -> Self {
        TempDir::new()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        // Give back every permission a test took away, so the tree can be removed.
        fn restore(path: &Path) {
            if let Ok(meta) = fs::symlink_metadata(path) {
                if meta.file_type().is_symlink() {
                    return;
                }
                let mode = if meta.is_dir() { 0o755 } else { 0o644 };
                let _ = fs::set_permissions(path, fs::Permissions::from_mode(mode));
                if meta.is_dir() {
                    if let Ok(entries) = fs::read_dir(path) {
                        for entry in entries.flatten() {
                            restore(&entry.path());
                        }
                    }
                }
            }
        }
        restore(&self.0);
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// `chmod mode path`.
pub fn set_mode(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
}

/// Whether the tests run as root, for whom file permissions do not apply: `/proc/self`
/// belongs to the process's effective user.
pub fn running_as_root() -> bool {
    fs::metadata("/proc/self").is_ok_and(|meta| meta.uid() == 0)
}
