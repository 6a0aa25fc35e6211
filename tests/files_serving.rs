//! `SimpleHttpHandler` serving files and directories: media types, validators, conditional
//! and range requests, HEAD, large files, directory redirects, index pages, listings and the
//! error statuses.

mod files_support;

use std::fs;
use std::io::{Read, Write};
use std::time::{Duration, UNIX_EPOCH};

use files_support::{
    connect, curl, read_head, read_to_eof, running_as_root, serve, set_mode, set_mtime, KeepAlive,
    Served, TempDir, MTIME_HTTP, MTIME_SECS,
};
use socketserver::files::SimpleHttpHandler;
use socketserver::http::{Configured, Version};

/// A tree with one file of each media type and `digits.txt` = `0123456789`.
fn media_tree() -> TempDir {
    let dir = TempDir::new();
    dir.write("page.html", "<!DOCTYPE html><title>t</title>");
    dir.write("style.css", "body { color: red }");
    dir.write("image.png", b"\x89PNG\r\n\x1a\n0000");
    dir.write("data.json", "{\"a\": 1}");
    dir.write("notes.txt", "notes\n");
    dir.write("blob.qqzzxx", "unknown");
    dir.write("no_extension", "none");
    dir.write("thing.weird", "custom");
    dir.write("THING.WEIRD", "custom upper");
    let digits = dir.write("digits.txt", "0123456789");
    set_mtime(&digits, MTIME_SECS);
    dir
}

fn serve_dir(dir: &TempDir) -> Served<SimpleHttpHandler> {
    serve(SimpleHttpHandler::new(dir.path()).unwrap())
}

#[test]
fn media_types_follow_the_extension() {
    let dir = media_tree();
    let server = serve(
        SimpleHttpHandler::new(dir.path())
            .unwrap()
            .extension("weird", "application/x-weird")
            .extension(".custom2", "text/x-two"),
    );
    for (target, expected) in [
        ("/page.html", "text/html; charset=utf-8"),
        ("/style.css", "text/css; charset=utf-8"),
        ("/image.png", "image/png"),
        ("/data.json", "application/json"),
        ("/notes.txt", "text/plain; charset=utf-8"),
        ("/blob.qqzzxx", "application/octet-stream"),
        ("/no_extension", "application/octet-stream"),
        ("/thing.weird", "application/x-weird"),
        // Extensions match case-insensitively.
        ("/THING.WEIRD", "application/x-weird"),
    ] {
        let response = server.get(target);
        assert_eq!(response.status, 200, "{target}");
        assert_eq!(response.header("content-type"), Some(expected), "{target}");
    }
    let handler = server.server.handler();
    assert_eq!(
        handler.guess_type("x.custom2".as_ref()),
        "text/x-two",
        "a leading dot in extension() is dropped"
    );
    assert_eq!(
        handler.guess_type("x.HTML".as_ref()),
        "text/html; charset=utf-8"
    );
}

#[test]
fn files_carry_length_and_validators() {
    let dir = media_tree();
    let server = serve_dir(&dir);
    let response = server.get("/digits.txt");
    assert_eq!(response.status, 200);
    assert_eq!(response.body, b"0123456789");
    assert_eq!(response.header("content-length"), Some("10"));
    assert_eq!(response.header("last-modified"), Some(MTIME_HTTP));
    assert_eq!(response.header("accept-ranges"), Some("bytes"));
    let etag = response.header("etag").expect("an ETag").to_string();
    assert!(
        etag.len() > 2 && etag.starts_with('"') && etag.ends_with('"'),
        "a strong, quoted entity tag: {etag}"
    );
    // The same file gives the same tag; a rewrite gives another.
    assert_eq!(
        server.get("/digits.txt").header("etag"),
        Some(etag.as_str())
    );
    dir.write("digits.txt", "0123456789abc");
    let changed = server.get("/digits.txt");
    assert_eq!(changed.body, b"0123456789abc");
    assert_eq!(changed.header("content-length"), Some("13"));
    assert_ne!(changed.header("etag"), Some(etag.as_str()));
    // Every file answer has a Date and the handler's Server name.
    assert!(changed.header("date").is_some());
    assert!(changed
        .header("server")
        .is_some_and(|s| s.starts_with("SimpleHTTP/")));
}

#[test]
fn if_modified_since() {
    let dir = media_tree();
    let server = serve_dir(&dir);
    let request = |date: &str| {
        server.raw(
            format!("GET /digits.txt HTTP/1.0\r\nIf-Modified-Since: {date}\r\n\r\n").as_bytes(),
        )
    };
    // The same date: 304, validators repeated, no body (the parser checks the body is empty).
    let response = request(MTIME_HTTP);
    assert_eq!(response.status, 304);
    assert!(response.body.is_empty());
    assert_eq!(response.header("last-modified"), Some(MTIME_HTTP));
    assert!(response.header("etag").is_some());
    // A later date: 304 too.
    assert_eq!(request("Sat, 01 Jan 2033 00:00:00 GMT").status, 304);
    // An older date: the file.
    let response = request("Sat, 08 Sep 2001 01:46:40 GMT");
    assert_eq!(response.status, 200);
    assert_eq!(response.body, b"0123456789");
    // One second before: the file.
    let response = request(&httpdate::fmt_http_date(
        UNIX_EPOCH + Duration::from_secs(MTIME_SECS - 1),
    ));
    assert_eq!(response.status, 200);
    // A date that does not parse is ignored.
    assert_eq!(request("yesterday").status, 200);
    // Through curl: -z sends If-Modified-Since.
    let response = curl(&["-z", MTIME_HTTP, &server.url("/digits.txt")]);
    assert_eq!(response.status, 304);
}

#[test]
fn if_none_match() {
    let dir = media_tree();
    let server = serve_dir(&dir);
    let etag = server
        .get("/digits.txt")
        .header("etag")
        .unwrap()
        .to_string();
    let request =
        |headers: &str| server.raw(format!("GET /digits.txt HTTP/1.0\r\n{headers}\r\n").as_bytes());
    let response = request(&format!("If-None-Match: {etag}\r\n"));
    assert_eq!(response.status, 304);
    assert!(response.body.is_empty());
    assert_eq!(response.header("etag"), Some(etag.as_str()));
    // In a list, and weak (If-None-Match compares weakly).
    assert_eq!(
        request(&format!("If-None-Match: \"other\", {etag}\r\n")).status,
        304
    );
    assert_eq!(request(&format!("If-None-Match: W/{etag}\r\n")).status, 304);
    assert_eq!(request("If-None-Match: *\r\n").status, 304);
    let response = request("If-None-Match: \"some-other-tag\"\r\n");
    assert_eq!(response.status, 200);
    assert_eq!(response.body, b"0123456789");
    // If-None-Match wins over If-Modified-Since.
    let response = request(&format!(
        "If-None-Match: \"some-other-tag\"\r\nIf-Modified-Since: {MTIME_HTTP}\r\n"
    ));
    assert_eq!(response.status, 200);
    // Through curl.
    let header = format!("If-None-Match: {etag}");
    assert_eq!(
        curl(&["-H", &header, &server.url("/digits.txt")]).status,
        304
    );
}

#[test]
fn ranges() {
    let dir = media_tree();
    let server = serve_dir(&dir);
    let range = |spec: &str| {
        server.raw(format!("GET /digits.txt HTTP/1.0\r\nRange: {spec}\r\n\r\n").as_bytes())
    };
    for (spec, body, content_range) in [
        ("bytes=0-4", "01234", "bytes 0-4/10"),
        ("bytes=5-", "56789", "bytes 5-9/10"),
        ("bytes=-3", "789", "bytes 7-9/10"),
        ("bytes=9-9", "9", "bytes 9-9/10"),
        ("bytes=8-100", "89", "bytes 8-9/10"),
        ("bytes=-100", "0123456789", "bytes 0-9/10"),
    ] {
        let response = range(spec);
        assert_eq!(response.status, 206, "{spec}");
        assert_eq!(response.text(), body, "{spec}");
        assert_eq!(
            response.header("content-range"),
            Some(content_range),
            "{spec}"
        );
        assert_eq!(
            response.header("content-length"),
            Some(body.len().to_string().as_str()),
            "{spec}"
        );
        assert_eq!(
            response.header("content-type"),
            Some("text/plain; charset=utf-8"),
            "{spec}"
        );
    }
    for spec in ["bytes=10-", "bytes=10-20", "bytes=-0", "bytes=100-200"] {
        let response = range(spec);
        assert_eq!(response.status, 416, "{spec}");
        assert_eq!(
            response.header("content-range"),
            Some("bytes */10"),
            "{spec}"
        );
        assert!(response.body.is_empty(), "{spec}");
    }
    // Malformed ranges and other units: the whole file (several ranges: files_ranges.rs).
    for spec in ["bytes=5-4", "items=0-1", "bytes=x-y"] {
        let response = range(spec);
        assert_eq!(response.status, 200, "{spec}");
        assert_eq!(response.body, b"0123456789", "{spec}");
        assert!(response.header("content-range").is_none(), "{spec}");
    }
    // Through curl: -r sends a Range.
    let response = curl(&["-r", "2-3", &server.url("/digits.txt")]);
    assert_eq!(response.status, 206);
    assert_eq!(response.text(), "23");
}

#[test]
fn if_range() {
    let dir = media_tree();
    let server = serve_dir(&dir);
    let etag = server
        .get("/digits.txt")
        .header("etag")
        .unwrap()
        .to_string();
    let request = |if_range: &str| {
        server.raw(
            format!("GET /digits.txt HTTP/1.0\r\nRange: bytes=0-4\r\nIf-Range: {if_range}\r\n\r\n")
                .as_bytes(),
        )
    };
    let response = request(&etag);
    assert_eq!(response.status, 206);
    assert_eq!(response.text(), "01234");
    let response = request("\"stale-tag\"");
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), "0123456789");
    // A weak tag never matches If-Range.
    assert_eq!(request(&format!("W/{etag}")).status, 200);
    // The exact Last-Modified date matches; another date does not.
    assert_eq!(request(MTIME_HTTP).status, 206);
    assert_eq!(request("Sat, 08 Sep 2001 01:46:40 GMT").status, 200);
}

#[test]
fn head_has_the_headers_of_get_and_no_body() {
    let dir = media_tree();
    let server = serve_dir(&dir);
    for target in ["/digits.txt", "/page.html", "/", "/missing"] {
        let get = server.get(target);
        let head = server.raw(format!("HEAD {target} HTTP/1.0\r\n\r\n").as_bytes());
        assert_eq!(head.status, get.status, "{target}");
        assert_eq!(head.stable_headers(), get.stable_headers(), "{target}");
        // `raw` refuses any byte after the head of a HEAD response; check it directly too.
        assert!(head.body.is_empty(), "{target}");
    }
    // HEAD with a range: the partial headers, no body.
    let head = server.raw(b"HEAD /digits.txt HTTP/1.0\r\nRange: bytes=0-4\r\n\r\n");
    assert_eq!(head.status, 206);
    assert_eq!(head.header("content-length"), Some("5"));
    assert!(head.body.is_empty());
    let response = curl(&["-I", &server.url("/digits.txt")]);
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-length"), Some("10"));
}

#[test]
fn a_large_file_is_streamed_whole() {
    let dir = TempDir::new();
    let len = 5 * 1024 * 1024 + 7;
    // Bytes that differ from their neighbours and from one MiB to the next.
    let data: Vec<u8> = (0..len as u64)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8 ^ (i >> 20) as u8)
        .collect();
    dir.write("big.bin", &data);
    let server = serve_dir(&dir);
    let response = server.get("/big.bin");
    assert_eq!(response.status, 200);
    assert_eq!(
        response.header("content-length"),
        Some(len.to_string().as_str())
    );
    assert_eq!(response.body.len(), len);
    assert!(
        response.body == data,
        "the 5 MiB body differs from the file"
    );
    // A range deep in the file.
    let start = 3 * 1024 * 1024 + 11;
    let end = start + 100_000;
    let response = server
        .raw(format!("GET /big.bin HTTP/1.0\r\nRange: bytes={start}-{end}\r\n\r\n").as_bytes());
    assert_eq!(response.status, 206);
    assert!(response.body == data[start..=end]);
    // And through curl, into a file.
    let out = dir.join("copy.bin");
    let out_arg = out.to_str().unwrap();
    let url = server.url("/big.bin");
    let (ok, stdout, stderr) = files_support::run_tool(
        "curl",
        &[
            "-sS",
            "--max-time",
            "10",
            "-o",
            out_arg,
            "-w",
            "%{http_code}",
            &url,
        ],
        None,
    );
    assert!(ok, "curl failed: {stderr}");
    assert_eq!(stdout, b"200");
    assert!(fs::read(&out).unwrap() == data, "curl's copy differs");
}

#[test]
fn directories_without_a_slash_redirect_keeping_the_query() {
    let dir = TempDir::new();
    dir.mkdir("dir");
    dir.mkdir("evil.com/dir");
    dir.mkdir("sp ace");
    let server = serve_dir(&dir);
    for (target, location) in [
        ("/dir", "/dir/"),
        ("/dir?x=1", "/dir/?x=1"),
        ("/dir?x=1&y=%2F", "/dir/?x=1&y=%2F"),
        ("/sp%20ace", "/sp%20ace/"),
        ("/evil.com", "/evil.com/"),
    ] {
        let response = server.get(target);
        assert_eq!(response.status, 301, "{target}");
        assert_eq!(response.header("location"), Some(location), "{target}");
        assert_eq!(response.header("content-length"), Some("0"), "{target}");
    }
    // However many slashes lead, the Location starts with exactly one: never a
    // protocol-relative URL to another host.
    for target in [
        "//evil.com",
        "//evil.com/dir",
        "///evil.com/dir",
        "//evil.com/dir?x=1",
        "/%2Fevil.com/dir",
        "/%2F%2Fevil.com",
        "/.//evil.com",
        "/./evil.com",
        "/%5Cevil.com",
        "/\\evil.com",
        "/%09/evil.com",
    ] {
        let response = server.get(target);
        let location = response.header("location").unwrap_or("");
        assert!(
            !location.starts_with("//") && !location.starts_with("/\\"),
            "{target} redirected to {location:?}"
        );
        if response.status == 301 {
            assert!(location.starts_with('/'), "{target} -> {location:?}");
        }
    }
    let response =
        server.raw(b"GET http://x//evil.com/dir HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let location = response.header("location").unwrap_or("");
    assert!(!location.starts_with("//"), "{location:?}");
    assert_eq!(
        server.get("//evil.com/dir").header("location"),
        Some("/evil.com/dir/")
    );
}

#[test]
fn index_pages_and_listings() {
    let dir = TempDir::new();
    dir.write("html/index.html", "the html index");
    dir.write("html/index.htm", "not this one");
    dir.write("htm/index.htm", "the htm index");
    dir.write("plain/other.txt", "x");
    dir.write("custom/start.txt", "custom index");
    dir.write("custom/index.html", "not the custom one");
    let server = serve_dir(&dir);
    let response = server.get("/html/");
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), "the html index");
    assert_eq!(
        response.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let response = server.get("/htm/");
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), "the htm index");
    let response = server.get("/plain/");
    assert_eq!(response.status, 200);
    assert!(response.text().contains("Directory listing for /plain/"));
    assert!(response.text().contains("other.txt"));
    // A query does not change the answer for a directory.
    assert_eq!(server.get("/htm/?x=1").text(), "the htm index");
    // Conditional requests apply to an index page like to any file.
    let etag = server.get("/html/").header("etag").unwrap().to_string();
    let response =
        server.raw(format!("GET /html/ HTTP/1.0\r\nIf-None-Match: {etag}\r\n\r\n").as_bytes());
    assert_eq!(response.status, 304);

    let custom = serve(
        SimpleHttpHandler::new(dir.path())
            .unwrap()
            .index_pages(["start.txt"]),
    );
    let response = custom.get("/custom/");
    assert_eq!(response.text(), "custom index");
    assert_eq!(
        response.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    // index.html is no longer an index page there: /html/ is listed.
    assert!(custom
        .get("/html/")
        .text()
        .contains("Directory listing for /html/"));
}

/// The `href` values of a listing, in order.
fn hrefs(page: &str) -> Vec<String> {
    page.split("<a href=\"")
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap().to_string())
        .collect()
}

/// The link texts of a listing, in order.
fn link_texts(page: &str) -> Vec<String> {
    page.split("<a href=\"")
        .skip(1)
        .map(|rest| {
            let text = rest.split_once("\">").unwrap().1;
            text.split("</a>").next().unwrap().to_string()
        })
        .collect()
}

#[test]
fn listings_are_sorted_escaped_and_encoded() {
    let dir = TempDir::new();
    dir.write("banana.txt", "b");
    dir.write("Apple.txt", "a");
    dir.write("cherry.txt", "c");
    dir.mkdir("Bdir");
    dir.write("zeta", "z");
    // No file name can hold `/`, so `<script>alert(1)</script>.txt` is a directory
    // `<script>alert(1)<` holding `script>.txt`: both levels are listed.
    dir.write("<script>alert(1)</script>.txt", "nested script");
    dir.write("<img src=x onerror=alert(1)>.txt", "img");
    dir.write("javascript:alert(1)", "js");
    dir.write("a\"b&c'd.txt", "quotes");
    dir.write("100% sure?#.txt", "percent");
    dir.write("中文.txt", "unicode");
    let server = serve_dir(&dir);
    let response = server.get("/");
    assert_eq!(response.status, 200);
    assert_eq!(
        response.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(
        response.header("content-length"),
        Some(response.body.len().to_string().as_str())
    );
    let page = response.text();
    assert!(!page.contains("<script"), "{page}");
    assert!(!page.contains("<img"), "{page}");
    assert!(!page.contains("href=\"javascript:"), "{page}");
    assert!(
        page.contains("&lt;img src=x onerror=alert(1)&gt;.txt"),
        "{page}"
    );
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/"), "{page}");
    assert!(page.contains(">javascript:alert(1)</a>"), "{page}");
    assert!(page.contains(">a&quot;b&amp;c&#x27;d.txt</a>"), "{page}");

    let texts = link_texts(&page);
    assert_eq!(
        texts,
        [
            "100% sure?#.txt",
            "&lt;img src=x onerror=alert(1)&gt;.txt",
            "&lt;script&gt;alert(1)&lt;/",
            "a&quot;b&amp;c&#x27;d.txt",
            "Apple.txt",
            "banana.txt",
            "Bdir/",
            "cherry.txt",
            "javascript:alert(1)",
            "zeta",
            "中文.txt",
        ],
        "sorted case-insensitively, directories with a slash"
    );
    let links = hrefs(&page);
    for link in &links {
        assert!(
            link.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~/%".contains(&b)),
            "href not fully percent-encoded: {link}"
        );
    }
    assert!(
        links.contains(&"javascript%3Aalert%281%29".to_string()),
        "{links:?}"
    );
    assert!(links.contains(&"Bdir/".to_string()), "{links:?}");
    assert!(
        links.contains(&"%3Cscript%3Ealert%281%29%3C/".to_string()),
        "{links:?}"
    );
    assert!(
        links.contains(&"100%25%20sure%3F%23.txt".to_string()),
        "{links:?}"
    );
    assert!(
        links.contains(&"%E4%B8%AD%E6%96%87.txt".to_string()),
        "{links:?}"
    );

    // Every link leads back to what it names.
    for link in &links {
        let response = server.get(&format!("/{link}"));
        assert_eq!(response.status, 200, "/{link}");
    }
    assert_eq!(server.get("/javascript%3Aalert%281%29").text(), "js");
    assert_eq!(server.get("/100%25%20sure%3F%23.txt").text(), "percent");

    // The nested level: the title (the decoded path) is escaped too.
    let page = server.get("/%3Cscript%3Ealert%281%29%3C/").text();
    assert!(!page.contains("<script"), "{page}");
    assert!(
        page.contains("Directory listing for /&lt;script&gt;alert(1)&lt;/"),
        "{page}"
    );
    assert!(page.contains(">script&gt;.txt</a>"), "{page}");
    assert!(page.contains("href=\"script%3E.txt\""), "{page}");
    let response = server.get("/%3Cscript%3Ealert%281%29%3C/script%3E.txt");
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), "nested script");
    // An encoded slash is never a separator: no file has a slash in its name.
    let response = server.get("/%3Cscript%3Ealert%281%29%3C%2Fscript%3E.txt");
    assert_eq!(response.status, 404);
}

#[test]
fn missing_files_answer_a_404_page() {
    let dir = media_tree();
    let server = serve_dir(&dir);
    for target in ["/missing.txt", "/no/such/dir/", "/digits.txt/child"] {
        let response = server.get(target);
        assert_eq!(response.status, 404, "{target}");
        assert_eq!(
            response.header("content-type"),
            Some("text/html;charset=utf-8"),
            "{target}"
        );
        let page = response.text();
        assert!(page.contains("404"), "{target}: {page}");
        assert!(page.contains("File not found"), "{target}: {page}");
    }
    // The requested name is not echoed unescaped into the page.
    let page = server.get("/%3Cscript%3E").text();
    assert!(!page.contains("<script>"), "{page}");
}

#[test]
fn a_trailing_slash_on_a_file_is_404() {
    let dir = media_tree();
    let server = serve_dir(&dir);
    assert_eq!(server.get("/digits.txt").status, 200);
    let response = server.get("/digits.txt/");
    assert_eq!(response.status, 404);
    assert!(!response.text().contains("0123456789"));
}

#[test]
fn unreadable_files_are_403() {
    let dir = media_tree();
    let locked = dir.write("locked.txt", "locked contents");
    set_mode(&locked, 0o000);
    let locked_dir = dir.mkdir("locked_dir");
    dir.write("locked_dir/inside.txt", "x");
    set_mode(&locked_dir, 0o000);
    let server = serve_dir(&dir);
    let file = server.get("/locked.txt");
    let listing = server.get("/locked_dir/");
    if running_as_root() {
        println!(
            "note: running as root, where permissions do not apply: the 403 for an unreadable \
             file is not checked (got {} and {})",
            file.status, listing.status
        );
        return;
    }
    assert_eq!(file.status, 403, "{}", file.text());
    assert!(!file.text().contains("locked contents"));
    assert_eq!(listing.status, 403, "{}", listing.text());
}

#[test]
fn every_answer_keeps_an_http11_connection_usable() {
    let dir = media_tree();
    dir.mkdir("sub");
    let files = SimpleHttpHandler::new(dir.path()).unwrap();
    let server = serve(Configured::new(files).protocol_version(Version::HTTP_11));
    let mut client = KeepAlive::connect(server.addr);
    let get = |client: &mut KeepAlive, extra: &str| {
        client.request(&format!(
            "GET /digits.txt HTTP/1.1\r\nHost: t\r\n{extra}\r\n"
        ))
    };
    let full = get(&mut client, "");
    assert_eq!(full.status, 200);
    assert_eq!(full.body, b"0123456789");
    let etag = full.header("etag").unwrap().to_string();
    assert_eq!(
        get(&mut client, &format!("If-None-Match: {etag}\r\n")).status,
        304
    );
    assert_eq!(get(&mut client, "Range: bytes=20-\r\n").status, 416);
    let partial = get(&mut client, "Range: bytes=1-2\r\n");
    assert_eq!((partial.status, partial.text().as_str()), (206, "12"));
    let head = client.request("HEAD /digits.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(head.status, 200);
    let redirect = client.request("GET /sub HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(redirect.status, 301);
    let missing = client.request("GET /missing HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(missing.status, 404);
    let listing = client.request("GET /sub/ HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(listing.status, 200);
    // Still in step: the last answer is the file itself.
    assert_eq!(get(&mut client, "").body, b"0123456789");
}

#[test]
fn python_http_client_reads_a_file_and_a_range() {
    let dir = media_tree();
    let server = serve_dir(&dir);
    let out = files_support::python(
        "import http.client, sys\n\
         c = http.client.HTTPConnection('127.0.0.1', int(sys.argv[1]), timeout=10)\n\
         c.request('GET', '/digits.txt')\n\
         r = c.getresponse(); print(r.status, r.getheader('Content-Type'), r.read().decode())\n\
         c = http.client.HTTPConnection('127.0.0.1', int(sys.argv[1]), timeout=10)\n\
         c.request('GET', '/digits.txt', headers={'Range': 'bytes=-2'})\n\
         r = c.getresponse(); print(r.status, r.getheader('Content-Range'), r.read().decode())\n",
        &[&server.port().to_string()],
    );
    assert_eq!(
        out,
        "200 text/plain; charset=utf-8 0123456789\n206 bytes 8-9/10 89\n"
    );
}

#[test]
fn a_slow_reader_gets_the_whole_file() {
    // The server writes into a socket the client drains late: correctness, not memory.
    let dir = TempDir::new();
    let data: Vec<u8> = (0..2_000_000u32).map(|i| (i % 251) as u8).collect();
    dir.write("f.bin", &data);
    let server = serve_dir(&dir);
    let mut stream = connect(server.addr);
    stream.write_all(b"GET /f.bin HTTP/1.0\r\n\r\n").unwrap();
    let mut buf = Vec::new();
    let body_start = read_head(&mut stream, &mut buf);
    let mut first = [0u8; 1];
    // Read a byte at a time for a while, then the rest.
    let mut body = buf[body_start..].to_vec();
    for _ in 0..1000 {
        if stream.read(&mut first).unwrap() == 1 {
            body.push(first[0]);
        }
    }
    body.extend(read_to_eof(&mut stream));
    assert!(body == data);
}

#[test]
fn a_single_page_app_gets_its_index_for_any_path_that_names_nothing() {
    let dir = TempDir::new();
    dir.write("index.html", "<p>app</p>");
    dir.write("main.js", "js");
    let server = serve(SimpleHttpHandler::new(dir.path()).unwrap().spa(true));
    for route in ["/users/7", "/deep/route/here", "/missing.txt"] {
        let response = server.get(route);
        assert_eq!(response.status, 200, "{route}");
        assert_eq!(response.text(), "<p>app</p>", "{route}");
    }
    assert_eq!(server.get("/main.js").text(), "js");
    let head = server.raw(b"HEAD /users/7 HTTP/1.0\r\n\r\n");
    assert_eq!((head.status, head.body.len()), (200, 0));
    assert_eq!(head.header("content-length"), Some("10"));
}

#[test]
fn a_custom_404_page_answers_what_names_nothing() {
    let dir = TempDir::new();
    dir.write("a.txt", "a");
    let page = dir.write("404.html", "<p>gone fishing</p>");
    let files = SimpleHttpHandler::new(dir.path())
        .unwrap()
        .not_found_page(&page)
        .unwrap();
    let server = serve(files);
    let missing = server.get("/nothing");
    assert_eq!(missing.status, 404);
    assert_eq!(
        missing.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(missing.text(), "<p>gone fishing</p>");
    // Only for 404: other errors keep their page.
    assert_eq!(server.get("/a%00b").status, 400);
    assert_ne!(server.get("/a%00b").text(), "<p>gone fishing</p>");
    assert!(SimpleHttpHandler::new(dir.path())
        .unwrap()
        .not_found_page(dir.path().join("no-such.html"))
        .is_err());
}
