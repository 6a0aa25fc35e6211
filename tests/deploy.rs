//! Deployment, end to end, with real tools: the `simple-http` binary behind HAProxy under
//! wrk's load, restarted one instance at a time; a hand-off between two instances on one
//! port (`--reuse-port`) with no balancer; HAProxy's PROXY protocol v2 naming the client.
//!
//! The load is `wrk -t1 -c20` on a small file, stopped with SIGINT once the scenario is
//! over (wrk then reports as at the end of its duration); a Lua `done` prints wrk's counts
//! in a fixed format. Every scenario must end with zero errors (connect, read, write,
//! timeout) and zero answers outside 2xx/3xx, and must have served a minimum of requests
//! while it restarted, so that it cannot pass with no load at all. Each instance's access
//! log (stderr) is counted: which instance served how many.
//!
//! Needs `haproxy` and `wrk` (Debian packages of those names), and for the hand-off
//! `net.ipv4.tcp_migrate_req=1` (without it, a connection queued on the old instance's
//! socket when it closes is reset). A missing one skips the scenario with a message, unless
//! `DEPLOY_REQUIRED=1` (set by .ci/run): then it fails. Every port comes from the kernel;
//! the scenarios run one after another (one lock), and every process is killed when its
//! guard is dropped, also when a test fails.
#![cfg(feature = "cli")]

mod common;

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use common::TempDir;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

const BINARY: &str = env!("CARGO_BIN_EXE_simple-http");

/// The longest any single wait lasts: a broken scenario fails after this, it never hangs.
const WAIT: Duration = Duration::from_secs(10);

/// The instances' `--shutdown-timeout`, and how long an instance may take to exit after
/// SIGTERM (its drain, and a margin).
const SHUTDOWN_TIMEOUT: &str = "10";
const EXIT_WAIT: Duration = Duration::from_secs(15);

/// The file under load: small, so that the load is many requests.
const FILE: &str = "/small.txt";
const FILE_BODY: &[u8] = b"served during a deploy\n";

/// Requests the rest of the service must serve while one instance restarts: the load went
/// on, the scenario did not pass by carrying none.
const MIN_DURING: usize = 100;

/// Requests an instance serves in each phase of a scenario (before a restart, after it)
/// before the scenario goes on: every phase is under load.
const MIN_PHASE: usize = 500;

// ---------------------------------------------------------------------------------------
// Serialization and requirements

static LOCK: Mutex<()> = Mutex::new(());

/// One scenario at a time: each loads the machine's two cores, and wrk's counts must be
/// its own.
fn serial() -> MutexGuard<'static, ()> {
    LOCK.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `DEPLOY_REQUIRED=1` (CI): what a scenario needs must be there.
fn required() -> bool {
    std::env::var("DEPLOY_REQUIRED").is_ok_and(|v| v == "1")
}

/// Skips a scenario that cannot run here, with a message; under `DEPLOY_REQUIRED=1`,
/// fails it.
fn skip(why: &str) {
    assert!(!required(), "DEPLOY_REQUIRED=1, but {why}");
    eprintln!("skipped: {why} (DEPLOY_REQUIRED=1 makes this a failure)");
}

/// Whether `tool` is on the PATH.
fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The tools missing of `tools`, as a reason to skip; `None` if all are there.
fn missing(tools: &[&str]) -> Option<String> {
    let missing: Vec<&str> = tools.iter().copied().filter(|t| !have(t)).collect();
    (!missing.is_empty()).then(|| {
        format!(
            "{} not installed (apt-get install {})",
            missing.join(", "),
            missing.join(" ")
        )
    })
}

/// Polls `condition` every 10 ms until it holds (`true`) or `limit` passes (`false`).
fn poll_until(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

fn site(dir: &TempDir) -> PathBuf {
    dir.write(&format!("site{FILE}"), FILE_BODY);
    dir.join("site")
}

// ---------------------------------------------------------------------------------------
// simple-http instances

/// What an instance's access log said: successful GETs counted by path, and the first
/// lines kept whole.
#[derive(Default)]
struct AccessLog {
    ok_gets: HashMap<String, usize>,
    lines: Vec<String>,
}

const KEPT_LINES: usize = 2000;

impl AccessLog {
    fn add(&mut self, line: String) {
        // 127.0.0.1 - - [date] "GET /small.txt HTTP/1.1" 200 23 "-" "agent" 0.001
        if let Some((_, request)) = line.split_once("] \"GET ") {
            if let Some((path, rest)) = request.split_once(' ') {
                let status = rest.split_once("\" ").map(|(_, r)| r);
                if status.is_some_and(|s| s.starts_with("200 ")) {
                    *self.ok_gets.entry(path.to_string()).or_default() += 1;
                }
            }
        }
        if self.lines.len() < KEPT_LINES {
            self.lines.push(line);
        }
    }
}

/// A running `simple-http`, killed when dropped. Its stdout (the banner, and a line at
/// shutdown) and stderr (the access log) are read to their end by threads of their own,
/// so that the instance never blocks on a full pipe.
struct Instance {
    name: String,
    child: Child,
    port: u16,
    log: Arc<Mutex<AccessLog>>,
    stdout: Arc<Mutex<Vec<String>>>,
}

impl Instance {
    /// `simple-http PORT -b 127.0.0.1 -d SITE -p HTTP/1.1 --health /healthz
    /// --shutdown-timeout 10 EXTRA...`; waits for its banner.
    fn start(name: &str, site: &Path, port: u16, extra: &[&str]) -> Instance {
        Self::try_start(name, site, port, extra).unwrap_or_else(|e| panic!("{e}"))
    }

    fn try_start(name: &str, site: &Path, port: u16, extra: &[&str]) -> Result<Instance, String> {
        let mut command = Command::new(BINARY);
        command
            .arg(port.to_string())
            .args(["-b", "127.0.0.1", "-p", "HTTP/1.1", "--health", "/healthz"])
            .args(["--shutdown-timeout", SHUTDOWN_TIMEOUT])
            .arg("-d")
            .arg(site)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .map_err(|e| format!("start simple-http: {e}"))?;
        let log = Arc::new(Mutex::new(AccessLog::default()));
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let (banner, banners) = mpsc::channel();
        {
            let pipe = child.stdout.take().expect("stdout piped");
            let stdout = Arc::clone(&stdout);
            thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    if let Some(rest) = line.strip_prefix("Serving HTTP on 127.0.0.1 port ") {
                        let port = rest.split(' ').next().and_then(|p| p.parse::<u16>().ok());
                        let _ = banner.send(port);
                    }
                    lock(&stdout).push(line);
                }
            });
        }
        {
            let pipe = child.stderr.take().expect("stderr piped");
            let log = Arc::clone(&log);
            thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    lock(&log).add(line);
                }
            });
        }
        let mut instance = Instance {
            name: name.to_string(),
            child,
            port: 0,
            log,
            stdout,
        };
        match banners.recv_timeout(WAIT) {
            Ok(Some(port)) => {
                instance.port = port;
                Ok(instance)
            }
            _ => {
                // Ended (it could not bind, say) or silent: what it said is the error.
                let _ = instance.wait_exit(Duration::from_secs(1));
                Err(format!(
                    "simple-http {name} ({port} {extra:?}) gave no banner: stdout {:?}, \
                     stderr {:?}",
                    lock(&instance.stdout),
                    lock(&instance.log).lines
                ))
            }
        }
    }

    /// Successful GETs of `path` logged so far.
    fn served(&self, path: &str) -> usize {
        lock(&self.log).ok_gets.get(path).copied().unwrap_or(0)
    }

    /// Waits (bounded) until the instance has served `count` GETs of [`FILE`].
    fn wait_served(&self, count: usize, when: &str) {
        let mut seen = 0;
        let done = poll_until(WAIT, || {
            seen = self.served(FILE);
            seen >= count
        });
        assert!(
            done,
            "instance {} served {seen} GETs of {FILE} {when}, expected {count} within {WAIT:?}",
            self.name
        );
    }

    fn sigterm(&self) {
        kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM).expect("SIGTERM");
    }

    /// Waits (bounded by `limit`) for the instance to exit.
    fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let mut status = None;
        poll_until(limit, || {
            status = self.child.try_wait().ok().flatten();
            status.is_some()
        });
        status
    }

    /// SIGTERM, then the drain: it must exit with success within [`EXIT_WAIT`].
    fn expect_clean_exit(&mut self) {
        let started = Instant::now();
        let status = self.wait_exit(EXIT_WAIT);
        assert!(
            status.is_some_and(|s| s.success()),
            "instance {} after SIGTERM: {status:?} after {} ms (its --shutdown-timeout is {} \
             s); stdout {:?}",
            self.name,
            started.elapsed().as_millis(),
            SHUTDOWN_TIMEOUT,
            lock(&self.stdout)
        );
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

// ---------------------------------------------------------------------------------------
// wrk

/// wrk's counts at the end of a run.
#[derive(Debug, Default, PartialEq, Eq)]
struct WrkCounts {
    requests: usize,
    connect: usize,
    read: usize,
    write: usize,
    /// Answers outside 2xx and 3xx.
    status: usize,
    timeout: usize,
}

const DONE_LUA: &str = r#"
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "DEPLOY_WRK requests=%d connect=%d read=%d write=%d status=%d timeout=%d\n",
    summary.requests, e.connect, e.read, e.write, e.status, e.timeout))
end
"#;

/// `wrk -t1 -cN -d60s` on `url`, running until [`stop`](Load::stop); killed on drop.
struct Load {
    child: Option<Child>,
}

/// How wrk's connections live.
#[derive(Clone, Copy, Debug)]
enum Connections {
    /// Kept alive: the 20 connections carry every request.
    KeepAlive,
    /// `Connection: close` on every request: a new connection each, so that connections
    /// arrive all the time, also while a socket closes.
    New,
}

impl Load {
    fn start(dir: &TempDir, url: &str, connections: usize, kind: Connections) -> Load {
        let script = dir.write("done.lua", DONE_LUA);
        let mut command = Command::new("wrk");
        command.args([
            "-t1",
            &format!("-c{connections}"),
            "-d60s",
            "--timeout",
            "5s",
        ]);
        if let Connections::New = kind {
            command.args(["-H", "Connection: close"]);
        }
        let child = command
            .arg("-s")
            .arg(&script)
            .arg(url)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start wrk");
        Load { child: Some(child) }
    }

    /// SIGINT: wrk stops and reports; its counts.
    fn stop(mut self) -> WrkCounts {
        let mut child = self.child.take().expect("wrk");
        assert!(
            child.try_wait().ok().flatten().is_none(),
            "wrk ended before the scenario did (its -d60s is the scenario's limit)"
        );
        kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).expect("SIGINT to wrk");
        let ended = poll_until(WAIT, || child.try_wait().ok().flatten().is_some());
        if !ended {
            let _ = child.kill();
        }
        let mut out = String::new();
        let mut err = String::new();
        let _ = child
            .stdout
            .take()
            .expect("stdout")
            .read_to_string(&mut out);
        let _ = child
            .stderr
            .take()
            .expect("stderr")
            .read_to_string(&mut err);
        let _ = child.wait();
        assert!(
            ended,
            "wrk did not stop within {WAIT:?} of SIGINT: {out}{err}"
        );
        parse_wrk(&out).unwrap_or_else(|| panic!("no DEPLOY_WRK line from wrk: {out}{err}"))
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn parse_wrk(out: &str) -> Option<WrkCounts> {
    let line = out.lines().find_map(|l| l.strip_prefix("DEPLOY_WRK "))?;
    let mut counts = WrkCounts::default();
    for field in line.split_whitespace() {
        let (name, value) = field.split_once('=')?;
        let value: usize = value.parse().ok()?;
        match name {
            "requests" => counts.requests = value,
            "connect" => counts.connect = value,
            "read" => counts.read = value,
            "write" => counts.write = value,
            "status" => counts.status = value,
            "timeout" => counts.timeout = value,
            _ => return None,
        }
    }
    Some(counts)
}

/// Zero errors of any kind, zero answers outside 2xx/3xx, and at least `min` requests.
fn assert_clean(counts: &WrkCounts, min: usize, scenario: &str) {
    let errors = WrkCounts {
        requests: counts.requests,
        ..WrkCounts::default()
    };
    assert_eq!(
        counts, &errors,
        "{scenario}: wrk saw errors or answers outside 2xx/3xx"
    );
    assert!(
        counts.requests >= min,
        "{scenario}: wrk completed {} requests, expected at least {min}",
        counts.requests
    );
}

// ---------------------------------------------------------------------------------------
// HAProxy

/// HAProxy in the foreground (`-db`) on a config of ours, with an admin stats socket;
/// killed on drop.
struct Haproxy {
    child: Child,
    port: u16,
    socket: PathBuf,
}

impl Haproxy {
    /// Starts HAProxy with `backend` (the `backend sites` section's lines) behind a
    /// frontend on a free port.
    ///
    /// HAProxy cannot bind port 0 and tell us the port, so the port is found by binding
    /// port 0 and closing it right before HAProxy starts: another process may take it in
    /// between, then HAProxy fails to bind (EADDRINUSE) and we try another (as
    /// tests/activation.rs does for systemd-socket-activate).
    fn start(dir: &TempDir, backend: &str) -> Haproxy {
        let socket = dir.join("haproxy.sock");
        let mut failures = Vec::new();
        for attempt in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port")
                .port();
            let config = format!(
                "global\n\
                 \x20   stats socket {socket} mode 600 level admin\n\
                 defaults\n\
                 \x20   mode http\n\
                 \x20   timeout connect 1s\n\
                 \x20   timeout client 30s\n\
                 \x20   timeout server 30s\n\
                 \x20   timeout check 1s\n\
                 \x20   retries 3\n\
                 \x20   option redispatch 1\n\
                 \x20   retry-on conn-failure empty-response junk-response response-timeout\n\
                 frontend web\n\
                 \x20   bind 127.0.0.1:{port}\n\
                 \x20   default_backend sites\n\
                 backend sites\n\
                 {backend}",
                socket = socket.display()
            );
            let config_file = dir.write(&format!("haproxy-{attempt}.cfg"), config);
            let output = dir.join(&format!("haproxy-{attempt}.out"));
            let out = fs::File::create(&output).expect("HAProxy's output file");
            let child = Command::new("haproxy")
                .arg("-db")
                .arg("-f")
                .arg(&config_file)
                .stdin(Stdio::null())
                .stdout(out.try_clone().expect("dup"))
                .stderr(out)
                .spawn()
                .expect("start haproxy");
            let mut haproxy = Haproxy {
                child,
                port,
                socket: socket.clone(),
            };
            // Up once its stats socket answers; or it exited.
            let mut exited = false;
            let up = poll_until(WAIT, || {
                exited = haproxy.child.try_wait().ok().flatten().is_some();
                exited || haproxy.try_stat().is_ok()
            });
            let said = fs::read_to_string(&output).unwrap_or_default();
            if up && !exited {
                return haproxy;
            }
            if exited && said.contains("cannot bind") {
                failures.push(said);
                continue;
            }
            panic!("HAProxy did not start (exited: {exited}): {said}");
        }
        panic!("HAProxy found no free port in 5 tries: {failures:?}");
    }

    /// `show stat` on the stats socket: one map per proxy or server, by column name.
    fn try_stat(&self) -> std::io::Result<Vec<HashMap<String, String>>> {
        let mut stream = UnixStream::connect(&self.socket)?;
        stream.set_read_timeout(Some(WAIT))?;
        stream.write_all(b"show stat\n")?;
        let mut text = String::new();
        stream.read_to_string(&mut text)?;
        let mut lines = text.lines();
        let header = lines
            .next()
            .and_then(|l| l.strip_prefix("# "))
            .ok_or_else(|| std::io::Error::other(format!("not a stat header: {text:?}")))?;
        let names: Vec<&str> = header.split(',').collect();
        Ok(lines
            .filter(|l| !l.is_empty())
            .map(|l| {
                names
                    .iter()
                    .zip(l.split(','))
                    .map(|(n, v)| (n.to_string(), v.to_string()))
                    .collect()
            })
            .collect())
    }

    /// The `status` HAProxy gives server `name` of backend `sites` (UP, DOWN, ...).
    fn status(&self, name: &str) -> String {
        self.try_stat()
            .ok()
            .and_then(|rows| {
                rows.into_iter().find(|r| {
                    r.get("pxname").is_some_and(|p| p == "sites")
                        && r.get("svname").is_some_and(|s| s == name)
                })
            })
            .and_then(|r| r.get("status").cloned())
            .unwrap_or_default()
    }

    /// Waits (bounded) until HAProxy's health checks say server `name` is `want`.
    fn wait_status(&self, name: &str, want: &str, when: &str) {
        let mut seen = String::new();
        let reached = poll_until(WAIT, || {
            seen = self.status(name);
            seen == want
        });
        assert!(
            reached,
            "HAProxy says server {name} is {seen:?} {when}, expected {want} within {WAIT:?}"
        );
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A backend server line with fast health checks: one failed check (the 503 of a draining
/// instance, or a refused connection) takes it out, one passed check puts it back.
fn checked_server(name: &str, port: u16) -> String {
    format!("    server {name} 127.0.0.1:{port} check inter 100ms fall 1 rise 1\n")
}

// ---------------------------------------------------------------------------------------
// a. A rolling restart behind HAProxy

/// Two instances behind HAProxy, which checks `GET /healthz` every 100 ms and retries a
/// request whose connection failed or got no answer on the other server (`retry-on`,
/// `option redispatch`). Under wrk's load through HAProxy, each instance in turn is
/// restarted as a balancer's rolling restart does it: SIGTERM (the instance drains: its
/// health check answers 503, so HAProxy takes it out; its answers close their
/// connections, its socket is closed, so new requests go to the other), wait for it to
/// exit, start the new one on the same port, wait for HAProxy to see it up, then the
/// other instance. No `--reuse-port`: with a balancer in front, the balancer moves the
/// load, and the old and new instances never need the port at once (the hand-off on one
/// port is scenario b).
#[test]
fn rolling_restart_behind_haproxy() {
    let _serial = serial();
    if let Some(why) = missing(&["haproxy", "wrk"]) {
        return skip(&why);
    }
    let dir = TempDir::new();
    let site = site(&dir);
    let mut instances = [
        Instance::start("a", &site, 0, &[]),
        Instance::start("b", &site, 0, &[]),
    ];
    let names = ["a", "b"];
    let backend = format!(
        "    balance roundrobin\n\
         \x20   option httpchk GET /healthz\n{}{}",
        checked_server(names[0], instances[0].port),
        checked_server(names[1], instances[1].port)
    );
    let haproxy = Haproxy::start(&dir, &backend);
    for name in names {
        haproxy.wait_status(name, "UP", "before the load");
    }
    let load = Load::start(&dir, &haproxy.url(FILE), 20, Connections::KeepAlive);
    for instance in &instances {
        instance.wait_served(MIN_PHASE, "before the restarts");
    }
    let mut served_during = Vec::new();
    let mut served_by_old = Vec::new();
    for (i, name) in names.into_iter().enumerate() {
        let other = 1 - i;
        let other_before = instances[other].served(FILE);
        let port = instances[i].port;
        instances[i].sigterm();
        haproxy.wait_status(name, "DOWN", "after SIGTERM to it");
        instances[i].expect_clean_exit();
        served_by_old.push(instances[i].served(FILE));
        instances[i] = Instance::start(name, &site, port, &[]);
        haproxy.wait_status(name, "UP", "once restarted");
        served_during.push(instances[other].served(FILE) - other_before);
        // The new instance takes its share again.
        instances[i].wait_served(MIN_PHASE, "after its restart");
    }
    let counts = load.stop();
    eprintln!(
        "rolling restart: wrk {counts:?}; the other instance served {served_during:?} during \
         each restart; the old instances {served_by_old:?} in all; the new ones {:?}",
        instances.iter().map(|i| i.served(FILE)).collect::<Vec<_>>()
    );
    for (name, during) in names.iter().zip(&served_during) {
        assert!(
            *during >= MIN_DURING,
            "only {during} requests served while {name} restarted, expected at least \
             {MIN_DURING}"
        );
    }
    let min = served_during.iter().sum::<usize>() + 2 * MIN_PHASE;
    assert_clean(&counts, min, "a rolling restart behind HAProxy");
}

// ---------------------------------------------------------------------------------------
// b. A hand-off on one port, no balancer

/// `net.ipv4.tcp_migrate_req` is 1, or set to 1 here (we may be root): the kernel then
/// moves connections queued on a closing SO_REUSEPORT socket to another of its group.
fn migrate_req() -> bool {
    const SETTING: &str = "/proc/sys/net/ipv4/tcp_migrate_req";
    let read = || fs::read_to_string(SETTING).is_ok_and(|v| v.trim() == "1");
    if !read() {
        let _ = fs::write(SETTING, "1");
    }
    read()
}

/// Instance A serves wrk's load; B starts on the same port (`--reuse-port` on both);
/// SIGTERM to A: it drains (its answers close their connections, its sockets close, what
/// was queued on them moves to B) and exits within its timeout. wrk sees no error, and
/// both served.
fn reuse_port_hand_off(kind: Connections, extra: &[&str]) {
    let _serial = serial();
    if let Some(why) = missing(&["wrk"]) {
        return skip(&why);
    }
    if !migrate_req() {
        return skip(
            "net.ipv4.tcp_migrate_req is not 1 and cannot be set (sysctl -w \
             net.ipv4.tcp_migrate_req=1)",
        );
    }
    let dir = TempDir::new();
    let site = site(&dir);
    let args: Vec<&str> = ["--reuse-port"].iter().chain(extra).copied().collect();
    let mut a = Instance::start("A", &site, 0, &args);
    let url = format!("http://127.0.0.1:{}{FILE}", a.port);
    let load = Load::start(&dir, &url, 20, kind);
    a.wait_served(MIN_PHASE, "before B started");
    let b = Instance::start("B", &site, a.port, &args);
    a.sigterm();
    a.expect_clean_exit();
    let b_at_exit = b.served(FILE);
    b.wait_served(b_at_exit + MIN_PHASE, "after A exited");
    let counts = load.stop();
    let (by_a, by_b) = (a.served(FILE), b.served(FILE));
    eprintln!("reuse-port hand-off {kind:?} {extra:?}: wrk {counts:?}; A served {by_a}, B {by_b}");
    assert!(by_a >= MIN_PHASE, "A served {by_a}");
    assert!(by_b >= MIN_PHASE, "B served {by_b}");
    assert_clean(&counts, 2 * MIN_PHASE, "a --reuse-port hand-off");
}

#[test]
fn reuse_port_hand_off_one_loop() {
    reuse_port_hand_off(Connections::KeepAlive, &["--threads", "1"]);
}

#[test]
fn reuse_port_hand_off_two_loops() {
    reuse_port_hand_off(Connections::KeepAlive, &["--threads", "2"]);
}

#[test]
fn reuse_port_hand_off_new_connections_one_loop() {
    reuse_port_hand_off(Connections::New, &["--threads", "1"]);
}

#[test]
fn reuse_port_hand_off_new_connections_two_loops() {
    reuse_port_hand_off(Connections::New, &["--threads", "2"]);
}

// ---------------------------------------------------------------------------------------
// c. The PROXY protocol from HAProxy

/// HAProxy sends a PROXY v2 header (`send-proxy-v2`) on each connection to an instance
/// started with `--proxy-protocol`. curl connects to HAProxy from 127.0.0.2; HAProxy
/// connects to the instance from 127.0.0.1 (`source`): the access log names 127.0.0.2,
/// which only the header can have told it.
#[test]
fn proxy_protocol_v2_from_haproxy_names_the_client() {
    let _serial = serial();
    if let Some(why) = missing(&["haproxy", "curl"]) {
        return skip(&why);
    }
    let help = Command::new(BINARY)
        .arg("--help")
        .output()
        .expect("simple-http --help");
    if !String::from_utf8_lossy(&help.stdout).contains("--proxy-protocol") {
        return skip("this simple-http has no --proxy-protocol (the branch proxy is not merged)");
    }
    let dir = TempDir::new();
    let site = site(&dir);
    let instance = Instance::start("p", &site, 0, &["--proxy-protocol"]);
    let backend = format!(
        "    server p 127.0.0.1:{} send-proxy-v2 source 127.0.0.1\n",
        instance.port
    );
    let haproxy = Haproxy::start(&dir, &backend);
    let output = Command::new("curl")
        .args(["-sS", "--max-time", "10", "--interface", "127.0.0.2"])
        .args(["-w", "\n%{http_code}"])
        .arg(haproxy.url(FILE))
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        text,
        format!("{}\n200", String::from_utf8_lossy(FILE_BODY)),
        "curl through HAProxy: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    instance.wait_served(1, "through HAProxy");
    let log = lock(&instance.log);
    let line = log
        .lines
        .iter()
        .find(|l| l.contains(&format!("\"GET {FILE} ")))
        .expect("the access line of the request");
    assert!(
        line.starts_with("127.0.0.2 "),
        "the access log names the TCP peer, not the client of the PROXY header: {line}"
    );
}
