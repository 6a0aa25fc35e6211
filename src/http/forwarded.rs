//! The client an HTTP proxy names in `Forwarded` (RFC 7239) or `X-Forwarded-For`, read
//! the standard way: from the right, past the proxies that are trusted, to the first
//! address that is not.
//!
//! Every proxy appends the address it received the request from, so the right-most
//! entries come from the proxies in front of the server, and whatever is to the left of
//! the first untrusted one was written by someone who could have written anything. An
//! entry that names no address (`unknown`, an obfuscated `_identifier`, garbage) ends the
//! walk: what lies beyond it cannot be vouched for.

use std::net::{IpAddr, SocketAddr};

use http::header::{HeaderName, FORWARDED};
use http::HeaderMap;

use crate::proxy::TrustedProxies;

/// The nodes of the headers, in order: `None` for an entry that names no address.
type Nodes = Vec<Option<SocketAddr>>;

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The client the forwarding headers name for a request that `peer` (a trusted proxy)
/// passed on; `None` if they name none. `Forwarded` is read if the request has one, else
/// `X-Forwarded-For`; the fields of each, in order, are one list.
pub(crate) fn forwarded_client(
    headers: &HeaderMap,
    peer: SocketAddr,
    trusted: &TrustedProxies,
) -> Option<SocketAddr> {
    if !trusted.contains(peer.ip()) {
        return None;
    }
    let (name, parse): (&HeaderName, fn(&str, &mut Nodes)) = if headers.contains_key(FORWARDED) {
        (&FORWARDED, forwarded_nodes)
    } else {
        (&X_FORWARDED_FOR, x_forwarded_for_nodes)
    };
    let mut nodes = Vec::new();
    for value in headers.get_all(name) {
        match value.to_str() {
            Ok(value) => parse(value, &mut nodes),
            // Not text: it names no one, and nothing left of it counts.
            Err(_) => nodes.push(None),
        }
    }
    let mut client = None;
    for node in nodes.iter().rev() {
        let Some(address) = *node else {
            break;
        };
        client = Some(address);
        if !trusted.contains(address.ip()) {
            break;
        }
    }
    client
}

/// The `for=` of each element of a `Forwarded` value (`for=192.0.2.60;proto=http,
/// for="[2001:db8::17]:4711"`); `None` for an element without one, or whose node is
/// `unknown`, obfuscated or malformed. A value that does not parse ends in a `None`.
fn forwarded_nodes(value: &str, nodes: &mut Nodes) {
    let mut rest = value;
    loop {
        let (element, after) = forwarded_element(rest);
        match element {
            Element::Empty => {}
            Element::Node(node) => nodes.push(node),
            // Where the next element starts is not known.
            Element::Broken => return nodes.push(None),
        }
        match after {
            Some(after) => rest = after,
            None => return,
        }
    }
}

/// One element of a `Forwarded` list.
enum Element {
    /// Nothing between two commas (the list syntax allows it).
    Empty,
    /// Pairs, of which `for` named this address (`None`: none, or no `for`).
    Node(Option<SocketAddr>),
    /// Not the syntax of an element.
    Broken,
}

/// One element, up to its comma, and what follows the comma if one came.
fn forwarded_element(text: &str) -> (Element, Option<&str>) {
    let mut rest = text;
    let mut node = None;
    let mut pairs = 0;
    let mut seen_for = false;
    loop {
        rest = rest.trim_start_matches([' ', '\t']);
        let done = |pairs, node| match pairs {
            0 => Element::Empty,
            _ => Element::Node(node),
        };
        // Empty pairs (`a=1;;b=2`) are allowed as empty elements are.
        match rest.as_bytes().first() {
            None => return (done(pairs, node), None),
            Some(b',') => return (done(pairs, node), Some(&rest[1..])),
            Some(b';') => {
                rest = &rest[1..];
                continue;
            }
            _ => {}
        }
        let Some((name, after)) = token(rest) else {
            return (Element::Broken, None);
        };
        let Some(after) = after.strip_prefix('=') else {
            return (Element::Broken, None);
        };
        let parsed = match after.strip_prefix('"') {
            Some(quoted) => quoted_string(quoted),
            None => token(after).map(|(value, after)| (value.to_string(), after)),
        };
        let Some((value, after)) = parsed else {
            return (Element::Broken, None);
        };
        pairs += 1;
        if name.eq_ignore_ascii_case("for") {
            if seen_for {
                // Two `for`s in one element: which one is meant?
                return (Element::Broken, None);
            }
            seen_for = true;
            node = parse_node(&value);
        }
        rest = after.trim_start_matches([' ', '\t']);
        if !rest.is_empty() && !rest.starts_with([',', ';']) {
            return (Element::Broken, None);
        }
    }
}

/// A token at the start of `text` (RFC 9110's `tchar`s), and what follows it.
fn token(text: &str) -> Option<(&str, &str)> {
    let end = text
        .bytes()
        .position(|b| !super::is_token_byte(b))
        .unwrap_or(text.len());
    (end > 0).then(|| text.split_at(end))
}

/// The content of a quoted string whose opening quote is gone, unescaped, and what
/// follows its closing quote; `None` if it does not close.
fn quoted_string(text: &str) -> Option<(String, &str)> {
    let mut value = String::new();
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((value, &text[i + 1..])),
            '\\' => value.push(chars.next()?.1),
            c => value.push(c),
        }
    }
    None
}

/// A node of RFC 7239: `192.0.2.43`, `192.0.2.43:47011`, `[2001:db8:cafe::17]`,
/// `[2001:db8:cafe::17]:4711`; an obfuscated port (`:_abc`) keeps the address, port 0.
/// `unknown` and obfuscated identifiers are no address.
fn parse_node(node: &str) -> Option<SocketAddr> {
    let (host, port) = match node.strip_prefix('[') {
        Some(bracketed) => {
            let (host, after) = bracketed.split_once(']')?;
            let ip: std::net::Ipv6Addr = host.parse().ok()?;
            let port = match after {
                "" => Some(0),
                after => after.strip_prefix(':').and_then(node_port),
            }?;
            return Some(canonical(IpAddr::V6(ip), port));
        }
        None => match node.split_once(':') {
            Some((host, port)) => (host, node_port(port)?),
            None => (node, 0),
        },
    };
    let ip: std::net::Ipv4Addr = host.parse().ok()?;
    Some(canonical(IpAddr::V4(ip), port))
}

/// A port of a node: decimal, or obfuscated (`_` and letters, digits, `.`, `-`, `_`),
/// which is port 0.
fn node_port(port: &str) -> Option<u16> {
    if let Some(obfuscated) = port.strip_prefix('_') {
        let ok = obfuscated
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        return ok.then_some(0);
    }
    if port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    port.parse().ok()
}

/// The addresses of an `X-Forwarded-For` value, comma-separated: `203.0.113.195,
/// 2001:db8::1`; also `[v6]:port` and `v4:port`, which some proxies write. Anything else
/// (`unknown`) is no address.
fn x_forwarded_for_nodes(value: &str, nodes: &mut Nodes) {
    for entry in value.split(',') {
        let entry = entry.trim_matches([' ', '\t']);
        if entry.is_empty() {
            continue;
        }
        let node = match entry.parse::<IpAddr>() {
            Ok(ip) => Some(canonical(ip, 0)),
            Err(_) => match entry.parse::<SocketAddr>() {
                Ok(addr) => Some(canonical(addr.ip(), addr.port())),
                Err(_) => None,
            },
        };
        nodes.push(node);
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it maps.
fn canonical(ip: IpAddr, port: u16) -> SocketAddr {
    SocketAddr::new(ip.to_canonical(), port)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(fields: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in fields {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    fn client(fields: &[(&str, &str)], trusted: &str) -> Option<String> {
        let trusted: TrustedProxies = trusted.parse().unwrap();
        let peer: SocketAddr = "10.0.0.1:5000".parse().unwrap();
        forwarded_client(&headers(fields), peer, &trusted).map(|a| a.to_string())
    }

    const PROXIES: &str = "10.0.0.0/8, fd00::/8";

    #[test]
    fn x_forwarded_for_from_the_right() {
        let xff = |v| client(&[("X-Forwarded-For", v)], PROXIES);
        assert_eq!(xff("203.0.113.7").as_deref(), Some("203.0.113.7:0"));
        assert_eq!(
            xff("6.6.6.6, 203.0.113.7, 10.1.1.1").as_deref(),
            Some("203.0.113.7:0")
        );
        assert_eq!(
            xff("2001:db8::9,fd00::1").as_deref(),
            Some("[2001:db8::9]:0")
        );
        assert_eq!(xff("::ffff:203.0.113.7").as_deref(), Some("203.0.113.7:0"));
        assert_eq!(
            xff("[2001:db8::9]:443, 203.0.113.7:80").as_deref(),
            Some("203.0.113.7:80")
        );
        // All trusted: the left-most.
        assert_eq!(xff("10.9.9.9, 10.1.1.1").as_deref(), Some("10.9.9.9:0"));
        // `unknown` (or garbage) ends the walk at the last trusted hop, or names no one.
        assert_eq!(
            xff("6.6.6.6, unknown, 10.1.1.1").as_deref(),
            Some("10.1.1.1:0")
        );
        assert_eq!(xff("6.6.6.6, unknown"), None);
        assert_eq!(xff("6.6.6.6, 1.2.3.4.5"), None);
        assert_eq!(xff(""), None);
        assert_eq!(xff(" , ,"), None);
        // Several fields are one list, in order.
        let two = client(
            &[
                ("X-Forwarded-For", "6.6.6.6"),
                ("X-Forwarded-For", "198.51.100.1, 10.2.2.2"),
            ],
            PROXIES,
        );
        assert_eq!(two.as_deref(), Some("198.51.100.1:0"));
    }

    #[test]
    fn forwarded_from_the_right() {
        let fwd = |v| client(&[("Forwarded", v)], PROXIES);
        assert_eq!(
            fwd("for=192.0.2.60;proto=http;by=203.0.113.43").as_deref(),
            Some("192.0.2.60:0")
        );
        assert_eq!(
            fwd("For=\"[2001:db8:cafe::17]:4711\"").as_deref(),
            Some("[2001:db8:cafe::17]:4711")
        );
        assert_eq!(
            fwd("for=\"[2001:db8:cafe::17]\"").as_deref(),
            Some("[2001:db8:cafe::17]:0")
        );
        assert_eq!(
            fwd("for=\"192.0.2.43:47011\"").as_deref(),
            Some("192.0.2.43:47011")
        );
        assert_eq!(
            fwd("for=\"192.0.2.43:_hidden\"").as_deref(),
            Some("192.0.2.43:0")
        );
        assert_eq!(
            fwd("for=6.6.6.6, for=198.51.100.1;proto=https, for=10.3.3.3").as_deref(),
            Some("198.51.100.1:0")
        );
        assert_eq!(
            fwd("for=\"\\[2001:db8::1\\]\"").as_deref(),
            Some("[2001:db8::1]:0")
        );
        assert_eq!(
            fwd(" for=192.0.2.1 ; proto=http , ").as_deref(),
            Some("192.0.2.1:0")
        );
        // unknown, obfuscated, missing: no address, and the walk ends there.
        assert_eq!(
            fwd("for=6.6.6.6, for=unknown, for=10.1.1.1").as_deref(),
            Some("10.1.1.1:0")
        );
        assert_eq!(fwd("for=6.6.6.6, for=_hidden"), None);
        assert_eq!(fwd("for=6.6.6.6, proto=https"), None);
        // Malformed: nothing after the break is read, nothing before it counts.
        assert_eq!(fwd("for=\"192.0.2.1"), None);
        assert_eq!(fwd("for=192.0.2.1 x, for=198.51.100.1"), None);
        assert_eq!(fwd("for=192.0.2.1;for=198.51.100.1"), None);
        assert_eq!(fwd("for=[2001:db8::1]"), None);
        assert_eq!(fwd("for=\"[2001:db8::1]:99999\""), None);
        // A field of its own starts afresh: a broken client field, then the proxy's.
        let two = client(
            &[
                ("Forwarded", "for=\"oops"),
                ("Forwarded", "for=198.51.100.1"),
            ],
            PROXIES,
        );
        assert_eq!(two.as_deref(), Some("198.51.100.1:0"));
        // Forwarded wins over X-Forwarded-For.
        let both = client(
            &[
                ("X-Forwarded-For", "6.6.6.6"),
                ("Forwarded", "for=198.51.100.2"),
            ],
            PROXIES,
        );
        assert_eq!(both.as_deref(), Some("198.51.100.2:0"));
    }

    #[test]
    fn never_from_an_untrusted_peer() {
        let trusted: TrustedProxies = PROXIES.parse().unwrap();
        let map = headers(&[
            ("X-Forwarded-For", "203.0.113.7"),
            ("Forwarded", "for=203.0.113.8"),
        ]);
        let stranger: SocketAddr = "192.0.2.99:5000".parse().unwrap();
        assert_eq!(forwarded_client(&map, stranger, &trusted), None);
        let mapped: SocketAddr = "[::ffff:10.0.0.1]:5000".parse().unwrap();
        assert!(forwarded_client(&map, mapped, &trusted).is_some());
        assert_eq!(
            forwarded_client(&HeaderMap::new(), "10.0.0.1:1".parse().unwrap(), &trusted),
            None
        );
    }
}
