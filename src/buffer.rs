//! I/O buffers reused within a thread.
//!
//! A parked keep-alive connection gives its buffers back, so that ten thousand idle clients
//! cost no buffer memory; the next request on any connection of the thread takes one from
//! here instead of from the allocator.

use std::cell::RefCell;

/// Buffers kept per thread and kind; more are freed.
const KEPT: usize = 64;

thread_local! {
    /// Read buffers, whose bytes are initialized (safe code reads into them).
    static FILLED: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
    /// Write buffers, kept empty: taking one costs no zeroing.
    static EMPTY: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

type Pool = std::thread::LocalKey<RefCell<Vec<Vec<u8>>>>;

fn reuse(pool: &'static Pool, capacity: usize) -> Option<Vec<u8>> {
    pool.with(|free| {
        let mut free = free.borrow_mut();
        let i = free.iter().rposition(|b| b.capacity() >= capacity)?;
        Some(free.swap_remove(i))
    })
}

fn keep(pool: &'static Pool, buf: Vec<u8>) {
    if buf.capacity() == 0 {
        return;
    }
    pool.with(|free| {
        let mut free = free.borrow_mut();
        if free.len() < KEPT {
            free.push(buf);
        }
    });
}

/// A buffer of exactly `len` bytes (contents unspecified), to read into.
pub(crate) fn take(len: usize) -> Vec<u8> {
    match reuse(&FILLED, len) {
        Some(mut buf) => {
            // Zeroes only what was never used: the buffers here were read buffers.
            buf.resize(len, 0);
            buf
        }
        None => vec![0; len],
    }
}

/// Returns a buffer from [`take`] for reuse by this thread.
pub(crate) fn give(buf: Vec<u8>) {
    keep(&FILLED, buf);
}

/// An empty vector with room for `capacity` bytes, to write into.
pub(crate) fn take_empty(capacity: usize) -> Vec<u8> {
    reuse(&EMPTY, capacity).unwrap_or_else(|| Vec::with_capacity(capacity))
}

/// Returns a buffer from [`take_empty`] for reuse by this thread.
pub(crate) fn give_empty(mut buf: Vec<u8>) {
    buf.clear();
    keep(&EMPTY, buf);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_given_buffer_is_taken_again() {
        let buf = take(1000);
        assert_eq!(buf.len(), 1000);
        let ptr = buf.as_ptr();
        give(buf);
        let again = take(500);
        assert_eq!(again.as_ptr(), ptr);
        assert!(again.len() == 500 && again.capacity() >= 1000);

        let mut out = take_empty(100);
        out.extend_from_slice(b"written");
        let ptr = out.as_ptr();
        give_empty(out);
        let again = take_empty(50);
        assert_eq!(again.as_ptr(), ptr);
        assert!(again.is_empty());
    }
}
