//! What a snapshot can be taken of beyond an ordinary folder: a single file, and a folder large enough to be
//! stored in tree pages (listed, restored and listed again page by page).

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use crate::support::{num, text, Env};
use crate::tree_gen::{assert_same_tree, noise};

#[test]
fn single_file_source_restores_into_target() {
    let env = Env::new();
    env.create_repo();
    let file = env.path("data/report.bin");
    fs::create_dir_all(file.parent().unwrap()).unwrap();
    let content = noise(7, 5 << 20); // several chunks
    fs::write(&file, &content).unwrap();
    fs::set_permissions(&file, fs::Permissions::from_mode(0o640)).unwrap();
    filetime::set_file_mtime(&file, filetime::FileTime::from_unix_time(1_500_000_000, 5)).unwrap();

    let snap = env.snapshot(&file);
    assert_eq!((num(&snap, "/stats/files"), num(&snap, "/stats/dirs")), (1, 0), "{snap}");
    assert_eq!(num(&snap, "/stats/bytes"), content.len() as u64);
    assert_eq!(text(&snap, "/source/path"), fs::canonicalize(&file).unwrap().to_str().unwrap());
    let id = text(&snap, "/id");
    let ls = env.json(&["ls", id, "--json"]);
    assert_eq!(ls.as_array().map(Vec::len), Some(1), "{ls}");
    assert_eq!(ls[0]["name"], "report.bin");

    // Into a new folder, and into a folder that already holds other files (they are left alone).
    let target = env.path("out/new");
    env.ok(&["restore", id, target.to_str().unwrap()]);
    assert_same_tree(file.parent().unwrap(), &target);
    let busy = env.path("out/busy");
    fs::create_dir_all(&busy).unwrap();
    fs::write(busy.join("other.txt"), b"keep me").unwrap();
    env.ok(&["restore", id, busy.to_str().unwrap()]);
    assert_eq!(fs::read(busy.join("report.bin")).unwrap(), content);
    assert_eq!(fs::read(busy.join("other.txt")).unwrap(), b"keep me");
    let meta = fs::metadata(busy.join("report.bin")).unwrap();
    assert_eq!((meta.mode() & 0o7777, meta.mtime()), (0o640, 1_500_000_000));
    // A second restore over it is refused without --overwrite, and nothing is touched.
    let again = env.run(&["restore", id, busy.to_str().unwrap()]);
    assert!(!again.status.success());
    assert_eq!(fs::read(busy.join("report.bin")).unwrap(), content);

    // The next snapshot of the same file takes the first as parent and reads nothing.
    let second = env.snapshot(&file);
    assert_eq!(text(&second, "/parent"), id);
    assert_eq!(text(&second, "/root"), text(&snap, "/root"));
    assert_eq!(num(&second, "/stats/bytesRead"), 0);
}

#[test]
fn paged_folder_lists_and_restores_every_entry_in_order() {
    let env = Env::new();
    env.create_repo();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    const N: usize = 20_000; // more than two tree pages
    for i in (0..N).rev() {
        fs::write(src.join(format!("e{:06}", i * 7919 % N)), if i % 1000 == 0 { b"x".as_slice() } else { b"" })
            .unwrap();
    }
    let snap = env.snapshot(&src);
    assert_eq!(num(&snap, "/stats/files"), N as u64);
    let id = text(&snap, "/id");

    let ls = env.json(&["ls", id, "--json"]);
    let names: Vec<&str> = ls.as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap()).collect();
    let expected: Vec<String> = (0..N).map(|i| format!("e{i:06}")).collect();
    assert_eq!(names, expected);
    let plain = env.ok(&["ls", id]);
    assert_eq!(String::from_utf8(plain.stdout).unwrap().lines().count(), N);
    let found = env.json(&["ls", &format!("{id}/e019999"), "--json"]);
    assert_eq!(found[0]["size"], 0);

    let out = env.path("restored");
    env.ok(&["restore", id, out.to_str().unwrap()]);
    assert_same_tree(&src, &out);
}
