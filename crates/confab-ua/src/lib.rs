//! # confab-ua — a SIP user agent for Confab's tests and operators
//!
//! This crate owns a SIP user agent built on `confab-sip` that registers, subscribes to
//! presence and sends instant messages against a pool, as a real client does. It serves
//! the integration tests, the synthetic transactions an operator runs daily
//! (`confab test registration|im|presence`), the real-SIP checks of each migration phase, and
//! the load generator (`confab-load`).
//!
//! The design sets it no prohibition beyond the layering: it builds on `confab-sip` and on no
//! other Confab crate, so that `confab-ops` can reach SIP through it without reaching into the
//! server.
//!
//! Nothing is implemented yet.

#![forbid(unsafe_code)]
#![warn(missing_docs)]
