//! Small named records kept in the repository and sealed like everything else: server users, snapshot
//! policies and other settings. A record of kind `k` with key `key` is stored as the blob
//! `k` + first 32 hex digits of BLAKE3(`kind-name` NUL `key`), holding JSON
//! `{"kind": ..., "key": ..., "value": ...}` sealed under the metadata key with associated data
//! `"cairn-record-v1\0"` + blob name. Writing a record replaces it; deleting removes it.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::crypto::aead;
use crate::error::{Error, Result};
use crate::repository::Repository;

/// Largest record accepted.
pub const MAX_RECORD_BYTES: u64 = 1 << 20;

/// The kinds of records, each with its own blob-name letter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordKind {
    /// Repository-server users (`u…`).
    User,
    /// Snapshot policies per source (`o…`).
    Policy,
}

impl RecordKind {
    fn letter(self) -> char {
        match self {
            RecordKind::User => 'u',
            RecordKind::Policy => 'o',
        }
    }

    fn label(self) -> &'static str {
        match self {
            RecordKind::User => "user",
            RecordKind::Policy => "policy",
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Envelope<T> {
    kind: String,
    key: String,
    value: T,
}

/// The blob name of a record.
pub fn record_name(kind: RecordKind, key: &str) -> String {
    let mut hasher = blake3::Hasher::new();
    hasher.update(kind.label().as_bytes()).update(&[0]).update(key.as_bytes());
    format!("{}{}", kind.letter(), &hasher.finalize().to_hex()[..32])
}

fn aad(name: &str) -> Vec<u8> {
    let mut aad = b"cairn-record-v1\0".to_vec();
    aad.extend_from_slice(name.as_bytes());
    aad
}

impl Repository {
    /// Stores (or replaces) a record.
    pub fn put_record<T: Serialize>(&self, kind: RecordKind, key: &str, value: &T) -> Result<()> {
        let name = record_name(kind, key);
        let json = serde_json::to_vec(&Envelope { kind: kind.label().to_string(), key: key.to_string(), value })
            .map_err(|e| Error::InvalidArgument(format!("record {key}: {e}")))?;
        self.storage().put(&name, &aead::seal(self.keys().metadata_key(), &aad(&name), &json))?;
        Ok(())
    }

    /// Reads a record, `None` when absent.
    pub fn get_record<T: DeserializeOwned>(&self, kind: RecordKind, key: &str) -> Result<Option<T>> {
        let name = record_name(kind, key);
        // Its size first: an oversized blob is refused before it is read into memory.
        match self.storage().stat(&name) {
            Ok(meta) if meta.size > MAX_RECORD_BYTES => {
                return Err(Error::corrupt(format!("record {name}"), "too large"));
            }
            Ok(_) => {}
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e.into()),
        }
        match self.storage().get(&name) {
            Ok(bytes) => Ok(Some(self.open_record::<T>(kind, &name, &bytes)?.1)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Every record of a kind, as (key, value).
    pub fn list_records<T: DeserializeOwned>(&self, kind: RecordKind) -> Result<Vec<(String, T)>> {
        let mut out = Vec::new();
        for blob in self.storage().list(&kind.letter().to_string())? {
            if blob.size > MAX_RECORD_BYTES {
                return Err(Error::corrupt(format!("record {}", blob.name), "too large"));
            }
            let bytes = self.storage().get(&blob.name)?;
            out.push(self.open_record(kind, &blob.name, &bytes)?);
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// Deletes a record; false when it did not exist.
    pub fn delete_record(&self, kind: RecordKind, key: &str) -> Result<bool> {
        let name = record_name(kind, key);
        match self.storage().stat(&name) {
            Ok(_) => {
                self.storage().delete(&name)?;
                Ok(true)
            }
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    fn open_record<T: DeserializeOwned>(&self, kind: RecordKind, name: &str, bytes: &[u8]) -> Result<(String, T)> {
        let what = format!("record {name}");
        let json = aead::open(self.keys().metadata_key(), &aad(name), bytes, &what)?;
        let env: Envelope<T> =
            serde_json::from_slice(&json).map_err(|e| Error::corrupt(what.clone(), e.to_string()))?;
        if env.kind != kind.label() || record_name(kind, &env.key) != name {
            return Err(Error::corrupt(what, "record does not match its name"));
        }
        Ok((env.key, env.value))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::format::CreateOptions;
    use crate::storage::{MemoryStorage, Storage};

    #[test]
    fn put_get_list_delete() {
        let storage = MemoryStorage::new();
        let repo = Repository::create(Arc::new(storage.clone()), b"pw", &CreateOptions::default()).unwrap();
        repo.put_record(RecordKind::User, "alice@laptop", &serde_json::json!({"admin": false})).unwrap();
        repo.put_record(RecordKind::User, "bob@desk", &3u32).unwrap();
        let alice: Option<serde_json::Value> = repo.get_record(RecordKind::User, "alice@laptop").unwrap();
        assert_eq!(alice.unwrap()["admin"], false);
        assert_eq!(repo.list_records::<serde_json::Value>(RecordKind::User).unwrap().len(), 2);
        assert!(repo.get_record::<u32>(RecordKind::Policy, "alice@laptop").unwrap().is_none());
        assert!(repo.delete_record(RecordKind::User, "alice@laptop").unwrap());
        assert!(!repo.delete_record(RecordKind::User, "alice@laptop").unwrap());
        // A record copied under another name is refused.
        let bob = record_name(RecordKind::User, "bob@desk");
        let carol = record_name(RecordKind::User, "carol@x");
        storage.put(&carol, &storage.get(&bob).unwrap()).unwrap();
        assert!(repo.list_records::<u32>(RecordKind::User).is_err());
        // An oversized record is refused by name too, not only when listed.
        storage.put(&carol, &vec![0u8; MAX_RECORD_BYTES as usize + 1]).unwrap();
        let e = repo.get_record::<u32>(RecordKind::User, "carol@x").unwrap_err();
        assert!(e.to_string().contains("too large"), "{e}");
    }
}
