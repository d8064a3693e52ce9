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
//! Built so far: [`control`] (administrators signing in, roles and rights, the change
//! context every mutation takes, standard change records), [`users`] (add, list, show, set a
//! password, disable, enable, remove), [`moves`] of users between pools (single and bulk,
//! crash-safe batches), users' [`contacts`] (contact lists, groups and presence rules) and
//! the [`topology`]: documents validated, diffed, published as versions and exported, pools
//! and domains, with the defaults of a first start. Every public function that changes the
//! store takes a [`control::ChangeContext`], except: the defaults of a first start and the
//! first administrator ([`control::bootstrap`]), which the deployment makes before it has an
//! administrator; [`control::sign_in`], which only appends the sign-in to the audit log; and
//! the functions of [`control`] that move a change record through its life (`request`,
//! `decide`, `implement`, `review`, `emergency`, the rollbacks), which take the signed-in
//! [`control::Operator`], check its rights and make the context themselves. Normal changes
//! wait for another administrator's approval, emergency changes take a snapshot and await
//! review, and every change Confab can make by itself it can also undo ([`control::inverse`]).
//! [`backup`]s: archives written, proved restorable, restored whole or per user, and the
//! per-pool inventory. Not yet: migration.
//!
//! ```no_run
//! # async fn demo(store: &confab_store::Store, token: &str) -> Result<(), confab_ops::OpsError> {
//! use confab_ops::control::{self, Right};
//! use confab_ops::{users, Password};
//! use confab_store::{Address, ChangeClass};
//!
//! // Who acts, and the proof that they may: without a context, no mutation compiles.
//! let operator = control::sign_in(store, "admin", token, "cli").await?;
//! let ctx = control::authorize(&operator, Right::ManageUsers, ChangeClass::Standard)?;
//! let alice = users::add(store, &ctx, users::NewAccount {
//!     address: Address::parse("alice@localhost")?,
//!     pool: None, // the pool `default`
//!     display_name: Some("Alice".into()),
//!     password: Password::new("correct horse battery".into())?,
//! })
//! .await?;
//! assert_eq!(alice.credentials.len(), 3); // MD5, SHA-256, SHA-512-256; never the password
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod backup;
pub mod contacts;
pub mod control;
mod error;
pub mod legacy_config;
pub mod migrate;
pub mod migration;
pub mod moves;
mod password;
pub mod sources;
pub mod status;
pub mod synthetic;
pub mod time;
pub mod topology;
pub mod users;

pub use error::{ErrorKind, OpsError};
pub use password::{Password, ALGORITHMS, MAX_LENGTH, RECOMMENDED_LENGTH};

#[cfg(test)]
mod tests;
