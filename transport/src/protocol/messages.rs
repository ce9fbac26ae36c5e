//! Request and response messages. Payload fields are `Cow` byte strings: decoding borrows them from the
//! frame body (an upload's payload or a read reply's blobs are most of a frame's bytes, and copying them
//! out cost the server and the client a pass over every byte), while encoders may own them.

use std::borrow::Cow;

use cairn_engine::ids::{ContentId, SnapshotId};
use serde::{Deserialize, Serialize};

/// Most ids in one `Claim` or `BlobSizes` request.
pub const MAX_BATCH: usize = 4096;
/// Most ids in one `ReadBlobs` request.
pub const MAX_READ_BLOBS: usize = 256;
/// Most blobs in one `PutBlobs` request (whose frame is bounded by `MAX_FRAME_BYTES` as well).
pub const MAX_PUT_BLOBS: usize = 256;
/// Payload bytes a `Blobs` reply carries at most (it always carries at least one blob): the server answers
/// a prefix of the ids asked for and the client asks again for the rest.
pub const MAX_READ_REPLY_BYTES: usize = 3 << 20;

/// What a client asks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request<'a> {
    /// Must be the first request of a connection.
    Hello {
        protocol: u32,
        user: String,
        password: String,
    },
    /// Which of these blobs must be sent? Claims the missing ones for this connection's backup.
    Claim {
        ids: Vec<ContentId>,
    },
    /// A blob's payload: the zstd frame (compression 1) or the plaintext (compression 0).
    PutBlob {
        class: u8,
        id: ContentId,
        compression: u8,
        raw_len: u32,
        #[serde(borrow, with = "serde_bytes")]
        payload: Cow<'a, [u8]>,
    },
    /// Snapshots this user may see (JSON array of snapshot records).
    ListSnapshots,
    /// Make everything sent so far durable and indexed, then record this snapshot (JSON of the record).
    PutSnapshot {
        #[serde(with = "serde_bytes")]
        json: Vec<u8>,
    },
    DeleteSnapshot {
        id: SnapshotId,
    },
    /// A blob's payload, as stored (compressed or raw).
    ReadBlob {
        id: ContentId,
    },
    /// Plaintext lengths of blobs.
    BlobSizes {
        ids: Vec<ContentId>,
    },
    /// Repository facts for `repository status`.
    Status,
    /// Several blobs' payloads at once (at most [`MAX_READ_BLOBS`]); answered with `Blobs` for a prefix
    /// of the ids.
    ReadBlobs {
        ids: Vec<ContentId>,
    },
    /// Admins only: the hashing keys of the isolated users that have snapshots, so an admin's client can
    /// check those users' content when it restores or verifies their snapshots.
    TenantKeys,
    /// Several blobs at once (at most [`MAX_PUT_BLOBS`]), each checked and stored as a `PutBlob` would be,
    /// in order; answered with `Done` once all are, or with the first error.
    PutBlobs {
        #[serde(borrow)]
        blobs: Vec<UploadBlob<'a>>,
    },
    /// Snapshots this user may see, a page at a time, in the order of [`snapshot_cursor`] (start time,
    /// then id), starting after `after` (from the first when `None`); answered with `SnapshotsPage`.
    ListSnapshotsAfter {
        after: Option<SnapshotCursor>,
    },
}

/// Where a snapshot stands in the order `ListSnapshotsAfter` pages through: its start time (seconds since
/// the Unix epoch, then nanoseconds), then its id; the order of `(start_time, id)`.
pub type SnapshotCursor = (i64, u32, SnapshotId);

/// A snapshot's [`SnapshotCursor`].
pub fn snapshot_cursor(snapshot: &cairn_engine::snapshot::Snapshot) -> SnapshotCursor {
    (snapshot.start_time.timestamp(), snapshot.start_time.timestamp_subsec_nanos(), snapshot.id)
}

/// JSON bytes of snapshot records a `SnapshotsPage` carries at most (beyond that only when its one record
/// is larger), within the frame limit.
pub const SNAPSHOT_PAGE_BYTES: usize = 8 << 20;

/// The `compression` byte of an upload that carries a proof of possession instead of the blob: its payload is
/// `keyed BLAKE3-256(proof key, plaintext)` (32 bytes) and `raw_len` the plaintext's length.
pub const PROOF_OF_POSSESSION: u8 = 2;

/// One blob of a `PutBlobs` request: the fields of a `PutBlob`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadBlob<'a> {
    pub class: u8,
    pub id: ContentId,
    pub compression: u8,
    pub raw_len: u32,
    #[serde(borrow, with = "serde_bytes")]
    pub payload: Cow<'a, [u8]>,
}

/// One blob in a `Blobs` reply, as stored (zstd frame or raw plaintext).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobPayload<'a> {
    pub compression: u8,
    pub raw_len: u32,
    #[serde(borrow, with = "serde_bytes")]
    pub payload: Cow<'a, [u8]>,
}

/// Stable error classes a client branches on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorCode {
    /// Wrong user name or password (deliberately not told apart).
    AuthenticationFailed,
    /// Too many failed logins from this address; try later.
    RateLimited,
    /// Not logged in yet.
    NotAuthenticated,
    /// The user may not do this.
    PermissionDenied,
    NotFound,
    /// The request was malformed or broke a limit.
    BadRequest,
    /// A blob's payload does not match its id.
    Corrupt,
    /// Something failed on the server.
    Internal,
}

/// What the server answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response<'a> {
    /// Login accepted: what the client needs to chunk, hash and compress (never an encryption key).
    Welcome {
        user: String,
        admin: bool,
        hashing_key: [u8; 32],
        chunker: (u32, u32, u32),
        compression_level: i32,
        repository_id: String,
        /// This connection's key for proofs of possession (see `Claimed`).
        proof_key: [u8; 32],
    },
    /// For each id claimed: `missing` when the client must send something. Then `prove` says what: a proof
    /// that it holds the content (the repository has it, but this user may not read it yet), or else the
    /// blob itself.
    Claimed {
        missing: Vec<bool>,
        prove: Vec<bool>,
    },
    Done,
    Snapshots {
        #[serde(with = "serde_bytes")]
        json: Vec<u8>,
    },
    Blob {
        compression: u8,
        raw_len: u32,
        #[serde(borrow, with = "serde_bytes")]
        payload: Cow<'a, [u8]>,
    },
    Sizes {
        sizes: Vec<Option<u32>>,
    },
    Status {
        #[serde(with = "serde_bytes")]
        json: Vec<u8>,
    },
    Error {
        code: ErrorCode,
        message: String,
    },
    /// Payloads of the first `blobs.len()` ids of a `ReadBlobs`, in order.
    Blobs {
        #[serde(borrow)]
        blobs: Vec<BlobPayload<'a>>,
    },
    /// Hashing keys of the isolated users with snapshots.
    TenantKeys {
        keys: Vec<[u8; 32]>,
    },
    /// A page of `ListSnapshotsAfter`: a JSON array of snapshot records (at least one when `more`), and
    /// whether more follow (ask again after the last one).
    SnapshotsPage {
        #[serde(with = "serde_bytes")]
        json: Vec<u8>,
        more: bool,
    },
}

impl Response<'_> {
    /// The same response, owning its payloads (copied if they were borrowed).
    pub fn into_owned(self) -> Response<'static> {
        let owned = |payload: Cow<'_, [u8]>| Cow::Owned(payload.into_owned());
        match self {
            Response::Welcome { user, admin, hashing_key, chunker, compression_level, repository_id, proof_key } => {
                Response::Welcome { user, admin, hashing_key, chunker, compression_level, repository_id, proof_key }
            }
            Response::Claimed { missing, prove } => Response::Claimed { missing, prove },
            Response::Done => Response::Done,
            Response::Snapshots { json } => Response::Snapshots { json },
            Response::Blob { compression, raw_len, payload } => {
                Response::Blob { compression, raw_len, payload: owned(payload) }
            }
            Response::Sizes { sizes } => Response::Sizes { sizes },
            Response::Status { json } => Response::Status { json },
            Response::Error { code, message } => Response::Error { code, message },
            Response::TenantKeys { keys } => Response::TenantKeys { keys },
            Response::SnapshotsPage { json, more } => Response::SnapshotsPage { json, more },
            Response::Blobs { blobs } => Response::Blobs {
                blobs: blobs
                    .into_iter()
                    .map(|b| BlobPayload { compression: b.compression, raw_len: b.raw_len, payload: owned(b.payload) })
                    .collect(),
            },
        }
    }
}
