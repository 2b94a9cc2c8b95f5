//! `cargo fuzz run flight_data`: see `spar_server::fuzzing::flight_data`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| spar_server::fuzzing::flight_data(data));
