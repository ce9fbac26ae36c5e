//! The read stage: each reader thread takes one file at a time, reads it in large buffers taken from the
//! byte budget, and cuts each buffer into chunks with FastCDC. Chunks are zero-copy slices of the buffer;
//! only the unfinished tail of a buffer (less than one maximum chunk) is copied into the next.

use std::fs::File;
use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use bytes::Bytes;
use crossbeam_channel::{Receiver, Sender};

use super::assemble::{Event, FileKey};
use super::budget::{freeze, Budget};
use super::stats::StageTimes;
use super::{Shared, READ_BLOCK};

/// A file to read.
pub(crate) struct FileJob {
    pub key: FileKey,
    pub path: PathBuf,
    /// Size when the walker saw it (a hint; the file may change while being read).
    pub size: u64,
}

/// One chunk of a file, in order `seq`.
pub(crate) struct ChunkJob {
    pub key: FileKey,
    pub seq: u32,
    pub data: Bytes,
}

pub(crate) fn run_reader(
    shared: &Shared<'_>,
    budget: &std::sync::Arc<Budget>,
    files: Receiver<FileJob>,
    chunks: Sender<ChunkJob>,
    events: Sender<Event>,
) {
    for job in files {
        if shared.stopped() {
            continue;
        }
        let event = match read_file(shared, budget, &job, &chunks) {
            Ok(Some((count, size))) => Event::FileRead { key: job.key, chunks: count, size },
            Ok(None) => return, // the pipeline is shutting down
            Err(e) => {
                shared.record_error(format!("{}: {e}", job.path.display()));
                Event::EntryFailed { key: job.key }
            }
        };
        if events.send(event).is_err() {
            return;
        }
    }
}

/// Reads and chunks one file; returns its chunk count and the bytes read, or `None` when the chunk queue
/// closed.
fn read_file(
    shared: &Shared<'_>,
    budget: &std::sync::Arc<Budget>,
    job: &FileJob,
    chunks: &Sender<ChunkJob>,
) -> std::io::Result<Option<(u32, u64)>> {
    let stages = &shared.progress.stages;
    let chunker = &shared.chunker;
    let max = chunker.max_size();
    let block = READ_BLOCK.max(2 * max);
    let mut file = File::open(&job.path)?;
    let mut carry: Vec<u8> = Vec::new();
    let mut total: u64 = 0;
    let mut seq: u32 = 0;
    loop {
        // Ask for one byte more than the file should still hold, so a short read tells us we hit its end.
        let remaining = job.size.saturating_sub(total).saturating_add(1);
        let want = (remaining.min(block as u64) as usize).max(1);
        let capacity = carry.len() + want;
        let wait = Instant::now();
        let permit = budget.acquire(capacity);
        let start = StageTimes::add(&stages.reader_wait, wait);
        // Large buffers are allocated at one standard size so the pool can reuse them for any file.
        let mut buf = budget.buffer(if capacity >= (1 << 20) { capacity.max(block + max) } else { capacity });
        buf.append(&mut carry);
        let got = (&mut file).take(want as u64).read_to_end(&mut buf)?;
        let eof = got < want;
        total += got as u64;
        shared.progress.bytes_read.fetch_add(got as u64, Relaxed);
        let start = StageTimes::add(&stages.read, start);
        let block = freeze(buf, permit);
        let mut pos = 0;
        let mut chunk_time = start;
        while pos < block.len() {
            let rest = &block[pos..];
            if !eof && rest.len() < max {
                break;
            }
            let n = chunker.next_cut(rest);
            let job = ChunkJob { key: job.key, seq, data: block.slice(pos..pos + n) };
            let sent_at = StageTimes::add(&stages.chunk, chunk_time);
            if chunks.send(job).is_err() {
                return Ok(None);
            }
            chunk_time = StageTimes::add(&stages.reader_wait, sent_at);
            seq = seq.checked_add(1).ok_or_else(|| std::io::Error::other("file has too many chunks"))?;
            pos += n;
        }
        carry.extend_from_slice(&block[pos..]);
        drop(block);
        if eof {
            return Ok(Some((seq, total)));
        }
        if shared.stopped() {
            return Ok(None);
        }
    }
}
