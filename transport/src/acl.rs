//! Access rules of the repository server (docs/PROTOCOL.md, "Access control"):
//!
//! - a user `U@H` may create, list, read and delete only snapshots whose source is `U@H:<path>`; an admin
//!   may do all of it for every snapshot;
//! - a user may read a tree, chunk list or chunk only if it is reachable from a snapshot the user may read.
//!   The server learns reachability lazily: listing snapshots makes their roots readable, reading a
//!   readable tree or chunk list makes what it references readable. The set lives per connection.

use std::collections::HashSet;

use cairn_engine::ids::ContentId;
use cairn_engine::snapshot::Source;
use cairn_engine::tree::{ChunkList, FileContent, NodeKind, TreeRecord};

/// Whether `user` (`U@H`) may touch snapshots of `source`.
pub fn owns_source(user: &str, admin: bool, source: &Source) -> bool {
    admin || format!("{}@{}", source.user_name, source.host) == user
}

/// Blobs a connection may read.
#[derive(Default)]
pub struct Readable {
    ids: HashSet<ContentId>,
}

impl Readable {
    pub fn allow(&mut self, id: ContentId) {
        self.ids.insert(id);
    }

    pub fn may_read(&self, id: &ContentId) -> bool {
        self.ids.contains(id)
    }

    /// After a readable metadata blob was read: everything it references becomes readable.
    pub fn learn_from(&mut self, plaintext: &[u8]) {
        if let Ok(record) = TreeRecord::decode(plaintext) {
            match record {
                TreeRecord::Pages(pages) => self.ids.extend(pages),
                TreeRecord::Entries(nodes) => {
                    for node in nodes {
                        match node.kind {
                            NodeKind::Dir { tree } => {
                                self.ids.insert(tree);
                            }
                            NodeKind::File { content: FileContent::Inline(ids) } => self.ids.extend(ids),
                            NodeKind::File { content: FileContent::List { list, .. } } => {
                                self.ids.insert(list);
                            }
                            _ => {}
                        }
                    }
                }
            }
        } else if let Ok(list) = ChunkList::decode(plaintext) {
            self.ids.extend(list.ids);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ownership() {
        let source = Source { host: "laptop".into(), user_name: "alice".into(), path: "/home".into() };
        assert!(owns_source("alice@laptop", false, &source));
        assert!(!owns_source("bob@laptop", false, &source));
        assert!(!owns_source("alice@desk", false, &source));
        assert!(owns_source("bob@desk", true, &source));
    }
}
