//! FIFOs and device nodes: recorded by a backup and recreated by restore (device nodes only as root, which
//! is checked when the test runs as root).

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::process::Command;

use crate::support::{num, text, Env};
use crate::tree_gen::{assert_same_tree, write};

fn run(program: &str, args: &[&str]) {
    let status = Command::new(program).args(args).status().unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(status.success(), "{program} {args:?}: {status}");
}

fn is_root() -> bool {
    fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false)
}

fn mkfifo(path: &Path, mode: &str) {
    run("mkfifo", &["-m", mode, path.to_str().unwrap()]);
}

#[test]
fn fifos_and_device_nodes_are_recreated() {
    let env = Env::new();
    env.create_repo();
    let src = env.path("src");
    write(&src.join("plain.txt"), b"next to a pipe");
    mkfifo(&src.join("pipe"), "0640");
    fs::create_dir_all(src.join("deeper")).unwrap();
    mkfifo(&src.join("deeper/other-pipe"), "0600");
    let root = is_root();
    if root {
        // The same numbers as /dev/null (1, 3) and a block device that need not exist (7, 200: a loop).
        run("mknod", &["-m", "0620", src.join("null-like").to_str().unwrap(), "c", "1", "3"]);
        run("mknod", &["-m", "0600", src.join("loop-like").to_str().unwrap(), "b", "7", "200"]);
    }

    let snap = env.snapshot(&src);
    assert_eq!(snap["incomplete"], false, "{snap}");
    let out = env.path("restored");
    let summary = env.json(&["restore", text(&snap, "/id"), out.to_str().unwrap(), "--json"]);
    assert_eq!(num(&summary, "/fifos"), 2, "{summary}");
    let devices = if root { 2 } else { 0 };
    assert_eq!(num(&summary, "/devices"), devices, "{summary}");
    assert_eq!(num(&summary, "/skippedSpecial"), 2 - devices, "{summary}");

    let pipe = fs::symlink_metadata(out.join("pipe")).unwrap();
    assert!(pipe.file_type().is_fifo());
    assert_eq!(pipe.mode() & 0o7777, 0o640);
    // Byte- and metadata-identical, FIFOs (and device nodes, made only as root) included.
    assert_same_tree(&src, &out);
    if root {
        for name in ["null-like", "loop-like"] {
            let (a, b) = (fs::symlink_metadata(src.join(name)).unwrap(), fs::symlink_metadata(out.join(name)).unwrap());
            assert_eq!((a.mode(), a.rdev()), (b.mode(), b.rdev()), "{name}");
        }
        assert!(fs::symlink_metadata(out.join("null-like")).unwrap().file_type().is_char_device());
        assert!(fs::symlink_metadata(out.join("loop-like")).unwrap().file_type().is_block_device());
    }

    // A second restore with --overwrite replaces them in place.
    env.ok(&["restore", text(&snap, "/id"), out.to_str().unwrap(), "--overwrite"]);
    assert!(fs::symlink_metadata(out.join("deeper/other-pipe")).unwrap().file_type().is_fifo());
}
