//! astra as a benchmark peer: `GET /hello` and the files of `--dir`, on astra's defaults (a
//! blocking worker pool over hyper, HTTP/1 keep-alive), with pipelined answers flushed
//! together as the hyper peer does.
//!
//! ```text
//! peer-astra --port 8080 --dir /tmp/files
//! ```

use std::fs::File;
use std::path::PathBuf;

use astra::{Body, Request, Response, ResponseBuilder, Server};

const HELLO: &str = "Hello, world!";

fn main() {
    let (port, dir) = parse_args();
    let server = Server::bind(("127.0.0.1", port))
        .http1_only()
        .http1_pipeline_flush(true);
    println!(
        "peer-astra listening on {}",
        server.local_addr().expect("a bound listener")
    );
    server
        .serve(move |req: Request, _info| answer(&req, &dir))
        .expect("serve failed");
}

fn answer(req: &Request, dir: &std::path::Path) -> Response {
    let path = req.uri().path();
    if path == "/hello" {
        // astra's Body does not tell hyper its length, which would then send chunks.
        return ResponseBuilder::new()
            .header("Content-Type", "text/plain")
            .header("Content-Length", HELLO.len())
            .body(Body::new(HELLO))
            .unwrap();
    }
    let file = file_name(path).and_then(|name| File::open(dir.join(name)).ok());
    let length = file
        .as_ref()
        .and_then(|f| f.metadata().ok())
        .map(|m| m.len());
    match (file, length) {
        (Some(file), Some(length)) => ResponseBuilder::new()
            .header("Content-Type", "application/octet-stream")
            .header("Content-Length", length)
            .body(Body::wrap_reader(file))
            .unwrap(),
        _ => ResponseBuilder::new()
            .status(404)
            .body(Body::empty())
            .unwrap(),
    }
}

/// The benchmark serves a flat directory: a plain name, never a path out of it.
fn file_name(path: &str) -> Option<&str> {
    let name = path.strip_prefix('/')?;
    let plain = !name.is_empty() && !name.starts_with('.') && !name.contains('/');
    plain.then_some(name)
}

fn parse_args() -> (u16, PathBuf) {
    let mut port = 8000;
    let mut dir = PathBuf::from(".");
    let mut argv = std::env::args().skip(1);
    while let Some(flag) = argv.next() {
        let value = argv.next().unwrap_or_else(|| usage(&flag));
        match flag.as_str() {
            "--port" => port = value.parse().unwrap_or_else(|_| usage(&flag)),
            "--dir" => dir = PathBuf::from(value),
            _ => usage(&flag),
        }
    }
    (port, dir)
}

fn usage(flag: &str) -> ! {
    eprintln!("peer-astra: bad argument {flag}; usage: peer-astra [--port N] [--dir DIR]");
    std::process::exit(2)
}
