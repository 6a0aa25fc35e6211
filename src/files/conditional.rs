//! Validators and preconditions for files: `ETag`, `Last-Modified`, `If-Match`,
//! `If-Unmodified-Since`, `If-None-Match`, `If-Modified-Since`, `Range` and `If-Range`
//! (RFC 9110 sections 8.8, 13 and 14).
//!
//! Every parser here reads what a client sent, so each is strict and total: a value that
//! does not follow the grammar is ignored or fails its condition (as each function says),
//! numbers are read with overflow checks, and nothing panics or allocates without bound.
//!
//! # Ranges
//!
//! A `Range` is ignored (the whole file is sent, 200) when it is not one `bytes=` field
//! following RFC 9110 section 14.1.1 to the letter: another unit, whitespace anywhere but
//! around the commas (`bytes= 0-1`, `bytes=0 -1`), `first` after `last` (`bytes=5-1`), or a number too large for a u64
//! (`bytes=0-99999999999999999999999`: no file is that long, so the client is broken or
//! probing). Empty list elements (`bytes=0-1,,2-3`) are allowed, as the list rule says.
//!
//! Against the amplification of CVE-2011-3192 ("Apache killer": hundreds of overlapping
//! ranges, each a part of its own): a header with more than [`MAX_RANGES`] ranges is ignored
//! and the whole file sent, as nginx (`max_ranges`) and Apache (`MaxRanges`) do. RFC 9110
//! section 14.2 lets a server ignore or reject such a header; ignoring it costs no more than
//! a plain GET, and a client that asked for many ranges still gets what it wants. Ranges that
//! overlap or touch are merged, so a 206 never carries a byte twice and its body is at most
//! the file plus one part head per range. The parts go in the order the ranges were asked
//! for (section 14.6 says they should), a merged one where its first range was; if merging
//! leaves one range the answer is a plain single-range 206. Ranges the file cannot satisfy
//! are dropped; if none is left, 416.

use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::header::{
    HeaderName, IF_MATCH, IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_RANGE, IF_UNMODIFIED_SINCE, RANGE,
};
use http::HeaderMap;

/// The most ranges one `Range` header may ask for; with more, it is ignored.
pub(crate) const MAX_RANGES: usize = 16;

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

    /// Our entity tag, parsed (it is always a well-formed strong tag).
    fn tag(&self) -> EntityTag<'_> {
        let etag = self.etag.as_bytes();
        let opaque = etag.strip_prefix(b"\"").and_then(|e| e.strip_suffix(b"\""));
        EntityTag {
            weak: false,
            opaque: opaque.unwrap_or(etag),
        }
    }

    /// Whether a GET or HEAD with these headers gets 412 (RFC 9110 section 13.2.2, steps 1
    /// and 2): `If-Match` (strong comparison; `*` matches, as the file exists) when present,
    /// else `If-Unmodified-Since`. A malformed `If-Match` matches nothing, so it fails; a
    /// malformed or repeated `If-Unmodified-Since` is ignored, as section 13.1.4 says.
    pub(crate) fn precondition_failed(&self, headers: &HeaderMap) -> bool {
        if headers.contains_key(IF_MATCH) {
            let ours = self.tag();
            return !any_field_matches(headers, IF_MATCH, |tag| tag.strong_eq(&ours));
        }
        single_date(headers, IF_UNMODIFIED_SINCE).is_some_and(|since| self.last_modified > since)
    }

    /// Whether a GET or HEAD with these headers gets 304 (steps 3 and 4): `If-None-Match`
    /// (weak comparison; `*` matches) when present, else `If-Modified-Since`. A malformed
    /// `If-None-Match` matches nothing, and the file is sent.
    pub(crate) fn not_modified(&self, headers: &HeaderMap) -> bool {
        if headers.contains_key(IF_NONE_MATCH) {
            let ours = self.tag();
            return any_field_matches(headers, IF_NONE_MATCH, |tag| tag.opaque == ours.opaque);
        }
        single_date(headers, IF_MODIFIED_SINCE).is_some_and(|since| self.last_modified <= since)
    }

    /// Whether `If-Range` (if sent) lets the `Range` apply (section 13.1.5): a strong match
    /// of the entity tag, or exactly our `Last-Modified` date. A repeated one does not.
    fn if_range_holds(&self, headers: &HeaderMap) -> bool {
        let mut values = headers.get_all(IF_RANGE).iter();
        let (value, None) = (values.next(), values.next()) else {
            return false;
        };
        let Some(value) = value else {
            return true;
        };
        let value = trim_ows(value.as_bytes());
        if value.starts_with(b"\"") || value.starts_with(b"W/") {
            return matches!(
                entity_tag(value),
                Some((tag, b"")) if tag.strong_eq(&self.tag())
            );
        }
        std::str::from_utf8(value)
            .ok()
            .and_then(|date| httpdate::parse_http_date(date).ok())
            .is_some_and(|date| date == self.last_modified)
    }
}

/// The value of a header that must appear once and hold an HTTP-date; `None` (ignore it)
/// if absent, repeated or not a date.
fn single_date(headers: &HeaderMap, name: HeaderName) -> Option<SystemTime> {
    let mut values = headers.get_all(name).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return None;
    };
    let date = std::str::from_utf8(trim_ows(value.as_bytes())).ok()?;
    httpdate::parse_http_date(date).ok()
}

/// An entity tag: `"opaque"` or `W/"opaque"` (RFC 9110 section 8.8.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct EntityTag<'a> {
    weak: bool,
    /// Between the quotes.
    opaque: &'a [u8],
}

impl EntityTag<'_> {
    /// The strong comparison: both strong, and the same.
    fn strong_eq(&self, other: &EntityTag<'_>) -> bool {
        !self.weak && !other.weak && self.opaque == other.opaque
    }
}

/// The entity tag at the start of `input`, and what follows it; `None` if there is none.
/// Inside the quotes anything visible but `"` may appear, commas too: a tag is not a
/// quoted-string, so a backslash is just a byte.
fn entity_tag(input: &[u8]) -> Option<(EntityTag<'_>, &[u8])> {
    let (weak, rest) = match input.strip_prefix(b"W/") {
        Some(rest) => (true, rest),
        None => (false, input),
    };
    let rest = rest.strip_prefix(b"\"")?;
    let close = rest.iter().position(|&b| b == b'"')?;
    let opaque = &rest[..close];
    // etagc = %x21 / %x23-7E / obs-text
    if !opaque
        .iter()
        .all(|&b| b == 0x21 || (b >= 0x23 && b != 0x7f))
    {
        return None;
    }
    Some((EntityTag { weak, opaque }, &rest[close + 1..]))
}

/// Whether any field `name` of `headers` is `*` or a list of entity tags one of which is
/// `wanted`. A field that is neither (`"a`, `a`, `*, "b"`) matches nothing.
fn any_field_matches(
    headers: &HeaderMap,
    name: HeaderName,
    wanted: impl Fn(EntityTag<'_>) -> bool,
) -> bool {
    headers
        .get_all(name)
        .iter()
        .any(|value| tag_list_matches(value.as_bytes(), &wanted) == Some(true))
}

/// Whether a field value `"*" / #entity-tag` matches: `*` always does, a list if one of
/// its tags is `wanted`. `None` if the value is malformed (even after a match: the whole
/// value is checked). Empty list elements are skipped, as the list rule allows.
fn tag_list_matches(value: &[u8], wanted: impl Fn(EntityTag<'_>) -> bool) -> Option<bool> {
    let mut rest = trim_ows(value);
    if rest == b"*" {
        return Some(true);
    }
    let mut found = false;
    loop {
        rest = trim_ows(rest);
        match rest.first() {
            None => return Some(found),
            Some(b',') => rest = &rest[1..],
            Some(_) => {
                let (tag, after) = entity_tag(rest)?;
                found |= wanted(tag);
                rest = trim_ows(after);
                match rest.first() {
                    None => return Some(found),
                    Some(b',') => rest = &rest[1..],
                    Some(_) => return None,
                }
            }
        }
    }
}

/// `input` without optional whitespace (spaces and tabs) at either end.
fn trim_ows(input: &[u8]) -> &[u8] {
    let is_ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = input.iter().position(|b| !is_ows(b)).unwrap_or(input.len());
    let end = input
        .iter()
        .rposition(|b| !is_ows(b))
        .map_or(start, |i| i + 1);
    &input[start..end]
}

/// Bytes `start..=end` of a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ByteRange {
    pub start: u64,
    pub end: u64,
}

impl ByteRange {
    /// How many bytes the range holds.
    pub(crate) fn len(&self) -> u64 {
        self.end - self.start + 1
    }
}

/// What a `Range` header asks of a file of some length.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum RangeRequest {
    /// No usable `Range` (absent, malformed, too many ranges, or `If-Range` failed): 200.
    Full,
    /// Bytes `start..=end`: a 206 with a `Content-Range`.
    Partial { start: u64, end: u64 },
    /// At least two ranges, none overlapping or touching another, in the order to send
    /// them: a 206 of `multipart/byteranges`.
    Multipart(Vec<ByteRange>),
    /// No byte of the file is in the ranges: 416.
    Unsatisfiable,
}

/// One range-spec of a `bytes` range set, before it meets the file's length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RangeSpec {
    /// `first-last`, with `first <= last`.
    Bounded(u64, u64),
    /// `first-`: to the end.
    From(u64),
    /// `-length`: the last `length` bytes.
    Suffix(u64),
}

impl RangeSpec {
    /// The bytes of a file of `len` bytes this asks for; `None` if it asks for none.
    fn resolve(self, len: u64) -> Option<ByteRange> {
        let last = len.checked_sub(1)?;
        match self {
            RangeSpec::Bounded(start, end) if start < len => Some(ByteRange {
                start,
                end: end.min(last),
            }),
            RangeSpec::From(start) if start < len => Some(ByteRange { start, end: last }),
            RangeSpec::Suffix(n) if n > 0 => Some(ByteRange {
                start: len - n.min(len),
                end: last,
            }),
            _ => None,
        }
    }
}

/// Whether a request asks for several ranges, which go out as several file ranges one
/// after another: cheap, for `HttpHandler::may_block`.
pub(crate) fn asks_several_ranges(headers: &HeaderMap) -> bool {
    headers
        .get(RANGE)
        .is_some_and(|value| value.as_bytes().contains(&b','))
}

/// Reads the `Range` of a GET or HEAD against a file of `len` bytes (see the module's
/// documentation for what is ignored, merged and refused).
pub(crate) fn range(headers: &HeaderMap, len: u64, validators: &Validators) -> RangeRequest {
    let mut values = headers.get_all(RANGE).iter();
    // One field only: two would be a list, which `Range` is not.
    let (Some(value), None) = (values.next(), values.next()) else {
        return RangeRequest::Full;
    };
    if !validators.if_range_holds(headers) {
        return RangeRequest::Full;
    }
    let Some(specs) = byte_range_set(value.as_bytes()) else {
        return RangeRequest::Full;
    };
    let ranges: Vec<ByteRange> = specs.iter().filter_map(|spec| spec.resolve(len)).collect();
    let mut parts = coalesce(ranges);
    match parts.len() {
        0 => RangeRequest::Unsatisfiable,
        1 => {
            let ByteRange { start, end } = parts.remove(0);
            RangeRequest::Partial { start, end }
        }
        _ => RangeRequest::Multipart(parts),
    }
}

/// The range specs of a `bytes=` header value; `None` if the header is to be ignored:
/// another unit, a spec that is malformed or out of order, a number too large for a u64,
/// no spec at all, or more than [`MAX_RANGES`].
fn byte_range_set(value: &[u8]) -> Option<Vec<RangeSpec>> {
    let value = trim_ows(value);
    let equals = value.iter().position(|&b| b == b'=')?;
    // Range units are case-insensitive (section 14.1); no whitespace around the `=`.
    if !value[..equals].eq_ignore_ascii_case(b"bytes") {
        return None;
    }
    let set = &value[equals + 1..];
    // The list rule allows whitespace around commas only, not straight after the `=`.
    if set.first().is_some_and(|&b| b == b' ' || b == b'\t') {
        return None;
    }
    let mut specs = Vec::new();
    for element in set.split(|&b| b == b',').map(trim_ows) {
        if element.is_empty() {
            continue;
        }
        if specs.len() == MAX_RANGES {
            return None;
        }
        specs.push(range_spec(element)?);
    }
    (!specs.is_empty()).then_some(specs)
}

/// One `first-last`, `first-` or `-suffix`, digits only.
fn range_spec(element: &[u8]) -> Option<RangeSpec> {
    let dash = element.iter().position(|&b| b == b'-')?;
    let (first, last) = (&element[..dash], &element[dash + 1..]);
    match (first.is_empty(), last.is_empty()) {
        (true, true) => None,
        (true, false) => Some(RangeSpec::Suffix(decimal(last)?)),
        (false, true) => Some(RangeSpec::From(decimal(first)?)),
        (false, false) => {
            let (first, last) = (decimal(first)?, decimal(last)?);
            (first <= last).then_some(RangeSpec::Bounded(first, last))
        }
    }
}

/// `1*DIGIT` as a u64; `None` for anything else, or a number too large.
fn decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &b| {
        let digit = b.is_ascii_digit().then(|| u64::from(b - b'0'))?;
        n.checked_mul(10)?.checked_add(digit)
    })
}

/// Merges ranges that overlap or touch; the result is in the order of the ranges given,
/// each merged range where the first of its ranges was.
fn coalesce(ranges: Vec<ByteRange>) -> Vec<ByteRange> {
    let mut by_start: Vec<(usize, ByteRange)> = ranges.into_iter().enumerate().collect();
    by_start.sort_unstable_by_key(|&(_, range)| range.start);
    let mut merged: Vec<(usize, ByteRange)> = Vec::with_capacity(by_start.len());
    for (order, range) in by_start {
        match merged.last_mut() {
            // `end` is below the file's length, so `end + 1` cannot overflow.
            Some((first, last)) if range.start <= last.end + 1 => {
                last.end = last.end.max(range.end);
                *first = (*first).min(order);
            }
            _ => merged.push((order, range)),
        }
    }
    merged.sort_unstable_by_key(|&(order, _)| order);
    merged.into_iter().map(|(_, range)| range).collect()
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
            map.append(*name, HeaderValue::from_bytes(value.as_bytes()).unwrap());
        }
        map
    }

    fn r(value: &str, len: u64) -> RangeRequest {
        range(&headers(&[("range", value)]), len, &validators())
    }

    fn parts(ranges: &[(u64, u64)]) -> RangeRequest {
        RangeRequest::Multipart(
            ranges
                .iter()
                .map(|&(start, end)| ByteRange { start, end })
                .collect(),
        )
    }

    #[test]
    fn single_ranges() {
        use RangeRequest::*;
        assert_eq!(r("bytes=0-4", 10), Partial { start: 0, end: 4 });
        assert_eq!(r("bytes=5-", 10), Partial { start: 5, end: 9 });
        assert_eq!(r("bytes=-3", 10), Partial { start: 7, end: 9 });
        assert_eq!(r("bytes=-30", 10), Partial { start: 0, end: 9 });
        assert_eq!(r("bytes=8-100", 10), Partial { start: 8, end: 9 });
        assert_eq!(r("BYTES=0-0", 10), Partial { start: 0, end: 0 });
        assert_eq!(r("bytes=007-008", 10), Partial { start: 7, end: 8 });
        assert_eq!(r("bytes=10-", 10), Unsatisfiable);
        assert_eq!(r("bytes=10-20", 10), Unsatisfiable);
        assert_eq!(r("bytes=-0", 10), Unsatisfiable);
        assert_eq!(r("bytes=0-0", 0), Unsatisfiable);
        assert_eq!(r("bytes=-5", 0), Unsatisfiable);
        let max = u64::MAX;
        assert_eq!(
            r(&format!("bytes={}-", max - 1), max),
            Partial {
                start: max - 1,
                end: max - 1
            }
        );
        assert_eq!(
            r(&format!("bytes=-{max}"), max),
            Partial {
                start: 0,
                end: max - 1
            }
        );
    }

    #[test]
    fn malformed_ranges_are_ignored() {
        for value in [
            "bytes=5-4",
            "items=0-1",
            "bytes=a-b",
            "bytes=+1-2",
            "bytes=-",
            "bytes=",
            "bytes=,",
            "bytes=, ,",
            "bytes",
            "=0-1",
            "bytes 0-1",
            "bytes = 0-1",
            "bytes= 0-1",
            "bytes=\t0-1,2-3",
            "bytes=0 -1",
            "bytes=0- 1",
            "bytes=0-1-2",
            "bytes=--1",
            "bytes=0x1-2",
            "bytes=1e3-",
            "bytes=0-1,5-4",
            "bytes=0-1;2-3",
            "bytes=0-1,x",
            "bytes=0-\u{b2}",
            "bytes=\u{b9}-2",
        ] {
            assert_eq!(r(value, 10), RangeRequest::Full, "{value:?}");
        }
    }

    #[test]
    fn numbers_too_large_for_a_u64_ignore_the_header() {
        for value in [
            "bytes=0-99999999999999999999999",
            "bytes=99999999999999999999999-",
            "bytes=-99999999999999999999999",
            "bytes=0-18446744073709551616",
            "bytes=18446744073709551616-18446744073709551617",
            "bytes=0-1,2-18446744073709551616",
        ] {
            assert_eq!(r(value, 10), RangeRequest::Full, "{value}");
            assert_eq!(r(value, u64::MAX), RangeRequest::Full, "{value}");
        }
        // The largest u64 is a number like any other.
        assert_eq!(
            r("bytes=0-18446744073709551615", 10),
            RangeRequest::Partial { start: 0, end: 9 }
        );
        // Leading zeros do not overflow.
        let zeros = format!("bytes={}5-", "0".repeat(100));
        assert_eq!(r(&zeros, 10), RangeRequest::Partial { start: 5, end: 9 });
    }

    #[test]
    fn several_ranges_go_out_in_the_order_asked() {
        assert_eq!(r("bytes=0-1,3-4", 10), parts(&[(0, 1), (3, 4)]));
        assert_eq!(
            r("bytes=0-9,20-29,-5", 100),
            parts(&[(0, 9), (20, 29), (95, 99)])
        );
        // Descending and scattered: kept as asked, as RFC 9110 section 14.6 says.
        assert_eq!(r("bytes=-2,3-4,0-0", 10), parts(&[(8, 9), (3, 4), (0, 0)]));
        // OWS around the commas, and empty elements, as the list rule allows.
        assert_eq!(r("bytes=0-1 ,\t3-4", 10), parts(&[(0, 1), (3, 4)]));
        assert_eq!(r("bytes=,0-1,,3-4,", 10), parts(&[(0, 1), (3, 4)]));
        // Unsatisfiable ranges are dropped; with one left it is a plain 206.
        assert_eq!(r("bytes=0-1,50-60,3-4", 10), parts(&[(0, 1), (3, 4)]));
        assert_eq!(
            r("bytes=50-60,2-3,-0", 10),
            RangeRequest::Partial { start: 2, end: 3 }
        );
        assert_eq!(r("bytes=50-60,10-,-0", 10), RangeRequest::Unsatisfiable);
    }

    #[test]
    fn overlapping_and_touching_ranges_merge() {
        use RangeRequest::*;
        assert_eq!(r("bytes=0-4,2-6", 10), Partial { start: 0, end: 6 });
        assert_eq!(r("bytes=0-4,5-6", 10), Partial { start: 0, end: 6 });
        assert_eq!(r("bytes=5-6,0-4", 10), Partial { start: 0, end: 6 });
        assert_eq!(r("bytes=0-,0-,0-", 10), Partial { start: 0, end: 9 });
        assert_eq!(r("bytes=-1,9-9,8-", 10), Partial { start: 8, end: 9 });
        // A gap keeps them apart; a merged range goes where its first range was.
        assert_eq!(r("bytes=0-1,3-4", 10), parts(&[(0, 1), (3, 4)]));
        assert_eq!(r("bytes=7-8,0-1,1-2", 10), parts(&[(7, 8), (0, 2)]));
        assert_eq!(r("bytes=7-8,1-2,0-1,9-9", 10), parts(&[(7, 9), (0, 2)]));
        // The Apache killer: one byte and then everything, many times over.
        let killer: Vec<String> = (0..16).map(|i| format!("5-{i}")).collect();
        let killer = format!("bytes=0-,{}", killer[5..].join(","));
        assert_eq!(r(&killer, 100), Partial { start: 0, end: 99 });
    }

    #[test]
    fn more_than_sixteen_ranges_ignore_the_header() {
        let ranges = |n: u64| -> String {
            let list: Vec<String> = (0..n).map(|i| format!("{}-{}", 2 * i, 2 * i)).collect();
            format!("bytes={}", list.join(","))
        };
        let expected: Vec<(u64, u64)> = (0..16).map(|i| (2 * i, 2 * i)).collect();
        assert_eq!(r(&ranges(16), 100), parts(&expected));
        assert_eq!(r(&ranges(17), 100), RangeRequest::Full);
        assert_eq!(r(&ranges(5000), 100), RangeRequest::Full);
        // Empty elements do not count; ranges the file cannot satisfy do.
        assert_eq!(r(&format!("{},,,,", ranges(16)), 100), parts(&expected));
        assert_eq!(
            r(&format!("{},200-300", ranges(16)), 100),
            RangeRequest::Full
        );
    }

    #[test]
    fn range_needs_one_field() {
        let two = headers(&[("range", "bytes=0-1"), ("range", "bytes=3-4")]);
        assert_eq!(range(&two, 10, &validators()), RangeRequest::Full);
        assert_eq!(
            range(&HeaderMap::new(), 10, &validators()),
            RangeRequest::Full
        );
    }

    #[test]
    fn asks_several_ranges_sees_a_comma() {
        assert!(asks_several_ranges(&headers(&[("range", "bytes=0-1,3-4")])));
        assert!(!asks_several_ranges(&headers(&[("range", "bytes=0-1")])));
        assert!(!asks_several_ranges(&HeaderMap::new()));
    }

    #[test]
    fn if_range() {
        let v = validators();
        let date = v.last_modified_string();
        let with = |pairs: &[(&'static str, &str)]| {
            let mut all = vec![("range", "bytes=0-1")];
            all.extend_from_slice(pairs);
            range(&headers(&all), 10, &v)
        };
        let partial = RangeRequest::Partial { start: 0, end: 1 };
        assert_eq!(with(&[("if-range", "\"abc\"")]), partial);
        assert_eq!(with(&[("if-range", " \"abc\" ")]), partial);
        assert_eq!(with(&[("if-range", &date)]), partial);
        assert_eq!(with(&[]), partial);
        for other in [
            "\"old\"",
            "W/\"abc\"",
            "\"abc\" x",
            "\"abc\", \"abc\"",
            "\"abc",
            "abc",
            "Sun, 06 Nov 1994 08:49:38 GMT",
            "garbage",
            "",
        ] {
            assert_eq!(with(&[("if-range", other)]), RangeRequest::Full, "{other}");
        }
        assert_eq!(
            with(&[("if-range", "\"abc\""), ("if-range", "\"abc\"")]),
            RangeRequest::Full
        );
        // If-Range applies to several ranges too.
        let several = headers(&[("range", "bytes=0-1,3-4"), ("if-range", "\"old\"")]);
        assert_eq!(range(&several, 10, &v), RangeRequest::Full);
    }

    #[test]
    fn entity_tag_lists_are_parsed_with_their_quotes() {
        let ours = |tag: EntityTag<'_>| tag.opaque == b"abc";
        for (value, expected) in [
            ("\"abc\"", Some(true)),
            ("W/\"abc\"", Some(true)),
            ("\"x\", \"abc\"", Some(true)),
            ("\"x\",\"abc\"", Some(true)),
            ("\"x\" ,\t\"abc\" ", Some(true)),
            (",, \"abc\",,", Some(true)),
            ("*", Some(true)),
            (" * ", Some(true)),
            ("", Some(false)),
            ("\"x\"", Some(false)),
            // A comma inside the quotes is part of the tag.
            ("\"a,b\"", Some(false)),
            ("\"a,\"abc\"", None),
            ("\"abc,\"", Some(false)),
            ("\"x,abc\", \"abc\"", Some(true)),
            // A backslash is a byte of the tag, not an escape.
            ("\"ab\\c\"", Some(false)),
            // Malformed: the whole value is, even after a match.
            ("\"abc\", x", None),
            ("\"abc\" \"x\"", None),
            ("abc", None),
            ("\"abc", None),
            ("w/\"abc\"", None),
            ("W/abc", None),
            ("*, \"abc\"", None),
            ("\"abc\", *", None),
            ("\"a\u{7f}\"", None),
            ("\"a b\"", None),
        ] {
            assert_eq!(
                tag_list_matches(value.as_bytes(), ours),
                expected,
                "{value:?}"
            );
        }
        // obs-text is allowed in a tag.
        assert_eq!(tag_list_matches(b"\"\xe9\"", ours), Some(false));
    }

    #[test]
    fn if_none_match_and_if_modified_since() {
        let v = validators();
        let date = v.last_modified_string();
        assert!(v.not_modified(&headers(&[("if-none-match", "\"x\", W/\"abc\"")])));
        assert!(v.not_modified(&headers(&[("if-none-match", "*")])));
        assert!(v.not_modified(&headers(&[
            ("if-none-match", "\"x\""),
            ("if-none-match", "\"abc\"")
        ])));
        assert!(!v.not_modified(&headers(&[("if-none-match", "\"a,b\"")])));
        // Split at the comma, `"a,"abc"` would hold our tag; it is one malformed value.
        assert!(!v.not_modified(&headers(&[("if-none-match", "\"a,\"abc\"")])));
        assert!(!v.not_modified(&headers(&[
            ("if-none-match", "\"x\""),
            ("if-modified-since", &date)
        ])));
        // A malformed If-None-Match still means If-Modified-Since is not looked at.
        assert!(!v.not_modified(&headers(&[
            ("if-none-match", "abc"),
            ("if-modified-since", &date)
        ])));
        assert!(v.not_modified(&headers(&[("if-modified-since", &date)])));
        assert!(v.not_modified(&headers(&[(
            "if-modified-since",
            "Sun, 06 Nov 1994 08:49:38 GMT"
        )])));
        assert!(!v.not_modified(&headers(&[(
            "if-modified-since",
            "Sun, 06 Nov 1994 08:49:36 GMT"
        )])));
        assert!(!v.not_modified(&headers(&[("if-modified-since", "garbage")])));
        // A list of dates is not a date.
        assert!(!v.not_modified(&headers(&[
            ("if-modified-since", &date),
            ("if-modified-since", &date)
        ])));
        assert!(!v.not_modified(&HeaderMap::new()));
    }

    #[test]
    fn if_match_compares_strongly() {
        let v = validators();
        let fails = |pairs: &[(&'static str, &str)]| v.precondition_failed(&headers(pairs));
        assert!(!fails(&[]));
        assert!(!fails(&[("if-match", "\"abc\"")]));
        assert!(!fails(&[("if-match", "*")]));
        assert!(!fails(&[("if-match", "\"x\", \"abc\"")]));
        assert!(!fails(&[("if-match", "\"x\""), ("if-match", "\"abc\"")]));
        assert!(fails(&[("if-match", "W/\"abc\"")]));
        assert!(fails(&[("if-match", "\"x\"")]));
        assert!(fails(&[("if-match", "\"a,bc\"")]));
        assert!(fails(&[("if-match", "\"abc\", x")]));
        assert!(fails(&[("if-match", "abc")]));
        assert!(fails(&[("if-match", "")]));
    }

    #[test]
    fn if_unmodified_since_is_ignored_under_if_match() {
        let v = validators();
        let fails = |pairs: &[(&'static str, &str)]| v.precondition_failed(&headers(pairs));
        let date = v.last_modified_string();
        let before = "Sun, 06 Nov 1994 08:49:36 GMT";
        let after = "Sun, 06 Nov 1994 08:49:38 GMT";
        assert!(!fails(&[("if-unmodified-since", &date)]));
        assert!(!fails(&[("if-unmodified-since", after)]));
        assert!(fails(&[("if-unmodified-since", before)]));
        // The obsolete formats are dates too.
        assert!(fails(&[(
            "if-unmodified-since",
            "Sunday, 06-Nov-94 08:49:36 GMT"
        )]));
        assert!(fails(&[(
            "if-unmodified-since",
            "Sun Nov  6 08:49:36 1994"
        )]));
        // Not a date, or more than one: ignored.
        assert!(!fails(&[("if-unmodified-since", "yesterday")]));
        assert!(!fails(&[
            ("if-unmodified-since", before),
            ("if-unmodified-since", before)
        ]));
        // If-Match decides alone.
        assert!(!fails(&[
            ("if-match", "\"abc\""),
            ("if-unmodified-since", before)
        ]));
        assert!(fails(&[
            ("if-match", "\"x\""),
            ("if-unmodified-since", after)
        ]));
    }

    #[test]
    fn coalesce_keeps_the_order_asked() {
        let b = |start, end| ByteRange { start, end };
        assert_eq!(coalesce(vec![]), vec![]);
        assert_eq!(coalesce(vec![b(5, 6)]), vec![b(5, 6)]);
        assert_eq!(
            coalesce(vec![b(8, 9), b(0, 1), b(4, 5)]),
            vec![b(8, 9), b(0, 1), b(4, 5)]
        );
        assert_eq!(
            coalesce(vec![b(8, 9), b(0, 1), b(2, 3), b(0, 0)]),
            vec![b(8, 9), b(0, 3)]
        );
        assert_eq!(coalesce(vec![b(3, 3), b(0, 9), b(1, 1)]), vec![b(0, 9)]);
        let top = u64::MAX - 1;
        assert_eq!(coalesce(vec![b(top, top), b(0, top)]), vec![b(0, top)]);
    }
}
