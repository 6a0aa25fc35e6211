//! Your own routes on `http.server`: subclass the handler, dispatch on the path.
//!
//! ```python
//! class Handler(SimpleHTTPRequestHandler):
//!     def do_GET(self):
//!         if self.path == "/hello":
//!             self.send_response(200)
//!             self.send_header("Welcome", "Contect")
//!             ...
//!         else:
//!             super().do_GET()
//! ```
//!
//! - `GET /hello`: "It works" with a `Welcome: Contect` header;
//! - `GET /api/time`: the time as JSON;
//! - `POST /echo`: the urldecoded form fields, one `name=value` per line;
//! - anything else: the files of `www/`, through `SimpleHttpHandler` (Python's
//!   `super().do_GET()`).
//!
//! Run: `cargo run --example custom_routes -- 8080 --bind 127.0.0.1`, then
//! `curl -i localhost:8080/hello` or `curl -d 'a=1&b=x+y' localhost:8080/echo`.

mod common;

use std::io::Write;
use std::net::{IpAddr, SocketAddr};

use clap::Parser;
use socketserver::files::SimpleHttpHandler;
use socketserver::http::{parse_qsl, HttpHandler, HttpRequest, ThreadingHttpServer, Version};
use socketserver::HandlerResult;

#[derive(Parser)]
#[command(about = "An HTTP server with custom routes")]
struct Args {
    /// Port to listen on.
    #[arg(default_value_t = 8000)]
    port: u16,
    /// Address to bind to.
    #[arg(short, long, default_value = "127.0.0.1")]
    bind: IpAddr,
}

#[derive(Clone)]
struct Routes {
    files: SimpleHttpHandler,
}

impl Routes {
    fn send_text(req: &mut HttpRequest<'_>, content_type: &str, body: &str) -> HandlerResult {
        req.send_response(200)?;
        req.send_header("Content-Type", content_type)?;
        req.send_header("Content-Length", body.len())?;
        req.end_headers()?;
        req.wfile.write_all(body.as_bytes())?;
        Ok(())
    }
}

impl HttpHandler for Routes {
    const PROTOCOL_VERSION: Version = Version::HTTP_11;

    fn do_get(&mut self, req: &mut HttpRequest<'_>) -> HandlerResult {
        let path = req.path.split('?').next().unwrap_or("").to_string();
        match path.as_str() {
            "/hello" => {
                let body = "It works";
                req.send_response(200)?;
                req.send_header("Welcome", "Contect")?;
                req.send_header("Content-Type", "text/plain; charset=utf-8")?;
                req.send_header("Content-Length", body.len())?;
                req.end_headers()?;
                req.wfile.write_all(body.as_bytes())?;
                Ok(())
            }
            "/api/time" => {
                let now = jiff::Timestamp::now();
                let json = format!("{{\"time\": \"{now}\", \"unix\": {}}}", now.as_second());
                Self::send_text(req, "application/json", &json)
            }
            _ => self.files.do_get(req),
        }
    }

    fn do_head(&mut self, req: &mut HttpRequest<'_>) -> HandlerResult {
        self.do_get(req)
    }

    fn do_post(&mut self, req: &mut HttpRequest<'_>) -> HandlerResult {
        if req.path.split('?').next() != Some("/echo") {
            return self.files.do_post(req);
        }
        let body = req.read_body()?;
        let mut text = String::new();
        for (name, value) in parse_qsl(&body) {
            text.push_str(&format!("{name}={value}\n"));
        }
        Self::send_text(req, "text/plain; charset=utf-8", &text)
    }
}

fn main() -> std::io::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let args = Args::parse();
    let www = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("www");
    let files = SimpleHttpHandler::new(www)?.with_protocol_version(Version::HTTP_11);
    let server =
        ThreadingHttpServer::builder(SocketAddr::new(args.bind, args.port), Routes { files })
            .request_queue_size(1024)
            .build()?;
    let address = server.server_address();
    println!("custom_routes serving on {address}");
    let handle = server.handle();
    common::stop_on_signal(handle);
    server.serve_forever()?;
    server.server_close();
    Ok(())
}
