//! Cairn's backup engine: the repository format (format blob, keys, packs, index, trees, snapshots), the
//! storage backends it is kept on, and the pipelines that back up and restore. No networking and no CLI live
//! here; `cairn-transport` and `cairn-cli` build on this crate.

pub mod backup;
pub mod benchmark;
pub mod chunker;
pub mod compress;
pub mod content;
pub mod crypto;
pub mod error;
pub mod format;
pub mod ids;
pub mod index;
pub mod pack;
pub mod policy;
pub mod records;
pub mod repository;
pub mod restore;
pub mod retention;
pub mod scheduler;
pub mod snapshot;
pub mod storage;
pub mod tree;

pub use error::{Error, ErrorKind, Result};
pub use repository::Repository;
