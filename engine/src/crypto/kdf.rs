//! Password-based key derivation with argon2id. The parameters and salt are recorded in the format blob so a
//! repository created with stronger settings later still opens.

use argon2::{Algorithm, Argon2, Block, Params, Version};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// argon2id parameters as stored in the format blob.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    /// Always "argon2id" in format v1.
    pub algorithm: String,
    /// Memory cost in KiB.
    pub memory_kib: u32,
    /// Number of passes.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
    /// Random salt, hex.
    pub salt: String,
}

/// Upper bound on memory a format blob may ask for (4 GiB), so a hostile blob cannot exhaust memory.
const MAX_MEMORY_KIB: u32 = 4 * 1024 * 1024;

impl KdfParams {
    /// The defaults for new repositories: 64 MiB, 3 passes, 4 lanes (RFC 9106's second recommended option).
    /// The lanes are computed in parallel, so opening a repository costs about half the wall time of one
    /// lane on two cores, for the same memory and work an attacker must spend per guess.
    pub fn new_default() -> Self {
        let salt: [u8; 16] = super::random_bytes();
        Self {
            algorithm: "argon2id".into(),
            memory_kib: 64 * 1024,
            iterations: 3,
            parallelism: 4,
            salt: hex::encode(salt),
        }
    }

    /// Derives the 32-byte key that seals the master key.
    pub fn derive(&self, password: &[u8]) -> Result<[u8; 32]> {
        if self.algorithm != "argon2id" {
            return Err(Error::Unsupported(format!("key derivation {:?}", self.algorithm)));
        }
        if self.memory_kib > MAX_MEMORY_KIB || self.iterations > 100 || self.parallelism > 64 {
            return Err(Error::corrupt("format blob", "key derivation parameters out of range"));
        }
        let salt =
            hex::decode(&self.salt).map_err(|_| Error::corrupt("format blob", "key derivation salt is not hex"))?;
        let params = Params::new(self.memory_kib, self.iterations, self.parallelism, Some(32))
            .map_err(|e| Error::corrupt("format blob", format!("key derivation parameters: {e}")))?;
        let mut out = [0u8; 32];
        let memory = BlockMemory::new(params.block_count())?;
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password_into_with_memory(password, &salt, &mut out, memory)
            .map_err(|e| Error::corrupt("format blob", format!("key derivation: {e}")))?;
        Ok(out)
    }
}

/// The KDF's working memory: an anonymous mapping of its own, backed by huge pages where the kernel offers
/// them (filling 64 MiB of 4 KiB pages costs 16,384 page faults, about a sixth of the derivation's time,
/// measured with `perf`). The kernel hands it over already zeroed and it is never written here, so its
/// pages are first touched by argon2 itself, whose lanes run on the rayon threads and fault their parts in
/// on both cores. (Zero-filling a `Vec` first took 64 ms on one core, a sixth of an unchanged re-backup;
/// the allocator's zeroed allocation also writes zeros for a 64-byte alignment.) It is unmapped when
/// dropped. A failed mapping is an error, not an abort (a damaged format blob may ask for up to
/// [`MAX_MEMORY_KIB`]).
struct BlockMemory {
    start: std::ptr::NonNull<Block>,
    blocks: usize,
}

impl BlockMemory {
    fn new(blocks: usize) -> Result<Self> {
        let too_much = || Error::corrupt("format blob", "not enough memory for the key derivation");
        let len = blocks.checked_mul(std::mem::size_of::<Block>()).filter(|&len| len > 0).ok_or_else(too_much)?;
        // SAFETY: an anonymous private mapping at an address the kernel picks touches no existing memory.
        let mapped = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if mapped == libc::MAP_FAILED {
            return Err(too_much());
        }
        #[cfg(target_os = "linux")]
        // SAFETY: the range is exactly the mapping made above; MADV_HUGEPAGE reads and writes no memory, it
        // only changes how the kernel backs those pages.
        unsafe {
            libc::madvise(mapped, len, libc::MADV_HUGEPAGE);
        }
        let start = std::ptr::NonNull::new(mapped.cast::<Block>()).ok_or_else(too_much)?;
        Ok(Self { start, blocks })
    }
}

impl AsMut<[Block]> for BlockMemory {
    fn as_mut(&mut self) -> &mut [Block] {
        // SAFETY: the mapping holds `blocks` blocks, is page-aligned (more than a block's 64-byte alignment),
        // lives as long as self and is only reachable through it; its bytes are zeros until written, and all
        // zero bytes are a valid (the default) block, since a block is an array of integers.
        unsafe { std::slice::from_raw_parts_mut(self.start.as_ptr(), self.blocks) }
    }
}

impl Drop for BlockMemory {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `new`, which no reference outlives (they borrow self).
        unsafe {
            libc::munmap(self.start.as_ptr().cast(), self.blocks * std::mem::size_of::<Block>());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The derivation with its own working memory gives exactly what the argon2 crate computes by itself
    /// (existing repositories must keep opening), and depends on password and salt.
    #[test]
    fn derives_what_argon2_derives() {
        let kdf = KdfParams { memory_kib: 1024, iterations: 2, ..KdfParams::new_default() };
        let salt = hex::decode(&kdf.salt).unwrap();
        let mut expected = [0u8; 32];
        Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::new(1024, 2, 4, Some(32)).unwrap())
            .hash_password_into(b"pw", &salt, &mut expected)
            .unwrap();
        assert_eq!(kdf.derive(b"pw").unwrap(), expected);
        assert_ne!(kdf.derive(b"pw2").unwrap(), expected);
        assert_ne!(
            KdfParams { memory_kib: 1024, iterations: 2, ..KdfParams::new_default() }.derive(b"pw").unwrap(),
            expected
        );
        let hostile = KdfParams { memory_kib: u32::MAX, ..kdf };
        assert!(hostile.derive(b"pw").is_err());
    }
}
