//! zstd compression of one chunk, with the raw fallback: a chunk that does not shrink is stored as is.

use std::borrow::Cow;
use std::cell::RefCell;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How a stored blob's plaintext is compressed. Stored as one byte in pack tables and index entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[repr(u8)]
pub enum Compression {
    /// Stored as is.
    None = 0,
    /// One zstd frame.
    Zstd = 1,
}

impl Compression {
    /// Decodes the stored byte.
    pub fn from_byte(b: u8) -> Result<Self> {
        match b {
            0 => Ok(Compression::None),
            1 => Ok(Compression::Zstd),
            other => Err(Error::corrupt("blob entry", format!("unknown compression {other}"))),
        }
    }
}

/// The zstd levels Cairn offers.
pub const LEVELS: std::ops::RangeInclusive<i32> = 1..=19;

/// The largest plaintext any stored blob may claim, so a damaged entry cannot make a reader allocate
/// without bound.
pub const MAX_RAW_LEN: usize = 64 << 20;

thread_local! {
    static COMPRESSOR: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> = const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
}

/// Compresses `data` at `level` into `out` (cleared first) and returns [`Compression::Zstd`], or returns
/// [`Compression::None`] (leaving `out` empty) when compression would not save anything. `level` 0 means
/// no compression.
pub fn compress_into(level: i32, data: &[u8], out: &mut Vec<u8>) -> Compression {
    out.clear();
    if level == 0 || data.len() < 64 {
        return Compression::None;
    }
    // zstd writes into the vector's spare capacity and fails when it runs out, so a chunk that does not
    // shrink costs at most one attempt and no zero-filling.
    out.reserve(data.len());
    let written = COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().map(|(l, _)| *l) != Some(level) {
            *slot = zstd::bulk::Compressor::new(level).ok().map(|c| (level, c));
        }
        let (_, compressor) = slot.as_mut()?;
        compressor.compress_to_buffer(data, out).ok()
    });
    match written {
        Some(n) if n < data.len() => Compression::Zstd,
        _ => {
            out.clear();
            Compression::None
        }
    }
}

/// Like [`decompress`], for a payload held in shared bytes: a blob stored raw is returned as the same bytes,
/// without a copy (on a restore, the incompressible third of a typical tree).
pub fn decompress_shared(kind: Compression, data: bytes::Bytes, raw_len: usize, what: &str) -> Result<bytes::Bytes> {
    let decompressed = match decompress_borrowed(kind, &data, raw_len, what)? {
        Cow::Borrowed(_) => None,
        Cow::Owned(plain) => Some(plain),
    };
    Ok(decompressed.map_or(data, bytes::Bytes::from))
}

/// Restores a blob's plaintext, which must be exactly `raw_len` bytes.
pub fn decompress(kind: Compression, data: &[u8], raw_len: usize, what: &str) -> Result<Vec<u8>> {
    decompress_borrowed(kind, data, raw_len, what).map(Cow::into_owned)
}

/// Like [`decompress`], but a blob stored raw is returned as `data` itself, not a copy (a server checking
/// uploads, a third of which are typically incompressible, saves copying them).
pub fn decompress_borrowed<'a>(kind: Compression, data: &'a [u8], raw_len: usize, what: &str) -> Result<Cow<'a, [u8]>> {
    if raw_len > MAX_RAW_LEN {
        return Err(Error::corrupt(what, format!("claims {raw_len} bytes, above the limit")));
    }
    let out = match kind {
        Compression::None => Cow::Borrowed(data),
        Compression::Zstd => Cow::Owned(DECOMPRESSOR.with(|cell| {
            let mut slot = cell.borrow_mut();
            if slot.is_none() {
                *slot = Some(
                    zstd::bulk::Decompressor::new().map_err(|e| Error::corrupt(what, format!("zstd context: {e}")))?,
                );
            }
            let decompressor = slot.as_mut().expect("set above");
            let mut out = Vec::with_capacity(raw_len);
            decompressor
                .decompress_to_buffer(data, &mut out)
                .map_err(|e| Error::corrupt(what, format!("zstd: {e}")))?;
            Ok::<_, Error>(out)
        })?),
    };
    if out.len() != raw_len {
        return Err(Error::corrupt(what, format!("{} bytes after decompression, expected {raw_len}", out.len())));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compresses_text_and_keeps_random_raw() {
        let text = b"the quick brown fox jumps over the lazy dog ".repeat(1000);
        let mut out = Vec::new();
        assert_eq!(compress_into(3, &text, &mut out), Compression::Zstd);
        assert!(out.len() < text.len() / 10);
        assert_eq!(decompress(Compression::Zstd, &out, text.len(), "t").unwrap(), text);
        let mut noise = vec![0u8; 100_000];
        blake3::Hasher::new().update(b"seed").finalize_xof().fill(&mut noise);
        assert_eq!(compress_into(3, &noise, &mut out), Compression::None);
        assert!(out.is_empty());
        assert!(decompress(Compression::Zstd, &[1, 2, 3], 10, "t").is_err());
        assert!(decompress(Compression::None, &[1, 2, 3], 4, "t").is_err());
        assert!(matches!(decompress_borrowed(Compression::None, &noise, noise.len(), "t"), Ok(Cow::Borrowed(_))));
        let raw = bytes::Bytes::from(noise.clone());
        let shared = decompress_shared(Compression::None, raw.clone(), noise.len(), "t").unwrap();
        assert_eq!(shared.as_ptr(), raw.as_ptr(), "a raw blob is not copied");
        assert!(decompress_shared(Compression::None, raw, noise.len() + 1, "t").is_err());
        assert_eq!(compress_into(3, &text, &mut out), Compression::Zstd);
        let unpacked = decompress_shared(Compression::Zstd, bytes::Bytes::from(out.clone()), text.len(), "t");
        assert_eq!(unpacked.unwrap(), text);
    }
}
