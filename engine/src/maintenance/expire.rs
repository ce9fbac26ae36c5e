//! Retention: which snapshots a policy keeps. Per source (`user@host:path`), newest first: the latest N,
//! and for each period (hour, day, week, month, year) the newest snapshot of each of the N most recent
//! periods that have one. A snapshot kept by any rule is kept; the rest are expired (their records
//! deleted; full maintenance reclaims the data).

use std::collections::BTreeMap;

use chrono::Datelike;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::ids::SnapshotId;
use crate::snapshot::Snapshot;

/// How many of each to keep (`None`: that rule is off).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RetentionPolicy {
    pub latest: Option<u32>,
    pub hourly: Option<u32>,
    pub daily: Option<u32>,
    pub weekly: Option<u32>,
    pub monthly: Option<u32>,
    pub annual: Option<u32>,
}

/// One snapshot's fate and the rules that kept it.
#[derive(Clone, Debug, Serialize)]
pub struct Decision {
    pub id: SnapshotId,
    pub keep: bool,
    pub reasons: Vec<&'static str>,
}

/// A rule: its name, how many to keep, and the period a snapshot falls in.
type Rule = (&'static str, Option<u32>, fn(&Snapshot) -> i64);

impl RetentionPolicy {
    fn rules(&self) -> [Rule; 6] {
        fn t(s: &Snapshot) -> chrono::DateTime<chrono::Utc> {
            s.start_time
        }
        [
            ("latest", self.latest, |s| -t(s).timestamp_nanos_opt().unwrap_or(0)),
            ("hourly", self.hourly, |s| t(s).timestamp().div_euclid(3600)),
            ("daily", self.daily, |s| t(s).num_days_from_ce() as i64),
            ("weekly", self.weekly, |s| {
                let w = t(s).iso_week();
                w.year() as i64 * 100 + w.week() as i64
            }),
            ("monthly", self.monthly, |s| t(s).year() as i64 * 12 + t(s).month0() as i64),
            ("annual", self.annual, |s| t(s).year() as i64),
        ]
    }

    /// Decides for every snapshot given (any sources). Refuses an empty policy, which would expire
    /// everything.
    pub fn apply(&self, snapshots: &[Snapshot]) -> Result<Vec<Decision>> {
        if self.rules().iter().all(|(_, n, _)| n.is_none()) {
            return Err(Error::InvalidArgument("give at least one --keep-* rule".into()));
        }
        let mut by_source: BTreeMap<_, Vec<&Snapshot>> = BTreeMap::new();
        for s in snapshots {
            by_source.entry(&s.source).or_default().push(s);
        }
        let mut out = Vec::new();
        for (_, mut snaps) in by_source {
            snaps.sort_by_key(|s| std::cmp::Reverse((s.start_time, s.id)));
            let mut decisions: Vec<Decision> =
                snaps.iter().map(|s| Decision { id: s.id, keep: false, reasons: Vec::new() }).collect();
            for (name, count, bucket) in self.rules() {
                let Some(count) = count else { continue };
                let mut left = count;
                let mut last = None;
                for (i, s) in snaps.iter().enumerate() {
                    if left == 0 {
                        break;
                    }
                    let b = bucket(s);
                    if last != Some(b) {
                        last = Some(b);
                        left -= 1;
                        decisions[i].keep = true;
                        decisions[i].reasons.push(name);
                    }
                }
            }
            out.extend(decisions);
        }
        Ok(out)
    }
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
        let policy = RetentionPolicy { latest: Some(2), daily: Some(3), ..Default::default() };
        let decisions = policy.apply(&snaps).unwrap();
        let kept: Vec<i64> = decisions
            .iter()
            .filter(|d| d.keep)
            .map(|d| snaps.iter().find(|s| s.id == d.id).unwrap().start_time.timestamp() - base)
            .collect();
        // Latest two of day 4, and the newest of days 4, 3, 2.
        assert_eq!(kept, vec![4 * DAY + 7200, 4 * DAY + 3600, 3 * DAY + 7200, 2 * DAY + 7200]);
        assert!(RetentionPolicy::default().apply(&snaps).is_err());
    }
}
