//! Injected failures, for tests of everything above storage (retries, interrupted backups, error paths).
//!
//! A [`FaultStorage`] passes calls to its inner backend and fails the ones its rules pick: the Nth matching
//! call, the first N, or each with a probability drawn from a seeded generator (so a failing run can be
//! replayed). Rules can be narrowed to some operations and to names with a prefix. A failure is reported as
//! a transient or a permanent backend error, and may be injected after the operation took effect (the
//! request reached the store but its answer was lost).

use std::sync::atomic::{AtomicU64, Ordering};

use super::{BlobMeta, Properties, Storage, StorageError};

/// The operations of the storage contract; `Get` covers `get` and `get_range`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Put,
    Get,
    List,
    Delete,
    Stat,
}

impl Op {
    const ALL: [Op; 5] = [Op::Put, Op::Get, Op::List, Op::Delete, Op::Stat];

    fn index(self) -> usize {
        self as usize
    }

    fn name(self) -> &'static str {
        ["put", "get", "list", "delete", "stat"][self.index()]
    }
}

/// A backend that fails the calls its rules pick.
pub struct FaultStorage<S> {
    inner: S,
    ops: Vec<Op>,
    prefix: String,
    nth: Option<u64>,
    first: u64,
    random: Option<(u64, f64)>,
    transient: bool,
    after_applying: bool,
    matching: AtomicU64,
    calls: [AtomicU64; 5],
    failures: AtomicU64,
}

/// The error an injected fault reports.
#[derive(Debug, thiserror::Error)]
#[error("injected fault #{0}")]
pub struct InjectedFault(pub u64);

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

impl<S: Storage> FaultStorage<S> {
    /// A wrapper that fails nothing until rules are added.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            ops: Op::ALL.to_vec(),
            prefix: String::new(),
            nth: None,
            first: 0,
            random: None,
            transient: true,
            after_applying: false,
            matching: AtomicU64::new(0),
            calls: Default::default(),
            failures: AtomicU64::new(0),
        }
    }

    /// Only these operations can fail (default: all).
    pub fn ops(mut self, ops: &[Op]) -> Self {
        self.ops = ops.to_vec();
        self
    }

    /// Only names (or list prefixes) starting with `prefix` can fail.
    pub fn prefix(mut self, prefix: &str) -> Self {
        self.prefix = prefix.to_string();
        self
    }

    /// Fails the `n`th matching call (1-based).
    pub fn fail_nth(mut self, n: u64) -> Self {
        self.nth = Some(n);
        self
    }

    /// Fails the first `n` matching calls.
    pub fn fail_first(mut self, n: u64) -> Self {
        self.first = n;
        self
    }

    /// Fails each matching call with this probability, decided by a generator seeded with `seed` and the
    /// call's number, so the same sequence of calls fails the same way.
    pub fn fail_randomly(mut self, seed: u64, probability: f64) -> Self {
        self.random = Some((seed, probability));
        self
    }

    /// Whether injected errors are transient (default) or permanent.
    pub fn transient(mut self, transient: bool) -> Self {
        self.transient = transient;
        self
    }

    /// Puts and deletes take effect before the failure is reported.
    pub fn after_applying(mut self, yes: bool) -> Self {
        self.after_applying = yes;
        self
    }

    /// The wrapped backend.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Calls of `op` so far, failed or not, whatever the name.
    pub fn calls(&self, op: Op) -> u64 {
        self.calls[op.index()].load(Ordering::Relaxed)
    }

    /// Failures injected so far.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Counts the call and decides whether it fails.
    fn pick(&self, op: Op, name: &str) -> Option<StorageError> {
        self.calls[op.index()].fetch_add(1, Ordering::Relaxed);
        if !self.ops.contains(&op) || !name.starts_with(&self.prefix) {
            return None;
        }
        let n = self.matching.fetch_add(1, Ordering::Relaxed) + 1;
        let random = self.random.is_some_and(|(seed, p)| {
            let draw = splitmix64(seed ^ splitmix64(n)) >> 11;
            (draw as f64) / ((1u64 << 53) as f64) < p
        });
        if self.nth == Some(n) || n <= self.first || random {
            let count = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
            Some(StorageError::Backend {
                op: op.name(),
                name: name.to_string(),
                transient: self.transient,
                source: Box::new(InjectedFault(count)),
            })
        } else {
            None
        }
    }

    fn guard<T>(&self, op: Op, name: &str, f: impl FnOnce() -> Result<T, StorageError>) -> Result<T, StorageError> {
        match self.pick(op, name) {
            None => f(),
            Some(fault) if self.after_applying && matches!(op, Op::Put | Op::Delete) => {
                f()?;
                Err(fault)
            }
            Some(fault) => Err(fault),
        }
    }
}

impl<S: Storage> Storage for FaultStorage<S> {
    fn put(&self, name: &str, data: &[u8]) -> Result<(), StorageError> {
        self.guard(Op::Put, name, || self.inner.put(name, data))
    }

    fn get(&self, name: &str) -> Result<Vec<u8>, StorageError> {
        self.guard(Op::Get, name, || self.inner.get(name))
    }

    fn get_range(&self, name: &str, offset: u64, length: u64) -> Result<Vec<u8>, StorageError> {
        self.guard(Op::Get, name, || self.inner.get_range(name, offset, length))
    }

    fn list(&self, prefix: &str) -> Result<Vec<BlobMeta>, StorageError> {
        self.guard(Op::List, prefix, || self.inner.list(prefix))
    }

    fn delete(&self, name: &str) -> Result<(), StorageError> {
        self.guard(Op::Delete, name, || self.inner.delete(name))
    }

    fn stat(&self, name: &str) -> Result<BlobMeta, StorageError> {
        self.guard(Op::Stat, name, || self.inner.stat(name))
    }

    fn describe(&self) -> String {
        format!("{} (with injected faults)", self.inner.describe())
    }

    fn properties(&self) -> Properties {
        self.inner.properties()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::MemoryStorage;

    fn outcomes(store: &FaultStorage<MemoryStorage>, names: &[&str]) -> Vec<bool> {
        names.iter().map(|n| store.put(n, b"x").is_ok()).collect()
    }

    #[test]
    fn fails_the_nth_put_only() {
        let store = FaultStorage::new(MemoryStorage::new()).ops(&[Op::Put]).fail_nth(3);
        assert_eq!(outcomes(&store, &["a1", "a2", "a3", "a4"]), [true, true, false, true]);
        assert!(store.get("a3").unwrap_err().is_not_found(), "the failed put stored nothing");
        assert_eq!(store.get("a4").unwrap(), b"x", "gets are not affected");
        assert_eq!((store.calls(Op::Put), store.failures()), (4, 1));
    }

    #[test]
    fn fails_only_names_with_the_prefix() {
        let store = FaultStorage::new(MemoryStorage::new()).prefix("p").fail_first(100).transient(false);
        assert_eq!(outcomes(&store, &["q1", "p1", "s1", "p2"]), [true, false, true, false]);
        let err = store.get("p1").unwrap_err();
        assert!(!err.is_transient() && !err.is_not_found(), "{err}");
        assert_eq!(store.list("q").unwrap().len(), 1);
        assert!(store.list("p").is_err());
    }

    #[test]
    fn random_failures_replay_with_the_same_seed() {
        let names: Vec<String> = (0..400).map(|i| format!("p{i}")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let run = |seed| outcomes(&FaultStorage::new(MemoryStorage::new()).fail_randomly(seed, 0.25), &names);
        let (a, b, c) = (run(7), run(7), run(8));
        assert_eq!(a, b);
        assert_ne!(a, c);
        let failed = a.iter().filter(|ok| !**ok).count();
        assert!((60..140).contains(&failed), "about a quarter failed: {failed}");
    }

    #[test]
    fn a_fault_after_applying_still_stores() {
        let store = FaultStorage::new(MemoryStorage::new()).ops(&[Op::Put]).fail_first(1).after_applying(true);
        assert!(store.put("pab", b"x").unwrap_err().is_transient());
        assert_eq!(store.get("pab").unwrap(), b"x");
    }
}
