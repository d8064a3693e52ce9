//! [`TransactionLayer`]: many transactions behind one sans-IO interface.
//!
//! The layer owns the transactions (a [`Table`], which also keeps their deadlines and what a
//! completed transaction keeps: see `table`), and the queues of [`Transmit`]s and
//! [`Event`]s. It routes each received message: a response to its client transaction (or
//! reports it as stray), a request to its server transaction as a retransmission, an ACK to
//! its INVITE server transaction, a CANCEL to a server transaction of its own while naming
//! the INVITE it cancels, and any other request to a new server transaction that the TU
//! hears about.

use std::collections::VecDeque;
use std::time::Instant;

use bytes::Bytes;

use crate::message::Message;
use crate::method::Method;

use super::client_invite::{build_cancel, ClientInvite};
use super::client_non_invite::ClientNonInvite;
use super::machine::Machine;
use super::server_invite::ServerInvite;
use super::server_non_invite::ServerNonInvite;
use super::table::{Due, Live, Slot, Table};
use super::timers::{Note, Outbox};
use super::{
    Config, Event, KeyError, Kind, Reliability, State, Timer, TransactionError, TransactionKey,
    Transmit,
};

/// The transaction layer of one SIP element: every client and server transaction, driven by
/// the caller (see the [module documentation](super)). `P` identifies a peer to send to.
#[derive(Debug)]
pub struct TransactionLayer<P> {
    config: Config,
    table: Table<P>,
    out: Outbox,
    transmits: VecDeque<Transmit<P>>,
    events: VecDeque<Event<P>>,
}

impl<P: Clone> TransactionLayer<P> {
    /// An empty layer.
    pub fn new(config: Config) -> Self {
        TransactionLayer {
            config,
            table: Table::default(),
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
            match self.table.get(&key) {
                Some(Slot::Live(_)) => {
                    self.drive(&key, |m, out| match m {
                        Machine::ClientInvite(c) => c.on_response(msg, now, out),
                        Machine::ClientNonInvite(c) => c.on_response(msg, now, out),
                        _ => {}
                    });
                }
                // Completed: a retransmitted response, absorbed.
                Some(_) => {}
                None => self.events.push_back(Event::StrayResponse {
                    response: msg,
                    peer: from,
                }),
            }
            return Ok(());
        }
        let key = TransactionKey::for_request(&msg)?;
        self.handle_request(key, msg, from, reliability, now);
        Ok(())
    }

    /// [`TransactionLayer::handle_message`] for a request whose key the caller has already
    /// made (to look it up with [`TransactionLayer::contains`] first, say): `key` must be
    /// [`TransactionKey::for_request`] of `request`.
    pub fn handle_request(
        &mut self,
        key: TransactionKey,
        request: Message,
        from: P,
        reliability: Reliability,
        now: Instant,
    ) {
        debug_assert!(request.is_request());
        if request.method() == Some(Method::Ack) {
            self.handle_ack(key, request, from, now);
            return;
        }
        match self.table.get(&key) {
            Some(Slot::Live(_)) => {
                self.drive(&key, |m, out| match m {
                    Machine::ServerInvite(s) => s.on_request(out),
                    Machine::ServerNonInvite(s) => s.on_request(out),
                    _ => {}
                });
            }
            // Sent back to where the retransmission came from: the same Via, so the same
            // address (RFC 3261 §18.2.2) as the request the response first answered.
            Some(Slot::Answered(response)) => self.transmits.push_back(Transmit {
                bytes: Bytes::copy_from_slice(response),
                key,
                peer: from,
            }),
            // A client transaction's: a request never has its key (the roles differ).
            Some(Slot::Absorbing) => {}
            None => self.create_server(key, request, from, reliability, now),
        }
    }

    fn handle_ack(&mut self, key: TransactionKey, ack: Message, from: P, now: Instant) {
        let found = if self.table.get(&key).is_some() {
            Some(key.clone())
        } else {
            // RFC 2543: the ACK carries the To tag of our final response, not the INVITE's.
            self.table.invite_for_2543_ack(&key)
        };
        let Some(invite) = found else {
            self.events.push_back(Event::Ack {
                key: None,
                request: ack,
                peer: from,
            });
            return;
        };
        let for_tu = self
            .drive(&invite, |m, _| match m {
                Machine::ServerInvite(s) => s.on_ack(ack, now),
                _ => None,
            })
            .flatten();
        if let Some(request) = for_tu {
            self.events.push_back(Event::Ack {
                key: Some(key),
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
            let invite = self
                .table
                .get_key_value(&key.with_method("INVITE"))
                .filter(|(_, slot)| slot.kind() == Kind::ServerInvite)
                .map(|(k, _)| k.clone());
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
        self.table.insert(key.clone(), from, machine, ack_key);
        self.settle(&key);
    }

    /// Fires every timer due at `now`. Call it when the instant from
    /// [`TransactionLayer::poll_timeout`] has passed; calling it early does nothing.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(due) = self.table.pop_due(now) {
            match due {
                Due::Timer(key) => {
                    self.drive(&key, |m, out| m.on_timeout(now, out));
                }
                Due::Expired(key) => self.events.push_back(Event::Terminated { key }),
            }
        }
    }

    /// The next message to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit<P>> {
        self.transmits.pop_front()
    }

    /// The earliest instant at which [`TransactionLayer::handle_timeout`] has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.table.next_deadline()
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
        if self.table.get(&key).is_some() {
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
        self.table.insert(key.clone(), to, machine, None);
        self.settle(&key);
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
        let live = answerable(&mut self.table, key, &response)?;
        let out = &mut self.out;
        let sent = match &mut live.machine {
            Machine::ServerInvite(s) => {
                // The To tag of a final response is kept for RFC 2543 ACKs: the whole parse.
                let msg = parse_response(&response)?;
                s.send_response(&msg, response, now, out)
            }
            Machine::ServerNonInvite(s) => {
                let status = response_status(&response)?;
                s.send_response(status, response, now, out)
            }
            _ => Err(TransactionError::WrongRole),
        };
        self.settle(key);
        sent
    }

    /// Sends the TU's final `response` on server transaction `key` and ends the transaction
    /// at once: nothing is kept to answer a retransmitted request (which is then a new
    /// request to the TU), and an INVITE's response is neither retransmitted on Timer G nor
    /// its ACK awaited (the ACK then matches nothing and goes to the TU). For the responses a
    /// UAS gives statelessly (RFC 3261 §8.2.7), above all challenges to unauthenticated
    /// requests, so that a flood of them leaves no state behind. Refused like
    /// [`TransactionLayer::send_response`] when the transaction could not send a final
    /// response, and for a provisional one, which ends nothing.
    pub fn send_response_stateless(
        &mut self,
        key: &TransactionKey,
        response: Bytes,
    ) -> Result<(), TransactionError> {
        let live = answerable(&mut self.table, key, &response)?;
        let status = response_status(&response)?;
        let state = live.machine.core().state;
        let open = match &live.machine {
            Machine::ServerInvite(_) => state == State::Proceeding,
            Machine::ServerNonInvite(_) => matches!(state, State::Trying | State::Proceeding),
            _ => return Err(TransactionError::WrongRole),
        };
        if !open || status < 200 {
            return Err(TransactionError::InvalidState { state, status });
        }
        self.out.send.push(response);
        live.machine.core_mut().terminate();
        self.settle(key);
        Ok(())
    }

    /// Cancels INVITE client transaction `invite` (RFC 3261 §9.1): builds the CANCEL and sends
    /// it in a client transaction of its own, to the same peer. Refused before a provisional
    /// response has arrived (the TU retries once one has) and after a final one.
    pub fn cancel(
        &mut self,
        invite: &TransactionKey,
        now: Instant,
    ) -> Result<TransactionKey, TransactionError> {
        let live = match self.table.get(invite) {
            Some(Slot::Live(live)) => live,
            Some(_) => return Err(TransactionError::NotAnInvite),
            None => return Err(TransactionError::UnknownTransaction),
        };
        let Machine::ClientInvite(tx) = &live.machine else {
            return Err(TransactionError::NotAnInvite);
        };
        let state = tx.core.state;
        if state != State::Proceeding {
            return Err(TransactionError::CannotCancel(state));
        }
        let cancel = build_cancel(tx.request());
        let (peer, reliability) = (live.peer.clone(), tx.core.reliability);
        self.send_request(cancel, peer, reliability, now)
    }

    /// Reports that sending for transaction `key` failed (RFC 3261 §17.1.4, §17.2.4): the TU
    /// hears [`Event::TransportError`] and the transaction ends.
    pub fn transport_error(&mut self, key: &TransactionKey) {
        if self.table.live(key).is_some() {
            self.drive(key, |m, out| {
                out.notes.push(Note::TransportError);
                m.core_mut().terminate();
            });
        } else if let Some((key, _)) = self.table.remove(key) {
            self.events
                .push_back(Event::TransportError { key: key.clone() });
            self.events.push_back(Event::Terminated { key });
        }
    }

    /// Ends transaction `key` at once, without a word to the peer (a TU that will never
    /// answer a request, or is shutting down). Returns false if there was no such transaction.
    pub fn terminate(&mut self, key: &TransactionKey) -> bool {
        if self.table.live(key).is_some() {
            return self.drive(key, |m, _| m.core_mut().terminate()).is_some();
        }
        match self.table.remove(key) {
            Some((key, _)) => {
                self.events.push_back(Event::Terminated { key });
                true
            }
            None => false,
        }
    }

    /// True when transaction `key` exists: a request with this key is a retransmission (or
    /// its ACK), not a new transaction.
    pub fn contains(&self, key: &TransactionKey) -> bool {
        self.table.get(key).is_some()
    }

    /// The state of transaction `key`, if it exists.
    pub fn state(&self, key: &TransactionKey) -> Option<State> {
        self.table.get(key).map(Slot::state)
    }

    /// The kind of transaction `key`, if it exists.
    pub fn kind(&self, key: &TransactionKey) -> Option<Kind> {
        self.table.get(key).map(Slot::kind)
    }

    /// The request that created transaction `key`, for as long as the transaction keeps it:
    /// not once a non-INVITE transaction is Completed over UDP, nor once an INVITE server
    /// transaction has sent a non-2xx final response.
    pub fn request(&self, key: &TransactionKey) -> Option<&Message> {
        self.table.live(key).and_then(|l| l.machine.request())
    }

    /// The peer of transaction `key`, while it has one: a non-INVITE transaction Completed
    /// over UDP sends nothing more on its own, and answers a retransmission to where that
    /// came from.
    pub fn peer(&self, key: &TransactionKey) -> Option<&P> {
        self.table.live(key).map(|l| &l.peer)
    }

    /// The armed timers of transaction `key` with their deadlines, in [`Timer`] order. For a
    /// Completed non-INVITE transaction over UDP this looks through the queue of its wait:
    /// meant for tests and diagnostics, not for every message.
    pub fn timers(&self, key: &TransactionKey) -> Vec<(Timer, Instant)> {
        self.table.timers(key)
    }

    /// Number of live transactions.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// True when no transaction is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Runs `f` on live transaction `key`'s machine, then moves what it produced to the
    /// queues. `None` if there is no such live transaction.
    fn drive<R>(
        &mut self,
        key: &TransactionKey,
        f: impl FnOnce(&mut Machine, &mut Outbox) -> R,
    ) -> Option<R> {
        let live = self.table.live_mut(key)?;
        let r = f(&mut live.machine, &mut self.out);
        self.settle(key);
        Some(r)
    }

    /// Queues live transaction `key`'s output, then lets the table forget, compact or
    /// reschedule it.
    fn settle(&mut self, key: &TransactionKey) {
        let Some(live) = self.table.live(key) else {
            return;
        };
        for bytes in self.out.send.drain(..) {
            self.transmits.push_back(Transmit {
                key: live.key.clone(),
                peer: live.peer.clone(),
                bytes,
            });
        }
        for note in self.out.notes.drain(..) {
            let key = live.key.clone();
            self.events.push_back(match note {
                Note::Response(response) => Event::Response { key, response },
                Note::Timeout(timer) => Event::Timeout { key, timer },
                Note::TransportError => Event::TransportError { key },
            });
        }
        if let Some(ended) = self.table.update(key) {
            self.events.push_back(Event::Terminated { key: ended });
        }
    }
}

/// The live transaction `key`, to which the TU gives `response`; the error a response to
/// a transaction in any other slot gets.
fn answerable<'t, P>(
    table: &'t mut Table<P>,
    key: &TransactionKey,
    response: &Bytes,
) -> Result<&'t mut Live<P>, TransactionError> {
    match table.get_mut(key) {
        Some(Slot::Live(live)) => Ok(live),
        Some(Slot::Answered(_)) => {
            let status = response_status(response)?;
            let state = State::Completed;
            Err(TransactionError::InvalidState { state, status })
        }
        Some(Slot::Absorbing) => Err(TransactionError::WrongRole),
        None => Err(TransactionError::UnknownTransaction),
    }
}

/// The status code of a response the TU gives. The status line as every builder writes it
/// (`SIP/2.0 200 OK`) is read where it stands, without parsing the message; anything else is
/// parsed, and refused as a parse refuses it.
fn response_status(response: &Bytes) -> Result<u16, TransactionError> {
    let code = response.strip_prefix(b"SIP/2.0 ").and_then(|rest| {
        let digits = rest.get(..3)?;
        let ok = digits.iter().all(u8::is_ascii_digit) && matches!(rest.get(3), Some(b' ' | b'\r'));
        ok.then(|| {
            digits
                .iter()
                .fold(0u16, |n, d| n * 10 + u16::from(d - b'0'))
        })
    });
    match code {
        Some(code) if (100..=699).contains(&code) => Ok(code),
        _ => parse_response(response)?
            .status()
            .ok_or(TransactionError::WrongDirection),
    }
}

fn parse_response(response: &Bytes) -> Result<Message, TransactionError> {
    let msg =
        Message::parse(response.clone()).map_err(|e| TransactionError::Malformed(e.kind()))?;
    if !msg.is_response() {
        return Err(TransactionError::WrongDirection);
    }
    Ok(msg)
}
