//! The seed's timestamp server: reads one line, answers it prefixed with the local time.
//!
//! ```python
//! class MyRequestHandler(StreamRequestHandler):
//!     def handle(self):
//!         print("connected from", self.client_address)
//!         self.wfile.write(b"[%s] %s" % (ctime().encode(), self.rfile.readline()))
//!
//! TCPServer(("", 10001), MyRequestHandler).serve_forever()
//! ```
//!
//! Run: `cargo run --example timestamp -- 127.0.0.1:10001`, then `nc 127.0.0.1 10001`.

mod common;

use std::io::Write;

use socketserver::{HandlerResult, RequestHandler, StreamRequest, TcpServer};

#[derive(Clone)]
struct MyRequestHandler;

impl RequestHandler for MyRequestHandler {
    type Request = StreamRequest;

    fn handle(&mut self, req: &mut StreamRequest) -> HandlerResult {
        println!("connected from {}", req.client_address);
        let line = req.rfile.readline(65536)?;
        write!(req.wfile, "[{}] ", ctime())?;
        req.wfile.write_all(&line)?;
        Ok(())
    }
}

/// Python's `time.ctime()`: `Mon Nov 23 09:12:00 2026`, in local time.
fn ctime() -> String {
    jiff::Zoned::now()
        .strftime("%a %b %e %H:%M:%S %Y")
        .to_string()
}

fn main() -> std::io::Result<()> {
    let server = TcpServer::bind(common::address_arg("127.0.0.1:10001"), MyRequestHandler)?;
    common::announce_and_stop_on_signal("timestamp", server.handle());
    server.serve_forever()?;
    server.server_close();
    Ok(())
}
