//! A bounded set of worker threads behind a bounded queue.

use std::io;

use super::workers::Workers;
use super::{Concurrency, Job};

/// Runs requests on up to `workers` threads, started as requests need them; at most `queue_size`
/// accepted requests wait for a worker.
///
/// When the queue is full, `process_request` blocks the serve loop, so new connections wait
/// in the kernel's listen backlog instead of costing a thread each: backpressure, not an
/// unbounded number of threads. A `shutdown()` releases a blocked loop at once (the waiting
/// request is still queued and served). `server_close` lets the workers finish every queued
/// request and joins them.
#[derive(Debug)]
pub struct ThreadPool {
    queue_size: usize,
    workers: Workers<Job>,
}

impl ThreadPool {
    /// A pool of up to `workers` threads (at least 1), started as requests need them, and
    /// a queue of `queue_size` requests.
    pub fn new(workers: usize, queue_size: usize) -> Self {
        ThreadPool {
            queue_size,
            workers: Workers::new(workers.max(1), "Worker", |job: Job| {
                job.run();
            }),
        }
    }

    /// Most worker threads.
    pub fn workers(&self) -> usize {
        self.workers.max()
    }

    /// Requests waiting for a worker.
    pub fn queued(&self) -> usize {
        self.workers.queued()
    }
}

impl Default for ThreadPool {
    /// 16 workers and a queue of 64: enough for blocking handlers on a small machine.
    fn default() -> Self {
        ThreadPool::new(16, 64)
    }
}

impl Concurrency for ThreadPool {
    fn process_request(&self, job: Job) -> io::Result<()> {
        if self.workers.is_closing() {
            return Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "the thread pool is closed",
            ));
        }
        self.workers.wait_for_room(self.queue_size);
        if let Err(job) = self.workers.submit(job) {
            job.run();
        }
        Ok(())
    }

    fn shutdown_requested(&self) {
        self.workers.interrupt();
    }

    fn server_close(&self) {
        self.workers.close();
    }
}
