//! Request logging in Common Log Format, through the `log` crate.
//!
//! Every value that comes from the client is escaped: a request line with a newline or an
//! ANSI escape in it cannot forge a log line or repaint a terminal.

use std::cell::RefCell;
use std::fmt::Write;
use std::io::Write as _;
use std::time::{Instant, SystemTime};

use http::StatusCode;

use super::date;
use crate::address::ClientAddress;

/// The `log` target of access and error lines; filter it like any other, e.g.
/// `RUST_LOG=socketserver::http=warn` to drop access lines.
pub const LOG_TARGET: &str = "socketserver::http";

/// Replaces control characters (C0, DEL, C1) with `\xNN` escapes, and backslashes with `\\`
/// so that an escape in the input cannot pass for one of ours.
pub fn escape_control(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    escape_into(&mut out, text);
    out
}

/// [`escape_control`], appended to `out`.
fn escape_into(out: &mut String, text: &str) {
    // Nearly every line is printable ASCII: copy it whole.
    if text
        .bytes()
        .all(|b| (b' '..=b'~').contains(&b) && b != b'\\')
    {
        out.push_str(text);
        return;
    }
    for c in text.chars() {
        if c == '\\' {
            out.push_str("\\\\");
        } else if c.is_control() {
            let _ = write!(out, "\\x{:02x}", c as u32);
        } else {
            out.push(c);
        }
    }
}

/// [`escape_into`] for a quoted field: a `"` becomes `\"` too.
fn escape_quoted_into(out: &mut String, text: &str) {
    for (i, part) in text.split('"').enumerate() {
        if i > 0 {
            out.push_str("\\\"");
        }
        escape_into(out, part);
    }
}

/// A log line in Common Log Format: `host - user [date] message` (`-` for no user), with
/// control characters escaped.
pub(crate) fn log_line(address: &str, user: Option<&str>, message: &str) -> String {
    let mut line = String::with_capacity(address.len() + message.len() + 40);
    start_line(&mut line, address, user);
    escape_into(&mut line, message);
    line
}

/// `host - user [date] ` into `line`: the authenticated user, or `-` without one (an empty
/// name too, so that the line keeps its fields).
fn start_line(line: &mut String, address: &str, user: Option<&str>) {
    escape_into(line, address);
    line.push_str(" - ");
    match user {
        Some(user) if !user.is_empty() => escape_into(line, user),
        _ => line.push('-'),
    }
    line.push_str(" [");
    date::with_log_now(|date| line.push_str(date));
    line.push_str("] ");
}

/// The access line of a response, written once the response has left (or the connection
/// ended before it could): the size is what was sent of the body, not what was promised.
pub(crate) struct AccessRecord {
    pub(crate) client_address: ClientAddress,
    pub(crate) requestline: String,
    /// The authenticated user ([`HttpRequest::set_remote_user`](super::HttpRequest::set_remote_user)).
    pub(crate) remote_user: Option<String>,
    pub(crate) status: Option<StatusCode>,
    /// Where the body begins in the connection's output stream, if the head was ended.
    pub(crate) body_origin: Option<u64>,
    /// Body bytes the response declared (`Content-Length`) or was given.
    pub(crate) promised: u64,
    /// The handler knows the response is incomplete (it failed, or cut it short).
    pub(crate) incomplete: bool,
    /// The request's `Referer` and `User-Agent`, for the combined format.
    pub(crate) referer: Option<String>,
    pub(crate) user_agent: Option<String>,
    /// When the request's head was parsed: the line gives the time until the last byte left.
    pub(crate) received: Instant,
}

impl AccessRecord {
    /// Logs the line, the output stream having been sent up to `sent`; a response cut
    /// short gets a warning first, saying how much of it left.
    pub(crate) fn write(self, sent: u64) {
        let body_sent = self
            .body_origin
            .map_or(0, |origin| sent.saturating_sub(origin).min(self.promised));
        let address = address_string(&self.client_address);
        if self.incomplete || body_sent < self.promised {
            let mut line = self.line(&address);
            let _ = write!(
                line,
                " response cut short: {body_sent} of {} body bytes sent",
                self.promised
            );
            log::warn!(target: LOG_TARGET, "{line}");
        }
        if log::log_enabled!(target: LOG_TARGET, log::Level::Info) {
            let seconds = self.received.elapsed().as_secs_f64();
            let mut line = self.line(&address);
            match body_sent {
                0 => line.push_str(" -"),
                n => {
                    let _ = write!(line, " {n}");
                }
            }
            // The combined format's two quoted fields, then the time taken.
            for field in [&self.referer, &self.user_agent] {
                line.push_str(" \"");
                match field {
                    Some(value) => escape_quoted_into(&mut line, value),
                    None => line.push('-'),
                }
                line.push('"');
            }
            let _ = write!(line, " {seconds:.3}");
            log::info!(
                target: LOG_TARGET,
                remote = address.as_str(),
                user = self.remote_user.as_deref(),
                request = self.requestline.as_str(),
                status = self.status.map(|s| s.as_u16()),
                bytes = body_sent,
                referer = self.referer.as_deref(),
                user_agent = self.user_agent.as_deref(),
                seconds = seconds;
                "{line}"
            );
        }
    }

    /// `host - user [date] "request line" status`.
    fn line(&self, address: &str) -> String {
        let mut line = String::with_capacity(address.len() + self.requestline.len() + 48);
        start_line(&mut line, address, self.remote_user.as_deref());
        line.push('"');
        escape_into(&mut line, &self.requestline);
        line.push_str("\" ");
        match self.status {
            Some(status) => line.push_str(status.as_str()),
            None => line.push('-'),
        }
        line
    }
}

/// The client as the log names it: the IP address alone for TCP (Python's
/// `address_string`).
pub(crate) fn address_string(address: &ClientAddress) -> String {
    match address {
        ClientAddress::Inet(addr) => addr.ip().to_string(),
        other => other.to_string(),
    }
}

/// Sends the `log` crate's records to standard error as Python's `http.server` writes its
/// lines: access and error lines (target [`LOG_TARGET`]) as they are, the client address
/// first and one timestamp; any other record as `[date] LEVEL target: message`. Records
/// less severe than `level` are dropped.
///
/// A program calls it once, first thing; it fails if a logger is installed already.
///
/// ```
/// socketserver::http::log_to_stderr(log::LevelFilter::Info).expect("no other logger");
/// ```
pub fn log_to_stderr(level: log::LevelFilter) -> Result<(), log::SetLoggerError> {
    log::set_logger(&StderrLogger { json: false })?;
    log::set_max_level(level);
    Ok(())
}

/// [`log_to_stderr`], one JSON object per line: an access line's fields (`time`, `remote`,
/// `user`, `request`, `status`, `bytes`, `referer`, `user_agent`, `seconds`; `null` where
/// there is none), any other record as `time`, `level`, `target` and `message`.
pub fn log_json_to_stderr(level: log::LevelFilter) -> Result<(), log::SetLoggerError> {
    log::set_logger(&StderrLogger { json: true })?;
    log::set_max_level(level);
    Ok(())
}

struct StderrLogger {
    json: bool,
}

thread_local! {
    /// The line being written, kept for the next one.
    static LINE: RefCell<String> = const { RefCell::new(String::new()) };
}

impl log::Log for StderrLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        LINE.with(|line| {
            let mut line = line.borrow_mut();
            line.clear();
            let _ = if self.json {
                json_line(&mut line, record);
                Ok(())
            } else if record.target() == LOG_TARGET {
                writeln!(line, "{}", record.args())
            } else {
                let date = log_date_time_string(SystemTime::now());
                let (level, target) = (record.level(), record.target());
                writeln!(line, "[{date}] {level} {target}: {}", record.args())
            };
            // One write per line, so lines of concurrent requests never interleave.
            let _ = std::io::stderr().lock().write_all(line.as_bytes());
        });
    }

    fn flush(&self) {}
}

/// `record` as one JSON object and a newline: its key-values if it has any (an access
/// line), else its level, target and message.
fn json_line(line: &mut String, record: &log::Record<'_>) {
    line.push_str("{\"time\":");
    date::with_log_now(|date| json_string(line, date));
    let mut fields = JsonFields { line, count: 0 };
    let _ = record.key_values().visit(&mut fields);
    if fields.count == 0 {
        line.push_str(",\"level\":");
        json_string(line, record.level().as_str());
        line.push_str(",\"target\":");
        json_string(line, record.target());
        line.push_str(",\"message\":");
        json_string(line, &record.args().to_string());
    }
    line.push_str("}\n");
}

/// Appends each key-value as `,"key":value`.
struct JsonFields<'a> {
    line: &'a mut String,
    count: usize,
}

impl<'kvs> log::kv::VisitSource<'kvs> for JsonFields<'_> {
    fn visit_pair(
        &mut self,
        key: log::kv::Key<'kvs>,
        value: log::kv::Value<'kvs>,
    ) -> Result<(), log::kv::Error> {
        self.count += 1;
        self.line.push(',');
        json_string(self.line, key.as_str());
        self.line.push(':');
        if let Some(number) = value.to_u64() {
            let _ = write!(self.line, "{number}");
        } else if let Some(number) = value.to_f64() {
            let _ = write!(self.line, "{number:.6}");
        } else if let Some(text) = value.to_borrowed_str() {
            json_string(self.line, text);
        } else {
            // An absent `Option` is the only other value access lines carry.
            let text = value.to_string();
            if text == "None" {
                self.line.push_str("null");
            } else {
                json_string(self.line, &text);
            }
        }
        Ok(())
    }
}

/// `text` as a JSON string: quotes, backslashes and control characters escaped.
fn json_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The time as Common Log Format writes it, in UTC: `23/Nov/2026:09:12:00 +0000`.
pub fn log_date_time_string(time: SystemTime) -> String {
    // IMF-fixdate is `Sun, 06 Nov 1994 08:49:37 GMT`: the same fields, in another order.
    let date = httpdate::fmt_http_date(time);
    let (day, month, year, clock) = (&date[5..7], &date[8..11], &date[12..16], &date[17..25]);
    format!("{day}/{month}/{year}:{clock} +0000")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn json_strings_escape_quotes_backslashes_and_controls() {
        let mut out = String::new();
        json_string(&mut out, "a\"b\\c\nd\u{1}\u{7f}é");
        assert_eq!(out, "\"a\\\"b\\\\c\\u000ad\\u0001\\u007fé\"");
        let parsed: String = serde_json::from_str(&out).unwrap();
        assert_eq!(parsed, "a\"b\\c\nd\u{1}\u{7f}é");
    }

    #[test]
    fn quoted_fields_escape_their_quotes() {
        let mut out = String::new();
        escape_quoted_into(&mut out, "say \"hi\"\r\n");
        assert_eq!(out, "say \\\"hi\\\"\\x0d\\x0a");
    }

    #[test]
    fn escapes_control_characters() {
        assert_eq!(
            escape_control("GET /\r\nX: \u{1b}[31m\\x41 \u{85}"),
            "GET /\\x0d\\x0aX: \\x1b[31m\\\\x41 \\x85"
        );
    }

    #[test]
    fn names_the_user_in_the_third_field() {
        let record = |user: Option<&str>| AccessRecord {
            client_address: ClientAddress::Inet(([127, 0, 0, 1], 80).into()),
            requestline: "GET / HTTP/1.1".into(),
            remote_user: user.map(str::to_string),
            status: Some(StatusCode::OK),
            body_origin: None,
            promised: 0,
            incomplete: false,
            referer: None,
            user_agent: None,
            received: Instant::now(),
        };
        let fields = |line: String| {
            let (head, rest) = line.split_once(" [").expect("a date");
            let (_, request) = rest.split_once("] ").expect("the end of the date");
            (head.to_string(), request.to_string())
        };
        let request = "\"GET / HTTP/1.1\" 200".to_string();
        let cases = [
            (None, "127.0.0.1 - -"),
            (Some(""), "127.0.0.1 - -"),
            (Some("alice"), "127.0.0.1 - alice"),
            (Some("b\no\x1bb"), "127.0.0.1 - b\\x0ao\\x1bb"),
        ];
        for (user, head) in cases {
            assert_eq!(
                fields(record(user).line("127.0.0.1")),
                (head.to_string(), request.clone())
            );
            let message = fields(log_line("127.0.0.1", user, "msg"));
            assert_eq!(message, (head.to_string(), "msg".to_string()));
        }
    }

    #[test]
    fn formats_clf_dates() {
        let t = UNIX_EPOCH + Duration::from_secs(784111777);
        assert_eq!(log_date_time_string(t), "06/Nov/1994:08:49:37 +0000");
    }
}
