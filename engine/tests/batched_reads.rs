//! Batched reads (`Access::read_blobs`) return exactly what single reads return, in the order asked, with
//! repeated ids and blobs of several packs mixed; they open each blob's seal in place in the buffer of the
//! coalesced pack read, and a flipped bit there is still refused.

use std::sync::Arc;

use cairn_engine::access::Access;
use cairn_engine::backup::{run_backup, BackupOptions, Progress};
use cairn_engine::format::CreateOptions;
use cairn_engine::ids::{ContentId, TreeId};
use cairn_engine::snapshot::Source;
use cairn_engine::storage::{MemoryStorage, Storage};
use cairn_engine::tree::NodeKind;
use cairn_engine::Repository;

fn chunks(repo: &Repository, tree: &TreeId, out: &mut Vec<ContentId>) {
    for node in repo.read_tree(tree).unwrap() {
        match &node.kind {
            NodeKind::Dir { tree } => chunks(repo, tree, out),
            NodeKind::File { content } => out.extend(repo.file_chunks(content).unwrap()),
            _ => {}
        }
    }
}

#[test]
fn batched_reads_equal_single_reads_and_detect_damage() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    for i in 0..30u32 {
        let body: Vec<u8> = (0..(i * 1531 + 7)).map(|j| (j.wrapping_mul(2654435761) >> (i % 7)) as u8).collect();
        std::fs::write(src.join(format!("f{i:02}")), body).unwrap();
    }
    let mut big = vec![0u8; 3 << 20];
    blake3::Hasher::new().update(b"big").finalize_xof().fill(&mut big);
    std::fs::write(src.join("big.bin"), &big).unwrap();
    let storage = MemoryStorage::new();
    let repo = Repository::create(Arc::new(storage.clone()), b"pw", &CreateOptions::default()).unwrap();
    let source = Source { host: "h".into(), user_name: "u".into(), path: "/src".into() };
    let snap = run_backup(&repo, BackupOptions::new(src, source), Arc::new(Progress::default())).unwrap().snapshot;

    let mut ids = Vec::new();
    chunks(&repo, &snap.root, &mut ids);
    assert!(ids.len() > 30, "{} chunks", ids.len());
    // Reverse order, every id asked twice in a row, and the first one again at the end.
    let mut asked: Vec<ContentId> = ids.iter().rev().flat_map(|id| [*id, *id]).collect();
    asked.push(ids[0]);
    let batched = repo.read_blobs(&asked).unwrap();
    assert_eq!(batched.len(), asked.len());
    for (id, got) in asked.iter().zip(&batched) {
        assert_eq!(got, &repo.read_blob(id).unwrap(), "blob {id}");
    }

    // One flipped bit in a data pack: the batch that covers it fails.
    let pack = storage.list("p").unwrap().into_iter().next().expect("a data pack");
    storage.corrupt_with(&pack.name, |bytes| bytes[40] ^= 1);
    let repo = Repository::open(Arc::new(storage.clone()), b"pw").unwrap();
    assert!(repo.read_blobs(&ids).is_err());
}
