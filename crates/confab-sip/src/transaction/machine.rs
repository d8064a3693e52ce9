//! [`Machine`]: one transaction's state machine, whichever of the four it is, behind the
//! calls the layer makes on every kind alike.

use std::time::Instant;

use crate::message::Message;

use super::client_invite::ClientInvite;
use super::client_non_invite::ClientNonInvite;
use super::server_invite::ServerInvite;
use super::server_non_invite::ServerNonInvite;
use super::table::{Linger, Slot};
use super::timers::{Core, Outbox};
use super::{Kind, State, Timer};

// The variants are RFC 3261's four machines, named as in `Kind`.
#[allow(clippy::enum_variant_names)]
#[derive(Debug)]
pub(crate) enum Machine {
    ClientInvite(ClientInvite),
    ClientNonInvite(ClientNonInvite),
    ServerInvite(ServerInvite),
    ServerNonInvite(ServerNonInvite),
}

impl Machine {
    pub(crate) fn core(&self) -> &Core {
        match self {
            Machine::ClientInvite(m) => &m.core,
            Machine::ClientNonInvite(m) => &m.core,
            Machine::ServerInvite(m) => &m.core,
            Machine::ServerNonInvite(m) => &m.core,
        }
    }

    pub(crate) fn core_mut(&mut self) -> &mut Core {
        match self {
            Machine::ClientInvite(m) => &mut m.core,
            Machine::ClientNonInvite(m) => &mut m.core,
            Machine::ServerInvite(m) => &mut m.core,
            Machine::ServerNonInvite(m) => &mut m.core,
        }
    }

    pub(crate) fn kind(&self) -> Kind {
        match self {
            Machine::ClientInvite(_) => Kind::ClientInvite,
            Machine::ClientNonInvite(_) => Kind::ClientNonInvite,
            Machine::ServerInvite(_) => Kind::ServerInvite,
            Machine::ServerNonInvite(_) => Kind::ServerNonInvite,
        }
    }

    pub(crate) fn request(&self) -> Option<&Message> {
        match self {
            Machine::ClientInvite(m) => Some(m.request()),
            Machine::ClientNonInvite(m) => Some(m.request()),
            Machine::ServerInvite(m) => m.request(),
            Machine::ServerNonInvite(m) => Some(m.request()),
        }
    }

    /// For a transaction that now only absorbs retransmissions until one timer ends it: the
    /// slot that replaces the machine, which queue the deadline goes in, and the deadline.
    pub(crate) fn compact<P>(&self) -> Option<(Slot<P>, Linger, Instant)> {
        match self {
            Machine::ServerNonInvite(m) if m.core.state == State::Completed => {
                let at = m.core.timers.get(Timer::J)?;
                let response = Box::from(&m.last_response()?[..]);
                Some((Slot::Answered(response), Linger::J, at))
            }
            Machine::ClientNonInvite(m) if m.core.state == State::Completed => {
                let at = m.core.timers.get(Timer::K)?;
                Some((Slot::Absorbing, Linger::K, at))
            }
            _ => None,
        }
    }

    /// Fires every timer due at `now`, earliest first, until none is due or the transaction
    /// has ended. Re-armed timers are always later than `now` (T1 > 0), so this ends.
    pub(crate) fn on_timeout(&mut self, now: Instant, out: &mut Outbox) {
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
