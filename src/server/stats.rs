//! The counters of one server, kept by the engine as it works: connections open, connections
//! parked in the event loop, requests in flight, and the HTTP answers
//! ([`HttpMetrics`]). Atomics only, and relaxed ones: each figure is a count of its own, no
//! reader needs it ordered with any other, and a request pays a few uncontended additions
//! for them, no lock and no allocation.
//!
//! The gauges are kept by guards that decrement when they are dropped, so that every way
//! out of a connection or a request (a panic included) counts it out again.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use super::ServerHandle;
use crate::http::metrics::{HttpMetrics, HttpSnapshot};

/// The counters of one server (one per [`ServerHandle`]): read them with the getters, or
/// all at once with [`snapshot`](ServerStats::snapshot).
///
/// Two servers in one process keep their own; a page that reports on several adds their
/// snapshots up ([`StatsSnapshot::merge`]).
#[derive(Debug, Default)]
pub struct ServerStats {
    connections_open: AtomicUsize,
    connections_parked: AtomicUsize,
    requests_in_flight: AtomicUsize,
    http: HttpMetrics,
}

/// The figures of [`ServerStats`] at one moment (each read on its own: under load they
/// are not one instant's to the request).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StatsSnapshot {
    /// Stream connections the server has taken and not closed yet.
    pub connections_open: u64,
    /// Of those, the connections waiting between runs of their handler (parked, on an
    /// event loop: idle keep-alive connections, answers waiting for the socket to drain).
    pub connections_parked: u64,
    /// HTTP requests whose handler runs or whose answer is being completed (on an event
    /// loop's own thread, the requests one run of a connection answers count as one).
    pub requests_in_flight: u64,
    /// The HTTP answers.
    pub http: HttpSnapshot,
}

impl ServerStats {
    /// Stream connections taken and not closed yet.
    pub fn connections_open(&self) -> u64 {
        self.connections_open.load(Relaxed) as u64
    }

    /// Connections parked: waiting between runs of their handler, on an event loop (in
    /// epoll, or for a worker). Always 0 on strategies that never park.
    pub fn connections_parked(&self) -> u64 {
        self.connections_parked.load(Relaxed) as u64
    }

    /// HTTP requests whose handler runs, or whose answer is being completed. On an event
    /// loop's own thread, the pipelined requests a connection's run answers one after the
    /// other count as one, from the first answer to the end of the run.
    pub fn requests_in_flight(&self) -> u64 {
        self.requests_in_flight.load(Relaxed) as u64
    }

    /// The HTTP answers: by status class, body bytes, and time taken.
    pub fn http(&self) -> &HttpMetrics {
        &self.http
    }

    /// Every figure, read now.
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            connections_open: self.connections_open(),
            connections_parked: self.connections_parked(),
            requests_in_flight: self.requests_in_flight(),
            http: self.http.snapshot(),
        }
    }

    /// Counts a request in flight until the guard is dropped.
    pub(crate) fn request_in_flight(&self) -> Tracked<'_> {
        Tracked::new(&self.requests_in_flight)
    }
}

impl StatsSnapshot {
    /// Adds `other` in: the figures of several servers (the loops of one process) as one.
    pub fn merge(&mut self, other: &StatsSnapshot) {
        self.connections_open += other.connections_open;
        self.connections_parked += other.connections_parked;
        self.requests_in_flight += other.requests_in_flight;
        self.http.merge(&other.http);
    }
}

/// One unit of a gauge, held as long as the guard lives.
pub(crate) struct Tracked<'a>(&'a AtomicUsize);

impl<'a> Tracked<'a> {
    fn new(gauge: &'a AtomicUsize) -> Self {
        gauge.fetch_add(1, Relaxed);
        Tracked(gauge)
    }
}

impl Drop for Tracked<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

/// Which gauge a [`Counted`] holds a unit of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Gauge {
    Open,
    Parked,
}

/// [`Tracked`] for a holder that outlives any borrow (a session, parked with its
/// connection): it keeps the server's handle.
pub(crate) struct Counted {
    server: ServerHandle,
    gauge: Gauge,
}

impl Counted {
    pub(crate) fn new(server: ServerHandle, gauge: Gauge) -> Self {
        Self::atomic(&server, gauge).fetch_add(1, Relaxed);
        Counted { server, gauge }
    }

    /// A unit of another gauge of the same server.
    pub(crate) fn also(&self, gauge: Gauge) -> Counted {
        Counted::new(self.server.clone(), gauge)
    }

    fn atomic(server: &ServerHandle, gauge: Gauge) -> &AtomicUsize {
        let stats = server.stats();
        match gauge {
            Gauge::Open => &stats.connections_open,
            Gauge::Parked => &stats.connections_parked,
        }
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        Self::atomic(&self.server, self.gauge).fetch_sub(1, Relaxed);
    }
}
