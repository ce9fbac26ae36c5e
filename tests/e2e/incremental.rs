//! Incremental behaviour beyond the big round trip: change detection by metadata, and dedup across paths.

use std::fs;

use crate::support::{num, Env};
use crate::tree_gen::{assert_same_tree, noise, write};

#[test]
fn touched_file_is_reread_and_others_are_not() {
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("a.bin"), &noise(1, 3 << 20));
    write(&src.join("b.bin"), &noise(2, 3 << 20));
    env.create_repo();
    env.snapshot(&src);
    // Same content, new mtime: re-read but nothing new stored.
    filetime::set_file_mtime(src.join("a.bin"), filetime::FileTime::from_unix_time(1_234_567_890, 0)).unwrap();
    let second = env.snapshot(&src);
    assert_eq!(num(&second, "/stats/bytesRead"), 3 << 20, "{second}");
    assert_eq!(num(&second, "/stats/bytesNew"), 0, "{second}");
    assert_eq!(num(&second, "/stats/filesUnchanged"), 1);
}

#[test]
fn identical_data_in_another_folder_is_deduplicated() {
    let env = Env::new();
    let data = noise(9, 5 << 20);
    write(&env.path("one/x.bin"), &data);
    write(&env.path("two/y.bin"), &data);
    env.create_repo();
    let first = env.snapshot(&env.path("one"));
    assert!(num(&first, "/stats/bytesNew") >= 5 << 20);
    let second = env.snapshot(&env.path("two"));
    assert_eq!(num(&second, "/stats/bytesNew"), 0, "{second}");
    assert_eq!(num(&second, "/stats/bytesRead"), 5 << 20, "new source: no parent, so read");
    let out = env.path("out");
    env.ok(&["restore", "latest", out.to_str().unwrap()]);
    assert_same_tree(&env.path("two"), &out);
    assert_eq!(fs::read(out.join("y.bin")).unwrap(), data);
}
