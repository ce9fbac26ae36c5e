//! The client's connection config file: where the repository is and who this client is. It never holds
//! keys; the password is kept apart (see `credentials`).

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use cairn_transport::ConnectionConfig;
use serde::{Deserialize, Serialize};

/// Contents of `repository.config`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientConfig {
    pub storage: ConnectionConfig,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// The password was stored with --persist-credentials.
    #[serde(default)]
    pub persisted_password: bool,
}

/// The config file path: --config-file, else `$XDG_CONFIG_HOME/cairn/repository.config`, else
/// `~/.config/cairn/repository.config`.
pub fn config_path(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(path) = explicit {
        return Ok(path.to_path_buf());
    }
    let base = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => {
            PathBuf::from(std::env::var_os("HOME").ok_or_else(|| anyhow!("neither XDG_CONFIG_HOME nor HOME is set"))?)
                .join(".config")
        }
    };
    Ok(base.join("cairn").join("repository.config"))
}

impl ClientConfig {
    /// Reads the config; a missing file means "not connected".
    pub fn load(path: &Path) -> Result<ClientConfig> {
        let bytes = match fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(anyhow!(
                    "not connected to a repository ({} does not exist); use `cairn repository create` or `cairn repository connect`",
                    path.display()
                ))
            }
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let mut config: ClientConfig = serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is not a valid Cairn config file", path.display()))?;
        if let ConnectionConfig::S3 { credentials, .. } = &mut config.storage {
            *credentials = crate::credentials::stored_s3(path)?;
        }
        Ok(config)
    }

    /// Writes the config atomically with mode 0600.
    pub fn save(&self, path: &Path) -> Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let tmp = path.with_extension("config.tmp");
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("writing {}", tmp.display()))?;
        file.write_all(&serde_json::to_vec_pretty(self)?)?;
        file.sync_all()?;
        fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
        Ok(())
    }

    /// The user name snapshots are recorded under.
    pub fn username(&self) -> String {
        self.username.clone().unwrap_or_else(|| whoami::account().unwrap_or_else(|_| "unknown".into()))
    }

    /// The host name snapshots are recorded under.
    pub fn hostname(&self) -> String {
        self.hostname.clone().unwrap_or_else(|| whoami::hostname().unwrap_or_else(|_| "localhost".into()))
    }
}
