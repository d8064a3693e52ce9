//! The change feed: every mutation of domains, pools, topology, users, credentials, contact lists and
//! presence rules appends an entry `(seq, kind, subject, at)` in the same transaction as the
//! mutation, so a running front-end that polls [`Store::changes_since`] (or waits on
//! [`ChangeWatcher`]) learns of a user disabled or removed from the CLI and drops what it
//! holds for that user.
//!
//! Sequence numbers come from the single row of `change_head`, bumped inside the writing
//! transaction: numbers have no gaps and commit in order, so a poller that remembers the last
//! number it saw never skips an entry. The row lock also serialises administrative writers,
//! which is what makes their existence checks race-free on PostgreSQL.
//!
//! This feed is not change control: a change *record* (who, why, approvals) belongs to
//! `confab-ops`. The feed only says that something changed, and what.

use std::fmt;
use std::time::Duration;

use sqlx::postgres::PgListener;

use crate::db::{value_rows, Arg, BackendKind, Db, Row, Tx};
use crate::error::Context;
use crate::model::UnixTime;
use crate::{Store, StoreError};

/// How often a [`ChangeWatcher`] polls. A change is seen at most this long plus one query
/// after it commits, well within the one second in which a disabled user must be refused.
/// On PostgreSQL a `NOTIFY` wakes watchers at once, and the poll is the fallback.
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// The channel of the `NOTIFY` sent with every entry on PostgreSQL.
pub const NOTIFY_CHANNEL: &str = "confab_changes";

/// What changed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ChangeKind {
    /// A SIP domain was added; the subject is its name.
    DomainAdded,
    /// A SIP domain was removed.
    DomainRemoved,
    /// A pool was added; the subject is its name.
    PoolAdded,
    /// A pool was removed.
    PoolRemoved,
    /// A user was added; the subject is the address.
    UserAdded,
    /// A user was enabled.
    UserEnabled,
    /// A user was disabled: drop their registrations and refuse them.
    UserDisabled,
    /// A user was removed, with credentials, registrations and offline messages.
    UserRemoved,
    /// A user's credentials were replaced.
    CredentialsSet,
    /// An offline message was kept for a user (the subject): a front-end where the user is
    /// signed in delivers it.
    OfflineMessageStored,
    /// A user's contact list (its groups or entries) changed; the subject is the user's
    /// address.
    ContactsChanged,
    /// A user's presence rules changed; the subject is the user's address.
    PresenceRulesChanged,
    /// A user was re-homed on another pool (`confab user move`); the subject is the address.
    /// The old pool signs the user out and ends its watchers' subscriptions.
    UserMoved,
    /// A topology document was published: domains, sites and pools may all have changed;
    /// the subject is the new version number. Re-read them with [`Store::pools`] and
    /// [`Store::domains`].
    TopologyPublished,
    /// The source addresses blocked at ingress changed; the subject is the CIDR blocked or
    /// unblocked. Re-read them with [`Store::blocked_sources`].
    SourcesChanged,
    /// A pool went into maintenance or left it; the subject is the pool. Re-read them with
    /// [`Store::pools_in_maintenance`].
    PoolMaintenance,
    /// The whole store was restored from a backup; the subject is who restored it. Read
    /// everything again.
    StoreRestored,
    /// A kind written by a newer build; the subject says which record.
    Other(String),
}

impl ChangeKind {
    /// The stored name, e.g. `user.disabled`.
    pub fn as_str(&self) -> &str {
        match self {
            ChangeKind::DomainAdded => "domain.added",
            ChangeKind::DomainRemoved => "domain.removed",
            ChangeKind::PoolAdded => "pool.added",
            ChangeKind::PoolRemoved => "pool.removed",
            ChangeKind::UserAdded => "user.added",
            ChangeKind::UserEnabled => "user.enabled",
            ChangeKind::UserDisabled => "user.disabled",
            ChangeKind::UserRemoved => "user.removed",
            ChangeKind::CredentialsSet => "user.credentials",
            ChangeKind::OfflineMessageStored => "offline.stored",
            ChangeKind::ContactsChanged => "contacts.changed",
            ChangeKind::PresenceRulesChanged => "presence_rules.changed",
            ChangeKind::UserMoved => "user.moved",
            ChangeKind::TopologyPublished => "topology.published",
            ChangeKind::SourcesChanged => "sources.changed",
            ChangeKind::PoolMaintenance => "pool.maintenance",
            ChangeKind::StoreRestored => "store.restored",
            ChangeKind::Other(name) => name,
        }
    }

    fn from_stored(name: String) -> Self {
        const KNOWN: [ChangeKind; 17] = [
            ChangeKind::DomainAdded,
            ChangeKind::DomainRemoved,
            ChangeKind::PoolAdded,
            ChangeKind::PoolRemoved,
            ChangeKind::UserAdded,
            ChangeKind::UserEnabled,
            ChangeKind::UserDisabled,
            ChangeKind::UserRemoved,
            ChangeKind::CredentialsSet,
            ChangeKind::OfflineMessageStored,
            ChangeKind::ContactsChanged,
            ChangeKind::PresenceRulesChanged,
            ChangeKind::UserMoved,
            ChangeKind::TopologyPublished,
            ChangeKind::SourcesChanged,
            ChangeKind::PoolMaintenance,
            ChangeKind::StoreRestored,
        ];
        KNOWN
            .into_iter()
            .find(|k| k.as_str() == name)
            .unwrap_or(ChangeKind::Other(name))
    }
}

impl fmt::Display for ChangeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One entry of the change feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Position in the feed: 1, 2, 3 … without gaps.
    pub seq: i64,
    /// What changed.
    pub kind: ChangeKind,
    /// Which record: a user's address, a pool's or a domain's name.
    pub subject: String,
    /// When, in Unix seconds.
    pub at: UnixTime,
}

/// Takes the feed's row lock: call first in every administrative write transaction, so that
/// its checks see every earlier writer's commit (a no-op cost on SQLite, whose
/// `BEGIN IMMEDIATE` already excludes other writers).
pub(crate) async fn lock(tx: &mut Tx) -> Result<(), StoreError> {
    tx.execute("UPDATE change_head SET seq = seq WHERE id = 1", &[])
        .await
        .ctx("locking the change feed")?;
    Ok(())
}

/// Appends an entry inside the caller's transaction.
pub(crate) async fn record(
    tx: &mut Tx,
    kind: ChangeKind,
    subject: &str,
    at: UnixTime,
) -> Result<i64, StoreError> {
    const CONTEXT: &str = "appending to the change feed";
    let seq = tx
        .fetch_one(
            "UPDATE change_head SET seq = seq + 1 WHERE id = 1 RETURNING seq",
            &[],
        )
        .await
        .ctx(CONTEXT)?
        .int("seq")?;
    tx.execute(
        "INSERT INTO changes (seq, kind, subject, at) VALUES ($1, $2, $3, $4)",
        &[seq.into(), kind.as_str().into(), subject.into(), at.into()],
    )
    .await
    .ctx(CONTEXT)?;
    if tx.kind() == BackendKind::Postgres {
        // Delivered by PostgreSQL at commit, never before; the payload is only a hint.
        let payload = seq.to_string();
        tx.execute(
            "SELECT pg_notify($1, $2)",
            &[NOTIFY_CHANNEL.into(), payload.as_str().into()],
        )
        .await
        .ctx(CONTEXT)?;
    }
    Ok(seq)
}

/// Change-feed rows per multi-row INSERT in [`record_many`] (4 parameters each).
const RECORD_ROWS: usize = 250;

/// Appends several entries inside the caller's transaction, numbered in the order given: what
/// that many calls of [`record`] would append, in a few statements (a bulk import's batch).
pub(crate) async fn record_many(
    tx: &mut Tx,
    entries: &[(ChangeKind, String)],
    at: UnixTime,
) -> Result<(), StoreError> {
    const CONTEXT: &str = "appending to the change feed";
    let Ok(count) = i64::try_from(entries.len()) else {
        return Err(StoreError::corrupt("too many change feed entries at once"));
    };
    if count == 0 {
        return Ok(());
    }
    let last = tx
        .fetch_one(
            "UPDATE change_head SET seq = seq + $1 WHERE id = 1 RETURNING seq",
            &[count.into()],
        )
        .await
        .ctx(CONTEXT)?
        .int("seq")?;
    let mut seq = last - count;
    for chunk in entries.chunks(RECORD_ROWS) {
        let sql = format!(
            "INSERT INTO changes (seq, kind, subject, at) VALUES {}",
            value_rows(tx.kind(), chunk.len(), 4)
        );
        let mut args: Vec<Arg> = Vec::with_capacity(chunk.len() * 4);
        for (kind, subject) in chunk {
            seq += 1;
            args.extend([
                Arg::Int(seq),
                kind.as_str().into(),
                subject.as_str().into(),
                Arg::Int(at),
            ]);
        }
        tx.execute(&sql, &args).await.ctx(CONTEXT)?;
    }
    if tx.kind() == BackendKind::Postgres {
        let payload = last.to_string();
        tx.execute(
            "SELECT pg_notify($1, $2)",
            &[NOTIFY_CHANNEL.into(), payload.as_str().into()],
        )
        .await
        .ctx(CONTEXT)?;
    }
    Ok(())
}

fn change(row: &Row) -> Result<Change, StoreError> {
    Ok(Change {
        seq: row.int("seq")?,
        kind: ChangeKind::from_stored(row.text("kind")?),
        subject: row.text("subject")?,
        at: row.int("at")?,
    })
}

impl Store {
    /// The entries after `after`, oldest first, at most `limit` of them. Start with
    /// [`Store::last_change_seq`] (or 0 for the whole history) and pass the last `seq` seen;
    /// call again while a full batch comes back.
    pub async fn changes_since(&self, after: i64, limit: u32) -> Result<Vec<Change>, StoreError> {
        changes_since(&self.db, after, limit).await
    }

    /// The number of the newest entry (0 for an empty feed).
    pub async fn last_change_seq(&self) -> Result<i64, StoreError> {
        self.db
            .fetch_optional("SELECT seq FROM change_head WHERE id = 1", &[])
            .await
            .ctx("reading the change feed")?
            .map_or(Ok(0), |row| row.int("seq"))
    }

    /// Deletes the entries numbered up to `upto` (retention: a front-end only needs entries
    /// newer than what it last saw); returns how many went.
    pub async fn prune_changes(&self, upto: i64) -> Result<u64, StoreError> {
        self.db
            .execute("DELETE FROM changes WHERE seq <= $1", &[upto.into()])
            .await
            .ctx("pruning the change feed")
    }

    /// A watcher that yields the entries after `after` as they are committed, by any process.
    pub async fn watch_changes(&self, after: i64) -> ChangeWatcher {
        let listener = match &self.db {
            Db::Postgres(pool) => match PgListener::connect_with(pool).await {
                Ok(mut l) => match l.listen(NOTIFY_CHANNEL).await {
                    Ok(()) => Some(l),
                    Err(e) => {
                        tracing::warn!(error = %e, "LISTEN failed; polling the change feed instead");
                        None
                    }
                },
                Err(e) => {
                    tracing::warn!(error = %e, "no LISTEN connection; polling the change feed instead");
                    None
                }
            },
            Db::Sqlite(_) => None,
        };
        ChangeWatcher {
            db: self.db.clone(),
            after,
            listener,
        }
    }
}

async fn changes_since(db: &Db, after: i64, limit: u32) -> Result<Vec<Change>, StoreError> {
    let rows = db
        .fetch_all(
            "SELECT seq, kind, subject, at FROM changes WHERE seq > $1 ORDER BY seq LIMIT $2",
            &[after.into(), Arg::Int(i64::from(limit))],
        )
        .await
        .ctx("reading the change feed")?;
    rows.iter().map(change).collect()
}

/// Follows the change feed from a position: [`ChangeWatcher::next`] returns the next batch of
/// entries, waiting until there is one. Poll-based on SQLite; woken by `NOTIFY` on PostgreSQL.
pub struct ChangeWatcher {
    db: Db,
    after: i64,
    listener: Option<PgListener>,
}

impl ChangeWatcher {
    /// At most this many entries per batch.
    pub const BATCH: u32 = 500;

    /// The number of the last entry returned (or the starting point).
    pub fn position(&self) -> i64 {
        self.after
    }

    /// The next entries, oldest first; waits until at least one exists. Cancel-safe: a call
    /// dropped while waiting loses nothing.
    pub async fn next(&mut self) -> Result<Vec<Change>, StoreError> {
        loop {
            let batch = changes_since(&self.db, self.after, Self::BATCH).await?;
            if let Some(last) = batch.last() {
                self.after = last.seq;
                return Ok(batch);
            }
            self.wait().await;
        }
    }

    async fn wait(&mut self) {
        match self.listener.as_mut() {
            Some(listener) => {
                // Ok(None) means the connection dropped; the listener reconnects on the next
                // call, and the poll covers whatever was sent meanwhile.
                match tokio::time::timeout(POLL_INTERVAL, listener.try_recv()).await {
                    Ok(Ok(_)) | Err(_) => {}
                    Ok(Err(e)) => {
                        tracing::debug!(error = %e, "change feed LISTEN connection failed");
                        tokio::time::sleep(POLL_INTERVAL).await;
                    }
                }
            }
            None => tokio::time::sleep(POLL_INTERVAL).await,
        }
    }
}

impl fmt::Debug for ChangeWatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChangeWatcher")
            .field("backend", &self.db.kind())
            .field("after", &self.after)
            .field("listening", &self.listener.is_some())
            .finish()
    }
}
