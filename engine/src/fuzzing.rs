//! Entry points for the fuzz targets in `fuzz/`: every decoder of stored (untrusted) bytes, including the
//! plaintext parsers that normally sit behind an AEAD seal and so cannot be reached with random bytes.
//! Compiled only for fuzzing builds and for tests, which run the checked-in seed corpus through the same
//! functions so CI exercises every target without a fuzzer.
//!
//! Each function returns whether the input decoded; none may panic, whatever the input. Where a decoder
//! accepts an input, the value must survive an encode/decode round trip.

use std::sync::Arc;

use crate::crypto::keys::{KeySet, MasterKey};
use crate::format::Format;
use crate::ids::SnapshotId;
use crate::snapshot::{snapshot_name, Snapshot};
use crate::storage::{MemoryStorage, Storage};
use crate::tree::{ChunkList, TreeRecord};

/// A decoder under test: true when the input decoded.
pub type Target = fn(&[u8]) -> bool;

/// The fuzz targets, by name (the folder of each seed corpus).
pub const TARGETS: &[(&str, Target)] = &[
    ("format_blob", format_blob),
    ("pack_table", pack_table),
    ("pack_footer", pack_footer),
    ("index_blob", index_blob),
    ("tree_record", tree_record),
    ("chunk_list", chunk_list),
    ("snapshot", snapshot),
];

/// The snapshot id the `snapshot` target names its record with.
pub const SNAPSHOT_ID: SnapshotId = SnapshotId([0x5a; 16]);

/// Fixed keys, so a pack sealed by a seed generator can be opened by the `pack_footer` target.
pub fn fixed_keys() -> KeySet {
    MasterKey([7; 32]).derive()
}

/// The format blob parser and its checks.
pub fn format_blob(data: &[u8]) -> bool {
    Format::from_bytes(data).is_ok()
}

/// A pack entry table's plaintext: the first 4 bytes (u32 LE) are taken as the pack's length, the rest is
/// the table.
pub fn pack_table(data: &[u8]) -> bool {
    let Some((len, plain)) = data.split_first_chunk::<4>() else { return false };
    let pack_len = u32::from_le_bytes(*len) as u64;
    crate::pack::parse_table(plain, pack_len, plain.len() as u64 + 28).is_ok()
}

/// A whole stored pack, read the way `index rebuild` and `repository check` read it: footer, table length,
/// then the sealed table (opened with [`fixed_keys`]).
pub fn pack_footer(data: &[u8]) -> bool {
    let storage = MemoryStorage::new();
    let name = format!("p{}", "0".repeat(32));
    if storage.put(&name, data).is_err() {
        return false;
    }
    let storage: Arc<dyn Storage> = Arc::new(storage);
    crate::pack::read_table(storage.as_ref(), &fixed_keys(), &name).is_ok()
}

/// An index blob's plaintext (versions 1 and 2).
pub fn index_blob(data: &[u8]) -> bool {
    crate::index::parse_index_plaintext(data).is_ok()
}

/// A tree record; an accepted record must round-trip.
pub fn tree_record(data: &[u8]) -> bool {
    match TreeRecord::decode(data) {
        Ok(record) => {
            let again = TreeRecord::decode(&record.encode());
            assert!(again.as_ref().is_ok_and(|r| *r == record), "tree record does not round-trip");
            true
        }
        Err(_) => false,
    }
}

/// A chunk list; an accepted list must round-trip.
pub fn chunk_list(data: &[u8]) -> bool {
    match ChunkList::decode(data) {
        Ok(list) => {
            let again = ChunkList::decode(&list.encode());
            assert!(again.as_ref().is_ok_and(|l| *l == list), "chunk list does not round-trip");
            true
        }
        Err(_) => false,
    }
}

/// A snapshot record's JSON, as stored under the name of [`SNAPSHOT_ID`].
pub fn snapshot(data: &[u8]) -> bool {
    Snapshot::from_json(&snapshot_name(&SNAPSHOT_ID), data).is_ok()
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn corpus_root() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus")
    }

    /// Every checked-in seed and every input a fuzzer once crashed on goes through its target; seeds named
    /// `valid-*` must decode.
    #[test]
    fn seed_corpus_runs_through_every_decoder() {
        for (target, decode) in TARGETS {
            let dir = corpus_root().join(target);
            let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
            let mut valid = 0;
            for entry in entries {
                let path = entry.unwrap().path();
                let data = std::fs::read(&path).unwrap();
                let ok = decode(&data);
                if path.file_name().unwrap().to_string_lossy().starts_with("valid-") {
                    assert!(ok, "{} should decode", path.display());
                    valid += 1;
                }
            }
            assert!(valid > 0, "no valid seed for {target}");
        }
    }

    /// Writes the valid seeds. Run after a format change: `cargo test -p cairn-engine -- --ignored
    /// write_seed_corpus`.
    #[test]
    #[ignore]
    fn write_seed_corpus() {
        for (target, seeds) in seeds::all() {
            let dir = corpus_root().join(target);
            std::fs::create_dir_all(&dir).unwrap();
            for (name, data) in seeds {
                std::fs::write(dir.join(format!("valid-{name}")), data).unwrap();
            }
        }
    }

    mod seeds {
        use crate::compress::Compression;
        use crate::crypto::keys::BlobClass;
        use crate::format::{CreateOptions, Format};
        use crate::fuzzing::{fixed_keys, SNAPSHOT_ID};
        use crate::ids::{ContentId, PackId};
        use crate::index::IndexedPack;
        use crate::pack::PackEntry;
        use crate::snapshot::{Snapshot, SnapshotStats, Source};
        use crate::tree::{ChunkList, FileContent, Node, NodeKind, TreeRecord};

        type Seeds = Vec<(&'static str, Vec<u8>)>;

        fn entries(n: u8) -> Vec<PackEntry> {
            (0..n)
                .map(|i| PackEntry {
                    id: ContentId([i; 32]),
                    offset: 8 + 100 * i as u32,
                    stored_len: 100,
                    raw_len: 120,
                    compression: if i % 2 == 0 { Compression::Zstd } else { Compression::None },
                })
                .collect()
        }

        fn table_plain(class: BlobClass, e: &[PackEntry]) -> Vec<u8> {
            let mut plain = vec![1, class.to_byte()];
            plain.extend_from_slice(&(e.len() as u32).to_le_bytes());
            for e in e {
                plain.extend_from_slice(e.id.as_bytes());
                for v in [e.offset, e.stored_len, e.raw_len] {
                    plain.extend_from_slice(&v.to_le_bytes());
                }
                plain.push(e.compression as u8);
            }
            plain
        }

        fn open_index(sealed: &[u8], name: &str) -> Vec<u8> {
            crate::crypto::aead::open(
                fixed_keys().metadata_key(),
                &[b"cairn-index-v1\0", name.as_bytes()].concat(),
                sealed,
                "seed",
            )
            .unwrap()
        }

        fn node(name: &str, kind: NodeKind) -> Node {
            Node {
                name: name.into(),
                kind,
                mode: 0o100644,
                uid: 1000,
                gid: 1000,
                mtime_ns: 1_700_000_000_000_000_000,
                ctime_ns: -5,
                inode: 42,
                size: 7,
            }
        }

        pub fn all() -> Vec<(&'static str, Seeds)> {
            let keys = fixed_keys();
            let (format, _) = Format::create(b"pw", &CreateOptions::default()).unwrap();
            let mut pack_table = Vec::new();
            for (name, class, n) in [("empty", BlobClass::Data, 0), ("three", BlobClass::Metadata, 3)] {
                let mut data = 1000u32.to_le_bytes().to_vec();
                data.extend(table_plain(class, &entries(n)));
                pack_table.push((name, data));
            }
            let mut pack = b"CAIRNPK1".to_vec();
            pack.extend(vec![0xaa; 300]);
            let name = format!("p{}", "0".repeat(32));
            let table = crate::pack::encode_table(&keys, &name, BlobClass::Data, &entries(3));
            pack.extend_from_slice(&table);
            pack.extend_from_slice(&(table.len() as u32).to_le_bytes());
            pack.extend_from_slice(b"CAIRNPKT");
            let packs =
                [(BlobClass::Data, PackId([1; 16]), entries(3)), (BlobClass::Metadata, PackId([2; 16]), entries(1))];
            let v1 = open_index(&crate::index::encode_index_blob(&keys, "ix", &packs), "ix");
            let v2_packs: Vec<_> = packs
                .iter()
                .enumerate()
                .map(|(i, (class, id, e))| {
                    (IndexedPack { class: *class, id: *id, retired_at: (i == 0).then_some(1_700_000_000) }, e.clone())
                })
                .collect();
            let v2 = open_index(&crate::index::encode_index_blob_v2(&keys, "ix", &v2_packs), "ix");
            let id = ContentId([9; 32]);
            let tree = TreeRecord::Entries(vec![
                node("a.txt", NodeKind::File { content: FileContent::Inline(vec![id, id]) }),
                node("big", NodeKind::File { content: FileContent::List { list: id, chunks: 100 } }),
                node("dir", NodeKind::Dir { tree: id }),
                node("fifo", NodeKind::Special { rdev: 3 }),
                node("link", NodeKind::Symlink { target: b"../x".to_vec() }),
            ]);
            let snap = Snapshot {
                id: SNAPSHOT_ID,
                source: Source { host: "h".into(), user_name: "u".into(), path: "/data".into() },
                start_time: chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
                end_time: chrono::DateTime::from_timestamp(1_700_000_100, 5).unwrap(),
                root: id,
                tags: [("kind".to_string(), "docs".to_string())].into(),
                description: "seed".into(),
                parent: Some(crate::ids::SnapshotId([1; 16])),
                stats: SnapshotStats { files: 3, bytes: 10, ..Default::default() },
                incomplete: true,
                error_messages: vec!["x: denied".into()],
                tenant: None,
            };
            vec![
                ("format_blob", vec![("default", format.to_bytes())]),
                ("pack_table", pack_table),
                ("pack_footer", vec![("three", pack)]),
                ("index_blob", vec![("v1", v1), ("v2", v2)]),
                (
                    "tree_record",
                    vec![
                        ("entries", tree.encode()),
                        ("pages", TreeRecord::Pages(vec![id, ContentId([3; 32])]).encode()),
                    ],
                ),
                ("chunk_list", vec![("level1", ChunkList { level: 1, ids: vec![id; 5] }.encode())]),
                ("snapshot", vec![("full", serde_json::to_vec(&snap).unwrap())]),
            ]
        }
    }
}
