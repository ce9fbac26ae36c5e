//! A backup onto a filesystem that fills up: one clear error, no snapshot, a consistent repository, and
//! room made again by maintenance. Uses a 24 MiB tmpfs (needs root; skipped with a message otherwise).

use std::path::PathBuf;
use std::process::Command;

use crate::support::{stderr, Env};
use crate::tree_gen::{assert_same_tree, noise, write};

/// Unmounts on drop, so a failing test leaves no mount behind.
struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn disk_full_during_backup_fails_cleanly() {
    let env = Env::new();
    let small = env.path("small");
    std::fs::create_dir_all(&small).unwrap();
    let mounted = Command::new("mount").args(["-t", "tmpfs", "-o", "size=24m", "tmpfs"]).arg(&small).output();
    match mounted {
        Ok(out) if out.status.success() => {}
        other => {
            eprintln!("SKIPPED disk_full_during_backup_fails_cleanly: cannot mount a tmpfs ({other:?})");
            return;
        }
    }
    let _mount = Mount(small.clone());
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
