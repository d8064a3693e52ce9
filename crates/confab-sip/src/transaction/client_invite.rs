//! The INVITE client transaction (RFC 3261 §17.1.1, Figure 5, as amended by RFC 6026 §7.2):
//! Calling → Proceeding → Accepted | Completed → Terminated.
//!
//! It retransmits the INVITE on Timer A (unreliable transports only, doubling from T1 without
//! the T2 cap) until a response arrives or Timer B (64·T1) gives up, generates and resends the
//! ACK for a non-2xx final response (§17.1.1.3) while Timer D lingers, and in Accepted passes
//! every 2xx to the TU until Timer M (64·T1) ends it, so that 2xx retransmissions and forked
//! 2xx responses are not mistaken for strays.
//!
//! Timer B runs only in Calling: once a provisional response has arrived the transaction
//! waits for the final response for as long as the TU lets it (a UAC cancels, a proxy runs
//! Timer C).

use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::builder::RequestBuilder;
use crate::header_name::HeaderName;
use crate::lex::trim_lws;
use crate::message::Message;

use super::timers::{class, Core, Note, Outbox};
use super::{Reliability, State, Timer, TimerConfig};

/// One INVITE client transaction.
#[derive(Debug, Clone)]
pub(crate) struct ClientInvite {
    pub(crate) core: Core,
    request: Message,
    bytes: Bytes,
    ack: Option<Bytes>,
    interval_a: Duration,
}

impl ClientInvite {
    /// Sends the INVITE and enters Calling.
    pub(crate) fn start(
        request: Message,
        bytes: Bytes,
        config: TimerConfig,
        reliability: Reliability,
        now: Instant,
        out: &mut Outbox,
    ) -> ClientInvite {
        out.send.push(bytes.clone());
        let mut core = Core::new(State::Calling, config, reliability);
        if core.unreliable() {
            core.arm(Timer::A, now, config.t1());
        }
        core.arm(Timer::B, now, config.transaction_timeout());
        ClientInvite {
            core,
            request,
            bytes,
            ack: None,
            interval_a: config.t1(),
        }
    }

    /// The INVITE.
    pub(crate) fn request(&self) -> &Message {
        &self.request
    }

    /// A response matched to this transaction.
    pub(crate) fn on_response(&mut self, response: Message, now: Instant, out: &mut Outbox) {
        let Some(status) = response.status() else {
            return;
        };
        match (self.core.state, class(status)) {
            (State::Calling | State::Proceeding, 1) => {
                self.core.state = State::Proceeding;
                self.core.timers.clear(Timer::A);
                self.core.timers.clear(Timer::B);
                out.notes.push(Note::Response(response));
            }
            (State::Calling | State::Proceeding, 2) => {
                self.core.timers.clear_all();
                self.core.state = State::Accepted;
                let m = self.core.config.transaction_timeout();
                self.core.arm(Timer::M, now, m);
                out.notes.push(Note::Response(response));
            }
            (State::Calling | State::Proceeding, _) => {
                let ack = build_ack(&self.request, &response);
                out.send.push(ack.clone());
                self.ack = Some(ack);
                out.notes.push(Note::Response(response));
                let d = self.core.config.timer_d();
                self.core.linger(State::Completed, Timer::D, now, d);
            }
            (State::Completed, 3..) => {
                // A retransmitted final response: our ACK was lost. Answer it, tell no one.
                if let Some(ack) = &self.ack {
                    out.send.push(ack.clone());
                }
            }
            (State::Accepted, 2) => out.notes.push(Note::Response(response)),
            _ => {}
        }
    }

    /// Timer `t` has fired.
    pub(crate) fn on_timer(&mut self, t: Timer, now: Instant, out: &mut Outbox) {
        match (t, self.core.state) {
            (Timer::A, State::Calling) => {
                out.send.push(self.bytes.clone());
                self.interval_a = self.interval_a.saturating_mul(2);
                self.core.arm(Timer::A, now, self.interval_a);
            }
            (Timer::B, State::Calling) => {
                out.notes.push(Note::Timeout(Timer::B));
                self.core.terminate();
            }
            (Timer::D, State::Completed) | (Timer::M, State::Accepted) => self.core.terminate(),
            _ => {}
        }
    }
}

/// The ACK for a non-2xx final response (RFC 3261 §17.1.1.3): the To of the response, which
/// carries the tag the server chose; everything else from the INVITE.
pub(crate) fn build_ack(invite: &Message, response: &Message) -> Bytes {
    let to = response
        .header(HeaderName::To)
        .or_else(|| invite.header(HeaderName::To));
    derived_request(invite, "ACK", to)
}

/// The CANCEL for an INVITE (RFC 3261 §9.1): everything from the INVITE, tags included.
pub(crate) fn build_cancel(invite: &Message) -> Bytes {
    derived_request(invite, "CANCEL", invite.header(HeaderName::To))
}

/// A request that shares the INVITE's transaction identity: its Request-URI, its top Via only
/// (so the same branch), its Route set, From, Call-ID and CSeq number, with `method` and `to`.
fn derived_request(invite: &Message, method: &str, to: Option<&str>) -> Bytes {
    let uri = invite.request_uri_str().unwrap_or_default();
    let mut req = RequestBuilder::new(method, uri);
    if let Ok(via) = invite.via() {
        req = req.header("Via", trim_lws(via.as_str()));
    }
    for route in invite
        .fields()
        .filter(|f| f.name == HeaderName::Route)
        .filter_map(|f| f.value_str())
    {
        req = req.header("Route", route);
    }
    req = req.header("Max-Forwards", "70");
    for (name, value) in [
        ("From", invite.header(HeaderName::From)),
        ("To", to),
        ("Call-ID", invite.header(HeaderName::CallId)),
    ] {
        if let Some(v) = value {
            req = req.header(name, v);
        }
    }
    let seq = invite.cseq().map(|c| c.seq).unwrap_or_default();
    req.header("CSeq", format!("{seq} {method}")).build()
}
