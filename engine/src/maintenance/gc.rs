//! Full maintenance: garbage collection without a lock. Finds what the snapshots reference, then for each
//! pack decides (docs/FORMAT.md §13 has the argument):
//!
//! - in use, wholly unreferenced, and not protected → retired (still readable, no longer deduplicated
//!   against); mostly unreferenced → its referenced blobs are copied into new packs, then it is retired;
//! - retired, still unreferenced, retired longer than the margin ago, and no live backup session began
//!   before the retirement could be seen → deleted (its entries dropped from the index first);
//! - retired but referenced again (a backup that began before the retirement used it) → back in use;
//! - in no index: referenced → indexed again; otherwise, when not protected → deleted.
//!
//! A pack is protected when it is younger than the margin or a live backup session began before it was
//! written (plus the margin, for clock skew): it may belong to a backup whose snapshot is not stored yet.
//! With no margin (`Safety::None`) nothing is protected and retirement is immediate deletion.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use rayon::prelude::*;

use super::compact::{self, Changes, MergedPack};
use super::{GcReport, Safety};
use crate::access::Access;
use crate::check::{list_packs, StoredPack};
use crate::content::{self, SealedContent};
use crate::error::{Error, Result};
use crate::ids::{ContentId, PackId};
use crate::index::IndexedPack;
use crate::marker::{self as session, unix_now, unix_of};
use crate::pack::{self, PackBuilder};
use crate::repository::Repository;
use crate::tree::{ChunkList, FileContent, NodeKind, TreeRecord};

/// A pack is rewritten once at least this share of its bytes is unreferenced.
const REWRITE_GARBAGE_SHARE: f64 = 0.5;

/// Every content id the snapshots reference: trees, pages, chunk lists and chunks.
pub fn referenced_content(repo: &Repository) -> Result<HashSet<ContentId>> {
    let mut seen = HashSet::new();
    let mut trees: Vec<ContentId> = Vec::new();
    for snap in repo.list_snapshots()? {
        if seen.insert(snap.root) {
            trees.push(snap.root);
        }
    }
    // A backup writes its index before its snapshot, so an index loaded after listing covers every tree
    // of the listed snapshots, also those committed since the repository was opened.
    repo.reload_index()?;
    while let Some(id) = trees.pop() {
        // One stored page at a time: a huge folder costs one page of memory, not all its entries.
        let pages = match TreeRecord::decode(&repo.read_blob(&id)?)? {
            TreeRecord::Entries(nodes) => {
                mark_nodes(repo, nodes, &mut seen, &mut trees)?;
                continue;
            }
            TreeRecord::Pages(pages) => pages,
        };
        for page in pages {
            seen.insert(page);
            match TreeRecord::decode(&repo.read_blob(&page)?)? {
                TreeRecord::Entries(nodes) => mark_nodes(repo, nodes, &mut seen, &mut trees)?,
                TreeRecord::Pages(_) => return Err(Error::corrupt(format!("tree {id}"), "nested pages")),
            }
        }
    }
    Ok(seen)
}

/// Marks what one page of entries references; sub-folders not yet seen go on `trees`.
fn mark_nodes(
    repo: &Repository,
    nodes: Vec<crate::tree::Node>,
    seen: &mut HashSet<ContentId>,
    trees: &mut Vec<ContentId>,
) -> Result<()> {
    for node in nodes {
        match node.kind {
            NodeKind::Dir { tree } => {
                if seen.insert(tree) {
                    trees.push(tree);
                }
            }
            NodeKind::File { content: FileContent::Inline(ids) } => seen.extend(ids),
            NodeKind::File { content: FileContent::List { list, .. } } => mark_list(repo, &list, seen)?,
            NodeKind::Symlink { .. } | NodeKind::Special { .. } => {}
        }
    }
    Ok(())
}

fn mark_list(repo: &Repository, id: &ContentId, seen: &mut HashSet<ContentId>) -> Result<()> {
    if !seen.insert(*id) {
        return Ok(());
    }
    let list = ChunkList::decode(&repo.read_blob(id)?)?;
    if list.level == 0 {
        seen.extend(list.ids);
    } else {
        for sub in &list.ids {
            mark_list(repo, sub, seen)?;
        }
    }
    Ok(())
}

/// The live sessions' start times (Unix seconds); dead markers are deleted.
fn live_sessions(repo: &Repository, now: u64, margin: u64, report: &mut GcReport) -> Result<Vec<u64>> {
    let mut starts = Vec::new();
    for s in session::list_sessions(repo)? {
        let beat = unix_of(s.modified);
        if beat + margin >= now {
            starts.push(s.record.started);
        } else {
            repo.storage().delete(&s.name)?;
            report.sessions_removed += 1;
        }
    }
    report.sessions_live = starts.len();
    Ok(starts)
}

/// Runs garbage collection. See the module documentation.
pub fn collect_garbage(repo: &Repository, safety: Safety) -> Result<GcReport> {
    collect_garbage_at(repo, safety, unix_now())
}

/// [`collect_garbage`] as if the clock read `now` (Unix seconds), so tests can let margins pass.
pub fn collect_garbage_at(repo: &Repository, safety: Safety, now: u64) -> Result<GcReport> {
    let started = Instant::now();
    let mut report = GcReport::default();
    let margin = match safety {
        Safety::None => 0,
        Safety::Margin(m) => m.as_secs().max(1),
    };
    // Order matters: sessions, then snapshots, then the index and packs (docs/FORMAT.md §13).
    let live = if margin == 0 { Vec::new() } else { live_sessions(repo, now, margin, &mut report)? };
    let referenced = referenced_content(repo)?;
    let blobs = repo.load_index_contents()?;
    let merged = compact::merge(&blobs);
    let mut problems = Vec::new();
    let stored = list_packs(repo, &mut problems)?;
    if let Some(p) = problems.first() {
        return Err(Error::corrupt(p.blob.clone(), p.detail.clone()));
    }

    let protected =
        |mtime: u64| margin > 0 && (mtime + margin > now || live.iter().any(|&start| start <= mtime + margin));
    let sweepable = |retired_at: u64| {
        margin == 0 || (retired_at + margin <= now && live.iter().all(|&start| start >= retired_at + margin))
    };
    let mtimes: HashMap<PackId, u64> = repo
        .storage()
        .list("p")?
        .into_iter()
        .chain(repo.storage().list("q")?)
        .filter_map(|m| {
            let (_, id) = pack::parse_pack_name(&m.name).ok()?;
            Some((id, m.modified.map(unix_of).unwrap_or(now)))
        })
        .collect();

    let mut changes = Changes::default();
    let mut to_rewrite: Vec<(&StoredPack, &MergedPack)> = Vec::new();
    let mut orphans_to_delete = Vec::new();
    let mut stored_ids = HashSet::new();
    for p in &stored {
        stored_ids.insert(p.id);
        let mtime = mtimes.get(&p.id).copied().unwrap_or(now);
        let Some(m) = merged.get(&p.id) else {
            // Not in any index: an interrupted backup's pack, or one whose index blob was lost.
            let (class, entries) = pack::read_table(repo.storage().as_ref(), repo.keys(), &p.name)?;
            if entries.iter().any(|e| referenced.contains(&e.id)) {
                changes.add.push(MergedPack { pack: IndexedPack { class, id: p.id, retired_at: None }, entries });
                report.packs_reindexed += 1;
            } else if !protected(mtime) {
                orphans_to_delete.push(p.name.clone());
            }
            continue;
        };
        let live_bytes: u64 =
            m.entries.iter().filter(|e| referenced.contains(&e.id)).map(|e| e.stored_len as u64).sum();
        let all_bytes: u64 = m.entries.iter().map(|e| e.stored_len as u64).sum();
        match m.pack.retired_at {
            Some(_) if live_bytes > 0 => {
                changes.marks.insert(p.id, None);
                report.packs_revived += 1;
            }
            Some(at) if sweepable(at) => {
                changes.drop.insert(p.id);
                report.packs_deleted += 1;
                report.bytes_freed += p.size;
            }
            Some(_) => {}
            None if protected(mtime) => {}
            None if live_bytes == 0 => {
                report.packs_retired += 1;
                if margin == 0 {
                    changes.drop.insert(p.id);
                    report.packs_deleted += 1;
                    report.bytes_freed += p.size;
                } else {
                    changes.marks.insert(p.id, Some(now));
                }
            }
            None if (all_bytes - live_bytes) as f64 >= REWRITE_GARBAGE_SHARE * all_bytes as f64 => {
                to_rewrite.push((p, m));
            }
            None => {}
        }
    }
    // Retired packs already deleted (an earlier run stopped between the two steps): drop their entries.
    for (id, m) in &merged {
        if !stored_ids.contains(id) && m.pack.retired_at.is_some() {
            changes.drop.insert(*id);
        }
    }

    let mut copied: HashSet<ContentId> = HashSet::new();
    // Copies are gathered per class and laid out into packs of about `pack_size`.
    let mut new_packs: Vec<(crate::pack::PackTrailer, Vec<u8>)> = Vec::new();
    let mut pending: [(Vec<SealedContent>, usize); 2] = [(Vec::new(), 0), (Vec::new(), 0)];
    let pack_size = repo.format().pack_size as usize;
    for (p, m) in &to_rewrite {
        let bytes = repo.storage().get(&p.name)?;
        for e in m.entries.iter().filter(|e| referenced.contains(&e.id)) {
            if !copied.insert(e.id) {
                continue;
            }
            let stored = bytes
                .get(e.offset as usize..e.offset as usize + e.stored_len as usize)
                .ok_or_else(|| Error::corrupt(p.name.clone(), format!("blob {} lies outside the pack", e.id)))?;
            // Never copy damage forward: open every blob kept.
            let plain = content::open_unverified(repo.keys(), p.class, &e.id, e.compression, e.raw_len, stored)?;
            repo.verify_content(&e.id, &plain)?;
            let blob = SealedContent {
                id: e.id,
                class: p.class,
                compression: e.compression,
                raw_len: e.raw_len,
                bytes: stored.to_vec(),
            };
            let (blobs, size) = &mut pending[p.class as usize];
            *size += blob.bytes.len();
            blobs.push(blob);
            report.blobs_copied += 1;
            if *size >= pack_size {
                new_packs.push(PackBuilder::build_in_memory(p.class, &std::mem::take(blobs), repo.keys()));
                *size = 0;
            }
        }
        report.packs_rewritten += 1;
        report.bytes_freed += p.size;
        if margin == 0 {
            changes.drop.insert(p.id);
        } else {
            changes.marks.insert(p.id, Some(now));
        }
    }
    for (blobs, _) in pending {
        if let Some(class) = blobs.first().map(|b| b.class) {
            new_packs.push(PackBuilder::build_in_memory(class, &blobs, repo.keys()));
        }
    }
    new_packs.par_iter().try_for_each(|(t, bytes)| repo.storage().put(&t.name, bytes))?;
    let written: Vec<_> = new_packs.into_iter().map(|(t, _)| (t.class, t.id, t.entries)).collect();
    // The copies are indexed before the originals are retired or dropped.
    repo.write_index(&written)?;

    let limit = Duration::from_secs(margin / 2);
    let (index_blobs, replaced) =
        compact::rewrite_index(repo, &blobs, &changes, (margin > 0).then_some((started, limit)))?;
    report.index_blobs_before = blobs.len();
    report.index_blobs_after = index_blobs + usize::from(!written.is_empty());
    if replaced {
        // Restic's order: entries leave the index before their packs are deleted.
        for id in &changes.drop {
            if let Some(m) = merged.get(id) {
                repo.storage().delete(&pack::pack_name(m.pack.class, id))?;
            }
        }
    }
    for name in &orphans_to_delete {
        repo.storage().delete(name)?;
        report.orphans_deleted += 1;
    }
    repo.reload_index()?;
    Ok(report)
}
