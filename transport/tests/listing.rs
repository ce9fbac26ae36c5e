//! Listing snapshots through a server: the records come in pages, so a listing larger than one frame
//! arrives whole and in order.

mod support;

use std::sync::Arc;

use cairn_engine::access::Access;
use cairn_engine::format::CreateOptions;
use cairn_engine::ids::ContentId;
use cairn_engine::snapshot::{Snapshot, Source};
use cairn_engine::storage::MemoryStorage;
use cairn_engine::Repository;
use cairn_transport::client::RemoteRepository;
use cairn_transport::protocol::MAX_FRAME_BYTES;
use cairn_transport::users;
use support::{serve, snapshot_of};

#[test]
fn a_listing_larger_than_a_frame_arrives_whole_in_pages() {
    let repo = Arc::new(Repository::create(Arc::new(MemoryStorage::new()), b"pw", &CreateOptions::default()).unwrap());
    users::add(&repo, "alice@laptop", "alice-pw", false, false).unwrap();
    let mine = Source { host: "laptop".into(), user_name: "alice".into(), path: "/data".into() };
    let theirs = Source { host: "desk".into(), user_name: "bob".into(), path: "/data".into() };
    // Twelve records of 1.5 MiB each (18 MiB, more than one frame holds), and one of another user's.
    let mut expected: Vec<Snapshot> = (0..12u8)
        .map(|i| Snapshot {
            description: char::from(b'a' + i).to_string().repeat(3 << 19),
            ..snapshot_of(&mine, ContentId([i; 32]))
        })
        .collect();
    let total: usize = expected.iter().map(|s| s.description.len()).sum();
    assert!(total > MAX_FRAME_BYTES);
    for s in &expected {
        repo.write_snapshot(s).unwrap();
    }
    repo.write_snapshot(&snapshot_of(&theirs, ContentId([99; 32]))).unwrap();
    let served = serve(repo.clone());
    let alice = RemoteRepository::connect(&served.url, &served.fingerprint, "alice@laptop", "alice-pw").unwrap();
    let listed = alice.list_snapshots().unwrap();
    expected.sort_by_key(|s| (s.start_time, s.id));
    assert_eq!(listed, expected);
}
