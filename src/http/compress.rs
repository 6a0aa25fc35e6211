//! Content codings: `Accept-Encoding` negotiation (RFC 9110 section 12.5.3), gzip, brotli
//! and zstd compression, and a one-call compressed response for custom handlers.
//!
//! ```no_run
//! use socketserver::http::compress::{self, Encoding};
//! # fn handle(req: &mut socketserver::http::HttpRequest<'_>) -> socketserver::HandlerResult {
//! let page = "<p>a long page</p>".repeat(100);
//! // Content-Encoding (if the client accepts one), Vary and Content-Length are set.
//! req.respond_compressed(200, "text/html; charset=utf-8", &page)?;
//! // Or ask which coding the client wants, and do the rest yourself.
//! let _best: Encoding = compress::negotiate(&req.headers);
//! # Ok(()) }
//! ```
//!
//! # Negotiation
//!
//! Every `Accept-Encoding` field of the request is read as one list. Each element is a
//! coding (case-insensitive; `x-gzip` is gzip, as section 12.5.3 asks) with an optional
//! `;q=` weight (`0` to `1`, at most three decimals); `q=0` refuses the coding, `*` stands
//! for every coding not named, codings we do not know are skipped. An element that breaks
//! the grammar (another parameter, `q=2`, `q=0.5000`, a stray byte) makes the whole header
//! mean identity only: a client that cannot write the header cannot be trusted to decode.
//! With no `Accept-Encoding` at all, identity is sent.
//!
//! The coding with the highest weight wins; at equal weight brotli, then zstd, then gzip
//! (smallest output first). Identity wins over a coding only when the header names it (or
//! `*`) with a higher weight: `gzip;q=0.5` alone still means "gzip rather than nothing".
//! Identity is always sent when no coding is acceptable, even if the header refuses it
//! (section 12.5.3 allows that rather than a 406).

use std::fmt;
use std::io::Write;

use http::header::{HeaderMap, ACCEPT_ENCODING};

use super::{is_token_byte, HttpRequest, IntoStatus};
use crate::handler::HandlerResult;

/// A content coding, or none.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// The bytes as they are (no `Content-Encoding`).
    Identity,
    /// `br`: brotli (RFC 7932).
    Brotli,
    /// `zstd`: Zstandard (RFC 8878).
    Zstd,
    /// `gzip` (RFC 1952).
    Gzip,
}

impl Encoding {
    /// The coding's token, as in `Content-Encoding` (`identity` for none).
    pub fn token(self) -> &'static str {
        match self {
            Encoding::Identity => "identity",
            Encoding::Brotli => "br",
            Encoding::Zstd => "zstd",
            Encoding::Gzip => "gzip",
        }
    }

    /// The suffix of a precompressed file beside the original (`.br`, `.zst`, `.gz`).
    pub fn file_suffix(self) -> &'static str {
        match self {
            Encoding::Identity => "",
            Encoding::Brotli => ".br",
            Encoding::Zstd => ".zst",
            Encoding::Gzip => ".gz",
        }
    }

    fn from_token(token: &[u8]) -> Option<Encoding> {
        let known = [
            ("br", Encoding::Brotli),
            ("zstd", Encoding::Zstd),
            ("gzip", Encoding::Gzip),
            ("x-gzip", Encoding::Gzip),
            ("identity", Encoding::Identity),
        ];
        known
            .iter()
            .find(|(name, _)| token.eq_ignore_ascii_case(name.as_bytes()))
            .map(|&(_, encoding)| encoding)
    }

    /// Smaller is preferred at equal weight.
    fn rank(self) -> u8 {
        match self {
            Encoding::Brotli => 0,
            Encoding::Zstd => 1,
            Encoding::Gzip => 2,
            Encoding::Identity => 3,
        }
    }
}

impl fmt::Display for Encoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.token())
    }
}

/// A request's `Accept-Encoding`, parsed: the weight of each coding, in thousandths.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AcceptEncoding {
    brotli: Option<u16>,
    zstd: Option<u16>,
    gzip: Option<u16>,
    identity: Option<u16>,
    any: Option<u16>,
}

impl AcceptEncoding {
    /// Identity only: no header, or a malformed one.
    const IDENTITY_ONLY: AcceptEncoding = AcceptEncoding {
        brotli: None,
        zstd: None,
        gzip: None,
        identity: None,
        any: None,
    };

    /// Reads every `Accept-Encoding` field of `headers` (see the module's rules).
    pub fn from_headers(headers: &HeaderMap) -> AcceptEncoding {
        let mut accept = AcceptEncoding::IDENTITY_ONLY;
        for value in headers.get_all(ACCEPT_ENCODING) {
            if accept.read_field(value.as_bytes()).is_none() {
                return AcceptEncoding::IDENTITY_ONLY;
            }
        }
        accept
    }

    /// Adds the elements of one field value; `None` if it is malformed.
    fn read_field(&mut self, value: &[u8]) -> Option<()> {
        for element in value.split(|&b| b == b',') {
            let element = element.trim_ascii();
            if element.is_empty() {
                continue; // The list rule allows empty elements.
            }
            let (coding, weight) = match element.iter().position(|&b| b == b';') {
                Some(at) => (element[..at].trim_ascii(), weight(&element[at + 1..])?),
                None => (element, 1000),
            };
            if coding.is_empty() || !coding.iter().copied().all(is_token_byte) {
                return None;
            }
            let slot = match coding {
                b"*" => &mut self.any,
                _ => match Encoding::from_token(coding) {
                    Some(Encoding::Brotli) => &mut self.brotli,
                    Some(Encoding::Zstd) => &mut self.zstd,
                    Some(Encoding::Gzip) => &mut self.gzip,
                    Some(Encoding::Identity) => &mut self.identity,
                    None => continue,
                },
            };
            // The first mention of a coding counts.
            slot.get_or_insert(weight);
        }
        Some(())
    }

    /// The weight of `encoding` in thousandths; 0 refuses it. Identity not named (nor
    /// `*`) gets 1, the least acceptable weight: acceptable, preferred to nothing.
    pub fn weight(&self, encoding: Encoding) -> u16 {
        let named = match encoding {
            Encoding::Brotli => self.brotli,
            Encoding::Zstd => self.zstd,
            Encoding::Gzip => self.gzip,
            Encoding::Identity => return self.identity.or(self.any).unwrap_or(1),
        };
        named.or(self.any).unwrap_or(0)
    }

    /// Whether `encoding` may be sent instead of identity: accepted, and not weighed below
    /// identity.
    pub fn accepts(&self, encoding: Encoding) -> bool {
        let weight = self.weight(encoding);
        encoding == Encoding::Identity || (weight > 0 && weight >= self.weight(Encoding::Identity))
    }

    /// The best of `offered` (identity is always possible): the highest weight, then
    /// brotli, zstd, gzip.
    pub fn best(&self, offered: &[Encoding]) -> Encoding {
        offered
            .iter()
            .copied()
            .filter(|&e| e != Encoding::Identity && self.accepts(e))
            .min_by_key(|&e| (u16::MAX - self.weight(e), e.rank()))
            .unwrap_or(Encoding::Identity)
    }
}

/// `OWS "q=" qvalue OWS` after the `;`, in thousandths; `None` if it is anything else.
fn weight(param: &[u8]) -> Option<u16> {
    let param = param.trim_ascii();
    let value = match param {
        [b'q' | b'Q', b'=', value @ ..] => value,
        _ => return None,
    };
    let (whole, fraction) = match value.iter().position(|&b| b == b'.') {
        Some(at) => (&value[..at], Some(&value[at + 1..])),
        None => (value, None),
    };
    let whole = match whole {
        b"0" => 0,
        b"1" => 1,
        _ => return None,
    };
    let fraction = fraction.unwrap_or(b"");
    if fraction.len() > 3 || !fraction.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut thousandths = 0u16;
    for i in 0..3 {
        let digit = fraction.get(i).map_or(0, |d| u16::from(d - b'0'));
        thousandths = thousandths * 10 + digit;
    }
    match (whole, thousandths) {
        (0, t) => Some(t),
        (1, 0) => Some(1000),
        _ => None, // `1.5` is no weight.
    }
}

/// The codings this crate can compress with.
pub const COMPRESSIBLE_WITH: [Encoding; 3] = [Encoding::Brotli, Encoding::Zstd, Encoding::Gzip];

/// The coding to compress a response with for this request: the best of brotli, zstd and
/// gzip the client accepts, or identity.
pub fn negotiate(headers: &HeaderMap) -> Encoding {
    AcceptEncoding::from_headers(headers).best(&COMPRESSIBLE_WITH)
}

/// The gzip level used when none is given: 2. Measured on 100 KB of English-like text
/// (miniz_oxide, one core): level 1 gives 60% of the size in 0.9 ms, 2 gives 43% in
/// 1.2 ms, 6 gives 42% in 2.0 ms. Level 1 is a different, much weaker algorithm here.
pub const DEFAULT_GZIP_LEVEL: u32 = 2;

/// The brotli quality used when none is given: 4 (40% of the size of the text above in
/// 2.4 ms; quality 5 saves 1% more in 3.5 ms).
pub const DEFAULT_BROTLI_LEVEL: u32 = 4;

/// The zstd level used when none is given: 3, zstd's own default.
pub const DEFAULT_ZSTD_LEVEL: u32 = 3;

/// `body` compressed with `encoding` at `level` (gzip 0-9, brotli 0-11, zstd 1-19; higher
/// levels are taken as the highest). Identity returns the bytes as they are.
///
/// The output is a function of the input, the level and the crate versions: the same
/// file compresses to the same bytes on every request, which is what lets a strong
/// `ETag` name it.
pub fn compress(encoding: Encoding, level: u32, body: &[u8]) -> Vec<u8> {
    match encoding {
        Encoding::Gzip => gzip(body, level.min(9)),
        Encoding::Brotli => brotli(body, level.min(11)),
        Encoding::Zstd => zstd(body, level.clamp(1, 19)),
        Encoding::Identity => body.to_vec(),
    }
}

fn zstd(body: &[u8], level: u32) -> Vec<u8> {
    // One frame with the content size in its header; a buffer in memory cannot fail.
    zstd::bulk::compress(body, level as i32).expect("zstd into memory")
}

fn gzip(body: &[u8], level: u32) -> Vec<u8> {
    let out = Vec::with_capacity(body.len() / 3 + 64);
    // The header has no name and no time (mtime 0): the output depends on the input alone.
    let mut encoder = flate2::GzBuilder::new().write(out, flate2::Compression::new(level));
    // Writing to a Vec cannot fail.
    encoder.write_all(body).expect("gzip into memory");
    encoder.finish().expect("gzip into memory")
}

fn brotli(body: &[u8], level: u32) -> Vec<u8> {
    let out = Vec::with_capacity(body.len() / 3 + 64);
    // A window of 2^22 bytes, brotli's default; smaller inputs use less of it.
    let mut encoder = brotli::CompressorWriter::new(out, 4096, level, 22);
    encoder.write_all(body).expect("brotli into memory");
    encoder.into_inner()
}

/// When the directory handler compresses: precompressed files beside the originals
/// (`x.br`, `x.zst`, `x.gz`), and compression on the fly of text-like files of a middling
/// size. See [`SimpleHttpHandler::compression`](crate::files::SimpleHttpHandler::compression).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Compression {
    precompressed: bool,
    on_the_fly: bool,
    min_size: u64,
    max_size: u64,
    gzip_level: u32,
    brotli_level: u32,
    zstd_level: u32,
}

impl Default for Compression {
    /// [`Compression::new`].
    fn default() -> Self {
        Compression::new()
    }
}

impl Compression {
    /// Everything on: precompressed files, and on the fly gzip (level 2), brotli (quality
    /// 4) and zstd (level 3) for compressible types from 1 KiB to 256 KiB.
    pub fn new() -> Self {
        Compression {
            precompressed: true,
            on_the_fly: true,
            min_size: 1024,
            max_size: 256 * 1024,
            gzip_level: DEFAULT_GZIP_LEVEL,
            brotli_level: DEFAULT_BROTLI_LEVEL,
            zstd_level: DEFAULT_ZSTD_LEVEL,
        }
    }

    /// Nothing: every file is sent as it is, without `Vary: Accept-Encoding`.
    pub fn off() -> Self {
        Compression {
            precompressed: false,
            on_the_fly: false,
            ..Compression::new()
        }
    }

    /// Serve `x.br`, `x.zst`, `x.gz` for `x` when the client accepts them (default on).
    pub fn precompressed(mut self, on: bool) -> Self {
        self.precompressed = on;
        self
    }

    /// Compress compressible files on the fly (default on).
    pub fn on_the_fly(mut self, on: bool) -> Self {
        self.on_the_fly = on;
        self
    }

    /// Files smaller than this are sent as they are: the coding's overhead would eat what
    /// it saves (default 1024 bytes).
    pub fn min_size(mut self, bytes: u64) -> Self {
        self.min_size = bytes;
        self
    }

    /// Files larger than this are not compressed on the fly (default 256 KiB: about 3 ms
    /// of gzip 2 and 6 ms of brotli 4, spent on the event loop's thread, where every other
    /// connection waits meanwhile). Precompress larger files (`gzip -k`, `brotli -k`,
    /// `zstd -k`): they are sent as they are, by `sendfile`.
    pub fn max_size(mut self, bytes: u64) -> Self {
        self.max_size = bytes;
        self
    }

    /// The gzip level, 1 (fastest) to 9 (default 2).
    pub fn gzip_level(mut self, level: u32) -> Self {
        self.gzip_level = level.clamp(1, 9);
        self
    }

    /// The brotli quality, 0 to 11 (default 4).
    pub fn brotli_level(mut self, level: u32) -> Self {
        self.brotli_level = level.min(11);
        self
    }

    /// The zstd level, 1 to 19 (default 3).
    pub fn zstd_level(mut self, level: u32) -> Self {
        self.zstd_level = level.clamp(1, 19);
        self
    }

    /// Whether precompressed files are served.
    pub fn serves_precompressed(&self) -> bool {
        self.precompressed
    }

    /// Whether a file of `len` bytes and type `content_type` is compressed on the fly.
    pub fn compresses(&self, content_type: &str, len: u64) -> bool {
        self.on_the_fly
            && (self.min_size..=self.max_size).contains(&len)
            && is_compressible(content_type)
    }

    /// The level used for `encoding`.
    pub fn level(&self, encoding: Encoding) -> u32 {
        match encoding {
            Encoding::Brotli => self.brotli_level,
            Encoding::Zstd => self.zstd_level,
            _ => self.gzip_level,
        }
    }
}

/// Whether a media type is worth compressing: text, JSON, JavaScript, XML and SVG, fonts
/// that are not compressed already. Images, audio, video, archives and anything unknown
/// (`application/octet-stream`) are not: they are compressed already, or may be.
pub fn is_compressible(content_type: &str) -> bool {
    let media = content_type.split(';').next().unwrap_or("").trim();
    let media = media.to_ascii_lowercase();
    let Some((kind, subtype)) = media.split_once('/') else {
        return false;
    };
    match kind {
        "text" => true,
        "application" => {
            matches!(
                subtype,
                "json"
                    | "javascript"
                    | "x-javascript"
                    | "ecmascript"
                    | "xml"
                    | "wasm"
                    | "x-sh"
                    | "x-tex"
                    | "rtf"
                    | "vnd.ms-fontobject"
                    | "x-font-ttf"
            ) || subtype.ends_with("+json")
                || subtype.ends_with("+xml")
        }
        "image" => matches!(subtype, "svg+xml" | "x-icon" | "vnd.microsoft.icon" | "bmp"),
        "font" => matches!(subtype, "ttf" | "otf"),
        _ => false,
    }
}

impl HttpRequest<'_> {
    /// [`respond`](HttpRequest::respond), compressed with the best coding the client
    /// accepts (brotli or gzip, at the default levels) when `body` is 1 KiB or more:
    /// `Content-Encoding`, `Vary: Accept-Encoding` (always, as the answer depends on the
    /// header) and the compressed `Content-Length`. The caller decides whether the type is
    /// worth it ([`is_compressible`]).
    pub fn respond_compressed(
        &mut self,
        status: impl IntoStatus,
        content_type: &str,
        body: impl AsRef<[u8]>,
    ) -> HandlerResult {
        let body = body.as_ref();
        let status = status.into_status()?;
        let encoding = match body.len() >= 1024 && !super::status::forbids_body(status) {
            true => negotiate(&self.headers),
            false => Encoding::Identity,
        };
        self.add_response_header("Vary", "Accept-Encoding")?;
        if encoding == Encoding::Identity {
            return self.respond(status, content_type, body);
        }
        let compressed = compress(encoding, default_level(encoding), body);
        self.send_response(status)?;
        self.send_header("Content-Type", content_type)?;
        self.send_header("Content-Encoding", encoding)?;
        self.send_content_length(compressed.len() as u64)?;
        self.end_headers()?;
        self.wfile.write_all(&compressed)?;
        Ok(())
    }
}

fn default_level(encoding: Encoding) -> u32 {
    Compression::new().level(encoding)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn accept(values: &[&str]) -> AcceptEncoding {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(ACCEPT_ENCODING, HeaderValue::from_str(value).unwrap());
        }
        AcceptEncoding::from_headers(&headers)
    }

    const ALL: [Encoding; 3] = [Encoding::Gzip, Encoding::Zstd, Encoding::Brotli];

    #[test]
    fn weights_choose_and_ties_prefer_brotli_then_zstd_then_gzip() {
        assert_eq!(
            accept(&["gzip, deflate, br, zstd"]).best(&ALL),
            Encoding::Brotli
        );
        assert_eq!(accept(&["gzip, zstd"]).best(&ALL), Encoding::Zstd);
        assert_eq!(accept(&["gzip;q=1, br;q=0.9"]).best(&ALL), Encoding::Gzip);
        assert_eq!(
            accept(&["br;q=0.5", "gzip;q=0.8"]).best(&ALL),
            Encoding::Gzip
        );
        assert_eq!(accept(&["GZIP ; Q=0.5"]).best(&ALL), Encoding::Gzip);
        assert_eq!(accept(&["x-gzip"]).best(&ALL), Encoding::Gzip);
        assert_eq!(accept(&["*"]).best(&ALL), Encoding::Brotli);
        assert_eq!(accept(&["*;q=0.1, br;q=0"]).best(&ALL), Encoding::Zstd);
        assert_eq!(accept(&[" ,gzip,, "]).best(&ALL), Encoding::Gzip);
        // Only what is offered.
        assert_eq!(
            accept(&["br, gzip"]).best(&[Encoding::Gzip]),
            Encoding::Gzip
        );
    }

    #[test]
    fn zero_refuses_and_identity_can_be_preferred() {
        assert_eq!(accept(&["gzip;q=0"]).best(&ALL), Encoding::Identity);
        assert_eq!(
            accept(&["gzip;q=0.000, br;q=0."]).best(&ALL),
            Encoding::Identity
        );
        assert_eq!(
            accept(&["gzip;q=0.5, identity"]).best(&ALL),
            Encoding::Identity
        );
        assert_eq!(
            accept(&["gzip;q=0.5, *;q=0.9"]).best(&ALL),
            Encoding::Brotli
        );
        assert_eq!(accept(&["gzip;q=0.5"]).best(&ALL), Encoding::Gzip);
        assert_eq!(accept(&["identity;q=0, gzip"]).best(&ALL), Encoding::Gzip);
        assert_eq!(
            accept(&["compress, deflate"]).best(&ALL),
            Encoding::Identity
        );
        assert_eq!(accept(&[]).best(&ALL), Encoding::Identity);
        assert_eq!(accept(&[""]).best(&ALL), Encoding::Identity);
    }

    #[test]
    fn a_malformed_header_means_identity_only() {
        for bad in [
            "gzip;q=2",
            "gzip;q=1.5",
            "gzip;q=0.5000",
            "gzip;q=",
            "gzip;q=-1",
            "gzip;level=1",
            "gzip;",
            "gzip br",
            "gzip;q=0.5;q=1",
            ";q=1",
            "gz\"ip",
        ] {
            assert_eq!(accept(&[bad]).best(&ALL), Encoding::Identity, "{bad:?}");
            assert_eq!(
                accept(&["br", bad]).best(&ALL),
                Encoding::Identity,
                "{bad:?}"
            );
        }
        assert_eq!(accept(&["gzip;q=1.000"]).best(&ALL), Encoding::Gzip);
    }

    #[test]
    fn compresses_to_what_decompresses_to_the_input() {
        use std::io::Read;
        let text = "compress me, compress me again. ".repeat(200);
        let gz = compress(Encoding::Gzip, 6, text.as_bytes());
        assert!(gz.len() < text.len() / 4);
        assert_eq!(
            gz,
            compress(Encoding::Gzip, 6, text.as_bytes()),
            "deterministic"
        );
        let mut out = String::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, text);
        let br = compress(Encoding::Brotli, 4, text.as_bytes());
        let mut out = String::new();
        brotli::Decompressor::new(&br[..], 4096)
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, text);
    }

    #[test]
    fn compressible_types() {
        for yes in [
            "text/html; charset=utf-8",
            "application/json",
            "application/javascript",
            "image/svg+xml",
            "application/xml",
            "application/ld+json",
            "TEXT/CSS",
        ] {
            assert!(is_compressible(yes), "{yes}");
        }
        for no in [
            "image/png",
            "video/mp4",
            "application/zip",
            "application/gzip",
            "application/octet-stream",
            "font/woff2",
            "",
            "text",
        ] {
            assert!(!is_compressible(no), "{no}");
        }
    }
}
