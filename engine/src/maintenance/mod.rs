//! Maintenance: index compaction (quick), garbage collection (full), retention and index rebuild. None of
//! it takes a lock; full maintenance is safe with backups running from other processes because of the
//! writer sessions and safety margin described in docs/FORMAT.md §13.

pub mod compact;
pub mod expire;
pub mod gc;
pub mod rebuild;

use std::time::Duration;

use serde::Serialize;

use crate::error::Result;
use crate::repository::Repository;

/// Index blobs quick maintenance leaves alone; above this count it merges them.
pub const QUICK_KEEP_INDEX_BLOBS: usize = 8;
/// The default safety margin: a pack is touched only when older than this, a retired pack is deleted only
/// this long after its retirement, and a writer session counts as dead when not refreshed for this long.
pub const DEFAULT_MARGIN: Duration = Duration::from_secs(3600);

/// How careful garbage collection is about writers it cannot see.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Safety {
    /// No margins: delete garbage at once. Only when no other writer can be running.
    None,
    /// The margin (at least [`crate::marker::MIN_MARGIN`]).
    Margin(Duration),
}

/// What maintenance did.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GcReport {
    pub index_blobs_before: usize,
    pub index_blobs_after: usize,
    pub sessions_live: usize,
    pub sessions_removed: usize,
    pub packs_retired: usize,
    pub packs_rewritten: usize,
    pub packs_deleted: usize,
    pub packs_revived: usize,
    pub packs_reindexed: usize,
    pub orphans_deleted: usize,
    pub blobs_copied: usize,
    pub bytes_freed: u64,
}

/// Runs quick maintenance (index compaction) and, with `full`, garbage collection.
pub fn run_maintenance(repo: &Repository, full: bool, safety: Safety) -> Result<GcReport> {
    if let Safety::Margin(m) = safety {
        if m < crate::marker::MIN_MARGIN {
            return Err(crate::Error::InvalidArgument(format!(
                "the safety margin must be at least {} s (or none)",
                crate::marker::MIN_MARGIN.as_secs()
            )));
        }
    }
    if full {
        return gc::collect_garbage(repo, safety);
    }
    let (before, after) = compact::compact_index(repo, QUICK_KEEP_INDEX_BLOBS)?;
    repo.reload_index()?;
    Ok(GcReport { index_blobs_before: before, index_blobs_after: after, ..Default::default() })
}
