//! Your own routes on `http.server`: a handler with a few routes that hands everything else
//! to `SimpleHttpHandler`, as a Python subclass calls `super().do_GET()`.
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
//! - `GET /hello`: "It works" with a `Welcome: Contect` header (the five calls, as in Python);
//! - `GET /api/time`: the time as JSON;
//! - `POST /echo`: the urldecoded form fields, one `name=value` per line;
//! - anything else, `HEAD` and other methods included: the files of `www/`.
//!
//! Run: `cargo run --example custom_routes -- 8080 --bind 127.0.0.1`, then
//! `curl -i localhost:8080/hello` or `curl -d 'a=1&b=x+y' localhost:8080/echo`.

mod common;

use std::io::Write;
use std::net::{IpAddr, SocketAddr};

use clap::Parser;
use socketserver::files::SimpleHttpHandler;
use socketserver::http::{HttpHandler, HttpRequest, HttpServer, Version};
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

impl HttpHandler for Routes {
    const PROTOCOL_VERSION: Version = Version::HTTP_11;

    fn do_get(&mut self, req: &mut HttpRequest<'_>) -> HandlerResult {
        match req.url_path() {
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
                req.respond(200, "application/json", json)
            }
            _ => self.fallback(req),
        }
    }

    fn do_post(&mut self, req: &mut HttpRequest<'_>) -> HandlerResult {
        if req.url_path() != "/echo" {
            return self.fallback(req);
        }
        let mut text = String::new();
        for (name, value) in req.body_form()? {
            text.push_str(&format!("{name}={value}\n"));
        }
        req.send_text(200, &text)
    }

    /// Everything the routes leave, whatever the method: Python's `super()`.
    fn fallback(&mut self, req: &mut HttpRequest<'_>) -> HandlerResult {
        self.files.dispatch(req)
    }

    /// What the files may wait for (a form handler that does) runs on a worker.
    fn may_block(&self, req: &HttpRequest<'_>) -> bool {
        self.files.may_block(req)
    }
}

fn main() -> std::io::Result<()> {
    socketserver::http::log_to_stderr(log::LevelFilter::Info).expect("the only logger");
    let args = Args::parse();
    let www = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("www");
    let routes = Routes {
        files: SimpleHttpHandler::new(www)?,
    };
    let server = HttpServer::builder(SocketAddr::new(args.bind, args.port), routes)
        .request_queue_size(1024)
        .build()?;
    println!("custom_routes serving on {}", server.server_address());
    common::stop_on_signal(server.handle());
    server.serve_forever()?;
    server.server_close();
    Ok(())
}
