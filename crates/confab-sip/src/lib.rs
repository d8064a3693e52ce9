//! # confab-sip — the SIP protocol core of Confab
//!
//! This crate owns the SIP message model: a zero-copy view over one receive buffer
//! ([`Message`]), typed header accessors parsed on demand ([`headers`]), URIs ([`uri`]),
//! framing of datagrams and streams ([`framing`]), building responses and requests
//! ([`builder`]), in-place proxy edits by splicing spans ([`edit`]), the validation verdicts
//! a server turns into responses ([`validate`]), digest authentication arithmetic
//! ([`digest`], [`auth`]) and the RFC 3261 §17 transaction state machines with their timers
//! as data ([`transaction`]).
//!
//! It contains no networking code, reads no clock and spawns no task: callers hand it bytes
//! and, where time matters, the current time, and get back values to act on. That keeps every
//! behaviour deterministic and testable without sockets or sleeps (the approach of
//! quinn-proto and rustls).
//!
//! Parsing never panics on any input, and the hot path (parse a message, read its core
//! headers) performs no heap allocation for messages with up to
//! [`message::INLINE_HEADERS`] header fields.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod auth;
pub mod builder;
pub mod digest;
pub mod edit;
pub mod framing;
pub mod header_name;
pub mod headers;
mod lex;
pub mod message;
pub mod method;
pub mod transaction;
pub mod uri;
pub mod validate;

pub use header_name::HeaderName;
pub use message::{Message, ParseError, ParseErrorKind};
pub use method::Method;
pub use uri::{Host, Scheme, Uri};
