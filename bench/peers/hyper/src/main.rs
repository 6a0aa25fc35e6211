//! hyper 1 on a tokio current-thread runtime as a benchmark peer: `GET /hello` and the files
//! of `--dir`, streamed. HTTP/1 only, keep-alive on, pipelined answers flushed together.
//!
//! ```text
//! peer-hyper --port 8080 --dir /tmp/files
//! ```

use std::convert::Infallible;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::TryStreamExt;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_util::io::ReaderStream;

type Body = BoxBody<Bytes, io::Error>;

/// Bigger than ReaderStream's 4 KiB default: every read of a tokio file is a trip to the
/// blocking pool, so fewer, larger reads serve a 1 MiB file much faster.
const CHUNK: usize = 64 * 1024;

fn main() -> io::Result<()> {
    let (port, dir) = parse_args();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(serve(port, Arc::new(dir)))
}

async fn serve(port: u16, dir: Arc<PathBuf>) -> io::Result<()> {
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    println!("peer-hyper listening on {}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        // hyper writes a streamed body after the head; with Nagle's algorithm on, the second
        // write waits for the client's delayed ACK. nginx and ours disable it too.
        stream.set_nodelay(true)?;
        let dir = Arc::clone(&dir);
        tokio::spawn(async move {
            let service = service_fn(move |req| answer(req, Arc::clone(&dir)));
            // A client that goes away mid-request is routine under load, not worth a line.
            let _ = http1::Builder::new()
                .keep_alive(true)
                .pipeline_flush(true)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn answer(req: Request<Incoming>, dir: Arc<PathBuf>) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path();
    if path == "/hello" {
        let body = Full::new(Bytes::from_static(b"Hello, world!"))
            .map_err(|never| match never {})
            .boxed();
        return Ok(Response::builder()
            .header("Content-Type", "text/plain")
            .body(body)
            .unwrap());
    }
    Ok(match file_name(path) {
        Some(name) => match open(&dir.join(name)).await {
            Ok(response) => response,
            Err(_) => not_found(),
        },
        None => not_found(),
    })
}

async fn open(path: &Path) -> io::Result<Response<Body>> {
    let file = tokio::fs::File::open(path).await?;
    let length = file.metadata().await?.len();
    let stream = ReaderStream::with_capacity(file, CHUNK).map_ok(Frame::data);
    Ok(Response::builder()
        .header("Content-Type", "application/octet-stream")
        .header("Content-Length", length)
        .body(StreamBody::new(stream).boxed())
        .unwrap())
}

fn not_found() -> Response<Body> {
    let body = Empty::new().map_err(|never| match never {}).boxed();
    Response::builder()
        .status(StatusCode::NOT_FOUND)
        .body(body)
        .unwrap()
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
    eprintln!("peer-hyper: bad argument {flag}; usage: peer-hyper [--port N] [--dir DIR]");
    std::process::exit(2)
}
