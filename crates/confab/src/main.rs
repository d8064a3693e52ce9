//! # confab — the binary of Confab
//!
//! This crate owns the command line (clap); `confab serve`, which opens the management store
//! (creating it and the defaults on a first start) and composes a front-end from
//! `confab-server` (and later the admin HTTP API, the web console and metrics); and the
//! management commands (`confab user …`, `confab domain …`, `confab topology …`,
//! `confab pool …`, `confab contacts …`, `confab presence-rules …`), which call `confab-ops`. It wires
//! the library crates together and must not hold business rules: those live in `confab-sip`,
//! `confab-store`, `confab-server`, `confab-ops` and `confab-ua`.

#![forbid(unsafe_code)]

mod admin;
mod backup;
mod change;
mod cli;
mod contacts;
mod domain;
mod first_start;
mod manage;
mod migrate;
mod prompt;
mod serve;
mod settings;
mod synthetic;
mod tls_generate;
mod topology;
mod user;
mod user_import;
mod user_move;

use std::process::ExitCode;

use clap::{parser::ValueSource, ArgMatches, CommandFactory, FromArgMatches};

use crate::cli::{Cli, Command, TlsCommand};
use crate::settings::{Given, Origin};

/// jemalloc rather than the system's allocator: a server frees the memory of every ended
/// transaction, and glibc keeps most of it (a fragmented heap), where jemalloc returns it
/// to the system within seconds; it is also faster for the many small, short-lived
/// allocations of the request path (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    match &cli.command {
        Command::Serve(args) => {
            let sub = matches.subcommand_matches("serve").unwrap_or(&matches);
            let origin = |key: &'static str| origin_of(sub, key);
            let given = Given {
                deployment: &cli.deployment,
                serve: args,
                origin: &origin,
            };
            match settings::resolve(&given) {
                Ok(settings) => serve::run(settings, cli.json),
                Err(e) => serve::settings_error(&e),
            }
        }
        Command::User(command) => user::run(&cli.deployment, command, cli.json),
        Command::Domain(command) => domain::run(&cli.deployment, command, cli.json),
        Command::Contacts(command) => contacts::run(&cli.deployment, command, cli.json),
        Command::PresenceRules(command) => {
            contacts::run_presence_rules(&cli.deployment, command, cli.json)
        }
        Command::Topology(command) => topology::run(&cli.deployment, command, cli.json),
        Command::Pool(command) => topology::run_pool(&cli.deployment, command, cli.json),
        Command::Tls(TlsCommand::Generate(args)) => tls_generate::run(args, cli.json),
        Command::Change(command) => change::run_change(&cli.deployment, command, cli.json),
        Command::Status(args) => change::run_status(&cli.deployment, args, cli.json),
        Command::Audit(command) => change::run_audit(&cli.deployment, command, cli.json),
        Command::Admin(command) => change::run_admin(&cli.deployment, command, cli.json),
        Command::Backup(command) => backup::run(&cli.deployment, command, cli.json),
        Command::Restore(args) => backup::run_restore(&cli.deployment, args, cli.json),
        Command::Inventory(args) => backup::run_inventory(&cli.deployment, args, cli.json),
        Command::Migrate(command) => migrate::run(&cli.deployment, command, cli.json),
        Command::Test(command) => synthetic::run(&cli.deployment, command, cli.json),
    }
}

/// Whether an option's value came from the command line or its environment variable.
fn origin_of(matches: &ArgMatches, key: &'static str) -> Origin {
    match matches
        .try_get_raw(key)
        .ok()
        .and_then(|_| matches.value_source(key))
    {
        Some(ValueSource::EnvVariable) => Origin::Env(key),
        _ => Origin::Flag(key),
    }
}
