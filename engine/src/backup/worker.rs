//! The CPU stage, run by every thread of the worker pool: hash a chunk with the keyed BLAKE3, skip it if the
//! repository or this backup already has it, otherwise compress and encrypt it while it is hot in cache
//! and pass it to the packer.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};

use super::assemble::Event;
use super::read::ChunkJob;
use super::stats::StageTimes;
use super::Shared;
use crate::compress;
use crate::content::{self, SealedContent};
use crate::crypto::keys::BlobClass;

pub(crate) fn run_worker(
    shared: &Shared<'_>,
    level: i32,
    chunks: Receiver<ChunkJob>,
    sealed: Sender<SealedContent>,
    events: Sender<Event>,
) {
    let stages = &shared.progress.stages;
    let keys = shared.repo.keys();
    let mut scratch = Vec::new();
    let mut idle = Instant::now();
    for job in chunks {
        let start = StageTimes::add(&stages.worker_idle, idle);
        if shared.stopped() {
            idle = Instant::now();
            continue;
        }
        let id = keys.hashing.content_id(&job.data);
        let mut t = StageTimes::add(&stages.hash, start);
        if shared.claim(&id) {
            let compression = compress::compress_into(level, &job.data, &mut scratch);
            t = StageTimes::add(&stages.compress, t);
            let blob = content::seal_compressed(keys, BlobClass::Data, id, &job.data, compression, &scratch);
            t = StageTimes::add(&stages.encrypt, t);
            shared.progress.bytes_new.fetch_add(job.data.len() as u64, Relaxed);
            shared.progress.chunks_new.fetch_add(1, Relaxed);
            shared.progress.bytes_stored.fetch_add(blob.bytes.len() as u64, Relaxed);
            let sent = sealed.send(blob);
            t = StageTimes::add(&stages.worker_blocked, t);
            if sent.is_err() {
                return;
            }
        }
        let event = Event::ChunkDone { key: job.key, seq: job.seq, id };
        drop(job);
        if events.send(event).is_err() {
            return;
        }
        idle = t;
    }
}
