//! Output written for a client and not sent yet: bytes, then perhaps part of a file.
//!
//! Every write of a response to the socket goes through here, so that three things hold
//! whatever path the bytes take (buffered, written through, or left for the event loop to
//! send as the socket drains):
//!
//! - the bytes handed to the socket are counted, and a receipt can wait for a position in
//!   the stream, so the access log can say what was sent, not what was promised;
//! - the first failure (the client is gone, the socket timed out, a file shrank under
//!   `sendfile`) drops what was waiting and is remembered: later writes fail at once, and
//!   nothing is sent after the gap;
//! - a write that must not wait ([`Wait::Never`], the event loop's thread) never does: what
//!   the socket does not take stays in memory up to [`MEMORY_LIMIT`], beyond it in an
//!   unnamed temporary file that leaves by `sendfile` like any other.
//!
//! A file is sent with `sendfile`: the kernel copies it from the page cache to the socket,
//! so a large file costs neither a copy through user space nor memory per connection.

use std::collections::VecDeque;
use std::fmt;
use std::fs::File;
use std::io::{self, IoSlice, Write};

use nix::sys::sendfile::sendfile64;
use nix::sys::socket::MsgFlags;

use crate::buffer;
use crate::socket::StreamSocket;

/// Largest piece of a file handed to one `sendfile`.
const SENDFILE_CHUNK: u64 = 1 << 30;

/// Output that waits in memory for the socket; more waits in a temporary file.
pub(crate) const MEMORY_LIMIT: usize = 256 * 1024;

/// Whether a write may wait for the socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wait {
    /// On a thread of its own: wait, each wait bounded by the socket's write timeout.
    Yes,
    /// On the event loop's thread: send what the socket takes, keep the rest.
    Never,
}

#[derive(Default)]
pub(crate) struct Output {
    /// Sent first.
    pub(crate) bytes: Vec<u8>,
    /// Then this part of a file.
    pub(crate) file: Option<FileRange>,
    /// Bytes handed to the socket so far.
    sent: u64,
    /// Why sending failed, once it has: the connection carries nothing more.
    failure: Option<io::ErrorKind>,
    /// What to do once the stream has been sent up to a position, in order.
    receipts: VecDeque<Receipt>,
    /// The connection, if it is TLS: its session may hold records the socket has not
    /// taken, which are output still waiting like the bytes here.
    tls: Option<StreamSocket>,
}

/// `length` bytes of `file` from `offset`.
#[derive(Debug)]
pub(crate) struct FileRange {
    pub(crate) file: File,
    pub(crate) offset: u64,
    pub(crate) length: u64,
    /// A temporary file of output that did not fit in memory: more may be appended.
    spill: bool,
}

impl FileRange {
    /// `length` bytes of `file` from `offset`, to be sent as they are.
    pub(crate) fn new(file: File, offset: u64, length: u64) -> Self {
        FileRange {
            file,
            offset,
            length,
            spill: false,
        }
    }
}

/// Called with how far the output stream was sent, once it reached `position` or the
/// connection ended short of it.
struct Receipt {
    position: u64,
    then: Box<dyn FnOnce(u64) + Send>,
}

impl Output {
    /// The output of `connection`.
    pub(crate) fn new(connection: &StreamSocket) -> Self {
        let mut output = Output::default();
        output.tls = connection.is_tls().then(|| connection.clone());
        output
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.bytes.is_empty()
            && self.file.is_none()
            && !self.tls.as_ref().is_some_and(StreamSocket::has_unsent)
    }

    /// Whether sending failed: the client cannot get the rest of what was written.
    pub(crate) fn failed(&self) -> bool {
        self.failure.is_some()
    }

    /// Bytes handed to the socket so far.
    pub(crate) fn sent(&self) -> u64 {
        self.sent
    }

    /// A count that grows whenever the socket takes something of this output: its bytes,
    /// or the encrypted records of a TLS session that has taken them already.
    pub(crate) fn progress(&self) -> u64 {
        self.sent + self.tls.as_ref().map_or(0, StreamSocket::tls_sent)
    }

    /// Where the next byte written will be in the connection's output stream: what was
    /// sent plus what waits.
    pub(crate) fn position(&self) -> u64 {
        let waiting = self.file.as_ref().map_or(0, |f| f.length);
        self.sent + self.bytes.len() as u64 + waiting
    }

    /// Calls `then` with how far the stream was sent once it has been sent up to
    /// `position` (at once if it has), or when the connection ends short of it.
    pub(crate) fn when_sent(&mut self, position: u64, then: Box<dyn FnOnce(u64) + Send>) {
        if position <= self.sent {
            return then(self.sent);
        }
        self.receipts.push_back(Receipt { position, then });
    }

    /// Counts `n` more bytes as sent, and hands out the receipts they complete.
    fn advance(&mut self, n: u64) {
        self.sent += n;
        while self
            .receipts
            .front()
            .is_some_and(|r| r.position <= self.sent)
        {
            let receipt = self.receipts.pop_front().expect("a receipt");
            (receipt.then)(self.sent);
        }
    }

    /// Remembers `err` as the end of this connection's output, drops what waits, and
    /// returns the error.
    fn fail(&mut self, err: io::Error) -> io::Error {
        self.failure.get_or_insert(err.kind());
        self.drop_waiting();
        if let Some(tls) = &self.tls {
            tls.cut_tls();
        }
        err
    }

    fn drop_waiting(&mut self) {
        self.bytes.clear();
        self.file = None;
    }

    /// Gives up on what waits (the client stopped reading): the connection carries
    /// nothing more.
    pub(crate) fn abandon(&mut self) {
        let _ = self.fail(io::Error::new(
            io::ErrorKind::TimedOut,
            "the client stopped reading the response",
        ));
    }

    /// The error of a write after a failure.
    pub(crate) fn check(&self) -> io::Result<()> {
        match self.failure {
            None => Ok(()),
            Some(kind) => Err(io::Error::new(
                kind,
                "an earlier write to this connection failed",
            )),
        }
    }

    /// Sends what the socket takes now; `true` once everything is sent. After a failure
    /// nothing is sent: what was put in the buffer since is dropped.
    pub(crate) fn send_now(&mut self, connection: &StreamSocket) -> io::Result<bool> {
        if self.failed() {
            self.drop_waiting();
            return Ok(true);
        }
        match self.try_send_now(connection) {
            Ok(done) => Ok(done),
            Err(err) => Err(self.fail(err)),
        }
    }

    fn try_send_now(&mut self, connection: &StreamSocket) -> io::Result<bool> {
        let flags = self.more() | MsgFlags::MSG_DONTWAIT;
        while !self.bytes.is_empty() {
            match connection.send_with(&[IoSlice::new(&self.bytes)], flags) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.bytes.drain(..n);
                    self.advance(n as u64);
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err),
            }
        }
        let Some(range) = &mut self.file else {
            return connection.flush_unsent(MsgFlags::MSG_DONTWAIT);
        };
        let before = range.length;
        let result = send_file(connection, range, Wait::Never);
        let sent = before - range.length;
        self.advance(sent);
        match result {
            Ok(()) => {
                self.file = None;
                connection.flush_unsent(MsgFlags::MSG_DONTWAIT)
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

    /// Sends everything, waiting for the socket (each wait bounded by its write timeout).
    /// After a failure nothing is sent.
    pub(crate) fn send_all(&mut self, connection: &StreamSocket) -> io::Result<()> {
        if self.failed() {
            self.drop_waiting();
            return Ok(());
        }
        let flags = self.more();
        let mut written = 0;
        while written < self.bytes.len() {
            match connection.send_with(&[IoSlice::new(&self.bytes[written..])], flags) {
                Ok(0) => return Err(self.fail(io::ErrorKind::WriteZero.into())),
                Ok(n) => {
                    written += n;
                    self.advance(n as u64);
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(self.fail(err)),
            }
        }
        self.bytes.clear();
        if let Some(mut range) = self.file.take() {
            let before = range.length;
            let result = send_file(connection, &mut range, Wait::Yes);
            self.advance(before - range.length);
            result.map_err(|err| self.fail(err))?;
        }
        match connection.flush_unsent(MsgFlags::empty()) {
            Ok(true) => Ok(()),
            Ok(false) => Err(self.fail(crate::socket::unsent())),
            Err(err) => Err(self.fail(err)),
        }
    }

    /// Writes `data` after what waits. With [`Wait::Yes`] all of it is sent (and `data` is
    /// not copied); with [`Wait::Never`] what the socket does not take is kept, in memory
    /// or beyond [`MEMORY_LIMIT`] in a temporary file.
    pub(crate) fn write(
        &mut self,
        connection: &StreamSocket,
        data: &[u8],
        wait: Wait,
    ) -> io::Result<()> {
        self.check()?;
        if let (Some(range), Wait::Never) = (&mut self.file, wait) {
            if range.spill {
                // Behind output that waits in the spill file: it waits there too.
                match range.file.write_all(data) {
                    Ok(()) => range.length += data.len() as u64,
                    Err(err) => return Err(self.fail(err)),
                }
                return self.send_now(connection).map(drop);
            }
        }
        if self.file.is_some() {
            // Bytes go before a waiting file: what follows one waits until it has left.
            self.send_all(connection)?;
        }
        match wait {
            Wait::Yes => self.write_waiting(connection, data),
            Wait::Never => self.write_now(connection, data),
        }
    }

    /// Sends the buffer and `data`, waiting for the socket.
    fn write_waiting(&mut self, connection: &StreamSocket, data: &[u8]) -> io::Result<()> {
        let mut slices = [IoSlice::new(&self.bytes), IoSlice::new(data)];
        let mut slices: &mut [IoSlice<'_>] = &mut slices;
        let mut written = 0;
        let result = loop {
            if slices.is_empty() {
                break Ok(());
            }
            match connection.send_with(slices, MsgFlags::empty()) {
                Ok(0) => break Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    written += n as u64;
                    IoSlice::advance_slices(&mut slices, n);
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => break Err(err),
            }
        };
        self.advance(written);
        match result {
            Ok(()) => {
                self.bytes.clear();
                Ok(())
            }
            Err(err) => Err(self.fail(err)),
        }
    }

    /// Sends what the socket takes now of the buffer and then `data`, and keeps the rest.
    fn write_now(&mut self, connection: &StreamSocket, data: &[u8]) -> io::Result<()> {
        let buffered = self.bytes.len();
        let total = buffered + data.len();
        let mut written = 0;
        while written < total {
            let slices = if written < buffered {
                [IoSlice::new(&self.bytes[written..]), IoSlice::new(data)]
            } else {
                [IoSlice::new(&data[written - buffered..]), IoSlice::new(&[])]
            };
            match connection.send_now(&slices) {
                Ok(0) => return Err(self.fail(io::ErrorKind::WriteZero.into())),
                Ok(n) => {
                    written += n;
                    self.advance(n as u64);
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
                Err(err) => return Err(self.fail(err)),
            }
        }
        let rest = &data[written.saturating_sub(buffered)..];
        self.bytes.drain(..written.min(buffered));
        if self.bytes.len() + rest.len() <= MEMORY_LIMIT {
            self.bytes.extend_from_slice(rest);
            return Ok(());
        }
        // More than memory should hold for one client: the rest waits in a file.
        let spilled = spill(rest).map_err(|err| self.fail(err))?;
        self.file = Some(spilled);
        Ok(())
    }

    /// Sends `range` of a file after what waits; with [`Wait::Never`] what the socket
    /// does not take waits.
    pub(crate) fn send_file(
        &mut self,
        connection: &StreamSocket,
        range: FileRange,
        wait: Wait,
    ) -> io::Result<()> {
        self.check()?;
        if self.file.is_some() {
            // One file waits at a time: the next one waits for it to leave.
            self.send_all(connection)?;
        }
        self.file = Some(range);
        match wait {
            Wait::Yes => self.send_all(connection),
            Wait::Never => self.send_now(connection).map(drop),
        }
    }

    /// Gives the buffer's memory back while nothing waits in it (an idle connection).
    pub(crate) fn release_buffer(&mut self) {
        if self.bytes.is_empty() {
            buffer::give_empty(std::mem::take(&mut self.bytes));
        }
    }
}

/// `data` in a new unnamed temporary file, as a range to send.
fn spill(data: &[u8]) -> io::Result<FileRange> {
    let mut file = tempfile::tempfile()?;
    file.write_all(data)?;
    Ok(FileRange {
        file,
        offset: 0,
        length: data.len() as u64,
        spill: true,
    })
}

impl Drop for Output {
    /// The connection is over: what was not sent never will be.
    fn drop(&mut self) {
        for receipt in self.receipts.drain(..) {
            (receipt.then)(self.sent);
        }
    }
}

impl fmt::Debug for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Output")
            .field("bytes", &self.bytes.len())
            .field("file", &self.file)
            .field("sent", &self.sent)
            .field("failure", &self.failure)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

/// Sends the range until it is all sent or the socket refuses (`WouldBlock`: with
/// [`Wait::Never`] the socket is full, with [`Wait::Yes`] its write timeout passed): by
/// `sendfile`, or through the TLS session. A file that ends before the range does fails
/// with `UnexpectedEof`: the promised length cannot be kept, and the connection must close.
fn send_file(connection: &StreamSocket, range: &mut FileRange, wait: Wait) -> io::Result<()> {
    if connection.is_tls() {
        let flags = match wait {
            Wait::Yes => MsgFlags::empty(),
            Wait::Never => MsgFlags::MSG_DONTWAIT,
        };
        return copy_file(connection, range, flags);
    }
    if wait == Wait::Yes {
        return sendfile_all(connection, range);
    }
    // `sendfile` has no flag for "do not wait": the socket waits for nothing meanwhile.
    connection.set_nonblocking(true)?;
    let result = sendfile_all(connection, range);
    connection.set_nonblocking(false)?;
    result
}

/// `sendfile` until the range is sent or the socket refuses, waiting as the socket's mode
/// says.
fn sendfile_all(connection: &StreamSocket, range: &mut FileRange) -> io::Result<()> {
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

/// Largest piece of a file read for one write to a TLS session (four records).
const TLS_CHUNK: usize = 64 * 1024;

/// Sends the range through a TLS session, which `sendfile` cannot feed: read at the
/// range's offset, then written, until all is sent or the session refuses more
/// (`WouldBlock`). What the session did not take is read again next time.
fn copy_file(connection: &StreamSocket, range: &mut FileRange, flags: MsgFlags) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    let len = usize::try_from(range.length)
        .unwrap_or(usize::MAX)
        .min(TLS_CHUNK);
    let mut chunk = buffer::take(len);
    let result = (|| {
        while range.length > 0 {
            let want = usize::try_from(range.length)
                .unwrap_or(usize::MAX)
                .min(chunk.len());
            let n = match range.file.read_at(&mut chunk[..want], range.offset) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the file ended before its promised length",
                    ))
                }
                Ok(n) => n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(err),
            };
            match connection.send_with(&[IoSlice::new(&chunk[..n])], flags) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(sent) => {
                    range.offset += sent as u64;
                    range.length -= sent as u64;
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err),
            }
        }
        Ok(())
    })();
    buffer::give(chunk);
    result
}
