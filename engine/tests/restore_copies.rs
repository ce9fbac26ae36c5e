//! A chunk that appears more than once in a restore (a duplicated file, a copy shifted by a few bytes, a
//! one-chunk file repeated) is fetched once and copied from where it was first written; the restored tree
//! is identical all the same, and the summary says how many bytes were copied.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use cairn_engine::backup::{run_backup, BackupOptions, Progress};
use cairn_engine::benchmark::sample_random;
use cairn_engine::format::CreateOptions;
use cairn_engine::restore::{restore, RestoreOptions, RestoreProgress, RestoreSummary};
use cairn_engine::snapshot::{Snapshot, Source};
use cairn_engine::storage::MemoryStorage;
use cairn_engine::Repository;

const BIG: usize = 5 << 20;
const ONE_CHUNK: usize = 100 << 10;

fn make_source(src: &Path) {
    let big = sample_random(BIG, 1);
    let single = sample_random(ONE_CHUNK, 2);
    for (path, bytes) in [
        ("a/big", big.clone()),
        ("b/big-copy", big.clone()),
        ("c/shifted", [b"seven b".to_vec(), big].concat()),
        ("d/single", single.clone()),
        ("e/single-copy", single),
        ("f/small", b"small".repeat(100)),
        ("g/small-copy", b"small".repeat(100)),
    ] {
        let path = src.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
}

fn backup(repo: &Repository, src: &Path) -> Snapshot {
    let source = Source { host: "h".into(), user_name: "u".into(), path: src.display().to_string() };
    run_backup(repo, BackupOptions::new(src.to_path_buf(), source), Arc::new(Progress::default())).unwrap().snapshot
}

fn run_restore(repo: &Repository, snap: &Snapshot, out: &Path, parallel: usize) -> RestoreSummary {
    let progress = RestoreProgress::default();
    let cancel = AtomicBool::new(false);
    let options = RestoreOptions { overwrite: false, parallel };
    restore(repo, Some(snap.root), None, out, &options, &progress, &cancel).unwrap()
}

fn assert_same_tree(src: &Path, out: &Path) {
    for name in ["a/big", "b/big-copy", "c/shifted", "d/single", "e/single-copy", "f/small", "g/small-copy"] {
        assert!(std::fs::read(src.join(name)).unwrap() == std::fs::read(out.join(name)).unwrap(), "{name} differs");
    }
}

#[test]
fn repeated_chunks_are_copied_and_the_restore_is_identical() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    make_source(&src);
    let repo = Repository::create(Arc::new(MemoryStorage::new()), b"pw", &CreateOptions::default()).unwrap();
    let snap = backup(&repo, &src);

    // One restore thread: folders in name order, so every first occurrence is written before its copies.
    let out = dir.path().join("sequential");
    let summary = run_restore(&repo, &snap, &out, 1);
    assert!(summary.errors.is_empty(), "{:?}", summary.errors);
    assert_same_tree(&src, &out);
    // The exact copy and the repeated one-chunk file are copied whole; the shifted copy shares all but the
    // chunks around its start. Small files are fetched again.
    let whole = (BIG + ONE_CHUNK) as u64;
    assert!(summary.copied_bytes >= whole + BIG as u64 / 2, "copied {}", summary.copied_bytes);
    assert!(summary.copied_bytes <= 2 * BIG as u64 + ONE_CHUNK as u64, "copied {}", summary.copied_bytes);

    // In parallel, whatever is copied or fetched, the result is the same.
    let out = dir.path().join("parallel");
    let summary = run_restore(&repo, &snap, &out, 8);
    assert!(summary.errors.is_empty(), "{:?}", summary.errors);
    assert_same_tree(&src, &out);
}
