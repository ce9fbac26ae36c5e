//! The key hierarchy. A random 32-byte master key is sealed in the format blob; every working key is derived
//! from it with BLAKE3's `derive_key` under a fixed context string, so the keys are independent and the
//! hashing key can be handed to a server client without revealing anything about the encryption keys.

use crate::ids::ContentId;

const CONTEXT_HASHING: &str = "cairn v1 2026-11-26 content id hashing key";
const CONTEXT_DATA: &str = "cairn v1 2026-11-26 data chunk encryption key";
const CONTEXT_METADATA: &str = "cairn v1 2026-11-26 metadata encryption key";
const CONTEXT_GEAR: &str = "cairn v1 2026-11-26 chunker gear seed";
const CONTEXT_TENANTS: &str = "cairn v1 2026-11-26 isolated user hashing keys";

/// The repository's master key; never leaves the repository owner (or the repository server).
#[derive(Clone)]
pub struct MasterKey(pub(crate) [u8; 32]);

impl MasterKey {
    /// A fresh random master key.
    pub fn generate() -> Self {
        Self(super::random_bytes())
    }

    /// Derives every working key.
    pub fn derive(&self) -> KeySet {
        KeySet {
            hashing: HashingKey(blake3::derive_key(CONTEXT_HASHING, &self.0)),
            data: blake3::derive_key(CONTEXT_DATA, &self.0),
            metadata: blake3::derive_key(CONTEXT_METADATA, &self.0),
            tenants: blake3::derive_key(CONTEXT_TENANTS, &self.0),
        }
    }
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

/// The key that names content: content id = keyed BLAKE3-256(hashing key, plaintext).
#[derive(Clone)]
pub struct HashingKey(pub(crate) [u8; 32]);

impl HashingKey {
    /// Wraps raw key bytes (as received from a repository server).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw bytes, for handing to an authorised client.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The content id of `plaintext`.
    pub fn content_id(&self, plaintext: &[u8]) -> ContentId {
        ContentId(*blake3::keyed_hash(&self.0, plaintext).as_bytes())
    }

    /// The seed XORed into FastCDC's gear table, so chunk boundaries differ between repositories and do not
    /// reveal file contents to someone who only sees chunk sizes.
    pub fn gear_seed(&self) -> u64 {
        let seed = blake3::derive_key(CONTEXT_GEAR, &self.0);
        u64::from_le_bytes(seed[..8].try_into().expect("8 bytes"))
    }
}

impl std::fmt::Debug for HashingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HashingKey(..)")
    }
}

/// Every key a repository owner works with.
#[derive(Clone, Debug)]
pub struct KeySet {
    pub hashing: HashingKey,
    data: [u8; 32],
    metadata: [u8; 32],
    /// Root of the isolated users' hashing keys (never handed out).
    tenants: [u8; 32],
}

/// Which key family encrypts a stored blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BlobClass {
    /// File contents.
    Data,
    /// Trees, chunk lists, pack tables, indexes, snapshots.
    Metadata,
}

impl KeySet {
    /// The AES-256 key for one content blob: keyed BLAKE3 of the content id under the class key. Each
    /// content gets its own key, so the random-nonce limit of one GCM key never binds however many blobs
    /// the repository holds.
    pub fn content_key(&self, class: BlobClass, id: &ContentId) -> [u8; 32] {
        let base = match class {
            BlobClass::Data => &self.data,
            BlobClass::Metadata => &self.metadata,
        };
        *blake3::keyed_hash(base, id.as_bytes()).as_bytes()
    }

    /// The hashing key of an isolated user (`cairn server user add --isolated`): keyed BLAKE3 of the user
    /// name under a key derived from the master key, so neither the shared hashing key nor another user's
    /// key reveals it, and the repository owner can always recompute it from the name.
    pub fn tenant_hashing(&self, tenant: &str) -> HashingKey {
        HashingKey(*blake3::keyed_hash(&self.tenants, tenant.as_bytes()).as_bytes())
    }

    /// The key that seals repository records (index blobs, pack tables, snapshots), each with associated
    /// data naming the record.
    pub fn metadata_key(&self) -> &[u8; 32] {
        &self.metadata
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_independent_and_ids_are_repository_specific() {
        let a = MasterKey::generate().derive();
        let b = MasterKey::generate().derive();
        assert_ne!(a.hashing.as_bytes(), &a.data);
        assert_ne!(a.data, a.metadata);
        assert_eq!(a.hashing.content_id(b"x"), a.hashing.content_id(b"x"));
        assert_ne!(a.hashing.content_id(b"x"), b.hashing.content_id(b"x"));
        let id = a.hashing.content_id(b"x");
        assert_ne!(a.content_key(BlobClass::Data, &id), a.content_key(BlobClass::Metadata, &id));
    }
}
