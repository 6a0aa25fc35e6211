//! `SimpleHttpHandler` answering several ranges (`multipart/byteranges`) and the
//! preconditions `If-Match` and `If-Unmodified-Since`: each part's bytes checked against
//! the file, through curl, Python's `http.client` and raw sockets; an exact
//! `Content-Length`, so an HTTP/1.1 connection carries on after a multipart answer; the
//! defences against range amplification (at most 16 ranges, overlapping ones merged); and
//! every path a part's bytes take: memory (the small-file cache), a read (a short range),
//! `sendfile` (a long one).

mod files_support;

use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use files_support::{
    curl, python, run_tool, serve, set_mtime, wait_until, KeepAlive, Response, Served, TempDir,
    MTIME_HTTP, MTIME_SECS,
};
use socketserver::files::SimpleHttpHandler;
use socketserver::http::{Configured, Version};

type Files11 = Configured<SimpleHttpHandler>;

/// Bytes that differ from their neighbours and from one MiB to the next, so a part taken
/// from the wrong place shows.
fn pattern(len: usize) -> Vec<u8> {
    (0..len as u64)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8 ^ (i >> 20) as u8)
        .collect()
}

const SMALL_LEN: usize = 4000;
const BIG_LEN: usize = 5 * 1024 * 1024 + 7;
const ALPHABET: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// `small.bin` (kept in memory once settled), `big.bin` (5 MiB, sent by `sendfile`),
/// `alphabet.txt`, and `digits.txt` with a known modification time.
struct Tree {
    dir: TempDir,
    small: Vec<u8>,
    big: Vec<u8>,
}

fn tree() -> Tree {
    let dir = TempDir::new();
    let small = pattern(SMALL_LEN);
    let big = pattern(BIG_LEN);
    dir.write("small.bin", &small);
    dir.write("big.bin", &big);
    dir.write("alphabet.txt", ALPHABET);
    let digits = dir.write("digits.txt", "0123456789");
    set_mtime(&digits, MTIME_SECS);
    Tree { dir, small, big }
}

/// An HTTP/1.1 server of `dir`, keeping small files in memory or (`cache` false) not.
fn serve11(dir: &Path, cache: bool) -> Served<Files11> {
    let mut files = SimpleHttpHandler::new(dir).unwrap();
    if !cache {
        files = files.cache_small_files(0);
    }
    serve(Configured::new(files).protocol_version(Version::HTTP_11))
}

/// `GET target` (or another method) with more header lines, on a kept-alive connection.
fn request(client: &mut KeepAlive, method: &str, target: &str, headers: &str) -> Response {
    client.request(&format!(
        "{method} {target} HTTP/1.1\r\nHost: t\r\n{headers}\r\n"
    ))
}

fn get_range(client: &mut KeepAlive, target: &str, range: &str) -> Response {
    request(client, "GET", target, &format!("Range: {range}\r\n"))
}

// ---------------------------------------------------------------------------------------
// Reading multipart/byteranges, strictly

/// One part of a `multipart/byteranges` body.
#[derive(Debug)]
struct Part {
    content_type: String,
    start: u64,
    end: u64,
    total: u64,
    bytes: Vec<u8>,
}

/// The boundary of a `multipart/byteranges` media type.
fn boundary(content_type: &str) -> &str {
    content_type
        .strip_prefix("multipart/byteranges; boundary=")
        .unwrap_or_else(|| panic!("not multipart/byteranges: {content_type:?}"))
}

/// The parts of a 206's multipart body. Panics unless the body is exactly delimiters,
/// part heads with `Content-Type` and `Content-Range`, the bytes each range promises, and
/// the closing delimiter: nothing missing, nothing extra.
fn parts(response: &Response) -> Vec<Part> {
    assert_eq!(response.status, 206, "{response:?}");
    let content_type = response.header("content-type").expect("a Content-Type");
    let delimiter = format!("\r\n--{}", boundary(content_type));
    let mut rest = &response.body[..];
    let mut parts = Vec::new();
    loop {
        rest = rest
            .strip_prefix(delimiter.as_bytes())
            .unwrap_or_else(|| panic!("no delimiter at {:?}", lossy(&rest[..rest.len().min(80)])));
        if rest == b"--\r\n" {
            return parts;
        }
        rest = rest
            .strip_prefix(b"\r\n")
            .expect("a CRLF after the delimiter");
        let end = files_support::find(rest, b"\r\n\r\n").expect("the end of a part head");
        let head = std::str::from_utf8(&rest[..end]).expect("a UTF-8 part head");
        rest = &rest[end + 4..];
        let mut part_type = None;
        let mut range = None;
        for line in head.split("\r\n") {
            let (name, value) = line.split_once(": ").expect("a header line");
            match name {
                "Content-Type" => part_type = Some(value.to_string()),
                "Content-Range" => range = Some(content_range(value)),
                _ => panic!("unexpected part header {line:?}"),
            }
        }
        let (start, end, total) = range.expect("a Content-Range in every part");
        let len = (end - start + 1) as usize;
        assert!(rest.len() >= len, "a part cut short");
        parts.push(Part {
            content_type: part_type.expect("a Content-Type in every part"),
            start,
            end,
            total,
            bytes: rest[..len].to_vec(),
        });
        rest = &rest[len..];
    }
}

/// `bytes start-end/total`.
fn content_range(value: &str) -> (u64, u64, u64) {
    let spec = value.strip_prefix("bytes ").expect("a bytes Content-Range");
    let (range, total) = spec.split_once('/').expect("a complete length");
    let (start, end) = range.split_once('-').expect("first-last");
    (
        start.parse().unwrap(),
        end.parse().unwrap(),
        total.parse().unwrap(),
    )
}

/// Checks a 206 holds exactly the parts `expected` (inclusive ranges, in order) of `file`,
/// each labelled with `media_type`.
fn assert_parts(response: &Response, file: &[u8], media_type: &str, expected: &[(u64, u64)]) {
    let parts = parts(response);
    let ranges: Vec<(u64, u64)> = parts.iter().map(|p| (p.start, p.end)).collect();
    assert_eq!(ranges, expected);
    for part in &parts {
        assert_eq!(part.content_type, media_type);
        assert_eq!(part.total, file.len() as u64);
        assert!(
            part.bytes == file[part.start as usize..=part.end as usize],
            "part {}-{} differs from the file",
            part.start,
            part.end
        );
    }
    assert_eq!(
        response.header("content-length"),
        Some(response.body.len().to_string().as_str())
    );
    assert!(response.header("content-range").is_none(), "{response:?}");
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

// ---------------------------------------------------------------------------------------
// Several ranges

#[test]
fn curl_gets_every_part_of_several_ranges() {
    let tree = tree();
    let server = serve11(tree.dir.path(), true);
    let response = curl(&["-r", "0-9,20-29,-5", &server.url("/small.bin")]);
    let tail = SMALL_LEN as u64 - 5;
    assert_parts(
        &response,
        &tree.small,
        "application/octet-stream",
        &[(0, 9), (20, 29), (tail, tail + 4)],
    );
    assert_eq!(response.header("accept-ranges"), Some("bytes"));
    assert!(response.header("etag").is_some());
    assert!(response.header("last-modified").is_some());

    let response = curl(&["-r", "0-9,20-29", &server.url("/alphabet.txt")]);
    assert_parts(
        &response,
        ALPHABET.as_bytes(),
        "text/plain; charset=utf-8",
        &[(0, 9), (20, 29)],
    );

    // Two transfers on one connection: the first body ended where its length said.
    let url = server.url("/big.bin");
    let (ok, stdout, stderr) = run_tool(
        "curl",
        &[
            "-sS",
            "--max-time",
            "10",
            "-r",
            "0-9,4000000-4100000",
            "-o",
            "/dev/null",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{num_connects} %{size_download}\n",
            &url,
            &url,
        ],
        None,
    );
    assert!(ok, "curl failed: {stderr}");
    let lines: Vec<String> = lossy(&stdout).lines().map(String::from).collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].starts_with("206 1 "), "{lines:?}");
    assert!(lines[1].starts_with("206 0 "), "not reused: {lines:?}");
    assert_eq!(lines[0][6..], lines[1][6..]);
}

#[test]
fn python_reads_the_parts_and_keeps_the_connection() {
    let tree = tree();
    let server = serve11(tree.dir.path(), true);
    let out = tree.dir.join("python-body.bin");
    let printed = python(
        "import http.client, sys, email, email.policy\n\
         c = http.client.HTTPConnection('127.0.0.1', int(sys.argv[1]), timeout=10)\n\
         c.request('GET', '/alphabet.txt', headers={'Range': 'bytes=0-2,10-12,-3'})\n\
         r = c.getresponse(); body = r.read(); sock = c.sock\n\
         ct = r.getheader('Content-Type')\n\
         m = email.message_from_bytes(b'Content-Type: ' + ct.encode() + b'\\r\\n\\r\\n' + body,\n\
                                      policy=email.policy.HTTP)\n\
         print(r.status, r.getheader('Content-Length') == str(len(body)), m.get_content_type(),\n\
               m.defects)\n\
         for p in m.iter_parts(): print(p.get_content_type(), p['Content-Range'], p.get_content())\n\
         c.request('GET', '/big.bin', headers={'Range': 'bytes=-100000,5-5,1000000-1199999'})\n\
         r = c.getresponse(); body = r.read(); open(sys.argv[2], 'wb').write(body)\n\
         print(r.status, r.getheader('Content-Length') == str(len(body)), c.sock is sock)\n\
         c.request('HEAD', '/alphabet.txt', headers={'Range': 'bytes=0-0,2-2'})\n\
         r = c.getresponse(); print(r.status, r.read(), r.getheader('Content-Length'))\n\
         c.request('GET', '/alphabet.txt')\n\
         r = c.getresponse(); print(r.status, r.read().decode(), c.sock is sock)\n",
        &[&server.port().to_string(), out.to_str().unwrap()],
    );
    let lines: Vec<&str> = printed.lines().collect();
    assert_eq!(
        lines[..4],
        [
            "206 True multipart/byteranges []",
            "text/plain bytes 0-2/52 abc",
            "text/plain bytes 10-12/52 klm",
            "text/plain bytes 49-51/52 XYZ",
        ],
        "{printed}"
    );
    assert_eq!(lines[4], "206 True True", "{printed}");
    let head_length = lines[5].strip_prefix("206 b'' ").expect(&printed);
    assert!(head_length.parse::<u64>().unwrap() > 2, "{printed}");
    assert_eq!(lines[6], format!("200 {ALPHABET} True"), "{printed}");
    assert_eq!(lines.len(), 7, "{printed}");

    // The bytes Python read, checked part by part.
    let body = fs::read(&out).unwrap();
    let big = BIG_LEN as u64;
    let response = Response {
        status: 206,
        reason: String::new(),
        headers: vec![(
            "Content-Type".into(),
            format!("multipart/byteranges; boundary={}", boundary_of(&body)),
        )],
        body,
    };
    let parts = parts(&response);
    let ranges: Vec<(u64, u64)> = parts.iter().map(|p| (p.start, p.end)).collect();
    assert_eq!(
        ranges,
        [(big - 100_000, big - 1), (5, 5), (1_000_000, 1_199_999)]
    );
    for part in parts {
        assert!(part.bytes == tree.big[part.start as usize..=part.end as usize]);
    }
}

/// The boundary on the first delimiter line of a multipart body.
fn boundary_of(body: &[u8]) -> String {
    let first = body.strip_prefix(b"\r\n--").expect("a first delimiter");
    let end = files_support::find(first, b"\r\n").expect("its line end");
    lossy(&first[..end])
}

#[test]
fn a_multipart_answer_keeps_the_connection_in_step() {
    let tree = tree();
    for cache in [true, false] {
        let server = serve11(tree.dir.path(), cache);
        let mut client = KeepAlive::connect(server.addr);
        let first = get_range(&mut client, "/digits.txt", "bytes=0-1,5-6,-1");
        assert_parts(
            &first,
            b"0123456789",
            "text/plain; charset=utf-8",
            &[(0, 1), (5, 6), (9, 9)],
        );
        let big = get_range(&mut client, "/big.bin", "bytes=0-99999,3000000-3999999");
        assert_parts(
            &big,
            &tree.big,
            "application/octet-stream",
            &[(0, 99_999), (3_000_000, 3_999_999)],
        );
        // The next answers on the same connection start where the multipart one ended.
        let single = get_range(&mut client, "/digits.txt", "bytes=3-4");
        assert_eq!((single.status, single.text().as_str()), (206, "34"));
        let whole = request(&mut client, "GET", "/digits.txt", "");
        assert_eq!((whole.status, whole.text().as_str()), (200, "0123456789"));
    }
}

#[test]
fn head_of_several_ranges_has_the_headers_of_get() {
    let tree = tree();
    let server = serve11(tree.dir.path(), true);
    let mut client = KeepAlive::connect(server.addr);
    for target in ["/digits.txt", "/big.bin"] {
        let range = "Range: bytes=0-1,5-6\r\n";
        let get = request(&mut client, "GET", target, range);
        let head = request(&mut client, "HEAD", target, range);
        assert_eq!(head.status, 206, "{target}");
        assert!(head.body.is_empty());
        // The same headers, the boundary too: it is made from the file's version.
        assert_eq!(head.stable_headers(), get.stable_headers(), "{target}");
        assert_eq!(boundary(head.header("content-type").unwrap()).len(), 32);
        assert_eq!(
            head.header("content-length"),
            Some(get.body.len().to_string().as_str())
        );
    }
    // Still in step after the HEADs.
    let after = request(&mut client, "GET", "/digits.txt", "");
    assert_eq!(after.text(), "0123456789");
}

#[test]
fn overlapping_and_adjacent_ranges_merge() {
    let tree = tree();
    let server = serve11(tree.dir.path(), true);
    let mut client = KeepAlive::connect(server.addr);
    // Merged into one: a plain 206 with a Content-Range.
    for (range, content_range, body) in [
        ("bytes=0-4,2-6", "bytes 0-6/10", "0123456"),
        ("bytes=0-4,5-6", "bytes 0-6/10", "0123456"),
        ("bytes=5-9,0-4", "bytes 0-9/10", "0123456789"),
        ("bytes=-3,8-,9-9", "bytes 7-9/10", "789"),
        ("bytes=0-,0-,0-,0-", "bytes 0-9/10", "0123456789"),
        ("bytes=3-3,3-3", "bytes 3-3/10", "3"),
    ] {
        let response = get_range(&mut client, "/digits.txt", range);
        assert_eq!(response.status, 206, "{range}");
        assert_eq!(
            response.header("content-range"),
            Some(content_range),
            "{range}"
        );
        assert_eq!(response.text(), body, "{range}");
        assert_eq!(
            response.header("content-type"),
            Some("text/plain; charset=utf-8")
        );
    }
    // Merged where they touch, apart where they do not.
    let response = get_range(&mut client, "/digits.txt", "bytes=0-1,2-3,6-7,7-8");
    assert_parts(
        &response,
        b"0123456789",
        "text/plain; charset=utf-8",
        &[(0, 3), (6, 8)],
    );
    // A body is never larger than the file and its part heads.
    let response = get_range(&mut client, "/big.bin", "bytes=0-,1-,2-,3-,4-,5-,6-,7-");
    assert_eq!(response.status, 206);
    assert_eq!(response.body.len(), BIG_LEN);
    assert!(response.body == tree.big);
}

#[test]
fn parts_go_in_the_order_asked() {
    let tree = tree();
    let server = serve11(tree.dir.path(), false);
    let mut client = KeepAlive::connect(server.addr);
    let response = get_range(
        &mut client,
        "/small.bin",
        "bytes=3000-3099,-10,0-9,1000-1000",
    );
    assert_parts(
        &response,
        &tree.small,
        "application/octet-stream",
        &[(3000, 3099), (3990, 3999), (0, 9), (1000, 1000)],
    );
    // A merged range goes where its first range was asked.
    let response = get_range(&mut client, "/small.bin", "bytes=500-599,10-19,0-9,550-700");
    assert_parts(
        &response,
        &tree.small,
        "application/octet-stream",
        &[(500, 700), (0, 19)],
    );
}

#[test]
fn more_than_sixteen_ranges_get_the_whole_file() {
    let tree = tree();
    let server = serve11(tree.dir.path(), true);
    let mut client = KeepAlive::connect(server.addr);
    let ranges = |n: u64| -> String {
        let list: Vec<String> = (0..n)
            .map(|i| format!("{}-{}", 10 * i, 10 * i + 4))
            .collect();
        format!("bytes={}", list.join(","))
    };
    let sixteen = get_range(&mut client, "/small.bin", &ranges(16));
    let expected: Vec<(u64, u64)> = (0..16).map(|i| (10 * i, 10 * i + 4)).collect();
    assert_parts(&sixteen, &tree.small, "application/octet-stream", &expected);
    for n in [17, 100, 1300] {
        let response = get_range(&mut client, "/small.bin", &ranges(n));
        assert_eq!(response.status, 200, "{n} ranges");
        assert!(response.body == tree.small, "{n} ranges");
        assert!(response.header("content-range").is_none());
    }
    // The Apache killer (CVE-2011-3192): "5-0,5-1,...", each range a part of its own,
    // and a response many times the file.
    let killer: Vec<String> = (0..1300).map(|i| format!("5-{i}")).collect();
    let killer = format!("bytes=0-,{}", killer.join(","));
    let response = get_range(&mut client, "/big.bin", &killer);
    assert_eq!(response.status, 200);
    assert_eq!(response.body.len(), BIG_LEN);
    // Sixteen ranges of its shape that follow the grammar ("5-0" does not): merged into one.
    let killer: Vec<String> = (5..20).map(|i| format!("5-{i}")).collect();
    let killer = format!("bytes=0-,{}", killer.join(","));
    let response = get_range(&mut client, "/big.bin", &killer);
    assert_eq!(response.status, 206);
    assert_eq!(
        response.header("content-range"),
        Some(format!("bytes 0-{}/{BIG_LEN}", BIG_LEN - 1).as_str())
    );
    assert_eq!(response.body.len(), BIG_LEN);
}

#[test]
fn an_unsatisfiable_set_gets_416() {
    let tree = tree();
    let server = serve11(tree.dir.path(), true);
    let mut client = KeepAlive::connect(server.addr);
    for range in ["bytes=10-,20-30", "bytes=-0,10-10", "bytes=10-,-0,,"] {
        let response = get_range(&mut client, "/digits.txt", range);
        assert_eq!(response.status, 416, "{range}");
        assert_eq!(response.header("content-range"), Some("bytes */10"));
        assert!(response.body.is_empty());
    }
    // The satisfiable ones of a set are sent, the others dropped.
    let response = get_range(&mut client, "/digits.txt", "bytes=50-60,1-2,-0,7-7");
    assert_parts(
        &response,
        b"0123456789",
        "text/plain; charset=utf-8",
        &[(1, 2), (7, 7)],
    );
    let response = get_range(&mut client, "/digits.txt", "bytes=50-60,1-2");
    assert_eq!(response.header("content-range"), Some("bytes 1-2/10"));
    assert_eq!(response.text(), "12");
}

#[test]
fn malformed_ranges_get_the_whole_file() {
    let tree = tree();
    let server = serve11(tree.dir.path(), true);
    let mut client = KeepAlive::connect(server.addr);
    for range in [
        "bytes=0-99999999999999999999999",
        "bytes=99999999999999999999999-",
        "bytes=-99999999999999999999999",
        "bytes=0-18446744073709551616",
        "bytes=0-1,2-18446744073709551616",
        "bytes=5-1",
        "bytes=0-1,5-1",
        "bytes= 0-1",
        "bytes =0-1",
        "bytes=0 -1",
        "bytes=0-1 2-3",
        "bytes=0-1;3-4",
        "bytes=-",
        "bytes=",
        "bytes=,,",
        "bytes=0x1-2",
        "bytes=+1-2",
        "items=0-1",
        "0-1",
    ] {
        let response = get_range(&mut client, "/digits.txt", range);
        assert_eq!(response.status, 200, "{range}");
        assert_eq!(response.body, b"0123456789", "{range}");
        assert!(response.header("content-range").is_none(), "{range}");
    }
    // Empty list elements are allowed.
    let response = get_range(&mut client, "/digits.txt", "bytes=0-1,,4-5, ,");
    assert_parts(
        &response,
        b"0123456789",
        "text/plain; charset=utf-8",
        &[(0, 1), (4, 5)],
    );
    // The largest u64 is a number like any other.
    let response = get_range(&mut client, "/digits.txt", "bytes=8-18446744073709551615");
    assert_eq!(response.header("content-range"), Some("bytes 8-9/10"));
    // Two Range fields are not one list.
    let response = request(
        &mut client,
        "GET",
        "/digits.txt",
        "Range: bytes=0-1\r\nRange: bytes=4-5\r\n",
    );
    assert_eq!(response.status, 200);
}

#[test]
fn a_big_file_sends_long_parts_by_sendfile_and_short_ones_by_read() {
    let tree = tree();
    let server = serve11(tree.dir.path(), true);
    let mut client = KeepAlive::connect(server.addr);
    let big = BIG_LEN as u64;
    // Longer than 16 KiB (sendfile) and shorter (read), at the start, deep in, at the end.
    let expected = [
        (0, 0),
        (1_048_570, 3_145_727),
        (4_000_000, 4_016_383),
        (4_100_000, 4_116_384),
        (big - 70_000, big - 1),
    ];
    let range = "bytes=0-0,1048570-3145727,4000000-4016383,4100000-4116384,-70000";
    for _ in 0..2 {
        let response = get_range(&mut client, "/big.bin", range);
        assert_parts(&response, &tree.big, "application/octet-stream", &expected);
    }
    // Over HTTP/1.0 too: the body is all there before the close.
    let response =
        server.raw(format!("GET /big.bin HTTP/1.0\r\nRange: {range}\r\n\r\n").as_bytes());
    assert_parts(&response, &tree.big, "application/octet-stream", &expected);
    // And through curl.
    let response = curl(&["-r", &range["bytes=".len()..], &server.url("/big.bin")]);
    assert_parts(&response, &tree.big, "application/octet-stream", &expected);
}

/// Waits until every file in `dir` was last changed more than two whole seconds ago: then
/// the cache keeps them (tests/files_cache.rs).
fn wait_until_settled(dir: &Path) {
    use std::os::unix::fs::MetadataExt;
    let latest = fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().metadata().unwrap().ctime())
        .max()
        .unwrap();
    let settled = UNIX_EPOCH + Duration::from_secs(latest as u64 + 2);
    wait_until("the files to settle", || SystemTime::now() >= settled);
}

#[test]
fn small_files_answer_alike_from_memory_and_from_disk() {
    let tree = tree();
    wait_until_settled(tree.dir.path());
    let cached = serve11(tree.dir.path(), true);
    let uncached = serve11(tree.dir.path(), false);
    let mut from_memory = KeepAlive::connect(cached.addr);
    let mut from_disk = KeepAlive::connect(uncached.addr);
    let expected = [(0, 9), (20, 29), (3990, 3999), (100, 2099)];
    let range = "bytes=0-9,20-29,-10,100-2099";
    let disk = get_range(&mut from_disk, "/small.bin", range);
    assert_parts(&disk, &tree.small, "application/octet-stream", &expected);
    // The first answer reads the file and keeps it, the second comes from memory.
    for _ in 0..2 {
        let memory = get_range(&mut from_memory, "/small.bin", range);
        assert_parts(&memory, &tree.small, "application/octet-stream", &expected);
        assert_eq!(memory.body.len(), disk.body.len());
        assert_eq!(memory.header("etag"), disk.header("etag"));
    }
    let memory = get_range(&mut from_memory, "/small.bin", "bytes=-1,0-0");
    assert_parts(
        &memory,
        &tree.small,
        "application/octet-stream",
        &[(3999, 3999), (0, 0)],
    );
}

// ---------------------------------------------------------------------------------------
// Preconditions

#[test]
fn if_match_that_fails_gets_412() {
    let tree = tree();
    let server = serve11(tree.dir.path(), true);
    let mut client = KeepAlive::connect(server.addr);
    let etag = request(&mut client, "GET", "/digits.txt", "")
        .header("etag")
        .unwrap()
        .to_string();
    let with = |client: &mut KeepAlive, method: &str, headers: &str| {
        request(client, method, "/digits.txt", headers)
    };
    for if_match in [
        "\"other\"".to_string(),
        format!("W/{etag}"),
        "\"a\", \"b\"".to_string(),
        format!("{etag}x"),
        etag.trim_matches('"').to_string(),
        format!("\"x,{}", &etag[1..]),
    ] {
        let headers = format!("If-Match: {if_match}\r\n");
        let response = with(&mut client, "GET", &headers);
        assert_eq!(response.status, 412, "{if_match}");
        assert!(response.header("content-range").is_none());
        let head = with(&mut client, "HEAD", &headers);
        assert_eq!(head.status, 412, "{if_match}");
        assert!(head.body.is_empty());
        // Before If-None-Match and Range are looked at.
        let headers = format!("{headers}If-None-Match: {etag}\r\nRange: bytes=0-1,3-4\r\n");
        assert_eq!(with(&mut client, "GET", &headers).status, 412);
    }
    for if_match in [
        etag.clone(),
        "*".to_string(),
        format!("\"other\", {etag}"),
        format!("\"a,b\",{etag}"),
    ] {
        let response = with(&mut client, "GET", &format!("If-Match: {if_match}\r\n"));
        assert_eq!(response.status, 200, "{if_match}");
        assert_eq!(response.body, b"0123456789");
        let headers = format!("If-Match: {if_match}\r\nRange: bytes=0-1,3-4\r\n");
        let response = with(&mut client, "GET", &headers);
        assert_parts(
            &response,
            b"0123456789",
            "text/plain; charset=utf-8",
            &[(0, 1), (3, 4)],
        );
    }
    // A missing file is 404 whatever the preconditions.
    let missing = request(&mut client, "GET", "/missing", "If-Match: *\r\n");
    assert_eq!(missing.status, 404);
    // Through curl.
    let header = "If-Match: \"other\"";
    let response = curl(&["-H", header, &server.url("/digits.txt")]);
    assert_eq!(response.status, 412);
    assert!(response.text().contains("412"), "{response:?}");
}

#[test]
fn if_unmodified_since_before_the_change_gets_412() {
    let tree = tree();
    let server = serve11(tree.dir.path(), true);
    let mut client = KeepAlive::connect(server.addr);
    let etag = request(&mut client, "GET", "/digits.txt", "")
        .header("etag")
        .unwrap()
        .to_string();
    let before = "Sun, 09 Sep 2001 01:46:39 GMT";
    let after = "Sun, 09 Sep 2001 01:46:41 GMT";
    let status = |client: &mut KeepAlive, headers: &str| {
        let response = request(client, "GET", "/digits.txt", headers);
        let head = request(client, "HEAD", "/digits.txt", headers);
        assert_eq!(head.status, response.status, "{headers}");
        response.status
    };
    assert_eq!(
        status(&mut client, &format!("If-Unmodified-Since: {before}\r\n")),
        412
    );
    assert_eq!(
        status(
            &mut client,
            "If-Unmodified-Since: Sunday, 09-Sep-01 01:46:39 GMT\r\n"
        ),
        412
    );
    assert_eq!(
        status(
            &mut client,
            &format!("If-Unmodified-Since: {MTIME_HTTP}\r\n")
        ),
        200
    );
    assert_eq!(
        status(&mut client, &format!("If-Unmodified-Since: {after}\r\n")),
        200
    );
    // Not a date, or two of them: ignored.
    assert_eq!(
        status(&mut client, "If-Unmodified-Since: yesterday\r\n"),
        200
    );
    assert_eq!(
        status(
            &mut client,
            &format!("If-Unmodified-Since: {before}\r\nIf-Unmodified-Since: {before}\r\n")
        ),
        200
    );
    // Ignored when If-Match is there: If-Match decides.
    assert_eq!(
        status(
            &mut client,
            &format!("If-Match: {etag}\r\nIf-Unmodified-Since: {before}\r\n")
        ),
        200
    );
    assert_eq!(
        status(
            &mut client,
            &format!("If-Match: \"other\"\r\nIf-Unmodified-Since: {after}\r\n")
        ),
        412
    );
    // It comes before If-Modified-Since and Range.
    assert_eq!(
        status(
            &mut client,
            &format!("If-Unmodified-Since: {before}\r\nIf-Modified-Since: {MTIME_HTTP}\r\n")
        ),
        412
    );
    assert_eq!(
        status(
            &mut client,
            &format!("If-Unmodified-Since: {before}\r\nRange: bytes=0-1\r\n")
        ),
        412
    );
}

#[test]
fn if_none_match_reads_tags_with_commas_whole() {
    let tree = tree();
    let server = serve11(tree.dir.path(), true);
    let mut client = KeepAlive::connect(server.addr);
    let etag = request(&mut client, "GET", "/digits.txt", "")
        .header("etag")
        .unwrap()
        .to_string();
    let status = |client: &mut KeepAlive, if_none_match: &str| {
        let headers = format!("If-None-Match: {if_none_match}\r\n");
        request(client, "GET", "/digits.txt", &headers).status
    };
    assert_eq!(status(&mut client, &format!("\"a,b\", {etag}")), 304);
    assert_eq!(status(&mut client, &format!("\"a,b\",W/{etag}")), 304);
    assert_eq!(
        status(&mut client, &format!("\"{},x\"", etag.trim_matches('"'))),
        200
    );
    assert_eq!(status(&mut client, "\"a,b\""), 200);
    // Split at its comma this would hold our tag; it is one malformed value, no match.
    assert_eq!(status(&mut client, &format!("\"a,{etag}")), 200);
}

#[test]
fn if_range_guards_several_ranges() {
    let tree = tree();
    let server = serve11(tree.dir.path(), true);
    let mut client = KeepAlive::connect(server.addr);
    let etag = request(&mut client, "GET", "/digits.txt", "")
        .header("etag")
        .unwrap()
        .to_string();
    let range = "Range: bytes=0-1,8-9\r\n";
    for if_range in [etag.as_str(), MTIME_HTTP] {
        let headers = format!("{range}If-Range: {if_range}\r\n");
        let response = request(&mut client, "GET", "/digits.txt", &headers);
        assert_parts(
            &response,
            b"0123456789",
            "text/plain; charset=utf-8",
            &[(0, 1), (8, 9)],
        );
    }
    let weak = format!("W/{etag}");
    for if_range in ["\"stale\"", weak.as_str(), "Sun, 09 Sep 2001 01:46:41 GMT"] {
        let headers = format!("{range}If-Range: {if_range}\r\n");
        let response = request(&mut client, "GET", "/digits.txt", &headers);
        assert_eq!(response.status, 200, "{if_range}");
        assert_eq!(response.body, b"0123456789");
    }
}
