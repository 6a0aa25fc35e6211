//! tiny_http as a benchmark peer: `GET /hello` and the files of `--dir`, answered by four
//! threads taking requests from one server. Nagle's algorithm is off, as in nginx and ours:
//! tiny_http writes the head and the body separately, and the body would otherwise wait for
//! the client's delayed ACK.
//!
//! ```text
//! peer-tiny-http --port 8080 --dir /tmp/files
//! ```

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;

use socket2::SockRef;
use tiny_http::{Header, Request, Response, Server};

const THREADS: usize = 4;

fn main() {
    let (port, dir) = parse_args();
    let listener = TcpListener::bind(("127.0.0.1", port)).expect("cannot bind");
    // Accepted sockets inherit TCP_NODELAY from the listener (Linux): tiny_http has no
    // option of its own.
    SockRef::from(&listener)
        .set_tcp_nodelay(true)
        .expect("cannot set TCP_NODELAY");
    let server = Arc::new(Server::from_listener(listener, None).expect("cannot serve"));
    println!("peer-tiny-http listening on {}", server.server_addr());
    let workers: Vec<_> = (0..THREADS)
        .map(|_| {
            let server = Arc::clone(&server);
            let dir = dir.clone();
            thread::spawn(move || loop {
                match server.recv() {
                    Ok(request) => answer(request, &dir),
                    Err(err) => eprintln!("peer-tiny-http: {err}"),
                }
            })
        })
        .collect();
    for worker in workers {
        let _ = worker.join();
    }
}

fn answer(request: Request, dir: &Path) {
    // A client that hangs up mid-response is no reason to stop a worker.
    let _ = match request.url() {
        "/hello" => {
            let text: Header = "Content-Type: text/plain".parse().unwrap();
            request.respond(Response::from_data("Hello, world!").with_header(text))
        }
        url => match file_name(url).and_then(|name| File::open(dir.join(name)).ok()) {
            Some(file) => request.respond(Response::from_file(file)),
            None => request.respond(Response::empty(404)),
        },
    };
}

/// The benchmark serves a flat directory: a plain name, never a path out of it.
fn file_name(url: &str) -> Option<&str> {
    let name = url.split('?').next()?.strip_prefix('/')?;
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
    eprintln!("peer-tiny-http: bad argument {flag}; usage: peer-tiny-http [--port N] [--dir DIR]");
    std::process::exit(2)
}
