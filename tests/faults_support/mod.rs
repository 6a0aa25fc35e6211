//! Support for the fault-injection suite (`tests/faults.rs`): the four concurrency
//! strategies behind one type, a server rig that knows what "healthy" means (idle CPU, the
//! descriptors it started with, a correct answer), raw HTTP clients that can stall, hang up
//! or reset, paced slow clients, and guards that undo process-wide changes (the descriptor
//! limit, a background process a CGI script left behind).
//!
//! Everything here measures the whole process (`/proc/self`), so the tests that use it take
//! [`serial`] first and nothing else runs in their binary.
#![allow(dead_code)]

#[path = "../common/mod.rs"]
pub mod common;
#[path = "../strategy/mod.rs"]
pub mod strategy;

use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use socket2::{Domain, SockRef, Socket, Type};
use socketserver::cgi::CgiHttpHandler;
use socketserver::files::SimpleHttpHandler;
use socketserver::http::{Configured, Limits, Version};
use socketserver::{
    EventLoop, NoHooks, RequestHandler, Server, ServerHandle, ServerHooks, StreamRequest,
    TcpServer, TcpTransport, ThreadPool, Threading,
};

pub use common::TempDir;
pub use strategy::TestConcurrency;

pub const KIB: usize = 1024;
pub const MIB: usize = 1024 * 1024;

/// The file every health check asks for, and what it must get.
pub const SMALL: &str = "/small.txt";
pub const SMALL_BODY: &[u8] = b"a small file, served whole\n";

/// The longest any single wait of this suite lasts: a broken server fails a test after
/// this, it never hangs the binary.
pub const WAIT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------
// Serialization

static LOCK: Mutex<()> = Mutex::new(());

/// One `#[test]` per strategy for each case: `on_every_strategy!(a, b)` makes `a::threading`,
/// `a::event_loop_inline`, ... each calling [`run`] with its strategy;
/// `on_every_strategy!(some::runner: a, b)` calls `some::runner(case, strategy)` instead
/// (tls_support's `run_alone`, say). Mount this module with `#[macro_use]`.
#[allow(unused_macros)] // Not every suite that mounts this module runs cases per strategy.
macro_rules! on_every_strategy {
    ($($case:ident),+ $(,)?) => {
        on_every_strategy!($crate::faults_support::run: $($case),+);
    };
    ($run:path: $($case:ident),+ $(,)?) => {$(
        mod $case {
            use $crate::faults_support::Strategy;

            #[test]
            fn event_loop_inline() {
                $run(super::$case, Strategy::LOOP_INLINE);
            }

            #[test]
            fn event_loop_workers() {
                $run(super::$case, Strategy::LOOP_WORKERS);
            }

            #[test]
            fn threading() {
                $run(super::$case, Strategy::THREADS);
            }

            #[test]
            fn thread_pool() {
                $run(super::$case, Strategy::POOL);
            }
        }
    )+};
}

/// One test at a time: CPU time and descriptor counts are the process's, not the test's.
/// A test that failed while holding the lock poisons it; the next one goes on regardless.
pub fn serial() -> MutexGuard<'static, ()> {
    LOCK.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The descriptors open when the first test started: what every test leaves behind.
static QUIET_FDS: OnceLock<usize> = OnceLock::new();

/// Runs one case on one strategy, alone in the process.
pub fn run(case: fn(Strategy), strategy: Strategy) {
    let _serial = serial();
    let quiet = *QUIET_FDS.get_or_init(fd_count);
    // A test that failed may have left a handler finishing its connection; its descriptors
    // must not go away in the middle of this test's counts.
    poll_until(WAIT, || fd_count() <= quiet);
    case(strategy);
}

// ---------------------------------------------------------------------------------------
// Strategies

/// The concurrency strategies every case runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// `EventLoop::new(workers)`; 0: every handler on the loop's thread.
    Loop { workers: usize },
    /// `Threading::new().daemon_threads(true)`.
    Threads,
    /// `ThreadPool::new(workers, queue)`.
    Pool { workers: usize, queue: usize },
}

impl Strategy {
    pub const LOOP_INLINE: Strategy = Strategy::Loop { workers: 0 };
    pub const LOOP_WORKERS: Strategy = Strategy::Loop { workers: 4 };
    pub const THREADS: Strategy = Strategy::Threads;
    pub const POOL: Strategy = Strategy::Pool {
        workers: 4,
        queue: 16,
    };

    pub fn concurrency(self) -> io::Result<TestConcurrency> {
        Ok(match self {
            Strategy::Loop { workers } => TestConcurrency::Loop(EventLoop::new(workers)?),
            // Daemon threads: a connection a failing test leaves open cannot make
            // `server_close` wait for it (as in tests/strategy).
            Strategy::Threads => TestConcurrency::Threads(Threading::new().daemon_threads(true)),
            Strategy::Pool { workers, queue } => {
                TestConcurrency::Pool(ThreadPool::new(workers, queue))
            }
        })
    }

    /// How many of `n` connections the server takes from its listen queue while none of
    /// them finishes: all of them, except on a pool, whose serve loop blocks once every
    /// worker is busy and the queue is full.
    pub fn accepts(self, n: usize) -> usize {
        match self {
            Strategy::Pool { workers, queue } => n.min(workers + queue),
            _ => n,
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Strategy::Loop { workers } => write!(f, "EventLoop::new({workers})"),
            Strategy::Threads => f.write_str("Threading (daemon threads)"),
            Strategy::Pool { workers, queue } => write!(f, "ThreadPool::new({workers}, {queue})"),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Sites and handlers

/// Limits short enough that every timeout of the suite passes within a second.
pub fn short_limits() -> Limits {
    Limits {
        head_timeout: Duration::from_secs(1),
        keep_alive_timeout: Duration::from_secs(1),
        body_timeout: Duration::from_secs(1),
        send_timeout: Duration::from_secs(1),
        ..Limits::default()
    }
}

/// A served directory holding at least [`SMALL`].
pub struct Site {
    pub dir: TempDir,
}

impl Site {
    pub fn new() -> Site {
        let dir = TempDir::new();
        dir.write(SMALL.trim_start_matches('/'), SMALL_BODY);
        Site { dir }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.join(relative.trim_start_matches('/'))
    }

    /// Writes `len` bytes of [`pattern`] `seed` to `relative`; returns them.
    pub fn big(&self, relative: &str, len: usize, seed: u64) -> Vec<u8> {
        let contents = pattern(len, seed);
        self.dir.write(relative.trim_start_matches('/'), &contents);
        contents
    }

    /// An executable `#!/bin/sh` script at `relative`.
    pub fn script(&self, relative: &str, body: &str) -> PathBuf {
        self.dir.script(
            relative.trim_start_matches('/'),
            &format!("#!/bin/sh\n{body}"),
        )
    }

    pub fn files(&self, limits: Limits, version: Version) -> Configured<SimpleHttpHandler> {
        Configured::new(self.simple_files())
            .limits(limits)
            .protocol_version(version)
    }

    pub fn cgi(
        &self,
        limits: Limits,
        version: Version,
        time_limit: Duration,
    ) -> Configured<CgiHttpHandler> {
        let cgi = CgiHttpHandler::from_files(self.simple_files()).time_limit(time_limit);
        Configured::new(cgi)
            .limits(limits)
            .protocol_version(version)
    }

    fn simple_files(&self) -> SimpleHttpHandler {
        SimpleHttpHandler::new(self.root()).expect("serve the site directory")
    }
}

impl Default for Site {
    fn default() -> Self {
        Site::new()
    }
}

/// `len` pseudo-random bytes that differ for every 8-byte word and every `seed`, so that a
/// byte out of place, or from another file, shows.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

// ---------------------------------------------------------------------------------------
// The process: CPU time and descriptors

/// This process's CPU time (user + system, all threads) from `/proc/self/stat`.
///
/// The file is opened once and re-read at offset 0, so the clock still works when the
/// process cannot open anything (the EMFILE case).
pub struct CpuClock {
    stat: File,
    tick: Duration,
}

impl CpuClock {
    pub fn open() -> CpuClock {
        // SAFETY: sysconf only reads a configuration value.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        let hz = if hz > 0 { hz as u64 } else { 100 };
        CpuClock {
            stat: File::open("/proc/self/stat").expect("open /proc/self/stat"),
            tick: Duration::from_nanos(1_000_000_000 / hz),
        }
    }

    pub fn now(&self) -> Duration {
        let mut buf = [0u8; 1024];
        let n = self
            .stat
            .read_at(&mut buf, 0)
            .expect("read /proc/self/stat");
        let ticks = stat_ticks(&buf[..n]).expect("utime and stime in /proc/self/stat");
        self.tick * ticks as u32
    }

    /// CPU time per thread name (threads of one name added up), where it can be read.
    fn per_thread(&self) -> Vec<(String, Duration)> {
        let mut threads: Vec<(String, Duration)> = Vec::new();
        let Ok(tasks) = fs::read_dir("/proc/self/task") else {
            return threads;
        };
        for task in tasks.flatten() {
            let dir = task.path();
            let (Ok(stat), Ok(name)) = (fs::read(dir.join("stat")), fs::read(dir.join("comm")))
            else {
                continue;
            };
            let Some(ticks) = stat_ticks(&stat) else {
                continue;
            };
            let name = String::from_utf8_lossy(&name).trim().to_string();
            // Worker-1, Worker-2 ... are one pool: add them up.
            let name = name
                .trim_end_matches(|c: char| c.is_ascii_digit())
                .to_string();
            let time = self.tick * ticks as u32;
            match threads.iter_mut().find(|(n, _)| *n == name) {
                Some((_, t)) => *t += time,
                None => threads.push((name, time)),
            }
        }
        threads
    }
}

/// utime + stime (fields 14 and 15), in clock ticks. The command name (field 2) may hold
/// spaces and parentheses, so fields are counted from its closing parenthesis.
fn stat_ticks(stat: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(stat).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Descriptors open in this process (not counting the one that lists them).
pub fn fd_count() -> usize {
    fs::read_dir("/proc/self/fd")
        .expect("list /proc/self/fd")
        .count()
        .saturating_sub(1)
}

/// Polls `condition` every 5 ms until it holds (`true`) or `limit` passes (`false`).
pub fn poll_until(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(5));
    }
}

/// How long the idle check measures, how many measurements it allows for cleanup that is
/// still going on, and the share of a window above which the process is busy.
const IDLE_WINDOW: Duration = Duration::from_millis(500);
const IDLE_TRIES: usize = 3;
const BUSY_SHARE: u32 = 5; // 1/5 = 20 %

/// Panics unless the process idles: in one of [`IDLE_TRIES`] windows of [`IDLE_WINDOW`],
/// it used less than 20 % of the window in CPU time. `by_thread` names the busiest
/// threads in the message (it opens files: not when descriptors are exhausted).
pub fn assert_idle(clock: &CpuClock, after: &str, by_thread: bool) {
    let mut last = (Duration::ZERO, Duration::ZERO);
    let before_threads = if by_thread {
        clock.per_thread()
    } else {
        Vec::new()
    };
    for _ in 0..IDLE_TRIES {
        let cpu = clock.now();
        let started = Instant::now();
        thread::sleep(IDLE_WINDOW);
        let used = clock.now().saturating_sub(cpu);
        let wall = started.elapsed();
        if used * BUSY_SHARE < wall {
            return;
        }
        last = (used, wall);
    }
    let busiest = if by_thread {
        busiest_threads(&before_threads, &clock.per_thread())
    } else {
        String::new()
    };
    panic!(
        "CPU {} ms of {} ms after {after}, in each of {IDLE_TRIES} windows in a row{busiest}: \
         busy loop",
        last.0.as_millis(),
        last.1.as_millis(),
    );
}

fn busiest_threads(before: &[(String, Duration)], after: &[(String, Duration)]) -> String {
    let mut used: Vec<(String, Duration)> = after
        .iter()
        .map(|(name, t)| {
            let earlier = before
                .iter()
                .find(|(n, _)| n == name)
                .map_or(Duration::ZERO, |(_, t)| *t);
            (name.clone(), t.saturating_sub(earlier))
        })
        .filter(|(_, t)| !t.is_zero())
        .collect();
    used.sort_by_key(|(_, t)| std::cmp::Reverse(*t));
    if used.is_empty() {
        return String::new();
    }
    let list: Vec<String> = used
        .iter()
        .take(3)
        .map(|(n, t)| format!("{n} {} ms", t.as_millis()))
        .collect();
    format!(" (threads: {})", list.join(", "))
}

// ---------------------------------------------------------------------------------------
// The server rig

pub type TestServer<H, K = NoHooks> = Server<TcpTransport, H, TestConcurrency, K>;

/// A server on 127.0.0.1, port 0, serving on a thread of its own, with the process's
/// descriptor counts from before it existed and from when it served with no connection.
/// Its server hooks are `K` ([`Rig::start_with_hooks`]), none by default.
pub struct Rig<H: RequestHandler<Request = StreamRequest>, K: ServerHooks<TcpTransport> = NoHooks> {
    pub strategy: Strategy,
    pub addr: SocketAddr,
    pub cpu: CpuClock,
    server: Option<Arc<TestServer<H, K>>>,
    thread: Option<JoinHandle<io::Result<()>>>,
    shut_down: bool,
    closed: bool,
    fds_before: usize,
    fds_serving: usize,
}

impl<H: RequestHandler<Request = StreamRequest>> Rig<H> {
    /// Starts a server with the handler `make` returns (made after the descriptors are
    /// counted: a file handler holds its directory open), checks it answers, and counts its
    /// descriptors once they settle.
    pub fn start(strategy: Strategy, make: impl FnOnce() -> H) -> Rig<H> {
        Self::try_start(strategy, make)
            .unwrap_or_else(|err| panic!("cannot start a server on {strategy}: {err}"))
    }

    /// As [`start`](Rig::start), but a server that cannot be built is an error, not a panic.
    pub fn try_start(strategy: Strategy, make: impl FnOnce() -> H) -> io::Result<Rig<H>> {
        Rig::try_start_with_hooks(strategy, NoHooks, make)
    }
}

impl<H: RequestHandler<Request = StreamRequest>, K: ServerHooks<TcpTransport>> Rig<H, K> {
    /// As [`start`](Rig::start), with the server hooks `hooks`.
    pub fn start_with_hooks(strategy: Strategy, hooks: K, make: impl FnOnce() -> H) -> Rig<H, K> {
        Self::try_start_with_hooks(strategy, hooks, make)
            .unwrap_or_else(|err| panic!("cannot start a server on {strategy}: {err}"))
    }

    /// As [`start_with_hooks`](Rig::start_with_hooks), but a server that cannot be built is
    /// an error, not a panic.
    pub fn try_start_with_hooks(
        strategy: Strategy,
        hooks: K,
        make: impl FnOnce() -> H,
    ) -> io::Result<Rig<H, K>> {
        let cpu = CpuClock::open();
        let fds_before = fd_count();
        let server = TcpServer::builder("127.0.0.1:0", make())
            .concurrency(strategy.concurrency()?)
            .hooks(hooks)
            // Room for the suite's bursts of connections: none waits for a SYN retry.
            .request_queue_size(128)
            .build()?;
        let addr = server
            .server_address()
            .inet()
            .expect("a TCP server address");
        let server = Arc::new(server);
        let serving = Arc::clone(&server);
        let thread = thread::Builder::new()
            .name("serve_forever".into())
            .spawn(move || serving.serve_forever())?;
        let mut rig = Rig {
            strategy,
            addr,
            cpu,
            server: Some(server),
            thread: Some(thread),
            shut_down: false,
            closed: false,
            fds_before,
            fds_serving: 0,
        };
        let started = poll_until(WAIT, || rig.server().handle().is_serving());
        assert!(started, "serve_forever() did not start within {WAIT:?}");
        rig.assert_serves("starting");
        rig.fds_serving = settled_fd_count();
        Ok(rig)
    }

    pub fn server(&self) -> &TestServer<H, K> {
        self.server.as_ref().expect("the server is still there")
    }

    /// A handle to the server, for a test to stop it its own way (`shutdown_gracefully`);
    /// then [`serving_ended`](Rig::serving_ended) collects the serving thread.
    pub fn handle(&self) -> ServerHandle {
        self.server().handle()
    }

    /// Waits (bounded by `limit`) until `serve_forever` has returned, after a shutdown the
    /// test asked for through [`handle`](Rig::handle); panics unless it returned `Ok`.
    /// [`finish`](Rig::finish) then only closes and counts.
    pub fn serving_ended(&mut self, limit: Duration) {
        let thread = self.thread.take().expect("the serving thread");
        self.shut_down = true;
        let finished = poll_until(limit, || thread.is_finished());
        assert!(
            finished,
            "serve_forever() did not return within {limit:?} on {}",
            self.strategy
        );
        match thread.join() {
            Ok(Ok(())) => {}
            Ok(Err(err)) => panic!("serve_forever() failed on {}: {err}", self.strategy),
            Err(_) => panic!("serve_forever() panicked on {}", self.strategy),
        }
    }

    /// Descriptors open while the server serves and no client is connected.
    pub fn fds_serving(&self) -> usize {
        self.fds_serving
    }

    /// Waits (bounded) until the server has taken `clients` connections of this test from
    /// its listen queue, as many as its strategy takes at once: each is then two
    /// descriptors of this process, the client's and the server's.
    pub fn wait_connections(&self, clients: usize) {
        let (taken, seen, expected) = self.poll_connections(clients, WAIT);
        assert!(
            taken,
            "the server on {} did not take {} of {clients} connections within {WAIT:?}: fds \
             {seen}, expected at least {expected}",
            self.strategy,
            self.strategy.accepts(clients)
        );
    }

    /// As [`wait_connections`](Rig::wait_connections), for at most `limit`; `false` if the
    /// server did not take them (a server blocked by one of them takes no more).
    pub fn try_wait_connections(&self, clients: usize, limit: Duration) -> bool {
        self.poll_connections(clients, limit).0
    }

    fn poll_connections(&self, clients: usize, limit: Duration) -> (bool, usize, usize) {
        let expected = self.fds_serving + clients + self.strategy.accepts(clients);
        let mut seen = 0;
        let taken = poll_until(limit, || {
            seen = fd_count();
            seen >= expected
        });
        (taken, seen, expected)
    }

    /// The server is healthy again after `fault`: the process idles, holds the descriptors
    /// it held before, and the next request gets the right answer.
    pub fn assert_healthy(&self, fault: &str) {
        self.assert_idle(fault);
        let cleanup = self.assert_fds_back(fault);
        if cleanup > Duration::from_secs(1) {
            // The fault's connection lived on for a while: what it left behind starts only
            // now, so idling before proved little.
            self.assert_idle(&format!("{fault}, once its descriptors were closed"));
        }
        self.assert_serves(fault);
    }

    pub fn assert_idle(&self, fault: &str) {
        assert_idle(&self.cpu, &format!("{fault} on {}", self.strategy), true);
    }

    /// Waits (bounded) for the descriptor count to be back to the serving count; returns
    /// how long that took.
    pub fn assert_fds_back(&self, fault: &str) -> Duration {
        self.wait_fds(self.fds_serving, &format!("{fault} on {}", self.strategy))
    }

    fn wait_fds(&self, expected: usize, when: &str) -> Duration {
        let cpu = self.cpu.now();
        let started = Instant::now();
        let mut seen = 0;
        let back = poll_until(WAIT, || {
            seen = fd_count();
            seen == expected
        });
        let took = started.elapsed();
        if !back {
            let used = self.cpu.now().saturating_sub(cpu);
            let verdict = if used * BUSY_SHARE >= took {
                "a busy loop holds them"
            } else {
                "idle: they are held, not spun on"
            };
            panic!(
                "fds {seen}, expected {expected}, {:?} after {when} (CPU meanwhile {} ms of {} \
                 ms: {verdict})",
                WAIT,
                used.as_millis(),
                took.as_millis()
            );
        }
        took
    }

    /// A GET of [`SMALL`] gets 200 and its bytes, within [`WAIT`].
    pub fn assert_serves(&self, after: &str) {
        let started = Instant::now();
        match get(self.addr, SMALL, WAIT) {
            Ok((head, body)) if head.status == 200 && body == SMALL_BODY => {}
            Ok((head, body)) => panic!(
                "GET {SMALL} after {after} on {}: {} with {:?}, expected 200 with {:?}",
                self.strategy,
                head.status_line(),
                String::from_utf8_lossy(&body[..body.len().min(200)]),
                String::from_utf8_lossy(SMALL_BODY)
            ),
            Err(err) => panic!(
                "GET {SMALL} after {after} on {}: {err} ({} ms)",
                self.strategy,
                started.elapsed().as_millis()
            ),
        }
    }

    /// `shutdown()`, which must return (and `serve_forever` with Ok) within [`WAIT`].
    pub fn shutdown(&mut self) {
        if self.shut_down {
            return;
        }
        self.shut_down = true;
        let handle = self.server().handle();
        within(WAIT, "shutdown()", move || handle.shutdown());
        let thread = self.thread.take().expect("the serving thread");
        let finished = poll_until(WAIT, || thread.is_finished());
        assert!(
            finished,
            "serve_forever() did not return within {WAIT:?} of shutdown()"
        );
        match thread.join() {
            Ok(Ok(())) => {}
            Ok(Err(err)) => panic!("serve_forever() failed on {}: {err}", self.strategy),
            Err(_) => panic!("serve_forever() panicked on {}", self.strategy),
        }
    }

    /// `server_close()`, which must return within `limit`.
    pub fn server_close_within(&mut self, limit: Duration) {
        if self.closed {
            return;
        }
        self.closed = true;
        let server = Arc::clone(self.server.as_ref().expect("the server"));
        within(limit, "server_close()", move || server.server_close());
    }

    /// Stops and closes the server, drops it, and checks the process holds the descriptors
    /// it held before the server (and its handler) existed.
    pub fn finish(mut self) {
        self.shutdown();
        self.server_close_within(WAIT);
        let server = self.server.take().expect("the server");
        let others = Arc::strong_count(&server) - 1;
        assert_eq!(others, 0, "{others} references to the server outlive it");
        drop(server);
        self.wait_fds(
            self.fds_before,
            &format!(
                "shutdown(), server_close() and drop of the server on {}",
                self.strategy
            ),
        );
    }
}

impl<H: RequestHandler<Request = StreamRequest>, K: ServerHooks<TcpTransport>> Drop for Rig<H, K> {
    /// A failed test still stops its server, so that the next test finds an idle
    /// process; a server that does not stop within [`WAIT`] is left behind. Never panics
    /// (a panic while unwinding would abort the whole binary).
    fn drop(&mut self) {
        let Some(server) = self.server.take() else {
            return;
        };
        let thread = self.thread.take();
        let stop = move || {
            server.handle().shutdown();
            if let Some(thread) = thread {
                let _ = thread.join();
            }
            server.server_close();
        };
        let (done, stopped) = mpsc::channel();
        let helper = thread::Builder::new().spawn(move || {
            stop();
            let _ = done.send(());
        });
        // Without a thread to be had (the worker-count case) the server goes unstopped,
        // with the process it is in.
        if helper.is_ok() {
            let _ = stopped.recv_timeout(WAIT);
        }
    }
}

/// Runs `f` on a helper thread; panics if it has not returned within `limit`.
pub fn within(limit: Duration, what: &str, f: impl FnOnce() + Send + 'static) {
    let (done, finished) = mpsc::channel();
    thread::spawn(move || {
        f();
        let _ = done.send(());
    });
    if finished.recv_timeout(limit).is_err() {
        panic!("{what} did not return within {limit:?}");
    }
}

/// The descriptor count once it stopped changing for 100 ms (the server closes its side of
/// a finished connection a moment after the client saw the end).
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
// Clients

/// `GET target` in `version`, with a Host header for HTTP/1.1.
pub fn get_request(version: Version, target: &str) -> Vec<u8> {
    if version == Version::HTTP_11 {
        format!("GET {target} HTTP/1.1\r\nHost: faults\r\n\r\n").into_bytes()
    } else {
        format!("GET {target} HTTP/1.0\r\n\r\n").into_bytes()
    }
}

/// `GET target HTTP/1.0` on a new connection: the head and the whole body, checked against
/// its `Content-Length`. Every read and the connect wait at most `timeout`.
pub fn get(addr: SocketAddr, target: &str, timeout: Duration) -> Result<(Head, Vec<u8>), String> {
    let mut conn = Conn::try_open(addr, timeout).map_err(|e| format!("connect: {e}"))?;
    conn.send(&get_request(Version::HTTP_10, target))
        .map_err(|e| format!("send the request: {e}"))?;
    let head = conn.head()?;
    let (body, end) = conn.until_end();
    if end != End::Eof {
        return Err(format!(
            "{}: the body ended with {end:?} after {} bytes",
            head.status_line(),
            body.len()
        ));
    }
    if let Some(length) = head.content_length() {
        if length != body.len() as u64 {
            return Err(format!(
                "{}: Content-Length {length} but {} bytes",
                head.status_line(),
                body.len()
            ));
        }
    }
    Ok((head, body))
}

/// [`get`], and how long it took.
pub fn timed_get(
    addr: SocketAddr,
    target: &str,
    timeout: Duration,
) -> (Duration, Result<(Head, Vec<u8>), String>) {
    let started = Instant::now();
    let result = get(addr, target, timeout);
    (started.elapsed(), result)
}

/// Panics unless a GET of [`SMALL`] gets 200 and its bytes within `limit`, naming what was
/// going on.
pub fn assert_get_within(addr: SocketAddr, limit: Duration, meanwhile: &str) {
    let (took, result) = timed_get(addr, SMALL, limit);
    let seen = match result {
        Ok((head, body)) if head.status == 200 && body == SMALL_BODY && took <= limit => return,
        Ok((head, _)) => format!("{} after {} ms", head.status_line(), took.as_millis()),
        Err(err) => format!("{err} after {} ms", took.as_millis()),
    };
    panic!(
        "GET {SMALL} while {meanwhile}: {seen}, expected 200 within {} ms",
        limit.as_millis()
    );
}

/// How a read ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// The server closed the connection.
    Eof,
    /// The server reset it (closed with unread input, or aborted).
    Reset,
    /// Nothing came within the read timeout.
    TimedOut,
    Failed(io::ErrorKind),
}

impl End {
    /// The connection is over: closed or reset.
    pub fn is_close(self) -> bool {
        matches!(self, End::Eof | End::Reset)
    }

    fn of(err: &io::Error) -> End {
        match err.kind() {
            io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted => End::Reset,
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => End::TimedOut,
            kind => End::Failed(kind),
        }
    }
}

/// A response head.
#[derive(Clone, Debug)]
pub struct Head {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub text: String,
}

impl Head {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn content_length(&self) -> Option<u64> {
        self.header("content-length").and_then(|v| v.parse().ok())
    }

    pub fn is_chunked(&self) -> bool {
        self.header("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
    }

    pub fn status_line(&self) -> &str {
        self.text.lines().next().unwrap_or("")
    }
}

/// A raw client connection: what it read past a head waits in `pending`.
pub struct Conn {
    pub stream: TcpStream,
    pending: Vec<u8>,
}

impl Conn {
    /// A connection with `timeout` on connect, reads and writes.
    pub fn open(addr: SocketAddr) -> Conn {
        Conn::try_open(addr, WAIT).unwrap_or_else(|e| panic!("connect to {addr}: {e}"))
    }

    /// A connection made elsewhere (with its timeouts set there).
    pub fn from_stream(stream: TcpStream) -> Conn {
        Conn {
            stream,
            pending: Vec::new(),
        }
    }

    pub fn try_open(addr: SocketAddr, timeout: Duration) -> io::Result<Conn> {
        let stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        Ok(Conn {
            stream,
            pending: Vec::new(),
        })
    }

    /// A connection whose receive buffer is small (64 KiB asked, set before connecting so
    /// the window stays small): what the server can push ahead of a client that does not
    /// read is bounded by its own send buffer.
    pub fn open_slow(addr: SocketAddr) -> Conn {
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("a socket");
        socket
            .set_recv_buffer_size(64 * KIB)
            .expect("set SO_RCVBUF");
        socket
            .connect_timeout(&addr.into(), WAIT)
            .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
        let stream: TcpStream = socket.into();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        stream.set_write_timeout(Some(WAIT)).unwrap();
        Conn {
            stream,
            pending: Vec::new(),
        }
    }

    pub fn set_read_timeout(&self, timeout: Duration) {
        self.stream
            .set_read_timeout(Some(timeout.max(Duration::from_millis(1))))
            .expect("set a read timeout");
    }

    pub fn send(&mut self, data: &[u8]) -> io::Result<()> {
        self.stream.write_all(data)
    }

    /// Reads into `buf`, the pending bytes first.
    pub fn read(&mut self, buf: &mut [u8]) -> Result<usize, End> {
        if !self.pending.is_empty() {
            let n = buf.len().min(self.pending.len());
            buf[..n].copy_from_slice(&self.pending[..n]);
            self.pending.drain(..n);
            return Ok(n);
        }
        loop {
            match self.stream.read(buf) {
                Ok(0) => return Err(End::Eof),
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(End::of(&e)),
            }
        }
    }

    /// Reads the next final response head (1xx heads are skipped).
    pub fn head(&mut self) -> Result<Head, String> {
        self.head_or_close()?.ok_or_else(|| {
            "the connection closed (or was reset) before a response head".to_string()
        })
    }

    /// As [`head`](Conn::head), but a connection that ends cleanly before the first byte of
    /// a head (the server closed it between responses) is `None`, not an error.
    pub fn head_or_close(&mut self) -> Result<Option<Head>, String> {
        loop {
            let end = loop {
                if let Some(i) = find(&self.pending, b"\r\n\r\n") {
                    break i;
                }
                let mut chunk = [0u8; 16 * KIB];
                match self.stream.read(&mut chunk) {
                    Ok(n) if n > 0 => self.pending.extend_from_slice(&chunk[..n]),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Ok(_) if self.pending.is_empty() => return Ok(None),
                    Err(e) if self.pending.is_empty() && End::of(&e) == End::Reset => {
                        return Ok(None)
                    }
                    Ok(_) => {
                        return Err(format!(
                            "the connection closed inside a response head (got {:?})",
                            String::from_utf8_lossy(&self.pending)
                        ))
                    }
                    Err(e) => {
                        return Err(format!(
                            "reading a response head: {:?} (got {:?})",
                            End::of(&e),
                            String::from_utf8_lossy(&self.pending)
                        ))
                    }
                }
            };
            let text = String::from_utf8_lossy(&self.pending[..end]).into_owned();
            self.pending.drain(..end + 4);
            let head = parse_head(text)?;
            if !(100..200).contains(&head.status) {
                return Ok(Some(head));
            }
        }
    }

    /// Reads up to `len` body bytes, checking those within `expected` (the bytes from the
    /// start of the body; any after it are only counted); returns how many came, and how
    /// reading ended if before `len`. Panics on a byte that differs.
    pub fn body_against(&mut self, expected: &[u8], len: usize) -> (usize, Option<End>) {
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

    /// Reads until the connection ends (or a read times out): the bytes and how it ended.
    pub fn until_end(&mut self) -> (Vec<u8>, End) {
        let mut data = std::mem::take(&mut self.pending);
        let mut chunk = [0u8; 64 * KIB];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return (data, End::Eof),
                Ok(n) => data.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return (data, End::of(&e)),
            }
        }
    }

    /// Sends FIN (no more requests) and keeps reading possible.
    pub fn half_close(&self) {
        self.stream
            .shutdown(Shutdown::Write)
            .expect("shut the connection down for writing");
    }

    /// Closes like a browser giving up: FIN, then the close (which the kernel turns into a
    /// reset if the server's data is still unread).
    pub fn close(self) {
        let _ = self.stream.shutdown(Shutdown::Write);
        drop(self);
    }

    /// Aborts the connection: SO_LINGER 0, so the close sends a reset at once.
    pub fn reset(self) {
        SockRef::from(&self.stream)
            .set_linger(Some(Duration::ZERO))
            .expect("set SO_LINGER 0");
        drop(self);
    }
}

/// Panics unless `got`, found at `offset` of a body, is what `expected` holds there.
pub fn check_bytes(got: &[u8], expected: &[u8], offset: usize) {
    let end = offset + got.len();
    if end > expected.len() {
        panic!(
            "the body is longer than expected: {end} bytes, expected {}",
            expected.len()
        );
    }
    if got != &expected[offset..end] {
        let at = got
            .iter()
            .zip(&expected[offset..end])
            .position(|(a, b)| a != b)
            .unwrap_or(0);
        panic!(
            "the body differs from the file at byte {} (got {:02x?}, expected {:02x?})",
            offset + at,
            &got[at..(at + 8).min(got.len())],
            &expected[offset + at..(offset + at + 8).min(end)]
        );
    }
}

fn parse_head(text: String) -> Result<Head, String> {
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    let status = parts.next().and_then(|s| s.parse().ok());
    let status = match (version.starts_with("HTTP/1."), status) {
        (true, Some(status)) => status,
        _ => return Err(format!("not a status line: {status_line:?}")),
    };
    let mut headers = Vec::new();
    for line in lines {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| format!("not a header line: {line:?}"))?;
        headers.push((name.trim().to_string(), value.trim().to_string()));
    }
    Ok(Head {
        status,
        headers,
        text,
    })
}

pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A chunked body as far as it came: its data, and whether the last (0) chunk arrived.
pub fn read_chunked(conn: &mut Conn) -> (Vec<u8>, bool) {
    let mut raw = Vec::new();
    let mut data = Vec::new();
    let mut pos = 0;
    let mut chunk = [0u8; 16 * KIB];
    loop {
        // Parse every complete chunk held so far.
        while let Some(line_end) = find(&raw[pos..], b"\r\n") {
            let size_line = String::from_utf8_lossy(&raw[pos..pos + line_end]).into_owned();
            let size_text = size_line.split(';').next().unwrap_or("").trim();
            let Ok(size) = usize::from_str_radix(size_text, 16) else {
                return (data, false);
            };
            let start = pos + line_end + 2;
            if size == 0 {
                return (data, true);
            }
            if raw.len() < start + size + 2 {
                break;
            }
            data.extend_from_slice(&raw[start..start + size]);
            pos = start + size + 2;
        }
        match conn.read(&mut chunk) {
            Ok(n) => raw.extend_from_slice(&chunk[..n]),
            Err(_) => return (data, false),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Slow clients

/// Connections that each send what they have left one byte per `every`, on a thread of
/// their own, until stopped: slow request heads and bodies.
pub struct Trickle {
    stop: Arc<AtomicBool>,
    rounds: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

impl Trickle {
    /// Each connection first sends its `at_once` bytes, then trickles its `slowly` bytes.
    pub fn start(addr: SocketAddr, clients: Vec<(Vec<u8>, Vec<u8>)>, every: Duration) -> Trickle {
        let mut conns = Vec::new();
        for (at_once, slowly) in clients {
            let mut conn = Conn::open(addr);
            conn.send(&at_once)
                .expect("send what a slow client sends at once");
            conns.push((conn, slowly, 0usize));
        }
        let stop = Arc::new(AtomicBool::new(false));
        let rounds = Arc::new(AtomicUsize::new(0));
        let thread = {
            let stop = Arc::clone(&stop);
            let rounds = Arc::clone(&rounds);
            thread::spawn(move || {
                while !stop.load(Ordering::Acquire) {
                    for (conn, slowly, sent) in &mut conns {
                        if *sent < slowly.len() && conn.send(&slowly[*sent..*sent + 1]).is_ok() {
                            *sent += 1;
                        }
                    }
                    rounds.fetch_add(1, Ordering::AcqRel);
                    thread::sleep(every);
                }
                // The slow clients go away with the thread: plain closes.
            })
        };
        Trickle {
            stop,
            rounds,
            thread: Some(thread),
        }
    }

    /// Rounds of one byte per connection sent so far.
    pub fn rounds(&self) -> usize {
        self.rounds.load(Ordering::Acquire)
    }

    /// Stops trickling and closes every connection.
    pub fn stop(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Trickle {
    fn drop(&mut self) {
        self.stop_now();
    }
}

// ---------------------------------------------------------------------------------------
// Process-wide faults, undone on drop

/// This process cannot open another descriptor while this lives: the soft RLIMIT_NOFILE
/// is lowered to just above the highest open descriptor, and every free number below it is
/// taken by `/dev/null`. Dropping it gives them back and restores the limit, also when the
/// test fails.
pub struct NoFreeDescriptors {
    original: libc::rlimit,
    fillers: Vec<File>,
}

impl NoFreeDescriptors {
    pub fn take() -> NoFreeDescriptors {
        let original = get_nofile();
        let highest = fs::read_dir("/proc/self/fd")
            .expect("list /proc/self/fd")
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u64>().ok())
            .max()
            .expect("some open descriptor");
        set_nofile(libc::rlimit {
            rlim_cur: (highest + 1) as libc::rlim_t,
            rlim_max: original.rlim_max,
        });
        let mut guard = NoFreeDescriptors {
            original,
            fillers: Vec::new(),
        };
        loop {
            match File::open("/dev/null") {
                Ok(file) => guard.fillers.push(file),
                Err(err) if err.raw_os_error() == Some(libc::EMFILE) => break,
                Err(err) => panic!("filling the descriptor table: {err}"),
            }
        }
        guard
    }
}

impl Drop for NoFreeDescriptors {
    fn drop(&mut self) {
        self.fillers.clear();
        set_nofile(self.original);
    }
}

fn get_nofile() -> libc::rlimit {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the limit into the struct it is given.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    assert_eq!(rc, 0, "getrlimit: {}", io::Error::last_os_error());
    limit
}

fn set_nofile(limit: libc::rlimit) {
    // SAFETY: setrlimit reads the struct it is given.
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) };
    assert_eq!(rc, 0, "setrlimit: {}", io::Error::last_os_error());
}

/// Limits this process's address space to what it uses now plus `extra` bytes: a process
/// that tries to start a thread for each of 100 000 workers fails quickly here instead of
/// taking every process id of the machine.
pub fn limit_address_space(extra: u64) {
    let status = fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmSize:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmSize in /proc/self/status");
    let limit = libc::rlimit {
        rlim_cur: (kib * 1024 + extra) as libc::rlim_t,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: setrlimit reads the struct it is given.
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_AS, &limit) };
    assert_eq!(
        rc,
        0,
        "setrlimit(RLIMIT_AS): {}",
        io::Error::last_os_error()
    );
}

/// A process group a CGI script started (the script itself, or a child it moved to a
/// session of its own, out of the server's reach), known by the pid its leader wrote to
/// `pid_file`. Killed on drop if its leader is still the process that wrote the pid (same
/// start time), so that a reused pid is never hit; a server that failed to stop it then
/// cannot hold the next test's resources.
pub struct Stray {
    pid_file: PathBuf,
    seen: Option<(i32, u64)>,
}

impl Stray {
    pub fn new(pid_file: PathBuf) -> Stray {
        Stray {
            pid_file,
            seen: None,
        }
    }

    /// Waits (bounded) until the process has written its pid, and remembers it.
    pub fn wait_started(&mut self) -> bool {
        let pid_file = self.pid_file.clone();
        let mut seen = None;
        let started = poll_until(WAIT, || {
            let pid = fs::read_to_string(&pid_file)
                .ok()
                .and_then(|text| text.trim().parse::<i32>().ok());
            seen = pid.and_then(|pid| Some((pid, start_time(pid)?)));
            seen.is_some()
        });
        self.seen = seen;
        started
    }

    /// Whether the process is still there.
    pub fn alive(&self) -> bool {
        self.seen
            .is_some_and(|(pid, started)| start_time(pid) == Some(started))
    }
}

/// Field 22 of `/proc/PID/stat`: when the process started, in clock ticks after boot.
/// `None` for a process that is gone (or a zombie: it no longer runs anything).
fn start_time(pid: i32) -> Option<u64> {
    let stat = fs::read(format!("/proc/{pid}/stat")).ok()?;
    let text = String::from_utf8_lossy(&stat).into_owned();
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    if fields.first() == Some(&"Z") {
        return None;
    }
    fields.get(19)?.parse().ok()
}

impl Drop for Stray {
    fn drop(&mut self) {
        if let (true, Some((pid, _))) = (self.alive(), self.seen) {
            // The leader of its own group (a CGI script runs in a group of its own, a
            // `setsid` child leads a new session): its children go with it.
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}
