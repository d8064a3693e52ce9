//! Containers that never stop the layer for long: a transaction map split into shards
//! ([`Sharded`]) and a first-in first-out queue in chunks ([`Chunked`]).
//!
//! **Why.** Under load a layer holds hundreds of thousands of transactions (at 12,000
//! requests a second over UDP, Timer J alone keeps 384,000). A single hash map doubles its
//! table as it grows and moves every entry while it does; a single `VecDeque` copies every
//! deadline. Measured on the server, the map's growth past 57,000 transactions held the
//! layer's lock for 22 ms, and every request waited — the p99 latency of the whole run.
//! Split into [`SHARDS`] maps, one growth moves a sixty-fourth of the entries; in chunks of
//! [`CHUNK`] deadlines, the queue never copies more than one chunk's worth of handles.
//!
//! **Hashing.** A [`TransactionKey`] carries a hash of its encoding, made once with a
//! per-process random key (so peers choosing branches cannot aim at one bucket); the maps
//! here use it as it is ([`KeyHashing`]) and growth re-reads it instead of hashing the key
//! again. The shard is chosen by bits the maps themselves do not use for buckets (the low
//! bits) or for control bytes (the top seven).

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};

use super::TransactionKey;

/// How many maps a [`Sharded`] map is split into.
pub(crate) const SHARDS: usize = 64;
/// Where the shard index is taken from in a key's hash: above the bucket bits of any map
/// below 2^32 buckets, below the seven control bits at the top.
const SHARD_SHIFT: u32 = 40;
/// Deadlines per chunk of a [`Chunked`] queue.
pub(crate) const CHUNK: usize = 4096;

/// A hasher that passes on the hash a [`TransactionKey`] carries.
#[derive(Debug, Default, Clone, Copy)]
pub struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    /// Only reached for types other than [`TransactionKey`]; mixes plainly.
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// Builds [`KeyHasher`]s.
pub type KeyHashing = BuildHasherDefault<KeyHasher>;

/// A map keyed by [`TransactionKey`] that uses the key's own hash.
pub type KeyMap<V> = HashMap<TransactionKey, V, KeyHashing>;

/// A [`KeyMap`] split into [`SHARDS`] maps (see the module documentation).
#[derive(Debug)]
pub(crate) struct Sharded<V> {
    shards: Box<[KeyMap<V>]>,
    len: usize,
}

impl<V> Default for Sharded<V> {
    fn default() -> Self {
        Sharded {
            shards: (0..SHARDS).map(|_| KeyMap::default()).collect(),
            len: 0,
        }
    }
}

impl<V> Sharded<V> {
    fn shard(&self, key: &TransactionKey) -> usize {
        (key.hash_value() >> SHARD_SHIFT) as usize % SHARDS
    }

    pub(crate) fn get(&self, key: &TransactionKey) -> Option<&V> {
        self.shards[self.shard(key)].get(key)
    }

    pub(crate) fn get_mut(&mut self, key: &TransactionKey) -> Option<&mut V> {
        let s = self.shard(key);
        self.shards[s].get_mut(key)
    }

    pub(crate) fn get_key_value(&self, key: &TransactionKey) -> Option<(&TransactionKey, &V)> {
        self.shards[self.shard(key)].get_key_value(key)
    }

    /// Inserts or replaces; returns what was there.
    pub(crate) fn insert(&mut self, key: TransactionKey, value: V) -> Option<V> {
        let s = self.shard(&key);
        let old = self.shards[s].insert(key, value);
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    /// Removes `key`; gives back the map's own key and the value. The shard gives back
    /// memory once most of it has drained.
    pub(crate) fn remove_entry(&mut self, key: &TransactionKey) -> Option<(TransactionKey, V)> {
        let s = self.shard(key);
        let map = &mut self.shards[s];
        let entry = map.remove_entry(key)?;
        self.len -= 1;
        if let Some(to) = shrink_to(map.len(), map.capacity()) {
            map.shrink_to(to);
        }
        Some(entry)
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

/// The capacity to shrink to when `len` has fallen below a quarter of `capacity`: halving
/// only then keeps the cost amortised, and a burst does not hold its memory for good.
fn shrink_to(len: usize, capacity: usize) -> Option<usize> {
    (capacity > 1024 && len < capacity / 4).then_some(len * 2)
}

/// A first-in first-out queue kept in chunks of at most [`CHUNK`] items (see the module
/// documentation). Emptied chunks are freed, but the last.
#[derive(Debug)]
pub(crate) struct Chunked<T> {
    chunks: VecDeque<VecDeque<T>>,
}

impl<T> Default for Chunked<T> {
    fn default() -> Self {
        Chunked {
            chunks: VecDeque::new(),
        }
    }
}

impl<T> Chunked<T> {
    pub(crate) fn push_back(&mut self, item: T) {
        match self.chunks.back_mut() {
            Some(last) if last.len() < CHUNK => last.push_back(item),
            _ => {
                let mut chunk = VecDeque::with_capacity(CHUNK);
                chunk.push_back(item);
                self.chunks.push_back(chunk);
            }
        }
    }

    /// Inserts `item` after every item for which `before` holds, assuming the queue is
    /// ordered so that those come first. Meant for items that belong at or near the back:
    /// the search runs from there.
    pub(crate) fn insert_ordered(&mut self, item: T, before: impl Fn(&T) -> bool) {
        let at = self
            .chunks
            .iter()
            .rposition(|c| c.front().is_none_or(&before))
            .unwrap_or(0);
        let last = self.chunks.len().checked_sub(1);
        let append = match self.chunks.get(at) {
            // The last chunk is full and `item` goes after all of it: a new chunk.
            Some(c) => Some(at) == last && c.len() >= CHUNK && c.back().is_none_or(&before),
            None => true,
        };
        match self.chunks.get_mut(at) {
            Some(chunk) if !append => {
                let pos = chunk.partition_point(&before);
                chunk.insert(pos, item);
            }
            _ => self.push_back(item),
        }
    }

    pub(crate) fn front(&self) -> Option<&T> {
        self.chunks.front().and_then(VecDeque::front)
    }

    pub(crate) fn pop_front(&mut self) -> Option<T> {
        let first = self.chunks.front_mut()?;
        let item = first.pop_front();
        if first.is_empty() && self.chunks.len() > 1 {
            self.chunks.pop_front();
        }
        item
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> {
        self.chunks.iter().flatten()
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.chunks.iter().map(VecDeque::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Message;

    fn key(i: usize) -> TransactionKey {
        let raw = format!(
            "MESSAGE sip:b@example.com SIP/2.0\r\nVia: SIP/2.0/UDP a.example.com;branch=z9hG4bK{i}\r\n\
             CSeq: 1 MESSAGE\r\nCall-ID: c\r\nFrom: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>\r\n\
             Content-Length: 0\r\n\r\n"
        );
        let msg = Message::parse(bytes::Bytes::from(raw)).expect("parses");
        TransactionKey::for_request(&msg).expect("a key")
    }

    #[test]
    fn sharded_map_finds_replaces_and_removes() {
        let mut m = Sharded::default();
        for i in 0..10_000 {
            assert!(m.insert(key(i), i).is_none());
        }
        assert_eq!(m.len(), 10_000);
        assert_eq!(m.insert(key(7), 70), Some(7));
        assert_eq!(m.len(), 10_000);
        assert_eq!(m.get(&key(7)), Some(&70));
        *m.get_mut(&key(8)).expect("present") = 80;
        assert_eq!(m.get_key_value(&key(8)).map(|(_, v)| *v), Some(80));
        for i in 0..10_000 {
            assert!(m.remove_entry(&key(i)).is_some(), "{i}");
        }
        assert_eq!(m.len(), 0);
        assert!(m.get(&key(1)).is_none());
        assert!(m.remove_entry(&key(1)).is_none());
    }

    #[test]
    fn keys_spread_over_every_shard() {
        let m: Sharded<()> = Sharded::default();
        let mut seen = [0usize; SHARDS];
        for i in 0..SHARDS * 100 {
            seen[m.shard(&key(i))] += 1;
        }
        assert!(seen.iter().all(|&n| n > 40), "{seen:?}");
    }

    #[test]
    fn chunked_queue_inserts_in_order_near_the_back() {
        let mut q = Chunked::default();
        q.insert_ordered(10, |x| *x <= 10);
        for i in (0..CHUNK * 2).map(|i| i * 2 + 100) {
            q.push_back(i);
        }
        // Late by a little: goes before the last few.
        let late = CHUNK * 4 + 95;
        q.insert_ordered(late, |x| *x <= late);
        // Earlier than all: goes first.
        q.insert_ordered(1, |x| *x <= 1);
        // Later than all: goes last.
        let last = usize::MAX - 1;
        q.insert_ordered(last, |x| *x <= last);
        let all: Vec<_> = q.iter().copied().collect();
        assert_eq!(all.len(), CHUNK * 2 + 4);
        assert!(all.windows(2).all(|w| w[0] <= w[1]), "out of order");
        assert_eq!(all.first(), Some(&1));
        assert_eq!(all.last(), Some(&(usize::MAX - 1)));
    }

    #[test]
    fn chunked_queue_is_first_in_first_out() {
        let mut q = Chunked::default();
        assert!(q.front().is_none());
        for i in 0..CHUNK * 3 + 5 {
            q.push_back(i);
        }
        assert_eq!(q.len(), CHUNK * 3 + 5);
        assert_eq!(q.iter().nth(CHUNK), Some(&CHUNK));
        for i in 0..CHUNK * 2 {
            assert_eq!(q.pop_front(), Some(i));
        }
        q.push_back(usize::MAX);
        assert_eq!(q.front(), Some(&(CHUNK * 2)));
        let rest: Vec<_> = std::iter::from_fn(|| q.pop_front()).collect();
        assert_eq!(rest.len(), CHUNK + 6);
        assert_eq!(rest.last(), Some(&usize::MAX));
        assert!(q.pop_front().is_none());
        q.push_back(1);
        assert_eq!(q.pop_front(), Some(1));
    }
}
