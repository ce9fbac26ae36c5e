//! The backup pipeline. Stages run on their own threads and meet through bounded channels:
//!
//! ```text
//! walk ──files──▶ read+chunk (N readers) ──chunks──▶ hash · dedup · compress · encrypt (rayon pool)
//!   │                                                      │ sealed blobs         │ chunk ids
//!   └──────────────── folder events ──────────────▶ assemble trees ──▶ pack ──▶ upload (2) ──▶ index blobs
//! ```
//!
//! File data in flight is bounded by a byte budget (see [`budget`]); every queue is bounded, so memory
//! stays flat however large the input. Files whose size, mtime, ctime and inode match the parent snapshot
//! are not read: their chunk lists are reused. Writes are ordered packs → index blobs → snapshot, so an
//! interrupted backup leaves only unreferenced packs behind, and the repository stays consistent.

mod assemble;
mod budget;
mod packer;
mod read;
pub mod stats;
mod walk;
mod worker;

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::Utc;
use crossbeam_channel::bounded;

use crate::chunker::Chunker;
use crate::error::{Error, Result};
use crate::ids::{ContentId, SnapshotId};
use crate::index::Index;
use crate::repository::Repository;
use crate::session::{Heartbeat, Session};
use crate::snapshot::{Snapshot, Source, MAX_RECORDED_ERRORS};
pub use stats::{Progress, StageReport};

/// What to back up and how.
pub struct BackupOptions {
    /// The folder to back up.
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
}

impl BackupOptions {
    /// Defaults for `path`: one worker per core, two readers, a 64 MiB budget.
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
        }
    }
}

/// Default bytes of file data in flight.
pub const DEFAULT_MEMORY_BUDGET: usize = 64 << 20;
/// Size of one read buffer.
pub(crate) const READ_BLOCK: usize = 8 << 20;
/// Packs per index blob written during a backup (so an interrupted backup's uploads are reused).
pub(crate) const PACKS_PER_INDEX: usize = 8;

/// What a finished backup produced.
pub struct BackupOutcome {
    pub snapshot: Snapshot,
    pub stages: StageReport,
}

/// State shared by all stages of one backup.
pub(crate) struct Shared<'a> {
    pub repo: &'a Repository,
    pub index: Arc<Index>,
    pub chunker: Chunker,
    /// Content ids claimed by this backup but not yet in the index.
    pub in_flight: Mutex<HashSet<ContentId>>,
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

    /// Claims a content id for storing: false when the repository or this backup already has it.
    pub fn claim(&self, id: &ContentId) -> bool {
        !self.index.contains(id) && self.in_flight.lock().unwrap_or_else(|p| p.into_inner()).insert(*id)
    }
}

/// Backs up `options.path` into `repo` and records a snapshot. The backup holds a writer session (see
/// [`crate::session`]) from before it loads the index until its snapshot is stored.
pub fn run_backup(repo: &Repository, options: BackupOptions, progress: Arc<Progress>) -> Result<BackupOutcome> {
    let session = Session::start(repo)?;
    repo.reload_index()?;
    let heartbeat = Heartbeat::default();
    std::thread::scope(|scope| {
        let (stop, stopped) = bounded::<()>(0);
        scope.spawn(|| heartbeat.run(&session, stopped));
        let outcome = back_up(repo, options, progress, &heartbeat, &session);
        drop(stop);
        outcome
    })
}

fn back_up(
    repo: &Repository,
    options: BackupOptions,
    progress: Arc<Progress>,
    heartbeat: &Heartbeat,
    session: &Session<'_>,
) -> Result<BackupOutcome> {
    let started = Instant::now();
    let start_time = Utc::now();
    let root_meta = std::fs::metadata(&options.path).map_err(|e| Error::local(&options.path, e))?;
    if !root_meta.is_dir() {
        return Err(Error::InvalidArgument(format!("{} is not a folder", options.path.display())));
    }
    let shared = Shared {
        repo,
        index: repo.index(),
        chunker: repo.chunker()?,
        in_flight: Mutex::new(HashSet::new()),
        progress: progress.clone(),
        errors: Mutex::new(Vec::new()),
        failed: AtomicBool::new(false),
        failure: Mutex::new(None),
        cancel: options.cancel.clone(),
    };
    let budget = budget::Budget::new(options.memory_budget.max(READ_BLOCK + shared.chunker.max_size()));
    let level = repo.format().compression_level;
    let pack_size = repo.format().pack_size as usize;
    let parent_root = options.parent.as_ref().map(|p| p.root);

    let (file_tx, file_rx) = bounded::<read::FileJob>(256);
    let (chunk_tx, chunk_rx) = bounded::<read::ChunkJob>(16);
    let (event_tx, event_rx) = bounded::<assemble::Event>(4096);
    let (sealed_tx, sealed_rx) = bounded(8);
    let (pack_tx, pack_rx) = bounded(1);
    let written = packer::Written::default();

    let assembled = std::thread::scope(|scope| {
        let shared = &shared;
        let written = &written;
        let uploaders: Vec<_> = (0..2)
            .map(|_| {
                let rx = pack_rx.clone();
                scope.spawn(move || packer::run_uploader(shared, rx, written))
            })
            .collect();
        drop(pack_rx);
        let packer = {
            let keys = repo.keys();
            scope.spawn(move || packer::run_packer(shared, keys, pack_size, sealed_rx, pack_tx))
        };
        let assembler = {
            let sealed_tx = sealed_tx.clone();
            scope.spawn(move || assemble::Assembler::new(shared, level, sealed_tx).run(event_rx))
        };
        for _ in 0..options.readers.max(1) {
            let (rx, tx, events, budget) = (file_rx.clone(), chunk_tx.clone(), event_tx.clone(), budget.clone());
            scope.spawn(move || read::run_reader(shared, &budget, rx, tx, events));
        }
        drop((file_rx, chunk_tx));
        let workers = options.workers.max(1);
        {
            let (rx, events, sealed_tx) = (chunk_rx, event_tx.clone(), sealed_tx);
            scope.spawn(move || {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(workers)
                    .thread_name(|i| format!("cairn-worker-{i}"))
                    .build();
                match pool {
                    Ok(pool) => pool.scope(|s| {
                        for _ in 0..workers {
                            let (rx, events, sealed_tx) = (rx.clone(), events.clone(), sealed_tx.clone());
                            s.spawn(move |_| worker::run_worker(shared, level, rx, sealed_tx, events));
                        }
                    }),
                    Err(e) => shared.fail(Error::InvalidArgument(format!("cannot start worker threads: {e}"))),
                }
            });
        }
        let walk_start = Instant::now();
        walk::Walker::new(shared, file_tx, event_tx).run(&options.path, parent_root);
        stats::StageTimes::add(&progress.stages.walk, walk_start);
        progress.walk_done.store(true, Ordering::Relaxed);
        let root = assembler.join().expect("assembler thread panicked");
        packer.join().expect("packer thread panicked");
        for u in uploaders {
            u.join().expect("uploader thread panicked");
        }
        root
    });

    if let Some(error) = shared.failure.lock().unwrap_or_else(|p| p.into_inner()).take() {
        return Err(error);
    }
    let (root, mut stats) = assembled.ok_or_else(|| Error::corrupt("backup", "no root tree was produced"))?;
    repo.write_index(&written.take_all())?;

    let errors = shared.errors.into_inner().unwrap_or_else(|p| p.into_inner());
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
    };
    heartbeat.confirm(session)?;
    repo.write_snapshot(&snapshot)?;
    Ok(BackupOutcome { snapshot, stages: progress.stages.report(started.elapsed()) })
}
