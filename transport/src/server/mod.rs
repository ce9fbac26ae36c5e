//! The QUIC repository server: accepts clients that pin its certificate, authenticates users stored in the
//! repository, and serves the protocol of `crate::protocol` under the rules of `crate::acl`. Clients
//! chunk, hash and compress; the server checks every blob against its id, then encrypts and packs it
//! (through the same `LocalSession` a standalone backup uses). Blocking engine work runs on tokio's
//! blocking pool; per connection, request bodies and replies in memory are bounded by [`CONNECTION_BUDGET`], plaintexts
//! being checked by [`PLAINTEXT_BUDGET`].

mod connection;
mod endpoint;

use std::future::Future;
use std::io::Write;
use std::sync::Arc;

use cairn_engine::Repository;
pub use connection::{CLOSE_NO_LOGIN, LOGIN_DEADLINE};
pub use endpoint::{client_transport, server_endpoint, transport_config};

use crate::ratelimit::LoginLimiter;

/// Bytes one connection may hold in memory at once for request bodies and read replies (each reply twice:
/// the blobs read and the encoded frame).
pub const CONNECTION_BUDGET: usize = 12 << 20;
/// Bytes of uploaded plaintext one connection may hold at once while it is checked (a single larger blob
/// takes all of it, so it is checked alone). Kept apart from
/// [`CONNECTION_BUDGET`] so that an upload holding its body never waits for budget that only other bodies
/// hold. Together with QUIC's receive and send windows ([`transport_config`], 8 MiB each) the bound per
/// client is 32 MiB, plus the shared index and the pack session of a connection that is backing up.
pub const PLAINTEXT_BUDGET: usize = 4 << 20;

/// Threads for blocking work (verifying, packing, reading storage), shared by all connections: enough to
/// keep storage busy, few enough that per-thread allocator arenas do not multiply memory.
pub const BLOCKING_THREADS: usize = 32;

/// What every connection shares.
pub struct ServerContext {
    pub repo: Arc<Repository>,
    pub limiter: LoginLimiter,
}

/// Most connections served at once, handshakes included (each within its memory budget,
/// [`CONNECTION_BUDGET`] and [`PLAINTEXT_BUDGET`]); more are refused until one ends. A handshake, and then a
/// login, must each finish within [`LOGIN_DEADLINE`], so a peer that does not log in holds a place for at
/// most twice that; one that reconnects again and again can still hold places (docs/PROTOCOL.md).
pub const MAX_CONNECTIONS: usize = 256;
/// Past this many connections, a new one must first prove its address (a QUIC retry, one round trip), so
/// packets with forged source addresses cannot take the places.
const VALIDATE_ADDRESSES_FROM: usize = MAX_CONNECTIONS / 4;
/// Refused connections are logged at most this often (a flood would otherwise flood the log).
const REFUSAL_LOG_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

/// Serves connections until `shutdown` resolves, then closes the endpoint and waits for connections to
/// end (their unfinished backups are dropped: packs without a snapshot, the repository stays consistent).
pub async fn serve(endpoint: quinn::Endpoint, repo: Arc<Repository>, shutdown: impl Future<Output = ()>) {
    let ctx = Arc::new(ServerContext { repo, limiter: LoginLimiter::default() });
    let mut tasks = tokio::task::JoinSet::new();
    let (mut refused, mut refusal_logged) = (0u64, None::<std::time::Instant>);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            incoming = endpoint.accept() => {
                let Some(incoming) = incoming else { break };
                if tasks.len() >= MAX_CONNECTIONS {
                    refused += 1;
                    if refusal_logged.is_none_or(|t| t.elapsed() >= REFUSAL_LOG_INTERVAL) {
                        tracing::warn!("{MAX_CONNECTIONS} connections are open: refused {refused} (the latest from {})", incoming.remote_address());
                        (refused, refusal_logged) = (0, Some(std::time::Instant::now()));
                    }
                    incoming.refuse();
                    continue;
                }
                if tasks.len() >= VALIDATE_ADDRESSES_FROM && !incoming.remote_address_validated() {
                    // The peer comes back with a token that proves its address, as a new `Incoming`.
                    let _ = incoming.retry();
                    continue;
                }
                let ctx = ctx.clone();
                tasks.spawn(async move {
                    match tokio::time::timeout(LOGIN_DEADLINE, incoming).await {
                        Ok(Ok(conn)) => connection::handle(ctx, conn).await,
                        Ok(Err(e)) => tracing::info!("handshake failed: {e}"),
                        Err(_) => tracing::info!("handshake not finished within {LOGIN_DEADLINE:?}"),
                    }
                });
            }
            _ = &mut shutdown => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
    endpoint.close(0u32.into(), b"server shutting down");
    while tasks.join_next().await.is_some() {}
    endpoint.wait_idle().await;
}

/// Errors starting the server.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error("starting the network runtime: {0}")]
    Runtime(std::io::Error),
}

/// What ends a running server.
#[derive(Clone, Copy, Debug)]
pub struct Shutdown {
    /// Also stop when standard input reaches end of file (for launchers that hold it open).
    pub on_stdin_close: bool,
}

/// Resolves when the process is asked to stop: Ctrl-C, SIGTERM, or (optionally) stdin closing, and says
/// which on stderr.
pub async fn shutdown_signal(shutdown: Shutdown) {
    let stdin_closed = async {
        if !shutdown.on_stdin_close {
            return std::future::pending::<()>().await;
        }
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let spawned = std::thread::Builder::new().name("cairn-stdin".into()).spawn(move || {
            let mut sink = [0u8; 4096];
            let mut stdin = std::io::stdin().lock();
            while matches!(std::io::Read::read(&mut stdin, &mut sink), Ok(n) if n > 0) {}
            let _ = tx.send(());
        });
        if spawned.is_ok() {
            let _ = rx.await;
        } else {
            std::future::pending::<()>().await
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    let reason = tokio::select! {
        _ = stdin_closed => "Standard input closed",
        _ = tokio::signal::ctrl_c() => "Interrupted",
        _ = terminate => "Terminated",
    };
    // Not `eprintln!`, which panics when standard error is gone too (a launcher that exited closes both).
    let _ = writeln!(std::io::stderr(), "{reason}: shutting down.");
}

/// Binds the repository server, reports the bound address through `on_bound`, and serves until shutdown.
pub fn run(
    repo: Arc<Repository>,
    listen: std::net::SocketAddr,
    identity: &crate::tls::ServerIdentity,
    shutdown: Shutdown,
    on_bound: impl FnOnce(std::net::SocketAddr),
) -> Result<(), ServeError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .max_blocking_threads(BLOCKING_THREADS)
        .enable_all()
        .build()
        .map_err(ServeError::Runtime)?;
    runtime.block_on(async {
        let endpoint = server_endpoint(listen, identity)?;
        let bound = endpoint.local_addr().map_err(ServeError::Runtime)?;
        on_bound(bound);
        serve(endpoint, repo, shutdown_signal(shutdown)).await;
        Ok(())
    })
}
