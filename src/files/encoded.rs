//! Which representation of a file a GET or HEAD gets: the file itself, a precompressed
//! file beside it (`x.br`, `x.zst`, `x.gz`), or the file compressed now; and sending the
//! coded ones. The rules are on [`SimpleHttpHandler::compression`](super::SimpleHttpHandler::compression).

use std::borrow::Cow;
use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use http::header::RANGE;
use http::StatusCode;

use super::cache::CachedFile;
use super::conditional::Validators;
use super::{send_entity, send_status, Config, Entity, Source};
use crate::handler::HandlerResult;
use crate::http::compress::{AcceptEncoding, Encoding, COMPRESSIBLE_WITH};
use crate::http::HttpRequest;

/// The codings looked for beside a file, in the order of preference at equal weight.
const PRECOMPRESSED: [Encoding; 3] = [Encoding::Brotli, Encoding::Zstd, Encoding::Gzip];

/// A precompressed file found beside the one asked for, not stale.
struct Sidecar {
    encoding: Encoding,
    file: File,
    entity: Entity,
}

/// What the request gets.
enum Choice {
    Identity,
    Sidecar(usize),
    OnTheFly(Encoding),
}

/// Sends the file kept in memory as `cached`, found at `relative`.
pub(super) fn send_cached(
    config: &Config,
    request: &mut HttpRequest<'_>,
    relative: &Path,
    cached: &CachedFile,
) -> HandlerResult {
    let body = Source::Memory(&cached.body);
    send_representation(
        config,
        request,
        relative,
        &cached.entity,
        body,
        Some(cached),
    )
}

/// Sends the file `entity` describes, read from `body`, found at `relative`.
pub(super) fn send(
    config: &Config,
    request: &mut HttpRequest<'_>,
    relative: &Path,
    entity: &Entity,
    body: Source<'_>,
) -> HandlerResult {
    send_representation(config, request, relative, entity, body, None)
}

fn send_representation(
    config: &Config,
    request: &mut HttpRequest<'_>,
    relative: &Path,
    entity: &Entity,
    body: Source<'_>,
    cached: Option<&CachedFile>,
) -> HandlerResult {
    let compression = &config.compression;
    let on_the_fly = compression.compresses(&entity.content_type, entity.len);
    let mut sidecars = match compression.serves_precompressed() {
        true => find_sidecars(config, relative, entity),
        false => Vec::new(),
    };
    if on_the_fly || !sidecars.is_empty() {
        // Another `Accept-Encoding` could have had another answer: caches must know.
        request.add_response_header("Vary", "Accept-Encoding")?;
    }
    // Ranges are of the file itself: a range of a coded body is rarely what a client that
    // resumes a download can use.
    if request.headers.contains_key(RANGE) {
        return send_entity(request, entity, body);
    }
    let accept = AcceptEncoding::from_headers(&request.headers);
    match choose(&accept, &sidecars, on_the_fly) {
        Choice::Identity => send_entity(request, entity, body),
        Choice::Sidecar(index) => {
            let sidecar = sidecars.swap_remove(index);
            let source = Source::File(sidecar.file);
            send_coded(request, &sidecar.entity, sidecar.encoding, source)
        }
        Choice::OnTheFly(encoding) => {
            let level = compression.level(encoding);
            // The output is a function of the file and the level: a strong tag may name it.
            let coded = coded_entity(entity, &format!("{}{level}", encoding.token()));
            if answered_by_preconditions(request, &coded)? {
                return Ok(());
            }
            let bytes: std::sync::Arc<[u8]> = match cached {
                Some(cached) => cached.compressed(encoding, level),
                None => {
                    let plain = read_all(&body, entity.len)?;
                    crate::http::compress::compress(encoding, level, &plain).into()
                }
            };
            let coded = Entity {
                len: bytes.len() as u64,
                ..coded
            };
            send_coded_body(request, &coded, encoding, Source::Memory(&bytes))
        }
    }
}

/// The best representation the client accepts: the highest weight, then a precompressed
/// file before compressing, then brotli, zstd, gzip.
fn choose(accept: &AcceptEncoding, sidecars: &[Sidecar], on_the_fly: bool) -> Choice {
    let precompressed = sidecars
        .iter()
        .enumerate()
        .map(|(index, s)| (s.encoding, 0, Choice::Sidecar(index)));
    let fly = COMPRESSIBLE_WITH
        .iter()
        .filter(|_| on_the_fly)
        .map(|&e| (e, 1, Choice::OnTheFly(e)));
    precompressed
        .chain(fly)
        .filter(|(encoding, _, _)| accept.accepts(*encoding))
        .min_by_key(|(encoding, kind, _)| {
            (
                u16::MAX - accept.weight(*encoding),
                *kind,
                PRECOMPRESSED.iter().position(|e| e == encoding),
            )
        })
        .map_or(Choice::Identity, |(_, _, choice)| choice)
}

/// The precompressed files beside `relative` that are regular files not older than it.
fn find_sidecars(config: &Config, relative: &Path, entity: &Entity) -> Vec<Sidecar> {
    PRECOMPRESSED
        .iter()
        .filter_map(|&encoding| {
            let mut name = OsString::from(relative.as_os_str());
            name.push(encoding.file_suffix());
            let path = PathBuf::from(name);
            let file = config.root.open_file(&path, config.follow_symlinks).ok()?;
            let meta = file.metadata().ok()?;
            let modified = meta.modified().unwrap_or(UNIX_EPOCH);
            // Modified before the file: made from an older version of it.
            if !meta.is_file() || modified < entity.modified {
                return None;
            }
            let own = Validators::of(&meta);
            // The coding and the precompressed file's own tag: a new one is a new body.
            let suffix = format!("{}-{}", encoding.token(), opaque(&own.etag));
            let mut coded = coded_entity(entity, &suffix);
            coded.len = meta.len();
            coded.validators.last_modified = own.last_modified;
            coded.last_modified = own.last_modified_string();
            coded.modified = modified;
            Some(Sidecar {
                encoding,
                file,
                entity: coded,
            })
        })
        .collect()
}

/// What the response of `entity` coded says: the same type and date, and an entity tag
/// of its own, `"<the file's>+<suffix>"`, the suffix naming the coding.
fn coded_entity(entity: &Entity, suffix: &str) -> Entity {
    let etag = format!("\"{}+{}\"", opaque(&entity.validators.etag), suffix);
    Entity {
        len: entity.len,
        validators: Validators {
            etag,
            last_modified: entity.validators.last_modified,
        },
        last_modified: entity.last_modified.clone(),
        content_type: entity.content_type.clone(),
        modified: entity.modified,
    }
}

/// An entity tag without its quotes.
fn opaque(etag: &str) -> &str {
    etag.trim_start_matches('"').trim_end_matches('"')
}

/// Sends 412 or 304 if the request's preconditions say so, for the coded `entity`;
/// `true` if it did.
fn answered_by_preconditions(request: &mut HttpRequest<'_>, entity: &Entity) -> io::Result<bool> {
    let validators = &entity.validators;
    if validators.precondition_failed(&request.headers) {
        send_status(request, StatusCode::PRECONDITION_FAILED).map_err(io::Error::other)?;
        return Ok(true);
    }
    if validators.not_modified(&request.headers) {
        request.send_response(StatusCode::NOT_MODIFIED)?;
        request.send_header("ETag", &validators.etag)?;
        request.send_header("Last-Modified", &entity.last_modified)?;
        request.end_headers()?;
        return Ok(true);
    }
    Ok(false)
}

/// Answers with the coded `entity` (412, 304 or 200), its bytes read from `body`.
fn send_coded(
    request: &mut HttpRequest<'_>,
    entity: &Entity,
    encoding: Encoding,
    body: Source<'_>,
) -> HandlerResult {
    if answered_by_preconditions(request, entity)? {
        return Ok(());
    }
    send_coded_body(request, entity, encoding, body)
}

/// 200 with the coded body (none for HEAD).
fn send_coded_body(
    request: &mut HttpRequest<'_>,
    entity: &Entity,
    encoding: Encoding,
    body: Source<'_>,
) -> HandlerResult {
    request.send_response(StatusCode::OK)?;
    request.send_header("Content-Type", &entity.content_type)?;
    request.send_header("Content-Encoding", encoding)?;
    request.send_content_length(entity.len)?;
    request.send_header("Last-Modified", &entity.last_modified)?;
    request.send_header("ETag", &entity.validators.etag)?;
    request.end_headers()?;
    if request.command == http::Method::HEAD {
        return Ok(());
    }
    body.send(request, 0, entity.len)
}

/// The `len` bytes of a file, to compress.
fn read_all<'a>(body: &Source<'a>, len: u64) -> io::Result<Cow<'a, [u8]>> {
    match body {
        Source::Memory(bytes) => Ok(Cow::Borrowed(bytes)),
        Source::File(file) => {
            let mut bytes = vec![0; len as usize];
            // A file that shrank since the stat fails here, before anything is sent.
            file.read_exact_at(&mut bytes, 0)?;
            Ok(Cow::Owned(bytes))
        }
    }
}
