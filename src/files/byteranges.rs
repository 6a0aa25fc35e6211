//! The body of a 206 that answers several ranges: `multipart/byteranges` (RFC 9110
//! section 14.6, in the multipart syntax of RFC 2046).
//!
//! Each part is a delimiter line, its own `Content-Type` (the file's) and `Content-Range`,
//! a blank line and the bytes; after the last part comes the closing delimiter. The heads
//! are made before anything is sent, so the response carries the exact `Content-Length`
//! of the whole body and the connection can stay open after it.

use std::hash::{BuildHasher, RandomState};
use std::io;
use std::sync::OnceLock;

use super::conditional::ByteRange;

/// The layout of one `multipart/byteranges` body: the head before each part's bytes and
/// the delimiter after the last.
#[derive(Debug)]
pub(crate) struct Multipart {
    boundary: String,
    parts: Vec<(String, ByteRange)>,
    close: String,
    length: u64,
}

impl Multipart {
    /// The body for `ranges` (in the order they go out) of a file of `len` bytes and media
    /// type `content_type`, its parts delimited by `boundary`.
    pub(crate) fn new(
        boundary: String,
        ranges: &[ByteRange],
        content_type: &str,
        len: u64,
    ) -> io::Result<Self> {
        // The delimiter starts with a CRLF, even the first (where it ends an empty
        // preamble), so that every part head has the same form.
        let parts: Vec<(String, ByteRange)> = ranges
            .iter()
            .map(|range| {
                let head = format!(
                    "\r\n--{boundary}\r\nContent-Type: {content_type}\r\n\
                     Content-Range: bytes {}-{}/{len}\r\n\r\n",
                    range.start, range.end
                );
                (head, *range)
            })
            .collect();
        let close = format!("\r\n--{boundary}--\r\n");
        let length = parts
            .iter()
            .try_fold(close.len() as u64, |total, (head, range)| {
                total
                    .checked_add(head.len() as u64)?
                    .checked_add(range.len())
            })
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "ranges too long"))?;
        Ok(Multipart {
            boundary,
            parts,
            close,
            length,
        })
    }

    /// The response's `Content-Type`.
    pub(crate) fn content_type(&self) -> String {
        format!("multipart/byteranges; boundary={}", self.boundary)
    }

    /// The exact length of the whole body.
    pub(crate) fn content_length(&self) -> u64 {
        self.length
    }

    /// Each part's head, with the range of the file that follows it.
    pub(crate) fn parts(&self) -> impl Iterator<Item = (&[u8], ByteRange)> {
        self.parts
            .iter()
            .map(|(head, range)| (head.as_bytes(), *range))
    }

    /// The closing delimiter, after the last part.
    pub(crate) fn close(&self) -> &[u8] {
        self.close.as_bytes()
    }
}

/// The boundary for the version of a file whose entity tag is `etag`: 32 hex digits, a
/// keyed hash (SipHash, as `HashMap` uses) under a random key the process draws once.
///
/// The boundary must not occur in any part. One of 128 bits will not by chance, and whoever
/// writes a file cannot learn it before the file is written, as writing changes the tag.
/// Being the same for every answer about the same version, HEAD gets the headers GET does,
/// and a file from memory the headers of one from disk.
pub(crate) fn boundary(etag: &str) -> String {
    static KEY: OnceLock<RandomState> = OnceLock::new();
    let key = KEY.get_or_init(RandomState::new);
    format!(
        "{:016x}{:016x}",
        key.hash_one((etag, 1u8)),
        key.hash_one((etag, 2u8))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(start: u64, end: u64) -> ByteRange {
        ByteRange { start, end }
    }

    /// The body for `ranges` of `file`, assembled as the handler sends it.
    fn assemble(multipart: &Multipart, file: &[u8]) -> Vec<u8> {
        let mut body = Vec::new();
        for (head, range) in multipart.parts() {
            body.extend_from_slice(head);
            body.extend_from_slice(&file[range.start as usize..=range.end as usize]);
        }
        body.extend_from_slice(multipart.close());
        body
    }

    #[test]
    fn the_body_is_as_rfc_9110_shows_it() {
        let file: Vec<u8> = (0..100u8).collect();
        let ranges = [range(20, 29), range(0, 9)];
        let multipart = Multipart::new("SEP".into(), &ranges, "application/pdf", 100).unwrap();
        assert_eq!(
            multipart.content_type(),
            "multipart/byteranges; boundary=SEP"
        );
        let mut expected = b"\r\n--SEP\r\nContent-Type: application/pdf\r\n\
                            Content-Range: bytes 20-29/100\r\n\r\n"
            .to_vec();
        expected.extend_from_slice(&file[20..30]);
        expected.extend_from_slice(
            b"\r\n--SEP\r\nContent-Type: application/pdf\r\nContent-Range: bytes 0-9/100\r\n\r\n",
        );
        expected.extend_from_slice(&file[0..10]);
        expected.extend_from_slice(b"\r\n--SEP--\r\n");
        let body = assemble(&multipart, &file);
        assert_eq!(body, expected);
        assert_eq!(multipart.content_length(), body.len() as u64);
    }

    #[test]
    fn the_length_is_exact_for_long_files() {
        let len = u64::MAX / 2;
        let ranges = [range(0, 0), range(len - 10, len - 1)];
        let multipart = Multipart::new("b".repeat(32), &ranges, "text/plain", len).unwrap();
        let heads: u64 = multipart.parts().map(|(head, _)| head.len() as u64).sum();
        assert_eq!(
            multipart.content_length(),
            heads + 11 + multipart.close().len() as u64
        );
        // A sum past u64::MAX is an error, not a wrapped length.
        let huge = [range(0, u64::MAX - 2), range(u64::MAX - 1, u64::MAX - 1)];
        assert!(Multipart::new("b".into(), &huge, "x/y", u64::MAX).is_err());
    }

    #[test]
    fn a_boundary_is_hex_and_the_same_for_a_version_only() {
        let first = boundary("\"1-2-3\"");
        assert_eq!(first.len(), 32);
        assert!(first.bytes().all(|b| b.is_ascii_hexdigit()), "{first}");
        assert_eq!(boundary("\"1-2-3\""), first);
        assert_ne!(boundary("\"1-2-4\""), first);
        assert_ne!(boundary(""), boundary("\"\""));
    }
}
