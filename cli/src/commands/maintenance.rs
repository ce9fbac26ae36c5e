//! `cairn maintenance run` and `cairn snapshot expire`.

use cairn_engine::Access;
use std::time::Duration;

use anyhow::{bail, Result};
use cairn_engine::maintenance::expire;
use cairn_engine::maintenance::{run_maintenance, Safety, DEFAULT_MARGIN};
use cairn_engine::retention::KeepRules;

use super::Context;
use crate::args::{ExpireArgs, MaintenanceRunArgs};
use crate::output;

fn safety(args: &MaintenanceRunArgs) -> Result<Safety> {
    if let Some(secs) = args.safety_margin {
        return Ok(Safety::Margin(Duration::from_secs(secs)));
    }
    match args.safety.as_str() {
        "full" => Ok(Safety::Margin(DEFAULT_MARGIN)),
        "none" => Ok(Safety::None),
        other => bail!("--safety must be full or none, not {other:?}"),
    }
}

pub fn run(ctx: &Context, args: MaintenanceRunArgs) -> Result<()> {
    let safety = safety(&args)?;
    let repo = ctx.open_direct()?;
    let report = run_maintenance(&repo, args.full, safety)?;
    if args.json {
        return output::json(&report);
    }
    errln!("Index blobs: {} -> {}", report.index_blobs_before, report.index_blobs_after);
    if args.full {
        errln!(
            "Packs: {} retired, {} rewritten ({} blobs copied), {} deleted, {} back in use, {} re-indexed, {} orphans deleted; {} freed; {} live backup sessions",
            report.packs_retired,
            report.packs_rewritten,
            report.blobs_copied,
            report.packs_deleted,
            report.packs_revived,
            report.packs_reindexed,
            report.orphans_deleted,
            output::bytes(report.bytes_freed),
            report.sessions_live
        );
    }
    Ok(())
}

pub fn expire(ctx: &Context, args: ExpireArgs) -> Result<()> {
    let rules = KeepRules {
        latest: args.keep.keep_latest,
        hourly: args.keep.keep_hourly,
        daily: args.keep.keep_daily,
        weekly: args.keep.keep_weekly,
        monthly: args.keep.keep_monthly,
        annual: args.keep.keep_annual,
    };
    let repo = ctx.open_direct()?;
    let snapshots = repo.list_snapshots()?;
    let decisions = expire::decide(&rules, &snapshots)?;
    for d in &decisions {
        if !d.keep && !args.dry_run {
            repo.delete_snapshot(&d.id)?;
        }
    }
    if args.json {
        return output::json(&decisions);
    }
    for d in &decisions {
        let verb = match (d.keep, args.dry_run) {
            (true, _) => format!("keep ({})", d.reasons.join(", ")),
            (false, true) => "would delete".to_string(),
            (false, false) => "deleted".to_string(),
        };
        errln!("{} {verb}", d.id);
    }
    Ok(())
}
