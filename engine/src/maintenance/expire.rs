//! `maintenance expire`: applies keep rules ([`crate::retention`]) to every source's snapshots and says,
//! for each snapshot, whether it stays and which rules keep it. The expired ones' records are deleted by
//! the caller; full maintenance reclaims their data.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::ids::SnapshotId;
use crate::retention::{keep_reasons, KeepRules};
use crate::snapshot::Snapshot;

/// One snapshot's fate and the rules that kept it.
#[derive(Clone, Debug, Serialize)]
pub struct Decision {
    pub id: SnapshotId,
    pub keep: bool,
    pub reasons: Vec<&'static str>,
}

/// Decides for every snapshot given (any sources), newest first within each source, with the rules of
/// [`crate::retention`]. Refuses an empty policy, which would expire everything.
pub fn decide(rules: &KeepRules, snapshots: &[Snapshot]) -> Result<Vec<Decision>> {
    if rules.is_empty() {
        return Err(Error::InvalidArgument("give at least one --keep-* rule".into()));
    }
    let mut by_source: BTreeMap<_, Vec<&Snapshot>> = BTreeMap::new();
    for s in snapshots {
        by_source.entry(&s.source).or_default().push(s);
    }
    let mut out = Vec::new();
    for (_, mut snaps) in by_source {
        // Oldest first, so that between equal times the larger id counts as newer.
        snaps.sort_by_key(|s| (s.start_time, s.id));
        let times: Vec<_> = snaps.iter().map(|s| s.start_time).collect();
        let reasons = keep_reasons(&times, rules);
        out.extend(snaps.iter().zip(reasons).rev().map(|(s, reasons)| Decision {
            id: s.id,
            keep: !reasons.is_empty(),
            reasons,
        }));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};

    use super::*;
    use crate::snapshot::{SnapshotStats, Source};

    fn snap(secs: i64) -> Snapshot {
        Snapshot {
            id: SnapshotId::random(),
            source: Source { host: "h".into(), user_name: "u".into(), path: "/p".into() },
            start_time: DateTime::<Utc>::from_timestamp(secs, 0).unwrap(),
            end_time: DateTime::<Utc>::from_timestamp(secs, 0).unwrap(),
            root: crate::ids::ContentId([0; 32]),
            tags: Default::default(),
            description: String::new(),
            parent: None,
            stats: SnapshotStats::default(),
            incomplete: false,
            error_messages: vec![],
            tenant: None,
        }
    }

    #[test]
    fn keeps_latest_and_one_per_day() {
        const DAY: i64 = 86_400;
        let base = 1_700_000_000 - 1_700_000_000 % DAY;
        // Three snapshots a day for five days, 1 h apart.
        let snaps: Vec<Snapshot> = (0..5).flat_map(|d| (0..3).map(move |h| snap(base + d * DAY + h * 3600))).collect();
        let rules = KeepRules { latest: Some(2), daily: Some(3), ..Default::default() };
        let decisions = decide(&rules, &snaps).unwrap();
        let kept: Vec<i64> = decisions
            .iter()
            .filter(|d| d.keep)
            .map(|d| snaps.iter().find(|s| s.id == d.id).unwrap().start_time.timestamp() - base)
            .collect();
        // Latest two of day 4, and the newest of days 4, 3, 2.
        assert_eq!(kept, vec![4 * DAY + 7200, 4 * DAY + 3600, 3 * DAY + 7200, 2 * DAY + 7200]);
        assert!(decide(&KeepRules::default(), &snaps).is_err());
        let latest = decisions.iter().find(|d| d.keep).unwrap();
        assert_eq!(latest.reasons, vec!["latest", "daily"]);
    }
}
