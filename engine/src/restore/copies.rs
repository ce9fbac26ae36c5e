//! Chunks this restore has already written, and where: a chunk that appears again (a duplicated file, a
//! copy shifted by a few bytes) is read back from the restored file and checked against its id, instead of
//! being fetched, decrypted and decompressed again (through a server, it is not sent twice).
//!
//! Memory: at most [`MAX_PLACES`] places (about 80 bytes each, plus one path per file), and one read-back
//! buffer per restore thread, as large as the largest chunk copied.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::access::Access;
use crate::error::Result;
use crate::ids::ContentId;

/// Chunks smaller than this are fetched again: a batch read serves them cheaply, and remembering them would
/// cost more memory than it saves.
pub const MIN_COPIED_CHUNK: u64 = 64 << 10;
/// Most chunks remembered: with the default chunker, the first 32 GiB of distinct data. Chunks written
/// after that are not remembered.
const MAX_PLACES: usize = 1 << 16;

/// Which file a chunk was written to: its device and inode, checked when it is opened again, so a path
/// that now leads to another file (a folder swapped for a symlink) is not read from.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct FileIdentity {
    dev: u64,
    ino: u64,
}

impl FileIdentity {
    /// The identity of an open file.
    pub fn of(file: &File) -> std::io::Result<Self> {
        file.metadata().map(|meta| Self::from_metadata(&meta))
    }

    fn from_metadata(meta: &std::fs::Metadata) -> Self {
        Self { dev: meta.dev(), ino: meta.ino() }
    }
}

/// Where a chunk's verified plaintext was written.
#[derive(Clone)]
pub struct Place {
    path: Arc<PathBuf>,
    file: FileIdentity,
    offset: u64,
    len: u64,
}

/// The chunks written so far by one restore.
#[derive(Default)]
pub struct Written {
    places: Mutex<HashMap<ContentId, Place>>,
}

impl Written {
    /// Remembers that chunk `id` (`len` bytes, checked against its id) now lies at `offset` in `file`, at
    /// `path`.
    pub fn record(&self, id: &ContentId, len: u64, path: &Arc<PathBuf>, file: FileIdentity, offset: u64) {
        if len < MIN_COPIED_CHUNK {
            return;
        }
        let mut places = self.places.lock().unwrap_or_else(|p| p.into_inner());
        if places.len() < MAX_PLACES {
            places.entry(*id).or_insert_with(|| Place { path: path.clone(), file, offset, len });
        }
    }

    /// Where chunk `id` was written, if it was and with the length the caller expects (a length from a
    /// damaged or hostile tree never sizes a read-back buffer).
    pub fn find(&self, id: &ContentId, len: u64) -> Option<Place> {
        if len < MIN_COPIED_CHUNK {
            return None;
        }
        let places = self.places.lock().unwrap_or_else(|p| p.into_inner());
        places.get(id).filter(|p| p.len == len).cloned()
    }
}

thread_local! {
    /// One chunk read back, reused by every copy a restore thread makes.
    static BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Opens the file a chunk was written to for reading, only if it is still that regular file: never blocks
/// on a FIFO put in its place, never follows a symlink, and leaves its access time alone.
fn open_again(place: &Place) -> Option<File> {
    let open = |noatime: libc::c_int| {
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC | noatime)
            .open(place.path.as_path())
    };
    // O_NOATIME is only allowed to the file's owner (or with CAP_FOWNER).
    let file = match open(libc::O_NOATIME) {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => open(0),
        other => other,
    }
    .ok()?;
    let meta = file.metadata().ok()?;
    (meta.is_file() && FileIdentity::from_metadata(&meta) == place.file).then_some(file)
}

/// Reads chunk `id` back from where it was written, checks it against the id and hands it to `use_it`. A
/// restored file changed in the meantime (or a path that now leads elsewhere) is never used: the answer is
/// then `Ok(None)`, `use_it` is not called, and the caller fetches the chunk instead. Errors are only those
/// of `use_it`.
pub fn read_back<T>(
    repo: &dyn Access,
    place: &Place,
    id: &ContentId,
    use_it: impl FnOnce(&[u8]) -> Result<T>,
) -> Result<Option<T>> {
    BUFFER.with(|cell| {
        // Checking the id may run other restore work on this thread (rayon) which reads back too: that
        // nested call gets a buffer of its own rather than a panic.
        let mut own = Vec::new();
        let mut shared = cell.try_borrow_mut();
        let buffer = match &mut shared {
            Ok(shared) => &mut **shared,
            Err(_) => &mut own,
        };
        // Only bytes the buffer never held are zeroed: the read fills all of it, or the buffer is not used.
        buffer.resize(place.len as usize, 0);
        let Some(source) = open_again(place) else { return Ok(None) };
        if source.read_exact_at(buffer, place.offset).is_err() || !repo.matches_known_key(id, buffer) {
            return Ok(None);
        }
        use_it(buffer).map(Some)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::CreateOptions;
    use crate::storage::MemoryStorage;
    use crate::Repository;

    fn never(_: &[u8]) -> Result<()> {
        panic!("bytes that do not match must not be used")
    }

    /// Bytes read back are used only when they still hash to the chunk's id and come from the file they
    /// were written to: a restored file changed since, a file gone, a symlink or a FIFO in its place, or
    /// another file moved there each make the caller fetch the chunk instead.
    #[test]
    fn read_back_uses_only_bytes_that_match_the_id() {
        let repo = Repository::create(Arc::new(MemoryStorage::new()), b"pw", &CreateOptions::default()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let chunk = vec![7u8; MIN_COPIED_CHUNK as usize];
        let len = chunk.len() as u64;
        let id = repo.hashing_key().content_id(&chunk);
        let contents = [b"head".as_slice(), &chunk].concat();
        let path = Arc::new(dir.path().join("first"));
        std::fs::write(path.as_path(), &contents).unwrap();
        let identity = FileIdentity::of(&File::open(path.as_path()).unwrap()).unwrap();

        let written = Written::default();
        assert!(written.find(&id, len).is_none());
        written.record(&id, len, &path, identity, 4);
        assert!(written.find(&id, len + 1).is_none(), "another length is another chunk");
        let place = written.find(&id, len).expect("recorded");
        let got = read_back(&repo, &place, &id, |data| Ok(data.to_vec())).unwrap();
        assert_eq!(got.as_deref(), Some(chunk.as_slice()));

        // Changed after it was written.
        let mut changed = contents.clone();
        changed[100] ^= 1;
        std::fs::write(path.as_path(), &changed).unwrap();
        assert!(read_back(&repo, &place, &id, never).unwrap().is_none());
        // Another file with the right bytes moved into its place.
        let other = dir.path().join("other");
        std::fs::write(&other, &contents).unwrap();
        std::fs::rename(&other, path.as_path()).unwrap();
        assert!(read_back(&repo, &place, &id, never).unwrap().is_none());
        // A symlink to a file with the right bytes: not followed.
        std::fs::write(&other, &contents).unwrap();
        std::fs::remove_file(path.as_path()).unwrap();
        std::os::unix::fs::symlink(&other, path.as_path()).unwrap();
        assert!(read_back(&repo, &place, &id, never).unwrap().is_none());
        // A FIFO: not waited on.
        std::fs::remove_file(path.as_path()).unwrap();
        let fifo = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        assert!(read_back(&repo, &place, &id, never).unwrap().is_none());
        // Gone.
        std::fs::remove_file(path.as_path()).unwrap();
        assert!(read_back(&repo, &place, &id, never).unwrap().is_none());
        // Small chunks are neither remembered nor looked up.
        let small = ContentId::random();
        written.record(&small, MIN_COPIED_CHUNK - 1, &path, identity, 0);
        assert!(written.find(&small, MIN_COPIED_CHUNK - 1).is_none());
    }
}
