//! Presence: the presence agent for the users this front-end serves — publications (RFC 3903
//! PUBLISH with entity-tags), subscriptions (RFC 6665 SUBSCRIBE/NOTIFY for the `presence`
//! package of RFC 3856 and the `presence.winfo` package of RFC 3857), the composition of
//! several devices into one view, and who may see what.
//!
//! | module | owns |
//! |---|---|
//! | [`pidf`] | the PIDF document: reading a publication, composing devices, writing a watcher's view at its access level |
//! | [`policy`] | who sees how much: rules, contact list, the default for unknown watchers |
//! | [`dialog`] | a subscription's dialog from the notifier's side, its stored form, NOTIFY requests |
//! | [`winfo`] | watcher information documents |
//! | this module | [`Presence`]: the state in memory, PUBLISH and SUBSCRIBE, NOTIFY delivery, expiry, write-behind, restart |
//!
//! **State.** Everything lives in memory behind one lock: per presentity its live
//! publications (one per device and entity-tag), whether it has a registration, and its
//! watchers; per subscription its dialog, expiry and standing (pending, or an access level).
//! Nothing waits on the store while serving: the state is written behind every second
//! ([`Presence::flush`]) and read back at start ([`Presence::load`]), after which every
//! subscriber gets a fresh NOTIFY.
//!
//! **The view.** A presentity with live publications shows the most available of them
//! ([`pidf::compose`]); with none, a registration shows it available and no registration
//! offline. Every change of publications, registration or rules re-renders each watcher's
//! document and sends a NOTIFY to the watchers whose document changed, so a blocked watcher
//! (always shown the offline document) never sees traffic that follows the presentity's
//! activity. Refreshes always get a NOTIFY (RFC 6665 §4.2.1.2).
//!
//! **Delivery.** One NOTIFY at a time per subscription, through a client transaction of the
//! driver: a change while one is in flight is sent when it is answered, with the state of
//! that moment. A NOTIFY answered with an error or not at all ends the subscription
//! (RFC 6665 §4.2.2). NOTIFYs go to the subscriber's Contact by its route set or, with
//! none, back over the flow its SUBSCRIBE came by (NAT, WebSocket).
//!
//! **Termination reasons** (RFC 6665 §4.1.3): `timeout` for an expiry or an unsubscribe (with
//! the last state), `noresource` when the presentity is removed or disabled, `rejected` for
//! the subscriptions of a watcher who was, `deactivated` never (it asks for a retry at once).
//!
//! **Pools.** The router brings this agent only the presentities its front-end serves (their
//! home pool, and among the pool's members their owner). When a user moves, its watchers'
//! subscriptions end with `deactivated`; when the pool's members change, the presentities
//! another member now owns are forgotten here without a word ([`Presence::forget_unless`])
//! and those this member now owns are read from the store ([`Presence::load_from`]), whose
//! subscribers get a fresh NOTIFY from here.
//!
//! Not yet: authorization decisions made over SIP (XCAP): a presentity decides about a
//! pending watcher with `confab presence-rules set` or by adding the watcher to its contact
//! list.

pub mod dialog;
pub mod pidf;
pub mod policy;
pub mod winfo;

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use bytes::Bytes;
use confab_sip::Message;
use tokio::sync::mpsc;
use tracing::{debug, info};

use crate::directory::{
    PresenceBatch, PresenceStore, StoreError, StoredPublication, StoredSubscription,
};
use crate::forward::Listeners;
use crate::ids;
use crate::location::Location;
use crate::respond::Answer;
use crate::service_config::PresenceConfig;
use crate::transactions::{ClientEvent, TransactionDriver};
use crate::transport::Source;

use dialog::{subscription_id, Dialog};
use pidf::{Level, Publication, View};
use policy::{Decision, Policy};
use winfo::{WatcherEntry, WatcherStatus};

/// The content type of presence documents.
pub const PIDF: &str = "application/pidf+xml";
/// The event packages served, for Allow-Events.
pub const ALLOW_EVENTS: &str = "presence, presence.winfo";
/// The event package of presence.
pub const PRESENCE: &str = "presence";
/// The event package of watcher information.
pub const WINFO: &str = "presence.winfo";

/// After a restart, NOTIFY CSeq numbers go on from the stored one plus this, so that they
/// stay above whatever was sent after the last write.
const CSEQ_RESTART_STEP: u32 = 1 << 16;
/// A subscription is written again once its CSeq has moved this far from the stored one.
const CSEQ_WRITE_EVERY: u32 = 1 << 14;

/// Which package a subscription is to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Package {
    /// `presence`: PIDF documents.
    Presence,
    /// `presence.winfo`: watcher information, for the presentity itself.
    Winfo,
}

impl Package {
    /// The package named by an Event header's value, if served.
    pub fn from_event(name: &str) -> Option<Package> {
        match name.to_ascii_lowercase().as_str() {
            PRESENCE => Some(Package::Presence),
            WINFO => Some(Package::Winfo),
            _ => None,
        }
    }

    /// The package's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Package::Presence => PRESENCE,
            Package::Winfo => WINFO,
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Package::Presence => PIDF,
            Package::Winfo => winfo::CONTENT_TYPE,
        }
    }
}

/// Counters, for tests and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PresenceStats {
    /// Live subscriptions (both packages).
    pub subscriptions: usize,
    /// Of which pending.
    pub pending: usize,
    /// Live publications.
    pub publications: usize,
    /// NOTIFYs sent since start.
    pub notifies_sent: u64,
}

/// What follows the answer to a SUBSCRIBE or PUBLISH ([`Presence::after`]).
#[derive(Debug)]
pub enum After {
    /// These NOTIFYs, built with the answer.
    Notify(Vec<Outgoing>),
    /// The NOTIFYs of every watcher of this presentity whose document changed, built once
    /// the answer is on its way.
    Watchers(String),
}

/// A NOTIFY ready to go: the request and where.
#[derive(Debug)]
pub struct Outgoing {
    /// The subscription it belongs to; `None` for a final NOTIFY (nothing waits for it).
    id: Option<String>,
    bytes: Bytes,
    flow: Source,
}

struct Pub {
    etag: String,
    expires_at: u64,
    doc: Publication,
    body: Vec<u8>,
}

#[derive(Default)]
struct Presentity {
    pubs: Vec<Pub>,
    registered: bool,
    /// Presence subscriptions, by id.
    watchers: Vec<String>,
    /// Watcher-information subscriptions, by id.
    winfo: Vec<String>,
}

impl Presentity {
    fn view(&self) -> View {
        pidf::compose(self.pubs.iter().map(|p| &p.doc), self.registered)
    }

    fn is_idle(&self) -> bool {
        self.pubs.is_empty() && self.watchers.is_empty() && self.winfo.is_empty()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Standing {
    Pending,
    Active(Level),
}

struct Sub {
    package: Package,
    presentity: String,
    watcher: String,
    dialog: Dialog,
    expires_at: u64,
    standing: Standing,
    created_at: u64,
    /// What the last NOTIFY said (state and body), hashed.
    last_sent: Option<u64>,
    in_flight: bool,
    /// A NOTIFY is due once the one in flight is answered; `true` if it must go even when
    /// nothing changed.
    again: Option<bool>,
    stored_cseq: u32,
    /// Watcher information: documents sent.
    version: u32,
}

#[derive(Default)]
struct Dirty {
    presentities: HashSet<String>,
    removed_pubs: Vec<(String, String)>,
    subs: HashSet<String>,
    removed_subs: HashSet<String>,
}

#[derive(Default)]
struct State {
    presentities: HashMap<String, Presentity>,
    subs: HashMap<String, Sub>,
    policies: HashMap<String, Arc<Policy>>,
    dirty: Dirty,
    notifies_sent: u64,
    /// Subscriptions loaded at start, owed a fresh NOTIFY once the server runs.
    fresh: Vec<String>,
}

/// What a SUBSCRIBE asked for, checked by [`Presence::check_subscribe`].
#[derive(Debug, Clone, Copy)]
pub struct SubscribeRequest {
    /// The package.
    pub package: Package,
    /// The granted duration; 0 for a fetch.
    pub expires: u32,
}

/// Who subscribes to whom, as the router established it.
#[derive(Debug, Clone, Copy)]
pub struct Subscribing<'a> {
    /// The presentity, `user@domain`.
    pub presentity: &'a str,
    /// The watcher, `user@domain` (authenticated when of a local domain).
    pub watcher: &'a str,
    /// What the SUBSCRIBE asked for ([`Presence::check_subscribe`]).
    pub asked: SubscribeRequest,
    /// The To tag of the answer.
    pub local_tag: &'a str,
}

/// The presence agent (see the module documentation).
pub struct Presence {
    config: PresenceConfig,
    driver: Arc<TransactionDriver>,
    listeners: Arc<Listeners>,
    location: Arc<Location>,
    store: Arc<dyn PresenceStore>,
    state: Mutex<State>,
    hasher: RandomState,
}

impl std::fmt::Debug for Presence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Presence")
            .field("config", &self.config)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

fn entity(aor: &str) -> String {
    format!("sip:{aor}")
}

/// A 4xx/5xx answer with its reason.
fn refuse(status: u16, reason: &'static str) -> Answer {
    Answer::new(status, reason)
}

impl Presence {
    /// A presence agent sending through `driver`, reading registrations from `location`.
    pub fn new(
        config: PresenceConfig,
        driver: Arc<TransactionDriver>,
        listeners: Arc<Listeners>,
        location: Arc<Location>,
        store: Arc<dyn PresenceStore>,
    ) -> Self {
        Presence {
            config,
            driver,
            listeners,
            location,
            store,
            state: Mutex::new(State::default()),
            hasher: RandomState::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every update leaves the maps consistent before it can panic.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The counters.
    pub fn stats(&self) -> PresenceStats {
        let st = self.lock();
        PresenceStats {
            subscriptions: st.subs.len(),
            pending: st
                .subs
                .values()
                .filter(|s| s.standing == Standing::Pending)
                .count(),
            publications: st.presentities.values().map(|p| p.pubs.len()).sum(),
            notifies_sent: st.notifies_sent,
        }
    }

    fn registered(&self, aor: &str) -> bool {
        !self.location.lookup(aor, Instant::now()).is_empty()
    }

    /// Checks the expiry of a SUBSCRIBE or PUBLISH: the granted time, or the answer.
    fn expires(&self, req: &Message) -> Result<u32, Answer> {
        match req.expires() {
            Err(_) => Err(refuse(400, "Bad Expires")),
            Ok(None) => Ok(self.config.default_expires),
            Ok(Some(0)) => Ok(0),
            Ok(Some(e)) if e < self.config.min_expires => {
                Err(Answer::new(423, "Interval Too Brief")
                    .header("Min-Expires", self.config.min_expires.to_string()))
            }
            Ok(Some(e)) => Ok(e.min(self.config.max_expires)),
        }
    }

    fn bad_event() -> Answer {
        Answer::new(489, "Bad Event").header("Allow-Events", ALLOW_EVENTS)
    }

    /// Checks an initial SUBSCRIBE's Event, Expires and Accept (RFC 6665 §4.2.1.1).
    pub fn check_subscribe(&self, req: &Message) -> Result<SubscribeRequest, Answer> {
        let package = match req.event() {
            Ok(Some(e)) => Package::from_event(e.package).ok_or_else(Self::bad_event)?,
            Ok(None) => return Err(Self::bad_event()),
            Err(_) => return Err(refuse(400, "Bad Event Header")),
        };
        let expires = self.expires(req)?;
        let mut accepts = req.accept().peekable();
        if accepts.peek().is_some() {
            let (t, s) = package
                .content_type()
                .split_once('/')
                .unwrap_or(("application", "pidf+xml"));
            let ok = accepts.any(|a| matches!(a, Ok(m) if m.matches(t, s)));
            if !ok {
                return Err(
                    Answer::new(406, "Not Acceptable").header("Accept", package.content_type())
                );
            }
        }
        Ok(SubscribeRequest { package, expires })
    }

    /// The policy of `aor`, read from the store on first use.
    pub async fn policy(&self, aor: &str) -> Result<Arc<Policy>, StoreError> {
        if let Some(p) = self.lock().policies.get(aor) {
            return Ok(Arc::clone(p));
        }
        let record = self.store.policy(aor).await?;
        let policy = Arc::new(Policy::new(
            record.rules.iter().map(|(w, l)| (w.as_str(), l.as_str())),
            record.contacts.iter().map(String::as_str),
        ));
        self.lock()
            .policies
            .insert(aor.to_owned(), Arc::clone(&policy));
        Ok(policy)
    }

    fn decide(&self, policy: &Policy, presentity: &str, watcher: &str) -> Standing {
        match policy.decide(presentity, watcher, self.config.unknown_watchers) {
            Decision::Pending => Standing::Pending,
            Decision::Allow(level) => Standing::Active(level),
        }
    }

    /// An initial SUBSCRIBE, checked ([`Presence::check_subscribe`]) and authorized by the
    /// router. Returns the answer and the NOTIFYs to send after it.
    pub fn subscribe(
        &self,
        req: &Message,
        source: &Source,
        who: Subscribing<'_>,
        policy: &Policy,
    ) -> (Answer, Vec<Outgoing>) {
        let Subscribing {
            presentity,
            watcher,
            asked,
            local_tag,
        } = who;
        let mut dialog = match Dialog::from_subscribe(req, source, local_tag) {
            Ok(d) => d,
            Err(e) => return (refuse(400, e.0), Vec::new()),
        };
        let standing = match asked.package {
            Package::Presence => self.decide(policy, presentity, watcher),
            Package::Winfo if policy::normalise(watcher) == policy::normalise(presentity) => {
                Standing::Active(Level::FriendsAndFamily)
            }
            // Only the presentity may learn who watches it.
            Package::Winfo => return (refuse(403, "Forbidden"), Vec::new()),
        };
        let registered = self.registered(presentity);
        let now = ids::unix_now();
        let answer = |expires: u32| {
            Answer::new(200, "OK")
                .header("Expires", expires.to_string())
                .header("Contact", self.listeners.contact(source))
        };
        let mut st = self.lock();
        let p = st.presentities.entry(presentity.to_owned()).or_default();
        p.registered = registered;
        if asked.expires == 0 {
            // A fetch: one NOTIFY with the state, and no subscription.
            let view = p.view();
            let sub = Sub::new(asked.package, presentity, watcher, dialog, now, standing);
            let (state, body) = self.content(&st, &sub, &view, "terminated;reason=timeout");
            let mut sub = sub;
            let out = self.build(&mut sub, &state, body);
            let p_idle = st
                .presentities
                .get(presentity)
                .is_some_and(Presentity::is_idle);
            if p_idle {
                st.presentities.remove(presentity);
            }
            return (answer(0), out.into_iter().collect());
        }
        if p.watchers.len() + p.winfo.len() >= self.config.max_watchers {
            return (
                Answer::new(503, "Service Unavailable").header("Retry-After", "300"),
                Vec::new(),
            );
        }
        let id = dialog.id();
        if st.subs.contains_key(&id) {
            // The same dialog twice (a new SUBSCRIBE reusing our tag): a refresh.
            drop(st);
            return self
                .resubscribe(req, source)
                .unwrap_or_else(|| (refuse(500, "Server Internal Error"), Vec::new()));
        }
        dialog.remote_cseq = req.cseq().map_or(dialog.remote_cseq, |c| c.seq);
        let mut sub = Sub::new(asked.package, presentity, watcher, dialog, now, standing);
        sub.expires_at = now + u64::from(asked.expires);
        sub.stored_cseq = sub.dialog.local_cseq;
        let p = st.presentities.entry(presentity.to_owned()).or_default();
        match asked.package {
            Package::Presence => p.watchers.push(id.clone()),
            Package::Winfo => p.winfo.push(id.clone()),
        }
        st.subs.insert(id.clone(), sub);
        st.dirty.subs.insert(id.clone());
        debug!(%presentity, %watcher, package = asked.package.as_str(), ?standing, "subscription made");
        let mut out = Vec::new();
        out.extend(self.due(&mut st, &id, true));
        if asked.package == Package::Presence {
            out.extend(self.winfo_due(&mut st, presentity));
        }
        (answer(asked.expires), out)
    }

    /// Whether `req` (a SUBSCRIBE with a To tag) belongs to one of our subscriptions.
    pub fn owns(&self, req: &Message) -> bool {
        Self::dialog_id(req).is_some_and(|id| self.lock().subs.contains_key(&id))
    }

    fn dialog_id(req: &Message) -> Option<String> {
        let to = req.to().ok()?;
        let tag = to.tag()?;
        let call_id = req.call_id().ok()?;
        Some(subscription_id(tag, call_id))
    }

    /// A SUBSCRIBE inside one of our subscriptions: a refresh, or with Expires 0 the end of
    /// it. `None` when it belongs to none (the caller answers 481).
    pub fn resubscribe(&self, req: &Message, source: &Source) -> Option<(Answer, Vec<Outgoing>)> {
        let id = Self::dialog_id(req)?;
        let expires = match self.expires(req) {
            Ok(e) => e,
            Err(answer) => return Some((answer, Vec::new())),
        };
        let event = req.event().ok().flatten().map(|e| e.package.to_owned());
        let cseq = req.cseq().ok().map(|c| c.seq);
        let contact = req
            .contacts()
            .next()
            .and_then(Result::ok)
            .and_then(|c| c.address().map(|a| a.uri().as_str().to_owned()));
        let now = ids::unix_now();
        let mut st = self.lock();
        let sub = st.subs.get_mut(&id)?;
        if event.as_deref().and_then(Package::from_event) != Some(sub.package) {
            return Some((Self::bad_event(), Vec::new()));
        }
        match cseq {
            Some(seq) if seq > sub.dialog.remote_cseq => sub.dialog.remote_cseq = seq,
            // RFC 3261 §12.2.2: out of order.
            _ => return Some((refuse(500, "CSeq Out of Order"), Vec::new())),
        }
        // SUBSCRIBE refreshes the target (RFC 6665 §4.1.2.1), and the flow it came by.
        if let Some(target) = contact {
            sub.dialog.remote_target = target;
        }
        sub.dialog.flow = *source;
        let answer = Answer::new(200, "OK")
            .header("Expires", expires.to_string())
            .header("Contact", self.listeners.contact(source));
        if expires == 0 {
            let presentity = sub.presentity.clone();
            let mut out: Vec<Outgoing> = self
                .terminate(&mut st, &id, "timeout", true)
                .into_iter()
                .collect();
            out.extend(self.winfo_due(&mut st, &presentity));
            return Some((answer, out));
        }
        sub.expires_at = now + u64::from(expires);
        st.dirty.subs.insert(id.clone());
        let out = self.due(&mut st, &id, true).into_iter().collect();
        Some((answer, out))
    }

    /// The Subscription-State and body a subscription's NOTIFY carries now.
    fn content(
        &self,
        st: &State,
        sub: &Sub,
        view: &View,
        state: &str,
    ) -> (String, Option<Vec<u8>>) {
        match (sub.package, sub.standing) {
            (Package::Presence, Standing::Pending) => (state.replace("active", "pending"), None),
            (Package::Presence, Standing::Active(level)) => (
                state.to_owned(),
                Some(pidf::render(&entity(&sub.presentity), view, level).into_bytes()),
            ),
            (Package::Winfo, _) => {
                let now = ids::unix_now();
                let entries: Vec<WatcherEntry> = st
                    .presentities
                    .get(&sub.presentity)
                    .map(|p| p.watchers.as_slice())
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|wid| st.subs.get(wid).map(|w| (wid, w)))
                    .map(|(wid, w)| WatcherEntry {
                        id: format!("{:016x}", self.hasher.hash_one(wid)),
                        uri: entity(&w.watcher),
                        status: match w.standing {
                            Standing::Pending => WatcherStatus::Pending,
                            Standing::Active(_) => WatcherStatus::Active,
                        },
                        event: match w.standing {
                            Standing::Pending => "subscribe",
                            Standing::Active(_) => "approved",
                        },
                        duration: now.saturating_sub(w.created_at),
                    })
                    .collect();
                (
                    state.to_owned(),
                    Some(
                        winfo::render(&entity(&sub.presentity), sub.version, &entries).into_bytes(),
                    ),
                )
            }
        }
    }

    /// Builds the NOTIFY `sub` sends next; `None` when its next hop cannot be resolved.
    fn build(&self, sub: &mut Sub, state: &str, body: Option<Vec<u8>>) -> Option<Outgoing> {
        let flow = if let Some(first) = sub.dialog.route_set.first() {
            let uri = first
                .trim()
                .trim_start_matches('<')
                .split('>')
                .next()
                .unwrap_or_default()
                .to_owned();
            match self.listeners.resolve(&uri, &self.location) {
                Some(flow) => flow,
                None => {
                    debug!(%uri, "NOTIFY route cannot be resolved");
                    return None;
                }
            }
        } else {
            sub.dialog.flow
        };
        let content_type = sub.package.content_type();
        let bytes = sub.dialog.notify(
            &self.listeners,
            sub.package.as_str(),
            state,
            body.as_deref().map(|b| (content_type, b)),
            &flow,
        );
        Some(Outgoing {
            id: None,
            bytes,
            flow,
        })
    }

    /// The NOTIFY subscription `id` is due, if any: always (`force`) or when its document
    /// changed. One at a time: with one in flight, it is noted and sent when that is
    /// answered.
    fn due(&self, st: &mut State, id: &str, force: bool) -> Option<Outgoing> {
        let sub = st.subs.get(id)?;
        if sub.in_flight {
            let again = sub.again.unwrap_or(false) || force;
            st.subs.get_mut(id)?.again = Some(again);
            return None;
        }
        let view = match sub.package {
            Package::Presence => st
                .presentities
                .get(&sub.presentity)
                .map(Presentity::view)
                .unwrap_or_else(|| pidf::compose(std::iter::empty(), false)),
            Package::Winfo => pidf::compose(std::iter::empty(), false),
        };
        let now = ids::unix_now();
        let left = sub.expires_at.saturating_sub(now).max(1);
        let (state, body) = self.content(st, sub, &view, &format!("active;expires={left}"));
        let fingerprint = self
            .hasher
            .hash_one((state.split(';').next().unwrap_or_default(), body.as_deref()));
        if !force && sub.last_sent == Some(fingerprint) {
            return None;
        }
        let sub = st.subs.get_mut(id)?;
        sub.last_sent = Some(fingerprint);
        if sub.package == Package::Winfo {
            sub.version = sub.version.wrapping_add(1);
        }
        let mut out = self.build(sub, &state, body)?;
        sub.in_flight = true;
        out.id = Some(id.to_owned());
        if sub.dialog.local_cseq.wrapping_sub(sub.stored_cseq) >= CSEQ_WRITE_EVERY {
            st.dirty.subs.insert(id.to_owned());
        }
        st.notifies_sent += 1;
        Some(out)
    }

    /// The NOTIFYs of every watcher of `presentity` whose document changed.
    fn watchers_due(&self, st: &mut State, presentity: &str) -> Vec<Outgoing> {
        let ids = st
            .presentities
            .get(presentity)
            .map(|p| p.watchers.clone())
            .unwrap_or_default();
        ids.iter()
            .filter_map(|id| self.due(st, id, false))
            .collect()
    }

    /// The NOTIFYs of `presentity`'s watcher-information subscriptions (the watcher set
    /// changed).
    fn winfo_due(&self, st: &mut State, presentity: &str) -> Vec<Outgoing> {
        let ids = st
            .presentities
            .get(presentity)
            .map(|p| p.winfo.clone())
            .unwrap_or_default();
        ids.iter()
            .filter_map(|id| self.due(st, id, false))
            .collect()
    }

    /// Ends subscription `id`: removed at once, with a final NOTIFY (`terminated` with
    /// `reason`; the last state when `with_state` and the watcher may see it).
    fn terminate(
        &self,
        st: &mut State,
        id: &str,
        reason: &str,
        with_state: bool,
    ) -> Option<Outgoing> {
        let mut sub = st.subs.remove(id)?;
        st.dirty.subs.remove(id);
        st.dirty.removed_subs.insert(id.to_owned());
        let presentity = sub.presentity.clone();
        let idle = match st.presentities.get_mut(&presentity) {
            Some(p) => {
                p.watchers.retain(|w| w != id);
                p.winfo.retain(|w| w != id);
                p.is_idle()
            }
            None => false,
        };
        let state = format!("terminated;reason={reason}");
        let (state, body) = if with_state {
            let view = st
                .presentities
                .get(&presentity)
                .map(Presentity::view)
                .unwrap_or_else(|| pidf::compose(std::iter::empty(), false));
            let (_, body) = self.content(st, &sub, &view, &state);
            (state, body)
        } else {
            (state, None)
        };
        if idle {
            st.presentities.remove(&presentity);
            st.policies.remove(&presentity);
        }
        debug!(%presentity, watcher = %sub.watcher, reason, "subscription ended");
        st.notifies_sent += 1;
        self.build(&mut sub, &state, body)
    }

    /// Does what follows an answer: sends its NOTIFYs, or renders and sends those of a
    /// presentity's watchers.
    pub fn after(self: &Arc<Self>, then: After) {
        let out = match then {
            After::Notify(out) => out,
            After::Watchers(aor) => {
                let mut st = self.lock();
                self.watchers_due(&mut st, &aor)
            }
        };
        self.send(out);
    }

    /// Sends NOTIFYs built under the lock; each runs in a task of its own.
    pub fn send(self: &Arc<Self>, out: Vec<Outgoing>) {
        for o in out {
            let this = Arc::clone(self);
            tokio::spawn(async move { this.deliver(o).await });
        }
    }

    async fn deliver(self: Arc<Self>, o: Outgoing) {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let key = match self.driver.send_request(o.bytes, o.flow, tx) {
            Ok(key) => key,
            Err(e) => {
                debug!(error = %e, "NOTIFY not sent");
                if let Some(id) = o.id {
                    self.answered(&id, None);
                }
                return;
            }
        };
        // Bounded by the client transaction's Timer F.
        let mut status = None;
        while let Some((_, event)) = rx.recv().await {
            match event {
                ClientEvent::Response(r) => match r.status() {
                    Some(s) if s < 200 => continue,
                    s => status = s,
                },
                ClientEvent::Timeout | ClientEvent::TransportError | ClientEvent::Terminated => {}
            }
            break;
        }
        self.driver.detach(&key, None);
        if let Some(id) = o.id {
            self.answered(&id, status);
        }
    }

    /// A subscription's NOTIFY was answered with `status` (`None`: not at all).
    fn answered(self: &Arc<Self>, id: &str, status: Option<u16>) {
        let mut st = self.lock();
        let Some(sub) = st.subs.get_mut(id) else {
            return;
        };
        sub.in_flight = false;
        let out = match status {
            Some(s) if (200..300).contains(&s) => match sub.again.take() {
                Some(force) => self.due(&mut st, id, force).into_iter().collect(),
                None => Vec::new(),
            },
            _ => {
                // RFC 6665 §4.2.2: a failed NOTIFY ends the subscription; the watcher is
                // gone or lost it.
                info!(id, ?status, "NOTIFY failed; subscription removed");
                let presentity = sub.presentity.clone();
                st.subs.remove(id);
                st.dirty.subs.remove(id);
                st.dirty.removed_subs.insert(id.to_owned());
                if let Some(p) = st.presentities.get_mut(&presentity) {
                    p.watchers.retain(|w| w != id);
                    p.winfo.retain(|w| w != id);
                }
                self.winfo_due(&mut st, &presentity)
            }
        };
        drop(st);
        self.send(out);
    }

    /// Checks a PUBLISH (RFC 3903 §6) by `aor` for itself, authorized by the router, and
    /// applies it. Returns the answer and what follows it: the NOTIFYs of the presentity's
    /// watchers are rendered only after the answer is sent ([`Presence::after`]), so that
    /// the publisher does not wait for the fan-out to a thousand watchers.
    pub fn publish(&self, req: &Message, aor: &str) -> (Answer, After) {
        match req.event() {
            Ok(Some(e)) if Package::from_event(e.package) == Some(Package::Presence) => {}
            Ok(_) => return (Self::bad_event(), After::Notify(Vec::new())),
            Err(_) => return (refuse(400, "Bad Event Header"), After::Notify(Vec::new())),
        }
        let expires = match self.expires(req) {
            Ok(e) => e,
            Err(a) => return (a, After::Notify(Vec::new())),
        };
        let if_match = match req.sip_if_match() {
            Ok(m) => m.map(str::to_owned),
            Err(_) => return (refuse(400, "Bad SIP-If-Match"), After::Notify(Vec::new())),
        };
        let body = req.body();
        let doc = if body.is_empty() {
            None
        } else {
            let pidf_type =
                matches!(req.content_type(), Ok(Some(m)) if m.is("application", "pidf+xml"));
            if !pidf_type {
                return (
                    Answer::new(415, "Unsupported Media Type").header("Accept", PIDF),
                    After::Notify(Vec::new()),
                );
            }
            match pidf::parse(body) {
                Ok(doc) => Some(doc),
                Err(e) => {
                    debug!(%aor, error = %e, "PUBLISH body refused");
                    return (refuse(400, "Bad PIDF Document"), After::Notify(Vec::new()));
                }
            }
        };
        let now = ids::unix_now();
        let registered = self.registered(aor);
        let mut st = self.lock();
        let st = &mut *st;
        let p = st.presentities.entry(aor.to_owned()).or_default();
        p.registered = registered;
        let etag = ids::token();
        match if_match {
            None => {
                let Some(doc) = doc else {
                    return (refuse(400, "Missing Body"), After::Notify(Vec::new()));
                };
                if expires == 0 {
                    return (
                        refuse(400, "Expires 0 Without SIP-If-Match"),
                        After::Notify(Vec::new()),
                    );
                }
                if p.pubs.len() >= self.config.max_publications {
                    let old = p.pubs.remove(0);
                    st.dirty.removed_pubs.push((aor.to_owned(), old.etag));
                }
                p.pubs.push(Pub {
                    etag: etag.clone(),
                    expires_at: now + u64::from(expires),
                    doc,
                    body: body.to_vec(),
                });
            }
            Some(tag) => {
                let Some(i) = p.pubs.iter().position(|x| x.etag == tag) else {
                    return (
                        refuse(412, "Conditional Request Failed"),
                        After::Notify(Vec::new()),
                    );
                };
                st.dirty.removed_pubs.push((aor.to_owned(), tag));
                if expires == 0 {
                    p.pubs.remove(i);
                    st.dirty.presentities.insert(aor.to_owned());
                    let out = self.watchers_due(st, aor);
                    self.forget_if_idle(st, aor);
                    return (
                        Answer::new(200, "OK").header("Expires", "0"),
                        After::Notify(out),
                    );
                }
                let x = &mut p.pubs[i];
                x.etag = etag.clone();
                x.expires_at = now + u64::from(expires);
                if let Some(doc) = doc {
                    x.doc = doc;
                    x.body = body.to_vec();
                }
            }
        }
        st.dirty.presentities.insert(aor.to_owned());
        let answer = Answer::new(200, "OK")
            .header("SIP-ETag", etag)
            .header("Expires", expires.to_string());
        (answer, After::Watchers(aor.to_owned()))
    }

    fn forget_if_idle(&self, st: &mut State, aor: &str) {
        if st.presentities.get(aor).is_some_and(Presentity::is_idle) {
            st.presentities.remove(aor);
            st.policies.remove(aor);
        }
    }

    /// `aor` registered or unregistered: its watchers see it available or offline when it
    /// publishes nothing.
    pub fn registration_changed(self: &Arc<Self>, aor: &str) {
        let registered = self.registered(aor);
        let mut st = self.lock();
        let Some(p) = st.presentities.get_mut(aor) else {
            return;
        };
        if p.registered == registered {
            return;
        }
        p.registered = registered;
        let out = self.watchers_due(&mut st, aor);
        drop(st);
        self.send(out);
    }

    /// `aor`'s rules or contact list changed (the change feed said so): read them again and
    /// decide about every watcher anew — a pending watcher allowed gets its first document,
    /// a watcher blocked sees the presentity go offline.
    pub async fn policy_changed(self: &Arc<Self>, aor: &str) -> Result<(), StoreError> {
        let watched = self.lock().presentities.contains_key(aor);
        if !watched {
            self.lock().policies.remove(aor);
            return Ok(());
        }
        self.lock().policies.remove(aor);
        let policy = self.policy(aor).await?;
        let mut st = self.lock();
        let ids = st
            .presentities
            .get(aor)
            .map(|p| p.watchers.clone())
            .unwrap_or_default();
        let mut out = Vec::new();
        let mut changed = false;
        for id in ids {
            let Some(sub) = st.subs.get_mut(&id) else {
                continue;
            };
            let standing = self.decide(&policy, aor, &sub.watcher);
            if standing != sub.standing {
                debug!(presentity = %aor, watcher = %sub.watcher, ?standing, "watcher decided anew");
                sub.standing = standing;
                changed = true;
                out.extend(self.due(&mut st, &id, false));
            }
        }
        if changed {
            out.extend(self.winfo_due(&mut st, aor));
        }
        drop(st);
        self.send(out);
        Ok(())
    }

    /// `aor` was disabled or removed: subscriptions to it end (`noresource`), its own
    /// subscriptions end (`rejected`), its publications go.
    pub fn user_gone(self: &Arc<Self>, aor: &str) {
        let out = {
            let mut guard = self.lock();
            let st = &mut *guard;
            let mut out = Vec::new();
            let theirs: Vec<String> = st
                .subs
                .iter()
                .filter(|(_, s)| s.watcher == aor && s.presentity != aor)
                .map(|(id, _)| id.clone())
                .collect();
            for id in theirs {
                let presentity = st.subs.get(&id).map(|s| s.presentity.clone());
                out.extend(self.terminate(st, &id, "rejected", false));
                if let Some(p) = presentity {
                    out.extend(self.winfo_due(st, &p));
                }
            }
            out.extend(self.end_presentity(st, aor, "noresource"));
            out
        };
        self.send(out);
    }

    /// `aor` was moved to another pool: its watchers' subscriptions end with
    /// `reason=deactivated` (RFC 6665 §4.2.2: the watcher subscribes again, and reaches the
    /// new home pool) and its publications are dropped (its clients publish again after they
    /// sign in there). Subscriptions the user holds as a watcher stay: they belong to the
    /// presentities' pools.
    pub fn user_moved(self: &Arc<Self>, aor: &str) {
        let out = {
            let mut guard = self.lock();
            self.end_presentity(&mut guard, aor, "deactivated")
        };
        self.send(out);
    }

    /// Ends every subscription to `aor` (presence and watcher information) with `reason`
    /// and forgets its publications and rules; returns the final NOTIFYs.
    fn end_presentity(&self, st: &mut State, aor: &str, reason: &str) -> Vec<Outgoing> {
        let mut out = Vec::new();
        if let Some(p) = st.presentities.get(aor) {
            let ids: Vec<String> = p.watchers.iter().chain(&p.winfo).cloned().collect();
            for id in ids {
                out.extend(self.terminate(st, &id, reason, false));
            }
        }
        if let Some(p) = st.presentities.remove(aor) {
            for x in p.pubs {
                st.dirty.removed_pubs.push((aor.to_owned(), x.etag));
            }
        }
        st.policies.remove(aor);
        out
    }

    /// The presentities held here (published, watched, or with rules loaded).
    pub fn presentities(&self) -> Vec<String> {
        self.lock().presentities.keys().cloned().collect()
    }

    /// Forgets the presentities for which `keep` is false — their publications, their
    /// watchers' subscriptions, their rules — without a NOTIFY and without writing anything
    /// to the store: another member of the pool owns those users now, loads them from the
    /// store and sends the fresh NOTIFYs. Write behind first ([`Presence::flush`]): what is
    /// not written yet is lost. Returns how many presentities were forgotten.
    pub fn forget_unless(&self, keep: impl Fn(&str) -> bool) -> usize {
        let mut guard = self.lock();
        let st = &mut *guard;
        let gone: Vec<String> = st
            .presentities
            .keys()
            .filter(|aor| !keep(aor))
            .cloned()
            .collect();
        for aor in &gone {
            if let Some(p) = st.presentities.remove(aor) {
                for id in p.watchers.iter().chain(&p.winfo) {
                    st.subs.remove(id);
                    st.dirty.subs.remove(id);
                    st.dirty.removed_subs.remove(id);
                }
            }
            st.policies.remove(aor);
            st.dirty.presentities.remove(aor);
            st.dirty.removed_pubs.retain(|(a, _)| a != aor);
        }
        let subs = &st.subs;
        st.fresh.retain(|id| subs.contains_key(id));
        gone.len()
    }

    /// Expiry, once a second: subscriptions past their time end (`timeout`), publications
    /// past theirs go, and a registration that ran out shows its presentity offline.
    pub fn tick(self: &Arc<Self>) {
        let now = ids::unix_now();
        let mut guard = self.lock();
        let st = &mut *guard;
        let mut out = Vec::new();
        if !st.fresh.is_empty() && self.driver.is_running() {
            for id in std::mem::take(&mut st.fresh) {
                out.extend(self.due(st, &id, true));
            }
        }
        let expired: Vec<String> = st
            .subs
            .iter()
            .filter(|(_, s)| s.expires_at <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            let presentity = st.subs.get(&id).map(|s| (s.presentity.clone(), s.package));
            out.extend(self.terminate(st, &id, "timeout", true));
            if let Some((p, Package::Presence)) = presentity {
                out.extend(self.winfo_due(st, &p));
            }
        }
        let aors: Vec<String> = st.presentities.keys().cloned().collect();
        for aor in aors {
            let registered = self.registered(&aor);
            let Some(p) = st.presentities.get_mut(&aor) else {
                continue;
            };
            let before = p.pubs.len();
            let mut gone = Vec::new();
            p.pubs.retain(|x| {
                let live = x.expires_at > now;
                if !live {
                    gone.push(x.etag.clone());
                }
                live
            });
            let changed = p.pubs.len() != before || p.registered != registered;
            p.registered = registered;
            for etag in gone {
                st.dirty.removed_pubs.push((aor.clone(), etag));
            }
            if changed {
                out.extend(self.watchers_due(st, &aor));
            }
            self.forget_if_idle(st, &aor);
        }
        drop(guard);
        self.send(out);
    }

    /// Writes what changed since the last call to the store (once a second, and at
    /// shutdown). On failure it is kept for the next call.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let (batch, dirty) = {
            let mut st = self.lock();
            let dirty = std::mem::take(&mut st.dirty);
            let mut batch = PresenceBatch {
                removed_publications: dirty.removed_pubs.clone(),
                removed_subscriptions: dirty.removed_subs.iter().cloned().collect(),
                ..PresenceBatch::default()
            };
            for aor in &dirty.presentities {
                if let Some(p) = st.presentities.get(aor) {
                    for x in &p.pubs {
                        batch.publications.push(StoredPublication {
                            aor: aor.clone(),
                            etag: x.etag.clone(),
                            expires_at: x.expires_at,
                            content_type: PIDF.to_owned(),
                            body: x.body.clone(),
                        });
                    }
                }
            }
            for id in &dirty.subs {
                if let Some(s) = st.subs.get_mut(id) {
                    s.stored_cseq = s.dialog.local_cseq;
                    batch.subscriptions.push(StoredSubscription {
                        id: id.clone(),
                        presentity: s.presentity.clone(),
                        event: s.package.as_str().to_owned(),
                        watcher: s.watcher.clone(),
                        expires_at: s.expires_at,
                        dialog: s.dialog.to_stored(),
                    });
                }
            }
            (batch, dirty)
        };
        if batch.is_empty() {
            return Ok(());
        }
        if let Err(e) = self.store.save_presence(&batch).await {
            let mut st = self.lock();
            let d = &mut st.dirty;
            d.presentities.extend(dirty.presentities);
            let mut removed = dirty.removed_pubs;
            removed.append(&mut d.removed_pubs);
            d.removed_pubs = removed;
            d.subs.extend(dirty.subs);
            d.removed_subs.extend(dirty.removed_subs);
            return Err(e);
        }
        Ok(())
    }

    /// Reads the presence state written behind (at start, after the registrations); every
    /// live subscription gets a fresh NOTIFY at the first [`Presence::tick`] after the
    /// server runs. Returns (publications, subscriptions)
    /// loaded.
    pub async fn load(self: &Arc<Self>) -> Result<(usize, usize), StoreError> {
        let stored = self.store.load_presence().await?;
        self.load_from(stored).await
    }

    /// The presence state kept in the store, as [`Presence::load`] reads it.
    pub async fn stored(&self) -> Result<PresenceBatch, StoreError> {
        self.store.load_presence().await
    }

    /// [`Presence::load`] from state already read (and filtered: a front-end takes only the
    /// presentities it serves). Adds to what is in memory: a publication or subscription
    /// already here is kept as it is (a member taking users over reads the store again a
    /// moment later, for what their previous owner wrote last). Flows another member stored
    /// are used through this front-end's listeners.
    pub async fn load_from(
        self: &Arc<Self>,
        stored: PresenceBatch,
    ) -> Result<(usize, usize), StoreError> {
        let now = ids::unix_now();
        let mut policies = HashMap::new();
        for s in &stored.subscriptions {
            if s.expires_at > now && !policies.contains_key(&s.presentity) {
                policies.insert(s.presentity.clone(), self.policy(&s.presentity).await?);
            }
        }
        let mut guard = self.lock();
        let st = &mut *guard;
        let (mut pubs, mut subs) = (0, 0);
        for x in stored.publications {
            let doc = (x.expires_at > now)
                .then(|| pidf::parse(&x.body).ok())
                .flatten();
            let Some(doc) = doc else {
                st.dirty.removed_pubs.push((x.aor, x.etag));
                continue;
            };
            let p = st.presentities.entry(x.aor.clone()).or_default();
            if p.pubs.iter().any(|held| held.etag == x.etag) {
                continue;
            }
            p.pubs.push(Pub {
                etag: x.etag,
                expires_at: x.expires_at,
                doc,
                body: x.body,
            });
            pubs += 1;
        }
        let mut ids = Vec::new();
        for s in stored.subscriptions {
            if st.subs.contains_key(&s.id) {
                continue;
            }
            let package = Package::from_event(&s.event);
            let dialog = Dialog::from_stored(&s.dialog);
            let (Some(package), Some(mut dialog), Some(policy)) =
                (package, dialog, policies.get(&s.presentity))
            else {
                st.dirty.removed_subs.insert(s.id);
                continue;
            };
            if s.expires_at <= now {
                st.dirty.removed_subs.insert(s.id);
                continue;
            }
            dialog.local_cseq = dialog.local_cseq.wrapping_add(CSEQ_RESTART_STEP);
            dialog.flow = self.listeners.adopt(dialog.flow);
            let standing = match package {
                Package::Presence => self.decide(policy, &s.presentity, &s.watcher),
                Package::Winfo => Standing::Active(Level::FriendsAndFamily),
            };
            let mut sub = Sub::new(package, &s.presentity, &s.watcher, dialog, now, standing);
            sub.expires_at = s.expires_at;
            let p = st.presentities.entry(s.presentity.clone()).or_default();
            match package {
                Package::Presence => p.watchers.push(s.id.clone()),
                Package::Winfo => p.winfo.push(s.id.clone()),
            }
            st.subs.insert(s.id.clone(), sub);
            st.dirty.subs.insert(s.id.clone());
            ids.push(s.id);
            subs += 1;
        }
        for (aor, p) in st.presentities.iter_mut() {
            p.registered = !self.location.lookup(aor, Instant::now()).is_empty();
        }
        for (aor, policy) in policies {
            st.policies.entry(aor).or_insert(policy);
        }
        // Sent by the first tick once the server runs (the transport is not up yet).
        st.fresh.extend(ids);
        drop(guard);
        info!(
            publications = pubs,
            subscriptions = subs,
            "presence loaded from the store"
        );
        Ok((pubs, subs))
    }
}

impl Sub {
    fn new(
        package: Package,
        presentity: &str,
        watcher: &str,
        dialog: Dialog,
        now: u64,
        standing: Standing,
    ) -> Sub {
        Sub {
            package,
            presentity: presentity.to_owned(),
            watcher: watcher.to_owned(),
            stored_cseq: dialog.local_cseq,
            dialog,
            expires_at: now,
            standing,
            created_at: now,
            last_sent: None,
            in_flight: false,
            again: None,
            version: 0,
        }
    }
}
