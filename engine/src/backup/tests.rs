//! Backups of large folders and of single files, on in-memory storage. The tree ids are checked against a
//! reference built the way the pipeline worked before folders were streamed (list everything, sort, build
//! every node, `paginate`), so dedup with snapshots made by earlier builds keeps working.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use super::{run_backup, BackupOptions, Progress};
use crate::access::Access;
use crate::format::CreateOptions;
use crate::ids::TreeId;
use crate::restore::{restore, RestoreOptions, RestoreProgress};
use crate::snapshot::{Snapshot, Source};
use crate::storage::MemoryStorage;
use crate::tree::{paginate, FileContent, Node, NodeKind, TreeRecord};
use crate::Repository;

fn repository() -> Repository {
    Repository::create(Arc::new(MemoryStorage::new()), b"pw", &CreateOptions::default()).unwrap()
}

fn backup(repo: &Repository, path: &Path, names_in_memory: usize, parent: Option<Snapshot>) -> Snapshot {
    backup_with(repo, path, |o| {
        o.names_in_memory = names_in_memory;
        o.parent = parent;
    })
}

fn backup_with(repo: &Repository, path: &Path, set: impl FnOnce(&mut BackupOptions)) -> Snapshot {
    let source = Source { host: "h".into(), user_name: "u".into(), path: path.display().to_string() };
    let mut options = BackupOptions::new(path.to_path_buf(), source);
    set(&mut options);
    let snap = run_backup(repo, options, Arc::new(Progress::default())).unwrap().snapshot;
    assert!(!snap.incomplete, "{:?}", snap.error_messages);
    snap
}

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: `c` is a valid NUL-terminated path for the duration of the call.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o640) }, 0, "mkfifo {}", path.display());
}

/// A name that sorts far from where it was created, sometimes not UTF-8.
fn scrambled(i: u32) -> Vec<u8> {
    let mut name = format!("{:08x}", i.wrapping_mul(2_654_435_761)).into_bytes();
    if i.is_multiple_of(11) {
        name.push(0xfe);
    }
    name
}

/// 20 000 entries at the top (empty and small files, symlinks, FIFOs, sub-folders), names created out of
/// order.
fn make_big_folder(root: &Path) -> usize {
    let mut entries = 0;
    for i in 0..20_000u32 {
        let path = root.join(OsStr::from_bytes(&scrambled(i)));
        match i % 400 {
            0..=359 => std::fs::write(&path, b"").unwrap(),
            360..=389 => std::fs::write(&path, format!("small file {i}")).unwrap(),
            390..=395 => std::os::unix::fs::symlink(format!("../target-{i}"), &path).unwrap(),
            396 => mkfifo(&path),
            _ => {
                std::fs::create_dir(&path).unwrap();
                for j in 0..5 {
                    std::fs::write(path.join(format!("inner-{j}")), format!("{i}/{j}")).unwrap();
                }
            }
        }
        entries += 1;
    }
    entries
}

/// The tree id the pipeline produced before folders were streamed: every node built, then `paginate`.
/// Handles files smaller than the minimum chunk (one chunk, or none when empty).
fn reference_tree(repo: &Repository, dir: &Path) -> TreeId {
    let key = repo.hashing_key();
    let mut names: Vec<Vec<u8>> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().as_bytes().to_vec()).collect();
    names.sort();
    let nodes: Vec<Node> = names
        .into_iter()
        .map(|name| {
            let path = dir.join(OsStr::from_bytes(&name));
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let ft = meta.file_type();
            let kind = if ft.is_file() {
                let data = std::fs::read(&path).unwrap();
                assert!(data.len() < repo.chunker_params().min as usize);
                let ids = if data.is_empty() { vec![] } else { vec![key.content_id(&data)] };
                NodeKind::File { content: FileContent::Inline(ids) }
            } else if ft.is_dir() {
                NodeKind::Dir { tree: reference_tree(repo, &path) }
            } else if ft.is_symlink() {
                NodeKind::Symlink { target: std::fs::read_link(&path).unwrap().as_os_str().as_bytes().to_vec() }
            } else {
                NodeKind::Special { rdev: meta.rdev() }
            };
            Node {
                name,
                kind,
                mode: meta.mode(),
                uid: meta.uid(),
                gid: meta.gid(),
                mtime_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
                ctime_ns: meta.ctime() * 1_000_000_000 + meta.ctime_nsec(),
                inode: meta.ino(),
                size: if ft.is_file() { meta.len() } else { 0 },
            }
        })
        .collect();
    let pages = paginate(nodes);
    let record = if pages.len() == 1 {
        TreeRecord::Entries(pages.into_iter().next().unwrap())
    } else {
        TreeRecord::Pages(pages.into_iter().map(|p| key.content_id(&TreeRecord::Entries(p).encode())).collect())
    };
    key.content_id(&record.encode())
}

#[test]
fn spilled_folder_listing_stores_the_same_trees_as_in_memory() {
    let src = tempfile::tempdir().unwrap();
    let entries = make_big_folder(src.path());
    let repo = repository();

    // Runs of 1 000 names: the top folder is sorted through 20 spilled runs.
    let spilled = backup(&repo, src.path(), 1_000, None);
    // One run: sorted in memory, as before.
    let in_memory = backup(&repo, src.path(), 1 << 20, None);
    assert_eq!(spilled.root, in_memory.root);
    assert_eq!(spilled.root, reference_tree(&repo, src.path()), "same bytes as the pre-streaming pipeline");
    assert!(
        matches!(TreeRecord::decode(&repo.read_blob(&spilled.root).unwrap()).unwrap(), TreeRecord::Pages(p) if p.len() > 2)
    );
    assert_eq!(in_memory.stats.bytes_stored, 0, "the second backup found every tree stored");
    let s = &spilled.stats;
    assert_eq!((s.files, s.dirs, s.symlinks), (18_000 + 1_500 + 150 * 5, 150 + 1, 300));

    // The next backup compares against the parent page by page: nothing is read again.
    let again = backup(&repo, src.path(), 1_000, Some(spilled.clone()));
    assert_eq!(again.root, spilled.root);
    assert_eq!(again.stats.files_unchanged, s.files);
    assert_eq!(again.stats.bytes_read, 0);

    // Restore streams the pages back out.
    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("r");
    let summary = restore(
        &repo,
        Some(again.root),
        None,
        &target,
        &RestoreOptions::default(),
        &RestoreProgress::default(),
        &AtomicBool::new(false),
    )
    .unwrap();
    assert!(summary.errors.is_empty(), "{:?}", summary.errors);
    assert_eq!((summary.files, summary.fifos), (s.files, 50));
    assert_eq!(std::fs::read_dir(&target).unwrap().count(), entries);
    for i in (0..20_000u32).step_by(7) {
        let name = scrambled(i);
        let (a, b) = (src.path().join(OsStr::from_bytes(&name)), target.join(OsStr::from_bytes(&name)));
        let meta = std::fs::symlink_metadata(&b).unwrap();
        assert_eq!(std::fs::symlink_metadata(&a).unwrap().mode(), meta.mode(), "{}", a.display());
        if meta.is_file() {
            assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        } else if i % 400 == 396 {
            assert!(meta.file_type().is_fifo());
        }
    }

    // Garbage collection and verification walk the pages too (a page at a time): every page is marked,
    // nothing referenced is collected, and everything verifies afterwards.
    let referenced = crate::maintenance::gc::referenced_content(&repo).unwrap();
    let TreeRecord::Pages(pages) = TreeRecord::decode(&repo.read_blob(&again.root).unwrap()).unwrap() else {
        panic!("the root is paged")
    };
    assert!(pages.iter().all(|p| referenced.contains(p)));
    crate::maintenance::gc::collect_garbage(&repo, crate::maintenance::Safety::None).unwrap();
    let options = crate::verify::VerifyOptions { files_percent: 100.0, parallel: 2 };
    let report = crate::verify::verify_snapshots(&repo, &repo.list_snapshots().unwrap(), &options).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert!(report.files >= s.files, "every file visited: {}", report.files);
}

#[test]
fn a_single_file_source_is_a_root_holding_that_file() {
    let src = tempfile::tempdir().unwrap();
    let file = src.path().join("report.txt");
    std::fs::write(&file, b"quarterly numbers").unwrap();
    let repo = repository();
    let snap = backup(&repo, &file, super::names::DEFAULT_RUN, None);
    let nodes = repo.read_tree(&snap.root).unwrap();
    assert_eq!(nodes.len(), 1);
    assert_eq!(nodes[0].name, b"report.txt");
    assert_eq!(nodes[0].size, 17);
    assert_eq!((snap.stats.files, snap.stats.dirs), (1, 0));
    assert!(snap.is_single_file());

    let again = backup(&repo, &file, super::names::DEFAULT_RUN, Some(snap.clone()));
    assert_eq!((again.root, again.stats.files_unchanged, again.stats.bytes_read), (snap.root, 1, 0));
}

/// With a window of one entry (plus one per level of nesting) the walker waits behind every file being read
/// and every sub-folder: the backup must still finish, with the same trees.
#[test]
fn a_one_entry_window_only_slows_the_walk() {
    let src = tempfile::tempdir().unwrap();
    let mut seed = 0u8;
    let mut fill = |dir: &Path, empties: usize| {
        std::fs::create_dir_all(dir).unwrap();
        seed += 1;
        // A file that takes a while to read comes first, so everything after it waits.
        std::fs::write(dir.join("0-first"), vec![seed; 3 << 20]).unwrap();
        for i in 0..empties {
            std::fs::write(dir.join(format!("e{i:05}")), b"").unwrap();
        }
    };
    fill(src.path(), 3_000);
    let mut deep = src.path().to_path_buf();
    for level in 0..6 {
        deep = deep.join(format!("level-{level}"));
        fill(&deep, 50);
        fill(&deep.with_extension("sibling"), 20);
    }
    let repo = repository();
    let tight = backup_with(&repo, src.path(), |o| {
        o.entry_window = 1;
        o.names_in_memory = 16;
        o.readers = 1;
    });
    let roomy = backup(&repo, src.path(), super::names::DEFAULT_RUN, None);
    assert_eq!(tight.root, roomy.root);
    assert_eq!(tight.stats.files, 3_001 + 6 * (51 + 21));
    // Against a parent every file is unchanged, so the walker batches its events: with a full window it
    // must send what it holds before it waits.
    let again = backup_with(&repo, src.path(), |o| {
        o.entry_window = 1;
        o.readers = 1;
        o.parent = Some(roomy.clone());
    });
    assert_eq!(again.root, roomy.root);
    assert_eq!(again.stats.files_unchanged, again.stats.files);
}

/// Memory storage on which storing a data pack takes a while, as on a slow disk or network.
struct SlowPacks(MemoryStorage);

impl crate::storage::Storage for SlowPacks {
    fn put(&self, name: &str, data: &[u8]) -> Result<(), crate::storage::StorageError> {
        if name.starts_with('p') {
            std::thread::sleep(std::time::Duration::from_millis(40));
        }
        self.0.put(name, data)
    }
    fn get(&self, name: &str) -> Result<Vec<u8>, crate::storage::StorageError> {
        self.0.get(name)
    }
    fn get_range(&self, name: &str, offset: u64, length: u64) -> Result<Vec<u8>, crate::storage::StorageError> {
        self.0.get_range(name, offset, length)
    }
    fn list(&self, prefix: &str) -> Result<Vec<crate::storage::BlobMeta>, crate::storage::StorageError> {
        self.0.list(prefix)
    }
    fn delete(&self, name: &str) -> Result<(), crate::storage::StorageError> {
        self.0.delete(name)
    }
    fn stat(&self, name: &str) -> Result<crate::storage::BlobMeta, crate::storage::StorageError> {
        self.0.stat(name)
    }
    fn describe(&self) -> String {
        "slow packs".into()
    }
}

/// `--stats` tells sealing apart from waiting: with storage slower than the workers, the workers' time blocked
/// on the packer's full queue is reported as such, and is not counted as encryption.
#[test]
fn stage_times_separate_encryption_from_waiting_for_storage() {
    let src = tempfile::tempdir().unwrap();
    let mut noise = vec![0u8; 48 << 20];
    blake3::Hasher::new().update(b"stage times").finalize_xof().fill(&mut noise);
    std::fs::write(src.path().join("noise.bin"), &noise).unwrap();
    let options = CreateOptions { pack_size: 1 << 20, ..CreateOptions::default() };
    let repo = Repository::create(Arc::new(SlowPacks(MemoryStorage::new())), b"pw", &options).unwrap();
    let source = Source { host: "h".into(), user_name: "u".into(), path: src.path().display().to_string() };
    let outcome =
        run_backup(&repo, BackupOptions::new(src.path().to_path_buf(), source), Arc::new(Progress::default())).unwrap();
    let stages = outcome.stages;
    // 48 packs of 1 MiB at 40 ms each, two uploaders: about a second of storing, while the workers could
    // fill the queues before it (32 sealed blobs, about 16 MiB, and 4 packs) in milliseconds.
    assert!(stages.worker_blocked_seconds > 0.05, "{stages:?}");
    assert!(stages.encrypt_seconds > 0.0 && stages.hash_seconds > 0.0, "{stages:?}");
    // The scan listed the source folder on its own thread, and says so.
    assert!(stages.scan_seconds > 0.0 && stages.scan_seconds <= stages.wall_seconds, "{stages:?}");
    // Sealing 48 MiB takes milliseconds; the waiting is not in it.
    assert!(stages.encrypt_seconds < stages.worker_blocked_seconds, "{stages:?}");
}

/// Repository access whose claims are answered a little later, as through a server, and whose sessions
/// report the ids in `hidden` as not stored (as if their packs had been retired). With `Some(proved)`, every
/// claimed blob is one the session only proves it holds (as a server client does for another user's
/// content), and the compression of each blob stored is recorded there.
struct LateClaims<'a>(&'a Repository, Hidden, Option<Proved>);

type Hidden = Arc<std::collections::HashSet<crate::ids::ContentId>>;
type Proved = Arc<std::sync::Mutex<Vec<(crate::crypto::keys::BlobClass, crate::compress::Compression)>>>;

struct LateSession(Box<dyn crate::access::BlobSession>, Hidden, Option<Proved>);

impl crate::access::BlobSession for LateSession {
    fn claim(&self, ids: &[crate::ids::ContentId]) -> crate::Result<Vec<bool>> {
        self.start_claim(ids).wait()
    }
    fn start_claim(&self, ids: &[crate::ids::ContentId]) -> crate::access::PendingClaim {
        // Claimed now, in the order asked; the answer arrives later.
        let answer = self.0.claim(ids);
        crate::access::PendingClaim::Waiting(Box::new(move || {
            std::thread::sleep(std::time::Duration::from_millis(1));
            answer
        }))
    }
    fn is_stored(&self, id: &crate::ids::ContentId) -> bool {
        !self.1.contains(id) && self.0.is_stored(id)
    }
    fn proves(&self, _id: &crate::ids::ContentId) -> bool {
        self.2.is_some()
    }
    fn store(&self, blob: crate::access::PreparedBlob<'_>) -> crate::Result<u64> {
        if let Some(proved) = &self.2 {
            proved.lock().unwrap().push((blob.class, blob.compression));
        }
        self.0.store(blob)
    }
    fn commit(self: Box<Self>, snapshot: &Snapshot) -> crate::Result<()> {
        self.0.commit(snapshot)
    }
}

impl Access for LateClaims<'_> {
    fn hashing_key(&self) -> &crate::crypto::keys::HashingKey {
        self.0.hashing_key()
    }
    fn chunker_params(&self) -> crate::chunker::ChunkerParams {
        self.0.chunker_params()
    }
    fn compression_level(&self) -> i32 {
        self.0.compression_level()
    }
    fn list_snapshots(&self) -> crate::Result<Vec<Snapshot>> {
        self.0.list_snapshots()
    }
    fn write_snapshot(&self, snap: &Snapshot) -> crate::Result<()> {
        self.0.write_snapshot(snap)
    }
    fn delete_snapshot(&self, id: &crate::ids::SnapshotId) -> crate::Result<()> {
        self.0.delete_snapshot(id)
    }
    fn read_blob(&self, id: &crate::ids::ContentId) -> crate::Result<Vec<u8>> {
        self.0.read_blob(id)
    }
    fn blob_sizes(&self, ids: &[crate::ids::ContentId]) -> crate::Result<Vec<Option<u32>>> {
        self.0.blob_sizes(ids)
    }
    fn open_session(&self, progress: Arc<Progress>) -> crate::Result<Box<dyn crate::access::BlobSession>> {
        Ok(Box::new(LateSession(self.0.open_session(progress)?, self.1.clone(), self.2.clone())))
    }
}

/// With answers that come late, workers and the tree assembler ask ahead and store what they were told to:
/// everything lands (a direct backup afterwards stores nothing and makes the same root), repeated content
/// is stored once, and the wait is reported as such.
#[test]
fn late_claim_answers_store_everything_once() {
    let src = tempfile::tempdir().unwrap();
    let mut big = vec![0u8; 6 << 20];
    blake3::Hasher::new().update(b"late claims").finalize_xof().fill(&mut big);
    for d in 0..20 {
        let dir = src.path().join(format!("d{d:02}"));
        std::fs::create_dir(&dir).unwrap();
        for f in 0..30 {
            // Every file twice over (d and d+10 hold the same bytes).
            std::fs::write(dir.join(format!("f{f:02}")), format!("file {f} of folder {}", d % 10)).unwrap();
        }
    }
    std::fs::write(src.path().join("big-1"), &big).unwrap();
    std::fs::write(src.path().join("big-2"), &big).unwrap();
    let repo = repository();
    let source = Source { host: "h".into(), user_name: "u".into(), path: src.path().display().to_string() };
    let outcome = run_backup(
        &LateClaims(&repo, Default::default(), None),
        BackupOptions::new(src.path().to_path_buf(), source),
        Arc::new(Progress::default()),
    )
    .unwrap();
    let late = outcome.snapshot;
    assert!(outcome.stages.claim_wait_seconds > 0.0, "{:?}", outcome.stages);
    let unique_small = 10 * 30;
    let big_chunks = late.stats.chunks_total - 20 * 30;
    assert_eq!(late.stats.chunks_new, unique_small + big_chunks / 2, "{:?}", late.stats);

    let direct = backup(&repo, src.path(), 100_000, None);
    assert_eq!(direct.root, late.root);
    assert_eq!((direct.stats.chunks_new, direct.stats.bytes_stored), (0, 0));
}

/// An unchanged file of many chunks (a chunk list) is reused from the parent only when every one of its
/// chunks is still stored, not just its list: the list's pack may stay in use after the chunks' were
/// retired (FORMAT.md §13(c)). Otherwise it is read again and its missing chunk stored again.
#[test]
fn parent_reuse_of_a_listed_file_needs_every_chunk_stored() {
    let options = CreateOptions {
        chunker: crate::chunker::ChunkerParams { min: 1 << 10, avg: 4 << 10, max: 16 << 10 },
        ..CreateOptions::default()
    };
    let repo = Repository::create(Arc::new(MemoryStorage::new()), b"pw", &options).unwrap();
    let src = tempfile::tempdir().unwrap();
    let mut big = vec![0u8; 1 << 20];
    blake3::Hasher::new().update(b"listed").finalize_xof().fill(&mut big);
    std::fs::write(src.path().join("big"), &big).unwrap();
    let first = backup(&repo, src.path(), 100_000, None);
    let nodes = repo.read_tree(&first.root).unwrap();
    let NodeKind::File { content } = &nodes[0].kind else { panic!("not a file") };
    assert!(matches!(content, FileContent::List { .. }), "{} chunks should need a list", first.stats.chunks_total);
    let chunks = repo.file_chunks(content).unwrap();

    let source = Source { host: "h".into(), user_name: "u".into(), path: src.path().display().to_string() };
    let again = |hidden: Vec<crate::ids::ContentId>| {
        let mut options = BackupOptions::new(src.path().to_path_buf(), source.clone());
        options.parent = Some(first.clone());
        let access = LateClaims(&repo, Arc::new(hidden.into_iter().collect()), None);
        run_backup(&access, options, Arc::new(Progress::default())).unwrap().snapshot
    };
    let all_there = again(Vec::new());
    assert_eq!(all_there.stats.bytes_read, 0, "reused without reading: {:?}", all_there.stats);
    let one_gone = again(vec![chunks[chunks.len() / 2]]);
    assert_eq!(one_gone.stats.bytes_read, big.len() as u64, "read again: {:?}", one_gone.stats);
    assert_eq!(one_gone.root, first.root, "the same content, so the same tree");
}

/// Blobs a session will only prove it holds are not compressed first (the work would be thrown away): every
/// blob, file chunks and trees alike, reaches the session uncompressed, however well it compresses.
#[test]
fn blobs_the_session_only_proves_are_not_compressed() {
    let src = tempfile::tempdir().unwrap();
    for f in 0..200 {
        // Long, alike names make a folder tree that compresses well.
        let name = format!("a-rather-long-file-name-that-repeats-{f:04}.txt");
        std::fs::write(src.path().join(name), format!("line {f} of a text\n").repeat(2_000)).unwrap();
    }
    let repo = repository();
    let source = Source { host: "h".into(), user_name: "u".into(), path: src.path().display().to_string() };
    let proved = Proved::default();
    let access = LateClaims(&repo, Default::default(), Some(proved.clone()));
    let snapshot =
        run_backup(&access, BackupOptions::new(src.path().to_path_buf(), source), Arc::new(Progress::default()))
            .unwrap()
            .snapshot;
    let proved = proved.lock().unwrap();
    let trees = proved.iter().filter(|(class, _)| *class == crate::crypto::keys::BlobClass::Metadata).count();
    assert!(proved.len() > 200 && trees > 0, "{} blobs, {trees} trees", proved.len());
    assert!(proved.iter().all(|(_, c)| *c == crate::compress::Compression::None), "{proved:?}");
    assert!(snapshot.stats.bytes_stored >= snapshot.stats.bytes_read, "{:?}", snapshot.stats);

    // A direct backup of the same files compresses the chunks and the folder's tree.
    let direct_repo = repository();
    let direct = backup(&direct_repo, src.path(), 100_000, None);
    assert!(direct.stats.bytes_stored < direct.stats.bytes_read / 10, "{:?}", direct.stats);
    let root = direct_repo.index().get(&direct.root).unwrap();
    assert_eq!(root.compression, crate::compress::Compression::Zstd);
}
