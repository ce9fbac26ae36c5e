//! The index: which pack holds each content blob, and where. Every backup writes immutable index blobs
//! (`i` + random hex); a reader loads them all into one compact in-memory map.

mod blob;
mod map;

use crate::crypto::keys::{BlobClass, KeySet};
use crate::error::Result;
use crate::ids::{IndexId, PackId};
use crate::pack::PackEntry;
use crate::storage::Storage;

/// Writes an index blob for packs already stored, then adds them to the in-memory index.
pub fn store_index_blob(
    storage: &dyn Storage,
    keys: &KeySet,
    index: &Index,
    packs: &[(BlobClass, PackId, Vec<PackEntry>)],
) -> Result<()> {
    if packs.is_empty() {
        return Ok(());
    }
    let name = index_name(&IndexId::random());
    storage.put(&name, &encode_index_blob(keys, &name, packs))?;
    for (class, id, entries) in packs {
        index.insert_pack(*class, *id, entries);
    }
    Ok(())
}
#[cfg(any(fuzzing, test))]
pub(crate) use blob::parse as parse_index_plaintext;
pub use blob::{
    decode_index_blob, decode_index_contents, encode_index_blob, encode_index_blob_v2, index_name, IndexContents,
    IndexRecord, IndexedPack,
};
pub use map::{Index, Location, ENTRY_BYTES};
