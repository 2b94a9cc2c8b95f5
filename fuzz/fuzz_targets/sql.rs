//! `cargo fuzz run sql`: see `spar_server::fuzzing::sql`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| spar_server::fuzzing::sql(data));
