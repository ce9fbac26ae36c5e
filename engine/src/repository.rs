//! An open repository: storage, the unlocked keys, the format and the loaded index, with the reads every
//! command needs (blobs, trees, chunk lists, snapshots) and the writes that are not part of a backup
//! (format blob, snapshot records, index blobs).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use rayon::prelude::*;

use crate::access::{Access, BlobSession};
use crate::chunker::ChunkerParams;
use crate::compress::Compression;
use crate::content;
use crate::crypto::keys::{BlobClass, HashingKey, KeySet};
use crate::error::{Error, Result};
use crate::format::{CreateOptions, Format, FORMAT_BLOB_NAME, MAX_FORMAT_BLOB};
use crate::ids::{ContentId, PackId, SnapshotId};
use crate::index::{self, Index, Location};
use crate::pack::PackEntry;
use crate::session::LocalSession;
use crate::snapshot::{snapshot_name, Snapshot, MAX_SNAPSHOT_BYTES};
use crate::storage::Storage;
use crate::tenants::TenantKeys;

/// Largest index blob read (a backup writes one every few thousand entries).
const MAX_INDEX_BLOB: u64 = 256 << 20;

/// The repository's current in-memory index, shared with running sessions so that what they index lands in
/// whichever index is current even after a reload replaced it.
pub type IndexHandle = Arc<RwLock<Arc<Index>>>;

/// An unlocked repository.
pub struct Repository {
    storage: Arc<dyn Storage>,
    format: Format,
    keys: KeySet,
    index: IndexHandle,
    /// Hashing keys of the isolated users whose snapshots are in the repository, loaded when a blob does not
    /// match the shared key.
    tenants: TenantKeys,
}

impl Repository {
    /// Creates a new repository in empty storage.
    pub fn create(storage: Arc<dyn Storage>, password: &[u8], options: &CreateOptions) -> Result<Self> {
        match storage.stat(FORMAT_BLOB_NAME) {
            Ok(_) => {
                return Err(Error::InvalidArgument(format!("a repository already exists in {}", storage.describe())))
            }
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
        let (format, master) = Format::create(password, options)?;
        storage.put(FORMAT_BLOB_NAME, &format.to_bytes())?;
        Ok(Self::with(storage, format, master.derive()))
    }

    /// A repository handle with an empty index.
    fn with(storage: Arc<dyn Storage>, format: Format, keys: KeySet) -> Self {
        let index = Arc::new(RwLock::new(Arc::new(Index::default())));
        Self { storage, format, keys, index, tenants: TenantKeys::default() }
    }

    /// Reads and checks the format blob without a password.
    pub fn read_format(storage: &dyn Storage) -> Result<Format> {
        let bytes = match storage.get(FORMAT_BLOB_NAME) {
            Ok(bytes) => bytes,
            Err(e) if e.is_not_found() => return Err(Error::NoRepository(storage.describe())),
            Err(e) => return Err(e.into()),
        };
        if bytes.len() > MAX_FORMAT_BLOB {
            return Err(Error::corrupt("format blob", "too large"));
        }
        Format::from_bytes(&bytes)
    }

    /// Opens a repository: checks the format blob, unlocks the master key and loads the index.
    pub fn open(storage: Arc<dyn Storage>, password: &[u8]) -> Result<Self> {
        let format = Self::read_format(storage.as_ref())?;
        let keys = format.unlock(password)?.derive();
        let repo = Self::with(storage, format, keys);
        repo.reload_index()?;
        Ok(repo)
    }

    /// Changes the repository's password: reads the format blob again, unseals the master key with
    /// `current` (a wrong one is [`Error::WrongPassword`] and changes nothing), seals it under `new` with a
    /// fresh salt, checks the result opens with `new`, and replaces the format blob in one atomic write.
    /// Content, keys and snapshots are untouched; clients that stored the old password must be given the new.
    pub fn change_password(&self, current: &[u8], new: &[u8]) -> Result<()> {
        let format = Self::read_format(self.storage.as_ref())?;
        if format.repository_id != self.format.repository_id {
            return Err(Error::corrupt("format blob", "the repository id changed while it was open"));
        }
        let master = format.unlock(current)?;
        let changed = format.resealed(&master, new)?;
        let bytes = changed.to_bytes();
        let check = Format::from_bytes(&bytes)?.unlock(new)?;
        if check.0 != master.0 {
            return Err(Error::corrupt("format blob", "the resealed master key does not open"));
        }
        self.storage.put(FORMAT_BLOB_NAME, &bytes)?;
        Ok(())
    }

    /// Loads every index blob (in parallel) into a fresh in-memory index. Maintenance replaces index blobs
    /// (writes the merged blob, then deletes the old ones), so a blob listed but gone when read means the
    /// listing is stale: it is taken again, a few times.
    pub fn reload_index(&self) -> Result<()> {
        let mut attempt = 0;
        let contents = loop {
            match self.load_index_contents() {
                Err(Error::Storage(e)) if e.is_not_found() && attempt < 4 => attempt += 1,
                other => break other?,
            }
        };
        let index = Index::from_contents(contents.into_iter().map(|(_, c)| c));
        let mut current = self.index.write().unwrap_or_else(|p| p.into_inner());
        index.adopt_recent(&current);
        *current = Arc::new(index);
        Ok(())
    }

    /// Reads and opens every index blob, with its name.
    pub fn load_index_contents(&self) -> Result<Vec<(String, index::IndexContents)>> {
        let blobs = self.storage.list("i")?;
        blobs
            .par_iter()
            .map(|blob| {
                if blob.size > MAX_INDEX_BLOB {
                    return Err(Error::corrupt(format!("index blob {}", blob.name), "too large"));
                }
                let bytes = self.storage.get(&blob.name)?;
                Ok((blob.name.clone(), index::decode_index_contents(&self.keys, &blob.name, &bytes)?))
            })
            .collect()
    }

    /// A snapshot of the current in-memory index.
    pub fn index(&self) -> Arc<Index> {
        self.index.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Writes an index blob for packs already stored, and adds them to the in-memory index.
    pub fn write_index(&self, packs: &[(BlobClass, PackId, Vec<PackEntry>)]) -> Result<()> {
        index::store_index_blob(self.storage.as_ref(), &self.keys, &self.index(), packs)
    }

    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    pub fn format(&self) -> &Format {
        &self.format
    }

    pub fn keys(&self) -> &KeySet {
        &self.keys
    }

    /// Sizes of blobs by pack prefix, for `repository status`.
    pub fn storage_summary(&self) -> Result<HashMap<char, (u64, u64)>> {
        let mut out: HashMap<char, (u64, u64)> = HashMap::new();
        for prefix in ["p", "q", "i", "s"] {
            for blob in self.storage.list(prefix)? {
                let e = out.entry(prefix.chars().next().expect("non-empty")).or_default();
                e.0 += 1;
                e.1 += blob.size;
            }
        }
        Ok(out)
    }
}

impl Access for Repository {
    fn hashing_key(&self) -> &HashingKey {
        &self.keys.hashing
    }

    fn chunker_params(&self) -> ChunkerParams {
        self.format.chunker
    }

    fn compression_level(&self) -> i32 {
        self.format.compression_level
    }

    fn list_snapshots(&self) -> Result<Vec<Snapshot>> {
        let blobs = self.storage.list("s")?;
        let mut snaps: Vec<Snapshot> = blobs
            .par_iter()
            .map(|blob| {
                if blob.size > MAX_SNAPSHOT_BYTES {
                    return Err(Error::corrupt(format!("snapshot {}", blob.name), "too large"));
                }
                match self.storage.get(&blob.name) {
                    Ok(bytes) => Snapshot::open(&self.keys, &blob.name, &bytes).map(Some),
                    // Deleted (expired) between listing and reading: no longer a snapshot.
                    Err(e) if e.is_not_found() => Ok(None),
                    Err(e) => Err(e.into()),
                }
            })
            .collect::<Result<Vec<_>>>()?
            .into_iter()
            .flatten()
            .collect();
        snaps.sort_by_key(|s| (s.start_time, s.id));
        Ok(snaps)
    }

    fn write_snapshot(&self, snap: &Snapshot) -> Result<()> {
        snap.store_new(self.storage.as_ref(), &self.keys)
    }

    fn delete_snapshot(&self, id: &SnapshotId) -> Result<()> {
        let name = snapshot_name(id);
        self.storage.stat(&name)?;
        Ok(self.storage.delete(&name)?)
    }

    fn read_blob(&self, id: &ContentId) -> Result<Vec<u8>> {
        let mut one = self.read_blobs(std::slice::from_ref(id))?;
        one.pop().map(Vec::from).ok_or_else(|| Error::NotFound(format!("blob {id}")))
    }

    fn read_blobs(&self, ids: &[ContentId]) -> Result<Vec<bytes::Bytes>> {
        ids.iter().zip(self.read_blob_payloads(ids)?).map(|(id, payload)| self.plaintext(id, payload)).collect()
    }

    fn matches_known_key(&self, id: &ContentId, plaintext: &[u8]) -> bool {
        self.tenants.matches_known(&self.keys.hashing, id, plaintext)
    }

    fn blob_sizes(&self, ids: &[ContentId]) -> Result<Vec<Option<u32>>> {
        let index = self.index();
        Ok(ids.iter().map(|id| index.get(id).map(|l| l.raw_len)).collect())
    }

    fn open_session(&self, progress: Arc<crate::backup::Progress>) -> Result<Box<dyn BlobSession>> {
        self.start_session(progress, crate::session::direct_queue(self.format.chunker.max as usize))
    }
}

impl Repository {
    /// Opens a backup session for a client of the repository server: like [`Access::open_session`], with
    /// the shorter queue of sealed blobs that keeps each connection within its memory budget.
    pub fn open_served_session(&self, progress: Arc<crate::backup::Progress>) -> Result<Box<dyn BlobSession>> {
        self.start_session(progress, crate::session::SEALED_QUEUE_SERVED)
    }

    fn start_session(
        &self,
        progress: Arc<crate::backup::Progress>,
        sealed_queue: usize,
    ) -> Result<Box<dyn BlobSession>> {
        // The marker goes first and the index is loaded after it: maintenance relies on that order. Its
        // heartbeat runs from the start, so a slow index load does not let it lapse.
        let marker = crate::marker::Beating::start(crate::marker::Session::start(self)?)?;
        self.reload_index()?;
        Ok(Box::new(LocalSession::start(
            self.storage.clone(),
            self.keys.clone(),
            self.index(),
            self.index.clone(),
            self.format.pack_size as usize,
            progress,
            marker,
            sealed_queue,
        )))
    }

    /// A blob's plaintext from its decrypted payload, checked against its id.
    fn plaintext(
        &self,
        id: &ContentId,
        (compression, raw_len, payload): (Compression, u32, bytes::Bytes),
    ) -> Result<bytes::Bytes> {
        let plain = crate::compress::decompress_shared(compression, payload, raw_len as usize, &format!("blob {id}"))?;
        self.verify_content(id, &plain)?;
        Ok(plain)
    }

    /// Checks that `plaintext` is the content named `id`: under the shared hashing key, or under the key of
    /// an isolated user who has snapshots here (looked up from the snapshot records on the first miss).
    pub fn verify_content(&self, id: &ContentId, plaintext: &[u8]) -> Result<()> {
        self.tenants.verify(&self.keys.hashing, id, plaintext, || self.tenant_hashing_keys())
    }

    /// The hashing keys of the isolated users who have snapshots here, in the order of their names.
    pub fn tenant_hashing_keys(&self) -> Result<Vec<HashingKey>> {
        let mut names: Vec<String> = self.list_snapshots()?.into_iter().filter_map(|s| s.tenant).collect();
        names.sort();
        names.dedup();
        Ok(names.iter().map(|n| self.keys.tenant_hashing(n)).collect())
    }

    /// Payloads of several blobs after decryption, still compressed (what a repository server sends to
    /// clients, which decompress and verify them themselves), in the order asked. Blobs lying
    /// close together in one pack are fetched with one ranged read, which turns a restore of many small
    /// files from one storage request per file into one per run of neighbours (on S3, the difference
    /// between latency-bound and bandwidth-bound).
    ///
    /// Each run is decrypted in place in the buffer it was read into, and the payloads are slices of that
    /// buffer: no copy per blob.
    pub fn read_blob_payloads(&self, ids: &[ContentId]) -> Result<Vec<(Compression, u32, bytes::Bytes)>> {
        let index = self.index();
        let mut wanted = Vec::with_capacity(ids.len());
        for (at, id) in ids.iter().enumerate() {
            let loc = index.get(id).ok_or_else(|| Error::NotFound(format!("blob {id} (not in the index)")))?;
            wanted.push((at, loc));
        }
        drop(index);
        wanted.sort_by(|(_, a), (_, b)| {
            (a.class.to_byte(), a.pack, a.offset).cmp(&(b.class.to_byte(), b.pack, b.offset))
        });
        let mut out: Vec<Option<(Compression, u32, bytes::Bytes)>> = vec![None; ids.len()];
        for run in coalesce(&wanted) {
            let (_, first) = &run[0];
            let start = first.offset as u64;
            let end = run.iter().map(|(_, l)| l.offset as u64 + l.stored_len as u64).max().unwrap_or(start);
            let mut bytes = self.storage.get_range(&first.pack_name(), start, end - start)?;
            // Where each blob's payload lies in `bytes` once opened. An id asked twice sits at the same offset
            // (the run is sorted by offset) and is opened once.
            let mut opened: Vec<(usize, &Location, std::ops::Range<usize>)> = Vec::with_capacity(run.len());
            for (at, loc) in run {
                if let Some((_, prev, range)) = opened.last() {
                    if prev.offset == loc.offset {
                        let range = range.clone();
                        opened.push((*at, loc, range));
                        continue;
                    }
                }
                let from = (loc.offset as u64 - start) as usize;
                let stored = bytes.get_mut(from..from + loc.stored_len as usize).ok_or_else(|| {
                    Error::corrupt(format!("pack {}", first.pack_name()), "shorter than its index says")
                })?;
                let range = content::open_payload_in_place(&self.keys, loc.class, &ids[*at], loc.compression, stored)?;
                opened.push((*at, loc, from + range.start..from + range.end));
            }
            let bytes = bytes::Bytes::from(bytes);
            for (at, loc, range) in opened {
                out[at] = Some((loc.compression, loc.raw_len, bytes.slice(range)));
            }
        }
        Ok(out.into_iter().flatten().collect())
    }
}

/// Bytes between two blobs of one pack that a coalesced read fetches and throws away rather than making
/// a second request.
const COALESCE_GAP: u64 = 256 << 10;
/// Longest coalesced read.
const COALESCE_MAX: u64 = 16 << 20;

/// Splits locations sorted by (class, pack, offset) into runs that one ranged read can serve. A run never
/// fetches more bytes between its blobs than the blobs themselves hold, so a read is at most twice the bytes
/// asked for (callers size memory budgets on that: a server reply, a server checking proofs), however the
/// blobs asked for are scattered.
fn coalesce(sorted: &[(usize, Location)]) -> Vec<&[(usize, Location)]> {
    let mut runs = Vec::new();
    let mut begin = 0;
    // Of the current run: bytes of its blobs (an id asked twice counted once), bytes of the gaps between them.
    let (mut useful, mut wasted) = (0u64, 0u64);
    for i in 1..=sorted.len() {
        let first = &sorted[begin].1;
        if i == begin + 1 {
            (useful, wasted) = (first.stored_len as u64, 0);
        }
        let joins = sorted.get(i).is_some_and(|(_, next)| {
            let prev = &sorted[i - 1].1;
            let prev_end = prev.offset as u64 + prev.stored_len as u64;
            let gap = (next.offset as u64).saturating_sub(prev_end);
            let adds = if next.offset == prev.offset { 0 } else { next.stored_len as u64 };
            let joins = next.pack == first.pack
                && next.class == first.class
                && gap <= COALESCE_GAP
                && wasted + gap <= useful + adds
                && next.offset as u64 + next.stored_len as u64 - first.offset as u64 <= COALESCE_MAX;
            if joins {
                useful += adds;
                wasted += gap;
            }
            joins
        });
        if !joins {
            runs.push(&sorted[begin..i]);
            begin = i;
        }
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::RecordKind;
    use crate::storage::MemoryStorage;

    fn at(offset: u32, stored_len: u32) -> (usize, Location) {
        let loc = Location {
            class: BlobClass::Data,
            pack: PackId([7; 16]),
            offset,
            stored_len,
            raw_len: stored_len,
            compression: Compression::None,
        };
        (0, loc)
    }

    fn read_sizes(sorted: &[(usize, Location)]) -> Vec<(usize, u64)> {
        coalesce(sorted)
            .iter()
            .map(|run| {
                let first = run[0].1.offset as u64;
                let end = run.iter().map(|(_, l)| l.offset as u64 + l.stored_len as u64).max().unwrap();
                (run.len(), end - first)
            })
            .collect()
    }

    /// Neighbours share a read; a gap is fetched only while the run's own blobs outweigh what it throws away,
    /// so tiny blobs scattered through a pack are never read as one large range.
    #[test]
    fn coalesced_reads_are_at_most_twice_the_bytes_asked_for() {
        let close = [at(0, 1000), at(1000, 1000), at(2500, 1000), at(2500, 1000)];
        assert_eq!(read_sizes(&close), vec![(4, 3500)]);
        // 100-byte blobs 200 KiB apart: each gap is under COALESCE_GAP, but fetching it would waste more
        // than the blobs hold.
        let scattered: Vec<_> = (0..256).map(|i| at(i * (200 << 10), 100)).collect();
        let sizes = read_sizes(&scattered);
        assert_eq!(sizes.len(), 256, "{sizes:?}");
        // Large blobs carry small gaps along.
        let large: Vec<_> = (0..8).map(|i| at(i * (600 << 10), 500 << 10)).collect();
        assert_eq!(read_sizes(&large), vec![(8, 7 * (600 << 10) + (500 << 10))]);
        for runs in [&close[..], &scattered, &large] {
            for run in coalesce(runs) {
                let asked: u64 = run.iter().map(|(_, l)| l.stored_len as u64).sum();
                let first = run[0].1.offset as u64;
                let end = run.iter().map(|(_, l)| l.offset as u64 + l.stored_len as u64).max().unwrap();
                assert!(end - first <= 2 * asked, "{} bytes read for {asked}", end - first);
            }
        }
    }

    #[test]
    fn a_password_change_keeps_everything_and_needs_the_current_password() {
        let storage: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
        let repo = Repository::create(storage.clone(), b"old", &CreateOptions::default()).unwrap();
        repo.put_record(RecordKind::User, "alice@laptop", &7u32).unwrap();
        let hashing = repo.hashing_key().clone();

        assert!(matches!(repo.change_password(b"wrong", b"new"), Err(Error::WrongPassword)));
        Repository::open(storage.clone(), b"old").expect("a refused change leaves the old password");

        repo.change_password(b"old", b"new").unwrap();
        assert!(matches!(Repository::open(storage.clone(), b"old"), Err(Error::WrongPassword)));
        let reopened = Repository::open(storage, b"new").unwrap();
        assert_eq!(reopened.format().repository_id, repo.format().repository_id);
        assert_eq!(reopened.hashing_key().as_bytes(), hashing.as_bytes(), "same keys, same content ids");
        assert_eq!(reopened.get_record::<u32>(RecordKind::User, "alice@laptop").unwrap(), Some(7));
    }
}
