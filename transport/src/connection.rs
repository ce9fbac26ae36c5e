//! Connection settings, as kept in the client's config file, and opening a repository from them.

use std::path::PathBuf;
use std::sync::Arc;

use cairn_engine::format::CreateOptions;
use cairn_engine::storage::s3::S3Credentials;
use cairn_engine::storage::{
    Backoff, CacheStorage, FsStorage, LimitStorage, RetryStorage, S3Config, S3Storage, Storage, StorageError,
};
use cairn_engine::Repository;
use serde::{Deserialize, Serialize};

/// Where the repository is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ConnectionConfig {
    /// A repository in a local (or mounted) folder.
    Filesystem { path: PathBuf },
    /// A repository server, reached over QUIC and pinned by its certificate's SHA-256 fingerprint. The
    /// client holds no repository key: the server sends the hashing key after login.
    Server { url: String, fingerprint: String, username: String },
    /// A repository in an S3-compatible bucket. Credentials are never written to the config file: they come
    /// from the AWS environment variables, or are filled in by the client from where it keeps them.
    S3 {
        bucket: String,
        #[serde(default, skip_serializing_if = "String::is_empty")]
        prefix: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        endpoint: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        region: Option<String>,
        #[serde(skip)]
        credentials: Option<S3Credentials>,
    },
}

fn s3_config(
    bucket: &str,
    prefix: &str,
    endpoint: &Option<String>,
    region: &Option<String>,
    credentials: &Option<S3Credentials>,
) -> S3Config {
    let mut config = S3Config::new(bucket);
    config.prefix = prefix.to_string();
    config.endpoint = endpoint.clone();
    config.region = region.clone();
    config.credentials = credentials.clone();
    config
}

/// The local cache folder of a remote repository: `$XDG_CACHE_HOME/cairn/<hash of its location>` (or
/// `~/.cache/...`); `None` when neither variable is set, and the repository is then used without a cache.
fn metadata_cache_dir(location: &str) -> Option<PathBuf> {
    let base = match std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").filter(|v| !v.is_empty())?).join(".cache"),
    };
    let hash = blake3::hash(location.as_bytes()).to_hex();
    Some(base.join("cairn").join(format!("remote-{}", &hash[..16])))
}

/// Errors opening a connection.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    #[error(transparent)]
    Engine(#[from] cairn_engine::Error),
    #[error("cannot open storage: {0}")]
    Storage(#[from] StorageError),
}

impl ConnectionConfig {
    /// One line describing the repository's location.
    pub fn describe(&self) -> String {
        match self {
            ConnectionConfig::Filesystem { path } => format!("filesystem {}", path.display()),
            ConnectionConfig::S3 { bucket, prefix, endpoint, region, .. } => {
                s3_config(bucket, prefix, endpoint, region, &None).describe()
            }
            ConnectionConfig::Server { url, username, .. } => format!("server {url} as {username}"),
        }
    }

    /// Opens the repository for commands: directly, or through the server (where `password` is the user's
    /// server password).
    pub fn open_access(&self, password: &str) -> Result<Box<dyn cairn_engine::Access>, ConnectionError> {
        match self {
            ConnectionConfig::Server { url, fingerprint, username } => {
                Ok(Box::new(crate::client::RemoteRepository::connect(url, fingerprint, username, password)?))
            }
            _ => Ok(Box::new(self.open(password.as_bytes())?)),
        }
    }

    fn storage(&self, create: bool) -> Result<Arc<dyn Storage>, ConnectionError> {
        match self {
            ConnectionConfig::Filesystem { path } => {
                let storage = if create { FsStorage::create(path)? } else { FsStorage::open(path)? };
                Ok(Arc::new(storage))
            }
            ConnectionConfig::Server { url, .. } => Err(cairn_engine::Error::InvalidArgument(format!(
                "{url} is a repository server: this operation needs direct access to the repository's storage"
            ))
            .into()),
            ConnectionConfig::S3 { bucket, prefix, endpoint, region, credentials } => {
                let config = s3_config(bucket, prefix, endpoint, region, credentials);
                let cache = metadata_cache_dir(&config.describe());
                // Retries outside the limit: a request waiting out its backoff holds no connection slot.
                let remote = RetryStorage::new(LimitStorage::new(S3Storage::open(config)?), Backoff::default());
                Ok(match cache {
                    Some(dir) => Arc::new(CacheStorage::new(remote, dir)?),
                    None => Arc::new(remote),
                })
            }
        }
    }

    /// Creates a new repository at this location.
    pub fn create(&self, password: &[u8], options: &CreateOptions) -> Result<Repository, ConnectionError> {
        Ok(Repository::create(self.storage(true)?, password, options)?)
    }

    /// Opens the repository with its password.
    pub fn open(&self, password: &[u8]) -> Result<Repository, ConnectionError> {
        let storage = match self.storage(false) {
            Ok(storage) => storage,
            Err(ConnectionError::Storage(e)) if e.is_not_found() => {
                return Err(cairn_engine::Error::NoRepository(self.describe()).into())
            }
            Err(e) => return Err(e),
        };
        Ok(Repository::open(storage, password)?)
    }

    /// Checks a repository exists here without a password (reads its format blob).
    pub fn probe(&self) -> Result<cairn_engine::format::Format, ConnectionError> {
        let storage = match self.storage(false) {
            Ok(storage) => storage,
            Err(ConnectionError::Storage(e)) if e.is_not_found() => {
                return Err(cairn_engine::Error::NoRepository(self.describe()).into())
            }
            Err(e) => return Err(e),
        };
        Ok(Repository::read_format(storage.as_ref())?)
    }
}
