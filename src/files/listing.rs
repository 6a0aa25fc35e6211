//! Directory listings: Python's `list_directory`, as an HTML page or as JSON.
//!
//! A listing reads every entry of the directory once, keeps at most `2 × max_entries` of
//! them at a time (cut back to the best `max_entries` in the requested order whenever the
//! buffer fills: `select_nth_unstable_by`), and sorts the survivors: memory is bounded by
//! the cap, time grows linearly with the directory. The page says when entries were left
//! out ("10,000 of 100,000 entries shown"); sorting by another column shows others.
//!
//! Entries are described with `fstatat` relative to the directory; a symlink by what a
//! request for it would get, opened beneath the served root, so a link out of the root
//! shows nothing of the file outside.

use std::cmp::Ordering;
use std::fmt::Write as _;
use std::fs::{File, Metadata};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use http::header::ACCEPT;
use http::HeaderMap;
use nix::dir::{Dir, Type};
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{fstatat, FileStat, Mode, SFlag};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC};

use super::path::Root;
use crate::http::html_escape;

/// How many entries a listing shows by default.
pub(crate) const MAX_ENTRIES: usize = 10_000;

/// What `urllib.parse.quote(name)` leaves alone: unreserved characters and `/`. Everything
/// else is encoded, `:` included, so a file named `javascript:...` is a relative link.
const HREF: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

/// What a listing shows, from the handler's configuration.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Options {
    /// List names starting with `.`.
    pub show_hidden: bool,
    /// Show at most this many entries.
    pub max_entries: usize,
    /// Describe symlinks out of the root by their target.
    pub follow_symlinks: bool,
}

/// The column a listing is sorted by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Column {
    Name,
    Size,
    Date,
}

impl Column {
    const ALL: [Column; 3] = [Column::Name, Column::Size, Column::Date];

    fn parse(value: &str) -> Option<Column> {
        match value {
            "name" => Some(Column::Name),
            "size" => Some(Column::Size),
            "date" | "modified" | "mtime" => Some(Column::Date),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Column::Name => "name",
            Column::Size => "size",
            Column::Date => "date",
        }
    }

    fn heading(self) -> &'static str {
        match self {
            Column::Name => "Name",
            Column::Size => "Size",
            Column::Date => "Modified (UTC)",
        }
    }

    /// The order of a first click: names from A, sizes and dates from the largest and
    /// newest, as a reader looking for them wants.
    fn first_descending(self) -> bool {
        self != Column::Name
    }
}

/// The order of a listing: `?sort=name|size|date&order=asc|desc`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Order {
    pub column: Column,
    pub descending: bool,
}

impl Order {
    /// The order the query asks for. The first `sort` and `order` count; unknown values
    /// fall back to the default, by name, ascending.
    pub(crate) fn from_query(query: Option<&str>) -> Order {
        let pairs = crate::http::parse_qsl(query.unwrap_or("").as_bytes());
        let value = |key: &str| {
            pairs
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.to_ascii_lowercase())
        };
        Order {
            column: value("sort")
                .and_then(|v| Column::parse(&v))
                .unwrap_or(Column::Name),
            descending: value("order").is_some_and(|v| v == "desc"),
        }
    }

    fn direction(self) -> &'static str {
        if self.descending {
            "desc"
        } else {
            "asc"
        }
    }

    /// How `a` and `b` compare in this order. Names compare without regard to case (then
    /// by their bytes, so the order is total); equal sizes or dates by name, ascending.
    /// Directories have no size and sort before every file.
    fn compare(self, a: &Entry, b: &Entry) -> Ordering {
        let by_name = || a.key.cmp(&b.key).then_with(|| a.name.cmp(&b.name));
        let directed = |ordering: Ordering| match self.descending {
            true => ordering.reverse(),
            false => ordering,
        };
        match self.column {
            Column::Name => directed(by_name()),
            Column::Size => directed(a.size.cmp(&b.size)).then_with(by_name),
            Column::Date => directed(a.mtime.cmp(&b.mtime)).then_with(by_name),
        }
    }
}

/// What kind of file an entry is, as the JSON listing names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    File,
    Dir,
    Symlink,
    Other,
}

impl Kind {
    fn of_mode(mode: u32) -> Kind {
        match SFlag::from_bits_truncate(mode) & SFlag::S_IFMT {
            SFlag::S_IFREG => Kind::File,
            SFlag::S_IFDIR => Kind::Dir,
            SFlag::S_IFLNK => Kind::Symlink,
            _ => Kind::Other,
        }
    }

    fn of_type(file_type: Option<Type>) -> Kind {
        match file_type {
            Some(Type::File) => Kind::File,
            Some(Type::Directory) => Kind::Dir,
            Some(Type::Symlink) => Kind::Symlink,
            _ => Kind::Other,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Kind::File => "file",
            Kind::Dir => "dir",
            Kind::Symlink => "symlink",
            Kind::Other => "other",
        }
    }
}

/// One name in a directory.
#[derive(Debug)]
struct Entry {
    /// The name's bytes, as the file system has them.
    name: Vec<u8>,
    /// The name as text: bytes that are not UTF-8 become U+FFFD.
    shown: String,
    /// `shown` in lower case: what names sort by.
    key: String,
    described: bool,
    /// What the directory entry says, until the entry is described.
    kind: Kind,
    /// A directory, or a symlink to one: linked with a trailing slash.
    leads_to_dir: bool,
    /// The length of a file (or of the file a symlink leads to); none for the rest.
    size: Option<u64>,
    /// The modification time, in seconds since the epoch.
    mtime: Option<i64>,
}

impl Entry {
    fn new(name: &[u8], file_type: Option<Type>) -> Entry {
        let shown = String::from_utf8_lossy(name).into_owned();
        Entry {
            name: name.to_vec(),
            key: shown.to_lowercase(),
            shown,
            described: false,
            kind: Kind::of_type(file_type),
            leads_to_dir: file_type == Some(Type::Directory),
            size: None,
            mtime: None,
        }
    }

    /// Fills in the kind, size and date, asked of the file system.
    fn describe(&mut self, place: &Place<'_>) {
        if self.described {
            return;
        }
        self.described = true;
        let name = Path::new(std::ffi::OsStr::from_bytes(&self.name));
        let Ok(stat) = fstatat(place.dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) else {
            // Gone since it was read, or the directory may be read but not searched: the
            // name is listed as the directory entry said.
            return;
        };
        self.kind = Kind::of_mode(stat.st_mode);
        match self.kind {
            Kind::Symlink => {
                let target = place
                    .root
                    .metadata(&place.relative.join(name), place.follow);
                if let Some(meta) = target {
                    self.describe_target(&meta);
                }
            }
            kind => self.describe_stat(kind, &stat),
        }
    }

    fn describe_stat(&mut self, kind: Kind, stat: &FileStat) {
        self.leads_to_dir = kind == Kind::Dir;
        self.size = (kind == Kind::File).then_some(stat.st_size.max(0) as u64);
        #[allow(clippy::useless_conversion)]
        let mtime = i64::from(stat.st_mtime);
        self.mtime = Some(mtime);
    }

    fn describe_target(&mut self, meta: &Metadata) {
        self.leads_to_dir = meta.is_dir();
        self.size = meta.is_file().then_some(meta.len());
        self.mtime = Some(meta.mtime());
    }

    /// The link: the name's bytes percent-encoded, a slash after a directory.
    fn href(&self) -> String {
        let mut link = percent_encoding::percent_encode(&self.name, HREF).to_string();
        if self.leads_to_dir {
            link.push('/');
        }
        link
    }
}

/// Where a directory being listed is: to describe its entries.
struct Place<'a> {
    /// The directory (possibly open as a path only).
    dir: &'a File,
    root: &'a Root,
    /// The directory, relative to the root.
    relative: &'a Path,
    follow: bool,
}

/// A directory's entries, sorted, at most `max_entries` of them.
#[derive(Debug)]
pub(crate) struct Listing {
    entries: Vec<Entry>,
    /// How many entries there are (hidden ones not counted).
    total: usize,
    order: Order,
    max_entries: usize,
    /// Whether this is the served directory itself, which has no parent link.
    at_root: bool,
}

/// Reads the open directory `dir`, found at `relative` under `root`: the first
/// `options.max_entries` entries in `order`.
pub(crate) fn read(
    dir: File,
    root: &Root,
    relative: &Path,
    options: &Options,
    order: Order,
) -> io::Result<Listing> {
    // `dir` may be open as a path only (a directory we may search but not read): reading
    // needs a descriptor of its own, and is refused here if the directory is unreadable.
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    let mut reader = Dir::openat(&dir, ".", flags, Mode::empty())?;
    let place = Place {
        dir: &dir,
        root,
        relative,
        follow: options.follow_symlinks,
    };
    let keep = options.max_entries;
    // Cut back when twice the cap is held: each cut costs time linear in what it sorts,
    // so cutting every `keep` entries keeps the whole read linear.
    let cut_at = keep.saturating_mul(2).max(64);
    let mut entries: Vec<Entry> = Vec::new();
    let mut total = 0;
    for dirent in reader.iter() {
        let dirent = dirent?;
        let name = dirent.file_name().to_bytes();
        if name == b"." || name == b".." || (!options.show_hidden && name.starts_with(b".")) {
            continue;
        }
        total += 1;
        let mut entry = Entry::new(name, dirent.file_type());
        // Names sort by themselves; the rest only once described.
        if order.column != Column::Name {
            entry.describe(&place);
        }
        entries.push(entry);
        if entries.len() >= cut_at {
            keep_first(&mut entries, keep, order);
        }
    }
    keep_first(&mut entries, keep, order);
    for entry in &mut entries {
        entry.describe(&place);
    }
    entries.sort_unstable_by(|a, b| order.compare(a, b));
    Ok(Listing {
        entries,
        total,
        order,
        max_entries: keep,
        at_root: relative.as_os_str().is_empty(),
    })
}

/// Keeps the first `n` of `entries` in `order` (not yet sorted among themselves).
fn keep_first(entries: &mut Vec<Entry>, n: usize, order: Order) {
    if entries.len() <= n {
        return;
    }
    if n > 0 {
        entries.select_nth_unstable_by(n - 1, |a, b| order.compare(a, b));
    }
    entries.truncate(n);
}

/// Whether the client asks for JSON rather than HTML: `application/json` is acceptable
/// with a higher quality than `text/html` (each matched by its most specific range, `*/*`
/// included). A browser's `Accept` gets HTML, `Accept: application/json` JSON, a tie or no
/// `Accept` HTML.
pub(crate) fn wants_json(headers: &HeaderMap) -> bool {
    let ranges: Vec<(String, f32)> = headers
        .get_all(ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(media_range)
        .collect();
    quality(&ranges, "application", "json") > quality(&ranges, "text", "html")
}

/// `type/subtype;q=0.5` as (`type/subtype` in lower case, 0.5); `None` if malformed.
fn media_range(text: &str) -> Option<(String, f32)> {
    let mut params = text.split(';');
    let range = params.next()?.trim().to_ascii_lowercase();
    if !range.contains('/') {
        return None;
    }
    let mut q = 1.0;
    for param in params {
        if let Some((name, value)) = param.split_once('=') {
            if name.trim().eq_ignore_ascii_case("q") {
                q = value
                    .trim()
                    .parse::<f32>()
                    .ok()
                    .filter(|q| (0.0..=1.0).contains(q))?;
            }
        }
    }
    Some((range, q))
}

/// The quality `ranges` give `kind/sub`: that of the most specific range matching it.
fn quality(ranges: &[(String, f32)], kind: &str, sub: &str) -> f32 {
    let exact = format!("{kind}/{sub}");
    let any_sub = format!("{kind}/*");
    [exact.as_str(), any_sub.as_str(), "*/*"]
        .iter()
        .find_map(|wanted| {
            let qualities = ranges.iter().filter(|(r, _)| r == wanted).map(|(_, q)| *q);
            qualities.reduce(f32::max)
        })
        .unwrap_or(0.0)
}

// ---------------------------------------------------------------------------------------
// HTML

/// The page's style: readable on a phone, dark when the system is.
const STYLE: &str = "\
:root{color-scheme:light dark;--bg:#fff;--fg:#1f2328;--muted:#656d76;--link:#0550ae;\
--line:#d8dee4;--hover:#f3f5f7}\n\
@media (prefers-color-scheme:dark){:root{--bg:#15181c;--fg:#e6edf3;--muted:#8d96a0;\
--link:#6cb6ff;--line:#30363d;--hover:#1f242b}}\n\
body{margin:0 auto;max-width:64rem;padding:1rem;background:var(--bg);color:var(--fg);\
font:15px/1.5 system-ui,-apple-system,\"Segoe UI\",sans-serif}\n\
h1{font-size:1.2rem;font-weight:600;overflow-wrap:anywhere}\n\
table{width:100%;border-collapse:collapse}\n\
th,td{padding:.3rem .6rem;text-align:left;border-bottom:1px solid var(--line)}\n\
th{font-weight:600;white-space:nowrap}\n\
td.name{overflow-wrap:anywhere;width:100%}\n\
.size{text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums}\n\
.modified{white-space:nowrap;font-variant-numeric:tabular-nums}\n\
tbody tr:hover{background:var(--hover)}\n\
a{color:var(--link);text-decoration:none}\n\
a:hover{text-decoration:underline}\n\
th a{color:inherit}\n\
.note,.empty{color:var(--muted)}\n\
form.upload{margin-top:1rem;display:flex;gap:.5rem;flex-wrap:wrap;align-items:center}\n\
@media (max-width:36rem){.modified{display:none}}\n";

impl Listing {
    /// The HTML page, titled with `path` (the decoded URL path); with a form to upload
    /// files into the directory when uploads of up to `upload_limit` bytes are on.
    pub(crate) fn html(&self, path: &str, upload_limit: Option<u64>) -> String {
        let title = format!("Directory listing for {}", html_escape(&printable(path)));
        let mut page = String::with_capacity(2048 + self.entries.len() * 256);
        page.push_str("<!DOCTYPE HTML>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
        page.push_str(
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <meta name=\"color-scheme\" content=\"light dark\">\n",
        );
        let _ = write!(
            page,
            "<title>{title}</title>\n<style>\n{STYLE}</style>\n</head>\n<body>\n<h1>{title}</h1>\n"
        );
        self.push_summary(&mut page);
        page.push_str("<table>\n<thead>\n<tr>");
        for column in Column::ALL {
            self.push_heading(&mut page, column);
        }
        page.push_str("</tr>\n</thead>\n<tbody>\n");
        if !self.at_root {
            page.push_str(
                "<tr class=\"parent\"><td class=\"name\"><a class=\"parent\" href=\"../\" \
                 title=\"Parent directory\">../</a></td><td class=\"size\"></td>\
                 <td class=\"modified\"></td></tr>\n",
            );
        }
        if self.total == 0 {
            page.push_str("<tr><td class=\"empty\" colspan=\"3\">Empty directory</td></tr>\n");
        }
        for entry in &self.entries {
            push_row(&mut page, entry);
        }
        page.push_str("</tbody>\n</table>\n");
        if let Some(limit) = upload_limit {
            // Posted to the directory itself, which answers a browser with 303 back here.
            let _ = write!(
                page,
                "<form class=\"upload\" method=\"post\" enctype=\"multipart/form-data\" \
                 action=\"./\">\n<input type=\"file\" name=\"file\" multiple required>\n\
                 <button type=\"submit\">Upload</button>\n\
                 <span class=\"note\">at most {} per upload</span>\n</form>\n",
                human_size(limit)
            );
        }
        page.push_str("</body>\n</html>\n");
        page
    }

    /// How many entries there are, and that not all are shown if so.
    fn push_summary(&self, page: &mut String) {
        let shown = self.entries.len();
        let noun = if self.total == 1 { "entry" } else { "entries" };
        if shown == self.total {
            let _ = writeln!(
                page,
                "<p class=\"summary\">{} {noun}</p>",
                grouped(self.total as u64)
            );
            return;
        }
        let _ = writeln!(
            page,
            "<p class=\"summary note\">{} of {} {noun} shown: the first by {}, {}ending. \
             A listing shows at most {}; sort by another column to see others.</p>",
            grouped(shown as u64),
            grouped(self.total as u64),
            self.order.column.as_str(),
            self.order.direction(),
            grouped(self.max_entries as u64),
        );
    }

    /// A column's heading: a link that sorts by it (the other way round if it is the
    /// current order), with an arrow on the current one.
    fn push_heading(&self, page: &mut String, column: Column) {
        let current = self.order.column == column;
        let descending = match current {
            true => !self.order.descending,
            false => column.first_descending(),
        };
        let (aria, arrow) = match (current, self.order.descending) {
            (false, _) => ("", ""),
            (true, false) => (" aria-sort=\"ascending\"", " \u{25B2}"),
            (true, true) => (" aria-sort=\"descending\"", " \u{25BC}"),
        };
        let order = if descending { "desc" } else { "asc" };
        let _ = write!(
            page,
            "<th class=\"{}\"{aria}><a class=\"sort\" href=\"?sort={}&amp;order={order}\">{}{arrow}</a></th>",
            column_class(column),
            column.as_str(),
            column.heading(),
        );
    }

    // -----------------------------------------------------------------------------------
    // JSON

    /// The listing as JSON, for the directory at `path` (the decoded URL path), in the
    /// form the module documentation of `files` describes. Written by hand, so it needs
    /// no `json` feature.
    pub(crate) fn json(&self, path: &str) -> String {
        let mut out = String::with_capacity(128 + self.entries.len() * 160);
        out.push_str("{\"path\":");
        push_json_string(&mut out, path);
        let _ = write!(
            out,
            ",\"sort\":\"{}\",\"order\":\"{}\",\"total\":{},\"shown\":{},\"entries\":[",
            self.order.column.as_str(),
            self.order.direction(),
            self.total,
            self.entries.len()
        );
        for (i, entry) in self.entries.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            push_json_entry(&mut out, entry);
        }
        out.push_str("]}\n");
        out
    }
}

fn column_class(column: Column) -> &'static str {
    match column {
        Column::Name => "name",
        Column::Size => "size",
        Column::Date => "modified",
    }
}

/// One row: the link (a directory with `/`, a symlink with `@`, as Python marks them), the
/// size (readable, and exact in `title` and `data-bytes`), the date.
fn push_row(page: &mut String, entry: &Entry) {
    let mut shown = printable(&entry.shown);
    if entry.leads_to_dir {
        shown.push('/');
    }
    if entry.kind == Kind::Symlink {
        shown.push('@');
    }
    let _ = write!(
        page,
        "<tr><td class=\"name\"><a href=\"{}\">{}</a></td>",
        html_escape(&entry.href()),
        html_escape(&shown)
    );
    match entry.size {
        Some(bytes) => {
            let unit = if bytes == 1 { "byte" } else { "bytes" };
            let _ = write!(
                page,
                "<td class=\"size\" data-bytes=\"{bytes}\" title=\"{} {unit}\">{}</td>",
                grouped(bytes),
                human_size(bytes)
            );
        }
        None => page.push_str("<td class=\"size\">-</td>"),
    }
    match entry.mtime.and_then(Utc::of) {
        Some(time) => {
            let _ = writeln!(
                page,
                "<td class=\"modified\"><time datetime=\"{}\">{}</time></td></tr>",
                time.rfc3339(),
                time.readable()
            );
        }
        None => page.push_str("<td class=\"modified\">-</td></tr>\n"),
    }
}

/// `text` with control characters shown as their Unicode pictures (a newline as `␊`): a
/// name holding them stays on one line and visibly different from one without.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\0'..='\x1f' => char::from_u32(0x2400 + c as u32).unwrap_or('\u{FFFD}'),
            '\x7f' => '\u{2421}',
            c => c,
        })
        .collect()
}

/// `1234567` as `1,234,567`.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// A size for reading: bytes below 1 KiB, else one decimal in the largest binary unit
/// that keeps it at least 1 (`1.5 KiB`, `3.0 GiB`).
fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    // 1023.96 KiB would print as 1024.0 KiB: that is 1.0 MiB.
    while value >= 1023.95 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// A time in UTC, broken down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Utc {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
}

impl Utc {
    /// `secs` since the epoch; `None` outside the years 0000 to 9999, which RFC 3339
    /// cannot write.
    fn of(secs: i64) -> Option<Utc> {
        let days = secs.div_euclid(86_400);
        let of_day = secs.rem_euclid(86_400) as u32;
        let (year, month, day) = civil_from_days(days);
        (0..=9999).contains(&year).then_some(Utc {
            year,
            month,
            day,
            hour: of_day / 3600,
            minute: of_day / 60 % 60,
            second: of_day % 60,
        })
    }

    /// `2001-09-09T01:46:40Z`.
    fn rfc3339(&self) -> String {
        let Utc {
            year,
            month,
            day,
            hour,
            minute,
            second,
        } = self;
        format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}Z")
    }

    /// `2001-09-09 01:46:40`.
    fn readable(&self) -> String {
        self.rfc3339().replace('T', " ").replace('Z', "")
    }
}

/// The proleptic Gregorian (year, month, day) of the day `days` after 1970-01-01: the
/// era-based conversion of Howard Hinnant's "chrono-compatible low-level date algorithms".
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468; // days since 0000-03-01
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_from_march + 2) / 5 + 1) as u32;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn push_json_entry(out: &mut String, entry: &Entry) {
    out.push_str("{\"name\":");
    push_json_string(out, &entry.shown);
    out.push_str(",\"href\":");
    push_json_string(out, &entry.href());
    let _ = write!(out, ",\"type\":\"{}\",\"size\":", entry.kind.as_str());
    match entry.size {
        Some(size) => {
            let _ = write!(out, "{size}");
        }
        None => out.push_str("null"),
    }
    out.push_str(",\"mtime\":");
    match entry.mtime {
        Some(mtime) => {
            let _ = write!(out, "{mtime}");
        }
        None => out.push_str("null"),
    }
    out.push_str(",\"modified\":");
    match entry.mtime.and_then(Utc::of) {
        Some(time) => {
            let _ = write!(out, "\"{}\"", time.rfc3339());
        }
        None => out.push_str("null"),
    }
    out.push('}');
}

/// `text` as a JSON string: quotes, backslashes and control characters escaped (RFC 8259);
/// everything else as it is (JSON is UTF-8).
fn push_json_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if c < ' ' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests;
