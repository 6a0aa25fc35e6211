//! A streaming `multipart/form-data` parser (RFC 7578, on the framing of RFC 2046 5.1).
//!
//! A push parser with no I/O: [`Parser::parse`] takes whatever piece of the body the caller
//! has, however it was split, and says what it found there: a part's head, bytes of its
//! content, its end, or the end of the form. It never asks for more input than it was
//! given and never holds more than one part's head (bounded), so memory stays bounded
//! whatever the body, and the caller can feed it straight from a read buffer. The same
//! body cut anywhere gives the same events (the tests cut it everywhere).
//!
//! Why not a crate: the maintained ones (`multer`, `multipart-rs`, `s3s-multipart`,
//! `multipart_async_stream`) are async streams, and `multipart` is unmaintained; the
//! framing is small and the security-relevant part (what a file name is) is ours to decide
//! anyway.
//!
//! What it accepts:
//!
//! - The boundary of the `Content-Type` (1 to 70 characters of RFC 2046's `bchars`).
//! - A preamble before the first delimiter, and an epilogue after the closing one, both
//!   ignored; transport padding (spaces, tabs) after a delimiter.
//! - Part heads of CRLF-terminated lines, at most [`PartLimits::max_head_bytes`] in all;
//!   folded lines and bare CR or LF are refused. `Content-Disposition: form-data` is
//!   required; other fields (the part's `Content-Type`, RFC 7578's deprecated
//!   `Content-Transfer-Encoding`) are ignored, so content is kept as sent.
//! - `name` and `filename` as tokens or quoted strings, in UTF-8 as browsers send them, with
//!   the HTML standard's escapes undone (`%22` is `"`, `%0D` and `%0A` CR and LF: the name
//!   checks refuse those later). A backslash in a file name is refused: old clients sent it
//!   to escape a quote, old browsers as a Windows path separator, and either reading could
//!   be wrong. `filename*` (RFC 5987, which RFC 7578 4.2 says not to send) is read, in
//!   UTF-8 only, when there is no `filename`.
//!
//! What a delimiter is: CRLF, `--` and the boundary. Content holding that sequence ends
//! there, as RFC 2046 requires; one followed by anything but padding and CRLF, or `--`, is
//! refused as malformed.

use std::ops::Range;

use percent_encoding::percent_decode;

use crate::http::is_token_byte;

/// The bounds a form is held to, beside its length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PartLimits {
    /// The most parts (files and fields) a form may have.
    pub max_parts: usize,
    /// The largest head of one part, its blank line included.
    pub max_head_bytes: usize,
}

/// Why a body is not a form this parser takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FormError {
    /// Not `multipart/form-data` as RFC 7578 frames it; the text says how.
    Malformed(&'static str),
    /// More parts than [`PartLimits::max_parts`].
    TooManyParts,
    /// A part's head is larger than [`PartLimits::max_head_bytes`].
    HeadTooLarge,
    /// The body ended before the closing delimiter.
    Truncated,
}

impl FormError {
    /// The text for an error page.
    pub(crate) fn message(self) -> &'static str {
        match self {
            FormError::Malformed(message) => message,
            FormError::TooManyParts => "The form has too many parts",
            FormError::HeadTooLarge => "A part of the form has too large a head",
            FormError::Truncated => "The form ends before its closing boundary",
        }
    }
}

/// The head of one part: its field name and, for a file, the file name as sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PartHead {
    /// The `name` parameter (empty if there was none).
    pub name: String,
    /// The `filename` parameter, decoded; `None` for a field that is not a file.
    pub filename: Option<String>,
}

/// What the parser found in the input it was given.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Event<'a> {
    /// Everything given was used; call again with more.
    NeedMore,
    /// A part begins: its content follows.
    Part(PartHead),
    /// Content of the current part.
    Data(&'a [u8]),
    /// The current part ended.
    PartEnd,
    /// The closing delimiter: the form is complete. What follows is epilogue.
    End,
}

/// The outcome of one call: how many bytes of the input were used, and what they held.
/// Bytes not used are to be given again (with more after them, or alone).
#[derive(Debug)]
pub(crate) struct Step<'a> {
    pub consumed: usize,
    pub event: Event<'a>,
}

/// What comes next in the body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Before the first delimiter.
    Preamble,
    /// Right after a delimiter.
    AfterDelimiter(After),
    /// A part's head, collected in `Parser::head`.
    Head,
    /// A part's content.
    Content,
    /// After the closing delimiter.
    Epilogue,
}

/// Where the parser is in what follows a delimiter: `--`, or padding and CRLF.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum After {
    Start,
    Dash,
    Padding,
    Cr,
}

/// What one internal step found, with content as a place rather than a slice (the
/// borrow of the input or of the delimiter is made once, in [`Parser::parse`]).
enum Found {
    Part(PartHead),
    /// Content at this range of the step's input.
    Input(Range<usize>),
    /// Content that is this much of the delimiter: bytes held back because they could
    /// have begun one, and did not.
    Held(usize),
    PartEnd,
    End,
}

/// The parser of one form body.
#[derive(Debug)]
pub(crate) struct Parser {
    /// CRLF `--` boundary.
    delimiter: Vec<u8>,
    /// How much of the delimiter the input seen so far ends with (bytes not yet content).
    matched: usize,
    state: State,
    /// The current part's head, CRLF first (the end of the delimiter line), so that the
    /// blank line ending it is always CRLF CRLF.
    head: Vec<u8>,
    parts: usize,
    limits: PartLimits,
}

impl Parser {
    /// A parser for a body whose `Content-Type` had `boundary` (see [`boundary`]).
    pub(crate) fn new(boundary: &[u8], limits: PartLimits) -> Parser {
        let mut delimiter = b"\r\n--".to_vec();
        delimiter.extend_from_slice(boundary);
        Parser {
            delimiter,
            // The body may begin with the delimiter without its CRLF: as if that was seen.
            matched: 2,
            state: State::Preamble,
            head: Vec::new(),
            parts: 0,
            limits,
        }
    }

    /// Parses what it can of `input`, the body's next bytes after those consumed before.
    pub(crate) fn parse<'a>(&'a mut self, input: &'a [u8]) -> Result<Step<'a>, FormError> {
        let mut consumed = 0;
        loop {
            let (used, found) = self.step(&input[consumed..])?;
            let start = consumed;
            consumed += used;
            let event = match found {
                Some(Found::Part(head)) => Event::Part(head),
                Some(Found::Input(range)) => {
                    Event::Data(&input[start + range.start..][..range.len()])
                }
                Some(Found::Held(len)) => Event::Data(&self.delimiter[..len]),
                Some(Found::PartEnd) => Event::PartEnd,
                Some(Found::End) => Event::End,
                None if consumed == input.len() => Event::NeedMore,
                None => continue,
            };
            return Ok(Step { consumed, event });
        }
    }

    /// Checks, once the body has ended, that the form was complete.
    pub(crate) fn finish(&self) -> Result<(), FormError> {
        match self.state {
            State::Epilogue => Ok(()),
            _ => Err(FormError::Truncated),
        }
    }

    /// One step in the current state: bytes used, and what was found if anything. Uses
    /// at least one byte, or changes state, unless `input` is empty.
    fn step(&mut self, input: &[u8]) -> Result<(usize, Option<Found>), FormError> {
        match self.state {
            State::Preamble | State::Content => Ok(self.scan(input)),
            State::AfterDelimiter(after) => self.after_delimiter(after, input),
            State::Head => self.read_head(input),
            State::Epilogue => Ok((input.len(), None)),
        }
    }

    /// Content (or preamble) up to the next delimiter.
    fn scan(&mut self, input: &[u8]) -> (usize, Option<Found>) {
        if input.is_empty() {
            return (0, None);
        }
        let in_part = self.state == State::Content;
        let content = |range: Range<usize>| in_part.then_some(Found::Input(range));
        if self.matched > 0 {
            let rest = &self.delimiter[self.matched..];
            let n = common_prefix(rest, input);
            if n == rest.len() {
                self.matched = 0;
                return (n, self.delimiter_found(in_part));
            }
            if n == input.len() {
                self.matched += n;
                return (n, None);
            }
            // Not a delimiter after all: the bytes held back were content. The delimiter
            // has no CR after its first byte, so none of them can begin another one.
            let held = std::mem::take(&mut self.matched);
            return (0, in_part.then_some(Found::Held(held)));
        }
        let mut from = 0;
        while let Some(offset) = input[from..].iter().position(|&b| b == b'\r') {
            let at = from + offset;
            let n = common_prefix(&self.delimiter, &input[at..]);
            let whole = n == self.delimiter.len();
            if whole || at + n == input.len() {
                if at > 0 {
                    // The content before it first; the delimiter is looked at again.
                    return (at, content(0..at));
                }
                if whole {
                    return (n, self.delimiter_found(in_part));
                }
                // The input ends in what may be the start of a delimiter.
                self.matched = n;
                return (n, None);
            }
            from = at + 1;
        }
        (input.len(), content(0..input.len()))
    }

    fn delimiter_found(&mut self, in_part: bool) -> Option<Found> {
        self.state = State::AfterDelimiter(After::Start);
        in_part.then_some(Found::PartEnd)
    }

    /// `--` (the form ends), or optional padding and CRLF (a part follows).
    fn after_delimiter(
        &mut self,
        mut after: After,
        input: &[u8],
    ) -> Result<(usize, Option<Found>), FormError> {
        for (i, &byte) in input.iter().enumerate() {
            after = match (after, byte) {
                (After::Start, b'-') => After::Dash,
                (After::Dash, b'-') => {
                    self.state = State::Epilogue;
                    return Ok((i + 1, Some(Found::End)));
                }
                (After::Start | After::Padding, b' ' | b'\t') => After::Padding,
                (After::Start | After::Padding, b'\r') => After::Cr,
                (After::Cr, b'\n') => {
                    self.state = State::Head;
                    self.head.clear();
                    self.head.extend_from_slice(b"\r\n");
                    return Ok((i + 1, None));
                }
                _ => {
                    return Err(FormError::Malformed(
                        "A boundary in the form is followed by neither a line end nor --",
                    ))
                }
            };
        }
        self.state = State::AfterDelimiter(after);
        Ok((input.len(), None))
    }

    /// A part's head, up to and with its blank line.
    fn read_head(&mut self, input: &[u8]) -> Result<(usize, Option<Found>), FormError> {
        // `head` starts with the CRLF of the delimiter line, which the limit leaves out.
        let capacity = self.limits.max_head_bytes + 2;
        let before = self.head.len();
        let take = input.len().min(capacity.saturating_sub(before));
        self.head.extend_from_slice(&input[..take]);
        let search_from = before.saturating_sub(3);
        let Some(end) = find(&self.head[search_from..], b"\r\n\r\n").map(|i| search_from + i)
        else {
            if self.head.len() >= capacity {
                return Err(FormError::HeadTooLarge);
            }
            return Ok((take, None));
        };
        let used = end + 4 - before;
        self.parts += 1;
        if self.parts > self.limits.max_parts {
            return Err(FormError::TooManyParts);
        }
        let lines = self.head.get(2..end).unwrap_or_default();
        let head = parse_head(lines)?;
        self.state = State::Content;
        Ok((used, Some(Found::Part(head))))
    }
}

/// How many leading bytes `a` and `b` share.
fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The fields of a part's head (CRLF-separated lines, the blank line left out).
fn parse_head(lines: &[u8]) -> Result<PartHead, FormError> {
    let mut disposition = None;
    for line in split_lines(lines) {
        if line.starts_with(b" ") || line.starts_with(b"\t") {
            return Err(FormError::Malformed("A part's head has a folded line"));
        }
        if line.contains(&b'\r') || line.contains(&b'\n') {
            return Err(FormError::Malformed("A part's head has a bare CR or LF"));
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return Err(FormError::Malformed(
                "A part's head has a line without a colon",
            ));
        };
        let name = &line[..colon];
        if name.is_empty() || !name.iter().all(|&b| is_token_byte(b)) {
            return Err(FormError::Malformed("A part's head has a bad field name"));
        }
        if name.eq_ignore_ascii_case(b"content-disposition") {
            if disposition.is_some() {
                return Err(FormError::Malformed(
                    "A part has two Content-Disposition fields",
                ));
            }
            disposition = Some(parse_disposition(line[colon + 1..].trim_ascii())?);
        }
    }
    disposition.ok_or(FormError::Malformed(
        "A part of the form has no Content-Disposition: form-data",
    ))
}

fn split_lines(lines: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = (!lines.is_empty()).then_some(lines);
    std::iter::from_fn(move || {
        let current = rest?;
        match find(current, b"\r\n") {
            Some(i) => {
                rest = Some(&current[i + 2..]);
                Some(&current[..i])
            }
            None => {
                rest = None;
                Some(current)
            }
        }
    })
}

/// `form-data; name="..."; filename="..."`.
fn parse_disposition(value: &[u8]) -> Result<PartHead, FormError> {
    let (kind, params) = parse_parameters(value)?;
    if !kind.eq_ignore_ascii_case(b"form-data") {
        return Err(FormError::Malformed(
            "A part of the form has a disposition other than form-data",
        ));
    }
    let mut name = None;
    let mut filename = None;
    let mut extended = None;
    for param in params {
        let slot = match param.name.to_ascii_lowercase().as_slice() {
            b"name" => &mut name,
            b"filename" => &mut filename,
            b"filename*" => &mut extended,
            _ => continue,
        };
        if slot.is_some() {
            return Err(FormError::Malformed("A part names a parameter twice"));
        }
        *slot = Some(param);
    }
    let name = match name {
        Some(param) => utf8(html_unescape(&param.value))?,
        None => String::new(),
    };
    let filename = match (filename, extended) {
        (Some(param), _) if param.escaped => {
            return Err(FormError::Malformed("A file name holds a backslash"))
        }
        (Some(param), _) => Some(utf8(html_unescape(&param.value))?),
        (None, Some(param)) => Some(extended_value(&param.value)?),
        (None, None) => None,
    };
    Ok(PartHead { name, filename })
}

/// One `name=value` of a header field.
#[derive(Debug)]
struct Parameter {
    name: Vec<u8>,
    value: Vec<u8>,
    /// The value had a backslash (a quoted-pair, or one in a token).
    escaped: bool,
}

/// `type; name=value; name="quoted value"`: the type, then the parameters in order.
fn parse_parameters(value: &[u8]) -> Result<(&[u8], Vec<Parameter>), FormError> {
    let bad = FormError::Malformed("A parameter list in the form is malformed");
    let end = value.iter().position(|&b| b == b';').unwrap_or(value.len());
    let kind = value[..end].trim_ascii();
    let mut rest = &value[end..];
    let mut params = Vec::new();
    loop {
        rest = rest.trim_ascii_start();
        match rest.first() {
            None => break,
            Some(b';') => rest = &rest[1..],
            Some(_) => return Err(bad),
        }
        rest = rest.trim_ascii_start();
        if rest.is_empty() {
            break; // a trailing `;`
        }
        let eq = rest.iter().position(|&b| b == b'=').ok_or(bad)?;
        let name = rest[..eq].trim_ascii();
        if name.is_empty() || !name.iter().all(|&b| is_token_byte(b)) {
            return Err(bad);
        }
        rest = rest[eq + 1..].trim_ascii_start();
        let (value, escaped, after) = if rest.first() == Some(&b'"') {
            quoted_string(&rest[1..]).ok_or(bad)?
        } else {
            let end = rest
                .iter()
                .position(|&b| b == b';' || b == b' ' || b == b'\t')
                .unwrap_or(rest.len());
            let token = &rest[..end];
            (token.to_vec(), token.contains(&b'\\'), &rest[end..])
        };
        params.push(Parameter {
            name: name.to_vec(),
            value,
            escaped,
        });
        rest = after;
    }
    Ok((kind, params))
}

/// The rest of a quoted string after its opening quote: its value (quoted-pairs undone),
/// whether it had one, and what follows the closing quote.
fn quoted_string(input: &[u8]) -> Option<(Vec<u8>, bool, &[u8])> {
    let mut value = Vec::new();
    let mut escaped = false;
    let mut bytes = input.iter().enumerate();
    while let Some((i, &byte)) = bytes.next() {
        match byte {
            b'"' => return Some((value, escaped, &input[i + 1..])),
            b'\\' => {
                escaped = true;
                value.push(*bytes.next()?.1);
            }
            byte => value.push(byte),
        }
    }
    None
}

/// Undoes the escapes the HTML standard gives names in `multipart/form-data`: `%22`,
/// `%0D` and `%0A` (any other `%` is itself).
fn html_unescape(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len());
    let mut i = 0;
    while i < value.len() {
        let escape = value.get(i..i + 3).and_then(|e| match e {
            [b'%', b'2', b'2'] => Some(b'"'),
            [b'%', b'0', b'd' | b'D'] => Some(b'\r'),
            [b'%', b'0', b'a' | b'A'] => Some(b'\n'),
            _ => None,
        });
        match escape {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(value[i]);
                i += 1;
            }
        }
    }
    out
}

/// RFC 5987's `charset'language'percent-encoded`, in UTF-8.
fn extended_value(value: &[u8]) -> Result<String, FormError> {
    let bad = FormError::Malformed("A filename* parameter is not UTF-8''name");
    let mut pieces = value.splitn(3, |&b| b == b'\'');
    let (Some(charset), Some(_language), Some(encoded)) =
        (pieces.next(), pieces.next(), pieces.next())
    else {
        return Err(bad);
    };
    if !charset.eq_ignore_ascii_case(b"utf-8") {
        return Err(bad);
    }
    let decoded: Vec<u8> = percent_decode(encoded).collect();
    if decoded.contains(&b'\\') {
        return Err(FormError::Malformed("A file name holds a backslash"));
    }
    utf8(decoded)
}

fn utf8(bytes: Vec<u8>) -> Result<String, FormError> {
    String::from_utf8(bytes).map_err(|_| FormError::Malformed("A name in the form is not UTF-8"))
}

/// RFC 2046 `bchars`: what a boundary is made of (a space, but not last).
fn is_boundary_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"'()+_,-./:=? ".contains(&b)
}

/// What a request's `Content-Type` says of a form.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum FormType {
    /// Not `multipart/form-data`.
    Other,
    /// `multipart/form-data` with this boundary.
    Multipart(Vec<u8>),
    /// `multipart/form-data` without a usable boundary.
    BadBoundary,
}

/// Reads a request's `Content-Type` value.
pub(crate) fn form_type(content_type: &[u8]) -> FormType {
    let Ok((kind, params)) = parse_parameters(content_type) else {
        let kind = content_type
            .split(|&b| b == b';')
            .next()
            .unwrap_or_default();
        return match kind
            .trim_ascii()
            .eq_ignore_ascii_case(b"multipart/form-data")
        {
            true => FormType::BadBoundary,
            false => FormType::Other,
        };
    };
    if !kind.eq_ignore_ascii_case(b"multipart/form-data") {
        return FormType::Other;
    }
    let mut boundaries = params
        .into_iter()
        .filter(|p| p.name.eq_ignore_ascii_case(b"boundary"));
    match (boundaries.next(), boundaries.next()) {
        (Some(p), None)
            if (1..=70).contains(&p.value.len())
                && p.value.iter().all(|&b| is_boundary_char(b))
                && !p.value.ends_with(b" ") =>
        {
            FormType::Multipart(p.value)
        }
        _ => FormType::BadBoundary,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: PartLimits = PartLimits {
        max_parts: 10,
        max_head_bytes: 1024,
    };

    /// An event with its content owned, to compare runs.
    #[derive(Clone, Debug, PartialEq, Eq)]
    enum Owned {
        Part(PartHead),
        Data(Vec<u8>),
        PartEnd,
        End,
    }

    /// Parses `body` fed in pieces of the given sizes (the rest in one); the events with
    /// adjacent data merged, or the error.
    fn run_split(body: &[u8], cuts: &[usize]) -> Result<Vec<Owned>, FormError> {
        let mut parser = Parser::new(b"XyZ", LIMITS);
        let mut events: Vec<Owned> = Vec::new();
        let mut pieces = Vec::new();
        let mut rest = body;
        for &cut in cuts {
            let cut = cut.min(rest.len());
            pieces.push(&rest[..cut]);
            rest = &rest[cut..];
        }
        pieces.push(rest);
        let mut ended = false;
        for piece in pieces {
            let mut at = 0;
            loop {
                let step = parser.parse(&piece[at..])?;
                at += step.consumed;
                assert!(at <= piece.len());
                match step.event {
                    Event::NeedMore => {
                        assert_eq!(at, piece.len(), "NeedMore before the input was used");
                        break;
                    }
                    Event::Data(data) => {
                        assert!(!data.is_empty(), "an empty Data event");
                        match events.last_mut() {
                            Some(Owned::Data(previous)) => previous.extend_from_slice(data),
                            _ => events.push(Owned::Data(data.to_vec())),
                        }
                    }
                    Event::Part(head) => events.push(Owned::Part(head)),
                    Event::PartEnd => events.push(Owned::PartEnd),
                    Event::End => {
                        events.push(Owned::End);
                        ended = true;
                    }
                }
                if ended {
                    break;
                }
            }
            if ended {
                break;
            }
        }
        if !ended {
            parser.finish()?;
        }
        Ok(events)
    }

    fn run(body: &[u8]) -> Result<Vec<Owned>, FormError> {
        run_split(body, &[])
    }

    fn part(name: &str, filename: Option<&str>) -> Owned {
        Owned::Part(PartHead {
            name: name.into(),
            filename: filename.map(Into::into),
        })
    }

    fn data(bytes: &[u8]) -> Owned {
        Owned::Data(bytes.to_vec())
    }

    const TWO_PARTS: &[u8] = b"preamble\r\n--XyZ\r\n\
        Content-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n\
        Content-Type: text/plain\r\n\
        \r\n\
        line one\r\n--XyYnot quite\r\n-\r\n--Xy\r\n\
        \r\n--XyZ  \t\r\n\
        content-disposition: FORM-DATA; name=note\r\n\
        \r\n\
        hello\r\n--XyZ--\r\nepilogue --XyZ garbage";

    fn two_parts_events() -> Vec<Owned> {
        vec![
            part("file", Some("a.txt")),
            data(b"line one\r\n--XyYnot quite\r\n-\r\n--Xy\r\n"),
            Owned::PartEnd,
            part("note", None),
            data(b"hello"),
            Owned::PartEnd,
            Owned::End,
        ]
    }

    #[test]
    fn parts_content_and_the_end() {
        assert_eq!(run(TWO_PARTS), Ok(two_parts_events()));
    }

    /// Every way of cutting the body in two or three pieces gives the same events.
    #[test]
    fn the_same_events_however_the_body_is_cut() {
        let body = TWO_PARTS;
        let whole = run(body).unwrap();
        for i in 0..=body.len() {
            assert_eq!(run_split(body, &[i]).as_ref(), Ok(&whole), "cut at {i}");
            for j in [1, 2, 3, 5, 7] {
                assert_eq!(
                    run_split(body, &[i, j]).as_ref(),
                    Ok(&whole),
                    "cut {i}, {j}"
                );
            }
        }
        let ones: Vec<usize> = vec![1; body.len()];
        assert_eq!(run_split(body, &ones), Ok(whole));
    }

    #[test]
    fn the_body_may_begin_with_the_delimiter_and_parts_may_be_empty() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=a; filename=\"\"\r\n\r\n\
                     \r\n--XyZ\r\nContent-Disposition: form-data; name=b\r\n\r\n\r\n\r\n--XyZ--";
        assert_eq!(
            run(body),
            Ok(vec![
                part("a", Some("")),
                Owned::PartEnd,
                part("b", None),
                data(b"\r\n"),
                Owned::PartEnd,
                Owned::End,
            ])
        );
        // A form of no parts at all.
        assert_eq!(run(b"--XyZ--"), Ok(vec![Owned::End]));
    }

    #[test]
    fn content_that_looks_like_a_delimiter_in_part() {
        // CR, CRLF-, CRLF-- and CRLF--Xy at the very end of a piece, then not a delimiter.
        let mut body =
            b"--XyZ\r\nContent-Disposition: form-data; name=f; filename=x\r\n\r\n".to_vec();
        let content: &[u8] = b"\r\r\n\r\n-\r\n--\r\n--X\r\n--Xy\r\r\n--XyY\r";
        body.extend_from_slice(content);
        body.extend_from_slice(b"\r\n--XyZ--\r\n");
        let expected = Ok(vec![
            part("f", Some("x")),
            data(content),
            Owned::PartEnd,
            Owned::End,
        ]);
        assert_eq!(run(&body), expected);
        for i in 0..=body.len() {
            assert_eq!(run_split(&body, &[i]), expected, "cut at {i}");
        }
    }

    #[test]
    fn boundary_text_inside_content_is_malformed() {
        let body =
            b"--XyZ\r\nContent-Disposition: form-data; name=f\r\n\r\nab\r\n--XyZab\r\n--XyZ--";
        assert!(matches!(run(body), Err(FormError::Malformed(_))));
    }

    #[test]
    fn a_body_without_its_closing_delimiter_is_truncated() {
        let cases: [&[u8]; 7] = [
            b"",
            b"no delimiter at all",
            b"--XyZ",
            b"--XyZ\r\n",
            b"--XyZ\r\nContent-Disposition: form-data; name=f\r\n",
            b"--XyZ\r\nContent-Disposition: form-data; name=f\r\n\r\ncontent",
            b"--XyZ\r\nContent-Disposition: form-data; name=f\r\n\r\ncontent\r\n--XyZ-",
        ];
        for body in cases {
            assert_eq!(
                run(body),
                Err(FormError::Truncated),
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn malformed_heads_are_refused() {
        let heads: [&[u8]; 10] = [
            b"",
            b"Content-Type: text/plain",
            b"Content-Disposition: attachment; filename=a",
            b"Content-Disposition: form-data; name=a\r\n folded",
            b"Content-Disposition: form-data; name=a\r\nno colon",
            b"Content-Disposition: form-data; name=a\r\nContent-Disposition: form-data",
            b"Content-Disposition: form-data; name=\"unterminated",
            b"Content-Disposition: form-data; name=a; filename=x; filename=y",
            b"Content-Disposition: form-data; name=a junk",
            b"Bad Name: x\r\nContent-Disposition: form-data; name=a",
        ];
        for head in heads {
            let mut body = b"--XyZ\r\n".to_vec();
            body.extend_from_slice(head);
            body.extend_from_slice(b"\r\n\r\nx\r\n--XyZ--");
            assert!(
                matches!(run(&body), Err(FormError::Malformed(_))),
                "{:?}: {:?}",
                String::from_utf8_lossy(head),
                run(&body)
            );
        }
        // A bare LF inside a head line.
        let body = b"--XyZ\r\nContent-Disposition: form-data;\n name=a\r\n\r\nx\r\n--XyZ--";
        assert!(matches!(run(body), Err(FormError::Malformed(_))));
        // Something other than CRLF or -- after a delimiter.
        assert!(matches!(run(b"--XyZx"), Err(FormError::Malformed(_))));
        assert!(matches!(run(b"--XyZ-x"), Err(FormError::Malformed(_))));
        assert!(matches!(run(b"--XyZ \rx"), Err(FormError::Malformed(_))));
    }

    #[test]
    fn file_names_as_browsers_and_curl_send_them() {
        // The parameters, and the file name they give (`Err`: refused as malformed).
        type Case = (&'static [u8], Result<Option<&'static str>, ()>);
        let cases: [Case; 11] = [
            (b"name=f; filename=\"plain.txt\"", Ok(Some("plain.txt"))),
            (b"name=f; filename=token.txt", Ok(Some("token.txt"))),
            (b"name=f; FileName=\"caps.txt\"", Ok(Some("caps.txt"))),
            (
                "name=f; filename=\"中文 ü.txt\"".as_bytes(),
                Ok(Some("中文 ü.txt")),
            ),
            (
                b"name=f; filename=\"q%22uote%0d%0A.txt\"",
                Ok(Some("q\"uote\r\n.txt")),
            ),
            (b"name=f; filename=\"100%.txt\"", Ok(Some("100%.txt"))),
            (b"name=f; filename=\"C:\\\\x\\\\a.txt\"", Err(())),
            (b"name=f; filename=\"a\\\"b\"", Err(())),
            (b"name=f; filename*=UTF-8''%e2%82%ac.txt", Ok(Some("€.txt"))),
            (b"name=f; filename*=latin1''x.txt", Err(())),
            (b"name=f; filename=\"\xff.txt\"", Err(())),
        ];
        for (params, expected) in cases {
            let mut body = b"--XyZ\r\nContent-Disposition: form-data; ".to_vec();
            body.extend_from_slice(params);
            body.extend_from_slice(b"\r\n\r\nx\r\n--XyZ--");
            let got = run(&body).map(|events| match &events[0] {
                Owned::Part(head) => head.filename.clone(),
                other => panic!("{other:?}"),
            });
            match expected {
                Ok(name) => assert_eq!(got, Ok(name.map(String::from)), "{params:?}"),
                Err(()) => assert!(
                    matches!(got, Err(FormError::Malformed(_))),
                    "{:?}: {got:?}",
                    String::from_utf8_lossy(params)
                ),
            }
        }
    }

    #[test]
    fn a_huge_head_is_refused_without_holding_it() {
        let mut body = b"--XyZ\r\nContent-Disposition: form-data; name=a\r\nX-Pad: ".to_vec();
        body.extend(std::iter::repeat_n(b'p', 1 << 20));
        let mut parser = Parser::new(b"XyZ", LIMITS);
        let mut at = 0;
        let error = loop {
            match parser.parse(&body[at..]) {
                Ok(step) => {
                    assert!(step.event == Event::NeedMore || step.consumed > 0);
                    at += step.consumed;
                    assert!(at < body.len(), "the head was taken whole");
                }
                Err(error) => break error,
            }
        };
        assert_eq!(error, FormError::HeadTooLarge);
        assert!(parser.head.capacity() < 4 * LIMITS.max_head_bytes);
        // Exactly at the limit is fine.
        let name = "n"
            .repeat(LIMITS.max_head_bytes - "Content-Disposition: form-data; name=\r\n\r\n".len());
        let body =
            format!("--XyZ\r\nContent-Disposition: form-data; name={name}\r\n\r\nx\r\n--XyZ--");
        assert_eq!(run(body.as_bytes()).unwrap()[0], part(&name, None));
        let body = body.replace("name=n", "name=nn");
        assert_eq!(run(body.as_bytes()), Err(FormError::HeadTooLarge));
    }

    #[test]
    fn too_many_parts_are_refused() {
        let one = "--XyZ\r\nContent-Disposition: form-data; name=a\r\n\r\nx\r\n";
        let ten = format!("{}--XyZ--", one.repeat(10));
        assert_eq!(run(ten.as_bytes()).unwrap().len(), 10 * 3 + 1);
        let eleven = format!("{}--XyZ--", one.repeat(11));
        assert_eq!(run(eleven.as_bytes()), Err(FormError::TooManyParts));
    }

    #[test]
    fn large_content_passes_through_in_the_pieces_it_came_in() {
        let mut body =
            b"--XyZ\r\nContent-Disposition: form-data; name=f; filename=big\r\n\r\n".to_vec();
        let content: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
        body.extend_from_slice(&content);
        body.extend_from_slice(b"\r\n--XyZ--\r\n");
        let cuts = vec![4096; body.len() / 4096];
        let events = run_split(&body, &cuts).unwrap();
        assert_eq!(events[1], Owned::Data(content));
    }

    /// Mutated forms, cut at random places: never a panic, and the same outcome as the
    /// whole body (the property a fuzzer would check, run on every `cargo test`).
    #[test]
    fn mutated_forms_parse_the_same_however_they_are_cut() {
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move |bound: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % bound as u64) as usize
        };
        let alphabet: &[u8] = b"\r\n-XyZ\" :;=form-data";
        for _ in 0..3000 {
            let mut body = TWO_PARTS.to_vec();
            for _ in 0..1 + next(4) {
                let at = next(body.len() + 1);
                match next(3) {
                    0 if at < body.len() => {
                        body.remove(at);
                    }
                    1 => body.insert(at, alphabet[next(alphabet.len())]),
                    _ if at < body.len() => body[at] = alphabet[next(alphabet.len())],
                    _ => {}
                }
            }
            let whole = run(&body);
            let cuts = [next(body.len() + 1), next(8) + 1, next(8) + 1];
            assert_eq!(
                run_split(&body, &cuts),
                whole,
                "{:?}",
                String::from_utf8_lossy(&body)
            );
        }
    }

    #[test]
    fn boundaries_from_the_content_type() {
        let ok: [(&[u8], &[u8]); 5] = [
            (b"multipart/form-data; boundary=abc", b"abc"),
            (b"Multipart/Form-Data;boundary=\"a b:c\"", b"a b:c"),
            (
                b"multipart/form-data; boundary=----WebKitFormBoundary7MA4YWxkTrZu0gW",
                b"----WebKitFormBoundary7MA4YWxkTrZu0gW",
            ),
            (b"multipart/form-data; charset=utf-8; boundary=x", b"x"),
            (b"multipart/form-data; BOUNDARY=x;", b"x"),
        ];
        for (value, boundary) in ok {
            assert_eq!(form_type(value), FormType::Multipart(boundary.to_vec()));
        }
        let long = format!("multipart/form-data; boundary={}", "b".repeat(71));
        let bad: [&[u8]; 8] = [
            b"multipart/form-data",
            b"multipart/form-data; boundary=",
            b"multipart/form-data; boundary=\"\"",
            b"multipart/form-data; boundary=\"a\rb\"",
            b"multipart/form-data; boundary=\"trailing \"",
            b"multipart/form-data; boundary=a; boundary=b",
            b"multipart/form-data; boundary=\"unterminated",
            long.as_bytes(),
        ];
        for value in bad {
            assert_eq!(
                form_type(value),
                FormType::BadBoundary,
                "{:?}",
                String::from_utf8_lossy(value)
            );
        }
        assert_eq!(
            form_type(b"application/x-www-form-urlencoded"),
            FormType::Other
        );
        assert_eq!(form_type(b"multipart/mixed; boundary=x"), FormType::Other);
    }
}
