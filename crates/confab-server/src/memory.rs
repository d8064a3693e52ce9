//! In-memory implementations of the store traits of [`crate::directory`]: for tests, and for
//! a front-end run without a management store. [`MemoryDirectory`] computes HA1 values from
//! passwords given to it (MD5 and SHA-256, realm = the user's domain) and keeps only those;
//! [`MemoryRegistrations`], [`MemoryOfflineMessages`] and [`MemoryPresence`] keep what they
//! are given, and can be shared between two routers to play a restart.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use confab_sip::digest::{self, Algorithm};

use crate::directory::{
    AorBindings, BoxFuture, Credential, Directory, MemberRecord, OfflineError, OfflineMessage,
    OfflineMessages, PoolDirectory, PoolRecord, PresenceBatch, PresencePolicyRecord, PresenceStore,
    RegistrationStore, StoreError, StoredBinding, StoredPublication, StoredSubscription,
    UserRecord,
};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every update is one insert or remove: a poisoned lock still holds a consistent map.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[derive(Debug, Clone)]
struct MemoryUser {
    record: UserRecord,
    /// Keyed by realm.
    credentials: HashMap<String, Vec<Credential>>,
}

/// Users with passwords, kept as HA1 values only.
#[derive(Debug, Default)]
pub struct MemoryDirectory {
    users: Mutex<HashMap<String, MemoryUser>>,
}

impl MemoryDirectory {
    /// An empty directory.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) `user@domain` with `password`, enabled, with MD5 and SHA-256 HA1
    /// values for the realm `domain`.
    pub fn add_user(&self, address: &str, password: &str) {
        let (user, domain) = address.rsplit_once('@').unwrap_or((address, ""));
        let domain = domain.to_ascii_lowercase();
        let credentials = [Algorithm::Md5, Algorithm::Sha256]
            .into_iter()
            .map(|alg| Credential {
                algorithm: alg.as_str().to_owned(),
                ha1: digest::ha1(alg, user, &domain, password),
            })
            .collect();
        let address = format!("{user}@{domain}");
        let record = UserRecord {
            address: address.clone(),
            enabled: true,
            home_pool: None,
        };
        lock(&self.users).insert(
            address,
            MemoryUser {
                record,
                credentials: HashMap::from([(domain, credentials)]),
            },
        );
    }

    /// Homes `address` on `pool` (`None`: no pool known); false when there is no such user.
    pub fn set_home_pool(&self, address: &str, pool: Option<&str>) -> bool {
        match lock(&self.users).get_mut(address) {
            Some(u) => {
                u.record.home_pool = pool.map(str::to_owned);
                true
            }
            None => false,
        }
    }

    /// Enables or disables a user; false when there is no such user.
    pub fn set_enabled(&self, address: &str, enabled: bool) -> bool {
        match lock(&self.users).get_mut(address) {
            Some(u) => {
                u.record.enabled = enabled;
                true
            }
            None => false,
        }
    }
}

impl Directory for MemoryDirectory {
    fn user<'a>(
        &'a self,
        address: &'a str,
    ) -> BoxFuture<'a, Result<Option<UserRecord>, StoreError>> {
        let found = lock(&self.users).get(address).map(|u| u.record.clone());
        Box::pin(async move { Ok(found) })
    }

    fn credentials<'a>(
        &'a self,
        address: &'a str,
        realm: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Credential>, StoreError>> {
        let found = lock(&self.users)
            .get(address)
            .and_then(|u| u.credentials.get(&realm.to_ascii_lowercase()).cloned())
            .unwrap_or_default();
        Box::pin(async move { Ok(found) })
    }
}

/// Bindings by address-of-record.
#[derive(Debug, Default)]
pub struct MemoryRegistrations {
    bindings: Mutex<BTreeMap<String, Vec<StoredBinding>>>,
}

impl MemoryRegistrations {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The bindings stored for `aor`.
    pub fn get(&self, aor: &str) -> Vec<StoredBinding> {
        lock(&self.bindings).get(aor).cloned().unwrap_or_default()
    }
}

impl RegistrationStore for MemoryRegistrations {
    fn save_many<'a>(&'a self, batch: &'a [AorBindings]) -> BoxFuture<'a, Result<(), StoreError>> {
        let mut all = lock(&self.bindings);
        for a in batch {
            if a.bindings.is_empty() {
                all.remove(&a.aor);
            } else {
                all.insert(a.aor.clone(), a.bindings.clone());
            }
        }
        Box::pin(async { Ok(()) })
    }

    fn load(&self) -> BoxFuture<'_, Result<Vec<StoredBinding>, StoreError>> {
        let all: Vec<StoredBinding> = lock(&self.bindings).values().flatten().cloned().collect();
        Box::pin(async move { Ok(all) })
    }
}

#[derive(Debug, Default)]
struct Offline {
    next_id: u64,
    messages: BTreeMap<u64, OfflineMessage>,
}

/// Offline messages by id.
#[derive(Debug, Default)]
pub struct MemoryOfflineMessages {
    inner: Mutex<Offline>,
}

impl MemoryOfflineMessages {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The messages waiting for `recipient`, whatever their age.
    pub fn waiting(&self, recipient: &str) -> Vec<OfflineMessage> {
        lock(&self.inner)
            .messages
            .values()
            .filter(|m| m.recipient == recipient)
            .cloned()
            .collect()
    }
}

impl OfflineMessages for MemoryOfflineMessages {
    fn store(
        &self,
        mut message: OfflineMessage,
        max_per_user: usize,
        not_before: u64,
    ) -> BoxFuture<'_, Result<u64, OfflineError>> {
        let mut inner = lock(&self.inner);
        let recipient = message.recipient.clone();
        inner
            .messages
            .retain(|_, m| m.recipient != recipient || m.received_at >= not_before);
        let waiting = inner
            .messages
            .values()
            .filter(|m| m.recipient == recipient)
            .count();
        let result = if waiting >= max_per_user {
            Err(OfflineError::OverQuota)
        } else {
            inner.next_id += 1;
            message.id = inner.next_id;
            inner.messages.insert(message.id, message);
            Ok(inner.next_id)
        };
        Box::pin(async move { result })
    }

    fn pending<'a>(
        &'a self,
        recipient: &'a str,
        not_before: u64,
    ) -> BoxFuture<'a, Result<Vec<OfflineMessage>, StoreError>> {
        let found: Vec<OfflineMessage> = lock(&self.inner)
            .messages
            .values()
            .filter(|m| m.recipient == recipient && m.received_at >= not_before)
            .cloned()
            .collect();
        Box::pin(async move { Ok(found) })
    }

    fn ack(&self, id: u64) -> BoxFuture<'_, Result<(), StoreError>> {
        lock(&self.inner).messages.remove(&id);
        Box::pin(async { Ok(()) })
    }

    fn recipients(&self, not_before: u64) -> BoxFuture<'_, Result<Vec<String>, StoreError>> {
        let mut found: Vec<String> = lock(&self.inner)
            .messages
            .values()
            .filter(|m| m.received_at >= not_before)
            .map(|m| m.recipient.clone())
            .collect();
        found.sort();
        found.dedup();
        Box::pin(async move { Ok(found) })
    }
}

/// The three in-memory stores together, shareable; [`crate::Stores::memory`] uses them.
#[derive(Debug, Clone, Default)]
pub struct MemoryStores {
    /// Users.
    pub directory: Arc<MemoryDirectory>,
    /// Pools.
    pub pools: Arc<MemoryPools>,
    /// Registrations.
    pub registrations: Arc<MemoryRegistrations>,
    /// Offline messages.
    pub offline: Arc<MemoryOfflineMessages>,
    /// Presence rules, contact lists and the presence write-behind.
    pub presence: Arc<MemoryPresence>,
}

#[derive(Debug, Default)]
struct PresenceRows {
    policies: HashMap<String, PresencePolicyRecord>,
    publications: BTreeMap<(String, String), StoredPublication>,
    subscriptions: BTreeMap<String, StoredSubscription>,
}

/// Presence rules and contact lists set by the test, and the publications and subscriptions
/// a router writes behind.
#[derive(Debug, Default)]
pub struct MemoryPresence {
    rows: Mutex<PresenceRows>,
}

impl MemoryPresence {
    /// Sets `aor`'s rules and contact list (the router reads them again when told:
    /// `Router::presence_policy_changed`).
    pub fn set_policy(&self, aor: &str, policy: PresencePolicyRecord) {
        lock(&self.rows).policies.insert(aor.to_owned(), policy);
    }

    /// What is written behind now.
    pub fn stored(&self) -> PresenceBatch {
        let rows = lock(&self.rows);
        PresenceBatch {
            publications: rows.publications.values().cloned().collect(),
            subscriptions: rows.subscriptions.values().cloned().collect(),
            ..PresenceBatch::default()
        }
    }
}

impl PresenceStore for MemoryPresence {
    fn policy<'a>(
        &'a self,
        aor: &'a str,
    ) -> BoxFuture<'a, Result<PresencePolicyRecord, StoreError>> {
        let policy = lock(&self.rows)
            .policies
            .get(aor)
            .cloned()
            .unwrap_or_default();
        Box::pin(async move { Ok(policy) })
    }

    fn save_presence<'a>(
        &'a self,
        batch: &'a PresenceBatch,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let mut rows = lock(&self.rows);
        for key in &batch.removed_publications {
            rows.publications.remove(key);
        }
        for id in &batch.removed_subscriptions {
            rows.subscriptions.remove(id);
        }
        for p in &batch.publications {
            rows.publications
                .insert((p.aor.clone(), p.etag.clone()), p.clone());
        }
        for s in &batch.subscriptions {
            rows.subscriptions.insert(s.id.clone(), s.clone());
        }
        Box::pin(async { Ok(()) })
    }

    fn load_presence(&self) -> BoxFuture<'_, Result<PresenceBatch, StoreError>> {
        let batch = self.stored();
        Box::pin(async move { Ok(batch) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(recipient: &str, at: u64) -> OfflineMessage {
        OfflineMessage {
            id: 0,
            recipient: recipient.to_owned(),
            from: "<sip:a@x>;tag=1".to_owned(),
            content_type: "text/plain".to_owned(),
            body: b"hi".to_vec(),
            received_at: at,
        }
    }

    #[tokio::test]
    async fn offline_messages_have_a_cap_and_an_age_limit() {
        let store = MemoryOfflineMessages::new();
        assert_eq!(store.store(message("b@x", 10), 2, 0).await, Ok(1));
        assert_eq!(store.store(message("b@x", 11), 2, 0).await, Ok(2));
        assert_eq!(
            store.store(message("b@x", 12), 2, 0).await,
            Err(OfflineError::OverQuota)
        );
        assert_eq!(store.store(message("c@x", 12), 2, 0).await, Ok(3));
        // The first one has expired: room for another.
        assert_eq!(store.store(message("b@x", 12), 2, 11).await, Ok(4));
        let pending = store.pending("b@x", 0).await.expect("pending");
        assert_eq!(pending.iter().map(|m| m.id).collect::<Vec<_>>(), [2, 4]);
        store.ack(2).await.expect("ack");
        store.ack(2).await.expect("a second ack is harmless");
        assert_eq!(store.pending("b@x", 0).await.expect("pending").len(), 1);
    }

    #[tokio::test]
    async fn the_directory_keeps_ha1_per_realm() {
        let d = MemoryDirectory::new();
        d.add_user("alice@Example.com", "secret");
        let user = d
            .user("alice@example.com")
            .await
            .expect("ok")
            .expect("user");
        assert!(user.enabled);
        let creds = d
            .credentials("alice@example.com", "example.com")
            .await
            .expect("ok");
        assert_eq!(creds.len(), 2);
        assert!(creds.iter().any(|c| c.algorithm == "SHA-256"
            && c.ha1 == digest::ha1(Algorithm::Sha256, "alice", "example.com", "secret")));
        assert!(d
            .credentials("alice@example.com", "other")
            .await
            .expect("ok")
            .is_empty());
        assert!(d.user("bob@example.com").await.expect("ok").is_none());
    }
}

/// The pools of an in-memory topology, and the heartbeats of their front-ends (by the
/// process's monotonic clock).
#[derive(Debug, Default)]
pub struct MemoryPools {
    pools: Mutex<Vec<PoolRecord>>,
    members: Mutex<BTreeMap<(String, String), Instant>>,
    blocked: Mutex<Vec<String>>,
}

impl MemoryPools {
    /// Replaces the pools (the router reads them again when told: `Router::pools_changed`).
    pub fn set(&self, pools: Vec<PoolRecord>) {
        *lock(&self.pools) = pools;
    }

    /// Replaces the networks blocked at ingress (the router reads them again when told:
    /// `Router::sources_changed`).
    pub fn set_blocked(&self, networks: Vec<String>) {
        *lock(&self.blocked) = networks;
    }

    /// Makes the member's last heartbeat `age` old (a test playing a front-end that died).
    pub fn age_member(&self, pool: &str, address: &str, age: Duration) {
        let at = Instant::now().checked_sub(age).unwrap_or_else(Instant::now);
        lock(&self.members).insert((pool.to_owned(), address.to_owned()), at);
    }
}

impl PoolDirectory for MemoryPools {
    fn pools(&self) -> BoxFuture<'_, Result<Vec<PoolRecord>, StoreError>> {
        let pools = lock(&self.pools).clone();
        Box::pin(async move { Ok(pools) })
    }

    fn members(&self) -> BoxFuture<'_, Result<Vec<MemberRecord>, StoreError>> {
        let now = Instant::now();
        let members = lock(&self.members)
            .iter()
            .map(|((pool, address), at)| MemberRecord {
                pool: pool.clone(),
                address: address.clone(),
                heartbeat_age: now.saturating_duration_since(*at),
            })
            .collect();
        Box::pin(async move { Ok(members) })
    }

    fn heartbeat<'a>(
        &'a self,
        pool: &'a str,
        address: &'a str,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        lock(&self.members).insert((pool.to_owned(), address.to_owned()), Instant::now());
        Box::pin(async { Ok(()) })
    }

    fn leave<'a>(
        &'a self,
        pool: &'a str,
        address: &'a str,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        lock(&self.members).remove(&(pool.to_owned(), address.to_owned()));
        Box::pin(async { Ok(()) })
    }

    fn blocked_sources(&self) -> BoxFuture<'_, Result<Vec<String>, StoreError>> {
        let blocked = lock(&self.blocked).clone();
        Box::pin(async move { Ok(blocked) })
    }
}
