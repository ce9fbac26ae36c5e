//! Builds one pack in memory: a plain struct with no I/O, so the packer thread decides when to flush and
//! where the bytes go.

use super::{encode_table, PackEntry, FOOTER_LEN, PACK_MAGIC, PACK_TRAILER_MAGIC};
use crate::content::SealedContent;
use crate::crypto::keys::{BlobClass, KeySet};
use crate::ids::PackId;

/// A pack being filled.
pub struct PackBuilder {
    pub id: PackId,
    pub class: BlobClass,
    bytes: Vec<u8>,
    entries: Vec<PackEntry>,
}

impl PackBuilder {
    /// An empty pack with a fresh random id; `capacity` is the expected final size.
    pub fn new(class: BlobClass, capacity: usize) -> Self {
        let mut bytes = Vec::with_capacity(capacity + (capacity >> 4));
        bytes.extend_from_slice(PACK_MAGIC);
        Self { id: PackId::random(), class, bytes, entries: Vec::new() }
    }

    /// Appends a sealed blob and returns its entry.
    pub fn add(&mut self, blob: &SealedContent) -> PackEntry {
        debug_assert_eq!(blob.class, self.class);
        let entry = PackEntry {
            id: blob.id,
            offset: self.bytes.len() as u32,
            stored_len: blob.bytes.len() as u32,
            raw_len: blob.raw_len,
            compression: blob.compression,
        };
        self.bytes.extend_from_slice(&blob.bytes);
        self.entries.push(entry);
        entry
    }

    /// Bytes so far.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// True when no blob was added.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Seals the entry table, appends it and the footer, and returns the finished pack.
    pub fn finish(mut self, keys: &KeySet) -> FinishedPack {
        let name = super::pack_name(self.class, &self.id);
        let table = encode_table(keys, &name, self.class, &self.entries);
        self.bytes.extend_from_slice(&table);
        self.bytes.extend_from_slice(&(table.len() as u32).to_le_bytes());
        self.bytes.extend_from_slice(PACK_TRAILER_MAGIC);
        debug_assert!(self.bytes.len() >= FOOTER_LEN);
        FinishedPack { id: self.id, class: self.class, name, bytes: self.bytes, entries: self.entries }
    }
}

/// A complete pack, ready to store.
pub struct FinishedPack {
    pub id: PackId,
    pub class: BlobClass,
    pub name: String,
    pub bytes: Vec<u8>,
    pub entries: Vec<PackEntry>,
}
