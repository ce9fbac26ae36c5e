//! How one content blob (a file chunk, a tree, a chunk list) is stored: its plaintext is compressed (or kept
//! raw), then sealed with AES-256-GCM under a key of its own derived from its content id, with associated
//! data binding the content id, the blob class and the compression flag. Reading it back checks all three
//! and re-hashes the plaintext, so a blob swapped, moved or damaged anywhere is detected.

use crate::compress::{self, Compression};
use crate::crypto::keys::{BlobClass, HashingKey, KeySet};
use crate::crypto::{aead, SEAL_OVERHEAD};
use crate::error::{Error, Result};
use crate::ids::ContentId;

/// A content blob ready to be appended to a pack.
#[derive(Debug)]
pub struct SealedContent {
    pub id: ContentId,
    pub class: BlobClass,
    pub compression: Compression,
    /// Plaintext length.
    pub raw_len: u32,
    /// `nonce || ciphertext || tag`.
    pub bytes: Vec<u8>,
}

fn associated_data(id: &ContentId, class: BlobClass, compression: Compression) -> [u8; 48] {
    let mut aad = [0u8; 48];
    aad[..14].copy_from_slice(b"cairn-blob-v1\0");
    aad[14] = class as u8;
    aad[15] = compression as u8;
    aad[16..].copy_from_slice(id.as_bytes());
    aad
}

impl BlobClass {
    /// The stored byte.
    pub fn to_byte(self) -> u8 {
        self as u8
    }

    /// Decodes the stored byte.
    pub fn from_byte(b: u8) -> Result<Self> {
        match b {
            0 => Ok(BlobClass::Data),
            1 => Ok(BlobClass::Metadata),
            other => Err(Error::corrupt("blob entry", format!("unknown blob class {other}"))),
        }
    }
}

/// Compresses and seals a plaintext whose id is already known. `scratch` is reused between calls to avoid
/// an allocation per chunk.
pub fn seal(
    keys: &KeySet,
    class: BlobClass,
    id: ContentId,
    plaintext: &[u8],
    level: i32,
    scratch: &mut Vec<u8>,
) -> SealedContent {
    let compression = compress::compress_into(level, plaintext, scratch);
    seal_compressed(keys, class, id, plaintext, compression, scratch)
}

/// The second half of [`seal`]: encrypts `scratch` (when `compression` is zstd) or `plaintext`. Split out
/// so the pipeline can time compression and encryption separately.
pub fn seal_compressed(
    keys: &KeySet,
    class: BlobClass,
    id: ContentId,
    plaintext: &[u8],
    compression: Compression,
    scratch: &[u8],
) -> SealedContent {
    let payload: &[u8] = match compression {
        Compression::Zstd => scratch,
        Compression::None => plaintext,
    };
    let key = keys.content_key(class, &id);
    let mut bytes = Vec::with_capacity(payload.len() + SEAL_OVERHEAD);
    aead::seal_into(&key, &associated_data(&id, class, compression), payload, &mut bytes);
    SealedContent { id, class, compression, raw_len: plaintext.len() as u32, bytes }
}

/// Opens a stored blob's seal where it lies (see [`aead::open_in_place`]) and returns the range of its
/// payload, still compressed as `compression` says, within `stored`.
pub fn open_payload_in_place(
    keys: &KeySet,
    class: BlobClass,
    id: &ContentId,
    compression: Compression,
    stored: &mut [u8],
) -> Result<std::ops::Range<usize>> {
    let key = keys.content_key(class, id);
    aead::open_in_place(&key, &associated_data(id, class, compression), stored, &format!("blob {id}"))
}

/// Opens a stored blob's seal and returns its payload, still compressed as `compression` says.
pub fn open_payload(
    keys: &KeySet,
    class: BlobClass,
    id: &ContentId,
    compression: Compression,
    stored: &[u8],
) -> Result<Vec<u8>> {
    let key = keys.content_key(class, id);
    aead::open(&key, &associated_data(id, class, compression), stored, &format!("blob {id}"))
}

/// Opens a stored blob and checks that its plaintext hashes to `id` under the repository's hashing key.
pub fn open(
    keys: &KeySet,
    class: BlobClass,
    id: &ContentId,
    compression: Compression,
    raw_len: u32,
    stored: &[u8],
) -> Result<Vec<u8>> {
    let plain = open_unverified(keys, class, id, compression, raw_len, stored)?;
    verify_id(&keys.hashing, id, &plain)?;
    Ok(plain)
}

/// Decrypts and decompresses a stored blob without re-hashing it: for callers that check the id
/// themselves with [`crate::repository::Repository::verify_content`] (which also knows isolated users'
/// keys). Decryption alone already proves the blob was sealed under this id.
pub fn open_unverified(
    keys: &KeySet,
    class: BlobClass,
    id: &ContentId,
    compression: Compression,
    raw_len: u32,
    stored: &[u8],
) -> Result<Vec<u8>> {
    let payload = open_payload(keys, class, id, compression, stored)?;
    compress::decompress(compression, &payload, raw_len as usize, &format!("blob {id}"))
}

/// Checks that `plaintext` hashes to `id` under `key`.
pub fn verify_id(key: &HashingKey, id: &ContentId, plaintext: &[u8]) -> Result<()> {
    if key.content_id(plaintext) != *id {
        return Err(Error::corrupt(format!("blob {id}"), "plaintext does not match its content id"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::MasterKey;

    #[test]
    fn seal_open_and_detect_swaps() {
        let keys = MasterKey::generate().derive();
        let text = b"some text that compresses well, some text that compresses well".repeat(50);
        let id = keys.hashing.content_id(&text);
        let mut scratch = Vec::new();
        let sealed = seal(&keys, BlobClass::Data, id, &text, 3, &mut scratch);
        assert_eq!(sealed.compression, Compression::Zstd);
        let back = open(&keys, BlobClass::Data, &id, sealed.compression, sealed.raw_len, &sealed.bytes).unwrap();
        assert_eq!(back, text);
        // Wrong class, wrong flag, wrong id: all refused.
        assert!(open(&keys, BlobClass::Metadata, &id, sealed.compression, sealed.raw_len, &sealed.bytes).is_err());
        assert!(open(&keys, BlobClass::Data, &id, Compression::None, sealed.raw_len, &sealed.bytes).is_err());
        let other = keys.hashing.content_id(b"other");
        assert!(open(&keys, BlobClass::Data, &other, sealed.compression, sealed.raw_len, &sealed.bytes).is_err());
    }
}
