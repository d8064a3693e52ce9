//! [`TransactionLayer`]: many transactions behind one sans-IO interface.
//!
//! The layer owns the map from [`TransactionKey`] to transaction, the queue of timer
//! deadlines, and the queues of [`Transmit`]s and [`Event`]s. It routes each received message:
//! a response to its client transaction (or reports it as stray), a request to its server
//! transaction as a retransmission, an ACK to its INVITE server transaction, a CANCEL to a
//! server transaction of its own while naming the INVITE it cancels, and any other request to
//! a new server transaction that the TU hears about.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::Instant;

use bytes::Bytes;

use crate::message::Message;
use crate::method::Method;

use super::client_invite::{build_cancel, ClientInvite};
use super::client_non_invite::ClientNonInvite;
use super::server_invite::ServerInvite;
use super::server_non_invite::ServerNonInvite;
use super::timers::{Core, Note, Outbox};
use super::{
    Config, Event, KeyError, Kind, Reliability, State, Timer, TransactionError, TransactionKey,
    Transmit,
};

/// Internal handle of a transaction; orders the timer queue deterministically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct TxId(u64);

// The variants are RFC 3261's four machines, named as in `Kind`.
#[allow(clippy::enum_variant_names)]
#[derive(Debug)]
enum Machine {
    ClientInvite(ClientInvite),
    ClientNonInvite(ClientNonInvite),
    ServerInvite(ServerInvite),
    ServerNonInvite(ServerNonInvite),
}

impl Machine {
    fn core(&self) -> &Core {
        match self {
            Machine::ClientInvite(m) => &m.core,
            Machine::ClientNonInvite(m) => &m.core,
            Machine::ServerInvite(m) => &m.core,
            Machine::ServerNonInvite(m) => &m.core,
        }
    }

    fn core_mut(&mut self) -> &mut Core {
        match self {
            Machine::ClientInvite(m) => &mut m.core,
            Machine::ClientNonInvite(m) => &mut m.core,
            Machine::ServerInvite(m) => &mut m.core,
            Machine::ServerNonInvite(m) => &mut m.core,
        }
    }

    fn kind(&self) -> Kind {
        match self {
            Machine::ClientInvite(_) => Kind::ClientInvite,
            Machine::ClientNonInvite(_) => Kind::ClientNonInvite,
            Machine::ServerInvite(_) => Kind::ServerInvite,
            Machine::ServerNonInvite(_) => Kind::ServerNonInvite,
        }
    }

    fn request(&self) -> &Message {
        match self {
            Machine::ClientInvite(m) => m.request(),
            Machine::ClientNonInvite(m) => m.request(),
            Machine::ServerInvite(m) => m.request(),
            Machine::ServerNonInvite(m) => m.request(),
        }
    }

    /// Fires every timer due at `now`, earliest first, until none is due or the transaction
    /// has ended. Re-armed timers are always later than `now` (T1 > 0), so this ends.
    fn on_timeout(&mut self, now: Instant, out: &mut Outbox) {
        while self.core().state != State::Terminated {
            let Some(t) = self.core_mut().timers.take_due(now) else {
                break;
            };
            match self {
                Machine::ClientInvite(m) => m.on_timer(t, now, out),
                Machine::ClientNonInvite(m) => m.on_timer(t, now, out),
                Machine::ServerInvite(m) => m.on_timer(t, now, out),
                Machine::ServerNonInvite(m) => m.on_timer(t),
            }
        }
    }
}

#[derive(Debug)]
struct Entry<P> {
    key: TransactionKey,
    peer: P,
    machine: Machine,
    /// The deadline this entry has in the timer queue.
    scheduled: Option<Instant>,
    /// RFC 2543 INVITE server transactions: the key under which an ACK finds it.
    ack_key: Option<TransactionKey>,
}

/// The transaction layer of one SIP element: every client and server transaction, driven by
/// the caller (see the [module documentation](super)). `P` identifies a peer to send to.
#[derive(Debug)]
pub struct TransactionLayer<P> {
    config: Config,
    ids: HashMap<TransactionKey, TxId>,
    /// RFC 2543 INVITE server transactions by their key without To tag.
    acks_2543: HashMap<TransactionKey, TxId>,
    entries: HashMap<TxId, Entry<P>>,
    timers: BTreeSet<(Instant, TxId)>,
    next_id: u64,
    out: Outbox,
    transmits: VecDeque<Transmit<P>>,
    events: VecDeque<Event<P>>,
}

impl<P: Clone> TransactionLayer<P> {
    /// An empty layer.
    pub fn new(config: Config) -> Self {
        TransactionLayer {
            config,
            ids: HashMap::new(),
            acks_2543: HashMap::new(),
            entries: HashMap::new(),
            timers: BTreeSet::new(),
            next_id: 0,
            out: Outbox::default(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Handles a message received from `from` over a transport of the given reliability
    /// (which applies to a server transaction the message creates). A message that cannot be
    /// tied to any transaction is refused: the driver answers such a request with 400 or
    /// drops it, and drops such a response.
    pub fn handle_message(
        &mut self,
        msg: Message,
        from: P,
        reliability: Reliability,
        now: Instant,
    ) -> Result<(), KeyError> {
        if msg.is_response() {
            let key = TransactionKey::for_response(&msg)?;
            match self.ids.get(&key).copied() {
                Some(id) => {
                    self.drive(id, |m, out| match m {
                        Machine::ClientInvite(c) => c.on_response(msg, now, out),
                        Machine::ClientNonInvite(c) => c.on_response(msg, now, out),
                        _ => {}
                    });
                }
                None => self.events.push_back(Event::StrayResponse {
                    response: msg,
                    peer: from,
                }),
            }
            return Ok(());
        }
        let key = TransactionKey::for_request(&msg)?;
        if msg.method() == Some(Method::Ack) {
            self.handle_ack(&key, msg, from, now);
            return Ok(());
        }
        match self.ids.get(&key).copied() {
            Some(id) => {
                self.drive(id, |m, out| match m {
                    Machine::ServerInvite(s) => s.on_request(out),
                    Machine::ServerNonInvite(s) => s.on_request(out),
                    _ => {}
                });
            }
            None => self.create_server(key, msg, from, reliability, now),
        }
        Ok(())
    }

    fn handle_ack(&mut self, key: &TransactionKey, ack: Message, from: P, now: Instant) {
        let found = self.ids.get(key).copied().or_else(|| {
            // RFC 2543: the ACK carries the To tag of our final response, not the INVITE's.
            let id = *self.acks_2543.get(&key.without_to_tag()?)?;
            match &self.entries.get(&id)?.machine {
                Machine::ServerInvite(s) if s.final_to_tag() == key.to_tag() => Some(id),
                _ => None,
            }
        });
        let Some(id) = found else {
            self.events.push_back(Event::Ack {
                key: None,
                request: ack,
                peer: from,
            });
            return;
        };
        let for_tu = self
            .drive(id, |m, _| match m {
                Machine::ServerInvite(s) => s.on_ack(ack, now),
                _ => None,
            })
            .flatten();
        if let Some(request) = for_tu {
            self.events.push_back(Event::Ack {
                key: Some(key.clone()),
                request,
                peer: from,
            });
        }
    }

    fn create_server(
        &mut self,
        key: TransactionKey,
        request: Message,
        from: P,
        reliability: Reliability,
        now: Instant,
    ) {
        let timers = self.config.timers();
        let (machine, ack_key) = if request.method() == Some(Method::Invite) {
            let trying = self.config.auto_trying();
            let out = &mut self.out;
            let m = ServerInvite::start(request.clone(), timers, reliability, trying, now, out);
            (Machine::ServerInvite(m), key.without_to_tag())
        } else {
            let m = ServerNonInvite::start(request.clone(), timers, reliability);
            (Machine::ServerNonInvite(m), None)
        };
        let event = if request.method() == Some(Method::Cancel) {
            let invite = key.with_method("INVITE");
            let invite = self
                .ids
                .get(&invite)
                .and_then(|id| self.entries.get(id))
                .filter(|e| e.machine.kind() == Kind::ServerInvite)
                .map(|e| e.key.clone());
            Event::Cancel {
                key: key.clone(),
                request,
                peer: from.clone(),
                invite,
            }
        } else {
            Event::Request {
                key: key.clone(),
                request,
                peer: from.clone(),
            }
        };
        self.events.push_back(event);
        let id = self.insert(key, from, machine);
        if let (Some(ack_key), Some(entry)) = (ack_key, self.entries.get_mut(&id)) {
            self.acks_2543.insert(ack_key.clone(), id);
            entry.ack_key = Some(ack_key);
        }
        self.settle(id);
    }

    fn insert(&mut self, key: TransactionKey, peer: P, machine: Machine) -> TxId {
        let id = TxId(self.next_id);
        self.next_id += 1;
        self.ids.insert(key.clone(), id);
        self.entries.insert(
            id,
            Entry {
                key,
                peer,
                machine,
                scheduled: None,
                ack_key: None,
            },
        );
        id
    }

    /// Fires every timer due at `now`. Call it when the instant from
    /// [`TransactionLayer::poll_timeout`] has passed; calling it early does nothing.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(&(at, id)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.remove(&(at, id));
            if let Some(e) = self.entries.get_mut(&id) {
                e.scheduled = None;
            }
            self.drive(id, |m, out| m.on_timeout(now, out));
        }
    }

    /// The next message to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit<P>> {
        self.transmits.pop_front()
    }

    /// The earliest instant at which [`TransactionLayer::handle_timeout`] has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.first().map(|(at, _)| *at)
    }

    /// The next event for the TU.
    pub fn poll_event(&mut self) -> Option<Event<P>> {
        self.events.pop_front()
    }

    /// Starts a client transaction for `request` (any method but ACK) to `to`. The request's
    /// top Via must carry a fresh RFC 3261 branch (`z9hG4bK` and a unique id) and its CSeq
    /// method must be its method. Returns the transaction's key, under which responses come.
    pub fn send_request(
        &mut self,
        request: Bytes,
        to: P,
        reliability: Reliability,
        now: Instant,
    ) -> Result<TransactionKey, TransactionError> {
        let msg =
            Message::parse(request.clone()).map_err(|e| TransactionError::Malformed(e.kind()))?;
        if !msg.is_request() {
            return Err(TransactionError::WrongDirection);
        }
        if msg.method() == Some(Method::Ack) {
            return Err(TransactionError::AckNotATransaction);
        }
        let key = TransactionKey::for_outgoing(&msg)?;
        if self.ids.contains_key(&key) {
            return Err(TransactionError::DuplicateTransaction);
        }
        let timers = self.config.timers();
        let out = &mut self.out;
        let machine = if msg.method() == Some(Method::Invite) {
            let m = ClientInvite::start(msg, request, timers, reliability, now, out);
            Machine::ClientInvite(m)
        } else {
            let m = ClientNonInvite::start(msg, request, timers, reliability, now, out);
            Machine::ClientNonInvite(m)
        };
        let id = self.insert(key.clone(), to, machine);
        self.settle(id);
        Ok(key)
    }

    /// Sends the TU's `response` on server transaction `key` (built with
    /// [`crate::builder::ResponseBuilder`] from the request, or edited from a downstream
    /// response by a proxy). Refused when the state does not allow it, e.g. a second final
    /// response.
    pub fn send_response(
        &mut self,
        key: &TransactionKey,
        response: Bytes,
        now: Instant,
    ) -> Result<(), TransactionError> {
        let id = *self
            .ids
            .get(key)
            .ok_or(TransactionError::UnknownTransaction)?;
        let msg =
            Message::parse(response.clone()).map_err(|e| TransactionError::Malformed(e.kind()))?;
        if !msg.is_response() {
            return Err(TransactionError::WrongDirection);
        }
        self.drive(id, |m, out| match m {
            Machine::ServerInvite(s) => s.send_response(&msg, response, now, out),
            Machine::ServerNonInvite(s) => s.send_response(&msg, response, now, out),
            _ => Err(TransactionError::WrongRole),
        })
        .unwrap_or(Err(TransactionError::UnknownTransaction))
    }

    /// Cancels INVITE client transaction `invite` (RFC 3261 §9.1): builds the CANCEL and sends
    /// it in a client transaction of its own, to the same peer. Refused before a provisional
    /// response has arrived (the TU retries once one has) and after a final one.
    pub fn cancel(
        &mut self,
        invite: &TransactionKey,
        now: Instant,
    ) -> Result<TransactionKey, TransactionError> {
        let entry = self
            .ids
            .get(invite)
            .and_then(|id| self.entries.get(id))
            .ok_or(TransactionError::UnknownTransaction)?;
        let Machine::ClientInvite(tx) = &entry.machine else {
            return Err(TransactionError::NotAnInvite);
        };
        let state = tx.core.state;
        if state != State::Proceeding {
            return Err(TransactionError::CannotCancel(state));
        }
        let cancel = build_cancel(tx.request());
        let (peer, reliability) = (entry.peer.clone(), tx.core.reliability);
        self.send_request(cancel, peer, reliability, now)
    }

    /// Reports that sending for transaction `key` failed (RFC 3261 §17.1.4, §17.2.4): the TU
    /// hears [`Event::TransportError`] and the transaction ends.
    pub fn transport_error(&mut self, key: &TransactionKey) {
        if let Some(id) = self.ids.get(key).copied() {
            self.drive(id, |m, out| {
                out.notes.push(Note::TransportError);
                m.core_mut().terminate();
            });
        }
    }

    /// Ends transaction `key` at once, without a word to the peer (a TU that will never
    /// answer a request, or is shutting down). Returns false if there was no such transaction.
    pub fn terminate(&mut self, key: &TransactionKey) -> bool {
        match self.ids.get(key).copied() {
            Some(id) => self.drive(id, |m, _| m.core_mut().terminate()).is_some(),
            None => false,
        }
    }

    /// The state of transaction `key`, if it exists.
    pub fn state(&self, key: &TransactionKey) -> Option<State> {
        self.entry(key).map(|e| e.machine.core().state)
    }

    /// The kind of transaction `key`, if it exists.
    pub fn kind(&self, key: &TransactionKey) -> Option<Kind> {
        self.entry(key).map(|e| e.machine.kind())
    }

    /// The request that created transaction `key`.
    pub fn request(&self, key: &TransactionKey) -> Option<&Message> {
        self.entry(key).map(|e| e.machine.request())
    }

    /// The peer of transaction `key`.
    pub fn peer(&self, key: &TransactionKey) -> Option<&P> {
        self.entry(key).map(|e| &e.peer)
    }

    /// The armed timers of transaction `key` with their deadlines, in [`Timer`] order.
    pub fn timers(&self, key: &TransactionKey) -> Vec<(Timer, Instant)> {
        self.entry(key)
            .map(|e| e.machine.core().timers.iter().collect())
            .unwrap_or_default()
    }

    /// Number of live transactions.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no transaction is live.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn entry(&self, key: &TransactionKey) -> Option<&Entry<P>> {
        self.ids.get(key).and_then(|id| self.entries.get(id))
    }

    /// Runs `f` on transaction `id`'s machine, then moves what it produced to the queues.
    /// `None` if there is no such transaction.
    fn drive<R>(&mut self, id: TxId, f: impl FnOnce(&mut Machine, &mut Outbox) -> R) -> Option<R> {
        let entry = self.entries.get_mut(&id)?;
        let r = f(&mut entry.machine, &mut self.out);
        self.settle(id);
        Some(r)
    }

    /// Queues transaction `id`'s output, reschedules its timer and forgets it if it ended.
    fn settle(&mut self, id: TxId) {
        let Some(entry) = self.entries.get_mut(&id) else {
            return;
        };
        for bytes in self.out.send.drain(..) {
            self.transmits.push_back(Transmit {
                key: entry.key.clone(),
                peer: entry.peer.clone(),
                bytes,
            });
        }
        for note in self.out.notes.drain(..) {
            let key = entry.key.clone();
            self.events.push_back(match note {
                Note::Response(response) => Event::Response { key, response },
                Note::Timeout(timer) => Event::Timeout { key, timer },
                Note::TransportError => Event::TransportError { key },
            });
        }
        let next = entry.machine.core().timers.next();
        if next != entry.scheduled {
            if let Some(old) = entry.scheduled {
                self.timers.remove(&(old, id));
            }
            if let Some(new) = next {
                self.timers.insert((new, id));
            }
            entry.scheduled = next;
        }
        if entry.machine.core().state == State::Terminated {
            if let Some(entry) = self.entries.remove(&id) {
                if let Some(at) = entry.scheduled {
                    self.timers.remove(&(at, id));
                }
                self.ids.remove(&entry.key);
                if let Some(ack_key) = &entry.ack_key {
                    if self.acks_2543.get(ack_key) == Some(&id) {
                        self.acks_2543.remove(ack_key);
                    }
                }
                self.events.push_back(Event::Terminated { key: entry.key });
            }
        }
    }
}
