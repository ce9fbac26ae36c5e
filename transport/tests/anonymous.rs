//! Peers that connect (anyone who reaches the port can) but do not log in: the server reads no large frame
//! from them, serves a bounded number of connections (asking for address validation past a quarter of
//! them), and closes connections that do not log in after its login deadline, so anonymous peers can hold
//! neither memory nor connection places for long, while a logged-in client keeps its connection.

mod support;

use std::sync::Arc;
use std::time::Duration;

use cairn_engine::access::Access;
use cairn_engine::format::CreateOptions;
use cairn_engine::storage::MemoryStorage;
use cairn_engine::Repository;
use cairn_transport::client::RemoteRepository;
use cairn_transport::protocol::frame::{decode_body, frame_length};
use cairn_transport::protocol::{ErrorCode, Response};
use cairn_transport::server::{client_transport, CLOSE_NO_LOGIN, LOGIN_DEADLINE, MAX_CONNECTIONS};
use cairn_transport::tls::{parse_fingerprint, PinnedVerifier};
use cairn_transport::users;
use support::serve;

#[test]
fn peers_that_do_not_log_in_are_refused_large_frames_bounded_and_then_closed() {
    let repo = Arc::new(Repository::create(Arc::new(MemoryStorage::new()), b"pw", &CreateOptions::default()).unwrap());
    users::add(&repo, "alice@laptop", "alice-pw", false, false).unwrap();
    let served = serve(repo);
    let alice = RemoteRepository::connect(&served.url, &served.fingerprint, "alice@laptop", "alice-pw").unwrap();
    let addr: std::net::SocketAddr = served.url.trim_start_matches("quic://").parse().unwrap();
    let verifier = PinnedVerifier::new(parse_fingerprint(&served.fingerprint).unwrap());
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let endpoint = client_transport(verifier, addr).unwrap();
        // With alice's, the server's places fill up (past a quarter of them only after a QUIC retry, which
        // quinn's client answers by itself); one more connection is refused.
        let mut anonymous = Vec::new();
        for _ in 1..MAX_CONNECTIONS {
            anonymous.push(endpoint.connect(addr, "localhost").unwrap().await.expect("a place is free"));
        }
        let refused = endpoint.connect(addr, "localhost").unwrap().await;
        assert!(refused.is_err(), "connection {} should be refused", MAX_CONNECTIONS + 1);

        // A frame announcing 1 MiB, of which only the length goes out: answered at once, body unread.
        let conn = &anonymous[0];
        let (mut send, mut recv) = conn.open_bi().await.unwrap();
        send.write_all(&(1u32 << 20).to_le_bytes()).await.unwrap();
        let mut prefix = [0u8; 4];
        recv.read_exact(&mut prefix).await.unwrap();
        let mut body = vec![0u8; frame_length(prefix).unwrap()];
        recv.read_exact(&mut body).await.unwrap();
        match decode_body::<Response<'_>>(&body).unwrap() {
            Response::Error { code, message } => {
                assert_eq!(code, ErrorCode::NotAuthenticated);
                assert_eq!(message, "log in first");
            }
            other => panic!("unexpected reply {other:?}"),
        }
        // Then the server closes every anonymous connection once its login deadline has passed.
        for conn in &anonymous {
            let closed = tokio::time::timeout(LOGIN_DEADLINE + Duration::from_secs(20), conn.closed()).await;
            match closed.expect("the server should close a connection that never logs in") {
                quinn::ConnectionError::ApplicationClosed(close) => {
                    assert_eq!(u64::from(close.error_code), u64::from(CLOSE_NO_LOGIN));
                    assert_eq!(&close.reason[..], b"log in first");
                }
                other => panic!("closed otherwise: {other}"),
            }
        }
    });
    // Alice's connection is still served, and the places are free again.
    assert!(alice.list_snapshots().unwrap().is_empty());
    let bob = RemoteRepository::connect(&served.url, &served.fingerprint, "alice@laptop", "alice-pw");
    assert!(bob.is_ok(), "a place should be free once the anonymous connections are closed");
}
