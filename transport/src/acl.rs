//! Access rules of the repository server (docs/PROTOCOL.md, "Access control"):
//!
//! - a user `U@H` may create, list, read and delete only snapshots whose source is `U@H:<path>`; an admin
//!   may do all of it for every snapshot;
//! - a user may read a tree, chunk list or chunk only if it is reachable from a snapshot the user may read,
//!   or if this connection uploaded it (the server checked its content against its id, so the client holds
//!   that content). The server learns reachability lazily: listing snapshots makes their roots reachable,
//!   reading a reachable tree or chunk list makes what it references reachable. Reading a blob that is
//!   readable only because it was uploaded teaches nothing: an uploaded tree may name any id.
//! - so that a user's snapshots only ever reach content the user holds, every id named by a tree or chunk
//!   list a user uploads must be readable by the connection or arrive on it (sent, or proven held) before
//!   its snapshot is accepted, and a snapshot's root must be readable.
//!
//! The sets live per connection.

use std::collections::HashSet;

use cairn_engine::crypto::keys::BlobClass;
use cairn_engine::ids::ContentId;
use cairn_engine::snapshot::Source;
use cairn_engine::tree::{ChunkList, FileContent, NodeKind, TreeRecord};

/// Whether `user` (`U@H`) may touch snapshots of `source`.
pub fn owns_source(user: &str, admin: bool, source: &Source) -> bool {
    admin || format!("{}@{}", source.user_name, source.host) == user
}

/// The most ids one connection may owe at once (about 40-50 bytes each). Honest clients owe only what is
/// on its way on parallel streams; a tree naming millions of ids that never arrive is refused instead of
/// growing the connection's memory.
pub const MAX_OWED: usize = 1 << 20;

/// The ids a tree or chunk list `plaintext` references, each with the class it is named as: a folder's tree,
/// a file's chunk list and a folder's pages are metadata, a file's chunks data (none when it is neither).
pub fn references(plaintext: &[u8]) -> Vec<(ContentId, BlobClass)> {
    tree_references(plaintext).unwrap_or_default()
}

/// Like [`references`], or `None` when `plaintext` is neither a tree record nor a chunk list.
pub fn tree_references(plaintext: &[u8]) -> Option<Vec<(ContentId, BlobClass)>> {
    let mut out = Vec::new();
    if let Ok(record) = TreeRecord::decode(plaintext) {
        match record {
            TreeRecord::Pages(pages) => out.extend(pages.into_iter().map(|id| (id, BlobClass::Metadata))),
            TreeRecord::Entries(nodes) => {
                for node in nodes {
                    match node.kind {
                        NodeKind::Dir { tree } => out.push((tree, BlobClass::Metadata)),
                        NodeKind::File { content: FileContent::Inline(ids) } => {
                            out.extend(ids.into_iter().map(|id| (id, BlobClass::Data)))
                        }
                        NodeKind::File { content: FileContent::List { list, .. } } => {
                            out.push((list, BlobClass::Metadata))
                        }
                        _ => {}
                    }
                }
            }
        }
    } else if let Ok(list) = ChunkList::decode(plaintext) {
        let class = if list.level == 0 { BlobClass::Data } else { BlobClass::Metadata };
        out.extend(list.ids.into_iter().map(|id| (id, class)));
    } else {
        return None;
    }
    Some(out)
}

/// What a connection may read, and what it still owes. Each id is held as the class it was reached or
/// arrived as: only a blob held as metadata (a tree or chunk list) extends what is reachable or may be named
/// where a tree goes, so a data chunk whose bytes happen to look like a chunk list grants nothing.
#[derive(Default)]
pub struct Readable {
    /// Reachable from snapshots the user may read.
    reachable: HashSet<(ContentId, BlobClass)>,
    /// Arrived on this connection: uploaded and checked against their ids, or proven held.
    uploaded: HashSet<(ContentId, BlobClass)>,
    /// Named by an uploaded or proven tree or chunk list and not held as that class: they must arrive
    /// before a snapshot.
    owed: HashSet<(ContentId, BlobClass)>,
}

impl Readable {
    /// Marks a snapshot's root tree (known to be reachable from the user's snapshots).
    pub fn reach(&mut self, root: ContentId) {
        self.reachable.insert((root, BlobClass::Metadata));
    }

    /// Whether the user may read `id` (as whatever class).
    pub fn may_read(&self, id: &ContentId) -> bool {
        [BlobClass::Metadata, BlobClass::Data].iter().any(|c| self.holds(&(*id, *c)))
    }

    fn holds(&self, key: &(ContentId, BlobClass)) -> bool {
        self.reachable.contains(key) || self.uploaded.contains(key)
    }

    /// After the blob `id` was read: when it is reachable as a tree or chunk list, everything it references
    /// becomes reachable. A blob readable only because this connection sent it teaches nothing.
    pub fn learn_from(&mut self, id: &ContentId, plaintext: &[u8]) {
        if self.reachable.contains(&(*id, BlobClass::Metadata)) {
            self.reachable.extend(references(plaintext));
        }
    }

    /// Whether `id` is reachable as a tree or chunk list (so reading it may teach something).
    pub fn reaches_tree(&self, id: &ContentId) -> bool {
        self.reachable.contains(&(*id, BlobClass::Metadata))
    }

    /// An uploaded or proven tree or chunk list names `references`: those not held as the class they are
    /// named as are owed until they arrive. (Refusing them at once would refuse honest clients whose claims
    /// and uploads travel on parallel streams and arrive out of order; a snapshot waits for them instead.)
    ///
    /// Owes nothing and returns false when that would make more than [`MAX_OWED`] ids owed.
    #[must_use]
    pub fn owe(&mut self, references: impl IntoIterator<Item = (ContentId, BlobClass)>) -> bool {
        let owed: Vec<(ContentId, BlobClass)> =
            references.into_iter().filter(|r| !self.holds(r) && !self.owed.contains(r)).collect();
        if self.owed.len() + owed.len() > MAX_OWED {
            return false;
        }
        self.owed.extend(owed);
        true
    }

    /// `id` arrived as `class` (uploaded and checked, or proven held).
    pub fn uploaded(&mut self, id: ContentId, class: BlobClass) {
        self.owed.remove(&(id, class));
        self.uploaded.insert((id, class));
    }

    /// An id an uploaded tree names that has not arrived as the class it is named as, if any.
    pub fn owes(&self) -> Option<ContentId> {
        self.owed.iter().find(|key| !self.holds(key)).map(|(id, _)| *id)
    }

    /// Whether `root` may be a snapshot's root: held as a tree.
    pub fn may_be_root(&self, root: &ContentId) -> bool {
        self.holds(&(*root, BlobClass::Metadata))
    }

    /// After a snapshot was committed: its root, and so (by the checks above) everything it reaches, is the
    /// user's. Uploads that no snapshot took stay readable as uploads.
    pub fn committed(&mut self, root: ContentId) {
        self.reach(root);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> ContentId {
        ContentId([n; 32])
    }

    #[test]
    fn ownership() {
        let source = Source { host: "laptop".into(), user_name: "alice".into(), path: "/home".into() };
        assert!(owns_source("alice@laptop", false, &source));
        assert!(!owns_source("bob@laptop", false, &source));
        assert!(!owns_source("alice@desk", false, &source));
        assert!(owns_source("bob@desk", true, &source));
    }

    #[test]
    fn an_uploaded_tree_grants_nothing_it_names() {
        let list = ChunkList { level: 0, ids: vec![id(9)] }.encode();
        let mut r = Readable::default();
        r.uploaded(id(1), BlobClass::Metadata);
        assert!(r.may_read(&id(1)));
        r.learn_from(&id(1), &list);
        assert!(!r.may_read(&id(9)), "reading an uploaded list must not make what it names readable");
        r.reach(id(2));
        r.learn_from(&id(2), &list);
        assert!(r.may_read(&id(9)), "a reachable list's references are reachable");
    }

    #[test]
    fn what_a_tree_names_is_owed_until_it_arrives_as_that_class() {
        let mut r = Readable::default();
        r.reach(id(6));
        assert!(r.owe(vec![(id(5), BlobClass::Metadata), (id(6), BlobClass::Metadata)]));
        assert_eq!(r.owes(), Some(id(5)), "held ids are not owed");
        // The same bytes sent as data do not pay for a chunk list named where a tree goes.
        r.uploaded(id(5), BlobClass::Data);
        assert_eq!(r.owes(), Some(id(5)));
        assert!(!r.may_be_root(&id(5)));
        r.uploaded(id(5), BlobClass::Metadata);
        assert_eq!(r.owes(), None);
        assert!(r.may_be_root(&id(5)));

        // Owing more than MAX_OWED at once is refused and owes nothing; the same ids named twice count once.
        let many = |from: u32, n: u32| {
            (from..from + n).map(|i| {
                let mut bytes = [0u8; 32];
                bytes[..4].copy_from_slice(&i.to_le_bytes());
                bytes[4] = 0xee;
                (ContentId(bytes), BlobClass::Data)
            })
        };
        assert!(r.owe(many(0, MAX_OWED as u32 - 1)));
        assert!(r.owe(many(0, MAX_OWED as u32 - 1)), "already owed");
        assert!(!r.owe(many(MAX_OWED as u32, 2)));
        assert!(r.owe(many(MAX_OWED as u32, 1)));
        assert_eq!(r.owed.len(), MAX_OWED);
    }

    #[test]
    fn a_reachable_data_chunk_that_looks_like_a_list_teaches_nothing() {
        let list = ChunkList { level: 0, ids: vec![id(9)] }.encode();
        let tree = TreeRecord::Entries(vec![cairn_engine::tree::Node {
            name: b"f".to_vec(),
            kind: NodeKind::File { content: FileContent::Inline(vec![id(3)]) },
            mode: 0o100644,
            uid: 0,
            gid: 0,
            mtime_ns: 0,
            ctime_ns: 0,
            inode: 0,
            size: 1,
        }])
        .encode();
        let mut r = Readable::default();
        r.reach(id(2));
        r.learn_from(&id(2), &tree);
        assert!(r.may_read(&id(3)));
        r.learn_from(&id(3), &list);
        assert!(!r.may_read(&id(9)), "a file's chunk is data, whatever its bytes look like");
    }
}
