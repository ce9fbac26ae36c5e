//! Fault tests at the engine level, on in-memory storage: storage writes failing at random, bits flipped in
//! stored blobs, and garbage collection's margins and retirement. Each ends by checking the repository
//! and restoring what must still be there.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use crate::access::Access;
use crate::backup::{run_backup, BackupOptions, Progress};
use crate::check::check_repository;
use crate::format::CreateOptions;
use crate::maintenance::gc::collect_garbage_at;
use crate::maintenance::Safety;
use crate::marker::unix_now;
use crate::restore::{restore, RestoreOptions, RestoreProgress};
use crate::snapshot::{Snapshot, Source};
use crate::storage::{Faults, FaultyStorage, MemoryStorage, Storage};
use crate::verify::{verify_snapshots, VerifyOptions};
use crate::Repository;

const PASSWORD: &[u8] = b"pw";

fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A folder of `files` files of 600 KiB each, content from `seed`.
fn make_tree(dir: &Path, seed: u64, files: usize) {
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    for i in 0..files {
        let path = if i % 2 == 0 { dir.join(format!("f{i}")) } else { dir.join(format!("sub/g{i}")) };
        std::fs::write(path, noise(seed * 1000 + i as u64, 600 << 10)).unwrap();
    }
}

fn create(storage: Arc<dyn Storage>) -> Repository {
    let options = CreateOptions {
        pack_size: 1 << 20,
        chunker: crate::chunker::ChunkerParams { min: 32 << 10, avg: 128 << 10, max: 512 << 10 },
        ..Default::default()
    };
    Repository::create(storage, PASSWORD, &options).unwrap()
}

fn backup(repo: &Repository, dir: &Path) -> crate::Result<Snapshot> {
    let source = Source { host: "h".into(), user_name: "u".into(), path: dir.display().to_string() };
    let mut options = BackupOptions::new(dir.to_path_buf(), source);
    options.memory_budget = 16 << 20;
    run_backup(repo, options, Arc::new(Progress::default())).map(|o| o.snapshot)
}

fn assert_restores(repo: &Repository, snap: &Snapshot, expected: &Path) {
    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("r");
    let summary = restore(
        repo,
        Some(snap.root),
        None,
        &target,
        &RestoreOptions::default(),
        &RestoreProgress::default(),
        &AtomicBool::new(false),
    )
    .unwrap();
    assert!(summary.errors.is_empty(), "{:?}", summary.errors);
    for entry in walk(expected) {
        let rel = entry.strip_prefix(expected).unwrap();
        assert_eq!(std::fs::read(&entry).unwrap(), std::fs::read(target.join(rel)).unwrap(), "{}", rel.display());
    }
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn assert_clean(repo: &Repository) {
    let report = check_repository(repo, true).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}

/// Storage writes fail at random (sometimes after storing): each backup either records a complete
/// snapshot or nothing, and the repository stays consistent.
#[test]
fn random_storage_write_failures_leave_no_partial_snapshot() {
    let memory = MemoryStorage::new();
    let src = tempfile::tempdir().unwrap();
    let clean = create(Arc::new(memory.clone()));
    let (mut failed, mut succeeded) = (0, 0);
    for seed in 0..24u64 {
        make_tree(src.path(), seed, 8);
        let faults = Faults {
            seed,
            put_failure_rate: 0.04,
            read_failure_rate: 0.01,
            sometimes_stored_anyway: true,
            ..Default::default()
        };
        let faulty = Arc::new(FaultyStorage::new(Arc::new(memory.clone()), faults));
        let before = clean.list_snapshots().unwrap().len();
        let result = Repository::open(faulty.clone(), PASSWORD).and_then(|repo| backup(&repo, src.path()));
        let after = clean.list_snapshots().unwrap();
        match result {
            Ok(snap) => {
                succeeded += 1;
                assert_eq!(after.len(), before + 1);
                clean.reload_index().unwrap();
                assert_restores(&clean, &snap, src.path());
            }
            Err(e) => {
                failed += 1;
                assert!(e.to_string().contains("injected fault"), "unexpected error: {e}");
                // The snapshot write itself may have stored and then reported failure: then it is whole.
                assert!(after.len() <= before + 1);
                if after.len() == before + 1 {
                    clean.reload_index().unwrap();
                    assert_restores(&clean, after.last().unwrap(), src.path());
                }
            }
        }
        clean.reload_index().unwrap();
        assert_clean(&clean);
    }
    assert!(failed > 3 && succeeded > 3, "{failed} failed, {succeeded} succeeded: adjust the rates");
    // Without faults the next backup completes, and every snapshot restores.
    let snap = backup(&clean, src.path()).unwrap();
    assert_restores(&clean, &snap, src.path());
    let report = verify_snapshots(
        &clean,
        &clean.list_snapshots().unwrap(),
        &VerifyOptions { files_percent: 100.0, parallel: 2 },
    )
    .unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}

/// A bit flipped anywhere in a pack, an index blob or a tree is reported, naming the damaged blob.
#[test]
fn flipped_bits_are_reported_with_the_damaged_blob() {
    let src = tempfile::tempdir().unwrap();
    make_tree(src.path(), 1, 6);
    let mut rng =
        noise(77, 8 * 64).chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().unwrap())).collect::<Vec<_>>();
    for round in 0..18 {
        let memory = MemoryStorage::new();
        let repo = create(Arc::new(memory.clone()));
        let snap = backup(&repo, src.path()).unwrap();
        let r = rng.pop().unwrap();
        let kind = round % 3;
        let (name, at) = match kind {
            0 => {
                let packs = memory.list("p").unwrap();
                let p = &packs[r as usize % packs.len()];
                (p.name.clone(), (r >> 16) % p.size)
            }
            1 => {
                let blobs = memory.list("i").unwrap();
                let b = &blobs[r as usize % blobs.len()];
                (b.name.clone(), (r >> 16) % b.size)
            }
            _ => {
                let loc = repo.index().get(&snap.root).unwrap();
                (loc.pack_name(), loc.offset as u64 + (r >> 16) % loc.stored_len as u64)
            }
        };
        let bit = 1u8 << ((r >> 8) % 8);
        memory.corrupt_with(&name, |b| b[at as usize] ^= bit);
        match kind {
            1 => {
                // The index is read when the repository opens: the error names the blob.
                let err = Repository::open(Arc::new(memory.clone()), PASSWORD).err().expect("damage undetected");
                assert!(err.to_string().contains(&name), "{err}");
                let report = check_repository(&repo, false).unwrap();
                assert!(report.problems.iter().any(|p| p.blob == name), "{:?}", report.problems);
            }
            2 => {
                let report = verify_snapshots(
                    &repo,
                    std::slice::from_ref(&snap),
                    &VerifyOptions { files_percent: 0.0, parallel: 1 },
                )
                .unwrap();
                assert!(report.problems.iter().any(|p| p.blob == snap.root && p.path == "/"), "{:?}", report.problems);
            }
            _ => {
                let report = check_repository(&repo, true).unwrap();
                assert!(report.problems.iter().any(|p| p.blob.contains(&name)), "{name}: {:?}", report.problems);
            }
        }
    }
}

/// With a margin, garbage is first retired (still readable), then deleted only after the margin; with
/// none, at once. A retired pack that a snapshot references again is put back in use, not deleted.
#[test]
fn garbage_is_retired_then_deleted_after_the_margin() {
    let memory = MemoryStorage::new();
    let repo = create(Arc::new(memory.clone()));
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    make_tree(a.path(), 1, 6);
    make_tree(b.path(), 2, 6);
    let snap_a = backup(&repo, a.path()).unwrap();
    let snap_b = backup(&repo, b.path()).unwrap();
    let sealed_a = memory.get(&crate::snapshot::snapshot_name(&snap_a.id)).unwrap();
    repo.delete_snapshot(&snap_a.id).unwrap();
    let margin = Safety::Margin(Duration::from_secs(3600));
    let packs = || memory.list("p").unwrap().len();
    let before = packs();

    // Young packs are never touched.
    let r = collect_garbage_at(&repo, margin, unix_now()).unwrap();
    assert_eq!((r.packs_retired, r.packs_deleted), (0, 0));
    // Old enough: retired, not deleted; the deleted snapshot's data is still readable.
    memory.age_all(Duration::from_secs(7200));
    let r = collect_garbage_at(&repo, margin, unix_now()).unwrap();
    assert!(r.packs_retired > 0 && r.packs_deleted == 0, "{r:?}");
    assert_eq!(packs(), before);
    assert!(!repo.index().contains(&snap_a.root), "retired blobs are not deduplicated against");
    assert!(repo.index().get(&snap_a.root).is_some(), "but stay readable");
    // A snapshot referencing the retired data shows up (a backup that began before the retirement):
    // the packs go back in use instead of being deleted.
    memory.put(&crate::snapshot::snapshot_name(&snap_a.id), &sealed_a).unwrap();
    let r = collect_garbage_at(&repo, margin, unix_now() + 7200).unwrap();
    assert!(r.packs_revived > 0 && r.packs_deleted == 0, "{r:?}");
    assert_restores(&repo, &snap_a, a.path());
    assert_clean(&repo);
    // Forgotten again: retired, then deleted once the margin has passed.
    repo.delete_snapshot(&snap_a.id).unwrap();
    let r = collect_garbage_at(&repo, margin, unix_now()).unwrap();
    assert!(r.packs_retired > 0, "{r:?}");
    let r = collect_garbage_at(&repo, margin, unix_now() + 60).unwrap();
    assert_eq!(r.packs_deleted, 0, "deleted before the margin passed");
    let r = collect_garbage_at(&repo, margin, unix_now() + 3700).unwrap();
    assert!(r.packs_deleted > 0, "{r:?}");
    assert!(packs() < before);
    assert_clean(&repo);
    assert_restores(&repo, &snap_b, b.path());
}

/// A live writer session that began before a pack was written protects it, however old the pack looks.
#[test]
fn live_session_protects_its_packs() {
    let memory = MemoryStorage::new();
    let repo = create(Arc::new(memory.clone()));
    let a = tempfile::tempdir().unwrap();
    make_tree(a.path(), 3, 4);
    let snap = backup(&repo, a.path()).unwrap();
    repo.delete_snapshot(&snap.id).unwrap();
    memory.age_all(Duration::from_secs(7200));
    let session = crate::marker::Session::start(&repo).unwrap();
    // Its heartbeat keeps it fresh as the (simulated) clock moves on.
    memory.set_modified(session.name(), std::time::SystemTime::now() + Duration::from_secs(61));
    // The session's record says it started now, after the (aged) packs: they are not its packs.
    let margin = Safety::Margin(Duration::from_secs(60));
    let r = collect_garbage_at(&repo, margin, unix_now()).unwrap();
    assert_eq!(r.sessions_live, 1);
    assert!(r.packs_retired > 0);
    // Retired packs are not deleted while a session that began before the retirement is live.
    let r = collect_garbage_at(&repo, margin, unix_now() + 61).unwrap();
    assert_eq!(r.packs_deleted, 0, "{r:?}");
    drop(session);
    let r = collect_garbage_at(&repo, margin, unix_now() + 61).unwrap();
    assert!(r.packs_deleted > 0, "{r:?}");
    assert_clean(&repo);
}

/// Losing every index blob loses nothing: the index is rebuilt from the packs' tables.
#[test]
fn index_rebuild_recovers_lost_index_blobs() {
    let memory = MemoryStorage::new();
    let repo = create(Arc::new(memory.clone()));
    let a = tempfile::tempdir().unwrap();
    make_tree(a.path(), 4, 6);
    let snap = backup(&repo, a.path()).unwrap();
    for blob in memory.list("i").unwrap() {
        memory.delete(&blob.name).unwrap();
    }
    let repo = Repository::open(Arc::new(memory.clone()), PASSWORD).unwrap();
    assert!(repo.read_tree(&snap.root).is_err());
    let report = crate::maintenance::rebuild::rebuild_index(&repo).unwrap();
    assert!(report.problems.is_empty() && report.packs > 0);
    assert_restores(&repo, &snap, a.path());
    assert_clean(&repo);
}
