//! Request smuggling: every ambiguity in how a request's body is delimited gets 400 (or 501
//! for a transfer coding the server does not decode) and a closed connection, so that a
//! request hidden in a body is never answered; a fresh connection is then served normally.

mod http_support;

use http_support::{exchange, start, Client, Echo11, Echoed};

/// The request hidden after each ambiguous one: it must never be answered.
const SMUGGLED: &str = "GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n";

/// Sends `head` (its header lines, without the request line) with a body that holds a
/// smuggled request, and checks the answer: one response of `status`, then the close.
fn assert_rejected(server_addr: std::net::SocketAddr, headers: &str, status: u16) {
    let request = format!(
        "POST /target HTTP/1.1\r\nHost: a\r\n{headers}\r\n5\r\nhello\r\n0\r\n\r\n{SMUGGLED}"
    );
    let data = exchange(server_addr, request.as_bytes());
    let text = String::from_utf8_lossy(&data);
    let responses = http_support::parse_all(&data);
    assert_eq!(responses.len(), 1, "{headers:?}: {text}");
    assert_eq!(responses[0].status, status, "{headers:?}: {text}");
    assert!(responses[0].connection_has("close"), "{headers:?}: {text}");
    assert!(!text.contains("smuggled"), "{headers:?}: {text}");
    assert_served_normally(server_addr);
}

/// A fresh connection gets a normal answer.
fn assert_served_normally(server_addr: std::net::SocketAddr) {
    let mut client = Client::connect(server_addr);
    let response =
        client.request(b"POST /fresh HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nok");
    let echoed = Echoed::parse(&response);
    assert_eq!(echoed.requestline, "POST /fresh HTTP/1.1");
    assert_eq!(echoed.body, b"ok");
}

#[test]
fn content_length_with_transfer_encoding_gets_400() {
    let server = start(Echo11::default());
    for headers in [
        "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
        "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
        "Transfer-Encoding: chunked\r\nContent-Length: 0\r\n",
        "Content-Length: 27\r\nTransfer-Encoding: identity\r\n",
    ] {
        assert_rejected(server.addr(), headers, 400);
    }
}

#[test]
fn conflicting_or_malformed_content_length_gets_400() {
    let server = start(Echo11::default());
    for value in [
        "5\r\nContent-Length: 6",
        "5, 6",
        "5,",
        ",5",
        "+5",
        "-5",
        "0x5",
        "5 5",
        "5.0",
        "1e1",
        "five",
        "",
        "18446744073709551616",
        "99999999999999999999999",
    ] {
        assert_rejected(server.addr(), &format!("Content-Length: {value}\r\n"), 400);
    }
}

#[test]
fn identical_content_lengths_are_accepted() {
    let server = start(Echo11::default());
    for headers in [
        "Content-Length: 5, 5\r\n",
        "Content-Length: 5\r\nContent-Length: 5\r\n",
        "Content-Length: 005\r\n",
    ] {
        let mut client = Client::connect(server.addr());
        let request = format!("POST /same HTTP/1.1\r\nHost: a\r\n{headers}\r\nhello{SMUGGLED}");
        client.send(request.as_bytes());
        let echoed = Echoed::parse(&client.read_response());
        assert_eq!(echoed.body, b"hello", "{headers:?}");
        // What follows the body is the next request, answered as such (not smuggled: the
        // framing was unambiguous).
        let next = Echoed::parse(&client.read_response());
        assert_eq!(next.requestline, "GET /smuggled HTTP/1.1");
    }
}

#[test]
fn obfuscated_transfer_encoding_gets_400() {
    let server = start(Echo11::default());
    for headers in [
        "Transfer-Encoding: chunked, identity\r\n",
        "Transfer-Encoding: identity\r\n",
        "Transfer-Encoding: xchunked\r\n",
        "Transfer-Encoding: chunkedx\r\n",
        "Transfer-Encoding: chunked, chunked\r\n",
        "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
        "Transfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n",
        "Transfer-Encoding: \"chunked\"\r\n",
        "Transfer-Encoding: chunked;q=1\r\n",
        "Transfer-Encoding: ,chunked\r\n",
        "Transfer-Encoding:\r\n",
        // Whitespace in the wrong places: before the colon, a folded value, a line that
        // starts with whitespace, a vertical tab.
        "Transfer-Encoding : chunked\r\n",
        "Transfer-Encoding:\r\n chunked\r\n",
        "X-Before: x\r\n Transfer-Encoding: chunked\r\n",
        "Transfer-Encoding:\x0bchunked\r\n",
        "Transfer-Encoding: \x0cchunked\r\n",
    ] {
        assert_rejected(server.addr(), headers, 400);
    }
}

#[test]
fn whitespace_before_the_first_header_is_rejected() {
    let server = start(Echo11::default());
    let request = format!(
        "POST /target HTTP/1.1\r\n Transfer-Encoding: chunked\r\nHost: a\r\n\r\n5\r\nhello\r\n0\r\n\r\n{SMUGGLED}"
    );
    let data = exchange(server.addr(), request.as_bytes());
    let responses = http_support::parse_all(&data);
    assert_eq!(responses.len(), 1);
    assert_eq!(responses[0].status, 400);
    assert_served_normally(server.addr());
}

#[test]
fn transfer_encoding_in_http_1_0_gets_400() {
    let server = start(Echo11::default());
    let request = format!(
        "POST /target HTTP/1.0\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n5\r\nhello\r\n0\r\n\r\n{SMUGGLED}"
    );
    let data = exchange(server.addr(), request.as_bytes());
    let text = String::from_utf8_lossy(&data);
    let responses = http_support::parse_all(&data);
    assert_eq!(responses.len(), 1, "{text}");
    assert_eq!(responses[0].status, 400, "{text}");
    assert!(!text.contains("smuggled"));
    assert_served_normally(server.addr());
}

#[test]
fn other_transfer_codings_get_501() {
    let server = start(Echo11::default());
    for headers in [
        "Transfer-Encoding: gzip, chunked\r\n",
        "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n",
        "Transfer-Encoding: deflate,chunked\r\n",
    ] {
        assert_rejected(server.addr(), headers, 501);
    }
}

#[test]
fn chunked_with_harmless_spelling_is_accepted() {
    // Coding names are case-insensitive, and whitespace around a field value is not part of
    // it (RFC 9110 5.5, 7.3): these are the plain `chunked` every proxy reads the same way.
    let server = start(Echo11::default());
    for headers in [
        "Transfer-Encoding: Chunked\r\n",
        "Transfer-Encoding: CHUNKED\r\n",
        "Transfer-Encoding:   chunked  \r\n",
        "Transfer-Encoding:\tchunked\r\n",
    ] {
        let mut client = Client::connect(server.addr());
        let request = format!(
            "POST /ok HTTP/1.1\r\nHost: a\r\n{headers}\r\n5\r\nhello\r\n0\r\n\r\n{SMUGGLED}"
        );
        client.send(request.as_bytes());
        let echoed = Echoed::parse(&client.read_response());
        assert_eq!(echoed.body, b"hello", "{headers:?}");
        assert_eq!(
            Echoed::parse(&client.read_response()).requestline,
            "GET /smuggled HTTP/1.1"
        );
    }
}

#[test]
fn rejections_close_even_keep_alive_connections_mid_stream() {
    // A good request first, so the connection is known to be persistent; then the
    // ambiguous one: its 400 closes the connection, the request behind it is never read.
    let server = start(Echo11::default());
    let mut client = Client::connect(server.addr());
    let first = client.request(b"GET /first HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(Echoed::parse(&first).requestline, "GET /first HTTP/1.1");
    let request = format!(
        "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{SMUGGLED}"
    );
    client.send(request.as_bytes());
    let response = client.read_response();
    assert_eq!(response.status, 400);
    assert!(response.connection_has("close"));
    client.expect_closed();
    assert_served_normally(server.addr());
}
