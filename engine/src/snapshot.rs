//! Snapshot records: small JSON documents sealed with the metadata key under the name `s<id>`. JSON keeps
//! them readable by future versions (unknown fields are ignored) and maps straight onto `--json` output.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::crypto::aead;
use crate::crypto::keys::KeySet;
use crate::error::{Error, Result};
use crate::ids::{SnapshotId, TreeId};
use crate::storage::Storage;

/// Largest snapshot record accepted (its error list is capped well below).
pub const MAX_SNAPSHOT_BYTES: u64 = 4 << 20;
/// Most bytes of description and tags (keys and values) a snapshot takes, so that its record stays well
/// within [`MAX_SNAPSHOT_BYTES`] with its recorded errors; checked before a backup starts.
pub const MAX_LABEL_BYTES: usize = 1 << 20;
/// Most errors recorded in a snapshot; the count is kept in full.
pub const MAX_RECORDED_ERRORS: usize = 100;

/// Whose data and from where: `user@host:path`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Source {
    pub host: String,
    pub user_name: String,
    pub path: String,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}:{}", self.user_name, self.host, self.path)
    }
}

/// Figures of one backup.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotStats {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    /// Bytes of file content in the snapshot.
    pub bytes: u64,
    /// Bytes actually read from files (unchanged files are not read).
    pub bytes_read: u64,
    /// Files whose content was reused from the parent snapshot without reading.
    pub files_unchanged: u64,
    /// Plaintext bytes of chunks that were new to the repository.
    pub bytes_new: u64,
    /// Bytes of new chunks after compression and encryption.
    pub bytes_stored: u64,
    pub chunks_new: u64,
    pub chunks_total: u64,
    /// Files or folders that could not be read and are missing from the snapshot.
    pub errors: u64,
}

/// One snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    pub id: SnapshotId,
    pub source: Source,
    pub start_time: DateTime<Utc>,
    pub end_time: DateTime<Utc>,
    pub root: TreeId,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub parent: Option<SnapshotId>,
    pub stats: SnapshotStats,
    /// Set when some files could not be read: the snapshot holds everything else.
    #[serde(default)]
    pub incomplete: bool,
    /// The first [`MAX_RECORDED_ERRORS`] errors, as `path: message`.
    #[serde(default)]
    pub error_messages: Vec<String>,
    /// Set for a snapshot made by an isolated server user (`USER@HOST`): its content ids are keyed with that
    /// user's own hashing key, not the repository's shared one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
}

/// The storage name of a snapshot.
pub fn snapshot_name(id: &SnapshotId) -> String {
    format!("s{id}")
}

fn aad(name: &str) -> Vec<u8> {
    let mut aad = b"cairn-snapshot-v1\0".to_vec();
    aad.extend_from_slice(name.as_bytes());
    aad
}

impl Snapshot {
    /// Whether the source was a single file rather than a folder: its root tree then holds just that file,
    /// and no folder is counted (a folder snapshot counts its root). See FORMAT.md §9.
    pub fn is_single_file(&self) -> bool {
        self.stats.dirs == 0
    }

    /// The sealed record.
    pub fn seal(&self, keys: &KeySet) -> Vec<u8> {
        let json = serde_json::to_vec(self).expect("snapshot serialises");
        aead::seal(keys.metadata_key(), &aad(&snapshot_name(&self.id)), &json)
    }

    /// Seals this record and stores it as a new snapshot, after [`Snapshot::seal_new`]'s checks.
    pub fn store_new(&self, storage: &dyn Storage, keys: &KeySet) -> Result<()> {
        let sealed = self.seal_new(storage, keys)?;
        Ok(storage.put(&snapshot_name(&self.id), &sealed)?)
    }

    /// The sealed record, checked to be storable as a new snapshot: refused when it is larger than readers
    /// accept ([`MAX_SNAPSHOT_BYTES`]: a stored one would make every listing fail) or when a snapshot with
    /// this id exists. Records are not overwritten: ids are random, so only a forged one collides (such as
    /// a server client's naming another user's snapshot). The check and the later write are not one atomic
    /// step; a forger would have to win a race against a random id it cannot know in advance.
    pub fn seal_new(&self, storage: &dyn Storage, keys: &KeySet) -> Result<Vec<u8>> {
        let sealed = self.seal(keys);
        if sealed.len() as u64 > MAX_SNAPSHOT_BYTES {
            return Err(Error::InvalidArgument(format!(
                "snapshot {} is {} bytes, more than the {MAX_SNAPSHOT_BYTES} a snapshot record may hold (a long \
                 description or many tags?)",
                self.id,
                sealed.len()
            )));
        }
        match storage.stat(&snapshot_name(&self.id)) {
            Ok(_) => Err(Error::InvalidArgument(format!("snapshot {} exists already", self.id))),
            Err(e) if e.is_not_found() => Ok(sealed),
            Err(e) => Err(e.into()),
        }
    }

    /// Opens the record stored as `name`.
    pub fn open(keys: &KeySet, name: &str, sealed: &[u8]) -> Result<Self> {
        let what = format!("snapshot {name}");
        let json = aead::open(keys.metadata_key(), &aad(name), sealed, &what)?;
        Self::from_json(name, &json)
    }

    /// Parses an opened record stored as `name`.
    pub fn from_json(name: &str, json: &[u8]) -> Result<Self> {
        let what = format!("snapshot {name}");
        let snap: Snapshot = serde_json::from_slice(json).map_err(|e| Error::corrupt(what.clone(), e.to_string()))?;
        if snapshot_name(&snap.id) != name {
            return Err(Error::corrupt(what, "record id does not match its name"));
        }
        Ok(snap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::MasterKey;

    /// A snapshot record with this description and nothing else of note.
    fn sample(description: &str) -> Snapshot {
        Snapshot {
            id: SnapshotId::random(),
            source: Source { host: "h".into(), user_name: "u".into(), path: "/p".into() },
            start_time: Utc::now(),
            end_time: Utc::now(),
            root: crate::ids::ContentId([1; 32]),
            tags: BTreeMap::new(),
            description: description.into(),
            parent: None,
            stats: SnapshotStats::default(),
            incomplete: false,
            error_messages: vec![],
            tenant: None,
        }
    }

    #[test]
    fn round_trip_and_rename_detected() {
        let keys = MasterKey::generate().derive();
        let snap = Snapshot {
            tags: [("k".to_string(), "v".to_string())].into(),
            stats: SnapshotStats { files: 3, ..Default::default() },
            tenant: Some("frank@two".into()),
            ..sample("d")
        };
        let name = snapshot_name(&snap.id);
        let sealed = snap.seal(&keys);
        assert_eq!(Snapshot::open(&keys, &name, &sealed).unwrap(), snap);
        let other = snapshot_name(&SnapshotId::random());
        assert!(Snapshot::open(&keys, &other, &sealed).is_err());
    }

    #[test]
    fn a_stored_record_is_never_overwritten_nor_larger_than_readers_take() {
        let keys = MasterKey::generate().derive();
        let storage = crate::storage::MemoryStorage::new();
        let mut snap = sample("first");
        snap.store_new(&storage, &keys).unwrap();
        let name = snapshot_name(&snap.id);
        let stored = storage.get(&name).unwrap();
        // Same id, other content: refused, the first record stays.
        snap.description = "forged".into();
        let e = snap.store_new(&storage, &keys).unwrap_err();
        assert!(e.to_string().contains("exists already"), "{e}");
        assert_eq!(storage.get(&name).unwrap(), stored);
        // A record readers would refuse is not written.
        snap.id = SnapshotId::random();
        snap.description = "x".repeat(MAX_SNAPSHOT_BYTES as usize);
        let e = snap.store_new(&storage, &keys).unwrap_err();
        assert!(e.to_string().contains("more than the"), "{e}");
        assert!(storage.get(&snapshot_name(&snap.id)).is_err());
    }
}
