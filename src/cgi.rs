//! Python's `CGIHTTPRequestHandler`: runs CGI scripts (RFC 3875), serves files otherwise.

use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use crate::files::path::{resolve, translate};
use crate::files::{EchoForm, FormHandler, SimpleHttpHandler};
use crate::handler::HandlerResult;
use crate::http::{HttpHandler, HttpRequest, Limits, Version};

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
        let body = if request.rfile.content_length() == Some(0) && !request.rfile.is_chunked() {
            Vec::new()
        } else {
            request.read_body()?
        };
        let mut command = Command::new(&script);
        command
            .env_clear()
            .envs(self.environment(request, script_url, path_info, body.len()))
            .current_dir(script.parent().unwrap_or(root))
            // A group of its own, so that a timeout kills what the script started too.
            .process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
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
        let stdin = child.stdin.take().expect("piped stdin");
        let feeder = thread::spawn(move || {
            let mut stdin = stdin;
            // A script may ignore its input and exit: a broken pipe is not our failure.
            let _ = stdin.write_all(&body);
        });
        let mut stderr = child.stderr.take().expect("piped stderr");
        let errors = thread::spawn(move || {
            let mut kept = Vec::new();
            let _ = (&mut stderr).take(MAX_STDERR as u64).read_to_end(&mut kept);
            let _ = io::copy(&mut stderr, &mut io::sink());
            kept
        });
        let stdout = child.stdout.take().expect("piped stdout");
        let result = relay(request, stdout, deadline);
        if matches!(result, Err(CgiFailure::TimedOut)) {
            // The script may have exited and left a child holding its output open.
            kill_group(&child);
        }
        let status = finish_child(&mut child, deadline);
        let _ = feeder.join();
        let stderr = errors.join().unwrap_or_default();
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
            Err(CgiFailure::BadOutput(reason)) => {
                request.log_error(&format!("CGI script {script_url}: {reason}"));
                if !request.wfile.started() {
                    request.send_error(StatusCode::BAD_GATEWAY, "Malformed CGI script output")?;
                } else {
                    request.close_connection = true;
                }
                Ok(())
            }
            Err(CgiFailure::TimedOut) => {
                if !request.wfile.started() {
                    request.send_error(StatusCode::GATEWAY_TIMEOUT, "CGI script timed out")?;
                } else {
                    request.close_connection = true;
                }
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
        body_len: usize,
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
        set("PATH", "/usr/local/bin:/usr/bin:/bin".into());
        if let Some(kind) = request
            .header("authorization")
            .and_then(|a| a.split_whitespace().next())
        {
            set("AUTH_TYPE", kind.into());
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

/// Reads from the script's output, waiting no later than `deadline`.
fn read_until(
    stdout: &mut ChildStdout,
    buf: &mut [u8],
    deadline: Instant,
) -> Result<usize, CgiFailure> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(CgiFailure::TimedOut);
        }
        let ms = left.as_millis().clamp(1, i32::MAX as u128) as i32;
        let mut fds = [PollFd::new(stdout.as_fd(), PollFlags::POLLIN)];
        match poll(
            &mut fds,
            PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX),
        ) {
            Ok(0) => return Err(CgiFailure::TimedOut),
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(errno) => return Err(io::Error::from(errno).into()),
        }
        match stdout.read(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// Turns the script's CGI response into the HTTP response.
fn relay(
    request: &mut HttpRequest<'_>,
    mut stdout: ChildStdout,
    deadline: Instant,
) -> Result<(), CgiFailure> {
    let mut head = Vec::new();
    let mut chunk = [0u8; 8192];
    let body_start = loop {
        if let Some(end) = header_end(&head) {
            break end;
        }
        if head.len() > MAX_CGI_HEADER {
            return Err(CgiFailure::BadOutput("header section too large".into()));
        }
        let n = read_until(&mut stdout, &mut chunk, deadline)?;
        if n == 0 {
            return Err(CgiFailure::BadOutput(
                "output ended before the blank line after its headers".into(),
            ));
        }
        head.extend_from_slice(&chunk[..n]);
    };
    let (status, headers) =
        parse_cgi_headers(&head[..body_start]).map_err(CgiFailure::BadOutput)?;
    request.send_response_message(status.0, status.1.as_deref())?;
    for (name, value) in &headers {
        request.send_header(name, value)?;
    }
    request.end_headers()?;
    request.wfile.write_all(&head[body_start..])?;
    loop {
        let n = read_until(&mut stdout, &mut chunk, deadline)?;
        if n == 0 {
            return Ok(());
        }
        request.wfile.write_all(&chunk[..n])?;
    }
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

    fn limits(&self) -> Limits {
        self.files.limits()
    }

    fn protocol_version(&self) -> Version {
        self.files.protocol_version()
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
