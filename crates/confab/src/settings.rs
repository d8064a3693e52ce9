//! The settings of `confab serve`: each one from, in order of precedence, its command-line
//! option, its environment variable `CONFAB_<OPTION>` (both read by clap), its key in the
//! TOML file given by `--config`, or its default. Every value is interpreted here, once,
//! and a bad one is reported with where it came from and how to write it instead.
//!
//! Relative paths in the config file are relative to the file's directory (a service
//! manager's working directory is rarely the operator's); relative paths on the command
//! line and in the environment are relative to the working directory.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use confab_server::presence::policy::WatcherDefault;
use confab_server::transactions::{TimerConfig, TimerError};
use confab_server::{ConfigError, Limits, ListenUri, ServerConfig, TlsFiles};
use serde::Deserialize;

use crate::cli::{DeploymentArgs, ServeArgs};

mod values;

pub use values::parse_duration;
use values::{
    check_domain, check_log_level, check_pool, check_store, parse_bool, parse_count,
    parse_socket_addr,
};

/// Default data directory.
pub const DEFAULT_DATA_DIR: &str = "./confab-data";
/// Default SIP listeners.
pub const DEFAULT_LISTEN: [&str; 2] = ["udp://127.0.0.1:5060", "tcp://127.0.0.1:5060"];
/// Default admin API address.
pub const DEFAULT_ADMIN_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 8480);
/// Parses `SHA-256,MD5`: one or more of the algorithms the store keeps an HA1 for.
fn parse_algorithms(text: &str) -> Result<Vec<confab_server::DigestAlgorithm>, String> {
    use confab_server::DigestAlgorithm as A;
    let mut out = Vec::new();
    for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        match A::parse(name) {
            Some(a @ (A::Md5 | A::Sha256 | A::Sha512_256)) if !out.contains(&a) => out.push(a),
            Some(a @ (A::Md5 | A::Sha256 | A::Sha512_256)) => {
                return Err(format!("{} is listed twice", a.as_str()))
            }
            _ => {
                return Err(format!(
                    "unknown algorithm {name:?}: list MD5, SHA-256 and/or SHA-512-256, most \
                     preferred first, e.g. SHA-256,MD5"
                ))
            }
        }
    }
    if out.is_empty() {
        return Err("list at least one of MD5, SHA-256, SHA-512-256".into());
    }
    Ok(out)
}

/// The SIP domain a first start creates by default.
pub const DEFAULT_DOMAIN: &str = "localhost";
/// Default log filter.
pub const DEFAULT_LOG_LEVEL: &str = "info";

/// Where a setting's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A command-line option.
    Flag(&'static str),
    /// An environment variable.
    Env(&'static str),
    /// A key of the config file.
    File(PathBuf, &'static str),
    /// Nobody set it.
    Default,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Flag(key) => write!(f, "--{}", key.replace('_', "-")),
            Origin::Env(key) => write!(f, "CONFAB_{}", key.to_ascii_uppercase()),
            Origin::File(path, key) => write!(f, "{key} in {}", path.display()),
            Origin::Default => f.write_str("the default"),
        }
    }
}

/// A setting that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The config file cannot be read.
    #[error("cannot read config file {}: {source}; check the path given by --config or CONFAB_CONFIG", path.display())]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The config file is not valid TOML or has unknown keys.
    #[error("config file {}: {message}", path.display())]
    ParseFile {
        /// The file.
        path: PathBuf,
        /// The TOML parser's message, with line and column.
        message: String,
    },
    /// A value that does not parse.
    #[error("invalid {key} '{value}' (from {origin}): {fix}")]
    Invalid {
        /// The setting.
        key: &'static str,
        /// The value given.
        value: String,
        /// Where it came from.
        origin: Origin,
        /// How to write it instead.
        fix: String,
    },
    /// Only one of tls_cert and tls_key.
    #[error("{given} is set ({origin}) but {missing} is not; give both, or neither")]
    TlsHalf {
        /// The one given.
        given: &'static str,
        /// Where it came from.
        origin: Origin,
        /// The one missing.
        missing: &'static str,
    },
    /// The server refused the configuration.
    #[error("{error}{}", origin.as_ref().map(|o| format!(" (from {o})")).unwrap_or_default())]
    Server {
        /// The server's reason.
        error: ConfigError,
        /// Where the offending setting came from, when one setting is to blame.
        origin: Option<Origin>,
    },
}

/// A TOML scalar, taken as text so that file values go through the same parsers as
/// options and environment variables (`max_connections = 100` and `= "100"` both work).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Scalar {
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
}

impl Scalar {
    fn text(&self) -> String {
        match self {
            Scalar::Bool(b) => b.to_string(),
            Scalar::Int(i) => i.to_string(),
            Scalar::Float(f) => f.to_string(),
            Scalar::Text(s) => s.clone(),
        }
    }
}

/// The config file: the same keys as the options, with `_` for `-`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    data_dir: Option<PathBuf>,
    store: Option<String>,
    pool: Option<String>,
    domain: Option<String>,
    digest_algorithms: Option<Scalar>,
    presence_unknown_watchers: Option<Scalar>,
    listen: Option<Vec<String>>,
    admin_listen: Option<Scalar>,
    admin_tls: Option<Scalar>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    log_level: Option<String>,
    backup_interval: Option<Scalar>,
    backup_dir: Option<PathBuf>,
    backup_keep: Option<Scalar>,
    max_connections: Option<Scalar>,
    max_message_size: Option<Scalar>,
    idle_timeout: Option<Scalar>,
    header_timeout: Option<Scalar>,
    max_transactions: Option<Scalar>,
    t1: Option<Scalar>,
    t2: Option<Scalar>,
    t4: Option<Scalar>,
    force_rport: Option<Scalar>,
}

/// Scheduled backups: how often, where, how many kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupSchedule {
    /// Between two backups.
    pub every: std::time::Duration,
    /// The directory they are written to.
    pub dir: PathBuf,
    /// How many are kept.
    pub keep: usize,
}

/// Default number of scheduled backups kept.
pub const DEFAULT_BACKUP_KEEP: usize = 7;

/// `off`, or a duration of at least a minute… or a second, for tests and small deployments.
fn parse_interval(text: &str) -> Result<Option<std::time::Duration>, String> {
    if matches!(text.trim(), "off" | "") {
        return Ok(None);
    }
    let d = parse_duration(text)?;
    if d < std::time::Duration::from_secs(1) {
        return Err("give at least 1s (or off)".to_owned());
    }
    Ok(Some(d))
}

/// Everything `confab serve` runs with.
#[derive(Debug)]
pub struct ServeSettings {
    /// Scheduled backups, if configured.
    pub backups: Option<BackupSchedule>,
    /// The config file read, if any.
    pub config_file: Option<PathBuf>,
    /// The data directory.
    pub data_dir: PathBuf,
    /// The management store URL, if not the SQLite file in the data directory.
    pub store: Option<String>,
    /// The pool of this front-end.
    pub pool: Option<String>,
    /// The SIP domain a first start creates (lower case).
    pub domain: String,
    /// Digest algorithms offered in challenges, most preferred first.
    pub digest_algorithms: Vec<confab_server::DigestAlgorithm>,
    /// What presence watchers with no rule get.
    pub presence_unknown_watchers: WatcherDefault,
    /// The admin API address.
    pub admin_listen: SocketAddr,
    /// The admin listener speaks HTTPS with the server's TLS files.
    pub admin_tls: bool,
    /// The tracing filter.
    pub log_level: String,
    /// The SIP side.
    pub server: ServerConfig,
    origins: BTreeMap<&'static str, Origin>,
}

impl ServeSettings {
    /// Where `key` came from.
    pub fn origin(&self, key: &str) -> Origin {
        self.origins.get(key).cloned().unwrap_or(Origin::Default)
    }

    /// Attaches the origin of the setting a server configuration error is about.
    pub fn explain(&self, error: ConfigError) -> SettingsError {
        let key = match &error {
            ConfigError::Limit { name, .. } => Some(*name),
            ConfigError::ListenUri { .. }
            | ConfigError::NoListeners
            | ConfigError::DuplicateListener { .. }
            | ConfigError::TlsFilesMissing { .. } => Some("listen"),
            ConfigError::TlsFile { what, .. } | ConfigError::TlsPem { what, .. } => {
                Some(if *what == "key" {
                    "tls_key"
                } else {
                    "tls_cert"
                })
            }
            _ => None,
        };
        SettingsError::Server {
            origin: key.map(|k| self.origin(k)),
            error,
        }
    }
}

/// What the command line and environment gave (through clap), with a way to tell which.
pub struct Given<'a> {
    /// The global options.
    pub deployment: &'a DeploymentArgs,
    /// The options of `serve`.
    pub serve: &'a ServeArgs,
    /// Whether an option's value came from the command line or the environment, by key.
    pub origin: &'a dyn Fn(&'static str) -> Origin,
}

struct Resolver<'a> {
    origin: &'a dyn Fn(&'static str) -> Origin,
    file: Option<(PathBuf, FileSettings)>,
    origins: BTreeMap<&'static str, Origin>,
}

impl Resolver<'_> {
    /// The first of the option (or variable) and the file key, noting where it came from.
    fn pick<T>(
        &mut self,
        key: &'static str,
        given: Option<T>,
        in_file: impl FnOnce(&FileSettings) -> Option<T>,
    ) -> Option<(T, Origin)> {
        let found = match given {
            Some(v) => Some((v, (self.origin)(key))),
            None => self
                .file
                .as_ref()
                .and_then(|(path, f)| in_file(f).map(|v| (v, Origin::File(path.clone(), key)))),
        };
        if let Some((_, origin)) = &found {
            self.origins.insert(key, origin.clone());
        }
        found
    }

    /// A path; one from the file is taken relative to the file's directory.
    fn path(&self, path: PathBuf, origin: &Origin) -> PathBuf {
        match origin {
            Origin::File(file, _) if path.is_relative() => file
                .parent()
                .map_or_else(|| path.clone(), |dir| dir.join(&path)),
            _ => path,
        }
    }

    /// A scalar setting parsed by `parse`, or its default.
    fn value<T>(
        &mut self,
        key: &'static str,
        given: Option<&String>,
        in_file: impl FnOnce(&FileSettings) -> Option<&Scalar>,
        parse: impl FnOnce(&str) -> Result<T, String>,
        default: T,
    ) -> Result<T, SettingsError> {
        let given = given.cloned();
        match self.pick(key, given, |f| in_file(f).map(Scalar::text)) {
            None => Ok(default),
            Some((text, origin)) => parse(text.trim()).map_err(|fix| SettingsError::Invalid {
                key,
                value: text,
                origin,
                fix,
            }),
        }
    }
}

fn load_file(path: &Path) -> Result<FileSettings, SettingsError> {
    let text = std::fs::read_to_string(path).map_err(|source| SettingsError::ReadFile {
        path: path.to_owned(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| SettingsError::ParseFile {
        path: path.to_owned(),
        message: e.to_string().trim_end().to_owned(),
    })
}

/// Merges options, environment, config file and defaults into the settings of a front-end.
pub fn resolve(given: &Given<'_>) -> Result<ServeSettings, SettingsError> {
    let serve = given.serve;
    let file = match &serve.config {
        Some(path) => Some((path.clone(), load_file(path)?)),
        None => None,
    };
    let mut r = Resolver {
        origin: given.origin,
        file,
        origins: BTreeMap::new(),
    };
    if serve.config.is_some() {
        r.origins.insert("config", (given.origin)("config"));
    }

    let data_dir = match r.pick("data_dir", given.deployment.data_dir.clone(), |f| {
        f.data_dir.clone()
    }) {
        Some((p, origin)) => r.path(p, &origin),
        None => PathBuf::from(DEFAULT_DATA_DIR),
    };
    let store = match r.pick("store", given.deployment.store.clone(), |f| f.store.clone()) {
        Some((url, origin)) => Some(check_store(url, origin)?),
        None => None,
    };
    let pool = match r.pick("pool", serve.pool.clone(), |f| f.pool.clone()) {
        Some((name, origin)) => Some(check_pool(name, origin)?),
        None => None,
    };
    let domain = match r.pick("domain", serve.domain.clone(), |f| f.domain.clone()) {
        Some((name, origin)) => check_domain(name, origin)?,
        None => DEFAULT_DOMAIN.to_owned(),
    };
    let digest_algorithms = r.value(
        "digest_algorithms",
        serve.digest_algorithms.as_ref(),
        |f| f.digest_algorithms.as_ref(),
        parse_algorithms,
        confab_server::DEFAULT_DIGEST_ALGORITHMS.to_vec(),
    )?;
    let presence_unknown_watchers = r.value(
        "presence_unknown_watchers",
        serve.presence_unknown_watchers.as_ref(),
        |f| f.presence_unknown_watchers.as_ref(),
        |text| {
            WatcherDefault::parse(text).ok_or_else(|| {
                "write pending, blocked, colleagues, workgroup or friends-and-family".to_owned()
            })
        },
        WatcherDefault::Pending,
    )?;
    let listen_given = (!serve.listen.is_empty()).then(|| serve.listen.clone());
    let listen = match r.pick("listen", listen_given, |f| f.listen.clone()) {
        Some((uris, origin)) => uris
            .iter()
            .map(|u| {
                u.trim()
                    .parse::<ListenUri>()
                    .map_err(|e| SettingsError::Server {
                        error: e,
                        origin: Some(origin.clone()),
                    })
            })
            .collect::<Result<Vec<_>, _>>()?,
        None => DEFAULT_LISTEN
            .iter()
            .filter_map(|u| u.parse().ok())
            .collect(),
    };
    let admin_listen = r.value(
        "admin_listen",
        serve.admin_listen.as_ref(),
        |f| f.admin_listen.as_ref(),
        parse_socket_addr,
        DEFAULT_ADMIN_LISTEN,
    )?;
    let admin_tls = r.value(
        "admin_tls",
        serve.admin_tls.as_ref(),
        |f| f.admin_tls.as_ref(),
        parse_bool,
        false,
    )?;
    let cert = r
        .pick("tls_cert", serve.tls_cert.clone(), |f| f.tls_cert.clone())
        .map(|(p, o)| (r.path(p, &o), o));
    let key = r
        .pick("tls_key", serve.tls_key.clone(), |f| f.tls_key.clone())
        .map(|(p, o)| (r.path(p, &o), o));
    let tls = match (cert, key) {
        (Some((cert, _)), Some((key, _))) => Some(TlsFiles { cert, key }),
        (None, None) => None,
        (Some((_, origin)), None) => {
            return Err(SettingsError::TlsHalf {
                given: "tls_cert",
                origin,
                missing: "tls_key",
            })
        }
        (None, Some((_, origin))) => {
            return Err(SettingsError::TlsHalf {
                given: "tls_key",
                origin,
                missing: "tls_cert",
            })
        }
    };
    if admin_tls && tls.is_none() {
        return Err(SettingsError::Invalid {
            key: "admin_tls",
            value: "true".into(),
            origin: r
                .origins
                .get("admin_tls")
                .cloned()
                .unwrap_or(Origin::Default),
            fix: "HTTPS on the admin listener uses the certificate of tls_cert and the key of \
                  tls_key: set both (`confab tls generate` makes a pair for development), or \
                  leave admin_tls off"
                .into(),
        });
    }
    let log_level = match r.pick("log_level", serve.log_level.clone(), |f| {
        f.log_level.clone()
    }) {
        Some((filter, origin)) => check_log_level(filter, origin)?,
        None => DEFAULT_LOG_LEVEL.to_owned(),
    };
    let backup_every = r.value(
        "backup_interval",
        serve.backup_interval.as_ref(),
        |f| f.backup_interval.as_ref(),
        parse_interval,
        None,
    )?;
    let backup_keep = r.value(
        "backup_keep",
        serve.backup_keep.as_ref(),
        |f| f.backup_keep.as_ref(),
        |s| match parse_count(s)? {
            0 => Err("keep at least 1".to_owned()),
            n => Ok(n),
        },
        DEFAULT_BACKUP_KEEP,
    )?;
    let backup_dir = r
        .pick("backup_dir", serve.backup_dir.clone(), |f| {
            f.backup_dir.clone()
        })
        .map(|(p, o)| r.path(p, &o))
        .unwrap_or_else(|| data_dir.join("backups"));
    let backups = backup_every.map(|every| BackupSchedule {
        every,
        dir: backup_dir,
        keep: backup_keep,
    });
    let defaults = Limits::default();
    let limits = Limits {
        max_connections: r.value(
            "max_connections",
            serve.max_connections.as_ref(),
            |f| f.max_connections.as_ref(),
            parse_count,
            defaults.max_connections,
        )?,
        max_message_size: r.value(
            "max_message_size",
            serve.max_message_size.as_ref(),
            |f| f.max_message_size.as_ref(),
            parse_count,
            defaults.max_message_size,
        )?,
        idle_timeout: r.value(
            "idle_timeout",
            serve.idle_timeout.as_ref(),
            |f| f.idle_timeout.as_ref(),
            parse_duration,
            defaults.idle_timeout,
        )?,
        header_timeout: r.value(
            "header_timeout",
            serve.header_timeout.as_ref(),
            |f| f.header_timeout.as_ref(),
            parse_duration,
            defaults.header_timeout,
        )?,
        max_transactions: r.value(
            "max_transactions",
            serve.max_transactions.as_ref(),
            |f| f.max_transactions.as_ref(),
            parse_count,
            defaults.max_transactions,
        )?,
    };
    let timers = timers(&mut r, serve)?;
    let force_rport = r.value(
        "force_rport",
        serve.force_rport.as_ref(),
        |f| f.force_rport.as_ref(),
        parse_bool,
        false,
    )?;
    let settings = ServeSettings {
        backups,
        config_file: serve.config.clone(),
        data_dir,
        store,
        pool,
        domain,
        digest_algorithms,
        presence_unknown_watchers,
        admin_listen,
        admin_tls,
        log_level,
        server: ServerConfig {
            listen,
            tls,
            limits,
            timers,
            force_rport,
        },
        origins: r.origins,
    };
    settings
        .server
        .validate()
        .map_err(|e| settings.explain(e))?;
    Ok(settings)
}

/// T1, T2 and T4, checked together: T2 may not be below T1.
fn timers(r: &mut Resolver<'_>, serve: &ServeArgs) -> Result<TimerConfig, SettingsError> {
    let rfc = TimerConfig::RFC3261;
    let t1 = r.value(
        "t1",
        serve.t1.as_ref(),
        |f| f.t1.as_ref(),
        parse_duration,
        rfc.t1(),
    )?;
    let t2 = r.value(
        "t2",
        serve.t2.as_ref(),
        |f| f.t2.as_ref(),
        parse_duration,
        rfc.t2(),
    )?;
    let t4 = r.value(
        "t4",
        serve.t4.as_ref(),
        |f| f.t4.as_ref(),
        parse_duration,
        rfc.t4(),
    )?;
    TimerConfig::new(t1, t2, t4).map_err(|e| {
        let given = |key| r.origins.contains_key(key);
        let (key, value) = match e {
            TimerError::ZeroT1 => ("t1", t1),
            // Blame the one the operator set: a T1 raised over the default T2, or a T2 set
            // below T1.
            TimerError::T2BelowT1 if given("t2") || !given("t1") => ("t2", t2),
            TimerError::T2BelowT1 => ("t1", t1),
            TimerError::TooLarge => [("t1", t1), ("t2", t2)]
                .into_iter()
                .find(|(_, d)| *d > Duration::from_secs(3600))
                .unwrap_or(("t4", t4)),
        };
        SettingsError::Invalid {
            key,
            value: format!("{}ms", value.as_millis()),
            origin: r.origins.get(key).cloned().unwrap_or(Origin::Default),
            fix: format!(
                "{e} (t1 = {}ms, t2 = {}ms); the RFC 3261 values are t1 = 500ms, t2 = 4s, t4 = 5s",
                t1.as_millis(),
                t2.as_millis()
            ),
        }
    })
}

#[cfg(test)]
#[path = "settings_tests.rs"]
mod tests;
