//! Packs: large blobs that hold many sealed content blobs back to back, followed by a sealed table of their
//! entries so the index can always be rebuilt from packs alone. Data chunks go to `p` packs and metadata
//! (trees, chunk lists) to `q` packs, so metadata can be read and cached without touching bulk data.
//!
//! Layout: `"CAIRNPK1"` · sealed blobs · sealed entry table · table length (u32 LE) · `"CAIRNPKT"`.

mod builder;
mod table;

pub use builder::{PackBuilder, PackTrailer};

#[cfg(any(fuzzing, test))]
pub(crate) use table::parse_table;
pub use table::{decode_table, encode_table, read_table};

use crate::compress::Compression;
use crate::crypto::keys::BlobClass;
use crate::error::{Error, Result};
use crate::ids::{ContentId, PackId};

/// Magic bytes that open every pack.
pub const PACK_MAGIC: &[u8; 8] = b"CAIRNPK1";
/// Magic bytes that close every pack.
pub const PACK_TRAILER_MAGIC: &[u8; 8] = b"CAIRNPKT";
/// Footer: table length + trailer magic.
pub const FOOTER_LEN: usize = 12;
/// Largest pack Cairn writes or reads (offsets are 32-bit).
pub const MAX_PACK_SIZE: u64 = 1 << 31;

/// Where one blob sits in its pack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PackEntry {
    pub id: ContentId,
    pub offset: u32,
    pub stored_len: u32,
    pub raw_len: u32,
    pub compression: Compression,
}

/// The storage name of a pack: `p` + hex for data, `q` + hex for metadata.
pub fn pack_name(class: BlobClass, id: &PackId) -> String {
    match class {
        BlobClass::Data => format!("p{id}"),
        BlobClass::Metadata => format!("q{id}"),
    }
}

/// Parses a pack's storage name back into its class and id.
pub fn parse_pack_name(name: &str) -> Result<(BlobClass, PackId)> {
    let class = match name.as_bytes().first() {
        Some(b'p') => BlobClass::Data,
        Some(b'q') => BlobClass::Metadata,
        _ => return Err(Error::corrupt("pack name", name.to_string())),
    };
    let id = PackId::from_hex(&name[1..]).map_err(|_| Error::corrupt("pack name", name.to_string()))?;
    Ok((class, id))
}
