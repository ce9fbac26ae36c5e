//! One module per command group. Each takes parsed arguments, talks to the engine through
//! `cairn-transport`, and prints results (human text, or JSON with --json).

pub mod benchmark;
pub mod browse;
pub mod integrity;
pub mod maintenance;
pub mod policy;
pub mod repository;
pub mod restore;
pub mod server;
pub mod snapshot;
pub mod ui;

use cairn_engine::Access;
use std::path::PathBuf;

use anyhow::{anyhow, Result};
use cairn_engine::snapshot::{Snapshot, Source};
use cairn_engine::Repository;

use crate::args::GlobalArgs;
use crate::config::{config_path, ClientConfig};
use crate::credentials;

/// Shared context of one invocation.
pub struct Context {
    pub global: GlobalArgs,
    pub config_path: PathBuf,
}

/// Work that finished but not fully: exit code 3.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Incomplete(pub String);

impl Context {
    pub fn new(global: GlobalArgs) -> Result<Self> {
        let config_path = config_path(global.config_file.as_deref())?;
        Ok(Self { global, config_path })
    }

    pub fn load_config(&self) -> Result<ClientConfig> {
        ClientConfig::load(&self.config_path)
    }

    pub fn password(&self, config: &ClientConfig) -> Result<String> {
        credentials::password(self.global.password_file.as_deref(), Some(&self.config_path), config.persisted_password)
    }

    /// Opens the connected repository: directly, or through its repository server.
    pub fn open(&self) -> Result<(ClientConfig, Box<dyn Access>)> {
        let config = self.load_config()?;
        let access = config.storage.open_access(&self.password(&config)?)?;
        Ok((config, access))
    }

    /// Opens the connected repository's storage directly (what servers and repository management need).
    pub fn open_direct(&self) -> Result<Repository> {
        let config = self.load_config()?;
        Ok(config.storage.open(self.password(&config)?.as_bytes())?)
    }
}

/// Finds the snapshot named by `id`: a unique id prefix, or `latest` (the newest of this user@host).
pub fn find_snapshot(repo: &dyn Access, config: &ClientConfig, id: &str) -> Result<Snapshot> {
    if id == "latest" {
        let (user, host) = (config.username(), config.hostname());
        return repo
            .list_snapshots()?
            .into_iter()
            .rfind(|s| s.source.user_name == user && s.source.host == host)
            .ok_or_else(|| anyhow!("no snapshots of {user}@{host}"));
    }
    Ok(repo.find_snapshot(id)?)
}

/// Splits `ID[/path]`.
pub fn split_target(target: &str) -> (&str, &str) {
    match target.split_once('/') {
        Some((id, path)) => (id, path),
        None => (target, ""),
    }
}

/// The source a local folder is recorded under.
pub fn source_for(config: &ClientConfig, path: &std::path::Path) -> Result<Source> {
    let absolute = std::fs::canonicalize(path).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    let path = absolute.to_str().ok_or_else(|| anyhow!("{}: path is not valid UTF-8", absolute.display()))?.to_string();
    Ok(Source { host: config.hostname(), user_name: config.username(), path })
}

/// A snapshot as JSON: the stored record plus `time` (the start time, RFC 3339).
pub fn snapshot_json(snap: &Snapshot) -> serde_json::Value {
    let mut value = serde_json::to_value(snap).unwrap_or_default();
    if let Some(obj) = value.as_object_mut() {
        obj.insert("time".into(), serde_json::Value::String(snap.start_time.to_rfc3339()));
    }
    value
}
