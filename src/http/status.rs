//! Python's `BaseHTTPRequestHandler.responses`: a short reason and a longer explanation per
//! status code, used by `send_error`.

use http::StatusCode;

/// The reason phrase for `code`, as Python's `responses[code][0]`; `"???"` when unknown.
pub fn reason(code: StatusCode) -> &'static str {
    match code.as_u16() {
        413 => "Content Too Large",
        422 => "Unprocessable Content",
        _ => code.canonical_reason().unwrap_or("???"),
    }
}

/// The explanation of `code`, as Python's `responses[code][1]`; empty when there is none.
pub fn explain(code: StatusCode) -> &'static str {
    match code.as_u16() {
        100 => "Request received, please continue",
        101 => "Switching to new protocol; obey Upgrade header",
        200 => "Request fulfilled, document follows",
        201 => "Document created, URL follows",
        202 => "Request accepted, processing continues off-line",
        203 => "Request fulfilled from cache",
        204 => "Request fulfilled, nothing follows",
        205 => "Clear input form for further input",
        206 => "Partial content follows",
        300 => "Object has several resources -- see URI list",
        301 => "Object moved permanently -- see URI list",
        302 => "Object moved temporarily -- see URI list",
        303 => "Object moved -- see Method and URL list",
        304 => "Document has not changed since given time",
        305 => "You must use proxy specified in Location to access this resource",
        307 => "Object moved temporarily -- see URI list",
        308 => "Object moved permanently -- see URI list",
        400 => "Bad request syntax or unsupported method",
        401 => "No permission -- see authorization schemes",
        402 => "No payment -- see charging schemes",
        403 => "Request forbidden -- authorization will not help",
        404 => "Nothing matches the given URI",
        405 => "Specified method is invalid for this resource",
        406 => "URI not available in preferred format",
        407 => "You must authenticate with this proxy before proceeding",
        408 => "Request timed out; try again later",
        409 => "Request conflict",
        410 => "URI no longer exists and has been permanently removed",
        411 => "Client must specify Content-Length",
        412 => "Precondition in headers is false",
        413 => "Content is too large",
        414 => "URI is too long",
        415 => "Entity body in unsupported format",
        416 => "Cannot satisfy request range",
        417 => "Expect condition could not be satisfied",
        418 => "Server refuses to brew coffee because it is a teapot",
        421 => "Server is not able to produce a response",
        428 => "The origin server requires the request to be conditional",
        429 => "The user has sent too many requests in a given amount of time",
        431 => {
            "The server is unwilling to process the request because its header fields are too large"
        }
        451 => "The server is denying access to the resource as a consequence of a legal demand",
        500 => "Server got itself in trouble",
        501 => "Server does not support this operation",
        502 => "Invalid responses from another server/proxy",
        503 => "The server cannot process the request due to a high load",
        504 => "The gateway server did not receive a timely response",
        505 => "Cannot fulfill request",
        511 => "The client needs to authenticate to gain network access",
        _ => "",
    }
}

/// Appends a status line: `version` (`"HTTP/1.1"`), the code, `reason` (clean: no
/// control characters) and the line's end.
pub(crate) fn write_status_line(head: &mut Vec<u8>, version: &str, code: StatusCode, reason: &str) {
    head.extend_from_slice(version.as_bytes());
    head.push(b' ');
    head.extend_from_slice(code.as_str().as_bytes());
    head.push(b' ');
    head.extend_from_slice(reason.as_bytes());
    head.extend_from_slice(b"\r\n");
}

/// Appends the `Server` line of a handler whose `server` and `sys` versions are clean.
pub(crate) fn write_server_line(head: &mut Vec<u8>, server: &str, sys: &str) {
    head.extend_from_slice(b"Server: ");
    head.extend_from_slice(server.as_bytes());
    head.push(b' ');
    head.extend_from_slice(sys.as_bytes());
    head.extend_from_slice(b"\r\n");
}

/// Whether a response with this status must not carry content (1xx, 204, 205, 304).
pub(crate) fn forbids_body(code: StatusCode) -> bool {
    ends_with_head(code) || code.as_u16() == 205
}

/// Whether a response with this status ends with its head whatever its headers say (1xx,
/// 204, 304: RFC 9112, 6.3). A 205 does not: it needs `Content-Length: 0` to be framed.
pub(crate) fn ends_with_head(code: StatusCode) -> bool {
    code.is_informational() || matches!(code.as_u16(), 204 | 304)
}
