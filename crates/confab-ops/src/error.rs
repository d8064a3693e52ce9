//! What an operation refuses, in an operator's words, with what to do about it. A refusal
//! changes nothing: an operation checks what it can before its store transaction, and the
//! store checks the rest inside it.

use confab_store::{Address, StoreError};

/// Why an operation did not happen.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpsError {
    /// The address is in a SIP domain the deployment does not serve.
    #[error(
        "no SIP domain '{domain}' in this deployment ({}); to serve it, add it with \
         `confab domain add {domain}`",
        listed("its domains", known)
    )]
    UnknownDomain {
        /// The domain asked for, in lower case.
        domain: String,
        /// The deployment's domains.
        known: Vec<String>,
    },
    /// The pool does not exist.
    #[error(
        "no pool '{pool}' in this deployment ({}); give one of its pools with --pool",
        listed("its pools", known)
    )]
    UnknownPool {
        /// The pool asked for.
        pool: String,
        /// The deployment's pools.
        known: Vec<String>,
    },
    /// A user with that address exists already.
    #[error(
        "user {address} exists already; change its password with `confab user passwd \
         {address}`, or choose another address"
    )]
    UserExists {
        /// The address.
        address: Address,
    },
    /// No user has that address.
    #[error(
        "no user {address} in this deployment; check the address (the domain matches in any \
         case, the user part exactly) or list the users with `confab user list`"
    )]
    UnknownUser {
        /// The address.
        address: Address,
    },
    /// The password cannot be used.
    #[error("the password cannot be used: {reason}")]
    Password {
        /// What is wrong with it (never the password itself).
        reason: &'static str,
    },
    /// The display name cannot be used.
    #[error("invalid display name: {reason}")]
    DisplayName {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The management store refused or failed; its message says what to do.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// `its pools: a, b`, or that there are none.
fn listed(what: &str, names: &[String]) -> String {
    if names.is_empty() {
        format!("{what}: none yet; a first `confab serve` creates the defaults")
    } else {
        format!("{what}: {}", names.join(", "))
    }
}
