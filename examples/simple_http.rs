//! `python3 -m http.server`, in Rust: serves a directory over HTTP. The same program as the
//! `simple-http` binary (`cargo install --path . --features cli`), serving the shipped
//! `www/` site by default instead of the current directory.
//!
//! ```text
//! cargo run --example simple_http                     # www/ on port 8000, all interfaces
//! cargo run --example simple_http -- 8080 -b 127.0.0.1 -d /srv/files -p HTTP/1.1
//! ```
//!
//! Ctrl-C or SIGTERM stops it after the requests in flight are answered.

#[path = "../src/bin/simple-http/cli.rs"]
mod cli;

fn main() -> std::process::ExitCode {
    cli::run(cli::DefaultDirectory {
        path: std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("www"),
        why: "the shipped site",
    })
}
