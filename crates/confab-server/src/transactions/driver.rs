//! [`TransactionDriver`]: `confab_sip`'s transaction layer, run for the server.
//!
//! The layer (`TransactionLayer`) is a deterministic state machine; the driver keeps it
//! behind one mutex, feeds it what the handler receives with the current time and the
//! transport's reliability (UDP unreliable; TCP, TLS and WebSocket reliable), and acts on
//! what it hands back:
//!
//! * **Requests** ([`TransactionHook::request_received`]). The request's key is made once,
//!   before the lock is taken, and serves both the cap and the layer (`handle_request`).
//!   After that, the events the layer produced decide. A new request or CANCEL is
//!   [`Disposition::Continue`], exactly once per transaction: matching and creating happen
//!   under the lock, so when two UDP receive tasks handle two copies of one request at once,
//!   one creates the transaction and the other finds it. A retransmission is
//!   [`Disposition::Absorbed`], carrying the response the layer sends again, if it has one
//!   yet. The ACK for a non-2xx final response is absorbed; any other ACK (for a 2xx, or
//!   matching nothing) goes on to the handler, which drops it until a core wants it. A
//!   request the layer cannot tie to any transaction (`KeyError`: no usable Via, CSeq,
//!   Call-ID …) goes on as well: the handler's validation answers it 400 statelessly, or
//!   drops it if it is an ACK, and no transaction is kept.
//! * **Responses from the core** ([`TransactionHook::respond`],
//!   [`TransactionDriver::reply`]). `send_response` hands the response to the request's
//!   transaction, which keeps it for retransmissions; the layer's transmission of it is
//!   returned to the handler. A request without a transaction (one the layer refused) is
//!   answered statelessly with the response as it is.
//! * **Challenges are stateless** (RFC 3261 §8.2.7, §26.3.2.4). A 401 or 407 the core
//!   answers with is sent and its transaction ends at once (`send_response_stateless`): no
//!   Completed state, no Timer J, G or H. Floods of unauthenticated requests — and every
//!   authenticated REGISTER starts with one challenged transaction — then leave no state
//!   behind. A retransmitted challenged request is a new request, and the core challenges
//!   it afresh, with the same To-tag (derived from the request); the ACK of a challenged
//!   INVITE matches nothing and the handler drops it. A 401 or 407 relayed from downstream
//!   ([`TransactionDriver::relay`]) is kept like any response: as a proxy's, a
//!   retransmitted request would otherwise be forwarded again.
//! * **Timers**. One task ([`TransactionHook::start`], run by the server) sleeps until
//!   `poll_timeout`, calls `handle_timeout`, and sends what the layer yields (Timer G
//!   retransmissions, an automatic `100 Trying`) through the server's [`Transmitter`]. A
//!   call that leaves an earlier deadline than the one it sleeps to wakes it ([`Notify`]),
//!   and it ends when the server shuts down. A failed send ends the transaction
//!   (RFC 3261 §17.2.4). Server transactions' timeouts and terminations are logged at
//!   debug level and counted.
//! * **Client transactions** (`client.rs`): the router's proxy and messaging start them
//!   with a sink; their responses, timeouts, transport errors and termination go there.
//!   The driver also keeps the server's [`Transmitter`] (given to the timer task) for the
//!   responses and stateless sends the core makes after the handler has returned.
//!
//! **Why what the layer sends while handling a message goes back through the handler**
//! rather than through the [`Transmitter`]: it concerns that message's transaction, whose
//! peer is the message's source, so the handler's reply path is the right way out. On a
//! connection that path keeps the driver's responses in order with everything else written
//! in answer to the same stream (400s to malformed messages, pongs) and under the
//! connection's own write back-pressure, where the [`Transmitter`] queues on a short
//! channel shared with other senders; over UDP it is the same socket and the same address
//! of RFC 3261 §18.2.2. Only what timers produce needs the [`Transmitter`].
//!
//! **Overload.** The layer holds at most [`crate::Limits::max_transactions`] live
//! transactions. A request that would start one more is refused
//! ([`Disposition::Overloaded`]: the handler answers 503 with `Retry-After`
//! [`RETRY_AFTER`]), while retransmissions and ACKs of the transactions held still reach
//! them, so that they finish normally and make room.
//!
//! One mutex serialises the layer; it is never held across an await, and what can be done
//! without it (making the key, copying the request) is done before taking it. A panic while
//! it is held would be a bug in the layer; the lock is then taken back from the poisoned
//! mutex, so that the other transactions are still served rather than every transport task
//! failing on the lock, at the risk of one transaction left half-updated.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use confab_sip::transaction::{
    Config, Event, KeyMap, Reliability, TransactionError, TransactionKey, TransactionLayer,
    Transmit,
};
use confab_sip::{Message, Method};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, trace, warn};

use super::{Disposition, HookTask, TransactionHook};
use crate::config::ServerConfig;
use crate::routing;
use crate::transport::{Source, Transmitter};

/// The `Retry-After` of a request refused because the layer is full: by then the
/// non-INVITE transactions of a burst over reliable transports are long gone, and those
/// over UDP are draining.
pub const RETRY_AFTER: Duration = Duration::from_secs(5);

/// Where a transaction's messages go: the path its request came by, and the address to
/// send to (for UDP the one of RFC 3261 §18.2.2; `None` when there is none allowed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Peer {
    source: Source,
    target: Option<SocketAddr>,
}

/// Counters of a [`TransactionDriver`], for tests and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DriverStats {
    /// Live transactions now.
    pub transactions: usize,
    /// Requests that started a server transaction: what the handler was given to answer.
    pub requests: u64,
    /// Messages the layer absorbed: request retransmissions, ACKs of non-2xx responses,
    /// responses matching a client transaction.
    pub absorbed: u64,
    /// Requests refused with 503 because the layer was full.
    pub overloaded: u64,
    /// Messages sent by the timer task (retransmissions, automatic 100 Trying).
    pub timer_sends: u64,
    /// Transactions that timed out (e.g. Timer H: no ACK for a non-2xx final response).
    pub timeouts: u64,
}

struct Inner {
    layer: TransactionLayer<Peer>,
    /// Where the events of each client transaction go (see `client.rs`).
    sinks: KeyMap<Sink>,
    /// Transmissions for the timer task to send.
    deferred: Vec<Transmit<Peer>>,
    /// The deadline the timer task sleeps until.
    armed: Option<Instant>,
    stats: DriverStats,
}

/// The server's transaction layer: a [`TransactionHook`] over `confab_sip`'s
/// `TransactionLayer` (see the [module documentation](self)).
pub struct TransactionDriver {
    inner: Mutex<Inner>,
    /// Wakes the timer task.
    wake: Notify,
    /// The server's transmitter, set when the timer task starts: what the core sends
    /// outside a request's own answer (`client.rs`) goes through it.
    transmitter: OnceLock<Transmitter>,
    max_transactions: usize,
    force_rport: bool,
    /// Requests and responses by method and code, for `/metrics`.
    counters: crate::metrics::SipCounters,
}

impl std::fmt::Debug for TransactionDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransactionDriver")
            .field("max_transactions", &self.max_transactions)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl TransactionDriver {
    /// A driver with `config`'s timers ([`ServerConfig::timers`]), cap
    /// ([`crate::Limits::max_transactions`]) and response routing
    /// ([`ServerConfig::force_rport`]). Install it with [`crate::Server::bind_with`], with
    /// the same configuration.
    pub fn new(config: &ServerConfig) -> Self {
        TransactionDriver {
            inner: Mutex::new(Inner {
                layer: TransactionLayer::new(Config::new(config.timers)),
                sinks: KeyMap::default(),
                deferred: Vec::new(),
                armed: None,
                stats: DriverStats::default(),
            }),
            wake: Notify::new(),
            transmitter: OnceLock::new(),
            max_transactions: config.limits.max_transactions,
            force_rport: config.force_rport,
            counters: crate::metrics::SipCounters::default(),
        }
    }

    /// Requests and responses by method and status code.
    pub fn counters(&self) -> &crate::metrics::SipCounters {
        &self.counters
    }

    /// The counters, and the number of live transactions.
    pub fn stats(&self) -> DriverStats {
        let inner = self.lock();
        DriverStats {
            transactions: inner.layer.len(),
            ..inner.stats
        }
    }

    /// True once [`TransactionDriver::run`] has started: requests can be sent.
    pub fn is_running(&self) -> bool {
        self.transmitter.get().is_some()
    }

    /// The timer task: runs the layer's timers and sends what they yield through
    /// `transmitter`, until `shutdown` is cancelled. [`crate::Server::run`] runs it.
    pub async fn run(self: Arc<Self>, transmitter: Transmitter, shutdown: CancellationToken) {
        let _ = self.transmitter.set(transmitter.clone());
        debug!("transaction timers running");
        loop {
            let (due, next) = self.tick(Instant::now());
            for transmit in due {
                self.send(&transmitter, transmit).await;
            }
            let sleep = async move {
                match next {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.wake.notified() => {}
                _ = sleep => {}
            }
        }
        debug!("transaction timers stopped");
    }

    /// Fires the timers due at `now`; returns what to send and the next deadline.
    fn tick(&self, now: Instant) -> (Vec<Transmit<Peer>>, Option<Instant>) {
        let mut inner = self.lock();
        inner.layer.handle_timeout(now);
        inner.defer_transmits();
        inner.drain_events();
        let next = inner.layer.poll_timeout();
        inner.armed = next;
        let due = std::mem::take(&mut inner.deferred);
        inner.stats.timer_sends += due.len() as u64;
        (due, next)
    }

    async fn send(&self, transmitter: &Transmitter, transmit: Transmit<Peer>) {
        let Peer { source, target } = transmit.peer;
        let Some(target) = target else {
            trace!(peer = %source.peer, "no address a message may be sent to; not sent");
            return;
        };
        if let Err(e) = transmitter.send(&source, target, transmit.bytes).await {
            debug!(
                %target,
                transport = %source.transport,
                error = %e,
                "sending for a transaction failed; the transaction ends"
            );
            let mut inner = self.lock();
            inner.layer.transport_error(&transmit.key);
            inner.drain_events();
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Releases the lock, then wakes the timer task if it has something new to do.
    fn release(&self, inner: MutexGuard<'_, Inner>) {
        let wake = inner.wants_wake();
        drop(inner);
        if wake {
            self.wake.notify_one();
        }
    }

    fn peer(&self, request: &Message, source: &Source) -> Peer {
        let target = if source.transport.is_datagram() {
            routing::datagram_target(request, source, self.force_rport)
        } else {
            Some(source.peer)
        };
        Peer {
            source: *source,
            target,
        }
    }
}

fn reliability(source: &Source) -> Reliability {
    if source.transport.is_datagram() {
        Reliability::Unreliable
    } else {
        Reliability::Reliable
    }
}

impl Inner {
    /// The layer's first pending transmission; the others go to the timer task.
    fn first_transmit(&mut self) -> Option<Bytes> {
        let first = self.layer.poll_transmit().map(|t| t.bytes);
        self.defer_transmits();
        first
    }

    fn defer_transmits(&mut self) {
        while let Some(t) = self.layer.poll_transmit() {
            self.deferred.push(t);
        }
    }

    fn drain_events(&mut self) {
        while let Some(event) = self.layer.poll_event() {
            self.note(event);
        }
    }

    /// An event outside request handling: client transactions' events go to their sinks
    /// (`client.rs`); the rest is logged and counted.
    fn note(&mut self, event: Event<Peer>) {
        match event {
            Event::Timeout { key, timer } => {
                self.stats.timeouts += 1;
                debug!(?key, ?timer, "transaction timed out");
                self.send_to_sink(&key, ClientEvent::Timeout);
            }
            Event::TransportError { key } => {
                debug!(?key, "transaction ended by a transport error");
                self.send_to_sink(&key, ClientEvent::TransportError);
            }
            Event::Terminated { key } => {
                trace!(?key, "transaction terminated");
                if let Some(Sink::Core(sink)) = self.sinks.remove(&key) {
                    let _ = sink.send((key, ClientEvent::Terminated));
                }
            }
            Event::Response { key, response } => {
                if self.relay_detached(&key, &response) {
                    trace!(?key, "a late 2xx relayed upstream");
                } else if !self.send_to_sink(&key, ClientEvent::Response(Box::new(response))) {
                    debug!(?key, "response for a client transaction nobody awaits");
                }
            }
            Event::StrayResponse { .. } => trace!("response matching no client transaction"),
            Event::Request { key, .. } | Event::Cancel { key, .. } => {
                debug!(?key, "request event outside request handling; ignored");
            }
            Event::Ack { key, .. } => debug!(?key, "ACK event outside request handling; ignored"),
        }
    }

    /// True when the timer task must look again: something to send, or a deadline earlier
    /// than the one it sleeps to.
    fn wants_wake(&self) -> bool {
        !self.deferred.is_empty()
            || self
                .layer
                .poll_timeout()
                .is_some_and(|at| self.armed.is_none_or(|armed| at < armed))
    }
}

impl TransactionDriver {
    /// Hands `response` to `request`'s server transaction, statelessly when `challenge`
    /// says so and it is a 401 or 407 (see the module documentation); what the layer sends
    /// at once comes back for the caller to send.
    pub(super) fn respond_with(
        &self,
        request: &Message,
        response: Bytes,
        source: &Source,
        challenge: Challenge,
    ) -> Option<Bytes> {
        self.counters
            .response_bytes(crate::metrics::Method::of(request.method_str()), &response);
        let Ok(key) = TransactionKey::for_request(request) else {
            return Some(response);
        };
        let stateless = challenge == Challenge::Stateless && is_challenge(&response);
        let now = Instant::now();
        let mut inner = self.lock();
        let sent = if stateless {
            inner.layer.send_response_stateless(&key, response.clone())
        } else {
            inner.layer.send_response(&key, response.clone(), now)
        };
        match sent {
            Ok(()) => {}
            Err(TransactionError::UnknownTransaction) => return Some(response),
            Err(e) => {
                drop(inner);
                warn!(
                    peer = %source.peer,
                    error = %e,
                    "the transaction refused a response; not sent"
                );
                return None;
            }
        }
        let first = inner.first_transmit();
        inner.drain_events();
        self.release(inner);
        first
    }
}

/// How a response that is a challenge (401, 407) goes through its transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Challenge {
    /// The core's own: sent, and the transaction ends (RFC 3261 §8.2.7).
    Stateless,
    /// Relayed from downstream: kept like any response, since a retransmitted request
    /// would otherwise be forwarded again.
    Kept,
}

/// True for a 401 or 407 response, read from the status line as every builder writes it.
fn is_challenge(response: &[u8]) -> bool {
    matches!(response.get(..12), Some(b"SIP/2.0 401 " | b"SIP/2.0 407 "))
}

impl TransactionHook for TransactionDriver {
    fn request_received(&self, request: &Message, source: &Source) -> Disposition {
        // Everything that needs no lock is done before taking it: the key (made once, for
        // both the cap and the layer), where responses go, the copy the layer keeps.
        let key = match TransactionKey::for_request(request) {
            Ok(key) => key,
            Err(e) => {
                debug!(
                    peer = %source.peer,
                    error = %e,
                    "request identifies no transaction; handled statelessly"
                );
                return Disposition::Continue;
            }
        };
        let peer = self.peer(request, source);
        let is_ack = request.method() == Some(Method::Ack);
        let method = crate::metrics::Method::of(request.method_str());
        let request = request.clone();
        let now = Instant::now();
        let mut inner = self.lock();
        if !is_ack && inner.layer.len() >= self.max_transactions && !inner.layer.contains(&key) {
            inner.stats.overloaded += 1;
            drop(inner);
            debug!(
                peer = %source.peer,
                max_transactions = self.max_transactions,
                "request refused: too many live transactions"
            );
            return Disposition::Overloaded {
                retry_after: RETRY_AFTER,
            };
        }
        inner
            .layer
            .handle_request(key, request, peer, reliability(source), now);
        let mut for_core = false;
        while let Some(event) = inner.layer.poll_event() {
            match event {
                Event::Request { .. } | Event::Cancel { .. } => {
                    inner.stats.requests += 1;
                    self.counters.request(method);
                    for_core = true;
                }
                // An ACK for a 2xx, or for nothing held: the core's (RFC 6026).
                Event::Ack { .. } => for_core = true,
                other => inner.note(other),
            }
        }
        let disposition = if for_core {
            inner.defer_transmits();
            Disposition::Continue
        } else {
            inner.stats.absorbed += 1;
            Disposition::Absorbed {
                resend: inner.first_transmit(),
            }
        };
        self.release(inner);
        disposition
    }

    /// The core's own answer: a challenge (401, 407) ends the transaction as it is sent.
    fn respond(&self, request: &Message, response: Bytes, source: &Source) -> Option<Bytes> {
        self.respond_with(request, response, source, Challenge::Stateless)
    }

    fn response_received(&self, response: &Message, source: &Source) -> Disposition {
        let peer = Peer {
            source: *source,
            target: Some(source.peer),
        };
        let now = Instant::now();
        let mut inner = self.lock();
        let handled = inner
            .layer
            .handle_message(response.clone(), peer, reliability(source), now);
        if handled.is_err() {
            return Disposition::Continue;
        }
        let mut matched = false;
        while let Some(event) = inner.layer.poll_event() {
            match event {
                Event::Response { .. } => {
                    matched = true;
                    inner.note(event);
                }
                other => inner.note(other),
            }
        }
        inner.stats.absorbed += u64::from(matched);
        // A client transaction's ACK for a non-2xx response goes out with the timers'.
        inner.defer_transmits();
        self.release(inner);
        if matched {
            Disposition::Absorbed { resend: None }
        } else {
            Disposition::Continue
        }
    }

    fn start(
        self: Arc<Self>,
        transmitter: Transmitter,
        shutdown: CancellationToken,
    ) -> Option<HookTask> {
        Some(Box::pin(self.run(transmitter, shutdown)))
    }
}

#[path = "client.rs"]
mod client;
use client::Sink;
pub use client::{ClientEvent, ClientSink};

#[cfg(test)]
#[path = "driver_tests.rs"]
mod tests;
