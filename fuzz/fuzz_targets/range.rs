//! Fuzzes the file handler's conditional-request parsers: `Range` with `If-Range`,
//! `If-None-Match` with `If-Modified-Since`, and `If-Match` with `If-Unmodified-Since`.
//! The input is header lines (`Name: value`), tried against files of several lengths: 0,
//! 1, small, near `u64::MAX`, and every number in the input and its neighbours.
#![no_main]

use libfuzzer_sys::fuzz_target;
use socketserver::http::fuzz::{
    not_modified, precondition_failed, range, Range, ETAG, LAST_MODIFIED, MAX_RANGES,
};

/// [`LAST_MODIFIED`] in the two obsolete HTTP-date formats, which recipients must accept.
const LAST_MODIFIED_RFC850: &str = "Sunday, 06-Nov-94 08:49:37 GMT";
const LAST_MODIFIED_ASCTIME: &str = "Sun Nov  6 08:49:37 1994";

const LENGTHS: [u64; 9] = [
    0,
    1,
    2,
    10,
    4096,
    u32::MAX as u64,
    i64::MAX as u64,
    u64::MAX - 1,
    u64::MAX,
];

fuzz_target!(|data: &[u8]| {
    let headers: Vec<(&[u8], &[u8])> = data
        .split(|&b| b == b'\n')
        .filter_map(|line| {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let colon = line.iter().position(|&b| b == b':')?;
            Some((&line[..colon], trim(&line[colon + 1..])))
        })
        .collect();

    let mut lengths = LENGTHS.to_vec();
    for number in numbers(data).take(8) {
        lengths.extend([number.saturating_sub(1), number, number.saturating_add(1)]);
    }
    for len in lengths {
        check_range(&headers, len);
    }
    check_not_modified(&headers);
    check_preconditions(&headers);
});

fn check_range(headers: &[(&[u8], &[u8])], len: u64) {
    let answer = range(headers, len);
    if let Range::Partial { start, end } = answer {
        assert!(start <= end, "{answer:?} for a file of {len}");
        assert!(end < len, "{answer:?} past the end of a file of {len}");
    }
    if let Range::Multipart(parts) = &answer {
        check_parts(parts, len);
    }
    let ranges = values(headers, "range");
    // More ranges than the cap: the header is ignored (empty list elements do not count).
    if let [value] = ranges[..] {
        let set = value.splitn(2, |&b| b == b'=').nth(1).unwrap_or_default();
        let asked = set
            .split(|&b| b == b',')
            .filter(|element| !trim(element).is_empty())
            .count();
        if asked > MAX_RANGES {
            assert_eq!(answer, Range::Full, "{asked} ranges, for a file of {len}");
        }
    }
    let if_ranges = values(headers, "if-range");
    if ranges.is_empty() {
        assert_eq!(answer, Range::Full, "no Range, for a file of {len}");
    }
    // If-Range compares strongly: a weak or different tag never lets the range apply.
    if let [if_range] = if_ranges[..] {
        if if_range.iter().all(|&b| is_text(b))
            && (if_range.starts_with(b"W/")
                || (if_range.starts_with(b"\"") && if_range != ETAG.as_bytes()))
        {
            assert_eq!(answer, Range::Full, "If-Range {:?}", lossy(if_range));
        }
    }
    let if_range_holds = match if_ranges[..] {
        [] => true,
        [v] => [
            ETAG,
            LAST_MODIFIED,
            LAST_MODIFIED_RFC850,
            LAST_MODIFIED_ASCTIME,
        ]
        .iter()
        .any(|good| v == good.as_bytes()),
        _ => false,
    };
    if let ([value], true) = (&ranges[..], if_range_holds) {
        if let Some(expected) = expected_range(value, len) {
            assert_eq!(
                answer,
                expected,
                "Range {:?} of a file of {len}",
                lossy(value)
            );
        }
    }
}

/// The parts of a multipart answer: at least two and at most the cap, inside the file,
/// and no two overlapping or touching (those are merged).
fn check_parts(parts: &[(u64, u64)], len: u64) {
    assert!(
        (2..=MAX_RANGES).contains(&parts.len()),
        "{parts:?} for a file of {len}"
    );
    for &(start, end) in parts {
        assert!(start <= end && end < len, "{parts:?} for a file of {len}");
    }
    let mut sorted = parts.to_vec();
    sorted.sort_unstable();
    for pair in sorted.windows(2) {
        assert!(
            pair[1].0 > pair[0].1 + 1,
            "{parts:?} overlap or touch, for a file of {len}"
        );
    }
}

/// What RFC 9110 section 14.1.2 makes of `bytes=first-last` (decimal digits only, no
/// spaces) for a file of `len` bytes; `None` for another spelling. A number too large for
/// a u64 makes the header malformed here, and the whole file is sent.
fn expected_range(value: &[u8], len: u64) -> Option<Range> {
    let value = std::str::from_utf8(value).ok()?;
    let (unit, spec) = value.split_once('=')?;
    let (first, last) = spec.split_once('-')?;
    if !unit.eq_ignore_ascii_case("bytes")
        || ![first, last]
            .iter()
            .all(|s| s.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    let number = |s: &str| s.parse::<u64>();
    Some(match (first, last) {
        ("", "") => Range::Full,
        ("", suffix) => match number(suffix) {
            Err(_) => Range::Full,
            Ok(0) => Range::Unsatisfiable,
            Ok(_) if len == 0 => Range::Unsatisfiable,
            Ok(n) => Range::Partial {
                start: len - n.min(len),
                end: len - 1,
            },
        },
        // `first-` runs to the end of the file.
        (first, "") => match number(first) {
            Err(_) => Range::Full,
            Ok(start) if start >= len => Range::Unsatisfiable,
            Ok(start) => Range::Partial {
                start,
                end: len - 1,
            },
        },
        (first, last) => match (number(first), number(last)) {
            (Ok(start), Ok(end)) if start > end => Range::Full,
            (Ok(start), Ok(_)) if start >= len => Range::Unsatisfiable,
            (Ok(start), Ok(end)) => Range::Partial {
                start,
                end: end.min(len - 1),
            },
            _ => Range::Full,
        },
    })
}

fn check_not_modified(headers: &[(&[u8], &[u8])]) {
    let answer = not_modified(headers);
    let tags = values(headers, "if-none-match");
    let dates = values(headers, "if-modified-since");
    if tags.is_empty() && dates.is_empty() {
        assert!(!answer, "304 without a condition");
    }
    // When If-None-Match is there, If-Modified-Since is not looked at (RFC 9110 13.2.2).
    if !tags.is_empty() {
        let without_dates: Vec<_> = headers
            .iter()
            .filter(|(name, _)| !name.eq_ignore_ascii_case(b"if-modified-since"))
            .copied()
            .collect();
        assert_eq!(
            answer,
            not_modified(&without_dates),
            "If-Modified-Since was used"
        );
    }
    // `*`, or a list of tags one of which is ours (weakly compared), matches; a list
    // without it does not.
    if let [list] = tags[..] {
        if let Some(tags) = tag_list(list) {
            let weak = format!("W/{ETAG}");
            let expected = tags
                .iter()
                .any(|&tag| tag == b"*" || tag == ETAG.as_bytes() || tag == weak.as_bytes());
            assert_eq!(answer, expected, "If-None-Match {:?}", lossy(list));
        }
    }
    // Our date, in any of the three formats, with no If-None-Match: 304.
    if let ([], [date]) = (&tags[..], &dates[..]) {
        if [LAST_MODIFIED, LAST_MODIFIED_RFC850, LAST_MODIFIED_ASCTIME]
            .iter()
            .any(|good| *date == good.as_bytes())
        {
            assert!(answer, "If-Modified-Since {:?} did not match", lossy(date));
        }
    }
}

fn check_preconditions(headers: &[(&[u8], &[u8])]) {
    let answer = precondition_failed(headers);
    let tags = values(headers, "if-match");
    let dates = values(headers, "if-unmodified-since");
    if tags.is_empty() && dates.is_empty() {
        assert!(!answer, "412 without a condition");
    }
    // When If-Match is there, If-Unmodified-Since is not looked at (RFC 9110 13.1.4).
    if !tags.is_empty() {
        let without_dates: Vec<_> = headers
            .iter()
            .filter(|(name, _)| !name.eq_ignore_ascii_case(b"if-unmodified-since"))
            .copied()
            .collect();
        assert_eq!(
            answer,
            precondition_failed(&without_dates),
            "If-Unmodified-Since was used"
        );
    }
    // `*`, or a list holding our tag exactly (strong comparison: not `W/`), holds.
    if let [list] = tags[..] {
        if let Some(tags) = tag_list(list) {
            let holds = tags
                .iter()
                .any(|&tag| tag == b"*" || tag == ETAG.as_bytes());
            assert_eq!(answer, !holds, "If-Match {:?}", lossy(list));
        }
    }
    // Our date or a later one, with no If-Match: no 412.
    if let ([], [date]) = (&tags[..], &dates[..]) {
        if [LAST_MODIFIED, LAST_MODIFIED_RFC850, LAST_MODIFIED_ASCTIME]
            .iter()
            .any(|good| *date == good.as_bytes())
        {
            assert!(!answer, "If-Unmodified-Since {:?} failed", lossy(date));
        }
    }
}

/// The elements of an `If-Match` or `If-None-Match` value that is plainly well formed:
/// `*` alone, or entity tags without commas in them, split at the commas; `None` for any
/// other value, which this simple reading cannot judge.
fn tag_list(list: &[u8]) -> Option<Vec<&[u8]>> {
    if trim(list) == b"*" {
        return Some(vec![b"*"]);
    }
    let tags: Vec<&[u8]> = list
        .split(|&b| b == b',')
        .map(trim)
        .filter(|tag| !tag.is_empty())
        .collect();
    let well_formed = |tag: &[u8]| {
        let opaque = tag.strip_prefix(b"W/").unwrap_or(tag);
        opaque.len() >= 2
            && opaque.starts_with(b"\"")
            && opaque.ends_with(b"\"")
            && opaque[1..opaque.len() - 1]
                .iter()
                .all(|&b| b == 0x21 || (0x23..=0x7e).contains(&b))
    };
    tags.iter().all(|tag| well_formed(tag)).then_some(tags)
}

/// The values of the header lines named `name` that a request could carry.
fn values<'a>(headers: &[(&[u8], &'a [u8])], name: &str) -> Vec<&'a [u8]> {
    headers
        .iter()
        .filter(|(n, v)| n.eq_ignore_ascii_case(name.as_bytes()) && is_value(v))
        .map(|(_, v)| *v)
        .collect()
}

/// What a header value may hold (the `http` crate's rule): no control byte but tab.
fn is_value(value: &[u8]) -> bool {
    value
        .iter()
        .all(|&b| b == b'\t' || (b >= b' ' && b != 0x7f))
}

/// Visible ASCII, space and tab.
fn is_text(b: u8) -> bool {
    b == b'\t' || (b' '..=b'~').contains(&b)
}

fn trim(s: &[u8]) -> &[u8] {
    let is_space = |b: &u8| *b == b' ' || *b == b'\t';
    let start = s.iter().position(|b| !is_space(b)).unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|b| !is_space(b))
        .map_or(start, |i| i + 1);
    &s[start..end]
}

/// The runs of decimal digits in `data` that fit a u64.
fn numbers(data: &[u8]) -> impl Iterator<Item = u64> + '_ {
    data.split(|b| !b.is_ascii_digit())
        .filter(|run| !run.is_empty())
        .filter_map(|run| std::str::from_utf8(run).ok()?.parse().ok())
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
