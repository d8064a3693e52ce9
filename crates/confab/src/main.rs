//! # confab — the binary of Confab
//!
//! This crate owns the command line (clap) and, from the next issue on, `confab serve`, which
//! composes a front-end from `confab-server`, the admin HTTP API, the web console and metrics.
//! It wires the library crates together and must not hold business rules: those live in
//! `confab-sip`, `confab-store`, `confab-server`, `confab-ops` and `confab-ua`.

#![forbid(unsafe_code)]

mod cli;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::Cli;

fn main() -> ExitCode {
    let _cli = Cli::parse();
    // No subcommand exists yet, so any invocation that is not --help or --version is a usage
    // error: say so instead of pretending to have done something.
    eprintln!(
        "error: no command given; this build of confab has none yet (`serve` arrives next)\n\n\
         For more information, try '--help'."
    );
    ExitCode::from(2)
}
