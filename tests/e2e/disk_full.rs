//! A backup onto a filesystem that fills up: one clear error, no snapshot, a consistent repository, and
//! room made again by maintenance. A restore onto one: it stops at the first write that does not fit, with
//! one clear error, instead of trying (and warning about) every remaining file. Uses small tmpfs mounts
//! (needs root; skipped with a message otherwise).

use std::ffi::OsStr;
use std::path::Path;

use crate::support::{file_sizes, mount, stderr, Env, Mount};
use crate::tree_gen::{assert_same_tree, noise, write};

/// A tmpfs of `mib` MiB mounted at `path`, or `None` (with a message naming `test`) when that is not allowed.
fn tmpfs(path: &Path, mib: u32, test: &str) -> Option<Mount> {
    let size = format!("size={mib}m");
    let args: [&OsStr; 5] = ["-t", "tmpfs", "-o", &size, "tmpfs"].map(OsStr::new);
    mount(&args, path, test)
}

#[test]
fn disk_full_during_backup_fails_cleanly() {
    let env = Env::new();
    let small = env.path("small");
    let Some(_mount) = tmpfs(&small, 24, "disk_full_during_backup_fails_cleanly") else { return };
    let repo = small.join("repo");
    env.ok(&["repository", "create", "filesystem", "--path", repo.to_str().unwrap(), "--pack-size-mib", "1"]);
    let src = env.path("src");
    for i in 0..5 {
        write(&src.join(format!("big{i}.bin")), &noise(i, 8 << 20));
    }
    let out = env.run(&["snapshot", "create", src.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("No space left on device"), "{err}");
    assert_eq!(err.matches("ERROR:").count(), 1, "{err}");
    let list = env.json(&["snapshot", "list", "--json"]);
    assert_eq!(list.as_array().unwrap().len(), 0, "no snapshot may be recorded");
    env.ok(&["repository", "check", "--read-all-data"]);
    // Maintenance removes what the failed backup left, and a smaller backup then fits.
    env.ok(&["maintenance", "run", "--full", "--safety", "none"]);
    std::fs::remove_dir_all(&src).unwrap();
    write(&src.join("small.bin"), &noise(9, 4 << 20));
    env.snapshot(&src);
    env.ok(&["repository", "check", "--read-all-data"]);
    let restored = env.path("restored");
    env.ok(&["restore", "latest", restored.to_str().unwrap()]);
    assert_same_tree(&src, &restored);
}

#[test]
fn restore_onto_a_full_disk_stops_at_the_first_failed_write() {
    let env = Env::new();
    let small = env.path("small");
    let Some(_mount) = tmpfs(&small, 4, "restore_onto_a_full_disk_stops_at_the_first_failed_write") else { return };
    env.create_repo();
    let src = env.path("src");
    for folder in 0..4 {
        for file in 0..50 {
            write(&src.join(format!("f{folder}/file{file}.bin")), &noise(folder * 100 + file, 100 << 10));
        }
    }
    env.snapshot(&src);
    let target = small.join("restored");
    let out = env.run(&["restore", "latest", target.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "one line, no warning per file: {err}");
    assert!(err.starts_with("ERROR: restore stopped after "), "{err}");
    assert!(err.contains("No space left on device"), "{err}");
    // Stopped early: far fewer than the 200 files were even attempted past the point the disk filled, and
    // every file left there is whole (those cut short were removed).
    let files = file_sizes(&target).len();
    assert!(files < 200, "{files} files restored onto a 4 MiB disk");
    for folder in 0..4 {
        for file in 0..50 {
            let name = format!("f{folder}/file{file}.bin");
            if let Ok(bytes) = std::fs::read(target.join(&name)) {
                assert_eq!(bytes, noise(folder * 100 + file, 100 << 10), "{name} left cut short");
            }
        }
    }
    // The same snapshot restores in full where there is room.
    let roomy = env.path("roomy");
    env.ok(&["restore", "latest", roomy.to_str().unwrap()]);
    assert_same_tree(&src, &roomy);
}
