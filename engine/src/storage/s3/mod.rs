//! The S3-compatible object storage backend (AWS S3, MinIO, Ceph RGW, Backblaze B2, Wasabi, Cloudflare R2),
//! built on the `object_store` crate's S3 client (request signing, credentials, multipart and paged listing
//! are its job, not ours).
//!
//! How the contract maps onto S3:
//! - `put` is one PUT, or a multipart upload for blobs of at least [`S3Config::multipart_threshold`] (parts
//!   of [`S3Config::part_size`], a few in flight). S3 makes an object visible only when its PUT or its
//!   CompleteMultipartUpload succeeds, so a half-written blob is never listed; a failed multipart upload is
//!   aborted.
//! - `get_range` is a ranged GET of exactly the bytes asked for (one chunk, not the pack).
//! - `list` pages through every key under the kind's folder (see `layout`), 1000 keys a page.
//! - `delete` of a missing key succeeds, as S3's DELETE does.
//! - Errors say whether a retry may help (see `errors`); this backend itself never retries: wrap it in
//!   [`RetryStorage`](crate::storage::RetryStorage).
//!
//! **Where async ends.** object_store is async. The backend owns a small tokio runtime; each call spawns its
//! request on that runtime and the calling thread waits for the result with a plain (non-tokio) executor.
//! So the engine's threads call it like any blocking backend, and because no caller ever enters the
//! runtime, calling it from inside another async runtime cannot panic — it only blocks that thread, so async
//! code should still call it through `spawn_blocking`. Dropping the backend shuts its runtime down in the
//! background, which is also safe anywhere.

mod errors;
mod layout;
#[cfg(test)]
mod tests;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::{ClientOptions, ObjectStore, PutPayload, RetryConfig, WriteMultipart};

pub use errors::RetryableStatus;
use layout::Layout;

use super::{check_range, validate_name, BlobMeta, Properties, Storage, StorageError};

/// Access keys given explicitly (instead of the standard AWS environment variables).
#[derive(Clone, PartialEq, Eq)]
pub struct S3Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl std::fmt::Debug for S3Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Credentials").field("access_key_id", &self.access_key_id).finish_non_exhaustive()
    }
}

/// Where a repository lives in object storage, and how to talk to it.
#[derive(Clone, Debug)]
pub struct S3Config {
    pub bucket: String,
    /// Key prefix of the repository inside the bucket (`backups/laptop`); empty for the bucket's root.
    pub prefix: String,
    /// The service's URL for a non-AWS store (`http://127.0.0.1:9000`); `None` for AWS.
    pub endpoint: Option<String>,
    /// `None` takes `AWS_REGION` / `AWS_DEFAULT_REGION`, else `us-east-1`.
    pub region: Option<String>,
    /// `None` takes the standard AWS environment: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    /// `AWS_SESSION_TOKEN`, or a web identity or container credentials.
    pub credentials: Option<S3Credentials>,
    /// Blobs this size or larger upload in parts. S3 takes up to 5 GiB in one PUT, but one request for a
    /// large pack would have to start over from the beginning after any failure.
    pub multipart_threshold: usize,
    /// Size of each part but the last (S3 requires at least 5 MiB).
    pub part_size: usize,
    /// Operations in flight the backend is sized for (its [`Properties::max_concurrency`]).
    pub max_concurrency: usize,
    /// Longest a single request may take, transfer included.
    pub request_timeout: Duration,
}

impl S3Config {
    /// Defaults for a bucket: packs below 64 MiB in one PUT, 16 MiB parts, 16 operations in flight.
    pub fn new(bucket: impl Into<String>) -> Self {
        S3Config {
            bucket: bucket.into(),
            prefix: String::new(),
            endpoint: None,
            region: None,
            credentials: None,
            multipart_threshold: 64 << 20,
            part_size: 16 << 20,
            max_concurrency: 16,
            request_timeout: Duration::from_secs(300),
        }
    }

    /// `s3://bucket/prefix` plus the endpoint, for messages.
    pub fn describe(&self) -> String {
        let prefix = self.prefix.trim_matches('/');
        let location = if prefix.is_empty() { self.bucket.clone() } else { format!("{}/{prefix}", self.bucket) };
        match &self.endpoint {
            Some(endpoint) => format!("s3://{location} at {endpoint}"),
            None => format!("s3://{location}"),
        }
    }
}

/// Part uploads of one multipart upload in flight at once.
const PARTS_IN_FLIGHT: usize = 4;

/// A repository in an S3 bucket.
pub struct S3Storage {
    store: Arc<AmazonS3>,
    layout: Layout,
    config: S3Config,
    /// Always `Some` until dropped.
    runtime: Option<tokio::runtime::Runtime>,
}

fn setup_error(config: &S3Config, source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> StorageError {
    StorageError::Backend { op: "open", name: config.describe(), transient: false, source: source.into() }
}

/// Whether the environment names credentials object_store can use without asking the instance metadata
/// service (which this backend never falls back to: a laptop has none, and the lookup takes seconds).
fn environment_has_credentials() -> bool {
    let set = |var: &str| std::env::var_os(var).is_some_and(|v| !v.is_empty());
    (set("AWS_ACCESS_KEY_ID") && set("AWS_SECRET_ACCESS_KEY"))
        || set("AWS_WEB_IDENTITY_TOKEN_FILE")
        || set("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
        || set("AWS_CONTAINER_CREDENTIALS_FULL_URI")
}

impl S3Storage {
    /// Sets up the client; no request is made until the first operation.
    pub fn open(config: S3Config) -> Result<Self, StorageError> {
        let layout = Layout::new(&config.prefix).map_err(|e| setup_error(&config, e))?;
        if config.part_size < 5 << 20 || config.multipart_threshold < config.part_size {
            return Err(setup_error(&config, "parts must be at least 5 MiB and no larger than the threshold"));
        }
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(&config.bucket)
            .with_retry(RetryConfig { max_retries: 0, ..RetryConfig::default() })
            .with_http_connector(errors::StatusConnector)
            .with_client_options(
                ClientOptions::new()
                    .with_timeout(config.request_timeout)
                    .with_connect_timeout(Duration::from_secs(10))
                    .with_allow_http(config.endpoint.as_deref().is_some_and(|e| e.starts_with("http://"))),
            );
        if let Some(endpoint) = &config.endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        if let Some(region) = &config.region {
            builder = builder.with_region(region);
        }
        match &config.credentials {
            Some(c) => {
                builder = builder.with_access_key_id(&c.access_key_id).with_secret_access_key(&c.secret_access_key);
                if let Some(token) = &c.session_token {
                    builder = builder.with_token(token);
                }
            }
            None if !environment_has_credentials() => {
                return Err(setup_error(
                    &config,
                    "no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or pass --access-key and --secret-access-key)",
                ))
            }
            None => {}
        }
        let store = builder.build().map_err(|e| setup_error(&config, e))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("cairn-s3")
            .enable_all()
            .build()
            .map_err(|e| setup_error(&config, e))?;
        Ok(Self { store: Arc::new(store), layout, config, runtime: Some(runtime) })
    }

    /// The settings this backend was opened with.
    pub fn config(&self) -> &S3Config {
        &self.config
    }

    /// Runs `future` on the backend's runtime and waits for it on this thread (see the module docs).
    fn run<T: Send + 'static>(
        &self,
        op: &'static str,
        name: &str,
        future: impl Future<Output = Result<T, StorageError>> + Send + 'static,
    ) -> Result<T, StorageError> {
        let Some(runtime) = &self.runtime else {
            return Err(StorageError::Backend { op, name: name.into(), transient: false, source: "shut down".into() });
        };
        match futures::executor::block_on(runtime.spawn(future)) {
            Ok(result) => result,
            Err(join) => {
                Err(StorageError::Backend { op, name: name.to_string(), transient: false, source: Box::new(join) })
            }
        }
    }

    /// Leaves an unfinished multipart upload of `name` holding `data` as its first part: what a crash during
    /// a large `put` leaves behind. For the conformance suite.
    #[cfg(test)]
    pub(crate) fn start_upload_and_abandon(&self, name: &str, data: &[u8]) {
        let (store, key, data) = (self.store.clone(), self.layout.key(name), Bytes::copy_from_slice(data));
        let owned = name.to_string();
        self.run("put", name, async move {
            let mut upload = store.put_multipart(&key).await.map_err(|e| errors::classify("put", &owned, e))?;
            upload.put_part(PutPayload::from(data)).await.map_err(|e| errors::classify("put", &owned, e))
        })
        .expect("start a multipart upload");
    }
}

async fn upload_parts(
    store: &AmazonS3,
    key: &object_store::path::Path,
    data: Bytes,
    part_size: usize,
) -> object_store::Result<()> {
    let mut upload = WriteMultipart::new_with_chunk_size(store.put_multipart(key).await?, part_size);
    let mut sent = Ok(());
    for start in (0..data.len()).step_by(part_size) {
        sent = upload.wait_for_capacity(PARTS_IN_FLIGHT).await;
        if sent.is_err() {
            break;
        }
        upload.put(data.slice(start..(start + part_size).min(data.len())));
    }
    if sent.is_ok() {
        sent = upload.wait_for_capacity(0).await;
    }
    match sent {
        Ok(()) => upload.finish().await.map(drop),
        Err(e) => {
            // Free the parts already stored; the upload was never visible.
            if let Err(abort) = upload.abort().await {
                tracing::warn!("could not abort the multipart upload of {key}: {abort}");
            }
            Err(e)
        }
    }
}

impl Storage for S3Storage {
    fn put(&self, name: &str, data: &[u8]) -> Result<(), StorageError> {
        validate_name(name)?;
        let (store, key, owned) = (self.store.clone(), self.layout.key(name), name.to_string());
        let data = Bytes::copy_from_slice(data);
        let part_size = self.config.part_size;
        let multipart = data.len() >= self.config.multipart_threshold;
        self.run("put", name, async move {
            let result = if multipart {
                upload_parts(&store, &key, data, part_size).await
            } else {
                store.put(&key, PutPayload::from(data)).await.map(drop)
            };
            result.map_err(|e| errors::classify("put", &owned, e))
        })
    }

    fn get(&self, name: &str) -> Result<Vec<u8>, StorageError> {
        validate_name(name)?;
        let (store, key, owned) = (self.store.clone(), self.layout.key(name), name.to_string());
        self.run("get", name, async move {
            let fetched = async { store.get(&key).await?.bytes().await }.await;
            fetched.map(|bytes| bytes.to_vec()).map_err(|e| errors::classify("get", &owned, e))
        })
    }

    fn get_range(&self, name: &str, offset: u64, length: u64) -> Result<Vec<u8>, StorageError> {
        validate_name(name)?;
        let Some(end) = offset.checked_add(length).filter(|_| length > 0) else {
            // Nothing to fetch (or an overflowing range): only the blob's size can answer.
            check_range(name, offset, length, self.stat(name)?.size)?;
            return Ok(Vec::new());
        };
        let (store, key, owned) = (self.store.clone(), self.layout.key(name), name.to_string());
        let fetched = self.run("get", name, async move {
            store.get_range(&key, offset..end).await.map_err(|e| errors::classify("get", &owned, e))
        });
        match fetched {
            Ok(bytes) if bytes.len() as u64 == length => Ok(bytes.to_vec()),
            // S3 shortens a range that runs past the end, or refuses one that starts past it (416): either
            // way the blob's size tells the caller what was wrong.
            Ok(_) => Err(check_range(name, offset, length, self.stat(name)?.size)
                .err()
                .unwrap_or_else(|| StorageError::OutOfRange { name: name.into(), offset, length, size: end })),
            Err(e) if e.is_not_found() || e.is_transient() => Err(e),
            Err(e) => {
                check_range(name, offset, length, self.stat(name)?.size)?;
                Err(e)
            }
        }
    }

    fn list(&self, prefix: &str) -> Result<Vec<BlobMeta>, StorageError> {
        let (store, layout, owned) = (self.store.clone(), self.layout.clone(), prefix.to_string());
        self.run("list", prefix, async move {
            let classify = |e| errors::classify("list", &owned, e);
            let mut objects = Vec::new();
            if owned.is_empty() {
                objects = store.list(Some(&layout.root())).try_collect().await.map_err(classify)?;
            } else {
                // Names outside kind folders (the format blob), then the kind's folder, page after page.
                objects.extend(store.list_with_delimiter(Some(&layout.root())).await.map_err(classify)?.objects);
                if let Some(folder) = layout.folder_for(&owned) {
                    let listed: Vec<_> = store.list(Some(&folder)).try_collect().await.map_err(classify)?;
                    objects.extend(listed);
                }
            }
            Ok(objects
                .into_iter()
                .filter_map(|meta| {
                    let name = layout.name_of(&meta.location).filter(|name| name.starts_with(&owned))?;
                    Some(BlobMeta { name, size: meta.size, modified: Some(meta.last_modified.into()) })
                })
                .collect())
        })
    }

    fn delete(&self, name: &str) -> Result<(), StorageError> {
        validate_name(name)?;
        let (store, key, owned) = (self.store.clone(), self.layout.key(name), name.to_string());
        self.run("delete", name, async move {
            match store.delete(&key).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(errors::classify("delete", &owned, e)),
            }
        })
    }

    fn stat(&self, name: &str) -> Result<BlobMeta, StorageError> {
        validate_name(name)?;
        let (store, key, owned) = (self.store.clone(), self.layout.key(name), name.to_string());
        self.run("stat", name, async move {
            let meta = store.head(&key).await.map_err(|e| errors::classify("stat", &owned, e))?;
            Ok(BlobMeta { name: owned, size: meta.size, modified: Some(meta.last_modified.into()) })
        })
    }

    fn describe(&self) -> String {
        self.config.describe()
    }

    fn properties(&self) -> Properties {
        Properties { max_concurrency: self.config.max_concurrency }
    }
}

impl Drop for S3Storage {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
