//! Small files kept in memory between requests and checked against the file system on
//! every request: nginx's `open_file_cache` idea, for the bytes as well as the descriptor.
//!
//! A hit costs one `stat` by path instead of open, stat, read and close. An entry is used
//! only while its path still names the same inode with the same size and the same
//! modification and change times, so the next request sees an edit, a replacement by
//! rename, a `chmod` or a deletion. A file changed within the last second or two is not
//! kept: file-system timestamps advance with the clock tick (or by whole seconds), and a
//! write in the same tick as our read would leave them unchanged (git's "racily clean"
//! rule). What changes a file without changing its times is not seen: writes through a
//! shared `mmap` until the kernel updates the times, or another client's writes on NFS until
//! the attribute cache expires.

use std::collections::HashMap;
use std::fmt;
use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::sys::stat::FileStat;

use super::path::Root;
use super::Entity;
use crate::http::compress::{self, Encoding};

/// How long a file must have been left alone before its timestamps are trusted.
const SETTLED: Duration = Duration::from_secs(1);

/// What an entry costs besides its body (path, headers, map slot), counted against the
/// capacity so that a directory of many empty files cannot grow the cache without bound.
const ENTRY_COST: usize = 256;

/// The files of one served directory, by path relative to it.
pub(crate) struct FileCache {
    /// The most bytes of file bodies held; 0 turns the cache off.
    capacity: usize,
    /// The largest file kept.
    largest: u64,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    files: HashMap<PathBuf, Arc<CachedFile>>,
    /// Bodies plus [`ENTRY_COST`] per file.
    bytes: usize,
}

/// A file's body with what the response says about it, as read when `identity` held.
pub(crate) struct CachedFile {
    identity: Identity,
    pub entity: Entity,
    pub body: Box<[u8]>,
    /// Room for compressed forms of the body, counted in its cost: as many bytes as the
    /// body, or none.
    room: usize,
    /// The body compressed, by coding and level, as first asked for; at most `room` bytes.
    compressed: Mutex<Vec<Compressed>>,
}

/// The body compressed with a coding at a level.
type Compressed = (Encoding, u32, Arc<[u8]>);

/// What changes when a file is written, replaced, moved or has its mode changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Identity {
    device: u64,
    inode: u64,
    size: u64,
    modified: (i64, i64),
    changed: (i64, i64),
}

impl Identity {
    pub(crate) fn of(meta: &Metadata) -> Self {
        Identity {
            device: meta.dev(),
            inode: meta.ino(),
            size: meta.size(),
            modified: (meta.mtime(), meta.mtime_nsec()),
            changed: (meta.ctime(), meta.ctime_nsec()),
        }
    }

    pub(crate) fn of_stat(stat: &FileStat) -> Self {
        // The field types differ between targets; these conversions are lossless on Linux.
        #[allow(clippy::useless_conversion, clippy::unnecessary_cast)]
        Identity {
            device: stat.st_dev as u64,
            inode: stat.st_ino as u64,
            size: stat.st_size as u64,
            modified: (stat.st_mtime as i64, stat.st_mtime_nsec as i64),
            changed: (stat.st_ctime as i64, stat.st_ctime_nsec as i64),
        }
    }

    /// Whether the file was last touched long enough before `now` that a later write must
    /// change its timestamps.
    fn settled(&self, now: SystemTime) -> bool {
        let latest = self.modified.max(self.changed).0;
        let now = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        // The timestamp's second has ended, and then SETTLED has passed; a time before the
        // epoch is long settled, one far in the future never is.
        match u64::try_from(latest) {
            Ok(latest) => latest
                .checked_add(1 + SETTLED.as_secs())
                .is_some_and(|settled| settled <= now),
            Err(_) => true,
        }
    }
}

impl CachedFile {
    /// What holding this file counts against the capacity.
    fn cost(&self) -> usize {
        self.body.len() + self.room + ENTRY_COST
    }

    /// A file to keep; `compressible` makes room for its compressed forms.
    pub(crate) fn new(
        identity: Identity,
        entity: Entity,
        body: Box<[u8]>,
        compressible: bool,
    ) -> Self {
        let room = if compressible { body.len() } else { 0 };
        CachedFile {
            identity,
            entity,
            body,
            room,
            compressed: Mutex::default(),
        }
    }

    /// The body compressed with `encoding` at `level`: made once and kept while there is
    /// room, so a file read from memory is not compressed again on every request.
    pub(crate) fn compressed(&self, encoding: Encoding, level: u32) -> Arc<[u8]> {
        let forms = || {
            self.compressed
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
        };
        let found = forms()
            .iter()
            .find(|(e, l, _)| (*e, *l) == (encoding, level))
            .map(|(_, _, bytes)| Arc::clone(bytes));
        if let Some(bytes) = found {
            return bytes;
        }
        // Compressed without the lock: two requests may both compress, and one keeps it.
        let bytes: Arc<[u8]> = compress::compress(encoding, level, &self.body).into();
        let mut forms = forms();
        let held: usize = forms.iter().map(|(_, _, b)| b.len()).sum();
        let present = forms.iter().any(|(e, l, _)| (*e, *l) == (encoding, level));
        if !present && held + bytes.len() <= self.room {
            forms.push((encoding, level, Arc::clone(&bytes)));
        }
        bytes
    }
}

impl fmt::Debug for FileCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state();
        f.debug_struct("FileCache")
            .field("capacity", &self.capacity)
            .field("files", &state.files.len())
            .field("bytes", &state.bytes)
            .finish()
    }
}

impl FileCache {
    /// A cache of at most `capacity` bytes for files of at most `largest` bytes.
    pub(crate) fn new(capacity: usize, largest: u64) -> Self {
        FileCache {
            capacity,
            largest,
            state: Mutex::default(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is a map with a byte count: a panic elsewhere cannot leave it torn.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The cached file at `relative`, if it is still the file on disk. A path never cached
    /// costs a map lookup and no system call.
    pub(crate) fn get(&self, root: &Root, relative: &Path) -> Option<Arc<CachedFile>> {
        if self.capacity == 0 {
            return None;
        }
        let cached = self.state().files.get(relative).cloned()?;
        match root.stat(relative) {
            Ok(identity) if identity == cached.identity => Some(cached),
            _ => {
                self.remove(relative);
                None
            }
        }
    }

    /// Whether a regular file with this identity would be kept.
    pub(crate) fn admits(&self, identity: &Identity) -> bool {
        identity.size <= self.largest
            && identity.size as usize + ENTRY_COST <= self.capacity
            && identity.settled(SystemTime::now())
    }

    /// An empty cache of the same size.
    pub(crate) fn empty_like(&self) -> Self {
        FileCache::new(self.capacity, self.largest)
    }

    /// Keeps `file` under `relative`. A full cache starts over: every file has the same
    /// chance to stay, and what is used keeps coming back.
    pub(crate) fn insert(&self, relative: &Path, file: Arc<CachedFile>) {
        let size = file.cost();
        if size > self.capacity {
            return;
        }
        let mut state = self.state();
        if let Some(old) = state.files.remove(relative) {
            state.bytes -= old.cost();
        }
        if state.bytes + size > self.capacity {
            state.files.clear();
            state.bytes = 0;
        }
        state.bytes += size;
        state.files.insert(relative.to_path_buf(), file);
    }

    fn remove(&self, relative: &Path) {
        let mut state = self.state();
        if let Some(old) = state.files.remove(relative) {
            state.bytes -= old.cost();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(seconds: i64) -> Identity {
        Identity {
            device: 1,
            inode: 2,
            size: 3,
            modified: (seconds, 0),
            changed: (seconds, 500),
        }
    }

    #[test]
    fn files_touched_in_the_last_second_are_not_settled() {
        let now = UNIX_EPOCH + Duration::from_secs(1000);
        assert!(identity(990).settled(now));
        assert!(identity(998).settled(now));
        assert!(!identity(999).settled(now));
        assert!(!identity(1000).settled(now));
        assert!(!identity(2000).settled(now));
        assert!(!identity(i64::MAX).settled(now));
        assert!(identity(-5).settled(now));
    }

    fn entity(size: usize) -> Entity {
        Entity {
            len: size as u64,
            validators: crate::files::conditional::Validators {
                etag: "\"x\"".into(),
                last_modified: UNIX_EPOCH,
            },
            last_modified: String::new(),
            content_type: String::new(),
            modified: UNIX_EPOCH,
        }
    }

    fn file(size: usize) -> Arc<CachedFile> {
        Arc::new(CachedFile::new(
            identity(0),
            entity(size),
            vec![0; size].into(),
            false,
        ))
    }

    #[test]
    fn holds_at_most_its_capacity() {
        let capacity = 2 * ENTRY_COST + 100;
        let cache = FileCache::new(capacity, 60);
        let total = |state: &State| state.files.values().map(|f| f.cost()).sum::<usize>();
        cache.insert(Path::new("a"), file(40));
        cache.insert(Path::new("b"), file(40));
        assert_eq!(cache.state().bytes, 2 * ENTRY_COST + 80);
        cache.insert(Path::new("c"), file(40));
        let state = cache.state();
        assert!(state.bytes <= capacity, "{} bytes held", state.bytes);
        assert!(state.files.contains_key(Path::new("c")));
        assert_eq!(state.files.len(), 1, "a full cache starts over");
        assert_eq!(state.bytes, total(&state));
        drop(state);
        // Replacing a file counts its old size out.
        cache.insert(Path::new("c"), file(10));
        let state = cache.state();
        assert_eq!(state.bytes, total(&state));
        drop(state);
        // Empty files cost their entry: the number of files is bounded too.
        let cache = FileCache::new(10 * ENTRY_COST, 60);
        for i in 0..100 {
            cache.insert(Path::new(&i.to_string()), file(0));
            assert!(cache.state().files.len() <= 10);
        }
        // A file larger than the whole cache is not kept, and drops nothing.
        cache.insert(Path::new("huge"), file(10 * ENTRY_COST));
        assert!(!cache.state().files.contains_key(Path::new("huge")));
        assert!(!cache.state().files.is_empty());
    }

    #[test]
    fn compressed_forms_are_made_once_while_there_is_room() {
        let text = b"some text, some more text, and text again. ".repeat(50);
        let kept = CachedFile::new(identity(0), entity(text.len()), text.clone().into(), true);
        assert_eq!(kept.cost(), 2 * text.len() + ENTRY_COST);
        let first = kept.compressed(Encoding::Gzip, 1);
        assert!(
            Arc::ptr_eq(&first, &kept.compressed(Encoding::Gzip, 1)),
            "kept"
        );
        let brotli = kept.compressed(Encoding::Brotli, 4);
        assert!(Arc::ptr_eq(&brotli, &kept.compressed(Encoding::Brotli, 4)));
        // Without room, made anew each time, and the cost stays the body's.
        let unkept = CachedFile::new(identity(0), entity(text.len()), text.into(), false);
        assert_eq!(unkept.cost(), unkept.body.len() + ENTRY_COST);
        let once = unkept.compressed(Encoding::Gzip, 1);
        assert!(!Arc::ptr_eq(&once, &unkept.compressed(Encoding::Gzip, 1)));
        assert_eq!(once, first, "the same bytes");
    }

    #[test]
    fn admits_settled_files_that_fit() {
        let cache = FileCache::new(ENTRY_COST + 60, 60);
        let fits = Identity {
            size: 60,
            ..identity(0)
        };
        assert!(cache.admits(&fits));
        assert!(!cache.admits(&Identity { size: 61, ..fits }));
        assert!(!FileCache::new(ENTRY_COST + 59, 60).admits(&fits));
        assert!(!FileCache::new(0, 60).admits(&fits));
    }

    #[test]
    fn a_file_is_served_from_memory_until_it_changes_on_disk() {
        let base = std::env::temp_dir().join(format!("socketserver-cache-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(&base).unwrap();
        let path = base.join("f.txt");
        std::fs::write(&path, "one").unwrap();
        let root = Root::open(&base).unwrap();
        let cache = FileCache::new(1 << 20, 60);
        let relative = Path::new("f.txt");
        assert!(cache.get(&root, relative).is_none(), "never cached");

        let identity = Identity::of(&std::fs::metadata(&path).unwrap());
        let cached = Arc::new(CachedFile::new(
            identity,
            entity(3),
            (*b"one").into(),
            false,
        ));
        cache.insert(relative, cached);
        let hit = cache
            .get(&root, relative)
            .expect("a hit while the file is unchanged");
        assert_eq!(&*hit.body, b"one");

        std::fs::write(&path, "two").unwrap();
        assert!(
            cache.get(&root, relative).is_none(),
            "the change time moved"
        );
        assert!(cache.state().files.is_empty(), "the stale entry is dropped");
        std::fs::remove_dir_all(&base).unwrap();
    }
}
