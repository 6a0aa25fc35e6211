//! The event loop: connections wait in epoll, not on threads.
//!
//! A thread per connection cannot hold ten thousand idle keep-alive clients cheaply, nor
//! switch threads at tens of thousands of requests a second. Here the serving thread waits in
//! `epoll` for the server socket, the shutdown waker and every parked connection at once. A
//! handler that [parks](crate::StreamRequest::park) its connection gives its thread back;
//! when the client sends more, the handler's `handle` runs again: on the loop's own thread
//! if the handler is [`NONBLOCKING`](crate::RequestHandler::NONBLOCKING), else on one of the
//! workers (Apache's event MPM). Output the socket would not take at once waits with the
//! connection and is sent as the socket drains, without the handler.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};
use nix::sys::eventfd::{EfdFlags, EventFd};

use super::workers::Workers;
use super::{Concurrency, Job, Readiness, Resumable, RunMode, Step};
use crate::handler::Wake;
use crate::socket::StreamSocket;

/// Events taken from epoll per wait.
const EVENTS: usize = 256;
/// Tokens of the two sockets of the server itself.
const SERVER: u64 = u64::MAX;
const WAKER: u64 = u64::MAX - 1;
/// What the loop watches the server socket for. Exclusive: when several loops share one
/// listening socket (`simple-http --threads`), a new connection wakes one of the loops
/// waiting, not all of them.
const ACCEPT: EpollFlags = EpollFlags::EPOLLIN.union(EpollFlags::EPOLLEXCLUSIVE);
/// Token of the reactor's own eventfd, by which a worker wakes the loop for a deadline
/// earlier than the one it sleeps towards.
const ALARM: u64 = u64::MAX - 2;

/// Serves connections from an event loop on the serving thread, with `workers` threads for
/// handlers that may block.
///
/// A parked connection costs no thread and no buffer: ten thousand idle keep-alive clients
/// are a few megabytes. Requests to a [`NONBLOCKING`](crate::RequestHandler::NONBLOCKING)
/// handler run on the loop's thread; the others run on a worker and go back to the loop
/// when they park. `server_close` ends the parked connections and joins the workers, which
/// finish what they are running first.
///
/// Only stream servers park; `handle_request` serves parked connections only while it waits.
#[derive(Debug)]
pub struct EventLoop {
    reactor: Arc<Reactor>,
    /// The events of one wait (only the serving thread waits).
    events: Mutex<Vec<EpollEvent>>,
    workers: Workers<Task>,
}

impl EventLoop {
    /// An event loop with up to `workers` threads for handlers that may block, started as
    /// they are needed. With none, every handler runs on the loop's thread: one thread for
    /// the whole server, the fastest way when no handler ever waits.
    pub fn new(workers: usize) -> io::Result<Self> {
        let reactor = Arc::new(Reactor::new()?);
        let runner = Arc::clone(&reactor);
        Ok(EventLoop {
            reactor,
            events: Mutex::new(vec![EpollEvent::empty(); EVENTS]),
            workers: Workers::new(workers, "Worker", move |task| {
                let step = runner.run(task);
                runner.after_run(step);
            }),
        })
    }

    /// Most worker threads.
    pub fn workers(&self) -> usize {
        self.workers.max()
    }

    /// Connections parked now.
    pub fn parked(&self) -> usize {
        self.reactor.lock().parked
    }

    /// Runs a task on a worker; without workers (or when none can be started), here and
    /// now, waiting as it must.
    fn hand_off(&self, task: Task) {
        let task = if self.workers.max() == 0 {
            task
        } else {
            match self.workers.submit(task) {
                Ok(()) => return,
                Err(task) => task,
            }
        };
        let step = self.reactor.run(task);
        self.reactor.after_run(step);
    }

    /// Whether `handle` runs inline: on the loop's thread, its reads taking only what has
    /// arrived. Only a `NONBLOCKING` handler does; any other runs as on a worker, its reads
    /// waiting (without workers, on the loop's thread: `hand_off` runs it there). Inline, a
    /// blocking handler's first read would find nothing yet and fail.
    fn inline(&self, nonblocking: bool) -> bool {
        nonblocking
    }

    /// What to do with a connection after a run of its handler on the loop's thread.
    fn settle(&self, step: Step) {
        if let Step::Parked(session) = step {
            if session.park().wake == Wake::Worker && !session.has_output() {
                return self.hand_off(Task::Resume(session));
            }
            self.reactor.park(session, None);
        }
    }

    /// A parked connection's socket is ready.
    fn on_event(&self, token: u64, events: EpollFlags) {
        let Some((mut session, connection)) = self.reactor.take_ready(token) else {
            return;
        };
        let mut failed = false;
        if session.has_output() {
            match session.flush_output() {
                Ok(true) => {}
                Ok(false) => return self.reactor.park(session, Some((token, connection))),
                // The client is gone (or a file shrank): the handler, run now, ends it.
                Err(_) => failed = true,
            }
        }
        let park = session.park();
        let readable =
            events.intersects(EpollFlags::EPOLLIN | EpollFlags::EPOLLHUP | EpollFlags::EPOLLERR);
        if park.wake == Wake::Readable && !readable && !failed {
            // The output drained; now wait for the client.
            return self.reactor.park(session, Some((token, connection)));
        }
        if self.inline(session.nonblocking()) && park.wake != Wake::Worker {
            let step = session.resume(RunMode::Inline);
            match step {
                Step::Parked(session) if session.park().wake != Wake::Worker => {
                    self.reactor.park(session, Some((token, connection)));
                }
                step => {
                    self.reactor.forget(token);
                    self.settle(step);
                }
            }
        } else {
            self.reactor.forget(token);
            self.hand_off(Task::Resume(session));
        }
    }
}

impl Default for EventLoop {
    /// 16 workers. Panics if the kernel refuses an epoll instance (out of file descriptors).
    fn default() -> Self {
        EventLoop::new(16).expect("an epoll instance")
    }
}

impl Concurrency for EventLoop {
    fn process_request(&self, job: Job) -> io::Result<()> {
        if self.inline(job.nonblocking()) {
            self.settle(job.start(RunMode::Inline));
        } else {
            self.hand_off(Task::Start(job));
        }
        Ok(())
    }

    fn wait(
        &self,
        server: Option<BorrowedFd<'_>>,
        waker: Option<BorrowedFd<'_>>,
        timeout: Option<Duration>,
    ) -> io::Result<Readiness> {
        self.reactor.watch_server(server, waker)?;
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut events = lock(&self.events);
        loop {
            let next = self.reactor.sleep_until(deadline);
            let wait = next.map(|t| t.saturating_duration_since(Instant::now()));
            let waited = self
                .reactor
                .epoll
                .wait(&mut events, super::poll_timeout(wait));
            self.reactor.woke();
            let n = match waited {
                Ok(n) => n,
                Err(Errno::EINTR) => 0,
                Err(errno) => return Err(errno.into()),
            };
            let mut ready = Readiness::default();
            for event in &events[..n] {
                match event.data() {
                    SERVER => ready.server = true,
                    WAKER => ready.shutdown = true,
                    ALARM => self.reactor.clear_alarm(),
                    token => self.on_event(token, event.events()),
                }
            }
            for mut session in self.reactor.expired(Instant::now()) {
                if !session.park().resume_at_deadline {
                    session.expire();
                } else if self.inline(session.nonblocking()) {
                    session.time_out();
                    self.settle(session.resume(RunMode::Inline));
                } else {
                    session.time_out();
                    self.hand_off(Task::Resume(session));
                }
            }
            if ready.server || ready.shutdown || deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(ready);
            }
        }
    }

    fn stop_accepting(&self) {
        self.reactor.unwatch_server();
    }

    fn server_close(&self) {
        // The listener first: epoll holds a duplicate of it, which would keep it accepting
        // connections nobody serves while the parked ones are ended and the workers joined.
        self.reactor.unwatch_server();
        for session in self.reactor.close() {
            session.expire();
        }
        self.workers.close();
        self.workers.reopen();
        self.reactor.reopen();
    }
}

/// What a worker runs.
enum Task {
    Start(Job),
    Resume(Box<dyn Resumable>),
}

/// The epoll instance and the parked connections.
struct Reactor {
    epoll: Epoll,
    state: Mutex<State>,
    /// Written when a worker parks a connection with a deadline before the loop's wake-up.
    alarm: EventFd,
}

impl std::fmt::Debug for Reactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reactor").finish_non_exhaustive()
    }
}

#[derive(Default)]
struct State {
    /// Indexed by the low 32 bits of a token; the high 32 are the slot's generation, so an
    /// event for a connection that has since left its slot finds nothing.
    slots: Vec<Slot>,
    free: Vec<u32>,
    parked: usize,
    /// (deadline, token): possibly stale, checked against the slot when due.
    timers: BinaryHeap<Reverse<(Instant, u64)>>,
    closing: bool,
    watched: Option<Watched>,
    /// While the loop sleeps in epoll: until when (`None`: until an event).
    sleeping: Option<Option<Instant>>,
}

/// The server's own descriptors as epoll watches them.
struct Watched {
    /// The server's descriptor numbers these duplicate.
    fds: (Option<RawFd>, Option<RawFd>),
    /// `None` while a graceful shutdown drains: the socket is closed.
    server: Option<OwnedFd>,
    waker: Option<OwnedFd>,
    /// The server socket reports new connections (not paused).
    accepting: bool,
}

impl Watched {
    fn delete_from(&self, epoll: &Epoll) {
        if let Some(server) = &self.server {
            let _ = epoll.delete(server);
        }
        if let Some(waker) = &self.waker {
            let _ = epoll.delete(waker);
        }
    }
}

#[derive(Default)]
struct Slot {
    generation: u32,
    /// Held while the connection is registered, so its descriptor stays valid for epoll.
    connection: Option<StreamSocket>,
    /// `None` while its handler runs.
    session: Option<Box<dyn Resumable>>,
    interest: Option<EpollFlags>,
    deadline: Option<Instant>,
    /// The time of this slot's entry in the timer heap, if it has one.
    timer: Option<Instant>,
}

impl Reactor {
    fn new() -> io::Result<Self> {
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
        let alarm = EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)?;
        epoll.add(&alarm, EpollEvent::new(EpollFlags::EPOLLIN, ALARM))?;
        Ok(Reactor {
            epoll,
            state: Mutex::default(),
            alarm,
        })
    }

    /// The loop is about to sleep: until `deadline` or the earliest parked deadline,
    /// whichever comes first. Noted under the lock, so that a worker parking a connection
    /// meanwhile sees it and can wake the loop.
    fn sleep_until(&self, deadline: Option<Instant>) -> Option<Instant> {
        let mut state = self.lock();
        let parked = state.timers.peek().map(|Reverse((t, _))| *t);
        let until = match (deadline, parked) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        state.sleeping = Some(until);
        until
    }

    /// The loop is awake again.
    fn woke(&self) {
        self.lock().sleeping = None;
    }

    fn clear_alarm(&self) {
        let _ = self.alarm.read();
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// Registers the server socket and the waker, as given for this wait. Epoll watches
    /// duplicates of them, so that they can be taken out again whatever the server does
    /// with its own descriptors. Without a server socket (accepting is paused), the one
    /// registered leaves epoll until accepting resumes; after `unwatch_server` (a drain),
    /// only the waker is watched.
    fn watch_server(
        &self,
        server: Option<BorrowedFd<'_>>,
        waker: Option<BorrowedFd<'_>>,
    ) -> io::Result<()> {
        let mut state = self.lock();
        let wanted = (server.map(|s| s.as_raw_fd()), waker.map(|w| w.as_raw_fd()));
        let changed = match &state.watched {
            None => wanted != (None, None),
            // Paused: the socket stays registered.
            Some(w) => (wanted.0.is_some() || w.fds.0.is_none()) && w.fds != wanted,
        };
        if changed {
            if let Some(old) = state.watched.take() {
                old.delete_from(&self.epoll);
            }
            let watched = Watched {
                fds: wanted,
                server: server.map(|s| s.try_clone_to_owned()).transpose()?,
                waker: waker.map(|w| w.try_clone_to_owned()).transpose()?,
                accepting: server.is_some(),
            };
            if let Some(server) = &watched.server {
                self.epoll.add(server, EpollEvent::new(ACCEPT, SERVER))?;
            }
            if let Some(waker) = &watched.waker {
                self.epoll
                    .add(waker, EpollEvent::new(EpollFlags::EPOLLIN, WAKER))?;
            }
            state.watched = Some(watched);
        }
        if let Some(watched) = &mut state.watched {
            let accepting = server.is_some();
            if let (Some(socket), true) = (&watched.server, watched.accepting != accepting) {
                // An exclusive registration cannot be modified: paused, it leaves epoll.
                if accepting {
                    self.epoll.add(socket, EpollEvent::new(ACCEPT, SERVER))?;
                } else {
                    self.epoll.delete(socket)?;
                }
                watched.accepting = accepting;
            }
        }
        Ok(())
    }

    /// Parks `session` until its wake-up: in its old slot (`token`, still registered), or a
    /// new one. A session whose socket cannot be watched is ended.
    fn park(&self, session: Box<dyn Resumable>, slot: Option<(u64, StreamSocket)>) {
        let park = session.park();
        let interest = if session.has_output() || park.wake != Wake::Readable {
            EpollFlags::EPOLLOUT
        } else {
            EpollFlags::EPOLLIN | EpollFlags::EPOLLRDHUP
        };
        let mut state = self.lock();
        if state.closing {
            drop(state);
            session.expire();
            return;
        }
        let (token, connection) = match slot {
            Some(slot) => slot,
            None => {
                let connection = session.connection();
                let index = state.free.pop().unwrap_or_else(|| {
                    state.slots.push(Slot::default());
                    (state.slots.len() - 1) as u32
                });
                let generation = state.slots[index as usize].generation;
                (token(index, generation), connection)
            }
        };
        let index = (token & 0xffff_ffff) as usize;
        let registered = state.slots[index].interest;
        let result = match registered {
            Some(old) if old == interest => Ok(()),
            Some(_) => self
                .epoll
                .modify(&connection, &mut EpollEvent::new(interest, token)),
            None => self
                .epoll
                .add(&connection, EpollEvent::new(interest, token)),
        };
        if let Err(err) = result {
            log::error!("cannot watch a parked connection: {err}");
            release(&mut state, index, &self.epoll);
            drop(state);
            session.expire();
            return;
        }
        state.parked += 1;
        let slot = &mut state.slots[index];
        slot.interest = Some(interest);
        slot.connection = Some(connection);
        slot.session = Some(session);
        slot.deadline = park.deadline;
        if let Some(deadline) = park.deadline {
            if slot.timer.is_none_or(|t| deadline < t) {
                slot.timer = Some(deadline);
                state.timers.push(Reverse((deadline, token)));
            }
            // Parked by a worker while the loop sleeps past this deadline: wake it.
            if let Some(until) = state.sleeping {
                if until.is_none_or(|until| deadline < until) {
                    state.sleeping = Some(Some(deadline));
                    let _ = self.alarm.write(1);
                }
            }
        }
    }

    /// Takes the session of `token` out of its slot to run it; `None` for a stale event.
    fn take_ready(&self, token: u64) -> Option<(Box<dyn Resumable>, StreamSocket)> {
        let mut state = self.lock();
        let slot = slot_of(&mut state, token)?;
        let session = slot.session.take()?;
        let connection = slot.connection.clone()?;
        state.parked -= 1;
        Some((session, connection))
    }

    /// Frees the slot of a session that left the loop.
    fn forget(&self, token: u64) {
        let mut state = self.lock();
        if slot_of(&mut state, token).is_some() {
            release(&mut state, (token & 0xffff_ffff) as usize, &self.epoll);
        }
    }

    /// Takes out the parked connections whose deadline has passed.
    fn expired(&self, now: Instant) -> Vec<Box<dyn Resumable>> {
        let mut expired = Vec::new();
        let mut state = self.lock();
        while let Some(&Reverse((due, token))) = state.timers.peek() {
            if due > now {
                break;
            }
            state.timers.pop();
            let Some(slot) = slot_of(&mut state, token) else {
                continue;
            };
            if slot.timer != Some(due) {
                continue;
            }
            slot.timer = None;
            match slot.deadline {
                Some(deadline) if deadline > now => {
                    slot.timer = Some(deadline);
                    state.timers.push(Reverse((deadline, token)));
                }
                Some(_) => {
                    let index = (token & 0xffff_ffff) as usize;
                    expired.extend(take_parked(&mut state, index, &self.epoll));
                }
                None => {}
            }
        }
        expired
    }

    /// Takes out every parked connection and refuses new ones.
    fn close(&self) -> Vec<Box<dyn Resumable>> {
        let mut state = self.lock();
        state.closing = true;
        let mut sessions = Vec::new();
        for index in 0..state.slots.len() {
            sessions.extend(take_parked(&mut state, index, &self.epoll));
        }
        sessions
    }

    /// Accepts work again after `server_close` (a server can serve again after closing).
    fn reopen(&self) {
        self.lock().closing = false;
    }

    /// Stops watching the server's socket and waker, and closes epoll's duplicates of them.
    fn unwatch_server(&self) {
        let old = self.lock().watched.take();
        if let Some(old) = old {
            old.delete_from(&self.epoll);
        }
    }

    fn run(&self, task: Task) -> Step {
        match task {
            Task::Start(job) => job.start(RunMode::Worker),
            Task::Resume(session) => session.resume(RunMode::Worker),
        }
    }

    /// Parks what a worker run left parked; a session that asks for a worker at once runs
    /// again (it has work it may wait for).
    fn after_run(&self, mut step: Step) {
        loop {
            step = match step {
                Step::Parked(session)
                    if session.park().wake == Wake::Worker && !session.has_output() =>
                {
                    session.resume(RunMode::Worker)
                }
                Step::Parked(session) => return self.park(session, None),
                Step::Done(_) => return,
            }
        }
    }
}

fn token(index: u32, generation: u32) -> u64 {
    (u64::from(generation) << 32) | u64::from(index)
}

fn slot_of(state: &mut State, token: u64) -> Option<&mut Slot> {
    let slot = state.slots.get_mut((token & 0xffff_ffff) as usize)?;
    (u64::from(slot.generation) == token >> 32 && slot.connection.is_some()).then_some(slot)
}

/// Takes the session parked in slot `index` out of the loop, if one is.
fn take_parked(state: &mut State, index: usize, epoll: &Epoll) -> Option<Box<dyn Resumable>> {
    let session = state.slots[index].session.take()?;
    state.parked -= 1;
    release(state, index, epoll);
    Some(session)
}

/// Empties slot `index` for reuse, taking its connection out of epoll if it is watched.
fn release(state: &mut State, index: usize, epoll: &Epoll) {
    let slot = &mut state.slots[index];
    if let (Some(_), Some(connection)) = (slot.interest, &slot.connection) {
        let _ = epoll.delete(connection.as_fd());
    }
    slot.session = None;
    slot.connection = None;
    slot.interest = None;
    slot.deadline = None;
    slot.timer = None;
    slot.generation = slot.generation.wrapping_add(1);
    state.free.push(index as u32);
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
