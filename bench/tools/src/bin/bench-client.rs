//! Makes N keep-alive requests, one after another, on one connection: the load of the
//! syscall count, where every request must cost the server the same work.
//!
//! ```text
//! bench-client 127.0.0.1:8080 12000 [/hello]
//! ```

use std::io::BufReader;
use std::net::TcpStream;
use std::process::ExitCode;
use std::time::{Duration, Instant};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(address), Some(Ok(count))) = (args.first(), args.get(1).map(|n| n.parse::<u64>()))
    else {
        eprintln!("usage: bench-client ADDRESS COUNT [PATH]");
        return ExitCode::from(2);
    };
    let path = args.get(2).map_or("/hello", String::as_str);
    let request = bench_tools::request(path);
    let started = Instant::now();
    let run = || -> std::io::Result<()> {
        let stream = TcpStream::connect(address)?;
        // Generous: under strace a request takes milliseconds, not the usual microseconds.
        stream.set_read_timeout(Some(Duration::from_secs(20)))?;
        stream.set_nodelay(true)?;
        let mut stream = BufReader::new(stream);
        let mut body = Vec::new();
        for i in 0..count {
            let status = bench_tools::get(&mut stream, &request, &mut body)?;
            if status != 200 {
                return Err(std::io::Error::other(format!(
                    "request {i}: status {status}"
                )));
            }
        }
        Ok(())
    };
    match run() {
        Ok(()) => {
            println!(
                "{count} requests in {:.3} s",
                started.elapsed().as_secs_f64()
            );
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("bench-client: {err}");
            ExitCode::FAILURE
        }
    }
}
