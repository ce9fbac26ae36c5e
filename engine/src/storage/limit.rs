//! A bound on storage operations in flight.
//!
//! The engine calls storage from many threads (uploaders, restore workers, index loading). A remote store
//! serves a limited number of connections well, and beyond that extra requests only queue on the network or
//! get throttled; the limit comes from the backend's [`Properties::max_concurrency`]. Callers over the limit
//! wait their turn (fairness is the OS's); nothing is refused.

use std::sync::{Condvar, Mutex, PoisonError};

use super::{BlobMeta, Properties, Storage, StorageError};

/// A counting semaphore: at most `limit` permits out at once.
struct Semaphore {
    in_use: Mutex<usize>,
    freed: Condvar,
    limit: usize,
}

struct Permit<'a>(&'a Semaphore);

impl Semaphore {
    fn acquire(&self) -> Permit<'_> {
        // The counter is only ever incremented or decremented whole, so a poisoned lock still holds a
        // consistent value.
        let mut in_use = self.in_use.lock().unwrap_or_else(PoisonError::into_inner);
        while *in_use >= self.limit {
            in_use = self.freed.wait(in_use).unwrap_or_else(PoisonError::into_inner);
        }
        *in_use += 1;
        Permit(self)
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        let mut in_use = self.0.in_use.lock().unwrap_or_else(PoisonError::into_inner);
        *in_use -= 1;
        self.0.freed.notify_one();
    }
}

/// A backend with at most a fixed number of operations running at once.
pub struct LimitStorage<S> {
    inner: S,
    permits: Semaphore,
}

impl<S: Storage> LimitStorage<S> {
    /// Limits to the inner backend's own `max_concurrency`.
    pub fn new(inner: S) -> Self {
        let limit = inner.properties().max_concurrency;
        Self::with_limit(inner, limit)
    }

    /// Limits to `limit` operations (at least one).
    pub fn with_limit(inner: S, limit: usize) -> Self {
        let permits = Semaphore { in_use: Mutex::new(0), freed: Condvar::new(), limit: limit.max(1) };
        Self { inner, permits }
    }
}

impl<S: Storage> Storage for LimitStorage<S> {
    fn put(&self, name: &str, data: &[u8]) -> Result<(), StorageError> {
        let _permit = self.permits.acquire();
        self.inner.put(name, data)
    }

    fn get(&self, name: &str) -> Result<Vec<u8>, StorageError> {
        let _permit = self.permits.acquire();
        self.inner.get(name)
    }

    fn get_range(&self, name: &str, offset: u64, length: u64) -> Result<Vec<u8>, StorageError> {
        let _permit = self.permits.acquire();
        self.inner.get_range(name, offset, length)
    }

    fn list(&self, prefix: &str) -> Result<Vec<BlobMeta>, StorageError> {
        let _permit = self.permits.acquire();
        self.inner.list(prefix)
    }

    fn delete(&self, name: &str) -> Result<(), StorageError> {
        let _permit = self.permits.acquire();
        self.inner.delete(name)
    }

    fn stat(&self, name: &str) -> Result<BlobMeta, StorageError> {
        let _permit = self.permits.acquire();
        self.inner.stat(name)
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn properties(&self) -> Properties {
        let mut properties = self.inner.properties();
        properties.max_concurrency = self.permits.limit;
        properties
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;
    use crate::storage::MemoryStorage;

    /// Records the most calls ever inside it at once; each put lingers a little so calls overlap.
    #[derive(Default)]
    struct Gauge {
        store: MemoryStorage,
        now: AtomicUsize,
        peak: AtomicUsize,
    }

    impl Storage for Gauge {
        fn put(&self, name: &str, data: &[u8]) -> Result<(), StorageError> {
            let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
            self.peak.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(5));
            let result = self.store.put(name, data);
            self.now.fetch_sub(1, Ordering::SeqCst);
            result
        }
        fn get(&self, name: &str) -> Result<Vec<u8>, StorageError> {
            self.store.get(name)
        }
        fn get_range(&self, name: &str, offset: u64, length: u64) -> Result<Vec<u8>, StorageError> {
            self.store.get_range(name, offset, length)
        }
        fn list(&self, prefix: &str) -> Result<Vec<BlobMeta>, StorageError> {
            self.store.list(prefix)
        }
        fn delete(&self, name: &str) -> Result<(), StorageError> {
            self.store.delete(name)
        }
        fn stat(&self, name: &str) -> Result<BlobMeta, StorageError> {
            self.store.stat(name)
        }
        fn describe(&self) -> String {
            "gauge".into()
        }
        fn properties(&self) -> Properties {
            Properties { max_concurrency: 3 }
        }
    }

    fn hammer(store: &impl Storage) {
        std::thread::scope(|scope| {
            for t in 0..12 {
                scope.spawn(move || {
                    for i in 0..6 {
                        store.put(&format!("p{t}-{i}"), b"x").unwrap();
                    }
                });
            }
        });
    }

    #[test]
    fn never_exceeds_the_backends_limit() {
        let store = LimitStorage::new(Gauge::default());
        assert_eq!(store.properties().max_concurrency, 3);
        hammer(&store);
        assert_eq!(store.list("p").unwrap().len(), 72, "every call got through");
        assert_eq!(store.inner.peak.load(Ordering::SeqCst), 3, "calls overlapped up to the limit, not beyond");
    }

    #[test]
    fn an_explicit_limit_of_one_serialises() {
        let store = LimitStorage::with_limit(Gauge::default(), 1);
        hammer(&store);
        assert_eq!(store.inner.peak.load(Ordering::SeqCst), 1);
    }
}
