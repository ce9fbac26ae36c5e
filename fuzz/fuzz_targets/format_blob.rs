//! Fuzzes `cairn_engine::fuzzing::format_blob`: it must never panic, whatever the bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = cairn_engine::fuzzing::format_blob(data);
});
