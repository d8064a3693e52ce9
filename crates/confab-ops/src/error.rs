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
    /// The user's contact list has no group of that name.
    #[error(
        "{user} has no contact group '{group}'; add it with `confab contacts group add {user} {group:?}`, or see the groups with `confab contacts list {user}`"
    )]
    UnknownContactGroup {
        /// Whose list.
        user: Address,
        /// The group asked for.
        group: String,
    },
    /// The user's contact list has a group of that name already.
    #[error("{user} has a contact group '{group}' already; choose another name")]
    ContactGroupExists {
        /// Whose list.
        user: Address,
        /// The group.
        group: String,
    },
    /// The group still holds contacts.
    #[error(
        "contact group '{group}' of {user} still holds {contacts} contact(s); remove them or add them to another group with `confab contacts add {user} CONTACT --update --group GROUP`, or give --move-to-no-group to keep them in no group"
    )]
    ContactGroupNotEmpty {
        /// Whose list.
        user: Address,
        /// The group.
        group: String,
        /// How many contacts it holds.
        contacts: usize,
    },
    /// The user's contact list holds that address already.
    #[error(
        "{contact} is in the contact list of {user} already; give --update to change its name or group, or remove it first with `confab contacts remove {user} {contact}`"
    )]
    ContactExists {
        /// Whose list.
        user: Address,
        /// The contact.
        contact: Address,
    },
    /// The user's contact list does not hold that address.
    #[error(
        "{contact} is not in the contact list of {user}; see the list with `confab contacts list {user}` (the domain matches in any case, the user part exactly)"
    )]
    UnknownContact {
        /// Whose list.
        user: Address,
        /// The contact.
        contact: Address,
    },
    /// The user has no presence rule for that watcher.
    #[error(
        "{user} has no presence rule for {watcher}; see the rules with `confab presence-rules list {user}`"
    )]
    UnknownPresenceRule {
        /// Whose rules.
        user: Address,
        /// The watcher, `user@domain` or `@domain`.
        watcher: String,
    },
    /// A move names no users, or names them twice over.
    #[error("{0}")]
    MoveSelection(&'static str),
    /// A move from a pool to itself.
    #[error("the users would move from pool '{pool}' to '{pool}'; give another pool with --to")]
    SamePool {
        /// The pool.
        pool: String,
    },
    /// The administrator's roles do not grant what the operation needs.
    #[error(
        "administrator '{administrator}' may not {right}; an administrator with the role {roles} \
         can, or one with the admin right can give '{administrator}' such a role"
    )]
    Denied {
        /// Who asked.
        administrator: String,
        /// What was asked, in words.
        right: String,
        /// The roles that grant it.
        roles: String,
    },
    /// A sign-in with an unknown name or a wrong token.
    #[error(
        "cannot sign in as administrator '{name}': no such administrator, or not its token; \
         check the credentials file in the data directory (or CONFAB_ADMIN and \
         CONFAB_ADMIN_TOKEN)"
    )]
    SignIn {
        /// The name given.
        name: String,
    },
    /// The administrator is disabled.
    #[error("administrator '{name}' is disabled; another administrator with the admin role can enable it")]
    Disabled {
        /// The name.
        name: String,
    },
    /// A mutation reached with a context authorised for something else.
    #[error("this change was authorised to {authorised}, not to {wanted}; authorise it for what it does")]
    OutsideChange {
        /// What the context allows.
        authorised: String,
        /// What the operation needed.
        wanted: String,
    },
    /// A decision on a change by the administrator who requested it (four eyes).
    #[error(
        "{name} requested change {id}; another administrator with the approver role decides it"
    )]
    OwnChange {
        /// The change.
        id: i64,
        /// Its requester.
        name: String,
    },
    /// A change implemented before it was approved.
    #[error(
        "change {id} is {state}, not approved; an administrator with the approver role other \
         than its requester approves it with `confab change approve {id}` first"
    )]
    NotApproved {
        /// The change.
        id: i64,
        /// Its state.
        state: String,
    },
    /// A change record whose operation this version cannot carry out.
    #[error("change {id} carries an operation this confab cannot carry out ({reason}); implement it with the version that requested it")]
    Operation {
        /// The change.
        id: i64,
        /// Why.
        reason: String,
    },
    /// A change too large for a standard change: it needs a normal change's approval.
    #[error(
        "{what} is a normal change, not a standard one: request it (`confab change request`, \
         or the command itself asks for it), have another administrator approve it, then \
         implement it"
    )]
    NeedsApproval {
        /// What was asked.
        what: String,
    },
    /// A move stopped part-way: what moved stays moved.
    #[error("{source}\n{done} of {total} user(s) moved before this; {again} moves the rest")]
    MoveInterrupted {
        /// Users moved before the failure.
        done: usize,
        /// Users planned.
        total: usize,
        /// The command that completes it.
        again: String,
        /// What failed.
        source: Box<OpsError>,
    },
    /// A pool put into maintenance that has no pair to serve its users.
    #[error(
        "pool '{pool}' has no paired pool to serve its users during maintenance: pair it with \
         another front-end pool in the topology (pair = \"…\") and publish that first"
    )]
    NoPair {
        /// The pool.
        pool: String,
    },
    /// A backup archive that cannot be used.
    #[error("{problem}; nothing was changed")]
    Backup {
        /// What is wrong, and where.
        problem: String,
    },
    /// A backup file that cannot be read or written.
    #[error("{path}: {reason}")]
    BackupFile {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// A migration step that cannot be taken.
    #[error("{problem}")]
    Migration {
        /// What is wrong, and what to do.
        problem: String,
    },
    /// A change that cannot be rolled back.
    #[error("change {id} cannot be rolled back: {reason}")]
    NoRollback {
        /// The change.
        id: i64,
        /// Why.
        reason: String,
    },
    /// The snapshot before an emergency change could not be written.
    #[error(
        "cannot write the snapshot before the change to {path}: {reason}; nothing was changed"
    )]
    Snapshot {
        /// Where.
        path: String,
        /// Why.
        reason: String,
    },
    /// The system's random source failed.
    #[error("no randomness for a new secret: {0}")]
    Random(String),
    /// The topology document has problems; each says where and how to fix it.
    #[error(
        "the topology document has {} problem(s); nothing was changed: {}",
        problems.len(),
        problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
    )]
    InvalidTopology {
        /// Every problem, in document order (warnings included).
        problems: Vec<crate::topology::Problem>,
    },
    /// The topology could not be written out as a document.
    #[error("cannot write the topology as TOML: {reason}")]
    Export {
        /// Why.
        reason: String,
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

/// What kind of failure an error is, for callers that answer in a protocol of their own (the
/// admin API's HTTP status codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The caller is not signed in.
    SignIn,
    /// Signed in, but not allowed (roles, a disabled administrator, a change not approved).
    Denied,
    /// What was named does not exist.
    NotFound,
    /// It conflicts with the deployment's state (exists already, in use, changed meanwhile).
    Conflict,
    /// The request itself is wrong: fix it and ask again.
    Invalid,
    /// The store cannot be reached or stayed busy: ask again later.
    Unavailable,
    /// Something the caller cannot fix.
    Internal,
}

impl OpsError {
    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        use OpsError as E;
        match self {
            E::SignIn { .. } => ErrorKind::SignIn,
            E::Denied { .. }
            | E::OwnChange { .. }
            | E::Disabled { .. }
            | E::OutsideChange { .. }
            | E::NotApproved { .. }
            | E::NeedsApproval { .. } => ErrorKind::Denied,
            E::UnknownDomain { .. }
            | E::UnknownPool { .. }
            | E::UnknownUser { .. }
            | E::UnknownContactGroup { .. }
            | E::UnknownContact { .. }
            | E::UnknownPresenceRule { .. } => ErrorKind::NotFound,
            E::UserExists { .. }
            | E::ContactGroupExists { .. }
            | E::ContactGroupNotEmpty { .. }
            | E::ContactExists { .. }
            | E::NoRollback { .. }
            | E::Migration { .. }
            | E::NoPair { .. } => ErrorKind::Conflict,
            E::Password { .. }
            | E::DisplayName { .. }
            | E::MoveSelection(_)
            | E::SamePool { .. }
            | E::InvalidTopology { .. }
            | E::BackupFile { .. }
            | E::Backup { .. } => ErrorKind::Invalid,
            E::MoveInterrupted { source, .. } => source.kind(),
            E::Store(e) => match e {
                StoreError::Invalid { .. } => ErrorKind::Invalid,
                StoreError::NotFound { .. } => ErrorKind::NotFound,
                StoreError::AlreadyExists { .. } | StoreError::Conflict { .. } => {
                    ErrorKind::Conflict
                }
                StoreError::Unavailable { .. } | StoreError::Busy { .. } => ErrorKind::Unavailable,
                _ => ErrorKind::Internal,
            },
            _ => ErrorKind::Internal,
        }
    }
}
