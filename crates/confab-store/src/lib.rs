//! # confab-store — the management store of a Confab deployment
//!
//! This crate owns the schema and its migrations, and the management store behind one
//! interface on two backends: SQLite, one file in the data directory (the embedded default),
//! and PostgreSQL, selected by a `postgres://` store URL and shared by the front-ends of many
//! pools. The store holds the topology, users and their home pools, credentials (digest HA1
//! values per realm and algorithm, never plain text), contact lists, presence rules, change
//! records and the audit log, and takes the write-behind of front-ends' hot state.
//!
//! It knows no SIP: it stores and returns records, and leaves their meaning to the layers
//! above. It is not where administrative changes are decided either: every mutation of a
//! deployment arrives through `confab-ops`, which records the change first.
//!
//! Nothing is implemented yet; the schema arrives with the first store issue.

#![forbid(unsafe_code)]
#![warn(missing_docs)]
