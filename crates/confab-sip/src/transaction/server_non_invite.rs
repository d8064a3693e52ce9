//! The non-INVITE server transaction (RFC 3261 §17.2.2, Figure 8): Trying → Proceeding →
//! Completed → Terminated.
//!
//! Retransmitted requests are absorbed while Trying, answered with the latest provisional
//! response while Proceeding and with the final response while Completed, where Timer J
//! (64·T1; zero on reliable transports) keeps the transaction long enough to catch every
//! retransmission the client may still send.
//!
//! There is no timer in Trying or Proceeding: the TU must answer every request it is given
//! (or call [`super::TransactionLayer::terminate`]).
//!
//! Completed over UDP is where a transaction spends nearly all its life, and all it does
//! there is answer a retransmission with [`ServerNonInvite::last_response`] until Timer J:
//! the layer keeps only that response and the deadline instead of the machine (`layer`).

use std::time::Instant;

use bytes::Bytes;

use crate::message::Message;

use super::timers::{class, Core, Outbox};
use super::{Reliability, State, Timer, TimerConfig, TransactionError};

/// One non-INVITE server transaction.
#[derive(Debug, Clone)]
pub(crate) struct ServerNonInvite {
    pub(crate) core: Core,
    request: Message,
    last_response: Option<Bytes>,
}

impl ServerNonInvite {
    /// Enters Trying for a new request.
    pub(crate) fn start(
        request: Message,
        config: TimerConfig,
        reliability: Reliability,
    ) -> ServerNonInvite {
        ServerNonInvite {
            core: Core::new(State::Trying, config, reliability),
            request,
            last_response: None,
        }
    }

    /// The request.
    pub(crate) fn request(&self) -> &Message {
        &self.request
    }

    /// The last response sent: provisional in Proceeding, final in Completed.
    pub(crate) fn last_response(&self) -> Option<&Bytes> {
        self.last_response.as_ref()
    }

    /// A retransmission of the request.
    pub(crate) fn on_request(&mut self, out: &mut Outbox) {
        if matches!(self.core.state, State::Proceeding | State::Completed) {
            if let Some(r) = &self.last_response {
                out.send.push(r.clone());
            }
        }
    }

    /// A response from the TU, with status code `status`.
    pub(crate) fn send_response(
        &mut self,
        status: u16,
        bytes: Bytes,
        now: Instant,
        out: &mut Outbox,
    ) -> Result<(), TransactionError> {
        let state = self.core.state;
        if !matches!(state, State::Trying | State::Proceeding) {
            return Err(TransactionError::InvalidState { state, status });
        }
        out.send.push(bytes.clone());
        self.last_response = Some(bytes);
        if class(status) == 1 {
            self.core.state = State::Proceeding;
        } else {
            let j = self.core.config.transaction_timeout();
            self.core.linger(State::Completed, Timer::J, now, j);
        }
        Ok(())
    }

    /// Timer `t` has fired.
    pub(crate) fn on_timer(&mut self, t: Timer) {
        if (t, self.core.state) == (Timer::J, State::Completed) {
            self.core.terminate();
        }
    }
}
