//! Restoring into folders that are not blank slates: a symlink where a file goes (with `--overwrite`), and a
//! default ACL that would hand new files other permissions than the snapshot holds.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Command;

use crate::support::{text, tool_available, Env};
use crate::tree_gen::assert_same_tree;

#[test]
fn overwrite_replaces_a_symlink_instead_of_writing_through_it() {
    let env = Env::new();
    env.create_repo();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a.txt"), b"restored contents").unwrap();
    fs::set_permissions(src.join("a.txt"), fs::Permissions::from_mode(0o600)).unwrap();
    let snap = env.snapshot(&src);

    let victim = env.path("victim.txt");
    fs::write(&victim, b"must not change").unwrap();
    fs::set_permissions(&victim, fs::Permissions::from_mode(0o644)).unwrap();
    let before = fs::metadata(&victim).unwrap();
    let out = env.path("out");
    fs::create_dir_all(&out).unwrap();
    std::os::unix::fs::symlink(&victim, out.join("a.txt")).unwrap();

    env.ok(&["restore", text(&snap, "/id"), out.to_str().unwrap(), "--overwrite"]);
    let restored = fs::symlink_metadata(out.join("a.txt")).unwrap();
    assert!(restored.file_type().is_file(), "the link was replaced by the file");
    assert_eq!(fs::read(out.join("a.txt")).unwrap(), b"restored contents");
    assert_eq!(restored.mode() & 0o7777, 0o600);
    let after = fs::metadata(&victim).unwrap();
    assert_eq!(fs::read(&victim).unwrap(), b"must not change");
    assert_eq!((after.mode(), after.mtime(), after.uid()), (before.mode(), before.mtime(), before.uid()));
}

#[test]
fn modes_survive_a_default_acl_on_the_target() {
    if !tool_available("setfacl", "--version") {
        return;
    }
    let env = Env::new();
    env.create_repo();
    let src = env.path("src");
    fs::create_dir_all(src.join("sub")).unwrap();
    for (name, mode) in [("shared.txt", 0o644), ("tool.sh", 0o755), ("sub/group.txt", 0o664)] {
        fs::write(src.join(name), name.as_bytes()).unwrap();
        fs::set_permissions(src.join(name), fs::Permissions::from_mode(mode)).unwrap();
    }
    let snap = env.snapshot(&src);

    // New entries in `out` get no group or other permissions, whatever mode they are created with.
    let out = env.path("out");
    fs::create_dir_all(&out).unwrap();
    let acl = Command::new("setfacl").args(["-d", "-m", "u::rwx,g::---,o::---"]).arg(&out).status().unwrap();
    assert!(acl.success(), "setfacl failed (does the file system support ACLs?)");
    fs::write(out.join("probe"), b"").unwrap();
    assert_eq!(fs::metadata(out.join("probe")).unwrap().mode() & 0o077, 0, "the default ACL applies");
    fs::remove_file(out.join("probe")).unwrap();

    env.ok(&["restore", text(&snap, "/id"), out.to_str().unwrap()]);
    assert_same_tree(&src, &out);
}
