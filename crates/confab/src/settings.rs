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

use confab_server::{ConfigError, Limits, ListenUri, ServerConfig, TlsFiles};
use serde::Deserialize;

use crate::cli::{DeploymentArgs, ServeArgs};

/// Default data directory.
pub const DEFAULT_DATA_DIR: &str = "./confab-data";
/// Default SIP listeners.
pub const DEFAULT_LISTEN: [&str; 2] = ["udp://127.0.0.1:5060", "tcp://127.0.0.1:5060"];
/// Default admin API address.
pub const DEFAULT_ADMIN_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 8480);
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
    listen: Option<Vec<String>>,
    admin_listen: Option<Scalar>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    log_level: Option<String>,
    max_connections: Option<Scalar>,
    max_message_size: Option<Scalar>,
    idle_timeout: Option<Scalar>,
    header_timeout: Option<Scalar>,
    force_rport: Option<Scalar>,
}

/// Everything `confab serve` runs with.
#[derive(Debug)]
pub struct ServeSettings {
    /// The config file read, if any.
    pub config_file: Option<PathBuf>,
    /// The data directory.
    pub data_dir: PathBuf,
    /// The management store URL, if not the SQLite file in the data directory.
    pub store: Option<String>,
    /// The pool of this front-end.
    pub pool: Option<String>,
    /// The admin API address.
    pub admin_listen: SocketAddr,
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
    let log_level = match r.pick("log_level", serve.log_level.clone(), |f| {
        f.log_level.clone()
    }) {
        Some((filter, origin)) => check_log_level(filter, origin)?,
        None => DEFAULT_LOG_LEVEL.to_owned(),
    };
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
    };
    let force_rport = r.value(
        "force_rport",
        serve.force_rport.as_ref(),
        |f| f.force_rport.as_ref(),
        parse_bool,
        false,
    )?;
    let settings = ServeSettings {
        config_file: serve.config.clone(),
        data_dir,
        store,
        pool,
        admin_listen,
        log_level,
        server: ServerConfig {
            listen,
            tls,
            limits,
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

fn invalid(key: &'static str, value: String, origin: Origin, fix: &str) -> SettingsError {
    SettingsError::Invalid {
        key,
        value,
        origin,
        fix: fix.to_owned(),
    }
}

fn check_store(url: String, origin: Origin) -> Result<String, SettingsError> {
    let lower = url.to_ascii_lowercase();
    if ["postgres://", "postgresql://", "sqlite:"]
        .iter()
        .any(|p| lower.starts_with(p))
    {
        return Ok(url);
    }
    // The URL may carry a password: show only its scheme.
    let shown = url.split_once(':').map_or("?", |(s, _)| s).to_owned() + ":…";
    Err(invalid(
        "store",
        shown,
        origin,
        "use postgres://USER@HOST/DB for a shared PostgreSQL store, or leave it unset for the \
         SQLite file in the data directory",
    ))
}

fn check_pool(name: String, origin: Origin) -> Result<String, SettingsError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(name)
    } else {
        Err(invalid(
            "pool",
            name,
            origin,
            "a pool name is 1 to 63 letters, digits, '-', '_' or '.', starting with a letter or digit",
        ))
    }
}

fn check_log_level(filter: String, origin: Origin) -> Result<String, SettingsError> {
    const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];
    let is_level = |s: &str| LEVELS.iter().any(|l| l.eq_ignore_ascii_case(s.trim()));
    // EnvFilter takes a bare word as a target name, so a misspelt level ("inof") would
    // silently log nothing: require a level, alone or after TARGET=.
    let directives_ok = filter.split(',').filter(|d| !d.trim().is_empty()).all(|d| {
        d.rsplit_once('=')
            .map_or_else(|| is_level(d), |(_, l)| is_level(l))
    });
    let parsed = tracing_subscriber::EnvFilter::builder().parse(&filter);
    match parsed {
        Ok(_) if directives_ok && !filter.trim().is_empty() => Ok(filter),
        result => Err(SettingsError::Invalid {
            key: "log_level",
            value: filter,
            origin,
            fix: format!(
                "{}use error, warn, info, debug or trace, optionally per module as in \
                 info,confab_server=debug",
                result.err().map(|e| format!("{e}; ")).unwrap_or_default()
            ),
        }),
    }
}

fn parse_count(s: &str) -> Result<usize, String> {
    s.replace('_', "")
        .parse()
        .map_err(|_| "write a whole number, e.g. 4096".to_owned())
}

fn parse_bool(s: &str) -> Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Ok(true),
        "false" | "no" | "off" | "0" => Ok(false),
        _ => Err("write true or false".to_owned()),
    }
}

/// `500ms`, `10s`, `5m`, `1h`; a bare number is seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let fix =
        || "write a duration such as 500ms, 10s, 5m or 1h (a bare number is seconds)".to_owned();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let n: u64 = number.parse().map_err(|_| fix())?;
    let ms = match unit.trim() {
        "ms" => Some(n),
        "" | "s" => n.checked_mul(1000),
        "m" | "min" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        _ => None,
    };
    ms.map(Duration::from_millis).ok_or_else(fix)
}

fn parse_socket_addr(s: &str) -> Result<SocketAddr, String> {
    let fix = || "write IP:PORT, e.g. 127.0.0.1:8480 or [::1]:8480".to_owned();
    if let Some(port) = s
        .strip_prefix("localhost:")
        .or_else(|| s.strip_prefix("LOCALHOST:"))
    {
        let port: u16 = port.parse().map_err(|_| fix())?;
        return Ok(SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port));
    }
    s.parse().map_err(|_| fix())
}

#[cfg(test)]
#[path = "settings_tests.rs"]
mod tests;
