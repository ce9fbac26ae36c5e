//! The repository-server client: implements the engine's `Access`, so every snapshot command works through
//! a server unchanged. It owns a small tokio runtime that drives the QUIC connection; the engine's plain
//! threads (CLI, backup workers) call in with `Handle::block_on`, each request on its own stream, so
//! several workers upload at once and QUIC flow control provides backpressure. It must not be called from
//! inside an async context.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use cairn_engine::access::{Access, BlobSession, PendingClaim, PreparedBlob};
use cairn_engine::backup::Progress;
use cairn_engine::chunker::ChunkerParams;
use cairn_engine::compress;
use cairn_engine::crypto::keys::HashingKey;
use cairn_engine::ids::{ContentId, SnapshotId};
use cairn_engine::snapshot::Snapshot;
use cairn_engine::tenants::TenantKeys;
use cairn_engine::{content, Error, Result};
use tokio::runtime::{Handle, Runtime};

use crate::protocol::frame::{decode_body, encode_uploads_frame, frame_length, OutUpload, MAX_FRAME_BYTES};
use crate::protocol::{
    encode_frame, snapshot_cursor, BlobPayload, ErrorCode, Request, Response, MAX_BATCH, MAX_PUT_BLOBS, MAX_READ_BLOBS,
    PROOF_OF_POSSESSION,
};
use crate::server::client_transport;
use crate::tls::{parse_fingerprint, PinnedVerifier};

/// A connection to a repository server, logged in.
pub struct RemoteRepository {
    runtime: Runtime,
    /// Held for the connection's lifetime (its socket and driver).
    _endpoint: quinn::Endpoint,
    conn: quinn::Connection,
    hashing: HashingKey,
    /// An admin's copy of the isolated users' hashing keys, fetched when content does not match `hashing`.
    tenants: TenantKeys,
    chunker: ChunkerParams,
    level: i32,
    /// The account this connection is logged in as (`USER@HOST`).
    pub user: String,
    pub admin: bool,
    pub repository_id: String,
    /// What this connection's backups uploaded.
    uploaded: Arc<Uploaded>,
    /// The key proofs of possession are made with on this connection.
    proof_key: [u8; 32],
}

/// Uploads counted over a connection's life: how many `PutBlobs` requests carried how many blobs.
#[derive(Debug, Default)]
struct Uploaded {
    requests: AtomicU64,
    blobs: AtomicU64,
}

/// Parses `quic://HOST:PORT`.
pub fn parse_url(url: &str) -> Result<(String, SocketAddr)> {
    use std::net::ToSocketAddrs;
    let rest = url
        .strip_prefix("quic://")
        .ok_or_else(|| Error::InvalidArgument(format!("server URL {url:?} must look like quic://HOST:PORT")))?;
    let rest = rest.trim_end_matches('/');
    let addr = rest
        .to_socket_addrs()
        .map_err(|e| Error::InvalidArgument(format!("server URL {url:?}: {e}")))?
        .next()
        .ok_or_else(|| Error::InvalidArgument(format!("server URL {url:?} resolves to nothing")))?;
    let host = rest.rsplit_once(':').map(|(h, _)| h.trim_matches(['[', ']'])).unwrap_or(rest).to_string();
    Ok((host, addr))
}

fn remote_error(code: ErrorCode, message: String) -> Error {
    match code {
        ErrorCode::NotFound => Error::NotFound(message),
        ErrorCode::PermissionDenied => Error::Denied(message),
        ErrorCode::AuthenticationFailed => Error::Remote(format!("authentication failed: {message}")),
        ErrorCode::Corrupt => Error::corrupt("server reply", message),
        _ => Error::Remote(message),
    }
}

/// Sends one request and returns the response's frame body, undecoded.
async fn call_body(conn: &quinn::Connection, request: Request<'_>) -> Result<Vec<u8>> {
    send_frame(conn, vec![bytes::Bytes::from(encode_frame(&request))]).await
}

/// Sends one request frame given in pieces and returns the response's frame body, undecoded.
async fn send_frame(conn: &quinn::Connection, mut pieces: Vec<bytes::Bytes>) -> Result<Vec<u8>> {
    let io = |e: String| Error::Remote(format!("connection: {e}"));
    let (mut send, mut recv) = conn.open_bi().await.map_err(|e| io(e.to_string()))?;
    // An upload's payloads go to QUIC as they are, not copied into a frame buffer first.
    send.write_all_chunks(&mut pieces).await.map_err(|e| io(e.to_string()))?;
    send.finish().map_err(|e| io(e.to_string()))?;
    let mut prefix = [0u8; 4];
    recv.read_exact(&mut prefix).await.map_err(|e| io(e.to_string()))?;
    let len = frame_length(prefix).map_err(|e| io(e.to_string()))?;
    crate::wire::read_body(&mut recv, len).await.map_err(io)
}

/// Decodes a response body; its payloads borrow from `body`. A server error becomes an `Err`.
fn decode_response(body: &[u8]) -> Result<Response<'_>> {
    match decode_body::<Response<'_>>(body).map_err(|e| Error::Remote(format!("connection: {e}")))? {
        Response::Error { code, message } => Err(remote_error(code, message)),
        other => Ok(other),
    }
}

async fn call(conn: &quinn::Connection, request: Request<'_>) -> Result<Response<'static>> {
    let body = call_body(conn, request).await?;
    decode_response(&body).map(Response::into_owned)
}

/// `part` as a slice of `body` when it lies inside it (a payload decoded borrowing the body), else a copy.
fn slice_of(body: &bytes::Bytes, part: &[u8]) -> bytes::Bytes {
    let start = (part.as_ptr() as usize).wrapping_sub(body.as_ptr() as usize);
    match start.checked_add(part.len()) {
        Some(end) if start <= body.len() && end <= body.len() => body.slice(start..end),
        _ => bytes::Bytes::copy_from_slice(part),
    }
}

fn unexpected(r: Response<'_>) -> Error {
    Error::Remote(format!("unexpected reply {:?}", std::mem::discriminant(&r)))
}

impl RemoteRepository {
    /// Connects, verifies the pinned certificate and logs in.
    pub fn connect(url: &str, fingerprint: &str, user: &str, password: &str) -> Result<Self> {
        let (host, addr) = parse_url(url)?;
        let pin = parse_fingerprint(fingerprint).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let verifier = PinnedVerifier::new(pin);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("cairn-quic")
            .enable_all()
            .build()
            .map_err(|e| Error::Remote(format!("starting the network runtime: {e}")))?;
        let endpoint = {
            let _guard = runtime.enter();
            client_transport(verifier.clone(), addr).map_err(|e| Error::Remote(e.to_string()))?
        };
        let server_name = if host.parse::<std::net::IpAddr>().is_ok() { "localhost".to_string() } else { host };
        let conn = runtime.block_on(async {
            let connecting =
                endpoint.connect(addr, &server_name).map_err(|e| Error::Remote(format!("connecting to {url}: {e}")))?;
            match tokio::time::timeout(std::time::Duration::from_secs(15), connecting).await {
                Ok(Ok(conn)) => Ok(conn),
                Ok(Err(e)) => Err(match verifier.presented_hex() {
                    Some(seen) if seen != verifier.expected_hex() => Error::Remote(format!(
                        "server certificate fingerprint mismatch: pinned {}, server presented {seen}",
                        verifier.expected_hex()
                    )),
                    _ => Error::Remote(format!("connecting to {url}: {e}")),
                }),
                Err(_) => Err(Error::Remote(format!("connecting to {url}: timed out"))),
            }
        })?;
        let hello = Request::Hello {
            protocol: crate::protocol::PROTOCOL_VERSION.into(),
            user: user.to_string(),
            password: password.to_string(),
        };
        match runtime.block_on(call(&conn, hello))? {
            Response::Welcome { user, admin, hashing_key, chunker, compression_level, repository_id, proof_key } => {
                Ok(Self {
                    runtime,
                    _endpoint: endpoint,
                    conn,
                    hashing: HashingKey::from_bytes(hashing_key),
                    tenants: TenantKeys::default(),
                    chunker: ChunkerParams { min: chunker.0, avg: chunker.1, max: chunker.2 },
                    level: compression_level,
                    user,
                    admin,
                    repository_id,
                    uploaded: Arc::default(),
                    proof_key,
                })
            }
            other => Err(unexpected(other)),
        }
    }

    fn request(&self, request: Request<'_>) -> Result<Response<'static>> {
        self.runtime.block_on(call(&self.conn, request))
    }

    /// Upload requests (`PutBlobs`) sent over this connection so far, and the blobs they carried.
    pub fn uploads(&self) -> (u64, u64) {
        (self.uploaded.requests.load(Relaxed), self.uploaded.blobs.load(Relaxed))
    }

    /// A blob's plaintext from its payload as sent in a reply held in `body`. Trust nothing: it must hash to
    /// the id asked for. A blob stored raw comes back as a slice of the body, not a copy.
    fn plaintext(&self, id: &ContentId, body: &bytes::Bytes, blob: &BlobPayload<'_>) -> Result<bytes::Bytes> {
        let compression = compress::Compression::from_byte(blob.compression)?;
        let payload = slice_of(body, &blob.payload);
        let plain = compress::decompress_shared(compression, payload, blob.raw_len as usize, &format!("blob {id}"))?;
        self.verify(id, &plain)?;
        Ok(plain)
    }

    /// Checks content against this user's hashing key; an admin also tries the isolated users' keys (asked
    /// of the server on a miss), since it may restore their snapshots.
    fn verify(&self, id: &ContentId, plain: &[u8]) -> Result<()> {
        if !self.admin {
            return content::verify_id(&self.hashing, id, plain);
        }
        self.tenants.verify(&self.hashing, id, plain, || self.tenant_keys())
    }

    /// The isolated users' hashing keys (admins only; others are refused).
    pub fn tenant_keys(&self) -> Result<Vec<HashingKey>> {
        match self.request(Request::TenantKeys)? {
            Response::TenantKeys { keys } => Ok(keys.into_iter().map(HashingKey::from_bytes).collect()),
            other => Err(unexpected(other)),
        }
    }

    /// All snapshots in one reply (`ListSnapshots`), from a server that does not page them yet.
    fn list_snapshots_at_once(&self) -> Result<Vec<Snapshot>> {
        match self.request(Request::ListSnapshots)? {
            Response::Snapshots { json } => {
                let mut snaps: Vec<Snapshot> =
                    serde_json::from_slice(&json).map_err(|e| Error::Remote(e.to_string()))?;
                snaps.sort_by_key(|s| (s.start_time, s.id));
                Ok(snaps)
            }
            other => Err(unexpected(other)),
        }
    }

    /// Repository facts as JSON.
    pub fn status(&self) -> Result<serde_json::Value> {
        match self.request(Request::Status)? {
            Response::Status { json } => serde_json::from_slice(&json).map_err(|e| Error::Remote(e.to_string())),
            other => Err(unexpected(other)),
        }
    }
}

/// The longest a client waits for its connection close to be sent when it is done.
const CLOSE_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

impl Drop for RemoteRepository {
    fn drop(&mut self) {
        let stats = self.conn.stats();
        let (requests, blobs) = self.uploads();
        tracing::debug!("uploaded {blobs} blobs in {requests} requests");
        tracing::debug!(
            "connection: path MTU {} bytes, {} datagrams sent ({} bytes), {} received ({} bytes), rtt {:?}, lost {} packets",
            stats.path.current_mtu,
            stats.udp_tx.datagrams,
            stats.udp_tx.bytes,
            stats.udp_rx.datagrams,
            stats.udp_rx.bytes,
            stats.path.rtt,
            stats.path.lost_packets
        );
        if self.conn.close_reason().is_some() {
            return; // Closed already (by the server, a timeout or a lost network): nothing to send.
        }
        // Wait until the close has gone out, so the server learns of it now rather than at its idle timeout,
        // but not for the drain period after it that `Endpoint::wait_idle` waits out (three probe timeouts,
        // about 80 ms even on loopback, measured at the end of every command). quinn counts a datagram when
        // its driver builds it, just before handing it to the socket. Best effort: a delayed acknowledgement
        // built between these two lines ends the wait early, and a datagram the socket could not take yet is
        // counted before it leaves; a close that never leaves costs the server its idle timeout, as a lost
        // one does.
        let sent = self.conn.stats().udp_tx.datagrams;
        self.conn.close(0u32.into(), b"bye");
        let conn = self.conn.clone();
        let _ = self.runtime.block_on(async {
            tokio::time::timeout(CLOSE_WAIT, async {
                while conn.stats().udp_tx.datagrams == sent {
                    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                }
            })
            .await
        });
    }
}

impl Access for RemoteRepository {
    fn hashing_key(&self) -> &HashingKey {
        &self.hashing
    }

    fn chunker_params(&self) -> ChunkerParams {
        self.chunker
    }

    fn compression_level(&self) -> i32 {
        self.level
    }

    /// A page at a time, so that no reply passes the frame limit however many snapshots there are.
    fn list_snapshots(&self) -> Result<Vec<Snapshot>> {
        let mut snaps: Vec<Snapshot> = Vec::new();
        let mut after = None;
        loop {
            let (json, more) = match self.request(Request::ListSnapshotsAfter { after }) {
                Ok(Response::SnapshotsPage { json, more }) => (json, more),
                // A server from before pages (2026-11-27) cannot decode the request: one reply for all.
                Err(Error::Remote(message)) if after.is_none() && message.starts_with("malformed message") => {
                    return self.list_snapshots_at_once();
                }
                Ok(other) => return Err(unexpected(other)),
                Err(e) => return Err(e),
            };
            let page: Vec<Snapshot> = serde_json::from_slice(&json).map_err(|e| Error::Remote(e.to_string()))?;
            let Some(last) = page.last() else {
                return match more {
                    true => Err(Error::Remote("an empty page of snapshots that says more follow".into())),
                    false => Ok(snaps),
                };
            };
            let next = snapshot_cursor(last);
            if after.is_some_and(|a| next <= a) {
                return Err(Error::Remote("a page of snapshots out of order".into()));
            }
            after = Some(next);
            snaps.extend(page);
            if !more {
                return Ok(snaps);
            }
        }
    }

    fn write_snapshot(&self, snap: &Snapshot) -> Result<()> {
        let json = serde_json::to_vec(snap).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        match self.request(Request::PutSnapshot { json })? {
            Response::Done => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    fn delete_snapshot(&self, id: &SnapshotId) -> Result<()> {
        match self.request(Request::DeleteSnapshot { id: *id })? {
            Response::Done => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    fn read_blob(&self, id: &ContentId) -> Result<Vec<u8>> {
        let body = bytes::Bytes::from(self.runtime.block_on(call_body(&self.conn, Request::ReadBlob { id: *id }))?);
        match decode_response(&body)? {
            Response::Blob { compression, raw_len, payload } => {
                self.plaintext(id, &body, &BlobPayload { compression, raw_len, payload }).map(Vec::from)
            }
            other => Err(unexpected(other)),
        }
    }

    /// One round trip per [`MAX_READ_BLOBS`] ids (or per 3 MiB of reply, whichever is less).
    fn read_blobs(&self, ids: &[ContentId]) -> Result<Vec<bytes::Bytes>> {
        let mut out = Vec::with_capacity(ids.len());
        let mut rest = ids;
        while !rest.is_empty() {
            let part = &rest[..rest.len().min(MAX_READ_BLOBS)];
            // The payloads are decompressed straight from the reply body (raw ones are slices of it).
            let body = self.runtime.block_on(call_body(&self.conn, Request::ReadBlobs { ids: part.to_vec() }))?;
            let body = bytes::Bytes::from(body);
            match decode_response(&body)? {
                Response::Blobs { blobs } if !blobs.is_empty() && blobs.len() <= part.len() => {
                    for (id, blob) in part.iter().zip(&blobs) {
                        out.push(self.plaintext(id, &body, blob)?);
                    }
                    rest = &rest[blobs.len()..];
                }
                other => return Err(unexpected(other)),
            }
        }
        Ok(out)
    }

    /// A non-admin never loads isolated users' keys, so it checks its own key alone.
    fn matches_known_key(&self, id: &ContentId, plaintext: &[u8]) -> bool {
        self.tenants.matches_known(&self.hashing, id, plaintext)
    }

    fn blob_sizes(&self, ids: &[ContentId]) -> Result<Vec<Option<u32>>> {
        let mut out = Vec::with_capacity(ids.len());
        for part in ids.chunks(MAX_BATCH) {
            match self.request(Request::BlobSizes { ids: part.to_vec() })? {
                Response::Sizes { sizes } if sizes.len() == part.len() => out.extend(sizes),
                other => return Err(unexpected(other)),
            }
        }
        Ok(out)
    }

    fn open_session(&self, progress: Arc<Progress>) -> Result<Box<dyn BlobSession>> {
        Ok(Box::new(RemoteSession {
            progress,
            handle: self.runtime.handle().clone(),
            conn: self.conn.clone(),
            claimed: Mutex::new(std::collections::HashSet::new()),
            prove: Arc::default(),
            proof_key: self.proof_key,
            uploads: Arc::new(tokio::sync::Semaphore::new(UPLOADS_IN_FLIGHT)),
            batch: Mutex::new(Gathered::default()),
            failure: Arc::new(Mutex::new(None)),
            uploaded: self.uploaded.clone(),
        }))
    }
}

/// Uploads a session keeps in flight at once (each a `PutBlobs` on its own stream). Workers go on
/// compressing while the server verifies and packs; when this many are outstanding, `store` waits
/// (backpressure), so at most this many batches (each under 1 MiB plus one chunk: 3 MiB with the default
/// chunker) are buffered for sending, plus the one being gathered.
const UPLOADS_IN_FLIGHT: usize = 8;
/// Payload bytes gathered into one upload: most chunks are far smaller (a small file is one chunk), and one
/// request per chunk cost a stream, a reply and a hop to a blocking thread on the server for each.
const UPLOAD_BATCH_BYTES: usize = 1 << 20;
/// Payload bytes a `PutBlobs` frame may carry: the frame limit less a blob's header (at most 44 bytes) for
/// each of the most blobs it may hold. A single blob always fits (a chunk is at most 16 MiB).
const PUT_BLOBS_PAYLOAD_LIMIT: usize = MAX_FRAME_BYTES - 64 * MAX_PUT_BLOBS;

/// Blobs gathered for the next `PutBlobs`, and their payload bytes.
#[derive(Default)]
struct Gathered {
    blobs: Vec<OutUpload>,
    bytes: usize,
}

impl Gathered {
    /// Adds a blob; returns the batches now ready to send (none, one, or two when this blob would have
    /// pushed the gathered ones past the frame limit and is itself a full batch).
    fn add(&mut self, upload: OutUpload) -> Vec<Vec<OutUpload>> {
        let mut ready = Vec::new();
        // A batch never outgrows a frame: one that this blob would push past the limit goes first.
        if !self.blobs.is_empty() && self.bytes + upload.payload.len() > PUT_BLOBS_PAYLOAD_LIMIT {
            ready.push(std::mem::take(self).blobs);
        }
        self.bytes += upload.payload.len();
        self.blobs.push(upload);
        if self.bytes >= UPLOAD_BATCH_BYTES || self.blobs.len() >= MAX_PUT_BLOBS {
            ready.push(std::mem::take(self).blobs);
        }
        ready
    }
}

/// A backup through the server: claims in batches, uploads compressed blobs without waiting for each reply.
struct RemoteSession {
    /// Where waiting for an upload slot is recorded.
    progress: Arc<Progress>,
    handle: Handle,
    conn: quinn::Connection,
    /// Ids this session already claimed (so a chunk repeated within the backup is sent once).
    claimed: Mutex<std::collections::HashSet<ContentId>>,
    /// Ids the server has but this user may not read yet: `store` sends a proof of possession for them
    /// instead of the blob.
    prove: Arc<Mutex<std::collections::HashSet<ContentId>>>,
    proof_key: [u8; 32],
    uploads: Arc<tokio::sync::Semaphore>,
    /// Blobs gathered for the next upload.
    batch: Mutex<Gathered>,
    /// The first upload that failed; reported by the next call and by `finish`.
    failure: Arc<Mutex<Option<Error>>>,
    /// The connection's upload counts.
    uploaded: Arc<Uploaded>,
}

impl RemoteSession {
    fn check(&self) -> Result<()> {
        match self.failure.lock().unwrap_or_else(|p| p.into_inner()).take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl RemoteSession {
    /// Sends `blobs` in one request without waiting for the answer, once fewer than [`UPLOADS_IN_FLIGHT`]
    /// uploads are unanswered.
    fn upload(&self, blobs: Vec<OutUpload>) -> Result<()> {
        let waiting = std::time::Instant::now();
        let permit = self.handle.block_on(self.uploads.clone().acquire_owned());
        cairn_engine::backup::stats::StageTimes::add(&self.progress.stages.worker_blocked, waiting);
        let permit = permit.map_err(|_| Error::Remote("upload queue closed".into()))?;
        self.uploaded.requests.fetch_add(1, Relaxed);
        self.uploaded.blobs.fetch_add(blobs.len() as u64, Relaxed);
        let (conn, failure) = (self.conn.clone(), self.failure.clone());
        self.handle.spawn(async move {
            let outcome = match send_frame(&conn, encode_uploads_frame(blobs)).await {
                Ok(body) => match decode_response(&body) {
                    Ok(Response::Done) => Ok(()),
                    Ok(other) => Err(unexpected(other)),
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            };
            if let Err(e) = outcome {
                failure.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(e);
            }
            drop(permit);
        });
        Ok(())
    }

    fn request(&self, request: Request<'_>) -> Result<Response<'static>> {
        self.handle.block_on(call(&self.conn, request))
    }
}

/// Asks the server which of `fresh` it lacks (claiming them for this connection), in batches: for each, whether
/// something must be sent, and whether that is a proof of possession rather than the blob.
async fn ask_missing(conn: &quinn::Connection, fresh: &[ContentId]) -> Result<HashMap<ContentId, (bool, bool)>> {
    let mut missing = HashMap::with_capacity(fresh.len());
    for part in fresh.chunks(MAX_BATCH) {
        match call(conn, Request::Claim { ids: part.to_vec() }).await? {
            Response::Claimed { missing: m, prove: p } if m.len() == part.len() && p.len() == part.len() => {
                missing.extend(part.iter().copied().zip(m.into_iter().zip(p)))
            }
            other => return Err(unexpected(other)),
        }
    }
    Ok(missing)
}

impl BlobSession for RemoteSession {
    fn claim(&self, ids: &[ContentId]) -> Result<Vec<bool>> {
        self.start_claim(ids).wait()
    }

    /// The question goes out at once; the caller blocks only when it asks for the answer.
    fn start_claim(&self, ids: &[ContentId]) -> PendingClaim {
        let fresh: Vec<ContentId> = {
            let mut claimed = self.claimed.lock().unwrap_or_else(|p| p.into_inner());
            ids.iter().filter(|id| claimed.insert(**id)).copied().collect()
        };
        if fresh.is_empty() {
            // All asked before by this session: another caller stores them.
            return PendingClaim::Ready(Ok(vec![false; ids.len()]));
        }
        let ids = ids.to_vec();
        let conn = self.conn.clone();
        let prove = self.prove.clone();
        let (answer, answered) = tokio::sync::oneshot::channel();
        self.handle.spawn(async move {
            let _ = answer.send(ask_missing(&conn, &fresh).await);
        });
        PendingClaim::Waiting(Box::new(move || {
            let missing = answered.blocking_recv().map_err(|_| Error::Remote("connection closed".into()))??;
            prove
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend(missing.iter().filter(|(_, (_, prove))| *prove).map(|(id, _)| *id));
            // An id repeated within `ids` is sent once: only its first occurrence is claimed.
            let mut seen = std::collections::HashSet::new();
            Ok(ids.iter().map(|id| seen.insert(*id) && missing.get(id).is_some_and(|(m, _)| *m)).collect())
        }))
    }

    /// The parent snapshot's chunks are kept by the server (maintenance never removes what a snapshot
    /// references), so a client trusts them.
    fn is_stored(&self, _id: &ContentId) -> bool {
        true
    }

    fn checks_storage(&self) -> bool {
        false
    }

    fn proves(&self, id: &ContentId) -> bool {
        self.prove.lock().unwrap_or_else(|p| p.into_inner()).contains(id)
    }

    /// Adds the blob (or, for content the server has but this user may not read yet, a proof that the client
    /// holds it) to the next upload, and sends that once it is full. Returns the blob bytes sent (0 for a
    /// proof: nothing is stored).
    fn store(&self, blob: PreparedBlob<'_>) -> Result<u64> {
        self.check()?;
        let proof = self.prove.lock().unwrap_or_else(|p| p.into_inner()).remove(&blob.id);
        let (compression, payload, sent) = match proof {
            true => {
                let proof = blake3::keyed_hash(&self.proof_key, blob.plaintext);
                (PROOF_OF_POSSESSION, bytes::Bytes::copy_from_slice(proof.as_bytes()), 0)
            }
            false => {
                let payload = bytes::Bytes::copy_from_slice(blob.payload());
                let sent = payload.len() as u64;
                (blob.compression as u8, payload, sent)
            }
        };
        let upload = OutUpload {
            class: blob.class.to_byte(),
            id: blob.id,
            compression,
            raw_len: blob.plaintext.len() as u32,
            payload,
        };
        let full = self.batch.lock().unwrap_or_else(|p| p.into_inner()).add(upload);
        for blobs in full {
            self.upload(blobs)?;
        }
        Ok(sent)
    }

    fn commit(self: Box<Self>, snapshot: &Snapshot) -> Result<()> {
        let rest = std::mem::take(&mut *self.batch.lock().unwrap_or_else(|p| p.into_inner())).blobs;
        if !rest.is_empty() {
            self.upload(rest)?;
        }
        // Every upload must be answered before the server is asked to record the snapshot.
        let all = UPLOADS_IN_FLIGHT as u32;
        let _all = self
            .handle
            .block_on(self.uploads.clone().acquire_many_owned(all))
            .map_err(|_| Error::Remote("upload queue closed".into()))?;
        self.check()?;
        let json = serde_json::to_vec(snapshot).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        match self.request(Request::PutSnapshot { json })? {
            Response::Done => Ok(()),
            other => Err(unexpected(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(len: usize) -> OutUpload {
        OutUpload {
            class: 0,
            id: ContentId([1; 32]),
            compression: 0,
            raw_len: len as u32,
            payload: vec![0; len].into(),
        }
    }

    fn sizes(batches: &[Vec<OutUpload>]) -> Vec<Vec<usize>> {
        batches.iter().map(|b| b.iter().map(|u| u.payload.len()).collect()).collect()
    }

    /// Small blobs gather until about 1 MiB or 256 blobs; a batch never outgrows the frame limit, however
    /// large the next chunk (up to the 16 MiB FastCDC allows).
    #[test]
    fn batches_fill_to_a_mebibyte_and_never_pass_the_frame_limit() {
        let mut g = Gathered::default();
        let mut sent = Vec::new();
        for _ in 0..300 {
            sent.extend(g.add(blob(10)));
        }
        assert_eq!(sizes(&sent), vec![vec![10; 256]]);
        assert_eq!(g.blobs.len(), 44);

        let mut g = Gathered::default();
        assert!(g.add(blob(600 << 10)).is_empty());
        // A 16 MiB chunk after 600 KiB would make a frame over the limit: the 600 KiB go alone first.
        let sent = g.add(blob(16 << 20));
        assert_eq!(sizes(&sent), vec![vec![600 << 10], vec![16 << 20]]);
        assert!(g.blobs.is_empty() && g.bytes == 0);
        for batch in &sent {
            let frame: usize =
                encode_uploads_frame(batch.iter().map(|u| OutUpload { payload: u.payload.clone(), ..*u }).collect())
                    .iter()
                    .map(|p| p.len())
                    .sum();
            assert!(frame - 4 <= MAX_FRAME_BYTES, "{frame}");
        }

        // Under the limit, a large chunk joins the batch and sends it.
        let mut g = Gathered::default();
        assert!(g.add(blob(100 << 10)).is_empty());
        assert_eq!(sizes(&g.add(blob(2 << 20))), vec![vec![100 << 10, 2 << 20]]);
    }
}
