//! Digest authentication of requests (RFC 3261 §22, RFC 7616, RFC 8760) for the registrar
//! (`401` / `WWW-Authenticate` / `Authorization`) and the proxy (`407` /
//! `Proxy-Authenticate` / `Proxy-Authorization`): challenges, verification against the
//! [`Directory`]'s HA1 values, nonce expiry, replay detection, and the password-guessing
//! [`Throttle`].
//!
//! - **Challenges** offer SHA-256 and MD5, most preferred first, as two header fields with
//!   one stateless nonce ([`NonceSecret`]), `qop="auth"`. Only those two algorithms and
//!   `qop=auth` are accepted, so nobody can downgrade to the RFC 2069 form.
//! - **Nonces** expire after [`crate::ServiceConfig::nonce_lifetime`]; a right answer with
//!   an expired nonce gets a new challenge with `stale=true` (the client retries without
//!   asking its user).
//! - **Replays**: the highest nonce count seen is kept per nonce for the nonce's lifetime; an
//!   answer that does not raise it is refused with a fresh challenge. Memory is bounded
//!   ([`crate::ServiceConfig::max_tracked_nonces`]): when full, the oldest nonce is
//!   forgotten, and every nonce issued no later than a forgotten one is answered
//!   `stale=true`, so that a forgotten nonce can never be replayed.
//! - **No enumeration**: an unknown user, a disabled user and a wrong password get the same
//!   challenge, after the same work (both directory look-ups, one digest computation against
//!   a stand-in HA1), and all count as failures for the throttle.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use confab_sip::auth::{format_challenge, ChallengeParams, Credentials};
use confab_sip::digest::{self, Algorithm, NonceCheck, NonceSecret, Verification};
use confab_sip::{Message, Uri};
use tracing::debug;

use crate::directory::{Directory, StoreError};
use crate::ids;
use crate::throttle::Throttle;

/// Which side asks: the registrar (a UAS) or the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asker {
    /// `401 Unauthorized`, `WWW-Authenticate`, answered with `Authorization`.
    Registrar,
    /// `407 Proxy Authentication Required`, `Proxy-Authenticate`, answered with
    /// `Proxy-Authorization`.
    Proxy,
}

impl Asker {
    /// The status and reason of a challenge.
    pub fn status(self) -> (u16, &'static str) {
        match self {
            Asker::Registrar => (401, "Unauthorized"),
            Asker::Proxy => (407, "Proxy Authentication Required"),
        }
    }

    /// The challenge header's name.
    pub fn challenge_header(self) -> &'static str {
        match self {
            Asker::Registrar => "WWW-Authenticate",
            Asker::Proxy => "Proxy-Authenticate",
        }
    }

    fn credentials_header(self) -> &'static str {
        match self {
            Asker::Registrar => "Authorization",
            Asker::Proxy => "Proxy-Authorization",
        }
    }
}

/// The verdict on a request's credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Right credentials: the authenticated address-of-record (`user@realm`).
    Authenticated(String),
    /// Challenge again (`stale=true` when asked).
    Challenge {
        /// The nonce was expired (or forgotten) but the answer right.
        stale: bool,
    },
    /// Credentials for our realm that cannot be read.
    BadRequest(&'static str),
    /// The directory failed.
    Failed(StoreError),
}

/// The nonce counts of the nonces in use, for replay detection: per nonce, in order of issue,
/// the highest count seen, until the nonce expires; at most `max` nonces. A nonce is kept as
/// its 32 octets ([`digest::nonce_octets`]) rather than its 64 hex digits, once, in one
/// ordered map: about 60 bytes a nonce, which is memory per registered contact when every
/// client signs in with a nonce of its own.
#[derive(Debug)]
struct NonceUses {
    max: usize,
    /// Highest nonce count seen, per nonce; the octets begin with the issue time
    /// (big-endian), so the first entry is the oldest.
    seen: BTreeMap<Nonce, u32>,
    /// The newest issue time of a nonce forgotten for lack of room.
    forgotten_up_to: Option<u64>,
}

/// A nonce's octets.
type Nonce = [u8; digest::NONCE_BYTES];

/// What [`NonceUses::record`] found.
#[derive(Debug, PartialEq, Eq)]
enum Use {
    Fresh,
    Replay,
    /// Issued no later than a forgotten nonce: cannot tell.
    Unknown,
}

impl NonceUses {
    fn new(max: usize) -> Self {
        NonceUses {
            max,
            seen: BTreeMap::new(),
            forgotten_up_to: None,
        }
    }

    fn record(&mut self, nonce: &Nonce, nc: u32, now: u64, lifetime: u64) -> Use {
        while let Some((oldest, _)) = self.seen.first_key_value() {
            if issue_time(oldest).saturating_add(lifetime) >= now {
                break;
            }
            self.seen.pop_first();
        }
        if let Some(highest) = self.seen.get_mut(nonce) {
            if nc <= *highest {
                return Use::Replay;
            }
            *highest = nc;
            return Use::Fresh;
        }
        let issued = issue_time(nonce);
        if self.forgotten_up_to.is_some_and(|f| issued <= f) {
            return Use::Unknown;
        }
        if self.seen.len() >= self.max {
            if let Some((oldest, _)) = self.seen.pop_first() {
                let at = issue_time(&oldest);
                self.forgotten_up_to = Some(self.forgotten_up_to.map_or(at, |f| f.max(at)));
            }
            if self.forgotten_up_to.is_some_and(|f| issued <= f) {
                return Use::Unknown;
            }
        }
        self.seen.insert(*nonce, nc);
        Use::Fresh
    }
}

/// The issue time at the start of a nonce's octets.
fn issue_time(nonce: &Nonce) -> u64 {
    let mut time = [0u8; 8];
    time.copy_from_slice(&nonce[..8]);
    u64::from_be_bytes(time)
}

/// Digest authentication for one front-end (see the module documentation).
pub struct Authenticator {
    secret: NonceSecret,
    lifetime: Duration,
    nonces: Mutex<NonceUses>,
    throttle: Throttle,
    directory: Arc<dyn Directory>,
    /// Algorithms offered in challenges, most preferred first.
    offered: Vec<Algorithm>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("lifetime", &self.lifetime)
            .field("throttle", &self.throttle.stats())
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    /// An authenticator with this nonce key and lifetime, replay memory, throttle and
    /// directory.
    pub fn new(
        key: [u8; 32],
        lifetime: Duration,
        max_tracked_nonces: usize,
        throttle: Throttle,
        directory: Arc<dyn Directory>,
    ) -> Self {
        Authenticator {
            secret: NonceSecret::new(key),
            lifetime,
            nonces: Mutex::new(NonceUses::new(max_tracked_nonces)),
            throttle,
            directory,
            offered: crate::service_config::DEFAULT_DIGEST_ALGORITHMS.to_vec(),
        }
    }

    /// Offers `algorithms` (most preferred first) instead of the default SHA-256, MD5.
    /// Clients that read only the first challenge (Debian's sipsak, sipvicious) answer only
    /// MD5: a deployment with such clients lists MD5 first.
    pub fn with_algorithms(mut self, algorithms: &[Algorithm]) -> Self {
        if !algorithms.is_empty() {
            self.offered = algorithms.to_vec();
        }
        self
    }

    /// The throttle, for its counters.
    pub fn throttle(&self) -> &Throttle {
        &self.throttle
    }

    fn nonces(&self) -> MutexGuard<'_, NonceUses> {
        self.nonces.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The challenge header fields for `realm`: one per offered algorithm, with a new nonce.
    pub fn challenges(&self, realm: &str, stale: bool) -> Vec<String> {
        let nonce = self.secret.issue(ids::unix_now(), ids::random_bytes());
        self.offered
            .iter()
            .map(|alg| {
                format_challenge(&ChallengeParams {
                    realm,
                    nonce: &nonce,
                    opaque: None,
                    algorithm: *alg,
                    qop_auth: true,
                    stale,
                })
            })
            .collect()
    }

    /// Checks the credentials `request` carries for `realm`, coming from `source`.
    pub async fn authenticate(
        &self,
        request: &Message,
        asker: Asker,
        realm: &str,
        source: IpAddr,
    ) -> Outcome {
        let fresh = Outcome::Challenge { stale: false };
        let mut ours = None;
        let fields = request.headers_named(asker.credentials_header());
        for value in fields.filter_map(|v| std::str::from_utf8(v).ok()) {
            match Credentials::parse(value) {
                Ok(c)
                    if c.is_digest()
                        && c.realm().is_some_and(|r| r.eq_ignore_ascii_case(realm)) =>
                {
                    ours = Some(c);
                    break;
                }
                Ok(_) => {}
                // Another scheme's odd syntax is not ours to judge (RFC 4475 regaut01).
                Err(_)
                    if !value
                        .trim_start()
                        .to_ascii_lowercase()
                        .starts_with("digest") => {}
                Err(_) => return Outcome::BadRequest("Malformed Credentials"),
            }
        }
        let Some(creds) = ours else { return fresh };
        let Some(username) = creds.username() else {
            return Outcome::BadRequest("Credentials Without Username");
        };
        let now = Instant::now();
        if self.throttle.is_throttled(&username, source, now) {
            return fresh;
        }
        let alg = match Algorithm::from_param(creds.algorithm()) {
            Some(a) if self.offered.contains(&a) => a,
            _ => return fresh,
        };
        if !creds.qop().is_some_and(|q| q.eq_ignore_ascii_case("auth")) {
            return fresh;
        }
        let Some(nonce) = creds.nonce() else {
            return Outcome::BadRequest("Credentials Without Nonce");
        };
        let unix = ids::unix_now();
        let lifetime = self.lifetime.as_secs();
        let stale = match self.secret.check(&nonce, unix, lifetime) {
            NonceCheck::Valid => false,
            NonceCheck::Stale => true,
            NonceCheck::Invalid => return fresh,
        };
        if !covers_request_uri(creds.uri().as_deref(), request) {
            return Outcome::BadRequest("Digest URI Mismatch");
        }
        let address = if username.contains('@') {
            username.to_string()
        } else {
            format!("{username}@{}", realm.to_ascii_lowercase())
        };
        let user = match self.directory.user(&address).await {
            Ok(u) => u,
            Err(e) => return Outcome::Failed(e),
        };
        let stored = match self.directory.credentials(&address, realm).await {
            Ok(c) => c,
            Err(e) => return Outcome::Failed(e),
        };
        let usable = user.as_ref().is_some_and(|u| u.enabled);
        let ha1 = stored
            .iter()
            .find(|c| Algorithm::parse(&c.algorithm) == Some(alg))
            .map(|c| c.ha1.clone())
            .filter(|_| usable);
        let known = ha1.is_some();
        // The same work for an unknown user: verify against a stand-in that cannot match
        // a response computed from any password (it is not a hash of one).
        let ha1 = ha1.unwrap_or_else(|| "0".repeat(alg.hex_len()));
        let method = request.method_str().unwrap_or_default();
        match digest::verify(&creds, method, &ha1) {
            Verification::Ok if known => {}
            Verification::Malformed(why) => {
                debug!(user = %username, why, "malformed digest credentials");
                return Outcome::BadRequest("Malformed Credentials");
            }
            _ => {
                self.throttle.failure(&username, source, now);
                debug!(user = %username, %source, "authentication failed");
                return fresh;
            }
        }
        if stale {
            return Outcome::Challenge { stale: true };
        }
        let nc = creds.nc().unwrap_or(0);
        // The secret accepted it, so it has the form `issue` writes.
        let Some(octets) = digest::nonce_octets(&nonce) else {
            return fresh;
        };
        match self.nonces().record(&octets, nc, unix, lifetime) {
            Use::Fresh => {}
            Use::Replay => {
                debug!(user = %username, %source, nc, "replayed nonce count refused");
                return fresh;
            }
            Use::Unknown => return Outcome::Challenge { stale: true },
        }
        self.throttle.success(&username);
        Outcome::Authenticated(address)
    }
}

/// True when the digest-uri names the request's Request-URI (RFC 3261 §22.4), compared as
/// URIs (RFC 3261 §19.1.4), or as text when either does not parse.
fn covers_request_uri(digest_uri: Option<&str>, request: &Message) -> bool {
    let (Some(given), Some(ruri)) = (digest_uri, request.request_uri_str()) else {
        return false;
    };
    match (Uri::parse(given), Uri::parse(ruri)) {
        (Ok(a), Ok(b)) => a == b,
        _ => given == ruri,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A nonce issued at `time`, told apart from others of that time by `n`.
    fn nonce(time: u64, n: u8) -> Nonce {
        let mut octets = [n; digest::NONCE_BYTES];
        octets[..8].copy_from_slice(&time.to_be_bytes());
        octets
    }

    #[test]
    fn nonce_counts_must_rise_and_memory_is_bounded() {
        let mut uses = NonceUses::new(2);
        let (a, b, c, d) = (nonce(100, 1), nonce(101, 2), nonce(102, 3), nonce(500, 4));
        assert_eq!(uses.record(&a, 1, 100, 300), Use::Fresh);
        assert_eq!(uses.record(&a, 1, 101, 300), Use::Replay);
        assert_eq!(uses.record(&a, 2, 101, 300), Use::Fresh);
        assert_eq!(uses.record(&b, 1, 101, 300), Use::Fresh);
        // Full: a (the oldest) is forgotten, and with it everything issued up to 100.
        assert_eq!(uses.record(&c, 1, 102, 300), Use::Fresh);
        assert_eq!(uses.record(&a, 3, 102, 300), Use::Unknown);
        assert!(uses.seen.len() <= 2);
        // Expired nonces are dropped as time passes.
        assert_eq!(uses.record(&d, 1, 500, 300), Use::Fresh);
        assert_eq!(uses.seen.len(), 1);
    }

    #[test]
    fn the_issue_time_is_read_back_from_a_nonce() {
        let secret = NonceSecret::new([1; 32]);
        let issued = secret.issue(1_700_000_123, [9; 8]);
        let octets = digest::nonce_octets(&issued).expect("a nonce of ours");
        assert_eq!(issue_time(&octets), 1_700_000_123);
        assert_eq!(digest::nonce_octets("not a nonce"), None);
    }
}
