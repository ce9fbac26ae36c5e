//! `cairn snapshot verify`, `cairn repository check` and `cairn index rebuild`.

use anyhow::{anyhow, Result};
use cairn_engine::check::check_repository;
use cairn_engine::maintenance::rebuild::rebuild_index;
use cairn_engine::verify::{verify_snapshots, VerifyOptions};
use cairn_engine::Access;

use super::{find_snapshot, Context};
use crate::output;

/// `snapshot verify [ID...]`: all snapshots when no id is given.
pub fn verify(ctx: &Context, ids: Vec<String>, files_percent: f64, parallel: Option<usize>, json: bool) -> Result<()> {
    let (config, repo) = (ctx.load_config()?, ctx.open_direct()?);
    let snapshots = if ids.is_empty() {
        repo.list_snapshots()?
    } else {
        ids.iter().map(|id| find_snapshot(&repo, &config, id)).collect::<Result<_>>()?
    };
    let parallel = parallel.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2));
    let report = verify_snapshots(&repo, &snapshots, &VerifyOptions { files_percent, parallel })?;
    if json {
        output::json(&report)?;
    } else {
        for p in &report.problems {
            errln!("ERROR: snapshot {} path {} blob {}: {}", p.snapshot, p.path, p.blob, p.detail);
        }
        errln!(
            "Verified {} snapshots: {} trees, {} files, {} chunks located, {} chunks read ({}); {} problems",
            report.snapshots,
            report.trees,
            report.files,
            report.chunks,
            report.chunks_read,
            output::bytes(report.bytes_read),
            report.problems.len()
        );
    }
    if !report.problems.is_empty() {
        return Err(anyhow!("verification found {} problem(s)", report.problems.len()));
    }
    Ok(())
}

/// `repository check [--read-all-data]`.
pub fn check(ctx: &Context, read_all_data: bool, json: bool) -> Result<()> {
    let repo = ctx.open_direct()?;
    let report = check_repository(&repo, read_all_data)?;
    if json {
        output::json(&report)?;
    } else {
        for p in &report.problems {
            errln!("ERROR: {}: {}", p.blob, p.detail);
        }
        for n in &report.notes {
            errln!("note: {n}");
        }
        errln!(
            "Checked {} index blobs ({} entries), {} packs ({} not indexed, left by interrupted backups), {} snapshots{}; {} problems",
            report.index_blobs,
            report.index_entries,
            report.packs,
            report.orphan_packs.len(),
            report.snapshots,
            if read_all_data { format!(", {} blobs read", report.blobs_read) } else { String::new() },
            report.problems.len()
        );
    }
    if !report.problems.is_empty() {
        return Err(anyhow!("repository check found {} problem(s)", report.problems.len()));
    }
    Ok(())
}

/// `index rebuild`.
pub fn rebuild(ctx: &Context, json: bool) -> Result<()> {
    let repo = ctx.open_direct()?;
    let report = rebuild_index(&repo)?;
    if json {
        output::json(&report)?;
    } else {
        for p in &report.problems {
            errln!("ERROR: {}: {} (left out of the index)", p.blob, p.detail);
        }
        errln!(
            "Rebuilt the index from {} packs ({} entries): {} index blobs written, {} replaced",
            report.packs,
            report.entries,
            report.index_blobs_written,
            report.index_blobs_deleted
        );
    }
    if !report.problems.is_empty() {
        return Err(anyhow!("{} pack(s) could not be read", report.problems.len()));
    }
    Ok(())
}
