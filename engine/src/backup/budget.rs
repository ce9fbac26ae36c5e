//! A byte budget: readers take a permit before filling a buffer, and the permit returns when the last chunk
//! cut from that buffer is dropped, wherever in the pipeline that happens. This bounds the file data in
//! flight whatever the input.

use std::sync::{Arc, Condvar, Mutex};

use bytes::Bytes;

/// Bytes that may be held by in-flight read buffers.
pub struct Budget {
    available: Mutex<usize>,
    freed: Condvar,
    total: usize,
}

impl Budget {
    pub fn new(total: usize) -> Arc<Self> {
        Arc::new(Self { available: Mutex::new(total), freed: Condvar::new(), total })
    }

    /// Blocks until `bytes` (capped at the whole budget) are available, then takes them.
    pub fn acquire(self: &Arc<Self>, bytes: usize) -> Permit {
        let bytes = bytes.min(self.total);
        let mut available = self.available.lock().unwrap_or_else(|p| p.into_inner());
        while *available < bytes {
            available = self.freed.wait(available).unwrap_or_else(|p| p.into_inner());
        }
        *available -= bytes;
        Permit { budget: self.clone(), bytes }
    }
}

/// Bytes taken from a [`Budget`], returned on drop.
pub struct Permit {
    budget: Arc<Budget>,
    bytes: usize,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut available = self.budget.available.lock().unwrap_or_else(|p| p.into_inner());
        *available += self.bytes;
        self.budget.freed.notify_all();
    }
}

/// A read buffer that holds its permit for as long as any chunk of it is alive.
struct Block {
    data: Vec<u8>,
    _permit: Permit,
}

impl AsRef<[u8]> for Block {
    fn as_ref(&self) -> &[u8] {
        &self.data
    }
}

/// Freezes a filled buffer into shareable bytes tied to its permit.
pub fn freeze(data: Vec<u8>, permit: Permit) -> Bytes {
    Bytes::from_owner(Block { data, _permit: permit })
}
