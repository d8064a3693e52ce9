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
//! Nothing is implemented yet; `confab serve` and this crate's first transports arrive with the
//! next issue.

#![forbid(unsafe_code)]
#![warn(missing_docs)]
