//! What every example shares: its address argument, and stopping on SIGINT/SIGTERM.

use std::io::Write;

use socketserver::ServerHandle;

/// The first command-line argument, or `default`.
pub fn address_arg(default: &str) -> String {
    std::env::args()
        .nth(1)
        .unwrap_or_else(|| default.to_string())
}

/// Prints where the server listens (tests read this line to find the port), and makes
/// Ctrl-C and SIGTERM shut the server down so `serve_forever` returns and `main` can close it.
pub fn announce_and_stop_on_signal(what: &str, server: ServerHandle) {
    println!("{what} serving on {}", server.server_address());
    let _ = std::io::stdout().flush();
    ctrlc::set_handler(move || server.shutdown()).expect("cannot install the signal handler");
}
