//! The file handler through [`TestRequest`]: the server's own request path on a socket
//! pair, without a listening server.

use std::fs;
use std::os::unix::fs::symlink;

use tempfile::TempDir;

use super::SimpleHttpHandler;
use crate::http::{Configured, TestRequest, TestResponse, Version};

const HELLO: &str = "Hello, files!\n";
const SECRET: &str = "the secret outside the root";

/// `base/secret.txt` outside the served `base/www`, which holds `hello.txt`,
/// `digits.txt`, `sub/` (no index: listed), `site/index.html`, and `out`, a symlink to the
/// secret.
struct Tree {
    base: TempDir,
    files: SimpleHttpHandler,
}

fn tree() -> Tree {
    let base = TempDir::new().unwrap();
    let www = base.path().join("www");
    fs::create_dir_all(www.join("sub/nested")).unwrap();
    fs::create_dir_all(www.join("site")).unwrap();
    fs::write(base.path().join("secret.txt"), SECRET).unwrap();
    fs::write(www.join("hello.txt"), HELLO).unwrap();
    fs::write(www.join("digits.txt"), "0123456789").unwrap();
    fs::write(www.join("sub/b.txt"), "b").unwrap();
    fs::write(www.join("sub/A.txt"), "a").unwrap();
    fs::write(www.join("sub/<x>&y z.txt"), "odd").unwrap();
    fs::write(www.join("site/index.html"), "<h1>the site</h1>").unwrap();
    symlink("../secret.txt", www.join("out")).unwrap();
    let files = SimpleHttpHandler::new(&www).unwrap();
    Tree { base, files }
}

impl Tree {
    fn get(&self, target: &str) -> TestResponse {
        TestRequest::get(target).run(&self.files)
    }
}

#[test]
fn get_serves_a_file_with_its_type_length_and_validators() {
    let tree = tree();
    let response = tree.get("/hello.txt");
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(
        response.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(
        response.header("content-length"),
        Some(HELLO.len().to_string().as_str())
    );
    assert_eq!(response.text(), HELLO);
    assert_eq!(response.header("accept-ranges"), Some("bytes"));
    assert!(response
        .header("etag")
        .is_some_and(|t| t.starts_with('"') && t.ends_with('"')));
    assert!(response
        .header("last-modified")
        .is_some_and(|d| d.ends_with(" GMT")));
    assert!(response
        .header("server")
        .is_some_and(|s| s.starts_with("SimpleHTTP/")));
    // Python's default: HTTP/1.0, one request per connection.
    assert_eq!(response.version, Version::HTTP_10);
    assert!(response.closes_connection());
}

#[test]
fn head_has_the_headers_of_get_and_no_body() {
    let tree = tree();
    let get = tree.get("/hello.txt");
    let head = TestRequest::head("/hello.txt").run(&tree.files);
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty(), "{head:?}");
    for name in [
        "content-type",
        "content-length",
        "etag",
        "last-modified",
        "accept-ranges",
    ] {
        assert_eq!(head.header(name), get.header(name), "{name}");
    }
    // And for what is not a file: the 404's headers, without its page.
    let missing = TestRequest::head("/nothing").run(&tree.files);
    assert_eq!(missing.status, 404);
    assert!(missing.body.is_empty());
    assert!(missing.header("content-length").is_some_and(|n| n != "0"));
}

#[test]
fn a_directory_without_its_slash_redirects_to_it() {
    let tree = tree();
    for (target, location) in [
        ("/sub", "/sub/"),
        ("/sub?sort=name", "/sub/?sort=name"),
        ("/sub/nested", "/sub/nested/"),
        // Never `//sub/`, which a browser would take for the host `sub`.
        ("//sub", "/sub/"),
    ] {
        let response = tree.get(target);
        assert_eq!(response.status, 301, "{target}: {response:?}");
        assert_eq!(response.header("location"), Some(location), "{target}");
        assert_eq!(response.header("content-length"), Some("0"));
        assert!(response.body.is_empty());
    }
}

#[test]
fn a_directory_is_its_index_page_or_its_listing() {
    let tree = tree();
    let site = tree.get("/site/");
    assert_eq!(site.status, 200);
    assert_eq!(
        site.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(site.text(), "<h1>the site</h1>");

    let listing = tree.get("/sub/");
    assert_eq!(listing.status, 200, "{listing:?}");
    assert_eq!(
        listing.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let page = listing.text();
    assert!(
        page.contains("<title>Directory listing for /sub/</title>"),
        "{page}"
    );
    // Sorted without regard to case, directories with a slash, names escaped and links
    // percent-encoded; one row each, after the parent link.
    let names: Vec<&str> = page
        .lines()
        .filter_map(|l| l.strip_prefix("<tr><td class=\"name\">"))
        .filter_map(|l| l.split_once("</td>").map(|(name, _)| name))
        .collect();
    assert_eq!(
        names,
        [
            "<a href=\"%3Cx%3E%26y%20z.txt\">&lt;x&gt;&amp;y z.txt</a>",
            "<a href=\"A.txt\">A.txt</a>",
            "<a href=\"b.txt\">b.txt</a>",
            "<a href=\"nested/\">nested/</a>",
        ]
    );
    assert!(page.contains("<a class=\"parent\" href=\"../\""), "{page}");
    assert_eq!(listing.header("vary"), Some("Accept"));
    // What the listing links to is there.
    assert_eq!(tree.get("/sub/%3Cx%3E%26y%20z.txt").text(), "odd");
}

#[test]
fn a_missing_file_is_a_404_page() {
    let tree = tree();
    for target in ["/nothing.txt", "/sub/nothing/", "/hello.txt/"] {
        let response = tree.get(target);
        assert_eq!(response.status, 404, "{target}");
        assert_eq!(
            response.header("content-type"),
            Some("text/html;charset=utf-8")
        );
        assert!(response.text().contains("File not found"), "{response:?}");
    }
}

#[test]
fn no_target_reaches_a_file_outside_the_directory() {
    let tree = tree();
    assert!(tree.base.path().join("secret.txt").is_file());
    for target in [
        "/../secret.txt",
        "/sub/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E%2Fsecret.txt",
        "/..%2fsecret.txt",
        "/sub/..%5c..%5csecret.txt",
        "/..\\secret.txt",
        "/out",
    ] {
        let response = tree.get(target);
        assert!(
            [400, 404].contains(&response.status.as_u16()),
            "{target}: {response:?}"
        );
        assert!(!response.text().contains(SECRET), "{target}");
    }
    // The same through the raw bytes of a request line, as an attacker sends them.
    let raw = TestRequest::raw("GET /../../secret.txt HTTP/1.0\r\n\r\n").run(&tree.files);
    assert!([400, 404].contains(&raw.status.as_u16()), "{raw:?}");
    assert!(!raw.text().contains(SECRET));
    // Following symlinks out is a choice, and then the secret is served.
    let follow = tree.files.clone().follow_symlinks(true);
    assert_eq!(TestRequest::get("/out").run(&follow).text(), SECRET);
}

#[test]
fn a_range_gets_206_and_only_its_bytes() {
    let tree = tree();
    for (range, content_range, body) in [
        ("bytes=2-5", "bytes 2-5/10", "2345"),
        ("bytes=7-", "bytes 7-9/10", "789"),
        ("bytes=-3", "bytes 7-9/10", "789"),
        ("bytes=8-100", "bytes 8-9/10", "89"),
    ] {
        let response = TestRequest::get("/digits.txt")
            .header("Range", range)
            .run(&tree.files);
        assert_eq!(response.status, 206, "{range}: {response:?}");
        assert_eq!(response.header("content-range"), Some(content_range));
        assert_eq!(
            response.header("content-length"),
            Some(body.len().to_string().as_str())
        );
        assert_eq!(response.text(), body, "{range}");
    }
    let beyond = TestRequest::get("/digits.txt")
        .header("Range", "bytes=10-")
        .run(&tree.files);
    assert_eq!(beyond.status, 416);
    assert_eq!(beyond.header("content-range"), Some("bytes */10"));
    assert!(beyond.body.is_empty());
}

#[test]
fn a_current_copy_gets_304_without_a_body() {
    let tree = tree();
    let first = tree.get("/digits.txt");
    let last_modified = first.header("last-modified").unwrap();
    let etag = first.header("etag").unwrap();

    let since = TestRequest::get("/digits.txt")
        .header("If-Modified-Since", last_modified)
        .run(&tree.files);
    assert_eq!(since.status, 304, "{since:?}");
    assert!(since.body.is_empty());
    assert_eq!(since.header("etag"), Some(etag));
    assert_eq!(since.header("content-type"), None);

    let matching = TestRequest::get("/digits.txt")
        .header("If-None-Match", etag)
        .run(&tree.files);
    assert_eq!(matching.status, 304);

    // An older copy gets the file.
    for (name, value) in [
        ("If-Modified-Since", "Sun, 06 Nov 1994 08:49:37 GMT"),
        ("If-None-Match", "\"some-other-version\""),
    ] {
        let stale = TestRequest::get("/digits.txt")
            .header(name, value)
            .run(&tree.files);
        assert_eq!(stale.status, 200, "{name}");
        assert_eq!(stale.text(), "0123456789");
    }
}

#[test]
fn a_posted_form_is_decoded_and_answered() {
    let tree = tree();
    let response = TestRequest::post("/form?x=1")
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("name=Ada+Lovelace&lang=%3Crust%3E&name=again")
        .run(&tree.files);
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(
        response.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let page = response.text();
    assert!(
        page.contains("3 field(s) posted to <code>/form?x=1</code>"),
        "{page}"
    );
    assert!(page.contains("<tr><th>name</th><td>Ada Lovelace</td></tr>\n<tr><th>lang</th><td>&lt;rust&gt;</td></tr>\n<tr><th>name</th><td>again</td></tr>"), "{page}");

    let json = TestRequest::post("/form")
        .header("Content-Type", "application/json")
        .body("{}")
        .run(&tree.files);
    assert_eq!(json.status, 415);
}

#[test]
fn on_http11_one_connection_carries_every_kind_of_answer() {
    let tree = tree();
    let files = Configured::new(tree.files.clone()).protocol_version(Version::HTTP_11);
    let requests = "GET /hello.txt HTTP/1.1\r\nHost: a\r\n\r\n\
                    HEAD /digits.txt HTTP/1.1\r\nHost: a\r\n\r\n\
                    GET /missing HTTP/1.1\r\nHost: a\r\n\r\n\
                    GET /sub HTTP/1.1\r\nHost: a\r\n\r\n\
                    GET /digits.txt HTTP/1.1\r\nHost: a\r\nRange: bytes=0-0\r\n\r\n\
                    POST / HTTP/1.1\r\nHost: a\r\nContent-Type: application/x-www-form-urlencoded\r\n\
                    Content-Length: 3\r\n\r\na=1\
                    GET /sub/ HTTP/1.1\r\nHost: a\r\n\r\n";
    let responses = TestRequest::raw(requests).run_all(&files);
    let statuses: Vec<u16> = responses.iter().map(|r| r.status.as_u16()).collect();
    assert_eq!(
        statuses,
        [200, 200, 404, 301, 206, 200, 200],
        "{responses:#?}"
    );
    assert!(responses.iter().all(|r| r.version == Version::HTTP_11));
    assert!(responses.iter().all(|r| !r.closes_connection()));
    assert_eq!(responses[0].text(), HELLO);
    assert!(responses[1].body.is_empty());
    assert_eq!(responses[1].header("content-length"), Some("10"));
    assert_eq!(responses[4].text(), "0");
    assert!(responses[5].text().contains("<td>1</td>"));
    assert!(responses[6].text().contains("b.txt"));
}

#[test]
fn a_large_file_leaves_whole() {
    let tree = tree();
    // Larger than the in-memory limit and than a socket buffer: sent with sendfile.
    let data: Vec<u8> = (0..3u32 << 20).map(|i| (i * 7 % 256) as u8).collect();
    fs::write(tree.base.path().join("www/large.bin"), &data).unwrap();
    let response = tree.get("/large.bin");
    assert_eq!(response.status, 200);
    assert_eq!(
        response.header("content-type"),
        Some("application/octet-stream")
    );
    assert_eq!(
        response.header("content-length"),
        Some(data.len().to_string().as_str())
    );
    assert!(response.body == data, "{} bytes came", response.body.len());
    let tail = TestRequest::get("/large.bin")
        .header("Range", "bytes=-5")
        .run(&tree.files);
    assert_eq!(tail.body, &data[data.len() - 5..]);
}

#[test]
fn several_ranges_of_a_cached_file_come_from_memory() {
    use super::cache::{CachedFile, Identity};
    use super::conditional::Validators;
    use super::Entity;
    use std::path::Path;
    use std::sync::Arc;

    let tree = tree();
    let meta = fs::metadata(tree.base.path().join("www/digits.txt")).unwrap();
    let validators = Validators::of(&meta);
    let entity = Entity {
        len: 10,
        last_modified: validators.last_modified_string(),
        validators,
        content_type: "text/plain; charset=utf-8".into(),
        modified: meta.modified().unwrap(),
    };
    // Other bytes than the disk's, under the file's identity: what is sent shows the source.
    let memory = Arc::new(CachedFile::new(
        Identity::of(&meta),
        entity,
        (*b"ABCDEFGHIJ").into(),
        false,
    ));
    tree.files
        .config
        .cache
        .insert(Path::new("digits.txt"), memory);
    let response = TestRequest::get("/digits.txt")
        .header("Range", "bytes=8-9,0-1")
        .run(&tree.files);
    assert_eq!(response.status, 206, "{response:?}");
    let body = response.text();
    let first = body.find("Content-Range: bytes 8-9/10\r\n\r\nIJ\r\n--");
    let second = body.find("Content-Range: bytes 0-1/10\r\n\r\nAB\r\n--");
    assert!(first.is_some() && second > first, "{body}");
    assert_eq!(
        response.header("content-length"),
        Some(response.body.len().to_string().as_str())
    );
}

#[test]
fn a_failed_precondition_is_412_without_a_body_for_head() {
    let tree = tree();
    let get = TestRequest::get("/digits.txt")
        .header("If-Match", "\"not-this-one\"")
        .run(&tree.files);
    assert_eq!(get.status, 412, "{get:?}");
    assert!(get.text().contains("412"), "{get:?}");
    let head = TestRequest::head("/digits.txt")
        .header("If-Match", "\"not-this-one\"")
        .run(&tree.files);
    assert_eq!(head.status, 412);
    assert!(head.body.is_empty(), "{head:?}");
    assert_eq!(head.header("content-length"), get.header("content-length"));
    let head = TestRequest::head("/digits.txt")
        .header("If-Unmodified-Since", "Sun, 06 Nov 1994 08:49:37 GMT")
        .run(&tree.files);
    assert_eq!(head.status, 412);
    assert!(head.body.is_empty());
    let star = TestRequest::get("/digits.txt")
        .header("If-Match", "*")
        .run(&tree.files);
    assert_eq!(star.status, 200);
    assert_eq!(star.text(), "0123456789");
}
