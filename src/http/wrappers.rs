//! Handlers that wrap another and add headers to all it answers: [`AddHeaders`] (fixed
//! headers, `simple-http -H` and `--cache-control`) and [`Cors`] (`--cors`); and
//! [`Endpoints`], which answers a health check and a metrics page before the inner
//! handler sees them (`--health`, `--metrics`); and [`ForwardedFor`] (`--trusted-proxy`),
//! which takes the client's address from the headers of trusted proxies.
//!
//! They take every request in `dispatch`, so every method and every answer passes them,
//! error pages included, and pass on what the inner handler says of itself
//! (`may_block`, `limits`, `handle_expect_100` and the class attributes).

use std::io;
use std::sync::Arc;

use http::header::{ACCESS_CONTROL_REQUEST_HEADERS, ACCESS_CONTROL_REQUEST_METHOD, ORIGIN};
use http::{Method, Version};

use super::forwarded::forwarded_client;
use super::handler::{check_added_name, is_clean_value, HttpHandler, HttpRequest};
use super::limits::Limits;
use super::metrics::{self, ServerGroup};
use crate::address::ClientAddress;
use crate::handler::{BoxError, HandlerResult};
use crate::proxy::TrustedProxies;

/// The class attributes and `limits` of `self.inner`, an `H`: what a handler that wraps
/// another says of itself.
macro_rules! inner_attributes {
    () => {
        const SERVER_VERSION: &'static str = H::SERVER_VERSION;
        const SYS_VERSION: &'static str = H::SYS_VERSION;
        const PROTOCOL_VERSION: Version = H::PROTOCOL_VERSION;
        const ERROR_MESSAGE_FORMAT: &'static str = H::ERROR_MESSAGE_FORMAT;
        const ERROR_CONTENT_TYPE: &'static str = H::ERROR_CONTENT_TYPE;

        fn limits(&self) -> Limits {
            self.inner.limits()
        }
    };
}
pub(super) use inner_attributes;

/// Passes everything but `dispatch` on to `self.inner`.
macro_rules! wrap_inner {
    () => {
        inner_attributes!();

        fn may_block(&self, request: &HttpRequest<'_>) -> bool {
            self.inner.may_block(request)
        }

        fn handle_expect_100(&mut self, request: &mut HttpRequest<'_>) -> Result<bool, BoxError> {
            self.inner.handle_expect_100(request)
        }
    };
}

/// A handler whose answers all carry some fixed headers (`Cache-Control`, a security
/// policy, ...), the inner handler answering the requests.
///
/// ```no_run
/// use socketserver::files::SimpleHttpHandler;
/// use socketserver::http::{AddHeaders, HttpServer};
///
/// let files = SimpleHttpHandler::new("www")?;
/// let handler = AddHeaders::new(files).header("Cache-Control", "no-cache")?;
/// HttpServer::bind("127.0.0.1:8000", handler)?.serve_forever()?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct AddHeaders<H> {
    inner: H,
    headers: Arc<Vec<(String, String)>>,
}

impl<H: HttpHandler> AddHeaders<H> {
    /// `inner`, adding no header yet.
    pub fn new(inner: H) -> Self {
        AddHeaders {
            inner,
            headers: Arc::default(),
        }
    }

    /// Adds `name: value` to every answer. A name that is no token, a value with control
    /// characters, and the framing headers (`Content-Length`, `Transfer-Encoding`,
    /// `Connection`) are refused.
    pub fn header(mut self, name: &str, value: &str) -> io::Result<Self> {
        check_header(name, value)?;
        Arc::make_mut(&mut self.headers).push((name.to_string(), value.to_string()));
        Ok(self)
    }

    /// The handler that answers.
    pub fn inner(&self) -> &H {
        &self.inner
    }
}

impl<H: HttpHandler> HttpHandler for AddHeaders<H> {
    wrap_inner!();

    fn dispatch(&mut self, request: &mut HttpRequest<'_>) -> HandlerResult {
        for (name, value) in self.headers.iter() {
            request.add_response_header(name, value)?;
        }
        self.inner.dispatch(request)
    }
}

/// Whether `name: value` may be added to every answer.
fn check_header(name: &str, value: &str) -> io::Result<()> {
    check_added_name(name)?;
    if is_clean_value(value.as_bytes()) {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{name:?}: {value:?} cannot be added to every answer"),
        ))
    }
}

/// Cross-origin resource sharing (the Fetch standard's CORS protocol) in front of a
/// handler: answers carry `Access-Control-Allow-Origin`, and a preflight (`OPTIONS` with
/// `Origin` and `Access-Control-Request-Method`) is answered here, 204, with the methods
/// and request headers allowed, without reaching the inner handler.
///
/// ```no_run
/// use socketserver::files::SimpleHttpHandler;
/// use socketserver::http::{Cors, HttpServer};
///
/// let files = SimpleHttpHandler::new("www")?;
/// HttpServer::bind("127.0.0.1:8000", Cors::new(files))?.serve_forever()?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Cors<H> {
    inner: H,
    origin: Arc<str>,
    methods: Arc<str>,
    max_age: u32,
}

impl<H: HttpHandler> Cors<H> {
    /// Any origin (`*`) may read the answers of `inner`, with the methods GET, HEAD, POST,
    /// PUT, DELETE and OPTIONS; a preflight is good for a day.
    pub fn new(inner: H) -> Self {
        Cors {
            inner,
            origin: "*".into(),
            methods: "GET, HEAD, POST, PUT, DELETE, OPTIONS".into(),
            max_age: 86_400,
        }
    }

    /// Only `origin` (`https://app.example`) may read the answers; they then say
    /// `Vary: Origin`, so caches keep them apart.
    pub fn allow_origin(mut self, origin: &str) -> io::Result<Self> {
        check_header("Access-Control-Allow-Origin", origin)?;
        self.origin = origin.into();
        Ok(self)
    }

    /// The methods a preflight allows, comma-separated.
    pub fn allow_methods(mut self, methods: &str) -> io::Result<Self> {
        check_header("Access-Control-Allow-Methods", methods)?;
        self.methods = methods.into();
        Ok(self)
    }

    /// Seconds a browser may keep a preflight's answer.
    pub fn max_age(mut self, seconds: u32) -> Self {
        self.max_age = seconds;
        self
    }

    fn is_preflight(request: &HttpRequest<'_>) -> bool {
        request.command == Method::OPTIONS
            && request.headers.contains_key(ORIGIN)
            && request.headers.contains_key(ACCESS_CONTROL_REQUEST_METHOD)
    }

    fn preflight(&self, request: &mut HttpRequest<'_>) -> HandlerResult {
        request.send_response(204)?;
        request.send_header("Access-Control-Allow-Methods", &*self.methods)?;
        // The request headers asked for, if they are well-formed: the server has none it
        // refuses, so it allows what the page wants to send.
        let asked = request
            .headers
            .get(ACCESS_CONTROL_REQUEST_HEADERS)
            .and_then(|v| v.to_str().ok())
            .filter(|v| check_header("Access-Control-Allow-Headers", v).is_ok())
            .map(str::to_string);
        if let Some(asked) = asked {
            request.send_header("Access-Control-Allow-Headers", asked)?;
        }
        request.send_header("Access-Control-Max-Age", self.max_age)?;
        request.end_headers()?;
        Ok(())
    }
}

impl<H: HttpHandler> HttpHandler for Cors<H> {
    wrap_inner!();

    fn dispatch(&mut self, request: &mut HttpRequest<'_>) -> HandlerResult {
        request.add_response_header("Access-Control-Allow-Origin", &*self.origin)?;
        if &*self.origin != "*" {
            request.add_response_header("Vary", "Origin")?;
        }
        if Self::is_preflight(request) {
            return self.preflight(request);
        }
        self.inner.dispatch(request)
    }
}

/// A health check and a metrics page in front of a handler, for a load balancer and for
/// Prometheus: `GET` (or `HEAD`) of the health path answers `200 OK` with `ok` while the
/// server serves and `503 Service Unavailable` with `draining` once a graceful shutdown has
/// begun ([`ServerHandle::is_draining`](crate::ServerHandle::is_draining)); `GET` of the
/// metrics path answers with [`metrics::render`](super::metrics::render) of the server
/// (and of the [group](Endpoints::servers) it reports for). Other methods on these paths
/// get `405` with `Allow: GET, HEAD`; every answer says `Cache-Control: no-store`.
///
/// The two paths never reach the inner handler: put this outside a
/// [`BasicAuth`](super::BasicAuth) (a balancer has no password), and outermost, so that
/// headers added for the site stay off these answers. The path of the request is compared
/// without its query.
///
/// ```no_run
/// use socketserver::files::SimpleHttpHandler;
/// use socketserver::http::{BasicAuth, Endpoints, HttpServer};
///
/// let files = BasicAuth::new(SimpleHttpHandler::new("www")?, "site").user("ann", "pw")?;
/// let handler = Endpoints::new(files).health("/healthz")?.metrics("/metrics")?;
/// HttpServer::bind("127.0.0.1:8000", handler)?.serve_forever()?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Endpoints<H> {
    inner: H,
    health: Option<Arc<str>>,
    metrics: Option<Arc<str>>,
    servers: ServerGroup,
}

/// Which of its paths a request is for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Health,
    Metrics,
}

impl<H: HttpHandler> Endpoints<H> {
    /// `inner`, with neither path yet: every request goes to it.
    pub fn new(inner: H) -> Self {
        Endpoints {
            inner,
            health: None,
            metrics: None,
            servers: ServerGroup::new(),
        }
    }

    /// The health check's path (`/healthz`): it must begin with `/`, hold no query, and
    /// differ from the metrics path.
    pub fn health(mut self, path: &str) -> io::Result<Self> {
        self.health = Some(self.check_path(path, self.metrics.as_deref())?);
        Ok(self)
    }

    /// The metrics page's path (`/metrics`), with the rules of [`health`](Endpoints::health).
    pub fn metrics(mut self, path: &str) -> io::Result<Self> {
        self.metrics = Some(self.check_path(path, self.health.as_deref())?);
        Ok(self)
    }

    /// The servers the metrics page adds up, besides the one serving it: every loop of the
    /// process, for one page whichever loop answers.
    pub fn servers(mut self, group: ServerGroup) -> Self {
        self.servers = group;
        self
    }

    /// The handler that answers everything else.
    pub fn inner(&self) -> &H {
        &self.inner
    }

    fn check_path(&self, path: &str, other: Option<&str>) -> io::Result<Arc<str>> {
        let fails = !path.starts_with('/')
            || path.contains(['?', '#'])
            || path.bytes().any(|b| !b.is_ascii_graphic());
        if fails || other == Some(path) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{path:?} cannot be a health or metrics path: it must begin with '/', hold \
                     no query, no space or control character, and the two must differ"
                ),
            ));
        }
        Ok(path.into())
    }

    fn endpoint(&self, request: &HttpRequest<'_>) -> Option<Endpoint> {
        if self.health.is_none() && self.metrics.is_none() {
            return None;
        }
        let path = request.url_path();
        if self.health.as_deref() == Some(path) {
            Some(Endpoint::Health)
        } else if self.metrics.as_deref() == Some(path) {
            Some(Endpoint::Metrics)
        } else {
            None
        }
    }

    fn answer(&self, endpoint: Endpoint, request: &mut HttpRequest<'_>) -> HandlerResult {
        request.add_response_header("Cache-Control", "no-store")?;
        if request.command != Method::GET && request.command != Method::HEAD {
            request.add_response_header("Allow", "GET, HEAD")?;
            return request.send_error(405, None::<&str>);
        }
        match endpoint {
            Endpoint::Health if request.server.is_draining() => {
                request.send_text(503, "draining\n")
            }
            Endpoint::Health => request.send_text(200, "ok\n"),
            Endpoint::Metrics => {
                let page = metrics::render(&self.servers.with(request.server));
                request.respond(200, metrics::CONTENT_TYPE, page)
            }
        }
    }
}

impl<H: HttpHandler> HttpHandler for Endpoints<H> {
    inner_attributes!();

    /// `false` for its own paths (answered from memory), else the inner handler's answer.
    fn may_block(&self, request: &HttpRequest<'_>) -> bool {
        self.endpoint(request).is_none() && self.inner.may_block(request)
    }

    /// Its own paths take no body: a method other than GET and HEAD is refused (405) before
    /// the body is sent.
    fn handle_expect_100(&mut self, request: &mut HttpRequest<'_>) -> Result<bool, BoxError> {
        match self.endpoint(request) {
            None => self.inner.handle_expect_100(request),
            Some(_) if request.command == Method::GET || request.command == Method::HEAD => {
                Ok(true)
            }
            Some(endpoint) => {
                self.answer(endpoint, request)?;
                Ok(false)
            }
        }
    }

    fn dispatch(&mut self, request: &mut HttpRequest<'_>) -> HandlerResult {
        match self.endpoint(request) {
            Some(endpoint) => self.answer(endpoint, request),
            None => self.inner.dispatch(request),
        }
    }
}

/// The client's address from the `Forwarded` (RFC 7239) or `X-Forwarded-For` header of a
/// request that a trusted HTTP proxy passed on: `client_address`, what the access log
/// prints and CGI's `REMOTE_ADDR` are then the client's, for the inner handler and all it
/// answers.
///
/// Only when the peer (after a PROXY header, the client that names) is in the trusted
/// list; a request from anyone else keeps its address, whatever it claims. The headers
/// are read from the right, past the addresses that are themselves trusted, to the first
/// that is not (nginx's `real_ip_recursive`); an entry that names no address
/// (`unknown`, an obfuscated identifier) ends the walk at the last trusted hop.
/// `Forwarded` is read if the request has one, else `X-Forwarded-For`; several fields of
/// one name are one list. A forwarded address without a port has port 0.
///
/// ```no_run
/// use socketserver::files::SimpleHttpHandler;
/// use socketserver::http::{ForwardedFor, HttpServer};
///
/// let files = SimpleHttpHandler::new("www")?;
/// let handler = ForwardedFor::new(files, "10.0.0.0/8".parse()?);
/// HttpServer::bind("0.0.0.0:8000", handler)?.serve_forever()?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct ForwardedFor<H> {
    inner: H,
    trusted: Arc<TrustedProxies>,
}

impl<H: HttpHandler> ForwardedFor<H> {
    /// `inner`, taking the forwarding headers of the proxies in `trusted`.
    pub fn new(inner: H, trusted: TrustedProxies) -> Self {
        ForwardedFor {
            inner,
            trusted: Arc::new(trusted),
        }
    }

    /// The handler that answers.
    pub fn inner(&self) -> &H {
        &self.inner
    }

    /// The proxies whose headers are taken.
    pub fn trusted(&self) -> &TrustedProxies {
        &self.trusted
    }

    fn take_client(&self, request: &mut HttpRequest<'_>) {
        let Some(peer) = request.client_address.inet() else {
            return;
        };
        if let Some(client) = forwarded_client(&request.headers, peer, &self.trusted) {
            request.client_address = ClientAddress::Inet(client);
        }
    }
}

impl<H: HttpHandler> HttpHandler for ForwardedFor<H> {
    inner_attributes!();

    fn may_block(&self, request: &HttpRequest<'_>) -> bool {
        self.inner.may_block(request)
    }

    fn handle_expect_100(&mut self, request: &mut HttpRequest<'_>) -> Result<bool, BoxError> {
        self.take_client(request);
        self.inner.handle_expect_100(request)
    }

    fn dispatch(&mut self, request: &mut HttpRequest<'_>) -> HandlerResult {
        self.take_client(request);
        self.inner.dispatch(request)
    }
}
