//! The backup pipeline. Stages run on their own threads and meet through bounded channels:
//!
//! ```text
//! walk ──files──▶ read+chunk (N readers) ──chunks──▶ hash · dedup · compress (rayon pool) ──▶ session
//!   │                                                      │ chunk ids
//!   └──────────────── folder events ──────────────▶ assemble trees ──────────────────────────▶ session
//! ```
//!
//! The session is where blobs go: for a repository opened directly it encrypts, packs and uploads
//! (`crate::session`); for a repository server client it sends compressed blobs over the network.
//!
//! File data in flight is bounded by a byte budget (see [`budget`]); every queue is bounded, so memory
//! stays flat however large the input — also within one folder: its names are sorted in runs spilled to a
//! temporary file, entries stream from the walker to the assembler within a bounded window, and the
//! assembler stores each tree page as soon as it is complete (see `walk`, `scan`, `names`, `window`, `assemble`).
//! Files whose size, mtime, ctime and inode match the parent snapshot
//! are not read: their chunk lists are reused. Writes are ordered packs → index blobs → snapshot, so an
//! interrupted backup leaves only unreferenced packs behind, and the repository stays consistent.

mod assemble;
mod budget;
mod names;
mod read;
mod scan;
pub mod stats;
#[cfg(test)]
mod tests;
mod walk;
mod window;
mod worker;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::Utc;
use crossbeam_channel::bounded;

use crate::access::{Access, BlobSession};
use crate::chunker::Chunker;
use crate::compress::{self, Compression};
use crate::error::{Error, Result};
use crate::ids::ContentId;
use crate::ids::SnapshotId;
use crate::snapshot::{Snapshot, Source, MAX_RECORDED_ERRORS};
pub use stats::{Progress, StageReport};

/// What to back up and how.
pub struct BackupOptions {
    /// The folder or file to back up (a file is recorded as a root folder holding only it).
    pub path: PathBuf,
    /// Recorded owner of the snapshot (`user@host:path`).
    pub source: Source,
    pub tags: BTreeMap<String, String>,
    pub description: String,
    /// The snapshot whose unchanged files are reused without reading; `None` reads everything.
    pub parent: Option<Snapshot>,
    /// Bytes of file data that may be in flight between reading and packing.
    pub memory_budget: usize,
    /// Threads that hash, compress and encrypt.
    pub workers: usize,
    /// Threads that read and chunk files.
    pub readers: usize,
    /// Set to stop the backup early; nothing is recorded.
    pub cancel: Arc<AtomicBool>,
    /// Names of one folder sorted in memory; a larger folder is sorted in runs of this many, spilled to a
    /// temporary file and merged. Only tests change it.
    pub names_in_memory: usize,
    /// Entries listed but not yet in a tree page, at most (see `window`). Only tests change it.
    pub entry_window: usize,
}

impl BackupOptions {
    /// Defaults for `path`: one worker per core, two readers, a 32 MiB budget.
    pub fn new(path: PathBuf, source: Source) -> Self {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        Self {
            path,
            source,
            tags: BTreeMap::new(),
            description: String::new(),
            parent: None,
            memory_budget: DEFAULT_MEMORY_BUDGET,
            workers: cores,
            readers: 2,
            cancel: Arc::new(AtomicBool::new(false)),
            names_in_memory: names::DEFAULT_RUN,
            entry_window: window::DEFAULT_WINDOW,
        }
    }
}

/// Default bytes of file data in flight.
pub const DEFAULT_MEMORY_BUDGET: usize = 32 << 20;
/// Size of one read buffer (at least twice the largest chunk, so most of a buffer is cut before its tail is
/// carried over).
pub(crate) const READ_BLOCK: usize = 4 << 20;
/// Compresses a claimed blob into `scratch` for [`BlobSession::store`], unless the session will send only a
/// proof of it (then it goes uncompressed and `scratch` is left empty).
fn compress_claimed(
    session: &dyn BlobSession,
    id: &ContentId,
    level: i32,
    plaintext: &[u8],
    scratch: &mut Vec<u8>,
) -> Compression {
    if session.proves(id) {
        scratch.clear();
        return Compression::None;
    }
    compress::compress_into(level, plaintext, scratch)
}

/// Chunks a worker hashes before asking the session which of them to store.
pub(crate) const CLAIM_BATCH: usize = 8;

/// What a finished backup produced.
pub struct BackupOutcome {
    pub snapshot: Snapshot,
    pub stages: StageReport,
}

/// State shared by all stages of one backup.
pub(crate) struct Shared<'a> {
    pub access: &'a dyn Access,
    pub session: Box<dyn BlobSession>,
    pub chunker: Chunker,
    pub progress: Arc<Progress>,
    pub errors: Mutex<Vec<String>>,
    failed: AtomicBool,
    failure: Mutex<Option<Error>>,
    cancel: Arc<AtomicBool>,
}

impl Shared<'_> {
    /// Records a fatal error; every stage then drains its input without doing work.
    pub fn fail(&self, error: Error) {
        let mut slot = self.failure.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some(error);
        }
        self.failed.store(true, Ordering::SeqCst);
    }

    /// True once the backup failed or was cancelled.
    pub fn stopped(&self) -> bool {
        if self.cancel.load(Ordering::Relaxed) && !self.failed.load(Ordering::Relaxed) {
            self.fail(Error::Cancelled);
        }
        self.failed.load(Ordering::Relaxed)
    }

    /// Records a file or folder that could not be read (the backup goes on without it).
    pub fn record_error(&self, message: String) {
        tracing::warn!("{message}");
        self.progress.errors.fetch_add(1, Ordering::Relaxed);
        let mut errors = self.errors.lock().unwrap_or_else(|p| p.into_inner());
        if errors.len() < MAX_RECORDED_ERRORS {
            errors.push(message);
        }
    }
}

/// Backs up `options.path` and records a snapshot.
pub fn run_backup(repo: &dyn Access, options: BackupOptions, progress: Arc<Progress>) -> Result<BackupOutcome> {
    let started = Instant::now();
    let start_time = Utc::now();
    let root_meta = std::fs::metadata(&options.path).map_err(|e| Error::local(&options.path, e))?;
    let root_is_folder = root_meta.is_dir();
    let shared = Shared {
        access: repo,
        session: repo.open_session(progress.clone())?,
        chunker: repo.chunker()?,
        progress: progress.clone(),
        errors: Mutex::new(Vec::new()),
        failed: AtomicBool::new(false),
        failure: Mutex::new(None),
        cancel: options.cancel.clone(),
    };
    let budget = budget::Budget::new(
        options.memory_budget.max(READ_BLOCK.max(2 * shared.chunker.max_size()) + shared.chunker.max_size()),
    );
    let level = repo.compression_level();
    let parent_root = options.parent.as_ref().map(|p| p.root);

    let (file_tx, file_rx) = bounded::<read::FileJob>(256);
    let (chunk_tx, chunk_rx) = bounded::<read::ChunkJob>(16);
    let (event_tx, event_rx) = bounded::<assemble::Event>(4096);

    let assembled = std::thread::scope(|scope| {
        let shared = &shared;
        let assembler = scope.spawn(move || assemble::Assembler::new(shared, level, root_is_folder).run(event_rx));
        for _ in 0..options.readers.max(1) {
            let (rx, tx, events, budget) = (file_rx.clone(), chunk_tx.clone(), event_tx.clone(), budget.clone());
            scope.spawn(move || read::run_reader(shared, &budget, rx, tx, events));
        }
        drop((file_rx, chunk_tx));
        let workers = options.workers.max(1);
        {
            let (rx, events) = (chunk_rx, event_tx.clone());
            scope.spawn(move || {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(workers)
                    .thread_name(|i| format!("cairn-worker-{i}"))
                    .build();
                match pool {
                    Ok(pool) => pool.scope(|s| {
                        for _ in 0..workers {
                            let (rx, events) = (rx.clone(), events.clone());
                            s.spawn(move |_| worker::run_worker(shared, level, rx, events));
                        }
                    }),
                    Err(e) => shared.fail(Error::InvalidArgument(format!("cannot start worker threads: {e}"))),
                }
            });
        }
        let walk_start = Instant::now();
        let window = window::Window::new(options.entry_window);
        walk::Walker::new(shared, file_tx, event_tx, window, options.names_in_memory).run(
            &options.path,
            root_meta,
            parent_root,
        );
        stats::StageTimes::add(&progress.stages.walk, walk_start);
        progress.walk_done.store(true, Ordering::Relaxed);
        assembler.join().expect("assembler thread panicked")
    });

    let Shared { session, failure, errors, .. } = shared;
    if let Some(error) = failure.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(error);
    }
    let (root, mut stats) = assembled.ok_or_else(|| Error::corrupt("backup", "no root tree was produced"))?;

    let errors = errors.into_inner().unwrap_or_else(|p| p.into_inner());
    stats.errors = progress.errors.load(Ordering::Relaxed);
    stats.bytes_read = progress.bytes_read.load(Ordering::Relaxed);
    stats.chunks_new = progress.chunks_new.load(Ordering::Relaxed);
    stats.files_unchanged = progress.files_unchanged.load(Ordering::Relaxed);
    stats.bytes_new = progress.bytes_new.load(Ordering::Relaxed);
    stats.bytes_stored = progress.bytes_stored.load(Ordering::Relaxed);
    let snapshot = Snapshot {
        id: SnapshotId::random(),
        source: options.source,
        start_time,
        end_time: Utc::now(),
        root,
        tags: options.tags,
        description: options.description,
        parent: options.parent.map(|p| p.id),
        incomplete: stats.errors > 0,
        stats,
        error_messages: errors,
        tenant: None,
    };
    // The session makes packs and index durable first, then stores the snapshot.
    session.commit(&snapshot)?;
    Ok(BackupOutcome { snapshot, stages: progress.stages.report(started.elapsed()) })
}
