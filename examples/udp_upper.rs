//! The seed's upper-casing UDP server, ported from Python's `socketserver`:
//!
//! ```python
//! class MyUDPHandler(socketserver.BaseRequestHandler):
//!     def handle(self):
//!         data = self.request[0].strip()
//!         socket = self.request[1]
//!         socket.sendto(data.upper(), self.client_address)
//!
//! with socketserver.UDPServer(("localhost", 9999), MyUDPHandler) as server:
//!     server.serve_forever()
//! ```
//!
//! Run: `cargo run --example udp_upper -- 127.0.0.1:9999`, then `nc -u 127.0.0.1 9999`.

mod common;

use socketserver::{DatagramRequest, HandlerResult, RequestHandler, UdpServer};

#[derive(Clone)]
struct MyUdpHandler;

impl RequestHandler for MyUdpHandler {
    type Request = DatagramRequest;

    fn handle(&mut self, req: &mut DatagramRequest) -> HandlerResult {
        let data = req.data().trim_ascii();
        println!(
            "{} wrote: {}",
            req.client_address,
            String::from_utf8_lossy(data)
        );
        req.socket
            .sendto(&data.to_ascii_uppercase(), &req.client_address)?;
        Ok(())
    }
}

fn main() -> std::io::Result<()> {
    let server = UdpServer::bind(common::address_arg("127.0.0.1:9999"), MyUdpHandler)?;
    common::announce_and_stop_on_signal("udp_upper", server.handle());
    server.serve_forever()?;
    server.server_close();
    Ok(())
}
