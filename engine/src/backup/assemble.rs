//! The assemble stage: one thread collects chunk ids into files and files into folders, and stores each
//! folder's tree (and the chunk lists of large files) as metadata blobs.
//!
//! Entries arrive in name order and wait in their folder's queue until they and everything before them are
//! done (a file read, a sub-folder stored); then they go to the folder's [`Pager`], which stores each tree
//! page as soon as its content-defined end is reached. So an open folder holds its waiting entries (bounded
//! by the walker's [`Window`](super::window::Window)), at most one page, and the ids of its stored pages —
//! never all its entries. The bytes are those of `tree::paginate` over the whole folder.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use crossbeam_channel::Receiver;

use super::stats::StageTimes;
use super::window::Ticket;
use super::{compress_claimed, Shared};
use crate::access::{PendingClaim, PreparedBlob};
use crate::crypto::keys::BlobClass;
use crate::error::Error;
use crate::ids::{ContentId, TreeId};
use crate::snapshot::SnapshotStats;
use crate::tree::{ChunkList, FileContent, Node, NodeKind, Pager, PagerEnd, TreeRecord, INLINE_CHUNKS, LIST_FANOUT};

/// An entry of an open folder: the folder's slot and the entry's position in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct FileKey {
    pub slot: u64,
    pub at: u32,
}

/// What the other stages tell the assembler.
pub(crate) enum Event {
    /// The walker starts sending the entries of a folder (`parent` is its entry in the parent folder).
    DirOpened { slot: u64, parent: Option<FileKey> },
    /// The next entry of a folder, numbered from 0 in name order. A `pending` entry (a file to read, a
    /// sub-folder) completes later.
    Entry { key: FileKey, node: Node, pending: bool, ticket: Ticket },
    /// The folder has no more entries.
    DirListed { slot: u64 },
    /// A reader finished a file: it has `chunks` chunks and `size` bytes.
    FileRead { key: FileKey, chunks: u32, size: u64 },
    /// A worker named chunk `seq` of a file.
    ChunkDone { key: FileKey, seq: u32, id: ContentId },
    /// A file or folder could not be read; it is left out.
    EntryFailed { key: FileKey },
    /// Several of the walker's events, in order (it sends them in batches to spare a channel handoff each).
    Batch(Vec<Event>),
}

/// An entry waiting for itself or an earlier one to complete. `node` is `None` once it failed.
struct Waiting {
    node: Option<Node>,
    done: bool,
    _ticket: Ticket,
}

struct OpenDir {
    parent: Option<FileKey>,
    /// The number of the first waiting entry.
    base: u32,
    waiting: VecDeque<Waiting>,
    listed: bool,
    pager: Pager,
    /// Pages stored so far.
    pages: Vec<TreeId>,
}

#[derive(Default)]
struct OpenFile {
    ids: Vec<Option<ContentId>>,
    received: u32,
    expected: Option<(u32, u64)>,
}

/// Stores metadata blobs (trees, chunk lists).
struct MetaStore<'a, 'r> {
    shared: &'a Shared<'r>,
    level: i32,
    scratch: Vec<u8>,
    /// Blobs asked about whose answer is on its way (through a server), oldest first: a tree's id is all the
    /// assembler needs to go on, so it does not wait for each answer.
    asked: VecDeque<(Vec<u8>, ContentId, PendingClaim)>,
    /// Plaintext bytes held in `asked`.
    asked_bytes: usize,
}

/// Metadata blobs whose claim may be unanswered at once, and the plaintext bytes they may hold (a tree page
/// can be a few MiB; most are a few KiB).
const META_ASKED_AHEAD: usize = 64;
const META_ASKED_BYTES: usize = 4 << 20;

pub(crate) struct Assembler<'a, 'r> {
    shared: &'a Shared<'r>,
    store: MetaStore<'a, 'r>,
    dirs: HashMap<u64, OpenDir>,
    files: HashMap<FileKey, OpenFile>,
    failed: HashSet<FileKey>,
    stats: SnapshotStats,
    /// The root stands for a source folder (false: a single-file source, whose root is not counted).
    root_is_folder: bool,
    root: Option<TreeId>,
}

impl<'a, 'r> Assembler<'a, 'r> {
    pub fn new(shared: &'a Shared<'r>, level: i32, root_is_folder: bool) -> Self {
        Self {
            shared,
            store: MetaStore { shared, level, scratch: Vec::new(), asked: VecDeque::new(), asked_bytes: 0 },
            dirs: HashMap::new(),
            files: HashMap::new(),
            failed: HashSet::new(),
            stats: SnapshotStats::default(),
            root_is_folder,
            root: None,
        }
    }

    /// Runs until every sender is gone; returns the root tree and the snapshot's counts.
    pub fn run(mut self, events: Receiver<Event>) -> Option<(TreeId, SnapshotStats)> {
        for event in events {
            if self.shared.stopped() {
                continue;
            }
            let start = Instant::now();
            self.handle(event);
            StageTimes::add(&self.shared.progress.stages.trees, start);
        }
        if self.shared.stopped() {
            return None;
        }
        self.store.store_asked(0);
        if !self.dirs.is_empty() {
            self.shared.fail(Error::corrupt("backup", "folders left unfinished"));
            return None;
        }
        self.root.map(|root| (root, self.stats))
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Batch(events) => {
                for event in events {
                    self.handle(event);
                }
            }
            Event::DirOpened { slot, parent } => {
                let dir = OpenDir {
                    parent,
                    base: 0,
                    waiting: VecDeque::new(),
                    listed: false,
                    pager: Pager::default(),
                    pages: Vec::new(),
                };
                self.dirs.insert(slot, dir);
            }
            Event::Entry { key, node, pending, ticket } => {
                let Some(dir) = self.dirs.get_mut(&key.slot) else {
                    return self.shared.fail(Error::corrupt("backup", "entry of a folder not open"));
                };
                if key.at as usize != dir.base as usize + dir.waiting.len() {
                    return self.shared.fail(Error::corrupt("backup", "entries out of order"));
                }
                dir.waiting.push_back(Waiting { node: Some(node), done: !pending, _ticket: ticket });
                if !pending {
                    self.advance(key.slot);
                }
            }
            Event::DirListed { slot } => {
                if let Some(dir) = self.dirs.get_mut(&slot) {
                    dir.listed = true;
                }
                self.advance(slot);
            }
            Event::FileRead { key, chunks, size } => {
                if !self.failed.contains(&key) {
                    self.files.entry(key).or_default().expected = Some((chunks, size));
                    self.try_finish_file(key);
                }
            }
            Event::ChunkDone { key, seq, id } => {
                if self.failed.contains(&key) {
                    return;
                }
                let file = self.files.entry(key).or_default();
                let seq = seq as usize;
                if file.ids.len() <= seq {
                    file.ids.resize(seq + 1, None);
                }
                file.ids[seq] = Some(id);
                file.received += 1;
                self.try_finish_file(key);
            }
            Event::EntryFailed { key } => {
                self.files.remove(&key);
                self.failed.insert(key);
                if let Some(entry) = self.waiting_mut(key) {
                    entry.node = None;
                    entry.done = true;
                }
                self.advance(key.slot);
            }
        }
    }

    /// The waiting entry `key`, if its folder is open and it has not left the queue.
    fn waiting_mut(&mut self, key: FileKey) -> Option<&mut Waiting> {
        let dir = self.dirs.get_mut(&key.slot)?;
        let at = key.at.checked_sub(dir.base)?;
        dir.waiting.get_mut(at as usize)
    }

    fn try_finish_file(&mut self, key: FileKey) {
        let Some(file) = self.files.get(&key) else { return };
        let Some((count, size)) = file.expected else { return };
        if file.received < count {
            return;
        }
        let file = self.files.remove(&key).expect("present");
        let ids: Vec<ContentId> = file.ids.into_iter().flatten().collect();
        let content = self.store.file_content(ids);
        if let Some(entry) = self.waiting_mut(key) {
            if let Some(node) = entry.node.as_mut() {
                node.kind = NodeKind::File { content };
                node.size = size;
            }
            entry.done = true;
        }
        self.shared.progress.files_done.fetch_add(1, Relaxed);
        self.shared.progress.bytes_done.fetch_add(size, Relaxed);
        self.advance(key.slot);
    }

    /// Moves the done entries at the front of folder `slot` into its pages; stores the folder's tree when
    /// it is listed and nothing waits, and goes on with its parent the same way.
    fn advance(&mut self, mut slot: u64) {
        loop {
            let Some(dir) = self.dirs.get_mut(&slot) else { return };
            while dir.waiting.front().is_some_and(|w| w.done) {
                let Some(entry) = dir.waiting.pop_front() else { break };
                dir.base += 1;
                let Some(node) = entry.node else { continue };
                count(&mut self.stats, &node);
                for page in dir.pager.push(node) {
                    dir.pages.push(self.store.store_meta(&TreeRecord::Entries(page).encode()));
                }
            }
            if !dir.listed || !dir.waiting.is_empty() {
                return;
            }
            let Some(dir) = self.dirs.remove(&slot) else { return };
            let record = match dir.pager.finish() {
                PagerEnd::Whole(nodes) => TreeRecord::Entries(nodes),
                PagerEnd::LastPage(last) => {
                    let mut pages = dir.pages;
                    if let Some(page) = last {
                        pages.push(self.store.store_meta(&TreeRecord::Entries(page).encode()));
                    }
                    TreeRecord::Pages(pages)
                }
            };
            let id = self.store.store_meta(&record.encode());
            let Some(parent) = dir.parent else {
                if self.root_is_folder {
                    self.stats.dirs += 1;
                }
                self.root = Some(id);
                return;
            };
            if let Some(entry) = self.waiting_mut(parent) {
                if let Some(node) = entry.node.as_mut() {
                    node.kind = NodeKind::Dir { tree: id };
                }
                entry.done = true;
            }
            slot = parent.slot;
        }
    }
}

/// Adds an entry that goes into a tree to the snapshot's counts.
fn count(stats: &mut SnapshotStats, n: &Node) {
    match &n.kind {
        NodeKind::File { content } => {
            stats.files += 1;
            stats.bytes += n.size;
            stats.chunks_total += match content {
                FileContent::Inline(ids) => ids.len() as u64,
                FileContent::List { chunks, .. } => *chunks,
            };
        }
        NodeKind::Dir { .. } => stats.dirs += 1,
        NodeKind::Symlink { .. } => stats.symlinks += 1,
        NodeKind::Special { .. } => {}
    }
}

impl MetaStore<'_, '_> {
    /// Inline ids for small files; a tree of chunk lists for large ones.
    fn file_content(&mut self, ids: Vec<ContentId>) -> FileContent {
        if ids.len() <= INLINE_CHUNKS {
            return FileContent::Inline(ids);
        }
        let chunks = ids.len() as u64;
        let mut level = 0u8;
        let mut current = ids;
        loop {
            let lists: Vec<ContentId> = current
                .chunks(LIST_FANOUT)
                .map(|part| self.store_meta(&ChunkList { level, ids: part.to_vec() }.encode()))
                .collect();
            if lists.len() == 1 {
                return FileContent::List { list: lists[0], chunks };
            }
            current = lists;
            level += 1;
        }
    }

    /// Stores a metadata blob unless the repository already has it; returns its id. The answer to whether
    /// it has it may come later (see `asked`).
    fn store_meta(&mut self, plaintext: &[u8]) -> ContentId {
        let id = self.shared.access.hashing_key().content_id(plaintext);
        let answer = self.shared.session.start_claim(&[id]);
        if answer.is_ready() && self.asked.is_empty() {
            self.store_answered(plaintext, id, answer);
        } else {
            self.asked_bytes += plaintext.len();
            self.asked.push_back((plaintext.to_vec(), id, answer));
            self.store_asked(META_ASKED_AHEAD);
        }
        id
    }

    /// Stores the asked-about blobs the session said are new, oldest first, until at most `keep` wait
    /// (and hold at most [`META_ASKED_BYTES`]).
    fn store_asked(&mut self, keep: usize) {
        while self.asked.len() > keep || (keep > 0 && self.asked_bytes > META_ASKED_BYTES) {
            let Some((plaintext, id, answer)) = self.asked.pop_front() else { break };
            self.asked_bytes -= plaintext.len();
            self.store_answered(&plaintext, id, answer);
        }
    }

    /// Stores `plaintext` if the answer says the repository lacks it.
    fn store_answered(&mut self, plaintext: &[u8], id: ContentId, answer: PendingClaim) {
        let waiting = Instant::now();
        let claimed = answer.wait();
        StageTimes::add(&self.shared.progress.stages.claim_wait, waiting);
        let result = claimed.and_then(|claimed| {
            if !claimed.first().copied().unwrap_or(false) {
                return Ok(0);
            }
            let compression =
                compress_claimed(self.shared.session.as_ref(), &id, self.level, plaintext, &mut self.scratch);
            let blob =
                PreparedBlob { class: BlobClass::Metadata, id, plaintext, compression, compressed: &self.scratch };
            self.shared.session.store(blob)
        });
        match result {
            Ok(stored) => {
                self.shared.progress.bytes_stored.fetch_add(stored, Relaxed);
            }
            Err(e) => self.shared.fail(e),
        }
    }
}
