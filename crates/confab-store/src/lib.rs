//! # confab-store — the management store of a Confab deployment
//!
//! This crate owns the schema and its migrations, and the management store behind one
//! interface on two backends: SQLite, one file in the data directory (the embedded default),
//! and PostgreSQL, selected by a `postgres://` store URL and shared by the front-ends of many
//! pools. It holds the SIP domains and pools, users and their home pools, credentials (digest
//! HA1 values per realm and algorithm, never plain text), the registrar's write-behind of
//! registrations, offline messages, users' contact lists and presence rules, the presence
//! write-behind (publications and subscriptions), and a change
//! feed that running front-ends follow.
//!
//! It knows no SIP: an address is a `user@domain` string, a credential an opaque hex string,
//! a contact or a path is text. Their meaning belongs to the layers above. It is not where
//! administrative changes are decided either: every administrative mutation arrives through
//! `confab-ops`, which records the change first.
//!
//! ```no_run
//! # async fn demo() -> Result<(), confab_store::StoreError> {
//! use confab_store::{Address, NewUser, Store, StoreLocation};
//!
//! let store = Store::open(&StoreLocation::in_data_dir("./confab-data".as_ref())).await?;
//! store.ensure_defaults("localhost").await?;
//! store
//!     .add_user(&NewUser {
//!         address: Address::parse("alice@localhost")?,
//!         display_name: Some("Alice".into()),
//!         pool: "default".into(),
//!         enabled: true,
//!     })
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! Modules: `location` (where a store is), `db` (the two backends behind one interface),
//! `migrate` (schema versions), `model` (records and their checks), `topology` (domains,
//! sites and pools), `topology_publish` (publishing a whole topology), `users` (users and credentials), `contacts` (contact lists and presence rules),
//! `registrations` (write-behind), `presence` (presence write-behind), `offline` (offline
//! messages), `feed` (the change feed), `replica` (the directory as a front-end keeps it in
//! memory), `error` (what goes wrong).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod admins;
mod audit;
mod backup;
mod changes;
mod contacts;
mod db;
mod error;
mod feed;
mod history;
mod legacy;
mod location;
mod maintenance;
mod members;
mod migrate;
mod migrations;
mod model;
mod offline;
mod presence;
mod registrations;
mod replica;
mod sources;
mod topology;
mod topology_publish;
mod users;

pub use admins::{Administrator, Role};
pub use audit::{entry_hash, AuditBreak, AuditEntry, AuditVerdict, GENESIS};
pub use backup::{
    table_spec, BackedUpContact, BackupRecord, Cell, ColumnType, Dump, RestoreInto, Restored,
    TableDump, TableSpec, UserData, TABLES,
};
pub use changes::{
    Approval, ChangeClass, ChangeFilter, ChangeRecord, ChangeState, Decision, NewChange,
};
pub use contacts::{
    ContactEntry, ContactGroup, ContactList, GroupEntries, IfContactExists, NewContact,
    PresenceLevel, PresenceRule, Watcher, MAX_GROUP_NAME,
};
pub use db::{BackendKind, SQLITE_BUSY_TIMEOUT};
pub use error::{BackendError, QuotaError, StoreError};
pub use feed::{Change, ChangeKind, ChangeWatcher, NOTIFY_CHANNEL, POLL_INTERVAL};
pub use history::UsageSample;
pub use legacy::{
    read_kamailio_moved, read_kamailio_subscribers, redact as redact_url, write_kamailio_moved,
    LegacyMoved, LegacySubscriber, MovedUpdate,
};
pub use location::{StoreLocation, SQLITE_FILE};
pub use maintenance::PoolMaintenance;
pub use members::{PoolMember, MEMBER_DEAD_AFTER};
pub use migrate::SCHEMA_VERSION;
pub use migrations::MigrationRow;
pub use model::{
    check_domain, is_pool_name, Address, Credential, Defaults, Domain, NewOfflineMessage, NewUser,
    OfflineMessage, Pool, PoolKind, PoolUsage, Purged, Registration, Site, StoredId, TopologySpec,
    TopologyVersion, UnixTime, User, UserFilter, UserId, DEFAULT_POOL,
};
pub use presence::{PresenceState, PresenceWrites, StoredPublication, StoredSubscription};
pub use replica::{DirectoryEntry, DIRECTORY_PAGE};
pub use sources::{mask, parse_cidr, BlockedSource};
pub use users::MovedUser;

use db::Db;

/// A handle on a deployment's management store: a pool of connections, cheap to clone and
/// safe to share between tasks. Several handles, in one process or many, may use the same
/// store at once.
#[derive(Debug, Clone)]
pub struct Store {
    db: Db,
    location: StoreLocation,
}

impl Store {
    /// Opens the store at `location`, creating a SQLite file (and its directory) on first
    /// use, and brings its schema to [`SCHEMA_VERSION`].
    pub async fn open(location: &StoreLocation) -> Result<Store, StoreError> {
        let db = match location {
            StoreLocation::Sqlite { path } => Db::open_sqlite(path).await?,
            StoreLocation::Postgres { url } => Db::open_postgres(url).await?,
        };
        if let Err(e) = migrate::migrate(&db).await {
            db.close().await;
            return Err(e);
        }
        Ok(Store {
            db,
            location: location.clone(),
        })
    }

    /// Where the store is.
    pub fn location(&self) -> &StoreLocation {
        &self.location
    }

    /// Which database it runs on.
    pub fn backend(&self) -> BackendKind {
        self.db.kind()
    }

    /// Writes a consistent copy of the whole store to the new file `path`, while the store
    /// keeps serving (SQLite's `VACUUM INTO`): the snapshot an emergency change takes first.
    /// Returns false on PostgreSQL, whose snapshots come with backups (`pg_dump` or
    /// `confab backup`), not from here.
    pub async fn snapshot(&self, path: &std::path::Path) -> Result<bool, StoreError> {
        if self.db.kind() == BackendKind::Postgres {
            return Ok(false);
        }
        let text = path.to_str().ok_or_else(|| {
            StoreError::invalid(
                "snapshot path",
                &path.display().to_string(),
                "use a path that is valid UTF-8",
            )
        })?;
        self.db
            .execute("VACUUM INTO $1", &[text.into()])
            .await
            .map_err(|e| StoreError::invalid("snapshot path", text, e.to_string()))?;
        Ok(true)
    }

    /// The schema version the store has.
    pub async fn schema_version(&self) -> Result<i64, StoreError> {
        migrate::current_version(&self.db).await
    }

    /// Closes every connection of this handle (and of its clones), waiting for those in use.
    pub async fn close(&self) {
        self.db.close().await;
    }
}

/// Compile-time check that every public future can be handed to `tokio::spawn` (Send and
/// 'static once its arguments are moved in): front-ends spawn store calls.
#[cfg(test)]
#[allow(dead_code)]
fn futures_are_spawnable(store: Store, who: Address, user: NewUser, reg: Registration) {
    use std::time::Duration;
    let msg = NewOfflineMessage {
        to_user: who.clone(),
        from_uri: String::new(),
        content_type: String::new(),
        body: Vec::new(),
        received_at: 0,
    };
    let s = store.clone();
    let w = who.clone();
    let c = who.clone();
    tokio::spawn(async move {
        let location = s.location().clone();
        let _ = Store::open(&location).await;
        let _ = s.schema_version().await;
        let _ = s.ensure_defaults("localhost").await;
        let _ = s.domains().await;
        let _ = s.add_domain("x").await;
        let _ = s.remove_domain("x").await;
        let _ = s.pools().await;
        let _ = s.get_pool("x").await;
        let _ = s.remove_pool("x").await;
        let _ = s.sites().await;
        let _ = s.pool_usage().await;
        let _ = s.topology_version().await;
        let _ = s
            .publish_topology(&TopologySpec::default(), "", "me", None)
            .await;
        let _ = s.add_user(&user).await;
        let _ = s.find_user(&w).await;
        let _ = s.get_user(&w).await;
        let _ = s.list_users(&UserFilter::default()).await;
        let _ = s.set_enabled(&w, true).await;
        let _ = s.set_credentials(&w, &[]).await;
        let _ = s.credentials(&w, "r").await;
        let _ = s.remove_user(&w).await;
        s.close().await;
    });
    let s = store.clone();
    tokio::spawn(async move {
        let _ = s
            .add_pool(&Pool {
                name: String::new(),
                kind: PoolKind::Confab,
                site: None,
                next_hop: None,
                servers: Vec::new(),
                pair: None,
            })
            .await;
        let _ = s.upsert_registration(&reg).await;
        let _ = s.replace_registrations(&[], &[]).await;
        let _ = s.remove_registration(&who, "c").await;
        let _ = s.remove_registrations_of(&who).await;
        let _ = s.registrations_of(&who).await;
        let _ = s.all_registrations().await;
        let _ = s.purge_expired(0).await;
        let _ = s
            .store_offline_message(&msg, 1, Duration::from_secs(1))
            .await;
        let _ = s
            .claim_offline_messages(&who, 0, Duration::from_secs(1))
            .await;
        let _ = s.ack_offline_messages(&[]).await;
        let _ = s.release_offline_messages(&[]).await;
        let _ = s.offline_message_count(&who).await;
        let _ = s.changes_since(0, 1).await;
        let _ = s.last_change_seq().await;
        let _ = s.prune_changes(0).await;
        let mut watcher = s.watch_changes(0).await;
        let _ = watcher.next().await;
    });
    let s = store.clone();
    tokio::spawn(async move {
        let new = NewContact {
            address: c.clone(),
            display_name: None,
            group: None,
        };
        let watcher = Watcher::Domain("x".into());
        let _ = s.contact_groups(&c).await;
        let _ = s.contacts(&c).await;
        let _ = s.presence_rules(&c).await;
        let _ = s.contact_list(&c).await;
        let _ = s.add_contact_group(&c, "g").await;
        let _ = s.rename_contact_group(&c, "g", "h").await;
        let _ = s.remove_contact_group(&c, "h", GroupEntries::Refuse).await;
        let _ = s.add_contact(&c, &new, IfContactExists::Refuse).await;
        let _ = s.remove_contact(&c, &c).await;
        let _ = s
            .set_presence_rule(&c, &watcher, PresenceLevel::Blocked)
            .await;
        let _ = s.remove_presence_rule(&c, &watcher).await;
    });
}
