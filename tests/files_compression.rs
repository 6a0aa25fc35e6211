//! `SimpleHttpHandler` with compression: precompressed `.br`, `.zst`, `.gz` files chosen by
//! `Accept-Encoding` weights, stale ones ignored; gzip and brotli on the fly for text within
//! the size bounds, not for images or tiny or huge files; `Range` answered from the file
//! itself; an `ETag` per representation, with 304 and 412 evaluated against it; `Vary`;
//! HEAD like GET. Checked with curl `--compressed`, Python's `http.client` with its
//! `gzip` module, and brotli decoded here with the crate the server uses.

mod files_support;

use std::collections::HashSet;
use std::fs;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use files_support::{
    python, run_tool, serve, set_mtime, wait_until, Response, Served, TempDir, MTIME_SECS,
};
use socketserver::files::SimpleHttpHandler;
use socketserver::http::compress::{self, Compression, Encoding};
use socketserver::http::{HttpHandler, HttpRequest, TestRequest};
use socketserver::HandlerResult;

/// Text of `len` bytes that compresses well but not trivially.
fn text(len: usize) -> String {
    let mut out = String::with_capacity(len + 64);
    let mut i = 0u64;
    while out.len() < len {
        out.push_str(&format!(
            "line {i}: the quick brown fox {}\n",
            i * 7919 % 1000
        ));
        i += 1;
    }
    out.truncate(len);
    out
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .expect("a gzip body");
    out
}

fn unbrotli(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    brotli::Decompressor::new(bytes, 4096)
        .read_to_end(&mut out)
        .expect("a brotli body");
    out
}

fn compressing(dir: &TempDir) -> Served<SimpleHttpHandler> {
    let handler = SimpleHttpHandler::new(dir.path()).unwrap();
    serve(handler.compression(Compression::new()))
}

/// `method target` with `headers` (each ending in CRLF), HTTP/1.0.
fn request(
    served: &Served<SimpleHttpHandler>,
    method: &str,
    target: &str,
    headers: &str,
) -> Response {
    served.raw(format!("{method} {target} HTTP/1.0\r\n{headers}\r\n").as_bytes())
}

fn get_accepting(served: &Served<SimpleHttpHandler>, target: &str, accept: &str) -> Response {
    request(
        served,
        "GET",
        target,
        &format!("Accept-Encoding: {accept}\r\n"),
    )
}

/// `page.txt` (117 KB of text), its precompressed forms with distinct bodies, written
/// after it, and `old.txt` with a stale `.br`.
struct Tree {
    dir: TempDir,
    page: String,
}

fn tree() -> Tree {
    let dir = TempDir::new();
    let page = text(117 * 1024);
    dir.write("page.txt", &page);
    set_mtime(&dir.join("page.txt"), MTIME_SECS);
    for (suffix, body) in [(".br", "BROTLI"), (".zst", "ZSTD"), (".gz", "GZIP")] {
        let path = dir.write(&format!("side.txt{suffix}"), body);
        set_mtime(&path, MTIME_SECS + 10);
    }
    dir.write("side.txt", text(4000));
    set_mtime(&dir.join("side.txt"), MTIME_SECS);
    dir.write("old.txt", text(4000));
    set_mtime(&dir.join("old.txt"), MTIME_SECS);
    let stale = dir.write("old.txt.br", "STALE");
    set_mtime(&stale, MTIME_SECS - 1);
    Tree { dir, page }
}

#[test]
fn curl_compressed_gets_the_file_back() {
    let tree = tree();
    let served = compressing(&tree.dir);
    let out = tree.dir.join("out.txt");
    let head = tree.dir.join("head.txt");
    let (ok, _, stderr) = run_tool(
        "curl",
        &[
            "-sS",
            "--max-time",
            "10",
            "--compressed",
            "-o",
            out.to_str().unwrap(),
            "-D",
            head.to_str().unwrap(),
            &served.url("/page.txt"),
        ],
        None,
    );
    assert!(ok, "curl failed: {stderr}");
    let head = fs::read_to_string(head).unwrap().to_ascii_lowercase();
    // curl asks for deflate, gzip, br and zstd: brotli, compressed here, wins.
    assert!(head.contains("content-encoding: br\r\n"), "{head}");
    assert!(head.contains("vary: accept-encoding\r\n"), "{head}");
    assert_eq!(fs::read_to_string(out).unwrap(), tree.page);
}

#[test]
fn curl_decodes_a_real_zstd_file_served_beside_the_original() {
    let tree = tree();
    let source = tree.dir.join("page.txt");
    let (ok, _, stderr) = run_tool("zstd", &["-q", "-k", source.to_str().unwrap()], None);
    assert!(ok, "zstd failed: {stderr}");
    let served = compressing(&tree.dir);
    let out = tree.dir.join("out.txt");
    let url = served.url("/page.txt");
    let args = [
        "-sS",
        "--max-time",
        "10",
        "--compressed",
        "-o",
        out.to_str().unwrap(),
    ];
    let mut all = args.to_vec();
    all.extend(["-H", "Accept-Encoding: zstd, gzip;q=0.5", &url]);
    let (ok, _, stderr) = run_tool("curl", &all, None);
    assert!(ok, "curl failed: {stderr}");
    assert_eq!(fs::read_to_string(&out).unwrap(), tree.page);
    let response = get_accepting(&served, "/page.txt", "zstd, gzip;q=0.5");
    assert_eq!(response.header("content-encoding"), Some("zstd"));
    assert_eq!(
        response.body,
        fs::read(tree.dir.join("page.txt.zst")).unwrap()
    );
}

#[test]
fn zstd_made_on_the_fly_decodes_with_the_zstd_tool() {
    let tree = tree();
    let served = compressing(&tree.dir);
    let response = get_accepting(&served, "/page.txt", "zstd, gzip;q=0.5");
    assert_eq!(response.header("content-encoding"), Some("zstd"));
    assert_eq!(response.header("vary"), Some("Accept-Encoding"));
    assert!(response.body.len() < tree.page.len() / 2);
    let encoded = tree.dir.join("fly.zst");
    fs::write(&encoded, &response.body).unwrap();
    let (ok, stdout, stderr) =
        run_tool("zstd", &["-q", "-d", "-c", encoded.to_str().unwrap()], None);
    assert!(ok, "zstd -d failed: {stderr}");
    assert_eq!(String::from_utf8(stdout).unwrap(), tree.page);
}

#[test]
fn python_decompresses_gzip_to_the_file() {
    let tree = tree();
    let served = compressing(&tree.dir);
    let code = r#"
import gzip, hashlib, http.client, sys, zlib
conn = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=10)
conn.request("GET", "/page.txt", headers={"Accept-Encoding": "gzip;q=1.0, identity;q=0.5"})
r = conn.getresponse()
body = r.read()
whole = gzip.decompress(body)
streamed = zlib.decompressobj(wbits=31).decompress(body)
assert whole == streamed
print(r.status, r.getheader("Content-Encoding"), r.getheader("Vary"),
      int(r.getheader("Content-Length")) == len(body), hashlib.sha256(whole).hexdigest())
"#;
    let printed = python(code, &[&served.port().to_string()]);
    let digest = sha256_hex(tree.page.as_bytes());
    assert_eq!(
        printed.trim(),
        format!("200 gzip Accept-Encoding True {digest}")
    );
}

/// The SHA-256 of `bytes`, by `sha256sum`.
fn sha256_hex(bytes: &[u8]) -> String {
    let (ok, out, _) = run_tool("sha256sum", &[], Some(bytes));
    assert!(ok);
    String::from_utf8(out).unwrap()[..64].to_string()
}

#[test]
fn brotli_on_the_fly_decodes_to_the_file() {
    let tree = tree();
    let served = compressing(&tree.dir);
    let response = get_accepting(&served, "/page.txt", "br");
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-encoding"), Some("br"));
    assert_eq!(
        response.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert!(
        response.body.len() < tree.page.len() / 3,
        "{}",
        response.body.len()
    );
    assert_eq!(unbrotli(&response.body), tree.page.as_bytes());
    let gzip = get_accepting(&served, "/page.txt", "gzip");
    assert_eq!(gzip.header("content-encoding"), Some("gzip"));
    assert_eq!(gunzip(&gzip.body), tree.page.as_bytes());
}

#[test]
fn precompressed_files_are_chosen_by_weight() {
    let tree = tree();
    let served = compressing(&tree.dir);
    let cases = [
        ("gzip, deflate, br, zstd", "BROTLI"),
        ("gzip, zstd", "ZSTD"),
        ("gzip;q=1, br;q=0.5, zstd;q=0.9", "GZIP"),
        ("br;q=0, *", "ZSTD"),
        ("BR ; Q=0.2 , GZip;q=0.1", "BROTLI"),
        ("x-gzip", "GZIP"),
    ];
    for (accept, body) in cases {
        let response = get_accepting(&served, "/side.txt", accept);
        assert_eq!(response.status, 200, "{accept}");
        assert_eq!(response.text(), body, "{accept}");
        let encoding = match body {
            "BROTLI" => "br",
            "ZSTD" => "zstd",
            _ => "gzip",
        };
        assert_eq!(
            response.header("content-encoding"),
            Some(encoding),
            "{accept}"
        );
        assert_eq!(
            response.header("content-type"),
            Some("text/plain; charset=utf-8")
        );
        assert_eq!(response.header("vary"), Some("Accept-Encoding"));
        assert_eq!(
            response.header("content-length"),
            Some(&*body.len().to_string())
        );
    }
    // Identity, asked for or left as the only choice; a malformed header means identity.
    let plain = fs::read(tree.dir.join("side.txt")).unwrap();
    for accept in [
        "identity",
        "gzip;q=0.5, identity",
        "br;q=0, gzip;q=0, zstd;q=0",
        "gzip;q=2, br",
        "deflate",
    ] {
        let response = get_accepting(&served, "/side.txt", accept);
        assert_eq!(response.body, plain, "{accept}");
        assert_eq!(response.header("content-encoding"), None, "{accept}");
        assert_eq!(response.header("vary"), Some("Accept-Encoding"), "{accept}");
    }
    let response = served.get("/side.txt");
    assert_eq!(response.body, plain);
    assert_eq!(response.header("vary"), Some("Accept-Encoding"));
}

#[test]
fn a_stale_precompressed_file_is_ignored() {
    let tree = tree();
    let plain = fs::read(tree.dir.join("old.txt")).unwrap();
    // Compressed here instead of the stale file.
    let served = compressing(&tree.dir);
    let response = get_accepting(&served, "/old.txt", "br");
    assert_eq!(response.header("content-encoding"), Some("br"));
    assert_eq!(unbrotli(&response.body), plain);
    // Without compression on the fly, the file as it is.
    let handler = SimpleHttpHandler::new(tree.dir.path()).unwrap();
    let served = serve(handler.compression(Compression::new().on_the_fly(false)));
    let response = get_accepting(&served, "/old.txt", "br");
    assert_eq!(response.header("content-encoding"), None);
    assert_eq!(response.body, plain);
    assert_eq!(response.header("vary"), None, "nothing could be coded");
    let response = get_accepting(&served, "/side.txt", "gzip");
    assert_eq!(response.text(), "GZIP", "fresh ones still are");
}

#[test]
fn a_range_gets_the_file_itself() {
    let tree = tree();
    let served = compressing(&tree.dir);
    for target in ["/page.txt", "/side.txt"] {
        let response = request(
            &served,
            "GET",
            target,
            "Accept-Encoding: gzip, br, zstd\r\nRange: bytes=5-14\r\n",
        );
        assert_eq!(response.status, 206, "{target}");
        assert_eq!(response.header("content-encoding"), None);
        assert_eq!(response.header("vary"), Some("Accept-Encoding"));
        let plain = fs::read(tree.dir.join(&target[1..])).unwrap();
        assert_eq!(response.body, plain[5..15]);
    }
}

#[test]
fn each_representation_has_its_own_etag_and_304() {
    let tree = tree();
    let served = compressing(&tree.dir);
    let mut tags = HashSet::new();
    for (target, accept) in [
        ("/page.txt", "identity"),
        ("/page.txt", "gzip"),
        ("/page.txt", "br"),
        ("/side.txt", "identity"),
        ("/side.txt", "gzip"),
        ("/side.txt", "br"),
        ("/side.txt", "zstd"),
    ] {
        let response = get_accepting(&served, target, accept);
        let tag = response.header("etag").expect("an ETag").to_string();
        assert!(tag.starts_with('"') && tag.ends_with('"'), "{tag}");
        assert!(tags.insert(tag.clone()), "{tag} twice");
        // Its own tag: 304, with the tag and Vary.
        let again = request(
            &served,
            "GET",
            target,
            &format!("Accept-Encoding: {accept}\r\nIf-None-Match: {tag}\r\n"),
        );
        assert_eq!(again.status, 304, "{target} {accept}");
        assert_eq!(again.header("etag"), Some(&*tag));
        assert_eq!(again.header("vary"), Some("Accept-Encoding"));
        // The tag of another representation: the one chosen, whole.
        let other = if accept == "identity" {
            "gzip"
        } else {
            "identity"
        };
        let other = request(
            &served,
            "GET",
            target,
            &format!("Accept-Encoding: {other}\r\nIf-None-Match: {tag}\r\n"),
        );
        assert_eq!(other.status, 200, "{target} {accept}");
        assert_ne!(other.header("etag"), Some(&*tag));
        // If-Match is against the chosen representation too.
        let matched = request(
            &served,
            "GET",
            target,
            &format!("Accept-Encoding: {accept}\r\nIf-Match: {tag}\r\n"),
        );
        assert_eq!(matched.status, 200);
    }
    let identity_tag = get_accepting(&served, "/page.txt", "identity");
    let identity_tag = identity_tag.header("etag").unwrap();
    let refused = request(
        &served,
        "GET",
        "/page.txt",
        &format!("Accept-Encoding: gzip\r\nIf-Match: {identity_tag}\r\n"),
    );
    assert_eq!(refused.status, 412);
    // On the fly, the same bytes every time under the same tag.
    let first = get_accepting(&served, "/page.txt", "gzip");
    let second = get_accepting(&served, "/page.txt", "gzip");
    assert_eq!(first.body, second.body);
    assert_eq!(first.header("etag"), second.header("etag"));
}

#[test]
fn head_gets_the_headers_of_get() {
    let tree = tree();
    let served = compressing(&tree.dir);
    for (target, accept) in [
        ("/page.txt", "gzip"),
        ("/page.txt", "br"),
        ("/page.txt", "identity"),
        ("/side.txt", "zstd"),
    ] {
        let headers = format!("Accept-Encoding: {accept}\r\n");
        let get = request(&served, "GET", target, &headers);
        let head = request(&served, "HEAD", target, &headers);
        assert_eq!(head.status, 200);
        assert!(head.body.is_empty());
        assert_eq!(
            get.stable_headers(),
            head.stable_headers(),
            "{target} {accept}"
        );
    }
}

#[test]
fn small_huge_and_binary_files_are_sent_as_they_are() {
    let dir = TempDir::new();
    dir.write("tiny.txt", text(1000));
    dir.write("edge.txt", text(1024));
    dir.write("huge.txt", text(3 * 1024 * 1024));
    dir.write("photo.png", text(50_000));
    dir.write("data.json", text(50_000));
    dir.write("pic.svg", text(50_000));
    dir.write("blob.bin", text(50_000));
    dir.write("archive.zip", text(50_000));
    let served = compressing(&dir);
    for (name, coded) in [
        ("tiny.txt", false),
        ("edge.txt", true),
        ("huge.txt", false),
        ("photo.png", false),
        ("data.json", true),
        ("pic.svg", true),
        ("blob.bin", false),
        ("archive.zip", false),
    ] {
        let response = get_accepting(&served, &format!("/{name}"), "gzip");
        assert_eq!(response.status, 200, "{name}");
        let plain = fs::read(dir.join(name)).unwrap();
        if coded {
            assert_eq!(response.header("content-encoding"), Some("gzip"), "{name}");
            assert_eq!(response.header("vary"), Some("Accept-Encoding"), "{name}");
            assert_eq!(gunzip(&response.body), plain, "{name}");
        } else {
            assert_eq!(response.header("content-encoding"), None, "{name}");
            assert_eq!(response.header("vary"), None, "{name}");
            assert_eq!(response.body, plain, "{name}");
        }
    }
    // The bounds are settings.
    let handler = SimpleHttpHandler::new(dir.path()).unwrap();
    let compression = Compression::new().min_size(10).max_size(4 * 1024 * 1024);
    let served = serve(handler.compression(compression));
    for name in ["tiny.txt", "huge.txt"] {
        let response = get_accepting(&served, &format!("/{name}"), "gzip");
        assert_eq!(response.header("content-encoding"), Some("gzip"), "{name}");
        assert_eq!(gunzip(&response.body), fs::read(dir.join(name)).unwrap());
    }
}

#[test]
fn compression_is_off_unless_asked_for() {
    let tree = tree();
    let served = serve(SimpleHttpHandler::new(tree.dir.path()).unwrap());
    for target in ["/page.txt", "/side.txt"] {
        let response = get_accepting(&served, target, "gzip, br, zstd");
        assert_eq!(response.header("content-encoding"), None);
        assert_eq!(response.header("vary"), None);
        assert_eq!(
            response.body,
            fs::read(tree.dir.join(&target[1..])).unwrap()
        );
    }
}

#[test]
fn a_file_kept_in_memory_is_compressed_once_and_served_alike() {
    let dir = TempDir::new();
    let small = text(8000);
    dir.write("small.txt", &small);
    set_mtime(&dir.join("small.txt"), MTIME_SECS);
    // Kept in memory once its change time has settled (see the cache's rules).
    let changed = fs::metadata(dir.join("small.txt")).unwrap().ctime();
    let settled = UNIX_EPOCH + Duration::from_secs(changed as u64 + 2);
    wait_until("the file to settle", || SystemTime::now() >= settled);
    let served = compressing(&dir);
    let responses: Vec<Response> = (0..3)
        .map(|_| get_accepting(&served, "/small.txt", "br, gzip"))
        .collect();
    for response in &responses {
        assert_eq!(response.header("content-encoding"), Some("br"));
        assert_eq!(unbrotli(&response.body), small.as_bytes());
        assert_eq!(
            response,
            &responses[0].clone(),
            "the same answer, Date aside"
        );
    }
    let gzip = get_accepting(&served, "/small.txt", "gzip");
    assert_eq!(gunzip(&gzip.body), small.as_bytes());
    // An edit shows at once, compressed anew.
    dir.write("small.txt", "x".repeat(5000));
    let edited = get_accepting(&served, "/small.txt", "gzip");
    assert_eq!(gunzip(&edited.body), "x".repeat(5000).as_bytes());
    assert_ne!(edited.header("etag"), gzip.header("etag"));
}

/// A custom handler that answers with `respond_compressed`.
#[derive(Clone)]
struct Report;

impl HttpHandler for Report {
    fn do_get(&mut self, request: &mut HttpRequest<'_>) -> HandlerResult {
        let body = text(match request.url_path() {
            "/short" => 100,
            _ => 20_000,
        });
        request.respond_compressed(200, "text/plain; charset=utf-8", body)
    }
}

#[test]
fn custom_handlers_negotiate_and_respond_compressed() {
    let long = text(20_000);
    let response = TestRequest::get("/long")
        .header("Accept-Encoding", "gzip;q=0.8, br")
        .run(&Report);
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-encoding"), Some("br"));
    assert_eq!(response.header("vary"), Some("Accept-Encoding"));
    let length: usize = response.header("content-length").unwrap().parse().unwrap();
    assert_eq!(length, response.body.len());
    assert_eq!(unbrotli(&response.body), long.as_bytes());
    let response = TestRequest::get("/long")
        .header("Accept-Encoding", "gzip")
        .run(&Report);
    assert_eq!(gunzip(&response.body), long.as_bytes());
    for (path, accept) in [("/short", "gzip"), ("/long", "gzip;q=x"), ("/long", "")] {
        let response = TestRequest::get(path)
            .header("Accept-Encoding", accept)
            .run(&Report);
        assert_eq!(response.header("content-encoding"), None, "{path} {accept}");
        assert_eq!(response.header("vary"), Some("Accept-Encoding"));
        assert_eq!(
            response.body.len(),
            if path == "/short" { 100 } else { 20_000 }
        );
    }
    let mut headers = socketserver::http::HeaderMap::new();
    headers.insert("accept-encoding", "zstd, gzip;q=0.5".parse().unwrap());
    assert_eq!(compress::negotiate(&headers), Encoding::Zstd);
    let response = TestRequest::get("/long")
        .header("Accept-Encoding", "zstd, gzip;q=0.5")
        .run(&Report);
    assert_eq!(response.header("content-encoding"), Some("zstd"));
    assert!(
        response.body.len() < long.len() / 2,
        "{}",
        response.body.len()
    );
    let decoded = zstd::bulk::decompress(&response.body, long.len()).unwrap();
    assert_eq!(decoded, long.as_bytes());
}
