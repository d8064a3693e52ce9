//! The INVITE server transaction (RFC 3261 §17.2.1, Figure 7, as amended by RFC 6026 §7.1):
//! Proceeding → Accepted | Completed → Confirmed → Terminated.
//!
//! In Proceeding it answers retransmitted INVITEs with the latest provisional response, and
//! sends `100 Trying` on its own when the TU is slow ([`super::Config::auto_trying`]). A
//! non-2xx final response moves it to Completed, where Timer G retransmits the response
//! (unreliable transports only, doubling from T1 up to T2) until the ACK arrives or Timer H
//! (64·T1) gives up; the ACK moves it to Confirmed, where Timer I (T4; zero on reliable
//! transports) absorbs ACK retransmissions. A 2xx moves it to Accepted (RFC 6026) for Timer L
//! (64·T1): retransmitted INVITEs are absorbed, further 2xx from the TU (the UAS core
//! retransmits its own 2xx, §13.3.1.4) are sent, and a matching ACK goes to the TU.

use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::builder::ResponseBuilder;
use crate::message::Message;

use super::timers::{class, Core, Note, Outbox};
use super::{Reliability, State, Timer, TimerConfig, TransactionError};

/// One INVITE server transaction.
#[derive(Debug, Clone)]
pub(crate) struct ServerInvite {
    pub(crate) core: Core,
    /// The INVITE, until a non-2xx final response: Completed and Confirmed only resend that
    /// response and wait for the ACK, so the request (with its body) is let go. Accepted keeps
    /// it: the UAS core builds its 2xx retransmissions from it.
    request: Option<Message>,
    provisional: Option<Bytes>,
    final_response: Option<Bytes>,
    final_to_tag: Option<Box<str>>,
    interval_g: Duration,
    auto_trying: bool,
}

impl ServerInvite {
    /// Enters Proceeding for a new INVITE.
    pub(crate) fn start(
        request: Message,
        config: TimerConfig,
        reliability: Reliability,
        auto_trying: Option<Duration>,
        now: Instant,
        out: &mut Outbox,
    ) -> ServerInvite {
        let mut tx = ServerInvite {
            core: Core::new(State::Proceeding, config, reliability),
            request: Some(request),
            provisional: None,
            final_response: None,
            final_to_tag: None,
            interval_g: config.t1(),
            auto_trying: auto_trying.is_some(),
        };
        match auto_trying {
            Some(d) if d.is_zero() => tx.send_trying(out),
            Some(d) => tx.core.arm(Timer::Trying, now, d),
            None => {}
        }
        tx
    }

    /// The INVITE, until a non-2xx final response has been sent.
    pub(crate) fn request(&self) -> Option<&Message> {
        self.request.as_ref()
    }

    /// The To tag of the final response sent, which an RFC 2543 ACK must carry.
    pub(crate) fn final_to_tag(&self) -> Option<&str> {
        self.final_to_tag.as_deref()
    }

    fn send_trying(&mut self, out: &mut Outbox) {
        // Only in Proceeding, where the request is still held.
        let Some(request) = &self.request else {
            return;
        };
        let trying = ResponseBuilder::new(request, 100, "Trying").build();
        out.send.push(trying.clone());
        self.provisional = Some(trying);
        self.core.timers.clear(Timer::Trying);
    }

    /// A retransmission of the INVITE.
    pub(crate) fn on_request(&mut self, out: &mut Outbox) {
        match self.core.state {
            State::Proceeding => match &self.provisional {
                Some(p) => out.send.push(p.clone()),
                // The client is retransmitting already: tell it we are here.
                None if self.auto_trying => self.send_trying(out),
                None => {}
            },
            State::Completed => {
                if let Some(f) = &self.final_response {
                    out.send.push(f.clone());
                }
            }
            // Accepted and Confirmed absorb it.
            _ => {}
        }
    }

    /// An ACK matched to this transaction. Returns it when it belongs to the TU: an ACK in
    /// Accepted acknowledges the 2xx, which is the TU's business (RFC 6026).
    pub(crate) fn on_ack(&mut self, ack: Message, now: Instant) -> Option<Message> {
        match self.core.state {
            State::Completed => {
                let i = self.core.config.t4();
                self.core.linger(State::Confirmed, Timer::I, now, i);
                None
            }
            State::Accepted => Some(ack),
            // Confirmed absorbs ACK retransmissions; an ACK before any final response is
            // meaningless and dropped.
            _ => None,
        }
    }

    /// A response from the TU.
    pub(crate) fn send_response(
        &mut self,
        response: &Message,
        bytes: Bytes,
        now: Instant,
        out: &mut Outbox,
    ) -> Result<(), TransactionError> {
        let status = response.status().ok_or(TransactionError::WrongDirection)?;
        let state = self.core.state;
        match (state, class(status)) {
            (State::Proceeding, 1) => {
                self.core.timers.clear(Timer::Trying);
                out.send.push(bytes.clone());
                self.provisional = Some(bytes);
            }
            (State::Proceeding, 2) => {
                out.send.push(bytes);
                self.final_to_tag = to_tag(response);
                self.core.timers.clear_all();
                self.core.state = State::Accepted;
                let l = self.core.config.transaction_timeout();
                self.core.arm(Timer::L, now, l);
            }
            (State::Accepted, 2) => out.send.push(bytes),
            (State::Proceeding, _) => {
                out.send.push(bytes.clone());
                self.request = None;
                self.final_response = Some(bytes);
                self.final_to_tag = to_tag(response);
                self.core.timers.clear_all();
                self.core.state = State::Completed;
                let config = self.core.config;
                if self.core.unreliable() {
                    self.core.arm(Timer::G, now, config.t1());
                }
                self.core.arm(Timer::H, now, config.transaction_timeout());
            }
            _ => return Err(TransactionError::InvalidState { state, status }),
        }
        Ok(())
    }

    /// Timer `t` has fired.
    pub(crate) fn on_timer(&mut self, t: Timer, now: Instant, out: &mut Outbox) {
        match (t, self.core.state) {
            (Timer::Trying, State::Proceeding) if self.provisional.is_none() => {
                self.send_trying(out);
            }
            (Timer::G, State::Completed) => {
                if let Some(f) = &self.final_response {
                    out.send.push(f.clone());
                }
                self.interval_g = self.interval_g.saturating_mul(2).min(self.core.config.t2());
                self.core.arm(Timer::G, now, self.interval_g);
            }
            (Timer::H, State::Completed) => {
                out.notes.push(Note::Timeout(Timer::H));
                self.core.terminate();
            }
            (Timer::I, State::Confirmed) | (Timer::L, State::Accepted) => self.core.terminate(),
            _ => {}
        }
    }
}

fn to_tag(response: &Message) -> Option<Box<str>> {
    response.to().ok()?.tag().map(Box::from)
}
