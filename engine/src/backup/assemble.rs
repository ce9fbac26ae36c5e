//! The assemble stage: one thread collects chunk ids into files and files into folders, and stores each
//! folder's tree (and the chunk lists of large files) as metadata blobs once everything in it is done.
//! It holds only the folders that are still open.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use crossbeam_channel::Receiver;

use super::stats::StageTimes;
use super::Shared;
use crate::access::PreparedBlob;
use crate::compress;
use crate::crypto::keys::BlobClass;
use crate::ids::{ContentId, TreeId};
use crate::snapshot::SnapshotStats;
use crate::tree::{paginate, ChunkList, FileContent, Node, NodeKind, TreeRecord, INLINE_CHUNKS, LIST_FANOUT};

/// An entry of an open folder: the folder's slot and the entry's position in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct FileKey {
    pub slot: u64,
    pub at: u32,
}

/// What the other stages tell the assembler.
pub(crate) enum Event {
    /// The walker listed a folder; `pending` of its entries (files to read, sub-folders) will complete later.
    DirOpened { slot: u64, parent: Option<FileKey>, nodes: Vec<Node>, pending: u32 },
    /// A reader finished a file: it has `chunks` chunks and `size` bytes.
    FileRead { key: FileKey, chunks: u32, size: u64 },
    /// A worker named chunk `seq` of a file.
    ChunkDone { key: FileKey, seq: u32, id: ContentId },
    /// A file or folder could not be read; it is left out.
    EntryFailed { key: FileKey },
}

struct OpenDir {
    nodes: Vec<Option<Node>>,
    remaining: u32,
    parent: Option<FileKey>,
}

#[derive(Default)]
struct OpenFile {
    ids: Vec<Option<ContentId>>,
    received: u32,
    expected: Option<(u32, u64)>,
}

pub(crate) struct Assembler<'a, 'r> {
    shared: &'a Shared<'r>,
    level: i32,
    dirs: HashMap<u64, OpenDir>,
    files: HashMap<FileKey, OpenFile>,
    failed: HashSet<FileKey>,
    stats: SnapshotStats,
    root: Option<TreeId>,
    scratch: Vec<u8>,
}

impl<'a, 'r> Assembler<'a, 'r> {
    pub fn new(shared: &'a Shared<'r>, level: i32) -> Self {
        Self {
            shared,
            level,
            dirs: HashMap::new(),
            files: HashMap::new(),
            failed: HashSet::new(),
            stats: SnapshotStats::default(),
            root: None,
            scratch: Vec::new(),
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
        if !self.dirs.is_empty() {
            self.shared.fail(crate::error::Error::corrupt("backup", "folders left unfinished"));
            return None;
        }
        self.root.map(|root| (root, self.stats))
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::DirOpened { slot, parent, nodes, pending } => {
                self.dirs
                    .insert(slot, OpenDir { nodes: nodes.into_iter().map(Some).collect(), remaining: pending, parent });
                if pending == 0 {
                    self.finish_dir(slot);
                }
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
                if let Some(dir) = self.dirs.get_mut(&key.slot) {
                    dir.nodes[key.at as usize] = None;
                }
                self.entry_done(key);
            }
        }
    }

    fn try_finish_file(&mut self, key: FileKey) {
        let Some(file) = self.files.get(&key) else { return };
        let Some((count, size)) = file.expected else { return };
        if file.received < count {
            return;
        }
        let file = self.files.remove(&key).expect("present");
        let ids: Vec<ContentId> = file.ids.into_iter().flatten().collect();
        let content = self.file_content(ids);
        if let Some(node) = self.dirs.get_mut(&key.slot).and_then(|d| d.nodes[key.at as usize].as_mut()) {
            node.kind = NodeKind::File { content };
            node.size = size;
        }
        self.shared.progress.files_done.fetch_add(1, Relaxed);
        self.shared.progress.bytes_done.fetch_add(size, Relaxed);
        self.entry_done(key);
    }

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

    fn entry_done(&mut self, key: FileKey) {
        let Some(dir) = self.dirs.get_mut(&key.slot) else { return };
        dir.remaining -= 1;
        if dir.remaining == 0 {
            self.finish_dir(key.slot);
        }
    }

    /// Stores a finished folder's tree and completes its entry in the parent, repeatedly up the tree.
    fn finish_dir(&mut self, mut slot: u64) {
        loop {
            let dir = self.dirs.remove(&slot).expect("open folder");
            let nodes: Vec<Node> = dir.nodes.into_iter().flatten().collect();
            for n in &nodes {
                match &n.kind {
                    NodeKind::File { content } => {
                        self.stats.files += 1;
                        self.stats.bytes += n.size;
                        self.stats.chunks_total += match content {
                            FileContent::Inline(ids) => ids.len() as u64,
                            FileContent::List { chunks, .. } => *chunks,
                        };
                    }
                    NodeKind::Dir { .. } => self.stats.dirs += 1,
                    NodeKind::Symlink { .. } => self.stats.symlinks += 1,
                    NodeKind::Special { .. } => {}
                }
            }
            let pages = paginate(nodes);
            let record = if pages.len() == 1 {
                TreeRecord::Entries(pages.into_iter().next().expect("one page"))
            } else {
                let ids = pages.into_iter().map(|p| self.store_meta(&TreeRecord::Entries(p).encode())).collect();
                TreeRecord::Pages(ids)
            };
            let id = self.store_meta(&record.encode());
            let Some(parent) = dir.parent else {
                self.stats.dirs += 1; // the root
                self.root = Some(id);
                return;
            };
            let Some(pdir) = self.dirs.get_mut(&parent.slot) else { return };
            if let Some(node) = pdir.nodes[parent.at as usize].as_mut() {
                node.kind = NodeKind::Dir { tree: id };
            }
            pdir.remaining -= 1;
            if pdir.remaining > 0 {
                return;
            }
            slot = parent.slot;
        }
    }

    /// Stores a metadata blob unless the repository already has it; returns its id.
    fn store_meta(&mut self, plaintext: &[u8]) -> ContentId {
        let id = self.shared.access.hashing_key().content_id(plaintext);
        let result = self.shared.session.claim(&[id]).and_then(|claimed| {
            if !claimed.first().copied().unwrap_or(false) {
                return Ok(0);
            }
            let compression = compress::compress_into(self.level, plaintext, &mut self.scratch);
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
        id
    }
}
