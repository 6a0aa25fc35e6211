//! On an event loop, a request is read whole before its handler runs: the head, the answer
//! to `Expect: 100-continue`, then the body, each as it arrives, with the connection parked
//! in between. No thread waits for a slow client, so no number of slow clients can hold the
//! loop or its workers; the handler reads its body from the connection's buffer or a
//! [`Spool`].

use std::io::{self, BufRead};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use http::StatusCode;

use super::body::Body;
use super::chunked::ChunkedDecoder;
use super::exchange::{
    answer, complete, give_back, into_head, new_request, retire, settle, ConnectionContext,
    Exchanged, Io, Parsed,
};
use super::handler::HttpHandler;
use super::head::{Framing, Rejection};
use super::limits::Limits;
use super::log::escape_control;
use super::response::ResponseWriter;
use super::spool::Spool;
use crate::handler::Rfile;

/// A request whose head is here (in the connection's head), kept while its body arrives.
pub(super) struct Pending {
    /// When the server began on it (see [`Parsed`]).
    received: Instant,
    framing: Framing,
    /// `Expect: 100-continue`, not answered yet.
    expect: bool,
    body: Ahead,
    /// When the body must have made progress by; each arrival moves it.
    deadline: Instant,
}

/// How far a body has been read ahead of its handler.
enum Ahead {
    /// It fits in the connection's read buffer and waits there (this long).
    Buffered(u64),
    /// Going into a spool as it arrives.
    Spooling { spool: Box<Spool>, left: Left },
    /// All here, in the spool.
    Spooled(Box<Spool>),
}

/// What is left of a body being spooled.
enum Left {
    Length(u64),
    Chunked(ChunkedDecoder),
}

/// Where the body of a pending request stands.
pub(super) enum BodyStep {
    /// All here: the handler can run.
    Here,
    /// More is coming; wait for it until then.
    Wait(Instant),
    /// It cannot be had: answer this, and close.
    Refused(Rejection),
}

/// What became of a request offered to the handler.
pub(super) enum Dispatch {
    Answered(Exchanged),
    /// It may wait: it goes to a worker, to be offered again there.
    HandedOff(Box<Pending>),
}

/// A request all here, for its handler: the head in the connection's, and the body in its
/// read buffer or a spool.
pub(super) struct Ready {
    received: Instant,
    framing: Framing,
    spool: Option<Box<Spool>>,
}

impl Ready {
    /// Whether the request of `parsed` is all here, its body (if any) in `buffered`: the
    /// usual case, which needs no [`Pending`] to wait in.
    pub(super) fn is_here(parsed: &Parsed, buffered: &[u8]) -> bool {
        match parsed.framing {
            Framing::Length(n) => !parsed.expect && buffered.len() as u64 >= n,
            Framing::Chunked => false,
        }
    }

    /// The request of `parsed`, which [is here](Ready::is_here).
    pub(super) fn new(parsed: Parsed) -> Ready {
        Ready {
            received: parsed.received,
            framing: parsed.framing,
            spool: None,
        }
    }
}

impl Pending {
    /// The pending request of `parsed`, whose body a read buffer of `buffer` bytes holds if
    /// it fits.
    pub(super) fn new(parsed: Parsed, buffer: usize, limits: &Limits) -> Self {
        let body = match parsed.framing {
            Framing::Length(n) if n <= buffer as u64 => Ahead::Buffered(n),
            Framing::Length(n) => Ahead::Spooling {
                spool: Box::default(),
                left: Left::Length(n),
            },
            Framing::Chunked => Ahead::Spooling {
                spool: Box::default(),
                left: Left::Chunked(ChunkedDecoder::new(limits.max_body_size)),
            },
        };
        Pending {
            received: parsed.received,
            framing: parsed.framing,
            expect: parsed.expect,
            body,
            deadline: Instant::now() + limits.body_timeout,
        }
    }

    /// A refusal of the body (whose request line the caller knows, for the log).
    fn refuse(&self, status: StatusCode, message: &str) -> BodyStep {
        BodyStep::Refused(Rejection::new(status, message))
    }

    /// Reads what has arrived of the body, without waiting. `timed_out`: this run is for
    /// the deadline.
    pub(super) fn read_body(
        &mut self,
        rfile: &mut Rfile,
        limits: &Limits,
        timed_out: bool,
    ) -> BodyStep {
        let mut progressed = false;
        loop {
            match self.take_buffered(rfile) {
                Ok(true) => return BodyStep::Here,
                Ok(false) => {}
                Err(step) => return step,
            }
            match rfile.read_available() {
                Ok(0) => {
                    return self.refuse(
                        StatusCode::BAD_REQUEST,
                        "The client closed the connection before the end of the body",
                    )
                }
                Ok(_) => progressed = true,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    return self.refuse(StatusCode::BAD_REQUEST, "The connection failed");
                }
            }
        }
        let now = Instant::now();
        if progressed {
            self.deadline = now + limits.body_timeout;
        } else if timed_out || now >= self.deadline {
            return self.refuse(StatusCode::REQUEST_TIMEOUT, "Request body timed out");
        }
        BodyStep::Wait(self.deadline)
    }

    /// Moves what the read buffer holds of the body into the spool (or leaves it there if
    /// it fits); `true` once the body is all here.
    fn take_buffered(&mut self, rfile: &mut Rfile) -> Result<bool, BodyStep> {
        let (spool, left) = match &mut self.body {
            Ahead::Buffered(n) => return Ok(rfile.buffer().len() as u64 >= *n),
            Ahead::Spooled(_) => return Ok(true),
            Ahead::Spooling { spool, left } => (spool, left),
        };
        let stored = loop {
            let available = rfile.buffer();
            if available.is_empty() {
                return Ok(false);
            }
            match left {
                Left::Length(remaining) => {
                    let n = available.len().min(*remaining as usize);
                    if let Err(err) = spool.write(&available[..n]) {
                        break Err(err);
                    }
                    rfile.consume(n);
                    *remaining -= n as u64;
                    if *remaining == 0 {
                        break Ok(());
                    }
                }
                Left::Chunked(decoder) => {
                    let decoded = match decoder.decode(available) {
                        Ok(decoded) => decoded,
                        Err(malformed) => {
                            let (status, message) = (malformed.status, malformed.message);
                            return Err(self.refuse(status, message));
                        }
                    };
                    if let Err(err) = spool.write(decoded.data) {
                        break Err(err);
                    }
                    let consumed = decoded.consumed;
                    rfile.consume(consumed);
                    if decoder.is_done() {
                        break Ok(());
                    }
                }
            }
        };
        match stored {
            Ok(()) => {
                let Ahead::Spooling { spool, .. } =
                    std::mem::replace(&mut self.body, Ahead::Buffered(0))
                else {
                    unreachable!("the body was spooling")
                };
                self.body = Ahead::Spooled(spool);
                Ok(true)
            }
            Err(err) => {
                log::error!("cannot keep a request body: {err}");
                let full = matches!(err.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT));
                Err(if full {
                    self.refuse(
                        StatusCode::INSUFFICIENT_STORAGE,
                        "No room to keep the request body",
                    )
                } else {
                    self.refuse(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "The request body could not be kept",
                    )
                })
            }
        }
    }

    /// Whether the client waits for `100 Continue` before it sends the body.
    pub(super) fn awaits_continue(&self) -> bool {
        self.expect
    }

    /// The request, once [`read_body`](Pending::read_body) said its body is here.
    pub(super) fn into_ready(self) -> Ready {
        let spool = match self.body {
            Ahead::Spooled(spool) => Some(spool),
            Ahead::Buffered(_) => None,
            Ahead::Spooling { .. } => unreachable!("a body still arriving is not ready"),
        };
        Ready {
            received: self.received,
            framing: self.framing,
            spool,
        }
    }

    /// A request all here, waiting for a worker.
    fn of_ready(ready: Ready) -> Pending {
        let body = match (ready.spool, ready.framing) {
            (Some(spool), _) => Ahead::Spooled(spool),
            (None, Framing::Length(n)) => Ahead::Buffered(n),
            (None, Framing::Chunked) => unreachable!("a chunked body is spooled"),
        };
        Pending {
            received: ready.received,
            framing: ready.framing,
            expect: false,
            body,
            deadline: Instant::now(),
        }
    }
}

/// Asks the handler whether the client may send its body (`handle_expect_100`, before the
/// body is read). `Ok`: the request goes on, with `100 Continue` queued; `Err`: the handler
/// refused (or failed), and its answer ends the connection.
pub(super) fn answer_expect<H: HttpHandler>(
    handler: &mut H,
    context: &ConnectionContext<'_>,
    io: Io<'_>,
    pending: Pending,
) -> Result<Pending, Exchanged> {
    let Pending {
        received,
        framing,
        body: ahead,
        deadline,
        ..
    } = pending;
    let started = AtomicBool::new(false);
    let limits = &context.limits;
    let body = Body::new(
        io.rfile,
        io.socket,
        framing,
        limits.max_body_size,
        limits.body_timeout,
        true,
        &started,
    )
    .held();
    let wfile = ResponseWriter::new(context.connection, io.output, &started, context.inline);
    let mut request = new_request(context, io.head, received, body, wfile);
    let outcome = catch_unwind(AssertUnwindSafe(|| handler.handle_expect_100(&mut request)));
    if matches!(outcome, Ok(Ok(true))) && request.status().is_none() {
        // The hook may have sent its own interim response (Python's default does).
        let interim_sent = request.wfile.started();
        // The head goes back as it was (the hook may have changed it) for the handler.
        *io.head = into_head(&mut request);
        if !interim_sent {
            io.output
                .bytes
                .extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
        }
        // An error is remembered by the output; the connection ends at the next step.
        let _ = io.output.send_now(context.connection);
        return Ok(Pending {
            received,
            framing,
            expect: false,
            body: ahead,
            deadline,
        });
    }
    let outcome = outcome.map(|result| result.map(|_| ()));
    let failure = settle(&mut request, outcome);
    // The client holds its body back: the connection cannot carry another request.
    request.close_connection = true;
    complete(&mut request, io.tally);
    give_back(&mut request, io.head);
    Err(Exchanged {
        keep_alive: false,
        unread_input: true,
        failure,
        held_back: false,
    })
}

/// Offers the request, all here, to the handler: answered here, or handed off when it may
/// wait and `hand_off` allows (on the loop's own thread).
pub(super) fn dispatch<H: HttpHandler>(
    handler: &mut H,
    context: &ConnectionContext<'_>,
    io: Io<'_>,
    ready: Ready,
    hand_off: bool,
) -> Dispatch {
    let Ready {
        received,
        framing,
        mut spool,
    } = ready;
    let started = AtomicBool::new(false);
    let limits = &context.limits;
    let mut body = Body::new(
        io.rfile,
        io.socket,
        framing,
        limits.max_body_size,
        limits.body_timeout,
        false,
        &started,
    );
    if let Some(spool) = &mut spool {
        body = body.spooled(spool);
    }
    let wfile = ResponseWriter::new(context.connection, io.output, &started, context.inline);
    let mut request = new_request(context, io.head, received, body, wfile);
    if hand_off && handler.may_block(&request) {
        // The head goes back as the request had it, for the worker to lend it again.
        *io.head = into_head(&mut request);
        let ready = Ready {
            received,
            framing,
            spool,
        };
        return Dispatch::HandedOff(Box::new(Pending::of_ready(ready)));
    }
    if !context.inline {
        let answered = answer(handler, &mut request, false, context, io.tally);
        retire(&mut request, io.head, io.answered);
        return Dispatch::Answered(answered);
    }
    let answered = answer(handler, &mut request, false, context, io.tally);
    // From when the server began on it (a moment before the handler did) to its
    // response's completion: what the loop's other connections waited.
    let took = request.answered_in();
    if took >= SLOW_ON_LOOP {
        let message = format!(
            "\"{}\" took {} ms on the event loop's thread, and every other connection \
             waited; if such requests wait, say so with HttpHandler::may_block",
            request.requestline,
            took.as_millis()
        );
        if log::max_level() == log::LevelFilter::Off {
            // No logger: a mistake this costly is said once where a developer looks.
            static SAID: std::sync::Once = std::sync::Once::new();
            SAID.call_once(|| eprintln!("socketserver: {}", escape_control(&message)));
        } else {
            request.log_error(&message);
        }
    }
    retire(&mut request, io.head, io.answered);
    Dispatch::Answered(answered)
}

/// How long a request may hold the event loop's thread before a warning says so.
const SLOW_ON_LOOP: Duration = Duration::from_millis(200);
