//! Uploads through a real server on loopback: the server checks every blob of a batched upload against its
//! id before storing it, so a client cannot poison the repository, and a backup of many small files goes up
//! in batches that arrive whole.

mod support;

use std::sync::Arc;

use cairn_engine::access::Access;
use cairn_engine::backup::{run_backup, BackupOptions, Progress};
use cairn_engine::crypto::keys::BlobClass;
use cairn_engine::format::CreateOptions;
use cairn_engine::snapshot::{Snapshot, Source};
use cairn_engine::storage::MemoryStorage;
use cairn_engine::{ErrorKind, Repository};
use cairn_transport::client::RemoteRepository;
use cairn_transport::users;
use support::{raw, serve, snapshot_of};

fn alice_snapshot(root: cairn_engine::ids::ContentId) -> Snapshot {
    snapshot_of(&Source { host: "laptop".into(), user_name: "alice".into(), path: "/data".into() }, root)
}

/// A forged blob (its bytes do not hash to its id) and a metadata blob that is no tree are each refused,
/// even in a batch with good blobs, and the backup fails without recording a snapshot.
#[test]
fn forged_blobs_in_a_batch_are_refused() {
    let repo = Arc::new(Repository::create(Arc::new(MemoryStorage::new()), b"pw", &CreateOptions::default()).unwrap());
    users::add(&repo, "alice@laptop", "alice-pw", false, false).unwrap();
    let served = serve(repo.clone());
    let key = repo.hashing_key().clone();

    let good = b"honest bytes".to_vec();
    let good_id = key.content_id(&good);
    let claimed_id = key.content_id(b"what the id promises");
    let not_a_tree = b"metadata that is no tree".to_vec();
    let not_a_tree_id = key.content_id(&not_a_tree);
    let cases: [(BlobClass, _, &[u8], &str); 2] = [
        (BlobClass::Data, claimed_id, b"something else", "does not match"),
        (BlobClass::Metadata, not_a_tree_id, &not_a_tree, "neither a tree nor a chunk list"),
    ];
    for (class, id, bytes, why) in cases {
        let alice = RemoteRepository::connect(&served.url, &served.fingerprint, "alice@laptop", "alice-pw").unwrap();
        let session = alice.open_session(Arc::new(Progress::default())).unwrap();
        assert_eq!(session.claim(&[good_id, id]).unwrap(), vec![true, true]);
        session.store(raw(BlobClass::Data, good_id, &good)).unwrap();
        session.store(raw(class, id, bytes)).unwrap();
        let e = session.commit(&alice_snapshot(good_id)).expect_err("a forged blob must fail the backup");
        assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
        assert!(e.to_string().contains(why), "{e}");
        assert!(repo.list_snapshots().unwrap().is_empty());
    }
}

/// Hundreds of one-chunk files (far more blobs than one upload carries) arrive whole and in order, and a
/// second backup of the same files sends nothing.
#[test]
fn many_small_files_go_up_in_batches() {
    let repo = Arc::new(Repository::create(Arc::new(MemoryStorage::new()), b"pw", &CreateOptions::default()).unwrap());
    users::add(&repo, "alice@laptop", "alice-pw", false, false).unwrap();
    let served = serve(repo.clone());
    let dir = tempfile::tempdir().unwrap();
    let mut expected = Vec::new();
    for i in 0..700u32 {
        let body: Vec<u8> = (0..(i * 37 + 5)).map(|j| (j.wrapping_mul(131) ^ i.wrapping_mul(7)) as u8).collect();
        std::fs::write(dir.path().join(format!("f{i:03}")), &body).unwrap();
        expected.push(body);
    }
    let source = Source { host: "laptop".into(), user_name: "alice".into(), path: dir.path().display().to_string() };
    let alice = RemoteRepository::connect(&served.url, &served.fingerprint, "alice@laptop", "alice-pw").unwrap();
    let options = BackupOptions::new(dir.path().to_path_buf(), source.clone());
    let first = run_backup(&alice, options, Arc::new(Progress::default())).unwrap().snapshot;
    assert_eq!(first.stats.chunks_new, 700);
    // In batches: the 700 chunks and the folder's tree in a handful of requests (one each would be 701).
    let (requests, blobs) = alice.uploads();
    assert_eq!(blobs, 701);
    assert!(requests <= 20, "{blobs} blobs went up in {requests} requests");

    let nodes = repo.read_tree(&first.root).unwrap();
    assert_eq!(nodes.len(), 700);
    for (node, want) in nodes.iter().zip(&expected) {
        let cairn_engine::tree::NodeKind::File { content } = &node.kind else { panic!("not a file") };
        let got: Vec<u8> =
            repo.file_chunks(content).unwrap().iter().flat_map(|id| repo.read_blob(id).unwrap()).collect();
        assert_eq!(&got, want);
    }

    let options = BackupOptions::new(dir.path().to_path_buf(), source);
    let second = run_backup(&alice, options, Arc::new(Progress::default())).unwrap().snapshot;
    assert_eq!((second.stats.chunks_new, second.stats.bytes_stored), (0, 0));
    assert_eq!(alice.uploads(), (requests, blobs), "the second backup uploads nothing");
    assert_eq!(second.root, first.root);
}

/// A snapshot record is never overwritten: a user who learnt another user's snapshot id (ids are random, so
/// only through a leak) and sends a snapshot under it is refused, and the other user's record stays as it
/// was, however the snapshot passes the access rules.
#[test]
fn a_snapshot_id_that_exists_is_refused() {
    let repo = Arc::new(Repository::create(Arc::new(MemoryStorage::new()), b"pw", &CreateOptions::default()).unwrap());
    users::add(&repo, "alice@laptop", "alice-pw", false, false).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f"), b"some content").unwrap();
    let bob = Source { host: "desk".into(), user_name: "bob".into(), path: dir.path().display().to_string() };
    let bobs = run_backup(&*repo, BackupOptions::new(dir.path().to_path_buf(), bob), Arc::new(Progress::default()))
        .unwrap()
        .snapshot;
    let served = serve(repo.clone());
    let alice = RemoteRepository::connect(&served.url, &served.fingerprint, "alice@laptop", "alice-pw").unwrap();
    let source = Source { host: "laptop".into(), user_name: "alice".into(), path: dir.path().display().to_string() };
    let alices =
        run_backup(&alice, BackupOptions::new(dir.path().to_path_buf(), source), Arc::new(Progress::default()))
            .unwrap()
            .snapshot;
    let forged = Snapshot { id: bobs.id, description: "forged".into(), ..alices.clone() };
    let e = alice.write_snapshot(&forged).expect_err("an existing snapshot id must be refused");
    assert!(e.to_string().contains("exists already"), "{e}");
    // The same through a backup session, which the server commits with the snapshot.
    let session = alice.open_session(Arc::new(Progress::default())).unwrap();
    let blob = b"content only this session sends".to_vec();
    let blob_id = repo.hashing_key().content_id(&blob);
    assert_eq!(session.claim(&[blob_id]).unwrap(), vec![true]);
    session.store(raw(BlobClass::Data, blob_id, &blob)).unwrap();
    let e = session.commit(&forged).expect_err("an existing snapshot id must be refused");
    assert!(e.to_string().contains("exists already"), "{e}");
    let mut listed = repo.list_snapshots().unwrap();
    listed.sort_by_key(|s| s.source.user_name.clone());
    assert_eq!(listed, vec![alices, bobs]);
}
