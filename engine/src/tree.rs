//! Trees: one deterministic, versioned record per directory, stored as content so an unchanged subtree has
//! the same id and costs nothing to store again.
//!
//! A record is `"T" · version (1) · postcard(TreeRecord)`. Entries are sorted by name bytes. A directory with
//! more than [`PAGE_MAX`] entries is split into pages at content-defined points (a page ends after an entry
//! whose name hash matches a mask), and its record lists the pages, so no record grows without bound and an
//! insertion rewrites only one page. A file with more than [`INLINE_CHUNKS`] chunks keeps its chunk ids in
//! chunk-list blobs (`"L" · version · postcard(ChunkList)`), themselves split into levels of at most
//! [`LIST_FANOUT`] ids.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::ids::{ContentId, TreeId};

/// Most chunk ids a file entry holds inline.
pub const INLINE_CHUNKS: usize = 64;
/// Most ids in one chunk-list blob.
pub const LIST_FANOUT: usize = 8192;
/// Most entries in one tree page.
pub const PAGE_MAX: usize = 8192;
/// Fewest entries in a page before a content-defined cut is taken.
pub const PAGE_MIN: usize = 1024;
const PAGE_MASK: u32 = (1 << 11) - 1;

const TREE_TAG: &[u8; 2] = b"T\x01";
const LIST_TAG: &[u8; 2] = b"L\x01";

/// A directory entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// File name bytes (any bytes but `/` and NUL; not necessarily UTF-8).
    pub name: Vec<u8>,
    pub kind: NodeKind,
    /// Permission and type bits as `st_mode`.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime_ns: i64,
    /// Change time and inode: not restored, compared by the next backup to decide whether to re-read.
    pub ctime_ns: i64,
    pub inode: u64,
    /// Bytes of file content (0 for others).
    pub size: u64,
}

/// What an entry is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeKind {
    File {
        content: FileContent,
    },
    Dir {
        tree: TreeId,
    },
    Symlink {
        target: Vec<u8>,
    },
    /// FIFOs, sockets and devices: recorded with their mode, recreated where possible.
    Special {
        rdev: u64,
    },
}

/// A file's chunks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FileContent {
    /// Up to [`INLINE_CHUNKS`] chunk ids, in order.
    Inline(Vec<ContentId>),
    /// A chunk-list blob holding `chunks` chunk ids.
    List { list: ContentId, chunks: u64 },
}

/// A stored tree record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TreeRecord {
    /// The directory's entries, sorted by name.
    Entries(Vec<Node>),
    /// The ids of the pages that hold the entries, in order.
    Pages(Vec<TreeId>),
}

/// A chunk-list blob: at level 0 the ids are file chunks, above they are lists one level down.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkList {
    pub level: u8,
    pub ids: Vec<ContentId>,
}

fn encode_tagged<T: Serialize>(tag: &[u8; 2], value: &T) -> Vec<u8> {
    let mut out = tag.to_vec();
    // Serialising plain data into a Vec cannot fail.
    postcard::to_io(value, &mut out).expect("postcard encoding into a Vec");
    out
}

fn decode_tagged<'a, T: Deserialize<'a>>(tag: &[u8; 2], bytes: &'a [u8], what: &str) -> Result<T> {
    match bytes.get(..2) {
        Some(t) if t == tag => {}
        Some(t) if t[0] == tag[0] => return Err(Error::Unsupported(format!("{what} version {}", t[1]))),
        _ => return Err(Error::corrupt(what, "wrong record tag")),
    }
    let (value, rest) =
        postcard::take_from_bytes(&bytes[2..]).map_err(|e| Error::corrupt(what, format!("undecodable: {e}")))?;
    if !rest.is_empty() {
        return Err(Error::corrupt(what, "trailing bytes"));
    }
    Ok(value)
}

impl TreeRecord {
    /// The stored bytes.
    pub fn encode(&self) -> Vec<u8> {
        encode_tagged(TREE_TAG, self)
    }

    /// Parses stored bytes; checks entries are sorted and names are valid.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let record: TreeRecord = decode_tagged(TREE_TAG, bytes, "tree")?;
        if let TreeRecord::Entries(nodes) = &record {
            for pair in nodes.windows(2) {
                if pair[0].name >= pair[1].name {
                    return Err(Error::corrupt("tree", "entries not sorted or duplicated"));
                }
            }
            for n in nodes {
                if n.name.is_empty()
                    || n.name == b"."
                    || n.name == b".."
                    || n.name.contains(&b'/')
                    || n.name.contains(&0)
                {
                    return Err(Error::corrupt(
                        "tree",
                        format!("invalid entry name {:?}", String::from_utf8_lossy(&n.name)),
                    ));
                }
            }
        }
        Ok(record)
    }
}

impl ChunkList {
    /// The stored bytes.
    pub fn encode(&self) -> Vec<u8> {
        encode_tagged(LIST_TAG, self)
    }

    /// Parses stored bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let list: ChunkList = decode_tagged(LIST_TAG, bytes, "chunk list")?;
        if list.ids.len() > LIST_FANOUT || list.level > 8 {
            return Err(Error::corrupt("chunk list", "too many ids or levels"));
        }
        Ok(list)
    }
}

/// Whether a page may end after the entry named `name`: the first 4 bytes of its BLAKE3 hash (u32 LE) have
/// their low 11 bits zero.
fn is_cut(name: &[u8]) -> bool {
    let h = blake3::hash(name);
    u32::from_le_bytes(h.as_bytes()[..4].try_into().expect("4 bytes")) & PAGE_MASK == 0
}

/// Cuts `nodes` into `pages`, continuing the open `page`: a page ends after a cut entry once it holds
/// [`PAGE_MIN`] entries, or when it reaches [`PAGE_MAX`].
fn cut_pages(nodes: impl IntoIterator<Item = Node>, page: &mut Vec<Node>, pages: &mut Vec<Vec<Node>>) {
    for node in nodes {
        let cut = is_cut(&node.name);
        page.push(node);
        if page.len() >= PAGE_MAX || (cut && page.len() >= PAGE_MIN) {
            pages.push(std::mem::take(page));
        }
    }
}

/// Splits sorted entries into pages when there are more than [`PAGE_MAX`]: a page ends after an entry whose
/// name hash has its low bits zero (once it has [`PAGE_MIN`] entries) or when it reaches [`PAGE_MAX`].
pub fn paginate(nodes: Vec<Node>) -> Vec<Vec<Node>> {
    if nodes.len() <= PAGE_MAX {
        return vec![nodes];
    }
    let mut pages = Vec::new();
    let mut page = Vec::new();
    cut_pages(nodes, &mut page, &mut pages);
    if !page.is_empty() {
        pages.push(page);
    }
    pages
}

/// [`paginate`] for entries that arrive one at a time, in name order: it holds at most [`PAGE_MAX`] + 1
/// entries and hands out each page as soon as its end is known, with the same pages as `paginate` of the
/// whole list. Until more than `PAGE_MAX` entries arrived it cannot know whether the folder is paged at all,
/// so it holds them; after that, only the open page.
#[derive(Default)]
pub struct Pager {
    page: Vec<Node>,
    paged: bool,
}

/// What remains of a folder when its last entry has been given to a [`Pager`].
pub enum PagerEnd {
    /// The folder fits in one record: `TreeRecord::Entries` of these.
    Whole(Vec<Node>),
    /// The folder is paged: this last page (if any entries are left) follows the ones already handed out.
    LastPage(Option<Vec<Node>>),
}

impl Pager {
    /// Adds the next entry; returns the pages it completed (usually none).
    pub fn push(&mut self, node: Node) -> Vec<Vec<Node>> {
        let mut pages = Vec::new();
        if self.paged {
            cut_pages([node], &mut self.page, &mut pages);
        } else {
            self.page.push(node);
            if self.page.len() > PAGE_MAX {
                self.paged = true;
                let held = std::mem::take(&mut self.page);
                cut_pages(held, &mut self.page, &mut pages);
            }
        }
        pages
    }

    /// Entries held now (at most [`PAGE_MAX`]).
    pub fn held(&self) -> usize {
        self.page.len()
    }

    /// Ends the folder.
    pub fn finish(self) -> PagerEnd {
        match (self.paged, self.page.is_empty()) {
            (false, _) => PagerEnd::Whole(self.page),
            (true, true) => PagerEnd::LastPage(None),
            (true, false) => PagerEnd::LastPage(Some(self.page)),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn arb_node() -> impl Strategy<Value = Node> {
        (
            proptest::collection::vec(1u8..=255, 1..40)
                .prop_filter("no slash", |n| !n.contains(&b'/') && n != b"." && n != b".."),
            0u8..4,
            any::<u32>(),
            any::<i64>(),
            any::<u64>(),
            proptest::collection::vec(any::<[u8; 32]>(), 0..5),
        )
            .prop_map(|(name, kind, mode, t, size, ids)| Node {
                name,
                kind: match kind {
                    0 => NodeKind::File { content: FileContent::Inline(ids.into_iter().map(ContentId).collect()) },
                    1 => NodeKind::Dir { tree: ContentId([7; 32]) },
                    2 => NodeKind::Symlink { target: b"../x".to_vec() },
                    _ => NodeKind::Special { rdev: size },
                },
                mode,
                uid: mode / 3,
                gid: mode / 5,
                mtime_ns: t,
                ctime_ns: t / 2,
                inode: size / 3,
                size,
            })
    }

    proptest! {
        #[test]
        fn tree_round_trips(nodes in proptest::collection::vec(arb_node(), 0..20)) {
            let mut nodes = nodes;
            nodes.sort_by(|a, b| a.name.cmp(&b.name));
            nodes.dedup_by(|a, b| a.name == b.name);
            let record = TreeRecord::Entries(nodes);
            let bytes = record.encode();
            prop_assert_eq!(TreeRecord::decode(&bytes).unwrap(), record.clone());
            // Deterministic.
            prop_assert_eq!(bytes, record.encode());
        }

        #[test]
        fn list_round_trips(ids in proptest::collection::vec(any::<[u8; 32]>(), 0..100), level in 0u8..3) {
            let list = ChunkList { level, ids: ids.into_iter().map(ContentId).collect() };
            prop_assert_eq!(ChunkList::decode(&list.encode()).unwrap(), list);
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = TreeRecord::decode(&bytes);
            let _ = ChunkList::decode(&bytes);
        }
    }

    /// An entry with only a name, for tests of page boundaries.
    fn bare(name: String) -> Node {
        Node {
            name: name.into_bytes(),
            kind: NodeKind::Special { rdev: 0 },
            mode: 0,
            uid: 0,
            gid: 0,
            mtime_ns: 0,
            ctime_ns: 0,
            inode: 0,
            size: 0,
        }
    }

    #[test]
    fn pages_are_stable_under_insertion() {
        let node = |i: u32| bare(format!("file{i:07}"));
        let a: Vec<Node> = (0..30_000).map(node).collect();
        let mut b = a.clone();
        b.insert(15_000, Node { name: b"file0015000a".to_vec(), ..node(0) });
        let pa = paginate(a);
        let pb = paginate(b);
        assert!(pa.len() > 3 && pa.iter().all(|p| p.len() <= PAGE_MAX));
        let same = pa.iter().filter(|p| pb.contains(p)).count();
        assert!(same >= pa.len() - 1, "{same} of {}", pa.len());
    }

    /// The streaming pager cuts exactly where `paginate` of the whole list does, at every size around the
    /// one-page limit and well beyond it.
    #[test]
    fn pager_matches_paginate() {
        let node = |i: usize| bare(format!("n{i:08}"));
        for n in [0, 1, PAGE_MIN, PAGE_MAX - 1, PAGE_MAX, PAGE_MAX + 1, PAGE_MAX + PAGE_MIN, 3 * PAGE_MAX + 7, 50_000] {
            let nodes: Vec<Node> = (0..n).map(node).collect();
            let expected = paginate(nodes.clone());
            let mut pager = Pager::default();
            let mut pages = Vec::new();
            for node in nodes {
                pages.extend(pager.push(node));
                assert!(pager.held() <= PAGE_MAX, "{n} entries: pager holds {}", pager.held());
            }
            match pager.finish() {
                PagerEnd::Whole(all) => {
                    assert!(pages.is_empty());
                    assert_eq!(vec![all], expected, "{n} entries");
                }
                PagerEnd::LastPage(last) => {
                    pages.extend(last);
                    assert!(expected.len() > 1);
                    assert_eq!(pages, expected, "{n} entries");
                }
            }
        }
    }
}
