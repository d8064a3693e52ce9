//! [`Table`]: where a layer keeps its transactions, and when each has work to do.
//!
//! **What a transaction costs.** Over UDP a non-INVITE transaction spends almost all its
//! life in Completed, absorbing retransmissions: 64·T1 = 32 s on the server (Timer J), T4 =
//! 5 s on the client (Timer K), against milliseconds before it. Under load those are nearly
//! all the transactions alive, so a transaction entering that state gives up its state
//! machine, request, peer and timer set, and keeps a [`Slot`] with only what it still needs:
//! a server transaction its final response (copied to a buffer of its own size: the one it
//! was built in is often larger), a client transaction nothing. Its deadline goes into a
//! queue per wait ([`Linger`]): every transaction waiting on Timer J waits the same 64·T1, so
//! they expire in the order they arrived and the queue is appended to, never sorted. The key
//! is stored once: the map's key, whose buffer the queues and a live transaction's
//! [`Live::key`] share rather than copy. What that comes to is measured by the
//! `transaction_memory` test: a completed server transaction keeps its response and under
//! 200 bytes more.
//!
//! Live transactions (every other state, and every INVITE transaction) keep their machine
//! and their next deadline in an ordered timer queue, as before they complete.
//!
//! The map is split into shards and the queues into chunks (`shards.rs`), so that no growth
//! of either stops the layer for more than a fraction of a millisecond, whatever it holds.

use std::collections::BTreeMap;
use std::time::Instant;

use super::machine::Machine;
use super::shards::{Chunked, KeyMap, Sharded};
use super::{Kind, State, Timer, TransactionKey};

/// Internal handle of a live transaction; orders the timer queue deterministically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct TxId(u64);

/// One transaction in the map.
#[derive(Debug)]
pub(crate) enum Slot<P> {
    /// A transaction with work to do: its state machine and everything around it.
    Live(Box<Live<P>>),
    /// A non-INVITE server transaction in Completed over UDP: its final response, sent again
    /// for every retransmitted request until Timer J ends it. A plain exact-size buffer:
    /// half the size of a `Bytes` handle, in every slot of the map, and a retransmission
    /// (rare) pays for its copy.
    Answered(Box<[u8]>),
    /// A non-INVITE client transaction in Completed over UDP: absorbs retransmitted
    /// responses until Timer K ends it.
    Absorbing,
}

impl<P> Slot<P> {
    pub(crate) fn state(&self) -> State {
        match self {
            Slot::Live(live) => live.machine.core().state,
            Slot::Answered(_) | Slot::Absorbing => State::Completed,
        }
    }

    pub(crate) fn kind(&self) -> Kind {
        match self {
            Slot::Live(live) => live.machine.kind(),
            Slot::Answered(_) => Kind::ServerNonInvite,
            Slot::Absorbing => Kind::ClientNonInvite,
        }
    }
}

/// A transaction with work to do.
#[derive(Debug)]
pub(crate) struct Live<P> {
    id: TxId,
    /// The map's key (the same shared buffer), for what the transaction sends and reports.
    pub(crate) key: TransactionKey,
    pub(crate) peer: P,
    pub(crate) machine: Machine,
    /// The deadline this transaction has in the timer queue.
    scheduled: Option<Instant>,
    /// RFC 2543 INVITE server transactions: the key under which an ACK finds it.
    ack_key: Option<TransactionKey>,
}

/// The queues of compact transactions' deadlines, one per wait: within one, every wait is
/// equally long, so deadlines arrive in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Linger {
    /// Timer J: [`Slot::Answered`].
    J,
    /// Timer K: [`Slot::Absorbing`].
    K,
}

impl Linger {
    fn of<P>(slot: &Slot<P>) -> Option<Linger> {
        match slot {
            Slot::Live(_) => None,
            Slot::Answered(_) => Some(Linger::J),
            Slot::Absorbing => Some(Linger::K),
        }
    }

    fn timer(self) -> Timer {
        match self {
            Linger::J => Timer::J,
            Linger::K => Timer::K,
        }
    }
}

/// What [`Table::pop_due`] found due.
#[derive(Debug)]
pub(crate) enum Due {
    /// A timer of this live transaction: run its machine's timers.
    Timer(TransactionKey),
    /// This compact transaction's wait is over: it has been removed.
    Expired(TransactionKey),
}

/// Every transaction of a layer, and their deadlines.
#[derive(Debug)]
pub(crate) struct Table<P> {
    transactions: Sharded<Slot<P>>,
    /// RFC 2543 INVITE server transactions by their key without To tag.
    acks_2543: KeyMap<TransactionKey>,
    /// Live transactions' next deadlines.
    timers: BTreeMap<(Instant, TxId), TransactionKey>,
    /// Compact transactions' deadlines, by [`Linger`]. The key is the map's own (the same
    /// buffer), which tells a transaction from a later one with an equal key.
    lingering: [Chunked<(Instant, TransactionKey)>; 2],
    next_id: u64,
}

impl<P> Default for Table<P> {
    fn default() -> Self {
        Table {
            transactions: Sharded::default(),
            acks_2543: KeyMap::default(),
            timers: BTreeMap::new(),
            lingering: Default::default(),
            next_id: 0,
        }
    }
}

impl<P> Table<P> {
    /// Adds a new live transaction; `ack_key` for an RFC 2543 INVITE server transaction.
    pub(crate) fn insert(
        &mut self,
        key: TransactionKey,
        peer: P,
        machine: Machine,
        ack_key: Option<TransactionKey>,
    ) {
        let id = TxId(self.next_id);
        self.next_id += 1;
        if let Some(ack_key) = &ack_key {
            self.acks_2543.insert(ack_key.clone(), key.clone());
        }
        let live = Live {
            id,
            key: key.clone(),
            peer,
            machine,
            scheduled: None,
            ack_key,
        };
        self.transactions.insert(key, Slot::Live(Box::new(live)));
    }

    pub(crate) fn get(&self, key: &TransactionKey) -> Option<&Slot<P>> {
        self.transactions.get(key)
    }

    pub(crate) fn get_mut(&mut self, key: &TransactionKey) -> Option<&mut Slot<P>> {
        self.transactions.get_mut(key)
    }

    /// The transaction `key` and the map's own key for it.
    pub(crate) fn get_key_value(
        &self,
        key: &TransactionKey,
    ) -> Option<(&TransactionKey, &Slot<P>)> {
        self.transactions.get_key_value(key)
    }

    pub(crate) fn live(&self, key: &TransactionKey) -> Option<&Live<P>> {
        match self.transactions.get(key) {
            Some(Slot::Live(live)) => Some(live),
            _ => None,
        }
    }

    pub(crate) fn live_mut(&mut self, key: &TransactionKey) -> Option<&mut Live<P>> {
        match self.transactions.get_mut(key) {
            Some(Slot::Live(live)) => Some(live),
            _ => None,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.transactions.len()
    }

    /// The INVITE server transaction an RFC 2543 ACK with `key` acknowledges: the one with
    /// the same fields but the To tag, whose final response carried the ACK's To tag.
    pub(crate) fn invite_for_2543_ack(&self, key: &TransactionKey) -> Option<TransactionKey> {
        let invite = self.acks_2543.get(&key.without_to_tag()?)?;
        match &self.live(invite)?.machine {
            Machine::ServerInvite(s) if s.final_to_tag() == key.to_tag() => Some(invite.clone()),
            _ => None,
        }
    }

    /// After live transaction `key`'s machine has run: forgets it if it has ended (and
    /// returns its key), compacts it if it now only absorbs retransmissions, or else
    /// reschedules it.
    pub(crate) fn update(&mut self, key: &TransactionKey) -> Option<TransactionKey> {
        let Some(Slot::Live(live)) = self.transactions.get_mut(key) else {
            return None;
        };
        let next = live.machine.core().timers.next();
        let ended = live.machine.core().state == State::Terminated;
        let compact = if ended || live.ack_key.is_some() {
            None
        } else {
            live.machine.compact()
        };
        if next == live.scheduled && !ended && compact.is_none() {
            return None;
        }
        if let Some(old) = live.scheduled.take() {
            self.timers.remove(&(old, live.id));
        }
        if ended {
            return self.remove(key).map(|(k, _)| k);
        }
        match compact {
            Some((slot, linger, at)) => {
                let queue = &mut self.lingering[linger as usize];
                // In order by construction, bar callers whose clocks were read a moment
                // apart: then the place is found near the back.
                queue.insert_ordered((at, live.key.clone()), |(t, _)| *t <= at);
                if let Some(entry) = self.transactions.get_mut(key) {
                    *entry = slot;
                }
            }
            None => {
                if let Some(at) = next {
                    self.timers.insert((at, live.id), live.key.clone());
                }
                live.scheduled = next;
            }
        }
        None
    }

    /// Forgets transaction `key` at once; returns the map's key and what it held. A compact
    /// transaction's deadline stays queued, and is passed over when it comes.
    pub(crate) fn remove(&mut self, key: &TransactionKey) -> Option<(TransactionKey, Slot<P>)> {
        let (key, slot) = self.transactions.remove_entry(key)?;
        if let Slot::Live(live) = &slot {
            if let Some(old) = live.scheduled {
                self.timers.remove(&(old, live.id));
            }
            if let Some(ack_key) = &live.ack_key {
                if self.acks_2543.get(ack_key).is_some_and(|k| k.is(&key)) {
                    self.acks_2543.remove(ack_key);
                }
            }
        }
        Some((key, slot))
    }

    /// The earliest deadline of any transaction.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let live = self.timers.first_key_value().map(|(&(at, _), _)| at);
        let lingering = self.next_lingering().map(|(at, _)| at);
        live.into_iter().chain(lingering).min()
    }

    fn next_lingering(&self) -> Option<(Instant, Linger)> {
        [Linger::J, Linger::K]
            .into_iter()
            .filter_map(|l| self.lingering[l as usize].front().map(|(at, _)| (*at, l)))
            .min_by_key(|(at, _)| *at)
    }

    /// The next deadline due at `now`, earliest first; at equal instants a compact
    /// transaction's, the older kind, comes first.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<Due> {
        loop {
            let live = self
                .timers
                .first_key_value()
                .map(|(&(at, _), _)| at)
                .filter(|at| *at <= now);
            let lingering = self.next_lingering().filter(|(at, _)| *at <= now);
            match (live, lingering) {
                (_, Some((at, linger))) if live.is_none_or(|l| at <= l) => {
                    let (_, key) = self.lingering[linger as usize].pop_front()?;
                    // Ended early, perhaps succeeded by a transaction with an equal key:
                    // only the very transaction that queued this deadline ends.
                    let ours = self
                        .transactions
                        .get_key_value(&key)
                        .is_some_and(|(k, slot)| k.is(&key) && !matches!(slot, Slot::Live(_)));
                    if ours {
                        self.remove(&key);
                        return Some(Due::Expired(key));
                    }
                }
                (Some(_), _) => {
                    let ((_, id), key) = self.timers.pop_first()?;
                    if let Some(live) = self.live_mut(&key).filter(|l| l.id == id) {
                        live.scheduled = None;
                        return Some(Due::Timer(key));
                    }
                }
                (None, _) => return None,
            }
        }
    }

    /// The armed timers of transaction `key`. For a compact one this looks through the
    /// queue of its wait: meant for tests and diagnostics, not for every message.
    pub(crate) fn timers(&self, key: &TransactionKey) -> Vec<(Timer, Instant)> {
        let Some((k, slot)) = self.transactions.get_key_value(key) else {
            return Vec::new();
        };
        if let Slot::Live(live) = slot {
            return live.machine.core().timers.iter().collect();
        }
        let Some(linger) = Linger::of(slot) else {
            return Vec::new();
        };
        self.lingering[linger as usize]
            .iter()
            .filter(|(_, queued)| queued.is(k))
            .map(|(at, _)| (linger.timer(), *at))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_is_three_words() {
        // Every slot of the map is this size, compact or live: keep it small.
        assert_eq!(size_of::<Slot<std::net::SocketAddr>>(), 24);
    }
}
