//! The configuration of one front-end's SIP side: where it listens ([`ListenUri`]), its TLS
//! certificate ([`TlsFiles`]), its resource limits ([`Limits`]), its transaction timers
//! ([`TimerConfig`]) and its response routing choice (`force_rport`), all in
//! [`ServerConfig`]; and what its registrar, proxy and messaging do ([`ServiceConfig`]:
//! the SIP domains it is authoritative for, digest nonces, registration expiry, password
//! guessing throttles, offline messages). Each is checked once by its `validate`, before
//! anything is bound; reading files, environment variables and the command line is the
//! binary's job.
//!
//! [`ServiceConfig`] is a separate struct, handed to [`crate::Router::new`], so that a
//! front-end without the router (the transport tests, `confab serve` before it is wired)
//! needs none of it.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use crate::error::ConfigError;
pub use crate::service_config::{
    OfflineLimits, PresenceConfig, ServiceConfig, ThrottleConfig, DEFAULT_DIGEST_ALGORITHMS,
};
use crate::transactions::TimerConfig;
use crate::transport::Transport;

/// One listener: a transport and the local address to bind, written
/// `TRANSPORT://IP:PORT` (`udp://0.0.0.0:5060`, `tls://[::1]:5061`, `ws://127.0.0.1:8080`).
/// Port 0 binds an ephemeral port; [`crate::Server::local_addrs`] tells which.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ListenUri {
    /// The transport.
    pub transport: Transport,
    /// The local address.
    pub addr: SocketAddr,
}

impl ListenUri {
    /// A listener on `addr` over `transport`.
    pub fn new(transport: Transport, addr: SocketAddr) -> Self {
        ListenUri { transport, addr }
    }
}

impl fmt::Display for ListenUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // SocketAddr's Display already brackets IPv6 addresses.
        write!(f, "{}://{}", self.transport.scheme(), self.addr)
    }
}

impl FromStr for ListenUri {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |problem| ConfigError::ListenUri {
            uri: s.to_owned(),
            problem,
        };
        let (scheme, rest) = s.split_once("://").ok_or(bad("missing TRANSPORT://"))?;
        let transport = Transport::from_scheme(scheme).ok_or(bad("unknown transport"))?;
        if rest.contains('/') {
            return Err(bad("a path is not allowed"));
        }
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .ok_or(bad("unterminated [IPv6] address"))?;
            let port = after.strip_prefix(':').ok_or(bad("missing :PORT"))?;
            (host, port)
        } else {
            rest.rsplit_once(':').ok_or(bad("missing :PORT"))?
        };
        let ip: IpAddr = if host.eq_ignore_ascii_case("localhost") {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        } else {
            host.parse()
                .map_err(|_| bad("the host must be an IP address (or localhost)"))?
        };
        let port: u16 = port
            .parse()
            .map_err(|_| bad("the port must be a number from 0 to 65535"))?;
        Ok(ListenUri::new(transport, SocketAddr::new(ip, port)))
    }
}

/// The certificate chain and private key of TLS (and WSS) listeners, as PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// Resource limits: what one peer, or many, may hold of the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Open connections (TCP, TLS, WebSocket) at once; more are refused at accept.
    pub max_connections: usize,
    /// The largest SIP message accepted, in octets. A datagram that is larger is dropped;
    /// a stream message that is larger closes its connection.
    pub max_message_size: usize,
    /// A connection with no traffic for this long is closed.
    pub idle_timeout: Duration,
    /// The slow-loris defence: TLS and WebSocket handshakes must finish within this time of
    /// the accept; on TCP and TLS the first message must be complete within this time of
    /// the accept, and every later one within this time of its first octet. Writes that
    /// stall this long also close the connection.
    pub header_timeout: Duration,
    /// Live SIP transactions at once, when the transaction driver is installed
    /// ([`crate::transactions::TransactionDriver`]); a request that would start one more is
    /// answered 503 with Retry-After. This is the overload guard, and what bounds the
    /// memory transactions take: see [`Limits::DEFAULT_MAX_TRANSACTIONS`].
    pub max_transactions: usize,
}

impl Limits {
    /// Default [`Limits::max_connections`].
    pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;
    /// Default [`Limits::max_message_size`]: the largest UDP payload.
    pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 65_535;
    /// Default [`Limits::idle_timeout`].
    pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
    /// Default [`Limits::header_timeout`].
    pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
    /// Default [`Limits::max_transactions`]: enough for 20,000 non-INVITE transactions a
    /// second over UDP without a 503, in about 450 MB when full.
    ///
    /// Over UDP nearly every live transaction is a completed one absorbing retransmissions:
    /// a server transaction for Timer J, 64·T1 = 32 s, a client transaction for Timer K,
    /// T4 = 5 s (RFC 3261 §17.2.2, §17.1.2.2); next to those, the milliseconds before the
    /// answer hardly count. Challenges (401, 407) leave no transaction, so a registration is
    /// one transaction, not two. At 20,000 a second that is 640,000 server transactions,
    /// 740,000 if every one is a relayed MESSAGE with its client transaction too; 800,000
    /// leaves room for that mix and a burst on top. A completed server transaction keeps its
    /// final response and under 200 bytes more (`confab-sip`'s `transaction_memory` test),
    /// some 0.55 kB for a typical 200 OK with the allocator's due, so a full layer takes
    /// about 450 MB; a completed client transaction keeps under 200 bytes. Raise it with
    /// the rate to be absorbed, or
    /// lower it to bound memory on a small machine: a request over the cap gets 503 with
    /// Retry-After, and the transactions held finish normally.
    pub const DEFAULT_MAX_TRANSACTIONS: usize = 800_000;

    /// Checks every limit against its allowed range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let limit = |name, value: String, allowed| {
            Err(ConfigError::Limit {
                name,
                value,
                allowed,
            })
        };
        if !(1..=1_000_000).contains(&self.max_connections) {
            return limit(
                "max_connections",
                self.max_connections.to_string(),
                "use 1 to 1000000 (and raise the open-files limit, ulimit -n, to match)",
            );
        }
        if !(1024..=16 * 1024 * 1024).contains(&self.max_message_size) {
            return limit(
                "max_message_size",
                self.max_message_size.to_string(),
                "use 1024 to 16777216 octets (65535 is the largest UDP datagram)",
            );
        }
        let secs = |d: Duration| format!("{} ms", d.as_millis());
        if self.idle_timeout < Duration::from_secs(1)
            || self.idle_timeout > Duration::from_secs(86_400)
        {
            return limit(
                "idle_timeout",
                secs(self.idle_timeout),
                "use 1s to 24h, e.g. 300s",
            );
        }
        if self.header_timeout < Duration::from_millis(100)
            || self.header_timeout > Duration::from_secs(3600)
        {
            return limit(
                "header_timeout",
                secs(self.header_timeout),
                "use 100ms to 1h, e.g. 10s",
            );
        }
        if !(1..=10_000_000).contains(&self.max_transactions) {
            return limit(
                "max_transactions",
                self.max_transactions.to_string(),
                "use 1 to 10000000 (each live transaction holds a few kB)",
            );
        }
        Ok(())
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: Self::DEFAULT_MAX_CONNECTIONS,
            max_message_size: Self::DEFAULT_MAX_MESSAGE_SIZE,
            idle_timeout: Self::DEFAULT_IDLE_TIMEOUT,
            header_timeout: Self::DEFAULT_HEADER_TIMEOUT,
            max_transactions: Self::DEFAULT_MAX_TRANSACTIONS,
        }
    }
}

/// Everything [`crate::Server::bind`] needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// The listeners, in the order they are reported.
    pub listen: Vec<ListenUri>,
    /// Certificate and key; required when a `tls://` or `wss://` listener is configured.
    pub tls: Option<TlsFiles>,
    /// Resource limits.
    pub limits: Limits,
    /// The transaction timers T1, T2 and T4 (RFC 3261 §17.1.1.1), used when the transaction
    /// driver is installed; valid by construction ([`TimerConfig::new`]).
    pub timers: TimerConfig,
    /// Answer every UDP request at its source port, as if its top Via carried `rport`
    /// (RFC 3581). Without it, a request without `rport` is answered at the sent-by port
    /// (RFC 3261 §18.2.2), which a client behind NAT never receives.
    pub force_rport: bool,
}

impl ServerConfig {
    /// These listeners, no TLS files, default limits, RFC 3261 timers and response routing.
    pub fn new(listen: Vec<ListenUri>) -> Self {
        ServerConfig {
            listen,
            tls: None,
            limits: Limits::default(),
            timers: TimerConfig::RFC3261,
            force_rport: false,
        }
    }

    /// Checks the configuration as a whole.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.listen.is_empty() {
            return Err(ConfigError::NoListeners);
        }
        for (i, l) in self.listen.iter().enumerate() {
            // Port 0 asks for a fresh port each time, so it cannot collide.
            if l.addr.port() != 0 && self.listen[..i].contains(l) {
                return Err(ConfigError::DuplicateListener { uri: l.to_string() });
            }
            if l.transport.is_secure() && self.tls.is_none() {
                return Err(ConfigError::TlsFilesMissing { uri: l.to_string() });
            }
        }
        self.limits.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_uris_parse_and_print() {
        for (s, printed) in [
            ("udp://127.0.0.1:5060", "udp://127.0.0.1:5060"),
            ("TCP://0.0.0.0:0", "tcp://0.0.0.0:0"),
            ("tls://[::1]:5061", "tls://[::1]:5061"),
            ("ws://localhost:8080", "ws://127.0.0.1:8080"),
            ("wss://[::]:443", "wss://[::]:443"),
        ] {
            let uri: ListenUri = s.parse().unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!(uri.to_string(), printed);
        }
    }

    #[test]
    fn bad_listen_uris_say_what_is_wrong() {
        for (s, problem) in [
            ("127.0.0.1:5060", "missing TRANSPORT://"),
            ("sctp://127.0.0.1:5060", "unknown transport"),
            ("udp://127.0.0.1", "missing :PORT"),
            ("udp://example.com:5060", "IP address"),
            ("udp://127.0.0.1:70000", "0 to 65535"),
            ("ws://127.0.0.1:80/sip", "path"),
            ("tls://[::1:5061", "unterminated"),
        ] {
            let e = s.parse::<ListenUri>().expect_err(s).to_string();
            assert!(e.contains(problem), "{s}: {e}");
            assert!(
                e.contains("udp://0.0.0.0:5060"),
                "{s}: the fix is shown: {e}"
            );
        }
    }

    #[test]
    fn validation() {
        let udp: ListenUri = "udp://127.0.0.1:5060".parse().expect("uri");
        let tls: ListenUri = "tls://127.0.0.1:5061".parse().expect("uri");
        assert!(ServerConfig::new(vec![udp]).validate().is_ok());
        assert!(matches!(
            ServerConfig::new(vec![]).validate(),
            Err(ConfigError::NoListeners)
        ));
        assert!(matches!(
            ServerConfig::new(vec![udp, udp]).validate(),
            Err(ConfigError::DuplicateListener { .. })
        ));
        let eph: ListenUri = "udp://127.0.0.1:0".parse().expect("uri");
        assert!(ServerConfig::new(vec![eph, eph]).validate().is_ok());
        assert!(matches!(
            ServerConfig::new(vec![tls]).validate(),
            Err(ConfigError::TlsFilesMissing { .. })
        ));
        let mut c = ServerConfig::new(vec![udp]);
        c.limits.max_message_size = 10;
        assert!(matches!(
            c.validate(),
            Err(ConfigError::Limit {
                name: "max_message_size",
                ..
            })
        ));
        let mut c = ServerConfig::new(vec![udp]);
        c.limits.max_transactions = 0;
        assert!(matches!(
            c.validate(),
            Err(ConfigError::Limit {
                name: "max_transactions",
                ..
            })
        ));
    }
}
