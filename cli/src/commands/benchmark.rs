//! `cairn benchmark splitter|hashing|encryption|compression`: measures each option Cairn offers on this
//! machine (one core), prints them ranked by speed and names the fastest, as Kopia's benchmark commands do.
//! The sample is generated (text-like or random) or, with `--data-file`, read from the user's own file.

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use cairn_engine::benchmark::{self, BenchResult, SampleKind};

use crate::args::{BenchmarkCommand, BenchmarkOptions, SampleData};
use crate::output;

pub fn run(command: &BenchmarkCommand) -> Result<()> {
    let (what, opts) = match command {
        BenchmarkCommand::Splitter(o) => ("splitter", o),
        BenchmarkCommand::Hashing(o) => ("hashing", o),
        BenchmarkCommand::Encryption(o) => ("encryption", o),
        BenchmarkCommand::Compression(o) => ("compression", o),
    };
    check(opts)?;
    let kind = match opts.data {
        SampleData::Text => SampleKind::Text,
        SampleData::Random => SampleKind::Random,
    };
    let (data, described) = match &opts.data_file {
        Some(path) => (read_sample(path, opts.size_mib << 20)?, path.display().to_string()),
        None => (benchmark::sample(kind, opts.size_mib << 20), format!("{:?} data", opts.data)),
    };
    let budget = Duration::from_secs_f64(opts.seconds);
    let block = opts.block_kib << 10;
    if !opts.json {
        errln!(
            "Benchmarking {what} on {:.1} MiB of {described}, one thread, {:.1}s per option...",
            data.len() as f64 / 1048576.0,
            opts.seconds
        );
    }
    let mut results = match command {
        BenchmarkCommand::Splitter(_) => benchmark::splitter(&data, budget),
        BenchmarkCommand::Hashing(_) => benchmark::hashing(&data, block, budget),
        BenchmarkCommand::Encryption(_) => benchmark::encryption(&data, block, budget),
        BenchmarkCommand::Compression(_) => benchmark::compression(&data, block, budget),
    };
    results.sort_by(|a, b| b.mb_per_second.total_cmp(&a.mb_per_second));
    if opts.json {
        return output::json(&serde_json::json!({
            "benchmark": what,
            "data": if opts.data_file.is_some() { "file".to_string() } else { format!("{:?}", opts.data).to_lowercase() },
            "dataFile": opts.data_file.as_ref().map(|p| p.to_string_lossy()),
            "bytes": data.len(),
            "blockBytes": block,
            "results": results,
            "fastest": results.first().map(|r| r.name.clone()),
        }));
    }
    print_table(&results);
    if let Some(best) = results.first() {
        outln!("\nFastest option for this machine is: {}", best.name);
    }
    if what == "compression" {
        if let Some(best) = best_ratio_at_speed(&results, 200.0) {
            outln!("Best ratio at 200 MB/s or more per core: {}", best.name);
        }
    }
    Ok(())
}

/// The first `limit` bytes of `path`.
fn read_sample(path: &Path, limit: usize) -> Result<Vec<u8>> {
    let file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut data = Vec::new();
    file.take(limit as u64).read_to_end(&mut data).with_context(|| format!("cannot read {}", path.display()))?;
    if data.is_empty() {
        bail!("{} is empty: nothing to measure", path.display());
    }
    Ok(data)
}

fn check(opts: &BenchmarkOptions) -> Result<()> {
    if opts.size_mib == 0 || opts.size_mib > 4096 {
        bail!("--size-mib must be between 1 and 4096");
    }
    if opts.block_kib == 0 || opts.block_kib > 16 * 1024 {
        bail!("--block-kib must be between 1 and 16384");
    }
    if !(0.01..=60.0).contains(&opts.seconds) {
        bail!("--seconds must be between 0.01 and 60");
    }
    Ok(())
}

fn best_ratio_at_speed(results: &[BenchResult], min_speed: f64) -> Option<&BenchResult> {
    results
        .iter()
        .filter(|r| r.mb_per_second >= min_speed)
        .min_by(|a, b| a.ratio.unwrap_or(1.0).total_cmp(&b.ratio.unwrap_or(1.0)))
}

fn print_table(results: &[BenchResult]) {
    outln!("{:>4}  {:<36} {:>12} {:>8}  note", "rank", "option", "MB/s/core", "ratio");
    for (i, r) in results.iter().enumerate() {
        let ratio = r.ratio.map(|x| format!("{x:.3}")).unwrap_or_else(|| "-".into());
        outln!("{:>4}  {:<36} {:>12.1} {:>8}  {}", i + 1, r.name, r.mb_per_second, ratio, r.note);
    }
}
