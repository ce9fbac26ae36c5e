//! Claims of `docs/SECURITY.md` that no other test covers: the fingerprint the server prints is the one
//! `openssl` computes from what the server presents (and from its certificate file), a standalone backup
//! listens on no port; and SECURITY.md names only tests that exist.

use std::collections::HashSet;
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::launcher::listens_on_tcp;
use crate::support::Env;
use crate::tree_gen::{noise, write};
use crate::ui_server::UiProcess;

/// Lower-case hex without colons, as `SERVER CERT SHA256:` prints it.
fn plain_hex(openssl_line: &str) -> String {
    let value = openssl_line.trim().rsplit_once('=').map_or(openssl_line, |(_, v)| v);
    value.chars().filter(|c| *c != ':').collect::<String>().to_ascii_lowercase()
}

#[test]
fn security_openssl_fingerprint_of_the_served_certificate_matches_the_printed_one() {
    if !crate::support::tool_available("openssl", "version") {
        return;
    }
    let env = Env::new();
    env.create_repo();
    let (cert, key) = (env.path("cert.pem"), env.path("key.pem"));
    let files = ["--tls-cert-file", cert.to_str().unwrap(), "--tls-key-file", key.to_str().unwrap()];
    let server = UiProcess::start(&env, &files);
    // What SECURITY.md tells a person to run against a running server.
    let script = format!(
        "openssl s_client -connect {} </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256",
        server.addr
    );
    let out = Command::new("sh").args(["-c", &script]).output().expect("sh");
    let line = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(line.to_ascii_lowercase().starts_with("sha256 fingerprint="), "{line:?}");
    assert_eq!(plain_hex(&line), server.fingerprint);
    // And from the certificate file, for the QUIC server (which `openssl s_client` cannot reach).
    let out = Command::new("openssl").args(["x509", "-noout", "-fingerprint", "-sha256", "-in"]).arg(&cert).output();
    let line = String::from_utf8_lossy(&out.expect("openssl").stdout).into_owned();
    assert_eq!(plain_hex(&line), server.fingerprint, "{line:?}");
}

#[test]
fn security_standalone_backup_listens_on_no_port() {
    let env = Env::new();
    env.create_repo();
    let src = env.path("src");
    write(&src.join("big.bin"), &noise(7, 192 << 20));
    let mut child = env
        .cmd()
        .args(["snapshot", "create", src.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("backup");
    let (start, mut samples) = (Instant::now(), 0);
    while child.try_wait().expect("wait").is_none() {
        // Only count samples where the process was still there with its fds readable.
        if fs::read_dir(format!("/proc/{}/fd", child.id())).is_ok() {
            assert!(!listens_on_tcp(child.id()), "a standalone backup holds a listening TCP socket");
            samples += 1;
        }
        assert!(start.elapsed() < Duration::from_secs(120), "backup still running");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(child.wait().unwrap().success());
    assert!(samples >= 3, "the backup ended before it could be observed ({samples} samples)");
}

/// Every `fn NAME(` in the Rust sources under `dir`.
fn test_functions(dir: &Path, found: &mut HashSet<String>) {
    for entry in fs::read_dir(dir).into_iter().flatten().map_while(Result::ok) {
        let path = entry.path();
        if path.is_dir() && !path.ends_with("target") && !path.ends_with("node_modules") {
            test_functions(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = fs::read_to_string(&path).unwrap_or_default();
            for (_, rest) in text.match_indices("fn ").map(|(i, _)| text.split_at(i + 3)) {
                let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                if rest[name.len()..].starts_with('(') {
                    found.insert(name);
                }
            }
        }
    }
}

#[test]
fn security_md_names_only_tests_that_exist() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let doc = fs::read_to_string(root.join("docs/SECURITY.md")).expect("docs/SECURITY.md");
    let mut functions = HashSet::new();
    for dir in ["engine", "transport", "cli", "tests"] {
        test_functions(&root.join(dir), &mut functions);
    }
    // References are written `suite::path::test_name` in backticks, suite one of these.
    let suites = ["e2e::", "engine::", "transport::", "cli::"];
    let named: Vec<&str> =
        doc.split('`').skip(1).step_by(2).filter(|s| suites.iter().any(|p| s.starts_with(p))).collect();
    assert!(named.len() >= 30, "SECURITY.md names only {} tests", named.len());
    let missing: Vec<&str> = named
        .iter()
        .copied()
        .filter(|r| {
            let name = r.rsplit("::").next().unwrap_or(r);
            !functions.contains(name)
        })
        .collect();
    assert!(missing.is_empty(), "SECURITY.md names tests that do not exist: {missing:?}");
}
