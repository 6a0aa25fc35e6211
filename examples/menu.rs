//! The seed's "10086" hotline: a welcome with the menu, then per message `exit` hangs up,
//! `0` answers the operator's text, anything else asks to enter again.
//!
//! ```python
//! class MyServer(SocketServer.BaseRequestHandler):
//!     def handle(self):
//!         conn = self.request
//!         conn.sendall('欢迎致电 10086,请输入1xxx,0转人工服务.')
//!         while True:
//!             data = conn.recv(1024)
//!             if data == 'exit': break
//!             elif data == '0': conn.sendall('通过可能会被录音.balabala一大推')
//!             else: conn.sendall('请重新输入.')
//!
//! SocketServer.ForkingTCPServer(('127.0.0.1', 8009), MyServer).serve_forever()
//! ```
//!
//! Forking by default, a thread per client with `--threading`:
//! `cargo run --example menu -- 127.0.0.1:8009 [--threading]`, then `nc 127.0.0.1 8009`.

mod common;

use socketserver::{
    ForkingTcpServer, HandlerResult, RequestHandler, StreamRequest, ThreadingTcpServer,
};

/// "Welcome to 10086. Enter 1xxx for services, 0 for an operator."
const WELCOME: &str = "欢迎致电 10086,请输入1xxx,0转人工服务.";
/// "Calls may be recorded. ..."
const OPERATOR: &str = "通过可能会被录音.balabala一大推";
/// "Please enter again."
const AGAIN: &str = "请重新输入.";

#[derive(Clone)]
struct Hotline;

impl RequestHandler for Hotline {
    type Request = StreamRequest;

    fn handle(&mut self, req: &mut StreamRequest) -> HandlerResult {
        let conn = &req.request;
        conn.sendall(WELCOME.as_bytes())?;
        loop {
            let data = conn.recv(1024)?;
            // Unlike the seed, trim the newline a terminal client sends, and stop on EOF.
            match data.trim_ascii() {
                _ if data.is_empty() => return Ok(()),
                b"exit" => return Ok(()),
                b"0" => conn.sendall(OPERATOR.as_bytes())?,
                _ => conn.sendall(AGAIN.as_bytes())?,
            }
        }
    }
}

fn main() -> std::io::Result<()> {
    let address = common::address_arg("127.0.0.1:8009");
    if std::env::args().any(|arg| arg == "--threading") {
        let server = ThreadingTcpServer::bind(address, Hotline)?;
        common::announce_and_stop_on_signal("menu (threading)", server.handle());
        server.serve_forever()?;
        server.server_close();
    } else {
        let server = ForkingTcpServer::bind(address, Hotline)?;
        common::announce_and_stop_on_signal("menu (forking)", server.handle());
        server.serve_forever()?;
        server.server_close();
    }
    Ok(())
}
