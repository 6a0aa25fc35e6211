//! One HTTP connection: read a request head, answer the request, repeat while both sides
//! keep the connection open.
//!
//! This is where the protocol's promises are kept whatever the handler does: every request
//! gets exactly one response (a 500 if the handler sent none or failed before answering),
//! pipelined requests are answered in order and their answers leave together, an unread
//! body is drained or the connection closed, and malformed requests get their 4xx.

use std::any::Any;
use std::io::{self, Read, Write};
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use http::{HeaderMap, Method, StatusCode, Version};

use super::body::Body;
use super::handler::{dispatch, HttpHandler, HttpRequest, Settings};
use super::head::{
    expects_continue, find_head_end, framing, head_is_complete, parse_head, read_head,
    skip_blank_lines, Framing, Head, HeadError, Rejection,
};
use super::limits::Limits;
use super::response::{ResponseWriter, OUTPUT_BUFFER};
use super::socket::TimedSocket;
use crate::address::ClientAddress;
use crate::connection::Connection;
use crate::handler::{BoxError, HandlerResult, Park, RequestHandler, Rfile, StreamRequest, Wake};
use crate::output::Output;
use crate::server::ServerHandle;

/// Every [`HttpHandler`] serves connections of a stream server: the request loop of
/// Python's `BaseHTTPRequestHandler.handle`.
impl<H: HttpHandler> RequestHandler for H {
    type Request = StreamRequest;

    const RBUFSIZE: usize = 16 * 1024;
    // Responses leave in as few writes as possible; Nagle would only delay the last one.
    const DISABLE_NAGLE_ALGORITHM: bool = true;
    const NONBLOCKING: bool = <H as HttpHandler>::NONBLOCKING;

    fn handle(&mut self, stream: &mut StreamRequest) -> HandlerResult {
        serve_connection(self, stream)
    }
}

/// What one connection's requests share.
struct ConnectionContext<'c> {
    connection: &'c Connection,
    client_address: &'c ClientAddress,
    server: &'c ServerHandle,
    limits: Limits,
    settings: Settings,
    /// On the event loop's thread: writes never wait.
    inline: bool,
}

/// A connection's state between runs of `handle` on an event loop.
struct ConnectionState {
    socket: TimedSocket,
    head: Vec<u8>,
    /// No request served yet: the idle time is the head timeout.
    first: bool,
    /// When a head that has begun must be complete.
    head_deadline: Option<Instant>,
    /// A request whose head is read and whose body is awaited (here or on a worker).
    pending: Option<(Head, Framing, bool)>,
    /// When the body of the pending request must be here.
    body_deadline: Option<Instant>,
    /// The connection closes once its output has left; then linger if input was unread.
    closing: Option<Closing>,
    /// Discarding input until this time before closing.
    lingering: Option<Instant>,
}

/// Why the connection closes, kept while its last output leaves.
struct Closing {
    linger: bool,
    failure: Failure,
}

impl ConnectionState {
    fn new(connection: Connection) -> Self {
        ConnectionState {
            socket: TimedSocket::new(connection),
            head: Vec::with_capacity(1024),
            first: true,
            head_deadline: None,
            pending: None,
            body_deadline: None,
            closing: None,
            lingering: None,
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

fn serve_connection<H: HttpHandler>(handler: &mut H, stream: &mut StreamRequest) -> HandlerResult {
    let limits = handler.limits();
    let connection = stream.request.clone();
    let mut state = match stream
        .parking
        .state
        .take()
        .map(|s| s.downcast::<ConnectionState>())
    {
        Some(Ok(state)) => state,
        _ => {
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
        settings: Settings::of(handler),
        inline: stream.is_inline(),
    };
    let result = serve_requests(handler, &context, stream, &mut state);
    if stream.parking.requested.is_some() {
        stream.parking.state = Some(state);
    }
    result
}

/// What a run of `handle` on an event loop does next.
enum Next {
    /// Serve the request whose head is buffered.
    Serve,
    /// Answer 408: part of a head came, not the rest in time.
    Late,
    /// Park until the wake-up.
    Park(Wake, Option<Instant>),
    /// The connection is over.
    Close,
}

/// Serves requests while they are buffered or arriving; parks the connection when it would
/// wait, if it can.
fn serve_requests<H: HttpHandler>(
    handler: &mut H,
    context: &ConnectionContext<'_>,
    stream: &mut StreamRequest,
    state: &mut ConnectionState,
) -> HandlerResult {
    let limits = &context.limits;
    let parking = stream.can_park();
    let timed_out = std::mem::take(&mut stream.parking.timed_out);
    if parking {
        if let Some(next) = close_step(stream, state, limits, timed_out) {
            return finish_step(stream, state, limits, next);
        }
    }
    // Whether the socket may hold input not read yet: at first yes (the loop woke us), then
    // only if the last read filled the buffer. Not reading when it cannot saves a read that
    // would only say "nothing yet" before every park.
    let mut may_read = true;
    loop {
        let parsed = match state.pending.take() {
            Some(pending) => Ok(pending),
            None => {
                let late = if parking {
                    match next_request(stream, state, limits, timed_out, may_read)? {
                        Next::Serve => false,
                        Next::Late => true,
                        Next::Close => return close_after_output(stream, state, limits),
                        next => return finish_step(stream, state, limits, next),
                    }
                } else {
                    false
                };
                let idle = state.idle_timeout(limits);
                let read = if late {
                    Err(HeadError::TimedOut)
                } else {
                    read_head(
                        &mut stream.rfile,
                        &mut state.socket,
                        &mut state.head,
                        limits,
                        idle,
                    )
                };
                state.head_deadline = None;
                match read {
                    Ok(()) => parse_request(&state.head, limits),
                    Err(HeadError::Closed | HeadError::Idle) => break,
                    Err(HeadError::TimedOut) => Err(Rejection::new(
                        StatusCode::REQUEST_TIMEOUT,
                        "Request timed out",
                    )),
                    Err(HeadError::Rejected(rejection)) => Err(rejection),
                    Err(HeadError::Io(err)) if is_disconnect(&err) => break,
                    Err(HeadError::Io(err)) => return Err(err.into()),
                }
            }
        };
        state.first = false;
        let (keep_alive, unread_input, failure) = match parsed {
            Ok((head, framing, expect)) => {
                if context.inline && !timed_out {
                    let wait = match body_arrival(&framing, expect, &mut stream.rfile)? {
                        Arrival::Here => None,
                        Arrival::Coming => {
                            let deadline = *state
                                .body_deadline
                                .get_or_insert(Instant::now() + limits.body_timeout);
                            Some(Next::Park(Wake::Readable, Some(deadline)))
                        }
                        // Larger than the buffer, chunked, or held back for a 100 Continue:
                        // read it where waiting is allowed.
                        Arrival::Streamed => Some(Next::Park(Wake::Worker, None)),
                    };
                    if let Some(next) = wait {
                        state.pending = Some((head, framing, expect));
                        return finish_step(stream, state, limits, next);
                    }
                }
                state.body_deadline = None;
                exchange(
                    handler,
                    context,
                    &mut stream.rfile,
                    &mut state.socket,
                    &mut stream.output,
                    head,
                    framing,
                    expect,
                )
            }
            Err(rejection) => {
                reject(
                    context,
                    &mut stream.rfile,
                    &mut state.socket,
                    &mut stream.output,
                    rejection,
                )?;
                (false, true, Failure::None)
            }
        };
        if parking {
            if !keep_alive {
                state.closing = Some(Closing {
                    linger: unread_input,
                    failure,
                });
                let next = close_step(stream, state, limits, false).unwrap_or(Next::Close);
                return finish_step(stream, state, limits, next);
            }
            failure.into_result()?;
            may_read = !stream.rfile.drained();
            if !stream.output.is_empty() && !holds_back(&stream.output, stream.rfile.buffer()) {
                // The socket took only part of the answer: send the rest before reading on.
                let deadline = Instant::now() + limits.send_timeout;
                return finish_step(
                    stream,
                    state,
                    limits,
                    Next::Park(Wake::Writable, Some(deadline)),
                );
            }
            continue;
        }
        if !keep_alive {
            failure.into_result()?;
            if unread_input {
                linger(&mut state.socket);
            }
            break;
        }
        failure.into_result()?;
    }
    Ok(())
}

/// Where a request's body is, for a handler that must not wait for it.
enum Arrival {
    /// All buffered (or the client closed: the handler's read fails at once).
    Here,
    /// On its way, and it fits the buffer.
    Coming,
    /// To be read as it comes.
    Streamed,
}

/// Reads what has arrived of a request's body without waiting, and says where it is.
fn body_arrival(framing: &Framing, expect: bool, rfile: &mut Rfile) -> io::Result<Arrival> {
    let Framing::Length(length) = *framing else {
        return Ok(Arrival::Streamed);
    };
    if expect && (length as usize) > rfile.buffer().len() {
        return Ok(Arrival::Streamed);
    }
    loop {
        if rfile.buffer().len() as u64 >= length {
            return Ok(Arrival::Here);
        }
        if length > rfile.capacity() as u64 {
            return Ok(Arrival::Streamed);
        }
        match rfile.read_available() {
            Ok(0) => return Ok(Arrival::Here),
            Ok(_) => {}
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Ok(Arrival::Coming),
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Ok(Arrival::Here),
        }
    }
}

/// On an event loop: whether a whole head is buffered, reading what has arrived, and if
/// not, until when to wait for it.
fn next_request(
    stream: &mut StreamRequest,
    state: &mut ConnectionState,
    limits: &Limits,
    timed_out: bool,
    may_read: bool,
) -> io::Result<Next> {
    loop {
        skip_blank_lines(&mut stream.rfile);
        if head_is_complete(stream.rfile.buffer()) {
            return Ok(Next::Serve);
        }
        if stream.rfile.is_full() {
            // A head longer than the buffer: read on the blocking way (on a worker).
            return Ok(if stream.is_inline() {
                Next::Park(Wake::Worker, None)
            } else {
                Next::Serve
            });
        }
        if !may_read {
            break;
        }
        match stream.rfile.read_available() {
            Ok(0) => return Ok(Next::Close),
            Ok(_) => continue,
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) if is_disconnect(&err) => return Ok(Next::Close),
            Err(err) => return Err(err),
        }
    }
    let now = Instant::now();
    if stream.rfile.buffer().is_empty() {
        if timed_out {
            return Ok(Next::Close);
        }
        let idle = state.idle_timeout(limits);
        return Ok(Next::Park(Wake::Readable, Some(now + idle)));
    }
    let deadline = *state.head_deadline.get_or_insert(now + limits.head_timeout);
    if timed_out || now >= deadline {
        return Ok(Next::Late);
    }
    Ok(Next::Park(Wake::Readable, Some(deadline)))
}

/// On an event loop, for a connection that is closing: waits for its output to leave, then
/// lingers; `None` if it is not closing.
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
    if let Some(until) = state.lingering {
        if timed_out || !discard_input(stream) {
            return Some(Next::Close);
        }
        return Some(Next::Park(Wake::Readable, Some(until)));
    }
    let closing = state.closing.as_ref()?;
    if !stream.output.is_empty() {
        if timed_out {
            // The client does not read: give up on the rest.
            stream.output.abandon();
            return Some(Next::Close);
        }
        let deadline = Instant::now() + limits.send_timeout;
        return Some(Next::Park(Wake::Writable, Some(deadline)));
    }
    if !closing.linger || stream.request.shutdown(std::net::Shutdown::Write).is_err() {
        return Some(Next::Close);
    }
    let until = Instant::now() + LINGER_TIME;
    state.lingering = Some(until);
    if !discard_input(stream) {
        return Some(Next::Close);
    }
    Some(Next::Park(Wake::Readable, Some(until)))
}

/// Reads and drops what the client sent; `false` once it closed (or failed).
fn discard_input(stream: &mut StreamRequest) -> bool {
    let mut scratch = [0u8; 8192];
    loop {
        match stream.request.recv_now(&mut scratch) {
            Ok(0) => return false,
            Ok(_) => {}
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => return true,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
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
            if stream.rfile.buffer().is_empty() {
                stream.rfile.release();
            }
            if wake == Wake::Readable {
                // An idle connection keeps no buffer: ten thousand of them cost nothing.
                stream.output.release_buffer();
            }
            stream.park_until(Park {
                wake,
                deadline,
                send_timeout: (wake == Wake::Writable).then_some(limits.send_timeout),
                resume_at_deadline: true,
            });
            Ok(())
        }
        Next::Serve | Next::Late | Next::Close => match state.closing.take() {
            Some(closing) => closing.failure.into_result(),
            None => Ok(()),
        },
    }
}

/// The client closed its side (or the connection failed) between requests: once the
/// output still waiting has left, the connection ends.
fn close_after_output(
    stream: &mut StreamRequest,
    state: &mut ConnectionState,
    limits: &Limits,
) -> HandlerResult {
    if stream.output.is_empty() {
        return finish_step(stream, state, limits, Next::Close);
    }
    state.closing.get_or_insert(Closing {
        linger: false,
        failure: Failure::None,
    });
    let next = close_step(stream, state, limits, false).unwrap_or(Next::Close);
    finish_step(stream, state, limits, next)
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

/// Parses and checks a head read into `buf`.
fn parse_request(buf: &[u8], limits: &Limits) -> Result<(Head, Framing, bool), Rejection> {
    let head = parse_head(buf, limits)?;
    let framing = framing(&head)?;
    if let Framing::Length(n) = framing {
        if n > limits.max_body_size {
            let mut rejection = Rejection::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "Request body of {n} bytes is larger than {}",
                    limits.max_body_size
                ),
            );
            rejection.requestline =
                String::from_utf8_lossy(head.raw_requestline.trim_ascii_end()).into_owned();
            return Err(rejection);
        }
    }
    let expect = expects_continue(&head)?;
    Ok((head, framing, expect))
}

/// Answers a request that never reached a handler with its error status, and closes.
fn reject(
    context: &ConnectionContext<'_>,
    rfile: &mut Rfile,
    socket: &mut TimedSocket,
    out: &mut Output,
    rejection: Rejection,
) -> HandlerResult {
    let started = AtomicBool::new(false);
    // Only the method matters for the answer: a HEAD gets the error's head, no page.
    let method = match rejection.requestline.split(' ').next() {
        Some("HEAD") => Method::HEAD,
        _ => Method::GET,
    };
    let mut request = HttpRequest::new(
        method,
        String::new(),
        Version::HTTP_10,
        rejection.requestline.into_bytes(),
        HeaderMap::new(),
        context.client_address.clone(),
        context.server.clone(),
        Body::new(
            rfile,
            socket,
            Framing::Length(0),
            0,
            context.limits.body_timeout,
            false,
            &started,
        ),
        ResponseWriter::new(context.connection, out, &started, context.inline),
        context.settings,
    );
    request.close_connection = true;
    request.send_error(rejection.status, rejection.message.as_str())?;
    complete(&mut request);
    Ok(())
}

/// Runs the handler on one request and completes its response: whether the connection
/// stays open for the next request, and whether the client sent more than was read.
#[allow(clippy::too_many_arguments)]
fn exchange<H: HttpHandler>(
    handler: &mut H,
    context: &ConnectionContext<'_>,
    rfile: &mut Rfile,
    socket: &mut TimedSocket,
    out: &mut Output,
    head: Head,
    framing: Framing,
    expect_continue: bool,
) -> (bool, bool, Failure) {
    let started = AtomicBool::new(false);
    let limits = &context.limits;
    let body = Body::new(
        rfile,
        socket,
        framing,
        limits.max_body_size,
        limits.body_timeout,
        expect_continue,
        &started,
    );
    let mut request = HttpRequest::new(
        head.method,
        head.target,
        head.version,
        head.raw_requestline,
        head.headers,
        context.client_address.clone(),
        context.server.clone(),
        body,
        ResponseWriter::new(context.connection, out, &started, context.inline),
        context.settings,
    );
    // `100 Continue` goes straight to the socket when the handler first reads the body, so
    // the answers to earlier pipelined requests still buffered must leave before it.
    if expect_continue && request.wfile.flush().is_err() {
        // The client is gone or not reading: there is nobody to answer.
        return (false, false, Failure::None);
    }
    let outcome = catch_unwind(AssertUnwindSafe(|| -> HandlerResult {
        if expect_continue && !handler.handle_expect_100(&mut request)? {
            return Ok(());
        }
        dispatch(handler, &mut request)
    }));
    let failure = settle(&mut request, outcome);
    if !request.close_connection && !request.rfile.is_complete() {
        // The client may wait for the answer before it sends the rest of the body.
        if request.wfile.flush().is_err() || !request.rfile.drain(limits.max_drain) {
            request.close_connection = true;
        }
    }
    let keep_alive = complete(&mut request);
    let unread_input = !request.rfile.is_complete() || !request.rfile.input_buffer().is_empty();
    (keep_alive, unread_input, failure)
}

/// What the handler left to report once the response is complete.
enum Failure {
    None,
    Error(BoxError),
    Panic(Box<dyn Any + Send>),
}

impl Failure {
    /// The handler's outcome, reported now: its error returned, its panic resumed.
    fn into_result(self) -> HandlerResult {
        match self {
            Failure::None => Ok(()),
            Failure::Error(err) => Err(err),
            Failure::Panic(payload) => resume_unwind(payload),
        }
    }
}

/// Makes sure the request has a response, turning the handler's failure into the status it
/// calls for: the body's 400/408/413 for a bad body, 500 for anything else (and the
/// connection closes), or a quiet close when the client went away.
fn settle(request: &mut HttpRequest<'_>, outcome: std::thread::Result<HandlerResult>) -> Failure {
    // A head the handler began and never ended is no response: if none of it has left,
    // drop it so that the client gets the status below instead of a truncated head.
    request.discard_unended_response();
    let (status, failure) = match outcome {
        Ok(Ok(())) if request.wfile.started() => {
            if !request.response_complete() {
                // Headers never ended: the client cannot tell where this response stops.
                request.close_connection = true;
            }
            return Failure::None;
        }
        Ok(Ok(())) => {
            request.log_error("the handler returned without sending a response");
            (StatusCode::INTERNAL_SERVER_ERROR, Failure::None)
        }
        Ok(Err(err)) => match request.rfile.failure() {
            Some(status) => (status, Failure::None),
            None if error_is_disconnect(&*err) => {
                (StatusCode::INTERNAL_SERVER_ERROR, Failure::None)
            }
            None => (StatusCode::INTERNAL_SERVER_ERROR, Failure::Error(err)),
        },
        Err(panic) => (StatusCode::INTERNAL_SERVER_ERROR, Failure::Panic(panic)),
    };
    request.close_connection = true;
    if !request.wfile.started() {
        // If this fails the client is gone; closing is all that is left.
        let _ = request.send_error(status, None);
    }
    failure
}

/// Whether answers are held back to leave together with the answer to the next pipelined
/// request, which is already here: the answers to one read leave in one write.
pub(super) fn holds_back(output: &Output, input: &[u8]) -> bool {
    output.file.is_none()
        && output.bytes.len() < OUTPUT_BUFFER / 2
        && find_head_end(input, 0).is_some()
}

/// Sends what is buffered (unless [held back](holds_back) for the next pipelined answer)
/// and logs the request. `true` if the connection stays open.
fn complete(request: &mut HttpRequest<'_>) -> bool {
    let mut keep_alive = !request.close_connection;
    if !keep_alive || !request.wfile.holds_back(request.rfile.input_buffer()) {
        if let Err(err) = request.wfile.flush() {
            if !is_disconnect(&err) {
                request.log_error(&format!("cannot send the response: {err}"));
            }
            keep_alive = false;
        }
    }
    let code = OrDash(request.status().map(|s| s.as_u16().into()));
    let size = OrDash(Some(request.wfile.body_bytes()).filter(|&n| n > 0));
    request.log_request(code, size);
    keep_alive
}

/// A number, or `-` where Common Log Format has no value.
struct OrDash(Option<u64>);

impl std::fmt::Display for OrDash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(n) => write!(f, "{n}"),
            None => f.write_str("-"),
        }
    }
}

fn is_disconnect(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::UnexpectedEof
    )
}

fn error_is_disconnect(err: &(dyn std::error::Error + 'static)) -> bool {
    err.downcast_ref::<io::Error>().is_some_and(is_disconnect)
}
