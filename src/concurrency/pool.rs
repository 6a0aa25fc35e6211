//! A fixed set of worker threads behind a bounded queue.

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};

use super::{Concurrency, Job};

/// Runs requests on `workers` threads started with the first request; at most `queue_size`
/// accepted requests wait for a worker.
///
/// When the queue is full, `process_request` blocks the serve loop, so new connections wait
/// in the kernel's listen backlog instead of costing a thread each: backpressure, not an
/// unbounded number of threads. A `shutdown()` releases a blocked loop at once (the waiting
/// request is still queued and served). `server_close` lets the workers finish every queued
/// request and joins them.
#[derive(Debug)]
pub struct ThreadPool {
    workers: usize,
    shared: Arc<Shared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

#[derive(Debug)]
struct Shared {
    queue_size: usize,
    state: Mutex<State>,
    job_ready: Condvar,
    space_ready: Condvar,
}

#[derive(Debug, Default)]
struct State {
    queue: VecDeque<Job>,
    /// Set by `shutdown_requested`, consumed by the one `process_request` it releases.
    interrupted: bool,
    closing: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn work(&self) {
        loop {
            let job = {
                let mut state = self.lock();
                loop {
                    if let Some(job) = state.queue.pop_front() {
                        break job;
                    }
                    if state.closing {
                        return;
                    }
                    state = self
                        .job_ready
                        .wait(state)
                        .unwrap_or_else(PoisonError::into_inner);
                }
            };
            self.space_ready.notify_one();
            job.run();
        }
    }
}

impl ThreadPool {
    /// A pool of `workers` threads (at least 1) and a queue of `queue_size` requests.
    pub fn new(workers: usize, queue_size: usize) -> Self {
        ThreadPool {
            workers: workers.max(1),
            shared: Arc::new(Shared {
                queue_size,
                state: Mutex::default(),
                job_ready: Condvar::new(),
                space_ready: Condvar::new(),
            }),
            threads: Mutex::default(),
        }
    }

    /// Number of worker threads.
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Requests waiting for a worker.
    pub fn queued(&self) -> usize {
        self.shared.lock().queue.len()
    }

    fn start_workers(&self) -> io::Result<()> {
        let mut threads = self.threads.lock().unwrap_or_else(PoisonError::into_inner);
        while threads.len() < self.workers {
            let shared = Arc::clone(&self.shared);
            let name = format!("Worker-{}", threads.len() + 1);
            threads.push(
                thread::Builder::new()
                    .name(name)
                    .spawn(move || shared.work())?,
            );
        }
        Ok(())
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
        self.start_workers()?;
        let mut state = self.shared.lock();
        if state.closing {
            return Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "the thread pool is closed",
            ));
        }
        while state.queue.len() >= self.shared.queue_size.max(1) && !state.interrupted {
            state = self
                .shared
                .space_ready
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        state.interrupted = false;
        state.queue.push_back(job);
        drop(state);
        self.shared.job_ready.notify_one();
        Ok(())
    }

    fn shutdown_requested(&self) {
        self.shared.lock().interrupted = true;
        self.shared.space_ready.notify_all();
    }

    fn server_close(&self) {
        self.shared.lock().closing = true;
        self.shared.job_ready.notify_all();
        let threads =
            std::mem::take(&mut *self.threads.lock().unwrap_or_else(PoisonError::into_inner));
        let me = thread::current().id();
        for thread in threads {
            if thread.thread().id() != me {
                let _ = thread.join();
            }
        }
    }
}
