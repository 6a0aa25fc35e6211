use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsFd;

use super::*;

fn v4(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

fn invalid(data: &[u8]) -> &'static str {
    match parse(data) {
        Err(ParseError::Invalid(why)) => why,
        other => panic!("{:?}: {other:?}", String::from_utf8_lossy(data)),
    }
}

/// A version 2 header: `version_command`, `family`, the address block and TLVs.
fn v2(version_command: u8, family: u8, block: &[u8]) -> Vec<u8> {
    let mut header = V2_SIGNATURE.to_vec();
    header.extend([version_command, family]);
    header.extend((block.len() as u16).to_be_bytes());
    header.extend(block);
    header
}

fn inet4_block() -> Vec<u8> {
    let mut block = vec![192, 0, 2, 1, 198, 51, 100, 2];
    block.extend(56324u16.to_be_bytes());
    block.extend(443u16.to_be_bytes());
    block
}

fn inet6_block() -> Vec<u8> {
    let source: Ipv6Addr = "2001:db8::1".parse().unwrap();
    let destination: Ipv6Addr = "2001:db8::2".parse().unwrap();
    let mut block = source.octets().to_vec();
    block.extend(destination.octets());
    block.extend(1234u16.to_be_bytes());
    block.extend(80u16.to_be_bytes());
    block
}

/// Every proper prefix of a valid header is incomplete, never invalid.
fn assert_prefixes_incomplete(header: &[u8]) {
    for end in 0..header.len() {
        assert_eq!(
            parse(&header[..end]),
            Err(ParseError::Incomplete),
            "{end} of {} bytes: {:?}",
            header.len(),
            String::from_utf8_lossy(&header[..end])
        );
    }
}

#[test]
fn v1_tcp4_and_what_follows_it() {
    let header = b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n";
    let mut data = header.to_vec();
    data.extend(b"GET / HTTP/1.1\r\n");
    let parsed = parse(&data).unwrap();
    assert_eq!(
        parsed,
        ProxyHeader {
            version: 1,
            source: Some(v4("192.0.2.1:56324")),
            destination: Some(v4("198.51.100.2:443")),
            len: header.len(),
        }
    );
    assert_prefixes_incomplete(header);
}

#[test]
fn v1_tcp6_unknown_and_the_longest_line() {
    let header = b"PROXY TCP6 2001:db8::1 ::1 0 65535\r\n";
    let parsed = parse(header).unwrap();
    assert_eq!(parsed.source, Some("[2001:db8::1]:0".parse().unwrap()));
    assert_eq!(parsed.destination, Some("[::1]:65535".parse().unwrap()));
    assert_prefixes_incomplete(header);

    for unknown in [&b"PROXY UNKNOWN\r\n"[..], b"PROXY UNKNOWN whatever 1 2\r\n"] {
        let parsed = parse(unknown).unwrap();
        assert_eq!((parsed.source, parsed.len), (None, unknown.len()));
        assert_prefixes_incomplete(unknown);
    }

    // The worst case of the specification: 107 bytes.
    let longest = b"PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
    assert_eq!(longest.len(), V1_MAX_LEN);
    assert_eq!(parse(longest).unwrap().len, V1_MAX_LEN);
    assert_prefixes_incomplete(longest);
    let mut too_long = longest[..V1_MAX_LEN - 2].to_vec();
    too_long.extend(b"5\r\n");
    assert!(invalid(&too_long).contains("longer"));
    // Without an end: refused at 107 bytes, not waited for.
    let mut endless = b"PROXY UNKNOWN ".to_vec();
    endless.resize(V1_MAX_LEN, b'a');
    assert!(invalid(&endless).contains("longer"));
    endless.truncate(V1_MAX_LEN - 1);
    assert_eq!(parse(&endless), Err(ParseError::Incomplete));
}

#[test]
fn v1_is_strict() {
    let refused: &[&[u8]] = &[
        b"PROXY  TCP4 192.0.2.1 198.51.100.2 1 2\r\n",
        b"PROXY TCP4  192.0.2.1 198.51.100.2 1 2\r\n",
        b"PROXY TCP4 192.0.2.1 198.51.100.2 1 2 \r\n",
        b"PROXY TCP4 192.0.2.1 198.51.100.2 1\r\n",
        b"PROXY TCP4 192.0.2.1 198.51.100.2 1 2 3\r\n",
        b"PROXY TCP4 192.0.2.1 198.51.100.2 01 2\r\n",
        b"PROXY TCP4 192.0.2.1 198.51.100.2 1 65536\r\n",
        b"PROXY TCP4 192.0.2.1 198.51.100.2 1 -2\r\n",
        b"PROXY TCP4 192.0.2.1 198.51.100.2 +1 2\r\n",
        b"PROXY TCP4 192.0.2.1 198.51.100.2 1 2\n",
        b"PROXY TCP4 192.0.2.1 198.51.100.2 1 2\r\r\n",
        b"PROXY TCP4 192.0.2.1\r198.51.100.2 1 2\r\n",
        b"PROXY TCP4 2001:db8::1 198.51.100.2 1 2\r\n",
        b"PROXY TCP6 192.0.2.1 ::1 1 2\r\n",
        b"PROXY TCP4 192.0.2.01 198.51.100.2 1 2\r\n",
        b"PROXY TCP4 192.0.2 198.51.100.2 1 2\r\n",
        b"PROXY TCP4 192.0.2.256 198.51.100.2 1 2\r\n",
        b"PROXY UDP4 192.0.2.1 198.51.100.2 1 2\r\n",
        b"PROXY tcp4 192.0.2.1 198.51.100.2 1 2\r\n",
        b"PROXY UNKNOWNX\r\n",
        b"PROXY \r\n",
        b"PROXY\r\n",
        b"PROXY TCP4 192.0.2.1 198.51.100.2 1 2\t\r\n",
        b"PROXY TCP4 192.0.2.1 198.51.100.2 1 \xff\r\n",
        b"PROXX TCP4",
        b"GET / HTTP/1.1\r\n",
        b"P\r",
    ];
    for data in refused {
        invalid(data);
    }
    // A byte no header holds is refused before the line ends.
    assert!(invalid(b"PROXY TCP4 192.0.2.1\t").contains("byte"));
    assert!(invalid(b"PROXY TCP4\r ").contains("CR"));
}

#[test]
fn v2_inet_and_inet6() {
    let header = v2(0x21, 0x11, &inet4_block());
    let mut data = header.clone();
    data.extend(b"\x16\x03\x01");
    assert_eq!(
        parse(&data).unwrap(),
        ProxyHeader {
            version: 2,
            source: Some(v4("192.0.2.1:56324")),
            destination: Some(v4("198.51.100.2:443")),
            len: 28,
        }
    );
    assert_prefixes_incomplete(&header);

    let header = v2(0x21, 0x21, &inet6_block());
    let parsed = parse(&header).unwrap();
    assert_eq!(parsed.source, Some("[2001:db8::1]:1234".parse().unwrap()));
    assert_eq!(
        parsed.destination,
        Some("[2001:db8::2]:80".parse().unwrap())
    );
    assert_eq!(parsed.len, 52);
    assert_prefixes_incomplete(&header);
}

#[test]
fn v2_local_unspec_unix_keep_the_peer() {
    // LOCAL: whatever the family and block, no address.
    for (family, block) in [(0x00, vec![]), (0x11, inet4_block()), (0x55, vec![1, 2, 3])] {
        let header = v2(0x20, family, &block);
        let parsed = parse(&header).unwrap();
        assert_eq!((parsed.source, parsed.len), (None, header.len()));
        assert_prefixes_incomplete(&header);
    }
    let unspec = v2(0x21, 0x00, &[9; 7]);
    assert_eq!(parse(&unspec).unwrap().source, None);
    let unix = v2(0x21, 0x31, &[0; 216]);
    assert_eq!(parse(&unix).unwrap().source, None);
    assert!(invalid(&v2(0x21, 0x31, &[0; 215])).contains("shorter"));
}

#[test]
fn v2_tlvs_are_skipped_within_bounds() {
    let mut block = inet4_block();
    block.extend([0x01, 0, 2, b'h', b'2']); // ALPN
    block.extend([0x04, 0, 0]); // NOOP, empty
    let header = v2(0x21, 0x11, &block);
    assert_eq!(parse(&header).unwrap().len, header.len());
    assert_prefixes_incomplete(&header);

    for tail in [&[0x01][..], &[0x01, 0], &[0x01, 0, 3, b'h', b'2']] {
        let mut block = inet4_block();
        block.extend(tail);
        assert!(invalid(&v2(0x21, 0x11, &block)).contains("TLV"), "{tail:?}");
    }
}

#[test]
fn v2_refusals() {
    let mut bad_signature = v2(0x21, 0x11, &inet4_block());
    bad_signature[7] = b'q';
    assert!(invalid(&bad_signature).contains("signature"));
    assert!(invalid(b"\r\n\r\n\0\r\nquit").contains("signature"));
    assert!(invalid(b"\r\r").contains("signature"));
    assert!(invalid(&v2(0x11, 0x11, &inet4_block())).contains("version"));
    assert!(invalid(&v2(0x31, 0x11, &inet4_block())).contains("version"));
    assert!(invalid(&v2(0x22, 0x11, &inet4_block())).contains("command"));
    assert!(invalid(&v2(0x2f, 0x11, &inet4_block())).contains("command"));
    // The version is checked as soon as its byte is here.
    let mut early = V2_SIGNATURE.to_vec();
    early.push(0x13);
    assert!(invalid(&early).contains("version"));
    for family in [0x12, 0x22, 0x32] {
        assert!(invalid(&v2(0x21, family, &[0; 216])).contains("datagram"));
    }
    for family in [0x01, 0x10, 0x13, 0x41, 0xff] {
        assert!(invalid(&v2(0x21, family, &[0; 216])).contains("family"));
    }
    assert!(invalid(&v2(0x21, 0x11, &inet4_block()[..11])).contains("shorter"));
    assert!(invalid(&v2(0x21, 0x21, &inet6_block()[..35])).contains("shorter"));
    // A length past the cap is refused from the fixed part alone.
    let mut huge = V2_SIGNATURE.to_vec();
    huge.extend([0x21, 0x11]);
    huge.extend(((V2_MAX_PAYLOAD + 1) as u16).to_be_bytes());
    assert!(invalid(&huge).contains("longer"));
    let most = v2(0x21, 0x00, &vec![0; V2_MAX_PAYLOAD]);
    assert_eq!(parse(&most).unwrap().len, MAX_HEADER_LEN);
}

#[test]
fn signatures_tell_headers_from_requests() {
    assert_eq!(starts_with_signature(b""), None);
    assert_eq!(starts_with_signature(b"P"), None);
    assert_eq!(starts_with_signature(b"PROXY"), None);
    assert_eq!(starts_with_signature(b"PROXY "), Some(true));
    assert_eq!(starts_with_signature(b"PROP"), Some(false));
    assert_eq!(starts_with_signature(b"POST / HTTP/1.1"), Some(false));
    assert_eq!(starts_with_signature(b"\r\n"), None);
    assert_eq!(starts_with_signature(b"\r\nGET"), Some(false));
    assert_eq!(starts_with_signature(&V2_SIGNATURE[..11]), None);
    assert_eq!(starts_with_signature(&V2_SIGNATURE), Some(true));
    assert_eq!(starts_with_signature(b"\x16\x03\x01"), Some(false));
}

#[test]
fn trusted_networks() {
    let trusted = TrustedProxies::default();
    assert!(trusted.contains("127.0.0.1".parse().unwrap()));
    assert!(trusted.contains("127.255.0.9".parse().unwrap()));
    assert!(trusted.contains("::1".parse().unwrap()));
    assert!(trusted.contains("::ffff:127.0.0.1".parse().unwrap()));
    assert!(!trusted.contains("10.0.0.1".parse().unwrap()));
    assert!(!trusted.contains("::2".parse().unwrap()));

    let list: TrustedProxies = "10.0.0.0/8, 2001:db8::/32 192.0.2.7,::ffff:172.16.0.0/108"
        .parse()
        .unwrap();
    assert_eq!(
        list.to_string(),
        "10.0.0.0/8, 2001:db8::/32, 192.0.2.7/32, 172.16.0.0/12"
    );
    for yes in [
        "10.0.0.0",
        "10.255.255.255",
        "2001:db8:ffff::1",
        "192.0.2.7",
        "172.31.1.1",
    ] {
        assert!(list.contains(yes.parse().unwrap()), "{yes}");
    }
    for no in [
        "11.0.0.0",
        "9.255.255.255",
        "2001:db9::",
        "192.0.2.8",
        "127.0.0.1",
        "::1",
    ] {
        assert!(!list.contains(no.parse().unwrap()), "{no}");
    }
    let everything: TrustedProxies = "0.0.0.0/0, ::/0".parse().unwrap();
    assert!(everything.contains("203.0.113.9".parse().unwrap()));
    assert!(everything.contains("fe80::1".parse().unwrap()));
    assert!(TrustedProxies::none().is_empty());
    assert!(!TrustedProxies::none().contains("127.0.0.1".parse().unwrap()));

    for bad in [
        "10.0.0.0/33",
        "::/129",
        "10.0.0.1/8",
        "10.0.0.0/",
        "10.0.0/8",
        "x",
        "10.0.0.0/+8",
        "::1/0128",
    ] {
        let err = TrustedProxies::none().trust(bad).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{bad}");
    }
}

/// A connected pair on loopback: the client's end and the server's.
fn pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    (client, server)
}

fn intake(trusted: &str, timeout: Duration) -> Intake {
    ProxyProtocol::new(trusted.parse().unwrap())
        .header_timeout(timeout)
        .intake(v4("127.0.0.1:5000"))
}

/// Reads through the intake as the socket does: its own bytes first, then the socket's.
fn read_through(intake: &Intake, server: &TcpStream, wait: Wait) -> io::Result<Vec<u8>> {
    let mut buf = [0u8; 256];
    if let Some(n) = intake.before_read(server.as_fd(), false, wait, &mut buf)? {
        return Ok(buf[..n].to_vec());
    }
    let n = recv(server.as_raw_fd(), &mut buf, MsgFlags::MSG_DONTWAIT)?;
    Ok(buf[..n].to_vec())
}

/// Polls `read` until it returns something other than `WouldBlock`, within 5 seconds,
/// waiting for `server` to be readable in between.
fn until_ready(
    server: &TcpStream,
    mut read: impl FnMut() -> io::Result<Vec<u8>>,
) -> io::Result<Vec<u8>> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match read() {
            Err(err) if err.kind() == io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                readable_within(server.as_fd(), Some(Duration::from_millis(20))).unwrap();
            }
            other => return other,
        }
    }
}

#[test]
fn a_header_in_pieces_is_consumed_exactly() {
    let (mut client, server) = pair();
    let intake = intake("127.0.0.0/8", Duration::from_secs(5));
    let header = b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n";
    for chunk in header[..20].chunks(7) {
        client.write_all(chunk).unwrap();
        // Each piece is taken from the socket: nothing is left for epoll to report again.
        let err = until_pending_taken(&intake, &server);
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
    }
    assert!(intake.deadline().is_some());
    client.write_all(&header[20..]).unwrap();
    client.write_all(b"hello").unwrap();
    let first = until_ready(&server, || read_through(&intake, &server, Wait::No)).unwrap();
    assert_eq!(first, b"hello");
    assert_eq!(intake.source(), Some(v4("192.0.2.1:56324")));
    assert_eq!(intake.deadline(), None);
}

/// Runs the intake until the socket holds nothing more; its `WouldBlock`.
fn until_pending_taken(intake: &Intake, server: &TcpStream) -> io::Error {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let err = read_through(intake, server, Wait::No).unwrap_err();
        let mut probe = [0u8; 1];
        let left = recv(
            server.as_raw_fd(),
            &mut probe,
            MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT,
        );
        if matches!(left, Err(nix::errno::Errno::EAGAIN)) || Instant::now() > deadline {
            return err;
        }
    }
}

#[test]
fn a_blocking_read_waits_for_the_header_and_its_deadline() {
    let (mut client, server) = pair();
    let intake = intake("127.0.0.0/8", Duration::from_millis(300));
    client.write_all(b"PROXY TCP4 192.0.2.1 ").unwrap();
    let started = Instant::now();
    let err = read_through(&intake, &server, Wait::Yes(None)).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionAborted);
    assert!(ProxyFailure::is_cause_of(&err));
    assert!(started.elapsed() >= Duration::from_millis(250));
    // Refused for good.
    let again = read_through(&intake, &server, Wait::No).unwrap_err();
    assert_eq!(again.kind(), io::ErrorKind::ConnectionAborted);

    // The socket's read timeout, shorter, is a WouldBlock as for any read.
    let (mut client, server) = pair();
    let intake = self::intake("127.0.0.0/8", Duration::from_secs(5));
    let err = read_through(&intake, &server, Wait::Yes(Some(Duration::from_millis(50))));
    assert_eq!(err.unwrap_err().kind(), io::ErrorKind::WouldBlock);
    client
        .write_all(b"\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00ping")
        .unwrap();
    let data = read_through(&intake, &server, Wait::Yes(None)).unwrap();
    assert_eq!(data, b"ping");
    assert_eq!(intake.source(), None);
}

#[test]
fn a_trusted_peer_without_a_header_is_refused() {
    let (mut client, server) = pair();
    let intake = intake("127.0.0.0/8", Duration::from_secs(5));
    client.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    let err = until_ready(&server, || read_through(&intake, &server, Wait::No)).unwrap_err();
    assert!(ProxyFailure::is_cause_of(&err), "{err}");
}

#[test]
fn an_untrusted_peer_is_read_as_usual_or_refused() {
    // No header: nothing consumed, nothing waited for.
    let (mut client, server) = pair();
    let intake = intake("10.0.0.0/8", Duration::from_secs(5));
    assert_eq!(intake.deadline(), None);
    client.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let data = until_ready(&server, || read_through(&intake, &server, Wait::No)).unwrap();
    assert_eq!(data, b"GET / HTTP/1.0\r\n\r\n");

    // The start of a signature, then not: the bytes taken come back first.
    let (mut client, server) = pair();
    let intake = self::intake("10.0.0.0/8", Duration::from_secs(5));
    client.write_all(b"PRO").unwrap();
    until_pending_taken(&intake, &server);
    assert!(!intake.holds_input());
    client.write_all(b"PFIND / HTTP/1.1\r\n").unwrap();
    let first = until_ready(&server, || read_through(&intake, &server, Wait::No)).unwrap();
    assert_eq!(first, b"PRO");
    let rest = until_ready(&server, || read_through(&intake, &server, Wait::No)).unwrap();
    assert_eq!(rest, b"PFIND / HTTP/1.1\r\n");

    // A small read takes the replayed bytes a few at a time.
    let (mut client, server) = pair();
    let intake = self::intake("10.0.0.0/8", Duration::from_secs(5));
    client.write_all(b"\r\n").unwrap();
    until_pending_taken(&intake, &server);
    client.write_all(b"GET").unwrap();
    let mut one = [0u8; 1];
    let deadline = Instant::now() + Duration::from_secs(5);
    let got = loop {
        match intake.before_read(server.as_fd(), false, Wait::No, &mut one) {
            Ok(Some(n)) => break n,
            Ok(None) => panic!("the bytes taken were skipped"),
            Err(err) if err.kind() == io::ErrorKind::WouldBlock && Instant::now() < deadline => {}
            Err(err) => panic!("{err}"),
        }
    };
    assert_eq!((got, one[0]), (1, b'\r'));
    assert!(intake.holds_input());
    let mut rest = [0u8; 8];
    let n = intake
        .before_read(server.as_fd(), false, Wait::No, &mut rest)
        .unwrap();
    assert_eq!((n, &rest[..1]), (Some(1), &b"\n"[..]));
    assert!(!intake.holds_input());

    // A whole signature: refused.
    let (mut client, server) = pair();
    let intake = self::intake("10.0.0.0/8", Duration::from_secs(5));
    client
        .write_all(b"PROXY TCP4 192.0.2.1 198.51.100.2 1 2\r\n")
        .unwrap();
    let err = until_ready(&server, || read_through(&intake, &server, Wait::No)).unwrap_err();
    assert!(ProxyFailure::is_cause_of(&err), "{err}");

    // The end of the stream within a signature's start: those bytes, then the end.
    let (mut client, server) = pair();
    let intake = self::intake("10.0.0.0/8", Duration::from_secs(5));
    client.write_all(b"PR").unwrap();
    until_pending_taken(&intake, &server);
    client.shutdown(std::net::Shutdown::Write).unwrap();
    let data = until_ready(&server, || read_through(&intake, &server, Wait::No)).unwrap();
    assert_eq!(data, b"PR");
    assert_eq!(read_through(&intake, &server, Wait::No).unwrap(), b"");
}
