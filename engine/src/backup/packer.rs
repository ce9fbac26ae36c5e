//! The pack stage: one thread streams sealed blobs into the open data and metadata packs as they arrive
//! (so a pack is never held in memory), and hands each full pack to an uploader thread, which makes it
//! durable and visible (fsync, rename) and, every [`PACKS_PER_INDEX`] packs, writes an index blob for what
//! is stored so far.

use std::sync::Mutex;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};

use super::stats::StageTimes;
use super::{Shared, PACKS_PER_INDEX};
use crate::content::SealedContent;
use crate::crypto::keys::{BlobClass, KeySet};
use crate::error::Result;
use crate::ids::PackId;
use crate::pack::{PackBuilder, PackEntry, PACK_MAGIC};
use crate::storage::BlobWriter;

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

/// A pack whose bytes are all written, waiting to be made durable.
pub(crate) struct ClosedPack<'s> {
    writer: Box<dyn BlobWriter + 's>,
    class: BlobClass,
    id: PackId,
    entries: Vec<PackEntry>,
}

struct OpenPack<'s> {
    layout: PackBuilder,
    writer: Box<dyn BlobWriter + 's>,
}

impl<'s> OpenPack<'s> {
    fn start(shared: &'s Shared<'_>, class: BlobClass) -> Result<Self> {
        let layout = PackBuilder::new(class);
        let mut writer = shared.repo.storage().writer(&layout.name())?;
        writer.write(PACK_MAGIC)?;
        Ok(Self { layout, writer })
    }

    fn close(self, keys: &KeySet) -> Result<ClosedPack<'s>> {
        let OpenPack { layout, mut writer } = self;
        let trailer = layout.finish(keys);
        writer.write(&trailer.bytes)?;
        Ok(ClosedPack { writer, class: trailer.class, id: trailer.id, entries: trailer.entries })
    }
}

/// Fills packs until the input closes, then closes the partial ones.
pub(crate) fn run_packer<'s>(
    shared: &'s Shared<'_>,
    keys: &KeySet,
    pack_size: usize,
    input: Receiver<SealedContent>,
    output: Sender<ClosedPack<'s>>,
) {
    let mut open: [Option<OpenPack<'s>>; 2] = [None, None];
    let stages = &shared.progress.stages;
    for blob in input {
        if shared.stopped() {
            continue;
        }
        let start = Instant::now();
        if let Err(e) = add_blob(shared, keys, pack_size, &mut open, &blob, &output) {
            shared.fail(e);
        }
        StageTimes::add(&stages.pack, start);
    }
    for pack in open.into_iter().flatten() {
        if shared.stopped() {
            return;
        }
        match pack.close(keys) {
            Ok(closed) => {
                if output.send(closed).is_err() {
                    return;
                }
            }
            Err(e) => shared.fail(e),
        }
    }
}

fn add_blob<'s>(
    shared: &'s Shared<'_>,
    keys: &KeySet,
    pack_size: usize,
    open: &mut [Option<OpenPack<'s>>; 2],
    blob: &SealedContent,
    output: &Sender<ClosedPack<'s>>,
) -> Result<()> {
    let slot = &mut open[blob.class as usize];
    // Close the open pack first if this blob would take it past the target size.
    if slot.as_ref().is_some_and(|p| !p.layout.is_empty() && p.layout.len() + blob.bytes.len() > pack_size) {
        let closed = slot.take().expect("checked").close(keys)?;
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
pub(crate) fn run_uploader(shared: &Shared<'_>, input: Receiver<ClosedPack<'_>>, written: &Written) {
    let stages = &shared.progress.stages;
    let mut idle = Instant::now();
    for pack in input {
        let start = StageTimes::add(&stages.upload_idle, idle);
        if shared.stopped() {
            idle = Instant::now();
            continue;
        }
        let ClosedPack { writer, class, id, entries } = pack;
        let stored = writer.finish();
        idle = StageTimes::add(&stages.upload, start);
        if let Err(e) = stored {
            shared.fail(e.into());
            continue;
        }
        if let Some(batch) = written.push((class, id, entries)) {
            if let Err(e) = shared.repo.write_index(&batch) {
                shared.fail(e);
            }
        }
    }
}
