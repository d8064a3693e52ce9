//! What the four state machines share: the set of armed timers of one transaction, the core
//! state (current [`State`], timer base values, transport reliability), and the outbox in
//! which a machine leaves what it sends and what the TU must hear.
//!
//! Timers are data: an instant per armed timer. Nothing here reads a clock; the layer asks for
//! the earliest instant and calls back when it has passed.

use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::message::Message;

use super::{Reliability, State, Timer, TimerConfig};

/// The armed timers of one transaction: at most one instant per [`Timer`].
#[derive(Debug, Clone, Default)]
pub(crate) struct TimerSet {
    at: [Option<Instant>; Timer::ALL.len()],
}

impl TimerSet {
    fn slot(&mut self, t: Timer) -> Option<&mut Option<Instant>> {
        self.at.get_mut(t as usize)
    }

    /// Arms (or re-arms) `t` to fire at `at`.
    pub(crate) fn set(&mut self, t: Timer, at: Instant) {
        if let Some(s) = self.slot(t) {
            *s = Some(at);
        }
    }

    /// When `t` fires, if it is armed.
    pub(crate) fn get(&self, t: Timer) -> Option<Instant> {
        self.at.get(t as usize).copied().flatten()
    }

    /// Disarms `t`.
    pub(crate) fn clear(&mut self, t: Timer) {
        if let Some(s) = self.slot(t) {
            *s = None;
        }
    }

    /// Disarms every timer.
    pub(crate) fn clear_all(&mut self) {
        self.at = Default::default();
    }

    /// Every armed timer with its instant, in [`Timer`] order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (Timer, Instant)> + '_ {
        Timer::ALL
            .iter()
            .zip(self.at.iter())
            .filter_map(|(t, at)| at.map(|at| (*t, at)))
    }

    /// The earliest armed instant.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.at.iter().flatten().min().copied()
    }

    /// Disarms and returns the earliest timer due at `now`. When a timeout and a
    /// retransmission are due at the same instant the timeout goes first, so that a
    /// transaction that has given up does not send once more.
    pub(crate) fn take_due(&mut self, now: Instant) -> Option<Timer> {
        let (t, _) = self
            .iter()
            .filter(|(_, at)| *at <= now)
            .min_by_key(|(t, at)| (*at, t.is_retransmission()))?;
        self.clear(t);
        Some(t)
    }
}

/// What the TU must hear about, before the layer attaches the transaction key.
// Short-lived: drained into events after every call, so boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum Note {
    /// A response for a client transaction.
    Response(Message),
    /// Timer B, F or H fired.
    Timeout(Timer),
    /// The driver reported a send failure.
    TransportError,
}

/// What one call into a state machine produced. The layer drains it after every call.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    pub(crate) send: Vec<Bytes>,
    pub(crate) notes: Vec<Note>,
}

/// The state every machine carries.
#[derive(Debug, Clone)]
pub(crate) struct Core {
    pub(crate) state: State,
    pub(crate) timers: TimerSet,
    pub(crate) config: TimerConfig,
    pub(crate) reliability: Reliability,
}

impl Core {
    pub(crate) fn new(state: State, config: TimerConfig, reliability: Reliability) -> Core {
        Core {
            state,
            timers: TimerSet::default(),
            config,
            reliability,
        }
    }

    pub(crate) fn unreliable(&self) -> bool {
        !self.reliability.is_reliable()
    }

    /// Arms `t` for `after` from `now`. Durations are bounded by [`TimerConfig`], so the sum
    /// cannot overflow in practice; if it did, the timer is left disarmed rather than panic.
    pub(crate) fn arm(&mut self, t: Timer, now: Instant, after: Duration) {
        match now.checked_add(after) {
            Some(at) => self.timers.set(t, at),
            None => self.timers.clear(t),
        }
    }

    /// Enters a wait state that lingers `after` on unreliable transports and ends at once on
    /// reliable ones (Timers D, I, J, K: "zero seconds for reliable transports").
    pub(crate) fn linger(&mut self, state: State, t: Timer, now: Instant, after: Duration) {
        self.timers.clear_all();
        if self.unreliable() {
            self.state = state;
            self.arm(t, now, after);
        } else {
            self.state = State::Terminated;
        }
    }

    pub(crate) fn terminate(&mut self) {
        self.state = State::Terminated;
        self.timers.clear_all();
    }
}

/// The status class of a response: 1 for 1xx … 6 for 6xx.
pub(crate) fn class(status: u16) -> u16 {
    status / 100
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_timers_come_earliest_first_and_timeouts_before_retransmissions() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut set = TimerSet::default();
        set.set(Timer::A, ms(500));
        set.set(Timer::B, ms(500));
        set.set(Timer::M, ms(100));
        assert_eq!(set.next(), Some(ms(100)));
        assert_eq!(set.take_due(ms(99)), None);
        assert_eq!(set.take_due(ms(600)), Some(Timer::M));
        assert_eq!(set.take_due(ms(600)), Some(Timer::B));
        assert_eq!(set.take_due(ms(600)), Some(Timer::A));
        assert_eq!(set.take_due(ms(600)), None);
        assert_eq!(set.iter().count(), 0);
    }
}
