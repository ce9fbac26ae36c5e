//! `cairn benchmark`: every option measured and ranked, on generated data or on the user's own file, with
//! `--json` for scripts and clear errors for bad arguments.

use std::fs;

use crate::support::{stderr, Env};
use crate::tree_gen::{noise, text};

#[test]
fn benchmarks_rank_options_on_generated_data_and_on_a_file() {
    let env = Env::new();
    let quick = ["--size-mib", "1", "--seconds", "0.01", "--json"];

    let splitter = env.json(&[&["benchmark", "splitter"][..], &quick].concat());
    let results = splitter["results"].as_array().unwrap();
    assert!(results.len() >= 3, "{splitter}");
    let speeds: Vec<f64> = results.iter().map(|r| r["mbPerSecond"].as_f64().unwrap()).collect();
    assert!(speeds.windows(2).all(|w| w[0] >= w[1]) && speeds.iter().all(|s| *s > 0.0), "ranked: {speeds:?}");
    assert_eq!(splitter["fastest"], results[0]["name"]);

    // On a file: half text, half noise, so the ratio lies strictly between the two halves' ratios.
    let sample = env.path("sample.bin");
    let mut bytes = text(7, 512 << 10);
    bytes.extend(noise(8, 512 << 10));
    fs::write(&sample, &bytes).unwrap();
    let file_args = ["benchmark", "compression", "--data-file", sample.to_str().unwrap(), "--size-mib", "1"];
    let compression = env.json(&[&file_args[..], &["--seconds", "0.01", "--json", "--block-kib", "256"]].concat());
    assert_eq!(compression["data"], "file", "{compression}");
    assert_eq!(compression["bytes"], bytes.len() as u64);
    let ratios: Vec<f64> =
        compression["results"].as_array().unwrap().iter().map(|r| r["ratio"].as_f64().unwrap()).collect();
    assert_eq!(ratios.len(), 19, "every offered level");
    assert!(ratios.iter().all(|r| *r > 0.5 && *r < 0.99), "{ratios:?}");

    // --data-file reads at most --size-mib.
    fs::write(&sample, [bytes.as_slice(), &bytes].concat()).unwrap();
    let hashing =
        env.json(&["benchmark", "hashing", "--data-file", sample.to_str().unwrap(), "--size-mib", "1", "--json"]);
    assert_eq!(hashing["bytes"], 1 << 20);
}

#[test]
fn benchmark_arguments_are_checked() {
    let env = Env::new();
    let missing = env.path("missing.bin");
    let out = env.run(&["benchmark", "hashing", "--data-file", missing.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("missing.bin"), "{}", stderr(&out));
    let empty = env.path("empty.bin");
    fs::write(&empty, b"").unwrap();
    let out = env.run(&["benchmark", "hashing", "--data-file", empty.to_str().unwrap()]);
    assert!(stderr(&out).contains("is empty"), "{}", stderr(&out));
    let out = env.run(&["benchmark", "hashing", "--data", "random", "--data-file", empty.to_str().unwrap()]);
    assert!(!out.status.success(), "--data and --data-file conflict");
    let out = env.run(&["benchmark", "splitter", "--size-mib", "0"]);
    assert!(stderr(&out).contains("--size-mib"), "{}", stderr(&out));
}
