//! The subscribe scenario: who watches whom, what a watcher keeps per subscription, the
//! PIDF document a presentity publishes, NOTIFYs answered and counted, and the tally the
//! workers share.
//!
//! | step | requests |
//! |---|---|
//! | setup (per watcher, after the registrations) | for each of its presentities in turn: SUBSCRIBE (Proxy-Authorization from the user's cached challenge, if any) → 407 → again → 2xx, and the first NOTIFY (before or after the 2xx) answered 200 |
//! | measured (per operation) | PUBLISH (as MESSAGE; `SIP-If-Match` from the presentity's second on) → 2xx with `SIP-ETag` |
//! | any time | NOTIFY → 200 |
//!
//! Subscription `j` of watcher `g` (run-wide index) has the Call-ID `s<run>.<g>.<j>`, from
//! which the NOTIFYs of the dialog find it without any map; per subscription a worker keeps
//! the CSeq of the last NOTIFY and a few flags (8 bytes), per presentity its entity-tag.
//! A NOTIFY is counted when its CSeq is new for its dialog (a retransmission is not), and
//! then only when its PIDF note carries this run's marker.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Instant;

use confab_sip::{HeaderName, Message};

use super::wire::{parse_note, write_note, write_response, Reply};
use super::worker::{Failure, Step, Wire, Worker};

/// The most watchers one presentity gets: users `presentities..users` (indexes from 0) each
/// watch `watch` consecutive presentities (mod `presentities`), starting at their own index.
///
/// With `q, r` the quotient and remainder of the watchers by the presentities, residue `x`
/// is the index of `q + 1` watchers when `x < r`, else of `q`; presentity `p` is watched by
/// the watchers of residues `p, p − 1, … p − watch + 1`, and a window of `watch` consecutive
/// residues holds at most `min(watch, r)` of `0..r`.
pub(crate) fn most_watchers(users: usize, presentities: usize, watch: usize) -> u64 {
    let m = presentities.max(1) as u64;
    let watchers = users.saturating_sub(presentities) as u64;
    let (q, r) = (watchers / m, watchers % m);
    let k = watch as u64;
    k * q + k.min(r)
}

/// The presentity (run-wide index) of subscription `j` of the watcher with run-wide index
/// `g`.
pub(crate) fn presentity_of(g: u64, j: u64, presentities: usize) -> u64 {
    (g + j) % presentities.max(1) as u64
}

/// How many of worker `index` of `workers`'s users are presentities: its users are those
/// with run-wide index `u · workers + index`, and presentities come first.
pub(crate) fn local_presentities(presentities: usize, workers: usize, index: usize) -> usize {
    presentities.saturating_sub(index).div_ceil(workers.max(1))
}

/// The counters the workers share.
#[derive(Debug)]
pub(crate) struct Tally {
    /// Established subscriptions, by presentity.
    pub(crate) watchers: Vec<AtomicU32>,
    pub(crate) subscriptions: AtomicU64,
    /// NOTIFYs of this run's PUBLISHes received.
    pub(crate) notifies: AtomicU64,
    /// NOTIFYs the succeeded PUBLISHes should cause.
    pub(crate) expected: AtomicU64,
}

impl Tally {
    pub(crate) fn new(presentities: usize) -> Tally {
        Tally {
            watchers: (0..presentities).map(|_| AtomicU32::new(0)).collect(),
            subscriptions: AtomicU64::new(0),
            notifies: AtomicU64::new(0),
            expected: AtomicU64::new(0),
        }
    }

    /// Every expected NOTIFY has come.
    pub(crate) fn complete(&self) -> bool {
        self.notifies.load(Ordering::Acquire) >= self.expected.load(Ordering::Acquire)
    }

    fn watchers_of(&self, p: u64) -> Option<&AtomicU32> {
        self.watchers.get(usize::try_from(p).ok()?)
    }
}

/// One subscription as its watcher's worker keeps it.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Watch {
    /// CSeq of the last NOTIFY (valid once `NOTIFIED`).
    last_cseq: u32,
    flags: u8,
}

/// The SUBSCRIBE got its 2xx.
const ACCEPTED: u8 = 1;
/// A NOTIFY came.
const NOTIFIED: u8 = 2;
/// Both: counted in the tally.
const ESTABLISHED: u8 = 4;

impl Watch {
    pub(crate) fn established(self) -> bool {
        self.flags & ESTABLISHED != 0
    }
}

/// What the Subscription-State of a NOTIFY says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SubState {
    Active,
    Pending,
    Terminated,
}

fn sub_state(msg: &Message) -> SubState {
    let value = msg
        .header(HeaderName::SubscriptionState)
        .unwrap_or_default();
    let state = value.split(';').next().unwrap_or_default().trim();
    if state.eq_ignore_ascii_case("pending") {
        SubState::Pending
    } else if state.eq_ignore_ascii_case("terminated") {
        SubState::Terminated
    } else {
        SubState::Active
    }
}

impl Worker {
    /// The index in `self.subs` of the subscription whose dialog has `call_id`, if it is one
    /// of this worker's in this run.
    pub(crate) fn subscription_of(&self, call_id: &str) -> Option<usize> {
        let rest = call_id.strip_prefix('s')?;
        let (run, rest) = rest.split_at_checked(16)?;
        if !run.bytes().all(|b| b.is_ascii_hexdigit())
            || u64::from_str_radix(run, 16).ok()? != self.set.run
        {
            return None;
        }
        let (g, j) = rest.strip_prefix('.')?.split_once('.')?;
        let is_number = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !is_number(g) || !is_number(j) {
            return None;
        }
        let (g, j): (u64, usize) = (g.parse().ok()?, j.parse().ok()?);
        let workers = self.set.workers as u64;
        if g % workers != self.set.index as u64 || j >= self.cfg.watch {
            return None;
        }
        let u = usize::try_from(g / workers).ok()?;
        if u < self.first_watcher || u >= self.users.len() {
            return None;
        }
        let s = (u - self.first_watcher) * self.cfg.watch + j;
        (s < self.subs.len()).then_some(s)
    }

    /// The first subscription of this worker's user `u` (a watcher).
    pub(crate) fn first_subscription(&self, u: u32) -> u32 {
        let rank = (u as usize).saturating_sub(self.first_watcher);
        (rank * self.cfg.watch) as u32
    }

    /// The watcher (this worker's user) and the `j` of subscription `s`.
    pub(crate) fn subscription_owner(&self, s: u32) -> (u32, u64) {
        let k = self.cfg.watch.max(1);
        let s = s as usize;
        ((self.first_watcher + s / k) as u32, (s % k) as u64)
    }

    /// The run-wide index of the presentity of subscription `s`.
    pub(crate) fn subscription_presentity(&self, s: u32) -> u64 {
        let (u, j) = self.subscription_owner(s);
        presentity_of(self.global(u), j, self.cfg.presentities)
    }

    /// A NOTIFY from `from`: answered 200 at once, then counted (see the module
    /// documentation); during setup it may complete a subscription.
    pub(crate) fn notify(
        &mut self,
        msg: &Message,
        from: SocketAddr,
        now: Instant,
        wire: &mut dyn Wire,
    ) {
        self.buf.clear();
        write_response(
            &mut self.buf,
            msg,
            &Reply {
                status: 200,
                reason: "OK",
                to_tag: None,
                record_route: false,
                contact: None,
                body: None,
            },
        );
        wire.send(from, &self.buf);
        let (Ok(call_id), Ok(cseq)) = (msg.call_id(), msg.cseq()) else {
            return;
        };
        let Some(s) = self.subscription_of(call_id) else {
            return;
        };
        let Some(watch) = self.subs.get_mut(s) else {
            return;
        };
        let fresh =
            watch.flags & NOTIFIED == 0 || (cseq.seq.wrapping_sub(watch.last_cseq) as i32) > 0;
        if !fresh {
            return;
        }
        watch.last_cseq = cseq.seq;
        watch.flags |= NOTIFIED;
        let (established, accepted) = (watch.established(), watch.flags & ACCEPTED != 0);
        let state = sub_state(msg);
        if let Some((_, sent_us)) = parse_note(msg.body(), self.set.run) {
            self.tally.notifies.fetch_add(1, Ordering::AcqRel);
            if let Some(t0) = self.t0 {
                let at = u64::try_from(now.saturating_duration_since(t0).as_micros())
                    .unwrap_or(u64::MAX);
                self.stats.notify_latencies.push(at.saturating_sub(sent_us));
            }
        }
        if established {
            if state == SubState::Terminated {
                // The server ended it: no more NOTIFYs to expect from it.
                if let Some(w) = self.subs.get_mut(s) {
                    w.flags &= !ESTABLISHED;
                }
                let p = self.subscription_presentity(s as u32);
                if let Some(n) = self.tally.watchers_of(p) {
                    n.fetch_sub(1, Ordering::AcqRel);
                }
            }
            return;
        }
        // Setup: the operation subscribing is waiting for this NOTIFY, or its 2xx is still
        // to come.
        let Some(slot) = self
            .ops
            .iter()
            .position(|op| op.live && op.step == Step::Subscribe && op.sub as usize == s)
        else {
            return;
        };
        match state {
            SubState::Pending => self.finish(slot, Err(Failure::Pending), now),
            SubState::Terminated => self.finish(slot, Err(Failure::Terminated), now),
            SubState::Active if accepted => self.established(slot, now, wire),
            SubState::Active => {}
        }
    }

    /// The 2xx to `slot`'s SUBSCRIBE: established if its first NOTIFY has come, else waiting
    /// for it (the operation's deadline still runs).
    pub(crate) fn subscribed(&mut self, slot: usize, now: Instant, wire: &mut dyn Wire) {
        let s = self.ops[slot].sub as usize;
        let Some(watch) = self.subs.get_mut(s) else {
            self.finish(slot, Err(Failure::Error), now);
            return;
        };
        watch.flags |= ACCEPTED;
        if watch.flags & NOTIFIED != 0 {
            self.established(slot, now, wire);
        }
    }

    /// `slot`'s current subscription is established: counted; the watcher's next one is
    /// subscribed to, or the operation is done.
    fn established(&mut self, slot: usize, now: Instant, wire: &mut dyn Wire) {
        let s = self.ops[slot].sub;
        if let Some(w) = self.subs.get_mut(s as usize) {
            w.flags |= ESTABLISHED;
        }
        let p = self.subscription_presentity(s);
        if let Some(n) = self.tally.watchers_of(p) {
            n.fetch_add(1, Ordering::AcqRel);
        }
        self.tally.subscriptions.fetch_add(1, Ordering::AcqRel);
        let (u, j) = self.subscription_owner(s);
        if j + 1 >= self.cfg.watch as u64 || self.ops[slot].user != u {
            self.finish(slot, Ok(()), now);
            return;
        }
        // The next subscription, with a deadline of its own.
        let number = self.next_number();
        let op = &mut self.ops[slot];
        op.sub = s + 1;
        op.number = number;
        op.cseq = 1;
        op.round = super::auth::Round::default();
        op.www = None;
        self.set_deadline(slot, number, now);
        self.send_step(slot, now, wire);
    }

    /// The 2xx to `slot`'s PUBLISH: its entity-tag kept for the next one, the NOTIFYs it
    /// should cause expected.
    pub(crate) fn published(&mut self, slot: usize, msg: &Message, now: Instant) {
        let u = self.ops[slot].user as usize;
        match (msg.header(HeaderName::SipEtag), self.etags.get_mut(u)) {
            (Some(tag), Some(kept)) if !tag.trim().is_empty() => {
                *kept = Some(tag.trim().into());
            }
            // A 2xx without an entity-tag cannot be modified: the next PUBLISH starts again.
            (_, Some(kept)) => *kept = None,
            _ => {}
        }
        let p = self.global(u as u32);
        let watchers = self
            .tally
            .watchers_of(p)
            .map_or(0, |n| n.load(Ordering::Acquire));
        self.tally
            .expected
            .fetch_add(u64::from(watchers), Ordering::AcqRel);
        self.finish(slot, Ok(()), now);
    }

    /// A PUBLISH refused: an entity-tag the server no longer knows (412) is forgotten.
    pub(crate) fn publish_refused(&mut self, slot: usize, status: u16) {
        if status == 412 {
            let u = self.ops[slot].user as usize;
            if let Some(kept) = self.etags.get_mut(u) {
                *kept = None;
            }
        }
    }

    /// The PIDF document of `slot`'s PUBLISH, sent at `now`.
    pub(crate) fn write_pidf(&self, out: &mut Vec<u8>, slot: usize, now: Instant) {
        let op = &self.ops[slot];
        let sent_us = self.t0.map_or(0, |t0| {
            u64::try_from(now.saturating_duration_since(t0).as_micros()).unwrap_or(u64::MAX)
        });
        let _ = write!(
            out,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
             <presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"sip:{}@{}\">\n\
             <tuple id=\"load\"><status><basic>open</basic></status><note>",
            self.name(op.user),
            self.cfg.domain
        );
        write_note(out, self.set.run, op.number, sent_us);
        out.extend_from_slice(b"</note></tuple>\n</presence>\n");
    }

    /// The entity-tag this worker's presentity `u` modifies, if any.
    pub(crate) fn etag(&self, u: u32) -> Option<&str> {
        self.etags.get(u as usize).and_then(|e| e.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts by brute force.
    fn counted(users: usize, m: usize, k: usize) -> Vec<u64> {
        let mut n = vec![0u64; m];
        for g in m..users {
            for j in 0..k {
                n[presentity_of(g as u64, j as u64, m) as usize] += 1;
            }
        }
        n
    }

    #[test]
    fn watchers_are_spread_and_the_most_on_one_is_computed() {
        for (users, m, k) in [
            (30, 3, 2),
            (20_020, 20, 20),
            (20_020, 20, 1),
            (11, 10, 10),
            (17, 5, 3),
            (100, 7, 4),
            (8, 7, 1),
            (1000, 1, 1),
        ] {
            let n = counted(users, m, k);
            let most = n.iter().copied().max().unwrap_or(0);
            assert_eq!(most_watchers(users, m, k), most, "{users} {m} {k}: {n:?}");
            assert_eq!(n.iter().sum::<u64>(), ((users - m) * k) as u64);
        }
        // 20 presentities × 1000 watchers each: 20,020 users watching all 20.
        assert_eq!(most_watchers(20_020, 20, 20), 1000);
        // Each watcher's presentities are distinct.
        let mut seen: Vec<u64> = (0..4).map(|j| presentity_of(12, j, 5)).collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen, [0, 1, 2, 3]);
        assert_eq!(presentity_of(3, 0, 3), 0);
    }

    #[test]
    fn presentities_come_first_on_every_worker() {
        // 10 presentities on 3 workers: indexes 0, 3, 6, 9 | 1, 4, 7 | 2, 5, 8.
        assert_eq!(local_presentities(10, 3, 0), 4);
        assert_eq!(local_presentities(10, 3, 1), 3);
        assert_eq!(local_presentities(10, 3, 2), 3);
        assert_eq!(local_presentities(1, 2, 1), 0);
        assert_eq!(local_presentities(0, 2, 0), 0);
    }
}
