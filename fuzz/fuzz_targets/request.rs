//! Fuzzes the whole request path: head reading and parsing, framing checks, the
//! Content-Length and chunked body decoders, pipelining and the response writer.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = socketserver::http::fuzz::serve_bytes(data);
});
