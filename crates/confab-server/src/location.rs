//! The location service: the bindings of every address-of-record served here, in memory,
//! with their expiry, written behind to a [`RegistrationStore`] and loaded from it at start.
//!
//! - **Updates** apply RFC 3261 §10.3 steps 6–8 to one REGISTER as a whole: a contact is
//!   the same binding when its URI is equivalent (§19.1.4); a REGISTER whose CSeq is not
//!   above that of a binding it touches with the same Call-ID changes nothing
//!   ([`UpdateError::StaleCSeq`]); `*` removes every binding. Beyond
//!   [`crate::ServiceConfig::max_contacts`] bindings, the least recently refreshed ones are
//!   dropped (never one the same REGISTER just made).
//! - **Expiry**: look-ups skip expired bindings; a sweeper ([`Location::sweep`], run by the
//!   router every 250 ms) removes them, using an index ordered by each AOR's earliest expiry
//!   so that a sweep touches only what is due. Expiries are kept in whole seconds: a
//!   binding lives at most its granted time, and at most a second less.
//! - **Write-behind**: every change marks its AOR dirty (at most once); one writer task
//!   ([`Location::write_behind`]) waits [`WRITE_DELAY`] after a change, so that a burst of
//!   REGISTERs is collected, then saves the latest state of every dirty AOR in batches of
//!   up to [`MAX_BATCH`] AORs, each batch one store transaction
//!   ([`save_many`]). A batch is written whole or not at all: a crash or
//!   a failed write leaves every AOR of it as the store had it before, and a failed batch
//!   is retried a second later. A crash loses at most the changes of the last
//!   [`WRITE_DELAY`] and of the write under way; clients repeat them at their next
//!   refresh. A refresh that changed nothing but an expiry (same contact, Call-ID, flow,
//!   Path, User-Agent, q) marks its AOR stale instead: stale AORs are written every
//!   [`REFRESH_WRITE_INTERVAL`] and at shutdown, or with a material change that comes
//!   first — refreshes are nearly all of a registrar's traffic. A batch the store refuses is retried AOR by AOR, and an AOR refused on its
//!   own is written alone from then on, so that one AOR the store cannot take does not
//!   hold back the others.
//! - **Flows**: a binding remembers the transport, peer address and listener its REGISTER
//!   came by; requests to it are sent there (symmetric routing, which crosses NATs and
//!   reuses the client's connection), and an index by the contact's host and port finds the
//!   flow for in-dialog requests whose target is a registered contact.
//!
//! [`RegistrationStore`]: crate::directory::RegistrationStore
//! [`save_many`]: crate::directory::RegistrationStore::save_many
//!
//! **Memory.** The bindings are laid out for a million registrations (`location_table.rs`;
//! measured by `tests/location_memory.rs`). A look-up hands out [`Binding`]s that share the
//! stored strings instead of copying them.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use confab_sip::Uri;
use tokio::sync::Notify;
use tracing::{debug, info, warn};

use crate::directory::StoredBinding;
use crate::transport::{Source, Transport};

#[path = "location_table.rs"]
mod table;
#[path = "location_writer.rs"]
mod writer;

use table::{Change, Clock, Entry, SlotId, Table};
pub use writer::{MAX_BATCH, REFRESH_WRITE_INTERVAL, WRITE_DELAY};

/// One registered contact, as handed out by [`Location::update`] and [`Location::lookup`].
/// Its strings are shared with the location service, not copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The contact URI followed by the Call-ID.
    text: Arc<str>,
    contact_len: usize,
    /// When it expires.
    pub expires_at: Instant,
    /// The same in Unix seconds, for the store.
    pub expires_at_unix: u64,
    /// q-value in thousandths.
    pub q: Option<u16>,
    /// CSeq of the REGISTER that last refreshed it.
    pub cseq: u32,
    path: Option<Arc<[String]>>,
    /// How requests reach it.
    pub flow: Source,
    user_agent: Option<Arc<str>>,
    /// When it was first made, Unix seconds.
    pub registered_at: u64,
    /// Refresh order: higher is more recent.
    refreshed: u64,
}

impl Binding {
    /// The contact URI.
    pub fn contact(&self) -> &str {
        self.text.get(..self.contact_len).unwrap_or("")
    }

    /// Call-ID of the REGISTER that last refreshed it.
    pub fn call_id(&self) -> &str {
        self.text.get(self.contact_len..).unwrap_or("")
    }

    /// Path values (RFC 3327), outermost first.
    pub fn path(&self) -> &[String] {
        self.path.as_deref().unwrap_or(&[])
    }

    /// User-Agent of its REGISTER.
    pub fn user_agent(&self) -> Option<&str> {
        self.user_agent.as_deref()
    }

    /// Seconds left at `now`, rounded up.
    pub fn remaining(&self, now: Instant) -> u64 {
        let left = self.expires_at.saturating_duration_since(now);
        left.as_secs() + u64::from(left.subsec_nanos() > 0)
    }
}

/// One contact of a REGISTER.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactUpdate {
    /// The contact URI.
    pub contact: String,
    /// Granted seconds; 0 removes the binding.
    pub expires: u32,
    /// q-value in thousandths.
    pub q: Option<u16>,
}

/// A REGISTER's changes to one address-of-record.
#[derive(Debug, Clone)]
pub struct Update {
    /// The AOR.
    pub aor: String,
    /// Call-ID of the REGISTER.
    pub call_id: String,
    /// CSeq number of the REGISTER.
    pub cseq: u32,
    /// `Contact: *` with `Expires: 0`.
    pub remove_all: bool,
    /// The contacts.
    pub contacts: Vec<ContactUpdate>,
    /// Path values.
    pub path: Vec<String>,
    /// Where the REGISTER came from.
    pub flow: Source,
    /// Its User-Agent.
    pub user_agent: Option<String>,
}

/// Why an update was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateError {
    /// Same Call-ID as a binding touched, and a CSeq not above it (RFC 3261 §10.3 step 7).
    StaleCSeq,
}

/// The location service (see the module documentation).
#[derive(Debug)]
pub struct Location {
    max_contacts: usize,
    clock: Clock,
    inner: Mutex<Table>,
    dirty: Notify,
    /// One flush at a time, so that an AOR's states reach the store in order; it holds
    /// the AORs the store refused on their own, which are written alone until it takes
    /// them.
    flushing: tokio::sync::Mutex<HashSet<String>>,
}

fn same_contact(a: &str, b: &str) -> bool {
    match (Uri::parse(a), Uri::parse(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

/// The `host:port` key of a contact URI, port defaulted per scheme.
pub fn contact_key(uri: &str) -> Option<String> {
    let u = Uri::parse(uri).ok()?;
    let default = if u.is_sips() { 5061 } else { 5060 };
    let host = u.host_str()?.to_ascii_lowercase();
    Some(format!("{host}:{}", u.port().unwrap_or(default)))
}

/// A flow as the store keeps it: `TRANSPORT PEER LOCAL`.
pub fn format_flow(flow: &Source) -> String {
    format!("{} {} {}", flow.transport, flow.peer, flow.local)
}

/// Reads [`format_flow`] back.
pub fn parse_flow(s: &str) -> Option<Source> {
    let mut parts = s.split_ascii_whitespace();
    let transport = Transport::from_scheme(parts.next()?)?;
    let peer: SocketAddr = parts.next()?.parse().ok()?;
    let local: SocketAddr = parts.next()?.parse().ok()?;
    Some(Source {
        transport,
        peer,
        local,
    })
}

/// The contact and the Call-ID in one shared block.
fn text(contact: &str, call_id: &str) -> Arc<str> {
    let mut s = String::with_capacity(contact.len() + call_id.len());
    s.push_str(contact);
    s.push_str(call_id);
    s.into()
}

impl Location {
    /// An empty location service.
    pub fn new(max_contacts: usize) -> Self {
        Location {
            max_contacts,
            clock: Clock::new(),
            inner: Mutex::new(Table::default()),
            dirty: Notify::new(),
            flushing: tokio::sync::Mutex::new(HashSet::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        // Every change leaves the table consistent before the lock is released.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn binding(&self, t: &Table, e: &Entry) -> Binding {
        Binding {
            text: Arc::clone(&e.text),
            contact_len: e.contact_len as usize,
            expires_at: self.clock.instant(e.expires),
            expires_at_unix: self.clock.unix(e.expires),
            q: e.q,
            cseq: e.cseq,
            path: e.path.clone(),
            flow: t.flow(e),
            user_agent: e.user_agent.clone(),
            registered_at: u64::from(e.registered_at),
            refreshed: e.refreshed,
        }
    }

    /// Applies a REGISTER; returns the AOR's bindings afterwards.
    pub fn update(&self, u: Update, now: Instant) -> Result<Vec<Binding>, UpdateError> {
        let now_s = self.clock.secs(now);
        let mut t = self.lock();
        let existing = t.find(&u.aor);
        // Refused before anything changes.
        if let Some(id) = existing {
            let stale = |e: &Entry| e.call_id() == u.call_id && u.cseq <= e.cseq;
            let mut live = t.entries(id).iter().filter(|e| e.expires > now_s);
            let refused = if u.remove_all {
                live.any(stale)
            } else {
                live.any(|e| {
                    stale(e)
                        && u.contacts
                            .iter()
                            .any(|c| same_contact(&c.contact, e.contact()))
                })
            };
            if refused {
                return Err(UpdateError::StaleCSeq);
            }
        }
        t.refresh_counter += 1;
        let counter = t.refresh_counter;
        let id = existing.unwrap_or_else(|| t.find_or_add(&u.aor));
        let mut entries = t.take(id);
        let taken = entries.len();
        entries.retain(|e| e.expires > now_s);
        let change = if u.remove_all {
            entries.clear();
            Change::Material
        } else {
            let before = (entries.len() == taken).then(|| entries.clone());
            self.apply(&mut t, &u, &mut entries, now_s, counter);
            let refreshed = before.is_some_and(|before| {
                before.len() == entries.len()
                    && before.iter().zip(&entries).all(|(b, a)| b.refreshed_as(a))
            });
            if refreshed {
                Change::Refresh
            } else {
                Change::Material
            }
        };
        t.put(id, entries, change);
        let bindings = t.entries(id).iter().map(|e| self.binding(&t, e)).collect();
        drop(t);
        self.dirty.notify_one();
        Ok(bindings)
    }

    /// Applies the contacts of `u` to `entries`, then the cap.
    fn apply(&self, t: &mut Table, u: &Update, entries: &mut Vec<Entry>, now: u32, counter: u64) {
        let unix = u32::try_from(self.clock.unix(now)).unwrap_or(u32::MAX);
        // Shared by the contacts of this REGISTER.
        let path: Option<Arc<[String]>> = (!u.path.is_empty()).then(|| u.path.as_slice().into());
        let user_agent = u.user_agent.as_deref().map(|ua| t.user_agent(ua));
        let local = t.local(&u.flow);
        for (i, c) in u.contacts.iter().enumerate() {
            let existing = entries
                .iter()
                .position(|e| same_contact(&c.contact, e.contact()));
            if c.expires == 0 {
                if let Some(at) = existing {
                    entries.remove(at);
                }
                continue;
            }
            let Ok(contact_len) = u32::try_from(c.contact.len()) else {
                continue;
            };
            let registered_at = existing
                .and_then(|at| entries.get(at))
                .map_or(unix, |e| e.registered_at);
            let entry = Entry {
                text: text(&c.contact, &u.call_id),
                path: path.clone(),
                user_agent: user_agent.clone(),
                refreshed: counter * 1000 + i as u64,
                peer: u.flow.peer,
                contact_len,
                expires: Clock::later(now, u64::from(c.expires)),
                cseq: u.cseq,
                local,
                registered_at,
                q: c.q,
            };
            match existing.and_then(|at| entries.get_mut(at)) {
                Some(slot) => *slot = entry,
                None => entries.push(entry),
            }
        }
        while entries.len() > self.max_contacts {
            let oldest = entries
                .iter()
                .enumerate()
                .min_by_key(|(_, e)| e.refreshed)
                .map(|(i, _)| i);
            if let Some(i) = oldest {
                let dropped = entries.remove(i);
                info!(aor = %u.aor, contact = %dropped.contact(), "contact cap reached: oldest binding dropped");
            }
        }
    }

    /// The live bindings of `aor`, best first (highest q, then most recently refreshed).
    pub fn lookup(&self, aor: &str, now: Instant) -> Vec<Binding> {
        let now_s = self.clock.secs(now);
        let t = self.lock();
        let Some(id) = t.find(aor) else {
            return Vec::new();
        };
        let mut live: Vec<Binding> = t
            .entries(id)
            .iter()
            .filter(|e| e.expires > now_s)
            .map(|e| self.binding(&t, e))
            .collect();
        drop(t);
        live.sort_by_key(|b| {
            (
                std::cmp::Reverse(b.q.unwrap_or(1000)),
                std::cmp::Reverse(b.refreshed),
            )
        });
        live
    }

    /// The flow of a registered contact at this `host:port` ([`contact_key`]).
    pub fn flow_for(&self, key: &str) -> Option<Source> {
        let t = self.lock();
        let id = t.flow_slot(key)?;
        t.entries(id)
            .iter()
            .rev()
            .find(|e| contact_key(e.contact()).as_deref() == Some(key))
            .map(|e| t.flow(e))
    }

    /// Drops every binding of `aor` (its user was disabled or removed by an operator);
    /// returns how many there were. The removal is written behind like any other change.
    pub fn remove(&self, aor: &str) -> usize {
        let mut t = self.lock();
        let Some(id) = t.find(aor) else { return 0 };
        let n = t.entries(id).len();
        if n > 0 {
            t.take(id);
            t.put(id, Vec::new(), Change::Material);
        }
        drop(t);
        if n > 0 {
            self.dirty.notify_one();
        }
        n
    }

    /// Removes expired bindings; returns the AORs changed.
    pub fn sweep(&self, now: Instant) -> usize {
        let now_s = self.clock.secs(now);
        let mut t = self.lock();
        let mut changed = 0;
        while let Some(id) = t.pop_due(now_s) {
            let mut entries = t.take(id);
            let before = entries.len();
            entries.retain(|e| e.expires > now_s);
            let change = if entries.len() != before {
                changed += 1;
                debug!(aor = %t.name(id), expired = before - entries.len(), "bindings expired");
                Change::Material
            } else {
                Change::None
            };
            t.put(id, entries, change);
        }
        drop(t);
        if changed > 0 {
            self.dirty.notify_one();
        }
        changed
    }

    /// The AORs with bindings here.
    pub fn aors(&self) -> Vec<String> {
        let t = self.lock();
        t.ids()
            .into_iter()
            .filter(|&id| !t.entries(id).is_empty())
            .map(|id| t.name(id).to_owned())
            .collect()
    }

    /// Forgets the bindings of every AOR for which `keep` is false, without writing anything
    /// to the store: another member of the pool owns those users now and serves them from
    /// the store. An AOR with changes not written yet is kept (write them first: the caller
    /// flushes and asks again). Returns (AORs forgotten, AORs kept unwritten).
    pub fn forget_unless(&self, keep: impl Fn(&str) -> bool) -> (usize, usize) {
        let mut t = self.lock();
        let (mut forgotten, mut unsaved) = (0, 0);
        for id in t.ids() {
            if keep(t.name(id)) || t.entries(id).is_empty() {
                continue;
            }
            if t.unsaved(id) {
                unsaved += 1;
                continue;
            }
            t.take(id);
            t.put(id, Vec::new(), Change::None);
            forgotten += 1;
        }
        (forgotten, unsaved)
    }

    /// Writes every change not written yet, refreshes included (before forgetting users
    /// another member takes over); returns whether all were written.
    pub async fn flush_all(&self, store: &dyn crate::directory::RegistrationStore) -> bool {
        self.lock().promote_stale();
        self.flush(store).await
    }

    /// Takes over bindings from the store (users this front-end now owns): those of AORs
    /// that have no live binding here; expired ones are skipped. Returns how many were taken.
    pub fn adopt(&self, mut stored: Vec<StoredBinding>, now: Instant) -> usize {
        let now_s = self.clock.secs(now);
        {
            let t = self.lock();
            stored.retain(|s| {
                t.find(&s.aor)
                    .is_none_or(|id| t.entries(id).iter().all(|e| e.expires <= now_s))
            });
        }
        self.load(stored, now)
    }

    /// Loads bindings from the store at start; expired ones are skipped. Returns how many
    /// were loaded.
    pub fn load(&self, stored: Vec<StoredBinding>, _now: Instant) -> usize {
        let unix = crate::ids::unix_now();
        let mut t = self.lock();
        let mut by_aor: HashMap<String, Vec<Entry>> = HashMap::new();
        let mut loaded = 0;
        for (i, s) in stored.into_iter().enumerate() {
            if s.expires_at <= unix {
                continue;
            }
            let Some(flow) = parse_flow(&s.flow) else {
                warn!(aor = %s.aor, flow = %s.flow, "stored binding with an unreadable flow skipped");
                continue;
            };
            let Ok(contact_len) = u32::try_from(s.contact.len()) else {
                continue;
            };
            let entry = Entry {
                text: text(&s.contact, &s.call_id),
                path: (!s.path.is_empty()).then(|| s.path.into()),
                user_agent: s.user_agent.as_deref().map(|ua| t.user_agent(ua)),
                refreshed: i as u64,
                peer: flow.peer,
                contact_len,
                expires: self.clock.secs_of_unix(s.expires_at),
                cseq: s.cseq,
                local: t.local(&flow),
                registered_at: u32::try_from(s.registered_at).unwrap_or(u32::MAX),
                q: s.q,
            };
            by_aor.entry(s.aor).or_default().push(entry);
            loaded += 1;
        }
        for (aor, entries) in by_aor {
            let id = t.find_or_add(&aor);
            t.take(id);
            t.put(id, entries, Change::None);
        }
        loaded
    }

    /// The bindings of `aor` as the store keeps them.
    pub fn stored(&self, aor: &str) -> Vec<StoredBinding> {
        let t = self.lock();
        t.find(aor)
            .map(|id| self.stored_of(&t, aor, t.entries(id)))
            .unwrap_or_default()
    }

    fn stored_of(&self, t: &Table, aor: &str, entries: &[Entry]) -> Vec<StoredBinding> {
        entries
            .iter()
            .map(|e| StoredBinding {
                aor: aor.to_owned(),
                contact: e.contact().to_owned(),
                expires_at: self.clock.unix(e.expires),
                q: e.q,
                call_id: e.call_id().to_owned(),
                cseq: e.cseq,
                path: e
                    .path
                    .as_deref()
                    .map(<[String]>::to_vec)
                    .unwrap_or_default(),
                flow: format_flow(&t.flow(e)),
                user_agent: e.user_agent.as_deref().map(str::to_owned),
                registered_at: u64::from(e.registered_at),
            })
            .collect()
    }

    /// Number of AORs with bindings.
    pub fn len(&self) -> usize {
        self.lock().live()
    }

    /// True when nobody is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
#[path = "location_tests.rs"]
mod tests;
