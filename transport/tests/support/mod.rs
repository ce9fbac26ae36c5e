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
