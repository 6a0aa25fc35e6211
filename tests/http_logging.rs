//! Request logging through the `log` crate: the Common Log Format access line, error lines,
//! and escaping of control characters so that a client cannot forge a log line or send
//! terminal escapes. A test binary can install one logger only, so every log assertion of
//! the HTTP tests lives in this file.

mod http_support;

use std::io::Write;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use http_support::{connect, exchange, read_to_eof, start, wait_until, Client};
use log::{Level, Log, Metadata, Record};
use socketserver::http::{log_date_time_string, HttpHandler, HttpRequest, Version, LOG_TARGET};
use socketserver::HandlerResult;

#[derive(Clone, Debug)]
struct Entry {
    level: Level,
    target: String,
    message: String,
    /// The record's key-values, as text.
    fields: Vec<(String, String)>,
}

/// Collects a record's key-values as text.
struct Fields(Vec<(String, String)>);

impl<'kvs> log::kv::VisitSource<'kvs> for Fields {
    fn visit_pair(
        &mut self,
        key: log::kv::Key<'kvs>,
        value: log::kv::Value<'kvs>,
    ) -> Result<(), log::kv::Error> {
        self.0.push((key.to_string(), value.to_string()));
        Ok(())
    }
}

struct Collector {
    entries: Mutex<Vec<Entry>>,
}

impl Log for Collector {
    fn enabled(&self, _metadata: &Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &Record<'_>) {
        let mut fields = Fields(Vec::new());
        let _ = record.key_values().visit(&mut fields);
        self.entries.lock().unwrap().push(Entry {
            level: record.level(),
            target: record.target().to_string(),
            message: record.args().to_string(),
            fields: fields.0,
        });
    }

    fn flush(&self) {}
}

fn collector() -> &'static Collector {
    static COLLECTOR: OnceLock<&'static Collector> = OnceLock::new();
    COLLECTOR.get_or_init(|| {
        let collector: &'static Collector = Box::leak(Box::new(Collector {
            entries: Mutex::new(Vec::new()),
        }));
        log::set_logger(collector).expect("the only logger of this test binary");
        log::set_max_level(log::LevelFilter::Trace);
        collector
    })
}

/// The entries of the HTTP log target whose message contains `needle`.
fn entries_with(needle: &str) -> Vec<Entry> {
    collector()
        .entries
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e.target == LOG_TARGET && e.message.contains(needle))
        .cloned()
        .collect()
}

/// Waits until `count` entries contain `needle` (the access line is written after the
/// response is sent, so the client may see the response first).
fn wait_for_entries(needle: &str, count: usize) -> Vec<Entry> {
    wait_until(&format!("{count} log entries with {needle:?}"), || {
        entries_with(needle).len() >= count
    });
    entries_with(needle)
}

/// No log entry of the crate holds a control character (a newline included).
fn assert_no_control_characters_logged() {
    for entry in collector().entries.lock().unwrap().iter() {
        if entry.target.starts_with("socketserver") {
            assert!(
                !entry.message.chars().any(char::is_control),
                "control character in a log entry: {entry:?}"
            );
        }
    }
}

/// Splits `127.0.0.1 - - [date] rest` and checks the date is a CLF date between `before`
/// and `after` (give or take a second); returns `rest`.
fn split_clf(message: &str, before: SystemTime, after: SystemTime) -> String {
    let rest = message
        .strip_prefix("127.0.0.1 - - [")
        .unwrap_or_else(|| panic!("not a CLF line for 127.0.0.1: {message:?}"));
    let (date, rest) = rest
        .split_once("] ")
        .unwrap_or_else(|| panic!("no date in {message:?}"));
    let mut t = before - Duration::from_secs(1);
    let mut allowed = Vec::new();
    while t <= after + Duration::from_secs(1) {
        allowed.push(log_date_time_string(t));
        t += Duration::from_secs(1);
    }
    assert!(
        allowed.iter().any(|a| a == date),
        "date {date:?} is not one of {allowed:?}"
    );
    rest.to_string()
}

/// The combined format's tail of an access line: `"referer" "user agent" seconds` after
/// the CLF part, which is returned with the quoted fields and the seconds.
fn split_combined(rest: &str) -> (String, String, String, f64) {
    let (rest, seconds) = rest.rsplit_once(' ').expect("the seconds last");
    let seconds: f64 = seconds.parse().expect("seconds as a number");
    let (clf, quoted) = rest.split_once(" \"").expect("the quoted fields");
    let (referer, agent) = quoted
        .strip_suffix('"')
        .and_then(|q| q.split_once("\" \""))
        .unwrap_or_else(|| panic!("two quoted fields in {rest:?}"));
    (
        clf.to_string(),
        referer.to_string(),
        agent.to_string(),
        seconds,
    )
}

#[derive(Clone)]
struct Logged;

impl HttpHandler for Logged {
    const PROTOCOL_VERSION: Version = Version::HTTP_11;

    fn do_get(&mut self, req: &mut HttpRequest<'_>) -> HandlerResult {
        match req.path.as_str() {
            "/empty" => {
                req.send_response(204)?;
                req.end_headers()?;
            }
            "/missing" => req.send_error(404, "No such page")?,
            "/log-header" => {
                let agent = req
                    .headers
                    .get("x-agent")
                    .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                    .unwrap_or_default();
                req.log_message(&format!("agent={agent}"));
                req.log_error(&format!("agent-error={agent}"));
                http_support::send_body(req, "text/plain", b"logged")?;
            }
            "/log-newline" => {
                req.log_message("line one\nFAKE 127.0.0.1 - - line two\r\x1b[31mred\x07");
                http_support::send_body(req, "text/plain", b"logged")?;
            }
            "/huge" => {
                // Far more than socket buffers hold: the client is gone long before the end.
                req.send_response(200)?;
                req.send_header("Content-Length", HUGE)?;
                req.end_headers()?;
                let chunk = vec![b'h'; 1 << 20];
                for _ in 0..HUGE >> 20 {
                    req.wfile.write_all(&chunk)?;
                }
            }
            _ => http_support::send_body(req, "text/plain", b"hello")?,
        }
        Ok(())
    }
}

const HUGE: u64 = 256 << 20;

#[test]
fn access_line_is_in_common_log_format() {
    collector();
    let server = start(Logged);
    let before = SystemTime::now();
    let mut client = Client::connect(server.addr());
    let response = client.request(
        b"GET /clf-x HTTP/1.1\r\nHost: a\r\nReferer: http://ref/page\r\n\
          User-Agent: agent \"007\" \\ x\r\n\r\n",
    );
    assert_eq!(response.text(), "hello");
    let entries = wait_for_entries("\"GET /clf-x HTTP/1.1\"", 1);
    let after = SystemTime::now();
    assert_eq!(entries.len(), 1, "{entries:#?}");
    assert_eq!(entries[0].level, Level::Info);
    let rest = split_clf(&entries[0].message, before, after);
    // Combined Log Format, then the seconds it took; quotes in a field are escaped.
    let (clf, referer, agent, seconds) = split_combined(&rest);
    assert_eq!(clf, "\"GET /clf-x HTTP/1.1\" 200 5");
    assert_eq!(referer, "http://ref/page");
    assert_eq!(agent, "agent \\\"007\\\" \\\\ x");
    assert!((0.0..10.0).contains(&seconds), "{seconds}");
    // The same as fields, for loggers that read them.
    let fields = &entries[0].fields;
    let field = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(field("status"), Some("200"));
    assert_eq!(field("bytes"), Some("5"));
    assert_eq!(field("request"), Some("GET /clf-x HTTP/1.1"));
    assert_eq!(field("referer"), Some("http://ref/page"));
    assert_eq!(field("remote"), Some("127.0.0.1"));
    assert_eq!(field("user"), Some("None"));

    // No body: the size is "-"; no Referer or User-Agent: "-" quoted.
    client.request(b"GET /empty HTTP/1.1\r\nHost: a\r\n\r\n");
    let entries = wait_for_entries("\"GET /empty HTTP/1.1\"", 1);
    assert!(
        entries[0]
            .message
            .contains("\"GET /empty HTTP/1.1\" 204 - \"-\" \"-\" "),
        "{entries:#?}"
    );
}

#[test]
fn errors_are_logged_at_warn_with_an_access_line() {
    collector();
    let server = start(Logged);
    let before = SystemTime::now();
    let response =
        Client::connect(server.addr()).request(b"GET /missing HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(response.status, 404);
    let size = response.body.len();
    let access = wait_for_entries("\"GET /missing HTTP/1.1\" 404", 1);
    let after = SystemTime::now();
    let (clf, ..) = split_combined(&split_clf(&access[0].message, before, after));
    assert_eq!(clf, format!("\"GET /missing HTTP/1.1\" 404 {size}"));
    assert_eq!(access[0].level, Level::Info);
    let errors: Vec<Entry> = entries_with("code 404, message No such page")
        .into_iter()
        .filter(|e| e.level == Level::Warn)
        .collect();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(
        split_clf(&errors[0].message, before, after),
        "code 404, message No such page"
    );

    // A request the parser rejects is logged with the line it sent.
    let data = exchange(server.addr(), b"GET /rejected HTTP/9.9\r\nHost: a\r\n\r\n");
    assert!(data.starts_with(b"HTTP/1.1 505 "));
    let access = wait_for_entries("\"GET /rejected HTTP/9.9\" 505", 1);
    assert_eq!(access[0].level, Level::Info);
}

#[test]
fn control_characters_in_a_rejected_request_line_are_escaped() {
    collector();
    let server = start(Logged);
    // An ESC sequence and a carriage return inside the target: the parser rejects the
    // line (400), and logs it, escaped.
    let data = exchange(
        server.addr(),
        b"GET /ctl-line\x1b[2J\x1b[31mred\rFAKE HTTP/1.1\r\nHost: a\r\n\r\n",
    );
    assert!(
        data.starts_with(b"HTTP/1.1 400 "),
        "{}",
        String::from_utf8_lossy(&data)
    );
    let entries = wait_for_entries("/ctl-line", 1);
    assert!(
        entries.iter().any(|e| e
            .message
            .contains(r"/ctl-line\x1b[2J\x1b[31mred\x0dFAKE HTTP/1.1")),
        "{entries:#?}"
    );
    // An HTTP/0.9 line is one line: whatever it holds is escaped too.
    let mut stream = connect(server.addr());
    stream
        .write_all(b"GET /ctl-09\x1b]0;title\x07\r\n")
        .unwrap();
    let data = read_to_eof(&mut stream);
    assert!(data.starts_with(b"HTTP/1.1 505 "));
    let entries = wait_for_entries("/ctl-09", 1);
    assert!(
        entries
            .iter()
            .all(|e| e.message.contains(r"/ctl-09\x1b]0;title\x07")),
        "{entries:#?}"
    );
    assert_no_control_characters_logged();
}

#[test]
fn control_characters_in_header_values_logged_by_a_handler_are_escaped() {
    collector();
    let server = start(Logged);
    // C1 controls (CSI U+009B, NEL U+0085) are obs-text bytes in a field value: the parser
    // accepts them, so they reach the handler, which logs them.
    let response = Client::connect(server.addr()).request(
        b"GET /log-header HTTP/1.1\r\nHost: a\r\nX-Agent: evil\xc2\x9b31m\xc2\x85next\\x41\r\n\r\n",
    );
    assert_eq!(response.text(), "logged");
    let info = wait_for_entries("agent=evil", 1);
    assert!(
        info[0].message.ends_with(r"agent=evil\x9b31m\x85next\\x41"),
        "{info:#?}"
    );
    let warn = wait_for_entries("agent-error=evil", 1);
    assert_eq!(warn[0].level, Level::Warn);
    // A raw control character in a field value is refused by the parser (400).
    let data = exchange(
        server.addr(),
        b"GET /log-header HTTP/1.1\r\nHost: a\r\nX-Agent: a\x1b[31mb\r\n\r\n",
    );
    assert!(data.starts_with(b"HTTP/1.1 400 "));
    assert_no_control_characters_logged();
}

#[test]
fn a_logged_message_cannot_forge_a_line() {
    collector();
    let server = start(Logged);
    let response =
        Client::connect(server.addr()).request(b"GET /log-newline HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(response.status, 200);
    let entries = wait_for_entries("line one", 1);
    assert_eq!(entries.len(), 1);
    assert!(
        entries[0]
            .message
            .ends_with(r"line one\x0aFAKE 127.0.0.1 - - line two\x0d\x1b[31mred\x07"),
        "{entries:#?}"
    );
    assert_no_control_characters_logged();
}

#[test]
fn a_response_cut_short_is_logged_with_the_bytes_sent_and_a_warning() {
    collector();
    let server = start(Logged);
    let mut client = connect(server.addr());
    client
        .write_all(b"GET /huge HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    let mut some = vec![0u8; 64 * 1024];
    std::io::Read::read_exact(&mut client, &mut some).unwrap();
    // Reset, not close: the server's next send fails at once.
    socket2::SockRef::from(&client)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(client);
    let warnings = wait_for_entries("\"GET /huge HTTP/1.1\" 200 response cut short: ", 1);
    assert_eq!(warnings[0].level, Level::Warn, "{warnings:#?}");
    assert!(
        warnings[0]
            .message
            .ends_with(&format!(" of {HUGE} body bytes sent")),
        "{warnings:#?}"
    );
    let access = wait_for_entries("\"GET /huge HTTP/1.1\" 200 ", 2)
        .into_iter()
        .find(|e| e.level == Level::Info)
        .expect("the access line");
    let sent: u64 = access
        .message
        .split("\" 200 ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no size in {access:?}"));
    // What left, not what was promised: at least what the client read, less than all.
    assert!((64 * 1024..HUGE).contains(&sent), "{access:?}");
}

/// Sleeps `SLOW` before it answers `/slow`; `/slow-declared` says it may block.
#[derive(Clone)]
struct Sleepy;

const SLOW: Duration = Duration::from_millis(300);

impl HttpHandler for Sleepy {
    fn may_block(&self, req: &HttpRequest<'_>) -> bool {
        req.url_path() == "/slow-declared"
    }

    fn do_get(&mut self, req: &mut HttpRequest<'_>) -> HandlerResult {
        std::thread::sleep(SLOW);
        req.send_text(200, "late")
    }
}

#[test]
fn a_request_that_holds_the_event_loop_is_warned_about() {
    collector();
    let server = start(Sleepy);
    for target in ["/slow-declared", "/slow"] {
        let response = exchange(
            server.addr(),
            format!("GET {target} HTTP/1.0\r\n\r\n").as_bytes(),
        );
        assert!(response.ends_with(b"late"), "{target}");
        // The access line follows the warning, which is written when the handler returns.
        wait_for_entries(&format!("\"GET {target} HTTP/1.0\" 200 4"), 1);
    }
    let warnings: Vec<Entry> = entries_with("on the event loop's thread")
        .into_iter()
        .filter(|e| e.level == Level::Warn)
        .collect();
    let on_the_loop = http_support::flavor() != http_support::Flavor::Threads;
    if on_the_loop {
        // Only the request that did not say it may block held the loop.
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].message.contains("\"GET /slow HTTP/1.0\" took "),
            "{warnings:?}"
        );
        assert!(warnings[0].message.contains("may_block"), "{warnings:?}");
    } else {
        assert!(warnings.is_empty(), "{warnings:?}");
    }
}
