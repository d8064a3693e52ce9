//! Transaction identity: which transaction a message belongs to (RFC 3261 §17.1.3, §17.2.3).
//!
//! A [`TransactionKey`] owns everything it compares (no borrow of the message), so it can live
//! in a `HashMap` for the lifetime of its transaction.
//!
//! * Client side: the branch of the top Via plus the CSeq method. Confab generates the branch,
//!   so it always carries the RFC 3261 magic cookie.
//! * Server side, RFC 3261 peers: branch, sent-by of the top Via and the method, where ACK
//!   counts as INVITE. CANCEL keeps its own method: it is a transaction of its own, and the
//!   INVITE it cancels is the same key with the method INVITE (§9.2).
//! * Server side, RFC 2543 peers (no branch, or a branch that is not the cookie followed by an
//!   id): Request-URI, To tag, From tag, Call-ID, CSeq number and method, and the top Via as
//!   written. An ACK for a non-2xx response carries the To tag of that response rather than
//!   the INVITE's, so the layer matches it on the same fields without the To tag and then
//!   checks the tag against the response it sent.

use std::fmt;

use crate::headers::{HeaderError, MAGIC_COOKIE};
use crate::message::Message;

/// Which side of a transaction this element plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// This element sent the request.
    Client,
    /// This element received the request.
    Server,
}

/// Identifies one transaction. Cheap to compare and hash, owns its text, and distinguishes
/// client from server transactions even when they share a branch (a request looping through
/// the same element).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct TransactionKey {
    role: Role,
    id: Id,
}

#[derive(Clone, PartialEq, Eq, Hash)]
enum Id {
    Branch {
        branch: Box<str>,
        /// Lower-cased `host[:port]`; empty for client keys (§17.1.3 does not use it).
        sent_by: Box<str>,
        method: Box<str>,
    },
    Rfc2543(Box<Rfc2543>),
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct Rfc2543 {
    request_uri: Box<str>,
    to_tag: Option<Box<str>>,
    from_tag: Option<Box<str>>,
    call_id: Box<str>,
    cseq: u32,
    method: Box<str>,
    via: Box<str>,
}

/// Why a message cannot be tied to a transaction. A driver answers such a request with 400
/// (statelessly) or drops it, and drops such a response.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyError {
    /// A header the key needs is missing or malformed (Via, CSeq, Call-ID, From, To).
    Header(HeaderError),
    /// The Request-URI or method is not UTF-8.
    BadRequestLine,
    /// A response, or a request Confab sends, whose top Via has no RFC 3261 branch.
    NoBranch,
    /// The CSeq method differs from the request method (RFC 4475 `mismatch01`).
    MethodMismatch,
    /// A response was given where a request was expected, or the reverse.
    WrongDirection,
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::Header(e) => e.fmt(f),
            KeyError::BadRequestLine => f.write_str("Request-URI or method is not UTF-8"),
            KeyError::NoBranch => f.write_str("top Via has no RFC 3261 branch"),
            KeyError::MethodMismatch => f.write_str("CSeq method differs from the request method"),
            KeyError::WrongDirection => f.write_str("request and response confused"),
        }
    }
}

impl std::error::Error for KeyError {}

impl From<HeaderError> for KeyError {
    fn from(e: HeaderError) -> Self {
        KeyError::Header(e)
    }
}

/// True when `branch` is an RFC 3261 transaction id: the cookie and at least one more
/// character. The bare cookie (RFC 4475 `badbranch`) is not one.
pub(crate) fn is_transaction_branch(branch: &str) -> bool {
    branch.len() > MAGIC_COOKIE.len() && branch.starts_with(MAGIC_COOKIE)
}

/// The request method as written, checked against the CSeq method.
fn checked_method(msg: &Message) -> Result<&str, KeyError> {
    let method = msg.method_str().ok_or(if msg.is_request() {
        KeyError::BadRequestLine
    } else {
        KeyError::WrongDirection
    })?;
    if msg.cseq()?.method != method {
        return Err(KeyError::MethodMismatch);
    }
    Ok(method)
}

/// The method a server transaction is keyed on: ACK belongs to its INVITE (§17.2.3).
fn transaction_method(method: &str) -> &str {
    if method == "ACK" {
        "INVITE"
    } else {
        method
    }
}

fn sent_by(host: &str, port: Option<u16>) -> Box<str> {
    let mut s = host.to_ascii_lowercase();
    if let Some(p) = port {
        s.push(':');
        s.push_str(&p.to_string());
    }
    s.into_boxed_str()
}

impl TransactionKey {
    /// The server transaction a received request belongs to (RFC 3261 §17.2.3), with the RFC
    /// 2543 fallback when the top Via has no usable branch. An ACK yields the key of its
    /// INVITE.
    pub fn for_request(msg: &Message) -> Result<TransactionKey, KeyError> {
        let method = transaction_method(checked_method(msg)?);
        let via = msg.via()?;
        if let Some(branch) = via.branch().filter(|b| is_transaction_branch(b)) {
            return Ok(TransactionKey {
                role: Role::Server,
                id: Id::Branch {
                    branch: branch.into(),
                    sent_by: sent_by(via.host_str(), via.port()),
                    method: method.into(),
                },
            });
        }
        let request_uri = msg.request_uri_str().ok_or(KeyError::BadRequestLine)?;
        let owned = |s: Option<&str>| s.map(Box::<str>::from);
        Ok(TransactionKey {
            role: Role::Server,
            id: Id::Rfc2543(Box::new(Rfc2543 {
                request_uri: request_uri.into(),
                to_tag: owned(msg.to()?.tag()),
                from_tag: owned(msg.from()?.tag()),
                call_id: msg.call_id()?.into(),
                cseq: msg.cseq()?.seq,
                method: method.into(),
                via: crate::lex::trim_lws(via.as_str()).into(),
            })),
        })
    }

    /// The client transaction a received response belongs to (RFC 3261 §17.1.3): top Via
    /// branch and CSeq method.
    pub fn for_response(msg: &Message) -> Result<TransactionKey, KeyError> {
        if msg.is_request() {
            return Err(KeyError::WrongDirection);
        }
        let cseq = msg.cseq()?;
        Self::client(msg, cseq.method)
    }

    /// The client transaction key of a request this element sends.
    pub(crate) fn for_outgoing(msg: &Message) -> Result<TransactionKey, KeyError> {
        let method = checked_method(msg)?;
        Self::client(msg, method)
    }

    fn client(msg: &Message, method: &str) -> Result<TransactionKey, KeyError> {
        let via = msg.via()?;
        let branch = via
            .branch()
            .filter(|b| is_transaction_branch(b))
            .ok_or(KeyError::NoBranch)?;
        Ok(TransactionKey {
            role: Role::Client,
            id: Id::Branch {
                branch: branch.into(),
                sent_by: Box::from(""),
                method: method.into(),
            },
        })
    }

    /// The same transaction identity with another method: the INVITE a CANCEL targets.
    pub(crate) fn with_method(&self, method: &str) -> TransactionKey {
        let mut key = self.clone();
        match &mut key.id {
            Id::Branch { method: m, .. } => *m = method.into(),
            Id::Rfc2543(k) => k.method = method.into(),
        }
        key
    }

    /// For RFC 2543 keys: the key without its To tag, under which an ACK finds its INVITE.
    pub(crate) fn without_to_tag(&self) -> Option<TransactionKey> {
        match &self.id {
            Id::Branch { .. } => None,
            Id::Rfc2543(k) => {
                let mut k = k.clone();
                k.to_tag = None;
                Some(TransactionKey {
                    role: self.role,
                    id: Id::Rfc2543(k),
                })
            }
        }
    }

    /// For RFC 2543 keys: the To tag of the request.
    pub(crate) fn to_tag(&self) -> Option<&str> {
        match &self.id {
            Id::Branch { .. } => None,
            Id::Rfc2543(k) => k.to_tag.as_deref(),
        }
    }

    /// Client or server.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The method of the request that created the transaction (INVITE for an ACK's key).
    pub fn method(&self) -> &str {
        match &self.id {
            Id::Branch { method, .. } => method,
            Id::Rfc2543(k) => &k.method,
        }
    }

    /// The branch, for RFC 3261 keys.
    pub fn branch(&self) -> Option<&str> {
        match &self.id {
            Id::Branch { branch, .. } => Some(branch),
            Id::Rfc2543(_) => None,
        }
    }

    /// True when the transaction is matched the RFC 2543 way.
    pub fn is_rfc2543(&self) -> bool {
        matches!(self.id, Id::Rfc2543(_))
    }
}

impl fmt::Display for TransactionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let role = match self.role {
            Role::Client => "client",
            Role::Server => "server",
        };
        match &self.id {
            Id::Branch {
                branch,
                sent_by,
                method,
            } if sent_by.is_empty() => write!(f, "{role} {method} {branch}"),
            Id::Branch {
                branch,
                sent_by,
                method,
            } => write!(f, "{role} {method} {branch} from {sent_by}"),
            Id::Rfc2543(k) => write!(
                f,
                "{role} {} rfc2543 call-id {} cseq {}",
                k.method, k.call_id, k.cseq
            ),
        }
    }
}

impl fmt::Debug for TransactionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TransactionKey({self})")
    }
}
