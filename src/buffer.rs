//! I/O buffers reused across requests.
//!
//! A parked keep-alive connection gives its buffers back, so that ten thousand idle clients
//! cost no buffer memory; the next request takes one from here instead of from the
//! allocator.
//!
//! Each thread keeps a few buffers of its own, without a lock, and passes the ones it does
//! not keep to a pool all threads share; both are bounded in bytes, and what fits in
//! neither is freed. The shared pool is what makes an event loop with workers reuse its
//! buffers at all: the loop's thread takes a connection's buffers to read its request, and
//! the worker that runs the request gives them back when the connection parks, so buffers
//! move one way. Kept only per thread (64 of each kind, before), every worker hoarded 128
//! buffers, 2 MiB of 16 KiB ones, that no one took again, while the loop's thread
//! allocated new ones for every connection: the process grew by 2 MiB per worker started
//! (tests/soak.rs, `soak_event_loop`). A thread's own buffers are freed when it exits.

use std::cell::RefCell;
use std::sync::{Mutex, PoisonError};
use std::thread::LocalKey;

/// Bytes of buffers each thread keeps of each kind (eight of 16 KiB).
const LOCAL_BYTES: usize = 128 * 1024;
/// Bytes of buffers the threads share of each kind, past what they keep themselves.
const SHARED_BYTES: usize = 1024 * 1024;

/// Free buffers and the sum of their capacities.
#[derive(Debug)]
struct Kept {
    free: Vec<Vec<u8>>,
    bytes: usize,
}

impl Kept {
    const fn new() -> Self {
        Kept {
            free: Vec::new(),
            bytes: 0,
        }
    }

    /// A buffer with room for `capacity` bytes, the most recently kept of them.
    fn take(&mut self, capacity: usize) -> Option<Vec<u8>> {
        let i = self.free.iter().rposition(|b| b.capacity() >= capacity)?;
        let buf = self.free.swap_remove(i);
        self.bytes -= buf.capacity();
        Some(buf)
    }

    /// Keeps `buf` if it fits in `limit` bytes with the others, else gives it back.
    fn keep(&mut self, buf: Vec<u8>, limit: usize) -> Option<Vec<u8>> {
        if self.bytes + buf.capacity() > limit {
            return Some(buf);
        }
        self.bytes += buf.capacity();
        self.free.push(buf);
        None
    }
}

/// One kind of buffer: the thread's own, and the shared ones.
struct Pool {
    local: &'static LocalKey<RefCell<Kept>>,
    shared: &'static Mutex<Kept>,
}

thread_local! {
    /// Read buffers, whose bytes are initialized (safe code reads into them).
    static FILLED_LOCAL: RefCell<Kept> = const { RefCell::new(Kept::new()) };
    /// Write buffers, kept empty: taking one costs no zeroing.
    static EMPTY_LOCAL: RefCell<Kept> = const { RefCell::new(Kept::new()) };
}
static FILLED_SHARED: Mutex<Kept> = Mutex::new(Kept::new());
static EMPTY_SHARED: Mutex<Kept> = Mutex::new(Kept::new());

static FILLED: Pool = Pool {
    local: &FILLED_LOCAL,
    shared: &FILLED_SHARED,
};
static EMPTY: Pool = Pool {
    local: &EMPTY_LOCAL,
    shared: &EMPTY_SHARED,
};

impl Pool {
    fn reuse(&self, capacity: usize) -> Option<Vec<u8>> {
        // `try_with`: a buffer taken while the thread's own pool is gone (a thread-local
        // destructor) comes from the shared one or the allocator.
        let local = self
            .local
            .try_with(|kept| kept.borrow_mut().take(capacity))
            .ok()
            .flatten();
        local.or_else(|| self.lock_shared().take(capacity))
    }

    fn keep(&self, buf: Vec<u8>) {
        if buf.capacity() == 0 {
            return;
        }
        let rest = match self
            .local
            .try_with(|kept| kept.borrow_mut().keep(buf, LOCAL_BYTES))
        {
            Ok(None) => return,
            Ok(Some(rest)) => rest,
            Err(_) => return, // The thread is ending: its buffers are being freed anyway.
        };
        let freed = self.lock_shared().keep(rest, SHARED_BYTES);
        drop(freed); // outside the lock
    }

    fn lock_shared(&self) -> std::sync::MutexGuard<'static, Kept> {
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A buffer of exactly `len` bytes (contents unspecified), to read into.
pub(crate) fn take(len: usize) -> Vec<u8> {
    match FILLED.reuse(len) {
        Some(mut buf) => {
            // Zeroes only what was never used: the buffers here were read buffers.
            buf.resize(len, 0);
            buf
        }
        None => vec![0; len],
    }
}

/// Returns a buffer from [`take`] for reuse.
pub(crate) fn give(buf: Vec<u8>) {
    FILLED.keep(buf);
}

/// An empty vector with room for `capacity` bytes, to write into.
pub(crate) fn take_empty(capacity: usize) -> Vec<u8> {
    EMPTY
        .reuse(capacity)
        .unwrap_or_else(|| Vec::with_capacity(capacity))
}

/// Returns a buffer from [`take_empty`] for reuse.
pub(crate) fn give_empty(mut buf: Vec<u8>) {
    buf.clear();
    EMPTY.keep(buf);
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

    // A pool of the tests' own, which the library's other tests running in parallel do not
    // touch.
    thread_local! {
        static TEST_LOCAL: RefCell<Kept> = const { RefCell::new(Kept::new()) };
    }
    static TEST_SHARED: Mutex<Kept> = Mutex::new(Kept::new());
    static TEST: Pool = Pool {
        local: &TEST_LOCAL,
        shared: &TEST_SHARED,
    };

    /// Bytes held by the calling thread's pool and the shared one.
    fn held() -> (usize, usize) {
        let local = TEST_LOCAL.with(|kept| kept.borrow().bytes);
        (local, TEST.lock_shared().bytes)
    }

    /// The event loop's way: one thread takes, another gives back. The giving thread keeps
    /// at most `LOCAL_BYTES`; the rest goes to the taking thread again instead of to a
    /// hoard, and the shared pool too is bounded.
    #[test]
    fn buffers_given_on_another_thread_are_taken_again_and_the_pools_are_bounded() {
        const SIZE: usize = 16 * 1024;
        const COUNT: usize = 2 * (LOCAL_BYTES + SHARED_BYTES) / SIZE;
        let bufs: Vec<Vec<u8>> = (0..COUNT).map(|_| vec![0; SIZE]).collect();
        let given: Vec<usize> = bufs.iter().map(|b| b.as_ptr() as usize).collect();
        let kept_there = std::thread::spawn(move || {
            for buf in bufs {
                TEST.keep(buf);
            }
            held()
        })
        .join()
        .unwrap();
        assert_eq!(kept_there, (LOCAL_BYTES, SHARED_BYTES));

        let mut taken = Vec::new();
        while let Some(buf) = TEST.reuse(SIZE) {
            assert!(given.contains(&(buf.as_ptr() as usize)));
            taken.push(buf);
        }
        assert_eq!(taken.len(), SHARED_BYTES / SIZE);
        assert_eq!(held(), (0, 0));

        // Given back on this thread: kept here first, then shared, then freed.
        for buf in taken.drain(..) {
            TEST.keep(buf);
        }
        assert_eq!(held(), (LOCAL_BYTES, SHARED_BYTES - LOCAL_BYTES));
        assert!(TEST.reuse(SIZE + 1).is_none());
        assert!(TEST.reuse(0).is_some());
    }
}
