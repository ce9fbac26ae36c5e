//! Fuzzes the repository-server frame decoder (`cairn_transport::protocol`): it must never panic nor
//! allocate beyond the frame it is given, whatever the bytes.
#![no_main]

use cairn_transport::protocol::{decode_frame, Request, Response};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = decode_frame::<Request>(data);
    let _ = decode_frame::<Response>(data);
});
