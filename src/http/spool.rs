//! A request body read ahead, whole, before its handler runs: in memory while it is small,
//! then in an unnamed temporary file.
//!
//! The event loop reads bodies this way as they arrive, so that neither its own thread nor
//! a worker ever waits for a slow client: the handler runs once the body is all here and
//! reads it from memory or the page cache (nginx's `client_body_buffer_size` and temporary
//! files). CGI spools a body it must measure before the script starts (`CONTENT_LENGTH`).

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};

/// Bytes kept in memory before the body moves to a file.
pub(crate) const MEMORY_LIMIT: usize = 64 * 1024;

/// A body being written, then read.
#[derive(Debug, Default)]
pub(crate) struct Spool {
    /// The body while it is small; once it is in a file, what waits to be written there
    /// (so that a body of tiny chunks costs a write per 64 KiB, not per chunk).
    memory: Vec<u8>,
    file: Option<File>,
    len: u64,
    /// Reading: where the next read starts.
    read_at: u64,
    reading: bool,
}

impl Spool {
    pub(crate) fn new() -> Self {
        Spool::default()
    }

    /// Bytes written.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Appends `data`; a temporary file takes over past [`MEMORY_LIMIT`]. Fails as the
    /// disk does (`StorageFull` when it is full).
    pub(crate) fn write(&mut self, data: &[u8]) -> io::Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        if self.file.is_none() && self.memory.len() + data.len() > MEMORY_LIMIT {
            self.file = Some(tempfile::tempfile()?);
        }
        self.memory.extend_from_slice(data);
        self.len += data.len() as u64;
        if self.memory.len() >= MEMORY_LIMIT {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes what waits in memory to the file, if the body is in one.
    fn flush(&mut self) -> io::Result<()> {
        if let Some(file) = &mut self.file {
            file.write_all(&self.memory)?;
            self.memory.clear();
        }
        Ok(())
    }

    /// Bytes left to read.
    pub(crate) fn remaining(&self) -> u64 {
        self.len - self.read_at
    }

    /// The file holding the body, positioned at the next byte to read, if the body is in
    /// one (a CGI script can read it as its standard input).
    pub(crate) fn file(&mut self) -> io::Result<Option<&File>> {
        self.flush()?;
        if let Some(file) = &mut self.file {
            file.seek(SeekFrom::Start(self.read_at))?;
        }
        Ok(self.file.as_ref())
    }

    /// The unread part of the body, if it is in memory.
    pub(crate) fn memory(&self) -> Option<&[u8]> {
        match self.file {
            None => Some(&self.memory[self.read_at as usize..]),
            Some(_) => None,
        }
    }
}

impl Read for Spool {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let remaining = self.remaining();
        let n = match &mut self.file {
            None => {
                let rest = &self.memory[self.read_at as usize..];
                let n = rest.len().min(out.len());
                out[..n].copy_from_slice(&rest[..n]);
                n
            }
            Some(file) => {
                if !self.reading {
                    file.write_all(&self.memory)?;
                    self.memory.clear();
                    file.seek(SeekFrom::Start(self.read_at))?;
                    self.reading = true;
                }
                let want = out.len().min(remaining.min(usize::MAX as u64) as usize);
                file.read(&mut out[..want])?
            }
        };
        self.read_at += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_bodies_stay_in_memory_large_ones_move_to_a_file() {
        let mut small = Spool::new();
        small.write(b"abc").unwrap();
        assert_eq!(small.memory(), Some(&b"abc"[..]));
        let mut read = String::new();
        small.read_to_string(&mut read).unwrap();
        assert_eq!(read, "abc");

        let mut large = Spool::new();
        let piece = vec![7u8; MEMORY_LIMIT / 2 + 1];
        large.write(&piece).unwrap();
        large.write(&piece).unwrap();
        large.write(b"end").unwrap();
        assert!(large.memory().is_none());
        assert_eq!(large.len(), 2 * piece.len() as u64 + 3);
        let mut all = Vec::new();
        large.read_to_end(&mut all).unwrap();
        assert_eq!(all.len() as u64, large.len());
        assert!(all.ends_with(b"\x07end"));
        assert_eq!(large.remaining(), 0);
    }

    #[test]
    fn tiny_writes_past_the_limit_keep_their_order() {
        let mut spool = Spool::new();
        let mut expected = Vec::new();
        for i in 0..(3 * MEMORY_LIMIT / 7) {
            let piece = [(i % 251) as u8; 7];
            spool.write(&piece).unwrap();
            expected.extend_from_slice(&piece);
        }
        assert!(spool.memory().is_none());
        let mut all = Vec::new();
        spool.read_to_end(&mut all).unwrap();
        assert!(all == expected, "the spool changed the body");
    }
}
