//! One HTTP connection: read a request, answer it, repeat while both sides keep the
//! connection open.
//!
//! Two drivers share the exchange of one request ([`exchange`](super::exchange)):
//!
//! - [`serve_blocking`], for a thread of its own (threading, a pool, a forked child):
//!   reads wait, bounded by the timeouts of [`Limits`].
//! - [`serve_parked`], for an event loop: nothing waits. The head and the body are read as
//!   they arrive ([`ahead`](super::ahead)), the connection parked in between with a deadline
//!   for each stage; a request that [may block](HttpHandler::may_block) moves to a worker once
//!   it is all here; output the socket does not take leaves as it drains; a closing
//!   connection lingers parked.

use std::io::{self, Read};
use std::time::{Duration, Instant};

use http::StatusCode;

use super::ahead::{answer_expect, dispatch, BodyStep, Dispatch, Pending, Ready};
use super::exchange::{
    exchange_streamed, is_disconnect, reject, ConnectionContext, Exchanged, Failure, Io, Parsed,
};
use super::handler::{Attributes, HttpHandler};
use super::head::{
    expects_continue, framing, parse_head, read_head, take_head, Framing, HeadError, HeadStorage,
    Rejection,
};
use super::limits::Limits;
use super::metrics::Tally;
use super::socket::TimedSocket;
use super::Version;
use crate::handler::{HandlerResult, Park, RequestHandler, StreamRequest, Wake};
use crate::server::Tracked;
use crate::socket::StreamSocket;

/// Every [`HttpHandler`] serves connections of a stream server: the request loop of
/// Python's `BaseHTTPRequestHandler.handle`, with the handler's `PROTOCOL_VERSION` and
/// `limits`.
impl<H: HttpHandler> RequestHandler for H {
    type Request = StreamRequest;

    const RBUFSIZE: usize = 16 * 1024;
    // Responses leave in as few writes as possible; Nagle would only delay the last one.
    const DISABLE_NAGLE_ALGORITHM: bool = true;
    // Python's HTTPServer.
    const ALLOW_REUSE_ADDRESS: bool = true;
    // On an event loop the connection itself never waits (it parks), and a request that
    // may is moved to a worker by `HttpHandler::may_block`: every connection starts on the
    // loop's thread.
    const NONBLOCKING: bool = true;

    fn handle(&mut self, stream: &mut StreamRequest) -> HandlerResult {
        let (limits, version) = (self.limits(), H::PROTOCOL_VERSION);
        serve_connection(self, limits, version, stream)
    }
}

/// An [`HttpHandler`] with the protocol version and limits chosen at run time, as
/// `simple_http --protocol` chooses them: what a server runs, in place of the handler.
///
/// It is a [`RequestHandler`] and not an `HttpHandler`, so it cannot end up inside another
/// handler where its settings would go unread: a server has one place for them.
///
/// ```no_run
/// use socketserver::files::SimpleHttpHandler;
/// use socketserver::http::{Configured, HttpServer, Limits, Version};
///
/// let files = SimpleHttpHandler::new("www")?;
/// let limits = Limits { max_body_size: 1 << 20, ..Limits::default() };
/// let handler = Configured::new(files).protocol_version(Version::HTTP_11).limits(limits);
/// HttpServer::bind("127.0.0.1:8000", handler)?.serve_forever()?;
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// Inside a handler it is no use, and the compiler says so:
///
/// ```compile_fail,E0599
/// # use socketserver::files::SimpleHttpHandler;
/// # use socketserver::http::{Configured, HttpHandler, HttpRequest};
/// # use socketserver::HandlerResult;
/// #[derive(Clone)]
/// struct App {
///     files: Configured<SimpleHttpHandler>,
/// }
///
/// impl HttpHandler for App {
///     fn fallback(&mut self, req: &mut HttpRequest<'_>) -> HandlerResult {
///         self.files.dispatch(req) // `Configured` is no `HttpHandler`
///     }
/// }
/// ```
#[derive(Clone, Debug)]
pub struct Configured<H> {
    handler: H,
    limits: Limits,
    protocol_version: Version,
}

impl<H: HttpHandler> Configured<H> {
    /// `handler` with its own `PROTOCOL_VERSION` and `limits`, to change.
    pub fn new(handler: H) -> Self {
        Configured {
            limits: handler.limits(),
            protocol_version: H::PROTOCOL_VERSION,
            handler,
        }
    }

    /// `HTTP/1.0` (Python's default) or `HTTP/1.1` (persistent connections).
    pub fn protocol_version(mut self, version: Version) -> Self {
        self.protocol_version = version;
        self
    }

    /// The sizes and timeouts connections are held to.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The handler that answers the requests.
    pub fn handler(&self) -> &H {
        &self.handler
    }
}

impl<H: HttpHandler> RequestHandler for Configured<H> {
    type Request = StreamRequest;

    const RBUFSIZE: usize = H::RBUFSIZE;
    const DISABLE_NAGLE_ALGORITHM: bool = H::DISABLE_NAGLE_ALGORITHM;
    const ALLOW_REUSE_ADDRESS: bool = H::ALLOW_REUSE_ADDRESS;
    const NONBLOCKING: bool = H::NONBLOCKING;

    fn handle(&mut self, stream: &mut StreamRequest) -> HandlerResult {
        serve_connection(
            &mut self.handler,
            self.limits,
            self.protocol_version,
            stream,
        )
    }
}

/// A connection's state between requests, and on an event loop between runs of `handle`
/// (then kept with the parked connection).
pub(crate) struct ConnectionState {
    socket: TimedSocket,
    /// The head being read (a parsed head's header values share its buffer, see
    /// [`parse_head`]), and the storage of the last request's head, for the next. Given
    /// back to the thread's pool while the connection is idle on an event loop.
    head: HeadStorage,
    /// No request served yet: the idle time is the head timeout.
    first: bool,
    /// When this run's last answer completed, unless a read came since: the time the
    /// server began on a pipelined request that was already here.
    answered: Option<Instant>,
    /// Answers counted, for the server's metrics once they have left.
    tally: Tally,
    /// When a head that has begun must be complete.
    head_deadline: Option<Instant>,
    /// A request whose head is read and whose body is awaited (here or on a worker).
    pending: Option<Pending>,
    /// The connection closes once its output has left; then lingers if input was unread.
    closing: Option<Closing>,
    /// Discarding input until this time before closing.
    lingering: Option<Instant>,
    /// Bytes discarded so far while lingering.
    lingered: usize,
}

/// Why the connection closes, kept while its last output leaves.
struct Closing {
    linger: bool,
    failure: Failure,
}

impl ConnectionState {
    fn new(connection: StreamSocket) -> Self {
        ConnectionState {
            socket: TimedSocket::new(connection),
            head: HeadStorage::default(),
            first: true,
            answered: None,
            tally: Tally::default(),
            head_deadline: None,
            pending: None,
            closing: None,
            lingering: None,
            lingered: 0,
        }
    }

    /// How long the connection may stay silent before its next request.
    fn idle_timeout(&self, limits: &Limits) -> Duration {
        if self.first {
            limits.head_timeout
        } else {
            limits.keep_alive_timeout
        }
    }
}

fn serve_connection<H: HttpHandler>(
    handler: &mut H,
    limits: Limits,
    protocol_version: Version,
    stream: &mut StreamRequest,
) -> HandlerResult {
    let connection = stream.request.clone();
    let mut state = match stream.parking.http.take() {
        Some(state) => state,
        None => {
            connection
                .set_write_timeout(Some(limits.send_timeout.max(Duration::from_millis(1))))?;
            Box::new(ConnectionState::new(connection.clone()))
        }
    };
    let client_address = stream.client_address.clone();
    let server = stream.server.clone();
    let context = ConnectionContext {
        connection: &connection,
        client_address: &client_address,
        server: &server,
        limits,
        attributes: Attributes::of::<H>(protocol_version),
        inline: stream.is_inline(),
    };
    let result = if stream.can_park() {
        serve_parked(handler, &context, stream, &mut state)
    } else {
        serve_blocking(handler, &context, stream, &mut state)
    };
    // Whatever way the run ended, nothing it counted is left out.
    state.tally.add_to(server.stats().http());
    if stream.parking.requested.is_some() {
        stream.parking.http = Some(state);
    }
    result
}

fn io<'s>(stream: &'s mut StreamRequest, state: &'s mut ConnectionState) -> Io<'s> {
    Io {
        rfile: &mut stream.rfile,
        socket: &mut state.socket,
        output: &mut stream.output,
        head: &mut state.head.head,
        answered: &mut state.answered,
        tally: &mut state.tally,
    }
}

/// Serves the connection's requests on a thread of its own: reads wait, bounded by the
/// timeouts.
fn serve_blocking<H: HttpHandler>(
    handler: &mut H,
    context: &ConnectionContext<'_>,
    stream: &mut StreamRequest,
    state: &mut ConnectionState,
) -> HandlerResult {
    let limits = &context.limits;
    if !state.head.is_held() {
        state.head = HeadStorage::take();
    }
    loop {
        let idle = state.idle_timeout(limits);
        // Between requests of a keep-alive connection a graceful shutdown may close it.
        let between = !state.first && stream.rfile.buffer().is_empty();
        let open = &stream.open;
        open.set_idle(between);
        // Busy from the head's first bytes: a drain must answer a request begun.
        let mut begun = || {
            if between {
                open.set_idle(false);
            }
        };
        let read = read_head(
            &mut stream.rfile,
            &mut state.socket,
            &mut state.head.buf,
            limits,
            idle,
            &mut begun,
        );
        let parsed = match read {
            Ok(()) => parse_request(&mut state.head, limits, Instant::now()),
            Err(HeadError::Closed | HeadError::Idle) => return Ok(()),
            Err(HeadError::TimedOut) => Err(head_timed_out()),
            Err(HeadError::Rejected(rejection)) => Err(rejection),
            Err(HeadError::Io(err)) if is_disconnect(&err) => return Ok(()),
            Err(HeadError::Io(err)) => return Err(err.into()),
        };
        state.first = false;
        let exchanged = match parsed {
            Ok(parsed) => exchange_streamed(handler, context, io(stream, state), parsed),
            Err(rejection) => reject(context, io(stream, state), rejection)?,
        };
        if !exchanged.keep_alive {
            if exchanged.unread_input {
                linger(&mut state.socket);
            }
            return exchanged.failure.into_result();
        }
        exchanged.failure.into_result()?;
    }
}

/// What a run of `handle` on an event loop does next.
enum Next {
    /// Park until the wake-up.
    Park(Wake, Option<Instant>),
    /// The connection is over.
    Close,
}

/// Serves the requests that are here, on an event loop; parks the connection whenever it
/// would wait.
fn serve_parked<H: HttpHandler>(
    handler: &mut H,
    context: &ConnectionContext<'_>,
    stream: &mut StreamRequest,
    state: &mut ConnectionState,
) -> HandlerResult {
    let limits = &context.limits;
    // This run is for a deadline that passed: the stage it was set for has failed.
    let mut timed_out = std::mem::take(&mut stream.parking.timed_out);
    stream.open.set_idle(false);
    if let Some(next) = close_step(stream, state, limits, timed_out) {
        return finish_step(stream, state, limits, next);
    }
    // Whether the socket may hold input not read yet: at first yes (the loop woke us), then
    // only if the last read filled the buffer. Not reading when it cannot saves a read that
    // would only say "nothing yet" before every park.
    let mut may_read = true;
    // On the loop's own thread the requests of this run count as one in flight while it
    // runs (it never waits), rather than each paying for the gauge.
    let mut in_flight = None;
    loop {
        let mut pending = match state.pending.take() {
            Some(pending) => pending,
            None => match next_head(stream, state, limits, timed_out, may_read)? {
                HeadStep::Here => {
                    let received = state.answered.take().unwrap_or_else(Instant::now);
                    let parsed = parse_request(&mut state.head, limits, received);
                    state.first = false;
                    match parsed {
                        // The usual case: the body, if any, came with the head.
                        Ok(parsed) if Ready::is_here(&parsed, stream.rfile.buffer()) => {
                            timed_out = false;
                            let ready = Ready::new(parsed);
                            count_in_flight(&mut in_flight, context);
                            if let Some(end) = serve_ready(handler, context, stream, state, ready) {
                                return end;
                            }
                            may_read = !stream.rfile.drained();
                            continue;
                        }
                        Ok(parsed) => Pending::new(parsed, stream.rfile.capacity(), limits),
                        Err(rejection) => {
                            let exchanged = reject(context, io(stream, state), rejection)?;
                            return close(stream, state, limits, exchanged);
                        }
                    }
                }
                HeadStep::Refused(rejection) => {
                    state.head.buf.clear();
                    let exchanged = reject(context, io(stream, state), rejection)?;
                    return close(stream, state, limits, exchanged);
                }
                HeadStep::Wait(deadline) => {
                    // Between requests of a keep-alive connection a graceful shutdown may
                    // close it.
                    let idle = !state.first && state.head.buf.is_empty();
                    stream.open.set_idle(idle);
                    return finish_step(
                        stream,
                        state,
                        limits,
                        Next::Park(Wake::Readable, deadline),
                    );
                }
                HeadStep::Closed => return close_after_output(stream, state, limits),
            },
        };
        if pending.awaits_continue() {
            pending = match answer_expect(handler, context, io(stream, state), pending) {
                Ok(pending) => pending,
                Err(exchanged) => return close(stream, state, limits, exchanged),
            };
            if stream.output.failed() {
                // Nobody is left to send the body to.
                return close_after_output(stream, state, limits);
            }
        }
        match pending.read_body(&mut stream.rfile, limits, timed_out) {
            BodyStep::Here => {}
            BodyStep::Wait(deadline) => {
                state.pending = Some(pending);
                let next = Next::Park(Wake::Readable, Some(deadline));
                return finish_step(stream, state, limits, next);
            }
            BodyStep::Refused(mut rejection) => {
                rejection.requestline = state.head.head.requestline.clone();
                let exchanged = reject(context, io(stream, state), rejection)?;
                return close(stream, state, limits, exchanged);
            }
        }
        timed_out = false;
        count_in_flight(&mut in_flight, context);
        if let Some(end) = serve_ready(handler, context, stream, state, pending.into_ready()) {
            return end;
        }
        may_read = !stream.rfile.drained();
    }
}

/// Counts this run of an event loop's own thread in flight, from its first answer on
/// (a worker's answers count themselves, see [`answer`]).
fn count_in_flight<'c>(slot: &mut Option<Tracked<'c>>, context: &ConnectionContext<'c>) {
    if context.inline && slot.is_none() {
        *slot = Some(context.server.stats().request_in_flight());
    }
}

/// Answers a request that is all here, on the loop's thread (or hands it to a worker if it
/// may wait), or on a worker. `Some`: this run of `handle` ends with that; `None`: the
/// connection goes on to the next request.
fn serve_ready<H: HttpHandler>(
    handler: &mut H,
    context: &ConnectionContext<'_>,
    stream: &mut StreamRequest,
    state: &mut ConnectionState,
    ready: Ready,
) -> Option<HandlerResult> {
    let limits = &context.limits;
    let exchanged = match dispatch(handler, context, io(stream, state), ready, context.inline) {
        Dispatch::Answered(exchanged) => exchanged,
        Dispatch::HandedOff(pending) => {
            state.pending = Some(*pending);
            let next = Next::Park(Wake::Worker, None);
            return Some(finish_step(stream, state, limits, next));
        }
    };
    if !exchanged.keep_alive {
        return Some(close(stream, state, limits, exchanged));
    }
    if let Err(err) = exchanged.failure.into_result() {
        return Some(Err(err));
    }
    if !stream.output.is_empty() && !exchanged.held_back {
        // The socket took only part of the answer: send the rest before reading on.
        let deadline = Instant::now() + limits.send_timeout;
        let next = Next::Park(Wake::Writable, Some(deadline));
        return Some(finish_step(stream, state, limits, next));
    }
    None
}

/// Where the next request's head stands, on an event loop.
enum HeadStep {
    /// All here, in the connection's head buffer.
    Here,
    /// Malformed, too large, or too late: answer this, and close.
    Refused(Rejection),
    /// Not all here: wait for more until then.
    Wait(Option<Instant>),
    /// The client closed (or stayed silent too long between requests).
    Closed,
}

/// Collects what has arrived of the next head, without waiting.
fn next_head(
    stream: &mut StreamRequest,
    state: &mut ConnectionState,
    limits: &Limits,
    timed_out: bool,
    may_read: bool,
) -> io::Result<HeadStep> {
    let mut received = false;
    loop {
        if !state.head.is_held() && !stream.rfile.buffer().is_empty() {
            state.head = HeadStorage::take();
        }
        match take_head(&mut stream.rfile, &mut state.head.buf, limits) {
            Ok(true) => {
                state.head_deadline = None;
                return Ok(HeadStep::Here);
            }
            Ok(false) => {}
            Err(rejection) => return Ok(HeadStep::Refused(rejection)),
        }
        if !may_read {
            break;
        }
        match stream.rfile.read_available() {
            Ok(0) => return Ok(HeadStep::Closed),
            Ok(_) => {
                received = true;
                // What the head holds now arrived now, not by the last answer.
                state.answered = None;
                continue;
            }
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) if is_disconnect(&err) => return Ok(HeadStep::Closed),
            Err(err) => return Err(err),
        }
    }
    let now = Instant::now();
    if received {
        // Blank lines count as the start of a head, as for the blocking reader: a client
        // cannot keep an idle connection open with a line end every few seconds.
        state.head_deadline.get_or_insert(now + limits.head_timeout);
    }
    if state.head.buf.is_empty() && state.head_deadline.is_none() {
        if timed_out {
            return Ok(HeadStep::Closed);
        }
        let idle = now + state.idle_timeout(limits);
        // A TLS handshake has a limit of its own: a client that sends its hello a byte at
        // a time restarts the idle wait at every byte, never this.
        let until = match stream.request.handshake_deadline() {
            Some(handshake) => idle.min(handshake),
            None => idle,
        };
        return Ok(HeadStep::Wait(Some(until)));
    }
    let deadline = *state.head_deadline.get_or_insert(now + limits.head_timeout);
    if timed_out || now >= deadline {
        state.head_deadline = None;
        return Ok(HeadStep::Refused(head_timed_out()));
    }
    Ok(HeadStep::Wait(Some(deadline)))
}

fn head_timed_out() -> Rejection {
    Rejection::new(StatusCode::REQUEST_TIMEOUT, "Request timed out")
}

/// After an exchange that ends the connection: close once the output has left.
fn close(
    stream: &mut StreamRequest,
    state: &mut ConnectionState,
    limits: &Limits,
    exchanged: Exchanged,
) -> HandlerResult {
    state.closing = Some(Closing {
        linger: exchanged.unread_input,
        failure: exchanged.failure,
    });
    let next = close_step(stream, state, limits, false).unwrap_or(Next::Close);
    finish_step(stream, state, limits, next)
}

/// The client closed its side (or the connection failed) between requests: once the
/// output still waiting has left, the connection ends.
fn close_after_output(
    stream: &mut StreamRequest,
    state: &mut ConnectionState,
    limits: &Limits,
) -> HandlerResult {
    let quietly = Exchanged {
        keep_alive: false,
        unread_input: false,
        failure: Failure::None,
        held_back: false,
    };
    close(stream, state, limits, quietly)
}

/// On an event loop: what a connection whose output failed, timed out or is closing does
/// (wait for its output to leave, then linger); `None` if it is none of these.
fn close_step(
    stream: &mut StreamRequest,
    state: &mut ConnectionState,
    limits: &Limits,
    timed_out: bool,
) -> Option<Next> {
    if stream.output.failed() {
        // The client is gone, or a file shrank under sendfile: the response cannot be
        // finished, and the connection cannot carry another.
        return Some(Next::Close);
    }
    if timed_out && !stream.output.is_empty() {
        // The client stopped reading: give up on the rest.
        stream.output.abandon();
        return Some(Next::Close);
    }
    if let Some(until) = state.lingering {
        if timed_out || !discard_input(stream, state) {
            return Some(Next::Close);
        }
        return Some(Next::Park(Wake::Readable, Some(until)));
    }
    let closing = state.closing.as_ref()?;
    if !stream.output.is_empty() {
        let deadline = Instant::now() + limits.send_timeout;
        return Some(Next::Park(Wake::Writable, Some(deadline)));
    }
    if !closing.linger || stream.request.shutdown(std::net::Shutdown::Write).is_err() {
        return Some(Next::Close);
    }
    let until = Instant::now() + LINGER_TIME;
    state.lingering = Some(until);
    if !discard_input(stream, state) {
        return Some(Next::Close);
    }
    Some(Next::Park(Wake::Readable, Some(until)))
}

/// Reads and drops what the client sent, up to what lingering allows; `false` once it
/// closed (or failed, or sent more than [`LINGER_BYTES`]).
fn discard_input(stream: &mut StreamRequest, state: &mut ConnectionState) -> bool {
    let mut scratch = [0u8; 8192];
    // A bounded share per wake-up: a fast sender must not keep the loop's thread reading.
    for _ in 0..8 {
        match stream.request.recv_now(&mut scratch) {
            Ok(0) => return false,
            Ok(n) => {
                state.lingered += n;
                if state.lingered >= LINGER_BYTES {
                    return false;
                }
            }
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => return true,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
    true
}

/// Parks the connection, or ends this run of `handle` for good (with the failure that
/// closed it, if any).
fn finish_step(
    stream: &mut StreamRequest,
    state: &mut ConnectionState,
    limits: &Limits,
    next: Next,
) -> HandlerResult {
    match next {
        Next::Park(wake, deadline) => {
            // The next run begins with a read: no answer of this one is its start.
            state.answered = None;
            if stream.rfile.buffer().is_empty() {
                stream.rfile.release();
            }
            if wake == Wake::Readable {
                // An idle connection keeps no buffer: ten thousand of them cost nothing.
                stream.output.release_buffer();
                // Not while a request waits for its body: its head is in the storage.
                if state.pending.is_none() {
                    HeadStorage::give(&mut state.head);
                }
            }
            // Output waiting for a worker's turn is sent first, as for a Writable park: a
            // client that stops reading must not keep it parked without a deadline.
            let sending =
                wake == Wake::Writable || (wake == Wake::Worker && !stream.output.is_empty());
            let send_timeout = sending.then_some(limits.send_timeout);
            let deadline = deadline.or(send_timeout.map(|t| Instant::now() + t));
            stream.park_until(Park {
                wake,
                deadline,
                send_timeout,
                resume_at_deadline: true,
            });
            Ok(())
        }
        Next::Close => {
            HeadStorage::give(&mut state.head);
            match state.closing.take() {
                Some(closing) => closing.failure.into_result(),
                None => Ok(()),
            }
        }
    }
}

/// How long, and for how many bytes, a connection closed with input unread waits for the
/// client to stop sending.
const LINGER_TIME: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 1 << 20;

/// Closes our side and reads what the client still sends, for a while. Closing a socket with
/// unread input makes the kernel answer with a reset, and a reset can destroy the response
/// before the client has read it: the 413 for an upload it is still sending, say (nginx's
/// "lingering close"). On an event loop the connection lingers parked instead.
fn linger(socket: &mut TimedSocket) {
    if socket
        .connection()
        .shutdown(std::net::Shutdown::Write)
        .is_err()
    {
        return;
    }
    let deadline = Instant::now() + LINGER_TIME;
    let mut budget = LINGER_BYTES;
    let mut scratch = [0u8; 8192];
    while budget > 0 {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || socket.set_read_timeout(left).is_err() {
            return;
        }
        match socket.connection().read(&mut scratch) {
            Ok(0) | Err(_) => return,
            Ok(n) => budget = budget.saturating_sub(n),
        }
    }
}

/// Parses and checks the head read into `storage`, leaving its buffer empty for the next.
fn parse_request(
    storage: &mut HeadStorage,
    limits: &Limits,
    received: Instant,
) -> Result<Parsed, Rejection> {
    let buf = storage.buf.split().freeze();
    let head = &mut storage.head;
    let fields = parse_head(buf, head, limits)?;
    let framing = framing(head, fields)?;
    if let Framing::Length(n) = framing {
        if n > limits.max_body_size {
            let mut rejection = Rejection::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "Request body of {n} bytes is larger than {}",
                    limits.max_body_size
                ),
            );
            rejection.requestline = head.requestline.clone();
            return Err(rejection);
        }
    }
    let expect = expects_continue(head, fields)?;
    Ok(Parsed {
        framing,
        expect,
        received,
    })
}
