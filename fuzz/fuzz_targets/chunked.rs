//! Fuzzes the chunked body decoder end to end: the input is the body of
//! `POST / HTTP/1.1` with `Transfer-Encoding: chunked`, served by the in-process harness.
//! Whatever the input, the server answers; when the input begins with a well-formed chunked
//! body (as a small reference decoder here reads RFC 9112 section 7.1), the answer is 200
//! with the decoded length.
#![no_main]

use libfuzzer_sys::fuzz_target;
use socketserver::http::fuzz::{serve_chunked, CHUNKED_HEAD, MAX_INPUT};

/// The harness's `max_body_size`, and the decoder's limits on one chunk-size line and on
/// the trailer section (line ends included).
const MAX_BODY: u64 = 1 << 20;
const MAX_CHUNK_LINE: usize = 4096;
const MAX_TRAILERS: usize = 16 * 1024;

fuzz_target!(|data: &[u8]| {
    // What the harness sends of it.
    let body = &data[..data.len().min(MAX_INPUT - CHUNKED_HEAD.len())];
    let out = serve_chunked(body);
    assert!(
        out.starts_with(b"HTTP/1.1 "),
        "not an HTTP/1.1 answer: {:?}",
        String::from_utf8_lossy(&out)
    );
    let (status, content) = first_response(&out);
    let expected = reference(body);
    match status {
        200 => {
            let text = std::str::from_utf8(content).expect("the harness answers text");
            let n: u64 = text
                .strip_prefix("POST ")
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("200 but not `POST n`: {text:?}"));
            assert!(
                n <= body.len() as u64,
                "decoded {n} bytes from {}",
                body.len()
            );
            if let Some(len) = expected {
                assert_eq!(n, len, "decoded length differs from the reference");
            }
        }
        400 | 413 => assert_eq!(
            expected, None,
            "a well-formed body was refused with {status}"
        ),
        other => panic!("unexpected status {other}"),
    }
});

/// The status and body of the first response in `out`.
fn first_response(out: &[u8]) -> (u16, &[u8]) {
    let head_end = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head")
        + 4;
    let head = std::str::from_utf8(&out[..head_end]).expect("an ASCII head");
    let status = head[9..12].parse().expect("a status code");
    let length = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    let content = &out[head_end..(head_end + length).min(out.len())];
    (status, content)
}

/// One line: its content without the line end (CRLF or bare LF; no other CR allowed), the
/// input after it, and how many bytes it took.
fn line(input: &[u8]) -> Option<(&[u8], &[u8], usize)> {
    let nl = input.iter().position(|&b| b == b'\n')?;
    let content = input[..nl].strip_suffix(b"\r").unwrap_or(&input[..nl]);
    if content.contains(&b'\r') {
        return None;
    }
    Some((content, &input[nl + 1..], nl + 1))
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Visible ASCII, space and tab: what this reference lets through in extensions and
/// trailer values.
fn is_text(b: u8) -> bool {
    b == b'\t' || (b' '..=b'~').contains(&b)
}

/// The decoded length of the chunked body that `input` begins with, or `None` if it does
/// not begin with one that is well-formed and within the server's limits:
///
/// ```text
/// chunked-body = *chunk last-chunk trailer-section CRLF
/// chunk        = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
/// chunk-size   = 1*16HEXDIG
/// chunk-ext    = *( SP / HTAB ) ";" *( VCHAR / SP / HTAB )
/// trailer      = token ":" *( VCHAR / SP / HTAB ) CRLF
/// ```
///
/// (any CRLF may be a bare LF). Bytes after the body are the next request.
fn reference(input: &[u8]) -> Option<u64> {
    let mut rest = input;
    let mut total = 0u64;
    loop {
        let (content, after, taken) = line(rest)?;
        if taken > MAX_CHUNK_LINE {
            return None;
        }
        let digits = content.iter().take_while(|b| b.is_ascii_hexdigit()).count();
        if digits == 0 || digits > 16 {
            return None;
        }
        let size = u64::from_str_radix(std::str::from_utf8(&content[..digits]).ok()?, 16).ok()?;
        let ext = &content[digits..];
        let ext = &ext[ext.iter().take_while(|&&b| b == b' ' || b == b'\t').count()..];
        let valid_ext = ext.is_empty() || (ext[0] == b';' && ext.iter().all(|&b| is_text(b)));
        if !valid_ext {
            return None;
        }
        rest = after;
        if size == 0 {
            break;
        }
        total = total.checked_add(size).filter(|&t| t <= MAX_BODY)?;
        let size = usize::try_from(size).ok()?;
        if rest.len() < size {
            return None;
        }
        let (content, after, _) = line(&rest[size..])?;
        if !content.is_empty() {
            return None;
        }
        rest = after;
    }
    let mut trailer_bytes = 0;
    loop {
        let (content, after, taken) = line(rest)?;
        trailer_bytes += taken;
        if trailer_bytes > MAX_TRAILERS {
            return None;
        }
        rest = after;
        if content.is_empty() {
            return Some(total);
        }
        let colon = content.iter().position(|&b| b == b':')?;
        let (name, value) = (&content[..colon], &content[colon + 1..]);
        if name.is_empty()
            || !name.iter().all(|&b| is_tchar(b))
            || !value.iter().all(|&b| is_text(b))
        {
            return None;
        }
    }
}
