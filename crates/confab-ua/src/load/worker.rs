//! One worker: a share of the simulated users on one socket, the operations they have in
//! flight, and everything that happens to them — starting operations as the [`Pacer`] says,
//! firing retransmission and timeout timers, handing responses to their operation (found by
//! the branch of the top Via) and requests to the [`Callee`]. No I/O: the driver hands in
//! datagrams and the time, and what to send goes out through a [`Wire`], so the same core can
//! be driven by a test.
//!
//! Operation slots are reused (with their buffers), so a steady run allocates little beyond
//! parsing what arrives and formatting credentials.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use confab_sip::{Message, Method};

use super::auth::{Cached, Ha1, Round};
use super::callee::Callee;
use super::pace::Pacer;
use super::presence::{local_presentities, Tally, Watch};
use super::timers::{Backoff, Fifo};
use super::wire::parse_branch;
use super::{LoadConfig, Scenario};

/// Where a worker's datagrams go.
pub(crate) trait Wire {
    /// Sends one datagram to `to`; false when the socket failed (a full buffer is not a
    /// failure: the datagram is lost, as UDP may lose it, and retransmission recovers).
    fn send(&mut self, to: SocketAddr, bytes: &[u8]) -> bool;
}

/// Why an operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Failure {
    /// A final response that is not the answer hoped for.
    Status(u16),
    /// No answer in time.
    Timeout,
    /// The socket refused to send.
    Transport,
    /// A response the generator cannot act on.
    Error,
    /// A subscription left pending by the presentity's rules (subscribe setup).
    Pending,
    /// A subscription ended by the server before it was established (subscribe setup).
    Terminated,
}

impl Failure {
    /// The key in [`super::LoadReport::failures`].
    pub(crate) fn key(self) -> String {
        match self {
            Failure::Status(s) => s.to_string(),
            Failure::Timeout => "timeout".into(),
            Failure::Transport => "transport".into(),
            Failure::Error => "error".into(),
            Failure::Pending => "pending".into(),
            Failure::Terminated => "terminated".into(),
        }
    }
}

/// What a worker counted in one phase.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub(crate) attempted: u64,
    pub(crate) succeeded: u64,
    pub(crate) failures: BTreeMap<Failure, u64>,
    /// The first failure, with the user's name.
    pub(crate) first_failure: Option<String>,
    /// Latency of each success, in µs.
    pub(crate) latencies: Vec<u64>,
    /// When each of `latencies` finished.
    pub(crate) finished: Vec<Instant>,
    pub(crate) retransmissions: u64,
    pub(crate) stray: u64,
    pub(crate) last_done: Option<Instant>,
    /// Subscribe scenario: from PUBLISH to NOTIFY, in µs, for each NOTIFY counted.
    pub(crate) notify_latencies: Vec<u64>,
}

/// What operations of a phase do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Register,
    /// Clear the user's bindings, then register (before the message and call scenarios).
    Setup,
    Message,
    Call,
    /// Every watcher subscribes to its presentities (after the setup of the subscribe
    /// scenario).
    Watch,
    Publish,
}

impl From<Scenario> for Kind {
    fn from(s: Scenario) -> Kind {
        match s {
            Scenario::Register => Kind::Register,
            Scenario::Message => Kind::Message,
            Scenario::Call => Kind::Call,
            Scenario::Subscribe => Kind::Publish,
        }
    }
}

/// The request an operation is waiting on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// REGISTER with `Contact: *` and `Expires: 0`.
    Clear,
    Register,
    Message,
    Invite,
    Bye,
    /// SUBSCRIBE of the operation's current subscription (`Op::sub`).
    Subscribe,
    Publish,
}

/// One simulated user, as its worker keeps it: about a hundred bytes.
#[derive(Debug, Default)]
pub(crate) struct User {
    /// CSeq of its last REGISTER (one Call-ID per user for the whole run).
    pub(crate) cseq: u32,
    /// An operation is in flight (or about to start from the ready list).
    pub(crate) busy: bool,
    /// Operations waiting for it.
    pub(crate) queued: u32,
    pub(crate) ha1: Option<Ha1>,
    /// The proxy's last challenge, answered preemptively by MESSAGE and INVITE.
    pub(crate) proxy: Option<Box<Cached>>,
}

/// One operation in flight, in a reusable slot.
#[derive(Debug)]
pub(crate) struct Op {
    pub(crate) live: bool,
    pub(crate) number: u64,
    /// The user's index in its worker.
    pub(crate) user: u32,
    /// Subscribe setup: the subscription being made (an index in `Worker::subs`).
    pub(crate) sub: u32,
    pub(crate) step: Step,
    pub(crate) started: Instant,
    /// The current client transaction: its number in the branch, CSeq, state.
    pub(crate) seq: u32,
    pub(crate) cseq: u32,
    pub(crate) provisional: bool,
    pub(crate) answered: bool,
    /// The current request, as sent (for retransmission).
    pub(crate) request: Vec<u8>,
    /// The last ACK sent and the INVITE transaction it acknowledges (0: none), sent again
    /// when that transaction's final response comes again.
    pub(crate) ack: Vec<u8>,
    pub(crate) ack_seq: u32,
    pub(crate) round: Round,
    /// The registrar's challenge (401), answered by this operation's next requests.
    pub(crate) www: Option<Cached>,
    /// The BYE was challenged: it carries credentials from then on.
    pub(crate) bye_auth: bool,
    /// The dialog of a call: CSeq of the INVITE, To with the tag, remote target, route set,
    /// and the INVITE's Proxy-Authorization (repeated in the ACK for a 2xx).
    pub(crate) invite_cseq: u32,
    pub(crate) to: String,
    pub(crate) target: String,
    pub(crate) route: String,
    pub(crate) proxy_auth: String,
}

impl Op {
    fn empty(now: Instant) -> Op {
        Op {
            live: false,
            number: 0,
            user: 0,
            sub: 0,
            step: Step::Register,
            started: now,
            seq: 0,
            cseq: 0,
            provisional: false,
            answered: false,
            request: Vec::new(),
            ack: Vec::new(),
            ack_seq: 0,
            round: Round::default(),
            www: None,
            bye_auth: false,
            invite_cseq: 0,
            to: String::new(),
            target: String::new(),
            route: String::new(),
            proxy_auth: String::new(),
        }
    }
}

/// What a worker is, fixed for the run.
#[derive(Debug, Clone)]
pub(crate) struct Setting {
    /// This worker's index among `workers`.
    pub(crate) index: usize,
    pub(crate) workers: usize,
    /// Its socket's address (Via, Contact).
    pub(crate) local: SocketAddr,
    pub(crate) server: SocketAddr,
    /// The run's random id (Call-IDs, markers).
    pub(crate) run: u64,
    /// This worker's random tag (branches).
    pub(crate) tag: u32,
    pub(crate) t1: Duration,
    pub(crate) t2: Duration,
}

/// Non-INVITE retransmissions stop doubling at T2: level `log2(T2/T1)`.
fn t2_level(t1: Duration, t2: Duration) -> u8 {
    let mut k = 0u8;
    while k < 6 && t1 * (1u32 << (k + 1)) <= t2 {
        k += 1;
    }
    k
}

/// One worker (see the module documentation).
pub(crate) struct Worker {
    pub(crate) cfg: Arc<LoadConfig>,
    pub(crate) set: Setting,
    pub(crate) users: Vec<User>,
    pub(crate) ops: Vec<Op>,
    free: Vec<u32>,
    live: usize,
    /// Operations waiting for a busy user.
    queued: usize,
    /// Users whose next queued operation starts at the next tick.
    ready: Vec<u32>,
    next_seq: u32,
    pub(crate) retx: Backoff<(u32, u32)>,
    pub(crate) t2_level: u8,
    /// Timers B and F (64·T1) of each transaction, by slot and transaction number.
    transaction_timeouts: Fifo<(u32, u32)>,
    deadlines: Fifo<(u32, u64)>,
    pacer: Pacer,
    kind: Kind,
    /// Operations started so far, all phases together: operation numbers follow from it,
    /// so that a timer set for an operation of one phase never matches one of the next.
    started: u64,
    pub(crate) stats: Stats,
    pub(crate) callee: Callee,
    /// Realms seen, so that a user's HA1 names its realm by index.
    pub(crate) realms: Vec<Box<str>>,
    /// The SDP of every INVITE.
    pub(crate) sdp: Vec<u8>,
    /// Subscribe scenario: this worker's users `0..first_watcher` are presentities, the
    /// others watchers.
    pub(crate) first_watcher: usize,
    /// The watchers' subscriptions: `watch` per watcher, in the order of the users.
    pub(crate) subs: Vec<Watch>,
    /// The presentities' entity-tags (`SIP-ETag` of their last PUBLISH's 2xx).
    pub(crate) etags: Vec<Option<Box<str>>>,
    /// What the workers count together.
    pub(crate) tally: Arc<Tally>,
    /// The start of the measured phase, shared by all workers (PIDF notes, NOTIFY latency).
    pub(crate) t0: Option<Instant>,
    /// Responses to NOTIFYs.
    pub(crate) buf: Vec<u8>,
}

impl Worker {
    pub(crate) fn new(cfg: Arc<LoadConfig>, set: Setting, delivered: Arc<AtomicU64>) -> Worker {
        let now = Instant::now();
        let users = super::pace::share(cfg.users as u64, set.workers, set.index) as usize;
        let sdp = crate::minimal_sdp(set.local.ip()).into_bytes();
        let callee = Callee::new(&set, cfg.op_timeout, delivered, sdp.clone());
        let subscribing = cfg.scenario == Scenario::Subscribe;
        let first_watcher = if subscribing {
            local_presentities(cfg.presentities, set.workers, set.index).min(users)
        } else {
            0
        };
        let subs = if subscribing {
            vec![Watch::default(); (users - first_watcher) * cfg.watch]
        } else {
            Vec::new()
        };
        Worker {
            first_watcher,
            subs,
            etags: vec![None; first_watcher],
            tally: Arc::new(Tally::new(if subscribing { cfg.presentities } else { 0 })),
            t0: None,
            buf: Vec::new(),
            users: (0..users).map(|_| User::default()).collect(),
            ops: Vec::new(),
            free: Vec::new(),
            live: 0,
            queued: 0,
            ready: Vec::new(),
            next_seq: 0,
            retx: Backoff::new(set.t1, 7),
            t2_level: t2_level(set.t1, set.t2),
            transaction_timeouts: Fifo::new(set.t1 * 64),
            deadlines: Fifo::new(cfg.op_timeout),
            pacer: Pacer::closed(0, 0, now),
            kind: Kind::from(cfg.scenario),
            started: 0,
            stats: Stats::default(),
            callee,
            realms: Vec::new(),
            sdp,
            cfg,
            set,
        }
    }

    /// Users on this worker.
    pub(crate) fn user_count(&self) -> usize {
        self.users.len()
    }

    /// The run-wide index of this worker's user `j`.
    pub(crate) fn global(&self, j: u32) -> u64 {
        u64::from(j) * self.set.workers as u64 + self.set.index as u64
    }

    /// Starts a phase: operations of `kind` as `pacer` says; counters start from zero.
    pub(crate) fn begin(&mut self, kind: Kind, pacer: Pacer) {
        self.kind = kind;
        self.pacer = pacer;
        self.stats = Stats::default();
    }

    /// What this phase counted; the counters start again from zero.
    pub(crate) fn take_stats(&mut self) -> Stats {
        std::mem::take(&mut self.stats)
    }

    /// True while the phase has operations to start or in flight.
    pub(crate) fn busy(&self, now: Instant) -> bool {
        self.live > 0 || self.queued > 0 || !self.ready.is_empty() || !self.pacer.exhausted(now)
    }

    /// When something is due next: a timer, the next operation of a rate.
    pub(crate) fn next_wakeup(&self) -> Option<Instant> {
        [
            self.retx.next(),
            self.transaction_timeouts.next(),
            self.deadlines.next(),
            self.callee.next_wakeup(),
            self.pacer.wakeup(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Fires what is due at `now` and starts what the pacer allows.
    pub(crate) fn tick(&mut self, now: Instant, wire: &mut dyn Wire) {
        while let Some((level, (slot, seq))) = self.retx.pop_due(now) {
            self.retransmit(slot, seq, level, now, wire);
        }
        while let Some((slot, seq)) = self.transaction_timeouts.pop_due(now) {
            let waiting = self.ops.get(slot as usize).is_some_and(|op| {
                op.live
                    && op.seq == seq
                    && !op.answered
                    && !(op.step == Step::Invite && op.provisional)
            });
            if waiting {
                self.finish(slot as usize, Err(Failure::Timeout), now);
            }
        }
        while let Some((slot, number)) = self.deadlines.pop_due(now) {
            if self
                .ops
                .get(slot as usize)
                .is_some_and(|op| op.live && op.number == number)
            {
                self.finish(slot as usize, Err(Failure::Timeout), now);
            }
        }
        self.callee.tick(now, wire, &mut self.stats);
        while let Some(j) = self.ready.pop() {
            self.start(j, now, wire);
        }
        // A rate that fell behind catches up a bounded number at a time, between receives.
        for _ in 0..256 {
            if !self.pacer.take(now, self.live + self.queued) {
                break;
            }
            self.schedule(now, wire);
        }
    }

    /// One datagram from `from`.
    pub(crate) fn datagram(
        &mut self,
        from: SocketAddr,
        data: &[u8],
        now: Instant,
        wire: &mut dyn Wire,
    ) {
        let Ok(msg) = Message::parse(Bytes::copy_from_slice(data)) else {
            self.stats.stray += 1;
            return;
        };
        if msg.is_response() {
            self.response(&msg, now, wire);
        } else if msg.method() == Some(Method::Notify) {
            self.notify(&msg, from, now, wire);
        } else {
            self.callee.request(&msg, from, now, wire, &mut self.stats);
        }
    }

    /// The next operation of the phase: the worker's users in turn.
    fn schedule(&mut self, now: Instant, wire: &mut dyn Wire) {
        // The subscribe scenario's watchers subscribe, its presentities publish.
        let (first, end) = match self.kind {
            Kind::Watch => (self.first_watcher, self.users.len()),
            Kind::Publish => (0, self.first_watcher),
            _ => (0, self.users.len()),
        };
        if end <= first {
            return;
        }
        let k = self.pacer.scheduled().saturating_sub(1);
        let j = first + (k % (end - first) as u64) as usize;
        let user = &mut self.users[j];
        if user.busy {
            user.queued += 1;
            self.queued += 1;
        } else {
            self.start(j as u32, now, wire);
        }
    }

    /// Starts an operation for user `j`.
    fn start(&mut self, j: u32, now: Instant, wire: &mut dyn Wire) {
        self.stats.attempted += 1;
        let number = self.next_number();
        let slot = match self.free.pop() {
            Some(s) => s as usize,
            None => {
                self.ops.push(Op::empty(now));
                self.ops.len() - 1
            }
        };
        self.live += 1;
        if let Some(user) = self.users.get_mut(j as usize) {
            user.busy = true;
        }
        let kind = self.kind;
        let op = &mut self.ops[slot];
        op.live = true;
        op.number = number;
        op.user = j;
        op.step = match kind {
            Kind::Register => Step::Register,
            Kind::Setup => Step::Clear,
            Kind::Message => Step::Message,
            Kind::Call => Step::Invite,
            Kind::Watch => Step::Subscribe,
            Kind::Publish => Step::Publish,
        };
        op.sub = 0;
        op.started = now;
        op.cseq = 1;
        op.ack_seq = 0;
        op.round = Round::default();
        op.www = None;
        op.bye_auth = false;
        op.proxy_auth.clear();
        if kind == Kind::Watch {
            let first = self.first_subscription(j);
            self.ops[slot].sub = first;
        }
        self.set_deadline(slot, number, now);
        self.send_step(slot, now, wire);
    }

    /// The number of the next operation (or subscription) started, unique in the run.
    pub(crate) fn next_number(&mut self) -> u64 {
        let number = self.started * self.set.workers as u64 + self.set.index as u64;
        self.started += 1;
        number
    }

    /// `slot`, now numbered `number`, times out `op_timeout` from `now`.
    pub(crate) fn set_deadline(&mut self, slot: usize, number: u64, now: Instant) {
        self.deadlines.set(now, (slot as u32, number));
    }

    /// A fresh transaction number (never 0).
    pub(crate) fn new_seq(&mut self) -> u32 {
        self.next_seq = self.next_seq.wrapping_add(1).max(1);
        self.next_seq
    }

    /// Ends operation `slot`.
    pub(crate) fn finish(&mut self, slot: usize, outcome: Result<(), Failure>, now: Instant) {
        let Some(op) = self.ops.get_mut(slot) else {
            return;
        };
        if !op.live {
            return;
        }
        op.live = false;
        op.www = None;
        let (j, started) = (op.user, op.started);
        self.free.push(slot as u32);
        self.live -= 1;
        match outcome {
            Ok(()) => {
                self.stats.succeeded += 1;
                let us = now.saturating_duration_since(started).as_micros();
                self.stats
                    .latencies
                    .push(u64::try_from(us).unwrap_or(u64::MAX));
                self.stats.finished.push(now);
            }
            Err(failure) => {
                *self.stats.failures.entry(failure).or_default() += 1;
                if self.stats.first_failure.is_none() {
                    let name = self.cfg.user_name(self.global(j) as usize);
                    self.stats.first_failure = Some(format!("{name}: {}", failure.key()));
                }
            }
        }
        self.stats.last_done = Some(now);
        let open = now < self.pacer.deadline();
        let Some(user) = self.users.get_mut(j as usize) else {
            return;
        };
        if user.queued > 0 && open {
            // Stays busy: its next operation starts at the next tick.
            user.queued -= 1;
            self.queued -= 1;
            self.ready.push(j);
        } else {
            self.queued -= user.queued as usize;
            user.queued = 0;
            user.busy = false;
        }
    }

    /// Sends `bytes` to the server; a socket failure ends operation `slot`.
    pub(crate) fn send_or_fail(
        &mut self,
        slot: usize,
        now: Instant,
        wire: &mut dyn Wire,
        which: Which,
    ) -> bool {
        let Some(op) = self.ops.get(slot) else {
            return false;
        };
        let bytes = match which {
            Which::Request => &op.request,
            Which::Ack => &op.ack,
        };
        if wire.send(self.set.server, bytes) {
            true
        } else {
            self.finish(slot, Err(Failure::Transport), now);
            false
        }
    }

    /// Sets the timers of transaction `seq` of `slot`, just sent.
    pub(crate) fn arm(&mut self, slot: usize, seq: u32, now: Instant) {
        self.retx.set(0, now, (slot as u32, seq));
        self.transaction_timeouts.set(now, (slot as u32, seq));
    }

    /// A retransmission timer of transaction `seq` of `slot`, set at `level`.
    fn retransmit(&mut self, slot: u32, seq: u32, level: u8, now: Instant, wire: &mut dyn Wire) {
        let slot = slot as usize;
        let Some(op) = self.ops.get(slot) else {
            return;
        };
        if !op.live || op.seq != seq || op.answered {
            return;
        }
        let invite = op.step == Step::Invite;
        if invite && op.provisional {
            return;
        }
        let next = if invite {
            level + 1
        } else if op.provisional {
            self.t2_level
        } else {
            (level + 1).min(self.t2_level)
        };
        if self.send_or_fail(slot, now, wire, Which::Request) {
            self.stats.retransmissions += 1;
            self.retx.set(next, now, (slot as u32, seq));
        }
    }

    /// A response: to the operation its branch names.
    fn response(&mut self, msg: &Message, now: Instant, wire: &mut dyn Wire) {
        let found = msg
            .via()
            .ok()
            .and_then(|v| v.branch())
            .and_then(|b| parse_branch(b, self.set.tag));
        let (Some((slot, seq)), Some(status)) = (found, msg.status()) else {
            self.stats.stray += 1;
            return;
        };
        let slot = slot as usize;
        let Some(op) = self.ops.get_mut(slot).filter(|op| op.live) else {
            self.stats.stray += 1;
            return;
        };
        if seq != op.seq {
            // A final response to an INVITE already acknowledged, again: acknowledge again.
            if seq == op.ack_seq && status >= 200 {
                self.send_or_fail(slot, now, wire, Which::Ack);
            } else {
                self.stats.stray += 1;
            }
            return;
        }
        if op.answered {
            // A final response again, to a request already moved past: absorbed.
            return;
        }
        if status < 200 {
            op.provisional = true;
            return;
        }
        op.answered = true;
        self.on_final(slot, msg, status, now, wire);
    }
}

/// Which of an operation's buffers to send.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Which {
    Request,
    Ack,
}

#[cfg(test)]
#[path = "worker_tests.rs"]
mod tests;
