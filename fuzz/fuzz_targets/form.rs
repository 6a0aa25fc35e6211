//! Fuzzes the decoder of `application/x-www-form-urlencoded` bodies and queries
//! (`parse_qsl`), and the escaping of the decoded fields on the default form handler's page.
//! Checks: one pair per non-empty `&`-separated piece; input of unreserved characters
//! decodes to itself; fields encoded here decode back to themselves.
#![no_main]

use libfuzzer_sys::fuzz_target;
use socketserver::http::fuzz::form;
use socketserver::http::html_escape;

fuzz_target!(|data: &[u8]| {
    let pairs = form(data);
    let pieces = data.split(|&b| b == b'&').filter(|p| !p.is_empty()).count();
    assert_eq!(pairs.len(), pieces, "one pair per piece");
    for (name, value) in &pairs {
        for field in [name, value] {
            let escaped = html_escape(field);
            assert!(!escaped.contains(['<', '>', '"', '\'']), "{escaped:?}");
            assert_eq!(unescape(&escaped), *field);
        }
    }

    // Unreserved characters (RFC 3986) encode as themselves: the input is its own encoding.
    if data
        .iter()
        .all(|&b| is_unreserved(b) || b == b'&' || b == b'=')
    {
        let text = std::str::from_utf8(data).unwrap();
        let expected: Vec<(String, String)> = text
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (name, value) = p.split_once('=').unwrap_or((p, ""));
                (name.to_string(), value.to_string())
            })
            .collect();
        assert_eq!(pairs, expected);
    }

    // Fields of any text (one per line, name and value split at the first tab), encoded,
    // decode back to themselves.
    let text = String::from_utf8_lossy(data);
    let fields: Vec<(String, String)> = text
        .split('\n')
        .map(|line| {
            let (name, value) = line.split_once('\t').unwrap_or((line, ""));
            (name.to_string(), value.to_string())
        })
        .collect();
    let encoded = fields
        .iter()
        .map(|(name, value)| format!("{}={}", encode(name), encode(value)))
        .collect::<Vec<_>>()
        .join("&");
    assert_eq!(form(encoded.as_bytes()), fields, "{encoded:?}");
});

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~".contains(&b)
}

/// The form encoding of `text`: unreserved bytes as they are, space as `+`, every other
/// byte as `%XX`.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for &b in text.as_bytes() {
        match b {
            b' ' => out.push('+'),
            b if is_unreserved(b) => out.push(b as char),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Undoes `html_escape`.
fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&amp;", "&")
}
