//! Checking content that may be named under an isolated user's hashing key (FORMAT.md §3): a reader that
//! may meet such content (the repository owner, a server admin) tries the shared key, then the isolated
//! users' keys, fetching those only when a blob matches none it holds.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::RwLock;

use crate::content;
use crate::crypto::keys::HashingKey;
use crate::error::Result;
use crate::ids::ContentId;

/// The isolated users' hashing keys a reader knows, and which key matched last.
#[derive(Default)]
pub struct TenantKeys {
    keys: RwLock<Vec<HashingKey>>,
    /// 1 + the index in `keys` of the key that matched last (0: the shared key). An isolated user's
    /// snapshot is read blob after blob, so trying that key first hashes its content once, not once under
    /// the shared key and again under its own.
    hint: AtomicUsize,
}

impl TenantKeys {
    /// Checks that `plaintext` is the content named `id` under `shared` or one of the isolated users' keys;
    /// `load` fetches the current keys when none known so far matches.
    pub fn verify(
        &self,
        shared: &HashingKey,
        id: &ContentId,
        plaintext: &[u8],
        load: impl FnOnce() -> Result<Vec<HashingKey>>,
    ) -> Result<()> {
        if self.matches_known(shared, id, plaintext) {
            return Ok(());
        }
        let keys = load()?;
        let found = keys.iter().position(|k| k.content_id(plaintext) == *id);
        *self.keys.write().unwrap_or_else(|p| p.into_inner()) = keys;
        match found {
            Some(at) => {
                self.hint.store(at + 1, Relaxed);
                Ok(())
            }
            None => content::verify_id(shared, id, plaintext),
        }
    }

    /// Whether `plaintext` is the content named `id` under `shared` or an isolated user's key already known;
    /// never fetches keys (for checks that are expected to fail at times, such as a restore reading back
    /// what it wrote, which the user may have changed since).
    pub fn matches_known(&self, shared: &HashingKey, id: &ContentId, plaintext: &[u8]) -> bool {
        let hint = self.hint.load(Relaxed);
        if hint > 0 && self.read().get(hint - 1).is_some_and(|k| k.content_id(plaintext) == *id) {
            return true;
        }
        if shared.content_id(plaintext) == *id {
            if hint > 0 {
                self.hint.store(0, Relaxed);
            }
            return true;
        }
        match self.read().iter().position(|k| k.content_id(plaintext) == *id) {
            Some(at) => {
                self.hint.store(at + 1, Relaxed);
                true
            }
            None => false,
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<HashingKey>> {
        self.keys.read().unwrap_or_else(|p| p.into_inner())
    }
}
