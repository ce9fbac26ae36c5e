//! Index compaction: replaces a set of index blobs by fewer ones holding the same packs, merged so that a
//! pack any blob lists as in use stays in use (retirement only ever takes effect when every blob agrees),
//! with some packs dropped (deleted) or re-marked (retired, revived). New blobs are stored before the old
//! ones are deleted, so a reader always finds every entry in some blob.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use crate::error::Result;
use crate::ids::{IndexId, PackId};
use crate::index::{self, IndexContents, IndexedPack};
use crate::pack::PackEntry;
use crate::repository::Repository;

/// Most entries written to one index blob.
const ENTRIES_PER_BLOB: usize = 200_000;

/// A pack as the merged index sees it.
#[derive(Clone, Debug)]
pub(crate) struct MergedPack {
    pub pack: IndexedPack,
    pub entries: Vec<PackEntry>,
}

/// Merges index blobs: each pack once, its entries deduplicated, retired only if every blob says so (then
/// at the latest time any says).
pub(crate) fn merge(blobs: &[(String, IndexContents)]) -> BTreeMap<PackId, MergedPack> {
    let mut out: BTreeMap<PackId, MergedPack> = BTreeMap::new();
    let mut seen: HashMap<PackId, HashSet<crate::ids::ContentId>> = HashMap::new();
    for (_, blob) in blobs {
        for p in &blob.packs {
            let merged = out.entry(p.id).or_insert(MergedPack { pack: *p, entries: Vec::new() });
            merged.pack.retired_at = match (merged.pack.retired_at, p.retired_at) {
                (Some(a), Some(b)) => Some(a.max(b)),
                _ => None,
            };
        }
        for r in &blob.records {
            if seen.entry(r.pack).or_default().insert(r.entry.id) {
                if let Some(m) = out.get_mut(&r.pack) {
                    m.entries.push(r.entry);
                }
            }
        }
    }
    out
}

/// What to change while compacting.
#[derive(Default)]
pub(crate) struct Changes {
    /// Packs whose entries are left out (they are deleted next).
    pub drop: HashSet<PackId>,
    /// New marks: `Some(t)` retires at `t`, `None` puts back in use.
    pub marks: HashMap<PackId, Option<u64>>,
    /// Packs to add (orphans found to be referenced).
    pub add: Vec<MergedPack>,
}

/// Writes the merged contents of `old` with `changes` applied, then deletes `old` — unless `deadline` has
/// passed by then, in which case the old blobs stay (harmless: a pack in use in any blob stays in use) and
/// false is returned. Returns the number of blobs written.
pub(crate) fn rewrite_index(
    repo: &Repository,
    old: &[(String, IndexContents)],
    changes: &Changes,
    deadline: Option<(Instant, Duration)>,
) -> Result<(usize, bool)> {
    let mut merged = merge(old);
    for p in &changes.add {
        merged.entry(p.pack.id).or_insert_with(|| p.clone());
    }
    let mut packs: Vec<(IndexedPack, Vec<PackEntry>)> = Vec::new();
    for (id, mut m) in merged {
        if changes.drop.contains(&id) {
            continue;
        }
        if let Some(mark) = changes.marks.get(&id) {
            m.pack.retired_at = *mark;
        }
        packs.push((m.pack, m.entries));
    }
    let mut written = 0;
    let mut batch: Vec<(IndexedPack, Vec<PackEntry>)> = Vec::new();
    let mut batch_entries = 0;
    for (pack, entries) in packs {
        batch_entries += entries.len();
        batch.push((pack, entries));
        if batch_entries >= ENTRIES_PER_BLOB {
            write_blob(repo, &std::mem::take(&mut batch))?;
            batch_entries = 0;
            written += 1;
        }
    }
    if !batch.is_empty() {
        write_blob(repo, &batch)?;
        written += 1;
    }
    if let Some((started, limit)) = deadline {
        if started.elapsed() > limit {
            tracing::warn!("maintenance took too long to retire safely; leaving the old index blobs");
            return Ok((written, false));
        }
    }
    for (name, _) in old {
        repo.storage().delete(name)?;
    }
    Ok((written, true))
}

fn write_blob(repo: &Repository, packs: &[(IndexedPack, Vec<PackEntry>)]) -> Result<()> {
    let name = index::index_name(&IndexId::random());
    Ok(repo.storage().put(&name, &index::encode_index_blob_v2(repo.keys(), &name, packs))?)
}

/// Quick maintenance: merges the index blobs into as few as needed when there are more than `keep`.
/// Returns (blobs before, blobs after).
pub fn compact_index(repo: &Repository, keep: usize) -> Result<(usize, usize)> {
    let blobs = repo.load_index_contents()?;
    if blobs.len() <= keep {
        return Ok((blobs.len(), blobs.len()));
    }
    let (written, _) = rewrite_index(repo, &blobs, &Changes::default(), None)?;
    Ok((blobs.len(), written))
}
