//! Timer queues for a worker. Every timer of one kind has the same duration (a retransmission
//! interval, the operation timeout, a dialog's lifetime), and a worker's clock only moves
//! forward, so timers of one kind fall due in the order they were set: a FIFO queue per
//! duration does what a heap would, in O(1). Timers are never cancelled; whoever pops one
//! checks that what it was set for still stands (a slot's transaction number, an operation's
//! number), which is cheaper than finding and removing it.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Timers of one fixed duration, in due order.
#[derive(Debug)]
pub(crate) struct Fifo<T> {
    after: Duration,
    queue: VecDeque<(Instant, T)>,
}

impl<T: Copy> Fifo<T> {
    /// Timers that fall due `after` they are set.
    pub(crate) fn new(after: Duration) -> Self {
        Fifo {
            after,
            queue: VecDeque::new(),
        }
    }

    /// Sets a timer at `now`.
    pub(crate) fn set(&mut self, now: Instant, item: T) {
        self.queue.push_back((now + self.after, item));
    }

    /// The earliest timer due at `now`, removed.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<T> {
        match self.queue.front() {
            Some(&(at, item)) if at <= now => {
                self.queue.pop_front();
                Some(item)
            }
            _ => None,
        }
    }

    /// When the earliest timer falls due.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.queue.front().map(|&(at, _)| at)
    }

    /// The duration of these timers.
    #[cfg(test)]
    pub(crate) fn after(&self) -> Duration {
        self.after
    }

    /// Timers set and not popped.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }
}

/// Retransmission timers by interval: level `k` fires `t1 · 2^k` after it is set.
#[derive(Debug)]
pub(crate) struct Backoff<T> {
    levels: Vec<Fifo<T>>,
}

impl<T: Copy> Backoff<T> {
    /// Levels `t1`, `2·t1`, … up to `t1 · 2^(levels-1)`.
    pub(crate) fn new(t1: Duration, levels: u8) -> Self {
        Backoff {
            levels: (0..levels.max(1))
                .map(|k| Fifo::new(t1 * (1u32 << k)))
                .collect(),
        }
    }

    /// The highest level.
    #[cfg(test)]
    pub(crate) fn top(&self) -> u8 {
        (self.levels.len() - 1) as u8
    }

    /// The interval of level `k` (the top one beyond).
    #[cfg(test)]
    pub(crate) fn interval(&self, k: u8) -> Duration {
        let top = self.levels.len() - 1;
        self.levels[usize::from(k).min(top)].after()
    }

    /// Sets a timer of level `k` (the top one beyond).
    pub(crate) fn set(&mut self, k: u8, now: Instant, item: T) {
        let top = self.levels.len() - 1;
        self.levels[usize::from(k).min(top)].set(now, item);
    }

    /// One timer due at `now`, removed, with its level.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<(u8, T)> {
        self.levels
            .iter_mut()
            .enumerate()
            .find_map(|(k, q)| q.pop_due(now).map(|item| (k as u8, item)))
    }

    /// When the earliest timer falls due.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.levels.iter().filter_map(Fifo::next).min()
    }

    /// Timers set and not popped.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.levels.iter().map(Fifo::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fifo_pops_in_due_order_only_when_due() {
        let t0 = Instant::now();
        let mut q = Fifo::new(Duration::from_millis(500));
        q.set(t0, 1);
        q.set(t0 + Duration::from_millis(10), 2);
        assert_eq!(q.next(), Some(t0 + Duration::from_millis(500)));
        assert_eq!(q.pop_due(t0 + Duration::from_millis(499)), None);
        assert_eq!(q.pop_due(t0 + Duration::from_millis(505)), Some(1));
        assert_eq!(q.pop_due(t0 + Duration::from_millis(505)), None);
        assert_eq!(q.pop_due(t0 + Duration::from_secs(1)), Some(2));
        assert_eq!(q.len(), 0);
    }

    #[test]
    fn backoff_levels_double_and_stop_at_the_top() {
        let t0 = Instant::now();
        let t1 = Duration::from_millis(500);
        let mut b = Backoff::new(t1, 4);
        assert_eq!(b.top(), 3);
        assert_eq!(b.interval(0), t1);
        assert_eq!(b.interval(3), Duration::from_secs(4));
        assert_eq!(b.interval(9), Duration::from_secs(4));
        b.set(2, t0, 'a');
        b.set(0, t0, 'b');
        b.set(7, t0, 'c');
        assert_eq!(b.next(), Some(t0 + t1));
        assert_eq!(b.pop_due(t0 + Duration::from_secs(2)), Some((0, 'b')));
        assert_eq!(b.pop_due(t0 + Duration::from_secs(2)), Some((2, 'a')));
        assert_eq!(b.pop_due(t0 + Duration::from_secs(2)), None);
        assert_eq!(b.pop_due(t0 + Duration::from_secs(4)), Some((3, 'c')));
        assert_eq!(b.len(), 0);
    }
}
