//! The pack stage: one thread appends sealed blobs to the open data and metadata packs and hands full
//! packs to uploader threads, which store them and, every [`PACKS_PER_INDEX`] packs, write an index blob
//! for what is stored so far.

use std::sync::Mutex;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};

use super::stats::StageTimes;
use super::{Shared, PACKS_PER_INDEX};
use crate::content::SealedContent;
use crate::crypto::keys::{BlobClass, KeySet};
use crate::ids::PackId;
use crate::pack::builder::FinishedPack;
use crate::pack::{PackBuilder, PackEntry};

/// Packs stored but not yet listed in an index blob.
#[derive(Default)]
pub(crate) struct Written(Mutex<Vec<(BlobClass, PackId, Vec<PackEntry>)>>);

impl Written {
    fn push(&self, pack: (BlobClass, PackId, Vec<PackEntry>)) -> Option<Vec<(BlobClass, PackId, Vec<PackEntry>)>> {
        let mut packs = self.0.lock().unwrap_or_else(|p| p.into_inner());
        packs.push(pack);
        (packs.len() >= PACKS_PER_INDEX).then(|| std::mem::take(&mut *packs))
    }

    /// Everything not yet indexed.
    pub fn take_all(&self) -> Vec<(BlobClass, PackId, Vec<PackEntry>)> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// Fills packs until the input closes, then flushes the partial ones.
pub(crate) fn run_packer(
    shared: &Shared<'_>,
    keys: &KeySet,
    pack_size: usize,
    input: Receiver<SealedContent>,
    output: Sender<FinishedPack>,
) {
    let mut open: [Option<PackBuilder>; 2] = [None, None];
    let stages = &shared.progress.stages;
    for blob in input {
        if shared.stopped() {
            continue;
        }
        let start = Instant::now();
        let slot = &mut open[blob.class as usize];
        let builder = slot.get_or_insert_with(|| PackBuilder::new(blob.class, pack_size));
        builder.add(&blob);
        drop(blob);
        if builder.len() >= pack_size {
            let full = slot.take().expect("just filled").finish(keys);
            StageTimes::add(&stages.pack, start);
            if output.send(full).is_err() {
                return;
            }
        } else {
            StageTimes::add(&stages.pack, start);
        }
    }
    for builder in open.into_iter().flatten() {
        if !builder.is_empty() && !shared.stopped() && output.send(builder.finish(keys)).is_err() {
            return;
        }
    }
}

/// Stores packs, and index blobs for them in batches.
pub(crate) fn run_uploader(shared: &Shared<'_>, input: Receiver<FinishedPack>, written: &Written) {
    let stages = &shared.progress.stages;
    let mut idle = Instant::now();
    for pack in input {
        let start = StageTimes::add(&stages.upload_idle, idle);
        if shared.stopped() {
            idle = Instant::now();
            continue;
        }
        let stored = shared.repo.storage().put(&pack.name, &pack.bytes);
        idle = StageTimes::add(&stages.upload, start);
        if let Err(e) = stored {
            shared.fail(e.into());
            continue;
        }
        if let Some(batch) = written.push((pack.class, pack.id, pack.entries)) {
            if let Err(e) = shared.repo.write_index(&batch) {
                shared.fail(e);
            }
        }
    }
}
