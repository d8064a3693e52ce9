//! [`ServiceConfig`]: what the registrar, the proxy and messaging of one front-end do — the
//! SIP domains it is authoritative for, digest nonces, registration expiry and the contact
//! cap, the password-guessing throttle ([`ThrottleConfig`]), offline messages
//! ([`OfflineLimits`]) and presence ([`PresenceConfig`]). Built with defaults, adjusted by the binary from its settings, then
//! checked once by [`ServiceConfig::validate`] when [`crate::Router::new`] takes it.

use std::net::IpAddr;
use std::time::Duration;

use confab_sip::digest::Algorithm;

use crate::config::ListenUri;
use crate::error::ConfigError;
use crate::presence::policy::WatcherDefault;

/// How repeated authentication failures are slowed down (see [`crate::throttle`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleConfig {
    /// Failures for one user name before its back-off starts.
    pub user_failures: u32,
    /// Failures from one source address before its back-off starts. Higher than
    /// `user_failures` because many users may share one address (a NAT, an office).
    pub address_failures: u32,
    /// The first back-off; each further failure doubles it.
    pub base_backoff: Duration,
    /// The longest back-off.
    pub max_backoff: Duration,
    /// A user or address with no failure for this long starts afresh.
    pub forget_after: Duration,
    /// User names and addresses tracked at once, each; the least recently failing are
    /// forgotten first, so memory stays bounded under a spray of made-up names.
    pub max_tracked: usize,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        ThrottleConfig {
            user_failures: 5,
            address_failures: 20,
            base_backoff: Duration::from_secs(2),
            max_backoff: Duration::from_secs(300),
            forget_after: Duration::from_secs(900),
            max_tracked: 10_000,
        }
    }
}

/// Limits on messages stored for users who are offline (RFC 3428 page mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OfflineLimits {
    /// Messages kept per recipient; a MESSAGE beyond it is refused (480 Temporarily
    /// Unavailable: see [`crate::messaging`]).
    pub max_per_user: usize,
    /// Messages older than this are not delivered and are deleted.
    pub max_age: Duration,
}

impl Default for OfflineLimits {
    fn default() -> Self {
        OfflineLimits {
            max_per_user: 100,
            max_age: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// Presence (RFC 3856 subscriptions, RFC 3903 publications) and who may watch whom.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PresenceConfig {
    /// What a watcher with no rule, and not on the presentity's contact list, gets: pending
    /// (the presentity is asked through watcher information) or an access level.
    pub unknown_watchers: WatcherDefault,
    /// The shortest subscription or publication accepted; shorter ones get 423 with
    /// Min-Expires.
    pub min_expires: u32,
    /// The longest granted; longer ones are shortened to this.
    pub max_expires: u32,
    /// The time granted when the request names none (RFC 3856 §6.4, RFC 3903 §4.1: 3600).
    pub default_expires: u32,
    /// Subscriptions per presentity (watchers and watcher information together); one more
    /// is refused 503 with Retry-After.
    pub max_watchers: usize,
    /// Live publications per presentity (devices); one more replaces the oldest.
    pub max_publications: usize,
}

impl Default for PresenceConfig {
    fn default() -> Self {
        PresenceConfig {
            unknown_watchers: WatcherDefault::Pending,
            min_expires: 60,
            max_expires: 3600,
            default_expires: 3600,
            max_watchers: 1000,
            max_publications: 16,
        }
    }
}

/// The digest algorithms a challenge offers by default, most preferred first.
pub const DEFAULT_DIGEST_ALGORITHMS: [Algorithm; 2] = [Algorithm::Sha256, Algorithm::Md5];

/// The registrar's, proxy's and messaging's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceConfig {
    /// The SIP domains this front-end is authoritative for, lower-case: REGISTER for them is
    /// served, requests to their users are proxied, and each is the digest realm of its
    /// users. Listen IP addresses belong here too, so that clients pointed at an address
    /// work.
    pub domains: Vec<String>,
    /// The key of stateless digest nonces. Front-ends of one pool share it so that any of
    /// them accepts a nonce another issued; `None`: random at start.
    pub nonce_secret: Option<[u8; 32]>,
    /// How long a nonce is accepted; after it, a right answer gets `stale=true`.
    pub nonce_lifetime: Duration,
    /// Nonces whose use is tracked (replay detection) at once.
    pub max_tracked_nonces: usize,
    /// The shortest registration accepted; shorter ones get 423 with Min-Expires.
    pub min_expires: u32,
    /// The longest registration granted; longer ones are shortened to this.
    pub max_expires: u32,
    /// The registration time when the REGISTER names none.
    pub default_expires: u32,
    /// Bindings per address-of-record; the oldest is dropped beyond it.
    pub max_contacts: usize,
    /// The host (name or address) written in Via and Record-Route when the listener a
    /// message leaves by is bound to a wildcard address (`0.0.0.0`, `[::]`). With specific
    /// listener addresses it is not needed.
    pub advertise: Option<String>,
    /// Password-guessing throttle.
    pub throttle: ThrottleConfig,
    /// Digest algorithms offered in challenges, most preferred first (default SHA-256, MD5).
    /// Only algorithms whose HA1 the store keeps for every user: MD5, SHA-256, SHA-512-256.
    pub digest_algorithms: Vec<Algorithm>,
    /// Offline messages.
    pub offline: OfflineLimits,
    /// Presence.
    pub presence: PresenceConfig,
    /// The pool this front-end serves (`confab serve --pool`): requests for users homed on
    /// another pool of the topology are forwarded there.
    pub pool: String,
}

impl ServiceConfig {
    /// Default [`ServiceConfig::nonce_lifetime`].
    pub const DEFAULT_NONCE_LIFETIME: Duration = Duration::from_secs(300);
    /// Default [`ServiceConfig::min_expires`].
    pub const DEFAULT_MIN_EXPIRES: u32 = 60;
    /// Default [`ServiceConfig::max_expires`] and [`ServiceConfig::default_expires`].
    pub const DEFAULT_MAX_EXPIRES: u32 = 3600;
    /// Default [`ServiceConfig::max_contacts`].
    pub const DEFAULT_MAX_CONTACTS: usize = 8;

    /// Defaults for these domains (lower-cased).
    pub fn new(domains: impl IntoIterator<Item = impl Into<String>>) -> Self {
        ServiceConfig {
            domains: domains
                .into_iter()
                .map(|d| d.into().to_ascii_lowercase())
                .collect(),
            nonce_secret: None,
            nonce_lifetime: Self::DEFAULT_NONCE_LIFETIME,
            max_tracked_nonces: 65_536,
            min_expires: Self::DEFAULT_MIN_EXPIRES,
            max_expires: Self::DEFAULT_MAX_EXPIRES,
            default_expires: Self::DEFAULT_MAX_EXPIRES,
            max_contacts: Self::DEFAULT_MAX_CONTACTS,
            advertise: None,
            throttle: ThrottleConfig::default(),
            digest_algorithms: DEFAULT_DIGEST_ALGORITHMS.to_vec(),
            offline: OfflineLimits::default(),
            presence: PresenceConfig::default(),
            pool: "default".into(),
        }
    }

    /// The default domains for these listeners: `localhost` and every listen address that
    /// is not a wildcard.
    pub fn for_listeners(listen: &[ListenUri]) -> Self {
        let mut domains = vec!["localhost".to_owned()];
        for l in listen {
            let ip = l.addr.ip();
            if ip.is_unspecified() {
                continue;
            }
            let host = match ip {
                IpAddr::V4(v4) => v4.to_string(),
                IpAddr::V6(v6) => format!("[{v6}]"),
            };
            if !domains.contains(&host) {
                domains.push(host);
            }
        }
        ServiceConfig::new(domains)
    }

    /// True when `host` (as written in a URI: a name, an IPv4 address or a bracketed IPv6
    /// address) is one of [`ServiceConfig::domains`].
    pub fn is_local_domain(&self, host: &str) -> bool {
        self.domains.iter().any(|d| d.eq_ignore_ascii_case(host))
    }

    /// Checks every setting against its allowed range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let limit = |name, value: String, allowed| {
            Err(ConfigError::Limit {
                name,
                value,
                allowed,
            })
        };
        if self.digest_algorithms.is_empty()
            || self.digest_algorithms.iter().any(|a| {
                !matches!(
                    a,
                    Algorithm::Md5 | Algorithm::Sha256 | Algorithm::Sha512_256
                )
            })
        {
            return limit(
                "digest_algorithms",
                format!("{:?}", self.digest_algorithms),
                "list one or more of MD5, SHA-256, SHA-512-256 (the HA1s the store keeps)",
            );
        }
        if self.domains.is_empty() || self.domains.iter().any(|d| d.is_empty()) {
            return limit(
                "domains",
                format!("{:?}", self.domains),
                "give at least one SIP domain, e.g. example.com",
            );
        }
        let lifetime = self.nonce_lifetime;
        if lifetime < Duration::from_secs(1) || lifetime > Duration::from_secs(86_400) {
            return limit(
                "nonce_lifetime",
                format!("{} ms", lifetime.as_millis()),
                "use 1s to 24h, e.g. 300s",
            );
        }
        if self.min_expires > self.max_expires {
            return limit(
                "min_expires",
                self.min_expires.to_string(),
                "min_expires may not be above max_expires",
            );
        }
        if self.max_expires == 0 || self.max_expires > 30 * 86_400 {
            return limit(
                "max_expires",
                self.max_expires.to_string(),
                "use 1 to 2592000 seconds, e.g. 3600",
            );
        }
        if !(1..=64).contains(&self.max_contacts) {
            return limit(
                "max_contacts",
                self.max_contacts.to_string(),
                "use 1 to 64 contacts per user",
            );
        }
        if self.max_tracked_nonces == 0 || self.throttle.max_tracked == 0 {
            return limit(
                "max_tracked",
                "0".to_owned(),
                "track at least one nonce, user and address",
            );
        }
        if self.throttle.user_failures == 0 || self.throttle.address_failures == 0 {
            return limit(
                "throttle failures",
                "0".to_owned(),
                "allow at least one failure before backing off",
            );
        }
        if self.throttle.base_backoff.is_zero()
            || self.throttle.base_backoff > self.throttle.max_backoff
        {
            return limit(
                "base_backoff",
                format!("{} ms", self.throttle.base_backoff.as_millis()),
                "use more than zero and at most max_backoff",
            );
        }
        let p = &self.presence;
        if p.min_expires == 0 || p.min_expires > p.max_expires {
            return limit(
                "presence min_expires",
                p.min_expires.to_string(),
                "use at least 1 second and at most presence max_expires",
            );
        }
        if p.default_expires < p.min_expires || p.default_expires > p.max_expires {
            return limit(
                "presence default_expires",
                p.default_expires.to_string(),
                "use a value between presence min_expires and max_expires",
            );
        }
        if p.max_watchers == 0 || p.max_publications == 0 {
            return limit(
                "presence max_watchers",
                "0".to_owned(),
                "allow at least one subscription and one publication per presentity",
            );
        }
        if self.offline.max_per_user == 0 {
            return limit(
                "offline max_per_user",
                "0".to_owned(),
                "keep at least one message per user",
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_name_localhost_and_the_listen_addresses() {
        let listen: Vec<ListenUri> = [
            "udp://127.0.0.1:5060",
            "tcp://0.0.0.0:5060",
            "udp://[::1]:5060",
        ]
        .iter()
        .map(|s| s.parse().expect("uri"))
        .collect();
        let c = ServiceConfig::for_listeners(&listen);
        assert_eq!(c.domains, ["localhost", "127.0.0.1", "[::1]"]);
        assert!(c.is_local_domain("LocalHost"));
        assert!(!c.is_local_domain("example.com"));
        assert!(c.validate().is_ok());
        assert_eq!(c.min_expires, 60);
        assert_eq!(c.max_expires, 3600);
        assert_eq!(c.max_contacts, 8);
        assert_eq!(c.nonce_lifetime, Duration::from_secs(300));
    }

    #[test]
    fn validation_names_the_setting() {
        let mut c = ServiceConfig::new(["example.com"]);
        c.min_expires = 7200;
        assert!(matches!(
            c.validate(),
            Err(ConfigError::Limit {
                name: "min_expires",
                ..
            })
        ));
        let c = ServiceConfig::new(Vec::<String>::new());
        assert!(c.validate().is_err());
    }
}
