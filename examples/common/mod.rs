//! What every example shares: its address argument, and stopping on SIGINT/SIGTERM.
//! Each example uses part of it.
#![allow(dead_code)]

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};

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
    stop_on_signal(server);
}

/// Makes Ctrl-C and SIGTERM shut the server down, so that `serve_forever` returns and `main`
/// closes it after the requests in flight; a second signal exits at once, for when one of
/// those requests takes too long.
pub fn stop_on_signal(server: ServerHandle) {
    let signals = AtomicUsize::new(0);
    ctrlc::set_handler(move || {
        if signals.fetch_add(1, Ordering::SeqCst) == 0 {
            server.shutdown();
        } else {
            eprintln!("Second signal: exiting without waiting for requests in flight");
            std::process::exit(130);
        }
    })
    .expect("cannot install the signal handler");
}
