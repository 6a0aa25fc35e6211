//! Output written for a client and not sent yet: bytes, then perhaps part of a file.
//!
//! A file is sent with `sendfile`: the kernel copies it from the page cache to the socket,
//! so a large file costs neither a copy through user space nor memory per connection.

use std::fs::File;
use std::io::{self, IoSlice};

use nix::sys::sendfile::sendfile64;
use nix::sys::socket::MsgFlags;

use crate::connection::Connection;

/// Largest piece of a file handed to one `sendfile`.
const SENDFILE_CHUNK: u64 = 1 << 30;

#[derive(Debug, Default)]
pub(crate) struct Output {
    /// Sent first.
    pub(crate) bytes: Vec<u8>,
    /// Then this part of a file.
    pub(crate) file: Option<FileRange>,
}

/// `length` bytes of `file` from `offset`.
#[derive(Debug)]
pub(crate) struct FileRange {
    pub(crate) file: File,
    pub(crate) offset: u64,
    pub(crate) length: u64,
}

impl Output {
    pub(crate) fn is_empty(&self) -> bool {
        self.bytes.is_empty() && self.file.is_none()
    }

    /// Sends what the socket takes now; `true` once everything is sent.
    pub(crate) fn send_now(&mut self, connection: &Connection) -> io::Result<bool> {
        let flags = self.more() | MsgFlags::MSG_DONTWAIT;
        while !self.bytes.is_empty() {
            match connection.send_with(&[IoSlice::new(&self.bytes)], flags) {
                Ok(n) => {
                    self.bytes.drain(..n);
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err),
            }
        }
        let Some(range) = &mut self.file else {
            return Ok(true);
        };
        // `sendfile` has no flag for "do not wait": the socket waits for nothing meanwhile.
        connection.set_nonblocking(true)?;
        let sent = send_file(connection, range);
        connection.set_nonblocking(false)?;
        match sent {
            Ok(()) => {
                self.file = None;
                Ok(true)
            }
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// Bytes followed by a file are sent with `MSG_MORE`: they leave in the file's first
    /// segments instead of a small one of their own, which the client would acknowledge
    /// late (nginx's `tcp_nopush`; a 1 MiB file went from 0.55x to 1x nginx's rate).
    fn more(&self) -> MsgFlags {
        match self.file {
            // nix names no MSG_MORE.
            Some(_) => MsgFlags::from_bits_retain(libc::MSG_MORE),
            None => MsgFlags::empty(),
        }
    }

    /// Sends everything, waiting for the socket (up to its write timeout).
    pub(crate) fn send_all(&mut self, connection: &Connection) -> io::Result<()> {
        let flags = self.more();
        let mut sent = 0;
        while sent < self.bytes.len() {
            match connection.send_with(&[IoSlice::new(&self.bytes[sent..])], flags) {
                Ok(0) => {
                    self.bytes.drain(..sent);
                    return Err(io::ErrorKind::WriteZero.into());
                }
                Ok(n) => sent += n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => {
                    self.bytes.drain(..sent);
                    return Err(err);
                }
            }
        }
        self.bytes.clear();
        if let Some(mut range) = self.file.take() {
            send_file(connection, &mut range)?;
        }
        Ok(())
    }
}

/// Sends the range with `sendfile` until it is all sent or the socket refuses
/// (`WouldBlock`: a non-blocking socket is full, or a blocking one timed out).
pub(crate) fn send_file(connection: &Connection, range: &mut FileRange) -> io::Result<()> {
    while range.length > 0 {
        let mut offset = i64::try_from(range.offset)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "file offset too large"))?;
        let count = range.length.min(SENDFILE_CHUNK) as usize;
        match sendfile64(connection, &range.file, Some(&mut offset), count) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the file ended before its promised length",
                ))
            }
            Ok(n) => {
                range.offset += n as u64;
                range.length -= n as u64;
            }
            Err(nix::errno::Errno::EINTR) => {}
            Err(errno) => return Err(errno.into()),
        }
    }
    Ok(())
}
