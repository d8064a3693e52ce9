//! What the registrar, the proxy and messaging need from the management store, as three
//! small traits: [`Directory`] (users and their digest credentials, read only),
//! [`RegistrationStore`] (bindings written behind and loaded at start) and
//! [`OfflineMessages`] (page-mode messages kept for users who are offline). The records
//! carry strings and numbers only, no SIP types, so that `confab-store` can implement them
//! without knowing SIP. [`crate::memory`] has in-memory implementations for tests and for a
//! front-end without a store.
//!
//! **Why boxed futures.** The traits are used as `Arc<dyn Directory>`: the router does not
//! care which backend (SQLite, PostgreSQL, memory) answers. `async fn` in traits is not
//! object-safe, so every method returns a [`BoxFuture`] — `Pin<Box<dyn Future + Send>>` —
//! written by hand, without a macro crate. An implementation writes
//! `Box::pin(async move { … })`. The `Send` bound lets the router await them on any worker
//! thread. One allocation per call is nothing next to a database round trip.
//!
//! Errors: every call may fail with a [`StoreError`] (the database is down, a query timed
//! out). The router answers such a request `500 Server Internal Error`; nothing is lost,
//! because nothing is acknowledged to a client before the store has taken it.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

/// A future returned by the store traits: boxed, so the traits stay object-safe, and `Send`,
/// so it can be awaited on any thread.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A store call that failed; the text says why, in the operator's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError(pub String);

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "management store: {}", self.0)
    }
}

impl std::error::Error for StoreError {}

/// A user as the front-end sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// `user@domain`, the address-of-record; the domain in lower case.
    pub address: String,
    /// A disabled user cannot authenticate and is not reachable.
    pub enabled: bool,
    /// The pool the user is homed on, if the store knows one.
    pub home_pool: Option<String>,
}

/// One stored digest credential: `H(user:realm:password)` for one algorithm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    /// The algorithm's name as in a challenge: `MD5` or `SHA-256` (case-insensitive).
    pub algorithm: String,
    /// The HA1 in hex.
    pub ha1: String,
}

/// Users and credentials, read-only: the front-end never mutates users (DESIGN.md).
pub trait Directory: Send + Sync + 'static {
    /// The user with this address-of-record (`user@domain`, domain lower-case), or `None`.
    fn user<'a>(
        &'a self,
        address: &'a str,
    ) -> BoxFuture<'a, Result<Option<UserRecord>, StoreError>>;

    /// The user's credentials for `realm`, one per algorithm stored; empty for an unknown
    /// user.
    fn credentials<'a>(
        &'a self,
        address: &'a str,
        realm: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Credential>, StoreError>>;

    /// The user as the authoritative store has it now, bypassing any replica (which follows
    /// the change feed up to a second late): for the rare decision that must not act on a
    /// stale home pool. By default, [`Directory::user`].
    fn user_fresh<'a>(
        &'a self,
        address: &'a str,
    ) -> BoxFuture<'a, Result<Option<UserRecord>, StoreError>> {
        self.user(address)
    }
}

/// Whether a pool is Confab's or another SIP system's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolKindRecord {
    /// Confab front-ends.
    FrontEnd,
    /// Another SIP system (e.g. Kamailio), reached through its next hop.
    Legacy,
}

/// A pool of the published topology, as routing needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolRecord {
    /// Its name.
    pub name: String,
    /// Front-end or legacy.
    pub kind: PoolKindRecord,
    /// A front-end pool's servers: listen URIs such as `udp://10.0.0.1:5060`, in order.
    pub servers: Vec<String>,
    /// A legacy pool's next hop (listen URI or SIP URI).
    pub next_hop: Option<String>,
    /// The pool paired with it, which serves its users while it is in maintenance.
    pub pair: Option<String>,
    /// In maintenance: its users are served by its pair.
    pub maintenance: bool,
}

/// A front-end serving a pool, as its heartbeat in the store shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRecord {
    /// The pool it serves.
    pub pool: String,
    /// Its SIP address, a listen URI such as `udp://10.0.0.1:5060`.
    pub address: String,
    /// How long ago its last heartbeat was, by the store's clock.
    pub heartbeat_age: std::time::Duration,
}

/// The pools of the deployment (the published topology) and the front-ends serving them.
pub trait PoolDirectory: Send + Sync + 'static {
    /// Every pool.
    fn pools(&self) -> BoxFuture<'_, Result<Vec<PoolRecord>, StoreError>>;

    /// Every front-end that has announced itself, with the age of its last heartbeat.
    fn members(&self) -> BoxFuture<'_, Result<Vec<MemberRecord>, StoreError>>;

    /// The front-end at `address` serves `pool` and is alive now.
    fn heartbeat<'a>(
        &'a self,
        pool: &'a str,
        address: &'a str,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// The front-end at `address` stops serving `pool` (a clean shutdown): the other
    /// members take its users over at once instead of after the heartbeat timeout.
    fn leave<'a>(
        &'a self,
        pool: &'a str,
        address: &'a str,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// The networks blocked at ingress (`203.0.113.0/24`), as the store keeps them.
    fn blocked_sources(&self) -> BoxFuture<'_, Result<Vec<String>, StoreError>>;
}

/// One registered contact, as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBinding {
    /// The address-of-record, `user@domain`.
    pub aor: String,
    /// The contact URI (without angle brackets or header parameters).
    pub contact: String,
    /// When the binding expires, in seconds since the Unix epoch.
    pub expires_at: u64,
    /// The q-value in thousandths (1000 = 1.0), if the client gave one.
    pub q: Option<u16>,
    /// The Call-ID of the REGISTER that made or last refreshed it.
    pub call_id: String,
    /// That REGISTER's CSeq number.
    pub cseq: u32,
    /// The Path header values (RFC 3327), outermost first.
    pub path: Vec<String>,
    /// How requests reach the contact: `TRANSPORT PEER LOCAL`, e.g.
    /// `udp 192.0.2.7:5060 192.0.2.1:5060` (the address the REGISTER came from and the
    /// listener it came to).
    pub flow: String,
    /// The User-Agent of the REGISTER, for operators.
    pub user_agent: Option<String>,
    /// When the binding was first made, in seconds since the Unix epoch.
    pub registered_at: u64,
}

/// The bindings of one address-of-record to write: they replace whatever the store has
/// for it (none: the AOR has no registration any more).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AorBindings {
    /// The address-of-record, `user@domain`.
    pub aor: String,
    /// Its bindings, each with the same `aor`.
    pub bindings: Vec<StoredBinding>,
}

/// Where registrations are written behind, so that a restart or a failover recovers them.
pub trait RegistrationStore: Send + Sync + 'static {
    /// Replaces the bindings of every AOR of `batch` with the ones given, all in one store
    /// transaction: on success all are written, on error none. An AOR the store has no
    /// user for is skipped (its registrations mean nothing to a restarted front-end).
    /// Called from one writer task, coalesced: only the latest state of an AOR is written,
    /// each AOR at most once per batch.
    fn save_many<'a>(&'a self, batch: &'a [AorBindings]) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Every binding stored, for the front-end to load at start (expired ones included; the
    /// front-end skips them).
    fn load(&self) -> BoxFuture<'_, Result<Vec<StoredBinding>, StoreError>>;
}

/// A page-mode message waiting for its recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfflineMessage {
    /// The store's id; unique, increasing in storage order.
    pub id: u64,
    /// The recipient's address-of-record.
    pub recipient: String,
    /// The original From header value, tag included.
    pub from: String,
    /// The original Content-Type (`text/plain` when the MESSAGE had none).
    pub content_type: String,
    /// The body.
    pub body: Vec<u8>,
    /// When it was accepted, in seconds since the Unix epoch.
    pub received_at: u64,
}

/// Why a message was not stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OfflineError {
    /// The recipient already has as many messages waiting as allowed.
    OverQuota,
    /// The store failed.
    Store(StoreError),
}

impl From<StoreError> for OfflineError {
    fn from(e: StoreError) -> Self {
        OfflineError::Store(e)
    }
}

/// Messages kept for users who are offline. Delivery is at-least-once with acknowledgement:
/// a message is deleted only by [`OfflineMessages::ack`], after the recipient's client
/// answered it 2xx, so a crash or a lost answer means a redelivery, never a loss.
pub trait OfflineMessages: Send + Sync + 'static {
    /// Deletes the recipient's messages received before `not_before` (expired), then stores
    /// `message` (its `id` is ignored and assigned) unless the recipient already has
    /// `max_per_user` messages: [`OfflineError::OverQuota`]. Returns the new id. The message
    /// is durable when this returns.
    fn store(
        &self,
        message: OfflineMessage,
        max_per_user: usize,
        not_before: u64,
    ) -> BoxFuture<'_, Result<u64, OfflineError>>;

    /// The recipient's messages received at or after `not_before`, oldest first.
    fn pending<'a>(
        &'a self,
        recipient: &'a str,
        not_before: u64,
    ) -> BoxFuture<'a, Result<Vec<OfflineMessage>, StoreError>>;

    /// Deletes message `id`: it was delivered. Deleting a message that is gone is not an
    /// error.
    fn ack(&self, id: u64) -> BoxFuture<'_, Result<(), StoreError>>;

    /// Every recipient with a message received at or after `not_before` waiting: read at
    /// start, so that messages kept before a restart are delivered at the next REGISTER.
    fn recipients(&self, not_before: u64) -> BoxFuture<'_, Result<Vec<String>, StoreError>>;
}

/// A presentity's presence rules and contact list, as the store keeps them: what presence
/// authorization reads ([`crate::presence::policy`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PresencePolicyRecord {
    /// `(watcher, level)`: the watcher `user@domain` or `@domain`, the level's stored name
    /// (`blocked`, `colleagues`, `workgroup`, `friends-and-family`).
    pub rules: Vec<(String, String)>,
    /// The addresses on the presentity's contact list, `user@domain`.
    pub contacts: Vec<String>,
}

/// One live publication, as written behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPublication {
    /// The presentity, `user@domain`.
    pub aor: String,
    /// Its entity-tag.
    pub etag: String,
    /// When it expires, in Unix seconds.
    pub expires_at: u64,
    /// The document's content type.
    pub content_type: String,
    /// The document as published.
    pub body: Vec<u8>,
}

/// One subscription, as written behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSubscription {
    /// Its id (our tag and the Call-ID).
    pub id: String,
    /// The presentity, `user@domain`.
    pub presentity: String,
    /// `presence` or `presence.winfo`.
    pub event: String,
    /// The watcher, `user@domain`.
    pub watcher: String,
    /// When it expires, in Unix seconds.
    pub expires_at: u64,
    /// The dialog in [`crate::presence::dialog::Dialog::to_stored`]'s form.
    pub dialog: String,
}

/// One batch of presence writes (or everything loaded at start, with nothing removed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PresenceBatch {
    /// Publications to write (replacing one with the same presentity and entity-tag).
    pub publications: Vec<StoredPublication>,
    /// Publications gone: `(presentity, entity-tag)`.
    pub removed_publications: Vec<(String, String)>,
    /// Subscriptions to write (replacing one with the same id).
    pub subscriptions: Vec<StoredSubscription>,
    /// Subscriptions gone, by id.
    pub removed_subscriptions: Vec<String>,
}

impl PresenceBatch {
    /// True when there is nothing in it.
    pub fn is_empty(&self) -> bool {
        self.publications.is_empty()
            && self.removed_publications.is_empty()
            && self.subscriptions.is_empty()
            && self.removed_subscriptions.is_empty()
    }
}

/// What presence needs from the store: each presentity's rules and contact list (read when a
/// watcher subscribes, and again when the change feed says they changed), and the
/// write-behind of publications and subscriptions.
pub trait PresenceStore: Send + Sync + 'static {
    /// The rules and contact list of `aor`; empty for an unknown user.
    fn policy<'a>(
        &'a self,
        aor: &'a str,
    ) -> BoxFuture<'a, Result<PresencePolicyRecord, StoreError>>;

    /// Applies one batch in one store transaction: all or nothing. Rows of users the store
    /// does not have are skipped.
    fn save_presence<'a>(
        &'a self,
        batch: &'a PresenceBatch,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Every stored publication and subscription (expired ones included), at start.
    fn load_presence(&self) -> BoxFuture<'_, Result<PresenceBatch, StoreError>>;
}
