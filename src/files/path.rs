//! From a request target to a file under the served directory, never outside it.

use std::io;
use std::path::{Path, PathBuf};

use http::StatusCode;
use percent_encoding::percent_decode_str;

/// A request target mapped into the served directory.
#[derive(Debug)]
pub(crate) struct Target {
    /// The file or directory, under the root (symlinks not yet resolved).
    pub path: PathBuf,
    /// The path part of the target as sent (still percent-encoded), for redirects.
    pub raw_path: String,
    /// The query, without `?`.
    pub query: Option<String>,
    /// The decoded path, for display.
    pub decoded: String,
}

/// Maps `target` into `root`: Python's `translate_path`, stricter.
///
/// The query and fragment are ignored; an absolute-form target contributes its path. The
/// path is percent-decoded once and must be UTF-8 (which also refuses overlong encodings);
/// `+` stays a plus. A segment that is `..`, or holds a NUL or a backslash, is refused with
/// 400: no request can name a file outside `root` by its spelling. Symlinks are checked
/// separately by [`resolve`].
pub(crate) fn translate(root: &Path, target: &str) -> Result<Target, StatusCode> {
    let without_fragment = target.split('#').next().unwrap_or("");
    let (path, query) = match without_fragment.split_once('?') {
        Some((p, q)) => (p, Some(q.to_string())),
        None => (without_fragment, None),
    };
    let path = if path.starts_with('/') {
        path.to_string()
    } else {
        // absolute-form: http://host/path
        let uri: http::Uri = path.parse().map_err(|_| StatusCode::BAD_REQUEST)?;
        if uri.scheme().is_none() {
            return Err(StatusCode::BAD_REQUEST);
        }
        uri.path().to_string()
    };
    let decoded = percent_decode_str(&path)
        .decode_utf8()
        .map_err(|_| StatusCode::BAD_REQUEST)?
        .into_owned();
    let mut file = root.to_path_buf();
    for segment in decoded.split('/') {
        match segment {
            "" | "." => {}
            ".." => return Err(StatusCode::BAD_REQUEST),
            s if s.contains(['\0', '\\']) => return Err(StatusCode::BAD_REQUEST),
            s => file.push(s),
        }
    }
    Ok(Target {
        path: file,
        raw_path: path,
        query,
        decoded,
    })
}

/// Resolves symlinks in `path` and checks the result is still under `root` (itself
/// canonical) unless `follow_symlinks`. The error is the status to answer: 404 for a
/// missing file or one outside the root (its existence is not revealed), 403 when the
/// system refuses access.
pub(crate) fn resolve(
    root: &Path,
    path: &Path,
    follow_symlinks: bool,
) -> Result<PathBuf, StatusCode> {
    let real = std::fs::canonicalize(path).map_err(|e| status_for(&e))?;
    if follow_symlinks || real.starts_with(root) {
        Ok(real)
    } else {
        Err(StatusCode::NOT_FOUND)
    }
}

/// The status for a failed file-system call.
pub(crate) fn status_for(err: &io::Error) -> StatusCode {
    match err.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory => StatusCode::NOT_FOUND,
        io::ErrorKind::PermissionDenied => StatusCode::FORBIDDEN,
        _ if err.raw_os_error() == Some(nix::errno::Errno::ENAMETOOLONG as i32) => {
            StatusCode::NOT_FOUND
        }
        _ if err.raw_os_error() == Some(nix::errno::Errno::ELOOP as i32) => StatusCode::NOT_FOUND,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(target: &str) -> Result<PathBuf, StatusCode> {
        translate(Path::new("/srv"), target).map(|t| t.path)
    }

    #[test]
    fn maps_paths_under_the_root() {
        assert_eq!(t("/"), Ok(PathBuf::from("/srv")));
        assert_eq!(t("/a/b.txt?x=1#f"), Ok(PathBuf::from("/srv/a/b.txt")));
        assert_eq!(t("/a%20b/c+d"), Ok(PathBuf::from("/srv/a b/c+d")));
        assert_eq!(t("//a/./b/"), Ok(PathBuf::from("/srv/a/b")));
        assert_eq!(t("http://h/x/y"), Ok(PathBuf::from("/srv/x/y")));
        assert_eq!(t("/%E4%B8%AD"), Ok(PathBuf::from("/srv/中")));
    }

    #[test]
    fn refuses_every_spelling_of_traversal() {
        for bad in [
            "/..",
            "/../etc/passwd",
            "/a/../../etc",
            "/%2e%2e/etc",
            "/%2E%2E%2Fetc",
            "/a%2f..%2f..%2fetc",
            "/..%5c..%5cetc",
            "/a\\..\\b",
            "/a%00b",
            "/%c0%ae%c0%ae/etc",
            "/%ff",
            "x/y",
            "*",
        ] {
            assert!(t(bad).is_err(), "{bad}");
        }
    }
}
