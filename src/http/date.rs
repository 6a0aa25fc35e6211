//! The `Date` header's value and the access log's date, formatted once a second per thread
//! rather than per response; and the start of the usual response, which carries the date.

use std::cell::RefCell;
use std::fmt::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::StatusCode;
use nix::time::{clock_gettime, ClockId};

thread_local! {
    /// The second it was formatted for, and the text.
    static NOW: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    /// The same for the access log's date.
    static LOG_NOW: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    /// The starts of the last few kinds of response sent on this thread ([`with_preamble`]).
    static PREAMBLES: RefCell<Preambles> = const { RefCell::new(Preambles::new()) };
}

/// What the start of a response depends on, but for the date.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct PreambleKind<'a> {
    /// `"HTTP/1.1"` or `"HTTP/1.0"`.
    pub(crate) version: &'static str,
    pub(crate) status: StatusCode,
    /// The `Server` header's value is `server`, a space and `sys`.
    pub(crate) server: &'static str,
    pub(crate) sys: &'static str,
    /// The `Content-Type` header's value, if the start carries one: `respond`'s.
    pub(crate) content_type: Option<&'a str>,
}

/// A few response starts, each made for one second: a handful of statuses and types make
/// up almost all the answers of a busy thread.
struct Preambles {
    entries: [Option<Preamble>; Preambles::SIZE],
    /// The entry to make again next when none fits.
    next: usize,
}

struct Preamble {
    kind: KindKey,
    /// The `Content-Type` value the text carries, if any.
    content_type: Option<String>,
    second: u64,
    text: Vec<u8>,
}

/// A [`PreambleKind`] but for its `Content-Type`, by the addresses of its strings, which
/// are a handler's constants: told apart in a few comparisons. (The same text at two
/// addresses takes two entries.) The `Content-Type`, which may be made per request, is
/// told apart by its text.
#[derive(Clone, Copy, PartialEq, Eq)]
struct KindKey {
    status: u16,
    strings: [(usize, usize); 3],
}

impl KindKey {
    fn of(kind: &PreambleKind<'_>) -> Self {
        let key = |s: &'static str| (s.as_ptr() as usize, s.len());
        KindKey {
            status: kind.status.as_u16(),
            strings: [key(kind.version), key(kind.server), key(kind.sys)],
        }
    }
}

impl Preamble {
    fn is_of(&self, key: KindKey, content_type: Option<&str>) -> bool {
        self.kind == key && self.content_type.as_deref() == content_type
    }
}

impl Preambles {
    const SIZE: usize = 6;

    const fn new() -> Self {
        Preambles {
            entries: [const { None }; Preambles::SIZE],
            next: 0,
        }
    }

    /// The start of a response of `kind` sent in `second`; `None` if its `Content-Type`
    /// has a control character or a line break, which no head may carry.
    fn get(&mut self, kind: PreambleKind<'_>, second: u64) -> Option<&[u8]> {
        let key = KindKey::of(&kind);
        let found = self.entries.iter().position(|entry| {
            entry
                .as_ref()
                .is_some_and(|entry| entry.is_of(key, kind.content_type))
        });
        let index = match found {
            Some(index) => index,
            None => {
                // Checked once, as the entry is made: a value found in an entry is clean.
                if let Some(value) = kind.content_type {
                    if !super::handler::is_clean_value(value.as_bytes()) {
                        return None;
                    }
                }
                let index = self.next;
                self.next = (self.next + 1) % Preambles::SIZE;
                index
            }
        };
        let entry = self.entries[index].get_or_insert_with(|| Preamble {
            kind: key,
            content_type: None,
            second: u64::MAX,
            text: Vec::new(),
        });
        if found.is_none() || entry.second != second {
            // Into the entry's own room: a new second allocates nothing.
            let text = &mut entry.text;
            text.clear();
            let reason = super::status::reason(kind.status);
            super::status::write_status_line(text, kind.version, kind.status, reason);
            super::status::write_server_line(text, kind.server, kind.sys);
            text.extend_from_slice(b"Date: ");
            // The date of the second the entry is kept for, so that text and stamp agree.
            let _ = std::io::Write::write_fmt(text, format_args!("{}", http_date(second)));
            text.extend_from_slice(b"\r\n");
            if let Some(value) = kind.content_type {
                text.extend_from_slice(b"Content-Type: ");
                text.extend_from_slice(value.as_bytes());
                text.extend_from_slice(b"\r\n");
            }
            if found.is_none() {
                entry.kind = key;
                let kept = &mut entry.content_type;
                match (kept.as_mut(), kind.content_type) {
                    // Into the room of the value it replaces.
                    (Some(kept), Some(value)) => {
                        kept.clear();
                        kept.push_str(value);
                    }
                    (_, value) => *kept = value.map(str::to_owned),
                }
            }
            entry.second = second;
        }
        Some(&entry.text)
    }
}

/// The longest `Content-Type` value a cached preamble carries: a longer one is sent as
/// `send_header` sends it, and costs no thread its memory for good.
pub(crate) const MAX_CACHED_CONTENT_TYPE: usize = 128;

/// Calls `f` with the start of a response of `kind` sent now: its status line with the
/// standard reason phrase, its `Server` and `Date` headers and its `Content-Type` if it has
/// one, each line ended; or with `None` if that `Content-Type` is not a clean value.
pub(crate) fn with_preamble<R>(kind: PreambleKind<'_>, f: impl FnOnce(Option<&[u8]>) -> R) -> R {
    let second = unix_second();
    PREAMBLES.with(|preambles| f(preambles.borrow_mut().get(kind, second)))
}

/// Calls `f` with the current time as Common Log Format writes it
/// (`06/Nov/1994:08:49:37 +0000`).
pub(crate) fn with_log_now<R>(f: impl FnOnce(&str) -> R) -> R {
    let now = SystemTime::now();
    let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    LOG_NOW.with(|cached| {
        let mut cached = cached.borrow_mut();
        if cached.0 != second {
            *cached = (second, super::log::log_date_time_string(now));
        }
        f(&cached.1)
    })
}

/// Calls `f` with the current time as an HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`).
pub(crate) fn with_now<R>(f: impl FnOnce(&str) -> R) -> R {
    let second = unix_second();
    NOW.with(|cached| {
        let mut cached = cached.borrow_mut();
        if cached.0 != second {
            let (at, text) = &mut *cached;
            *at = second;
            text.clear();
            // Into the text's own room: a new date each second allocates nothing.
            let _ = write!(text, "{}", http_date(second));
        }
        f(&cached.1)
    })
}

/// `second` (since the epoch) as an HTTP date.
fn http_date(second: u64) -> httpdate::HttpDate {
    httpdate::HttpDate::from(UNIX_EPOCH + Duration::from_secs(second))
}

/// The current second since the epoch, from the clock the kernel updates at each tick: a
/// date of whole seconds needs no finer one, and reading it costs a fraction of reading
/// the precise clock, once per response.
fn unix_second() -> u64 {
    match clock_gettime(ClockId::CLOCK_REALTIME_COARSE) {
        Ok(now) => now.tv_sec().max(0) as u64,
        Err(_) => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cached_date_is_an_http_date_of_now() {
        let text = with_now(str::to_string);
        let parsed = httpdate::parse_http_date(&text).unwrap();
        let age = SystemTime::now().duration_since(parsed).unwrap_or_default();
        assert!(age.as_secs() <= 2, "{text}");
        assert_eq!(with_now(str::to_string).len(), 29);
    }

    #[test]
    fn a_preamble_is_the_status_line_then_server_and_date() {
        let kind = |code| PreambleKind {
            version: "HTTP/1.1",
            status: StatusCode::from_u16(code).unwrap(),
            server: "Test/1.0",
            sys: "Rust",
            content_type: None,
        };
        // More kinds than are kept, and back to the first ones.
        for code in [200, 404, 200, 500, 301, 204, 200, 418, 404] {
            let text = with_preamble(kind(code), |p| {
                String::from_utf8(p.unwrap().to_vec()).unwrap()
            });
            let reason = super::super::status::reason(kind(code).status);
            let start = format!("HTTP/1.1 {code} {reason}\r\nServer: Test/1.0 Rust\r\nDate: ");
            let date = text
                .strip_prefix(&start)
                .and_then(|rest| rest.strip_suffix("\r\n"))
                .unwrap_or_else(|| panic!("{text:?}"));
            let parsed = httpdate::parse_http_date(date).unwrap();
            let age = SystemTime::now().duration_since(parsed).unwrap_or_default();
            assert!(age.as_secs() <= 2, "{text}");
        }
        let other_server = PreambleKind {
            server: "Other/2",
            ..kind(200)
        };
        let text = with_preamble(other_server, |p| p.unwrap().to_vec());
        assert!(text.starts_with(b"HTTP/1.1 200 OK\r\nServer: Other/2 Rust\r\n"));
    }

    #[test]
    fn a_preamble_with_a_content_type_is_told_apart_by_its_value() {
        fn text(content_type: Option<&str>) -> Option<String> {
            let kind = PreambleKind {
                version: "HTTP/1.1",
                status: StatusCode::OK,
                server: "Test/1.0",
                sys: "Rust",
                content_type,
            };
            with_preamble(kind, |p| p.map(|p| String::from_utf8(p.to_vec()).unwrap()))
        }
        // The same value made anew each time, as a handler may make it: one entry, by text.
        for round in 0..3 {
            for value in ["text/plain", "text/html", "application/json"] {
                let made = value.to_string();
                let start = text(Some(&made)).unwrap();
                assert!(start.starts_with("HTTP/1.1 200 OK\r\nServer: Test/1.0 Rust\r\nDate: "));
                assert!(
                    start.ends_with(&format!("GMT\r\nContent-Type: {value}\r\n")),
                    "round {round}: {start:?}"
                );
            }
            let plain = text(None).unwrap();
            assert!(plain.ends_with("GMT\r\n"), "{plain:?}");
        }
        // A value that would end the line is refused, found in no entry nor kept in one.
        assert_eq!(text(Some("text/plain\r\nSet-Cookie: a=b")), None);
        assert_eq!(text(Some("text/plain\r\nSet-Cookie: a=b")), None);
        assert!(text(Some("text/plain"))
            .unwrap()
            .ends_with("Content-Type: text/plain\r\n"));
    }
}
