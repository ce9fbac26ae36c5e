//! Failures a user can cause: each is one clear line on stderr and a documented exit code.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use crate::support::{stderr, text, Env};
use crate::tree_gen::{noise, write};

fn one_error_line(out: &std::process::Output, expected: &str) {
    assert_eq!(out.status.code(), Some(1), "stderr: {}", stderr(out));
    let err = stderr(out);
    let lines: Vec<_> = err.lines().collect();
    assert_eq!(lines.len(), 1, "expected one line, got: {err}");
    assert!(lines[0].starts_with("ERROR: ") && lines[0].contains(expected), "{err}");
}

#[test]
fn wrong_password_is_refused() {
    let env = Env::new();
    env.create_repo();
    let out = env.cmd().env("CAIRN_PASSWORD", "not the password").args(["snapshot", "list"]).output().unwrap();
    one_error_line(&out, "invalid repository password");
    let repo = env.repo();
    let out = env
        .cmd()
        .env("CAIRN_PASSWORD", "nope")
        .args(["repository", "connect", "filesystem", "--path", repo.to_str().unwrap()])
        .output()
        .unwrap();
    one_error_line(&out, "invalid repository password");
}

#[test]
fn missing_repository_is_reported() {
    let env = Env::new();
    let nowhere = env.path("nowhere");
    let out = env.run(&["repository", "connect", "filesystem", "--path", nowhere.to_str().unwrap()]);
    one_error_line(&out, "no repository found");
    fs::create_dir_all(&nowhere).unwrap();
    let out = env.run(&["repository", "connect", "filesystem", "--path", nowhere.to_str().unwrap()]);
    one_error_line(&out, "no repository found");
    let out = env.run(&["snapshot", "list"]);
    one_error_line(&out, "not connected to a repository");
}

#[test]
fn corrupt_format_blob_is_reported() {
    let env = Env::new();
    env.create_repo();
    let format = env.repo().join("cairn.repository");
    let mut bytes = fs::read(&format).unwrap();
    let at = bytes.iter().position(|&b| b == b'7' || b == b'3').unwrap();
    bytes[at] = if bytes[at] == b'7' { b'8' } else { b'4' };
    fs::write(&format, &bytes).unwrap();
    let out = env.run(&["snapshot", "list"]);
    one_error_line(&out, "corrupt format blob");
    fs::write(&format, b"{ not json").unwrap();
    one_error_line(&env.run(&["snapshot", "list"]), "corrupt format blob");
}

#[test]
fn creating_over_an_existing_repository_is_refused() {
    let env = Env::new();
    env.create_repo();
    let repo = env.repo();
    let out = env.run(&["repository", "create", "filesystem", "--path", repo.to_str().unwrap()]);
    one_error_line(&out, "already exists");
}

#[test]
fn bad_snapshot_ids_and_tags_are_refused() {
    let env = Env::new();
    env.create_repo();
    one_error_line(&env.run(&["ls", "zzzz"]), "not a snapshot id");
    one_error_line(&env.run(&["ls", "abcd"]), "not found");
    write(&env.path("src/f"), b"x");
    let src = env.path("src");
    one_error_line(&env.run(&["snapshot", "create", src.to_str().unwrap(), "--tags", "novalue"]), "key:value");
    one_error_line(&env.run(&["snapshot", "create", env.path("absent").to_str().unwrap()]), "absent");
}

#[test]
fn damaged_pack_is_detected_on_restore() {
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("data.bin"), &noise(5, 6 << 20));
    env.create_repo();
    let snap = env.snapshot(&src);
    // Flip one bit in the middle of every data pack.
    let mut packs = 0;
    for shard in fs::read_dir(env.repo().join("p")).unwrap() {
        for pack in fs::read_dir(shard.unwrap().path()).unwrap() {
            let path = pack.unwrap().path();
            let mut bytes = fs::read(&path).unwrap();
            let mid = bytes.len() / 2;
            bytes[mid] ^= 0x10;
            fs::write(&path, bytes).unwrap();
            packs += 1;
        }
    }
    assert!(packs > 0);
    let out = env.run(&["restore", text(&snap, "/id"), env.path("out").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("authentication failed"), "{}", stderr(&out));
}

/// Runs a command as an unprivileged user when we are root, so permission bits are enforced.
fn unprivileged(env: &Env, args: &[&str]) -> std::process::Output {
    let is_root = fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0).unwrap_or(false);
    if !is_root {
        return env.run(args);
    }
    let plain = env.cmd();
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(plain.get_program())
        .args(plain.get_args());
    for (k, v) in plain.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    cmd.args(args).output().expect("setpriv")
}

#[test]
fn unreadable_file_is_skipped_and_marks_the_snapshot_incomplete() {
    let env = Env::new();
    fs::set_permissions(env.dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
    let src = env.path("src");
    write(&src.join("readable.txt"), b"fine");
    write(&src.join("secret.txt"), b"cannot read me");
    fs::set_permissions(src.join("secret.txt"), fs::Permissions::from_mode(0o000)).unwrap();
    let out = unprivileged(&env, &["repository", "create", "filesystem", "--path", env.repo().to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = unprivileged(&env, &["snapshot", "create", src.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("secret.txt"), "{}", stderr(&out));
    let snap: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(snap["incomplete"], true);
    assert_eq!(snap["stats"]["errors"], 1);
    assert_eq!(snap["stats"]["files"], 1);
    let listing = unprivileged(&env, &["ls", "latest"]);
    assert_eq!(String::from_utf8_lossy(&listing.stdout).trim(), "readable.txt");
}

/// Output that cannot be written is an error, never a panic: a full disk behind standard output fails the
/// command with one line; a reader that went away ends it quietly with SIGPIPE's status; a full disk behind
/// standard error does not stop a backup.
#[test]
fn unwritable_output_is_an_error_not_a_panic() {
    let env = Env::new();
    env.create_repo();
    let src = env.path("src");
    write(&src.join("a.txt"), b"some bytes to back up");
    env.snapshot(&src);
    let full = || fs::OpenOptions::new().write(true).open("/dev/full").unwrap();

    for args in [&["snapshot", "list"][..], &["snapshot", "list", "--json"]] {
        let out = env.cmd().args(args).stdout(full()).output().unwrap();
        one_error_line(&out, "writing to standard output: No space left on device");
    }

    // `ls` writes through its own buffer, `snapshot list` through the output macros: both end the same way.
    for args in [&["snapshot", "list", "--json"][..], &["ls", "latest", "-l"]] {
        let mut child = env
            .cmd()
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take()); // the reader goes away before anything is written
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(141), "{args:?} stderr: {}", stderr(&out));
        assert_eq!(stderr(&out), "", "nothing to say when the reader left");
    }

    let out = env.cmd().args(["snapshot", "create", src.to_str().unwrap()]).stderr(full()).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let list = env.json(&["snapshot", "list", "--json"]);
    assert_eq!(list.as_array().unwrap().len(), 2, "the second backup was recorded");
}

/// Description and tags larger than a snapshot record may hold are refused before anything is read, and
/// nothing is stored.
#[test]
fn oversized_labels_are_refused_before_the_backup() {
    let env = Env::new();
    env.create_repo();
    write(&env.path("src/f"), b"content");
    let src = env.path("src");
    // Eleven tags of 100 KiB (one argument may hold at most 128 KiB).
    let tags: Vec<String> = (0..11).map(|i| format!("k{i}:{}", "v".repeat(100 << 10))).collect();
    let mut args = vec!["snapshot", "create", src.to_str().unwrap()];
    for tag in &tags {
        args.extend(["--tags", tag.as_str()]);
    }
    let out = env.run(&args);
    one_error_line(&out, "a snapshot takes at most 1048576");
    let list = env.run(&["snapshot", "list", "--all", "--json"]);
    assert_eq!(String::from_utf8_lossy(&list.stdout).trim(), "[]");
}
