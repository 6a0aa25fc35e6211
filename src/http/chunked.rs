//! Decoding `Transfer-Encoding: chunked` as bytes arrive: the one decoder of the body a
//! handler reads as it comes and of the body the event loop reads ahead.
//!
//! It is fed whatever input is at hand and never waits: each call takes what it can from
//! the front of the input and says how much it took and which part of it was body data.
//! Framing lines are collected across calls (so a size line split between two reads is
//! fine) up to their limits.

use http::StatusCode;

/// Longest chunk-size line (size, extensions and line end).
const MAX_CHUNK_LINE: usize = 4096;
/// Largest trailer section, which is read and discarded.
const MAX_TRAILER_BYTES: usize = 16 * 1024;

/// Why a chunked body is refused: the status to answer, and a message for the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Malformed {
    pub(crate) status: StatusCode,
    pub(crate) message: &'static str,
}

impl Malformed {
    fn bad(message: &'static str) -> Self {
        Malformed {
            status: StatusCode::BAD_REQUEST,
            message,
        }
    }
}

/// What one call of [`ChunkedDecoder::decode`] took from the front of its input.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Decoded<'i> {
    /// Bytes of input consumed, framing and data.
    pub(crate) consumed: usize,
    /// The body data among them (empty when only framing was consumed).
    pub(crate) data: &'i [u8],
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Collecting a chunk-size line.
    Size,
    /// Inside a chunk: this many data bytes are left.
    Data(u64),
    /// After a chunk's data: its line end.
    DataEnd,
    /// After the last chunk: trailer lines until an empty one.
    Trailers,
    Done,
}

/// The state of one chunked body being decoded.
#[derive(Debug)]
pub(crate) struct ChunkedDecoder {
    state: State,
    /// The framing line collected so far.
    line: Vec<u8>,
    /// Data bytes decoded so far.
    received: u64,
    /// Largest body accepted; more is refused with 413.
    max_size: u64,
    trailer_bytes: usize,
}

impl ChunkedDecoder {
    pub(crate) fn new(max_size: u64) -> Self {
        ChunkedDecoder {
            state: State::Size,
            line: Vec::new(),
            received: 0,
            max_size,
            trailer_bytes: 0,
        }
    }

    /// Whether the last chunk and the trailers have been read.
    pub(crate) fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Takes what it can from the front of `input`. Consumes nothing only when `input` is
    /// empty or the body is done; call again with the rest.
    pub(crate) fn decode<'i>(&mut self, input: &'i [u8]) -> Result<Decoded<'i>, Malformed> {
        if let State::Data(remaining) = self.state {
            let n = input.len().min(remaining.min(usize::MAX as u64) as usize);
            self.received += n as u64;
            let left = remaining - n as u64;
            self.state = if left == 0 {
                State::DataEnd
            } else {
                State::Data(left)
            };
            return Ok(Decoded {
                consumed: n,
                data: &input[..n],
            });
        }
        if self.state == State::Done {
            return Ok(Decoded {
                consumed: 0,
                data: &[],
            });
        }
        let limit = match self.state {
            State::Size => MAX_CHUNK_LINE,
            // The CRLF after the data, nothing else.
            State::DataEnd => 2,
            _ => MAX_TRAILER_BYTES - self.trailer_bytes,
        };
        let (take, complete) = match input.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (input.len(), false),
        };
        if self.line.len() + take > limit {
            return Err(Malformed::bad(match self.state {
                State::Size => "chunk size line too long",
                State::DataEnd => "chunk data longer than its size",
                _ => "trailer section too long",
            }));
        }
        self.line.extend_from_slice(&input[..take]);
        if complete {
            self.end_line()?;
        }
        Ok(Decoded {
            consumed: take,
            data: &[],
        })
    }

    /// Acts on the framing line just completed.
    fn end_line(&mut self) -> Result<(), Malformed> {
        let line = std::mem::take(&mut self.line);
        let text = trim_line_end(&line);
        match self.state {
            State::Size => {
                let size = parse_chunk_size(text)?;
                if size == 0 {
                    self.state = State::Trailers;
                } else if self.received.saturating_add(size) > self.max_size {
                    return Err(Malformed {
                        status: StatusCode::PAYLOAD_TOO_LARGE,
                        message: "the request body is larger than the server accepts",
                    });
                } else {
                    self.state = State::Data(size);
                }
            }
            State::DataEnd if text.is_empty() => self.state = State::Size,
            State::DataEnd => return Err(Malformed::bad("chunk data longer than its size")),
            State::Trailers => {
                self.trailer_bytes += line.len();
                if text.is_empty() {
                    self.state = State::Done;
                } else if !is_field_line(text) {
                    return Err(Malformed::bad("malformed trailer field"));
                }
            }
            State::Data(_) | State::Done => unreachable!("no framing line in this state"),
        }
        // Keep the allocation for the next line.
        self.line = line;
        self.line.clear();
        Ok(())
    }
}

/// `size [BWS] [; extensions]`, hexadecimal, at most 16 digits (RFC 9112 7.1.1). Only
/// spaces and tabs may follow the size, and no control character may hide in an
/// extension: a proxy in front may read a stray CR or NUL differently, and two readings of
/// one body are the stuff of request smuggling.
fn parse_chunk_size(line: &[u8]) -> Result<u64, Malformed> {
    let digits_end = line
        .iter()
        .position(|b| !b.is_ascii_hexdigit())
        .unwrap_or(line.len());
    let (digits, rest) = line.split_at(digits_end);
    let blank = rest
        .iter()
        .take_while(|&&b| b == b' ' || b == b'\t')
        .count();
    let rest = &rest[blank..];
    let valid_rest = rest.is_empty()
        || (rest.starts_with(b";") && rest.iter().all(|&b| b == b'\t' || !b.is_ascii_control()));
    if digits.is_empty() || digits.len() > 16 || !valid_rest {
        return Err(Malformed::bad("malformed chunk size"));
    }
    let digits = std::str::from_utf8(digits).unwrap_or("");
    u64::from_str_radix(digits, 16).map_err(|_| Malformed::bad("malformed chunk size"))
}

/// `name: value` with a token for name and no control character but tab.
fn is_field_line(line: &[u8]) -> bool {
    let Some(colon) = line.iter().position(|&b| b == b':') else {
        return false;
    };
    let name_ok = colon > 0
        && line[..colon]
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    name_ok
        && line[colon + 1..]
            .iter()
            .all(|&b| b == b'\t' || !b.is_ascii_control())
}

fn trim_line_end(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `input` fed in pieces of `step` bytes.
    fn decode_in_steps(input: &[u8], step: usize) -> Result<(Vec<u8>, usize), Malformed> {
        let mut decoder = ChunkedDecoder::new(1 << 20);
        let mut out = Vec::new();
        let mut offset = 0;
        while !decoder.is_done() && offset < input.len() {
            let end = (offset + step).min(input.len());
            let mut piece = &input[offset..end];
            while !piece.is_empty() && !decoder.is_done() {
                let decoded = decoder.decode(piece)?;
                out.extend_from_slice(decoded.data);
                piece = &piece[decoded.consumed..];
                offset += decoded.consumed;
            }
        }
        assert!(decoder.is_done(), "not done after {offset} bytes");
        Ok((out, offset))
    }

    #[test]
    fn decodes_whatever_the_pieces() {
        let body = b"3\r\nabc\r\n10;ext=1\r\n0123456789abcdef\r\n0\r\nX-T: 1\r\n\r\nNEXT";
        for step in [1, 2, 3, 7, 100] {
            let (data, consumed) = decode_in_steps(body, step).unwrap();
            assert_eq!(data, b"abc0123456789abcdef");
            assert_eq!(&body[consumed..], b"NEXT", "step {step}");
        }
    }

    #[test]
    fn bare_line_feeds_and_whitespace_before_extensions() {
        let (data, _) = decode_in_steps(b"3 ;x\nabc\n0\n\n", 1).unwrap();
        assert_eq!(data, b"abc");
    }

    #[test]
    fn refuses_malformed_framing() {
        for bad in [
            &b"x\r\n"[..],
            b"3\r\nabcd\r\n",
            b"11111111111111111\r\n",
            b"-1\r\n",
            b"3 x\r\n",
            b"\r\n",
            // Only spaces and tabs after the size; no control character in an extension.
            b"3\r\r\n",
            b"3\x0c\n",
            b"3;a=\rb\r\n",
            b"3;\x00\r\n",
            // A trailer is a field line.
            b"0\r\nnot a field\r\n",
            b"0\r\nX: a\x01b\r\n",
        ] {
            let mut decoder = ChunkedDecoder::new(1 << 20);
            let mut input = bad;
            let result = loop {
                match decoder.decode(input) {
                    Err(err) => break Err(err),
                    Ok(d) if d.consumed == 0 => break Ok(()),
                    Ok(d) => input = &input[d.consumed..],
                }
            };
            assert_eq!(
                result.map_err(|m| m.status),
                Err(StatusCode::BAD_REQUEST),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn refuses_a_body_over_the_limit_at_its_size_line() {
        let mut decoder = ChunkedDecoder::new(10);
        let err = decoder.decode(b"b\r\n").unwrap_err();
        assert_eq!(err.status, StatusCode::PAYLOAD_TOO_LARGE);
    }

    #[test]
    fn bounds_lines_split_across_calls() {
        let mut decoder = ChunkedDecoder::new(u64::MAX);
        let long = vec![b'0'; MAX_CHUNK_LINE];
        decoder.decode(&long[..MAX_CHUNK_LINE - 1]).unwrap();
        assert!(decoder.decode(b"00\r\n").is_err());
    }
}
