//! The seed's upper-casing server over a Unix stream socket: `tcp_upper`'s handler as it
//! is, served by Python's `UnixStreamServer` instead of `TCPServer`. The socket file is
//! removed when the server closes.
//!
//! Run: `cargo run --example unix_upper -- /tmp/upper.sock`, then
//! `nc -U /tmp/upper.sock`.

mod common;

use socketserver::{HandlerResult, RequestHandler, StreamRequest, ThreadingUnixStreamServer};

#[derive(Clone)]
struct MyStreamHandler;

impl RequestHandler for MyStreamHandler {
    type Request = StreamRequest;

    /// Answers each `recv` (not each line), as `tcp_upper` does.
    fn handle(&mut self, req: &mut StreamRequest) -> HandlerResult {
        loop {
            let data = req.request.recv(1024)?;
            if data.is_empty() {
                return Ok(()); // the client closed the connection
            }
            req.request
                .sendall(&data.trim_ascii().to_ascii_uppercase())?;
        }
    }
}

fn main() -> std::io::Result<()> {
    let path = common::address_arg("/tmp/socketserver-upper.sock");
    let server = ThreadingUnixStreamServer::bind(&path, MyStreamHandler)?;
    common::announce_and_stop_on_signal("unix_upper", server.handle());
    server.serve_forever()?;
    server.server_close(); // removes the socket file
    Ok(())
}
