//! Storage: a flat namespace of named, immutable blobs. This is the whole contract a backend offers, and
//! everything above it (packs, indexes, snapshots) is built from these six operations:
//!
//! - `put` makes a blob visible atomically under its name: a reader sees the whole blob or nothing, never a
//!   prefix. Writing an existing name replaces it (writers only do that with identical bytes).
//! - `get` and `get_range` return exactly the stored bytes; a missing blob is [`StorageError::NotFound`], a
//!   distinct kind callers branch on.
//! - `list` returns every visible blob whose name starts with the prefix, in no particular order.
//! - `delete` of a missing blob succeeds (it is idempotent).
//!
//! Backends are synchronous and may be called from many threads at once. An object-store backend fits the
//! same contract (PUT is atomic, ranged GET, paged LIST).

mod faulty;
mod fs;
mod memory;

use std::time::SystemTime;

pub use faulty::{Faults, FaultyStorage};
pub use fs::FsStorage;
pub use memory::MemoryStorage;

/// A stored blob's name and size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobMeta {
    pub name: String,
    pub size: u64,
    pub modified: Option<SystemTime>,
}

/// Errors from a storage backend.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("blob {0} not found")]
    NotFound(String),
    #[error("invalid blob name {0:?}")]
    InvalidName(String),
    #[error("range {offset}+{length} is outside blob {name} ({size} bytes)")]
    OutOfRange { name: String, offset: u64, length: u64, size: u64 },
    #[error("storage {op} {name}: {source}")]
    Io {
        op: &'static str,
        name: String,
        #[source]
        source: std::io::Error,
    },
}

impl StorageError {
    /// True when the blob does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, StorageError::NotFound(_))
    }
}

/// A blob store. See the module documentation for the contract.
pub trait Storage: Send + Sync {
    /// Stores `data` under `name`, atomically.
    fn put(&self, name: &str, data: &[u8]) -> Result<(), StorageError>;
    /// Reads a whole blob.
    fn get(&self, name: &str) -> Result<Vec<u8>, StorageError>;
    /// Reads `length` bytes at `offset`; the range must lie inside the blob.
    fn get_range(&self, name: &str, offset: u64, length: u64) -> Result<Vec<u8>, StorageError>;
    /// Lists blobs whose names start with `prefix`.
    fn list(&self, prefix: &str) -> Result<Vec<BlobMeta>, StorageError>;
    /// Deletes a blob; deleting a missing blob is not an error.
    fn delete(&self, name: &str) -> Result<(), StorageError>;
    /// Size and time of one blob.
    fn stat(&self, name: &str) -> Result<BlobMeta, StorageError>;
    /// Where the blobs live, for messages.
    fn describe(&self) -> String;
}

/// Checks a blob name: 1 to 128 characters of `[a-z0-9._-]`, not starting with a dot. Names never contain a
/// path separator, so no backend can be steered outside its root.
pub fn validate_name(name: &str) -> Result<(), StorageError> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(StorageError::InvalidName(name.to_string()))
    }
}

/// Checks that a requested range lies inside a blob of `size` bytes.
pub(crate) fn check_range(name: &str, offset: u64, length: u64, size: u64) -> Result<(), StorageError> {
    match offset.checked_add(length) {
        Some(end) if end <= size => Ok(()),
        _ => Err(StorageError::OutOfRange { name: name.to_string(), offset, length, size }),
    }
}
