//! Backup and restore through a real S3 server (moto in CI, see `.ci/run`): `repository create s3`, keys
//! given once and kept beside the config, `connect s3` with keys from the environment, and the local cache of
//! metadata.
//!
//! Without `CAIRN_TEST_S3_ENDPOINT` these tests pass after saying they skipped, except under CI, where they
//! fail.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Output;

use crate::support::{num, text, Env};
use crate::tree_gen::{assert_same_tree, build_tree, TreeSpec};

const AWS_VARS: [&str; 5] =
    ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION", "AWS_DEFAULT_REGION"];

/// The test server, or `None` (after saying so) when there is none outside CI.
fn endpoint() -> Option<String> {
    if let Some(endpoint) = std::env::var("CAIRN_TEST_S3_ENDPOINT").ok().filter(|e| !e.is_empty()) {
        return Some(endpoint);
    }
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false");
    assert!(!ci, "CI must run the S3 tests, but CAIRN_TEST_S3_ENDPOINT is not set (.ci/run starts moto_server)");
    eprintln!("skipping S3 end-to-end test: no S3 server (start one and set CAIRN_TEST_S3_ENDPOINT, see README)");
    None
}

fn bucket() -> String {
    std::env::var("CAIRN_TEST_S3_BUCKET").unwrap_or_else(|_| "cairn-test".into())
}

/// Runs cairn with no AWS variables (so only what the command line or the stored keys say counts), plus
/// `extra` variables, and asserts success.
fn ok_with(env: &Env, extra: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = env.cmd();
    for var in AWS_VARS {
        cmd.env_remove(var);
    }
    let out = cmd.envs(extra.iter().copied()).args(args).output().expect("run cairn");
    assert!(
        out.status.success(),
        "cairn {args:?} failed ({:?})\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn json_with(env: &Env, extra: &[(&str, &str)], args: &[&str]) -> serde_json::Value {
    serde_json::from_slice(&ok_with(env, extra, args).stdout).expect("JSON output")
}

#[test]
fn backup_and_restore_through_s3_are_byte_identical() {
    let Some(endpoint) = endpoint() else { return };
    let env = Env::new();
    let src = env.path("src");
    build_tree(&src, &TreeSpec { small_files: 500, big_file_bytes: 40 << 20 });
    let prefix = format!("e2e/{}", std::process::id());
    let location = ["--bucket", &bucket(), "--prefix", &prefix, "--endpoint", &endpoint, "--region", "us-east-1"];

    // Keys given once are kept beside the config (0600), never in it.
    let mut create = vec!["repository", "create", "s3"];
    create.extend(location);
    create.extend(["--access-key", "cairn-key-id", "--secret-access-key", "cairn-secret-key", "--pack-size-mib", "8"]);
    let out = ok_with(&env, &[], &create);
    assert!(String::from_utf8_lossy(&out.stderr).contains("S3 access key stored in"));
    let config = fs::read_to_string(env.config()).unwrap();
    assert!(config.contains("\"type\": \"s3\"") && !config.contains("cairn-secret-key"), "{config}");
    let keys = env.path("config/repository.config.s3-keys");
    assert_eq!(fs::metadata(&keys).unwrap().permissions().mode() & 0o777, 0o600);

    let first = json_with(&env, &[], &["snapshot", "create", src.to_str().unwrap(), "--json"]);
    assert_eq!(first["incomplete"], false, "{first}");
    assert!(num(&first, "/stats/bytesNew") >= 40 << 20);
    let restored = env.path("restored");
    ok_with(&env, &[], &["restore", text(&first, "/id"), restored.to_str().unwrap()]);
    assert_same_tree(&src, &restored);

    // Unchanged data costs nothing the second time.
    let second = json_with(&env, &[], &["snapshot", "create", src.to_str().unwrap(), "--json"]);
    assert_eq!(num(&second, "/stats/bytesNew"), 0, "{second}");
    let status = json_with(&env, &[], &["repository", "status", "--json"]);
    assert_eq!(status["storage"]["type"], "s3");
    assert!(num(&status, "/dataPacks") >= 2, "{status}");

    // Index blobs, metadata packs and snapshot records are now cached locally.
    let cache = env.path("xdg-cache/cairn");
    let cached: Vec<String> = fs::read_dir(&cache)
        .unwrap()
        .flat_map(|remote| fs::read_dir(remote.unwrap().path()).unwrap())
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for kind in ['i', 'q', 's'] {
        assert!(cached.iter().any(|n| n.starts_with(kind)), "no {kind} blob cached: {cached:?}");
    }
    assert!(!cached.iter().any(|n| n.starts_with('p')), "data packs are not cached");

    // Another client connects with keys from the environment, and restores the same bytes.
    ok_with(&env, &[], &["repository", "disconnect"]);
    assert!(!keys.exists(), "disconnect forgets the stored keys");
    let aws = [("AWS_ACCESS_KEY_ID", "other-id"), ("AWS_SECRET_ACCESS_KEY", "other-secret")];
    let mut connect = vec!["repository", "connect", "s3"];
    connect.extend(location);
    ok_with(&env, &aws, &connect);
    let list = json_with(&env, &aws, &["snapshot", "list", "--json"]);
    assert_eq!(list.as_array().map(Vec::len), Some(2));
    let again = env.path("restored-again");
    ok_with(&env, &aws, &["restore", "latest", again.to_str().unwrap()]);
    assert_same_tree(&src, &again);
}

#[test]
fn s3_without_credentials_or_bucket_fails_clearly() {
    let Some(endpoint) = endpoint() else { return };
    let env = Env::new();
    let location = ["--endpoint", endpoint.as_str(), "--region", "us-east-1"];
    let mut cmd = env.cmd();
    for var in AWS_VARS {
        cmd.env_remove(var);
    }
    let out = cmd.args(["repository", "create", "s3", "--bucket", &bucket()]).args(location).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no S3 credentials"), "{out:?}");

    let mut cmd = env.cmd();
    let missing = format!("cairn-missing-{}", std::process::id());
    let out = cmd
        .args(["repository", "connect", "s3", "--bucket", &missing, "--access-key", "a", "--secret-access-key", "b"])
        .args(location)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bucket does not exist"), "{out:?}");
    assert!(!env.config().exists(), "a failed connect writes no config");
}
