//! `cairn snapshot create|list|delete`.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{anyhow, bail, Result};
use cairn_engine::backup::{run_backup, BackupOptions, Progress};
use cairn_engine::snapshot::MAX_LABEL_BYTES;

use super::{find_snapshot, snapshot_json, source_for, Context, Incomplete};
use crate::args::{SnapshotCommand, SnapshotCreateArgs};
use crate::output;
use crate::progress::Display;

pub fn run(ctx: &Context, command: SnapshotCommand) -> Result<()> {
    match command {
        SnapshotCommand::Create(args) => create(ctx, args),
        SnapshotCommand::List { path, all, json } => list(ctx, path, all, json),
        SnapshotCommand::Delete { ids, json } => delete(ctx, ids, json),
        SnapshotCommand::Verify { ids, verify_files_percent, parallel, json } => {
            super::integrity::verify(ctx, ids, verify_files_percent, parallel, json)
        }
        SnapshotCommand::Expire(args) => super::maintenance::expire(ctx, args),
    }
}

fn parse_tags(tags: &[String]) -> Result<BTreeMap<String, String>> {
    tags.iter()
        .map(|t| match t.split_once(':') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(anyhow!("tag {t:?} is not of the form key:value")),
        })
        .collect()
}

fn create(ctx: &Context, args: SnapshotCreateArgs) -> Result<()> {
    let tags = parse_tags(&args.tags)?;
    let labels = args.description.len() + tags.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
    if labels > MAX_LABEL_BYTES {
        bail!("--description and --tags hold {labels} bytes; a snapshot takes at most {MAX_LABEL_BYTES}");
    }
    if args.max_buffer_mib < 16 {
        bail!("--max-buffer-mib must be at least 16");
    }
    let (config, repo) = ctx.open()?;
    let mut results = Vec::new();
    let mut incomplete = Vec::new();
    for path in &args.paths {
        let source = source_for(&config, path)?;
        let parent = if args.force_hash { None } else { repo.latest_snapshot(&source)? };
        if !args.json {
            errln!("Snapshotting {source} ...");
        }
        let mut options = BackupOptions::new(path.clone(), source.clone());
        options.tags = tags.clone();
        options.description = args.description.clone();
        options.parent = parent;
        options.memory_budget = args.max_buffer_mib << 20;
        if let Some(n) = args.parallel {
            options.workers = n.max(1);
        }
        let budget = options.memory_budget;
        let progress = Arc::new(Progress::default());
        let display = Display::backup(progress.clone(), !args.json);
        let outcome = run_backup(repo.as_ref(), options, progress);
        drop(display);
        let outcome = outcome?;
        let snap = &outcome.snapshot;
        let s = &snap.stats;
        let secs = outcome.stages.wall_seconds;
        if args.json {
            let mut value = snapshot_json(snap);
            if let Some(obj) = value.as_object_mut() {
                obj.insert("durationSeconds".into(), secs.into());
                obj.insert("memoryBudgetBytes".into(), budget.into());
                if args.stats {
                    obj.insert("stages".into(), serde_json::to_value(&outcome.stages)?);
                }
            }
            results.push(value);
        } else {
            errln!("Created snapshot with root {} and ID {} in {:.1}s", snap.root, snap.id, secs);
            errln!(
                "  {} files, {} folders, {} ({} read, {} new, {} stored after compression), {} files unchanged",
                s.files,
                s.dirs,
                output::bytes(s.bytes),
                output::bytes(s.bytes_read),
                output::bytes(s.bytes_new),
                output::bytes(s.bytes_stored),
                s.files_unchanged
            );
            let dedup = if s.bytes_read > 0 { 100.0 * (1.0 - s.bytes_new as f64 / s.bytes_read as f64) } else { 100.0 };
            errln!(
                "  {:.1}% of the bytes read were already in the repository; {} over {}",
                dedup,
                output::rate(s.bytes_read, secs),
                output::bytes(s.bytes)
            );
            if args.stats {
                let st = &outcome.stages;
                errln!(
                    "  stages (busy seconds): scan {:.2} read {:.2} chunk {:.2} hash {:.2} compress {:.2} encrypt {:.2} pack {:.2} upload {:.2} trees {:.2}; waits: scan blocked {:.2} readers {:.2} workers idle {:.2} claims {:.2} blocked {:.2} uploaders idle {:.2}; busiest: {}; buffer limit {}",
                    st.scan_seconds, st.read_seconds, st.chunk_seconds, st.hash_seconds, st.compress_seconds, st.encrypt_seconds,
                    st.pack_seconds, st.upload_seconds, st.trees_seconds, st.scan_blocked_seconds, st.reader_wait_seconds,
                    st.worker_idle_seconds, st.claim_wait_seconds, st.worker_blocked_seconds, st.upload_idle_seconds, st.busiest_stage,
                    output::bytes(budget as u64)
                );
            }
        }
        if snap.incomplete {
            for e in &snap.error_messages {
                errln!("  error: {e}");
            }
            incomplete.push(format!("{} ({} entries could not be read)", snap.id, s.errors));
        }
    }
    if args.json {
        if results.len() == 1 {
            output::json(&results[0])?;
        } else {
            output::json(&results)?;
        }
    }
    if !incomplete.is_empty() {
        return Err(Incomplete(format!("snapshot incomplete: {}", incomplete.join(", "))).into());
    }
    Ok(())
}

fn list(ctx: &Context, path: Option<std::path::PathBuf>, all: bool, json: bool) -> Result<()> {
    let (config, repo) = ctx.open()?;
    let filter = path.as_ref().map(|p| source_for(&config, p)).transpose()?;
    let (user, host) = (config.username(), config.hostname());
    let snaps: Vec<_> = repo
        .list_snapshots()?
        .into_iter()
        .filter(|s| match &filter {
            Some(source) => &s.source == source,
            None => all || (s.source.user_name == user && s.source.host == host),
        })
        .collect();
    if json {
        return output::json(&snaps.iter().map(snapshot_json).collect::<Vec<_>>());
    }
    let mut by_source: BTreeMap<String, Vec<_>> = BTreeMap::new();
    for s in &snaps {
        by_source.entry(s.source.to_string()).or_default().push(s);
    }
    for (source, snaps) in by_source {
        outln!("{source}");
        for s in snaps {
            let tags: Vec<String> = s.tags.iter().map(|(k, v)| format!("{k}:{v}")).collect();
            outln!(
                "  {} {} {:>10}  files:{} dirs:{}{}{}",
                s.start_time.format("%Y-%m-%d %H:%M:%S UTC"),
                s.id,
                output::bytes(s.stats.bytes),
                s.stats.files,
                s.stats.dirs,
                if tags.is_empty() { String::new() } else { format!(" {}", tags.join(" ")) },
                if s.incomplete { " (incomplete)" } else { "" }
            );
        }
    }
    Ok(())
}

fn delete(ctx: &Context, ids: Vec<String>, json: bool) -> Result<()> {
    let (config, repo) = ctx.open()?;
    let mut deleted = Vec::new();
    for id in ids {
        let snap = find_snapshot(repo.as_ref(), &config, &id)?;
        repo.delete_snapshot(&snap.id)?;
        if !json {
            errln!("Deleted snapshot {} of {} at {}", snap.id, snap.source, snap.start_time.to_rfc3339());
        }
        deleted.push(snap.id.to_hex());
    }
    if json {
        output::json(&serde_json::json!({ "deleted": deleted }))?;
    }
    Ok(())
}
