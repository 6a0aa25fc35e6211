//! The connections a server has open: what a graceful shutdown waits for, closes when
//! idle, and cuts at its deadline.
//!
//! Each stream connection registers when its request context is made and leaves when that
//! is dropped, on every strategy but [`Forking`](crate::Forking) (a child's connection
//! lives in the child). The HTTP layer marks a connection idle while it waits for the next
//! request of a keep-alive connection; nothing else reads the registry until a drain.

use std::net::Shutdown;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::socket::StreamSocket;

/// The open connections of one server.
pub(crate) struct OpenConnections {
    /// The time `idle_since` counts from.
    epoch: Instant,
    slots: Mutex<Slots>,
}

#[derive(Default)]
struct Slots {
    entries: Vec<Option<Arc<Entry>>>,
    free: Vec<usize>,
    open: usize,
}

struct Entry {
    socket: StreamSocket,
    /// Nanoseconds from `epoch` to when the connection became idle; 0 while busy.
    idle_since: AtomicU64,
}

/// A connection's place in the registry; leaving it (on drop) is the connection's end as
/// far as a drain is concerned.
pub(crate) struct Registered {
    index: usize,
    entry: Arc<Entry>,
}

impl OpenConnections {
    pub(crate) fn new() -> Self {
        OpenConnections {
            epoch: Instant::now(),
            slots: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Slots> {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn register(&self, socket: StreamSocket) -> Registered {
        let entry = Arc::new(Entry {
            socket,
            idle_since: AtomicU64::new(0),
        });
        let mut slots = self.lock();
        let index = match slots.free.pop() {
            Some(index) => index,
            None => {
                slots.entries.push(None);
                slots.entries.len() - 1
            }
        };
        slots.entries[index] = Some(Arc::clone(&entry));
        slots.open += 1;
        Registered { index, entry }
    }

    /// Takes `registered` out; returns how many stay open.
    pub(crate) fn leave(&self, registered: &Registered) -> usize {
        let mut slots = self.lock();
        let taken = slots
            .entries
            .get_mut(registered.index)
            .and_then(Option::take);
        if taken.is_some() {
            slots.free.push(registered.index);
            slots.open -= 1;
        }
        slots.open
    }

    /// Connections open now.
    pub(crate) fn open(&self) -> usize {
        self.lock().open
    }

    /// Marks a connection idle (waiting for its next request) or busy.
    pub(crate) fn set_idle(&self, registered: &Registered, idle: bool) {
        let since = if idle {
            // Never 0, which means busy.
            (self.epoch.elapsed().as_nanos() as u64).max(1)
        } else {
            0
        };
        registered.entry.idle_since.store(since, Ordering::Relaxed);
    }

    /// Ends the reading side of every connection idle for at least `grace`: its handler,
    /// waiting for a request, sees the end of the stream and closes. Returns when the next
    /// connection idle for less would reach `grace`.
    ///
    /// The grace spares a client that has its next request on the way: one that reads an
    /// answer and sends again at once (a benchmark, a proxy) would else find its request
    /// unanswered. A request that arrived before the cut is still read and answered.
    pub(crate) fn close_idle(&self, grace: Duration) -> Option<Instant> {
        let now = self.epoch.elapsed();
        let mut next: Option<Duration> = None;
        let slots = self.lock();
        for entry in slots.entries.iter().flatten() {
            let since = entry.idle_since.load(Ordering::Relaxed);
            if since == 0 {
                continue;
            }
            let due = Duration::from_nanos(since) + grace;
            if due <= now {
                entry.idle_since.store(0, Ordering::Relaxed);
                let _ = entry.socket.shutdown(Shutdown::Read);
            } else {
                next = Some(next.map_or(due, |n| n.min(due)));
            }
        }
        next.map(|due| self.epoch + due)
    }

    /// Cuts every open connection, both ways: what still runs at a drain's deadline fails
    /// its next read or write and ends.
    pub(crate) fn cut_all(&self) {
        let slots = self.lock();
        for entry in slots.entries.iter().flatten() {
            let _ = entry.socket.shutdown(Shutdown::Both);
        }
    }
}
