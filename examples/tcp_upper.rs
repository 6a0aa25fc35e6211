//! The seed's upper-casing TCP server, ported from Python's `socketserver`:
//!
//! ```python
//! class MyTcpHandler(socketserver.BaseRequestHandler):
//!     def handle(self):
//!         while True:
//!             self.data = self.request.recv(1024).strip()
//!             if not self.data: break
//!             self.request.sendall(self.data.upper())
//!
//! with socketserver.ThreadingTCPServer(("localhost", 9999), MyTcpHandler) as server:
//!     server.serve_forever()
//! ```
//!
//! Run: `cargo run --example tcp_upper -- 127.0.0.1:9999`, then `nc 127.0.0.1 9999`.

mod common;

use socketserver::{HandlerResult, RequestHandler, StreamRequest, ThreadingTcpServer};

#[derive(Clone)]
struct MyTcpHandler;

impl RequestHandler for MyTcpHandler {
    type Request = StreamRequest;

    fn handle(&mut self, req: &mut StreamRequest) -> HandlerResult {
        loop {
            let data = req.request.recv(1024)?;
            if data.is_empty() {
                return Ok(()); // the client closed the connection
            }
            let data = data.trim_ascii();
            println!(
                "{} wrote: {}",
                req.client_address,
                String::from_utf8_lossy(data)
            );
            req.request.sendall(&data.to_ascii_uppercase())?;
        }
    }
}

fn main() -> std::io::Result<()> {
    let server = ThreadingTcpServer::bind(common::address_arg("127.0.0.1:9999"), MyTcpHandler)?;
    common::announce_and_stop_on_signal("tcp_upper", server.handle());
    server.serve_forever()?;
    server.server_close();
    Ok(())
}
