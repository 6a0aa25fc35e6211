//! Validators and preconditions for files: `ETag`, `Last-Modified`, `If-None-Match`,
//! `If-Modified-Since`, `Range` and `If-Range` (RFC 9110 sections 8.8, 13 and 14).

use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::header::{IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_RANGE, RANGE};
use http::HeaderMap;

/// What identifies one version of a file.
#[derive(Clone, Debug)]
pub(crate) struct Validators {
    /// A strong entity tag from inode, size and modification time in nanoseconds: it changes
    /// whenever the file is replaced or rewritten.
    pub etag: String,
    /// The modification time, truncated to seconds as HTTP dates are.
    pub last_modified: SystemTime,
}

impl Validators {
    pub(crate) fn of(meta: &Metadata) -> Self {
        let modified = meta.modified().unwrap_or(UNIX_EPOCH);
        let since_epoch = modified.duration_since(UNIX_EPOCH).unwrap_or_default();
        Validators {
            etag: format!(
                "\"{:x}-{:x}-{:x}\"",
                meta.ino(),
                meta.len(),
                since_epoch.as_nanos()
            ),
            last_modified: UNIX_EPOCH + Duration::from_secs(since_epoch.as_secs()),
        }
    }

    pub(crate) fn last_modified_string(&self) -> String {
        httpdate::fmt_http_date(self.last_modified)
    }

    /// Whether a GET or HEAD with these headers gets 304: `If-None-Match` (weak comparison)
    /// when present, else `If-Modified-Since`.
    pub(crate) fn not_modified(&self, headers: &HeaderMap) -> bool {
        if headers.contains_key(IF_NONE_MATCH) {
            return headers
                .get_all(IF_NONE_MATCH)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .map(str::trim)
                .any(|tag| tag == "*" || opaque(tag) == Some(opaque(&self.etag).unwrap_or("")));
        }
        match headers.get(IF_MODIFIED_SINCE).and_then(|v| v.to_str().ok()) {
            Some(date) => {
                httpdate::parse_http_date(date).is_ok_and(|since| self.last_modified <= since)
            }
            None => false,
        }
    }

    /// Whether `If-Range` (if sent) lets the `Range` apply: a strong match of the entity
    /// tag, or exactly our `Last-Modified` date.
    fn if_range_holds(&self, headers: &HeaderMap) -> bool {
        let Some(value) = headers.get(IF_RANGE) else {
            return true;
        };
        let Ok(value) = value.to_str() else {
            return false;
        };
        let value = value.trim();
        if value.starts_with('"') {
            value == self.etag
        } else if value.starts_with("W/") {
            false
        } else {
            httpdate::parse_http_date(value).is_ok_and(|date| date == self.last_modified)
        }
    }
}

/// The tag of an entity-tag without a weak prefix: `W/"x"` and `"x"` both give `x`.
fn opaque(tag: &str) -> Option<&str> {
    let tag = tag.strip_prefix("W/").unwrap_or(tag);
    tag.strip_prefix('"')?.strip_suffix('"')
}

/// What a `Range` header asks of a file of some length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RangeRequest {
    /// No usable `Range` (absent, malformed, several ranges, or `If-Range` failed): send all.
    Full,
    /// Bytes `start..=end`.
    Partial { start: u64, end: u64 },
    /// No byte of the file is in the range: 416.
    Unsatisfiable,
}

/// Reads a single `bytes=` range against a file of `len` bytes. Malformed and multi-range
/// headers are ignored, as RFC 9110 allows, and the whole file is sent.
pub(crate) fn range(headers: &HeaderMap, len: u64, validators: &Validators) -> RangeRequest {
    let Some(value) = headers.get(RANGE).and_then(|v| v.to_str().ok()) else {
        return RangeRequest::Full;
    };
    if !validators.if_range_holds(headers) {
        return RangeRequest::Full;
    }
    let Some((unit, spec)) = value.trim().split_once('=') else {
        return RangeRequest::Full;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") || spec.contains(',') {
        return RangeRequest::Full;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeRequest::Full;
    };
    let number = |s: &str| -> Option<u64> {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    match (first.trim(), last.trim()) {
        ("", suffix) => match number(suffix) {
            None => RangeRequest::Full,
            Some(0) => RangeRequest::Unsatisfiable,
            Some(_) if len == 0 => RangeRequest::Unsatisfiable,
            Some(n) => RangeRequest::Partial {
                start: len.saturating_sub(n),
                end: len - 1,
            },
        },
        (first, "") => match number(first) {
            None => RangeRequest::Full,
            Some(start) if start >= len => RangeRequest::Unsatisfiable,
            Some(start) => RangeRequest::Partial {
                start,
                end: len - 1,
            },
        },
        (first, last) => match (number(first), number(last)) {
            (Some(start), Some(end)) if start <= end => {
                if start >= len {
                    RangeRequest::Unsatisfiable
                } else {
                    RangeRequest::Partial {
                        start,
                        end: end.min(len - 1),
                    }
                }
            }
            _ => RangeRequest::Full,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn validators() -> Validators {
        Validators {
            etag: "\"abc\"".into(),
            last_modified: UNIX_EPOCH + Duration::from_secs(784111777),
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn r(value: &str, len: u64) -> RangeRequest {
        range(&headers(&[("range", value)]), len, &validators())
    }

    #[test]
    fn ranges() {
        use RangeRequest::*;
        assert_eq!(r("bytes=0-4", 10), Partial { start: 0, end: 4 });
        assert_eq!(r("bytes=5-", 10), Partial { start: 5, end: 9 });
        assert_eq!(r("bytes=-3", 10), Partial { start: 7, end: 9 });
        assert_eq!(r("bytes=-30", 10), Partial { start: 0, end: 9 });
        assert_eq!(r("bytes=8-100", 10), Partial { start: 8, end: 9 });
        assert_eq!(r("bytes=10-", 10), Unsatisfiable);
        assert_eq!(r("bytes=10-20", 10), Unsatisfiable);
        assert_eq!(r("bytes=-0", 10), Unsatisfiable);
        assert_eq!(r("bytes=0-0", 0), Unsatisfiable);
        assert_eq!(r("bytes=5-4", 10), Full);
        assert_eq!(r("bytes=0-1,3-4", 10), Full);
        assert_eq!(r("items=0-1", 10), Full);
        assert_eq!(r("bytes=a-b", 10), Full);
        assert_eq!(r("bytes=+1-2", 10), Full);
        assert_eq!(r("bytes=99999999999999999999999-", 10), Full);
    }

    #[test]
    fn if_range_and_conditionals() {
        let v = validators();
        let date = v.last_modified_string();
        let with = |pairs: &[(&'static str, &str)]| range(&headers(pairs), 10, &v);
        assert_eq!(
            with(&[("range", "bytes=0-1"), ("if-range", "\"abc\"")]),
            RangeRequest::Partial { start: 0, end: 1 }
        );
        assert_eq!(
            with(&[("range", "bytes=0-1"), ("if-range", "\"old\"")]),
            RangeRequest::Full
        );
        assert_eq!(
            with(&[("range", "bytes=0-1"), ("if-range", "W/\"abc\"")]),
            RangeRequest::Full
        );
        assert_eq!(
            with(&[("range", "bytes=0-1"), ("if-range", &date)]),
            RangeRequest::Partial { start: 0, end: 1 }
        );
        assert!(v.not_modified(&headers(&[("if-none-match", "\"x\", W/\"abc\"")])));
        assert!(v.not_modified(&headers(&[("if-none-match", "*")])));
        assert!(!v.not_modified(&headers(&[
            ("if-none-match", "\"x\""),
            ("if-modified-since", &date)
        ])));
        assert!(v.not_modified(&headers(&[("if-modified-since", &date)])));
        assert!(!v.not_modified(&headers(&[(
            "if-modified-since",
            "Sun, 06 Nov 1994 08:49:36 GMT"
        )])));
        assert!(!v.not_modified(&headers(&[("if-modified-since", "garbage")])));
    }
}
