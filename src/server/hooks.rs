//! The server's overridable methods: Python's `BaseServer` hooks.

use std::io;

use super::control::ServerHandle;
use super::transport::Transport;
use crate::address::ClientAddress;
use crate::handler::{run_handler, RequestError, RequestHandler};

/// The overridable methods of Python's `BaseServer`, for a server over transport `T`.
///
/// Implement the ones you need on a type of your own and give it to
/// [`ServerBuilder::hooks`](crate::ServerBuilder::hooks); the rest keep Python's behaviour.
/// [`NoHooks`] keeps all of them. `process_request` is the concurrency strategy, see
/// [`Concurrency`](crate::Concurrency).
///
/// Methods that may be overridden, in the order a request meets them:
/// - [`get_request`](ServerHooks::get_request): take the request from the socket.
/// - [`verify_request`](ServerHooks::verify_request): `false` refuses it.
/// - [`finish_request`](ServerHooks::finish_request): run the handler.
/// - [`shutdown_request`](ServerHooks::shutdown_request),
///   [`close_request`](ServerHooks::close_request): end it.
/// - [`handle_error`](ServerHooks::handle_error): a handler failed or panicked.
///
/// and per turn of the serve loop:
/// - [`service_actions`](ServerHooks::service_actions): after every turn of `serve_forever`.
/// - [`handle_timeout`](ServerHooks::handle_timeout): `handle_request` saw no request in time.
///
/// ```
/// use socketserver::{ClientAddress, StreamSocket, ServerHooks, TcpTransport};
///
/// /// Serves loopback clients only.
/// struct LoopbackOnly;
///
/// impl ServerHooks<TcpTransport> for LoopbackOnly {
///     fn verify_request(&self, _request: &StreamSocket, client: &ClientAddress) -> bool {
///         client.inet().is_some_and(|addr| addr.ip().is_loopback())
///     }
/// }
/// ```
pub trait ServerHooks<T: Transport>: Send + Sync + 'static {
    /// Takes one pending request; `WouldBlock` when there is none. Python's `get_request`.
    fn get_request(&self, transport: &T) -> io::Result<(T::Request, ClientAddress)> {
        transport.get_request()
    }

    /// Decides whether to serve a request; a refused one is shut down unanswered.
    fn verify_request(&self, _request: &T::Request, _client_address: &ClientAddress) -> bool {
        true
    }

    /// Runs the handler on the request: `setup`, `handle`, `finish`.
    fn finish_request<H: RequestHandler>(
        &self,
        handler: H,
        request: &mut H::Request,
    ) -> Result<(), RequestError> {
        run_handler(handler, request)
    }

    /// Reports a failed request. The default logs it through the `log` crate at error level
    /// with the client's address; the server goes on serving either way.
    fn handle_error(&self, client_address: &ClientAddress, error: &RequestError) {
        log::error!("error while processing the request from {client_address}: {error}");
    }

    /// Called by `handle_request` when no request came within the server's timeout.
    fn handle_timeout(&self, _server: &ServerHandle) {}

    /// Called once per turn of `serve_forever`, at least every `poll_interval`.
    fn service_actions(&self, _server: &ServerHandle) {}

    /// Ends a request after its handler ran, or when it was refused: shuts a stream down for
    /// writing, then calls [`close_request`](ServerHooks::close_request).
    fn shutdown_request(&self, request: T::Request) {
        T::shutdown_request(&request);
        self.close_request(request);
    }

    /// Closes a request (the socket closes when the request is dropped).
    fn close_request(&self, request: T::Request) {
        drop(request);
    }
}

/// Keeps every hook's default: a server as Python's classes are out of the box.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoHooks;

impl<T: Transport> ServerHooks<T> for NoHooks {}
