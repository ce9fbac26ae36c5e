//! Stage micro-benchmarks (criterion): each stage of the backup pipeline alone, one thread, on random and
//! text-like data, named by configuration. `cargo bench -p cairn-engine --bench stages`.
//!
//! Inputs start at an odd offset inside their buffer so alignment does not flatter the numbers.

use std::time::Duration;

use cairn_engine::benchmark::{sample, SampleKind};
use cairn_engine::chunker::{Chunker, ChunkerParams};
use cairn_engine::compress::{self, Compression};
use cairn_engine::content;
use cairn_engine::crypto::keys::BlobClass;
use cairn_engine::crypto::MasterKey;
use cairn_engine::ids::{ContentId, PackId};
use cairn_engine::index::{Index, IndexRecord};
use cairn_engine::pack::{PackBuilder, PackEntry};
use cairn_engine::tree::{FileContent, Node, NodeKind, TreeRecord};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

const DATA: usize = 16 << 20;
const CHUNK: usize = 512 << 10;
const KINDS: [(SampleKind, &str); 2] = [(SampleKind::Random, "random"), (SampleKind::Text, "text")];

/// Sample data starting at an odd offset.
fn unaligned(kind: SampleKind, len: usize) -> (Vec<u8>, usize) {
    let mut buf = vec![0u8; 3];
    buf.extend_from_slice(&sample(kind, len));
    (buf, 3)
}

fn chunker(c: &mut Criterion) {
    let mut g = c.benchmark_group("chunker");
    g.throughput(Throughput::Bytes(DATA as u64));
    for (kind, label) in KINDS {
        let (buf, off) = unaligned(kind, DATA);
        for avg_kib in [256u32, 512, 1024, 4096] {
            let params = ChunkerParams { min: avg_kib * 256, avg: avg_kib * 1024, max: avg_kib * 4096 };
            let chunker = Chunker::new(params, 7).unwrap();
            g.bench_function(BenchmarkId::new(format!("fastcdc2020-avg{avg_kib}k"), label), |b| {
                b.iter(|| chunker.split_all(&buf[off..]).len())
            });
        }
    }
    g.finish();
}

fn hash(c: &mut Criterion) {
    let keys = MasterKey::generate().derive();
    let mut g = c.benchmark_group("hash");
    g.throughput(Throughput::Bytes(DATA as u64));
    let (buf, off) = unaligned(SampleKind::Random, DATA);
    g.bench_function("blake3-keyed-chunk512k", |b| {
        b.iter(|| buf[off..].chunks(CHUNK).map(|c| keys.hashing.content_id(c).0[0] as usize).sum::<usize>())
    });
    g.finish();
}

fn compression(c: &mut Criterion) {
    let mut g = c.benchmark_group("compress");
    g.throughput(Throughput::Bytes(4 << 20));
    g.sample_size(10).measurement_time(Duration::from_secs(1)).warm_up_time(Duration::from_millis(300));
    for (kind, label) in KINDS {
        let (buf, off) = unaligned(kind, 4 << 20);
        for level in compress::LEVELS {
            let mut out = Vec::new();
            g.bench_function(BenchmarkId::new(format!("zstd{level}-chunk512k"), label), |b| {
                b.iter(|| {
                    buf[off..]
                        .chunks(CHUNK)
                        .map(|c| compress::compress_into(level, c, &mut out) as usize)
                        .sum::<usize>()
                })
            });
        }
        let mut out = Vec::new();
        let packed: Vec<(Vec<u8>, usize)> = buf[off..]
            .chunks(CHUNK)
            .map(|c| {
                let kind = compress::compress_into(3, c, &mut out);
                (if kind == Compression::Zstd { out.clone() } else { c.to_vec() }, c.len())
            })
            .collect();
        g.bench_function(BenchmarkId::new("unzstd3-chunk512k", label), |b| {
            b.iter(|| {
                packed
                    .iter()
                    .map(|(p, raw)| {
                        let kind = if p.len() < *raw { Compression::Zstd } else { Compression::None };
                        compress::decompress(kind, p, *raw, "bench").map(|v| v.len()).unwrap_or(0)
                    })
                    .sum::<usize>()
            })
        });
    }
    g.finish();
}

fn encryption(c: &mut Criterion) {
    let keys = MasterKey::generate().derive();
    let (buf, off) = unaligned(SampleKind::Random, DATA);
    let ids: Vec<ContentId> = buf[off..].chunks(CHUNK).map(|c| keys.hashing.content_id(c)).collect();
    let mut g = c.benchmark_group("encrypt");
    g.throughput(Throughput::Bytes(DATA as u64));
    g.bench_function("aes256gcm-per-content-key-chunk512k", |b| {
        b.iter(|| {
            buf[off..]
                .chunks(CHUNK)
                .zip(&ids)
                .map(|(c, id)| {
                    content::seal_compressed(&keys, BlobClass::Data, *id, c, Compression::None, &[]).bytes.len()
                })
                .sum::<usize>()
        })
    });
    let sealed: Vec<_> = buf[off..]
        .chunks(CHUNK)
        .zip(&ids)
        .map(|(c, id)| content::seal_compressed(&keys, BlobClass::Data, *id, c, Compression::None, &[]))
        .collect();
    g.bench_function("open-and-verify-chunk512k", |b| {
        b.iter(|| {
            sealed
                .iter()
                .map(|s| {
                    content::open(&keys, BlobClass::Data, &s.id, s.compression, s.raw_len, &s.bytes)
                        .map(|v| v.len())
                        .unwrap_or(0)
                })
                .sum::<usize>()
        })
    });
    g.finish();
}

fn pack_writing(c: &mut Criterion) {
    let keys = MasterKey::generate().derive();
    let (buf, off) = unaligned(SampleKind::Random, DATA);
    let blobs: Vec<_> = buf[off..]
        .chunks(CHUNK)
        .map(|c| {
            content::seal_compressed(&keys, BlobClass::Data, keys.hashing.content_id(c), c, Compression::None, &[])
        })
        .collect();
    let mut g = c.benchmark_group("pack");
    g.throughput(Throughput::Bytes(DATA as u64));
    g.bench_function("build-16m-pack-of-512k-blobs", |b| {
        b.iter(|| PackBuilder::build_in_memory(BlobClass::Data, &blobs, &keys).1.len())
    });
    g.finish();
}

fn index_lookup(c: &mut Criterion) {
    let mut g = c.benchmark_group("index");
    for entries in [100_000usize, 1_000_000] {
        let pack = PackId([1; 16]);
        let ids: Vec<ContentId> =
            (0..entries as u64).map(|i| ContentId(*blake3::hash(&i.to_le_bytes()).as_bytes())).collect();
        let index = Index::from_records(ids.iter().map(|id| IndexRecord {
            class: BlobClass::Data,
            pack,
            entry: PackEntry { id: *id, offset: 8, stored_len: 1, raw_len: 1, compression: Compression::None },
        }));
        let misses: Vec<ContentId> =
            (0..1000u64).map(|i| ContentId(*blake3::hash(&((i + 1) << 40).to_le_bytes()).as_bytes())).collect();
        g.throughput(Throughput::Elements(1000));
        g.bench_function(BenchmarkId::new("lookup-hit-x1000", entries), |b| {
            b.iter(|| ids.iter().step_by(entries / 1000).filter(|id| index.contains(id)).count())
        });
        g.bench_function(BenchmarkId::new("lookup-miss-x1000", entries), |b| {
            b.iter(|| misses.iter().filter(|id| index.contains(id)).count())
        });
    }
    g.finish();
}

fn tree_encoding(c: &mut Criterion) {
    let nodes: Vec<Node> = (0..1000u64)
        .map(|i| Node {
            name: format!("file-{i:06}.txt").into_bytes(),
            kind: NodeKind::File { content: FileContent::Inline(vec![ContentId([i as u8; 32]); 2]) },
            mode: 0o100644,
            uid: 1000,
            gid: 1000,
            mtime_ns: 1_700_000_000_000_000_000 + i as i64,
            ctime_ns: 1_700_000_000_000_000_000,
            inode: 1_000_000 + i,
            size: 4096 * i,
        })
        .collect();
    let record = TreeRecord::Entries(nodes);
    let bytes = record.encode();
    let mut g = c.benchmark_group("tree");
    g.throughput(Throughput::Elements(1000));
    g.bench_function("encode-1000-entries", |b| b.iter(|| record.encode().len()));
    g.bench_function("decode-1000-entries", |b| b.iter(|| TreeRecord::decode(&bytes).map(|_| ()).is_ok()));
    g.finish();
}

criterion_group!(benches, chunker, hash, compression, encryption, pack_writing, index_lookup, tree_encoding);
criterion_main!(benches);
