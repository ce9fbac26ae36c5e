//! The index: which pack holds each content blob, and where. Every backup writes immutable index blobs
//! (`i` + random hex); a reader loads them all into one compact in-memory map.

mod blob;
mod map;

pub use blob::{decode_index_blob, encode_index_blob, index_name, IndexRecord};
pub use map::{Index, Location, ENTRY_BYTES};
