//! The non-INVITE client transaction (RFC 3261 §17.1.2, Figure 6): Trying → Proceeding →
//! Completed → Terminated.
//!
//! It retransmits the request on Timer E (unreliable transports only): doubling from T1 up to
//! T2 while Trying, every T2 once a provisional response has arrived. Timer F (64·T1) ends it
//! without a final response. In Completed it absorbs retransmitted responses for T4 (Timer K;
//! zero on reliable transports).

use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::message::Message;

use super::timers::{class, Core, Note, Outbox};
use super::{Reliability, State, Timer, TimerConfig};

/// One non-INVITE client transaction.
#[derive(Debug, Clone)]
pub(crate) struct ClientNonInvite {
    pub(crate) core: Core,
    request: Message,
    bytes: Bytes,
    interval_e: Duration,
}

impl ClientNonInvite {
    /// Sends the request and enters Trying.
    pub(crate) fn start(
        request: Message,
        bytes: Bytes,
        config: TimerConfig,
        reliability: Reliability,
        now: Instant,
        out: &mut Outbox,
    ) -> ClientNonInvite {
        out.send.push(bytes.clone());
        let mut core = Core::new(State::Trying, config, reliability);
        if core.unreliable() {
            core.arm(Timer::E, now, config.t1());
        }
        core.arm(Timer::F, now, config.transaction_timeout());
        ClientNonInvite {
            core,
            request,
            bytes,
            interval_e: config.t1(),
        }
    }

    /// The request.
    pub(crate) fn request(&self) -> &Message {
        &self.request
    }

    /// A response matched to this transaction.
    pub(crate) fn on_response(&mut self, response: Message, now: Instant, out: &mut Outbox) {
        let Some(status) = response.status() else {
            return;
        };
        match (self.core.state, class(status)) {
            (State::Trying | State::Proceeding, 1) => {
                // Timer E keeps its current deadline; from its next firing it uses T2.
                self.core.state = State::Proceeding;
                out.notes.push(Note::Response(response));
            }
            (State::Trying | State::Proceeding, _) => {
                out.notes.push(Note::Response(response));
                let k = self.core.config.t4();
                self.core.linger(State::Completed, Timer::K, now, k);
            }
            // Completed: a retransmitted response, absorbed.
            _ => {}
        }
    }

    /// Timer `t` has fired.
    pub(crate) fn on_timer(&mut self, t: Timer, now: Instant, out: &mut Outbox) {
        match (t, self.core.state) {
            (Timer::E, State::Trying | State::Proceeding) => {
                out.send.push(self.bytes.clone());
                let t2 = self.core.config.t2();
                self.interval_e = if self.core.state == State::Trying {
                    self.interval_e.saturating_mul(2).min(t2)
                } else {
                    t2
                };
                self.core.arm(Timer::E, now, self.interval_e);
            }
            (Timer::F, State::Trying | State::Proceeding) => {
                out.notes.push(Note::Timeout(Timer::F));
                self.core.terminate();
            }
            (Timer::K, State::Completed) => self.core.terminate(),
            _ => {}
        }
    }
}
