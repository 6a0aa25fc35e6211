//! The installed `simple-http` binary (feature `cli`): serves the directory it is started
//! in, takes host names for `-b`, lists the URLs to open, and fails clearly on a name that
//! does not resolve.
#![cfg(feature = "cli")]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

use common::{connect, TempDir};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

const BINARY: &str = env!("CARGO_BIN_EXE_simple-http");

/// The running binary and the URLs of its banner.
struct Running {
    child: Child,
    urls: Vec<String>,
}

impl Running {
    fn start(dir: &TempDir, args: &[&str]) -> Running {
        let child = Command::new(BINARY)
            .args(args)
            .current_dir(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start simple-http");
        // Owned by `Running` from here, so that a failed assertion still stops it.
        let mut running = Running {
            child,
            urls: Vec::new(),
        };
        let mut stdout = BufReader::new(running.child.stdout.take().unwrap());
        let mut line = String::new();
        loop {
            line.clear();
            assert!(stdout.read_line(&mut line).unwrap() > 0, "no banner");
            if let Some(rest) = line.strip_prefix("Serving HTTP on ") {
                let inside = rest.split_once('(').unwrap().1.split_once(')').unwrap().0;
                running.urls = inside.split(' ').map(str::to_string).collect();
                return running;
            }
        }
    }

    /// `GET path` from the first URL of the banner.
    fn get(&self, path: &str) -> String {
        let url = &self.urls[0];
        let host = url
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        let address: SocketAddr = host.parse().expect("an address in the URL");
        let mut client = connect(address);
        write!(client, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").unwrap();
        let mut response = String::new();
        client.read_to_string(&mut response).unwrap();
        response
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
        let _ = self.child.wait();
    }
}

#[test]
fn serves_the_directory_it_is_started_in() {
    let dir = TempDir::new();
    dir.write("hello.txt", "from the current directory\n");
    let running = Running::start(&dir, &["0", "-b", "127.0.0.1"]);
    assert_eq!(running.urls.len(), 1, "{:?}", running.urls);
    assert!(
        running.urls[0].starts_with("http://127.0.0.1:"),
        "{:?}",
        running.urls
    );
    let response = running.get("/hello.txt");
    assert!(response.starts_with("HTTP/1.0 200 "), "{response}");
    assert!(
        response.ends_with("\r\n\r\nfrom the current directory\n"),
        "{response}"
    );
}

#[test]
fn binds_a_host_name() {
    let dir = TempDir::new();
    dir.write("a.txt", "a");
    let running = Running::start(&dir, &["0", "-b", "localhost"]);
    let url = &running.urls[0];
    assert!(
        url.starts_with("http://127.0.0.1:") || url.starts_with("http://[::1]:"),
        "{url}"
    );
    assert!(running.get("/a.txt").ends_with("\r\n\r\na"));
}

#[test]
fn every_interface_lists_the_loopback_url_first() {
    let dir = TempDir::new();
    let running = Running::start(&dir, &["0"]);
    assert!(
        running.urls[0].starts_with("http://127.0.0.1:"),
        "{:?}",
        running.urls
    );
    assert!(running.get("/").starts_with("HTTP/1.0 200 "));
}

#[test]
fn a_name_that_does_not_resolve_fails_with_its_name() {
    let dir = TempDir::new();
    let output = Command::new(BINARY)
        .args(["0", "-b", "no-such-host.invalid"])
        .current_dir(dir.path())
        .output()
        .expect("run simple-http");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no-such-host.invalid"), "{stderr}");
}
