//! Fuzzes `cairn_engine::fuzzing::tree_record`: it must never panic, whatever the bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = cairn_engine::fuzzing::tree_record(data);
});
