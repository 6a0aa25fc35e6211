//! From a request target to a file under the served directory, never outside it.

use std::ffi::OsStr;
use std::fs::{File, Metadata};
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use http::StatusCode;
use nix::errno::Errno;
use nix::fcntl::{open, openat2, AtFlags, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{fstat, fstatat, Mode};
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
    dir: Arc<OpenDir>,
    /// Whether this kernel has `openat2`; without it, paths are resolved in user space.
    pub(crate) beneath: bool,
}

/// The directory's descriptor, checked against its path once a second: a directory
/// replaced by rename, or deleted and made again (`rm -rf site && build`), is served as soon
/// as it is there, as Python's lookup by path on every request would.
#[derive(Debug)]
struct OpenDir {
    /// The descriptor, with the device and inode it was opened on.
    current: Mutex<(Arc<OwnedFd>, (u64, u64))>,
    /// The second of the last check, since the epoch.
    checked: AtomicU64,
}

/// How files are opened for serving: read-only, and without blocking on a FIFO that has
/// no writer (such a file is then refused as not regular).
const OPEN_FLAGS: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_CLOEXEC)
    .union(OFlag::O_NOCTTY)
    .union(OFlag::O_NONBLOCK);

/// How often `openat2` is tried again when it answers EAGAIN (a rename or mount elsewhere
/// raced a lookup through `..`), before the path is resolved in user space.
const RETRIES: usize = 3;

fn now_second() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Opens the directory at `path` (canonical) and tells its device and inode.
fn open_dir(path: &Path) -> io::Result<(OwnedFd, (u64, u64))> {
    let dir = open(
        path,
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
    let stat = fstat(&dir)?;
    #[allow(clippy::useless_conversion, clippy::unnecessary_cast)]
    let identity = (stat.st_dev as u64, stat.st_ino as u64);
    Ok((dir, identity))
}

impl Root {
    /// Opens `path`, which must be a directory, and returns it with its canonical path.
    pub(crate) fn open(path: &Path) -> io::Result<Root> {
        let path = std::fs::canonicalize(path)?;
        let (dir, identity) = open_dir(&path)?;
        // Seccomp filters in some containers answer EPERM for system calls they do not know.
        let beneath = !matches!(
            openat2(&dir, ".", Self::how(false, OFlag::O_PATH)),
            Err(Errno::ENOSYS | Errno::EPERM)
        );
        Ok(Root {
            path,
            dir: Arc::new(OpenDir {
                current: Mutex::new((Arc::new(dir), identity)),
                checked: AtomicU64::new(now_second()),
            }),
            beneath,
        })
    }

    /// The canonical path of the directory.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The directory's descriptor, opened again if its path names another directory now.
    fn dir(&self) -> Arc<OwnedFd> {
        let second = now_second();
        let checked = self.dir.checked.load(Ordering::Relaxed);
        let due = checked != second
            && self
                .dir
                .checked
                .compare_exchange(checked, second, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok();
        // The descriptor and its identity change together; a panic cannot tear them.
        let mut current = self
            .dir
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if due {
            let now = nix::sys::stat::stat(&self.path).ok();
            #[allow(clippy::useless_conversion, clippy::unnecessary_cast)]
            let moved = now.is_some_and(|s| (s.st_dev as u64, s.st_ino as u64) != current.1);
            if moved {
                // If the new one cannot be opened, the old one serves until the next check.
                if let Ok((dir, identity)) = open_dir(&self.path) {
                    *current = (Arc::new(dir), identity);
                }
            }
        }
        Arc::clone(&current.0)
    }

    /// What identifies the file `relative` names now, following symlinks: to check that a
    /// file opened earlier (beneath the root) is still the one there. The lookup itself is
    /// not held beneath the root: a path that now leads out through a symlink and still
    /// reaches the same unchanged inode gets the bytes a moment ago it could have had.
    pub(crate) fn stat(&self, relative: &Path) -> nix::Result<Identity> {
        fstatat(&*self.dir(), relative, AtFlags::empty()).map(|stat| Identity::of_stat(&stat))
    }

    fn how(follow_symlinks: bool, flags: OFlag) -> OpenHow {
        // Magic links (`/proc/self/fd/N`) would reach the server's own descriptors.
        let mut resolve = ResolveFlag::RESOLVE_NO_MAGICLINKS;
        if !follow_symlinks {
            resolve |= ResolveFlag::RESOLVE_BENEATH;
        }
        OpenHow::new().flags(flags).resolve(resolve)
    }

    /// Opens the file or directory at `relative` (from [`translate`]) for reading. Symlinks
    /// inside the directory are followed; one that leads out of it answers 404 unless
    /// `follow_symlinks`. The error is the status to answer, as for [`resolve`].
    ///
    /// A directory that may be searched but not read is opened all the same (as a path):
    /// its index page can be served, its listing answers 403.
    pub(crate) fn open_file(
        &self,
        relative: &Path,
        follow_symlinks: bool,
    ) -> Result<File, StatusCode> {
        let status = |errno| status_for(&io::Error::from(errno));
        match self.open_with(relative, follow_symlinks, OPEN_FLAGS) {
            Err(Errno::EACCES) => {
                let path_only = OFlag::O_PATH | OFlag::O_CLOEXEC;
                let file = self
                    .open_with(relative, follow_symlinks, path_only)
                    .map_err(status)?;
                match file.metadata() {
                    Ok(meta) if meta.is_dir() => Ok(file),
                    _ => Err(StatusCode::FORBIDDEN),
                }
            }
            opened => opened.map_err(status),
        }
    }

    /// The metadata of what `relative` leads to, asked of the file opened beneath the root
    /// as a path only (no read permission needed): `None` for what a request for it would
    /// not get, such as a symlink out of the root when `follow_symlinks` is off, a dangling
    /// symlink or a loop. How a listing learns about a symlink's target without looking
    /// outside.
    pub(crate) fn metadata(&self, relative: &Path, follow_symlinks: bool) -> Option<Metadata> {
        let path_only = OFlag::O_PATH | OFlag::O_CLOEXEC;
        let file = self.open_with(relative, follow_symlinks, path_only).ok()?;
        file.metadata().ok()
    }

    fn open_with(&self, relative: &Path, follow_symlinks: bool, flags: OFlag) -> nix::Result<File> {
        let relative = match relative.as_os_str().is_empty() {
            true => Path::new("."),
            false => relative,
        };
        if !self.beneath {
            let real = self.real_path(relative, follow_symlinks)?;
            return open(&real, flags, Mode::empty()).map(File::from);
        }
        let dir = self.dir();
        let how = Self::how(follow_symlinks, flags);
        let mut opened = openat2(&*dir, relative, how);
        for _ in 0..RETRIES {
            if !matches!(opened, Err(Errno::EAGAIN)) {
                break;
            }
            opened = openat2(&*dir, relative, how);
        }
        match opened {
            // The kernel refuses absolute symlinks even when they point inside (EXDEV): resolve
            // them here, then open what they lead to, still beneath the root.
            Err(Errno::EXDEV | Errno::EAGAIN) => {
                let real = self.real_path(relative, false)?;
                let inside = match real.strip_prefix(&self.path) {
                    Ok(inside) if inside.as_os_str().is_empty() => Path::new("."),
                    Ok(inside) => inside,
                    Err(_) => return Err(Errno::EXDEV),
                };
                openat2(&*dir, inside, how).map(File::from)
            }
            opened => opened.map(File::from),
        }
    }

    /// `relative` with every symlink resolved, by path; EXDEV if that leads out of the root
    /// and symlinks out are not followed.
    fn real_path(&self, relative: &Path, follow_symlinks: bool) -> nix::Result<PathBuf> {
        let real = std::fs::canonicalize(self.path.join(relative))
            .map_err(|err| Errno::from_raw(err.raw_os_error().unwrap_or(Errno::EIO as i32)))?;
        if follow_symlinks || real.starts_with(&self.path) {
            Ok(real)
        } else {
            Err(Errno::EXDEV)
        }
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
    /// The decoded path, for display (bytes that are not UTF-8 shown as U+FFFD).
    pub decoded: String,
    /// Whether a segment of the path starts with `.`: a dotfile, or inside a dot-directory.
    pub hidden: bool,
}

/// Maps `target` into `root`: Python's `translate_path`, stricter.
///
/// The query and fragment are ignored; an absolute-form target contributes its path. The
/// path is split at its slashes, then each segment is percent-decoded once to raw bytes, so
/// any name Linux allows can be asked for (invalid UTF-8, backslashes, `%`, `?`, `#`,
/// newlines); `+` stays a plus. What cannot name a file under `root` is refused:
///
/// - 400 for a segment that is `..`, or that spells `..` between encoded slashes or
///   backslashes (`..%2f`, `..%5c`, `a\..\b`), or holds a NUL: no request names a file
///   outside `root` by its spelling. (On Linux a backslash is an ordinary byte of a name, so
///   `a\b` is the one file `a\b`; only its Windows reading as `..` is refused.)
/// - 404 for a segment with an encoded slash (`file%2f`): a slash can never be part of a
///   name, and an encoded one is never a separator.
///
/// Symlinks are checked separately by [`resolve`] or, when opening, by the kernel.
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
    let mut relative = PathBuf::new();
    let mut hidden = false;
    let mut slash_in_name = false;
    for segment in path.split('/') {
        let name: Vec<u8> = percent_decode_str(segment).collect();
        match segment_kind(&name) {
            Segment::Skip => {}
            Segment::Traversal => return Err(StatusCode::BAD_REQUEST),
            // Not answered yet: a `..` further on is still a 400.
            Segment::Unnameable => slash_in_name = true,
            Segment::Name => {
                hidden |= name.starts_with(b".");
                relative.push(OsStr::from_bytes(&name));
            }
        }
    }
    if slash_in_name {
        return Err(StatusCode::NOT_FOUND);
    }
    let decoded =
        String::from_utf8_lossy(&percent_decode_str(&path).collect::<Vec<u8>>()).into_owned();
    Ok(Target {
        path: root.join(&relative),
        relative,
        raw_path: path,
        query,
        decoded,
        hidden,
    })
}

/// What a decoded path segment is to [`translate`].
#[derive(Debug, PartialEq, Eq)]
enum Segment {
    /// Empty or `.`: names the directory it is in.
    Skip,
    /// `..` in some spelling, or a NUL: a request trying to leave its directory.
    Traversal,
    /// Holds a slash (sent as `%2f`): no file has such a name.
    Unnameable,
    /// A file name.
    Name,
}

fn segment_kind(name: &[u8]) -> Segment {
    let parts_hold_dotdot = |separators: &[u8]| {
        name.split(|b| separators.contains(b))
            .any(|part| part == b"..")
    };
    match name {
        b"" | b"." => Segment::Skip,
        b".." => Segment::Traversal,
        _ if name.contains(&0) || parts_hold_dotdot(b"/\\") => Segment::Traversal,
        _ if name.contains(&b'/') => Segment::Unnameable,
        _ => Segment::Name,
    }
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
        assert_eq!(t("/100%25%3F%23"), Ok(PathBuf::from("/srv/100%?#")));
        assert_eq!(t("/a%0Ab"), Ok(PathBuf::from("/srv/a\nb")));
    }

    /// Linux names are bytes: a backslash is one of them, and so is any byte that is not
    /// UTF-8 (an overlong `.` is two bytes that are not `.`, harmless to the kernel).
    #[test]
    fn maps_any_bytes_a_name_may_hold() {
        let raw = |bytes: &[u8]| Ok(Path::new("/srv").join(OsStr::from_bytes(bytes)));
        assert_eq!(t("/a%5Cb"), raw(b"a\\b"));
        assert_eq!(t("/a\\b"), raw(b"a\\b"));
        assert_eq!(t("/%FF"), raw(b"\xff"));
        assert_eq!(t("/caf%E9.txt"), raw(b"caf\xe9.txt"));
        assert_eq!(t("/%c0%ae%c0%ae"), raw(b"\xc0\xae\xc0\xae"));
        let target = translate(Path::new("/srv"), "/caf%E9/x").unwrap();
        assert_eq!(target.relative, Path::new(OsStr::from_bytes(b"caf\xe9/x")));
        assert_eq!(target.decoded, "/caf\u{FFFD}/x");
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
            "/a%2fb/../etc",
            "/..%5c..%5cetc",
            "/a\\..\\b",
            "/a%5C..",
            "/a%00b",
            "x/y",
            "*",
        ] {
            assert_eq!(t(bad), Err(StatusCode::BAD_REQUEST), "{bad}");
        }
    }

    /// `%2f` is never a separator: no name holds a slash, so nothing is found.
    #[test]
    fn an_encoded_slash_names_nothing() {
        for target in ["/dir/file%2f", "/dir%2Ffile", "/%2F", "/a%2fb/c"] {
            assert_eq!(t(target), Err(StatusCode::NOT_FOUND), "{target}");
        }
    }

    #[test]
    fn a_segment_starting_with_a_dot_is_hidden() {
        let hidden = |target| translate(Path::new("/srv"), target).unwrap().hidden;
        for target in [
            "/.git/config",
            "/a/.env",
            "/.hidden/x",
            "/%2Ehtaccess",
            "/..x",
        ] {
            assert!(hidden(target), "{target}");
        }
        for target in ["/", "/./a", "/a.b/c.d", "/a/./b", "/x?.y", "/x#.y"] {
            assert!(!hidden(target), "{target}");
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
        // Where seccomp refuses openat2, both are the user-space kind.
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
