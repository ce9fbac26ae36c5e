//! The blocking work behind tasks: a snapshot (followed by the source's retention), a restore, and quick
//! maintenance. Each runs on a task's thread, reports through the engine's counters and the task log, and
//! stops early when the task's cancel flag is set. A cancelled snapshot records nothing: the engine writes
//! packs and index blobs before the snapshot record, so the repository stays consistent.

use cairn_engine::Access;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use cairn_engine::backup::{run_backup, BackupOptions, Progress};
use cairn_engine::restore::{restore, RestoreOptions, RestoreProgress};
use cairn_engine::retention::select_expired;
use cairn_engine::snapshot::{Snapshot, Source};
use cairn_engine::{Error, Repository};
use serde_json::{json, Value};

use super::tasks::{Outcome, Task};

/// Backs up `source.path` as `source`, then applies the source's retention policy.
pub fn snapshot(repo: &Repository, source: &Source, task: &Task, progress: Arc<Progress>) -> Outcome {
    let parent = repo.latest_snapshot(source)?;
    task.log(match &parent {
        Some(p) => format!("backing up {} (unchanged files reused from snapshot {})", source.path, p.id),
        None => format!("backing up {} (first snapshot of this source)", source.path),
    });
    let mut options = BackupOptions::new(PathBuf::from(&source.path), source.clone());
    options.parent = parent;
    options.cancel = task.cancel_flag();
    let kind = if task.scheduled { "scheduled" } else { "manual" };
    options.tags.insert("type".into(), kind.into());
    let outcome = run_backup(repo, options, progress)?;
    let snap = outcome.snapshot;
    let s = &snap.stats;
    task.log(format!(
        "created snapshot {}: {} files, {} folders, {} bytes ({} read, {} new) in {:.2}s",
        snap.id, s.files, s.dirs, s.bytes, s.bytes_read, s.bytes_new, outcome.stages.wall_seconds
    ));
    for e in &snap.error_messages {
        task.log(format!("could not read {e}"));
    }
    let expired = apply_retention(repo, source, task)?;
    Ok(json!({"snapshot": snapshot_json(&snap), "expired": expired}))
}

/// Deletes the snapshots of `source` its policy's keep rules do not keep; returns their ids.
pub fn apply_retention(repo: &Repository, source: &Source, task: &Task) -> Result<Vec<String>, Error> {
    let Some(policy) = repo.policy(source)? else { return Ok(Vec::new()) };
    if policy.keep.is_empty() {
        return Ok(Vec::new());
    }
    let snaps: Vec<Snapshot> = repo.list_snapshots()?.into_iter().filter(|s| &s.source == source).collect();
    let times: Vec<_> = snaps.iter().map(|s| s.start_time).collect();
    let mut deleted = Vec::new();
    for i in select_expired(&times, &policy.keep) {
        let snap = &snaps[i];
        repo.delete_snapshot(&snap.id)?;
        task.log(format!("retention: deleted snapshot {} of {}", snap.id, snap.start_time.to_rfc3339()));
        deleted.push(snap.id.to_hex());
    }
    if deleted.is_empty() {
        task.log(format!("retention: all {} snapshots of {source} are kept", snaps.len()));
    }
    Ok(deleted)
}

/// What a restore writes.
pub struct RestoreRequest {
    pub snapshot: Snapshot,
    /// Slash-separated path inside the snapshot ("" for the root).
    pub path: String,
    pub target: PathBuf,
    pub overwrite: bool,
}

/// The bytes a restore of `path` will write, for the progress bar (0 when unknown).
pub fn restore_total(repo: &Repository, snapshot: &Snapshot, path: &str) -> u64 {
    if path.trim_matches('/').is_empty() {
        return snapshot.stats.bytes;
    }
    match repo.resolve_path(&snapshot.root, path) {
        Ok(r) if r.tree.is_none() => r.node.map(|n| n.size).unwrap_or(0),
        _ => 0,
    }
}

/// Restores a folder or file of a snapshot to a local target.
pub fn restore_path(repo: &Repository, req: &RestoreRequest, task: &Task, progress: &RestoreProgress) -> Outcome {
    let resolved = repo.resolve_path(&req.snapshot.root, &req.path)?;
    task.log(format!("restoring {}/{} to {}", req.snapshot.id, req.path.trim_matches('/'), req.target.display()));
    let options = RestoreOptions { overwrite: req.overwrite, ..RestoreOptions::default() };
    let cancel = task.cancel_flag();
    let summary =
        restore(repo, resolved.tree, resolved.node.as_ref(), &req.target, &options, progress, cancel.as_ref())?;
    for e in &summary.errors {
        task.log(format!("could not restore {e}"));
    }
    let unlisted = summary.error_count.saturating_sub(summary.errors.len() as u64);
    if unlisted > 0 {
        task.log(format!("could not restore {unlisted} more entries"));
    }
    task.log(format!(
        "restored {} files, {} folders, {} symlinks, {} bytes",
        summary.files, summary.dirs, summary.symlinks, summary.bytes
    ));
    let mut value = serde_json::to_value(&summary).unwrap_or_default();
    value["target"] = req.target.display().to_string().into();
    Ok(value)
}

/// Quick maintenance: applies retention to every source with a policy (except sources being snapshotted
/// now), then checks that every remaining snapshot's root folder is in the index (the caller refreshes the
/// index first when it safely can). It deletes snapshot records only; reclaiming their data is full
/// maintenance's job.
pub fn quick_maintenance(repo: &Repository, task: &Task, busy: &HashSet<Source>) -> Outcome {
    let cancel = task.cancel_flag();
    let mut expired = Vec::new();
    for (source, _) in repo.policies()? {
        if cancel.load(Relaxed) {
            return Err(Error::Cancelled);
        }
        if busy.contains(&source) {
            task.log(format!("skipping {source}: a snapshot is running"));
            continue;
        }
        expired.extend(apply_retention(repo, &source, task)?);
    }
    // The repository's own quick maintenance: compact small index blobs (safe alongside other writers).
    let compacted = cairn_engine::maintenance::run_maintenance(
        repo,
        false,
        cairn_engine::maintenance::Safety::Margin(cairn_engine::maintenance::DEFAULT_MARGIN),
    )?;
    task.log(format!(
        "index compaction: {} index blobs before, {} after",
        compacted.index_blobs_before, compacted.index_blobs_after
    ));
    let index = repo.index();
    let snaps = repo.list_snapshots()?;
    let missing: Vec<String> = snaps.iter().filter(|s| !index.contains(&s.root)).map(|s| s.id.to_hex()).collect();
    for id in &missing {
        task.log(format!("snapshot {id}: its root folder is not in the index"));
    }
    task.log(format!(
        "quick maintenance: {} snapshots expired, {} snapshots checked, {} index entries",
        expired.len(),
        snaps.len(),
        index.len()
    ));
    Ok(json!({"expired": expired, "snapshotsChecked": snaps.len(), "missingRoots": missing, "compaction": compacted}))
}

/// A snapshot as the API shows it: the stored record plus `time` (its start, RFC 3339).
pub fn snapshot_json(snap: &Snapshot) -> Value {
    let mut value = serde_json::to_value(snap).unwrap_or_default();
    value["time"] = snap.start_time.to_rfc3339().into();
    value
}

/// Makes a restore target absolute and refuses relative paths (the server's working folder means nothing
/// to a user).
pub fn absolute_target(target: &str) -> Result<PathBuf, Error> {
    let path = Path::new(target);
    if target.is_empty() || !path.is_absolute() {
        return Err(Error::InvalidArgument(format!("restore target {target:?} must be an absolute path")));
    }
    Ok(path.to_path_buf())
}
