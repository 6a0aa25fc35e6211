//! The `Date` header's value and the access log's date, formatted once a second per thread
//! rather than per response.

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

thread_local! {
    /// The second it was formatted for, and the text.
    static NOW: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    /// The same for the access log's date.
    static LOG_NOW: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
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
    let now = SystemTime::now();
    let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    NOW.with(|cached| {
        let mut cached = cached.borrow_mut();
        if cached.0 != second {
            *cached = (second, httpdate::fmt_http_date(now));
        }
        f(&cached.1)
    })
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
}
