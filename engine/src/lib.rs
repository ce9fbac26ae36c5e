//! Cairn's backup engine: the repository format (format blob, keys, packs, index, trees, snapshots), the
//! storage backends it is kept on, and the pipelines that back up and restore. No CLI lives here, and the only
//! network client is the S3 storage backend's; `cairn-transport` and `cairn-cli` build on this crate.

pub mod access;
pub mod backup;
pub mod benchmark;
pub mod check;
pub mod chunker;
pub mod compress;
pub mod content;
pub mod crypto;
pub mod entries;
pub mod error;
pub mod format;
#[cfg(any(fuzzing, test))]
pub mod fuzzing;
pub mod ids;
pub mod index;
#[cfg(test)]
mod integrity_tests;
pub mod maintenance;
pub mod marker;
pub mod pack;
pub mod policy;
pub mod records;
pub mod repository;
pub mod restore;
pub mod retention;
pub mod scheduler;
pub mod session;
pub mod snapshot;
pub mod storage;
pub mod tenants;
pub mod tree;
pub mod verify;

pub use access::Access;
pub use error::{Error, ErrorKind, Result};
pub use repository::Repository;
