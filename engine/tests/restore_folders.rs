//! Restore fetches sibling folders' records together. Many siblings (more than one batch) and nested
//! folders restore identically; a damaged folder record fails only that folder, reported against its path,
//! while its siblings in the same batch restore.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use cairn_engine::access::Access;
use cairn_engine::backup::{run_backup, BackupOptions, Progress};
use cairn_engine::format::CreateOptions;
use cairn_engine::restore::{restore, RestoreOptions, RestoreProgress};
use cairn_engine::snapshot::{Snapshot, Source};
use cairn_engine::storage::MemoryStorage;
use cairn_engine::tree::NodeKind;
use cairn_engine::Repository;

const FOLDERS: u32 = 40;

fn make_source(src: &Path) {
    for i in 0..FOLDERS {
        let dir = src.join(format!("d{i:02}"));
        std::fs::create_dir_all(dir.join("inner")).unwrap();
        std::fs::write(dir.join("file"), format!("contents of folder {i}")).unwrap();
        std::fs::write(dir.join("inner/deeper"), format!("inner contents {i}").repeat(i as usize + 1)).unwrap();
    }
}

fn backup(repo: &Repository, src: &Path) -> Snapshot {
    let source = Source { host: "h".into(), user_name: "u".into(), path: src.display().to_string() };
    run_backup(repo, BackupOptions::new(src.to_path_buf(), source), Arc::new(Progress::default())).unwrap().snapshot
}

fn run_restore(repo: &Repository, snap: &Snapshot, out: &Path) -> cairn_engine::restore::RestoreSummary {
    let progress = RestoreProgress::default();
    let cancel = AtomicBool::new(false);
    restore(repo, Some(snap.root), None, out, &RestoreOptions::default(), &progress, &cancel).unwrap()
}

fn same_file(a: &Path, b: &Path) {
    assert_eq!(std::fs::read(a).unwrap(), std::fs::read(b).unwrap(), "{}", b.display());
}

#[test]
fn sibling_folders_restore_and_a_damaged_one_fails_alone() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    make_source(&src);
    let storage = MemoryStorage::new();
    let repo = Repository::create(Arc::new(storage.clone()), b"pw", &CreateOptions::default()).unwrap();
    let snap = backup(&repo, &src);

    let out = dir.path().join("whole");
    let summary = run_restore(&repo, &snap, &out);
    assert!(summary.errors.is_empty(), "{:?}", summary.errors);
    assert_eq!(summary.dirs, 2 * FOLDERS as u64);
    for i in 0..FOLDERS {
        let name = format!("d{i:02}");
        same_file(&src.join(&name).join("file"), &out.join(&name).join("file"));
        same_file(&src.join(&name).join("inner/deeper"), &out.join(&name).join("inner/deeper"));
    }

    // Damage the record of folder d07 (its own bytes in its pack): the batch read of its siblings fails,
    // each sibling then reads its own record, and only d07 is reported.
    let d07 = repo
        .read_tree(&snap.root)
        .unwrap()
        .into_iter()
        .find_map(|n| match n.kind {
            NodeKind::Dir { tree } if n.name == b"d07" => Some(tree),
            _ => None,
        })
        .unwrap();
    let at = repo.index().get(&d07).unwrap();
    storage.corrupt_with(&at.pack_name(), |bytes| bytes[at.offset as usize + 20] ^= 1);
    let repo = Repository::open(Arc::new(storage.clone()), b"pw").unwrap();
    let out = dir.path().join("damaged");
    let summary = run_restore(&repo, &snap, &out);
    assert_eq!(summary.errors.len(), 1, "{:?}", summary.errors);
    assert!(summary.errors[0].contains("d07"), "{:?}", summary.errors);
    for i in (0..FOLDERS).filter(|i| *i != 7) {
        let name = format!("d{i:02}");
        same_file(&src.join(&name).join("file"), &out.join(&name).join("file"));
        same_file(&src.join(&name).join("inner/deeper"), &out.join(&name).join("inner/deeper"));
    }
    assert!(!out.join("d07/file").exists());
}
