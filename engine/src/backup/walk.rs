//! The walk stage: visits the source folder depth-first in name order, records every entry's metadata,
//! reuses the chunk lists of files unchanged since the parent snapshot, and hands the rest to the readers.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::{self, Metadata};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;

use crossbeam_channel::Sender;

use super::assemble::{Event, FileKey};
use super::read::FileJob;
use super::Shared;
use crate::ids::{ContentId, TreeId};
use crate::tree::{FileContent, Node, NodeKind};

pub(crate) struct Walker<'a, 'r> {
    shared: &'a Shared<'r>,
    files: Sender<FileJob>,
    events: Sender<Event>,
    next_slot: u64,
}

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
    pub fn new(shared: &'a Shared<'r>, files: Sender<FileJob>, events: Sender<Event>) -> Self {
        Self { shared, files, events, next_slot: 0 }
    }

    /// Walks the whole source. A failure to read the root folder is fatal; anything below is recorded
    /// and skipped.
    pub fn run(mut self, root: &Path, parent_root: Option<TreeId>) {
        let slot = self.next_slot();
        if let Err(e) = self.walk_dir(root, slot, None, parent_root) {
            self.shared.fail(crate::error::Error::local(root, e));
        }
    }

    fn next_slot(&mut self) -> u64 {
        self.next_slot += 1;
        self.next_slot
    }

    fn parent_nodes(&self, tree: Option<TreeId>) -> HashMap<Vec<u8>, Node> {
        let Some(tree) = tree else { return HashMap::new() };
        match self.shared.access.read_tree(&tree) {
            Ok(nodes) => nodes.into_iter().map(|n| (n.name.clone(), n)).collect(),
            Err(e) => {
                tracing::warn!("parent snapshot tree {tree} unreadable, re-reading files: {e}");
                HashMap::new()
            }
        }
    }

    /// The parent's content for a file that has not changed, if its chunks are all still indexed.
    fn unchanged_content(&self, node: &Node, parent: Option<&Node>) -> Option<FileContent> {
        let p = parent?;
        let NodeKind::File { content } = &p.kind else { return None };
        let same =
            p.size == node.size && p.mtime_ns == node.mtime_ns && p.ctime_ns == node.ctime_ns && p.inode == node.inode;
        let session = &self.shared.session;
        let indexed = match content {
            FileContent::Inline(ids) => ids.iter().all(|id| session.is_stored(id)),
            FileContent::List { list, .. } => session.is_stored(list),
        };
        (same && indexed).then(|| content.clone())
    }

    fn walk_dir(
        &mut self,
        path: &Path,
        slot: u64,
        link: Option<FileKey>,
        parent_tree: Option<TreeId>,
    ) -> std::io::Result<()> {
        let mut names: Vec<OsString> =
            fs::read_dir(path)?.map(|e| e.map(|e| e.file_name())).collect::<Result<_, _>>()?;
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        let parent = self.parent_nodes(parent_tree);
        let progress = &self.shared.progress;

        let mut nodes = Vec::with_capacity(names.len());
        let mut reads: Vec<(u32, u64)> = Vec::new();
        let mut subdirs: Vec<(u32, Option<TreeId>)> = Vec::new();
        for name in names {
            if self.shared.stopped() {
                return Ok(());
            }
            let child = path.join(&name);
            let meta = match fs::symlink_metadata(&child) {
                Ok(meta) => meta,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue, // vanished since listing
                Err(e) => {
                    self.shared.record_error(format!("{}: {e}", child.display()));
                    continue;
                }
            };
            let name = name.into_vec();
            let at = nodes.len() as u32;
            let ft = meta.file_type();
            let node = if ft.is_file() {
                let mut node = node_from(name, &meta, NodeKind::File { content: FileContent::Inline(Vec::new()) });
                progress.files_found.fetch_add(1, Relaxed);
                progress.bytes_found.fetch_add(node.size, Relaxed);
                match self.unchanged_content(&node, parent.get(&node.name)) {
                    Some(content) => {
                        node.kind = NodeKind::File { content };
                        progress.files_done.fetch_add(1, Relaxed);
                        progress.files_unchanged.fetch_add(1, Relaxed);
                        progress.bytes_done.fetch_add(node.size, Relaxed);
                    }
                    None => reads.push((at, node.size)),
                }
                node
            } else if ft.is_dir() {
                let previous = parent.get(name.as_slice()).and_then(|p| match p.kind {
                    NodeKind::Dir { tree } => Some(tree),
                    _ => None,
                });
                subdirs.push((at, previous));
                node_from(name, &meta, NodeKind::Dir { tree: PENDING })
            } else if ft.is_symlink() {
                match fs::read_link(&child) {
                    Ok(target) => {
                        node_from(name, &meta, NodeKind::Symlink { target: target.into_os_string().into_vec() })
                    }
                    Err(e) => {
                        self.shared.record_error(format!("{}: {e}", child.display()));
                        continue;
                    }
                }
            } else {
                node_from(name, &meta, NodeKind::Special { rdev: meta.rdev() })
            };
            nodes.push(node);
        }

        let child_path = |at: &u32| path.join(std::ffi::OsStr::from_bytes(&nodes[*at as usize].name));
        let file_paths: Vec<_> = reads.iter().map(|(at, _)| child_path(at)).collect();
        let dir_paths: Vec<_> = subdirs.iter().map(|(at, _)| child_path(at)).collect();
        let pending = (reads.len() + subdirs.len()) as u32;
        let opened = Event::DirOpened { slot, parent: link, nodes, pending };
        if self.events.send(opened).is_err() {
            return Ok(());
        }
        for ((at, size), path) in reads.into_iter().zip(file_paths) {
            let job = FileJob { key: FileKey { slot, at }, path, size };
            if self.files.send(job).is_err() {
                return Ok(());
            }
        }
        for ((at, previous), child) in subdirs.into_iter().zip(dir_paths) {
            let child_slot = self.next_slot();
            let key = FileKey { slot, at };
            if let Err(e) = self.walk_dir(&child, child_slot, Some(key), previous) {
                self.shared.record_error(format!("{}: {e}", child.display()));
                if self.events.send(Event::EntryFailed { key }).is_err() {
                    return Ok(());
                }
            }
        }
        Ok(())
    }
}
