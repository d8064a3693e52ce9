//! The location service's storage, laid out for a million registrations: per registered
//! contact it keeps one slot and two heap blocks (the AOR's name, and the contact with its
//! Call-ID), and indexes them without copying a string.
//!
//! - **Slots**: each AOR has a [`Slot`] in a slab of fixed-size chunks (growing never moves
//!   or copies the slots already there), addressed by a [`SlotId`]. A slot holds its AOR's
//!   name once and its bindings inline when there is one, as for almost every AOR.
//! - **Names**: an index from a keyed hash of the AOR's name to the slot; AORs whose hashes
//!   collide are chained through the slots, and every look-up compares the name itself.
//! - **Expiry**: an ordered set of (earliest expiry, slot), so that a sweep touches only
//!   what is due.
//! - **Flows**: an index from a keyed hash of a contact's `host:port` to the slot of the
//!   AOR that registered it last. It is a hint: a look-up checks the slot's contacts, so a
//!   collision between two keys (a chance of about 1 in 10^8 at a million contacts) makes
//!   one of them unknown (routed by its address instead of its flow), never wrong.
//! - **Shared values**: the listener a flow came to and the User-Agent strings (thousands
//!   of phones share a handful) are kept once; a binding holds an index or a shared pointer.
//! - **Time**: whole seconds since the service's [`Clock`] origin, in 32 bits. An expiry is
//!   counted from the start of the second the REGISTER was handled in, so a binding never
//!   outlives its granted time and lives at most a second less.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::ids;
use crate::transport::{Source, Transport};

/// A slot of the slab.
pub(super) type SlotId = u32;
/// No slot: the end of a hash chain.
const NO_SLOT: SlotId = SlotId::MAX;
/// Slots per chunk of the slab.
const CHUNK: usize = 4096;

/// Whole seconds since the [`Clock`] origin.
pub(super) type Secs = u32;
/// Later than any expiry: an AOR without bindings is due never.
const NEVER: Secs = Secs::MAX;

/// One clock for every binding: the monotonic origin and the Unix time at that moment.
#[derive(Debug, Clone, Copy)]
pub(super) struct Clock {
    origin: Instant,
    origin_unix: u64,
}

impl Clock {
    pub(super) fn new() -> Self {
        Clock {
            origin: Instant::now(),
            origin_unix: ids::unix_now(),
        }
    }

    /// `now`, in whole seconds since the origin (rounded down).
    pub(super) fn secs(&self, now: Instant) -> Secs {
        let s = now.saturating_duration_since(self.origin).as_secs();
        Secs::try_from(s).unwrap_or(NEVER - 1).min(NEVER - 1)
    }

    /// `secs` (since the origin) plus `add` seconds, kept below [`NEVER`].
    pub(super) fn later(secs: Secs, add: u64) -> Secs {
        let sum = u64::from(secs).saturating_add(add);
        Secs::try_from(sum).unwrap_or(NEVER - 1).min(NEVER - 1)
    }

    pub(super) fn instant(&self, secs: Secs) -> Instant {
        self.origin + Duration::from_secs(u64::from(secs))
    }

    pub(super) fn unix(&self, secs: Secs) -> u64 {
        self.origin_unix + u64::from(secs)
    }

    /// A Unix time in seconds since the origin; 0 for anything before it.
    pub(super) fn secs_of_unix(&self, unix: u64) -> Secs {
        Self::later(0, unix.saturating_sub(self.origin_unix))
    }
}

/// One registered contact, as kept.
#[derive(Debug, Clone)]
pub(super) struct Entry {
    /// The contact URI followed by the Call-ID, in one block shared with the bindings
    /// handed out.
    pub(super) text: Arc<str>,
    /// The Path values, outermost first; `None` when there are none.
    pub(super) path: Option<Arc<[String]>>,
    /// Interned.
    pub(super) user_agent: Option<Arc<str>>,
    /// Refresh order: higher is more recent.
    pub(super) refreshed: u64,
    /// The flow's peer; its transport and local address are [`Entry::local`].
    pub(super) peer: SocketAddr,
    /// Length of the contact at the start of `text`.
    pub(super) contact_len: u32,
    pub(super) expires: Secs,
    pub(super) cseq: u32,
    /// Index of the flow's transport and listener in [`Table::locals`].
    pub(super) local: u32,
    /// Unix seconds (until 2106).
    pub(super) registered_at: u32,
    pub(super) q: Option<u16>,
}

impl Entry {
    pub(super) fn contact(&self) -> &str {
        self.text.get(..self.contact_len as usize).unwrap_or("")
    }

    /// True when `later` is this binding refreshed: the same contact, Call-ID, flow, Path,
    /// User-Agent, q and first registration — only expiry, CSeq and refresh order moved.
    pub(super) fn refreshed_as(&self, later: &Entry) -> bool {
        self.text == later.text
            && self.path == later.path
            && self.user_agent == later.user_agent
            && self.peer == later.peer
            && self.local == later.local
            && self.q == later.q
            && self.registered_at == later.registered_at
    }

    pub(super) fn call_id(&self) -> &str {
        self.text.get(self.contact_len as usize..).unwrap_or("")
    }
}

/// An AOR's bindings: inline when there is one.
#[derive(Debug)]
enum Entries {
    One(Entry),
    Many(Vec<Entry>),
}

impl Entries {
    fn as_slice(&self) -> &[Entry] {
        match self {
            Entries::One(e) => std::slice::from_ref(e),
            Entries::Many(v) => v,
        }
    }

    fn into_vec(self) -> Vec<Entry> {
        match self {
            Entries::One(e) => vec![e],
            Entries::Many(v) => v,
        }
    }

    fn from_vec(mut v: Vec<Entry>) -> Self {
        match v.pop() {
            Some(e) if v.is_empty() => Entries::One(e),
            Some(e) => {
                v.push(e);
                v.shrink_to_fit();
                Entries::Many(v)
            }
            None => Entries::Many(Vec::new()),
        }
    }
}

/// What a change to an AOR's bindings means for the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Change {
    /// Nothing to write (the bindings came from the store).
    None,
    /// Bindings added, removed or altered: written within the write delay.
    Material,
    /// Bindings refreshed and nothing else: written with the next round of refreshes.
    Refresh,
}

#[derive(Debug)]
struct Slot {
    name: Box<str>,
    entries: Entries,
    /// The earliest expiry, as indexed in [`Table::by_expiry`].
    due: Secs,
    /// The next slot whose name has the same hash.
    next: SlotId,
    /// Changed since last written to the store; listed in [`Table::dirty`].
    dirty: bool,
    /// Refreshed since last written, and nothing else changed (expiry, CSeq and refresh
    /// order moved on); listed in [`Table::stale`], written later than a dirty slot.
    stale: bool,
}

/// A hasher for keys that are hashes already.
#[derive(Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

type HashIndex = HashMap<u64, SlotId, BuildHasherDefault<Prehashed>>;

/// The storage (see the module documentation).
#[derive(Debug, Default)]
pub(super) struct Table {
    chunks: Vec<Vec<Option<Slot>>>,
    free: Vec<SlotId>,
    keys: RandomState,
    names: HashIndex,
    by_expiry: BTreeSet<(Secs, SlotId)>,
    flows: HashIndex,
    /// Transports and listeners that flows came by; they are few (one per listening socket
    /// and local address), so they are kept for the life of the service.
    locals: Vec<(Transport, SocketAddr)>,
    local_index: HashMap<(u8, SocketAddr), u32>,
    user_agents: HashSet<Arc<str>>,
    /// Interned User-Agents are purged of unused ones when the set reaches this size.
    purge_user_agents_at: usize,
    /// The dirty slots, each once.
    dirty: Vec<SlotId>,
    /// The stale slots (see [`Slot::stale`]), each once; some may have been written since.
    stale: Vec<SlotId>,
    /// AORs with at least one binding.
    live: usize,
    /// Refresh order of the last binding written.
    pub(super) refresh_counter: u64,
}

fn transport_code(t: Transport) -> u8 {
    t as u8
}

impl Table {
    fn slot(&self, id: SlotId) -> Option<&Slot> {
        let i = id as usize;
        self.chunks.get(i / CHUNK)?.get(i % CHUNK)?.as_ref()
    }

    fn slot_mut(&mut self, id: SlotId) -> Option<&mut Slot> {
        let i = id as usize;
        self.chunks.get_mut(i / CHUNK)?.get_mut(i % CHUNK)?.as_mut()
    }

    fn hash(&self, text: &str) -> u64 {
        self.keys.hash_one(text)
    }

    /// The slot of `aor`, if it has one.
    pub(super) fn find(&self, aor: &str) -> Option<SlotId> {
        let mut id = *self.names.get(&self.hash(aor))?;
        while let Some(slot) = self.slot(id) {
            if &*slot.name == aor {
                return Some(id);
            }
            id = slot.next;
        }
        None
    }

    /// The slot of `aor`, made if it has none.
    pub(super) fn find_or_add(&mut self, aor: &str) -> SlotId {
        if let Some(id) = self.find(aor) {
            return id;
        }
        let h = self.hash(aor);
        let next = self.names.get(&h).copied().unwrap_or(NO_SLOT);
        let slot = Slot {
            name: aor.into(),
            entries: Entries::Many(Vec::new()),
            due: NEVER,
            next,
            dirty: false,
            stale: false,
        };
        let id = match self.free.pop() {
            Some(id) => {
                let i = id as usize;
                if let Some(place) = self
                    .chunks
                    .get_mut(i / CHUNK)
                    .and_then(|c| c.get_mut(i % CHUNK))
                {
                    *place = Some(slot);
                }
                id
            }
            None => {
                let full = self.chunks.len().saturating_sub(1) * CHUNK;
                match self.chunks.last_mut() {
                    Some(last) if last.len() < CHUNK => {
                        last.push(Some(slot));
                        SlotId::try_from(full + last.len() - 1).unwrap_or(NO_SLOT)
                    }
                    _ => {
                        let mut chunk = Vec::with_capacity(CHUNK);
                        chunk.push(Some(slot));
                        self.chunks.push(chunk);
                        SlotId::try_from((self.chunks.len() - 1) * CHUNK).unwrap_or(NO_SLOT)
                    }
                }
            }
        };
        self.names.insert(h, id);
        id
    }

    /// Frees an empty slot that is not dirty.
    fn release(&mut self, id: SlotId) {
        let Some(slot) = self.slot(id) else { return };
        if !slot.entries.as_slice().is_empty() || slot.dirty || slot.stale {
            return;
        }
        let (h, next) = (self.hash(&slot.name), slot.next);
        match self.names.get(&h).copied() {
            Some(head) if head == id => {
                if next == NO_SLOT {
                    self.names.remove(&h);
                } else {
                    self.names.insert(h, next);
                }
            }
            Some(mut at) => {
                while let Some(s) = self.slot_mut(at) {
                    if s.next == id {
                        s.next = next;
                        break;
                    }
                    at = s.next;
                }
            }
            None => {}
        }
        let i = id as usize;
        if let Some(place) = self
            .chunks
            .get_mut(i / CHUNK)
            .and_then(|c| c.get_mut(i % CHUNK))
        {
            *place = None;
            self.free.push(id);
        }
    }

    pub(super) fn name(&self, id: SlotId) -> &str {
        self.slot(id).map_or("", |s| &s.name)
    }

    pub(super) fn entries(&self, id: SlotId) -> &[Entry] {
        self.slot(id).map_or(&[], |s| s.entries.as_slice())
    }

    /// Takes the bindings of `id` out of the slot and its indexes, to be changed and
    /// [`Table::put`] back.
    pub(super) fn take(&mut self, id: SlotId) -> Vec<Entry> {
        let Some(slot) = self.slot_mut(id) else {
            return Vec::new();
        };
        let entries = std::mem::replace(&mut slot.entries, Entries::Many(Vec::new())).into_vec();
        let due = std::mem::replace(&mut slot.due, NEVER);
        if due != NEVER {
            self.by_expiry.remove(&(due, id));
        }
        if !entries.is_empty() {
            self.live -= 1;
        }
        for e in &entries {
            if let Some(h) = self.flow_key(e.contact()) {
                if self.flows.get(&h) == Some(&id) {
                    self.flows.remove(&h);
                }
            }
        }
        entries
    }

    /// Puts bindings (taken from `id` and changed) back, indexes them and marks the AOR for
    /// writing as `change` says.
    pub(super) fn put(&mut self, id: SlotId, entries: Vec<Entry>, change: Change) {
        let due = entries.iter().map(|e| e.expires).min().unwrap_or(NEVER);
        if !entries.is_empty() {
            self.live += 1;
            if due != NEVER {
                self.by_expiry.insert((due, id));
            }
        }
        for e in &entries {
            if let Some(h) = self.flow_key(e.contact()) {
                self.flows.insert(h, id);
            }
        }
        let Some(slot) = self.slot_mut(id) else {
            return;
        };
        slot.entries = Entries::from_vec(entries);
        slot.due = due;
        match change {
            Change::Material if !slot.dirty => {
                slot.dirty = true;
                self.dirty.push(id);
            }
            Change::Refresh if !slot.dirty && !slot.stale => {
                slot.stale = true;
                self.stale.push(id);
            }
            _ => {}
        }
        self.release(id);
    }

    /// Marks every stale slot dirty, for the next write; returns how many were.
    pub(super) fn promote_stale(&mut self) -> usize {
        let mut n = 0;
        for id in std::mem::take(&mut self.stale) {
            let Some(slot) = self.slot_mut(id) else {
                continue;
            };
            if std::mem::take(&mut slot.stale) && !slot.dirty {
                slot.dirty = true;
                self.dirty.push(id);
                n += 1;
            }
        }
        n
    }

    fn flow_key(&self, contact: &str) -> Option<u64> {
        super::contact_key(contact).map(|k| self.hash(&k))
    }

    /// The AOR due first, if it is due at `now` (a binding of it expired at or before
    /// then), taken off the expiry index.
    pub(super) fn pop_due(&mut self, now: Secs) -> Option<SlotId> {
        let &(due, _) = self.by_expiry.first()?;
        if due > now {
            return None;
        }
        self.by_expiry.pop_first().map(|(_, id)| id)
    }

    /// The slot that last registered a contact at `key` (`host:port`), unverified.
    pub(super) fn flow_slot(&self, key: &str) -> Option<SlotId> {
        self.flows.get(&self.hash(key)).copied()
    }

    /// Index of a flow's transport and listener.
    pub(super) fn local(&mut self, flow: &Source) -> u32 {
        let key = (transport_code(flow.transport), flow.local);
        if let Some(&i) = self.local_index.get(&key) {
            return i;
        }
        let i = u32::try_from(self.locals.len()).unwrap_or(u32::MAX);
        self.locals.push((flow.transport, flow.local));
        self.local_index.insert(key, i);
        i
    }

    /// The full flow of `e`.
    pub(super) fn flow(&self, e: &Entry) -> Source {
        let (transport, local) = self
            .locals
            .get(e.local as usize)
            .copied()
            .unwrap_or((Transport::Udp, e.peer));
        Source {
            transport,
            peer: e.peer,
            local,
        }
    }

    /// The one shared copy of a User-Agent string.
    pub(super) fn user_agent(&mut self, ua: &str) -> Arc<str> {
        if let Some(a) = self.user_agents.get(ua) {
            return Arc::clone(a);
        }
        if self.user_agents.len() >= self.purge_user_agents_at {
            // Only the set holds the unused ones. Purging at twice the size left keeps the
            // set within twice the strings in use, for constant work per insertion.
            self.user_agents.retain(|a| Arc::strong_count(a) > 1);
            self.purge_user_agents_at = (self.user_agents.len() * 2).max(64);
        }
        let a: Arc<str> = ua.into();
        self.user_agents.insert(Arc::clone(&a));
        a
    }

    /// Every slot in use.
    pub(super) fn ids(&self) -> Vec<SlotId> {
        let mut ids = Vec::new();
        for (c, chunk) in self.chunks.iter().enumerate() {
            for (i, slot) in chunk.iter().enumerate() {
                if slot.is_some() {
                    if let Ok(id) = SlotId::try_from(c * CHUNK + i) {
                        ids.push(id);
                    }
                }
            }
        }
        ids
    }

    /// True when `id` has changes not written yet (material or refreshes).
    pub(super) fn unsaved(&self, id: SlotId) -> bool {
        self.slot(id).is_some_and(|s| s.dirty || s.stale)
    }

    pub(super) fn live(&self) -> usize {
        self.live
    }

    /// The dirty slots, each once; they stay marked until [`Table::written`].
    pub(super) fn take_dirty(&mut self) -> Vec<SlotId> {
        std::mem::take(&mut self.dirty)
    }

    /// If `id` is dirty: clears the mark and returns true (its state is about to be
    /// written).
    pub(super) fn clean(&mut self, id: SlotId) -> bool {
        match self.slot_mut(id) {
            Some(slot) if slot.dirty => {
                slot.dirty = false;
                // What is written now includes the refreshes.
                slot.stale = false;
                true
            }
            _ => false,
        }
    }

    /// Gives back dirty slots taken by [`Table::take_dirty`] and not cleaned.
    pub(super) fn untake_dirty(&mut self, ids: &[SlotId]) {
        for &id in ids {
            if self.slot(id).is_some_and(|s| s.dirty) {
                self.dirty.push(id);
            }
        }
    }

    /// Marks `aor` dirty again: its write failed.
    pub(super) fn unwritten(&mut self, aor: &str) {
        let id = self.find_or_add(aor);
        if let Some(slot) = self.slot_mut(id) {
            if !slot.dirty {
                slot.dirty = true;
                self.dirty.push(id);
            }
        }
    }

    /// `aor` was written: frees its slot if it has no bindings (and was not changed since).
    pub(super) fn written(&mut self, aor: &str) {
        if let Some(id) = self.find(aor) {
            self.release(id);
        }
    }
}
