//! Chunks this restore has already written, and where: a chunk that appears again (a duplicated file, a
//! copy shifted by a few bytes) is read back from the restored file and checked against its id, instead of
//! being fetched, decrypted and decompressed again (through a server, it is not sent twice).

use std::collections::HashMap;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::access::Access;
use crate::error::Result;
use crate::ids::ContentId;

/// Chunks smaller than this are fetched again: a batch read serves them cheaply, and remembering them would
/// cost more memory than it saves.
pub const MIN_COPIED_CHUNK: u64 = 64 << 10;
/// Most chunks remembered (about 64 bytes each, plus one path per file): with the default chunker, the
/// first 32 GiB of distinct data. Chunks written after that are not remembered.
const MAX_PLACES: usize = 1 << 16;

/// Where a chunk's verified plaintext was written.
#[derive(Clone)]
pub struct Place {
    path: Arc<PathBuf>,
    offset: u64,
}

/// The chunks written so far by one restore.
#[derive(Default)]
pub struct Written {
    places: Mutex<HashMap<ContentId, Place>>,
}

impl Written {
    /// Remembers that chunk `id` (`len` bytes) now lies at `offset` in the file at `path`.
    pub fn record(&self, id: &ContentId, len: u64, path: &Arc<PathBuf>, offset: u64) {
        if len < MIN_COPIED_CHUNK {
            return;
        }
        let mut places = self.places.lock().unwrap_or_else(|p| p.into_inner());
        if places.len() < MAX_PLACES {
            places.entry(*id).or_insert_with(|| Place { path: path.clone(), offset });
        }
    }

    /// Where chunk `id` (`len` bytes) was written, if it was.
    pub fn find(&self, id: &ContentId, len: u64) -> Option<Place> {
        if len < MIN_COPIED_CHUNK {
            return None;
        }
        self.places.lock().unwrap_or_else(|p| p.into_inner()).get(id).cloned()
    }
}

thread_local! {
    /// One chunk read back, reused by every copy a restore thread makes.
    static BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Reads chunk `id` (`len` bytes) back from where it was written, checks it against the id and hands it to
/// `use_it`. A restored file changed in the meantime (or a path that now leads elsewhere) is never used:
/// the answer is then `Ok(None)`, `use_it` is not called, and the caller fetches the chunk instead. Errors
/// are only those of `use_it`.
pub fn read_back<T>(
    repo: &dyn Access,
    place: &Place,
    id: &ContentId,
    len: u64,
    use_it: impl FnOnce(&[u8]) -> Result<T>,
) -> Result<Option<T>> {
    BUFFER.with(|cell| {
        // A nested call (none today) gets a buffer of its own rather than a panic.
        let mut own = Vec::new();
        let mut shared = cell.try_borrow_mut();
        let buffer = match &mut shared {
            Ok(shared) => &mut **shared,
            Err(_) => &mut own,
        };
        buffer.clear();
        buffer.resize(len as usize, 0);
        let read = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(place.path.as_path())
            .and_then(|source| source.read_exact_at(buffer, place.offset));
        if read.is_err() || repo.verify_content(id, buffer).is_err() {
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

    /// Bytes read back are used only when they still hash to the chunk's id: a restored file changed since,
    /// a file gone, or a symlink in its place each make the caller fetch the chunk instead.
    #[test]
    fn read_back_uses_only_bytes_that_match_the_id() {
        let repo = Repository::create(Arc::new(MemoryStorage::new()), b"pw", &CreateOptions::default()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let chunk = vec![7u8; MIN_COPIED_CHUNK as usize];
        let id = repo.hashing_key().content_id(&chunk);
        let path = Arc::new(dir.path().join("first"));
        std::fs::write(path.as_path(), [b"head".as_slice(), &chunk].concat()).unwrap();

        let written = Written::default();
        assert!(written.find(&id, chunk.len() as u64).is_none());
        written.record(&id, chunk.len() as u64, &path, 4);
        let place = written.find(&id, chunk.len() as u64).expect("recorded");
        let len = chunk.len() as u64;
        let got = read_back(&repo, &place, &id, len, |data| Ok(data.to_vec())).unwrap();
        assert_eq!(got.as_deref(), Some(chunk.as_slice()));

        // Changed after it was written.
        let mut changed = [b"head".as_slice(), &chunk].concat();
        changed[100] ^= 1;
        std::fs::write(path.as_path(), &changed).unwrap();
        assert!(read_back(&repo, &place, &id, len, |_| -> Result<()> { panic!("must not be used") })
            .unwrap()
            .is_none());
        // A symlink to a file with the right bytes: not followed.
        let elsewhere = dir.path().join("elsewhere");
        std::fs::write(&elsewhere, [b"head".as_slice(), &chunk].concat()).unwrap();
        std::fs::remove_file(path.as_path()).unwrap();
        std::os::unix::fs::symlink(&elsewhere, path.as_path()).unwrap();
        assert!(read_back(&repo, &place, &id, len, |_| -> Result<()> { panic!("must not be used") })
            .unwrap()
            .is_none());
        // Gone.
        std::fs::remove_file(path.as_path()).unwrap();
        assert!(read_back(&repo, &place, &id, len, |_| -> Result<()> { panic!("must not be used") })
            .unwrap()
            .is_none());
        // Small chunks are neither remembered nor looked up.
        let small = ContentId::random();
        written.record(&small, MIN_COPIED_CHUNK - 1, &path, 0);
        assert!(written.find(&small, MIN_COPIED_CHUNK - 1).is_none());
    }
}
