//! A pack's entry table: the list of blobs it holds, sealed with the metadata key and bound to the pack's
//! name, so a table cannot be moved to another pack undetected.
//!
//! Plaintext: version (1) · class (1) · count (u32 LE) · count × [id (32) · offset · stored length · raw
//! length (u32 LE each) · compression (1)].

use super::{PackEntry, FOOTER_LEN, MAX_PACK_SIZE, PACK_MAGIC, PACK_TRAILER_MAGIC};
use crate::compress::Compression;
use crate::crypto::aead;
use crate::crypto::keys::{BlobClass, KeySet};
use crate::error::{Error, Result};
use crate::ids::ContentId;
use crate::storage::Storage;

const TABLE_VERSION: u8 = 1;
const ENTRY_LEN: usize = 32 + 4 * 3 + 1;
const HEADER_LEN: usize = 6;

fn aad(pack_name: &str) -> Vec<u8> {
    let mut aad = b"cairn-pack-table-v1\0".to_vec();
    aad.extend_from_slice(pack_name.as_bytes());
    aad
}

/// Seals a table for the pack named `pack_name`.
pub fn encode_table(keys: &KeySet, pack_name: &str, class: BlobClass, entries: &[PackEntry]) -> Vec<u8> {
    let mut plain = Vec::with_capacity(HEADER_LEN + entries.len() * ENTRY_LEN);
    plain.push(TABLE_VERSION);
    plain.push(class.to_byte());
    plain.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for e in entries {
        plain.extend_from_slice(e.id.as_bytes());
        plain.extend_from_slice(&e.offset.to_le_bytes());
        plain.extend_from_slice(&e.stored_len.to_le_bytes());
        plain.extend_from_slice(&e.raw_len.to_le_bytes());
        plain.push(e.compression as u8);
    }
    aead::seal(keys.metadata_key(), &aad(pack_name), &plain)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

/// Opens and parses a sealed table. `pack_len` is the pack's total size, to check every entry lies inside
/// the blob area.
pub fn decode_table(
    keys: &KeySet,
    pack_name: &str,
    sealed: &[u8],
    pack_len: u64,
) -> Result<(BlobClass, Vec<PackEntry>)> {
    let what = format!("pack {pack_name} entry table");
    let plain = aead::open(keys.metadata_key(), &aad(pack_name), sealed, &what)?;
    parse_table(&plain, pack_len, sealed.len() as u64).map_err(|detail| Error::corrupt(what, detail))
}

/// Parses a table's plaintext (exposed to the fuzz targets through `crate::fuzzing`).
pub(crate) fn parse_table(plain: &[u8], pack_len: u64, sealed_len: u64) -> Result<(BlobClass, Vec<PackEntry>), String> {
    if plain.len() < HEADER_LEN || plain[0] != TABLE_VERSION {
        return Err("unknown table version".into());
    }
    let class = BlobClass::from_byte(plain[1]).map_err(|e| e.to_string())?;
    let count = u32_at(plain, 2) as usize;
    if plain.len() != HEADER_LEN + count * ENTRY_LEN {
        return Err("table length does not match its entry count".into());
    }
    let blob_area_end = pack_len.saturating_sub(FOOTER_LEN as u64 + sealed_len);
    let mut entries = Vec::with_capacity(count);
    for raw in plain[HEADER_LEN..].chunks_exact(ENTRY_LEN) {
        let entry = PackEntry {
            id: ContentId::from_slice(&raw[..32]).expect("32 bytes"),
            offset: u32_at(raw, 32),
            stored_len: u32_at(raw, 36),
            raw_len: u32_at(raw, 40),
            compression: Compression::from_byte(raw[44]).map_err(|e| e.to_string())?,
        };
        let end = entry.offset as u64 + entry.stored_len as u64;
        if (entry.offset as usize) < PACK_MAGIC.len() || end > blob_area_end {
            return Err(format!("entry {} lies outside the pack", entry.id));
        }
        entries.push(entry);
    }
    Ok((class, entries))
}

/// Reads a stored pack's table with ranged reads (magic, footer, table), checking every byte that is not
/// inside a sealed blob.
pub fn read_table(storage: &dyn Storage, keys: &KeySet, pack_name: &str) -> Result<(BlobClass, Vec<PackEntry>)> {
    let size = storage.stat(pack_name)?.size;
    if size < (PACK_MAGIC.len() + FOOTER_LEN) as u64 || size > MAX_PACK_SIZE {
        return Err(Error::corrupt(format!("pack {pack_name}"), format!("impossible size {size}")));
    }
    if storage.get_range(pack_name, 0, PACK_MAGIC.len() as u64)? != PACK_MAGIC {
        return Err(Error::corrupt(format!("pack {pack_name}"), "bad magic (not a Cairn pack, or damaged)"));
    }
    let footer = storage.get_range(pack_name, size - FOOTER_LEN as u64, FOOTER_LEN as u64)?;
    if &footer[4..] != PACK_TRAILER_MAGIC {
        return Err(Error::corrupt(format!("pack {pack_name}"), "missing trailer (truncated pack?)"));
    }
    let table_len = u32_at(&footer, 0) as u64;
    if table_len + (FOOTER_LEN + PACK_MAGIC.len()) as u64 > size {
        return Err(Error::corrupt(format!("pack {pack_name}"), "table length exceeds the pack"));
    }
    let sealed = storage.get_range(pack_name, size - FOOTER_LEN as u64 - table_len, table_len)?;
    decode_table(keys, pack_name, &sealed, size)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::crypto::MasterKey;

    proptest! {
        #[test]
        fn table_round_trips(entries in proptest::collection::vec((any::<[u8; 32]>(), 0u32..1000, 0u32..1000, any::<u32>(), any::<bool>()), 0..50)) {
            let keys = MasterKey::generate().derive();
            let mut offset = 8u32;
            let entries: Vec<PackEntry> = entries.into_iter().map(|(id, gap, len, raw, z)| {
                offset += gap;
                let e = PackEntry { id: ContentId(id), offset, stored_len: len, raw_len: raw, compression: if z { Compression::Zstd } else { Compression::None } };
                offset += len;
                e
            }).collect();
            let sealed = encode_table(&keys, "pabc", BlobClass::Data, &entries);
            let pack_len = offset as u64 + sealed.len() as u64 + FOOTER_LEN as u64;
            let (class, back) = decode_table(&keys, "pabc", &sealed, pack_len).unwrap();
            prop_assert_eq!(class, BlobClass::Data);
            prop_assert_eq!(back, entries);
            // Bound to its pack's name.
            prop_assert!(decode_table(&keys, "pabd", &sealed, pack_len).is_err());
        }

        #[test]
        fn garbage_plaintext_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300), len in any::<u64>()) {
            let _ = parse_table(&bytes, len, 0);
        }
    }
}
