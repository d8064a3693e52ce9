//! The seam where the transaction layer plugs in, and the driver that plugs into it.
//!
//! RFC 3261 §17 puts the transaction layer between the transports and the core: it absorbs
//! request retransmissions (answering them with the last response sent), retransmits
//! responses over UDP on its timers, absorbs the ACK of a non-2xx final response, and matches
//! received responses to client transactions. `confab_sip::transaction::TransactionLayer` is
//! that layer as a sans-IO state machine; [`TransactionDriver`] runs it for the server,
//! behind the [`TransactionHook`] trait the handler calls, and is installed with
//! [`crate::Server::bind_with`].
//!
//! [`crate::Server::bind`] installs [`Stateless`]: every request is handled afresh and
//! answered statelessly (RFC 3261 §8.2.7). That is correct for what the server answers
//! today (OPTIONS, and final rejections) as long as nothing needs a response retransmitted:
//! a retransmitted request gets the same response again, with the same To-tag, because the
//! handler derives its tags from the request. `confab serve` installs the driver.

pub mod driver;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use confab_sip::Message;
use tokio_util::sync::CancellationToken;

use crate::transport::{Source, Transmitter};

pub use confab_sip::transaction::{ConfigError as TimerError, TimerConfig};
pub use driver::{ClientEvent, ClientSink, DriverStats, TransactionDriver, RETRY_AFTER};

/// What the transaction layer decided about a received message.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Disposition {
    /// A new request (or a response for the core): the handler goes on.
    Continue,
    /// The transaction layer took the message (a retransmission, an ACK for a non-2xx
    /// response, a response matching a client transaction); `resend` is what to send back to
    /// the source, if anything (the last response of a server transaction).
    Absorbed {
        /// The response to send again.
        resend: Option<Bytes>,
    },
    /// The request would start a transaction, but the layer holds as many as it may
    /// ([`crate::Limits::max_transactions`]): the handler answers `503 Service Unavailable`
    /// with `Retry-After` (RFC 3261 §21.5.4), statelessly, and the core never sees it.
    Overloaded {
        /// When the client may try again.
        retry_after: Duration,
    },
}

/// A task a [`TransactionHook`] runs for as long as the server does.
pub type HookTask = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// The calls the handler makes into the transaction layer. Every method has the stateless
/// behaviour as its default, so an implementation overrides only what it handles.
///
/// The handler calls these from transport tasks, concurrently: an implementation keeps its
/// `TransactionLayer` behind a lock (or shards it by branch) and reads the clock itself.
/// Timer-driven retransmissions are sent by the implementation's own task
/// ([`TransactionHook::start`]) through the server's [`Transmitter`].
pub trait TransactionHook: Send + Sync + 'static {
    /// A request arrived: match it to a server transaction (RFC 3261 §17.2.3).
    fn request_received(&self, request: &Message, source: &Source) -> Disposition {
        let _ = (request, source);
        Disposition::Continue
    }

    /// The core answers `request` with `response`, through the request's server
    /// transaction, which keeps it to answer retransmissions and, for INVITE over UDP,
    /// retransmits it on Timer G — except a challenge (401, 407), which the driver sends
    /// statelessly (RFC 3261 §8.2.7), ending the transaction. Returns what the transport
    /// sends back now, on the path the request came by: the response itself (the default,
    /// and the driver's choice: it is the transaction's first transmission), or `None` when
    /// the implementation sent it, or refused to (a second final response), on its own.
    fn respond(&self, request: &Message, response: Bytes, source: &Source) -> Option<Bytes> {
        let _ = (request, source);
        Some(response)
    }

    /// A response arrived: match it to a client transaction (RFC 3261 §17.1.3). With
    /// [`Disposition::Continue`] the handler drops it (it matches nothing sent here).
    fn response_received(&self, response: &Message, source: &Source) -> Disposition {
        let _ = (response, source);
        Disposition::Continue
    }

    /// Called once by [`crate::Server::run`] when the transports start: the task that runs
    /// the implementation's timers, sending through `transmitter`. It must end soon after
    /// `shutdown` is cancelled; the server waits for it as for its connections. `None`
    /// (the default): nothing to run.
    fn start(
        self: Arc<Self>,
        transmitter: Transmitter,
        shutdown: CancellationToken,
    ) -> Option<HookTask> {
        let _ = (transmitter, shutdown);
        None
    }
}

/// No transaction layer: every request is new, every response is unmatched.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stateless;

impl TransactionHook for Stateless {}
