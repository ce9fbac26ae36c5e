//! Snapshot policies per source: how often the UI server snapshots a folder and which snapshots it keeps.
//! A policy is a sealed record (see [`crate::records`]) of kind `Policy` whose key is the source as
//! `user@host:path`, so every client of the repository sees the same policies.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::records::RecordKind;
use crate::repository::Repository;
use crate::retention::KeepRules;
use crate::snapshot::Source;

/// One source's policy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Policy {
    /// Seconds between scheduled snapshots; `None` means snapshots are only taken by hand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_interval_seconds: Option<u64>,
    /// Which snapshots retention keeps.
    #[serde(default)]
    pub keep: KeepRules,
}

/// Parses a duration such as `90s`, `15m`, `1h`, `2d` or `1h30m` (a bare number is seconds).
pub fn parse_duration(text: &str) -> Result<u64> {
    let bad = || Error::InvalidArgument(format!("invalid duration {text:?}: expected e.g. 30s, 15m, 1h, 1d, 1h30m"));
    let text = text.trim();
    if text.is_empty() {
        return Err(bad());
    }
    if let Ok(seconds) = text.parse::<u64>() {
        return Ok(seconds);
    }
    let mut total: u64 = 0;
    let mut number = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 7 * 86_400,
            _ => return Err(bad()),
        };
        let n: u64 = number.parse().map_err(|_| bad())?;
        total = n.checked_mul(unit).and_then(|v| total.checked_add(v)).ok_or_else(bad)?;
        number.clear();
    }
    if !number.is_empty() {
        return Err(bad());
    }
    Ok(total)
}

/// Formats seconds the way [`parse_duration`] reads them (`1h30m`, `45s`).
pub fn format_duration(seconds: u64) -> String {
    if seconds == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    let mut rest = seconds;
    for (unit, name) in [(86_400, 'd'), (3600, 'h'), (60, 'm'), (1, 's')] {
        if rest >= unit {
            out.push_str(&format!("{}{name}", rest / unit));
            rest %= unit;
        }
    }
    out
}

/// The record key of a source's policy.
pub fn policy_key(source: &Source) -> String {
    source.to_string()
}

/// Parses a record key back into a source (`user@host:path`; the path may itself contain `@` or `:`).
pub fn parse_source(key: &str) -> Option<Source> {
    let (user, rest) = key.split_once('@')?;
    let (host, path) = rest.split_once(':')?;
    if user.is_empty() || host.is_empty() || path.is_empty() {
        return None;
    }
    Some(Source { user_name: user.to_string(), host: host.to_string(), path: path.to_string() })
}

impl Repository {
    /// The policy of a source, if one was set.
    pub fn policy(&self, source: &Source) -> Result<Option<Policy>> {
        self.get_record(RecordKind::Policy, &policy_key(source))
    }

    /// Stores (or replaces) a source's policy.
    pub fn set_policy(&self, source: &Source, policy: &Policy) -> Result<()> {
        self.put_record(RecordKind::Policy, &policy_key(source), policy)
    }

    /// Removes a source's policy; false when it had none.
    pub fn delete_policy(&self, source: &Source) -> Result<bool> {
        self.delete_record(RecordKind::Policy, &policy_key(source))
    }

    /// Every policy with its source. Records whose key is not a source are reported as corrupt.
    pub fn policies(&self) -> Result<Vec<(Source, Policy)>> {
        self.list_records::<Policy>(RecordKind::Policy)?
            .into_iter()
            .map(|(key, policy)| {
                let source = parse_source(&key).ok_or_else(|| Error::corrupt(format!("policy {key}"), "bad source"))?;
                Ok((source, policy))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::format::CreateOptions;
    use crate::storage::MemoryStorage;

    #[test]
    fn durations_parse_and_format() {
        assert_eq!(parse_duration("90").unwrap(), 90);
        assert_eq!(parse_duration("2s").unwrap(), 2);
        assert_eq!(parse_duration("15m").unwrap(), 900);
        assert_eq!(parse_duration("1h30m").unwrap(), 5400);
        assert_eq!(parse_duration("1d").unwrap(), 86_400);
        for bad in ["", "h", "1x", "1h3", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be refused");
        }
        for s in [1, 59, 60, 3600, 5400, 90_061] {
            assert_eq!(parse_duration(&format_duration(s)).unwrap(), s);
        }
        assert_eq!(format_duration(5400), "1h30m");
    }

    #[test]
    fn sources_round_trip_through_keys() {
        let source = Source { user_name: "ann".into(), host: "box".into(), path: "/data/a:b@c".into() };
        assert_eq!(parse_source(&policy_key(&source)), Some(source));
        assert_eq!(parse_source("nohost"), None);
    }

    #[test]
    fn policies_are_stored_in_the_repository() {
        let repo =
            Repository::create(Arc::new(MemoryStorage::new()), b"pw", &CreateOptions::default()).expect("create");
        let source = Source { user_name: "ann".into(), host: "box".into(), path: "/data".into() };
        assert_eq!(repo.policy(&source).unwrap(), None);
        let policy = Policy {
            snapshot_interval_seconds: Some(3600),
            keep: KeepRules { latest: Some(3), daily: Some(7), ..Default::default() },
        };
        repo.set_policy(&source, &policy).unwrap();
        assert_eq!(repo.policy(&source).unwrap(), Some(policy.clone()));
        assert_eq!(repo.policies().unwrap(), vec![(source.clone(), policy)]);
        assert!(repo.delete_policy(&source).unwrap());
        assert!(repo.policies().unwrap().is_empty());
    }
}
