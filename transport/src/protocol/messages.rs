//! Request and response messages.

use cairn_engine::ids::{ContentId, SnapshotId};
use serde::{Deserialize, Serialize};

/// Most ids in one `Claim` or `BlobSizes` request.
pub const MAX_BATCH: usize = 4096;

/// What a client asks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
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
        payload: Vec<u8>,
    },
    /// Snapshots this user may see (JSON array of snapshot records).
    ListSnapshots,
    /// Make everything sent so far durable and indexed, then record this snapshot (JSON of the record).
    PutSnapshot {
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
pub enum Response {
    /// Login accepted: what the client needs to chunk, hash and compress (never an encryption key).
    Welcome {
        user: String,
        admin: bool,
        hashing_key: [u8; 32],
        chunker: (u32, u32, u32),
        compression_level: i32,
        repository_id: String,
    },
    Claimed {
        missing: Vec<bool>,
    },
    Done,
    Snapshots {
        json: Vec<u8>,
    },
    Blob {
        compression: u8,
        raw_len: u32,
        payload: Vec<u8>,
    },
    Sizes {
        sizes: Vec<Option<u32>>,
    },
    Status {
        json: Vec<u8>,
    },
    Error {
        code: ErrorCode,
        message: String,
    },
}
