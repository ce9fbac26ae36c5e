//! Verify, check and index rebuild through the binary, and the fault tests that need real processes:
//! kill -9 of a backup at random points, and full maintenance running while backups run.

use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::{count_files, num, stderr, text, Env};
use crate::tree_gen::{assert_same_tree, noise, write};

/// A source of `generation`: fixed files plus files that change with every generation.
fn write_generation(src: &Path, generation: u64, changing_mib: usize) {
    for i in 0..4u64 {
        write(&src.join(format!("fixed/f{i}.bin")), &noise(1000 + i, 2 << 20));
        write(&src.join(format!("changing/c{i}.bin")), &noise(generation * 10 + i, (changing_mib << 20) / 4));
    }
    write(&src.join("changing/generation.txt"), generation.to_string().as_bytes());
}

/// A small deterministic random source for choosing points.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

fn create_small_pack_repo(env: &Env) {
    let repo = env.repo();
    env.ok(&["repository", "create", "filesystem", "--path", repo.to_str().unwrap(), "--pack-size-mib", "1"]);
}

/// The same files with the same bytes (metadata differs: the expected tree was written again).
fn assert_same_content(expected: &Path, actual: &Path) {
    let files = |root: &Path| -> Vec<(std::path::PathBuf, Vec<u8>)> {
        let mut out: Vec<_> = crate::tree_gen::snapshot_tree(root)
            .into_iter()
            .filter(|(_, e)| e.kind == 'f')
            .map(|(p, _)| {
                let bytes = std::fs::read(root.join(&p)).unwrap();
                (p, bytes)
            })
            .collect();
        out.sort();
        out
    };
    let (a, b) = (files(expected), files(actual));
    assert_eq!(a.len(), b.len(), "file count");
    for ((pa, da), (pb, db)) in a.iter().zip(&b) {
        assert_eq!(pa, pb);
        assert!(da == db, "{} differs", pa.display());
    }
}

/// Restores every snapshot in `kept` and compares it with its generation, rebuilt in a scratch folder.
fn assert_all_restore(env: &Env, kept: &[(String, u64)], changing_mib: usize) {
    for (id, generation) in kept {
        let expected = env.path(&format!("expected-{id}"));
        write_generation(&expected, *generation, changing_mib);
        let out = env.path(&format!("restored-{id}"));
        env.ok(&["restore", id, out.to_str().unwrap()]);
        assert_same_content(&expected, &out);
        std::fs::remove_dir_all(&expected).unwrap();
        std::fs::remove_dir_all(&out).unwrap();
    }
}

#[test]
fn verify_names_snapshot_path_and_blob_of_damage() {
    let env = Env::new();
    let src = env.path("src");
    write_generation(&src, 1, 4);
    create_small_pack_repo(&env);
    let snap = env.snapshot(&src);
    env.ok(&["snapshot", "verify", "--verify-files-percent", "100"]);
    env.ok(&["repository", "check", "--read-all-data"]);
    // Truncate one data pack: verify names a file of the snapshot and the chunk, and exits non-zero.
    let pack = std::fs::read_dir(env.repo().join("p")).unwrap().flatten().next().unwrap().path();
    let pack = std::fs::read_dir(pack).unwrap().flatten().next().unwrap().path();
    let len = std::fs::metadata(&pack).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&pack).unwrap().set_len(len / 2).unwrap();
    let out = env.run(&["snapshot", "verify"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains(&format!("snapshot {}", text(&snap, "/id"))) && err.contains("path /"), "{err}");
    assert!(err.contains("is too short"), "{err}");
    let out = env.run(&["repository", "check"]);
    assert_eq!(out.status.code(), Some(1));
    let name = pack.file_name().unwrap().to_str().unwrap();
    assert!(stderr(&out).contains(name), "{}", stderr(&out));
}

#[test]
fn index_rebuild_after_losing_index_blobs() {
    let env = Env::new();
    let src = env.path("src");
    write_generation(&src, 2, 4);
    create_small_pack_repo(&env);
    env.snapshot(&src);
    std::fs::remove_dir_all(env.repo().join("i")).unwrap();
    assert!(!env.run(&["snapshot", "verify"]).status.success());
    env.ok(&["index", "rebuild"]);
    env.ok(&["snapshot", "verify", "--verify-files-percent", "100"]);
    env.ok(&["repository", "check", "--read-all-data"]);
    let out = env.path("out");
    env.ok(&["restore", "latest", out.to_str().unwrap()]);
    assert_same_tree(&src, &out);
}

/// kill -9 a backup at random points; after each, the repository checks clean, the next backup completes
/// and reuses what the killed one indexed, and at the end every completed snapshot restores identically.
#[test]
fn stress_kill_backup_at_random_points() {
    const CHANGING_MIB: usize = 16;
    let env = Env::new();
    let src = env.path("src");
    create_small_pack_repo(&env);
    write_generation(&src, 0, CHANGING_MIB);
    let start = Instant::now();
    env.snapshot(&src);
    let mut typical = start.elapsed();
    let mut kept: Vec<(String, u64)> = Vec::new();
    let mut rng = Rng(0x5eed_1234_abcd);
    let (mut killed, mut reused, mut runs, mut blobs_without_new_entries) = (0, 0, 0, 0);
    while killed < 22 && runs < 45 {
        runs += 1;
        let generation = runs as u64;
        write_generation(&src, generation, CHANGING_MIB);
        let index_before = count_files(&env.repo().join("i"));
        let entries_before = num(&env.json(&["repository", "status", "--json"]), "/indexEntries");
        let mut child = env
            .cmd()
            .args(["snapshot", "create", src.to_str().unwrap(), "--json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let ms = typical.as_millis() as u64;
        std::thread::sleep(Duration::from_millis(ms * (30 + rng.below(80)) / 100));
        if child.try_wait().unwrap().is_some() {
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success());
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            kept.push((text(&v, "/id").to_string(), generation));
            continue;
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        killed += 1;
        env.ok(&["repository", "check"]);
        let entries_after = num(&env.json(&["repository", "status", "--json"]), "/indexEntries");
        // What the killed backup indexed: new distinct index entries (an index blob that adds none —
        // seen a few times under load, not yet explained — is counted apart).
        let indexed_by_killed = entries_after > entries_before;
        if count_files(&env.repo().join("i")) > index_before && !indexed_by_killed {
            blobs_without_new_entries += 1;
        }
        let t = Instant::now();
        let next = env.snapshot(&src);
        typical = t.elapsed();
        kept.push((text(&next, "/id").to_string(), generation));
        if indexed_by_killed {
            assert!(
                num(&next, "/stats/bytesNew") < (CHANGING_MIB as u64) << 20,
                "nothing the killed backup indexed was reused (entries {entries_before} -> {entries_after}): {next}"
            );
            reused += 1;
        }
        if killed % 6 == 0 {
            // Collect what the killed backups left behind; snapshots stay whole.
            env.ok(&["maintenance", "run", "--full", "--safety", "none"]);
            env.ok(&["repository", "check"]);
        }
    }
    assert!(killed >= 20, "only {killed} of {runs} backups were killed before finishing");
    // One more kill, just after the backup stored its first index blob: the resumed backup must reuse it.
    runs += 1;
    write_generation(&src, runs as u64, CHANGING_MIB);
    let index_before = count_files(&env.repo().join("i"));
    let entries_before = num(&env.json(&["repository", "status", "--json"]), "/indexEntries");
    let mut child = env
        .cmd()
        .args(["snapshot", "create", src.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    while count_files(&env.repo().join("i")) == index_before && child.try_wait().unwrap().is_none() {
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    let by_signal = std::os::unix::process::ExitStatusExt::signal(&out.status) == Some(9);
    assert!(out.status.success() || by_signal, "backup failed on its own: {}", stderr(&out));
    let index_after_kill = count_files(&env.repo().join("i"));
    let entries_after = num(&env.json(&["repository", "status", "--json"]), "/indexEntries");
    let next = env.snapshot(&src);
    kept.push((text(&next, "/id").to_string(), runs as u64));
    if by_signal {
        eprintln!(
            "final kill: index blobs {index_before} -> {index_after_kill}, entries {entries_before} -> {entries_after}"
        );
        killed += 1;
        reused += 1;
        assert!(
            num(&next, "/stats/bytesNew") < (CHANGING_MIB as u64) << 20,
            "nothing the killed backup indexed was reused (entries {entries_before} -> {entries_after}): {next}"
        );
    }
    assert!(reused > 0, "no killed backup had indexed anything ({killed} kills)");
    eprintln!(
        "kill -9: {runs} runs, {killed} killed, {reused} resumed backups reused indexed data, \
         {blobs_without_new_entries} index blobs without new entries"
    );
    env.ok(&["repository", "check", "--read-all-data"]);
    env.ok(&["snapshot", "verify", "--verify-files-percent", "100"]);
    assert_all_restore(&env, &kept, CHANGING_MIB);
}

/// Full maintenance with a (short) safety margin runs in a loop while backups run and old snapshots
/// expire; no snapshot ever loses data, and maintenance does delete garbage.
#[test]
fn stress_full_maintenance_concurrent_with_backups() {
    const CHANGING_MIB: usize = 8;
    let env = Arc::new(Env::new());
    let src = env.path("src");
    create_small_pack_repo(&env);
    let stop = Arc::new(AtomicBool::new(false));
    let gc = {
        let (env, stop) = (env.clone(), stop.clone());
        std::thread::spawn(move || {
            let (mut runs, mut deleted, mut retired) = (0, 0, 0);
            while !stop.load(Ordering::Relaxed) {
                let v = env.json(&["maintenance", "run", "--full", "--safety-margin", "20", "--json"]);
                runs += 1;
                deleted += num(&v, "/packsDeleted");
                retired += num(&v, "/packsRetired") + num(&v, "/packsRewritten");
            }
            (runs, deleted, retired)
        })
    };
    let mut kept: Vec<(String, u64)> = Vec::new();
    let start = Instant::now();
    let mut generation = 0;
    while start.elapsed() < Duration::from_secs(75) {
        generation += 1;
        write_generation(&src, generation, CHANGING_MIB);
        let snap = env.snapshot(&src);
        kept.push((text(&snap, "/id").to_string(), generation));
        // Keep the latest two; the rest become garbage.
        let decisions = env.json(&["snapshot", "expire", "--keep-latest", "2", "--json"]);
        let live: Vec<String> = decisions
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["keep"].as_bool() == Some(true))
            .map(|d| d["id"].as_str().unwrap().to_string())
            .collect();
        kept.retain(|(id, _)| live.contains(id));
        // Every kept snapshot is still whole while maintenance runs.
        env.ok(&["snapshot", "verify"]);
        std::thread::sleep(Duration::from_millis(500));
    }
    stop.store(true, Ordering::Relaxed);
    let (runs, deleted, retired) = gc.join().unwrap();
    eprintln!("concurrent maintenance: {generation} backups, {runs} full maintenance runs, {retired} packs retired, {deleted} deleted");
    assert!(retired > 0 && deleted > 0, "maintenance collected nothing ({runs} runs)");
    env.ok(&["repository", "check", "--read-all-data"]);
    env.ok(&["snapshot", "verify", "--verify-files-percent", "100"]);
    assert_all_restore(&env, &kept, CHANGING_MIB);
}
