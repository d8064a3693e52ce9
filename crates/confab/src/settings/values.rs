//! How each kind of setting is written: counts, booleans, durations, addresses, and the
//! checks of store URLs, pool names and log filters. Each parser returns the fix to show the
//! operator when the text does not parse; [`super::resolve`] adds the key and the origin.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use super::{Origin, SettingsError};

fn invalid(key: &'static str, value: String, origin: Origin, fix: &str) -> SettingsError {
    SettingsError::Invalid {
        key,
        value,
        origin,
        fix: fix.to_owned(),
    }
}

pub(super) fn check_store(url: String, origin: Origin) -> Result<String, SettingsError> {
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

pub(super) fn check_pool(name: String, origin: Origin) -> Result<String, SettingsError> {
    if confab_store::is_pool_name(&name) {
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

/// A SIP domain, by the management store's own rule: a host name or IP literal, in lower case.
pub(super) fn check_domain(name: String, origin: Origin) -> Result<String, SettingsError> {
    match confab_store::check_domain(name.trim()) {
        Ok(domain) => Ok(domain),
        Err(fix) => Err(invalid("domain", name, origin, fix)),
    }
}

pub(super) fn check_log_level(filter: String, origin: Origin) -> Result<String, SettingsError> {
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

pub(super) fn parse_count(s: &str) -> Result<usize, String> {
    s.replace('_', "")
        .parse()
        .map_err(|_| "write a whole number, e.g. 4096".to_owned())
}

pub(super) fn parse_bool(s: &str) -> Result<bool, String> {
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

pub(super) fn parse_socket_addr(s: &str) -> Result<SocketAddr, String> {
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
