//! The command line of `confab`, defined in one place so that `--help`, the docs and later
//! completions cannot drift apart.
//!
//! Settings of `serve` are taken as text here and interpreted in [`crate::settings`], which
//! merges them with the config file and the defaults and names where a bad value came from.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use confab_store::{Address, PresenceLevel, Watcher};

const ABOUT: &str = "Confab: an open unified-communications (SIP) server";

const LONG_ABOUT: &str = "\
Confab is an open unified-communications server: SIP registrar, presence and instant messaging
organised in pools, with the day-2 operations of a real deployment built in and tested: topology,
user homing, moving users between pools, migrating from a legacy deployment with coexistence,
backup and restore with a per-pool user inventory, and change control with an emergency path.

Start a front-end with `confab serve`; a first start creates the data directory, the management
store, a SIP domain and the pool `default`. Then add users with `confab user add`, e.g.
`confab user add alice@localhost`. See `confab help COMMAND` for each command.";

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

    /// Users of the deployment: add, import, list, show, passwd, disable, enable, remove
    ///
    /// Works on the management store of --data-dir or --store, also while servers run on it.
    /// Exit status: 0 done, 1 refused or failed (the message says why and what to do; nothing
    /// was changed), 2 a usage error.
    #[command(subcommand)]
    User(UserCommand),

    /// SIP domains of the deployment: add, list
    ///
    /// A quick way to add a domain; the topology document (`confab topology`) describes all
    /// of them at once.
    #[command(subcommand)]
    Domain(DomainCommand),

    /// The deployment's topology: validate, publish, show, diff and export the TOML document
    /// of its SIP domains, sites and pools
    ///
    /// Exit status of validate: 0 valid (warnings are printed), 1 problems (each printed as
    /// FILE:LINE:COL: problem (fix)), 2 the file or store cannot be read. Of diff: 0 no
    /// differences, 1 differences, 2 an error (an invalid document included). Of the others:
    /// 0 done, 1 refused or failed (nothing was changed), 2 a usage error.
    #[command(subcommand)]
    Topology(TopologyCommand),

    /// Pools of the deployment: list, show (with users homed and registrations)
    #[command(subcommand)]
    Pool(PoolCommand),

    /// A user's server-side contact list: list, add, remove, and its groups
    ///
    /// A contact is any SIP address USER@DOMAIN, a user of this deployment or of another
    /// one, with an optional name and group. Works on the management store of --data-dir or
    /// --store; running servers learn of every change. Exit status: 0 done, 1 refused or
    /// failed (nothing was changed), 2 a usage error.
    #[command(subcommand)]
    Contacts(ContactsCommand),

    /// A user's presence rules: what a watcher may see of the user's presence
    ///
    /// A WATCHER is one user, USER@DOMAIN, or every user of a domain, @DOMAIN; a rule for a
    /// user wins over one for their domain. A LEVEL is, from least to most, blocked,
    /// colleagues, workgroup or friends-and-family.
    #[command(subcommand, name = "presence-rules")]
    PresenceRules(PresenceRulesCommand),

    /// TLS certificates for the tls:// and wss:// listeners
    #[command(subcommand)]
    Tls(TlsCommand),

    /// Change records: list, show
    ///
    /// Every administrative change is recorded with its class (standard, normal, emergency),
    /// state, requester, approvals and what it changed.
    #[command(subcommand)]
    Change(ChangeCommand),

    /// The hash-chained audit log: list, verify
    ///
    /// Exit status of verify: 0 intact, 1 an entry modified, deleted or reordered (the first
    /// bad one is named), 2 the store cannot be read.
    #[command(subcommand)]
    Audit(AuditCommand),

    /// The deployment at a glance: pools, users, changes waiting for approval or review
    ///
    /// Exit status: 0 nothing overdue, 1 an emergency change's review is overdue or the audit
    /// log does not verify, 2 the store cannot be read.
    Status(StatusArgs),

    /// Backups of the deployment: create, verify, list
    ///
    /// A backup is one compressed archive (tar.gz) of the whole management store, read at one
    /// instant while front-ends keep serving, with a manifest (versions, time, rows per
    /// table, SHA-256 of every entry) and the inventory of users per pool. It restores into
    /// SQLite or PostgreSQL, whichever it came from. Exit status: 0 done, 1 refused or failed
    /// (verify: the backup is not restorable), 2 a usage error.
    #[command(subcommand)]
    Backup(BackupCommand),

    /// Restore a backup: into an empty store, or over this deployment with --force
    ///
    /// Over a deployment it is a change of its own: a normal change (approved by another
    /// administrator, then `confab change implement`), or with --emergency made at once after
    /// a snapshot. With --users, only those users' contact lists and presence rules come
    /// back (a standard change). Running front-ends read the restored state within a second.
    Restore(RestoreArgs),

    /// The users homed on each pool: what to print before a migration
    ///
    /// One line per user: pool, address, display name, enabled, last registration, number of
    /// contacts — the same inventory a backup carries.
    Inventory(InventoryArgs),

    /// Migration from a legacy deployment (Kamailio): plan, import, merge, coexist, advance
    /// phase by phase, roll back
    ///
    /// Exit status: 0 done, 1 refused, a check failed or some users not imported (each listed
    /// with why), 2 a usage error.
    #[command(subcommand)]
    Migrate(MigrateCommand),

    /// Synthetic transactions: exercise a pool with real SIP and report pass/fail with timings
    ///
    /// `setup` creates the pool's two test users (confab-test-1@DOMAIN, confab-test-2@DOMAIN)
    /// with random passwords, kept in test-users/POOL.toml in the data directory (readable by
    /// its owner only). `registration`, `im` and `presence` sign them in at one of the pool's
    /// front-ends and do what a client does. Exit status: 0 passed, 1 failed (or refused), 2
    /// a usage error.
    #[command(subcommand)]
    Test(TestCommand),

    /// Administrators of the deployment and their roles: list
    ///
    /// A first start creates the administrator `admin` with every role and writes its
    /// credentials to admin.credentials in the data directory.
    #[command(subcommand)]
    Admin(AdminCommand),
}

/// `confab change …`
#[derive(Debug, Subcommand)]
pub enum ChangeCommand {
    /// List the change records, newest first
    List(ChangeListArgs),

    /// Show one change record
    Show(ChangeShowArgs),

    /// Approve a normal change another administrator requested (approver role)
    Approve(ChangeDecisionArgs),

    /// Reject a normal change another administrator requested (approver role)
    Reject(ChangeDecisionArgs),

    /// Carry out an approved normal change
    Implement(ChangeShowArgs),

    /// Record the review of an implemented change (approver role)
    Review(ChangeReviewArgs),

    /// The catalogue of standard changes: what is made at once, and the roles that make it
    ///
    /// Everything else is a normal change (requested, approved by another administrator,
    /// implemented) or an emergency change.
    Catalogue,

    /// Request a normal change: `confab change request --reason "…" -- pool maintenance on
    /// fe-paris`
    ///
    /// It waits for approval by another administrator with the approver role (`confab change
    /// approve`), then `confab change implement` carries it out. Operations: as for
    /// `confab change emergency`.
    Request(ChangeRequestArgs),

    /// Roll a change back: a change record of its own, linked to it, carrying what undoes it
    ///
    /// A topology publication is undone by publishing the version before it again; a user
    /// disabled by enabling it (and the reverse); a move by sending its users back; a pool's
    /// maintenance by ending it; a role change by the roles before it. A normal change
    /// (approved by another administrator, then implemented) unless --emergency, which rolls
    /// back at once. `last` names the newest change that was made and not rolled back yet.
    Rollback(ChangeRollbackArgs),

    /// Make an emergency change at once: `confab change emergency --reason "…" -- user
    /// disable alice@example.com`
    ///
    /// Needs the emergency role besides the operation's own. A snapshot of the store is
    /// written to the data directory's snapshots/ first; the change stays flagged until its
    /// review (`confab change review`), due within 24 hours — `confab status` shows it.
    /// Operations: user disable|enable USER@DOMAIN, source block|unblock CIDR (every message
    /// from the network dropped at ingress), pool maintenance on|off POOL (its paired pool
    /// serves its users meanwhile), topology publish FILE, admin roles NAME ROLE[,ROLE…],
    /// admin disable|enable NAME.
    Emergency(ChangeEmergencyArgs),
}

/// `confab backup …`
#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// Take a backup now (admin role); prints where, what it holds and its SHA-256
    Create(BackupCreateArgs),

    /// Prove a backup restorable: checksums, manifest, a restore into a scratch store compared
    /// with the manifest; the outcome is recorded when the deployment knows the backup
    Verify(BackupFileArg),

    /// The backups this deployment took, newest first, verified or not
    List,
}

/// `confab backup create`.
#[derive(Debug, Args)]
pub struct BackupCreateArgs {
    /// The archive to write [default: backups/confab-TIME.tar.gz in the data directory]
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// A backup archive.
#[derive(Debug, Args)]
pub struct BackupFileArg {
    /// The archive
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

/// `confab restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The archive
    #[arg(value_name = "FILE")]
    pub file: PathBuf,

    /// Replace this deployment (a change: requested for approval, or --emergency)
    #[arg(long)]
    pub force: bool,

    /// With --force: at once, as an emergency change (snapshot first, review after)
    #[arg(long, requires = "force")]
    pub emergency: bool,

    /// Why (with --force)
    #[arg(long, value_name = "TEXT", required_if_eq("force", "true"))]
    pub reason: Option<String>,

    /// Only these users' contact lists and presence rules (USER@DOMAIN,…)
    #[arg(long, value_name = "USERS", value_delimiter = ',', value_parser = address,
          conflicts_with = "force")]
    pub users: Vec<Address>,
}

/// `confab inventory`.
#[derive(Debug, Args)]
pub struct InventoryArgs {
    /// Only the users of this pool
    #[arg(long, value_name = "POOL")]
    pub pool: Option<String>,

    /// csv or json (--json means json)
    #[arg(long, value_name = "FORMAT", value_parser = ["csv", "json"], default_value = "csv")]
    pub format: String,

    /// Write it to FILE instead of standard output
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// `confab migrate …`
#[derive(Debug, Subcommand)]
pub enum MigrateCommand {
    /// Import a legacy system's users onto its legacy pool, credentials preserved
    ///
    /// `confab migrate import kamailio --db sqlite:///var/lib/kamailio/kamailio.db --pool
    /// kamailio` reads Kamailio's subscriber table (SQLite or PostgreSQL) and creates each
    /// subscriber as a user homed on the legacy pool, with HA1 values from its password (or
    /// its MD5 ha1 when the password is not kept). Running it again imports what is new and
    /// updates changed passwords of users still on the legacy pool; a user homed on another
    /// pool, a domain the deployment does not serve, or an ha1 for another realm is reported,
    /// not overwritten.
    Import(MigrateImportArgs),

    /// Merge the topologies: request a publication of the topology with the legacy system
    /// added as a pool of kind legacy, reached at its next hop (a normal change)
    Merge(MigrateMergeArgs),

    /// Plan a phased migration of a legacy pool: its database, the pilot and production
    /// pools, and two of its subscribers the checks sign in as
    ///
    /// The pilot account moves to the pilot pool first; the legacy account stays on the
    /// legacy system until everyone else has left, so that every stage can be checked with
    /// messages in both directions. Their passwords are read from standard input (two lines:
    /// the legacy account's, then the pilot account's) with --passwords-stdin, or from
    /// CONFAB_LEGACY_ACCOUNT_PASSWORD and CONFAB_PILOT_ACCOUNT_PASSWORD, and kept in
    /// test-users/migration-POOL.toml in the data directory (readable by its owner only).
    Plan(MigratePlanArgs),

    /// Give this machine the passwords of a planned migration's two accounts
    Accounts(MigrateAccountsArgs),

    /// The phases of the migration: what is done, with the evidence of its checks
    Status(MigrateSelectArgs),

    /// Run the checks of the current phase (real SIP, real databases) and show them
    Verify(MigrateSelectArgs),

    /// Run the checks of the current phase and, when all pass, move to the next phase
    ///
    /// Refused (exit 1, the refusal recorded) while a check fails. In the decommission phase,
    /// once the legacy pool is empty, it requests the topology without the legacy pool (a
    /// normal change); approve and implement it, then advance again.
    Advance(MigrateSelectArgs),

    /// Send the users a move took off the legacy pool back to it, and reopen the phase that
    /// moved them
    ///
    /// A normal change linked to the move (approved by another administrator, then
    /// `confab change implement`), or at once with --emergency. Kamailio's confab_moved table
    /// follows as the users move back.
    Rollback(MigrateRollbackArgs),

    /// Rewrite Kamailio's confab_moved table from Confab's homes (after either side's
    /// database was restored from a backup, or when a move could not tell Kamailio)
    Sync(MigrateSyncArgs),

    /// Print the routing block Kamailio includes during coexistence
    ///
    /// It relays to Confab the REGISTER of a user homed on Confab (removing its bindings at
    /// Kamailio) and the requests for such users or for users Kamailio does not have, and
    /// accepts what Confab sends without challenging it again. Which users are homed on
    /// Confab it reads from the confab_moved table, which Confab keeps up to date.
    LegacyConfig(MigrateLegacyConfigArgs),
}

/// Which migration: `--pool LEGACY` (default: the only one).
#[derive(Debug, Args)]
pub struct MigrateSelectArgs {
    /// The legacy pool being migrated [default: the only migration]
    #[arg(long, value_name = "POOL")]
    pub pool: Option<String>,
}

/// `confab migrate plan`.
#[derive(Debug, Args)]
pub struct MigratePlanArgs {
    /// The legacy system: kamailio
    #[arg(value_name = "SYSTEM", value_parser = ["kamailio"])]
    pub system: String,

    /// Its database: sqlite://PATH (or a path) or postgres://USER:PASSWORD@HOST/DB
    #[arg(
        long,
        value_name = "URL",
        env = "CONFAB_LEGACY_DB",
        hide_env_values = true
    )]
    pub db: String,

    /// The legacy pool (kind = "legacy" in the topology, or the name `migrate merge` will
    /// give it)
    #[arg(long, value_name = "POOL")]
    pub pool: String,

    /// The Confab pool the pilot users move to
    #[arg(long, value_name = "POOL")]
    pub pilot_pool: String,

    /// A Confab pool the other users move to (repeat for several)
    #[arg(long = "production-pool", value_name = "POOL")]
    pub production_pools: Vec<String>,

    /// The subscriber that stays on the legacy system until the end
    #[arg(long, value_name = "USER@DOMAIN")]
    pub legacy_account: String,

    /// The subscriber moved to the pilot pool first
    #[arg(long, value_name = "USER@DOMAIN")]
    pub pilot_account: String,

    /// Read the two accounts' passwords from standard input: the legacy account's line, then
    /// the pilot account's
    #[arg(long)]
    pub passwords_stdin: bool,
}

/// `confab migrate accounts`.
#[derive(Debug, Args)]
pub struct MigrateAccountsArgs {
    /// The legacy pool being migrated [default: the only migration]
    #[arg(long, value_name = "POOL")]
    pub pool: Option<String>,

    /// Read the two accounts' passwords from standard input (legacy account, then pilot)
    #[arg(long)]
    pub passwords_stdin: bool,
}

/// `confab migrate rollback`.
#[derive(Debug, Args)]
pub struct MigrateRollbackArgs {
    /// The legacy pool being migrated [default: the only migration]
    #[arg(long, value_name = "POOL")]
    pub pool: Option<String>,

    /// The move (its change number) whose users go back to the legacy pool
    #[arg(long, value_name = "ID")]
    pub change: i64,

    /// Why
    #[arg(long, value_name = "TEXT")]
    pub reason: String,

    /// At once, as an emergency change (emergency role; snapshot first, review after)
    #[arg(long)]
    pub emergency: bool,
}

/// `confab migrate sync`.
#[derive(Debug, Args)]
pub struct MigrateSyncArgs {
    /// The legacy system: kamailio
    #[arg(value_name = "SYSTEM", value_parser = ["kamailio"])]
    pub system: String,

    /// The legacy pool being migrated [default: the only migration]
    #[arg(long, value_name = "POOL")]
    pub pool: Option<String>,
}

/// `confab migrate legacy-config`.
#[derive(Debug, Args)]
pub struct MigrateLegacyConfigArgs {
    /// The legacy system: kamailio
    #[arg(value_name = "SYSTEM", value_parser = ["kamailio"])]
    pub system: String,

    /// The legacy pool being migrated [default: the only migration]
    #[arg(long, value_name = "POOL")]
    pub pool: Option<String>,

    /// Kamailio's database as Kamailio reaches it [default: the migration plan's]
    #[arg(long, value_name = "URL")]
    pub db: Option<String>,

    /// A Confab front-end Kamailio relays to, udp|tcp|tls://IP:PORT, in the order tried
    /// (repeat) [default: the servers of the topology's front-end pools]
    #[arg(long = "confab", value_name = "URI")]
    pub confab: Vec<String>,

    /// Write the block to this file instead of standard output
    #[arg(long, value_name = "FILE")]
    pub out: Option<std::path::PathBuf>,
}

/// `confab test …`
#[derive(Debug, Subcommand)]
pub enum TestCommand {
    /// Create (or renew the passwords of) the pool's test users
    Setup(TestSetupArgs),
    /// Sign a test user in and out
    Registration(TestArgs),
    /// Send an instant message from one test user to the other and see it arrive
    Im(TestArgs),
    /// Publish one test user's presence and see the other watch it
    Presence(TestArgs),
}

/// `confab test setup`.
#[derive(Debug, Args)]
pub struct TestSetupArgs {
    /// The pool
    #[arg(long, value_name = "POOL")]
    pub pool: String,

    /// Their SIP domain [default: the deployment's first]
    #[arg(long, value_name = "DOMAIN")]
    pub domain: Option<String>,
}

/// `confab test registration|im|presence`.
#[derive(Debug, Args)]
pub struct TestArgs {
    /// The pool exercised
    #[arg(long, value_name = "POOL")]
    pub pool: String,

    /// Sign in as this user instead of the first test user (its password from
    /// CONFAB_TEST_PASSWORD or --password-stdin)
    #[arg(long, value_name = "USER@DOMAIN")]
    pub user: Option<String>,

    /// Read that user's password from standard input (one line)
    #[arg(long, requires = "user")]
    pub password_stdin: bool,

    /// The front-end to use: udp://IP:PORT [default: the pool's first UDP server]
    #[arg(long, value_name = "URI")]
    pub server: Option<String>,
}

/// `confab migrate merge`.
#[derive(Debug, Args)]
pub struct MigrateMergeArgs {
    /// The legacy system: kamailio
    #[arg(value_name = "SYSTEM", value_parser = ["kamailio"])]
    pub system: String,

    /// The name of its pool in the topology
    #[arg(long, value_name = "POOL")]
    pub pool: String,

    /// Where Confab sends requests for its users: udp://IP:PORT (or tcp://, tls://)
    #[arg(long, value_name = "URI")]
    pub next_hop: String,

    /// The site it belongs to, if the topology has sites
    #[arg(long, value_name = "SITE")]
    pub site: Option<String>,

    /// Why, for the change record
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
}

/// `confab migrate import`.
#[derive(Debug, Args)]
pub struct MigrateImportArgs {
    /// The legacy system: kamailio
    #[arg(value_name = "SYSTEM", value_parser = ["kamailio"])]
    pub system: String,

    /// Its database: sqlite://PATH (or a path) or postgres://USER:PASSWORD@HOST/DB
    #[arg(
        long,
        value_name = "URL",
        env = "CONFAB_LEGACY_DB",
        hide_env_values = true
    )]
    pub db: String,

    /// The legacy pool the users are homed on (kind = "legacy" in the topology)
    #[arg(long, value_name = "POOL")]
    pub pool: String,

    /// Kamailio's realm, when it is not each user's domain
    #[arg(long, value_name = "REALM")]
    pub realm: Option<String>,

    /// Report what would be imported, and import nothing
    #[arg(long)]
    pub dry_run: bool,
}

/// `confab status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print the figures in the Prometheus text format instead (for node_exporter's
    /// textfile collector, until the admin API serves /metrics)
    #[arg(long, conflicts_with = "json")]
    pub prometheus: bool,
}

/// `confab change request`.
#[derive(Debug, Args)]
pub struct ChangeRequestArgs {
    /// Why the change is needed
    #[arg(long, value_name = "TEXT")]
    pub reason: String,

    /// What it affects, for the approver
    #[arg(long, value_name = "TEXT")]
    pub impact: Option<String>,

    /// The operation, after `--` (see `confab change emergency --help`)
    #[arg(last = true, required = true, value_name = "OPERATION")]
    pub operation: Vec<String>,
}

/// `confab change rollback`.
#[derive(Debug, Args)]
pub struct ChangeRollbackArgs {
    /// The change to roll back, or `last`: the newest change made and not rolled back yet
    #[arg(value_name = "ID|last", value_parser = change_ref)]
    pub id: ChangeRef,

    /// Why
    #[arg(long, value_name = "TEXT")]
    pub reason: String,

    /// Roll back at once as an emergency change (emergency role; snapshot first, review after)
    #[arg(long)]
    pub emergency: bool,
}

/// `confab change emergency`.
#[derive(Debug, Args)]
pub struct ChangeEmergencyArgs {
    /// Why it cannot wait: the attack, the outage
    #[arg(long, value_name = "TEXT")]
    pub reason: String,

    /// The operation, after `--`: user disable|enable USER@DOMAIN, source block|unblock CIDR,
    /// pool maintenance on|off POOL, topology publish FILE, admin roles NAME ROLE[,ROLE…],
    /// admin disable|enable NAME
    #[arg(last = true, required = true, value_name = "OPERATION")]
    pub operation: Vec<String>,
}

/// A change named on the command line: its number, or the newest one made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeRef {
    /// This change.
    Id(i64),
    /// The newest change implemented (or reviewed) and not rolled back.
    Last,
}

fn change_ref(text: &str) -> Result<ChangeRef, String> {
    if text == "last" {
        return Ok(ChangeRef::Last);
    }
    text.parse()
        .map(ChangeRef::Id)
        .map_err(|_| "give a change number (see `confab change list`) or `last`".to_owned())
}

/// `confab change approve|reject`.
#[derive(Debug, Args)]
pub struct ChangeDecisionArgs {
    /// The change's number
    #[arg(value_name = "ID")]
    pub id: i64,

    /// Why, kept with the decision
    #[arg(long, value_name = "TEXT")]
    pub comment: Option<String>,
}

/// `confab change review`.
#[derive(Debug, Args)]
pub struct ChangeReviewArgs {
    /// The change's number
    #[arg(value_name = "ID")]
    pub id: i64,

    /// What the review found
    #[arg(long, value_name = "TEXT")]
    pub comment: String,
}

/// `confab change list`.
#[derive(Debug, Args)]
pub struct ChangeListArgs {
    /// Only changes in this state: requested, approved, implemented, reviewed, rejected,
    /// rolled-back
    #[arg(long, value_name = "STATE", value_parser = change_state)]
    pub state: Option<confab_store::ChangeState>,

    /// Only changes of this class: standard, normal, emergency
    #[arg(long, value_name = "CLASS", value_parser = change_class)]
    pub class: Option<confab_store::ChangeClass>,
}

/// `confab change show`.
#[derive(Debug, Args)]
pub struct ChangeShowArgs {
    /// The change's number
    #[arg(value_name = "ID")]
    pub id: i64,
}

/// `confab audit …`
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// List audit entries in order
    List(AuditListArgs),

    /// Check the whole chain: every entry's hash, and each linked to the one before
    Verify,
}

/// `confab audit list`.
#[derive(Debug, Args)]
pub struct AuditListArgs {
    /// Entries after this sequence number
    #[arg(long, value_name = "SEQ", default_value_t = 0)]
    pub after: i64,

    /// At most this many entries
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub limit: usize,
}

/// `confab admin …`
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// List the administrators with their roles
    List,

    /// Add an administrator; its token is printed once (admin role)
    Add(AdminAddArgs),

    /// Request new roles for an administrator (a normal change: another administrator with
    /// the approver role approves it, then `confab change implement N`)
    Roles(AdminAddArgs),

    /// Request that an administrator be disabled (a normal change)
    Disable(AdminNameArgs),

    /// Request that an administrator be enabled again (a normal change)
    Enable(AdminNameArgs),
}

/// `confab admin disable|enable`.
#[derive(Debug, Args)]
pub struct AdminNameArgs {
    /// The administrator's name
    #[arg(value_name = "NAME")]
    pub name: String,
}

/// `confab admin add`.
#[derive(Debug, Args)]
pub struct AdminAddArgs {
    /// Its name: letters, digits, '.', '-', '_'
    #[arg(value_name = "NAME")]
    pub name: String,

    /// Its roles, comma-separated: viewer, user-admin, admin, approver, emergency
    #[arg(long, value_name = "ROLES", value_delimiter = ',', required = true,
          value_parser = role)]
    pub roles: Vec<confab_store::Role>,
}

fn role(text: &str) -> Result<confab_store::Role, String> {
    text.parse()
        .map_err(|e: confab_store::StoreError| e.to_string())
}

fn change_state(text: &str) -> Result<confab_store::ChangeState, String> {
    text.parse()
        .map_err(|e: confab_store::StoreError| e.to_string())
}

fn change_class(text: &str) -> Result<confab_store::ChangeClass, String> {
    text.parse()
        .map_err(|e: confab_store::StoreError| e.to_string())
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

    /// Credentials file of the administrator the command acts as (name = "…", token = "…");
    /// default: CONFAB_ADMIN and CONFAB_ADMIN_TOKEN, else admin.credentials in the data
    /// directory
    #[arg(long, value_name = "FILE", env = "CONFAB_CREDENTIALS", global = true)]
    pub credentials: Option<PathBuf>,
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

    /// Address of the admin HTTP API, web console and metrics (port 0: a free one)
    /// [default: 127.0.0.1:8480]
    #[arg(long, value_name = "ADDR", env = "CONFAB_ADMIN_LISTEN")]
    pub admin_listen: Option<String>,

    /// Serve the admin listener over HTTPS with the TLS certificate and key of tls_cert and
    /// tls_key [default: false]
    #[arg(
        long,
        value_name = "BOOL",
        env = "CONFAB_ADMIN_TLS",
        num_args = 0..=1,
        default_missing_value = "true"
    )]
    pub admin_tls: Option<String>,

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

    /// Take a backup this often, verify it, and keep the newest --backup-keep, e.g. 1h,
    /// 24h; off when not set [default: off]
    #[arg(long, value_name = "DURATION", env = "CONFAB_BACKUP_INTERVAL")]
    pub backup_interval: Option<String>,

    /// Where scheduled backups go [default: backups/ in the data directory]
    #[arg(long, value_name = "DIR", env = "CONFAB_BACKUP_DIR")]
    pub backup_dir: Option<PathBuf>,

    /// Scheduled backups kept; older ones are deleted [default: 7]
    #[arg(long, value_name = "N", env = "CONFAB_BACKUP_KEEP")]
    pub backup_keep: Option<String>,

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
    /// 503 with Retry-After [default: 800000]
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

    /// Digest algorithms offered in challenges, most preferred first [default: SHA-256,MD5]
    ///
    /// Any of MD5, SHA-256, SHA-512-256, comma-separated. Clients that read only the first
    /// challenge and know only MD5 (Debian's sipsak, sipvicious) need MD5 listed first.
    #[arg(long, value_name = "LIST", env = "CONFAB_DIGEST_ALGORITHMS")]
    pub digest_algorithms: Option<String>,

    /// What a presence watcher with no rule, not on the user's contact list, gets [default: pending]
    ///
    /// `pending`: the subscription waits, and the user sees the watcher in its watcher
    /// information (presence.winfo) until a rule (`confab presence-rules set`) or a contact
    /// list entry decides; or an access level: blocked, colleagues, workgroup,
    /// friends-and-family.
    #[arg(long, value_name = "LEVEL", env = "CONFAB_PRESENCE_UNKNOWN_WATCHERS")]
    pub presence_unknown_watchers: Option<String>,

    /// The SIP domain a first start creates, when the store has none yet [default: localhost]
    ///
    /// Users are USER@DOMAIN in one of the deployment's domains, and a domain is also the
    /// digest realm of its users' passwords. Later domains are added with `confab domain add`.
    #[arg(long, value_name = "NAME", env = "CONFAB_DOMAIN")]
    pub domain: Option<String>,

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

/// A user's address, checked when the command line is parsed (a bad one is a usage error).
fn address(text: &str) -> Result<Address, String> {
    Address::parse(text).map_err(|e| e.to_string())
}

/// `confab user …`
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user, homed on a pool, with a password
    ///
    /// The password is read from the terminal (twice, without echo) or, with
    /// --password-stdin, from standard input; it is never taken from the command line, where
    /// other users of the machine could see it. The store keeps only digest HA1 values (MD5,
    /// SHA-256, SHA-512-256) with the user's domain as the realm.
    Add(UserAddArgs),

    /// Add many users at once from a CSV file (bulk provisioning)
    ///
    /// The file starts with a header row naming its columns, `address,password` and
    /// optionally `display_name`, then one user a row, e.g.
    ///
    ///   address,password,display_name
    ///   alice@example.com,correct horse battery,Alice Liddell
    ///   bob@example.com,"a password, with a comma",
    ///
    /// Fields holding a comma or a quote are quoted ("..."), a quote inside doubled (""). The
    /// domains must exist; every user is homed on --pool. All or nothing: every row is checked
    /// first and every bad row reported with its line and the fix, changing nothing; a user
    /// that exists already or an address given twice is such a row (--skip-existing leaves
    /// existing users as they are instead). Then the users are stored in batches, each with
    /// one digest HA1 per algorithm as `user add` stores them, never the password.
    ///
    /// The file holds passwords in plain text: create it readable by its owner only, and
    /// delete it (or keep it where only administrators can read it) once imported. FILE -
    /// reads standard input, e.g. from a password manager's export piped in.
    Import(UserImportArgs),

    /// List users, as a table or with --json as an array
    List(UserListArgs),

    /// Show a user: pool, state, which credentials it has (never their values), registrations
    Show(UserArg),

    /// Set a user's password, replacing all of its credentials
    Passwd(UserPasswdArgs),

    /// Disable a user: it keeps its data but can no longer sign in
    Disable(UserArg),

    /// Enable a disabled user
    Enable(UserArg),

    /// Remove a user with its credentials, registrations and offline messages
    Remove(UserRemoveArgs),

    /// Move users to another pool, with all their data
    ///
    /// Names users (USER@DOMAIN …) or every user of a pool (--from POOL, narrowed by
    /// --domain). Each user's home pool changes in place, a batch at a time (one store
    /// transaction each), so a crash or kill at any moment leaves every user homed on
    /// exactly one pool; running the same command again completes the move. The old pool
    /// signs moved users out and ends their watchers' subscriptions (reason=deactivated):
    /// clients sign in and subscribe again, at the new pool. Contacts, presence rules and
    /// queued offline messages move with the user. --dry-run lists who would move.
    Move(UserMoveArgs),
}

/// The user a command is about.
#[derive(Debug, Args)]
pub struct UserArg {
    /// The user's address, e.g. alice@example.com
    #[arg(value_name = "USER@DOMAIN", value_parser = address)]
    pub address: Address,
}

/// `confab user add`.
#[derive(Debug, Args)]
pub struct UserAddArgs {
    /// The new user's address; the domain must be one of the deployment's
    #[arg(value_name = "USER@DOMAIN", value_parser = address)]
    pub address: Address,

    /// The pool the user is homed on [default: default]
    #[arg(long, value_name = "POOL")]
    pub pool: Option<String>,

    /// The name shown to others, e.g. "Alice Liddell"
    #[arg(long, value_name = "NAME")]
    pub display_name: Option<String>,

    /// Read the password from standard input (one line) instead of prompting
    #[arg(long)]
    pub password_stdin: bool,
}

/// `confab user import`.
#[derive(Debug, Args)]
pub struct UserImportArgs {
    /// The CSV file, or - for standard input
    #[arg(value_name = "FILE")]
    pub file: PathBuf,

    /// The pool every imported user is homed on [default: default]
    #[arg(long, value_name = "POOL")]
    pub pool: Option<String>,

    /// Leave users that exist already as they are (password included) instead of refusing
    /// the import
    #[arg(long)]
    pub skip_existing: bool,
}

/// `confab user list`.
#[derive(Debug, Args)]
pub struct UserListArgs {
    /// Only users homed on this pool
    #[arg(long, value_name = "POOL")]
    pub pool: Option<String>,

    /// Only users of this SIP domain
    #[arg(long, value_name = "DOMAIN")]
    pub domain: Option<String>,
}

/// `confab user passwd`.
#[derive(Debug, Args)]
pub struct UserPasswdArgs {
    /// The user's address
    #[arg(value_name = "USER@DOMAIN", value_parser = address)]
    pub address: Address,

    /// Read the new password from standard input (one line) instead of prompting
    #[arg(long)]
    pub password_stdin: bool,
}

/// `confab user move`.
#[derive(Debug, Args)]
pub struct UserMoveArgs {
    /// The users to move; none with --from moves every user of that pool
    #[arg(value_name = "USER@DOMAIN", value_parser = address)]
    pub users: Vec<Address>,

    /// The pool they move to
    #[arg(long, value_name = "POOL")]
    pub to: String,

    /// Only users homed on this pool (every user of it when no user is named)
    #[arg(long, value_name = "POOL")]
    pub from: Option<String>,

    /// Only users of this SIP domain
    #[arg(long, value_name = "DOMAIN")]
    pub domain: Option<String>,

    /// Only users whose address matches PATTERN: * any characters, ? one, case-insensitive
    /// (quote it for the shell: --filter 'sales-*@example.com')
    #[arg(long, value_name = "PATTERN")]
    pub filter: Option<String>,

    /// Why, for the change record (a move of more than 100 users is requested as a normal
    /// change, which another administrator approves before `confab change implement`)
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,

    /// List who would move, and move nobody
    #[arg(long)]
    pub dry_run: bool,

    /// Users moved per store transaction
    #[arg(long, value_name = "N", default_value_t = confab_ops::moves::DEFAULT_BATCH,
          value_parser = clap::value_parser!(usize))]
    pub batch: usize,
}

/// `confab user remove`.
#[derive(Debug, Args)]
pub struct UserRemoveArgs {
    /// The user's address
    #[arg(value_name = "USER@DOMAIN", value_parser = address)]
    pub address: Address,

    /// Remove without asking; required when standard input is not a terminal
    #[arg(long, short = 'y')]
    pub yes: bool,
}

/// A watcher, checked when the command line is parsed.
fn watcher(text: &str) -> Result<Watcher, String> {
    Watcher::parse(text).map_err(|e| e.to_string())
}

/// A presence level, checked when the command line is parsed.
fn level(text: &str) -> Result<PresenceLevel, String> {
    text.parse()
        .map_err(|e: confab_store::StoreError| e.to_string())
}

/// `confab contacts …`
#[derive(Debug, Subcommand)]
pub enum ContactsCommand {
    /// List a user's contact groups and contacts, as a table or with --json
    List(UserArg),

    /// Add a contact to a user's list
    ///
    /// The group must exist (`confab contacts group add`). A contact the list holds already
    /// is refused, unless --update, which gives it the name and group given (none when left
    /// out).
    Add(ContactAddArgs),

    /// Remove a contact from a user's list
    Remove(ContactArgs),

    /// A user's contact groups: add, rename, remove
    #[command(subcommand)]
    Group(ContactGroupCommand),
}

/// A user and one of their contacts.
#[derive(Debug, Args)]
pub struct ContactArgs {
    /// Whose list, e.g. alice@example.com
    #[arg(value_name = "USER@DOMAIN", value_parser = address)]
    pub user: Address,

    /// The contact's SIP address, e.g. bob@example.com or carol@partner.example
    #[arg(value_name = "CONTACT", value_parser = address)]
    pub contact: Address,
}

/// `confab contacts add`.
#[derive(Debug, Args)]
pub struct ContactAddArgs {
    #[command(flatten)]
    pub target: ContactArgs,

    /// The name shown for the contact, e.g. "Bob Builder"
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,

    /// One of the user's contact groups to show it in
    #[arg(long, value_name = "GROUP")]
    pub group: Option<String>,

    /// Change the contact's name and group if the list holds it already
    #[arg(long)]
    pub update: bool,
}

/// `confab contacts group …`
#[derive(Debug, Subcommand)]
pub enum ContactGroupCommand {
    /// Add a group at the end of the user's list
    Add(ContactGroupArgs),

    /// Rename a group; its contacts and place stay
    Rename(ContactGroupRenameArgs),

    /// Remove a group; one that holds contacts needs --move-to-no-group
    Remove(ContactGroupRemoveArgs),
}

/// A user and one of their contact groups.
#[derive(Debug, Args)]
pub struct ContactGroupArgs {
    /// Whose list
    #[arg(value_name = "USER@DOMAIN", value_parser = address)]
    pub user: Address,

    /// The group's name: 1 to 64 printable characters
    #[arg(value_name = "GROUP")]
    pub group: String,
}

/// `confab contacts group rename`.
#[derive(Debug, Args)]
pub struct ContactGroupRenameArgs {
    #[command(flatten)]
    pub target: ContactGroupArgs,

    /// The new name
    #[arg(value_name = "NEW")]
    pub new: String,
}

/// `confab contacts group remove`.
#[derive(Debug, Args)]
pub struct ContactGroupRemoveArgs {
    #[command(flatten)]
    pub target: ContactGroupArgs,

    /// Keep the group's contacts in the list, in no group
    #[arg(long)]
    pub move_to_no_group: bool,
}

/// `confab presence-rules …`
#[derive(Debug, Subcommand)]
pub enum PresenceRulesCommand {
    /// List a user's presence rules, as a table or with --json
    List(UserArg),

    /// Set what WATCHER may see of the user, replacing the watcher's rule
    Set(PresenceRuleSetArgs),

    /// Remove the user's rule for WATCHER
    Remove(PresenceRuleArgs),
}

/// A user and a watcher.
#[derive(Debug, Args)]
pub struct PresenceRuleArgs {
    /// Whose presence
    #[arg(value_name = "USER@DOMAIN", value_parser = address)]
    pub user: Address,

    /// USER@DOMAIN for one watcher, @DOMAIN for every user of a domain
    #[arg(value_name = "WATCHER", value_parser = watcher)]
    pub watcher: Watcher,
}

/// `confab presence-rules set`.
#[derive(Debug, Args)]
pub struct PresenceRuleSetArgs {
    #[command(flatten)]
    pub target: PresenceRuleArgs,

    /// blocked, colleagues, workgroup or friends-and-family
    #[arg(value_name = "LEVEL", value_parser = level)]
    pub level: PresenceLevel,
}

/// `confab domain …`
#[derive(Debug, Subcommand)]
pub enum DomainCommand {
    /// Add a SIP domain for users to be added in
    Add(DomainAddArgs),

    /// List the SIP domains
    List,
}

/// `confab domain add`.
#[derive(Debug, Args)]
pub struct DomainAddArgs {
    /// The domain, e.g. example.com (kept in lower case)
    #[arg(value_name = "DOMAIN")]
    pub name: String,
}

/// `confab topology …`
#[derive(Debug, Subcommand)]
pub enum TopologyCommand {
    /// Check a topology document: every problem with its line and column, and the fix
    ///
    /// Checked against the deployment too (users homed on a pool or in a domain the document
    /// drops) when its store exists; without --data-dir or --store and no ./confab-data, the
    /// document alone is checked.
    Validate(TopologyFileArgs),

    /// Validate a document against the deployment and request its publication (a normal
    /// change)
    ///
    /// Another administrator with the approver role approves it (`confab change approve N`),
    /// then `confab change implement N` publishes it: domains, sites and pools become exactly
    /// the document's, in one transaction, and running servers learn of it at once. A
    /// document with any problem is refused, changing nothing.
    Publish(TopologyPublishArgs),

    /// The deployment as it is: domains, sites, pools with their users
    Show,

    /// What publishing FILE would change against the deployment as it is
    Diff(TopologyFileArgs),

    /// The deployment as a topology document that `publish` accepts unchanged
    Export(TopologyExportArgs),
}

/// A topology document.
#[derive(Debug, Args)]
pub struct TopologyFileArgs {
    /// The TOML topology document
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

/// `confab topology publish`.
#[derive(Debug, Args)]
pub struct TopologyPublishArgs {
    #[command(flatten)]
    pub document: TopologyFileArgs,

    /// Why, kept with the version
    #[arg(long, value_name = "TEXT")]
    pub comment: Option<String>,
}

/// `confab topology export`.
#[derive(Debug, Args)]
pub struct TopologyExportArgs {
    /// Write the document to FILE instead of standard output
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// `confab pool …`
#[derive(Debug, Subcommand)]
pub enum PoolCommand {
    /// List the pools: kind, site, servers or next hop, users homed, registrations
    List,

    /// Show one pool
    Show(PoolShowArgs),
}

/// `confab pool show`.
#[derive(Debug, Args)]
pub struct PoolShowArgs {
    /// The pool's name
    #[arg(value_name = "NAME")]
    pub name: String,
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
    fn user_commands_parse() {
        let cli = Cli::try_parse_from([
            "confab",
            "user",
            "add",
            "alice@Example.COM",
            "--pool",
            "pool-a",
            "--display-name",
            "Alice Liddell",
            "--password-stdin",
            "--data-dir",
            "/srv/confab",
        ])
        .expect("valid command line");
        let Command::User(UserCommand::Add(add)) = cli.command else {
            panic!("user add expected");
        };
        assert_eq!(add.address.to_string(), "alice@example.com");
        assert_eq!(add.pool.as_deref(), Some("pool-a"));
        assert!(add.password_stdin);
        assert_eq!(cli.deployment.data_dir, Some(PathBuf::from("/srv/confab")));

        let cli = Cli::try_parse_from([
            "confab",
            "user",
            "import",
            "-",
            "--pool",
            "pool-a",
            "--skip-existing",
        ])
        .expect("valid command line");
        let Command::User(UserCommand::Import(import)) = cli.command else {
            panic!("user import expected");
        };
        assert_eq!(import.file, PathBuf::from("-"));
        assert_eq!(import.pool.as_deref(), Some("pool-a"));
        assert!(import.skip_existing);

        let cli = Cli::try_parse_from(["confab", "user", "remove", "bob@example.com", "-y"])
            .expect("valid command line");
        assert!(matches!(cli.command, Command::User(UserCommand::Remove(ref r)) if r.yes));

        for bad in [
            &["confab", "user", "add", "alice"][..],
            &["confab", "user", "add", "alice@example.com", "a password"][..],
            &[
                "confab",
                "user",
                "add",
                "alice@example.com",
                "--password",
                "x",
            ][..],
            &["confab", "domain", "add"][..],
        ] {
            assert!(Cli::try_parse_from(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn contacts_and_presence_rules_parse() {
        let cli = Cli::try_parse_from([
            "confab",
            "contacts",
            "add",
            "alice@example.com",
            "bob@Partner.Example",
            "--name",
            "Bob",
            "--group",
            "Team",
            "--update",
        ])
        .expect("valid command line");
        let Command::Contacts(ContactsCommand::Add(add)) = cli.command else {
            panic!("contacts add expected");
        };
        assert_eq!(add.target.contact.to_string(), "bob@partner.example");
        assert_eq!(add.group.as_deref(), Some("Team"));
        assert!(add.update);

        let cli = Cli::try_parse_from([
            "confab",
            "contacts",
            "group",
            "rename",
            "alice@example.com",
            "Team",
            "Work",
        ])
        .expect("valid command line");
        assert!(matches!(
            cli.command,
            Command::Contacts(ContactsCommand::Group(ContactGroupCommand::Rename(ref r)))
                if r.target.group == "Team" && r.new == "Work"
        ));

        let cli = Cli::try_parse_from([
            "confab",
            "presence-rules",
            "set",
            "alice@example.com",
            "@Partner.Example",
            "Blocked",
        ])
        .expect("valid command line");
        let Command::PresenceRules(PresenceRulesCommand::Set(set)) = cli.command else {
            panic!("presence-rules set expected");
        };
        assert_eq!(set.target.watcher.to_string(), "@partner.example");
        assert_eq!(set.level, PresenceLevel::Blocked);

        for bad in [
            &["confab", "contacts", "add", "alice@example.com", "bob"][..],
            &[
                "confab",
                "presence-rules",
                "set",
                "alice@example.com",
                "bob",
                "blocked",
            ][..],
            &[
                "confab",
                "presence-rules",
                "set",
                "alice@example.com",
                "@example.com",
                "public",
            ][..],
        ] {
            assert!(Cli::try_parse_from(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn unknown_flag_is_an_error() {
        let err = Cli::try_parse_from(["confab", "serve", "--no-such-flag"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::UnknownArgument);
    }
}
