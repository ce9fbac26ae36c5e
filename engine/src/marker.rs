//! Writer sessions: how a running backup tells maintenance, without a lock, that it may still reference
//! blobs that no snapshot references yet. A backup stores a small sealed marker `w<32 hex>` before it loads
//! the index, rewrites it every [`HEARTBEAT`] while it runs, and deletes it once its snapshot is stored (or
//! it failed). Maintenance treats a marker whose storage time is older than its safety margin as dead: a
//! crashed backup holds nothing up for longer than that. See docs/FORMAT.md §13 for the argument.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::crypto::aead;
use crate::crypto::keys::KeySet;
use crate::error::{Error, Result};
use crate::ids::IndexId;
use crate::repository::Repository;
use crate::storage::{BlobMeta, Storage};
use std::sync::Arc;

/// How often a running backup rewrites its marker.
pub const HEARTBEAT: Duration = Duration::from_secs(5);
/// The shortest safety margin maintenance accepts (other than none): several heartbeats, so a live
/// backup's marker is never mistaken for a dead one.
pub const MIN_MARGIN: Duration = Duration::from_secs(20);
/// A backup whose marker went without a successful refresh for longer than this at any point (paused, or
/// storage unreachable or very slow) gives up instead of storing its snapshot: maintenance may have taken
/// it for dead. Below [`MIN_MARGIN`], so a marker never looks dead to maintenance while its backup commits.
pub const LAPSE: Duration = Duration::from_secs(15);
/// Largest marker read.
const MAX_MARKER: u64 = 64 << 10;

/// What a marker records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionRecord {
    /// Unix seconds (client clock) before the backup loaded the index.
    pub started: u64,
    pub host: String,
    pub pid: u32,
}

/// A marker as maintenance sees it.
#[derive(Clone, Debug)]
pub struct SessionInfo {
    pub name: String,
    pub record: SessionRecord,
    /// Storage time of the latest heartbeat.
    pub modified: SystemTime,
}

fn aad(name: &str) -> Vec<u8> {
    let mut aad = b"cairn-session-v1\0".to_vec();
    aad.extend_from_slice(name.as_bytes());
    aad
}

/// Unix seconds now.
pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Seconds since the Unix epoch of a storage time.
pub fn unix_of(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// A running backup's marker.
pub struct Session {
    storage: Arc<dyn Storage>,
    name: String,
    sealed: Vec<u8>,
    /// When the marker's first write began (its storage time is later): the heartbeat counts from here,
    /// so the time a backup spends loading the index before its first refresh is counted too.
    written: std::time::Instant,
}

impl Session {
    /// Stores a new marker.
    pub fn start(repo: &Repository) -> Result<Self> {
        Self::start_in(repo.storage().clone(), repo.keys())
    }

    /// Stores a new marker in `storage`.
    pub fn start_in(storage: Arc<dyn Storage>, keys: &KeySet) -> Result<Self> {
        let name = format!("w{}", IndexId::random());
        let record = SessionRecord {
            started: unix_now(),
            host: std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default().trim().to_string(),
            pid: std::process::id(),
        };
        let json = serde_json::to_vec(&record).expect("session record serialises");
        let sealed = aead::seal(keys.metadata_key(), &aad(&name), &json);
        let written = std::time::Instant::now();
        storage.put(&name, &sealed)?;
        Ok(Self { storage, name, sealed, written })
    }

    /// Rewrites the marker, so its storage time is fresh.
    pub fn refresh(&self) -> Result<()> {
        Ok(self.storage.put(&self.name, &self.sealed)?)
    }

    /// The marker's storage name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // A marker left behind (storage unreachable) dies on its own after the margin.
        if let Err(e) = self.storage.delete(&self.name) {
            tracing::warn!("could not delete session marker {}: {e}", self.name);
        }
    }
}

/// Opens a marker.
pub fn open_marker(keys: &KeySet, name: &str, sealed: &[u8]) -> Result<SessionRecord> {
    let what = format!("session marker {name}");
    let json = aead::open(keys.metadata_key(), &aad(name), sealed, &what)?;
    serde_json::from_slice(&json).map_err(|e| Error::corrupt(what, e.to_string()))
}

/// Every marker in the repository. A marker that vanishes while being read has ended and is skipped; one
/// that cannot be opened is an error (maintenance must not guess).
pub fn list_sessions(repo: &Repository) -> Result<Vec<SessionInfo>> {
    let mut out = Vec::new();
    for BlobMeta { name, size, modified } in repo.storage().list("w")? {
        if size > MAX_MARKER {
            return Err(Error::corrupt(format!("session marker {name}"), "too large"));
        }
        let sealed = match repo.storage().get(&name) {
            Ok(bytes) => bytes,
            Err(e) if e.is_not_found() => continue,
            Err(e) => return Err(e.into()),
        };
        let record = open_marker(repo.keys(), &name, &sealed)?;
        out.push(SessionInfo { name, record, modified: modified.unwrap_or_else(SystemTime::now) });
    }
    Ok(out)
}

/// A marker kept fresh by its heartbeat thread from the moment it is stored (before the index is loaded,
/// which can take a while) until [`Beating::stop`] or drop.
pub struct Beating {
    marker: Arc<Session>,
    heartbeat: Arc<Heartbeat>,
    stop: Option<crossbeam_channel::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Beating {
    /// Starts refreshing `marker`.
    pub fn start(marker: Session) -> Result<Self> {
        let heartbeat = Arc::new(Heartbeat::for_session(&marker));
        let marker = Arc::new(marker);
        let (stop, stopped) = crossbeam_channel::bounded::<()>(0);
        let thread = {
            let (marker, heartbeat) = (marker.clone(), heartbeat.clone());
            std::thread::Builder::new()
                .name("cairn-heartbeat".into())
                .spawn(move || heartbeat.run(&marker, stopped))
                .map_err(|e| Error::InvalidArgument(format!("cannot start the heartbeat thread: {e}")))?
        };
        Ok(Self { marker, heartbeat, stop: Some(stop), thread: Some(thread) })
    }

    /// Refreshes once more and fails if the marker ever went unrefreshed for longer than [`LAPSE`].
    pub fn confirm(&self) -> Result<()> {
        self.heartbeat.confirm(&self.marker)
    }

    /// Stops refreshing (the marker is deleted when the last holder drops it).
    pub fn stop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Beating {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Keeps a session's marker fresh from a thread of its own, and tells the backup whether it stayed fresh.
pub struct Heartbeat {
    /// The start of the last successful refresh, and the longest time between two starts so far.
    state: std::sync::Mutex<(std::time::Instant, Duration)>,
}

impl Heartbeat {
    /// A heartbeat for `session`, counting from its marker's first write.
    pub fn for_session(session: &Session) -> Self {
        Self { state: std::sync::Mutex::new((session.written, Duration::ZERO)) }
    }

    fn beat(&self, session: &Session) -> Result<()> {
        let start = std::time::Instant::now();
        session.refresh()?;
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        // The marker's storage time is set during the write, after `start`: measuring from the previous
        // start errs on the long side.
        state.1 = state.1.max(start.saturating_duration_since(state.0));
        state.0 = start;
        Ok(())
    }

    /// Refreshes the marker every [`HEARTBEAT`] until `stop` closes. A failed refresh is retried at the
    /// next beat ([`Heartbeat::confirm`] decides whether too long passed).
    pub fn run(&self, session: &Session, stop: crossbeam_channel::Receiver<()>) {
        while let Err(crossbeam_channel::RecvTimeoutError::Timeout) = stop.recv_timeout(HEARTBEAT) {
            if let Err(e) = self.beat(session) {
                tracing::warn!("session heartbeat failed: {e}");
            }
        }
    }

    /// Called just before the snapshot is stored: refreshes once more, then fails if the marker went
    /// without a refresh for longer than [`LAPSE`] at any point of the backup.
    pub fn confirm(&self, session: &Session) -> Result<()> {
        self.beat(session)?;
        let longest = self.state.lock().unwrap_or_else(|p| p.into_inner()).1;
        if longest > LAPSE {
            return Err(Error::SessionLapsed(longest.as_secs()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::storage::{MemoryStorage, Storage};

    #[test]
    fn a_stall_longer_than_the_lapse_refuses_to_commit_and_markers_round_trip() {
        let storage = Arc::new(MemoryStorage::new());
        let repo = Repository::create(storage.clone(), b"pw", &Default::default()).unwrap();
        let session = Session::start(&repo).unwrap();
        let listed = list_sessions(&repo).unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].record.pid, std::process::id());
        let heartbeat = Heartbeat::for_session(&session);
        heartbeat.confirm(&session).unwrap();
        // The heartbeat stalled for 20 s at some point (a paused process): no commit, even though the
        // marker is fresh again now.
        let stalled = std::time::Instant::now().checked_sub(Duration::from_secs(20)).unwrap();
        heartbeat.state.lock().unwrap().0 = stalled;
        heartbeat.beat(&session).unwrap();
        assert!(matches!(heartbeat.confirm(&session), Err(Error::SessionLapsed(_))));
        drop(session);
        assert!(storage.list("w").unwrap().is_empty(), "marker deleted when the backup ends");
    }

    /// Time between the marker's first write and the heartbeat's first beat counts: a backup that took
    /// longer than the lapse to load its index (its marker unrefreshed all the while) does not commit.
    #[test]
    fn the_time_before_the_first_beat_counts() {
        let repo = Repository::create(Arc::new(MemoryStorage::new()), b"pw", &Default::default()).unwrap();
        let mut session = Session::start(&repo).unwrap();
        session.written = std::time::Instant::now().checked_sub(Duration::from_secs(20)).unwrap();
        let heartbeat = Heartbeat::for_session(&session);
        assert!(matches!(heartbeat.confirm(&session), Err(Error::SessionLapsed(_))));
    }
}
