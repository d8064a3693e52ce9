//! The records the store keeps, as the layers above see them, and the checks every value
//! passes before it is written. Nothing here is SIP: an address is a `user@domain` string, a
//! credential an opaque HA1 hex string under a realm and an algorithm name.

use std::fmt;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::StoreError;

/// Seconds since the Unix epoch, the unit of every time the store keeps.
pub type UnixTime = i64;

/// Now, from the system clock (0 before 1970).
pub(crate) fn unix_now() -> UnixTime {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// A user's address, `user@domain`. The domain is compared case-insensitively (kept in lower
/// case); the user part is kept and compared exactly as given.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Address {
    user: String,
    domain: String,
}

impl Address {
    /// An address from its two parts.
    pub fn new(user: &str, domain: &str) -> Result<Self, StoreError> {
        let shown = format!("{user}@{domain}");
        let user_ok = !user.is_empty()
            && user.len() <= 128
            && !user.contains('@')
            && !user.chars().any(|c| c.is_whitespace() || c.is_control());
        if !user_ok {
            return Err(StoreError::invalid(
                "user address",
                &shown,
                "write USER@DOMAIN with a user part of 1 to 128 characters, no spaces and \
                 no second '@'",
            ));
        }
        let domain = check_domain(domain).map_err(|fix| {
            StoreError::invalid("user address", &shown, format!("the domain: {fix}"))
        })?;
        Ok(Address {
            user: user.to_owned(),
            domain,
        })
    }

    /// Parses `user@domain`.
    pub fn parse(text: &str) -> Result<Self, StoreError> {
        let text = text.trim();
        match text.rsplit_once('@') {
            Some((user, domain)) => Address::new(user, domain),
            None => Err(StoreError::invalid(
                "user address",
                text,
                "write USER@DOMAIN, e.g. alice@example.com",
            )),
        }
    }

    /// The user part.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The domain, in lower case.
    pub fn domain(&self) -> &str {
        &self.domain
    }
}

impl FromStr for Address {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Address::parse(s)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.user, self.domain)
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Address({self})")
    }
}

/// A SIP domain name as the store keeps it: lower case, a host name or an IP literal. The
/// one rule for domain names: the CLI checks settings with it too. The error says how to fix.
pub fn check_domain(name: &str) -> Result<String, &'static str> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':' | '[' | ']'));
    if ok {
        Ok(name.to_ascii_lowercase())
    } else {
        Err("a domain is 1 to 253 letters, digits, '.', '-' or '_' (or an IP address), e.g. example.com")
    }
}

/// Whether `name` is a valid pool (or site) name: 1 to 63 letters, digits, '-', '_' or '.',
/// starting with a letter or digit. The one rule: `confab serve --pool` checks it too.
pub fn is_pool_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// A pool (or site) name, checked by [`is_pool_name`].
pub(crate) fn check_name(what: &'static str, name: &str) -> Result<(), StoreError> {
    if is_pool_name(name) {
        Ok(())
    } else {
        Err(StoreError::invalid(
            what,
            name,
            format!(
                "a {what} is 1 to 63 letters, digits, '-', '_' or '.', starting with a letter or digit"
            ),
        ))
    }
}

/// Free text that must be one token of printable characters (a next hop, a realm …).
pub(crate) fn check_token(what: &'static str, value: &str, max: usize) -> Result<(), StoreError> {
    if value.is_empty() || value.len() > max || value.chars().any(|c| c.is_control()) {
        return Err(StoreError::invalid(
            what,
            value,
            format!("give 1 to {max} printable characters"),
        ));
    }
    Ok(())
}

/// The store's number for a user; stable for the user's lifetime, never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(pub i64);

/// The store's number for a stored offline message; never reused, so that a deliverer can
/// derive a stable request identity from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StoredId(pub i64);

impl fmt::Display for StoredId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A SIP domain served by the deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Domain {
    /// The name, in lower case.
    pub name: String,
    /// When it was added.
    pub created_at: UnixTime,
}

/// What serves a pool's users.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PoolKind {
    /// Confab front-ends.
    Confab,
    /// Another SIP system, reached through the pool's next hop.
    Legacy,
}

impl PoolKind {
    /// `confab` or `legacy`, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            PoolKind::Confab => "confab",
            PoolKind::Legacy => "legacy",
        }
    }
}

impl FromStr for PoolKind {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "confab" => Ok(PoolKind::Confab),
            "legacy" => Ok(PoolKind::Legacy),
            _ => Err(StoreError::invalid(
                "pool kind",
                s,
                "a pool is of kind confab or legacy",
            )),
        }
    }
}

/// A pool: the unit users are homed on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    /// The name.
    pub name: String,
    /// Confab front-ends or a legacy system.
    pub kind: PoolKind,
    /// The site it belongs to, if any.
    pub site: Option<String>,
    /// Where requests for its users are sent from other pools (required for a legacy pool),
    /// as text the router understands.
    pub next_hop: Option<String>,
    /// The SIP listen addresses of its front-ends, in the order the topology lists them, as
    /// `scheme://IP:PORT` text (empty for a legacy pool). One address belongs to one pool.
    pub servers: Vec<String>,
    /// The pool paired with it for failover, if any.
    pub pair: Option<String>,
}

/// A site: a location grouping pools.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    /// The name (the pool-name rules).
    pub name: String,
    /// What it is, for people.
    pub description: Option<String>,
}

/// A whole topology as [`crate::Store::publish_topology`] applies it: the domains, sites and
/// pools the deployment is to have, nothing more and nothing less.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopologySpec {
    /// The SIP domains.
    pub domains: Vec<String>,
    /// The sites.
    pub sites: Vec<Site>,
    /// The pools.
    pub pools: Vec<Pool>,
}

/// One published topology document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopologyVersion {
    /// 1, 2, 3 … in order of publication.
    pub version: i64,
    /// The document as it was published.
    pub document: String,
    /// When.
    pub published_at: UnixTime,
    /// By whom (the operating-system user).
    pub published_by: String,
    /// Why, if said.
    pub comment: Option<String>,
}

/// How much a pool serves: users homed on it and their live registrations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolUsage {
    /// The pool.
    pub pool: String,
    /// Users homed on it.
    pub users: i64,
    /// Registrations (contacts) of those users.
    pub registrations: i64,
}

/// The name of the pool [`crate::Store::ensure_defaults`] creates.
pub const DEFAULT_POOL: &str = "default";

/// A user account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The store's number.
    pub id: UserId,
    /// `user@domain`.
    pub address: Address,
    /// The name shown to others, if set.
    pub display_name: Option<String>,
    /// The home pool.
    pub pool: String,
    /// Whether the user may sign in.
    pub enabled: bool,
    /// When the account was created.
    pub created_at: UnixTime,
    /// When the account or its credentials last changed.
    pub updated_at: UnixTime,
}

/// A user to add.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// `user@domain`; the domain must be a domain of the deployment.
    pub address: Address,
    /// The name shown to others.
    pub display_name: Option<String>,
    /// The home pool; it must exist.
    pub pool: String,
    /// Whether the user may sign in at once.
    pub enabled: bool,
}

/// Which users [`crate::Store::list_users`] returns; `None` matches all.
#[derive(Debug, Clone, Default)]
pub struct UserFilter {
    /// Only users homed on this pool.
    pub pool: Option<String>,
    /// Only users of this domain (any case).
    pub domain: Option<String>,
}

/// One HA1 value of a user: `H(user:realm:password)` under the named digest algorithm, as
/// lower-case hex. The store never sees a password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    /// The realm.
    pub realm: String,
    /// The digest algorithm's name, e.g. `MD5` or `SHA-256`.
    pub algorithm: String,
    /// The HA1 value in hex.
    pub ha1: String,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // An HA1 is as good as a password for its realm: keep it out of logs.
        f.debug_struct("Credential")
            .field("realm", &self.realm)
            .field("algorithm", &self.algorithm)
            .field("ha1", &"…")
            .finish()
    }
}

impl Credential {
    /// Checks the fields and normalises the HA1 to lower case.
    pub(crate) fn checked(&self) -> Result<Credential, StoreError> {
        check_token("realm", &self.realm, 255)?;
        let algorithm_ok = !self.algorithm.is_empty()
            && self.algorithm.len() <= 32
            && self
                .algorithm
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !algorithm_ok {
            return Err(StoreError::invalid(
                "digest algorithm",
                &self.algorithm,
                "give the algorithm's name, e.g. MD5 or SHA-256",
            ));
        }
        let hex_ok = !self.ha1.is_empty()
            && self.ha1.len() <= 128
            && self.ha1.len().is_multiple_of(2)
            && self.ha1.chars().all(|c| c.is_ascii_hexdigit());
        if !hex_ok {
            return Err(StoreError::invalid(
                "HA1 value",
                "…",
                "an HA1 is the digest in hexadecimal (32 digits for MD5, 64 for SHA-256)",
            ));
        }
        Ok(Credential {
            realm: self.realm.clone(),
            algorithm: self.algorithm.clone(),
            ha1: self.ha1.to_ascii_lowercase(),
        })
    }
}

/// One contact of a user, written behind by the registrar so that a restarted or failed-over
/// front-end recovers it. Identified by (user, contact).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// Whose contact.
    pub user: Address,
    /// The contact URI, as text.
    pub contact: String,
    /// The client's instance identifier, if it sent one.
    pub instance_id: Option<String>,
    /// Preference in thousandths (0 to 1000).
    pub q: u16,
    /// When the binding expires.
    pub expires_at: UnixTime,
    /// The Call-ID of the request that made or last refreshed it.
    pub call_id: String,
    /// Its CSeq number.
    pub cseq: u32,
    /// The route set recorded for it (a Path), as text, if any.
    pub path: Option<String>,
    /// Where the request came from (address and port), as text, if recorded.
    pub source: Option<String>,
    /// The transport it arrived on.
    pub transport: String,
    /// When the registrar last wrote it.
    pub updated_at: UnixTime,
}

/// What [`crate::Store::purge_expired`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    /// Expired registrations.
    pub registrations: u64,
    /// Expired offline messages.
    pub offline_messages: u64,
}

/// A message to keep for a user who is offline.
#[derive(Debug, Clone)]
pub struct NewOfflineMessage {
    /// The recipient.
    pub to_user: Address,
    /// The sender, as text.
    pub from_uri: String,
    /// The body's media type.
    pub content_type: String,
    /// The body.
    pub body: Vec<u8>,
    /// When it arrived (the age limit counts from here).
    pub received_at: UnixTime,
}

/// A stored offline message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfflineMessage {
    /// The store's number, for [`crate::Store::ack_offline_messages`].
    pub id: StoredId,
    /// The recipient.
    pub to_user: Address,
    /// The sender, as text.
    pub from_uri: String,
    /// The body's media type.
    pub content_type: String,
    /// The body.
    pub body: Vec<u8>,
    /// When it arrived.
    pub received_at: UnixTime,
    /// When it is dropped undelivered.
    pub expires_at: UnixTime,
}

/// What [`crate::Store::ensure_defaults`] created.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Defaults {
    /// The SIP domain created, if the store had none.
    pub domain: Option<String>,
    /// The pool created, if the store had none.
    pub pool: Option<String>,
}

impl Defaults {
    /// Whether anything was created (a first start).
    pub fn created_any(&self) -> bool {
        self.domain.is_some() || self.pool.is_some()
    }
}
