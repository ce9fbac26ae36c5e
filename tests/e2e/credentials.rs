//! Password sources: --password-file, and --persist-credentials with the private-file fallback.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use crate::support::{stderr, Env, PASSWORD};

#[test]
fn persisted_password_falls_back_to_a_private_file() {
    let env = Env::new();
    let repo = env.repo();
    env.ok(&["repository", "create", "filesystem", "--path", repo.to_str().unwrap(), "--persist-credentials"]);
    let stored = env.config().with_file_name("repository.config.password");
    let mode = fs::metadata(&stored).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let config = fs::read_to_string(env.config()).unwrap();
    assert!(!config.contains(PASSWORD), "the config file must not hold the password");
    // No CAIRN_PASSWORD and no terminal: the stored password is used.
    let out = env.cmd().env_remove("CAIRN_PASSWORD").args(["snapshot", "list"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    // Disconnect forgets it.
    env.ok(&["repository", "disconnect"]);
    assert!(!stored.exists());
    assert!(!env.config().exists());
}

#[test]
fn password_file_and_missing_password() {
    let env = Env::new();
    let pw = env.path("pw");
    fs::write(&pw, format!("{PASSWORD}\n")).unwrap();
    let repo = env.repo();
    let out = env
        .cmd()
        .env_remove("CAIRN_PASSWORD")
        .args(["--password-file", pw.to_str().unwrap(), "repository", "create", "filesystem", "--path"])
        .arg(&repo)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    // The file's password (newline stripped) equals the env one.
    env.ok(&["repository", "status"]);
    let out = env.cmd().env_remove("CAIRN_PASSWORD").args(["snapshot", "list"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no repository password"), "{}", stderr(&out));
}
