//! Peers that connect (the certificate is public) but do not log in: the server reads no large frame from
//! them and closes their connection after its login deadline, so anonymous peers can hold neither memory
//! nor connection places.

mod support;

use std::sync::Arc;
use std::time::Duration;

use cairn_engine::format::CreateOptions;
use cairn_engine::storage::MemoryStorage;
use cairn_engine::Repository;
use cairn_transport::protocol::frame::{decode_body, frame_length};
use cairn_transport::protocol::{ErrorCode, Response};
use cairn_transport::server::{client_transport, LOGIN_DEADLINE};
use cairn_transport::tls::{parse_fingerprint, PinnedVerifier};
use support::serve;

#[test]
fn a_peer_that_does_not_log_in_is_refused_large_frames_and_then_closed() {
    let repo = Arc::new(Repository::create(Arc::new(MemoryStorage::new()), b"pw", &CreateOptions::default()).unwrap());
    let served = serve(repo);
    let addr: std::net::SocketAddr = served.url.trim_start_matches("quic://").parse().unwrap();
    let verifier = PinnedVerifier::new(parse_fingerprint(&served.fingerprint).unwrap());
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let endpoint = client_transport(verifier, addr).unwrap();
        let conn = endpoint.connect(addr, "localhost").unwrap().await.unwrap();
        // A frame announcing 1 MiB, of which only the length goes out: answered at once, body unread.
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
        // Then the server closes the connection, with code 1, once its login deadline has passed.
        let closed = tokio::time::timeout(LOGIN_DEADLINE + Duration::from_secs(20), conn.closed()).await;
        match closed.expect("the server should close a connection that never logs in") {
            quinn::ConnectionError::ApplicationClosed(close) => {
                assert_eq!(u64::from(close.error_code), 1);
                assert_eq!(&close.reason[..], b"log in first");
            }
            other => panic!("closed otherwise: {other}"),
        }
    });
}
