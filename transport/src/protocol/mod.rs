//! The repository-server protocol (`cairn/1` over QUIC), documented in docs/PROTOCOL.md.
//!
//! Every request travels on its own bidirectional stream: the client writes one request frame and
//! finishes its side; the server answers with one response frame. A frame is a 4-byte little-endian length
//! followed by that many bytes: a version byte (1) and a postcard-encoded message. The codec here is pure
//! (no I/O) and bounds everything it accepts.

pub mod frame;
mod messages;

pub use frame::{decode_frame, encode_frame, FrameError, MAX_FRAME_BYTES, PROTOCOL_VERSION};
pub use messages::{
    snapshot_cursor, BlobPayload, ErrorCode, Request, Response, SnapshotCursor, UploadBlob, MAX_BATCH, MAX_PUT_BLOBS,
    MAX_READ_BLOBS, MAX_READ_REPLY_BYTES, PROOF_OF_POSSESSION, SNAPSHOT_PAGE_BYTES,
};

/// ALPN protocol name of the repository server.
pub const ALPN: &[u8] = b"cairn/1";
