//! What a user agent is told before it binds: [`UaConfig`] and the policies for answering
//! incoming requests. The configuration is plain data; [`crate::UserAgent::bind`] checks it
//! once and keeps it unchanged for the user agent's life.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use confab_sip::digest::{self, Algorithm};
use confab_sip::transaction::{Reliability, TimerConfig};
use confab_sip::Uri;

use crate::error::UaError;

/// The transport a user agent speaks. One user agent uses exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Transport {
    /// SIP over UDP: the transaction layer retransmits.
    Udp,
    /// SIP over TCP: connections are opened on demand and accepted on the bound address.
    Tcp,
}

impl Transport {
    /// The token written in Via (`UDP`, `TCP`).
    pub fn via_token(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
        }
    }

    /// Whether the transport delivers reliably, which decides the retransmission timers.
    pub fn reliability(self) -> Reliability {
        match self {
            Transport::Udp => Reliability::Unreliable,
            Transport::Tcp => Reliability::Reliable,
        }
    }
}

/// The secret a user agent answers digest challenges with.
#[derive(Clone, PartialEq, Eq)]
pub enum Secret {
    /// The password: any algorithm a server offers can be answered.
    Password(String),
    /// Precomputed HA1 values (`H(username:realm:password)` in hex) per base algorithm, as
    /// a registrar stores them; only challenges of these algorithms can be answered.
    Ha1(Vec<(Algorithm, String)>),
}

impl Secret {
    /// The HA1 for `alg`'s base algorithm, if this secret can produce it.
    pub(crate) fn ha1(&self, alg: Algorithm, username: &str, realm: &str) -> Option<String> {
        match self {
            Secret::Password(p) => Some(digest::ha1(alg.base(), username, realm, p)),
            Secret::Ha1(list) => list
                .iter()
                .find(|(a, _)| a.base() == alg.base())
                .map(|(_, h)| h.clone()),
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Secret::Password(_) => f.write_str("Password(..)"),
            Secret::Ha1(list) => {
                let algs: Vec<_> = list.iter().map(|(a, _)| a.as_str()).collect();
                write!(f, "Ha1({algs:?})")
            }
        }
    }
}

/// What the user agent does with an incoming INVITE after the optional `180 Ringing`
/// ([`UaConfig::ring`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InviteAnswer {
    /// Leave the answer to whoever takes the [`crate::Incoming`]; if nobody answers within
    /// [`UaConfig::answer_timeout`], the user agent answers `480 Temporarily Unavailable`.
    Manual,
    /// Answer `200 OK` after `after`, with `sdp` as the body, or [`crate::minimal_sdp`] when
    /// `None`.
    Accept {
        /// How long to ring before answering.
        after: Duration,
        /// The SDP answer.
        sdp: Option<String>,
    },
    /// Answer at once with this final status (`486 Busy Here`, `480`, `603 Decline` …).
    Reject {
        /// A status code from 300 to 699.
        status: u16,
        /// Its reason phrase.
        reason: String,
    },
}

/// Everything a user agent needs to know. Build it with [`UaConfig::new`] and struct-update
/// syntax:
///
/// ```
/// use confab_ua::{Secret, Transport, UaConfig};
/// let config = UaConfig {
///     transport: Transport::Tcp,
///     server: Some("127.0.0.1:5060".parse().unwrap()),
///     secret: Some(Secret::Password("correct horse".into())),
///     ..UaConfig::new("sip:alice@example.com")
/// };
/// assert_eq!(config.username, None); // the user part of the AOR is used
/// ```
#[derive(Debug, Clone)]
pub struct UaConfig {
    /// The transport (default UDP).
    pub transport: Transport,
    /// The address to bind (default `127.0.0.1:0`: loopback, a free port). Its actual
    /// address goes into Via and Contact.
    pub local: SocketAddr,
    /// The outbound proxy: every request outside a dialog is sent here. Without one, the
    /// Request-URI's host must be an IP address (no DNS is done).
    pub server: Option<SocketAddr>,
    /// The address-of-record, e.g. `sip:alice@example.com`: From of every request, To of
    /// REGISTER.
    pub aor: String,
    /// The digest user name; the AOR's user part when `None`.
    pub username: Option<String>,
    /// The secret for digest authentication; without one, a challenge ends the request with
    /// [`UaError::NoCredentials`].
    pub secret: Option<Secret>,
    /// The display name in From.
    pub display_name: Option<String>,
    /// User-Agent of requests and Server of responses.
    pub user_agent: String,
    /// T1, the round-trip estimate the retransmission timers start from (RFC 3261: 500 ms).
    /// Tests on loopback use a few milliseconds to make loss cheap to recover from.
    pub t1: Duration,
    /// T2, the longest retransmission interval (RFC 3261: 4 s; raised to T1 if below it).
    pub t2: Duration,
    /// T4, how long a message may stay in the network (RFC 3261: 5 s).
    pub t4: Duration,
    /// Answer OPTIONS with `200 OK` at once (default true). The request is delivered as an
    /// [`crate::Incoming`] either way.
    pub auto_options: bool,
    /// Answer MESSAGE with `200 OK` at once (default true).
    pub auto_message: bool,
    /// Send `180 Ringing` as soon as an INVITE arrives (default true).
    pub ring: bool,
    /// What to answer an INVITE with (default [`InviteAnswer::Manual`]).
    pub invite: InviteAnswer,
    /// How long a request left to the application may wait for its answer before the user
    /// agent answers it itself (default 32 s).
    pub answer_timeout: Duration,
    /// How long a call waits for the final response to its INVITE once it is ringing
    /// before it cancels (default 180 s, RFC 3261 Timer C).
    pub invite_timeout: Duration,
    /// Incoming requests buffered for the application; beyond this, requests that need an
    /// answer are refused with `503` and notices are dropped (default 64).
    pub incoming_capacity: usize,
    /// Largest message accepted on a stream (default 65 535 octets).
    pub max_message: usize,
}

impl UaConfig {
    /// Defaults for the given address-of-record: UDP on `127.0.0.1:0`, no server, RFC 3261
    /// timers, OPTIONS and MESSAGE answered, INVITE rung and left to the application.
    pub fn new(aor: impl Into<String>) -> UaConfig {
        UaConfig {
            transport: Transport::Udp,
            local: SocketAddr::from(([127, 0, 0, 1], 0)),
            server: None,
            aor: aor.into(),
            username: None,
            secret: None,
            display_name: None,
            user_agent: concat!("confab-ua/", env!("CARGO_PKG_VERSION")).to_owned(),
            t1: TimerConfig::RFC3261.t1(),
            t2: TimerConfig::RFC3261.t2(),
            t4: TimerConfig::RFC3261.t4(),
            auto_options: true,
            auto_message: true,
            ring: true,
            invite: InviteAnswer::Manual,
            answer_timeout: Duration::from_secs(32),
            invite_timeout: Duration::from_secs(180),
            incoming_capacity: 64,
            max_message: 65_535,
        }
    }

    /// The timer base values, checked.
    pub(crate) fn timers(&self) -> Result<TimerConfig, UaError> {
        TimerConfig::new(self.t1, self.t2.max(self.t1), self.t4)
            .map_err(|e| UaError::Config(format!("timers: {e}")))
    }

    /// Checks everything that can be checked before binding; returns the AOR's parts.
    pub(crate) fn validate(&self) -> Result<AorParts, UaError> {
        self.timers()?;
        let aor = Uri::parse(&self.aor)
            .map_err(|e| UaError::Config(format!("aor {:?} is not a URI: {e}", self.aor)))?;
        let host = aor.host_str().ok_or_else(|| {
            UaError::Config(format!("aor {:?} must be a sip: or sips: URI", self.aor))
        })?;
        let user = aor.user().map(str::to_owned);
        let username = self
            .username
            .clone()
            .or_else(|| user.clone())
            .unwrap_or_default();
        if self.secret.is_some() && username.is_empty() {
            return Err(UaError::Config(
                "a secret needs a user name: set username or use an AOR with a user part".into(),
            ));
        }
        if let InviteAnswer::Reject { status, .. } = self.invite {
            if !(300..=699).contains(&status) {
                return Err(UaError::Config(format!(
                    "invite rejection status {status} is not a final non-2xx status (300-699)"
                )));
            }
        }
        if self.incoming_capacity == 0 {
            return Err(UaError::Config(
                "incoming_capacity must be at least 1".into(),
            ));
        }
        if self.max_message < 1024 {
            return Err(UaError::Config("max_message must be at least 1024".into()));
        }
        let port = aor.port().map(|p| format!(":{p}")).unwrap_or_default();
        Ok(AorParts {
            domain_uri: format!("{}:{host}{port}", aor.scheme_str()),
            user,
            username,
        })
    }
}

/// What [`UaConfig::validate`] learns from the AOR.
#[derive(Debug, Clone)]
pub(crate) struct AorParts {
    /// `sip:example.com`: the Request-URI of REGISTER.
    pub domain_uri: String,
    /// The user part, for Contact.
    pub user: Option<String>,
    /// The digest user name.
    pub username: String,
}
