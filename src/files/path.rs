//! From a request target to a file under the served directory, never outside it.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use http::StatusCode;
use nix::errno::Errno;
use nix::fcntl::{open, openat2, AtFlags, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{fstatat, Mode};
use percent_encoding::percent_decode_str;

use super::cache::Identity;

/// The served directory, held open: files are opened relative to it by the kernel, which
/// refuses in the same call any path that resolves outside it (`openat2` with
/// `RESOLVE_BENEATH`, Linux 5.6). One system call replaces resolving every component of
/// the path in user space and racing the file system between the check and the open.
#[derive(Clone, Debug)]
pub(crate) struct Root {
    /// The canonical path of the directory.
    path: PathBuf,
    dir: Arc<OwnedFd>,
    /// Whether this kernel has `openat2`; without it, paths are resolved in user space.
    beneath: bool,
}

/// How files are opened for serving: read-only, and without blocking on a FIFO that has
/// no writer (such a file is then refused as not regular).
const OPEN_FLAGS: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_CLOEXEC)
    .union(OFlag::O_NOCTTY)
    .union(OFlag::O_NONBLOCK);

impl Root {
    /// Opens `path`, which must be a directory, and returns it with its canonical path.
    pub(crate) fn open(path: &Path) -> io::Result<Root> {
        let path = std::fs::canonicalize(path)?;
        let dir = open(
            &path,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|errno| match errno {
            Errno::ENOTDIR => io::Error::new(
                io::ErrorKind::NotADirectory,
                format!("{} is not a directory", path.display()),
            ),
            errno => io::Error::from(errno),
        })?;
        // Seccomp filters in some containers answer EPERM for system calls they do not know.
        let beneath = !matches!(
            openat2(&dir, ".", Self::how(false)),
            Err(Errno::ENOSYS | Errno::EPERM)
        );
        Ok(Root {
            path,
            dir: Arc::new(dir),
            beneath,
        })
    }

    /// The canonical path of the directory.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// What identifies the file `relative` names now, following symlinks: to check that a
    /// file opened earlier (beneath the root) is still the one there.
    pub(crate) fn stat(&self, relative: &Path) -> nix::Result<Identity> {
        fstatat(&*self.dir, relative, AtFlags::empty()).map(|stat| Identity::of_stat(&stat))
    }

    fn how(follow_symlinks: bool) -> OpenHow {
        let resolve = if follow_symlinks {
            ResolveFlag::empty()
        } else {
            ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_MAGICLINKS
        };
        OpenHow::new().flags(OPEN_FLAGS).resolve(resolve)
    }

    /// Opens the file or directory at `relative` (from [`translate`]) for reading. Symlinks
    /// inside the directory are followed; one that leads out of it answers 404 unless
    /// `follow_symlinks`. The error is the status to answer, as for [`resolve`].
    pub(crate) fn open_file(
        &self,
        relative: &Path,
        follow_symlinks: bool,
    ) -> Result<File, StatusCode> {
        if !self.beneath {
            let real = resolve(&self.path, &self.path.join(relative), follow_symlinks)?;
            return OpenOptions::new()
                .read(true)
                .custom_flags((OFlag::O_NOCTTY | OFlag::O_NONBLOCK).bits())
                .open(real)
                .map_err(|err| status_for(&err));
        }
        let relative = match relative.as_os_str().is_empty() {
            true => Path::new("."),
            false => relative,
        };
        let how = Self::how(follow_symlinks);
        let opened = match openat2(&*self.dir, relative, how) {
            // The kernel refuses absolute symlinks even when they point inside: resolve
            // them here, then open what they lead to, still beneath the root.
            Err(Errno::EXDEV) => {
                let real = resolve(&self.path, &self.path.join(relative), false)?;
                let inside = match real.strip_prefix(&self.path) {
                    Ok(inside) if !inside.as_os_str().is_empty() => inside,
                    _ => Path::new("."),
                };
                openat2(&*self.dir, inside, how)
            }
            opened => opened,
        };
        opened
            .map(File::from)
            .map_err(|errno| status_for(&io::Error::from(errno)))
    }
}

/// A request target mapped into the served directory.
#[derive(Debug)]
pub(crate) struct Target {
    /// The file or directory, under the root (symlinks not yet resolved).
    pub path: PathBuf,
    /// The same, relative to the root (empty for the root itself).
    pub relative: PathBuf,
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
    let mut relative = PathBuf::new();
    for segment in decoded.split('/') {
        match segment {
            "" | "." => {}
            ".." => return Err(StatusCode::BAD_REQUEST),
            s if s.contains(['\0', '\\']) => return Err(StatusCode::BAD_REQUEST),
            s => relative.push(s),
        }
    }
    Ok(Target {
        path: root.join(&relative),
        relative,
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
        // Too long, a symlink loop, out of the root (EXDEV from `RESOLVE_BENEATH`), or a
        // socket file: nothing to serve under that name.
        _ => match err.raw_os_error().map(Errno::from_raw) {
            Some(Errno::ENAMETOOLONG | Errno::ELOOP | Errno::EXDEV | Errno::ENXIO) => {
                StatusCode::NOT_FOUND
            }
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        },
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

    /// Kernels before 5.6 resolve paths in user space: the answers must be the same.
    #[test]
    fn opens_the_same_files_with_and_without_openat2() {
        use std::os::unix::fs::symlink;
        let base = std::env::temp_dir().join(format!("socketserver-root-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(base.join("root/a")).unwrap();
        std::fs::write(base.join("secret"), "s").unwrap();
        std::fs::write(base.join("root/a/f.txt"), "f").unwrap();
        symlink("../secret", base.join("root/out")).unwrap();
        symlink(base.join("secret"), base.join("root/out_abs")).unwrap();
        symlink("a/f.txt", base.join("root/in")).unwrap();
        symlink(base.join("root/a"), base.join("root/in_abs")).unwrap();
        symlink("loop", base.join("root/loop")).unwrap();

        let kernel = Root::open(&base.join("root")).unwrap();
        assert!(kernel.beneath, "this kernel has openat2");
        let user_space = Root {
            beneath: false,
            ..kernel.clone()
        };
        let cases: [(&str, bool, Result<&str, StatusCode>); 10] = [
            ("", false, Ok("dir")),
            ("a/f.txt", false, Ok("f")),
            ("in", false, Ok("f")),
            ("in_abs/f.txt", false, Ok("f")),
            ("in_abs", false, Ok("dir")),
            ("out", false, Err(StatusCode::NOT_FOUND)),
            ("out_abs", false, Err(StatusCode::NOT_FOUND)),
            ("missing", false, Err(StatusCode::NOT_FOUND)),
            ("loop", false, Err(StatusCode::NOT_FOUND)),
            ("out_abs", true, Ok("s")),
        ];
        for root in [&kernel, &user_space] {
            for (relative, follow, expected) in &cases {
                let opened = root.open_file(Path::new(relative), *follow).map(|file| {
                    if file.metadata().unwrap().is_dir() {
                        "dir".to_string()
                    } else {
                        std::io::read_to_string(file).unwrap()
                    }
                });
                let expected = expected.map(str::to_string);
                assert_eq!(opened, expected, "{relative} (openat2: {})", root.beneath);
            }
        }
        std::fs::remove_dir_all(&base).unwrap();
    }
}
