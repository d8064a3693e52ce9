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
//!   so that a sweep touches only what is due.
//! - **Write-behind**: every change marks its AOR dirty; one writer task
//!   ([`Location::write_behind`]) saves the latest state of each dirty AOR, so a burst of
//!   refreshes becomes one write, and retries a failed write later. The dirty set holds at
//!   most one entry per AOR.
//! - **Flows**: a binding remembers the transport, peer address and listener its REGISTER
//!   came by; requests to it are sent there (symmetric routing, which crosses NATs and
//!   reuses the client's connection), and an index by the contact's host and port finds the
//!   flow for in-dialog requests whose target is a registered contact.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use confab_sip::Uri;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::directory::{RegistrationStore, StoredBinding};
use crate::ids;
use crate::transport::{Source, Transport};

/// One registered contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The contact URI.
    pub contact: String,
    /// When it expires.
    pub expires_at: Instant,
    /// The same in Unix seconds, for the store.
    pub expires_at_unix: u64,
    /// q-value in thousandths.
    pub q: Option<u16>,
    /// Call-ID and CSeq of the REGISTER that last refreshed it.
    pub call_id: String,
    /// See `call_id`.
    pub cseq: u32,
    /// Path values (RFC 3327), outermost first.
    pub path: Vec<String>,
    /// How requests reach it.
    pub flow: Source,
    /// User-Agent of its REGISTER.
    pub user_agent: Option<String>,
    /// When it was first made, Unix seconds.
    pub registered_at: u64,
    /// Refresh order: higher is more recent.
    refreshed: u64,
}

impl Binding {
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

#[derive(Debug, Default)]
struct Inner {
    aors: HashMap<String, Vec<Binding>>,
    /// Each AOR's earliest expiry, as indexed.
    scheduled: HashMap<String, Instant>,
    by_expiry: BTreeSet<(Instant, String)>,
    /// Flows by contact `host:port` (lower-case).
    flows: HashMap<String, Source>,
    dirty: HashSet<String>,
    refresh_counter: u64,
}

/// The location service (see the module documentation).
#[derive(Debug)]
pub struct Location {
    max_contacts: usize,
    inner: Mutex<Inner>,
    dirty: Notify,
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

impl Location {
    /// An empty location service.
    pub fn new(max_contacts: usize) -> Self {
        Location {
            max_contacts,
            inner: Mutex::new(Inner::default()),
            dirty: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every change leaves the maps consistent before the lock is released.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies a REGISTER; returns the AOR's bindings afterwards.
    pub fn update(&self, u: Update, now: Instant) -> Result<Vec<Binding>, UpdateError> {
        let unix = ids::unix_now();
        let mut inner = self.lock();
        inner.refresh_counter += 1;
        let counter = inner.refresh_counter;
        let mut bindings: Vec<Binding> = inner.aors.get(&u.aor).cloned().unwrap_or_default();
        bindings.retain(|b| b.expires_at > now);
        let stale = |b: &Binding| b.call_id == u.call_id && u.cseq <= b.cseq;
        if u.remove_all {
            if bindings.iter().any(stale) {
                return Err(UpdateError::StaleCSeq);
            }
            bindings.clear();
        } else {
            let touched = bindings.iter().filter(|b| {
                u.contacts
                    .iter()
                    .any(|c| same_contact(&c.contact, &b.contact))
            });
            if touched.clone().any(stale) {
                return Err(UpdateError::StaleCSeq);
            }
            for (i, c) in u.contacts.iter().enumerate() {
                let existing = bindings
                    .iter()
                    .position(|b| same_contact(&c.contact, &b.contact));
                if c.expires == 0 {
                    if let Some(at) = existing {
                        bindings.remove(at);
                    }
                    continue;
                }
                let expires = Duration::from_secs(u64::from(c.expires));
                let registered_at = existing
                    .and_then(|at| bindings.get(at))
                    .map_or(unix, |b| b.registered_at);
                let binding = Binding {
                    contact: c.contact.clone(),
                    expires_at: now + expires,
                    expires_at_unix: unix + u64::from(c.expires),
                    q: c.q,
                    call_id: u.call_id.clone(),
                    cseq: u.cseq,
                    path: u.path.clone(),
                    flow: u.flow,
                    user_agent: u.user_agent.clone(),
                    registered_at,
                    refreshed: counter * 1000 + i as u64,
                };
                match existing.and_then(|at| bindings.get_mut(at)) {
                    Some(slot) => *slot = binding,
                    None => bindings.push(binding),
                }
            }
            while bindings.len() > self.max_contacts {
                let oldest = bindings
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, b)| b.refreshed)
                    .map(|(i, _)| i);
                if let Some(i) = oldest {
                    let dropped = bindings.remove(i);
                    info!(aor = %u.aor, contact = %dropped.contact, "contact cap reached: oldest binding dropped");
                }
            }
        }
        inner.set(&u.aor, bindings.clone());
        drop(inner);
        self.dirty.notify_one();
        Ok(bindings)
    }

    /// The live bindings of `aor`, best first (highest q, then most recently refreshed).
    pub fn lookup(&self, aor: &str, now: Instant) -> Vec<Binding> {
        let mut live: Vec<Binding> = self
            .lock()
            .aors
            .get(aor)
            .map(|bs| bs.iter().filter(|b| b.expires_at > now).cloned().collect())
            .unwrap_or_default();
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
        self.lock().flows.get(key).copied()
    }

    /// Drops every binding of `aor` (its user was disabled or removed by an operator);
    /// returns how many there were. The removal is written behind like any other change.
    pub fn remove(&self, aor: &str) -> usize {
        let mut inner = self.lock();
        let n = inner.aors.get(aor).map_or(0, Vec::len);
        if n > 0 {
            inner.set(aor, Vec::new());
        }
        drop(inner);
        if n > 0 {
            self.dirty.notify_one();
        }
        n
    }

    /// Removes expired bindings; returns the AORs changed.
    pub fn sweep(&self, now: Instant) -> usize {
        let mut inner = self.lock();
        let mut changed = 0;
        while let Some((at, aor)) = inner.by_expiry.first().cloned() {
            if at > now {
                break;
            }
            inner.by_expiry.pop_first();
            inner.scheduled.remove(&aor);
            let mut bindings = inner.aors.get(&aor).cloned().unwrap_or_default();
            let before = bindings.len();
            bindings.retain(|b| b.expires_at > now);
            if bindings.len() != before {
                changed += 1;
                debug!(%aor, expired = before - bindings.len(), "bindings expired");
            }
            inner.set(&aor, bindings);
        }
        drop(inner);
        if changed > 0 {
            self.dirty.notify_one();
        }
        changed
    }

    /// Loads bindings from the store at start; expired ones are skipped. Returns how many
    /// were loaded.
    pub fn load(&self, stored: Vec<StoredBinding>, now: Instant) -> usize {
        let unix = ids::unix_now();
        let mut by_aor: HashMap<String, Vec<Binding>> = HashMap::new();
        let mut loaded = 0;
        for (i, s) in stored.into_iter().enumerate() {
            if s.expires_at <= unix {
                continue;
            }
            let Some(flow) = parse_flow(&s.flow) else {
                warn!(aor = %s.aor, flow = %s.flow, "stored binding with an unreadable flow skipped");
                continue;
            };
            let binding = Binding {
                contact: s.contact,
                expires_at: now + Duration::from_secs(s.expires_at - unix),
                expires_at_unix: s.expires_at,
                q: s.q,
                call_id: s.call_id,
                cseq: s.cseq,
                path: s.path,
                flow,
                user_agent: s.user_agent,
                registered_at: s.registered_at,
                refreshed: i as u64,
            };
            by_aor.entry(s.aor).or_default().push(binding);
            loaded += 1;
        }
        let mut inner = self.lock();
        for (aor, bindings) in by_aor {
            inner.set(&aor, bindings);
            inner.dirty.remove(&aor);
        }
        loaded
    }

    /// The bindings of `aor` as the store keeps them.
    pub fn stored(&self, aor: &str) -> Vec<StoredBinding> {
        self.lock()
            .aors
            .get(aor)
            .map(|bs| {
                bs.iter()
                    .map(|b| StoredBinding {
                        aor: aor.to_owned(),
                        contact: b.contact.clone(),
                        expires_at: b.expires_at_unix,
                        q: b.q,
                        call_id: b.call_id.clone(),
                        cseq: b.cseq,
                        path: b.path.clone(),
                        flow: format_flow(&b.flow),
                        user_agent: b.user_agent.clone(),
                        registered_at: b.registered_at,
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Number of AORs with bindings.
    pub fn len(&self) -> usize {
        self.lock().aors.len()
    }

    /// True when nobody is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Writes dirty AORs to `store` until `shutdown`, then once more.
    pub async fn write_behind(
        self: Arc<Self>,
        store: Arc<dyn RegistrationStore>,
        shutdown: CancellationToken,
    ) {
        loop {
            let stop = tokio::select! {
                _ = shutdown.cancelled() => true,
                _ = self.dirty.notified() => false,
            };
            self.flush(store.as_ref()).await;
            if stop {
                break;
            }
        }
    }

    /// Saves every dirty AOR once; a failed save stays dirty for the next round.
    pub async fn flush(&self, store: &dyn RegistrationStore) {
        let dirty: Vec<String> = self.lock().dirty.drain().collect();
        let mut failed = Vec::new();
        for aor in dirty {
            let bindings = self.stored(&aor);
            if let Err(e) = store.save(&aor, &bindings).await {
                warn!(%aor, error = %e, "registration not written to the store; will retry");
                failed.push(aor);
            }
        }
        if !failed.is_empty() {
            self.lock().dirty.extend(failed);
            tokio::time::sleep(Duration::from_secs(1)).await;
            self.dirty.notify_one();
        }
    }
}

impl Inner {
    /// Replaces `aor`'s bindings, re-indexing its expiry and flows and marking it dirty.
    fn set(&mut self, aor: &str, bindings: Vec<Binding>) {
        if let Some(old) = self.aors.get(aor) {
            for b in old {
                if let Some(key) = contact_key(&b.contact) {
                    self.flows.remove(&key);
                }
            }
        }
        if let Some(at) = self.scheduled.remove(aor) {
            self.by_expiry.remove(&(at, aor.to_owned()));
        }
        self.dirty.insert(aor.to_owned());
        if bindings.is_empty() {
            self.aors.remove(aor);
            return;
        }
        for b in &bindings {
            if let Some(key) = contact_key(&b.contact) {
                self.flows.insert(key, b.flow);
            }
        }
        if let Some(first) = bindings.iter().map(|b| b.expires_at).min() {
            self.scheduled.insert(aor.to_owned(), first);
            self.by_expiry.insert((first, aor.to_owned()));
        }
        self.aors.insert(aor.to_owned(), bindings);
    }
}

#[cfg(test)]
#[path = "location_tests.rs"]
mod tests;
