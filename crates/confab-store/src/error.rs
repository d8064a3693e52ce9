//! The store's errors. Each variant says what went wrong in an operator's words and what to do
//! about it; the backend's own error stays attached as the source for logs.

use std::fmt;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A value given to the store cannot be stored as it is.
    #[error("invalid {what} '{value}': {fix}")]
    Invalid {
        /// What the value is (a user address, a pool name …).
        what: &'static str,
        /// The value given.
        value: String,
        /// How to write it instead.
        fix: String,
    },
    /// The store location (data directory or store URL) cannot be used.
    #[error("invalid store location '{location}': {fix}")]
    Location {
        /// The location as given (a URL shown without its password).
        location: String,
        /// How to write it instead.
        fix: String,
    },
    /// The named record does not exist.
    #[error("no {what} '{name}' in the management store; {fix}")]
    NotFound {
        /// The kind of record.
        what: &'static str,
        /// Its name.
        name: String,
        /// What to do.
        fix: &'static str,
    },
    /// A record of that name exists already.
    #[error("{what} '{name}' already exists in the management store; {fix}")]
    AlreadyExists {
        /// The kind of record.
        what: &'static str,
        /// Its name.
        name: String,
        /// What to do.
        fix: &'static str,
    },
    /// The change would break a rule of the store (a pool that still has users …).
    #[error("{message}")]
    Conflict {
        /// What conflicts, and what to do first.
        message: String,
    },
    /// The store cannot be opened or reached.
    #[error("cannot open the management store at {location}: {reason}; {fix}")]
    Unavailable {
        /// Where (a URL shown without its password).
        location: String,
        /// The reason.
        reason: String,
        /// What to check.
        fix: &'static str,
    },
    /// Another writer held the store longer than the busy timeout.
    #[error(
        "the management store stayed busy while {context} ({source}); retry, and if it \
         persists look for a process that holds the store open in a long transaction"
    )]
    Busy {
        /// What the store was doing.
        context: &'static str,
        /// The backend's error.
        source: BackendError,
    },
    /// The schema cannot be brought to the version this build knows.
    #[error("schema migration: {message}")]
    Migration {
        /// What is wrong, and what to do.
        message: String,
    },
    /// The store holds data this build cannot read.
    #[error("the management store holds unexpected data: {message}; check that every process using it runs the same confab version")]
    Corrupt {
        /// What was found.
        message: String,
    },
    /// Any other failure of the database.
    #[error("management store error while {context}: {source}")]
    Backend {
        /// What the store was doing.
        context: &'static str,
        /// The backend's error.
        source: BackendError,
    },
}

/// The database driver's error, kept opaque so that the driver is not part of the API.
pub struct BackendError(pub(crate) sqlx::Error);

impl fmt::Debug for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for BackendError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl StoreError {
    /// Classifies a driver error: lock timeouts and serialisation failures are [`Busy`]
    /// (worth a retry), everything else is [`Backend`].
    ///
    /// [`Busy`]: StoreError::Busy
    /// [`Backend`]: StoreError::Backend
    pub(crate) fn backend(context: &'static str, error: sqlx::Error) -> Self {
        let busy = crate::db::is_busy(&error)
            || match &error {
                sqlx::Error::PoolTimedOut => true,
                // PostgreSQL: serialization_failure, deadlock_detected, lock_not_available.
                sqlx::Error::Database(db) => {
                    matches!(db.code().as_deref(), Some("40001" | "40P01" | "55P03"))
                }
                _ => false,
            };
        let source = BackendError(error);
        if busy {
            StoreError::Busy { context, source }
        } else {
            StoreError::Backend { context, source }
        }
    }

    pub(crate) fn invalid(what: &'static str, value: &str, fix: impl Into<String>) -> Self {
        StoreError::Invalid {
            what,
            value: value.to_owned(),
            fix: fix.into(),
        }
    }

    pub(crate) fn corrupt(message: impl Into<String>) -> Self {
        StoreError::Corrupt {
            message: message.into(),
        }
    }
}

/// Attaches what the store was doing to a driver error.
pub(crate) trait Context<T> {
    fn ctx(self, context: &'static str) -> Result<T, StoreError>;
}

impl<T> Context<T> for Result<T, sqlx::Error> {
    fn ctx(self, context: &'static str) -> Result<T, StoreError> {
        self.map_err(|e| StoreError::backend(context, e))
    }
}

/// Why an offline message was not stored.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QuotaError {
    /// The user already has as many stored messages as the cap allows.
    #[error(
        "the offline messages of {user} are at their cap of {cap}; they are delivered (and \
         make room) when the user next signs in, or expire"
    )]
    Full {
        /// The recipient.
        user: String,
        /// The cap in force.
        cap: u32,
    },
    /// The store failed, or the recipient does not exist.
    #[error(transparent)]
    Store(#[from] StoreError),
}
