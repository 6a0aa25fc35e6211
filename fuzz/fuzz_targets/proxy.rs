//! Fuzzes the PROXY protocol parser (`socketserver::proxy::parse`, versions 1 and 2) and the
//! signature check that tells a header from a request. Checks: a header lies within the
//! input and the length caps (107 bytes for version 1, 16 + 4096 for version 2), parses the
//! same from its own bytes and with anything after it, and is incomplete one byte short; a
//! refusal stays a refusal whatever follows; a header starts with a signature.
#![no_main]

use libfuzzer_sys::fuzz_target;
use socketserver::proxy::{
    parse, starts_with_signature, ParseError, MAX_HEADER_LEN, V1_MAX_LEN, V2_SIGNATURE,
};

fuzz_target!(|data: &[u8]| {
    let parsed = parse(data);
    let longer = [data, b"\r\n\r\n\0\r\nQUIT\n!".as_slice(), data].concat();
    match parsed {
        Ok(header) => {
            assert!(header.len <= data.len(), "{header:?} past the input");
            assert!(header.len <= MAX_HEADER_LEN, "{header:?} past the cap");
            assert_eq!(header.source.is_some(), header.destination.is_some());
            match header.version {
                1 => {
                    assert!(header.len <= V1_MAX_LEN, "{header:?}");
                    assert!(data[..header.len].starts_with(b"PROXY "));
                    assert!(data[..header.len].ends_with(b"\r\n"));
                }
                2 => {
                    assert!(header.len >= 16 && data.starts_with(&V2_SIGNATURE));
                    let payload = u16::from_be_bytes([data[14], data[15]]) as usize;
                    assert_eq!(header.len, 16 + payload);
                }
                v => panic!("version {v}"),
            }
            assert_eq!(parse(&data[..header.len]), Ok(header));
            assert_eq!(parse(&longer), Ok(header));
            assert_eq!(
                parse(&data[..header.len - 1]),
                Err(ParseError::Incomplete),
                "{header:?} one byte short"
            );
            assert_eq!(starts_with_signature(data), Some(true));
        }
        Err(ParseError::Invalid(why)) => {
            assert!(
                matches!(parse(&longer), Err(ParseError::Invalid(_))),
                "{why}, then not with more input"
            );
        }
        Err(ParseError::Incomplete) => {
            assert!(data.len() < MAX_HEADER_LEN, "incomplete at {} bytes", data.len());
            assert_ne!(starts_with_signature(data), Some(false));
        }
    }
    if starts_with_signature(data) == Some(false) {
        assert!(matches!(parsed, Err(ParseError::Invalid(_))), "{parsed:?}");
    }
});
