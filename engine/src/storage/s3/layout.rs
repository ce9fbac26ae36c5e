//! Where each blob lives in the bucket.
//!
//! Under the repository's prefix, names of the form `<letter><two hex digits>...` (packs, index blobs,
//! snapshots) live in a folder named by their letter, `<prefix>/p/p3fa2...`; any other name (the format
//! blob) sits at `<prefix>/<name>`. An S3 listing pages through every key under a folder, so this keeps a
//! listing of snapshots or index blobs from paging through every data pack.

use object_store::path::Path;

/// The key layout of one repository.
#[derive(Clone, Debug)]
pub(super) struct Layout {
    root: Vec<String>,
}

/// The folder a name lives in, if any: its letter when followed by two lower-case hex digits.
fn kind_of(name: &str) -> Option<&str> {
    let b = name.as_bytes();
    let foldered = b.len() >= 3
        && b[0].is_ascii_lowercase()
        && b[1..3].iter().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c));
    foldered.then(|| &name[..1])
}

impl Layout {
    /// A layout under `prefix`: slash-separated parts (empty ones are ignored) of S3's safe key characters,
    /// `[A-Za-z0-9!_.*'()-]`, none of them `.` or `..`.
    pub fn new(prefix: &str) -> Result<Self, String> {
        let safe = |c: char| c.is_ascii_alphanumeric() || "!_.*'()-".contains(c);
        let root: Vec<String> = prefix.split('/').filter(|part| !part.is_empty()).map(str::to_string).collect();
        match root.iter().find(|part| *part == "." || *part == ".." || !part.chars().all(safe)) {
            Some(bad) => Err(format!("invalid prefix part {bad:?}: use letters, digits and !_.*'()-")),
            None => Ok(Self { root }),
        }
    }

    fn join<'a>(&'a self, extra: impl IntoIterator<Item = &'a str>) -> Path {
        Path::from_iter(self.root.iter().map(String::as_str).chain(extra))
    }

    /// The key of a (valid) blob name.
    pub fn key(&self, name: &str) -> Path {
        match kind_of(name) {
            Some(kind) => self.join([kind, name]),
            None => self.join([name]),
        }
    }

    /// The repository's own folder.
    pub fn root(&self) -> Path {
        self.join([])
    }

    /// The folder holding the foldered names that may start with `prefix`, if any could.
    pub fn folder_for(&self, prefix: &str) -> Option<Path> {
        let kind = prefix.get(..1).filter(|k| k.as_bytes()[0].is_ascii_lowercase())?;
        Some(self.join([kind]))
    }

    /// The blob name stored at `key`, if `key` is where that name belongs (anything else in the bucket, such
    /// as another tool's files, is ignored).
    pub fn name_of(&self, key: &Path) -> Option<String> {
        let name = key.filename()?;
        (crate::storage::validate_name(name).is_ok() && self.key(name) == *key).then(|| name.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_back() {
        let layout = Layout::new("/backups//laptop/").unwrap();
        assert_eq!(layout.key("p3fa2").as_ref(), "backups/laptop/p/p3fa2");
        assert_eq!(layout.key("cairn.repository").as_ref(), "backups/laptop/cairn.repository");
        assert_eq!(layout.key("pzz").as_ref(), "backups/laptop/pzz", "not a pack name: no folder");
        assert_eq!(layout.name_of(&Path::from("backups/laptop/p/p3fa2")).as_deref(), Some("p3fa2"));
        assert_eq!(layout.name_of(&Path::from("backups/laptop/q/p3fa2")), None, "misplaced key");
        assert_eq!(layout.name_of(&Path::from("backups/laptop/cairn.repository")).as_deref(), Some("cairn.repository"));
        assert_eq!(layout.name_of(&Path::from("backups/laptop/README.TXT")), None);
        assert_eq!(layout.folder_for("pab").map(|p| p.to_string()).as_deref(), Some("backups/laptop/p"));
        assert_eq!(layout.folder_for(""), None);
        assert_eq!(Layout::new("").unwrap().key("s00ff").as_ref(), "s/s00ff");
        assert!(Layout::new("a/../b").is_err());
    }
}
