//! Directory listings: Python's `list_directory`.

use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

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

/// The HTML listing of `dir`, titled with `display_path` (decoded URL path): names sorted
/// case-insensitively, directories with a `/`, symlinks with an `@`, every name
/// HTML-escaped and every link percent-encoded.
pub(crate) fn render(dir: &Path, display_path: &str) -> io::Result<String> {
    let mut entries: Vec<(String, String, String)> = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let shown = name.to_string_lossy().into_owned();
        let file_type = entry.file_type()?;
        // A symlink is listed by what it points to; a dangling one as a plain name.
        let is_dir = file_type.is_dir()
            || (file_type.is_symlink() && entry.path().metadata().is_ok_and(|m| m.is_dir()));
        let mut link = percent_encoding::percent_encode(name.as_bytes(), HREF).to_string();
        let mut display = shown.clone();
        if is_dir {
            link.push('/');
            display.push('/');
        }
        if file_type.is_symlink() {
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
