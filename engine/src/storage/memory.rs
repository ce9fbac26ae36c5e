//! An in-memory backend, for tests and for benchmarks that must not measure a disk.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use super::{check_range, validate_name, BlobMeta, Storage, StorageError};

/// A stored blob and the time it was written.
#[derive(Clone)]
struct Stored {
    bytes: Arc<Vec<u8>>,
    modified: SystemTime,
}

/// Blobs in a map behind a mutex. Clones share the same blobs.
#[derive(Clone, Default)]
pub struct MemoryStorage {
    blobs: Arc<Mutex<BTreeMap<String, Stored>>>,
}

impl MemoryStorage {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn blobs(&self) -> MutexGuard<'_, BTreeMap<String, Stored>> {
        // A panic while holding the lock cannot leave the map half-updated (each operation is one call).
        self.blobs.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// An independent copy of every blob (clones share blobs; this does not).
    pub fn deep_copy(&self) -> Self {
        let blobs = self.blobs().clone();
        Self { blobs: Arc::new(Mutex::new(blobs)) }
    }

    /// Replaces a blob's bytes without the name checks, for tests that damage a repository.
    pub fn corrupt_with(&self, name: &str, f: impl FnOnce(&mut Vec<u8>)) {
        let mut blobs = self.blobs();
        if let Some(blob) = blobs.get_mut(name) {
            let mut bytes = blob.bytes.as_ref().clone();
            f(&mut bytes);
            blob.bytes = Arc::new(bytes);
        }
    }

    /// Sets one blob's write time, for tests of time-based safety margins.
    pub fn set_modified(&self, name: &str, time: SystemTime) {
        if let Some(blob) = self.blobs().get_mut(name) {
            blob.modified = time;
        }
    }

    /// Moves every blob's write time back by `by`, for tests of time-based safety margins.
    pub fn age_all(&self, by: std::time::Duration) {
        for blob in self.blobs().values_mut() {
            blob.modified = blob.modified.checked_sub(by).unwrap_or(SystemTime::UNIX_EPOCH);
        }
    }
}

impl Storage for MemoryStorage {
    fn put(&self, name: &str, data: &[u8]) -> Result<(), StorageError> {
        validate_name(name)?;
        self.blobs().insert(name.to_string(), Stored { bytes: Arc::new(data.to_vec()), modified: SystemTime::now() });
        Ok(())
    }

    fn get(&self, name: &str) -> Result<Vec<u8>, StorageError> {
        validate_name(name)?;
        let blob = self.blobs().get(name).map(|b| b.bytes.clone());
        blob.map(|b| b.as_ref().clone()).ok_or_else(|| StorageError::NotFound(name.to_string()))
    }

    fn get_range(&self, name: &str, offset: u64, length: u64) -> Result<Vec<u8>, StorageError> {
        validate_name(name)?;
        let blob =
            self.blobs().get(name).map(|b| b.bytes.clone()).ok_or_else(|| StorageError::NotFound(name.to_string()))?;
        check_range(name, offset, length, blob.len() as u64)?;
        Ok(blob[offset as usize..(offset + length) as usize].to_vec())
    }

    fn list(&self, prefix: &str) -> Result<Vec<BlobMeta>, StorageError> {
        Ok(self
            .blobs()
            .range(prefix.to_string()..)
            .take_while(|(name, _)| name.starts_with(prefix))
            .map(|(name, blob)| BlobMeta {
                name: name.clone(),
                size: blob.bytes.len() as u64,
                modified: Some(blob.modified),
            })
            .collect())
    }

    fn delete(&self, name: &str) -> Result<(), StorageError> {
        validate_name(name)?;
        self.blobs().remove(name);
        Ok(())
    }

    fn stat(&self, name: &str) -> Result<BlobMeta, StorageError> {
        validate_name(name)?;
        let blobs = self.blobs();
        let blob = blobs.get(name).ok_or_else(|| StorageError::NotFound(name.to_string()))?;
        Ok(BlobMeta { name: name.to_string(), size: blob.bytes.len() as u64, modified: Some(blob.modified) })
    }

    fn describe(&self) -> String {
        "in-memory storage".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::conformance::{conformance_tests, Harness};

    struct InMemory;

    impl Harness for InMemory {
        type S = MemoryStorage;
        fn fresh(&self) -> Option<MemoryStorage> {
            Some(MemoryStorage::new())
        }
        // Each put is one insertion under a lock: there is no half-written state.
        fn leave_half_written(&self, _: &MemoryStorage, _: &str, _: &[u8]) {}
    }

    mod contract {
        use super::*;
        conformance_tests!(InMemory);
    }
}
