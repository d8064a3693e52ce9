//! [`UaError`]: everything a user agent operation can fail with, each variant saying what
//! went wrong in terms a test or an operator can act on.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use confab_sip::transaction::TransactionError;

/// Why a user agent operation failed. A final response that is not a success is not an
/// error for operations that return the response (`options`, `message`, `request`, calls);
/// it is for `register`, which has nothing else to return.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UaError {
    /// The configuration cannot work; the text says which setting to change.
    #[error("invalid user agent configuration: {0}")]
    Config(String),
    /// The local address could not be bound.
    #[error("cannot bind {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// What the operating system said.
        source: io::Error,
    },
    /// No final response came before the transaction gave up (RFC 3261 Timer B or F): the
    /// peer is down, unreachable, or every copy of the request was lost.
    #[error("no final response: the transaction timed out")]
    TransactionTimeout,
    /// A bounded wait ended without what it waited for.
    #[error("nothing arrived within {0:?}")]
    Timeout(Duration),
    /// Sending failed (connection refused or reset, socket error).
    #[error("transport failure: could not send to {0}")]
    Transport(SocketAddr),
    /// The credentials were refused: a challenge came back after it had been answered, and
    /// not as `stale=true` (wrong password or user name, or an unknown user).
    #[error("authentication rejected ({status}): check the user name and password")]
    AuthRejected {
        /// 401 or 407.
        status: u16,
    },
    /// A challenge came but the user agent has no secret to answer it with.
    #[error("the server asks for authentication ({status}) but no secret is configured")]
    NoCredentials {
        /// 401 or 407.
        status: u16,
    },
    /// A challenge came that cannot be answered: no Digest algorithm or qop this user
    /// agent supports, or no HA1 for the algorithms offered.
    #[error("cannot answer the {status} challenge: {why}")]
    AuthUnsupported {
        /// 401 or 407.
        status: u16,
        /// What is missing.
        why: &'static str,
    },
    /// The request was answered with a final failure where success was needed
    /// (`register`).
    #[error("request rejected: {status} {reason}")]
    Rejected {
        /// The status code.
        status: u16,
        /// The reason phrase.
        reason: String,
    },
    /// Nowhere to send the request: no server configured and a Request-URI whose host is
    /// not an IP address.
    #[error("no route to {0}: configure a server (outbound proxy) or use an IP address")]
    NoRoute(String),
    /// A URI given to the user agent does not parse.
    #[error("invalid URI {uri:?}: {why}")]
    InvalidUri {
        /// The text given.
        uri: String,
        /// What is wrong with it.
        why: String,
    },
    /// The transaction layer refused the operation.
    #[error(transparent)]
    Transaction(#[from] TransactionError),
    /// The call has no dialog (not answered yet, or already ended).
    #[error("the call has no dialog: it is not established or has ended")]
    NoDialog,
    /// The INVITE cannot be cancelled any more: it has a final response.
    #[error("cannot cancel: the INVITE already has a final response")]
    CannotCancel,
    /// The request was answered already (automatically, or by an earlier final
    /// response), or cannot be answered (ACK).
    #[error("the request cannot be answered: it has a final response or needs none")]
    AlreadyAnswered,
    /// The user agent has shut down.
    #[error("the user agent has shut down")]
    Shutdown,
}
