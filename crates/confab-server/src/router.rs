//! The router: decides who answers a request the handler has validated, and runs that
//! service — the registrar, the proxy (with location look-up and authentication of local
//! users), messaging — in a task of its own, since they wait on the store. The handler
//! answers what the router leaves to it (OPTIONS to the server, unknown methods, …).
//!
//! For a request other than REGISTER and CANCEL (INVITE, ACK, BYE, OPTIONS, INFO, UPDATE,
//! REFER, NOTIFY, MESSAGE, PRACK):
//!
//! 1. **Loose routing** (RFC 3261 §16.4): a top Route naming us is removed. If another
//!    Route follows, the request goes there (an in-dialog request, or one a local user
//!    routes out).
//! 2. Otherwise the **Request-URI** decides: an OPTIONS for a local user with no
//!    registered device is the server's to answer (a ping); a user in a local domain is
//!    looked up (404 unknown or disabled, 480 not registered — or, for MESSAGE, stored:
//!    [`crate::messaging`]) and the request forked to every binding ([`crate::fork`]); a
//!    registered contact, or any target of an in-dialog request that came through our
//!    Record-Route, gets it directly; a URI naming the server itself is the handler's
//!    (OPTIONS 200); anything else is refused 403 — no open relay.
//! 3. Before forwarding: Max-Forwards 0 gets 483, a loop 482; an initial request (no To
//!    tag) from a user of a local domain must authenticate (407, then the identity must be
//!    the From user's, else 403); an initial request from elsewhere may reach local users
//!    but not be routed onwards (403).
//!
//! REGISTER goes to the registrar; after its 200, waiting offline messages are delivered to
//! the contact that registered, and watchers of the user learn whether it is signed in.
//! SUBSCRIBE and PUBLISH go to [`crate::presence`]: an initial one must be for a user of a
//! local domain (404 unknown or disabled, 403 for other domains: presence is not relayed),
//! a local sender must authenticate (PUBLISH only for itself), a sender of another domain
//! may subscribe and the presentity's rules decide; one inside a subscription is matched
//! to it (481 when it matches none). CANCEL of an INVITE being proxied gets 200 and cancels its
//! branches; other CANCELs are the handler's (481). An ACK that is ours to forward (for a
//! 2xx, through our Record-Route) is forwarded statelessly; any other is dropped.
//!
//! **Pools** ([`crate::pools`]): a request for a user homed on another pool, or owned by
//! another member of this pool, is forwarded there before any of the above (REGISTER with a
//! Path, initial SUBSCRIBE and PUBLISH too); requests from the deployment's own front-ends
//! are not challenged again. The router also runs the pool membership: a heartbeat every
//! second, and the hand-over of users when the live members change.
//!
//! Known gaps: a CANCEL that overtakes its INVITE's directory look-up gets 481; names are
//! not resolved through DNS.

use std::collections::HashSet;
use std::hash::RandomState;
use std::sync::Arc;
use std::time::{Duration, Instant};

use confab_sip::edit::EditError;
use confab_sip::{Message, Method, Scheme};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::authenticate::{Asker, Authenticator, Outcome as Auth};
use crate::config::{ListenUri, ServerConfig, ServiceConfig};
use crate::directory::{
    Directory, OfflineMessages, PoolDirectory, PresenceStore, RegistrationStore, StoreError,
};
use crate::error::ConfigError;
use crate::fork::Proxy;
use crate::forward::{self, Listeners, Target};
use crate::ids;
use crate::location::{contact_key, format_flow, parse_flow, Location};
use crate::memory::MemoryStores;
use crate::messaging::Messaging;
use crate::pools::{PoolRoute, Pools, Serving, HEARTBEAT_EVERY};
use crate::presence::{After, Presence, PresenceStats, Subscribing};
use crate::registrar::{Registrar, Registration};
use crate::respond::{Answer, Responder};
use crate::throttle::{Throttle, ThrottleStats};
use crate::transactions::{HookTask, TransactionDriver};
use crate::transport::Source;

/// Runs `work` as far as it goes without waiting, here, on the caller's (receive) task;
/// whatever remains — a store round trip, a downstream response — goes on in a task of its
/// own. A REGISTER answered from the directory replica, or a request refused at once, so
/// costs no task at all, and nothing the caller does next waits on a service that waits.
///
/// The first poll uses a waker that does nothing: a future that is not ready has registered
/// that waker, and the task it is spawned into polls it again at once, registering its own
/// (every future must accept a different waker on each poll).
fn run_or_spawn(work: impl std::future::Future<Output = ()> + Send + 'static) {
    let mut work = Box::pin(work);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    if work.as_mut().poll(&mut cx).is_pending() {
        tokio::spawn(work);
    }
}

/// How often expired bindings are swept.
const SWEEP_EVERY: Duration = Duration::from_millis(250);
/// How often presence expires subscriptions and publications and writes behind.
const PRESENCE_EVERY: Duration = Duration::from_secs(1);
/// After the pool's members changed, the store is read once more this many heartbeats
/// later: by then every member has seen the change and written what it held.
const TAKE_OVER_AGAIN_AFTER: u32 = 3;
/// After pools in maintenance changed, the store is read again for the users served here
/// after each of these pauses (the front-ends that hand them over write them within about
/// one poll of the change feed).
const REGROUP_TAKE_OVER_AGAIN: [Duration; 3] = [
    Duration::from_millis(300),
    Duration::from_millis(700),
    Duration::from_secs(2),
];

/// The store-facing parts the router needs; the binary gives adapters over
/// `confab-store`, tests give [`Stores::memory`].
#[derive(Clone)]
pub struct Stores {
    /// Users and credentials.
    pub directory: Arc<dyn Directory>,
    /// Registrations, written behind.
    pub registrations: Arc<dyn RegistrationStore>,
    /// Offline messages.
    pub offline: Arc<dyn OfflineMessages>,
    /// Presence rules and contact lists; the presence write-behind.
    pub presence: Arc<dyn PresenceStore>,
    /// The pools of the published topology.
    pub pools: Arc<dyn PoolDirectory>,
}

impl Stores {
    /// In-memory stores, and typed handles to them (to add users, look inside).
    pub fn memory() -> (Stores, MemoryStores) {
        let m = MemoryStores::default();
        (Self::from_memory(&m), m)
    }

    /// These in-memory stores (shared, to play a restart).
    pub fn from_memory(m: &MemoryStores) -> Stores {
        Stores {
            directory: m.directory.clone(),
            registrations: m.registrations.clone(),
            offline: m.offline.clone(),
            presence: m.presence.clone(),
            pools: m.pools.clone(),
        }
    }
}

/// Counters of a router, for tests and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouterStats {
    /// Addresses-of-record with at least one binding.
    pub registered: usize,
    /// INVITEs being proxied.
    pub active_invites: usize,
    /// The password-guessing throttle.
    pub throttle: ThrottleStats,
    /// Presence.
    pub presence: PresenceStats,
}

/// What to do with a request.
#[derive(Debug)]
enum Plan {
    /// The handler answers.
    Local,
    Refuse(u16, &'static str),
    ToUser {
        aor: String,
        pop_route: bool,
    },
    Forward {
        uri: String,
        pop_route: bool,
    },
}

/// The router (see the module documentation).
pub struct Router {
    config: Arc<ServiceConfig>,
    driver: Arc<TransactionDriver>,
    responder: Arc<Responder>,
    auth: Arc<Authenticator>,
    location: Arc<Location>,
    registrar: Registrar,
    proxy: Proxy,
    messaging: Messaging,
    presence: Arc<Presence>,
    stores: Stores,
    listeners: Arc<Listeners>,
    pools: Pools,
    blocked: crate::blocklist::Blocklist,
    loop_key: RandomState,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field("domains", &self.config.domains)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

fn is_proxied(method: Method) -> bool {
    matches!(
        method,
        Method::Invite
            | Method::Bye
            | Method::Options
            | Method::Info
            | Method::Update
            | Method::Refer
            | Method::Notify
            | Method::Message
            | Method::Prack
    )
}

impl Router {
    /// A router for a server with `server`'s timers, with its own transaction driver
    /// (install both with [`crate::Server::bind_with_router`]).
    pub fn new(
        server: &ServerConfig,
        config: ServiceConfig,
        stores: Stores,
    ) -> Result<Arc<Router>, ConfigError> {
        config.validate()?;
        let config = Arc::new(config);
        let driver = Arc::new(TransactionDriver::new(server));
        let responder = Arc::new(Responder::new(Arc::clone(&driver)));
        let key = config.nonce_secret.unwrap_or_else(ids::random_key);
        let auth = Arc::new(
            Authenticator::new(
                key,
                config.nonce_lifetime,
                config.max_tracked_nonces,
                Throttle::new(config.throttle),
                Arc::clone(&stores.directory),
            )
            .with_algorithms(&config.digest_algorithms),
        );
        let location = Arc::new(Location::new(config.max_contacts));
        let listeners = Arc::new(Listeners::new(&config));
        let pools = Pools::new(&config.pool);
        Ok(Arc::new(Router {
            registrar: Registrar::new(
                Arc::clone(&config),
                Arc::clone(&auth),
                Arc::clone(&location),
                Arc::clone(&listeners),
            ),
            proxy: Proxy::new(Arc::clone(&responder)),
            messaging: Messaging::new(
                Arc::clone(&stores.offline),
                config.offline,
                Arc::clone(&driver),
                Arc::clone(&listeners),
            ),
            presence: Arc::new(Presence::new(
                config.presence,
                Arc::clone(&driver),
                Arc::clone(&listeners),
                Arc::clone(&location),
                Arc::clone(&stores.presence),
            )),
            config,
            driver,
            responder,
            auth,
            location,
            pools,
            blocked: crate::blocklist::Blocklist::default(),
            stores,
            listeners,
            loop_key: RandomState::new(),
        }))
    }

    /// The transaction driver the router sends through.
    pub fn driver(&self) -> Arc<TransactionDriver> {
        Arc::clone(&self.driver)
    }

    /// The location service.
    pub fn location(&self) -> &Arc<Location> {
        &self.location
    }

    /// The counters.
    pub fn stats(&self) -> RouterStats {
        RouterStats {
            registered: self.location.len(),
            active_invites: self.proxy.active_invites(),
            throttle: self.auth.throttle().stats(),
            presence: self.presence.stats(),
        }
    }

    /// Signs a user out of this front-end: drops the bindings of `aor` (`user@domain`), so
    /// that nothing more is routed to a user an operator disabled or removed. New
    /// authentication is refused by the directory itself. Returns how many bindings were
    /// dropped.
    pub fn drop_user(&self, aor: &str) -> usize {
        // AORs are kept as `user@domain` with the domain in lower case, as the store keeps
        // addresses.
        let n = self.location.remove(aor);
        if n > 0 {
            info!(%aor, bindings = n, "user signed out by an operator's change");
        }
        self.presence.user_gone(aor);
        n
    }

    /// `aor` was moved to another pool (the change feed says so, after the directory has
    /// the new home pool): if that is not this front-end's pool, the user is signed out here
    /// and its watchers' subscriptions end with `reason=deactivated`, so that its clients
    /// sign in and its watchers subscribe again — at the new home pool, where this
    /// front-end forwards them. Returns the bindings dropped.
    pub async fn user_moved(&self, aor: &str) -> usize {
        let home = match self.stores.directory.user(aor).await {
            Ok(Some(u)) => u.home_pool,
            Ok(None) => None,
            Err(e) => {
                warn!(%aor, error = %e, "a moved user cannot be read; signing it out here");
                None
            }
        };
        if home.as_deref() == Some(self.pools.own()) {
            return 0;
        }
        let n = self.location.remove(aor);
        info!(%aor, to = ?home, bindings = n, "user moved to another pool; signed out here");
        self.presence.user_moved(aor);
        n
    }

    /// An offline message was kept for `aor` (by any front-end sharing the store: the change
    /// feed says so). If the user is signed in here, it is delivered to the best binding now;
    /// else at the user's next REGISTER.
    pub async fn offline_stored(&self, aor: &str) -> usize {
        self.messaging.waiting_for(aor);
        let bindings = self.location.lookup(aor, Instant::now());
        match bindings.first() {
            Some(binding) => self.messaging.deliver(aor, binding).await,
            None => 0,
        }
    }

    /// Reads the pools of the published topology again (at start, and when the change feed
    /// says the topology changed), and their members: where users homed on other pools are
    /// served. Returns how many pools there are.
    /// When a pool went into maintenance or left it, the users this front-end serves change:
    /// it hands over those served elsewhere now and takes over those it serves now
    /// ([`Router::regroup`]).
    pub async fn pools_changed(self: &Arc<Self>) -> Result<usize, StoreError> {
        let pools = self.stores.pools.pools().await?;
        let regroup = self.pools.set(&pools);
        // Members are read every heartbeat; a new topology is worth reading them at once.
        self.pools.set_members(&self.stores.pools.members().await?);
        if regroup {
            info!(in_maintenance = ?self.pools.in_maintenance(), "pools in maintenance changed");
            self.regroup().await;
            // The front-ends handing users over write them when they read the same feed entry,
            // a moment before or after this one did: what they wrote is taken again, soon and
            // a little later.
            let router = Arc::clone(self);
            tokio::spawn(async move {
                for after in REGROUP_TAKE_OVER_AGAIN {
                    tokio::time::sleep(after).await;
                    if let Err(e) = router.take_over().await {
                        warn!(error = %e, "the users served here now cannot be read");
                    }
                }
            });
        }
        Ok(pools.len())
    }

    /// A pool went into maintenance or left it: the users now served by another pool are
    /// written to the store and forgotten here (their new front-end reads them from the
    /// store and sends their watchers fresh NOTIFYs), and those served here now are read
    /// from the store.
    async fn regroup(&self) {
        let mut elsewhere = HashSet::new();
        for aor in self
            .location
            .aors()
            .into_iter()
            .chain(self.presence.presentities())
        {
            if !elsewhere.contains(&aor) && !self.serves_here(&aor).await {
                elsewhere.insert(aor);
            }
        }
        let (forgotten, presentities) = self.hand_over(|aor| !elsewhere.contains(aor)).await;
        info!(
            users = forgotten,
            presentities, "users now served by another pool forgotten here"
        );
        match self.take_over().await {
            Ok((bindings, subscriptions)) => {
                info!(bindings, subscriptions, "users now served here taken over")
            }
            Err(e) => warn!(error = %e, "the users now served here cannot be read yet"),
        }
    }

    /// Writes what this front-end holds to the store and forgets the users for which `keep`
    /// is false; returns (users, presentities) forgotten.
    async fn hand_over(&self, keep: impl Fn(&str) -> bool) -> (usize, usize) {
        let registrations = Arc::clone(&self.stores.registrations);
        let mut forgotten = 0;
        for _ in 0..3 {
            if !self.location.flush_all(registrations.as_ref()).await {
                warn!("registrations not all written before handing users over");
            }
            let (gone, unsaved) = self.location.forget_unless(&keep);
            forgotten += gone;
            if unsaved == 0 {
                break;
            }
        }
        if let Err(e) = self.presence.flush().await {
            warn!(error = %e, "presence not written before handing users over");
        }
        let presentities = self.presence.forget_unless(&keep);
        (forgotten, presentities)
    }

    /// Reads the networks blocked at ingress again (at start, and when the change feed says
    /// they changed); returns how many there are.
    pub async fn sources_changed(&self) -> Result<usize, StoreError> {
        let cidrs = self.stores.pools.blocked_sources().await?;
        Ok(self.blocked.set(&cidrs))
    }

    /// True when messages from `ip` are dropped at ingress.
    pub fn is_blocked(&self, ip: std::net::IpAddr) -> bool {
        self.blocked.contains(ip)
    }

    /// The pool this front-end serves.
    pub fn pool(&self) -> &str {
        self.pools.own()
    }

    /// The live members of this front-end's pool as it last read them (their addresses),
    /// itself included once it has announced itself.
    pub fn members(&self) -> Vec<String> {
        self.pools.own_members()
    }

    /// `aor`'s presence rules or contact list changed (the change feed says so): its
    /// watchers are decided anew.
    pub async fn presence_policy_changed(&self, aor: &str) -> Result<(), StoreError> {
        self.presence.policy_changed(aor).await
    }

    /// The presence agent.
    pub fn presence(&self) -> &Arc<Presence> {
        &self.presence
    }

    /// Announces this front-end as a member of its pool, then loads the state of the users it
    /// serves from the store: their registrations, their presence (whose subscribers get a
    /// fresh NOTIFY), and who has offline messages waiting. Returns how many bindings are
    /// live.
    pub async fn load(&self) -> Result<usize, StoreError> {
        match self.listeners.member_address() {
            Some(me) => {
                self.pools.set_me(me);
                self.membership_round().await;
                info!(
                    pool = self.pools.own(),
                    members = ?self.pools.own_members(),
                    "member of the pool"
                );
            }
            None => warn!(
                "this front-end's address is a wildcard with a host name advertised: it does not \
                 announce itself as a member of its pool (give a listener a specific address, or \
                 advertise an IP address)"
            ),
        }
        let (n, _) = self.take_over().await?;
        let waiting = self.messaging.load_waiting().await?;
        info!(
            recipients = waiting,
            "recipients with offline messages waiting"
        );
        Ok(n)
    }

    /// Reads the registrations and presence state of the users this front-end serves from
    /// the store, and adds those it does not hold yet (at start, and when the pool's members
    /// change). A store shared by several pools, or by several members of one, holds every
    /// front-end's state: each takes its own users' (and those of users homed on no pool the
    /// topology names). Returns (bindings, subscriptions) taken.
    async fn take_over(&self) -> Result<(usize, usize), StoreError> {
        let mut stored = self.stores.registrations.load().await?;
        let mut presence = self.presence.stored().await?;
        let named: HashSet<String> = stored
            .iter()
            .map(|b| b.aor.clone())
            .chain(presence.publications.iter().map(|p| p.aor.clone()))
            .chain(presence.subscriptions.iter().map(|s| s.presentity.clone()))
            .collect();
        let mut foreign = HashSet::new();
        for aor in named {
            if !self.serves_here(&aor).await {
                foreign.insert(aor);
            }
        }
        let before = stored.len();
        stored.retain(|b| !foreign.contains(&b.aor));
        let elsewhere = before - stored.len();
        for b in &mut stored {
            self.adopt_binding(b);
        }
        let n = self.location.adopt(stored, Instant::now());
        info!(
            bindings = n,
            elsewhere, "registrations taken from the store"
        );
        presence.publications.retain(|p| !foreign.contains(&p.aor));
        presence
            .subscriptions
            .retain(|s| !foreign.contains(&s.presentity));
        let (_, subs) = self.presence.load_from(presence).await?;
        Ok((n, subs))
    }

    /// A binding another member stored, made usable here: its flow leaves by this
    /// front-end's listener; a Path that starts with this front-end (the user registered
    /// through it at the member that owned the user then) is followed from the hop after
    /// it, reached directly.
    fn adopt_binding(&self, b: &mut crate::directory::StoredBinding) {
        let ours = b
            .path
            .iter()
            .take_while(|p| {
                confab_sip::headers::NameAddr::parse(p)
                    .is_ok_and(|na| self.listeners.is_ours(na.uri(), &self.config))
            })
            .count();
        if ours == 0 {
            if let Some(flow) = parse_flow(&b.flow) {
                b.flow = format_flow(&self.listeners.adopt(flow));
            }
            return;
        }
        b.path.drain(..ours);
        let next = match b.path.first() {
            Some(p) => confab_sip::headers::NameAddr::parse(p)
                .ok()
                .map(|na| na.uri().as_str().to_owned()),
            None => Some(b.contact.clone()),
        };
        if let Some(flow) = next.and_then(|n| self.listeners.resolve_direct(&n)) {
            b.flow = format_flow(&flow);
        }
    }

    /// Writes this front-end's heartbeat and reads the members of every pool; true when the
    /// live members of its own pool changed.
    async fn membership_round(&self) -> bool {
        let Some(me) = self.pools.me() else {
            return false;
        };
        if let Err(e) = self.stores.pools.heartbeat(self.pools.own(), &me).await {
            warn!(error = %e, "heartbeat not written to the store; retrying");
        }
        match self.stores.pools.members().await {
            Ok(members) => self.pools.set_members(&members),
            Err(e) => warn!(error = %e, "the pool's members cannot be read; keeping the last view"),
        }
        self.pools.own_changed()
    }

    /// The live members of this pool changed: the owners of its users may have. What this
    /// front-end holds is written to the store, the users it no longer owns are forgotten
    /// here (silently: their new owner sends the fresh NOTIFYs), and the state of the users
    /// it now owns is read from the store.
    async fn rebalance(&self) {
        let members = self.pools.own_members();
        info!(
            pool = self.pools.own(),
            ?members,
            "the pool's live members changed"
        );
        let (forgotten, presentities) = self.hand_over(|aor| self.pools.owns(aor)).await;
        info!(
            users = forgotten,
            presentities, "users now owned by another member forgotten here"
        );
        match self.take_over().await {
            Ok((bindings, subscriptions)) => {
                info!(bindings, subscriptions, "users now owned here taken over")
            }
            Err(e) => warn!(error = %e, "the users now owned here cannot be read yet"),
        }
    }

    /// True when `aor` is served by this front-end: homed on its pool (or on no pool, or on
    /// a pool the topology does not name) and owned by it among the pool's members.
    async fn serves_here(&self, aor: &str) -> bool {
        if !self.pools.has_others() {
            return true;
        }
        match self.stores.directory.user(aor).await {
            Ok(Some(u)) => matches!(self.home_hop(u.home_pool.as_deref(), aor, None), Ok(None)),
            Ok(None) | Err(_) => true,
        }
    }

    pub(crate) fn set_listeners(&self, bound: Vec<ListenUri>) {
        self.listeners.set(bound);
    }

    /// The router's background work until `shutdown`: the expiry sweeper, the registration
    /// writer (which writes once more on the way out), presence expiry and its write-behind
    /// (written once more on the way out too).
    pub fn start(self: Arc<Self>, shutdown: CancellationToken) -> HookTask {
        Box::pin(async move {
            let writer = tokio::spawn(
                Arc::clone(&self.location)
                    .write_behind(Arc::clone(&self.stores.registrations), shutdown.clone()),
            );
            let mut tick = tokio::time::interval(SWEEP_EVERY);
            let mut presence_tick = tokio::time::interval(PRESENCE_EVERY);
            let mut member_tick = tokio::time::interval(HEARTBEAT_EVERY);
            member_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut take_over_in: Option<u32> = None;
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = member_tick.tick() => {
                        if self.membership_round().await {
                            self.rebalance().await;
                            take_over_in = Some(TAKE_OVER_AGAIN_AFTER);
                        } else if let Some(n) = take_over_in {
                            take_over_in = n.checked_sub(1).filter(|&n| n > 0);
                            if take_over_in.is_none() {
                                if let Err(e) = self.take_over().await {
                                    warn!(error = %e, "the users now owned here cannot be read");
                                }
                            }
                        }
                    }
                    _ = tick.tick() => {
                        self.location.sweep(Instant::now());
                    }
                    _ = presence_tick.tick() => {
                        self.presence.tick();
                        if let Err(e) = self.presence.flush().await {
                            warn!(error = %e, "presence not written to the store; retrying");
                        }
                    }
                }
            }
            if let Err(e) = self.presence.flush().await {
                warn!(error = %e, "presence not written to the store at shutdown");
            }
            if writer.await.is_err() {
                warn!("the registration writer ended abnormally");
            }
            // Everything is written: the other members may take this one's users at once.
            if let Some(me) = self.pools.me() {
                if let Err(e) = self.stores.pools.leave(self.pools.own(), &me).await {
                    warn!(error = %e, "could not leave the pool; the others wait for the heartbeat timeout");
                }
            }
        })
    }

    /// Takes `req` if a service answers it (true), running that service in a task of its
    /// own; false leaves it to the handler.
    pub fn route(self: &Arc<Self>, req: &Message, source: &Source) -> bool {
        let Some(method) = req.method() else {
            return false;
        };
        let plan = match method {
            Method::Register => {
                let (this, req, source) = (Arc::clone(self), req.clone(), *source);
                run_or_spawn(async move { this.register(req, source).await });
                return true;
            }
            // Along a route set (an in-dialog refresh passing through) like any request;
            // otherwise the presence agent's, here or at the presentity's home pool.
            Method::Subscribe | Method::Publish => match self.plan(req, source) {
                forward @ Plan::Forward { .. } => forward,
                _ => {
                    let (this, req, source) = (Arc::clone(self), req.clone(), *source);
                    run_or_spawn(async move { this.presence_request(req, source).await });
                    return true;
                }
            },
            Method::Cancel => {
                if !self.proxy.cancel(req) {
                    return false;
                }
                Plan::Refuse(200, "OK")
            }
            m if is_proxied(m) => self.plan(req, source),
            _ => return false,
        };
        let plan = match plan {
            Plan::Local => return false,
            Plan::ToUser { .. } | Plan::Forward { .. } => {
                self.check_forwarding(req).unwrap_or(plan)
            }
            refuse => refuse,
        };
        let (this, req, source) = (Arc::clone(self), req.clone(), *source);
        run_or_spawn(async move { this.serve(req, source, plan).await });
        true
    }

    /// Max-Forwards and loop detection for a request about to be forwarded.
    fn check_forwarding(&self, req: &Message) -> Option<Plan> {
        if matches!(req.max_forwards(), Ok(Some(0))) {
            return Some(Plan::Refuse(483, "Too Many Hops"));
        }
        let hash = forward::loop_hash(&self.loop_key, req);
        forward::has_looped(req, &hash, &self.listeners)
            .then_some(Plan::Refuse(482, "Loop Detected"))
    }

    fn plan(&self, req: &Message, source: &Source) -> Plan {
        let in_dialog = req.to().ok().and_then(|t| t.tag()).is_some();
        let mut routes = req.routes();
        let (pop_route, next) = match routes.next() {
            Some(Ok(r)) if self.listeners.is_ours(r.uri(), &self.config) => (true, routes.next()),
            // An in-dialog request whose route set does not start with us is not ours to
            // carry (an initial one may be a local user's, checked when forwarding).
            Some(Ok(_)) if in_dialog => return Plan::Refuse(403, "Forbidden"),
            other => (false, other),
        };
        match next {
            Some(Ok(r)) => {
                return Plan::Forward {
                    uri: r.uri().as_str().to_owned(),
                    pop_route,
                }
            }
            Some(Err(_)) => return Plan::Refuse(400, "Bad Route"),
            None => {}
        }
        let Some(Ok(ruri)) = req.request_uri() else {
            return Plan::Local;
        };
        if !matches!(ruri.scheme(), Scheme::Sip | Scheme::Sips) {
            return Plan::Local;
        }
        let host = ruri.host_str().unwrap_or_default();
        let user = ruri.user().filter(|u| !u.is_empty());
        let ours = self.listeners.is_ours(&ruri, &self.config);
        // A registered contact first: with the listen addresses among the domains (the
        // default), `sip:bob@127.0.0.1:40000` is bob's phone, not a user of 127.0.0.1.
        let registered = contact_key(ruri.as_str()).and_then(|k| self.location.flow_for(&k));
        if registered.is_some() && !ours {
            return Plan::Forward {
                uri: ruri.as_str().to_owned(),
                pop_route,
            };
        }
        // Routed to us by a dialog's route set or by another pool (a user's home pool
        // reaching the user through the Path of this front-end), towards a device's address:
        // on to it, even though listen addresses count among the local domains.
        let ip_target = host
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok();
        if pop_route && !ours && ip_target && (in_dialog || self.pools.is_peer(source.peer)) {
            return Plan::Forward {
                uri: ruri.as_str().to_owned(),
                pop_route,
            };
        }
        if self.config.is_local_domain(host) || ours {
            return match user {
                Some(user) if self.config.is_local_domain(host) => {
                    let aor = format!("{user}@{}", host.to_ascii_lowercase());
                    // An OPTIONS for someone with no device registered here is a ping of
                    // the server (`sipsak -s sip:ping@host`): the server answers it with
                    // its own capabilities. A registered user's devices answer for
                    // themselves.
                    if req.method() == Some(Method::Options)
                        && self.location.lookup(&aor, Instant::now()).is_empty()
                    {
                        return Plan::Local;
                    }
                    Plan::ToUser { aor, pop_route }
                }
                _ => Plan::Local,
            };
        }
        if pop_route && in_dialog {
            return Plan::Forward {
                uri: ruri.as_str().to_owned(),
                pop_route,
            };
        }
        if req.method() == Some(Method::Options) {
            return Plan::Local;
        }
        Plan::Refuse(403, "Forbidden")
    }

    async fn serve(self: Arc<Self>, req: Message, source: Source, plan: Plan) {
        let answer = match plan {
            Plan::Local => return,
            Plan::Refuse(status, reason) => Answer::new(status, reason),
            Plan::ToUser { aor, pop_route } => {
                match self.to_user(&req, &source, &aor, pop_route).await {
                    Some(a) => a,
                    None => return,
                }
            }
            Plan::Forward { uri, pop_route } => {
                match self.forward(&req, &source, &uri, pop_route).await {
                    Some(a) => a,
                    None => return,
                }
            }
        };
        self.responder.send(&req, answer, &source).await;
    }

    async fn register(self: Arc<Self>, req: Message, source: Source) {
        if let Some(aor) = to_aor(&req, &self.config) {
            match self.home_elsewhere(&aor, &source).await {
                Ok(None) => {}
                Ok(Some(hop)) => {
                    if let Some(answer) = self.to_home_pool(&req, &source, &hop, false).await {
                        self.responder.send(&req, answer, &source).await;
                    }
                    return;
                }
                Err(answer) => return self.responder.send(&req, answer, &source).await,
            }
        }
        match self.registrar.register(&req, &source).await {
            Registration::Refused(answer) => self.responder.send(&req, answer, &source).await,
            Registration::Done { answer, aor, fresh } => {
                self.responder.send(&req, answer, &source).await;
                self.presence.registration_changed(&aor);
                if let Some(binding) = fresh.first() {
                    self.messaging.deliver(&aor, binding).await;
                }
            }
        }
    }

    async fn presence_request(self: Arc<Self>, req: Message, source: Source) {
        if Self::is_initial(&req) {
            if let Some(answer) = self.presence_elsewhere(&req, &source).await {
                if let Some(answer) = answer {
                    self.responder.send(&req, answer, &source).await;
                }
                return;
            }
        }
        let (answer, then) = self.presence_answer(&req, &source).await;
        self.responder.send(&req, answer, &source).await;
        self.presence.after(then);
    }

    /// An initial SUBSCRIBE or PUBLISH for a presentity homed on another pool: the watcher
    /// (or publisher) authenticated here unless a peer sent it, then forwarded there.
    /// `None`: served here; `Some(None)`: forwarded; `Some(Some(answer))`: answered.
    async fn presence_elsewhere(&self, req: &Message, source: &Source) -> Option<Option<Answer>> {
        let ruri = req.request_uri()?.ok()?;
        let host = ruri.host_str()?.to_ascii_lowercase();
        if !self.config.is_local_domain(&host) {
            return None;
        }
        let aor = format!("{}@{host}", ruri.user().filter(|u| !u.is_empty())?);
        let hop = match self.home_elsewhere(&aor, source).await {
            Ok(None) => return None,
            Ok(Some(hop)) => hop,
            Err(answer) => return Some(Some(answer)),
        };
        if !self.pools.is_peer(source.peer) {
            if let Err(answer) = self.authorize(req, source).await {
                return Some(Some(answer));
            }
        }
        Some(self.to_home_pool(req, source, &hop, false).await)
    }

    /// The answer to a SUBSCRIBE or PUBLISH, and the NOTIFYs to send after it.
    async fn presence_answer(&self, req: &Message, source: &Source) -> (Answer, After) {
        let none = || After::Notify(Vec::new());
        let publish = req.method() == Some(Method::Publish);
        if !Self::is_initial(req) {
            if publish {
                return (Answer::new(481, "Call/Transaction Does Not Exist"), none());
            }
            return match self.presence.resubscribe(req, source) {
                Some((answer, out)) => (answer, After::Notify(out)),
                None => (Answer::new(481, "Subscription Does Not Exist"), none()),
            };
        }
        if matches!(req.max_forwards(), Ok(Some(0))) {
            return (Answer::new(483, "Too Many Hops"), none());
        }
        let Some(Ok(ruri)) = req.request_uri() else {
            return (Answer::new(400, "Bad Request-URI"), none());
        };
        let host = ruri.host_str().unwrap_or_default().to_ascii_lowercase();
        if !matches!(ruri.scheme(), Scheme::Sip | Scheme::Sips)
            || !self.config.is_local_domain(&host)
        {
            return (Answer::new(403, "Forbidden"), none());
        }
        let Some(user) = ruri.user().filter(|u| !u.is_empty()) else {
            return (Answer::new(404, "Not Found"), none());
        };
        let aor = format!("{user}@{host}");
        // Another pool's front-end authenticated its user before forwarding.
        let local = if self.pools.is_peer(source.peer) {
            req.from()
                .ok()
                .and_then(|f| f.uri().host_str().map(str::to_ascii_lowercase))
                .is_some_and(|d| self.config.is_local_domain(&d))
        } else {
            match self.authorize(req, source).await {
                Ok(local) => local,
                Err(answer) => return (answer, none()),
            }
        };
        let watcher = match req.from() {
            Ok(from) => format!(
                "{}@{}",
                from.uri().user().unwrap_or_default(),
                from.uri()
                    .host_str()
                    .unwrap_or_default()
                    .to_ascii_lowercase()
            ),
            Err(_) => return (Answer::new(400, "Bad From Header"), none()),
        };
        if publish && (!local || watcher != aor) {
            return (Answer::new(403, "Publisher Is Not The Presentity"), none());
        }
        match self.stores.directory.user(&aor).await {
            Ok(Some(u)) if u.enabled => {}
            Ok(_) => return (Answer::new(404, "Not Found"), none()),
            Err(e) => {
                warn!(error = %e, "presence cannot read the directory");
                return (Answer::new(500, "Server Internal Error"), none());
            }
        }
        if publish {
            return self.presence.publish(req, &aor);
        }
        let asked = match self.presence.check_subscribe(req) {
            Ok(asked) => asked,
            Err(answer) => return (answer, none()),
        };
        let policy = match self.presence.policy(&aor).await {
            Ok(p) => p,
            Err(e) => {
                warn!(error = %e, "presence cannot read the presentity's rules");
                return (Answer::new(500, "Server Internal Error"), none());
            }
        };
        let local_tag = self.responder.to_tag(req);
        let who = Subscribing {
            presentity: &aor,
            watcher: &watcher,
            asked,
            local_tag: &local_tag,
        };
        let (answer, out) = self.presence.subscribe(req, source, who, &policy);
        (answer, After::Notify(out))
    }

    /// An initial request from a user of a local domain must authenticate as that user.
    /// `Ok(true)`: it did; `Ok(false)`: the sender is not local.
    async fn authorize(&self, req: &Message, source: &Source) -> Result<bool, Answer> {
        let Ok(from) = req.from() else {
            return Err(Answer::new(400, "Bad From Header"));
        };
        let uri = from.uri();
        let domain = uri.host_str().unwrap_or_default().to_ascii_lowercase();
        if !self.config.is_local_domain(&domain) {
            return Ok(false);
        }
        let aor = format!("{}@{domain}", uri.user().unwrap_or_default());
        match self
            .auth
            .authenticate(req, Asker::Proxy, &domain, source.peer.ip())
            .await
        {
            Auth::Authenticated(who) if who == aor => Ok(true),
            Auth::Authenticated(_) => {
                Err(Answer::new(403, "Authentication ID Does Not Match From"))
            }
            Auth::Challenge { stale } => {
                let (status, reason) = Asker::Proxy.status();
                let mut answer = Answer::new(status, reason);
                for c in self.auth.challenges(&domain, stale) {
                    answer = answer.header(Asker::Proxy.challenge_header(), c);
                }
                Err(answer)
            }
            Auth::BadRequest(reason) => Err(Answer::new(400, reason)),
            Auth::Failed(e) => {
                warn!(error = %e, "proxy cannot read the directory");
                Err(Answer::new(500, "Server Internal Error"))
            }
        }
    }

    fn is_initial(req: &Message) -> bool {
        req.to().ok().and_then(|t| t.tag()).is_none()
    }

    async fn to_user(
        &self,
        req: &Message,
        source: &Source,
        aor: &str,
        pop: bool,
    ) -> Option<Answer> {
        let from_peer = self.pools.is_peer(source.peer);
        if Self::is_initial(req) && !from_peer {
            if let Err(answer) = self.authorize(req, source).await {
                return Some(answer);
            }
        }
        let home = match self.stores.directory.user(aor).await {
            Ok(Some(u)) if u.enabled => u.home_pool,
            Ok(_) => return Some(Answer::new(404, "Not Found")),
            Err(e) => {
                warn!(error = %e, "proxy cannot read the directory");
                return Some(Answer::new(500, "Server Internal Error"));
            }
        };
        match self.checked_hop(aor, home.as_deref(), source).await {
            Ok(None) => {}
            Ok(Some(hop)) => return self.to_home_pool(req, source, &hop, pop).await,
            Err(answer) => return Some(answer),
        }
        let bindings = self.location.lookup(aor, Instant::now());
        if bindings.is_empty() {
            if req.method() == Some(Method::Message) {
                return Some(self.messaging.keep(req, aor).await);
            }
            return Some(Answer::new(480, "Temporarily Unavailable"));
        }
        let targets = bindings
            .into_iter()
            .map(|b| Target {
                request_uri: Some(b.contact().to_owned()),
                flow: b.flow,
                route: b.path().to_vec(),
            })
            .collect();
        self.fork(req, source, targets, pop).await
    }

    async fn forward(
        &self,
        req: &Message,
        source: &Source,
        uri: &str,
        pop: bool,
    ) -> Option<Answer> {
        if Self::is_initial(req) && !self.pools.is_peer(source.peer) {
            match self.authorize(req, source).await {
                Ok(true) => {}
                Ok(false) => return Some(Answer::new(403, "Forbidden")),
                Err(answer) => return Some(answer),
            }
        }
        let Some(flow) = self.listeners.resolve(uri, &self.location) else {
            debug!(%uri, "next hop cannot be resolved");
            return Some(Answer::new(502, "Bad Gateway"));
        };
        let target = Target {
            request_uri: None,
            flow,
            route: Vec::new(),
        };
        self.fork(req, source, vec![target], pop).await
    }

    /// Where the user `aor` homed on `home` is served: `Ok(None)` here (this pool and this
    /// member, no pool, or one the topology does not know), `Ok(Some(hop))` the member of this
    /// pool that owns the user or another pool's address, `Err` a pool the topology gives no
    /// address for. `source`: where the request came from (a request another member of this
    /// pool sent is served here).
    fn home_hop(
        &self,
        home: Option<&str>,
        aor: &str,
        source: Option<&Source>,
    ) -> Result<Option<String>, Answer> {
        let via_member = source.is_some_and(|s| self.pools.is_own_member(s.peer));
        match self.pools.serve(home, aor, via_member) {
            Serving::Here => Ok(None),
            Serving::Member(hop) | Serving::Pool(PoolRoute { hop: Some(hop), .. }) => Ok(Some(hop)),
            Serving::Pool(PoolRoute { hop: None, .. }) => {
                warn!(pool = ?home, "a user's home pool has no address in the topology");
                Err(Answer::new(503, "Home Pool Unreachable").header("Retry-After", "60"))
            }
        }
    }

    /// The home pool of the user `aor` when that is another pool: `Ok(Some(hop))`. A
    /// request a peer forwarded here says the peer takes this pool for the user's home; when
    /// the replica disagrees, one of the two views is stale (a move a second ago): the store
    /// decides, so that the request is not bounced back and forth until the loop check
    /// refuses it.
    async fn home_elsewhere(&self, aor: &str, source: &Source) -> Result<Option<String>, Answer> {
        if !self.pools.has_others() {
            return Ok(None);
        }
        let user = match self.stores.directory.user(aor).await {
            Ok(Some(u)) => u,
            // Unknown users and store failures are answered by the service itself.
            Ok(None) | Err(_) => return Ok(None),
        };
        self.checked_hop(aor, user.home_pool.as_deref(), source)
            .await
    }

    /// [`Router::home_hop`] for a user whose replica record says `home`, read again from
    /// the store when a peer sent the request and the replica would send it on.
    async fn checked_hop(
        &self,
        aor: &str,
        home: Option<&str>,
        source: &Source,
    ) -> Result<Option<String>, Answer> {
        let hop = self.home_hop(home, aor, Some(source))?;
        if hop.is_none() || !self.pools.is_peer(source.peer) {
            return Ok(hop);
        }
        match self.stores.directory.user_fresh(aor).await {
            Ok(Some(u)) => {
                debug!(%aor, replica = ?home, store = ?u.home_pool, "home pool read again");
                self.home_hop(u.home_pool.as_deref(), aor, Some(source))
            }
            Ok(None) | Err(_) => Ok(hop),
        }
    }

    /// Forwards `req` to the user's home pool at `hop` (statefully, loop-checked; a REGISTER
    /// with a Path to this front-end).
    async fn to_home_pool(
        &self,
        req: &Message,
        source: &Source,
        hop: &str,
        pop: bool,
    ) -> Option<Answer> {
        if let Some(Plan::Refuse(status, reason)) = self.check_forwarding(req) {
            return Some(Answer::new(status, reason));
        }
        let Some(flow) = self.listeners.resolve(hop, &self.location) else {
            warn!(%hop, "a home pool's address cannot be reached from this front-end's listeners");
            return Some(Answer::new(502, "Bad Gateway"));
        };
        debug!(%hop, method = ?req.method(), "to the user's home pool");
        let target = Target {
            request_uri: None,
            flow,
            route: Vec::new(),
        };
        self.fork(req, source, vec![target], pop).await
    }

    /// Rewrites `req` for each target and forks it; `None` once the fork has answered.
    async fn fork(
        &self,
        req: &Message,
        source: &Source,
        targets: Vec<Target>,
        pop: bool,
    ) -> Option<Answer> {
        let hash = forward::loop_hash(&self.loop_key, req);
        let register = req.method() == Some(Method::Register);
        // A REGISTER is not record-routed: it gets a Path instead (RFC 3327), so that the
        // home pool reaches the user back through this front-end.
        let rr = (Self::is_initial(req) && !register).then(|| self.listeners.record_route(source));
        let path = register.then(|| self.listeners.record_route(source));
        let mut copies = Vec::with_capacity(targets.len());
        for (i, t) in targets.iter().enumerate() {
            let via = self
                .listeners
                .via(&t.flow, &forward::branch(&hash, &i.to_string()));
            let own = |realm: &str| self.config.is_local_domain(realm);
            match forward::build(req, t, &via, rr.as_deref(), pop, &own) {
                Ok(bytes) => {
                    let bytes = match &path {
                        Some(p) => forward::prepend_fields(bytes, "Path", std::slice::from_ref(p)),
                        None => bytes,
                    };
                    copies.push((bytes, t.flow));
                }
                Err(EditError::MaxForwards) => return Some(Answer::new(483, "Too Many Hops")),
                Err(e) => {
                    debug!(error = %e, "request cannot be rewritten");
                    return Some(Answer::new(400, "Bad Request"));
                }
            }
        }
        self.proxy.fork(req, source, copies).await;
        None
    }

    /// Forwards an ACK for a 2xx statelessly, when it is ours to forward.
    pub fn ack(self: &Arc<Self>, req: &Message) {
        let mut routes = req.routes();
        let (pop, next) = match routes.next() {
            Some(Ok(r)) if self.listeners.is_ours(r.uri(), &self.config) => (true, routes.next()),
            other => (false, other),
        };
        let uri = match next {
            Some(Ok(r)) => r.uri().as_str().to_owned(),
            Some(Err(_)) => return,
            None => match req.request_uri_str() {
                Some(u) => u.to_owned(),
                None => return,
            },
        };
        let known = contact_key(&uri)
            .and_then(|k| self.location.flow_for(&k))
            .is_some();
        if !pop && !known {
            return;
        }
        let Some(flow) = self.listeners.resolve(&uri, &self.location) else {
            return;
        };
        let hash = forward::loop_hash(&self.loop_key, req);
        let via = self.listeners.via(&flow, &forward::branch(&hash, "ack"));
        let target = Target {
            request_uri: None,
            flow,
            route: Vec::new(),
        };
        let own = |realm: &str| self.config.is_local_domain(realm);
        let Ok(bytes) = forward::build(req, &target, &via, None, pop, &own) else {
            return;
        };
        let driver = Arc::clone(&self.driver);
        run_or_spawn(async move {
            if let Err(e) = driver.send_stateless(bytes, &flow).await {
                debug!(peer = %flow.peer, error = %e, "ACK not forwarded");
            }
        });
    }
}

/// The address-of-record a REGISTER is for (its To), `user@domain`, when the domain is one
/// of ours.
fn to_aor(req: &Message, config: &ServiceConfig) -> Option<String> {
    let to = req.to().ok()?;
    let uri = to.uri();
    let host = uri.host_str()?.to_ascii_lowercase();
    if !config.is_local_domain(&host) {
        return None;
    }
    Some(format!("{}@{host}", uri.user().filter(|u| !u.is_empty())?))
}
