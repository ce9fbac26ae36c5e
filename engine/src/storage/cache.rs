//! A local cache of the blobs a client reads again and again: index blobs (`i`), metadata packs (`q`, trees
//! and chunk lists) and snapshot records (`s`).
//!
//! Opening a repository reads every index blob; listing snapshots reads every snapshot record; browsing or
//! restoring reads trees out of metadata packs. Against a remote store each of those is a request, so this
//! wrapper keeps a copy of those kinds in a local folder. Blob names are random and a blob is only ever
//! rewritten with the same bytes, so a cached copy never goes stale: the only invalidation is `delete`.
//! Data packs (`p`) and the format blob (whose key envelope changes with the password) always go to the
//! backend. Listings always go to the backend, so the cache never makes a deleted blob visible again.
//!
//! A metadata pack is cached whole on its first ranged read: a tree read is then the first of many from the
//! same pack. Copies are written atomically (temporary file, then rename); a failure to write the cache is
//! logged and otherwise ignored, since the backend still has the blob. The engine authenticates everything it
//! reads, so a damaged cache file shows up as a corrupt blob, never as wrong data.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use super::{check_range, validate_name, BlobMeta, Properties, Storage, StorageError};

/// The kinds of blob cached by default (first letter of the name).
pub const CACHED_KINDS: &str = "iqs";

/// A backend with a local copy of its index blobs, metadata packs and snapshot records.
pub struct CacheStorage<S> {
    inner: S,
    dir: PathBuf,
    kinds: String,
}

impl<S: Storage> CacheStorage<S> {
    /// Caches [`CACHED_KINDS`] in `dir` (created if needed). One folder per repository: the caller chooses a
    /// folder named after the repository's location.
    pub fn new(inner: S, dir: impl Into<PathBuf>) -> Result<Self, StorageError> {
        Self::with_kinds(inner, dir, CACHED_KINDS)
    }

    /// Caches the blobs whose names start with one of the letters of `kinds`.
    pub fn with_kinds(inner: S, dir: impl Into<PathBuf>, kinds: &str) -> Result<Self, StorageError> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(|source| StorageError::Io {
            op: "create cache",
            name: dir.display().to_string(),
            source,
        })?;
        Ok(Self { inner, dir, kinds: kinds.to_string() })
    }

    /// The cache folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn cached_path(&self, name: &str) -> Option<PathBuf> {
        let kind = name.chars().next()?;
        (name.len() > 1 && self.kinds.contains(kind)).then(|| self.dir.join(name))
    }

    fn read_cached(path: &Path) -> Option<Vec<u8>> {
        match fs::read(path) {
            Ok(bytes) => Some(bytes),
            Err(e) if e.kind() == ErrorKind::NotFound => None,
            Err(e) => {
                tracing::warn!("cache {}: {e}; reading from storage", path.display());
                None
            }
        }
    }

    fn store_cached(&self, path: &Path, data: &[u8]) {
        let tmp = self.dir.join(format!(".tmp-{}", hex::encode(crate::crypto::random_bytes::<8>())));
        let result = fs::write(&tmp, data).and_then(|()| fs::rename(&tmp, path));
        if let Err(e) = result {
            let _ = fs::remove_file(&tmp);
            tracing::warn!("cache {}: {e}", path.display());
        }
    }

    /// The whole blob, from the cache or fetched into it.
    fn get_cached(&self, name: &str, path: &Path) -> Result<Vec<u8>, StorageError> {
        if let Some(bytes) = Self::read_cached(path) {
            return Ok(bytes);
        }
        let bytes = self.inner.get(name)?;
        self.store_cached(path, &bytes);
        Ok(bytes)
    }
}

impl<S: Storage> Storage for CacheStorage<S> {
    fn put(&self, name: &str, data: &[u8]) -> Result<(), StorageError> {
        self.inner.put(name, data)?;
        if let Some(path) = self.cached_path(name) {
            self.store_cached(&path, data);
        }
        Ok(())
    }

    fn get(&self, name: &str) -> Result<Vec<u8>, StorageError> {
        validate_name(name)?;
        match self.cached_path(name) {
            Some(path) => self.get_cached(name, &path),
            None => self.inner.get(name),
        }
    }

    fn get_range(&self, name: &str, offset: u64, length: u64) -> Result<Vec<u8>, StorageError> {
        validate_name(name)?;
        let Some(path) = self.cached_path(name) else {
            return self.inner.get_range(name, offset, length);
        };
        let bytes = self.get_cached(name, &path)?;
        check_range(name, offset, length, bytes.len() as u64)?;
        Ok(bytes[offset as usize..(offset + length) as usize].to_vec())
    }

    fn list(&self, prefix: &str) -> Result<Vec<BlobMeta>, StorageError> {
        self.inner.list(prefix)
    }

    fn delete(&self, name: &str) -> Result<(), StorageError> {
        validate_name(name)?;
        if let Some(path) = self.cached_path(name) {
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(source) => return Err(StorageError::Io { op: "delete cached", name: name.to_string(), source }),
            }
        }
        self.inner.delete(name)
    }

    fn stat(&self, name: &str) -> Result<BlobMeta, StorageError> {
        self.inner.stat(name)
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn properties(&self) -> Properties {
        self.inner.properties()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::access::Access;
    use crate::backup::{run_backup, BackupOptions, Progress};
    use crate::format::CreateOptions;
    use crate::snapshot::Source;
    use crate::storage::conformance::{self, conformance_tests, Harness};
    use crate::storage::{FaultStorage, MemoryStorage, Op};
    use crate::Repository;

    fn counted(memory: &MemoryStorage) -> FaultStorage<MemoryStorage> {
        FaultStorage::new(memory.clone())
    }

    #[test]
    fn metadata_is_read_once_and_data_packs_every_time() {
        let dir = tempfile::tempdir().unwrap();
        let memory = MemoryStorage::new();
        for name in ["i01", "q01", "s01", "p01"] {
            memory.put(name, &conformance::content(name, 1000)).unwrap();
        }
        let cache = CacheStorage::new(counted(&memory), dir.path()).unwrap();
        for _ in 0..3 {
            assert_eq!(cache.get("i01").unwrap(), conformance::content("i01", 1000));
            assert_eq!(cache.get_range("q01", 10, 20).unwrap(), conformance::content("q01", 1000)[10..30]);
            assert_eq!(cache.get("s01").unwrap(), conformance::content("s01", 1000));
            assert_eq!(cache.get_range("p01", 0, 5).unwrap(), conformance::content("p01", 1000)[..5]);
        }
        assert_eq!(cache.inner.calls(Op::Get), 3 + 3, "one fetch each of i, q, s; three of p");
        assert!(matches!(cache.get_range("q01", 990, 11), Err(StorageError::OutOfRange { .. })));

        // Another client with the same cache folder starts warm.
        let other = CacheStorage::new(counted(&memory), dir.path()).unwrap();
        other.get("i01").unwrap();
        assert_eq!(other.inner.calls(Op::Get), 0);
    }

    #[test]
    fn writes_go_through_and_deletes_invalidate() {
        let dir = tempfile::tempdir().unwrap();
        let memory = MemoryStorage::new();
        let cache = CacheStorage::new(counted(&memory), dir.path()).unwrap();
        cache.put("s02", b"snapshot").unwrap();
        assert_eq!(memory.get("s02").unwrap(), b"snapshot", "written to the backend");
        assert_eq!(cache.get("s02").unwrap(), b"snapshot");
        assert_eq!(cache.inner.calls(Op::Get), 0, "served from the copy made on put");
        cache.delete("s02").unwrap();
        assert!(cache.get("s02").unwrap_err().is_not_found());
        assert!(memory.get("s02").unwrap_err().is_not_found());
        assert!(cache.list("s").unwrap().is_empty());
        assert!(fs::read_dir(dir.path()).unwrap().next().is_none(), "no copy or temporary file left");
    }

    #[test]
    fn listing_snapshots_and_reading_trees_needs_no_downloads_when_warm() {
        let src = tempfile::tempdir().unwrap();
        for i in 0..20 {
            fs::create_dir_all(src.path().join(format!("d{}", i % 4))).unwrap();
            fs::write(src.path().join(format!("d{}/f{i}", i % 4)), conformance::content(&format!("f{i}"), 5000))
                .unwrap();
        }
        let cache_dir = tempfile::tempdir().unwrap();
        let memory = MemoryStorage::new();
        let storage = Arc::new(CacheStorage::new(counted(&memory), cache_dir.path()).unwrap());
        let repo = Repository::create(storage, b"pw", &CreateOptions::default()).unwrap();
        let source = Source { host: "h".into(), user_name: "u".into(), path: "/src".into() };
        for _ in 0..2 {
            let options = BackupOptions::new(src.path().to_path_buf(), source.clone());
            run_backup(&repo, options, Arc::new(Progress::default())).unwrap();
        }

        // A later session: opening, listing snapshots and walking the latest tree read only the format blob.
        let storage = Arc::new(CacheStorage::new(counted(&memory), cache_dir.path()).unwrap());
        let repo = Repository::open(storage.clone(), b"pw").unwrap();
        let snapshots = repo.list_snapshots().unwrap();
        assert_eq!(snapshots.len(), 2);
        let root = repo.read_tree(&snapshots[1].root).unwrap();
        assert_eq!(root.len(), 4);
        assert_eq!(storage.inner.calls(Op::Get), 1, "only cairn.repository was downloaded");
    }

    struct CachedMemory(tempfile::TempDir);

    impl Harness for CachedMemory {
        type S = CacheStorage<MemoryStorage>;
        fn fresh(&self) -> Option<Self::S> {
            Some(CacheStorage::with_kinds(MemoryStorage::new(), self.0.path(), "pqis").unwrap())
        }
        fn leave_half_written(&self, _: &Self::S, _: &str, _: &[u8]) {}
    }

    // The cache keeps the contract, even caching every kind the suite writes.
    mod contract {
        use super::*;
        conformance_tests!(CachedMemory(tempfile::tempdir().unwrap()));
    }
}
