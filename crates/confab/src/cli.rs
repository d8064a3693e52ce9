//! The command line of `confab`, defined in one place so that `--help`, the docs and later
//! completions cannot drift apart.
//!
//! Settings of `serve` are taken as text here and interpreted in [`crate::settings`], which
//! merges them with the config file and the defaults and names where a bad value came from.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

const ABOUT: &str = "Confab: an open unified-communications (SIP) server";

const LONG_ABOUT: &str = "\
Confab is an open unified-communications server: SIP registrar, presence and instant messaging
organised in pools, with the day-2 operations of a real deployment built in and tested: topology,
user homing, moving users between pools, migrating from a legacy deployment with coexistence,
backup and restore with a per-pool user inventory, and change control with an emergency path.

Start a front-end with `confab serve`; see `confab serve --help` for its settings.";

/// The whole command line of `confab`.
#[derive(Debug, Parser)]
#[command(
    name = "confab",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    subcommand_required = true,
    arg_required_else_help = true
)]
pub struct Cli {
    #[command(flatten)]
    pub deployment: DeploymentArgs,

    /// Print machine-readable JSON instead of text, for scripts.
    #[arg(long, global = true)]
    pub json: bool,

    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
// Parsed once per run: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a front-end: the SIP transports (and later the admin API, web console and metrics)
    ///
    /// Every setting can be given as an option, as an environment variable (CONFAB_ and the
    /// option's name, e.g. CONFAB_LISTEN), or as a key in the TOML file of --config (e.g.
    /// listen = [...]); the option wins over the variable, the variable over the file, the
    /// file over the default. The actual SIP listeners are printed to standard output, one
    /// line each: `listening udp://127.0.0.1:5060`. SIGINT or SIGTERM shuts the server down
    /// cleanly.
    Serve(ServeArgs),

    /// TLS certificates for the tls:// and wss:// listeners
    #[command(subcommand)]
    Tls(TlsCommand),
}

/// Where to find the deployment: every management command and `serve` take these.
#[derive(Debug, Args)]
pub struct DeploymentArgs {
    /// Data directory of the deployment; the embedded SQLite management store lives inside
    /// it [default: ./confab-data]
    #[arg(long, value_name = "DIR", env = "CONFAB_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,

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

/// The settings of `confab serve`. Each is optional here: absent, it falls back to the
/// config file, then to its default.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// TOML file with any of the settings below (keys as the options, with _ for -)
    #[arg(long, value_name = "FILE", env = "CONFAB_CONFIG")]
    pub config: Option<PathBuf>,

    /// The pool this front-end belongs to
    #[arg(long, value_name = "NAME", env = "CONFAB_POOL")]
    pub pool: Option<String>,

    /// A SIP listener: udp://, tcp://, tls://, ws:// or wss:// IP:PORT; repeat for more
    /// [default: udp://127.0.0.1:5060, tcp://127.0.0.1:5060]
    ///
    /// Port 0 binds a free port; the actual one is printed. CONFAB_LISTEN takes a
    /// comma-separated list.
    #[arg(long, value_name = "URI", env = "CONFAB_LISTEN", value_delimiter = ',')]
    pub listen: Vec<String>,

    /// Address of the admin HTTP API (not served yet) [default: 127.0.0.1:8480]
    #[arg(long, value_name = "ADDR", env = "CONFAB_ADMIN_LISTEN")]
    pub admin_listen: Option<String>,

    /// PEM certificate chain for tls:// and wss:// listeners
    #[arg(long, value_name = "FILE", env = "CONFAB_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key for tls:// and wss:// listeners
    #[arg(long, value_name = "FILE", env = "CONFAB_TLS_KEY")]
    pub tls_key: Option<PathBuf>,

    /// Log filter: error, warn, info, debug, trace, or per module (confab_server=debug)
    /// [default: info]
    #[arg(long, value_name = "FILTER", env = "CONFAB_LOG_LEVEL")]
    pub log_level: Option<String>,

    /// Most open TCP, TLS and WebSocket connections at once [default: 4096]
    #[arg(long, value_name = "N", env = "CONFAB_MAX_CONNECTIONS")]
    pub max_connections: Option<String>,

    /// Largest SIP message accepted, in octets [default: 65535]
    #[arg(long, value_name = "OCTETS", env = "CONFAB_MAX_MESSAGE_SIZE")]
    pub max_message_size: Option<String>,

    /// Close a connection after this long without traffic, e.g. 300s, 5m [default: 300s]
    #[arg(long, value_name = "DURATION", env = "CONFAB_IDLE_TIMEOUT")]
    pub idle_timeout: Option<String>,

    /// Close a connection whose handshake, first message or any started message is not
    /// complete after this long: the slow-loris defence [default: 10s]
    #[arg(long, value_name = "DURATION", env = "CONFAB_HEADER_TIMEOUT")]
    pub header_timeout: Option<String>,

    /// Most live SIP transactions at once; a request that would start one more is answered
    /// 503 with Retry-After [default: 100000]
    #[arg(long, value_name = "N", env = "CONFAB_MAX_TRANSACTIONS")]
    pub max_transactions: Option<String>,

    /// Transaction timer T1, the round-trip estimate: first retransmission interval, and
    /// 64·T1 the transaction timeout (RFC 3261 §17.1.1.1) [default: 500ms]
    #[arg(long, value_name = "DURATION", env = "CONFAB_T1")]
    pub t1: Option<String>,

    /// Transaction timer T2, the longest retransmission interval; at least T1
    /// [default: 4s]
    #[arg(long, value_name = "DURATION", env = "CONFAB_T2")]
    pub t2: Option<String>,

    /// Transaction timer T4, the longest a message stays in the network [default: 5s]
    #[arg(long, value_name = "DURATION", env = "CONFAB_T4")]
    pub t4: Option<String>,

    /// Answer UDP requests at their source port even without rport (for clients behind NAT)
    /// [default: false]
    #[arg(
        long,
        value_name = "BOOL",
        env = "CONFAB_FORCE_RPORT",
        num_args = 0..=1,
        default_missing_value = "true"
    )]
    pub force_rport: Option<String>,
}

/// `confab tls …`
#[derive(Debug, Subcommand)]
pub enum TlsCommand {
    /// Create a self-signed certificate and key for development and tests
    ///
    /// The certificate names every --name as a subject alternative name (IP addresses as
    /// IP SANs). Clients must be told to trust it; use a certificate from a real authority
    /// in production.
    Generate(TlsGenerateArgs),
}

/// `confab tls generate`.
#[derive(Debug, Args)]
pub struct TlsGenerateArgs {
    /// Where to write the PEM certificate
    #[arg(long, value_name = "FILE")]
    pub cert: PathBuf,

    /// Where to write the PEM private key (created readable by its owner only)
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,

    /// A host name or IP address the certificate is for; repeat for more
    /// [default: localhost, 127.0.0.1, ::1]
    #[arg(long = "name", value_name = "HOST")]
    pub names: Vec<String>,

    /// Overwrite existing files
    #[arg(long)]
    pub force: bool,
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
            "serve",
            "--listen",
            "udp://0.0.0.0:5060",
            "--listen",
            "tls://0.0.0.0:5061,ws://0.0.0.0:8080",
            "--force-rport",
            "--t1",
            "250ms",
            "--max-transactions",
            "5000",
        ])
        .expect("valid command line");
        assert_eq!(
            cli.deployment.data_dir,
            Some(PathBuf::from("/var/lib/confab"))
        );
        assert_eq!(
            cli.deployment.store.as_deref(),
            Some("postgres://db/confab")
        );
        assert!(cli.json);
        let Command::Serve(serve) = cli.command else {
            panic!("serve expected");
        };
        assert_eq!(serve.listen.len(), 3);
        assert_eq!(serve.force_rport.as_deref(), Some("true"));
        assert_eq!(serve.t1.as_deref(), Some("250ms"));
        assert_eq!(serve.max_transactions.as_deref(), Some("5000"));
    }

    #[test]
    fn global_options_after_the_subcommand() {
        let cli = Cli::try_parse_from(["confab", "serve", "--data-dir", "/srv/confab"])
            .expect("valid command line");
        assert_eq!(cli.deployment.data_dir, Some(PathBuf::from("/srv/confab")));
    }

    #[test]
    fn unknown_flag_is_an_error() {
        let err = Cli::try_parse_from(["confab", "serve", "--no-such-flag"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::UnknownArgument);
    }
}
