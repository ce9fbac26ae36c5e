//! `cairn restore ID[/path] TARGET`: writes the snapshot root's contents (or the named folder's contents, or
//! the named file) into TARGET.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;
use cairn_engine::restore::{restore, RestoreOptions, RestoreProgress};

use super::{find_snapshot, split_target, Context, Incomplete};
use crate::args::RestoreArgs;
use crate::output;
use crate::progress::Display;

pub fn run(ctx: &Context, args: RestoreArgs) -> Result<()> {
    let (config, repo) = ctx.open()?;
    let (id, path) = split_target(&args.source);
    let snap = find_snapshot(repo.as_ref(), &config, id)?;
    let resolved = repo.resolve_path(&snap.root, path)?;
    let total = match (&resolved.tree, &resolved.node) {
        (_, Some(node)) if resolved.tree.is_none() => node.size,
        _ if path.is_empty() || path == "/" => snap.stats.bytes,
        _ => 0,
    };
    let progress = Arc::new(RestoreProgress::default());
    let display = Display::restore(progress.clone(), total, !args.json);
    let started = Instant::now();
    let cancel = AtomicBool::new(false);
    let options = RestoreOptions { overwrite: args.overwrite, ..RestoreOptions::default() };
    let summary =
        restore(repo.as_ref(), resolved.tree, resolved.node.as_ref(), &args.target, &options, &progress, &cancel);
    drop(display);
    let summary = summary?;
    let secs = started.elapsed().as_secs_f64();
    if args.json {
        let mut value = serde_json::to_value(&summary)?;
        value["snapshot"] = snap.id.to_hex().into();
        value["target"] = args.target.display().to_string().into();
        value["durationSeconds"] = secs.into();
        output::json(&value)?;
    } else {
        eprintln!(
            "Restored {} files, {} folders and {} symlinks ({}) to {} in {:.1}s ({})",
            summary.files,
            summary.dirs,
            summary.symlinks,
            output::bytes(summary.bytes),
            args.target.display(),
            secs,
            output::rate(summary.bytes, secs)
        );
        if summary.skipped_special > 0 {
            eprintln!("  skipped {} special files (FIFOs, sockets, devices)", summary.skipped_special);
        }
        for e in &summary.errors {
            eprintln!("  error: {e}");
        }
    }
    if !summary.errors.is_empty() {
        return Err(Incomplete(format!("{} entries could not be restored", summary.errors.len())).into());
    }
    Ok(())
}
