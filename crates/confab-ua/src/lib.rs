//! # confab-ua — a SIP user agent for Confab's tests and operators
//!
//! This crate owns a SIP user agent built on `confab-sip`: it registers (with digest
//! authentication), sends and receives OPTIONS and instant messages (RFC 3428 page mode),
//! places and answers calls (INVITE, ACK, BYE, CANCEL), publishes event state (RFC 3903
//! PUBLISH) and subscribes to it (RFC 6665 SUBSCRIBE/NOTIFY), and hands every request it receives
//! to the application with a way to answer it. It serves Confab's integration tests, the
//! synthetic transactions an operator runs (`confab test registration|im|presence`), the
//! real-SIP checks of each migration phase, and the load generator (`confab-load`).
//!
//! It builds on `confab-sip` and on no other Confab crate, so that `confab-ops` can reach SIP
//! through it without reaching into the server.
//!
//! ```no_run
//! use std::time::Duration;
//! use confab_ua::{Secret, UaConfig, UserAgent};
//!
//! # async fn demo() -> Result<(), confab_ua::UaError> {
//! let alice = UserAgent::bind(UaConfig {
//!     server: Some("127.0.0.1:5060".parse().expect("address")),
//!     secret: Some(Secret::Password("correct horse".into())),
//!     ..UaConfig::new("sip:alice@example.com")
//! })
//! .await?;
//! let registration = alice.register(300).await?;
//! assert!(registration.expires > 0);
//! let status = alice.message("sip:bob@example.com", "text/plain", "hello").await?;
//! assert!(status == 200 || status == 202);
//! let mut call = alice.invite("sip:bob@example.com", None).await?;
//! if call.wait_final().await?.is_answered() {
//!     call.bye().await?;
//! }
//! let mut watching = alice
//!     .subscribe("sip:bob@example.com", "presence", "application/pidf+xml", 600)
//!     .await?;
//! let notify = watching.next_notify(Duration::from_secs(5)).await?;
//! println!("bob: {:?} {:?}", notify.state, notify.body_str());
//! let incoming = alice.next_incoming(Duration::from_secs(5)).await?;
//! println!("{} from {}", incoming.method_str(), incoming.source());
//! # Ok(()) }
//! ```
//!
//! ## How it is built
//!
//! A [`UserAgent`] is one identity with one socket (UDP, or a TCP listener and its
//! connections) and one background task, the *core*, which owns the socket and a
//! `confab_sip::transaction::TransactionLayer`: every retransmission and transaction timeout
//! is the layer's. Handles talk to the core over channels and every wait they do is bounded.
//! The task stops when the `UserAgent` is dropped or [`UserAgent::shutdown`] is called.
//!
//! | module | owns |
//! |---|---|
//! | `config` | [`UaConfig`], [`Transport`], [`Secret`], [`InviteAnswer`]: what a user agent is told, checked once at bind |
//! | `error` | [`UaError`] |
//! | `ua` | [`UserAgent`]: bind, REGISTER, OPTIONS, MESSAGE, any request, INVITE, receiving, shutdown |
//! | `call` | [`Call`]: one INVITE session from either side: responses, CANCEL, BYE, its state |
//! | `subscription` | [`Subscription`], [`Notify`]: a subscription, its NOTIFYs, refresh and end; [`Publication`], [`PublishRequest`]: PUBLISH and its entity-tag |
//! | `incoming` | [`Incoming`]: a received request and its answer; answered for the application if dropped |
//! | `core` | the background task: transaction layer, ACK for 2xx, dialogs (of calls and subscriptions), automatic answers, NOTIFYs of subscriptions, 2xx retransmission |
//! | `dialog` | dialog state (RFC 3261 §12) and the requests sent inside one |
//! | `auth` | answering digest challenges: choice of algorithm, nonce counts, stale, refusal |
//! | `request` | what every message says about this user agent (Via, Contact, From), next hop |
//! | `transport` | the sockets: UDP, or TCP listener and connections; framing |
//! | [`load`] | the load generator behind `confab-load`: scenarios, pacing, the report |
//! | `shared`, `ids` | what handles share with the core; branches, tags, Call-IDs, cnonces |
//!
//! Not supported (yet): TLS and WebSocket, DNS (every address is an IP), strict routing,
//! PRACK and reliable provisional responses, the notifier side of SUBSCRIBE (a SUBSCRIBE
//! received is the application's, as an [`Incoming`]), automatic refresh of subscriptions
//! and publications, `auth-int`.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod auth;
mod call;
mod config;
mod core;
mod dialog;
mod error;
mod ids;
mod incoming;
pub mod load;
mod request;
mod shared;
mod subscription;
mod transport;
mod ua;

use std::net::IpAddr;

pub use call::{Call, CallOutcome};
pub use confab_sip::digest::Algorithm;
pub use confab_sip::Message;
pub use config::{InviteAnswer, Secret, Transport, UaConfig};
pub use dialog::{CallState, EndReason};
pub use error::UaError;
pub use incoming::Incoming;
pub use subscription::{Notify, Publication, PublishRequest, Subscription, SubscriptionState};
pub use ua::{Registration, UaStats, UserAgent};

/// The digest arithmetic behind the credentials the management store keeps (an HA1 per realm
/// and algorithm), for `confab-ops`, which computes them when a password is set and reaches SIP
/// only through this crate.
pub mod credentials {
    pub use confab_sip::digest::{ha1, Algorithm};
}

/// A minimal SDP offer or answer: one audio stream (PCMU) on port 9 (discard) at `ip`, for
/// calls whose media nobody sends.
pub fn minimal_sdp(ip: IpAddr) -> String {
    let family = if ip.is_ipv4() { "IP4" } else { "IP6" };
    format!(
        "v=0\r\no=confab 1 1 IN {family} {ip}\r\ns=-\r\nc=IN {family} {ip}\r\nt=0 0\r\n\
         m=audio 9 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"
    )
}
