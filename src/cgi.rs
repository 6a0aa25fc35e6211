//! Python's `CGIHTTPRequestHandler`: runs CGI scripts (RFC 3875), serves files otherwise.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{killpg, Signal};
use nix::sys::wait::{waitid, Id, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::files::path::{resolve, translate};
use crate::files::{EchoForm, FormHandler, SimpleHttpHandler};
use crate::handler::HandlerResult;
use crate::http::spool::Spool;
use crate::http::{HttpHandler, HttpRequest, Version};

/// Largest header section a script may print.
const MAX_CGI_HEADER: usize = 64 * 1024;
/// What is kept of a script's standard error for the log.
const MAX_STDERR: usize = 16 * 1024;

/// Runs CGI scripts under `cgi_directories` and serves every other path like
/// [`SimpleHttpHandler`]: Python's `CGIHTTPRequestHandler`.
///
/// A script is any executable file under one of the directories (default `/cgi-bin` and
/// `/htbin`), run directly (never through a shell) with the RFC 3875 environment, the
/// request body on its standard input, and its directory as working directory. Its output
/// starts with CGI headers: `Status:` sets the status, `Location:` redirects (302 unless a
/// status is given), the others become response headers. A script that runs past the time
/// limit is killed; one that prints no valid header gets a 502 for it.
///
/// The environment holds only the meta-variables and `PATH`: nothing of the server's own
/// environment leaks to scripts, the `Proxy` header never becomes `HTTP_PROXY`, and header
/// names with an underscore are dropped (they would pass for the same name with a dash).
#[derive(Clone, Debug)]
pub struct CgiHttpHandler<F = EchoForm> {
    files: SimpleHttpHandler<F>,
    cgi_directories: Arc<Vec<String>>,
    time_limit: Duration,
}

impl CgiHttpHandler {
    /// Serves `directory`, running scripts under `/cgi-bin` and `/htbin`.
    pub fn new(directory: impl AsRef<Path>) -> io::Result<Self> {
        Ok(Self::from_files(SimpleHttpHandler::new(directory)?))
    }
}

impl<F: FormHandler> CgiHttpHandler<F> {
    /// Adds CGI to a configured file handler.
    pub fn from_files(files: SimpleHttpHandler<F>) -> Self {
        CgiHttpHandler {
            files,
            cgi_directories: Arc::new(vec!["/cgi-bin".into(), "/htbin".into()]),
            time_limit: Duration::from_secs(30),
        }
    }

    /// The URL directories whose files are scripts (Python's `cgi_directories`).
    pub fn cgi_directories<I: IntoIterator<Item = S>, S: Into<String>>(mut self, dirs: I) -> Self {
        self.cgi_directories = Arc::new(
            dirs.into_iter()
                .map(|d| format!("/{}", d.into().trim_matches('/')))
                .collect(),
        );
        self
    }

    /// How long a script may run before it is killed (default 30 s).
    pub fn time_limit(mut self, limit: Duration) -> Self {
        self.time_limit = limit;
        self
    }

    /// The file handler for paths that are not scripts.
    pub fn files(&self) -> &SimpleHttpHandler<F> {
        &self.files
    }

    /// Splits a request target into (script URL, PATH_INFO) if it names something under a
    /// CGI directory: Python's `is_cgi`.
    fn cgi_parts(&self, target: &str) -> Option<(String, String)> {
        let decoded = translate(self.files.directory(), target).ok()?.decoded;
        let segments: Vec<&str> = decoded
            .split('/')
            .filter(|s| !s.is_empty() && *s != ".")
            .collect();
        let joined = format!("/{}", segments.join("/"));
        let dir = self.cgi_directories.iter().find(|d| {
            joined.starts_with(d.as_str())
                && (joined.len() == d.len() || joined[d.len()..].starts_with('/'))
        })?;
        let depth = dir.trim_matches('/').split('/').count();
        // Walk into subdirectories: the first segment that is not a directory is the script.
        let mut script_end = depth;
        while script_end < segments.len() {
            let candidate = format!("/{}", segments[..=script_end].join("/"));
            let path = translate(self.files.directory(), &candidate).ok()?.path;
            script_end += 1;
            if !path.is_dir() {
                break;
            }
        }
        let script = format!("/{}", segments[..script_end].join("/"));
        let rest = &segments[script_end..];
        let path_info = if rest.is_empty() {
            String::new()
        } else {
            format!("/{}", rest.join("/"))
        };
        Some((script, path_info))
    }

    /// Runs the script `script_url` for the request: Python's `run_cgi`.
    fn run_cgi(
        &self,
        request: &mut HttpRequest<'_>,
        script_url: &str,
        path_info: &str,
    ) -> HandlerResult {
        let root = self.files.directory();
        let script = match translate(root, script_url)
            .map_err(|_| StatusCode::NOT_FOUND)
            .and_then(|t| resolve(root, &t.path, self.files.follows_symlinks()))
        {
            Ok(path) => path,
            Err(_) => {
                request.send_error(
                    StatusCode::NOT_FOUND,
                    format!("No such CGI script ({script_url})").as_str(),
                )?;
                return Ok(());
            }
        };
        let meta = std::fs::metadata(&script)?;
        if !meta.is_file() {
            request.send_error(StatusCode::FORBIDDEN, "CGI script is not a plain file")?;
            return Ok(());
        }
        if meta.permissions().mode() & 0o111 == 0 {
            request.send_error(StatusCode::FORBIDDEN, "CGI script is not executable")?;
            return Ok(());
        }
        let (stdin, body_len) = script_input(request)?;
        let mut command = Command::new(&script);
        command
            .env_clear()
            .envs(self.environment(request, script_url, path_info, body_len))
            .current_dir(script.parent().unwrap_or(root))
            // A group of its own, so that a timeout kills what the script started too.
            .process_group(0)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let body = match stdin {
            ScriptInput::File(file) => {
                command.stdin(Stdio::from(file));
                Vec::new()
            }
            ScriptInput::Bytes(bytes) => {
                command.stdin(Stdio::piped());
                bytes
            }
        };
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(err) => {
                request.log_error(&format!(
                    "cannot run CGI script {}: {err}",
                    script.display()
                ));
                request.send_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "CGI script could not be started",
                )?;
                return Ok(());
            }
        };
        let deadline = Instant::now() + self.time_limit;
        let mut run = match ScriptRun::new(&mut child, body) {
            Ok(run) => run,
            Err(err) => {
                // Not left running, nor unreaped.
                kill_group(&child);
                let _ = child.kill();
                let _ = child.wait();
                return Err(err.into());
            }
        };
        let relayed = run.relay(request, &child, deadline);
        let stderr = std::mem::take(&mut run.errors);
        let abandoned = run.abandoned || matches!(relayed, Err(CgiFailure::TimedOut));
        drop(run);
        if abandoned {
            // What holds the pipes open goes with the script's group (not yet reaped, so
            // its id is still the script's); a descendant in a session of its own is out
            // of reach, and only loses its reader.
            kill_group(&child);
        }
        let status = finish_child(&mut child, deadline);
        // Only a script that exited cleanly gave its whole answer; the end of an answer
        // without a length says so.
        let clean = matches!(status, ChildEnd::Exited(0));
        let result = relayed.and_then(|answer| answer.finish(request, clean));
        if !stderr.is_empty() {
            request.log_error(&format!(
                "CGI script {script_url} wrote to stderr: {}",
                String::from_utf8_lossy(&stderr).trim_end()
            ));
        }
        match status {
            ChildEnd::Exited(code) if code != 0 => {
                request.log_error(&format!("CGI script {script_url} exit status {code}"))
            }
            ChildEnd::Killed => request.log_error(&format!(
                "CGI script {script_url} killed after {:?}",
                self.time_limit
            )),
            _ => {}
        }
        match result {
            Ok(()) => Ok(()),
            Err(failure) if request.wfile.started() => {
                // Part of the answer has gone: the client must be able to tell it is cut.
                request.log_error(&format!("CGI script {script_url}: {failure}"));
                request.mark_incomplete();
                match failure {
                    CgiFailure::Io(err) => Err(err.into()),
                    _ => Ok(()),
                }
            }
            Err(CgiFailure::BadOutput(reason)) => {
                request.log_error(&format!("CGI script {script_url}: {reason}"));
                request.send_error(StatusCode::BAD_GATEWAY, "Malformed CGI script output")?;
                Ok(())
            }
            Err(CgiFailure::TimedOut) => {
                request.send_error(StatusCode::GATEWAY_TIMEOUT, "CGI script timed out")?;
                Ok(())
            }
            Err(CgiFailure::Io(err)) => Err(err.into()),
        }
    }

    /// The RFC 3875 meta-variables, and `HTTP_*` for the request headers.
    fn environment(
        &self,
        request: &HttpRequest<'_>,
        script_url: &str,
        path_info: &str,
        body_len: u64,
    ) -> Vec<(OsString, OsString)> {
        let mut env: Vec<(OsString, OsString)> = Vec::new();
        let mut set = |name: &str, value: OsString| env.push((name.into(), value));
        let query = request.query().unwrap_or("").to_string();
        set("GATEWAY_INTERFACE", "CGI/1.1".into());
        set("SERVER_SOFTWARE", request.version_string().into());
        set("SERVER_NAME", request.server_name().into());
        set("SERVER_PORT", request.server_port().to_string().into());
        let protocol = if request.request_version == Version::HTTP_11 {
            "HTTP/1.1"
        } else {
            "HTTP/1.0"
        };
        set("SERVER_PROTOCOL", protocol.into());
        set("REQUEST_METHOD", request.command.as_str().into());
        set("SCRIPT_NAME", script_url.into());
        set("PATH_INFO", path_info.into());
        if !path_info.is_empty() {
            if let Ok(target) = translate(self.files.directory(), path_info) {
                set("PATH_TRANSLATED", target.path.into_os_string());
            }
        }
        set("QUERY_STRING", query.into());
        set("REMOTE_ADDR", request.address_string().into());
        set("REMOTE_HOST", request.address_string().into());
        // What Apache and nginx tell scripts of a TLS connection, so that a script builds
        // https:// links.
        if request.is_secure() {
            set("HTTPS", "on".into());
            set("REQUEST_SCHEME", "https".into());
        } else {
            set("REQUEST_SCHEME", "http".into());
        }
        set("PATH", "/usr/local/bin:/usr/bin:/bin".into());
        if let Some(kind) = request
            .header("authorization")
            .and_then(|a| a.split_whitespace().next())
        {
            set("AUTH_TYPE", kind.into());
        }
        // The user a `BasicAuth` in front proved, as RFC 3875 4.1.11 asks.
        if let Some(user) = request.remote_user() {
            set("REMOTE_USER", user.into());
        }
        if let Some(content_type) = request.headers.get("content-type") {
            set(
                "CONTENT_TYPE",
                OsString::from_vec(content_type.as_bytes().to_vec()),
            );
        }
        if request.command == Method::POST || request.command == Method::PUT || body_len > 0 {
            set("CONTENT_LENGTH", body_len.to_string().into());
        }
        for name in request.headers.keys() {
            let lower = name.as_str();
            // Proxy: the httpoxy hole (HTTP_PROXY). Authorization: credentials stay with us.
            // The rest are already meta-variables. A name with `_` would pass for the one
            // with `-` (`X_User` for `X-User`, set by a trusted proxy): dropped, as Apache does.
            if lower.contains('_')
                || matches!(
                    lower,
                    "proxy"
                        | "authorization"
                        | "proxy-authorization"
                        | "content-type"
                        | "content-length"
                )
            {
                continue;
            }
            let mut value = Vec::new();
            for (i, v) in request.headers.get_all(name).iter().enumerate() {
                if i > 0 {
                    value.extend_from_slice(b", ");
                }
                value.extend_from_slice(v.as_bytes());
            }
            let key = format!("HTTP_{}", lower.to_ascii_uppercase().replace('-', "_"));
            set(&key, OsString::from_vec(value));
        }
        env
    }
}

enum CgiFailure {
    BadOutput(String),
    TimedOut,
    Io(io::Error),
}

impl From<io::Error> for CgiFailure {
    fn from(err: io::Error) -> Self {
        CgiFailure::Io(err)
    }
}

impl std::fmt::Display for CgiFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CgiFailure::BadOutput(reason) => f.write_str(reason),
            CgiFailure::TimedOut => f.write_str("timed out; the answer is cut"),
            CgiFailure::Io(err) => write!(f, "the answer is cut: {err}"),
        }
    }
}

/// What the script reads as its standard input.
enum ScriptInput {
    /// The body, in a file the script reads itself.
    File(File),
    /// The body, small enough to be in memory, to be written to a pipe.
    Bytes(Vec<u8>),
}

/// The request body for the script, read whole first (the event loop has done so already)
/// so that `CONTENT_LENGTH` is exact whatever the framing, memory stays bounded (a large
/// body waits in a temporary file), and a client that sends slowly holds no script. Also
/// returns its length.
fn script_input(request: &mut HttpRequest<'_>) -> io::Result<(ScriptInput, u64)> {
    if request.rfile.known_length() == Some(0) {
        return Ok((ScriptInput::Bytes(Vec::new()), 0));
    }
    let mut own = Spool::new();
    if request.rfile.spool_mut().is_none() {
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            let n = request.rfile.read(&mut chunk)?;
            if n == 0 {
                break;
            }
            own.write(&chunk[..n])?;
        }
    }
    let spool = match request.rfile.spool_mut() {
        Some(spool) => spool,
        None => &mut own,
    };
    let len = spool.remaining();
    if let Some(bytes) = spool.memory() {
        return Ok((ScriptInput::Bytes(bytes.to_vec()), len));
    }
    let file = spool.file()?.expect("a spool not in memory is in a file");
    // The duplicate shares the file position the spool set: the script reads from there.
    Ok((ScriptInput::File(file.try_clone()?), len))
}

/// Largest piece of output read from the script at a time.
const OUTPUT_CHUNK: usize = 64 * 1024;
/// How often the relay looks whether the script has exited.
const EXIT_CHECK: Duration = Duration::from_millis(50);
/// How long output may go on after the script exited (a pipeline's last writer); then
/// whatever still holds the pipes is not waited for.
const EXIT_GRACE: Duration = Duration::from_millis(200);

/// Whether the script has exited, without reaping it: until `finish_child` does, its pid,
/// and so the id of its process group, stay its own.
fn has_exited(child: &Child) -> bool {
    let Ok(pid) = i32::try_from(child.id()) else {
        return false;
    };
    let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
    matches!(waitid(Id::Pid(Pid::from_raw(pid)), flags), Ok(status) if status != WaitStatus::StillAlive)
}

/// A running script's pipes: one `poll` over its input, output and errors, so that no
/// descendant holding a pipe open can hold the request past the time limit.
struct ScriptRun {
    stdin: Option<ChildStdin>,
    input: Vec<u8>,
    written: usize,
    stdout: Option<ChildStdout>,
    stderr: Option<ChildStderr>,
    /// What the script wrote to stderr, up to [`MAX_STDERR`].
    errors: Vec<u8>,
    /// The script exited and something it started held its output open: the relay gave
    /// up on it.
    abandoned: bool,
}

impl ScriptRun {
    fn new(child: &mut Child, input: Vec<u8>) -> io::Result<Self> {
        let run = ScriptRun {
            // Without a body the script reads end-of-file at once.
            stdin: child.stdin.take().filter(|_| !input.is_empty()),
            input,
            written: 0,
            stdout: child.stdout.take(),
            stderr: child.stderr.take(),
            errors: Vec::new(),
            abandoned: false,
        };
        for fd in [
            run.stdin.as_ref().map(AsFd::as_fd),
            run.stdout.as_ref().map(AsFd::as_fd),
            run.stderr.as_ref().map(AsFd::as_fd),
        ]
        .into_iter()
        .flatten()
        {
            set_nonblocking(fd)?;
        }
        Ok(run)
    }

    /// Relays the script's answer to the client as it comes, until its output ends, its
    /// answer is complete, or `deadline`; returns the answer, to be ended once the script's
    /// exit is known.
    fn relay(
        &mut self,
        request: &mut HttpRequest<'_>,
        child: &Child,
        deadline: Instant,
    ) -> Result<Answer, CgiFailure> {
        let mut answer = Answer::Head(Vec::new());
        let mut chunk = vec![0u8; OUTPUT_CHUNK];
        let mut exited: Option<Instant> = None;
        loop {
            if answer.is_complete() || self.stdout.is_none() {
                return Ok(answer);
            }
            if exited.is_some_and(|at| at.elapsed() >= EXIT_GRACE) {
                // The script is gone and what it started holds its output: what it wrote
                // is all the answer there is.
                self.abandoned = true;
                return Ok(answer);
            }
            // Until the script exits, look again at least every EXIT_CHECK.
            let wake = match exited {
                None => Instant::now() + EXIT_CHECK,
                Some(at) => at + EXIT_GRACE,
            };
            let readable = self.wait(deadline, wake)?;
            if exited.is_none() && has_exited(child) {
                exited = Some(Instant::now());
            }
            if let (true, Some(stdout)) = (readable.stdout, &mut self.stdout) {
                match stdout.read(&mut chunk) {
                    Ok(0) => self.stdout = None,
                    Ok(n) => answer.feed(request, &chunk[..n])?,
                    Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                    Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                    Err(err) => return Err(err.into()),
                }
                // What came leaves now: a script that answers a little at a time is seen
                // a little at a time.
                if answer.started() {
                    request.wfile.flush()?;
                }
            }
            if readable.stderr {
                self.read_errors();
            }
            if readable.stdin {
                self.write_input();
            }
        }
    }

    /// Waits until a pipe is ready, or `wake` (nothing ready), or `deadline` (timed out).
    fn wait(&self, deadline: Instant, wake: Instant) -> Result<Ready, CgiFailure> {
        loop {
            let now = Instant::now();
            let left = deadline.saturating_duration_since(now);
            if left.is_zero() {
                return Err(CgiFailure::TimedOut);
            }
            let left = left.min(wake.saturating_duration_since(now));
            let pending_input = self.written < self.input.len();
            let mut fds = Vec::with_capacity(3);
            let stdin = self.stdin.as_ref().filter(|_| pending_input);
            if let Some(stdin) = stdin {
                fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLOUT));
            }
            if let Some(stdout) = &self.stdout {
                fds.push(PollFd::new(stdout.as_fd(), PollFlags::POLLIN));
            }
            if let Some(stderr) = &self.stderr {
                fds.push(PollFd::new(stderr.as_fd(), PollFlags::POLLIN));
            }
            match poll(&mut fds, poll_timeout(left)) {
                Ok(0) if Instant::now() >= deadline => return Err(CgiFailure::TimedOut),
                Ok(0) => {
                    return Ok(Ready {
                        stdin: false,
                        stdout: false,
                        stderr: false,
                    })
                }
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(errno) => return Err(io::Error::from(errno).into()),
            }
            let ready = |i: usize| fds[i].revents().is_some_and(|r| !r.is_empty());
            let mut i = 0;
            let mut next = || {
                i += 1;
                ready(i - 1)
            };
            return Ok(Ready {
                stdin: stdin.is_some() && next(),
                stdout: self.stdout.is_some() && next(),
                stderr: self.stderr.is_some() && next(),
            });
        }
    }

    /// Writes what the pipe takes of the body; closes the pipe once all is written (or the
    /// script stopped reading).
    fn write_input(&mut self) {
        let Some(stdin) = &mut self.stdin else {
            return;
        };
        match stdin.write(&self.input[self.written..]) {
            Ok(n) => self.written += n,
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            // A script may ignore its input and exit: a broken pipe is not our failure.
            Err(_) => self.written = self.input.len(),
        }
        if self.written >= self.input.len() {
            self.stdin = None;
        }
    }

    /// Keeps what the script writes to stderr, up to a limit; the rest is dropped.
    fn read_errors(&mut self) {
        let Some(stderr) = &mut self.stderr else {
            return;
        };
        let mut chunk = [0u8; 8192];
        match stderr.read(&mut chunk) {
            Ok(0) => self.stderr = None,
            Ok(n) => {
                let room = MAX_STDERR.saturating_sub(self.errors.len());
                self.errors.extend_from_slice(&chunk[..n.min(room)]);
            }
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => self.stderr = None,
        }
    }
}

/// Which of a script's pipes are ready.
struct Ready {
    stdin: bool,
    stdout: bool,
    stderr: bool,
}

/// The script's answer, turned into the HTTP response as it arrives.
enum Answer {
    /// Collecting the CGI header section.
    Head(Vec<u8>),
    /// Relaying the body, framed so that the client can tell a whole answer from a cut
    /// one.
    Body(Framing),
}

#[derive(Clone, Copy)]
enum Framing {
    /// The script's `Content-Length`: this many bytes are left.
    Length(u64),
    /// `Transfer-Encoding: chunked`, ended by the last chunk only when the script's output
    /// ended as it should.
    Chunked,
    /// Until the connection closes (HTTP/1.0, or no body).
    Close,
}

impl Answer {
    fn started(&self) -> bool {
        matches!(self, Answer::Body(_))
    }

    /// The script sent all its `Content-Length` promised: nothing more is awaited, whatever
    /// holds its output open.
    fn is_complete(&self) -> bool {
        matches!(self, Answer::Body(Framing::Length(0)))
    }

    fn feed(&mut self, request: &mut HttpRequest<'_>, data: &[u8]) -> Result<(), CgiFailure> {
        match self {
            Answer::Head(head) => {
                head.extend_from_slice(data);
                let Some(body_start) = header_end(head) else {
                    if head.len() > MAX_CGI_HEADER {
                        return Err(CgiFailure::BadOutput("header section too large".into()));
                    }
                    return Ok(());
                };
                let head = std::mem::take(head);
                let framing = start_response(request, &head[..body_start])?;
                *self = Answer::Body(framing);
                self.feed(request, &head[body_start..])
            }
            Answer::Body(Framing::Length(left)) => {
                let n = data.len().min(*left as usize);
                request.wfile.write_all(&data[..n])?;
                *left -= n as u64;
                Ok(())
            }
            Answer::Body(Framing::Chunked) if data.is_empty() => Ok(()),
            Answer::Body(Framing::Chunked) => {
                write!(request.wfile, "{:x}\r\n", data.len())?;
                request.wfile.write_all(data)?;
                request.wfile.write_all(b"\r\n")?;
                Ok(())
            }
            Answer::Body(Framing::Close) => Ok(request.wfile.write_all(data)?),
        }
    }

    /// Ends the answer once the script's output has ended (or its answer is complete);
    /// `clean`: the script exited with status 0.
    fn finish(self, request: &mut HttpRequest<'_>, clean: bool) -> Result<(), CgiFailure> {
        match self {
            Answer::Head(_) => Err(CgiFailure::BadOutput(
                "output ended before the blank line after its headers".into(),
            )),
            Answer::Body(Framing::Length(0)) => Ok(()),
            Answer::Body(Framing::Length(left)) => Err(CgiFailure::BadOutput(format!(
                "output ended {left} bytes short of its Content-Length"
            ))),
            Answer::Body(_) if !clean => Err(CgiFailure::BadOutput(
                "the script did not exit cleanly: its answer may be cut".into(),
            )),
            Answer::Body(Framing::Close) => Ok(()),
            Answer::Body(Framing::Chunked) => {
                request.wfile.write_all(b"0\r\n\r\n")?;
                Ok(())
            }
        }
    }
}

/// Sends the status line and headers of the script's answer; returns how its body is
/// framed.
fn start_response(request: &mut HttpRequest<'_>, head: &[u8]) -> Result<Framing, CgiFailure> {
    let (status, headers) = parse_cgi_headers(head).map_err(CgiFailure::BadOutput)?;
    request.send_response_message(status.0, status.1.as_deref())?;
    let mut length = None;
    for (name, value) in &headers {
        // Framing is the server's: a script's own would let it desynchronize the
        // connection.
        if name.eq_ignore_ascii_case("transfer-encoding") || name.eq_ignore_ascii_case("connection")
        {
            continue;
        }
        if name.eq_ignore_ascii_case("content-length") {
            if status.0 == StatusCode::NO_CONTENT || status.0.is_informational() {
                // RFC 9110 8.6: never on a response that cannot have a body.
                continue;
            }
            match value.trim().parse::<u64>() {
                Ok(n) if length.is_none() => length = Some(n),
                _ => {
                    return Err(CgiFailure::BadOutput(format!(
                        "invalid Content-Length {value:?}"
                    )))
                }
            }
        }
        request.send_header(name, value)?;
    }
    let no_body = request.command == Method::HEAD || crate::http::status::forbids_body(status.0);
    let chunked = request.request_version >= Version::HTTP_11
        && request.protocol_version() >= Version::HTTP_11;
    let framing = match length {
        Some(n) if !no_body => Framing::Length(n),
        _ if no_body => Framing::Close,
        None if chunked => {
            request.send_header("Transfer-Encoding", "chunked")?;
            Framing::Chunked
        }
        None => {
            request.close_connection = true;
            Framing::Close
        }
        Some(_) => unreachable!("covered above"),
    };
    request.end_headers()?;
    Ok(match framing {
        // No body follows, whatever the script writes.
        _ if no_body => Framing::Length(0),
        framing => framing,
    })
}

/// Makes a pipe's reads and writes fail with `WouldBlock` instead of waiting.
fn set_nonblocking(fd: BorrowedFd<'_>) -> io::Result<()> {
    let flags = OFlag::from_bits_retain(fcntl(fd, FcntlArg::F_GETFL)?);
    fcntl(fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    Ok(())
}

fn poll_timeout(left: Duration) -> PollTimeout {
    let ms = left.as_millis().clamp(1, i32::MAX as u128) as i32;
    PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)
}

/// The index just past the blank line ending the CGI header section (LF or CRLF lines).
fn header_end(buf: &[u8]) -> Option<usize> {
    let mut start = 0;
    while let Some(offset) = buf[start..].iter().position(|&b| b == b'\n') {
        let nl = start + offset;
        let line = &buf[start..nl];
        if line.is_empty() || line == b"\r" {
            return Some(nl + 1);
        }
        start = nl + 1;
    }
    None
}

type CgiStatus = (StatusCode, Option<String>);

/// Reads CGI header lines: `Status`, `Location`, `Content-Type` and others (RFC 3875 6.3).
fn parse_cgi_headers(block: &[u8]) -> Result<(CgiStatus, Vec<(String, String)>), String> {
    let text = std::str::from_utf8(block).map_err(|_| "headers are not UTF-8".to_string())?;
    let mut status: Option<CgiStatus> = None;
    let mut headers = Vec::new();
    let mut has_type = false;
    let mut location = false;
    for line in text
        .lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| !l.is_empty())
    {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| format!("not a header line: {line:?}"))?;
        let (name, value) = (name.trim(), value.trim());
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
        {
            return Err(format!("invalid header name {name:?}"));
        }
        if value.bytes().any(|b| b.is_ascii_control() && b != b'\t') {
            return Err(format!("invalid value for header {name}"));
        }
        if name.eq_ignore_ascii_case("status") {
            let (code, reason) = value.split_once(' ').unwrap_or((value, ""));
            let code = code
                .parse::<u16>()
                .ok()
                .and_then(|c| StatusCode::from_u16(c).ok())
                .filter(|c| c.as_u16() >= 200)
                .ok_or_else(|| format!("invalid Status {value:?}"))?;
            let reason = (!reason.trim().is_empty()).then(|| reason.trim().to_string());
            status = Some((code, reason));
            continue;
        }
        has_type |= name.eq_ignore_ascii_case("content-type");
        location |= name.eq_ignore_ascii_case("location");
        headers.push((name.to_string(), value.to_string()));
    }
    if !has_type && !location && status.is_none() {
        return Err("no Content-Type, Location or Status header".into());
    }
    let status = status.unwrap_or(if location {
        (StatusCode::FOUND, None)
    } else {
        (StatusCode::OK, Some("Script output follows".into()))
    });
    Ok((status, headers))
}

enum ChildEnd {
    Exited(i32),
    Signaled,
    Killed,
}

/// Kills the script's process group: a shell script's children (a `sleep`) hold the output
/// pipes open and would make us wait for them. Called before the script is reaped, so its
/// group id cannot have been reused.
fn kill_group(child: &Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
    }
}

/// Waits for the script until `deadline`, then kills it; always reaps it.
fn finish_child(child: &mut Child, deadline: Instant) -> ChildEnd {
    let mut pause = Duration::from_millis(1);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                return status.code().map_or(ChildEnd::Signaled, ChildEnd::Exited);
            }
            Ok(None) if Instant::now() < deadline => {
                thread::sleep(pause.min(deadline.saturating_duration_since(Instant::now())));
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            _ => {
                kill_group(child);
                let _ = child.kill();
                let _ = child.wait();
                return ChildEnd::Killed;
            }
        }
    }
}

impl<F: FormHandler> HttpHandler for CgiHttpHandler<F> {
    const SERVER_VERSION: &'static str = concat!("CGIHTTP/", env!("CARGO_PKG_VERSION"));

    /// Scripts run on a worker; files stay on the event loop's thread.
    fn may_block(&self, request: &HttpRequest<'_>) -> bool {
        self.cgi_parts(&request.path).is_some() || self.files.may_block(request)
    }

    fn do_get(&mut self, request: &mut HttpRequest<'_>) -> HandlerResult {
        match self.cgi_parts(&request.path) {
            Some((script, info)) => self.run_cgi(request, &script, &info),
            None => self.files.do_get(request),
        }
    }

    fn do_head(&mut self, request: &mut HttpRequest<'_>) -> HandlerResult {
        match self.cgi_parts(&request.path) {
            Some((script, info)) => self.run_cgi(request, &script, &info),
            None => self.files.do_head(request),
        }
    }

    /// Runs a script; a POST elsewhere goes to the file handler's form handler.
    fn do_post(&mut self, request: &mut HttpRequest<'_>) -> HandlerResult {
        match self.cgi_parts(&request.path) {
            Some((script, info)) => self.run_cgi(request, &script, &info),
            None => self.files.do_post(request),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgi_headers() {
        let ((status, reason), headers) =
            parse_cgi_headers(b"Content-Type: text/plain\r\nX-A: 1\r\n\r\n").unwrap();
        assert_eq!(status, StatusCode::OK);
        assert_eq!(reason.as_deref(), Some("Script output follows"));
        assert_eq!(headers.len(), 2);
        let ((status, reason), _) =
            parse_cgi_headers(b"Status: 404 Gone Fishing\nContent-Type: text/plain\n\n").unwrap();
        assert_eq!(
            (status.as_u16(), reason.as_deref()),
            (404, Some("Gone Fishing"))
        );
        let ((status, _), _) = parse_cgi_headers(b"Location: http://example.com/\n\n").unwrap();
        assert_eq!(status, StatusCode::FOUND);
        assert!(parse_cgi_headers(b"X-Only: 1\n\n").is_err());
        assert!(parse_cgi_headers(b"Status: abc\n\n").is_err());
        assert!(parse_cgi_headers(b"garbage line\n\n").is_err());
        assert_eq!(header_end(b"A: b\r\n\r\nbody"), Some(8));
        assert_eq!(header_end(b"A: b\n\nbody"), Some(6));
        assert_eq!(header_end(b"A: b\n"), None);
    }
}
