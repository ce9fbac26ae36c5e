//! A restore copies a chunk that appears again from where it first wrote it, also when the content is an
//! isolated user's (named under that user's own hashing key): for the user itself through the server, for
//! an admin through the server, and for the repository's owner directly.

mod support;

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use cairn_engine::access::Access;
use cairn_engine::backup::{run_backup, BackupOptions, Progress};
use cairn_engine::format::CreateOptions;
use cairn_engine::restore::{restore, RestoreOptions, RestoreProgress};
use cairn_engine::snapshot::Source;
use cairn_engine::storage::MemoryStorage;
use cairn_engine::Repository;
use cairn_transport::client::RemoteRepository;
use cairn_transport::users;
use support::serve;

/// Restores the latest snapshot with one thread (so a file's first occurrence is written before its copy)
/// and returns the bytes copied.
fn restore_copied(access: &dyn Access, out: &Path) -> u64 {
    let snap = access.list_snapshots().unwrap().pop().expect("a snapshot");
    let options = RestoreOptions { overwrite: false, parallel: 1 };
    let summary =
        restore(access, Some(snap.root), None, out, &options, &RestoreProgress::default(), &AtomicBool::new(false))
            .unwrap();
    assert!(summary.errors.is_empty(), "{:?}", summary.errors);
    summary.copied_bytes
}

#[test]
fn isolated_content_is_copied_for_its_user_an_admin_and_the_owner() {
    let repo = Arc::new(Repository::create(Arc::new(MemoryStorage::new()), b"pw", &CreateOptions::default()).unwrap());
    users::add(&repo, "carol@iso", "carol-pw", false, true).unwrap();
    users::add(&repo, "root@ops", "root-pw", true, false).unwrap();
    let served = serve(repo.clone());

    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    let body: Vec<u8> = (0..3_000_000u32).map(|j| (j.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    std::fs::write(src.join("a"), &body).unwrap();
    std::fs::write(src.join("b"), &body).unwrap();
    let carol = RemoteRepository::connect(&served.url, &served.fingerprint, "carol@iso", "carol-pw").unwrap();
    let source = Source { host: "iso".into(), user_name: "carol".into(), path: src.display().to_string() };
    run_backup(&carol, BackupOptions::new(src.clone(), source), Arc::new(Progress::default())).unwrap();

    let root = RemoteRepository::connect(&served.url, &served.fingerprint, "root@ops", "root-pw").unwrap();
    let readers: [(&str, &dyn Access); 3] = [("carol", &carol), ("admin", &root), ("owner", repo.as_ref())];
    for (who, access) in readers {
        let out = dir.path().join(who);
        let copied = restore_copied(access, &out);
        assert_eq!(copied, body.len() as u64, "{who}: the second file is copied whole");
        for name in ["a", "b"] {
            assert!(std::fs::read(out.join(name)).unwrap() == body, "{who}: {name} differs");
        }
    }
}
