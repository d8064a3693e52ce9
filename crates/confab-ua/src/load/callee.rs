//! The called side: requests the server relays to a worker's simulated users, answered at
//! once and statelessly where SIP allows it.
//!
//! - **MESSAGE**: 200. Counted as delivered when its body carries this run's marker
//!   ([`super::wire::parse_marker`]), once per operation even when the server sends it again;
//!   other MESSAGEs (offline messages stored by earlier runs, delivered when a user
//!   registers) are answered and not counted.
//! - **INVITE**: 180 then 200 with a To tag, a Contact and the Record-Route copied, and an
//!   SDP answer. The 200 is sent again (T1 doubling to T2, RFC 3261 §13.3.1.4) until the ACK
//!   comes or 64·T1 pass; a retransmitted INVITE gets the 200 again.
//! - **ACK** stops those retransmissions; **BYE** ends the dialog with 200 (also for a call
//!   of this run whose dialog is already gone, so that a retransmitted BYE still gets 200);
//!   a BYE for anything else gets 481. CANCEL and OPTIONS get 200, the rest 501.
//!
//! Dialogs are found by a hash of their Call-ID and forgotten at the latest
//! `op_timeout + 64·T1` after the INVITE.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, RandomState};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use confab_sip::{Message, Method};

use super::timers::{Backoff, Fifo};
use super::wire::{parse_marker, write_response, Reply};
use super::worker::{Setting, Stats, Wire};

#[derive(Debug)]
struct Dialog {
    gen: u32,
    /// The 200, as sent.
    ok: Vec<u8>,
    acked: bool,
    since: Instant,
    peer: SocketAddr,
}

/// One worker's called side (see the module documentation).
#[derive(Debug)]
pub(crate) struct Callee {
    local: SocketAddr,
    run: u64,
    t1: Duration,
    hasher: RandomState,
    dialogs: HashMap<u64, Dialog>,
    lifetime: Fifo<(u64, u32)>,
    resend: Backoff<(u64, u32)>,
    t2_level: u8,
    /// Operations whose MESSAGE was counted, in the current and the previous window of
    /// 64·T1 (the longest a server retransmits a request).
    seen: [HashSet<u64>; 2],
    rotated: Option<Instant>,
    next_gen: u32,
    buf: Vec<u8>,
    sdp: Vec<u8>,
    delivered: Arc<AtomicU64>,
}

impl Callee {
    pub(crate) fn new(
        set: &Setting,
        op_timeout: Duration,
        delivered: Arc<AtomicU64>,
        sdp: Vec<u8>,
    ) -> Callee {
        let mut t2_level = 0u8;
        while t2_level < 6 && set.t1 * (1u32 << (t2_level + 1)) <= set.t2 {
            t2_level += 1;
        }
        Callee {
            local: set.local,
            run: set.run,
            t1: set.t1,
            hasher: RandomState::new(),
            dialogs: HashMap::new(),
            lifetime: Fifo::new(op_timeout + set.t1 * 64),
            resend: Backoff::new(set.t1, t2_level + 1),
            t2_level,
            seen: [HashSet::new(), HashSet::new()],
            rotated: None,
            next_gen: 0,
            buf: Vec::with_capacity(1024),
            sdp,
            delivered,
        }
    }

    /// When a 200 is due again or a dialog is to be forgotten.
    pub(crate) fn next_wakeup(&self) -> Option<Instant> {
        [self.resend.next(), self.lifetime.next()]
            .into_iter()
            .flatten()
            .min()
    }

    /// Dialogs kept.
    #[cfg(test)]
    pub(crate) fn dialogs(&self) -> usize {
        self.dialogs.len()
    }

    /// Sends 200s again that are due, forgets dialogs that are old.
    pub(crate) fn tick(&mut self, now: Instant, wire: &mut dyn Wire, stats: &mut Stats) {
        while let Some((level, (key, gen))) = self.resend.pop_due(now) {
            let Some(d) = self.dialogs.get(&key) else {
                continue;
            };
            if d.gen != gen || d.acked || now.saturating_duration_since(d.since) >= self.t1 * 64 {
                continue;
            }
            wire.send(d.peer, &d.ok);
            stats.retransmissions += 1;
            self.resend
                .set((level + 1).min(self.t2_level), now, (key, gen));
        }
        while let Some((key, gen)) = self.lifetime.pop_due(now) {
            if self.dialogs.get(&key).is_some_and(|d| d.gen == gen) {
                self.dialogs.remove(&key);
            }
        }
    }

    /// A request from `from` (the server).
    pub(crate) fn request(
        &mut self,
        msg: &Message,
        from: SocketAddr,
        now: Instant,
        wire: &mut dyn Wire,
        stats: &mut Stats,
    ) {
        let (Some(method), Ok(call_id)) = (msg.method(), msg.call_id()) else {
            stats.stray += 1;
            return;
        };
        let key = self.hasher.hash_one(call_id);
        match method {
            Method::Message => {
                self.reply(msg, from, wire, 200, "OK", Some(key));
                if let Some((run, op)) = parse_marker(msg.body()) {
                    if run == self.run && self.first_delivery(op, now) {
                        self.delivered.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            Method::Invite => self.invite(msg, from, key, now, wire),
            Method::Ack => {
                if let Some(d) = self.dialogs.get_mut(&key) {
                    d.acked = true;
                }
            }
            Method::Bye => {
                let known = self.dialogs.remove(&key).is_some() || self.is_our_call(call_id);
                if known {
                    self.reply(msg, from, wire, 200, "OK", None);
                } else {
                    self.reply(
                        msg,
                        from,
                        wire,
                        481,
                        "Call/Transaction Does Not Exist",
                        None,
                    );
                }
            }
            Method::Cancel | Method::Options => self.reply(msg, from, wire, 200, "OK", Some(key)),
            _ => self.reply(msg, from, wire, 501, "Not Implemented", Some(key)),
        }
    }

    /// A Call-ID the calling side of this run made (`c<run>.<op>`).
    fn is_our_call(&self, call_id: &str) -> bool {
        call_id
            .strip_prefix('c')
            .and_then(|rest| rest.get(..16))
            .and_then(|hex| u64::from_str_radix(hex, 16).ok())
            == Some(self.run)
    }

    fn reply(
        &mut self,
        msg: &Message,
        to: SocketAddr,
        wire: &mut dyn Wire,
        status: u16,
        reason: &str,
        to_tag: Option<u64>,
    ) {
        self.buf.clear();
        write_response(
            &mut self.buf,
            msg,
            &Reply {
                status,
                reason,
                to_tag,
                record_route: false,
                contact: None,
                body: None,
            },
        );
        wire.send(to, &self.buf);
    }

    fn invite(
        &mut self,
        msg: &Message,
        from: SocketAddr,
        key: u64,
        now: Instant,
        wire: &mut dyn Wire,
    ) {
        if let Some(d) = self.dialogs.get(&key) {
            if !d.acked {
                wire.send(from, &d.ok);
            }
            return;
        }
        let uri = msg.request_uri().and_then(Result::ok);
        let user = uri.as_ref().and_then(|u| u.user()).unwrap_or("callee");
        let mut reply = Reply {
            status: 180,
            reason: "Ringing",
            to_tag: Some(key),
            record_route: true,
            contact: Some((user, self.local)),
            body: None,
        };
        self.buf.clear();
        write_response(&mut self.buf, msg, &reply);
        wire.send(from, &self.buf);
        reply.status = 200;
        reply.reason = "OK";
        reply.body = Some(("application/sdp", &self.sdp));
        let mut ok = Vec::with_capacity(self.buf.len() + self.sdp.len() + 64);
        write_response(&mut ok, msg, &reply);
        wire.send(from, &ok);
        self.next_gen = self.next_gen.wrapping_add(1);
        let gen = self.next_gen;
        self.dialogs.insert(
            key,
            Dialog {
                gen,
                ok,
                acked: false,
                since: now,
                peer: from,
            },
        );
        self.resend.set(0, now, (key, gen));
        self.lifetime.set(now, (key, gen));
    }

    /// True the first time operation `op`'s MESSAGE arrives.
    fn first_delivery(&mut self, op: u64, now: Instant) -> bool {
        let window = self.t1 * 64;
        let rotated = *self.rotated.get_or_insert(now);
        if now.saturating_duration_since(rotated) >= window {
            self.seen.swap(0, 1);
            self.seen[0].clear();
            self.rotated = Some(now);
        }
        if self.seen[1].contains(&op) {
            return false;
        }
        self.seen[0].insert(op)
    }
}
