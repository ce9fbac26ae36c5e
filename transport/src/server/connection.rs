//! One client connection: authentication, then one request per bidirectional stream.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use cairn_engine::access::{Access, BlobSession, PreparedBlob};
use cairn_engine::backup::Progress;
use cairn_engine::compress::{self, Compression};
use cairn_engine::content;
use cairn_engine::crypto::keys::{BlobClass, HashingKey};
use cairn_engine::ids::ContentId;
use cairn_engine::index::Location;
use cairn_engine::snapshot::Snapshot;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::{ServerContext, CONNECTION_BUDGET, PLAINTEXT_BUDGET};
use crate::acl::{owns_source, tree_references, Readable, MAX_OWED};
use crate::protocol::frame::{decode_body, encode_blobs_frame, frame_length, OutBlob};
use crate::protocol::{
    encode_frame, snapshot_cursor, ErrorCode, Request, Response, SnapshotCursor, UploadBlob, MAX_BATCH, MAX_PUT_BLOBS,
    MAX_READ_BLOBS, MAX_READ_REPLY_BYTES, PROOF_OF_POSSESSION, PROTOCOL_VERSION, SNAPSHOT_PAGE_BYTES,
};
use crate::users;

/// Who is logged in on this connection.
#[derive(Clone)]
struct Login {
    user: String,
    admin: bool,
    /// The key this user's content ids are checked against: the shared one, or its own when isolated.
    hashing: HashingKey,
    isolated: bool,
}

/// Per-connection state.
struct Conn {
    ctx: Arc<ServerContext>,
    peer: IpAddr,
    login: Mutex<Option<Login>>,
    /// `Hello`s being checked (a storage read and argon2): the login deadline waits for them.
    logging_in: AtomicUsize,
    readable: Mutex<Readable>,
    /// The backup being written, opened by the first blob request.
    session: Mutex<Option<Arc<Box<dyn BlobSession>>>>,
    /// Ids this client was told to send that the repository lacks (stored when they arrive).
    claimed: Mutex<HashSet<ContentId>>,
    /// This connection's key for proofs of possession (sent in `Welcome`).
    proof_key: [u8; 32],
    /// The listing this client is paging through (`ListSnapshotsAfter`): read for its first page, dropped
    /// after its last, so a listing reads the records once rather than once per page, and is one point in time.
    listing: Mutex<Option<Arc<Vec<Snapshot>>>>,
    /// Ids this connection was asked to prove it holds (each proof is taken once).
    to_prove: Mutex<HashSet<ContentId>>,
    /// Bytes of request bodies and read replies this connection may hold at once.
    budget: Arc<Semaphore>,
    /// Bytes of uploaded plaintext being checked at once.
    plaintext: Arc<Semaphore>,
}

type Reply = Result<Response<'static>, (ErrorCode, String)>;

/// A proof that passed the cheap checks: the class it claims, the blob, the proof, where the blob is stored.
struct Claimed {
    class: BlobClass,
    id: ContentId,
    proof: [u8; 32],
    location: Location,
}

/// The answer when uploaded or proven trees name more ids that have not arrived than a connection may owe.
fn too_many_owed() -> (ErrorCode, String) {
    err(ErrorCode::BadRequest, format!("uploaded trees name more than {MAX_OWED} blobs that have not arrived"))
}

/// Stored bytes of the blobs whose proofs of possession are checked with one storage read.
const PROOF_READ_BYTES: usize = 1 << 20;
/// Largest request frame read before the connection has logged in (a `Hello` is a name and a password):
/// an anonymous peer cannot make the server read or hold more.
const MAX_LOGIN_FRAME: usize = 64 << 10;
/// Most blobs a connection may have claimed (told to send) and not sent yet. An honest client has only
/// what is on its way (thousands); claims of ids that never arrive are refused beyond it instead of
/// growing the server's sets (about 100 bytes each).
const MAX_CLAIMED: usize = 1 << 20;
/// A connection that has not logged in this long after its handshake is closed (unless a login is being
/// checked then: it gets another period).
pub const LOGIN_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);
/// The application code the server closes a connection with when it did not log in in time.
pub const CLOSE_NO_LOGIN: u32 = 1;

/// Counts a `Hello` being checked for as long as it lives (also when its stream is dropped midway).
struct LoginInProgress<'a>(&'a AtomicUsize);

impl<'a> LoginInProgress<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Self(count)
    }
}

impl Drop for LoginInProgress<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Times the login deadline is extended for a login being checked, before the connection is closed anyway
/// (a peer sending `Hello` after `Hello` cannot keep an anonymous connection open).
const LOGIN_EXTENSIONS: u32 = 2;

/// A user name as a client sent it, for a log line: escaped (no forged lines) and at most 64 characters.
fn shown(name: &str) -> String {
    let cut: String = name.chars().take(64).collect();
    if cut.len() < name.len() {
        format!("{cut:?}...")
    } else {
        format!("{cut:?}")
    }
}

/// What goes back on a stream: a message, or a read reply whose payloads are slices of the buffers the packs
/// were read and decrypted in, sent as they are.
enum Outgoing {
    Message(Response<'static>),
    Blobs(Vec<OutBlob>),
}

type Answer = Result<Outgoing, (ErrorCode, String)>;

fn err(code: ErrorCode, message: impl Into<String>) -> (ErrorCode, String) {
    (code, message.into())
}

fn engine_err(e: cairn_engine::Error) -> (ErrorCode, String) {
    use cairn_engine::ErrorKind;
    let code = match e.kind() {
        ErrorKind::NotFound => ErrorCode::NotFound,
        ErrorKind::Corrupt => ErrorCode::Corrupt,
        ErrorKind::InvalidArgument => ErrorCode::BadRequest,
        _ => ErrorCode::Internal,
    };
    (code, e.to_string())
}

/// Serves a connection until the client closes it.
pub async fn handle(ctx: Arc<ServerContext>, conn: quinn::Connection) {
    let state = Arc::new(Conn {
        ctx,
        peer: conn.remote_address().ip(),
        login: Mutex::new(None),
        logging_in: AtomicUsize::new(0),
        readable: Mutex::new(Readable::default()),
        session: Mutex::new(None),
        claimed: Mutex::new(HashSet::new()),
        proof_key: cairn_engine::crypto::random_bytes(),
        listing: Mutex::new(None),
        to_prove: Mutex::new(HashSet::new()),
        budget: Arc::new(Semaphore::new(CONNECTION_BUDGET)),
        plaintext: Arc::new(Semaphore::new(PLAINTEXT_BUDGET)),
    });
    let mut streams = tokio::task::JoinSet::new();
    let deadline = tokio::time::sleep(LOGIN_DEADLINE);
    tokio::pin!(deadline);
    let (mut deadline_passed, mut extensions) = (false, 0);
    loop {
        tokio::select! {
            () = &mut deadline, if !deadline_passed => {
                if lock(&state.login).is_some() {
                    deadline_passed = true;
                } else if state.logging_in.load(Ordering::SeqCst) > 0 && extensions < LOGIN_EXTENSIONS {
                    // A login is being checked (slow storage, a busy server): give it time to finish.
                    extensions += 1;
                    deadline.as_mut().reset(tokio::time::Instant::now() + LOGIN_DEADLINE);
                } else {
                    deadline_passed = true;
                    tracing::info!("closing the connection from {}: no login within {LOGIN_DEADLINE:?}", state.peer);
                    conn.close(CLOSE_NO_LOGIN.into(), b"log in first");
                }
            }
            accepted = conn.accept_bi() => match accepted {
                Ok((send, recv)) => {
                    let state = state.clone();
                    streams.spawn(async move { state.stream(send, recv).await });
                }
                Err(e) => {
                    tracing::debug!("connection from {} ended: {e}", state.peer);
                    break;
                }
            },
            Some(_) = streams.join_next(), if !streams.is_empty() => {}
        }
    }
    streams.shutdown().await;
    // An unfinished backup: drop its session (stops its threads; its packs stay unindexed orphans).
    let session = state.session.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some(session) = session {
        let _ = tokio::task::spawn_blocking(move || drop(session)).await;
    }
}

/// Waits for `bytes` of `budget` (at least 1, at most `whole`).
async fn reserve_from(
    budget: &Arc<Semaphore>,
    bytes: usize,
    whole: usize,
) -> Result<OwnedSemaphorePermit, (ErrorCode, String)> {
    budget
        .clone()
        .acquire_many_owned(bytes.clamp(1, whole) as u32)
        .await
        .map_err(|_| err(ErrorCode::Internal, "shutting down"))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Conn {
    async fn stream(self: Arc<Self>, mut send: quinn::SendStream, mut recv: quinn::RecvStream) {
        let mut held = Vec::new();
        let reply = self.read_and_dispatch(&mut recv, &mut held).await;
        let response = reply.unwrap_or_else(|(code, message)| Outgoing::Message(Response::Error { code, message }));
        let _ = match response {
            // A read reply goes out as pieces that share the payloads: no copy into one frame buffer.
            Outgoing::Blobs(blobs) => send.write_all_chunks(&mut encode_blobs_frame(blobs)).await.map(|_| ()),
            Outgoing::Message(message) => send.write_all(&encode_frame(&message)).await,
        };
        let _ = send.finish();
        let _ = send.stopped().await;
        // What the request holds (a read's reply bytes) counts against the budget until the client has it.
        drop(held);
    }

    /// Waits for `bytes` (at least 1, at most the whole budget) of the connection's budget.
    async fn reserve(&self, bytes: usize) -> Result<OwnedSemaphorePermit, (ErrorCode, String)> {
        reserve_from(&self.budget, bytes, CONNECTION_BUDGET).await
    }

    /// Waits for room to check a plaintext of `bytes` (at most the whole plaintext budget).
    async fn reserve_plaintext(&self, bytes: usize) -> Result<OwnedSemaphorePermit, (ErrorCode, String)> {
        reserve_from(&self.plaintext, bytes, PLAINTEXT_BUDGET).await
    }

    /// How many of `ids` (at least one) fit in one read reply, and the budget their reply needs: twice
    /// their stored bytes, for the pack range read and the blobs decrypted from it.
    fn reply_share(&self, ids: &[ContentId]) -> (usize, usize) {
        let index = self.ctx.repo.index();
        let (mut total, mut keep) = (0usize, 0usize);
        for id in ids {
            let len = index.get(id).map(|l| l.stored_len as usize).unwrap_or(0);
            if keep > 0 && total + len > MAX_READ_REPLY_BYTES {
                break;
            }
            total += len;
            keep += 1;
        }
        (keep, 2 * total)
    }

    /// The budget that checking the proofs of `proven` ids needs for the stored content it reads:
    /// [`PROOF_READ_BYTES`] of blobs at a time (a larger blob alone), and a coalesced read is at most twice
    /// its blobs' bytes. Sized from the index, not from lengths the client declares.
    fn proof_share<'a>(&self, proven: impl Iterator<Item = &'a ContentId>) -> usize {
        let index = self.ctx.repo.index();
        let (mut total, mut largest) = (0usize, 0usize);
        for id in proven {
            let stored = index.get(id).map_or(0, |l| l.stored_len as usize);
            total += stored;
            largest = largest.max(stored);
        }
        (2 * total).min((2 * PROOF_READ_BYTES).max(largest))
    }

    async fn read_and_dispatch(
        self: &Arc<Self>,
        recv: &mut quinn::RecvStream,
        held: &mut Vec<OwnedSemaphorePermit>,
    ) -> Answer {
        let mut prefix = [0u8; 4];
        recv.read_exact(&mut prefix).await.map_err(|e| err(ErrorCode::BadRequest, e.to_string()))?;
        let len = frame_length(prefix).map_err(|e| err(ErrorCode::BadRequest, e.to_string()))?;
        if len > MAX_LOGIN_FRAME && lock(&self.login).is_none() {
            return Err(err(ErrorCode::NotAuthenticated, "log in first"));
        }
        // Bounded memory: wait for room in the connection's budget before reading the body.
        let body_permit = self.reserve(len).await?;
        let body = crate::wire::read_body(recv, len).await.map_err(|e| err(ErrorCode::BadRequest, e))?;
        // The request borrows its payload from the body; it is decoded again (no copy) on the blocking
        // thread that handles it, which takes the body along.
        let request: Request<'_> = decode_body(&body).map_err(|e| err(ErrorCode::BadRequest, e.to_string()))?;
        if let Request::Hello { protocol, user, password } = request {
            let _checking = LoginInProgress::new(&self.logging_in);
            return self.hello(protocol, user, password).await.map(Outgoing::Message);
        }
        let login = lock(&self.login).clone().ok_or_else(|| err(ErrorCode::NotAuthenticated, "log in first"))?;
        // Reads hold budget for their reply instead of their (small) request body; an upload also holds its
        // decompressed plaintext while it is checked.
        let mut read_prefix = None;
        match &request {
            Request::ReadBlobs { ids } => {
                drop(body_permit);
                if ids.len() > MAX_READ_BLOBS {
                    return Err(err(ErrorCode::BadRequest, format!("more than {MAX_READ_BLOBS} ids")));
                }
                let (keep, bytes) = self.reply_share(ids);
                read_prefix = Some(keep);
                held.push(self.reserve(bytes).await?);
            }
            Request::ListSnapshotsAfter { .. } => {
                drop(body_permit);
                held.push(self.reserve(SNAPSHOT_PAGE_BYTES).await?);
            }
            Request::ReadBlob { id } => {
                drop(body_permit);
                held.push(self.reserve(self.reply_share(std::slice::from_ref(id)).1).await?);
            }
            Request::PutBlob { raw_len, compression, id, .. } => {
                let proof = match *compression == PROOF_OF_POSSESSION {
                    true => self.proof_share(std::iter::once(id)),
                    false => 0,
                };
                held.push(body_permit);
                held.push(self.reserve_plaintext(*raw_len as usize + proof).await?);
            }
            Request::PutBlobs { blobs } => {
                if blobs.len() > MAX_PUT_BLOBS {
                    return Err(err(ErrorCode::BadRequest, format!("more than {MAX_PUT_BLOBS} blobs")));
                }
                // The blobs are checked one after the other: one plaintext at a time, plus the stored content
                // read to check the proofs among them.
                let largest = blobs.iter().map(|b| b.raw_len as usize).max().unwrap_or(0);
                let proof =
                    self.proof_share(blobs.iter().filter(|b| b.compression == PROOF_OF_POSSESSION).map(|b| &b.id));
                held.push(body_permit);
                held.push(self.reserve_plaintext(largest + proof).await?);
            }
            _ => held.push(body_permit),
        }
        // A claim of an open backup is a lookup in memory: answered here, without a hop to a blocking
        // thread, since a client's workers wait for it.
        if let Request::Claim { ids } = &request {
            let open = lock(&self.session).clone();
            if let Some(session) = open {
                return self.claim(&login, session.as_ref().as_ref(), ids);
            }
        }
        // Decoded again on the blocking thread; not kept twice meanwhile.
        drop(request);
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut request: Request<'_> = decode_body(&body).map_err(|e| err(ErrorCode::BadRequest, e.to_string()))?;
            if let (Request::ReadBlobs { ids }, Some(keep)) = (&mut request, read_prefix) {
                // Every id asked for is checked, also those beyond what this reply answers.
                this.check_readable(&login, ids)?;
                ids.truncate(keep);
            }
            this.dispatch(&login, request)
        })
        .await
        .map_err(|e| err(ErrorCode::Internal, e.to_string()))?
    }

    async fn hello(self: &Arc<Self>, protocol: u32, user: String, password: String) -> Reply {
        if protocol != u32::from(PROTOCOL_VERSION) {
            return Err(err(
                ErrorCode::BadRequest,
                format!("protocol {protocol} not supported (this server speaks {PROTOCOL_VERSION})"),
            ));
        }
        if lock(&self.login).is_some() {
            return Err(err(ErrorCode::BadRequest, "already logged in"));
        }
        if !self.ctx.limiter.begin(self.peer) {
            tracing::warn!("login refused for {} from {}: too many failures", shown(&user), self.peer);
            return Err(err(ErrorCode::RateLimited, "too many failed logins from this address; try again in a minute"));
        }
        let this = self.clone();
        let name = user.clone();
        // Users are read from the repository at each login, so changes apply without a restart.
        let found = tokio::task::spawn_blocking(move || {
            users::validate_name(&name).ok()?;
            let user = users::get(&this.ctx.repo, &name).ok().flatten()?;
            user.check_password(&password).then_some(user)
        })
        .await
        .map_err(|e| err(ErrorCode::Internal, e.to_string()))?;
        let Some(account) = found else {
            tracing::warn!("login failed for {} from {}", shown(&user), self.peer);
            return Err(err(ErrorCode::AuthenticationFailed, "invalid user name or password"));
        };
        self.ctx.limiter.succeeded(self.peer);
        tracing::info!("{} logged in from {}", account.name, self.peer);
        let repo = &self.ctx.repo;
        let hashing = match account.isolated {
            true => repo.keys().tenant_hashing(&account.name),
            false => repo.hashing_key().clone(),
        };
        let hashing_key = *hashing.as_bytes();
        {
            // Checked again: two `Hello`s of one connection may have been checked at once.
            let mut login = lock(&self.login);
            if login.is_some() {
                return Err(err(ErrorCode::BadRequest, "already logged in"));
            }
            *login =
                Some(Login { user: account.name.clone(), admin: account.admin, hashing, isolated: account.isolated });
        }
        let p = repo.chunker_params();
        Ok(Response::Welcome {
            user: account.name,
            admin: account.admin,
            hashing_key,
            chunker: (p.min, p.avg, p.max),
            compression_level: repo.compression_level(),
            repository_id: repo.format().repository_id.to_hex(),
            proof_key: self.proof_key,
        })
    }

    fn session(&self) -> Result<Arc<Box<dyn BlobSession>>, (ErrorCode, String)> {
        let mut slot = lock(&self.session);
        if let Some(s) = slot.as_ref() {
            return Ok(s.clone());
        }
        let session = Arc::new(self.ctx.repo.open_served_session(Arc::new(Progress::default())).map_err(engine_err)?);
        *slot = Some(session.clone());
        Ok(session)
    }

    /// Commits the open backup with `snapshot` (or just stores the snapshot when nothing was sent).
    fn commit_session(&self, snapshot: &Snapshot) -> Result<(), (ErrorCode, String)> {
        let Some(session) = lock(&self.session).take() else {
            return self.ctx.repo.write_snapshot(snapshot).map_err(engine_err);
        };
        lock(&self.claimed).clear();
        // Other requests of this connection may still hold the session briefly; wait for them.
        let mut session = session;
        let owned = loop {
            match Arc::try_unwrap(session) {
                Ok(owned) => break owned,
                Err(shared) => {
                    session = shared;
                    std::thread::sleep(std::time::Duration::from_millis(2));
                }
            }
        };
        owned.commit(snapshot).map_err(engine_err)
    }

    /// Refuses `ids` unless this user may read every one of them.
    fn check_readable(&self, login: &Login, ids: &[ContentId]) -> Result<(), (ErrorCode, String)> {
        if login.admin {
            return Ok(());
        }
        let readable = lock(&self.readable);
        match ids.iter().find(|id| !readable.may_read(id)) {
            Some(id) => {
                Err(err(ErrorCode::PermissionDenied, format!("blob {id} is not reachable from your snapshots")))
            }
            None => Ok(()),
        }
    }

    /// Stored payloads of `ids`, which the caller checked this user may read ([`Conn::check_readable`]).
    /// Reading a reachable tree or chunk list makes what it references reachable.
    fn read_payloads(&self, login: &Login, ids: &[ContentId]) -> Result<Vec<OutBlob>, (ErrorCode, String)> {
        let repo = &self.ctx.repo;
        let payloads = repo.read_blob_payloads(ids).map_err(engine_err)?;
        let mut blobs = Vec::with_capacity(ids.len());
        for (id, (compression, raw_len, payload)) in ids.iter().zip(payloads) {
            // Admins are not tracked; for users, only a blob reached as a tree or chunk list teaches anything.
            if !login.admin && lock(&self.readable).reaches_tree(id) {
                let plain = compress::decompress_borrowed(compression, &payload, raw_len as usize, "metadata")
                    .map_err(engine_err)?;
                lock(&self.readable).learn_from(id, &plain);
            }
            blobs.push(OutBlob { compression: compression as u8, raw_len, payload });
        }
        Ok(blobs)
    }

    /// Checks an uploaded blob against its id (a client must not be able to poison the repository) and
    /// stores it unless the repository has it.
    fn put(
        &self,
        login: &Login,
        session: &Arc<Box<dyn BlobSession>>,
        blob: UploadBlob<'_>,
    ) -> Result<(), (ErrorCode, String)> {
        if blob.compression == PROOF_OF_POSSESSION {
            return self.prove(login, vec![blob]);
        }
        let UploadBlob { class, id, compression, raw_len, payload } = blob;
        // A blob counts as held in the class it arrives as: the same bytes sent as data pay for no tree.
        let class = BlobClass::from_byte(class).map_err(engine_err)?;
        let compression = Compression::from_byte(compression).map_err(engine_err)?;
        // Cairn compresses a blob only when that makes it smaller; a larger zstd payload (padded with skippable
        // frames, say) would be stored and read back at its inflated size.
        if compression == Compression::Zstd && payload.len() >= raw_len as usize {
            return Err(err(
                ErrorCode::BadRequest,
                format!("blob {id}: compressed payload not smaller than its plaintext"),
            ));
        }
        let plain = compress::decompress_borrowed(compression, &payload, raw_len as usize, &format!("blob {id}"))
            .map_err(engine_err)?;
        content::verify_id(&login.hashing, &id, &plain).map_err(engine_err)?;
        if class == BlobClass::Metadata {
            let Some(named) = tree_references(&plain) else {
                return Err(err(ErrorCode::Corrupt, "metadata blob is neither a tree nor a chunk list"));
            };
            // A user's trees may name only content the user holds: what the user may read, or what this
            // connection must then send (or prove it holds) before its snapshot is accepted.
            if !login.admin && !lock(&self.readable).owe(named) {
                return Err(too_many_owed());
            }
        }
        let told = lock(&self.claimed).remove(&id);
        let store = told || session.claim(&[id]).map_err(engine_err)?.first().copied().unwrap_or(false);
        if store {
            session
                .store(PreparedBlob { class, id, plaintext: &plain, compression, compressed: &payload })
                .map_err(engine_err)?;
        }
        // What this client uploaded it may read back (e.g. trees of its next backup's parent).
        lock(&self.readable).uploaded(id, class);
        Ok(())
    }

    /// Checks proofs that the client holds the content each id names (which the repository has): the keyed
    /// hash of the stored plaintext under this connection's proof key. Nothing is stored; the user may then
    /// read that content and name it. The stored content is read in pack order, [`PROOF_READ_BYTES`] of blobs
    /// at a time (neighbours in a pack with one ranged read: on an object store, one request per run, not
    /// per chunk).
    ///
    /// Every refusal is the same answer and leaves the same state: all of the request's ids are taken off
    /// the ids to prove before anything is checked, and a proof takes effect only when every proof of the
    /// request held, so neither the answer nor what the user may read afterwards tells which check failed
    /// (not even a blob's size).
    fn prove(&self, login: &Login, proofs: Vec<UploadBlob<'_>>) -> Result<(), (ErrorCode, String)> {
        let refused = || err(ErrorCode::Corrupt, "a proof of possession does not match");
        if proofs.is_empty() {
            return Ok(());
        }
        let mut asked = Vec::with_capacity(proofs.len());
        {
            let mut to_prove = lock(&self.to_prove);
            for p in &proofs {
                asked.push(to_prove.remove(&p.id));
            }
        }
        let mut checked: Vec<Claimed> = Vec::with_capacity(proofs.len());
        {
            let index = self.ctx.repo.index();
            for (UploadBlob { class, id, raw_len, payload, .. }, asked) in proofs.into_iter().zip(asked) {
                let class = BlobClass::from_byte(class).map_err(|_| refused())?;
                // Only for what this connection was asked to prove, once; the declared length is what the
                // plaintext budget was reserved for.
                let location = index.get(&id).filter(|l| asked && l.raw_len == raw_len).ok_or_else(refused)?;
                let proof: [u8; 32] = payload.as_ref().try_into().map_err(|_| refused())?;
                checked.push(Claimed { class, id, proof, location });
            }
        }
        checked.sort_by_key(|c| (c.location.class.to_byte(), c.location.pack, c.location.offset));
        // What the proofs, once all are checked, make the connection hold and owe.
        let mut proven: Vec<(ContentId, BlobClass)> = Vec::with_capacity(checked.len());
        let mut named: HashSet<(ContentId, BlobClass)> = HashSet::new();
        // A stored blob that cannot be read or unpacked is the repository's trouble, not the client's: logged
        // here, and one answer that names no blob (it is reached only once a declared length matched).
        let unreadable = |e: cairn_engine::Error| {
            tracing::warn!("checking a proof of possession: {e}");
            err(ErrorCode::Internal, "the stored content to check a proof of possession against could not be read")
        };
        let mut rest = &checked[..];
        while !rest.is_empty() {
            let mut take = 1;
            let mut bytes = rest[0].location.stored_len as usize;
            while take < rest.len() && bytes + rest[take].location.stored_len as usize <= PROOF_READ_BYTES {
                bytes += rest[take].location.stored_len as usize;
                take += 1;
            }
            let (group, after) = rest.split_at(take);
            rest = after;
            let ids: Vec<ContentId> = group.iter().map(|c| c.id).collect();
            let payloads = self.ctx.repo.read_blob_payloads(&ids).map_err(unreadable)?;
            for (Claimed { class, id, proof, .. }, (compression, raw_len, payload)) in group.iter().zip(payloads) {
                let plain =
                    compress::decompress_borrowed(compression, &payload, raw_len as usize, &format!("blob {id}"))
                        .map_err(unreadable)?;
                // Named under this user's hashing key (an isolated user proves only its own ids).
                content::verify_id(&login.hashing, id, &plain).map_err(|_| refused())?;
                // blake3::Hash compares in constant time.
                if blake3::keyed_hash(&self.proof_key, &plain) != blake3::Hash::from_bytes(*proof) {
                    return Err(refused());
                }
                // Held as a tree only if it is one, as for an upload; what a user's tree names is owed.
                if *class == BlobClass::Metadata {
                    let Some(references) = tree_references(&plain) else { return Err(refused()) };
                    if !login.admin {
                        named.extend(references);
                        if named.len() > MAX_OWED {
                            return Err(too_many_owed());
                        }
                    }
                }
                proven.push((*id, *class));
            }
        }
        let mut readable = lock(&self.readable);
        if !readable.owe(named) {
            return Err(too_many_owed());
        }
        for (id, class) in proven {
            readable.uploaded(id, class);
        }
        Ok(())
    }

    /// Which of `ids` the client must send; claims those the repository lacks for this connection. For
    /// content the repository has but the user may not read, the client must prove it holds it (a keyed hash
    /// of the content, see [`Conn::prove`]), so that a snapshot of the user's may reference it: a claim tells
    /// a user nothing it could not compute from content it holds, and a known id alone opens nothing.
    fn claim(&self, login: &Login, session: &dyn BlobSession, ids: &[ContentId]) -> Answer {
        if ids.len() > MAX_BATCH {
            return Err(err(ErrorCode::BadRequest, format!("more than {MAX_BATCH} ids")));
        }
        // Checked and extended under separate locks: claims at once may pass the cap by a batch each.
        if lock(&self.claimed).len() + ids.len() > MAX_CLAIMED {
            return Err(err(ErrorCode::BadRequest, format!("more than {MAX_CLAIMED} claimed blobs were not sent")));
        }
        let lacking = session.claim(ids).map_err(engine_err)?;
        lock(&self.claimed).extend(ids.iter().zip(&lacking).filter(|(_, m)| **m).map(|(id, _)| *id));
        // Whether the user may read each id already (admins read everything).
        let held: Vec<bool> = {
            let readable = lock(&self.readable);
            ids.iter().map(|id| login.admin || readable.may_read(id)).collect()
        };
        let index = self.ctx.repo.index();
        // Content the repository has that this user may not read yet: the client proves it holds it. (An id
        // this session has but not indexed yet is sent instead: there is nothing to check a proof against.)
        let prove: Vec<bool> = (0..ids.len()).map(|i| !lacking[i] && !held[i] && index.contains(&ids[i])).collect();
        lock(&self.to_prove).extend(ids.iter().zip(&prove).filter(|(_, p)| **p).map(|(id, _)| *id));
        let missing: Vec<bool> = (0..ids.len()).map(|i| lacking[i] || !held[i]).collect();
        Ok(Outgoing::Message(Response::Claimed { missing, prove }))
    }

    /// The snapshots `login` may see, in (start time, id) order.
    fn visible_snapshots(&self, login: &Login) -> Result<Vec<Snapshot>, (ErrorCode, String)> {
        let all = self.ctx.repo.list_snapshots().map_err(engine_err)?;
        Ok(all.into_iter().filter(|s| owns_source(&login.user, login.admin, &s.source)).collect())
    }

    /// The roots of snapshots sent to the user become readable.
    fn reach_roots(&self, snaps: &[Snapshot]) {
        let mut readable = lock(&self.readable);
        for s in snaps {
            readable.reach(s.root);
        }
    }

    /// The snapshots `login` may see that come after `after` in the listing order, as many as fit in a
    /// page; their roots become readable, as with `ListSnapshots`.
    fn snapshot_page(&self, login: &Login, after: Option<SnapshotCursor>) -> Answer {
        let cached = lock(&self.listing).clone().filter(|_| after.is_some());
        let snaps = match cached {
            Some(listing) => listing,
            None => {
                // Listed in (start time, id) order: the cursor's.
                let listing = Arc::new(self.visible_snapshots(login)?);
                *lock(&self.listing) = Some(listing.clone());
                listing
            }
        };
        let start = after.map_or(0, |a| snaps.partition_point(|s| snapshot_cursor(s) <= a));
        let rest = &snaps[start..];
        let mut json = b"[".to_vec();
        let mut taken = 0;
        for s in rest {
            let one = serde_json::to_vec(s).map_err(|e| err(ErrorCode::Internal, e.to_string()))?;
            if taken > 0 && json.len() + one.len() + 2 > SNAPSHOT_PAGE_BYTES {
                break;
            }
            if taken > 0 {
                json.push(b',');
            }
            json.extend_from_slice(&one);
            taken += 1;
        }
        json.push(b']');
        self.reach_roots(&rest[..taken]);
        let more = taken < rest.len();
        if !more {
            *lock(&self.listing) = None;
        }
        Ok(Outgoing::Message(Response::SnapshotsPage { json, more }))
    }

    fn dispatch(&self, login: &Login, request: Request<'_>) -> Answer {
        let repo = &self.ctx.repo;
        match request {
            Request::Hello { .. } => Err(err(ErrorCode::BadRequest, "already logged in")),
            Request::Claim { ids } => self.claim(login, self.session()?.as_ref().as_ref(), &ids),
            Request::PutBlob { class, id, compression, raw_len, payload } => {
                self.put(login, &self.session()?, UploadBlob { class, id, compression, raw_len, payload })?;
                Ok(Outgoing::Message(Response::Done))
            }
            Request::PutBlobs { blobs } => {
                // Their count was checked before the request was handed here (`read_and_dispatch`).
                let session = self.session()?;
                let (proofs, blobs): (Vec<_>, Vec<_>) =
                    blobs.into_iter().partition(|b| b.compression == PROOF_OF_POSSESSION);
                for blob in blobs {
                    self.put(login, &session, blob)?;
                }
                self.prove(login, proofs)?;
                Ok(Outgoing::Message(Response::Done))
            }
            Request::ListSnapshots => {
                let snaps = self.visible_snapshots(login)?;
                self.reach_roots(&snaps);
                Ok(Outgoing::Message(Response::Snapshots {
                    json: serde_json::to_vec(&snaps).map_err(|e| err(ErrorCode::Internal, e.to_string()))?,
                }))
            }
            Request::ListSnapshotsAfter { after } => self.snapshot_page(login, after),
            Request::PutSnapshot { json } => {
                let mut snap: Snapshot =
                    serde_json::from_slice(&json).map_err(|e| err(ErrorCode::BadRequest, format!("snapshot: {e}")))?;
                // The server, not the client, says which key names the snapshot's content.
                snap.tenant = login.isolated.then(|| login.user.clone());
                if !owns_source(&login.user, login.admin, &snap.source) {
                    return Err(err(
                        ErrorCode::PermissionDenied,
                        format!("{} may not create snapshots of {}", login.user, snap.source),
                    ));
                }
                // The root must be stored already or have been uploaded on this connection; a user's must be
                // readable by the user, and every blob its uploaded trees named must have arrived.
                let readable = lock(&self.readable);
                if !repo.index().contains(&snap.root) && !readable.may_read(&snap.root) {
                    return Err(err(ErrorCode::BadRequest, "the snapshot's root tree is not in the repository"));
                }
                if !login.admin {
                    if !readable.may_be_root(&snap.root) {
                        return Err(err(
                            ErrorCode::PermissionDenied,
                            format!("the snapshot's root tree {} is neither yours nor uploaded by you", snap.root),
                        ));
                    }
                    if let Some(missing) = readable.owes() {
                        return Err(err(
                            ErrorCode::BadRequest,
                            format!("blob {missing}, named by an uploaded tree, was never sent"),
                        ));
                    }
                }
                drop(readable);
                self.commit_session(&snap)?;
                lock(&self.readable).committed(snap.root);
                Ok(Outgoing::Message(Response::Done))
            }
            Request::DeleteSnapshot { id } => {
                let snap = repo.find_snapshot(&id.to_hex()).map_err(engine_err)?;
                if !owns_source(&login.user, login.admin, &snap.source) {
                    // As for a snapshot that does not exist: other users' snapshots are not listed either.
                    return Err(err(ErrorCode::NotFound, format!("snapshot {} not found", id.to_hex())));
                }
                repo.delete_snapshot(&id).map_err(engine_err)?;
                Ok(Outgoing::Message(Response::Done))
            }
            Request::ReadBlob { id } => {
                self.check_readable(login, &[id])?;
                let OutBlob { compression, raw_len, payload } =
                    self.read_payloads(login, &[id])?.pop().ok_or_else(|| err(ErrorCode::Internal, "no blob read"))?;
                Ok(Outgoing::Message(Response::Blob { compression, raw_len, payload: payload.to_vec().into() }))
            }
            Request::ReadBlobs { ids } => {
                if ids.len() > MAX_READ_BLOBS {
                    return Err(err(ErrorCode::BadRequest, format!("more than {MAX_READ_BLOBS} ids")));
                }
                // Every id asked for was checked before the request was cut to what one reply carries.
                Ok(Outgoing::Blobs(self.read_payloads(login, &ids)?))
            }
            Request::BlobSizes { ids } => {
                if ids.len() > MAX_BATCH {
                    return Err(err(ErrorCode::BadRequest, format!("more than {MAX_BATCH} ids")));
                }
                let readable = lock(&self.readable);
                let index = repo.index();
                let sizes = ids
                    .iter()
                    .map(|id| {
                        (login.admin || readable.may_read(id)).then(|| index.get(id).map(|l| l.raw_len)).flatten()
                    })
                    .collect();
                Ok(Outgoing::Message(Response::Sizes { sizes }))
            }
            Request::TenantKeys => {
                if !login.admin {
                    return Err(err(ErrorCode::PermissionDenied, "only an admin may read other users' hashing keys"));
                }
                let keys = repo.tenant_hashing_keys().map_err(engine_err)?;
                Ok(Outgoing::Message(Response::TenantKeys { keys: keys.iter().map(|k| *k.as_bytes()).collect() }))
            }
            Request::Status => {
                let f = repo.format();
                let json = serde_json::json!({
                    "repositoryId": f.repository_id,
                    "formatVersion": f.version,
                    "algorithms": f.algorithms,
                    "chunker": f.chunker,
                    "compressionLevel": f.compression_level,
                    "user": login.user,
                    "admin": login.admin,
                });
                Ok(Outgoing::Message(Response::Status { json: json.to_string().into_bytes() }))
            }
        }
    }
}
