//! The command line of `confab`, defined in one place so that `--help`, the docs and later
//! completions cannot drift apart.
//!
//! Only options that already mean something are here. Subcommands (`serve` first) arrive with
//! the issues that implement them.

use std::path::PathBuf;

use clap::{Args, Parser};

const ABOUT: &str = "Confab: an open unified-communications (SIP) server";

const LONG_ABOUT: &str = "\
Confab is an open unified-communications server: SIP registrar, presence and instant messaging
organised in pools, with the day-2 operations of a real deployment built in and tested: topology,
user homing, moving users between pools, migrating from a legacy deployment with coexistence,
backup and restore with a per-pool user inventory, and change control with an emergency path.

This build has no subcommands yet: `confab serve` arrives next.";

/// The whole command line of `confab`.
#[derive(Debug, Parser)]
#[command(name = "confab", version, about = ABOUT, long_about = LONG_ABOUT)]
pub struct Cli {
    #[command(flatten)]
    pub deployment: DeploymentArgs,

    /// Print machine-readable JSON instead of text, for scripts.
    #[arg(long, global = true)]
    pub json: bool,
}

/// Where to find the deployment: every management command and `serve` take these.
#[derive(Debug, Args)]
pub struct DeploymentArgs {
    /// Data directory of the deployment; the embedded SQLite management store lives inside it.
    #[arg(
        long,
        value_name = "DIR",
        env = "CONFAB_DATA_DIR",
        default_value = "./confab-data",
        global = true
    )]
    pub data_dir: PathBuf,

    /// Management store URL, e.g. postgres://HOST/DB; default: SQLite in the data directory
    ///
    /// A PostgreSQL store is shared by the front-ends of many pools. Without this option the
    /// deployment's store is the SQLite file inside the data directory. The value of
    /// CONFAB_STORE is never shown in help, because a store URL may carry a password.
    #[arg(
        long,
        value_name = "URL",
        env = "CONFAB_STORE",
        hide_env_values = true,
        global = true
    )]
    pub store: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn flags_parse() {
        let cli = Cli::try_parse_from([
            "confab",
            "--data-dir",
            "/var/lib/confab",
            "--store",
            "postgres://db/confab",
            "--json",
        ])
        .expect("valid command line");
        assert_eq!(cli.deployment.data_dir, PathBuf::from("/var/lib/confab"));
        assert_eq!(
            cli.deployment.store.as_deref(),
            Some("postgres://db/confab")
        );
        assert!(cli.json);
    }

    #[test]
    fn unknown_flag_is_an_error() {
        let err = Cli::try_parse_from(["confab", "--no-such-flag"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::UnknownArgument);
    }
}
