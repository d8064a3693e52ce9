//! [`DirectoryReplica`]: the front-end's in-memory copy of the directory — every user it may
//! have to authenticate or route to, with the enabled flag, home pool and digest
//! credentials — answering [`Directory`] calls without a store round trip.
//!
//! A front-end fills it whole at start and then keeps it current one user at a time as the
//! management store's change feed names users (added, enabled, disabled, removed, new
//! credentials); `confab serve` does both through [`crate::store_backed::StoreBacked`]. Between an
//! operator's change and the feed reaching the front-end (well under a second), the
//! replica answers with the previous state, as a cache in front of the store would; the
//! contract (DESIGN.md, "Interfaces") is that a change applies within a second.
//!
//! Why a full replica rather than a cache filled on demand: the answer never depends on
//! whether a user happened to be asked for before, a store that is briefly unreachable does
//! not stop users signing in, and the memory it takes is known at start (about 300 bytes a
//! user with two credentials) instead of growing under load.

use std::collections::HashMap;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::directory::{BoxFuture, Credential, Directory, StoreError, UserRecord};

/// One user as the replica keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaUser {
    /// `user@domain`, domain in lower case.
    pub address: String,
    /// Whether the user may sign in.
    pub enabled: bool,
    /// The home pool, if known.
    pub home_pool: Option<String>,
    /// `(realm, credential)` for every stored credential.
    pub credentials: Vec<(String, Credential)>,
}

#[derive(Debug)]
struct Entry {
    enabled: bool,
    home_pool: Option<Arc<str>>,
    credentials: Box<[(Box<str>, Credential)]>,
}

#[derive(Debug, Default)]
struct Inner {
    users: HashMap<Box<str>, Entry>,
    /// Pool names are few and shared by many users: kept once.
    pools: Vec<Arc<str>>,
}

impl Inner {
    fn pool(&mut self, name: Option<String>) -> Option<Arc<str>> {
        let name = name?;
        if let Some(p) = self.pools.iter().find(|p| ***p == *name) {
            return Some(Arc::clone(p));
        }
        let p: Arc<str> = name.into();
        self.pools.push(Arc::clone(&p));
        Some(p)
    }

    fn insert(&mut self, user: ReplicaUser) {
        let home_pool = self.pool(user.home_pool);
        let credentials = user
            .credentials
            .into_iter()
            .map(|(realm, c)| (realm.into_boxed_str(), c))
            .collect();
        self.users.insert(
            user.address.into_boxed_str(),
            Entry {
                enabled: user.enabled,
                home_pool,
                credentials,
            },
        );
    }
}

/// The directory in memory (see the [module documentation](self)).
#[derive(Default)]
pub struct DirectoryReplica {
    inner: RwLock<Inner>,
    /// Asked about a user the replica does not know (see [`DirectoryReplica::with_fallback`]).
    fallback: Option<Arc<dyn Directory>>,
}

impl std::fmt::Debug for DirectoryReplica {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectoryReplica")
            .field("users", &self.len())
            .field("fallback", &self.fallback.is_some())
            .finish()
    }
}

impl DirectoryReplica {
    /// An empty replica: every user unknown until it is filled.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty replica that asks `fallback` (the store) about users it does not know: a user
    /// added a moment ago, before the change feed has brought it, can sign in at once rather
    /// than be refused for up to a feed interval. Known users never cost a round trip;
    /// unknown ones cost what every user cost without a replica.
    pub fn with_fallback(fallback: Arc<dyn Directory>) -> Self {
        DirectoryReplica {
            inner: RwLock::default(),
            fallback: Some(fallback),
        }
    }

    // A panic while the lock is held cannot leave a half-made entry: every change is one
    // map operation, so a poisoned lock still guards a consistent map.
    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        self.inner
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Replaces the whole content with `users`.
    pub fn replace_all(&self, users: impl IntoIterator<Item = ReplicaUser>) {
        let mut fresh = Inner::default();
        for user in users {
            fresh.insert(user);
        }
        *self.write() = fresh;
    }

    /// Adds or replaces one user.
    pub fn set(&self, user: ReplicaUser) {
        self.write().insert(user);
    }

    /// Forgets one user; true if it was known.
    pub fn remove(&self, address: &str) -> bool {
        self.write().users.remove(address).is_some()
    }

    /// How many users it holds.
    pub fn len(&self) -> usize {
        self.read().users.len()
    }

    /// True when it holds no user.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `None` when the replica does not know the user.
    fn record(&self, address: &str) -> Option<UserRecord> {
        let inner = self.read();
        let (key, e) = inner.users.get_key_value(address)?;
        Some(UserRecord {
            address: key.to_string(),
            enabled: e.enabled,
            home_pool: e.home_pool.as_deref().map(str::to_owned),
        })
    }

    /// `None` when the replica does not know the user.
    fn credentials_for(&self, address: &str, realm: &str) -> Option<Vec<Credential>> {
        let inner = self.read();
        inner.users.get(address).map(|e| {
            e.credentials
                .iter()
                .filter(|(r, _)| **r == *realm)
                .map(|(_, c)| c.clone())
                .collect()
        })
    }
}

impl Directory for DirectoryReplica {
    fn user<'a>(
        &'a self,
        address: &'a str,
    ) -> BoxFuture<'a, Result<Option<UserRecord>, StoreError>> {
        match (self.record(address), &self.fallback) {
            (None, Some(fallback)) => fallback.user(address),
            (found, _) => Box::pin(std::future::ready(Ok(found))),
        }
    }

    fn credentials<'a>(
        &'a self,
        address: &'a str,
        realm: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Credential>, StoreError>> {
        match (self.credentials_for(address, realm), &self.fallback) {
            (None, Some(fallback)) => fallback.credentials(address, realm),
            (found, _) => Box::pin(std::future::ready(Ok(found.unwrap_or_default()))),
        }
    }
    fn user_fresh<'a>(
        &'a self,
        address: &'a str,
    ) -> BoxFuture<'a, Result<Option<UserRecord>, StoreError>> {
        match &self.fallback {
            Some(fallback) => fallback.user_fresh(address),
            None => self.user(address),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice(enabled: bool, ha1: &str) -> ReplicaUser {
        ReplicaUser {
            address: "alice@example.com".into(),
            enabled,
            home_pool: Some("default".into()),
            credentials: vec![
                (
                    "example.com".into(),
                    Credential {
                        algorithm: "MD5".into(),
                        ha1: ha1.into(),
                    },
                ),
                (
                    "other.realm".into(),
                    Credential {
                        algorithm: "MD5".into(),
                        ha1: "ffff".into(),
                    },
                ),
            ],
        }
    }

    fn now<T>(f: BoxFuture<'_, T>) -> T {
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let mut f = f;
        match f.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(v) => v,
            std::task::Poll::Pending => panic!("the replica answers at once"),
        }
    }

    #[test]
    fn answers_from_memory_and_follows_changes() {
        let r = DirectoryReplica::new();
        assert_eq!(now(r.user("alice@example.com")), Ok(None));
        assert!(now(r.credentials("alice@example.com", "example.com"))
            .expect("ok")
            .is_empty());

        r.replace_all([alice(true, "aaaa")]);
        let user = now(r.user("alice@example.com"))
            .expect("ok")
            .expect("known");
        assert!(user.enabled);
        assert_eq!(user.home_pool.as_deref(), Some("default"));
        let creds = now(r.credentials("alice@example.com", "example.com")).expect("ok");
        assert_eq!(creds.len(), 1, "only the realm asked for");
        assert_eq!(creds[0].ha1, "aaaa");

        r.set(alice(false, "bbbb"));
        let user = now(r.user("alice@example.com"))
            .expect("ok")
            .expect("known");
        assert!(!user.enabled);
        let creds = now(r.credentials("alice@example.com", "example.com")).expect("ok");
        assert_eq!(creds[0].ha1, "bbbb");

        assert!(r.remove("alice@example.com"));
        assert!(!r.remove("alice@example.com"));
        assert_eq!(now(r.user("alice@example.com")), Ok(None));
        assert!(r.is_empty());
    }

    #[test]
    fn a_user_not_yet_in_the_replica_is_asked_of_the_fallback() {
        let store = Arc::new(crate::memory::MemoryDirectory::new());
        store.add_user("carol@example.com", "carol-pw");
        let r = DirectoryReplica::with_fallback(store);
        r.set(alice(true, "aaaa"));
        // Known: answered from memory.
        assert_eq!(
            now(r.credentials("alice@example.com", "example.com")).expect("ok")[0].ha1,
            "aaaa"
        );
        // Not known yet: the fallback answers.
        let carol = now(r.user("carol@example.com"))
            .expect("ok")
            .expect("found");
        assert!(carol.enabled);
        assert_eq!(
            now(r.credentials("carol@example.com", "example.com"))
                .expect("ok")
                .len(),
            2
        );
        assert_eq!(now(r.user("nobody@example.com")), Ok(None));
    }

    #[test]
    fn replacing_all_forgets_who_is_gone() {
        let r = DirectoryReplica::new();
        r.set(alice(true, "aaaa"));
        let mut bob = alice(true, "cccc");
        bob.address = "bob@example.com".into();
        r.replace_all([bob]);
        assert_eq!(now(r.user("alice@example.com")), Ok(None));
        assert_eq!(r.len(), 1);
    }
}
