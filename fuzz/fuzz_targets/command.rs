//! `cargo fuzz run command`: see `spar_server::fuzzing::command`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| spar_server::fuzzing::command(data));
