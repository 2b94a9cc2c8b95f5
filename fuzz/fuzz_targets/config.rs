//! `cargo fuzz run config`: see `spar_server::fuzzing::config`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| spar_server::fuzzing::config(data));
