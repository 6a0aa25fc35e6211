//! `python3 -m http.server`, in Rust: serves the `www/` directory.
//!
//! The HTTP layer is not built yet (see the CHANGELOG); until it lands this example only
//! says so and exits successfully.

fn main() {
    println!(
        "simple_http: not yet. The HTTP server lands with the next release; \
         the socket server examples (tcp_upper, udp_upper, unix_upper, timestamp, menu, \
         echo_threads) run today."
    );
}
