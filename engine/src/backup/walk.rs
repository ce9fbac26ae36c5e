//! The walk stage: visits the source depth-first in name order, records every entry's metadata, reuses the
//! chunk lists of files unchanged since the parent snapshot, and hands the rest to the readers.
//!
//! The listing and the metadata come from the [scan](super::scan), which runs ahead on a thread of its own.
//! Entries stream out one at a time, so a folder of any size costs bounded memory here: its names come
//! sorted from the scan (spilled to a temporary file beyond one run), its counterpart in the parent
//! snapshot is read a page at a time, and each entry goes to the assembler as soon as it is seen (within
//! the [`Window`]). A sub-folder is walked where it appears in its parent's order. A source that is a single
//! file is recorded as a root folder holding just that file.

use std::fs::{self, Metadata};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use crossbeam_channel::Sender;

use super::assemble::{Event, FileKey};
use super::read::FileJob;
use super::scan::{self, ScanStream, Scanned, ScannedEntry};
use super::window::Window;
use super::Shared;
use crate::entries::SortedLookup;
use crate::error::Error;
use crate::ids::{ContentId, TreeId};
use crate::tree::{FileContent, Node, NodeKind};

pub(crate) struct Walker<'a, 'r> {
    shared: &'a Shared<'r>,
    files: Sender<FileJob>,
    events: Sender<Event>,
    window: Arc<Window>,
    /// Names of one folder sorted in memory before they are spilled to a temporary file (by the scan).
    names_in_memory: usize,
    /// Folders the walk is inside of, below the root.
    depth: usize,
    next_slot: u64,
    /// The pipeline closed under the walk (a stage it sends to is gone): every folder being walked stops,
    /// even when the backup is not marked stopped, so none reads on into steps of the scan meant for another.
    closed: bool,
    /// Events not sent yet: they go to the assembler in batches of [`EVENT_BATCH`], and always before the
    /// walker may block (on the window or on the readers' queue), so nothing it waits for can depend on an
    /// event it still holds.
    batch: Vec<Event>,
}

/// Events the walker sends at once. One handoff per entry made the assembler's channel spin between
/// entries (about 4 % of an unchanged backup's CPU).
const EVENT_BATCH: usize = 64;

/// The pipeline is shutting down (a channel closed or the backup stopped).
struct Closed;

/// A placeholder tree id for folders whose tree is not built yet.
const PENDING: ContentId = ContentId([0; 32]);

fn time_ns(secs: i64, nanos: i64) -> i64 {
    secs.saturating_mul(1_000_000_000).saturating_add(nanos)
}

/// The node for an entry, without its content.
fn node_from(name: Vec<u8>, meta: &Metadata, kind: NodeKind) -> Node {
    Node {
        name,
        kind,
        mode: meta.mode(),
        uid: meta.uid(),
        gid: meta.gid(),
        mtime_ns: time_ns(meta.mtime(), meta.mtime_nsec()),
        ctime_ns: time_ns(meta.ctime(), meta.ctime_nsec()),
        inode: meta.ino(),
        size: if meta.is_file() { meta.len() } else { 0 },
    }
}

impl<'a, 'r> Walker<'a, 'r> {
    pub fn new(
        shared: &'a Shared<'r>,
        files: Sender<FileJob>,
        events: Sender<Event>,
        window: Arc<Window>,
        names_in_memory: usize,
    ) -> Self {
        Self {
            shared,
            files,
            events,
            window,
            names_in_memory,
            depth: 0,
            next_slot: 0,
            closed: false,
            batch: Vec::new(),
        }
    }

    /// Queues an event for the assembler, sending the batch when it is full.
    fn emit(&mut self, event: Event) -> Result<(), Closed> {
        self.batch.push(event);
        if self.batch.len() >= EVENT_BATCH {
            self.flush()?;
        }
        Ok(())
    }

    /// Sends the queued events.
    fn flush(&mut self) -> Result<(), Closed> {
        match self.batch.len() {
            0 => Ok(()),
            1 => self.events.send(self.batch.remove(0)).map_err(|_| Closed),
            _ => self.events.send(Event::Batch(std::mem::take(&mut self.batch))).map_err(|_| Closed),
        }
    }

    /// Walks the whole source (`root_meta` is its metadata, symlinks followed). A failure to read the root
    /// folder is fatal; anything below is recorded and skipped.
    pub fn run(mut self, root: &Path, root_meta: Metadata, parent_root: Option<TreeId>) {
        if !root_meta.is_dir() {
            self.walk_file(root, root_meta, parent_root);
            let _ = self.flush();
            return;
        }
        let (shared, names_in_memory) = (self.shared, self.names_in_memory);
        std::thread::scope(|scope| {
            let (steps, rx) = scan::channel();
            let scanner = std::thread::Builder::new()
                .name("cairn-scan".into())
                .stack_size(scan::STACK_BYTES)
                .spawn_scoped(scope, move || {
                    scan::run(root, names_in_memory, &|| shared.stopped(), &shared.progress.stages, steps)
                });
            if let Err(e) = scanner {
                shared.fail(Error::local(root, e));
            }
            let mut stream = ScanStream::new(rx);
            let slot = self.next_slot();
            if let Err(e) = self.walk_dir(&mut stream, root, slot, None, parent_root) {
                shared.fail(Error::local(root, e));
            }
            let _ = self.flush();
            // Before the scope waits for the scan: a scan blocked on a full channel then sees the walk gone.
            drop(stream);
        });
    }

    /// Walks a source that is a single file: a root folder holding just that file.
    fn walk_file(&mut self, root: &Path, root_meta: Metadata, parent_root: Option<TreeId>) {
        let slot = self.next_slot();
        let Some(name) = root.file_name() else {
            self.shared.fail(Error::InvalidArgument(format!("{} names no file", root.display())));
            return;
        };
        if self.emit(Event::DirOpened { slot, parent: None }).is_err() {
            return;
        }
        let mut parent = self.parent_lookup(parent_root.as_ref());
        let entry =
            ScannedEntry { name: name.as_bytes().to_vec(), path: root.to_path_buf(), meta: Ok(root_meta), link: None };
        // A file has no folder below it, so the walk never reads from this scan.
        if self.visit(&mut ScanStream::finished(), slot, 0, entry, &mut parent).is_ok() {
            let _ = self.emit(Event::DirListed { slot });
        }
    }

    /// The scan ended where the walk expected more: the backup stopped, or (a defect) the two went out of
    /// step, which must fail the backup rather than record a folder short.
    fn scan_lost(&self) {
        if !self.shared.stopped() {
            self.shared.fail(Error::corrupt("backup", "the scan of the source ended out of step with the walk"));
        }
    }

    fn next_slot(&mut self) -> u64 {
        self.next_slot += 1;
        self.next_slot
    }

    /// The parent snapshot's entries of this folder, by name; none when they cannot be read.
    fn parent_lookup(&self, tree: Option<&TreeId>) -> SortedLookup<'a> {
        SortedLookup::open(self.shared.access, tree).unwrap_or_else(|e| {
            tracing::warn!(
                "parent snapshot tree {} unreadable, re-reading files: {e}",
                tree.map(|t| t.to_hex()).unwrap_or_default()
            );
            SortedLookup::empty()
        })
    }

    /// The parent's content for a file that has not changed, if its chunks are all still indexed (in packs
    /// in use: FORMAT.md §13(c)). A file of many chunks has its chunk list read for that, since the list's
    /// pack may stay in use (for other blobs) after its chunks' packs were retired.
    fn unchanged_content(&self, node: &Node, parent: Option<&Node>) -> Option<FileContent> {
        let p = parent?;
        let NodeKind::File { content } = &p.kind else { return None };
        let same =
            p.size == node.size && p.mtime_ns == node.mtime_ns && p.ctime_ns == node.ctime_ns && p.inode == node.inode;
        if !same {
            return None;
        }
        let session = &self.shared.session;
        let indexed = match content {
            FileContent::Inline(ids) => ids.iter().all(|id| session.is_stored(id)),
            FileContent::List { list, .. } => {
                let chunks_stored = || {
                    let chunks = self.shared.access.file_chunks(content);
                    chunks.is_ok_and(|ids| ids.iter().all(|id| session.is_stored(id)))
                };
                session.is_stored(list) && (!session.checks_storage() || chunks_stored())
            }
        };
        indexed.then(|| content.clone())
    }

    /// Walks a folder whose steps come next from the scan (listed entirely before anything is sent, so a
    /// listing error leaves nothing half-sent), sending its entries in name order.
    fn walk_dir(
        &mut self,
        stream: &mut ScanStream,
        path: &Path,
        slot: u64,
        link: Option<FileKey>,
        parent_tree: Option<TreeId>,
    ) -> std::io::Result<()> {
        match stream.next_step() {
            Some(Scanned::Listed(Ok(()))) => {}
            Some(Scanned::Listed(Err(e))) => return Err(e),
            _ => {
                self.scan_lost();
                return Ok(());
            }
        }
        let mut parent = self.parent_lookup(parent_tree.as_ref());
        if self.emit(Event::DirOpened { slot, parent: link }).is_err() {
            self.closed = true;
            return Ok(());
        }
        let mut at: u32 = 0;
        loop {
            let entry = match stream.next_step() {
                Some(Scanned::Entry(entry)) => entry,
                Some(Scanned::End) => break,
                Some(Scanned::Truncated(e)) => {
                    // The spilled listing could not be read back: the folder keeps what was sent.
                    self.shared.record_error(format!("{}: reading the sorted listing back: {e}", path.display()));
                    if !stream.skip_folder() {
                        self.scan_lost();
                        return Ok(());
                    }
                    break;
                }
                Some(Scanned::Listed(_)) | None => {
                    self.scan_lost();
                    return Ok(());
                }
            };
            if at == u32::MAX {
                self.shared.record_error(format!(
                    "{}: more than {} entries; the rest are left out",
                    path.display(),
                    u32::MAX
                ));
                // This entry's own folder, if it is one, and the rest of this folder. (Never in practice; the
                // scan still reads what is skipped, and the walk drops it.)
                if !stream.skip_folder() {
                    self.scan_lost();
                    return Ok(());
                }
                break;
            }
            match self.visit(stream, slot, at, entry, &mut parent) {
                Ok(true) => at += 1,
                Ok(false) => {}
                Err(Closed) => {
                    self.closed = true;
                    return Ok(());
                }
            }
        }
        let _ = self.emit(Event::DirListed { slot });
        Ok(())
    }

    /// Records one entry as entry `at` of folder `slot`; false when it vanished or could not be read (it is
    /// left out).
    fn visit(
        &mut self,
        stream: &mut ScanStream,
        slot: u64,
        at: u32,
        entry: ScannedEntry,
        parent: &mut SortedLookup<'_>,
    ) -> Result<bool, Closed> {
        if self.shared.stopped() {
            return Err(Closed);
        }
        let ScannedEntry { name, path, meta, link } = entry;
        let meta = match meta {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false), // vanished since listing
            Err(e) => {
                self.shared.record_error(format!("{}: {e}", path.display()));
                return Ok(false);
            }
        };
        let previous = match parent.find(&name) {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!("parent snapshot page unreadable at {}, re-reading files: {e}", path.display());
                None
            }
        };
        let progress = &self.shared.progress;
        let key = FileKey { slot, at };
        let ft = meta.file_type();
        let mut read = false;
        let mut subdir: Option<Option<TreeId>> = None;
        let node = if ft.is_file() {
            let mut node = node_from(name, &meta, NodeKind::File { content: FileContent::Inline(Vec::new()) });
            progress.files_found.fetch_add(1, Relaxed);
            progress.bytes_found.fetch_add(node.size, Relaxed);
            match self.unchanged_content(&node, previous) {
                Some(content) => {
                    node.kind = NodeKind::File { content };
                    progress.files_done.fetch_add(1, Relaxed);
                    progress.files_unchanged.fetch_add(1, Relaxed);
                    progress.bytes_done.fetch_add(node.size, Relaxed);
                }
                None => read = true,
            }
            node
        } else if ft.is_dir() {
            subdir = Some(previous.and_then(|p| match p.kind {
                NodeKind::Dir { tree } => Some(tree),
                _ => None,
            }));
            node_from(name, &meta, NodeKind::Dir { tree: PENDING })
        } else if ft.is_symlink() {
            match link.unwrap_or_else(|| fs::read_link(&path)) {
                Ok(target) => {
                    node_from(name, &meta, NodeKind::Symlink { target: target.as_os_str().as_bytes().to_vec() })
                }
                Err(e) => {
                    self.shared.record_error(format!("{}: {e}", path.display()));
                    return Ok(false);
                }
            }
        } else {
            node_from(name, &meta, NodeKind::Special { rdev: meta.rdev() })
        };
        let size = node.size;
        let ticket = match self.window.try_enter(self.depth) {
            Some(ticket) => ticket,
            None => {
                // The window is full: what the assembler needs to free a place must reach it first.
                self.flush()?;
                self.window.enter(self.depth, || self.shared.stopped()).ok_or(Closed)?
            }
        };
        let pending = read || subdir.is_some();
        self.emit(Event::Entry { key, node, pending, ticket })?;
        if read {
            // A reader's events for this file must find its entry at the assembler, and the readers' queue
            // may block.
            self.flush()?;
            // The job takes the path the scan made (a file read is never a folder walked below).
            self.files.send(FileJob { key, path, size }).map_err(|_| Closed)?;
        } else if let Some(previous) = subdir {
            let child_slot = self.next_slot();
            self.depth += 1;
            let walked = self.walk_dir(stream, &path, child_slot, Some(key), previous);
            self.depth -= 1;
            if let Err(e) = walked {
                self.shared.record_error(format!("{}: {e}", path.display()));
                self.emit(Event::EntryFailed { key })?;
            }
            if self.closed || self.shared.stopped() {
                return Err(Closed);
            }
        }
        Ok(true)
    }
}
