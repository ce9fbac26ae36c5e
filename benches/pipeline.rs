//! The whole backup pipeline in memory (criterion): files from the page cache, an in-memory repository, all
//! cores. `cargo bench -p cairn-engine --bench pipeline`.

use std::sync::Arc;
use std::time::Duration;

use cairn_engine::backup::{run_backup, BackupOptions, Progress};
use cairn_engine::benchmark::{sample, SampleKind};
use cairn_engine::format::CreateOptions;
use cairn_engine::snapshot::Source;
use cairn_engine::storage::MemoryStorage;
use cairn_engine::Repository;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

const TOTAL: usize = 128 << 20;

fn pipeline(c: &mut Criterion) {
    let mut g = c.benchmark_group("pipeline");
    g.sample_size(10).measurement_time(Duration::from_secs(8));
    g.throughput(Throughput::Bytes(TOTAL as u64));
    for (kind, label) in [(SampleKind::Random, "random"), (SampleKind::Text, "text")] {
        for (files, name) in [(4usize, "4-large-files"), (2048, "2048-small-files")] {
            let dir = tempfile::tempdir().unwrap();
            let data = sample(kind, TOTAL);
            for (i, part) in data.chunks(TOTAL / files).enumerate() {
                let path = dir.path().join(format!("d{}/f{i}", i % 16));
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(path, part).unwrap();
            }
            g.bench_function(BenchmarkId::new(format!("initial-backup-{name}"), label), |b| {
                b.iter(|| {
                    let storage = Arc::new(MemoryStorage::new());
                    let repo = Repository::create(storage, b"pw", &CreateOptions::default()).unwrap();
                    let source = Source { host: "h".into(), user_name: "u".into(), path: "/".into() };
                    let options = BackupOptions::new(dir.path().to_path_buf(), source);
                    run_backup(&repo, options, Arc::new(Progress::default())).unwrap().snapshot.stats.bytes
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
