//! The life of one request after `verify_request`: the handler, delivering what it wrote,
//! `shutdown_request`, and `handle_error` for whatever failed. A stream handler that parks
//! its connection leaves the session waiting in the event loop between runs of `handle`.

use std::io;
use std::marker::PhantomData;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Instant;

use super::stats::{Counted, Gauge};
use super::{ServerHandle, ServerHooks, Transport};
use crate::address::ClientAddress;
use crate::concurrency::{Resumable, RunMode, Step};
use crate::handler::{Park, RequestContext, RequestError, RequestHandler};
use crate::proxy::ProxyFailure;
use crate::socket::StreamSocket;
use crate::tls::TlsFailure;

pub(super) struct Session<T: Transport, H: RequestHandler, K> {
    request: H::Request,
    client_address: ClientAddress,
    hooks: Arc<K>,
    connection: Option<StreamSocket>,
    /// What the handler parked the connection for, while it is parked.
    park: Option<Park>,
    /// The connection counted open (a stream's) until the session ends, however it ends.
    open: Option<Counted>,
    /// Counted parked from the run that parked it to the one that takes it up again.
    parked: Option<Counted>,
    transport: PhantomData<fn() -> T>,
}

impl<T, H, K> Session<T, H, K>
where
    T: Transport,
    H: RequestHandler,
    H::Request: RequestContext<Raw = T::Request>,
    K: ServerHooks<T>,
{
    /// Runs a new request in `mode`: `setup`, `handle`, and unless the handler parks,
    /// `finish` and the end of the request.
    pub(super) fn start(
        raw: T::Request,
        client_address: ClientAddress,
        handler: H,
        hooks: Arc<K>,
        server: ServerHandle,
        mode: RunMode,
    ) -> Step {
        let stats_of = server.clone();
        // A trusted proxy's PROXY header names the client: read it first where reads may
        // wait, so that the handler sees the client from the start; on the event loop's
        // thread, if it is here (else the first reads take it).
        let client_address = match H::Request::read_proxy_header(&raw, mode != RunMode::Inline) {
            Ok(Some(source)) => source,
            Ok(None) => client_address,
            Err(err) => return report(&*hooks, &client_address, err.into()),
        };
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            H::Request::new::<H>(raw, client_address.clone(), server)
        }));
        let mut request = match outcome {
            Ok(Ok(request)) => request,
            Ok(Err(err)) => return report(&*hooks, &client_address, err.into()),
            Err(panic) => return report(&*hooks, &client_address, RequestError::from_panic(panic)),
        };
        let connection = request.as_stream().map(|s| s.request.clone());
        let open = connection
            .is_some()
            .then(|| Counted::new(stats_of, Gauge::Open));
        set_mode(&mut request, mode);
        let handled = catch_unwind(AssertUnwindSafe(|| {
            hooks.finish_request(handler, &mut request)
        }));
        let session = Box::new(Session::<T, H, K> {
            request,
            client_address,
            hooks,
            connection,
            park: None,
            open,
            parked: None,
            transport: PhantomData,
        });
        session.after(flatten(handled))
    }

    /// Parks the session if the handler asked for it, else ends the request.
    fn after(mut self: Box<Self>, handled: Result<(), RequestError>) -> Step {
        self.park = self.request.as_stream().and_then(|s| s.parking.requested);
        if handled.is_ok() && self.park.is_some() {
            if self.parked.is_none() {
                self.parked = self.open.as_ref().map(|open| open.also(Gauge::Parked));
            }
            return Step::Parked(self);
        }
        if let Some(stream) = self.request.as_stream() {
            // A handler that failed after parking: end it now.
            stream.parking.requested = None;
            if let Some(handler) = stream.parking.handler.take() {
                let _ = handler.finish(stream);
            }
        }
        (*self).end(handled)
    }

    /// Delivers what the handler wrote, ends the request, reports a failure.
    fn end(self, handled: Result<(), RequestError>) -> Step {
        let Session {
            mut request,
            client_address,
            hooks,
            open,
            ..
        } = self;
        let outcome = catch_unwind(AssertUnwindSafe(|| -> Result<(), RequestError> {
            let delivered = request.deliver();
            hooks.shutdown_request(request.into_raw());
            handled?;
            Ok(delivered?)
        }));
        // Closed now (if the request was dropped unwinding, its guard was too).
        drop(open);
        match flatten(outcome) {
            Ok(()) => Step::Done(true),
            Err(err) => report(&*hooks, &client_address, err),
        }
    }
}

impl<T, H, K> Resumable for Session<T, H, K>
where
    T: Transport,
    H: RequestHandler,
    H::Request: RequestContext<Raw = T::Request>,
    K: ServerHooks<T>,
{
    fn park(&self) -> Park {
        self.park.expect("only a parked session is asked")
    }

    fn nonblocking(&self) -> bool {
        H::NONBLOCKING
    }

    fn resume(mut self: Box<Self>, mode: RunMode) -> Step {
        self.parked = None;
        set_mode(&mut self.request, mode);
        let Some(stream) = self.request.as_stream() else {
            return (*self).end(Ok(()));
        };
        if let Some(source) = stream.request.proxy_source() {
            // Read by the last run's reads, on the event loop's thread.
            stream.client_address = ClientAddress::Inet(source);
            self.client_address = ClientAddress::Inet(source);
        }
        let Some(handler) = stream.parking.handler.take() else {
            return (*self).end(Ok(()));
        };
        let handled = handler.resume(stream);
        self.after(handled)
    }

    fn time_out(&mut self) {
        if let Some(stream) = self.request.as_stream() {
            stream.parking.timed_out = true;
        }
    }

    fn connection(&self) -> StreamSocket {
        self.connection
            .clone()
            .expect("only a stream request parks")
    }

    fn has_output(&self) -> bool {
        self.request
            .as_stream_ref()
            .is_some_and(|s| !s.output.is_empty())
    }

    fn flush_output(&mut self) -> io::Result<bool> {
        let Some(stream) = self.request.as_stream() else {
            return Ok(true);
        };
        let before = stream.output.progress();
        let done = stream.send_output_now();
        let progressed = stream.output.progress() > before;
        if let Some(park) = &mut self.park {
            if let (true, Some(timeout)) = (progressed, park.send_timeout) {
                park.deadline = Some(Instant::now() + timeout);
            }
        }
        done
    }

    fn expire(mut self: Box<Self>) {
        self.parked = None;
        let mut finished = Ok(());
        if let Some(stream) = self.request.as_stream() {
            stream.parking.requested = None;
            stream.set_run_mode(None);
            if let Some(handler) = stream.parking.handler.take() {
                finished = handler.finish(stream);
            }
        }
        (*self).end(finished);
    }
}

fn set_mode<R: RequestContext>(request: &mut R, mode: RunMode) {
    if let Some(stream) = request.as_stream() {
        stream.set_run_mode(match mode {
            RunMode::Blocking => None,
            RunMode::Worker => Some(false),
            RunMode::Inline => Some(true),
        });
    }
}

fn flatten(outcome: std::thread::Result<Result<(), RequestError>>) -> Result<(), RequestError> {
    match outcome {
        Ok(result) => result,
        Err(panic) => Err(RequestError::from_panic(panic)),
    }
}

fn report<T: Transport, K: ServerHooks<T>>(
    hooks: &K,
    client_address: &ClientAddress,
    error: RequestError,
) -> Step {
    if TlsFailure::is_cause_of(&error) || ProxyFailure::is_cause_of(&error) {
        // Logged where it happened, at debug: the client's doing, not the server's.
        return Step::Done(false);
    }
    let _ = catch_unwind(AssertUnwindSafe(|| {
        hooks.handle_error(client_address, &error)
    }));
    Step::Done(false)
}
