//! `repository check`: the repository's own consistency, without walking snapshots. The format blob parses
//! and matches the one opened; every index blob opens; every index entry points into a pack that exists and
//! whose own entry table lists the same blob at the same place; every pack's table opens and lies inside
//! the pack; packs no index lists are reported as orphans (normal after an interrupted backup, collected
//! by maintenance). With `read_all_data`, every blob of every pack is read, decrypted, decompressed and
//! re-hashed. Problems are collected, never fatal, so one run names everything that is wrong.

use std::collections::{HashMap, HashSet};

use rayon::prelude::*;
use serde::Serialize;

use crate::content;
use crate::crypto::keys::BlobClass;
use crate::error::Result;
use crate::ids::PackId;
use crate::index::{self, IndexContents};
use crate::marker as session;
use crate::pack::{self, PackEntry};
use crate::repository::Repository;
use crate::snapshot::Snapshot;

/// One thing found wrong, naming the blob it affects.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The stored blob (or content blob) affected.
    pub blob: String,
    pub detail: String,
}

/// What a check found.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckReport {
    pub index_blobs: usize,
    pub index_entries: usize,
    pub packs: usize,
    pub snapshots: usize,
    /// Blobs read, decrypted and re-hashed (with `read_all_data`).
    pub blobs_read: u64,
    /// Packs no index blob lists (left by interrupted backups).
    pub orphan_packs: Vec<String>,
    /// Retired packs already deleted whose index entries the next maintenance drops.
    pub notes: Vec<String>,
    pub problems: Vec<Problem>,
}

/// A pack as stored, with its table when it could be read.
pub(crate) struct StoredPack {
    pub name: String,
    pub class: BlobClass,
    pub id: PackId,
    pub size: u64,
}

/// Lists data and metadata packs with their sizes; names that are not pack names are problems.
pub(crate) fn list_packs(repo: &Repository, problems: &mut Vec<Problem>) -> Result<Vec<StoredPack>> {
    let mut out = Vec::new();
    for prefix in ["p", "q"] {
        for meta in repo.storage().list(prefix)? {
            match pack::parse_pack_name(&meta.name) {
                Ok((class, id)) => out.push(StoredPack { name: meta.name, class, id, size: meta.size }),
                Err(e) => problems.push(Problem { blob: meta.name, detail: e.to_string() }),
            }
        }
    }
    Ok(out)
}

/// Reads every pack's table in parallel: the packs whose table opened, and a problem for each other.
pub(crate) fn read_tables(repo: &Repository, packs: &[StoredPack]) -> (HashMap<PackId, Vec<PackEntry>>, Vec<Problem>) {
    let results: Vec<_> =
        packs.par_iter().map(|p| (p, pack::read_table(repo.storage().as_ref(), repo.keys(), &p.name))).collect();
    let mut tables = HashMap::new();
    let mut problems = Vec::new();
    for (p, result) in results {
        match result {
            Ok((class, _)) if class != p.class => problems
                .push(Problem { blob: p.name.clone(), detail: "table class does not match the pack name".into() }),
            Ok((_, entries)) => {
                tables.insert(p.id, entries);
            }
            Err(e) => problems.push(Problem { blob: p.name.clone(), detail: e.to_string() }),
        }
    }
    (tables, problems)
}

/// Index blobs by name.
type NamedBlobs = Vec<(String, IndexContents)>;

/// Opens every index blob; a blob that cannot be read is a problem, the others are returned.
pub(crate) fn read_index_blobs(repo: &Repository) -> Result<(NamedBlobs, Vec<Problem>)> {
    let names = repo.storage().list("i")?;
    let results: Vec<_> = names
        .par_iter()
        .map(|m| {
            let opened = repo
                .storage()
                .get(&m.name)
                .map_err(crate::Error::from)
                .and_then(|bytes| index::decode_index_contents(repo.keys(), &m.name, &bytes));
            (m.name.clone(), opened)
        })
        .collect();
    let mut blobs = Vec::new();
    let mut problems = Vec::new();
    for (name, result) in results {
        match result {
            Ok(contents) => blobs.push((name, contents)),
            Err(e) => problems.push(Problem { blob: name, detail: e.to_string() }),
        }
    }
    Ok((blobs, problems))
}

/// Checks the repository. See the module documentation.
pub fn check_repository(repo: &Repository, read_all_data: bool) -> Result<CheckReport> {
    let mut report = CheckReport::default();
    match Repository::read_format(repo.storage().as_ref()) {
        Ok(f) if &f == repo.format() => {}
        Ok(_) => report.problems.push(Problem {
            blob: crate::format::FORMAT_BLOB_NAME.into(),
            detail: "changed since the repository was opened".into(),
        }),
        Err(e) => report.problems.push(Problem { blob: crate::format::FORMAT_BLOB_NAME.into(), detail: e.to_string() }),
    }

    let (blobs, problems) = read_index_blobs(repo)?;
    report.problems.extend(problems);
    report.index_blobs = blobs.len();
    let packs = list_packs(repo, &mut report.problems)?;
    report.packs = packs.len();
    let (tables, problems) = read_tables(repo, &packs);
    report.problems.extend(problems);
    let stored: HashSet<PackId> = packs.iter().map(|p| p.id).collect();

    let mut retired_everywhere: HashMap<PackId, bool> = HashMap::new();
    for (_, blob) in &blobs {
        for p in &blob.packs {
            *retired_everywhere.entry(p.id).or_insert(true) &= p.retired_at.is_some();
        }
    }
    let mut indexed: HashSet<PackId> = HashSet::new();
    let mut missing_reported: HashSet<PackId> = HashSet::new();
    for (name, blob) in &blobs {
        for r in &blob.records {
            report.index_entries += 1;
            indexed.insert(r.pack);
            let pack_name = pack::pack_name(r.class, &r.pack);
            if !stored.contains(&r.pack) {
                if !missing_reported.insert(r.pack) {
                    continue;
                }
                if retired_everywhere.get(&r.pack).copied().unwrap_or(false) {
                    report.notes.push(format!("retired pack {pack_name} is deleted; maintenance drops its entries"));
                } else {
                    report.problems.push(Problem {
                        blob: pack_name,
                        detail: format!("missing, but index blob {name} lists blob {} in it", r.entry.id),
                    });
                }
                continue;
            }
            let Some(table) = tables.get(&r.pack) else { continue };
            if !table.contains(&r.entry) {
                report.problems.push(Problem {
                    blob: pack_name,
                    detail: format!("index blob {name} lists blob {} that the pack's table does not", r.entry.id),
                });
            }
        }
    }
    for p in &packs {
        if !indexed.contains(&p.id) {
            report.orphan_packs.push(p.name.clone());
        }
    }

    if read_all_data {
        let results: Vec<(u64, Vec<Problem>)> = packs
            .par_iter()
            .filter_map(|p| tables.get(&p.id).map(|t| (p, t)))
            .map(|(p, table)| read_pack(repo, p, table))
            .collect();
        for (read, problems) in results {
            report.blobs_read += read;
            report.problems.extend(problems);
        }
    }

    for meta in repo.storage().list("s")? {
        report.snapshots += 1;
        let opened = repo
            .storage()
            .get(&meta.name)
            .map_err(crate::Error::from)
            .and_then(|bytes| Snapshot::open(repo.keys(), &meta.name, &bytes));
        if let Err(e) = opened {
            report.problems.push(Problem { blob: meta.name, detail: e.to_string() });
        }
    }
    for meta in repo.storage().list("w")? {
        let opened = repo
            .storage()
            .get(&meta.name)
            .map_err(crate::Error::from)
            .and_then(|bytes| session::open_marker(repo.keys(), &meta.name, &bytes));
        match opened {
            Ok(_) => report.notes.push(format!("writer session {} (a running or crashed backup)", meta.name)),
            Err(e) if e.kind() == crate::ErrorKind::NotFound => {}
            Err(e) => report.problems.push(Problem { blob: meta.name, detail: e.to_string() }),
        }
    }
    Ok(report)
}

/// Reads a whole pack and opens every blob its table lists.
fn read_pack(repo: &Repository, p: &StoredPack, table: &[PackEntry]) -> (u64, Vec<Problem>) {
    let bytes = match repo.storage().get(&p.name) {
        Ok(b) => b,
        Err(e) => return (0, vec![Problem { blob: p.name.clone(), detail: e.to_string() }]),
    };
    let mut problems = Vec::new();
    if !bytes.starts_with(pack::PACK_MAGIC) {
        problems.push(Problem { blob: p.name.clone(), detail: "missing pack magic".into() });
    }
    let mut read = 0;
    for e in table {
        let Some(stored) = bytes.get(e.offset as usize..e.offset as usize + e.stored_len as usize) else {
            problems.push(Problem { blob: p.name.clone(), detail: format!("blob {} lies outside the pack", e.id) });
            continue;
        };
        read += 1;
        let opened = content::open_unverified(repo.keys(), p.class, &e.id, e.compression, e.raw_len, stored)
            .and_then(|plain| repo.verify_content(&e.id, &plain));
        if let Err(err) = opened {
            problems.push(Problem { blob: format!("{} in {}", e.id, p.name), detail: err.to_string() });
        }
    }
    (read, problems)
}
