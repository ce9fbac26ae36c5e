//! The full round trip on the tree the engine issue describes, then incremental behaviour on it.

use std::fs;
use std::io::Write;

use crate::support::{num, text, Env};
use crate::tree_gen::{assert_same_tree, build_tree, TreeSpec};

const BIG: usize = 200 << 20;
const SMALL_FILES: usize = 10_000;

#[test]
fn generated_tree_round_trips_and_rebackups_are_incremental() {
    let env = Env::new();
    let src = env.path("src");
    build_tree(&src, &TreeSpec { small_files: SMALL_FILES, big_file_bytes: BIG });
    env.create_repo();

    // First backup stores everything.
    let first = env.snapshot(&src);
    assert_eq!(first["incomplete"], false, "{first}");
    assert_eq!(num(&first, "/stats/files"), SMALL_FILES as u64 + 14);
    assert!(num(&first, "/stats/bytesRead") >= BIG as u64);
    assert!(num(&first, "/stats/bytesNew") >= BIG as u64);
    assert!(text(&first, "/time").contains('T'), "time is RFC 3339");

    // Restore is byte- and metadata-identical.
    let out = env.path("restored");
    env.ok(&["restore", text(&first, "/id"), out.to_str().unwrap()]);
    assert_same_tree(&src, &out);

    // Second backup of the unchanged tree reads no file and stores no data.
    let second = env.snapshot(&src);
    assert_eq!(num(&second, "/stats/bytesRead"), 0, "{second}");
    assert_eq!(num(&second, "/stats/bytesNew"), 0, "{second}");
    assert_eq!(num(&second, "/stats/filesUnchanged"), num(&first, "/stats/files"));
    assert_eq!(text(&second, "/root"), text(&first, "/root"), "unchanged tree, same root");
    assert_eq!(text(&second, "/parent"), text(&first, "/id"));

    // Insert one byte at the start of the large file: only a chunk or two are new.
    let big_path = src.join("big/large.bin");
    let mut shifted = vec![0x5a];
    shifted.extend_from_slice(&fs::read(&big_path).unwrap());
    fs::File::create(&big_path).unwrap().write_all(&shifted).unwrap();
    let third = env.snapshot(&src);
    assert!(num(&third, "/stats/chunksNew") <= 2, "{third}");
    assert!(num(&third, "/stats/bytesNew") <= 8 << 20, "{third}");
    assert_eq!(num(&third, "/stats/bytesRead"), shifted.len() as u64, "only the changed file is read");

    // The shifted snapshot restores exactly too, and so does a sub-folder and a single file.
    let out3 = env.path("restored3");
    env.ok(&["restore", "latest", out3.to_str().unwrap()]);
    assert_same_tree(&src, &out3);
    let names = env.path("names-only");
    env.ok(&["restore", &format!("{}/names", text(&third, "/id")), names.to_str().unwrap()]);
    assert_same_tree(&src.join("names"), &names);
    let single = env.path("single.bin");
    env.ok(&["restore", &format!("{}/big/large.bin", text(&third, "/id")), single.to_str().unwrap()]);
    assert_eq!(fs::read(&single).unwrap(), shifted);
}

/// A file that appears twice is fetched once: the restore reports the second copy's bytes as copied (but
/// for a last chunk under 64 KiB), and both come out identical.
#[test]
fn repeated_file_is_copied_on_restore() {
    let env = Env::new();
    let src = env.path("src");
    let body = crate::tree_gen::noise(7, 3 << 20);
    crate::tree_gen::write(&src.join("a/original.bin"), &body);
    crate::tree_gen::write(&src.join("b/copy.bin"), &body);
    env.create_repo();
    env.snapshot(&src);
    let out = env.path("restored");
    // One restore thread: `a` is restored before `b`.
    let summary = env.json(&["restore", "latest", out.to_str().unwrap(), "--parallel", "1", "--json"]);
    assert_eq!(num(&summary, "/bytes"), 2 * body.len() as u64, "{summary}");
    // Chunks under 64 KiB are fetched rather than copied; with the default chunker (128 KiB minimum) only a
    // file's last chunk can be that small, and where it falls depends on the repository's random gear seed.
    let copied = num(&summary, "/copiedBytes");
    assert!(copied <= body.len() as u64 && copied > (body.len() - (64 << 10)) as u64, "{summary}");
    assert_same_tree(&src, &out);
}

#[test]
fn list_ls_and_delete() {
    let env = Env::new();
    let src = env.path("src");
    build_tree(&src, &TreeSpec { small_files: 20, big_file_bytes: 1 << 20 });
    env.create_repo();
    let a = env.json(&[
        "snapshot",
        "create",
        src.to_str().unwrap(),
        "--json",
        "--tags",
        "kind:test",
        "--description",
        "first",
    ]);
    let b = env.snapshot(&src);
    let list = env.json(&["snapshot", "list", "--json"]);
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    for field in ["id", "time", "source", "root", "stats"] {
        assert!(list[0].get(field).is_some(), "snapshot list --json lacks {field}");
    }
    assert_eq!(list[0]["tags"]["kind"], "test");
    assert_eq!(list[0]["description"], "first");
    assert_eq!(text(&list[0], "/source/path"), fs::canonicalize(&src).unwrap().to_str().unwrap());

    // ls by unique prefix and `latest`, with non-UTF-8 names shown lossily.
    let id = text(&a, "/id");
    let ls = env.ok(&["ls", &format!("{}/names", &id[..8])]);
    let listing = String::from_utf8_lossy(&ls.stdout);
    assert!(listing.contains("ünïcødé-文件-🙂.txt"), "{listing}");
    assert!(listing.contains("with space"), "{listing}");
    let json = env.json(&["ls", "latest", "--json", "-r"]);
    assert!(json.as_array().unwrap().iter().any(|e| e["name"] == "links/dangling" && e["target"] == "does/not/exist"));

    env.ok(&["snapshot", "delete", text(&b, "/id")]);
    let list = env.json(&["snapshot", "list", "--json"]);
    assert_eq!(list.as_array().unwrap().len(), 1);
    let gone = env.run(&["ls", text(&b, "/id")]);
    assert_eq!(gone.status.code(), Some(1));
}
