//! The members of each pool: which front-ends run and serve it, as their heartbeats show.
//! A `confab serve` writes its heartbeat every second and removes its row when it stops
//! cleanly; one whose heartbeat is older than [`MEMBER_DEAD_AFTER`] is dead, and its pool's
//! other members take its users over (confab-server's `pools` module owns that). Times are
//! read from the database's clock, never the front-end's, so that members on machines whose
//! clocks disagree still agree on who is alive. Heartbeats are not changes an operator made:
//! they do not go to the change feed.

use std::time::Duration;

use crate::db::{BackendKind, Row};
use crate::error::Context;
use crate::model::check_token;
use crate::{Store, StoreError};

/// A member whose last heartbeat is older than this is dead (heartbeats come every second).
pub const MEMBER_DEAD_AFTER: Duration = Duration::from_secs(5);

/// One front-end of a pool as its heartbeat shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolMember {
    /// The pool it serves.
    pub pool: String,
    /// Its SIP address, a listen URI such as `udp://10.0.0.1:5060`.
    pub address: String,
    /// When it started serving the pool, Unix milliseconds (store clock).
    pub started_at: i64,
    /// How long ago its last heartbeat was, in milliseconds (store clock).
    pub heartbeat_age_ms: i64,
}

impl PoolMember {
    /// True when its heartbeat is recent enough ([`MEMBER_DEAD_AFTER`]).
    pub fn is_up(&self) -> bool {
        u128::try_from(self.heartbeat_age_ms).is_ok_and(|age| age <= MEMBER_DEAD_AFTER.as_millis())
    }
}

/// The database's clock, in Unix milliseconds, as an SQL expression.
fn now_ms(kind: BackendKind) -> &'static str {
    match kind {
        BackendKind::Sqlite => "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)",
        BackendKind::Postgres => "CAST(extract(epoch from clock_timestamp()) * 1000 AS BIGINT)",
    }
}

fn member(row: &Row) -> Result<PoolMember, StoreError> {
    Ok(PoolMember {
        pool: row.text("pool")?,
        address: row.text("address")?,
        started_at: row.int("started_at")?,
        heartbeat_age_ms: row.int("age")?.max(0),
    })
}

impl Store {
    /// Records that the front-end at `address` serves `pool` and is alive now. Its first
    /// heartbeat (or the first after [`Store::member_leave`]) sets when it started.
    pub async fn member_heartbeat(&self, pool: &str, address: &str) -> Result<(), StoreError> {
        const CONTEXT: &str = "writing a front-end's heartbeat";
        check_token("pool name", pool, 255)?;
        check_token("front-end address", address, 255)?;
        let now = now_ms(self.db.kind());
        let sql = format!(
            "INSERT INTO pool_members (pool, address, started_at, heartbeat_at) \
             SELECT name, $2, {now}, {now} FROM pools WHERE name = $1 \
             ON CONFLICT (pool, address) DO UPDATE SET heartbeat_at = excluded.heartbeat_at"
        );
        let written = self
            .db
            .execute(&sql, &[pool.into(), address.into()])
            .await
            .ctx(CONTEXT)?;
        if written == 0 {
            return Err(StoreError::NotFound {
                what: "pool",
                name: pool.to_owned(),
                fix: "publish a topology that has it (confab topology publish), or start the \
                      front-end with --pool set to a pool of `confab pool list`",
            });
        }
        Ok(())
    }

    /// Every front-end that announced itself, with the age of its last heartbeat, by pool
    /// then address.
    pub async fn pool_members(&self) -> Result<Vec<PoolMember>, StoreError> {
        let sql = format!(
            "SELECT pool, address, started_at, {} - heartbeat_at AS age \
             FROM pool_members ORDER BY pool, address",
            now_ms(self.db.kind())
        );
        let rows = self
            .db
            .fetch_all(&sql, &[])
            .await
            .ctx("listing the front-ends of the pools")?;
        rows.iter().map(member).collect()
    }

    /// Removes the front-end at `address` from `pool` (it stops cleanly): the other members
    /// take its users over at once. Removing one that is not there is not an error.
    pub async fn member_leave(&self, pool: &str, address: &str) -> Result<(), StoreError> {
        self.db
            .execute(
                "DELETE FROM pool_members WHERE pool = $1 AND address = $2",
                &[pool.into(), address.into()],
            )
            .await
            .ctx("removing a front-end from its pool")?;
        Ok(())
    }
}
