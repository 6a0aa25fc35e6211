//! The seed's `ThreadingMixIn` demo: a threading server on port 0 in the background, three
//! clients in this process, each answered by a different handler thread.
//!
//! ```python
//! class MyHandler(SocketServer.BaseRequestHandler):
//!     def handle(self):
//!         data = self.request.recv(1024)
//!         self.request.sendall('{}: {}'.format(threading.current_thread().name, data))
//!
//! server = ThreadingTCPServer(('localhost', 0), MyHandler)
//! threading.Thread(target=server.serve_forever, daemon=True).start()
//! for i in 1, 2, 3: client(ip, port, 'Hello World %d' % i)
//! server.shutdown(); server.server_close()
//! ```
//!
//! Run: `cargo run --example echo_threads`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::thread;

use socketserver::{HandlerResult, RequestHandler, StreamRequest, ThreadingTcpServer};

#[derive(Clone)]
struct MyHandler;

impl RequestHandler for MyHandler {
    type Request = StreamRequest;

    fn handle(&mut self, req: &mut StreamRequest) -> HandlerResult {
        let data = req.request.recv(1024)?;
        let name = thread::current().name().unwrap_or("unnamed").to_string();
        let response = format!("{name}: {}", String::from_utf8_lossy(&data));
        req.request.sendall(response.as_bytes())?;
        Ok(())
    }
}

fn client(address: SocketAddr, message: &str) -> std::io::Result<()> {
    let mut sock = TcpStream::connect(address)?;
    sock.write_all(message.as_bytes())?;
    let mut response = String::new();
    sock.read_to_string(&mut response)?;
    println!("Received: {response}");
    Ok(())
}

fn main() -> std::io::Result<()> {
    let server = Arc::new(ThreadingTcpServer::bind("127.0.0.1:0", MyHandler)?);
    let address = server.server_address().inet().expect("a TCP server");

    let serving = Arc::clone(&server);
    let server_thread = thread::Builder::new()
        .name("serve_forever".into())
        .spawn(move || serving.serve_forever())?;
    println!("Server loop running in thread: serve_forever");

    for i in 1..=3 {
        client(address, &format!("Hello World {i}"))?;
    }

    server.shutdown();
    server_thread.join().expect("the server thread panicked")?;
    server.server_close();
    Ok(())
}
