//! The `spar` binary: arguments in, library code out.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = spar_server::cli::Cli::parse();
    // A deep expression is walked recursively by the SQL parser's and
    // DataFusion's own code: every thread of `spar` gets a deep stack
    // (reserved, not used, until needed).
    let main = std::thread::Builder::new()
        .name("spar-main".into())
        .stack_size(spar_engine::STACK_SIZE)
        .spawn(move || spar_server::cli::run(cli));
    match main.map(|t| t.join()) {
        Ok(Ok(code)) => code,
        Ok(Err(_)) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: cannot start the main thread: {e}");
            ExitCode::FAILURE
        }
    }
}
