//! The local filesystem backend.
//!
//! Layout under the root: names of the form `<letter><hex...>` (packs, indexes, snapshots) live in
//! `<letter>/<first two hex digits>/<name>`, so one folder holds at most 1/256th of a kind of blob; any other
//! name (the format blob) lives in the root. A write goes to a hidden temporary file in the target folder,
//! is fsynced, renamed over the final name, and the folder is fsynced, so a crash leaves either the old state
//! or the whole new blob. Hidden files (leftover temporaries) are never listed.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::{check_range, validate_name, BlobMeta, BlobWriter, Storage, StorageError};

/// Blobs stored as files under a root folder.
#[derive(Clone, Debug)]
pub struct FsStorage {
    root: PathBuf,
}

fn io_err(op: &'static str, name: &str, source: std::io::Error) -> StorageError {
    if source.kind() == ErrorKind::NotFound {
        StorageError::NotFound(name.to_string())
    } else {
        StorageError::Io { op, name: name.to_string(), source }
    }
}

/// Whether a name is sharded: a lower-case letter followed by at least two hex digits.
fn shard_of(name: &str) -> Option<(&str, &str)> {
    let bytes = name.as_bytes();
    let sharded = bytes.len() >= 3
        && bytes[0].is_ascii_lowercase()
        && bytes[1..3].iter().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
    sharded.then(|| (&name[..1], &name[1..3]))
}

impl FsStorage {
    /// A backend rooted at `root`, which must exist.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, StorageError> {
        let root = root.into();
        let meta = fs::metadata(&root).map_err(|e| io_err("open", &root.display().to_string(), e))?;
        if !meta.is_dir() {
            return Err(StorageError::Io {
                op: "open",
                name: root.display().to_string(),
                source: std::io::Error::other("not a directory"),
            });
        }
        Ok(Self { root })
    }

    /// Creates `root` (and parents) if needed, then opens it.
    pub fn create(root: impl Into<PathBuf>) -> Result<Self, StorageError> {
        let root = root.into();
        fs::create_dir_all(&root).map_err(|e| io_err("create", &root.display().to_string(), e))?;
        Self::open(root)
    }

    /// The root folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path_of(&self, name: &str) -> Result<PathBuf, StorageError> {
        validate_name(name)?;
        Ok(match shard_of(name) {
            Some((kind, shard)) => self.root.join(kind).join(shard).join(name),
            None => self.root.join(name),
        })
    }

    fn write_atomically(&self, name: &str, data: &[u8]) -> Result<(), StorageError> {
        let mut writer = self.start(name)?;
        writer.write(data)?;
        Box::new(writer).finish(self)
    }

    /// Opens a hidden temporary file in the blob's final folder.
    fn start(&self, name: &str) -> Result<FsWriter, StorageError> {
        let path = self.path_of(name)?;
        let dir = path.parent().unwrap_or(&self.root).to_path_buf();
        fs::create_dir_all(&dir).map_err(|e| io_err("put", name, e))?;
        let tmp = dir.join(format!(".tmp-{}", hex::encode(crate::crypto::random_bytes::<8>())));
        let file = OpenOptions::new().write(true).create_new(true).open(&tmp).map_err(|e| StorageError::Io {
            op: "put",
            name: name.to_string(),
            source: e,
        })?;
        Ok(FsWriter { name: name.to_string(), file: Some(file), tmp, path, dir, written: 0 })
    }

    fn list_dir(&self, dir: &Path, prefix: &str, out: &mut Vec<BlobMeta>) -> Result<(), StorageError> {
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_err("list", &dir.display().to_string(), e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| io_err("list", &dir.display().to_string(), e))?;
            let Ok(name) = entry.file_name().into_string() else { continue };
            if name.starts_with('.') || !name.starts_with(prefix) || validate_name(&name).is_err() {
                continue;
            }
            let meta = match entry.metadata() {
                Ok(meta) if meta.is_file() => meta,
                Ok(_) => continue,
                // Deleted between listing and stat: not visible any more.
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err("list", &name, e)),
            };
            out.push(BlobMeta { name, size: meta.len(), modified: meta.modified().ok() });
        }
        Ok(())
    }

    fn subdirs(dir: &Path) -> Result<Vec<(String, PathBuf)>, StorageError> {
        let mut out = Vec::new();
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(io_err("list", &dir.display().to_string(), e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| io_err("list", &dir.display().to_string(), e))?;
            if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                if let Ok(name) = entry.file_name().into_string() {
                    out.push((name, entry.path()));
                }
            }
        }
        Ok(out)
    }
}

impl Storage for FsStorage {
    fn put(&self, name: &str, data: &[u8]) -> Result<(), StorageError> {
        self.write_atomically(name, data)
    }

    fn writer(&self, name: &str) -> Result<Box<dyn BlobWriter>, StorageError> {
        Ok(Box::new(self.start(name)?))
    }

    fn get(&self, name: &str) -> Result<Vec<u8>, StorageError> {
        fs::read(self.path_of(name)?).map_err(|e| io_err("get", name, e))
    }

    fn get_range(&self, name: &str, offset: u64, length: u64) -> Result<Vec<u8>, StorageError> {
        let mut file = File::open(self.path_of(name)?).map_err(|e| io_err("get", name, e))?;
        let size = file.metadata().map_err(|e| io_err("get", name, e))?.len();
        check_range(name, offset, length, size)?;
        // Read into spare capacity: no zero-filling of a buffer the read overwrites anyway.
        let mut buf = Vec::with_capacity(length as usize);
        file.seek(SeekFrom::Start(offset)).map_err(|e| io_err("get", name, e))?;
        file.take(length).read_to_end(&mut buf).map_err(|e| io_err("get", name, e))?;
        if buf.len() as u64 != length {
            let short =
                std::io::Error::new(std::io::ErrorKind::UnexpectedEof, format!("{} of {length} bytes", buf.len()));
            return Err(io_err("get", name, short));
        }
        Ok(buf)
    }

    fn list(&self, prefix: &str) -> Result<Vec<BlobMeta>, StorageError> {
        let mut out = Vec::new();
        self.list_dir(&self.root, prefix, &mut out)?;
        for (kind, kind_dir) in Self::subdirs(&self.root)? {
            if !(prefix.starts_with(&kind) || kind.starts_with(prefix)) || kind.len() != 1 {
                continue;
            }
            for (shard, shard_dir) in Self::subdirs(&kind_dir)? {
                let shard_prefix = format!("{kind}{shard}");
                if prefix.starts_with(&shard_prefix) || shard_prefix.starts_with(prefix) {
                    self.list_dir(&shard_dir, prefix, &mut out)?;
                }
            }
        }
        Ok(out)
    }

    fn delete(&self, name: &str) -> Result<(), StorageError> {
        match fs::remove_file(self.path_of(name)?) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err("delete", name, e)),
        }
    }

    fn stat(&self, name: &str) -> Result<BlobMeta, StorageError> {
        let meta = fs::metadata(self.path_of(name)?).map_err(|e| io_err("stat", name, e))?;
        Ok(BlobMeta { name: name.to_string(), size: meta.len(), modified: meta.modified().ok() })
    }

    fn describe(&self) -> String {
        format!("filesystem {}", self.root.display())
    }
}

/// A blob being written to a hidden temporary file; `finish` fsyncs it, renames it to its name and fsyncs
/// the folder. Dropped unfinished, the temporary file is removed.
struct FsWriter {
    name: String,
    file: Option<File>,
    tmp: PathBuf,
    path: PathBuf,
    dir: PathBuf,
    written: u64,
}

impl FsWriter {
    fn fail(&self, e: std::io::Error) -> StorageError {
        StorageError::Io { op: "put", name: self.name.clone(), source: e }
    }
}

impl BlobWriter for FsWriter {
    fn write(&mut self, data: &[u8]) -> Result<(), StorageError> {
        let file = self.file.as_mut().ok_or_else(|| StorageError::Io {
            op: "put",
            name: self.name.clone(),
            source: std::io::Error::other("write after finish"),
        })?;
        file.write_all(data).map_err(|e| StorageError::Io { op: "put", name: self.name.clone(), source: e })?;
        self.written += data.len() as u64;
        Ok(())
    }

    fn written(&self) -> u64 {
        self.written
    }

    fn finish(mut self: Box<Self>, _storage: &dyn Storage) -> Result<(), StorageError> {
        let file = self.file.take().expect("finish is called once");
        file.sync_all().map_err(|e| self.fail(e))?;
        drop(file);
        fs::rename(&self.tmp, &self.path).map_err(|e| self.fail(e))?;
        File::open(&self.dir).and_then(|d| d.sync_all()).map_err(|e| self.fail(e))
    }
}

impl Drop for FsWriter {
    fn drop(&mut self) {
        if self.file.is_some() {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::conformance::{conformance_tests, Harness};

    #[test]
    fn shards_and_lists() {
        let dir = tempfile::tempdir().unwrap();
        let s = FsStorage::open(dir.path()).unwrap();
        s.put("cairn.repository", b"f").unwrap();
        s.put("pab12", b"hello").unwrap();
        s.put("pcd34", b"x").unwrap();
        s.put("s0011", b"y").unwrap();
        assert!(dir.path().join("p/ab/pab12").is_file());
        let mut names: Vec<_> = s.list("p").unwrap().into_iter().map(|b| b.name).collect();
        names.sort();
        assert_eq!(names, ["pab12", "pcd34"]);
        assert_eq!(s.list("pab").unwrap().len(), 1);
        assert_eq!(s.list("").unwrap().len(), 4);
        assert_eq!(s.get_range("pab12", 1, 3).unwrap(), b"ell");
        assert!(s.get_range("pab12", 3, 3).is_err());
        assert!(s.get("pzz99").unwrap_err().is_not_found());
        s.delete("pab12").unwrap();
        s.delete("pab12").unwrap();
        // Streamed: invisible until finished, gone if dropped.
        let mut w = s.writer("pee55").unwrap();
        w.write(b"part one, ").unwrap();
        w.write(b"part two").unwrap();
        assert!(s.list("pee").unwrap().is_empty());
        w.finish(&s).unwrap();
        assert_eq!(s.get("pee55").unwrap(), b"part one, part two");
        let mut w = s.writer("pff66").unwrap();
        w.write(b"abandoned").unwrap();
        drop(w);
        assert!(s.list("pff").unwrap().is_empty());
        assert_eq!(std::fs::read_dir(dir.path().join("p/ff")).unwrap().count(), 0, "temporary file removed");
        assert!(s.put("../evil", b"x").is_err());
        assert!(s.put("P00", b"x").is_err());
    }

    struct OnDisk(tempfile::TempDir);

    impl Harness for OnDisk {
        type S = FsStorage;
        fn fresh(&self) -> Option<FsStorage> {
            Some(FsStorage::open(self.0.path()).unwrap())
        }
        fn leave_half_written(&self, store: &FsStorage, name: &str, data: &[u8]) {
            // A crash between writing the temporary file and renaming it.
            let path = store.path_of(name).unwrap();
            let dir = path.parent().unwrap();
            fs::create_dir_all(dir).unwrap();
            fs::write(dir.join(".tmp-0123456789abcdef"), data).unwrap();
        }
    }

    mod contract {
        use super::*;
        conformance_tests!(OnDisk(tempfile::tempdir().unwrap()));
    }
}
