//! The SIP transaction layer (RFC 3261 §17, with the INVITE corrections of RFC 6026), as
//! deterministic state machines with no I/O.
//!
//! This module owns retransmission, absorption of retransmitted requests and responses,
//! transaction timeouts and matching messages to transactions. It does not own sockets, clocks
//! or tasks: a driver hands it parsed messages and the current time, and acts on what it hands
//! back, in the style of quinn-proto:
//!
//! * [`TransactionLayer::handle_message`] for every message received,
//! * [`TransactionLayer::handle_timeout`] when the instant from
//!   [`TransactionLayer::poll_timeout`] has passed,
//! * [`TransactionLayer::poll_transmit`] until `None`, sending each [`Transmit`] to its peer,
//! * [`TransactionLayer::poll_event`] until `None`, handing each [`Event`] to the transaction
//!   user (TU: UA core or proxy core),
//! * [`TransactionLayer::send_request`], [`TransactionLayer::send_response`] and
//!   [`TransactionLayer::cancel`] for what the TU sends.
//!
//! The peer type `P` is opaque to the layer: a socket address, a connection id, anything the
//! driver needs to send a datagram or a stream message back. Whether the transport is
//! reliable ([`Reliability`]) is fixed per transaction when it is created and decides which
//! timers run (RFC 3261 §17.1.1.2, §17.1.2.2, §17.2.1, §17.2.2).
//!
//! Submodules, one responsibility each:
//! * [`key`]: transaction identity, for both RFC 3261 branches and the RFC 2543 fallback;
//! * `timers`: the per-transaction timer set and the state shared by all four machines;
//! * `client_invite`, `client_non_invite`, `server_invite`, `server_non_invite`: the four
//!   state machines of RFC 3261 Figures 5–8 as amended by RFC 6026, and `machine`, any one
//!   of them;
//! * `table`: the transactions of a layer and their deadlines, and what a transaction keeps
//!   once it only absorbs retransmissions (its final response and little more);
//! * `layer`: [`TransactionLayer`], which owns many transactions and routes messages to
//!   them.
//!
//! Decisions the RFCs leave open:
//! * **100 Trying.** A server INVITE transaction sends `100 Trying` by itself when the TU has
//!   sent no provisional response within [`Config::auto_trying`] (200 ms by default, RFC 3261
//!   §17.2.1); `None` leaves it to the TU.
//! * **2xx to INVITE.** Per RFC 6026 the UAS core retransmits its 2xx and the UAC core sends
//!   the ACK for it; neither is done here. The server transaction in Accepted passes every 2xx
//!   the TU gives it to the transport, and the client transaction passes every 2xx it receives
//!   to the TU.
//! * **Branches.** A branch is an RFC 3261 transaction id only when it is the magic cookie
//!   `z9hG4bK` followed by at least one character. A bare `z9hG4bK` (RFC 4475 `badbranch`)
//!   identifies nothing, so such requests are matched the RFC 2543 way, like requests with no
//!   branch at all (RFC 4475 `inv2543`). Branches compare case-sensitively, as written.

mod client_invite;
mod client_non_invite;
pub mod key;
mod layer;
mod machine;
mod server_invite;
mod server_non_invite;
mod shards;
mod table;
mod timers;

use std::fmt;
use std::time::Duration;

use bytes::Bytes;

use crate::message::{Message, ParseErrorKind};

pub use key::{KeyError, Role, TransactionKey};
pub use layer::TransactionLayer;
pub use shards::{KeyHasher, KeyHashing, KeyMap};

/// The RFC 3261 timer base values (§17.1.1.1, Table 4). Every transaction timer derives from
/// these three. Built once, validated, then immutable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerConfig {
    t1: Duration,
    t2: Duration,
    t4: Duration,
}

/// Timer values are bounded so that no arithmetic on instants can overflow and no timer can
/// spin: an hour is far beyond any deployment's round-trip estimate.
const MAX_TIMER_BASE: Duration = Duration::from_secs(3600);

impl TimerConfig {
    /// The RFC 3261 defaults: T1 = 500 ms, T2 = 4 s, T4 = 5 s.
    pub const RFC3261: TimerConfig = TimerConfig {
        t1: Duration::from_millis(500),
        t2: Duration::from_secs(4),
        t4: Duration::from_secs(5),
    };

    /// Custom base values (e.g. a larger T1 for high-latency links, RFC 3261 §17.1.1.1).
    /// T1 must be positive, T2 at least T1, and all of them at most an hour.
    pub fn new(t1: Duration, t2: Duration, t4: Duration) -> Result<TimerConfig, ConfigError> {
        if t1.is_zero() {
            return Err(ConfigError::ZeroT1);
        }
        if t2 < t1 {
            return Err(ConfigError::T2BelowT1);
        }
        if [t1, t2, t4].iter().any(|d| *d > MAX_TIMER_BASE) {
            return Err(ConfigError::TooLarge);
        }
        Ok(TimerConfig { t1, t2, t4 })
    }

    /// T1, the round-trip time estimate.
    pub fn t1(&self) -> Duration {
        self.t1
    }
    /// T2, the maximum retransmit interval for non-INVITE requests and INVITE responses.
    pub fn t2(&self) -> Duration {
        self.t2
    }
    /// T4, the maximum time a message stays in the network.
    pub fn t4(&self) -> Duration {
        self.t4
    }
    /// 64·T1: timers B, F, H, J (unreliable), L and M.
    pub fn transaction_timeout(&self) -> Duration {
        self.t1.saturating_mul(64)
    }
    /// Timer D for unreliable transports: "at least 32 seconds" (§17.1.1.2), and never less
    /// than 64·T1 so that it outlives the server's Timer H when T1 is raised.
    pub fn timer_d(&self) -> Duration {
        self.transaction_timeout().max(Duration::from_secs(32))
    }
}

impl Default for TimerConfig {
    fn default() -> Self {
        TimerConfig::RFC3261
    }
}

/// Why a timer configuration was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigError {
    /// T1 is zero: retransmission timers would never advance.
    ZeroT1,
    /// T2 is smaller than T1.
    T2BelowT1,
    /// A base value is over an hour.
    TooLarge,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConfigError::ZeroT1 => "T1 must be greater than zero",
            ConfigError::T2BelowT1 => "T2 must be at least T1",
            ConfigError::TooLarge => "T1, T2 and T4 must each be at most one hour",
        })
    }
}

impl std::error::Error for ConfigError {}

/// Configuration of a [`TransactionLayer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    timers: TimerConfig,
    auto_trying: Option<Duration>,
}

impl Config {
    /// RFC defaults with these timer base values; `100 Trying` after 200 ms.
    pub fn new(timers: TimerConfig) -> Config {
        Config {
            timers,
            auto_trying: Some(Duration::from_millis(200)),
        }
    }

    /// When a server INVITE transaction sends `100 Trying` on its own if the TU has sent no
    /// provisional response yet: `Some(delay)` (zero sends it at once), or `None` to leave
    /// 100 Trying to the TU.
    pub fn with_auto_trying(mut self, delay: Option<Duration>) -> Config {
        self.auto_trying = delay.map(|d| d.min(MAX_TIMER_BASE));
        self
    }

    /// The timer base values.
    pub fn timers(&self) -> TimerConfig {
        self.timers
    }

    /// The automatic 100 Trying delay, if enabled.
    pub fn auto_trying(&self) -> Option<Duration> {
        self.auto_trying
    }
}

impl Default for Config {
    fn default() -> Self {
        Config::new(TimerConfig::RFC3261)
    }
}

/// Whether a transaction's transport delivers reliably (TCP, TLS, WebSocket, SCTP) or not
/// (UDP). Decides which retransmission and wait timers run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reliability {
    /// UDP: the transaction layer retransmits and lingers to absorb retransmissions.
    Unreliable,
    /// A stream or message transport that retransmits by itself.
    Reliable,
}

impl Reliability {
    /// True for [`Reliability::Reliable`].
    pub fn is_reliable(self) -> bool {
        self == Reliability::Reliable
    }
}

/// Which of the four state machines a transaction runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// RFC 3261 Figure 5 with RFC 6026 Accepted.
    ClientInvite,
    /// RFC 3261 Figure 6.
    ClientNonInvite,
    /// RFC 3261 Figure 7 with RFC 6026 Accepted.
    ServerInvite,
    /// RFC 3261 Figure 8.
    ServerNonInvite,
}

/// The state of a transaction. Each kind uses a subset: client INVITE Calling → Proceeding →
/// Accepted | Completed; client non-INVITE Trying → Proceeding → Completed; server INVITE
/// Proceeding → Accepted | Completed → Confirmed; server non-INVITE Trying → Proceeding →
/// Completed. All end in Terminated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Client INVITE: request sent, no response yet.
    Calling,
    /// Non-INVITE: request sent or received, no response yet.
    Trying,
    /// A provisional response was received or sent.
    Proceeding,
    /// INVITE: a 2xx was received or sent (RFC 6026).
    Accepted,
    /// A final (for INVITE: non-2xx) response was received or sent.
    Completed,
    /// Server INVITE: the ACK for the non-2xx final response arrived.
    Confirmed,
    /// Finished; the layer forgets the transaction.
    Terminated,
}

/// The transaction timers of RFC 3261 Table 4 and RFC 6026, plus the automatic 100 Trying.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Timer {
    /// Client INVITE retransmission (unreliable only), doubling from T1.
    A,
    /// Client INVITE timeout in Calling, 64·T1.
    B,
    /// Client INVITE wait in Completed for response retransmissions.
    D,
    /// Client non-INVITE retransmission (unreliable only), doubling from T1 up to T2.
    E,
    /// Client non-INVITE timeout, 64·T1.
    F,
    /// Server INVITE final-response retransmission (unreliable only), doubling up to T2.
    G,
    /// Server INVITE wait for ACK, 64·T1.
    H,
    /// Server INVITE wait in Confirmed for ACK retransmissions, T4 (unreliable only).
    I,
    /// Server non-INVITE wait in Completed for request retransmissions, 64·T1 (unreliable).
    J,
    /// Client non-INVITE wait in Completed for response retransmissions, T4 (unreliable).
    K,
    /// Server INVITE wait in Accepted (RFC 6026), 64·T1.
    L,
    /// Client INVITE wait in Accepted for more 2xx (RFC 6026), 64·T1.
    M,
    /// Server INVITE: send 100 Trying if the TU has not answered ([`Config::auto_trying`]).
    Trying,
}

impl Timer {
    /// Every timer, in declaration order.
    pub const ALL: [Timer; 13] = [
        Timer::A,
        Timer::B,
        Timer::D,
        Timer::E,
        Timer::F,
        Timer::G,
        Timer::H,
        Timer::I,
        Timer::J,
        Timer::K,
        Timer::L,
        Timer::M,
        Timer::Trying,
    ];

    /// True for timers that resend something rather than end a state.
    pub fn is_retransmission(self) -> bool {
        matches!(self, Timer::A | Timer::E | Timer::G | Timer::Trying)
    }
}

/// One message to send: `bytes` to `peer`, on behalf of transaction `key`. If sending fails,
/// report it with [`TransactionLayer::transport_error`].
#[derive(Debug, Clone)]
pub struct Transmit<P> {
    /// The transaction that sends it.
    pub key: TransactionKey,
    /// Where to send it: the peer given when the transaction was created.
    pub peer: P,
    /// The serialised message.
    pub bytes: Bytes,
}

/// What the transaction layer tells the transaction user.
#[derive(Debug, Clone)]
pub enum Event<P> {
    /// A new request (neither ACK nor CANCEL) created server transaction `key`. The TU
    /// answers with [`TransactionLayer::send_response`].
    Request {
        /// The new server transaction.
        key: TransactionKey,
        /// The request.
        request: Message,
        /// Where it came from (responses go back there).
        peer: P,
    },
    /// A CANCEL created server transaction `key` (RFC 3261 §9.2). `invite` is the INVITE server
    /// transaction it cancels, if the layer has one; the TU answers the CANCEL (200, or 481
    /// when `invite` is `None`) and, if the INVITE is still Proceeding, answers it with 487.
    Cancel {
        /// The CANCEL's own server transaction.
        key: TransactionKey,
        /// The CANCEL request.
        request: Message,
        /// Where it came from.
        peer: P,
        /// The INVITE server transaction it matches.
        invite: Option<TransactionKey>,
    },
    /// An ACK the transaction layer does not absorb: the ACK for a 2xx, which belongs to the
    /// TU (RFC 3261 §17.2.3, RFC 6026). `key` is the INVITE server transaction in Accepted
    /// it matched, if any (an ACK for 2xx normally carries a new branch and matches none).
    Ack {
        /// The matching server INVITE transaction in Accepted, if any.
        key: Option<TransactionKey>,
        /// The ACK.
        request: Message,
        /// Where it came from.
        peer: P,
    },
    /// A response for client transaction `key` that the TU must see: provisional responses,
    /// the first final response, and every 2xx in Accepted (RFC 6026).
    Response {
        /// The client transaction.
        key: TransactionKey,
        /// The response.
        response: Message,
    },
    /// A response that matches no client transaction. Under RFC 6026 a proxy must not forward
    /// it; a UA core may use a stray 2xx to its INVITE (e.g. after a fork) to send ACK and BYE.
    StrayResponse {
        /// The response.
        response: Message,
        /// Where it came from.
        peer: P,
    },
    /// The transaction failed for lack of an answer: Timer B or F (no final response) or
    /// Timer H (no ACK for a non-2xx final response). A [`Event::Terminated`] follows.
    Timeout {
        /// The transaction.
        key: TransactionKey,
        /// The timer that fired.
        timer: Timer,
    },
    /// The driver reported a failure to send for this transaction (RFC 3261 §17.1.4,
    /// §17.2.4). A [`Event::Terminated`] follows.
    TransportError {
        /// The transaction.
        key: TransactionKey,
    },
    /// The transaction reached Terminated and has been forgotten.
    Terminated {
        /// The transaction.
        key: TransactionKey,
    },
}

/// Why the layer refused something the TU asked of it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransactionError {
    /// No transaction with this key (never created, or already terminated).
    UnknownTransaction,
    /// The message given to send does not parse.
    Malformed(ParseErrorKind),
    /// A request was given where a response was expected, or the reverse.
    WrongDirection,
    /// The message cannot identify a transaction.
    Key(KeyError),
    /// ACK is not sent through a transaction: the ACK for a non-2xx response is generated by
    /// the client transaction, the ACK for a 2xx is sent by the TU straight to the transport.
    AckNotATransaction,
    /// A client transaction with this branch and method already exists.
    DuplicateTransaction,
    /// A response sent on a client transaction, or a request on a server one.
    WrongRole,
    /// The response cannot be sent in the transaction's current state (e.g. a second final
    /// response, or a non-2xx after a 2xx).
    InvalidState {
        /// The transaction's state.
        state: State,
        /// The status code that was refused.
        status: u16,
    },
    /// CANCEL before any provisional response (RFC 3261 §9.1: wait for one), or after a final.
    CannotCancel(State),
    /// CANCEL is only for INVITE client transactions.
    NotAnInvite,
}

impl fmt::Display for TransactionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransactionError::UnknownTransaction => f.write_str("no such transaction"),
            TransactionError::Malformed(k) => write!(f, "message does not parse: {}", k.reason()),
            TransactionError::WrongDirection => {
                f.write_str("a request was given where a response was expected, or the reverse")
            }
            TransactionError::Key(e) => write!(f, "message identifies no transaction: {e}"),
            TransactionError::AckNotATransaction => {
                f.write_str("ACK is not sent through a client transaction")
            }
            TransactionError::DuplicateTransaction => {
                f.write_str("a client transaction with this branch and method already exists")
            }
            TransactionError::WrongRole => {
                f.write_str("responses go on server transactions, requests on client ones")
            }
            TransactionError::InvalidState { state, status } => {
                write!(f, "cannot send a {status} response in state {state:?}")
            }
            TransactionError::CannotCancel(state) => write!(
                f,
                "CANCEL needs a provisional response and no final one (state {state:?})"
            ),
            TransactionError::NotAnInvite => f.write_str("only INVITE transactions are cancelled"),
        }
    }
}

impl std::error::Error for TransactionError {}

impl From<KeyError> for TransactionError {
    fn from(e: KeyError) -> Self {
        TransactionError::Key(e)
    }
}
