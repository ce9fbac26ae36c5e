//! When background work is due. Pure logic over policies, the times of past runs and the current time; the
//! UI server's loop asks it what to start and how long it may sleep.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Duration, Utc};

use crate::policy::Policy;
use crate::snapshot::Source;

/// When a source's next scheduled snapshot is due: `interval` after the later of its last snapshot and
/// its last attempt (so a failing source does not run in a loop), or now if it never ran. `None` when
/// the policy schedules nothing.
pub fn next_snapshot_time(
    policy: &Policy,
    last_snapshot: Option<DateTime<Utc>>,
    last_attempt: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let interval = policy.snapshot_interval_seconds.filter(|s| *s > 0)?;
    let interval = Duration::seconds(i64::try_from(interval).unwrap_or(i64::MAX / 1000).min(i64::MAX / 1000));
    match last_snapshot.max(last_attempt) {
        None => Some(now),
        Some(last) => Some(last.checked_add_signed(interval).unwrap_or(DateTime::<Utc>::MAX_UTC)),
    }
}

/// What the server should start now, and when to look again.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Sources whose snapshot is due and not already running, in a stable order.
    pub snapshots: Vec<Source>,
    /// Run quick maintenance now.
    pub maintenance: bool,
    /// The earliest future time something becomes due (`None`: nothing is scheduled).
    pub wake_at: Option<DateTime<Utc>>,
}

/// Everything the planner looks at.
pub struct State<'a> {
    pub policies: &'a [(Source, Policy)],
    /// Start time of each source's newest snapshot.
    pub last_snapshot: &'a HashMap<Source, DateTime<Utc>>,
    /// Start time of each source's newest attempt by this server (successful or not).
    pub last_attempt: &'a HashMap<Source, DateTime<Utc>>,
    /// Sources with a snapshot running now: never started twice.
    pub running: &'a HashSet<Source>,
    /// Seconds between quick maintenance runs (`None`: never).
    pub maintenance_interval: Option<u64>,
    pub last_maintenance: Option<DateTime<Utc>>,
    pub maintenance_running: bool,
}

/// Decides what is due at `now`.
pub fn plan(state: &State<'_>, now: DateTime<Utc>) -> Plan {
    let mut out = Plan::default();
    let wake = |t: DateTime<Utc>, out: &mut Plan| {
        if t > now {
            out.wake_at = Some(out.wake_at.map_or(t, |w| w.min(t)));
        }
    };
    let mut policies: Vec<&(Source, Policy)> = state.policies.iter().collect();
    policies.sort_by(|a, b| a.0.cmp(&b.0));
    for (source, policy) in policies {
        let Some(at) = next_snapshot_time(
            policy,
            state.last_snapshot.get(source).copied(),
            state.last_attempt.get(source).copied(),
            now,
        ) else {
            continue;
        };
        if at <= now {
            if !state.running.contains(source) {
                out.snapshots.push(source.clone());
            }
        } else {
            wake(at, &mut out);
        }
    }
    if let Some(interval) = state.maintenance_interval.filter(|s| *s > 0) {
        let at = state
            .last_maintenance
            .map_or(now, |t| t + Duration::seconds(i64::try_from(interval).unwrap_or(i64::MAX / 1000).min(1 << 40)));
        if at <= now {
            out.maintenance = !state.maintenance_running;
        } else {
            wake(at, &mut out);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn t(seconds: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + seconds, 0).single().expect("valid")
    }

    fn src(path: &str) -> Source {
        Source { user_name: "u".into(), host: "h".into(), path: path.into() }
    }

    fn every(seconds: u64) -> Policy {
        Policy { snapshot_interval_seconds: Some(seconds), ..Default::default() }
    }

    #[test]
    fn next_time_follows_the_later_of_snapshot_and_attempt() {
        assert_eq!(next_snapshot_time(&Policy::default(), None, None, t(0)), None);
        assert_eq!(next_snapshot_time(&every(60), None, None, t(5)), Some(t(5)));
        assert_eq!(next_snapshot_time(&every(60), Some(t(0)), None, t(5)), Some(t(60)));
        assert_eq!(next_snapshot_time(&every(60), Some(t(0)), Some(t(30)), t(5)), Some(t(90)));
        assert_eq!(next_snapshot_time(&every(u64::MAX), Some(t(0)), None, t(5)).map(|d| d > t(0)), Some(true));
    }

    #[test]
    fn plan_starts_due_sources_once_and_sleeps_until_the_next() {
        let policies = vec![(src("/b"), every(60)), (src("/a"), every(10)), (src("/c"), Policy::default())];
        let last: HashMap<_, _> = [(src("/a"), t(0)), (src("/b"), t(0))].into();
        fn state<'a>(
            policies: &'a [(Source, Policy)],
            last: &'a HashMap<Source, DateTime<Utc>>,
            running: &'a HashSet<Source>,
        ) -> State<'a> {
            State {
                policies,
                last_snapshot: last,
                last_attempt: last,
                running,
                maintenance_interval: None,
                last_maintenance: None,
                maintenance_running: false,
            }
        }
        let mut running = HashSet::new();
        let p = plan(&state(&policies, &last, &running), t(5));
        assert_eq!(p, Plan { snapshots: vec![], maintenance: false, wake_at: Some(t(10)) });
        let p = plan(&state(&policies, &last, &running), t(61));
        assert_eq!(p.snapshots, vec![src("/a"), src("/b")]);
        assert_eq!(p.wake_at, None);
        running.insert(src("/a"));
        let p = plan(&state(&policies, &last, &running), t(61));
        assert_eq!(p.snapshots, vec![src("/b")], "a running source is not started again");
    }

    #[test]
    fn maintenance_runs_on_its_own_interval() {
        let none = HashMap::new();
        let running = HashSet::new();
        let state = |last, busy| State {
            policies: &[],
            last_snapshot: &none,
            last_attempt: &none,
            running: &running,
            maintenance_interval: Some(3600),
            last_maintenance: last,
            maintenance_running: busy,
        };
        assert!(plan(&state(None, false), t(0)).maintenance);
        assert!(!plan(&state(None, true), t(0)).maintenance);
        let p = plan(&state(Some(t(0)), false), t(100));
        assert!(!p.maintenance);
        assert_eq!(p.wake_at, Some(t(3600)));
    }
}
