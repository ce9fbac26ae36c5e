//! Lays out one pack: a plain struct with no I/O that assigns offsets to blobs and produces the trailer, so
//! the packer thread decides where the bytes go (streamed to storage as they arrive).

use super::{encode_table, PackEntry, PACK_MAGIC, PACK_TRAILER_MAGIC};
use crate::content::SealedContent;
use crate::crypto::keys::{BlobClass, KeySet};
use crate::ids::PackId;

/// A pack being filled. Write [`PACK_MAGIC`] first, then each blob's bytes as it is added, then the bytes
/// of [`PackBuilder::finish`].
pub struct PackBuilder {
    pub id: PackId,
    pub class: BlobClass,
    len: usize,
    entries: Vec<PackEntry>,
}

impl PackBuilder {
    /// An empty pack with a fresh random id; its header is [`PACK_MAGIC`].
    pub fn new(class: BlobClass) -> Self {
        Self { id: PackId::random(), class, len: PACK_MAGIC.len(), entries: Vec::new() }
    }

    /// The pack's storage name.
    pub fn name(&self) -> String {
        super::pack_name(self.class, &self.id)
    }

    /// Records a sealed blob placed right after what was written so far; returns its entry.
    pub fn add(&mut self, blob: &SealedContent) -> PackEntry {
        debug_assert_eq!(blob.class, self.class);
        let entry = PackEntry {
            id: blob.id,
            offset: self.len as u32,
            stored_len: blob.bytes.len() as u32,
            raw_len: blob.raw_len,
            compression: blob.compression,
        };
        self.len += blob.bytes.len();
        self.entries.push(entry);
        entry
    }

    /// Bytes so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no blob was added.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The sealed entry table and footer that end the pack, and the pack's entries.
    pub fn finish(self, keys: &KeySet) -> PackTrailer {
        let name = self.name();
        let table = encode_table(keys, &name, self.class, &self.entries);
        let mut bytes = table;
        let table_len = bytes.len() as u32;
        bytes.extend_from_slice(&table_len.to_le_bytes());
        bytes.extend_from_slice(PACK_TRAILER_MAGIC);
        PackTrailer { id: self.id, class: self.class, name, bytes, entries: self.entries }
    }

    /// Builds a whole pack in memory (for tests, benchmarks and rewrites of small packs).
    pub fn build_in_memory(class: BlobClass, blobs: &[SealedContent], keys: &KeySet) -> (PackTrailer, Vec<u8>) {
        let mut builder = Self::new(class);
        let mut bytes = PACK_MAGIC.to_vec();
        for blob in blobs {
            builder.add(blob);
            bytes.extend_from_slice(&blob.bytes);
        }
        let trailer = builder.finish(keys);
        bytes.extend_from_slice(&trailer.bytes);
        (trailer, bytes)
    }
}

/// The end of a finished pack.
pub struct PackTrailer {
    pub id: PackId,
    pub class: BlobClass,
    pub name: String,
    /// Sealed table, table length, trailer magic.
    pub bytes: Vec<u8>,
    pub entries: Vec<PackEntry>,
}
