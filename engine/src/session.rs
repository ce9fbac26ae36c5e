//! A backup's writes into a repository opened directly. Workers seal blobs (compress was done by the
//! caller; encryption happens here, on the caller's thread) and hand them to a packer thread, which
//! streams them into the open data and metadata packs, so a pack is never held in memory. Full packs go to
//! two uploader threads that make them durable and visible (fsync, rename) and, every [`PACKS_PER_INDEX`]
//! packs, write an index blob for what is stored so far. Committing closes the open packs, writes the last
//! index blob and then the snapshot. The same session type serves clients of the repository server.
//!
//! For the whole session a writer marker (`crate::marker`) is kept fresh by a heartbeat thread, so
//! maintenance running meanwhile never deletes what this session may still refer to; the marker is
//! deleted only after the snapshot is stored, and a session whose heartbeat lapsed refuses to commit.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::{bounded, Receiver, Sender};

use crate::access::{BlobSession, PreparedBlob};
use crate::backup::stats::StageTimes;
use crate::backup::Progress;
use crate::content::{self, SealedContent};
use crate::crypto::keys::{BlobClass, KeySet};
use crate::error::{Error, Result};
use crate::ids::{ContentId, PackId};
use crate::index::{self, Index};
use crate::marker;
use crate::pack::{PackBuilder, PackEntry, PACK_MAGIC};
use crate::repository::IndexHandle;
use crate::snapshot::{snapshot_name, Snapshot};
use crate::storage::{BlobWriter, Storage};

/// Packs stored per index blob written during a session (so an interrupted backup's uploads are reused).
pub const PACKS_PER_INDEX: usize = 8;

/// Sealed blobs waiting for the packer in a backup run directly: enough for the workers to go on while the
/// packer writes. With 8, the workers of an initial backup of the 1 GiB corpus spent 2.4 of its 3.2 s
/// blocked handing blobs over, and the two cores were not kept busy; with 32, 0.5 s. In two sets of 6
/// interleaved runs the backup took 2.53 and 2.64 s against 2.83 and 3.02 s (medians; CPU 4.7 and 4.9 s
/// against 5.0 and 5.3 s), peak RSS 80-82 MiB against 78-79. 16 measured no better than 8, 64 no better
/// than 32. Sized in bytes: 32 of the default chunker's largest chunks (2 MiB), fewer (down to
/// [`SEALED_QUEUE_SERVED`]) for a repository created with larger chunks. See [`direct_queue`].
pub const SEALED_BYTES_DIRECT: usize = 64 << 20;
/// Sealed blobs waiting for the packer in a session of a repository server's client: fewer, since each
/// connection's memory has a fixed budget (`benches/server_memory.sh`).
pub const SEALED_QUEUE_SERVED: usize = 8;

/// Sealed blobs that may wait for the packer in a backup run directly, for chunks of at most `max_chunk`
/// bytes: [`SEALED_BYTES_DIRECT`] worth of the largest, between 8 and 32 blobs.
pub fn direct_queue(max_chunk: usize) -> usize {
    (SEALED_BYTES_DIRECT / max_chunk.max(1)).clamp(SEALED_QUEUE_SERVED, 32)
}

type PackList = Vec<(BlobClass, PackId, Vec<PackEntry>)>;

/// State the session's threads share.
struct Shared {
    storage: Arc<dyn Storage>,
    keys: KeySet,
    /// The index this session deduplicates against (loaded when it started).
    index: Arc<Index>,
    /// The repository's current index, which a reload may have replaced meanwhile.
    current: IndexHandle,
    progress: Arc<Progress>,
    written: Mutex<PackList>,
    failed: AtomicBool,
    failure: Mutex<Option<Error>>,
}

impl Shared {
    fn fail(&self, error: Error) {
        let mut slot = self.failure.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some(error);
        }
        self.failed.store(true, Ordering::SeqCst);
    }

    fn stopped(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }

    fn take_failure(&self) -> Option<Error> {
        self.failure.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    /// Records a stored pack; returns a batch to index when enough have accumulated.
    fn stored(&self, pack: (BlobClass, PackId, Vec<PackEntry>)) -> Option<PackList> {
        let mut packs = self.written.lock().unwrap_or_else(|p| p.into_inner());
        packs.push(pack);
        (packs.len() >= PACKS_PER_INDEX).then(|| std::mem::take(&mut *packs))
    }

    fn write_index(&self, packs: &PackList) -> Result<()> {
        index::store_index_blob(self.storage.as_ref(), &self.keys, &self.index, packs)?;
        let current = self.current.read().unwrap_or_else(|p| p.into_inner()).clone();
        if !Arc::ptr_eq(&current, &self.index) {
            for (class, id, entries) in packs {
                current.insert_pack(*class, *id, entries);
            }
        }
        Ok(())
    }
}

/// Writes into a local repository.
pub struct LocalSession {
    shared: Arc<Shared>,
    in_flight: Mutex<HashSet<ContentId>>,
    sealed: Option<Sender<SealedContent>>,
    threads: Vec<JoinHandle<()>>,
    /// The writer marker and its heartbeat, started by the caller before it loaded `index`.
    beating: marker::Beating,
}

impl LocalSession {
    /// Starts the packer and uploader threads. `beating` is the writer marker, stored and kept fresh since
    /// before the caller loaded `index`. At most `sealed_queue` sealed blobs wait for the packer.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        storage: Arc<dyn Storage>,
        keys: KeySet,
        index: Arc<Index>,
        current: IndexHandle,
        pack_size: usize,
        progress: Arc<Progress>,
        beating: marker::Beating,
        sealed_queue: usize,
    ) -> Self {
        let shared = Arc::new(Shared {
            storage,
            keys,
            index,
            current,
            progress,
            written: Mutex::new(Vec::new()),
            failed: AtomicBool::new(false),
            failure: Mutex::new(None),
        });
        let (sealed_tx, sealed_rx) = bounded::<SealedContent>(sealed_queue.max(1));
        let (pack_tx, pack_rx) = bounded::<ClosedPack>(2);
        let mut threads = Vec::new();
        for i in 0..2 {
            let (shared, rx) = (shared.clone(), pack_rx.clone());
            threads.push(spawn(&format!("cairn-upload-{i}"), move || run_uploader(&shared, rx)));
        }
        let packer_shared = shared.clone();
        threads.push(spawn("cairn-packer", move || run_packer(&packer_shared, pack_size, sealed_rx, pack_tx)));
        Self { shared, in_flight: Mutex::new(HashSet::new()), sealed: Some(sealed_tx), threads, beating }
    }
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> JoinHandle<()> {
    std::thread::Builder::new().name(name.to_string()).spawn(f).expect("spawning a thread")
}

impl BlobSession for LocalSession {
    fn claim(&self, ids: &[ContentId]) -> Result<Vec<bool>> {
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        Ok(ids.iter().map(|id| !self.shared.index.contains(id) && in_flight.insert(*id)).collect())
    }

    fn is_stored(&self, id: &ContentId) -> bool {
        self.shared.index.contains(id)
    }

    fn store(&self, blob: PreparedBlob<'_>) -> Result<u64> {
        if let Some(e) = self.shared.stopped().then(|| self.shared.take_failure()).flatten() {
            return Err(e);
        }
        let stages = &self.shared.progress.stages;
        let start = Instant::now();
        let sealed = content::seal_compressed(
            &self.shared.keys,
            blob.class,
            blob.id,
            blob.plaintext,
            blob.compression,
            blob.compressed,
        );
        let sealed_at = StageTimes::add(&stages.encrypt, start);
        let len = sealed.bytes.len() as u64;
        let sender = self.sealed.as_ref().ok_or_else(|| Error::corrupt("session", "store after finish"))?;
        let sent = sender.send(sealed);
        StageTimes::add(&stages.worker_blocked, sealed_at);
        if sent.is_err() {
            return Err(self.shared.take_failure().unwrap_or(Error::Cancelled));
        }
        Ok(len)
    }

    fn commit(mut self: Box<Self>, snapshot: &Snapshot) -> Result<()> {
        drop(self.sealed.take());
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        if let Some(e) = self.shared.take_failure() {
            return Err(e);
        }
        // Checked before the index is written, so a record that cannot be stored leaves no indexed packs.
        let sealed = snapshot.seal_new(self.shared.storage.as_ref(), &self.shared.keys)?;
        let rest = std::mem::take(&mut *self.shared.written.lock().unwrap_or_else(|p| p.into_inner()));
        self.shared.write_index(&rest)?;
        // Refuse to commit if maintenance could have taken this session for dead meanwhile.
        self.beating.confirm()?;
        self.shared.storage.put(&snapshot_name(&snapshot.id), &sealed)?;
        self.beating.stop();
        // Dropping `self` deletes the marker, now that the snapshot is stored.
        Ok(())
    }
}

impl Drop for LocalSession {
    fn drop(&mut self) {
        self.beating.stop();
        // Abandoned (an error elsewhere): stop the threads without publishing an index for open packs.
        if !self.threads.is_empty() {
            self.shared.fail(Error::Cancelled);
            drop(self.sealed.take());
            for t in self.threads.drain(..) {
                let _ = t.join();
            }
        }
    }
}

/// A pack whose bytes are all written, waiting to be made durable.
struct ClosedPack {
    writer: Box<dyn BlobWriter>,
    class: BlobClass,
    id: PackId,
    entries: Vec<PackEntry>,
}

struct OpenPack {
    layout: PackBuilder,
    writer: Box<dyn BlobWriter>,
}

impl OpenPack {
    fn start(shared: &Shared, class: BlobClass) -> Result<Self> {
        let layout = PackBuilder::new(class);
        let mut writer = shared.storage.writer(&layout.name())?;
        writer.write(PACK_MAGIC)?;
        Ok(Self { layout, writer })
    }

    fn close(self, keys: &KeySet) -> Result<ClosedPack> {
        let OpenPack { layout, mut writer } = self;
        let trailer = layout.finish(keys);
        writer.write(&trailer.bytes)?;
        Ok(ClosedPack { writer, class: trailer.class, id: trailer.id, entries: trailer.entries })
    }
}

/// Fills packs until the input closes, then closes the partial ones.
fn run_packer(shared: &Shared, pack_size: usize, input: Receiver<SealedContent>, output: Sender<ClosedPack>) {
    let mut open: [Option<OpenPack>; 2] = [None, None];
    let stages = &shared.progress.stages;
    for blob in input {
        if shared.stopped() {
            continue;
        }
        let start = Instant::now();
        if let Err(e) = add_blob(shared, pack_size, &mut open, &blob, &output) {
            shared.fail(e);
        }
        StageTimes::add(&stages.pack, start);
    }
    for pack in open.into_iter().flatten() {
        if shared.stopped() {
            return;
        }
        match pack.close(&shared.keys) {
            Ok(closed) => {
                if output.send(closed).is_err() {
                    return;
                }
            }
            Err(e) => shared.fail(e),
        }
    }
}

fn add_blob(
    shared: &Shared,
    pack_size: usize,
    open: &mut [Option<OpenPack>; 2],
    blob: &SealedContent,
    output: &Sender<ClosedPack>,
) -> Result<()> {
    let slot = &mut open[blob.class as usize];
    // Close the open pack first if this blob would take it past the target size.
    if slot.as_ref().is_some_and(|p| !p.layout.is_empty() && p.layout.len() + blob.bytes.len() > pack_size) {
        let closed = slot.take().expect("checked").close(&shared.keys)?;
        if output.send(closed).is_err() {
            return Ok(());
        }
    }
    let pack = match slot {
        Some(pack) => pack,
        None => slot.insert(OpenPack::start(shared, blob.class)?),
    };
    pack.layout.add(blob);
    pack.writer.write(&blob.bytes)?;
    Ok(())
}

/// Makes packs durable and visible, and writes index blobs for them in batches.
fn run_uploader(shared: &Shared, input: Receiver<ClosedPack>) {
    let stages = &shared.progress.stages;
    let mut idle = Instant::now();
    for pack in input {
        let start = StageTimes::add(&stages.upload_idle, idle);
        if shared.stopped() {
            idle = Instant::now();
            continue;
        }
        let ClosedPack { writer, class, id, entries } = pack;
        let stored = writer.finish(shared.storage.as_ref());
        idle = StageTimes::add(&stages.upload, start);
        if let Err(e) = stored {
            shared.fail(e.into());
            continue;
        }
        if let Some(batch) = shared.stored((class, id, entries)) {
            if let Err(e) = shared.write_index(&batch) {
                shared.fail(e);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_direct_queue_holds_64_mib_of_the_largest_chunks_and_8_to_32_of_them() {
        assert_eq!(direct_queue(2 << 20), 32, "the default chunker");
        assert_eq!(direct_queue(4 << 20), 16);
        assert_eq!(direct_queue(16 << 20), SEALED_QUEUE_SERVED, "never fewer than a server session's");
        assert_eq!(direct_queue(64 << 10), 32, "never more than 32");
        assert_eq!(direct_queue(0), 32);
    }
}
