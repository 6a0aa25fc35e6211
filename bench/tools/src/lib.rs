//! What the benchmark's clients share: keep-alive `GET`s and reading their responses, which
//! every server here frames with `Content-Length`.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;

/// Sends `request` on `stream` and reads the whole response into `body`; returns its status.
pub fn get(
    stream: &mut BufReader<TcpStream>,
    request: &[u8],
    body: &mut Vec<u8>,
) -> io::Result<u16> {
    stream.get_mut().write_all(request)?;
    read_response(stream, body)
}

/// A keep-alive `GET` for `path`, as wrk sends it.
pub fn request(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").into_bytes()
}

/// Reads one response from a blocking socket; returns the status and leaves the body in
/// `body`.
pub fn read_response(stream: &mut BufReader<TcpStream>, body: &mut Vec<u8>) -> io::Result<u16> {
    let mut line = String::new();
    if stream.read_line(&mut line)? == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed before a response",
        ));
    }
    let status = line
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| invalid(format!("bad status line {line:?}")))?;
    let mut length = None;
    loop {
        line.clear();
        if stream.read_line(&mut line)? == 0 {
            return Err(invalid("connection closed in the head".into()));
        }
        let field = line.trim_end();
        if field.is_empty() {
            break;
        }
        if let Some((name, value)) = field.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse::<u64>().ok();
            }
        }
    }
    let length = length.ok_or_else(|| invalid("response without Content-Length".into()))?;
    body.clear();
    stream.by_ref().take(length).read_to_end(body)?;
    if body.len() as u64 != length {
        return Err(invalid("connection closed in the body".into()));
    }
    Ok(status)
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// Whether `received` holds a whole response: `None` while it does not, else its status (or
/// why it cannot be one). For reading many connections without blocking on any of them.
pub fn parse_response(received: &[u8]) -> Option<io::Result<u16>> {
    let end = received.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&received[..end]);
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1).and_then(|c| c.parse().ok());
    let length = lines
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.trim().parse::<usize>().ok());
    match (status, length) {
        (Some(status), Some(length)) => (received.len() >= end + length).then_some(Ok(status)),
        (None, _) => Some(Err(invalid("bad status line".into()))),
        (_, None) => Some(Err(invalid("response without Content-Length".into()))),
    }
}
