//! The `Date` header's value and the access log's date, formatted once a second per thread
//! rather than per response.

use std::cell::RefCell;
use std::fmt::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::time::{clock_gettime, ClockId};

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
    let second = unix_second();
    NOW.with(|cached| {
        let mut cached = cached.borrow_mut();
        if cached.0 != second {
            let (at, text) = &mut *cached;
            *at = second;
            text.clear();
            // Into the text's own room: a new date each second allocates nothing.
            let time = UNIX_EPOCH + Duration::from_secs(second);
            let _ = write!(text, "{}", httpdate::HttpDate::from(time));
        }
        f(&cached.1)
    })
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
}
