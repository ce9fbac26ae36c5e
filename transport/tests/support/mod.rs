//! A repository server on loopback, run in this process for the transport's integration tests.

use std::sync::Arc;

use cairn_engine::Repository;
use cairn_transport::server;
use cairn_transport::tls::ServerIdentity;

/// A running server; stopped when dropped.
pub struct Served {
    pub url: String,
    pub fingerprint: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Serves `repo` on a free loopback port with a fresh certificate.
pub fn serve(repo: Arc<Repository>) -> Served {
    let identity = ServerIdentity::generate(&["localhost".to_string()]).unwrap();
    let fingerprint = identity.fingerprint();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (bound_tx, bound_rx) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        runtime.block_on(async move {
            let endpoint = server::server_endpoint("127.0.0.1:0".parse().unwrap(), &identity).unwrap();
            bound_tx.send(endpoint.local_addr().unwrap()).unwrap();
            server::serve(endpoint, repo, async move {
                let _ = stopped.await;
            })
            .await;
        });
    });
    let addr = bound_rx.recv().unwrap();
    Served { url: format!("quic://{addr}"), fingerprint, stop: Some(stop), thread: Some(thread) }
}

/// A snapshot record of `source` with root `root`, as a client would commit it (not every test uses it).
#[allow(dead_code)]
pub fn snapshot_of(
    source: &cairn_engine::snapshot::Source,
    root: cairn_engine::ids::ContentId,
) -> cairn_engine::snapshot::Snapshot {
    cairn_engine::snapshot::Snapshot {
        id: cairn_engine::ids::SnapshotId::random(),
        source: source.clone(),
        start_time: chrono::Utc::now(),
        end_time: chrono::Utc::now(),
        root,
        tags: Default::default(),
        description: String::new(),
        parent: None,
        stats: Default::default(),
        incomplete: false,
        error_messages: Vec::new(),
        tenant: None,
    }
}

/// A blob to store as its plaintext, uncompressed (not every test uses it).
#[allow(dead_code)]
pub fn raw(
    class: cairn_engine::crypto::keys::BlobClass,
    id: cairn_engine::ids::ContentId,
    plaintext: &[u8],
) -> cairn_engine::access::PreparedBlob<'_> {
    cairn_engine::access::PreparedBlob {
        class,
        id,
        plaintext,
        compression: cairn_engine::compress::Compression::None,
        compressed: &[],
    }
}
