//! Content reads through a real server on loopback follow the ACL: a user reads a blob only when it is
//! reachable from a snapshot that user may read. Batched reads (`ReadBlobs`) obey the same rule as single
//! ones, and return exactly what was stored.

mod support;

use std::sync::Arc;

use cairn_engine::access::Access;
use cairn_engine::backup::{run_backup, BackupOptions, Progress};
use cairn_engine::format::CreateOptions;
use cairn_engine::ids::ContentId;
use cairn_engine::snapshot::{Snapshot, Source};
use cairn_engine::storage::MemoryStorage;
use cairn_engine::tree::NodeKind;
use cairn_engine::Repository;
use cairn_transport::client::RemoteRepository;
use cairn_transport::users;
use support::{raw, serve, snapshot_of};

fn backup(client: &RemoteRepository, dir: &std::path::Path, user: &str, host: &str) -> Snapshot {
    let source = Source { host: host.into(), user_name: user.into(), path: dir.display().to_string() };
    run_backup(client, BackupOptions::new(dir.to_path_buf(), source), Arc::new(Progress::default())).unwrap().snapshot
}

/// Every chunk id of every file in a folder tree.
fn chunks_of(access: &dyn Access, root: &ContentId) -> Vec<ContentId> {
    let mut out = Vec::new();
    for node in access.read_tree(root).unwrap() {
        match &node.kind {
            NodeKind::File { content } => out.extend(access.file_chunks(content).unwrap()),
            NodeKind::Dir { tree } => out.extend(chunks_of(access, tree)),
            _ => {}
        }
    }
    out
}

#[test]
fn blob_reads_follow_snapshot_reachability() {
    let repo = Arc::new(Repository::create(Arc::new(MemoryStorage::new()), b"pw", &CreateOptions::default()).unwrap());
    users::add(&repo, "alice@laptop", "alice-pw", false, false).unwrap();
    users::add(&repo, "bob@desk", "bob-pw", false, false).unwrap();
    let served = serve(repo.clone());

    let dir = tempfile::tempdir().unwrap();
    let mut expected = Vec::new();
    for i in 0..40u32 {
        let body: Vec<u8> = (0..(i * 997 + 13)).map(|j| (j.wrapping_mul(31) ^ i) as u8).collect();
        std::fs::write(dir.path().join(format!("f{i:02}")), &body).unwrap();
        expected.push(body);
    }
    let alice = RemoteRepository::connect(&served.url, &served.fingerprint, "alice@laptop", "alice-pw").unwrap();
    let snap = backup(&alice, dir.path(), "alice", "laptop");

    // Alice reads her files back in one batch, byte for byte, in the order asked.
    let alice = RemoteRepository::connect(&served.url, &served.fingerprint, "alice@laptop", "alice-pw").unwrap();
    assert_eq!(alice.list_snapshots().unwrap().len(), 1);
    let ids = chunks_of(&alice, &snap.root);
    assert_eq!(ids.len(), 40);
    let mut wanted = ids.clone();
    wanted.reverse();
    let got = alice.read_blobs(&wanted).unwrap();
    let mut want = expected.clone();
    want.reverse();
    assert_eq!(got, want);

    // Bob knows the ids but reaches none of them: single and batched reads are refused.
    let bob = RemoteRepository::connect(&served.url, &served.fingerprint, "bob@desk", "bob-pw").unwrap();
    assert!(bob.list_snapshots().unwrap().is_empty());
    for result in
        [bob.read_blob(&snap.root).map(|_| ()), bob.read_blobs(&ids).map(|_| ()), bob.read_blobs(&ids[..1]).map(|_| ())]
    {
        let e = result.expect_err("bob must not read alice's content");
        assert!(matches!(e, cairn_engine::Error::Denied(_)), "{e}");
    }
    // Not even mixed into a batch with a blob he may read.
    let bob_dir = tempfile::tempdir().unwrap();
    std::fs::write(bob_dir.path().join("mine"), b"bob's own bytes").unwrap();
    let bob_snap = backup(&bob, bob_dir.path(), "bob", "desk");
    let bob = RemoteRepository::connect(&served.url, &served.fingerprint, "bob@desk", "bob-pw").unwrap();
    bob.list_snapshots().unwrap();
    let own = chunks_of(&bob, &bob_snap.root);
    assert_eq!(bob.read_blobs(&own).unwrap(), vec![b"bob's own bytes".to_vec()]);
    let e = bob.read_blobs(&[own[0], ids[3]]).expect_err("mixed batch");
    assert!(matches!(e, cairn_engine::Error::Denied(_)), "{e}");
}

/// An isolated user's content is named under its own hashing key. An admin reads it through the server
/// (its client fetches the isolated users' keys to check the content); nobody else may fetch those keys.
#[test]
fn admin_reads_isolated_content_and_only_admins_get_tenant_keys() {
    let repo = Arc::new(Repository::create(Arc::new(MemoryStorage::new()), b"pw", &CreateOptions::default()).unwrap());
    users::add(&repo, "carol@iso", "carol-pw", false, true).unwrap();
    users::add(&repo, "root@ops", "root-pw", true, false).unwrap();
    users::add(&repo, "dave@desk", "dave-pw", false, false).unwrap();
    let served = serve(repo.clone());

    let dir = tempfile::tempdir().unwrap();
    let body: Vec<u8> = (0..300_000u32).map(|j| (j.wrapping_mul(7919) >> 3) as u8).collect();
    std::fs::write(dir.path().join("data"), &body).unwrap();
    let carol = RemoteRepository::connect(&served.url, &served.fingerprint, "carol@iso", "carol-pw").unwrap();
    let snap = backup(&carol, dir.path(), "carol", "iso");

    let root = RemoteRepository::connect(&served.url, &served.fingerprint, "root@ops", "root-pw").unwrap();
    assert_eq!(root.tenant_keys().unwrap().len(), 1);
    let ids = chunks_of(&root, &snap.root);
    let got: Vec<u8> = root.read_blobs(&ids).unwrap().concat();
    assert_eq!(got, body);

    for (user, pw) in [("dave@desk", "dave-pw"), ("carol@iso", "carol-pw")] {
        let other = RemoteRepository::connect(&served.url, &served.fingerprint, user, pw).unwrap();
        let e = other.tenant_keys().expect_err("only admins get tenant keys");
        assert!(matches!(e, cairn_engine::Error::Denied(_)), "{user}: {e}");
    }
}

/// A user who knows the ids of another user's content (but not the content) cannot make the server hand it
/// over: not by uploading a chunk list that names them and reading through it, not by a snapshot whose root
/// is the other user's tree, not by a wrong proof of possession, not by holding a tree's bytes as data.
/// Holding the same content still deduplicates, on the wire too: the user proves it holds it (a keyed hash,
/// no content sent), the repository keeps one copy, and the user restores it.
#[test]
fn forged_references_grant_nothing_and_shared_content_still_deduplicates() {
    use cairn_engine::crypto::keys::BlobClass;
    use cairn_engine::tree::ChunkList;

    let repo = Arc::new(Repository::create(Arc::new(MemoryStorage::new()), b"pw", &CreateOptions::default()).unwrap());
    users::add(&repo, "alice@laptop", "alice-pw", false, false).unwrap();
    users::add(&repo, "bob@desk", "bob-pw", false, false).unwrap();
    let served = serve(repo.clone());
    let key = repo.hashing_key().clone();

    // Several chunks, more than the server reads at once to check proofs (1 MiB).
    let mut secret = vec![0u8; 3_000_000];
    blake3::Hasher::new().update(b"alice's secret").finalize_xof().fill(&mut secret);
    let alice_dir = tempfile::tempdir().unwrap();
    std::fs::write(alice_dir.path().join("secret"), &secret).unwrap();
    let alice = RemoteRepository::connect(&served.url, &served.fingerprint, "alice@laptop", "alice-pw").unwrap();
    let alice_snap = backup(&alice, alice_dir.path(), "alice", "laptop");
    let alice = RemoteRepository::connect(&served.url, &served.fingerprint, "alice@laptop", "alice-pw").unwrap();
    alice.list_snapshots().unwrap();
    let secret_ids = chunks_of(&alice, &alice_snap.root);
    assert!(secret_ids.len() > 2, "{} chunks", secret_ids.len());

    let bob_source = Source { host: "desk".into(), user_name: "bob".into(), path: "/forged".into() };
    let forged = |root| snapshot_of(&bob_source, root);
    let list = ChunkList { level: 0, ids: secret_ids.clone() }.encode();
    let list_id = key.content_id(&list);
    let denied = |e: cairn_engine::Error| assert!(matches!(e, cairn_engine::Error::Denied(_)), "{e}");

    // A chunk list naming Alice's chunks: a snapshot of it is refused while the chunks it names have not
    // arrived, and they stay unreadable.
    let bob = RemoteRepository::connect(&served.url, &served.fingerprint, "bob@desk", "bob-pw").unwrap();
    let session = bob.open_session(Arc::new(Progress::default())).unwrap();
    assert_eq!(session.claim(&[list_id]).unwrap(), vec![true]);
    session.store(raw(BlobClass::Metadata, list_id, &list)).unwrap();
    let e = session.commit(&forged(list_id)).expect_err("a list naming another user's chunks");
    assert!(e.to_string().contains("was never sent"), "{e}");
    denied(bob.read_blobs(&secret_ids).expect_err("still unreadable"));

    // Claiming them: Bob is asked to prove he holds them (the repository has them, not for him), so his
    // client will not compress them; new content it must send. A proof made from other bytes is refused,
    // with an answer that names no blob, and no proof of its request takes effect: a right proof of another
    // id sent with it grants nothing either (what the user may read afterwards never tells which check
    // failed).
    let bob = RemoteRepository::connect(&served.url, &served.fingerprint, "bob@desk", "bob-pw").unwrap();
    let session = bob.open_session(Arc::new(Progress::default())).unwrap();
    let fresh = key.content_id(b"bob's own bytes");
    let mut asked = secret_ids.clone();
    asked.push(fresh);
    assert!(session.claim(&asked).unwrap().iter().all(|missing| *missing), "asked for what he cannot read");
    assert!(secret_ids.iter().all(|id| session.proves(id)), "proofs, not chunks");
    assert!(!session.proves(&fresh), "new content is sent");
    // The right proof goes first and is of the blob stored first, so checking in either order meets it
    // before the wrong one.
    let offset = |id: &ContentId| repo.index().get(id).unwrap().offset;
    let (right_id, wrong_id) = match offset(&secret_ids[0]) < offset(&secret_ids[1]) {
        true => (secret_ids[0], secret_ids[1]),
        false => (secret_ids[1], secret_ids[0]),
    };
    let right = repo.read_blob(&right_id).unwrap();
    session.store(raw(BlobClass::Data, right_id, &right)).unwrap();
    let len = repo.blob_sizes(&[wrong_id]).unwrap()[0].unwrap() as usize;
    let guess = vec![b'?'; len];
    session.store(raw(BlobClass::Data, wrong_id, &guess)).unwrap();
    let e = session.commit(&forged(list_id)).expect_err("a wrong proof");
    assert!(e.to_string().contains("a proof of possession does not match"), "{e}");
    assert!(secret_ids.iter().all(|id| !e.to_string().contains(&id.to_string())), "names a blob: {e}");
    denied(bob.read_blobs(&[right_id]).expect_err("the right proof took no effect"));
    denied(bob.read_blobs(&secret_ids).expect_err("still unreadable"));

    // Alice's root tree as the root of a snapshot of Bob's.
    let bob = RemoteRepository::connect(&served.url, &served.fingerprint, "bob@desk", "bob-pw").unwrap();
    let session = bob.open_session(Arc::new(Progress::default())).unwrap();
    denied(session.commit(&forged(alice_snap.root)).expect_err("another user's root"));
    assert!(repo.list_snapshots().unwrap().iter().all(|s| s.source.user_name == "alice"));

    // Bob holding the same bytes backs them up: he proves he holds them, sends no chunk, and the
    // repository keeps one copy.
    let stored_before: u64 = repo.storage().list("p").unwrap().iter().map(|b| b.size).sum();
    let bob_dir = tempfile::tempdir().unwrap();
    std::fs::write(bob_dir.path().join("same"), &secret).unwrap();
    let bob = RemoteRepository::connect(&served.url, &served.fingerprint, "bob@desk", "bob-pw").unwrap();
    let bob_snap = backup(&bob, bob_dir.path(), "bob", "desk");
    assert!(bob_snap.stats.bytes_stored < 1000, "only his folder's tree is sent: {:?}", bob_snap.stats);
    let stored_after: u64 = repo.storage().list("p").unwrap().iter().map(|b| b.size).sum();
    assert_eq!(stored_after, stored_before, "no data stored twice");
    let bob = RemoteRepository::connect(&served.url, &served.fingerprint, "bob@desk", "bob-pw").unwrap();
    bob.list_snapshots().unwrap();
    let ids = chunks_of(&bob, &bob_snap.root);
    assert_eq!(bob.read_blobs(&ids).unwrap().concat(), secret);

    // A tree's bytes sent (here: proven) as data, to slip past the checks trees get, pay for no tree: Alice
    // holding Bob's folder tree as data cannot make it her snapshot's root.
    let tree = repo.read_blob(&bob_snap.root).unwrap();
    let alice = RemoteRepository::connect(&served.url, &served.fingerprint, "alice@laptop", "alice-pw").unwrap();
    let session = alice.open_session(Arc::new(Progress::default())).unwrap();
    assert_eq!(session.claim(&[bob_snap.root]).unwrap(), vec![true]);
    session.store(raw(BlobClass::Data, bob_snap.root, &tree)).unwrap();
    let alice_source = Source { host: "laptop".into(), user_name: "alice".into(), path: "/relabelled".into() };
    let relabelled = snapshot_of(&alice_source, bob_snap.root);
    denied(session.commit(&relabelled).expect_err("a tree held only as data"));
}

/// A zstd payload must be smaller than its plaintext (Cairn stores a blob raw otherwise): a client cannot
/// make the repository store and read back a chunk inflated with padding frames.
#[test]
fn inflated_compressed_payloads_are_refused() {
    use cairn_engine::access::PreparedBlob;
    use cairn_engine::compress::Compression;
    use cairn_engine::crypto::keys::BlobClass;

    let repo = Arc::new(Repository::create(Arc::new(MemoryStorage::new()), b"pw", &CreateOptions::default()).unwrap());
    users::add(&repo, "alice@laptop", "alice-pw", false, false).unwrap();
    let served = serve(repo.clone());
    let plaintext = vec![b'a'; 100];
    let mut padded = Vec::new();
    assert_eq!(cairn_engine::compress::compress_into(3, &plaintext, &mut padded), Compression::Zstd);
    // A skippable frame: magic 0x184D2A50, a length, that many bytes ignored by the decoder.
    padded.extend_from_slice(&0x184D_2A50u32.to_le_bytes());
    padded.extend_from_slice(&1000u32.to_le_bytes());
    padded.extend_from_slice(&[0; 1000]);
    let unpacked = cairn_engine::compress::decompress(Compression::Zstd, &padded, plaintext.len(), "t").unwrap();
    assert_eq!(unpacked, plaintext, "a valid zstd stream");
    let id = repo.hashing_key().content_id(&plaintext);
    let alice = RemoteRepository::connect(&served.url, &served.fingerprint, "alice@laptop", "alice-pw").unwrap();
    let session = alice.open_session(Arc::new(Progress::default())).unwrap();
    assert_eq!(session.claim(&[id]).unwrap(), vec![true]);
    let blob = PreparedBlob {
        class: BlobClass::Data,
        id,
        plaintext: &plaintext,
        compression: Compression::Zstd,
        compressed: &padded,
    };
    session.store(blob).unwrap();
    let source = Source { host: "laptop".into(), user_name: "alice".into(), path: "/padded".into() };
    let e = session.commit(&snapshot_of(&source, id)).expect_err("an inflated payload");
    assert!(e.to_string().contains("not smaller than its plaintext"), "{e}");
    assert!(!repo.index().contains(&id), "nothing stored");
}
