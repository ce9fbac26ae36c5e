//! Turning S3 failures into [`StorageError`]s that say whether trying again may help.
//!
//! object_store's own retry loop is switched off (the [`RetryStorage`](crate::storage::RetryStorage)
//! decorator is the one place that retries), and its errors do not expose the HTTP status. So the HTTP client
//! is wrapped: a response worth retrying — any 5xx, 429 Too Many Requests, 408 Request Timeout — is turned
//! into a transport error carrying a [`RetryableStatus`], which [`classify`] finds in the error's source
//! chain. Every other response (404, 403, 401, 412, 416…) reaches object_store unchanged, so it still maps
//! them to its own error kinds; those are permanent.

use std::error::Error as _;

use async_trait::async_trait;
use object_store::client::{
    HttpClient, HttpConnector, HttpError, HttpErrorKind, HttpRequest, HttpResponse, HttpService, ReqwestConnector,
};
use object_store::ClientOptions;

use crate::storage::StorageError;

/// A response S3 asks to be retried: throttling (`503 SlowDown`, 429), a server error, a request timeout.
#[derive(Debug, thiserror::Error)]
#[error("server answered {status}: {body}")]
pub struct RetryableStatus {
    pub status: u16,
    pub body: String,
}

fn retryable(status: u16) -> bool {
    status >= 500 || status == 429 || status == 408
}

/// The HTTP service: reqwest, with retryable statuses turned into [`RetryableStatus`] errors.
#[derive(Debug)]
struct StatusService(HttpClient);

#[async_trait]
impl HttpService for StatusService {
    async fn call(&self, req: HttpRequest) -> Result<HttpResponse, HttpError> {
        let response = self.0.execute(req).await?;
        let status = response.status().as_u16();
        if !retryable(status) {
            return Ok(response);
        }
        // S3 explains itself in a short XML body (`<Code>SlowDown</Code>`); keep the start of it.
        let body = match response.into_body().bytes().await {
            Ok(bytes) => String::from_utf8_lossy(&bytes[..bytes.len().min(300)]).into_owned(),
            Err(e) => format!("(body unreadable: {e})"),
        };
        Err(HttpError::new(HttpErrorKind::Request, RetryableStatus { status, body }))
    }
}

/// Builds [`StatusService`] clients with object_store's usual reqwest settings.
#[derive(Debug, Default)]
pub(super) struct StatusConnector;

impl HttpConnector for StatusConnector {
    fn connect(&self, options: &ClientOptions) -> object_store::Result<HttpClient> {
        Ok(HttpClient::new(StatusService(ReqwestConnector::default().connect(options)?)))
    }
}

/// Whether anything in the error's source chain says the request may succeed later: a retryable status, or a
/// failure of the network rather than of the request (connection refused or reset, a timeout, a body cut
/// short).
fn transient(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(e) = next {
        if e.downcast_ref::<RetryableStatus>().is_some() {
            return true;
        }
        // object_store hides its `HttpError` behind a transparent wrapper, so the chain shows reqwest's error.
        if let Some(request) = e.downcast_ref::<reqwest::Error>() {
            return request.is_connect()
                || request.is_timeout()
                || request.is_request()
                || request.is_body()
                || request.is_decode();
        }
        if let Some(http) = e.downcast_ref::<HttpError>() {
            return matches!(
                http.kind(),
                HttpErrorKind::Connect
                    | HttpErrorKind::Request
                    | HttpErrorKind::Timeout
                    | HttpErrorKind::Interrupted
                    | HttpErrorKind::Decode
            );
        }
        next = e.source();
    }
    // A 200 answer whose body is an error (S3 does this for CompleteMultipartUpload under load).
    let text = error.to_string();
    text.contains("<Code>SlowDown</Code>") || text.contains("<Code>InternalError</Code>")
}

/// Maps an object_store error for operation `op` on blob `name`.
pub(super) fn classify(op: &'static str, name: &str, error: object_store::Error) -> StorageError {
    let backend = |transient, source: Box<dyn std::error::Error + Send + Sync>| StorageError::Backend {
        op,
        name: name.to_string(),
        transient,
        source,
    };
    match error {
        object_store::Error::NotFound { source, .. } => {
            let detail = source.to_string();
            if detail.contains("NoSuchBucket") {
                backend(false, "the bucket does not exist".into())
            } else {
                StorageError::NotFound(name.to_string())
            }
        }
        e @ (object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. }) => {
            backend(false, Box::new(e))
        }
        e @ object_store::Error::Generic { .. } => {
            let transient = e.source().is_some_and(transient);
            backend(transient, Box::new(e))
        }
        e => backend(false, Box::new(e)),
    }
}
