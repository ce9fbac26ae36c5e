//! Restoring into folders that are not blank slates: a symlink where a file goes (with `--overwrite`), a
//! default ACL that would hand new files other permissions than the snapshot holds, and a thousand folders
//! where files go (errors listed up to a limit, then counted).

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Command;

use crate::support::{stderr, text, tool_available, Env};
use crate::tree_gen::{assert_same_tree, write};

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

/// Entries that cannot be restored are listed up to a limit and counted beyond it: a restore over a
/// thousand folders where its files go finishes with exit status 3, the first 1,000 errors and the count.
#[test]
fn errors_beyond_a_thousand_are_counted_not_listed() {
    let env = Env::new();
    env.create_repo();
    let src = env.path("src");
    let out = env.path("out");
    for i in 0..1010 {
        write(&src.join(format!("f{i:04}")), b"");
        // A folder where the file goes: opening it for writing fails, even with --overwrite.
        std::fs::create_dir_all(out.join(format!("f{i:04}"))).unwrap();
    }
    env.snapshot(&src);
    let run = env.run(&["restore", "latest", out.to_str().unwrap(), "--overwrite", "--json"]);
    assert_eq!(run.status.code(), Some(3), "{}", stderr(&run));
    let summary: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(summary["errorCount"], 1010);
    assert_eq!(summary["errors"].as_array().unwrap().len(), 1000);
    assert!(stderr(&run).contains("1010 entries could not be restored"), "{}", stderr(&run));
    let run = env.run(&["restore", "latest", out.to_str().unwrap(), "--overwrite"]);
    assert_eq!(run.status.code(), Some(3));
    let err = stderr(&run);
    assert_eq!(err.lines().filter(|l| l.starts_with("  error: ")).count(), 1000, "{err}");
    assert!(err.contains("  ... and 10 more errors"), "{err}");
}
