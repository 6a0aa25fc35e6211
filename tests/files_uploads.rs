//! `SimpleHttpHandler` uploads: `PUT` of a file, `multipart/form-data` `POST` of files to a
//! directory, `DELETE`, `OPTIONS` and the 405s with `Allow` when they are off; with curl,
//! Python's http.client and raw sockets. Every case checks the bytes on disk and that no
//! temporary file (a hidden `.upload-*`) is left in the tree, whatever went wrong: names
//! that spell their way out, existing files, too large bodies, malformed forms, a client
//! that hangs up, a full disk.

mod files_support;

use std::fs;
use std::io::Write;
use std::net::Shutdown;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;

use files_support::{
    connect, curl, curl_raw, flavor, parse, read_to_eof, running_as_root, serve, wait_until,
    KeepAlive, Response, Served, TempDir,
};
use socketserver::files::{SimpleHttpHandler, Uploads};
use socketserver::http::{Configured, TestRequest, Version};

const BOUNDARY: &str = "----socketserverBoundary7MA4YWxk";

/// `base/outside.txt` beside the served `base/www`, which holds `sub/`, `sub/deep/`,
/// `exists.txt`, `.git/` and a file `plain.txt` (where a directory is expected).
struct Site {
    base: TempDir,
}

impl Site {
    fn new() -> Site {
        let base = TempDir::new();
        base.write("outside.txt", "outside the root");
        base.mkdir("www/sub/deep");
        base.mkdir("www/.git");
        base.write("www/exists.txt", "the original");
        base.write("www/plain.txt", "a file, not a directory");
        Site { base }
    }

    fn root(&self) -> PathBuf {
        self.base.join("www")
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.root().join(relative)
    }

    fn read(&self, relative: &str) -> Vec<u8> {
        fs::read(self.path(relative)).unwrap_or_else(|e| panic!("read {relative}: {e}"))
    }

    fn serve(&self, uploads: Option<Uploads>) -> Served<SimpleHttpHandler> {
        let mut files = SimpleHttpHandler::new(self.root()).unwrap();
        if let Some(uploads) = uploads {
            files = files.uploads(uploads);
        }
        serve(files)
    }

    /// Every name under the base directory, hidden ones included, relative to it, sorted.
    fn tree(&self) -> Vec<String> {
        fn walk(dir: &Path, base: &Path, out: &mut Vec<String>) {
            for entry in fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                out.push(path.strip_prefix(base).unwrap().display().to_string());
                if path.is_dir() && !path.is_symlink() {
                    walk(&path, base, out);
                }
            }
        }
        let mut names = Vec::new();
        walk(self.base.path(), self.base.path(), &mut names);
        names.sort();
        names
    }

    /// The tree as a new site has it, and `added`.
    fn expect_tree(&self, added: &[&str]) {
        let mut expected: Vec<String> = [
            "outside.txt",
            "www",
            "www/.git",
            "www/exists.txt",
            "www/plain.txt",
            "www/sub",
            "www/sub/deep",
        ]
        .iter()
        .chain(added)
        .map(|s| s.to_string())
        .collect();
        expected.sort();
        assert_eq!(
            self.tree(),
            expected,
            "the tree holds what it should, no more"
        );
    }

    /// No temporary file anywhere in the tree.
    fn no_temporary_files(&self) -> bool {
        !self.tree().iter().any(|name| name.contains(".upload-"))
    }
}

/// Bytes that are no text, with line ends and the start of a boundary inside.
fn binary(len: usize, seed: u32) -> Vec<u8> {
    let mut state = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    let mut data: Vec<u8> = (0..len)
        .map(|_| {
            state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (state >> 16) as u8
        })
        .collect();
    for (i, chunk) in data.chunks_mut(4096).enumerate() {
        let near_miss: &[u8] = if i % 2 == 0 {
            b"\r\n------socketserverBoundary7MA4YW"
        } else {
            b"\r\n--\r\n"
        };
        let n = near_miss.len().min(chunk.len());
        chunk[..n].copy_from_slice(&near_miss[..n]);
    }
    data
}

/// The mode a new file gets: `0644` less this process's umask.
fn expected_mode(dir: &Path) -> u32 {
    let probe = dir.join("umask-probe");
    fs::File::create(&probe).unwrap();
    let umask = !fs::metadata(&probe).unwrap().permissions().mode() & 0o777 & !0o111;
    fs::remove_file(&probe).unwrap();
    0o644 & !umask
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

/// One part of a form: field name, file name (`None` for a plain field), content.
type Part<'a> = (&'a str, Option<&'a str>, &'a [u8]);

/// A `multipart/form-data` body, as a browser frames it.
fn form(parts: &[Part<'_>]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, filename, content) in parts {
        body.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        let disposition = match filename {
            Some(filename) => format!("form-data; name=\"{name}\"; filename=\"{filename}\""),
            None => format!("form-data; name=\"{name}\""),
        };
        body.extend_from_slice(format!("Content-Disposition: {disposition}\r\n").as_bytes());
        if filename.is_some() {
            body.extend_from_slice(b"Content-Type: application/octet-stream\r\n");
        }
        body.extend_from_slice(b"\r\n");
        body.extend_from_slice(content);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

/// A raw HTTP/1.0 request with a `Content-Length` body.
fn request(method: &str, target: &str, headers: &[&str], body: &[u8]) -> Vec<u8> {
    let mut request = format!("{method} {target} HTTP/1.0\r\n").into_bytes();
    for header in headers {
        request.extend_from_slice(format!("{header}\r\n").as_bytes());
    }
    request.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    request.extend_from_slice(body);
    request
}

fn put(server: &Served<SimpleHttpHandler>, target: &str, body: &[u8]) -> Response {
    server.raw(&request("PUT", target, &[], body))
}

fn post_form(server: &Served<SimpleHttpHandler>, target: &str, body: &[u8]) -> Response {
    server.raw(&post_form_request(target, body))
}

fn post_form_request(target: &str, body: &[u8]) -> Vec<u8> {
    let content_type = format!("Content-Type: multipart/form-data; boundary={BOUNDARY}");
    request("POST", target, &[&content_type], body)
}

/// Sends `request` from a thread of its own (a large body may not all be taken) and reads
/// the response until the server closes.
fn send_large(server: &Served<SimpleHttpHandler>, request: Vec<u8>) -> Response {
    let mut stream = connect(server.addr);
    let mut writer = stream.try_clone().unwrap();
    let sending = thread::spawn(move || {
        let _ = writer.write_all(&request);
    });
    let bytes = read_to_eof(&mut stream);
    drop(stream);
    sending.join().unwrap();
    parse(&bytes, false).unwrap_or_else(|e| panic!("{e}: {:?}", String::from_utf8_lossy(&bytes)))
}

// ---------------------------------------------------------------------------------------
// PUT

#[test]
fn curl_put_creates_a_file_then_replaces_it() {
    let site = Site::new();
    let server = site.serve(Some(Uploads::new().overwrite(true)));
    // Larger than the event loop keeps in memory, so it is read from a spool.
    let first = binary(300 * 1024, 1);
    let local = site.base.write("local/data.bin", &first);
    let response = curl(&["-T", local.to_str().unwrap(), &server.url("/sub/")]);
    assert_eq!(response.status, 201, "{}", response.text());
    assert_eq!(response.header("location"), Some("/sub/data.bin"));
    assert_eq!(response.text(), "Created /sub/data.bin\n");
    assert!(
        site.read("sub/data.bin") == first,
        "the bytes on disk are the bytes sent"
    );
    assert_eq!(
        mode(&site.path("sub/data.bin")),
        expected_mode(site.base.path())
    );

    let second = binary(5000, 2);
    fs::write(&local, &second).unwrap();
    let response = curl(&["-T", local.to_str().unwrap(), &server.url("/sub/data.bin")]);
    assert_eq!(response.status, 204, "{}", response.text());
    assert!(response.body.is_empty());
    assert!(site.read("sub/data.bin") == second);
    // And it is served as it is now.
    let got = curl(&[&server.url("/sub/data.bin")]);
    assert_eq!(got.status, 200);
    assert!(got.body == second);
    site.expect_tree(&["local", "local/data.bin", "www/sub/data.bin"]);
}

#[test]
fn names_with_spaces_and_unicode_are_kept() {
    let site = Site::new();
    let server = site.serve(Some(Uploads::new()));
    let response = put(&server, "/sub/a%20b%20%E4%B8%AD.txt", b"spaced");
    assert_eq!(response.status, 201, "{}", response.text());
    assert_eq!(
        response.header("location"),
        Some("/sub/a%20b%20%E4%B8%AD.txt")
    );
    assert_eq!(site.read("sub/a b 中.txt"), b"spaced");
    // An empty file is a file.
    assert_eq!(put(&server, "/empty", b"").status, 201);
    assert_eq!(site.read("empty"), b"");
    site.expect_tree(&["www/sub/a b 中.txt", "www/empty"]);
}

#[test]
fn python_puts_a_chunked_body() {
    let site = Site::new();
    let server = site.serve(Some(Uploads::new()));
    let out = files_support::python(
        "import http.client, sys\n\
         pieces = (bytes([i]) * 1000 for i in range(100))\n\
         c = http.client.HTTPConnection('127.0.0.1', int(sys.argv[1]), timeout=10)\n\
         c.request('PUT', '/sub/deep/chunked.bin', pieces, encode_chunked=True)\n\
         r = c.getresponse()\n\
         print(r.status, r.getheader('Location'))\n",
        &[&server.port().to_string()],
    );
    assert_eq!(out, "201 /sub/deep/chunked.bin\n");
    let expected: Vec<u8> = (0..100u8).flat_map(|i| [i; 1000]).collect();
    assert!(site.read("sub/deep/chunked.bin") == expected);
    site.expect_tree(&["www/sub/deep/chunked.bin"]);
}

#[test]
fn an_existing_file_is_replaced_only_with_overwrite() {
    let site = Site::new();
    let server = site.serve(Some(Uploads::new()));
    let response = put(&server, "/exists.txt", b"replacement");
    assert_eq!(response.status, 409, "{}", response.text());
    assert!(response.text().contains("exists"), "{}", response.text());
    assert_eq!(site.read("exists.txt"), b"the original");
    // A body large enough to be streamed: refused before any of it is written.
    let response = send_large(
        &server,
        request("PUT", "/exists.txt", &[], &binary(1 << 20, 3)),
    );
    assert_eq!(response.status, 409);
    assert_eq!(site.read("exists.txt"), b"the original");
    site.expect_tree(&[]);

    // With overwrite, If-None-Match: * still keeps the file.
    let server = site.serve(Some(Uploads::new().overwrite(true)));
    let response = server.raw(&request(
        "PUT",
        "/exists.txt",
        &["If-None-Match: *"],
        b"replacement",
    ));
    assert_eq!(response.status, 412, "{}", response.text());
    assert_eq!(site.read("exists.txt"), b"the original");
    let response = server.raw(&request("PUT", "/new.txt", &["If-None-Match: *"], b"new"));
    assert_eq!(response.status, 201);
    site.expect_tree(&["www/new.txt"]);
}

#[test]
fn put_needs_an_existing_directory_and_names_a_file() {
    let site = Site::new();
    let server = site.serve(Some(Uploads::new().overwrite(true)));
    // RFC 4918 9.7.1: no parent, no PUT.
    for target in ["/missing/a.txt", "/sub/missing/a.txt", "/plain.txt/a.txt"] {
        let response = put(&server, target, b"x");
        assert_eq!(response.status, 409, "{target}: {}", response.text());
    }
    // A directory is not replaced by a file: 405, with what a directory allows.
    for target in ["/", "/sub", "/sub/", "/missing/"] {
        let response = put(&server, target, b"x");
        assert_eq!(response.status, 405, "{target}: {}", response.text());
        assert_eq!(
            response.header("allow"),
            Some("GET, HEAD, POST, OPTIONS"),
            "{target}"
        );
    }
    assert!(site.path("sub").is_dir());
    site.expect_tree(&[]);
}

// ---------------------------------------------------------------------------------------
// Without uploads: 405 and Allow

#[test]
fn without_uploads_put_and_delete_are_not_allowed() {
    let site = Site::new();
    let server = site.serve(None);
    for (method, target) in [
        ("PUT", "/new.txt"),
        ("PUT", "/exists.txt"),
        ("DELETE", "/exists.txt"),
    ] {
        let response = server.raw(&request(method, target, &[], b"data"));
        assert_eq!(response.status, 405, "{method} {target}");
        assert_eq!(response.header("allow"), Some("GET, HEAD, POST, OPTIONS"));
        assert!(
            response.text().contains("Error code: 405"),
            "{}",
            response.text()
        );
    }
    // curl's PUT with Expect: 100-continue is refused before the body is sent.
    let local = site.base.write("local.txt", "data");
    let (raw, response) = curl_raw(&[
        "-H",
        "Expect: 100-continue",
        "--expect100-timeout",
        "10",
        "-T",
        local.to_str().unwrap(),
        &server.url("/new.txt"),
    ]);
    assert_eq!(response.status, 405);
    assert!(
        !String::from_utf8_lossy(&raw).contains("100 Continue"),
        "{}",
        String::from_utf8_lossy(&raw)
    );
    // OPTIONS says the same; a form is still a form, and multipart is not accepted.
    let options = server.raw(b"OPTIONS /exists.txt HTTP/1.0\r\n\r\n");
    assert_eq!(options.status, 200);
    assert_eq!(options.header("allow"), Some("GET, HEAD, POST, OPTIONS"));
    let response = post_form(&server, "/sub/", &form(&[("f", Some("a.txt"), b"a")]));
    assert_eq!(response.status, 415);
    assert_eq!(site.read("exists.txt"), b"the original");
    site.expect_tree(&["local.txt"]);
}

#[test]
fn options_and_allow_follow_the_settings() {
    let site = Site::new();
    let uploads = site.serve(Some(Uploads::new()));
    let deletes = site.serve(Some(Uploads::new().delete(true)));
    let cases = [
        (&uploads, "/exists.txt", "GET, HEAD, POST, OPTIONS, PUT"),
        (&uploads, "/sub/", "GET, HEAD, POST, OPTIONS"),
        (&uploads, "/sub", "GET, HEAD, POST, OPTIONS"),
        (
            &deletes,
            "/new.txt",
            "GET, HEAD, POST, OPTIONS, PUT, DELETE",
        ),
        (&deletes, "*", "GET, HEAD, POST, OPTIONS, PUT, DELETE"),
    ];
    for (server, target, allow) in cases {
        let response = server.raw(format!("OPTIONS {target} HTTP/1.0\r\n\r\n").as_bytes());
        assert_eq!(response.status, 200, "{target}");
        assert_eq!(response.header("allow"), Some(allow), "{target}");
        assert_eq!(response.header("content-length"), Some("0"));
    }
    // DELETE while uploads are on and deleting is not: 405 with PUT allowed.
    let response = uploads.raw(b"DELETE /exists.txt HTTP/1.0\r\n\r\n");
    assert_eq!(response.status, 405);
    assert_eq!(
        response.header("allow"),
        Some("GET, HEAD, POST, OPTIONS, PUT")
    );
    assert_eq!(site.read("exists.txt"), b"the original");
}

// ---------------------------------------------------------------------------------------
// Names

#[test]
fn put_refuses_every_spelling_of_a_bad_name() {
    let site = Site::new();
    let server = site.serve(Some(Uploads::new().overwrite(true)));
    let cases: [(&str, u16); 16] = [
        ("/../outside.txt", 400),
        ("/sub/../../outside.txt", 400),
        ("/%2e%2e/outside.txt", 400),
        ("/%2E%2E%2Foutside.txt", 400),
        ("/sub%2f..%2f..%2foutside.txt", 400),
        ("/..%5coutside.txt", 400),
        ("/a%00b", 400),
        // Overlong dots are no dots: a directory of that raw name, which does not exist.
        ("/%c0%ae%c0%ae/outside.txt", 409),
        ("/a%0d%0aSet-Cookie:%20x", 400),
        ("/tab%09name", 400),
        ("/rlo%E2%80%AEtxt.exe", 400),
        ("/.htaccess", 403),
        ("/.git/config", 403),
        ("/sub/.hidden", 403),
        ("/%2ehidden", 403),
        ("/sub/.upload-1-2-3", 403),
    ];
    for (target, status) in cases {
        let response = put(&server, target, b"planted");
        assert_eq!(response.status, status, "{target}: {}", response.text());
    }
    let long = format!("/{}", "n".repeat(256));
    assert_eq!(put(&server, &long, b"x").status, 400);
    assert_eq!(
        fs::read(site.base.join("outside.txt")).unwrap(),
        b"outside the root"
    );
    site.expect_tree(&[]);
}

#[test]
fn a_symlink_out_of_the_root_is_no_directory_to_put_in() {
    let site = Site::new();
    site.base.mkdir("elsewhere");
    site.base.symlink(site.base.join("elsewhere"), "www/out");
    let server = site.serve(Some(Uploads::new()));
    let response = put(&server, "/out/planted.txt", b"x");
    assert_eq!(response.status, 409, "{}", response.text());
    // Not even where reads follow it.
    let follows = SimpleHttpHandler::new(site.root())
        .unwrap()
        .follow_symlinks(true)
        .uploads(Uploads::new());
    let follows = serve(follows);
    assert_eq!(follows.get("/out/").status, 200, "reads follow it");
    let response = follows.raw(&request("PUT", "/out/planted.txt", &[], b"x"));
    assert_eq!(response.status, 409, "{}", response.text());
    let body = form(&[("f", Some("p.txt"), b"x")]);
    let response = follows.raw(&post_form_request("/out/", &body));
    assert_eq!(response.status, 404, "{}", response.text());
    assert_eq!(
        fs::read_dir(site.base.join("elsewhere")).unwrap().count(),
        0
    );
    // Nor is a symlink to a file replaced through: it is a name like any other.
    site.base
        .symlink(site.base.join("outside.txt"), "www/link.txt");
    let server = site.serve(Some(Uploads::new().overwrite(true)));
    assert_eq!(put(&server, "/link.txt", b"new").status, 204);
    assert_eq!(
        fs::read(site.base.join("outside.txt")).unwrap(),
        b"outside the root"
    );
    assert!(!site.path("link.txt").is_symlink());
    assert_eq!(site.read("link.txt"), b"new");
}

// ---------------------------------------------------------------------------------------
// multipart/form-data

#[test]
fn curl_posts_files_to_a_directory() {
    let site = Site::new();
    let server = site.serve(Some(Uploads::new()));
    let big = binary(700 * 1024, 4);
    let a = site.base.write("local/a.bin", &big);
    let b = site.base.write("local/b c.txt", "second file\r\n");
    let response = curl(&[
        "-F",
        &format!("first=@{}", a.display()),
        "-F",
        &format!("second=@{}", b.display()),
        "-F",
        "note=not a file",
        &server.url("/sub/"),
    ]);
    assert_eq!(response.status, 201, "{}", response.text());
    assert_eq!(response.header("content-type"), Some("application/json"));
    assert_eq!(
        response.text(),
        format!(
            "{{\"files\":[{{\"name\":\"a.bin\",\"url\":\"/sub/a.bin\",\"size\":{},\"replaced\":false}},\
             {{\"name\":\"b c.txt\",\"url\":\"/sub/b%20c.txt\",\"size\":13,\"replaced\":false}}],\
             \"ignored\":[\"note\"]}}\n",
            big.len()
        )
    );
    assert!(
        site.read("sub/a.bin") == big,
        "the bytes on disk are the bytes sent"
    );
    assert_eq!(site.read("sub/b c.txt"), b"second file\r\n");
    assert_eq!(
        mode(&site.path("sub/a.bin")),
        expected_mode(site.base.path())
    );
    site.expect_tree(&[
        "local",
        "local/a.bin",
        "local/b c.txt",
        "www/sub/a.bin",
        "www/sub/b c.txt",
    ]);
}

#[test]
fn a_browser_form_goes_back_to_the_listing() {
    let site = Site::new();
    let server = site.serve(Some(Uploads::new()));
    let body = form(&[
        ("file", Some("photo.jpg"), b"\xff\xd8 not really"),
        ("empty", Some(""), b""),
    ]);
    let content_type = format!("Content-Type: multipart/form-data; boundary={BOUNDARY}");
    let accept = "Accept: text/html,application/xhtml+xml,*/*;q=0.8";
    // To the directory without its slash: the redirect has it.
    let response = server.raw(&request(
        "POST",
        "/sub/deep",
        &[&content_type, accept],
        &body,
    ));
    assert_eq!(response.status, 303, "{}", response.text());
    assert_eq!(response.header("location"), Some("/sub/deep/"));
    assert_eq!(site.read("sub/deep/photo.jpg"), b"\xff\xd8 not really");
    // The listing shows it.
    let listing = server.get("/sub/deep/");
    assert!(listing.text().contains("photo.jpg"), "{}", listing.text());
    site.expect_tree(&["www/sub/deep/photo.jpg"]);
}

#[test]
fn form_file_names_are_checked() {
    let site = Site::new();
    let server = site.serve(Some(Uploads::new().overwrite(true)));
    let cases: [(&str, u16); 10] = [
        ("../../outside.txt", 400),
        ("../x", 400),
        ("sub/x", 400),
        ("C:\\\\Users\\\\x.txt", 400),
        (".htaccess", 403),
        ("..", 403),
        ("a%0D%0Ab.txt", 400),
        ("a\x01b", 400),
        ("two", 400),  // the second part has the same name
        ("deep", 409), // a directory
    ];
    for (filename, status) in cases {
        let mut parts: Vec<Part<'_>> = vec![("ok", Some("fine.txt"), b"written first")];
        parts.push(("f", Some(filename), b"planted"));
        if filename == "two" {
            parts.push(("g", Some("two"), b"again"));
        }
        let target = if filename == "deep" { "/sub/" } else { "/" };
        let response = post_form(&server, target, &form(&parts));
        assert_eq!(response.status, status, "{filename:?}: {}", response.text());
    }
    // Nothing was saved, not even the good file before the bad one.
    assert_eq!(
        fs::read(site.base.join("outside.txt")).unwrap(),
        b"outside the root"
    );
    site.expect_tree(&[]);
}

#[test]
fn an_existing_file_refuses_the_whole_form_without_overwrite() {
    let site = Site::new();
    let server = site.serve(Some(Uploads::new()));
    let body = form(&[
        ("a", Some("new.txt"), b"new"),
        ("b", Some("exists.txt"), &binary(200 * 1024, 5)),
    ]);
    let response = post_form(&server, "/", &body);
    assert_eq!(response.status, 409, "{}", response.text());
    assert_eq!(site.read("exists.txt"), b"the original");
    site.expect_tree(&[]);
    // With overwrite: both, one replaced.
    let server = site.serve(Some(Uploads::new().overwrite(true)));
    let body = form(&[
        ("a", Some("new.txt"), b"new"),
        ("b", Some("exists.txt"), b"replaced"),
    ]);
    let response = post_form(&server, "/", &body);
    assert_eq!(response.status, 201, "{}", response.text());
    assert!(
        response.text().contains(
            "\"name\":\"exists.txt\",\"url\":\"/exists.txt\",\"size\":8,\"replaced\":true"
        ),
        "{}",
        response.text()
    );
    assert_eq!(site.read("exists.txt"), b"replaced");
    site.expect_tree(&["www/new.txt"]);
}

#[test]
fn malformed_forms_leave_nothing() {
    let site = Site::new();
    let server = site.serve(Some(Uploads::new()));
    let whole = form(&[("f", Some("a.txt"), &binary(100 * 1024, 6))]);
    let content_type = format!("Content-Type: multipart/form-data; boundary={BOUNDARY}");
    let cases: Vec<(&str, Vec<u8>, String, u16)> = vec![
        // The body ends inside the file's content.
        ("truncated", whole[..whole.len() / 2].to_vec(), content_type.clone(), 400),
        // No closing delimiter.
        ("unclosed", whole[..whole.len() - 4].to_vec(), content_type.clone(), 400),
        // The boundary's text inside the content, not followed by a line end.
        (
            "boundary in content",
            format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=f; filename=x\r\n\r\nab\r\n--{BOUNDARY}xx\r\n--{BOUNDARY}--")
                .into_bytes(),
            content_type.clone(),
            400,
        ),
        ("no boundary", whole.clone(), "Content-Type: multipart/form-data".into(), 400),
        (
            "bad boundary",
            whole.clone(),
            "Content-Type: multipart/form-data; boundary=\"a\"b\"".into(),
            400,
        ),
        ("no file", form(&[("note", None, b"just a field")]), content_type.clone(), 400),
        (
            "no disposition",
            format!("--{BOUNDARY}\r\nContent-Type: text/plain\r\n\r\nx\r\n--{BOUNDARY}--").into_bytes(),
            content_type.clone(),
            400,
        ),
        (
            "huge part head",
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=f; filename=x\r\nX-Pad: {}\r\n\r\nx\r\n--{BOUNDARY}--",
                "p".repeat(64 * 1024)
            )
            .into_bytes(),
            content_type.clone(),
            400,
        ),
    ];
    for (what, body, content_type, status) in cases {
        let response = server.raw(&request("POST", "/sub/", &[&content_type], &body));
        assert_eq!(response.status, status, "{what}: {}", response.text());
        assert!(site.no_temporary_files(), "{what}: {:?}", site.tree());
    }
    site.expect_tree(&[]);
}

#[test]
fn too_many_parts_are_refused() {
    let site = Site::new();
    let server = site.serve(Some(Uploads::new().max_parts(5)));
    let names: Vec<String> = (0..6).map(|i| format!("f{i}.txt")).collect();
    let parts: Vec<Part<'_>> = names
        .iter()
        .map(|n| ("f", Some(n.as_str()), &b"x"[..]))
        .collect();
    let response = post_form(&server, "/", &form(&parts));
    assert_eq!(response.status, 413, "{}", response.text());
    site.expect_tree(&[]);
    let response = post_form(&server, "/", &form(&parts[..5]));
    assert_eq!(response.status, 201, "{}", response.text());
    assert_eq!(site.read("f4.txt"), b"x");
}

#[test]
fn a_form_goes_to_an_existing_directory() {
    let site = Site::new();
    let server = site.serve(Some(Uploads::new()));
    let body = form(&[("f", Some("a.txt"), b"a")]);
    assert_eq!(post_form(&server, "/missing/", &body).status, 404);
    assert_eq!(post_form(&server, "/plain.txt", &body).status, 409);
    assert_eq!(post_form(&server, "/.git/", &body).status, 403);
    assert_eq!(post_form(&server, "/%2e%2e/", &body).status, 400);
    site.expect_tree(&[]);
}

// ---------------------------------------------------------------------------------------
// Sizes

#[test]
fn too_large_uploads_are_refused_before_and_while_streaming() {
    let site = Site::new();
    let uploads = Uploads::new()
        .max_request_size(64 * 1024)
        .max_file_size(1000);
    let server = site.serve(Some(uploads));
    // By Content-Length: the body is never read.
    let response = send_large(&server, request("PUT", "/big", &[], &vec![b'x'; 1 << 20]));
    assert_eq!(response.status, 413, "{}", response.text());
    let response = put(&server, "/big", &[b'x'; 1001]);
    assert_eq!(response.status, 413, "{}", response.text());
    assert_eq!(put(&server, "/fits", &[b'x'; 1000]).status, 201);
    // Chunked, so no length is known before: counted as it streams.
    let mut chunked = b"PUT /chunked HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\
                        Transfer-Encoding: chunked\r\n\r\n"
        .to_vec();
    for _ in 0..3 {
        chunked.extend_from_slice(b"200\r\n");
        chunked.extend_from_slice(&[b'y'; 0x200]);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let response = server.raw(&chunked);
    assert_eq!(response.status, 413, "{}", response.text());
    // A form's file over the file limit, in a form under the request limit.
    let body = form(&[
        ("a", Some("small.txt"), b"ok"),
        ("b", Some("large.bin"), &[b'z'; 1001]),
    ]);
    assert_eq!(post_form(&server, "/", &body).status, 413);
    // A form over the request limit.
    let parts: Vec<Part<'_>> = (0..80).map(|_| ("f", None, &[b'n'; 1000][..])).collect();
    assert_eq!(post_form(&server, "/", &form(&parts)).status, 413);
    // curl with Expect: 100-continue is answered before it sends anything.
    let local = site.base.write("local.bin", vec![b'x'; 2000]);
    let (raw, response) = curl_raw(&[
        "-H",
        "Expect: 100-continue",
        "--expect100-timeout",
        "10",
        "-T",
        local.to_str().unwrap(),
        &server.url("/curl.bin"),
    ]);
    assert_eq!(response.status, 413);
    assert!(!String::from_utf8_lossy(&raw).contains("100 Continue"));
    site.expect_tree(&["local.bin", "www/fits"]);
}

// ---------------------------------------------------------------------------------------
// Failures mid-body

#[test]
fn a_client_that_hangs_up_mid_upload_leaves_nothing() {
    let site = Site::new();
    let server = site.serve(Some(Uploads::new()));
    for (what, head) in [
        ("put", "PUT /sub/partial.bin HTTP/1.1\r\nHost: t\r\nContent-Length: 1048576\r\n\r\n".to_string()),
        (
            "form",
            format!(
                "POST /sub/ HTTP/1.1\r\nHost: t\r\nContent-Length: 1048576\r\n\
                 Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n\r\n\
                 --{BOUNDARY}\r\nContent-Disposition: form-data; name=f; filename=partial.bin\r\n\r\n"
            ),
        ),
    ] {
        let mut stream = connect(server.addr);
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(&binary(300 * 1024, 7)).unwrap();
        if !flavor().reads_ahead() {
            // A thread per connection streams the body to disk as it comes: the upload is
            // under way, in its temporary file, when the client goes.
            wait_until("the upload to start", || !site.no_temporary_files());
        }
        stream.shutdown(Shutdown::Both).unwrap();
        drop(stream);
        wait_until("the temporary file to go", || site.no_temporary_files());
        // The server goes on: the next upload works.
        let response = put(&server, &format!("/sub/next-{what}.txt"), b"next");
        assert_eq!(response.status, 201, "{what}: {}", response.text());
    }
    site.expect_tree(&["www/sub/next-form.txt", "www/sub/next-put.txt"]);
}

/// A 1 MiB tmpfs, unmounted on drop.
struct SmallDisk {
    path: PathBuf,
}

impl SmallDisk {
    /// `None` (with the reason printed) where it cannot be had: not root, or no mounts.
    fn mount(at: PathBuf) -> Option<SmallDisk> {
        if !running_as_root() {
            println!("skipped: mounting a small tmpfs needs root");
            return None;
        }
        fs::create_dir_all(&at).unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
            .arg(&at)
            .output();
        match mounted {
            Ok(out) if out.status.success() => Some(SmallDisk { path: at }),
            Ok(out) => {
                println!(
                    "skipped: mount failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                None
            }
            Err(err) => {
                println!("skipped: cannot run mount: {err}");
                None
            }
        }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).status();
    }
}

#[test]
fn a_full_disk_answers_507_and_leaves_nothing() {
    let base = TempDir::new();
    let Some(disk) = SmallDisk::mount(base.join("disk")) else {
        return;
    };
    fs::create_dir(disk.path.join("sub")).unwrap();
    let server = serve(
        SimpleHttpHandler::new(&disk.path)
            .unwrap()
            .uploads(Uploads::new()),
    );
    let listing = || {
        let mut names: Vec<String> = fs::read_dir(disk.path.join("sub"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let response = send_large(
        &server,
        request("PUT", "/sub/huge.bin", &[], &binary(2 << 20, 8)),
    );
    assert_eq!(response.status, 507, "{}", response.text());
    assert!(listing().is_empty(), "{:?}", listing());
    let content_type = format!("Content-Type: multipart/form-data; boundary={BOUNDARY}");
    let body = form(&[
        ("a", Some("a.bin"), &binary(600 * 1024, 9)),
        ("b", Some("b.bin"), &binary(600 * 1024, 10)),
    ]);
    let response = send_large(&server, request("POST", "/sub/", &[&content_type], &body));
    assert_eq!(response.status, 507, "{}", response.text());
    assert!(listing().is_empty(), "{:?}", listing());
    // The room is there again: the next upload works.
    let response = put(&server, "/sub/small.txt", b"fits");
    assert_eq!(response.status, 201, "{}", response.text());
    assert_eq!(listing(), ["small.txt"]);
    drop(server);
}

// ---------------------------------------------------------------------------------------
// DELETE, keep-alive, the harness

#[test]
fn delete_removes_files_and_nothing_else() {
    let site = Site::new();
    site.base.write("www/.hidden", "kept");
    let server = site.serve(Some(Uploads::new().delete(true)));
    let delete = |target: &str| server.raw(format!("DELETE {target} HTTP/1.0\r\n\r\n").as_bytes());
    assert_eq!(delete("/exists.txt").status, 204);
    assert!(!site.path("exists.txt").exists());
    assert_eq!(delete("/exists.txt").status, 404);
    assert_eq!(delete("/missing/x").status, 404);
    let response = delete("/sub");
    assert_eq!(response.status, 405);
    assert_eq!(response.header("allow"), Some("GET, HEAD, POST, OPTIONS"));
    assert_eq!(delete("/sub/").status, 405);
    assert_eq!(delete("/.hidden").status, 403);
    assert_eq!(delete("/%2e%2e/outside.txt").status, 400);
    assert!(site.path("sub").is_dir());
    assert_eq!(site.read(".hidden"), b"kept");
    assert_eq!(
        fs::read(site.base.join("outside.txt")).unwrap(),
        b"outside the root"
    );
}

#[test]
fn uploads_on_a_kept_alive_connection() {
    let site = Site::new();
    let files = SimpleHttpHandler::new(site.root())
        .unwrap()
        .uploads(Uploads::new());
    let server = serve(Configured::new(files).protocol_version(Version::HTTP_11));
    let mut client = KeepAlive::connect(server.addr);
    let put = client.request("PUT /one.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\none");
    assert_eq!(put.status, 201);
    // Refused after its (small) body was read: the connection goes on.
    let conflict =
        client.request("PUT /one.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\ntwo");
    assert_eq!(conflict.status, 409);
    let body = form(&[("f", Some("two.txt"), b"two")]);
    let post = format!(
        "POST / HTTP/1.1\r\nHost: t\r\nContent-Type: multipart/form-data; boundary={BOUNDARY}\r\n\
         Content-Length: {}\r\n\r\n{}",
        body.len(),
        String::from_utf8(body).unwrap()
    );
    assert_eq!(client.request(&post).status, 201);
    let get = client.request("GET /one.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!((get.status, get.body.as_slice()), (200, &b"one"[..]));
    assert_eq!(site.read("two.txt"), b"two");
    site.expect_tree(&["www/one.txt", "www/two.txt"]);
}

#[test]
fn the_test_harness_runs_uploads_too() {
    let site = Site::new();
    let files = SimpleHttpHandler::new(site.root())
        .unwrap()
        .uploads(Uploads::new());
    let response = TestRequest::put("/sub/t.txt")
        .body("via TestRequest")
        .run(&files);
    assert_eq!(response.status, 201);
    assert_eq!(site.read("sub/t.txt"), b"via TestRequest");
    // Hostile forms through the server's own request path: a boundary only, a head without
    // its end, many tiny parts.
    let content_type = format!("multipart/form-data; boundary={BOUNDARY}");
    let no_end = format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=f; filename=x\r\n");
    let many =
        format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=f\r\n\r\n\r\n").repeat(500);
    for body in [format!("--{BOUNDARY}"), no_end, many] {
        let response = TestRequest::post("/")
            .header("Content-Type", &content_type)
            .body(body)
            .run(&files);
        assert!(
            matches!(response.status.as_u16(), 400 | 413),
            "{response:?}"
        );
    }
    assert!(site.no_temporary_files(), "{:?}", site.tree());
    site.expect_tree(&["www/sub/t.txt"]);
    // An unread stream of data: never a panic, never a file.
    let response =
        TestRequest::raw(b"PUT /x HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nab".to_vec())
            .run(&files);
    assert_eq!(response.status, 400);
    assert!(!site.path("x").exists());
    assert!(site.no_temporary_files(), "{:?}", site.tree());
}
