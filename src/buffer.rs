//! I/O buffers reused within a thread.
//!
//! A parked keep-alive connection gives its buffers back, so that ten thousand idle clients
//! cost no buffer memory; the next request on any connection of the thread takes one from
//! here instead of from the allocator.

use std::cell::RefCell;

/// Buffers kept per thread; more are freed.
const KEPT: usize = 64;

thread_local! {
    static FREE: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// A buffer of exactly `len` bytes (contents unspecified).
pub(crate) fn take(len: usize) -> Vec<u8> {
    let reused = FREE.with(|free| {
        let mut free = free.borrow_mut();
        let i = free.iter().rposition(|b| b.capacity() >= len)?;
        Some(free.swap_remove(i))
    });
    match reused {
        Some(mut buf) => {
            buf.resize(len, 0);
            buf.truncate(len);
            buf
        }
        None => vec![0; len],
    }
}

/// An empty vector with room for `capacity` bytes.
pub(crate) fn take_empty(capacity: usize) -> Vec<u8> {
    let mut buf = take(capacity);
    buf.clear();
    buf
}

/// Returns a buffer for reuse by this thread.
pub(crate) fn give(buf: Vec<u8>) {
    if buf.capacity() == 0 {
        return;
    }
    FREE.with(|free| {
        let mut free = free.borrow_mut();
        if free.len() < KEPT {
            free.push(buf);
        }
    });
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
    }
}
