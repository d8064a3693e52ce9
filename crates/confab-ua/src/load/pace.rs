//! When a worker starts operations: at a fixed rate (a ticker computed from the start time,
//! so it never drifts and never bursts more than what fell due since the last look), or
//! whenever fewer than a limit are in flight; never more than the worker's quota, never after
//! the deadline. Also how counts, rates and users are shared out among workers.

use std::time::{Duration, Instant};

/// Part `i` of `total` split into `parts` shares as even as possible (the first
/// `total % parts` shares get one more).
pub(crate) fn share(total: u64, parts: usize, i: usize) -> u64 {
    let parts = parts.max(1) as u64;
    let i = i as u64;
    total / parts + u64::from(i < total % parts)
}

#[derive(Debug, Clone, Copy)]
enum Mode {
    /// Operation `k` starts at `start + k / per_s`.
    Rate { start: Instant, per_s: f64 },
    /// Keep `limit` in flight.
    Closed { limit: usize },
}

/// One worker's pacing for one phase.
#[derive(Debug, Clone)]
pub(crate) struct Pacer {
    mode: Mode,
    quota: u64,
    scheduled: u64,
    deadline: Instant,
}

impl Pacer {
    /// `per_s` operations a second from `start` on, `quota` at most, none from `deadline` on.
    pub(crate) fn rate(per_s: f64, start: Instant, quota: u64, deadline: Instant) -> Pacer {
        Pacer {
            mode: Mode::Rate { start, per_s },
            quota,
            scheduled: 0,
            deadline,
        }
    }

    /// Up to `limit` operations in flight, `quota` at most, none from `deadline` on.
    pub(crate) fn closed(limit: usize, quota: u64, deadline: Instant) -> Pacer {
        Pacer {
            mode: Mode::Closed { limit },
            quota,
            scheduled: 0,
            deadline,
        }
    }

    /// When operation `k` is due (rate mode).
    fn due_at(start: Instant, per_s: f64, k: u64) -> Instant {
        start + Duration::from_secs_f64(k as f64 / per_s)
    }

    /// True (and counted) when one more operation starts now, `in_flight` being those
    /// started or waiting and not finished.
    pub(crate) fn take(&mut self, now: Instant, in_flight: usize) -> bool {
        if self.exhausted(now) {
            return false;
        }
        let go = match self.mode {
            Mode::Rate { start, per_s } => Self::due_at(start, per_s, self.scheduled) <= now,
            Mode::Closed { limit } => in_flight < limit,
        };
        if go {
            self.scheduled += 1;
        }
        go
    }

    /// No more operations will start.
    pub(crate) fn exhausted(&self, now: Instant) -> bool {
        self.scheduled >= self.quota || now >= self.deadline
    }

    /// When the next operation is due, in rate mode (closed loop starts on completions).
    pub(crate) fn wakeup(&self) -> Option<Instant> {
        match self.mode {
            Mode::Rate { start, per_s } if self.scheduled < self.quota => {
                Some(Self::due_at(start, per_s, self.scheduled).min(self.deadline))
            }
            _ => None,
        }
    }

    /// Operations started (or queued) so far; operation `k` goes to the worker's user
    /// `k mod users`.
    pub(crate) fn scheduled(&self) -> u64 {
        self.scheduled
    }

    /// When the phase stops starting operations.
    pub(crate) fn deadline(&self) -> Instant {
        self.deadline
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_add_up_and_differ_by_one_at_most() {
        for (total, parts) in [(10u64, 3usize), (0, 2), (100_000, 2), (7, 7), (3, 5)] {
            let shares: Vec<u64> = (0..parts).map(|i| share(total, parts, i)).collect();
            assert_eq!(shares.iter().sum::<u64>(), total, "{total}/{parts}");
            let (min, max) = (shares.iter().min(), shares.iter().max());
            assert!(max.zip(min).is_some_and(|(a, b)| a - b <= 1), "{shares:?}");
        }
        assert_eq!(share(10, 3, 0), 4);
        assert_eq!(share(10, 3, 2), 3);
    }

    #[test]
    fn a_rate_starts_exactly_what_fell_due() {
        let t0 = Instant::now();
        let mut p = Pacer::rate(1000.0, t0, 1_000_000, t0 + Duration::from_secs(10));
        assert_eq!(p.wakeup(), Some(t0));
        // Operation 0 at t0, then one each millisecond: by t0 + 10 ms, eleven are due.
        let now = t0 + Duration::from_millis(10);
        let mut started = 0;
        while p.take(now, 0) {
            started += 1;
        }
        assert_eq!(started, 11);
        assert_eq!(p.wakeup(), Some(t0 + Duration::from_millis(11)));
        // Nothing more until then, however many are in flight.
        assert!(!p.take(now + Duration::from_micros(999), 0));
        assert!(p.take(t0 + Duration::from_millis(11), 5));
    }

    #[test]
    fn a_rate_stops_at_its_quota_and_its_deadline() {
        let t0 = Instant::now();
        let mut p = Pacer::rate(10.0, t0, 2, t0 + Duration::from_secs(60));
        let later = t0 + Duration::from_secs(5);
        assert!(p.take(later, 0) && p.take(later, 0));
        assert!(!p.take(later, 0));
        assert!(p.exhausted(later) && p.wakeup().is_none());

        let mut q = Pacer::rate(10.0, t0, 100, t0 + Duration::from_millis(150));
        let mut started = 0;
        while q.take(t0 + Duration::from_millis(149), 0) {
            started += 1;
        }
        assert_eq!(started, 2, "at 0 and 100 ms");
        assert!(
            !q.take(t0 + Duration::from_millis(200), 0),
            "past the deadline"
        );
        assert_eq!(q.scheduled(), 2);
    }

    #[test]
    fn a_closed_loop_keeps_its_limit_in_flight() {
        let t0 = Instant::now();
        let mut p = Pacer::closed(3, 5, t0 + Duration::from_secs(1));
        assert!(p.wakeup().is_none());
        assert!(p.take(t0, 0) && p.take(t0, 1) && p.take(t0, 2));
        assert!(!p.take(t0, 3));
        assert!(p.take(t0, 2) && p.take(t0, 2));
        assert!(!p.take(t0, 0), "quota of 5 reached");
        let mut late = Pacer::closed(3, 5, t0);
        assert!(!late.take(t0, 0), "deadline reached");
    }
}
