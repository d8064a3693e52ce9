//! The transports: one file per transport, all feeding the one request-handling path
//! ([`crate::handler::Handler`]).
//!
//! - `udp.rs`: datagrams; each is one message, answered per RFC 3261 §18.2.2 / RFC 3581.
//! - `tcp.rs` and `tls.rs`: byte streams cut into messages by `confab_sip`'s `StreamFramer`
//!   (`stream.rs` holds the loop they share, with its idle and header timeouts).
//! - `ws.rs`: SIP over WebSocket (RFC 7118), plain or over TLS; one WebSocket message is one
//!   SIP message.
//!
//! Connection-oriented transports register every connection in the
//! [`connections::ConnectionTable`], which caps their number and lets later layers reuse a
//! connection to a peer. Responses to a request always leave on the connection it came on;
//! [`Transmitter`] sends outside a request's own answer (retransmissions, later the proxy).

pub mod connections;
pub(crate) mod stream;
pub(crate) mod tcp;
pub(crate) mod tls;
mod transmit;
pub(crate) mod udp;
pub(crate) mod ws;

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Limits;
use crate::handler::Handler;
use connections::ConnectionTable;
pub use transmit::Transmitter;

/// A SIP transport as named in listen URIs and Via headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// UDP datagrams.
    Udp,
    /// TCP streams.
    Tcp,
    /// TLS over TCP.
    Tls,
    /// WebSocket over TCP (RFC 7118).
    Ws,
    /// WebSocket over TLS (RFC 7118).
    Wss,
}

impl Transport {
    /// Every transport, in the order listen URIs list them.
    pub const ALL: [Transport; 5] = [
        Transport::Udp,
        Transport::Tcp,
        Transport::Tls,
        Transport::Ws,
        Transport::Wss,
    ];

    /// The listen-URI scheme (`udp`, `tcp`, `tls`, `ws`, `wss`).
    pub fn scheme(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
            Transport::Ws => "ws",
            Transport::Wss => "wss",
        }
    }

    /// The transport from a listen-URI scheme, case-insensitively.
    pub fn from_scheme(s: &str) -> Option<Transport> {
        Transport::ALL
            .into_iter()
            .find(|t| t.scheme().eq_ignore_ascii_case(s))
    }

    /// The Via transport token (`UDP`, `TCP`, `TLS`, `WS`, `WSS`).
    pub fn via_token(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
            Transport::Ws => "WS",
            Transport::Wss => "WSS",
        }
    }

    /// True for the transports that need a certificate.
    pub fn is_secure(self) -> bool {
        matches!(self, Transport::Tls | Transport::Wss)
    }

    /// True for datagram transports, whose responses are routed by Via.
    pub fn is_datagram(self) -> bool {
        self == Transport::Udp
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.scheme())
    }
}

/// Where a message came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Source {
    /// The transport it arrived on.
    pub transport: Transport,
    /// The peer's address (the UDP source, or the connection's remote end).
    pub peer: SocketAddr,
    /// Our address it arrived at.
    pub local: SocketAddr,
}

/// What every transport task shares: the handler, the limits, the connection table and the
/// shutdown signal.
pub(crate) struct Shared {
    pub(crate) handler: Handler,
    pub(crate) limits: Limits,
    pub(crate) connections: Arc<ConnectionTable>,
    pub(crate) shutdown: CancellationToken,
    pub(crate) tasks: TaskTracker,
}

/// How long an accept loop waits after an error (out of file descriptors, say) before it
/// tries again, so that it does not spin.
pub(crate) const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Sleeps for `d` unless shutdown comes first; true when shutting down.
pub(crate) async fn pause(shared: &Shared, d: Duration) -> bool {
    tokio::select! {
        _ = shared.shutdown.cancelled() => true,
        _ = tokio::time::sleep(d) => false,
    }
}
