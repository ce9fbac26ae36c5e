//! The CPU stage, run by every thread of the worker pool: take a few chunks, hash each with the keyed
//! BLAKE3, ask the session in one batch which of them are new, compress the new ones while they are hot in
//! cache, and hand them to the session (which encrypts and packs them, or sends them to a server, and
//! records how long that took and how long it waited for room).

use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};

use super::assemble::Event;
use super::read::ChunkJob;
use super::stats::StageTimes;
use super::{Shared, CLAIM_BATCH};
use crate::access::PreparedBlob;
use crate::compress;
use crate::crypto::keys::BlobClass;
use crate::error::Result;
use crate::ids::ContentId;

pub(crate) fn run_worker(shared: &Shared<'_>, level: i32, chunks: Receiver<ChunkJob>, events: Sender<Event>) {
    let stages = &shared.progress.stages;
    let mut scratch = Vec::new();
    let mut batch: Vec<ChunkJob> = Vec::with_capacity(CLAIM_BATCH);
    let mut ids: Vec<ContentId> = Vec::with_capacity(CLAIM_BATCH);
    loop {
        let idle = Instant::now();
        let Ok(first) = chunks.recv() else { return };
        StageTimes::add(&stages.worker_idle, idle);
        batch.push(first);
        while batch.len() < CLAIM_BATCH {
            match chunks.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        if shared.stopped() {
            batch.clear();
            continue;
        }
        if let Err(e) = process_batch(shared, level, &mut batch, &mut ids, &mut scratch, &events) {
            shared.fail(e);
        }
        batch.clear();
    }
}

fn process_batch(
    shared: &Shared<'_>,
    level: i32,
    batch: &mut Vec<ChunkJob>,
    ids: &mut Vec<ContentId>,
    scratch: &mut Vec<u8>,
    events: &Sender<Event>,
) -> Result<()> {
    let stages = &shared.progress.stages;
    let hashing = shared.access.hashing_key();
    let start = Instant::now();
    ids.clear();
    ids.extend(batch.iter().map(|job| hashing.content_id(&job.data)));
    let mut t = StageTimes::add(&stages.hash, start);
    let claimed = shared.session.claim(ids)?;
    for ((job, id), new) in batch.drain(..).zip(ids.iter()).zip(claimed) {
        if new {
            let compression = compress::compress_into(level, &job.data, scratch);
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
