//! The CPU stage, run by every thread of the worker pool: take a few chunks, hash each with the keyed
//! BLAKE3, ask the session in one batch which of them are new, compress the new ones while they are hot in
//! cache (not those the session will only prove it holds), and hand them to the session (which encrypts
//! and packs them, or sends them or a proof to a server, and records how long that took and how long it
//! waited for room).

use std::collections::VecDeque;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};

use super::assemble::Event;
use super::read::ChunkJob;
use super::stats::StageTimes;
use super::{compress_claimed, Shared, CLAIM_BATCH};
use crate::access::{PendingClaim, PreparedBlob};
use crate::crypto::keys::BlobClass;
use crate::error::Result;
use crate::ids::ContentId;

/// Batches a worker may have asked about before it processes the first: while that one's answer is on its
/// way (a round trip through a server), the next ones are hashed and asked about, so the worker waits for
/// the network only when it has nothing else to do. A session that answers at once is never read ahead of.
const CLAIMS_AHEAD: usize = 4;

/// Chunks hashed and asked about, waiting to be compressed and stored.
struct AskedBatch {
    jobs: Vec<ChunkJob>,
    ids: Vec<ContentId>,
    answer: PendingClaim,
}

pub(crate) fn run_worker(shared: &Shared<'_>, level: i32, chunks: Receiver<ChunkJob>, events: Sender<Event>) {
    let stages = &shared.progress.stages;
    let mut scratch = Vec::new();
    let mut ahead: VecDeque<AskedBatch> = VecDeque::with_capacity(CLAIMS_AHEAD);
    loop {
        while ahead.len() < CLAIMS_AHEAD && !ahead.front().is_some_and(|b| b.answer.is_ready()) {
            // Waits for chunks only when nothing else is pending.
            let jobs = match ahead.is_empty() {
                true => {
                    let idle = Instant::now();
                    let Ok(first) = chunks.recv() else { break };
                    StageTimes::add(&stages.worker_idle, idle);
                    take_more(first, &chunks)
                }
                false => match chunks.try_recv() {
                    Ok(first) => take_more(first, &chunks),
                    Err(_) => break,
                },
            };
            ahead.push_back(hash_and_ask(shared, jobs));
        }
        let Some(batch) = ahead.pop_front() else { return };
        if shared.stopped() {
            continue;
        }
        if let Err(e) = process_batch(shared, level, batch, &mut scratch, &events) {
            shared.fail(e);
        }
    }
}

/// `first` and whatever else is queued, up to [`CLAIM_BATCH`] chunks.
fn take_more(first: ChunkJob, chunks: &Receiver<ChunkJob>) -> Vec<ChunkJob> {
    let mut jobs = Vec::with_capacity(CLAIM_BATCH);
    jobs.push(first);
    while jobs.len() < CLAIM_BATCH {
        match chunks.try_recv() {
            Ok(job) => jobs.push(job),
            Err(_) => break,
        }
    }
    jobs
}

/// Hashes a batch and asks the session which of its chunks are new.
fn hash_and_ask(shared: &Shared<'_>, jobs: Vec<ChunkJob>) -> AskedBatch {
    let start = Instant::now();
    let hashing = shared.access.hashing_key();
    let ids: Vec<ContentId> = jobs.iter().map(|job| hashing.content_id(&job.data)).collect();
    StageTimes::add(&shared.progress.stages.hash, start);
    let answer = shared.session.start_claim(&ids);
    AskedBatch { jobs, ids, answer }
}

fn process_batch(
    shared: &Shared<'_>,
    level: i32,
    batch: AskedBatch,
    scratch: &mut Vec<u8>,
    events: &Sender<Event>,
) -> Result<()> {
    let stages = &shared.progress.stages;
    let AskedBatch { jobs, ids, answer } = batch;
    let waiting = Instant::now();
    let claimed = answer.wait()?;
    let mut t = StageTimes::add(&stages.claim_wait, waiting);
    for ((job, id), new) in jobs.into_iter().zip(ids.iter()).zip(claimed) {
        if new {
            let compression = compress_claimed(shared.session.as_ref(), id, level, &job.data, scratch);
            StageTimes::add(&stages.compress, t);
            // The session accounts for its own time: sealing as `encrypt`, waiting for room in its queue as
            // `worker_blocked`.
            let stored = shared.session.store(PreparedBlob {
                class: BlobClass::Data,
                id: *id,
                plaintext: &job.data,
                compression,
                compressed: scratch,
            })?;
            t = Instant::now();
            shared.progress.bytes_new.fetch_add(job.data.len() as u64, Relaxed);
            shared.progress.chunks_new.fetch_add(1, Relaxed);
            shared.progress.bytes_stored.fetch_add(stored, Relaxed);
        }
        let event = Event::ChunkDone { key: job.key, seq: job.seq, id: *id };
        drop(job);
        if events.send(event).is_err() {
            return Ok(());
        }
    }
    Ok(())
}
