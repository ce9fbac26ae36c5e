//! A fault-injecting decorator for tests: wraps any backend and makes chosen operations fail, at random
//! (from a seed, so a failing run can be replayed) or after a number of writes. A failed write either
//! stores nothing or — like a timeout after the server committed — stores the blob and still reports an
//! error, so callers must cope with both.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::{BlobMeta, Storage, StorageError};

/// Which faults to inject.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// Seed of the pseudo-random choices.
    pub seed: u64,
    /// Chance (0.0-1.0) that a `put` fails.
    pub put_failure_rate: f64,
    /// Chance that a `get`, `get_range` or `stat` fails.
    pub read_failure_rate: f64,
    /// Chance that a `delete` fails.
    pub delete_failure_rate: f64,
    /// Every `put` after this many successful ones fails (a full disk).
    pub fail_puts_after: Option<u64>,
    /// A failed `put` still stores the blob half of the time (the outcome was unknown to the caller).
    pub sometimes_stored_anyway: bool,
}

/// Wraps a backend and injects [`Faults`].
pub struct FaultyStorage {
    inner: Arc<dyn Storage>,
    faults: Faults,
    rng: Mutex<u64>,
    puts: AtomicU64,
    injected: AtomicU64,
}

impl FaultyStorage {
    pub fn new(inner: Arc<dyn Storage>, faults: Faults) -> Self {
        let rng = Mutex::new(faults.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        Self { inner, faults, rng, puts: AtomicU64::new(0), injected: AtomicU64::new(0) }
    }

    /// How many faults were injected so far.
    pub fn injected(&self) -> u64 {
        self.injected.load(Ordering::Relaxed)
    }

    /// A uniform number in [0, 1) (xorshift64).
    fn next(&self) -> f64 {
        let mut x = self.rng.lock().unwrap_or_else(|p| p.into_inner());
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        (*x >> 11) as f64 / (1u64 << 53) as f64
    }

    fn roll(&self, rate: f64) -> bool {
        rate > 0.0 && self.next() < rate
    }

    fn fault(&self, op: &'static str, name: &str) -> StorageError {
        self.injected.fetch_add(1, Ordering::Relaxed);
        StorageError::Io { op, name: name.to_string(), source: std::io::Error::other("injected fault") }
    }

    fn read_fault(&self, op: &'static str, name: &str) -> Result<(), StorageError> {
        if self.roll(self.faults.read_failure_rate) {
            return Err(self.fault(op, name));
        }
        Ok(())
    }
}

impl Storage for FaultyStorage {
    fn put(&self, name: &str, data: &[u8]) -> Result<(), StorageError> {
        let full = self.faults.fail_puts_after.is_some_and(|n| self.puts.load(Ordering::Relaxed) >= n);
        if full || self.roll(self.faults.put_failure_rate) {
            if self.faults.sometimes_stored_anyway && !full && self.roll(0.5) {
                self.inner.put(name, data)?;
            }
            return Err(self.fault("put", name));
        }
        self.inner.put(name, data)?;
        self.puts.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn get(&self, name: &str) -> Result<Vec<u8>, StorageError> {
        self.read_fault("get", name)?;
        self.inner.get(name)
    }

    fn get_range(&self, name: &str, offset: u64, length: u64) -> Result<Vec<u8>, StorageError> {
        self.read_fault("get_range", name)?;
        self.inner.get_range(name, offset, length)
    }

    fn list(&self, prefix: &str) -> Result<Vec<BlobMeta>, StorageError> {
        self.inner.list(prefix)
    }

    fn delete(&self, name: &str) -> Result<(), StorageError> {
        if self.roll(self.faults.delete_failure_rate) {
            return Err(self.fault("delete", name));
        }
        self.inner.delete(name)
    }

    fn stat(&self, name: &str) -> Result<BlobMeta, StorageError> {
        self.read_fault("stat", name)?;
        self.inner.stat(name)
    }

    fn describe(&self) -> String {
        format!("{} (with injected faults)", self.inner.describe())
    }
}
