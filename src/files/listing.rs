//! Directory listings: Python's `list_directory`.

use std::ffi::CString;
use std::fs::File;
use std::io;

use nix::dir::{Dir, Type};
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{fstatat, Mode, SFlag};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC};

use crate::http::html_escape;

/// What `urllib.parse.quote(name)` leaves alone: unreserved characters and `/`. Everything
/// else is encoded, `:` included, so a file named `javascript:...` is a relative link.
const HREF: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

/// Whether `name` in `dir` is of `kind` (`S_IFDIR`, ...), asked with `flags`.
fn is_kind(dir: &Dir, name: &CString, flags: AtFlags, kind: SFlag) -> bool {
    fstatat(dir, name.as_c_str(), flags)
        .is_ok_and(|stat| SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT == kind)
}

/// The HTML listing of the open directory `dir`, titled with `display_path` (decoded URL
/// path): names sorted case-insensitively, directories with a `/`, symlinks with an `@`,
/// every name HTML-escaped and every link percent-encoded.
pub(crate) fn render(dir: File, display_path: &str) -> io::Result<String> {
    // `dir` may be open as a path only (a directory we may search but not read): reading
    // needs a descriptor of its own, and is refused here if the directory is unreadable.
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    let mut dir = Dir::openat(&dir, ".", flags, Mode::empty())?;
    let mut names: Vec<(CString, Option<Type>)> = Vec::new();
    for entry in dir.iter() {
        let entry = entry?;
        let name = entry.file_name();
        if name.to_bytes() != b"." && name.to_bytes() != b".." {
            names.push((name.to_owned(), entry.file_type()));
        }
    }
    let mut entries: Vec<(String, String, String)> = Vec::with_capacity(names.len());
    for (name, file_type) in names {
        let is_symlink = match file_type {
            Some(file_type) => file_type == Type::Symlink,
            // Some file systems do not say the type in the entry.
            None => is_kind(&dir, &name, AtFlags::AT_SYMLINK_NOFOLLOW, SFlag::S_IFLNK),
        };
        // A symlink is listed by what it points to; a dangling one as a plain name.
        let is_dir = match file_type {
            Some(Type::Directory) => true,
            Some(Type::Symlink) | None => is_kind(&dir, &name, AtFlags::empty(), SFlag::S_IFDIR),
            Some(_) => false,
        };
        let shown = String::from_utf8_lossy(name.to_bytes()).into_owned();
        let mut link = percent_encoding::percent_encode(name.to_bytes(), HREF).to_string();
        let mut display = shown.clone();
        if is_dir {
            link.push('/');
            display.push('/');
        }
        if is_symlink {
            display.push('@');
        }
        entries.push((shown.to_lowercase(), link, display));
    }
    entries.sort();
    let title = format!("Directory listing for {}", html_escape(display_path));
    let mut page = format!(
        "<!DOCTYPE HTML>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>{title}</title>\n</head>\n<body>\n<h1>{title}</h1>\n<hr>\n<ul>\n"
    );
    for (_, link, display) in entries {
        page.push_str(&format!(
            "<li><a href=\"{}\">{}</a></li>\n",
            html_escape(&link),
            html_escape(&display)
        ));
    }
    page.push_str("</ul>\n<hr>\n</body>\n</html>\n");
    Ok(page)
}
