//! Users per pool over time (`pool_usage_history`, schema version 11): a sample per pool
//! whenever its count changed since the last sample, written by the front-ends on a timer and
//! by moves as they commit, read by the console's chart of a migration. Samples are keyed by
//! second and pool: two writers in the same second agree on the last count.

use crate::error::Context;
use crate::model::unix_now;
use crate::{Store, StoreError};

/// Users homed on a pool at an instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageSample {
    /// When, Unix seconds.
    pub at: i64,
    /// The pool.
    pub pool: String,
    /// Users homed on it.
    pub users: i64,
}

impl Store {
    /// Samples users per pool now: one row for each pool whose count differs from its last
    /// sample (or has none). Returns the samples written.
    pub async fn sample_pool_usage(&self) -> Result<usize, StoreError> {
        const CONTEXT: &str = "sampling users per pool";
        let now = unix_now();
        let usage = self.pool_usage().await?;
        let last = self
            .db
            .fetch_all(
                "SELECT h.pool, h.users FROM pool_usage_history h \
                 WHERE h.at = (SELECT MAX(at) FROM pool_usage_history l WHERE l.pool = h.pool)",
                &[],
            )
            .await
            .ctx(CONTEXT)?;
        let mut known = std::collections::HashMap::new();
        for row in &last {
            known.insert(row.text("pool")?, row.int("users")?);
        }
        let mut written = 0;
        for u in usage {
            if known.get(&u.pool) == Some(&u.users) {
                continue;
            }
            self.db
                .execute(
                    "INSERT INTO pool_usage_history (at, pool, users) VALUES ($1, $2, $3) \
                     ON CONFLICT (at, pool) DO UPDATE SET users = $3",
                    &[now.into(), u.pool.as_str().into(), u.users.into()],
                )
                .await
                .ctx(CONTEXT)?;
            written += 1;
        }
        Ok(written)
    }

    /// The samples since `since` (Unix seconds), oldest first, and for each pool its last
    /// sample before `since` (so that a chart starts from the count then).
    pub async fn pool_usage_history(&self, since: i64) -> Result<Vec<UsageSample>, StoreError> {
        const CONTEXT: &str = "reading users per pool over time";
        let rows = self
            .db
            .fetch_all(
                "SELECT at, pool, users FROM pool_usage_history h WHERE at >= $1 \
                 OR at = (SELECT MAX(at) FROM pool_usage_history l \
                          WHERE l.pool = h.pool AND l.at < $1) \
                 ORDER BY at, pool",
                &[since.into()],
            )
            .await
            .ctx(CONTEXT)?;
        rows.iter()
            .map(|row| {
                Ok(UsageSample {
                    at: row.int("at")?,
                    pool: row.text("pool")?,
                    users: row.int("users")?,
                })
            })
            .collect()
    }
}
