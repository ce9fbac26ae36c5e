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

use cairn_engine::ids::ContentId;
use cairn_engine::snapshot::Source;
use cairn_engine::tree::{ChunkList, FileContent, NodeKind, TreeRecord};

/// Whether `user` (`U@H`) may touch snapshots of `source`.
pub fn owns_source(user: &str, admin: bool, source: &Source) -> bool {
    admin || format!("{}@{}", source.user_name, source.host) == user
}

/// The ids a tree or chunk list `plaintext` references (none when it is neither).
pub fn references(plaintext: &[u8]) -> Vec<ContentId> {
    let mut out = Vec::new();
    if let Ok(record) = TreeRecord::decode(plaintext) {
        match record {
            TreeRecord::Pages(pages) => out.extend(pages),
            TreeRecord::Entries(nodes) => {
                for node in nodes {
                    match node.kind {
                        NodeKind::Dir { tree } => out.push(tree),
                        NodeKind::File { content: FileContent::Inline(ids) } => out.extend(ids),
                        NodeKind::File { content: FileContent::List { list, .. } } => out.push(list),
                        _ => {}
                    }
                }
            }
        }
    } else if let Ok(list) = ChunkList::decode(plaintext) {
        out.extend(list.ids);
    }
    out
}

/// What a connection may read, and what it still owes.
#[derive(Default)]
pub struct Readable {
    /// Reachable from snapshots the user may read.
    reachable: HashSet<ContentId>,
    /// Uploaded on this connection and checked against their ids.
    uploaded: HashSet<ContentId>,
    /// Named by an uploaded tree or chunk list and not readable: they must arrive before a snapshot.
    owed: HashSet<ContentId>,
}

impl Readable {
    /// Marks a snapshot root (or anything else known to be reachable from the user's snapshots).
    pub fn reach(&mut self, id: ContentId) {
        self.reachable.insert(id);
    }

    pub fn may_read(&self, id: &ContentId) -> bool {
        self.reachable.contains(id) || self.uploaded.contains(id)
    }

    /// After the metadata blob `id` was read: when it is reachable, everything it references becomes
    /// reachable. A blob readable only because this connection uploaded it teaches nothing.
    pub fn learn_from(&mut self, id: &ContentId, plaintext: &[u8]) {
        if self.reachable.contains(id) {
            self.reachable.extend(references(plaintext));
        }
    }

    /// An uploaded tree or chunk list names `references`: those the connection may not read are owed until
    /// they arrive. (Refusing them at once would refuse honest clients whose claims and uploads travel on
    /// parallel streams and arrive out of order; a snapshot waits for them instead.)
    pub fn owe(&mut self, references: &[ContentId]) {
        let owed: Vec<ContentId> = references.iter().filter(|r| !self.may_read(r)).copied().collect();
        self.owed.extend(owed);
    }

    /// `id` was uploaded and checked.
    pub fn uploaded(&mut self, id: ContentId) {
        self.owed.remove(&id);
        self.uploaded.insert(id);
    }

    /// An id an uploaded tree references that has not arrived, if any.
    pub fn owes(&self) -> Option<ContentId> {
        self.owed.iter().next().copied()
    }

    /// After a snapshot was committed: its root, and so (by the checks above) everything it reaches, is the
    /// user's. Uploads that no snapshot took stay readable as uploads.
    pub fn committed(&mut self, root: ContentId) {
        self.reachable.insert(root);
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
        r.uploaded(id(1));
        assert!(r.may_read(&id(1)));
        r.learn_from(&id(1), &list);
        assert!(!r.may_read(&id(9)), "reading an uploaded list must not make what it names readable");
        r.reach(id(2));
        r.learn_from(&id(2), &list);
        assert!(r.may_read(&id(9)), "a reachable list's references are reachable");
    }

    #[test]
    fn what_a_tree_names_is_owed_until_it_arrives() {
        let mut r = Readable::default();
        r.reach(id(6));
        r.owe(&[id(5), id(6)]);
        assert_eq!(r.owes(), Some(id(5)), "readable ids are not owed");
        r.uploaded(id(5));
        assert_eq!(r.owes(), None);
        assert!(r.may_read(&id(5)));
    }
}
