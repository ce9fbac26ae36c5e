//! Generates test trees and compares trees byte for byte and metadata for metadata.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use filetime::FileTime;

/// Deterministic pseudo-random bytes (xorshift), fast enough for hundreds of MiB.
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Text-like bytes that compress.
pub fn text(seed: u64, len: usize) -> Vec<u8> {
    const WORDS: &[&str] = &["backup", "chunk", "the", "of", "repository", "snapshot", "pack", "index", "tree", "and"];
    let picks = noise(seed, len / 4 + 16);
    let mut out = Vec::with_capacity(len + 16);
    let mut i = 0;
    while out.len() < len {
        out.extend_from_slice(WORDS[picks[i % picks.len()] as usize % WORDS.len()].as_bytes());
        out.push(if picks[(i + 1) % picks.len()].is_multiple_of(13) { b'\n' } else { b' ' });
        i += 1;
    }
    out.truncate(len);
    out
}

pub fn write(path: &Path, data: &[u8]) {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).unwrap();
    }
    fs::File::create(path).unwrap().write_all(data).unwrap();
}

fn set_mtime(path: &Path, secs: i64, nanos: u32) {
    filetime::set_symlink_file_times(
        path,
        FileTime::from_unix_time(secs, nanos),
        FileTime::from_unix_time(secs, nanos),
    )
    .unwrap();
}

/// What the full tree holds, for assertions.
pub struct TreeSpec {
    pub small_files: usize,
    pub big_file_bytes: usize,
}

/// Builds the tree the engine issue asks for: empty files, a large file, many small files, symlinks,
/// non-UTF-8 and unicode names, unusual modes and mtimes.
pub fn build_tree(root: &Path, spec: &TreeSpec) {
    fs::create_dir_all(root).unwrap();
    // A large file: half random, half text.
    let mut big = noise(1, spec.big_file_bytes / 2);
    big.extend_from_slice(&text(2, spec.big_file_bytes - big.len()));
    write(&root.join("big/large.bin"), &big);
    // Many small files in nested folders.
    for i in 0..spec.small_files {
        let dir = root.join(format!("small/d{:02}/e{:02}", i % 37, i % 11));
        let data =
            if i.is_multiple_of(2) { text(i as u64 + 10, 1 + i % 3000) } else { noise(i as u64 + 10, 1 + i % 5000) };
        write(&dir.join(format!("f{i:05}.dat")), &data);
    }
    // Empty files and an empty folder.
    write(&root.join("empty/zero"), b"");
    write(&root.join("empty/also-zero"), b"");
    fs::create_dir_all(root.join("empty/nothing-here")).unwrap();
    // Names: unicode, non-UTF-8, spaces and leading dashes.
    write(&root.join("names/ünïcødé-文件-🙂.txt"), b"unicode");
    write(&root.join(Path::new("names").join(OsStr::from_bytes(b"latin1-\xe9t\xe9"))), b"not utf-8");
    write(&root.join("names/with space"), b"space");
    write(&root.join("names/-dash"), b"dash");
    // Symlinks: relative, absolute, dangling, to a folder.
    fs::create_dir_all(root.join("links")).unwrap();
    std::os::unix::fs::symlink("../names/with space", root.join("links/rel")).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", root.join("links/abs")).unwrap();
    std::os::unix::fs::symlink("does/not/exist", root.join("links/dangling")).unwrap();
    std::os::unix::fs::symlink("../small", root.join("links/dir")).unwrap();
    // Modes.
    write(&root.join("modes/exec.sh"), b"#!/bin/sh\necho hi\n");
    fs::set_permissions(root.join("modes/exec.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    write(&root.join("modes/private"), b"secret");
    fs::set_permissions(root.join("modes/private"), fs::Permissions::from_mode(0o600)).unwrap();
    write(&root.join("modes/setgid-ish"), b"x");
    fs::set_permissions(root.join("modes/setgid-ish"), fs::Permissions::from_mode(0o2750)).unwrap();
    // Restore creates files with their mode: one it cannot write to afterwards, one the usual umask (022)
    // would narrow, and one with setuid (set after the owner, which clears it).
    for (name, mode) in [("read-only", 0o444), ("world-writable", 0o666), ("setuid", 0o4755)] {
        write(&root.join("modes").join(name), name.as_bytes());
        fs::set_permissions(root.join("modes").join(name), fs::Permissions::from_mode(mode)).unwrap();
    }
    fs::create_dir_all(root.join("modes/locked-dir")).unwrap();
    write(&root.join("modes/locked-dir/inside"), b"in");
    fs::set_permissions(root.join("modes/locked-dir"), fs::Permissions::from_mode(0o700)).unwrap();
    // Mtimes: old, with nanoseconds, and before 1970; folders last so their mtimes stick.
    set_mtime(&root.join("modes/exec.sh"), 1_000_000_000, 123_456_789);
    set_mtime(&root.join("modes/private"), -86_400, 0);
    set_mtime(&root.join("links/rel"), 1_500_000_000, 42);
    for dir in ["modes/locked-dir", "modes", "links", "names", "empty/nothing-here", "empty"] {
        set_mtime(&root.join(dir), 1_600_000_000, 7);
    }
}

/// One entry's comparable state.
#[derive(Debug, PartialEq, Eq)]
pub struct Entry {
    pub kind: char,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: (i64, i64),
    pub size: u64,
    pub content: Option<[u8; 32]>,
    pub link: Option<Vec<u8>>,
}

/// Every entry under `root` by relative path (root itself excluded).
pub fn snapshot_tree(root: &Path) -> BTreeMap<PathBuf, Entry> {
    let mut out = BTreeMap::new();
    visit(root, root, &mut out);
    out
}

fn visit(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Entry>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let meta = fs::symlink_metadata(&path).unwrap();
        let ft = meta.file_type();
        let kind = if ft.is_dir() {
            'd'
        } else if ft.is_symlink() {
            'l'
        } else if ft.is_file() {
            'f'
        } else {
            '?'
        };
        let content = ft.is_file().then(|| *blake3::hash(&fs::read(&path).unwrap()).as_bytes());
        let link = ft.is_symlink().then(|| fs::read_link(&path).unwrap().as_os_str().as_bytes().to_vec());
        out.insert(
            path.strip_prefix(root).unwrap().to_path_buf(),
            Entry {
                kind,
                mode: meta.mode(),
                uid: meta.uid(),
                gid: meta.gid(),
                mtime: (meta.mtime(), meta.mtime_nsec()),
                size: if ft.is_file() { meta.len() } else { 0 },
                content,
                link,
            },
        );
        if ft.is_dir() {
            visit(root, &path, out);
        }
    }
}

/// Asserts two trees are identical in content and metadata, naming the first difference.
pub fn assert_same_tree(expected: &Path, actual: &Path) {
    let a = snapshot_tree(expected);
    let b = snapshot_tree(actual);
    let missing: Vec<_> = a.keys().filter(|k| !b.contains_key(*k)).collect();
    let extra: Vec<_> = b.keys().filter(|k| !a.contains_key(*k)).collect();
    assert!(missing.is_empty() && extra.is_empty(), "missing {missing:?}, unexpected {extra:?}");
    for (path, entry) in &a {
        assert_eq!(entry, &b[path], "{} differs", path.display());
    }
}
