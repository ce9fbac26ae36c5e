//! A flipped bit anywhere in any stored blob is detected when the repository is read in full: opening it
//! (format blob, index blobs), listing snapshots, reading every tree and chunk, and reading every pack's
//! entry table.

use std::sync::{Arc, OnceLock};

use cairn_engine::access::Access;
use cairn_engine::backup::{run_backup, BackupOptions, Progress};
use cairn_engine::format::CreateOptions;
use cairn_engine::ids::TreeId;
use cairn_engine::pack::read_table;
use cairn_engine::snapshot::Source;
use cairn_engine::storage::{MemoryStorage, Storage};
use cairn_engine::tree::NodeKind;
use cairn_engine::{Repository, Result};
use proptest::prelude::*;

const PASSWORD: &[u8] = b"pw";

/// One repository for all cases; each case damages its own copy.
fn pristine() -> MemoryStorage {
    static BUILT: OnceLock<MemoryStorage> = OnceLock::new();
    BUILT.get_or_init(build_repository).deep_copy()
}

fn build_repository() -> MemoryStorage {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("a.txt"), b"hello hello hello hello hello hello hello hello".repeat(100)).unwrap();
    let mut noise = vec![0u8; 300_000];
    blake3::Hasher::new().update(b"n").finalize_xof().fill(&mut noise);
    std::fs::write(src.join("sub/b.bin"), &noise).unwrap();
    std::os::unix::fs::symlink("a.txt", src.join("link")).unwrap();
    let storage = MemoryStorage::new();
    let repo = Repository::create(Arc::new(storage.clone()), PASSWORD, &CreateOptions::default()).unwrap();
    let source = Source { host: "h".into(), user_name: "u".into(), path: "/src".into() };
    run_backup(&repo, BackupOptions::new(src, source), Arc::new(Progress::default())).unwrap();
    storage
}

fn read_tree_fully(repo: &Repository, tree: &TreeId) -> Result<()> {
    for node in repo.read_tree(tree)? {
        match &node.kind {
            NodeKind::Dir { tree } => read_tree_fully(repo, tree)?,
            NodeKind::File { content } => {
                for id in repo.file_chunks(content)? {
                    repo.read_blob(&id)?;
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn read_everything(storage: &MemoryStorage) -> Result<()> {
    let repo = Repository::open(Arc::new(storage.clone()), PASSWORD)?;
    for snap in repo.list_snapshots()? {
        read_tree_fully(&repo, &snap.root)?;
    }
    for prefix in ["p", "q"] {
        for pack in storage.list(prefix)? {
            read_table(storage, repo.keys(), &pack.name)?;
        }
    }
    Ok(())
}

#[test]
fn untouched_repository_reads_cleanly() {
    let storage = pristine();
    read_everything(&storage).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn any_flipped_bit_is_detected(which in any::<prop::sample::Index>(), at in any::<prop::sample::Index>(), bit in 0u8..8) {
        let storage = pristine();
        let blobs = storage.list("").unwrap();
        let blob = which.get(&blobs);
        let offset = at.index(blob.size as usize);
        storage.corrupt_with(&blob.name, |bytes| bytes[offset] ^= 1 << bit);
        prop_assert!(read_everything(&storage).is_err(), "flip of bit {} at {} in {} went unnoticed", bit, offset, blob.name);
    }
}
