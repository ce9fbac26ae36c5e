//! The index: which pack holds each content blob, and where. Every backup writes immutable index blobs
//! (`i` + random hex); a reader loads them all into one compact in-memory map.

mod blob;
mod map;

#[cfg(any(fuzzing, test))]
pub(crate) use blob::parse as parse_index_plaintext;
pub use blob::{
    decode_index_blob, decode_index_contents, encode_index_blob, encode_index_blob_v2, index_name, IndexContents,
    IndexRecord, IndexedPack,
};
pub use map::{Index, Location, ENTRY_BYTES};
