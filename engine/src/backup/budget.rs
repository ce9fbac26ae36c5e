//! A byte budget: readers take a permit before filling a buffer, and the permit returns when the last chunk
//! cut from that buffer is dropped, wherever in the pipeline that happens. This bounds the file data in
//! flight whatever the input. Large buffers go back to a pool instead of the allocator, so the pipeline
//! neither fragments the heap across threads nor pays page faults for fresh memory on every buffer.

use std::sync::{Arc, Condvar, Mutex};

use bytes::Bytes;

/// Bytes that may be held by in-flight read buffers.
pub struct Budget {
    available: Mutex<usize>,
    freed: Condvar,
    total: usize,
    pool: Mutex<Vec<Vec<u8>>>,
}

/// Buffers at least this large are recycled.
const POOLED: usize = 1 << 20;

impl Budget {
    pub fn new(total: usize) -> Arc<Self> {
        Arc::new(Self { available: Mutex::new(total), freed: Condvar::new(), total, pool: Mutex::new(Vec::new()) })
    }

    /// An empty buffer with room for `capacity` bytes, recycled when one is available.
    pub fn buffer(&self, capacity: usize) -> Vec<u8> {
        if capacity >= POOLED {
            let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(at) = pool.iter().position(|b| b.capacity() >= capacity) {
                return pool.swap_remove(at);
            }
        }
        Vec::with_capacity(capacity)
    }

    fn recycle(&self, mut buf: Vec<u8>) {
        if buf.capacity() >= POOLED {
            buf.clear();
            let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
            // The budget bounds how many buffers can be out at once, so the pool stays small too.
            if pool.iter().map(Vec::capacity).sum::<usize>() < self.total {
                pool.push(buf);
            }
        }
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
    permit: Permit,
}

impl Drop for Block {
    fn drop(&mut self) {
        self.permit.budget.recycle(std::mem::take(&mut self.data));
    }
}

impl AsRef<[u8]> for Block {
    fn as_ref(&self) -> &[u8] {
        &self.data
    }
}

/// Freezes a filled buffer into shareable bytes tied to its permit.
pub fn freeze(data: Vec<u8>, permit: Permit) -> Bytes {
    Bytes::from_owner(Block { data, permit })
}
