//! Live progress and per-stage timing of a backup, as atomics that the pipeline's threads add to and a
//! progress display reads at any time.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use serde::Serialize;

/// Counters a progress display polls.
#[derive(Default, Debug)]
pub struct Progress {
    /// Files and bytes the walker has found so far (the denominator for ETA).
    pub files_found: AtomicU64,
    pub bytes_found: AtomicU64,
    /// True once the walker has seen everything.
    pub walk_done: std::sync::atomic::AtomicBool,
    pub files_done: AtomicU64,
    /// Files reused from the parent snapshot without reading.
    pub files_unchanged: AtomicU64,
    /// Bytes of files finished (read or reused).
    pub bytes_done: AtomicU64,
    pub bytes_read: AtomicU64,
    pub bytes_new: AtomicU64,
    /// Data chunks stored by this backup.
    pub chunks_new: AtomicU64,
    pub bytes_stored: AtomicU64,
    pub errors: AtomicU64,
    pub stages: StageTimes,
}

/// Busy and waiting time per stage, in nanoseconds summed over threads.
#[derive(Default, Debug)]
pub struct StageTimes {
    pub walk: AtomicU64,
    /// The scan listing folders and reading metadata, without its waits for the walk.
    pub scan: AtomicU64,
    pub read: AtomicU64,
    pub chunk: AtomicU64,
    pub hash: AtomicU64,
    pub compress: AtomicU64,
    pub encrypt: AtomicU64,
    pub pack: AtomicU64,
    pub upload: AtomicU64,
    pub trees: AtomicU64,
    /// The scan waiting for the walk to take what it listed (the walk or what it feeds is slower).
    pub scan_blocked: AtomicU64,
    /// Readers waiting for buffer budget or for room in the chunk queue.
    pub reader_wait: AtomicU64,
    /// Workers waiting for chunks.
    pub worker_idle: AtomicU64,
    /// Workers and the tree assembler waiting to hear which chunks are new (a round trip through a server;
    /// direct, the answer is at once).
    pub claim_wait: AtomicU64,
    /// Workers (and the tree assembler, which stores trees the same way) waiting for room in the packer's
    /// queue (direct), or for an upload slot (through a server). On a busy machine this is mostly time the
    /// packer waited for a core, not idle time.
    pub worker_blocked: AtomicU64,
    /// Uploaders waiting for packs.
    pub upload_idle: AtomicU64,
}

impl StageTimes {
    /// Adds the time since `start` to `counter` and returns now.
    pub fn add(counter: &AtomicU64, start: Instant) -> Instant {
        let now = Instant::now();
        counter.fetch_add((now - start).as_nanos() as u64, Relaxed);
        now
    }

    /// A report in seconds, with the busiest CPU stage named.
    pub fn report(&self, wall: Duration) -> StageReport {
        let s = |c: &AtomicU64| c.load(Relaxed) as f64 / 1e9;
        let busy = [
            ("scan", s(&self.scan)),
            ("read", s(&self.read)),
            ("chunk", s(&self.chunk)),
            ("hash", s(&self.hash)),
            ("compress", s(&self.compress)),
            ("encrypt", s(&self.encrypt)),
            ("pack", s(&self.pack)),
            ("upload", s(&self.upload)),
            ("trees", s(&self.trees)),
        ];
        let bottleneck =
            busy.iter().max_by(|a, b| a.1.total_cmp(&b.1)).map(|(name, _)| name.to_string()).unwrap_or_default();
        StageReport {
            wall_seconds: wall.as_secs_f64(),
            walk_seconds: s(&self.walk),
            scan_seconds: busy[0].1,
            read_seconds: busy[1].1,
            chunk_seconds: busy[2].1,
            hash_seconds: busy[3].1,
            compress_seconds: busy[4].1,
            encrypt_seconds: busy[5].1,
            pack_seconds: busy[6].1,
            upload_seconds: busy[7].1,
            trees_seconds: busy[8].1,
            scan_blocked_seconds: s(&self.scan_blocked),
            reader_wait_seconds: s(&self.reader_wait),
            worker_idle_seconds: s(&self.worker_idle),
            claim_wait_seconds: s(&self.claim_wait),
            worker_blocked_seconds: s(&self.worker_blocked),
            upload_idle_seconds: s(&self.upload_idle),
            busiest_stage: bottleneck,
        }
    }
}

/// Per-stage seconds (busy time summed over the stage's threads) and queue waits.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StageReport {
    pub wall_seconds: f64,
    pub walk_seconds: f64,
    pub scan_seconds: f64,
    pub read_seconds: f64,
    pub chunk_seconds: f64,
    pub hash_seconds: f64,
    pub compress_seconds: f64,
    pub encrypt_seconds: f64,
    pub pack_seconds: f64,
    pub upload_seconds: f64,
    pub trees_seconds: f64,
    pub scan_blocked_seconds: f64,
    pub reader_wait_seconds: f64,
    pub worker_idle_seconds: f64,
    pub claim_wait_seconds: f64,
    pub worker_blocked_seconds: f64,
    pub upload_idle_seconds: f64,
    /// The stage with the most busy time.
    pub busiest_stage: String,
}
