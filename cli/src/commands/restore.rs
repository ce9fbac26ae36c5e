//! `cairn restore ID[/path] TARGET`: writes the snapshot root's contents (or the named folder's contents, or
//! the named file) into TARGET. The root of a single-file snapshot is that file, put into TARGET (created
//! if needed; other files already there are left alone).

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{anyhow, bail, Result};
use cairn_engine::access::Resolved;
use cairn_engine::restore::{restore, RestoreOptions, RestoreProgress};

use super::{find_snapshot, split_target, Context, Incomplete};
use crate::args::RestoreArgs;
use crate::output;
use crate::progress::Display;

pub fn run(ctx: &Context, args: RestoreArgs) -> Result<()> {
    let (config, repo) = ctx.open()?;
    let (id, path) = split_target(&args.source);
    let snap = find_snapshot(repo.as_ref(), &config, id)?;
    let mut resolved = repo.resolve_path(&snap.root, path)?;
    let whole = path.trim_matches('/').is_empty();
    if whole && snap.is_single_file() {
        let mut nodes = repo.read_tree(&snap.root)?.into_iter();
        let (Some(node), None) = (nodes.next(), nodes.next()) else {
            bail!("snapshot {} is recorded as a single file but its root does not hold exactly one entry", snap.id);
        };
        std::fs::create_dir_all(&args.target).map_err(|e| anyhow!("{}: {e}", args.target.display()))?;
        resolved = Resolved { node: Some(node), tree: None };
    }
    let total = match (&resolved.tree, &resolved.node) {
        (_, Some(node)) if resolved.tree.is_none() => node.size,
        _ if whole => snap.stats.bytes,
        _ => 0,
    };
    let progress = Arc::new(RestoreProgress::default());
    let display = Display::restore(progress.clone(), total, !args.json);
    let started = Instant::now();
    let cancel = AtomicBool::new(false);
    let defaults = RestoreOptions::default();
    let options =
        RestoreOptions { overwrite: args.overwrite, parallel: args.parallel.map_or(defaults.parallel, usize::from) };
    let summary =
        restore(repo.as_ref(), resolved.tree, resolved.node.as_ref(), &args.target, &options, &progress, &cancel);
    drop(display);
    let summary = summary.map_err(|e| {
        // Stopped part-way (a full or read-only target): say what is already there.
        let files = progress.files.load(std::sync::atomic::Ordering::Relaxed);
        match files {
            0 => anyhow!(e),
            _ => anyhow!(e).context(format!(
                "restore stopped after {files} files ({}) were written to {}",
                output::bytes(progress.bytes.load(std::sync::atomic::Ordering::Relaxed)),
                args.target.display()
            )),
        }
    })?;
    let secs = started.elapsed().as_secs_f64();
    if args.json {
        let mut value = serde_json::to_value(&summary)?;
        value["snapshot"] = snap.id.to_hex().into();
        value["target"] = args.target.display().to_string().into();
        value["durationSeconds"] = secs.into();
        output::json(&value)?;
    } else {
        errln!(
            "Restored {} files, {} folders and {} symlinks ({}) to {} in {:.1}s ({})",
            summary.files,
            summary.dirs,
            summary.symlinks,
            output::bytes(summary.bytes),
            args.target.display(),
            secs,
            output::rate(summary.bytes, secs)
        );
        if summary.copied_bytes > 0 {
            errln!(
                "  {} of it from chunks that appear more than once, copied from where they were first restored",
                output::bytes(summary.copied_bytes)
            );
        }
        if summary.fifos + summary.devices > 0 {
            errln!("  recreated {} FIFOs and {} device nodes", summary.fifos, summary.devices);
        }
        if summary.skipped_special > 0 {
            errln!(
                "  warning: skipped {} special files (sockets; device nodes unless running as root)",
                summary.skipped_special
            );
        }
        for e in &summary.errors {
            errln!("  error: {e}");
        }
        let unlisted = summary.error_count.saturating_sub(summary.errors.len() as u64);
        if unlisted > 0 {
            errln!("  ... and {unlisted} more errors");
        }
    }
    if summary.error_count > 0 {
        return Err(Incomplete(format!("{} entries could not be restored", summary.error_count)).into());
    }
    Ok(())
}
