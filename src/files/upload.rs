//! Writing into the served directory: `PUT` of a file, `multipart/form-data` `POST` of files
//! to a directory, `DELETE` of a file, when [`Uploads`] allow them.
//!
//! Every file arrives in a temporary file of its own in the directory it is meant for (a
//! hidden name, created with `O_EXCL` through the directory's descriptor, which was opened
//! beneath the root), is written to disk (`fsync`), and only then takes its name in one
//! `rename`: a reader sees the old file or the new one, never part of one, and a request
//! that fails in any way (a client gone mid-body, too large, no room, a malformed form)
//! leaves nothing behind: the temporary file is removed when its guard is dropped,
//! whatever the path out. Without overwrite, the rename refuses an existing name itself
//! (`renameat2(RENAME_NOREPLACE)`, or `link` then `unlink` where the file system lacks
//! it), so there is no moment between a check and the rename in which another upload
//! could be replaced.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Component, Path};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use http::header::{ACCEPT, CONTENT_TYPE, IF_NONE_MATCH};
use http::StatusCode;
use nix::errno::Errno;
use nix::fcntl::{openat, renameat, AtFlags, OFlag};
use nix::sys::stat::{fstatat, Mode, SFlag};
use nix::unistd::{linkat, unlinkat, UnlinkatFlags};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC};

use super::multipart::{self, Event, FormError, FormType, Parser, PartHead, PartLimits};
use super::path::{self, Root};
use crate::handler::HandlerResult;
use crate::http::HttpRequest;

/// What a [`SimpleHttpHandler`](super::SimpleHttpHandler) accepts from clients that write,
/// given to [`uploads`](super::SimpleHttpHandler::uploads). Nothing is accepted without it:
/// `PUT` and `DELETE` then answer 405.
///
/// - `PUT /dir/name` with the file as the body: 201 Created (with `Location`) for a new
///   file, 204 No Content for one replaced. The directory must exist (409 Conflict
///   otherwise, as RFC 4918 9.7.1 says; no directories are made); a target that is a
///   directory answers 405.
/// - `POST /dir/` with a `multipart/form-data` body: each part with a file name is saved
///   under that name in the directory (which must exist: 404). Parts without a file name
///   (plain fields), and file inputs left empty (`filename=""`), are ignored. All files are
///   written first and take their names only once the whole form has arrived; a browser
///   (whose `Accept` names `text/html`) is sent 303 See Other to the directory's listing,
///   any other client 201 Created with a JSON summary:
///   `{"files":[{"name":"a.txt","url":"/dir/a.txt","size":3,"replaced":false}],"ignored":["note"]}`.
/// - `DELETE /dir/name`, if [`delete`](Uploads::delete) allows it: 204, or 404.
///
/// Names are checked as the request path is, and more: no traversal in any spelling, no
/// `/` or `\` in a form's file name (refused, 400, rather than cut to its last part, so
/// that no name is ever changed behind the client's back; browsers send base names), no
/// name or directory on the way that begins with a dot (403: no `.htaccess`, nothing
/// inside `.git/`), no control or bidirectional-override characters, nothing empty or
/// longer than 255 bytes (400). An existing file is never replaced unless
/// [`overwrite`](Uploads::overwrite) is on (409 Conflict; 412 for a `PUT` with
/// `If-None-Match: *`, which keeps a file from being replaced even then).
///
/// Sizes: a body larger than [`max_request_size`](Uploads::max_request_size), a file
/// larger than [`max_file_size`](Uploads::max_file_size), answer 413, from the
/// `Content-Length` before the body is read and while it streams. A full disk (or quota)
/// answers 507. New files get mode `0644` less the process's umask.
///
/// ```no_run
/// use socketserver::files::{SimpleHttpHandler, Uploads};
/// use socketserver::http::HttpServer;
///
/// let uploads = Uploads::new().max_request_size(256 << 20).overwrite(true);
/// let files = SimpleHttpHandler::new("shared")?.uploads(uploads);
/// HttpServer::bind("127.0.0.1:8000", files)?.serve_forever()?;
/// // curl -T notes.txt http://127.0.0.1:8000/       (PUT /notes.txt)
/// // curl -F file=@photo.jpg http://127.0.0.1:8000/pictures/
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Uploads {
    max_request_size: u64,
    max_file_size: Option<u64>,
    max_parts: usize,
    overwrite: bool,
    delete: bool,
}

impl Default for Uploads {
    fn default() -> Self {
        Uploads {
            max_request_size: 64 * 1024 * 1024,
            max_file_size: None,
            max_parts: 100,
            overwrite: false,
            delete: false,
        }
    }
}

impl Uploads {
    /// Uploads of up to 64 MiB a request, of at most 100 parts a form, that never replace a
    /// file; no `DELETE`.
    pub fn new() -> Self {
        Uploads::default()
    }

    /// The largest body of an upload: a `PUT`'s file, or a whole form (default 64 MiB).
    ///
    /// With uploads on, this is the server's body limit as well
    /// ([`Limits::max_body_size`](crate::http::Limits::max_body_size), from the handler's
    /// `limits`), so that an event loop refuses a larger body before it reads any of it. A
    /// handler that wraps this one should return `self.files.limits()` from its own
    /// `limits`, or raise `max_body_size` itself.
    pub fn max_request_size(mut self, bytes: u64) -> Self {
        self.max_request_size = bytes;
        self
    }

    /// The largest single file (default: as large as a request may be).
    pub fn max_file_size(mut self, bytes: u64) -> Self {
        self.max_file_size = Some(bytes);
        self
    }

    /// The most parts (files and fields) a form may have (default 100; more answers 413).
    pub fn max_parts(mut self, parts: usize) -> Self {
        self.max_parts = parts;
        self
    }

    /// Whether an upload may replace an existing file (default `false`: 409 Conflict).
    pub fn overwrite(mut self, overwrite: bool) -> Self {
        self.overwrite = overwrite;
        self
    }

    /// Whether `DELETE` may remove a file (default `false`: 405). Directories are never
    /// removed, nor names that begin with a dot.
    pub fn delete(mut self, delete: bool) -> Self {
        self.delete = delete;
        self
    }

    /// The largest body of an upload.
    pub fn request_limit(&self) -> u64 {
        self.max_request_size
    }

    /// The largest single file.
    pub fn file_limit(&self) -> u64 {
        self.max_file_size
            .unwrap_or(self.max_request_size)
            .min(self.max_request_size)
    }

    /// The most parts a form may have.
    pub fn part_limit(&self) -> usize {
        self.max_parts
    }

    /// Whether an upload may replace an existing file.
    pub fn overwrites(&self) -> bool {
        self.overwrite
    }

    /// Whether `DELETE` may remove a file.
    pub fn deletes(&self) -> bool {
        self.delete
    }
}

/// The largest head of one part of a form.
const PART_HEAD_BYTES: usize = 8 * 1024;

/// How much of a body is read at a time on its way to disk.
const COPY_BUFFER: usize = 64 * 1024;

/// The longest file name most file systems take (`NAME_MAX`).
const NAME_MAX: usize = 255;

/// The mode of a new file, before the umask.
const FILE_MODE: u32 = 0o644;

/// What a link's path segment keeps as it is: unreserved characters.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// What the upload code needs of the handler's configuration.
///
/// Not whether symlinks out of the root are followed: a write never goes through one,
/// whatever [`follow_symlinks`](super::SimpleHttpHandler::follow_symlinks) says for reads.
pub(super) struct Site<'a> {
    pub root: &'a Root,
    pub uploads: Option<&'a Uploads>,
}

/// The methods a resource allows: for a directory, or for a file.
pub(super) fn allowed(uploads: Option<&Uploads>, directory: bool) -> &'static str {
    match uploads {
        Some(uploads) if !directory && uploads.delete => "GET, HEAD, POST, OPTIONS, PUT, DELETE",
        Some(_) if !directory => "GET, HEAD, POST, OPTIONS, PUT",
        _ => "GET, HEAD, POST, OPTIONS",
    }
}

/// An answer that refuses the request, with the text of its error page.
#[derive(Debug)]
pub(super) struct Refusal {
    status: StatusCode,
    message: String,
    /// For 405: the `Allow` header.
    allow: Option<&'static str>,
}

impl Refusal {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Refusal {
            status,
            message: message.into(),
            allow: None,
        }
    }

    fn not_allowed(allow: &'static str, message: impl Into<String>) -> Self {
        Refusal {
            allow: Some(allow),
            ..Refusal::new(StatusCode::METHOD_NOT_ALLOWED, message)
        }
    }

    fn too_large(limit: u64) -> Self {
        let message = format!("The upload is larger than the {limit} bytes accepted");
        Refusal::new(StatusCode::PAYLOAD_TOO_LARGE, message)
    }

    /// Sends the error page (`send_error`'s, with `Allow` for a 405).
    pub(super) fn send(self, request: &mut HttpRequest<'_>) -> HandlerResult {
        if let Some(allow) = self.allow {
            request.add_response_header("Allow", allow)?;
        }
        request.send_error(self.status, self.message)
    }
}

/// Why an upload stopped.
enum Stop {
    /// It is refused: answer this.
    Refused(Refusal),
    /// Reading the body or writing the answer failed; the server answers (the body's
    /// 400, 408 or 413) or closes.
    Io(io::Error),
}

impl From<Refusal> for Stop {
    fn from(refusal: Refusal) -> Self {
        Stop::Refused(refusal)
    }
}

type Outcome<T> = Result<T, Stop>;

/// Answers what an upload came to.
fn answer(request: &mut HttpRequest<'_>, outcome: Outcome<()>) -> HandlerResult {
    match outcome {
        Ok(()) => Ok(()),
        Err(Stop::Refused(refusal)) => refusal.send(request),
        Err(Stop::Io(err)) => Err(err.into()),
    }
}

/// A refusal of the request before its body is read, if it has one: what an `Expect:
/// 100-continue` is answered with instead of `100 Continue`.
pub(super) fn refuse_early(site: &Site<'_>, request: &HttpRequest<'_>) -> Option<Refusal> {
    match request.command {
        http::Method::PUT => plan_put(site, request).err(),
        http::Method::DELETE => plan_delete(site, request).err(),
        http::Method::POST if site.uploads.is_some() => match form_type_of(request) {
            FormType::Multipart(_) => plan_form(site, request).err(),
            FormType::BadBoundary => Some(bad_boundary()),
            FormType::Other => None,
        },
        _ => None,
    }
}

/// What the request's `Content-Type` says of its form.
pub(super) fn form_type_of(request: &HttpRequest<'_>) -> FormType {
    let content_type = request.headers.get(CONTENT_TYPE);
    multipart::form_type(content_type.map_or(&b""[..], |v| v.as_bytes()))
}

// ---------------------------------------------------------------------------------------
// Names

/// Checks one name a request gives: a file's, or a directory's on the way to it.
fn check_name(name: &str) -> Result<(), Refusal> {
    let bad = |why: &str| Err(Refusal::new(StatusCode::BAD_REQUEST, why));
    if name.is_empty() {
        return bad("An empty file name");
    }
    if name.contains(['/', '\\', '\0']) {
        return bad("A file name holds a path separator");
    }
    if name.starts_with('.') {
        let message = format!("Names that begin with a dot are not accepted: {name:?}");
        return Err(Refusal::new(StatusCode::FORBIDDEN, message));
    }
    if name.chars().any(|c| c.is_control() || is_bidi_control(c)) {
        return bad("A file name holds a control character");
    }
    if name.len() > NAME_MAX {
        return bad("A file name is too long");
    }
    Ok(())
}

/// The characters that reorder text around them: a name holding one can show as another
/// (`exe.txt` that is `txt.exe`).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Checks every name of `relative` (from [`path::translate`], so `..` is gone already).
fn check_path(relative: &Path) -> Result<(), Refusal> {
    for component in relative.components() {
        let Component::Normal(name) = component else {
            return Err(Refusal::new(StatusCode::BAD_REQUEST, "Bad path"));
        };
        // The target was decoded as UTF-8, so every segment is.
        check_name(&name.to_string_lossy())?;
    }
    Ok(())
}

/// The absolute link to `relative`, every segment percent-encoded; a directory's ends in
/// `/`.
fn link_to(relative: &Path, directory: bool) -> String {
    let mut link = String::new();
    for name in relative.iter() {
        link.push('/');
        let encoded = percent_encoding::percent_encode(name.as_encoded_bytes(), SEGMENT);
        let _ = write!(link, "{encoded}");
    }
    if directory || link.is_empty() {
        link.push('/');
    }
    link
}

// ---------------------------------------------------------------------------------------
// Directories

/// Opens the directory at `relative`, beneath the root (a symlink out of it is no
/// directory here); `missing` is the status when there is none.
fn open_directory(site: &Site<'_>, relative: &Path, missing: StatusCode) -> Result<File, Refusal> {
    let dir = site
        .root
        .open_file(relative, false)
        .map_err(|status| match status {
            StatusCode::NOT_FOUND => Refusal::new(missing, "No such directory"),
            status => Refusal::new(status, "The directory cannot be opened"),
        })?;
    match dir.metadata() {
        Ok(meta) if meta.is_dir() => Ok(dir),
        Ok(_) => Err(Refusal::new(StatusCode::CONFLICT, "Not a directory")),
        Err(err) => Err(Refusal::new(path::status_for(&err), "Not a directory")),
    }
}

/// What is at `name` in `dir` now, not following a symlink there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Existing {
    Nothing,
    Directory,
    Other,
}

fn existing(dir: &File, name: &str) -> Existing {
    match fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(stat) if SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR => {
            Existing::Directory
        }
        Ok(_) => Existing::Other,
        Err(_) => Existing::Nothing,
    }
}

/// Makes the names given in `dir` durable; a directory open only as a path cannot be
/// synced, and its names are then as durable as the file system makes them anyway.
fn sync_directory(dir: &File) {
    let _ = dir.sync_all();
}

// ---------------------------------------------------------------------------------------
// Temporary files

/// A file being uploaded, under a hidden temporary name in its directory: removed when
/// dropped, unless it took its name.
struct Staged<'d> {
    dir: &'d File,
    temp: String,
    /// Open while it is written.
    file: Option<File>,
    len: u64,
    /// The temporary name is gone (the file took its name).
    placed: bool,
}

/// Whether a file took a new name or replaced a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Placed {
    Created,
    Replaced,
}

/// Distinguishes the temporary names of one process.
static NEXT_TEMP: AtomicU64 = AtomicU64::new(0);

fn temp_name() -> String {
    let count = NEXT_TEMP.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(".upload-{}-{count}-{nanos:08x}", std::process::id())
}

/// The refusal for a failed write into the directory.
fn storage_refusal(errno: Errno) -> Refusal {
    match errno {
        Errno::ENOSPC | Errno::EDQUOT => Refusal::new(
            StatusCode::INSUFFICIENT_STORAGE,
            "There is no room left for the upload",
        ),
        Errno::EFBIG => Refusal::new(StatusCode::PAYLOAD_TOO_LARGE, "The file is too large"),
        Errno::EACCES | Errno::EPERM | Errno::EROFS => {
            Refusal::new(StatusCode::FORBIDDEN, "The directory cannot be written")
        }
        Errno::EISDIR => Refusal::new(StatusCode::CONFLICT, "A directory has that name"),
        errno => {
            log::error!("cannot store an upload: {errno}");
            Refusal::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The upload cannot be stored",
            )
        }
    }
}

fn io_refusal(err: &io::Error) -> Refusal {
    storage_refusal(Errno::from_raw(
        err.raw_os_error().unwrap_or(Errno::EIO as i32),
    ))
}

impl<'d> Staged<'d> {
    /// A new, empty temporary file in `dir`.
    fn create(dir: &'d File) -> Result<Self, Refusal> {
        let flags = OFlag::O_WRONLY
            | OFlag::O_CREAT
            | OFlag::O_EXCL
            | OFlag::O_NOFOLLOW
            | OFlag::O_NOCTTY
            | OFlag::O_CLOEXEC;
        let mode = Mode::from_bits_truncate(FILE_MODE);
        let mut tries = 0;
        loop {
            let temp = temp_name();
            match openat(dir, temp.as_str(), flags, mode) {
                Ok(fd) => {
                    return Ok(Staged {
                        dir,
                        temp,
                        file: Some(File::from(fd)),
                        len: 0,
                        placed: false,
                    })
                }
                // A name left by an earlier process that had this one's id.
                Err(Errno::EEXIST) if tries < 8 => tries += 1,
                Err(errno) => return Err(storage_refusal(errno)),
            }
        }
    }

    fn write(&mut self, data: &[u8]) -> Result<(), Refusal> {
        let file = self
            .file
            .as_mut()
            .expect("a staged file is open until finished");
        file.write_all(data).map_err(|err| io_refusal(&err))?;
        self.len += data.len() as u64;
        Ok(())
    }

    /// Writes the file to disk and closes it: a full disk can show only now.
    fn finish(&mut self) -> Result<(), Refusal> {
        if let Some(file) = self.file.take() {
            file.sync_all().map_err(|err| io_refusal(&err))?;
        }
        Ok(())
    }

    /// Gives the file its `name`, replacing a file there only if `overwrite`; the refusal
    /// for an existing one is 409.
    fn commit(mut self, name: &str, overwrite: bool) -> Result<Placed, Refusal> {
        self.finish()?;
        let placed = match rename_noreplace(self.dir, &self.temp, name) {
            Ok(()) => Placed::Created,
            Err(Errno::EEXIST) if overwrite => {
                renameat(self.dir, self.temp.as_str(), self.dir, name).map_err(storage_refusal)?;
                Placed::Replaced
            }
            Err(Errno::EEXIST) => return Err(exists(name)),
            Err(errno) => return Err(storage_refusal(errno)),
        };
        self.placed = true;
        Ok(placed)
    }
}

impl Drop for Staged<'_> {
    fn drop(&mut self) {
        self.file = None;
        if !self.placed {
            if let Err(errno) = unlinkat(self.dir, self.temp.as_str(), UnlinkatFlags::NoRemoveDir) {
                log::error!("cannot remove the temporary file {}: {errno}", self.temp);
            }
        }
    }
}

fn exists(name: &str) -> Refusal {
    Refusal::new(
        StatusCode::CONFLICT,
        format!("{name:?} exists, and uploads do not replace files"),
    )
}

/// Renames `from` to `to` in `dir` unless `to` exists (EEXIST), in one step.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn rename_noreplace(dir: &File, from: &str, to: &str) -> nix::Result<()> {
    use nix::fcntl::{renameat2, RenameFlags};
    match renameat2(dir, from, dir, to, RenameFlags::RENAME_NOREPLACE) {
        // The file system has no RENAME_NOREPLACE (or the kernel no renameat2).
        Err(Errno::EINVAL | Errno::ENOSYS) => link_then_unlink(dir, from, to),
        renamed => renamed,
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn rename_noreplace(dir: &File, from: &str, to: &str) -> nix::Result<()> {
    link_then_unlink(dir, from, to)
}

/// `link` fails if `to` exists, as `RENAME_NOREPLACE` does; the old name goes after.
fn link_then_unlink(dir: &File, from: &str, to: &str) -> nix::Result<()> {
    linkat(dir, from, dir, to, AtFlags::empty())?;
    if let Err(errno) = unlinkat(dir, from, UnlinkatFlags::NoRemoveDir) {
        log::error!("cannot remove the temporary name {from}: {errno}");
    }
    Ok(())
}

/// Copies the request body into `staged`, `limit` bytes at most.
fn copy_body(request: &mut HttpRequest<'_>, staged: &mut Staged<'_>, limit: u64) -> Outcome<()> {
    let mut buf = vec![0; COPY_BUFFER];
    loop {
        let n = read_some(request, &mut buf)?;
        if n == 0 {
            return Ok(());
        }
        if staged.len + n as u64 > limit {
            return Err(Refusal::too_large(limit).into());
        }
        staged.write(&buf[..n])?;
    }
}

/// Reads what comes next of the body (0 at its end).
fn read_some(request: &mut HttpRequest<'_>, buf: &mut [u8]) -> Outcome<usize> {
    loop {
        match request.rfile.read(buf) {
            Ok(n) => return Ok(n),
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(Stop::Io(err)),
        }
    }
}

// ---------------------------------------------------------------------------------------
// PUT

/// Where a `PUT` goes, checked before its body is read.
struct PutPlan {
    dir: File,
    name: String,
    link: String,
    /// `If-None-Match: *`: never replace, whatever the settings.
    if_none_match: bool,
}

fn plan_put(site: &Site<'_>, request: &HttpRequest<'_>) -> Result<PutPlan, Refusal> {
    let Some(uploads) = site.uploads else {
        return Err(Refusal::not_allowed(
            allowed(None, false),
            "Uploads are not enabled",
        ));
    };
    let target = path::translate(site.root.path(), &request.path)
        .map_err(|status| Refusal::new(status, "Bad path"))?;
    let Some(name) = target
        .relative
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
    else {
        return Err(put_to_directory(uploads));
    };
    if target.raw_path.ends_with('/') {
        return Err(put_to_directory(uploads));
    }
    check_path(&target.relative)?;
    if let Some(length) = request.rfile.known_length() {
        if length > uploads.file_limit() {
            return Err(Refusal::too_large(uploads.file_limit()));
        }
    }
    let parent = target.relative.parent().unwrap_or(Path::new(""));
    let dir = open_directory(site, parent, StatusCode::CONFLICT)?;
    let if_none_match = request
        .headers
        .get(IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes().trim_ascii() == b"*");
    match existing(&dir, &name) {
        Existing::Directory => return Err(put_to_directory(uploads)),
        Existing::Other if if_none_match => return Err(precondition_failed(&name)),
        Existing::Other if !uploads.overwrite => return Err(exists(&name)),
        _ => {}
    }
    Ok(PutPlan {
        dir,
        name,
        link: link_to(&target.relative, false),
        if_none_match,
    })
}

fn put_to_directory(uploads: &Uploads) -> Refusal {
    Refusal::not_allowed(
        allowed(Some(uploads), true),
        "A PUT names a file, not a directory",
    )
}

fn precondition_failed(name: &str) -> Refusal {
    Refusal::new(
        StatusCode::PRECONDITION_FAILED,
        format!("{name:?} exists (If-None-Match: *)"),
    )
}

/// Answers a `PUT`: the body becomes the file the target names.
pub(super) fn put(site: &Site<'_>, request: &mut HttpRequest<'_>) -> HandlerResult {
    let outcome = put_file(site, request);
    answer(request, outcome)
}

fn put_file(site: &Site<'_>, request: &mut HttpRequest<'_>) -> Outcome<()> {
    let plan = plan_put(site, request)?;
    let uploads = site.uploads.expect("a PUT is planned only with uploads on");
    let mut staged = Staged::create(&plan.dir)?;
    copy_body(request, &mut staged, uploads.file_limit())?;
    let overwrite = uploads.overwrite && !plan.if_none_match;
    let placed = staged.commit(&plan.name, overwrite).map_err(|refusal| {
        match refusal.status == StatusCode::CONFLICT && plan.if_none_match {
            true => precondition_failed(&plan.name),
            false => refusal,
        }
    })?;
    sync_directory(&plan.dir);
    send_placed(request, placed, &plan.link).map_err(Stop::Io)
}

/// 201 with `Location` for a new file, 204 for a replaced one.
fn send_placed(request: &mut HttpRequest<'_>, placed: Placed, link: &str) -> io::Result<()> {
    if placed == Placed::Replaced {
        request.send_response(StatusCode::NO_CONTENT)?;
        return request.end_headers();
    }
    let text = format!("Created {link}\n");
    request.send_response(StatusCode::CREATED)?;
    request.send_header("Location", link)?;
    request.send_header("Content-Type", "text/plain; charset=utf-8")?;
    request.send_content_length(text.len() as u64)?;
    request.end_headers()?;
    request.wfile.write_all(text.as_bytes())
}

// ---------------------------------------------------------------------------------------
// DELETE

struct DeletePlan {
    dir: File,
    name: String,
}

fn plan_delete(site: &Site<'_>, request: &HttpRequest<'_>) -> Result<DeletePlan, Refusal> {
    let uploads = match site.uploads {
        Some(uploads) if uploads.delete => uploads,
        uploads => {
            return Err(Refusal::not_allowed(
                allowed(uploads, false),
                "Deleting is not enabled",
            ))
        }
    };
    let not_allowed =
        || Refusal::not_allowed(allowed(Some(uploads), true), "Directories are not deleted");
    let target = path::translate(site.root.path(), &request.path)
        .map_err(|status| Refusal::new(status, "Bad path"))?;
    let Some(name) = target
        .relative
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
    else {
        return Err(not_allowed());
    };
    if target.raw_path.ends_with('/') {
        return Err(not_allowed());
    }
    check_path(&target.relative)?;
    let parent = target.relative.parent().unwrap_or(Path::new(""));
    let dir = open_directory(site, parent, StatusCode::NOT_FOUND)?;
    match existing(&dir, &name) {
        Existing::Nothing => Err(Refusal::new(StatusCode::NOT_FOUND, "File not found")),
        Existing::Directory => Err(not_allowed()),
        Existing::Other => Ok(DeletePlan { dir, name }),
    }
}

/// Answers a `DELETE`: removes the file (never a directory).
pub(super) fn delete(site: &Site<'_>, request: &mut HttpRequest<'_>) -> HandlerResult {
    let plan = match plan_delete(site, request) {
        Ok(plan) => plan,
        Err(refusal) => return refusal.send(request),
    };
    match unlinkat(&plan.dir, plan.name.as_str(), UnlinkatFlags::NoRemoveDir) {
        Ok(()) => {
            sync_directory(&plan.dir);
            request.send_empty(StatusCode::NO_CONTENT)
        }
        Err(Errno::ENOENT) => request.send_error(StatusCode::NOT_FOUND, "File not found"),
        Err(errno) => storage_refusal(errno).send(request),
    }
}

// ---------------------------------------------------------------------------------------
// OPTIONS

/// Answers `OPTIONS`: 200 with the methods the target allows (`*`: the server's).
pub(super) fn options(site: &Site<'_>, request: &mut HttpRequest<'_>) -> HandlerResult {
    let directory = if request.path == "*" {
        false
    } else {
        let target = match path::translate(site.root.path(), &request.path) {
            Ok(target) => target,
            Err(status) => return request.send_error(status, "Bad path"),
        };
        target.raw_path.ends_with('/')
            || target.relative.as_os_str().is_empty()
            || site
                .root
                .open_file(&target.relative, false)
                .is_ok_and(|file| file.metadata().is_ok_and(|m| m.is_dir()))
    };
    request.send_response(StatusCode::OK)?;
    request.send_header("Allow", allowed(site.uploads, directory))?;
    request.send_content_length(0)?;
    request.end_headers()?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// multipart/form-data POST

pub(super) fn bad_boundary() -> Refusal {
    Refusal::new(
        StatusCode::BAD_REQUEST,
        "The form's Content-Type has no usable boundary",
    )
}

/// The refusal for a body the parser does not take.
fn form_refusal(error: FormError) -> Refusal {
    let status = match error {
        FormError::TooManyParts => StatusCode::PAYLOAD_TOO_LARGE,
        FormError::Malformed(_) | FormError::HeadTooLarge | FormError::Truncated => {
            StatusCode::BAD_REQUEST
        }
    };
    Refusal::new(status, error.message())
}

/// The directory a form posts files to, checked before its body is read.
struct FormPlan {
    dir: File,
    link: String,
}

fn plan_form(site: &Site<'_>, request: &HttpRequest<'_>) -> Result<FormPlan, Refusal> {
    let uploads = site
        .uploads
        .expect("forms are planned only with uploads on");
    let target = path::translate(site.root.path(), &request.path)
        .map_err(|status| Refusal::new(status, "Bad path"))?;
    check_path(&target.relative)?;
    if let Some(length) = request.rfile.known_length() {
        if length > uploads.request_limit() {
            return Err(Refusal::too_large(uploads.request_limit()));
        }
    }
    let dir = open_directory(site, &target.relative, StatusCode::NOT_FOUND)?;
    Ok(FormPlan {
        dir,
        link: link_to(&target.relative, true),
    })
}

/// What the current part's content goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Current {
    /// Between parts.
    Nothing,
    /// The last staged file.
    File,
    /// A field that is not a file: skipped.
    Field,
    /// A file input left empty (`filename=""`): it must have no content.
    NoFile,
}

/// A file of the form, saved.
struct Saved {
    name: String,
    len: u64,
    placed: Placed,
}

/// Answers a `multipart/form-data` `POST` of files to a directory.
pub(super) fn post_form(
    site: &Site<'_>,
    request: &mut HttpRequest<'_>,
    boundary: &[u8],
) -> HandlerResult {
    let outcome = save_form(site, request, boundary);
    answer(request, outcome)
}

fn save_form(site: &Site<'_>, request: &mut HttpRequest<'_>, boundary: &[u8]) -> Outcome<()> {
    let plan = plan_form(site, request)?;
    let uploads = site.uploads.expect("forms are saved only with uploads on");
    let mut form = Form {
        dir: &plan.dir,
        uploads,
        files: Vec::new(),
        ignored: Vec::new(),
        current: Current::Nothing,
    };
    form.read(request, boundary)?;
    if form.files.is_empty() {
        return Err(Refusal::new(StatusCode::BAD_REQUEST, "The form holds no file").into());
    }
    let saved = commit_all(form.files, uploads.overwrite)?;
    sync_directory(&plan.dir);
    send_summary(request, &plan.link, &saved, &form.ignored).map_err(Stop::Io)
}

/// A form being read: its files staged in `dir`, the names of its other fields.
struct Form<'d> {
    dir: &'d File,
    uploads: &'d Uploads,
    files: Vec<(String, Staged<'d>)>,
    ignored: Vec<String>,
    current: Current,
}

impl<'d> Form<'d> {
    /// Reads the body through the parser, a buffer at a time, to the form's end.
    fn read(&mut self, request: &mut HttpRequest<'_>, boundary: &[u8]) -> Outcome<()> {
        let limits = PartLimits {
            max_parts: self.uploads.max_parts,
            max_head_bytes: PART_HEAD_BYTES,
        };
        let mut parser = Parser::new(boundary, limits);
        let mut buf = vec![0; COPY_BUFFER];
        let (mut start, mut end) = (0, 0);
        let mut received = 0u64;
        loop {
            if start == end {
                let n = read_some(request, &mut buf)?;
                if n == 0 {
                    // The body ended before the form did.
                    parser.finish().map_err(form_refusal)?;
                    return Ok(());
                }
                received += n as u64;
                if received > self.uploads.request_limit() {
                    return Err(Refusal::too_large(self.uploads.request_limit()).into());
                }
                (start, end) = (0, n);
            }
            let step = parser.parse(&buf[start..end]).map_err(form_refusal)?;
            start += step.consumed;
            if step.event == Event::End {
                return Ok(());
            }
            self.take(step.event)?;
        }
    }

    /// Acts on what the parser found.
    fn take(&mut self, event: Event<'_>) -> Result<(), Refusal> {
        match event {
            Event::NeedMore | Event::End => {}
            Event::Part(head) => self.current = self.begin_part(head)?,
            Event::Data(data) => match self.current {
                Current::File => {
                    let (_, staged) = self.files.last_mut().expect("a file part is staged");
                    let limit = self.uploads.file_limit();
                    if staged.len + data.len() as u64 > limit {
                        return Err(Refusal::too_large(limit));
                    }
                    staged.write(data)?;
                }
                Current::NoFile => {
                    let message = "A file part without a file name has content";
                    return Err(Refusal::new(StatusCode::BAD_REQUEST, message));
                }
                Current::Field | Current::Nothing => {}
            },
            Event::PartEnd => {
                if self.current == Current::File {
                    let (_, staged) = self.files.last_mut().expect("a file part is staged");
                    // One file open at a time, however many parts.
                    staged.finish()?;
                }
                self.current = Current::Nothing;
            }
        }
        Ok(())
    }

    /// Starts a part of the form: a file is staged, anything else skipped.
    fn begin_part(&mut self, head: PartHead) -> Result<Current, Refusal> {
        let filename = match head.filename {
            None => {
                self.ignored.push(head.name);
                return Ok(Current::Field);
            }
            Some(filename) if filename.is_empty() => {
                self.ignored.push(head.name);
                return Ok(Current::NoFile);
            }
            Some(filename) => filename,
        };
        check_name(&filename)?;
        if self.files.iter().any(|(name, _)| *name == filename) {
            let message = format!("The form has two files named {filename:?}");
            return Err(Refusal::new(StatusCode::BAD_REQUEST, message));
        }
        match existing(self.dir, &filename) {
            Existing::Directory => {
                let message = format!("{filename:?} is a directory");
                return Err(Refusal::new(StatusCode::CONFLICT, message));
            }
            // Refused now, before its content is written; the rename checks again.
            Existing::Other if !self.uploads.overwrite => return Err(exists(&filename)),
            _ => {}
        }
        self.files.push((filename, Staged::create(self.dir)?));
        Ok(Current::File)
    }
}

/// Gives every staged file its name, in the order of the form. If one cannot take it (a
/// file of that name appeared meanwhile), the rest are removed and the refusal says which
/// were saved before it.
fn commit_all(files: Vec<(String, Staged<'_>)>, overwrite: bool) -> Result<Vec<Saved>, Refusal> {
    let mut saved: Vec<Saved> = Vec::with_capacity(files.len());
    for (name, staged) in files {
        let len = staged.len;
        match staged.commit(&name, overwrite) {
            Ok(placed) => saved.push(Saved { name, len, placed }),
            Err(mut refusal) => {
                if !saved.is_empty() {
                    let names: Vec<&str> = saved.iter().map(|s| s.name.as_str()).collect();
                    let _ = write!(refusal.message, " (saved before it: {})", names.join(", "));
                }
                return Err(refusal);
            }
        }
    }
    Ok(saved)
}

/// Whether the client reads HTML (a browser's form): it then goes back to the listing.
fn wants_html(request: &HttpRequest<'_>) -> bool {
    request
        .headers
        .get_all(ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|range| {
            let mut params = range.split(';');
            let media = params.next().unwrap_or("").trim();
            let refused =
                params.any(|p| matches!(p.trim(), "q=0" | "q=0.0" | "q=0.00" | "q=0.000"));
            media.eq_ignore_ascii_case("text/html") && !refused
        })
}

/// 303 to the listing for a browser, else 201 with the JSON summary.
fn send_summary(
    request: &mut HttpRequest<'_>,
    dir_link: &str,
    saved: &[Saved],
    ignored: &[String],
) -> io::Result<()> {
    if wants_html(request) {
        request.send_response(StatusCode::SEE_OTHER)?;
        request.send_header("Location", dir_link)?;
        request.send_content_length(0)?;
        return request.end_headers();
    }
    let mut json = String::from("{\"files\":[");
    for (i, file) in saved.iter().enumerate() {
        let link = format!(
            "{dir_link}{}",
            link_to(Path::new(&file.name), false).trim_start_matches('/')
        );
        let _ = write!(
            json,
            "{}{{\"name\":{},\"url\":{},\"size\":{},\"replaced\":{}}}",
            if i == 0 { "" } else { "," },
            json_string(&file.name),
            json_string(&link),
            file.len,
            file.placed == Placed::Replaced,
        );
    }
    json.push_str("],\"ignored\":[");
    for (i, name) in ignored.iter().enumerate() {
        let _ = write!(
            json,
            "{}{}",
            if i == 0 { "" } else { "," },
            json_string(name)
        );
    }
    json.push_str("]}\n");
    request.send_response(StatusCode::CREATED)?;
    request.send_header("Content-Type", "application/json")?;
    request.send_content_length(json.len() as u64)?;
    request.end_headers()?;
    request.wfile.write_all(json.as_bytes())
}

/// `text` as a JSON string.
fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 || c == '\u{2028}' || c == '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_are_refused() {
        let refused: [(&str, u16); 12] = [
            ("", 400),
            (".htaccess", 403),
            (".", 403),
            ("..", 403),
            ("a/b", 400),
            ("a\\b", 400),
            ("a\0b", 400),
            ("a\r\nb", 400),
            ("tab\there", 400),
            ("del\u{7f}", 400),
            ("exe\u{202e}txt.", 400),
            ("c1\u{85}", 400),
        ];
        for (name, status) in refused {
            let got = check_name(name).map_err(|r| r.status.as_u16());
            assert_eq!(got, Err(status), "{name:?}");
        }
        assert_eq!(
            check_name(&"n".repeat(256)).map_err(|r| r.status.as_u16()),
            Err(400)
        );
        for fine in [
            "a.txt",
            "中文.txt",
            "with space",
            "x.",
            "a..b",
            "-rf",
            &"n".repeat(255),
        ] {
            assert!(check_name(fine).is_ok(), "{fine:?}");
        }
    }

    #[test]
    fn links_are_encoded_segment_by_segment() {
        assert_eq!(link_to(Path::new(""), true), "/");
        assert_eq!(
            link_to(Path::new("a b/c?d#e.txt"), false),
            "/a%20b/c%3Fd%23e.txt"
        );
        assert_eq!(link_to(Path::new("dir"), true), "/dir/");
        assert_eq!(link_to(Path::new("中"), false), "/%E4%B8%AD");
    }

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(
            json_string("a\"b\\c\u{1}\u{2028}é"),
            "\"a\\\"b\\\\c\\u0001\\u2028é\""
        );
    }

    #[test]
    fn allow_lists_what_is_enabled() {
        let on = Uploads::new();
        let delete = Uploads::new().delete(true);
        assert_eq!(allowed(None, false), "GET, HEAD, POST, OPTIONS");
        assert_eq!(allowed(Some(&on), false), "GET, HEAD, POST, OPTIONS, PUT");
        assert_eq!(
            allowed(Some(&delete), false),
            "GET, HEAD, POST, OPTIONS, PUT, DELETE"
        );
        assert_eq!(allowed(Some(&delete), true), "GET, HEAD, POST, OPTIONS");
    }

    #[test]
    fn the_file_limit_never_exceeds_the_request_limit() {
        assert_eq!(Uploads::new().file_limit(), 64 << 20);
        assert_eq!(Uploads::new().max_file_size(10).file_limit(), 10);
        let small = Uploads::new().max_request_size(5).max_file_size(10);
        assert_eq!(small.file_limit(), 5);
    }

    /// A staged file that never takes its name leaves nothing; one that does leaves only
    /// its name; the link-then-unlink fallback refuses an existing name as the rename does.
    #[test]
    fn temporary_files_are_removed_or_renamed() {
        let base = tempfile::TempDir::new().unwrap();
        let dir = File::open(base.path()).unwrap();
        let names = || {
            let mut names: Vec<String> = std::fs::read_dir(base.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        };
        {
            let mut staged = Staged::create(&dir).unwrap();
            staged.write(b"dropped").unwrap();
            assert_eq!(names().len(), 1);
            assert!(names()[0].starts_with(".upload-"), "{:?}", names());
        }
        assert!(names().is_empty());

        let mut staged = Staged::create(&dir).unwrap();
        staged.write(b"first").unwrap();
        assert_eq!(staged.commit("a.txt", false).unwrap(), Placed::Created);
        let mut staged = Staged::create(&dir).unwrap();
        staged.write(b"second").unwrap();
        assert_eq!(
            staged.commit("a.txt", false).unwrap_err().status,
            StatusCode::CONFLICT
        );
        assert_eq!(names(), ["a.txt"]);
        assert_eq!(std::fs::read(base.path().join("a.txt")).unwrap(), b"first");
        let mut staged = Staged::create(&dir).unwrap();
        staged.write(b"third").unwrap();
        assert_eq!(staged.commit("a.txt", true).unwrap(), Placed::Replaced);
        assert_eq!(std::fs::read(base.path().join("a.txt")).unwrap(), b"third");
        assert_eq!(names(), ["a.txt"]);

        let staged = Staged::create(&dir).unwrap();
        let temp = staged.temp.clone();
        assert_eq!(link_then_unlink(&dir, &temp, "a.txt"), Err(Errno::EEXIST));
        assert_eq!(link_then_unlink(&dir, &temp, "b.txt"), Ok(()));
        drop(staged); // its temporary name is gone already: nothing to remove
        assert_eq!(names(), ["a.txt", "b.txt"]);
    }
}
