//! `cargo fuzz run sql`: see `spar_server::fuzzing::sql`.
#![no_main]

libfuzzer_sys::fuzz_target!(
    // A panic that Spar catches (arrow's IPC decoder panics on some
    // malformed messages; the server answers INVALID_ARGUMENT) is not a
    // crash: only one that escapes is, as it would end a request's task.
    init: std::panic::set_hook(Box::new(|_| {})),
    |data: &[u8]| spar_server::fuzzing::sql(data)
);
