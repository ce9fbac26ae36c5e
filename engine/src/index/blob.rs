//! The index blob codec. Plaintext: version (1) · pack count (u32 LE) · packs [class (1) · pack id (16),
//! and in version 2 · retired at (u64 LE Unix seconds, 0 = in use)] · entry count (u32 LE) · entries
//! [content id (32) · pack ordinal · offset · stored length · raw length (u32 LE each) · compression (1)].
//! Sealed with the metadata key, bound to the blob's name. Backups write version 1; maintenance writes
//! version 2 to mark packs it has retired (see docs/FORMAT.md §7 and §13).

use crate::compress::Compression;
use crate::crypto::aead;
use crate::crypto::keys::{BlobClass, KeySet};
use crate::error::{Error, Result};
use crate::ids::{ContentId, IndexId, PackId};
use crate::pack::PackEntry;

const VERSION: u8 = 1;
const VERSION_RETIRING: u8 = 2;
const PACK_LEN: usize = 17;
const PACK_LEN_V2: usize = 25;
const ENTRY_LEN: usize = 32 + 16 + 1;

/// One index entry as read from an index blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexRecord {
    pub class: BlobClass,
    pub pack: PackId,
    pub entry: PackEntry,
}

/// A pack as an index blob lists it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexedPack {
    pub class: BlobClass,
    pub id: PackId,
    /// Unix seconds at which maintenance retired the pack (its blobs are no longer used for deduplication
    /// and it will be deleted once no backup can still depend on it); `None` while in use.
    pub retired_at: Option<u64>,
}

/// Everything one index blob says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IndexContents {
    pub packs: Vec<IndexedPack>,
    pub records: Vec<IndexRecord>,
}

/// The storage name of an index blob.
pub fn index_name(id: &IndexId) -> String {
    format!("i{id}")
}

fn aad(name: &str) -> Vec<u8> {
    let mut aad = b"cairn-index-v1\0".to_vec();
    aad.extend_from_slice(name.as_bytes());
    aad
}

/// Encodes and seals the entries of some packs as the index blob `name`.
pub fn encode_index_blob(keys: &KeySet, name: &str, packs: &[(BlobClass, PackId, Vec<PackEntry>)]) -> Vec<u8> {
    let total: usize = packs.iter().map(|(_, _, e)| e.len()).sum();
    let mut plain = Vec::with_capacity(9 + packs.len() * PACK_LEN + total * ENTRY_LEN);
    plain.push(VERSION);
    plain.extend_from_slice(&(packs.len() as u32).to_le_bytes());
    for (class, id, _) in packs {
        plain.push(class.to_byte());
        plain.extend_from_slice(id.as_bytes());
    }
    plain.extend_from_slice(&(total as u32).to_le_bytes());
    push_entries(&mut plain, packs.iter().map(|(_, _, entries)| entries.as_slice()));
    aead::seal(keys.metadata_key(), &aad(name), &plain)
}

/// The entry table shared by both versions: id, pack ordinal, offset, stored and raw length, compression.
fn push_entries<'a>(plain: &mut Vec<u8>, packs: impl Iterator<Item = &'a [PackEntry]>) {
    for (ordinal, entries) in packs.enumerate() {
        for e in entries {
            plain.extend_from_slice(e.id.as_bytes());
            for v in [ordinal as u32, e.offset, e.stored_len, e.raw_len] {
                plain.extend_from_slice(&v.to_le_bytes());
            }
            plain.push(e.compression as u8);
        }
    }
}

/// Encodes and seals packs with their retirement marks as the (version 2) index blob `name`.
pub fn encode_index_blob_v2(keys: &KeySet, name: &str, packs: &[(IndexedPack, Vec<PackEntry>)]) -> Vec<u8> {
    let total: usize = packs.iter().map(|(_, e)| e.len()).sum();
    let mut plain = Vec::with_capacity(9 + packs.len() * PACK_LEN_V2 + total * ENTRY_LEN);
    plain.push(VERSION_RETIRING);
    plain.extend_from_slice(&(packs.len() as u32).to_le_bytes());
    for (pack, _) in packs {
        plain.push(pack.class.to_byte());
        plain.extend_from_slice(pack.id.as_bytes());
        plain.extend_from_slice(&pack.retired_at.unwrap_or(0).to_le_bytes());
    }
    plain.extend_from_slice(&(total as u32).to_le_bytes());
    push_entries(&mut plain, packs.iter().map(|(_, entries)| entries.as_slice()));
    aead::seal(keys.metadata_key(), &aad(name), &plain)
}

/// Opens and parses the index blob `name`.
pub fn decode_index_blob(keys: &KeySet, name: &str, sealed: &[u8]) -> Result<Vec<IndexRecord>> {
    Ok(decode_index_contents(keys, name, sealed)?.records)
}

/// Opens and parses the index blob `name`, with the packs it lists and their retirement marks.
pub fn decode_index_contents(keys: &KeySet, name: &str, sealed: &[u8]) -> Result<IndexContents> {
    let what = format!("index blob {name}");
    let plain = aead::open(keys.metadata_key(), &aad(name), sealed, &what)?;
    parse(&plain).map_err(|detail| Error::corrupt(what, detail))
}

fn take<'a>(buf: &mut &'a [u8], n: usize) -> Result<&'a [u8], String> {
    if buf.len() < n {
        return Err("truncated".into());
    }
    let (head, rest) = buf.split_at(n);
    *buf = rest;
    Ok(head)
}

fn u32_of(b: &[u8]) -> u32 {
    u32::from_le_bytes(b.try_into().expect("4 bytes"))
}

/// Parses an index blob's plaintext (exposed to the fuzz targets through `crate::fuzzing`).
pub(crate) fn parse(mut buf: &[u8]) -> Result<IndexContents, String> {
    let pack_len = match take(&mut buf, 1)?[0] {
        VERSION => PACK_LEN,
        VERSION_RETIRING => PACK_LEN_V2,
        _ => return Err("unknown index version".into()),
    };
    let pack_count = u32_of(take(&mut buf, 4)?) as usize;
    if pack_count > buf.len() / pack_len {
        return Err("pack count exceeds blob".into());
    }
    let mut packs = Vec::with_capacity(pack_count);
    for _ in 0..pack_count {
        let raw = take(&mut buf, pack_len)?;
        let class = BlobClass::from_byte(raw[0]).map_err(|e| e.to_string())?;
        let id = PackId::from_slice(&raw[1..17]).expect("16 bytes");
        let retired_at = match raw.get(17..25) {
            Some(t) => Some(u64::from_le_bytes(t.try_into().expect("8 bytes"))).filter(|&t| t != 0),
            None => None,
        };
        packs.push(IndexedPack { class, id, retired_at });
    }
    let count = u32_of(take(&mut buf, 4)?) as usize;
    if count.checked_mul(ENTRY_LEN) != Some(buf.len()) {
        return Err("entry count does not match blob length".into());
    }
    let mut out = Vec::with_capacity(count);
    for raw in buf.chunks_exact(ENTRY_LEN) {
        let ordinal = u32_of(&raw[32..36]) as usize;
        let pack = *packs.get(ordinal).ok_or("entry names a pack the blob does not list")?;
        out.push(IndexRecord {
            class: pack.class,
            pack: pack.id,
            entry: PackEntry {
                id: ContentId::from_slice(&raw[..32]).expect("32 bytes"),
                offset: u32_of(&raw[36..40]),
                stored_len: u32_of(&raw[40..44]),
                raw_len: u32_of(&raw[44..48]),
                compression: Compression::from_byte(raw[48]).map_err(|e| e.to_string())?,
            },
        });
    }
    Ok(IndexContents { packs, records: out })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::crypto::MasterKey;

    proptest! {
        #[test]
        fn index_blob_round_trips(packs in proptest::collection::vec((any::<[u8; 16]>(), any::<bool>(), proptest::collection::vec((any::<[u8; 32]>(), any::<u32>(), any::<u32>(), any::<u32>()), 0..20)), 0..5)) {
            let keys = MasterKey::generate().derive();
            let packs: Vec<(BlobClass, PackId, Vec<PackEntry>)> = packs.into_iter().map(|(id, meta, entries)| {
                let class = if meta { BlobClass::Metadata } else { BlobClass::Data };
                let entries = entries.into_iter().map(|(cid, offset, len, raw)| PackEntry {
                    id: ContentId(cid), offset, stored_len: len, raw_len: raw, compression: Compression::Zstd,
                }).collect();
                (class, PackId(id), entries)
            }).collect();
            let sealed = encode_index_blob(&keys, "i00", &packs);
            let records = decode_index_blob(&keys, "i00", &sealed).unwrap();
            let expected: Vec<IndexRecord> = packs.iter().flat_map(|(class, pack, entries)| {
                entries.iter().map(move |e| IndexRecord { class: *class, pack: *pack, entry: *e })
            }).collect();
            prop_assert_eq!(records, expected);
            prop_assert!(decode_index_blob(&keys, "i01", &sealed).is_err());
        }

        #[test]
        fn garbage_plaintext_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse(&bytes);
        }
    }
}
