//! `SimpleHttpHandler`'s cache of small files: a server that keeps files in memory answers
//! every request exactly as one that reads the disk each time, and sees every change made
//! to a file (edit, replacement, truncation, deletion) on the next request, even when the
//! change keeps the file's size and modification time.
//!
//! Only files left alone for a second or two are cached, so each test first waits until its
//! files have settled.

mod files_support;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use files_support::{
    serve, set_mtime, wait_until, KeepAlive, Served, TempDir, MTIME_HTTP, MTIME_SECS,
};
use socketserver::files::SimpleHttpHandler;
use socketserver::http::{Configured, Version};

type Files11 = Configured<SimpleHttpHandler>;

/// Waits until every file in `dir` was last changed (ctime, which cannot be set back) more
/// than two whole seconds ago: then the cache keeps them.
fn wait_until_settled(dir: &Path) {
    let latest = fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().metadata().unwrap().ctime())
        .max()
        .unwrap();
    let settled = UNIX_EPOCH + Duration::from_secs(latest as u64 + 2);
    wait_until("the files to settle", || SystemTime::now() >= settled);
}

fn servers(dir: &TempDir) -> (Served<Files11>, Served<Files11>) {
    let handler = |cache| {
        let files = SimpleHttpHandler::new(dir.path())
            .unwrap()
            .cache_small_files(cache);
        Configured::new(files).protocol_version(Version::HTTP_11)
    };
    (serve(handler(1 << 20)), serve(handler(0)))
}

/// Sends `request` to both servers, twice to the cached one (to answer from memory), and
/// checks all three answers agree; returns the cached server's.
fn same_answer(
    cached: &mut KeepAlive,
    uncached: &mut KeepAlive,
    request: &str,
) -> files_support::Response {
    let disk = uncached.request(request);
    let first = cached.request(request);
    let second = cached.request(request);
    for response in [&first, &second] {
        assert_eq!(response.status, disk.status, "{request}");
        assert_eq!(
            response.stable_headers(),
            disk.stable_headers(),
            "{request}"
        );
        assert_eq!(response.body, disk.body, "{request}");
    }
    second
}

#[test]
fn cached_files_answer_every_request_as_the_disk_does() {
    let dir = TempDir::new();
    let digits = dir.write("digits.txt", "0123456789");
    set_mtime(&digits, MTIME_SECS);
    dir.write("index.html", "<!DOCTYPE html><title>index</title>");
    dir.write("empty.txt", "");
    dir.write("large.bin", vec![7u8; 64 * 1024]);
    wait_until_settled(dir.path());
    let (cached_server, uncached_server) = servers(&dir);
    let mut cached = KeepAlive::connect(cached_server.addr);
    let mut uncached = KeepAlive::connect(uncached_server.addr);
    let etag = uncached
        .request("GET /digits.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        .header("etag")
        .unwrap()
        .to_string();

    let full = same_answer(
        &mut cached,
        &mut uncached,
        "GET /digits.txt HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    assert_eq!((full.status, full.text().as_str()), (200, "0123456789"));
    for extra in [
        "Range: bytes=2-4".to_string(),
        "Range: bytes=-3".into(),
        "Range: bytes=7-".into(),
        "Range: bytes=10-".into(),
        "Range: bytes=0-1,4-5".into(),
        format!("Range: bytes=0-4\r\nIf-Range: {etag}"),
        "Range: bytes=0-4\r\nIf-Range: \"old\"".into(),
        format!("Range: bytes=0-4\r\nIf-Range: {MTIME_HTTP}"),
        format!("If-None-Match: {etag}"),
        "If-None-Match: \"old\"".into(),
        format!("If-Modified-Since: {MTIME_HTTP}"),
        "If-Modified-Since: Sat, 08 Sep 2001 01:46:40 GMT".into(),
    ] {
        same_answer(
            &mut cached,
            &mut uncached,
            &format!("GET /digits.txt HTTP/1.1\r\nHost: x\r\n{extra}\r\n\r\n"),
        );
    }
    let partial = same_answer(
        &mut cached,
        &mut uncached,
        "GET /digits.txt HTTP/1.1\r\nHost: x\r\nRange: bytes=2-4\r\n\r\n",
    );
    assert_eq!((partial.status, partial.text().as_str()), (206, "234"));
    for request in [
        "HEAD /digits.txt HTTP/1.1\r\nHost: x\r\n\r\n",
        "HEAD /digits.txt HTTP/1.1\r\nHost: x\r\nRange: bytes=0-1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /digits.txt/ HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /empty.txt HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /empty.txt HTTP/1.1\r\nHost: x\r\nRange: bytes=0-\r\n\r\n",
        "GET /large.bin HTTP/1.1\r\nHost: x\r\n\r\n",
    ] {
        same_answer(&mut cached, &mut uncached, request);
    }
    let index = same_answer(
        &mut cached,
        &mut uncached,
        "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    assert!(index.text().contains("<title>index</title>"));
}

#[test]
fn every_change_to_a_cached_file_shows_on_the_next_request() {
    let dir = TempDir::new();
    let names = ["edited", "renamed", "truncated", "grown", "deleted", "dir"];
    for name in names {
        let path = dir.write(name, "version 1");
        set_mtime(&path, MTIME_SECS);
    }
    wait_until_settled(dir.path());
    let (server, _) = servers(&dir);
    let mut client = KeepAlive::connect(server.addr);
    let mut get = |name: &str| client.request(&format!("GET /{name} HTTP/1.1\r\nHost: x\r\n\r\n"));
    for name in names {
        // The second answer comes from memory.
        assert_eq!(get(name).text(), "version 1");
        assert_eq!(get(name).text(), "version 1");
    }

    // Rewritten in place with the same size and modification time: the change time moved.
    fs::write(dir.join("edited"), "version 2").unwrap();
    set_mtime(&dir.join("edited"), MTIME_SECS);
    assert_eq!(get("edited").text(), "version 2");

    // Replaced by rename, again with the same size and modification time.
    let new = dir.write("new.tmp", "version 3");
    set_mtime(&new, MTIME_SECS);
    fs::rename(&new, dir.join("renamed")).unwrap();
    assert_eq!(get("renamed").text(), "version 3");

    fs::write(dir.join("truncated"), "v4").unwrap();
    assert_eq!(get("truncated").text(), "v4");
    fs::write(dir.join("grown"), "version five").unwrap();
    assert_eq!(get("grown").text(), "version five");

    fs::remove_file(dir.join("deleted")).unwrap();
    assert_eq!(get("deleted").status, 404);
    fs::remove_file(dir.join("dir")).unwrap();
    fs::create_dir(dir.join("dir")).unwrap();
    assert_eq!(get("dir").status, 301);
}

/// How many files the server's handler holds in memory, from its `Debug` text.
fn cached_files<
    H: std::fmt::Debug + socketserver::RequestHandler<Request = socketserver::StreamRequest>,
>(
    server: &Served<H>,
) -> usize {
    let debug = format!("{:?}", server.server.handler());
    let count = debug
        .split("files: ")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .unwrap_or_else(|| panic!("no file count in {debug}"));
    count.parse().unwrap()
}

#[test]
fn settled_small_files_are_kept_and_large_or_fresh_ones_are_not() {
    let dir = TempDir::new();
    dir.write("a.txt", "a");
    dir.write("b.txt", "b");
    dir.write("large.bin", vec![1u8; 64 * 1024]);
    wait_until_settled(dir.path());
    dir.write("fresh.txt", "just written");
    let (server, uncached) = servers(&dir);
    for target in ["/a.txt", "/b.txt", "/large.bin", "/fresh.txt"] {
        assert_eq!(server.get(target).status, 200, "{target}");
    }
    assert_eq!(cached_files(&server), 2);
    assert_eq!(cached_files(&uncached), 0);
    // Answers from memory are the same bytes.
    assert_eq!(server.get("/a.txt").text(), "a");
    assert_eq!(cached_files(&server), 2);
}

#[test]
fn a_clone_that_follows_symlinks_does_not_share_what_it_cached() {
    let base = TempDir::new();
    base.write("outside/secret.txt", "SECRET");
    base.mkdir("root");
    base.symlink("../outside/secret.txt", "root/link");
    wait_until_settled(&base.join("outside"));
    let strict = SimpleHttpHandler::new(base.join("root")).unwrap();
    let following = strict.clone().follow_symlinks(true);
    let following = serve(following);
    let strict = serve(strict);
    for _ in 0..2 {
        let response = following.get("/link");
        assert_eq!(response.text(), "SECRET");
    }
    assert_eq!(cached_files(&following), 1);
    let response = strict.get("/link");
    assert_eq!(response.status, 404, "{}", response.text());
}

#[test]
fn a_served_directory_replaced_on_disk_is_served_anew() {
    let base = TempDir::new();
    base.write("site/page.txt", "old site");
    let server = serve(SimpleHttpHandler::new(base.join("site")).unwrap());
    assert_eq!(server.get("/page.txt").text(), "old site");

    // Replaced by rename, as deploy scripts do.
    base.write("next/page.txt", "new site");
    fs::rename(base.join("site"), base.join("previous")).unwrap();
    fs::rename(base.join("next"), base.join("site")).unwrap();
    wait_until("the new directory to be served", || {
        server.get("/page.txt").text() == "new site"
    });

    // Deleted and made again, as a rebuild does.
    fs::remove_dir_all(base.join("site")).unwrap();
    base.write("site/page.txt", "rebuilt site");
    wait_until("the rebuilt directory to be served", || {
        server.get("/page.txt").text() == "rebuilt site"
    });
}
