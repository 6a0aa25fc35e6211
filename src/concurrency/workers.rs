//! Worker threads behind a queue, started as the queue needs them: the threads of a
//! [`ThreadPool`](super::ThreadPool) and of an [`EventLoop`](super::EventLoop).
//!
//! A thread is started only when a task waits and no started thread is free to take it,
//! up to the maximum; so a large maximum costs nothing until the load needs it, and a
//! system that refuses a thread costs that one task its speed, not the process.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};

pub(crate) struct Workers<T> {
    max: usize,
    name: &'static str,
    shared: Arc<Shared<T>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

struct Shared<T> {
    state: Mutex<State<T>>,
    task_ready: Condvar,
    room_ready: Condvar,
    run: Box<dyn Fn(T) + Send + Sync>,
}

struct State<T> {
    queue: VecDeque<T>,
    /// Started threads waiting for a task.
    idle: usize,
    /// Set by `interrupt`, consumed by the one `wait_for_room` it releases.
    interrupted: bool,
    closing: bool,
}

impl<T: Send + 'static> Workers<T> {
    /// Up to `max` threads named `{name}-N`, each running `run` on the tasks it takes.
    pub(crate) fn new(
        max: usize,
        name: &'static str,
        run: impl Fn(T) + Send + Sync + 'static,
    ) -> Self {
        Workers {
            max,
            name,
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    queue: VecDeque::new(),
                    idle: 0,
                    interrupted: false,
                    closing: false,
                }),
                task_ready: Condvar::new(),
                room_ready: Condvar::new(),
                run: Box::new(run),
            }),
            threads: Mutex::default(),
        }
    }

    /// Most threads.
    pub(crate) fn max(&self) -> usize {
        self.max
    }

    /// Tasks waiting for a thread.
    pub(crate) fn queued(&self) -> usize {
        self.shared.lock().queue.len()
    }

    /// Queues `task` for a thread, starting one if none is free. Gives the task back if no
    /// thread runs and none can be started: the caller runs it itself.
    pub(crate) fn submit(&self, task: T) -> Result<(), T> {
        let needs_thread = {
            let mut state = self.shared.lock();
            state.queue.push_back(task);
            state.queue.len() > state.idle
        };
        self.shared.task_ready.notify_one();
        if !needs_thread {
            return Ok(());
        }
        let mut threads = lock(&self.threads);
        if threads.len() >= self.max {
            return Ok(());
        }
        let shared = Arc::clone(&self.shared);
        let spawned = thread::Builder::new()
            .name(format!("{}-{}", self.name, threads.len() + 1))
            .spawn(move || shared.work());
        match spawned {
            Ok(thread) => threads.push(thread),
            Err(err) if threads.is_empty() => {
                log::error!("cannot start a worker thread, running the task here: {err}");
                drop(threads);
                let mut state = self.shared.lock();
                let task = state.queue.pop_back().expect("the task just queued");
                return Err(task);
            }
            // The threads already running will come to it.
            Err(err) => log::error!("cannot start another worker thread: {err}"),
        }
        Ok(())
    }

    /// Waits until fewer than `limit` tasks are queued, or until `interrupt`.
    pub(crate) fn wait_for_room(&self, limit: usize) {
        let mut state = self.shared.lock();
        while state.queue.len() >= limit.max(1) && !state.interrupted && !state.closing {
            state = self
                .shared
                .room_ready
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        state.interrupted = false;
    }

    /// Releases a `wait_for_room` (the server is shutting down).
    pub(crate) fn interrupt(&self) {
        self.shared.lock().interrupted = true;
        self.shared.room_ready.notify_all();
    }

    /// Whether `close` was called (and `reopen` not since).
    pub(crate) fn is_closing(&self) -> bool {
        self.shared.lock().closing
    }

    /// Lets the threads finish every queued task, then joins them (all but the calling
    /// thread, if it is one of them).
    pub(crate) fn close(&self) {
        self.shared.lock().closing = true;
        self.shared.task_ready.notify_all();
        self.shared.room_ready.notify_all();
        let threads = std::mem::take(&mut *lock(&self.threads));
        let me = thread::current().id();
        for thread in threads {
            if thread.thread().id() != me {
                let _ = thread.join();
            }
        }
    }

    /// Takes tasks again after `close` (a server can serve again after closing).
    pub(crate) fn reopen(&self) {
        self.shared.lock().closing = false;
    }
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        lock(&self.state)
    }

    /// A thread: runs tasks until the workers close and none are left.
    fn work(&self) {
        loop {
            let task = {
                let mut state = self.lock();
                loop {
                    if let Some(task) = state.queue.pop_front() {
                        break task;
                    }
                    if state.closing {
                        return;
                    }
                    state.idle += 1;
                    state = self
                        .task_ready
                        .wait(state)
                        .unwrap_or_else(PoisonError::into_inner);
                    state.idle -= 1;
                }
            };
            self.room_ready.notify_one();
            (self.run)(task);
        }
    }
}

impl<T> std::fmt::Debug for Workers<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workers")
            .field("max", &self.max)
            .field("started", &lock(&self.threads).len())
            .finish_non_exhaustive()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
