//! One request and its response: run the handler, then keep the protocol's promises
//! whatever it did.
//!
//! Every request gets exactly one response (a 500 if the handler sent none or failed before
//! answering), an unread body is drained or the connection closed, and the access line is
//! written once the response has left, with what was sent of it.

use std::any::Any;
use std::io::{self, Write};
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use http::{Method, StatusCode, Version};

use super::body::Body;
use super::handler::{Attributes, HttpHandler, HttpRequest};
use super::head::{head_follows, Framing, Head, Rejection};
use super::headers::RequestHeaders;
use super::limits::Limits;
use super::log::LOG_TARGET;
use super::metrics::Tally;
use super::response::{ResponseWriter, OUTPUT_BUFFER};
use super::socket::TimedSocket;
use crate::address::ClientAddress;
use crate::handler::{BoxError, HandlerResult, Rfile};
use crate::output::Output;
use crate::server::ServerHandle;
use crate::socket::StreamSocket;

/// What one connection's requests share.
pub(super) struct ConnectionContext<'c> {
    pub(super) connection: &'c StreamSocket,
    pub(super) client_address: &'c ClientAddress,
    pub(super) server: &'c ServerHandle,
    pub(super) limits: Limits,
    pub(super) attributes: Attributes,
    /// On the event loop's thread: writes never wait.
    pub(super) inline: bool,
}

impl ConnectionContext<'_> {
    /// The client: the connection's peer, or the client a trusted proxy's PROXY header
    /// named (read by the first reads of the connection, perhaps after `handle` began).
    pub(super) fn client_address(&self) -> ClientAddress {
        match self.connection.proxy_source() {
            Some(source) => ClientAddress::Inet(source),
            None => self.client_address.clone(),
        }
    }
}

/// The parts of a connection a request is answered through.
pub(super) struct Io<'s> {
    pub(super) rfile: &'s mut Rfile,
    pub(super) socket: &'s mut TimedSocket,
    pub(super) output: &'s mut Output,
    /// The connection's head: the request's, lent to it, and given back once it is
    /// answered for the next to be parsed into.
    pub(super) head: &'s mut Head,
    /// When the last answer completed, for a pipelined request already here then.
    pub(super) answered: &'s mut Option<Instant>,
    /// The answers counted and not yet added to the server's metrics.
    pub(super) tally: &'s mut Tally,
}

/// A request head, parsed (into the connection's [`Head`]) and checked.
pub(super) struct Parsed {
    pub(super) framing: Framing,
    /// The client sent `Expect: 100-continue`.
    pub(super) expect: bool,
    /// When the server began on it: its head's arrival, or for a pipelined request that
    /// was here already, the previous answer's completion (as nginx counts).
    pub(super) received: Instant,
}

/// How an exchange left the connection.
pub(super) struct Exchanged {
    /// The connection can carry the next request.
    pub(super) keep_alive: bool,
    /// The client sent more than was read: closing now would reset the connection under
    /// the response.
    pub(super) unread_input: bool,
    /// What the handler left to report.
    pub(super) failure: Failure,
    /// The answer waits in the output for the next pipelined request's ([`holds_back`]).
    pub(super) held_back: bool,
}

/// How [`complete`] left a response.
pub(super) struct Completed {
    /// The connection can carry the next request.
    pub(super) keep_alive: bool,
    /// The response was not sent: it waits for the next pipelined answer.
    pub(super) held_back: bool,
}

/// What the handler left to report once the response is complete.
pub(super) enum Failure {
    None,
    Error(BoxError),
    Panic(Box<dyn Any + Send>),
}

impl Failure {
    /// The handler's outcome, reported now: its error returned, its panic resumed.
    pub(super) fn into_result(self) -> HandlerResult {
        match self {
            Failure::None => Ok(()),
            Failure::Error(err) => Err(err),
            Failure::Panic(payload) => resume_unwind(payload),
        }
    }
}

/// The request a handler answers, made of the parts of `head`, which it borrows until it
/// [gives them back](give_back) (or is [taken apart](into_head)).
pub(super) fn new_request<'r>(
    context: &'r ConnectionContext<'r>,
    head: &mut Head,
    received: Instant,
    body: Body<'r>,
    wfile: ResponseWriter<'r>,
) -> HttpRequest<'r> {
    HttpRequest::new(
        std::mem::take(&mut head.method),
        std::mem::take(&mut head.target),
        head.version,
        std::mem::take(&mut head.raw_requestline),
        std::mem::take(&mut head.requestline),
        std::mem::take(&mut head.headers),
        context.client_address(),
        context.server,
        body,
        wfile,
        &context.attributes,
        received,
    )
}

/// The head back out of a request not answered here, as the request has it: it goes to a
/// worker, or back to the handler after `handle_expect_100`. What is left of the request
/// is dropped where it is: moving it (some 600 bytes) would cost more.
pub(super) fn into_head(request: &mut HttpRequest<'_>) -> Head {
    Head {
        method: std::mem::take(&mut request.command),
        target: std::mem::take(&mut request.path),
        version: request.request_version,
        raw_requestline: std::mem::take(&mut request.raw_requestline),
        requestline: std::mem::take(&mut request.requestline),
        headers: std::mem::take(&mut request.headers),
    }
}

/// Ends a request that was answered: its completion is when a pipelined request that was
/// here already began, and its parts go back to the connection's head for the next.
pub(super) fn retire(
    request: &mut HttpRequest<'_>,
    head: &mut Head,
    answered: &mut Option<Instant>,
) {
    *answered = Some(request.completed());
    give_back(request, head);
}

/// Gives the parts of a request back to the connection's head, emptied, for the next
/// request to be parsed into: swapped with the head's empty ones, so that no head is made
/// or moved whole.
pub(super) fn give_back(request: &mut HttpRequest<'_>, head: &mut Head) {
    std::mem::swap(&mut head.target, &mut request.path);
    std::mem::swap(&mut head.raw_requestline, &mut request.raw_requestline);
    std::mem::swap(&mut head.requestline, &mut request.requestline);
    std::mem::swap(&mut head.headers, &mut request.headers);
    head.empty();
}

/// Answers a request whose body is read from the connection as the handler asks for it
/// (a thread per connection, or a worker of a pool).
pub(super) fn exchange_streamed<H: HttpHandler>(
    handler: &mut H,
    context: &ConnectionContext<'_>,
    io: Io<'_>,
    parsed: Parsed,
) -> Exchanged {
    let started = AtomicBool::new(false);
    let limits = &context.limits;
    let body = Body::new(
        io.rfile,
        io.socket,
        parsed.framing,
        limits.max_body_size,
        limits.body_timeout,
        parsed.expect,
        &started,
    );
    let wfile = ResponseWriter::new(context.connection, io.output, &started, context.inline);
    let mut request = new_request(context, io.head, parsed.received, body, wfile);
    // `100 Continue` goes straight to the socket when the handler first reads the body, so
    // the answers to earlier pipelined requests still buffered must leave before it.
    if parsed.expect && request.wfile.flush().is_err() {
        // The client is gone or not reading: there is nobody to answer.
        give_back(&mut request, io.head);
        return Exchanged {
            keep_alive: false,
            unread_input: false,
            failure: Failure::None,
            held_back: false,
        };
    }
    let exchanged = answer(handler, &mut request, parsed.expect, context, io.tally);
    retire(&mut request, io.head, io.answered);
    exchanged
}

/// Runs the handler on `request` and completes its response.
pub(super) fn answer<H: HttpHandler>(
    handler: &mut H,
    request: &mut HttpRequest<'_>,
    expect_continue: bool,
    context: &ConnectionContext<'_>,
    tally: &mut Tally,
) -> Exchanged {
    let limits = &context.limits;
    // On the loop's own thread the connection's run is counted instead (`serve_parked`).
    let _in_flight = (!context.inline).then(|| context.server.stats().request_in_flight());
    let outcome = catch_unwind(AssertUnwindSafe(|| -> HandlerResult {
        if expect_continue && !handler.handle_expect_100(request)? {
            return Ok(());
        }
        handler.dispatch(request)
    }));
    let failure = settle(request, outcome);
    if !request.close_connection && !request.rfile.wire_complete() {
        // The client may wait for the answer before it sends the rest of the body.
        if request.wfile.flush().is_err() || !request.rfile.drain(limits.max_drain) {
            request.close_connection = true;
        }
    }
    let completed = complete(request, tally);
    let unread_input = !request.rfile.wire_complete() || !request.rfile.input_buffer().is_empty();
    Exchanged {
        keep_alive: completed.keep_alive,
        unread_input,
        failure,
        held_back: completed.held_back,
    }
}

/// Answers a request that never reached a handler with its error status, and closes.
pub(super) fn reject(
    context: &ConnectionContext<'_>,
    io: Io<'_>,
    rejection: Rejection,
) -> io::Result<Exchanged> {
    let started = AtomicBool::new(false);
    // Only the method matters for the answer: a HEAD gets the error's head, no page.
    let head = rejection.head || rejection.requestline.starts_with("HEAD ");
    let method = if head { Method::HEAD } else { Method::GET };
    let mut head = Head {
        method,
        target: String::new(),
        version: Version::HTTP_10,
        raw_requestline: rejection.requestline.as_bytes().to_vec(),
        requestline: rejection.requestline,
        headers: RequestHeaders::default(),
    };
    let body = Body::new(
        io.rfile,
        io.socket,
        Framing::Length(0),
        0,
        context.limits.body_timeout,
        false,
        &started,
    );
    let wfile = ResponseWriter::new(context.connection, io.output, &started, context.inline);
    let mut request = new_request(context, &mut head, Instant::now(), body, wfile);
    request.close_connection = true;
    request.error_response(rejection.status, Some(rejection.message.as_str()), None)?;
    complete(&mut request, io.tally);
    Ok(Exchanged {
        keep_alive: false,
        unread_input: true,
        failure: Failure::None,
        held_back: false,
    })
}

/// Makes sure the request has a response, turning the handler's failure into the status it
/// calls for: the body's 400/408/413 for a bad body, 500 for anything else (and the
/// connection closes), or a quiet close when the client went away.
pub(super) fn settle(
    request: &mut HttpRequest<'_>,
    outcome: std::thread::Result<HandlerResult>,
) -> Failure {
    // A head the handler began and never ended is no response: if none of it has left,
    // drop it so that the client gets the status below instead of a truncated head.
    request.discard_unended_response();
    let (status, failure) = match outcome {
        Ok(Ok(())) if request.wfile.started() => {
            if !request.response_complete() {
                // Headers never ended: the client cannot tell where this response stops.
                request.close_connection = true;
            }
            let short = request.body_shortfall();
            if short > 0 {
                // The client would take the next response for the rest of this one.
                request.log_error(&format!(
                    "the handler wrote {short} body bytes less than its Content-Length"
                ));
                request.close_connection = true;
            }
            return Failure::None;
        }
        Ok(Ok(())) => {
            request.log_error("the handler returned without sending a response");
            (StatusCode::INTERNAL_SERVER_ERROR, Failure::None)
        }
        Ok(Err(err)) => match request.rfile.failure() {
            Some(status) if request.rfile.refusal().is_some() && request.rfile.wire_complete() => {
                // The body was all read and found wanting: answer why, and go on serving
                // the connection.
                let reason = request.rfile.refusal().unwrap_or_default().to_string();
                if !request.wfile.started() {
                    request.log_error(&format!("refused the request body: {reason}"));
                    let _ = request.error_response(status, None, Some(&reason));
                } else {
                    request.close_connection = true;
                }
                return Failure::None;
            }
            Some(status) => (status, Failure::None),
            // The client went away or stopped reading: nothing for `handle_error`.
            None if error_is_disconnect(&*err) || request.wfile.failed() => {
                (StatusCode::INTERNAL_SERVER_ERROR, Failure::None)
            }
            None => (StatusCode::INTERNAL_SERVER_ERROR, Failure::Error(err)),
        },
        Err(panic) => (StatusCode::INTERNAL_SERVER_ERROR, Failure::Panic(panic)),
    };
    request.close_connection = true;
    if !request.wfile.started() {
        // If this fails the client is gone; closing is all that is left.
        let _ = request.error_response(status, None, None);
    }
    failure
}

/// Whether answers are held back to leave together with the answer to the next pipelined
/// request, which is all here already: the answers to one read leave in one write. Blank
/// lines are no request: an answer held back for them would wait for the next read.
pub(super) fn holds_back(output: &Output, input: &mut Rfile) -> bool {
    output.file.is_none() && output.bytes.len() < OUTPUT_BUFFER / 2 && head_follows(input)
}

/// Sends what is buffered (unless [held back](holds_back) for the next pipelined answer),
/// counts the answer in `tally` (added to the server's metrics with the answers held back
/// before it, once they have been sent), and arranges for the access line to be written
/// once the response has left.
pub(super) fn complete(request: &mut HttpRequest<'_>, tally: &mut Tally) -> Completed {
    let mut keep_alive = !request.close_connection && !request.wfile.failed();
    let held_back = keep_alive && request.wfile.holds_back(request.rfile.input_mut());
    if !held_back {
        if let Err(err) = request.wfile.flush() {
            if !is_disconnect(&err) {
                request.log_error(&format!("cannot send the response: {err}"));
            }
            keep_alive = false;
        }
    }
    // Counted here, with the access line: every answer passes, rejections included.
    if let Some(status) = request.status() {
        let took = request.answered_in();
        tally.record(status, request.wfile.body_bytes(), took);
    }
    if !held_back {
        tally.add_to(request.server.stats().http());
    }
    // Formatting costs as much as a small response: only when a line may be written.
    if log::log_enabled!(target: LOG_TARGET, log::Level::Warn) {
        let record = request.access_record();
        request
            .wfile
            .when_sent(Box::new(move |sent| record.write(sent)));
    }
    Completed {
        keep_alive,
        held_back,
    }
}

pub(super) fn is_disconnect(err: &io::Error) -> bool {
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
