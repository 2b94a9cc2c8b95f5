//! `cargo fuzz run ticket`: see `spar_server::fuzzing::ticket`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| spar_server::fuzzing::ticket(data));
