//! Password sources: --password-file, and --persist-credentials with the private-file fallback; changing
//! the repository's password.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use crate::support::{stderr, Env, PASSWORD};
use crate::tree_gen::{assert_same_tree, noise, write};

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

/// `repository change-password`: the current password is checked first (a wrong one changes nothing), the
/// old password stops working, the new one opens the same data, and a stored password follows the change.
#[test]
fn change_password_keeps_the_data_and_retires_the_old_password() {
    let env = Env::new();
    let repo = env.repo();
    env.ok(&["repository", "create", "filesystem", "--path", repo.to_str().unwrap(), "--persist-credentials"]);
    let src = env.path("src");
    write(&src.join("a.bin"), &noise(3, 200 << 10));
    write(&src.join("sub/b.txt"), b"keep me");
    env.snapshot(&src);
    let new = "a brand new passphrase";

    let out = env
        .cmd()
        .env("CAIRN_PASSWORD", "not the password")
        .env("CAIRN_NEW_PASSWORD", new)
        .args(["repository", "change-password"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("invalid repository password"), "{}", stderr(&out));
    let out = env.cmd().env("CAIRN_NEW_PASSWORD", "").args(["repository", "change-password"]).output().unwrap();
    assert!(stderr(&out).contains("must not be empty"), "{}", stderr(&out));
    env.ok(&["snapshot", "list"]); // nothing changed so far

    let new_file = env.path("new-password");
    fs::write(&new_file, format!("{new}\n")).unwrap();
    env.ok(&["repository", "change-password", "--new-password-file", new_file.to_str().unwrap()]);
    let out = env.run(&["snapshot", "list"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("invalid repository password"), "{}", stderr(&out));
    // The stored password was replaced too: without CAIRN_PASSWORD the new one is used.
    let out = env.cmd().env_remove("CAIRN_PASSWORD").args(["snapshot", "list"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let restored = env.path("restored");
    let out =
        env.cmd().env("CAIRN_PASSWORD", new).args(["restore", "latest", restored.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_same_tree(&src, &restored);
    let out = env.cmd().env("CAIRN_PASSWORD", new).args(["repository", "check", "--read-all-data"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}
