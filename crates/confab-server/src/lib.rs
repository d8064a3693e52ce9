//! # confab-server — one front-end of a Confab pool
//!
//! This crate owns what a running front-end does with SIP traffic: the transports (UDP, TCP,
//! TLS, WebSocket), the driver that feeds `confab-sip`'s transaction state machines with bytes
//! and the current time, the router that sends every request to the home pool of the user it
//! concerns (this pool, another pool, or a legacy pool's next hop), the registrar and location
//! service, presence, messaging and the proxy.
//!
//! It reads users, pools and credentials from the management store but never mutates topology
//! or users, and never calls `confab-ops`: administrative changes belong to the ops layer.
//!
//! What exists today:
//!
//! - [`transport`]: UDP, TCP, TLS, WebSocket (`ws://`, `wss://`) listeners, one file each,
//!   with a connection table, limits on connections and message size, idle timeouts and a
//!   slow-loris defence;
//! - [`handler`]: the one request-handling path behind them: malformed messages answered 400
//!   or dropped, validation verdicts (400, 416, 420, 483, 505), requests handed to the
//!   router, OPTIONS to the server answered, ACK absorbed, other methods refused (405, 481,
//!   501);
//! - [`routing`]: where a response goes (RFC 3261 §18.2.2, RFC 3581);
//! - [`transactions`]: the seam where the transaction layer plugs in, and
//!   [`TransactionDriver`], which runs `confab-sip`'s transaction layer behind it: request
//!   retransmissions absorbed, responses retransmitted on the RFC 3261 timers, a cap on live
//!   transactions (without it, [`Server::bind`], requests are answered statelessly);
//! - [`router`]: what answers a validated request, with the services behind it:
//!   [`registrar`] (REGISTER, RFC 3261 §10 and RFC 3327) over the [`location`] service;
//!   [`authenticate`] (digest challenges, nonce expiry and replay) with the
//!   [`throttle`] against password guessing; the stateful proxy ([`forward`]: rewriting and
//!   routing one copy, [`fork`]: parallel forking, best response, CANCEL); [`messaging`]
//!   (RFC 3428 offline messages); [`presence`] (PUBLISH, SUBSCRIBE/NOTIFY for presence and
//!   watcher information, privacy levels, write-behind); [`respond`] (answers sent after
//!   the handler returned);
//!   configured by [`ServiceConfig`];
//! - [`directory`]: the four store traits the router needs ([`Directory`],
//!   [`RegistrationStore`], [`OfflineMessages`], [`PresenceStore`]), implemented over the management store by
//!   [`store_backed`] and in memory by [`memory`]; [`replica`]: the directory kept in memory
//!   by a front-end, so that authentication needs no store round trip;
//! - [`Server`]: binds a [`ServerConfig`] and runs it until shutdown;
//!   [`Server::bind_with_router`] installs the router.
//!
//! ```no_run
//! # async fn demo() -> Result<(), confab_server::ServerError> {
//! use std::sync::Arc;
//! use confab_server::{Server, ServerConfig, TransactionDriver};
//! let config = ServerConfig::new(vec!["udp://127.0.0.1:0".parse()?]);
//! let driver = Arc::new(TransactionDriver::new(&config));
//! let server = Server::bind_with(config, Some(driver)).await?;
//! println!("listening {}", server.local_addrs()[0]);
//! server.run(async { let _ = tokio::signal::ctrl_c().await; }).await;
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod authenticate;
pub mod blocklist;
pub mod config;
pub mod directory;
pub mod error;
pub mod fork;
pub mod forward;
pub mod handler;
mod ids;
pub mod location;
pub mod memory;
pub mod messaging;
pub mod metrics;
pub mod pools;
pub mod presence;
pub mod registrar;
pub mod replica;
pub mod respond;
pub mod router;
pub mod routing;
mod server;
mod service_config;
pub mod store_backed;
pub mod throttle;
pub mod transactions;
pub mod transport;

/// A digest algorithm, as offered in challenges ([`ServiceConfig::digest_algorithms`]).
pub use confab_sip::digest::Algorithm as DigestAlgorithm;
pub use config::{
    Limits, ListenUri, OfflineLimits, PresenceConfig, ServerConfig, ServiceConfig, ThrottleConfig,
    TlsFiles, DEFAULT_DIGEST_ALGORITHMS,
};
pub use directory::{
    AorBindings, BoxFuture, Credential, Directory, OfflineError, OfflineMessage, OfflineMessages,
    PresenceBatch, PresencePolicyRecord, PresenceStore, RegistrationStore, StoreError,
    StoredBinding, UserRecord,
};
pub use error::{ConfigError, ServerError, TransportError};
pub use replica::{DirectoryReplica, ReplicaUser};
pub use router::{Router, RouterStats, Stores};
pub use server::Server;
pub use transactions::{TimerConfig, TransactionDriver};
pub use transport::{Source, Transmitter, Transport};

/// A TLS acceptor for the certificate and key of `files` (the admin listener's HTTPS uses the
/// SIP listeners' files).
pub fn tls_acceptor(files: &TlsFiles) -> Result<tokio_rustls::TlsAcceptor, ConfigError> {
    transport::tls::acceptor(files)
}
