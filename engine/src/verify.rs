//! `snapshot verify`: walks snapshots and checks that every tree, chunk list and chunk they reference is in
//! the index and that its pack exists and is long enough to hold it. Trees and chunk lists are read (the
//! walk needs them), so they are always decrypted and re-hashed; a chosen share of file chunks is read,
//! decrypted, decompressed and re-hashed too, picked at random per run. Each problem names the snapshot,
//! the path and the blob; the walk goes on past it.

use std::collections::{HashMap, HashSet};

use rayon::prelude::*;
use serde::Serialize;

use crate::access::Access;
use crate::error::{Error, Result};
use crate::ids::{ContentId, SnapshotId, TreeId};
use crate::repository::Repository;
use crate::snapshot::Snapshot;
use crate::tree::{NodeKind, TreeRecord};

/// One problem, where it shows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VerifyProblem {
    pub snapshot: SnapshotId,
    /// Path inside the snapshot (`/` for the root).
    pub path: String,
    /// The content blob (tree, chunk list or chunk) affected.
    pub blob: ContentId,
    pub detail: String,
}

/// What a verification covered and found.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyReport {
    pub snapshots: usize,
    pub trees: u64,
    pub files: u64,
    /// Distinct file chunks whose index entry and pack were checked.
    pub chunks: u64,
    /// File chunks read, decrypted and re-hashed.
    pub chunks_read: u64,
    pub bytes_read: u64,
    pub problems: Vec<VerifyProblem>,
}

/// How to verify.
#[derive(Clone, Debug)]
pub struct VerifyOptions {
    /// Share of distinct file chunks to read back, 0-100.
    pub files_percent: f64,
    /// Threads that read chunks.
    pub parallel: usize,
}

struct Walk<'a> {
    repo: &'a Repository,
    pack_sizes: HashMap<String, u64>,
    /// Chunks already checked, with the problem found (if any).
    checked: HashMap<ContentId, Option<String>>,
    trees_seen: HashSet<TreeId>,
    /// Chunks picked for reading, with the first place they were seen.
    to_read: Vec<(ContentId, SnapshotId, String)>,
    sample_key: [u8; 32],
    threshold: u64,
    report: VerifyReport,
}

impl Walk<'_> {
    fn problem(&mut self, snapshot: SnapshotId, path: &str, blob: ContentId, detail: String) {
        self.report.problems.push(VerifyProblem { snapshot, path: path.to_string(), blob, detail });
    }

    /// Index entry present, pack present and long enough.
    fn locate(&self, id: &ContentId) -> Option<String> {
        let Some(loc) = self.repo.index().get(id) else { return Some("not in the index".into()) };
        let name = loc.pack_name();
        match self.pack_sizes.get(&name) {
            None => Some(format!("its pack {name} is missing")),
            Some(&size) if loc.offset as u64 + loc.stored_len as u64 > size => {
                Some(format!("its pack {name} is too short ({size} bytes)"))
            }
            Some(_) => None,
        }
    }

    fn sampled(&self, id: &ContentId) -> bool {
        let h = blake3::keyed_hash(&self.sample_key, id.as_bytes());
        u64::from_le_bytes(h.as_bytes()[..8].try_into().expect("8 bytes")) < self.threshold
            || self.threshold == u64::MAX
    }

    fn chunk(&mut self, snapshot: SnapshotId, path: &str, id: ContentId) {
        if let Some(found) = self.checked.get(&id) {
            if let Some(detail) = found.clone() {
                self.problem(snapshot, path, id, detail);
            }
            return;
        }
        self.report.chunks += 1;
        let found = self.locate(&id);
        if let Some(detail) = &found {
            self.problem(snapshot, path, id, detail.clone());
        } else if self.threshold > 0 && self.sampled(&id) {
            self.to_read.push((id, snapshot, path.to_string()));
        }
        self.checked.insert(id, found);
    }

    /// Reads a tree's record (its entries, or its page ids), reporting problems against `path`.
    fn read_record(&mut self, snapshot: SnapshotId, path: &str, id: &TreeId) -> Option<TreeRecord> {
        if let Some(detail) = self.locate(id) {
            self.problem(snapshot, path, *id, format!("tree: {detail}"));
            return None;
        }
        match self.repo.read_blob(id).and_then(|b| TreeRecord::decode(&b)) {
            Ok(r) => Some(r),
            Err(e) => {
                self.problem(snapshot, path, *id, format!("tree: {e}"));
                None
            }
        }
    }

    /// Walks a folder one stored page at a time, so a huge folder costs one page of memory per level.
    fn walk(&mut self, snapshot: SnapshotId, path: &str, tree: &TreeId) {
        self.report.trees += 1;
        match self.read_record(snapshot, path, tree) {
            None => {}
            Some(TreeRecord::Entries(nodes)) => self.visit(snapshot, path, tree, nodes),
            Some(TreeRecord::Pages(pages)) => {
                for page in pages {
                    match self.repo.read_blob(&page).and_then(|b| TreeRecord::decode(&b)) {
                        Ok(TreeRecord::Entries(nodes)) => self.visit(snapshot, path, tree, nodes),
                        Ok(TreeRecord::Pages(_)) => self.problem(snapshot, path, page, "nested tree pages".into()),
                        Err(e) => self.problem(snapshot, path, page, format!("tree page: {e}")),
                    }
                }
            }
        }
    }

    /// Checks the entries of one page of the folder `tree` at `path`.
    fn visit(&mut self, snapshot: SnapshotId, path: &str, tree: &TreeId, nodes: Vec<crate::tree::Node>) {
        for node in nodes {
            let child = format!("{}/{}", path.trim_end_matches('/'), String::from_utf8_lossy(&node.name));
            match &node.kind {
                NodeKind::Dir { tree } => {
                    // A subtree already verified (in this or an earlier snapshot) is the same bytes.
                    if self.trees_seen.insert(*tree) {
                        self.walk(snapshot, &child, tree);
                    }
                }
                NodeKind::File { content } => {
                    self.report.files += 1;
                    if let crate::tree::FileContent::List { list, .. } = content {
                        if let Some(detail) = self.locate(list) {
                            self.problem(snapshot, &child, *list, format!("chunk list: {detail}"));
                            continue;
                        }
                    }
                    match self.repo.file_chunks(content) {
                        Ok(ids) => {
                            for id in ids {
                                self.chunk(snapshot, &child, id);
                            }
                        }
                        Err(e) => {
                            let blob = match content {
                                crate::tree::FileContent::List { list, .. } => *list,
                                crate::tree::FileContent::Inline(ids) => ids.first().copied().unwrap_or(*tree),
                            };
                            self.problem(snapshot, &child, blob, format!("chunk list: {e}"));
                        }
                    }
                }
                NodeKind::Symlink { .. } | NodeKind::Special { .. } => {}
            }
        }
    }
}

/// Verifies `snapshots`. Fails only when storage cannot be listed; problems go in the report.
pub fn verify_snapshots(repo: &Repository, snapshots: &[Snapshot], options: &VerifyOptions) -> Result<VerifyReport> {
    if !(0.0..=100.0).contains(&options.files_percent) {
        return Err(Error::InvalidArgument("--verify-files-percent must be between 0 and 100".into()));
    }
    let mut pack_sizes = HashMap::new();
    for prefix in ["p", "q"] {
        for m in repo.storage().list(prefix)? {
            pack_sizes.insert(m.name, m.size);
        }
    }
    let threshold = if options.files_percent >= 100.0 {
        u64::MAX
    } else {
        (options.files_percent / 100.0 * u64::MAX as f64) as u64
    };
    let mut walk = Walk {
        repo,
        pack_sizes,
        checked: HashMap::new(),
        trees_seen: HashSet::new(),
        to_read: Vec::new(),
        sample_key: crate::crypto::random_bytes(),
        threshold,
        report: VerifyReport { snapshots: snapshots.len(), ..Default::default() },
    };
    for snap in snapshots {
        walk.walk(snap.id, "/", &snap.root);
    }
    let to_read = std::mem::take(&mut walk.to_read);
    let mut report = walk.report;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(options.parallel.max(1))
        .build()
        .map_err(|e| Error::InvalidArgument(format!("cannot start reader threads: {e}")))?;
    let results: Vec<(u64, Option<VerifyProblem>)> = pool.install(|| {
        to_read
            .par_iter()
            .map(|(id, snapshot, path)| match repo.read_blob(id) {
                Ok(bytes) => (bytes.len() as u64, None),
                Err(e) => (
                    0,
                    Some(VerifyProblem { snapshot: *snapshot, path: path.clone(), blob: *id, detail: e.to_string() }),
                ),
            })
            .collect()
    });
    for (bytes, problem) in results {
        report.chunks_read += 1;
        report.bytes_read += bytes;
        report.problems.extend(problem);
    }
    Ok(report)
}
