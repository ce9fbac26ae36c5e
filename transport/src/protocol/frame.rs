//! Frame codec: `length (u32 LE) · version (1) · postcard(message)`. Decoding never panics and never
//! allocates more than the frame it was given.

use serde::{Deserialize, Serialize};

/// The only protocol version this build speaks.
pub const PROTOCOL_VERSION: u8 = 2;
/// Largest frame body: a 16 MiB chunk plus headroom.
pub const MAX_FRAME_BYTES: usize = (16 << 20) + 4096;

/// Errors decoding a frame.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("frame of {0} bytes exceeds the {MAX_FRAME_BYTES}-byte limit")]
    TooLarge(usize),
    #[error("truncated frame")]
    Truncated,
    #[error("unsupported protocol version {0} (this build speaks {PROTOCOL_VERSION})")]
    Version(u8),
    #[error("malformed message: {0}")]
    Malformed(String),
    #[error("{0} trailing bytes after the message")]
    Trailing(usize),
}

/// Encodes a message as a whole frame (length prefix included).
pub fn encode_frame<T: Serialize>(message: &T) -> Vec<u8> {
    let mut out = vec![0u8; 5];
    out[4] = PROTOCOL_VERSION;
    postcard::to_io(message, &mut out).expect("encoding into a Vec cannot fail");
    let len = (out.len() - 4) as u32;
    out[..4].copy_from_slice(&len.to_le_bytes());
    out
}

/// One blob of a `Blobs` reply as the server sends it: the payload shares the buffer it was read into.
pub struct OutBlob {
    pub compression: u8,
    pub raw_len: u32,
    pub payload: bytes::Bytes,
}

/// Encodes a `Blobs` reply as the same bytes as [`encode_frame`] would, but as pieces that share the
/// payloads instead of copying them into one buffer: the payloads are most of a read reply's bytes, and
/// QUIC takes `Bytes` without copying. postcard writes a struct as its fields in order and a byte string
/// as its length then its bytes, so each blob is its header with an empty payload, minus that empty
/// payload's one-byte length, then the real length and the payload.
pub fn encode_blobs_frame(blobs: Vec<OutBlob>) -> Vec<bytes::Bytes> {
    use super::{BlobPayload, Response};
    let mut current = without_empty_tail(postcard::to_stdvec(&Response::Blobs { blobs: Vec::new() }).expect("encodes"));
    push_varint(&mut current, blobs.len() as u64);
    let mut pieces = Vec::with_capacity(2 * blobs.len() + 1);
    for blob in blobs {
        let empty = BlobPayload { compression: blob.compression, raw_len: blob.raw_len, payload: Default::default() };
        current.extend(without_empty_tail(postcard::to_stdvec(&empty).expect("encodes")));
        push_varint(&mut current, blob.payload.len() as u64);
        pieces.push(bytes::Bytes::from(std::mem::take(&mut current)));
        pieces.push(blob.payload);
    }
    if !current.is_empty() {
        pieces.push(bytes::Bytes::from(current));
    }
    with_prefix(pieces)
}

/// One blob of a `PutBlobs` request as the client sends it: the payload is passed to QUIC as it is.
pub struct OutUpload {
    pub class: u8,
    pub id: cairn_engine::ids::ContentId,
    pub compression: u8,
    pub raw_len: u32,
    pub payload: bytes::Bytes,
}

/// Encodes a `PutBlobs` request as the same bytes as [`encode_frame`], in pieces that share the payloads
/// (laid out as in [`encode_blobs_frame`]).
pub fn encode_uploads_frame(blobs: Vec<OutUpload>) -> Vec<bytes::Bytes> {
    use super::{Request, UploadBlob};
    let mut current =
        without_empty_tail(postcard::to_stdvec(&Request::PutBlobs { blobs: Vec::new() }).expect("encodes"));
    push_varint(&mut current, blobs.len() as u64);
    let mut pieces = Vec::with_capacity(2 * blobs.len() + 1);
    for blob in blobs {
        let OutUpload { class, id, compression, raw_len, payload } = blob;
        let empty = UploadBlob { class, id, compression, raw_len, payload: Default::default() };
        current.extend(without_empty_tail(postcard::to_stdvec(&empty).expect("encodes")));
        push_varint(&mut current, payload.len() as u64);
        pieces.push(bytes::Bytes::from(std::mem::take(&mut current)));
        pieces.push(payload);
    }
    if !current.is_empty() {
        pieces.push(bytes::Bytes::from(current));
    }
    with_prefix(pieces)
}

/// A message encoded with an empty trailing byte string, without that string's one-byte length.
fn without_empty_tail(mut encoded: Vec<u8>) -> Vec<u8> {
    debug_assert_eq!(encoded.last(), Some(&0));
    encoded.pop();
    encoded
}

/// Puts the length prefix and version byte in front of a message's pieces.
fn with_prefix(mut pieces: Vec<bytes::Bytes>) -> Vec<bytes::Bytes> {
    let body_len = 1 + pieces.iter().map(|p| p.len()).sum::<usize>();
    let mut prefix = Vec::with_capacity(5);
    prefix.extend_from_slice(&(body_len as u32).to_le_bytes());
    prefix.push(PROTOCOL_VERSION);
    pieces.insert(0, bytes::Bytes::from(prefix));
    pieces
}

/// postcard's varint: 7 bits a byte, low first, high bit set on all but the last.
fn push_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Reads the length prefix of a frame; checks it against the limit before anything is allocated.
pub fn frame_length(prefix: [u8; 4]) -> Result<usize, FrameError> {
    let len = u32::from_le_bytes(prefix) as usize;
    if len > MAX_FRAME_BYTES {
        return Err(FrameError::TooLarge(len));
    }
    if len == 0 {
        return Err(FrameError::Truncated);
    }
    Ok(len)
}

/// Decodes a frame body (the bytes after the length prefix).
/// Byte-string fields of the message borrow from `body`.
pub fn decode_body<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, FrameError> {
    let (&version, rest) = body.split_first().ok_or(FrameError::Truncated)?;
    if version != PROTOCOL_VERSION {
        return Err(FrameError::Version(version));
    }
    let (message, trailing) = postcard::take_from_bytes(rest).map_err(|e| FrameError::Malformed(e.to_string()))?;
    if !trailing.is_empty() {
        return Err(FrameError::Trailing(trailing.len()));
    }
    Ok(message)
}

/// Decodes a whole frame (length prefix included), as read from a stream.
pub fn decode_frame<'a, T: Deserialize<'a>>(frame: &'a [u8]) -> Result<T, FrameError> {
    let prefix: [u8; 4] = frame.get(..4).ok_or(FrameError::Truncated)?.try_into().map_err(|_| FrameError::Truncated)?;
    let len = frame_length(prefix)?;
    let body = frame.get(4..).ok_or(FrameError::Truncated)?;
    if body.len() < len {
        return Err(FrameError::Truncated);
    }
    if body.len() > len {
        return Err(FrameError::Trailing(body.len() - len));
    }
    decode_body(body)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// The piecewise `Blobs` frame is byte for byte the frame postcard would write.
        #[test]
        fn blobs_frame_pieces_equal_the_whole_frame(
            blobs in proptest::collection::vec(
                (0u8..2, any::<u32>(), proptest::collection::vec(any::<u8>(), 0..300)),
                0..12,
            ),
            big in any::<bool>(),
        ) {
            let mut blobs: Vec<crate::protocol::BlobPayload> = blobs
                .into_iter()
                .map(|(compression, raw_len, payload)| crate::protocol::BlobPayload { compression, raw_len, payload: payload.into() })
                .collect();
            if big {
                // Lengths whose varints take three bytes.
                blobs.push(crate::protocol::BlobPayload { compression: 1, raw_len: 1 << 21, payload: vec![7; 70_000].into() });
            }
            let whole = encode_frame(&crate::protocol::Response::Blobs { blobs: blobs.clone() });
            let out = blobs
                .into_iter()
                .map(|b| OutBlob { compression: b.compression, raw_len: b.raw_len, payload: b.payload.into_owned().into() })
                .collect();
            let pieces: Vec<u8> = encode_blobs_frame(out).iter().flat_map(|p| p.iter().copied()).collect();
            prop_assert_eq!(pieces, whole);
        }

        /// The piecewise upload frame is byte for byte the frame postcard would write.
        #[test]
        fn put_blobs_frame_pieces_equal_the_whole_frame(
            blobs in proptest::collection::vec(
                (0u8..2, any::<[u8; 32]>(), 0u8..2, any::<u32>(), proptest::collection::vec(any::<u8>(), 0..300)),
                0..12,
            ),
            big in any::<bool>(),
        ) {
            let mut blobs: Vec<crate::protocol::UploadBlob> = blobs
                .into_iter()
                .map(|(class, id, compression, raw_len, payload)| crate::protocol::UploadBlob {
                    class, id: cairn_engine::ids::ContentId(id), compression, raw_len, payload: payload.into(),
                })
                .collect();
            if big {
                // Lengths whose varints take three bytes.
                blobs.push(crate::protocol::UploadBlob {
                    class: 0, id: cairn_engine::ids::ContentId([9; 32]), compression: 1, raw_len: 1 << 21,
                    payload: vec![7; 70_000].into(),
                });
            }
            let whole = encode_frame(&crate::protocol::Request::PutBlobs { blobs: blobs.clone() });
            let out = blobs
                .into_iter()
                .map(|b| OutUpload {
                    class: b.class, id: b.id, compression: b.compression, raw_len: b.raw_len,
                    payload: b.payload.into_owned().into(),
                })
                .collect();
            let pieces: Vec<u8> = encode_uploads_frame(out).iter().flat_map(|p| p.iter().copied()).collect();
            prop_assert_eq!(pieces, whole);
        }
    }
    use crate::protocol::{Request, Response};

    /// Decoding does not copy payloads: they borrow from the frame.
    #[test]
    fn payloads_borrow_from_the_frame() {
        use std::borrow::Cow;
        let id = cairn_engine::ids::ContentId([5; 32]);
        let frame =
            encode_frame(&Request::PutBlob { class: 0, id, compression: 1, raw_len: 9, payload: vec![1, 2, 3].into() });
        match decode_frame::<Request>(&frame).unwrap() {
            Request::PutBlob { payload: Cow::Borrowed(p), .. } => assert_eq!(p, &[1, 2, 3]),
            other => panic!("{other:?}"),
        }
        let blobs = vec![crate::protocol::BlobPayload { compression: 0, raw_len: 2, payload: vec![8, 9].into() }];
        let frame = encode_frame(&Response::Blobs { blobs });
        match decode_frame::<Response>(&frame).unwrap() {
            Response::Blobs { blobs } => assert!(matches!(&blobs[0].payload, Cow::Borrowed(p) if *p == [8, 9])),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn limits_and_versions() {
        let frame = encode_frame(&Request::ListSnapshots);
        assert_eq!(decode_frame::<Request>(&frame).unwrap(), Request::ListSnapshots);
        let mut wrong = frame.clone();
        wrong[4] = 9;
        assert_eq!(decode_frame::<Request>(&wrong), Err(FrameError::Version(9)));
        assert!(matches!(frame_length((MAX_FRAME_BYTES as u32 + 1).to_le_bytes()), Err(FrameError::TooLarge(_))));
        assert_eq!(decode_frame::<Request>(&frame[..frame.len() - 1]).unwrap_err(), FrameError::Truncated);
    }

    #[test]
    fn snapshot_pages_round_trip() {
        let id = cairn_engine::ids::SnapshotId([7; 16]);
        for after in [None, Some((-5, 999_999_999, id)), Some((i64::MAX, 0, id))] {
            let frame = encode_frame(&Request::ListSnapshotsAfter { after });
            assert_eq!(decode_frame::<Request>(&frame).unwrap(), Request::ListSnapshotsAfter { after });
        }
        let page = Response::SnapshotsPage { json: b"[]".to_vec(), more: true };
        assert_eq!(decode_frame::<Response>(&encode_frame(&page)).unwrap(), page);
    }

    /// The fuzz target's seed corpus (fuzz/corpus/quic_frame) runs here too: nothing panics, and seeds named
    /// `valid-*` decode as requests.
    #[test]
    fn fuzz_seed_corpus() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/quic_frame");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            let request = decode_frame::<Request>(&bytes);
            let _ = decode_frame::<Response>(&bytes);
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name.starts_with("valid-") {
                assert!(request.is_ok(), "{name}: {request:?}");
            }
            seen += 1;
        }
        assert!(seen >= 5, "seed corpus missing");
    }

    proptest! {
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_frame::<Request>(&bytes);
            let _ = decode_frame::<Response>(&bytes);
            let _ = decode_body::<Request>(&bytes);
        }

        #[test]
        fn requests_round_trip(ids in proptest::collection::vec(any::<[u8; 32]>(), 0..50), payload in proptest::collection::vec(any::<u8>(), 0..300)) {
            let ids: Vec<_> = ids.into_iter().map(cairn_engine::ids::ContentId).collect();
            for request in [
                Request::Claim { ids: ids.clone() },
                Request::BlobSizes { ids: ids.clone() },
                Request::PutBlob { class: 1, id: cairn_engine::ids::ContentId([3; 32]), compression: 1, raw_len: 77, payload: payload.clone().into() },
            ] {
                let frame = encode_frame(&request);
                prop_assert_eq!(decode_frame::<Request>(&frame).unwrap(), request);
            }
        }
    }
}
