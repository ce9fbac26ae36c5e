//! The UI server: what a desktop launcher starts to give a person a UI for this machine's backups. A
//! local HTTPS API (`/api/v1/`, see `docs/api/openapi.yaml`) and an embedded web page, behind one-time
//! credentials; tasks (snapshot, restore, maintenance) run in the background with live progress, and a
//! scheduler takes snapshots and applies retention as the repository's policies say.
//!
//! Layout: [`auth`] (credentials, session cookies, CSRF), [`listen`] (TCP or a private Unix socket),
//! [`server`] (TLS and HTTP), [`api`] (routes),
//! [`app`] (shared state and actions), [`tasks`] (threads, progress, logs), [`jobs`] (the blocking work),
//! [`schedule`] (the background loop), [`assets`] (the page), [`http`] (JSON answers and errors).

pub mod api;
pub mod app;
pub mod assets;
pub mod auth;
pub mod http;
pub mod jobs;
pub mod listen;
pub mod schedule;
pub mod server;
pub mod tasks;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use cairn_engine::Repository;

pub use app::LocalIdentity;
pub use listen::ListenAddress;
pub use server::UiServer;

use crate::tls::{self, ServerIdentity};

/// Errors starting the UI server.
#[derive(Debug, thiserror::Error)]
pub enum UiError {
    #[error("cannot listen: {0}")]
    Bind(#[source] std::io::Error),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error(transparent)]
    Auth(#[from] auth::AuthError),
    #[error("unsafe socket location: {0}")]
    SocketDir(String),
}

/// How to run the UI server.
pub struct UiConfig {
    pub repo: Arc<Repository>,
    /// Where the repository is, for the status page.
    pub location: String,
    pub identity: LocalIdentity,
    pub username: String,
    pub password: String,
    /// `--auth-cookie-signing-key`; random per run when `None`.
    pub cookie_signing_key: Option<String>,
    /// Seconds between quick maintenance runs (`None`: never).
    pub maintenance_interval: Option<u64>,
    /// One log file per task goes here (`None`: logs are kept in memory only).
    pub log_dir: Option<PathBuf>,
}

/// Binds `addr` (a TCP address or a private Unix socket) and prepares the server. `tls` is the certificate
/// to serve HTTPS with; `None` serves plain HTTP, which the caller must only allow when the user asked for
/// it (`--insecure`).
pub fn bind(addr: &ListenAddress, tls: Option<&ServerIdentity>, config: UiConfig) -> Result<UiServer, UiError> {
    let tls = match tls {
        Some(identity) => {
            let mut cfg = tls::server_config(identity, b"h2")?;
            cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
            Some(Arc::new(cfg))
        }
        None => None,
    };
    let auth =
        auth::Auth::new(&config.username, &config.password, config.cookie_signing_key.as_deref(), tls.is_some())?;
    let listener = listen::bind(addr)?;
    let schedule = app::ScheduleState { last_maintenance: Some(chrono::Utc::now()), ..Default::default() };
    let app = Arc::new(app::App {
        repo: config.repo,
        auth,
        tasks: Arc::new(tasks::Tasks::new(config.log_dir)),
        identity: config.identity,
        location: config.location,
        maintenance_interval: config.maintenance_interval,
        schedule: Mutex::new(schedule),
        index_guard: std::sync::RwLock::new(()),
    });
    Ok(UiServer::new(listener, tls, app))
}

/// The default log folder: `$XDG_CACHE_HOME/cairn/logs`, else `~/.cache/cairn/logs`.
pub fn default_log_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("cairn").join("logs"))
}
