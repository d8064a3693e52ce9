//! The seam where the transaction layer plugs in.
//!
//! RFC 3261 §17 puts the transaction layer between the transports and the core: it absorbs
//! request retransmissions (answering them with the last response sent), retransmits
//! responses over UDP on its timers, absorbs the ACK of a non-2xx final response, and matches
//! received responses to client transactions. `confab_sip::transaction::TransactionLayer` is
//! that layer as a sans-IO state machine; its driver implements [`TransactionHook`] and is
//! installed with [`crate::handler::Handler::with_transactions`].
//!
//! A driver over `TransactionLayer<Source>` would, in [`TransactionHook::request_received`],
//! call `handle_message` with the current time and the transport's reliability, send every
//! `poll_transmit` through the [`Transmitter`], and return [`Disposition::Continue`] when
//! `poll_event` yields a new request for the core, [`Disposition::Absorbed`] otherwise; in
//! [`TransactionHook::respond`] it would call `send_response`; and a task of its own would
//! sleep until `poll_timeout`, then call `handle_timeout` and send what it yields.
//!
//! Until then the server runs with [`Stateless`]: every request is handled afresh and
//! answered statelessly (RFC 3261 §8.2.7). That is correct for what the server answers
//! today (OPTIONS, and final rejections): a retransmitted request gets the same response
//! again, with the same To-tag, because the handler derives its tags from the request.

use bytes::Bytes;
use confab_sip::Message;

use crate::transport::Source;
#[cfg(doc)]
use crate::transport::Transmitter;

/// What the transaction layer decided about a received message.
#[derive(Debug, Clone, PartialEq, Eq)]
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
}

/// The calls the handler makes into the transaction layer. Every method has the stateless
/// behaviour as its default, so an implementation overrides only what it handles.
///
/// The handler calls these from transport tasks, concurrently: an implementation keeps its
/// `TransactionLayer` behind a lock (or shards it by branch) and reads the clock itself.
/// Timer-driven retransmissions are sent by the implementation's own timer task through the
/// server's [`Transmitter`] ([`crate::Server::transmitter`], handed to the implementation
/// after [`crate::Server::bind_with`], e.g. through a `OnceLock`).
pub trait TransactionHook: Send + Sync + 'static {
    /// A request arrived: match it to a server transaction (RFC 3261 §17.2.3).
    fn request_received(&self, request: &Message, source: &Source) -> Disposition {
        let _ = (request, source);
        Disposition::Continue
    }

    /// The core answers `request` with `response`, through the request's server
    /// transaction, which keeps it to answer retransmissions and, for INVITE over UDP,
    /// retransmits it on Timer G. Returns what the transport sends back now: the response
    /// itself (the default), or `None` when the implementation sent it through its own
    /// transmit path (`TransactionLayer::poll_transmit` and the [`Transmitter`]).
    fn respond(&self, request: &Message, response: Bytes, source: &Source) -> Option<Bytes> {
        let _ = (request, source);
        Some(response)
    }

    /// A response arrived: match it to a client transaction (RFC 3261 §17.1.3). With
    /// [`Disposition::Continue`] the handler drops it, as no core sends requests yet.
    fn response_received(&self, response: &Message, source: &Source) -> Disposition {
        let _ = (response, source);
        Disposition::Continue
    }
}

/// No transaction layer: every request is new, every response is unmatched.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stateless;

impl TransactionHook for Stateless {}
