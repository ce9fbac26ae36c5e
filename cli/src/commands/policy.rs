//! `cairn policy set|show|list|delete`: per-folder snapshot schedule and retention, stored in the
//! repository so the UI server (and every other client) sees them.

use anyhow::{bail, Result};
use cairn_engine::policy::{format_duration, parse_duration, Policy};
use cairn_engine::retention::KeepRules;

use super::{source_for, Context};
use crate::args::{PolicyCommand, PolicySetArgs};
use crate::output;

pub fn run(ctx: &Context, command: PolicyCommand) -> Result<()> {
    let (config, repo) = (ctx.load_config()?, ctx.open_direct()?);
    match command {
        PolicyCommand::Set(args) => {
            let source = source_for(&config, &args.path)?;
            let mut policy = repo.policy(&source)?.unwrap_or_default();
            apply(&mut policy, &args)?;
            repo.set_policy(&source, &policy)?;
            if args.json {
                return output::json(&serde_json::json!({"source": source, "policy": policy}));
            }
            errln!("Set policy of {source}: {}", describe(&policy));
        }
        PolicyCommand::Show { path, json } => {
            let source = source_for(&config, &path)?;
            let policy = repo.policy(&source)?;
            if json {
                return output::json(&serde_json::json!({"source": source, "policy": policy}));
            }
            match policy {
                Some(p) => outln!("{source}: {}", describe(&p)),
                None => outln!("{source}: no policy (snapshots by hand, all kept)"),
            }
        }
        PolicyCommand::List { json } => {
            let all = repo.policies()?;
            if json {
                let rows: Vec<_> = all.iter().map(|(s, p)| serde_json::json!({"source": s, "policy": p})).collect();
                return output::json(&rows);
            }
            for (source, policy) in all {
                outln!("{source}: {}", describe(&policy));
            }
        }
        PolicyCommand::Delete { path } => {
            let source = source_for(&config, &path)?;
            if !repo.delete_policy(&source)? {
                bail!("{source} has no policy");
            }
            errln!("Deleted the policy of {source}.");
        }
    }
    Ok(())
}

fn apply(policy: &mut Policy, args: &PolicySetArgs) -> Result<()> {
    if let Some(interval) = &args.snapshot_interval {
        let seconds = parse_duration(interval)?;
        if seconds == 0 {
            bail!("--snapshot-interval must be more than zero (use --manual to stop scheduled snapshots)");
        }
        policy.snapshot_interval_seconds = Some(seconds);
    }
    if args.manual {
        policy.snapshot_interval_seconds = None;
    }
    let keep = &mut policy.keep;
    let rules: [(&mut Option<u32>, Option<u32>); 6] = [
        (&mut keep.latest, args.keep.keep_latest),
        (&mut keep.hourly, args.keep.keep_hourly),
        (&mut keep.daily, args.keep.keep_daily),
        (&mut keep.weekly, args.keep.keep_weekly),
        (&mut keep.monthly, args.keep.keep_monthly),
        (&mut keep.annual, args.keep.keep_annual),
    ];
    for (slot, value) in rules {
        if value.is_some() {
            *slot = value;
        }
    }
    Ok(())
}

/// One line: schedule, then keep rules.
fn describe(policy: &Policy) -> String {
    let schedule = match policy.snapshot_interval_seconds {
        Some(s) => format!("snapshot every {}", format_duration(s)),
        None => "snapshots by hand".to_string(),
    };
    format!("{schedule}; {}", describe_keep(&policy.keep))
}

fn describe_keep(keep: &KeepRules) -> String {
    if keep.is_empty() {
        return "keep all snapshots".into();
    }
    let parts: Vec<String> = [
        ("latest", keep.latest),
        ("hourly", keep.hourly),
        ("daily", keep.daily),
        ("weekly", keep.weekly),
        ("monthly", keep.monthly),
        ("annual", keep.annual),
    ]
    .iter()
    .filter_map(|(name, n)| n.map(|n| format!("{name} {n}")))
    .collect();
    format!("keep {}", parts.join(", "))
}
