//! The `spar` binary: arguments in, library code out.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    spar_server::cli::run(spar_server::cli::Cli::parse())
}
