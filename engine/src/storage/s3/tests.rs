//! The conformance suite against a real S3 server, and error classification against a scripted one.
//!
//! The real server is whatever `CAIRN_TEST_S3_ENDPOINT` points at (`.ci/run` starts moto's standalone server
//! on loopback and creates the bucket `CAIRN_TEST_S3_BUCKET`, default `cairn-test`). Without it the S3
//! conformance tests pass after saying they skipped, except under CI (`CI` set), where they fail.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::storage::conformance::{conformance_tests, Harness};
use crate::storage::{Backoff, RetryStorage};

fn test_credentials() -> S3Credentials {
    S3Credentials { access_key_id: "testing".into(), secret_access_key: "testing".into(), session_token: None }
}

/// The test server's endpoint, or `None` (after saying so) when there is none outside CI.
pub(crate) fn test_endpoint() -> Option<String> {
    if let Some(endpoint) = std::env::var("CAIRN_TEST_S3_ENDPOINT").ok().filter(|e| !e.is_empty()) {
        return Some(endpoint);
    }
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false");
    assert!(!ci, "CI must run the S3 tests, but CAIRN_TEST_S3_ENDPOINT is not set (.ci/run starts moto_server)");
    eprintln!("skipping S3 test: no S3 server (start one and set CAIRN_TEST_S3_ENDPOINT, see README)");
    None
}

/// A config for a fresh, empty prefix of the test bucket.
fn test_config(endpoint: &str) -> S3Config {
    let bucket = std::env::var("CAIRN_TEST_S3_BUCKET").unwrap_or_else(|_| "cairn-test".into());
    let mut config = S3Config::new(bucket);
    config.prefix = format!("conformance/{}", hex::encode(crate::crypto::random_bytes::<8>()));
    config.endpoint = Some(endpoint.to_string());
    config.region = Some("us-east-1".into());
    config.credentials = Some(test_credentials());
    // Small enough that the suite's large blob (12 MiB) takes the multipart path: parts of 5, 5 and 2 MiB.
    config.multipart_threshold = 8 << 20;
    config.part_size = 5 << 20;
    config
}

/// The backend as Cairn uses it: behind the retry decorator. (moto answers 500 now and then when several
/// clients overwrite one key at once, which `concurrent_writers` does; retrying is what a client must do.)
struct RealServer;

impl Harness for RealServer {
    type S = RetryStorage<S3Storage>;

    fn fresh(&self) -> Option<Self::S> {
        let store = S3Storage::open(test_config(&test_endpoint()?)).expect("open S3 storage");
        Some(RetryStorage::new(store, Backoff::default()))
    }

    fn leave_half_written(&self, store: &Self::S, name: &str, data: &[u8]) {
        // At least 5 MiB, so the server takes it as a part of a real multipart upload.
        let mut part = data.to_vec();
        part.resize(part.len().max(5 << 20), 0);
        store.inner().start_upload_and_abandon(name, &part);
    }

    fn large_blob_size(&self) -> usize {
        12 << 20
    }
}

mod contract {
    use super::*;
    conformance_tests!(RealServer);
}

#[test]
fn a_missing_bucket_is_an_error_not_an_empty_repository() {
    let Some(endpoint) = test_endpoint() else { return };
    let mut config = test_config(&endpoint);
    config.bucket = format!("cairn-missing-{}", hex::encode(crate::crypto::random_bytes::<4>()));
    let store = S3Storage::open(config).unwrap();
    let err = store.get("cairn.repository").unwrap_err();
    assert!(!err.is_not_found() && !err.is_transient(), "{err}");
    assert!(err.to_string().contains("bucket does not exist"), "{err}");
}

/// A scripted HTTP server on loopback: answers each request with the next canned response, then closes.
struct Scripted {
    endpoint: String,
    requests: Arc<AtomicUsize>,
}

fn scripted(responses: Vec<(u16, &'static str, &'static str)>) -> Scripted {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let requests = Arc::new(AtomicUsize::new(0));
    let counter = requests.clone();
    std::thread::spawn(move || {
        for (status, reason, body) in responses {
            let Ok((stream, _)) = listener.accept() else { return };
            answer(stream, &counter, status, reason, body);
        }
    });
    Scripted { endpoint, requests }
}

/// Reads one request, counts it, then answers it.
fn answer(stream: TcpStream, counter: &AtomicUsize, status: u16, reason: &str, body: &str) {
    let mut reader = BufReader::new(stream);
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = value.trim().parse().unwrap_or(0);
        }
    }
    let mut request_body = vec![0u8; length];
    let _ = reader.read_exact(&mut request_body);
    counter.fetch_add(1, Ordering::SeqCst);
    let mut stream = reader.into_inner();
    let _ = write!(
        stream,
        "HTTP/1.1 {status} {reason}\r\nContent-Length: {}\r\nETag: \"e7a9\"\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

fn scripted_store(endpoint: &str) -> S3Storage {
    let mut config = S3Config::new("bucket");
    config.endpoint = Some(endpoint.to_string());
    config.region = Some("us-east-1".into());
    config.credentials = Some(test_credentials());
    config.request_timeout = Duration::from_secs(10);
    S3Storage::open(config).unwrap()
}

fn quick() -> Backoff {
    Backoff { attempts: 5, first_delay: Duration::from_millis(5), max_delay: Duration::from_millis(20) }
}

const SLOW_DOWN: &str = "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>";
const ACCESS_DENIED: &str = "<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>";

#[test]
fn throttling_and_server_errors_are_retried_until_success() {
    let server = scripted(vec![(503, "Slow Down", SLOW_DOWN), (500, "Internal Server Error", ""), (200, "OK", "")]);
    let store = scripted_store(&server.endpoint);
    let first = store.put("pab", b"data").unwrap_err();
    assert!(first.is_transient(), "503 SlowDown is transient: {first}");
    assert!(first.to_string().contains("SlowDown"), "{first}");
    RetryStorage::new(store, quick()).put("pab", b"data").unwrap();
    assert_eq!(server.requests.load(Ordering::SeqCst), 3);
}

#[test]
fn auth_errors_are_not_retried() {
    let server = scripted(vec![(403, "Forbidden", ACCESS_DENIED), (200, "OK", "")]);
    let store = RetryStorage::new(scripted_store(&server.endpoint), quick());
    let err = store.get("pab").unwrap_err();
    assert!(!err.is_transient() && !err.is_not_found(), "{err}");
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(server.requests.load(Ordering::SeqCst), 1, "a 403 is asked once");
}

#[test]
fn not_found_and_missing_bucket_are_told_apart() {
    let server = scripted(vec![
        (404, "Not Found", "<Error><Code>NoSuchKey</Code></Error>"),
        (404, "Not Found", "<Error><Code>NoSuchBucket</Code></Error>"),
        (429, "Too Many Requests", ""),
    ]);
    let store = scripted_store(&server.endpoint);
    assert!(store.get("pab").unwrap_err().is_not_found());
    let bucket = store.get("pab").unwrap_err();
    assert!(!bucket.is_not_found() && !bucket.is_transient(), "{bucket}");
    assert!(store.list("p").unwrap_err().is_transient(), "429 is throttling");
}

#[test]
fn an_unreachable_server_is_transient() {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let store = scripted_store(&format!("http://127.0.0.1:{port}"));
    let err = store.stat("pab").unwrap_err();
    assert!(err.is_transient(), "{err}");
}

#[test]
fn usable_from_inside_an_async_runtime() {
    // Calls never enter the backend's runtime, so a caller that is itself async cannot make it panic.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let store = scripted_store(&format!("http://127.0.0.1:{port}"));
    let outer = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let err = outer.block_on(async { store.stat("pab").unwrap_err() });
    assert!(err.is_transient(), "{err}");
    outer.block_on(async move { drop(store) });
}

#[test]
fn missing_credentials_are_refused_up_front() {
    let mut config = S3Config::new("bucket");
    config.endpoint = Some("http://127.0.0.1:9".into());
    if !environment_has_credentials() {
        let err = S3Storage::open(config).err().expect("no credentials");
        assert!(err.to_string().contains("AWS_ACCESS_KEY_ID"), "{err}");
    }
}
