//! # confab-ops — the operations of a Confab deployment
//!
//! This crate owns every administrative change: topology validation, versioning and
//! publishing; users and their home pools; change control (standard, normal and emergency
//! change records, approvals, post-implementation review, rollback from snapshots); the
//! append-only, hash-chained audit log; backup sets (create, verify, restore) with their
//! per-pool inventory; moves of users between pools; migration plans, coexistence with a
//! legacy pool and importers of legacy users and credentials.
//!
//! It must not bypass change control: every mutation opens or references a change record,
//! writes the audit log and, where the change can be rolled back, takes a snapshot first.
//! Nothing else writes to the management store around it. It reaches SIP only through
//! `confab-ua`.
//!
//! Nothing is implemented yet.

#![forbid(unsafe_code)]
#![warn(missing_docs)]
