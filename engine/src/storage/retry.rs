//! Retrying transient storage errors with exponential backoff and jitter.
//!
//! Only errors the backend marks transient ([`StorageError::is_transient`]: throttling, server errors,
//! dropped connections) are retried; a missing blob, a bad name or a refused credential fails at once. Every
//! operation of the contract is safe to repeat: `put` writes the same bytes under the same name, `delete` is
//! idempotent, and reads have no effect.

use std::time::Duration;

use super::{BlobMeta, Properties, Storage, StorageError};

/// When to try again.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    /// Attempts in all, the first included (at least 1).
    pub attempts: u32,
    /// The wait before the second attempt; each later wait doubles, up to `max_delay`.
    pub first_delay: Duration,
    pub max_delay: Duration,
}

impl Default for Backoff {
    /// Six attempts over about 15 seconds: long enough to ride out S3's `SlowDown` and a restarting server.
    fn default() -> Self {
        Backoff { attempts: 6, first_delay: Duration::from_millis(500), max_delay: Duration::from_secs(8) }
    }
}

impl Backoff {
    /// The wait after failed attempt `n` (1-based): the doubled delay, scaled by a random factor in [0.5, 1)
    /// so that many clients throttled together do not retry in step.
    pub fn delay(&self, n: u32) -> Duration {
        let doubled = self.first_delay.saturating_mul(1u32 << n.saturating_sub(1).min(20)).min(self.max_delay);
        let jitter = u16::from_le_bytes(crate::crypto::random_bytes::<2>()) as f64 / 65536.0;
        doubled.mul_f64(0.5 + jitter / 2.0)
    }
}

/// A backend whose transient failures are retried.
pub struct RetryStorage<S> {
    inner: S,
    backoff: Backoff,
}

impl<S: Storage> RetryStorage<S> {
    pub fn new(inner: S, backoff: Backoff) -> Self {
        Self { inner, backoff }
    }

    /// The wrapped backend.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    fn retry<T>(&self, op: &str, name: &str, f: impl Fn() -> Result<T, StorageError>) -> Result<T, StorageError> {
        let mut attempt = 1;
        loop {
            match f() {
                Err(e) if e.is_transient() && attempt < self.backoff.attempts => {
                    let wait = self.backoff.delay(attempt);
                    tracing::info!("storage {op} {name} failed (attempt {attempt}), retrying in {wait:?}: {e}");
                    std::thread::sleep(wait);
                    attempt += 1;
                }
                result => return result,
            }
        }
    }
}

impl<S: Storage> Storage for RetryStorage<S> {
    fn put(&self, name: &str, data: &[u8]) -> Result<(), StorageError> {
        self.retry("put", name, || self.inner.put(name, data))
    }

    fn get(&self, name: &str) -> Result<Vec<u8>, StorageError> {
        self.retry("get", name, || self.inner.get(name))
    }

    fn get_range(&self, name: &str, offset: u64, length: u64) -> Result<Vec<u8>, StorageError> {
        self.retry("get", name, || self.inner.get_range(name, offset, length))
    }

    fn list(&self, prefix: &str) -> Result<Vec<BlobMeta>, StorageError> {
        self.retry("list", prefix, || self.inner.list(prefix))
    }

    fn delete(&self, name: &str) -> Result<(), StorageError> {
        self.retry("delete", name, || self.inner.delete(name))
    }

    fn stat(&self, name: &str) -> Result<BlobMeta, StorageError> {
        self.retry("stat", name, || self.inner.stat(name))
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn properties(&self) -> Properties {
        self.inner.properties()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{FaultStorage, MemoryStorage, Op};

    fn quick(attempts: u32) -> Backoff {
        Backoff { attempts, first_delay: Duration::from_millis(1), max_delay: Duration::from_millis(4) }
    }

    #[test]
    fn transient_failures_are_retried_until_success() {
        let faulty = FaultStorage::new(MemoryStorage::new()).ops(&[Op::Put]).fail_first(3).transient(true);
        let store = RetryStorage::new(faulty, quick(4));
        store.put("pab", b"data").unwrap();
        assert_eq!(store.inner.calls(Op::Put), 4, "three failures, then the write");
        assert_eq!(store.get("pab").unwrap(), b"data");
    }

    #[test]
    fn gives_up_after_the_last_attempt() {
        let faulty = FaultStorage::new(MemoryStorage::new()).ops(&[Op::Get]).fail_first(10).transient(true);
        faulty.inner().put("pab", b"data").unwrap();
        let store = RetryStorage::new(faulty, quick(3));
        let err = store.get("pab").unwrap_err();
        assert!(err.is_transient(), "{err}");
        assert_eq!(store.inner.calls(Op::Get), 3);
    }

    #[test]
    fn permanent_errors_and_not_found_are_not_retried() {
        let faulty = FaultStorage::new(MemoryStorage::new()).ops(&[Op::Put]).fail_first(1).transient(false);
        let store = RetryStorage::new(faulty, quick(5));
        assert!(!store.put("pab", b"x").unwrap_err().is_transient());
        assert_eq!(store.inner.calls(Op::Put), 1);
        assert!(store.get("pcd").unwrap_err().is_not_found());
        assert_eq!(store.inner.calls(Op::Get), 1);
    }

    #[test]
    fn a_put_that_failed_after_storing_is_safely_repeated() {
        // The request reached the store but the answer was lost: the retry writes the same bytes again.
        let faulty =
            FaultStorage::new(MemoryStorage::new()).ops(&[Op::Put]).fail_first(1).after_applying(true).transient(true);
        let store = RetryStorage::new(faulty, quick(3));
        store.put("pab", b"data").unwrap();
        assert_eq!(store.list("p").unwrap().len(), 1);
        assert_eq!(store.get("pab").unwrap(), b"data");
    }

    #[test]
    fn delays_double_up_to_the_cap() {
        let b =
            Backoff { attempts: 10, first_delay: Duration::from_millis(100), max_delay: Duration::from_millis(800) };
        for (n, full) in [(1, 100), (2, 200), (3, 400), (4, 800), (9, 800)] {
            let d = b.delay(n).as_millis();
            assert!(d >= full / 2 && d < full, "attempt {n}: {d} ms");
        }
    }
}
