//! A repository on a read-only file system (a mounted backup disk, a snapshot of a volume): listing,
//! restoring and checking work without writing; a backup fails with one line that names the cause once.
//! Uses a read-only bind mount (needs root; skipped with a message otherwise).

use std::ffi::OsStr;
use std::process::Command;

use crate::support::{mount, stderr, Env};
use crate::tree_gen::{assert_same_tree, noise, write};

#[test]
fn a_read_only_repository_can_be_read_and_refuses_backups_clearly() {
    let env = Env::new();
    env.create_repo();
    let src = env.path("src");
    write(&src.join("a.bin"), &noise(1, 300 << 10));
    write(&src.join("sub/b.txt"), b"text");
    env.snapshot(&src);

    let ro = env.path("ro");
    let repo = env.repo();
    let test = "a_read_only_repository_can_be_read_and_refuses_backups_clearly";
    let Some(_mount) = mount(&[OsStr::new("--bind"), repo.as_os_str()], &ro, test) else { return };
    let remounted = Command::new("mount").args(["-o", "remount,ro,bind"]).arg(&ro).status().unwrap();
    assert!(remounted.success());

    env.ok(&["repository", "connect", "filesystem", "--path", ro.to_str().unwrap()]);
    let list = env.json(&["snapshot", "list", "--json"]);
    assert_eq!(list.as_array().unwrap().len(), 1);
    let restored = env.path("restored");
    env.ok(&["restore", "latest", restored.to_str().unwrap()]);
    assert_same_tree(&src, &restored);
    env.ok(&["repository", "check", "--read-all-data"]);

    write(&src.join("c.bin"), &noise(2, 100 << 10));
    let out = env.run(&["snapshot", "create", src.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    let line = err.lines().find(|l| l.starts_with("ERROR: ")).unwrap_or_else(|| panic!("no ERROR line: {err}"));
    assert_eq!(line.matches("Read-only file system").count(), 1, "the cause named once: {line}");
    assert_eq!(err.matches("ERROR:").count(), 1, "{err}");
}
