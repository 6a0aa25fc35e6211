//! `SimpleHttpHandler` listings: the HTML table (sizes, dates, parent link, sorting from the
//! query), the JSON form for `Accept: application/json`, hidden dotfiles, `.listing(false)`,
//! the cap on big directories, and names made of any bytes Linux allows, each listed with a
//! link that serves exactly that file.
//!
//! Files with raw-byte names are made with `OsStrExt`; links are followed with this crate's
//! raw client, curl and Python's `http.client`.

mod files_support;

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use files_support::{curl, python, serve, set_mtime, Response, Served, TempDir, MTIME_SECS};
use http::StatusCode;
use socketserver::files::SimpleHttpHandler;

const SECRET: &str = "TOP-SECRET-listing";

fn handler(dir: &TempDir) -> SimpleHttpHandler {
    SimpleHttpHandler::new(dir.path()).unwrap()
}

/// Writes `contents` to the file named by the raw bytes `name` in `dir` (under `under`).
fn write_raw(dir: &TempDir, under: &str, name: &[u8], contents: &[u8]) -> PathBuf {
    let path = dir.join(under).join(OsStr::from_bytes(name));
    fs::write(&path, contents).expect("write a file with a raw name");
    path
}

/// The rows of a listing's table that are entries (not the parent link).
fn rows(page: &str) -> Vec<&str> {
    page.lines()
        .filter(|line| line.starts_with("<tr><td class=\"name\"><a href=\""))
        .collect()
}

/// The link texts of a listing's entries, in order.
fn names(page: &str) -> Vec<String> {
    rows(page)
        .iter()
        .map(|row| {
            let link = row.split_once("<a href=\"").unwrap().1;
            let text = link.split_once("\">").unwrap().1;
            text.split("</a>").next().unwrap().to_string()
        })
        .collect()
}

/// The links of a listing's entries, in order.
fn hrefs(page: &str) -> Vec<String> {
    rows(page)
        .iter()
        .map(|row| {
            let rest = row.split_once("<a href=\"").unwrap().1;
            rest.split('"').next().unwrap().to_string()
        })
        .collect()
}

/// `GET target` with `Accept: application/json`: the response and its JSON.
fn get_json(server: &Served<SimpleHttpHandler>, target: &str) -> (Response, serde_json::Value) {
    let request = format!("GET {target} HTTP/1.0\r\nAccept: application/json\r\n\r\n");
    let response = server.raw(request.as_bytes());
    assert_eq!(response.status, 200, "{target}: {}", response.text());
    let value = serde_json::from_slice(&response.body)
        .unwrap_or_else(|err| panic!("{target}: not JSON ({err}): {}", response.text()));
    (response, value)
}

/// Sets the modification time of the directory `path` to `secs` after the epoch.
fn set_dir_mtime(path: &std::path::Path, secs: u64) {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
    fs::File::open(path)
        .and_then(|dir| dir.set_modified(time))
        .expect("set a directory's modification time");
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn a_listing_is_a_table_of_names_sizes_and_dates() {
    let dir = TempDir::new();
    let notes = dir.write("docs/notes.txt", vec![b'n'; 1536]);
    let tiny = dir.write("docs/tiny.txt", "1");
    let img = dir.mkdir("docs/img");
    dir.mkdir("empty");
    for path in [&notes, &tiny] {
        set_mtime(path, MTIME_SECS);
    }
    set_dir_mtime(&img, MTIME_SECS);
    let server = serve(handler(&dir));

    let response = server.get("/docs/");
    assert_eq!(response.status, 200);
    assert_eq!(
        response.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(response.header("vary"), Some("Accept"));
    let page = response.text();
    assert!(page.starts_with("<!DOCTYPE HTML>\n"), "{page}");
    assert!(page.ends_with("</body>\n</html>\n"), "{page}");
    assert!(page.contains("<title>Directory listing for /docs/</title>"));
    assert!(
        page.contains("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"),
        "{page}"
    );
    assert!(
        page.contains("@media (prefers-color-scheme:dark)"),
        "{page}"
    );
    assert!(
        !page.to_ascii_lowercase().contains("<script"),
        "no JavaScript: {page}"
    );
    assert!(
        page.contains("<p class=\"summary\">3 entries</p>"),
        "{page}"
    );
    assert_eq!(
        rows(&page),
        [
            "<tr><td class=\"name\"><a href=\"img/\">img/</a></td><td class=\"size\">-</td>\
             <td class=\"modified\"><time datetime=\"2001-09-09T01:46:40Z\">2001-09-09 01:46:40</time></td></tr>",
            "<tr><td class=\"name\"><a href=\"notes.txt\">notes.txt</a></td>\
             <td class=\"size\" data-bytes=\"1536\" title=\"1,536 bytes\">1.5 KiB</td>\
             <td class=\"modified\"><time datetime=\"2001-09-09T01:46:40Z\">2001-09-09 01:46:40</time></td></tr>",
            "<tr><td class=\"name\"><a href=\"tiny.txt\">tiny.txt</a></td>\
             <td class=\"size\" data-bytes=\"1\" title=\"1 byte\">1 B</td>\
             <td class=\"modified\"><time datetime=\"2001-09-09T01:46:40Z\">2001-09-09 01:46:40</time></td></tr>",
        ]
    );
    // A parent link below the root, none at it.
    assert!(page.contains("<a class=\"parent\" href=\"../\""), "{page}");
    let root_page = server.get("/").text();
    assert!(!root_page.contains("class=\"parent\""), "{root_page}");
    assert_eq!(names(&root_page), ["docs/", "empty/"]);

    let empty = server.get("/empty/").text();
    assert!(
        empty.contains("<p class=\"summary\">0 entries</p>"),
        "{empty}"
    );
    assert!(empty.contains("Empty directory"), "{empty}");
    assert!(rows(&empty).is_empty());

    // HEAD: the same headers, no body.
    let head = server.raw(b"HEAD /docs/ HTTP/1.0\r\n\r\n");
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(
        head.header("content-length"),
        response.header("content-length")
    );
    assert_eq!(head.header("vary"), Some("Accept"));
}

/// `a.txt` (30 bytes, newest), `B.txt` (10 bytes, oldest), `c.txt` (20 bytes).
fn sortable() -> TempDir {
    let dir = TempDir::new();
    for (name, size, mtime) in [
        ("a.txt", 30, 3_000),
        ("B.txt", 10, 1_000),
        ("c.txt", 20, 2_000),
    ] {
        let path = dir.write(&format!("sort/{name}"), vec![b'x'; size]);
        set_mtime(&path, MTIME_SECS + mtime);
    }
    dir
}

#[test]
fn the_query_sorts_by_name_size_or_date_either_way() {
    let dir = sortable();
    let server = serve(handler(&dir));
    for (query, expected) in [
        ("", ["a.txt", "B.txt", "c.txt"]),
        ("?sort=name&order=asc", ["a.txt", "B.txt", "c.txt"]),
        ("?order=desc", ["c.txt", "B.txt", "a.txt"]),
        ("?sort=size", ["B.txt", "c.txt", "a.txt"]),
        ("?sort=size&order=desc", ["a.txt", "c.txt", "B.txt"]),
        ("?sort=date", ["B.txt", "c.txt", "a.txt"]),
        ("?sort=date&order=desc", ["a.txt", "c.txt", "B.txt"]),
        ("?sort=modified&order=desc", ["a.txt", "c.txt", "B.txt"]),
        // Unknown values fall back to the default.
        ("?sort=owner&order=sideways", ["a.txt", "B.txt", "c.txt"]),
        ("?sort=&order=", ["a.txt", "B.txt", "c.txt"]),
        (
            "?sort=%00%ff&order=%3Cscript%3E",
            ["a.txt", "B.txt", "c.txt"],
        ),
    ] {
        let response = server.get(&format!("/sort/{query}"));
        assert_eq!(response.status, 200, "{query}");
        assert_eq!(names(&response.text()), expected, "{query}");
    }
    // Through curl, as a user types it.
    let page = curl(&[&server.url("/sort/?sort=size&order=desc")]).text();
    assert_eq!(names(&page), ["a.txt", "c.txt", "B.txt"]);

    // The headings sort: the current column the other way, the others from the top
    // (names from A, sizes and dates from the largest and newest).
    let page = server.get("/sort/").text();
    assert!(
        page.contains(
            "<th class=\"name\" aria-sort=\"ascending\"><a class=\"sort\" \
             href=\"?sort=name&amp;order=desc\">Name \u{25B2}</a></th>"
        ),
        "{page}"
    );
    assert!(
        page.contains("href=\"?sort=size&amp;order=desc\">Size</a>"),
        "{page}"
    );
    assert!(
        page.contains("href=\"?sort=date&amp;order=desc\">Modified (UTC)</a>"),
        "{page}"
    );
    let page = server.get("/sort/?sort=date&order=desc").text();
    assert!(page.contains("aria-sort=\"descending\""), "{page}");
    assert!(
        page.contains("href=\"?sort=date&amp;order=asc\">Modified (UTC) \u{25BC}</a>"),
        "{page}"
    );
    assert!(
        page.contains("href=\"?sort=name&amp;order=asc\">Name</a>"),
        "{page}"
    );
    // The JSON form sorts the same way, and says how.
    let (_, json) = get_json(&server, "/sort/?sort=size&order=desc");
    assert_eq!(json["sort"], "size");
    assert_eq!(json["order"], "desc");
    let listed: Vec<&str> = json["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ["a.txt", "c.txt", "B.txt"]);
}

#[test]
fn clients_that_accept_json_get_the_listing_as_json() {
    let dir = sortable();
    let outside = TempDir::new();
    // A size and a date that must not show in the listing.
    let secret = outside.write("secret.txt", vec![b's'; 7_777]);
    set_mtime(&secret, 1_234_567_890);
    let sub = dir.mkdir("sort/sub");
    set_dir_mtime(&sub, MTIME_SECS);
    dir.symlink("a.txt", "sort/link_in");
    dir.symlink("sub", "sort/link_dir");
    dir.symlink(outside.join("secret.txt"), "sort/link_out");
    dir.symlink("missing", "sort/dangling");
    let server = serve(handler(&dir));

    let (response, json) = get_json(&server, "/sort/");
    assert_eq!(response.header("content-type"), Some("application/json"));
    assert_eq!(response.header("vary"), Some("Accept"));
    assert_eq!(json["path"], "/sort/");
    assert_eq!(json["total"], 8);
    assert_eq!(json["shown"], 8);
    let entries = json["entries"].as_array().unwrap();
    let a = &entries[0];
    assert_eq!(
        *a,
        serde_json::json!({
            "name": "a.txt",
            "href": "a.txt",
            "type": "file",
            "size": 30,
            "mtime": MTIME_SECS + 3000,
            "modified": "2001-09-09T02:36:40Z",
        })
    );
    let by_name = |name: &str| {
        entries
            .iter()
            .find(|e| e["name"] == name)
            .unwrap_or_else(|| panic!("{name} not listed: {json}"))
    };
    assert_eq!(by_name("sub")["type"], "dir");
    assert_eq!(by_name("sub")["href"], "sub/");
    assert!(by_name("sub")["size"].is_null());
    // A symlink is described by what a request for it gets: the file inside, the
    // directory (linked with its slash), nothing for a link out or a dangling one.
    assert_eq!(by_name("link_in")["type"], "symlink");
    assert_eq!(by_name("link_in")["size"], 30);
    assert_eq!(by_name("link_dir")["href"], "link_dir/");
    for name in ["link_out", "dangling"] {
        let entry = by_name(name);
        assert_eq!(entry["type"], "symlink", "{name}");
        assert_eq!(entry["href"], name);
        assert!(
            entry["size"].is_null() && entry["mtime"].is_null(),
            "{name}: {entry}"
        );
    }
    assert!(!response.text().contains("7777"), "{json}");
    assert!(!response.text().contains("1234567890"), "{json}");
    assert!(!response.text().contains("2009-02-13"), "{json}");

    // Python's http.client, reading the JSON and following every link in it.
    let out = python(
        "import http.client, json, sys\n\
         def get(path, accept):\n\
         \x20   c = http.client.HTTPConnection('127.0.0.1', int(sys.argv[1]), timeout=10)\n\
         \x20   c.request('GET', path, headers={'Accept': accept})\n\
         \x20   return c.getresponse()\n\
         r = get('/sort/', 'application/json')\n\
         print(r.status, r.getheader('Content-Type'), r.getheader('Vary'))\n\
         listing = json.loads(r.read())\n\
         for e in listing['entries']:\n\
         \x20   f = get('/sort/' + e['href'], '*/*')\n\
         \x20   print(e['name'], e['type'], e['size'], e['modified'], f.status)\n\
         r = get('/sort/', 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8')\n\
         print(r.status, r.getheader('Content-Type'), r.getheader('Vary'))\n",
        &[&server.port().to_string()],
    );
    assert_eq!(
        out,
        "200 application/json Accept\n\
         a.txt file 30 2001-09-09T02:36:40Z 200\n\
         B.txt file 10 2001-09-09T02:03:20Z 200\n\
         c.txt file 20 2001-09-09T02:20:00Z 200\n\
         dangling symlink None None 404\n\
         link_dir symlink None 2001-09-09T01:46:40Z 200\n\
         link_in symlink 30 2001-09-09T02:36:40Z 200\n\
         link_out symlink None None 404\n\
         sub dir None 2001-09-09T01:46:40Z 200\n\
         200 text/html; charset=utf-8 Accept\n"
    );

    // A file is a file, whatever the client accepts.
    let file = server.raw(b"GET /sort/a.txt HTTP/1.0\r\nAccept: application/json\r\n\r\n");
    assert_eq!(file.body, vec![b'x'; 30]);
    assert_eq!(file.header("vary"), None);
}

#[test]
fn dotfiles_are_hidden_and_404_unless_shown() {
    let dir = TempDir::new();
    dir.write(".git/config", "[core]");
    dir.write(".env", "TOKEN=1");
    dir.write("a/.env", "TOKEN=2");
    dir.write("a/b.txt", "b");
    dir.write(".hidden/x", "x");
    dir.mkdir(".hidden/sub");
    dir.write("visible.txt", "v");
    let server = serve(handler(&dir));
    for target in [
        "/.git/config",
        "/.git/",
        "/.git",
        "/.env",
        "/a/.env",
        "/.hidden/x",
        "/.hidden/",
        "/.hidden",
        "/.hidden/sub/",
        "/%2Egit/config",
        "/a/%2eenv",
        "/./.env",
        "//.env",
        "/a/./.env",
    ] {
        for method in ["GET", "HEAD"] {
            let response = server.raw(format!("{method} {target} HTTP/1.0\r\n\r\n").as_bytes());
            assert_eq!(
                response.status,
                404,
                "{method} {target}: {}",
                response.text()
            );
            assert!(!response.text().contains("TOKEN"), "{target}");
        }
    }
    assert_eq!(curl(&[&server.url("/.git/config")]).status, 404);
    assert_eq!(server.get("/visible.txt").text(), "v");
    assert_eq!(server.get("/a/b.txt").text(), "b");
    // Not listed, not counted.
    assert_eq!(names(&server.get("/").text()), ["a/", "visible.txt"]);
    assert_eq!(names(&server.get("/a/").text()), ["b.txt"]);
    let (_, json) = get_json(&server, "/a/");
    assert_eq!(json["total"], 1);
    assert!(!json.to_string().contains(".env"), "{json}");
    let files = handler(&dir);
    assert_eq!(
        files.translate_path("/.git/config"),
        Err(StatusCode::NOT_FOUND)
    );

    // Shown: served, listed, and a directory redirects to its slash.
    let showing = serve(handler(&dir).show_hidden(true));
    assert_eq!(showing.get("/.git/config").text(), "[core]");
    assert_eq!(showing.get("/a/%2eenv").text(), "TOKEN=2");
    assert_eq!(showing.get("/.hidden/x").text(), "x");
    let redirect = showing.get("/.hidden");
    assert_eq!(redirect.status, 301);
    assert_eq!(redirect.header("location"), Some("/.hidden/"));
    assert_eq!(
        names(&showing.get("/").text()),
        [".env", ".git/", ".hidden/", "a/", "visible.txt"]
    );
    assert_eq!(names(&showing.get("/a/").text()), [".env", "b.txt"]);
}

#[test]
fn without_listings_a_directory_without_an_index_page_is_404() {
    let dir = TempDir::new();
    dir.write("plain/file.txt", "f");
    dir.write("site/index.html", "the site");
    let server = serve(handler(&dir).listing(false));
    for target in ["/", "/plain/", "/plain", "/plain/?sort=size"] {
        let response = server.get(target);
        assert_eq!(response.status, 404, "{target}: {}", response.text());
        assert_eq!(response.header("location"), None, "{target}");
        assert!(!response.text().contains("file.txt"), "{target}");
    }
    let json = server.raw(b"GET /plain/ HTTP/1.0\r\nAccept: application/json\r\n\r\n");
    assert_eq!(json.status, 404);
    // Index pages and files are served as ever, and a directory with an index still
    // redirects to its slash.
    assert_eq!(server.get("/site/").text(), "the site");
    let redirect = server.get("/site");
    assert_eq!(redirect.status, 301);
    assert_eq!(redirect.header("location"), Some("/site/"));
    assert_eq!(server.get("/plain/file.txt").text(), "f");
    // By default the same directory is listed.
    let listing = serve(handler(&dir));
    assert_eq!(names(&listing.get("/plain/").text()), ["file.txt"]);
}

#[test]
fn a_big_directory_is_listed_up_to_the_cap_with_a_note() {
    let dir = TempDir::new();
    let big = dir.mkdir("big");
    for i in 0..20_000 {
        fs::File::create(big.join(format!("f-{i:05}"))).unwrap();
    }
    fs::write(big.join("f-12345"), vec![b'x'; 100]).unwrap();
    fs::write(big.join("f-00007"), vec![b'x'; 50]).unwrap();
    let server = serve(handler(&dir));

    let page = server.get("/big/").text();
    let listed = names(&page);
    assert_eq!(listed.len(), 10_000);
    assert_eq!(listed[0], "f-00000");
    assert_eq!(listed[9_999], "f-09999");
    assert!(
        page.contains(
            "<p class=\"summary note\">10,000 of 20,000 entries shown: the first by name, \
             ascending. A listing shows at most 10,000; sort by another column to see \
             others.</p>"
        ),
        "{}",
        &page[..page.len().min(3000)]
    );
    let page = server.get("/big/?order=desc").text();
    let listed = names(&page);
    assert_eq!(listed.len(), 10_000);
    assert_eq!((&*listed[0], &*listed[9_999]), ("f-19999", "f-10000"));
    assert!(page.contains("the first by name, descending"));
    let listed = names(&server.get("/big/?sort=size&order=desc").text());
    assert_eq!(listed[..3], ["f-12345", "f-00007", "f-00000"]);
    // Then the empty files by name, without the two already shown.
    assert_eq!(listed[9_999], "f-09998");

    let (_, json) = get_json(&server, "/big/?sort=size&order=desc");
    assert_eq!(json["total"], 20_000);
    assert_eq!(json["shown"], 10_000);
    assert_eq!(json["entries"].as_array().unwrap().len(), 10_000);
    assert_eq!(json["entries"][0]["size"], 100);

    // A cap of one's own, larger or smaller.
    let all = serve(handler(&dir).max_listing(25_000));
    let page = all.get("/big/").text();
    assert_eq!(names(&page).len(), 20_000);
    assert!(page.contains("<p class=\"summary\">20,000 entries</p>"));
    let few = serve(handler(&dir).max_listing(3));
    let page = few.get("/big/?sort=size&order=desc").text();
    assert_eq!(names(&page), ["f-12345", "f-00007", "f-00000"]);
    assert!(page.contains("3 of 20,000 entries shown"), "{page}");
}

/// Names Linux allows and a URL must encode: bytes that are not UTF-8, backslashes, `%`,
/// `?`, `#`, control characters, markup, and names that look like encodings themselves.
const ODD_NAMES: [&[u8]; 20] = [
    b"caf\xe9.txt",
    b"\xff\xfe\xfd",
    b"\xc0\xae\xc0\xae",
    b"back\\slash.txt",
    b"\\",
    b"100% sure",
    b"what?.txt",
    b"hash#tag",
    b"new\nline",
    b"tab\there\r",
    b"\x1b[31mred",
    b"a b+c",
    b"javascript:alert(1)",
    b"<b>&amp;\"'",
    b"%2e%2e",
    b"%2f",
    b"..x",
    b"~tilde",
    b"trailing space ",
    "emoji-😀".as_bytes(),
];

#[test]
fn any_name_linux_allows_is_listed_with_a_link_that_serves_it() {
    let dir = TempDir::new();
    dir.mkdir("odd");
    let expected: BTreeSet<String> = ODD_NAMES
        .iter()
        .map(|name| {
            write_raw(&dir, "odd", name, hex(name).as_bytes());
            hex(name)
        })
        .collect();
    let server = serve(handler(&dir).show_hidden(true));
    let page = server.get("/odd/").text();
    let links = hrefs(&page);
    assert_eq!(links.len(), ODD_NAMES.len(), "{page}");
    for link in &links {
        assert!(
            link.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~%".contains(&b)),
            "not fully percent-encoded: {link:?}"
        );
    }
    // Every link serves its own file: the bodies are the names, each once.
    let served: BTreeSet<String> = links
        .iter()
        .map(|link| {
            let response = server.get(&format!("/odd/{link}"));
            assert_eq!(response.status, 200, "/odd/{link}");
            response.text()
        })
        .collect();
    assert_eq!(served, expected);
    // And through curl, which sends a link as it is given.
    let by_curl: BTreeSet<String> = links
        .iter()
        .map(|link| curl(&[&server.url(&format!("/odd/{link}"))]).text())
        .collect();
    assert_eq!(by_curl, expected);
    // And through Python, from the JSON listing.
    let out = python(
        "import http.client, json, sys\n\
         def get(path, accept='*/*'):\n\
         \x20   c = http.client.HTTPConnection('127.0.0.1', int(sys.argv[1]), timeout=10)\n\
         \x20   c.request('GET', path, headers={'Accept': accept})\n\
         \x20   return c.getresponse()\n\
         entries = json.loads(get('/odd/', 'application/json').read())['entries']\n\
         for e in entries:\n\
         \x20   print(get('/odd/' + e['href']).read().decode())\n",
        &[&server.port().to_string()],
    );
    let by_python: BTreeSet<String> = out.lines().map(str::to_string).collect();
    assert_eq!(by_python, expected);

    // Shown as text: lossy where not UTF-8, control characters as pictures, escaped.
    let shown = names(&page);
    for name in [
        "caf\u{FFFD}.txt",
        "\u{FFFD}\u{FFFD}\u{FFFD}",
        "back\\slash.txt",
        "new\u{240A}line",
        "tab\u{2409}here\u{240D}",
        "\u{241B}[31mred",
        "&lt;b&gt;&amp;amp;&quot;&#x27;",
        "javascript:alert(1)",
        "%2e%2e",
    ] {
        assert!(shown.iter().any(|s| s == name), "{name:?} not in {shown:?}");
    }
    assert!(!page.contains("<b>"));
    assert!(!page.contains("href=\"javascript:"));
    let (_, json) = get_json(&server, "/odd/");
    let json_names: Vec<&str> = json["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    for name in [
        "caf\u{FFFD}.txt",
        "new\nline",
        "tab\there\r",
        "<b>&amp;\"'",
        "\\",
    ] {
        assert!(json_names.contains(&name), "{name:?} not in {json_names:?}");
    }
}

#[test]
fn directories_with_raw_names_are_listed_and_redirected() {
    let dir = TempDir::new();
    let raw = b"d\xe9j\xe0 vu\\";
    let sub = dir.path().join(OsStr::from_bytes(raw));
    fs::create_dir(&sub).unwrap();
    fs::write(sub.join("inside.txt"), "inside").unwrap();
    let server = serve(handler(&dir));
    let root_page = server.get("/").text();
    assert_eq!(hrefs(&root_page), ["d%E9j%E0%20vu%5C/"]);
    let redirect = server.get("/d%E9j%E0%20vu%5C");
    assert_eq!(redirect.status, 301);
    assert_eq!(redirect.header("location"), Some("/d%E9j%E0%20vu%5C/"));
    let page = server.get("/d%e9j%e0%20vu%5c/").text();
    assert!(
        page.contains("<title>Directory listing for /d\u{FFFD}j\u{FFFD} vu\\/</title>"),
        "{page}"
    );
    assert_eq!(names(&page), ["inside.txt"]);
    assert_eq!(server.get("/d%E9j%E0%20vu%5C/inside.txt").text(), "inside");
}

#[test]
fn an_encoded_slash_is_never_a_separator() {
    let dir = TempDir::new();
    dir.write("dir/file", "the file");
    let server = serve(handler(&dir));
    assert_eq!(server.get("/dir/file").text(), "the file");
    for target in [
        "/dir/file%2f",
        "/dir/file%2F",
        "/dir%2ffile",
        "/dir%2F",
        "/%2Fdir/file",
        "/dir/file/",
    ] {
        let response = server.get(target);
        assert_eq!(response.status, 404, "{target}: {}", response.text());
        assert!(!response.text().contains("the file"), "{target}");
    }
    assert_eq!(curl(&[&server.url("/dir/file%2f")]).status, 404);
}

#[test]
fn a_backslash_is_part_of_a_name_and_never_a_way_up() {
    let base = TempDir::new();
    base.write("secret", SECRET);
    base.write("root/sub/f.txt", "f");
    write_raw(&base, "root", b"a\\b", b"backslashed");
    fs::create_dir(base.join("root").join("x\\y")).unwrap();
    write_raw(&base, "root/x\\y", b"in.txt", b"in x\\y");
    let server = serve(SimpleHttpHandler::new(base.join("root")).unwrap());
    assert_eq!(server.get("/a%5Cb").text(), "backslashed");
    assert_eq!(server.get("/a%5cb").text(), "backslashed");
    assert_eq!(
        server.raw(b"GET /a\\b HTTP/1.0\r\n\r\n").text(),
        "backslashed"
    );
    assert_eq!(curl(&[&server.url("/a%5Cb")]).text(), "backslashed");
    assert_eq!(names(&server.get("/x%5Cy/").text()), ["in.txt"]);
    assert_eq!(server.get("/x%5Cy/in.txt").text(), "in x\\y");
    // `..` between backslashes is still `..` to someone: refused, as every other spelling.
    for target in [
        "/..%5csecret",
        "/..%5Csecret",
        "/sub/..%5c..%5csecret",
        "/a%5c..%5c..%5csecret",
        "/sub/..\\..\\secret",
        "/x%5Cy/..%5C..%5Csecret",
        "/%2e%2e%5csecret",
    ] {
        let response = server.raw(format!("GET {target} HTTP/1.0\r\n\r\n").as_bytes());
        assert_eq!(response.status, 400, "{target}: {}", response.text());
        assert!(!response.text().contains(SECRET), "{target}");
    }
}
