//! Retention: given a source's snapshots and keep rules, which snapshots to delete. Pure logic, no I/O.
//!
//! Rules follow restic and Kopia: `latest` keeps the N newest snapshots; each time-bucket rule (`hourly`,
//! `daily`, `weekly`, `monthly`, `annual`) keeps the newest snapshot of each of the N most recent buckets
//! that hold a snapshot. A snapshot kept by any rule is kept. With no rule set at all nothing is deleted,
//! so an empty policy can never wipe a source.

use chrono::{DateTime, Datelike, Utc};
use serde::{Deserialize, Serialize};

/// Maps a time to the number of its hour, day, ISO week, month or year.
type Bucket = fn(&DateTime<Utc>) -> i64;

/// How many snapshots to keep, per rule. `None` means the rule is not set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeepRules {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hourly: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daily: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weekly: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monthly: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annual: Option<u32>,
}

impl KeepRules {
    /// True when no rule is set (retention keeps everything).
    pub fn is_empty(&self) -> bool {
        self.latest.is_none() && self.rules().iter().all(|(_, n, _)| n.is_none())
    }

    /// The time-bucket rules: name, count, bucket.
    fn rules(&self) -> [(&'static str, Option<u32>, Bucket); 5] {
        [
            ("hourly", self.hourly, |t| t.timestamp().div_euclid(3600)),
            ("daily", self.daily, |t| i64::from(t.num_days_from_ce())),
            ("weekly", self.weekly, |t| {
                let w = t.iso_week();
                i64::from(w.year()) * 100 + i64::from(w.week())
            }),
            ("monthly", self.monthly, |t| i64::from(t.year()) * 12 + i64::from(t.month0())),
            ("annual", self.annual, |t| i64::from(t.year())),
        ]
    }
}

/// For each of `times` (the start times of one source's snapshots, in any order), the names of the rules
/// that keep it; an empty list means the snapshot expires. Ties are broken by position, the later entry
/// counting as newer. With no rule set every list is empty: callers decide what an empty policy means.
pub fn keep_reasons(times: &[DateTime<Utc>], rules: &KeepRules) -> Vec<Vec<&'static str>> {
    let mut order: Vec<usize> = (0..times.len()).collect();
    order.sort_by(|&a, &b| times[b].cmp(&times[a]).then(b.cmp(&a)));
    let mut reasons = vec![Vec::new(); times.len()];
    if let Some(n) = rules.latest {
        for &i in order.iter().take(n as usize) {
            reasons[i].push("latest");
        }
    }
    for (name, count, bucket) in rules.rules() {
        let Some(count) = count else { continue };
        let mut seen: Option<i64> = None;
        let mut buckets = 0;
        for &i in &order {
            if buckets >= count {
                break;
            }
            let b = bucket(&times[i]);
            if seen != Some(b) {
                seen = Some(b);
                buckets += 1;
                reasons[i].push(name);
            }
        }
    }
    reasons
}

/// The indexes (into `times`) of snapshots the rules do not keep, oldest first. With no rule set nothing
/// expires.
pub fn select_expired(times: &[DateTime<Utc>], rules: &KeepRules) -> Vec<usize> {
    if rules.is_empty() {
        return Vec::new();
    }
    let reasons = keep_reasons(times, rules);
    let mut expired: Vec<usize> = (0..times.len()).filter(|&i| reasons[i].is_empty()).collect();
    expired.sort_by_key(|&i| times[i]);
    expired
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};

    use super::*;

    fn at(day: u32, hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, day, hour, 0, 0).single().expect("valid time")
    }

    #[test]
    fn no_rules_keep_everything() {
        let times = vec![at(1, 0), at(2, 0)];
        assert!(select_expired(&times, &KeepRules::default()).is_empty());
    }

    #[test]
    fn latest_keeps_the_newest_in_any_input_order() {
        let times = vec![at(3, 0), at(1, 0), at(4, 0), at(2, 0)];
        let rules = KeepRules { latest: Some(2), ..Default::default() };
        assert_eq!(select_expired(&times, &rules), vec![1, 3], "the two oldest go, oldest first");
        let rules = KeepRules { latest: Some(0), ..Default::default() };
        assert_eq!(select_expired(&times, &rules).len(), 4);
        let rules = KeepRules { latest: Some(10), ..Default::default() };
        assert!(select_expired(&times, &rules).is_empty());
    }

    #[test]
    fn daily_keeps_the_newest_of_each_recent_day() {
        // Three snapshots a day over four days.
        let times: Vec<_> = (1..=4).flat_map(|d| [at(d, 1), at(d, 9), at(d, 17)]).collect();
        let rules = KeepRules { daily: Some(2), ..Default::default() };
        let expired = select_expired(&times, &rules);
        let kept: Vec<_> = (0..times.len()).filter(|i| !expired.contains(i)).map(|i| times[i]).collect();
        assert_eq!(kept, vec![at(3, 17), at(4, 17)]);
    }

    #[test]
    fn rules_combine_as_a_union() {
        let times: Vec<_> = (1..=10).map(|d| at(d, 12)).collect();
        let rules = KeepRules { latest: Some(1), weekly: Some(2), ..Default::default() };
        let expired = select_expired(&times, &rules);
        let kept: Vec<_> = (0..times.len()).filter(|i| !expired.contains(i)).map(|i| times[i]).collect();
        // 2026-03-10 is a Tuesday: week 11 holds the 9th and 10th, week 10 ends on Sunday the 8th.
        assert_eq!(kept, vec![at(8, 12), at(10, 12)]);
    }

    #[test]
    fn equal_times_are_ordered_by_position() {
        let t = at(1, 0);
        let times = vec![t, t, t + Duration::seconds(0)];
        let rules = KeepRules { latest: Some(1), ..Default::default() };
        assert_eq!(select_expired(&times, &rules), vec![0, 1]);
    }

    #[test]
    fn hourly_and_annual_buckets() {
        let times = vec![at(1, 0), at(1, 0) + Duration::minutes(30), at(1, 1), at(1, 2)];
        let rules = KeepRules { hourly: Some(2), ..Default::default() };
        assert_eq!(select_expired(&times, &rules), vec![0, 1]);
        let rules = KeepRules { annual: Some(5), ..Default::default() };
        assert_eq!(select_expired(&times, &rules), vec![0, 1, 2]);
    }
}
