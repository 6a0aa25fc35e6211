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
    expects_continue, find_head_end, framing, parse_head, read_head, Framing, Head, HeadError,
    Rejection,
};
use super::limits::Limits;
use super::response::{ResponseWriter, OUTPUT_BUFFER};
use super::socket::TimedSocket;
use crate::address::ClientAddress;
use crate::connection::Connection;
use crate::handler::{BoxError, HandlerResult, RequestHandler, Rfile, StreamRequest};
use crate::server::ServerHandle;

/// Every [`HttpHandler`] serves connections of a stream server: the request loop of
/// Python's `BaseHTTPRequestHandler.handle`.
impl<H: HttpHandler> RequestHandler for H {
    type Request = StreamRequest;

    const RBUFSIZE: usize = 16 * 1024;
    // Responses leave in as few writes as possible; Nagle would only delay the last one.
    const DISABLE_NAGLE_ALGORITHM: bool = true;

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
}

fn serve_connection<H: HttpHandler>(handler: &mut H, stream: &mut StreamRequest) -> HandlerResult {
    let limits = handler.limits();
    let connection = stream.request.clone();
    connection.set_write_timeout(Some(limits.send_timeout.max(Duration::from_millis(1))))?;
    let context = ConnectionContext {
        connection: &connection,
        client_address: &stream.client_address,
        server: &stream.server,
        limits,
        settings: Settings::of(handler),
    };
    let mut socket = TimedSocket::new(connection.clone());
    let mut head = Vec::with_capacity(1024);
    let mut out = Vec::with_capacity(OUTPUT_BUFFER);
    let mut idle = limits.head_timeout;
    loop {
        let read = read_head(&mut stream.rfile, &mut socket, &mut head, &limits, idle);
        idle = limits.keep_alive_timeout;
        let parsed = match read {
            Ok(()) => parse_request(&head, &limits),
            Err(HeadError::Closed | HeadError::Idle) => break,
            Err(HeadError::TimedOut) => Err(Rejection::new(
                StatusCode::REQUEST_TIMEOUT,
                "Request timed out",
            )),
            Err(HeadError::Rejected(rejection)) => Err(rejection),
            Err(HeadError::Io(err)) if is_disconnect(&err) => break,
            Err(HeadError::Io(err)) => return Err(err.into()),
        };
        let (keep_alive, unread_input) = match parsed {
            Ok((head, framing, expect)) => exchange(
                handler,
                &context,
                &mut stream.rfile,
                &mut socket,
                &mut out,
                head,
                framing,
                expect,
            )?,
            Err(rejection) => {
                reject(
                    &context,
                    &mut stream.rfile,
                    &mut socket,
                    &mut out,
                    rejection,
                )?;
                (false, true)
            }
        };
        if !keep_alive {
            if unread_input {
                linger(&mut socket);
            }
            break;
        }
    }
    Ok(())
}

/// How long, and for how many bytes, a connection closed with input unread waits for the
/// client to stop sending.
const LINGER_TIME: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 1 << 20;

/// Closes our side and reads what the client still sends, for a while. Closing a socket with
/// unread input makes the kernel answer with a reset, and a reset can destroy the response
/// before the client has read it: the 413 for an upload it is still sending, say (nginx's
/// "lingering close").
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
    out: &mut Vec<u8>,
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
        ResponseWriter::new(context.connection, out, &started),
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
    out: &mut Vec<u8>,
    head: Head,
    framing: Framing,
    expect_continue: bool,
) -> Result<(bool, bool), BoxError> {
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
        ResponseWriter::new(context.connection, out, &started),
        context.settings,
    );
    // `100 Continue` goes straight to the socket when the handler first reads the body, so
    // the answers to earlier pipelined requests still buffered must leave before it.
    if expect_continue && request.wfile.flush().is_err() {
        // The client is gone or not reading: there is nobody to answer.
        return Ok((false, false));
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
    match failure {
        Failure::None => Ok((keep_alive, unread_input)),
        Failure::Error(err) => Err(err),
        Failure::Panic(payload) => resume_unwind(payload),
    }
}

/// What the handler left to report once the response is complete.
enum Failure {
    None,
    Error(BoxError),
    Panic(Box<dyn Any + Send>),
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

/// Sends what is buffered (unless the next pipelined request is already here, so that the
/// answers to one read leave in one write) and logs the request. `true` if the connection
/// stays open.
fn complete(request: &mut HttpRequest<'_>) -> bool {
    let mut keep_alive = !request.close_connection;
    let next_is_here = find_head_end(request.rfile.input_buffer(), 0).is_some();
    if !keep_alive || !next_is_here || request.wfile.pending() >= OUTPUT_BUFFER / 2 {
        if let Err(err) = request.wfile.flush() {
            if !is_disconnect(&err) {
                request.log_error(&format!("cannot send the response: {err}"));
            }
            keep_alive = false;
        }
    }
    let code = request
        .status()
        .map_or_else(|| "-".to_string(), |s| s.as_u16().to_string());
    let size = match request.wfile.body_bytes() {
        0 => "-".to_string(),
        n => n.to_string(),
    };
    request.log_request(code, size);
    keep_alive
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
