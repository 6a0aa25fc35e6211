//! Behind a load balancer: the PROXY protocol (HAProxy's, versions 1 and 2) and the list of
//! proxies whose word about the client is taken.
//!
//! A balancer in TCP mode (HAProxy's `send-proxy`, AWS's NLB, nginx's `proxy_protocol on`)
//! opens its own connection to the server and sends, before anything else (before the TLS
//! ClientHello too), one header that names the client it speaks for. With
//! [`ServerBuilder::proxy_protocol`](crate::ServerBuilder::proxy_protocol), the server
//! reads that header on the first read of every connection and the handler's
//! `client_address` is the client's, not the balancer's:
//!
//! - a peer in the [`TrustedProxies`] list **must** send a header (v1 or v2); a header that
//!   is malformed, or not complete within [`ProxyProtocol::header_timeout`], closes the
//!   connection. `LOCAL` (v2) and `UNKNOWN` (v1) keep the peer's address.
//! - a peer outside the list that sends a header is refused; one that sends none is served
//!   as usual.
//!
//! HTTP proxies say the same in headers, `X-Forwarded-For` and `Forwarded`; see
//! [`ForwardedFor`](crate::http::ForwardedFor).
//!
//! ```no_run
//! use socketserver::http::HttpServer;
//! use socketserver::proxy::TrustedProxies;
//! # #[derive(Clone)] struct App;
//! # impl socketserver::http::HttpHandler for App {}
//!
//! let balancers: TrustedProxies = "10.0.0.0/8".parse()?;
//! let server = HttpServer::builder("0.0.0.0:8080", App)
//!     .proxy_protocol(balancers)
//!     .build()?;
//! server.serve_forever()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{recv, MsgFlags};

/// The longest version 1 header, CRLF included (the specification's 107 bytes).
pub const V1_MAX_LEN: usize = 107;

/// The 12 bytes a version 2 header starts with.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// The most address and TLV bytes a version 2 header may carry here; a longer header is
/// refused. HAProxy's own headers stay far below (its TLVs: ALPN, authority, TLS details).
pub const V2_MAX_PAYLOAD: usize = 4096;

/// The longest header this module reads: a version 2 header with [`V2_MAX_PAYLOAD`] bytes.
pub const MAX_HEADER_LEN: usize = 16 + V2_MAX_PAYLOAD;

/// A PROXY header, parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProxyHeader {
    /// 1 or 2.
    pub version: u8,
    /// The client the proxy speaks for; `None` for `LOCAL` (a health check of the proxy's
    /// own), `UNKNOWN`, and the families without an inet address (`AF_UNSPEC`, `AF_UNIX`).
    pub source: Option<SocketAddr>,
    /// The address the client connected to, at the proxy; `None` as for `source`.
    pub destination: Option<SocketAddr>,
    /// The header's length in bytes: what comes after it is the client's stream.
    pub len: usize,
}

/// Why [`parse`] found no header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// What is there is the start of a header: wait for more.
    Incomplete,
    /// No header can start with what is there; why.
    Invalid(&'static str),
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Incomplete => f.write_str("incomplete PROXY header"),
            ParseError::Invalid(why) => write!(f, "invalid PROXY header: {why}"),
        }
    }
}

impl std::error::Error for ParseError {}

/// Parses the PROXY header, version 1 or 2, at the start of `data`. `data` may hold more
/// than the header (the client's first bytes): [`ProxyHeader::len`] says where it ends.
///
/// Strict, as the specification asks of a receiver: a version 1 line has single spaces,
/// addresses of the family it names, decimal ports without leading zeros; a version 2
/// header has version 2, the command `LOCAL` or `PROXY`, a family this module knows over
/// `STREAM`, an address block as long as its family needs, and TLVs (skipped) that stay
/// inside the header.
pub fn parse(data: &[u8]) -> Result<ProxyHeader, ParseError> {
    match data.first() {
        None => Err(ParseError::Incomplete),
        Some(b'P') => parse_v1(data),
        Some(b'\r') => parse_v2(data),
        Some(_) => Err(ParseError::Invalid(
            "neither a version 1 nor a version 2 header",
        )),
    }
}

/// Whether `data` begins with a PROXY header's signature (`"PROXY "` or the 12 bytes of
/// version 2): `Some(true)` if it does, `Some(false)` if it cannot, `None` if it is too
/// short to tell (it is the start of a signature, or empty).
pub fn starts_with_signature(data: &[u8]) -> Option<bool> {
    let mut undecided = data.is_empty();
    for signature in [&b"PROXY "[..], &V2_SIGNATURE[..]] {
        let n = data.len().min(signature.len());
        if data[..n] == signature[..n] {
            if n == signature.len() {
                return Some(true);
            }
            undecided = true;
        }
    }
    if undecided {
        None
    } else {
        Some(false)
    }
}

fn parse_v1(data: &[u8]) -> Result<ProxyHeader, ParseError> {
    const PREFIX: &[u8] = b"PROXY ";
    let n = data.len().min(PREFIX.len());
    if data[..n] != PREFIX[..n] {
        return Err(ParseError::Invalid("not a version 1 header"));
    }
    let window = &data[..data.len().min(V1_MAX_LEN)];
    let Some(lf) = window.iter().position(|&b| b == b'\n') else {
        if let Some(cr) = window.iter().position(|&b| b == b'\r') {
            if cr + 1 < window.len() {
                return Err(ParseError::Invalid("a CR without LF"));
            }
        }
        if window.iter().any(|&b| !is_v1_byte(b) && b != b'\r') {
            return Err(ParseError::Invalid("a byte no version 1 header holds"));
        }
        return match window.len() == V1_MAX_LEN {
            true => Err(ParseError::Invalid(
                "a version 1 header longer than 107 bytes",
            )),
            false => Err(ParseError::Incomplete),
        };
    };
    if lf < PREFIX.len() + 1 || data[lf - 1] != b'\r' {
        return Err(ParseError::Invalid("a line that does not end in CRLF"));
    }
    let line = &data[PREFIX.len()..lf - 1];
    if line.iter().any(|&b| !is_v1_byte(b)) {
        return Err(ParseError::Invalid("a byte no version 1 header holds"));
    }
    let len = lf + 1;
    let line = std::str::from_utf8(line).map_err(|_| ParseError::Invalid("not ASCII"))?;
    if let Some(rest) = line.strip_prefix("UNKNOWN") {
        // The receiver ignores what follows UNKNOWN, up to the CRLF.
        if rest.is_empty() || rest.starts_with(' ') {
            return Ok(ProxyHeader {
                version: 1,
                source: None,
                destination: None,
                len,
            });
        }
        return Err(ParseError::Invalid("an unknown protocol"));
    }
    let fields: Vec<&str> = line.split(' ').collect();
    let [protocol, source, destination, source_port, destination_port] = fields[..] else {
        return Err(ParseError::Invalid(
            "not five fields separated by single spaces",
        ));
    };
    let address = |text: &str| -> Result<IpAddr, ParseError> {
        match protocol {
            "TCP4" => Ipv4Addr::from_str(text).map(IpAddr::V4),
            "TCP6" => Ipv6Addr::from_str(text).map(IpAddr::V6),
            _ => return Err(ParseError::Invalid("an unknown protocol")),
        }
        .map_err(|_| ParseError::Invalid("an address not of the protocol's family"))
    };
    let (source, destination) = (address(source)?, address(destination)?);
    let (source_port, destination_port) = (port(source_port)?, port(destination_port)?);
    Ok(ProxyHeader {
        version: 1,
        source: Some(SocketAddr::new(source, source_port)),
        destination: Some(SocketAddr::new(destination, destination_port)),
        len,
    })
}

/// What a version 1 line holds between `PROXY ` and its CRLF.
fn is_v1_byte(b: u8) -> bool {
    b == b' ' || b.is_ascii_alphanumeric() || b == b'.' || b == b':'
}

/// A decimal port, 0 to 65535, without a leading zero (but "0" itself).
fn port(text: &str) -> Result<u16, ParseError> {
    let bad = ParseError::Invalid("a port that is not a plain decimal number below 65536");
    if text.is_empty()
        || text.len() > 5
        || !text.bytes().all(|b| b.is_ascii_digit())
        || (text.len() > 1 && text.starts_with('0'))
    {
        return Err(bad);
    }
    text.parse().map_err(|_| bad)
}

fn parse_v2(data: &[u8]) -> Result<ProxyHeader, ParseError> {
    let n = data.len().min(V2_SIGNATURE.len());
    if data[..n] != V2_SIGNATURE[..n] {
        return Err(ParseError::Invalid("not the version 2 signature"));
    }
    if data.len() < 16 {
        // The fixed part, checked as far as it is here.
        if let Some(&version_command) = data.get(12) {
            check_version_command(version_command)?;
        }
        return Err(ParseError::Incomplete);
    }
    let local = check_version_command(data[12])?;
    let family = data[13];
    let payload = usize::from(u16::from_be_bytes([data[14], data[15]]));
    if payload > V2_MAX_PAYLOAD {
        return Err(ParseError::Invalid(
            "a version 2 header longer than allowed",
        ));
    }
    let len = 16 + payload;
    if data.len() < len {
        return Err(ParseError::Incomplete);
    }
    let block = &data[16..len];
    let header = |source, destination| ProxyHeader {
        version: 2,
        source,
        destination,
        len,
    };
    if local {
        // A connection of the proxy's own (a health check): whatever follows is ignored.
        return Ok(header(None, None));
    }
    let addresses = match family {
        // AF_UNSPEC: the proxy does not know; the block, if any, is not looked at.
        0x00 => return Ok(header(None, None)),
        // AF_INET, AF_INET6, AF_UNIX over STREAM.
        0x11 => 12,
        0x21 => 36,
        0x31 => 216,
        0x12 | 0x22 | 0x32 => return Err(ParseError::Invalid("a datagram family on a stream")),
        _ => return Err(ParseError::Invalid("an unknown address family")),
    };
    if block.len() < addresses {
        return Err(ParseError::Invalid(
            "an address block shorter than its family",
        ));
    }
    check_tlvs(&block[addresses..])?;
    let port_at = |i: usize| u16::from_be_bytes([block[i], block[i + 1]]);
    let (source, destination) = match family {
        0x11 => {
            let ip = |i: usize| IpAddr::from(<[u8; 4]>::try_from(&block[i..i + 4]).unwrap());
            (
                SocketAddr::new(ip(0), port_at(8)),
                SocketAddr::new(ip(4), port_at(10)),
            )
        }
        0x21 => {
            let ip = |i: usize| IpAddr::from(<[u8; 16]>::try_from(&block[i..i + 16]).unwrap());
            (
                SocketAddr::new(ip(0), port_at(32)),
                SocketAddr::new(ip(16), port_at(34)),
            )
        }
        // AF_UNIX: paths, not inet addresses; the peer's address stays.
        _ => return Ok(header(None, None)),
    };
    Ok(header(Some(source), Some(destination)))
}

/// Version 2, and `LOCAL` (`true`) or `PROXY` (`false`).
fn check_version_command(byte: u8) -> Result<bool, ParseError> {
    match byte {
        0x20 => Ok(true),
        0x21 => Ok(false),
        b if b >> 4 != 2 => Err(ParseError::Invalid("a version other than 2")),
        _ => Err(ParseError::Invalid("a command other than LOCAL and PROXY")),
    }
}

/// The TLVs after the addresses: each a type, a 16-bit length and that many bytes, the last
/// ending where the header ends.
fn check_tlvs(mut tlvs: &[u8]) -> Result<(), ParseError> {
    while !tlvs.is_empty() {
        if tlvs.len() < 3 {
            return Err(ParseError::Invalid("a TLV cut short"));
        }
        let len = 3 + usize::from(u16::from_be_bytes([tlvs[1], tlvs[2]]));
        if tlvs.len() < len {
            return Err(ParseError::Invalid("a TLV longer than the header"));
        }
        tlvs = &tlvs[len..];
    }
    Ok(())
}

/// The proxies whose word about the client is taken: networks in CIDR notation, IPv4 and
/// IPv6. A peer's IPv4-mapped IPv6 address (`::ffff:10.1.2.3`, what a dual-stack socket
/// reports for an IPv4 client) is matched as the IPv4 address it maps.
///
/// The default is the loopback networks, `127.0.0.0/8` and `::1/128`.
///
/// ```
/// use socketserver::proxy::TrustedProxies;
///
/// let trusted: TrustedProxies = "10.0.0.0/8, 2001:db8::/32, 192.168.1.7".parse()?;
/// assert!(trusted.contains("10.1.2.3".parse()?));
/// assert!(trusted.contains("::ffff:10.1.2.3".parse()?));
/// assert!(!trusted.contains("127.0.0.1".parse()?));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustedProxies {
    networks: Vec<Network>,
}

/// One network: an address with all bits past the prefix clear, and the prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Network {
    address: IpAddr,
    prefix: u8,
}

impl Network {
    fn contains(&self, ip: IpAddr) -> bool {
        match (self.address, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(ip) & mask == u32::from(net)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(ip) & mask == u128::from(net)
            }
            _ => false,
        }
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix)
    }
}

/// `"10.0.0.0/8"`, `"::1/128"`, or a bare address (`/32`, `/128`); an IPv4-mapped IPv6
/// network is kept as the IPv4 network it maps. Bits past the prefix must be clear
/// (`"10.0.0.1/8"` is refused: it is almost certainly a typing error).
impl FromStr for Network {
    type Err = io::Error;

    fn from_str(text: &str) -> io::Result<Network> {
        let invalid = |why: &str| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{text:?} is not a network (address/prefix): {why}"),
            )
        };
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let address: IpAddr = address.parse().map_err(|_| invalid("not an IP address"))?;
        let max = if address.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && p.len() <= 3 => {
                p.parse::<u8>().map_err(|_| invalid("a prefix too long"))?
            }
            Some(_) => return Err(invalid("a prefix that is not a number")),
        };
        if prefix > max {
            return Err(invalid("a prefix longer than the address"));
        }
        let (address, prefix) = match address {
            IpAddr::V6(v6) if prefix >= 96 && v6.to_ipv4_mapped().is_some() => {
                (IpAddr::V4(v6.to_ipv4_mapped().unwrap()), prefix - 96)
            }
            other => (other, prefix),
        };
        let host_bits_clear = match address {
            IpAddr::V4(a) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
                u32::from(a) & !mask == 0
            }
            IpAddr::V6(a) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
                u128::from(a) & !mask == 0
            }
        };
        if !host_bits_clear {
            return Err(invalid("bits set past the prefix"));
        }
        Ok(Network { address, prefix })
    }
}

impl TrustedProxies {
    /// No proxy at all: nobody's word is taken (and a PROXY header is refused from anyone).
    pub fn none() -> Self {
        TrustedProxies {
            networks: Vec::new(),
        }
    }

    /// The loopback networks, `127.0.0.0/8` and `::1/128`: a proxy on the same machine.
    pub fn loopback() -> Self {
        TrustedProxies {
            networks: vec![
                Network {
                    address: IpAddr::V4(Ipv4Addr::new(127, 0, 0, 0)),
                    prefix: 8,
                },
                Network {
                    address: IpAddr::V6(Ipv6Addr::LOCALHOST),
                    prefix: 128,
                },
            ],
        }
    }

    /// Adds a network (`"10.0.0.0/8"`, `"fd00::/8"`) or one address (`"192.0.2.7"`).
    pub fn trust(mut self, network: &str) -> io::Result<Self> {
        self.networks.push(network.trim().parse()?);
        Ok(self)
    }

    /// Whether `ip` is in one of the networks; an IPv4-mapped IPv6 address is looked up as
    /// its IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.networks.iter().any(|n| n.contains(ip))
    }

    /// Whether there is no network in the list.
    pub fn is_empty(&self) -> bool {
        self.networks.is_empty()
    }
}

impl Default for TrustedProxies {
    fn default() -> Self {
        TrustedProxies::loopback()
    }
}

/// A list separated by commas (or white space): `"10.0.0.0/8, ::1"`.
impl FromStr for TrustedProxies {
    type Err = io::Error;

    fn from_str(text: &str) -> io::Result<Self> {
        text.split(|c: char| c == ',' || c.is_ascii_whitespace())
            .filter(|s| !s.is_empty())
            .try_fold(TrustedProxies::none(), |trusted, network| {
                trusted.trust(network)
            })
    }
}

impl fmt::Display for TrustedProxies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, network) in self.networks.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            network.fmt(f)?;
        }
        Ok(())
    }
}

/// How a server takes PROXY headers: from which peers, and how long a header may take.
/// Made from a [`TrustedProxies`] with the default timeout:
/// `builder.proxy_protocol(trusted)`.
#[derive(Clone, Debug)]
pub struct ProxyProtocol {
    trusted: TrustedProxies,
    header_timeout: Duration,
}

impl ProxyProtocol {
    /// PROXY headers from the peers in `trusted`, each within 10 seconds of the accept.
    pub fn new(trusted: TrustedProxies) -> Self {
        ProxyProtocol {
            trusted,
            header_timeout: Duration::from_secs(10),
        }
    }

    /// How long after the accept a trusted peer's header must be complete (default 10 s,
    /// as for a TLS handshake); the connection is closed if it is not.
    pub fn header_timeout(mut self, timeout: Duration) -> Self {
        self.header_timeout = timeout;
        self
    }

    /// The peers that must send a header.
    pub fn trusted(&self) -> &TrustedProxies {
        &self.trusted
    }

    /// The state of one accepted connection from `peer`.
    pub(crate) fn intake(&self, peer: SocketAddr) -> Intake {
        Intake {
            peer,
            trusted: self.trusted.contains(peer.ip()),
            deadline: Instant::now() + self.header_timeout,
            settled: AtomicBool::new(false),
            state: Mutex::new(Stage::Reading(Vec::new())),
            source: OnceLock::new(),
        }
    }
}

impl From<TrustedProxies> for ProxyProtocol {
    fn from(trusted: TrustedProxies) -> Self {
        ProxyProtocol::new(trusted)
    }
}

/// The PROXY header was missing, malformed, late, or sent by a peer not trusted to send
/// one: a disconnect, logged at debug, not a failure of the server's.
#[derive(Debug)]
pub(crate) struct ProxyFailure(String);

impl fmt::Display for ProxyFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PROXY protocol: {}", self.0)
    }
}

impl std::error::Error for ProxyFailure {}

impl ProxyFailure {
    /// Whether `err`, or an error it wraps, is a PROXY failure.
    pub(crate) fn is_cause_of(err: &(dyn std::error::Error + 'static)) -> bool {
        let mut cause = Some(err);
        while let Some(err) = cause {
            if err.is::<ProxyFailure>() {
                return true;
            }
            if let Some(io) = err.downcast_ref::<io::Error>() {
                if io.get_ref().is_some_and(|inner| inner.is::<ProxyFailure>()) {
                    return true;
                }
            }
            cause = err.source();
        }
        false
    }
}

/// How a read that meets the header stage may wait.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Wait {
    /// Not at all: `WouldBlock` while the header is not all here.
    No,
    /// For input, as long as the socket's read timeout (`None`: forever); a trusted
    /// peer's header no longer than its deadline.
    Yes(Option<Duration>),
}

/// Where a connection stands with its PROXY header.
enum Stage {
    /// The start of the stream, consumed so far (a part of a header, which a level-
    /// triggered epoll must not report again).
    Reading(Vec<u8>),
    /// An untrusted peer's first bytes, consumed while they looked like the start of a
    /// signature and then were none: the stream's start, read before the socket's.
    Replaying(Vec<u8>),
    /// The header is read (or there is none): reads go to the socket.
    Done,
    /// The connection is refused.
    Failed,
}

/// One connection's PROXY header stage, shared by the clones of its socket.
pub(crate) struct Intake {
    peer: SocketAddr,
    trusted: bool,
    deadline: Instant,
    /// `Stage::Done`: reads need not look (one atomic load).
    settled: AtomicBool,
    state: Mutex<Stage>,
    /// The header's source, once read.
    source: OnceLock<SocketAddr>,
}

impl fmt::Debug for Intake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Intake")
            .field("peer", &self.peer)
            .field("trusted", &self.trusted)
            .field("source", &self.source.get())
            .finish_non_exhaustive()
    }
}

impl Intake {
    /// The client the header named, once it has been read.
    pub(crate) fn source(&self) -> Option<SocketAddr> {
        self.source.get().copied()
    }

    /// Whether the header stage is over: reads go straight to the socket.
    pub(crate) fn is_settled(&self) -> bool {
        self.settled.load(Ordering::Acquire)
    }

    /// Until when the header of a trusted peer may still come, while it has not.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        (self.trusted && !self.settled.load(Ordering::Acquire)).then_some(self.deadline)
    }

    /// Whether bytes of the stream wait here, outside the socket (where epoll cannot see
    /// them).
    pub(crate) fn holds_input(&self) -> bool {
        !self.settled.load(Ordering::Acquire) && matches!(&*self.lock(), Stage::Replaying(_))
    }

    fn lock(&self) -> MutexGuard<'_, Stage> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs the header stage as far as it goes, before a read of `buf`: `Some(n)` if the
    /// read is answered here (bytes of an untrusted peer consumed earlier), `None` if it
    /// goes to the socket (or the TLS session). `tls`: the stream is a TLS connection,
    /// whose first byte tells it from a header at once.
    pub(crate) fn before_read(
        &self,
        fd: BorrowedFd<'_>,
        tls: bool,
        wait: Wait,
        buf: &mut [u8],
    ) -> io::Result<Option<usize>> {
        if self.settled.load(Ordering::Acquire) {
            return Ok(None);
        }
        let mut stage = self.lock();
        loop {
            match &mut *stage {
                Stage::Done => return Ok(None),
                Stage::Failed => return Err(self.failure("the connection was refused")),
                Stage::Replaying(bytes) => {
                    let n = bytes.len().min(buf.len());
                    buf[..n].copy_from_slice(&bytes[..n]);
                    bytes.drain(..n);
                    if bytes.is_empty() {
                        self.settle(&mut stage);
                    }
                    return Ok(Some(n));
                }
                Stage::Reading(_) => {}
            }
            match self.step(&mut stage, fd, tls) {
                Ok(true) => {}
                Ok(false) => self.wait(&mut stage, fd, wait)?,
                Err(err) => {
                    *stage = Stage::Failed;
                    return Err(err);
                }
            }
        }
    }

    fn settle(&self, stage: &mut Stage) {
        *stage = Stage::Done;
        self.settled.store(true, Ordering::Release);
    }

    /// Looks at what has arrived: `true` if the stage moved on (header read, or none to
    /// read), `false` if more must come first.
    fn step(&self, stage: &mut Stage, fd: BorrowedFd<'_>, tls: bool) -> io::Result<bool> {
        let Stage::Reading(taken) = stage else {
            return Ok(true);
        };
        let mut peeked = [0u8; MAX_HEADER_LEN];
        let room = MAX_HEADER_LEN - taken.len();
        let flags = MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT;
        let n = loop {
            match recv(fd.as_raw_fd(), &mut peeked[..room], flags) {
                Ok(n) => break n,
                Err(nix::errno::Errno::EAGAIN) => return Ok(false),
                Err(nix::errno::Errno::EINTR) => {}
                Err(errno) => return Err(errno.into()),
            }
        };
        if n == 0 {
            // The end of the stream: reads see it. An untrusted peer's consumed bytes
            // come first.
            match std::mem::take(taken) {
                bytes if bytes.is_empty() || self.trusted => self.settle(stage),
                bytes => *stage = Stage::Replaying(bytes),
            }
            return Ok(true);
        }
        let mut data = std::mem::take(taken);
        let before = data.len();
        data.extend_from_slice(&peeked[..n]);
        if !self.trusted {
            match starts_with_signature(&data) {
                Some(true) => {
                    return Err(self.failure("a header from a peer not trusted to send one"))
                }
                Some(false) => {
                    data.truncate(before);
                    match data.is_empty() {
                        true => self.settle(stage),
                        false => *stage = Stage::Replaying(data),
                    }
                    return Ok(true);
                }
                // Not a TLS ClientHello (which starts with 0x16): the TLS session refuses
                // it, from the socket.
                None if tls => {
                    self.settle(stage);
                    return Ok(true);
                }
                None => {
                    consume(fd, n)?;
                    *stage = Stage::Reading(data);
                    return Ok(false);
                }
            }
        }
        match parse(&data) {
            Ok(header) => {
                consume(fd, header.len - before)?;
                if let Some(source) = header.source {
                    let _ = self
                        .source
                        .set(SocketAddr::new(source.ip().to_canonical(), source.port()));
                }
                self.settle(stage);
                Ok(true)
            }
            Err(ParseError::Incomplete) => {
                consume(fd, n)?;
                *stage = Stage::Reading(data);
                Ok(false)
            }
            Err(ParseError::Invalid(why)) => Err(self.failure(why)),
        }
    }

    /// Waits for more of the header, as `wait` allows.
    fn wait(&self, stage: &mut Stage, fd: BorrowedFd<'_>, wait: Wait) -> io::Result<()> {
        let now = Instant::now();
        let left = self.deadline.saturating_duration_since(now);
        if self.trusted && left.is_zero() {
            *stage = Stage::Failed;
            return Err(self.failure("the header did not come in time"));
        }
        let Wait::Yes(read_timeout) = wait else {
            return Err(io::ErrorKind::WouldBlock.into());
        };
        let limit = match (self.trusted, read_timeout) {
            (true, Some(t)) => Some(t.min(left)),
            (true, None) => Some(left),
            (false, t) => t,
        };
        if readable_within(fd, limit)? {
            return Ok(());
        }
        if self.trusted && Instant::now() >= self.deadline {
            *stage = Stage::Failed;
            return Err(self.failure("the header did not come in time"));
        }
        Err(io::Error::new(
            io::ErrorKind::WouldBlock,
            "no data within the read timeout",
        ))
    }

    fn failure(&self, why: &str) -> io::Error {
        log::debug!(target: "socketserver::proxy", "{}: {why}", self.peer);
        io::Error::new(
            io::ErrorKind::ConnectionAborted,
            ProxyFailure(why.to_string()),
        )
    }
}

/// Takes `n` bytes, already peeked, out of the socket.
fn consume(fd: BorrowedFd<'_>, mut n: usize) -> io::Result<()> {
    let mut scratch = [0u8; 512];
    while n > 0 {
        let chunk = n.min(scratch.len());
        match recv(
            fd.as_raw_fd(),
            &mut scratch[..chunk],
            MsgFlags::MSG_DONTWAIT,
        ) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(got) => n -= got,
            Err(nix::errno::Errno::EINTR) => {}
            Err(errno) => return Err(errno.into()),
        }
    }
    Ok(())
}

/// Waits at most `limit` (`None`: forever) for input or the end on `fd`; `false` if none.
fn readable_within(fd: BorrowedFd<'_>, limit: Option<Duration>) -> io::Result<bool> {
    let timeout = match limit {
        None => PollTimeout::NONE,
        Some(limit) => {
            let millis = limit.as_millis().saturating_add(1);
            PollTimeout::try_from(millis).unwrap_or(PollTimeout::MAX)
        }
    };
    let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
    loop {
        match poll(&mut fds, timeout) {
            Ok(ready) => return Ok(ready > 0),
            Err(nix::errno::Errno::EINTR) => {}
            Err(err) => return Err(err.into()),
        }
    }
}

#[cfg(test)]
mod tests;
