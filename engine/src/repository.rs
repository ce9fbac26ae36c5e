//! An open repository: storage, the unlocked keys, the format and the loaded index, with the reads every
//! command needs (blobs, trees, chunk lists, snapshots) and the writes that are not part of a backup
//! (format blob, snapshot records, index blobs).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use rayon::prelude::*;

use crate::chunker::Chunker;
use crate::content;
use crate::crypto::keys::{BlobClass, KeySet};
use crate::error::{Error, Result};
use crate::format::{CreateOptions, Format, FORMAT_BLOB_NAME, MAX_FORMAT_BLOB};
use crate::ids::PackId;
use crate::ids::{ContentId, IndexId, SnapshotId, TreeId};
use crate::index::{self, Index};
use crate::pack::PackEntry;
use crate::snapshot::{snapshot_name, Snapshot, Source, MAX_SNAPSHOT_BYTES};
use crate::storage::Storage;
use crate::tree::{ChunkList, FileContent, Node, TreeRecord};

/// Largest index blob read (a backup writes one every few thousand entries).
const MAX_INDEX_BLOB: u64 = 256 << 20;

/// An unlocked repository.
pub struct Repository {
    storage: Arc<dyn Storage>,
    format: Format,
    keys: KeySet,
    index: RwLock<Arc<Index>>,
}

impl Repository {
    /// Creates a new repository in empty storage.
    pub fn create(storage: Arc<dyn Storage>, password: &[u8], options: &CreateOptions) -> Result<Self> {
        match storage.stat(FORMAT_BLOB_NAME) {
            Ok(_) => {
                return Err(Error::InvalidArgument(format!("a repository already exists in {}", storage.describe())))
            }
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
        let (format, master) = Format::create(password, options)?;
        storage.put(FORMAT_BLOB_NAME, &format.to_bytes())?;
        Ok(Self { storage, format, keys: master.derive(), index: RwLock::new(Arc::new(Index::default())) })
    }

    /// Reads and checks the format blob without a password.
    pub fn read_format(storage: &dyn Storage) -> Result<Format> {
        let bytes = match storage.get(FORMAT_BLOB_NAME) {
            Ok(bytes) => bytes,
            Err(e) if e.is_not_found() => return Err(Error::NoRepository(storage.describe())),
            Err(e) => return Err(e.into()),
        };
        if bytes.len() > MAX_FORMAT_BLOB {
            return Err(Error::corrupt("format blob", "too large"));
        }
        Format::from_bytes(&bytes)
    }

    /// Opens a repository: checks the format blob, unlocks the master key and loads the index.
    pub fn open(storage: Arc<dyn Storage>, password: &[u8]) -> Result<Self> {
        let format = Self::read_format(storage.as_ref())?;
        let keys = format.unlock(password)?.derive();
        let repo = Self { storage, format, keys, index: RwLock::new(Arc::new(Index::default())) };
        repo.reload_index()?;
        Ok(repo)
    }

    /// Loads every index blob (in parallel) into a fresh in-memory index. Maintenance replaces index blobs
    /// (writes the merged blob, then deletes the old ones), so a blob listed but gone when read means the
    /// listing is stale: it is taken again, a few times.
    pub fn reload_index(&self) -> Result<()> {
        let mut attempt = 0;
        let contents = loop {
            match self.load_index_contents() {
                Err(Error::Storage(e)) if e.is_not_found() && attempt < 4 => attempt += 1,
                other => break other?,
            }
        };
        let index = Index::from_contents(contents.into_iter().map(|(_, c)| c));
        *self.index.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(index);
        Ok(())
    }

    /// Reads and opens every index blob, with its name.
    pub fn load_index_contents(&self) -> Result<Vec<(String, index::IndexContents)>> {
        let blobs = self.storage.list("i")?;
        blobs
            .par_iter()
            .map(|blob| {
                if blob.size > MAX_INDEX_BLOB {
                    return Err(Error::corrupt(format!("index blob {}", blob.name), "too large"));
                }
                let bytes = self.storage.get(&blob.name)?;
                Ok((blob.name.clone(), index::decode_index_contents(&self.keys, &blob.name, &bytes)?))
            })
            .collect()
    }

    /// A snapshot of the current in-memory index.
    pub fn index(&self) -> Arc<Index> {
        self.index.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Writes an index blob for packs already stored, and adds them to the in-memory index.
    pub fn write_index(&self, packs: &[(BlobClass, PackId, Vec<PackEntry>)]) -> Result<()> {
        if packs.is_empty() {
            return Ok(());
        }
        let name = index::index_name(&IndexId::random());
        self.storage.put(&name, &index::encode_index_blob(&self.keys, &name, packs))?;
        let index = self.index();
        for (class, id, entries) in packs {
            index.insert_pack(*class, *id, entries);
        }
        Ok(())
    }

    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    pub fn format(&self) -> &Format {
        &self.format
    }

    pub fn keys(&self) -> &KeySet {
        &self.keys
    }

    /// The repository's chunker.
    pub fn chunker(&self) -> Result<Chunker> {
        Chunker::new(self.format.chunker, self.keys.hashing.gear_seed())
    }

    /// Reads, decrypts, decompresses and verifies one content blob.
    pub fn read_blob(&self, id: &ContentId) -> Result<Vec<u8>> {
        let loc = self.index().get(id).ok_or_else(|| Error::NotFound(format!("blob {id} (not in the index)")))?;
        let stored = self.storage.get_range(&loc.pack_name(), loc.offset as u64, loc.stored_len as u64)?;
        content::open(&self.keys, loc.class, id, loc.compression, loc.raw_len, &stored)
    }

    /// Reads a directory's entries, following pages.
    pub fn read_tree(&self, id: &TreeId) -> Result<Vec<Node>> {
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
    pub fn file_chunks(&self, content: &FileContent) -> Result<Vec<ContentId>> {
        match content {
            FileContent::Inline(ids) => Ok(ids.clone()),
            FileContent::List { list, chunks } => {
                let mut out = Vec::with_capacity((*chunks).min(1 << 20) as usize);
                self.expand_list(list, None, &mut out)?;
                if out.len() as u64 != *chunks {
                    return Err(Error::corrupt(format!("chunk list {list}"), "chunk count mismatch"));
                }
                Ok(out)
            }
        }
    }

    fn expand_list(&self, id: &ContentId, expected_level: Option<u8>, out: &mut Vec<ContentId>) -> Result<()> {
        let list = ChunkList::decode(&self.read_blob(id)?)?;
        if expected_level.is_some_and(|l| l != list.level) {
            return Err(Error::corrupt(format!("chunk list {id}"), "unexpected level"));
        }
        if list.level == 0 {
            out.extend(list.ids);
        } else {
            for sub in &list.ids {
                self.expand_list(sub, Some(list.level - 1), out)?;
            }
        }
        Ok(())
    }

    /// Every snapshot, oldest first.
    pub fn list_snapshots(&self) -> Result<Vec<Snapshot>> {
        let blobs = self.storage.list("s")?;
        let mut snaps: Vec<Snapshot> = blobs
            .par_iter()
            .map(|blob| {
                if blob.size > MAX_SNAPSHOT_BYTES {
                    return Err(Error::corrupt(format!("snapshot {}", blob.name), "too large"));
                }
                Snapshot::open(&self.keys, &blob.name, &self.storage.get(&blob.name)?)
            })
            .collect::<Result<_>>()?;
        snaps.sort_by_key(|s| (s.start_time, s.id));
        Ok(snaps)
    }

    /// The newest snapshot of a source, if any.
    pub fn latest_snapshot(&self, source: &Source) -> Result<Option<Snapshot>> {
        Ok(self.list_snapshots()?.into_iter().rfind(|s| &s.source == source))
    }

    /// Finds a snapshot by a unique id prefix.
    pub fn find_snapshot(&self, prefix: &str) -> Result<Snapshot> {
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

    /// Stores a snapshot record (the last write of a backup).
    pub fn write_snapshot(&self, snap: &Snapshot) -> Result<()> {
        Ok(self.storage.put(&snapshot_name(&snap.id), &snap.seal(&self.keys))?)
    }

    /// Deletes a snapshot record. Its data stays until maintenance removes what no snapshot references.
    pub fn delete_snapshot(&self, id: &SnapshotId) -> Result<()> {
        let name = snapshot_name(id);
        self.storage.stat(&name)?;
        Ok(self.storage.delete(&name)?)
    }

    /// Resolves `path` (slash-separated, relative to the snapshot root) to its node and, for folders, tree.
    pub fn resolve_path(&self, root: &TreeId, path: &str) -> Result<Resolved> {
        let mut tree = *root;
        let mut node: Option<Node> = None;
        for part in path.split('/').filter(|p| !p.is_empty() && *p != ".") {
            let Some(current) = Self::dir_tree(&node, tree) else {
                return Err(Error::NotFound(format!("{path} (a parent is not a folder)")));
            };
            let nodes = self.read_tree(&current)?;
            let found = nodes
                .into_iter()
                .find(|n| n.name == part.as_bytes())
                .ok_or_else(|| Error::NotFound(format!("{path} in snapshot")))?;
            if let crate::tree::NodeKind::Dir { tree: t } = &found.kind {
                tree = *t;
            }
            node = Some(found);
        }
        Ok(Resolved { tree: Self::dir_tree(&node, tree), node })
    }

    fn dir_tree(node: &Option<Node>, tree: TreeId) -> Option<TreeId> {
        match node {
            None => Some(tree),
            Some(Node { kind: crate::tree::NodeKind::Dir { tree }, .. }) => Some(*tree),
            Some(_) => None,
        }
    }

    /// Sizes of blobs by pack prefix, for `repository status`.
    pub fn storage_summary(&self) -> Result<HashMap<char, (u64, u64)>> {
        let mut out: HashMap<char, (u64, u64)> = HashMap::new();
        for prefix in ["p", "q", "i", "s"] {
            for blob in self.storage.list(prefix)? {
                let e = out.entry(prefix.chars().next().expect("non-empty")).or_default();
                e.0 += 1;
                e.1 += blob.size;
            }
        }
        Ok(out)
    }
}

/// A path inside a snapshot.
pub struct Resolved {
    /// The entry (None for the snapshot root).
    pub node: Option<Node>,
    /// The folder's tree when the path is a folder.
    pub tree: Option<TreeId>,
}
