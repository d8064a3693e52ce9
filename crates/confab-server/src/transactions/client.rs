//! The driver's side for a core that sends: client transactions (the proxy forwarding a
//! request, messaging delivering a stored MESSAGE), CANCEL of a client INVITE, responses
//! sent after the handler has returned (the registrar answering once the directory has),
//! and stateless sends (an ACK for a 2xx forwarded by the proxy).
//!
//! A client transaction is started with a [`ClientSink`]: every event of it — responses,
//! timeout, transport error, termination — is sent there, tagged with its key, so one core
//! task can run many branches through one channel. Termination is always the last event of
//! a transaction; once every transaction started with a sink has terminated and the core
//! dropped its own sender, the receiver ends.
//!
//! What these calls send goes out through the server's [`Transmitter`], which the driver
//! receives when its timer task starts: a new client transaction's first transmission is
//! handed to the timer task (which then retransmits it on Timer A/E over UDP), responses and
//! stateless sends are sent by the calling task. Before the server runs there is no
//! transmitter, and such sends fail with [`std::io::ErrorKind::NotConnected`].

use std::io;
use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use confab_sip::transaction::{TransactionError, TransactionKey};
use confab_sip::Message;
use tokio::sync::mpsc;
use tracing::debug;

use super::{reliability, Challenge, Inner, Peer, TransactionDriver};
use crate::transport::Source;

/// What a client transaction reports to its core.
#[derive(Debug, Clone)]
pub enum ClientEvent {
    /// A response: provisional ones, the final one, and for INVITE every 2xx (RFC 6026).
    /// Boxed: a message view is large, the other variants are empty.
    Response(Box<Message>),
    /// No final response in time (Timer B or F).
    Timeout,
    /// Sending failed; the transaction ends.
    TransportError,
    /// The transaction is over; no further event comes for it.
    Terminated,
}

/// Where a client transaction's events go.
pub type ClientSink = mpsc::UnboundedSender<(TransactionKey, ClientEvent)>;

/// Who a client transaction reports to.
#[derive(Debug)]
pub(super) enum Sink {
    /// The core that started it, until it detaches ([`TransactionDriver::detach`]).
    Core(ClientSink),
    /// Nobody any more, but a 2xx retransmission of this proxied INVITE branch (RFC 6026,
    /// Accepted) is relayed upstream through this server transaction.
    Relay(TransactionKey),
}

impl Inner {
    /// Sends `event` to the core awaiting client transaction `key`; false when none does.
    pub(super) fn send_to_sink(&mut self, key: &TransactionKey, event: ClientEvent) -> bool {
        match self.sinks.get(key) {
            Some(Sink::Core(sink)) => {
                if sink.send((key.clone(), event)).is_err() {
                    // The core is gone; the transaction runs out on its own.
                    self.sinks.remove(key);
                }
                true
            }
            Some(Sink::Relay(_)) | None => false,
        }
    }

    /// A response to client transaction `key` whose core has detached: a 2xx is relayed
    /// upstream if the core asked for it (its top Via, ours, removed); true when it was.
    pub(super) fn relay_detached(&mut self, key: &TransactionKey, response: &Message) -> bool {
        let Some(Sink::Relay(upstream)) = self.sinks.get(key) else {
            return false;
        };
        if !response.status().is_some_and(|s| (200..300).contains(&s)) {
            return false;
        }
        let Some(bytes) = crate::forward::upstream(response) else {
            debug!(?key, "a 2xx without our Via dropped");
            return false;
        };
        let upstream = upstream.clone();
        match self.layer.send_response(&upstream, bytes, Instant::now()) {
            Ok(()) => {
                self.defer_transmits();
                true
            }
            Err(e) => {
                debug!(?key, error = %e, "a late 2xx could not be relayed upstream");
                false
            }
        }
    }
}

impl TransactionDriver {
    /// Starts a client transaction for `request` (its top Via carrying a fresh branch) over
    /// `flow`: the transport, the peer address to send to, and the local listener address
    /// to send from. Its events go to `sink`.
    pub fn send_request(
        &self,
        request: Bytes,
        flow: Source,
        sink: ClientSink,
    ) -> Result<TransactionKey, TransactionError> {
        let peer = Peer {
            source: flow,
            target: Some(flow.peer),
        };
        let now = Instant::now();
        let mut inner = self.lock();
        let key = inner
            .layer
            .send_request(request, peer, reliability(&flow), now)?;
        inner.sinks.insert(key.clone(), Sink::Core(sink));
        inner.defer_transmits();
        inner.drain_events();
        self.release(inner);
        Ok(key)
    }

    /// The core is done with client transaction `key`: its events go nowhere from now on,
    /// and it runs out on its own timers. With `relay_2xx_to` (the upstream INVITE server
    /// transaction of a proxied INVITE branch that was answered 2xx), 2xx retransmissions
    /// that reach it in the Accepted state (RFC 6026) are relayed there, as the proxy's
    /// response context would have — without keeping that context for Timer M's 32 s.
    pub fn detach(&self, key: &TransactionKey, relay_2xx_to: Option<TransactionKey>) {
        let mut inner = self.lock();
        match relay_2xx_to {
            Some(upstream) if inner.layer.contains(key) => {
                inner.sinks.insert(key.clone(), Sink::Relay(upstream));
            }
            _ => {
                inner.sinks.remove(key);
            }
        }
    }

    /// Cancels client INVITE transaction `invite` (RFC 3261 §9.1); refused before it has a
    /// provisional response and after its final one. The CANCEL's own responses are
    /// absorbed.
    pub fn cancel(&self, invite: &TransactionKey) -> Result<(), TransactionError> {
        let mut inner = self.lock();
        inner.layer.cancel(invite, Instant::now())?;
        inner.defer_transmits();
        inner.drain_events();
        self.release(inner);
        Ok(())
    }

    /// Sends the core's `response` to `request` after the handler has returned: through the
    /// request's server transaction (which keeps it for retransmissions), on the path the
    /// request came by. A challenge (401, 407) ends the transaction as it is sent
    /// (RFC 3261 §8.2.7): a retransmitted request is then new, and challenged afresh.
    pub async fn reply(&self, request: &Message, response: Bytes, source: &Source) {
        self.answer(request, response, source, Challenge::Stateless)
            .await;
    }

    /// Sends a `response` relayed from downstream (a proxy's) to `request`, like
    /// [`TransactionDriver::reply`] except that a challenge is kept as any response is: a
    /// retransmitted request then draws it again rather than being forwarded again.
    pub async fn relay(&self, request: &Message, response: Bytes, source: &Source) {
        self.answer(request, response, source, Challenge::Kept)
            .await;
    }

    async fn answer(&self, request: &Message, response: Bytes, source: &Source, c: Challenge) {
        let Some(bytes) = self.respond_with(request, response, source, c) else {
            return;
        };
        let Some(target) = self.peer(request, source).target else {
            debug!(peer = %source.peer, "no address a response may be sent to; dropped");
            return;
        };
        if let Err(e) = self.send_now(source, target, bytes).await {
            debug!(peer = %source.peer, error = %e, "sending a response failed");
        }
    }

    /// Sends `bytes` over `flow` outside any transaction (an ACK for a 2xx).
    pub async fn send_stateless(&self, bytes: Bytes, flow: &Source) -> io::Result<()> {
        self.send_now(flow, flow.peer, bytes).await
    }

    async fn send_now(&self, source: &Source, target: SocketAddr, bytes: Bytes) -> io::Result<()> {
        let Some(transmitter) = self.transmitter.get() else {
            return Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "the server is not running",
            ));
        };
        transmitter.send(source, target, bytes).await
    }
}
