//! Micro-benchmarks of the algorithms Cairn offers, for `cairn benchmark`: each measures one stage on this
//! machine, one thread, on deterministic sample data, and reports MB/s (and the compression ratio).

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::chunker::{Chunker, ChunkerParams};
use crate::compress::{self, Compression};
use crate::content;
use crate::crypto::keys::BlobClass;
use crate::crypto::MasterKey;

/// One measured option.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BenchResult {
    /// The option as a user would name it.
    pub name: String,
    /// Input megabytes per second on one core.
    pub mb_per_second: f64,
    /// Stored bytes / input bytes, for compression.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio: Option<f64>,
    /// Extra facts (e.g. the average chunk size produced).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub note: String,
}

/// Which sample data to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SampleKind {
    /// Incompressible bytes.
    Random,
    /// Word-like text that zstd compresses about 4:1.
    Text,
}

/// Deterministic incompressible bytes.
pub fn sample_random(len: usize, seed: u64) -> Vec<u8> {
    let mut out = vec![0u8; len];
    blake3::Hasher::new().update(&seed.to_le_bytes()).finalize_xof().fill(&mut out);
    out
}

/// Deterministic text-like bytes: words drawn from a fixed vocabulary with skewed frequencies, lines of
/// varying length, some numbers.
pub fn sample_text(len: usize, seed: u64) -> Vec<u8> {
    const WORDS: &[&str] = &[
        "the",
        "of",
        "and",
        "to",
        "in",
        "is",
        "that",
        "for",
        "it",
        "as",
        "with",
        "was",
        "on",
        "be",
        "by",
        "this",
        "backup",
        "repository",
        "snapshot",
        "chunk",
        "index",
        "pack",
        "content",
        "restore",
        "encrypted",
        "storage",
        "function",
        "return",
        "value",
        "error",
        "result",
        "struct",
        "impl",
        "let",
        "match",
        "some",
        "none",
        "during",
        "between",
        "through",
        "without",
        "another",
        "however",
        "because",
        "system",
        "process",
    ];
    let picks = sample_random(len / 3 + 64, seed);
    let mut out = Vec::with_capacity(len + 32);
    let mut i = 0usize;
    while out.len() < len {
        let r = picks[i % picks.len()] as usize;
        // Skew towards the first words, as natural text does.
        let word = WORDS[(r * r / 256 + i / 7) % WORDS.len()];
        out.extend_from_slice(word.as_bytes());
        match r % 29 {
            0 => out.extend_from_slice(b".\n"),
            1 => out.extend_from_slice(format!(" {} ", (r * 7919 + i) % 100_000).as_bytes()),
            2 => out.extend_from_slice(b", "),
            _ => out.push(b' '),
        }
        i += 1;
    }
    out.truncate(len);
    out
}

/// Sample data of a kind.
pub fn sample(kind: SampleKind, len: usize) -> Vec<u8> {
    match kind {
        SampleKind::Random => sample_random(len, 1),
        SampleKind::Text => sample_text(len, 1),
    }
}

/// Runs `f` over the data repeatedly for at least `budget`, returns MB/s.
fn throughput(bytes_per_run: usize, budget: Duration, mut f: impl FnMut()) -> f64 {
    f(); // warm up
    let start = Instant::now();
    let mut runs = 0u64;
    while runs == 0 || start.elapsed() < budget {
        f();
        runs += 1;
    }
    (bytes_per_run as f64 * runs as f64) / start.elapsed().as_secs_f64() / 1e6
}

/// FastCDC at each offered average size (min = avg/4, max = 4 × avg).
pub fn splitter(data: &[u8], budget: Duration) -> Vec<BenchResult> {
    [256u32, 512, 1024, 2048, 4096]
        .into_iter()
        .filter_map(|avg_kib| {
            let params = ChunkerParams { min: avg_kib * 256, avg: avg_kib * 1024, max: avg_kib * 4096 };
            let chunker = Chunker::new(params, 0x5eed).ok()?;
            let mut count = 0;
            let speed = throughput(data.len(), budget, || count = chunker.split_all(data).len());
            let default = if params == ChunkerParams::DEFAULT { " (default)" } else { "" };
            Some(BenchResult {
                name: format!("FASTCDC-2020-{avg_kib}K{default}"),
                mb_per_second: speed,
                ratio: None,
                note: format!("{} chunks, average {} KiB", count, data.len() / count.max(1) / 1024),
            })
        })
        .collect()
}

/// Keyed BLAKE3-256 over chunks of `block` bytes.
pub fn hashing(data: &[u8], block: usize, budget: Duration) -> Vec<BenchResult> {
    let keys = MasterKey::generate().derive();
    let speed = throughput(data.len(), budget, || {
        for chunk in data.chunks(block) {
            std::hint::black_box(keys.hashing.content_id(chunk));
        }
    });
    vec![BenchResult { name: "BLAKE3-256-KEYED".into(), mb_per_second: speed, ratio: None, note: String::new() }]
}

/// AES-256-GCM with a per-content key, sealing chunks of `block` bytes (key derivation included).
pub fn encryption(data: &[u8], block: usize, budget: Duration) -> Vec<BenchResult> {
    let keys = MasterKey::generate().derive();
    let ids: Vec<_> = data.chunks(block).map(|c| keys.hashing.content_id(c)).collect();
    let speed = throughput(data.len(), budget, || {
        for (chunk, id) in data.chunks(block).zip(&ids) {
            let sealed = content::seal_compressed(&keys, BlobClass::Data, *id, chunk, Compression::None, &[]);
            std::hint::black_box(sealed);
        }
    });
    vec![BenchResult {
        name: "AES-256-GCM-PER-CONTENT-KEY".into(),
        mb_per_second: speed,
        ratio: None,
        note: String::new(),
    }]
}

/// The order in which [`throughput_sampled`] visits `n` blocks: a stride through all of them, so that the
/// first few visited come from every part of the data.
fn spread(n: usize) -> Vec<usize> {
    fn gcd(a: usize, b: usize) -> usize {
        if b == 0 {
            a
        } else {
            gcd(b, a % b)
        }
    }
    let mut stride = ((n as f64 * 0.618) as usize).max(1);
    while gcd(stride, n) != 1 {
        stride += 1;
    }
    (0..n).map(|k| k * stride % n).collect()
}

/// What [`throughput_sampled`] measured.
struct Sampled {
    mb_per_second: f64,
    /// Bytes given to `f` in the timed runs.
    bytes: usize,
    /// The sum of what `f` returned for them.
    output: usize,
}

/// Blocks [`throughput_sampled`] gives `f` however short its budget (all of them when there are fewer), so a
/// ratio comes from several parts of the data.
const MIN_SAMPLED_BLOCKS: usize = 8;

/// Runs `f` on blocks of `data` of `block` bytes for at least `budget` (after one warm-up block, and at least
/// [`MIN_SAMPLED_BLOCKS`] blocks), visiting them in [`spread`] order and starting over when all were seen;
/// once it has seen all of them, it stops only at the end of a pass, so every block counts as often. A
/// slow option on a large sample takes about `budget`, not a pass over all of it.
fn throughput_sampled(data: &[u8], block: usize, budget: Duration, mut f: impl FnMut(&[u8]) -> usize) -> Sampled {
    let blocks: Vec<&[u8]> = data.chunks(block.max(1)).collect();
    if blocks.is_empty() {
        return Sampled { mb_per_second: 0.0, bytes: 0, output: 0 };
    }
    let order = spread(blocks.len());
    f(blocks[order[0]]);
    let start = Instant::now();
    let (mut visited, mut bytes, mut output) = (0usize, 0usize, 0usize);
    let n = blocks.len();
    while visited < MIN_SAMPLED_BLOCKS.min(n) || start.elapsed() < budget || (visited > n && visited % n != 0) {
        let chunk = blocks[order[visited % n]];
        output += f(chunk);
        bytes += chunk.len();
        visited += 1;
    }
    Sampled { mb_per_second: bytes as f64 / start.elapsed().as_secs_f64() / 1e6, bytes, output }
}

/// zstd at every offered level, chunks of `block` bytes, each level for about `budget`: its speed, and its
/// ratio over the chunks it compressed in that time (spread over the whole sample; the note says how much
/// when that was less than all of it).
pub fn compression(data: &[u8], block: usize, budget: Duration) -> Vec<BenchResult> {
    compress::LEVELS
        .map(|level| {
            let mut out = Vec::new();
            let sampled = throughput_sampled(data, block, budget, |chunk| {
                match compress::compress_into(level, chunk, &mut out) {
                    Compression::Zstd => out.len(),
                    Compression::None => chunk.len(),
                }
            });
            let default = if level == crate::format::DEFAULT_COMPRESSION_LEVEL { " (default)" } else { "" };
            let mib = |bytes: usize| bytes as f64 / 1048576.0;
            let note = match sampled.bytes < data.len() {
                true => format!("ratio over {:.1} of {:.1} MiB", mib(sampled.bytes), mib(data.len())),
                false => String::new(),
            };
            BenchResult {
                name: format!("zstd-{level}{default}"),
                mb_per_second: sampled.mb_per_second,
                ratio: Some(sampled.output as f64 / sampled.bytes.max(1) as f64),
                note,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_behave_as_described() {
        let text = sample(SampleKind::Text, 1 << 20);
        let random = sample(SampleKind::Random, 1 << 20);
        let mut out = Vec::new();
        assert_eq!(compress::compress_into(3, &text, &mut out), Compression::Zstd);
        let ratio = out.len() as f64 / text.len() as f64;
        assert!(ratio > 0.1 && ratio < 0.4, "text ratio {ratio}");
        assert_eq!(compress::compress_into(3, &random, &mut out), Compression::None);
        let results = compression(&text[..65536], 65536, Duration::from_millis(1));
        assert_eq!(results.len(), 19);
        assert!(results.iter().all(|r| r.mb_per_second > 0.0));
    }

    /// Each level takes about its time budget on a large sample (the slow levels used to compress all of it,
    /// twice): its ratio comes from blocks spread over the sample, and the note says how much was sampled.
    #[test]
    fn compression_levels_sample_large_data_within_the_budget() {
        let mut data = sample(SampleKind::Text, 4 << 20);
        data.extend(sample(SampleKind::Random, 4 << 20));
        let results = compression(&data, 64 << 10, Duration::from_millis(1));
        let slowest = results.last().unwrap();
        assert!(slowest.note.starts_with("ratio over"), "{slowest:?}");
        for r in &results {
            let ratio = r.ratio.unwrap();
            assert!(ratio > 0.0 && ratio <= 1.0, "{r:?}");
        }
        // The stride reaches both halves early: text and random blocks alternate within the first few.
        let order = spread(128);
        assert!(order[..4].iter().any(|&i| i < 64) && order[..4].iter().any(|&i| i >= 64), "{order:?}");
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(sorted, (0..128).collect::<Vec<_>>(), "every block once");
    }
}
