//! What commands need from a repository, whether it is opened directly (`Repository`, standalone mode) or
//! reached through a repository server (the client in `cairn-transport`). Backups write through a
//! [`BlobSession`]; everything else reads. Walking trees, finding snapshots and resolving paths are
//! provided on top of the few required methods, so both kinds of access behave the same.

use crate::chunker::{Chunker, ChunkerParams};
use crate::compress::Compression;
use crate::crypto::keys::{BlobClass, HashingKey};
use crate::error::{Error, Result};
use crate::ids::{ContentId, SnapshotId, TreeId};
use crate::snapshot::{Snapshot, Source};
use crate::tree::{ChunkList, FileContent, Node, NodeKind, TreeRecord};

/// A blob ready to store: its plaintext, and its compressed form when compression helped.
pub struct PreparedBlob<'a> {
    pub class: BlobClass,
    pub id: ContentId,
    pub plaintext: &'a [u8],
    pub compression: Compression,
    /// The zstd frame when `compression` is zstd; ignored otherwise.
    pub compressed: &'a [u8],
}

impl PreparedBlob<'_> {
    /// The bytes that get encrypted: the zstd frame, or the plaintext when stored raw.
    pub fn payload(&self) -> &[u8] {
        match self.compression {
            Compression::Zstd => self.compressed,
            Compression::None => self.plaintext,
        }
    }
}

/// How many plaintext bytes a caller of [`Access::read_blobs`] asks for at once.
pub const READ_BATCH_BYTES: u64 = 4 << 20;
/// How many blobs a caller of [`Access::read_blobs`] asks for at once.
pub const READ_BATCH_BLOBS: usize = 128;

/// Writing side of one backup. [`BlobSession::commit`] makes every blob stored through the session durable
/// and indexed, then stores the snapshot that refers to them.
pub trait BlobSession: Send + Sync {
    /// For each id, whether the caller must store it: false when the repository has it or this session
    /// already claimed it.
    fn claim(&self, ids: &[ContentId]) -> Result<Vec<bool>>;
    /// [`BlobSession::claim`] without waiting for the answer: a session whose answer takes a round trip
    /// (through a server) sends the question now, so the caller can go on hashing the next chunks and wait
    /// only when it needs the answer. Ids are claimed in the order the questions are asked.
    fn start_claim(&self, ids: &[ContentId]) -> PendingClaim {
        PendingClaim::Ready(self.claim(ids))
    }
    /// Whether the repository has this blob (to reuse a parent snapshot's chunks without reading).
    fn is_stored(&self, id: &ContentId) -> bool;
    /// Whether [`BlobSession::is_stored`] looks at what is stored (a local session's index), so that a
    /// parent's chunk list is worth reading to check each chunk. A session that trusts the parent (through a
    /// server, which keeps what snapshots reference) says no.
    fn checks_storage(&self) -> bool {
        true
    }
    /// Whether storing this claimed blob sends only a proof that the caller holds its plaintext (through a
    /// server, for content the repository has but the user may not read yet), so that compressing it first
    /// would be wasted work. A blob for which this says true may go to [`BlobSession::store`] uncompressed.
    fn proves(&self, _id: &ContentId) -> bool {
        false
    }
    /// Stores a claimed blob; returns the bytes it will occupy (or did occupy on the wire).
    fn store(&self, blob: PreparedBlob<'_>) -> Result<u64>;
    /// Makes everything stored so far durable and indexed, then records `snapshot`.
    fn commit(self: Box<Self>, snapshot: &Snapshot) -> Result<()>;
}

/// The answer to a [`BlobSession::start_claim`], ready or on its way.
pub enum PendingClaim {
    Ready(Result<Vec<bool>>),
    /// Blocks until the answer is there.
    Waiting(Box<dyn FnOnce() -> Result<Vec<bool>> + Send>),
}

impl PendingClaim {
    /// True when the answer came at once (a session without round trips).
    pub fn is_ready(&self) -> bool {
        matches!(self, PendingClaim::Ready(_))
    }

    /// The answer: for each id asked, whether the caller must store it.
    pub fn wait(self) -> Result<Vec<bool>> {
        match self {
            PendingClaim::Ready(answer) => answer,
            PendingClaim::Waiting(answer) => answer(),
        }
    }
}

/// Read access plus backup sessions.
pub trait Access: Send + Sync {
    /// The key that names content (shared with server clients).
    fn hashing_key(&self) -> &HashingKey;
    fn chunker_params(&self) -> ChunkerParams;
    fn compression_level(&self) -> i32;
    /// Every snapshot this caller may see, oldest first (by start time, then id).
    fn list_snapshots(&self) -> Result<Vec<Snapshot>>;
    /// Records a new snapshot (after its session finished). Refuses an id that exists or a record larger
    /// than [`crate::snapshot::MAX_SNAPSHOT_BYTES`].
    fn write_snapshot(&self, snap: &Snapshot) -> Result<()>;
    fn delete_snapshot(&self, id: &SnapshotId) -> Result<()>;
    /// A blob's plaintext, verified against its id.
    fn read_blob(&self, id: &ContentId) -> Result<Vec<u8>>;
    /// Several blobs' plaintexts, each verified against its id, in the order asked. Implementations fetch
    /// them together (neighbours in a pack with one ranged read, or one round trip to a server); callers
    /// keep a batch to a few MiB ([`READ_BATCH_BYTES`]).
    /// A blob stored uncompressed may come back as a slice of the buffer its pack was read into.
    fn read_blobs(&self, ids: &[ContentId]) -> Result<Vec<bytes::Bytes>> {
        ids.iter().map(|id| self.read_blob(id).map(bytes::Bytes::from)).collect()
    }
    /// Whether `plaintext` is the content named `id` under a hashing key this reader already holds. Never
    /// fetches keys: for checks that may fail in normal use (a restore reading back what it wrote).
    fn matches_known_key(&self, id: &ContentId, plaintext: &[u8]) -> bool {
        self.hashing_key().content_id(plaintext) == *id
    }
    /// Plaintext lengths of blobs (`None` for unknown ids).
    fn blob_sizes(&self, ids: &[ContentId]) -> Result<Vec<Option<u32>>>;
    /// Starts a backup's writes; `progress` receives pack and upload timings.
    fn open_session(&self, progress: std::sync::Arc<crate::backup::Progress>) -> Result<Box<dyn BlobSession>>;

    /// The repository's chunker.
    fn chunker(&self) -> Result<Chunker> {
        Chunker::new(self.chunker_params(), self.hashing_key().gear_seed())
    }

    /// A folder's entries, following pages.
    fn read_tree(&self, id: &TreeId) -> Result<Vec<Node>> {
        match TreeRecord::decode(&self.read_blob(id)?)? {
            TreeRecord::Entries(nodes) => Ok(nodes),
            TreeRecord::Pages(pages) => {
                let mut all = Vec::new();
                for page in pages {
                    match TreeRecord::decode(&self.read_blob(&page)?)? {
                        TreeRecord::Entries(nodes) => all.extend(nodes),
                        TreeRecord::Pages(_) => return Err(Error::corrupt(format!("tree {id}"), "nested pages")),
                    }
                }
                Ok(all)
            }
        }
    }

    /// A file's chunk ids in order, following chunk lists.
    fn file_chunks(&self, content: &FileContent) -> Result<Vec<ContentId>> {
        match content {
            FileContent::Inline(ids) => Ok(ids.clone()),
            FileContent::List { list, chunks } => {
                let mut out = Vec::with_capacity((*chunks).min(1 << 20) as usize);
                let mut pending = vec![(*list, None::<u8>)];
                // Depth-first, in order: expand lists level by level.
                while let Some((id, expected)) = pending.pop() {
                    let record = ChunkList::decode(&self.read_blob(&id)?)?;
                    if expected.is_some_and(|l| l != record.level) {
                        return Err(Error::corrupt(format!("chunk list {id}"), "unexpected level"));
                    }
                    if record.level == 0 {
                        out.extend(record.ids);
                    } else {
                        pending.extend(record.ids.into_iter().rev().map(|sub| (sub, Some(record.level - 1))));
                    }
                    if out.len() as u64 > *chunks {
                        break;
                    }
                }
                if out.len() as u64 != *chunks {
                    return Err(Error::corrupt(format!("chunk list {list}"), "chunk count mismatch"));
                }
                Ok(out)
            }
        }
    }

    /// The newest snapshot of a source, if any.
    fn latest_snapshot(&self, source: &Source) -> Result<Option<Snapshot>> {
        Ok(self.list_snapshots()?.into_iter().rfind(|s| &s.source == source))
    }

    /// Finds a snapshot by a unique id prefix.
    fn find_snapshot(&self, prefix: &str) -> Result<Snapshot> {
        if prefix.is_empty() || prefix.len() > 32 || !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::InvalidArgument(format!("{prefix:?} is not a snapshot id or id prefix")));
        }
        let prefix = prefix.to_ascii_lowercase();
        let mut matches: Vec<Snapshot> =
            self.list_snapshots()?.into_iter().filter(|s| s.id.to_hex().starts_with(&prefix)).collect();
        match matches.len() {
            0 => Err(Error::NotFound(format!("snapshot {prefix}"))),
            1 => Ok(matches.remove(0)),
            n => Err(Error::InvalidArgument(format!("snapshot id prefix {prefix} is ambiguous ({n} snapshots)"))),
        }
    }

    /// Resolves `path` (slash-separated, relative to the snapshot root) to its entry and, for folders, tree.
    fn resolve_path(&self, root: &TreeId, path: &str) -> Result<Resolved> {
        let mut tree = Some(*root);
        let mut node: Option<Node> = None;
        for part in path.split('/').filter(|p| !p.is_empty() && *p != ".") {
            let current = tree.ok_or_else(|| Error::NotFound(format!("{path} (a parent is not a folder)")))?;
            let mut found = None;
            for node in crate::entries::TreeEntries::open(self, &current)? {
                let node = node?;
                if node.name == part.as_bytes() {
                    found = Some(node);
                    break;
                }
            }
            let found = found.ok_or_else(|| Error::NotFound(format!("{path} in snapshot")))?;
            tree = match &found.kind {
                NodeKind::Dir { tree } => Some(*tree),
                _ => None,
            };
            node = Some(found);
        }
        Ok(Resolved { node, tree })
    }
}

/// A path inside a snapshot.
pub struct Resolved {
    /// The entry (None for the snapshot root).
    pub node: Option<Node>,
    /// The folder's tree when the path is a folder.
    pub tree: Option<TreeId>,
}
