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
//!
//! Errors say whether trying again may help ([`StorageError::is_transient`]): a throttled or failed request
//! to a remote store is transient, a missing blob, a bad name or a refused credential never is.
//!
//! Decorators add one behaviour each on top of any backend: [`RetryStorage`] (backoff on transient errors),
//! [`LimitStorage`] (operations in flight), [`CacheStorage`] (a local copy of index blobs, metadata packs and
//! snapshot records) and [`FaultStorage`] (injected failures, for tests). `conformance` is the test suite
//! every backend passes.

mod cache;
#[cfg(test)]
mod conformance;
mod fault;
mod faulty;
mod fs;
mod limit;
mod memory;
mod retry;
pub mod s3;

use std::time::SystemTime;

pub use cache::CacheStorage;
pub use fault::{FaultStorage, Op};
pub use faulty::{Faults, FaultyStorage};
pub use fs::FsStorage;
pub use limit::LimitStorage;
pub use memory::MemoryStorage;
pub use retry::{Backoff, RetryStorage};
pub use s3::{S3Config, S3Storage};

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
    /// A remote store refused or failed a request. `transient` errors (throttling, server errors, dropped
    /// connections) may succeed when tried again; others (bad credentials, missing bucket) will not.
    #[error("storage {op} {name}: {source}")]
    Backend {
        op: &'static str,
        name: String,
        transient: bool,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl StorageError {
    /// True when the blob does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, StorageError::NotFound(_))
    }

    /// True when the same call may succeed if tried again later.
    pub fn is_transient(&self) -> bool {
        matches!(self, StorageError::Backend { transient: true, .. })
    }
}

/// What a backend tells the layers above about itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Properties {
    /// Operations the backend serves well at once: the concurrency limit and the number of uploaders.
    pub max_concurrency: usize,
}

impl Default for Properties {
    fn default() -> Self {
        Properties { max_concurrency: 8 }
    }
}

/// A blob being written piece by piece; it becomes visible under its name, atomically and whole, only
/// when [`BlobWriter::finish`] succeeds. Dropping it unfinished leaves nothing visible.
pub trait BlobWriter: Send {
    /// Appends bytes.
    fn write(&mut self, data: &[u8]) -> Result<(), StorageError>;
    /// Bytes written so far.
    fn written(&self) -> u64;
    /// Makes the blob durable and visible; `storage` is the backend that created the writer.
    fn finish(self: Box<Self>, storage: &dyn Storage) -> Result<(), StorageError>;
}

/// A [`BlobWriter`] that gathers the blob in memory and stores it with one `put` on `finish`: the default
/// for backends (and decorators) that cannot stream.
pub struct BufferedWriter {
    name: String,
    data: Vec<u8>,
}

impl BufferedWriter {
    pub fn new(name: &str) -> Result<Self, StorageError> {
        validate_name(name)?;
        Ok(Self { name: name.to_string(), data: Vec::new() })
    }
}

impl BlobWriter for BufferedWriter {
    fn write(&mut self, data: &[u8]) -> Result<(), StorageError> {
        self.data.extend_from_slice(data);
        Ok(())
    }
    fn written(&self) -> u64 {
        self.data.len() as u64
    }
    fn finish(self: Box<Self>, storage: &dyn Storage) -> Result<(), StorageError> {
        storage.put(&self.name, &self.data)
    }
}

/// A blob store. See the module documentation for the contract.
pub trait Storage: Send + Sync {
    /// Stores `data` under `name`, atomically.
    fn put(&self, name: &str, data: &[u8]) -> Result<(), StorageError>;
    /// Starts writing a blob piece by piece (large packs are streamed rather than held in memory). Backends
    /// that cannot stream return a [`BufferedWriter`].
    fn writer(&self, name: &str) -> Result<Box<dyn BlobWriter>, StorageError> {
        Ok(Box::new(BufferedWriter::new(name)?))
    }
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
    /// The backend's properties; decorators pass on their inner backend's.
    fn properties(&self) -> Properties {
        Properties::default()
    }
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
