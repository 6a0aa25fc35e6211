//! `simple-http`: `python3 -m http.server`, in Rust. Installed with
//! `cargo install --path . --features cli`; serves the current directory by default.
//!
//! ```text
//! simple-http                              # the current directory on port 8000
//! simple-http 8080 -b localhost -d /srv/files -p HTTP/1.1
//! ```

mod cli;

fn main() -> std::process::ExitCode {
    cli::run(cli::DefaultDirectory {
        path: ".".into(),
        why: "the current directory",
    })
}
