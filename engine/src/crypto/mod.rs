//! Cryptography: the password KDF, the key hierarchy under the master key, and AES-256-GCM sealing.

pub mod aead;
pub mod kdf;
pub mod keys;

pub use aead::{open, seal_into, SEAL_OVERHEAD};
pub use keys::{KeySet, MasterKey};

/// Fills a fixed-size array from the operating system's CSPRNG.
///
/// # Panics
/// Panics if the OS random source fails, which on Linux means the process cannot run safely at all.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    getrandom::fill(&mut out).expect("the operating system's random source failed");
    out
}
