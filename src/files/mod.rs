//! Python's `SimpleHTTPRequestHandler`: serves the files of a directory.
//!
//! `GET` and `HEAD` serve files (with `ETag`, `Last-Modified`, conditional and range
//! requests) and directories (their index page, or a listing); `POST` decodes an
//! `application/x-www-form-urlencoded` body and hands its fields to a [`FormHandler`].
//! With [`uploads`](SimpleHttpHandler::uploads) on, `PUT` writes a file, a
//! `multipart/form-data` `POST` writes files into a directory and `DELETE` may remove one:
//! see [`Uploads`].
//! No request can reach a file outside the directory: see
//! [`translate_path`](SimpleHttpHandler::translate_path). Small files are kept in memory
//! and checked against the disk on every request: see
//! [`cache_small_files`](SimpleHttpHandler::cache_small_files).
//!
//! A listing is an HTML table of names, sizes (readable, exact in `title` and
//! `data-bytes`) and modification times (UTC), with a parent link below the root, sorted
//! by `?sort=name|size|date&order=asc|desc` (unknown values: by name, ascending), styled
//! for phones and dark mode without JavaScript. A client that prefers `application/json`
//! in `Accept` gets the same listing as JSON (with or without the `json` feature):
//!
//! ```json
//! {"path":"/docs/","sort":"name","order":"asc","total":2,"shown":2,"entries":[
//!  {"name":"a.txt","href":"a.txt","type":"file","size":12,"mtime":1000000000,
//!   "modified":"2001-09-09T01:46:40Z"},
//!  {"name":"img","href":"img/","type":"dir","size":null,"mtime":1000000000,
//!   "modified":"2001-09-09T01:46:40Z"}]}
//! ```
//!
//! `type` is `file`, `dir`, `symlink` or `other`; `size` is a file's length in bytes
//! (`null` for the rest); `mtime` is in seconds since the epoch and `modified` the same
//! in RFC 3339 (`null` outside the years 0000 to 9999). A symlink is described by what a request for it gets: its target's size
//! and time, `null` if it dangles or leads out of the directory unfollowed. `name` is the
//! name as text (bytes that are not UTF-8 as U+FFFD); `href`, relative and
//! percent-encoded from the raw bytes, names the file exactly. Both forms carry
//! `Vary: Accept`. At most [`max_listing`](SimpleHttpHandler::max_listing) entries are
//! shown (`total` counts all, `shown` those listed).

mod byteranges;
mod cache;
pub(crate) mod conditional;
mod encoded;
mod form;
mod listing;
mod multipart;
pub(crate) mod path;
mod upload;

use std::collections::HashMap;
use std::fs::{File, Metadata};
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use http::header::CONTENT_TYPE;
use http::StatusCode;

pub use form::{EchoForm, FormHandler};
pub use upload::Uploads;

use crate::handler::{BoxError, HandlerResult};
use crate::http::compress::Compression;
use crate::http::{parse_qsl, HttpHandler, HttpRequest, Limits};
use byteranges::Multipart;
use cache::{CachedFile, FileCache, Identity};
use conditional::{ByteRange, RangeRequest, Validators};
use multipart::FormType;

/// Files up to this size are read into the response buffer and leave with the headers in
/// one write; larger ones are sent by the kernel (`sendfile`).
const SMALL_FILE: u64 = 16 * 1024;

/// How many bytes of small files are kept in memory by default.
const CACHE_BYTES: usize = 8 * 1024 * 1024;

/// The largest `application/x-www-form-urlencoded` body, which is read into memory: with
/// uploads on, the server's body limit is the upload limit, which may be far larger.
const FORM_BYTES: u64 = 64 * 1024 * 1024;

/// Serves a directory over HTTP: Python's `SimpleHTTPRequestHandler`.
///
/// Cheap to clone (the configuration is shared), so it is the handler value every
/// connection gets a copy of. Compose it into your own handler to add routes and fall back
/// to the files (see the `custom_routes` example).
///
/// ```no_run
/// use socketserver::files::SimpleHttpHandler;
/// use socketserver::http::HttpServer;
///
/// let handler = SimpleHttpHandler::new("www")?;
/// let server = HttpServer::bind("127.0.0.1:8000", handler)?;
/// server.serve_forever()?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct SimpleHttpHandler<F = EchoForm> {
    config: Arc<Config>,
    form: F,
}

#[derive(Clone, Debug)]
struct Config {
    root: path::Root,
    follow_symlinks: bool,
    index_pages: Vec<String>,
    extensions: HashMap<String, String>,
    cache: Arc<FileCache>,
    uploads: Option<Uploads>,
    show_hidden: bool,
    listing: bool,
    max_listing: usize,
    /// A path that names nothing gets the root's index page (a single-page app).
    spa: bool,
    not_found_page: Option<NotFoundPage>,
    compression: Compression,
}

/// The page a 404 answers with.
#[derive(Clone, Debug)]
struct NotFoundPage {
    content_type: String,
    body: Arc<[u8]>,
}

/// What a response says about a file, apart from its bytes.
#[derive(Debug)]
struct Entity {
    len: u64,
    validators: Validators,
    last_modified: String,
    content_type: String,
    /// The modification time, to the nanosecond: a precompressed file older than this is
    /// stale.
    modified: SystemTime,
}

/// A directory's index page, found.
enum IndexPage {
    /// Kept in memory, with its path relative to the root.
    Cached(Arc<CachedFile>, PathBuf),
    /// Opened from disk, with its metadata and its path relative to the root.
    File(File, Metadata, PathBuf),
}

/// Where the bytes of a file come from.
enum Source<'a> {
    File(File),
    Memory(&'a [u8]),
}

impl SimpleHttpHandler {
    /// Serves `directory` (Python's `directory`), which must exist. Symlinks that lead out
    /// of it are not followed; the index pages are `index.html` and `index.htm`; names
    /// starting with `.` are hidden; directories without an index page are listed.
    pub fn new(directory: impl AsRef<Path>) -> io::Result<Self> {
        let root = path::Root::open(directory.as_ref())?;
        Ok(SimpleHttpHandler {
            config: Arc::new(Config {
                root,
                follow_symlinks: false,
                index_pages: vec!["index.html".into(), "index.htm".into()],
                extensions: HashMap::new(),
                cache: Arc::new(FileCache::new(CACHE_BYTES, SMALL_FILE)),
                uploads: None,
                show_hidden: false,
                listing: true,
                max_listing: listing::MAX_ENTRIES,
                spa: false,
                not_found_page: None,
                compression: Compression::off(),
            }),
            form: EchoForm,
        })
    }
}

impl<F: FormHandler> SimpleHttpHandler<F> {
    /// The configuration, to change: a handler configured differently from its clones
    /// gets a cache of its own, as what one may serve another may not.
    fn config_mut(&mut self) -> &mut Config {
        if Arc::get_mut(&mut self.config).is_none() {
            let cache = Arc::new(self.config.cache.empty_like());
            Arc::make_mut(&mut self.config).cache = cache;
        }
        Arc::make_mut(&mut self.config)
    }

    /// Follow symlinks that lead out of the directory (default `false`: they answer 404).
    /// Symlinks that stay inside are always served.
    pub fn follow_symlinks(mut self, follow: bool) -> Self {
        self.config_mut().follow_symlinks = follow;
        self
    }

    /// The files served for a directory, first found wins (Python's `index_pages`).
    pub fn index_pages<I: IntoIterator<Item = S>, S: Into<String>>(mut self, pages: I) -> Self {
        self.config_mut().index_pages = pages.into_iter().map(Into::into).collect();
        self
    }

    /// Serves files ending in `.extension` as `media_type` (Python's `extensions_map`).
    pub fn extension(mut self, extension: &str, media_type: &str) -> Self {
        let extension = extension.trim_start_matches('.').to_ascii_lowercase();
        self.config_mut()
            .extensions
            .insert(extension, media_type.to_string());
        self
    }

    /// Keeps files of up to 16 KiB in memory, `bytes` of them in all (default 8 MiB; 0
    /// turns the cache off). Every request still checks with one `stat` that the file on
    /// disk is the one in memory (same inode, size, modification and change times), so
    /// edits, replacements and deletions show at once; files changed in the last second or
    /// two are read from disk.
    pub fn cache_small_files(mut self, bytes: usize) -> Self {
        self.config_mut().cache = Arc::new(FileCache::new(bytes, SMALL_FILE));
        self
    }

    /// Accepts uploads as `uploads` says: `PUT` of a file, `multipart/form-data` `POST` of
    /// files to a directory, `DELETE` if allowed (see [`Uploads`]). Off by default: `PUT`
    /// and `DELETE` then answer 405 Method Not Allowed. The server's body limit becomes
    /// the upload limit (see [`Uploads::max_request_size`]).
    pub fn uploads(mut self, uploads: Uploads) -> Self {
        self.config_mut().uploads = Some(uploads);
        self
    }

    /// What uploads are accepted, if any.
    pub fn upload_settings(&self) -> Option<&Uploads> {
        self.config.uploads.as_ref()
    }

    /// What the upload code needs of the configuration.
    fn site(&self) -> upload::Site<'_> {
        upload::Site {
            root: &self.config.root,
            uploads: self.config.uploads.as_ref(),
        }
    }

    /// Serve and list names starting with `.` (default `false`). Hidden, a path with any
    /// such segment (`/.git/config`, `/a/.env`, `/.hidden/x`) answers 404 as if it were
    /// not there, and listings leave those names out; that includes `/.well-known/`, so a
    /// site answering ACME challenges needs `true`. The rule is about the path asked for:
    /// a symlink with a plain name leading to a dotfile serves it.
    pub fn show_hidden(mut self, show: bool) -> Self {
        self.config_mut().show_hidden = show;
        self
    }

    /// List directories that have no index page (default `true`). When `false` such a
    /// directory answers 404, with or without its slash: like a missing file, it says
    /// nothing of what exists (a 403 would confirm the directory to a scanner).
    pub fn listing(mut self, list: bool) -> Self {
        self.config_mut().listing = list;
        self
    }

    /// Show at most `entries` entries in a listing (default 10,000), the first in the
    /// order asked for (`?sort=name|size|date&order=asc|desc`); the page says how many of
    /// how many are shown. A directory of any size is read in memory proportional to
    /// `entries`, and in time proportional to its size.
    pub fn max_listing(mut self, entries: usize) -> Self {
        self.config_mut().max_listing = entries;
        self
    }

    /// Answers a path that names nothing with the root's index page, 200, as a single-page
    /// app wants (its own code reads the path); default `false`.
    pub fn spa(mut self, spa: bool) -> Self {
        self.config_mut().spa = spa;
        self
    }

    /// Answers 404 with the file at `path` (read now, from anywhere; its type guessed from
    /// its name) instead of the error page.
    pub fn not_found_page(mut self, path: impl AsRef<Path>) -> io::Result<Self> {
        let path = path.as_ref();
        let body = std::fs::read(path)
            .map_err(|err| io::Error::new(err.kind(), format!("{}: {err}", path.display())))?;
        let page = NotFoundPage {
            content_type: self.guess_type(path),
            body: body.into(),
        };
        self.config_mut().not_found_page = Some(page);
        Ok(self)
    }

    /// Compresses as `compression` says (default [`Compression::off`], as Python's server
    /// does not; the `simple-http` binary turns it on). With [`Compression::new`]:
    ///
    /// - A file `x` with `x.br`, `x.zst` or `x.gz` beside it (found as `x` is, beneath
    ///   the directory) answers a client that accepts that coding with that file,
    ///   `Content-Encoding`, `x`'s `Content-Type` and an `ETag` of its own (`x`'s tag,
    ///   the coding and the precompressed file's tag). A precompressed file modified
    ///   before `x` is stale and ignored. Looking for them costs up to three `open`s per
    ///   request of a file.
    /// - Otherwise a file of a compressible type (text, JSON, JavaScript, XML, SVG:
    ///   [`is_compressible`](crate::http::compress::is_compressible)) within the size
    ///   bounds is compressed with brotli, zstd or gzip, its `ETag` being `x`'s with the coding
    ///   and level: the output is a function of the bytes and the level, so the tag is
    ///   strong. Small files kept in memory keep their compressed forms too.
    /// - Codings are chosen by `Accept-Encoding` (see [`compress`](crate::http::compress));
    ///   at equal weight a precompressed file wins over compressing, and brotli over zstd
    ///   over gzip.
    /// - A request with `Range` gets ranges of `x` itself: ranges of a coded body are
    ///   rarely what a client can use (RFC 9110 allows either).
    /// - Conditional requests are answered for the representation chosen: its `ETag`.
    /// - Every answer that could have been coded otherwise carries `Vary: Accept-Encoding`.
    pub fn compression(mut self, compression: Compression) -> Self {
        self.config_mut().compression = compression;
        self
    }

    /// Answers forms with `form` instead of [`EchoForm`].
    pub fn form_handler<G: FormHandler>(self, form: G) -> SimpleHttpHandler<G> {
        SimpleHttpHandler {
            config: self.config,
            form,
        }
    }

    /// The directory served (canonical).
    pub fn directory(&self) -> &Path {
        self.config.root.path()
    }

    /// Whether symlinks out of the directory are followed.
    pub fn follows_symlinks(&self) -> bool {
        self.config.follow_symlinks
    }

    /// Maps a request target to the file it names under the directory: Python's
    /// `translate_path`, with symlinks resolved. Percent-encoded bytes are decoded to the
    /// raw bytes of the name (which need not be UTF-8). The error is the status to answer:
    /// 400 for a target that spells its way out (`..`, `%2e%2e`, `..%2f`, `..\`, NUL),
    /// 404 for a missing file, a name holding an encoded slash (`%2f`), a hidden name
    /// (see [`show_hidden`](Self::show_hidden)) or a symlink out of the directory, 403
    /// when the system refuses.
    pub fn translate_path(&self, target: &str) -> Result<PathBuf, StatusCode> {
        let root = self.config.root.path();
        let target = self.translate(target)?;
        path::resolve(root, &target.path, self.config.follow_symlinks)
    }

    /// [`path::translate`], and the dotfile rule.
    fn translate(&self, target: &str) -> Result<path::Target, StatusCode> {
        let target = path::translate(self.config.root.path(), target)?;
        if target.hidden && !self.config.show_hidden {
            return Err(StatusCode::NOT_FOUND);
        }
        Ok(target)
    }

    /// The media type for a file name: the `extension` map, then `mime_guess`; text types
    /// get `charset=utf-8`; unknown is `application/octet-stream`. Python's `guess_type`.
    pub fn guess_type(&self, path: &Path) -> String {
        let extension = path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase());
        if let Some(media) = extension.and_then(|e| self.config.extensions.get(&e)) {
            return media.clone();
        }
        match mime_guess::from_path(path).first() {
            Some(mime)
                if mime.type_() == mime_guess::mime::TEXT
                    && mime.get_param("charset").is_none() =>
            {
                format!("{mime}; charset=utf-8")
            }
            Some(mime) => mime.to_string(),
            None => "application/octet-stream".to_string(),
        }
    }

    /// Answers GET and HEAD (the response writer drops the body of a HEAD).
    ///
    /// The file is opened first and everything else is asked of the open file, so what is
    /// checked is what is sent, even if the directory changes meanwhile.
    fn serve(&self, request: &mut HttpRequest<'_>) -> HandlerResult {
        let root = &self.config.root;
        let follow = self.config.follow_symlinks;
        let target = match self.translate(&request.path) {
            Ok(target) => target,
            Err(status) => return self.send_missing(request, status),
        };
        if let Some(cached) = self.config.cache.get(root, &target.relative) {
            if target.raw_path.ends_with('/') {
                return self.send_missing(request, StatusCode::NOT_FOUND);
            }
            return self.send_cached(request, &cached, &target.relative);
        }
        let (file, meta) = match root.open_file(&target.relative, follow).and_then(stat) {
            Ok(opened) => opened,
            Err(status) => return self.send_missing(request, status),
        };
        if meta.is_dir() {
            if !target.raw_path.ends_with('/') {
                if !self.config.listing && self.index_page(&target.relative).is_none() {
                    return self.send_missing(request, StatusCode::NOT_FOUND);
                }
                return redirect_to_directory(request, &target.raw_path, target.query.as_deref());
            }
            return match self.index_page(&target.relative) {
                Some(IndexPage::Cached(cached, relative)) => {
                    self.send_cached(request, &cached, &relative)
                }
                Some(IndexPage::File(page, page_meta, relative)) => {
                    self.serve_file(request, page, &page_meta, &relative)
                }
                None if self.config.listing => self.list_directory(request, file, &target),
                None => self.send_missing(request, StatusCode::NOT_FOUND),
            };
        }
        if !meta.is_file() || target.raw_path.ends_with('/') {
            // A FIFO, a device, or a file named like a directory (Python answers 404 too).
            return self.send_missing(request, StatusCode::NOT_FOUND);
        }
        self.serve_file(request, file, &meta, &target.relative)
    }

    /// Answers `status` for what the request named; a 404 is the root's index page for a
    /// single-page app (`spa`), or the custom page (`not_found_page`), if set.
    fn send_missing(&self, request: &mut HttpRequest<'_>, status: StatusCode) -> HandlerResult {
        if status == StatusCode::NOT_FOUND {
            if self.config.spa {
                match self.index_page(Path::new("")) {
                    Some(IndexPage::Cached(cached, relative)) => {
                        return self.send_cached(request, &cached, &relative)
                    }
                    Some(IndexPage::File(page, meta, relative)) => {
                        return self.serve_file(request, page, &meta, &relative)
                    }
                    None => {}
                }
            }
            if let Some(page) = &self.config.not_found_page {
                let (content_type, body) = (page.content_type.clone(), Arc::clone(&page.body));
                return request.respond(StatusCode::NOT_FOUND, &content_type, &*body);
            }
        }
        send_status(request, status)
    }

    /// The first of the index pages in the directory `relative` that is a file.
    fn index_page(&self, relative: &Path) -> Option<IndexPage> {
        let root = &self.config.root;
        for index in &self.config.index_pages {
            let relative = relative.join(index);
            if let Some(cached) = self.config.cache.get(root, &relative) {
                return Some(IndexPage::Cached(cached, relative));
            }
            let opened = root.open_file(&relative, self.config.follow_symlinks);
            if let Ok((page, meta)) = opened.and_then(stat) {
                if meta.is_file() {
                    return Some(IndexPage::File(page, meta, relative));
                }
            }
        }
        None
    }

    /// Sends the listing of `dir`, found at `target`: Python's `list_directory`, as HTML,
    /// or as JSON for a client that asks for it (`Accept: application/json`).
    fn list_directory(
        &self,
        request: &mut HttpRequest<'_>,
        dir: File,
        target: &path::Target,
    ) -> HandlerResult {
        let options = listing::Options {
            show_hidden: self.config.show_hidden,
            max_entries: self.config.max_listing,
            follow_symlinks: self.config.follow_symlinks,
        };
        let order = listing::Order::from_query(target.query.as_deref());
        let root = &self.config.root;
        let listing = match listing::read(dir, root, &target.relative, &options, order) {
            Ok(listing) => listing,
            Err(err) => {
                request.send_error(path::status_for(&err), "No permission to list directory")?;
                return Ok(());
            }
        };
        let (content_type, body) = match listing::wants_json(&request.headers) {
            true => ("application/json", listing.json(&target.decoded)),
            false => {
                let upload_limit = self.config.uploads.as_ref().map(Uploads::request_limit);
                let page = listing.html(&target.decoded, upload_limit);
                ("text/html; charset=utf-8", page)
            }
        };
        request.send_response(200)?;
        request.send_header("Content-Type", content_type)?;
        request.send_content_length(body.len() as u64)?;
        // The same URL answers HTML or JSON by `Accept`: caches must keep them apart.
        request.send_header("Vary", "Accept")?;
        request.end_headers()?;
        request.wfile.write_all(body.as_bytes())?;
        Ok(())
    }

    /// Sends `file`, whose metadata is `meta`, found at `relative`; keeps it in memory
    /// if it is small and settled.
    fn serve_file(
        &self,
        request: &mut HttpRequest<'_>,
        mut file: File,
        meta: &Metadata,
        relative: &Path,
    ) -> HandlerResult {
        let validators = Validators::of(meta);
        let entity = Entity {
            len: meta.len(),
            last_modified: validators.last_modified_string(),
            validators,
            content_type: self.guess_type(relative),
            modified: meta.modified().unwrap_or(std::time::UNIX_EPOCH),
        };
        let identity = Identity::of(meta);
        if !self.config.cache.admits(&identity) {
            return encoded::send(&self.config, request, relative, &entity, Source::File(file));
        }
        let mut body = vec![0; entity.len as usize].into_boxed_slice();
        // A file that shrank since the stat fails here, before anything is sent.
        file.read_exact(&mut body)?;
        // Room for its compressed forms, if it will have any.
        let compressible = self
            .config
            .compression
            .compresses(&entity.content_type, entity.len);
        let cached = Arc::new(CachedFile::new(identity, entity, body, compressible));
        self.config.cache.insert(relative, Arc::clone(&cached));
        self.send_cached(request, &cached, relative)
    }

    /// Sends a file kept in memory, found at `relative`.
    fn send_cached(
        &self,
        request: &mut HttpRequest<'_>,
        cached: &CachedFile,
        relative: &Path,
    ) -> HandlerResult {
        encoded::send_cached(&self.config, request, relative, cached)
    }
}

/// Answers a GET or HEAD of a file: 412 if a precondition fails, 304 if the client's copy
/// is current, the ranges asked for (206 or 416), or the whole file.
fn send_entity(request: &mut HttpRequest<'_>, entity: &Entity, body: Source<'_>) -> HandlerResult {
    let validators = &entity.validators;
    if validators.precondition_failed(&request.headers) {
        return send_status(request, StatusCode::PRECONDITION_FAILED);
    }
    if validators.not_modified(&request.headers) {
        request.send_response(StatusCode::NOT_MODIFIED)?;
        request.send_header("ETag", &validators.etag)?;
        request.send_header("Last-Modified", &entity.last_modified)?;
        request.end_headers()?;
        return Ok(());
    }
    let len = entity.len;
    match conditional::range(&request.headers, len, validators) {
        RangeRequest::Full => send_range(request, entity, body, StatusCode::OK, 0, len),
        RangeRequest::Partial { start, end } => send_range(
            request,
            entity,
            body,
            StatusCode::PARTIAL_CONTENT,
            start,
            end - start + 1,
        ),
        RangeRequest::Multipart(ranges) => send_multipart(request, entity, body, &ranges),
        RangeRequest::Unsatisfiable => {
            request.send_response(StatusCode::RANGE_NOT_SATISFIABLE)?;
            request.send_header("Content-Range", format_args!("bytes */{len}"))?;
            request.send_content_length(0)?;
            request.end_headers()?;
            Ok(())
        }
    }
}

/// Sends `count` bytes of the file from `start`: all of it (200) or one range (206).
fn send_range(
    request: &mut HttpRequest<'_>,
    entity: &Entity,
    body: Source<'_>,
    status: StatusCode,
    start: u64,
    count: u64,
) -> HandlerResult {
    request.send_response(status)?;
    request.send_header("Content-Type", &entity.content_type)?;
    request.send_content_length(count)?;
    if status == StatusCode::PARTIAL_CONTENT {
        request.send_header(
            "Content-Range",
            format_args!("bytes {start}-{}/{}", start + count - 1, entity.len),
        )?;
    }
    send_validators(request, entity)?;
    request.end_headers()?;
    if request.command == http::Method::HEAD {
        return Ok(());
    }
    body.send(request, start, count)
}

/// Sends several ranges of the file as one `multipart/byteranges` body (206).
fn send_multipart(
    request: &mut HttpRequest<'_>,
    entity: &Entity,
    body: Source<'_>,
    ranges: &[ByteRange],
) -> HandlerResult {
    let boundary = byteranges::boundary(&entity.validators.etag);
    let multipart = Multipart::new(boundary, ranges, &entity.content_type, entity.len)?;
    request.send_response(StatusCode::PARTIAL_CONTENT)?;
    request.send_header("Content-Type", multipart.content_type())?;
    request.send_content_length(multipart.content_length())?;
    send_validators(request, entity)?;
    request.end_headers()?;
    if request.command == http::Method::HEAD {
        return Ok(());
    }
    for (head, range) in multipart.parts() {
        request.wfile.write_all(head)?;
        body.part()?.send(request, range.start, range.len())?;
    }
    request.wfile.write_all(multipart.close())?;
    Ok(())
}

/// The headers every 200 and 206 of a file carries besides its type and length.
fn send_validators(request: &mut HttpRequest<'_>, entity: &Entity) -> io::Result<()> {
    request.send_header("Last-Modified", &entity.last_modified)?;
    request.send_header("ETag", &entity.validators.etag)?;
    request.send_header("Accept-Ranges", "bytes")
}

impl Source<'_> {
    /// The same bytes, for one part of several: a file is opened again (`dup`), as each
    /// `sendfile` takes its file.
    fn part(&self) -> io::Result<Source<'_>> {
        Ok(match self {
            Source::File(file) => Source::File(file.try_clone()?),
            Source::Memory(bytes) => Source::Memory(bytes),
        })
    }

    /// Sends `count` bytes from `start` (within the file) as body.
    fn send(self, request: &mut HttpRequest<'_>, start: u64, count: u64) -> HandlerResult {
        match self {
            Source::Memory(bytes) => {
                // `start + count` is within the file, the length of `bytes`.
                request
                    .wfile
                    .write_all(&bytes[start as usize..][..count as usize])?;
            }
            Source::File(file) if count > SMALL_FILE => {
                // A shrinking file fails the send and closes the connection.
                request.wfile.send_file(file, start, count)?;
            }
            Source::File(file) => copy_range(request, &file, start, count)?,
        }
        Ok(())
    }
}

/// Reads `count` bytes of `file` from `start` into the response: for a range too short to
/// be worth a `sendfile` of its own. Reads at an offset (`pread`), so the parts of one
/// response, which share the file's position, cannot move each other.
fn copy_range(request: &mut HttpRequest<'_>, file: &File, start: u64, count: u64) -> HandlerResult {
    let mut buf = [0u8; 8 * 1024];
    let end = start + count;
    let mut offset = start;
    while offset < end {
        let want = (end - offset).min(buf.len() as u64) as usize;
        match file.read_at(&mut buf[..want], offset) {
            Ok(0) => {
                // The file shrank while it was sent: the promised length cannot be kept.
                request.close_connection = true;
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the file shrank while it was sent",
                )
                .into());
            }
            Ok(n) => {
                request.wfile.write_all(&buf[..n])?;
                offset += n as u64;
            }
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err.into()),
        }
    }
    Ok(())
}

/// 301 to the same path with a slash: what Apache and Python do for a directory. The
/// location keeps the query and starts with exactly one slash, so `//evil.example` cannot
/// become an open redirect.
fn redirect_to_directory(
    request: &mut HttpRequest<'_>,
    raw_path: &str,
    query: Option<&str>,
) -> HandlerResult {
    let mut location = format!("/{}/", raw_path.trim_start_matches('/'));
    if let Some(query) = query {
        location.push('?');
        location.push_str(query);
    }
    request.send_response(StatusCode::MOVED_PERMANENTLY)?;
    request.send_header("Location", location)?;
    request.send_content_length(0)?;
    request.end_headers()?;
    Ok(())
}

/// The file with its metadata, read from the open file.
fn stat(file: File) -> Result<(File, Metadata), StatusCode> {
    match file.metadata() {
        Ok(meta) => Ok((file, meta)),
        Err(err) => Err(path::status_for(&err)),
    }
}

fn send_status(request: &mut HttpRequest<'_>, status: StatusCode) -> HandlerResult {
    let message = match status {
        StatusCode::NOT_FOUND => Some("File not found"),
        StatusCode::BAD_REQUEST => Some("Bad path"),
        _ => None,
    };
    request.send_error(status, message)?;
    Ok(())
}

impl<F: FormHandler> HttpHandler for SimpleHttpHandler<F> {
    const SERVER_VERSION: &'static str = concat!("SimpleHTTP/", env!("CARGO_PKG_VERSION"));

    /// With uploads on, the body limit is the upload limit: an event loop then refuses a
    /// larger upload before reading it.
    fn limits(&self) -> Limits {
        let mut limits = Limits::default();
        if let Some(uploads) = &self.config.uploads {
            limits.max_body_size = uploads.request_limit();
        }
        limits
    }

    /// A form may wait (for its [`FormHandler`]), and so may an upload (writing and
    /// syncing files) and a GET of several ranges (the parts of a large file leave by one
    /// `sendfile` after another, and the loop could only queue the next by waiting for the
    /// client to take the last). Files are read from local disk, as nginx does in its
    /// event loop.
    fn may_block(&self, request: &HttpRequest<'_>) -> bool {
        let uploads = self.config.uploads.is_some();
        match request.command {
            http::Method::POST => F::MAY_BLOCK || (uploads && is_multipart(request)),
            http::Method::PUT | http::Method::DELETE => uploads,
            http::Method::GET => conditional::asks_several_ranges(&request.headers),
            _ => false,
        }
    }

    /// Refuses an upload from its head alone when it would be refused anyway (405, 413,
    /// 409, ...), so that the client never sends the body.
    fn handle_expect_100(&mut self, request: &mut HttpRequest<'_>) -> Result<bool, BoxError> {
        match upload::refuse_early(&self.site(), request) {
            Some(refusal) => {
                refusal.send(request)?;
                Ok(false)
            }
            None => Ok(true),
        }
    }

    fn do_get(&mut self, request: &mut HttpRequest<'_>) -> HandlerResult {
        self.serve(request)
    }

    fn do_head(&mut self, request: &mut HttpRequest<'_>) -> HandlerResult {
        self.serve(request)
    }

    /// A `multipart/form-data` body with uploads on saves its files (see [`Uploads`]); an
    /// `application/x-www-form-urlencoded` body is decoded and its fields handed to the
    /// form handler; any other content type gets 415.
    fn do_post(&mut self, request: &mut HttpRequest<'_>) -> HandlerResult {
        if self.config.uploads.is_some() {
            match upload::form_type_of(request) {
                FormType::Multipart(boundary) => {
                    return upload::post_form(&self.site(), request, &boundary)
                }
                FormType::BadBoundary => return upload::bad_boundary().send(request),
                FormType::Other => {}
            }
        }
        let media_type = request
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|v| v.trim().to_ascii_lowercase());
        // A POST without a body says nothing of its type: it is an empty form.
        let empty = media_type.is_none() && request.rfile.known_length() == Some(0);
        if !empty && media_type.as_deref() != Some("application/x-www-form-urlencoded") {
            let message = match self.config.uploads {
                Some(_) => {
                    "Only application/x-www-form-urlencoded and multipart/form-data forms \
                     are accepted"
                }
                None => "Only application/x-www-form-urlencoded forms are accepted",
            };
            request.send_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, message)?;
            return Ok(());
        }
        if request.rfile.known_length().is_some_and(|n| n > FORM_BYTES) {
            return request.send_error(StatusCode::PAYLOAD_TOO_LARGE, "The form is too large");
        }
        let mut body = Vec::new();
        (&mut request.rfile)
            .take(FORM_BYTES + 1)
            .read_to_end(&mut body)?;
        if body.len() as u64 > FORM_BYTES {
            return request.send_error(StatusCode::PAYLOAD_TOO_LARGE, "The form is too large");
        }
        let fields = parse_qsl(&body);
        self.form.handle_form(request, fields)
    }

    /// With uploads on, the body becomes the file the target names; else 405.
    fn do_put(&mut self, request: &mut HttpRequest<'_>) -> HandlerResult {
        upload::put(&self.site(), request)
    }

    /// With uploads and deleting on, removes the file the target names; else 405.
    fn do_delete(&mut self, request: &mut HttpRequest<'_>) -> HandlerResult {
        upload::delete(&self.site(), request)
    }

    /// 200 with `Allow`: the methods the target allows.
    fn do_options(&mut self, request: &mut HttpRequest<'_>) -> HandlerResult {
        upload::options(&self.site(), request)
    }
}

/// Whether the request's body is a `multipart/form-data` form (by its media type alone).
fn is_multipart(request: &HttpRequest<'_>) -> bool {
    request
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.as_bytes().split(|&b| b == b';').next())
        .is_some_and(|media| {
            media
                .trim_ascii()
                .eq_ignore_ascii_case(b"multipart/form-data")
        })
}

#[cfg(test)]
mod tests;
