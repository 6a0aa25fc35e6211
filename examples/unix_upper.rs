//! The upper-casing server over a Unix stream socket (Python's `UnixStreamServer` with a
//! `StreamRequestHandler`). The socket file is removed when the server closes.
//!
//! Run: `cargo run --example unix_upper -- /tmp/upper.sock`, then
//! `nc -U /tmp/upper.sock`.

mod common;

use std::io::Write;

use socketserver::{HandlerResult, RequestHandler, StreamRequest, ThreadingUnixStreamServer};

#[derive(Clone)]
struct Upper;

impl RequestHandler for Upper {
    type Request = StreamRequest;

    fn handle(&mut self, req: &mut StreamRequest) -> HandlerResult {
        loop {
            let line = req.rfile.readline(65536)?;
            if line.is_empty() {
                return Ok(());
            }
            req.wfile
                .write_all(&line.trim_ascii().to_ascii_uppercase())?;
            req.wfile.write_all(b"\n")?;
        }
    }
}

fn main() -> std::io::Result<()> {
    let path = common::address_arg("/tmp/socketserver-upper.sock");
    let server = ThreadingUnixStreamServer::bind(&path, Upper)?;
    common::announce_and_stop_on_signal("unix_upper", server.handle());
    server.serve_forever()?;
    server.server_close(); // removes the socket file
    Ok(())
}
