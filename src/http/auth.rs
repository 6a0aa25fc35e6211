//! HTTP Basic authentication (RFC 7617): [`BasicAuth`] wraps a handler and lets through only
//! the requests that carry a known user's password.

use std::fmt;
use std::io::{self, Write};
use std::sync::Arc;

use base64::Engine as _;
use http::{header, HeaderValue, Method, StatusCode, Version};
use sha2::{Digest, Sha256};
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};

use super::handler::{HttpHandler, HttpRequest};
use super::limits::Limits;
use super::response::error_page;
use super::status;
use super::wrappers::inner_attributes;
use crate::handler::{BoxError, HandlerResult};

/// HTTP Basic authentication (RFC 7617) in front of another handler: a request without a
/// known user's password gets `401 Unauthorized` with a `WWW-Authenticate: Basic` challenge
/// (the browser asks for a name and password and sends the request again); the others go to
/// the inner handler as they came, and the access log names their user.
///
/// ```no_run
/// use socketserver::files::SimpleHttpHandler;
/// use socketserver::http::{BasicAuth, HttpServer};
///
/// let files = SimpleHttpHandler::new("www")?;
/// let site = BasicAuth::new(files, "uploads")
///     .user("alice", "correct horse battery staple")?
///     // htpasswd -nbB bob 'his password', without the leading "bob:".
///     .user_hashed("bob", "$2y$05$z17ASYIe./KgIlfkHCna1uhV4X.vacF5iLM3escHrHMrFHXVbExH2")?
///     .writes_only(true);
/// HttpServer::bind("127.0.0.1:8000", site)?.serve_forever()?;
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # Passwords
///
/// [`user`](BasicAuth::user) takes a password as it is; [`user_hashed`](BasicAuth::user_hashed)
/// one of two hashes, so that the password need not be written down:
///
/// - bcrypt (`$2b$`, `$2y$`, `$2a$`), salted and slow: `htpasswd -nbB user password` (Apache's
///   tool, package `apache2-utils`) prints `user:$2y$05$...`; the hash is what follows the
///   colon. Cost 5 (`-C 5`, htpasswd's default) takes about 2 ms to check, each step up twice
///   that. bcrypt reads the first 72 bytes of a password, as htpasswd does.
/// - `sha256:` and the hex digits of the password's SHA-256: `printf %s 'password' |
///   sha256sum` (miniserve's `--auth user:sha256:...` format). Fast and unsalted, so anyone
///   who reads it can try a dictionary against it at billions of guesses a second: only for
///   long random passwords.
///
/// A bcrypt check is too slow for the event loop's thread, which every other connection
/// waits for: [`may_block`](HttpHandler::may_block) says a request with credentials to check
/// by bcrypt may block, so an [`EventLoop`](crate::concurrency::EventLoop) checks them on a
/// worker. Each connection remembers (as a SHA-256 digest, compared in constant time) the
/// last credentials it proved, so a browser that sends them with every request pays for one
/// check per connection, not per request; the next requests stay on the loop's thread.
///
/// # Timing
///
/// The user name and password are compared as SHA-256 digests, so every comparison is of
/// 32 bytes whatever their length, and in constant time (`subtle`), against every user: an
/// unknown name takes as long as a wrong password. When some user has a bcrypt hash, every
/// check runs bcrypt once, against the named user's hash or, for any other name, against
/// another user's in its place; give every user the same cost, or the time tells a name of
/// one cost from the others.
///
/// # Refusals
///
/// Every refused request gets the same answer, whatever was wrong: no `Authorization`
/// header, more than one, another scheme, a value that is not strict `Basic base64(user:
/// password)` (canonical base64 with its padding, UTF-8, a colon, no control characters),
/// an unknown user or a wrong password. The 401 has the handler's error page and a
/// `Content-Length`, so the connection stays open for the retry with credentials; `HEAD`
/// gets the head alone. A request with `Expect: 100-continue` is refused before its body
/// is sent when no bcrypt check is needed: always for missing or malformed credentials, and
/// for wrong ones when no user has a bcrypt hash. With one, every check runs bcrypt
/// (whoever is named), which an event loop does not run on its own thread: it reads the
/// body first, then checks on a worker.
///
/// # How every request passes the check
///
/// Of the `do_*` family `BasicAuth` implements [`fallback`](HttpHandler::fallback) alone:
/// every default `do_*` method calls `fallback`, and the default `do_head` calls `do_get`,
/// which calls `fallback`, so every request, whatever its method (`TRACE` and extensions
/// too), is checked before [`dispatch`](HttpHandler::dispatch) hands it to the inner
/// handler by its own method (`HEAD` reaches the inner `do_head`). A `do_*` method added to
/// this type would have to check for itself. The settings are the inner handler's: the
/// associated constants, [`limits`](HttpHandler::limits), and
/// [`may_block`](HttpHandler::may_block) and
/// [`handle_expect_100`](HttpHandler::handle_expect_100) after the check.
///
/// # Not done here
///
/// - Basic authentication sends the password in the clear (base64 is no encryption) with
///   every request: serve it over TLS (a proxy in front) or on a network you trust.
/// - No rate limiting: guesses are as fast as the check. The access log shows each 401 with
///   the client's address, for a tool such as fail2ban to act on.
/// - Names and passwords are compared as the exact UTF-8 bytes sent, without the Unicode
///   normalization RFC 7617 suggests.
///
/// The password is never logged, and `Debug` shows only the realm and the user names.
pub struct BasicAuth<H> {
    inner: H,
    config: Arc<Config>,
    /// The credentials this connection last proved (each connection has its own clone).
    proven: Option<Proven>,
}

/// What every connection's clone shares.
#[derive(Clone)]
struct Config {
    realm: String,
    /// The `WWW-Authenticate` value: `Basic realm="...", charset="UTF-8"`.
    challenge: String,
    /// The 401 page, in the inner handler's `ERROR_MESSAGE_FORMAT`.
    page: String,
    users: Vec<User>,
    /// The first user with a bcrypt hash, whose hash stands in for the others' check.
    stand_in: Option<usize>,
    writes_only: bool,
}

#[derive(Clone)]
struct User {
    name: String,
    name_digest: [u8; 32],
    secret: Secret,
}

#[derive(Clone)]
enum Secret {
    /// The SHA-256 of the password (given as it is, or as `sha256:`).
    Sha256([u8; 32]),
    /// A bcrypt hash, checked as valid when it was given.
    Bcrypt(String),
}

/// Credentials a connection proved: the digest of its `Authorization` value, and whose.
struct Proven {
    credentials: [u8; 32],
    user: usize,
}

/// What a request's credentials come to.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// They prove this user (an index into the users).
    User(usize),
    /// They prove nothing, or are not there.
    Refused,
    /// They need a bcrypt check, which the caller did not allow.
    Deferred,
}

/// Whether a check may run bcrypt on the current thread.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Slow {
    Allowed,
    Deferred,
}

impl<H: HttpHandler> BasicAuth<H> {
    /// `inner` behind a login for `realm` (the name browsers show in the login prompt).
    /// No user is known until [`user`](BasicAuth::user) or
    /// [`user_hashed`](BasicAuth::user_hashed) adds one. Control characters in `realm`
    /// become spaces.
    pub fn new(inner: H, realm: impl Into<String>) -> Self {
        let realm: String = realm.into();
        let challenge = challenge(&realm);
        let code = StatusCode::UNAUTHORIZED;
        let page = error_page(
            H::ERROR_MESSAGE_FORMAT,
            code.as_u16(),
            status::reason(code),
            status::explain(code),
        );
        BasicAuth {
            inner,
            config: Arc::new(Config {
                realm,
                challenge,
                page,
                users: Vec::new(),
                stand_in: None,
                writes_only: false,
            }),
            proven: None,
        }
    }

    /// Adds a user with their password, as it is; a name given again gets the new password.
    /// Fails (`InvalidInput`) for a name with a colon or either with a control character,
    /// which no client can send (RFC 7617).
    pub fn user(self, name: &str, password: &str) -> io::Result<Self> {
        if password.chars().any(char::is_control) {
            return Err(invalid(format!(
                "the password of user {name:?} has a control character, which no client can send"
            )));
        }
        self.add(name, Secret::Sha256(sha256(password.as_bytes())))
    }

    /// Adds a user with a hash of their password: a bcrypt hash (`$2y$05$...`, from
    /// `htpasswd -nbB user password`), or `sha256:` and 64 hex digits (`printf %s password |
    /// sha256sum`); see [Passwords](BasicAuth#passwords). A name given again gets the new
    /// hash. Fails (`InvalidInput`) for another format, or a name with a colon or a control
    /// character.
    pub fn user_hashed(self, name: &str, hash: &str) -> io::Result<Self> {
        let secret = parse_hash(hash).ok_or_else(|| {
            invalid(format!(
                "the password hash of user {name:?} is neither a bcrypt hash ($2b$, $2y$ or \
                 $2a$, as htpasswd -B writes it) nor sha256: and 64 hex digits"
            ))
        })?;
        self.add(name, secret)
    }

    /// With `true`, only requests that may change something need credentials: `GET`,
    /// `HEAD` and `OPTIONS` pass unchecked (and are logged without a user), every other
    /// method is checked. For a site that everyone may read and only some may upload to.
    pub fn writes_only(mut self, writes_only: bool) -> Self {
        Arc::make_mut(&mut self.config).writes_only = writes_only;
        self
    }

    fn add(mut self, name: &str, secret: Secret) -> io::Result<Self> {
        if name.contains(':') || name.chars().any(char::is_control) {
            return Err(invalid(format!(
                "user name {name:?} has a colon or a control character, which no client can send"
            )));
        }
        let config = Arc::make_mut(&mut self.config);
        let user = User {
            name: name.to_string(),
            name_digest: sha256(name.as_bytes()),
            secret,
        };
        match config.users.iter_mut().find(|u| u.name == name) {
            Some(known) => *known = user,
            None => config.users.push(user),
        }
        config.stand_in = config
            .users
            .iter()
            .position(|u| matches!(u.secret, Secret::Bcrypt(_)));
        Ok(self)
    }

    /// Whether `request` needs credentials.
    fn guards(&self, request: &HttpRequest<'_>) -> bool {
        let reads = [Method::GET, Method::HEAD, Method::OPTIONS];
        !self.config.writes_only || !reads.contains(&request.command)
    }

    /// What the request's credentials come to; a bcrypt check runs only if `slow` allows.
    /// Credentials it proves are remembered for the connection's next requests.
    fn verdict(&mut self, request: &HttpRequest<'_>, slow: Slow) -> Verdict {
        let Some(value) = single_authorization(request) else {
            return Verdict::Refused;
        };
        let digest = sha256(value.as_bytes());
        if let Some(user) = self.proven_user(&digest) {
            return Verdict::User(user);
        }
        let Ok(credentials) = parse_basic(value.as_bytes()) else {
            return Verdict::Refused;
        };
        if self.config.stand_in.is_some() && slow == Slow::Deferred {
            return Verdict::Deferred;
        }
        match self.config.check(&credentials) {
            Some(user) => {
                self.proven = Some(Proven {
                    credentials: digest,
                    user,
                });
                Verdict::User(user)
            }
            None => Verdict::Refused,
        }
    }

    /// The user whose credentials have `digest`, if this connection proved them already.
    fn proven_user(&self, digest: &[u8; 32]) -> Option<usize> {
        let proven = self.proven.as_ref()?;
        bool::from(proven.credentials.ct_eq(digest)).then_some(proven.user)
    }

    /// Whether checking the request's credentials would run bcrypt: they are well-formed
    /// (anything else is refused at once) and not proven on this connection yet.
    fn needs_slow_check(&self, request: &HttpRequest<'_>) -> bool {
        self.config.stand_in.is_some()
            && self.guards(request)
            && single_authorization(request).is_some_and(|value| {
                let value = value.as_bytes();
                self.proven_user(&sha256(value)).is_none() && parse_basic(value).is_ok()
            })
    }

    /// The 401 answer: the challenge and the error page, with a length so that the
    /// connection can stay open for the retry.
    fn refuse(&self, request: &mut HttpRequest<'_>) -> HandlerResult {
        let page = self.config.page.as_bytes();
        request.send_response(StatusCode::UNAUTHORIZED)?;
        request.send_header("WWW-Authenticate", &self.config.challenge)?;
        request.send_header("Content-Type", H::ERROR_CONTENT_TYPE)?;
        request.send_content_length(page.len() as u64)?;
        request.end_headers()?;
        request.wfile.write_all(page)?;
        Ok(())
    }
}

impl Config {
    /// The user `credentials` prove, if any. Every user is compared, in constant time; with
    /// bcrypt users, bcrypt runs once whoever is named.
    fn check(&self, credentials: &Credentials) -> Option<usize> {
        let name = sha256(credentials.user.as_bytes());
        let password = sha256(credentials.password.as_bytes());
        let mut named = Choice::from(0);
        let mut index = 0u64;
        let mut fast_match = Choice::from(0);
        let mut bcrypt_named = Choice::from(0);
        for (i, user) in self.users.iter().enumerate() {
            let same = user.name_digest.ct_eq(&name);
            named |= same;
            index.conditional_assign(&(i as u64), same);
            match &user.secret {
                Secret::Sha256(digest) => fast_match |= same & digest.ct_eq(&password),
                Secret::Bcrypt(_) => bcrypt_named |= same,
            }
        }
        let slow_match = self.check_bcrypt(&credentials.password, index, bcrypt_named);
        let matched = named & (fast_match | slow_match);
        bool::from(matched).then_some(index as usize)
    }

    /// Runs bcrypt once if any user has a bcrypt hash: against user `index`'s if
    /// `bcrypt_named`, else against the stand-in's, whose answer is then dropped.
    fn check_bcrypt(&self, password: &str, index: u64, bcrypt_named: Choice) -> Choice {
        let Some(stand_in) = self.stand_in else {
            return Choice::from(0);
        };
        let target = u64::conditional_select(&(stand_in as u64), &index, bcrypt_named);
        let Secret::Bcrypt(hash) = &self.users[target as usize].secret else {
            return Choice::from(0);
        };
        let verified = bcrypt::verify(password, hash).unwrap_or(false);
        bcrypt_named & Choice::from(u8::from(verified))
    }
}

impl<H: HttpHandler> HttpHandler for BasicAuth<H> {
    inner_attributes!();

    /// The inner handler's answer, or `true` when the credentials need a bcrypt check (not
    /// on the event loop's thread).
    fn may_block(&self, request: &HttpRequest<'_>) -> bool {
        self.needs_slow_check(request) || self.inner.may_block(request)
    }

    /// Checks the credentials and hands every request they prove to the inner handler.
    fn fallback(&mut self, request: &mut HttpRequest<'_>) -> HandlerResult {
        if self.guards(request) {
            match self.verdict(request, Slow::Allowed) {
                Verdict::User(user) => {
                    request.set_remote_user(self.config.users[user].name.as_str());
                }
                Verdict::Refused | Verdict::Deferred => {
                    return self.refuse(request);
                }
            }
        }
        self.inner.dispatch(request)
    }

    /// Refuses a body whose request the credentials do not allow, then asks the inner
    /// handler. Runs on the event loop's thread, so a bcrypt check waits for the body.
    fn handle_expect_100(&mut self, request: &mut HttpRequest<'_>) -> Result<bool, BoxError> {
        if self.guards(request) && self.verdict(request, Slow::Deferred) == Verdict::Refused {
            self.refuse(request)?;
            return Ok(false);
        }
        self.inner.handle_expect_100(request)
    }
}

/// A clone starts with nothing proven: the server clones its handler for each connection.
impl<H: Clone> Clone for BasicAuth<H> {
    fn clone(&self) -> Self {
        BasicAuth {
            inner: self.inner.clone(),
            config: Arc::clone(&self.config),
            proven: None,
        }
    }
}

impl<H: fmt::Debug> fmt::Debug for BasicAuth<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let users: Vec<&str> = self.config.users.iter().map(|u| u.name.as_str()).collect();
        f.debug_struct("BasicAuth")
            .field("inner", &self.inner)
            .field("realm", &self.config.realm)
            .field("users", &users)
            .field("writes_only", &self.config.writes_only)
            .finish_non_exhaustive()
    }
}

/// The request's one `Authorization` value; `None` for none or several (a field that is
/// not a list may not be repeated: which one would count?).
fn single_authorization<'r>(request: &'r HttpRequest<'_>) -> Option<&'r HeaderValue> {
    let mut values = request.headers.get_all(header::AUTHORIZATION).iter();
    match (values.next(), values.next()) {
        (Some(value), None) => Some(value),
        _ => None,
    }
}

/// The name and password of a `Basic` credential.
#[derive(Debug, PartialEq, Eq)]
struct Credentials {
    user: String,
    password: String,
}

/// Why an `Authorization` value is no `Basic` credential (for the tests: the client is
/// never told).
#[derive(Debug, PartialEq, Eq)]
enum Malformed {
    /// Another scheme, or none.
    Scheme,
    /// Not one base64 token with its padding, canonical.
    Base64,
    /// The decoded bytes are not UTF-8.
    Utf8,
    /// No colon between name and password.
    Colon,
    /// A control character in the name or password (RFC 7617, 2).
    Control,
}

/// Reads `Basic base64(user:password)` (RFC 7617), strictly: the scheme name in any case
/// (RFC 9110, 11.1), then one or more spaces and one token of standard base64 with its
/// padding and no stray bits, decoding to UTF-8 with a colon and no control character.
/// Space and tabs around the value are allowed (they are not part of a field value).
fn parse_basic(value: &[u8]) -> Result<Credentials, Malformed> {
    let value = value.trim_ascii();
    let scheme_end = value.iter().position(|&b| b == b' ').unwrap_or(value.len());
    let (scheme, rest) = value.split_at(scheme_end);
    if !scheme.eq_ignore_ascii_case(b"basic") {
        return Err(Malformed::Scheme);
    }
    let token_start = rest.iter().position(|&b| b != b' ').unwrap_or(rest.len());
    let token = &rest[token_start..];
    if token.is_empty() {
        return Err(Malformed::Base64);
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(token)
        .map_err(|_| Malformed::Base64)?;
    let text = String::from_utf8(decoded).map_err(|_| Malformed::Utf8)?;
    let (user, password) = text.split_once(':').ok_or(Malformed::Colon)?;
    if text.chars().any(char::is_control) {
        return Err(Malformed::Control);
    }
    Ok(Credentials {
        user: user.to_string(),
        password: password.to_string(),
    })
}

/// A password hash as [`BasicAuth::user_hashed`] takes it.
fn parse_hash(hash: &str) -> Option<Secret> {
    if let Some(hex) = hash.strip_prefix("sha256:") {
        return parse_hex_digest(hex).map(Secret::Sha256);
    }
    let bcrypt = ["$2b$", "$2y$", "$2a$"].iter().any(|p| hash.starts_with(p));
    (bcrypt && hash.parse::<bcrypt::HashParts>().is_ok()).then(|| Secret::Bcrypt(hash.into()))
}

/// 64 hex digits, either case, as 32 bytes.
fn parse_hex_digest(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.as_bytes();
    if hex.len() != 64 {
        return None;
    }
    let mut digest = [0u8; 32];
    for (byte, pair) in digest.iter_mut().zip(hex.chunks_exact(2)) {
        let digit = |b: u8| char::from(b).to_digit(16);
        *byte = u8::try_from((digit(pair[0])? << 4) | digit(pair[1])?).ok()?;
    }
    Some(digest)
}

/// `Basic realm="realm", charset="UTF-8"`, the realm a quoted-string (RFC 9110, 5.6.4):
/// `"` and `\` escaped, control characters as spaces.
fn challenge(realm: &str) -> String {
    let mut value = String::with_capacity(realm.len() + 40);
    value.push_str("Basic realm=\"");
    for c in realm.chars() {
        match c {
            '"' | '\\' => {
                value.push('\\');
                value.push(c);
            }
            c if c.is_control() => value.push(' '),
            c => value.push(c),
        }
    }
    value.push_str("\", charset=\"UTF-8\"");
    value
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::TestRequest;

    /// `htpasswd -nbB -C 4 dave dave-pass`, without `dave:`.
    const DAVE_BCRYPT: &str = "$2y$04$jn34Y.9//IADI32Oas3BAOe4ASRZsYImxL2fsaOkf6ox8QuAn64JG";
    /// `htpasswd -nbB -C 4 alice alice-bcrypt`.
    const ALICE_BCRYPT: &str = "$2y$04$KzPtJOpY07d/JH/ElHAWEesp45MS2RUUhuXiD4uhRTgMrfcdTTSfS";
    /// `printf %s erin-pass | sha256sum`.
    const ERIN_SHA256: &str = "4a7eda89c301c544696a362d00f27ea45eb8a7992f6a36c68c0d6ac83cc3faac";

    fn encode(text: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(text)
    }

    fn basic(user_password: &str) -> String {
        format!("Basic {}", encode(user_password.as_bytes()))
    }

    fn parsed(value: &str) -> Result<(String, String), Malformed> {
        parse_basic(value.as_bytes()).map(|c| (c.user, c.password))
    }

    fn pair(user: &str, password: &str) -> Result<(String, String), Malformed> {
        Ok((user.to_string(), password.to_string()))
    }

    #[test]
    fn reads_basic_credentials_in_any_case_of_the_scheme() {
        let token = encode(b"alice:secret");
        for value in [
            format!("Basic {token}"),
            format!("basic {token}"),
            format!("BASIC {token}"),
            format!("bAsIc    {token}"),
            format!(" \tBasic {token} \t"),
        ] {
            assert_eq!(parsed(&value), pair("alice", "secret"), "{value:?}");
        }
        assert_eq!(parsed(&basic("a:b:c")), pair("a", "b:c"));
        assert_eq!(parsed(&basic(":pw")), pair("", "pw"));
        assert_eq!(parsed(&basic("alice:")), pair("alice", ""));
        assert_eq!(
            parsed(&basic("jöhn:pässwörd €")),
            pair("jöhn", "pässwörd €")
        );
    }

    #[test]
    fn refuses_other_schemes_and_missing_tokens() {
        let token = encode(b"alice:secret");
        for value in [
            String::new(),
            "   ".to_string(),
            format!("Bearer {token}"),
            format!("Digest username=\"alice\", {token}"),
            format!("Basic{token}"),
            format!("Basic\t{token}"),
            format!("Basic-{token}"),
            format!("Basi {token}"),
            format!("Basicc {token}"),
            token.clone(),
        ] {
            assert_eq!(parsed(&value), Err(Malformed::Scheme), "{value:?}");
        }
        for value in ["Basic", "Basic ", "basic    "] {
            assert_eq!(parsed(value), Err(Malformed::Base64), "{value:?}");
        }
    }

    #[test]
    fn refuses_base64_that_is_not_strict() {
        // "a:bc" is YTpiYw== in standard base64.
        assert_eq!(parsed("Basic YTpiYw=="), pair("a", "bc"));
        for token in [
            "YTpiYw",               // no padding
            "YTpiYw=",              // short padding
            "YTpiYw===",            // too much padding
            "YTpiYx==",             // stray bits in the last symbol
            "YTpi=Yw=",             // padding inside
            "YT!iYw==",             // not the alphabet
            "YTpi Yw==",            // a space inside
            "YTpi\tYw==",           // a tab inside
            "YTpiYw==, Basic YTpi", // two credentials folded into one field
            "YTpiYw==YTpi",         // data after the padding
            "-_-_",                 // the URL-safe alphabet
            "YTpiYw==\u{0}",        // a NUL
            "=",
            "====",
            "YTp\u{e9}iYw==", // a non-ASCII byte
        ] {
            let value = format!("Basic {token}");
            assert_eq!(parsed(&value), Err(Malformed::Base64), "{value:?}");
        }
    }

    #[test]
    fn refuses_decoded_bytes_that_are_not_utf8_or_hold_no_colon_or_controls() {
        let value = |bytes: &[u8]| format!("Basic {}", encode(bytes));
        for bytes in [&b"\xff:x"[..], b"x:\xc3", b"x:\xed\xa0\x80", b"\xc0\xaf:x"] {
            assert_eq!(parsed(&value(bytes)), Err(Malformed::Utf8), "{bytes:?}");
        }
        for bytes in [&b"alice"[..], b"a", b"alice secret"] {
            assert_eq!(parsed(&value(bytes)), Err(Malformed::Colon), "{bytes:?}");
        }
        for text in [
            "a\0:b",
            "a:b\0",
            "a:b\x7f",
            "a\n:b",
            "a:b\r\n",
            "a:\u{85}",
            "\x1b[31m:b",
        ] {
            assert_eq!(
                parsed(&value(text.as_bytes())),
                Err(Malformed::Control),
                "{text:?}"
            );
        }
    }

    #[test]
    fn reads_huge_tokens_whole() {
        // The server bounds the head; within it, any length is decoded and compared.
        let password = "p".repeat(45_000);
        let credentials = parsed(&basic(&format!("u:{password}"))).unwrap();
        assert_eq!(credentials, (String::from("u"), password));
        let junk = format!("Basic {}", "A".repeat(60_001));
        assert_eq!(parsed(&junk), Err(Malformed::Base64));
    }

    #[test]
    fn reads_sha256_and_bcrypt_hashes_and_nothing_else() {
        let digest = parse_hex_digest(ERIN_SHA256).unwrap();
        assert_eq!(digest, sha256(b"erin-pass"));
        let upper = ERIN_SHA256.to_ascii_uppercase();
        assert!(
            matches!(parse_hash(&format!("sha256:{upper}")), Some(Secret::Sha256(d)) if d == digest)
        );
        assert!(matches!(parse_hash(DAVE_BCRYPT), Some(Secret::Bcrypt(_))));
        let as_2b = DAVE_BCRYPT.replacen("$2y$", "$2b$", 1);
        assert!(matches!(parse_hash(&as_2b), Some(Secret::Bcrypt(_))));
        let short = &ERIN_SHA256[..62];
        for hash in [
            String::new(),
            "erin-pass".to_string(),
            ERIN_SHA256.to_string(),
            format!("sha256:{short}"),
            format!("sha256:{ERIN_SHA256}00"),
            format!("sha256:{}g", &ERIN_SHA256[..63]),
            format!("sha256:+{}", &ERIN_SHA256[..63]),
            format!("SHA256:{ERIN_SHA256}"),
            format!("sha256: {ERIN_SHA256}"),
            DAVE_BCRYPT.replacen("$2y$", "$2x$", 1),
            DAVE_BCRYPT.replacen("$2y$", "$1$", 1),
            DAVE_BCRYPT[..59].to_string(),
            format!("{DAVE_BCRYPT}x"),
            DAVE_BCRYPT.replacen("$04$", "$xx$", 1),
            "$2y$04$".to_string(),
            "$apr1$abcdefgh$0123456789abcdefghijkl".to_string(),
        ] {
            assert!(parse_hash(&hash).is_none(), "{hash:?}");
        }
    }

    #[test]
    fn quotes_the_realm() {
        assert_eq!(
            challenge("files"),
            "Basic realm=\"files\", charset=\"UTF-8\""
        );
        assert_eq!(
            challenge("a \"quoted\" \\ realm\r\nX-Evil: 1\x7f"),
            "Basic realm=\"a \\\"quoted\\\" \\\\ realm  X-Evil: 1 \", charset=\"UTF-8\""
        );
        assert_eq!(challenge("café"), "Basic realm=\"café\", charset=\"UTF-8\"");
    }

    /// No routes: 501 for everything, as the default handler answers.
    #[derive(Clone, Debug)]
    struct Nothing;

    impl HttpHandler for Nothing {}

    fn auth() -> BasicAuth<Nothing> {
        BasicAuth::new(Nothing, "test")
            .user("bob", "bob-pass")
            .unwrap()
            .user_hashed("dave", DAVE_BCRYPT)
            .unwrap()
            .user_hashed("erin", &format!("sha256:{ERIN_SHA256}"))
            .unwrap()
            .user_hashed("alice", ALICE_BCRYPT)
            .unwrap()
    }

    fn check(auth: &BasicAuth<Nothing>, user: &str, password: &str) -> Option<String> {
        let credentials = Credentials {
            user: user.into(),
            password: password.into(),
        };
        let config = &auth.config;
        config
            .check(&credentials)
            .map(|i| config.users[i].name.clone())
    }

    #[test]
    fn checks_every_kind_of_password() {
        let auth = auth();
        for (user, password) in [
            ("bob", "bob-pass"),
            ("dave", "dave-pass"),
            ("erin", "erin-pass"),
            ("alice", "alice-bcrypt"),
        ] {
            assert_eq!(check(&auth, user, password).as_deref(), Some(user));
            assert_eq!(check(&auth, user, &format!("{password}x")), None);
            assert_eq!(check(&auth, user, &password[1..]), None);
            assert_eq!(check(&auth, &user.to_uppercase(), password), None);
            assert_eq!(check(&auth, "mallory", password), None);
            assert_eq!(check(&auth, user, ""), None);
        }
        // Another user's password proves nothing.
        assert_eq!(check(&auth, "bob", "dave-pass"), None);
        assert_eq!(check(&auth, "dave", "alice-bcrypt"), None);
        assert_eq!(check(&auth, "erin", "bob-pass"), None);
        assert_eq!(check(&auth, "", ""), None);
    }

    #[test]
    fn a_name_given_again_gets_the_new_password() {
        let auth = auth().user("dave", "new").unwrap();
        assert_eq!(check(&auth, "dave", "new").as_deref(), Some("dave"));
        assert_eq!(check(&auth, "dave", "dave-pass"), None);
        assert_eq!(auth.config.users.len(), 4);
        // Dave's bcrypt hash is gone: Alice's stands in.
        assert_eq!(auth.config.stand_in, Some(3));
        let auth = BasicAuth::new(Nothing, "t").user("x", "y").unwrap();
        assert_eq!(auth.config.stand_in, None);
    }

    #[test]
    fn refuses_users_no_client_could_send() {
        for name in ["a:b", ":", "a\nb", "a\0", "\u{85}"] {
            let err = BasicAuth::new(Nothing, "t").user(name, "pw").unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        }
        let err = BasicAuth::new(Nothing, "t")
            .user("a", "secret\r\n")
            .unwrap_err();
        assert!(!err.to_string().contains("secret"), "{err}");
        let hash = "sha256:0123-not-hex-secret";
        let err = BasicAuth::new(Nothing, "t")
            .user_hashed("a", hash)
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(!err.to_string().contains("secret"), "{err}");
    }

    #[test]
    fn debug_shows_no_password() {
        let text = format!("{:?}", auth());
        assert!(
            text.contains("\"bob\"") && text.contains("\"test\""),
            "{text}"
        );
        for secret in [
            "bob-pass",
            "$2y$",
            ERIN_SHA256,
            &encode(&sha256(b"bob-pass")),
        ] {
            assert!(!text.contains(secret), "{text}");
        }
        let hex: String = sha256(b"bob-pass")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert!(!text.contains(&hex), "{text}");
    }

    /// Reports for each request what its credentials come to: first without running bcrypt,
    /// then, if that was deferred, with it; and whether it may block, before and after.
    #[derive(Clone)]
    struct Probe<H = Nothing>(BasicAuth<H>);

    impl<H: HttpHandler> HttpHandler for Probe<H> {
        const PROTOCOL_VERSION: Version = Version::HTTP_11;

        fn do_get(&mut self, request: &mut HttpRequest<'_>) -> HandlerResult {
            let slow = self.0.may_block(request);
            let report = match self.0.verdict(request, Slow::Deferred) {
                Verdict::Deferred => match self.0.verdict(request, Slow::Allowed) {
                    Verdict::User(user) => format!("checked {user}"),
                    other => format!("checked: {other:?}"),
                },
                Verdict::User(user) => format!("remembered {user}"),
                Verdict::Refused => "refused".to_string(),
            };
            let after = self.0.may_block(request);
            request.send_text(200, &format!("{report}, slow {slow} then {after}"))
        }
    }

    fn get(authorization: &str) -> String {
        format!("GET / HTTP/1.1\r\nHost: a\r\nAuthorization: {authorization}\r\n\r\n")
    }

    #[test]
    fn a_connection_remembers_the_credentials_it_proved() {
        let dave = basic("dave:dave-pass");
        let bob = basic("bob:bob-pass");
        let wrong = basic("dave:wrong");
        let requests = [&dave, &dave, &wrong, &bob, &bob, &dave, &wrong];
        let input: String = requests.iter().map(|a| get(a)).collect();
        let reports: Vec<String> = TestRequest::raw(input)
            .run_all(&Probe(auth()))
            .iter()
            .map(|r| r.text().to_string())
            .collect();
        assert_eq!(
            reports,
            [
                "checked 1, slow true then false",
                "remembered 1, slow false then false",
                "checked: Refused, slow true then true",
                // Bob's password is not a bcrypt one, but bcrypt runs for every name.
                "checked 0, slow true then false",
                "remembered 0, slow false then false",
                // Only the last credentials proved are remembered.
                "checked 1, slow true then false",
                "checked: Refused, slow true then true",
            ]
        );
        // A new connection (a clone) starts again.
        let again = TestRequest::raw(get(&dave)).run(&Probe(auth()));
        assert_eq!(again.text(), "checked 1, slow true then false");
    }

    #[test]
    fn malformed_credentials_are_refused_before_any_bcrypt_check() {
        let malformed = ["Bearer x", "Basic !!", &basic("nocolon"), &basic("a\0:b")];
        for value in malformed {
            let report = TestRequest::raw(get(value)).run(&Probe(auth()));
            assert_eq!(report.text(), "refused, slow false then false", "{value:?}");
        }
        let fast_only = Probe(
            BasicAuth::new(Nothing, "t")
                .user("bob", "bob-pass")
                .unwrap(),
        );
        let report = TestRequest::raw(get(&basic("bob:bob-pass"))).run(&fast_only);
        assert_eq!(report.text(), "remembered 0, slow false then false");
    }

    /// Says every request may block.
    #[derive(Clone, Debug)]
    struct Blocking;

    impl HttpHandler for Blocking {
        fn may_block(&self, _request: &HttpRequest<'_>) -> bool {
            true
        }
    }

    #[test]
    fn may_block_asks_the_inner_handler_too() {
        let probe = Probe(
            BasicAuth::new(Blocking, "t")
                .user("bob", "bob-pass")
                .unwrap(),
        );
        let report = TestRequest::raw(get(&basic("bob:bob-pass"))).run(&probe);
        assert_eq!(report.text(), "remembered 0, slow true then true");
    }
}
