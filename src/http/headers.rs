//! A request's header fields, as a handler reads them: the `http` crate's [`HeaderMap`],
//! built the first time it is read.
//!
//! Most answers never look at most fields, and a `/hello` looks at none; building the map
//! (a name looked up and a value checked per field, each value's share of the head counted
//! in and out) cost a tenth of a pipelined request. So the parser notes where each field
//! lies in the head, and the map is made of those notes when a handler first reads
//! [`HttpRequest::headers`](super::HttpRequest::headers), into the storage of the
//! connection's last map. The server's own questions (is there a `Connection` field, and
//! what does it say) are answered from the notes.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::{Mutex, OnceLock, PoisonError};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};

/// The header fields of a request: a [`HeaderMap`] (it dereferences to one, so
/// `req.headers.get(HOST)`, `req.headers["content-type"]`, `get_all`, `iter` and the rest
/// read as they do on a map), made the first time it is read. Names are case-insensitive,
/// repeated fields are kept in the order they came.
///
/// Pass `&req.headers` where a `&HeaderMap` is wanted; `req.headers.clone()` is a
/// `HeaderMap`.
///
/// ```
/// use socketserver::http::{HeaderMap, HttpHandler, HttpRequest, TestRequest};
/// use socketserver::HandlerResult;
///
/// fn agent(headers: &HeaderMap) -> &str {
///     headers.get("user-agent").and_then(|v| v.to_str().ok()).unwrap_or("?")
/// }
///
/// #[derive(Clone)]
/// struct Agent;
///
/// impl HttpHandler for Agent {
///     fn do_get(&mut self, req: &mut HttpRequest<'_>) -> HandlerResult {
///         let text = format!("{} fields, from {}", req.headers.len(), agent(&req.headers));
///         req.send_text(200, &text)
///     }
/// }
///
/// let response = TestRequest::get("/").header("User-Agent", "curl/8").run(&Agent);
/// assert_eq!(response.text(), "2 fields, from curl/8");
/// ```
#[derive(Default)]
pub struct RequestHeaders {
    /// The head the fields are slices of.
    head: Bytes,
    /// Where each field's name and value lie in `head`, in the order they came.
    fields: Vec<Field>,
    /// The map, once made of `fields`.
    map: OnceLock<Box<HeaderMap>>,
    /// An emptied map of an earlier request, for the next to be made in without
    /// allocating (locked only to take it, once per request that reads its headers).
    /// Boxed, as `map` is: a `HeaderMap` is 96 bytes, and the request that holds these
    /// is moved on every request.
    spare: Mutex<Option<Box<HeaderMap>>>,
}

/// Where one field lies in its head: the name's and the value's bounds.
#[derive(Clone, Copy, Debug)]
struct Field {
    name: (u32, u32),
    value: (u32, u32),
}

impl RequestHeaders {
    /// Maps with room for more fields than this are freed rather than kept.
    const MAX_KEPT: usize = 64;

    /// Notes a field whose name and value are `name` and `value`, slices of `head` (as
    /// `httparse` left them), the head [`set_head`](Self::set_head) is given once the
    /// fields are noted.
    pub(crate) fn note(&mut self, head: &[u8], name: &[u8], value: &[u8]) {
        let bounds = |part: &[u8]| {
            let start = part.as_ptr().addr() - head.as_ptr().addr();
            (start as u32, (start + part.len()) as u32)
        };
        let field = Field {
            name: bounds(name),
            value: bounds(value),
        };
        self.fields.push(field);
    }

    /// The head the noted fields are slices of.
    pub(crate) fn set_head(&mut self, head: Bytes) {
        self.head = head;
    }

    /// Room for `n` fields.
    pub(crate) fn reserve(&mut self, n: usize) {
        self.fields.reserve(n);
    }

    /// Lets go of the fields and of the head (which the connection's buffer can then
    /// reuse), keeping the storage unless it grew large.
    pub(crate) fn recycle(&mut self) {
        self.head = Bytes::new();
        self.fields.clear();
        if self.fields.capacity() > Self::MAX_KEPT {
            self.fields = Vec::new();
        }
        if let Some(mut map) = self.map.take() {
            map.clear();
            if map.capacity() <= Self::MAX_KEPT {
                *self.spare.get_mut().unwrap_or_else(PoisonError::into_inner) = Some(map);
            }
        }
    }

    /// Whether [`recycle`](Self::recycle) would find nothing to let go.
    pub(crate) fn is_recycled(&self) -> bool {
        self.fields.is_empty() && self.head.is_empty() && self.map.get().is_none()
    }

    /// The values of the fields named `name` (lowercase), as they came, without making
    /// the map: what the server itself asks of every request.
    pub(crate) fn raw_values<'h>(&'h self, name: &'h str) -> impl Iterator<Item = &'h [u8]> {
        self.fields.iter().filter_map(move |field| {
            let field_name = self.part(field.name)?;
            if field_name.eq_ignore_ascii_case(name.as_bytes()) {
                self.part(field.value)
            } else {
                None
            }
        })
    }

    /// [`raw_values`](Self::raw_values) as text, where `HeaderValue::to_str` reads it
    /// (visible ASCII and tabs only), `None` where it would refuse.
    pub(crate) fn raw_strs<'h>(&'h self, name: &'h str) -> impl Iterator<Item = Option<&'h str>> {
        self.raw_values(name).map(|value| {
            let visible = value
                .iter()
                .all(|&b| b == b'\t' || (0x20..0x7f).contains(&b));
            visible.then(|| std::str::from_utf8(value).ok()).flatten()
        })
    }

    /// The bytes of the head within `bounds`.
    fn part(&self, (start, end): (u32, u32)) -> Option<&[u8]> {
        self.head.get(start as usize..end as usize)
    }

    /// The map, made of the fields (into the spare map's storage).
    fn build(&self) -> Box<HeaderMap> {
        let spare = self
            .spare
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let mut map = spare.unwrap_or_default();
        map.reserve(self.fields.len());
        for field in &self.fields {
            let (Some(name), Some(_)) = (self.part(field.name), self.part(field.value)) else {
                continue;
            };
            let value = self
                .head
                .slice(field.value.0 as usize..field.value.1 as usize);
            // httparse let through only token names and values without control characters
            // but tab, which are what `http` accepts too: neither fails.
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name),
                HeaderValue::from_maybe_shared(value),
            ) {
                map.append(name, value);
            }
        }
        map
    }

    /// Whether the map has been made (a handler read the headers).
    #[cfg(test)]
    pub(crate) fn is_built(&self) -> bool {
        self.map.get().is_some()
    }
}

impl Deref for RequestHeaders {
    type Target = HeaderMap;

    fn deref(&self) -> &HeaderMap {
        self.map.get_or_init(|| self.build())
    }
}

impl DerefMut for RequestHeaders {
    fn deref_mut(&mut self) -> &mut HeaderMap {
        if self.map.get().is_none() {
            self.map = OnceLock::from(self.build());
        }
        self.map.get_mut().expect("the map was just made")
    }
}

impl From<HeaderMap> for RequestHeaders {
    /// Fields given as a map (a request the server made up, or a test's).
    fn from(map: HeaderMap) -> Self {
        RequestHeaders {
            map: OnceLock::from(Box::new(map)),
            ..RequestHeaders::default()
        }
    }
}

impl fmt::Debug for RequestHeaders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl PartialEq<HeaderMap> for RequestHeaders {
    fn eq(&self, other: &HeaderMap) -> bool {
        **self == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fields of `raw` (one `Name: value` per line), noted as the parser notes them.
    fn noted(raw: &'static str) -> RequestHeaders {
        let mut headers = RequestHeaders::default();
        for line in raw.split("\r\n").filter(|l| !l.is_empty()) {
            let (name, value) = line.split_once(": ").unwrap();
            headers.note(raw.as_bytes(), name.as_bytes(), value.as_bytes());
        }
        headers.set_head(Bytes::from_static(raw.as_bytes()));
        headers
    }

    #[test]
    fn the_map_is_made_when_first_read_with_every_field_in_order() {
        let headers = noted("Host: a\r\nX-Two: 1\r\nx-two: 2\r\nAccept: */*\r\n");
        assert!(!headers.is_built());
        assert_eq!(
            headers.raw_values("x-two").collect::<Vec<_>>(),
            [b"1", b"2"]
        );
        assert!(
            !headers.is_built(),
            "the server's own questions make no map"
        );
        assert_eq!(headers.len(), 4);
        assert!(headers.is_built());
        assert_eq!(headers["host"], "a");
        let twos: Vec<_> = headers.get_all("X-Two").iter().collect();
        assert_eq!(twos, ["1", "2"]);
        let mut expected = HeaderMap::new();
        for (name, value) in [
            ("host", "a"),
            ("x-two", "1"),
            ("x-two", "2"),
            ("accept", "*/*"),
        ] {
            expected.append(name, HeaderValue::from_static(value));
        }
        assert_eq!(headers.clone(), expected, "clone() is the map's");
    }

    #[test]
    fn a_handler_may_change_the_map() {
        let mut headers = noted("Host: a\r\n");
        headers.insert("x-added", HeaderValue::from_static("yes"));
        headers.remove("host");
        assert_eq!(headers.len(), 1);
        assert_eq!(headers["x-added"], "yes");
    }

    #[test]
    fn recycled_storage_makes_the_next_map_without_the_last_fields() {
        let mut headers = noted("Host: a\r\nX-Old: 1\r\n");
        assert_eq!(headers.len(), 2);
        let raw: &'static [u8] = b"Host: b\r\n";
        headers.recycle();
        headers.note(raw, &raw[..4], &raw[6..7]);
        headers.set_head(Bytes::from_static(raw));
        assert!(!headers.is_built());
        assert_eq!(headers.len(), 1);
        assert_eq!(headers["host"], "b");
        assert!(headers.get("x-old").is_none());
        assert!(headers.capacity() > 0, "the last map's storage");
    }

    #[test]
    fn a_map_given_is_the_map() {
        let mut map = HeaderMap::new();
        map.insert("host", HeaderValue::from_static("x"));
        let headers = RequestHeaders::from(map.clone());
        assert!(headers == map);
        assert_eq!(
            headers.raw_values("host").count(),
            0,
            "no notes: a made-up request"
        );
    }
}
