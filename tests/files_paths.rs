//! `SimpleHttpHandler` path handling: no spelling of a request target reaches a file outside
//! the served directory, symlinks out of it answer 404 unless followed, and the ordinary
//! mappings (`+`, `%20`, query, fragment) name the right file.
//!
//! Every tree is built in a fresh temporary directory with the secret next to (outside) the
//! served root. Targets that curl would normalise are sent raw over `TcpStream`.

mod files_support;

use files_support::{curl, serve, Served, TempDir};
use http::StatusCode;
use socketserver::files::SimpleHttpHandler;

const SECRET: &str = "TOP-SECRET-7f3a9c";

/// `base/secret` (outside), `base/outside/secret.txt` (outside) and the served `base/root`.
struct Tree {
    base: TempDir,
}

impl Tree {
    fn new() -> Self {
        let base = TempDir::new();
        base.write("secret", SECRET);
        base.write("secret.txt", SECRET);
        base.write("outside/secret.txt", SECRET);
        base.write("root/file.txt", "plain file\n");
        base.write("root/a/inner.txt", "inside a\n");
        base.write("root/a+b.txt", "plus file\n");
        base.write("root/a b.txt", "space file\n");
        // Symlinks out of the root: relative, absolute, and to a directory.
        base.symlink("../secret", "root/link_out");
        base.symlink(base.join("secret.txt"), "root/link_out_abs.txt");
        base.symlink("../outside", "root/outdir");
        // Symlinks that stay inside.
        base.symlink("file.txt", "root/link_in.txt");
        base.symlink("a", "root/linkdir");
        base.symlink(base.join("root/a/inner.txt"), "root/link_in_abs.txt");
        // A loop.
        base.symlink("loop", "root/loop");
        Tree { base }
    }

    fn root(&self) -> std::path::PathBuf {
        self.base.join("root")
    }

    fn serve(&self, follow: bool) -> Served<SimpleHttpHandler> {
        serve(
            SimpleHttpHandler::new(self.root())
                .unwrap()
                .follow_symlinks(follow),
        )
    }
}

fn assert_refused(server: &Served<SimpleHttpHandler>, request: &str) {
    let response = server.raw(request.as_bytes());
    assert!(
        matches!(response.status, 400 | 403 | 404),
        "{request:?} answered {} {}: {:?}",
        response.status,
        response.reason,
        response.text()
    );
    assert!(
        !response.text().contains(SECRET),
        "{request:?} leaked the secret: {:?}",
        response.text()
    );
}

#[test]
fn no_spelling_of_traversal_reaches_the_secret() {
    let tree = Tree::new();
    let server = tree.serve(false);
    // The server works, and the secret is readable to this process, so the refusals below
    // are the path checks at work.
    assert_eq!(server.get("/file.txt").status, 200);
    assert_eq!(
        std::fs::read_to_string(tree.base.join("secret")).unwrap(),
        SECRET
    );
    for target in [
        "/../secret",
        "/%2e%2e/secret",
        "/%2E%2E%2Fsecret",
        "/a/%2e%2e/%2e%2e/secret",
        "/a/../../secret",
        "/..%2fsecret",
        "/..%2Fsecret",
        "/..%5csecret",
        "/..%5Csecret",
        "/..\\secret",
        "/a\\..\\..\\secret",
        "/%00",
        "/a%00.txt",
        "/file.txt%00.html",
        "/%c0%ae%c0%ae/secret",
        "/%c0%ae%c0%ae%c0%afsecret",
        "/%e0%80%ae%e0%80%ae/secret",
        "/%ff",
        "/%2e%2e%2f%2e%2e%2fsecret",
        "/.%2e/secret",
        "/%2e./secret",
        "//secret",
        "///secret",
        "/./../secret",
        "/..",
        "/../",
        "/%2e%2e",
        "/outdir/secret.txt",
        "/outdir/",
        "/outdir/../secret",
    ] {
        assert_refused(&server, &format!("GET {target} HTTP/1.0\r\n\r\n"));
        assert_refused(&server, &format!("HEAD {target} HTTP/1.0\r\n\r\n"));
    }
    // Absolute-form targets contribute their path, which is checked the same way.
    for target in [
        "http://x/../secret",
        "http://x/%2e%2e/secret",
        "http://x/a/../../secret",
        "http://x//secret",
        "http://127.0.0.1/..%2fsecret",
    ] {
        assert_refused(
            &server,
            &format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
        );
    }
    // A POST is a form, never a file, whatever its target.
    let response = server.raw(
        b"POST /../secret HTTP/1.0\r\nContent-Type: application/x-www-form-urlencoded\r\n\
          Content-Length: 3\r\n\r\na=1",
    );
    assert!(!response.text().contains(SECRET));
}

#[test]
fn the_spellings_of_traversal_are_bad_requests() {
    let tree = Tree::new();
    let server = tree.serve(false);
    for target in [
        "/../secret",
        "/%2e%2e/secret",
        "/%2E%2E%2Fsecret",
        "/a/%2e%2e/%2e%2e/secret",
        "/..%2fsecret",
        "/..%5csecret",
        "/%00",
        "/a%00.txt",
        "/a\\..\\..\\secret",
    ] {
        let response = server.get(target);
        assert_eq!(response.status, 400, "{target}: {}", response.text());
    }
    // Bytes that are not UTF-8 are a name's bytes, as Linux has them: an overlong `.` is
    // not a `.`, so these name files that are not there.
    for target in ["/%c0%ae%c0%ae/secret", "/%ff", "/%e0%80%ae%e0%80%ae/secret"] {
        let response = server.get(target);
        assert_eq!(response.status, 404, "{target}: {}", response.text());
    }
    // The same answers through curl, which would normalise `..` without --path-as-is.
    let response = curl(&["--path-as-is", &server.url("/../secret")]);
    assert_eq!(response.status, 400);
    assert!(!response.text().contains(SECRET));
    // Only `..` as a whole segment is special: a name with dots in it is a name (hidden
    // by default, as it starts with a dot).
    let tree_file = tree.base.write("root/..hidden..txt", "dots\n");
    assert!(tree_file.exists());
    assert_eq!(server.get("/..hidden..txt").status, 404);
    let showing = serve(
        SimpleHttpHandler::new(tree.root())
            .unwrap()
            .show_hidden(true),
    );
    assert_eq!(showing.get("/..hidden..txt").text(), "dots\n");
    assert_eq!(showing.get("/a..b/..").status, 400);
}

#[test]
fn translate_path_maps_into_the_root_or_answers_the_status() {
    let tree = Tree::new();
    let handler = SimpleHttpHandler::new(tree.root()).unwrap();
    let root = std::fs::canonicalize(tree.root()).unwrap();
    assert_eq!(handler.directory(), root);
    assert!(!handler.follows_symlinks());
    assert_eq!(
        handler.translate_path("/file.txt?x=1#y"),
        Ok(root.join("file.txt"))
    );
    assert_eq!(
        handler.translate_path("/a%20b.txt"),
        Ok(root.join("a b.txt"))
    );
    assert_eq!(handler.translate_path("/a+b.txt"), Ok(root.join("a+b.txt")));
    assert_eq!(
        handler.translate_path("/link_in.txt"),
        Ok(root.join("file.txt"))
    );
    assert_eq!(
        handler.translate_path("/linkdir/inner.txt"),
        Ok(root.join("a/inner.txt"))
    );
    assert_eq!(
        handler.translate_path("/../secret"),
        Err(StatusCode::BAD_REQUEST)
    );
    assert_eq!(
        handler.translate_path("/%2e%2e/secret"),
        Err(StatusCode::BAD_REQUEST)
    );
    assert_eq!(
        handler.translate_path("/link_out"),
        Err(StatusCode::NOT_FOUND)
    );
    assert_eq!(
        handler.translate_path("/outdir/secret.txt"),
        Err(StatusCode::NOT_FOUND)
    );
    assert_eq!(
        handler.translate_path("/missing"),
        Err(StatusCode::NOT_FOUND)
    );
    assert_eq!(handler.translate_path("/loop"), Err(StatusCode::NOT_FOUND));

    let following = handler.follow_symlinks(true);
    assert!(following.follows_symlinks());
    let secret = std::fs::canonicalize(tree.base.join("secret")).unwrap();
    assert_eq!(following.translate_path("/link_out"), Ok(secret));
    // Following symlinks never lets `..` through.
    assert_eq!(
        following.translate_path("/../secret"),
        Err(StatusCode::BAD_REQUEST)
    );
}

#[test]
fn symlinks_out_of_the_root_are_404_unless_followed() {
    let tree = Tree::new();
    let strict = tree.serve(false);
    for target in [
        "/link_out",
        "/link_out_abs.txt",
        "/outdir/secret.txt",
        "/outdir/",
    ] {
        let response = strict.get(target);
        assert_eq!(response.status, 404, "{target}: {}", response.text());
        assert!(!response.text().contains(SECRET), "{target}");
    }
    // A symlink loop is a missing file, not a server error.
    assert_eq!(strict.get("/loop").status, 404);

    let following = tree.serve(true);
    for target in ["/link_out", "/link_out_abs.txt", "/outdir/secret.txt"] {
        let response = following.get(target);
        assert_eq!(response.status, 200, "{target}: {}", response.text());
        assert_eq!(response.text(), SECRET, "{target}");
    }
    // Following symlinks still refuses `..`.
    assert_refused(&following, "GET /../secret HTTP/1.0\r\n\r\n");
    assert_refused(&following, "GET /%2e%2e/secret HTTP/1.0\r\n\r\n");
}

#[test]
fn symlinks_inside_the_root_are_served() {
    let tree = Tree::new();
    let server = tree.serve(false);
    let response = server.get("/link_in.txt");
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), "plain file\n");
    assert_eq!(
        response.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    let response = server.get("/link_in_abs.txt");
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), "inside a\n");
    // Through a symlinked directory too.
    let response = server.get("/linkdir/inner.txt");
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), "inside a\n");
}

#[test]
fn a_symlinked_directory_is_listed() {
    let tree = Tree::new();
    let server = tree.serve(false);
    let response = server.get("/linkdir/");
    assert_eq!(response.status, 200);
    assert_eq!(
        response.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let page = response.text();
    assert!(page.contains("Directory listing for /linkdir/"), "{page}");
    assert!(
        page.contains("<a href=\"inner.txt\">inner.txt</a>"),
        "{page}"
    );
    // Without the slash: a redirect to the directory form.
    let response = server.get("/linkdir");
    assert_eq!(response.status, 301);
    assert_eq!(response.header("location"), Some("/linkdir/"));
    // The root's listing shows it as a directory and marks the symlinks.
    let page = server.get("/").text();
    assert!(
        page.contains("<a href=\"linkdir/\">linkdir/@</a>"),
        "{page}"
    );
    assert!(
        page.contains("<a href=\"link_in.txt\">link_in.txt@</a>"),
        "{page}"
    );
    assert!(page.contains("<a href=\"a/\">a/</a>"), "{page}");
}

#[test]
fn plus_stays_a_plus_and_percent_20_is_a_space() {
    let tree = Tree::new();
    let server = tree.serve(false);
    for target in ["/a+b.txt", "/a%2Bb.txt", "/a%2bb.txt"] {
        let response = server.get(target);
        assert_eq!(response.status, 200, "{target}");
        assert_eq!(response.text(), "plus file\n", "{target}");
    }
    let response = server.get("/a%20b.txt");
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), "space file\n");
    // Through curl as well.
    assert_eq!(curl(&[&server.url("/a+b.txt")]).text(), "plus file\n");
    assert_eq!(curl(&[&server.url("/a%20b.txt")]).text(), "space file\n");
    // The listing links to both so that following the link finds the file again.
    let page = server.get("/").text();
    assert!(page.contains("href=\"a%2Bb.txt\""), "{page}");
    assert!(page.contains("href=\"a%20b.txt\""), "{page}");
}

#[test]
fn query_and_fragment_are_ignored_for_lookup() {
    let tree = Tree::new();
    let server = tree.serve(false);
    for target in [
        "/file.txt?x=1",
        "/file.txt?",
        "/file.txt#frag",
        "/file.txt?x=1#frag",
        "/file.txt?../../secret",
        "/file.txt?x=/../secret#/../secret",
    ] {
        let response = server.get(target);
        assert_eq!(response.status, 200, "{target}");
        assert_eq!(response.text(), "plain file\n", "{target}");
    }
    // A query does not make a missing file exist.
    assert_eq!(server.get("/missing.txt?file.txt").status, 404);
    let response = curl(&[&server.url("/file.txt?x=1&y=%20")]);
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), "plain file\n");
}

#[test]
fn the_temporary_tree_is_removed() {
    let path = {
        let tree = Tree::new();
        assert!(tree.root().is_dir());
        tree.base.path().to_path_buf()
    };
    assert!(!path.exists(), "{} was left behind", path.display());
}

#[test]
fn an_absolute_symlink_inside_the_root_lists_its_directory() {
    let tree = Tree::new();
    tree.base.symlink(tree.base.join("root/a"), "root/abs_dir");
    let server = tree.serve(false);
    let response = server.get("/abs_dir/");
    assert_eq!(response.status, 200, "{}", response.text());
    assert!(response.text().contains("inner.txt"), "{}", response.text());
    assert_eq!(server.get("/abs_dir/inner.txt").text(), "inside a\n");
    // The root itself, reached by an absolute symlink.
    tree.base.symlink(tree.root(), "root/abs_root");
    assert_eq!(server.get("/abs_root/file.txt").text(), "plain file\n");
}

#[test]
fn fifos_and_sockets_are_not_served_and_do_not_stall_the_server() {
    let tree = Tree::new();
    // A FIFO without a writer would block a plain open() forever.
    nix::unistd::mkfifo(&tree.root().join("fifo"), nix::sys::stat::Mode::S_IRWXU).expect("mkfifo");
    let _socket = std::os::unix::net::UnixListener::bind(tree.root().join("socket"))
        .expect("bind a Unix socket in the root");
    let server = tree.serve(false);
    for target in ["/fifo", "/socket"] {
        let response = server.get(target);
        assert_eq!(response.status, 404, "{target}: {}", response.text());
    }
    assert_eq!(server.get("/file.txt").status, 200);
    // They are still listed, as Python lists them.
    let listing = server.get("/").text();
    assert!(
        listing.contains(">fifo<") && listing.contains(">socket<"),
        "{listing}"
    );
}
