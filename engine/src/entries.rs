//! Reading a folder's entries one stored page at a time (see `tree.rs` for pages), so that restoring,
//! listing or comparing against a folder of millions of entries holds one page of it, not all of it.

use crate::access::Access;
use crate::error::{Error, Result};
use crate::ids::TreeId;
use crate::tree::{Node, TreeRecord};

/// A folder's entries page by page, in name order. A folder stored as one record is one page.
pub struct TreePages<'a, A: Access + ?Sized = dyn Access> {
    repo: &'a A,
    tree: TreeId,
    whole: Option<Vec<Node>>,
    pages: std::vec::IntoIter<TreeId>,
}

impl<'a, A: Access + ?Sized> TreePages<'a, A> {
    /// Reads the folder's record (its entries, or the list of its page ids).
    pub fn open(repo: &'a A, tree: &TreeId) -> Result<Self> {
        Self::from_record(repo, tree, &repo.read_blob(tree)?)
    }

    /// The same, from the folder's record already read (`record` is the plaintext of `tree`).
    pub fn from_record(repo: &'a A, tree: &TreeId, record: &[u8]) -> Result<Self> {
        let (whole, pages) = match TreeRecord::decode(record)? {
            TreeRecord::Entries(nodes) => (Some(nodes), Vec::new()),
            TreeRecord::Pages(pages) => (None, pages),
        };
        Ok(Self { repo, tree: *tree, whole, pages: pages.into_iter() })
    }
}

impl<A: Access + ?Sized> Iterator for TreePages<'_, A> {
    type Item = Result<Vec<Node>>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(nodes) = self.whole.take() {
            return Some(Ok(nodes));
        }
        let page = self.pages.next()?;
        Some(self.repo.read_blob(&page).and_then(|bytes| match TreeRecord::decode(&bytes)? {
            TreeRecord::Entries(nodes) => Ok(nodes),
            TreeRecord::Pages(_) => Err(Error::corrupt(format!("tree {}", self.tree), "nested pages")),
        }))
    }
}

/// A folder's entries one by one, in name order, reading a page when the previous one is used up.
pub struct TreeEntries<'a, A: Access + ?Sized = dyn Access> {
    pages: TreePages<'a, A>,
    current: std::vec::IntoIter<Node>,
}

impl<'a, A: Access + ?Sized> TreeEntries<'a, A> {
    pub fn open(repo: &'a A, tree: &TreeId) -> Result<Self> {
        Ok(Self { pages: TreePages::open(repo, tree)?, current: Vec::new().into_iter() })
    }
}

impl<A: Access + ?Sized> Iterator for TreeEntries<'_, A> {
    type Item = Result<Node>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(node) = self.current.next() {
                return Some(Ok(node));
            }
            match self.pages.next()? {
                Ok(page) => self.current = page.into_iter(),
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

/// Looks up entries of a folder by name, for names asked in increasing order: a merge of two sorted lists,
/// one page in memory at a time. The backup walker uses it to find each entry's counterpart in the parent
/// snapshot.
pub struct SortedLookup<'a> {
    entries: Option<TreeEntries<'a, dyn Access + 'a>>,
    next: Option<Node>,
}

impl<'a> SortedLookup<'a> {
    /// A lookup over `tree`'s entries; over nothing when `tree` is `None`.
    pub fn open(repo: &'a (dyn Access + 'a), tree: Option<&TreeId>) -> Result<Self> {
        let entries = tree.map(|t| TreeEntries::open(repo, t)).transpose()?;
        Ok(Self { entries, next: None })
    }

    /// An empty lookup.
    pub fn empty() -> Self {
        Self { entries: None, next: None }
    }

    /// The entry named `name`, if any. Names must be asked in increasing byte order; entries before `name`
    /// are dropped. A page that cannot be read ends the lookup (later names are not found) and is returned
    /// as the error, once.
    pub fn find(&mut self, name: &[u8]) -> Result<Option<&Node>> {
        loop {
            if self.next.as_ref().is_some_and(|n| n.name.as_slice() >= name) {
                break;
            }
            let Some(entries) = self.entries.as_mut() else { return Ok(None) };
            match entries.next() {
                Some(Ok(node)) => self.next = Some(node),
                Some(Err(e)) => {
                    self.entries = None;
                    self.next = None;
                    return Err(e);
                }
                None => {
                    self.entries = None;
                    self.next = None;
                    return Ok(None);
                }
            }
        }
        Ok(self.next.as_ref().filter(|n| n.name == name))
    }
}
