//! `index rebuild`: a new index from the packs' own entry tables, for when an index blob is lost or
//! damaged. Every pack whose table opens is listed in use (a retirement in progress is undone, which is
//! always safe); the old index blobs are deleted only after the new ones are stored.

use serde::Serialize;

use super::compact::{rewrite_index, Changes, MergedPack};
use crate::check::{list_packs, read_tables, Problem};
use crate::error::Result;
use crate::index::IndexedPack;
use crate::repository::Repository;

/// What a rebuild did.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RebuildReport {
    pub packs: usize,
    pub entries: usize,
    pub index_blobs_written: usize,
    pub index_blobs_deleted: usize,
    /// Packs whose table could not be read (left out).
    pub problems: Vec<Problem>,
}

/// Rebuilds the index from pack tables.
pub fn rebuild_index(repo: &Repository) -> Result<RebuildReport> {
    let mut report = RebuildReport::default();
    let old: Vec<(String, crate::index::IndexContents)> =
        repo.storage().list("i")?.into_iter().map(|m| (m.name, Default::default())).collect();
    let packs = list_packs(repo, &mut report.problems)?;
    let (tables, problems) = read_tables(repo, &packs);
    report.problems.extend(problems);
    let mut changes = Changes::default();
    for p in &packs {
        if let Some(entries) = tables.get(&p.id) {
            report.packs += 1;
            report.entries += entries.len();
            changes.add.push(MergedPack {
                pack: IndexedPack { class: p.class, id: p.id, retired_at: None },
                entries: entries.clone(),
            });
        }
    }
    let (written, _) = rewrite_index(repo, &old, &changes, None)?;
    report.index_blobs_written = written;
    report.index_blobs_deleted = old.len();
    repo.reload_index()?;
    Ok(report)
}
