//! The registrar's, proxy's, messaging's and presence's store traits ([`crate::directory`]) implemented
//! over the management store (`confab-store`, SQLite or PostgreSQL): [`StoreBacked`] wraps
//! one [`confab_store::Store`] handle and translates records both ways. The translation is
//! the whole job: no SIP is parsed here and no business rule is added.
//!
//! Offline messages are claimed with a lease (see [`CLAIM_LEASE`]): a front-end that crashes
//! between delivering and acknowledging gives them back when the lease runs out, and two
//! front-ends sharing one store never deliver the same message at the same time.

use std::time::Duration;

use confab_store::{
    Address, DirectoryEntry, NewOfflineMessage, QuotaError, Registration, Store,
    StoreError as DbError, StoredId,
};
use tracing::{debug, warn};

use crate::directory::{
    AorBindings, BoxFuture, Credential, Directory, MemberRecord, OfflineError, OfflineMessage,
    OfflineMessages, PoolDirectory, PoolKindRecord, PoolRecord, PresenceBatch,
    PresencePolicyRecord, PresenceStore, RegistrationStore, StoreError, StoredBinding,
    StoredPublication, StoredSubscription, UserRecord,
};
use crate::replica::{DirectoryReplica, ReplicaUser};

/// How long a claimed offline message is held for one delivery attempt: longer than a
/// non-INVITE transaction (Timer F, 32 s) so that a slow client's 2xx still finds it held.
pub const CLAIM_LEASE: Duration = Duration::from_secs(64);

/// The three store traits over one management store handle.
#[derive(Clone, Debug)]
pub struct StoreBacked {
    store: Store,
}

impl StoreBacked {
    /// Wraps an open store.
    pub fn new(store: Store) -> Self {
        StoreBacked { store }
    }

    /// Fills `replica` with every user of the store; returns how many.
    pub async fn load_replica(&self, replica: &DirectoryReplica) -> Result<usize, StoreError> {
        let entries = self.store.directory_snapshot().await.map_err(err)?;
        let n = entries.len();
        replica.replace_all(entries.into_iter().map(replica_user));
        Ok(n)
    }

    /// Brings one user of `replica` up to date with the store (after the change feed named
    /// it): replaced, or forgotten if the store has no such user any more.
    pub async fn refresh_replica(
        &self,
        replica: &DirectoryReplica,
        address_text: &str,
    ) -> Result<(), StoreError> {
        let Ok(a) = Address::parse(address_text) else {
            replica.remove(address_text);
            return Ok(());
        };
        match self.store.directory_entry(&a).await.map_err(err)? {
            Some(entry) => replica.set(replica_user(entry)),
            None => {
                replica.remove(&a.to_string());
            }
        }
        Ok(())
    }
}

fn replica_user(e: DirectoryEntry) -> ReplicaUser {
    ReplicaUser {
        address: e.address.to_string(),
        enabled: e.enabled,
        home_pool: Some(e.pool),
        credentials: e
            .credentials
            .into_iter()
            .map(|c| {
                (
                    c.realm,
                    Credential {
                        algorithm: c.algorithm,
                        ha1: c.ha1,
                    },
                )
            })
            .collect(),
    }
}

fn err(e: DbError) -> StoreError {
    StoreError(e.to_string())
}

fn address(text: &str) -> Result<Address, StoreError> {
    Address::parse(text).map_err(err)
}

fn unix(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn unsigned(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// The store keeps q in thousandths with 1000 as the default; the location service keeps
/// "not given" apart. q=1.0 and "not given" rank the same (RFC 3261 §10.2.1.2).
fn q_to_store(q: Option<u16>) -> u16 {
    q.unwrap_or(1000).min(1000)
}

fn q_from_store(q: u16) -> Option<u16> {
    (q != 1000).then_some(q)
}

/// A binding's flow is `TRANSPORT PEER LOCAL`; the store keeps the transport in a column of
/// its own (for listing) and the flow as the binding's source.
fn transport_of(flow: &str) -> String {
    flow.split_whitespace().next().unwrap_or("udp").to_owned()
}

fn to_registration(user: &Address, b: &StoredBinding) -> Registration {
    Registration {
        user: user.clone(),
        contact: b.contact.clone(),
        instance_id: None,
        q: q_to_store(b.q),
        expires_at: unix(b.expires_at),
        call_id: b.call_id.clone(),
        cseq: b.cseq,
        // Path values are name-addrs, which may hold commas: one per line.
        path: (!b.path.is_empty()).then(|| b.path.join("\n")),
        source: Some(b.flow.clone()),
        transport: transport_of(&b.flow),
        updated_at: unix(b.registered_at),
    }
}

fn from_registration(r: Registration) -> StoredBinding {
    StoredBinding {
        aor: r.user.to_string(),
        contact: r.contact,
        expires_at: unsigned(r.expires_at),
        q: q_from_store(r.q),
        call_id: r.call_id,
        cseq: r.cseq,
        path: r
            .path
            .map(|p| p.lines().map(str::to_owned).collect())
            .unwrap_or_default(),
        flow: r.source.unwrap_or_default(),
        // Not kept by the store: informational only.
        user_agent: None,
        registered_at: unsigned(r.updated_at),
    }
}

impl PoolDirectory for StoreBacked {
    fn pools(&self) -> BoxFuture<'_, Result<Vec<PoolRecord>, StoreError>> {
        Box::pin(async move {
            let pools = self.store.pools().await.map_err(err)?;
            let down: std::collections::HashSet<String> = self
                .store
                .pools_in_maintenance()
                .await
                .map_err(err)?
                .into_iter()
                .map(|m| m.pool)
                .collect();
            Ok(pools
                .into_iter()
                .map(|p| PoolRecord {
                    maintenance: down.contains(&p.name),
                    pair: p.pair,
                    kind: match p.kind {
                        confab_store::PoolKind::Legacy => PoolKindRecord::Legacy,
                        confab_store::PoolKind::Confab => PoolKindRecord::FrontEnd,
                    },
                    name: p.name,
                    servers: p.servers,
                    next_hop: p.next_hop,
                })
                .collect())
        })
    }

    fn members(&self) -> BoxFuture<'_, Result<Vec<MemberRecord>, StoreError>> {
        Box::pin(async move {
            let members = self.store.pool_members().await.map_err(err)?;
            Ok(members
                .into_iter()
                .map(|m| MemberRecord {
                    pool: m.pool,
                    address: m.address,
                    heartbeat_age: Duration::from_millis(unsigned(m.heartbeat_age_ms)),
                })
                .collect())
        })
    }

    fn heartbeat<'a>(
        &'a self,
        pool: &'a str,
        address: &'a str,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.store
                .member_heartbeat(pool, address)
                .await
                .map_err(err)
        })
    }

    fn leave<'a>(
        &'a self,
        pool: &'a str,
        address: &'a str,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move { self.store.member_leave(pool, address).await.map_err(err) })
    }

    fn blocked_sources(&self) -> BoxFuture<'_, Result<Vec<String>, StoreError>> {
        Box::pin(async move {
            Ok(self
                .store
                .blocked_sources()
                .await
                .map_err(err)?
                .into_iter()
                .map(|b| b.cidr)
                .collect())
        })
    }
}

impl Directory for StoreBacked {
    fn user<'a>(
        &'a self,
        address_text: &'a str,
    ) -> BoxFuture<'a, Result<Option<UserRecord>, StoreError>> {
        Box::pin(async move {
            // A name that is not a valid address names no user.
            let Ok(a) = Address::parse(address_text) else {
                return Ok(None);
            };
            let user = self.store.find_user(&a).await.map_err(err)?;
            Ok(user.map(|u| UserRecord {
                address: u.address.to_string(),
                enabled: u.enabled,
                home_pool: Some(u.pool),
            }))
        })
    }

    fn credentials<'a>(
        &'a self,
        address_text: &'a str,
        realm: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Credential>, StoreError>> {
        Box::pin(async move {
            let Ok(a) = Address::parse(address_text) else {
                return Ok(Vec::new());
            };
            let creds = self.store.credentials(&a, realm).await.map_err(err)?;
            Ok(creds
                .into_iter()
                .map(|c| Credential {
                    algorithm: c.algorithm,
                    ha1: c.ha1,
                })
                .collect())
        })
    }
}

impl RegistrationStore for StoreBacked {
    fn save_many<'a>(&'a self, batch: &'a [AorBindings]) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let mut users = Vec::with_capacity(batch.len());
            let mut registrations = Vec::with_capacity(batch.len());
            for a in batch {
                // Not an address the store can hold: nothing of it could be stored, and
                // failing the batch would hold back every other AOR.
                let Ok(user) = Address::parse(&a.aor) else {
                    warn!(aor = %a.aor, "registrations of an AOR that is no user address not written");
                    continue;
                };
                for b in &a.bindings {
                    registrations.push(to_registration(&user, b));
                }
                users.push(user);
            }
            let unknown = self
                .store
                .replace_registrations(&users, &registrations)
                .await
                .map_err(err)?;
            for user in unknown {
                debug!(%user, "registrations of a user the store no longer has not written");
            }
            Ok(())
        })
    }

    fn load(&self) -> BoxFuture<'_, Result<Vec<StoredBinding>, StoreError>> {
        Box::pin(async move {
            let all = self.store.all_registrations().await.map_err(err)?;
            Ok(all.into_iter().map(from_registration).collect())
        })
    }
}

impl OfflineMessages for StoreBacked {
    fn store(
        &self,
        message: OfflineMessage,
        max_per_user: usize,
        not_before: u64,
    ) -> BoxFuture<'_, Result<u64, OfflineError>> {
        Box::pin(async move {
            let to_user = address(&message.recipient)?;
            // The trait gives the oldest acceptable receive time; the store wants the age.
            let max_age =
                Duration::from_secs(message.received_at.saturating_sub(not_before).max(1));
            let new = NewOfflineMessage {
                to_user,
                from_uri: message.from,
                content_type: message.content_type,
                body: message.body,
                received_at: unix(message.received_at),
            };
            let cap = u32::try_from(max_per_user).unwrap_or(u32::MAX);
            match self.store.store_offline_message(&new, cap, max_age).await {
                Ok(StoredId(id)) => Ok(unsigned(id)),
                Err(QuotaError::Full { .. }) => Err(OfflineError::OverQuota),
                Err(QuotaError::Store(e)) => Err(OfflineError::Store(err(e))),
                Err(e) => Err(OfflineError::Store(StoreError(e.to_string()))),
            }
        })
    }

    fn pending<'a>(
        &'a self,
        recipient: &'a str,
        not_before: u64,
    ) -> BoxFuture<'a, Result<Vec<OfflineMessage>, StoreError>> {
        Box::pin(async move {
            let user = address(recipient)?;
            let now = crate::ids::unix_now();
            let claimed = self
                .store
                .claim_offline_messages(&user, unix(now), CLAIM_LEASE)
                .await
                .map_err(err)?;
            Ok(claimed
                .into_iter()
                .filter(|m| unsigned(m.received_at) >= not_before)
                .map(|m| OfflineMessage {
                    id: unsigned(m.id.0),
                    recipient: m.to_user.to_string(),
                    from: m.from_uri,
                    content_type: m.content_type,
                    body: m.body,
                    received_at: unsigned(m.received_at),
                })
                .collect())
        })
    }

    fn recipients(&self, not_before: u64) -> BoxFuture<'_, Result<Vec<String>, StoreError>> {
        Box::pin(async move {
            let now = crate::ids::unix_now();
            let users = self
                .store
                .offline_recipients(unix(now), unix(not_before))
                .await
                .map_err(err)?;
            Ok(users.iter().map(ToString::to_string).collect())
        })
    }

    fn ack(&self, id: u64) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            self.store
                .ack_offline_messages(&[StoredId(unix(id))])
                .await
                .map_err(err)?;
            Ok(())
        })
    }
}

impl PresenceStore for StoreBacked {
    fn policy<'a>(
        &'a self,
        aor: &'a str,
    ) -> BoxFuture<'a, Result<PresencePolicyRecord, StoreError>> {
        Box::pin(async move {
            let Ok(user) = Address::parse(aor) else {
                return Ok(PresencePolicyRecord::default());
            };
            match self.store.contact_list(&user).await {
                Ok(list) => Ok(PresencePolicyRecord {
                    rules: list
                        .presence_rules
                        .into_iter()
                        .map(|r| (r.watcher.to_string(), r.level.as_str().to_owned()))
                        .collect(),
                    contacts: list
                        .contacts
                        .into_iter()
                        .map(|c| c.address.to_string())
                        .collect(),
                }),
                Err(DbError::NotFound { .. }) => Ok(PresencePolicyRecord::default()),
                Err(e) => Err(err(e)),
            }
        })
    }

    fn save_presence<'a>(
        &'a self,
        batch: &'a PresenceBatch,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let mut writes = confab_store::PresenceWrites::default();
            // An AOR that is no address the store can hold has nothing stored either.
            for p in &batch.publications {
                let Ok(user) = Address::parse(&p.aor) else {
                    continue;
                };
                writes.publications.push(confab_store::StoredPublication {
                    user,
                    etag: p.etag.clone(),
                    expires_at: unix(p.expires_at),
                    content_type: p.content_type.clone(),
                    body: p.body.clone(),
                });
            }
            for (aor, etag) in &batch.removed_publications {
                if let Ok(user) = Address::parse(aor) {
                    writes.removed_publications.push((user, etag.clone()));
                }
            }
            for s in &batch.subscriptions {
                let Ok(presentity) = Address::parse(&s.presentity) else {
                    continue;
                };
                writes.subscriptions.push(confab_store::StoredSubscription {
                    id: s.id.clone(),
                    presentity,
                    event: s.event.clone(),
                    watcher: s.watcher.clone(),
                    expires_at: unix(s.expires_at),
                    dialog: s.dialog.clone(),
                });
            }
            writes.removed_subscriptions = batch.removed_subscriptions.clone();
            let unknown = self.store.write_presence(&writes).await.map_err(err)?;
            for user in unknown {
                debug!(%user, "presence of a user the store no longer has not written");
            }
            Ok(())
        })
    }

    fn load_presence(&self) -> BoxFuture<'_, Result<PresenceBatch, StoreError>> {
        Box::pin(async move {
            let state = self.store.presence_state().await.map_err(err)?;
            Ok(PresenceBatch {
                publications: state
                    .publications
                    .into_iter()
                    .map(|p| StoredPublication {
                        aor: p.user.to_string(),
                        etag: p.etag,
                        expires_at: unsigned(p.expires_at),
                        content_type: p.content_type,
                        body: p.body,
                    })
                    .collect(),
                subscriptions: state
                    .subscriptions
                    .into_iter()
                    .map(|s| StoredSubscription {
                        id: s.id,
                        presentity: s.presentity.to_string(),
                        event: s.event,
                        watcher: s.watcher,
                        expires_at: unsigned(s.expires_at),
                        dialog: s.dialog,
                    })
                    .collect(),
                ..PresenceBatch::default()
            })
        })
    }
}
